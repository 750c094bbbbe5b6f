//! The replication state of the server: identity ([`ids`]), the backlog ([`backlog`]), the
//! stream producer ([`feed`]), the replicas attached to this master ([`replicas`]), the
//! running diskless transfer ([`transfer`]) and the link to our own master
//! ([`master_link`]). The behaviour that drives them (link tasks, the transfer driver, the
//! replica's handshake and loader) is in `crate::replication`; nothing here does I/O.

pub mod backlog;
pub mod feed;
pub mod ids;
pub mod master_link;
pub mod replicas;
pub mod transfer;

use backlog::Backlog;
use ids::ReplIds;
use master_link::MasterLink;
use replicas::{Link, ReplicaState};
use std::rc::Rc;
use transfer::Transfer;

/// The replication state of the server.
#[derive(Debug, Default)]
pub struct Repl {
    pub ids: ReplIds,
    pub backlog: Option<Backlog>,
    /// Replicas attached to us, in attach order (INFO's `slaveN`).
    pub replicas: Vec<Rc<Link>>,
    /// The running socket-target transfer (it owns the keyspace snapshot).
    pub transfer: Option<Rc<Transfer>>,
    /// Unix ms since when no replica is attached (`repl-backlog-ttl`).
    pub no_replicas_since_ms: u64,
    /// Unix ms of the last PING fed into the stream.
    pub last_ping_ms: u64,
    /// Our master, while we are a replica.
    pub master: Option<MasterLink>,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    /// Clients blocked in WAIT, woken when an ACK arrives.
    pub waiters: Vec<u64>,
    /// A WAIT blocked: `REPLCONF GETACK *` goes into the stream at the next pump, after the
    /// command (so the client's target offset does not include it, as in Redis).
    pub want_getack: bool,
    /// A FAILOVER under way.
    pub failover: Option<Failover>,
}

/// A coordinated FAILOVER (Redis's `failover_state` other than `no-failover`): writes are
/// paused until a replica has the whole stream, then this master follows it and asks it,
/// with `PSYNC ... FAILOVER`, to take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Following the target, PSYNC FAILOVER sent or about to be (`failover-in-progress`);
    /// else waiting for a replica to catch up (`waiting-for-sync`).
    pub in_progress: bool,
    /// TO host port, or the replica found caught up.
    pub target: Option<(String, u16)>,
    /// TIMEOUT: Unix ms after which it is aborted (or forced).
    pub end_ms: Option<u64>,
    pub force: bool,
}

impl Failover {
    /// INFO replication's `master_failover_state`.
    pub fn state_name(failover: Option<&Failover>) -> &'static str {
        match failover {
            None => "no-failover",
            Some(f) if f.in_progress => "failover-in-progress",
            Some(_) => "waiting-for-sync",
        }
    }
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
            .filter(|l| l.state.get() == ReplicaState::Online && l.ack_off.get() >= offset)
            .count()
    }

    /// Online replicas that acknowledged within `max_lag` seconds (`min-replicas-to-write`).
    pub fn good_replicas(&self, max_lag: u64) -> usize {
        let now = crate::clock::now_ms();
        self.replicas
            .iter()
            .filter(|l| {
                l.state.get() == ReplicaState::Online
                    && now.saturating_sub(l.ack_ms.get()) / 1000 <= max_lag
            })
            .count()
    }

    pub fn is_replica(&self) -> bool {
        self.master.is_some()
    }
}
