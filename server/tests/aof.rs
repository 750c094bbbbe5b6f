//! The append-only file end to end, with real processes: this build's `tandem-server` and
//! redis-server 7.0 (interop tests print a reason and return when it is missing, unless
//! TANDEM_REQUIRE_REAL_DEPS=1). Crashes are `kill -9` under a pipelined write load; every
//! wait polls with a deadline.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tandem_testkit::{Launch, ServerGuard, poll, redis_available};

mod common;

use common::{digest, interop_commands, run, temp_dir};

/// DEBUG DIGEST compares datasets.
const DEBUG: [&str; 2] = ["--enable-debug-command", "yes"];

fn tandem_in(dir: &Path, args: &[&str]) -> ServerGuard {
    common::tandem().dir(dir).args(&DEBUG).args(args).start()
}

fn redis_in(dir: &Path, args: &[&str]) -> ServerGuard {
    Launch::redis("redis-server").dir(dir).args(args).start()
}

fn persistence_field(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in INFO persistence:\n{info}"))
}

/// BGREWRITEAOF, then waits until it finished (with success).
fn rewrite(con: &mut redis::Connection) {
    let before: u64 = persistence_field(con, "aof_rewrites").parse().unwrap();
    let reply: String = redis::cmd("BGREWRITEAOF").query(con).unwrap();
    assert!(
        reply.starts_with("Background append only file rewriting"),
        "{reply}"
    );
    poll("the AOF rewrite to finish", Duration::from_secs(60), || {
        let done: u64 = persistence_field(con, "aof_rewrites").parse().unwrap();
        (done > before && persistence_field(con, "aof_rewrite_in_progress") == "0").then_some(())
    });
    assert_eq!(persistence_field(con, "aof_last_bgrewrite_status"), "ok");
}

