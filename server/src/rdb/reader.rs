//! The streaming RDB reader: pulls bytes from any `std::io::Read` through a fixed 64 KiB
//! buffer, checksums them on the fly, and yields the header's items and keys one at a time.
//!
//! It holds at most one value in memory, never allocates more than a bounded chunk ahead of
//! the bytes actually received, validates every compact encoding before trusting it and
//! reports each failure with the byte offset where it was detected. It must not apply
//! policy: expired keys, duplicate keys across the file and database limits beyond
//! [`RdbReader::with_max_databases`] are the loader's business.

use std::io::{ErrorKind, Read};

use super::compact::{self, CompactError, Elem};
use super::encoding::{self as enc, Crc64Digest, crc64_digest};
use super::error::RdbError;
use super::model::{
    Aux, RdbConsumer, RdbEntry, RdbGroup, RdbStream, RdbStreamEntry, RdbStreamId, RdbValue,
};

const BUF_SIZE: usize = 64 * 1024;
/// The most a declared length may make us reserve before the bytes arrive.
const PREALLOC_CAP: usize = 64 * 1024;
/// The most elements a declared count may make us reserve.
const COUNT_PREALLOC_CAP: usize = 1024;

/// One thing read from an RDB stream, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An AUX field (also folded into [`RdbReader::aux`]).
    Aux { key: Vec<u8>, value: Vec<u8> },
    /// SELECTDB: the following keys belong to this database.
    SelectDb(u32),
    /// RESIZEDB: a sizing hint for the current database.
    ResizeDb { keys: u64, expires: u64 },
    /// A key with its value. Keys whose collection is empty are skipped, as Redis skips them.
    Entry(RdbEntry),
    /// A FUNCTION2 library (its source code); Redis 7.0 loads it into the function engine.
    Function(Vec<u8>),
}

/// Buffered, checksummed, offset-tracking input.
struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    crc: Crc64Digest,
    /// `buf[crc_pos..pos]` has been consumed but not yet checksummed.
    crc_pos: usize,
}

impl<R: Read> Input<R> {
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn truncated(&self, expected: &'static str) -> RdbError {
        RdbError::Truncated {
            offset: self.offset(),
            expected,
        }
    }

