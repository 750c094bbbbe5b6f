//! DUMP and RESTORE between tandem and a real Redis 7.0: a payload made by either server
//! restores on the other to the same value, for every type and encoding tandem has, and a
//! RESTORE reaches a Redis replica with its absolute expiry. Skipped with a printed reason
//! when redis-server is missing, unless TANDEM_REQUIRE_REAL_DEPS=1.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ServerGuard, start_redis_server, start_tandem, wait_in_sync};
use tandem_testkit::redis_available;

/// One key of each type, small (compact encodings) and large (plain ones), with elements
/// big enough for LZF and for quicklist nodes of their own.
fn fill(p: &ServerGuard) {
    let mut c = p.con();
    let long = "x".repeat(5000);
    let q = |cmd: &str, args: Vec<String>| {
        let mut r = redis::cmd(cmd);
        r.arg(args);
        r
    };
    let n = |count: usize, f: &dyn Fn(usize) -> Vec<String>| -> Vec<String> {
        (0..count).flat_map(f).collect()
    };
    let cmds = [
        q("SET", vec!["str".into(), "hello".into()]),
        q("SET", vec!["int".into(), "-12345".into()]),
        q("SET", vec!["long".into(), long.clone()]),
        q(
            "RPUSH",
            n(5, &|i| {
                vec![if i == 0 {
                    "list".into()
                } else {
                    format!("e{i}")
                }]
            }),
        ),
        q(
            "RPUSH",
            [
                vec!["biglist".into()],
                n(700, &|i| vec![format!("element {i}")]),
                vec![long.clone()],
            ]
            .concat(),
        ),
        q(
            "SADD",
            vec!["intset".into(), "1".into(), "-7".into(), "300000".into()],
        ),
        q("SADD", vec!["set".into(), "a".into(), "b".into()]),
        q(
            "SADD",
            [vec!["bigset".into()], n(600, &|i| vec![format!("m{i}")])].concat(),
        ),
        q(
            "HSET",
            vec![
                "hash".into(),
                "f".into(),
                "v".into(),
                "g".into(),
                "12".into(),
            ],
        ),
        q(
            "HSET",
            [
                vec!["bighash".into()],
                n(600, &|i| vec![format!("f{i}"), format!("v{i}")]),
            ]
            .concat(),
        ),
        q(
            "ZADD",
            vec![
                "zset".into(),
                "1".into(),
                "a".into(),
                "-2.5".into(),
                "b".into(),
            ],
        ),
        q(
            "ZADD",
            [
                vec!["bigzset".into()],
                n(600, &|i| vec![format!("{}.25", i), format!("z{i}")]),
            ]
            .concat(),
        ),
        q(
            "PFADD",
            vec!["hll".into(), "a".into(), "b".into(), "c".into()],
        ),
    ];
    for cmd in cmds {
        let _: redis::Value = cmd.query(&mut c).unwrap();
    }
}

/// A key's type, encoding and content in a comparable form (members sorted).
fn describe(c: &mut redis::Connection, key: &str) -> String {
    let t: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(c)
        .unwrap();
    let mut items: Vec<Vec<u8>> = match t.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query(c).unwrap()],
        "list" => redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(c)
            .unwrap(),
        "set" => redis::cmd("SMEMBERS").arg(key).query(c).unwrap(),
        "hash" => redis::cmd("HGETALL").arg(key).query(c).unwrap(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(c)
            .unwrap(),
        other => panic!("unexpected type {other}"),
    };
    match t.as_str() {
        "set" => items.sort(),
        "hash" => {
            let mut pairs: Vec<Vec<Vec<u8>>> = items.chunks(2).map(<[_]>::to_vec).collect();
            pairs.sort();
            items = pairs.concat();
        }
        _ => {}
    }
    format!("{t} {enc} {items:?}")
}

/// Every key of `from`, restored under a new name on `from` itself and on `to`, is the same
/// value in the same encoding on both.
fn restores_on(from: &ServerGuard, to: &ServerGuard) {
    let (mut f, mut t) = (from.con(), to.con());
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut f).unwrap();
    keys.retain(|k| !k.starts_with("restored:"));
    assert_eq!(keys.len(), 13, "{keys:?}");
    for key in keys {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut f).unwrap();
        let copy = format!("restored:{key}");
        for c in [&mut f, &mut t] {
            let _: () = redis::cmd("RESTORE")
                .arg(&copy)
                .arg(0)
                .arg(&payload)
                .arg("REPLACE")
                .query(c)
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert_eq!(
            describe(&mut t, &copy),
            describe(&mut f, &copy),
            "{key} from {} to {}",
            from.name(),
            to.name()
        );
    }
}

#[test]
fn payloads_restore_on_the_other_server() {
    if !redis_available() {
        return;
    }
    let redis = start_redis_server(&[]);
    let tandem = start_tandem(&[]);
    fill(&redis);
    fill(&tandem);
    restores_on(&redis, &tandem);
    restores_on(&tandem, &redis);
}

