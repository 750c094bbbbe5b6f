//! String commands: GET/SET and friends, counters, ranges and bits.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::keyspace::{SmallBytes, Value};
use crate::notify::class;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec("get", 2, READONLY | FAST, (1, 1, 1), "string", get),
    spec("set", -3, WRITE | DENYOOM, (1, 1, 1), "string", set),
    spec(
        "setnx",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        setnx,
    ),
    spec("setex", 4, WRITE | DENYOOM, (1, 1, 1), "string", setex),
    spec("psetex", 4, WRITE | DENYOOM, (1, 1, 1), "string", psetex),
    spec("mget", -2, READONLY | FAST, (1, -1, 1), "string", mget),
    spec("mset", -3, WRITE | DENYOOM, (1, -1, 2), "string", mset),
    spec("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), "string", msetnx),
    spec(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        getset,
    ),
    spec("getdel", 2, WRITE | FAST, (1, 1, 1), "string", getdel),
    spec("getex", -2, WRITE | FAST, (1, 1, 1), "string", getex),
    spec(
        "append",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        append,
    ),
    spec("strlen", 2, READONLY | FAST, (1, 1, 1), "string", strlen),
    spec("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", incr),
    spec("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", decr),
    spec(
        "incrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        incrby,
    ),
    spec(
        "decrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        decrby,
    ),
    spec(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        incrbyfloat,
    ),
    spec("getrange", 4, READONLY, (1, 1, 1), "string", getrange),
    spec("substr", 4, READONLY, (1, 1, 1), "string", getrange),
    spec(
        "setrange",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        "string",
        setrange,
    ),
    spec("setbit", 4, WRITE | DENYOOM, (1, 1, 1), "bitmap", setbit),
    spec("getbit", 3, READONLY | FAST, (1, 1, 1), "bitmap", getbit),
    spec("bitcount", -2, READONLY, (1, 1, 1), "bitmap", bitcount),
    spec("lcs", -3, READONLY, (1, 2, 1), "string", lcs),
];

