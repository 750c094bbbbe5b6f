//! The dataset as commands, as Redis 7.0's rewrite writes a base file with
//! `aof-use-rdb-preamble no` (`rewriteAppendOnlyFileRio`): FUNCTION LOAD for each library,
//! then per non-empty database a SELECT and for each key SET, RPUSH, SADD, ZADD or HMSET
//! (at most 64 items a command), a stream's XADDs, XSETID, XGROUP CREATE, XCLAIMs and
//! XGROUP CREATECONSUMER, and PEXPIREAT for a key with an expiry.
//!
//! It converts an RDB stream (the snapshot the rewrite writes) item by item, so it needs
//! no keyspace: the writer thread turns the RDB base into this form after writing it.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::protocol::format_double;
use crate::rdb::{Item, RdbEntry, RdbError, RdbReader, RdbStream, RdbStreamId, RdbValue};
use crate::state::replication::feed::encode;

/// Items per variadic command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// Writes the commands that rebuild the dataset of `rdb` to `out`.
///
/// # Errors
/// The RDB stream is refused, or `out` fails.
pub fn rdb_to_commands<R: Read, W: Write>(
    mut rdb: RdbReader<R>,
    out: &mut W,
) -> Result<(), RdbError> {
    let mut db = None;
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(item) = rdb.next_item()? {
        match item {
            Item::Function(code) => encode(&mut buf, &[b"FUNCTION".as_slice(), b"LOAD", &code]),
            Item::Entry(e) => {
                if db != Some(e.db) {
                    encode(
                        &mut buf,
                        &[b"SELECT".to_vec(), e.db.to_string().into_bytes()],
                    );
                    db = Some(e.db);
                }
                entry(&mut buf, &e);
            }
            Item::Aux { .. } | Item::SelectDb(_) | Item::ResizeDb { .. } => {}
        }
        if buf.len() >= 32 * 1024 {
            out.write_all(&buf).map_err(RdbError::Write)?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(RdbError::Write)
}

/// Rewrites the RDB file at `path` in place into commands (temp file, fsync, rename).
///
/// # Errors
/// The file cannot be read, converted or written; `path` is left as it was.
pub fn convert_file(path: &Path) -> Result<(), RdbError> {
    let tmp = path.with_extension("commands-tmp");
    let res = (|| {
        let rdb = RdbReader::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(RdbError::Write)?,
        ))?;
        let file = std::fs::File::create(&tmp).map_err(RdbError::Write)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        rdb_to_commands(rdb, &mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| RdbError::Write(e.into_error()))?;
        file.sync_all().map_err(RdbError::Write)?;
        std::fs::rename(&tmp, path).map_err(RdbError::Write)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn id(i: RdbStreamId) -> Vec<u8> {
    format!("{}-{}", i.0, i.1).into_bytes()
}

/// Emits `head` followed by `items` in commands of at most [`ITEMS_PER_CMD`] items.
fn variadic(buf: &mut Vec<u8>, head: &[&[u8]], items: &[Vec<u8>], per_item: usize) {
    for chunk in items.chunks(ITEMS_PER_CMD * per_item) {
        let mut argv: Vec<&[u8]> = head.to_vec();
        argv.extend(chunk.iter().map(Vec::as_slice));
        encode(buf, &argv);
    }
}

fn entry(buf: &mut Vec<u8>, e: &RdbEntry) {
    let key = e.key.as_slice();
    match &e.value {
        RdbValue::String(v) => encode(buf, &[b"SET".as_slice(), key, v]),
        RdbValue::List(items) => variadic(buf, &[b"RPUSH", key], items, 1),
        RdbValue::Set(members) => variadic(buf, &[b"SADD", key], members, 1),
        RdbValue::ZSet(pairs) => {
            let flat: Vec<Vec<u8>> = pairs
                .iter()
                .flat_map(|(m, s)| [format_double(*s).into_bytes(), m.clone()])
                .collect();
            variadic(buf, &[b"ZADD", key], &flat, 2);
        }
        RdbValue::Hash(pairs) => {
            let flat: Vec<Vec<u8>> = pairs
                .iter()
                .flat_map(|(f, v)| [f.clone(), v.clone()])
                .collect();
            variadic(buf, &[b"HMSET", key], &flat, 2);
        }
        RdbValue::Stream(s) => stream(buf, key, s),
    }
    if let Some(at) = e.expire_ms {
        encode(
            buf,
            &[b"PEXPIREAT".as_slice(), key, at.to_string().as_bytes()],
        );
    }
}

fn stream(buf: &mut Vec<u8>, key: &[u8], s: &RdbStream) {
    if s.entries.is_empty() {
        // Redis's XADD MAXLEN 0 trick makes an empty stream.
        encode(
            buf,
            &[b"XADD".as_slice(), key, b"MAXLEN", b"0", b"0-1", b"x", b"y"],
        );
    }
    for (eid, fields) in &s.entries {
        let eid = id(*eid);
        let mut argv: Vec<&[u8]> = vec![b"XADD", key, &eid];
        for (f, v) in fields {
            argv.push(f);
            argv.push(v);
        }
        encode(buf, &argv);
    }
    let m = &s.meta;
    encode(
        buf,
        &[
            b"XSETID".as_slice(),
            key,
            &id(m.last_id),
            b"ENTRIESADDED",
            m.entries_added.to_string().as_bytes(),
            b"MAXDELETEDID",
            &id(m.max_deleted),
        ],
    );
    for g in &s.groups {
        let pel: HashMap<RdbStreamId, (u64, u64)> =
            g.pel.iter().map(|&(i, t, n)| (i, (t, n))).collect();
        encode(
            buf,
            &[
                b"XGROUP".as_slice(),
                b"CREATE",
                key,
                &g.name,
                &id(g.last_id),
                b"ENTRIESREAD",
                g.entries_read.unwrap_or(-1).to_string().as_bytes(),
            ],
        );
        for c in &g.consumers {
            if c.pel.is_empty() {
                encode(
                    buf,
                    &[
                        b"XGROUP".as_slice(),
                        b"CREATECONSUMER",
                        key,
                        &g.name,
                        &c.name,
                    ],
                );
                continue;
            }
            for pid in &c.pel {
                let (time, count) = pel.get(pid).copied().unwrap_or((0, 0));
                encode(
                    buf,
                    &[
                        b"XCLAIM".as_slice(),
                        key,
                        &g.name,
                        &c.name,
                        b"0",
                        &id(*pid),
                        b"TIME",
                        time.to_string().as_bytes(),
                        b"RETRYCOUNT",
                        count.to_string().as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}
