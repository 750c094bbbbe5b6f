//! `Table`: the large form of hashes and sets (Redis's `hashtable` encoding).
//!
//! Items live in a slab of slots and are found through a hash index of 4-byte slot numbers,
//! like the keyspace itself. An item never moves while it lives, which gives two things a plain
//! hash map cannot: a slot number is a stable HSCAN/SSCAN cursor (every item present for the
//! whole iteration is returned), and a uniformly random item is a few probes away
//! (SRANDMEMBER, SPOP, HRANDFIELD).
//!
//! When deletions leave the slab mostly empty it is compacted, which does move items; the
//! table then bumps its epoch, and a cursor minted in an older epoch restarts the iteration
//! (duplicates are allowed by SCAN's contract, misses are not).
//!
//! This module knows nothing of encodings, thresholds or commands.

use hashbrown::{DefaultHashBuilder, HashTable};
use rand::Rng;
use std::hash::BuildHasher;

/// Iterator over a table's items.
pub type Iter<'a, T> = std::iter::Flatten<std::iter::Flatten<std::slice::Iter<'a, Vec<Option<T>>>>>;

/// An item stored in a [`Table`], looked up by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

/// Below this many slots the slab is never compacted: probing stays cheap anyway.
const MIN_COMPACT_SLOTS: usize = 64;
/// Slots per slab chunk. The slab grows a chunk at a time, so a big table wastes at most one
/// partly used chunk (a doubling vector wastes up to half) and never copies itself to grow.
const CHUNK: usize = 1024;

#[derive(Clone)]
pub struct Table<T> {
    /// The slab: chunks of `CHUNK` slots (the first one grows up to `CHUNK` as needed).
    chunks: Vec<Vec<Option<T>>>,
    /// Slots in use or freed: the bound of slot numbers.
    nslots: usize,
    /// Free slot numbers, reused last-freed first.
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    len: usize,
    /// Bumped by every compaction: cursors carry it so a stale cursor restarts.
    epoch: u32,
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("slots", &self.nslots)
            .finish()
    }
}

