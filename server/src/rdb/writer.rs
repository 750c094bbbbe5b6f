//! The streaming RDB writer: produces a version-10 file that Redis 7.0 loads, fed one
//! database and one key at a time, into any `std::io::Write`.
//!
//! Values are written in the encodings Redis 7.0 gives them, so a DUMP payload (one value
//! through this writer) is Redis's own bytes: strings int-encoded or LZF-compressed, lists as
//! QUICKLIST_2 with listpack nodes cut where Redis cuts them, small hashes and sorted sets as
//! listpacks (scores as Redis prints them), larger ones as plain HASH / ZSET_2, intset-encoded
//! sets as intsets and other sets as plain SET. Files use a faster LZF than Redis's (same
//! format, other bytes) unless [`RdbWriter::with_redis_lzf`].
//! It must not buffer more than one value plus a 64 KiB block, and must not decide what
//! to write: the snapshot decides which keys exist, which have expired and which database
//! they belong to. Callers guarantee that collections hold no duplicate members.

use std::io::Write;

use super::compact;
use super::encoding::{self as enc, Crc64Digest, LzfCompressor, crc64_digest, put_len};
use super::error::RdbError;
use super::function_dump::redis_lzf;
use super::model::{Aux, RdbGroup, RdbStreamId, RdbStreamMeta, RdbValue};
use crate::protocol::format_double;

const FLUSH_AT: usize = 64 * 1024;
/// Listpack thresholds matching Redis 7.0's defaults, so what we write as a listpack is what
/// a default Redis would keep as one.
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;
/// Quicklist nodes as Redis 7.0 fills them under `list-max-listpack-size -2`: an element
/// joins the last node while that node's listpack bytes, the element's length and 8 more
/// stay within 8 KiB (its `_quicklistNodeAllowInsert`), so a list built by RPUSH is written
/// in Redis's own layout.
const NODE_MAX_BYTES: usize = 8 * 1024;
const NODE_SIZE_OVERHEAD: usize = 8;
/// Elements at least this long get a PLAIN node of their own (Redis's `packed_threshold`).
const PLAIN_NODE_MIN: usize = 1 << 30;

/// What the writer does beyond the plain format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// `rdbcompression`: LZF for strings over 20 bytes when it saves at least 4 bytes.
    pub compression: bool,
    /// `rdbchecksum`: a CRC64 trailer; otherwise 8 zero bytes, which loaders skip.
    pub checksum: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            compression: true,
            checksum: true,
        }
    }
}

/// A streaming RDB writer. [`RdbWriter::new`] writes the header and AUX fields; then call
/// [`RdbWriter::select_db`] before each database's keys, the per-type methods (or
/// [`RdbWriter::write_value`]) for each key, and [`RdbWriter::finish`] at the end.
pub struct RdbWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    crc: Crc64Digest,
    opts: WriterOptions,
    lzf: LzfCompressor,
    lzf_buf: Vec<u8>,
    lp_buf: Vec<u8>,
    written: u64,
    /// Compress with Redis's own LZF output ([`RdbWriter::with_redis_lzf`]).
    redis_lzf: bool,
}

impl<W: Write> RdbWriter<W> {
    /// Writes `REDIS0010` and `aux` in Redis 7.0's order.
    ///
    /// # Errors
    /// The destination failed.
    pub fn new(out: W, opts: WriterOptions, aux: &Aux) -> Result<Self, RdbError> {
        let mut w = Self {
            out,
            buf: Vec::with_capacity(FLUSH_AT * 2),
            crc: crc64_digest(),
            opts,
            lzf: LzfCompressor::default(),
            lzf_buf: Vec::new(),
            lp_buf: Vec::new(),
            written: 0,
            redis_lzf: false,
        };
        w.buf
            .extend_from_slice(format!("REDIS{:04}", enc::RDB_VERSION).as_bytes());
        for (key, value) in aux.fields() {
            w.buf.push(enc::OPCODE_AUX);
            w.put_string(&key)?;
            w.put_string(&value)?;
        }
        w.maybe_flush()?;
        Ok(w)
    }