/// Largest string a write may produce (`proto-max-bulk-len`).
fn check_size(ctx: &Ctx<'_>, len: u64) -> CmdResult {
    if len > ctx.srv.config.proto_max_bulk_len {
        return Err(CmdError::msg(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

fn get(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(i) = ctx.read(args.get(1)) else {
        ctx.reply.null();
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    match &db.entry(i).value {
        Value::Str(s) => reply.bulk(s),
        #[allow(unreachable_patterns)]
        _ => return Err(CmdError::WrongType),
    }
    Ok(())
}

/// An expiry decision: an absolute time, KEEPTTL, PERSIST, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    None,
    At(u64),
    KeepTtl,
    Persist,
}

/// The unit of an EX/PX/EXAT/PXAT option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Parses the value of EX/PX/EXAT/PXAT into an absolute time in ms, with Redis's checks:
/// positive, no overflow once converted to ms and made absolute.
fn expire_at(ctx: &Ctx<'_>, unit: ExpireUnit, value: &[u8], cmd: &str) -> Result<u64, CmdError> {
    let invalid = || CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"));
    let v = int_arg(value)?;
    if v <= 0 {
        return Err(invalid());
    }
    let ms = match unit {
        ExpireUnit::Ex | ExpireUnit::ExAt => v.checked_mul(1000).ok_or_else(invalid)?,
        ExpireUnit::Px | ExpireUnit::PxAt => v,
    };
    let abs = match unit {
        ExpireUnit::Ex | ExpireUnit::Px => ms.checked_add(ctx.now_ms as i64).ok_or_else(invalid)?,
        ExpireUnit::ExAt | ExpireUnit::PxAt => ms,
    };
    Ok(abs as u64)
}

/// The options of SET and GETEX, parsed as Redis's `parseExtendedStringArgumentsOrReply`
/// does: an option may repeat unless it conflicts with another one, the last expire value
/// wins, and that value is only parsed afterwards (so a syntax error is reported first).
#[derive(Default)]
struct StringOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpireUnit, &'a [u8])>,
}

fn string_options<'a>(
    args: Args<'a>,
    from: usize,
    is_set: bool,
) -> Result<StringOptions<'a>, CmdError> {
    let mut o = StringOptions::default();
    let mut i = from;
    while i < args.len() {
        let a = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        let unit = |u: ExpireUnit| o.expire.is_none_or(|(cur, _)| cur == u);
        let expire_unit = if eq(a, "ex") {
            Some(ExpireUnit::Ex)
        } else if eq(a, "px") {
            Some(ExpireUnit::Px)
        } else if eq(a, "exat") {
            Some(ExpireUnit::ExAt)
        } else if eq(a, "pxat") {
            Some(ExpireUnit::PxAt)
        } else {
            None
        };
        if eq(a, "nx") && !o.xx && is_set {
            o.nx = true;
        } else if eq(a, "xx") && !o.nx && is_set {
            o.xx = true;
        } else if eq(a, "get") && is_set {
            o.get = true;
        } else if eq(a, "keepttl") && !o.persist && o.expire.is_none() && is_set {
            o.keepttl = true;
        } else if eq(a, "persist") && !is_set && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let (Some(u), Some(v)) = (expire_unit, next)
            && !o.keepttl
            && !o.persist
            && unit(u)
        {
            o.expire = Some((u, v));
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// Stores a string with an expiry decision, propagating `SET k v PXAT <abs>` when a relative
/// or second-based expiry was given, as Redis 7.0 does. `value` is built by the caller:
/// [`SmallBytes::new`] where Redis tries the integer encoding, [`SmallBytes::verbatim`]
/// where it does not.
fn store(ctx: &mut Ctx<'_>, key: &[u8], value: SmallBytes, expiry: Expiry, had_pxat: bool) {
    store_as(ctx, "set", key, value, expiry, had_pxat);
}

/// [`store`] raising `event` (APPEND creating its key raises `append`, not `set`).
fn store_as(
    ctx: &mut Ctx<'_>,
    event: &'static str,
    key: &[u8],
    value: SmallBytes,
    expiry: Expiry,
    had_pxat: bool,
) {
    let rewrite = match expiry {
        Expiry::At(t) if !had_pxat => Some((t, value.as_bytes().to_vec())),
        _ => None,
    };
    let i = ctx.set(key, Value::Str(value), expiry == Expiry::KeepTtl);
    ctx.notify(class::STRING, event, key);
    if let Expiry::At(t) = expiry {
        ctx.db().set_expire(i, Some(t));
        ctx.notify(class::GENERIC, "expire", key);
    }
    if let Some((t, bytes)) = rewrite {
        ctx.rewrite(vec![vec![
            b"SET".to_vec(),
            key.to_vec(),
            bytes,
            b"PXAT".to_vec(),
            t.to_string().into_bytes(),
        ]]);
    }
    ctx.dirty(1);
}

fn set(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, value) = (args.get(1), args.get(2));
    let o = string_options(args, 3, true)?;
    let expiry = match o.expire {
        Some((u, v)) => Expiry::At(expire_at(ctx, u, v, "set")?),
        None if o.keepttl => Expiry::KeepTtl,
        None => Expiry::None,
    };
    let pxat = matches!(o.expire, Some((ExpireUnit::PxAt, _)));
    let old = if o.get {
        ctx.get_str(key)?.map(|s| s.as_bytes().to_vec())
    } else {
        None
    };
    let exists = if o.get {
        old.is_some()
    } else {
        ctx.find(key).is_some()
    };
    if (o.nx && exists) || (o.xx && !exists) {
        match old {
            Some(v) => ctx.reply.bulk(&v),
            None => ctx.reply.null(),
        }
        return Ok(());
    }
    store(ctx, key, SmallBytes::new(value), expiry, pxat);
    if o.get {
        match old {
            Some(v) => ctx.reply.bulk(&v),
            None => ctx.reply.null(),
        }
    } else {
        ctx.reply.ok();
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.find(args.get(1)).is_some() {
        ctx.reply.int(0);
    } else {
        store(
            ctx,
            args.get(1),
            SmallBytes::new(args.get(2)),
            Expiry::None,
            false,
        );
        ctx.reply.int(1);
    }
    Ok(())
}

fn setex_generic(ctx: &mut Ctx<'_>, args: Args<'_>, unit: ExpireUnit, name: &str) -> CmdResult {
    let t = expire_at(ctx, unit, args.get(2), name)?;
    store(
        ctx,
        args.get(1),
        SmallBytes::new(args.get(3)),
        Expiry::At(t),
        false,
    );
    ctx.reply.ok();
    Ok(())
}

fn setex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setex_generic(ctx, args, ExpireUnit::Ex, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setex_generic(ctx, args, ExpireUnit::Px, "psetex")
}

fn mget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ctx.reply.array(args.len() - 1);
    for key in args.iter().skip(1) {
        let slot = ctx.read(key);
        let (db, reply) = ctx.db_and_reply();
        match slot.map(|i| &db.entry(i).value) {
            Some(Value::Str(s)) => reply.bulk(s),
            #[allow(unreachable_patterns)]
            _ => reply.null(),
        }
    }
    Ok(())
}

fn mset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error("mset"));
    }
    for i in (1..args.len()).step_by(2) {
        store(
            ctx,
            args.get(i),
            SmallBytes::new(args.get(i + 1)),
            Expiry::None,
            false,
        );
    }
    ctx.reply.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error("msetnx"));
    }
    if (1..args.len())
        .step_by(2)
        .any(|i| ctx.find(args.get(i)).is_some())
    {
        ctx.reply.int(0);
        return Ok(());
    }
    for i in (1..args.len()).step_by(2) {
        store(
            ctx,
            args.get(i),
            SmallBytes::new(args.get(i + 1)),
            Expiry::None,
            false,
        );
    }
    ctx.reply.int(1);
    Ok(())
}

