//! Fork-less point-in-time snapshots of one database.
//!
//! Redis snapshots with fork(): the child sees a frozen copy and the kernel copies every page
//! the parent writes, up to doubling memory under writes. Here the snapshot is taken in place
//! while commands keep running:
//!
//! - a *walker* visits the slab in slot order (slots never move, so the order is stable) and
//!   encodes each entry that existed when the snapshot began;
//! - every mutation goes through the database's choke points (`Db::entry_mut`,
//!   `insert`, `remove_at`, `set_expire`, `clear`); before the first change of an entry the
//!   walker has not reached yet, the entry's *pre-image* is encoded right there and its slot
//!   is marked done, so the walker skips it later;
//! - entries created after the start are marked done when inserted below the start bound
//!   (a reused free slot) or lie beyond the bound the walker stops at;
//! - FLUSHDB/FLUSHALL detach the whole old table into the snapshot, which finishes walking it
//!   while the live database starts empty; SWAPDB moves the snapshot with the table, and the
//!   snapshot remembers which database index it describes.
//!
//! Each entry is encoded exactly once, as it was at the start. The extra memory is one bit
//! per slot plus the encoded bytes not yet drained by the consumer (file or socket); no value
//! is ever copied in memory. The encoding itself is supplied by the caller (RDB), so this
//! module knows nothing of file formats, and the table it walks is anything that finds an
//! entry by slot ([`Slots`]), so it does not depend on the database it is part of.

use super::entry::Entry;

/// A table of entries by slot index: the live database, or the one a flush detached.
pub trait Slots {
    fn entry_at(&self, i: u32) -> Option<&Entry>;
}

/// Appends one entry, as the snapshot's format encodes it, to the output.
pub type Encode = fn(&Entry, &mut Vec<u8>);

/// Snapshot state carried by a database (`Db`) while a snapshot of it is in progress.
pub struct DbSnapshot {
    /// The database index this snapshot describes (it survives SWAPDB).
    pub db_index: usize,
    /// Slots that existed at the start; the walker stops here.
    bound: u32,
    /// Next slot the walker visits.
    cursor: u32,
    /// One bit per slot below `bound`: already encoded, or born after the start.
    done: Vec<u64>,
    encode: Encode,
    /// Encoded entries not yet taken by the consumer.
    out: Vec<u8>,
    /// Entries encoded so far.
    pub encoded: u64,
    /// Keys the database held at the start (progress reporting).
    pub total: u64,
    /// The table as it was when FLUSHDB/FLUSHALL replaced it; walked instead of the live one.
    detached: Option<Box<dyn Slots + Send>>,
}

impl std::fmt::Debug for DbSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSnapshot")
            .field("db_index", &self.db_index)
            .field("cursor", &self.cursor)
            .field("bound", &self.bound)
            .field("encoded", &self.encoded)
            .finish()
    }
}

impl DbSnapshot {
    pub(super) fn new(db_index: usize, bound: u32, total: u64, encode: Encode) -> Self {
        DbSnapshot {
            db_index,
            bound,
            cursor: 0,
            done: vec![0; (bound as usize).div_ceil(64)],
            encode,
            out: Vec::new(),
            encoded: 0,
            total,
            detached: None,
        }
    }

    fn is_done(&self, i: u32) -> bool {
        self.done[i as usize / 64] & (1 << (i % 64)) != 0
    }

    fn mark(&mut self, i: u32) {
        self.done[i as usize / 64] |= 1 << (i % 64);
    }

    /// Whether slot `i` of the live table still belongs to the snapshot's past: below the
    /// bound, not yet walked, not yet encoded, and the live table is the one being walked.
    fn pending(&self, i: u32) -> bool {
        self.detached.is_none() && i < self.bound && i >= self.cursor && !self.is_done(i)
    }

    /// Called before slot `i` changes: encodes its pre-image if the snapshot still needs it.
    pub(super) fn before_write(&mut self, i: u32, current: Option<&Entry>) {
        if !self.pending(i) {
            return;
        }
        if let Some(e) = current {
            (self.encode)(e, &mut self.out);
            self.encoded += 1;
        }
        self.mark(i);
    }

    /// Called after a new entry took slot `i`: the walker must not see it.
    pub(super) fn after_insert(&mut self, i: u32) {
        if self.pending(i) {
            self.mark(i);
        }
    }

    /// Takes over the table that FLUSHDB/FLUSHALL is discarding, unless an earlier flush
    /// already handed over the table of the snapshot's start (later tables are not part of it).
    pub(super) fn detach(&mut self, old: Box<dyn Slots + Send>) {
        if self.detached.is_none() {
            self.detached = Some(old);
        }
    }

