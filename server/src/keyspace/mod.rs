//! The keyspace: numbered databases of keys with values, expiry times and access clocks.
//!
//! Each database keeps its entries in a slab (fixed-size chunks of slots) and finds them by
//! key through a hash table of 4-byte slot indices. Two properties follow that the rest of the
//! server relies on:
//! - an entry never moves while it lives, so a slot index is a stable cursor: SCAN, the active
//!   expiry cycle and a fork-less snapshot walk the slab in index order while writes go on;
//! - every mutation passes through [`Db::entry_mut`], [`Db::insert`] or [`Db::remove_at`]:
//!   one choke point where a snapshot can capture an entry's old value before it changes.
//!
//! This module does not know about commands, replication or clients; policy (lazy expiry on
//! a master versus a replica, propagation of deletions) lives with the command context.

mod bytes;
pub mod digest;
mod entry;
pub mod hash;
mod list;
mod packed;
pub mod set;
pub mod snapshot;
pub mod stream;
mod table;
mod value;
pub mod zset;

pub use bytes::SmallBytes;
pub use entry::Entry;
pub use hash::Hash;
pub use list::{End, List};
pub use set::Set;
pub use snapshot::DbSnapshot;
pub use value::Value;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Slots per slab chunk: large enough to amortise the chunk vector, small enough that growth
/// never copies the whole dataset (a Vec doubling would briefly hold it twice).
const CHUNK: usize = 4096;
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
enum Slot {
    Used(Entry),
    Free { next: u32 },
}

impl snapshot::Slots for Db {
    fn entry_at(&self, i: u32) -> Option<&Entry> {
        Db::entry_at(self, i)
    }
}

/// One database (`SELECT n`).
pub struct Db {
    index: HashTable<u32>,
    chunks: Vec<Vec<Slot>>,
    /// Head of the free-slot list, reused before the slab grows.
    free_head: u32,
    len: usize,
    /// Keys with an expiry time (INFO keyspace's `expires=`).
    expires: usize,
    hasher: DefaultHashBuilder,
    /// The snapshot in progress, if any (see [`snapshot`]).
    snap: Option<Box<DbSnapshot>>,
    /// INFO keyspace's `avg_ttl` in ms (see [`Db::record_ttls`]).
    avg_ttl: u64,
}

impl Default for Db {
    fn default() -> Self {
        Db {
            index: HashTable::new(),
            chunks: Vec::new(),
            free_head: NONE,
            len: 0,
            expires: 0,
            hasher: DefaultHashBuilder::default(),
            snap: None,
            avg_ttl: 0,
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("len", &self.len)
            .field("expires", &self.expires)
            .finish()
    }
}

impl Db {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys that carry an expiry time.
    pub fn expires(&self) -> usize {
        self.expires
    }

    /// One past the highest slot index ever used: the bound of a slab walk.
    pub fn slot_bound(&self) -> u32 {
        self.chunks.iter().map(Vec::len).sum::<usize>() as u32
    }

    fn slot(&self, i: u32) -> &Slot {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    /// The slot index of `key`, if present (expired or not).
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let chunks = &self.chunks;
        self.index
            .find(hash, |&i| {
                match &chunks[i as usize / CHUNK][i as usize % CHUNK] {
                    Slot::Used(e) => e.key.as_bytes() == key,
                    Slot::Free { .. } => false,
                }
            })
            .copied()
    }

    /// The live entry at slot `i`, `None` for a free or out-of-range slot.
    pub fn entry_at(&self, i: u32) -> Option<&Entry> {
        match self
            .chunks
            .get(i as usize / CHUNK)?
            .get(i as usize % CHUNK)?
        {
            Slot::Used(e) => Some(e),
            Slot::Free { .. } => None,
        }
    }

    /// The entry at `i` for writing. Every in-place change of a value goes through here.
    ///
    /// # Panics
    /// When `i` is not a live slot: callers get indices from [`Db::find`] or [`Db::insert`].
    pub fn entry_mut(&mut self, i: u32) -> &mut Entry {
        self.before_write(i);
        match self.slot_mut(i) {
            Slot::Used(e) => e,
            Slot::Free { .. } => panic!("slot {i} is free"),
        }
    }

    /// The entry at `i` for reading.
    ///
    /// # Panics
    /// When `i` is not a live slot.
    pub fn entry(&self, i: u32) -> &Entry {
        match self.slot(i) {
            Slot::Used(e) => e,
            Slot::Free { .. } => panic!("slot {i} is free"),
        }
    }

    /// Refreshes the access clock of the entry at `i`: not a change of its data, so a
    /// snapshot in progress is not involved.
    pub fn touch(&mut self, i: u32, clock: impl FnOnce(u32) -> u32) {
        if let Slot::Used(e) = self.slot_mut(i) {
            e.access = clock(e.access);
        }
    }

