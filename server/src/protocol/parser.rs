//! Incremental request parser: multibulk (`*N\r\n$L\r\n...`) and inline (`SET a b\r\n`).
//!
//! Error texts and limits follow Redis 7.0's `processMultibulkBuffer` / `processInlineBuffer`,
//! because clients and tests match on them.

use std::fmt;

/// Longest inline request, and longest `*N` / `$L` header line, before the client is cut off.
const INLINE_MAX: usize = 64 * 1024;
/// Before AUTH, a client may not announce more than this many arguments (Redis's guard
/// against unauthenticated memory exhaustion).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// Before AUTH, a client may not announce bulks longer than this.
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// The limits that depend on configuration and on the client's authentication state.
#[derive(Clone, Copy, Debug)]
pub struct ProtoLimits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// True while the client still has to AUTH: announced lengths are capped harder.
    pub auth_required: bool,
}

impl Default for ProtoLimits {
    fn default() -> Self {
        ProtoLimits {
            max_bulk_len: 512 * 1024 * 1024,
            auth_required: false,
        }
    }
}

/// A request the connection must refuse; the connection is closed after the error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl ParseError {
    fn new(msg: impl Into<String>) -> Self {
        ParseError(msg.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// The arguments of one command: ranges into a byte buffer (the connection's input buffer for
/// multibulk requests, the parser's scratch buffer for unescaped inline requests).
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    /// Arguments over `buf`, each `(start, end)` a range inside it.
    pub fn new(buf: &'a [u8], ranges: &'a [(usize, usize)]) -> Self {
        Args { buf, ranges }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The `i`th argument; panics when out of range, which the arity check rules out.
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        &self.buf[s..e]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges.iter().map(move |&(s, e)| &buf[s..e])
    }

    /// Arguments from `from` on, as a new view.
    pub fn slice_from(&self, from: usize) -> Args<'a> {
        Args {
            buf: self.buf,
            ranges: &self.ranges[from.min(self.ranges.len())..],
        }
    }
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Where the parser stands inside the command it is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between commands.
    Idle,
    /// Inside a multibulk request with this many arguments still to read.
    Multibulk { left: i64 },
}

/// Parses requests out of a growing input buffer without re-reading what it already parsed.
///
/// The caller appends bytes to its buffer, calls [`Parser::next`] until it returns `Ok(None)`,
/// then drops the first [`Parser::consumed`] bytes and calls [`Parser::compact`] with that count.
#[derive(Debug)]
pub struct Parser {
    state: State,
    /// Next byte to look at.
    pos: usize,
    /// End of the last complete command: everything before it may be dropped.
    consumed: usize,
    ranges: Vec<(usize, usize)>,
    /// Unescaped inline arguments live here.
    scratch: Vec<u8>,
    /// Set when the last command came from `scratch`.
    inline: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            state: State::Idle,
            pos: 0,
            consumed: 0,
            ranges: Vec::with_capacity(8),
            scratch: Vec::new(),
            inline: false,
        }
    }

    /// Bytes at the front of the buffer that belong to commands already returned.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Tells the parser that the first `n` bytes (at most [`Parser::consumed`]) were removed.
    pub fn compact(&mut self, n: usize) {
        debug_assert!(n <= self.consumed);
        self.pos -= n;
        self.consumed -= n;
        if self.state == State::Idle {
            // The ranges describe the command last returned, which was just dropped (the
            // caller stopped right after it: QUIT, or a command that blocks).
            self.ranges.clear();
        } else if !self.inline {
            for r in &mut self.ranges {
                r.0 -= n;
                r.1 -= n;
            }
        }
    }

    /// True when a command has been started but not finished (used to size reads).
    pub fn in_progress(&self) -> bool {
        self.state != State::Idle
    }

    /// The next complete command in `buf`, `Ok(None)` when more bytes are needed.
    ///
    /// Empty commands (`*0`, blank inline lines) are skipped, as Redis does.
    ///
    /// # Errors
    /// A [`ParseError`] whose text Redis would send; the connection must then be closed.
    pub fn next<'a>(
        &'a mut self,
        buf: &'a [u8],
        limits: ProtoLimits,
    ) -> Result<Option<Args<'a>>, ParseError> {
        loop {
            if self.state == State::Idle {
                self.ranges.clear();
                self.inline = false;
                if self.pos >= buf.len() {
                    return Ok(None);
                }
                if buf[self.pos] == b'*' {
                    let Some((n, after)) = header(buf, self.pos, "too big mbulk count string")?
                    else {
                        return Ok(None);
                    };
                    let n = match n {
                        Some(n) if n <= i64::from(i32::MAX) => n,
                        _ => return Err(ParseError::new("invalid multibulk length")),
                    };
                    if n > UNAUTH_MAX_MULTIBULK && limits.auth_required {
                        return Err(ParseError::new("unauthenticated multibulk length"));
                    }
                    self.pos = after;
                    if n <= 0 {
                        self.consumed = self.pos;
                        continue;
                    }
                    self.state = State::Multibulk { left: n };
                } else {
                    match self.inline_command(buf)? {
                        None => return Ok(None),
                        Some(true) => return Ok(Some(Args::new(&self.scratch, &self.ranges))),
                        Some(false) => continue,
                    }
                }
            }
            let State::Multibulk { left } = &mut self.state else {
                continue;
            };
            while *left > 0 {
                if self.pos >= buf.len() {
                    return Ok(None);
                }
                if buf[self.pos] != b'$' {
                    return Err(ParseError::new(format!(
                        "expected '$', got '{}'",
                        char::from(buf[self.pos])
                    )));
                }
                let Some((len, after)) = header(buf, self.pos, "too big bulk count string")? else {
                    return Ok(None);
                };
                let len = match len {
                    Some(l) if l >= 0 && l <= limits.max_bulk_len => l,
                    _ => return Err(ParseError::new("invalid bulk length")),
                };
                if len > UNAUTH_MAX_BULK && limits.auth_required {
                    return Err(ParseError::new("unauthenticated bulk length"));
                }
                // The length fits in memory only if the bytes are really here; nothing is
                // reserved on the header's word.
                let len = len as usize;
                if buf.len() - after < len + 2 {
                    return Ok(None);
                }
                self.ranges.push((after, after + len));
                // Like Redis, the two bytes after the payload are skipped unchecked.
                self.pos = after + len + 2;
                *left -= 1;
            }
            self.state = State::Idle;
            self.consumed = self.pos;
            return Ok(Some(Args::new(buf, &self.ranges)));
        }
    }

    /// Reads one inline line. `Some(true)`: a command is in `scratch`; `Some(false)`: a blank
    /// line was skipped; `None`: the line is not complete yet.
    fn inline_command(&mut self, buf: &[u8]) -> Result<Option<bool>, ParseError> {
        let rest = &buf[self.pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > INLINE_MAX {
                return Err(ParseError::new("too big inline request"));
            }
            return Ok(None);
        };
        let mut line = &rest[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.scratch.clear();
        self.ranges.clear();
        split_inline(line, &mut self.scratch, &mut self.ranges)?;
        self.pos += nl + 1;
        self.consumed = self.pos;
        self.inline = true;
        Ok(Some(!self.ranges.is_empty()))
    }
}

