//! `tandem-operator local` against real tandem-server processes (the operator binary's
//! embedded server): Ready with every replica online, the tuning on every node through the
//! renamed CONFIG while ordinary clients find CONFIG and DEBUG unknown, full syncs seen
//! through wait_bgsave/send_bulk/online, failover after `kill -9` of the master
//! without losing a write acknowledged by `WAIT 1`, the old master back as a replica, and a
//! provoked sync loop detected and corrected. Everything is awaited with deadlines.

#![allow(clippy::unwrap_used)]

#[path = "common/local_mode.rs"]
mod local_mode;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use local_mode::{Local, config_get, connect, info_field};
use serde_json::Value;

/// How long a set of small nodes may take to be Ready with every replica online.
const READY: Duration = Duration::from_secs(60);

/// A port of the set already taken (here by a listener standing in for another instance)
/// stops local mode at once with the port and node in the error, instead of a set that
/// reports the other instance's servers while its own nodes fail to bind.
#[test]
fn a_busy_port_is_refused_before_any_node_starts() {
    // node-1's port is the taken one; node-0's is free.
    let (taken, port) = loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port - 1)).is_ok() {
            break (l, port);
        }
    };
    let base = port - 1;
    let dir = std::env::temp_dir().join(format!("tandem-local-busy-{}-{port}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-operator"))
        .args(["local", "--replicas", "2", "--dataset-size-hint", "64Mi"])
        .args(["--base-port", &base.to_string()])
        .arg("--dir")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The refusal comes before any node starts: well within the first status pass.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("local mode kept running with port {port} taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} of node-1 is already in use")),
        "{stderr}"
    );
    assert!(!dir.join("node-0").exists(), "no node started: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(taken);
}

/// Runs `body` on a thread with a connection to `port` and a flag that asks it to stop.
fn writer<T: Send + 'static>(
    port: u16,
    body: impl FnOnce(redis::Connection, &AtomicBool) -> T + Send + 'static,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<T>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    (stop, std::thread::spawn(move || body(connect(port), &flag)))
}

/// Pipelined SETs of `value_len`-byte values: `keys` keys named `{prefix}{i}`.
fn load(conn: &mut redis::Connection, prefix: &str, keys: usize, value_len: usize) {
    load_values(conn, prefix, keys, || vec![b'x'; value_len]);
}

/// Like [`load`] with values no compression shrinks (xorshift bytes), so the dump is as
/// large as the data.
fn load_incompressible(conn: &mut redis::Connection, prefix: &str, keys: usize, value_len: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    load_values(conn, prefix, keys, || {
        (0..value_len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    });
}

fn load_values(
    conn: &mut redis::Connection,
    prefix: &str,
    keys: usize,
    mut value: impl FnMut() -> Vec<u8>,
) {
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(value())
                .ignore();
        }
        pipe.query::<()>(conn).expect("load");
    }
}

fn replica<'a>(status: &'a Value, node: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["pod"] == node))
        .unwrap_or(&Value::Null)
}

