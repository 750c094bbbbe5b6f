//! SORT and SORT_RO (the `generic` group): the elements of a list, set or sorted set ordered
//! numerically or ALPHA, by themselves or by other keys (`BY weight_*`, `BY h_*->field`, or
//! `BY nosort` to keep their order), cut with LIMIT, mapped through GET patterns, returned or
//! stored as a list.
//!
//! Follows Redis 7.0's `sort.c`: its option parsing and errors, its order of operations (a
//! score that is not a number is reported only after everything was looked up and sorted),
//! its tie-breaks, and its rules for determinism: a set returned unsorted (`BY nosort`) is
//! sorted ALPHA when the result is stored or a script asked, so replicas and script effects
//! see the same list. SORT is a write (a read-only replica refuses it, as Redis does); its
//! STORE form propagates as received.

use super::zset::strtod;
use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::{End, List, SmallBytes, Value};
use crate::notify::class;
use crate::pqsort::pqsort;
use crate::protocol::Args;
use std::cmp::Ordering;

/// Movable keys: BY and GET read keys named by the data, STORE's key can be anywhere among
/// the options.
pub static COMMANDS: &[Spec] = &[
    spec(
        "sort",
        -2,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "generic",
        sort,
    ),
    spec(
        "sort_ro",
        -2,
        READONLY | MOVABLEKEYS,
        (1, 1, 1),
        "generic",
        sort_ro,
    ),
];

/// One element to sort, with what it is compared by.
struct Item {
    obj: SmallBytes,
    score: f64,
    /// ALPHA with BY: the looked-up value, `None` when missing (sorted first).
    by: Option<Vec<u8>>,
}

impl Item {
    fn new(obj: &[u8]) -> Item {
        Item {
            obj: SmallBytes::new(obj),
            score: 0.0,
            by: None,
        }
    }
}