    /// Makes at least one byte available unless the stream ended; returns how many are.
    fn fill(&mut self) -> Result<usize, RdbError> {
        if self.pos < self.end {
            return Ok(self.end - self.pos);
        }
        self.crc.update(&self.buf[self.crc_pos..self.end]);
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.crc_pos = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RdbError::Io {
                        offset: self.base,
                        source,
                    });
                }
            }
        }
    }

    fn u8(&mut self, expected: &'static str) -> Result<u8, RdbError> {
        if self.fill()? == 0 {
            return Err(self.truncated(expected));
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], RdbError> {
        let mut out = [0u8; N];
        if self.end - self.pos >= N {
            out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
            self.pos += N;
        } else {
            for b in &mut out {
                *b = self.u8(expected)?;
            }
        }
        Ok(out)
    }

    /// Reads exactly `n` bytes, growing the result only as bytes arrive.
    fn bytes(&mut self, n: u64, expected: &'static str) -> Result<Vec<u8>, RdbError> {
        let Ok(n) = usize::try_from(n) else {
            return Err(self.truncated(expected));
        };
        let mut out = Vec::with_capacity(n.min(PREALLOC_CAP));
        while out.len() < n {
            let avail = self.fill()?;
            if avail == 0 {
                return Err(self.truncated(expected));
            }
            let take = avail.min(n - out.len());
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(out)
    }

    /// CRC64 of every byte consumed so far.
    fn checksum(&mut self) -> u64 {
        self.crc.update(&self.buf[self.crc_pos..self.pos]);
        self.crc_pos = self.pos;
        self.crc.clone().finalize()
    }
}

/// A streaming RDB reader. It buffers internally, so wrapping a file in a `BufReader` adds
/// nothing; on a socket, [`RdbReader::into_parts`] returns what was read past the RDB.
/// Create it with [`RdbReader::new`] (which reads the header), then
/// call [`RdbReader::next_item`] (or iterate) until it returns `None`: that happens only after
/// the EOF opcode and, for version 5 and later, a verified (or disabled, all-zero) checksum.
pub struct RdbReader<R> {
    input: Input<R>,
    version: u32,
    db: u32,
    max_databases: Option<u32>,
    aux: Aux,
    done: bool,
    failed: bool,
    lzf_out: Vec<u8>,
}

impl<R: Read> RdbReader<R> {
    /// Reads and checks the 9-byte header `REDIS%04d`.
    ///
    /// # Errors
    /// A wrong signature, a version Redis 7.0 does not load, or a short or failing input.
    pub fn new(inner: R) -> Result<Self, RdbError> {
        let mut input = Input {
            inner,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            crc: crc64_digest(),
            crc_pos: 0,
        };
        let header: [u8; 9] = input.array("the 9-byte RDB header")?;
        if &header[..5] != b"REDIS" {
            return Err(RdbError::BadSignature);
        }
        let version = std::str::from_utf8(&header[5..])
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or(RdbError::BadSignature)?;
        if !(1..=enc::RDB_VERSION).contains(&version) {
            return Err(RdbError::UnsupportedVersion(version));
        }
        Ok(Self {
            input,
            version,
            db: 0,
            max_databases: None,
            aux: Aux::default(),
            done: false,
            failed: false,
            lzf_out: Vec::new(),
        })
    }

    /// Refuses SELECTDB numbers at or above `databases`, as a Redis configured with that many
    /// databases does.
    pub fn with_max_databases(mut self, databases: u32) -> Self {
        self.max_databases = Some(databases);
        self
    }

    /// The RDB version from the header.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The AUX fields read so far.
    pub fn aux(&self) -> &Aux {
        &self.aux
    }

    /// Bytes consumed so far (the offset errors refer to).
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// Returns the underlying reader and the bytes read from it past the last consumed byte
    /// (after the checksum, these belong to whatever follows the RDB on the stream).
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.input.buf[self.input.pos..self.input.end].to_vec();
        (self.input.inner, rest)
    }

    /// Reads the next item; `Ok(None)` once the file ended correctly.
    ///
    /// # Errors
    /// Truncation, corruption, unsupported types, checksum mismatch or I/O failure; the
    /// reader must not be used after an error.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        if self.done || self.failed {
            return Ok(None);
        }
        let res = self.read_item();
        if res.is_err() {
            self.failed = true;
        }
        res
    }

    fn read_item(&mut self) -> Result<Option<Item>, RdbError> {
        let mut expire_ms: Option<u64> = None;
        loop {
            let at = self.input.offset();
            let op = self.input.u8("an opcode or value type")?;
            match op {
                enc::OPCODE_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.input.array("a 4-byte expire time")?);
                    expire_ms = Some(u64::try_from(secs).unwrap_or(0) * 1000);
                }
                enc::OPCODE_EXPIRETIME_MS => {
                    let ms = i64::from_le_bytes(self.input.array("an 8-byte expire time")?);
                    expire_ms = Some(u64::try_from(ms).unwrap_or(0));
                }
                enc::OPCODE_FREQ => {
                    self.input.u8("an LFU frequency byte")?;
                }
                enc::OPCODE_IDLE => {
                    self.read_len()?;
                }
                enc::OPCODE_SELECTDB => {
                    let db = self.read_len()?;
                    let limit = self.max_databases.map_or(u64::from(u32::MAX), u64::from);
                    let db = u32::try_from(db)
                        .ok()
                        .filter(|d| u64::from(*d) < limit)
                        .ok_or_else(|| {
                            RdbError::corrupt(
                                at,
                                format!(
                                    "SELECTDB {db} is beyond the configured number of databases"
                                ),
                            )
                        })?;
                    self.db = db;
                    return Ok(Some(Item::SelectDb(db)));
                }
                enc::OPCODE_RESIZEDB => {
                    let keys = self.read_len()?;
                    let expires = self.read_len()?;
                    return Ok(Some(Item::ResizeDb { keys, expires }));
                }
                enc::OPCODE_AUX => {
                    let key = self.read_string()?;
                    let value = self.read_string()?;
                    self.aux.apply(&key, &value);
                    return Ok(Some(Item::Aux { key, value }));
                }
                enc::OPCODE_MODULE_AUX => {
                    return Err(RdbError::UnsupportedType {
                        offset: at,
                        type_id: op,
                        name: "module AUX data, and no module can load it",
                    });
                }
                enc::OPCODE_FUNCTION_PRE_GA => {
                    return Err(RdbError::corrupt(
                        at,
                        "Pre-release function format not supported",
                    ));
                }
                enc::OPCODE_FUNCTION2 => {
                    return Ok(Some(Item::Function(self.read_string()?)));
                }
                enc::OPCODE_EOF => {
                    self.finish()?;
                    self.done = true;
                    return Ok(None);
                }
                t => {
                    let key = self.read_string()?;
                    if let Some(value) = self.read_value(t, at)? {
                        return Ok(Some(Item::Entry(RdbEntry {
                            db: self.db,
                            key,
                            value,
                            expire_ms,
                        })));
                    }
                    expire_ms = None;
                }
            }
        }
    }

    /// Checks the CRC64 trailer (versions 5 and up).
    fn finish(&mut self) -> Result<(), RdbError> {
        if self.version < 5 {
            return Ok(());
        }
        let computed = self.input.checksum();
        let stored = u64::from_le_bytes(self.input.array("the 8-byte CRC64 trailer")?);
        if stored != 0 && stored != computed {
            return Err(RdbError::ChecksumMismatch { stored, computed });
        }
        Ok(())
    }

    /// Reads a length; the flag tells whether it was a special string encoding instead.
    fn read_len_or_encoding(&mut self) -> Result<(u64, bool), RdbError> {
        let at = self.input.offset();
        let b = self.input.u8("a length")?;
        match b >> 6 {
            enc::LEN_6BIT => Ok((u64::from(b & 0x3F), false)),
            enc::LEN_14BIT => {
                let lo = self.input.u8("the second byte of a 14-bit length")?;
                Ok((u64::from(b & 0x3F) << 8 | u64::from(lo), false))
            }
            enc::LEN_ENCVAL => Ok((u64::from(b & 0x3F), true)),
            _ => match b {
                enc::LEN_32BIT => Ok((
                    u64::from(u32::from_be_bytes(self.input.array("a 32-bit length")?)),
                    false,
                )),
                enc::LEN_64BIT => Ok((
                    u64::from_be_bytes(self.input.array("a 64-bit length")?),
                    false,
                )),
                _ => Err(RdbError::corrupt(
                    at,
                    format!("unknown length encoding {b}"),
                )),
            },
        }
    }

    fn read_len(&mut self) -> Result<u64, RdbError> {
        let at = self.input.offset();
        match self.read_len_or_encoding()? {
            (len, false) => Ok(len),
            (_, true) => Err(RdbError::corrupt(
                at,
                "expected a length, found a string encoding",
            )),
        }
    }

    /// Reads a string in any of its encodings (raw, int8/16/32, LZF).
    fn read_string(&mut self) -> Result<Vec<u8>, RdbError> {
        let at = self.input.offset();
        let (len, encoded) = self.read_len_or_encoding()?;
        if !encoded {
            return self.input.bytes(len, "string bytes");
        }
        let v: i64 = match len as u8 {
            enc::ENC_INT8 => i64::from(i8::from_le_bytes(self.input.array("an int8 string")?)),
            enc::ENC_INT16 => i64::from(i16::from_le_bytes(self.input.array("an int16 string")?)),
            enc::ENC_INT32 => i64::from(i32::from_le_bytes(self.input.array("an int32 string")?)),
            enc::ENC_LZF => return self.read_lzf(at),
            other => {
                return Err(RdbError::corrupt(
                    at,
                    format!("unknown string encoding {other}"),
                ));
            }
        };
        Ok(itoa::Buffer::new().format(v).as_bytes().to_vec())
    }

    fn read_lzf(&mut self, at: u64) -> Result<Vec<u8>, RdbError> {
        let clen = self.read_len()?;
        let len = self.read_len()?;
        let compressed = self.input.bytes(clen, "LZF-compressed bytes")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l / 88 <= compressed.len())
            .ok_or_else(|| {
                RdbError::corrupt(at, "LZF string declares a length its data cannot produce")
            })?;
        enc::lzf_decompress(&compressed, len, &mut self.lzf_out).map_err(|e| {
            RdbError::corrupt(
                at,
                format!("Invalid LZF compressed string: {}", e.describe()),
            )
        })?;
        Ok(std::mem::take(&mut self.lzf_out))
    }

    fn read_binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.input.array("8 bytes of double")?))
    }

    /// The old text form: length byte (253 NaN, 254 +inf, 255 -inf) then ASCII.
    fn read_text_double(&mut self) -> Result<f64, RdbError> {
        let at = self.input.offset();
        let len = self.input.u8("a double length byte")?;
        match len {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.input.bytes(u64::from(n), "the text of a double")?;
                parse_double(&text)
                    .ok_or_else(|| RdbError::corrupt(at, "double value is not a number"))
            }
        }
    }

    /// Reads `n` strings.
    fn read_strings(&mut self, n: u64) -> Result<Vec<Vec<u8>>, RdbError> {
        let mut items = Vec::with_capacity(cap(n));
        for _ in 0..n {
            items.push(self.read_string()?);
        }
        Ok(items)
    }

    /// Reads a value of type `t` (the key has been read); `None` for an empty collection.
    fn read_value(&mut self, t: u8, at: u64) -> Result<Option<RdbValue>, RdbError> {
        let value = match t {
            enc::TYPE_STRING => RdbValue::String(self.read_string()?),
            enc::TYPE_LIST => {
                let n = self.read_len()?;
                RdbValue::List(self.read_strings(n)?)
            }
            enc::TYPE_SET => {
                let n = self.read_len()?;
                let items = self.read_strings(n)?;
                ensure_unique(
                    items.iter().map(Vec::as_slice),
                    at,
                    "Duplicate set members detected",
                )?;
                RdbValue::Set(items)
            }
            enc::TYPE_ZSET | enc::TYPE_ZSET_2 => {
                let n = self.read_len()?;
                let mut pairs = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    let member = self.read_string()?;
                    let score_at = self.input.offset();
                    let score = if t == enc::TYPE_ZSET_2 {
                        self.read_binary_double()?
                    } else {
                        self.read_text_double()?
                    };
                    if score.is_nan() {
                        return Err(RdbError::corrupt(score_at, "Zset with NAN score detected"));
                    }
                    pairs.push((member, score));
                }
                ensure_unique(
                    pairs.iter().map(|p| p.0.as_slice()),
                    at,
                    "Duplicate zset fields detected",
                )?;
                RdbValue::ZSet(pairs)
            }
            enc::TYPE_HASH => {
                let n = self.read_len()?;
                let mut pairs = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    let field = self.read_string()?;
                    let value = self.read_string()?;
                    pairs.push((field, value));
                }
                ensure_unique(
                    pairs.iter().map(|p| p.0.as_slice()),
                    at,
                    "Duplicate hash fields detected",
                )?;
                RdbValue::Hash(pairs)
            }
            enc::TYPE_HASH_ZIPMAP => {
                let (blob_at, blob) = self.read_blob()?;
                let pairs =
                    compact::zipmap_pairs(&blob).map_err(|e| blob_error(blob_at, "zipmap", e))?;
                ensure_unique(
                    pairs.iter().map(|p| p.0),
                    blob_at,
                    "Zipmap integrity check failed: duplicate fields",
                )?;
                RdbValue::Hash(
                    pairs
                        .into_iter()
                        .map(|(f, v)| (f.to_vec(), v.to_vec()))
                        .collect(),
                )
            }
            enc::TYPE_LIST_ZIPLIST => {
                let (blob_at, blob) = self.read_blob()?;
                RdbValue::List(elems(&blob, Kind::Ziplist, blob_at)?)
            }
            enc::TYPE_SET_INTSET => {
                let (blob_at, blob) = self.read_blob()?;
                let mut items = Vec::new();
                compact::intset_for_each(&blob, |v| items.push(Elem::Int(v).to_vec()))
                    .map_err(|e| blob_error(blob_at, "intset", e))?;
                RdbValue::Set(items)
            }
            enc::TYPE_SET_LISTPACK => {
                let (blob_at, blob) = self.read_blob()?;
                let items = elems(&blob, Kind::Listpack, blob_at)?;
                ensure_unique(
                    items.iter().map(Vec::as_slice),
                    blob_at,
                    "Set listpack integrity check failed: duplicate members",
                )?;
                RdbValue::Set(items)
            }
            enc::TYPE_ZSET_ZIPLIST | enc::TYPE_ZSET_LISTPACK => {
                let (blob_at, blob) = self.read_blob()?;
                let kind = if t == enc::TYPE_ZSET_ZIPLIST {
                    Kind::Ziplist
                } else {
                    Kind::Listpack
                };
                RdbValue::ZSet(zset_pairs(&blob, kind, blob_at)?)
            }
            enc::TYPE_HASH_ZIPLIST | enc::TYPE_HASH_LISTPACK => {
                let (blob_at, blob) = self.read_blob()?;
                let kind = if t == enc::TYPE_HASH_ZIPLIST {
                    Kind::Ziplist
                } else {
                    Kind::Listpack
                };
                let items = elems(&blob, kind, blob_at)?;
                let pairs = into_pairs(items, blob_at, "hash")?;
                ensure_unique(
                    pairs.iter().map(|p| p.0.as_slice()),
                    blob_at,
                    "Duplicate hash fields detected",
                )?;
                RdbValue::Hash(pairs)
            }
            enc::TYPE_LIST_QUICKLIST | enc::TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.read_len()?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let node_at = self.input.offset();
                    let container = if t == enc::TYPE_LIST_QUICKLIST_2 {
                        self.read_len()?
                    } else {
                        enc::QUICKLIST_NODE_PACKED
                    };
                    let (blob_at, blob) = self.read_blob()?;
                    match container {
                        enc::QUICKLIST_NODE_PLAIN => items.push(blob),
                        enc::QUICKLIST_NODE_PACKED => {
                            let kind = if t == enc::TYPE_LIST_QUICKLIST {
                                Kind::Ziplist
                            } else {
                                Kind::Listpack
                            };
                            items.extend(elems(&blob, kind, blob_at)?);
                        }
                        _ => {
                            return Err(RdbError::corrupt(
                                node_at,
                                format!(
                                    "Quicklist integrity check failed: unknown node container {container}"
                                ),
                            ));
                        }
                    }
                }
                RdbValue::List(items)
            }
            enc::TYPE_STREAM_LISTPACKS | enc::TYPE_STREAM_LISTPACKS_2 => {
                return self
                    .read_stream(t == enc::TYPE_STREAM_LISTPACKS_2)
                    .map(Some);
            }
            enc::TYPE_STREAM_LISTPACKS_3 => {
                return Err(RdbError::UnsupportedType {
                    offset: at,
                    type_id: t,
                    name: "stream",
                });
            }
            enc::TYPE_MODULE_PRE_GA | enc::TYPE_MODULE_2 => {
                return Err(RdbError::UnsupportedType {
                    offset: at,
                    type_id: t,
                    name: "module value, and no module can load it",
                });
            }
            other => {
                return Err(RdbError::corrupt(
                    at,
                    format!("Unknown RDB encoding type {other}"),
                ));
            }
        };
        let empty = match &value {
            RdbValue::String(_) => false,
            RdbValue::List(v) | RdbValue::Set(v) => v.is_empty(),
            RdbValue::Hash(v) => v.is_empty(),
            RdbValue::ZSet(v) => v.is_empty(),
            RdbValue::Stream(_) => false,
        };
        Ok((!empty).then_some(value))
    }

    /// Reads a stream (STREAM_LISTPACKS, or STREAM_LISTPACKS_2 with Redis 7.0's counters),
    /// with the checks Redis's loader makes, plus entry order and the listpack layout.
    fn read_stream(&mut self, v2: bool) -> Result<RdbValue, RdbError> {
        let mut s = RdbStream::default();
        let nodes = self.read_len()?;
        for _ in 0..nodes {
            let key_at = self.input.offset();
            let key = self.read_string()?;
            let master = <[u8; 16]>::try_from(key.as_slice()).map_err(|_| {
                RdbError::corrupt(
                    key_at,
                    "Stream node key entry is not the size of a stream ID",
                )
            })?;
            let (blob_at, blob) = self.read_blob()?;
            let before = s.entries.len();
            stream_node(&blob, stream_id(master), &mut s.entries)
                .map_err(|e| blob_error(blob_at, "stream listpack", e))?;
            if s.entries.len() == before {
                return Err(RdbError::corrupt(blob_at, "Empty listpack inside stream"));
            }
            if before > 0 && s.entries[before - 1].0 >= s.entries[before].0 {
                return Err(RdbError::corrupt(blob_at, "Stream entries out of order"));
            }
        }
        let len_at = self.input.offset();
        let length = self.read_len()?;
        if length != s.entries.len() as u64 {
            return Err(RdbError::corrupt(
                len_at,
                "Stream length inconsistent with its entries",
            ));
        }
        s.meta.last_id = (self.read_len()?, self.read_len()?);
        if v2 {
            s.meta.first_id = (self.read_len()?, self.read_len()?);
            s.meta.max_deleted = (self.read_len()?, self.read_len()?);
            s.meta.entries_added = self.read_len()?;
        } else {
            s.meta.first_id = s.entries.first().map_or((0, 0), |e| e.0);
            s.meta.entries_added = length;
        }
        let groups = self.read_len()?;
        for _ in 0..groups {
            let at = self.input.offset();
            let mut g = RdbGroup {
                name: self.read_string()?,
                last_id: (self.read_len()?, self.read_len()?),
                ..RdbGroup::default()
            };
            if v2 {
                g.entries_read = Some(self.read_len()? as i64);
            }
            if s.groups.iter().any(|o| o.name == g.name) {
                return Err(RdbError::corrupt(at, "Duplicated consumer group name"));
            }
            let pel = self.read_len()?;
            for _ in 0..pel {
                let at = self.input.offset();
                let id = stream_id(self.input.array("stream PEL id")?);
                let time = u64::from_le_bytes(self.input.array("stream PEL delivery time")?);
                let count = self.read_len()?;
                if g.pel.last().is_some_and(|p| p.0 >= id) {
                    return Err(RdbError::corrupt(
                        at,
                        "Duplicated global PEL entry loading stream consumer group",
                    ));
                }
                g.pel.push((id, time, count));
            }
            let consumers = self.read_len()?;
            for _ in 0..consumers {
                let at = self.input.offset();
                let mut c = RdbConsumer {
                    name: self.read_string()?,
                    seen_time: u64::from_le_bytes(self.input.array("stream consumer seen time")?),
                    pel: Vec::new(),
                };
                if g.consumers.iter().any(|o| o.name == c.name) {
                    return Err(RdbError::corrupt(at, "Duplicate stream consumer detected."));
                }
                let n = self.read_len()?;
                for _ in 0..n {
                    let at = self.input.offset();
                    let id = stream_id(self.input.array("stream consumer PEL id")?);
                    if g.pel.binary_search_by(|p| p.0.cmp(&id)).is_err() {
                        return Err(RdbError::corrupt(
                            at,
                            "Consumer PEL entry not found in group global PEL",
                        ));
                    }
                    c.pel.push(id);
                }
                g.consumers.push(c);
            }
            let owned: std::collections::BTreeSet<RdbStreamId> = g
                .consumers
                .iter()
                .flat_map(|c| c.pel.iter().copied())
                .collect();
            let owners: usize = g.consumers.iter().map(|c| c.pel.len()).sum();
            if owned.len() != g.pel.len() || owners != g.pel.len() {
                return Err(RdbError::corrupt(
                    at,
                    "Stream CG PEL entry without exactly one consumer",
                ));
            }
            s.groups.push(g);
        }
        Ok(RdbValue::Stream(Box::new(s)))
    }

    /// Reads a string holding a compact blob, with the offset it started at.
    fn read_blob(&mut self) -> Result<(u64, Vec<u8>), RdbError> {
        let at = self.input.offset();
        Ok((at, self.read_string()?))
    }
}

