//! Writer -> reader round trips over random datasets (fixed seed), and corruption sweeps:
//! every flipped byte and every truncation of small RDB files must end in an error or a
//! clean load, never a panic, and never allocate far beyond the file's size.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tandem_server::rdb::{
    Aux, Item, RdbConsumer, RdbEntry, RdbError, RdbGroup, RdbReader, RdbStream, RdbStreamMeta,
    RdbValue, RdbWriter, WriterOptions,
};

// Counting allocations needs a global allocator whose per-thread counters we can read.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn allocated_by_this_thread() -> u64 {
    tikv_jemalloc_ctl::thread::allocatedp::read().unwrap().get()
}

/// A dataset as the writer is fed: db -> key -> (value, expiry).
type Dataset = BTreeMap<u32, BTreeMap<Vec<u8>, (RdbValue, Option<u64>)>>;

fn write(data: &Dataset, opts: WriterOptions) -> Vec<u8> {
    let aux = Aux {
        redis_ver: Some("7.0.15".into()),
        redis_bits: Some(64),
        ctime: Some(1_700_000_000),
        used_mem: Some(1_000_000),
        repl_stream_db: Some(0),
        repl_id: Some("0123456789abcdef0123456789abcdef01234567".into()),
        repl_offset: Some(12345),
        aof_base: Some(0),
        other: vec![(b"x-custom".to_vec(), b"value".to_vec())],
    };
    let mut w = RdbWriter::new(Vec::new(), opts, &aux).unwrap();
    for (db, keys) in data {
        let expires = keys.values().filter(|(_, e)| e.is_some()).count() as u64;
        w.select_db(*db, keys.len() as u64, expires).unwrap();
        for (k, (v, e)) in keys {
            w.write_value(k, v, *e).unwrap();
        }
    }
    let out = w.finish().unwrap();
    let (_, aux_back) = read(&out).unwrap();
    assert_eq!(aux_back, aux);
    out
}

fn read(bytes: &[u8]) -> Result<(Vec<RdbEntry>, Aux), RdbError> {
    let mut r = RdbReader::new(bytes)?;
    let mut entries = Vec::new();
    while let Some(item) = r.next_item()? {
        if let Item::Entry(e) = item {
            entries.push(e);
        }
    }
    Ok((entries, r.aux().clone()))
}

fn is_empty(v: &RdbValue) -> bool {
    match v {
        RdbValue::String(_) => false,
        RdbValue::List(v) | RdbValue::Set(v) => v.is_empty(),
        RdbValue::Hash(v) => v.is_empty(),
        RdbValue::ZSet(v) => v.is_empty(),
        RdbValue::Stream(_) => false,
    }
}

fn check_round_trip(data: &Dataset, opts: WriterOptions) {
    let bytes = write(data, opts);
    if !opts.checksum {
        assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
    }
    let (entries, _) = read(&bytes).unwrap();
    let mut want = Vec::new();
    for (db, keys) in data {
        for (k, (v, e)) in keys {
            if !is_empty(v) {
                want.push((*db, k.clone(), v.canonical(), *e));
            }
        }
    }
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.db, e.key.clone(), e.value.canonical(), e.expire_ms))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, &g.1, g.3), (w.0, &w.1, w.3));
        match (&g.2, &w.2) {
            (RdbValue::ZSet(a), RdbValue::ZSet(b)) => {
                assert_eq!(a.len(), b.len());
                for ((ma, sa), (mb, sb)) in a.iter().zip(b) {
                    assert_eq!(ma, mb);
                    assert_eq!(sa.to_bits(), sb.to_bits(), "score of {ma:?}");
                }
            }
            (a, b) => assert_eq!(a, b),
        }
    }
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        1 => (-200i64..200).prop_map(|i| i.to_string().into_bytes()),
        1 => (0usize..300, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        1 => "[a-c]{0,5}".prop_map(|s| s.repeat(30).into_bytes()),
        1 => Just(vec![b'0', b'7']),
    ]
}

fn big_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => bytes(),
        1 => (4000usize..9000, any::<u8>()).prop_map(|(n, b)| (0..n).map(|i| b.wrapping_add((i % 7) as u8)).collect()),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
        2 => (-1000i32..1000).prop_map(f64::from),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => -1e6f64..1e6,
    ]
}

