//! Serving clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...) and in WAIT: their
//! commands run again when a key they wait on is written (or an ACK arrives). The queues
//! and the parked clients are the state's ([`crate::state::blocking`]).
//!
//! Redis semantics this module keeps:
//! - a blocked client is served right after the command that made its key ready (and after
//!   EXEC for a transaction), before any other client runs a command, so a client that pushes
//!   and pops in one pipeline cannot take the element from under a blocked client;
//! - clients blocked on the same key are served in the order they blocked, each as long as
//!   the key can serve it; one that cannot keeps its place;
//! - a key is identified by its database: a write in db 0 never wakes a client blocked in db 3.
//!
//! While blocked, a client's `Client` state is parked in the server (its connection task
//! keeps only the socket), so whoever wrote the key can serve it synchronously by re-running its
//! command with the written key as a hint. The command decides whether it can be served;
//! this module knows nothing about any command's semantics and never touches sockets.

use crate::exec::{self, Outcome};
use crate::keyspace::SmallBytes;
use crate::state::Server;

/// Serves the clients blocked on keys written since the last call: for each ready key in
/// write order, its waiters in the order they blocked. A served command may write other keys
/// (BLMOVE pushes to its destination), which are served in the same pass.
///
/// Connections call this after every command they run; it is cheap when nothing is ready.
pub fn serve(srv: &mut Server) {
    if !srv.blocking.has_ready() {
        return;
    }
    while let Some((key, waiting)) = srv.blocking.next_ready() {
        for id in waiting {
            rerun(srv, id, &key);
        }
    }
}

/// Re-runs parked client `id`, which waits for something other than a key (WAIT, for
/// replica acknowledgements): it is served when its command now completes.
pub fn retry(srv: &mut Server, id: u64) {
    rerun(srv, id, &SmallBytes::new(b""));
}

