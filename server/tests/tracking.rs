//! Client-side caching (CLIENT TRACKING) compared with a real Redis 7.0, byte for byte.
//!
//! Each scenario runs the same steps on both servers over several connections. After every
//! step each connection is PINGed and everything it received up to the PING's reply is
//! recorded, so invalidation pushes and redirected messages are compared where they land and
//! in order (a client's own invalidation follows its reply, before the PING's). Client ids
//! differ between the servers: `$N` in a step stands for connection N's id, and ids in the
//! recorded bytes are written back as `$N`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, escape, read_value, split_args};

struct Scenario {
    name: &'static str,
    /// The protocol of each connection (2 or 3).
    protos: &'static [u8],
    /// (connection, command) in order.
    steps: &'static [(usize, &'static str)],
}

fn transcript(port: u16, s: &Scenario) -> Vec<String> {
    let mut conns: Vec<Conn> = s.protos.iter().map(|_| Conn::new(port)).collect();
    let mut ids = Vec::new();
    for (c, &proto) in conns.iter_mut().zip(s.protos) {
        if proto == 3 {
            c.cmd(&["HELLO", "3"]);
        }
        let id = c.cmd(&["CLIENT", "ID"]);
        ids.push(String::from_utf8_lossy(&id[1..id.len() - 2]).into_owned());
    }
    conns[0].cmd(&["FLUSHALL"]);
    let name_ids = |text: String| {
        ids.iter().enumerate().rev().fold(text, |t, (n, id)| {
            t.replace(&format!("\\r\\n:{id}\\r\\n"), &format!("\\r\\n:${n}\\r\\n"))
                .replace(&format!("-> :{id}\\r\\n"), &format!("-> :${n}\\r\\n"))
                .replace(&format!("id={id} "), &format!("id=${n} "))
                .replace(&format!("redir={id} "), &format!("redir=${n} "))
        })
    };
    let mut out = Vec::new();
    for (step, &(n, written)) in s.steps.iter().enumerate() {
        let line = ids
            .iter()
            .enumerate()
            .rev()
            .fold(written.to_string(), |l, (k, id)| {
                l.replace(&format!("${k}"), id)
            });
        let args = split_args(&line).expect("quoted");
        if args[0].eq_ignore_ascii_case(b"close") {
            // Closing a connection: a redirect target going away.
            drop(conns.remove(n));
            out.push(format!("#{step} close {n}"));
            continue;
        }
        conns[n].send(&args);
        let v = read_value(&mut conns[n].reader).expect("a reply");
        let mut got = vec![escape(&v.raw)];
        // A push may precede the reply (a notification); keep reading to the reply.
        let mut last = v;
        while last.kind() == b'>' {
            last = read_value(&mut conns[n].reader).expect("a reply");
            got.push(escape(&last.raw));
        }
        out.push(name_ids(format!(
            "#{step} {n} {written} -> {}",
            got.join(" ")
        )));
        for (k, c) in conns.iter_mut().enumerate() {
            c.send(&["PING"]);
            let mut seen = Vec::new();
            loop {
                let v = read_value(&mut c.reader).expect("ping or push");
                let raw = escape(&v.raw);
                // Inside MULTI the PING is queued: that answers too.
                let is_pong = raw == "+PONG\\r\\n"
                    || raw == "+QUEUED\\r\\n"
                    || raw.starts_with("*2\\r\\n$4\\r\\npong\\r\\n")
                    || raw.starts_with(">2\\r\\n$4\\r\\npong\\r\\n");
                if is_pong {
                    break;
                }
                seen.push(raw);
            }
            if !seen.is_empty() {
                out.push(name_ids(format!(
                    "#{step}   conn {k} got {}",
                    seen.join(" ")
                )));
            }
        }
    }
    out
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "default mode, RESP3: read keys invalidated once, own writes after the reply",
        protos: &[3, 3],
        steps: &[
            (0, "CLIENT TRACKING ON"),
            (0, "GET a"),
            (0, "MGET b c"),
            (0, "HGET h f"),
            (1, "SET a 1"),
            (1, "SET a 2"),
            (1, "MSET b 1 c 2"),
            (0, "GET a"),
            (0, "SET a mine"),
            (0, "GET a"),
            (1, "EXPIRE a 100"),
            (0, "GET a"),
            (1, "DEL a"),
            (0, "GET x"),
            (1, "FLUSHALL"),
            (0, "CLIENT TRACKINGINFO"),
            (0, "CLIENT GETREDIR"),
            (0, "CLIENT TRACKING OFF"),
            (0, "GET y"),
            (1, "SET y 1"),
            (0, "CLIENT TRACKINGINFO"),
        ],
    },
    Scenario {
        name: "transactions and NOLOOP",
        protos: &[3, 3],
        steps: &[
            (0, "CLIENT TRACKING ON NOLOOP"),
            (0, "MULTI"),
            (0, "GET t1"),
            (0, "GET t2"),
            (0, "EXEC"),
            (0, "SET t1 x"),
            (1, "SET t2 y"),
            (0, "GET t1"),
            (0, "MULTI"),
            (0, "SET t1 a"),
            (0, "GET t1"),
            (0, "EXEC"),
            (1, "SET t1 b"),
            (0, "CLIENT TRACKINGINFO"),
        ],
    },
    Scenario {
        name: "redirect to a RESP2 subscriber, then a broken redirect",
        protos: &[2, 3, 2],
        steps: &[
            (0, "SUBSCRIBE __redis__:invalidate"),
            (1, "CLIENT TRACKING ON REDIRECT $0"),
            (1, "CLIENT GETREDIR"),
            (1, "GET r1"),
            (2, "SET r1 v"),
            (1, "GET r1"),
            (2, "FLUSHDB"),
            (1, "CLIENT TRACKINGINFO"),
            (0, "close"),
            (1, "GET r2"),
            (1, "SET r2 v"),
            (1, "CLIENT TRACKINGINFO"),
        ],
    },
    Scenario {
        name: "BCAST with prefixes, NOLOOP",
        protos: &[3, 3, 3],
        steps: &[
            (0, "CLIENT TRACKING ON BCAST PREFIX user: PREFIX item:"),
            (1, "CLIENT TRACKING ON BCAST NOLOOP"),
            (2, "SET user:1 a"),
            (2, "MSET item:2 b item:1 c other d"),
            (1, "SET user:9 own"),
            (0, "CLIENT TRACKING ON BCAST PREFIX u"),
            (0, "CLIENT TRACKING ON BCAST PREFIX session:"),
            (0, "CLIENT TRACKINGINFO"),
            (2, "DEL user:1 session:x"),
            (0, "CLIENT TRACKING ON"),
            (0, "CLIENT TRACKING OFF"),
            (0, "CLIENT TRACKING ON PREFIX a"),
        ],
    },
    Scenario {
        name: "OPTIN and OPTOUT with CLIENT CACHING",
        protos: &[3, 3, 3],
        steps: &[
            (0, "CLIENT TRACKING ON OPTIN"),
            (0, "GET o1"),
            (0, "CLIENT CACHING YES"),
            (0, "GET o2"),
            (0, "GET o3"),
            (0, "CLIENT CACHING NO"),
            (0, "CLIENT TRACKINGINFO"),
            (2, "MSET o1 1 o2 2 o3 3"),
            (1, "CLIENT TRACKING ON OPTOUT"),
            (1, "CLIENT CACHING NO"),
            (1, "GET p1"),
            (1, "GET p2"),
            (2, "MSET p1 1 p2 2"),
            (1, "CLIENT TRACKING ON OPTIN"),
            (1, "CLIENT TRACKING ON OPTIN OPTOUT"),
            (1, "CLIENT TRACKING ON BCAST"),
            (2, "CLIENT CACHING YES"),
            (2, "CLIENT TRACKING ON REDIRECT 999999"),
            (2, "CLIENT TRACKING ON REDIRECT $0 REDIRECT $1"),
            (2, "CLIENT TRACKING MAYBE"),
            (2, "CLIENT TRACKING ON FOO"),
        ],
    },
];

