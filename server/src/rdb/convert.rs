//! Keyspace values to RDB and back. Saving calls the writer's borrowed-data methods on the
//! value in place (one match arm per type, no copy of the value); loading turns a format
//! value into the keyspace's representation.
//!
//! This module must not decide policy (expiry, duplicates, which keys to save): the producer
//! and the loader do.

use std::cell::RefCell;
use std::io::Write;

use super::{
    RdbConsumer, RdbError, RdbGroup, RdbStream, RdbStreamId, RdbStreamMeta, RdbValue, RdbWriter,
};
use crate::config::Config;
use crate::keyspace::hash::Limits as HashLimits;
use crate::keyspace::set::Member;
use crate::keyspace::stream::block::NodeLimits;
use crate::keyspace::stream::group::Group;
use crate::keyspace::stream::{Meta, Stream, StreamId};
use crate::keyspace::zset::{PackLimits, ZSet};
use crate::keyspace::{End, Entry, Hash, List, Set, SmallBytes, Value};
use hashbrown::HashMap;

/// Writes one key with its value and expiry.
///
/// # Errors
/// The destination failed, or the value is one Redis would refuse to load.
pub fn write_entry<W: Write>(w: &mut RdbWriter<W>, e: &Entry) -> Result<(), RdbError> {
    write_value(w, e.key.as_bytes(), e.expire_at(), &e.value)
}

/// Writes one value under `key` with an optional expiry (an entry, or a DUMP payload's value
/// under an empty key).
///
/// # Errors
/// The destination failed, or the value is one Redis would refuse to load.
pub fn write_value<W: Write>(
    w: &mut RdbWriter<W>,
    key: &[u8],
    expire: Option<u64>,
    value: &Value,
) -> Result<(), RdbError> {
    match value {
        Value::Str(s) => w.string(key, s, expire),
        Value::Hash(h) => w.hash_as(
            key,
            expire,
            Restartable::new(&**h, h.len(), Hash::iter),
            h.encoding() == "listpack",
        ),
        Value::Set(s) if let Set::Ints(ints) = &**s => {
            w.intset(key, expire, ints.width(), ints.len(), ints.packed())
        }
        Value::Set(s) => w.set(
            key,
            expire,
            Restartable::new(&**s, s.len(), Set::iter).map(MemberText::from),
        ),
        Value::List(l) => w.list(key, expire, Restartable::new(&**l, l.len(), List::iter)),
        Value::Zset(z) => w.zset_as(
            key,
            expire,
            Restartable::new(&**z, z.len(), ZSet::iter),
            z.encoding() == "listpack",
        ),
        Value::Stream(s) => {
            let m = s.meta();
            w.stream(
                key,
                expire,
                s.range(StreamId::MIN, StreamId::MAX)
                    .map(|e| (rdb_id(e.id), e.fields())),
                &RdbStreamMeta {
                    last_id: rdb_id(m.last_id),
                    first_id: rdb_id(m.first_id),
                    max_deleted: rdb_id(m.max_deleted),
                    entries_added: m.entries_added,
                },
                &rdb_groups(s),
            )
        }
    }
}

fn rdb_id(id: StreamId) -> RdbStreamId {
    (id.ms, id.seq)
}

fn stream_id((ms, seq): RdbStreamId) -> StreamId {
    StreamId::new(ms, seq)
}

/// A stream's groups in the format's shape (a copy: groups are small beside the entries).
fn rdb_groups(s: &Stream) -> Vec<RdbGroup> {
    s.groups
        .iter()
        .map(|(name, g)| RdbGroup {
            name: name.to_vec(),
            last_id: rdb_id(g.last_id),
            entries_read: Some(g.entries_read),
            pel: g
                .pel
                .iter()
                .map(|(id, p)| (rdb_id(*id), p.delivery_time, p.delivery_count))
                .collect(),
            consumers: g
                .consumers
                .iter()
                .map(|(name, c)| RdbConsumer {
                    name: name.to_vec(),
                    seen_time: c.seen_time,
                    pel: c.pel.iter().map(|id| rdb_id(*id)).collect(),
                })
                .collect(),
        })
        .collect()
}

