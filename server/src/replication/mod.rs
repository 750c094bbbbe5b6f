//! Replication, Redis 7.0 and PSYNC2 compatible. This module holds the feed, which turns
//! executed write commands into the replication stream in execution order with the SELECT
//! rules of Redis 7.0 (a SELECT before the first command and whenever the database
//! changes), and [`Repl`], the replication state of the server: identity ([`ids`]), the
//! backlog ([`backlog`]), the replicas of this master ([`master`]) and the link to our own
//! master ([`replica`]). [`pump`] moves the stream from the feed to the backlog and the
//! replicas; [`supervise`] is the replication cron.
//!
//! The stream only accumulates while something consumes it (a backlog, an attached replica,
//! a test); with no consumer, Redis neither keeps the bytes nor advances the offset, and
//! neither do we. On a replica the stream is the master's bytes proxied verbatim
//! ([`Feed::feed_raw`]), never commands of its own.

pub mod backlog;
pub mod fanout;
pub mod framing;
pub mod ids;
pub mod master;
pub mod replica;
pub mod transfer;

use crate::net::Shared;
use crate::server::Server;
use backlog::Backlog;
use ids::ReplIds;
use std::rc::Rc;
use std::time::Duration;
use tracing::info;

/// The replication state of the server.
#[derive(Debug, Default)]
pub struct Repl {
    pub ids: ReplIds,
    pub backlog: Option<Backlog>,
    /// Replicas attached to us, in attach order (INFO's `slaveN`).
    pub replicas: Vec<Rc<master::Link>>,
    /// The running socket-target transfer (it owns the keyspace snapshot).
    pub transfer: Option<Rc<fanout::Transfer>>,
    /// Unix ms since when no replica is attached (`repl-backlog-ttl`).
    pub no_replicas_since_ms: u64,
    /// Unix ms of the last PING fed into the stream.
    pub last_ping_ms: u64,
    /// Our master, while we are a replica.
    pub master: Option<replica::MasterLink>,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    /// Clients blocked in WAIT, woken when an ACK arrives.
    pub waiters: Vec<u64>,
    /// A WAIT blocked: `REPLCONF GETACK *` goes into the stream at the next pump, after the
    /// command (so the client's target offset does not include it, as in Redis).
    pub want_getack: bool,
}

/// Memory holding the replication stream, as INFO memory reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferMemory {
    /// The backlog's bytes (`mem_replication_backlog`).
    pub backlog: u64,
    /// Stream bytes buffered for replicas and not yet written to them (`mem_clients_slaves`:
    /// the sum of their `omem`).
    pub replicas: u64,
}

impl BufferMemory {
    /// `mem_total_replication_buffers`. Redis 7.0 keeps one buffer that the backlog and the
    /// replicas share, so its total is the longer of the two spans; here the backlog and
    /// each replica hold their own copy, and the total is what is actually held: their sum.
    pub fn total(&self) -> u64 {
        self.backlog + self.replicas
    }
}

impl Repl {
    /// What the backlog and the replicas' output buffers hold right now.
    pub fn buffer_memory(&self) -> BufferMemory {
        BufferMemory {
            backlog: self.backlog.as_ref().map_or(0, Backlog::histlen),
            replicas: self.replicas.iter().map(|l| l.buffered()).sum(),
        }
    }

    /// Creates the backlog at `master_offset`. On a master this starts a new history
    /// (new replid, no replid2), as `syncCommand` does for the first replica; a replica keeps
    /// the history it just adopted from its master.
    pub fn create_backlog(&mut self, master_offset: u64, size: u64, new_history: bool) {
        if new_history {
            self.ids.reset();
        }
        self.backlog = Some(Backlog::new(master_offset, size));
    }

    /// Drops every attached replica (they reconnect and resynchronize).
    pub fn kill_replicas(&self) {
        for l in &self.replicas {
            l.kill();
        }
    }

