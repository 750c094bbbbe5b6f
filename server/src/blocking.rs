//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...): the wait queue of every
//! (database, key), the parked clients, and serving them when a key they wait on is written.
//!
//! Redis semantics this module keeps:
//! - a blocked client is served right after the command that made its key ready (and after
//!   EXEC for a transaction), before any other client runs a command, so a client that pushes
//!   and pops in one pipeline cannot take the element from under a blocked client;
//! - clients blocked on the same key are served in the order they blocked, each as long as
//!   the key can serve it; one that cannot keeps its place;
//! - a key is identified by its database: a write in db 0 never wakes a client blocked in db 3.
//!
//! While blocked, a client's [`Client`] state is parked here (its connection task keeps only
//! the socket), so whoever wrote the key can serve it synchronously by re-running its
//! command with the written key as a hint. The command decides whether it can be served;
//! this module knows nothing about any command's semantics and never touches sockets.

use crate::client::{Client, OwnedArgs};
use crate::cmd::{Block, TimeoutReply};
use crate::exec::{self, Outcome};
use crate::keyspace::SmallBytes;
use crate::protocol::Reply;
use crate::server::Server;
use hashbrown::HashMap;
use std::collections::VecDeque;

/// A blocked client, parked until it is served, times out, or disconnects.
#[derive(Debug)]
struct Parked {
    client: Client,
    command: OwnedArgs,
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
    pub fn time_out(&mut self, id: u64, out: &mut Vec<u8>) -> Option<Client> {
        let p = self.parked.remove(&id)?;
        if !p.served {
            self.dequeue(id, p.db, &p.block.keys);
            let mut reply = Reply::new(out, p.client.proto);
            match p.block.on_timeout {
                TimeoutReply::NullArray => reply.null_array(),
                TimeoutReply::Null => reply.null(),
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

    /// Clients waiting (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.parked.values().filter(|p| !p.served).count()
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

/// Serves the clients blocked on keys written since the last call: for each ready key in
/// write order, its waiters in the order they blocked. A served command may write other keys
/// (BLMOVE pushes to its destination), which are served in the same pass.
///
/// Connections call this after every command they run; it is cheap when nothing is ready.
pub fn serve(srv: &mut Server) {
    while let Some((db, key)) = srv.blocking.ready.pop_front() {
        let Some(waiting) = srv.blocking.queues.get(&(db, key.clone())) else {
            continue;
        };
        let waiting: Vec<u64> = waiting.iter().copied().collect();
        for id in waiting {
            let Some(mut p) = srv.blocking.parked.remove(&id) else {
                continue;
            };
            if !p.served {
                let mut out = Vec::new();
                let args = p.command.as_args();
                match exec::rerun_blocked(srv, &mut p.client, args, &key, &mut out) {
                    // Not served (the key is empty again, or of another type): it keeps its
                    // place in every queue.
                    Outcome::Block(..) => {}
                    Outcome::Continue | Outcome::Close => {
                        p.served = true;
                        srv.blocking.dequeue(id, p.db, &p.block.keys);
                        p.client.shared.pending.borrow_mut().extend_from_slice(&out);
                        p.client.shared.notify.notify_one();
                    }
                }
            }
            srv.blocking.parked.insert(id, p);
        }
    }
}
