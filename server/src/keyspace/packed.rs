//! Packed strings: the byte format shared by the compact forms of hashes and sets.
//!
//! A string is stored as its length in LEB128 (one byte up to 127) followed by its bytes, so
//! a run of strings is one contiguous buffer walked front to back. Headers use the same
//! varint. This module only encodes and decodes; the structures live with their types.

/// Bytes a string of `len` bytes takes as a packed entry.
pub fn entry_size(len: usize) -> usize {
    let mut header = 1;
    let mut n = len >> 7;
    while n > 0 {
        header += 1;
        n >>= 7;
    }
    header + len
}

/// The LEB128 length prefix of a string of `n` bytes, and its length.
pub fn len_prefix(mut n: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut i = 0;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    (out, i + 1)
}

pub fn put_entry(buf: &mut Vec<u8>, s: &[u8]) {
    let (prefix, n) = len_prefix(s.len());
    buf.extend_from_slice(&prefix[..n]);
    buf.extend_from_slice(s);
}

/// The LEB128 number at `off` and the offset just after it.
pub fn read_varint(buf: &[u8], off: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    let mut p = off;
    loop {
        let b = buf[p];
        p += 1;
        v |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (v, p);
        }
        shift += 7;
    }
}

/// The entry at `off`: its data range (which ends where the next entry starts).
pub fn entry_at(buf: &[u8], off: usize) -> (usize, usize) {
    let (len, p) = read_varint(buf, off);
    (p, p + len)
}
