//! The RDB payload of a full sync: producing it from the keyspace on the master and loading
//! it into a fresh keyspace on the replica. It must not do I/O on sockets or decide framing:
//! `master.rs` and `replica.rs` own the wire.
//!
//! The producer is blocking: it encodes the whole keyspace in one call on the main thread,
//! so the snapshot and the offset announced in `+FULLRESYNC` are taken at the same instant
//! by construction (no write can run in between).

use crate::keyspace::{Entry, Keyspace, SmallBytes};
use crate::persistence::convert::{self, LoadLimits};
use crate::persistence::rdb::{Aux, Item, RdbError, RdbReader, RdbWriter, WriterOptions};
use crate::server::Server;
use std::io::Read;

/// Why a received payload could not become the dataset.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Rdb(#[from] RdbError),
    #[error("DB index {0} is out of range")]
    Db(u32),
}

/// The RDB image of the whole keyspace as of now, carrying the replication AUX fields
/// (`repl-stream-db`, `repl-id`, `repl-offset`) that match the `+FULLRESYNC` line, so a
/// replica that keeps it as its dump can partially resync after a restart.
///
/// # Errors
/// Encoding failed (a value the writer refuses).
pub fn snapshot_rdb(srv: &Server, replid: &str, offset: u64) -> Result<Vec<u8>, RdbError> {
    let aux = Aux {
        redis_ver: Some(crate::info::REDIS_VERSION.to_string()),
        redis_bits: Some(64),
        ctime: Some((srv.now_ms / 1000) as i64),
        used_mem: Some(crate::memory::used_memory() as i64),
        repl_stream_db: Some(0),
        repl_id: Some(replid.to_string()),
        repl_offset: Some(offset as i64),
        aof_base: Some(0),
        other: Vec::new(),
    };
    let opts = WriterOptions {
        compression: srv.config.rdbcompression,
        checksum: srv.config.rdbchecksum,
    };
    let mut w = RdbWriter::new(Vec::new(), opts, &aux)?;
    for (i, db) in srv.keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        w.select_db(i as u32, db.len() as u64, db.expires() as u64)?;
        for (_, e) in db.iter() {
            convert::write_entry(&mut w, e)?;
        }
    }
    w.finish()
}

/// Parses a whole RDB stream into a new keyspace of `databases` databases; the caller swaps
/// it in only when this returns `Ok`, so a failed or truncated transfer never replaces the
/// dataset with part of one.
///
/// # Errors
/// A corrupt or truncated payload, or a database index out of range.
pub fn load_rdb<R: Read>(
    input: R,
    databases: usize,
    limits: LoadLimits,
) -> Result<(Keyspace, Aux), LoadError> {
    let mut reader = RdbReader::new(input)?.with_max_databases(databases as u32);
    let mut ks = Keyspace::new(databases);
    while let Some(item) = reader.next_item()? {
        let Item::Entry(e) = item else {
            continue;
        };
        let db = e.db as usize;
        if db >= databases {
            return Err(LoadError::Db(e.db));
        }
        let value = convert::from_rdb(e.value, limits);
        let d = ks.db_mut(db);
        let slot = d.insert(Entry::new(SmallBytes::new(&e.key), value));
        if e.expire_ms.is_some() {
            d.set_expire(slot, e.expire_ms);
        }
    }
    Ok((ks, reader.aux().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
        let rdb = snapshot_rdb(&srv, &"a".repeat(40), 77).expect("rdb");
        let limits = LoadLimits::from_config(&srv.config);
        let (ks, aux) = load_rdb(&rdb[..], 16, limits).expect("load");
        assert_eq!(aux.repl_offset, Some(77));
        assert_eq!(ks.db(2).len(), 2);
        let s = ks.db(2).find(b"s").expect("s");
        assert_eq!(ks.db(2).entry(s).expire_at(), Some(u64::MAX / 4));
        assert!(ks.db(0).is_empty());
    }
}
