//! TLS against the real parts: `redis-cli --tls` with and without client certificates under
//! each `tls-auth-clients` mode, side by side with a real Redis 7.0 configured the same way;
//! replication over TLS in both directions with Redis 7.0 and between tandems (disk and
//! diskless, digests equal); certificates reloaded by CONFIG SET while a client stays
//! connected; hostile input on the TLS port (plaintext instead of a handshake, half-open
//! connections, untrusted and expired client certificates) refused without harm to other
//! clients. Certificates are made by the `openssl` command for each test.

#![allow(clippy::unwrap_used)]

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{Info, Launch, ServerGuard, free_port, read_value, wait_in_sync, wait_until};
use tandem_testkit::tls::{Pki, Usage};

/// Bounds a wait on a loaded 2-core machine; every wait polls a condition.
const WAIT: Duration = Duration::from_secs(30);

/// The certificates the tests use: `ca` and `other-ca`; `server` and `server2` from `ca`;
/// `client` from `ca`, `stranger` from `other-ca`, `expired` (the client's key, expired in
/// 2020). `None` (after skip_or_fail) when the openssl command is missing.
fn certificates() -> Option<Pki> {
    if common::which("openssl").is_none() {
        common::skip_or_fail("the openssl command is needed to make certificates");
        return None;
    }
    let pki = Pki::new("tandem-tls").unwrap();
    pki.ca("other-ca").unwrap();
    pki.signed("ca", "server", Usage::Server).unwrap();
    pki.signed("ca", "server2", Usage::Server).unwrap();
    pki.signed("ca", "client", Usage::Client).unwrap();
    pki.signed("other-ca", "stranger", Usage::Client).unwrap();
    pki.expired("client", "expired").unwrap();
    Some(pki)
}

/// A server with a plain port (the harness's) and a TLS port.
struct TlsServer {
    guard: ServerGuard,
    tls_port: u16,
}

fn start(launch: Launch, pki: &Pki, auth: &str, extra: &[&str]) -> TlsServer {
    let tls_port = free_port();
    let mut args = pki.server_args(tls_port, auth);
    args.extend(extra.iter().map(|s| (*s).to_string()));
    let guard = launch.args(&args).start();
    TlsServer { guard, tls_port }
}

fn tandem(pki: &Pki, auth: &str, extra: &[&str]) -> TlsServer {
    start(common::tandem(), pki, auth, extra)
}

fn redis(pki: &Pki, auth: &str, extra: &[&str]) -> TlsServer {
    start(Launch::redis("redis-server"), pki, auth, extra)
}

/// `redis-cli --tls` with `client` as its certificate (`None`: without one); the output
/// when the command succeeded, `None` when the connection was refused.
fn cli(pki: &Pki, port: u16, client: Option<&str>, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert", &pki.path("ca.crt")]);
    if let Some(name) = client {
        cmd.args([
            "--cert",
            &pki.path(&format!("{name}.crt")),
            "--key",
            &pki.path(&format!("{name}.key")),
        ]);
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let refused = !out.status.success()
        || stdout.is_empty()
        || stdout.starts_with("Error")
        || stdout.starts_with("Could not connect");
    (!refused).then_some(stdout)
}

/// An in-process TLS client (rustls), for holding a connection across a reload and
/// seeing which certificate the server presents.
struct Client {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl Client {
    fn connect(pki: &Pki, port: u16, cert: Option<&str>) -> std::io::Result<Client> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.path("ca.crt")).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(pki.path(&format!("{name}.crt")))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
        };
        let name = "localhost".try_into().unwrap();
        let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(WAIT))?;
        let mut stream = rustls::StreamOwned::new(session, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    fn cmd(&mut self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        self.stream.get_mut().write_all(&common::encode(args))?;
        Ok(read_value(&mut self.stream)?.raw)
    }

    /// The certificate the server presented.
    fn server_certificate(&self) -> Vec<u8> {
        let conn = &self.stream.get_ref().conn;
        conn.peer_certificates().unwrap()[0].to_vec()
    }
}

fn der(pki: &Pki, name: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(pki.path(&format!("{name}.crt")))
        .unwrap()
        .to_vec()
}

fn redis_ready(pki: &Option<Pki>) -> bool {
    pki.is_some() && tandem_testkit::redis_available()
}

