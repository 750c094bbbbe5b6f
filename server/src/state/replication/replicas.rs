//! The replicas attached to this master, one [`Link`] each: the phase INFO shows, the
//! acknowledged offset, and the output buffer the stream is pushed into on the main thread
//! (the link's task in `crate::replication::master` writes it to the socket).

use super::transfer::{Target, Transfer};
use crate::client::ClientShared;
use crate::config::BufferLimit;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tracing::warn;

/// The phase of one replica on the master, as INFO `slaveN:...,state=` shows it.
///
/// Transitions (Redis's `replstate`):
/// - PSYNC accepted (`+CONTINUE`) -> `Online` directly;
/// - full sync -> `WaitBgsave` (waiting for the snapshot, during `repl-diskless-sync-delay`,
///   and for the socket target while the RDB is streamed) -> `SendBulk` (disk target: the
///   file is being sent) -> `Online`; the socket target goes `WaitBgsave` -> `Online` and
///   holds the stream back until the replica's first `REPLCONF ACK`.
///
/// Cancellation: in any phase the link ends when the socket fails, `CLIENT KILL` marks it,
/// the output-buffer limit is exceeded, `repl-timeout` passes without an ACK, or the server
/// becomes a replica of a new master; the replica is then removed from the list and its
/// buffered stream discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    WaitBgsave,
    SendBulk,
    Online,
}

impl ReplicaState {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// One replica attached to this master.
#[derive(Debug)]
pub struct Link {
    pub client_id: u64,
    pub ip: String,
    pub port: u16,
    pub state: Cell<ReplicaState>,
    /// Last offset the replica acknowledged (`repl_ack_off`).
    pub ack_off: Cell<u64>,
    /// Unix ms of the last ACK or byte from the replica (`repl_ack_time`).
    pub ack_ms: Cell<u64>,
    /// Stream bytes not yet written to the socket.
    pub(crate) out: RefCell<Vec<u8>>,
    /// Whether the stream is buffered for this replica: from the snapshot point on.
    pub(crate) accumulating: Cell<bool>,
    /// Since when (Unix ms) the buffer has been over the soft limit.
    pub(crate) soft_since: Cell<Option<u64>>,
    pub(crate) shared: Rc<ClientShared>,
    /// Unix ms of the SYNC/PSYNC: `repl-diskless-sync-delay` counts from here.
    pub asked_ms: u64,
    /// Waiting in `wait_bgsave` for a socket-target transfer to take it.
    pub(crate) socket_wait: Cell<bool>,
    /// The transfer that took it, with its queue.
    pub(crate) transfer: RefCell<Option<(Rc<Transfer>, Rc<Target>)>>,
    /// The disk-target BGSAVE another replica started took this one along while it waited
    /// for a socket transfer: the job id, replid and offset for `+FULLRESYNC`.
    pub(crate) joined: RefCell<Option<(u64, String, u64)>>,
}

impl Link {
    /// Buffers stream bytes for the replica and enforces `client-output-buffer-limit
    /// replica` (hard: at once; soft: after `soft_seconds` over it; 0 disables a limit).
    pub fn push(&self, bytes: &[u8], limit: BufferLimit, now_ms: u64) {
        if !self.accumulating.get() || self.shared.killed.get() {
            return;
        }
        let len = {
            let mut out = self.out.borrow_mut();
            out.extend_from_slice(bytes);
            out.len() as u64
        };
        self.shared.info.borrow_mut().omem = len as usize;
        self.check_limit(len, limit, now_ms);
        self.shared.notify.notify_one();
    }

    /// Applies the limits to the current buffer (also called by the cron for the soft one).
    pub fn check_limit(&self, len: u64, limit: BufferLimit, now_ms: u64) {
        // Already on its way out: one log line per replica, not one per cron tick.
        if self.shared.killed.get() {
            return;
        }
        let hard = limit.hard > 0 && len >= limit.hard;
        let soft = limit.soft > 0 && len >= limit.soft;
        let soft_hit = if soft {
            let since = *self.soft_since.get().get_or_insert(now_ms);
            self.soft_since.set(Some(since));
            now_ms - since >= limit.soft_seconds * 1000
        } else {
            self.soft_since.set(None);
            false
        };
        if hard || soft_hit {
            let info = self.shared.info.borrow();
            warn!(
                "Client id={} addr={} laddr={} fd={} name= age=0 idle=0 flags=S db=0 omem={} cmd=psync scheduled to be closed ASAP for overcoming of output buffer limits.",
                info.id, info.addr, info.laddr, info.fd, len
            );
            self.shared.killed.set(true);
            self.shared.notify.notify_one();
        }
    }

    pub fn buffered(&self) -> u64 {
        self.out.borrow().len() as u64
    }

    /// Whether the link waits for a socket-target transfer to start.
    pub fn waits_for_socket(&self) -> bool {
        self.socket_wait.get() && self.transfer.borrow().is_none()
    }

    /// Joins a transfer at its snapshot instant: from now on the stream is buffered for the
    /// replica.
    pub fn assign(&self, transfer: Rc<Transfer>, target: Rc<Target>) {
        self.accumulating.set(true);
        self.socket_wait.set(false);
        *self.transfer.borrow_mut() = Some((transfer, target));
        self.shared.notify.notify_one();
    }

    /// Online after a full sync (Redis's `replicaPutOnline`): `repl-timeout` for ACKs counts
    /// from now, not from the SYNC, however long the transfer took.
    pub(crate) fn put_online(&self) {
        self.state.set(ReplicaState::Online);
        self.ack_ms.set(crate::clock::now_ms());
    }

    pub fn is_killed(&self) -> bool {
        self.shared.killed.get()
    }

    /// Makes the link's task drop the connection.
    pub fn kill(&self) {
        self.shared.killed.set(true);
        self.shared.notify.notify_one();
    }
}
