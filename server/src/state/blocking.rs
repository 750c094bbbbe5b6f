//! The registry of clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ..., and WAIT): the wait
//! queue of every (database, key), the parked clients and the keys written since the last
//! serving pass. Serving them (re-running their commands) is `crate::blocking`'s job; this
//! module only keeps the queues in the order Redis serves them.

use crate::client::{Client, OwnedArgs};
use crate::keyspace::SmallBytes;
use crate::protocol::Reply;
use hashbrown::HashMap;
use std::collections::VecDeque;

/// A request to block the client until one of `keys` is written or `timeout_ms` passes
/// (0 = forever). The command is executed again when woken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub keys: Vec<SmallBytes>,
    pub timeout_ms: u64,
    /// What the client gets when the timeout passes.
    pub on_timeout: TimeoutReply,
}

/// The reply of a blocking command that timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` (`_` in RESP3). Redis 7.0 times out every key-blocking command this way,
    /// BLMOVE and BRPOPLPUSH included (they reply `$-1` only when they may not block, inside
    /// MULTI).
    NullArray,
    /// `$-1` (`_` in RESP3).
    Null,
    /// WAIT: the number of replicas that acknowledged this offset by then.
    Acked(u64),
}

/// A blocked client, parked until it is served, times out, or disconnects.
#[derive(Debug)]
pub struct Parked {
    pub(crate) client: Client,
    pub(crate) command: OwnedArgs,
    block: Block,
    /// The database the keys belong to (the client's when it blocked).
    db: usize,
    /// Served: its reply is in the client's pending output and it waits for its task to
    /// take it back.
    served: bool,
}

/// Who waits for which key.
#[derive(Debug, Default)]
pub struct Blocking {
    /// Client ids blocked on each (database, key), in the order they blocked.
    queues: HashMap<(usize, SmallBytes), VecDeque<u64>>,
    parked: HashMap<u64, Parked>,
    /// Keys written since the last [`serve`] that have waiters, in the order they were written.
    ready: VecDeque<(usize, SmallBytes)>,
}

impl Blocking {
    /// Parks a client that must wait for `block.keys` in its current database. A key named
    /// twice counts once, as in Redis.
    pub fn park(&mut self, client: Client, block: Block, command: OwnedArgs) {
        let db = client.db;
        let id = client.id;
        for (i, k) in block.keys.iter().enumerate() {
            if block.keys[..i].contains(k) {
                continue;
            }
            self.queues
                .entry((db, k.clone()))
                .or_default()
                .push_back(id);
        }
        client.shared.info.borrow_mut().flags.push('b');
        self.parked.insert(
            id,
            Parked {
                client,
                command,
                block,
                db,
                served: false,
            },
        );
    }

    /// The client back from the server once it has been served (its reply is in its
    /// pending output); `None` while it still waits.
    pub fn take_served(&mut self, id: u64) -> Option<Client> {
        if !self.parked.get(&id)?.served {
            return None;
        }
        self.parked.remove(&id).map(|p| unflag(p.client))
    }

    /// Ends the wait of a client whose timeout passed: its timeout reply goes to `out`. A
    /// client served in the meantime just comes back (its reply is in its pending output).
    /// `acked` counts the replicas that acknowledged an offset (WAIT's timeout reply).
    pub fn time_out(
        &mut self,
        id: u64,
        out: &mut Vec<u8>,
        acked: impl Fn(u64) -> usize,
    ) -> Option<Client> {
        let p = self.parked.remove(&id)?;
        if !p.served {
            self.dequeue(id, p.db, &p.block.keys);
            let mut reply = Reply::new(out, p.client.proto);
            match p.block.on_timeout {
                TimeoutReply::NullArray => reply.null_array(),
                TimeoutReply::Null => reply.null(),
                TimeoutReply::Acked(off) => reply.int(acked(off) as i64),
            }
        }
        Some(unflag(p.client))
    }

    /// Forgets a client whose connection went away while it was blocked.
    pub fn cancel(&mut self, id: u64) -> Option<Client> {
        let p = self.parked.remove(&id)?;
        if !p.served {
            self.dequeue(id, p.db, &p.block.keys);
        }
        Some(unflag(p.client))
    }

    /// Records that `key` of `db` was written, if anyone waits for it.
    pub fn key_written(&mut self, db: usize, key: &[u8]) {
        if self.queues.is_empty() {
            return;
        }
        let k = (db, SmallBytes::new(key));
        if self.queues.contains_key(&k) && !self.ready.contains(&k) {
            self.ready.push_back(k);
        }
    }

    /// Whether a key with waiters was written since the last serving pass: checked after
    /// every command, so kept to one inlined test.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The next written key that has waiters, with its waiters in the order they blocked.
    pub fn next_ready(&mut self) -> Option<(SmallBytes, Vec<u64>)> {
        while let Some((db, key)) = self.ready.pop_front() {
            if let Some(waiting) = self.queues.get(&(db, key.clone())) {
                return Some((key, waiting.iter().copied().collect()));
            }
        }
        None
    }

    /// Takes parked client `id` out to re-run its command, unless it was served already.
    pub fn unpark(&mut self, id: u64) -> Option<Parked> {
        if self.parked.get(&id)?.served {
            return None;
        }
        self.parked.remove(&id)
    }

    /// Puts a re-run client back: still waiting (it keeps its place in every queue) or
    /// served (out of every queue, until its task takes it back).
    pub fn repark(&mut self, mut p: Parked, served: bool) {
        let id = p.client.id;
        if served {
            p.served = true;
            self.dequeue(id, p.db, &p.block.keys);
        }
        self.parked.insert(id, p);
    }

    /// Whether nobody waits and nobody is parked: what a timeout, a cancel or a serve must
    /// leave behind once every waiter is gone.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.parked.is_empty()
    }

    /// Whether client `id` is parked and not yet served (CLIENT UNBLOCK applies to it).
    pub fn is_waiting(&self, id: u64) -> bool {
        self.parked.get(&id).is_some_and(|p| !p.served)
    }

    fn dequeue(&mut self, id: u64, db: usize, keys: &[SmallBytes]) {
        for k in keys {
            let key = (db, k.clone());
            if let Some(ids) = self.queues.get_mut(&key) {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    self.queues.remove(&key);
                }
            }
        }
    }
}

fn unflag(client: Client) -> Client {
    client.shared.info.borrow_mut().flags.retain(|c| c != 'b');
    client
}
