//! List commands: pushes and pops at both ends, indexed access, LRANGE/LTRIM/LREM/LINSERT/
//! LPOS, moves between lists, LMPOP, and the blocking forms BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH and BLMPOP.
//!
//! Blocking commands never wait here: when nothing can be served they set [`Ctx::block`] and
//! the connection parks the client (`crate::blocking`). When a key they wait for is written
//! they run again with [`Ctx::woken_by`] naming it and serve from that key only, or block
//! again if it holds no list, as Redis 7.0 serves blocked clients from the key that became
//! ready. Replication follows Redis 7.0: a served BLPOP/BRPOP is propagated as LPOP/RPOP,
//! BLMOVE/BRPOPLPUSH as LMOVE/RPOPLPUSH, LMPOP/BLMPOP as LPOP/RPOP with a count.

use super::args::non_negative_arg;
use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::{End, List, SmallBytes, Value};
use crate::notify::class;
use crate::protocol::Args;
use crate::state::blocking::{Block, TimeoutReply};

pub static COMMANDS: &[Spec] = &[
    spec(
        "lpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        lpush,
    ),
    spec(
        "rpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        rpush,
    ),
    spec(
        "lpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        lpushx,
    ),
    spec(
        "rpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        rpushx,
    ),
    spec("lpop", -2, WRITE | FAST, (1, 1, 1), "list", lpop),
    spec("rpop", -2, WRITE | FAST, (1, 1, 1), "list", rpop),
    spec("llen", 2, READONLY | FAST, (1, 1, 1), "list", llen),
    spec("lrange", 4, READONLY, (1, 1, 1), "list", lrange),
    spec("lindex", 3, READONLY, (1, 1, 1), "list", lindex),
    spec("lset", 4, WRITE | DENYOOM, (1, 1, 1), "list", lset),
    spec("linsert", 5, WRITE | DENYOOM, (1, 1, 1), "list", linsert),
    spec("lrem", 4, WRITE, (1, 1, 1), "list", lrem),
    spec("ltrim", 4, WRITE, (1, 1, 1), "list", ltrim),
    spec("lpos", -3, READONLY, (1, 1, 1), "list", lpos),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), "list", lmove),
    spec(
        "rpoplpush",
        3,
        WRITE | DENYOOM,
        (1, 2, 1),
        "list",
        rpoplpush,
    ),
    // LMPOP's keys follow a count: no fixed positions (Redis reports 0 0 0, movablekeys);
    // the handler touches the key it pops from itself.
    spec("lmpop", -4, WRITE | MOVABLEKEYS, (0, 0, 0), "list", lmpop),
    spec(
        "blpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        (1, -2, 1),
        "list",
        blpop,
    ),
    spec(
        "brpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        (1, -2, 1),
        "list",
        brpop,
    ),
    spec(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        "list",
        blmove,
    ),
    spec(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        "list",
        brpoplpush,
    ),
    spec(
        "blmpop",
        -5,
        WRITE | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        "list",
        blmpop,
    ),
];

