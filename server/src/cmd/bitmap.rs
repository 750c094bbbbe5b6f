//! Bitmap commands over string values: BITPOS, BITOP, BITFIELD, BITFIELD_RO (SETBIT,
//! GETBIT and BITCOUNT live with the other string commands).
//!
//! Bits are numbered as Redis numbers them: bit 0 is the most significant bit of byte 0.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::{SmallBytes, Value};
use crate::notify::class;
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
    // Only the destination changes; the sources are read.
    ctx.touched_only(dest);
    if max == 0 {
        if ctx.delete(dest) {
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "del", dest);
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
    ctx.notify(class::STRING, "set", dest);
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

/// Redis's `checkSignedBitfieldOverflow`, arithmetic quirks included (its bounds are
/// computed with wrapping, so e.g. SET i8 with -9223372036854775808 saturates to the
/// maximum): whether `value + incr` overflows, and the value to store instead under WRAP
/// or SAT.
fn signed_overflow(value: i64, incr: i64, bits: u32, policy: Overflow) -> Option<i64> {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    let limit = |bound: i64| match policy {
        Overflow::Wrap => wrap(),
        Overflow::Sat | Overflow::Fail => bound,
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        Some(limit(max))
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        Some(limit(min))
    } else {
        None
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`, likewise.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, policy: Overflow) -> Option<u64> {
    let max: u64 = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    let limit = |bound: u64| match policy {
        Overflow::Wrap => wrap(),
        Overflow::Sat | Overflow::Fail => bound,
    };
    if value > max || (incr > 0 && incr > max_incr) {
        Some(limit(max))
    } else if incr < 0 && incr < min_incr {
        Some(limit(0))
    } else {
        None
    }
}

/// Runs a SET (`incr` false) or INCRBY of `n` on the field's current bits: the reply (the
/// old value for SET, the new one for INCRBY) and the bits to store, or `None` when
/// OVERFLOW FAIL refuses it.
fn write_op(incr: bool, n: i64, raw: u64, f: Field, policy: Overflow) -> Option<(i64, u64)> {
    let (overflowed, reply, new) = if f.signed {
        let old = to_value(raw, f);
        if incr {
            let o = signed_overflow(old, n, f.bits, policy);
            let new = o.unwrap_or(old.wrapping_add(n));
            (o.is_some(), new, new)
        } else {
            let o = signed_overflow(n, 0, f.bits, policy);
            (o.is_some(), old, o.unwrap_or(n))
        }
    } else if incr {
        let o = unsigned_overflow(raw, n, f.bits, policy);
        let new = o.unwrap_or(raw.wrapping_add(n as u64)) as i64;
        (o.is_some(), new, new)
    } else {
        let o = unsigned_overflow(n as u64, 0, f.bits, policy);
        (o.is_some(), raw as i64, o.unwrap_or(n as u64) as i64)
    };
    if overflowed && policy == Overflow::Fail {
        None
    } else {
        Some((reply, to_raw(new, f)))
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
    // Redis parses every operation before it refuses writes in BITFIELD_RO.
    if readonly && plan.iter().any(|p| !matches!(p.op, FieldOp::Get)) {
        return Err(CmdError::msg(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
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
    // A write lookup (no hit/miss, no keymiss) when any operation writes, as Redis.
    let current = if writes {
        ctx.get_str_for_write(key)?
    } else {
        ctx.get_str(key)?
    };
    let current = current.map(|s| s.as_bytes().to_vec());
    let exists = current.is_some();
    let mut v = current.unwrap_or_default();
    // Redis creates the key, or grows it with zeros, to cover every write requested (even
    // one that OVERFLOW FAIL then refuses) before running the operations; a created or
    // grown value makes every write a change.
    let needed = plan
        .iter()
        .filter(|p| !matches!(p.op, FieldOp::Get))
        .map(|p| ((p.offset + u64::from(p.field.bits) - 1) >> 3) as usize + 1)
        .max()
        .unwrap_or(0);
    let grown = writes && (!exists || v.len() < needed);
    if v.len() < needed {
        v.resize(needed, 0);
    }
    let mut changes = 0;
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(plan.len());
    for p in &plan {
        let raw = read_bits(&v, p.offset, p.field);
        let (incr, n) = match p.op {
            FieldOp::Get => {
                replies.push(Some(to_value(raw, p.field)));
                continue;
            }
            FieldOp::Set(n) => (false, n),
            FieldOp::IncrBy(n) => (true, n),
        };
        match write_op(incr, n, raw, p.field, p.overflow) {
            Some((reply, bits)) => {
                write_bits(&mut v, p.offset, p.field, bits);
                if grown || bits != raw {
                    changes += 1;
                }
                replies.push(Some(reply));
            }
            None => replies.push(None),
        }
    }
    if grown || changes > 0 {
        super::strings::put_raw(ctx, key, v);
    }
    if changes > 0 {
        ctx.dirty(changes);
        ctx.notify(class::STRING, "setbit", key);
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
    fn overflow_policies_follow_redis() {
        let u8t = Field {
            signed: false,
            bits: 8,
        };
        let i8t = Field {
            signed: true,
            bits: 8,
        };
        let run = |incr, n, raw, f, p| write_op(incr, n, raw, f, p);
        assert_eq!(run(true, 10, 250, u8t, Overflow::Wrap), Some((4, 4)));
        assert_eq!(run(true, 10, 250, u8t, Overflow::Sat), Some((255, 255)));
        assert_eq!(run(true, 10, 250, u8t, Overflow::Fail), None);
        assert_eq!(run(false, -1, 7, u8t, Overflow::Sat), Some((7, 255)));
        assert_eq!(run(true, 10, 120, i8t, Overflow::Wrap), Some((-126, 0x82)));
        assert_eq!(run(true, -10, 0x88, i8t, Overflow::Sat), Some((-128, 0x80)));
        // Redis's wrapping bound arithmetic: the most negative value saturates upwards.
        assert_eq!(run(false, i64::MIN, 0, i8t, Overflow::Sat), Some((0, 0x7f)));
        let i64t = Field {
            signed: true,
            bits: 64,
        };
        let max = i64::MAX as u64;
        assert_eq!(
            run(true, 1, max, i64t, Overflow::Wrap),
            Some((i64::MIN, i64::MIN as u64))
        );
        assert_eq!(
            run(true, 1, max, i64t, Overflow::Sat),
            Some((i64::MAX, max))
        );
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
