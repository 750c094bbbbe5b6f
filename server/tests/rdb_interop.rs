//! Interop with a real Redis 7.0: files from our writer load in redis-server with the same
//! content and `DEBUG DIGEST` as a Redis fed the equivalent commands, and files Redis SAVEs
//! read back to the dataset it was given. Skipped (with a printed reason) when redis-server
//! is missing, unless TANDEM_REQUIRE_REAL_DEPS=1.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tandem_server::rdb::{
    Aux, Item, RdbConsumer, RdbGroup, RdbReader, RdbStream, RdbStreamMeta, RdbValue, RdbWriter,
    WriterOptions,
};
use tandem_testkit::{Launch, redis_available};

mod common;

type Dataset = BTreeMap<u32, BTreeMap<Vec<u8>, (RdbValue, Option<u64>)>>;

/// redis-server with `x.rdb` as its dump file.
fn redis_server() -> Launch {
    Launch::redis("redis-server").args(&["--dbfilename", "x.rdb"])
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-rdb-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A mixed dataset that exercises every encoding choice on both sides.
fn dataset() -> Dataset {
    let future = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let mut db0 = BTreeMap::new();
    let mut put = |k: &str, v: RdbValue, e: Option<u64>| {
        db0.insert(b(k), (v, e));
    };
    put("str:raw", RdbValue::String(b("hello world")), None);
    put("str:int", RdbValue::String(b("12345")), None);
    put("str:negint", RdbValue::String(b("-7")), None);
    put(
        "str:bigint",
        RdbValue::String(b("4611686018427387904")),
        None,
    );
    put("str:leading-zero", RdbValue::String(b("007")), None);
    put("str:binary", RdbValue::String((0..=255u8).collect()), None);
    put("str:long", RdbValue::String(b("abc").repeat(400)), None);
    put("str:ttl", RdbValue::String(b("expires")), Some(future));
    put("str:empty", RdbValue::String(Vec::new()), None);
    put(
        "list:small",
        RdbValue::List(vec![b("a"), b("b"), b("3"), b("-4")]),
        None,
    );
    put(
        "list:big",
        RdbValue::List(
            (0..1000)
                .map(|i| format!("element-{i}").into_bytes())
                .collect(),
        ),
        None,
    );
    put(
        "list:plain",
        RdbValue::List(vec![b("x"), vec![b'p'; 10_000], b("y"), vec![b'q'; 5000]]),
        Some(future + 1),
    );
    put(
        "set:intset",
        RdbValue::Set(vec![b("1"), b("100000"), b("-3"), b("2")]),
        None,
    );
    put(
        "set:big",
        RdbValue::Set(
            (0..700)
                .map(|i| format!("member-{i}").into_bytes())
                .collect(),
        ),
        None,
    );
    put(
        "hash:small",
        RdbValue::Hash(vec![(b("f1"), b("v1")), (b("f2"), b("2"))]),
        Some(future + 2),
    );
    put(
        "hash:big",
        RdbValue::Hash(
            (0..300)
                .map(|i| {
                    (
                        format!("field{i}").into_bytes(),
                        format!("value{i}").into_bytes(),
                    )
                })
                .collect(),
        ),
        None,
    );
    put(
        "hash:longvalue",
        RdbValue::Hash(vec![(b("f"), vec![b'y'; 100])]),
        None,
    );
    put(
        "zset:small",
        RdbValue::ZSet(vec![
            (b("c"), -3.0),
            (b("a"), 1.0),
            (b("b"), 2.5),
            (b("i"), f64::INFINITY),
        ]),
        None,
    );
    put(
        "zset:big",
        RdbValue::ZSet(
            (0..500)
                .map(|i| (format!("m{i}").into_bytes(), f64::from(i) / 7.0))
                .collect(),
        ),
        None,
    );
    put(
        "zset:longmember",
        RdbValue::ZSet(vec![(vec![b'z'; 80], 1e300), (b("n"), f64::NEG_INFINITY)]),
        None,
    );
    put("stream:small", small_stream(), None);
    put("stream:big", big_stream(), Some(future));
    put(
        "stream:empty",
        RdbValue::Stream(Box::new(RdbStream {
            meta: RdbStreamMeta {
                last_id: (5, 0),
                max_deleted: (4, 0),
                entries_added: 3,
                ..RdbStreamMeta::default()
            },
            groups: vec![RdbGroup {
                name: b("g"),
                last_id: (5, 0),
                entries_read: Some(3),
                ..RdbGroup::default()
            }],
            ..RdbStream::default()
        })),
        None,
    );
    let mut data = Dataset::new();
    data.insert(0, db0);
    for db in [1u32, 15] {
        let mut keys = BTreeMap::new();
        keys.insert(
            format!("db{db}:key").into_bytes(),
            (
                RdbValue::String(format!("in database {db}").into_bytes()),
                None,
            ),
        );
        keys.insert(
            format!("db{db}:list").into_bytes(),
            (RdbValue::List(vec![b("1"), b("2"), b("3")]), None),
        );
        data.insert(db, keys);
    }
    data
}

/// Entries with and without their node's field names, integers and strings, a recorded
/// tombstone and counters set by XSETID.
fn small_stream() -> RdbValue {
    let pairs = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (b(k), b(v))).collect::<Vec<_>>();
    RdbValue::Stream(Box::new(RdbStream {
        entries: vec![
            ((1, 1), pairs(&[("f", "1"), ("g", "two")])),
            ((1, 2), pairs(&[("f", "-3"), ("g", "4")])),
            ((2, 0), pairs(&[("h", "x"), ("f", "")])),
        ],
        meta: RdbStreamMeta {
            last_id: (10, 0),
            first_id: (1, 1),
            max_deleted: (9, 9),
            entries_added: 7,
        },
        groups: Vec::new(),
    }))
}

