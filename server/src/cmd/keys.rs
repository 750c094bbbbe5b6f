//! Generic key commands: deletion, expiry, renaming, iteration, databases.

use super::args::{parse_cursor, scan_options, scan_reply_head};
use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, int_arg, spec};
use crate::keyspace::{Entry, SmallBytes};
use crate::notify::class;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec("del", -2, WRITE, (1, -1, 1), "generic", del),
    spec("unlink", -2, WRITE | FAST, (1, -1, 1), "generic", del),
    spec("exists", -2, READONLY | FAST, (1, -1, 1), "generic", exists),
    spec("touch", -2, READONLY | FAST, (1, -1, 1), "generic", touch),
    spec("expire", -3, WRITE | FAST, (1, 1, 1), "generic", expire),
    spec("pexpire", -3, WRITE | FAST, (1, 1, 1), "generic", pexpire),
    spec("expireat", -3, WRITE | FAST, (1, 1, 1), "generic", expireat),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        "generic",
        pexpireat,
    ),
    spec("ttl", 2, READONLY | FAST, (1, 1, 1), "generic", ttl),
    spec("pttl", 2, READONLY | FAST, (1, 1, 1), "generic", pttl),
    spec(
        "expiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        "generic",
        expiretime,
    ),
    spec(
        "pexpiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        "generic",
        pexpiretime,
    ),
    spec("persist", 2, WRITE | FAST, (1, 1, 1), "generic", persist),
    spec("type", 2, READONLY | FAST, (1, 1, 1), "generic", type_),
    spec("rename", 3, WRITE, (1, 2, 1), "generic", rename),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), "generic", renamenx),
    spec("keys", 2, READONLY, (0, 0, 0), "generic", keys),
    spec("scan", -2, READONLY, (0, 0, 0), "generic", scan),
    spec("randomkey", 1, READONLY, (0, 0, 0), "generic", randomkey),
    spec("dbsize", 1, READONLY | FAST, (0, 0, 0), "server", dbsize),
    spec("swapdb", 3, WRITE | FAST, (0, 0, 0), "server", swapdb),
    spec("move", 3, WRITE | FAST, (1, 1, 1), "generic", move_),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), "generic", copy),
    spec("flushdb", -1, WRITE, (0, 0, 0), "server", flushdb),
    spec("flushall", -1, WRITE, (0, 0, 0), "server", flushall),
    container(
        "object",
        -2,
        READONLY,
        "generic",
        object,
        &[
            ("help", "object|help", 2),
            ("encoding", "object|encoding", 3),
            ("freq", "object|freq", 3),
            ("idletime", "object|idletime", 3),
            ("refcount", "object|refcount", 3),
        ],
    ),
];

fn del(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.delete(key) {
            n += 1;
            ctx.srv.touch_key(ctx.client.db, key);
            ctx.notify(class::GENERIC, "del", key);
        }
    }
    // Only the deleted keys changed: a missing one stays untouched for WATCH and tracking.
    ctx.touched = Some(Vec::new());
    ctx.dirty(n);
    ctx.reply.int(n as i64);
    Ok(())
}

/// EXISTS counts the keys present without refreshing their access clocks.
fn exists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_present(ctx, args, |c, k| c.read_untouched(k))
}

/// TOUCH counts them as EXISTS does, and refreshes their access clocks (LRU time, LFU
/// counter) as any read does.
fn touch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_present(ctx, args, |c, k| c.read(k))
}