#[test]
fn ready_with_every_replica_online_and_the_tuning_on_every_node() {
    let local = Local::start(3, &[]);
    let status = local.wait_ready(READY);
    assert_eq!(status["master"], "node-0", "equal nodes: the first ordinal");
    assert_eq!(status["ready"], "3/3");
    let tuning = &status["replication"];
    let config = local.config();
    for node in ["node-0", "node-1", "node-2"] {
        let mut c = local.conn(node);
        // An ordinary client: CONFIG and DEBUG are unknown, as in Redis with rename-command.
        for (command, arg) in [("CONFIG", "GET"), ("DEBUG", "SLEEP")] {
            let err = redis::cmd(command)
                .arg(arg)
                .arg("0")
                .query::<redis::Value>(&mut c)
                .expect_err("renamed or removed");
            assert_eq!(
                (err.code(), err.detail()),
                (
                    Some("ERR"),
                    Some(
                        format!(
                            "unknown command '{command}', with args beginning with: '{arg}' '0' "
                        )
                        .as_str()
                    )
                ),
                "{node}: {err}"
            );
        }
        let get = |c: &mut redis::Connection, name: &str| config_get(c, &config, name);
        assert_eq!(
            get(&mut c, "repl-timeout"),
            tuning["replTimeoutSeconds"].to_string(),
            "{node}"
        );
        assert_eq!(get(&mut c, "repl-diskless-sync"), "yes", "{node}: Diskless");
        let hard = tuning["clientOutputBufferLimit"]
            .as_str()
            .expect("cobl")
            .split(' ')
            .nth(1)
            .expect("hard")
            .to_owned();
        assert!(
            get(&mut c, "client-output-buffer-limit").contains(&format!("slave {hard} 0 0")),
            "{node}"
        );
        assert_eq!(
            get(&mut c, "min-replicas-to-write"),
            tuning["minReplicasToWrite"].to_string(),
            "{node}"
        );
        let role = info_field(&mut c, "replication", "role").expect("role");
        assert_eq!(
            role,
            if node == "node-0" { "master" } else { "slave" },
            "{node}"
        );
    }
    // Tuning drift is put back live: the operator owns these directives.
    let mut c = local.conn("node-2");
    let _: () = redis::cmd(&config)
        .arg("SET")
        .arg("repl-timeout")
        .arg("61")
        .query(&mut c)
        .expect("CONFIG SET");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = config_get(&mut c, &config, "repl-timeout");
        if got.parse::<u64>().ok() == tuning["replTimeoutSeconds"].as_u64() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "repl-timeout drift was not corrected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A diskless full sync (the mode local mode picks): the master reports wait_bgsave while
/// it waits for more replicas and streams, then online; the replica's own byte counter
/// shows the transfer moving. (send_bulk is the disk target's state while the dump file is
/// written to the socket: see the disk test below.)
#[test]
fn a_full_sync_is_reported_from_wait_bgsave_with_progress_to_online() {
    let local = Local::start(3, &[]);
    local.wait_ready(READY);
    load(&mut local.conn("node-0"), "k", 60_000, 1000);
    local.kill_node("node-2");
    let started = Instant::now();
    let mut states: Vec<String> = Vec::new();
    let mut progress = BTreeSet::new();
    let done = local.wait_status(
        "node-2 back online after a full sync",
        Duration::from_secs(120),
        |s| {
            let r = replica(s, "node-2");
            // The status written before the kill may still be read first.
            if let Some(state) = r["state"].as_str()
                && states.last().map(String::as_str) != Some(state)
                && !(states.is_empty() && state == "online")
            {
                states.push(state.to_owned());
            }
            if let Some(p) = r["syncProgress"].as_str() {
                progress.insert(p.to_owned());
            }
            // The master calls a diskless replica online once the last byte is sent (as
            // Redis does); the replica serves once it finished loading: its link is up.
            r["state"] == "online"
                && r["linkStatus"] == "up"
                && r["lastFullSync"]["durationSeconds"].as_i64().is_some()
                && states.len() > 1
        },
    );
    let record = &replica(&done, "node-2")["lastFullSync"];
    eprintln!(
        "diskless full sync of ~60 MB after a replica restart: online {:.1}s after kill -9, lastFullSync {record}, states {states:?}, progress {progress:?}",
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(
        states,
        ["wait_bgsave", "online"],
        "the master's view in order"
    );
    assert_eq!(record["mode"], "Diskless");
    let moving: Vec<&String> = progress
        .iter()
        .filter(|p| p.ends_with("received") && !p.starts_with("0B"))
        .collect();
    assert!(
        !moving.is_empty(),
        "bytes received were reported during the transfer: {progress:?}"
    );
    assert_eq!(
        done["fullSyncs"].as_i64().map(|n| n >= 3),
        Some(true),
        "{done}"
    );
    let size: u64 = redis::cmd("DBSIZE")
        .query(&mut local.conn("node-2"))
        .expect("DBSIZE");
    assert_eq!(size, 60_000);
}

/// A disk-mode full sync seen through all three of the master's states. On loopback the
/// dump file is sent in milliseconds, so the replica is frozen (SIGSTOP) while the master
/// still reports it in wait_bgsave: once the dump is written, the master's send of a file far
/// larger than the socket buffers stalls in send_bulk until the replica is let go (SIGCONT).
#[test]
fn a_disk_full_sync_is_reported_through_wait_bgsave_send_bulk_and_online() {
    let local = Local::start(2, &["--mode", "disk"]);
    local.wait_ready(READY);
    load_incompressible(&mut local.conn("node-0"), "k", 60_000, 1000);
    let old_pid = info_field(&mut local.conn("node-1"), "server", "process_id");
    local.kill_node("node-1");

    // The restarted replica, frozen as soon as the master reports its sync waiting for
    // the dump.
    let mut master = local.conn("node-0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut master)
            .expect("INFO");
        if info.contains("state=wait_bgsave") {
            break;
        }
        assert!(Instant::now() < deadline, "no sync in wait_bgsave: {info}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = info_field(&mut local.conn("node-1"), "server", "process_id").expect("new pid");
    assert_ne!(Some(&pid), old_pid.as_ref(), "the restarted process");
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .expect("kill")
                .success()
        );
    };
    signal("-STOP");

    let mut states: Vec<String> = Vec::new();
    let mut record = |s: &Value| {
        if let Some(state) = replica(s, "node-1")["state"].as_str()
            && states.last().map(String::as_str) != Some(state)
            && !(states.is_empty() && state == "online")
        {
            states.push(state.to_owned());
        }
    };
    let stalled = local.wait_status(
        "node-1 in send_bulk while frozen",
        Duration::from_secs(60),
        |s| {
            record(s);
            replica(s, "node-1")["state"] == "send_bulk"
        },
    );
    signal("-CONT");
    let done = local.wait_status(
        "node-1 online after the disk full sync",
        Duration::from_secs(120),
        |s| {
            record(s);
            let r = replica(s, "node-1");
            r["state"] == "online" && r["linkStatus"] == "up" && r["lastFullSync"]["mode"] == "Disk"
        },
    );
    eprintln!(
        "disk full sync states {states:?}; frozen replica in send_bulk: {}",
        replica(&stalled, "node-1")
    );
    assert_eq!(
        states,
        ["wait_bgsave", "send_bulk", "online"],
        "the master's view in order"
    );
    assert_eq!(replica(&done, "node-1")["ready"], true);
    let size: u64 = redis::cmd("DBSIZE")
        .query(&mut local.conn("node-1"))
        .expect("DBSIZE");
    assert_eq!(size, 60_000);
}

/// The issue-8 overflow: a writer at full pipeline speed on a 1Gi set, whose plan assumed
/// 1 MiB/s (a 256Mi replica buffer). The measured rate reaches the status and the buffer is
/// raised live on every node, within the dataset bound.
#[test]
fn a_fast_writer_raises_the_replica_buffer_live() {
    let local = Local::start_hinted(2, "1Gi", &[]);
    let before = local.wait_ready(READY);
    let hard = |s: &Value| -> u64 {
        s["replication"]["clientOutputBufferLimit"]
            .as_str()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|h| h.parse().ok())
            .expect("hard limit")
    };
    assert_eq!(hard(&before), 256 << 20, "sized for the assumed 1 MiB/s");
    assert!(
        before["dataPlane"].get("writeBytesPerSecond").is_none(),
        "{before}"
    );

    let (stop, writer) = writer(local.port("node-0"), |mut c, stop| {
        let mut round = 0;
        while !stop.load(Ordering::Relaxed) {
            load(&mut c, &format!("w{round}:"), 2000, 1000);
            round += 1;
        }
    });
    let raised = local.wait_status(
        "the buffer raised for the observed rate",
        Duration::from_secs(60),
        |s| hard(s) > 256 << 20,
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let rate = raised["dataPlane"]["writeBytesPerSecond"]
        .as_u64()
        .expect("the measured rate in the status");
    let limit = hard(&raised);
    eprintln!(
        "observed write rate {} MiB/s -> replica buffer {} MiB ({})",
        rate >> 20,
        limit >> 20,
        raised["replication"]["reason"]
    );
    assert!(rate > 1 << 20 && rate.is_power_of_two(), "{rate}");
    assert!(
        limit <= 1 << 30,
        "bounded by the 1Gi dataset without a memory limit: {limit}"
    );
    assert!(
        raised["replication"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("observed write rate")),
        "{raised}"
    );
    let config = local.config();
    for node in ["node-0", "node-1"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = config_get(&mut local.conn(node), &config, "client-output-buffer-limit");
            if got.contains(&format!("slave {limit} 0 0")) {
                break;
            }
            assert!(Instant::now() < deadline, "{node}: {got}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn failover_after_kill_9_keeps_writes_acknowledged_by_wait_and_the_old_master_rejoins() {
    let local = Local::start(3, &[]);
    local.wait_ready(READY);
    let (stop, writer) = writer(local.port("node-0"), |mut c, stop| {
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let key = format!("w{i}");
            if redis::cmd("SET")
                .arg(&key)
                .arg(i)
                .query::<()>(&mut c)
                .is_err()
            {
                break;
            }
            match redis::cmd("WAIT").arg(1).arg(1000).query::<i64>(&mut c) {
                Ok(n) if n >= 1 => acked.push(key),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        acked
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while local
        .status()
        .is_some_and(|s| s["masterOffset"].as_i64().unwrap_or(0) < 20_000)
    {
        assert!(Instant::now() < deadline, "writes do not flow");
        std::thread::sleep(Duration::from_millis(20));
    }
    local.kill_node("node-0");
    let killed = Instant::now();
    let after = local.wait_status("a new master", Duration::from_secs(10), |s| {
        s["master"].as_str().is_some_and(|m| m != "node-0")
    });
    let new_master = after["master"].as_str().expect("master").to_owned();
    // Failover is done when the new master takes writes.
    let mut c = local.conn(&new_master);
    loop {
        if redis::cmd("SET")
            .arg("after-failover")
            .arg(1)
            .query::<()>(&mut c)
            .is_ok()
        {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the new master never took a write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let failover_time = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("writer");
    eprintln!(
        "failover: {new_master} took writes {:.2}s after kill -9 of node-0; {} writes acknowledged by WAIT 1",
        failover_time.as_secs_f64(),
        acked.len()
    );
    assert!(
        failover_time <= Duration::from_secs(5),
        "failover took {failover_time:?}"
    );
    assert!(!acked.is_empty());
    for key in &acked {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut c).expect("GET");
        assert!(v.is_some(), "{key} was acknowledged by WAIT 1 and lost");
    }
    let record = &after["lastFailover"];
    assert_eq!(record["from"], "node-0");
    assert_eq!(record["to"], new_master.as_str());

    // The old master, restarted empty, follows the new one and never became master.
    let back = local.wait_status("node-0 back as a replica", Duration::from_secs(60), |s| {
        s["master"] == new_master.as_str() && replica(s, "node-0")["state"] == "online"
    });
    assert_eq!(back["phase"], "Ready");
    let mut old = local.conn("node-0");
    assert_eq!(
        info_field(&mut old, "replication", "role").as_deref(),
        Some("slave")
    );
    assert_eq!(
        info_field(&mut old, "replication", "master_port"),
        Some(local.port(&new_master).to_string())
    );
    let v: Option<String> = redis::cmd("GET")
        .arg(acked.last().expect("one"))
        .query(&mut old)
        .expect("GET");
    assert!(
        v.is_some(),
        "the old master has the acknowledged data again"
    );
}

#[test]
fn a_sync_loop_is_detected_and_corrected() {
    // A replica output buffer far too small for the writes during a full sync.
    let local = Local::start(2, &["--client-output-buffer-limit", "64Ki 0 0"]);
    local.wait_ready(READY);
    load(&mut local.conn("node-0"), "k", 30_000, 1000);
    let (stop, writer) = writer(local.port("node-0"), |mut c, stop| {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let mut pipe = redis::pipe();
            for j in 0..50 {
                pipe.cmd("SET")
                    .arg(format!("hot{}", (i * 50 + j) % 5000))
                    .arg(vec![b'y'; 1000])
                    .ignore();
            }
            let _ = pipe.query::<()>(&mut c);
        }
    });
    local.kill_node("node-1");
    let looped = local.wait_status("the SyncLoop condition", Duration::from_secs(120), |s| {
        s["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "SyncLoop" && c["status"] == "True")
        })
    });
    eprintln!("sync loop detected: {}", looped["conditions"]);
    let recovered = local.wait_status(
        "node-1 online after the adjustment",
        Duration::from_secs(120),
        |s| {
            replica(s, "node-1")["state"] == "online"
                && s["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "SyncLoop"
                            && c["status"] == "False"
                            && c["reason"] == "Recovered"
                    })
                })
        },
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let limit = recovered["replication"]["clientOutputBufferLimit"]
        .as_str()
        .expect("limit")
        .to_owned();
    let hard: u64 = limit
        .split(' ')
        .nth(1)
        .expect("hard")
        .parse()
        .expect("number");
    assert!(hard > 64 * 1024, "the buffer was raised: {limit}");
    let got = config_get(
        &mut local.conn("node-0"),
        &local.config(),
        "client-output-buffer-limit",
    );
    assert!(got.contains(&format!("slave {hard} 0 0")), "{got}");
}

/// The port among `base..base + nodes` whose node reports `role:master`, other than `not`.
fn master_port(base: u16, nodes: u16, not: Option<u16>) -> Option<u16> {
    (0..nodes)
        .map(|i| base + i)
        .filter(|p| Some(*p) != not)
        .find(|p| {
            redis::Client::open(format!("redis://127.0.0.1:{p}/"))
                .ok()
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)).ok())
                .and_then(|mut c| info_field(&mut c, "replication", "role"))
                .as_deref()
                == Some("master")
        })
}

/// A planned switchover (SIGUSR1) under a continuous write load: every write acknowledged by
/// `WAIT 1` is on the new master, writes go on there, the old master follows it after a
/// partial resync (no full sync served by anyone), and the status records it.
#[test]
fn a_switchover_under_writes_loses_no_acknowledged_write_and_the_old_master_follows() {
    let local = Local::start(3, &[]);
    let ready = local.wait_ready(READY);
    let old_master = ready["master"].as_str().expect("master").to_owned();
    let old_port = local.port(&old_master);
    let full_syncs_before: u64 = (0..3)
        .map(|i| {
            info_field(&mut connect(local.base() + i), "stats", "sync_full")
                .and_then(|v| v.parse::<u64>().ok())
                .expect("sync_full")
        })
        .sum();

    // Writes one key at a time, each followed by WAIT 1; on an error (READONLY once the
    // old master follows) it finds the new master and retries the same key there.
    let base = local.base();
    let (stop, writer) = writer(old_port, move |mut c, stop| {
        let mut acked: Vec<(String, u16)> = Vec::new();
        let mut port = old_port;
        let mut errors: BTreeSet<String> = BTreeSet::new();
        let mut retries = 0u32;
        let mut i = 0u64;
        // Acknowledgement times: the last on the old master, the first on another.
        let mut last_on_old = None;
        let mut first_on_new = None;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("s{i}");
            let done = redis::cmd("SET")
                .arg(&key)
                .arg(i)
                .query::<()>(&mut c)
                .and_then(|()| redis::cmd("WAIT").arg(1).arg(2000).query::<i64>(&mut c));
            match done {
                Ok(n) if n >= 1 => {
                    if port == old_port {
                        last_on_old = Some(Instant::now());
                    } else {
                        first_on_new.get_or_insert_with(Instant::now);
                    }
                    acked.push((key, port));
                    i += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    retries += 1;
                    errors.insert(e.code().unwrap_or("I/O").to_owned());
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let mut found = master_port(base, 3, None);
                    while found.is_none() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                        found = master_port(base, 3, None);
                    }
                    port = found.expect("a master to write to");
                    c = connect(port);
                }
            }
        }
        let gap = last_on_old
            .zip(first_on_new)
            .map(|(old, new)| new.saturating_duration_since(old));
        (acked, retries, errors, gap)
    });
    let acked_before = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while local
            .status()
            .is_some_and(|s| s["masterOffset"].as_u64().unwrap_or(0) < n as u64)
        {
            assert!(Instant::now() < deadline, "writes do not flow");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    acked_before(20_000);

    let asked = Instant::now();
    local.ask_switchover();
    let after = local.wait_status("a switchover", Duration::from_secs(20), |s| {
        s["lastSwitchover"].is_object()
    });
    let switch_time = asked.elapsed();
    let record = after["lastSwitchover"].clone();
    let new_master = record["to"].as_str().expect("to").to_owned();
    assert_eq!(record["from"], old_master.as_str(), "{record}");
    assert_ne!(new_master, old_master);
    assert_eq!(
        master_port(local.base(), 3, None),
        Some(local.port(&new_master)),
        "the new master is master"
    );
    assert_eq!(
        master_port(local.base(), 3, Some(local.port(&new_master))),
        None,
        "and the only one"
    );

    // Writes go on, on the new master.
    let offset_then = after["masterOffset"].as_u64().unwrap_or(0);
    acked_before(usize::try_from(offset_then).expect("offset") + 20_000);
    stop.store(true, Ordering::Relaxed);
    let (acked, retries, errors, gap) = writer.join().expect("writer");
    let new_port = local.port(&new_master);
    let on_new = acked.iter().filter(|(_, p)| *p == new_port).count();
    eprintln!(
        "switchover {old_master} -> {new_master}: status shows it {:.3}s after SIGUSR1, writes held {} ms, {} writes acknowledged by WAIT 1 ({on_new} on the new master), {retries} retried after {errors:?}, last acknowledged write on {old_master} -> first on {new_master}: {:.3}s",
        switch_time.as_secs_f64(),
        record["writePauseMs"],
        acked.len(),
        gap.expect("writes acknowledged on both masters")
            .as_secs_f64()
    );
    assert!(on_new > 0, "writes resumed on the new master");
    assert!(acked.len() > on_new, "writes were acknowledged before too");
    let mut c = connect(new_port);
    for (key, _) in &acked {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut c).expect("GET");
        assert!(v.is_some(), "{key} was acknowledged by WAIT 1 and lost");
    }

    // The old master follows the new one, caught up by a partial resync.
    let settled = local.wait_status("every replica online", Duration::from_secs(30), |s| {
        s["master"] == new_master.as_str()
            && s["phase"] == "Ready"
            && replica(s, &old_master)["state"] == "online"
    });
    let mut old = local.conn(&old_master);
    assert_eq!(
        info_field(&mut old, "replication", "role").as_deref(),
        Some("slave")
    );
    assert_eq!(
        info_field(&mut old, "replication", "master_port"),
        Some(new_port.to_string())
    );
    let full_syncs_after: u64 = (0..3)
        .map(|i| {
            info_field(&mut connect(local.base() + i), "stats", "sync_full")
                .and_then(|v| v.parse::<u64>().ok())
                .expect("sync_full")
        })
        .sum();
    assert_eq!(
        full_syncs_after, full_syncs_before,
        "no full sync anywhere: the old master and the other replica resynced partially"
    );
    let partial: u64 = info_field(&mut c, "stats", "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .expect("sync_partial_ok");
    assert_eq!(
        partial, 2,
        "both followers of the new master resynced partially"
    );
    assert_eq!(settled["fullSyncs"], 0, "{settled}");
}

