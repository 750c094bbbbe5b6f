//! Sorted set commands (the `sorted-set` group): ZADD and friends, range queries by rank,
//! score and lex, pops (blocking too), set algebra, random members and ZSCAN.
//!
//! Argument parsing, error texts and reply shapes follow Redis 7.0's `t_zset.c` exactly,
//! including the order in which errors are detected. The storage itself lives in
//! [`crate::keyspace::zset`]; this module never looks inside it.

use super::args::{parse_cursor, random_count, scan_options, scan_reply_head};
use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::zset::{PackLimits, ZSet};
use crate::keyspace::{Db, SmallBytes, Value};
use crate::notify::class;
use crate::protocol::{Args, Reply};
use crate::state::blocking::{Block, TimeoutReply};
use std::collections::HashMap;

pub static COMMANDS: &[Spec] = &[
    spec(
        "zadd",
        -4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "sorted-set",
        zadd,
    ),
    spec(
        "zincrby",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "sorted-set",
        zincrby,
    ),
    spec("zrem", -3, WRITE | FAST, (1, 1, 1), "sorted-set", zrem),
    spec(
        "zscore",
        3,
        READONLY | FAST,
        (1, 1, 1),
        "sorted-set",
        zscore,
    ),
    spec(
        "zmscore",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        "sorted-set",
        zmscore,
    ),
    spec("zcard", 2, READONLY | FAST, (1, 1, 1), "sorted-set", zcard),
    spec(
        "zcount",
        4,
        READONLY | FAST,
        (1, 1, 1),
        "sorted-set",
        zcount,
    ),
    spec(
        "zlexcount",
        4,
        READONLY | FAST,
        (1, 1, 1),
        "sorted-set",
        zlexcount,
    ),
    spec("zrank", 3, READONLY | FAST, (1, 1, 1), "sorted-set", zrank),
    spec(
        "zrevrank",
        3,
        READONLY | FAST,
        (1, 1, 1),
        "sorted-set",
        zrevrank,
    ),
    spec("zrange", -4, READONLY, (1, 1, 1), "sorted-set", zrange),
    spec(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        (1, 2, 1),
        "sorted-set",
        zrangestore,
    ),
    spec(
        "zrevrange",
        -4,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrevrange,
    ),
    spec(
        "zrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrangebyscore,
    ),
    spec(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrevrangebyscore,
    ),
    spec(
        "zrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrangebylex,
    ),
    spec(
        "zrevrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrevrangebylex,
    ),
    spec(
        "zremrangebyrank",
        4,
        WRITE,
        (1, 1, 1),
        "sorted-set",
        zremrangebyrank,
    ),
    spec(
        "zremrangebyscore",
        4,
        WRITE,
        (1, 1, 1),
        "sorted-set",
        zremrangebyscore,
    ),
    spec(
        "zremrangebylex",
        4,
        WRITE,
        (1, 1, 1),
        "sorted-set",
        zremrangebylex,
    ),
    spec(
        "zpopmin",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        "sorted-set",
        zpopmin,
    ),
    spec(
        "zpopmax",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        "sorted-set",
        zpopmax,
    ),
    spec(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        "sorted-set",
        bzpopmin,
    ),
    spec(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        "sorted-set",
        bzpopmax,
    ),
    spec(
        "zmpop",
        -4,
        WRITE | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        zmpop,
    ),
    spec(
        "bzmpop",
        -5,
        WRITE | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        bzmpop,
    ),
    spec(
        "zintercard",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        zintercard,
    ),
    spec(
        "zunionstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "sorted-set",
        zunionstore,
    ),
    spec(
        "zinterstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "sorted-set",
        zinterstore,
    ),
    spec(
        "zdiffstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "sorted-set",
        zdiffstore,
    ),
    spec(
        "zunion",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        zunion,
    ),
    spec(
        "zinter",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        zinter,
    ),
    spec(
        "zdiff",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        "sorted-set",
        zdiff,
    ),
    spec(
        "zrandmember",
        -2,
        READONLY,
        (1, 1, 1),
        "sorted-set",
        zrandmember,
    ),
    spec("zscan", -3, READONLY, (1, 1, 1), "sorted-set", zscan),
];

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

// ---------------------------------------------------------------------------------------
// Number parsing with C's strtod rules.

