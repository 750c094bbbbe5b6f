//! Replication between real processes: tandem -> tandem (disk and socket targets, writes
//! during and after the sync), partial resync after `CLIENT KILL TYPE replica`, WAIT, read-only
//! replicas, the replica states seen on the master during a slow sync, promotion, the single
//! snapshot (a master keeps serving during a diskless sync; a replica shares a running BGSAVE;
//! BGSAVE refused meanwhile; replicas batched into one diskless transfer by the delay or the
//! replica count; a stuck replica dropped from it with memory bounded; FLUSHALL and SHUTDOWN
//! killing it), and interop
//! with a real Redis 7.0 in both directions (skipped with a printed reason when redis-server is
//! missing, unless TANDEM_REQUIRE_REAL_DEPS=1). Every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

mod common;

use common::{
    Info, ServerGuard, assert_partial_resync, start_redis_server, start_tandem, wait_in_sync,
    wait_until,
};
use tandem_testkit::redis_available;

/// How long a replication step may take here: the datasets are small, so this only bounds
/// a hang on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// Writes strings, hashes and sets into databases 0 and 2 (some keys with a TTL).
fn fill(p: &ServerGuard, prefix: &str, n: usize) {
    let mut c = p.con();
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SELECT")
            .arg(if i % 3 == 0 { 2 } else { 0 })
            .ignore();
        pipe.cmd("SET")
            .arg(format!("{prefix}:s:{i}"))
            .arg(i)
            .ignore();
        pipe.cmd("HSET")
            .arg(format!("{prefix}:h:{}", i % 50))
            .arg(format!("f{i}"))
            .arg("x".repeat(i % 100))
            .ignore();
        pipe.cmd("SADD")
            .arg(format!("{prefix}:set:{}", i % 20))
            .arg(i)
            .ignore();
        if i % 7 == 0 {
            pipe.cmd("EXPIRE")
                .arg(format!("{prefix}:s:{i}"))
                .arg(10_000)
                .ignore();
        }
    }
    pipe.query::<()>(&mut c).unwrap();
}

/// Writes streams with consumer groups: explicit ids (so a reference fed the same commands
/// has the same entries), deletions, approximate trimming, deliveries, acks and claims.
fn fill_streams(p: &ServerGuard, prefix: &str, n: usize) {
    let mut c = p.con();
    let mut pipe = redis::pipe();
    pipe.cmd("SELECT").arg(0).ignore();
    for k in 0..3 {
        pipe.cmd("XGROUP")
            .arg("CREATE")
            .arg(format!("{prefix}:st:{k}"))
            .arg("grp")
            .arg("0")
            .arg("MKSTREAM")
            .ignore();
    }
    for i in 1..=n {
        let key = format!("{prefix}:st:{}", i % 3);
        pipe.cmd("XADD")
            .arg(&key)
            .arg(format!("{i}-1"))
            .arg("f")
            .arg(i)
            .arg("g")
            .arg("x".repeat(i % 30))
            .ignore();
        if i % 10 == 0 {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg("grp")
                .arg(format!("c{}", i % 4))
                .arg("COUNT")
                .arg(4)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .ignore();
        }
        if i % 13 == 0 {
            pipe.cmd("XDEL")
                .arg(&key)
                .arg(format!("{}-1", i - 6))
                .ignore();
        }
        if i % 50 == 0 {
            pipe.cmd("XACK")
                .arg(&key)
                .arg("grp")
                .arg(format!("{}-1", i - 30))
                .ignore();
            pipe.cmd("XCLAIM")
                .arg(&key)
                .arg("grp")
                .arg("claimer")
                .arg(0)
                .arg(format!("{}-1", i - 18))
                .ignore();
            pipe.cmd("XTRIM")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(150)
                .ignore();
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg("grp")
                .arg("reader")
                .arg("NOACK")
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .ignore();
            pipe.cmd("XAUTOCLAIM")
                .arg(&key)
                .arg("grp")
                .arg("sweeper")
                .arg(0)
                .arg("0")
                .arg("COUNT")
                .arg(3)
                .ignore();
        }
    }
    pipe.query::<()>(&mut c).unwrap();
}

/// Every key of every database with its type and value (members sorted), and whether it
/// has a TTL.
fn dataset(p: &ServerGuard) -> BTreeMap<(u8, Vec<u8>), String> {
    let mut c = p.con();
    let mut out = BTreeMap::new();
    for db in 0..16u8 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
            let v = match t.as_str() {
                "string" => {
                    let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
                    format!("{v:?}")
                }
                "hash" => {
                    let v: BTreeMap<Vec<u8>, Vec<u8>> =
                        redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
                    format!("{v:?}")
                }
                "set" => {
                    let mut v: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap();
                    v.sort();
                    format!("{v:?}")
                }
                "stream" => common::stream_state(&mut c, &k),
                other => other.to_string(),
            };
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
            out.insert((db, k), format!("{t} {v} ttl={}", ttl > 0));
        }
    }
    out
}

