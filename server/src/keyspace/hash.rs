//! Hashes (field -> value maps): a compact listpack while small, a [`Table`] when large.
//!
//! The compact form keeps every field and value in one contiguous buffer (a varint length
//! before each string, field then value, in insertion order) and is searched linearly, like
//! Redis's listpack: a YCSB record of 10 fields of 100 bytes is one ~1.1 KB allocation.
//!
//! OBJECT ENCODING follows Redis 7.0's rules exactly (`listpack` while at most
//! `hash-max-listpack-entries` pairs and no field or value ever stored was longer than
//! `hash-max-listpack-value`; once `hashtable`, always `hashtable`). The in-memory form may
//! stay compact a little longer than the reported encoding (values up to
//! [`COMPACT_VALUE_MAX`] bytes) because Redis's hashtable costs about twice the memory for
//! such records; what a client sees of a `hashtable` hash (unordered iteration) allows it.
//!
//! This module does not parse commands or know about the keyspace.

use super::SmallBytes;
use super::table::{self, Keyed, Table};
use rand::Rng;

/// Longest field or value the compact form holds, whatever the configured threshold.
pub const COMPACT_VALUE_MAX: usize = 256;

/// The conversion thresholds (`hash-max-listpack-entries`, `hash-max-listpack-value`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// One field and its value in the table form.
#[derive(Debug, Clone)]
pub struct Pair {
    pub field: SmallBytes,
    pub value: SmallBytes,
}

impl Keyed for Pair {
    fn key(&self) -> &[u8] {
        &self.field
    }
}

/// Strings in one buffer, each a LEB128 length then its bytes; pairs alternate field, value.
#[derive(Debug, Clone, Default)]
pub struct Listpack {
    buf: Vec<u8>,
    pairs: u32,
    /// A field or value longer than `hash-max-listpack-value` was stored: Redis 7.0 would have
    /// converted this hash to `hashtable` (for good). Kept here, in the struct's padding, so a
    /// hash stays 32 bytes.
    oversized: bool,
}

/// Bytes a string of `len` bytes takes in a [`Listpack`].
pub fn entry_size(len: usize) -> usize {
    let mut header = 1;
    let mut n = len >> 7;
    while n > 0 {
        header += 1;
        n >>= 7;
    }
    header + len
}

fn put_entry(buf: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
    buf.extend_from_slice(s);
}

