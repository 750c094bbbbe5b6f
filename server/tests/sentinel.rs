//! The Sentinel-compatible endpoint (`sentinel-port`) against a real Redis Sentinel 7.0
//! monitoring a real master and replica: the same field names in the same order, the same
//! errors, and the views and `+switch-master` following role changes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Conn, ServerGuard, Value, free_port, start_tandem, wait_until};

/// A redis-server in sentinel mode, killed on drop.
struct RealSentinel {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RealSentinel {
    /// Monitors `master_port` as `mymaster` with quorum 1; waits until it lists `replicas`,
    /// each connected.
    fn start(master_port: u16, replicas: usize) -> Option<RealSentinel> {
        if !tandem_testkit::redis_available() {
            return None;
        }
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("tandem-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let s = RealSentinel { child, port, dir };
        wait_until(
            "the real Sentinel to find the replicas",
            Duration::from_secs(30),
            || {
                Conn::try_new(port).is_some_and(|mut c| {
                    let listed = call(&mut c, &["SENTINEL", "REPLICAS", "mymaster"]);
                    field(&master(&mut c), "num-slaves") == replicas.to_string()
                        && listed
                            .children
                            .iter()
                            .all(|r| field(&pairs(r), "flags") == "slave")
                })
            },
        );
        Some(s)
    }
}

impl Drop for RealSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

trait TryConn {
    fn try_new(port: u16) -> Option<Conn>;
}

impl TryConn for Conn {
    fn try_new(port: u16) -> Option<Conn> {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(Conn::from_stream)
    }
}

fn call(c: &mut Conn, args: &[&str]) -> Value {
    c.send(args);
    c.read_value().expect("a reply")
}

fn text(v: &Value) -> String {
    common::text(v)
}

/// SENTINEL MASTER mymaster as (field, value) pairs.
fn master(c: &mut Conn) -> Vec<(String, String)> {
    pairs(&call(c, &["SENTINEL", "MASTER", "mymaster"]))
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.children
        .chunks(2)
        .map(|kv| (text(&kv[0]), text(&kv[1])))
        .collect()
}

fn field(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn names(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

/// A tandem master with one replica, each serving the endpoint.
fn tandem_pair() -> (ServerGuard, u16, ServerGuard, u16) {
    let (ms, rs) = (free_port(), free_port());
    let m = start_tandem(&["--sentinel-port", &ms.to_string()]);
    let r = start_tandem(&[
        "--sentinel-port",
        &rs.to_string(),
        "--replicaof",
        "127.0.0.1",
        &m.port.to_string(),
    ]);
    let mut c = m.connect();
    wait_until("the replica online", Duration::from_secs(30), || {
        common::field(&mut c, "replication", "slave0").contains("state=online")
    });
    (m, ms, r, rs)
}

#[test]
fn replies_have_redis_sentinels_fields_and_errors() {
    let (m, ms, r, rs) = tandem_pair();
    let Some(redis_master) = common::start_redis(&[]) else {
        return;
    };
    let _redis_replica =
        common::start_redis(&["--replicaof", "127.0.0.1", &redis_master.port.to_string()])
            .expect("redis-server");
    let mut rc = redis_master.connect();
    wait_until("the Redis replica online", Duration::from_secs(30), || {
        common::field(&mut rc, "replication", "slave0").contains("state=online")
    });
    let real = RealSentinel::start(redis_master.port, 1).expect("redis-server --sentinel");
    let mut theirs = Conn::new(real.port);
    let their_master = master(&mut theirs);
    let their_replicas = call(&mut theirs, &["SENTINEL", "REPLICAS", "mymaster"]);
    let their_replica = pairs(&their_replicas.children[0]);

    // Asked on the master's endpoint and on the replica's (which asks the master).
    for port in [ms, rs] {
        let mut ours = Conn::new(port);
        let our_master = master(&mut ours);
        assert_eq!(
            names(&our_master),
            names(&their_master),
            "SENTINEL MASTER fields"
        );
        assert_eq!(field(&our_master, "ip"), "127.0.0.1");
        assert_eq!(field(&our_master, "port"), m.port.to_string());
        assert_eq!(field(&our_master, "flags"), field(&their_master, "flags"));
        assert_eq!(field(&our_master, "num-slaves"), "1");
        assert_eq!(field(&our_master, "role-reported"), "master");
        assert_eq!(field(&our_master, "runid").len(), 40);

        let masters = call(&mut ours, &["SENTINEL", "MASTERS"]);
        assert_eq!(masters.children.len(), 1);
        let listed = pairs(&masters.children[0]);
        assert_eq!(names(&listed), names(&our_master));
        assert_eq!(field(&listed, "port"), m.port.to_string());

        let replicas = call(&mut ours, &["SENTINEL", "REPLICAS", "mymaster"]);
        assert_eq!(replicas.children.len(), 1);
        let our_replica = pairs(&replicas.children[0]);
        assert_eq!(
            names(&our_replica),
            names(&their_replica),
            "SENTINEL REPLICAS fields"
        );
        assert_eq!(field(&our_replica, "name"), format!("127.0.0.1:{}", r.port));
        assert_eq!(field(&our_replica, "flags"), field(&their_replica, "flags"));
        assert_eq!(field(&our_replica, "master-port"), m.port.to_string());
        assert_eq!(field(&our_replica, "role-reported"), "slave");

        let addr = call(
            &mut ours,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
        );
        assert_eq!(
            addr.children.iter().map(text).collect::<Vec<_>>(),
            ["127.0.0.1".to_string(), m.port.to_string()]
        );

        // Byte for byte what Redis Sentinel answers.
        for case in [
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"][..],
            &["SENTINEL", "MASTER", "nope"],
            &["SENTINEL", "REPLICAS", "nope"],
            &["SENTINEL", "SENTINELS", "nope"],
            &["SENTINEL", "SENTINELS", "mymaster"],
            &["SENTINEL", "CKQUORUM", "mymaster"],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME"],
            &["SENTINEL", "MASTERS", "extra"],
            &["SENTINEL", "FOO"],
            &["SENTINEL"],
            &["GET", "x"],
            &["AUTH", "x"],
            &["AUTH", "default", "x"],
            &["ROLE"],
            &["PING"],
            &["PING", "hi"],
            &["HELLO", "4"],
            &["CLIENT", "SETNAME", "app"],
            &["SUBSCRIBE", "+switch-master"],
            &["PSUBSCRIBE", "*"],
            &["GET", "x"],
            &["ROLE"],
            &["PING"],
            &["UNSUBSCRIBE"],
            &["PUNSUBSCRIBE"],
        ] {
            let want = call(&mut theirs, case);
            let got = call(&mut ours, case);
            assert_eq!(
                common::escape(&got.raw),
                common::escape(&want.raw),
                "{case:?} on port {port}"
            );
        }
        let hello = call(&mut ours, &["HELLO", "3"]);
        let their_hello = call(&mut theirs, &["HELLO", "3"]);
        assert_eq!(hello.kind(), b'%');
        let keys = |v: &Value| v.children.iter().step_by(2).map(text).collect::<Vec<_>>();
        assert_eq!(keys(&hello), keys(&their_hello));
        let resp3_master = call(&mut ours, &["SENTINEL", "MASTER", "mymaster"]);
        assert_eq!(resp3_master.kind(), b'%', "a map in RESP3, as Sentinel's");
        call(&mut theirs, &["HELLO", "2"]);
    }
}

#[test]
fn views_and_switch_master_follow_role_changes() {
    let (m, ms, r, rs) = tandem_pair();
    let mut on_replica = Conn::new(rs);
    on_replica.send(&["SUBSCRIBE", "+switch-master"]);
    on_replica.read_value().unwrap();
    let mut on_master = Conn::new(ms);
    on_master.send(&["PSUBSCRIBE", "*switch*"]);
    on_master.read_value().unwrap();

    // A switchover: the replica promoted, the old master following it.
    let mut rc = r.connect();
    let mut mc = m.connect();
    assert_eq!(text(&call(&mut rc, &["REPLICAOF", "NO", "ONE"])), "OK");
    let msg = on_replica.read_value().unwrap();
    assert_eq!(
        msg.children.iter().map(text).collect::<Vec<_>>(),
        [
            "message".to_string(),
            "+switch-master".into(),
            format!("mymaster 127.0.0.1 {} 127.0.0.1 {}", m.port, r.port)
        ]
    );
    assert_eq!(
        text(&call(
            &mut mc,
            &["REPLICAOF", "127.0.0.1", &r.port.to_string()]
        )),
        "OK"
    );
    let msg = on_master.read_value().unwrap();
    assert_eq!(
        msg.children.iter().map(text).collect::<Vec<_>>(),
        [
            "pmessage".to_string(),
            "*switch*".into(),
            "+switch-master".into(),
            format!("mymaster 127.0.0.1 {} 127.0.0.1 {}", m.port, r.port)
        ]
    );
    for port in [ms, rs] {
        let mut c = Conn::new(port);
        let addr = call(&mut c, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]);
        assert_eq!(text(&addr.children[1]), r.port.to_string());
    }
    let mut c = Conn::new(ms);
    wait_until(
        "the old master listed as a replica",
        Duration::from_secs(30),
        || {
            let replicas = call(&mut c, &["SENTINEL", "REPLICAS", "mymaster"]);
            replicas.children.len() == 1 && {
                let p = pairs(&replicas.children[0]);
                field(&p, "port") == m.port.to_string() && field(&p, "flags") == "slave"
            }
        },
    );

    // The new master gone: the replica left reports it down, so clients ask elsewhere.
    drop(rc);
    let mut r = r;
    r.kill();
    let down = master(&mut c);
    assert_eq!(field(&down, "flags"), "master,s_down");
    assert_eq!(field(&down, "port"), r.port.to_string());
    let info = text(&call(&mut c, &["INFO", "sentinel"]));
    assert!(
        info.contains(&format!(
            "master0:name=mymaster,status=sdown,address=127.0.0.1:{},slaves=0,sentinels=1",
            r.port
        )),
        "{info}"
    );
}
