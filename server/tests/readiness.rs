//! `tandem-server --check-ready`, the pods' exec readiness probe, against real processes: a
//! master is ready; a replica only while it is online. A replica frozen mid-sync (its master
//! stops sending after `+FULLRESYNC` and a few bytes of the payload) fails with the reason,
//! as does one whose master is gone; a wrong password is a failure with Redis's error.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{read_value, start_tandem, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Runs the probe with `args`: (exit code, stdout, stderr).
fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .arg("--check-ready")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// A master that answers the replica's handshake, starts a full sync of 1,000,000 bytes, sends
/// 10 of them and then nothing: the replica stays mid-sync until `repl-timeout`.
fn frozen_master() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut out = sock.try_clone().unwrap();
        let mut commands = BufReader::new(sock);
        loop {
            let Ok(command) = read_value(&mut commands) else {
                return;
            };
            // `*N`, `$len`, then the command's name.
            let text = String::from_utf8_lossy(&command.raw).to_ascii_uppercase();
            let name = text.split("\r\n").nth(2).unwrap_or_default().to_owned();
            if name == "PSYNC" {
                let replid = "a".repeat(40);
                out.write_all(
                    format!("+FULLRESYNC {replid} 0\r\n$1000000\r\nREDIS0010\n").as_bytes(),
                )
                .unwrap();
                // Held open: the transfer never completes while the test runs.
                let _ = read_value(&mut commands);
                return;
            }
            let reply: &[u8] = if name == "PING" {
                b"+PONG\r\n"
            } else {
                b"+OK\r\n"
            };
            out.write_all(reply).unwrap();
        }
    });
    (port, thread)
}

#[test]
fn a_replica_is_ready_only_while_online() {
    let master = start_tandem(&["--requirepass", "pw"]);
    let port = master.port.to_string();
    assert_eq!(
        check(&["--port", &port, "--requirepass", "pw"]),
        (0, "ready: master".to_owned(), String::new())
    );
    let (code, _, err) = check(&["--port", &port, "--requirepass", "wrong"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("not ready: INFO refused: WRONGPASS"),
        "{err}"
    );

    let replica = start_tandem(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--masterauth",
        "pw",
        "--requirepass",
        "pw",
    ]);
    let rport = replica.port.to_string();
    let mut c = replica.con();
    let _: () = redis::cmd("AUTH").arg("pw").query(&mut c).unwrap();
    wait_until("the replica is online", WAIT, || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        info.contains("master_link_status:up")
    });
    assert_eq!(
        check(&["--port", &rport, "--requirepass", "pw"]),
        (0, "ready: replica".to_owned(), String::new())
    );
    drop(master);
    wait_until("the replica sees its master gone", WAIT, || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        info.contains("master_link_status:down")
    });
    assert_eq!(
        check(&["--port", &rport, "--requirepass", "pw"]),
        (
            1,
            String::new(),
            "not ready: replica with its master link down".to_owned()
        )
    );

    let (frozen, _hold) = frozen_master();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(frozen)
        .query(&mut c)
        .unwrap();
    wait_until("the replica is mid-sync", WAIT, || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        info.contains("master_sync_in_progress:1") && info.contains("master_sync_read_bytes:10\r")
    });
    let (code, out, err) = check(&["--port", &rport, "--requirepass", "pw"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "not ready: replica in a full sync (10 of 1000000 bytes)"
    );
}

/// The probe reads the node's own config file (port, and the password through `include`),
/// as a pod's probe reads /etc/tandem/tandem.conf; nothing listening is a failure.
#[test]
fn the_probe_reads_the_nodes_config_file() {
    let server = start_tandem(&["--requirepass", "s3cret"]);
    let dir = common::temp_dir("readiness");
    let auth = dir.join("auth.conf");
    std::fs::write(&auth, "requirepass \"s3cret\"\n").unwrap();
    let conf = dir.join("tandem.conf");
    std::fs::write(
        &conf,
        format!("port {}\ninclude {}\n", server.port, auth.display()),
    )
    .unwrap();
    let conf = conf.display().to_string();
    assert_eq!(check(&[&conf]).0, 0);
    drop(server);
    let (code, _, err) = check(&[&conf]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("not ready: no answer from 127.0.0.1:"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