/// Runs the interop commands `range` on `con`.
fn apply(con: &mut redis::Connection, cmds: &[Vec<String>]) {
    for c in cmds {
        let w: Vec<&str> = c.iter().map(String::as_str).collect();
        run(con, &w).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Starts tandem-server on `dir`, which must refuse its AOF and exit; returns what it
/// printed and logged.
fn refused_start(dir: &Path, args: &[&str]) -> String {
    let mut refused = common::tandem().dir(dir).args(args).spawn().unwrap();
    assert!(!refused.wait_exit(Duration::from_secs(30)).success());
    refused.stderr() + &refused.log()
}

fn manifest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

#[test]
fn redis_appendonlydir_loads_into_tandem_with_and_without_the_rdb_preamble() {
    if !redis_available() {
        return;
    }
    let cmds = interop_commands();
    let (first, second) = cmds.split_at(cmds.len() / 2);
    for preamble in ["yes", "no"] {
        let rdir = temp_dir("aof-r2t-redis");
        let tdir = temp_dir("aof-r2t-tandem");
        let reference = {
            let r = redis_in(
                &rdir,
                &[
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--aof-use-rdb-preamble",
                    preamble,
                ],
            );
            let mut con = r.con();
            apply(&mut con, first);
            rewrite(&mut con);
            apply(&mut con, second);
            run(&mut con, &["SELECT", "0"]).unwrap();
            digest(&mut con)
        };
        let base_ext = if preamble == "yes" { "rdb" } else { "aof" };
        assert!(
            manifest(&rdir).contains(&format!("appendonly.aof.2.base.{base_ext} seq 2 type b")),
            "{}",
            manifest(&rdir)
        );
        copy_dir(&rdir.join("appendonlydir"), &tdir.join("appendonlydir"));
        let t = tandem_in(&tdir, &["--save", "", "--appendonly", "yes"]);
        let mut con = t.con();
        assert_eq!(
            digest(&mut con),
            reference,
            "tandem loaded Redis's appendonlydir (aof-use-rdb-preamble {preamble}) with another digest"
        );
        drop(t);
        let _ = std::fs::remove_dir_all(&rdir);
        let _ = std::fs::remove_dir_all(&tdir);
    }
}

#[test]
fn tandem_appendonlydir_loads_into_redis() {
    if !redis_available() {
        return;
    }
    let cmds = interop_commands();
    let (first, second) = cmds.split_at(cmds.len() / 2);
    let tdir = temp_dir("aof-t2r-tandem");
    let rdir = temp_dir("aof-t2r-redis");
    let reference = {
        let r = redis_in(&rdir, &["--save", ""]);
        let mut con = r.con();
        apply(&mut con, &cmds);
        run(&mut con, &["SELECT", "0"]).unwrap();
        digest(&mut con)
    };
    let _ = std::fs::remove_dir_all(&rdir);
    std::fs::create_dir_all(&rdir).unwrap();
    // Without a rewrite: base seq 1 (empty) + incr seq 1, with `#TS:` annotations, which
    // Redis skips; after one: base seq 2 + incr 2. With and without the RDB preamble.
    for (rewrites, preamble) in [(0, "yes"), (1, "yes"), (1, "no")] {
        let ts = if rewrites == 0 { "yes" } else { "no" };
        let t = tandem_in(
            &tdir,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--aof-timestamp-enabled",
                ts,
                "--aof-use-rdb-preamble",
                preamble,
            ],
        );
        let mut con = t.con();
        run(&mut con, &["FLUSHALL"]).unwrap();
        apply(&mut con, first);
        if rewrites == 1 {
            rewrite(&mut con);
        }
        apply(&mut con, second);
        run(&mut con, &["SELECT", "0"]).unwrap();
        assert_eq!(digest(&mut con), reference);
        drop(t);
        let base_ext = if preamble == "yes" { "rdb" } else { "aof" };
        let base = tdir.join(format!(
            "appendonlydir/appendonly.aof.{}.base.{base_ext}",
            rewrites + 1
        ));
        let head = std::fs::read(&base).unwrap();
        assert_eq!(
            head.starts_with(b"REDIS"),
            preamble == "yes",
            "aof-use-rdb-preamble {preamble}: {}",
            String::from_utf8_lossy(&head[..head.len().min(40)])
        );
        // tandem loads its own files back, commands base included.
        let again = tandem_in(&tdir, &["--save", "", "--appendonly", "yes"]);
        assert_eq!(digest(&mut again.con()), reference);
        drop(again);
        let incr = std::fs::read(incr_file(&tdir)).unwrap();
        assert_eq!(
            incr.windows(4).any(|w| w == b"#TS:"),
            ts == "yes",
            "aof-timestamp-enabled {ts}"
        );
        let _ = std::fs::remove_dir_all(rdir.join("appendonlydir"));
        copy_dir(&tdir.join("appendonlydir"), &rdir.join("appendonlydir"));
        let r = redis_in(&rdir, &["--save", "", "--appendonly", "yes"]);
        let mut rcon = r.con();
        assert_eq!(
            digest(&mut rcon),
            reference,
            "Redis loaded tandem's appendonlydir ({rewrites} rewrites, preamble {preamble}) with another digest:\n{}",
            manifest(&tdir)
        );
        drop(r);
        let _ = std::fs::remove_dir_all(&tdir);
        std::fs::create_dir_all(&tdir).unwrap();
    }
    let _ = std::fs::remove_dir_all(&tdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[test]
fn streams_with_groups_survive_a_base_in_commands_into_redis() {
    if !redis_available() {
        return;
    }
    let tdir = temp_dir("aof-streams-tandem");
    let rdir = temp_dir("aof-streams-redis");
    let args = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
    ];
    let t = tandem_in(&tdir, &args);
    let mut con = t.con();
    for w in [
        &["XADD", "s", "1-1", "a", "1"][..],
        &["XADD", "s", "2-1", "b", "2", "c", "3"],
        &["XADD", "s", "3-1", "d", "4"],
        &["XGROUP", "CREATE", "s", "g1", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
        &["XGROUP", "CREATECONSUMER", "s", "g1", "bob"],
        &["XGROUP", "CREATE", "s", "g2", "$"],
        &["XDEL", "s", "3-1"],
        &["XADD", "empty", "MAXLEN", "0", "5-5", "x", "y"],
        &["XADD", "ttl", "1-1", "k", "v"],
        &["PEXPIREAT", "ttl", "99999999999999"],
    ] {
        run(&mut con, w).unwrap();
    }
    rewrite(&mut con);
    let state: Vec<String> = ["s", "empty", "ttl"]
        .iter()
        .map(|k| common::stream_state(&mut con, k.as_bytes()))
        .collect();
    let reference = digest(&mut con);
    drop(con);
    drop(t);
    let base = std::fs::read(tdir.join("appendonlydir/appendonly.aof.2.base.aof")).unwrap();
    let text = String::from_utf8_lossy(&base);
    for want in ["XSETID", "XGROUP", "CREATECONSUMER", "XCLAIM", "PEXPIREAT"] {
        assert!(text.contains(want), "no {want} in the base:\n{text}");
    }
    copy_dir(&tdir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let r = redis_in(&rdir, &args);
    let mut rcon = r.con();
    let loaded: Vec<String> = ["s", "empty", "ttl"]
        .iter()
        .map(|k| common::stream_state(&mut rcon, k.as_bytes()))
        .collect();
    assert_eq!(loaded, state);
    assert_eq!(digest(&mut rcon), reference);
    drop(r);
    let _ = std::fs::remove_dir_all(&tdir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[test]
fn debug_loadaof_reloads_the_dataset_from_the_files() {
    let dir = temp_dir("aof-debug-loadaof");
    let t = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = t.con();
    run(&mut con, &["SET", "a", "1"]).unwrap();
    rewrite(&mut con);
    run(&mut con, &["SET", "b", "2"]).unwrap();
    let reference = digest(&mut con);
    let size = std::fs::metadata(incr_file(&dir)).unwrap().len();
    run(&mut con, &["RPUSH", "l", "x", "y"]).unwrap();
    // The files lose the RPUSH: DEBUG LOADAOF empties the dataset and loads what they hold.
    std::fs::OpenOptions::new()
        .write(true)
        .open(incr_file(&dir))
        .unwrap()
        .set_len(size)
        .unwrap();
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut con).unwrap();
    assert_eq!(digest(&mut con), reference);
    assert_eq!(
        std::fs::metadata(incr_file(&dir)).unwrap().len(),
        size,
        "the replayed commands were appended again"
    );
    run(&mut con, &["SET", "c", "3"]).unwrap();
    assert!(std::fs::metadata(incr_file(&dir)).unwrap().len() > size);
    drop(con);
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_old_style_appendonly_aof_is_migrated_as_redis_does() {
    // What Redis before 7.0 wrote: one appendonly.aof in `dir`, an RDB preamble and commands.
    let dir = temp_dir("aof-old-style");
    let t = tandem_in(&dir, &["--save", ""]);
    let mut con = t.con();
    run(&mut con, &["SET", "a", "1"]).unwrap();
    run(&mut con, &["RPUSH", "l", "x", "y"]).unwrap();
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(con);
    drop(t);
    let mut old = std::fs::read(dir.join("dump.rdb")).unwrap();
    std::fs::remove_file(dir.join("dump.rdb")).unwrap();
    old.extend_from_slice(
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    std::fs::write(dir.join("appendonly.aof"), &old).unwrap();
    let rdir = temp_dir("aof-old-style-redis");
    std::fs::write(rdir.join("appendonly.aof"), &old).unwrap();

    let t = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = t.con();
    let a: String = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(a, "1");
    run(&mut con, &["SELECT", "3"]).unwrap();
    let b: String = redis::cmd("GET").arg("b").query(&mut con).unwrap();
    assert_eq!(b, "2");
    run(&mut con, &["SELECT", "0"]).unwrap();
    let reference = digest(&mut con);
    let want = "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
    assert_eq!(manifest(&dir), want);
    assert!(
        !dir.join("appendonly.aof").exists(),
        "the old file was moved"
    );
    drop(con);
    drop(t);
    if redis_available() {
        let r = redis_in(&rdir, &["--save", "", "--appendonly", "yes"]);
        assert_eq!(digest(&mut r.con()), reference);
        assert_eq!(manifest(&rdir), want, "Redis 7.0 migrates it the same way");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rdir);
}

/// What a pipelined writer saw acknowledged before the kill.
struct Load {
    /// Per writer: how many of its SETs (`w<writer>:<n>` = n) were acknowledged.
    acked: Vec<Arc<AtomicU64>>,
}

/// Starts `writers` threads that pipeline SETs in batches of `pipeline` until `stop`.
fn pipelined_load(
    port: u16,
    writers: usize,
    pipeline: u64,
    stop: &Arc<AtomicBool>,
) -> (Load, Vec<std::thread::JoinHandle<()>>) {
    let mut acked = Vec::new();
    let mut threads = Vec::new();
    for w in 0..writers {
        let count = Arc::new(AtomicU64::new(0));
        acked.push(count.clone());
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
                return;
            };
            let Ok(mut con) = client.get_connection() else {
                return;
            };
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut p = redis::pipe();
                for n in next..next + pipeline {
                    p.cmd("SET").arg(format!("w{w}:{n}")).arg(n).ignore();
                }
                // The kill breaks the connection: what was not answered is not acknowledged.
                if p.query::<()>(&mut con).is_err() {
                    return;
                }
                next += pipeline;
                count.store(next, Ordering::Release);
            }
        }));
    }
    (Load { acked }, threads)
}

/// Kills the server under the load, restarts it, and returns the acknowledged writes that
/// are missing after the restart.
fn crash_and_count_lost(fsync: &str) -> (u64, u64) {
    let dir = temp_dir(&format!("aof-crash-{fsync}"));
    let args = ["--save", "", "--appendonly", "yes", "--appendfsync", fsync];
    let mut srv = tandem_in(&dir, &args);
    let stop = Arc::new(AtomicBool::new(false));
    let (load, threads) = pipelined_load(srv.port, 4, 64, &stop);
    poll("20000 acknowledged writes", Duration::from_secs(60), || {
        (load
            .acked
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .sum::<u64>()
            >= 20_000)
            .then_some(())
    });
    srv.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked: Vec<u64> = load
        .acked
        .iter()
        .map(|a| a.load(Ordering::Acquire))
        .collect();
    srv.restart();
    let mut con = srv.con();
    let mut lost = 0;
    for (w, &n) in acked.iter().enumerate() {
        for i in 0..n {
            let v: Option<u64> = redis::cmd("GET")
                .arg(format!("w{w}:{i}"))
                .query(&mut con)
                .unwrap();
            if v != Some(i) {
                lost += 1;
            }
        }
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    (lost, acked.iter().sum())
}

#[test]
fn appendfsync_always_loses_no_acknowledged_write_when_killed() {
    let (lost, acked) = crash_and_count_lost("always");
    assert!(acked >= 20_000);
    assert_eq!(lost, 0, "{lost} of {acked} acknowledged writes lost");
}

#[test]
fn appendfsync_everysec_survives_a_process_kill() {
    // Every acknowledged write reached the kernel before its reply: a process kill loses
    // nothing; only a machine crash can lose the last second that was not fsynced yet.
    let (lost, acked) = crash_and_count_lost("everysec");
    println!("appendfsync everysec, kill -9: {lost} of {acked} acknowledged writes lost");
    assert_eq!(lost, 0, "{lost} of {acked} acknowledged writes lost");
}

/// The incremental file tandem appends to in `dir`.
fn incr_file(dir: &Path) -> std::path::PathBuf {
    let m = manifest(dir);
    let name = m
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .to_string();
    dir.join("appendonlydir").join(name)
}

#[test]
fn a_truncated_tail_is_cut_and_loaded_as_redis_does() {
    let dir = temp_dir("aof-truncated");
    let mut srv = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = srv.con();
    for i in 0..100 {
        run(&mut con, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    let reference = digest(&mut con);
    drop(con);
    srv.kill();
    let incr = incr_file(&dir);
    let whole = std::fs::metadata(&incr).unwrap().len();
    let cut = b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$3\r\nva";
    let append = |bytes: &[u8]| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&incr)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    };
    append(cut);

    // aof-load-truncated no: refused, naming the file and the offset, the file untouched.
    let out = refused_start(
        &dir,
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "no",
        ],
    );
    assert!(
        out.contains(&format!(
            "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof at byte {whole}"
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::metadata(&incr).unwrap().len(),
        whole + cut.len() as u64
    );

    // The default (yes): the tail is cut to the last whole command and the rest loads.
    srv.restart();
    let mut con = srv.con();
    assert_eq!(digest(&mut con), reference);
    assert!(
        srv.log()
            .contains("Truncating the AOF appendonly.aof.1.incr.aof")
    );
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), whole);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut con)
        .unwrap();
    drop(con);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_transaction_cut_by_a_crash_is_dropped_whole_and_later_writes_kept() {
    if !redis_available() {
        return;
    }
    let dir = temp_dir("aof-truncated-both");
    let srv = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = srv.con();
    apply(&mut con, &interop_commands());
    // An unfinished transaction at the end is dropped whole, as a cut command is.
    run(&mut con, &["SELECT", "0"]).unwrap();
    drop(con);
    drop(srv);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(incr_file(&dir))
            .unwrap();
        f.write_all(
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$3\r\nDEL",
        )
        .unwrap();
    }
    let rdir = temp_dir("aof-truncated-redis");
    copy_dir(&dir.join("appendonlydir"), &rdir.join("appendonlydir"));
    let r = redis_in(&rdir, &["--save", "", "--appendonly", "yes"]);
    let mut t = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let (mut rcon, mut tcon) = (r.con(), t.con());
    assert_eq!(digest(&mut tcon), digest(&mut rcon));
    let x: Option<String> = redis::cmd("GET").arg("x").query(&mut tcon).unwrap();
    assert_eq!(x, None, "the unfinished MULTI was applied");
    // Redis 7.0 cuts after the last whole command and leaves the open MULTI and its queued
    // SET in the file, so the commands it appends next would be queued into that MULTI
    // and dropped by the next load; tandem cuts before the MULTI.
    let dangling = b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n".len() as u64;
    assert_eq!(
        std::fs::metadata(incr_file(&dir)).unwrap().len() + dangling,
        std::fs::metadata(incr_file(&rdir)).unwrap().len(),
    );
    run(&mut tcon, &["SET", "after", "1"]).unwrap();
    drop(tcon);
    t.kill();
    t.restart();
    let after: Option<String> = redis::cmd("GET").arg("after").query(&mut t.con()).unwrap();
    assert_eq!(
        after.as_deref(),
        Some("1"),
        "a write after the recovery was lost"
    );
    drop((r, t));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rdir);
}

