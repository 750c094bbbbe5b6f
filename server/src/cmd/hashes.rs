//! Hash commands: HSET and friends, counters, random fields and HSCAN, with Redis 7.0's
//! replies, errors, encodings and propagation (HINCRBYFLOAT goes out as HSET).
//!
//! The data structure lives in `keyspace::hash`; this file only parses arguments, applies the
//! keyspace rules through [`Ctx`] and writes replies.

use super::args::{distinct_sample, parse_cursor, random_count, scan_options, scan_reply_head};
use super::{CmdError, CmdResult, Ctx, Spec, arity_error, flags::*, int_arg, spec};
use crate::keyspace::hash::Limits;
use crate::keyspace::{Db, Hash, Value};
use crate::notify::class;
use crate::protocol::{Args, Reply};

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
    ctx.notify(class::HASH, "hset", args.get(1));
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
    ctx.notify(class::HASH, "hset", args.get(1));
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
    if deleted > 0 {
        ctx.notify(class::HASH, "hdel", key);
    }
    if empty {
        ctx.delete(key);
        ctx.notify(class::GENERIC, "del", key);
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
    ctx.notify(class::HASH, "hincrby", args.get(1));
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
    ctx.notify(class::HASH, "hincrbyfloat", key);
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
        let mut rng = ctx.rng();
        let (db, reply) = ctx.db_and_reply();
        let h = hash_at(db, i)?;
        match h.random(&mut rng) {
            Some((f, _)) => reply.bulk(f),
            None => reply.null(),
        }
        return Ok(());
    }
    let (l, withvalues) = random_count(args, Some("withvalues"))?;
    let slot = read_hash(ctx, args.get(1))?;
    let mut rng = ctx.rng();
    let (db, reply) = ctx.db_and_reply();
    let Some(h) = slot.map(|i| hash_at(db, i)).transpose()? else {
        reply.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    let size = h.len();
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
        let sample = distinct_sample(
            size,
            count,
            &mut rng,
            || h.iter().collect(),
            |r| h.random(r),
        );
        for p in sample {
            field_reply(reply, p, withvalues);
        }
    }
    Ok(())
}

fn hscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2))?;
    let Some(i) = read_hash(ctx, args.get(1))? else {
        scan_reply_head(&mut ctx.reply, 0, 0);
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
    scan_reply_head(reply, next, found.len() * 2);
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