/// The list at `key` for a write command (no hit/miss accounting). WRONGTYPE for another type.
fn list_mut<'c>(ctx: &'c mut Ctx<'_>, key: &[u8]) -> Result<Option<&'c mut List>, CmdError> {
    match ctx.entry_mut(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Whether `key` is missing or holds a list (write lookup).
fn list_or_missing(ctx: &mut Ctx<'_>, key: &[u8]) -> bool {
    match ctx.find(key) {
        None => true,
        Some(i) => matches!(ctx.db().entry(i).value, Value::List(_)),
    }
}

/// Whether `key` holds a list (write lookup).
fn holds_list(ctx: &mut Ctx<'_>, key: &[u8]) -> bool {
    ctx.find(key)
        .is_some_and(|i| matches!(ctx.db().entry(i).value, Value::List(_)))
}

/// Deletes `key` when its list became empty: Redis never keeps an empty aggregate.
fn delete_if_empty(ctx: &mut Ctx<'_>, key: &[u8], emptied: bool) {
    if emptied {
        ctx.delete(key);
        ctx.notify(class::GENERIC, "del", key);
    }
}

/// After elements were popped from `end` of the list at `key`: the pop's event, then the
/// key's deletion if that emptied it (Redis's `listElementsRemoved`).
fn popped_from(ctx: &mut Ctx<'_>, key: &[u8], end: End, emptied: bool) {
    ctx.notify(class::LIST, pop_event(end), key);
    delete_if_empty(ctx, key, emptied);
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// `LEFT` or `RIGHT`, case-insensitively.
fn end_arg(a: &[u8]) -> Result<End, CmdError> {
    if eq(a, "left") {
        Ok(End::Left)
    } else if eq(a, "right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

/// A count that must be >= 1, with one error text for every failure (LMPOP's numkeys and
/// COUNT).
fn positive_arg(a: &[u8], msg: &str) -> Result<i64, CmdError> {
    match crate::protocol::parse_i64(a) {
        Some(v) if v >= 1 => Ok(v),
        _ => Err(CmdError::msg(msg)),
    }
}

/// A blocking timeout in seconds, parsed as Redis 7.0's `getTimeoutFromObjectOrReply` does:
/// a C `long double` (so hex floats and huge exponents parse), times 1000 truncated to
/// integer milliseconds. Returns the milliseconds to wait, 0 meaning forever: a timeout that
/// truncates to 0 ms, or whose deadline overflows Redis's clock, blocks forever there too.
///
/// # Errors
/// `ERR timeout is not a float or out of range`, or `ERR timeout is negative` (which is also
/// what Redis says for `inf` and values whose milliseconds overflow a 64-bit integer: C's
/// out-of-range conversion yields `i64::MIN` on x86-64).
pub(super) fn timeout_arg(a: &[u8], now_ms: u64) -> Result<u64, CmdError> {
    let ms = timeout_millis(a)
        .ok_or_else(|| CmdError::msg("ERR timeout is not a float or out of range"))?
        .unwrap_or(i64::MIN);
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    if (ms as u64)
        .checked_add(now_ms)
        .is_none_or(|d| d > i64::MAX as u64)
    {
        return Ok(0);
    }
    Ok(ms as u64)
}

/// The milliseconds of a timeout in seconds, truncated toward zero: `None` when the argument
/// is not what glibc's `strtold` accepts over its whole length under Redis's `string2ld`
/// rules (no leading space, no NaN, no overflow to infinity, no underflow to zero: the range
/// is `long double`'s, about 1e-4951 to 1e4932); `Some(None)` when the milliseconds do not
/// fit an i64.
fn timeout_millis(a: &[u8]) -> Option<Option<i64>> {
    // strtold stops at a NUL byte, and Redis checks only that it stopped at the end of the C
    // string.
    let a = a.split(|&c| c == 0).next().unwrap_or_default();
    if a.is_empty() || a.len() >= 5 * 1024 || a[0].is_ascii_whitespace() || a[0] == 0x0b {
        return None;
    }
    let (neg, body) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    let ms = if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        None
    } else if body.len() > 2 && (body.starts_with(b"0x") || body.starts_with(b"0X")) {
        let ms = parse_hex_float(&body[2..])? * 1000.0;
        (ms < 9.223_372_036_854_776e18).then(|| ms.trunc() as i64)
    } else {
        decimal_millis(body)?
    };
    Some(ms.map(|v| if neg { -v } else { v }))
}

/// Unsigned decimal digits with an optional fraction and exponent, converted exactly (a
/// `long double` holds every timeout a client would send exactly enough for the truncation to
/// agree).
fn decimal_millis(s: &[u8]) -> Option<Option<i64>> {
    let text = std::str::from_utf8(s).ok()?;
    if !text
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        || !text.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || text.parse::<f64>().is_err()
    {
        return None;
    }
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(Some(0));
    }
    // value = digits * 10^(exp - frac digits); its leading digit's exponent must stay within
    // long double's range or strtold reports ERANGE and Redis rejects the value.
    let scale = exp.checked_sub(frac_part.len() as i64)?;
    let leading = scale.checked_add(digits.len() as i64 - 1)?;
    if !(-4951..=4932).contains(&leading) {
        return None;
    }
    // At the edges, compare the leading digits with LDBL_MAX (1.18973...e4932) and with half
    // the smallest subnormal (1.82259...e-4951), below which strtold rounds to zero.
    let head = format!("{:0<21}", &digits[..digits.len().min(21)]);
    if (leading == 4932 && head.as_str() > "118973149535723176502")
        || (leading == -4951 && head.as_str() < "182259976594123730126")
    {
        return None;
    }
    // Milliseconds: digits * 10^(scale + 3), truncated. Its integer part has `int_len` digits.
    let shift = scale + 3;
    let int_len = digits.len() as i64 + shift;
    if int_len <= 0 {
        return Some(Some(0));
    }
    if int_len > 19 {
        return Some(None);
    }
    let int_digits = if shift >= 0 {
        format!("{digits}{}", "0".repeat(shift as usize))
    } else {
        digits[..int_len as usize].to_string()
    };
    Some(int_digits.parse::<i64>().ok())
}

/// The part of a C hex float after `0x`: hex digits, an optional fraction, an optional
/// binary exponent `p±n`.
fn parse_hex_float(s: &[u8]) -> Option<f64> {
    let (digits, exp) = match s.iter().position(|&c| c == b'p' || c == b'P') {
        Some(i) => {
            let e = std::str::from_utf8(&s[i + 1..]).ok()?;
            if e.is_empty()
                || !e
                    .trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|c| c.is_ascii_digit())
            {
                return None;
            }
            (&s[..i], e.parse::<i32>().ok()?)
        }
        None => (s, 0),
    };
    let mut v = 0.0f64;
    let mut scale = 0i32;
    let mut seen_point = false;
    let mut any = false;
    for &c in digits {
        if c == b'.' && !seen_point {
            seen_point = true;
            continue;
        }
        let d = char::from(c).to_digit(16)?;
        any = true;
        v = v * 16.0 + f64::from(d);
        if seen_point {
            scale -= 4;
        }
    }
    any.then(|| v * 2f64.powi(exp.saturating_add(scale)))
}

fn lpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Right, true)
}