#[test]
fn a_corrupt_middle_is_refused_naming_the_file_and_offset() {
    let dir = temp_dir("aof-corrupt");
    let mut srv = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = srv.con();
    run(&mut con, &["SET", "a", "1"]).unwrap();
    drop(con);
    srv.kill();
    let incr = incr_file(&dir);
    let at = std::fs::metadata(&incr).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&incr)
            .unwrap();
        f.write_all(b"garbage\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n")
            .unwrap();
    }
    let before = std::fs::read(&incr).unwrap();
    let out = refused_start(&dir, &["--save", "", "--appendonly", "yes"]);
    assert!(
        out.contains(&format!(
            "Bad file format reading the append only file appendonly.aof.1.incr.aof at byte {at}"
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&incr).unwrap(),
        before,
        "the refused file was modified"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appendonly_turned_on_live_keeps_writes_made_during_the_first_rewrite() {
    let dir = temp_dir("aof-live");
    let mut srv = tandem_in(&dir, &["--save", ""]);
    let mut con = srv.con();
    for i in 0..20_000 {
        run(&mut con, &["SET", &format!("before{i}"), &"v".repeat(50)]).unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut con)
        .unwrap();
    // Writes while the first base is written land in the temp incremental file.
    for i in 0..2_000 {
        run(&mut con, &["SET", &format!("during{i}"), &i.to_string()]).unwrap();
    }
    poll("the first AOF rewrite", Duration::from_secs(60), || {
        (persistence_field(&mut con, "aof_rewrites") == "1").then_some(())
    });
    assert_eq!(persistence_field(&mut con, "aof_enabled"), "1");
    run(&mut con, &["DEL", "before7"]).unwrap();
    let reference = digest(&mut con);
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    drop(con);
    srv.kill();
    srv.restart_with(&["--save", "", "--appendonly", "yes", DEBUG[0], DEBUG[1]]);
    let mut con = srv.con();
    assert_eq!(digest(&mut con), reference);
    // And off again: the file stops growing.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let size = std::fs::metadata(incr_file(&dir)).unwrap().len();
    run(&mut con, &["SET", "off", "1"]).unwrap();
    assert_eq!(std::fs::metadata(incr_file(&dir)).unwrap().len(), size);
    assert_eq!(persistence_field(&mut con, "aof_enabled"), "0");
    drop(con);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rewrite_under_writes_keeps_every_write() {
    let dir = temp_dir("aof-rewrite-writes");
    let mut srv = tandem_in(&dir, &["--save", "", "--appendonly", "yes"]);
    let mut con = srv.con();
    for i in 0..50_000 {
        run(
            &mut con,
            &["RPUSH", &format!("list{}", i % 100), &i.to_string()],
        )
        .unwrap();
    }
    let reply: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    assert_eq!(reply, "Background append only file rewriting started");
    let started = Instant::now();
    let mut i = 0;
    while persistence_field(&mut con, "aof_rewrite_in_progress") == "1" {
        run(&mut con, &["INCR", "counter"]).unwrap();
        run(&mut con, &["LPOP", &format!("list{}", i % 100)]).unwrap();
        i += 1;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rewrite did not end"
        );
    }
    let err = redis::cmd("BGSAVE").query::<String>(&mut con);
    assert!(err.is_ok(), "BGSAVE after the rewrite: {err:?}");
    let reference = digest(&mut con);
    let m = manifest(&dir);
    assert!(
        m.starts_with("file appendonly.aof.2.base.rdb seq 2 type b\n"),
        "{m}"
    );
    assert!(
        !dir.join("appendonlydir/appendonly.aof.1.incr.aof").exists(),
        "history kept"
    );
    drop(con);
    srv.kill();
    srv.restart();
    let mut con = srv.con();
    assert_eq!(digest(&mut con), reference);
    drop(con);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn info_persistence_has_redis_aof_fields() {
    if !redis_available() {
        return;
    }
    let names = |con: &mut redis::Connection| -> Vec<String> {
        let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
        info.lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .filter(|k| k.starts_with("aof_"))
            .collect()
    };
    let r = common::start_redis_server(&["--appendonly", "yes"]);
    let t = common::start_tandem(&["--appendonly", "yes"]);
    let (mut rcon, mut tcon) = (r.con(), t.con());
    assert_eq!(names(&mut tcon), names(&mut rcon));
    assert_eq!(persistence_field(&mut tcon, "aof_enabled"), "1");
}

#[test]
fn a_replica_writes_its_own_aof() {
    let master = common::start_tandem(&["--save", "", DEBUG[0], DEBUG[1]]);
    let rdir = temp_dir("aof-replica");
    let mut replica = tandem_in(
        &rdir,
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &master.port.to_string(),
        ],
    );
    let mut mcon = master.con();
    for i in 0..1000 {
        run(&mut mcon, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    common::wait_in_sync(&master, &replica);
    run(&mut mcon, &["SELECT", "3"]).unwrap();
    run(&mut mcon, &["MSET", "x", "1", "y", "2"]).unwrap();
    common::wait_in_sync(&master, &replica);
    let reference = digest(&mut mcon);
    poll(
        "the replica's first AOF rewrite",
        Duration::from_secs(60),
        || (persistence_field(&mut replica.con(), "aof_rewrites") != "0").then_some(()),
    );
    replica.kill();
    // Alone, without its master: the dataset is its own AOF.
    replica.restart_with(&["--save", "", "--appendonly", "yes", DEBUG[0], DEBUG[1]]);
    assert_eq!(digest(&mut replica.con()), reference);
    drop(replica);
    let _ = std::fs::remove_dir_all(&rdir);
}