#[test]
fn redis_cli_over_tls_with_each_client_auth_mode_as_redis() {
    let pki = certificates();
    if !redis_ready(&pki) {
        return;
    }
    let pki = pki.unwrap();
    let clients = [
        None,
        Some("client"),
        Some("stranger"),
        Some("expired"),
        Some("server"),
    ];
    for auth in ["yes", "no", "optional"] {
        let t = tandem(&pki, auth, &[]);
        let r = redis(&pki, auth, &[]);
        for client in clients {
            let case = format!("tls-auth-clients {auth}, client certificate {client:?}");
            let ours = cli(&pki, t.tls_port, client, &["PING"]);
            let theirs = cli(&pki, r.tls_port, client, &["PING"]);
            assert_eq!(ours, theirs, "{case}");
        }
        // What Redis 7.0 decides, spelled out for the cases a reader looks for.
        assert_eq!(
            cli(&pki, t.tls_port, Some("client"), &["PING"]).as_deref(),
            Some("PONG")
        );
        // A certificate from another CA is refused unless none is asked for.
        let stranger = cli(&pki, t.tls_port, Some("stranger"), &["PING"]);
        assert_eq!(stranger.is_some(), auth == "no", "{auth}");
        let anonymous = cli(&pki, t.tls_port, None, &["PING"]);
        assert_eq!(anonymous.is_some(), auth != "yes", "{auth}");
        // Commands, replies and errors over TLS read as over TCP.
        for args in [
            &["SET", "k", "v"][..],
            &["GET", "k"],
            &["INCR", "k"],
            &["CONFIG", "GET", "tls-auth-clients"],
            &["CONFIG", "GET", "tls-port"],
        ] {
            let ours = cli(&pki, t.tls_port, Some("client"), args);
            let theirs = cli(&pki, r.tls_port, Some("client"), args);
            if args[1] == "GET" && args.len() == 3 && args[2] == "tls-port" {
                assert_eq!(ours, Some(format!("tls-port\n{}", t.tls_port)));
                assert_eq!(theirs, Some(format!("tls-port\n{}", r.tls_port)));
                continue;
            }
            assert_eq!(ours, theirs, "{args:?} with tls-auth-clients {auth}");
        }
    }
}

/// The `tls-*` directives as CONFIG GET shows them, and CONFIG SET's refusal of files
/// that cannot be read, in Redis 7.0's words; the configuration keeps its values then.
#[test]
fn config_get_and_a_refused_reload_read_as_redis() {
    let pki = certificates();
    if !redis_ready(&pki) {
        return;
    }
    let pki = pki.unwrap();
    let t = tandem(&pki, "optional", &[]);
    let r = redis(&pki, "optional", &[]);
    let names = [
        "tls-auth-clients",
        "tls-replication",
        "tls-protocols",
        "tls-ciphers",
        "tls-ciphersuites",
        "tls-key-file-pass",
        "tls-client-cert-file",
        "tls-ca-cert-dir",
        "tls-session-caching",
    ];
    for name in names {
        assert_eq!(
            t.guard.connect().cmd(&["CONFIG", "GET", name]),
            r.guard.connect().cmd(&["CONFIG", "GET", name]),
            "{name}"
        );
    }
    for (name, value) in [
        ("tls-cert-file", "/nonexistent/cert.pem"),
        ("tls-key-file", "/nonexistent/key.pem"),
        ("tls-ca-cert-file", "/nonexistent/ca.pem"),
        ("tls-protocols", "SSLv3"),
    ] {
        let ours = t.guard.connect().cmd(&["CONFIG", "SET", name, value]);
        let theirs = r.guard.connect().cmd(&["CONFIG", "SET", name, value]);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{name}"
        );
        assert!(ours.starts_with(b"-ERR CONFIG SET failed"), "{name}");
        let kept = t.guard.connect().cmd(&["CONFIG", "GET", name]);
        assert!(!String::from_utf8_lossy(&kept).contains(value), "{name}");
    }
    // The failed reloads left the contexts as they were.
    assert_eq!(
        cli(&pki, t.tls_port, Some("client"), &["PING"]).as_deref(),
        Some("PONG")
    );
    assert_eq!(
        t.guard.field("server", "tcp_port"),
        t.guard.port.to_string()
    );
}

