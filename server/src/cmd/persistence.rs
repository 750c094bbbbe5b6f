//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN. The work is done
//! by `persistence::save` and `aof::rewrite`; this file parses arguments and maps outcomes
//! to Redis's replies.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, spec};
use crate::aof::rewrite::{self, RewriteError};
use crate::persistence::save::{self, BgSaveError};
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        (0, 0, 0),
        "server",
        save_cmd,
    ),
    spec(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        (0, 0, 0),
        "server",
        bgsave,
    ),
    spec(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        (0, 0, 0),
        "server",
        bgrewriteaof,
    ),
    spec(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        (0, 0, 0),
        "server",
        lastsave,
    ),
    spec(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        (0, 0, 0),
        "server",
        shutdown,
    ),
];

fn save_cmd(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.srv.persistence.snapshot_busy() {
        return Err(CmdError::msg("ERR Background save already in progress"));
    }
    ctx.srv.persistence.rdb_saves += 1;
    // Redis answers a bare "ERR" and logs the cause; the cause in the reply costs a client
    // nothing (the prefix is the same) and tells the operator what to fix.
    save::save(ctx.srv).map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    ctx.reply.ok();
    Ok(())
}

fn bgsave(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let schedule = match args.len() {
        1 => false,
        2 if eq(args.get(1), "schedule") => true,
        _ => return Err(CmdError::Syntax),
    };
    if ctx.srv.persistence.snapshot_busy() && schedule {
        ctx.srv.persistence.scheduled = true;
        ctx.reply.simple("Background saving scheduled");
        return Ok(());
    }
    if ctx.srv.aof.rewrite.is_some() {
        return Err(CmdError::msg(
            "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    match save::start_bgsave(ctx.srv) {
        Ok(()) => {
            ctx.reply.simple("Background saving started");
            Ok(())
        }
        Err(e @ BgSaveError::InProgress) => Err(CmdError::msg(e.to_string())),
        Err(BgSaveError::Failed(_)) => Err(CmdError::msg("ERR")),
    }
}

fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.srv.aof.rewrite.is_some() {
        return Err(CmdError::msg(RewriteError::InProgress.to_string()));
    }
    // Inside EXEC the transaction's earlier writes are in the snapshot but reach the AOF
    // only at its end: the rewrite waits, as Redis's does.
    if ctx.srv.persistence.snapshot_busy() || ctx.srv.feed.in_atomic() {
        ctx.srv.aof.rewrite_scheduled = true;
        ctx.reply
            .simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    rewrite::start(ctx.srv).map_err(|e| CmdError::msg(e.to_string()))?;
    ctx.reply
        .simple("Background append only file rewriting started");
    Ok(())
}

fn lastsave(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.reply.int(ctx.srv.lastsave as i64);
    Ok(())
}

fn shutdown(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut opts = save::ShutdownOptions::default();
    let mut abort = false;
    for a in args.iter().skip(1) {
        if eq(a, "nosave") {
            opts.nosave = true;
        } else if eq(a, "save") {
            opts.save = true;
        } else if eq(a, "now") {
            opts.now = true;
        } else if eq(a, "force") {
            opts.force = true;
        } else if eq(a, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (abort && (opts.nosave || opts.save || opts.now || opts.force)) || (opts.nosave && opts.save)
    {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::msg("ERR No shutdown in progress."));
    }
    tracing::warn!("User requested shutdown...");
    save::prepare_shutdown(ctx.srv, opts)
        .map_err(|_| CmdError::msg("ERR Errors trying to SHUTDOWN. Check logs."))?;
    ctx.srv.shutdown.notify_one();
    ctx.client.close_after_reply = true;
    Ok(())
}