/// INFO keyspace's `keys=..,expires=..` of db0, without `avg_ttl` (an estimate that only a
/// master's active expiry cycle updates, from random samples).
fn db0_counts(p: &ServerGuard) -> String {
    let db0 = p.field("keyspace", "db0");
    db0.split(",avg_ttl=")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A master that streams its snapshot to replicas' sockets as soon as one asks.
fn diskless_master(extra: &[&str]) -> ServerGuard {
    common::tandem()
        .args(&[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .args(extra)
        .start()
}

/// Drops every replica's link (`CLIENT KILL TYPE replica`); returns how many were dropped.
fn kill_replica_links(master: &ServerGuard) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut master.con())
        .unwrap()
}

fn sync_roundtrip(diskless: &str, replica_args: &[&str]) {
    let master = start_tandem(&[
        "--repl-diskless-sync",
        diskless,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    fill(&master, "before", 3000);
    fill_streams(&master, "before", 300);
    let port = master.port.to_string();
    // Writes keep arriving while the replica connects and loads.
    let writer = {
        let mut c = master.con();
        std::thread::spawn(move || {
            for i in 0..1500 {
                redis::cmd("SET")
                    .arg(format!("during:{i}"))
                    .arg(i)
                    .query::<()>(&mut c)
                    .unwrap();
                redis::cmd("INCR")
                    .arg("counter")
                    .query::<()>(&mut c)
                    .unwrap();
            }
        })
    };
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(replica_args);
    let replica = start_tandem(&args);
    writer.join().unwrap();
    fill(&master, "after", 500);
    fill_streams(&master, "after", 200);
    wait_in_sync(&master, &replica);
    let want = dataset(&master);
    assert!(want.len() > 3000);
    assert_eq!(dataset(&replica), want);
    assert_eq!(master.field("stats", "sync_full"), "1");
}

#[test]
fn tandem_to_tandem_diskless_sync_with_writes_during_and_after() {
    sync_roundtrip("yes", &[]);
}

#[test]
fn tandem_to_tandem_diskless_load_swapdb_and_on_empty_db() {
    sync_roundtrip("yes", &["--repl-diskless-load", "swapdb"]);
    sync_roundtrip("no", &["--repl-diskless-load", "on-empty-db"]);
}

#[test]
fn replica_authenticates_with_masterauth() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    let mut mc = master.con();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut mc).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut mc)
        .unwrap();
    let port = master.port.to_string();
    let replica = start_tandem(&["--replicaof", "127.0.0.1", &port, "--masterauth", "s3cret"]);
    wait_until("link up", WAIT, || {
        replica.field("replication", "master_link_status") == "up"
    });
    let v: String = redis::cmd("GET")
        .arg("k")
        .query(&mut replica.con())
        .unwrap();
    assert_eq!(v, "v");
}

#[test]
fn tandem_to_tandem_disk_sync_with_writes_during_and_after() {
    sync_roundtrip("no", &[]);
}

#[test]
fn partial_resync_after_client_kill_wait_and_read_only() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    fill(&master, "a", 200);
    let replica = start_tandem(&[]);
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut replica.con())
        .unwrap();
    wait_in_sync(&master, &replica);
    let mut mc = master.con();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut mc).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut mc).unwrap();
    assert_eq!(acked, 1);
    let err = redis::cmd("SET")
        .arg("x")
        .arg("1")
        .query::<()>(&mut replica.con())
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"));

    assert_eq!(kill_replica_links(&master), 1);
    fill(&master, "b", 100);
    wait_in_sync(&master, &replica);
    assert_partial_resync(&mut master.connect(), 1, 1, "after CLIENT KILL");
    assert_eq!(dataset(&replica), dataset(&master));
}

#[test]
fn promotion_keeps_history_for_the_other_replica() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    fill(&master, "a", 100);
    let port = master.port.to_string();
    let r1 = start_tandem(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let r2 = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &r1);
    wait_in_sync(&master, &r2);
    drop(master);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r1.con())
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(r1.port)
        .query(&mut r2.con())
        .unwrap();
    fill(&r1, "b", 50);
    wait_in_sync(&r1, &r2);
    assert_partial_resync(&mut r1.connect(), 0, 1, "the promoted replica");
    assert_eq!(dataset(&r2), dataset(&r1));
}

/// A hand-driven replica that reads only when told to.
fn fake_replica(master: &ServerGuard, port: u16, eof: bool) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    let capa = if eof {
        "capa eof capa psync2"
    } else {
        "capa psync2"
    };
    let mut cmd = format!("REPLCONF listening-port {port}\r\nREPLCONF {capa}\r\n");
    cmd.push_str("PSYNC ? -1\r\n");
    s.write_all(cmd.as_bytes()).unwrap();
    s
}

/// One field (`state`, `offset`, `lag`) of the master's INFO line for the replica on `port`.
fn slave_field(master: &ServerGuard, port: u16, name: &str) -> String {
    let prefix = format!("{name}=");
    master
        .info("replication")
        .values()
        .find(|v| v.contains(&format!("port={port},")))
        .and_then(|v| v.split(',').find_map(|f| f.strip_prefix(prefix.as_str())))
        .unwrap_or_default()
        .to_string()
}

fn slave_state(master: &ServerGuard, port: u16) -> String {
    slave_field(master, port, "state")
}

/// Reads everything the master sent until the replica state is online (then ACKs).
fn drain_until_online(master: &ServerGuard, s: &mut TcpStream, port: u16) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    wait_until("online", WAIT, || {
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        s.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n")
            .unwrap();
        slave_state(master, port) == "online"
    });
}

#[test]
fn replica_states_during_a_slow_sync() {
    let master = start_tandem(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "1",
    ]);
    let mut c = master.con();
    fill_big(&master, "k", 10_000, 4096);
    // Socket target: waiting for the delay, then streaming to a replica that does not read.
    let mut a = fake_replica(&master, 1111, true);
    wait_until("wait_bgsave", WAIT, || {
        slave_state(&master, 1111) == "wait_bgsave"
    });
    // Disk target (changed live): the file is sent to a replica that does not read.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let mut b = fake_replica(&master, 2222, false);
    wait_until("send_bulk", WAIT, || {
        slave_state(&master, 2222) == "send_bulk"
    });
    drain_until_online(&master, &mut a, 1111);
    drain_until_online(&master, &mut b, 2222);
    assert_eq!(master.field("stats", "sync_full"), "2");
}

/// INFO memory's replication fields are what is held: the backlog's bytes, plus the stream
/// buffered for a replica that does not read (its CLIENT LIST `omem`).
#[test]
fn replication_buffer_memory_is_reported() {
    let master = diskless_master(&[]);
    let mut c = master.con();
    let field = |name: &str| -> u64 { master.field("memory", name).parse().unwrap() };
    assert_eq!(field("mem_total_replication_buffers"), 0);
    let _s = fake_replica(&master, 3333, true);
    wait_until("the transfer to take the replica", WAIT, || {
        master.field("replication", "repl_backlog_active") == "1"
            && !slave_state(&master, 3333).is_empty()
    });
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET")
            .arg(format!("k{i}"))
            .arg("x".repeat(1000))
            .ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    let omem: u64 = {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        list.lines()
            .filter(|l| l.contains(" flags=S "))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("omem=")))
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    };
    let backlog: u64 = master
        .field("replication", "repl_backlog_histlen")
        .parse()
        .unwrap();
    assert!(omem > 200 * 1000, "omem {omem}");
    assert!(backlog > 200 * 1000, "backlog {backlog}");
    assert_eq!(field("mem_replication_backlog"), backlog);
    assert_eq!(field("mem_clients_slaves"), omem);
    assert_eq!(field("mem_total_replication_buffers"), backlog + omem);
}

