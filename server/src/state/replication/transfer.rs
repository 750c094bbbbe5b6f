//! The running diskless (socket target) transfer: one keyspace snapshot and one RDB stream
//! shared by every replica it took, with a queue of chunks per replica. `crate::replication::fanout`
//! starts and drives it; aborting it is a method of the state ([`crate::state::Server::abort_transfer`]),
//! so persistence (FLUSHALL, SHUTDOWN) can kill it without importing replication's behaviour.

use crate::rdb::producer::RdbProducer;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use tokio::sync::Notify;

/// Chunks (of about `save::STEP_BYTES`) a replica may have queued before the producer
/// waits for it.
pub const QUEUE_CHUNKS: usize = 8;

/// How one replica's part of a transfer ended, as its link task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// More chunks will come.
    Running,
    /// Every chunk (trailer and EOF mark included) is queued.
    Complete,
    /// The transfer was aborted or failed: the replica must be dropped.
    Failed,
}

/// One replica's view of the transfer.
#[derive(Debug)]
pub struct Target {
    pub(crate) queue: RefCell<VecDeque<Rc<Vec<u8>>>>,
    pub(crate) outcome: Cell<Outcome>,
    /// The link gave up (socket error, timeout, kill): the driver no longer waits for it.
    pub(crate) dropped: Cell<bool>,
    /// Wakes the link task when a chunk is queued or the outcome changes.
    pub ready: Notify,
}

impl Target {
    pub(crate) fn new() -> Self {
        Target {
            queue: RefCell::new(VecDeque::new()),
            outcome: Cell::new(Outcome::Running),
            dropped: Cell::new(false),
            ready: Notify::new(),
        }
    }

    /// The next chunk to write, telling the driver there is room again.
    pub fn pop(&self, transfer: &Transfer) -> Option<Rc<Vec<u8>>> {
        let c = self.queue.borrow_mut().pop_front();
        if c.is_some() {
            transfer.space.notify_one();
        }
        c
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    /// The link stops taking part; the others continue without waiting for it.
    pub fn drop_out(&self, transfer: &Transfer) {
        self.dropped.set(true);
        self.queue.borrow_mut().clear();
        transfer.space.notify_one();
    }

    pub(crate) fn push(&self, chunk: &Rc<Vec<u8>>) {
        self.queue.borrow_mut().push_back(chunk.clone());
        self.ready.notify_one();
    }

    pub(crate) fn end(&self, outcome: Outcome) {
        self.outcome.set(outcome);
        self.ready.notify_one();
    }
}

/// A running socket-target transfer.
pub struct Transfer {
    pub replid: String,
    /// The master offset at the snapshot instant (`+FULLRESYNC`).
    pub offset: u64,
    /// The `$EOF:` mark.
    pub mark: String,
    pub(crate) targets: RefCell<Vec<Rc<Target>>>,
    /// The stream source; taken by the driver at the end or by `Server::abort_transfer`.
    pub(crate) producer: RefCell<Option<RdbProducer>>,
    /// Wakes the driver when a queue has room again or a replica dropped out.
    pub(crate) space: Notify,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("offset", &self.offset)
            .field("targets", &self.targets.borrow().len())
            .finish()
    }
}

impl Transfer {
    /// Keys encoded so far and keys in the snapshot, while it runs.
    pub fn progress(&self, ks: &crate::keyspace::Keyspace) -> Option<(u64, u64)> {
        Some(self.producer.borrow().as_ref()?.progress(ks))
    }

    pub(crate) fn live(&self) -> Vec<Rc<Target>> {
        self.targets
            .borrow()
            .iter()
            .filter(|t| !t.dropped.get())
            .cloned()
            .collect()
    }
}
