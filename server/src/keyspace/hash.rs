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
use super::packed::{entry_at, entry_size, len_prefix, put_entry, read_varint};

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

/// Field/value pairs in one exact-size allocation: a header (LEB128 of `pairs << 1 |
/// oversized`, one byte up to 63 pairs), then each string as a LEB128 length and its bytes,
/// field then value, in insertion order. The empty listpack allocates nothing. Being a bare
/// boxed slice keeps [`Hash`] at 16 bytes; the one-byte header keeps small records inside the
/// allocator size class Redis's listpack gets.
///
/// `oversized`: a field or value longer than `hash-max-listpack-value` was stored, so Redis
/// 7.0 would have converted this hash to `hashtable` (for good).
#[derive(Debug, Clone, Default)]
pub struct Listpack {
    buf: Box<[u8]>,
}

/// Offsets in a whole listpack buffer of the pair whose field is `field`: (pair start, value
/// start, pair end).
fn locate(buf: &[u8], field: &[u8]) -> Option<(usize, usize, usize)> {
    let mut off = header(buf).2;
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

/// The header of a listpack buffer: (pairs, oversized, header length).
fn header(buf: &[u8]) -> (usize, bool, usize) {
    if buf.is_empty() {
        return (0, false, 0);
    }
    let (v, p) = read_varint(buf, 0);
    (v >> 1, v & 1 == 1, p)
}

fn pair_count(buf: &[u8]) -> usize {
    header(buf).0
}

/// Rewrites the header of an open buffer, moving the entries when its length changes.
fn set_header(v: &mut Vec<u8>, pairs: usize, oversized: bool) {
    let old = header(v).2;
    let (prefix, n) = len_prefix(pairs << 1 | usize::from(oversized));
    if n == old {
        v[..n].copy_from_slice(&prefix[..n]);
    } else {
        v.splice(..old, prefix[..n].iter().copied());
    }
}

/// Sets a field in an open listpack buffer (header present); true when it was new (appended
/// at the end, as Redis does). Never grows capacity beyond what the change needs.
fn buf_set(v: &mut Vec<u8>, field: &[u8], value: &[u8]) -> bool {
    match locate(v, field) {
        Some((_, voff, vend)) => {
            let (s, e) = entry_at(v, voff);
            if e - s == value.len() {
                v[s..e].copy_from_slice(value);
            } else {
                let new_len = entry_size(value.len());
                if new_len > vend - voff {
                    v.reserve_exact(new_len - (vend - voff));
                }
                let (prefix, n) = len_prefix(value.len());
                v.splice(voff..vend, prefix[..n].iter().chain(value.iter()).copied());
            }
            false
        }
        None => {
            let need = entry_size(field.len()) + entry_size(value.len());
            if v.capacity() - v.len() < need {
                v.reserve_exact(need);
            }
            put_entry(v, field);
            put_entry(v, value);
            let (n, oversized, _) = header(v);
            set_header(v, n + 1, oversized);
            true
        }
    }
}

impl Listpack {
    pub fn len(&self) -> usize {
        pair_count(&self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn oversized(&self) -> bool {
        header(&self.buf).1
    }

    /// The buffer as a vector with a header, with room for `extra` more bytes, for a batch
    /// of changes; [`Listpack::close`] puts it back.
    fn open(&mut self, extra: usize) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(extra + usize::from(v.is_empty()));
        if v.is_empty() {
            v.push(0);
        }
        v
    }

    fn close(v: Vec<u8>) -> Listpack {
        Listpack {
            buf: v.into_boxed_slice(),
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let (_, voff, _) = locate(&self.buf, field)?;
        let (s, e) = entry_at(&self.buf, voff);
        Some(&self.buf[s..e])
    }

    /// Sets a field; true when it was new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let mut v = self.open(0);
        let new = buf_set(&mut v, field, value);
        *self = Listpack::close(v);
        new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some((off, _, end)) = locate(&self.buf, field) else {
            return false;
        };
        let mut v = self.open(0);
        v.drain(off..end);
        let (n, oversized, _) = header(&v);
        set_header(&mut v, n - 1, oversized);
        *self = Listpack::close(v);
        true
    }

    pub fn iter(&self) -> ListpackIter<'_> {
        ListpackIter {
            buf: &self.buf,
            off: header(&self.buf).2,
        }
    }

    /// Heap bytes of the buffer.
    pub fn heap_size(&self) -> usize {
        self.buf.len()
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
    /// An empty hash (no allocation until the first field).
    pub fn new() -> Self {
        Hash {
            repr: Repr::Pack(Listpack::default()),
        }
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
            Repr::Pack(lp) if !lp.oversized() => "listpack",
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
        self.set_many(std::iter::once((field, value)), limits) == 1
    }

    /// Sets fields in order (a later duplicate wins), converting to the table form past the
    /// limits; returns how many fields were new. A new hash's buffer is sized once for the
    /// whole batch, so a new YCSB record costs exactly one allocation.
    pub fn set_many<'p>(
        &mut self,
        pairs: impl Iterator<Item = (&'p [u8], &'p [u8])> + Clone,
        limits: Limits,
    ) -> usize {
        let cap = limits.max_value.max(COMPACT_VALUE_MAX);
        let mut open = match &mut self.repr {
            Repr::Pack(lp) => {
                // A new hash gets its whole size at once; an existing one grows by what each
                // new field needs, so updating fields in place never reallocates.
                let need = if lp.is_empty() {
                    pairs
                        .clone()
                        .map(|(f, v)| entry_size(f.len()) + entry_size(v.len()))
                        .sum()
                } else {
                    0
                };
                Some(lp.open(need))
            }
            Repr::Table(_) => None,
        };
        let mut created = 0;
        for (field, value) in pairs {
            if let Some(v) = &mut open {
                if field.len() > limits.max_value || value.len() > limits.max_value {
                    let (n, _, _) = header(v);
                    set_header(v, n, true);
                }
                if field.len() <= cap && value.len() <= cap {
                    created += usize::from(buf_set(v, field, value));
                    if pair_count(v) > limits.max_entries {
                        self.repr = Repr::Table(Box::new(table_of(v)));
                        open = None;
                    }
                    continue;
                }
                self.repr = Repr::Table(Box::new(table_of(v)));
                open = None;
            }
            if let Repr::Table(t) = &mut self.repr {
                match t.get_mut(field) {
                    Some(p) => p.value = SmallBytes::new(value),
                    None => {
                        t.insert_new(Pair {
                            field: SmallBytes::new(field),
                            value: SmallBytes::new(value),
                        });
                        created += 1;
                    }
                }
            }
        }
        if let Some(v) = open {
            self.repr = Repr::Pack(Listpack::close(v));
        }
        created
    }

    /// A new hash of `pairs`, whose fields the caller knows to be distinct (a loaded RDB
    /// value: the reader refuses repeats). The same form and encoding as [`Hash::set_many`]
    /// on an empty hash, but the compact buffer is written in one pass, without looking each
    /// field up in what was written before.
    pub fn from_distinct<'p>(
        pairs: impl Iterator<Item = (&'p [u8], &'p [u8])> + Clone,
        limits: Limits,
    ) -> Hash {
        let cap = limits.max_value.max(COMPACT_VALUE_MAX);
        let (mut n, mut size, mut oversized, mut compact) = (0usize, 0usize, false, true);
        for (f, v) in pairs.clone() {
            let longest = f.len().max(v.len());
            n += 1;
            size += entry_size(f.len()) + entry_size(v.len());
            oversized |= longest > limits.max_value;
            compact &= longest <= cap;
        }
        let mut h = Hash::new();
        if n == 0 || !compact || n > limits.max_entries {
            h.set_many(pairs, limits);
            return h;
        }
        let (prefix, len) = len_prefix(n << 1 | usize::from(oversized));
        let mut v = Vec::with_capacity(len + size);
        v.extend_from_slice(&prefix[..len]);
        for (f, value) in pairs {
            put_entry(&mut v, f);
            put_entry(&mut v, value);
        }
        h.repr = Repr::Pack(Listpack::close(v));
        h
    }

    /// Removes a field; true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(lp) => lp.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
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

/// The table form of an open listpack buffer, in the same order.
fn table_of(v: &[u8]) -> Table<Pair> {
    let mut t = Table::with_capacity(pair_count(v));
    let it = ListpackIter {
        buf: v,
        off: header(v).2,
    };
    for (f, val) in it {
        t.insert_new(Pair {
            field: SmallBytes::new(f),
            value: SmallBytes::new(val),
        });
    }
    t
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
        assert_eq!(lp.heap_size(), 0);
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
    fn header_grows_past_63_pairs() {
        let mut h = Hash::new();
        for i in 0..100 {
            assert!(h.set(format!("f{i}").as_bytes(), b"v", LIMITS));
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.iter().count(), 100);
        assert_eq!(h.get(b"f0"), Some(&b"v"[..]));
        for i in 0..90 {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        assert_eq!(h.len(), 10);
        assert_eq!(h.get(b"f95"), Some(&b"v"[..]));
        assert_eq!(h.encoding(), "listpack");
        h.set(b"long", &[b'x'; 100], LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 11);
    }

    #[test]
    fn ycsb_record_is_one_small_allocation() {
        let value = [b'v'; 100];
        let fields: Vec<String> = (0..10).map(|i| format!("field{i}")).collect();
        let mut h = Hash::new();
        let n = h.set_many(fields.iter().map(|f| (f.as_bytes(), &value[..])), LIMITS);
        assert_eq!(n, 10);
        assert_eq!(h.heap_size(), 1 + 10 * (entry_size(6) + entry_size(100)));
        assert_eq!(h.encoding(), "hashtable");
        let fields: Vec<_> = h.iter().map(|(f, _)| f.to_vec()).collect();
        assert_eq!(fields[0], b"field0");
        assert_eq!(fields[9], b"field9");
        assert_eq!(std::mem::size_of::<Hash>(), 16);
    }

    #[test]
    fn from_distinct_builds_what_set_many_builds() {
        let shapes: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
            // A YCSB record: values over the listpack limit, still compact in memory.
            (0..10)
                .map(|i| (format!("field{i}").into_bytes(), vec![b'v'; 100]))
                .collect(),
            (0..5).map(|i| (vec![b'a' + i], b"1".to_vec())).collect(),
            // Past hash-max-listpack-entries, and past the compact form's value cap.
            (0..129)
                .map(|i| (format!("f{i}").into_bytes(), b"v".to_vec()))
                .collect(),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"big".to_vec(), vec![b'x'; 1000]),
            ],
            Vec::new(),
        ];
        for pairs in shapes {
            let it = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice()));
            let fast = Hash::from_distinct(it.clone(), LIMITS);
            let mut slow = Hash::new();
            slow.set_many(it, LIMITS);
            assert_eq!(fast.encoding(), slow.encoding());
            assert_eq!(fast.heap_size(), slow.heap_size());
            assert_eq!(fast.len(), pairs.len());
            let mut a: Vec<_> = fast.iter().collect();
            let mut b: Vec<_> = slow.iter().collect();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
        }
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
