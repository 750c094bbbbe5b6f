//! Sets: a sorted array of integers (`intset`) while every member is an integer and there are
//! at most `set-max-intset-entries` of them, `hashtable` otherwise, as in Redis 7.0 (which has
//! no listpack sets: that came with 7.2). OBJECT ENCODING follows those rules exactly.
//!
//! The intset stores each integer in the narrowest of 16, 32 or 64 bits that fits every
//! member, widening when needed and never narrowing, like Redis's. What Redis calls a
//! hashtable is held packed ([`Strings`]) while it has at most 128 members of at most 64
//! bytes, and as a [`Table`] beyond: nothing a client sees of a hashtable set (unordered
//! iteration, SSCAN's contract) tells the two apart. Leaving the intset is for good.
//!
//! This module does not parse commands or know about the keyspace.

use super::SmallBytes;
use super::packed::{entry_at, entry_size, len_prefix, put_entry, read_varint};
use super::table::{self, Keyed, Table};
use rand::Rng;

impl Keyed for SmallBytes {
    fn key(&self) -> &[u8] {
        self
    }
}

/// A sorted set of integers in the narrowest width (2, 4 or 8 bytes) that holds them all, in
/// one exact-size allocation: the width byte, then the little-endian integers. The empty set
/// allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct IntSet {
    buf: Box<[u8]>,
}

/// The width in bytes needed to store `x`.
fn width_for(x: i64) -> usize {
    if i16::try_from(x).is_ok() {
        2
    } else if i32::try_from(x).is_ok() {
        4
    } else {
        8
    }
}

fn read_int(b: &[u8]) -> i64 {
    match b.len() {
        2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

fn write_int(out: &mut Vec<u8>, x: i64, width: usize) {
    out.extend_from_slice(&x.to_le_bytes()[..width]);
}

impl IntSet {
    /// Bytes per member: 2, 4 or 8.
    pub fn width(&self) -> usize {
        self.buf.first().map_or(2, |&w| usize::from(w))
    }

    /// The members as stored: sorted, little endian, [`IntSet::width`] bytes each (the body
    /// of Redis's intset, which RDB files and DUMP payloads carry).
    pub fn packed(&self) -> &[u8] {
        self.buf.get(1..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(1) / self.width()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th smallest member.
    pub fn get(&self, i: usize) -> i64 {
        let w = self.width();
        read_int(&self.buf[1 + i * w..1 + (i + 1) * w])
    }

    /// The position of `x`, or where it would go.
    fn search(&self, x: i64) -> Result<usize, usize> {
        if width_for(x) > self.width() {
            return Err(if x < 0 { 0 } else { self.len() });
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(&x) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, x: i64) -> bool {
        self.search(x).is_ok()
    }

    /// Adds `x`, widening every member when `x` needs more bytes; true when it was new.
    pub fn insert(&mut self, x: i64) -> bool {
        let Err(pos) = self.search(x) else {
            return false;
        };
        let (old_w, len) = (self.width(), self.len());
        let w = old_w.max(width_for(x));
        if w == old_w && !self.buf.is_empty() {
            // Same width: grow in place (realloc) and shift the tail, like Redis's intset.
            let mut v = std::mem::take(&mut self.buf).into_vec();
            v.reserve_exact(w);
            let at = 1 + pos * w;
            v.splice(at..at, x.to_le_bytes()[..w].iter().copied());
            self.buf = v.into_boxed_slice();
            return true;
        }
        let mut v = Vec::with_capacity(1 + (len + 1) * w);
        v.push(w as u8);
        for i in 0..pos {
            write_int(&mut v, self.get(i), w);
        }
        write_int(&mut v, x, w);
        for i in pos..len {
            write_int(&mut v, self.get(i), w);
        }
        self.buf = v.into_boxed_slice();
        true
    }

    /// Removes `x`; true when it was present. The width never shrinks, as in Redis.
    pub fn remove(&mut self, x: i64) -> bool {
        let Ok(pos) = self.search(x) else {
            return false;
        };
        let w = self.width();
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(1 + pos * w..1 + (pos + 1) * w);
        self.buf = v.into_boxed_slice();
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }
}

/// A set member as stored: an integer of an intset or the bytes of a table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes (integers in decimal).
    pub fn to_bytes(self) -> SmallBytes {
        match self {
            Member::Int(i) => SmallBytes::from_i64(i),
            Member::Bytes(b) => SmallBytes::new(b),
        }
    }
}

/// Most members a [`Strings`] set holds before it becomes a [`Table`].
const PACKED_MAX_ENTRIES: usize = 128;
/// Longest member a [`Strings`] set holds.
const PACKED_MAX_LEN: usize = 64;

/// A small set of strings in one exact-size allocation: a varint count, then the members as
/// packed entries, searched linearly. Redis 7.0 has no such form (a non-integer set is a
/// `hashtable` there, and is reported as one here too: its iteration order is unspecified,
/// and SSCAN returning it whole is within SCAN's contract); it costs a tenth of a hash table
/// for a set of a few short tags.
#[derive(Debug, Clone, Default)]
pub struct Strings {
    buf: Box<[u8]>,
}

impl Strings {
    pub fn len(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            read_varint(&self.buf, 0).0
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn start(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            read_varint(&self.buf, 0).1
        }
    }

    /// The byte range of the entry holding `m`.
    fn locate(&self, m: &[u8]) -> Option<(usize, usize)> {
        let mut off = self.start();
        while off < self.buf.len() {
            let (s, e) = entry_at(&self.buf, off);
            if &self.buf[s..e] == m {
                return Some((off, e));
            }
            off = e;
        }
        None
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.locate(m).is_some()
    }

    /// Appends a member known to be absent, growing the buffer by exactly its entry.
    fn push(&mut self, m: &[u8]) {
        let count = self.len() + 1;
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(entry_size(m.len()) + usize::from(v.is_empty()));
        if v.is_empty() {
            v.push(0);
        }
        put_entry(&mut v, m);
        set_count(&mut v, count);
        self.buf = v.into_boxed_slice();
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        let Some((s, e)) = self.locate(m) else {
            return false;
        };
        let count = self.len() - 1;
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(s..e);
        set_count(&mut v, count);
        self.buf = v.into_boxed_slice();
        true
    }

    pub fn iter(&self) -> StringsIter<'_> {
        StringsIter {
            buf: &self.buf,
            off: self.start(),
        }
    }

    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }
}

/// Rewrites the count at the front of a [`Strings`] buffer, moving the entries when the
/// varint changes length.
fn set_count(v: &mut Vec<u8>, count: usize) {
    let old = read_varint(v, 0).1;
    let (prefix, n) = len_prefix(count);
    if n == old {
        v[..n].copy_from_slice(&prefix[..n]);
    } else {
        v.splice(..old, prefix[..n].iter().copied());
    }
}

/// Members of a [`Strings`] set in order.
#[derive(Clone)]
pub struct StringsIter<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Iterator for StringsIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.off >= self.buf.len() {
            return None;
        }
        let (s, e) = entry_at(self.buf, self.off);
        self.off = e;
        Some(&self.buf[s..e])
    }
}

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    Ints(IntSet),
    /// What Redis calls a hashtable. Boxed (16 bytes) so a `Set` stays 16 bytes.
    Hashed(Box<Hashed>),
}