    /// The snapshot hook: encodes the pre-image of slot `i` if a snapshot still needs it.
    fn before_write(&mut self, i: u32) {
        let Some(s) = self.snap.as_deref_mut() else {
            return;
        };
        let current = match self
            .chunks
            .get(i as usize / CHUNK)
            .and_then(|c| c.get(i as usize % CHUNK))
        {
            Some(Slot::Used(e)) => Some(e),
            _ => None,
        };
        s.before_write(i, current);
    }

    /// Sets or clears the expiry of the entry at `i`, keeping the `expires` count right.
    pub fn set_expire(&mut self, i: u32, at_ms: Option<u64>) {
        let e = self.entry_mut(i);
        let had = e.expire_at != 0;
        e.expire_at = at_ms.map_or(0, |t| t.max(1));
        let has = e.expire_at != 0;
        match (had, has) {
            (false, true) => self.expires += 1,
            (true, false) => self.expires -= 1,
            _ => {}
        }
    }

    /// Inserts a key that is not present; returns its slot.
    pub fn insert(&mut self, entry: Entry) -> u32 {
        debug_assert!(self.find(&entry.key).is_none());
        let hash = self.hasher.hash_one(entry.key.as_bytes());
        self.insert_hashed(hash, entry)
    }

    /// Inserts the entry unless its key is present, hashing the key once (a loader checks
    /// every key for a repeat); gives the entry back when the key exists.
    ///
    /// # Errors
    /// The key is already present.
    pub fn try_insert(&mut self, entry: Entry) -> Result<u32, Entry> {
        let key = entry.key.as_bytes();
        let hash = self.hasher.hash_one(key);
        let chunks = &self.chunks;
        let present = self
            .index
            .find(hash, |&i| {
                match &chunks[i as usize / CHUNK][i as usize % CHUNK] {
                    Slot::Used(e) => e.key.as_bytes() == key,
                    Slot::Free { .. } => false,
                }
            })
            .is_some();
        if present {
            return Err(entry);
        }
        Ok(self.insert_hashed(hash, entry))
    }

    /// Keys the index holds before it must grow.
    pub fn capacity(&self) -> usize {
        self.index.capacity()
    }

    /// Makes room for `additional` more keys at once (the RESIZEDB hint of a payload being
    /// loaded), so the index is not rehashed, key by key, each time it doubles.
    pub fn reserve(&mut self, additional: usize) {
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.reserve(additional, |&j| {
            match &chunks[j as usize / CHUNK][j as usize % CHUNK] {
                Slot::Used(e) => hasher.hash_one(e.key.as_bytes()),
                Slot::Free { .. } => 0,
            }
        });
        self.chunks.reserve(additional.div_ceil(CHUNK));
    }