/// Runs a parked client's command again, `key` being the write that woke it. Served, its
/// reply goes to its pending output and its task is woken; not served (the key is empty
/// again, or of another type), it keeps its place in every queue. (A re-run skips the pause
/// check, so it is never held by CLIENT PAUSE; should it be, it keeps waiting too.)
fn rerun(srv: &mut Server, id: u64, key: &SmallBytes) {
    let Some(mut p) = srv.blocking.unpark(id) else {
        return;
    };
    let mut out = Vec::new();
    let args = p.command.as_args();
    let served = match exec::rerun_blocked(srv, &mut p.client, args, key, &mut out) {
        Outcome::Block(..) | Outcome::Paused(_) => {
            p.client.sync_flags(true);
            false
        }
        Outcome::Continue | Outcome::Close => {
            p.client.shared.pending.borrow_mut().extend_from_slice(&out);
            p.client.shared.notify.notify_one();
            true
        }
    };
    srv.blocking.repark(p, served);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::config::Config;
    use crate::state::replication::feed::encode;
    use crate::testing::execute;

    /// Runs one command for `client`; a command that blocks is parked, as a connection does.
    fn run(srv: &mut Server, client: Client, argv: &[&str]) -> (Option<Client>, Vec<u8>) {
        let mut client = client;
        let mut out = Vec::new();
        let outcome = execute(srv, &mut client, argv, &mut out);
        serve(srv);
        match outcome {
            Outcome::Block(block, command) => {
                srv.blocking.park(client, block, command);
                (None, out)
            }
            _ => (Some(client), out),
        }
    }

    fn stream(cmds: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, &[b"SELECT".as_slice(), b"0"]);
        for c in cmds {
            encode(&mut out, c);
        }
        out
    }

    fn pending(client: &Client) -> Vec<u8> {
        std::mem::take(&mut *client.shared.pending.borrow_mut())
    }

    #[test]
    fn waiters_are_served_in_order_and_propagated_as_pops() {
        let mut srv = Server::new(Config::default());
        srv.feed.attach();
        let (a, _) = run(
            &mut srv,
            Client::new(1, None, None, false),
            &["BLPOP", "k", "0"],
        );
        let (b, _) = run(
            &mut srv,
            Client::new(2, None, None, false),
            &["BRPOP", "k", "0"],
        );
        assert!(a.is_none() && b.is_none());
        assert!(srv.blocking.is_waiting(1) && srv.blocking.is_waiting(2));

        let pusher = Client::new(3, None, None, false);
        let (pusher, out) = run(&mut srv, pusher, &["RPUSH", "k", "x", "y", "z"]);
        assert_eq!(out, b":3\r\n");
        let a = srv.blocking.take_served(1).expect("first waiter served");
        let b = srv.blocking.take_served(2).expect("second waiter served");
        assert_eq!(pending(&a), b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
        assert_eq!(pending(&b), b"*2\r\n$1\r\nk\r\n$1\r\nz\r\n");
        assert_eq!(srv.blocked_clients(), 0);
        assert_eq!(
            srv.feed.drain(),
            stream(&[
                &["RPUSH", "k", "x", "y", "z"],
                &["LPOP", "k"],
                &["RPOP", "k"]
            ])
        );
        let (_, out) = run(
            &mut srv,
            pusher.expect("not blocked"),
            &["LRANGE", "k", "0", "-1"],
        );
        assert_eq!(out, b"*1\r\n$1\r\ny\r\n");
    }

    #[test]
    fn blmove_served_later_propagates_lmove_with_redis_words() {
        let mut srv = Server::new(Config::default());
        srv.feed.attach();
        let argv = ["BLMOVE", "src", "dst", "Left", "RIGHT", "0"];
        let (waiter, _) = run(&mut srv, Client::new(1, None, None, false), &argv);
        assert!(waiter.is_none());
        let (_, out) = run(
            &mut srv,
            Client::new(2, None, None, false),
            &["RPUSH", "src", "v"],
        );
        assert_eq!(out, b":1\r\n");
        let waiter = srv.blocking.take_served(1).expect("served");
        assert_eq!(pending(&waiter), b"$1\r\nv\r\n");
        assert_eq!(
            srv.feed.drain(),
            stream(&[
                &["RPUSH", "src", "v"],
                &["LMOVE", "src", "dst", "left", "right"]
            ])
        );
    }

    #[test]
    fn other_types_and_databases_leave_waiters_blocked() {
        let mut srv = Server::new(Config::default());
        let mut waiter = Client::new(1, None, None, false);
        waiter.db = 3;
        let (waiter, _) = run(&mut srv, waiter, &["BLPOP", "k", "0"]);
        assert!(waiter.is_none());
        let (other, _) = run(
            &mut srv,
            Client::new(2, None, None, false),
            &["RPUSH", "k", "0"],
        );
        assert!(srv.blocking.take_served(1).is_none());
        let mut other = other.expect("not blocked");
        other.db = 3;
        let (other, out) = run(&mut srv, other, &["SET", "k", "string"]);
        assert_eq!(out, b"+OK\r\n");
        assert!(srv.blocking.take_served(1).is_none());
        let (other, _) = run(&mut srv, other.expect("not blocked"), &["DEL", "k"]);
        let (_, out) = run(&mut srv, other.expect("not blocked"), &["LPUSH", "k", "3"]);
        assert_eq!(out, b":1\r\n");
        let waiter = srv.blocking.take_served(1).expect("served from db 3");
        assert_eq!(pending(&waiter), b"*2\r\n$1\r\nk\r\n$1\r\n3\r\n");
    }

    #[test]
    fn timeout_and_cancel_dequeue() {
        let mut srv = Server::new(Config::default());
        let (_, _) = run(
            &mut srv,
            Client::new(1, None, None, false),
            &["BLPOP", "k", "1"],
        );
        let (_, _) = run(
            &mut srv,
            Client::new(2, None, None, false),
            &["BLMOVE", "k", "d", "LEFT", "LEFT", "1"],
        );
        let mut out = Vec::new();
        assert!(srv.blocking.time_out(1, &mut out, |_| 0).is_some());
        assert_eq!(out, b"*-1\r\n");
        assert!(srv.blocking.cancel(2).is_some());
        assert_eq!(srv.blocked_clients(), 0);
        assert!(srv.blocking.is_empty());
        let (_, out) = run(
            &mut srv,
            Client::new(3, None, None, false),
            &["RPUSH", "k", "v"],
        );
        assert_eq!(out, b":1\r\n");
        assert!(srv.blocking.is_empty());
    }
}