impl<T: Keyed> Table<T> {
    pub fn with_capacity(n: usize) -> Self {
        Table {
            chunks: if n == 0 {
                Vec::new()
            } else {
                vec![Vec::with_capacity(n.min(CHUNK))]
            },
            nslots: 0,
            free: Vec::new(),
            index: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
            len: 0,
            epoch: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, i: u32) -> &Option<T> {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn slot_mut(&mut self, i: u32) -> &mut Option<T> {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of the item with this key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| {
                self.slot(i).as_ref().is_some_and(|t| t.key() == key)
            })
            .copied()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(key).and_then(|i| self.slot(i).as_ref())
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let i = self.find(key)?;
        self.slot_mut(i).as_mut()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// The item in slot `i`, if that slot is live.
    pub fn at(&self, i: u32) -> Option<&T> {
        if (i as usize) < self.nslots {
            self.slot(i).as_ref()
        } else {
            None
        }
    }

    /// Adds an item whose key is not present yet.
    pub fn insert_new(&mut self, item: T) {
        debug_assert!(self.find(item.key()).is_none());
        let hash = self.hasher.hash_one(item.key());
        let i = match self.free.pop() {
            Some(i) => {
                *self.slot_mut(i) = Some(item);
                i
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    // Small tables (most of them) hold one chunk: no spare outer capacity.
                    let first = self.chunks.is_empty();
                    if first {
                        self.chunks.reserve_exact(1);
                    }
                    self.chunks
                        .push(Vec::with_capacity(if first { 0 } else { CHUNK }));
                }
                if let Some(c) = self.chunks.last_mut() {
                    c.push(Some(item));
                }
                self.nslots += 1;
                (self.nslots - 1) as u32
            }
        };
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            chunks[j as usize / CHUNK][j as usize % CHUNK]
                .as_ref()
                .map_or(0, |t| hasher.hash_one(t.key()))
        });
        self.len += 1;
    }

    /// Removes and returns the item with this key.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let hash = self.hasher.hash_one(key);
        let chunks = &self.chunks;
        let entry = self
            .index
            .find_entry(hash, |&i| {
                chunks[i as usize / CHUNK][i as usize % CHUNK]
                    .as_ref()
                    .is_some_and(|t| t.key() == key)
            })
            .ok()?;
        let (i, _) = entry.remove();
        self.release(i)
    }

    /// Empties slot `i`, already out of the index, and returns its item.
    fn release(&mut self, i: u32) -> Option<T> {
        let item = self.slot_mut(i).take();
        self.free.push(i);
        self.len -= 1;
        self.maybe_compact();
        item
    }

    /// Removes and returns a uniformly random item.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<T> {
        let i = self.random_slot(rng)?;
        let hash = self.hasher.hash_one(self.slot(i).as_ref()?.key());
        let entry = self.index.find_entry(hash, |&j| j == i).ok()?;
        entry.remove();
        self.release(i)
    }

    /// A uniformly random live slot.
    pub fn random_slot(&self, rng: &mut impl Rng) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        // Compaction keeps at least one slot in eight live, so this ends quickly.
        loop {
            let i = rng.random_range(0..self.nslots) as u32;
            if self.slot(i).is_some() {
                return Some(i);
            }
        }
    }

    /// A uniformly random item.
    pub fn random(&self, rng: &mut impl Rng) -> Option<&T> {
        self.random_slot(rng).and_then(|i| self.at(i))
    }

    /// Items in slot order (insertion order until slots are reused).
    pub fn iter(&self) -> Iter<'_, T> {
        self.chunks.iter().flatten().flatten()
    }

    /// Visits up to `count` items from `cursor` on; returns the cursor to continue with, 0 when
    /// the iteration is complete. A cursor from before a compaction restarts at the beginning.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut visit: impl FnMut(&'a T)) -> u64 {
        let epoch = (cursor >> 32) as u32;
        let mut i = if epoch == self.epoch {
            (cursor & u64::from(u32::MAX)) as usize
        } else {
            0
        };
        let mut seen = 0;
        while i < self.nslots && seen < count {
            if let Some(t) = self.slot(i as u32) {
                visit(t);
                seen += 1;
            }
            i += 1;
        }
        if i >= self.nslots {
            0
        } else {
            (u64::from(self.epoch) << 32) | i as u64
        }
    }

    /// Moves live items to the front when fewer than one slot in eight is used, so memory
    /// follows the live size the way Redis's dict shrinking does.
    fn maybe_compact(&mut self) {
        let n = self.nslots;
        if n <= MIN_COMPACT_SLOTS || self.len * 8 >= n {
            if self.len == 0 {
                self.chunks.clear();
                self.nslots = 0;
                self.free.clear();
            }
            return;
        }
        let items: Vec<T> = std::mem::take(&mut self.chunks)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        self.free = Vec::new();
        self.index = HashTable::with_capacity(items.len());
        self.chunks = vec![Vec::with_capacity(items.len().min(CHUNK))];
        self.nslots = 0;
        self.len = 0;
        self.epoch = self.epoch.wrapping_add(1);
        for t in items {
            self.insert_new(t);
        }
    }

    /// Heap bytes held beyond the items' own allocations (for memory estimates).
    pub fn overhead(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<Option<T>>()
            + self.free.capacity() * 4
            + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    impl Keyed for String {
        fn key(&self) -> &[u8] {
            self.as_bytes()
        }
    }

    #[test]
    fn insert_find_remove() {
        let mut t = Table::with_capacity(0);
        for i in 0..1000 {
            t.insert_new(format!("k{i}"));
        }
        assert_eq!(t.len(), 1000);
        assert!(t.contains(b"k999"));
        assert_eq!(t.remove(b"k5").as_deref(), Some("k5"));
        assert!(t.remove(b"k5").is_none());
        assert!(!t.contains(b"k5"));
        assert_eq!(t.iter().count(), 999);
    }

    #[test]
    fn scan_survives_changes_and_compaction() {
        let mut t = Table::with_capacity(0);
        for i in 0..2000 {
            t.insert_new(format!("k{i}"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = t.scan(0, 100, |k| {
            seen.insert(k.clone());
        });
        // Delete most items so the slab compacts under the iteration.
        for i in 100..1990 {
            t.remove(format!("k{i}").as_bytes());
        }
        t.insert_new("new".to_string());
        let mut rounds = 0;
        while cursor != 0 {
            cursor = t.scan(cursor, 7, |k| {
                seen.insert(k.clone());
            });
            rounds += 1;
            assert!(rounds < 1000);
        }
        for i in (0..100).chain(1990..2000) {
            assert!(seen.contains(&format!("k{i}")), "k{i} missed");
        }
        assert!(t.overhead() < 2000 * std::mem::size_of::<Option<String>>());
    }

    #[test]
    fn grows_in_chunks() {
        let mut t = Table::with_capacity(0);
        let n = 3 * CHUNK + 17;
        for i in 0..n {
            t.insert_new(format!("k{i}"));
        }
        assert_eq!(t.len(), n);
        assert_eq!(t.iter().count(), n);
        assert!(t.contains(format!("k{}", n - 1).as_bytes()));
        assert!(t.overhead() < (n + CHUNK) * std::mem::size_of::<Option<String>>() + n * 16);
        let mut cursor = 0;
        let mut seen = 0;
        loop {
            cursor = t.scan(cursor, 100, |_| seen += 1);
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn random_and_pop_cover_everything() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut t = Table::with_capacity(0);
        for i in 0..200 {
            t.insert_new(format!("k{i}"));
        }
        assert!(t.random(&mut rng).is_some());
        let mut popped = 0;
        while t.pop_random(&mut rng).is_some() {
            popped += 1;
        }
        assert_eq!(popped, 200);
        assert!(t.is_empty());
        assert!(t.random(&mut rng).is_none());
    }
}
