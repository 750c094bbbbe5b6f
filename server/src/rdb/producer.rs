//! The point-in-time RDB stream of the whole keyspace, produced while the server keeps
//! serving: [`RdbProducer`] starts a fork-less snapshot of every database at one instant
//! (see `keyspace/snapshot.rs`) and hands out the RDB bytes in chunks, one bounded step at a
//! time, on the main thread.
//!
//! The stream is a complete RDB body (header, AUX fields, keys, EOF) *without* the 8-byte
//! checksum trailer: the consumer wraps its destination in a
//! [`ChecksumWriter`](super::ChecksumWriter), so the CRC64 is computed on the
//! consumer's thread. Consumers: the dump file writer (BGSAVE, SAVE) and diskless
//! replication streaming to a replica's socket (`replication/master.rs`).
//!
//! Keys of a database reach the stream in two ways: the walker's slot order, and pre-images
//! encoded when a write touches a key the walker has not reached yet. Pre-images may belong
//! to any database, so every step drains every database's pending output, preceded by a
//! SELECTDB when the stream's current database changes (Redis's loader accepts repeated
//! SELECTDBs). Each key appears exactly once, as it was when the snapshot began.
//!
//! Using it (what `save.rs` does with a file; a diskless sync does the same with sockets):
//! 1. [`RdbProducer::begin`] on the main thread: the snapshot instant;
//! 2. between client batches, [`RdbProducer::step`] into a fresh chunk, handed to the
//!    consumer's thread (a bounded channel keeps memory bounded);
//! 3. the consumer writes each chunk through `ChecksumWriter::write` and calls `finish` after
//!    the chunk of the step that returned true;
//! 4. to cancel, [`RdbProducer::abort`].
//!
//! One producer at a time (a database holds one snapshot): a running BGSAVE owns one in
//! `Persistence::bgsave`, a diskless full sync marks `Persistence::repl_snapshot`; each
//! starts only when `Persistence::snapshot_busy` is false (SAVE at shutdown or FLUSHALL
//! replaces a running one, whose next step then fails with [`SnapshotLost`]).
//!
//! This module must not do I/O or decide when to run: the driver (`save.rs`, replication)
//! calls [`RdbProducer::step`] between client batches and owns the destination.

use super::{Aux, RdbWriter, WriterOptions};
use crate::keyspace::Keyspace;

/// Slots the walker visits between checks of the output size.
const WALK_GRAIN: u32 = 64;

/// The snapshot this producer was walking disappeared (the keyspace was replaced, or
/// another snapshot was started over it): the stream cannot be completed.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot of database {0} was lost")]
pub struct SnapshotLost(pub usize);

/// A point-in-time RDB stream of every database.
pub struct RdbProducer {
    /// Header and AUX fields, not yet handed out.
    header: Option<Vec<u8>>,
    /// Keys and keys with an expiry per database index at the start (the RESIZEDB hint).
    sizes: Vec<(u64, u64)>,
    /// Databases (by index) whose walk is complete.
    walked: Vec<bool>,
    /// The database the stream's last SELECTDB named.
    selected: Option<usize>,
    /// Writes SELECTDB/RESIZEDB and EOF.
    frame: RdbWriter<Vec<u8>>,
    total_keys: u64,
    done: bool,
}

impl std::fmt::Debug for RdbProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdbProducer")
            .field("selected", &self.selected)
            .field("total_keys", &self.total_keys)
            .field("done", &self.done)
            .finish()
    }
}

impl RdbProducer {
    /// Starts the snapshot of every database, now. Any snapshot already running on the
    /// keyspace is replaced: callers run one producer at a time.
    pub fn begin(ks: &mut Keyspace, aux: &Aux, compression: bool) -> Self {
        let encode = if compression {
            super::convert::encode_compressed
        } else {
            super::convert::encode_plain
        };
        let mut sizes = Vec::with_capacity(ks.num_dbs());
        for n in 0..ks.num_dbs() {
            let db = ks.db_mut(n);
            sizes.push((db.len() as u64, db.expires() as u64));
            db.begin_snapshot(n, encode);
        }
        let opts = WriterOptions {
            compression,
            checksum: false,
        };
        let header = RdbWriter::new(Vec::new(), opts, aux)
            .and_then(|mut w| w.flushed_output().map(std::mem::take))
            .unwrap_or_default();
        RdbProducer {
            header: Some(header),
            total_keys: sizes.iter().map(|s| s.0).sum(),
            walked: vec![false; sizes.len()],
            sizes,
            selected: None,
            frame: RdbWriter::fragment(Vec::new(), compression),
            done: false,
        }
    }