fn value() -> impl Strategy<Value = RdbValue> {
    prop_oneof![
        3 => big_bytes().prop_map(RdbValue::String),
        2 => proptest::collection::vec(big_bytes(), 0..300).prop_map(RdbValue::List),
        2 => proptest::collection::btree_set(bytes(), 0..200).prop_map(|s| RdbValue::Set(s.into_iter().collect())),
        2 => proptest::collection::btree_map(bytes(), big_bytes(), 0..200)
            .prop_map(|m| RdbValue::Hash(m.into_iter().collect())),
        2 => proptest::collection::btree_map(bytes(), score(), 0..200)
            .prop_map(|m| RdbValue::ZSet(m.into_iter().collect())),
        2 => stream(),
    ]
}

/// A stream: ids rising by small and large steps (sequence deltas that wrap), entries sharing
/// or not their node's field names, and groups whose PEL entries belong to their consumers.
fn stream() -> impl Strategy<Value = RdbValue> {
    let entry = (
        prop_oneof![Just(0u64), Just(1), 0..u64::from(u32::MAX)],
        0u64..3,
        prop_oneof![
            Just(vec![
                (b"f".to_vec(), b"1".to_vec()),
                (b"g".to_vec(), b"x".to_vec())
            ]),
            proptest::collection::vec((bytes(), big_bytes()), 1..4),
        ],
    );
    let group = (
        proptest::collection::vec((any::<u64>(), 0u64..9, 0usize..3), 0..6),
        prop_oneof![Just(-1i64), 0i64..1000],
    );
    (
        0u64..1 << 45,
        proptest::collection::vec(entry, 0..250),
        proptest::collection::btree_map(bytes(), group, 0..3),
        0u64..5,
    )
        .prop_map(|(start, steps, groups, extra)| {
            let (mut ms, mut seq) = (start, 0u64);
            let mut entries = Vec::new();
            for (dms, dseq, fields) in steps {
                if dms == 0 {
                    seq += 1 + dseq;
                } else {
                    ms += dms;
                    seq = dseq;
                }
                entries.push(((ms, seq), fields));
            }
            let ids: Vec<(u64, u64)> = entries.iter().map(|e| e.0).collect();
            let groups = groups
                .into_iter()
                .map(|(name, (pel, read))| {
                    let mut owned: BTreeMap<(u64, u64), (u64, u64, usize)> = BTreeMap::new();
                    for (pick, count, owner) in pel {
                        if !ids.is_empty() {
                            let id = ids[(pick % ids.len() as u64) as usize];
                            owned.insert(id, (pick >> 20, count, owner));
                        }
                    }
                    let consumers = (0..3)
                        .map(|c| RdbConsumer {
                            name: format!("consumer-{c}").into_bytes(),
                            seen_time: 1_700_000_000_000 + c as u64,
                            pel: owned
                                .iter()
                                .filter(|(_, v)| v.2 == c)
                                .map(|(id, _)| *id)
                                .collect(),
                        })
                        .collect();
                    RdbGroup {
                        name,
                        last_id: ids.last().copied().unwrap_or_default(),
                        entries_read: Some(read),
                        pel: owned.iter().map(|(id, v)| (*id, v.0, v.1)).collect(),
                        consumers,
                    }
                })
                .collect();
            RdbValue::Stream(Box::new(RdbStream {
                meta: RdbStreamMeta {
                    last_id: ids.last().copied().unwrap_or((start, 7)),
                    first_id: ids.first().copied().unwrap_or_default(),
                    max_deleted: (extra, 0),
                    entries_added: entries.len() as u64 + extra,
                },
                entries,
                groups,
            }))
        })
}

fn dataset() -> impl Strategy<Value = Dataset> {
    proptest::collection::btree_map(
        prop_oneof![Just(0u32), Just(1), Just(15), Just(300)],
        proptest::collection::btree_map(
            bytes(),
            (value(), proptest::option::of(0u64..=i64::MAX as u64)),
            0..12,
        ),
        0..4,
    )
}