/// The entry at `off`: its data range and the offset of the next entry.
fn entry_at(buf: &[u8], off: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    let mut p = off;
    loop {
        let b = buf[p];
        p += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (p, p + len)
}

impl Listpack {
    pub fn len(&self) -> usize {
        self.pairs as usize
    }

    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// Makes room for `bytes` more buffer bytes in one allocation.
    pub fn reserve(&mut self, bytes: usize) {
        self.buf.reserve_exact(bytes);
    }

    /// Offsets of the pair whose field is `field`: (pair start, value start, pair end).
    fn locate(&self, field: &[u8]) -> Option<(usize, usize, usize)> {
        let buf = &self.buf;
        let mut off = 0;
        while off < buf.len() {
            let (fs, fe) = entry_at(buf, off);
            let (_, ve) = entry_at(buf, fe);
            if &buf[fs..fe] == field {
                return Some((off, fe, ve));
            }
            off = ve;
        }
        None
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let (_, voff, _) = self.locate(field)?;
        let (s, e) = entry_at(&self.buf, voff);
        Some(&self.buf[s..e])
    }

    /// Sets a field; true when it was new (appended at the end, as Redis does).
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.locate(field) {
            Some((_, voff, vend)) => {
                let (s, e) = entry_at(&self.buf, voff);
                if e - s == value.len() {
                    self.buf[s..e].copy_from_slice(value);
                } else {
                    let mut enc = Vec::with_capacity(entry_size(value.len()));
                    put_entry(&mut enc, value);
                    self.buf.splice(voff..vend, enc);
                }
                false
            }
            None => {
                let need = entry_size(field.len()) + entry_size(value.len());
                if self.buf.capacity() - self.buf.len() < need {
                    self.buf.reserve_exact(need);
                }
                put_entry(&mut self.buf, field);
                put_entry(&mut self.buf, value);
                self.pairs += 1;
                true
            }
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.locate(field) {
            Some((off, _, end)) => {
                self.buf.drain(off..end);
                self.pairs -= 1;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> ListpackIter<'_> {
        ListpackIter {
            buf: &self.buf,
            off: 0,
        }
    }

    /// Heap bytes of the buffer.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }
}

/// Pairs of a [`Listpack`] in order.
#[derive(Clone)]
pub struct ListpackIter<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Iterator for ListpackIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.buf.len() {
            return None;
        }
        let (fs, fe) = entry_at(self.buf, self.off);
        let (vs, ve) = entry_at(self.buf, fe);
        self.off = ve;
        Some((&self.buf[fs..fe], &self.buf[vs..ve]))
    }
}

#[derive(Debug, Clone)]
enum Repr {
    Pack(Listpack),
    Table(Box<Table<Pair>>),
}

/// A hash value.
#[derive(Debug, Clone)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Hash {
    pub fn new() -> Self {
        Hash {
            repr: Repr::Pack(Listpack::default()),
        }
    }

    /// An empty hash with room for `pairs` pairs taking `bytes` compact bytes (the sum of
    /// [`entry_size`] over fields and values), so a whole HSET lands in one allocation.
    pub fn with_room(pairs: usize, bytes: usize, limits: Limits) -> Self {
        let mut h = Hash::new();
        if pairs <= limits.max_entries
            && let Repr::Pack(lp) = &mut h.repr
        {
            lp.reserve(bytes);
        }
        h
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(lp) => lp.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's answer, as Redis 7.0 would give it for the same history.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(lp) if !lp.oversized => "listpack",
            _ => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(lp) => lp.get(field),
            Repr::Table(t) => t.get(field).map(|p| p.value.as_bytes()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets a field, converting to the table form past the limits; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if let Repr::Pack(lp) = &mut self.repr {
            if field.len() > limits.max_value || value.len() > limits.max_value {
                lp.oversized = true;
            }
            let cap = limits.max_value.max(COMPACT_VALUE_MAX);
            if field.len() <= cap && value.len() <= cap {
                let new = lp.set(field, value);
                if lp.len() > limits.max_entries {
                    self.convert();
                }
                return new;
            }
            self.convert();
        }
        let Repr::Table(t) = &mut self.repr else {
            unreachable!("converted above")
        };
        match t.get_mut(field) {
            Some(p) => {
                p.value = SmallBytes::new(value);
                false
            }
            None => {
                t.insert_new(Pair {
                    field: SmallBytes::new(field),
                    value: SmallBytes::new(value),
                });
                true
            }
        }
    }

    /// Removes a field; true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(lp) => lp.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    fn convert(&mut self) {
        if let Repr::Pack(lp) = &self.repr {
            let mut t = Table::with_capacity(lp.len());
            for (f, v) in lp.iter() {
                t.insert_new(Pair {
                    field: SmallBytes::new(f),
                    value: SmallBytes::new(v),
                });
            }
            self.repr = Repr::Table(Box::new(t));
        }
    }

    /// Pairs in iteration order: insertion order for the compact form.
    pub fn iter(&self) -> HashIter<'_> {
        match &self.repr {
            Repr::Pack(lp) => HashIter::Pack(lp.iter()),
            Repr::Table(t) => HashIter::Table(t.iter()),
        }
    }

    /// A uniformly random pair, `None` when empty.
    pub fn random(&self, rng: &mut impl Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Pack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                lp.iter().nth(rng.random_range(0..lp.len()))
            }
            Repr::Table(t) => t.random(rng).map(|p| (&p.field[..], &p.value[..])),
        }
    }

    /// HSCAN step: visits pairs from `cursor`, returns the next cursor (0 = done). The compact
    /// form is returned whole in one call, as Redis does for listpacks.
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut visit: impl FnMut(&'a [u8], &'a [u8]),
    ) -> u64 {
        match &self.repr {
            Repr::Pack(lp) => {
                lp.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Repr::Table(t) => t.scan(cursor, count, |p| visit(&p.field, &p.value)),
        }
    }

    /// Heap bytes held (for memory estimates).
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Pack(lp) => lp.heap_size(),
            Repr::Table(t) => {
                t.overhead()
                    + t.iter()
                        .map(|p| p.field.heap_size() + p.value.heap_size())
                        .sum::<usize>()
            }
        }
    }
}

