//! What the replica reads from its master before the command stream starts, as pure
//! functions over bytes: handshake reply lines, the PSYNC reply, the `$<len>` / `$EOF:<mark>`
//! preamble of a full sync and the payload that follows it.
//!
//! Everything here is sans-I/O so it can be tested and fuzzed on hostile bytes: a line is
//! bounded, a declared payload length reserves nothing, and no input panics. The socket,
//! timeouts and state changes stay in `replica/`; the RDB inside the payload is parsed by
//! `loader.rs`; the command stream after it by `crate::protocol::Parser`.

/// The longest reply line accepted from the master (Redis reads them into a fixed buffer
/// of `PROTO_IOBUF_LEN`): a master that never sends `\n` cannot grow our buffer forever.
pub const MAX_LINE: usize = 16 * 1024;

/// Length of the random delimiter of a diskless (`$EOF:`) transfer.
pub const EOF_MARK_LEN: usize = 40;

/// Why bytes from the master were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("Bad protocol from MASTER: a reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("MASTER aborted replication with an error: {0}")]
    Aborted(String),
    #[error(
        "Bad protocol from MASTER, the first byte is not '$' (we received '{0}'), are you sure the host and port are right?"
    )]
    NotBulk(String),
    #[error("Bad bulk length from MASTER: {0}")]
    BadLength(String),
}

/// Takes one line (without `\r\n`) off the front of `buf`; `Ok(None)` until a `\n` arrived.
///
/// # Errors
/// [`FramingError::LineTooLong`] when [`MAX_LINE`] bytes arrived without a `\n`.
pub fn take_line(buf: &mut Vec<u8>) -> Result<Option<String>, FramingError> {
    let Some(i) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Err(FramingError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    if i > MAX_LINE {
        return Err(FramingError::LineTooLong);
    }
    let line = &buf[..i];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line).into_owned();
    buf.drain(..=i);
    Ok(Some(text))
}

/// The master's answer to `PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncReply {
    /// `+CONTINUE [<new replid>]`: the stream continues from our offset; the id is given
    /// only when it is a well-formed 40-character replication id.
    Continue(Option<String>),
    /// `+FULLRESYNC <replid> <offset>`: an RDB follows.
    FullResync { replid: String, offset: u64 },
    /// `-NOMASTERLINK` / `-LOADING`: retry later.
    TryLater(String),
    /// Anything else, including a `+FULLRESYNC` with a malformed id.
    Unexpected(String),
}

/// Reads a PSYNC reply line as Redis's `slaveTryPartialResynchronization` does.
pub fn parse_psync_reply(line: &str) -> PsyncReply {
    if let Some(rest) = line.strip_prefix("+CONTINUE") {
        let id = rest.trim();
        return PsyncReply::Continue((id.len() == 40).then(|| id.to_owned()));
    }
    if let Some(rest) = line.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split(' ');
        let replid = it.next().unwrap_or_default();
        let offset = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if replid.len() == 40 {
            return PsyncReply::FullResync {
                replid: replid.to_owned(),
                offset,
            };
        }
        return PsyncReply::Unexpected(line.to_owned());
    }
    if line.starts_with("-NOMASTERLINK") || line.starts_with("-LOADING") {
        return PsyncReply::TryLater(line.to_owned());
    }
    PsyncReply::Unexpected(line.to_owned())
}

/// How the RDB payload of a full sync is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `$<len>`: exactly this many bytes follow.
    Len(u64),
    /// `$EOF:<40 bytes>`: the payload ends with these 40 bytes (diskless transfer).
    Eof(Vec<u8>),
}

/// Reads the preamble line of a full sync. `Ok(None)` for an empty line: the master sends
/// newlines as keepalives while it prepares the RDB.
///
/// # Errors
/// An error reply from the master, a line that is not a bulk header, or a bad length.
pub fn parse_preamble(line: &str) -> Result<Option<Framing>, FramingError> {
    if line.is_empty() {
        return Ok(None);
    }
    if line.starts_with('-') {
        return Err(FramingError::Aborted(line.to_owned()));
    }
    let Some(rest) = line.strip_prefix('$') else {
        return Err(FramingError::NotBulk(line.to_owned()));
    };
    if let Some(mark) = rest.strip_prefix("EOF:")
        && mark.len() >= EOF_MARK_LEN
    {
        return Ok(Some(Framing::Eof(mark.as_bytes()[..EOF_MARK_LEN].to_vec())));
    }
    rest.parse::<u64>()
        .map(|n| Some(Framing::Len(n)))
        .map_err(|_| FramingError::BadLength(line.to_owned()))
}

