//! HyperLogLog in Redis 7.0's exact byte format, so a value written by either server is read
//! by the other with the same count, and the same inputs give the same bytes.
//!
//! A HyperLogLog is a plain string: a 16-byte header (`HYLL`, the encoding, three reserved
//! bytes, the cached cardinality little endian with its top bit set when stale) followed by
//! 16384 six-bit registers, either dense (12288 bytes, LSB first) or sparse (ZERO, XZERO and
//! VAL run-length opcodes). The sparse form is edited in place exactly as Redis edits it,
//! opcode splits and merges included, and becomes dense past `hll-sparse-max-bytes`.
//!
//! This module knows bytes only: no keys, no commands, no replies.

use std::fmt::Write as _;

/// Header length: magic, encoding, 3 reserved bytes, cached cardinality.
pub const HDR: usize = 16;
/// Registers of every HyperLogLog (2^14).
pub const REGISTERS: usize = 1 << P;
/// Length of a dense HyperLogLog string.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
const P: u32 = 14;
/// Bits of the hash left for the run of zeroes once the register index is taken.
const Q: usize = 64 - P as usize;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const XZERO_BIT: u8 = 0x40;
const VAL_BIT: u8 = 0x80;
/// 0.5 / ln(2), the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// Redis's seed for element hashes.
const SEED: u64 = 0xadc8_3b19;

/// A sparse representation whose opcodes do not cover exactly the 16384 registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupted HyperLogLog")]
pub struct Corrupt;

/// MurmurHash2, 64-bit version, reading 8-byte words little endian as Redis does on every
/// architecture.
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes(w.try_into().unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the length of its `000..1` pattern (1 to 51).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty HyperLogLog: sparse, every register in XZERO opcodes.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.resize(HDR, 0);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        v.extend_from_slice(&xzero(n));
        left -= n;
    }
    v
}

/// Whether a string can be used as a HyperLogLog (Redis's `isHLLObjectOrReply`): the header,
/// a known encoding, and the exact length for the dense one. A sparse body is only checked
/// as it is walked.
pub fn is_valid(v: &[u8]) -> bool {
    v.len() >= HDR
        && v.starts_with(b"HYLL")
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// True for the dense encoding (of a valid HyperLogLog).
pub fn is_dense(v: &[u8]) -> bool {
    v[4] == DENSE
}

/// The cached cardinality, if still valid.
pub fn cached(v: &[u8]) -> Option<u64> {
    let card = u64::from_le_bytes(v[8..HDR].try_into().unwrap_or_default());
    (v[15] & 0x80 == 0).then_some(card)
}

/// Stores a freshly computed cardinality in the header.
pub fn set_cached(v: &mut [u8], card: u64) {
    v[8..HDR].copy_from_slice(&card.to_le_bytes());
}

/// Marks the cached cardinality stale.
pub fn invalidate(v: &mut [u8]) {
    v[15] |= 0x80;
}

/// Adds elements: how many changed a register (Redis adds that to its change counter). The
/// registers raised are kept even when a later element finds the sparse body corrupt, as in
/// Redis; the caller invalidates the cache.
///
/// # Errors
/// A corrupt sparse body.
pub fn add<'a>(
    v: &mut Vec<u8>,
    elements: impl Iterator<Item = &'a [u8]>,
    sparse_max: usize,
) -> Result<u64, Corrupt> {
    let mut changed = 0;
    for ele in elements {
        let (index, count) = pattern(ele);
        changed += u64::from(set(v, index, count, sparse_max)?);
    }
    Ok(changed)
}

/// Raises register `index` to `count` if lower; true when it changed.
fn set(v: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, Corrupt> {
    if is_dense(v) {
        Ok(dense_raise(&mut v[HDR..], index, count))
    } else {
        sparse_set(v, index, count, sparse_max)
    }
}

fn dense_get(r: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u32::from(r[byte]);
    // The last register's second byte is past the end: Redis reads the string's terminator.
    let b1 = u32::from(r.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u32::from(REGISTER_MAX)) as u8
}

fn dense_set(r: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let fb8 = 8 - fb;
    let (max, v) = (u32::from(REGISTER_MAX), u32::from(val));
    r[byte] &= !((max << fb) as u8);
    r[byte] |= (v << fb) as u8;
    if let Some(b) = r.get_mut(byte + 1) {
        *b &= !((max >> fb8) as u8);
        *b |= (v >> fb8) as u8;
    }
}

fn dense_raise(r: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(r, i) {
        dense_set(r, i, count);
        true
    } else {
        false
    }
}

/// The dense registers, four per three bytes, in order.
fn dense_registers(r: &[u8]) -> impl Iterator<Item = u8> + '_ {
    r[..REGISTERS * BITS / 8].chunks_exact(3).flat_map(|c| {
        [
            c[0] & 63,
            (c[0] >> 6 | c[1] << 2) & 63,
            (c[1] >> 4 | c[2] << 4) & 63,
            c[2] >> 2,
        ]
    })
}

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == XZERO_BIT
}