/// The two in-memory forms of a `hashtable` set.
#[derive(Debug, Clone)]
pub enum Hashed {
    Packed(Strings),
    Table(Box<Table<SmallBytes>>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(IntSet::default())
    }
}

impl Hashed {
    fn len(&self) -> usize {
        match self {
            Hashed::Packed(s) => s.len(),
            Hashed::Table(t) => t.len(),
        }
    }

    fn contains(&self, m: &[u8]) -> bool {
        match self {
            Hashed::Packed(s) => s.contains(m),
            Hashed::Table(t) => t.contains(m),
        }
    }

    /// Adds a member, moving from the packed form to the table past its limits.
    fn add(&mut self, m: &[u8]) -> bool {
        if let Hashed::Packed(s) = self {
            if s.contains(m) {
                return false;
            }
            if s.len() < PACKED_MAX_ENTRIES && m.len() <= PACKED_MAX_LEN {
                s.push(m);
                return true;
            }
            let mut t = Table::with_capacity(s.len() + 1);
            s.iter().for_each(|x| t.insert_new(SmallBytes::new(x)));
            *self = Hashed::Table(Box::new(t));
        }
        let Hashed::Table(t) = self else {
            unreachable!("converted above")
        };
        if t.contains(m) {
            return false;
        }
        t.insert_new(SmallBytes::new(m));
        true
    }

    fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Hashed::Packed(s) => s.remove(m),
            Hashed::Table(t) => t.remove(m).is_some(),
        }
    }
}

