//! DUMP and RESTORE: a key's value as a self-checking RDB payload (`crate::rdb::dump`), and
//! back, with RESTORE's TTL, REPLACE, ABSTTL, IDLETIME and FREQ as Redis 7.0 reads them.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::notify::class;
use crate::protocol::Args;
use crate::rdb::convert::{LoadLimits, from_rdb};
use crate::rdb::dump;

pub static COMMANDS: &[Spec] = &[
    spec("dump", 2, READONLY, (1, 1, 1), "generic", dump_),
    spec(
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        "generic",
        restore,
    ),
];

fn dump_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let compression = ctx.srv.config.rdbcompression;
    match ctx.get(args.get(1)) {
        Some(v) => {
            let payload = dump::encode(v, compression);
            ctx.reply.bulk(&payload);
        }
        None => ctx.reply.null(),
    }
    Ok(())
}

/// RESTORE's options after the payload: REPLACE, ABSTTL, and IDLETIME or FREQ (not both).
#[derive(Default)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

fn restore_options(args: Args<'_>) -> Result<RestoreOptions, CmdError> {
    let mut o = RestoreOptions::default();
    let mut j = 4;
    while j < args.len() {
        let (a, more) = (args.get(j), j + 1 < args.len());
        if eq(a, "replace") {
            o.replace = true;
        } else if eq(a, "absttl") {
            o.absttl = true;
        } else if eq(a, "idletime") && more && o.freq.is_none() {
            let v = int_arg(args.get(j + 1))?;
            let idle = u64::try_from(v)
                .map_err(|_| CmdError::msg("ERR Invalid IDLETIME value, must be >= 0"))?;
            o.idle = Some(idle);
            j += 1;
        } else if eq(a, "freq") && more && o.idle.is_none() {
            let v = int_arg(args.get(j + 1))?;
            let freq = u8::try_from(v)
                .map_err(|_| CmdError::msg("ERR Invalid FREQ value, must be >= 0 and <= 255"))?;
            o.freq = Some(freq);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn restore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let o = restore_options(args)?;
    if !o.replace && ctx.find(key).is_some() {
        return Err(CmdError::msg("BUSYKEY Target key name already exists."));
    }
    let ttl = int_arg(args.get(2))?;
    if ttl < 0 {
        return Err(CmdError::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let value = dump::decode(args.get(3)).map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    let value = from_rdb(value, LoadLimits::from_config(&ctx.srv.config));
    let deleted = o.replace && ctx.delete(key);
    let now = ctx.now_ms as i64;
    let when = if ttl != 0 && !o.absttl {
        ttl.saturating_add(now)
    } else {
        ttl
    };
    // A replica keeps what its master sends, even when already expired by its own clock.
    if when != 0 && when <= now && !ctx.srv.repl.is_replica() {
        if deleted {
            ctx.dirty(1);
            ctx.rewrite(vec![vec![b"DEL".to_vec(), key.to_vec()]]);
            ctx.notify(class::GENERIC, "del", key);
        }
        ctx.reply.ok();
        return Ok(());
    }
    let i = ctx.set(key, value, false);
    if when != 0 {
        ctx.db().set_expire(i, Some(when as u64));
        if !o.absttl {
            // Replicas get the absolute time.
            let mut argv: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
            argv[2] = when.to_string().into_bytes();
            argv.push(b"ABSTTL".to_vec());
            ctx.rewrite(vec![argv]);
        }
    }
    let clock = ctx.srv.access_clock(ctx.now_ms);
    ctx.db().touch(i, |_| clock.restored(o.idle, o.freq));
    ctx.notify(class::GENERIC, "restore", key);
    ctx.dirty(1);
    ctx.reply.ok();
    Ok(())
}
