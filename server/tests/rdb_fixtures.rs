//! Every RDB fixture (files from Redis 7.0.15's test assets and files written by Redis
//! 7.0.15) is read and compared with what real Redis 7.0.15 loaded from it (the JSON beside
//! it); files Redis refuses must be refused with an error.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tandem_server::rdb::{Item, RdbConsumer, RdbError, RdbReader, RdbStream, RdbValue};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb")
}

type Keys = BTreeMap<Vec<u8>, (RdbValue, bool)>;

/// Reads a file the way a master loads it: expired keys are dropped.
fn load(path: &Path) -> Result<BTreeMap<u32, Keys>, RdbError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let reader = RdbReader::new(BufReader::new(File::open(path).unwrap()))?;
    let mut dbs: BTreeMap<u32, Keys> = BTreeMap::new();
    for item in reader {
        if let Item::Entry(e) = item? {
            if e.expire_ms.is_some_and(|ms| ms <= now_ms) {
                continue;
            }
            let prev = dbs
                .entry(e.db)
                .or_default()
                .insert(e.key.clone(), (e.value, e.expire_ms.is_some()));
            assert!(
                prev.is_none(),
                "duplicate key {:?}",
                String::from_utf8_lossy(&e.key)
            );
        }
    }
    Ok(dbs)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A JSON string, or `{"base64": ...}` for binary.
fn bytes_of(j: &Json) -> Vec<u8> {
    match j {
        Json::String(s) => s.as_bytes().to_vec(),
        Json::Object(o) => base64_decode(o["base64"].as_str().unwrap()),
        other => panic!("unexpected JSON bytes {other}"),
    }
}

/// Object keys are themselves JSON-encoded bytes.
fn bytes_of_key(k: &str) -> Vec<u8> {
    bytes_of(&serde_json::from_str(k).unwrap())
}

fn check_value(key: &[u8], got: &RdbValue, want: &Json) {
    let ty = want["type"].as_str().unwrap();
    assert_eq!(
        got.type_name(),
        ty,
        "type of {:?}",
        String::from_utf8_lossy(key)
    );
    let v = &want["value"];
    match got {
        RdbValue::String(s) => assert_eq!(s, &bytes_of(v)),
        RdbValue::List(items) => {
            let want: Vec<Vec<u8>> = v.as_array().unwrap().iter().map(bytes_of).collect();
            assert_eq!(items, &want);
        }
        RdbValue::Set(items) => {
            let got: BTreeSet<&Vec<u8>> = items.iter().collect();
            let want: Vec<Vec<u8>> = v.as_array().unwrap().iter().map(bytes_of).collect();
            assert_eq!(got.len(), items.len());
            assert_eq!(got, want.iter().collect());
        }
        RdbValue::Hash(pairs) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = pairs.iter().cloned().collect();
            let want: BTreeMap<Vec<u8>, Vec<u8>> = v
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (bytes_of_key(k), bytes_of(v)))
                .collect();
            assert_eq!(got, want);
        }
        RdbValue::ZSet(pairs) => {
            let want: Vec<(Vec<u8>, f64)> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (bytes_of(&p[0]), p[1].as_f64().unwrap()))
                .collect();
            assert_eq!(pairs.len(), want.len());
            let got: BTreeMap<&Vec<u8>, f64> = pairs.iter().map(|(m, s)| (m, *s)).collect();
            for (m, s) in &want {
                let g = got[m];
                assert!(
                    g == *s || (g - s).abs() <= s.abs() * 1e-15,
                    "score of {m:?}: {g} vs {s}"
                );
            }
        }
        RdbValue::Stream(s) => check_stream(s, v),
    }
}

