//! BZPOPMIN/BZPOPMAX over real sockets: a client blocked on an empty key is woken by a ZADD
//! from another connection, and an unserved one gets the null array when its timeout passes.

mod common;

use common::{start_tandem, wait_blocked};
use std::time::{Duration, Instant};

#[test]
fn zadd_wakes_a_blocked_bzpopmin() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut writer = srv.connect();
    waiter.send(&["BZPOPMIN", "other", "zk", "0"]);
    wait_blocked(&srv, 1);
    writer.call(&["ZADD", "zk", "2", "b", "1", "a"], b":2\r\n");
    waiter.expect(b"*3\r\n$2\r\nzk\r\n$1\r\na\r\n$1\r\n1\r\n");
    writer.call(&["ZCARD", "zk"], b":1\r\n");
    // The woken client goes on with its next command normally.
    waiter.call(
        &["BZPOPMAX", "zk", "0"],
        b"*3\r\n$2\r\nzk\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    waiter.call(&["EXISTS", "zk"], b":0\r\n");
}

#[test]
fn zadd_wakes_a_blocked_bzmpop() {
    let srv = start_tandem(&[]);
    let mut waiter = srv.connect();
    let mut writer = srv.connect();
    waiter.send(&["BZMPOP", "5", "2", "k1", "k2", "MAX", "COUNT", "2"]);
    wait_blocked(&srv, 1);
    writer.call(&["ZADD", "k2", "1", "a", "2", "b", "3", "c"], b":3\r\n");
    waiter.expect(
        b"*2\r\n$2\r\nk2\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    writer.call(&["ZRANGE", "k2", "0", "-1"], b"*1\r\n$1\r\na\r\n");
}

#[test]
fn bzpopmax_times_out_with_a_null_array() {
    let srv = start_tandem(&[]);
    let mut c = srv.connect();
    let started = Instant::now();
    c.call(&["BZPOPMAX", "none", "0.05"], b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(50));
    c.send(&["HELLO", "3"]);
    assert!(c.read_reply().starts_with(b"%"));
    c.call(&["BZPOPMIN", "none", "0.01"], b"_\r\n");
}