fn getset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let old = ctx.get_str(args.get(1))?.map(|s| s.as_bytes().to_vec());
    store(
        ctx,
        args.get(1),
        SmallBytes::new(args.get(2)),
        Expiry::None,
        false,
    );
    match old {
        Some(v) => ctx.reply.bulk(&v),
        None => ctx.reply.null(),
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(v) = ctx.get_str(args.get(1))?.map(|s| s.as_bytes().to_vec()) else {
        ctx.reply.null();
        return Ok(());
    };
    ctx.delete(args.get(1));
    ctx.dirty(1);
    ctx.rewrite(vec![vec![b"DEL".to_vec(), args.get(1).to_vec()]]);
    ctx.notify(class::GENERIC, "del", args.get(1));
    ctx.reply.bulk(&v);
    Ok(())
}

fn getex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let o = string_options(args, 2, false)?;
    let Some(v) = ctx.get_str(key)?.map(|s| s.as_bytes().to_vec()) else {
        ctx.reply.null();
        return Ok(());
    };
    let expiry = match o.expire {
        Some((u, value)) => Expiry::At(expire_at(ctx, u, value, "getex")?),
        None if o.persist => Expiry::Persist,
        None => Expiry::None,
    };
    let Some(slot) = ctx.find(key) else {
        return Err(CmdError::NoSuchKey);
    };
    let absolute = matches!(o.expire, Some((ExpireUnit::ExAt | ExpireUnit::PxAt, _)));
    match expiry {
        Expiry::At(t) if absolute && t <= ctx.now_ms => {
            ctx.delete(key);
            ctx.dirty(1);
            let del: &[u8] = if ctx.srv.config.lazyfree_lazy_expire {
                b"UNLINK"
            } else {
                b"DEL"
            };
            ctx.rewrite(vec![vec![del.to_vec(), key.to_vec()]]);
            ctx.notify(class::GENERIC, "del", key);
        }
        Expiry::At(t) => {
            ctx.db().set_expire(slot, Some(t));
            ctx.dirty(1);
            ctx.rewrite(vec![vec![
                b"PEXPIREAT".to_vec(),
                key.to_vec(),
                t.to_string().into_bytes(),
            ]]);
            ctx.notify(class::GENERIC, "expire", key);
        }
        Expiry::Persist if ctx.db().entry(slot).expire_at().is_some() => {
            ctx.db().set_expire(slot, None);
            ctx.dirty(1);
            ctx.rewrite(vec![vec![b"PERSIST".to_vec(), key.to_vec()]]);
            ctx.notify(class::GENERIC, "persist", key);
        }
        _ => {}
    }
    ctx.reply.bulk(&v);
    Ok(())
}

