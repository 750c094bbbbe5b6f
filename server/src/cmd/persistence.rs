//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN. The work is done
//! by `persistence::save` and `aof::rewrite`; this file parses arguments and maps outcomes
//! to Redis's replies.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, spec};
use crate::aof::rewrite::{self, RewriteError};
use crate::persistence::save::{self, BgSaveError};
use crate::protocol::Args;
use crate::state::blocking::{Block, TimeoutReply};

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
    let failed = || CmdError::msg("ERR Errors trying to SHUTDOWN. Check logs.");
    if abort {
        if !crate::shutdown::in_progress(ctx.srv) {
            return Err(CmdError::msg("ERR No shutdown in progress."));
        }
        crate::shutdown::abort(ctx.srv);
        ctx.reply.ok();
        return Ok(());
    }
    let now = ctx.now_ms;
    if ctx.woken_by.is_some() {
        // Re-run while waiting for replicas: an abort or a failed save ended the wait.
        if ctx.srv.shutdown_wait.is_none() {
            return Err(failed());
        }
        crate::shutdown::complete(ctx.srv, now).map_err(|_| failed())?;
    } else {
        tracing::warn!("User requested shutdown...");
        let id = ctx.client.id;
        crate::shutdown::begin(ctx.srv, opts, Some(id), now).map_err(|_| failed())?;
    }
    if ctx.srv.shutdown_wait.is_some() {
        // Woken again by each replica acknowledgement, like WAIT.
        let id = ctx.client.id;
        if !ctx.srv.repl.waiters.contains(&id) {
            ctx.srv.repl.waiters.push(id);
        }
        ctx.block = Some(Block {
            keys: Vec::new(),
            timeout_ms: 0,
            on_timeout: TimeoutReply::Null,
        });
        return Ok(());
    }
    ctx.client.close_after_reply = true;
    Ok(())
}
