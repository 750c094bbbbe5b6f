//! The sorted set value: members with scores, ordered by (score, member).
//!
//! Two forms, as in Redis 7.0 (OBJECT ENCODING reports them as `listpack` and `skiplist`):
//! - small sets live in one contiguous buffer kept sorted, with no per-member allocation;
//! - large sets keep a skiplist of (score, member) with spans plus a member -> score map, so
//!   lookups by member are O(1), and seeks by score or rank and ranks are O(log n).
//!
//! This module knows nothing of commands or replies. The thresholds that decide the form
//! are passed in by the caller (they are configuration), and the conversion rules mirror
//! Redis's: a set only grows into the tree form, never back, except when a command builds a
//! new set from scratch (see [`ZSet::from_entries`]).

mod skiplist;

use super::SmallBytes;
use hashbrown::HashMap;
use skiplist::{NIL, Skiplist};
use std::cmp::Ordering;

/// Per-entry bytes of the packed form besides the member: length before and after (so the
/// buffer can be walked both ways) and the score.
const PACK_OVERHEAD: usize = 4 + 8 + 4;

/// The thresholds of the packed form (`zset-max-listpack-entries`, `zset-max-listpack-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackLimits {
    pub max_entries: u64,
    pub max_value: u64,
}

impl PackLimits {
    /// Whether a set of `len` members, the longest `max_member` bytes, fits the packed form.
    pub fn fits(&self, len: usize, max_member: usize) -> bool {
        len as u64 <= self.max_entries && max_member as u64 <= self.max_value
    }
}

/// A sorted set.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Pack(Pack),
    Tree(Tree),
}

/// The packed form: entries `[len u32][member][score f64][len u32]`, little endian, sorted.
#[derive(Debug, Clone, Default)]
struct Pack {
    buf: Vec<u8>,
    len: usize,
}

/// The tree form.
#[derive(Debug, Clone, Default)]
struct Tree {
    scores: HashMap<SmallBytes, f64>,
    list: Skiplist,
}

/// The order of a sorted set. Scores are never NaN (commands refuse it).
fn cmp_entry(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

fn read_u32(b: &[u8], at: usize) -> usize {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w) as usize
}

fn read_f64(b: &[u8], at: usize) -> f64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    f64::from_le_bytes(w)
}

impl Pack {
    /// The entry starting at byte `at`: member, score, and the offset of the next entry.
    fn at(&self, at: usize) -> (&[u8], f64, usize) {
        let n = read_u32(&self.buf, at);
        let m = &self.buf[at + 4..at + 4 + n];
        let score = read_f64(&self.buf, at + 4 + n);
        (m, score, at + PACK_OVERHEAD + n)
    }

    /// Offset of the entry holding `member`, with its score.
    fn position(&self, member: &[u8]) -> Option<(usize, f64)> {
        let mut at = 0;
        while at < self.buf.len() {
            let (m, s, next) = self.at(at);
            if m == member {
                return Some((at, s));
            }
            at = next;
        }
        None
    }

    fn remove_at(&mut self, at: usize) {
        let n = read_u32(&self.buf, at);
        self.buf.drain(at..at + PACK_OVERHEAD + n);
        self.len -= 1;
    }

    /// Inserts a member known to be absent at its sorted place.
    fn insert_new(&mut self, member: &[u8], score: f64) {
        let mut at = 0;
        while at < self.buf.len() {
            let (m, s, next) = self.at(at);
            if cmp_entry(score, member, s, m) == Ordering::Less {
                break;
            }
            at = next;
        }
        let n = (member.len() as u32).to_le_bytes();
        let mut entry = Vec::with_capacity(PACK_OVERHEAD + member.len());
        entry.extend_from_slice(&n);
        entry.extend_from_slice(member);
        // Redis's listpack keeps a score as text that turns into an integer when it can:
        // "-0" is stored as 0, so the packed form forgets the sign of zero.
        let score = if score == 0.0 { 0.0 } else { score };
        entry.extend_from_slice(&score.to_le_bytes());
        entry.extend_from_slice(&n);
        self.buf.splice(at..at, entry);
        self.len += 1;
    }
}

/// Walks a sorted set in order, from either end.
pub struct Iter<'a>(Walk<'a>);

