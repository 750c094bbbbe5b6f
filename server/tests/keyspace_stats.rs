//! What INFO reports about the keyspace, against a real Redis 7.0: the hits and misses each
//! kind of lookup counts (reads, the lookups that do not touch such as EXISTS, TYPE, TTL and
//! OBJECT, the write lookups that count nothing), and `avg_ttl`, which the active expiry cycle
//! estimates from its samples. Skipped with a printed reason when redis-server is missing,
//! unless TANDEM_REQUIRE_REAL_DEPS=1.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Info, ServerGuard, start_redis_server, start_tandem, wait_until};
use std::time::Duration;
use tandem_testkit::redis_available;

fn run(p: &ServerGuard, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut cmd = redis::cmd(words[0]);
    cmd.arg(&words[1..]);
    let _: redis::Value = cmd.query(&mut p.con()).unwrap();
}

fn hits_and_misses(p: &ServerGuard) -> (String, String) {
    let stats = p.info("stats");
    (
        stats["keyspace_hits"].clone(),
        stats["keyspace_misses"].clone(),
    )
}

#[test]
fn lookups_count_hits_and_misses_as_redis() {
    if !redis_available() {
        return;
    }
    let servers = [start_redis_server(&[]), start_tandem(&[])];
    let lines = [
        "SET a 1",
        "EXISTS a b",
        "TYPE a",
        "TYPE b",
        "TTL a",
        "PTTL b",
        "EXPIRETIME a",
        "OBJECT ENCODING a",
        "OBJECT FREQ b",
        "TOUCH a b",
        "DUMP a",
        "DUMP b",
        "EXPIRE a 100",
        "PERSIST a",
        "PFADD h x",
        "PFCOUNT h",
        "PFCOUNT h b",
        "PFMERGE m h b",
        "PFDEBUG ENCODING h",
        "GET a",
        "GET b",
    ];
    for (i, line) in lines.iter().enumerate() {
        for p in &servers {
            if i == 0 {
                run(p, "CONFIG RESETSTAT");
            }
            run(p, line);
        }
        assert_eq!(
            hits_and_misses(&servers[1]),
            hits_and_misses(&servers[0]),
            "after {line}"
        );
    }
}

fn avg_ttl(p: &ServerGuard) -> u64 {
    let db0 = p.field("keyspace", "db0");
    let v = db0
        .split(',')
        .find_map(|f| f.strip_prefix("avg_ttl="))
        .unwrap_or_else(|| panic!("no avg_ttl in {db0:?}"));
    v.parse().unwrap()
}

#[test]
fn avg_ttl_follows_the_expiring_keys() {
    let mut servers = vec![start_tandem(&[])];
    if redis_available() {
        servers.push(start_redis_server(&[]));
    }
    for p in &servers {
        for i in 0..100 {
            run(p, &format!("SET plain:{i} v"));
            run(p, &format!("SET volatile:{i} v EX 1000"));
        }
        wait_until("avg_ttl estimated", Duration::from_secs(20), || {
            avg_ttl(p) > 0
        });
        let ttl = avg_ttl(p);
        assert!(
            (900_000..=1_000_000).contains(&ttl),
            "{}: avg_ttl={ttl}",
            p.name()
        );
        for i in 0..100 {
            run(p, &format!("PERSIST volatile:{i}"));
        }
        wait_until("avg_ttl back to 0", Duration::from_secs(20), || {
            avg_ttl(p) == 0
        });
    }
}