#[test]
fn redis_master_to_tandem_replica() {
    if !redis_available() {
        return;
    }
    // Both framings, each loaded through the disk and straight from the socket.
    for (diskless, load) in [
        ("yes", "disabled"),
        ("no", "disabled"),
        ("yes", "swapdb"),
        ("no", "on-empty-db"),
    ] {
        let master = start_redis_server(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        fill(&master, "before", 1000);
        fill_streams(&master, "before", 600);
        let port = master.port.to_string();
        let replica = start_tandem(&[
            "--replicaof",
            "127.0.0.1",
            &port,
            "--repl-diskless-load",
            load,
        ]);
        fill(&master, "after", 300);
        fill_streams(&master, "after", 300);
        wait_in_sync(&master, &replica);
        assert_eq!(
            dataset(&replica),
            dataset(&master),
            "diskless={diskless} load={load}"
        );
        // The link drops; the replica continues where it was (offsets agree exactly).
        kill_replica_links(&master);
        fill(&master, "later", 100);
        wait_in_sync(&master, &replica);
        let case = format!("diskless={diskless} load={load}");
        assert_partial_resync(&mut master.connect(), 1, 1, &case);
        assert_eq!(
            dataset(&replica),
            dataset(&master),
            "diskless={diskless} load={load}"
        );
    }
}

#[test]
fn tandem_master_to_redis_replica() {
    if !redis_available() {
        return;
    }
    for diskless in ["yes", "no"] {
        let master = start_tandem(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        fill(&master, "before", 1000);
        fill_streams(&master, "before", 600);
        let port = master.port.to_string();
        let replica = start_redis_server(&["--replicaof", "127.0.0.1", &port]);
        fill(&master, "after", 300);
        fill_streams(&master, "after", 300);
        wait_in_sync(&master, &replica);
        assert_eq!(dataset(&replica), dataset(&master), "diskless={diskless}");
        let mut mc = master.con();
        let _: () = redis::cmd("SET").arg("w").arg("1").query(&mut mc).unwrap();
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut mc).unwrap();
        assert_eq!(acked, 1, "diskless={diskless}");
        let _: () = redis::cmd("DEL").arg("w").query(&mut mc).unwrap();
        // The link drops; the replica continues where it was (offsets agree exactly).
        kill_replica_links(&master);
        fill(&master, "later", 100);
        wait_in_sync(&master, &replica);
        let case = format!("diskless={diskless}");
        assert_partial_resync(&mut master.connect(), 1, 1, &case);
        assert_eq!(dataset(&replica), dataset(&master), "diskless={diskless}");
        // The same commands applied to a standalone Redis give the replica's digest.
        let reference = start_redis_server(&[]);
        fill(&reference, "before", 1000);
        fill_streams(&reference, "before", 600);
        fill(&reference, "after", 300);
        fill_streams(&reference, "after", 300);
        fill(&reference, "later", 100);
        let digest = |p: &ServerGuard| -> String {
            redis::cmd("DEBUG")
                .arg("DIGEST")
                .query(&mut p.con())
                .unwrap()
        };
        assert_eq!(digest(&replica), digest(&reference), "diskless={diskless}");
    }
}

#[test]
fn chained_replica_receives_the_stream_with_the_same_offsets() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    fill(&master, "a", 300);
    let mport = master.port.to_string();
    let middle = start_tandem(&[
        "--replicaof",
        "127.0.0.1",
        &mport,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    wait_in_sync(&master, &middle);
    let leaf = start_tandem(&["--replicaof", "127.0.0.1", &middle.port.to_string()]);
    fill(&master, "b", 200);
    wait_in_sync(&master, &middle);
    wait_in_sync(&master, &leaf);
    assert_eq!(dataset(&leaf), dataset(&master));
    assert_eq!(
        leaf.field("replication", "master_replid"),
        master.field("replication", "master_replid")
    );
}

#[test]
fn output_buffer_limit_drops_a_replica_until_raised_live() {
    let master = start_tandem(&[
        "--repl-diskless-sync-delay",
        "0",
        "--client-output-buffer-limit",
        "replica 64kb 0 0",
    ]);
    // A socket-target replica that never ACKs holds the stream back in its buffer.
    let _stuck = fake_replica(&master, 3333, true);
    wait_until("attached", WAIT, || slave_state(&master, 3333) == "online");
    fill(&master, "x", 2000);
    wait_until("dropped", WAIT, || {
        master.field("replication", "connected_slaves") == "0"
    });
    let mut c = master.con();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("slave 0 0 0")
        .query(&mut c)
        .unwrap();
    let _stuck = fake_replica(&master, 4444, true);
    wait_until("attached", WAIT, || slave_state(&master, 4444) == "online");
    fill(&master, "y", 2000);
    assert_eq!(master.field("replication", "connected_slaves"), "1");
}

#[test]
fn redis_cli_rdb_only_client_gets_a_loadable_file() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    fill(&master, "a", 100);
    let mut s = TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    s.write_all(b"REPLCONF capa eof\r\nREPLCONF rdb-only 1\r\nSYNC\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("+OK\r\n+OK\r\n$EOF:"),
        "{}",
        &text[..40.min(text.len())]
    );
    let body = &all[b"+OK\r\n+OK\r\n$EOF:".len() + 42..all.len() - 40];
    assert!(body.starts_with(b"REDIS0010"));
}

/// A master that answers the handshake, announces a full resync and sends `payload` after
/// the `+FULLRESYNC` line, then closes the connection.
fn broken_master(payload: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        answer_handshake(&mut s);
        s.write_all(b"+FULLRESYNC 1111111111111111111111111111111111111111 0\r\n")
            .unwrap();
        s.write_all(&payload).unwrap();
    });
    (port, t)
}