impl<R: Read> Iterator for RdbReader<R> {
    type Item = Result<Item, RdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

fn cap(n: u64) -> usize {
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(COUNT_PREALLOC_CAP)
}

#[derive(Clone, Copy)]
enum Kind {
    Ziplist,
    Listpack,
}

fn blob_error(at: u64, what: &str, e: CompactError) -> RdbError {
    RdbError::corrupt(at, format!("{what} blob byte {}: {}", e.pos, e.reason))
}

/// All elements of a ziplist or listpack, validated.
fn elems(blob: &[u8], kind: Kind, at: u64) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut items = Vec::new();
    let push = |e: Elem<'_>| {
        items.push(e.to_vec());
        Ok(())
    };
    match kind {
        Kind::Ziplist => {
            compact::ziplist_for_each(blob, push).map_err(|e| blob_error(at, "ziplist", e))?
        }
        Kind::Listpack => {
            compact::listpack_for_each(blob, push).map_err(|e| blob_error(at, "listpack", e))?
        }
    };
    Ok(items)
}

/// Field/value pairs of a hash.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn into_pairs(items: Vec<Vec<u8>>, at: u64, what: &str) -> Result<Pairs, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::corrupt(
            at,
            format!("{what} blob holds an odd number of elements"),
        ));
    }
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        pairs.push((a, b));
    }
    Ok(pairs)
}

