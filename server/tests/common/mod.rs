//! What the server's integration tests share beyond `tandem_testkit`: this build's
//! tandem-server, and redis-cli's argument quoting for the compatibility scripts.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unused_imports)]

pub use tandem_testkit::resp::{Conn, Value, encode, escape, read_value};
pub use tandem_testkit::{
    Launch, ServerGuard, free_port, poll, real_tool, require_real_deps, skip_or_fail, start_redis,
    wait_until, which,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The tandem-server binary built for this test run, to start with more options.
pub fn tandem() -> Launch {
    Launch::tandem(env!("CARGO_BIN_EXE_tandem-server"))
}

/// Starts this build's tandem-server and waits until it answers PING.
#[track_caller]
pub fn start_tandem(extra: &[&str]) -> ServerGuard {
    tandem().args(extra).start()
}

/// Waits until INFO reports `n` blocked clients: a client is known to wait before the test
/// does what should wake it.
#[track_caller]
pub fn wait_blocked(server: &ServerGuard, n: usize) {
    let mut c = server.connect();
    let want = format!("blocked_clients:{n}\r\n");
    wait_until(&want, Duration::from_secs(10), || {
        let info = c.cmd(&["INFO", "clients"]);
        String::from_utf8_lossy(&info).contains(&want)
    });
}

/// A reply as text: a bulk string's payload, or a simple reply's line without its type byte.
pub fn text(v: &Value) -> String {
    let raw = String::from_utf8_lossy(&v.raw).into_owned();
    match v.kind() {
        b'$' => raw
            .split_once("\r\n")
            .map(|(_, rest)| rest.trim_end_matches("\r\n").to_string())
            .unwrap_or_default(),
        _ => raw[1..].trim_end().to_string(),
    }
}

/// Sends a command and returns its reply as [`text`].
pub fn cmd(c: &mut Conn, args: &[&str]) -> String {
    c.send(args);
    text(&c.read_value().expect("a reply"))
}

pub fn info(c: &mut Conn, section: &str) -> BTreeMap<String, String> {
    cmd(c, &["INFO", section])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

pub fn field(c: &mut Conn, section: &str, name: &str) -> String {
    info(c, section).get(name).cloned().unwrap_or_default()
}

#[track_caller]
pub fn stat(c: &mut Conn, name: &str) -> u64 {
    let v = field(c, "stats", name);
    v.parse()
        .unwrap_or_else(|_| panic!("INFO stats {name} is {v:?}"))
}

/// Asserts a master's sync counters once a replica whose link dropped is back in sync: it
/// came back by a partial resync, so the master still counts `full` full syncs and now
/// `partial` accepted partial resyncs. `context` names the case in a loop.
#[track_caller]
pub fn assert_partial_resync(master: &mut Conn, full: u64, partial: u64, context: &str) {
    let stats = info(master, "stats");
    let count = |name: &str| -> u64 {
        stats
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("INFO stats has no {name}"))
    };
    assert_eq!(count("sync_full"), full, "{context}: no new full sync");
    assert_eq!(
        count("sync_partial_ok"),
        partial,
        "{context}: partial resyncs"
    );
}

/// Splits a line as redis-cli does (`sdssplitargs`): spaces separate; `"..."` takes
/// `\n \r \t \b \a \xHH` and `\<c>` escapes; `'...'` takes `\'`; a closing quote must be
/// followed by a space or the end. `None` for unbalanced quotes.
pub fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            if dq {
                let c = *b.get(i)?;
                if c == b'\\'
                    && b.get(i + 1) == Some(&b'x')
                    && i + 3 < b.len()
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit()
                {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
                    cur.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else if c == b'\\' && i + 1 < b.len() {
                    i += 1;
                    cur.push(match b[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if sq {
                let c = *b.get(i)?;
                if c == b'\\' && b.get(i + 1) == Some(&b'\'') {
                    cur.push(b'\'');
                    i += 1;
                } else if c == b'\'' {
                    if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(&c) => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(cur);
    }
}

/// A real redis-server (the caller checked `redis_available`).
pub fn start_redis_server(extra: &[&str]) -> ServerGuard {
    Launch::redis("redis-server").args(extra).start()
}

/// INFO through the `redis` client.
pub trait Info {
    fn info(&self, section: &str) -> BTreeMap<String, String>;

    fn field(&self, section: &str, name: &str) -> String {
        self.info(section).get(name).cloned().unwrap_or_default()
    }
}

impl Info for ServerGuard {
    fn info(&self, section: &str) -> BTreeMap<String, String> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.con())
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }
}

/// Waits until the replica's link is up and it processed everything the master produced.
#[track_caller]
pub fn wait_in_sync(master: &ServerGuard, replica: &ServerGuard) {
    wait_until("replica in sync", Duration::from_secs(30), || {
        let r = replica.info("replication");
        r.get("master_link_status").map(String::as_str) == Some("up")
            && r.get("master_repl_offset")
                == Some(&master.field("replication", "master_repl_offset"))
    });
}

/// What a stream holds beyond what clocks decide: its entries, XINFO STREAM without the
/// radix-tree figures (a node layout, not content), XINFO GROUPS, and each group's pending
/// entries without their idle time. Consumers' seen times are left out: a replica sets them
/// when it applies a delivery, as Redis's replicas do.
pub fn stream_state(c: &mut redis::Connection, key: &[u8]) -> String {
    let entries: redis::Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(c)
        .expect("stream reply");
    let info: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query(c)
        .expect("stream reply");
    let info: Vec<_> = info
        .chunks(2)
        .filter(|p| {
            !redis::from_redis_value::<String>(p[0].clone())
                .is_ok_and(|name| name.starts_with("radix-tree"))
        })
        .collect();
    let groups: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query(c)
        .expect("stream reply");
    let mut pending = Vec::new();
    for g in &groups {
        let name: Vec<u8> = redis::from_redis_value(g[1].clone()).expect("group name");
        let rows: Vec<(Vec<u8>, Vec<u8>, i64, i64)> = redis::cmd("XPENDING")
            .arg(key)
            .arg(name)
            .arg("-")
            .arg("+")
            .arg(1_000_000)
            .query(c)
            .expect("XPENDING reply");
        pending.push(
            rows.into_iter()
                .map(|(id, consumer, _, count)| (id, consumer, count))
                .collect::<Vec<_>>(),
        );
    }
    format!("{entries:?} {info:?} {groups:?} {pending:?}")
}

/// A fresh directory of its own under the system temp dir, for a server to keep files in.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tandem-persist-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Runs one command given as words.
pub fn run(con: &mut redis::Connection, words: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query(con)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// Commands both servers get for the interop tests (types tandem stores today).
pub fn interop_commands() -> Vec<Vec<String>> {
    let far = (now_ms() / 1000 + 7200) * 1000;
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut add = |w: &[&str]| cmds.push(w.iter().map(|s| (*s).to_string()).collect());
    add(&["SET", "str:plain", "hello world"]);
    add(&["SET", "str:int", "12345"]);
    add(&["SET", "str:neg", "-42"]);
    add(&["SET", "str:big-int", "9223372036854775807"]);
    add(&["SET", "str:zero-lead", "007"]);
    add(&["SET", "str:empty", ""]);
    let long = "abcdefgh".repeat(500);
    add(&["SET", "str:long-compressible", &long]);
    add(&["SET", "str:ttl", "soon", "PXAT", &far.to_string()]);
    add(&["SELECT", "7"]);
    add(&["SET", "db7:key", "in seven"]);
    add(&["SELECT", "15"]);
    add(&["SET", "db15:key", "in fifteen"]);
    add(&["SELECT", "0"]);
    add(&["HSET", "hash:small", "f1", "v1", "f2", "2", "f3", ""]);
    add(&["HSET", "hash:ttl", "a", "b"]);
    add(&["PEXPIREAT", "hash:ttl", &(far + 1).to_string()]);
    let mut big_hash = vec!["HSET".to_string(), "hash:big".to_string()];
    for i in 0..300 {
        big_hash.push(format!("field-{i}"));
        big_hash.push(format!("value-{i}-{}", "h".repeat(i % 80)));
    }
    add(&big_hash.iter().map(String::as_str).collect::<Vec<_>>());
    add(&["HSET", "hash:longvalue", "f", &"y".repeat(100)]);
    add(&[
        "SADD",
        "set:ints",
        "1",
        "-3",
        "100000",
        "9223372036854775807",
    ]);
    add(&["SADD", "set:strings", "a", "b", "c", "12"]);
    let mut big_set = vec!["SADD".to_string(), "set:big".to_string()];
    big_set.extend((0..700).map(|i| format!("member-{i}")));
    add(&big_set.iter().map(String::as_str).collect::<Vec<_>>());
    let mut big_ints = vec!["SADD".to_string(), "set:bigints".to_string()];
    big_ints.extend((0..600).map(|i| (i * 3).to_string()));
    add(&big_ints.iter().map(String::as_str).collect::<Vec<_>>());
    add(&["RPUSH", "list:small", "a", "b", "3", "-4", ""]);
    add(&["LPUSH", "list:ttl", "x"]);
    add(&["PEXPIREAT", "list:ttl", &(far + 2).to_string()]);
    let mut big_list = vec!["RPUSH".to_string(), "list:big".to_string()];
    big_list.extend((0..1000).map(|i| format!("element-{i}")));
    add(&big_list.iter().map(String::as_str).collect::<Vec<_>>());
    let plain = "p".repeat(10_000);
    add(&["RPUSH", "list:plain", "x", &plain, "y"]);
    add(&[
        "ZADD",
        "zset:small",
        "-3",
        "c",
        "1",
        "a",
        "2.5",
        "b",
        "inf",
        "i",
    ]);
    let mut big_zset = vec!["ZADD".to_string(), "zset:big".to_string()];
    for i in 0..300 {
        big_zset.push(format!("{}", f64::from(i) * 0.5 - 7.25));
        big_zset.push(format!("member-{i}"));
    }
    add(&big_zset.iter().map(String::as_str).collect::<Vec<_>>());
    add(&["ZADD", "zset:longmember", "1", &"m".repeat(100)]);
    for i in 0..300 {
        add(&[
            "SET",
            &format!("bulk:{i}"),
            &format!("{i}-{}", "z".repeat(i % 50)),
        ]);
    }
    cmds
}

pub fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(con)
        .expect("DEBUG DIGEST")
}