#[test]
fn failed_transfers_never_replace_the_dataset() {
    let replica = start_tandem(&[]);
    fill(&replica, "old", 100);
    let before = dataset(&replica);
    let cases: Vec<Vec<u8>> = vec![
        // Truncated: the announced length never arrives.
        b"$100000\r\nREDIS0010\xfa".to_vec(),
        // Truncated: the EOF mark never arrives.
        b"$EOF:2222222222222222222222222222222222222222\r\nREDIS0010".to_vec(),
        // Complete but corrupt.
        b"$12\r\nREDIS0010xyz".to_vec(),
    ];
    for payload in cases {
        let (port, master) = broken_master(payload);
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(port)
            .query(&mut replica.con())
            .unwrap();
        master.join().unwrap();
        // The master closed after its payload: the replica is back to connecting.
        wait_until("attempt over", WAIT, || {
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut replica.con()).unwrap();
            role.get(3) == Some(&redis::Value::BulkString(b"connect".to_vec()))
        });
        assert_ne!(
            replica.field("replication", "master_replid"),
            "1111111111111111111111111111111111111111"
        );
        let _: () = redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query(&mut replica.con())
            .unwrap();
        assert_eq!(dataset(&replica), before);
    }
}

#[test]
fn partial_resync_after_a_replica_restart() {
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    fill(&master, "a", 300);
    let port = master.port.to_string();
    let args = ["--replicaof", "127.0.0.1", &port];
    let mut replica = start_tandem(&args);
    wait_in_sync(&master, &replica);
    fill(&master, "b", 50);
    wait_in_sync(&master, &replica);
    // SHUTDOWN saves the dump with our place in the master's history.
    let _ = redis::cmd("SHUTDOWN")
        .arg("SAVE")
        .query::<()>(&mut replica.con());
    replica.wait_exit(WAIT);
    fill(&master, "c", 50);
    replica.restart();
    wait_in_sync(&master, &replica);
    assert_eq!(dataset(&replica), dataset(&master));
    assert_partial_resync(&mut master.connect(), 1, 1, "after the restart");
}

/// `n` keys of `size` incompressible bytes each, so the RDB is as large as the data.
fn fill_big(p: &ServerGuard, prefix: &str, n: usize, size: usize) {
    let mut c = p.con();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for start in (0..n).step_by(500) {
        let mut pipe = redis::pipe();
        for i in start..(start + 500).min(n) {
            let big: Vec<u8> = (0..size)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            pipe.cmd("SET")
                .arg(format!("{prefix}:{i}"))
                .arg(big)
                .ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
    }
}

#[test]
fn master_keeps_answering_during_a_diskless_full_sync() {
    let master = diskless_master(&[]);
    // About 24 MB of RDB, plus many small keys for the walk to encode.
    fill_big(&master, "big", 6000, 4096);
    fill(&master, "small", 20_000);
    // Small keys for the walk, added until encoding the dataset in one blocking call (SAVE)
    // takes long enough to matter: a full sync that did so would keep every client waiting
    // about that long. How many that takes depends on the build and on the machine's load.
    let mut c = master.con();
    let mut tiny = 0;
    let blocking = loop {
        let mut pipe = redis::pipe();
        for i in tiny..tiny + 50_000 {
            pipe.cmd("SET").arg(format!("tiny:{i}")).arg(i).ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
        tiny += 50_000;
        let t = Instant::now();
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
        let blocking = t.elapsed();
        if blocking > Duration::from_millis(300) {
            break blocking;
        }
        assert!(
            tiny < 2_000_000,
            "SAVE of {tiny} small keys still took only {blocking:?}"
        );
    };
    // PINGs on another connection from before the replica arrives until it is online.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let mut c = master.con();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let pong: String = redis::cmd("PING").query(&mut c).unwrap();
                assert_eq!(pong, "PONG");
                samples.push(t.elapsed());
            }
            samples
        })
    };
    // A replica reading at about 8 MB/s: the transfer lasts well over a second.
    let mut s = fake_replica(&master, 3333, true);
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while slave_state(&master, 3333) != "online" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sync never ended"
        );
        if let Ok(n) = s.read(&mut buf) {
            assert!(n > 0, "the master closed the link");
            total += n;
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    let sync_time = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut samples = pinger.join().unwrap();
    assert!(total > 10 << 20, "only {total} bytes received");
    assert!(
        sync_time > Duration::from_secs(1),
        "the sync took {sync_time:?}: the dataset is too small to prove anything"
    );
    samples.sort();
    let p99 = samples[samples.len() * 99 / 100];
    let max = samples[samples.len() - 1];
    println!("sync {sync_time:?}, SAVE {blocking:?}, PING p99 {p99:?} max {max:?}");
    assert!(
        p99 < Duration::from_millis(100),
        "PING p99 {p99:?} over {} samples during the sync",
        samples.len()
    );
    assert!(
        max < blocking / 2,
        "a PING waited {max:?} during the sync (a blocking encode takes {blocking:?})"
    );
    assert_eq!(master.field("stats", "sync_full"), "1");
}

#[test]
fn replica_arriving_during_a_bgsave_shares_it_with_the_disk_target() {
    let master = start_tandem(&["--repl-diskless-sync", "no", "--save", ""]);
    let port = master.port.to_string();
    // A first replica makes the master keep a backlog.
    let first = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &first);
    fill_big(&master, "big", 8000, 4096);
    fill(&master, "before", 3000);
    let second = start_tandem(&[]);
    let mut c = master.con();
    let started: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(started, "Background saving started");
    // Writes after the snapshot instant reach the replica through the backlog.
    fill(&master, "during", 500);
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut second.con())
        .unwrap();
    wait_until("replica waiting", WAIT, || {
        !slave_state(&master, second.port).is_empty()
    });
    assert_eq!(
        master.field("persistence", "rdb_bgsave_in_progress"),
        "1",
        "the BGSAVE ended before the replica arrived: enlarge the dataset"
    );
    fill(&master, "after", 500);
    wait_in_sync(&master, &second);
    wait_in_sync(&master, &first);
    let want = dataset(&master);
    assert_eq!(dataset(&second), want);
    assert_eq!(dataset(&first), want);
    assert_eq!(master.field("stats", "sync_full"), "2");
    // The first sync's save and the BGSAVE, which also served the second replica.
    assert_eq!(master.field("persistence", "rdb_saves"), "2");
}