fn zset_pairs(blob: &[u8], kind: Kind, at: u64) -> Result<Vec<(Vec<u8>, f64)>, RdbError> {
    let mut pairs = Vec::new();
    let mut member: Option<Vec<u8>> = None;
    let mut bad_score = false;
    let push = |e: Elem<'_>| {
        match member.take() {
            None => member = Some(e.to_vec()),
            Some(m) => {
                let score = match e {
                    Elem::Int(i) => i as f64,
                    Elem::Str(s) => parse_double(s).unwrap_or_else(|| {
                        bad_score = true;
                        0.0
                    }),
                };
                pairs.push((m, score));
            }
        }
        Ok(())
    };
    match kind {
        Kind::Ziplist => {
            compact::ziplist_for_each(blob, push).map_err(|e| blob_error(at, "ziplist", e))?
        }
        Kind::Listpack => {
            compact::listpack_for_each(blob, push).map_err(|e| blob_error(at, "listpack", e))?
        }
    };
    if member.is_some() {
        return Err(RdbError::corrupt(
            at,
            "zset blob holds an odd number of elements",
        ));
    }
    if bad_score {
        return Err(RdbError::corrupt(
            at,
            "zset blob holds a score that is not a number",
        ));
    }
    ensure_unique(
        pairs.iter().map(|p| p.0.as_slice()),
        at,
        "Duplicate zset fields detected",
    )?;
    Ok(pairs)
}