fn append(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, tail) = (args.get(1), args.get(2));
    let cur = ctx.get_str_for_write(key)?.map(|s| s.as_bytes().to_vec());
    let new_len = match cur {
        None => {
            store_as(
                ctx,
                "append",
                key,
                SmallBytes::new(tail),
                Expiry::KeepTtl,
                false,
            );
            tail.len()
        }
        Some(mut v) => {
            check_size(ctx, (v.len() + tail.len()) as u64)?;
            v.extend_from_slice(tail);
            let len = v.len();
            if let Some(e) = ctx.entry_mut(key) {
                e.value = Value::Str(SmallBytes::raw(v));
            }
            ctx.dirty(1);
            ctx.notify(class::STRING, "append", key);
            len
        }
    };
    ctx.reply.int(new_len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = ctx.get_str(args.get(1))?.map_or(0, |s| s.len());
    ctx.reply.int(n as i64);
    Ok(())
}

/// INCRBY core: the stored value must be a canonical 64-bit integer.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let cur = match ctx.get_str_for_write(key)? {
        None => 0,
        Some(s) => crate::protocol::parse_i64(s).ok_or(CmdError::NotInteger)?,
    };
    let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    let value = Value::Str(SmallBytes::from_i64(new));
    match ctx.entry_mut(key) {
        Some(e) => e.value = value,
        None => {
            ctx.set(key, value, false);
        }
    }
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrby", key);
    ctx.reply.int(new);
    Ok(())
}

fn incr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), 1)
}

fn decr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), int_arg(args.get(2))?)
}

fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let by = int_arg(args.get(2))?;
    let by = by
        .checked_neg()
        .ok_or_else(|| CmdError::msg("ERR decrement would overflow"))?;
    incr_by(ctx, args.get(1), by)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    // Redis checks the stored value first, then the increment; both in long double.
    let cur = match ctx.get_str_for_write(key)? {
        Some(s) => crate::longdouble::parse(s).ok_or(CmdError::NotFloat)?,
        None => crate::longdouble::LongDouble::ZERO,
    };
    let by = crate::longdouble::parse(args.get(2)).ok_or(CmdError::NotFloat)?;
    let new = cur + by;
    if !new.is_finite() {
        return Err(CmdError::msg("ERR increment would produce NaN or Infinity"));
    }
    let text = new.to_human_string();
    // Redis stores the result without trying the integer encoding.
    let value = Value::Str(SmallBytes::verbatim(text.as_bytes()));
    match ctx.entry_mut(key) {
        Some(e) => e.value = value,
        None => {
            ctx.set(key, value, false);
        }
    }
    ctx.dirty(1);
    ctx.notify(class::STRING, "incrbyfloat", key);
    ctx.rewrite(vec![vec![
        b"SET".to_vec(),
        key.to_vec(),
        text.clone().into_bytes(),
        b"KEEPTTL".to_vec(),
    ]]);
    ctx.reply.bulk(text.as_bytes());
    Ok(())
}

/// GETRANGE's and BITCOUNT's index rules (not LRANGE's): negative indices count from the
/// end, both ends clamp into the string, and a negative start past a negative end is empty.
fn string_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let from_end = |i: i64| if i < 0 { len.saturating_add(i) } else { i };
    let s = from_end(start).max(0);
    let e = from_end(end).max(0).min(len - 1);
    (len > 0 && s <= e).then_some((s as usize, e as usize))
}

fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let end = int_arg(args.get(3))?;
    let v = ctx
        .get_str(args.get(1))?
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default();
    match string_range(start, end, v.len()) {
        Some((s, e)) => ctx.reply.bulk(&v[s..=e]),
        None => ctx.reply.bulk(b""),
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let offset = int_arg(args.get(2))?;
    if offset < 0 {
        return Err(CmdError::msg("ERR offset is out of range"));
    }
    let patch = args.get(3);
    let cur = ctx.get_str_for_write(key)?.map(|s| s.as_bytes().to_vec());
    if patch.is_empty() {
        ctx.reply.int(cur.map_or(0, |v| v.len()) as i64);
        return Ok(());
    }
    check_size(ctx, offset as u64 + patch.len() as u64)?;
    let offset = offset as usize;
    let mut v = cur.unwrap_or_default();
    if v.len() < offset + patch.len() {
        v.resize(offset + patch.len(), 0);
    }
    v[offset..offset + patch.len()].copy_from_slice(patch);
    let len = v.len();
    put_raw(ctx, key, v);
    ctx.dirty(1);
    ctx.notify(class::STRING, "setrange", key);
    ctx.reply.int(len as i64);
    Ok(())
}

/// Stores edited string bytes at `key`: an existing key keeps its expiry and access data
/// (Redis edits the value in place), a new one is created.
pub(super) fn put_raw(ctx: &mut Ctx<'_>, key: &[u8], v: Vec<u8>) {
    match ctx.entry_mut(key) {
        Some(e) => e.value = Value::Str(SmallBytes::raw(v)),
        None => {
            ctx.set(key, Value::Str(SmallBytes::raw(v)), false);
        }
    }
}

fn bit_offset(a: &[u8]) -> Result<u64, CmdError> {
    let err = || CmdError::msg("ERR bit offset is not an integer or out of range");
    let v = crate::protocol::parse_i64(a).ok_or_else(err)?;
    if v < 0 || (v as u64) >> 3 >= 512 * 1024 * 1024 {
        return Err(err());
    }
    Ok(v as u64)
}

fn setbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let offset = bit_offset(args.get(2))?;
    let on = match args.get(3) {
        b"1" => true,
        b"0" => false,
        _ => return Err(CmdError::msg("ERR bit is not an integer or out of range")),
    };
    let byte = (offset >> 3) as usize;
    check_size(ctx, byte as u64 + 1)?;
    let cur = ctx.get_str_for_write(key)?.map(|s| s.as_bytes().to_vec());
    let exists = cur.is_some();
    let mut v = cur.unwrap_or_default();
    let grown = v.len() <= byte;
    if grown {
        v.resize(byte + 1, 0);
    }
    let mask = 1u8 << (7 - (offset & 7));
    let old = v[byte] & mask != 0;
    // Redis writes (and counts a change, propagates, notifies) only when the key is new,
    // grew, or the bit flips.
    if !exists || grown || old != on {
        if on {
            v[byte] |= mask;
        } else {
            v[byte] &= !mask;
        }
        put_raw(ctx, key, v);
        ctx.dirty(1);
        ctx.notify(class::STRING, "setbit", key);
    }
    ctx.reply.int(i64::from(old));
    Ok(())
}

fn getbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = bit_offset(args.get(2))?;
    let bit = ctx
        .get_str(args.get(1))?
        .and_then(|s| s.get((offset >> 3) as usize).copied())
        .map_or(0, |b| (b >> (7 - (offset & 7))) & 1);
    ctx.reply.int(i64::from(bit));
    Ok(())
}

fn bitcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis looks the key up first: a missing key counts 0 whatever the other arguments.
    let Some(v) = ctx.get_str(args.get(1))?.map(|s| s.as_bytes().to_vec()) else {
        ctx.reply.int(0);
        return Ok(());
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let start = int_arg(args.get(2))?;
            let end = int_arg(args.get(3))?;
            // Redis answers this case before it looks at the unit argument.
            if start < 0 && end < 0 && start > end {
                ctx.reply.int(0);
                return Ok(());
            }
            let bits = match args.len() {
                5 if eq(args.get(4), "bit") => true,
                5 if eq(args.get(4), "byte") => false,
                5 => return Err(CmdError::Syntax),
                _ => false,
            };
            Some((start, end, bits))
        }
        _ => return Err(CmdError::Syntax),
    };
    let count = match range {
        None => v.iter().map(|b| b.count_ones() as i64).sum(),
        Some((start, end, false)) => match string_range(start, end, v.len()) {
            Some((s, e)) => v[s..=e].iter().map(|b| b.count_ones() as i64).sum(),
            None => 0,
        },
        Some((start, end, true)) => match string_range(start, end, v.len() * 8) {
            Some((s, e)) => (s..=e)
                .filter(|&i| v[i >> 3] & (1 << (7 - (i & 7))) != 0)
                .count() as i64,
            None => 0,
        },
    };
    ctx.reply.int(count);
    Ok(())
}