/// Pairs of a [`Hash`].
pub enum HashIter<'a> {
    Pack(ListpackIter<'a>),
    Table(table::Iter<'a, Pair>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Pack(it) => it.next(),
            HashIter::Table(it) => it.next().map(|p| (&p.field[..], &p.value[..])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_entries: 128,
        max_value: 64,
    };

    #[test]
    fn listpack_round_trip() {
        let mut lp = Listpack::default();
        assert!(lp.set(b"a", b"1"));
        assert!(lp.set(b"b", &[7u8; 300]));
        assert!(!lp.set(b"a", b"22"));
        assert!(!lp.set(b"b", b"x"));
        assert_eq!(lp.get(b"a"), Some(&b"22"[..]));
        assert_eq!(lp.get(b"b"), Some(&b"x"[..]));
        assert_eq!(lp.get(b"c"), None);
        assert!(lp.remove(b"a"));
        assert!(!lp.remove(b"a"));
        assert_eq!(lp.iter().collect::<Vec<_>>(), vec![(&b"b"[..], &b"x"[..])]);
        assert_eq!(entry_size(127), 128);
        assert_eq!(entry_size(128), 130);
        assert_eq!(entry_size(20000), 20003);
    }

    #[test]
    fn ycsb_record_is_one_small_allocation() {
        let value = [b'v'; 100];
        let mut h = Hash::with_room(10, 10 * (entry_size(6) + entry_size(100)), LIMITS);
        for i in 0..10 {
            h.set(format!("field{i}").as_bytes(), &value, LIMITS);
        }
        assert!(h.heap_size() <= 1080, "{}", h.heap_size());
        assert_eq!(h.encoding(), "hashtable");
        let fields: Vec<_> = h.iter().map(|(f, _)| f.to_vec()).collect();
        assert_eq!(fields[0], b"field0");
        assert_eq!(fields[9], b"field9");
        assert!(std::mem::size_of::<Hash>() <= 32);
    }

    #[test]
    fn encodings_follow_redis() {
        let mut h = Hash::new();
        for i in 0..128 {
            h.set(format!("f{i}").as_bytes(), b"v", LIMITS);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f128", b"v", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 129);
        for i in 0..129 {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        assert!(h.is_empty());
        assert_eq!(h.encoding(), "hashtable");

        let mut h = Hash::new();
        h.set(b"f", &[b'x'; 65], LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        h.set(b"f", b"short", LIMITS);
        assert_eq!(h.encoding(), "hashtable", "conversion is for good");
        h.set(b"g", &[b'x'; 1000], LIMITS);
        assert_eq!(h.get(b"g").map(<[u8]>::len), Some(1000));
        assert_eq!(h.get(b"f"), Some(&b"short"[..]));
    }

    #[test]
    fn scan_and_random() {
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
        let mut h = Hash::new();
        assert!(h.random(&mut rng).is_none());
        for i in 0..300 {
            h.set(format!("f{i}").as_bytes(), b"v", LIMITS);
        }
        let mut n = 0;
        let mut cursor = 0;
        loop {
            cursor = h.scan(cursor, 10, |_, _| n += 1);
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(n, 300);
        assert!(h.random(&mut rng).is_some());
    }
}