#[test]
fn port_zero_serves_tls_only_and_info_shows_the_tls_port() {
    let Some(pki) = certificates() else {
        return;
    };
    let tls_port = free_port();
    let mut args = pki.server_args(tls_port, "no");
    args.extend(["--port".into(), "0".into()]);
    // The harness waits for PING on a plain port; this server has none, so it is spawned
    // and watched through TLS.
    let _guard = common::tandem().args(&args).spawn().unwrap();
    let mut client = tandem_testkit::poll("the TLS port answers", WAIT, || {
        Client::connect(&pki, tls_port, None).ok()
    });
    assert_eq!(client.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
    let info = String::from_utf8_lossy(&client.cmd(&["INFO", "server"]).unwrap()).into_owned();
    assert!(info.contains(&format!("tcp_port:{tls_port}\r\n")), "{info}");
}

#[test]
fn encrypted_keys_are_refused_with_the_reason() {
    let Some(pki) = certificates() else {
        return;
    };
    pki.openssl(&[
        "pkey",
        "-in",
        "server.key",
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        "encrypted.key",
    ])
    .unwrap();
    let tls_port = free_port();
    let args = [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &pki.path("server.crt"),
        "--tls-key-file",
        &pki.path("encrypted.key"),
        "--tls-key-file-pass",
        "secret",
        "--tls-ca-cert-file",
        &pki.path("ca.crt"),
    ];
    let mut server = common::tandem().args(&args).spawn().unwrap();
    let status = server.wait_exit(WAIT);
    assert!(!status.success());
    let said = server.stderr();
    assert!(
        said.contains("encrypted private keys are not supported")
            && said.contains("Failed to configure TLS"),
        "{said}"
    );
}

/// Rotation as an operator does it: new files at the same paths, then CONFIG SET of the
/// paths. New connections get the new certificate; the established one keeps its session.
#[test]
fn config_set_reloads_certificates_for_new_connections_only() {
    let Some(pki) = certificates() else {
        return;
    };
    std::fs::copy(pki.path("server.crt"), pki.path("live.crt")).unwrap();
    std::fs::copy(pki.path("server.key"), pki.path("live.key")).unwrap();
    let tls_port = free_port();
    let mut args = pki.server_args(tls_port, "optional");
    args[3] = pki.path("live.crt");
    args[5] = pki.path("live.key");
    let server = common::tandem().args(&args).start();
    let mut held = Client::connect(&pki, tls_port, Some("client")).unwrap();
    let id = held.cmd(&["CLIENT", "ID"]).unwrap();
    assert_eq!(held.cmd(&["SET", "k", "before"]).unwrap(), b"+OK\r\n");
    assert_eq!(held.server_certificate(), der(&pki, "server"));

    std::fs::copy(pki.path("server2.crt"), pki.path("live.crt")).unwrap();
    std::fs::copy(pki.path("server2.key"), pki.path("live.key")).unwrap();
    let live = (pki.path("live.crt"), pki.path("live.key"));
    let reply = server.connect().cmd(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &live.0,
        "tls-key-file",
        &live.1,
    ]);
    assert_eq!(reply, b"+OK\r\n");

    let mut fresh = Client::connect(&pki, tls_port, Some("client")).unwrap();
    assert_eq!(fresh.server_certificate(), der(&pki, "server2"));
    assert_eq!(fresh.cmd(&["GET", "k"]).unwrap(), b"$6\r\nbefore\r\n");
    assert_eq!(held.cmd(&["SET", "k", "after"]).unwrap(), b"+OK\r\n");
    assert_eq!(held.server_certificate(), der(&pki, "server"));
    assert_eq!(fresh.cmd(&["GET", "k"]).unwrap(), b"$5\r\nafter\r\n");
    assert_eq!(held.cmd(&["CLIENT", "ID"]).unwrap(), id);
}

