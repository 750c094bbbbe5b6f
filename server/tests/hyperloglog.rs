//! HyperLogLogs between tandem and a real Redis 7.0, both ways, through a full sync (the RDB)
//! and the replication stream: the replica's values are byte for byte the master's and count
//! the same. This also checks what the HyperLogLog commands propagate (PFADD, PFMERGE,
//! PFDEBUG TODENSE, and PFCOUNT when it writes its cached cardinality). Skipped with a printed
//! reason when redis-server is missing, unless TANDEM_REQUIRE_REAL_DEPS=1.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Info, ServerGuard, start_redis_server, start_tandem, wait_in_sync};
use std::collections::BTreeMap;
use tandem_testkit::redis_available;

/// Sparse, promoted, merged, converted and counted HyperLogLogs under `prefix`.
fn write_hlls(p: &ServerGuard, prefix: &str) {
    let mut c = p.con();
    let k = |name: &str| format!("{prefix}:{name}");
    let _: i64 = redis::cmd("PFADD")
        .arg(k("small"))
        .arg(&["a", "b", "c"])
        .query(&mut c)
        .unwrap();
    let many: Vec<String> = (0..3000).map(|i| format!("e{i}")).collect();
    let _: i64 = redis::cmd("PFADD")
        .arg(k("big"))
        .arg(&many)
        .query(&mut c)
        .unwrap();
    // Writes the cached cardinality: replicas must get it.
    let _: i64 = redis::cmd("PFCOUNT").arg(k("small")).query(&mut c).unwrap();
    let _: () = redis::cmd("PFMERGE")
        .arg(k("merged"))
        .arg(k("small"))
        .arg(k("big"))
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("PFADD")
        .arg(k("dense"))
        .arg(&["x", "y"])
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("PFDEBUG")
        .arg("TODENSE")
        .arg(k("dense"))
        .query(&mut c)
        .unwrap();
}

/// Every key's bytes, read before anything counts them (a count may write the cache).
fn values(p: &ServerGuard) -> BTreeMap<String, Vec<u8>> {
    let mut c = p.con();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
            (k, v)
        })
        .collect()
}

fn counts(p: &ServerGuard, keys: impl Iterator<Item = String>) -> BTreeMap<String, i64> {
    let mut c = p.con();
    keys.map(|k| {
        let n: i64 = redis::cmd("PFCOUNT").arg(&k).query(&mut c).unwrap();
        (k, n)
    })
    .collect()
}

/// Writes before and after the replica attaches, then compares bytes and counts.
fn check_pair(master: &ServerGuard, start_replica: impl FnOnce(&str) -> ServerGuard) {
    write_hlls(master, "before");
    let replica = start_replica(&master.port.to_string());
    write_hlls(master, "after");
    wait_in_sync(master, &replica);
    let (m, r) = (values(master), values(&replica));
    assert_eq!(m.len(), 8, "{:?}", m.keys());
    assert_eq!(r, m);
    assert_eq!(
        counts(&replica, r.keys().cloned()),
        counts(master, m.keys().cloned())
    );
}

#[test]
fn redis_master_to_tandem_replica() {
    if !redis_available() {
        return;
    }
    let master = start_redis_server(&[]);
    check_pair(&master, |port| {
        start_tandem(&["--replicaof", "127.0.0.1", port])
    });
}

#[test]
fn tandem_master_to_redis_replica() {
    if !redis_available() {
        return;
    }
    let master = start_tandem(&[]);
    check_pair(&master, |port| {
        start_redis_server(&["--replicaof", "127.0.0.1", port])
    });
}

#[test]
fn pfcount_is_propagated_only_when_it_writes_the_cache() {
    let master = start_tandem(&[]);
    let replica = start_tandem(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut c = master.con();
    let _: i64 = redis::cmd("PFADD")
        .arg("h")
        .arg(&["a", "b"])
        .query(&mut c)
        .unwrap();
    wait_in_sync(&master, &replica);
    let offset = || master.field("replication", "master_repl_offset");
    let before = offset();
    let n: i64 = redis::cmd("PFCOUNT").arg("h").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let after_write = offset();
    assert_ne!(after_write, before, "the cache write reaches replicas");
    let _: i64 = redis::cmd("PFCOUNT").arg("h").query(&mut c).unwrap();
    let _: i64 = redis::cmd("PFCOUNT")
        .arg("h")
        .arg("other")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        offset(),
        after_write,
        "a cached count and a union write nothing"
    );
    wait_in_sync(&master, &replica);
    assert_eq!(values(&replica), values(&master));
    // A replica's own cache write stays its own: its stream is its master's.
    let _: i64 = redis::cmd("PFADD").arg("r").arg("x").query(&mut c).unwrap();
    wait_in_sync(&master, &replica);
    let n: i64 = redis::cmd("PFCOUNT")
        .arg("r")
        .query(&mut replica.con())
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        replica.field("replication", "master_repl_offset"),
        offset(),
        "the replica fed nothing of its own"
    );
}
