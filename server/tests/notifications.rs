//! Keyspace notifications compared with a real Redis 7.0: every command of the compatibility
//! corpus (`tests/compat/*.redis`) is replayed on both servers with every event class on
//! (`notify-keyspace-events AKEnm`), while a subscriber on each collects what is published on
//! `__keyspace@*__` and `__keyevent@*__`; the two sequences of (channel, message) must be
//! identical, in order, file by file. That covers which commands raise which event, on which
//! key, in which database, and in what order (`new` before the command's own event, `del`
//! after the last element left an aggregate, `keymiss` on reads).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, Value, escape, read_value, split_args};
use std::path::PathBuf;

const END: &[u8] = b"notifications:end";

/// The corpus commands of one file, directives stripped.
fn commands(text: &str) -> Vec<Vec<Vec<u8>>> {
    text.lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with('#'))
        .map(|t| {
            let t = match t.split_once(' ') {
                Some((d, rest)) if d.starts_with('@') => rest,
                _ => t,
            };
            split_args(t).expect("balanced quotes")
        })
        // CLIENT KILL TYPE pubsub would end the observer's subscription.
        .filter(|c| {
            !(c.len() > 1
                && c[0].eq_ignore_ascii_case(b"client")
                && c[1].eq_ignore_ascii_case(b"kill"))
        })
        .collect()
}

/// One server with a subscriber to every keyspace and keyevent channel.
struct Observed {
    port: u16,
    writer: Conn,
    subscriber: Conn,
    /// Publishes the end marker: the writer may be inside MULTI, where PUBLISH would queue.
    marker: Conn,
}

impl Observed {
    fn new(port: u16) -> Self {
        let mut subscriber = Conn::new(port);
        subscriber.send(&[&b"PSUBSCRIBE"[..], b"__key*@*__:*"]);
        read_value(&mut subscriber.reader).expect("psubscribe");
        subscriber.send(&[&b"SUBSCRIBE"[..], END]);
        read_value(&mut subscriber.reader).expect("subscribe");
        Observed {
            port,
            writer: Conn::new(port),
            subscriber,
            marker: Conn::new(port),
        }
    }

    /// Runs `commands` and returns the notifications each raised, as `channel message`
    /// lines.
    fn run(&mut self, commands: &[Vec<Vec<u8>>]) -> Vec<Vec<String>> {
        // A fresh connection per file, as the corpus runs them: a file may end in MULTI or
        // with CLIENT REPLY OFF.
        self.writer = Conn::new(self.port);
        let w = &mut self.writer;
        for setup in [
            vec![b"FLUSHALL".to_vec()],
            vec![b"SELECT".to_vec(), b"0".to_vec()],
            vec![
                b"CONFIG".to_vec(),
                b"SET".to_vec(),
                b"notify-keyspace-events".to_vec(),
                b"AKEnm".to_vec(),
            ],
        ] {
            w.send(&setup);
            read_value(&mut w.reader).expect("setup reply");
        }
        commands.iter().map(|c| self.events_of(c)).collect()
    }

    fn events_of(&mut self, command: &[Vec<u8>]) -> Vec<String> {
        let w = &mut self.writer;
        w.send(command);
        read_value(&mut w.reader).expect("a reply");
        // What the command raised was published before its reply left: one server thread.
        let m = &mut self.marker;
        m.send(&[&b"PUBLISH"[..], END, b"-"]);
        read_value(&mut m.reader).expect("publish reply");
        let mut events = Vec::new();
        loop {
            let v: Value = read_value(&mut self.subscriber.reader).expect("a message");
            let parts: Vec<String> = v.children.iter().map(common::text).collect();
            match parts.as_slice() {
                [kind, channel, _] if kind == "message" && channel.as_bytes() == END => break,
                [kind, _, channel, message] if kind == "pmessage" => {
                    events.push(format!("{channel} {message}"));
                }
                _ => panic!("unexpected push: {}", escape(&v.raw)),
            }
        }
        events
    }
}