enum Walk<'a> {
    Pack {
        buf: &'a [u8],
        front: usize,
        back: usize,
    },
    /// Node indices of the next entries at each end ([`NIL`] once exhausted).
    Tree {
        list: &'a Skiplist,
        front: u32,
        back: u32,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Walk::Pack { buf, front, back } => {
                if *front >= *back {
                    return None;
                }
                let n = read_u32(buf, *front);
                let m = &buf[*front + 4..*front + 4 + n];
                let s = read_f64(buf, *front + 4 + n);
                *front += PACK_OVERHEAD + n;
                Some((m, s))
            }
            Walk::Tree { list, front, back } => {
                let x = *front;
                if x == NIL {
                    return None;
                }
                if x == *back {
                    (*front, *back) = (NIL, NIL);
                } else {
                    *front = list.next(x);
                }
                Some(list.get(x))
            }
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Walk::Pack { buf, front, back } => {
                if *front >= *back {
                    return None;
                }
                let n = read_u32(buf, *back - 4);
                let start = *back - PACK_OVERHEAD - n;
                let m = &buf[start + 4..start + 4 + n];
                let s = read_f64(buf, start + 4 + n);
                *back = start;
                Some((m, s))
            }
            Walk::Tree { list, front, back } => {
                let x = *back;
                if x == NIL {
                    return None;
                }
                if x == *front {
                    (*front, *back) = (NIL, NIL);
                } else {
                    *back = list.prev(x);
                }
                Some(list.get(x))
            }
        }
    }
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

impl ZSet {
    /// Heap bytes held (MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.buf.capacity(),
            Repr::Tree(t) => {
                t.scores.capacity() * (std::mem::size_of::<(SmallBytes, f64)>() + 1)
                    + t.scores.keys().map(SmallBytes::heap_size).sum::<usize>()
                    + t.list.heap_size()
            }
        }
    }

    /// An empty set in the packed form.
    pub fn new() -> Self {
        ZSet {
            repr: Repr::Pack(Pack::default()),
        }
    }

    /// An empty set in the tree form (Redis creates one directly when the first member is
    /// already too long for the packed form, or the packed form is disabled).
    pub fn new_tree() -> Self {
        ZSet {
            repr: Repr::Tree(Tree::default()),
        }
    }

    /// Builds a set from entries, choosing the form Redis picks for a freshly computed set
    /// (ZUNIONSTORE and friends): packed when it fits `limits`.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (SmallBytes, f64)>,
        limits: PackLimits,
    ) -> Self {
        let entries: Vec<(SmallBytes, f64)> = entries.into_iter().collect();
        let longest = entries.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        if !limits.fits(entries.len(), longest) {
            return ZSet::tree_of(entries);
        }
        let mut z = ZSet::new();
        for (m, s) in entries {
            z.add(&m, s, limits);
        }
        z
    }

    /// The tree form of `entries` (a later repeat of a member wins, as with [`ZSet::add`]),
    /// sorted once and linked in order rather than inserted one search at a time.
    fn tree_of(entries: Vec<(SmallBytes, f64)>) -> Self {
        let mut scores: HashMap<SmallBytes, f64> = HashMap::with_capacity(entries.len());
        for (m, s) in entries {
            match scores.entry(m) {
                hashbrown::hash_map::Entry::Occupied(mut o) => {
                    // As `add`: an equal score (even -0 for 0) changes nothing.
                    if *o.get() != s {
                        *o.get_mut() = s;
                    }
                }
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(s);
                }
            }
        }
        let mut sorted: Vec<(f64, SmallBytes)> =
            scores.iter().map(|(m, s)| (*s, m.clone())).collect();
        sorted.sort_unstable_by(|a, b| cmp_entry(a.0, &a.1, b.0, &b.1));
        ZSet {
            repr: Repr::Tree(Tree {
                scores,
                list: Skiplist::from_sorted(sorted.into_iter()),
            }),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len,
            Repr::Tree(t) => t.list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `listpack` or `skiplist`, as OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Tree(_) => "skiplist",
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Pack(p) => p.position(member).map(|(_, s)| s),
            Repr::Tree(t) => t.scores.get(member).copied(),
        }
    }

    /// Sets `member`'s score, adding it if absent; returns the previous score. A packed set
    /// turns into the tree form when the new member would break `limits`.
    pub fn add(&mut self, member: &[u8], score: f64, limits: PackLimits) -> Option<f64> {
        if let Repr::Pack(p) = &mut self.repr {
            if let Some((at, old)) = p.position(member) {
                // Redis compares with `!=`: an equal score (even -0 for 0) changes nothing.
                if old != score {
                    p.remove_at(at);
                    p.insert_new(member, score);
                }
                return Some(old);
            }
            if limits.fits(p.len + 1, member.len()) {
                p.insert_new(member, score);
                return None;
            }
            self.convert_to_tree();
        }
        let Repr::Tree(t) = &mut self.repr else {
            unreachable!("converted above")
        };
        if let Some(old) = t.scores.get_mut(member) {
            let prev = *old;
            if prev != score {
                *old = score;
                t.list.remove(prev, member);
                t.list.insert(score, SmallBytes::new(member));
            }
            return Some(prev);
        }
        let key = SmallBytes::new(member);
        t.scores.insert(key.clone(), score);
        t.list.insert(score, key);
        None
    }

    /// Removes `member`; returns its score if it was present.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Pack(p) => {
                let (at, s) = p.position(member)?;
                p.remove_at(at);
                Some(s)
            }
            Repr::Tree(t) => {
                let s = t.scores.remove(member)?;
                t.list.remove(s, member);
                Some(s)
            }
        }
    }

    /// The 0-based position of `member` in ascending order, with its score: O(log n) in the
    /// tree form.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match &self.repr {
            Repr::Pack(_) => self
                .iter()
                .enumerate()
                .find(|(_, (m, _))| *m == member)
                .map(|(i, (_, s))| (i, s)),
            Repr::Tree(t) => {
                let s = *t.scores.get(member)?;
                t.list.rank(s, member).map(|r| (r, s))
            }
        }
    }

    /// All entries in ascending order (reverse it for descending).
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(p) => Iter(Walk::Pack {
                buf: &p.buf,
                front: 0,
                back: p.buf.len(),
            }),
            Repr::Tree(t) => tree_walk(&t.list, t.list.first(), t.list.last()),
        }
    }

    /// The entries of ranks `start..=end` (0-based, ascending, both in range); the tree form
    /// finds both ends in O(log n).
    pub fn iter_ranks(&self, start: usize, end: usize) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(p) => {
                let mut front = 0;
                let mut back = 0;
                for i in 0..=end {
                    if i == start {
                        front = back;
                    }
                    back = p.at(back).2;
                }
                Iter(Walk::Pack {
                    buf: &p.buf,
                    front,
                    back,
                })
            }
            Repr::Tree(t) => tree_walk(&t.list, t.list.by_rank(start), t.list.by_rank(end)),
        }
    }

    /// Entries with a score of at least `min`, ascending; the tree form seeks in O(log n).
    pub fn iter_from_score(&self, min: f64) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(_) => self.iter(),
            Repr::Tree(t) => tree_walk(&t.list, t.list.first_from_score(min), t.list.last()),
        }
    }

    /// Entries with a score of at most `max`, for walking backwards; the tree form seeks in
    /// O(log n).
    pub fn iter_to_score(&self, max: f64) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(_) => self.iter(),
            Repr::Tree(t) => tree_walk(&t.list, t.list.first(), t.list.last_to_score(max)),
        }
    }

    fn convert_to_tree(&mut self) {
        let mut t = Tree::default();
        for (m, s) in self.iter() {
            let k = SmallBytes::new(m);
            t.scores.insert(k.clone(), s);
            t.list.insert(s, k);
        }
        self.repr = Repr::Tree(t);
    }
}