/// LPUSH/RPUSH, and LPUSHX/RPUSHX (`only_existing`).
fn push(ctx: &mut Ctx<'_>, args: Args<'_>, end: End, only_existing: bool) -> CmdResult {
    let key = args.get(1);
    let len = match list_mut(ctx, key)? {
        Some(l) => {
            args.iter().skip(2).for_each(|v| l.push(end, v));
            l.len()
        }
        None if only_existing => {
            ctx.reply.int(0);
            return Ok(());
        }
        None => {
            let mut l = List::new();
            args.iter().skip(2).for_each(|v| l.push(end, v));
            let len = l.len();
            ctx.set(key, Value::List(Box::new(l)), false);
            len
        }
    };
    ctx.dirty(args.len() as u64 - 2);
    ctx.notify(class::LIST, push_event(end), key);
    ctx.reply.int(len as i64);
    Ok(())
}

fn lpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop(ctx, args, End::Left, "lpop")
}

fn rpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop(ctx, args, End::Right, "rpop")
}

/// LPOP/RPOP: one element as a bulk string, or with a count an array (even of one).
fn pop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End, name: &str) -> CmdResult {
    if args.len() > 3 {
        return Err(super::arity_error(name));
    }
    let count = match args.len() {
        3 => Some(non_negative_arg(args.get(2), None)?),
        _ => None,
    };
    let key = args.get(1);
    let Some(l) = list_mut(ctx, key)? else {
        match count {
            Some(_) => ctx.reply.null_array(),
            None => ctx.reply.null(),
        }
        return Ok(());
    };
    if count == Some(0) {
        ctx.reply.array(0);
        return Ok(());
    }
    let popped = l.pop_many(end, count.unwrap_or(1) as usize);
    let emptied = l.is_empty();
    popped_from(ctx, key, end, emptied);
    ctx.dirty(popped.len() as u64);
    match count {
        None => popped.iter().for_each(|v| ctx.reply.bulk(v)),
        Some(_) => {
            ctx.reply.array(popped.len());
            popped.iter().for_each(|v| ctx.reply.bulk(v));
        }
    }
    Ok(())
}