    /// A writer for a piece of a stream's body: no header, no EOF and no checksum (whoever
    /// concatenates the pieces checksums the whole stream, see [`ChecksumWriter`]). The
    /// snapshot encodes each key as such a piece, wherever in time the key is reached.
    pub fn fragment(out: W, compression: bool) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(FLUSH_AT),
            crc: crc64_digest(),
            opts: WriterOptions {
                compression,
                checksum: false,
            },
            lzf: LzfCompressor::default(),
            lzf_buf: Vec::new(),
            lp_buf: Vec::new(),
            written: 0,
            redis_lzf: false,
        }
    }

    /// Compresses strings to the very bytes Redis's `lzf_compress` produces, at the cost of
    /// the faster compressor's speed: for payloads compared byte for byte with Redis's
    /// (DUMP), not for whole datasets.
    pub fn with_redis_lzf(mut self) -> Self {
        self.redis_lzf = true;
        self
    }

    /// Flushes what is buffered and lends the destination: a fragment writer over a `Vec`
    /// can swap its output with the caller's between keys instead of copying it.
    ///
    /// # Errors
    /// The destination failed.
    pub fn flushed_output(&mut self) -> Result<&mut W, RdbError> {
        self.flush_buf()?;
        Ok(&mut self.out)
    }

    /// Writes the EOF opcode of a fragment stream (the checksum trailer is the consumer's).
    ///
    /// # Errors
    /// The destination failed.
    pub fn end_of_stream(&mut self) -> Result<(), RdbError> {
        self.buf.push(enc::OPCODE_EOF);
        self.flush_buf()
    }

    /// Bytes produced so far (including buffered ones).
    pub fn bytes_written(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Starts a database: SELECTDB, then the RESIZEDB hint.
    ///
    /// # Errors
    /// The destination failed.
    pub fn select_db(&mut self, db: u32, keys: u64, expires: u64) -> Result<(), RdbError> {
        self.buf.push(enc::OPCODE_SELECTDB);
        put_len(&mut self.buf, u64::from(db));
        self.buf.push(enc::OPCODE_RESIZEDB);
        put_len(&mut self.buf, keys);
        put_len(&mut self.buf, expires);
        self.maybe_flush()
    }

    /// Writes a FUNCTION2 record holding a library's source.
    ///
    /// # Errors
    /// The destination failed.
    pub fn function(&mut self, source: &[u8]) -> Result<(), RdbError> {
        self.buf.push(enc::OPCODE_FUNCTION2);
        self.put_string(source)?;
        self.maybe_flush()
    }

    /// Writes any [`RdbValue`].
    ///
    /// # Errors
    /// The destination failed, or a sorted set holds a NaN score.
    pub fn write_value(
        &mut self,
        key: &[u8],
        value: &RdbValue,
        expire_ms: Option<u64>,
    ) -> Result<(), RdbError> {
        match value {
            RdbValue::String(s) => self.string(key, s, expire_ms),
            RdbValue::List(items) => self.list(key, expire_ms, items.iter().map(Vec::as_slice)),
            RdbValue::Set(items) => self.set(key, expire_ms, items.iter().map(Vec::as_slice)),
            RdbValue::Hash(pairs) => self.hash(
                key,
                expire_ms,
                pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
            ),
            RdbValue::ZSet(pairs) => self.zset(
                key,
                expire_ms,
                pairs.iter().map(|(m, s)| (m.as_slice(), *s)),
            ),
            RdbValue::Stream(s) => self.stream(
                key,
                expire_ms,
                s.entries.iter().map(|(id, fields)| {
                    (
                        *id,
                        fields.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
                    )
                }),
                &s.meta,
                &s.groups,
            ),
        }
    }

    /// Writes a string key.
    ///
    /// # Errors
    /// The destination failed.
    pub fn string(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_ms: Option<u64>,
    ) -> Result<(), RdbError> {
        self.key_header(key, expire_ms, enc::TYPE_STRING)?;
        self.put_string(value)?;
        self.maybe_flush()
    }

    /// Writes a list as QUICKLIST_2. An empty list writes nothing (Redis would skip it).
    ///
    /// # Errors
    /// The destination failed.
    pub fn list<'a, I>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        items: I,
    ) -> Result<(), RdbError>
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        let mut nodes = 0u64;
        for_each_node(items.clone(), |_| nodes += 1);
        if nodes == 0 {
            return Ok(());
        }
        self.key_header(key, expire_ms, enc::TYPE_LIST_QUICKLIST_2)?;
        put_len(&mut self.buf, nodes);
        let mut result = Ok(());
        let mut rest = items;
        for_each_node(rest.clone(), |node| {
            if result.is_err() {
                return;
            }
            let node_items = rest.clone().take(node.len);
            rest.nth(node.len - 1);
            result = self.list_node(node, node_items);
        });
        result
    }

    fn list_node<'a>(
        &mut self,
        node: Node,
        items: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), RdbError> {
        let mut lp = std::mem::take(&mut self.lp_buf);
        let res = if node.plain {
            put_len(&mut self.buf, enc::QUICKLIST_NODE_PLAIN);
            items.into_iter().try_for_each(|item| self.put_string(item))
        } else {
            put_len(&mut self.buf, enc::QUICKLIST_NODE_PACKED);
            compact::listpack_build(items, &mut lp);
            self.put_string(&lp)
        };
        self.lp_buf = lp;
        res?;
        self.maybe_flush()
    }

    /// Writes a set as a plain SET. An empty set writes nothing.
    ///
    /// # Errors
    /// The destination failed.
    /// Members may be borrowed slices or small owned texts (an intset's integers).
    pub fn set<I>(&mut self, key: &[u8], expire_ms: Option<u64>, members: I) -> Result<(), RdbError>
    where
        I: ExactSizeIterator,
        I::Item: AsRef<[u8]>,
    {
        if members.len() == 0 {
            return Ok(());
        }
        self.key_header(key, expire_ms, enc::TYPE_SET)?;
        put_len(&mut self.buf, members.len() as u64);
        for m in members {
            self.put_string(m.as_ref())?;
            self.maybe_flush()?;
        }
        Ok(())
    }

    /// Writes a set of integers as Redis writes its intset-encoded sets: the intset blob
    /// (the width and the count as 32-bit little-endian words, then `packed`, the sorted
    /// members in `width` bytes each). An empty set writes nothing.
    ///
    /// # Errors
    /// The destination failed.
    pub fn intset(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        width: usize,
        len: usize,
        packed: &[u8],
    ) -> Result<(), RdbError> {
        if len == 0 {
            return Ok(());
        }
        self.key_header(key, expire_ms, enc::TYPE_SET_INTSET)?;
        let mut blob = Vec::with_capacity(8 + packed.len());
        blob.extend_from_slice(&(width as u32).to_le_bytes());
        blob.extend_from_slice(&(len as u32).to_le_bytes());
        blob.extend_from_slice(packed);
        self.put_string(&blob)?;
        self.maybe_flush()
    }

    /// Writes a hash: a listpack when small enough for Redis to keep it as one, else a plain
    /// HASH. An empty hash writes nothing.
    ///
    /// # Errors
    /// The destination failed.
    pub fn hash<'a, I>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        pairs: I,
    ) -> Result<(), RdbError>
    where
        I: ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let small = pairs.len() <= LISTPACK_MAX_ENTRIES
            && pairs
                .clone()
                .all(|(f, v)| f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE);
        self.hash_as(key, expire_ms, pairs, small)
    }

    /// Writes a hash as a listpack or as a plain HASH, as the caller knows Redis holds it (a
    /// keyspace hash follows the configured `hash-max-listpack-*` limits). An empty hash
    /// writes nothing.
    ///
    /// # Errors
    /// The destination failed.
    pub fn hash_as<'a, I>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        pairs: I,
        listpack: bool,
    ) -> Result<(), RdbError>
    where
        I: ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let n = pairs.len();
        if n == 0 {
            return Ok(());
        }
        if listpack {
            self.key_header(key, expire_ms, enc::TYPE_HASH_LISTPACK)?;
            let mut lp = std::mem::take(&mut self.lp_buf);
            compact::listpack_build(pairs.flat_map(|(f, v)| [f, v]), &mut lp);
            let res = self.put_string(&lp);
            self.lp_buf = lp;
            res?;
            return self.maybe_flush();
        }
        self.key_header(key, expire_ms, enc::TYPE_HASH)?;
        put_len(&mut self.buf, n as u64);
        for (f, v) in pairs {
            self.put_string(f)?;
            self.put_string(v)?;
            self.maybe_flush()?;
        }
        Ok(())
    }

    /// Writes a sorted set: a listpack ordered by (score, member) when small, else ZSET_2.
    /// An empty sorted set writes nothing.
    ///
    /// # Errors
    /// The destination failed, or a score is NaN (Redis refuses to load those).
    pub fn zset<'a, I>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        pairs: I,
    ) -> Result<(), RdbError>
    where
        I: ExactSizeIterator<Item = (&'a [u8], f64)> + Clone,
    {
        let small = pairs.len() <= LISTPACK_MAX_ENTRIES
            && pairs.clone().all(|(m, _)| m.len() <= LISTPACK_MAX_VALUE);
        self.zset_as(key, expire_ms, pairs, small)
    }

    /// Writes a sorted set as a listpack or as ZSET_2, as the caller knows Redis holds it (a
    /// keyspace sorted set follows the configured `zset-max-listpack-*` limits). An empty
    /// sorted set writes nothing.
    ///
    /// # Errors
    /// The destination failed, or a score is NaN (Redis refuses to load those).
    pub fn zset_as<'a, I>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        pairs: I,
        listpack: bool,
    ) -> Result<(), RdbError>
    where
        I: ExactSizeIterator<Item = (&'a [u8], f64)> + Clone,
    {
        let n = pairs.len();
        if n == 0 {
            return Ok(());
        }
        if pairs.clone().any(|(_, s)| s.is_nan()) {
            return Err(RdbError::InvalidValue("a sorted set score is NaN"));
        }
        if listpack {
            // Redis uses a listpack zset as its in-memory form directly: it must be sorted.
            let mut sorted: Vec<(&[u8], f64)> = pairs.collect();
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            let scores: Vec<Vec<u8>> = sorted.iter().map(|(_, s)| score_text(*s)).collect();
            self.key_header(key, expire_ms, enc::TYPE_ZSET_LISTPACK)?;
            let mut lp = std::mem::take(&mut self.lp_buf);
            compact::listpack_build(
                sorted
                    .iter()
                    .zip(&scores)
                    .flat_map(|((m, _), s)| [*m, s.as_slice()]),
                &mut lp,
            );
            let res = self.put_string(&lp);
            self.lp_buf = lp;
            res?;
            return self.maybe_flush();
        }
        self.key_header(key, expire_ms, enc::TYPE_ZSET_2)?;
        put_len(&mut self.buf, n as u64);
        for (m, s) in pairs {
            self.put_string(m)?;
            self.buf.extend_from_slice(&s.to_le_bytes());
            self.maybe_flush()?;
        }
        Ok(())
    }

    /// Writes a stream as Redis 7.0 does (STREAM_LISTPACKS_2): its entries in listpack nodes
    /// split where Redis splits them, its counters, then each group with its PEL and
    /// consumers. An empty stream is written too: Redis keeps it.
    ///
    /// # Errors
    /// The destination failed.
    pub fn stream<'a, I, F>(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        entries: I,
        meta: &RdbStreamMeta,
        groups: &[RdbGroup],
    ) -> Result<(), RdbError>
    where
        I: Iterator<Item = (RdbStreamId, F)>,
        F: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let mut nodes: Vec<(RdbStreamId, Vec<u8>)> = Vec::new();
        let mut node: Option<StreamNode<'a>> = None;
        let mut length = 0u64;
        for (id, fields) in entries {
            let payload: usize = fields.clone().map(|(f, v)| f.len() + v.len()).sum();
            if node.as_ref().is_some_and(|n| n.full(payload)) {
                nodes.extend(node.take().map(StreamNode::finish));
            }
            node.get_or_insert_with(|| StreamNode::new(id, fields.clone()))
                .push(id, fields);
            length += 1;
        }
        nodes.extend(node.map(StreamNode::finish));
        self.key_header(key, expire_ms, enc::TYPE_STREAM_LISTPACKS_2)?;
        put_len(&mut self.buf, nodes.len() as u64);
        for (master, lp) in &nodes {
            self.put_string(&stream_id_bytes(*master))?;
            self.put_string(lp)?;
            self.maybe_flush()?;
        }
        for v in [
            length,
            meta.last_id.0,
            meta.last_id.1,
            meta.first_id.0,
            meta.first_id.1,
            meta.max_deleted.0,
            meta.max_deleted.1,
            meta.entries_added,
            groups.len() as u64,
        ] {
            put_len(&mut self.buf, v);
        }
        for g in groups {
            self.put_string(&g.name)?;
            put_len(&mut self.buf, g.last_id.0);
            put_len(&mut self.buf, g.last_id.1);
            put_len(
                &mut self.buf,
                g.entries_read.unwrap_or(ENTRIES_READ_UNKNOWN) as u64,
            );
            put_len(&mut self.buf, g.pel.len() as u64);
            for (id, time, count) in &g.pel {
                self.buf.extend_from_slice(&stream_id_bytes(*id));
                self.buf.extend_from_slice(&time.to_le_bytes());
                put_len(&mut self.buf, *count);
                self.maybe_flush()?;
            }
            put_len(&mut self.buf, g.consumers.len() as u64);
            for c in &g.consumers {
                self.put_string(&c.name)?;
                self.buf.extend_from_slice(&c.seen_time.to_le_bytes());
                put_len(&mut self.buf, c.pel.len() as u64);
                for id in &c.pel {
                    self.buf.extend_from_slice(&stream_id_bytes(*id));
                    self.maybe_flush()?;
                }
            }
        }
        self.maybe_flush()
    }

    /// Writes EOF and the checksum (or zeros), flushes, and returns the destination.
    ///
    /// # Errors
    /// The destination failed.
    pub fn finish(mut self) -> Result<W, RdbError> {
        self.buf.push(enc::OPCODE_EOF);
        self.flush_buf()?;
        let crc = if self.opts.checksum {
            self.crc.clone().finalize()
        } else {
            0
        };
        self.out
            .write_all(&crc.to_le_bytes())
            .map_err(RdbError::Write)?;
        self.out.flush().map_err(RdbError::Write)?;
        Ok(self.out)
    }

    fn key_header(
        &mut self,
        key: &[u8],
        expire_ms: Option<u64>,
        type_id: u8,
    ) -> Result<(), RdbError> {
        if let Some(ms) = expire_ms {
            self.buf.push(enc::OPCODE_EXPIRETIME_MS);
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            self.buf.extend_from_slice(&ms.to_le_bytes());
        }
        self.buf.push(type_id);
        self.put_string(key)
    }

    /// Appends a string in the smallest encoding Redis would use (`rdbSaveRawString`).
    fn put_string(&mut self, s: &[u8]) -> Result<(), RdbError> {
        if let Some(v) = enc::int_encodable(s) {
            enc::put_int_encoded(&mut self.buf, v);
            return Ok(());
        }
        if self.opts.compression && s.len() > 20 && self.compress(s) {
            self.buf.push((enc::LEN_ENCVAL << 6) | enc::ENC_LZF);
            put_len(&mut self.buf, self.lzf_buf.len() as u64);
            put_len(&mut self.buf, s.len() as u64);
            let compressed = std::mem::take(&mut self.lzf_buf);
            let res = self.put_bytes(&compressed);
            self.lzf_buf = compressed;
            return res;
        }
        put_len(&mut self.buf, s.len() as u64);
        self.put_bytes(s)
    }

    /// LZF-compresses `s` into `lzf_buf`; false when that would not save four bytes.
    fn compress(&mut self, s: &[u8]) -> bool {
        let max_out = s.len() - 4;
        if !self.redis_lzf {
            return self.lzf.compress(s, &mut self.lzf_buf, max_out);
        }
        match redis_lzf(s, max_out) {
            Some(packed) => {
                self.lzf_buf = packed;
                true
            }
            None => false,
        }
    }

    /// Appends bytes, passing big ones straight to the destination instead of the buffer.
    fn put_bytes(&mut self, s: &[u8]) -> Result<(), RdbError> {
        if s.len() < FLUSH_AT {
            self.buf.extend_from_slice(s);
            return Ok(());
        }
        self.flush_buf()?;
        if self.opts.checksum {
            self.crc.update(s);
        }
        self.out.write_all(s).map_err(RdbError::Write)?;
        self.written += s.len() as u64;
        Ok(())
    }

    fn maybe_flush(&mut self) -> Result<(), RdbError> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), RdbError> {
        if self.opts.checksum {
            self.crc.update(&self.buf);
        }
        self.out.write_all(&self.buf).map_err(RdbError::Write)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Checksums an RDB body on its way to `out` and appends the 8-byte CRC64 trailer (or 8
/// zeros when `rdbchecksum no`) at the end: the consumer side of a fragment stream, so the
/// checksum costs the consumer's thread, not the thread producing the snapshot.
pub struct ChecksumWriter<W: Write> {
    out: W,
    crc: Option<Crc64Digest>,
    written: u64,
}

impl<W: Write> ChecksumWriter<W> {
    pub fn new(out: W, checksum: bool) -> Self {
        Self {
            out,
            crc: checksum.then(crc64_digest),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes a piece of the body.
    ///
    /// # Errors
    /// The destination failed.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), RdbError> {
        if let Some(crc) = self.crc.as_mut() {
            crc.update(bytes);
        }
        self.out.write_all(bytes).map_err(RdbError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Counts a piece of the body that the caller delivers itself (a diskless stream hands
    /// one chunk to several sockets): checksummed, not copied to the destination.
    pub fn pass(&mut self, bytes: &[u8]) {
        if let Some(crc) = self.crc.as_mut() {
            crc.update(bytes);
        }
        self.written += bytes.len() as u64;
    }

    /// Appends the trailer, flushes, and returns the destination.
    ///
    /// # Errors
    /// The destination failed.
    pub fn finish(mut self) -> Result<W, RdbError> {
        let crc = self.crc.take().map_or(0, |c| c.finalize());
        self.out
            .write_all(&crc.to_le_bytes())
            .map_err(RdbError::Write)?;
        self.out.flush().map_err(RdbError::Write)?;
        Ok(self.out)
    }
}

/// Score text for a listpack, as Redis 7.0's `d2string` writes it: `0` and `-0`, integers
/// within +-2^62 in decimal, anything else (infinities included) as `%.17g`.
fn score_text(s: f64) -> Vec<u8> {
    let half = (i64::MAX / 2) as f64;
    if s != 0.0 && (-half..=half).contains(&s) && s.fract() == 0.0 {
        itoa::Buffer::new().format(s as i64).as_bytes().to_vec()
    } else {
        format_double(s).into_bytes()
    }
}

/// A quicklist node: how many consecutive items it holds and whether it is PLAIN.
#[derive(Clone, Copy)]
struct Node {
    len: usize,
    plain: bool,
}

/// Splits items into quicklist nodes (deterministically, so it can be run twice).
fn for_each_node<'a>(items: impl Iterator<Item = &'a [u8]>, mut f: impl FnMut(Node)) {
    let mut count = 0;
    let mut bytes = compact::LISTPACK_EMPTY;
    for item in items {
        if item.len() >= PLAIN_NODE_MIN {
            if count > 0 {
                f(Node {
                    len: count,
                    plain: false,
                });
                count = 0;
                bytes = compact::LISTPACK_EMPTY;
            }
            f(Node {
                len: 1,
                plain: true,
            });
            continue;
        }
        if count > 0 && bytes + item.len() + NODE_SIZE_OVERHEAD > NODE_MAX_BYTES {
            f(Node {
                len: count,
                plain: false,
            });
            count = 0;
            bytes = compact::LISTPACK_EMPTY;
        }
        count += 1;
        bytes += compact::listpack_entry_size(item);
    }
    if count > 0 {
        f(Node {
            len: count,
            plain: false,
        });
    }
}

/// Redis's `SCG_INVALID_ENTRIES_READ`, written for a group whose counter is unknown.
const ENTRIES_READ_UNKNOWN: i64 = -1;

/// Redis 7.0's `stream-node-max-entries` and `stream-node-max-bytes` defaults: where a
/// listpack node of a stream ends.
const STREAM_NODE_MAX_ENTRIES: usize = 100;
const STREAM_NODE_MAX_BYTES: usize = 4096;

/// The 16-byte big-endian form of a stream id (radix-tree keys, PEL ids).
fn stream_id_bytes((ms, seq): RdbStreamId) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&ms.to_be_bytes());
    out[8..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// One stream listpack under construction: the master entry is written last, once the
/// entry count is known.
struct StreamNode<'a> {
    master: RdbStreamId,
    fields: Vec<&'a [u8]>,
    body: Vec<u8>,
    elements: usize,
    entries: usize,
    /// Bytes of the header, master entry and end byte.
    frame: usize,
}

impl<'a> StreamNode<'a> {
    fn new(master: RdbStreamId, fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let fields: Vec<&[u8]> = fields.map(|(f, _)| f).collect();
        let mut frame = Vec::new();
        compact::listpack_start(&mut frame);
        Self::master_entry(&mut frame, 1, &fields);
        StreamNode {
            master,
            frame: frame.len() + 1,
            fields,
            body: Vec::new(),
            elements: 0,
            entries: 0,
        }
    }

    fn master_entry(out: &mut Vec<u8>, count: usize, fields: &[&[u8]]) {
        compact::listpack_push_int(out, count as i64);
        compact::listpack_push_int(out, 0);
        compact::listpack_push_int(out, fields.len() as i64);
        for f in fields {
            compact::listpack_push(out, f);
        }
        compact::listpack_push_int(out, 0);
    }

    /// Whether Redis would start a new node before an entry of `payload` bytes.
    fn full(&self, payload: usize) -> bool {
        self.frame + self.body.len() + payload >= STREAM_NODE_MAX_BYTES
            || self.entries >= STREAM_NODE_MAX_ENTRIES
    }

    fn push(
        &mut self,
        id: RdbStreamId,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    ) {
        let n = fields.clone().count();
        let same =
            n == self.fields.len() && fields.clone().zip(&self.fields).all(|((f, _), m)| f == *m);
        let out = &mut self.body;
        compact::listpack_push_int(out, if same { 2 } else { 0 });
        compact::listpack_push_int(out, id.0.wrapping_sub(self.master.0) as i64);
        compact::listpack_push_int(out, id.1.wrapping_sub(self.master.1) as i64);
        let mut parts = 3 + n;
        if !same {
            compact::listpack_push_int(out, n as i64);
            parts += n + 1;
        }
        for (f, v) in fields {
            if !same {
                compact::listpack_push(out, f);
            }
            compact::listpack_push(out, v);
        }
        compact::listpack_push_int(out, parts as i64);
        self.elements += parts + 1;
        self.entries += 1;
    }

    fn finish(self) -> (RdbStreamId, Vec<u8>) {
        let mut lp = Vec::with_capacity(self.frame + self.body.len() + 8);
        compact::listpack_start(&mut lp);
        Self::master_entry(&mut lp, self.entries, &self.fields);
        lp.extend_from_slice(&self.body);
        compact::listpack_finish(&mut lp, 4 + self.fields.len() + self.elements);
        (self.master, lp)
    }
}
