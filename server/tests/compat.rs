//! The compatibility corpus: every `tests/compat/*.redis` file is replayed against a real
//! redis-server 7.0 and against tandem-server, in RESP2 and again after `HELLO 3`, and the raw
//! reply bytes must be identical (or equal after the line's directive).
//!
//! Corpus syntax: one command per line in redis-cli quoting, `#` comments, blank lines
//! ignored. A line may start with a directive for replies that legitimately differ:
//! `@sorted ` (sort the top-level elements, map pairs kept together), `@type ` (compare only
//! the reply type), `@len ` (compare the type and length header).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, Value, escape, read_value, split_args};
use std::io::BufReader;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Exact,
    Sorted,
    Type,
    Len,
}

struct Line {
    number: usize,
    text: String,
    directive: Directive,
    args: Vec<Vec<u8>>,
}

fn parse_corpus(name: &str, text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (directive, rest) = if let Some(r) = t.strip_prefix("@sorted ") {
            (Directive::Sorted, r)
        } else if let Some(r) = t.strip_prefix("@type ") {
            (Directive::Type, r)
        } else if let Some(r) = t.strip_prefix("@len ") {
            (Directive::Len, r)
        } else {
            assert!(
                !t.starts_with('@'),
                "{name}:{}: unknown directive in {t:?}",
                i + 1
            );
            (Directive::Exact, t)
        };
        let args = split_args(rest)
            .unwrap_or_else(|| panic!("{name}:{}: unbalanced quotes in {t:?}", i + 1));
        assert!(!args.is_empty(), "{name}:{}: empty command", i + 1);
        out.push(Line {
            number: i + 1,
            text: t.to_string(),
            directive,
            args,
        });
    }
    out
}

/// The elements of a top-level aggregate as sortable units (map pairs stay together).
fn sorted_units(v: &Value) -> Vec<Vec<u8>> {
    let mut units: Vec<Vec<u8>> = if v.kind() == b'%' {
        v.children
            .chunks(2)
            .map(|p| p.iter().flat_map(|c| c.raw.clone()).collect())
            .collect()
    } else {
        v.children.iter().map(|c| c.raw.clone()).collect()
    };
    units.sort();
    units
}

fn same(d: Directive, a: &Value, b: &Value) -> bool {
    match d {
        Directive::Exact => a.raw == b.raw,
        Directive::Type => a.kind() == b.kind(),
        Directive::Len => a.head == b.head,
        Directive::Sorted => a.head == b.head && sorted_units(a) == sorted_units(b),
    }
}

fn read(c: &mut Conn) -> Result<Value, String> {
    read_value(&mut c.reader).map_err(|e| format!("<no reply: {e}>"))
}

/// Replays one corpus on a fresh connection to each server; returns the mismatches.
fn replay(file: &str, lines: &[Line], redis: u16, tandem: u16, resp3: bool) -> Vec<String> {
    let mut r = Conn::new(redis);
    let mut t = Conn::new(tandem);
    for c in [&mut r, &mut t] {
        c.send(&[&b"FLUSHALL"[..]]);
        read(c).expect("FLUSHALL reply");
        if resp3 {
            c.send(&[&b"HELLO"[..], b"3"]);
            read(c).expect("HELLO reply");
        }
    }
    let proto = if resp3 { "RESP3" } else { "RESP2" };
    let mut bad = Vec::new();
    for l in lines {
        r.send(&l.args);
        t.send(&l.args);
        let (rv, tv) = (read(&mut r), read(&mut t));
        let ok = match (&rv, &tv) {
            (Ok(a), Ok(b)) => same(l.directive, a, b),
            _ => false,
        };
        if !ok {
            let show = |v: &Result<Value, String>| match v {
                Ok(v) => escape(&v.raw),
                Err(e) => e.clone(),
            };
            let msg = format!(
                "{file}:{} [{proto}] {}\n    redis:  {}\n    tandem: {}",
                l.number,
                l.text,
                show(&rv),
                show(&tv)
            );
            println!("MISMATCH {msg}");
            bad.push(msg);
            if rv.is_err() || tv.is_err() {
                // The streams are out of step or closed: the rest of this pass means nothing.
                break;
            }
        }
    }
    bad
}

