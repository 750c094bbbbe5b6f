//! One node of a stream: up to [`NODE_MAX_ENTRIES`] consecutive entries packed in one byte
//! buffer, as Redis packs them in one listpack, but with LEB128 lengths and no back-lengths.
//!
//! Layout: the master field names (count, then each name), then the entries. An entry is
//! `ms - master.ms` and `seq` (minus `master.seq` when the ms are equal) as varints, the
//! low bit of the second saying whether the entry's field names are the master's; then the
//! values alone, or a field count and the field/value pairs. A deleted entry is cut out of
//! the buffer (Redis only flags it), so reading never skips tombstones.
//!
//! This module knows nothing of groups, trimming policy or commands.

use super::id::StreamId;

/// Where a node ends (`stream-node-max-entries`, `stream-node-max-bytes`): entries counted
/// with the deleted ones, bytes counted as Redis's listpack would hold them, so that nodes
/// split where Redis's split (approximate trimming removes whole nodes). 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    /// Redis 7.0's defaults.
    fn default() -> Self {
        NodeLimits {
            max_entries: 100,
            max_bytes: 4096,
        }
    }
}

/// Redis's `STREAM_LISTPACK_MAX_SIZE`: the byte limit when none (or a larger one) is set.
const LISTPACK_MAX_SIZE: u64 = 1 << 30;

