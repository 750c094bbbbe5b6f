//! Decoders for the compact blobs Redis embeds in RDB values: ziplist, listpack, intset
//! and zipmap, plus the listpack encoder the writer uses. Every decoder validates the whole
//! blob (header sizes, entry bounds, back-lengths, counts, order) before its entries are
//! trusted, like Redis's `*ValidateIntegrity` with deep checks; they never index outside
//! the blob and never panic. They know nothing of keys, types or duplicates.

/// Where inside a blob a check failed (offset from the blob's first byte) and which check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactError {
    pub pos: usize,
    pub reason: &'static str,
}

fn err<T>(pos: usize, reason: &'static str) -> Result<T, CompactError> {
    Err(CompactError { pos, reason })
}

/// One element of a compact blob: ziplists and listpacks store small integers as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// The element as Redis returns it: integers as their decimal text.
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => itoa::Buffer::new().format(i).as_bytes().to_vec(),
        }
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads `n` little-endian bytes at `at` as a sign-extended integer.
fn int_le(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let bytes = b.get(at..at + n)?;
    let mut v: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        v |= u64::from(*byte) << (8 * i);
    }
    let shift = 64 - 8 * n as u32;
    Some(((v << shift) as i64) >> shift)
}

/// Size of a listpack entry's back-length field for an entry of `len` bytes
/// (`lpEncodeBacklen`).
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..16383 => 2,
        16383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    }
}