/// A walk over the skiplist nodes `front..=back`, empty when either end is missing.
fn tree_walk(list: &Skiplist, front: u32, back: u32) -> Iter<'_> {
    let (front, back) = if front == NIL || back == NIL {
        (NIL, NIL)
    } else {
        (front, back)
    };
    Iter(Walk::Tree { list, front, back })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: PackLimits = PackLimits {
        max_entries: 4,
        max_value: 8,
    };

    fn members(z: &ZSet) -> Vec<(String, f64)> {
        z.iter()
            .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s))
            .collect()
    }

    #[test]
    fn packed_keeps_order_and_updates() {
        let mut z = ZSet::new();
        assert_eq!(z.add(b"b", 2.0, SMALL), None);
        assert_eq!(z.add(b"a", 2.0, SMALL), None);
        assert_eq!(z.add(b"c", 1.0, SMALL), None);
        assert_eq!(z.add(b"a", 3.0, SMALL), Some(2.0));
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(
            members(&z),
            vec![("c".into(), 1.0), ("b".into(), 2.0), ("a".into(), 3.0)]
        );
        let rev: Vec<_> = z.iter().rev().map(|(m, _)| m.to_vec()).collect();
        assert_eq!(rev, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(z.rank(b"a"), Some((2, 3.0)));
        assert_eq!(z.remove(b"b"), Some(2.0));
        assert_eq!(z.remove(b"b"), None);
        assert_eq!(z.len(), 2);
        assert_eq!(z.score(b"c"), Some(1.0));
    }

    #[test]
    fn grows_into_tree_on_count_and_length() {
        let mut z = ZSet::new();
        for (i, m) in ["a", "b", "c", "d"].iter().enumerate() {
            z.add(m.as_bytes(), i as f64, SMALL);
        }
        assert_eq!(z.encoding(), "listpack");
        z.add(b"a", 10.0, SMALL);
        assert_eq!(z.encoding(), "listpack", "updates never convert");
        z.add(b"e", -1.0, SMALL);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.iter().next(), Some((&b"e"[..], -1.0)));
        assert_eq!(z.iter().next_back(), Some((&b"a"[..], 10.0)));
        assert_eq!(z.rank(b"a"), Some((4, 10.0)));
        let mut y = ZSet::new();
        y.add(b"123456789", 1.0, SMALL);
        assert_eq!(y.encoding(), "skiplist");
        assert_eq!(y.remove(b"123456789"), Some(1.0));
        assert!(y.is_empty());
    }

    #[test]
    fn tree_seeks_by_score() {
        let mut z = ZSet::new_tree();
        for i in 0..100 {
            z.add(format!("m{i:03}").as_bytes(), f64::from(i / 2), SMALL);
        }
        let first = z.iter_from_score(10.0).next();
        assert_eq!(first, Some((&b"m020"[..], 10.0)));
        let last = z.iter_to_score(10.0).next_back();
        assert_eq!(last, Some((&b"m021"[..], 10.0)));
        let neg = z.iter_to_score(-1.0).next_back();
        assert_eq!(neg, None);
        let zero = z.iter_to_score(-0.0).next_back();
        assert_eq!(zero, Some((&b"m001"[..], 0.0)));
    }

    #[test]
    fn negative_zero_equals_zero_in_order() {
        let mut z = ZSet::new_tree();
        z.add(b"b", -0.0, SMALL);
        z.add(b"a", 0.0, SMALL);
        assert_eq!(
            z.iter().map(|(m, _)| m.to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            z.add(b"b", 0.0, SMALL).map(f64::is_sign_negative),
            Some(true)
        );
        assert_eq!(
            z.score(b"b").map(f64::is_sign_negative),
            Some(true),
            "equal: unchanged"
        );
        assert_eq!(z.add(b"b", 1.0, SMALL), Some(-0.0));
        assert_eq!(z.iter().next_back(), Some((&b"b"[..], 1.0)));
    }

    #[test]
    fn rank_windows_in_both_forms() {
        let big = PackLimits {
            max_entries: 1000,
            max_value: 64,
        };
        let mut packed = ZSet::new();
        let mut tree = ZSet::new_tree();
        for i in 0..50 {
            let m = format!("m{i:02}");
            packed.add(m.as_bytes(), f64::from(i % 7), big);
            tree.add(m.as_bytes(), f64::from(i % 7), big);
        }
        let all: Vec<_> = packed.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(
            all,
            tree.iter()
                .map(|(m, s)| (m.to_vec(), s))
                .collect::<Vec<_>>()
        );
        for (s, e) in [(0, 0), (0, 49), (10, 20), (49, 49), (3, 4)] {
            for z in [&packed, &tree] {
                let got: Vec<_> = z.iter_ranks(s, e).map(|(m, s)| (m.to_vec(), s)).collect();
                assert_eq!(got, all[s..=e].to_vec());
                let back: Vec<_> = z.iter_ranks(s, e).rev().map(|(m, _)| m.to_vec()).collect();
                let expect: Vec<_> = all[s..=e].iter().rev().map(|(m, _)| m.clone()).collect();
                assert_eq!(back, expect);
            }
        }
        for (i, (m, s)) in all.iter().enumerate() {
            assert_eq!(tree.rank(m), Some((i, *s)));
            assert_eq!(packed.rank(m), Some((i, *s)));
        }
    }

    #[test]
    fn from_entries_picks_form() {
        let e = (0..4).map(|i| (SmallBytes::from_i64(i), i as f64));
        assert_eq!(ZSet::from_entries(e, SMALL).encoding(), "listpack");
        let e = (0..5).map(|i| (SmallBytes::from_i64(i), i as f64));
        assert_eq!(ZSet::from_entries(e, SMALL).encoding(), "skiplist");
    }

    #[test]
    fn from_entries_tree_is_what_adding_builds() {
        // Unsorted, with a member repeated (the later score wins) and tied scores.
        let e: Vec<(SmallBytes, f64)> = (0..200i32)
            .map(|i| {
                (
                    SmallBytes::from_i64(i64::from((i * 37) % 150)),
                    f64::from((i * 7) % 11),
                )
            })
            .collect();
        let bulk = ZSet::from_entries(e.clone(), SMALL);
        let mut added = ZSet::new_tree();
        for (m, s) in &e {
            added.add(m, *s, SMALL);
        }
        assert_eq!(bulk.encoding(), "skiplist");
        assert_eq!(bulk.len(), 150);
        let a: Vec<(Vec<u8>, f64)> = bulk.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        let b: Vec<(Vec<u8>, f64)> = added.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(a, b);
        for (m, s) in &b {
            assert_eq!(bulk.rank(m), added.rank(m));
            assert_eq!(bulk.score(m), Some(*s));
        }
    }
}
