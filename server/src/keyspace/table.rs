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
pub type Iter<'a, T> = std::iter::Flatten<std::slice::Iter<'a, Option<T>>>;

/// An item stored in a [`Table`], looked up by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

/// Below this many slots the slab is never compacted: probing stays cheap anyway.
const MIN_COMPACT_SLOTS: usize = 64;

#[derive(Clone)]
pub struct Table<T> {
    slots: Vec<Option<T>>,
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
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<T: Keyed> Table<T> {
    pub fn with_capacity(n: usize) -> Self {
        Table {
            slots: Vec::with_capacity(n),
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

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of the item with this key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots[i as usize].as_ref().is_some_and(|t| t.key() == key)
            })
            .copied()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(key).and_then(|i| self.slots[i as usize].as_ref())
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let i = self.find(key)?;
        self.slots[i as usize].as_mut()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// The item in slot `i`, if that slot is live.
    pub fn at(&self, i: u32) -> Option<&T> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    /// Adds an item whose key is not present yet.
    pub fn insert_new(&mut self, item: T) {
        debug_assert!(self.find(item.key()).is_none());
        let hash = self.hasher.hash_one(item.key());
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(item);
                i
            }
            None => {
                self.slots.push(Some(item));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            slots[j as usize]
                .as_ref()
                .map_or(0, |t| hasher.hash_one(t.key()))
        });
        self.len += 1;
    }

    /// Removes and returns the item with this key.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(hash, |&i| {
                slots[i as usize].as_ref().is_some_and(|t| t.key() == key)
            })
            .ok()?;
        let (i, _) = entry.remove();
        let item = self.slots[i as usize].take();
        self.free.push(i);
        self.len -= 1;
        self.maybe_compact();
        item
    }

    /// Removes and returns a uniformly random item.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<T> {
        let i = self.random_slot(rng)?;
        let key = self.slots[i as usize].as_ref()?.key().to_vec();
        self.remove(&key)
    }

    /// A uniformly random live slot.
    pub fn random_slot(&self, rng: &mut impl Rng) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        // Compaction keeps at least one slot in eight live, so this ends quickly.
        loop {
            let i = rng.random_range(0..self.slots.len());
            if self.slots[i].is_some() {
                return Some(i as u32);
            }
        }
    }

    /// A uniformly random item.
    pub fn random(&self, rng: &mut impl Rng) -> Option<&T> {
        self.random_slot(rng).and_then(|i| self.at(i))
    }

    /// Items in slot order (insertion order until slots are reused).
    pub fn iter(&self) -> Iter<'_, T> {
        self.slots.iter().flatten()
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
        while i < self.slots.len() && seen < count {
            if let Some(t) = &self.slots[i] {
                visit(t);
                seen += 1;
            }
            i += 1;
        }
        if i >= self.slots.len() {
            0
        } else {
            (u64::from(self.epoch) << 32) | i as u64
        }
    }

    /// Moves live items to the front when fewer than one slot in eight is used, so memory
    /// follows the live size the way Redis's dict shrinking does.
    fn maybe_compact(&mut self) {
        let n = self.slots.len();
        if n <= MIN_COMPACT_SLOTS || self.len * 8 >= n {
            if self.len == 0 {
                self.slots.clear();
                self.free.clear();
            }
            return;
        }
        let items: Vec<T> = std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect();
        self.free = Vec::new();
        self.index = HashTable::with_capacity(items.len());
        self.slots = Vec::with_capacity(items.len());
        self.len = 0;
        self.epoch = self.epoch.wrapping_add(1);
        for t in items {
            self.insert_new(t);
        }
    }

    /// Heap bytes held beyond the items' own allocations (for memory estimates).
    pub fn overhead(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<T>>()
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