/// A switchover whose target cannot catch up (SIGSTOP'd while the master took a write) is
/// abandoned at the deadline: writes resume on the master, which stays master, and the
/// target follows it again once it runs.
#[test]
fn a_switchover_to_a_replica_that_cannot_catch_up_is_aborted_and_writes_resume() {
    use tandem_operator::dataplane::roles::{NodeAddr, NodeState};
    use tandem_operator::dataplane::switchover::{SwitchoverError, hand_over};

    let local = Local::start(2, &[]);
    let ready = local.wait_ready(READY);
    let master = ready["master"].as_str().expect("master").to_owned();
    let target = if master == "node-0" {
        "node-1"
    } else {
        "node-0"
    };
    let pid = info_field(&mut local.conn(target), "server", "process_id").expect("pid");
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    let mut m = local.conn(&master);
    redis::cmd("SET")
        .arg("while-stopped")
        .arg(1)
        .query::<()>(&mut m)
        .expect("the master takes a write its replica cannot see");

    let state = |name: &str| NodeState {
        name: name.to_owned(),
        addr: NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: local.port(name),
        },
        facts: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let result = runtime.block_on(hand_over(
        &state(&master),
        &state(target),
        &[],
        None,
        &[local.names()],
        Duration::from_secs(1),
    ));
    let took = started.elapsed();
    match result {
        Err(SwitchoverError::NotCaughtUp {
            master_offset,
            target_offset,
            ..
        }) => assert!(
            target_offset.is_none_or(|t| t < master_offset),
            "{target_offset:?} vs {master_offset}"
        ),
        Err(other) => panic!("aborted for another reason: {other}"),
        Ok(_) => panic!("switched over to a stopped replica"),
    }

    // Unpaused: a write is taken at once (a pause would hold it for seconds).
    let before_write = Instant::now();
    redis::cmd("SET")
        .arg("after-abort")
        .arg(1)
        .query::<()>(&mut m)
        .expect("write after the abort");
    let write_wait = before_write.elapsed();
    eprintln!(
        "aborted switchover returned after {:.3}s; the next write took {:.3}s",
        took.as_secs_f64(),
        write_wait.as_secs_f64()
    );
    assert!(
        write_wait < Duration::from_secs(1),
        "writes still held after the abort: {write_wait:?}"
    );
    assert_eq!(
        info_field(&mut m, "replication", "role").as_deref(),
        Some("master")
    );

    signal("-CONT");
    local.wait_status("the replica back online", Duration::from_secs(30), |s| {
        s["master"] == master.as_str() && replica(s, target)["state"] == "online"
    });
    let mut t = local.conn(target);
    assert_eq!(
        info_field(&mut t, "replication", "role").as_deref(),
        Some("slave")
    );
    let v: Option<String> = redis::cmd("GET")
        .arg("after-abort")
        .query(&mut t)
        .expect("GET");
    assert!(
        v.is_some(),
        "the target follows the master it did not replace"
    );
}