fn count_present(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    lookup: fn(&mut Ctx<'_>, &[u8]) -> Option<u32>,
) -> CmdResult {
    let n = args
        .iter()
        .skip(1)
        .filter(|k| lookup(ctx, k).is_some())
        .count();
    ctx.reply.int(n as i64);
    Ok(())
}

/// EXPIRE's NX/XX/GT/LT flags.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn expire_flags(args: Args<'_>) -> Result<ExpireFlags, CmdError> {
    let mut f = ExpireFlags::default();
    for a in args.iter().skip(3) {
        if eq(a, "nx") {
            f.nx = true;
        } else if eq(a, "xx") {
            f.xx = true;
        } else if eq(a, "gt") {
            f.gt = true;
        } else if eq(a, "lt") {
            f.lt = true;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(CmdError::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(CmdError::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE family core. `unit_ms` converts the argument to ms; `relative` adds now.
fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    unit_ms: i64,
    relative: bool,
    name: &str,
) -> CmdResult {
    let key = args.get(1);
    let flags = expire_flags(args)?;
    let v = int_arg(args.get(2))?;
    let invalid = || CmdError::msg(format!("ERR invalid expire time in '{name}' command"));
    let mut when = v.checked_mul(unit_ms).ok_or_else(invalid)?;
    if relative {
        when = when.checked_add(ctx.now_ms as i64).ok_or_else(invalid)?;
    }
    let Some(slot) = ctx.find_for_write(key) else {
        ctx.reply.int(0);
        return Ok(());
    };
    let current = ctx.db().entry(slot).expire_at();
    let allowed = match current {
        None => !flags.xx && !flags.gt,
        Some(cur) => {
            !(flags.nx || (flags.gt && when <= cur as i64) || (flags.lt && when >= cur as i64))
        }
    };
    if !allowed {
        ctx.reply.int(0);
        return Ok(());
    }
    if when <= ctx.now_ms as i64 {
        ctx.delete(key);
        let del: &[u8] = if ctx.srv.config.lazyfree_lazy_expire {
            b"UNLINK"
        } else {
            b"DEL"
        };
        ctx.rewrite(vec![vec![del.to_vec(), key.to_vec()]]);
        ctx.notify(class::GENERIC, "del", key);
    } else {
        ctx.db().set_expire(slot, Some(when as u64));
        ctx.rewrite(vec![vec![
            b"PEXPIREAT".to_vec(),
            key.to_vec(),
            when.to_string().into_bytes(),
        ]]);
        ctx.notify(class::GENERIC, "expire", key);
    }
    ctx.dirty(1);
    ctx.reply.int(1);
    Ok(())
}

fn expire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, 1000, true, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, 1, true, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, 1000, false, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = expire_generic(ctx, args, 1, false, "pexpireat");
    // PEXPIREAT is already in its propagated form (unless it deleted the key).
    if matches!(&ctx.propagate, super::Propagate::Rewrite(c) if c[0][0] == b"PEXPIREAT") {
        ctx.propagate = super::Propagate::Verbatim;
    }
    r
}

/// TTL family: -2 for a missing key, -1 without expiry.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], f: impl Fn(u64, u64) -> i64) -> CmdResult {
    let r = match ctx.read_untouched(key) {
        None => -2,
        Some(i) => ctx
            .db()
            .entry(i)
            .expire_at()
            .map_or(-1, |t| f(t, ctx.now_ms)),
    };
    ctx.reply.int(r);
    Ok(())
}

fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args.get(1), |t, now| {
        ((t.saturating_sub(now) + 500) / 1000) as i64
    })
}

fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args.get(1), |t, now| t.saturating_sub(now) as i64)
}

fn expiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args.get(1), |t, _| {
        (t.saturating_add(500) / 1000) as i64
    })
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args.get(1), |t, _| t as i64)
}

fn persist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let changed = match ctx.find_for_write(args.get(1)) {
        Some(i) if ctx.db().entry(i).expire_at().is_some() => {
            ctx.db().set_expire(i, None);
            ctx.dirty(1);
            ctx.notify(class::GENERIC, "persist", args.get(1));
            1
        }
        _ => 0,
    };
    ctx.reply.int(changed);
    Ok(())
}

fn type_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let t = match ctx.read_untouched(args.get(1)) {
        Some(i) => ctx.db().entry(i).value.type_name(),
        None => "none",
    };
    ctx.reply.simple(t);
    Ok(())
}

/// Moves `src` to `dst` keeping its expiry. Returns false when `nx` and `dst` exists.
fn rename_generic(ctx: &mut Ctx<'_>, args: Args<'_>, nx: bool) -> Result<bool, CmdError> {
    let (src, dst) = (args.get(1), args.get(2));
    let Some(i) = ctx.find(src) else {
        return Err(CmdError::NoSuchKey);
    };
    if src == dst {
        return Ok(!nx);
    }
    if ctx.find(dst).is_some() {
        if nx {
            return Ok(false);
        }
        ctx.delete(dst);
    }
    let mut e = ctx.db().remove_at(i);
    let expire = e.expire_at();
    e.key = SmallBytes::new(dst);
    let mut fresh = Entry::new(e.key, e.value);
    fresh.access = e.access;
    ctx.notify(class::NEW, "new", dst);
    let j = ctx.db().insert(fresh);
    ctx.db().set_expire(j, expire);
    ctx.dirty(1);
    ctx.notify(class::GENERIC, "rename_from", src);
    ctx.notify(class::GENERIC, "rename_to", dst);
    Ok(true)
}

