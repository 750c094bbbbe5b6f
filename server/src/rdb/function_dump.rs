//! FUNCTION DUMP's payload, as Redis 7.0 produces and reads it: one FUNCTION2 record per
//! library (the opcode, then the code as an RDB string), the RDB version as two
//! little-endian bytes, and the CRC64 of everything before it, little-endian.
//!
//! A dump must restore in Redis and come out byte for byte as Redis's own: the code is
//! LZF-compressed exactly as Redis's `lzf_compress` does it ([`redis_lzf`]), not with the
//! faster compressor the RDB writer uses. Pure functions over bytes: no libraries, no
//! interpreter here.

use super::encoding::{self as enc, crc64_digest, put_len};

/// Builds the payload of these library codes. `compression` is `rdbcompression`.
pub fn dump<'c>(codes: impl IntoIterator<Item = &'c [u8]>, compression: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(enc::OPCODE_FUNCTION2);
        put_string(&mut out, code, compression);
    }
    out.extend_from_slice(&(enc::RDB_VERSION as u16).to_le_bytes());
    let mut crc = crc64_digest();
    crc.update(&out);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out
}

/// Redis's `rdbSaveRawString`: integer encoding for short decimal text, LZF when it saves at
/// least four bytes of a string over 20, raw otherwise.
fn put_string(out: &mut Vec<u8>, s: &[u8], compression: bool) {
    if let Some(v) = enc::int_encodable(s) {
        enc::put_int_encoded(out, v);
        return;
    }
    if compression
        && s.len() > 20
        && let Some(packed) = redis_lzf(s, s.len() - 4)
    {
        out.push((enc::LEN_ENCVAL << 6) | enc::ENC_LZF);
        put_len(out, packed.len() as u64);
        put_len(out, s.len() as u64);
        out.extend_from_slice(&packed);
        return;
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Why a payload was refused, in Redis's words (without the `ERR ` code).
pub const BAD_FOOTER: &str = "DUMP payload version or checksum are wrong";

/// The library codes of a payload (Redis's `functionRestoreCommand` reading), after
/// checking its version and checksum.
///
/// # Errors
/// Redis's texts, without the `ERR ` code.
pub fn parse(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if payload.len() < 10 {
        return Err(BAD_FOOTER.into());
    }
    let footer = &payload[payload.len() - 10..];
    if u32::from(u16::from_le_bytes([footer[0], footer[1]])) > enc::RDB_VERSION {
        return Err(BAD_FOOTER.into());
    }
    let mut crc = crc64_digest();
    crc.update(&payload[..payload.len() - 8]);
    if crc.finalize().to_le_bytes() != footer[2..] {
        return Err(BAD_FOOTER.into());
    }
    // Records are read until only the footer is left; a string may run into the footer,
    // as it may in Redis, whose reader sees the whole payload.
    let mut r = Cursor {
        buf: payload,
        pos: 0,
    };
    let mut codes = Vec::new();
    while payload.len() - r.pos > 10 {
        let kind = r.byte().ok_or("can not read data type")?;
        match kind {
            enc::OPCODE_FUNCTION2 => {
                codes.push(r.string().ok_or("Failed loading library payload")?);
            }
            enc::OPCODE_FUNCTION_PRE_GA => codes.push(r.pre_ga_library()?),
            _ => return Err("given type is not a function".into()),
        }
    }
    Ok(codes)
}

struct Cursor<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    /// A length, or the code of a special string encoding (`Err`).
    fn len(&mut self) -> Option<Result<u64, u8>> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => Ok(u64::from(first & 0x3f)),
            1 => Ok(u64::from(first & 0x3f) << 8 | u64::from(self.byte()?)),
            3 => Err(first & 0x3f),
            _ if first == enc::LEN_32BIT => Ok(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().ok()?,
            ))),
            _ if first == enc::LEN_64BIT => Ok(u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            _ => return None,
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        usize::try_from(self.len()?.ok()?).ok()
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Ok(n) => Some(self.take(usize::try_from(n).ok()?)?.to_vec()),
            Err(enc::ENC_INT8) => Some(int_text(i64::from(self.take(1)?[0] as i8))),
            Err(enc::ENC_INT16) => Some(int_text(i64::from(i16::from_le_bytes(
                self.take(2)?.try_into().ok()?,
            )))),
            Err(enc::ENC_INT32) => Some(int_text(i64::from(i32::from_le_bytes(
                self.take(4)?.try_into().ok()?,
            )))),
            Err(enc::ENC_LZF) => {
                let clen = self.plain_len()?;
                let len = self.plain_len()?;
                let packed = self.take(clen)?;
                let mut out = Vec::new();
                enc::lzf_decompress(packed, len, &mut out).ok()?;
                Some(out)
            }
            Err(_) => None,
        }
    }

    /// A library in the format of Redis 7.0's release candidates (name, engine, optional
    /// description, body), turned into the metadata line and body Redis 7.0 loads.
    fn pre_ga_library(&mut self) -> Result<Vec<u8>, String> {
        let name = self.string().ok_or("Failed loading library name")?;
        let engine = self.string().ok_or("Failed loading engine name")?;
        let has_desc = self
            .plain_len()
            .ok_or("Failed loading library description indicator")?;
        if has_desc != 0 {
            self.string().ok_or("Failed loading library description")?;
        }
        let body = self.string().ok_or("Failed loading library blob")?;
        let mut code = b"#!".to_vec();
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&body);
        Ok(code)
    }
}