fn llen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = match ctx.get(args.get(1)) {
        None => 0,
        Some(Value::List(l)) => l.len(),
        Some(_) => return Err(CmdError::WrongType),
    };
    ctx.reply.int(len as i64);
    Ok(())
}

fn lrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let end = int_arg(args.get(3))?;
    let Some(i) = ctx.read(args.get(1)) else {
        ctx.reply.array(0);
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    let Value::List(l) = &db.entry(i).value else {
        return Err(CmdError::WrongType);
    };
    match l.range(start, end) {
        Some((s, e)) => {
            reply.array(e - s + 1);
            l.slice(s, e).for_each(|v| reply.bulk(v));
        }
        None => reply.array(0),
    }
    Ok(())
}

fn lindex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(i) = ctx.read(args.get(1)) else {
        ctx.reply.null();
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    let Value::List(l) = &db.entry(i).value else {
        return Err(CmdError::WrongType);
    };
    match l.get(int_arg(args.get(2))?) {
        Some(v) => reply.bulk(v),
        None => reply.null(),
    }
    Ok(())
}

fn lset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(l) = list_mut(ctx, args.get(1))? else {
        return Err(CmdError::NoSuchKey);
    };
    if !l.set(int_arg(args.get(2))?, args.get(3)) {
        return Err(CmdError::OutOfRange);
    }
    ctx.dirty(1);
    ctx.notify(class::LIST, "lset", args.get(1));
    ctx.reply.ok();
    Ok(())
}

fn linsert(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let after = if eq(args.get(2), "after") {
        true
    } else if eq(args.get(2), "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let Some(l) = list_mut(ctx, args.get(1))? else {
        ctx.reply.int(0);
        return Ok(());
    };
    if !l.insert_at_pivot(args.get(3), args.get(4), after) {
        ctx.reply.int(-1);
        return Ok(());
    }
    let len = l.len();
    ctx.dirty(1);
    ctx.notify(class::LIST, "linsert", args.get(1));
    ctx.reply.int(len as i64);
    Ok(())
}

fn lrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = int_arg(args.get(2))?;
    let key = args.get(1);
    let Some(l) = list_mut(ctx, key)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let removed = l.remove_matching(args.get(3), limit, count < 0);
    let emptied = l.is_empty();
    if removed > 0 {
        ctx.notify(class::LIST, "lrem", key);
        delete_if_empty(ctx, key, emptied);
    }
    ctx.dirty(removed as u64);
    ctx.reply.int(removed as i64);
    Ok(())
}

fn ltrim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let end = int_arg(args.get(3))?;
    let key = args.get(1);
    let Some(l) = list_mut(ctx, key)? else {
        ctx.reply.ok();
        return Ok(());
    };
    let removed = l.retain_range(l.range(start, end));
    let emptied = l.is_empty();
    ctx.notify(class::LIST, "ltrim", key);
    delete_if_empty(ctx, key, emptied);
    ctx.dirty(removed as u64);
    // Redis signals the key as modified even when nothing was trimmed: WATCH sees it.
    let db = ctx.client.db;
    ctx.srv.touch_key(db, key);
    ctx.reply.ok();
    Ok(())
}

