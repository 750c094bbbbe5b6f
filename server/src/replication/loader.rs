//! The RDB payload of a full sync on the replica side: loading it into a fresh keyspace, on
//! a thread of its own ([`spawn_load`]) so the link task keeps reading the socket and
//! talking to the master meanwhile. With diskless load the parser is fed the payload as it
//! arrives ([`ChunkReader`]); nothing buffers the whole payload.
//! It must not do I/O on sockets or decide framing: `master.rs` and `replica.rs` own the
//! wire. The master produces the payload with `rdb::producer::RdbProducer` (socket
//! target) or sends the BGSAVE file (disk target).

use crate::keyspace::{Entry, Keyspace, SmallBytes};
use crate::rdb::convert::{self, LoadLimits};
use crate::rdb::{Aux, Item, RdbError, RdbReader};
use std::io::Read;
use tokio::sync::{mpsc, oneshot};

/// What the loader thread hands back: the keyspace, the AUX fields and the code of each
/// function library (compiled by the caller: the interpreter lives on the main thread).
pub type Loaded = Result<(Keyspace, Aux, Vec<Vec<u8>>), LoadError>;

/// A blocking reader over payload chunks sent by the link task; ends (reads 0) when the
/// sender is dropped, so an interrupted transfer ends the parse with a truncation error.
/// Each chunk it has read goes back to the link task on `spent`, to be filled again: the
/// transfer then runs on a handful of buffers instead of allocating (and faulting in) a
/// fresh one for every read of the socket.
pub struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// The link task's ends of a [`ChunkReader`]: where chunks go, and where read ones come back.
pub struct ChunkSender {
    pub tx: mpsc::Sender<Vec<u8>>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl ChunkSender {
    /// An empty buffer to fill: one the reader is done with, or a new one.
    pub fn buffer(&self) -> Vec<u8> {
        let mut b = self.spent.try_recv().unwrap_or_default();
        b.clear();
        b
    }
}

impl ChunkReader {
    /// A reader and its sender, with up to `depth` chunks in flight between them.
    pub fn channel(depth: usize) -> (ChunkSender, ChunkReader) {
        let (tx, rx) = mpsc::channel(depth);
        let (back, spent) = std::sync::mpsc::channel();
        let reader = ChunkReader {
            rx,
            spent: back,
            chunk: Vec::new(),
            pos: 0,
        };
        (ChunkSender { tx, spent }, reader)
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    let done = std::mem::replace(&mut self.chunk, c);
                    // The link task may be gone already; the buffer is then simply freed.
                    let _ = self.spent.send(done);
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Parses `input` on a new thread; the result arrives on the returned channel.
///
/// # Errors
/// The thread could not be started.
pub fn spawn_load<R: Read + Send + 'static>(
    input: R,
    databases: usize,
    limits: LoadLimits,
) -> std::io::Result<oneshot::Receiver<Loaded>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("rdb-load".into())
        .spawn(move || {
            let _ = tx.send(load_rdb(input, databases, limits));
        })?;
    Ok(rx)
}

/// Fewest payload bytes a key takes (type, key length, value length): a RESIZEDB hint is
/// trusted only as far as the bytes already received could hold that many keys.
const MIN_KEY_BYTES: u64 = 3;

/// Grows `db`'s index toward the payload's RESIZEDB `hint` when it is full, so a large
/// dataset's index is sized in a step or two instead of doubling (and rehashing every key)
/// a dozen times. The hint is the master's word: what is reserved stays proportional to the
/// `received` bytes, so a hostile hint costs no more than the keys that could follow it.
fn presize(db: &mut crate::keyspace::Db, hint: usize, received: u64) {
    let len = db.len();
    if hint <= len || len < db.capacity() {
        return;
    }
    let affordable = usize::try_from(received / MIN_KEY_BYTES).unwrap_or(usize::MAX);
    let want = hint.min(affordable).max(len + 1);
    db.reserve(want - len);
}

/// Why a received payload could not become the dataset.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Rdb(#[from] RdbError),
    #[error("DB index {0} is out of range")]
    Db(u32),
    /// Redis stops on a key the payload holds twice ("RDB has duplicated key"); inserting it
    /// again would break the keyspace's one-entry-per-key index.
    #[error("RDB has duplicated key '{key}' in DB {db}")]
    Duplicate { key: String, db: u32 },
}

