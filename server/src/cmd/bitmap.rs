//! Bitmap commands over string values: BITPOS, BITOP, BITFIELD, BITFIELD_RO (SETBIT,
//! GETBIT and BITCOUNT live with the other string commands).
//!
//! Bits are numbered as Redis numbers them: bit 0 is the most significant bit of byte 0.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::{SmallBytes, Value};
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec("bitpos", -3, READONLY, (1, 1, 1), "bitmap", bitpos),
    spec("bitop", -4, WRITE | DENYOOM, (2, -1, 1), "bitmap", bitop),
    spec(
        "bitfield",
        -2,
        WRITE | DENYOOM,
        (1, 1, 1),
        "bitmap",
        bitfield,
    ),
    spec(
        "bitfield_ro",
        -2,
        READONLY | FAST,
        (1, 1, 1),
        "bitmap",
        bitfield_ro,
    ),
];

fn bit_at(v: &[u8], i: u64) -> bool {
    v[(i >> 3) as usize] & (0x80 >> (i & 7)) != 0
}

/// Redis's start/end clamping for BITPOS (no early answer for an inverted negative range).
fn clamp(start: i64, end: i64, len: i64) -> (i64, i64) {
    let from_end = |i: i64| if i < 0 { len.saturating_add(i) } else { i };
    let s = from_end(start).max(0);
    let e = from_end(end).max(0).min(len - 1);
    (s, e)
}

