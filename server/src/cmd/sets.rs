//! Set commands: membership, random members, moves, the algebra (SINTER/SUNION/SDIFF, their
//! STORE forms, SINTERCARD) and SSCAN, with Redis 7.0's replies, errors, encodings and
//! propagation (SPOP goes out as SREM, or DEL when it empties the set).
//!
//! The data structure lives in `keyspace::set`; this file only parses arguments, applies the
//! keyspace rules through [`Ctx`] and writes replies.

use super::args::{distinct_sample, parse_cursor, random_count, scan_options, scan_reply_head};
use super::{CmdError, CmdResult, Ctx, Spec, flags::*, int_arg, spec};
use crate::keyspace::set::Member;
use crate::keyspace::{Db, Set, SmallBytes, Value};
use crate::notify::class;
use crate::protocol::{Args, Reply};

pub static COMMANDS: &[Spec] = &[
    spec("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "set", sadd),
    spec("srem", -3, WRITE | FAST, (1, 1, 1), "set", srem),
    spec("smembers", 2, READONLY, (1, 1, 1), "set", smembers),
    spec("sismember", 3, READONLY | FAST, (1, 1, 1), "set", sismember),
    spec(
        "smismember",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        "set",
        smismember,
    ),
    spec("scard", 2, READONLY | FAST, (1, 1, 1), "set", scard),
    spec("spop", -2, WRITE | FAST, (1, 1, 1), "set", spop),
    spec("srandmember", -2, READONLY, (1, 1, 1), "set", srandmember),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), "set", smove),
    spec("sinter", -2, READONLY, (1, -1, 1), "set", sinter),
    spec("sunion", -2, READONLY, (1, -1, 1), "set", sunion),
    spec("sdiff", -2, READONLY, (1, -1, 1), "set", sdiff),
    spec(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sinterstore,
    ),
    spec(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sunionstore,
    ),
    spec(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sdiffstore,
    ),
    spec(
        "sintercard",
        -3,
        READONLY | MOVABLEKEYS,
        (0, 0, 0),
        "set",
        sintercard,
    ),
    spec("sscan", -3, READONLY, (1, 1, 1), "set", sscan),
];

fn max_intset(ctx: &Ctx<'_>) -> usize {
    usize::try_from(ctx.srv.config.set_max_intset_entries).unwrap_or(usize::MAX)
}