#[test]
fn restore_reaches_a_redis_replica_with_an_absolute_ttl() {
    if !redis_available() {
        return;
    }
    let master = start_tandem(&[]);
    let replica = start_redis_server(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut c = master.con();
    let _: () = redis::cmd("SET").arg("src").arg("v").query(&mut c).unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("src").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("ttl")
        .arg(100_000)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("src")
        .arg(0)
        .arg(&payload)
        .arg("REPLACE")
        .arg("IDLETIME")
        .arg(50)
        .query(&mut c)
        .unwrap();
    // Restored already expired over an existing key: the key goes, as a DEL.
    let _: () = redis::cmd("SET")
        .arg("gone")
        .arg("v")
        .query(&mut c)
        .unwrap();
    wait_in_sync(&master, &replica);
    let _: () = redis::cmd("RESTORE")
        .arg("gone")
        .arg(1)
        .arg(&payload)
        .arg("REPLACE")
        .arg("ABSTTL")
        .query(&mut c)
        .unwrap();
    wait_in_sync(&master, &replica);
    let exists = |p: &ServerGuard| -> i64 {
        redis::cmd("EXISTS")
            .arg("gone")
            .query(&mut p.con())
            .unwrap()
    };
    assert_eq!((exists(&master), exists(&replica)), (0, 0));
    let at = |p: &ServerGuard, key: &str| -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(key)
            .query(&mut p.con())
            .unwrap()
    };
    assert!(at(&master, "ttl") > 0);
    assert_eq!(at(&replica, "ttl"), at(&master, "ttl"));
    assert_eq!(at(&replica, "src"), -1);
}

/// MIGRATE moves every type between tandem and Redis 7.0 in both directions (and between
/// tandem servers): KEYS, COPY, REPLACE, AUTH, the target database, TTLs kept, the source's
/// keys deleted only when the target accepted them, and the target's errors reported as
/// Redis words them.
#[test]
fn migrate_moves_keys_between_servers() {
    let redis = redis_available();
    let mut pairs = vec![("tandem", "tandem")];
    if redis {
        pairs.extend([("tandem", "redis"), ("redis", "tandem")]);
    }
    for (from_kind, to_kind) in pairs {
        let start = |kind: &str, extra: &[&str]| {
            if kind == "redis" {
                start_redis_server(extra)
            } else {
                start_tandem(extra)
            }
        };
        let case = format!("{from_kind} -> {to_kind}");
        let from = start(from_kind, &[]);
        let to = start(to_kind, &["--requirepass", "pw"]);
        fill(&from);
        let (mut f, mut t) = (from.con(), to.con());
        let _: () = redis::cmd("AUTH").arg("pw").query(&mut t).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut f).unwrap();
        keys.sort();
        // Type and content (a restored value's encoding is the target's choice: a PFADDed
        // string is raw on the source and embstr once restored, on Redis as on tandem).
        let content = |c: &mut redis::Connection, k: &str| {
            let d = describe(c, k);
            let mut parts = d.splitn(3, ' ');
            let (t, _, items) = (parts.next(), parts.next(), parts.next());
            format!("{} {}", t.unwrap_or_default(), items.unwrap_or_default())
        };
        let before: Vec<String> = keys.iter().map(|k| content(&mut f, k)).collect();
        let _: () = redis::cmd("PEXPIRE")
            .arg(&keys[0])
            .arg(100_000)
            .query(&mut f)
            .unwrap();
        let port = to.port.to_string();
        let migrate = |c: &mut redis::Connection, extra: &[&str], ks: &[String]| {
            let mut cmd = redis::cmd("MIGRATE");
            cmd.arg("127.0.0.1").arg(&port).arg("").arg(3).arg(5000);
            cmd.arg(extra).arg("KEYS").arg(ks);
            cmd.query::<String>(c)
        };
        // Without the password the target refuses, and nothing moves.
        let err = migrate(&mut f, &[], &keys).unwrap_err();
        assert!(
            err.to_string()
                .contains("Target instance replied with error: NOAUTH"),
            "{case}: {err}"
        );
        // COPY keeps the source's keys.
        assert_eq!(
            migrate(&mut f, &["COPY", "AUTH", "pw"], &keys).unwrap(),
            "OK",
            "{case}"
        );
        let left: usize = redis::cmd("DBSIZE").query(&mut f).unwrap();
        assert_eq!(left, keys.len(), "{case}");
        // A second copy meets the keys already there: BUSYKEY, unless REPLACE.
        let err = migrate(&mut f, &["COPY", "AUTH", "pw"], &keys).unwrap_err();
        assert!(err.to_string().contains("BUSYKEY"), "{case}: {err}");
        assert_eq!(
            migrate(&mut f, &["REPLACE", "AUTH2", "default", "pw"], &keys).unwrap(),
            "OK",
            "{case}"
        );
        let left: usize = redis::cmd("DBSIZE").query(&mut f).unwrap();
        assert_eq!(left, 0, "{case}: the moved keys are deleted");
        let _: () = redis::cmd("SELECT").arg(3).query(&mut t).unwrap();
        for (k, b) in keys.iter().zip(&before) {
            let a = content(&mut t, k);
            assert!(
                a == *b,
                "{case}: {k} differs: {} / {}",
                &a[..a.len().min(120)],
                &b[..b.len().min(120)]
            );
        }
        let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query(&mut t).unwrap();
        assert!(ttl > 90_000 && ttl <= 100_000, "{case}: TTL {ttl}");
        let none: String = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(&port)
            .arg("gone")
            .arg(0)
            .arg(1000)
            .query(&mut f)
            .unwrap();
        assert_eq!(none, "NOKEY", "{case}");
    }
}
