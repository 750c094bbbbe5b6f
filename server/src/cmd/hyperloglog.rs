//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE and the PFDEBUG / PFSELFTEST tools, on
//! string values in Redis's format (`crate::hyperloglog`).
//!
//! As in Redis, every command that edits a HyperLogLog leaves it a raw string (Redis
//! unshares the value first), and PFCOUNT of one key writes the cardinality it computed
//! into the header: a read that changes the value, so it is propagated like a write.

use super::{CmdError, CmdResult, Ctx, Propagate, Spec, flags::*, spec};
use crate::hyperloglog::{self as hll, Corrupt, REGISTERS};
use crate::keyspace::{SmallBytes, Value};
use crate::notify::class;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hyperloglog",
        pfadd,
    ),
    spec(
        "pfcount",
        -2,
        READONLY | MAY_REPLICATE,
        (1, -1, 1),
        "hyperloglog",
        pfcount,
    ),
    spec(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        (1, -1, 1),
        "hyperloglog",
        pfmerge,
    ),
    spec(
        "pfdebug",
        3,
        WRITE | DENYOOM | ADMIN,
        (2, 2, 1),
        "hyperloglog",
        pfdebug,
    ),
    spec("pfselftest", 1, ADMIN, (0, 0, 0), "hyperloglog", pfselftest),
];

impl From<Corrupt> for CmdError {
    fn from(_: Corrupt) -> Self {
        CmdError::msg("INVALIDOBJ Corrupted HLL object detected")
    }
}

/// The HyperLogLog a value holds, or Redis's refusal of it.
fn bytes_of(value: &Value) -> Result<&[u8], CmdError> {
    match value {
        Value::Str(s) if hll::is_valid(s) => Ok(s),
        Value::Str(_) => Err(CmdError::msg(
            "WRONGTYPE Key is not a valid HyperLogLog string value.",
        )),
        _ => Err(CmdError::WrongType),
    }
}

/// The HyperLogLog at slot `i`, validated.
fn check(ctx: &mut Ctx<'_>, i: u32) -> CmdResult {
    bytes_of(&ctx.db().entry(i).value).map(|_| ())
}

/// Edits the (validated) HyperLogLog at slot `i` in place; it stays a raw string whatever
/// `f` returns, as Redis edits its unshared string.
fn edit<T>(
    ctx: &mut Ctx<'_>,
    i: u32,
    f: impl FnOnce(&mut Vec<u8>) -> Result<T, CmdError>,
) -> Result<T, CmdError> {
    match &mut ctx.db().entry_mut(i).value {
        Value::Str(s) => {
            let mut v = std::mem::take(s).into_vec();
            let r = f(&mut v);
            *s = SmallBytes::raw(v);
            r
        }
        _ => Err(CmdError::WrongType),
    }
}

fn sparse_max(ctx: &Ctx<'_>) -> usize {
    usize::try_from(ctx.srv.config.hll_sparse_max_bytes).unwrap_or(usize::MAX)
}

fn pfadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let max = sparse_max(ctx);
    let elements = args.iter().skip(2);
    let updated = match ctx.find_for_write(key) {
        None => {
            let mut v = hll::new_sparse();
            let added = hll::add(&mut v, elements, max)?;
            hll::invalidate(&mut v);
            ctx.set(key, Value::Str(SmallBytes::raw(v)), false);
            1 + added
        }
        Some(i) => {
            check(ctx, i)?;
            edit(ctx, i, |v| {
                let added = hll::add(v, elements, max)?;
                if added > 0 {
                    hll::invalidate(v);
                }
                Ok(added)
            })?
        }
    };
    ctx.dirty(updated);
    if updated > 0 {
        ctx.notify(class::STRING, "pfadd", key);
    }
    ctx.reply.int(i64::from(updated > 0));
    Ok(())
}

fn pfcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        // The union, without touching the values.
        let mut max = [0u8; REGISTERS];
        for key in args.iter().skip(1) {
            let Some(i) = ctx.read(key) else {
                continue;
            };
            hll::merge_into(&mut max, bytes_of(&ctx.db().entry(i).value)?)?;
        }
        ctx.reply.int(hll::count_registers(&max) as i64);
        return Ok(());
    }
    let Some(i) = ctx.read(args.get(1)) else {
        ctx.reply.int(0);
        return Ok(());
    };
    check(ctx, i)?;
    let (card, computed) = edit(ctx, i, |v| match hll::cached(v) {
        Some(card) => Ok((card, false)),
        None => {
            let card = hll::count(v)?;
            hll::set_cached(v, card);
            Ok((card, true))
        }
    })?;
    if computed {
        // Redis counts the cache write as a change and propagates the PFCOUNT, although
        // the command is not flagged as a write.
        ctx.dirty(1);
        ctx.propagate = Propagate::Always;
    }
    ctx.reply.int(card as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut max = [0u8; REGISTERS];
    let mut dense = false;
    for key in args.iter().skip(1) {
        let Some(i) = ctx.read(key) else {
            continue;
        };
        let v = bytes_of(&ctx.db().entry(i).value)?;
        dense |= hll::is_dense(v);
        hll::merge_into(&mut max, v)?;
    }
    let dest = args.get(1);
    let sparse_max = sparse_max(ctx);
    let i = match ctx.find_for_write(dest) {
        Some(i) => i,
        None => ctx.set(dest, Value::Str(SmallBytes::raw(hll::new_sparse())), false),
    };
    edit(ctx, i, |v| {
        if dense {
            hll::to_dense(v)?;
        }
        hll::raise_all(v, &max, sparse_max);
        Ok(())
    })?;
    ctx.dirty(1);
    ctx.notify(class::STRING, "pfadd", dest);
    ctx.reply.ok();
    Ok(())
}

fn pfdebug(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (sub, key) = (args.get(1), args.get(2));
    let Some(i) = ctx.find_for_write(key) else {
        return Err(CmdError::msg("ERR The specified key does not exist"));
    };
    check(ctx, i)?;
    let sub_is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let converted = if sub_is("getreg") || sub_is("todense") {
        edit(ctx, i, |v| Ok(hll::to_dense(v)?))?
    } else {
        // Whatever the subcommand, Redis has unshared the value (it is raw from now on).
        edit(ctx, i, |_| Ok(false))?
    };
    if converted {
        // Counted as a change so that replicas convert too.
        ctx.dirty(1);
    }
    let v = bytes_of(&ctx.db().entry(i).value)?;
    if sub_is("getreg") {
        let regs = hll::registers(v);
        ctx.reply.array(regs.len());
        regs.iter().for_each(|&r| ctx.reply.int(i64::from(r)));
    } else if sub_is("todense") {
        ctx.reply.int(i64::from(converted));
    } else if sub_is("decode") {
        if hll::is_dense(v) {
            return Err(CmdError::msg("ERR HLL encoding is not sparse"));
        }
        let text = hll::decode(v);
        ctx.reply.bulk(text.as_bytes());
    } else if sub_is("encoding") {
        let name = if hll::is_dense(v) { "dense" } else { "sparse" };
        ctx.reply.simple(name);
    } else {
        return Err(CmdError::msg(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

fn pfselftest(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let mut rng = ctx.rng();
    let max = sparse_max(ctx);
    hll::self_test(|| rand::Rng::random(&mut rng), max)
        .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    ctx.reply.ok();
    Ok(())
}