#[derive(Debug, Clone, Default)]
pub struct Block {
    data: Vec<u8>,
    /// Entries present.
    live: u32,
    /// Entries ever appended (Redis's count + deleted: the node-full test counts both).
    appended: u32,
    /// The size Redis's listpack for this node would have.
    lp_bytes: u32,
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*at`, advancing it. Blocks are built by this module, so the bytes are
/// well formed.
fn get_varint(b: &[u8], at: &mut usize) -> u128 {
    let mut v: u128 = 0;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u128::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn get_bytes<'a>(b: &'a [u8], at: &mut usize) -> &'a [u8] {
    let n = get_varint(b, at) as usize;
    let s = &b[*at..*at + n];
    *at += n;
    s
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u128);
    out.extend_from_slice(s);
}

/// Bytes a listpack integer entry takes, back-length included (`lpEncodeIntegerGetType`).
fn lp_int_size(v: i64) -> u32 {
    match v {
        0..=127 => 2,
        -4096..=4095 => 3,
        -32768..=32767 => 4,
        -8_388_608..=8_388_607 => 5,
        -2_147_483_648..=2_147_483_647 => 6,
        _ => 10,
    }
}

/// Bytes a listpack string entry takes (integers in canonical form are stored as integers).
fn lp_str_size(s: &[u8]) -> u32 {
    if s.len() <= 20
        && let Some(v) = crate::protocol::parse_i64(s)
    {
        return lp_int_size(v);
    }
    let len = s.len() as u32;
    let head = match len {
        0..=63 => 1,
        64..=4095 => 2,
        _ => 5,
    };
    let body = head + len;
    let backlen = match body {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    body + backlen
}

impl Block {
    /// A node whose master fields are `fields`' names.
    pub fn new<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Block {
        let n = fields.clone().count();
        let mut data = Vec::new();
        put_varint(&mut data, n as u128);
        // Redis's header (6), master count, deleted, field count, terminator and end byte.
        let mut lp_bytes = 6 + 2 + 2 + lp_int_size(n as i64) + 2 + 1;
        for (f, _) in fields {
            put_bytes(&mut data, f);
            lp_bytes += lp_str_size(f);
        }
        Block {
            data,
            live: 0,
            appended: 0,
            lp_bytes,
        }
    }

    pub fn live(&self) -> usize {
        self.live as usize
    }

    /// Whether Redis would start a new node before adding an entry of `payload` bytes.
    pub fn full(&self, payload: usize, limits: NodeLimits) -> bool {
        let max_bytes = match limits.max_bytes {
            0 => LISTPACK_MAX_SIZE,
            n => n.min(LISTPACK_MAX_SIZE),
        };
        u64::from(self.lp_bytes) + payload as u64 >= max_bytes
            || limits.max_entries > 0 && u64::from(self.appended) >= limits.max_entries
    }

    /// Bytes held on the heap.
    pub fn heap_size(&self) -> usize {
        self.data.capacity()
    }

    /// Gives back the spare capacity of a node no longer at the tail.
    pub fn seal(&mut self) {
        self.data.shrink_to_fit();
    }

    /// The master field count, the bytes holding the master field names, and the offset
    /// where the entries start.
    fn master(&self) -> (usize, &[u8], usize) {
        let mut at = 0;
        let n = get_varint(&self.data, &mut at) as usize;
        let names_at = at;
        for _ in 0..n {
            get_bytes(&self.data, &mut at);
        }
        (n, &self.data[names_at..at], at)
    }

    /// Appends an entry; `master_id` is the node's key.
    pub fn append<'a>(
        &mut self,
        master_id: StreamId,
        id: StreamId,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    ) {
        let (master_n, names, _) = self.master();
        let n = fields.clone().count();
        let same = n == master_n && {
            let mut at = 0;
            fields.clone().all(|(f, _)| get_bytes(names, &mut at) == f)
        };
        let ms_delta = id.ms - master_id.ms;
        let seq = if ms_delta == 0 {
            id.seq - master_id.seq
        } else {
            id.seq
        };
        let mut lp = 2 + lp_int_size(ms_delta as i64) + lp_int_size(seq as i64);
        let data = &mut self.data;
        put_varint(data, u128::from(ms_delta));
        put_varint(data, (u128::from(seq) << 1) | u128::from(same));
        let mut parts = 3 + n as i64;
        if !same {
            put_varint(data, n as u128);
            lp += lp_int_size(n as i64);
            parts += n as i64 + 1;
        }
        for (f, v) in fields {
            if !same {
                put_bytes(data, f);
                lp += lp_str_size(f);
            }
            put_bytes(data, v);
            lp += lp_str_size(v);
        }
        lp += lp_int_size(parts);
        self.live += 1;
        self.appended += 1;
        self.lp_bytes += lp;
    }

    /// The entries in order.
    pub fn iter(&self, master_id: StreamId) -> BlockIter<'_> {
        let (master_n, names, at) = self.master();
        BlockIter {
            data: &self.data,
            master_n,
            names,
            master_id,
            at,
        }
    }

    /// Removes the entry with `id`; true when it was there.
    pub fn remove(&mut self, master_id: StreamId, id: StreamId) -> bool {
        let found = self
            .iter(master_id)
            .find(|e| e.id >= id)
            .filter(|e| e.id == id)
            .map(|e| (e.start, e.end));
        match found {
            Some((start, end)) => {
                self.data.drain(start..end);
                self.live -= 1;
                true
            }
            None => false,
        }
    }

    /// Removes the first `n` entries (at least one, at most all).
    pub fn remove_first(&mut self, master_id: StreamId, n: usize) {
        let (_, _, start) = self.master();
        let end = self
            .iter(master_id)
            .nth(n - 1)
            .map_or(self.data.len(), |e| e.end);
        self.data.drain(start..end);
        self.live -= n as u32;
    }
}

/// One entry of a node: its id, and its fields read lazily.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub id: StreamId,
    count: usize,
    /// The master field names when the entry uses them, else `None`.
    names: Option<&'a [u8]>,
    body: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> Entry<'a> {
    /// Number of field/value pairs.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The field/value pairs in order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            names: self.names,
            names_at: 0,
            body: self.body,
            at: 0,
            left: self.count,
        }
    }
}

/// An entry's field/value pairs.
#[derive(Clone)]
pub struct Fields<'a> {
    names: Option<&'a [u8]>,
    names_at: usize,
    body: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let f = match self.names {
            Some(names) => get_bytes(names, &mut self.names_at),
            None => get_bytes(self.body, &mut self.at),
        };
        Some((f, get_bytes(self.body, &mut self.at)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Fields<'_> {}

/// A node's entries in order.
pub struct BlockIter<'a> {
    data: &'a [u8],
    master_n: usize,
    names: &'a [u8],
    master_id: StreamId,
    at: usize,
}

impl<'a> Iterator for BlockIter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.at >= self.data.len() {
            return None;
        }
        let start = self.at;
        let ms_delta = get_varint(self.data, &mut self.at) as u64;
        let seq_same = get_varint(self.data, &mut self.at);
        let same = seq_same & 1 == 1;
        let seq = (seq_same >> 1) as u64;
        let id = if ms_delta == 0 {
            StreamId::new(self.master_id.ms, self.master_id.seq + seq)
        } else {
            StreamId::new(self.master_id.ms + ms_delta, seq)
        };
        let count = if same {
            self.master_n
        } else {
            get_varint(self.data, &mut self.at) as usize
        };
        let body_start = self.at;
        for _ in 0..count {
            if !same {
                get_bytes(self.data, &mut self.at);
            }
            get_bytes(self.data, &mut self.at);
        }
        Some(Entry {
            id,
            count,
            names: same.then_some(self.names),
            body: &self.data[body_start..self.at],
            start,
            end: self.at,
        })
    }
}
