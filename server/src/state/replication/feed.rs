//! The feed: executed write commands turned into the replication stream in execution order,
//! with the SELECT rules of Redis 7.0 (a SELECT before the first command and whenever the
//! database changes) and MULTI/EXEC around a transaction of more than one write.
//!
//! The stream only accumulates while something consumes it (a backlog, an attached replica,
//! a test); with no consumer, Redis neither keeps the bytes nor advances the offset, and
//! neither do we. On a replica the stream is the master's bytes proxied verbatim
//! ([`Feed::feed_raw`]), never commands of its own.

/// The replication stream producer.
#[derive(Debug, Default)]
pub struct Feed {
    /// Database of the last command fed, so SELECT is only sent on a change.
    last_db: Option<usize>,
    /// The encoded stream, when someone consumes it.
    stream: Option<Vec<u8>>,
    /// Bytes fed since the stream was attached (the master replication offset's increment).
    pub offset: u64,
    /// Inside EXEC: commands held back so that more than one goes out wrapped in MULTI/EXEC.
    pending: Option<Vec<(usize, Vec<Vec<u8>>)>>,
}

impl Feed {
    /// Starts collecting the stream (the next command is preceded by a SELECT).
    pub fn attach(&mut self) {
        self.stream = Some(Vec::new());
        self.last_db = None;
    }

    /// Appends bytes that already are stream (a PING, a GETACK, or on a replica the master's
    /// stream proxied verbatim); they count in the offset but never trigger a SELECT.
    pub fn feed_raw(&mut self, bytes: &[u8]) {
        if let Some(out) = self.stream.as_mut() {
            out.extend_from_slice(bytes);
        }
        self.offset += bytes.len() as u64;
    }

    /// The next command is preceded by a SELECT (after a full sync point or a promotion).
    pub fn forget_db(&mut self) {
        self.last_db = None;
    }

    /// Takes what accumulated since the last call.
    pub fn drain(&mut self) -> Vec<u8> {
        self.stream.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts an atomic group (EXEC): commands fed until [`Feed::end_atomic`] reach replicas
    /// as one MULTI/EXEC block when there is more than one, as Redis 7.0 propagates them.
    pub fn begin_atomic(&mut self) {
        self.pending = Some(Vec::new());
    }

    /// Whether an atomic group is open (inside EXEC).
    pub fn in_atomic(&self) -> bool {
        self.pending.is_some()
    }

    pub fn end_atomic(&mut self) {
        let Some(cmds) = self.pending.take() else {
            return;
        };
        let wrap = cmds.len() > 1;
        if wrap {
            self.feed(cmds[0].0, &[b"MULTI"]);
        }
        for (db, argv) in &cmds {
            self.feed(*db, argv);
        }
        if wrap {
            let db = self.last_db.unwrap_or(0);
            self.feed(db, &[b"EXEC"]);
        }
    }

    /// Whether fed commands are kept (a consumer is attached or a transaction is open): lets
    /// the executor skip building the argument list when nobody will read it.
    pub fn is_active(&self) -> bool {
        self.stream.is_some() || self.pending.is_some()
    }

    /// Appends one command executed in database `db`.
    pub fn feed<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        if let Some(p) = self.pending.as_mut() {
            p.push((db, argv.iter().map(|a| a.as_ref().to_vec()).collect()));
            return;
        }
        let Some(out) = self.stream.as_mut() else {
            return;
        };
        let start = out.len();
        if self.last_db != Some(db) {
            let n = itoa::Buffer::new().format(db).to_owned();
            encode(out, &[b"SELECT".as_slice(), n.as_bytes()]);
            self.last_db = Some(db);
        }
        encode(out, argv);
        self.offset += (out.len() - start) as u64;
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_only_on_db_change() {
        let mut f = Feed::default();
        f.feed(0, &[b"SET".as_slice(), b"a", b"1"]);
        assert!(f.drain().is_empty(), "no consumer, nothing kept");
        f.attach();
        f.feed(0, &[b"SET".as_slice(), b"a", b"1"]);
        f.feed(0, &[b"DEL".as_slice(), b"a"]);
        f.feed(3, &[b"DEL".as_slice(), b"b"]);
        let s = f.drain();
        assert_eq!(
            s,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n\
              *2\r\n$3\r\nDEL\r\n$1\r\na\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb\r\n"
        );
        assert_eq!(f.offset, s.len() as u64);
    }

    #[test]
    fn transactions_wrap_only_several_commands() {
        let mut f = Feed::default();
        f.attach();
        f.begin_atomic();
        f.feed(0, &[b"INCR".as_slice(), b"a"]);
        f.end_atomic();
        assert_eq!(
            f.drain(),
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n"
        );
        f.begin_atomic();
        f.feed(0, &[b"INCR".as_slice(), b"a"]);
        f.feed(0, &[b"INCR".as_slice(), b"b"]);
        f.end_atomic();
        let s = String::from_utf8(f.drain()).expect("ascii");
        assert!(s.starts_with("*1\r\n$5\r\nMULTI\r\n"), "{s}");
        assert!(s.ends_with("*1\r\n$4\r\nEXEC\r\n"), "{s}");
    }
}