fn lpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        let has_value = j + 1 < args.len();
        if eq(opt, "rank") && has_value {
            rank = int_arg(args.get(j + 1))?;
            if rank == 0 {
                return Err(CmdError::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq(opt, "count") && has_value {
            count = Some(non_negative_arg(
                args.get(j + 1),
                Some("ERR COUNT can't be negative"),
            )?);
        } else if eq(opt, "maxlen") && has_value {
            maxlen = non_negative_arg(args.get(j + 1), Some("ERR MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 2;
    }
    let from_tail = rank < 0;
    // Redis negates in C: i64::MIN stays negative, and then matches every position.
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let Some(i) = ctx.read(args.get(1)) else {
        match count {
            Some(_) => ctx.reply.array(0),
            None => ctx.reply.null(),
        }
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    let Value::List(l) = &db.entry(i).value else {
        return Err(CmdError::WrongType);
    };
    let element = args.get(2);
    let len = l.len();
    let scan: Box<dyn Iterator<Item = &[u8]>> = if from_tail {
        Box::new(l.iter().rev())
    } else {
        Box::new(l.iter())
    };
    let mut found = Vec::new();
    let mut matches: i64 = 0;
    for (index, v) in scan.enumerate() {
        if maxlen != 0 && index as i64 >= maxlen {
            break;
        }
        if v != element {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        found.push(if from_tail { len - index - 1 } else { index });
        match count {
            None => break,
            Some(c) if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c => break,
            Some(_) => {}
        }
    }
    match count {
        Some(_) => {
            reply.array(found.len());
            found.iter().for_each(|&p| reply.int(p as i64));
        }
        None => match found.first() {
            Some(&p) => reply.int(p as i64),
            None => reply.null(),
        },
    }
    Ok(())
}

/// Moves one element from `src` to `dst` (LMOVE and friends), checking types in Redis's
/// order: a missing source gives `None` whatever the destination holds.
fn move_element(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<SmallBytes>, CmdError> {
    let dst_ok = list_or_missing(ctx, dst);
    let Some(l) = list_mut(ctx, src)? else {
        return Ok(None);
    };
    if !dst_ok {
        return Err(CmdError::WrongType);
    }
    let Some(v) = l.pop(from) else {
        return Ok(None);
    };
    if src == dst {
        l.push(to, &v);
        ctx.notify(class::LIST, push_event(to), dst);
        ctx.notify(class::LIST, pop_event(from), src);
    } else {
        let emptied = l.is_empty();
        match list_mut(ctx, dst)? {
            Some(d) => d.push(to, &v),
            None => {
                let mut d = List::new();
                d.push(to, &v);
                ctx.set(dst, Value::List(Box::new(d)), false);
            }
        }
        ctx.notify(class::LIST, push_event(to), dst);
        popped_from(ctx, src, from, emptied);
    }
    ctx.dirty(1);
    Ok(Some(v))
}

fn lmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let from = end_arg(args.get(3))?;
    let to = end_arg(args.get(4))?;
    reply_moved(ctx, args, from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    reply_moved(ctx, args, End::Right, End::Left)
}

fn reply_moved(ctx: &mut Ctx<'_>, args: Args<'_>, from: End, to: End) -> CmdResult {
    match move_element(ctx, args.get(1), args.get(2), from, to)? {
        Some(v) => ctx.reply.bulk(&v),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// Pops up to `count` elements of the list at `key`; anything else there (nothing, another
/// type) gives nothing. Used when woken: a key that holds no list does not serve the client,
/// which keeps waiting.
fn pop_if_list(ctx: &mut Ctx<'_>, key: &[u8], end: End, count: usize) -> Vec<SmallBytes> {
    let Ok(Some(l)) = list_mut(ctx, key) else {
        return Vec::new();
    };
    let popped = l.pop_many(end, count);
    let emptied = l.is_empty();
    popped_from(ctx, key, end, emptied);
    popped
}

/// Asks to block on the arguments at positions `keys`.
fn block_on(ctx: &mut Ctx<'_>, args: Args<'_>, keys: std::ops::Range<usize>, timeout_ms: u64) {
    ctx.block = Some(Block {
        keys: keys.map(|i| SmallBytes::new(args.get(i))).collect(),
        timeout_ms,
        on_timeout: TimeoutReply::NullArray,
    });
}

fn blpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

/// BLPOP/BRPOP: `[key, element]` from the first non-empty list, or block on all the keys.
fn blocking_pop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) -> CmdResult {
    let last = args.len() - 1;
    let timeout_ms = timeout_arg(args.get(last), ctx.now_ms)?;
    let served = match ctx.woken_by.clone() {
        Some(key) => pop_if_list(ctx, &key, end, 1)
            .pop()
            .map(|v| (key.as_bytes().to_vec(), v)),
        None => {
            let mut served = None;
            for k in 1..last {
                let key = args.get(k);
                if let Some(l) = list_mut(ctx, key)?
                    && let Some(v) = l.pop(end)
                {
                    let emptied = l.is_empty();
                    popped_from(ctx, key, end, emptied);
                    served = Some((key.to_vec(), v));
                    break;
                }
            }
            served
        }
    };
    let Some((key, v)) = served else {
        if ctx.may_block {
            block_on(ctx, args, 1..last, timeout_ms);
        } else {
            ctx.reply.null_array();
        }
        return Ok(());
    };
    ctx.dirty(1);
    let name: &[u8] = match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    };
    ctx.rewrite(vec![vec![name.to_vec(), key.clone()]]);
    ctx.reply.array(2);
    ctx.reply.bulk(&key);
    ctx.reply.bulk(&v);
    Ok(())
}

fn blmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let from = end_arg(args.get(3))?;
    let to = end_arg(args.get(4))?;
    let timeout_ms = timeout_arg(args.get(5), ctx.now_ms)?;
    // Propagated as LMOVE with the client's words, or Redis's own lowercase ones when a
    // blocked client is served.
    let (w_from, w_to) = match ctx.woken_by {
        Some(_) => (from.word(), to.word()),
        None => (args.get(3), args.get(4)),
    };
    let rewrite = vec![
        b"LMOVE".to_vec(),
        args.get(1).to_vec(),
        args.get(2).to_vec(),
        w_from.to_vec(),
        w_to.to_vec(),
    ];
    blocking_move(ctx, args, from, to, timeout_ms, rewrite)
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let timeout_ms = timeout_arg(args.get(3), ctx.now_ms)?;
    let rewrite = vec![
        b"RPOPLPUSH".to_vec(),
        args.get(1).to_vec(),
        args.get(2).to_vec(),
    ];
    blocking_move(ctx, args, End::Right, End::Left, timeout_ms, rewrite)
}

/// BLMOVE/BRPOPLPUSH once arguments are parsed: move at once when the source has elements,
/// otherwise block on the source.
fn blocking_move(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    from: End,
    to: End,
    timeout_ms: u64,
    rewrite: Vec<Vec<u8>>,
) -> CmdResult {
    let src = args.get(1);
    // Woken by a write that left something other than a list: keep waiting, as Redis does.
    let wait = ctx.woken_by.is_some() && !holds_list(ctx, src);
    let moved = if wait {
        None
    } else {
        move_element(ctx, src, args.get(2), from, to)?
    };
    let Some(v) = moved else {
        if ctx.may_block {
            block_on(ctx, args, 1..2, timeout_ms);
        } else {
            ctx.reply.null();
        }
        return Ok(());
    };
    ctx.rewrite(vec![rewrite]);
    ctx.reply.bulk(&v);
    Ok(())
}

/// LMPOP/BLMPOP arguments after the command name (and BLMPOP's timeout): the key positions,
/// the end, and the count (1 unless COUNT is given).
fn mpop_args(
    args: Args<'_>,
    numkeys_at: usize,
) -> Result<(std::ops::Range<usize>, End, usize), CmdError> {
    let numkeys = positive_arg(args.get(numkeys_at), "ERR numkeys should be greater than 0")?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&w| w < args.len())
        .ok_or(CmdError::Syntax)?;
    let end = end_arg(args.get(where_at))?;
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && eq(args.get(j), "count") && j + 1 < args.len() {
            count = Some(positive_arg(
                args.get(j + 1),
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((numkeys_at + 1..where_at, end, count))
}

/// Pops up to `count` elements from the first non-empty list of `keys` (or from the key that
/// woke the client); replies `[key, [elements]]` and propagates `LPOP/RPOP key n`. False when
/// nothing could be popped.
fn mpop_serve(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    keys: std::ops::Range<usize>,
    end: End,
    count: usize,
) -> Result<bool, CmdError> {
    let served = match ctx.woken_by.clone() {
        Some(key) => {
            let popped = pop_if_list(ctx, &key, end, count);
            (!popped.is_empty()).then(|| (key.as_bytes().to_vec(), popped))
        }
        None => {
            let mut served = None;
            for k in keys {
                let key = args.get(k);
                if let Some(l) = list_mut(ctx, key)?
                    && !l.is_empty()
                {
                    let popped = l.pop_many(end, count);
                    let emptied = l.is_empty();
                    popped_from(ctx, key, end, emptied);
                    served = Some((key.to_vec(), popped));
                    break;
                }
            }
            served
        }
    };
    let Some((key, popped)) = served else {
        return Ok(false);
    };
    ctx.dirty(popped.len() as u64);
    let name: &[u8] = match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    };
    let n = itoa::Buffer::new().format(popped.len()).as_bytes().to_vec();
    ctx.rewrite(vec![vec![name.to_vec(), key.clone(), n]]);
    // The keys are not at fixed positions, so the dispatcher cannot touch them.
    let db = ctx.client.db;
    ctx.srv.touch_key(db, &key);
    ctx.reply.array(2);
    ctx.reply.bulk(&key);
    ctx.reply.array(popped.len());
    popped.iter().for_each(|v| ctx.reply.bulk(v));
    Ok(true)
}

fn lmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, end, count) = mpop_args(args, 1)?;
    if !mpop_serve(ctx, args, keys, end, count)? {
        ctx.reply.null_array();
    }
    Ok(())
}

fn blmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, end, count) = mpop_args(args, 2)?;
    let timeout_ms = timeout_arg(args.get(1), ctx.now_ms)?;
    if !mpop_serve(ctx, args, keys.clone(), end, count)? {
        if ctx.may_block {
            block_on(ctx, args, keys, timeout_ms);
        } else {
            ctx.reply.null_array();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        let now = 1_700_000_000_000;
        assert_eq!(timeout_arg(b"0", now), Ok(0));
        assert_eq!(timeout_arg(b"1", now), Ok(1000));
        assert_eq!(timeout_arg(b"0.01", now), Ok(10));
        assert_eq!(timeout_arg(b"0x10", now), Ok(16_000));
        assert_eq!(timeout_arg(b"0x1p-2", now), Ok(250));
        assert_eq!(timeout_arg(b"+1.5e0", now), Ok(1500));
        // Truncated to 0 ms, or a deadline past Redis's clock: forever.
        assert_eq!(timeout_arg(b"0.0001", now), Ok(0));
        assert_eq!(timeout_arg(b"-0.0001", now), Ok(0));
        assert_eq!(timeout_arg(b"9223372036854775", now), Ok(0));
        assert_eq!(timeout_arg(b"92233720368547758.07e-1", now), Ok(0));
        assert_eq!(timeout_arg(b"2e-4951", now), Ok(0));
        let negative = Err(CmdError::msg("ERR timeout is negative"));
        for t in [
            &b"-1"[..],
            b"inf",
            b"-inf",
            b"1e400",
            b"9223372036854775807",
            b"9223372036854776",
            b"1.1e4932",
        ] {
            assert_eq!(timeout_arg(t, now), negative, "{t:?}");
        }
        let bad = Err(CmdError::msg("ERR timeout is not a float or out of range"));
        for t in [
            &b""[..],
            b"abc",
            b"1.2e4932",
            b"1e-4951",
            b" 1",
            b"1 ",
            b"nan",
            b"1e5000",
            b"1e-5000",
            b"0x",
            b"1e",
        ] {
            assert_eq!(timeout_arg(t, now), bad, "{t:?}");
        }
    }

    #[test]
    fn counts_and_ends() {
        assert_eq!(end_arg(b"LeFt"), Ok(End::Left));
        assert_eq!(end_arg(b"up"), Err(CmdError::Syntax));
        assert_eq!(positive_arg(b"0", "ERR y"), Err(CmdError::msg("ERR y")));
    }
}