fn int_text(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

/// Hash table bits of Redis's LZF build (`HLOG`).
const HLOG: u32 = 16;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// LZF compression with the exact output of Redis's `lzf_compress` (HLOG 16, VERY_FAST,
/// a table that starts empty): `None` when the result would not fit in `max_out` bytes.
///
/// Its choices decide the bytes: a 4-byte rolling hash, position 0 never referenced, a
/// match extended to at most `MAX_REF` bytes and never over the last two input bytes
/// (except through the first 16-byte stretch of a long match), and after a match only the
/// last two positions hashed.
pub fn redis_lzf(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 || max_out == 0 {
        return None;
    }
    let idx =
        |h: u32| ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) & ((1 << HLOG) - 1)) as usize;
    let first = |p: usize| u32::from(input[p]) << 8 | u32::from(input[p + 1]);
    // Position + 1 of the last occurrence of each hash; 0 is empty.
    let mut table = vec![0u32; 1 << HLOG];
    let mut out: Vec<u8> = Vec::with_capacity(max_out + 1);
    // The header byte of the literal run in progress is at `out.len() - lit - 1`.
    let mut lit = 0usize;
    out.push(0);
    let mut ip = 0usize;
    let mut hval = if n >= 2 { first(0) } else { 0 };
    while ip + 2 < n {
        hval = hval << 8 | u32::from(input[ip + 2]);
        let slot = idx(hval);
        let cand = table[slot] as usize;
        table[slot] = (ip + 1) as u32;
        let found = cand
            .checked_sub(1)
            .filter(|&r| r > 0 && r < ip && ip - r - 1 < MAX_OFF)
            .filter(|&r| input[r..r + 3] == input[ip..ip + 3]);
        if let Some(r) = found {
            let off = ip - r - 1;
            let maxlen = (n - ip - 2).min(MAX_REF);
            if out.len() - usize::from(lit == 0) + 4 >= max_out {
                return None;
            }
            end_run(&mut out, lit);
            let mut len = 2;
            'extend: {
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            break 'extend;
                        }
                    }
                }
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out.push(((off >> 8) + (len << 5)) as u8);
            } else {
                out.push(((off >> 8) + (7 << 5)) as u8);
                out.push((len - 7) as u8);
            }
            out.push(off as u8);
            lit = 0;
            out.push(0);
            ip += len + 1;
            if ip + 2 >= n {
                break;
            }
            ip -= 2;
            hval = first(ip);
            for _ in 0..2 {
                hval = hval << 8 | u32::from(input[ip + 2]);
                table[idx(hval)] = (ip + 1) as u32;
                ip += 1;
            }
        } else {
            if out.len() >= max_out {
                return None;
            }
            push_literal(&mut out, &mut lit, input[ip]);
            ip += 1;
        }
    }
    if out.len() + 3 > max_out {
        return None;
    }
    for &byte in &input[ip..n] {
        push_literal(&mut out, &mut lit, byte);
    }
    end_run(&mut out, lit);
    Some(out)
}