impl Set {
    /// The form Redis 7.0 gives a new set whose first member is `first` (an intset for an
    /// integer, else a hashtable, here packed while small).
    pub fn for_first(first: &[u8]) -> Self {
        if crate::protocol::parse_i64(first).is_some() {
            Set::default()
        } else {
            Set::Hashed(Box::new(Hashed::Packed(Strings::default())))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(s) => s.len(),
            Set::Hashed(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Hashed(_) => "hashtable",
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Ints(s) => crate::protocol::parse_i64(m).is_some_and(|x| s.contains(x)),
            Set::Hashed(h) => h.contains(m),
        }
    }

    /// Membership of a member taken from another set, without formatting integers when both
    /// sides are intsets.
    pub fn contains_member(&self, m: Member<'_>) -> bool {
        match (self, m) {
            (Set::Ints(s), Member::Int(x)) => s.contains(x),
            (_, Member::Bytes(b)) => self.contains(b),
            (_, Member::Int(x)) => self.contains(itoa::Buffer::new().format(x).as_bytes()),
        }
    }

    /// Adds a member, leaving the intset past `max_intset` integers or on a non-integer
    /// member; true when it was new.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Set::Ints(s) = self {
            match crate::protocol::parse_i64(m) {
                Some(x) => {
                    if !s.insert(x) {
                        return false;
                    }
                    // Redis caps the intset at 2^30 entries whatever the configuration says.
                    if s.len() > max_intset.min(1 << 30) {
                        self.leave_intset();
                    }
                    return true;
                }
                None => self.leave_intset(),
            }
        }
        match self {
            Set::Hashed(h) => h.add(m),
            Set::Ints(_) => unreachable!("left the intset above"),
        }
    }

    /// Adds a member taken from another set.
    pub fn add_member(&mut self, m: Member<'_>, max_intset: usize) -> bool {
        match m {
            Member::Bytes(b) => self.add(b, max_intset),
            Member::Int(x) => self.add(itoa::Buffer::new().format(x).as_bytes(), max_intset),
        }
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(s) => crate::protocol::parse_i64(m).is_some_and(|x| s.remove(x)),
            Set::Hashed(h) => h.remove(m),
        }
    }

    /// Removes a member taken from another set.
    pub fn remove_member(&mut self, m: Member<'_>) -> bool {
        match (&mut *self, m) {
            (Set::Ints(s), Member::Int(x)) => s.remove(x),
            (_, Member::Bytes(b)) => self.remove(b),
            (_, Member::Int(x)) => self.remove(itoa::Buffer::new().format(x).as_bytes()),
        }
    }

    /// Converts an intset to a hashtable set (for good), packed while small.
    fn leave_intset(&mut self) {
        if let Set::Ints(ints) = self {
            let mut h = Hashed::Packed(Strings::default());
            for x in ints.iter() {
                h.add(itoa::Buffer::new().format(x).as_bytes());
            }
            *self = Set::Hashed(Box::new(h));
        }
    }

    /// Members in iteration order: ascending for an intset.
    pub fn iter(&self) -> SetIter<'_> {
        match self {
            Set::Ints(s) => SetIter::Ints(s, 0),
            Set::Hashed(h) => match &**h {
                Hashed::Packed(s) => SetIter::Packed(s.iter()),
                Hashed::Table(t) => SetIter::Table(t.iter()),
            },
        }
    }

    /// A uniformly random member.
    pub fn random(&self, rng: &mut impl Rng) -> Option<Member<'_>> {
        if self.is_empty() {
            return None;
        }
        let n = rng.random_range(0..self.len());
        match self {
            Set::Ints(s) => Some(Member::Int(s.get(n))),
            Set::Hashed(h) => match &**h {
                Hashed::Packed(s) => s.iter().nth(n).map(Member::Bytes),
                Hashed::Table(t) => t.random(rng).map(|b| Member::Bytes(b)),
            },
        }
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<SmallBytes> {
        if let Set::Hashed(h) = self
            && let Hashed::Table(t) = &mut **h
        {
            return t.pop_random(rng);
        }
        let m = self.random(rng)?.to_bytes();
        self.remove(&m);
        Some(m)
    }

    /// SSCAN step: visits members from `cursor`, returns the next cursor (0 = done). The
    /// compact forms are returned whole in one call, as Redis does for an intset.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut visit: impl FnMut(Member<'a>)) -> u64 {
        if let Set::Hashed(h) = self
            && let Hashed::Table(t) = &**h
        {
            return t.scan(cursor, count, |b| visit(Member::Bytes(b)));
        }
        self.iter().for_each(visit);
        0
    }

    /// Heap bytes held (for memory estimates).
    pub fn heap_size(&self) -> usize {
        match self {
            Set::Ints(s) => s.heap_size(),
            Set::Hashed(h) => {
                std::mem::size_of::<Hashed>()
                    + match &**h {
                        Hashed::Packed(s) => s.heap_size(),
                        Hashed::Table(t) => {
                            t.overhead() + t.iter().map(SmallBytes::heap_size).sum::<usize>()
                        }
                    }
            }
        }
    }
}