/// The RDB payload of a full sync being received, delimited without being kept: RDB bytes are
/// handed on as they arrive (to the loader), so a hostile `$<len>` header reserves nothing
/// and a large transfer never sits whole in memory. Only up to 39 bytes that may be the
/// start of an `$EOF:` mark are held back between reads.
#[derive(Debug)]
pub struct Payload {
    framing: Framing,
    received: u64,
    held: Vec<u8>,
    complete: bool,
}

impl Payload {
    pub fn new(framing: Framing) -> Self {
        let complete = framing == Framing::Len(0);
        Payload {
            framing,
            received: 0,
            held: Vec::new(),
            complete,
        }
    }

    /// The length announced by a `$<len>` header, 0 for an `$EOF:` transfer.
    pub fn total(&self) -> u64 {
        match self.framing {
            Framing::Len(n) => n,
            Framing::Eof(_) => 0,
        }
    }

    /// Bytes of payload taken so far (for `$EOF:`, the mark included once seen).
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Takes payload bytes from the front of `input`, appends the RDB bytes among them to
    /// `rdb` (never the `$EOF:` mark) and returns how many it took: never more than the
    /// payload, so what follows (the command stream) stays with the caller.
    pub fn feed(&mut self, input: &[u8], rdb: &mut Vec<u8>) -> usize {
        if self.complete {
            return 0;
        }
        let took = match &self.framing {
            Framing::Len(total) => {
                let left = total - self.received;
                let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                rdb.extend_from_slice(&input[..take]);
                self.complete = self.received + take as u64 == *total;
                take
            }
            Framing::Eof(mark) => {
                // Where the mark starts in (held bytes ++ input), if it does. One straddling
                // the two is looked for in a window of at most 78 bytes; the input itself is
                // searched in place, not copied behind the held bytes.
                let h = self.held.len();
                let straddling = if h == 0 {
                    None
                } else {
                    let mut window = self.held.clone();
                    window.extend_from_slice(&input[..input.len().min(EOF_MARK_LEN - 1)]);
                    memchr::memmem::find(&window, mark).filter(|&at| at < h)
                };
                let found =
                    straddling.or_else(|| memchr::memmem::find(input, mark).map(|at| h + at));
                match found {
                    Some(at) => {
                        // `at` counts from the start of the held bytes.
                        let end = at + EOF_MARK_LEN - h;
                        if at < h {
                            rdb.extend_from_slice(&self.held[..at]);
                        } else {
                            rdb.extend_from_slice(&self.held);
                            rdb.extend_from_slice(&input[..at - h]);
                        }
                        self.held.clear();
                        self.complete = true;
                        end
                    }
                    None => {
                        // Keep the last bytes that could begin the mark; hand on the rest.
                        let total = h + input.len();
                        let keep = total.min(EOF_MARK_LEN - 1);
                        let emit = total - keep;
                        if emit <= h {
                            rdb.extend_from_slice(&self.held[..emit]);
                            self.held.drain(..emit);
                            self.held.extend_from_slice(input);
                        } else {
                            rdb.extend_from_slice(&self.held);
                            rdb.extend_from_slice(&input[..emit - h]);
                            self.held.clear();
                            self.held.extend_from_slice(&input[emit - h..]);
                        }
                        input.len()
                    }
                }
            }
        };
        self.received += took as u64;
        took
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MARK: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn lines_are_bounded_and_split_on_newline() {
        let mut buf = b"+OK\r\n+PONG\nrest".to_vec();
        assert_eq!(take_line(&mut buf), Ok(Some("+OK".into())));
        assert_eq!(take_line(&mut buf), Ok(Some("+PONG".into())));
        assert_eq!(take_line(&mut buf), Ok(None));
        assert_eq!(buf, b"rest");
        let mut endless = vec![b'x'; MAX_LINE + 1];
        assert_eq!(take_line(&mut endless), Err(FramingError::LineTooLong));
        let mut long_line = vec![b'x'; MAX_LINE + 1];
        long_line.push(b'\n');
        assert_eq!(take_line(&mut long_line), Err(FramingError::LineTooLong));
    }

    #[test]
    fn psync_replies() {
        let id = "a".repeat(40);
        assert_eq!(
            parse_psync_reply(&format!("+FULLRESYNC {id} 77")),
            PsyncReply::FullResync {
                replid: id.clone(),
                offset: 77
            }
        );
        assert_eq!(
            parse_psync_reply(&format!("+CONTINUE {id}")),
            PsyncReply::Continue(Some(id))
        );
        assert_eq!(parse_psync_reply("+CONTINUE"), PsyncReply::Continue(None));
        assert!(matches!(
            parse_psync_reply("+FULLRESYNC short 1"),
            PsyncReply::Unexpected(_)
        ));
        assert!(matches!(
            parse_psync_reply("-LOADING Redis is loading"),
            PsyncReply::TryLater(_)
        ));
        assert!(matches!(
            parse_psync_reply("-ERR nope"),
            PsyncReply::Unexpected(_)
        ));
    }

    #[test]
    fn preambles() {
        assert_eq!(parse_preamble(""), Ok(None));
        assert_eq!(parse_preamble("$12"), Ok(Some(Framing::Len(12))));
        let eof = format!("$EOF:{}", std::str::from_utf8(MARK).expect("ascii"));
        assert_eq!(parse_preamble(&eof), Ok(Some(Framing::Eof(MARK.to_vec()))));
        for bad in ["$EOF:short", "$-1", "$", "$ 1", "$18446744073709551616"] {
            assert!(
                matches!(parse_preamble(bad), Err(FramingError::BadLength(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_preamble("-ERR can't BGSAVE"),
            Err(FramingError::Aborted(_))
        ));
        assert!(matches!(
            parse_preamble("+OK"),
            Err(FramingError::NotBulk(_))
        ));
    }

    #[test]
    fn a_huge_declared_length_reserves_nothing() {
        let mut p = Payload::new(Framing::Len(2 << 30));
        let mut rdb = Vec::new();
        assert_eq!(p.feed(b"REDIS0010", &mut rdb), 9);
        assert!(!p.is_complete());
        assert_eq!(p.received(), 9);
        assert!(rdb.capacity() < 1 << 20);
    }

    #[test]
    fn length_framing_leaves_the_stream_after_it() {
        let mut p = Payload::new(Framing::Len(5));
        let mut rdb = Vec::new();
        assert_eq!(p.feed(b"abc", &mut rdb), 3);
        assert_eq!(p.feed(b"de*1\r\n", &mut rdb), 2);
        assert!(p.is_complete());
        assert_eq!(p.feed(b"more", &mut rdb), 0);
        assert_eq!(rdb, b"abcde");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        /// However an `$EOF:` transfer is split into reads, the payload ends right before the
        /// mark and the bytes after it are left for the stream.
        #[test]
        fn eof_mark_found_across_any_split(
            body in prop::collection::vec(any::<u8>(), 0..300),
            after in prop::collection::vec(any::<u8>(), 0..50),
            cuts in prop::collection::vec(1usize..64, 1..20),
            partial in 0usize..EOF_MARK_LEN,
        ) {
            // The body may end with the start of the mark: held back, then handed on.
            let mut body = body;
            body.extend_from_slice(&MARK[..partial]);
            let mut wire = body.clone();
            wire.extend_from_slice(MARK);
            // A body that contains the mark would legitimately end early.
            prop_assume!(memchr::memmem::find(&wire, MARK) == Some(body.len()));
            wire.extend_from_slice(&after);
            let mut p = Payload::new(Framing::Eof(MARK.to_vec()));
            let mut rdb = Vec::new();
            let mut at = 0;
            let mut sizes = cuts.iter().cycle();
            while at < wire.len() && !p.is_complete() {
                let n = (*sizes.next().expect("cycle")).min(wire.len() - at);
                let took = p.feed(&wire[at..at + n], &mut rdb);
                prop_assert!(took <= n);
                at += took;
                if took < n {
                    prop_assert!(p.is_complete());
                }
            }
            prop_assert!(p.is_complete());
            prop_assert_eq!(&wire[at..], &after[..]);
            prop_assert_eq!(rdb, body);
        }

        /// Any line at all is classified without panicking.
        #[test]
        fn any_line_is_classified(line in ".{0,80}") {
            let _ = parse_psync_reply(&line);
            let _ = parse_preamble(&line);
        }
    }
}
