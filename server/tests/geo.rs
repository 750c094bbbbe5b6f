//! GEO against real Redis 7.0 on many random points: the scores GEOADD stores, GEOPOS's and
//! GEODIST's digits and the searches' replies must be byte for byte Redis's; and a GEO key
//! written on tandem reaches a real Redis replica as the same sorted set.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, escape, start_redis, start_tandem};

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform value in `[lo, hi]`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / ((1u64 << 53) - 1) as f64 * (hi - lo)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sends the same command to both servers and asserts identical reply bytes.
fn same(redis: &mut Conn, tandem: &mut Conn, args: &[String]) {
    let want = redis.cmd(args);
    let got = tandem.cmd(args);
    assert_eq!(
        escape(&got),
        escape(&want),
        "tandem differs from Redis on {args:?}"
    );
}

/// A random longitude/latitude pair, a third of them near the map's edges and poles.
fn point(g: &mut Gen) -> (String, String) {
    let (long, lat) = match g.below(3) {
        0 => (g.uniform(179.0, 180.0), g.uniform(84.0, 85.05112878)),
        1 => (g.uniform(-180.0, -179.0), g.uniform(-85.05112878, -84.0)),
        _ => (
            g.uniform(-180.0, 180.0),
            g.uniform(-85.05112878, 85.05112878),
        ),
    };
    // Redis reads the text, so the text is what both servers get.
    (format!("{long:.9}"), format!("{lat:.9}"))
}

#[test]
fn random_points_match_real_redis() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let tandem = start_tandem(&[]);
    let (mut r, mut t) = (redis.connect(), tandem.connect());
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let members = 3000;
    for batch in 0..members / 100 {
        let mut args = vec!["GEOADD".to_string(), "pts".to_string()];
        for i in 0..100 {
            let (long, lat) = point(&mut g);
            args.extend([long, lat, format!("m{}", batch * 100 + i)]);
        }
        same(&mut r, &mut t, &args);
    }
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    same(
        &mut r,
        &mut t,
        &s(&["ZRANGE", "pts", "0", "-1", "WITHSCORES"]),
    );
    let mut pos = s(&["GEOPOS", "pts"]);
    pos.extend((0..members).map(|i| format!("m{i}")));
    same(&mut r, &mut t, &pos);
    let mut hash = s(&["GEOHASH", "pts"]);
    hash.extend((0..members).map(|i| format!("m{i}")));
    same(&mut r, &mut t, &hash);
    let units = ["m", "km", "mi", "ft"];
    for _ in 0..2000 {
        let (a, b) = (g.below(members), g.below(members));
        let unit = units[g.below(units.len())];
        same(
            &mut r,
            &mut t,
            &s(&["GEODIST", "pts", &format!("m{a}"), &format!("m{b}"), unit]),
        );
    }
    for _ in 0..300 {
        let (long, lat) = point(&mut g);
        let size = format!("{:.3}", g.uniform(1.0, 3000.0));
        let mut args = s(&["GEOSEARCH", "pts", "FROMLONLAT", &long, &lat]);
        if g.below(2) == 0 {
            args.extend(s(&["BYRADIUS", &size, "km"]));
        } else {
            let height = format!("{:.3}", g.uniform(1.0, 3000.0));
            args.extend(s(&["BYBOX", &size, &height, "km"]));
        }
        args.extend(s(&["WITHDIST", "WITHCOORD", "WITHHASH"]));
        match g.below(3) {
            0 => args.extend(s(&["ASC"])),
            1 => args.extend(s(&["DESC", "COUNT", "5"])),
            _ => args.extend(s(&["COUNT", "3"])),
        }
        same(&mut r, &mut t, &args);
    }
}

#[test]
fn geo_writes_reach_a_real_replica_unchanged() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let tandem = start_tandem(&[]);
    let mut t = tandem.connect();
    let mut r = redis.connect();
    r.call(
        &["REPLICAOF", "127.0.0.1", &tandem.port.to_string()],
        b"+OK\r\n",
    );
    common::wait_in_sync(&tandem, &redis);
    // The replica's MONITOR shows what its master streams (after a SELECT, among PINGs).
    let mut monitor = redis.connect();
    monitor.call(&["MONITOR"], b"+OK\r\n");
    t.call(
        &[
            "GEOADD",
            "g",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
        b":2\r\n",
    );
    let streamed = loop {
        let line = common::text(&monitor.read_value().expect("a MONITOR line"));
        if !line.contains("\"PING\"") && !line.contains("\"SELECT\"") {
            break line;
        }
    };
    assert!(
        streamed
            .ends_with(r#""zadd" "g" "3479099956230698" "Palermo" "3479447370796909" "Catania""#),
        "GEOADD reached the replica as {streamed}"
    );
    t.call(
        &["GEORADIUS", "g", "15", "37", "200", "km", "STOREDIST", "d"],
        b":2\r\n",
    );
    t.call(
        &[
            "GEOSEARCHSTORE",
            "s",
            "g",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "1",
            "km",
        ],
        b":1\r\n",
    );
    common::wait_in_sync(&tandem, &redis);
    for key in ["g", "d", "s"] {
        let args = ["ZRANGE", key, "0", "-1", "WITHSCORES"];
        assert_eq!(escape(&r.cmd(&args)), escape(&t.cmd(&args)), "{key}");
    }
}