/// Members of a [`Set`].
pub enum SetIter<'a> {
    Ints(&'a IntSet, usize),
    Packed(StringsIter<'a>),
    Table(table::Iter<'a, SmallBytes>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Ints(s, i) => {
                if *i >= s.len() {
                    return None;
                }
                *i += 1;
                Some(Member::Int(s.get(*i - 1)))
            }
            SetIter::Packed(it) => it.next().map(Member::Bytes),
            SetIter::Table(it) => it.next().map(|b| Member::Bytes(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intset_widens_and_stays_sorted() {
        let mut s = IntSet::default();
        for x in [5, -3, 100, 7] {
            assert!(s.insert(x));
        }
        assert!(!s.insert(5));
        assert_eq!(s.width(), 2);
        assert_eq!(s.heap_size(), 1 + 4 * 2);
        assert!(s.insert(70000));
        assert_eq!(s.width(), 4);
        assert!(s.insert(i64::MIN));
        assert_eq!(s.width(), 8);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![i64::MIN, -3, 5, 7, 100, 70000]
        );
        assert!(s.remove(70000));
        assert!(!s.remove(70000));
        assert!(s.contains(-3));
        assert!(!s.contains(4));
        let mut narrow = IntSet::default();
        narrow.insert(1);
        assert!(!narrow.contains(1 << 40));
        assert!(!narrow.contains(-(1 << 40)));
        assert_eq!(std::mem::size_of::<Set>(), 16);
        assert_eq!(std::mem::size_of::<Hashed>(), 16);
    }

    #[test]
    fn set_encodings_follow_redis_7_0() {
        let mut s = Set::for_first(b"1");
        assert_eq!(s.encoding(), "intset");
        for i in 0..512 {
            s.add(i.to_string().as_bytes(), 512);
        }
        assert_eq!(s.encoding(), "intset");
        assert!(s.add(b"512", 512));
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 513);
        assert!(s.contains(b"17"));
        assert!(s.contains_member(Member::Int(511)));

        let mut s = Set::for_first(b"a");
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.add(b"a", 512));
        assert!(!s.add(b"a", 512));
        assert!(matches!(&s, Set::Hashed(h) if matches!(**h, Hashed::Packed(_))));
        for i in 0..200 {
            assert!(s.add(format!("m{i}").as_bytes(), 512));
            assert!(s.contains(format!("m{i}").as_bytes()));
        }
        assert!(
            matches!(&s, Set::Hashed(h) if matches!(**h, Hashed::Table(_))),
            "packed up to 128 members"
        );
        assert_eq!(s.len(), 201);
        assert_eq!(s.encoding(), "hashtable");

        let mut s = Set::for_first(b"01");
        assert_eq!(s.encoding(), "hashtable", "01 is not a canonical integer");
        s = Set::default();
        s.add(b"1", 512);
        s.add(b"x", 512);
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"1"));
    }

    #[test]
    fn packed_strings() {
        let mut s = Set::for_first(b"x");
        for m in ["x", "y", "", "zz"] {
            assert!(s.add(m.as_bytes(), 512));
        }
        assert!(s.contains(b""));
        assert!(!s.contains(b"z"));
        assert!(s.remove(b"y"));
        assert!(!s.remove(b"y"));
        let all: Vec<_> = s.iter().map(Member::to_bytes).collect();
        assert_eq!(
            all,
            vec![
                SmallBytes::new(b"x"),
                SmallBytes::new(b""),
                SmallBytes::new(b"zz")
            ]
        );
        assert!(s.add(&[b'l'; 65], 512));
        assert!(
            matches!(&s, Set::Hashed(h) if matches!(**h, Hashed::Table(_))),
            "a long member needs the table"
        );
        assert_eq!(s.len(), 4);

        let mut ints = Set::for_first(b"1");
        ints.add(b"1", 512);
        ints.add(b"2", 512);
        ints.add(b"x", 512);
        assert!(matches!(&ints, Set::Hashed(h) if matches!(**h, Hashed::Packed(_))));
        assert!(ints.contains_member(Member::Int(2)));
        let mut p = Strings::default();
        for i in 0..128 {
            p.push(format!("{i}").as_bytes());
        }
        assert_eq!(p.len(), 128, "the count varint grows to two bytes");
        assert_eq!(p.iter().count(), 128);
        assert!(p.remove(b"0"));
        assert_eq!(p.len(), 127);
        assert!(p.contains(b"127"));
    }

    #[test]
    fn random_pop_and_scan() {
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(9);
        let mut s = Set::default();
        for i in 0..10 {
            s.add(i.to_string().as_bytes(), 512);
        }
        let mut n = 0;
        assert_eq!(s.scan(0, 1, |_| n += 1), 0);
        assert_eq!(n, 10);
        assert!(s.random(&mut rng).is_some());
        let mut popped = Vec::new();
        while let Some(m) = s.pop_random(&mut rng) {
            popped.push(m);
        }
        assert_eq!(popped.len(), 10);
        assert!(s.is_empty());
    }
}
