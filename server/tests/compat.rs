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
    let Some(redis) = common::start_redis(&[]) else {
        println!("SKIP: redis-server not found");
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
