//! Scripting commands: EVAL, EVALSHA and their read-only forms, SCRIPT. The interpreter and
//! the conversions are [`crate::scripting`]; this file reads arguments, keeps the script
//! cache, makes Redis 7.0's checks before a run, and wraps the script's writes into one
//! atomic block for replicas.

use super::{
    CmdError, CmdResult, Ctx, ScriptCall, Spec, container, eq, flags::*, help, int_arg, spec,
};
use crate::client::Client;
use crate::protocol::Args;
use crate::scripting::{self, Host, Invocation, Target};
use crate::state::scripting::{Script, ScriptFlags, ScriptRun, Scripts};
use crate::state::{MASTERDOWN, NOREPLICAS, READONLY_REPLICA, Server};

pub static COMMANDS: &[Spec] = &[
    spec(
        "eval",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE,
        (0, 0, 0),
        "scripting",
        eval,
    ),
    spec(
        "evalsha",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE,
        (0, 0, 0),
        "scripting",
        evalsha,
    ),
    spec(
        "eval_ro",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | READONLY,
        (0, 0, 0),
        "scripting",
        eval_ro,
    ),
    spec(
        "evalsha_ro",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | READONLY,
        (0, 0, 0),
        "scripting",
        evalsha_ro,
    ),
    container(
        "script",
        -2,
        NOSCRIPT,
        "scripting",
        script,
        &[
            ("debug", "script|debug", 3),
            ("exists", "script|exists", -3),
            ("flush", "script|flush", -2),
            ("help", "script|help", 2),
            ("kill", "script|kill", 2),
            ("load", "script|load", 3),
        ],
    ),
];

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

