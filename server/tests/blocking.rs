//! Blocking list commands over real sockets: the built server binary, raw RESP, exact reply
//! bytes. Every wait polls a condition against a deadline; nothing relies on a fixed sleep.
#![allow(clippy::unwrap_used)]

mod common;

use common::{start_tandem, wait_blocked};

#[test]
fn blpop_is_woken_by_rpush_from_another_connection() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut pusher = srv.connect();
    waiter.send(&["BLPOP", "queue", "0"]);
    wait_blocked(&srv, 1);
    pusher.send(&["RPUSH", "queue", "hello"]);
    pusher.expect(b":1\r\n");
    waiter.expect(b"*2\r\n$5\r\nqueue\r\n$5\r\nhello\r\n");
    pusher.send(&["EXISTS", "queue"]);
    pusher.expect(b":0\r\n");
    wait_blocked(&srv, 0);
}

#[test]
fn waiters_are_served_in_the_order_they_blocked() {
    let srv = start_tandem(&[]);
    let mut first = srv.connect();
    let mut second = srv.connect();
    let mut pusher = srv.connect();

    // One element: the first to block gets it, the second keeps waiting for the next one.
    first.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 1);
    second.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 2);
    pusher.send(&["LPUSH", "k", "x"]);
    pusher.expect(b":1\r\n");
    first.expect(b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    wait_blocked(&srv, 1);
    pusher.send(&["RPUSH", "k", "y"]);
    pusher.expect(b":1\r\n");
    second.expect(b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n");

    // Two elements in one push: each waiter gets one, in blocking order.
    first.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 1);
    second.send(&["BRPOP", "k", "0"]);
    wait_blocked(&srv, 2);
    pusher.send(&["LPUSH", "k", "1", "2"]);
    pusher.expect(b":2\r\n");
    first.expect(b"*2\r\n$1\r\nk\r\n$1\r\n2\r\n");
    second.expect(b"*2\r\n$1\r\nk\r\n$1\r\n1\r\n");
}

#[test]
fn a_waiter_is_served_before_the_pusher_runs_its_next_command() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut pusher = srv.connect();
    waiter.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 1);
    // Pipelined: the pop runs after the waiter was served.
    pusher.send(&["RPUSH", "k", "v"]);
    pusher.send(&["LPOP", "k"]);
    pusher.expect(b":1\r\n$-1\r\n");
    waiter.expect(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
}

#[test]
fn timeouts_reply_null() {
    let srv = start_tandem(&[]);
    let mut c = srv.connect();
    c.send(&["BLPOP", "none", "0.05"]);
    c.expect(b"*-1\r\n");
    c.send(&["BRPOP", "none", "other", "0.01"]);
    c.expect(b"*-1\r\n");
    // Redis 7.0 times BLMOVE and BRPOPLPUSH out with a null array too.
    c.send(&["BLMOVE", "none", "dst", "LEFT", "RIGHT", "0.01"]);
    c.expect(b"*-1\r\n");
    c.send(&["BRPOPLPUSH", "none", "dst", "0.01"]);
    c.expect(b"*-1\r\n");
    c.send(&["BLMPOP", "0.01", "1", "none", "LEFT"]);
    c.expect(b"*-1\r\n");
    c.send(&["HELLO", "3"]);
    assert!(c.read_reply().starts_with(b"%"));
    c.send(&["BLPOP", "none", "0.01"]);
    c.expect(b"_\r\n");
    wait_blocked(&srv, 0);
}

#[test]
fn blmove_is_woken_and_moves() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut pusher = srv.connect();
    waiter.send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    wait_blocked(&srv, 1);
    pusher.send(&["RPUSH", "src", "a", "b"]);
    pusher.expect(b":2\r\n");
    waiter.expect(b"$1\r\na\r\n");
    pusher.send(&["LRANGE", "dst", "0", "-1"]);
    pusher.expect(b"*1\r\n$1\r\na\r\n");
    pusher.send(&["LRANGE", "src", "0", "-1"]);
    pusher.expect(b"*1\r\n$1\r\nb\r\n");

    // A client waiting on the destination is served by the move in the same pass.
    waiter.send(&["BRPOPLPUSH", "s2", "d2", "0"]);
    wait_blocked(&srv, 1);
    let mut last = srv.connect();
    last.send(&["BLPOP", "d2", "0"]);
    wait_blocked(&srv, 2);
    pusher.send(&["RPUSH", "s2", "z"]);
    pusher.expect(b":1\r\n");
    waiter.expect(b"$1\r\nz\r\n");
    last.expect(b"*2\r\n$2\r\nd2\r\n$1\r\nz\r\n");
}

#[test]
fn databases_do_not_wake_each_other() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut pusher = srv.connect();
    waiter.send(&["SELECT", "3"]);
    waiter.expect(b"+OK\r\n");
    waiter.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 1);
    pusher.send(&["RPUSH", "k", "db0"]);
    pusher.expect(b":1\r\n");
    pusher.send(&["SELECT", "3"]);
    pusher.expect(b"+OK\r\n");
    pusher.send(&["RPUSH", "k", "db3"]);
    pusher.expect(b":1\r\n");
    // The first reply the waiter gets is db 3's element.
    waiter.expect(b"*2\r\n$1\r\nk\r\n$3\r\ndb3\r\n");
    pusher.send(&["SELECT", "0"]);
    pusher.expect(b"+OK\r\n");
    pusher.send(&["LRANGE", "k", "0", "-1"]);
    pusher.expect(b"*1\r\n$3\r\ndb0\r\n");
}

#[test]
fn a_waiter_that_disconnects_is_forgotten() {
    let srv = start_tandem(&[]);
    let mut gone = srv.connect();
    gone.send(&["BLPOP", "k", "0"]);
    wait_blocked(&srv, 1);
    drop(gone);
    wait_blocked(&srv, 0);
    let mut pusher = srv.connect();
    pusher.send(&["RPUSH", "k", "kept"]);
    pusher.expect(b":1\r\n");
    pusher.send(&["LLEN", "k"]);
    pusher.expect(b":1\r\n");
}
