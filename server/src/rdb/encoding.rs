//! Byte-level encodings shared by the reader and the writer: opcodes and type ids, the
//! length encoding, integer-encoded strings and the LZF codec (Redis's `lzf_c.c`/`lzf_d.c`
//! format). Pure functions over slices: no I/O here, and nothing here trusts a length it
//! has not checked against the bytes it was given.

use crc_fast::{CrcAlgorithm, Digest};

/// A running CRC64 "Jones" over a stream, as Redis computes it (`crc64.c`). `crc-fast` folds
/// with carry-less multiplication where the CPU has it: at the rates a full sync streams,
/// a table-driven CRC was a tenth of the master's and of the replica's CPU time.
pub type Crc64Digest = Digest;

/// A new running CRC64.
pub fn crc64_digest() -> Crc64Digest {
    Digest::new(CrcAlgorithm::Crc64Redis)
}

/// The highest RDB version Redis 7.0 loads, and the one the writer produces.
pub const RDB_VERSION: u32 = 10;

pub const OPCODE_FUNCTION2: u8 = 245;
pub const OPCODE_FUNCTION_PRE_GA: u8 = 246;
pub const OPCODE_MODULE_AUX: u8 = 247;
pub const OPCODE_IDLE: u8 = 248;
pub const OPCODE_FREQ: u8 = 249;
pub const OPCODE_AUX: u8 = 250;
pub const OPCODE_RESIZEDB: u8 = 251;
pub const OPCODE_EXPIRETIME_MS: u8 = 252;
pub const OPCODE_EXPIRETIME: u8 = 253;
pub const OPCODE_SELECTDB: u8 = 254;
pub const OPCODE_EOF: u8 = 255;

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;

/// First byte of a length: the top two bits select the form.
pub const LEN_6BIT: u8 = 0;
pub const LEN_14BIT: u8 = 1;
pub const LEN_32BIT: u8 = 0x80;
pub const LEN_64BIT: u8 = 0x81;
pub const LEN_ENCVAL: u8 = 3;

/// Special string encodings (first byte `11xxxxxx`).
pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

/// Quicklist 2 node containers.
pub const QUICKLIST_NODE_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// Appends Redis's length encoding of `len` (`rdbSaveLen`).
pub fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(((len >> 8) as u8) | (LEN_14BIT << 6));
        out.push(len as u8);
    } else if let Ok(small) = u32::try_from(len) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&small.to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// The integer a string may be stored as (`rdbTryIntegerEncoding`): only canonical decimal
/// text of at most 11 bytes whose value fits 32 bits, so that loading gives back the same
/// bytes.
pub fn int_encodable(s: &[u8]) -> Option<i32> {
    if s.len() > 11 {
        return None;
    }
    i32::try_from(int_encodable_i64(s)?).ok()
}

/// The value of `s` when it is the canonical decimal text of an i64 (`string2ll`: no sign
/// but `-`, no leading zeros, no spaces), the rule listpacks use to store integers.
pub fn int_encodable_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let value: i64 = text.parse().ok()?;
    let mut buf = itoa::Buffer::new();
    (buf.format(value).as_bytes() == s).then_some(value)
}