proptest! {
    #![proptest_config(Config { cases: 48, rng_seed: RngSeed::Fixed(0x007a_4de3), failure_persistence: None, ..Config::default() })]

    #[test]
    fn writer_output_reads_back(data in dataset(), compression in any::<bool>(), checksum in any::<bool>()) {
        check_round_trip(&data, WriterOptions { compression, checksum });
    }
}

/// Loads `bytes`, asserting no panic and bounded allocation; returns whether it loaded.
fn load_bounded(bytes: &[u8]) -> bool {
    let before = allocated_by_this_thread();
    let result = read(bytes);
    let used = allocated_by_this_thread() - before;
    // The reader's 64 KiB buffer plus values bounded by the input (LZF at most 88x).
    let bound = 256 * 1024 + 100 * bytes.len() as u64;
    assert!(
        used <= bound,
        "allocated {used} bytes for a {}-byte input",
        bytes.len()
    );
    result.is_ok()
}

fn sweep(name: &str, bytes: &[u8]) {
    assert!(load_bounded(bytes), "{name} must load intact");
    for cut in 0..bytes.len() {
        assert!(
            !load_bounded(&bytes[..cut]),
            "{name} truncated at {cut} must be refused"
        );
    }
    let mut loaded = 0;
    let mut copy = bytes.to_vec();
    for i in 0..bytes.len() {
        for mask in [0xFF, 0x01, 0x80, 0x40] {
            copy[i] ^= mask;
            loaded += usize::from(load_bounded(&copy));
            copy[i] ^= mask;
        }
        for forced in [0x00, 0xFF, 0xFE, 0xC3, 0x81] {
            let old = copy[i];
            copy[i] = forced;
            loaded += usize::from(load_bounded(&copy));
            copy[i] = old;
        }
    }
    println!(
        "{name}: {} bytes, {loaded} of {} mutations still loaded",
        bytes.len(),
        bytes.len() * 9
    );
}

#[test]
fn corruption_sweep_over_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb");
    for name in [
        "legacy-encodings",
        "legacy-hash-zipmap",
        "legacy-hash-ziplist",
        "legacy-list-quicklist",
        "legacy-zset-ziplist",
        "legacy-scriptbackup",
    ] {
        let bytes = std::fs::read(dir.join(format!("{name}.rdb"))).unwrap();
        sweep(name, &bytes);
    }
}

#[test]
fn corruption_sweep_over_writer_output() {
    let mut db = BTreeMap::new();
    db.insert(
        b"s".to_vec(),
        (RdbValue::String(b"hello".to_vec()), Some(1_900_000_000_000)),
    );
    db.insert(b"i".to_vec(), (RdbValue::String(b"-12345".to_vec()), None));
    db.insert(b"z".to_vec(), (RdbValue::String(b"abc".repeat(20)), None));
    db.insert(
        b"l".to_vec(),
        (
            RdbValue::List(vec![b"a".to_vec(), b"17".to_vec(), b"x".repeat(30)]),
            None,
        ),
    );
    db.insert(
        b"p".to_vec(),
        (RdbValue::List(vec![b"p".repeat(4100)]), None),
    );
    db.insert(
        b"e".to_vec(),
        (RdbValue::Set(vec![b"m1".to_vec(), b"m2".to_vec()]), None),
    );
    db.insert(
        b"h".to_vec(),
        (
            RdbValue::Hash(vec![
                (b"f".to_vec(), b"v".to_vec()),
                (b"g".to_vec(), b"1".to_vec()),
            ]),
            None,
        ),
    );
    db.insert(
        b"H".to_vec(),
        (RdbValue::Hash(vec![(b"f".to_vec(), b"v".repeat(70))]), None),
    );
    db.insert(
        b"q".to_vec(),
        (
            RdbValue::ZSet(vec![(b"a".to_vec(), 1.5), (b"b".to_vec(), -2.0)]),
            None,
        ),
    );
    db.insert(
        b"Q".to_vec(),
        (RdbValue::ZSet(vec![(b"a".repeat(70), 3.25)]), None),
    );
    let data: Dataset = [(0, db)].into_iter().collect();
    for (compression, checksum) in [(true, false), (false, false), (true, true)] {
        let bytes = write(
            &data,
            WriterOptions {
                compression,
                checksum,
            },
        );
        sweep(
            &format!("writer output (compression {compression}, checksum {checksum})"),
            &bytes,
        );
    }
}

