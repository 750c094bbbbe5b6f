//! RDB reader and writer throughput on a ~200 MB synthetic dataset. Ignored by default; run
//! by hand in release mode:
//! `cargo test --release -p tandem-server --test rdb_bench -- --ignored --nocapture`

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use tandem_server::rdb::{Aux, Item, RdbReader, RdbValue, RdbWriter, WriterOptions};

/// One block of values (~20 MB) written ten times under different key prefixes: strings of
/// 100 bytes, YCSB-shaped hashes, lists, sets and sorted sets.
fn block() -> Vec<(Vec<u8>, RdbValue)> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut text = |n: usize| -> Vec<u8> { (0..n).map(|_| b'a' + (next() % 26) as u8).collect() };
    let mut out = Vec::new();
    for i in 0..100_000 {
        out.push((format!("str:{i}").into_bytes(), RdbValue::String(text(100))));
    }
    for i in 0..6_000 {
        let fields = (0..10)
            .map(|f| (format!("field{f}").into_bytes(), text(100)))
            .collect();
        out.push((format!("user:{i}").into_bytes(), RdbValue::Hash(fields)));
    }
    for i in 0..200 {
        out.push((
            format!("list:{i}").into_bytes(),
            RdbValue::List((0..500).map(|_| text(20)).collect()),
        ));
        out.push((
            format!("set:{i}").into_bytes(),
            RdbValue::Set(
                (0..500)
                    .map(|j| format!("member-{j}").into_bytes())
                    .collect(),
            ),
        ));
        out.push((
            format!("zset:{i}").into_bytes(),
            RdbValue::ZSet(
                (0..500)
                    .map(|j| (format!("m{j}").into_bytes(), f64::from(j) * 1.5))
                    .collect(),
            ),
        ));
    }
    out
}

#[test]
#[ignore = "throughput measurement: run by hand in release mode"]
fn rdb_throughput() {
    let data = block();
    let path = std::env::temp_dir().join(format!("tandem-rdb-bench-{}.rdb", std::process::id()));
    for compression in [false, true] {
        let opts = WriterOptions {
            compression,
            checksum: true,
        };
        let start = Instant::now();
        let mut w = RdbWriter::new(
            BufWriter::new(File::create(&path).unwrap()),
            opts,
            &Aux::default(),
        )
        .unwrap();
        w.select_db(0, (data.len() * 10) as u64, 0).unwrap();
        let mut key = Vec::new();
        for round in 0..10 {
            for (k, v) in &data {
                key.clear();
                key.extend_from_slice(format!("{round}:").as_bytes());
                key.extend_from_slice(k);
                w.write_value(&key, v, None).unwrap();
            }
        }
        let written = w.bytes_written() + 9;
        w.finish().unwrap();
        let wsecs = start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut keys = 0u64;
        for item in RdbReader::new(File::open(&path).unwrap()).unwrap() {
            if let Item::Entry(_) = item.unwrap() {
                keys += 1;
            }
        }
        let rsecs = start.elapsed().as_secs_f64();
        assert_eq!(keys, (data.len() * 10) as u64);
        let mb = written as f64 / 1e6;
        println!(
            "compression {compression}: {mb:.0} MB, {keys} keys; write {wsecs:.2} s = {:.0} MB/s; read {rsecs:.2} s = {:.0} MB/s",
            mb / wsecs,
            mb / rsecs
        );
    }
    std::fs::remove_file(&path).unwrap();
}
