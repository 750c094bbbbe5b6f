//! Shutting down with replicas attached (Redis 7.0's `shutdown-timeout`), from SHUTDOWN and
//! from SIGTERM: the master waits until its replicas have the whole stream, so the writes it
//! acknowledged just before are on them; SHUTDOWN ABORT cancels the wait; a replica that
//! never catches up holds the exit only for `shutdown-timeout` seconds. With
//! `shutdown-handover-timeout`, a SIGTERM'd master keeps serving (INFO says when it will be
//! gone) until a replica took the master role over. Real processes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Info, ServerGuard, start_tandem, wait_in_sync, wait_until};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A replica that attaches and never acknowledges anything.
fn silent_replica(master: &ServerGuard) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    s.write_all(b"REPLCONF listening-port 7\r\nPSYNC ? -1\r\n")
        .unwrap();
    wait_until("the silent replica is attached", WAIT, || {
        master.field("replication", "connected_slaves") == "1"
    });
    s
}

/// Writes `n` keys of 1 KiB in one pipeline: far more than the socket buffers hold.
fn pipelined_sets(master: &ServerGuard, n: usize) {
    let mut c = master.con();
    let mut p = redis::pipe();
    let value = "v".repeat(1024);
    for i in 0..n {
        p.cmd("SET").arg(format!("k{i}")).arg(&value).ignore();
    }
    p.query::<()>(&mut c).unwrap();
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Every write the master acknowledged is on the replica when the master has exited, even
/// with the replica stopped while they were made (the stream then sits in the master's
/// buffers, which an exit without the wait would drop).
#[test]
fn shutdown_waits_until_the_replica_has_everything() {
    for via_signal in [false, true] {
        let mut master = start_tandem(&["--save", ""]);
        let port = master.port.to_string();
        let replica = start_tandem(&["--replicaof", "127.0.0.1", &port]);
        wait_in_sync(&master, &replica);
        signal(replica.pid(), "-STOP");
        pipelined_sets(&master, 20_000);
        if via_signal {
            signal(master.pid(), "-TERM");
        } else {
            master.connect().send(&["SHUTDOWN"]);
        }
        wait_until("the master waits for its replica", WAIT, || {
            master
                .log()
                .contains("Waiting for replicas before shutting down")
        });
        signal(replica.pid(), "-CONT");
        let status = master.wait_exit(WAIT);
        assert!(status.success(), "signal {via_signal}: {status:?}");
        let n: usize = redis::cmd("DBSIZE").query(&mut replica.con()).unwrap();
        assert_eq!(n, 20_000, "signal {via_signal}: writes lost on the replica");
    }
}

/// A replica that never acknowledges: SHUTDOWN blocks with writes paused, ABORT gives the
/// blocked client Redis's error and writes resume; a SIGTERM exits after `shutdown-timeout`
/// with the final save.
#[test]
fn shutdown_abort_and_timeout() {
    let mut master = start_tandem(&["--shutdown-timeout", "1", "--save", "3600 1"]);
    let silent = silent_replica(&master);
    let mut c = master.con();
    let _: () = redis::cmd("SET").arg("k").arg("1").query(&mut c).unwrap();
    let mut blocked = master.connect();
    blocked.send(&["SHUTDOWN"]);
    wait_until("the SHUTDOWN client is blocked", WAIT, || {
        master.field("clients", "blocked_clients") == "1"
    });
    let ok: String = redis::cmd("SHUTDOWN").arg("ABORT").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(
        blocked.read_reply(),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    let _: () = redis::cmd("SET").arg("k").arg("2").query(&mut c).unwrap();
    let err = redis::cmd("SHUTDOWN")
        .arg("ABORT")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("No shutdown in progress"), "{err}");
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &master.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(master.wait_exit(WAIT).success());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "exited after {waited:?}, before shutdown-timeout"
    );
    assert!(master.dir().join("dump.rdb").exists(), "no final save");
    assert!(
        master.log().contains("Lagging replica"),
        "the log does not name the lagging replica"
    );
    drop(silent);
}

/// `shutdown-handover-timeout`: after SIGTERM the master still takes writes and INFO shows
/// `shutdown_in_milliseconds` (handover plus shutdown-timeout); once it is made a replica
/// of its replica (the operator's switchover) it exits with the writes on the new master.
/// Without replicas, or with `shutdown-timeout` unchanged and no handover, it exits at once.
#[test]
fn sigterm_waits_for_the_master_role_to_move_away() {
    let mut master = start_tandem(&["--save", "", "--shutdown-handover-timeout", "30"]);
    let port = master.port.to_string();
    let replica = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &replica);
    let mut c = master.con();
    let exact: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("shutdown-handover-timeout")
        .query(&mut c)
        .unwrap();
    assert_eq!(exact, ["shutdown-handover-timeout", "30"]);
    let listed: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("shutdown-*")
        .query(&mut c)
        .unwrap();
    assert!(
        !listed.iter().any(|n| n == "shutdown-handover-timeout"),
        "a tandem directive is hidden from patterns, as Redis hides its own: {listed:?}"
    );
    signal(master.pid(), "-TERM");
    wait_until("the master announces its shutdown", WAIT, || {
        master.log().contains("for a replica to take over")
    });
    let left: u64 = master
        .field("server", "shutdown_in_milliseconds")
        .parse()
        .unwrap();
    assert!(
        (30_000..=40_000).contains(&left),
        "handover 30 s + shutdown-timeout 10 s, less what passed: {left}"
    );
    assert!(master.alive(), "still serving during the handover wait");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    wait_in_sync(&master, &replica);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut replica.con())
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(replica.port)
        .query(&mut c)
        .unwrap();
    let started = Instant::now();
    assert!(master.wait_exit(WAIT).success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exited {:?} after it became a replica",
        started.elapsed()
    );
    assert!(master.log().contains("The master role moved to a replica"));
    let v: String = redis::cmd("GET")
        .arg("k")
        .query(&mut replica.con())
        .unwrap();
    assert_eq!(v, "v");
    assert_eq!(replica.field("server", "shutdown_in_milliseconds"), "");

    let mut alone = start_tandem(&["--save", "", "--shutdown-handover-timeout", "30"]);
    let started = Instant::now();
    signal(alone.pid(), "-TERM");
    assert!(alone.wait_exit(WAIT).success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a master without replicas has nobody to hand over to"
    );
}