fn rename(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rename_generic(ctx, args, false)?;
    ctx.reply.ok();
    Ok(())
}

fn renamenx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let done = rename_generic(ctx, args, true)?;
    ctx.reply.int(i64::from(done));
    Ok(())
}

fn keys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let pattern = args.get(1);
    let now = ctx.now_ms;
    let all = pattern == b"*";
    let found: Vec<SmallBytes> = ctx
        .db()
        .iter()
        .filter(|(_, e)| {
            !e.is_expired(now) && (all || crate::glob::matches(pattern, &e.key, false))
        })
        .map(|(_, e)| e.key.clone())
        .collect();
    ctx.reply.array(found.len());
    for k in found {
        ctx.reply.bulk(&k);
    }
    Ok(())
}

fn scan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(1))?;
    let o = scan_options(args, 2, true)?;
    let now = ctx.now_ms;
    let db = ctx.db();
    let bound = u64::from(db.slot_bound());
    let mut found = Vec::new();
    let mut i = cursor;
    // The cursor is a slab index: entries never move, so every key present for the whole
    // iteration is returned exactly once, whatever happens in between.
    let mut visited = 0;
    while i < bound && visited < o.count {
        if let Some(e) = db.entry_at(i as u32) {
            visited += 1;
            let keep = !e.is_expired(now)
                && o.pattern
                    .is_none_or(|p| crate::glob::matches(p, &e.key, false))
                && o.type_name
                    .as_deref()
                    .is_none_or(|t| t == e.value.type_name());
            if keep {
                found.push(e.key.clone());
            }
        }
        i += 1;
    }
    let next = if i >= bound { 0 } else { i };
    scan_reply_head(&mut ctx.reply, next, found.len());
    for k in found {
        ctx.reply.bulk(&k);
    }
    Ok(())
}

fn randomkey(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let _ = args;
    for _ in 0..100 {
        let db = ctx.client.db;
        let Some(i) = ctx.srv.keyspace.db(db).random_slot(&mut ctx.srv.rng) else {
            break;
        };
        let key = ctx.db().entry(i).key.clone();
        if ctx.find(&key).is_some() {
            ctx.reply.bulk(&key);
            return Ok(());
        }
    }
    ctx.reply.null();
    Ok(())
}

fn dbsize(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.db().len();
    ctx.reply.int(n as i64);
    Ok(())
}

/// Parses a database index argument.
pub fn db_index(ctx: &Ctx<'_>, a: &[u8]) -> Result<usize, CmdError> {
    let n = int_arg(a)?;
    if n < 0 || n as usize >= ctx.srv.keyspace.num_dbs() {
        return Err(CmdError::DbIndex);
    }
    Ok(n as usize)
}

fn swapdb(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let a = int_arg(args.get(1)).map_err(|_| CmdError::msg("ERR invalid first DB index"))?;
    let b = int_arg(args.get(2)).map_err(|_| CmdError::msg("ERR invalid second DB index"))?;
    let n = ctx.srv.keyspace.num_dbs() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(CmdError::DbIndex);
    }
    ctx.srv.touch_swapped_watched(a as usize, b as usize);
    ctx.srv.keyspace.swap(a as usize, b as usize);
    ctx.dirty(1);
    ctx.reply.ok();
    Ok(())
}

fn move_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let dst = db_index(ctx, args.get(2)).map_err(|e| {
        if e == CmdError::DbIndex {
            CmdError::msg("ERR DB index is out of range")
        } else {
            e
        }
    })?;
    if dst == ctx.client.db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    let Some(i) = ctx.find(key) else {
        ctx.reply.int(0);
        return Ok(());
    };
    if ctx.srv.find_live(dst, key, ctx.now_ms).is_some() {
        ctx.reply.int(0);
        return Ok(());
    }
    let e = ctx.db().remove_at(i);
    let expire = e.expire_at();
    ctx.srv.notify(class::NEW, "new", dst, key);
    let j = ctx
        .srv
        .keyspace
        .db_mut(dst)
        .insert(Entry::new(e.key, e.value));
    ctx.srv.keyspace.db_mut(dst).set_expire(j, expire);
    ctx.srv.touch_key(dst, key);
    ctx.notify(class::GENERIC, "move_from", key);
    ctx.srv.notify(class::GENERIC, "move_to", dst, key);
    ctx.dirty(1);
    ctx.reply.int(1);
    Ok(())
}