/// `take` members after the first `skip`, counted from the front, or from the back for DESC.
fn window<'a>(
    members: impl DoubleEndedIterator<Item = &'a [u8]>,
    desc: bool,
    skip: usize,
    take: usize,
) -> Vec<Item> {
    let members: Box<dyn Iterator<Item = &'a [u8]>> = if desc {
        Box::new(members.rev())
    } else {
        Box::new(members)
    };
    members.skip(skip).take(take).map(Item::new).collect()
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` of the
/// pattern is replaced by the element, and a `->field` after it reads a hash field instead
/// of a string. `None` for a pattern without `*`, a missing key or field, or another type.
fn lookup_by_pattern(ctx: &mut Ctx<'_>, pattern: &[u8], subst: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(subst.to_vec());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let (postfix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < after.len() => (&after[..f], Some(&after[f + 2..])),
        _ => (after, None),
    };
    let key = [&pattern[..star], subst, postfix].concat();
    let i = ctx.read(&key)?;
    match (&ctx.db().entry(i).value, field) {
        (Value::Str(s), None) => Some(s.to_vec()),
        (Value::Hash(h), Some(f)) => h.get(f).map(<[u8]>::to_vec),
        _ => None,
    }
}

/// The number `strtod` reads from a whole value (leading space allowed, an empty value is
/// 0, as SORT reads weights); `None` when junk follows, it overflows or it is NaN.
fn weight(v: &[u8]) -> Option<f64> {
    let (score, used, erange) = strtod(v);
    let whole = used == v.len() || v[used] == 0;
    (whole && !erange && !score.is_nan()).then_some(score)
}

/// C's `strcmp`, which `strcoll` is under the C and C.UTF-8 locales Redis runs in: bytes up
/// to the first NUL.
fn c_strcmp(a: &[u8], b: &[u8]) -> Ordering {
    let a = a.split(|&c| c == 0).next().unwrap_or_default();
    let b = b.split(|&c| c == 0).next().unwrap_or_default();
    a.cmp(b)
}

/// SORT's options.
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    /// A BY pattern without `*`: keep the elements' order.
    dontsort: bool,
    gets: Vec<&'a [u8]>,
}

fn parse_options(args: Args<'_>, readonly: bool) -> Result<Options<'_>, CmdError> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit: (0, -1),
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
    };
    let n = args.len();
    let mut j = 2;
    while j < n {
        let left = n - j - 1;
        let a = args.get(j);
        if eq(a, "asc") {
            o.desc = false;
        } else if eq(a, "desc") {
            o.desc = true;
        } else if eq(a, "alpha") {
            o.alpha = true;
        } else if eq(a, "limit") && left >= 2 {
            o.limit = (int_arg(args.get(j + 1))?, int_arg(args.get(j + 2))?);
            j += 2;
        } else if !readonly && eq(a, "store") && left >= 1 {
            o.store = Some(args.get(j + 1));
            j += 1;
        } else if eq(a, "by") && left >= 1 {
            let p = args.get(j + 1);
            o.by = Some(p);
            // Once constant, always: a later pattern does not bring sorting back.
            o.dontsort |= !p.contains(&b'*');
            j += 1;
        } else if eq(a, "get") && left >= 1 {
            o.gets.push(args.get(j + 1));
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// The positions LIMIT selects among `len` elements, as Redis clamps them: `end < start`
/// for none.
fn limit_range(len: i64, (offset, count): (i64, i64)) -> (i64, i64) {
    let mut start = offset.clamp(0, len);
    let count = count.clamp(-1, len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    (start, end.min(len - 1))
}

/// The elements to sort, in the order Redis loads them, and the output range within them:
/// an unsorted list or sorted set loads only the LIMIT range, in the requested direction.
fn load(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    o: &mut Options<'_>,
) -> Result<(Vec<Item>, i64, i64), CmdError> {
    let Some(i) = ctx.read(key) else {
        let (start, end) = limit_range(0, o.limit);
        return Ok((Vec::new(), start, end));
    };
    let is_set = match &ctx.db().entry(i).value {
        Value::Set(_) => true,
        Value::List(_) | Value::Zset(_) => false,
        _ => return Err(CmdError::WrongType),
    };
    if o.dontsort && is_set && (o.store.is_some() || ctx.from_script) {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let value = &ctx.db().entry(i).value;
    let len = match value {
        Value::List(l) => l.len(),
        Value::Set(s) => s.len(),
        Value::Zset(z) => z.len(),
        _ => 0,
    } as i64;
    let (start, end) = limit_range(len, o.limit);
    let ranged = o.dontsort && !is_set;
    if ranged {
        let take = if end >= start {
            (end - start + 1) as usize
        } else {
            0
        };
        let skip = start.max(0) as usize;
        let items = match value {
            Value::List(l) => window(l.iter(), o.desc, skip, take),
            Value::Zset(z) => window(z.iter().map(|(m, _)| m), o.desc, skip, take),
            _ => Vec::new(),
        };
        return Ok((items, 0, end - start));
    }
    let items = match value {
        Value::List(l) => l.iter().map(Item::new).collect(),
        Value::Set(s) => s.iter().map(|m| Item::new(&m.to_bytes())).collect(),
        Value::Zset(z) => z.iter().map(|(m, _)| Item::new(m)).collect(),
        _ => Vec::new(),
    };
    Ok((items, start, end))
}

fn sort_generic(ctx: &mut Ctx<'_>, args: Args<'_>, readonly: bool) -> CmdResult {
    let mut o = parse_options(args, readonly)?;
    let (mut items, start, end) = load(ctx, args.get(1), &mut o)?;
    let mut not_a_number = false;
    if !o.dontsort {
        for it in &mut items {
            let by = match o.by {
                Some(p) => match lookup_by_pattern(ctx, p, &it.obj) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            if o.alpha {
                it.by = by;
            } else {
                match weight(by.as_deref().unwrap_or(&it.obj)) {
                    Some(s) => it.score = s,
                    None => not_a_number = true,
                }
            }
        }
        let (alpha, desc, by, store) = (o.alpha, o.desc, o.by.is_some(), o.store.is_some());
        // Collation for a reply, bytes for a stored list (as Redis, whose stored result must
        // not depend on the locale).
        let text = |a: &[u8], b: &[u8]| if store { a.cmp(b) } else { c_strcmp(a, b) };
        let mut cmp = |a: &Item, b: &Item| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .filter(|c| c.is_ne())
                    .unwrap_or_else(|| a.obj.cmp(&b.obj))
            } else if by {
                match (&a.by, &b.by) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => text(x, y),
                }
            } else {
                text(&a.obj, &b.obj)
            };
            if desc { c.reverse() } else { c }
        };
        if by && (start != 0 || end != items.len() as i64 - 1) {
            pqsort(
                &mut items,
                start.max(0) as usize,
                end.max(0) as usize,
                &mut cmp,
            );
        } else {
            items.sort_by(&mut cmp);
        }
    }
    if not_a_number {
        return Err(CmdError::msg(
            "ERR One or more scores can't be converted into double",
        ));
    }
    let picked = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let per_item = o.gets.len().max(1);
    match o.store {
        None => {
            ctx.reply.array(per_item * picked.len());
            for it in picked {
                if o.gets.is_empty() {
                    ctx.reply.bulk(&it.obj);
                }
                for p in &o.gets {
                    match lookup_by_pattern(ctx, p, &it.obj) {
                        Some(v) => ctx.reply.bulk(&v),
                        None => ctx.reply.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let mut list = List::new();
            for it in picked {
                if o.gets.is_empty() {
                    list.push(End::Right, &it.obj);
                }
                for p in &o.gets {
                    let v = lookup_by_pattern(ctx, p, &it.obj).unwrap_or_default();
                    list.push(End::Right, &v);
                }
            }
            let n = list.len();
            if n > 0 {
                ctx.set(dst, Value::List(Box::new(list)), false);
                ctx.dirty(n as u64);
                ctx.notify(class::LIST, "sortstore", dst);
            } else if ctx.delete(dst) {
                ctx.dirty(1);
                ctx.notify(class::GENERIC, "del", dst);
            }
            ctx.touched_only(dst);
            ctx.reply.int(n as i64);
        }
    }
    Ok(())
}

fn sort(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    sort_generic(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp_as_redis() {
        assert_eq!(limit_range(5, (0, -1)), (0, 4));
        assert_eq!(limit_range(5, (-3, 2)), (0, 1));
        assert_eq!(limit_range(5, (3, 100)), (3, 4));
        assert_eq!(limit_range(5, (9, 2)), (4, 3));
        assert_eq!(limit_range(5, (1, 0)), (1, 0));
        assert_eq!(limit_range(0, (0, -1)), (-1, -2));
    }

    #[test]
    fn weights_read_like_strtod() {
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b" 7"), Some(7.0));
        assert_eq!(weight(b"0x10"), Some(16.0));
        assert_eq!(weight(b"1\0junk"), Some(1.0));
        for bad in [&b"1 "[..], b"abc", b"nan", b"1e400", b"1e-400"] {
            assert_eq!(weight(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn collation_stops_at_nul() {
        assert_eq!(c_strcmp(b"a\0z", b"a\0b"), Ordering::Equal);
        assert_eq!(c_strcmp(b"B", b"a"), Ordering::Less);
    }
}