/// Several nodes of entries, two groups: one with pending entries of two consumers (and a
/// consumer owning none), one whose read counter is unknown.
fn big_stream() -> RdbValue {
    let entries: Vec<_> = (0..450u64)
        .map(|i| {
            let value = if i % 3 == 0 {
                i.to_string()
            } else {
                "v".repeat((i % 40) as usize)
            };
            (
                (1_700_000_000_000 + i / 2, i % 2),
                vec![(b("field"), value.into_bytes()), (b("n"), b("x"))],
            )
        })
        .collect();
    let ids: Vec<_> = entries.iter().map(|e| e.0).collect();
    let pel: Vec<_> = [3usize, 10, 11, 200]
        .iter()
        .map(|&j| (ids[j], 1_700_000_100_000 + j as u64, j as u64 % 4 + 1))
        .collect();
    let consumer = |name: &str, own: &[usize]| RdbConsumer {
        name: b(name),
        seen_time: 0,
        pel: own.iter().map(|&j| ids[j]).collect(),
    };
    RdbValue::Stream(Box::new(RdbStream {
        meta: RdbStreamMeta {
            last_id: ids[449],
            first_id: ids[0],
            max_deleted: (0, 0),
            entries_added: 450,
        },
        entries,
        groups: vec![
            RdbGroup {
                name: b("g1"),
                last_id: ids[200],
                entries_read: Some(201),
                pel,
                consumers: vec![
                    consumer("alice", &[3, 11]),
                    consumer("bob", &[10, 200]),
                    consumer("carol", &[]),
                ],
            },
            RdbGroup {
                name: b("g2"),
                last_id: (0, 0),
                entries_read: Some(-1),
                ..RdbGroup::default()
            },
        ],
    }))
}

fn id_arg((ms, seq): (u64, u64)) -> String {
    format!("{ms}-{seq}")
}

