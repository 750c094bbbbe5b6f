//! Consecutive departures of the master of `tandem-operator local` under a continuous write
//! load, each write counted as acknowledged only when `WAIT 1` says a replica has it: N times
//! `kill -9` of whichever node is master (failovers), and N times `kill -TERM` of it (each a
//! switchover: the server waits for its role to move away, `shutdown-handover-timeout`, and
//! the operator moves it). At the end every acknowledged key is read back from the final
//! master: none may be missing or hold another value. N is 3 (2 for SIGTERM) here and 10
//! with TANDEM_LONG_FAULTS=1 (as for the netns fault suite). The figures (N, writes,
//! acknowledged writes, each move's time and write pause) are printed; docs/reliability.md
//! records a run.

#![allow(clippy::unwrap_used)]

#[path = "common/local_mode.rs"]
mod local_mode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use local_mode::{Local, MasterFinder};

/// What the writer did: every SET the master accepted, and the indices of those that
/// `WAIT 1` acknowledged (key `f{i}`, value `i`).
struct Load {
    writes: u64,
    acked: Vec<u64>,
}

/// Writes `f{i} = i` to whichever node the operator's status names master, `WAIT 1 1000`
/// after each; on any error (the master killed, a stale status naming a replica, NOREPLICAS
/// while no replica is online) it finds the master again and goes on.
fn write_load(finder: &MasterFinder, stop: &AtomicBool, acked_count: &AtomicUsize) -> Load {
    let mut load = Load {
        writes: 0,
        acked: Vec::new(),
    };
    let mut conn: Option<redis::Connection> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            conn = finder.master().and_then(|(_, port)| {
                let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .ok()?
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .ok()?;
                c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                Some(c)
            });
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        };
        i += 1;
        if redis::cmd("SET")
            .arg(format!("f{i}"))
            .arg(i)
            .query::<()>(c)
            .is_err()
        {
            conn = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        load.writes += 1;
        match redis::cmd("WAIT").arg(1).arg(1000).query::<i64>(c) {
            Ok(n) if n >= 1 => {
                load.acked.push(i);
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => conn = None,
        }
    }
    load
}

/// Polls until `acked` passes `target`, failing with `what` after `timeout`.
fn wait_acked(acked: &AtomicUsize, target: usize, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while acked.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "{what}: {} acknowledged writes, waiting for {target}",
            acked.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn consecutive_failovers_under_write_load_lose_no_write_acknowledged_by_wait() {
    let long = std::env::var("TANDEM_LONG_FAULTS").is_ok_and(|v| v == "1");
    let rounds = if long { 10 } else { 3 };
    let local = Local::start(3, &[]);
    local.wait_ready(Duration::from_secs(60));

    let writer = Writer::start(&local);
    let acked = writer.acked.clone();

    // (killed node, new master, seconds until the status names it, seconds until the
    // first write acknowledged by WAIT 1 after that)
    let mut failovers: Vec<(String, String, f64, f64)> = Vec::new();
    for round in 1..=rounds {
        // Every node back and online, and writes acknowledged on the current master.
        let status = local.wait_ready(Duration::from_secs(60));
        let master = status["master"].as_str().expect("master").to_owned();
        let target = acked.load(Ordering::Relaxed) + 200;
        wait_acked(&acked, target, Duration::from_secs(30), "before the kill");

        local.kill_node(&master);
        let killed = Instant::now();
        let after = local.wait_status(
            &format!("round {round}: a master other than {master}"),
            Duration::from_secs(10),
            |s| s["master"].as_str().is_some_and(|m| m != master),
        );
        let named = killed.elapsed();
        let new_master = after["master"].as_str().expect("master").to_owned();
        assert_eq!(after["lastFailover"]["from"], master.as_str());
        assert_eq!(after["lastFailover"]["to"], new_master.as_str());
        // Only the new master can acknowledge from here: the old one is dead.
        let target = acked.load(Ordering::Relaxed) + 1;
        wait_acked(
            &acked,
            target,
            Duration::from_secs(10),
            &format!("round {round}: {new_master} acknowledging writes"),
        );
        let serving = killed.elapsed();
        failovers.push((
            master,
            new_master,
            named.as_secs_f64(),
            serving.as_secs_f64(),
        ));
    }
    for (n, (from, to, named, serving)) in failovers.iter().enumerate() {
        eprintln!(
            "failover {}: kill -9 of {from}; {to} named master after {named:.2}s, first write acknowledged by WAIT 1 after {serving:.2}s",
            n + 1
        );
    }
    writer.finish(&local, &format!("{rounds} failovers"), rounds);
    for (n, (_, _, _, serving)) in failovers.iter().enumerate() {
        assert!(
            *serving <= 5.0,
            "failover {} took {serving:.2}s to acknowledge a write",
            n + 1
        );
    }
}

/// [`write_load`] in its own thread.
struct Writer {
    stop: Arc<AtomicBool>,
    /// Writes acknowledged so far.
    acked: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Load>,
}

impl Writer {
    fn start(local: &Local) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (finder, stop, acked) = (local.master_finder(), stop.clone(), acked.clone());
            std::thread::spawn(move || write_load(&finder, &stop, &acked))
        };
        Self {
            stop,
            acked,
            thread,
        }
    }

    /// Once the set is Ready again (the last node back as a replica, so the final master is
    /// settled), stops the load and reads every acknowledged key back from the final master
    /// with MGET: none may be missing or changed, and at least 200 per round acknowledged.
    fn finish(self, local: &Local, what: &str, rounds: usize) {
        let status = local.wait_ready(Duration::from_secs(60));
        self.stop.store(true, Ordering::Relaxed);
        let load = self.thread.join().expect("writer");
        let final_master = status["master"].as_str().expect("master").to_owned();
        let mut c = local.conn(&final_master);
        let mut lost = Vec::new();
        for chunk in load.acked.chunks(1000) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("f{i}")).collect();
            let values: Vec<Option<u64>> =
                redis::cmd("MGET").arg(&keys).query(&mut c).expect("MGET");
            lost.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter(|(i, v)| *v != Some(**i))
                    .map(|(i, v)| (*i, v)),
            );
        }
        eprintln!(
            "{what}; {} writes accepted, {} acknowledged by WAIT 1, {} of those lost; final master {final_master}",
            load.writes,
            load.acked.len(),
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "acknowledged writes lost or changed (index, value on {final_master}): {:?}",
            &lost[..lost.len().min(20)]
        );
        assert!(load.acked.len() >= 200 * rounds);
    }
}

