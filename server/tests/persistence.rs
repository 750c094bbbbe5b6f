//! Persistence end to end, with real processes: the built `tandem-server` binary in a temp
//! directory on a free port (and redis-server 7.0 for interop; those tests print a reason
//! and return when it is missing, unless TANDEM_REQUIRE_REAL_DEPS=1).
//!
//! Every wait polls with a deadline; nothing sleeps a fixed time to let something happen.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tandem_server::rdb::{Aux, Item, RdbReader, RdbValue, RdbWriter, WriterOptions};
use tandem_testkit::{Launch, ServerGuard, poll, redis_available};

mod common;

use common::{digest, interop_commands, now_ms, run, temp_dir};

/// tandem-server with `dir` as its `dir`, once it answers PING (loaded).
fn start_tandem_in(dir: &Path, args: &[&str]) -> ServerGuard {
    common::tandem().dir(dir).args(args).start()
}

/// tandem-server with `dir` as its `dir`, not waited for.
fn spawn_tandem_in(dir: &Path, args: &[&str]) -> ServerGuard {
    common::tandem()
        .dir(dir)
        .args(args)
        .spawn()
        .expect("spawn tandem-server")
}

fn start_redis_in(dir: &Path, args: &[&str]) -> ServerGuard {
    Launch::redis("redis-server").dir(dir).args(args).start()
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

fn wait_bgsave_done(con: &mut redis::Connection) {
    poll("BGSAVE to finish", Duration::from_secs(120), || {
        (info_field(con, "rdb_bgsave_in_progress") == "0").then_some(())
    });
}

/// Every key of a dump: (db, key) -> (value, expiry).
type Dump = BTreeMap<(u32, Vec<u8>), (RdbValue, Option<u64>)>;

fn read_dump(path: &Path) -> Dump {
    let mut out = BTreeMap::new();
    for item in RdbReader::new(File::open(path).unwrap()).unwrap() {
        if let Item::Entry(e) = item.unwrap() {
            let old = out.insert((e.db, e.key), (e.value, e.expire_ms));
            assert!(old.is_none(), "a key appears twice in the dump");
        }
    }
    out
}

#[test]
fn save_then_restart_loads_the_same_data() {
    let dir = temp_dir("restart");
    let far = now_ms() + 3_600_000;
    let mut expected = BTreeMap::new();
    {
        let mut srv = start_tandem_in(&dir, &["--save", ""]);
        let mut con = srv.con();
        for i in 0..2000 {
            let db = (i % 3) * 5;
            let key = format!("key:{i}");
            let value = match i % 4 {
                0 => i.to_string(),
                1 => format!("value-{i}"),
                2 => "x".repeat(100 + i),
                _ => String::new(),
            };
            run(&mut con, &["SELECT", &db.to_string()]).unwrap();
            run(&mut con, &["SET", &key, &value]).unwrap();
            let expire = (i % 10 == 0).then(|| far + i as u64);
            if let Some(at) = expire {
                run(&mut con, &["PEXPIREAT", &key, &at.to_string()]).unwrap();
            }
            expected.insert((db as u32, key.into_bytes()), (value, expire));
        }
        // Expires before the restart: a master drops it on load.
        run(&mut con, &["SELECT", "0"]).unwrap();
        run(&mut con, &["SET", "gone", "1", "PX", "50"]).unwrap();
        let gone_at = now_ms() + 50;
        assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "2201");
        let before_save = now_ms() / 1000;
        let reply: String = redis::cmd("SAVE").query(&mut con).unwrap();
        assert_eq!(reply, "OK");
        assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
        let lastsave: u64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
        assert!(lastsave >= before_save);
        assert!(srv.log().contains("DB saved on disk"));
        let dump = read_dump(&dir.join("dump.rdb"));
        assert_eq!(dump.len(), 2001);
        poll("key 'gone' to expire", Duration::from_secs(10), || {
            (now_ms() > gone_at).then_some(())
        });
        let _: redis::Value = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query(&mut con)
            .unwrap_or(redis::Value::Nil);
        let status = srv.wait_exit(Duration::from_secs(20));
        assert!(status.success());
    }
    assert!(
        !dir.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("temp-")),
        "no temp file left behind"
    );
    let srv = start_tandem_in(&dir, &["--save", ""]);
    let mut con = srv.con();
    assert_eq!(info_field(&mut con, "rdb_last_load_keys_loaded"), "2000");
    assert_eq!(info_field(&mut con, "rdb_last_load_keys_expired"), "1");
    for ((db, key), (value, expire)) in &expected {
        run(&mut con, &["SELECT", &db.to_string()]).unwrap();
        let key = std::str::from_utf8(key).unwrap();
        let got: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(&got, value, "{key}");
        let pttl: i64 = redis::cmd("PEXPIRETIME")
            .arg(key)
            .query(&mut con)
            .unwrap_or(-3);
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
        match expire {
            Some(at) => {
                assert!(ttl > 0, "{key} lost its expiry");
                if pttl != -3 {
                    assert_eq!(pttl, *at as i64);
                }
            }
            None => assert_eq!(ttl, -1, "{key}"),
        }
    }
    let log = srv.log();
    for line in [
        "Loading RDB produced by version 7.0.15",
        "Done loading RDB, keys loaded: 2000, keys expired: 1.",
        "DB loaded from disk:",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ordered write sequence of the gap-free test: step `i` (from 1) runs INCR counter,
/// SET seq:<i> <i>, SET pre:<i * 7919 % PRE> <i>.
const PRE: usize = 100_000;

fn apply_prefix(state: &mut BTreeMap<Vec<u8>, Vec<u8>>, commands: usize) {
    for n in 0..commands {
        let i = n / 3 + 1;
        match n % 3 {
            0 => {
                state.insert(b"counter".to_vec(), i.to_string().into_bytes());
            }
            1 => {
                state.insert(format!("seq:{i}").into_bytes(), i.to_string().into_bytes());
            }
            _ => {
                state.insert(
                    format!("pre:{}", i * 7919 % PRE).into_bytes(),
                    i.to_string().into_bytes(),
                );
            }
        }
    }
}

#[test]
fn bgsave_under_ordered_writes_is_a_gap_free_prefix() {
    let dir = temp_dir("prefix");
    let srv = start_tandem_in(&dir, &["--save", ""]);
    let mut con = srv.con();
    let mut initial = BTreeMap::new();
    for chunk in (0..PRE).collect::<Vec<_>>().chunks(1000) {
        let mut mset = redis::cmd("MSET");
        for j in chunk {
            let (k, v) = (
                format!("pre:{j}"),
                format!("initial-{j}-{}", "v".repeat(64)),
            );
            mset.arg(&k).arg(&v);
            initial.insert(k.into_bytes(), v.into_bytes());
        }
        let _: String = mset.query(&mut con).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU32::new(0));
    let writer = {
        let (stop, started) = (stop.clone(), started.clone());
        let mut wcon = srv.con();
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let c: usize = redis::cmd("INCR").arg("counter").query(&mut wcon).unwrap();
                assert_eq!(c, i);
                let _: String = redis::cmd("SET")
                    .arg(format!("seq:{i}"))
                    .arg(i)
                    .query(&mut wcon)
                    .unwrap();
                let _: String = redis::cmd("SET")
                    .arg(format!("pre:{}", i * 7919 % PRE))
                    .arg(i)
                    .query(&mut wcon)
                    .unwrap();
                started.store(i as u32, Ordering::Relaxed);
            }
            i
        })
    };
    poll("the writer to start", Duration::from_secs(20), || {
        (started.load(Ordering::Relaxed) > 50).then_some(())
    });
    let reply: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(reply, "Background saving started");
    let at_start = started.load(Ordering::Relaxed);
    let again = redis::cmd("BGSAVE").query::<String>(&mut con);
    if let Err(e) = again {
        assert!(
            e.to_string()
                .contains("Background save already in progress"),
            "{e}"
        );
    }
    wait_bgsave_done(&mut con);
    let at_end = started.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let total = writer.join().unwrap();
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    assert!(
        at_end > at_start,
        "the writes did not overlap the BGSAVE ({at_start}..{at_end}); the test proves nothing"
    );
    let dump: BTreeMap<Vec<u8>, Vec<u8>> = read_dump(&dir.join("dump.rdb"))
        .into_iter()
        .map(|((db, k), (v, _))| {
            assert_eq!(db, 0);
            let RdbValue::String(v) = v else {
                panic!("string expected")
            };
            (k, v)
        })
        .collect();
    let counter: usize = std::str::from_utf8(&dump[&b"counter".to_vec()])
        .unwrap()
        .parse()
        .unwrap();
    assert!(counter >= at_start as usize && counter <= total);
    // The dump is the state after exactly one prefix of the command sequence.
    let matching = (3 * (counter - 1) + 1..=3 * counter).find(|&len| {
        let mut state = initial.clone();
        apply_prefix(&mut state, len);
        state == dump
    });
    assert!(
        matching.is_some(),
        "the dump (counter {counter}) is not a prefix of the write sequence"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgsave_schedule_runs_after_the_current_one() {
    let dir = temp_dir("schedule");
    let srv = start_tandem_in(&dir, &["--save", ""]);
    let mut con = srv.con();
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(1000) {
        let mut mset = redis::cmd("MSET");
        for j in chunk {
            mset.arg(format!("k{j}")).arg("v".repeat(100));
        }
        let _: String = mset.query(&mut con).unwrap();
    }
    let err = run(&mut con, &["BGSAVE", "NOW"]).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    let first: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(first, "Background saving started");
    let second: String = redis::cmd("BGSAVE")
        .arg("SCHEDULE")
        .query(&mut con)
        .unwrap();
    assert!(
        second == "Background saving scheduled" || second == "Background saving started",
        "{second}"
    );
    poll("both saves", Duration::from_secs(120), || {
        (info_field(&mut con, "rdb_saves") == "2"
            && info_field(&mut con, "rdb_bgsave_in_progress") == "0")
            .then_some(())
    });
    assert_eq!(read_dump(&dir.join("dump.rdb")).len(), 100_000);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flushall_kills_a_running_bgsave_and_saves_the_empty_dataset() {
    let dir = temp_dir("flushall");
    let srv = start_tandem_in(&dir, &["--save", "3600 1"]);
    let mut con = srv.con();
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(1000) {
        let mut mset = redis::cmd("MSET");
        for j in chunk {
            mset.arg(format!("k{j}")).arg("v".repeat(200));
        }
        let _: String = mset.query(&mut con).unwrap();
    }
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    run(&mut con, &["FLUSHALL"]).unwrap();
    assert_eq!(info_field(&mut con, "rdb_bgsave_in_progress"), "0");
    assert!(read_dump(&dir.join("dump.rdb")).is_empty());
    run(&mut con, &["SET", "after", "1"]).unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    wait_bgsave_done(&mut con);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    assert_eq!(read_dump(&dir.join("dump.rdb")).len(), 1);
    assert!(
        !dir.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("temp-")),
        "the killed save left its temp file"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tandem_dump_loads_into_redis_with_the_same_digest() {
    if !redis_available() {
        return;
    }
    let tdir = temp_dir("t2r-tandem");
    let rdir = temp_dir("t2r-redis");
    let cmds = interop_commands();
    let reference = {
        let r = start_redis_in(&rdir, &["--save", ""]);
        let mut con = r.con();
        for c in &cmds {
            let w: Vec<&str> = c.iter().map(String::as_str).collect();
            run(&mut con, &w).unwrap();
        }
        digest(&mut con)
    };
    for compression in ["yes", "no"] {
        let t = start_tandem_in(&tdir, &["--save", "", "--rdbcompression", compression]);
        let mut con = t.con();
        run(&mut con, &["FLUSHALL"]).unwrap();
        for c in &cmds {
            let w: Vec<&str> = c.iter().map(String::as_str).collect();
            run(&mut con, &w).unwrap();
        }
        let _: String = redis::cmd("SAVE").query(&mut con).unwrap();
        drop(t);
        let loaded = start_redis_in(&tdir, &["--save", ""]);
        let mut rcon = loaded.con();
        assert_eq!(
            digest(&mut rcon),
            reference,
            "redis loaded tandem's dump (rdbcompression {compression}) with another digest"
        );
        drop(loaded);
    }
    let _ = std::fs::remove_dir_all(&tdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[test]
fn redis_dump_loads_into_tandem_and_round_trips() {
    if !redis_available() {
        return;
    }
    let rdir = temp_dir("r2t-redis");
    let tdir = temp_dir("r2t-tandem");
    let cmds = interop_commands();
    let reference = {
        let r = start_redis_in(&rdir, &["--save", ""]);
        let mut con = r.con();
        for c in &cmds {
            let w: Vec<&str> = c.iter().map(String::as_str).collect();
            run(&mut con, &w).unwrap();
        }
        let _: String = redis::cmd("SAVE").query(&mut con).unwrap();
        digest(&mut con)
    };
    std::fs::copy(rdir.join("dump.rdb"), tdir.join("dump.rdb")).unwrap();
    let t = start_tandem_in(&tdir, &["--save", ""]);
    let mut con = t.con();
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 323);
    let got: String = redis::cmd("GET")
        .arg("str:long-compressible")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, "abcdefgh".repeat(500));
    let _: String = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(t);
    let again = temp_dir("r2t-again");
    std::fs::copy(tdir.join("dump.rdb"), again.join("dump.rdb")).unwrap();
    let r = start_redis_in(&again, &["--save", ""]);
    let mut rcon = r.con();
    assert_eq!(digest(&mut rcon), reference);
    drop(r);
    for d in [rdir, tdir, again] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bgsave_under_writes_to_several_databases_loads_into_redis() {
    if !redis_available() {
        return;
    }
    let dir = temp_dir("multidb");
    let srv = start_tandem_in(&dir, &["--save", ""]);
    let mut con = srv.con();
    for db in [0, 3] {
        run(&mut con, &["SELECT", &db.to_string()]).unwrap();
        for chunk in (0..50_000).collect::<Vec<_>>().chunks(1000) {
            let mut mset = redis::cmd("MSET");
            for j in chunk {
                mset.arg(format!("k{j}"))
                    .arg(format!("{db}-{}", "v".repeat(80)));
            }
            let _: String = mset.query(&mut con).unwrap();
        }
    }
    run(&mut con, &["SELECT", "0"]).unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut w = srv.con();
        std::thread::spawn(move || {
            let mut i = 0u64;
            // Alternate databases so pre-images of both interleave in the stream.
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let db = if i.is_multiple_of(2) { "0" } else { "3" };
                run(&mut w, &["SELECT", db]).unwrap();
                let key = format!("k{}", i * 7919 % 50_000);
                run(&mut w, &["SET", &key, "changed"]).unwrap();
                run(&mut w, &["DEL", &format!("k{}", (i * 104_729) % 50_000)]).unwrap();
            }
        })
    };
    wait_bgsave_done(&mut con);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    // Every write came after the snapshot's instant: the dump holds the data as loaded.
    let dump = read_dump(&dir.join("dump.rdb"));
    let count = |db: u32| dump.keys().filter(|(d, _)| *d == db).count();
    assert_eq!((count(0), count(3)), (50_000, 50_000));
    drop(srv);
    let r = start_redis_in(&dir, &["--save", ""]);
    let mut rcon = r.con();
    for db in [0u32, 3] {
        run(&mut rcon, &["SELECT", &db.to_string()]).unwrap();
        let n: usize = redis::cmd("DBSIZE").query(&mut rcon).unwrap();
        assert_eq!(n, count(db), "redis loaded db {db} differently");
        for ((d, k), (v, _)) in dump.iter().filter(|((d, _), _)| *d == db).take(500) {
            let RdbValue::String(v) = v else {
                panic!("string expected")
            };
            let got: Vec<u8> = redis::cmd("GET").arg(k).query(&mut rcon).unwrap();
            assert_eq!(&got, v, "db {d}");
        }
    }
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A valid dump with `n` keys, written by the RDB layer.
fn write_dump(path: &Path, n: usize) {
    let mut w = RdbWriter::new(
        File::create(path).unwrap(),
        WriterOptions::default(),
        &Aux {
            redis_ver: Some("7.0.15".into()),
            ..Aux::default()
        },
    )
    .unwrap();
    w.select_db(0, n as u64, 0).unwrap();
    for i in 0..n {
        w.string(
            format!("key:{i}").as_bytes(),
            format!("value-{i}").as_bytes(),
            None,
        )
        .unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn corrupt_or_truncated_dump_is_refused_and_left_untouched() {
    let dir = temp_dir("corrupt");
    let good = dir.join("good.rdb");
    write_dump(&good, 50);
    let bytes = std::fs::read(&good).unwrap();
    let type_byte = bytes.windows(6).position(|w| w == b"key:10").unwrap() - 2;
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "truncated mid-key".into(),
            bytes[..bytes.len() / 2].to_vec(),
        ),
        (
            "truncated before the trailer".into(),
            bytes[..bytes.len() - 4].to_vec(),
        ),
        ("no EOF".into(), bytes[..bytes.len() - 9].to_vec()),
    ];
    let mut bad_type = bytes.clone();
    bad_type[type_byte] = 99;
    cases.push(("unknown type byte".into(), bad_type));
    let mut flipped = bytes.clone();
    let mid = flipped.len() - 20;
    flipped[mid] ^= 0x20;
    cases.push(("flipped data byte".into(), flipped));
    let mut dup = bytes.clone();
    let second = dup.windows(6).position(|w| w == b"key:11").unwrap();
    dup[second..second + 6].copy_from_slice(b"key:10");
    cases.push(("duplicated key".into(), dup));
    for (what, data) in cases {
        let case_dir = temp_dir("corrupt-case");
        std::fs::write(case_dir.join("dump.rdb"), &data).unwrap();
        let mut p = spawn_tandem_in(&case_dir, &["--save", "", "--rdbchecksum", "yes"]);
        let status = p.wait_exit(Duration::from_secs(30));
        assert!(!status.success(), "{what}: the server accepted the dump");
        let (stderr, log) = (p.stderr(), p.log());
        assert!(
            stderr.contains("Fatal error loading the DB") && stderr.contains("byte"),
            "{what}: stderr does not name the failure and its offset: {stderr}"
        );
        assert!(
            log.contains("Fatal error loading the DB"),
            "{what}: log: {log}"
        );
        if what == "duplicated key" {
            assert!(
                stderr.contains("RDB has duplicated key 'key:10' in DB 0"),
                "{stderr}"
            );
        }
        assert_eq!(
            std::fs::read(case_dir.join("dump.rdb")).unwrap(),
            data,
            "{what}: the dump was modified"
        );
        let _ = std::fs::remove_dir_all(case_dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_saves_keep_the_previous_dump_and_stop_writes() {
    let dir = temp_dir("failing");
    let srv = start_tandem_in(&dir, &["--save", "3600 1"]);
    let pid = srv.pid();
    let mut con = srv.con();
    run(&mut con, &["SET", "a", "1"]).unwrap();
    let _: String = redis::cmd("SAVE").query(&mut con).unwrap();
    let previous = std::fs::read(dir.join("dump.rdb")).unwrap();
    run(&mut con, &["SET", "b", "2"]).unwrap();

    // SAVE: the temp file cannot be created (a directory holds its name; works as root too).
    let blocker = dir.join(format!("temp-{pid}.rdb"));
    std::fs::create_dir(&blocker).unwrap();
    let err = redis::cmd("SAVE").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("ERR"));
    assert_eq!(std::fs::read(dir.join("dump.rdb")).unwrap(), previous);
    std::fs::remove_dir(&blocker).unwrap();

    // BGSAVE: the rename fails (dbfilename points into a missing directory).
    run(
        &mut con,
        &["CONFIG", "SET", "dbfilename", "missing/dump.rdb"],
    )
    .unwrap();
    let reply: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(reply, "Background saving started");
    wait_bgsave_done(&mut con);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "err");
    assert_eq!(std::fs::read(dir.join("dump.rdb")).unwrap(), previous);
    assert!(
        !dir.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("temp-")),
        "the failed save left its temp file"
    );
    for cmd in [&["SET", "c", "3"][..], &["PING"]] {
        let err = run(&mut con, cmd).unwrap_err();
        assert_eq!(err.code(), Some("MISCONF"), "{cmd:?}: {err}");
        assert!(
            err.to_string()
                .contains("stop-writes-on-bgsave-error option"),
            "{err}"
        );
    }
    let v: String = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(v, "1", "reads still work");
    assert!(srv.log().contains("Background saving error"));

    // A good save lifts the refusal.
    run(&mut con, &["CONFIG", "SET", "dbfilename", "dump.rdb"]).unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    wait_bgsave_done(&mut con);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    run(&mut con, &["SET", "c", "3"]).unwrap();
    assert_eq!(read_dump(&dir.join("dump.rdb")).len(), 2);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn loading_state_refuses_commands_until_the_dump_is_in() {
    let dir = temp_dir("loading");
    write_dump(&dir.join("dump.rdb"), 600_000);
    let srv = spawn_tandem_in(&dir, &["--save", ""]);
    let mut con = poll("a connection", Duration::from_secs(30), || {
        srv.try_con().ok()
    });
    let mut saw_loading = false;
    poll(
        "the load to finish",
        Duration::from_secs(120),
        || match run(&mut con, &["GET", "key:1"]) {
            Err(e) if e.code() == Some("LOADING") => {
                assert!(
                    e.to_string()
                        .contains("Redis is loading the dataset in memory")
                );
                if !saw_loading {
                    assert_eq!(info_field(&mut con, "loading"), "1");
                    // As in Redis 7.0, PING is no readiness check while loading.
                    let ping = run(&mut con, &["PING"]).unwrap_err();
                    assert_eq!(ping.code(), Some("LOADING"), "{ping}");
                }
                saw_loading = true;
                None
            }
            Ok(v) => Some(v),
            Err(e) => panic!("{e}"),
        },
    );
    assert!(
        saw_loading,
        "the load finished before any command could see it"
    );
    let n: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 600_000);
    assert_eq!(info_field(&mut con, "loading"), "0");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_with_save_points_and_flushall_resets_the_counter() {
    let dir = temp_dir("shutdown");
    let mut srv = start_tandem_in(&dir, &["--save", "3600 1"]);
    let mut con = srv.con();
    run(&mut con, &["SET", "a", "1"]).unwrap();
    run(&mut con, &["FLUSHALL"]).unwrap();
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
    assert!(read_dump(&dir.join("dump.rdb")).is_empty());
    run(&mut con, &["SET", "kept", "yes"]).unwrap();
    let err = run(&mut con, &["SHUTDOWN", "SAVE", "NOSAVE"]).unwrap_err();
    assert_eq!(err.code(), Some("ERR"));
    let err = run(&mut con, &["SHUTDOWN", "ABORT"]).unwrap_err();
    assert!(err.to_string().contains("No shutdown in progress"), "{err}");
    let _ = run(&mut con, &["SHUTDOWN"]);
    let status = srv.wait_exit(Duration::from_secs(30));
    assert!(status.success());
    let dump = read_dump(&dir.join("dump.rdb"));
    assert_eq!(dump.len(), 1);

    let mut srv = start_tandem_in(&dir, &["--save", "3600 1"]);
    let mut con = srv.con();
    run(&mut con, &["SET", "not-saved", "1"]).unwrap();
    let _ = run(&mut con, &["SHUTDOWN", "NOSAVE"]);
    let status = srv.wait_exit(Duration::from_secs(30));
    assert!(status.success());
    assert_eq!(read_dump(&dir.join("dump.rdb")).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
