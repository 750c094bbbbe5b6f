//! The format-level model the reader produces and the writer takes: values independent of
//! the encoding they were stored in, keys with their database and expiry, and the AUX
//! fields.

/// A value as the RDB format carries it, independent of the encoding it was stored in.
/// Sets, hashes and sorted sets never hold duplicate members: the reader refuses such files.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    ZSet(Vec<(Vec<u8>, f64)>),
    Stream(Box<RdbStream>),
}

/// A stream id as the format stores it: milliseconds, sequence.
pub type RdbStreamId = (u64, u64);

/// A stream's counters beyond its entries (Redis 7.0's `stream` struct).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RdbStreamMeta {
    pub last_id: RdbStreamId,
    pub first_id: RdbStreamId,
    pub max_deleted: RdbStreamId,
    pub entries_added: u64,
}

/// A stream entry: its id and field/value pairs.
pub type RdbStreamEntry = (RdbStreamId, Vec<(Vec<u8>, Vec<u8>)>);

/// A stream: its live entries in id order, its counters and its consumer groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdbStream {
    pub entries: Vec<RdbStreamEntry>,
    pub meta: RdbStreamMeta,
    pub groups: Vec<RdbGroup>,
}

/// A consumer group as the RDB stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdbGroup {
    pub name: Vec<u8>,
    pub last_id: RdbStreamId,
    /// The group's read counter; `None` from a file older than Redis 7.0, which the loader
    /// estimates as Redis does.
    pub entries_read: Option<i64>,
    /// The pending entries: id, delivery time (Unix ms), delivery count.
    pub pel: Vec<(RdbStreamId, u64, u64)>,
    pub consumers: Vec<RdbConsumer>,
}

/// A consumer of a group: its name, seen time (Unix ms) and the ids of its pending entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RdbConsumer {
    pub name: Vec<u8>,
    pub seen_time: u64,
    pub pel: Vec<RdbStreamId>,
}

impl RdbValue {
    /// The name Redis's TYPE command gives this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            RdbValue::String(_) => "string",
            RdbValue::List(_) => "list",
            RdbValue::Set(_) => "set",
            RdbValue::Hash(_) => "hash",
            RdbValue::ZSet(_) => "zset",
            RdbValue::Stream(_) => "stream",
        }
    }

    /// The same value with set, hash and sorted-set members in member order (one entry per
    /// member): the order an RDB lists them in carries no meaning, so two dumps of one dataset
    /// compare equal in this form.
    pub fn canonical(&self) -> RdbValue {
        use std::collections::{BTreeMap, BTreeSet};
        match self {
            RdbValue::Set(m) => RdbValue::Set(
                m.iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            RdbValue::Hash(p) => RdbValue::Hash(
                p.iter()
                    .cloned()
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            RdbValue::ZSet(p) => RdbValue::ZSet(
                p.iter()
                    .map(|(m, s)| (m.clone(), *s))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// One key read from an RDB stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbEntry {
    /// The database selected by the last SELECTDB (0 before any).
    pub db: u32,
    pub key: Vec<u8>,
    pub value: RdbValue,
    /// Absolute expiry in Unix milliseconds. Already-expired keys are still reported: only
    /// a master drops them on load.
    pub expire_ms: Option<u64>,
}

/// The AUX fields Redis 7.0 writes (`rdbSaveInfoAuxFields`), typed, plus any others raw.
/// Numeric fields that do not parse as integers are kept in `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aux {
    pub redis_ver: Option<String>,
    pub redis_bits: Option<i64>,
    pub ctime: Option<i64>,
    pub used_mem: Option<i64>,
    pub repl_stream_db: Option<i64>,
    /// Only a 40-character id is taken, as Redis does; others land in `other`.
    pub repl_id: Option<String>,
    pub repl_offset: Option<i64>,
    pub aof_base: Option<i64>,
    /// Fields this layer does not interpret (`lua`, `%`-prefixed ones, future ones), in order.
    pub other: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Aux {
    /// Records one AUX field as read from a file.
    pub fn apply(&mut self, key: &[u8], value: &[u8]) {
        let int = || std::str::from_utf8(value).ok()?.parse::<i64>().ok();
        let taken = match key {
            b"redis-ver" => std::str::from_utf8(value)
                .ok()
                .map(|v| self.redis_ver = Some(v.to_owned())),
            b"redis-bits" => int().map(|v| self.redis_bits = Some(v)),
            b"ctime" => int().map(|v| self.ctime = Some(v)),
            b"used-mem" => int().map(|v| self.used_mem = Some(v)),
            b"repl-stream-db" => int().map(|v| self.repl_stream_db = Some(v)),
            b"repl-id" if value.len() == 40 => std::str::from_utf8(value)
                .ok()
                .map(|v| self.repl_id = Some(v.to_owned())),
            b"repl-offset" => int().map(|v| self.repl_offset = Some(v)),
            b"aof-base" => int().map(|v| self.aof_base = Some(v)),
            _ => None,
        };
        if taken.is_none() {
            self.other.push((key.to_vec(), value.to_vec()));
        }
    }

    /// The fields in the order Redis 7.0 writes them (`other` last), as key/value text.
    pub fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let push_int = |k: &str, v: Option<i64>, out: &mut Vec<(Vec<u8>, Vec<u8>)>| {
            if let Some(v) = v {
                out.push((k.as_bytes().to_vec(), v.to_string().into_bytes()));
            }
        };
        if let Some(v) = &self.redis_ver {
            out.push((b"redis-ver".to_vec(), v.as_bytes().to_vec()));
        }
        push_int("redis-bits", self.redis_bits, &mut out);
        push_int("ctime", self.ctime, &mut out);
        push_int("used-mem", self.used_mem, &mut out);
        push_int("repl-stream-db", self.repl_stream_db, &mut out);
        if let Some(v) = &self.repl_id {
            out.push((b"repl-id".to_vec(), v.as_bytes().to_vec()));
        }
        push_int("repl-offset", self.repl_offset, &mut out);
        push_int("aof-base", self.aof_base, &mut out);
        out.extend(self.other.iter().cloned());
        out
    }
}