    /// Online replicas whose acknowledged offset reached `offset` (WAIT).
    pub fn acked(&self, offset: u64) -> usize {
        self.replicas
            .iter()
            .filter(|l| l.state.get() == master::ReplicaState::Online && l.ack_off.get() >= offset)
            .count()
    }

    /// Online replicas that acknowledged within `max_lag` seconds (`min-replicas-to-write`).
    pub fn good_replicas(&self, max_lag: u64) -> usize {
        let now = crate::clock::now_ms();
        self.replicas
            .iter()
            .filter(|l| {
                l.state.get() == master::ReplicaState::Online
                    && now.saturating_sub(l.ack_ms.get()) / 1000 <= max_lag
            })
            .count()
    }

    pub fn is_replica(&self) -> bool {
        self.master.is_some()
    }
}

/// Moves the stream accumulated by the feed into the backlog and every replica's buffer,
/// in order. Called after each batch of commands and by the cron, and at a synchronization
/// point before the offset is read, so the offset always covers exactly the bytes delivered.
pub fn pump(srv: &mut Server) {
    if std::mem::take(&mut srv.repl.want_getack) && !srv.repl.replicas.is_empty() {
        srv.feed
            .feed_raw(b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n");
    }
    let bytes = srv.feed.drain();
    if bytes.is_empty() {
        return;
    }
    if let Some(b) = srv.repl.backlog.as_mut() {
        b.append(&bytes);
    }
    let limit = srv.config.client_output_buffer_limit[1];
    let now = crate::clock::now_ms();
    for l in &srv.repl.replicas {
        l.push(&bytes, limit, now);
    }
}

/// The replication cron (10 times a second): PINGs to replicas every
/// `repl-ping-replica-period`, the soft output-buffer limit, backlog resizing and
/// `repl-backlog-ttl`, and starting the link task when a master is configured.
pub async fn supervise(state: Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cron(&state);
        fanout::maybe_start(&state);
    }
}

/// One tick of the replication cron.
fn cron(state: &Shared) {
    let mut srv = state.borrow_mut();
    let srv = &mut *srv;
    let now = crate::clock::now_ms();
    let size = srv.config.repl_backlog_size;
    if let Some(b) = srv.repl.backlog.as_mut()
        && b.size() as u64 != size.max(16 * 1024)
    {
        b.resize(size);
    }
    if !srv.repl.is_replica()
        && !srv.repl.replicas.is_empty()
        && now.saturating_sub(srv.repl.last_ping_ms)
            >= srv.config.repl_ping_replica_period.max(1) * 1000
    {
        srv.repl.last_ping_ms = now;
        srv.feed.feed_raw(b"*1\r\n$4\r\nping\r\n");
    }
    pump(srv);
    let limit = srv.config.client_output_buffer_limit[1];
    for l in &srv.repl.replicas {
        l.check_limit(l.buffered(), limit, now);
    }
    let ttl = srv.config.repl_backlog_ttl;
    if !srv.repl.is_replica()
        && srv.repl.replicas.is_empty()
        && srv.repl.backlog.is_some()
        && ttl > 0
        && now.saturating_sub(srv.repl.no_replicas_since_ms) >= ttl * 1000
    {
        info!("Replication backlog freed after {ttl} seconds without connected replicas.");
        srv.repl.backlog = None;
        srv.repl.ids.reset();
    }
    // A master restarted from a dump with replication AUX fields keeps that history as
    // replid2, so its replicas can continue partially (Redis's `loadDataFromDisk`).
    if srv.repl.master.is_none()
        && let Some((id, off)) = srv.persistence.loaded_repl.take()
        && off >= 0
    {
        srv.repl.ids.replid2 = id;
        srv.repl.ids.second_offset = off + 1;
        srv.feed.offset = off as u64;
        srv.feed.attach();
        srv.repl.create_backlog(off as u64, size, false);
        srv.repl.no_replicas_since_ms = now;
    }
    if let Some(m) = srv.repl.master.as_mut()
        && m.task.is_none()
    {
        let h = tokio::task::spawn_local(replica::run(state.clone()));
        m.task = Some(h.abort_handle());
    }
}

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