/// Reads a `*N\r\n` or `$L\r\n` header at `at`. `Ok(None)`: incomplete. The inner `Option` is
/// `None` when the number is not a valid integer.
#[allow(clippy::type_complexity)]
fn header(
    buf: &[u8],
    at: usize,
    too_big: &str,
) -> Result<Option<(Option<i64>, usize)>, ParseError> {
    let rest = &buf[at..];
    let Some(cr) = memchr::memchr(b'\r', rest) else {
        if rest.len() > INLINE_MAX {
            return Err(ParseError::new(too_big));
        }
        return Ok(None);
    };
    // Redis wants the byte after '\r' to have arrived before it trusts the line.
    if cr + 1 >= rest.len() {
        return Ok(None);
    }
    Ok(Some((super::integer::parse_i64(&rest[1..cr]), at + cr + 2)))
}

/// Splits a line into words as Redis's `sdssplitargs` does (quotes and escapes as in an
/// inline command); `None` when quotes are unbalanced.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    split_inline(line, &mut out, &mut ranges).ok()?;
    Some(ranges.iter().map(|&(s, e)| out[s..e].to_vec()).collect())
}

/// Splits an inline line like Redis's `sdssplitargs`: spaces separate, `"..."` takes
/// `\n \r \t \b \a \\ \" \xHH` escapes, `'...'` takes `\'`; a closing quote must be followed by
/// a space or the end of the line.
fn split_inline(
    line: &[u8],
    out: &mut Vec<u8>,
    ranges: &mut Vec<(usize, usize)>,
) -> Result<(), ParseError> {
    let unbalanced = || ParseError::new("unbalanced quotes in request");
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let Some(&c) = line.get(i) else {
                    return Err(unbalanced());
                };
                if c == b'\\'
                    && line.get(i + 1) == Some(&b'x')
                    && i + 3 < line.len()
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    out.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
                i += 1;
            } else if in_sq {
                let Some(&c) = line.get(i) else {
                    return Err(unbalanced());
                };
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 1;
                } else if c == b'\'' {
                    if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
                i += 1;
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => out.push(c),
                }
                i += 1;
            }
        }
        ranges.push((start, out.len()));
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in chunks of the given sizes and collects every command or the error.
    fn parse_chunked(input: &[u8], chunks: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut parser = Parser::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        let mut sizes = chunks.iter().copied().cycle();
        while fed < input.len() {
            let n = sizes.next().unwrap_or(1).max(1).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
            while let Some(args) = parser.next(&buf, ProtoLimits::default())? {
                out.push(args.iter().map(<[u8]>::to_vec).collect());
            }
            let c = parser.consumed();
            buf.drain(..c);
            parser.compact(c);
        }
        Ok(out)
    }

    fn cmds(v: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        v.iter()
            .map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn compact_right_after_a_command() {
        // A client that blocks stops reading commands: the buffer is compacted while the
        // parser still holds the ranges of the command it returned last.
        let mut parser = Parser::new();
        let mut buf = b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\n".to_vec();
        assert!(
            parser
                .next(&buf, ProtoLimits::default())
                .expect("valid")
                .is_some()
        );
        let c = parser.consumed();
        buf.drain(..c);
        parser.compact(c);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let args = parser.next(&buf, ProtoLimits::default()).expect("valid");
        assert_eq!(args.map(|a| a.get(0).to_vec()), Some(b"PING".to_vec()));
    }

    #[test]
    fn multibulk_and_inline_mix() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\nPING\r\n\r\n*0\r\nGET  a\n";
        let got = parse_chunked(input, &[1000]).expect("valid");
        assert_eq!(got, cmds(&[&["SET", "a", ""], &["PING"], &["GET", "a"]]));
    }

    #[test]
    fn inline_quotes_and_escapes() {
        let got = parse_chunked(b"set \"a\\x41\\n\" 'it\\'s'\r\n", &[100]).expect("valid");
        assert_eq!(got, cmds(&[&["set", "aA\n", "it's"]]));
        for bad in [
            &b"\"abc\r\n"[..],
            b"set a \"b\r\n",
            b"echo \"a\"b\r\n",
            b"echo 'a\r\n",
        ] {
            assert_eq!(
                parse_chunked(bad, &[100])
                    .expect_err("unbalanced")
                    .to_string(),
                "Protocol error: unbalanced quotes in request"
            );
        }
    }

    #[test]
    fn errors_match_redis() {
        let cases: &[(&[u8], &str)] = &[
            (b"*2147483648\r\n", "invalid multibulk length"),
            (b"*abc\r\n", "invalid multibulk length"),
            (b"*01\r\n", "invalid multibulk length"),
            (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
            (b"*3\r\n$3\r\nSET\r\n$600000000\r\n", "invalid bulk length"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$+4\r\n", "invalid bulk length"),
        ];
        for (input, msg) in cases {
            let err = parse_chunked(input, &[1]).expect_err("must fail");
            assert_eq!(err.to_string(), format!("Protocol error: {msg}"));
        }
        let long = [b'x'; INLINE_MAX + 1];
        assert_eq!(
            parse_chunked(&long, &[4096]).expect_err("x").0,
            "too big inline request"
        );
        let mut mb = b"*".to_vec();
        mb.extend_from_slice(&[b'1'; INLINE_MAX + 1]);
        assert_eq!(
            parse_chunked(&mb, &[4096]).expect_err("x").0,
            "too big mbulk count string"
        );
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = Parser::new();
        let limits = ProtoLimits {
            auth_required: true,
            ..ProtoLimits::default()
        };
        let err = p.next(b"*11\r\n", limits).expect_err("too many args");
        assert_eq!(err.0, "unauthenticated multibulk length");
        let mut p = Parser::new();
        let err = p.next(b"*1\r\n$16385\r\n", limits).expect_err("too long");
        assert_eq!(err.0, "unauthenticated bulk length");
    }

    #[test]
    fn huge_header_allocates_nothing() {
        let mut p = Parser::new();
        let input = b"*2147483647\r\n$536870912\r\n";
        assert!(
            p.next(input, ProtoLimits::default())
                .expect("valid so far")
                .is_none()
        );
        assert!(p.ranges.capacity() <= 8);
        assert!(p.in_progress());
    }

    fn encode(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            out.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        /// However the bytes are split into reads, the same commands come out.
        #[test]
        fn split_reads_do_not_matter(
            commands in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6), 1..8),
            chunks in prop::collection::vec(1usize..17, 1..10),
        ) {
            let input = encode(&commands);
            prop_assert_eq!(parse_chunked(&input, &chunks).expect("valid"), commands);
        }

        /// Garbage never panics; it yields commands or a protocol error.
        #[test]
        fn garbage_never_panics(input in prop::collection::vec(any::<u8>(), 0..512), chunks in prop::collection::vec(1usize..64, 1..5)) {
            let _ = parse_chunked(&input, &chunks);
        }

        /// Garbage built from protocol fragments never panics either.
        #[test]
        fn fragment_garbage_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
            &b"*"[..], b"$", b"\r\n", b"\n", b"-1", b"3", b"0", b"2147483647", b"\"", b"'", b"\\x4", b"a", b" ",
        ]), 0..64)) {
            let input: Vec<u8> = parts.concat();
            let _ = parse_chunked(&input, &[3]);
        }
    }
}