#[test]
fn corpus_matches_real_redis() {
    // start_redis prints "SKIP: redis-server not found" (or fails when real dependencies
    // are required).
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&["--enable-debug-command", "yes"]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/compat exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "redis"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let mut mismatches = Vec::new();
    let mut total = 0;
    for path in files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read corpus");
        let lines = parse_corpus(&name, &text);
        total += lines.len();
        for resp3 in [false, true] {
            mismatches.extend(replay(&name, &lines, redis.port, tandem.port, resp3));
        }
    }
    println!(
        "compat corpus: {total} lines, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} replies differ from Redis:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn directives_compare_what_they_say() {
    let parse = |b: &[u8]| read_value(&mut BufReader::new(b)).expect("valid");
    let a = parse(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    let b = parse(b"*2\r\n$1\r\nb\r\n$1\r\na\r\n");
    let c = parse(b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
    assert!(!same(Directive::Exact, &a, &b));
    assert!(same(Directive::Sorted, &a, &b));
    assert!(!same(Directive::Sorted, &a, &c));
    assert!(same(Directive::Len, &a, &c));
    let m1 = parse(b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n");
    let m2 = parse(b"%2\r\n+b\r\n:2\r\n+a\r\n:1\r\n");
    let m3 = parse(b"%2\r\n+b\r\n:1\r\n+a\r\n:2\r\n");
    assert!(same(Directive::Sorted, &m1, &m2));
    assert!(!same(Directive::Sorted, &m1, &m3));
    assert!(same(Directive::Type, &parse(b":1\r\n"), &parse(b":2\r\n")));
    let lines = parse_corpus("x", "# c\n\n@len SCAN 0\nSET \"a b\" ''\n");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].directive, Directive::Len);
    assert_eq!(
        lines[1].args,
        vec![b"SET".to_vec(), b"a b".to_vec(), vec![]]
    );
    assert_eq!(lines[1].number, 4);
}

#[test]
fn split_args_follows_redis_cli() {
    assert_eq!(
        split_args(r#"set "a b\x41\n" 'it\'s' plain"#).expect("valid"),
        vec![
            b"set".to_vec(),
            b"a bA\n".to_vec(),
            b"it's".to_vec(),
            b"plain".to_vec()
        ]
    );
    assert_eq!(split_args(r#""""#).expect("valid"), vec![Vec::<u8>::new()]);
    assert!(split_args(r#"echo "a"b"#).is_none());
    assert!(split_args("echo 'a").is_none());
}

#[test]
fn reader_handles_every_type() {
    let input: &[u8] = b"*2\r\n$3\r\nfoo\r\n$-1\r\n%1\r\n+a\r\n:1\r\n~1\r\n,1.5\r\n#t\r\n_\r\n(123\r\n=7\r\ntxt:abc\r\n!3\r\nerr\r\n>2\r\n+p\r\n*-1\r\n|1\r\n+k\r\n+v\r\n:5\r\n-ERR x\r\n";
    let mut r = BufReader::new(input);
    let mut kinds = Vec::new();
    while let Ok(v) = read_value(&mut r) {
        kinds.push(char::from(v.kind()));
    }
    assert_eq!(
        kinds,
        vec!['*', '%', '~', '#', '_', '(', '=', '!', '>', '|', '-']
    );
}

/// A small deterministic generator (xorshift64*), so a failing stream can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "", "\u{7f}bin"];
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "10",
    "abc",
    "1.5",
    "-0.25",
    "3.0e3",
    "9223372036854775807",
    "-9223372036854775808",
    "01",
    " 1",
    "a string that is long enough not to be embedded in the object itself",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "5",
    "-5",
    "100",
    "abc",
    "",
    "9223372036854775807",
    "-9223372036854775808",
];
const FLOATS: &[&str] = &[
    "0.1", "-0.1", "1e2", "2.5", "-3", "abc", "inf", "1e400", "0x10",
];

/// How a random command's replies are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    Exact,
    /// TTL, PTTL: see [`normalize_ttl`].
    Ttl,
    /// EXPIRE ... GT/LT against an equal expiry: whether both ran in the same millisecond
    /// decides 0 or 1, so any integer matches any integer.
    AnyInteger,
    /// KEYS: the same elements in any order.
    Sorted,
}

/// One random string or key command; nothing here depends on hash order, and time only
/// through the replies [`Compare`] relaxes.
fn random_command(g: &mut Gen) -> (Vec<String>, Compare) {
    let k = |g: &mut Gen| g.pick(KEYS).to_string();
    let v = |g: &mut Gen| g.pick(VALUES).to_string();
    let n = |g: &mut Gen| g.pick(NUMBERS).to_string();
    let idx = |g: &mut Gen| (g.below(30) as i64 - 15).to_string();
    let mut compare = Compare::Exact;
    let cmd: Vec<String> = match g.below(41) {
        0 | 1 => vec!["GET".into(), k(g)],
        2 | 3 => {
            let mut c = vec!["SET".into(), k(g), v(g)];
            for opt in ["NX", "XX", "GET", "KEEPTTL"] {
                if g.chance(15) {
                    c.push(opt.into());
                }
            }
            // Expiry times never fall inside the run (keys would expire at slightly
            // different moments on each server) and no two options give the same time.
            if g.chance(20) {
                match g.below(4) {
                    0 => c.extend(["EX".into(), g.pick(&["300", "0", "-1", "abc"]).into()]),
                    1 => c.extend(["PX".into(), g.pick(&["400000", "0", "abc"]).into()]),
                    2 => c.extend(["EXAT".into(), g.pick(&["99999999999", "0", "x"]).into()]),
                    _ => c.extend(["PXAT".into(), g.pick(&["99999999999999", "-5", "x"]).into()]),
                }
            }
            c
        }
        4 => vec!["SETNX".into(), k(g), v(g)],
        5 => vec![
            "SETEX".into(),
            k(g),
            g.pick(&["600", "0", "-3", "x"]).into(),
            v(g),
        ],
        6 => vec!["MGET".into(), k(g), k(g), k(g)],
        7 => {
            let mut c = vec![g.pick(&["MSET", "MSETNX"]).to_string()];
            for _ in 0..=g.below(3) {
                c.push(k(g));
                c.push(v(g));
            }
            if g.chance(10) {
                c.pop();
            }
            c
        }
        8 => vec!["GETSET".into(), k(g), v(g)],
        9 => vec!["GETDEL".into(), k(g)],
        10 => {
            let mut c = vec!["GETEX".into(), k(g)];
            match g.below(4) {
                0 => c.push("PERSIST".into()),
                1 => c.extend(["EX".to_string(), g.pick(&["700", "0", "abc"]).into()]),
                2 => c.push("BOGUS".into()),
                _ => {}
            }
            c
        }
        11 => vec!["APPEND".into(), k(g), v(g)],
        12 => vec!["STRLEN".into(), k(g)],
        13 => vec![g.pick(&["INCR", "DECR"]).into(), k(g)],
        14 => vec![g.pick(&["INCRBY", "DECRBY"]).into(), k(g), n(g)],
        15 => vec!["INCRBYFLOAT".into(), k(g), g.pick(FLOATS).into()],
        16 => vec![g.pick(&["GETRANGE", "SUBSTR"]).into(), k(g), idx(g), idx(g)],
        17 => vec![
            "SETRANGE".into(),
            k(g),
            g.pick(&["0", "1", "5", "-1", "40"]).into(),
            v(g),
        ],
        18 => vec![
            "SETBIT".into(),
            k(g),
            g.below(70).to_string(),
            g.pick(&["0", "1", "2"]).into(),
        ],
        19 => vec!["GETBIT".into(), k(g), g.below(70).to_string()],
        20 => {
            let mut c = vec!["BITCOUNT".into(), k(g)];
            if g.chance(60) {
                c.push(idx(g));
                c.push(idx(g));
                if g.chance(40) {
                    c.push(g.pick(&["BIT", "BYTE", "bogus"]).into());
                }
            }
            c
        }
        21 => vec![
            g.pick(&["DEL", "UNLINK", "EXISTS", "TOUCH"]).into(),
            k(g),
            k(g),
        ],
        22 => vec!["TYPE".into(), k(g)],
        23 => {
            let (cmd, when) = if g.chance(50) {
                ("EXPIRE", g.pick(&["50", "5000", "0", "-1", "x"]))
            } else {
                ("PEXPIRE", g.pick(&["2000000", "0", "x"]))
            };
            let mut c = vec![cmd.to_string(), k(g), when.to_string()];
            if g.chance(40) {
                let flag = g.pick(&["NX", "XX", "GT", "LT", "BAD"]);
                if flag == "GT" || flag == "LT" {
                    compare = Compare::AnyInteger;
                }
                c.push(flag.into());
            }
            c
        }
        24 => vec!["PERSIST".into(), k(g)],
        25 => {
            compare = Compare::Ttl;
            vec![g.pick(&["TTL", "PTTL"]).into(), k(g)]
        }
        26 => vec![g.pick(&["RENAME", "RENAMENX"]).into(), k(g), k(g)],
        27 => {
            let mut c = vec!["COPY".into(), k(g), k(g)];
            if g.chance(30) {
                c.push("REPLACE".into());
            }
            if g.chance(30) {
                c.extend(["DB".to_string(), g.pick(&["0", "1", "99"]).into()]);
            }
            c
        }
        28 => vec!["MOVE".into(), k(g), g.pick(&["0", "1"]).into()],
        29 => vec!["SELECT".into(), g.pick(&["0", "1"]).into()],
        30 => vec!["DBSIZE".into()],
        31 => vec!["OBJECT".into(), "ENCODING".into(), k(g)],
        32 => vec!["SWAPDB".into(), "0".into(), "1".into()],
        33 => {
            compare = Compare::Sorted;
            vec![
                "KEYS".into(),
                g.pick(&["*", "k*", "k[0-1]", "?", "*bin", "[^k]*", "\\*"])
                    .into(),
            ]
        }
        34 => vec!["WATCH".into(), k(g)],
        39 => {
            let mut c = vec!["LCS".into(), k(g), k(g)];
            for _ in 0..g.below(3) {
                match g.below(4) {
                    0 => c.push("LEN".into()),
                    1 => c.push("IDX".into()),
                    2 => c.push("WITHMATCHLEN".into()),
                    _ => c.extend(["MINMATCHLEN".into(), g.pick(&["0", "2", "-1", "x"]).into()]),
                }
            }
            c
        }
        36 => {
            let mut c = vec!["BITPOS".into(), k(g), g.pick(&["0", "1", "2"]).into()];
            for _ in 0..g.below(4) {
                c.push(idx(g));
            }
            if c.len() == 6 {
                c[5] = g.pick(&["BIT", "BYTE", "x"]).into();
            }
            c
        }
        37 => {
            let mut c = vec![
                "BITOP".into(),
                g.pick(&["AND", "OR", "XOR", "NOT", "bad"]).into(),
                k(g),
            ];
            for _ in 0..=g.below(3) {
                c.push(k(g));
            }
            c
        }
        38 => {
            let mut c = vec![
                g.pick(&["BITFIELD", "BITFIELD", "BITFIELD_RO"]).into(),
                k(g),
            ];
            for _ in 0..=g.below(3) {
                let ty = g.pick(&["u8", "i8", "u1", "i5", "i64", "u63", "u3", "x4"]);
                let off = g.pick(&["0", "3", "#1", "13", "-1", "#2"]);
                match g.below(4) {
                    0 => c.extend(["GET".into(), ty.into(), off.into()]),
                    1 => c.extend(["SET".into(), ty.into(), off.into(), n(g)]),
                    2 => c.extend(["INCRBY".into(), ty.into(), off.into(), n(g)]),
                    _ => c.extend([
                        "OVERFLOW".into(),
                        g.pick(&["WRAP", "SAT", "FAIL", "bad"]).into(),
                    ]),
                }
            }
            c
        }
        35 => vec![
            g.pick(&["UNWATCH", "PING", "MULTI", "EXEC", "DISCARD"])
                .into(),
        ],
        _ => {
            if g.chance(20) {
                vec!["FLUSHDB".into()]
            } else {
                vec!["ECHO".into(), v(g)]
            }
        }
    };
    (cmd, compare)
}

/// A reply's top-level elements, sorted (KEYS order is the hash table's).
fn sorted_reply(raw: &[u8]) -> Vec<Vec<u8>> {
    match read_value(&mut BufReader::new(raw)) {
        Ok(v) => sorted_units(&v),
        Err(_) => vec![raw.to_vec()],
    }
}

/// TTL and PTTL: the exact remaining time depends on when each server ran the command, so
/// only "missing", "no expiry" and "has an expiry" are compared.
fn normalize_ttl(raw: &[u8]) -> Vec<u8> {
    match raw {
        b":-2\r\n" | b":-1\r\n" => raw.to_vec(),
        r if r.starts_with(b":") => b":<positive>\r\n".to_vec(),
        r => r.to_vec(),
    }
}

#[test]
fn random_command_streams_match_real_redis() {
    // start_redis prints "SKIP: redis-server not found" (or fails when real dependencies
    // are required).
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let mut mismatches = Vec::new();
    // TANDEM_COMPAT_STREAMS widens the search (each stream is 3000 commands).
    let streams: u64 = std::env::var("TANDEM_COMPAT_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    for (seed, resp3) in (1..=streams).map(|s| (s, s % 3 == 0)) {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut r = Conn::new(redis.port);
        let mut t = Conn::new(tandem.port);
        for c in [&mut r, &mut t] {
            c.cmd(&["FLUSHALL"]);
            if resp3 {
                c.cmd(&["HELLO", "3"]);
            }
        }
        let mut history: Vec<String> = Vec::new();
        // Whether a transaction is open, and whether it queued a loosely compared command.
        let (mut in_multi, mut loose_tx) = (false, false);
        for _ in 0..3000 {
            let (cmd, compare) = random_command(&mut g);
            // Quoted inline form: a stream file can be replayed as is (redis-cli < file).
            history.push(
                String::from_utf8_lossy(&inline(&cmd))
                    .trim_end()
                    .to_string(),
            );
            r.send(&cmd);
            t.send(&cmd);
            let no_reply = || b"<no reply>".to_vec();
            let a = r.try_read_reply().unwrap_or_else(no_reply);
            let b = t.try_read_reply().unwrap_or_else(no_reply);
            let was_in_multi = in_multi;
            match cmd[0].as_str() {
                "MULTI" => in_multi = true,
                "EXEC" | "DISCARD" => in_multi = false,
                _ => {}
            }
            // A loosely compared command queued in a transaction makes its EXEC reply
            // loose too (any array matches any array).
            loose_tx |= was_in_multi && compare != Compare::Exact;
            let ends_tx = was_in_multi && !in_multi;
            let same = match compare {
                _ if a == b => true,
                _ if ends_tx && loose_tx => a.starts_with(b"*") && b.starts_with(b"*"),
                Compare::Exact => false,
                Compare::Sorted => sorted_reply(&a) == sorted_reply(&b),
                Compare::Ttl => normalize_ttl(&a) == normalize_ttl(&b),
                Compare::AnyInteger => a == b || (a.starts_with(b":") && b.starts_with(b":")),
            };
            if ends_tx {
                loose_tx = false;
            }
            if !same {
                // The whole stream, one command per line, to replay by hand.
                let path = std::env::temp_dir().join(format!("tandem-compat-stream-{seed}.txt"));
                let _ = std::fs::write(&path, history.join("\n"));
                let from = history.len().saturating_sub(8);
                mismatches.push(format!(
                    "seed {seed}, command {}: {:?}\n    redis:  {}\n    tandem: {}\n    after: {:?}\n    stream: {}",
                    history.len(),
                    cmd,
                    escape(&a),
                    escape(&b),
                    &history[from..history.len() - 1],
                    path.display()
                ));
                break;
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "random streams diverged:\n{}",
        mismatches.join("\n")
    );
}

/// A command in inline form with redis-cli quoting, so the inline parser gets quotes and
/// escapes too.
fn inline(cmd: &[String]) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, a) in cmd.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.push(b'"');
        for &c in a.as_bytes() {
            match c {
                b'"' | b'\\' => line.extend_from_slice(&[b'\\', c]),
                0x20..=0x7e => line.push(c),
                _ => line.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
            }
        }
        line.push(b'"');
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// Whole pipelines (multibulk and inline requests mixed) written at once: the reply
/// streams must be identical.
#[test]
fn random_pipelines_match_real_redis() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    for seed in 1..=4u64 {
        let mut g = Gen(0x51_7cc1_b727_220a ^ seed);
        let mut batch = Vec::new();
        let mut cmds = Vec::new();
        while cmds.len() < 400 {
            let (cmd, compare) = random_command(&mut g);
            if compare != Compare::Exact {
                continue;
            }
            if g.chance(30) {
                batch.extend_from_slice(&inline(&cmd));
            } else {
                batch.extend_from_slice(&common::encode(&cmd));
            }
            cmds.push(cmd);
        }
        let mut replies = Vec::new();
        for port in [redis.port, tandem.port] {
            let mut c = Conn::new(port);
            c.cmd(&["FLUSHALL"]);
            c.write(&batch);
            let got: Vec<Vec<u8>> = (0..cmds.len())
                .map(|_| c.try_read_reply().unwrap_or_else(|| b"<no reply>".to_vec()))
                .collect();
            replies.push(got);
        }
        for (i, cmd) in cmds.iter().enumerate() {
            assert_eq!(
                escape(&replies[1][i]),
                escape(&replies[0][i]),
                "seed {seed}, command {i}: {cmd:?}"
            );
        }
    }
}

/// COMMAND's row of every command: name -> (arity, flags, first key, last key, step).
fn command_table(server: &common::ServerGuard) -> std::collections::BTreeMap<String, String> {
    let rows: redis::Value = redis::cmd("COMMAND").query(&mut server.con()).unwrap();
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    let mut table = std::collections::BTreeMap::new();
    let redis::Value::Array(rows) = rows else {
        panic!("COMMAND did not answer an array");
    };
    for row in rows {
        let redis::Value::Array(f) = row else {
            panic!("a COMMAND row is not an array");
        };
        let flags = match &f[2] {
            redis::Value::Array(v) | redis::Value::Set(v) => {
                let mut names: Vec<String> = v.iter().map(text).collect();
                names.sort();
                names.join(",")
            }
            other => text(other),
        };
        let row = format!(
            "arity {} flags [{flags}] keys {} {} {}",
            text(&f[1]),
            text(&f[3]),
            text(&f[4]),
            text(&f[5])
        );
        table.insert(text(&f[0]), row);
    }
    table
}

/// What COMMAND says of each command (arity, flags, key positions) is what Redis 7.0 says,
/// for every command both servers have; the ones tandem lacks are printed.
#[test]
fn command_table_matches_real_redis() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let theirs = command_table(&redis);
    let ours = command_table(&tandem);
    let differ: Vec<String> = ours
        .iter()
        .filter_map(|(name, row)| {
            let r = theirs.get(name)?;
            (r != row).then(|| format!("{name}: redis {r}, tandem {row}"))
        })
        .collect();
    let missing: Vec<&String> = theirs.keys().filter(|n| !ours.contains_key(*n)).collect();
    println!(
        "COMMAND COUNT: tandem {}, redis {}; not in tandem: {missing:?}",
        ours.len(),
        theirs.len()
    );
    assert!(
        differ.is_empty(),
        "COMMAND rows differ:\n{}",
        differ.join("\n")
    );
}

/// COMMAND DOCS of every command tandem-server has, and the tips, key specs and subcommand
/// rows of its COMMAND INFO, are Redis 7.0's bytes, in RESP2 and RESP3 (the subcommand rows
/// only for containers whose subcommands tandem has all of). Redis lists a container's
/// subcommands in the order of a dict seeded per process, so those are compared as sets.
#[test]
fn command_docs_and_key_specs_match_real_redis() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let mut t = Conn::new(tandem.port);
    let list = read_reply_value(&mut t, &["COMMAND", "LIST"]);
    let all: Vec<String> = list.children.iter().map(common::text).collect();
    let names: Vec<&String> = all.iter().filter(|n| !n.contains('|')).collect();
    let short = |v: &Value| escape(&v.raw).chars().take(300).collect::<String>();
    let mut bad = Vec::new();
    for resp3 in [false, true] {
        let mut r = Conn::new(redis.port);
        let mut t = Conn::new(tandem.port);
        if resp3 {
            r.cmd(&["HELLO", "3"]);
            t.cmd(&["HELLO", "3"]);
        }
        for name in &names {
            // A container tandem lacks subcommands of is compared on what it has.
            let complete = redis_subcommands(&mut r, name)
                .iter()
                .all(|s| all.contains(s));
            let (a, b) = (
                read_reply_value(&mut r, &["COMMAND", "DOCS", name]),
                read_reply_value(&mut t, &["COMMAND", "DOCS", name]),
            );
            if complete && canonical_docs(&a) != canonical_docs(&b) {
                bad.push(format!(
                    "COMMAND DOCS {name} (resp3 {resp3}):\n    redis:  {}\n    tandem: {}",
                    short(&a),
                    short(&b)
                ));
            }
            let (a, b) = (
                read_reply_value(&mut r, &["COMMAND", "INFO", name]),
                read_reply_value(&mut t, &["COMMAND", "INFO", name]),
            );
            let (a, b) = (&a.children[0].children, &b.children[0].children);
            for (i, what) in [(7, "tips"), (8, "key specs"), (9, "subcommands")] {
                let same = if i == 9 {
                    !complete
                        || (a[i].head == b[i].head && sorted_units(&a[i]) == sorted_units(&b[i]))
                } else {
                    a[i].raw == b[i].raw
                };
                if !same {
                    bad.push(format!(
                        "COMMAND INFO {name} {what} (resp3 {resp3}):\n    redis:  {}\n    tandem: {}",
                        short(&a[i]),
                        short(&b[i])
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A COMMAND DOCS reply with each command's `subcommands` map in sorted order.
fn canonical_docs(v: &Value) -> Vec<Vec<u8>> {
    let mut out = vec![v.head.clone()];
    for pair in v.children.chunks(2) {
        let [name, doc] = pair else {
            continue;
        };
        out.push(name.raw.clone());
        out.push(doc.head.clone());
        for field in doc.children.chunks(2) {
            let [k, val] = field else {
                continue;
            };
            out.push(k.raw.clone());
            if common::text(k) == "subcommands" {
                out.push(val.head.clone());
                let mut subs: Vec<Vec<u8>> = val
                    .children
                    .chunks(2)
                    .map(|p| p.iter().flat_map(|c| c.raw.clone()).collect())
                    .collect();
                subs.sort();
                out.extend(subs);
            } else {
                out.push(val.raw.clone());
            }
        }
    }
    out
}

fn read_reply_value(c: &mut Conn, args: &[&str]) -> Value {
    c.send(args);
    read_value(&mut c.reader).expect("a reply")
}

/// The full names of a container's subcommands on Redis (none for a plain command).
fn redis_subcommands(c: &mut Conn, name: &str) -> Vec<String> {
    let v = read_reply_value(
        c,
        &[
            "COMMAND",
            "LIST",
            "FILTERBY",
            "PATTERN",
            &format!("{name}|*"),
        ],
    );
    v.children.iter().map(common::text).collect()
}

/// DEBUG PROTOCOL attrib and push (in RESP3 an attribute or a push, then the reply) and
/// DEBUG OBJECT's fields other than the address and the LRU clock.
#[test]
fn debug_protocol_and_object_match_real_redis() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&["--enable-debug-command", "yes"]);
    for resp3 in [false, true] {
        let (mut r, mut t) = (Conn::new(redis.port), Conn::new(tandem.port));
        for c in [&mut r, &mut t] {
            if resp3 {
                c.cmd(&["HELLO", "3"]);
            }
        }
        for kind in ["attrib", "push"] {
            // The reader takes an attribute together with the reply it annotates.
            let values = if resp3 && kind == "push" { 2 } else { 1 };
            let read = |c: &mut Conn| -> Vec<Vec<u8>> {
                c.send(&["DEBUG", "PROTOCOL", kind]);
                (0..values)
                    .map(|_| read_value(&mut c.reader).expect("a value").raw)
                    .collect()
            };
            assert_eq!(
                read(&mut t),
                read(&mut r),
                "DEBUG PROTOCOL {kind}, resp3 {resp3}"
            );
        }
    }
    let (mut r, mut t) = (Conn::new(redis.port), Conn::new(tandem.port));
    let setup = [
        "SET s hello",
        "SET n 12345",
        "SET big xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "HSET h a 1 b 2",
        "SADD si 1 2 3",
        "ZADD z 1 a",
    ];
    for line in setup {
        let args = split_args(line).expect("quoted");
        r.send(&args);
        read_value(&mut r.reader).expect("reply");
        t.send(&args);
        read_value(&mut t.reader).expect("reply");
    }
    let fields = |c: &mut Conn, key: &str| -> String {
        let v = read_reply_value(c, &["DEBUG", "OBJECT", key]);
        common::text(&v)
            .split(' ')
            .filter(|f| {
                f.starts_with("refcount:")
                    || f.starts_with("encoding:")
                    || f.starts_with("serializedlength:")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for key in ["s", "n", "big", "h", "si", "z"] {
        assert_eq!(
            fields(&mut t, key),
            fields(&mut r, key),
            "DEBUG OBJECT {key}"
        );
    }
}
