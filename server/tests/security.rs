//! Security behaviour side by side with a real redis-server 7.0: protected mode for peers
//! outside the loopback interface, `rename-command`, and passwords kept out of the log
//! (requirepass, masterauth, a wrong AUTH) through a full sync.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, ServerGuard, require_real_deps, start_redis, start_tandem, wait_until};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// An address of this machine that is not loopback: the source address of the default
/// route (a UDP `connect` sends nothing). `None` on a machine with loopback only. The
/// target is a documentation address (TEST-NET-3) that no local subnet claims, so it is
/// never a broadcast address, which a UDP `connect` refuses.
fn non_loopback_address() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Connects to `server` through `ip` (so the server sees `ip` as the peer), sends `send`
/// and returns every byte read until the server closes or goes quiet.
fn talk_via(ip: IpAddr, server: &ServerGuard, send: &[u8]) -> Vec<u8> {
    let s = TcpStream::connect_timeout(&SocketAddr::new(ip, server.port), Duration::from_secs(5))
        .expect("connect through the non-loopback address");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut c = Conn {
        reader: std::io::BufReader::new(s),
    };
    if !send.is_empty() {
        c.write(send);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.reader.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn info_field(server: &ServerGuard, field: &str) -> String {
    let reply = server.connect().cmd(&["INFO", "stats"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn protected_mode_refuses_strangers_like_redis() {
    let Some(ip) = non_loopback_address() else {
        assert!(
            !require_real_deps(),
            "no non-loopback address and TANDEM_REQUIRE_REAL_DEPS=1"
        );
        println!("SKIP: this machine has no non-loopback address");
        return;
    };
    let Some(redis) = start_redis(&["--bind", "0.0.0.0"]) else {
        return;
    };
    let tandem = start_tandem(&["--bind", "0.0.0.0"]);
    let from_redis = talk_via(ip, &redis, b"");
    let from_tandem = talk_via(ip, &tandem, b"");
    assert!(from_redis.starts_with(b"-DENIED Redis is running in protected mode"));
    assert_eq!(
        String::from_utf8_lossy(&from_tandem),
        String::from_utf8_lossy(&from_redis)
    );
    assert_eq!(from_tandem, tandem_server::net::PROTECTED_MODE_DENIED);
    assert_eq!(info_field(&tandem, "rejected_connections"), "1");
    // Loopback clients are served.
    assert_eq!(tandem.connect().cmd(&["PING"]), b"+PONG\r\n");

    // A password, or protected mode off, lets the stranger in (to AUTH first, with one).
    let with_pass = start_tandem(&["--bind", "0.0.0.0", "--requirepass", "pw-protected-x"]);
    assert_eq!(
        talk_via(ip, &with_pass, b"PING\r\n"),
        b"-NOAUTH Authentication required.\r\n"
    );
    let open = start_tandem(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
    assert_eq!(talk_via(ip, &open, b"PING\r\n"), b"+PONG\r\n");
    // CONFIG SET from the loopback interface lifts it at run time, as Redis suggests.
    tandem
        .connect()
        .cmd(&["CONFIG", "SET", "protected-mode", "no"]);
    assert_eq!(talk_via(ip, &tandem, b"PING\r\n"), b"+PONG\r\n");
}

/// The renames the operator uses: CONFIG under a secret name, DEBUG and SHUTDOWN gone.
const RENAMES: &[&str] = &[
    "--rename-command",
    "CONFIG",
    "op-config-7f3a",
    "--rename-command",
    "DEBUG",
    "",
    "--rename-command",
    "SHUTDOWN",
    "",
];

#[test]
fn renamed_and_disabled_commands_answer_like_redis() {
    let Some(redis) = start_redis(RENAMES) else {
        return;
    };
    let tandem = start_tandem(RENAMES);
    let commands: &[&[&str]] = &[
        &["CONFIG", "GET", "maxmemory"],
        &["config", "set", "maxmemory", "1"],
        &["op-config-7f3a", "GET", "maxmemory"],
        &["OP-CONFIG-7F3A", "SET", "maxmemory-samples", "7"],
        &["op-config-7f3a", "GET", "maxmemory-samples"],
        // rename-command is not a CONFIG parameter.
        &["op-config-7f3a", "GET", "rename-command"],
        &["op-config-7f3a"],
        &["DEBUG", "SLEEP", "0"],
        &["SHUTDOWN", "NOSAVE"],
        // COMMAND looks names up as the client sends them too.
        &["COMMAND", "INFO", "debug", "shutdown", "config"],
        &["COMMAND", "GETKEYS", "DEBUG", "OBJECT", "k"],
        &["COMMAND", "GETKEYS", "op-config-7f3a", "GET", "k"],
        &["SET", "k", "v"],
        &["GET", "k"],
    ];
    let (mut r, mut t) = (redis.connect(), tandem.connect());
    for cmd in commands {
        let want = r.cmd(cmd);
        let got = t.cmd(cmd);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{cmd:?}"
        );
    }
}

#[test]
fn a_bad_rename_stops_the_server_with_redis_error() {
    for (args, want) in [
        (
            &["--rename-command", "NOSUCH", "x"][..],
            "No such command in rename-command",
        ),
        (
            &["--rename-command", "DEBUG", "get"][..],
            "Target command name already exists",
        ),
    ] {
        let mut server = common::tandem()
            .args(args)
            .spawn()
            .expect("run tandem-server");
        let status = server.wait_exit(WAIT);
        assert!(!status.success(), "{args:?} must not start");
        let text = server.stderr();
        assert!(text.contains(want), "{args:?}: {text}");
    }
}

/// How long a sync or a log line may take to appear: bounds a hang, not the work.
const WAIT: Duration = Duration::from_secs(30);

fn log_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tandem-security-{}-{tag}.log", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// With CONFIG renamed and DEBUG/SHUTDOWN removed on both sides, a replica still syncs and
/// follows the stream, authenticates with masterauth, and no password reaches either log,
/// even at the most verbose level and after a wrong AUTH and a wrong masterauth.
#[test]
fn replication_with_renames_and_auth_keeps_passwords_out_of_logs() {
    const PASS: &str = "pw-master-5b1e9c";
    const WRONG: &str = "pw-wrong-a77d02";
    const NEW_PASS: &str = "pw-rotated-3c8f41";
    let (mlog, rlog, blog) = (log_path("master"), log_path("replica"), log_path("bad"));
    let mut margs = vec!["--requirepass", PASS, "--loglevel", "debug"];
    margs.extend_from_slice(&["--logfile", mlog.to_str().unwrap()]);
    margs.extend_from_slice(RENAMES);
    let master = start_tandem(&margs);
    let mut mc = master.connect();
    assert_eq!(
        mc.cmd(&["AUTH", WRONG]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(mc.cmd(&["AUTH", PASS]), b"+OK\r\n");
    assert_eq!(mc.cmd(&["SET", "before", "1"]), b"+OK\r\n");
    // CONFIG GET requirepass answers with the password, as Redis does, to a client that
    // knows the renamed CONFIG and is authenticated.
    let got = mc.cmd(&["op-config-7f3a", "GET", "requirepass"]);
    assert!(String::from_utf8_lossy(&got).contains(PASS));

    let port = master.port.to_string();
    let mut rargs = vec!["--replicaof", "127.0.0.1", &port, "--masterauth", PASS];
    rargs.extend_from_slice(&["--requirepass", PASS, "--loglevel", "debug"]);
    rargs.extend_from_slice(&["--logfile", rlog.to_str().unwrap()]);
    rargs.extend_from_slice(RENAMES);
    let replica = start_tandem(&rargs);
    let mut rc = replica.connect();
    assert_eq!(rc.cmd(&["AUTH", PASS]), b"+OK\r\n");
    wait_until("the replica to load the master's dataset", WAIT, || {
        rc.cmd(&["GET", "before"]) == b"$1\r\n1\r\n"
    });
    assert_eq!(mc.cmd(&["SET", "after", "2"]), b"+OK\r\n");
    wait_until("the stream to reach the replica", WAIT, || {
        rc.cmd(&["GET", "after"]) == b"$1\r\n2\r\n"
    });
    assert!(
        String::from_utf8_lossy(&rc.cmd(&["CONFIG", "GET", "port"]))
            .starts_with("-ERR unknown command 'CONFIG'")
    );
    assert_eq!(
        mc.cmd(&["op-config-7f3a", "SET", "requirepass", NEW_PASS]),
        b"+OK\r\n"
    );

    // A replica with the wrong masterauth never links, and says why without the password.
    let mut bargs = vec!["--replicaof", "127.0.0.1", &port, "--masterauth", WRONG];
    bargs.extend_from_slice(&["--loglevel", "debug", "--logfile", blog.to_str().unwrap()]);
    let bad = start_tandem(&bargs);
    wait_until("the refused AUTH to be logged", WAIT, || {
        std::fs::read_to_string(&blog).is_ok_and(|l| l.contains("Unable to AUTH to MASTER"))
    });
    assert!(
        String::from_utf8_lossy(&bad.connect().cmd(&["INFO", "replication"]))
            .contains("master_link_status:down")
    );
    drop((bad, replica, master));

    for log in [&mlog, &rlog, &blog] {
        let text = std::fs::read_to_string(log).expect("log written");
        assert!(
            text.lines().count() > 3,
            "{}: the log is nearly empty",
            log.display()
        );
        for secret in [PASS, WRONG, NEW_PASS] {
            assert!(
                !text.contains(secret),
                "{} contains a password:\n{text}",
                log.display()
            );
        }
        let _ = std::fs::remove_file(log);
    }
}

/// The last "Unable to AUTH to MASTER" line of a replica's log, from the message on.
fn auth_refusal(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        l.find("Unable to AUTH to MASTER")
            .map(|at| l[at..].to_owned())
    })
}

/// A tandem replica of `master_port` authenticating as `user` with `pass`, logging to `log`.
fn replica_as(master_port: &str, user: &str, pass: &str, log: &std::path::Path) -> ServerGuard {
    start_tandem(&[
        "--replicaof",
        "127.0.0.1",
        master_port,
        "--masteruser",
        user,
        "--masterauth",
        pass,
        "--logfile",
        log.to_str().unwrap(),
    ])
}

fn link_up(replica: &ServerGuard) -> bool {
    String::from_utf8_lossy(&replica.connect().cmd(&["INFO", "replication"]))
        .contains("master_link_status:up")
}

/// `masteruser` + `masterauth`: a tandem replica authenticates as a named ACL user of a real
/// Redis 7.0 master, one allowed only what a replica sends (`+psync +replconf +ping`, the
/// grant Redis's documentation gives a replication user), and the master lists the link
/// under that user; a wrong password is refused with Redis's WRONGPASS and the link stays
/// down. tandem-server itself has only the `default` user: as a master it takes
/// `masteruser default` and refuses any other name with the same WRONGPASS a Redis master
/// gives an unknown user.
#[test]
fn masteruser_and_masterauth_authenticate_a_replica_as_a_named_user() {
    const PASS: &str = "pw-repl-91c2e4";
    const WRONG: &str = "pw-wrong-0d6b3a";
    const REFUSED: &str =
        "Unable to AUTH to MASTER: -WRONGPASS invalid username-password pair or user is disabled.";
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let mut mc = redis.connect();
    let acl = ["ACL", "SETUSER", "repl", "on", &format!(">{PASS}")];
    let grant = ["+psync", "+replconf", "+ping"];
    assert_eq!(mc.cmd(&[&acl[..], &grant[..]].concat()), b"+OK\r\n");
    assert_eq!(mc.cmd(&["SET", "k", "from-redis"]), b"+OK\r\n");
    let port = redis.port.to_string();

    let log = log_path("masteruser-ok");
    let replica = replica_as(&port, "repl", PASS, &log);
    let mut rc = replica.connect();
    wait_until("the replica to load Redis's dataset", WAIT, || {
        rc.cmd(&["GET", "k"]) == b"$10\r\nfrom-redis\r\n"
    });
    assert!(link_up(&replica));
    let clients =
        String::from_utf8_lossy(&mc.cmd(&["CLIENT", "LIST", "TYPE", "replica"])).into_owned();
    assert!(clients.contains("user=repl"), "{clients}");
    assert!(auth_refusal(&log).is_none());

    let bad_log = log_path("masteruser-wrong");
    let bad = replica_as(&port, "repl", WRONG, &bad_log);
    wait_until("the refused AUTH to be logged", WAIT, || {
        auth_refusal(&bad_log).is_some()
    });
    assert_eq!(auth_refusal(&bad_log).as_deref(), Some(REFUSED));
    assert!(!link_up(&bad));
    drop((bad, replica, redis));

    // A tandem master without a `repl` user refuses the name as Redis does; `default` works.
    let master = start_tandem(&["--requirepass", PASS]);
    let port = master.port.to_string();
    let as_default_log = log_path("masteruser-default");
    let as_default = replica_as(&port, "default", PASS, &as_default_log);
    wait_until("the replica to link as default", WAIT, || {
        link_up(&as_default)
    });
    let unknown_log = log_path("masteruser-unknown");
    let unknown = replica_as(&port, "repl", PASS, &unknown_log);
    wait_until("the refused AUTH to be logged", WAIT, || {
        auth_refusal(&unknown_log).is_some()
    });
    assert_eq!(auth_refusal(&unknown_log).as_deref(), Some(REFUSED));
    assert!(!link_up(&unknown));
    drop((unknown, as_default, master));
    for l in [&log, &bad_log, &as_default_log, &unknown_log] {
        let _ = std::fs::remove_file(l);
    }
}