/// C's `strtod` on `s`: the value, the bytes consumed (0 when nothing converts), and
/// whether the result over- or underflowed (`errno == ERANGE` with ±HUGE_VAL or zero).
pub(super) fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = s.iter().take_while(|c| is_c_space(**c)).count();
    let start = i;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let rest = &s[i..];
    let starts =
        |w: &str| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes());
    let negative = s.get(start) == Some(&b'-');
    if starts("infinity") || starts("inf") {
        let n = if starts("infinity") { 8 } else { 3 };
        let v = if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return (v, i + n, false);
    }
    if starts("nan") {
        return (f64::NAN, i + 3, false);
    }
    if starts("0x")
        && let Some((v, used)) = hex_float(&rest[2..])
    {
        let v = if negative { -v } else { v };
        return (v, i + 2 + used, v.is_infinite());
    }
    let int_digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut j = i + int_digits;
    let mut frac_digits = 0;
    if j < s.len() && s[j] == b'.' {
        frac_digits = s[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if int_digits + frac_digits > 0 {
            j += 1 + frac_digits;
        }
    }
    if int_digits + frac_digits == 0 {
        return (0.0, 0, false);
    }
    let mantissa_end = j;
    if j < s.len() && (s[j] == b'e' || s[j] == b'E') {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        let exp_digits = s[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits > 0 {
            j = k + exp_digits;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let nonzero = s[start..mantissa_end]
        .iter()
        .any(|c| matches!(c, b'1'..=b'9'));
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (v, j, erange)
}

/// The hexadecimal form strtod accepts after `0x`: hex digits, an optional fraction and a
/// binary exponent (`p`). `None` when no digit follows.
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let digit = |c: u8| char::from(c).to_digit(16).map(f64::from);
    let mut v = 0.0;
    let mut i = 0;
    let mut digits = 0;
    while let Some(d) = s.get(i).copied().and_then(digit) {
        v = v * 16.0 + d;
        i += 1;
        digits += 1;
    }
    let mut scale = 0i32;
    if s.get(i) == Some(&b'.') {
        let mut j = i + 1;
        while let Some(d) = s.get(j).copied().and_then(digit) {
            v = v * 16.0 + d;
            scale -= 4;
            j += 1;
            digits += 1;
        }
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let neg = s.get(j) == Some(&b'-');
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let n = s[j.min(s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n > 0 {
            let e: i32 = std::str::from_utf8(&s[j..j + n])
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(i32::MAX);
            scale = scale.saturating_add(if neg { -e } else { e });
            i = j + n;
        }
    }
    Some((v * 2f64.powi(scale), i))
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Redis's `getDoubleFromObject`: the whole argument, no leading space, no overflow, no NaN.
pub(super) fn parse_double(a: &[u8]) -> Option<f64> {
    let (v, used, erange) = strtod(a);
    let ok = !a.is_empty() && !is_c_space(a[0]) && used == a.len() && !erange && !v.is_nan();
    ok.then_some(v)
}

/// A score or weight argument.
fn score_arg(a: &[u8]) -> Result<f64, CmdError> {
    parse_double(a).ok_or(CmdError::NotFloat)
}

// ---------------------------------------------------------------------------------------
// Ranges.

/// A score interval, as `zslParseRange` reads `min`/`max` (`(` for exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        let (min, minex) = score_item(min).ok_or_else(|| CmdError::msg(NOT_FLOAT_RANGE))?;
        let (max, maxex) = score_item(max).ok_or_else(|| CmdError::msg(NOT_FLOAT_RANGE))?;
        Ok(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }

    fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }

    fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a score range: plain strtod (leading spaces and overflow allowed, as in
/// Redis), the whole argument consumed, no NaN.
fn score_item(a: &[u8]) -> Option<(f64, bool)> {
    let (body, ex) = match a.first() {
        Some(b'(') => (&a[1..], true),
        _ => (a, false),
    };
    let (v, used, _) = strtod(body);
    (used == body.len() && !v.is_nan()).then_some((v, ex))
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LexBound {
    /// `-`
    Min,
    /// `+`
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexBound {
    fn parse(a: &[u8]) -> Option<Self> {
        match a.first()? {
            b'+' if a.len() == 1 => Some(LexBound::Max),
            b'-' if a.len() == 1 => Some(LexBound::Min),
            b'(' => Some(LexBound::Excl(a[1..].to_vec())),
            b'[' => Some(LexBound::Incl(a[1..].to_vec())),
            _ => None,
        }
    }
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        match (LexBound::parse(min), LexBound::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(CmdError::msg(NOT_LEX_RANGE)),
        }
    }

    fn gte_min(&self, v: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(m) => v >= m.as_slice(),
            LexBound::Excl(m) => v > m.as_slice(),
        }
    }

    fn lte_max(&self, v: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(m) => v <= m.as_slice(),
            LexBound::Excl(m) => v < m.as_slice(),
        }
    }

    /// Redis's `zslIsInLexRange` emptiness test on the bounds alone.
    fn is_empty(&self) -> bool {
        use LexBound::*;
        let (lo, lo_ex) = match &self.min {
            Max => return true,
            Min => return false,
            Incl(m) => (m, false),
            Excl(m) => (m, true),
        };
        let (hi, hi_ex) = match &self.max {
            Min => return true,
            Max => return false,
            Incl(m) => (m, false),
            Excl(m) => (m, true),
        };
        lo > hi || (lo == hi && (lo_ex || hi_ex))
    }
}

/// What a range command selects.
#[derive(Debug, Clone)]
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Resolves rank indices over `len` entries the way `zrangeGenericCommand` does.
fn rank_bounds(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// The entries `range` selects, in reply order. `offset` < 0 selects nothing and `limit`
/// < 0 means no limit, as in Redis's LIMIT loops.
fn select<'a>(
    z: &'a ZSet,
    range: &Range,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(&'a [u8], f64)> {
    if offset < 0 {
        return Vec::new();
    }
    let take = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    let skip = offset as usize;
    match range {
        Range::Rank(start, end) => match rank_bounds(*start, *end, z.len()) {
            None => Vec::new(),
            // A reverse range counts its indices from the highest entry.
            Some((s, e)) if rev => {
                let top = z.len() - 1;
                z.iter_ranks(top - e, top - s).rev().collect()
            }
            Some((s, e)) => z.iter_ranks(s, e).collect(),
        },
        Range::Score(r) => {
            if r.is_empty() {
                return Vec::new();
            }
            if rev {
                z.iter_to_score(r.max)
                    .rev()
                    .skip_while(|(_, s)| !r.lte_max(*s))
                    .take_while(|(_, s)| r.gte_min(*s))
                    .skip(skip)
                    .take(take)
                    .collect()
            } else {
                z.iter_from_score(r.min)
                    .skip_while(|(_, s)| !r.gte_min(*s))
                    .take_while(|(_, s)| r.lte_max(*s))
                    .skip(skip)
                    .take(take)
                    .collect()
            }
        }
        Range::Lex(r) => {
            if r.is_empty() {
                return Vec::new();
            }
            if rev {
                z.iter()
                    .rev()
                    .skip_while(|(m, _)| !r.lte_max(m))
                    .take_while(|(m, _)| r.gte_min(m))
                    .skip(skip)
                    .take(take)
                    .collect()
            } else {
                z.iter()
                    .skip_while(|(m, _)| !r.gte_min(m))
                    .take_while(|(m, _)| r.lte_max(m))
                    .skip(skip)
                    .take(take)
                    .collect()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Keyspace access and replies.

fn limits(ctx: &Ctx<'_>) -> PackLimits {
    PackLimits {
        max_entries: ctx.srv.config.zset_max_listpack_entries,
        max_value: ctx.srv.config.zset_max_listpack_value,
    }
}

/// Looks a key up for a read; `Some(slot)` only when it holds a sorted set.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) fn read_zset(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<u32>, CmdError> {
    match ctx.read(key) {
        None => Ok(None),
        Some(i) => match &ctx.db().entry(i).value {
            Value::Zset(_) => Ok(Some(i)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// The sorted set at a slot returned by [`read_zset`].
pub(super) fn zset_at(db: &Db, i: u32) -> &ZSet {
    match &db.entry(i).value {
        Value::Zset(z) => z,
        _ => unreachable!("slot checked by read_zset"),
    }
}

/// A key's sorted set for writing, `None` when the key does not exist.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
fn write_zset<'c>(ctx: &'c mut Ctx<'_>, key: &[u8]) -> Result<Option<&'c mut ZSet>, CmdError> {
    match ctx.entry_mut(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Zset(z) => Ok(Some(z)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Redis deletes a sorted set that became empty. True when it did.
fn drop_if_empty(ctx: &mut Ctx<'_>, key: &[u8]) -> bool {
    let empty = write_zset(ctx, key)
        .ok()
        .flatten()
        .is_some_and(|z| z.is_empty());
    if empty {
        ctx.delete(key);
    }
    empty
}

/// After members were removed from the set at `key` by a command: its event, then the key's
/// deletion if that emptied it.
fn removed_from(ctx: &mut Ctx<'_>, key: &[u8], event: &'static str) {
    ctx.notify(class::ZSET, event, key);
    if drop_if_empty(ctx, key) {
        ctx.notify(class::GENERIC, "del", key);
    }
}

/// Replies with entries: flat `member score ...` in RESP2, `[member, score]` pairs in RESP3
/// when `withscores`.
fn reply_entries<'e>(
    reply: &mut Reply<'_>,
    entries: impl ExactSizeIterator<Item = (&'e [u8], f64)>,
    withscores: bool,
) {
    let nested = withscores && reply.resp3();
    let n = entries.len();
    reply.array(if withscores && !nested { 2 * n } else { n });
    for (m, s) in entries {
        if nested {
            reply.array(2);
        }
        reply.bulk(m);
        if withscores {
            reply.double(s);
        }
    }
}

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY.

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AddFlags {
    pub(super) nx: bool,
    pub(super) xx: bool,
    pub(super) gt: bool,
    pub(super) lt: bool,
    pub(super) incr: bool,
    pub(super) ch: bool,
}

/// The outcome of adding one member.
enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// Present with the same score, or refused by NX/XX/GT/LT (`true` when refused).
    Unchanged(f64, bool),
}

/// Redis's `zsetAdd`: applies one score to a member under the ZADD flags.
///
/// # Errors
/// NaN when INCR produced one.
fn zset_add(
    z: &mut ZSet,
    member: &[u8],
    score: f64,
    f: AddFlags,
    limits: PackLimits,
) -> Result<AddOutcome, CmdError> {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Ok(AddOutcome::Unchanged(cur, true));
            }
            let new = if f.incr { score + cur } else { score };
            if new.is_nan() {
                return Err(CmdError::msg(NAN_SCORE));
            }
            if (f.lt && new >= cur) || (f.gt && new <= cur) {
                return Ok(AddOutcome::Unchanged(cur, true));
            }
            if new != cur {
                z.add(member, new, limits);
                Ok(AddOutcome::Updated(new))
            } else {
                Ok(AddOutcome::Unchanged(new, false))
            }
        }
        None if f.xx => Ok(AddOutcome::Unchanged(0.0, true)),
        None => {
            z.add(member, score, limits);
            Ok(AddOutcome::Added(score))
        }
    }
}

fn zadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut f = AddFlags::default();
    let mut idx = 2;
    while idx < args.len() {
        let a = args.get(idx);
        if eq(a, "nx") {
            f.nx = true;
        } else if eq(a, "xx") {
            f.xx = true;
        } else if eq(a, "ch") {
            f.ch = true;
        } else if eq(a, "incr") {
            f.incr = true;
        } else if eq(a, "gt") {
            f.gt = true;
        } else if eq(a, "lt") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = args.len() - idx;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let pairs = elements / 2;
    if f.nx && f.xx {
        return Err(CmdError::msg(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::msg(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && pairs > 1 {
        return Err(CmdError::msg(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let scored = (0..pairs)
        .map(|j| Ok((score_arg(args.get(idx + 2 * j))?, args.get(idx + 2 * j + 1))))
        .collect::<Result<Vec<_>, CmdError>>()?;
    add_members(ctx, args.get(1), &scored, f)
}

/// The body of ZADD, ZINCRBY and GEOADD once arguments are valid: each score with its
/// member, in order.
pub(super) fn add_members(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    scored: &[(f64, &[u8])],
    f: AddFlags,
) -> CmdResult {
    let limits = limits(ctx);
    let exists = write_zset(ctx, key)?.is_some();
    if !exists {
        if f.xx {
            if f.incr {
                ctx.reply.null();
            } else {
                ctx.reply.int(0);
            }
            return Ok(());
        }
        ctx.set(key, Value::Zset(Box::default()), false);
    }
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut failure = None;
    if let Some(z) = write_zset(ctx, key)? {
        for &(score, member) in scored {
            match zset_add(z, member, score, f, limits) {
                Ok(AddOutcome::Added(s)) => {
                    added += 1;
                    processed += 1;
                    last = s;
                }
                Ok(AddOutcome::Updated(s)) => {
                    updated += 1;
                    processed += 1;
                    last = s;
                }
                Ok(AddOutcome::Unchanged(s, refused)) => {
                    if !refused {
                        processed += 1;
                    }
                    last = s;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if added + updated > 0 {
        ctx.dirty((added + updated) as u64);
        ctx.notify(class::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    drop_if_empty(ctx, key);
    if let Some(e) = failure {
        return Err(e);
    }
    if f.incr {
        if processed > 0 {
            ctx.reply.double(last);
        } else {
            ctx.reply.null();
        }
    } else {
        ctx.reply.int(if f.ch { added + updated } else { added });
    }
    Ok(())
}

fn zincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let by = score_arg(args.get(2))?;
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_members(ctx, args.get(1), &[(by, args.get(3))], f)
}

// ---------------------------------------------------------------------------------------
// Simple reads and ZREM.

fn zrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut removed = 0;
    if let Some(z) = write_zset(ctx, key)? {
        for m in args.iter().skip(2) {
            if z.remove(m).is_some() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        ctx.dirty(removed);
        removed_from(ctx, key, "zrem");
    }
    ctx.reply.int(removed as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let score = match read_zset(ctx, args.get(1))? {
        Some(i) => zset_at(ctx.db(), i).score(args.get(2)),
        None => None,
    };
    match score {
        Some(s) => ctx.reply.double(s),
        None => ctx.reply.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_zset(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    reply.array(args.len() - 2);
    for m in args.iter().skip(2) {
        match slot.and_then(|i| zset_at(db, i).score(m)) {
            Some(s) => reply.double(s),
            None => reply.null(),
        }
    }
    Ok(())
}

fn zcard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = match read_zset(ctx, args.get(1))? {
        Some(i) => zset_at(ctx.db(), i).len(),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn zcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = ScoreRange::parse(args.get(2), args.get(3))?;
    let n = match read_zset(ctx, args.get(1))? {
        Some(i) => select(zset_at(ctx.db(), i), &Range::Score(r), false, 0, -1).len(),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = LexRange::parse(args.get(2), args.get(3))?;
    let n = match read_zset(ctx, args.get(1))? {
        Some(i) => select(zset_at(ctx.db(), i), &Range::Lex(r), false, 0, -1).len(),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn rank_generic(ctx: &mut Ctx<'_>, args: Args<'_>, rev: bool) -> CmdResult {
    let rank = match read_zset(ctx, args.get(1))? {
        Some(i) => {
            let z = zset_at(ctx.db(), i);
            z.rank(args.get(2))
                .map(|(r, _)| if rev { z.len() - 1 - r } else { r })
        }
        None => None,
    };
    match rank {
        Some(r) => ctx.reply.int(r as i64),
        None => ctx.reply.null(),
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rank_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------
// ZRANGE and its older spellings.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// A parsed range query.
struct RangeQuery {
    range: Range,
    rev: bool,
    offset: i64,
    limit: i64,
    withscores: bool,
}

/// Redis's `zrangeGenericCommand` argument handling: `first` is the index of the source key;
/// `kind`/`rev` are fixed by the older commands and `None` for ZRANGE/ZRANGESTORE, which take
/// BYSCORE/BYLEX/REV options.
fn parse_range_query(
    args: Args<'_>,
    first: usize,
    kind: Option<RangeKind>,
    rev: Option<bool>,
    store: bool,
) -> Result<RangeQuery, CmdError> {
    let (mut kind_opt, mut rev_opt) = (kind, rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = first + 3;
    while j < args.len() {
        let a = args.get(j);
        let left = args.len() - j - 1;
        if !store && eq(a, "withscores") {
            withscores = true;
        } else if eq(a, "limit") && left >= 2 {
            offset = int_arg(args.get(j + 1))?;
            limit = int_arg(args.get(j + 2))?;
            j += 2;
        } else if rev_opt.is_none() && eq(a, "rev") {
            rev_opt = Some(true);
        } else if kind_opt.is_none() && eq(a, "bylex") {
            kind_opt = Some(RangeKind::Lex);
        } else if kind_opt.is_none() && eq(a, "byscore") {
            kind_opt = Some(RangeKind::Score);
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = rev_opt.unwrap_or(false);
    let kind = kind_opt.unwrap_or(RangeKind::Rank);
    let limited = limit != -1 || offset != 0;
    if limited && kind == RangeKind::Rank {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == RangeKind::Lex {
        return Err(CmdError::msg(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (args.get(first + 1), args.get(first + 2));
    if rev && kind != RangeKind::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let range = match kind {
        RangeKind::Rank => Range::Rank(int_arg(lo)?, int_arg(hi)?),
        RangeKind::Score => Range::Score(ScoreRange::parse(lo, hi)?),
        RangeKind::Lex => Range::Lex(LexRange::parse(lo, hi)?),
    };
    Ok(RangeQuery {
        range,
        rev,
        offset,
        limit,
        withscores,
    })
}

fn range_generic(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    kind: Option<RangeKind>,
    rev: Option<bool>,
) -> CmdResult {
    let q = parse_range_query(args, 1, kind, rev, false)?;
    let Some(i) = read_zset(ctx, args.get(1))? else {
        ctx.reply.array(0);
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    let found = select(zset_at(db, i), &q.range, q.rev, q.offset, q.limit);
    reply_entries(reply, found.into_iter(), q.withscores);
    Ok(())
}

fn zrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, None, None)
}

fn zrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, Some(RangeKind::Rank), Some(true))
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, Some(RangeKind::Score), Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, Some(RangeKind::Score), Some(true))
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, Some(RangeKind::Lex), Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, Some(RangeKind::Lex), Some(true))
}

/// Stores `entries` at `dst` as a new sorted set (replacing whatever was there, TTL
/// included), or deletes `dst` when there are none; replies with the cardinality.
/// `event` is the command's keyspace event for a stored result.
pub(super) fn store_result(
    ctx: &mut Ctx<'_>,
    event: &'static str,
    dst: &[u8],
    entries: Vec<(SmallBytes, f64)>,
) {
    let n = entries.len();
    if n > 0 {
        let z = ZSet::from_entries(entries, limits(ctx));
        ctx.set(dst, Value::Zset(Box::new(z)), false);
        ctx.dirty(1);
        ctx.notify(class::ZSET, event, dst);
    } else if ctx.delete(dst) {
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "del", dst);
    }
    ctx.reply.int(n as i64);
}

fn zrangestore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let q = parse_range_query(args, 2, None, None, true)?;
    let entries = match read_zset(ctx, args.get(2))? {
        Some(i) => select(zset_at(ctx.db(), i), &q.range, q.rev, q.offset, q.limit)
            .into_iter()
            .map(|(m, s)| (SmallBytes::new(m), s))
            .collect(),
        None => Vec::new(),
    };
    store_result(ctx, "zrangestore", args.get(1), entries);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ZREMRANGEBY*.

fn remrange_generic(ctx: &mut Ctx<'_>, args: Args<'_>, kind: RangeKind) -> CmdResult {
    let (lo, hi) = (args.get(2), args.get(3));
    let range = match kind {
        RangeKind::Rank => Range::Rank(int_arg(lo)?, int_arg(hi)?),
        RangeKind::Score => Range::Score(ScoreRange::parse(lo, hi)?),
        RangeKind::Lex => Range::Lex(LexRange::parse(lo, hi)?),
    };
    let key = args.get(1);
    let mut removed = 0;
    if let Some(z) = write_zset(ctx, key)? {
        let doomed: Vec<SmallBytes> = select(z, &range, false, 0, -1)
            .into_iter()
            .map(|(m, _)| SmallBytes::new(m))
            .collect();
        for m in &doomed {
            z.remove(m);
        }
        removed = doomed.len();
    }
    if removed > 0 {
        ctx.dirty(removed as u64);
        let event = match kind {
            RangeKind::Rank => "zremrangebyrank",
            RangeKind::Score => "zremrangebyscore",
            RangeKind::Lex => "zremrangebylex",
        };
        removed_from(ctx, key, event);
    }
    ctx.reply.int(removed as i64);
    Ok(())
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    remrange_generic(ctx, args, RangeKind::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    remrange_generic(ctx, args, RangeKind::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    remrange_generic(ctx, args, RangeKind::Lex)
}

// ---------------------------------------------------------------------------------------
// Pops.

/// Pops up to `count` entries from the low (`max == false`) or high end of the set at `key`,
/// deleting the key when it empties. The caller checked that the key holds a sorted set.
fn pop_entries(ctx: &mut Ctx<'_>, key: &[u8], count: usize, max: bool) -> Vec<(SmallBytes, f64)> {
    let mut out = Vec::new();
    if let Ok(Some(z)) = write_zset(ctx, key) {
        let picked: Vec<(SmallBytes, f64)> = if max {
            z.iter()
                .rev()
                .take(count)
                .map(|(m, s)| (SmallBytes::new(m), s))
                .collect()
        } else {
            z.iter()
                .take(count)
                .map(|(m, s)| (SmallBytes::new(m), s))
                .collect()
        };
        for (m, _) in &picked {
            z.remove(m);
        }
        out = picked;
    }
    if !out.is_empty() {
        ctx.dirty(out.len() as u64);
        removed_from(ctx, key, if max { "zpopmax" } else { "zpopmin" });
    }
    out
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = if args.len() == 3 {
        let n = super::args::non_negative_arg(args.get(2), None)?;
        Some(n as usize)
    } else {
        None
    };
    let key = args.get(1);
    if write_zset(ctx, key)?.is_none() || count == Some(0) {
        ctx.reply.array(0);
        return Ok(());
    }
    let popped = pop_entries(ctx, key, count.unwrap_or(1), max);
    let nested = ctx.reply.resp3() && count.is_some();
    let reply = &mut ctx.reply;
    if nested {
        reply.array(popped.len());
    } else {
        reply.array(2 * popped.len());
    }
    for (m, s) in &popped {
        if nested {
            reply.array(2);
        }
        reply.bulk(m);
        reply.double(*s);
    }
    Ok(())
}

fn zpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// A blocking command's timeout in seconds, as `getTimeoutFromObjectOrReply` reads it:
/// milliseconds, rounded up; 0 means forever.
fn timeout_arg(a: &[u8], now_ms: u64) -> Result<u64, CmdError> {
    // Read as a long double in Redis: doubles' overflow and underflow are no errors there.
    let (v, used, erange) = strtod(a);
    if a.is_empty() || is_c_space(a[0]) || used != a.len() || v.is_nan() {
        return Err(CmdError::msg("ERR timeout is not a float or out of range"));
    }
    // A value too small for a double is still above zero as a long double.
    let v = if erange && v == 0.0 {
        f64::MIN_POSITIVE.copysign(v)
    } else {
        v
    };
    // Rounded up: any positive timeout, however small, is a timeout, not "forever".
    let ms = (v * 1000.0).ceil();
    // Redis converts to `long long` without a range check; on x86 an out-of-range value
    // becomes LLONG_MIN, hence "negative" for huge timeouts.
    if ms < 0.0 || ms >= i64::MAX as f64 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    let ms = ms as u64;
    if ms > i64::MAX as u64 - now_ms {
        return Err(CmdError::msg("ERR timeout is out of range"));
    }
    Ok(ms)
}

fn bzpop_generic(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    let timeout_ms = timeout_arg(args.get(args.len() - 1), ctx.now_ms)?;
    let keys = 1..args.len() - 1;
    for j in keys.clone() {
        let key = args.get(j);
        if write_zset(ctx, key)?.is_none_or(|z| z.is_empty()) {
            continue;
        }
        let popped = pop_entries(ctx, key, 1, max);
        let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.rewrite(vec![vec![name.to_vec(), key.to_vec()]]);
        let reply = &mut ctx.reply;
        reply.array(3);
        reply.bulk(key);
        for (m, s) in &popped {
            reply.bulk(m);
            reply.double(*s);
        }
        return Ok(());
    }
    ctx.block = Some(Block {
        keys: keys.map(|j| SmallBytes::new(args.get(j))).collect(),
        timeout_ms,
        on_timeout: TimeoutReply::NullArray,
    });
    Ok(())
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, true)
}

/// ZMPOP/BZMPOP arguments: the key range, MIN/MAX and COUNT (default 1).
struct MpopArgs {
    keys: std::ops::Range<usize>,
    max: bool,
    count: usize,
}

/// Redis's `zmpopGenericCommand` parsing; `nk` is the index of `numkeys`.
fn parse_mpop(args: Args<'_>, nk: usize) -> Result<MpopArgs, CmdError> {
    let numkeys = int_arg(args.get(nk))
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| CmdError::msg("ERR numkeys should be greater than 0"))?;
    let where_idx = (nk as u64).saturating_add(numkeys as u64).saturating_add(1);
    if where_idx >= args.len() as u64 {
        return Err(CmdError::Syntax);
    }
    let where_idx = where_idx as usize;
    let w = args.get(where_idx);
    let max = if eq(w, "min") {
        false
    } else if eq(w, "max") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && eq(args.get(j), "count") && j + 1 < args.len() {
            let n = int_arg(args.get(j + 1))
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| CmdError::msg("ERR count should be greater than 0"))?;
            count = Some(n as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(MpopArgs {
        keys: nk + 1..where_idx,
        max,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first key of `keys` holding a non-empty sorted set and replies
/// `[key, [[member, score], ...]]`; false when there was none (nothing written).
///
/// # Errors
/// WRONGTYPE when a key met before that one holds another type.
fn mpop_first(ctx: &mut Ctx<'_>, args: Args<'_>, m: &MpopArgs) -> Result<bool, CmdError> {
    for j in m.keys.clone() {
        let key = args.get(j);
        if write_zset(ctx, key)?.is_none_or(|z| z.is_empty()) {
            continue;
        }
        let popped = pop_entries(ctx, key, m.count, m.max);
        // ZMPOP names its keys by position, so the executor cannot tell which one changed.
        let db = ctx.client.db;
        ctx.srv.touch_key(db, key);
        let name: &[u8] = if m.max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.rewrite(vec![vec![
            name.to_vec(),
            key.to_vec(),
            m.count.to_string().into_bytes(),
        ]]);
        let reply = &mut ctx.reply;
        reply.array(2);
        reply.bulk(key);
        reply.array(popped.len());
        for (member, score) in &popped {
            reply.array(2);
            reply.bulk(member);
            reply.double(*score);
        }
        return Ok(true);
    }
    Ok(false)
}

fn zmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let m = parse_mpop(args, 1)?;
    if !mpop_first(ctx, args, &m)? {
        ctx.reply.null_array();
    }
    Ok(())
}

fn bzmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let m = parse_mpop(args, 2)?;
    let timeout_ms = timeout_arg(args.get(1), ctx.now_ms)?;
    if !mpop_first(ctx, args, &m)? {
        ctx.block = Some(Block {
            keys: m.keys.map(|j| SmallBytes::new(args.get(j))).collect(),
            timeout_ms,
            on_timeout: TimeoutReply::NullArray,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Set algebra.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Redis's `zunionInterAggregate`: a sum of opposite infinities counts as 0.
fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = target.min(v),
        Aggregate::Max => *target = target.max(v),
    }
}

/// `weight * score`, with Redis's rule that 0 * inf is 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let v = weight * score;
    if v.is_nan() { 0.0 } else { v }
}

/// Parses and computes ZUNION/ZINTER/ZDIFF(STORE): `nk` is the index of `numkeys`; `store`
/// says whether WITHSCORES is refused. Returns the result entries (sorted) and WITHSCORES.
fn setop_compute(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    nk: usize,
    op: SetOp,
    store: bool,
    name: &str,
) -> Result<(Vec<(SmallBytes, f64)>, bool), CmdError> {
    let setnum = int_arg(args.get(nk))?;
    if setnum < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (args.len() - nk - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let mut slots = Vec::with_capacity(setnum);
    for j in 0..setnum {
        slots.push(read_zset(ctx, args.get(nk + 1 + j))?);
    }
    let mut weights = vec![1.0; setnum];
    let mut how = Aggregate::Sum;
    let mut withscores = false;
    let mut j = nk + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = args.get(j);
        if op != SetOp::Diff && remaining > setnum && eq(a, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = parse_double(args.get(j + 1 + i))
                    .ok_or_else(|| CmdError::msg("ERR weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != SetOp::Diff && remaining >= 2 && eq(a, "aggregate") {
            let v = args.get(j + 1);
            how = if eq(v, "sum") {
                Aggregate::Sum
            } else if eq(v, "min") {
                Aggregate::Min
            } else if eq(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if !store && eq(a, "withscores") {
            withscores = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.db();
    let sets: Vec<Option<&ZSet>> = slots.iter().map(|s| s.map(|i| zset_at(db, i))).collect();
    let len_of = |s: &Option<&ZSet>| s.map_or(0, |z| z.len());
    let mut result: HashMap<Vec<u8>, f64> = HashMap::new();
    match op {
        SetOp::Union | SetOp::Inter => {
            // Redis walks the inputs by increasing cardinality: it decides the order in
            // which floating-point sums accumulate.
            let mut order: Vec<usize> = (0..setnum).collect();
            order.sort_by_key(|&i| len_of(&sets[i]));
            if op == SetOp::Union {
                for &i in &order {
                    let Some(z) = sets[i] else { continue };
                    for (m, s) in z.iter() {
                        let v = weighted(s, weights[i]);
                        match result.get_mut(m) {
                            Some(t) => aggregate(t, v, how),
                            None => {
                                result.insert(m.to_vec(), v);
                            }
                        }
                    }
                }
            } else if let Some(z0) = sets[order[0]] {
                'member: for (m, s) in z0.iter() {
                    let mut t = weighted(s, weights[order[0]]);
                    for &i in &order[1..] {
                        match sets[i].and_then(|z| z.score(m)) {
                            Some(v) => aggregate(&mut t, weighted(v, weights[i]), how),
                            None => continue 'member,
                        }
                    }
                    result.insert(m.to_vec(), t);
                }
            }
        }
        SetOp::Diff => {
            if let Some(z0) = sets[0] {
                for (m, s) in z0.iter() {
                    if !sets[1..]
                        .iter()
                        .any(|z| z.is_some_and(|z| z.score(m).is_some()))
                    {
                        result.insert(m.to_vec(), s);
                    }
                }
            }
        }
    }
    let mut entries: Vec<(SmallBytes, f64)> = result
        .into_iter()
        .map(|(m, s)| (SmallBytes::from_vec(m), s))
        .collect();
    entries.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
    });
    Ok((entries, withscores))
}

fn setop_store(ctx: &mut Ctx<'_>, args: Args<'_>, op: SetOp, name: &'static str) -> CmdResult {
    let (entries, _) = setop_compute(ctx, args, 2, op, true, name)?;
    store_result(ctx, name, args.get(1), entries);
    Ok(())
}

fn setop_reply(ctx: &mut Ctx<'_>, args: Args<'_>, op: SetOp, name: &str) -> CmdResult {
    let (entries, withscores) = setop_compute(ctx, args, 1, op, false, name)?;
    reply_entries(
        &mut ctx.reply,
        entries.iter().map(|(m, s)| (m.as_bytes(), *s)),
        withscores,
    );
    Ok(())
}

fn zunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_store(ctx, args, SetOp::Union, "zunionstore")
}

fn zinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_store(ctx, args, SetOp::Inter, "zinterstore")
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_store(ctx, args, SetOp::Diff, "zdiffstore")
}

fn zunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_reply(ctx, args, SetOp::Union, "zunion")
}

fn zinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_reply(ctx, args, SetOp::Inter, "zinter")
}

fn zdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setop_reply(ctx, args, SetOp::Diff, "zdiff")
}

fn zintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let setnum = int_arg(args.get(1))?;
    if setnum < 1 {
        return Err(CmdError::msg(
            "ERR at least 1 input key is needed for 'zintercard' command",
        ));
    }
    if setnum as u64 > (args.len() - 2) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let mut slots = Vec::with_capacity(setnum);
    for j in 0..setnum {
        slots.push(read_zset(ctx, args.get(2 + j))?);
    }
    let mut limit = 0usize;
    let mut j = 2 + setnum;
    while j < args.len() {
        if args.len() - j >= 2 && eq(args.get(j), "limit") {
            let n = int_arg(args.get(j + 1))
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| CmdError::msg("ERR LIMIT can't be negative"))?;
            limit = n as usize;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.db();
    let sets: Option<Vec<&ZSet>> = slots.iter().map(|s| s.map(|i| zset_at(db, i))).collect();
    let mut n = 0usize;
    if let Some(mut sets) = sets {
        sets.sort_by_key(|z| z.len());
        for (m, _) in sets[0].iter() {
            if sets[1..].iter().all(|z| z.score(m).is_some()) {
                n += 1;
                if n == limit {
                    break;
                }
            }
        }
    }
    ctx.reply.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN.

fn zrandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    use rand::Rng;
    use rand::seq::index;
    let key = args.get(1);
    if args.len() == 2 {
        let Some(i) = read_zset(ctx, key)? else {
            ctx.reply.null();
            return Ok(());
        };
        let n = zset_at(ctx.db(), i).len();
        let pick = ctx.srv.rng.random_range(0..n);
        let (db, reply) = ctx.db_and_reply();
        if let Some((m, _)) = zset_at(db, i).iter_ranks(pick, pick).next() {
            reply.bulk(m);
        }
        return Ok(());
    }
    let (l, withscores) = random_count(args, Some("withscores"))?;
    let Some(i) = read_zset(ctx, key)? else {
        ctx.reply.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    let size = zset_at(ctx.db(), i).len();
    let picks: Vec<usize> = if count == 0 {
        Vec::new()
    } else if l < 0 {
        (0..count)
            .map(|_| ctx.srv.rng.random_range(0..size))
            .collect()
    } else if count >= size {
        // Redis's set iterator walks from the highest entry down.
        (0..size).rev().collect()
    } else {
        // Distinct members come out in set order, as Redis's listpack sampling returns them.
        let mut v = index::sample(&mut ctx.srv.rng, size, count).into_vec();
        v.sort_unstable();
        v
    };
    let (db, reply) = ctx.db_and_reply();
    let z = zset_at(db, i);
    let chosen: Vec<(&[u8], f64)> = if z.encoding() == "listpack" {
        let entries: Vec<(&[u8], f64)> = z.iter().collect();
        picks.iter().map(|&p| entries[p]).collect()
    } else {
        // The skiplist finds each rank in O(log n).
        picks
            .iter()
            .filter_map(|&p| z.iter_ranks(p, p).next())
            .collect()
    };
    reply_entries(reply, chosen.into_iter(), withscores);
    Ok(())
}

fn zscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2))?;
    let Some(i) = read_zset(ctx, args.get(1))? else {
        scan_reply_head(&mut ctx.reply, 0, 0);
        return Ok(());
    };
    let o = scan_options(args, 3, false)?;
    let (db, reply) = ctx.db_and_reply();
    let z = zset_at(db, i);
    // A packed set is returned whole in one call, as Redis does. The tree form is walked in
    // score order and the cursor names the score to resume at: entries present for the
    // whole scan are never skipped, whatever is added or removed in between. A batch only
    // ends between two different scores, so a long run of equal scores cannot stall it.
    let (from, count) = if cursor == 0 || z.encoding() == "listpack" {
        (
            f64::NEG_INFINITY,
            if z.encoding() == "listpack" {
                usize::MAX
            } else {
                o.count
            },
        )
    } else {
        (cursor_score(cursor), o.count)
    };
    let mut next = 0u64;
    let mut found = Vec::new();
    let mut last = None;
    for (n, (m, s)) in z.iter_from_score(from).enumerate() {
        if n >= count && last != Some(s) {
            next = score_cursor(s);
            break;
        }
        last = Some(s);
        if o.pattern.is_none_or(|p| crate::glob::matches(p, m, false)) {
            found.push((m, s));
        }
    }
    scan_reply_head(reply, next, 2 * found.len());
    for (m, s) in found {
        reply.bulk(m);
        reply.bulk(crate::protocol::format_double(s).as_bytes());
    }
    Ok(())
}

/// The ZSCAN cursor resuming at score `s`: an order-preserving map of doubles to integers,
/// plus one so that no score maps to 0 (the cursor that starts and ends a scan).
fn score_cursor(s: f64) -> u64 {
    let bits = s.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    ordered + 1
}

/// The score a ZSCAN cursor resumes at (the inverse of [`score_cursor`]).
fn cursor_score(c: u64) -> f64 {
    let ordered = c - 1;
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_matches_c() {
        assert_eq!(strtod(b"1.5"), (1.5, 3, false));
        assert_eq!(strtod(b"  -2e3x"), (-2000.0, 6, false));
        assert_eq!(strtod(b""), (0.0, 0, false));
        assert_eq!(strtod(b"."), (0.0, 0, false));
        assert_eq!(strtod(b"5."), (5.0, 2, false));
        assert_eq!(strtod(b".5e"), (0.5, 2, false));
        assert_eq!(strtod(b"-inf"), (f64::NEG_INFINITY, 4, false));
        assert_eq!(strtod(b"+Infinity"), (f64::INFINITY, 9, false));
        assert!(strtod(b"1e400").2);
        assert!(strtod(b"1e-400").2);
        assert!(!strtod(b"0e-400").2);
        assert_eq!(strtod(b"0x10"), (16.0, 4, false));
        assert_eq!(strtod(b"-0x1.8p1"), (-3.0, 8, false));
        assert_eq!(strtod(b"0xg"), (0.0, 1, false));
    }

    #[test]
    fn double_args_follow_redis() {
        assert_eq!(parse_double(b"10"), Some(10.0));
        assert_eq!(parse_double(b"+inf"), Some(f64::INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e400", b"abc"] {
            assert_eq!(parse_double(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn score_ranges() {
        let r = ScoreRange::parse(b"(1", b"+inf").expect("valid");
        assert!(!r.gte_min(1.0) && r.gte_min(1.5) && r.lte_max(f64::INFINITY));
        assert!(
            ScoreRange::parse(b"(", b"").is_ok(),
            "strtod of nothing is 0"
        );
        assert!(ScoreRange::parse(b"a", b"1").is_err());
        assert!(ScoreRange::parse(b"1", b"(1").expect("valid").is_empty());
    }

    #[test]
    fn lex_ranges() {
        let r = LexRange::parse(b"[b", b"(d").expect("valid");
        assert!(r.gte_min(b"b") && r.lte_max(b"c") && !r.lte_max(b"d"));
        assert!(LexRange::parse(b"b", b"+").is_err());
        assert!(LexRange::parse(b"", b"+").is_err());
        assert!(LexRange::parse(b"+", b"-").expect("valid").is_empty());
        assert!(LexRange::parse(b"(a", b"[a").expect("valid").is_empty());
    }

    #[test]
    fn scan_cursors_keep_score_order() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -0.0,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
        ];
        let cursors: Vec<u64> = scores.iter().map(|&s| score_cursor(s)).collect();
        assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
        assert!(cursors.iter().all(|&c| c != 0));
        for s in scores {
            assert_eq!(cursor_score(score_cursor(s)).to_bits(), s.to_bits());
        }
    }

    #[test]
    fn rank_bounds_follow_redis() {
        assert_eq!(rank_bounds(0, -1, 3), Some((0, 2)));
        assert_eq!(rank_bounds(-100, 100, 3), Some((0, 2)));
        assert_eq!(rank_bounds(2, 1, 3), None);
        assert_eq!(rank_bounds(3, 5, 3), None);
        assert_eq!(rank_bounds(0, -4, 3), None);
    }
}