/// Parses a whole RDB stream into a new keyspace of `databases` databases; the caller swaps
/// it in only when this returns `Ok`, so a failed or truncated transfer never replaces the
/// dataset with part of one.
///
/// # Errors
/// A corrupt or truncated payload, or a database index out of range.
pub fn load_rdb<R: Read>(input: R, databases: usize, limits: LoadLimits) -> Loaded {
    let mut reader = RdbReader::new(input)?.with_max_databases(databases as u32);
    let mut ks = Keyspace::new(databases);
    // Per database, the key count of its RESIZEDB.
    let mut hints = vec![0usize; databases];
    let mut db = 0;
    let mut libraries = Vec::new();
    while let Some(item) = reader.next_item()? {
        let e = match item {
            Item::Entry(e) => e,
            Item::Function(code) => {
                libraries.push(code);
                continue;
            }
            Item::SelectDb(n) => {
                db = n as usize;
                continue;
            }
            Item::ResizeDb { keys, .. } => {
                if let Some(h) = hints.get_mut(db) {
                    *h = usize::try_from(keys).unwrap_or(usize::MAX);
                }
                continue;
            }
            _ => continue,
        };
        let index = e.db as usize;
        if index >= databases {
            return Err(LoadError::Db(e.db));
        }
        let d = ks.db_mut(index);
        presize(d, hints[index], reader.offset());
        let value = convert::from_rdb(e.value, limits);
        let slot = d
            .try_insert(Entry::new(SmallBytes::from_vec(e.key), value))
            .map_err(|dup| LoadError::Duplicate {
                key: String::from_utf8_lossy(&dup.key).into_owned(),
                db: e.db,
            })?;
        if e.expire_ms.is_some() {
            d.set_expire(slot, e.expire_ms);
        }
    }
    Ok((ks, reader.aux().clone(), libraries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::rdb::ChecksumWriter;
    use crate::rdb::producer::RdbProducer;
    use crate::state::Server;

    /// Found while writing the `rdb_loader` fuzz target: a payload holding one key twice
    /// tripped the keyspace's one-entry-per-key assertion (and broke its index in release).
    #[test]
    fn a_duplicated_key_is_refused() {
        use crate::rdb::{RdbWriter, WriterOptions};
        let mut w =
            RdbWriter::new(Vec::new(), WriterOptions::default(), &Aux::default()).expect("vec");
        w.select_db(0, 2, 0).expect("vec");
        w.string(b"k", b"1", None).expect("vec");
        w.string(b"k", b"2", None).expect("vec");
        let rdb = w.finish().expect("vec");
        let limits = LoadLimits::from_config(&Config::default());
        let err = load_rdb(&rdb[..], 16, limits).expect_err("duplicate");
        assert_eq!(err.to_string(), "RDB has duplicated key 'k' in DB 0");
    }

    #[test]
    fn a_resizedb_hint_is_trusted_as_far_as_the_bytes_received() {
        // A hostile hint after 300 bytes reserves room for at most 100 keys.
        let mut d = crate::keyspace::Db::default();
        presize(&mut d, usize::MAX, 300);
        assert!((1..1000).contains(&d.capacity()), "{}", d.capacity());
        // A hint the bytes can back is reserved in one step, and not again while room lasts.
        let mut d = crate::keyspace::Db::default();
        presize(&mut d, 100_000, 10_000_000);
        let cap = d.capacity();
        assert!(cap >= 100_000, "{cap}");
        d.insert(Entry::new(
            SmallBytes::new(b"k"),
            crate::keyspace::Value::Str(SmallBytes::new(b"v")),
        ));
        presize(&mut d, 100_000, 10_000_000);
        assert_eq!(d.capacity(), cap);
        assert!(
            d.try_insert(Entry::new(
                SmallBytes::new(b"k"),
                crate::keyspace::Value::Str(SmallBytes::new(b"w"))
            ))
            .is_err()
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn round_trip_through_rdb() {
        let mut srv = Server::new(Config::default());
        use crate::keyspace::{Set, Value};
        let d = srv.keyspace.db_mut(2);
        d.insert(Entry::new(
            SmallBytes::new(b"k"),
            Value::Str(SmallBytes::new(b"v")),
        ));
        let mut set = Set::for_first(b"1");
        set.add(b"1", 512);
        set.add(b"x", 512);
        let slot = d.insert(Entry::new(SmallBytes::new(b"s"), Value::Set(Box::new(set))));
        d.set_expire(slot, Some(u64::MAX / 4));
        let aux = Aux {
            repl_offset: Some(77),
            ..Aux::default()
        };
        let mut p = RdbProducer::begin(&mut srv.keyspace, &aux, true);
        let mut body = ChecksumWriter::new(Vec::new(), true);
        loop {
            let mut chunk = Vec::new();
            let last = p.step(&mut srv.keyspace, 16, 64, &mut chunk).expect("step");
            body.write(&chunk).expect("vec");
            if last {
                break;
            }
        }
        let rdb = body.finish().expect("vec");
        let limits = LoadLimits::from_config(&srv.config);
        let (ks, aux, libraries) = load_rdb(&rdb[..], 16, limits).expect("load");
        assert!(libraries.is_empty());
        assert_eq!(aux.repl_offset, Some(77));
        assert_eq!(ks.db(2).len(), 2);
        let s = ks.db(2).find(b"s").expect("s");
        assert_eq!(ks.db(2).entry(s).expire_at(), Some(u64::MAX / 4));
        assert!(ks.db(0).is_empty());
    }
}