#[test]
fn every_corpus_command_raises_the_events_redis_raises() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&["--enable-debug-command", "yes"]);
    let mut r = Observed::new(redis.port);
    let mut t = Observed::new(tandem.port);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/compat exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "redis"))
        // The pub/sub file subscribes its own connection with several channels at once,
        // which this harness's one-reply-per-command reading cannot follow; it has no keys.
        .filter(|p| !p.ends_with("pubsub.redis"))
        .collect();
    files.sort();
    let mut bad = Vec::new();
    let mut total = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let cmds = commands(&std::fs::read_to_string(&path).unwrap());
        let (re, te) = (r.run(&cmds), t.run(&cmds));
        for ((c, a), b) in cmds.iter().zip(&re).zip(&te) {
            total += a.len();
            // SORT looks its BY and GET keys up in the order it walks a set or sorted set,
            // which is the hash order of Redis's dict, seeded per process.
            let unordered =
                c[0].eq_ignore_ascii_case(b"sort") || c[0].eq_ignore_ascii_case(b"sort_ro");
            let same = if unordered {
                let (mut x, mut y) = (a.clone(), b.clone());
                x.sort();
                y.sort();
                x == y
            } else {
                a == b
            };
            if !same {
                let line: Vec<String> = c.iter().map(|x| escape(x)).collect();
                bad.push(format!(
                    "{name}: {}\n    redis:  {a:?}\n    tandem: {b:?}",
                    line.join(" ")
                ));
            }
        }
    }
    println!("{total} notifications from Redis over the corpus");
    assert!(total > 1000, "the corpus raised only {total} notifications");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A RESP3 client subscribed to its own keys gets the notification before the reply of the
/// command that raised it, as Redis delivers it while the command runs.
#[test]
fn own_notifications_come_before_the_reply_in_resp3() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let transcript = |port: u16| {
        let mut c = Conn::new(port);
        c.cmd(&["HELLO", "3"]);
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "K$g"]);
        c.cmd(&["SUBSCRIBE", "__keyspace@0__:own"]);
        let mut out = Vec::new();
        for command in [
            &["SET", "own", "v", "EX", "100"][..],
            &["GET", "own"],
            &["DEL", "own"],
        ] {
            c.send(command);
            // Each write raises its events and then answers: read up to the reply.
            loop {
                let v = read_value(&mut c.reader).expect("a reply");
                let push = v.kind() == b'>';
                out.push(escape(&v.raw));
                if !push {
                    break;
                }
            }
        }
        out
    };
    let (r, t) = (transcript(redis.port), transcript(tandem.port));
    assert_eq!(r.len(), 6, "Redis: {r:?}");
    assert_eq!(t, r);
}

/// Keys removed by the server itself: `expired` from the active expiry cycle (no client
/// touches the key) and `evicted` under `maxmemory`, each on both channels.
#[test]
fn expiry_and_eviction_are_published() {
    let tandem = common::start_tandem(&[]);
    let mut admin = Conn::new(tandem.port);
    admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KExe"]);
    let mut sub = Conn::new(tandem.port);
    sub.cmd(&["PSUBSCRIBE", "__key*__:*"]);
    admin.cmd(&["SET", "soon", "v", "PX", "1"]);
    let mut next = || {
        let v = read_value(&mut sub.reader).expect("a notification");
        let parts: Vec<String> = v.children.iter().map(common::text).collect();
        format!("{} {}", parts[2], parts[3])
    };
    assert_eq!(next(), "__keyspace@0__:soon expired");
    assert_eq!(next(), "__keyevent@0__:expired soon");
    let value = "x".repeat(1000);
    for i in 0..200 {
        admin.cmd(&["SET", &format!("fill:{i}"), &value]);
    }
    let used: u64 = common::field(&mut admin, "memory", "used_memory")
        .parse()
        .expect("used_memory");
    admin.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
    admin.cmd(&["CONFIG", "SET", "maxmemory", &(used - 50_000).to_string()]);
    admin.cmd(&["SET", "trigger", "v"]);
    let first = next();
    assert!(
        first.starts_with("__keyspace@0__:fill:") && first.ends_with(" evicted"),
        "{first}"
    );
    assert!(next().starts_with("__keyevent@0__:evicted fill:"));
    admin.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
}