/// A replica that does not read, holding a diskless transfer of `master` open.
fn hold_transfer(master: &ServerGuard, port: u16) -> TcpStream {
    let s = fake_replica(master, port, true);
    wait_until("transfer running", WAIT, || {
        master.field("persistence", "rdb_bgsave_in_progress") == "1"
    });
    s
}

#[test]
fn bgsave_is_refused_while_a_diskless_sync_runs() {
    let master = diskless_master(&[]);
    fill_big(&master, "big", 6000, 4096);
    let mut s = hold_transfer(&master, 5555);
    assert_eq!(
        master.field("persistence", "current_save_keys_total"),
        "6000"
    );
    let mut c = master.con();
    for cmd in ["BGSAVE", "SAVE"] {
        let err = redis::cmd(cmd).query::<String>(&mut c).unwrap_err();
        assert!(
            err.to_string()
                .contains("Background save already in progress"),
            "{cmd}: {err}"
        );
    }
    let scheduled: String = redis::cmd("BGSAVE").arg("SCHEDULE").query(&mut c).unwrap();
    assert_eq!(scheduled, "Background saving scheduled");
    drain_until_online(&master, &mut s, 5555);
    wait_until("scheduled BGSAVE done", WAIT, || {
        master.field("persistence", "rdb_saves") == "1"
            && master.field("persistence", "rdb_bgsave_in_progress") == "0"
    });
}

#[test]
fn a_replica_that_stops_reading_frees_the_snapshot_after_repl_timeout() {
    let master = diskless_master(&["--repl-timeout", "1"]);
    fill_big(&master, "big", 6000, 4096);
    let _stuck = hold_transfer(&master, 6666);
    wait_until("replica dropped", WAIT, || {
        slave_state(&master, 6666).is_empty()
    });
    assert_eq!(master.field("persistence", "rdb_bgsave_in_progress"), "0");
    let started: String = redis::cmd("BGSAVE").query(&mut master.con()).unwrap();
    assert_eq!(started, "Background saving started");
}

/// A tandem server logging to `log` in its directory.
fn tandem_logging(extra: &[&str]) -> ServerGuard {
    common::tandem()
        .args(&["--logfile", "log"])
        .args(extra)
        .start()
}

/// How many lines of the server's log contain `needle`.
fn log_count(p: &ServerGuard, needle: &str) -> usize {
    p.log().lines().filter(|l| l.contains(needle)).count()
}

const SOCKET_START: &str = "Starting BGSAVE for SYNC with target: replicas sockets";

#[test]
fn replicas_arriving_within_the_delay_share_one_diskless_transfer() {
    let master = tandem_logging(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "5",
    ]);
    fill(&master, "before", 3000);
    let port = master.port.to_string();
    let args = ["--replicaof", "127.0.0.1", &port];
    let arrived = Instant::now();
    let r1 = start_tandem(&args);
    let r2 = start_tandem(&args);
    assert!(
        arrived.elapsed() < Duration::from_secs(4),
        "the replicas did not arrive within the delay"
    );
    fill(&master, "after", 300);
    wait_in_sync(&master, &r1);
    wait_in_sync(&master, &r2);
    let want = dataset(&master);
    assert_eq!(dataset(&r1), want);
    assert_eq!(dataset(&r2), want);
    assert_eq!(master.field("stats", "sync_full"), "2");
    assert_eq!(log_count(&master, SOCKET_START), 1);
    assert_eq!(
        log_count(
            &master,
            "Diskless rdb transfer, done reading from pipe, 2 replicas still up."
        ),
        1
    );
}

/// Reads what the master sends until `until` appears (or the deadline passes).
fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, until: &[u8], deadline: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < deadline {
        if seen.windows(until.len()).any(|w| w == until) {
            return true;
        }
        if let Ok(n) = s.read(&mut buf) {
            assert!(n > 0, "the master closed the link");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    seen.windows(until.len()).any(|w| w == until)
}

#[test]
fn max_replicas_starts_the_shared_transfer_before_the_delay_with_keepalives_meanwhile() {
    let master = tandem_logging(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "60",
        "--repl-diskless-sync-max-replicas",
        "2",
    ]);
    fill(&master, "k", 2000);
    // The first replica waits in wait_bgsave, kept alive by newlines.
    let mut a = fake_replica(&master, 1111, true);
    let mut seen = Vec::new();
    let _ = read_until(
        &mut a,
        &mut seen,
        b"+FULLRESYNC",
        Duration::from_millis(2500),
    );
    // The two REPLCONF replies, then newlines only.
    assert!(seen.starts_with(b"+OK\r\n+OK\r\n"), "{seen:?}");
    seen.drain(..10);
    assert!(
        seen.iter().filter(|&&b| b == b'\n').count() >= 2,
        "no keepalives: {seen:?}"
    );
    assert!(
        seen.iter().all(|&b| b == b'\n'),
        "something else than keepalives before the delay: {seen:?}"
    );
    assert_eq!(slave_state(&master, 1111), "wait_bgsave");
    // The second one makes two: the transfer starts now, not after 60 seconds.
    let port = master.port.to_string();
    let r = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    assert!(read_until(
        &mut a,
        &mut seen,
        b"$EOF:",
        Duration::from_secs(20)
    ));
    drain_until_online(&master, &mut a, 1111);
    wait_in_sync(&master, &r);
    assert_eq!(dataset(&r), dataset(&master));
    assert_eq!(log_count(&master, SOCKET_START), 1);
    assert_eq!(master.field("stats", "sync_full"), "2");
}