/// Parses a score as `strtod` would for the forms Redis writes (`%.17g`, `inf`, `-inf`).
fn parse_double(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.parse::<f64>().ok()
}

/// Collections up to this many members are checked for repeats pairwise, without a set.
const SMALL_UNIQUE: usize = 16;

/// Refuses a collection with a repeated member, as Redis's loader does.
fn ensure_unique<'a>(
    members: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    at: u64,
    reason: &'static str,
) -> Result<(), RdbError> {
    if members.len() < 2 {
        return Ok(());
    }
    // A YCSB record's 10 fields: 45 short comparisons cost less than hashing each field
    // and allocating a set for every key loaded.
    if members.len() <= SMALL_UNIQUE {
        let mut rest = members;
        while let Some(m) = rest.next() {
            if rest.clone().any(|o| o == m) {
                return Err(RdbError::corrupt(at, reason));
            }
        }
        return Ok(());
    }
    let mut seen = hashbrown::HashSet::with_capacity(members.len());
    for m in members {
        if !seen.insert(m) {
            return Err(RdbError::corrupt(at, reason));
        }
    }
    Ok(())
}

fn stream_id(b: [u8; 16]) -> RdbStreamId {
    let (ms, seq) = b.split_at(8);
    let word = |w: &[u8]| u64::from_be_bytes(w.try_into().unwrap_or_default());
    (word(ms), word(seq))
}