fn stream_id(j: &Json) -> (u64, u64) {
    let text = j.as_str().unwrap();
    let (ms, seq) = text.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// A stream entry as XRANGE shows it: id, then fields and values in one list.
type FlatEntry = ((u64, u64), Vec<Vec<u8>>);

/// A stream against what Redis's XRANGE and XINFO STREAM FULL showed.
fn check_stream(s: &RdbStream, v: &Json) {
    let want: Vec<FlatEntry> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                stream_id(&e[0]),
                e[1].as_array().unwrap().iter().map(bytes_of).collect(),
            )
        })
        .collect();
    let got: Vec<FlatEntry> = s
        .entries
        .iter()
        .map(|(id, pairs)| {
            (
                *id,
                pairs
                    .iter()
                    .flat_map(|(f, v)| [f.clone(), v.clone()])
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.meta.last_id, stream_id(&v["last_id"]));
    assert_eq!(s.meta.first_id, stream_id(&v["first_id"]));
    assert_eq!(s.meta.max_deleted, stream_id(&v["max_deleted"]));
    assert_eq!(s.meta.entries_added, v["entries_added"].as_u64().unwrap());
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(s.groups.len(), groups.len());
    for (g, w) in s.groups.iter().zip(groups) {
        assert_eq!(g.name, bytes_of(&w["name"]));
        assert_eq!(g.last_id, stream_id(&w["last_id"]));
        assert_eq!(
            g.entries_read,
            Some(w["entries_read"].as_i64().unwrap_or(-1))
        );
        let pel: Vec<_> = w["pel"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    stream_id(&p[0]),
                    p[2].as_u64().unwrap(),
                    p[3].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(g.pel, pel);
        let consumers: Vec<_> = w["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| RdbConsumer {
                name: bytes_of(&c["name"]),
                seen_time: c["seen_time"].as_u64().unwrap(),
                pel: c["pel"].as_array().unwrap().iter().map(stream_id).collect(),
            })
            .collect();
        assert_eq!(g.consumers, consumers);
    }
}

fn check_fixture(name: &str) {
    let dir = fixtures_dir();
    let json: Json =
        serde_json::from_reader(File::open(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let result = load(&dir.join(format!("{name}.rdb")));
    if !json["loads_in_redis_7_0"].as_bool().unwrap() {
        let err = result.expect_err("Redis refuses this file, so must we");
        println!("{name}: refused as expected: {err}");
        return;
    }
    let dbs = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let want_dbs = json["databases"].as_object().unwrap();
    let got_dbs: BTreeSet<String> = dbs.keys().map(|d| d.to_string()).collect();
    let want_names: BTreeSet<String> = want_dbs.keys().cloned().collect();
    assert_eq!(got_dbs, want_names, "{name}: databases");
    for (db, want_keys) in want_dbs {
        let got = &dbs[&db.parse::<u32>().unwrap()];
        let want_keys = want_keys.as_object().unwrap();
        let want_set: BTreeSet<Vec<u8>> = want_keys.keys().map(|k| bytes_of_key(k)).collect();
        let got_set: BTreeSet<Vec<u8>> = got.keys().cloned().collect();
        assert_eq!(got_set, want_set, "{name}: keys of db {db}");
        for (k, want) in want_keys {
            let key = bytes_of_key(k);
            let (value, expires) = &got[&key];
            assert_eq!(
                *expires,
                want["expires"].as_bool().unwrap(),
                "{name}: expiry of {k}"
            );
            check_value(&key, value, want);
        }
    }
}

#[test]
fn every_fixture_matches_redis() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rdb").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 11, "fixtures missing: {names:?}");
    for name in names {
        check_fixture(&name);
    }
}

#[test]
fn reads_aux_fields() {
    let reader = RdbReader::new(BufReader::new(
        File::open(fixtures_dir().join("redis70-plain.rdb")).unwrap(),
    ))
    .unwrap();
    assert_eq!(reader.version(), 10);
    let mut reader = reader;
    while let Some(Item::Aux { .. }) = reader.next_item().unwrap() {}
    let aux = reader.aux();
    assert_eq!(aux.redis_ver.as_deref(), Some("7.0.15"));
    assert_eq!(aux.redis_bits, Some(64));
    assert!(aux.ctime.is_some() && aux.used_mem.is_some() && aux.aof_base.is_some());
}

#[test]
fn script_backup_aux_is_kept_raw() {
    let mut reader = RdbReader::new(BufReader::new(
        File::open(fixtures_dir().join("legacy-scriptbackup.rdb")).unwrap(),
    ))
    .unwrap();
    while reader.next_item().unwrap().is_some() {}
    assert!(reader.aux().other.iter().any(|(k, _)| k == b"lua"));
}

#[test]
fn refuses_newer_versions_like_redis() {
    let err = RdbReader::new(&b"REDIS0011\xff"[..]).err().unwrap();
    assert_eq!(err.to_string(), "Can't handle RDB format version 11");
    assert!(matches!(
        RdbReader::new(&b"RODIS0009"[..]),
        Err(RdbError::BadSignature)
    ));
}
