//! Hash commands: HSET and friends, counters, random fields and HSCAN, with Redis 7.0's
//! replies, errors, encodings and propagation (HINCRBYFLOAT goes out as HSET).
//!
//! The data structure lives in `keyspace::hash`; this file only parses arguments, applies the
//! keyspace rules through [`Ctx`] and writes replies.

use super::keys::scan_options;
use super::{CmdError, CmdResult, Ctx, Spec, arity_error, eq, flags::*, int_arg, spec};
use crate::keyspace::hash::Limits;
use crate::keyspace::{Db, Hash, Value};
use crate::protocol::{Args, Reply};
use rand::Rng;

pub static COMMANDS: &[Spec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hset),
    spec(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hmset,
    ),
    spec(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hsetnx,
    ),
    spec("hget", 3, READONLY | FAST, (1, 1, 1), "hash", hget),
    spec("hmget", -3, READONLY | FAST, (1, 1, 1), "hash", hmget),
    spec("hgetall", 2, READONLY, (1, 1, 1), "hash", hgetall),
    spec("hkeys", 2, READONLY, (1, 1, 1), "hash", hkeys),
    spec("hvals", 2, READONLY, (1, 1, 1), "hash", hvals),
    spec("hdel", -3, WRITE | FAST, (1, 1, 1), "hash", hdel),
    spec("hlen", 2, READONLY | FAST, (1, 1, 1), "hash", hlen),
    spec("hexists", 3, READONLY | FAST, (1, 1, 1), "hash", hexists),
    spec("hstrlen", 3, READONLY | FAST, (1, 1, 1), "hash", hstrlen),
    spec(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hincrby,
    ),
    spec(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hincrbyfloat,
    ),
    spec("hrandfield", -2, READONLY, (1, 1, 1), "hash", hrandfield),
    spec("hscan", -3, READONLY, (1, 1, 1), "hash", hscan),
];

/// The listpack thresholds from the configuration.
fn limits(ctx: &Ctx<'_>) -> Limits {
    let c = &ctx.srv.config;
    Limits {
        max_entries: usize::try_from(c.hash_max_listpack_entries).unwrap_or(usize::MAX),
        max_value: usize::try_from(c.hash_max_listpack_value).unwrap_or(usize::MAX),
    }
}

/// The hash at slot `i`, WRONGTYPE for another type.
fn hash_at(db: &Db, i: u32) -> Result<&Hash, CmdError> {
    match &db.entry(i).value {
        Value::Hash(h) => Ok(h),
        _ => Err(CmdError::WrongType),
    }
}

/// Looks a hash up for a read command (hit/miss stats): its slot, `None` when missing.
fn read_hash(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<u32>, CmdError> {
    match ctx.read(key) {
        None => Ok(None),
        Some(i) => hash_at(ctx.db(), i).map(|_| Some(i)),
    }
}

/// Looks a hash up for a write command; when missing and `create`, creates it empty (the
/// caller adds fields before the command ends: Redis never leaves an empty hash behind).
fn write_hash<'c>(
    ctx: &'c mut Ctx<'_>,
    key: &[u8],
    create: bool,
) -> Result<Option<&'c mut Hash>, CmdError> {
    let slot = match ctx.find(key) {
        Some(i) => {
            let clock = ctx.srv.access_clock(ctx.now_ms);
            let e = ctx.db().entry_mut(i);
            e.access = clock.touch(e.access);
            i
        }
        None if create => ctx.set(key, Value::Hash(Box::default()), false),
        None => return Ok(None),
    };
    match &mut ctx.db().entry_mut(slot).value {
        Value::Hash(h) => Ok(Some(h)),
        _ => Err(CmdError::WrongType),
    }
}

/// Sets the field/value pairs of HSET and HMSET; returns how many fields were new.
fn set_pairs(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str) -> Result<i64, CmdError> {
    if args.len() % 2 == 1 {
        return Err(arity_error(name));
    }
    let limits = limits(ctx);
    let Some(h) = write_hash(ctx, args.get(1), true)? else {
        unreachable!("created when missing")
    };
    let pairs = (2..args.len())
        .step_by(2)
        .map(|i| (args.get(i), args.get(i + 1)));
    let created = h.set_many(pairs, limits);
    ctx.dirty((args.len() as u64 - 2) / 2);
    Ok(created as i64)
}

fn hset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let created = set_pairs(ctx, args, "hset")?;
    ctx.reply.int(created);
    Ok(())
}

fn hmset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_pairs(ctx, args, "hmset")?;
    ctx.reply.ok();
    Ok(())
}

