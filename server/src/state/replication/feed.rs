//! The feed: executed write commands turned into the replication stream in execution order,
//! with the SELECT rules of Redis 7.0 (a SELECT before the first command and whenever the
//! database changes) and MULTI/EXEC around a transaction of more than one write.
//!
//! The stream only accumulates while something consumes it (a backlog, an attached replica,
//! a test); with no consumer, Redis neither keeps the bytes nor advances the offset, and
//! neither do we. On a replica the stream is the master's bytes proxied verbatim
//! ([`Feed::feed_raw`]), never commands of its own.
//!
//! The append-only file is the feed's second consumer: the same commands in the same
//! order, with its own SELECT state (Redis's `aof_selected_db`) and, with
//! `aof-timestamp-enabled`, a `#TS:<unix>` annotation when the second changes. A replica
//! writes what it applies from its master (and its own writes) to its AOF only
//! ([`Scope::Aof`]).

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
    pending: Option<Vec<Held>>,
    /// The append-only file's buffer, while the AOF is on.
    aof: Option<AofSink>,
}

/// A command held in an atomic group: its database, arguments and consumers.
type Held = (usize, Vec<Vec<u8>>, Scope);

/// Which consumers a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Replicas and the AOF (a master's commands).
    All,
    /// The AOF only (a replica's: its stream is its master's bytes).
    Aof,
}

/// The AOF's side of the feed (Redis's `aof_buf`).
#[derive(Debug, Default)]
struct AofSink {
    buf: Vec<u8>,
    last_db: Option<usize>,
    /// Write `#TS:` annotations, and the second of the last one.
    timestamps: bool,
    last_ts: u64,
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

    /// Starts collecting the AOF's buffer (the next command is preceded by a SELECT).
    pub fn attach_aof(&mut self, timestamps: bool) {
        self.aof = Some(AofSink {
            timestamps,
            ..AofSink::default()
        });
    }

    /// Stops collecting the AOF's buffer, dropping what was not taken.
    pub fn detach_aof(&mut self) {
        self.aof = None;
    }

    /// Whether the AOF's buffer is collected.
    pub fn aof_attached(&self) -> bool {
        self.aof.is_some()
    }

    /// The next AOF command is preceded by a SELECT (a new incremental file begins).
    pub fn aof_forget_db(&mut self) {
        if let Some(a) = self.aof.as_mut() {
            a.last_db = None;
        }
    }

    /// `aof-timestamp-enabled` changed.
    pub fn aof_timestamps(&mut self, on: bool) {
        if let Some(a) = self.aof.as_mut() {
            a.timestamps = on;
        }
    }

    /// Takes what the AOF's buffer accumulated since the last call.
    pub fn take_aof(&mut self) -> Vec<u8> {
        self.aof
            .as_mut()
            .map(|a| std::mem::take(&mut a.buf))
            .unwrap_or_default()
    }

    /// Whether the AOF's buffer holds bytes not taken yet.
    pub fn aof_pending(&self) -> bool {
        self.aof.as_ref().is_some_and(|a| !a.buf.is_empty())
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
        let replicated = cmds.iter().filter(|c| c.2 == Scope::All).count();
        let wrap = replicated > 1;
        let first = |scope: Option<Scope>| {
            cmds.iter()
                .find(|c| scope.is_none_or(|s| c.2 == s))
                .map_or(0, |c| c.0)
        };
        if wrap {
            self.emit_stream(first(Some(Scope::All)), &[b"MULTI"]);
        }
        for (db, argv, scope) in &cmds {
            if *scope == Scope::All {
                self.emit_stream(*db, argv);
            }
        }
        if wrap {
            let db = self.last_db.unwrap_or(0);
            self.emit_stream(db, &[b"EXEC"]);
        }
        let aof_wrap = cmds.len() > 1;
        if aof_wrap {
            self.emit_aof(first(None), &[b"MULTI"]);
        }
        for (db, argv, _) in &cmds {
            self.emit_aof(*db, argv);
        }
        if aof_wrap {
            let db = self.aof.as_ref().and_then(|a| a.last_db).unwrap_or(0);
            self.emit_aof(db, &[b"EXEC"]);
        }
    }