/// Plaintext on the TLS port, connections that never finish a handshake and certificates
/// the server must refuse: each such peer is dropped or left idle, and the clients already
/// there keep being served.
#[test]
fn hostile_peers_on_the_tls_port_harm_no_other_client() {
    let Some(pki) = certificates() else {
        return;
    };
    let t = tandem(&pki, "yes", &[]);
    let mut good = Client::connect(&pki, t.tls_port, Some("client")).unwrap();
    assert_eq!(good.cmd(&["SET", "k", "1"]).unwrap(), b"+OK\r\n");

    // A plaintext command instead of a ClientHello: an alert, then the connection closes.
    let mut plain = TcpStream::connect(("127.0.0.1", t.tls_port)).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    plain.write_all(b"PING\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.windows(4).any(|w| w == b"PONG"), "{got:?}");
    // Random bytes in a TLS record header.
    let mut junk = TcpStream::connect(("127.0.0.1", t.tls_port)).unwrap();
    junk.set_read_timeout(Some(WAIT)).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let _ = junk.read_to_end(&mut got);

    // Half-open: a partial record and silence, from many peers at once.
    let half_open: Vec<TcpStream> = (0..32)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", t.tls_port)).unwrap();
            s.write_all(&[0x16, 0x03]).unwrap();
            s
        })
        .collect();
    // Certificates the server refuses.
    for refused in ["stranger", "expired"] {
        let outcome =
            Client::connect(&pki, t.tls_port, Some(refused)).and_then(|mut c| c.cmd(&["PING"]));
        assert!(outcome.is_err(), "{refused}: {outcome:?}");
    }
    assert_eq!(cli(&pki, t.tls_port, Some("expired"), &["PING"]), None);

    // Meanwhile the held client, a new one and the plain port are served.
    assert_eq!(good.cmd(&["INCR", "k"]).unwrap(), b":2\r\n");
    let mut fresh = Client::connect(&pki, t.tls_port, Some("client")).unwrap();
    assert_eq!(fresh.cmd(&["GET", "k"]).unwrap(), b"$1\r\n2\r\n");
    assert_eq!(t.guard.connect().cmd(&["PING"]), b"+PONG\r\n");
    let clients =
        |g: &ServerGuard| -> u64 { g.field("clients", "connected_clients").parse().unwrap() };
    assert!(clients(&t.guard) >= 32);
    drop(half_open);
    // Once the half-open peers go, their connections are gone too: the two held clients
    // and INFO's own.
    wait_until("half-open peers gone", WAIT, || clients(&t.guard) == 3);
}

/// A replica set over TLS: `master` serves its TLS port, the replica links with
/// `tls-replication yes`; digests agree after the full sync and after streamed writes.
fn sync_over_tls(master: &TlsServer, replica: &ServerGuard, case: &str) {
    wait_in_sync(&master.guard, replica);
    let mut m = master.guard.connect();
    assert_eq!(m.cmd(&["SET", "after", "sync"]), b"+OK\r\n");
    assert_eq!(m.cmd(&["HSET", "h", "f", "v"]), b":1\r\n");
    wait_in_sync(&master.guard, replica);
    let digest = |g: &ServerGuard| g.connect().cmd(&["DEBUG", "DIGEST"]);
    assert_eq!(digest(replica), digest(&master.guard), "{case}");
    assert_eq!(replica.field("replication", "master_link_status"), "up");
}

fn populate(g: &ServerGuard, n: usize) {
    let mut c = g.connect();
    assert_eq!(
        c.cmd(&["DEBUG", "POPULATE", &n.to_string(), "key", "64"]),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd(&["RPUSH", "list", "a", "b", "c"]), b":3\r\n");
}

/// A tandem master with data, on the disk (`no`) or the socket target (`yes`).
fn tandem_master(pki: &Pki, diskless: &str) -> TlsServer {
    let master = tandem(
        pki,
        "yes",
        &[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
            "--enable-debug-command",
            "yes",
        ],
    );
    populate(&master.guard, 20_000);
    master
}

fn replica_args(pki: &Pki, master_tls_port: u16) -> Vec<String> {
    let mut args = pki.server_args(free_port(), "yes");
    args.extend(
        [
            "--tls-replication",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &master_tls_port.to_string(),
        ]
        .map(String::from),
    );
    args
}

#[test]
fn redis_replica_of_a_tandem_master_over_tls() {
    let pki = certificates();
    if !redis_ready(&pki) {
        return;
    }
    let pki = pki.unwrap();
    for diskless in ["yes", "no"] {
        let master = tandem_master(&pki, diskless);
        let replica = Launch::redis("redis-server")
            .args(&replica_args(&pki, master.tls_port))
            .start();
        sync_over_tls(&master, &replica, &format!("diskless={diskless}"));
    }
}