/// The set at slot `i`, WRONGTYPE for another type.
fn set_at(db: &Db, i: u32) -> Result<&Set, CmdError> {
    match &db.entry(i).value {
        Value::Set(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// Looks a set up for a read command (hit/miss stats): its slot, `None` when missing.
fn read_set(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<u32>, CmdError> {
    match ctx.read(key) {
        None => Ok(None),
        Some(i) => set_at(ctx.db(), i).map(|_| Some(i)),
    }
}

/// Looks a set up for a write command, touching its access clock.
fn write_set<'c>(ctx: &'c mut Ctx<'_>, key: &[u8]) -> Result<Option<&'c mut Set>, CmdError> {
    let Some(e) = ctx.entry_mut(key) else {
        return Ok(None);
    };
    match &mut e.value {
        Value::Set(s) => Ok(Some(s)),
        _ => Err(CmdError::WrongType),
    }
}

fn member_reply(reply: &mut Reply<'_>, m: Member<'_>) {
    match m {
        Member::Int(i) => reply.bulk_int(i),
        Member::Bytes(b) => reply.bulk(b),
    }
}

/// Replies a whole set in its iteration order.
fn set_reply(reply: &mut Reply<'_>, s: &Set) {
    reply.set(s.len());
    s.iter().for_each(|m| member_reply(reply, m));
}

fn sadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let max = max_intset(ctx);
    if write_set(ctx, key)?.is_none() {
        ctx.set(
            key,
            Value::Set(Box::new(Set::for_first(args.get(2)))),
            false,
        );
    }
    let Some(s) = write_set(ctx, key)? else {
        unreachable!("created above")
    };
    let added = args.iter().skip(2).filter(|m| s.add(m, max)).count();
    ctx.dirty(added as u64);
    if added > 0 {
        ctx.notify(class::SET, "sadd", key);
    }
    ctx.reply.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let Some(s) = write_set(ctx, key)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for m in args.iter().skip(2) {
        if s.remove(m) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    let emptied = s.is_empty();
    if removed > 0 {
        ctx.notify(class::SET, "srem", key);
        if emptied {
            ctx.delete(key);
            ctx.notify(class::GENERIC, "del", key);
        }
    }
    ctx.dirty(removed);
    ctx.reply.int(removed as i64);
    Ok(())
}

fn smembers(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_set(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    match slot {
        Some(i) => set_reply(reply, set_at(db, i)?),
        None => reply.set(0),
    }
    Ok(())
}

fn sismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = match read_set(ctx, args.get(1))? {
        Some(i) => set_at(ctx.db(), i)?.contains(args.get(2)),
        None => false,
    };
    ctx.reply.int(i64::from(found));
    Ok(())
}

fn smismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_set(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    let s = slot.map(|i| set_at(db, i)).transpose()?;
    reply.array(args.len() - 2);
    for m in args.iter().skip(2) {
        reply.int(i64::from(s.is_some_and(|s| s.contains(m))));
    }
    Ok(())
}

fn scard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = match read_set(ctx, args.get(1))? {
        Some(i) => set_at(ctx.db(), i)?.len(),
        None => 0,
    };
    ctx.reply.int(n as i64);
    Ok(())
}

fn spop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match args.len() {
        2 => spop_one(ctx, args.get(1)),
        3 => spop_count(ctx, args),
        _ => Err(CmdError::Syntax),
    }
}

fn spop_one(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult {
    let mut rng = ctx.rng();
    let Some(s) = write_set(ctx, key)? else {
        ctx.reply.null();
        return Ok(());
    };
    let Some(m) = s.pop_random(&mut rng) else {
        ctx.reply.null();
        return Ok(());
    };
    let emptied = s.is_empty();
    ctx.notify(class::SET, "spop", key);
    if emptied {
        ctx.delete(key);
        ctx.notify(class::GENERIC, "del", key);
    }
    ctx.dirty(1);
    ctx.rewrite(vec![vec![b"SREM".to_vec(), key.to_vec(), m.to_vec()]]);
    ctx.reply.bulk(&m);
    Ok(())
}

/// SPOP with a count rebuilds the set from its survivors when fewer than one in this many of
/// the popped elements stays (Redis's `SPOP_MOVE_STRATEGY_MUL`).
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

fn spop_count(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let count = super::args::non_negative_arg(args.get(2), None)?;
    let count = count as u64;
    let mut rng = ctx.rng();
    let Some(s) = write_set(ctx, key)? else {
        ctx.reply.set(0);
        return Ok(());
    };
    if count == 0 {
        ctx.reply.set(0);
        return Ok(());
    }
    let size = s.len() as u64;
    ctx.notify(class::SET, "spop", key);
    if count >= size {
        // The whole set goes: reply it as SUNION would, then propagate a DEL.
        let mut out = Set::default();
        let max = max_intset(ctx);
        let Some(s) = write_set(ctx, key)? else {
            unreachable!("checked above")
        };
        s.iter().for_each(|m| {
            out.add_member(m, max);
        });
        ctx.delete(key);
        ctx.notify(class::GENERIC, "del", key);
        ctx.dirty(count);
        ctx.rewrite(vec![vec![b"DEL".to_vec(), key.to_vec()]]);
        set_reply(&mut ctx.reply, &out);
        return Ok(());
    }
    let Some(s) = write_set(ctx, key)? else {
        unreachable!("checked above")
    };
    let popped: Vec<SmallBytes> = (0..count).filter_map(|_| s.pop_random(&mut rng)).collect();
    if (size - count) * SPOP_MOVE_STRATEGY_MUL <= count {
        // Redis pops most of a set by moving the few survivors into a new set, whose
        // encoding starts over (a hashtable of integers can come back as an intset).
        let max = max_intset(ctx);
        let Some(s) = write_set(ctx, key)? else {
            unreachable!("checked above")
        };
        let mut rest = Set::default();
        if let Some(first) = s.iter().next() {
            rest = Set::for_first(&first.to_bytes());
        }
        s.iter().for_each(|m| {
            rest.add_member(m, max);
        });
        *s = rest;
    }
    ctx.dirty(count);
    ctx.rewrite(
        popped
            .iter()
            .map(|m| vec![b"SREM".to_vec(), key.to_vec(), m.to_vec()])
            .collect(),
    );
    ctx.reply.set(popped.len());
    for m in &popped {
        ctx.reply.bulk(m);
    }
    Ok(())
}

fn srandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if args.len() == 2 {
        let slot = read_set(ctx, args.get(1))?;
        let mut rng = ctx.rng();
        let (db, reply) = ctx.db_and_reply();
        match slot.map(|i| set_at(db, i)).transpose()? {
            Some(s) => match s.random(&mut rng) {
                Some(m) => member_reply(reply, m),
                None => reply.null(),
            },
            None => reply.null(),
        }
        return Ok(());
    }
    let (l, _) = random_count(args, None)?;
    let slot = read_set(ctx, args.get(1))?;
    let mut rng = ctx.rng();
    let (db, reply) = ctx.db_and_reply();
    let Some(s) = slot.map(|i| set_at(db, i)).transpose()? else {
        reply.array(0);
        return Ok(());
    };
    let count = l.unsigned_abs() as usize;
    let size = s.len();
    if count == 0 {
        reply.array(0);
    } else if l < 0 || count == 1 {
        reply.array(count);
        for _ in 0..count {
            if let Some(m) = s.random(&mut rng) {
                member_reply(reply, m);
            }
        }
    } else if count >= size {
        reply.array(size);
        s.iter().for_each(|m| member_reply(reply, m));
    } else {
        reply.array(count);
        let sample = distinct_sample(
            size,
            count,
            &mut rng,
            || s.iter().collect(),
            |r| s.random(r),
        );
        for m in sample {
            member_reply(reply, m);
        }
    }
    Ok(())
}

fn smove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (src, dst, m) = (args.get(1), args.get(2), args.get(3));
    let max = max_intset(ctx);
    let Some(si) = ctx.find(src) else {
        ctx.reply.int(0);
        return Ok(());
    };
    set_at(ctx.db(), si)?;
    if let Some(di) = ctx.find(dst) {
        set_at(ctx.db(), di)?;
    }
    if src == dst {
        let found = set_at(ctx.db(), si)?.contains(m);
        ctx.reply.int(i64::from(found));
        return Ok(());
    }
    let Some(s) = write_set(ctx, src)? else {
        unreachable!("found above")
    };
    if !s.remove(m) {
        ctx.reply.int(0);
        return Ok(());
    }
    let emptied = s.is_empty();
    ctx.notify(class::SET, "srem", src);
    if emptied {
        ctx.delete(src);
        ctx.notify(class::GENERIC, "del", src);
    }
    if write_set(ctx, dst)?.is_none() {
        ctx.set(dst, Value::Set(Box::new(Set::for_first(m))), false);
    }
    let Some(d) = write_set(ctx, dst)? else {
        unreachable!("created above")
    };
    let added = d.add(m, max);
    ctx.dirty(1 + u64::from(added));
    if added {
        ctx.notify(class::SET, "sadd", dst);
    }
    ctx.reply.int(1);
    Ok(())
}

/// The sets named by `keys` for a read: `None` for a missing key; WRONGTYPE if any key holds
/// another type (checked for every key, as Redis does).
fn lookup_sets(
    ctx: &mut Ctx<'_>,
    keys: Args<'_>,
    from: usize,
    to: usize,
) -> Result<Vec<Option<u32>>, CmdError> {
    let mut slots = Vec::with_capacity(to - from);
    for i in from..to {
        slots.push(read_set(ctx, keys.get(i))?);
    }
    Ok(slots)
}

/// SINTER's result: members of the smallest set found in every other, in that set's order;
/// stops after `limit` members (0 = all).
fn intersect<'d>(
    db: &'d Db,
    slots: &[Option<u32>],
    limit: usize,
) -> Result<Vec<Member<'d>>, CmdError> {
    let mut sets = Vec::with_capacity(slots.len());
    for s in slots {
        match s {
            Some(i) => sets.push(set_at(db, *i)?),
            None => return Ok(Vec::new()),
        }
    }
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for m in first.iter() {
        if rest.iter().all(|s| s.contains_member(m)) {
            out.push(m);
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// SUNION/SDIFF's result, built as Redis 7.0 builds it (a new intset-first set, and for SDIFF
/// the same choice between its two algorithms), so its encoding and iteration order match.
fn union_or_diff(db: &Db, slots: &[Option<u32>], diff: bool, max: usize) -> Result<Set, CmdError> {
    let sets = slots
        .iter()
        .map(|s| s.map(|i| set_at(db, i)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Set::default();
    if !diff {
        for s in sets.iter().flatten() {
            for m in s.iter() {
                out.add_member(m, max);
            }
        }
        return Ok(out);
    }
    let Some(Some(first)) = sets.first() else {
        return Ok(out);
    };
    if slots[1..].contains(&slots[0]) {
        return Ok(out);
    }
    // Redis's cost model: walk the first set probing the others (1), or copy the first set
    // and remove the others' members (2). The second can leave a hashtable where the first
    // would have built an intset, which OBJECT ENCODING shows.
    let present = sets.iter().flatten().count();
    let work_one = first.len() * present / 2;
    let work_two: usize = sets.iter().flatten().map(|s| s.len()).sum();
    if work_one <= work_two {
        for m in first.iter() {
            if !sets[1..].iter().flatten().any(|s| s.contains_member(m)) {
                out.add_member(m, max);
            }
        }
    } else {
        first.iter().for_each(|m| {
            out.add_member(m, max);
        });
        for s in sets[1..].iter().flatten() {
            if out.is_empty() {
                break;
            }
            s.iter().for_each(|m| {
                out.remove_member(m);
            });
        }
    }
    Ok(out)
}

fn sinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 1, args.len())?;
    let (db, reply) = ctx.db_and_reply();
    let out = intersect(db, &slots, 0)?;
    reply.set(out.len());
    out.into_iter().for_each(|m| member_reply(reply, m));
    Ok(())
}

fn sunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 1, args.len())?;
    let max = max_intset(ctx);
    let (db, reply) = ctx.db_and_reply();
    set_reply(reply, &union_or_diff(db, &slots, false, max)?);
    Ok(())
}

