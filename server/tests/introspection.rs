//! What monitoring reads: LATENCY HISTOGRAM counts every call, INFO latencystats prints
//! Redis 7.0's line per command, `latency-tracking no` stops both; MEMORY USAGE follows a
//! value's size.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn histograms_count_calls_and_info_prints_percentiles() {
    let t = common::start_tandem(&[]);
    let mut c = t.con();
    for i in 0..50 {
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut c).unwrap();
    }
    let h = t.connect().cmd(&["LATENCY", "HISTOGRAM", "set"]);
    let text = String::from_utf8_lossy(&h);
    assert!(
        text.starts_with(
            "*2\r\n$3\r\nset\r\n*4\r\n$5\r\ncalls\r\n:50\r\n$14\r\nhistogram_usec\r\n"
        ),
        "{text}"
    );
    let info: String = redis::cmd("INFO")
        .arg("latencystats")
        .query(&mut c)
        .unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_set:"))
        .unwrap_or_else(|| panic!("no SET line in {info}"));
    let values: Vec<&str> = line.split_once(':').unwrap().1.split(',').collect();
    assert_eq!(values.len(), 3, "{line}");
    for (v, p) in values.iter().zip(["p50=", "p99=", "p99.9="]) {
        let n = v.strip_prefix(p).unwrap_or_else(|| panic!("{line}"));
        let (_, decimals) = n.split_once('.').unwrap();
        assert_eq!(decimals.len(), 3, "{line}");
        assert!(n.parse::<f64>().unwrap() > 0.0, "{line}");
    }

    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-tracking")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg(1).query(&mut c).unwrap();
    let info: String = redis::cmd("INFO")
        .arg("latencystats")
        .query(&mut c)
        .unwrap();
    assert!(!info.contains("latency_percentiles_usec_set"), "{info}");
}

#[test]
fn memory_usage_follows_the_value() {
    let t = common::start_tandem(&[]);
    let mut c = t.con();
    let usage = |c: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("MEMORY").arg("USAGE").arg(key).query(c).unwrap()
    };
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(vec![b'x'; 100_000])
        .query(&mut c)
        .unwrap();
    assert!(usage(&mut c, "big") >= 100_000);
    for (key, n) in [("short", 3), ("long", 10_000)] {
        for i in 0..n {
            let _: () = redis::cmd("RPUSH").arg(key).arg(i).query(&mut c).unwrap();
            let _: () = redis::cmd("ZADD")
                .arg(format!("z{key}"))
                .arg(i)
                .arg(i)
                .query(&mut c)
                .unwrap();
        }
    }
    assert!(usage(&mut c, "long") > 10 * usage(&mut c, "short"));
    assert!(usage(&mut c, "zlong") > 10 * usage(&mut c, "zshort"));
}

/// What MONITOR shows for a fixed sequence: the lines of `server`, with the timestamp and the
/// client's address (which differ between runs) masked.
fn monitor_lines(server: &common::ServerGuard) -> Vec<String> {
    let mut monitor = server.connect();
    assert_eq!(monitor.cmd(&["MONITOR"]), b"+OK\r\n");
    let mut c = server.connect();
    let sequence: &[&[&str]] = &[
        &["SET", "mon:k", "a b\"c\n\x01"],
        &["CONFIG", "GET", "hz"],
        &[
            "EVAL",
            "redis.call('select', 5) return redis.call('set', 'k', 'v')",
            "0",
        ],
        &["MULTI"],
        &["INCR", "mon:c"],
        &["EXEC"],
        &["SELECT", "2"],
        &["ECHO", "end"],
    ];
    for cmd in sequence {
        c.cmd(cmd);
    }
    let mut lines = Vec::new();
    loop {
        let raw = String::from_utf8_lossy(&monitor.read_reply()).into_owned();
        let (_, rest) = raw.split_once(" [").expect("a monitor line");
        let (db_addr, args) = rest.split_once("] ").expect("a monitor line");
        let db = db_addr.split(' ').next().unwrap_or_default();
        let from = if db_addr.ends_with(" lua") {
            "lua"
        } else {
            "client"
        };
        lines.push(format!("[{db} {from}] {}", args.trim_end()));
        if args.contains("\"end\"") {
            return lines;
        }
    }
}

#[test]
fn monitor_shows_what_redis_shows() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let theirs = monitor_lines(&redis);
    assert_eq!(monitor_lines(&tandem), theirs);
    assert!(
        theirs.iter().any(|l| l.starts_with("[5 lua]")),
        "{theirs:?}"
    );
}