/// Resident memory of a process in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stuck_replica_is_dropped_from_a_shared_transfer_and_memory_stays_bounded() {
    let master = tandem_logging(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "1",
        "--repl-timeout",
        "3",
    ]);
    // About 48 MB of incompressible RDB.
    fill_big(&master, "big", 12_000, 4096);
    let before = rss_kib(master.pid());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pid = master.pid();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    // One replica never reads; the other is a real one, in the same transfer.
    let _stuck = fake_replica(&master, 7777, true);
    let port = master.port.to_string();
    let r = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &r);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert!(
        slave_state(&master, 7777).is_empty(),
        "the stuck replica is still attached"
    );
    assert_eq!(log_count(&master, SOCKET_START), 1);
    assert_eq!(
        log_count(
            &master,
            "Disconnecting timedout replica (full sync): 127.0.0.1:7777"
        ),
        1
    );
    assert_eq!(
        log_count(
            &master,
            "Diskless rdb transfer, done reading from pipe, 1 replicas still up."
        ),
        1
    );
    assert_eq!(db0_counts(&r), db0_counts(&master));
    let grew = peak.saturating_sub(before);
    println!("master RSS {before} KiB before, peak {peak} KiB during the transfer");
    assert!(
        grew < 16 * 1024,
        "the master grew by {grew} KiB while a replica did not read a 48 MB transfer"
    );
}

#[test]
fn flushall_and_shutdown_kill_a_running_diskless_transfer() {
    let master = tandem_logging(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    fill_big(&master, "big", 6000, 4096);
    // Held open by a replica that does not read (repl-timeout is 60 s).
    let mut s = hold_transfer(&master, 8888);
    let mut c = master.con();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    // Killed at once, as Redis kills its child: the replica is dropped to resync later.
    wait_until("replica dropped", WAIT, || {
        slave_state(&master, 8888).is_empty()
    });
    assert_eq!(master.field("persistence", "rdb_bgsave_in_progress"), "0");
    assert_eq!(
        log_count(&master, "SYNC failed. BGSAVE child returned an error"),
        1
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    while s.read(&mut buf).unwrap_or(0) > 0 {}
    // A replica arriving now gets the flushed dataset and what followed.
    fill(&master, "after", 200);
    let port = master.port.to_string();
    let r = start_tandem(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &r);
    assert_eq!(dataset(&r), dataset(&master));

    // SHUTDOWN SAVE during a transfer kills it and saves the whole dataset.
    fill_big(&master, "again", 6000, 4096);
    let _stuck = hold_transfer(&master, 9999);
    let keys = db0_counts(&master);
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut c);
    let mut master = master;
    let status = master.wait_exit(WAIT);
    assert!(status.success(), "{status}");
    assert_eq!(
        log_count(&master, "There is a child saving an .rdb. Killing it!"),
        1
    );
    drop(r);
    master.restart_with::<&str>(&[]);
    let restarted = master;
    wait_until("dump loaded", WAIT, || {
        restarted.field("persistence", "loading") == "0"
    });
    assert_eq!(db0_counts(&restarted), keys);
}

/// Answers a replica's handshake on `s` up to its PSYNC: one reply per command, +PONG to
/// PING and +OK to each REPLCONF.
fn answer_handshake(s: &mut TcpStream) {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut answered = 0;
    while !seen.contains("PSYNC") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the replica closed during the handshake");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        let commands = seen.matches("PING").count() + seen.matches("REPLCONF").count();
        while answered < commands {
            let reply: &[u8] = if answered == 0 {
                b"+PONG\r\n"
            } else {
                b"+OK\r\n"
            };
            s.write_all(reply).unwrap();
            answered += 1;
        }
    }
}

#[test]
fn replica_applies_repl_timeout_to_the_handshake_and_the_transfer() {
    let replica = tandem_logging(&["--repl-timeout", "1"]);
    fill(&replica, "old", 100);
    let before = dataset(&replica);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(port)
        .query(&mut replica.con())
        .unwrap();
    // A master that accepts and never answers: the handshake times out, the replica retries.
    let (silent, _) = l.accept().unwrap();
    wait_until("handshake timeout", WAIT, || {
        log_count(&replica, "Timeout connecting to the MASTER...") == 1
    });
    drop(silent);
    // A master that starts a full sync, keeps the replica waiting with newlines for longer
    // than repl-timeout (which is fine), then stalls in the middle of the payload.
    let (mut s, _) = l.accept().unwrap();
    answer_handshake(&mut s);
    s.write_all(b"+FULLRESYNC 1111111111111111111111111111111111111111 0\r\n")
        .unwrap();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(b"\n").unwrap();
    }
    assert_eq!(
        log_count(&replica, "Timeout receiving bulk data from MASTER"),
        0,
        "keepalive newlines must keep the transfer alive"
    );
    s.write_all(b"$100000\r\nREDIS0010").unwrap();
    wait_until("transfer timeout", WAIT, || {
        log_count(
            &replica,
            "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.",
        ) == 1
    });
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut replica.con())
        .unwrap();
    assert_eq!(dataset(&replica), before);
}