#[test]
fn hostile_lengths_do_not_allocate() {
    // A set claiming 2^32 members, a string claiming 2^62 bytes, an LZF string claiming 2^31
    // bytes from 3 bytes of data: all must fail fast without reserving their claims.
    let cases: [&[u8]; 3] = [
        b"REDIS0009\x02\x01k\x80\xff\xff\xff\xff\x01a",
        b"REDIS0009\x00\x01k\x81\x40\x00\x00\x00\x00\x00\x00\x00abc",
        b"REDIS0009\x00\x01k\xc3\x03\x80\x80\x00\x00\x00\x00aa\xff",
    ];
    for case in cases {
        assert!(!load_bounded(case));
    }
}

#[test]
fn checksum_mismatch_is_reported() {
    let data: Dataset = [(
        0,
        [(b"k".to_vec(), (RdbValue::String(b"v".to_vec()), None))]
            .into_iter()
            .collect(),
    )]
    .into_iter()
    .collect();
    let mut bytes = write(&data, WriterOptions::default());
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    let err = read(&bytes).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("RDB checksum mismatch: file says"),
        "{err}"
    );
}

#[test]
fn redis_minimal_files_from_the_spec() {
    // Spec 8.9: one key k=v, and the empty dataset, both with real CRCs.
    let one = b"REDIS0009\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff\xa7\x02\x8b\xb2\xcd\xd0\xb0\x03";
    let (entries, _) = read(one).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].value, RdbValue::String(b"v".to_vec()));
    let empty = b"REDIS0009\xff\x9a\xac\x7a\xbc\xfb\x0f\xad\x74";
    assert!(read(empty).unwrap().0.is_empty());
}

/// A Redis 5/6 stream (STREAM_LISTPACKS, type 15): no first id, tombstone or entries-added
/// counter, no group read counter. Also the layout of a node: master entry, then an entry
/// using the master fields.
fn old_stream_file(consumer_pel: bool) -> Vec<u8> {
    let id = |ms: u64, seq: u64| {
        let mut b = ms.to_be_bytes().to_vec();
        b.extend_from_slice(&seq.to_be_bytes());
        b
    };
    // count 1, deleted 0, 1 field "f", 0 | flags SAMEFIELDS, ms+0, seq+0, "v", lp-count 4.
    let elements: &[&[u8]] = &[
        b"\x01\x01",
        b"\x00\x01",
        b"\x01\x01",
        b"\x81f\x02",
        b"\x00\x01",
        b"\x02\x01",
        b"\x00\x01",
        b"\x00\x01",
        b"\x81v\x02",
        b"\x04\x01",
    ];
    let mut lp = vec![0u8; 6];
    elements.iter().for_each(|e| lp.extend_from_slice(e));
    lp.push(0xff);
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&10u16.to_le_bytes());
    let mut f = b"REDIS0009\x0f\x01s\x01\x10".to_vec();
    f.extend(id(5, 1));
    f.push(lp.len() as u8);
    f.extend(&lp);
    // length 1, last id 5-1, one group "g" at 5-1 with 5-1 pending (time, count 2).
    f.extend_from_slice(b"\x01\x05\x01\x01\x01g\x05\x01\x01");
    f.extend(id(5, 1));
    f.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
    f.extend_from_slice(b"\x02\x01\x01c");
    f.extend_from_slice(&1_700_000_000_500u64.to_le_bytes());
    if consumer_pel {
        f.push(1);
        f.extend(id(5, 1));
    } else {
        f.push(0);
    }
    f.push(0xff);
    f.extend_from_slice(&[0; 8]);
    f
}

#[test]
fn streams_of_the_older_type_read_with_redis_defaults() {
    let (entries, _) = read(&old_stream_file(true)).unwrap();
    let RdbValue::Stream(s) = &entries[0].value else {
        panic!("expected a stream, got {:?}", entries[0].value)
    };
    assert_eq!(
        s.entries,
        vec![((5, 1), vec![(b"f".to_vec(), b"v".to_vec())])]
    );
    assert_eq!(
        s.meta,
        RdbStreamMeta {
            last_id: (5, 1),
            first_id: (5, 1),
            max_deleted: (0, 0),
            entries_added: 1,
        }
    );
    let g = &s.groups[0];
    assert_eq!(
        (g.entries_read, &g.pel),
        (None, &vec![((5, 1), 1_700_000_000_000, 2)])
    );
    assert_eq!(g.consumers[0].pel, vec![(5, 1)]);
    // A pending entry no consumer owns is refused.
    let err = read(&old_stream_file(false)).unwrap_err().to_string();
    assert!(
        err.contains("PEL entry without exactly one consumer"),
        "{err}"
    );
}