/// Appends the smallest integer encoding of `v` (`rdbEncodeInteger`).
pub fn put_int_encoded(out: &mut Vec<u8>, v: i32) {
    if let Ok(b) = i8::try_from(v) {
        out.push((LEN_ENCVAL << 6) | ENC_INT8);
        out.extend_from_slice(&b.to_le_bytes());
    } else if let Ok(h) = i16::try_from(v) {
        out.push((LEN_ENCVAL << 6) | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else {
        out.push((LEN_ENCVAL << 6) | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Why an LZF payload cannot be decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// The output would be longer than the declared length.
    OutputTooLong,
    /// A literal run or back reference reads past the compressed bytes.
    InputTruncated,
    /// A back reference points before the start of the output.
    BadReference,
}

impl LzfError {
    pub fn describe(self) -> &'static str {
        match self {
            LzfError::OutputTooLong => "LZF data decompresses to more than the declared length",
            LzfError::InputTruncated => "LZF data ends inside a literal run or back reference",
            LzfError::BadReference => "LZF back reference points before the start of the output",
        }
    }
}

/// Decompresses `input` into `out` (cleared first), which must come out exactly
/// `expected_len` bytes long, as `lzf_decompress` requires.
///
/// # Errors
/// Any malformed control byte, reference or length.
pub fn lzf_decompress(
    input: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), LzfError> {
    out.clear();
    // A 3-byte back reference yields at most 264 bytes: anything declaring more than that
    // ratio is corrupt, so this reservation is bounded by the bytes actually received.
    out.reserve(expected_len.min(input.len().saturating_mul(88)));
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > expected_len {
                return Err(LzfError::OutputTooLong);
            }
            let lit = input.get(ip..ip + run).ok_or(LzfError::InputTruncated)?;
            out.extend_from_slice(lit);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or(LzfError::InputTruncated)?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip).ok_or(LzfError::InputTruncated)?);
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let len = len + 2;
            if out.len() + len > expected_len {
                return Err(LzfError::OutputTooLong);
            }
            let start = out.len().checked_sub(back).ok_or(LzfError::BadReference)?;
            if back >= len {
                out.extend_from_within(start..start + len);
            } else {
                // Overlapping reference: the copy reads bytes it has just written.
                for i in 0..len {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::InputTruncated);
    }
    Ok(())
}

const LZF_HLOG: u32 = 14;
const LZF_MAX_LIT: usize = 32;
const LZF_MAX_OFF: usize = 1 << 13;
const LZF_MAX_REF: usize = (1 << 8) + (1 << 3);

/// Hash table slots of the compressor.
const LZF_TABLE: usize = 1 << LZF_HLOG;
/// Positions probed without a match before the compressor's step grows by one byte.
const LZF_SKIP_AFTER: usize = 32;

/// An LZF compressor producing data `lzf_decompress` (Redis's and ours) accepts. The hash
/// table survives between calls and is invalidated by a moving base instead of being
/// cleared, so compressing many short strings costs no table resets.
pub struct LzfCompressor {
    /// A fixed-size array, so indexing by a hash of `LZF_HLOG` bits needs no bounds check.
    table: Box<[u64; LZF_TABLE]>,
    base: u64,
}

impl Default for LzfCompressor {
    fn default() -> Self {
        Self {
            table: Box::new([0; LZF_TABLE]),
            base: 0,
        }
    }
}

impl LzfCompressor {
    /// Compresses `input` into `out` (cleared first). Returns false, leaving `out` unspecified,
    /// when the result would exceed `max_out` bytes: the caller then stores the string raw.
    ///
    /// A full sync of random values spends half the master's time here, nearly all of it
    /// failing to find a match. Two things keep that cheap: the hash of the next position
    /// rolls from the previous one, and after every [`LZF_SKIP_AFTER`] positions without a
    /// match the probe steps one byte further (Snappy's heuristic): incompressible data is
    /// given up on in about a third fewer probes, and compressible data, which matches
    /// early and resets the step, compresses as before.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, max_out: usize) -> bool {
        out.clear();
        // Table entries hold `base + position + 1`; anything below `base + 1` is from an
        // earlier call and therefore empty for this one.
        let base = self.base;
        self.base = base + input.len() as u64 + 1;
        let n = input.len();
        let mut lit_start = 0;
        let mut i = 0;
        // The two bytes at `i`; the third is rolled in below.
        let mut v = Self::head(input, 0);
        let mut misses = 0;
        while i + 2 < n {
            let three = v << 8 | u32::from(input[i + 2]);
            let h = (three.wrapping_mul(2_654_435_761) >> (32 - LZF_HLOG)) as usize;
            let cand = self.table[h];
            self.table[h] = base + i as u64 + 1;
            if cand > base {
                let r = (cand - base - 1) as usize;
                let off = i - r - 1;
                if off < LZF_MAX_OFF && input[r..r + 3] == input[i..i + 3] {
                    let max = (n - i).min(LZF_MAX_REF);
                    let mut l = 3;
                    while l < max && input[r + l] == input[i + l] {
                        l += 1;
                    }
                    Self::flush_literals(&input[lit_start..i], out);
                    let len = l - 2;
                    if len < 7 {
                        out.push(((len << 5) | (off >> 8)) as u8);
                    } else {
                        out.push(((7 << 5) | (off >> 8)) as u8);
                        out.push((len - 7) as u8);
                    }
                    out.push(off as u8);
                    if out.len() > max_out {
                        return false;
                    }
                    i += l;
                    lit_start = i;
                    v = Self::head(input, i);
                    misses = 0;
                    continue;
                }
            }
            let step = 1 + misses / LZF_SKIP_AFTER;
            misses += 1;
            i += step;
            v = if step == 1 {
                three & 0xFFFF
            } else {
                Self::head(input, i)
            };
        }
        Self::flush_literals(&input[lit_start..], out);
        out.len() <= max_out
    }

    /// The first two bytes at `i`, as the rolling hash input expects them before the third.
    fn head(input: &[u8], i: usize) -> u32 {
        match input.get(i..i + 2) {
            Some(&[a, b]) => u32::from(a) << 8 | u32::from(b),
            _ => 0,
        }
    }

    fn flush_literals(mut lit: &[u8], out: &mut Vec<u8>) {
        while !lit.is_empty() {
            let run = lit.len().min(LZF_MAX_LIT);
            out.push((run - 1) as u8);
            out.extend_from_slice(&lit[..run]);
            lit = &lit[run..];
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_redis_output() {
        // "a" * 100 as written by Redis 7.0.15 (spec 8.4).
        let data = [0x01, 0x61, 0x61, 0xe0, 0x57, 0x00, 0x01, 0x61, 0x61];
        let mut out = Vec::new();
        lzf_decompress(&data, 100, &mut out).unwrap();
        assert_eq!(out, vec![b'a'; 100]);
        assert_eq!(
            lzf_decompress(&data, 99, &mut out),
            Err(LzfError::OutputTooLong)
        );
        assert_eq!(
            lzf_decompress(&data, 101, &mut out),
            Err(LzfError::InputTruncated)
        );
        assert_eq!(
            lzf_decompress(&[0x20, 0x00], 3, &mut out),
            Err(LzfError::BadReference)
        );
    }

    #[test]
    fn compress_round_trips() {
        let mut c = LzfCompressor::default();
        let inputs: Vec<Vec<u8>> = vec![
            b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec(),
            vec![b'x'; 10_000],
            (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect(),
            b"no repeats here at all!".to_vec(),
        ];
        for input in inputs {
            let mut out = Vec::new();
            if c.compress(&input, &mut out, usize::MAX) {
                let mut back = Vec::new();
                lzf_decompress(&out, input.len(), &mut back).unwrap();
                assert_eq!(back, input);
            }
        }
    }

    #[test]
    fn int_encoding_is_canonical_only() {
        assert_eq!(int_encodable(b"12345"), Some(12345));
        assert_eq!(int_encodable(b"-7"), Some(-7));
        assert_eq!(int_encodable(b"007"), None);
        assert_eq!(int_encodable(b"+7"), None);
        assert_eq!(int_encodable(b"4611686018427387904"), None);
        assert_eq!(int_encodable(b""), None);
    }

    #[test]
    fn crc_matches_redis_check_value() {
        let mut d = crc64_digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xe9c6_d914_c4b8_d9ca);
    }
}