/// Appends the back-length bytes of an entry of `len` bytes, as `lpEncodeBacklen` lays them out.
fn put_backlen(out: &mut Vec<u8>, len: usize) {
    let n = backlen_size(len);
    for i in (0..n).rev() {
        let group = ((len >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

const LP_HEADER: usize = 6;
const LP_END: u8 = 0xFF;

/// Walks a listpack, validating it entirely, and calls `f` on each element in order.
///
/// # Errors
/// The first failed check, with its position in the blob.
pub fn listpack_for_each<'a>(
    blob: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> Result<(), CompactError>,
) -> Result<usize, CompactError> {
    if blob.len() < LP_HEADER + 1 {
        return err(0, "listpack is shorter than its header");
    }
    if u32_le(blob, 0).map(|t| t as usize) != Some(blob.len()) {
        return err(0, "listpack total size does not match the blob length");
    }
    let declared = u16_le(blob, 4).unwrap_or(0);
    let mut p = LP_HEADER;
    let mut count = 0usize;
    loop {
        let Some(&b) = blob.get(p) else {
            return err(p, "listpack has no end marker");
        };
        if b == LP_END {
            if p != blob.len() - 1 {
                return err(p, "listpack end marker is not its last byte");
            }
            break;
        }
        let bad = |_| CompactError {
            pos: p,
            reason: "listpack entry exceeds the listpack",
        };
        let (size, elem) = match b {
            0x00..=0x7F => (1, Elem::Int(i64::from(b))),
            0x80..=0xBF => {
                let len = usize::from(b & 0x3F);
                (
                    1 + len,
                    Elem::Str(blob.get(p + 1..p + 1 + len).ok_or(()).map_err(bad)?),
                )
            }
            0xC0..=0xDF => {
                let lo = *blob.get(p + 1).ok_or(()).map_err(bad)?;
                let v = i64::from(u16::from(b & 0x1F) << 8 | u16::from(lo));
                (2, Elem::Int(if v >= 1 << 12 { v - (1 << 13) } else { v }))
            }
            0xE0..=0xEF => {
                let lo = *blob.get(p + 1).ok_or(()).map_err(bad)?;
                let len = usize::from(b & 0x0F) << 8 | usize::from(lo);
                (
                    2 + len,
                    Elem::Str(blob.get(p + 2..p + 2 + len).ok_or(()).map_err(bad)?),
                )
            }
            0xF0 => {
                let len = u32_le(blob, p + 1).ok_or(()).map_err(bad)? as usize;
                let end = (p + 5).checked_add(len).ok_or(()).map_err(bad)?;
                (
                    5 + len,
                    Elem::Str(blob.get(p + 5..end).ok_or(()).map_err(bad)?),
                )
            }
            0xF1 => (3, Elem::Int(int_le(blob, p + 1, 2).ok_or(()).map_err(bad)?)),
            0xF2 => (4, Elem::Int(int_le(blob, p + 1, 3).ok_or(()).map_err(bad)?)),
            0xF3 => (5, Elem::Int(int_le(blob, p + 1, 4).ok_or(()).map_err(bad)?)),
            0xF4 => (9, Elem::Int(int_le(blob, p + 1, 8).ok_or(()).map_err(bad)?)),
            _ => return err(p, "listpack entry has an invalid encoding byte"),
        };
        let bl = backlen_size(size);
        let Some(stored) = blob.get(p + size..p + size + bl) else {
            return err(p, "listpack entry back-length exceeds the listpack");
        };
        let mut expected = Vec::with_capacity(5);
        put_backlen(&mut expected, size);
        if stored != expected.as_slice() {
            return err(
                p + size,
                "listpack entry back-length does not match the entry size",
            );
        }
        f(elem)?;
        count += 1;
        p += size + bl;
    }
    if declared != u16::MAX && usize::from(declared) != count {
        return err(4, "listpack element count does not match its header");
    }
    Ok(count)
}

/// How `s` is written in a listpack: its encoding bytes (the tag, and an integer's value)
/// and whether the string's own bytes follow them (string form for strings, integer form
/// for canonical integers).
fn lp_encoding(s: &[u8]) -> ([u8; 9], usize, bool) {
    let mut head = [0u8; 9];
    let (n, with_bytes) = match super::encoding::int_encodable_i64(s) {
        Some(v) if (0..=127).contains(&v) => {
            head[0] = v as u8;
            (1, false)
        }
        Some(v) if (-4096..=4095).contains(&v) => {
            let u = (v as u16) & 0x1FFF;
            head[..2].copy_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
            (2, false)
        }
        Some(v) if i16::try_from(v).is_ok() => {
            head[0] = 0xF1;
            head[1..3].copy_from_slice(&(v as i16).to_le_bytes());
            (3, false)
        }
        Some(v) if (-(1 << 23)..1 << 23).contains(&v) => {
            head[0] = 0xF2;
            head[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
            (4, false)
        }
        Some(v) if i32::try_from(v).is_ok() => {
            head[0] = 0xF3;
            head[1..5].copy_from_slice(&(v as i32).to_le_bytes());
            (5, false)
        }
        Some(v) => {
            head[0] = 0xF4;
            head[1..9].copy_from_slice(&v.to_le_bytes());
            (9, false)
        }
        None if s.len() < 64 => {
            head[0] = 0x80 | s.len() as u8;
            (1, true)
        }
        None if s.len() < 4096 => {
            head[..2].copy_from_slice(&[0xE0 | (s.len() >> 8) as u8, s.len() as u8]);
            (2, true)
        }
        None => {
            head[0] = 0xF0;
            head[1..5].copy_from_slice(&(s.len() as u32).to_le_bytes());
            (5, true)
        }
    };
    (head, n, with_bytes)
}

/// Appends one listpack entry.
fn lp_append(out: &mut Vec<u8>, s: &[u8]) {
    let (head, n, with_bytes) = lp_encoding(s);
    out.extend_from_slice(&head[..n]);
    if with_bytes {
        out.extend_from_slice(s);
    }
    put_backlen(out, n + if with_bytes { s.len() } else { 0 });
}

/// The bytes [`lp_append`] adds for `s`, back length included: quicklist nodes are cut by
/// their listpack's size.
pub fn listpack_entry_size(s: &[u8]) -> usize {
    let (_, n, with_bytes) = lp_encoding(s);
    let size = n + if with_bytes { s.len() } else { 0 };
    size + backlen_size(size)
}

/// Bytes of an empty listpack (header and end byte).
pub const LISTPACK_EMPTY: usize = LP_HEADER + 1;

/// Builds a listpack holding `items` in order into `out` (cleared first). Items must each be
/// shorter than 4 GiB (the writer gives PLAIN nodes to elements of 1 GiB and more).
pub fn listpack_build<'a>(items: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    listpack_start(out);
    let mut count = 0usize;
    for item in items {
        lp_append(out, item);
        count += 1;
    }
    listpack_finish(out, count);
}

/// Appends elements to a listpack under construction (after its header).
pub fn listpack_push(out: &mut Vec<u8>, item: &[u8]) {
    lp_append(out, item);
}

/// Appends an integer element to a listpack under construction.
pub fn listpack_push_int(out: &mut Vec<u8>, v: i64) {
    lp_append(out, itoa::Buffer::new().format(v).as_bytes());
}

/// Starts a listpack in `out` (cleared first): its header, to be filled by
/// [`listpack_finish`].
pub fn listpack_start(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; LP_HEADER]);
}

/// Ends a listpack of `count` elements started with [`listpack_start`]: the end byte and
/// the header's total size and element count (saturated, as Redis does past 65535).
pub fn listpack_finish(out: &mut Vec<u8>, count: usize) {
    out.push(LP_END);
    let total = out.len() as u32;
    out[..4].copy_from_slice(&total.to_le_bytes());
    let n = u16::try_from(count).unwrap_or(u16::MAX);
    out[4..6].copy_from_slice(&n.to_le_bytes());
}

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xFF;
const ZL_BIG_PREVLEN: u8 = 254;

/// Walks a ziplist, validating it entirely (sizes, tail offset, prevlen chain, count), and
/// calls `f` on each element in order.
///
/// # Errors
/// The first failed check, with its position in the blob.
pub fn ziplist_for_each<'a>(
    blob: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> Result<(), CompactError>,
) -> Result<usize, CompactError> {
    if blob.len() < ZL_HEADER + 1 {
        return err(0, "ziplist is shorter than its header");
    }
    if u32_le(blob, 0).map(|t| t as usize) != Some(blob.len()) {
        return err(0, "ziplist total size does not match the blob length");
    }
    let tail = u32_le(blob, 4).unwrap_or(0) as usize;
    let declared = u16_le(blob, 8).unwrap_or(0);
    if blob[blob.len() - 1] != ZL_END {
        return err(blob.len() - 1, "ziplist does not end with its end marker");
    }
    let mut p = ZL_HEADER;
    let mut prev_len = 0usize;
    let mut last = ZL_HEADER;
    let mut count = 0usize;
    let end = blob.len() - 1;
    while p < end {
        let bad = |_| CompactError {
            pos: p,
            reason: "ziplist entry length exceeds the ziplist",
        };
        let (prevlen, mut q) = if blob[p] < ZL_BIG_PREVLEN {
            (usize::from(blob[p]), p + 1)
        } else if blob[p] == ZL_BIG_PREVLEN {
            (u32_le(blob, p + 1).ok_or(()).map_err(bad)? as usize, p + 5)
        } else {
            return err(p, "ziplist end marker found before the end of the ziplist");
        };
        if prevlen != prev_len {
            return err(p, "ziplist entry prevlen does not match the previous entry");
        }
        let e = *blob.get(q).ok_or(()).map_err(bad)?;
        q += 1;
        let elem = match e >> 6 {
            0..=2 => {
                let len = match e >> 6 {
                    0 => usize::from(e & 0x3F),
                    1 => {
                        let lo = *blob.get(q).ok_or(()).map_err(bad)?;
                        q += 1;
                        usize::from(e & 0x3F) << 8 | usize::from(lo)
                    }
                    _ => {
                        if e != 0x80 {
                            return err(p, "ziplist entry has an invalid string encoding");
                        }
                        let b = blob.get(q..q + 4).ok_or(()).map_err(bad)?;
                        q += 4;
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
                    }
                };
                let s = q
                    .checked_add(len)
                    .and_then(|stop| blob.get(q..stop))
                    .ok_or(())
                    .map_err(bad)?;
                q += len;
                Elem::Str(s)
            }
            _ => {
                let (n, imm) = match e {
                    0xC0 => (2, None),
                    0xD0 => (4, None),
                    0xE0 => (8, None),
                    0xF0 => (3, None),
                    0xFE => (1, None),
                    0xF1..=0xFD => (0, Some(i64::from(e & 0x0F) - 1)),
                    _ => return err(p, "ziplist entry has an invalid integer encoding"),
                };
                let v = match imm {
                    Some(v) => v,
                    None => int_le(blob, q, n).ok_or(()).map_err(bad)?,
                };
                q += n;
                Elem::Int(v)
            }
        };
        if q > end {
            return err(p, "ziplist entry length exceeds the ziplist");
        }
        f(elem)?;
        count += 1;
        last = p;
        prev_len = q - p;
        p = q;
    }
    if tail != last {
        return err(4, "ziplist tail offset does not point at the last entry");
    }
    if declared != u16::MAX && usize::from(declared) != count {
        return err(8, "ziplist element count does not match its header");
    }
    Ok(count)
}