#[test]
fn duplicate_members_are_refused() {
    let dup_set = b"REDIS0009\x02\x01k\x02\x01a\x01a\xff\x00\x00\x00\x00\x00\x00\x00\x00";
    let err = read(dup_set).unwrap_err().to_string();
    assert!(err.contains("Duplicate set members detected"), "{err}");
    let dup_hash =
        b"REDIS0009\x04\x01k\x02\x01a\x01b\x01a\x01c\xff\x00\x00\x00\x00\x00\x00\x00\x00";
    assert!(
        read(dup_hash)
            .unwrap_err()
            .to_string()
            .contains("Duplicate hash fields")
    );
    let nan = b"REDIS0009\x03\x01k\x01\x01a\xfd\xff\x00\x00\x00\x00\x00\x00\x00\x00";
    assert!(read(nan).unwrap_err().to_string().contains("NAN"));
}

#[test]
fn old_and_rare_opcodes() {
    // EXPIRETIME in seconds, FREQ and IDLE before a key, FUNCTION2, no checksum.
    let mut file = b"REDIS0009".to_vec();
    file.extend_from_slice(&[0xf5, 0x05]);
    file.extend_from_slice(b"#!lua");
    file.push(0xfd);
    file.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    file.extend_from_slice(b"\x00\x01k\x01v\xf9\x05\xf8\x03\x00\x01j\x01w\xff");
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(b"+after");
    let mut r = RdbReader::new(&file[..]).unwrap();
    assert_eq!(
        r.next_item().unwrap(),
        Some(Item::Function(b"#!lua".to_vec()))
    );
    let Some(Item::Entry(k)) = r.next_item().unwrap() else {
        panic!("expected k")
    };
    assert_eq!(k.expire_ms, Some(2_000_000_000_000));
    let Some(Item::Entry(j)) = r.next_item().unwrap() else {
        panic!("expected j")
    };
    assert_eq!((j.key.as_slice(), j.expire_ms), (&b"j"[..], None));
    assert_eq!(r.next_item().unwrap(), None);
    // Whatever follows the RDB on a replication stream is handed back.
    let (_, rest) = r.into_parts();
    assert_eq!(rest, b"+after");

    let refused: [(&[u8], &str); 4] = [
        (b"REDIS0010\xf6", "Pre-release function format"),
        (b"REDIS0010\xf7\x01", "module AUX"),
        // Redis 7.2's stream type (consumers' active time): not a 7.0 file.
        (b"REDIS0010\x15\x01k", "stream"),
        (b"REDIS0010\x08\x01k", "Unknown RDB encoding type 8"),
    ];
    for (bytes, msg) in refused {
        let err = read(bytes).unwrap_err().to_string();
        assert!(err.contains(msg), "{err}");
    }
}

/// One edit of a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    /// Overwrites with a 32-bit (`0x80`) or 64-bit (`0x81`) length encoding of a huge value:
    /// wherever it lands on a length field, the file claims gigabytes it does not hold.
    Inflate(prop::sample::Index, u64),
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop::sample::select(vec![
        1u64 << 31,
        (1 << 31) - 1,
        u64::from(u32::MAX),
        2_000_000_000,
        1 << 40,
        1 << 62,
        u64::MAX,
    ]);
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), huge).prop_map(|(i, v)| Mutation::Inflate(i, v)),
        (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i, mask) => bytes[i.index(len)] ^= mask,
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::Inflate(i, v) => {
            let at = i.index(bytes.len());
            let enc: Vec<u8> = match u32::try_from(*v) {
                Ok(small) => [&[0x80][..], &small.to_be_bytes()].concat(),
                Err(_) => [&[0x81][..], &v.to_be_bytes()].concat(),
            };
            let end = (at + enc.len()).min(bytes.len());
            bytes.splice(at..end, enc);
        }
        Mutation::Delete(i, n) => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Insert(i, b) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, b.iter().copied());
        }
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rdb"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 10, "fixtures found: {}", out.len());
    out
}