fn sdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 1, args.len())?;
    let max = max_intset(ctx);
    let (db, reply) = ctx.db_and_reply();
    set_reply(reply, &union_or_diff(db, &slots, true, max)?);
    Ok(())
}

/// Stores a computed set at `dst` (replacing it, TTL cleared), or deletes `dst` when the
/// result is empty; replies the size.
fn store(ctx: &mut Ctx<'_>, event: &'static str, dst: &[u8], out: Set) {
    ctx.touched_only(dst);
    let n = out.len();
    if n > 0 {
        ctx.set(dst, Value::Set(Box::new(out)), false);
        ctx.dirty(1);
        ctx.notify(class::SET, event, dst);
    } else if ctx.delete(dst) {
        ctx.dirty(1);
        ctx.notify(class::GENERIC, "del", dst);
    }
    ctx.reply.int(n as i64);
}

fn sinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 2, args.len())?;
    let max = max_intset(ctx);
    let db = ctx.db();
    let mut out = Set::default();
    for m in intersect(db, &slots, 0)? {
        out.add_member(m, max);
    }
    store(ctx, "sinterstore", args.get(1), out);
    Ok(())
}

fn sunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 2, args.len())?;
    let max = max_intset(ctx);
    let out = union_or_diff(ctx.db(), &slots, false, max)?;
    store(ctx, "sunionstore", args.get(1), out);
    Ok(())
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slots = lookup_sets(ctx, args, 2, args.len())?;
    let max = max_intset(ctx);
    let out = union_or_diff(ctx.db(), &slots, true, max)?;
    store(ctx, "sdiffstore", args.get(1), out);
    Ok(())
}