fn eval(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_script(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_script(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_script(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run_script(ctx, args, true, true)
}

pub(super) fn lua_error(e: &mlua::Error) -> CmdError {
    CmdError::msg(format!("ERR Lua: {e}"))
}

/// Compiles and caches a script (Redis's `luaCreateFunction`); a cached one is found by
/// its SHA1 without compiling again.
fn create_script(scripts: &mut Scripts, body: &[u8]) -> Result<[u8; 40], CmdError> {
    let sha = scripting::sha1_hex(body);
    if scripts.cache.contains_key(&sha) {
        return Ok(sha);
    }
    let (flags, shebang_len) =
        scripting::parse_shebang(body).map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    let lua = scripting::interpreter(scripts).map_err(|e| lua_error(&e))?;
    // The shebang line is skipped but its newline kept, so line numbers stay the user's.
    let function = scripting::compile(&lua, &body[shebang_len..], "@user_script")
        .map_err(|e| CmdError::msg(format!("ERR Error compiling script (new function): {e}")))?;
    scripts.cache_bytes += sha.len() + body.len();
    scripts.cache.insert(
        sha,
        Script {
            body: body.to_vec(),
            flags,
            function,
        },
    );
    Ok(sha)
}

/// The keys a call announces with `numkeys` (already read as a number): Redis's bounds.
pub(super) fn key_count(args: Args<'_>, numkeys: i64) -> Result<usize, CmdError> {
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    usize::try_from(numkeys).map_err(|_| CmdError::msg("ERR Number of keys can't be negative"))
}

fn run_script(ctx: &mut Ctx<'_>, args: Args<'_>, by_sha: bool, ro: bool) -> CmdResult {
    let numkeys = key_count(args, int_arg(args.get(2))?)?;
    let sha = if by_sha {
        let given = args.get(1);
        let Ok(mut sha) = <[u8; 40]>::try_from(given) else {
            return Err(CmdError::msg(NOSCRIPT_ERR));
        };
        sha.make_ascii_lowercase();
        if !ctx.srv.scripts.cache.contains_key(&sha) {
            return Err(CmdError::msg(NOSCRIPT_ERR));
        }
        sha
    } else {
        create_script(&mut ctx.srv.scripts, args.get(1))?
    };
    let (function, flags) = match ctx.srv.scripts.cache.get(&sha) {
        Some(s) => (s.function.clone(), s.flags),
        None => return Err(CmdError::msg(NOSCRIPT_ERR)),
    };
    let lua = scripting::interpreter(&mut ctx.srv.scripts).map_err(|e| lua_error(&e))?;
    let name = String::from_utf8_lossy(&sha).into_owned();
    let call = Call {
        function: &function,
        name: &name,
        flags,
        ro,
        target: Target::Eval,
    };
    run(ctx, &lua, &call, args, numkeys)
}

/// A script or function about to run.
pub(super) struct Call<'a> {
    pub function: &'a mlua::Function,
    /// Its name in error lines: the SHA1 for EVAL, the function's name for FCALL.
    pub name: &'a str,
    pub flags: ScriptFlags,
    /// EVAL_RO, EVALSHA_RO, FCALL_RO.
    pub ro: bool,
    pub target: Target,
}

/// Runs a script or function called with `args` (`CMD name numkeys key... arg...`): Redis
/// 7.0's checks before the run, then the run with the executor as its host; its writes reach
/// replicas as one MULTI/EXEC (unless already inside one).
pub(super) fn run(
    ctx: &mut Ctx<'_>,
    lua: &mlua::Lua,
    call: &Call<'_>,
    args: Args<'_>,
    numkeys: usize,
) -> CmdResult {
    let flags = call.flags;
    let oom_at_start = refuse_before_run(ctx, flags, call.ro)?;
    let run = ScriptRun {
        read_only: call.ro || (!flags.compat && flags.no_writes),
        allow_oom: !flags.compat && flags.allow_oom,
        replicate: true,
        oom_at_start,
        db: ctx.client.db,
        eval: call.target == Target::Eval,
        from_master: ctx.client.is_master,
        started_ms: ctx.now_ms,
        busy_threshold_ms: ctx.srv.config.busy_reply_threshold,
        ..ScriptRun::default()
    };
    let inv = Invocation {
        function: call.function,
        name: call.name,
        keys: (3..3 + numkeys).map(|i| args.get(i)).collect(),
        args: (3 + numkeys..args.len()).map(|i| args.get(i)).collect(),
        target: call.target,
    };
    // With `maxmemory` set, the Lua heap may not outgrow it: a runaway script fails with "not
    // enough memory" instead of taking the machine's. A bound makes mlua run every call into
    // Lua in protected mode, which costs scripts about a third of their speed (measured with
    // tandem-bench throughput), so without maxmemory there is none, as in Redis (0).
    let limit = usize::try_from(ctx.srv.config.maxmemory).unwrap_or(usize::MAX);
    if let Err(e) = lua.set_memory_limit(limit) {
        tracing::warn!(error = %e, "could not bound the Lua heap");
    }
    // Without a replica or a backlog nothing keeps the stream: no need to gather the effects.
    let wrap = !ctx.srv.feed.in_atomic() && ctx.srv.feed.is_active();
    if wrap {
        ctx.srv.feed.begin_atomic();
    }
    let mut host = Nested {
        srv: &mut *ctx.srv,
        client: &mut *ctx.client,
        call: ctx.script_call,
    };
    let result = scripting::invoke(lua, &inv, run, &mut host, &mut ctx.reply);
    if wrap {
        ctx.srv.feed.end_atomic();
    }
    result.map_err(CmdError::Msg)
}

/// Redis 7.0's checks before a script runs (`scriptPrepareForRun`, and the command flags a
/// shebang gives EVAL). Returns whether memory was over `maxmemory` at the start.
fn refuse_before_run(ctx: &mut Ctx<'_>, flags: ScriptFlags, ro: bool) -> Result<bool, CmdError> {
    let srv = &mut *ctx.srv;
    if srv.stale() && (flags.compat || !flags.allow_stale) {
        return Err(CmdError::msg(MASTERDOWN));
    }
    let oom = srv.config.maxmemory > 0 && !srv.make_room(ctx.now_ms);
    if flags.compat {
        return Ok(oom);
    }
    if !flags.no_writes {
        if srv.read_only_replica() && !ctx.client.is_master {
            return Err(CmdError::msg(READONLY_REPLICA));
        }
        if ro {
            return Err(CmdError::msg(
                "ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
        if srv.lacks_good_replicas() {
            return Err(CmdError::msg(NOREPLICAS));
        }
    }
    if oom && !flags.allow_oom && !flags.no_writes {
        return Err(CmdError::Oom);
    }
    Ok(oom)
}

/// The executor as a script's host.
struct Nested<'s> {
    srv: &'s mut Server,
    client: &'s mut Client,
    call: ScriptCall,
}

impl Host for Nested<'_> {
    fn call(
        &mut self,
        run: &mut ScriptRun,
        args: Args<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        (self.call)(self.srv, self.client, run, args, out)
    }

    fn serve_busy(&mut self, run: &mut ScriptRun, name: &str) -> bool {
        crate::net::busy::serve(self.srv, run, name)
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

fn script(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "help") {
        help(ctx, SCRIPT_HELP);
    } else if eq(sub, "flush") {
        let mode_ok = args.len() == 2
            || (args.len() == 3 && (eq(args.get(2), "sync") || eq(args.get(2), "async")));
        if !mode_ok {
            return Err(CmdError::msg(
                "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
            ));
        }
        ctx.srv.scripts.flush();
        ctx.reply.ok();
    } else if eq(sub, "exists") {
        ctx.reply.array(args.len() - 2);
        for given in args.iter().skip(2) {
            let found = <[u8; 40]>::try_from(given).is_ok_and(|mut sha| {
                sha.make_ascii_lowercase();
                ctx.srv.scripts.cache.contains_key(&sha)
            });
            ctx.reply.int(i64::from(found));
        }
    } else if eq(sub, "load") {
        let sha = create_script(&mut ctx.srv.scripts, args.get(2))?;
        ctx.reply.bulk(&sha);
    } else if eq(sub, "kill") {
        // A script holds the server until it ends: when this runs, none is running.
        return Err(CmdError::msg("NOTBUSY No scripts in execution right now."));
    } else if eq(args.get(2), "no") {
        ctx.reply.ok();
    } else if eq(args.get(2), "yes") || eq(args.get(2), "sync") {
        return Err(CmdError::msg(
            "ERR SCRIPT DEBUG is not supported: the Lua debugger is not available on this server",
        ));
    } else {
        return Err(CmdError::msg("ERR Use SCRIPT DEBUG YES/SYNC/NO"));
    }
    Ok(())
}