/// Decodes an intset (`encoding:u32 len:u32` then ascending integers), validating it like
/// `intsetValidateIntegrity` with deep checks: known width, exact size, not empty, strictly
/// ascending.
///
/// # Errors
/// The first failed check, with its position in the blob.
pub fn intset_for_each(blob: &[u8], mut f: impl FnMut(i64)) -> Result<usize, CompactError> {
    let (Some(width), Some(count)) = (u32_le(blob, 0), u32_le(blob, 4)) else {
        return err(0, "intset is shorter than its header");
    };
    let width = match width {
        2 | 4 | 8 => width as usize,
        _ => return err(0, "intset has an invalid integer width"),
    };
    let count = count as usize;
    if count.checked_mul(width).and_then(|b| b.checked_add(8)) != Some(blob.len()) {
        return err(4, "intset size does not match its element count");
    }
    if count == 0 {
        return err(4, "intset is empty");
    }
    let mut prev = None;
    for i in 0..count {
        let at = 8 + i * width;
        let v = int_le(blob, at, width).ok_or(CompactError {
            pos: at,
            reason: "intset element exceeds the intset",
        })?;
        if prev.is_some_and(|p| v <= p) {
            return err(at, "intset elements are not strictly ascending");
        }
        prev = Some(v);
        f(v);
    }
    Ok(count)
}