/// The live entries of one stream listpack node (master entry, then entries delta-encoded
/// from `master`; entries flagged deleted are skipped), appended to `out` in order.
fn stream_node(
    blob: &[u8],
    master: RdbStreamId,
    out: &mut Vec<RdbStreamEntry>,
) -> Result<(), CompactError> {
    let mut elems = Vec::new();
    compact::listpack_for_each(blob, |e| {
        elems.push(e);
        Ok(())
    })?;
    let bad = |reason| CompactError { pos: 0, reason };
    let mut it = elems.into_iter();
    let int = |it: &mut std::vec::IntoIter<Elem<'_>>| match it.next() {
        Some(Elem::Int(v)) => Ok(v),
        _ => Err(bad("stream listpack holds a string where a number belongs")),
    };
    let live = int(&mut it)?;
    let deleted = int(&mut it)?;
    let nfields = usize::try_from(int(&mut it)?).map_err(|_| bad("negative field count"))?;
    let fields: Vec<Vec<u8>> = it.by_ref().take(nfields).map(Elem::to_vec).collect();
    if fields.len() != nfields || int(&mut it)? != 0 {
        return Err(bad("stream listpack master entry is malformed"));
    }
    let mut seen = 0i64;
    let mut last: Option<RdbStreamId> = None;
    while it.len() > 0 {
        let flags = int(&mut it)?;
        let id = (
            master.0.wrapping_add(int(&mut it)? as u64),
            master.1.wrapping_add(int(&mut it)? as u64),
        );
        let n = if flags & 2 != 0 {
            nfields
        } else {
            usize::try_from(int(&mut it)?).map_err(|_| bad("negative field count"))?
        };
        let mut pairs = Vec::with_capacity(n.min(1024));
        for i in 0..n {
            let f = match fields.get(i) {
                Some(f) if flags & 2 != 0 => f.clone(),
                _ => it.next().ok_or(bad("stream entry is truncated"))?.to_vec(),
            };
            let v = it.next().ok_or(bad("stream entry is truncated"))?.to_vec();
            pairs.push((f, v));
        }
        int(&mut it)?;
        if last.is_some_and(|l| l >= id) || id < master {
            return Err(bad("stream listpack entries are out of order"));
        }
        last = Some(id);
        seen += 1;
        if flags & 1 == 0 {
            out.push((id, pairs));
        }
    }
    if seen != live + deleted {
        return Err(bad(
            "stream listpack entry count does not match its master entry",
        ));
    }
    Ok(())
}