/// LCS's operand: a missing key is the empty string; another type is refused with LCS's
/// own message.
fn lcs_operand(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Vec<u8>, CmdError> {
    match ctx.get_str(key) {
        Ok(v) => Ok(v.map(|s| s.as_bytes().to_vec()).unwrap_or_default()),
        Err(CmdError::WrongType) => Err(CmdError::msg(
            "ERR The specified keys must contain string values",
        )),
        Err(e) => Err(e),
    }
}

/// LCS a b [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], a port of Redis 7.0's dynamic
/// programming and of its walk back through the table, so ties resolve and ranges split
/// exactly as Redis's do.
fn lcs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let a = lcs_operand(ctx, args.get(1))?;
    let b = lcs_operand(ctx, args.get(2))?;
    let (mut get_len, mut get_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        if eq(opt, "idx") {
            get_idx = true;
        } else if eq(opt, "len") {
            get_len = true;
        } else if eq(opt, "withmatchlen") {
            with_match_len = true;
        } else if eq(opt, "minmatchlen") && j + 1 < args.len() {
            min_match_len = int_arg(args.get(j + 1))?.max(0);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if get_idx && get_len {
        return Err(CmdError::msg(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > ctx.srv.config.proto_max_bulk_len {
        return Err(CmdError::msg(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for k in 1..=blen {
            table[i * width + k] = if a[i - 1] == b[k - 1] {
                table[(i - 1) * width + k - 1] + 1
            } else {
                table[(i - 1) * width + k].max(table[i * width + k - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut ranges: Vec<(usize, usize, usize, usize)> = Vec::new();
    // `arange_start == alen` means no range is open, as in Redis.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let (mut i, mut k) = (alen, blen);
    let compute = get_idx || !get_len;
    while compute && i > 0 && k > 0 {
        let mut emit = false;
        if a[i - 1] == b[k - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, k - 1, k - 1);
            } else if a_start == i && b_start == k {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            k -= 1;
        } else {
            if table[(i - 1) * width + k] > table[i * width + k - 1] {
                i -= 1;
            } else {
                k -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end.wrapping_sub(a_start).wrapping_add(1);
            if min_match_len == 0 || match_len as i64 >= min_match_len {
                ranges.push((a_start, a_end, b_start, b_end));
            }
            a_start = alen;
        }
    }
    if get_idx {
        ctx.reply.map(2);
        ctx.reply.bulk(b"matches");
        ctx.reply.array(ranges.len());
        for (a0, a1, b0, b1) in ranges {
            ctx.reply.array(if with_match_len { 3 } else { 2 });
            ctx.reply.array(2);
            ctx.reply.int(a0 as i64);
            ctx.reply.int(a1 as i64);
            ctx.reply.array(2);
            ctx.reply.int(b0 as i64);
            ctx.reply.int(b1 as i64);
            if with_match_len {
                ctx.reply.int(a1.wrapping_sub(a0).wrapping_add(1) as i64);
            }
        }
        ctx.reply.bulk(b"len");
        ctx.reply.int(i64::from(total));
    } else if get_len {
        ctx.reply.int(i64::from(total));
    } else {
        ctx.reply.bulk(&result);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::string_range;

    #[test]
    fn getrange_index_rules() {
        assert_eq!(string_range(0, -100, 11), Some((0, 0)));
        assert_eq!(string_range(-1, -5, 11), None);
        assert_eq!(string_range(-100, 100, 11), Some((0, 10)));
        assert_eq!(string_range(0, -1, 0), None);
        assert_eq!(string_range(i64::MIN, -1, 3), Some((0, 2)));
    }
}