#[test]
fn tandem_replica_of_a_redis_master_over_tls() {
    let pki = certificates();
    if !redis_ready(&pki) {
        return;
    }
    let pki = pki.unwrap();
    for (diskless, load) in [
        ("yes", "disabled"),
        ("no", "disabled"),
        ("yes", "on-empty-db"),
    ] {
        let master = redis(
            &pki,
            "yes",
            &[
                "--repl-diskless-sync",
                diskless,
                "--repl-diskless-sync-delay",
                "0",
            ],
        );
        populate(&master.guard, 20_000);
        let mut args = replica_args(&pki, master.tls_port);
        args.extend(["--repl-diskless-load".into(), load.into()]);
        args.extend(["--enable-debug-command".into(), "yes".into()]);
        let replica = common::tandem().args(&args).start();
        sync_over_tls(
            &master,
            &replica,
            &format!("diskless={diskless} load={load}"),
        );
        // The replica announced its TLS port, as a Redis replica with tls-replication does.
        let listed = master.guard.field("replication", "slave0");
        assert!(
            listed.contains(&format!("port={}", replica_tls_port(&args))),
            "{listed}"
        );
    }
}

fn replica_tls_port(args: &[String]) -> String {
    let i = args.iter().position(|a| a == "--tls-port").unwrap();
    args[i + 1].clone()
}

/// tandem to tandem: the fork-less transfer (diskless) and the disk target, over TLS.
#[test]
fn tandem_replica_of_a_tandem_master_over_tls() {
    let Some(pki) = certificates() else {
        return;
    };
    for diskless in ["yes", "no"] {
        let master = tandem_master(&pki, diskless);
        let mut args = replica_args(&pki, master.tls_port);
        args.extend(["--enable-debug-command".into(), "yes".into()]);
        let replica = common::tandem().args(&args).start();
        sync_over_tls(&master, &replica, &format!("diskless={diskless}"));
    }
}

/// A replica whose master's certificate is not from its CA never links, and says why.
#[test]
fn a_replica_refuses_an_untrusted_master() {
    let Some(pki) = certificates() else {
        return;
    };
    let master = tandem(&pki, "no", &[]);
    let mut args = replica_args(&pki, master.tls_port);
    let ca = args.iter().position(|a| a == "--tls-ca-cert-file").unwrap();
    args[ca + 1] = pki.path("other-ca.crt");
    let replica = common::tandem().args(&args).start();
    wait_until("the replica refused the master's certificate", WAIT, || {
        replica
            .stdout()
            .contains("invalid peer certificate: UnknownIssuer")
    });
    assert_eq!(replica.field("replication", "master_link_status"), "down");
    assert_eq!(master.guard.field("replication", "connected_slaves"), "0");
}

/// While a script holds the server, a TLS client is answered BUSY on its own session and
/// can kill the script, as a TCP client can.
#[test]
fn a_tls_client_is_answered_while_a_script_holds_the_server() {
    let Some(pki) = certificates() else {
        return;
    };
    let t = tandem(&pki, "no", &["--busy-reply-threshold", "100"]);
    let mut idle = Client::connect(&pki, t.tls_port, None).unwrap();
    assert_eq!(idle.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
    let mut runner = t.guard.connect();
    runner.send(&["EVAL", "while true do end", "0"]);
    wait_until("the script holds the server", WAIT, || {
        t.guard.connect().cmd(&["PING"]).starts_with(b"-BUSY")
    });
    let busy = idle.cmd(&["PING"]).unwrap();
    assert!(
        busy.starts_with(b"-BUSY Redis is busy running a script."),
        "{busy:?}"
    );
    assert_eq!(idle.cmd(&["SCRIPT", "KILL"]).unwrap(), b"+OK\r\n");
    let killed = runner.read_reply();
    assert!(
        killed.starts_with(b"-ERR Script killed by user with SCRIPT KILL"),
        "{killed:?}"
    );
    assert_eq!(idle.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
}

/// A TLS client over `maxclients` reads Redis's refusal, as a TCP client does, once its
/// handshake is done.
#[test]
fn a_refused_tls_client_reads_why() {
    let Some(pki) = certificates() else {
        return;
    };
    let t = tandem(&pki, "no", &["--maxclients", "1"]);
    let mut first = Client::connect(&pki, t.tls_port, None).unwrap();
    assert_eq!(first.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
    let mut second = Client::connect(&pki, t.tls_port, None).unwrap();
    let refusal = read_value(&mut second.stream).unwrap().raw;
    assert_eq!(refusal, b"-ERR max number of clients reached\r\n");
    assert_eq!(first.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
}