    fn insert_hashed(&mut self, hash: u64, entry: Entry) -> u32 {
        if entry.expire_at != 0 {
            self.expires += 1;
        }
        let i = if self.free_head != NONE {
            let i = self.free_head;
            let slot = self.slot_mut(i);
            let Slot::Free { next } = *slot else {
                unreachable!("free list points at a used slot")
            };
            *slot = Slot::Used(entry);
            self.free_head = next;
            i
        } else {
            if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                self.chunks.push(Vec::with_capacity(CHUNK));
            }
            let i =
                ((self.chunks.len() - 1) * CHUNK + self.chunks.last().map_or(0, Vec::len)) as u32;
            if let Some(c) = self.chunks.last_mut() {
                c.push(Slot::Used(entry));
            }
            i
        };
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            match &chunks[j as usize / CHUNK][j as usize % CHUNK] {
                Slot::Used(e) => hasher.hash_one(e.key.as_bytes()),
                Slot::Free { .. } => 0,
            }
        });
        self.len += 1;
        if let Some(s) = self.snap.as_mut() {
            s.after_insert(i);
        }
        i
    }

    /// Removes the entry at slot `i` and returns it.
    pub fn remove_at(&mut self, i: u32) -> Entry {
        self.before_write(i);
        let key_hash = self.hasher.hash_one(self.entry(i).key.as_bytes());
        if let Ok(found) = self.index.find_entry(key_hash, |&j| j == i) {
            found.remove();
        }
        let next = self.free_head;
        let old = std::mem::replace(self.slot_mut(i), Slot::Free { next });
        self.free_head = i;
        self.len -= 1;
        let Slot::Used(e) = old else {
            unreachable!("remove_at on a free slot")
        };
        if e.expire_at != 0 {
            self.expires -= 1;
        }
        e
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.find(key).map(|i| self.remove_at(i))
    }

    /// Live entries in slot order, with their slot index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Used(e) => Some((i as u32, e)),
                Slot::Free { .. } => None,
            })
    }

    /// A uniformly random live slot (RANDOMKEY, eviction sampling), `None` when empty.
    pub fn random_slot(&self, rng: &mut impl rand::Rng) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let bound = self.slot_bound();
        // Dense slabs answer in a few probes; a slab left sparse by mass deletion falls back to
        // picking among the live entries directly.
        for _ in 0..64 {
            let i = rng.random_range(0..bound);
            if self.entry_at(i).is_some() {
                return Some(i);
            }
        }
        let nth = rng.random_range(0..self.len);
        self.iter().nth(nth).map(|(i, _)| i)
    }

    /// The estimated remaining time to live (ms) of the keys with an expiry.
    pub fn avg_ttl(&self) -> u64 {
        self.avg_ttl
    }

    /// Folds one active expiry pass's sample into [`Db::avg_ttl`] as Redis does: the mean of
    /// the positive TTLs seen, weighted 1/50 against the estimate so far (or starting it);
    /// a database without expiring keys has none.
    pub fn record_ttls(&mut self, ttl_sum: u64, samples: u64) {
        if self.expires == 0 {
            self.avg_ttl = 0;
            return;
        }
        let Some(avg) = ttl_sum.checked_div(samples) else {
            return;
        };
        if self.avg_ttl == 0 {
            self.avg_ttl = avg;
        }
        self.avg_ttl = (self.avg_ttl / 50) * 49 + avg / 50;
    }

    /// Drops every key; the memory goes back to the allocator. A snapshot in progress keeps
    /// the old table and finishes walking it.
    pub fn clear(&mut self) {
        let snap = self.snap.take();
        let old = std::mem::replace(
            self,
            Db {
                hasher: self.hasher.clone(),
                ..Db::default()
            },
        );
        if let Some(mut s) = snap {
            s.detach(Box::new(old));
            self.snap = Some(s);
        }
    }

    /// Starts a point-in-time snapshot of this database as database `db_index`; entries are
    /// encoded with `encode` as the walk or writes reach them.
    pub fn begin_snapshot(&mut self, db_index: usize, encode: snapshot::Encode) {
        self.snap = Some(Box::new(DbSnapshot::new(
            db_index,
            self.slot_bound(),
            self.len as u64,
            encode,
        )));
    }

    /// Advances the snapshot walk by up to `budget` slots; true when it is complete (or when
    /// no snapshot is running).
    pub fn snapshot_step(&mut self, budget: u32) -> bool {
        let Some(mut s) = self.snap.take() else {
            return true;
        };
        let finished = s.step(self, budget);
        self.snap = Some(s);
        finished
    }

    pub fn snapshot(&self) -> Option<&DbSnapshot> {
        self.snap.as_deref()
    }

    pub fn snapshot_mut(&mut self) -> Option<&mut DbSnapshot> {
        self.snap.as_deref_mut()
    }

    /// Ends the snapshot (finished or aborted) and returns its state, with any output not yet
    /// taken.
    pub fn end_snapshot(&mut self) -> Option<Box<DbSnapshot>> {
        self.snap.take()
    }
}

/// All databases of the server.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        Keyspace {
            dbs: (0..databases).map(|_| Db::default()).collect(),
        }
    }

    pub fn db(&self, n: usize) -> &Db {
        &self.dbs[n]
    }

    pub fn db_mut(&mut self, n: usize) -> &mut Db {
        &mut self.dbs[n]
    }

    pub fn num_dbs(&self) -> usize {
        self.dbs.len()
    }

    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Total keys over all databases.
    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    pub fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    pub fn flush_all(&mut self) {
        self.dbs.iter_mut().for_each(Db::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SmallBytes {
        SmallBytes::new(v.as_bytes())
    }

    #[test]
    fn sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert!(
            std::mem::size_of::<Slot>() <= 64,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn insert_find_remove_reuses_slots() {
        let mut db = Db::default();
        let n = 3 * CHUNK as u32 + 5;
        for k in 0..n {
            db.insert(Entry::new(s(&format!("key:{k}")), Value::Str(s("v"))));
        }
        assert_eq!(db.len(), n as usize);
        for k in (0..n).step_by(2) {
            assert!(db.remove(format!("key:{k}").as_bytes()).is_some());
        }
        assert_eq!(db.len(), (n / 2) as usize);
        let bound = db.slot_bound();
        for k in (0..n).step_by(2) {
            db.insert(Entry::new(s(&format!("again:{k}")), Value::Str(s("w"))));
        }
        assert_eq!(db.slot_bound(), bound, "freed slots are reused");
        for k in (1..n).step_by(2) {
            let i = db
                .find(format!("key:{k}").as_bytes())
                .expect("odd keys stay");
            assert_eq!(db.entry(i).key, s(&format!("key:{k}")));
        }
        assert_eq!(db.iter().count(), db.len());
    }

    #[test]
    fn expires_are_counted() {
        let mut db = Db::default();
        let i = db.insert(Entry::new(s("a"), Value::Str(s("1"))));
        db.set_expire(i, Some(10));
        db.set_expire(i, Some(20));
        assert_eq!(db.expires(), 1);
        assert!(db.entry(i).is_expired(20));
        assert!(!db.entry(i).is_expired(19));
        db.remove_at(i);
        assert_eq!(db.expires(), 0);
    }
}