/// The keyspace stream of a loaded one; a group from a file older than 7.0 gets the read
/// counter Redis estimates for it.
fn stream_from_rdb(r: RdbStream, limits: NodeLimits) -> Stream {
    let mut s = Stream::default();
    for (id, fields) in &r.entries {
        s.append(
            stream_id(*id),
            fields.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
            limits,
        );
    }
    // A last id below the last entry (a damaged file) would let XADD go backwards.
    let top = r.entries.last().map_or((0, 0), |e| e.0);
    s.set_meta(Meta {
        last_id: stream_id(r.meta.last_id.max(top)),
        first_id: stream_id(r.meta.first_id),
        max_deleted: stream_id(r.meta.max_deleted),
        entries_added: r.meta.entries_added,
    });
    for g in r.groups {
        let last_id = stream_id(g.last_id);
        let read = g.entries_read.unwrap_or_else(|| s.entries_before(last_id));
        let mut group = Group::new(last_id, read);
        for c in &g.consumers {
            group.consumer(&c.name, c.seen_time);
        }
        let owners: HashMap<RdbStreamId, &[u8]> = g
            .consumers
            .iter()
            .flat_map(|c| c.pel.iter().map(move |id| (*id, c.name.as_slice())))
            .collect();
        for (id, time, count) in &g.pel {
            let owner = owners.get(id).copied().unwrap_or_default();
            group.deliver(stream_id(*id), owner, *time, *count);
        }
        s.groups.insert(SmallBytes::from_vec(g.name), group);
    }
    s
}

/// Limits the loaded values' encodings follow (the `*-max-*` directives).
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    pub hash: HashLimits,
    pub max_intset: usize,
    pub zset: PackLimits,
    pub stream: NodeLimits,
}

impl LoadLimits {
    pub fn from_config(c: &Config) -> Self {
        LoadLimits {
            hash: HashLimits {
                max_entries: usize::try_from(c.hash_max_listpack_entries).unwrap_or(usize::MAX),
                max_value: usize::try_from(c.hash_max_listpack_value).unwrap_or(usize::MAX),
            },
            max_intset: usize::try_from(c.set_max_intset_entries).unwrap_or(usize::MAX),
            zset: PackLimits {
                max_entries: c.zset_max_listpack_entries,
                max_value: c.zset_max_listpack_value,
            },
            stream: NodeLimits {
                max_entries: c.stream_node_max_entries,
                max_bytes: c.stream_node_max_bytes,
            },
        }
    }
}

/// The keyspace value for a loaded RDB value, in the encoding Redis would give it.
pub fn from_rdb(value: RdbValue, limits: LoadLimits) -> Value {
    match value {
        RdbValue::String(s) => Value::Str(SmallBytes::from_vec(s)),
        // The reader refused repeated fields.
        RdbValue::Hash(pairs) => Value::Hash(Box::new(Hash::from_distinct(
            pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
            limits.hash,
        ))),
        RdbValue::Set(members) => {
            let mut s = members
                .first()
                .map_or_else(Set::default, |m| Set::for_first(m));
            for m in &members {
                s.add(m, limits.max_intset);
            }
            Value::Set(Box::new(s))
        }
        RdbValue::List(items) => {
            let mut l = List::new();
            for item in &items {
                l.push(End::Right, item);
            }
            Value::List(Box::new(l))
        }
        RdbValue::ZSet(pairs) => Value::Zset(Box::new(ZSet::from_entries(
            pairs.into_iter().map(|(m, s)| (SmallBytes::from_vec(m), s)),
            limits.zset,
        ))),
        RdbValue::Stream(s) => Value::Stream(Box::new(stream_from_rdb(*s, limits.stream))),
    }
}

/// A collection's iterator that knows its length and can be cloned by starting over: the
/// writer looks at a collection before writing it (sizes, listpack eligibility), and the
/// keyspace's iterators borrow the value instead of copying it.
struct Restartable<'a, T, I> {
    src: &'a T,
    start: fn(&'a T) -> I,
    it: I,
    len: usize,
    left: usize,
}

impl<'a, T, I> Restartable<'a, T, I> {
    fn new(src: &'a T, len: usize, start: fn(&'a T) -> I) -> Self {
        Restartable {
            src,
            start,
            it: start(src),
            len,
            left: len,
        }
    }
}

impl<T, I: Iterator> Clone for Restartable<'_, T, I> {
    fn clone(&self) -> Self {
        let mut it = (self.start)(self.src);
        let consumed = self.len - self.left;
        if consumed > 0 {
            it.nth(consumed - 1);
        }
        Restartable { it, ..*self }
    }
}

impl<T, I: Iterator> Iterator for Restartable<'_, T, I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.it.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T, I: Iterator> ExactSizeIterator for Restartable<'_, T, I> {}

/// A set member as the writer takes it: borrowed bytes, or an intset's integer as text (in
/// an inline `SmallBytes`, no allocation).
enum MemberText<'a> {
    Bytes(&'a [u8]),
    Int(SmallBytes),
}