/// Reads what a replica sent without blocking; counts its keepalive newlines.
fn newlines_from(s: &mut TcpStream, seen: &mut Vec<u8>) -> usize {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    s.set_nonblocking(false).unwrap();
    seen.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn diskless_load_parses_while_receiving_and_never_serves_half_a_dataset() {
    // The payload: a real dump.
    let src = start_tandem(&[]);
    fill(&src, "p", 2000);
    let _: () = redis::cmd("SAVE").query(&mut src.con()).unwrap();
    let payload = std::fs::read(src.dir().join("dump.rdb")).unwrap();
    let want = dataset(&src);
    drop(src);
    let replid = "2222222222222222222222222222222222222222";
    let mark = "3333333333333333333333333333333333333333";
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let replica = start_tandem(&["--repl-diskless-load", "on-empty-db"]);
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(port)
        .query(&mut replica.con())
        .unwrap();
    // on-empty-db: the payload arrives slowly; the replica answers LOADING meanwhile and
    // keeps the link alive with newlines.
    let (mut s, _) = l.accept().unwrap();
    answer_handshake(&mut s);
    s.write_all(format!("+FULLRESYNC {replid} 0\r\n$EOF:{mark}\r\n").as_bytes())
        .unwrap();
    let mut from_replica = Vec::new();
    let pieces: Vec<&[u8]> = payload.chunks(payload.len() / 10 + 1).collect();
    let mut loading_seen = 0;
    for piece in &pieces {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let err = redis::cmd("GET")
            .arg("p:s:1")
            .query::<Option<String>>(&mut replica.con())
            .unwrap_err();
        assert!(err.to_string().contains("loading the dataset"), "{err}");
        assert_eq!(replica.field("persistence", "loading"), "1");
        loading_seen += 1;
    }
    assert_eq!(loading_seen, pieces.len());
    assert!(
        newlines_from(&mut s, &mut from_replica) >= 2,
        "no keepalive newlines while loading: {from_replica:?}"
    );
    s.write_all(mark.as_bytes()).unwrap();
    wait_until("loaded", WAIT, || {
        newlines_from(&mut s, &mut from_replica);
        String::from_utf8_lossy(&from_replica).contains("ACK")
    });
    assert_eq!(dataset(&replica), want);
    // swapdb on the same history: the old data is served while the new payload arrives,
    // and stays when the transfer breaks off.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-load")
        .arg("swapdb")
        .query(&mut replica.con())
        .unwrap();
    drop(s);
    let (mut s, _) = l.accept().unwrap();
    answer_handshake(&mut s);
    s.write_all(format!("+FULLRESYNC {replid} 0\r\n$EOF:{mark}\r\n").as_bytes())
        .unwrap();
    for piece in &pieces[..5] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let v: Option<String> = redis::cmd("GET")
            .arg("p:s:1")
            .query(&mut replica.con())
            .unwrap();
        assert_eq!(v.as_deref(), Some("1"));
        assert_eq!(replica.field("persistence", "async_loading"), "1");
        assert_eq!(replica.field("persistence", "loading"), "0");
    }
    drop(s);
    drop(l);
    wait_until("attempt over", WAIT, || {
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut replica.con()).unwrap();
        role.get(3) != Some(&redis::Value::BulkString(b"sync".to_vec()))
    });
    assert_eq!(dataset(&replica), want);
}

#[test]
fn the_ack_timeout_counts_from_the_end_of_a_long_transfer() {
    let master = diskless_master(&["--repl-timeout", "2"]);
    fill_big(&master, "big", 6000, 4096);
    // A replica reading about 8 MB/s: the transfer outlasts repl-timeout, with progress.
    let mut s = fake_replica(&master, 4444, true);
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while slave_state(&master, 4444) != "online" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sync never ended"
        );
        if let Ok(n) = s.read(&mut buf) {
            assert!(n > 0, "the master closed the link");
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the transfer took {:?}: too short to prove anything",
        started.elapsed()
    );
    // Like a replica loading what it received: silent for most of repl-timeout.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(slave_state(&master, 4444), "online");
    s.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(slave_state(&master, 4444), "online");
}

#[test]
fn a_replica_without_capa_eof_takes_the_waiting_diskless_replicas_to_disk() {
    let master = tandem_logging(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "60",
    ]);
    fill(&master, "k", 3000);
    let mut a = fake_replica(&master, 1111, true);
    wait_until("wait_bgsave", WAIT, || {
        slave_state(&master, 1111) == "wait_bgsave"
    });
    // No `capa eof`: a BGSAVE starts now, and the waiting replica joins it.
    let mut b = fake_replica(&master, 2222, false);
    let mut seen = Vec::new();
    assert!(
        read_until(&mut a, &mut seen, b"+FULLRESYNC", Duration::from_secs(20)),
        "the waiting replica was left behind: {seen:?}"
    );
    assert!(read_until(
        &mut a,
        &mut seen,
        b"REDIS",
        Duration::from_secs(20)
    ));
    let text = String::from_utf8_lossy(&seen);
    assert!(
        !text.contains("$EOF:") && text.contains("\r\n$"),
        "not the disk target: {text}"
    );
    drain_until_online(&master, &mut a, 1111);
    drain_until_online(&master, &mut b, 2222);
    assert_eq!(
        log_count(&master, "Starting BGSAVE for SYNC with target: disk"),
        1
    );
    assert_eq!(log_count(&master, SOCKET_START), 0);
    assert_eq!(master.field("persistence", "rdb_saves"), "1");
    assert_eq!(master.field("stats", "sync_full"), "2");
}

const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

fn send_ack(s: &mut TcpStream, offset: u64) {
    let off = offset.to_string();
    let cmd = format!(
        "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{off}\r\n",
        off.len()
    );
    s.write_all(cmd.as_bytes()).unwrap();
}

/// What a replica that applied everything before the GETACK the master just fed answers:
/// the master's offset less the GETACK itself (nothing else is fed meanwhile in these tests).
fn offset_before_getack(master: &ServerGuard) -> u64 {
    let offset: u64 = master
        .field("replication", "master_repl_offset")
        .parse()
        .unwrap();
    offset - GETACK.len() as u64
}

/// Runs `SET key v` then `WAIT 1 timeout_ms` on `c` in a thread: the WAIT's reply and the
/// connection come back when it returns.
fn set_then_wait(
    mut c: redis::Connection,
    key: &'static str,
    timeout_ms: u64,
) -> std::thread::JoinHandle<(i64, redis::Connection)> {
    std::thread::spawn(move || {
        redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query::<()>(&mut c)
            .unwrap();
        let n = redis::cmd("WAIT")
            .arg(1)
            .arg(timeout_ms)
            .query(&mut c)
            .unwrap();
        (n, c)
    })
}

