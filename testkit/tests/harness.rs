//! The harness against a real redis-server: readiness, output kept for the failure message,
//! restart in place, and nothing left behind. Skipped without redis-server unless
//! TANDEM_REQUIRE_REAL_DEPS=1.

use std::time::Duration;
use tandem_testkit::{Launch, redis_available, start_redis, wait_until};

fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_started_server_answers_and_is_gone_with_its_directory_after_drop() {
    let Some(server) = start_redis(&[]) else {
        return;
    };
    let mut c = server.connect();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]),
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    );
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(dir.is_dir());
    drop(server);
    assert!(!dir.exists(), "{} left behind", dir.display());
    // Killed and reaped: the pid is gone, or already another process's.
    assert!(
        !pid_exists(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| !c.contains("redis-server"))
    );
}

#[test]
fn a_server_that_cannot_start_says_why() {
    if !redis_available() {
        return;
    }
    let err = Launch::redis("redis-server")
        .args(&["--no-such-directive", "x"])
        .try_start()
        .err()
        .expect("redis-server refuses an unknown directive");
    let msg = err.to_string();
    assert!(msg.contains("exited during startup"), "{msg}");
    assert!(
        msg.contains("no-such-directive"),
        "the server's own words: {msg}"
    );
}

#[test]
fn restart_keeps_the_port_and_the_directory() {
    let Some(mut server) = start_redis(&[]) else {
        return;
    };
    let (port, dir) = (server.port, server.dir().to_path_buf());
    let mut c = server.connect();
    assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SAVE"]), b"+OK\r\n");
    server.restart();
    assert_eq!((server.port, server.dir()), (port, dir.as_path()));
    assert_eq!(server.connect().cmd(&["GET", "k"]), b"$1\r\nv\r\n");
}

#[test]
fn the_log_is_the_logfile_when_one_is_given() {
    let Some(server) = start_redis(&["--logfile", "server.log"]) else {
        return;
    };
    assert!(server.dir().join("server.log").is_file());
    wait_until("the ready line", Duration::from_secs(10), || {
        server.log().contains("Ready to accept connections")
    });
    assert!(server.stdout().is_empty(), "{}", server.stdout());
}

#[test]
#[should_panic(expected = "timed out after 50ms waiting for nothing")]
fn a_wait_that_never_holds_fails_with_what_it_waited_for() {
    wait_until("nothing", Duration::from_millis(50), || false);
}