fn sintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let numkeys = int_arg(args.get(1))
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| CmdError::msg("ERR numkeys should be greater than 0"))?;
    if numkeys as u64 > (args.len() - 2) as u64 {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let numkeys = numkeys as usize;
    let mut limit = 0usize;
    let mut j = 2 + numkeys;
    while j < args.len() {
        if super::eq(args.get(j), "limit") && j + 1 < args.len() {
            j += 1;
            let l = int_arg(args.get(j))
                .ok()
                .filter(|&l| l >= 0)
                .ok_or_else(|| CmdError::msg("ERR LIMIT can't be negative"))?;
            limit = usize::try_from(l).unwrap_or(usize::MAX);
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let slots = lookup_sets(ctx, args, 2, 2 + numkeys)?;
    let n = intersect(ctx.db(), &slots, limit)?.len();
    ctx.reply.int(n as i64);
    Ok(())
}

fn sscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2))?;
    let Some(i) = read_set(ctx, args.get(1))? else {
        scan_reply_head(&mut ctx.reply, 0, 0);
        return Ok(());
    };
    let o = scan_options(args, 3, false)?;
    let (db, reply) = ctx.db_and_reply();
    let s = set_at(db, i)?;
    let mut found = Vec::new();
    let next = s.scan(cursor, o.count, |m| {
        let keep = o.pattern.is_none_or(|p| match m {
            Member::Int(x) => {
                crate::glob::matches(p, itoa::Buffer::new().format(x).as_bytes(), false)
            }
            Member::Bytes(b) => crate::glob::matches(p, b, false),
        });
        if keep {
            found.push(m);
        }
    });
    scan_reply_head(reply, next, found.len());
    found.into_iter().for_each(|m| member_reply(reply, m));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::run_all as run;

    #[test]
    fn spop_propagates_as_srem_or_del() {
        let (_, stream) = run(&[&["SADD", "s", "a"], &["SPOP", "s"]]);
        assert!(
            stream.ends_with("*3\r\n$4\r\nSREM\r\n$1\r\ns\r\n$1\r\na\r\n"),
            "{stream}"
        );
        let (_, stream) = run(&[&["SADD", "s", "1", "2", "3"], &["SPOP", "s", "2"]]);
        assert_eq!(stream.matches("SREM").count(), 2, "{stream}");
        assert!(
            stream.contains("MULTI") && stream.ends_with("*1\r\n$4\r\nEXEC\r\n"),
            "several effects go out atomically: {stream}"
        );
        let (reply, stream) = run(&[&["SADD", "s", "1", "2"], &["SPOP", "s", "5"]]);
        assert!(reply.ends_with("*2\r\n$1\r\n1\r\n$1\r\n2\r\n"), "{reply}");
        assert!(
            stream.ends_with("*2\r\n$3\r\nDEL\r\n$1\r\ns\r\n"),
            "{stream}"
        );
        let (_, stream) = run(&[&["SPOP", "nokey", "5"], &["SPOP", "nokey"]]);
        assert_eq!(stream, "");
    }

    #[test]
    fn stores_propagate_only_changes() {
        let (_, stream) = run(&[&["SINTERSTORE", "d", "nokey"], &["SUNIONSTORE", "d", "x"]]);
        assert_eq!(stream, "");
        let (_, stream) = run(&[&["SADD", "a", "1"], &["SUNIONSTORE", "d", "a"]]);
        assert!(stream.contains("SUNIONSTORE"), "{stream}");
        let (_, stream) = run(&[
            &["SADD", "a", "1"],
            &["SADD", "a", "1"],
            &["SREM", "a", "2"],
        ]);
        assert_eq!(stream.matches("SADD").count(), 1, "{stream}");
        assert!(!stream.contains("SREM"), "{stream}");
    }
}