/// WAIT's target is the client's offset when it blocked, and every WAIT that blocks asks for
/// ACKs. Before, an ACK that woke a blocked WAIT without satisfying it moved the target past
/// the GETACK, so the answer to the GETACK no longer sufficed and the WAIT held until the
/// replica's next periodic ACK (up to 1 s, seen as stalls under `SET` + `WAIT 1`); and a WAIT
/// that timed out kept the next one from asking at all.
#[test]
fn wait_keeps_its_target_when_an_older_ack_wakes_it_and_asks_again_after_a_timeout() {
    // No replication PING during the test: the stream holds only what the test causes.
    let master = start_tandem(&["--repl-ping-replica-period", "3600"]);
    let mut s = fake_replica(&master, 4646, false);
    drain_until_online(&master, &mut s, 4646);
    let mut seen = Vec::new();

    let waiter = set_then_wait(master.con(), "k1", 5000);
    assert!(
        read_until(&mut s, &mut seen, GETACK, Duration::from_secs(10)),
        "a blocked WAIT sent no GETACK"
    );
    let target = offset_before_getack(&master);
    // An ACK from before the write wakes the WAIT, which stays blocked...
    send_ack(&mut s, target - 1);
    wait_until("the master to take the older ACK", WAIT, || {
        slave_field(&master, 4646, "offset") == (target - 1).to_string()
    });
    // ...and the answer to its GETACK releases it, long before its 5 s timeout.
    send_ack(&mut s, target);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the answer to the GETACK did not release WAIT 1"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (n, c) = waiter.join().unwrap();
    assert_eq!(n, 1);

    // A WAIT that times out unanswered...
    seen.clear();
    let (n, c) = set_then_wait(c, "k2", 200).join().unwrap();
    assert_eq!(n, 0);
    assert!(read_until(
        &mut s,
        &mut seen,
        GETACK,
        Duration::from_secs(10)
    ));
    // ...does not keep the client's next WAIT from asking.
    seen.clear();
    let waiter = set_then_wait(c, "k3", 5000);
    assert!(
        read_until(&mut s, &mut seen, b"k3", Duration::from_secs(10)),
        "the write never reached the replica"
    );
    assert!(
        read_until(&mut s, &mut seen, GETACK, Duration::from_secs(3)),
        "the WAIT after a timed-out one sent no GETACK"
    );
    send_ack(&mut s, offset_before_getack(&master));
    let (n, _) = waiter.join().unwrap();
    assert_eq!(n, 1);
}

/// FAILOVER hands the master role to a replica without losing a write, between tandem
/// servers and with a real Redis 7.0 on either side: the old master follows the new one with
/// a partial resynchronization, and the data written before and after is on both.
#[test]
fn failover_hands_the_master_role_over() {
    let redis = redis_available();
    let mut cases = vec![("tandem", "tandem")];
    if redis {
        cases.extend([("tandem", "redis"), ("redis", "tandem")]);
    }
    for (m, r) in cases {
        let start = |kind: &str, extra: &[&str]| {
            if kind == "redis" {
                start_redis_server(extra)
            } else {
                start_tandem(extra)
            }
        };
        let case = format!("{m} master, {r} replica");
        let master = start(m, &["--repl-diskless-sync-delay", "0"]);
        fill(&master, "before", 300);
        let port = master.port.to_string();
        let replica = start(r, &["--replicaof", "127.0.0.1", &port]);
        wait_in_sync(&master, &replica);
        let mut mc = master.con();
        let err = redis::cmd("FAILOVER")
            .arg("TO")
            .arg("127.0.0.1")
            .arg(1)
            .query::<()>(&mut mc)
            .unwrap_err();
        assert!(
            err.to_string().contains("is not a replica"),
            "{case}: {err}"
        );
        let _: () = redis::cmd("FAILOVER").query(&mut mc).unwrap();
        wait_until(&format!("{case}: roles swapped"), WAIT, || {
            replica.field("replication", "role") == "master"
                && master.field("replication", "role") == "slave"
                && master.field("replication", "master_link_status") == "up"
                && master.field("replication", "master_failover_state") == "no-failover"
        });
        assert_eq!(
            master.field("replication", "master_port"),
            replica.port.to_string(),
            "{case}"
        );
        // Writes go to the new master and reach the old one over a partial resync.
        fill(&replica, "after", 100);
        wait_in_sync(&replica, &master);
        assert_eq!(dataset(&master), dataset(&replica), "{case}");
        assert_eq!(
            replica.field("stats", "sync_full"),
            "0",
            "{case}: the old master needed a full sync"
        );
        assert_eq!(replica.field("stats", "sync_partial_ok"), "1", "{case}");
    }
}

/// A FAILOVER whose target never catches up ends at its TIMEOUT: writes resume on the same
/// master; FAILOVER ABORT ends one at once.
#[test]
fn failover_times_out_or_is_aborted() {
    let master = start_tandem(&[]);
    // A replica that never acknowledges: a raw connection that stops after PSYNC.
    let port = master.port;
    let mut fake = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fake.write_all(b"REPLCONF listening-port 7\r\nPSYNC ? -1\r\n")
        .unwrap();
    wait_until("the fake replica is attached", WAIT, || {
        master.field("replication", "connected_slaves") == "1"
    });
    let mut c = master.con();
    let _: () = redis::cmd("SET").arg("k").arg("1").query(&mut c).unwrap();
    let _: () = redis::cmd("FAILOVER")
        .arg("TIMEOUT")
        .arg(300)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        master.field("replication", "master_failover_state"),
        "waiting-for-sync"
    );
    let started = Instant::now();
    wait_until("the failover times out", WAIT, || {
        master.field("replication", "master_failover_state") == "no-failover"
    });
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(master.field("replication", "role"), "master");
    let _: () = redis::cmd("SET").arg("k").arg("2").query(&mut c).unwrap();
    let _: () = redis::cmd("FAILOVER").query(&mut c).unwrap();
    let again = redis::cmd("FAILOVER").query::<()>(&mut c).unwrap_err();
    assert!(again.to_string().contains("already in progress"), "{again}");
    let _: () = redis::cmd("FAILOVER").arg("ABORT").query(&mut c).unwrap();
    assert_eq!(
        master.field("replication", "master_failover_state"),
        "no-failover"
    );
    let _: () = redis::cmd("SET").arg("k").arg("3").query(&mut c).unwrap();
    drop(fake);
}