    /// Adds a FUNCTION2 record for each library's code after the AUX fields, before any
    /// database, where Redis 7.0 writes them.
    pub fn with_functions<'c>(mut self, codes: impl IntoIterator<Item = &'c [u8]>) -> Self {
        let mut records = Vec::new();
        for code in codes {
            // Writing to a Vec cannot fail.
            if self.frame.function(code).is_ok()
                && let Ok(bytes) = self.frame.flushed_output()
            {
                records.append(bytes);
            }
        }
        if let Some(h) = self.header.as_mut() {
            h.extend_from_slice(&records);
        }
        self
    }

    /// Keys encoded so far and keys the snapshot holds (`current_save_keys_processed` and
    /// `current_save_keys_total`).
    pub fn progress(&self, ks: &Keyspace) -> (u64, u64) {
        let done = ks
            .dbs()
            .iter()
            .filter_map(|d| d.snapshot().map(|s| s.encoded))
            .sum();
        (done, self.total_keys)
    }

    /// Whether the whole stream (EOF included) has been handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends the next part of the stream to `out`: walks up to `slots` slots, stopping
    /// early once `out` holds `target` bytes. Returns true when the stream is complete (the
    /// EOF opcode is in `out` and every snapshot has ended).
    ///
    /// # Errors
    /// A database's snapshot disappeared; the others are ended.
    pub fn step(
        &mut self,
        ks: &mut Keyspace,
        slots: u32,
        target: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, SnapshotLost> {
        if self.done {
            return Ok(true);
        }
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
        let mut walked = 0u32;
        loop {
            if let Err(e) = self.drain(ks, out) {
                Self::end_all(ks);
                return Err(e);
            }
            if out.len() >= target || walked >= slots {
                return Ok(false);
            }
            let next = (0..ks.num_dbs()).find_map(|pos| {
                let s = ks.db_mut(pos).snapshot_mut()?;
                (!self.walked[s.db_index]).then_some((pos, s.db_index))
            });
            let Some((pos, index)) = next else {
                self.finish(ks, out);
                return Ok(true);
            };
            if ks.db_mut(pos).snapshot_step(WALK_GRAIN) {
                self.walked[index] = true;
            }
            walked = walked.saturating_add(WALK_GRAIN);
        }
    }

    /// Ends every snapshot without completing the stream (BGSAVE killed, replica gone).
    pub fn abort(self, ks: &mut Keyspace) {
        Self::end_all(ks);
    }

    fn end_all(ks: &mut Keyspace) {
        for n in 0..ks.num_dbs() {
            ks.db_mut(n).end_snapshot();
        }
    }

    /// Moves every database's encoded keys into `out`, each run behind its SELECTDB.
    fn drain(&mut self, ks: &mut Keyspace, out: &mut Vec<u8>) -> Result<(), SnapshotLost> {
        for pos in 0..ks.num_dbs() {
            let s = ks.db_mut(pos).snapshot_mut().ok_or(SnapshotLost(pos))?;
            if s.output_len() == 0 {
                continue;
            }
            let index = s.db_index;
            let bytes = s.take_output();
            self.select(index, out);
            out.extend_from_slice(&bytes);
        }
        Ok(())
    }

    fn select(&mut self, index: usize, out: &mut Vec<u8>) {
        if self.selected == Some(index) {
            return;
        }
        self.selected = Some(index);
        let (keys, expires) = self.sizes.get(index).copied().unwrap_or((0, 0));
        // Writing to a Vec cannot fail.
        if self.frame.select_db(index as u32, keys, expires).is_ok()
            && let Ok(bytes) = self.frame.flushed_output()
        {
            out.append(bytes);
        }
    }

    /// Ends the snapshots, drains what they still hold and writes EOF.
    fn finish(&mut self, ks: &mut Keyspace, out: &mut Vec<u8>) {
        for n in 0..ks.num_dbs() {
            if let Some(mut s) = ks.db_mut(n).end_snapshot() {
                let bytes = s.take_output();
                if !bytes.is_empty() {
                    self.select(s.db_index, out);
                    out.extend_from_slice(&bytes);
                }
            }
        }
        if self.frame.end_of_stream().is_ok()
            && let Ok(bytes) = self.frame.flushed_output()
        {
            out.append(bytes);
        }
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, SmallBytes, Value};
    use crate::rdb::{ChecksumWriter, Item, RdbReader, RdbValue};
    use std::collections::BTreeMap;

    fn put(ks: &mut Keyspace, db: usize, k: &str, v: &str) {
        let d = ks.db_mut(db);
        let value = Value::Str(SmallBytes::new(v.as_bytes()));
        match d.find(k.as_bytes()) {
            Some(i) => d.entry_mut(i).value = value,
            None => {
                d.insert(Entry::new(SmallBytes::new(k.as_bytes()), value));
            }
        }
    }

    fn read(bytes: &[u8]) -> BTreeMap<(u32, Vec<u8>), Vec<u8>> {
        let mut cw = ChecksumWriter::new(Vec::new(), true);
        cw.write(bytes).expect("vec");
        let file = cw.finish().expect("vec");
        let mut out = BTreeMap::new();
        for item in RdbReader::new(&file[..]).expect("header") {
            if let Item::Entry(e) = item.expect("valid stream") {
                let RdbValue::String(v) = e.value else {
                    panic!("string expected")
                };
                assert!(out.insert((e.db, e.key), v).is_none(), "key twice");
            }
        }
        out
    }

    #[test]
    fn stream_is_the_state_at_the_start_across_databases() {
        let mut ks = Keyspace::new(4);
        for i in 0..5000 {
            put(&mut ks, i % 3, &format!("k{i}"), &format!("v{i}"));
        }
        let expected: BTreeMap<(u32, Vec<u8>), Vec<u8>> = (0..5000)
            .map(|i| {
                (
                    ((i % 3) as u32, format!("k{i}").into_bytes()),
                    format!("v{i}").into_bytes(),
                )
            })
            .collect();
        let mut p = RdbProducer::begin(&mut ks, &Aux::default(), true);
        let mut stream = Vec::new();
        let mut round = 0;
        loop {
            // Writes everywhere between steps: overwrite, delete, create, flush, swap.
            for j in 0..20 {
                let i = (round * 37 + j * 101) % 5000;
                put(&mut ks, i % 3, &format!("k{i}"), "changed");
                ks.db_mut((i + 1) % 3)
                    .remove(format!("k{}", i + 1).as_bytes());
                put(&mut ks, 3, &format!("new{round}-{j}"), "n");
            }
            if round == 7 {
                ks.swap(0, 2);
            }
            if round == 9 {
                ks.db_mut(1).clear();
            }
            let mut chunk = Vec::new();
            let done = p.step(&mut ks, 512, 4096, &mut chunk).expect("step");
            stream.extend_from_slice(&chunk);
            round += 1;
            if done {
                break;
            }
        }
        assert!(p.is_done());
        assert_eq!(read(&stream), expected);
        assert!(ks.db_mut(0).snapshot_mut().is_none(), "snapshots ended");
    }

    #[test]
    fn lost_snapshot_is_reported() {
        let mut ks = Keyspace::new(2);
        put(&mut ks, 0, "a", "1");
        let mut p = RdbProducer::begin(&mut ks, &Aux::default(), false);
        ks.db_mut(1).end_snapshot();
        let mut out = Vec::new();
        assert!(p.step(&mut ks, 10, 10, &mut out).is_err());
        assert!(ks.db_mut(0).snapshot_mut().is_none());
    }
}