/// The commands that build a stream in Redis: entries, counters, groups, consumers and
/// pending entries (XCLAIM ... FORCE with their delivery time and count, as replication
/// sends them).
fn stream_commands(k: &[u8], s: &RdbStream) -> Vec<redis::Cmd> {
    let mut out = Vec::new();
    for (id, fields) in &s.entries {
        let mut c = redis::cmd("XADD");
        c.arg(k).arg(id_arg(*id));
        for (f, v) in fields {
            c.arg(f).arg(v);
        }
        out.push(c);
    }
    if s.entries.is_empty() {
        let mut c = redis::cmd("XGROUP");
        c.arg("CREATE").arg(k).arg("tmp").arg("0").arg("MKSTREAM");
        out.push(c);
        let mut c = redis::cmd("XGROUP");
        c.arg("DESTROY").arg(k).arg("tmp");
        out.push(c);
    }
    let mut c = redis::cmd("XSETID");
    c.arg(k)
        .arg(id_arg(s.meta.last_id))
        .arg("ENTRIESADDED")
        .arg(s.meta.entries_added)
        .arg("MAXDELETEDID")
        .arg(id_arg(s.meta.max_deleted));
    out.push(c);
    for g in &s.groups {
        let mut c = redis::cmd("XGROUP");
        c.arg("CREATE")
            .arg(k)
            .arg(&g.name)
            .arg(id_arg(g.last_id))
            .arg("ENTRIESREAD")
            .arg(g.entries_read.unwrap_or(-1));
        out.push(c);
        for consumer in &g.consumers {
            let mut c = redis::cmd("XGROUP");
            c.arg("CREATECONSUMER")
                .arg(k)
                .arg(&g.name)
                .arg(&consumer.name);
            out.push(c);
            for id in &consumer.pel {
                let (_, time, count) = g.pel.iter().find(|p| p.0 == *id).copied().unwrap();
                let mut c = redis::cmd("XCLAIM");
                c.arg(k)
                    .arg(&g.name)
                    .arg(&consumer.name)
                    .arg(0)
                    .arg(id_arg(*id))
                    .arg("TIME")
                    .arg(time)
                    .arg("RETRYCOUNT")
                    .arg(count)
                    .arg("FORCE")
                    .arg("JUSTID");
                out.push(c);
            }
        }
    }
    out
}

/// Consumers' seen times are the clock of the server that created them: left out of the
/// comparison.
fn without_seen_times(v: RdbValue) -> RdbValue {
    match v {
        RdbValue::Stream(mut s) => {
            for g in &mut s.groups {
                for c in &mut g.consumers {
                    c.seen_time = 0;
                }
            }
            RdbValue::Stream(s)
        }
        other => other,
    }
}

fn score_arg(s: f64) -> String {
    if s.is_infinite() {
        (if s > 0.0 { "inf" } else { "-inf" }).to_string()
    } else {
        format!("{s:?}")
    }
}

/// Feeds `data` to a Redis with commands.
fn apply(con: &mut redis::Connection, data: &Dataset) {
    for (db, keys) in data {
        redis::cmd("SELECT").arg(*db).query::<()>(con).unwrap();
        for (k, (v, e)) in keys {
            let c = match v {
                RdbValue::Stream(s) => {
                    for c in stream_commands(k, s) {
                        c.query::<()>(con).unwrap();
                    }
                    redis::cmd("EXISTS").arg(k).clone()
                }
                RdbValue::String(s) => redis::cmd("SET").arg(k).arg(s).clone(),
                RdbValue::List(items) => redis::cmd("RPUSH").arg(k).arg(items).clone(),
                RdbValue::Set(items) => redis::cmd("SADD").arg(k).arg(items).clone(),
                RdbValue::Hash(pairs) => {
                    let mut c = redis::cmd("HSET");
                    c.arg(k);
                    for (f, v) in pairs {
                        c.arg(f).arg(v);
                    }
                    c
                }
                RdbValue::ZSet(pairs) => {
                    let mut c = redis::cmd("ZADD");
                    c.arg(k);
                    for (m, s) in pairs {
                        c.arg(score_arg(*s)).arg(m);
                    }
                    c
                }
            };
            c.query::<()>(con).unwrap();
            if let Some(ms) = e {
                redis::cmd("PEXPIREAT")
                    .arg(k)
                    .arg(*ms)
                    .query::<()>(con)
                    .unwrap();
            }
        }
    }
}

fn write_rdb(data: &Dataset, path: &Path, opts: WriterOptions) {
    let aux = Aux {
        redis_ver: Some("7.0.15".into()),
        redis_bits: Some(64),
        ctime: Some(1_700_000_000),
        used_mem: Some(1 << 20),
        aof_base: Some(0),
        ..Aux::default()
    };
    let file = std::io::BufWriter::new(File::create(path).unwrap());
    let mut w = RdbWriter::new(file, opts, &aux).unwrap();
    for (db, keys) in data {
        let expires = keys.values().filter(|(_, e)| e.is_some()).count() as u64;
        w.select_db(*db, keys.len() as u64, expires).unwrap();
        for (k, (v, e)) in keys {
            w.write_value(k, v, *e).unwrap();
        }
    }
    w.finish().unwrap();
}

fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
}

#[test]
fn redis_loads_what_we_write() {
    if !redis_available() {
        return;
    }
    let data = dataset();
    let reference = redis_server().start();
    let mut rcon = reference.con();
    apply(&mut rcon, &data);
    let want_digest = digest(&mut rcon);
    assert_ne!(want_digest, "0".repeat(40));
    for (i, opts) in [
        WriterOptions {
            compression: true,
            checksum: true,
        },
        WriterOptions {
            compression: false,
            checksum: false,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let dir = temp_dir(&format!("load{i}"));
        write_rdb(&data, &dir.join("x.rdb"), opts);
        let loaded = redis_server().dir(&dir).start();
        let mut con = loaded.con();
        assert_eq!(digest(&mut con), want_digest, "DEBUG DIGEST with {opts:?}");
        for (db, keys) in &data {
            redis::cmd("SELECT").arg(*db).query::<()>(&mut con).unwrap();
            redis::cmd("SELECT")
                .arg(*db)
                .query::<()>(&mut rcon)
                .unwrap();
            let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
            assert_eq!(size, keys.len());
            for (k, (v, e)) in keys {
                let ty: String = redis::cmd("TYPE").arg(k).query(&mut con).unwrap();
                assert_eq!(ty, v.type_name());
                let dv: Vec<String> = redis::cmd("DEBUG")
                    .arg("DIGEST-VALUE")
                    .arg(k)
                    .query(&mut con)
                    .unwrap();
                let rv: Vec<String> = redis::cmd("DEBUG")
                    .arg("DIGEST-VALUE")
                    .arg(k)
                    .query(&mut rcon)
                    .unwrap();
                assert_eq!(dv, rv, "digest of {}", String::from_utf8_lossy(k));
                if ty == "stream" {
                    assert_eq!(
                        common::stream_state(&mut con, k),
                        common::stream_state(&mut rcon, k)
                    );
                }
                let pexpiretime: i64 = redis::cmd("PEXPIRETIME").arg(k).query(&mut con).unwrap();
                assert_eq!(pexpiretime, e.map_or(-1, |ms| ms as i64));
            }
        }
        redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
        let got: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg("list:plain")
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(got[1], vec![b'p'; 10_000]);
        let score: f64 = redis::cmd("ZSCORE")
            .arg("zset:small")
            .arg("b")
            .query(&mut con)
            .unwrap();
        assert_eq!(score, 2.5);
        let s: Vec<u8> = redis::cmd("GET").arg("str:binary").query(&mut con).unwrap();
        assert_eq!(s, (0..=255u8).collect::<Vec<_>>());
        drop(loaded);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn we_read_what_redis_saves() {
    if !redis_available() {
        return;
    }
    let data = dataset();
    // LRU and LFU policies make Redis write IDLE and FREQ opcodes; list-compress-depth makes
    // it write LZF-compressed quicklist nodes.
    for (compression, policy) in [("yes", "allkeys-lru"), ("no", "allkeys-lfu")] {
        let server = redis_server().start();
        let mut con = server.con();
        for (name, value) in [
            ("rdbcompression", compression),
            ("maxmemory-policy", policy),
            ("list-compress-depth", "1"),
        ] {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query::<()>(&mut con)
                .unwrap();
        }
        apply(&mut con, &data);
        redis::cmd("SAVE").query::<()>(&mut con).unwrap();
        let reader = RdbReader::new(BufReader::new(
            File::open(server.dir().join("x.rdb")).unwrap(),
        ))
        .unwrap();
        let mut got = Dataset::new();
        for item in reader {
            if let Item::Entry(e) = item.unwrap() {
                got.entry(e.db).or_default().insert(
                    e.key,
                    (without_seen_times(e.value.canonical()), e.expire_ms),
                );
            }
        }
        let want: Dataset = data
            .iter()
            .map(|(db, keys)| {
                (
                    *db,
                    keys.iter()
                        .map(|(k, (v, e))| (k.clone(), (without_seen_times(v.canonical()), *e)))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "rdbcompression {compression}");
    }
}
