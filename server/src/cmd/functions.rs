//! Redis 7.0 Functions: FCALL, FCALL_RO and the FUNCTION container (LOAD, DELETE, FLUSH,
//! LIST, DUMP, RESTORE, STATS, KILL, HELP). Libraries are created by
//! [`crate::scripting::functions`]; a function runs like an EVAL script (the same checks
//! before the run, its writes wrapped into one atomic block for replicas).
//!
//! FUNCTION's subcommands that change the libraries are write commands in Redis 7.0 while
//! the others are not; the table has one set of flags per container, so these handlers make
//! the write checks themselves and feed the command to replicas as received.

use super::scripting::{Call, key_count, lua_error, run};
use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, help, spec};
use crate::protocol::Args;
use crate::rdb::function_dump;
use crate::scripting::Target;
use crate::scripting::functions::{self, RestorePolicy};
use crate::state::{NOREPLICAS, READONLY_REPLICA};

pub static COMMANDS: &[Spec] = &[
    spec(
        "fcall",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE,
        (0, 0, 0),
        "scripting",
        fcall,
    ),
    spec(
        "fcall_ro",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | READONLY,
        (0, 0, 0),
        "scripting",
        fcall_ro,
    ),
    container(
        "function",
        -2,
        NOSCRIPT,
        "scripting",
        function,
        &[
            ("delete", "function|delete", 3),
            ("dump", "function|dump", 2),
            ("flush", "function|flush", -2),
            ("help", "function|help", 2),
            ("kill", "function|kill", 2),
            ("list", "function|list", -2),
            ("load", "function|load", -3),
            ("restore", "function|restore", -3),
            ("stats", "function|stats", 2),
        ],
    ),
];

fn fcall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_function(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_function(ctx, args, true)
}

/// FCALL and FCALL_RO (Redis's `fcallCommandGeneric`).
fn run_function(ctx: &mut Ctx<'_>, args: Args<'_>, ro: bool) -> CmdResult {
    let Some(f) = ctx.srv.scripts.functions.libraries.function(args.get(1)) else {
        return Err(CmdError::msg("ERR Function not found"));
    };
    let (function, flags, name) = (f.function.clone(), f.flags, f.name.clone());
    let numkeys = crate::protocol::parse_i64(args.get(2))
        .ok_or_else(|| CmdError::msg("ERR Bad number of keys provided"))?;
    let numkeys = key_count(args, numkeys)?;
    let lua = functions::interpreter(&mut ctx.srv.scripts.functions).map_err(|e| lua_error(&e))?;
    let call = Call {
        function: &function,
        name: &name,
        flags,
        ro,
        target: Target::Function,
    };
    run(ctx, &lua, &call, args, numkeys)
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

fn function(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "load") {
        load(ctx, args)
    } else if eq(sub, "delete") {
        delete(ctx, args)
    } else if eq(sub, "flush") {
        flush(ctx, args)
    } else if eq(sub, "restore") {
        restore(ctx, args)
    } else if eq(sub, "list") {
        list(ctx, args)
    } else if eq(sub, "dump") {
        let libs = &ctx.srv.scripts.functions.libraries;
        let payload = function_dump::dump(
            libs.iter().map(|l| l.code.as_slice()),
            ctx.srv.config.rdbcompression,
        );
        ctx.reply.bulk(&payload);
        Ok(())
    } else if eq(sub, "stats") {
        stats(ctx);
        Ok(())
    } else if eq(sub, "kill") {
        // A function holds the server until it ends: when this runs, none is running.
        Err(CmdError::msg("NOTBUSY No scripts in execution right now."))
    } else {
        help(ctx, FUNCTION_HELP);
        Ok(())
    }
}

/// Redis's reply to a subcommand given the wrong arguments.
fn syntax_error(args: Args<'_>) -> CmdError {
    let sub = args.get(1);
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
}

/// The checks Redis makes before a write command (these subcommands carry its WRITE flag,
/// and `denyoom` its DENYOOM), for a client other than our master.
fn refuse_write(ctx: &mut Ctx<'_>, denyoom: bool) -> CmdResult {
    if ctx.client.is_master {
        return Ok(());
    }
    let srv = &mut *ctx.srv;
    if srv.read_only_replica() {
        return Err(CmdError::msg(READONLY_REPLICA));
    }
    if srv.lacks_good_replicas() {
        return Err(CmdError::msg(NOREPLICAS));
    }
    if denyoom && !srv.make_room(ctx.now_ms) {
        return Err(CmdError::Oom);
    }
    Ok(())
}

/// The libraries changed: counts as a change for the save points and reaches replicas as
/// received (our master's commands are proxied to our replicas by the link instead).
fn changed(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ctx.srv.dirty += 1;
    if !ctx.client.is_master {
        let argv: Vec<&[u8]> = args.iter().collect();
        ctx.srv.feed.feed(ctx.client.db, &argv);
    }
}