#[test]
fn tracking_matches_real_redis() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let mut bad = Vec::new();
    for s in SCENARIOS {
        let (r, t) = (transcript(redis.port, s), transcript(tandem.port, s));
        if r != t {
            let at = r.iter().zip(&t).take_while(|(a, b)| a == b).count();
            bad.push(format!(
                "{}: first difference at line {at}\n  redis:  {:?}\n  tandem: {:?}",
                s.name,
                r.get(at..(at + 2).min(r.len())),
                t.get(at..(at + 2).min(t.len()))
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// CLIENT LIST shows tracking (`t`), BCAST (`B`) and a broken redirect (`R`), and `redir`.
#[test]
fn client_list_shows_tracking() {
    let tandem = common::start_tandem(&[]);
    let mut target = Conn::new(tandem.port);
    let target_id = String::from_utf8_lossy(&target.cmd(&["CLIENT", "ID"]))
        .trim_start_matches(':')
        .trim()
        .to_string();
    let mut c = Conn::new(tandem.port);
    c.cmd(&["HELLO", "3"]);
    c.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", &target_id]);
    let line = |c: &mut Conn| {
        let v = c.cmd(&["CLIENT", "INFO"]);
        String::from_utf8_lossy(&v).into_owned()
    };
    let info = line(&mut c);
    assert!(info.contains(" flags=tB "), "{info}");
    assert!(info.contains(&format!(" redir={target_id} ")), "{info}");
    drop(target);
    let mut other = Conn::new(tandem.port);
    other.cmd(&["SET", "k", "v"]);
    // The broadcast finds the target gone: `tracking-redir-broken`, then `R`.
    let push = read_value(&mut c.reader).expect("a push");
    assert!(escape(&push.raw).contains("tracking-redir-broken"));
    let info = line(&mut c);
    assert!(info.contains(" flags=tRB "), "{info}");
    c.cmd(&["CLIENT", "TRACKING", "OFF"]);
    let info = line(&mut c);
    assert!(
        info.contains(" flags=N ") && info.contains(" redir=-1 "),
        "{info}"
    );
}