fn hsetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let limits = limits(ctx);
    let (field, value) = (args.get(2), args.get(3));
    let Some(h) = write_hash(ctx, args.get(1), true)? else {
        unreachable!("created when missing")
    };
    if h.contains(field) {
        ctx.reply.int(0);
        return Ok(());
    }
    h.set(field, value, limits);
    ctx.dirty(1);
    ctx.reply.int(1);
    Ok(())
}

fn hget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(i) = read_hash(ctx, args.get(1))? else {
        ctx.reply.null();
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    match hash_at(db, i)?.get(args.get(2)) {
        Some(v) => reply.bulk(v),
        None => reply.null(),
    }
    Ok(())
}

fn hmget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_hash(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    let h = slot.map(|i| hash_at(db, i)).transpose()?;
    reply.array(args.len() - 2);
    for f in args.iter().skip(2) {
        match h.and_then(|h| h.get(f)) {
            Some(v) => reply.bulk(v),
            None => reply.null(),
        }
    }
    Ok(())
}

/// HGETALL (a map), HKEYS and HVALS (arrays).
fn getall(ctx: &mut Ctx<'_>, key: &[u8], fields: bool, values: bool) -> CmdResult {
    let slot = read_hash(ctx, key)?;
    let (db, reply) = ctx.db_and_reply();
    let h = slot.map(|i| hash_at(db, i)).transpose()?;
    let len = h.map_or(0, Hash::len);
    if fields && values {
        reply.map(len);
    } else {
        reply.array(len);
    }
    for (f, v) in h.into_iter().flat_map(Hash::iter) {
        if fields {
            reply.bulk(f);
        }
        if values {
            reply.bulk(v);
        }
    }
    Ok(())
}

fn hgetall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    getall(ctx, args.get(1), true, true)
}

fn hkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    getall(ctx, args.get(1), true, false)
}

fn hvals(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    getall(ctx, args.get(1), false, true)
}

fn hdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let Some(h) = write_hash(ctx, key, false)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let deleted = args.iter().skip(2).filter(|f| h.remove(f)).count();
    let empty = h.is_empty();
    if empty {
        ctx.delete(key);
    }
    ctx.dirty(deleted as u64);
    ctx.reply.int(deleted as i64);
    Ok(())
}

fn hlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = match read_hash(ctx, args.get(1))? {
        Some(i) => hash_at(ctx.db(), i)?.len(),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn hexists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = match read_hash(ctx, args.get(1))? {
        Some(i) => hash_at(ctx.db(), i)?.contains(args.get(2)),
        None => false,
    };
    ctx.reply.int(i64::from(found));
    Ok(())
}

fn hstrlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = match read_hash(ctx, args.get(1))? {
        Some(i) => hash_at(ctx.db(), i)?
            .get(args.get(2))
            .map_or(0, <[u8]>::len),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn hincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let by = int_arg(args.get(3))?;
    let limits = limits(ctx);
    let field = args.get(2);
    let Some(h) = write_hash(ctx, args.get(1), true)? else {
        unreachable!("created when missing")
    };
    let cur = match h.get(field) {
        Some(v) => crate::protocol::parse_i64(v)
            .ok_or_else(|| CmdError::msg("ERR hash value is not an integer"))?,
        None => 0,
    };
    let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    h.set(field, itoa::Buffer::new().format(new).as_bytes(), limits);
    ctx.dirty(1);
    ctx.reply.int(new);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let by = crate::longdouble::parse(args.get(3)).ok_or(CmdError::NotFloat)?;
    if !by.is_finite() {
        return Err(CmdError::msg("ERR value is NaN or Infinity"));
    }
    let limits = limits(ctx);
    let (key, field) = (args.get(1), args.get(2));
    let Some(h) = write_hash(ctx, key, true)? else {
        unreachable!("created when missing")
    };
    let cur = match h.get(field) {
        Some(v) => crate::longdouble::parse(v)
            .ok_or_else(|| CmdError::msg("ERR hash value is not a float"))?,
        None => crate::longdouble::LongDouble::ZERO,
    };
    let new = cur + by;
    if !new.is_finite() {
        return Err(CmdError::msg("ERR increment would produce NaN or Infinity"));
    }
    let text = new.to_human_string();
    h.set(field, text.as_bytes(), limits);
    ctx.dirty(1);
    ctx.rewrite(vec![vec![
        b"HSET".to_vec(),
        key.to_vec(),
        field.to_vec(),
        text.clone().into_bytes(),
    ]]);
    ctx.reply.bulk(text.as_bytes());
    Ok(())
}