    /// Whether fed commands are kept (a consumer is attached or a transaction is open): lets
    /// the executor skip building the argument list when nobody will read it.
    pub fn is_active(&self) -> bool {
        self.stream.is_some() || self.pending.is_some() || self.aof.is_some()
    }

    /// Appends one command executed in database `db`, for replicas and the AOF.
    pub fn feed<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        self.feed_to(db, argv, Scope::All);
    }

    /// Appends one command executed in database `db` for the consumers of `scope`.
    pub fn feed_to<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A], scope: Scope) {
        if let Some(p) = self.pending.as_mut() {
            p.push((
                db,
                argv.iter().map(|a| a.as_ref().to_vec()).collect(),
                scope,
            ));
            return;
        }
        if scope == Scope::All {
            self.emit_stream(db, argv);
        }
        self.emit_aof(db, argv);
    }

    /// Writes one command into the AOF's buffer, after a timestamp and a SELECT as needed.
    fn emit_aof<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
        let Some(a) = self.aof.as_mut() else {
            return;
        };
        if a.timestamps {
            let now = crate::clock::now_ms() / 1000;
            if now > a.last_ts {
                a.last_ts = now;
                a.buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
            }
        }
        if a.last_db != Some(db) {
            let n = itoa::Buffer::new().format(db).to_owned();
            encode(&mut a.buf, &[b"SELECT".as_slice(), n.as_bytes()]);
            a.last_db = Some(db);
        }
        encode(&mut a.buf, argv);
    }

    /// Writes one command into the replication stream, after a SELECT as needed.
    fn emit_stream<A: AsRef<[u8]>>(&mut self, db: usize, argv: &[A]) {
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
    fn the_aof_has_its_own_select_and_takes_a_replica_s_commands() {
        let mut f = Feed::default();
        f.attach();
        f.feed(0, &[b"SET".as_slice(), b"a", b"1"]);
        f.attach_aof(false);
        f.feed(0, &[b"DEL".as_slice(), b"a"]);
        assert_eq!(
            f.take_aof(),
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*2\r\n$3\r\nDEL\r\n$1\r\na\r\n",
            "the AOF selects its database though the stream already did"
        );
        f.drain();
        // A replica's own commands: the AOF only, wrapped on their own.
        f.begin_atomic();
        f.feed_to(2, &[b"INCR".as_slice(), b"x"], Scope::Aof);
        f.feed_to(2, &[b"INCR".as_slice(), b"y"], Scope::Aof);
        f.end_atomic();
        assert!(f.drain().is_empty(), "nothing for the replicas");
        let aof = String::from_utf8(f.take_aof()).expect("ascii");
        assert!(
            aof.starts_with("*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*1\r\n$5\r\nMULTI\r\n"),
            "{aof}"
        );
        assert!(aof.ends_with("*1\r\n$4\r\nEXEC\r\n"), "{aof}");
        f.detach_aof();
        f.feed(0, &[b"SET".as_slice(), b"b", b"2"]);
        assert!(f.take_aof().is_empty());
    }

    #[test]
    fn timestamps_precede_the_first_command_of_a_second() {
        let mut f = Feed::default();
        f.attach_aof(true);
        f.feed(0, &[b"SET".as_slice(), b"a", b"1"]);
        f.feed(0, &[b"SET".as_slice(), b"b", b"1"]);
        let aof = String::from_utf8(f.take_aof()).expect("ascii");
        assert!(aof.starts_with("#TS:"), "{aof}");
        // Both commands ran within a second or two: one annotation, or two at a boundary.
        assert!((1..=2).contains(&aof.matches("#TS:").count()), "{aof}");
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