fn bitpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let bit = int_arg(args.get(2))?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::msg("ERR The bit argument must be 1 or 0."));
    }
    let want = bit == 1;
    // A missing key is an infinite run of zeros.
    let Some(v) = ctx.get_str(args.get(1))?.map(|s| s.as_bytes().to_vec()) else {
        ctx.reply.int(if want { -1 } else { 0 });
        return Ok(());
    };
    let len = v.len() as i64;
    let (first, last, end_given) = match args.len() {
        3 => (0, len * 8 - 1, false),
        4..=6 => {
            let start = int_arg(args.get(3))?;
            let in_bits = match args.len() {
                6 if eq(args.get(5), "bit") => true,
                6 if eq(args.get(5), "byte") => false,
                6 => return Err(CmdError::Syntax),
                _ => false,
            };
            let (end, end_given) = if args.len() >= 5 {
                (int_arg(args.get(4))?, true)
            } else {
                (len - 1, false)
            };
            let (s, e) = clamp(start, end, if in_bits { len * 8 } else { len });
            if s > e {
                ctx.reply.int(-1);
                return Ok(());
            }
            // Both are inside the string now, so the conversion to bits cannot overflow.
            if in_bits {
                (s, e, end_given)
            } else {
                (s * 8, e * 8 + 7, end_given)
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    if first > last {
        ctx.reply.int(-1);
        return Ok(());
    }
    let found = (first as u64..=last as u64).find(|&i| bit_at(&v, i) == want);
    let pos = match found {
        Some(i) => i as i64,
        // Looking for a 0 without an explicit end: the string continues with zeros.
        None if !want && !end_given => last + 1,
        None => -1,
    };
    ctx.reply.int(pos);
    Ok(())
}

#[derive(Clone, Copy)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let name = args.get(1);
    let op = if eq(name, "and") {
        BitOp::And
    } else if eq(name, "or") {
        BitOp::Or
    } else if eq(name, "xor") {
        BitOp::Xor
    } else if eq(name, "not") {
        BitOp::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if matches!(op, BitOp::Not) && args.len() != 4 {
        return Err(CmdError::msg(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(args.len() - 3);
    for key in args.iter().skip(3) {
        sources.push(
            ctx.get_str(key)?
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default(),
        );
    }
    let max = sources.iter().map(Vec::len).max().unwrap_or(0);
    let dest = args.get(2);
    if max == 0 {
        if ctx.delete(dest) {
            ctx.dirty(1);
        }
        ctx.reply.int(0);
        return Ok(());
    }
    let byte = |s: &Vec<u8>, i: usize| s.get(i).copied().unwrap_or(0);
    let out: Vec<u8> = (0..max)
        .map(|i| {
            let mut acc = byte(&sources[0], i);
            if let BitOp::Not = op {
                return !acc;
            }
            for s in &sources[1..] {
                let b = byte(s, i);
                acc = match op {
                    BitOp::And => acc & b,
                    BitOp::Or => acc | b,
                    BitOp::Xor | BitOp::Not => acc ^ b,
                };
            }
            acc
        })
        .collect();
    ctx.set(dest, Value::Str(SmallBytes::raw(out)), false);
    ctx.dirty(1);
    ctx.reply.int(max as i64);
    Ok(())
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    signed: bool,
    bits: u32,
}

fn field_type(a: &[u8]) -> Result<Field, CmdError> {
    let err = || {
        CmdError::msg(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let (signed, digits) = match a.first() {
        Some(b'i' | b'I') => (true, &a[1..]),
        Some(b'u' | b'U') => (false, &a[1..]),
        _ => return Err(err()),
    };
    let bits = crate::protocol::parse_i64(digits).ok_or_else(err)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(err());
    }
    Ok(Field {
        signed,
        bits: bits as u32,
    })
}

/// A BITFIELD offset: a bit number, or `#n` meaning `n * width`; its byte must be below
/// `proto-max-bulk-len`.
fn field_offset(a: &[u8], f: Field, max_bytes: u64) -> Result<u64, CmdError> {
    let err = || CmdError::msg("ERR bit offset is not an integer or out of range");
    let (mul, digits) = match a.first() {
        Some(b'#') => (u64::from(f.bits), &a[1..]),
        _ => (1, a),
    };
    let v = crate::protocol::parse_i64(digits).ok_or_else(err)?;
    let off = u64::try_from(v)
        .ok()
        .and_then(|v| v.checked_mul(mul))
        .ok_or_else(err)?;
    if off >> 3 >= max_bytes {
        return Err(err());
    }
    Ok(off)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// Reads `f.bits` bits at `off` as an unsigned number (missing bytes are zeros).
fn read_bits(v: &[u8], off: u64, f: Field) -> u64 {
    (0..u64::from(f.bits)).fold(0u64, |acc, i| {
        let pos = off + i;
        let set = v
            .get((pos >> 3) as usize)
            .is_some_and(|b| b & (0x80 >> (pos & 7)) != 0);
        (acc << 1) | u64::from(set)
    })
}

fn write_bits(v: &mut Vec<u8>, off: u64, f: Field, value: u64) {
    let last = ((off + u64::from(f.bits) - 1) >> 3) as usize;
    if v.len() <= last {
        v.resize(last + 1, 0);
    }
    for i in 0..u64::from(f.bits) {
        let pos = off + i;
        let bit = (value >> (u64::from(f.bits) - 1 - i)) & 1;
        let mask = 0x80u8 >> (pos & 7);
        if bit == 1 {
            v[(pos >> 3) as usize] |= mask;
        } else {
            v[(pos >> 3) as usize] &= !mask;
        }
    }
}

/// The stored bits as the field's value (sign-extended for signed fields).
fn to_value(raw: u64, f: Field) -> i64 {
    if f.signed && f.bits < 64 && raw >> (f.bits - 1) & 1 == 1 {
        (raw | (u64::MAX << f.bits)) as i64
    } else {
        raw as i64
    }
}

/// The field's bits of `v` (two's complement truncation).
fn to_raw(v: i64, f: Field) -> u64 {
    if f.bits == 64 {
        v as u64
    } else {
        (v as u64) & ((1u64 << f.bits) - 1)
    }
}

/// `cur + incr` (or `incr` alone for SET, with `cur` 0) under the overflow policy, as
/// Redis's `checkSignedBitfieldOverflow` / `checkUnsignedBitfieldOverflow`. `None` when
/// FAIL refuses it.
fn apply(cur: i64, incr: i64, f: Field, policy: Overflow) -> Option<i64> {
    let (min, max): (i128, i128) = if f.signed {
        (-(1i128 << (f.bits - 1)), (1i128 << (f.bits - 1)) - 1)
    } else {
        (0, (1i128 << f.bits) - 1)
    };
    let exact = if f.signed {
        i128::from(cur) + i128::from(incr)
    } else {
        i128::from(cur as u64) + i128::from(incr)
    };
    if (min..=max).contains(&exact) {
        return Some(exact as i64);
    }
    match policy {
        Overflow::Fail => None,
        Overflow::Sat => Some(if exact > max { max as i64 } else { min as i64 }),
        Overflow::Wrap => Some(to_value(to_raw(exact as i64, f), f)),
    }
}

/// One BITFIELD operation with the overflow policy in force when it was written.
struct Planned {
    op: FieldOp,
    field: Field,
    offset: u64,
    overflow: Overflow,
}

fn parse_bitfield(
    args: Args<'_>,
    readonly: bool,
    max_bytes: u64,
) -> Result<Vec<Planned>, CmdError> {
    let mut plan = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        let left = args.len() - i - 1;
        if eq(a, "get") && left >= 2 {
            let field = field_type(args.get(i + 1))?;
            let offset = field_offset(args.get(i + 2), field, max_bytes)?;
            plan.push(Planned {
                op: FieldOp::Get,
                field,
                offset,
                overflow,
            });
            i += 3;
        } else if (eq(a, "set") || eq(a, "incrby")) && left >= 3 {
            if readonly {
                return Err(CmdError::msg(
                    "ERR BITFIELD_RO only supports the GET subcommand",
                ));
            }
            let field = field_type(args.get(i + 1))?;
            let offset = field_offset(args.get(i + 2), field, max_bytes)?;
            let n = int_arg(args.get(i + 3))?;
            let op = if eq(a, "set") {
                FieldOp::Set(n)
            } else {
                FieldOp::IncrBy(n)
            };
            plan.push(Planned {
                op,
                field,
                offset,
                overflow,
            });
            i += 4;
        } else if eq(a, "overflow") && left >= 1 {
            let p = args.get(i + 1);
            overflow = if eq(p, "wrap") {
                Overflow::Wrap
            } else if eq(p, "sat") {
                Overflow::Sat
            } else if eq(p, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::msg("ERR Invalid OVERFLOW type specified"));
            };
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(plan)
}

fn bitfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: Args<'_>, readonly: bool) -> CmdResult {
    let plan = parse_bitfield(args, readonly, ctx.srv.config.proto_max_bulk_len)?;
    let key = args.get(1);
    let writes = plan.iter().any(|p| !matches!(p.op, FieldOp::Get));
    let current = ctx.get_str(key)?.map(|s| s.as_bytes().to_vec());
    let exists = current.is_some();
    let mut v = current.unwrap_or_default();
    let mut changed = false;
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(plan.len());
    for p in &plan {
        let old = to_value(read_bits(&v, p.offset, p.field), p.field);
        match p.op {
            FieldOp::Get => replies.push(Some(old)),
            // SET checks the new value itself against the type, as an increment of 0.
            FieldOp::Set(n) => match apply(n, 0, p.field, p.overflow) {
                // SET replies the old value; under FAIL an out-of-range value is refused.
                Some(new) => {
                    write_bits(&mut v, p.offset, p.field, to_raw(new, p.field));
                    changed = true;
                    replies.push(Some(old));
                }
                None => replies.push(None),
            },
            FieldOp::IncrBy(n) => match apply(old, n, p.field, p.overflow) {
                Some(new) => {
                    write_bits(&mut v, p.offset, p.field, to_raw(new, p.field));
                    changed = true;
                    replies.push(Some(new));
                }
                None => replies.push(None),
            },
        }
    }
    if writes {
        // Redis creates the key, or grows it with zeros, to cover every write requested,
        // even one that OVERFLOW FAIL then refuses.
        let needed = plan
            .iter()
            .filter(|p| !matches!(p.op, FieldOp::Get))
            .map(|p| ((p.offset + u64::from(p.field.bits) - 1) >> 3) as usize + 1)
            .max()
            .unwrap_or(0);
        let grown = v.len() < needed;
        if grown {
            v.resize(needed, 0);
        }
        if changed || grown || !exists {
            match ctx.entry_mut(key) {
                Some(e) => e.value = Value::Str(SmallBytes::raw(v)),
                None => {
                    ctx.set(key, Value::Str(SmallBytes::raw(v)), false);
                }
            }
            ctx.dirty(1);
        }
    }
    ctx.reply.array(replies.len());
    for r in replies {
        match r {
            Some(n) => ctx.reply.int(n),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_policies() {
        let u8t = Field {
            signed: false,
            bits: 8,
        };
        let i8t = Field {
            signed: true,
            bits: 8,
        };
        assert_eq!(apply(250, 10, u8t, Overflow::Wrap), Some(4));
        assert_eq!(apply(250, 10, u8t, Overflow::Sat), Some(255));
        assert_eq!(apply(250, 10, u8t, Overflow::Fail), None);
        assert_eq!(apply(120, 10, i8t, Overflow::Wrap), Some(-126));
        assert_eq!(apply(-120, -10, i8t, Overflow::Sat), Some(-128));
        let i64t = Field {
            signed: true,
            bits: 64,
        };
        assert_eq!(apply(i64::MAX, 1, i64t, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(apply(i64::MAX, 1, i64t, Overflow::Sat), Some(i64::MAX));
    }

    #[test]
    fn bits_round_trip() {
        let f = Field {
            signed: true,
            bits: 5,
        };
        let mut v = Vec::new();
        write_bits(&mut v, 3, f, to_raw(-3, f));
        assert_eq!(v, vec![0b0001_1101]);
        assert_eq!(to_value(read_bits(&v, 3, f), f), -3);
    }
}