fn is_val(op: u8) -> bool {
    op & VAL_BIT != 0
}

fn zero_len(op: u8) -> usize {
    usize::from(op & 0x3f) + 1
}

/// XZERO's length; a truncated opcode at the end reads Redis's string terminator.
fn xzero_len(v: &[u8], p: usize) -> usize {
    (usize::from(v[p] & 0x3f) << 8 | usize::from(v.get(p + 1).copied().unwrap_or(0))) + 1
}

fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

fn val_len(op: u8) -> usize {
    usize::from(op & 0x3) + 1
}

fn val(value: u8, len: usize) -> u8 {
    ((value - 1) << 2 | (len as u8 - 1)) | VAL_BIT
}

fn zero(len: usize) -> u8 {
    len as u8 - 1
}

fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [(l >> 8) as u8 | XZERO_BIT, (l & 0xff) as u8]
}

/// One sparse opcode: how many registers it covers, its value, its length in bytes.
struct Op {
    span: usize,
    value: u8,
    bytes: usize,
}

fn op_at(v: &[u8], p: usize) -> Op {
    let op = v[p];
    if is_zero(op) {
        Op {
            span: zero_len(op),
            value: 0,
            bytes: 1,
        }
    } else if is_val(op) {
        Op {
            span: val_len(op),
            value: val_value(op),
            bytes: 1,
        }
    } else {
        Op {
            span: xzero_len(v, p),
            value: 0,
            bytes: 2,
        }
    }
}