/// Bytes a load may allocate in all (not just at its peak) for an input of `len` bytes: the
/// reader's 64 KiB buffer, a fresh keyspace, and values bounded by the input (LZF at most
/// 88x, plus per-element overhead). A reservation made on a length header's word alone
/// (2 GB and more here) cannot fit.
fn allocation_bound(len: usize) -> u64 {
    8 * 1024 * 1024 + 200 * len as u64
}

/// Loads `bytes` the way a replica loads a full sync (reader, conversion into keyspace
/// values, duplicate-key check), asserting bounded allocation; returns whether it loaded.
fn replica_load_bounded(bytes: &[u8]) -> bool {
    use tandem_server::rdb::convert::LoadLimits;
    let limits = LoadLimits::from_config(&tandem_server::config::Config::default());
    let before = allocated_by_this_thread();
    let result = tandem_server::replication::loader::load_rdb(bytes, 16, limits);
    let ok = result.is_ok();
    drop(result);
    let used = allocated_by_this_thread() - before;
    assert!(
        used <= allocation_bound(bytes.len()),
        "allocated {used} bytes for a {}-byte input",
        bytes.len()
    );
    ok
}

proptest! {
    #![proptest_config(Config { cases: 512, rng_seed: RngSeed::Fixed(0x5ec_0011), failure_persistence: None, ..Config::default() })]

    /// Every fixture Redis wrote, mutated by flips, overwrites, huge length fields,
    /// deletions and insertions: the replica's loader returns a typed error or a dataset,
    /// never panics, and allocates within the input's bound.
    #[test]
    fn mutated_fixtures_load_or_fail_within_bounds(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 1..5),
    ) {
        let all = fixtures();
        let (_, original) = &all[file.index(all.len())];
        let mut bytes = original.clone();
        for m in &edits {
            apply(&mut bytes, m);
        }
        replica_load_bounded(&bytes);
        // The reader alone must agree that a file either loads or is refused.
        let _ = read(&bytes);
    }

    /// A full-sync transfer with a hostile preamble (`$` and a length up to 2^64-1, or an
    /// `$EOF:` mark) around a mutated fixture, delivered in reads of any size: the payload
    /// grows only with bytes that arrived and the load stays within the bound.
    #[test]
    fn hostile_full_sync_transfers_stay_bounded(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 0..3),
        declared in prop_oneof![Just(None), any::<u64>().prop_map(Some), (0u64..1 << 20).prop_map(Some)],
        read_size in 1usize..70_000,
    ) {
        use tandem_server::replication::framing::{Payload, parse_preamble, take_line};
        let all = fixtures();
        let (_, original) = &all[file.index(all.len())];
        let mut rdb = original.clone();
        for m in &edits {
            apply(&mut rdb, m);
        }
        const MARK: &[u8] = b"f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";
        let mut wire = match declared {
            Some(n) => format!("${n}\r\n").into_bytes(),
            None => [b"$EOF:", MARK, b"\r\n"].concat(),
        };
        wire.extend_from_slice(&rdb);
        if declared.is_none() {
            wire.extend_from_slice(MARK);
        }
        let before = allocated_by_this_thread();
        let line = take_line(&mut wire).expect("short line").expect("a line");
        let framing = parse_preamble(&line).expect("a preamble").expect("not a keepalive");
        let mut payload = Payload::new(framing);
        let mut body = Vec::new();
        let mut at = 0;
        while at < wire.len() && !payload.is_complete() {
            let n = read_size.min(wire.len() - at);
            at += payload.feed(&wire[at..at + n], &mut body);
        }
        let complete = payload.is_complete();
        let rdb_len = payload.received();
        let used = allocated_by_this_thread() - before;
        prop_assert!(
            used <= allocation_bound(wire.len()),
            "allocated {} bytes receiving {} bytes (declared {:?})", used, wire.len(), declared
        );
        prop_assert!(rdb_len <= wire.len() as u64);
        if complete {
            replica_load_bounded(&body);
        }
    }
}