    /// Encoded bytes ready for the consumer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Walks up to `budget` slots of `live` (or of the detached table); returns true when the
    /// whole start state has been encoded.
    pub(super) fn step<T: Slots>(&mut self, live: &T, budget: u32) -> bool {
        let end = self.cursor.saturating_add(budget).min(self.bound);
        match self.detached.take() {
            Some(old) => {
                self.walk(old.as_ref(), end);
                self.detached = Some(old);
            }
            None => self.walk(live, end),
        }
        self.cursor = end;
        self.cursor >= self.bound
    }

    fn walk<T: Slots + ?Sized>(&mut self, table: &T, end: u32) {
        for i in self.cursor..end {
            if self.is_done(i) {
                continue;
            }
            if let Some(e) = table.entry_at(i) {
                (self.encode)(e, &mut self.out);
                self.encoded += 1;
            }
            self.done[i as usize / 64] |= 1 << (i % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::keyspace::{Db, Entry, SmallBytes, Value};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Test encoding: `key=value;` records, enough to rebuild the map.
    fn encode(e: &Entry, out: &mut Vec<u8>) {
        let Value::Str(v) = &e.value else {
            panic!("the test only stores strings")
        };
        out.extend_from_slice(&e.key);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b';');
    }

    fn decode(bytes: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut m = BTreeMap::new();
        for rec in bytes.split(|&c| c == b';').filter(|r| !r.is_empty()) {
            let eq = rec.iter().position(|&c| c == b'=').expect("record has =");
            let old = m.insert(rec[..eq].to_vec(), rec[eq + 1..].to_vec());
            assert!(
                old.is_none(),
                "key encoded twice: {:?}",
                String::from_utf8_lossy(&rec[..eq])
            );
        }
        m
    }

    fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
        db.iter()
            .map(|(_, e)| {
                let Value::Str(v) = &e.value else {
                    panic!("the test only stores strings")
                };
                (e.key.to_vec(), v.to_vec())
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8),
        Del(u8),
        Expire(u8),
        Flush,
        Step(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Set(k % 64, v)),
            3 => any::<u8>().prop_map(|k| Op::Del(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::Expire(k % 64)),
            1 => Just(Op::Flush),
            4 => any::<u8>().prop_map(|n| Op::Step(n % 8)),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        format!("k{k}").into_bytes()
    }

    fn apply(db: &mut Db, op: &Op) {
        match *op {
            Op::Set(k, v) => {
                let value = Value::Str(SmallBytes::new(format!("v{v}").as_bytes()));
                match db.find(&key(k)) {
                    Some(i) => db.entry_mut(i).value = value,
                    None => {
                        db.insert(Entry::new(SmallBytes::new(&key(k)), value));
                    }
                }
            }
            Op::Del(k) => {
                db.remove(&key(k));
            }
            Op::Expire(k) => {
                if let Some(i) = db.find(&key(k)) {
                    db.set_expire(i, Some(1));
                }
            }
            Op::Flush => db.clear(),
            Op::Step(n) => {
                db.snapshot_step(u32::from(n));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        /// Whatever writes interleave with the walk, the snapshot holds exactly the state at
        /// its start, each key once.
        #[test]
        fn snapshot_is_point_in_time(before in prop::collection::vec(op(), 0..120), during in prop::collection::vec(op(), 0..200)) {
            let mut db = Db::default();
            for o in before.iter().filter(|o| !matches!(o, Op::Step(_))) {
                apply(&mut db, o);
            }
            let expected = contents(&db);
            db.begin_snapshot(0, encode);
            let mut out = Vec::new();
            for o in &during {
                apply(&mut db, o);
                out.extend(db.snapshot_mut().expect("active").take_output());
            }
            while !db.snapshot_step(16) {}
            let mut snap = db.end_snapshot().expect("active");
            out.extend(snap.take_output());
            prop_assert_eq!(decode(&out), expected);
        }
    }

    #[test]
    fn memory_overhead_is_a_bit_per_slot() {
        let mut db = Db::default();
        for k in 0..10_000u32 {
            db.insert(Entry::new(
                SmallBytes::new(format!("k{k}").as_bytes()),
                Value::Str(SmallBytes::new(b"v")),
            ));
        }
        db.begin_snapshot(0, encode);
        let s = db.snapshot_mut().expect("active");
        assert_eq!(s.done.len(), 10_000usize.div_ceil(64));
        assert_eq!(
            s.output_len(),
            0,
            "nothing is encoded before a step or a write"
        );
    }
}