/// One parsed sample: name, labels, value.
type Sample = (String, serde_json::Map<String, Value>, f64);

/// The samples of a Prometheus text exposition, parsed by the Prometheus project's own Python
/// client (`prometheus_client.parser`): `(name, labels, value)`. None when the parser is not
/// installed.
fn parse_exposition(text: &str) -> Option<Vec<Sample>> {
    const SCRIPT: &str = "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\nprint(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            why.contains("No module named 'prometheus_client'"),
            "the parser refused the exposition: {why}\n{text}"
        );
        return None;
    }
    let samples: Vec<Sample> = serde_json::from_slice(&out.stdout).unwrap();
    Some(samples)
}

fn scrape(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap()
}

fn sample(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && labels["name"] == "local")
        .map(|(_, _, v)| *v)
        .sum()
}

/// `--metrics-addr` serves the set's series: the initial full sync and a failover after
/// `kill -9` of the master show up, read with a real exposition parser.
#[test]
fn metrics_show_the_full_sync_and_a_failover() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let local = Local::start(2, &["--metrics-addr", &addr, "--down-after-seconds", "1"]);
    local.wait_ready(READY);
    if parse_exposition(&scrape(port)).is_none() {
        tandem_testkit::skip_or_fail(
            "the metrics test parses with Python's prometheus_client: pip install prometheus-client",
        );
        return;
    }
    // The replica's initial full sync, as the master counts it (sync_full).
    let deadline = Instant::now() + Duration::from_secs(20);
    let samples = loop {
        let samples = parse_exposition(&scrape(port)).unwrap();
        if sample(&samples, "tandem_set_master_full_syncs") >= 1.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "no full sync: {samples:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&samples, "tandem_set_master_full_syncs"), 1.0);
    assert_eq!(sample(&samples, "tandem_set_failovers_total"), 0.0);
    let ready: Vec<_> = samples
        .iter()
        .filter(|(n, l, v)| n == "tandem_set_phase" && l["phase"] == "Ready" && *v == 1.0)
        .collect();
    assert_eq!(ready.len(), 1, "{samples:?}");
    let online: Vec<_> = samples
        .iter()
        .filter(|(n, l, v)| n == "tandem_replica_sync_state" && l["state"] == "online" && *v == 1.0)
        .collect();
    assert_eq!(online.len(), 1, "the replica online: {samples:?}");

    let master = local.status().unwrap()["master"]
        .as_str()
        .unwrap()
        .to_owned();
    local.kill_node(&master);
    // Down-after (1 s) plus a few passes; the promoted replica needs no sync.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let samples = parse_exposition(&scrape(port)).unwrap();
        if sample(&samples, "tandem_set_failovers_total") >= 1.0 {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "no failover counted: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&samples, "tandem_set_failovers_total"), 1.0);
    let status = local.status().unwrap();
    assert_ne!(status["master"], master.as_str());
    assert_eq!(
        sample(&samples, "tandem_set_failover_bytes_at_risk"),
        status["lastFailover"]["bytesAtRisk"].as_f64().unwrap()
    );
}

/// A Sentinel-aware client process (tests/sentinel_clients) driven line by line.
struct SentinelClient {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    what: &'static str,
}

impl SentinelClient {
    fn start(what: &'static str, mut command: Command) -> SentinelClient {
        use std::io::BufRead as _;
        use std::process::Stdio;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {what} client: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        SentinelClient {
            child,
            stdin,
            lines,
            what,
        }
    }

    /// SETs `key` through the client, which retries for up to 30 s while it finds the master.
    fn write(&mut self, key: &str) {
        use std::io::Write as _;
        writeln!(self.stdin, "write {key}").unwrap();
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the {} client did not answer: {e}", self.what));
        assert_eq!(answer, format!("done {key}"), "{}", self.what);
    }
}

impl Drop for SentinelClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-py's `Sentinel` and ioredis in sentinel mode, given only the nodes' Sentinel
/// endpoints, follow a planned switchover and a failover after `kill -9` of the master:
/// each write lands on the master the operator chose.
#[test]
fn sentinel_clients_follow_a_switchover_and_a_failover() {
    let sentinels = |local: &Local| -> Vec<String> {
        (0..3)
            .map(|i| (local.base() + 10_000 + i).to_string())
            .collect()
    };
    let local = Local::start(3, &["--down-after-seconds", "1"]);
    local.wait_ready(READY);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sentinel_clients");
    let mut clients = Vec::new();
    match tandem_testkit::real_tool("python3") {
        Some(python)
            if Command::new(&python)
                .args(["-c", "import redis"])
                .status()
                .is_ok_and(|s| s.success()) =>
        {
            let mut c = Command::new(python);
            c.arg(dir.join("follow.py"))
                .arg("local")
                .args(sentinels(&local));
            clients.push(SentinelClient::start("redis-py", c));
        }
        _ => tandem_testkit::skip_or_fail("redis-py not installed (pip install redis)"),
    }
    let node_modules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/tests/node/node_modules");
    match tandem_testkit::real_tool("node") {
        Some(node) if node_modules.join("ioredis/package.json").is_file() => {
            let mut c = Command::new(node);
            c.env("NODE_PATH", &node_modules)
                .arg(dir.join("follow.cjs"))
                .arg("local")
                .args(sentinels(&local));
            clients.push(SentinelClient::start("ioredis", c));
        }
        _ => tandem_testkit::skip_or_fail(
            "node or ioredis missing (npm ci --prefix server/tests/node)",
        ),
    }
    let landed_on = |key: &str| -> String {
        let status = local.status().unwrap();
        let master = status["master"].as_str().unwrap().to_owned();
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query(&mut local.conn(&master))
            .unwrap();
        assert!(v.is_some(), "{key} is not on the master, {master}");
        master
    };
    for (i, c) in clients.iter_mut().enumerate() {
        c.write(&format!("before-{i}"));
        landed_on(&format!("before-{i}"));
    }

    let first = local.status().unwrap()["master"]
        .as_str()
        .unwrap()
        .to_owned();
    local.ask_switchover();
    let after = local.wait_status("a switchover", Duration::from_secs(30), |s| {
        s["lastSwitchover"].is_object() && s["master"] != first.as_str()
    });
    let second = after["master"].as_str().unwrap().to_owned();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write(&format!("switched-{i}"));
        assert_eq!(landed_on(&format!("switched-{i}")), second);
    }

    local.kill_node(&second);
    let after = local.wait_status("a failover", Duration::from_secs(30), |s| {
        s["lastFailover"].is_object() && s["master"] != second.as_str()
    });
    let third = after["master"].as_str().unwrap().to_owned();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write(&format!("failed-over-{i}"));
        assert_eq!(landed_on(&format!("failed-over-{i}")), third);
    }
    eprintln!(
        "{} Sentinel clients followed {first} -> {second} (switchover) -> {third} (failover)",
        clients.len()
    );
}