/// Writes one field (and its value) of an HRANDFIELD reply.
fn field_reply(reply: &mut Reply<'_>, (f, v): (&[u8], &[u8]), withvalues: bool) {
    if withvalues && reply.resp3() {
        reply.array(2);
    }
    reply.bulk(f);
    if withvalues {
        reply.bulk(v);
    }
}

fn hrandfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 2 {
        let Some(i) = read_hash(ctx, args.get(1))? else {
            ctx.reply.null();
            return Ok(());
        };
        let (db, reply) = ctx.db_and_reply();
        let h = hash_at(db, i)?;
        let mut rng = rand::rng();
        match h.random(&mut rng) {
            Some((f, _)) => reply.bulk(f),
            None => reply.null(),
        }
        return Ok(());
    }
    let l = int_arg(args.get(2))?;
    if l == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withvalues = match args.len() {
        3 => false,
        4 if eq(args.get(3), "withvalues") => true,
        _ => return Err(CmdError::Syntax),
    };
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    let slot = read_hash(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    let Some(h) = slot.map(|i| hash_at(db, i)).transpose()? else {
        reply.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    let size = h.len();
    let mut rng = rand::rng();
    let flat = withvalues && !reply.resp3();
    let header = |reply: &mut Reply<'_>, n: usize| reply.array(if flat { n * 2 } else { n });
    if count == 0 {
        reply.array(0);
    } else if l < 0 || count == 1 {
        // Repetitions allowed: independent draws.
        header(reply, count);
        for _ in 0..count {
            if let Some(p) = h.random(&mut rng) {
                field_reply(reply, p, withvalues);
            }
        }
    } else if count >= size {
        header(reply, size);
        for p in h.iter() {
            field_reply(reply, p, withvalues);
        }
    } else {
        header(reply, count);
        for p in distinct_sample(h, count, &mut rng) {
            field_reply(reply, p, withvalues);
        }
    }
    Ok(())
}

/// `count` distinct random pairs of `h`, `count < h.len()`.
fn distinct_sample<'h>(h: &'h Hash, count: usize, rng: &mut impl Rng) -> Vec<(&'h [u8], &'h [u8])> {
    let size = h.len();
    if count * 3 > size {
        // Many of them: shuffle the front of the whole list.
        let mut all: Vec<_> = h.iter().collect();
        for i in 0..count {
            let j = rng.random_range(i..size);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = hashbrown::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            if let Some(p) = h.random(rng)
                && seen.insert(p.0)
            {
                out.push(p);
            }
        }
        out
    }
}

/// Parses an HSCAN/SSCAN cursor as Redis 7.0 does with `strtoul`: an optional sign (a
/// negative cursor wraps around), decimal digits, nothing else; the empty string is 0.
pub fn parse_cursor(a: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::msg("ERR invalid cursor");
    let (neg, digits) = match a.first() {
        Some(b'-') => (true, &a[1..]),
        Some(b'+') => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() && !a.is_empty() {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

fn hscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2))?;
    let Some(i) = read_hash(ctx, args.get(1))? else {
        ctx.reply.array(2);
        ctx.reply.bulk(b"0");
        ctx.reply.array(0);
        return Ok(());
    };
    let o = scan_options(args, 3, false)?;
    let (db, reply) = ctx.db_and_reply();
    let h = hash_at(db, i)?;
    let mut found = Vec::new();
    let next = h.scan(cursor, o.count, |f, v| {
        if o.pattern.is_none_or(|p| crate::glob::matches(p, f, false)) {
            found.push((f, v));
        }
    });
    reply.array(2);
    reply.bulk(itoa::Buffer::new().format(next).as_bytes());
    reply.array(found.len() * 2);
    for (f, v) in found {
        reply.bulk(f);
        reply.bulk(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::run_all as run;

    #[test]
    fn hincrbyfloat_propagates_as_hset() {
        let (reply, stream) = run(&[
            &["HINCRBYFLOAT", "h", "f", "0.1"],
            &["HINCRBYFLOAT", "h", "f", "0.2"],
        ]);
        assert!(reply.ends_with("$3\r\n0.3\r\n"), "{reply}");
        assert!(
            stream.ends_with("*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$3\r\n0.3\r\n"),
            "{stream}"
        );
    }

    #[test]
    fn failed_or_empty_writes_do_not_propagate() {
        let (_, stream) = run(&[
            &["HDEL", "nokey", "f"],
            &["HSET", "h", "f", "x"],
            &["HINCRBY", "h", "f", "1"],
            &["HSETNX", "h", "f", "y"],
        ]);
        assert_eq!(stream.matches("HSET").count(), 1, "{stream}");
        assert!(!stream.contains("HINCRBY"));
        assert!(!stream.contains("HSETNX"));
        assert!(!stream.contains("HDEL"));
    }
}