/// Walks a sparse body: `f(first register, run length, value)` for each opcode; VAL runs
/// that would pass the last register end the walk (zero runs may pass it: they set nothing). Errors unless exactly every register
/// was covered.
fn sparse_runs(v: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
    let (mut p, mut idx) = (HDR, 0);
    while p < v.len() {
        let op = op_at(v, p);
        if op.value > 0 && idx + op.span > REGISTERS {
            break;
        }
        f(idx, op.span, op.value);
        idx += op.span;
        p += op.bytes;
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Converts to the dense encoding; true when it was sparse. The header (cached cardinality
/// included) is kept.
///
/// # Errors
/// A corrupt sparse body (the value is left as it was).
pub fn to_dense(v: &mut Vec<u8>) -> Result<bool, Corrupt> {
    if is_dense(v) {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&v[..HDR]);
    dense[4] = DENSE;
    let r = &mut dense[HDR..];
    sparse_runs(v, |first, len, value| {
        if value > 0 {
            (first..first + len).for_each(|i| dense_set(r, i, value));
        }
    })?;
    *v = dense;
    Ok(true)
}

/// Redis's `hllSparseSet`: finds the opcode covering `index`, splits it around the new VAL
/// when needed, merges equal neighbouring VALs, and promotes to dense when the value does
/// not fit a VAL or the string would pass `sparse_max` bytes.
fn sparse_set(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    let (mut p, mut first, mut prev, mut span) = (HDR, 0, None, 0);
    while p < v.len() {
        let op = op_at(v, p);
        span = op.span;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += op.bytes;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(Corrupt);
    }
    let op = op_at(v, p);
    let runlen = op.span;
    let xz = op.bytes == 2;
    if op.value > 0 {
        if op.value >= count {
            return Ok(false);
        }
        if runlen == 1 {
            v[p] = val(count, 1);
            merge_neighbours(v, prev.unwrap_or(HDR));
            return Ok(true);
        }
    } else if !xz && runlen == 1 {
        v[p] = val(count, 1);
        merge_neighbours(v, prev.unwrap_or(HDR));
        return Ok(true);
    }
    // The general case: the opcode becomes up to three (XZERO-VAL-XZERO at worst).
    let mut seq: Vec<u8> = Vec::with_capacity(5);
    let last = first + span - 1;
    let run = |seq: &mut Vec<u8>, len: usize| {
        if op.value > 0 {
            seq.push(val(op.value, len));
        } else if len > ZERO_MAX_LEN {
            seq.extend_from_slice(&xzero(len));
        } else {
            seq.push(zero(len));
        }
    };
    if index != first {
        run(&mut seq, index - first);
    }
    seq.push(val(count, 1));
    if index != last {
        run(&mut seq, last - index);
    }
    let old = op.bytes;
    let new_len = v.len() + seq.len() - old;
    if seq.len() > old && new_len > sparse_max {
        return promote(v, index, count);
    }
    if p + old < v.len() {
        v.splice(p..p + old, seq);
    } else {
        // The last opcode (possibly a truncated XZERO, whose second byte Redis reads from
        // the terminator): the string takes the new length.
        v.truncate(p);
        v.extend_from_slice(&seq);
        v.truncate(new_len);
    }
    merge_neighbours(v, prev.unwrap_or(HDR));
    Ok(true)
}

/// Merges adjacent VAL opcodes of equal value, scanning up to five opcodes from `p`.
fn merge_neighbours(v: &mut Vec<u8>, mut p: usize) {
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let op = v[p];
        if is_xzero(op) {
            p += 2;
            continue;
        } else if is_zero(op) {
            p += 1;
            continue;
        }
        if p + 1 < v.len() && is_val(v[p + 1]) {
            let (v1, v2) = (val_value(op), val_value(v[p + 1]));
            let len = val_len(op) + val_len(v[p + 1]);
            if v1 == v2 && len <= VAL_MAX_LEN {
                v[p + 1] = val(v1, len);
                v.remove(p);
                continue;
            }
        }
        p += 1;
    }
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(v)?;
    // A promotion always comes with a register to raise (Redis asserts it).
    Ok(dense_raise(&mut v[HDR..], index, count))
}

/// The registers of a HyperLogLog raised into `max` (PFMERGE, PFCOUNT of several keys).
///
/// # Errors
/// A corrupt sparse body.
pub fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Corrupt> {
    if is_dense(v) {
        for (m, r) in max.iter_mut().zip(dense_registers(&v[HDR..])) {
            *m = (*m).max(r);
        }
        Ok(())
    } else {
        sparse_runs(v, |first, len, value| {
            if value > 0 {
                for m in &mut max[first..first + len] {
                    *m = (*m).max(value);
                }
            }
        })
    }
}

/// Writes registers (one byte each) into a HyperLogLog, in register order, as PFMERGE does
/// into its destination.
pub fn raise_all(v: &mut Vec<u8>, max: &[u8; REGISTERS], sparse_max: usize) {
    for (i, &m) in max.iter().enumerate() {
        // Redis ignores a corrupt destination here: it was validated as a source.
        if m > 0 && set(v, i, m, sparse_max).is_err() {
            break;
        }
    }
    invalidate(v);
}

/// The estimated cardinality of a HyperLogLog (not using the cache).
///
/// # Errors
/// A corrupt sparse body.
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut hist = [0u32; 64];
    if is_dense(v) {
        dense_registers(&v[HDR..]).for_each(|r| hist[usize::from(r)] += 1);
    } else {
        // Redis's histogram does not stop at an overflowing VAL run: walk it here.
        let (mut p, mut idx) = (HDR, 0);
        while p < v.len() {
            let op = op_at(v, p);
            hist[usize::from(op.value)] += op.span as u32;
            idx += op.span;
            p += op.bytes;
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&hist))
}

/// The estimated cardinality of registers held one per byte.
pub fn count_registers(max: &[u8; REGISTERS]) -> u64 {
    let mut hist = [0u32; 64];
    max.iter().for_each(|&r| hist[usize::from(r & 63)] += 1);
    estimate(&hist)
}

/// Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
/// sketches", arXiv:1702.01284), in Redis's order of operations.
fn estimate(hist: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(hist[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(hist[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(hist[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Every register of a dense HyperLogLog (PFDEBUG GETREG).
pub fn registers(v: &[u8]) -> Vec<u8> {
    dense_registers(&v[HDR..]).collect()
}

/// The sparse opcodes as PFDEBUG DECODE prints them (`Z:16384`, `z:3`, `v:2,1`).
pub fn decode(v: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR;
    while p < v.len() {
        let op = op_at(v, p);
        // Writing to a String cannot fail.
        let _ = match (op.value, op.bytes) {
            (0, 2) => write!(out, "Z:{} ", op.span),
            (0, _) => write!(out, "z:{} ", op.span),
            (value, _) => write!(out, "v:{},{} ", value, op.span),
        };
        p += op.bytes;
    }
    out.trim_matches(' ').to_string()
}

/// What PFSELFTEST found wrong, in Redis's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfTestError {
    #[error("TESTFAILED Register {index} should be {expected} but is {found}")]
    Register {
        index: usize,
        expected: u8,
        found: u8,
    },
    #[error("TESTFAILED sparse encoding not used")]
    NotSparse,
    #[error("TESTFAILED dense/sparse disagree")]
    Disagree,
    #[error("TESTFAILED Too big error. card:{card} abserr:{abserr}")]
    TooBigError { card: u64, abserr: u64 },
}

/// PFSELFTEST: the register accessors keep values apart, and the estimate of `10^k` distinct
/// elements stays within six standard errors, with dense and sparse agreeing. `random`
/// supplies the register values and the element seed.
///
/// # Errors
/// The first check that failed.
pub fn self_test(mut random: impl FnMut() -> u64, sparse_max: usize) -> Result<(), SelfTestError> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut bytes = [0u8; REGISTERS];
    for _ in 0..1000 {
        let r = &mut dense[HDR..];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (random() & u64::from(REGISTER_MAX)) as u8;
            dense_set(r, i, *b);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let found = dense_get(r, i);
            if found != b {
                return Err(SelfTestError::Register {
                    index: i,
                    expected: b,
                    found,
                });
            }
        }
    }
    dense[HDR..].fill(0);
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed = random();
    let mut checkpoint: u64 = 1;
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_ne_bytes();
        let (index, run) = pattern(&ele);
        dense_raise(&mut dense[HDR..], index, run);
        // An element that finds no room in the sparse form promotes it: it cannot fail.
        let _ = set(&mut sparse, index, run, sparse_max);
        if j != checkpoint {
            continue;
        }
        if j < (sparse_max / 2) as u64 && is_dense(&sparse) {
            return Err(SelfTestError::NotSparse);
        }
        let card = count(&dense).unwrap_or(0);
        if Ok(card) != count(&sparse) {
            return Err(SelfTestError::Disagree);
        }
        let abserr = checkpoint.abs_diff(card);
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(SelfTestError::TooBigError {
                card: checkpoint,
                abserr,
            });
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_redis() {
        // Redis 7.0: PFADD h a b c; PFDEBUG DECODE h -> Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603
        let mut found: Vec<_> = [&b"a"[..], b"b", b"c"].iter().map(|e| pattern(e)).collect();
        found.sort();
        assert_eq!(found, vec![(8436, 1), (12711, 2), (15780, 1)]);
        let mut v = new_sparse();
        assert_eq!(
            add(&mut v, [&b"a"[..], b"b", b"c"].into_iter(), 3000),
            Ok(3)
        );
        assert_eq!(decode(&v), "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603");
    }

    #[test]
    fn new_hll_is_two_xzeros_short() {
        let v = new_sparse();
        assert_eq!(v, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert!(is_valid(&v));
        assert_eq!(decode(&v), "Z:16384");
        assert_eq!(count(&v), Ok(0));
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        to_dense(&mut dense).expect("valid");
        assert_eq!(dense.len(), DENSE_SIZE);
        for i in 0..1000u32 {
            let e = i.to_string();
            let a = add(&mut sparse, std::iter::once(e.as_bytes()), 3000).expect("valid");
            let b = add(&mut dense, std::iter::once(e.as_bytes()), 3000).expect("valid");
            assert_eq!(a, b);
        }
        assert!(!is_dense(&sparse));
        assert_eq!(count(&sparse), count(&dense));
        let mut promoted = sparse.clone();
        to_dense(&mut promoted).expect("valid");
        assert_eq!(promoted[HDR..], dense[HDR..]);
        let est = count(&dense).expect("valid");
        assert!((950..1050).contains(&est), "{est}");
    }

    #[test]
    fn registers_keep_apart() {
        let mut r = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_set(&mut r, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&r, i), (i % 64) as u8);
        }
        assert!(dense_registers(&r).eq((0..REGISTERS).map(|i| (i % 64) as u8)));
    }

    #[test]
    fn corrupt_sparse_bodies_are_detected() {
        let mut v = new_sparse();
        v.truncate(HDR + 1);
        assert_eq!(count(&v), Err(Corrupt));
        assert_eq!(to_dense(&mut v.clone()), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &v), Err(Corrupt));
        let mut over = new_sparse();
        over.extend_from_slice(&xzero(XZERO_MAX_LEN));
        assert_eq!(merge_into(&mut max, &over), Err(Corrupt));
        assert_eq!(to_dense(&mut over), Err(Corrupt));
        assert!(!is_valid(b"HYLL\x00"));
        assert!(!is_valid(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
    }
}