/// Field/value pairs borrowed from a blob.
pub type FieldValues<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Decodes a zipmap (Redis < 2.6 small hashes) into its field/value pairs, validating
/// bounds, the end marker and the declared count.
///
/// # Errors
/// The first failed check, with its position in the blob.
pub fn zipmap_pairs(blob: &[u8]) -> Result<FieldValues<'_>, CompactError> {
    fn len_at(blob: &[u8], p: usize) -> Result<(usize, usize), CompactError> {
        match blob.get(p) {
            Some(&b) if b < 254 => Ok((usize::from(b), 1)),
            Some(&254) => u32_le(blob, p + 1)
                .map(|v| (v as usize, 5))
                .ok_or(CompactError {
                    pos: p,
                    reason: "zipmap length exceeds the zipmap",
                }),
            _ => err(p, "zipmap entry length exceeds the zipmap"),
        }
    }
    let Some(&declared) = blob.first() else {
        return err(0, "zipmap is empty");
    };
    let mut pairs = Vec::new();
    let mut p = 1;
    loop {
        match blob.get(p) {
            None => return err(p, "zipmap has no end marker"),
            Some(&255) => {
                if p != blob.len() - 1 {
                    return err(p, "zipmap end marker is not its last byte");
                }
                break;
            }
            Some(_) => {}
        }
        let (klen, n) = len_at(blob, p)?;
        let k = p + n;
        let key = k
            .checked_add(klen)
            .and_then(|e| blob.get(k..e))
            .ok_or(CompactError {
                pos: p,
                reason: "zipmap field exceeds the zipmap",
            })?;
        p = k + klen;
        let (vlen, n) = len_at(blob, p)?;
        let Some(&free) = blob.get(p + n) else {
            return err(p, "zipmap value exceeds the zipmap");
        };
        let v = p + n + 1;
        let value = v
            .checked_add(vlen)
            .and_then(|e| blob.get(v..e))
            .ok_or(CompactError {
                pos: p,
                reason: "zipmap value exceeds the zipmap",
            })?;
        p = v + vlen + usize::from(free);
        pairs.push((key, value));
    }
    if declared < 254 && usize::from(declared) != pairs.len() {
        return err(0, "zipmap pair count does not match its header");
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lp_items(blob: &[u8]) -> Result<Vec<Vec<u8>>, CompactError> {
        let mut v = Vec::new();
        listpack_for_each(blob, |e| {
            v.push(e.to_vec());
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn listpack_from_redis_dump() {
        // HASH_LISTPACK f1=v1 f2=v2 from spec 8.6.
        let blob = [
            0x17, 0, 0, 0, 4, 0, 0x82, b'f', b'1', 3, 0x82, b'v', b'1', 3, 0x82, b'f', b'2', 3,
            0x82, b'v', b'2', 3, 0xff,
        ];
        assert_eq!(
            lp_items(&blob).unwrap(),
            vec![
                b"f1".to_vec(),
                b"v1".to_vec(),
                b"f2".to_vec(),
                b"v2".to_vec()
            ]
        );
        let mut bad = blob;
        bad[4] = 5;
        assert!(lp_items(&bad).is_err());
        let mut bad = blob;
        bad[9] = 4;
        assert!(lp_items(&bad).is_err());
    }

    #[test]
    fn listpack_build_round_trips() {
        let long = vec![b'z'; 5000];
        let items: Vec<&[u8]> =
            vec![
            b"a", b"0", b"127", b"128", b"-1", b"-4096", b"4095", b"4096", b"-32768", b"32767",
            b"8388607", b"-8388608", b"8388608", b"2147483647", b"-2147483648", b"2147483648",
            b"9223372036854775807", b"-9223372036854775808", b"007", b"", &long,
            b"this is a string of more than sixty-four bytes, to use the 12-bit length form....",
        ];
        let mut out = Vec::new();
        listpack_build(items.iter().copied(), &mut out);
        let back = lp_items(&out).unwrap();
        assert_eq!(back, items.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn intset_checks() {
        let blob = [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0];
        let mut v = Vec::new();
        intset_for_each(&blob, |i| v.push(i)).unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        let dup = [2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0];
        assert!(intset_for_each(&dup, |_| ()).is_err());
        assert!(intset_for_each(&[2, 0, 0, 0, 0, 0, 0, 0], |_| ()).is_err());
        assert!(intset_for_each(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0], |_| ()).is_err());
    }
}
