//! SORT's rules around replication: SORT ... STORE reaches a real Redis replica as a list
//! identical to the master's (a set returned in its unspecified order is sorted ALPHA when
//! stored, so both sides agree), and a read-only replica refuses SORT, a write command, while
//! it answers SORT_RO.

#![allow(clippy::unwrap_used)]

mod common;

use common::{escape, start_redis, start_tandem};

#[test]
fn sort_store_reaches_replicas_and_replicas_refuse_sort() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let master = start_tandem(&[]);
    let replica = start_tandem(&[]);
    let port = master.port.to_string();
    let mut m = master.connect();
    for r in [&redis, &replica] {
        r.connect()
            .call(&["REPLICAOF", "127.0.0.1", &port], b"+OK\r\n");
    }
    m.call(
        &["SADD", "s", "pear", "fig", "apple", "kiwi", "10", "2"],
        b":6\r\n",
    );
    m.call(&["MSET", "w_pear", "3", "w_fig", "1"], b"+OK\r\n");
    m.call(&["SORT", "s", "BY", "nosort", "STORE", "plain"], b":6\r\n");
    m.call(
        &[
            "SORT", "s", "BY", "w_*", "GET", "#", "GET", "w_*", "STORE", "byw",
        ],
        b":12\r\n",
    );
    let stored = m.cmd(&["LRANGE", "plain", "0", "-1"]);
    assert_eq!(
        escape(&stored),
        escape(b"*6\r\n$2\r\n10\r\n$1\r\n2\r\n$5\r\napple\r\n$3\r\nfig\r\n$4\r\nkiwi\r\n$4\r\npear\r\n")
    );
    common::wait_in_sync(&master, &redis);
    common::wait_in_sync(&master, &replica);
    let (mut r, mut t) = (redis.connect(), replica.connect());
    for key in ["plain", "byw"] {
        let args = ["LRANGE", key, "0", "-1"];
        let want = m.cmd(&args);
        assert_eq!(escape(&r.cmd(&args)), escape(&want), "Redis replica, {key}");
        assert_eq!(
            escape(&t.cmd(&args)),
            escape(&want),
            "tandem replica, {key}"
        );
    }
    let readonly = b"-READONLY You can't write against a read only replica.\r\n";
    for replica in [&mut r, &mut t] {
        replica.call(&["SORT", "s", "ALPHA"], readonly);
        replica.call(
            &["SORT_RO", "s", "ALPHA", "LIMIT", "0", "1"],
            b"*1\r\n$2\r\n10\r\n",
        );
        replica.call(&["SORT_RO", "s", "STORE", "x"], b"-ERR syntax error\r\n");
    }
}