/// `kill -TERM` of the master under the write load, N times: each ends in a switchover
/// (lastSwitchover from the signalled node, its reason the shutdown), never a failover
/// (lastFailover stays as it was), with writes held for milliseconds and no acknowledged
/// write lost.
#[test]
fn sigterm_of_the_master_is_a_switchover_under_write_load() {
    let long = std::env::var("TANDEM_LONG_FAULTS").is_ok_and(|v| v == "1");
    let rounds = if long { 10 } else { 2 };
    let local = Local::start(2, &[]);
    local.wait_ready(Duration::from_secs(60));

    let writer = Writer::start(&local);
    let acked = writer.acked.clone();

    // (signalled node, new master, seconds until the status names it, write pause in ms)
    let mut moves: Vec<(String, String, f64, u64)> = Vec::new();
    for round in 1..=rounds {
        let status = local.wait_ready(Duration::from_secs(60));
        let master = status["master"].as_str().expect("master").to_owned();
        let failover_before = status["lastFailover"].clone();
        let target = acked.load(Ordering::Relaxed) + 200;
        wait_acked(&acked, target, Duration::from_secs(30), "before the signal");

        local.signal_node(&master, "-TERM");
        let signalled = Instant::now();
        let after = local.wait_status(
            &format!("round {round}: a master other than {master}"),
            Duration::from_secs(20),
            |s| s["master"].as_str().is_some_and(|m| m != master),
        );
        let named = signalled.elapsed();
        let new_master = after["master"].as_str().expect("master").to_owned();
        let record = &after["lastSwitchover"];
        assert_eq!(record["from"], master.as_str(), "{after:#}");
        assert_eq!(record["to"], new_master.as_str());
        assert!(
            record["reason"]
                .as_str()
                .is_some_and(|r| r.contains("is shutting down")),
            "{record}"
        );
        assert_eq!(
            after["lastFailover"], failover_before,
            "round {round}: a SIGTERM is a switchover, not a failover"
        );
        let target = acked.load(Ordering::Relaxed) + 1;
        wait_acked(
            &acked,
            target,
            Duration::from_secs(10),
            &format!("round {round}: {new_master} acknowledging writes"),
        );
        moves.push((
            master,
            new_master,
            named.as_secs_f64(),
            record["writePauseMs"].as_u64().expect("writePauseMs"),
        ));
    }
    for (n, (from, to, named, pause)) in moves.iter().enumerate() {
        eprintln!(
            "switchover {}: kill -TERM of {from}; {to} named master after {named:.2}s, writes held {pause} ms",
            n + 1
        );
    }
    writer.finish(&local, &format!("{rounds} SIGTERMs"), rounds);
    for (n, (_, _, _, pause)) in moves.iter().enumerate() {
        assert!(
            *pause < 1000,
            "switchover {} held writes for {pause} ms",
            n + 1
        );
    }
}