/// FUNCTION LOAD [REPLACE] code.
fn load(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    refuse_write(ctx, true)?;
    let mut replace = false;
    for opt in args.iter().take(args.len() - 1).skip(2) {
        if !eq(opt, "replace") {
            return Err(CmdError::msg(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(opt)
            )));
        }
        replace = true;
    }
    let code = args.get(args.len() - 1);
    // Our master's loads are obeyed however long they take, as Redis obeys them.
    let timeout = (!ctx.client.is_master).then_some(functions::LOAD_TIMEOUT);
    let f = &mut ctx.srv.scripts.functions;
    let lua = functions::interpreter(f).map_err(|e| lua_error(&e))?;
    let name = functions::create(&lua, &mut f.libraries, code, replace, timeout)
        .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    changed(ctx, args);
    ctx.reply.bulk(name.as_bytes());
    Ok(())
}

/// FUNCTION DELETE library-name.
fn delete(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    refuse_write(ctx, false)?;
    let name = String::from_utf8_lossy(args.get(2));
    if ctx.srv.scripts.functions.libraries.unlink(&name).is_none() {
        return Err(CmdError::msg("ERR Library not found"));
    }
    changed(ctx, args);
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION FLUSH [ASYNC|SYNC]. Both modes free at once: the compiled functions belong to
/// the interpreter, which only this thread may touch.
fn flush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax_error(args));
    }
    if args.len() == 3 && !eq(args.get(2), "sync") && !eq(args.get(2), "async") {
        return Err(CmdError::msg(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    refuse_write(ctx, false)?;
    ctx.srv.scripts.functions.libraries.take_all();
    changed(ctx, args);
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE].
fn restore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(syntax_error(args));
    }
    refuse_write(ctx, true)?;
    let policy = match args.iter().nth(3) {
        None => RestorePolicy::Append,
        Some(p) if eq(p, "append") => RestorePolicy::Append,
        Some(p) if eq(p, "replace") => RestorePolicy::Replace,
        Some(p) if eq(p, "flush") => RestorePolicy::Flush,
        Some(_) => {
            return Err(CmdError::msg(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ));
        }
    };
    let msg = |e: String| CmdError::msg(format!("ERR {e}"));
    let codes = function_dump::parse(args.get(2)).map_err(msg)?;
    let f = &mut ctx.srv.scripts.functions;
    let lua = functions::interpreter(f).map_err(|e| lua_error(&e))?;
    let restored = functions::create_all(&lua, codes.iter().map(Vec::as_slice)).map_err(msg)?;
    functions::join(&mut f.libraries, restored, policy).map_err(msg)?;
    changed(ctx, args);
    ctx.reply.ok();
    Ok(())
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
fn list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        if !with_code && eq(a, "withcode") {
            with_code = true;
        } else if pattern.is_none() && eq(a, "libraryname") {
            if i >= args.len() - 1 {
                return Err(CmdError::msg("ERR library name argument was not given"));
            }
            i += 1;
            pattern = Some(args.get(i));
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    let libs = &ctx.srv.scripts.functions.libraries;
    let shown: Vec<_> = libs
        .iter()
        .filter(|l| pattern.is_none_or(|p| crate::glob::matches(p, l.name.as_bytes(), true)))
        .collect();
    let reply = &mut ctx.reply;
    reply.array(shown.len());
    for lib in shown {
        reply.map(if with_code { 4 } else { 3 });
        reply.bulk(b"library_name");
        reply.bulk(lib.name.as_bytes());
        reply.bulk(b"engine");
        reply.bulk(b"LUA");
        reply.bulk(b"functions");
        reply.array(lib.functions.len());
        for f in lib.functions.values() {
            reply.map(3);
            reply.bulk(b"name");
            reply.bulk(f.name.as_bytes());
            reply.bulk(b"description");
            match &f.description {
                Some(d) => reply.bulk(d),
                None => reply.null(),
            }
            reply.bulk(b"flags");
            let names = functions::flag_names(f.flags);
            reply.set(names.len());
            for n in names {
                reply.simple(n);
            }
        }
        if with_code {
            reply.bulk(b"library_code");
            reply.bulk(&lib.code);
        }
    }
    Ok(())
}

/// FUNCTION STATS: no function is running while a command runs; one engine, Lua.
fn stats(ctx: &mut Ctx<'_>) {
    let libs = &ctx.srv.scripts.functions.libraries;
    let (count, functions) = (libs.len() as i64, libs.function_count() as i64);
    let reply = &mut ctx.reply;
    reply.map(2);
    reply.bulk(b"running_script");
    reply.null();
    reply.bulk(b"engines");
    reply.map(1);
    reply.bulk(b"LUA");
    reply.map(2);
    reply.bulk(b"libraries_count");
    reply.int(count);
    reply.bulk(b"functions_count");
    reply.int(functions);
}