impl<'a> From<Member<'a>> for MemberText<'a> {
    fn from(m: Member<'a>) -> Self {
        match m {
            Member::Bytes(b) => MemberText::Bytes(b),
            Member::Int(_) => MemberText::Int(m.to_bytes()),
        }
    }
}

impl AsRef<[u8]> for MemberText<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            MemberText::Bytes(b) => b,
            MemberText::Int(s) => s.as_bytes(),
        }
    }
}

thread_local! {
    /// Fragment writers (with and without LZF) reused across keys, so encoding a key does
    /// not allocate the writer's buffers again. Snapshots run on the main thread only.
    static FRAGMENT: RefCell<[Option<RdbWriter<Vec<u8>>>; 2]> = const { RefCell::new([None, None]) };
}

/// Appends `e` to `out` as RDB bytes, with LZF compression (`rdbcompression yes`).
pub fn encode_compressed(e: &Entry, out: &mut Vec<u8>) {
    encode(e, out, true);
}

/// Appends `e` to `out` as RDB bytes, without compression.
pub fn encode_plain(e: &Entry, out: &mut Vec<u8>) {
    encode(e, out, false);
}

fn encode(e: &Entry, out: &mut Vec<u8>, compression: bool) {
    FRAGMENT.with_borrow_mut(|writers| {
        let w = writers[usize::from(compression)]
            .get_or_insert_with(|| RdbWriter::fragment(Vec::new(), compression));
        // The writer appends straight into `out`: swap it in, write, swap it back.
        let res = w
            .flushed_output()
            .map(|dest| std::mem::swap(dest, out))
            .and_then(|()| write_entry(w, e))
            .and_then(|()| w.flushed_output().map(|dest| std::mem::swap(dest, out)));
        if let Err(err) = res {
            // Only an invalid value can fail over a Vec; the key is left out of the dump.
            tracing::warn!(
                "Skipping key '{}' in the RDB: {err}",
                String::from_utf8_lossy(&e.key)
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{Aux, Item, RdbReader, WriterOptions};

    #[test]
    fn a_group_from_before_7_0_gets_the_read_counter_redis_estimates() {
        let entries = (1..=3u64)
            .map(|ms| ((ms, 0), vec![(b"f".to_vec(), b"v".to_vec())]))
            .collect();
        let group = |name: &[u8], last_id| crate::rdb::RdbGroup {
            name: name.to_vec(),
            last_id,
            ..crate::rdb::RdbGroup::default()
        };
        let loaded = from_rdb(
            RdbValue::Stream(Box::new(RdbStream {
                entries,
                meta: RdbStreamMeta {
                    last_id: (3, 0),
                    first_id: (1, 0),
                    max_deleted: (0, 0),
                    entries_added: 3,
                },
                groups: vec![
                    group(b"a", (3, 0)),
                    group(b"b", (0, 5)),
                    group(b"c", (2, 0)),
                ],
            })),
            LoadLimits::from_config(&Config::default()),
        );
        let Value::Stream(s) = loaded else {
            panic!("a stream loads as a stream")
        };
        let read: Vec<i64> = s.groups.values().map(|g| g.entries_read).collect();
        // At the last entry: all 3; before the first: none; in the middle: unknown.
        assert_eq!(read, vec![3, 0, -1]);
    }

    #[test]
    fn fragments_concatenate_into_a_valid_stream() {
        let mut body = Vec::new();
        let big = vec![b'x'; 100_000];
        let entries = [
            Entry::new(SmallBytes::new(b"a"), Value::Str(SmallBytes::new(b"1"))),
            Entry::new(SmallBytes::new(b"b"), Value::Str(SmallBytes::new(&big))),
        ];
        for e in &entries {
            encode_compressed(e, &mut body);
        }
        let mut header =
            RdbWriter::new(Vec::new(), WriterOptions::default(), &Aux::default()).expect("header");
        let mut file = std::mem::take(header.flushed_output().expect("flush"));
        file.extend_from_slice(&body);
        let mut tail = RdbWriter::fragment(Vec::new(), true);
        tail.end_of_stream().expect("eof");
        file.extend_from_slice(tail.flushed_output().expect("flush"));
        let mut cw = crate::rdb::ChecksumWriter::new(Vec::new(), true);
        cw.write(&file).expect("write");
        let file = cw.finish().expect("finish");
        let items: Vec<Item> = RdbReader::new(&file[..])
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("valid");
        let keys: Vec<(Vec<u8>, RdbValue)> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Entry(e) => Some((e.key, e.value)),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (b"a".to_vec(), RdbValue::String(b"1".to_vec())),
                (b"b".to_vec(), RdbValue::String(big)),
            ]
        );
    }
}