/// Closes the literal run in progress: writes its length into its header byte, or drops
/// the header of an empty run.
fn end_run(out: &mut Vec<u8>, lit: usize) {
    if lit == 0 {
        out.pop();
    } else {
        let at = out.len() - lit - 1;
        out[at] = (lit - 1) as u8;
    }
}

/// Appends one literal byte; a full literal run is closed and the next one opened.
fn push_literal(out: &mut Vec<u8>, lit: &mut usize, byte: u8) {
    *lit += 1;
    out.push(byte);
    if *lit == MAX_LIT {
        end_run(out, *lit);
        *lit = 0;
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "#!lua name=mylib\nredis.register_function(\"myfunc\", function(keys, args) return args[1] end)\nredis.register_function(\"myfunc2\", function(keys, args) return args[1] end)";
    /// `FUNCTION DUMP` of Redis 7.0.15 holding only CODE.
    const REDIS_DUMP: &str = "f5c3406140a71f23216c7561206e616d653d6d796c69620a72656469732e72656769737465725f0b66756e6374696f6e28226d79400b02222c2040066012116b6579732c2061726773292072657475726e600c075b315d20656e6429e0174a0032e0204b0164290a00b1e5dfb1a860fd52";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn dump_is_redis_byte_for_byte() {
        assert_eq!(dump([CODE.as_bytes()], true), hex(REDIS_DUMP));
        assert_eq!(parse(&hex(REDIS_DUMP)), Ok(vec![CODE.as_bytes().to_vec()]));
    }

    #[test]
    fn compressed_strings_come_back() {
        let inputs: Vec<Vec<u8>> = vec![
            vec![b'a'; 1000],
            (0..5000u32).map(|i| (i * 7 % 13) as u8).collect(),
            b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".to_vec(),
            (0..300u32)
                .flat_map(|i| format!("k{i} ").into_bytes())
                .collect(),
        ];
        for input in inputs {
            let packed = redis_lzf(&input, input.len()).expect("compressible");
            let mut out = Vec::new();
            enc::lzf_decompress(&packed, input.len(), &mut out).expect("valid");
            assert_eq!(out, input);
        }
        let random: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(redis_lzf(&random, random.len() - 4), None);
    }

    #[test]
    fn bad_payloads_are_refused_with_redis_texts() {
        let good = dump([CODE.as_bytes()], false);
        assert_eq!(parse(&good), Ok(vec![CODE.as_bytes().to_vec()]));
        let mut flipped = good.clone();
        flipped[3] ^= 1;
        assert_eq!(parse(&flipped), Err(BAD_FOOTER.into()));
        assert_eq!(parse(b"short"), Err(BAD_FOOTER.into()));
        let mut newer = dump([], false);
        newer[0] = 11;
        assert_eq!(parse(&newer), Err(BAD_FOOTER.into()));
        // A key record, with a valid footer.
        let mut body = vec![0u8, 1, b'k', 1, b'v'];
        body.extend_from_slice(&10u16.to_le_bytes());
        let mut crc = crc64_digest();
        crc.update(&body);
        body.extend_from_slice(&crc.finalize().to_le_bytes());
        assert_eq!(parse(&body), Err("given type is not a function".into()));
        assert_eq!(parse(&dump([], true)), Ok(vec![]));
    }
}