fn copy(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (src, dst) = (args.get(1), args.get(2));
    let mut dst_db = ctx.client.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq(args.get(i), "replace") {
            replace = true;
        } else if eq(args.get(i), "db") && i + 1 < args.len() {
            dst_db = db_index(ctx, args.get(i + 1))?;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if src == dst && dst_db == ctx.client.db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    let Some(si) = ctx.read(src) else {
        ctx.reply.int(0);
        return Ok(());
    };
    let (value, expire) = {
        let e = ctx.db().entry(si);
        (e.value.clone(), e.expire_at())
    };
    let now = ctx.now_ms;
    if let Some(di) = ctx.srv.find_live(dst_db, dst, now) {
        if !replace {
            ctx.reply.int(0);
            return Ok(());
        }
        ctx.srv.keyspace.db_mut(dst_db).remove_at(di);
    }
    ctx.srv.notify(class::NEW, "new", dst_db, dst);
    let d = ctx.srv.keyspace.db_mut(dst_db);
    let j = d.insert(Entry::new(SmallBytes::new(dst), value));
    d.set_expire(j, expire);
    // The destination may be in another database, and the source is only read.
    ctx.srv.touch_key(dst_db, dst);
    ctx.srv.notify(class::GENERIC, "copy_to", dst_db, dst);
    ctx.touched = Some(Vec::new());
    ctx.dirty(1);
    ctx.reply.int(1);
    Ok(())
}

/// FLUSHDB / FLUSHALL take an optional ASYNC or SYNC.
fn flush_mode(args: Args<'_>) -> CmdResult {
    match args.len() {
        1 => Ok(()),
        2 if eq(args.get(1), "async") || eq(args.get(1), "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

fn flushdb(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    flush_mode(args)?;
    let n = ctx.db().len() as u64;
    ctx.srv.touch_all_watched(Some(ctx.client.db));
    ctx.db().clear();
    ctx.dirty(n.max(1));
    ctx.reply.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    flush_mode(args)?;
    let n = ctx.srv.keyspace.total_keys() as u64;
    ctx.srv.touch_all_watched(None);
    ctx.srv.keyspace.flush_all();
    ctx.dirty(n);
    if crate::persistence::save::has_save_points(ctx.srv) {
        // Redis saves the empty dataset, which resets the counter; the command must still
        // reach replicas.
        crate::persistence::save::after_flushall(ctx.srv);
        ctx.propagate = crate::cmd::Propagate::Always;
    } else {
        crate::persistence::save::kill_rdb_child(ctx.srv);
        ctx.dirty(1);
    }
    ctx.reply.ok();
    Ok(())
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "help") {
        super::help(ctx, OBJECT_HELP);
        return Ok(());
    }
    let Some(i) = ctx.read_quietly(args.get(2)) else {
        ctx.reply.null();
        return Ok(());
    };
    let clock = ctx.srv.access_clock(ctx.now_ms);
    let lfu = ctx.srv.config.maxmemory_policy.is_lfu();
    let shares_integers =
        ctx.srv.config.maxmemory == 0 || !ctx.srv.config.maxmemory_policy.uses_access_data();
    let e = ctx.db().entry(i);
    if eq(sub, "encoding") {
        let enc = e.value.encoding();
        ctx.reply.bulk(enc.as_bytes());
    } else if eq(sub, "freq") {
        if !lfu {
            return Err(CmdError::msg(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        let freq = i64::from(clock.lfu_counter(e.access));
        ctx.reply.int(freq);
    } else if eq(sub, "idletime") {
        if lfu {
            return Err(CmdError::msg(
                "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        let idle = clock.idle_seconds(e.access) as i64;
        ctx.reply.int(idle);
    } else {
        let n = refcount(shares_integers, &e.value);
        ctx.reply.int(n);
    }
    Ok(())
}

/// Redis shares the objects of small integers (0..10000) unless an LRU/LFU eviction policy
/// needs per-key access data; a shared object reports `INT_MAX` references.
pub(super) fn refcount(shares_integers: bool, v: &crate::keyspace::Value) -> i64 {
    let small = match v {
        crate::keyspace::Value::Str(s) => {
            crate::protocol::parse_i64(s).is_some_and(|n| (0..10_000).contains(&n))
        }
        #[allow(unreachable_patterns)]
        _ => false,
    };
    if shares_integers && small && v.encoding() == "int" {
        i64::from(i32::MAX)
    } else {
        1
    }
}
