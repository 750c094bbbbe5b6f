//! One run of a script or function: the run state installed for the API, the executor lent
//! to `redis.call` for the run's duration, the call under the error handler, and the
//! result turned into the caller's reply or Redis's error line.

use super::api;
use super::convert::{self, lua_to_reply, reply_to_lua};
use crate::protocol::{Args, Reply};
use crate::state::scripting::ScriptRun;
use mlua::{Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};
use scoped_tls_hkt::scoped_thread_local;
use std::cell::RefCell;

scoped_thread_local!(
    /// The executor of the run in progress. `redis.call` is one function made with the
    /// interpreter, and a run lends it the host here: binding a new function to each run's
    /// host cost a tenth of a short EVAL. While a command runs the slot reads as empty, so a
    /// nested call is refused, not aliased.
    static mut HOST: for<'a> &'a mut (dyn Host + 'a)
);

scoped_thread_local!(
    /// The name of the script in progress, for the BUSY replies of the busy hook.
    static RUNNING: str
);

/// The executor, as a script's commands reach it.
pub trait Host {
    /// Runs one command for the script (Redis's `scriptCall`), appending its reply in the
    /// run's protocol to `out`; or says why the script may not run it, as Redis words it
    /// (`-CODE message`, or a bare message that gets `ERR`).
    fn call(
        &mut self,
        run: &mut ScriptRun,
        args: Args<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), String>;

    /// Lets the other clients in while the script runs past `busy-reply-threshold`: they
    /// get BUSY, or kill it. Returns true when the script must stop.
    fn serve_busy(&mut self, run: &mut ScriptRun, name: &str) -> bool;
}

/// What each run touches, fetched from the sandbox once: a run then makes no string keys
/// and no table lookups of its own (shared behind an `Rc`: cloning each handle would cost a
/// Lua reference apiece).
pub(super) struct Bound {
    /// The real globals, where EVAL's KEYS and ARGV go.
    pub globals: Table,
    pub handler: mlua::Function,
    pub run_eval: mlua::Function,
    pub run_function: mlua::Function,
    pub keys_key: mlua::LuaString,
    pub argv_key: mlua::LuaString,
}

/// How many Lua instructions run between two checks of a script's time (Redis's count).
const HOOK_INSTRUCTIONS: u32 = 100_000;

/// Sets the instruction hook that watches a running script's time.
pub(super) fn arm_hook(lua: &Lua) -> mlua::Result<()> {
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
        busy_hook,
    )
}

/// Past `busy-reply-threshold` a script lets the other clients in (they get BUSY and may
/// kill it); once killed it fails at every line, so `pcall` cannot keep it alive.
fn busy_hook(lua: &Lua, _: &mlua::debug::Debug) -> mlua::Result<VmState> {
    let (killed, due) = match lua.app_data_ref::<ScriptRun>() {
        None => return Ok(VmState::Continue),
        Some(run) => (
            run.killed,
            run.busy_threshold_ms > 0
                && crate::clock::now_ms().saturating_sub(run.started_ms) >= run.busy_threshold_ms,
        ),
    };
    if killed {
        return Err(api::raise_text(
            lua,
            "Script killed by user with SCRIPT KILL...",
        ));
    }
    if !due {
        return Ok(VmState::Continue);
    }
    if serve_busy(lua) {
        tracing::warn!("Lua script killed by user with SCRIPT KILL.");
        lua.set_hook(HookTriggers::EVERY_LINE, busy_hook)?;
        return Err(api::raise_text(
            lua,
            "Script killed by user with SCRIPT KILL...",
        ));
    }
    Ok(VmState::Continue)
}

/// How the script receives its keys and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// EVAL: the chunk runs with the globals KEYS and ARGV.
    Eval,
    /// FCALL: the registered function gets (keys, args).
    Function,
}

/// What to run.
pub struct Invocation<'a> {
    pub function: &'a Function,
    /// Its name in error lines: the SHA1 for EVAL, the function's name for FCALL.
    pub name: &'a str,
    pub keys: Vec<&'a [u8]>,
    pub args: Vec<&'a [u8]>,
    pub target: Target,
}

/// Every this many runs, a step of Lua's collector, as Redis does, rather than letting a full
/// cycle land on some unlucky call.
const GC_PERIOD: u32 = 50;

/// Runs the script and writes its reply.
///
/// # Errors
/// The error line for the caller when the script failed.
pub fn invoke(
    lua: &Lua,
    inv: &Invocation<'_>,
    run: ScriptRun,
    host: &mut dyn Host,
    reply: &mut Reply<'_>,
) -> Result<(), String> {
    lua.set_app_data(run);
    let outcome = call(lua, inv, host);
    let run = lua.remove_app_data::<ScriptRun>().unwrap_or_default();
    if run.killed {
        // The kill made the hook fire at every line; back to its usual pace.
        if let Err(e) = arm_hook(lua) {
            tracing::warn!(error = %e, "could not reset the script hook");
        }
    }
    collect_now_and_then(lua);
    match outcome {
        Ok((true, value)) => lua_to_reply(&value, reply, run.resp3).map_err(|e| {
            format!(
                "ERR Error running script {}, {}",
                inv.name,
                convert::error_text(&e)
            )
        }),
        Ok((false, Value::Table(t))) => Err(error_line(&t, inv.name)),
        Ok((false, other)) => {
            let msg = match &other {
                Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                _ => "execution failure".into(),
            };
            Err(format!(
                "ERR Error running script {}, {:.100}",
                inv.name, msg
            ))
        }
        Err(e) => Err(format!(
            "ERR Error running script {}, {:.100}",
            inv.name,
            convert::error_text(&e)
        )),
    }
}

fn collect_now_and_then(lua: &Lua) {
    struct Runs(u32);
    let due = match lua.app_data_mut::<Runs>() {
        Some(mut r) => {
            r.0 += 1;
            r.0 % GC_PERIOD == 0
        }
        None => {
            lua.set_app_data(Runs(1));
            false
        }
    };
    if due {
        // The step only paces the collector; its outcome changes nothing for the caller.
        let _ = lua.gc_step();
    }
}

/// Redis's error line for a failed script: the message, then where it failed.
fn error_line(t: &Table, name: &str) -> String {
    let text = |k: &str| match t.raw_get::<Value>(k) {
        Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Ok(Value::Integer(n)) => Some(n.to_string()),
        Ok(Value::Number(n)) => Some(convert::number_text(n)),
        _ => None,
    };
    let msg = text("err").unwrap_or_else(|| "ERR unknown error".into());
    match (text("source"), text("line")) {
        (Some(source), Some(line)) => format!("{msg} script: {name}, on {source}:{line}."),
        _ => msg,
    }
}

fn call(lua: &Lua, inv: &Invocation<'_>, host: &mut dyn Host) -> mlua::Result<(bool, Value)> {
    let Some(b) = lua.app_data_ref::<std::rc::Rc<Bound>>().map(|b| b.clone()) else {
        return Err(mlua::Error::runtime("the interpreter has no sandbox"));
    };
    let strings = |items: &[&[u8]]| -> mlua::Result<Table> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(item)?)?;
        }
        Ok(t)
    };
    let keys = strings(&inv.keys)?;
    let args = strings(&inv.args)?;
    let run = || match inv.target {
        Target::Eval => {
            b.globals.raw_set(&b.keys_key, keys)?;
            b.globals.raw_set(&b.argv_key, args)?;
            b.run_eval.call::<(bool, Value)>((inv.function, &b.handler))
        }
        Target::Function => {
            b.run_function
                .call::<(bool, Value)>((inv.function, &b.handler, keys, args))
        }
    };
    RUNNING.set(inv.name, || HOST.set(host, run))
}

/// Lets the host serve the other clients (the busy hook's call); true when the script must
/// stop.
pub(super) fn serve_busy(lua: &Lua) -> bool {
    let Some(mut run) = lua.app_data_ref::<ScriptRun>().map(|r| r.clone()) else {
        return false;
    };
    if !HOST.is_set() || !RUNNING.is_set() {
        return false;
    }
    let kill = RUNNING.with(|name| HOST.with(|host| host.serve_busy(&mut run, name)));
    if let Some(mut r) = lua.app_data_mut::<ScriptRun>() {
        *r = run;
    }
    kill
}

/// A command's arguments and reply, kept from call to call so a short command allocates
/// nothing.
#[derive(Default)]
pub(super) struct Scratch {
    args: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    reply: Vec<u8>,
}

/// `redis.call`: runs the command with the run's host, raising its error.
pub(super) fn redis_call(
    lua: &Lua,
    argv: MultiValue,
    scratch: &RefCell<Scratch>,
) -> mlua::Result<Value> {
    if !HOST.is_set() {
        let text = if lua.app_data_ref::<ScriptRun>().is_some() {
            "redis.call/pcall called while a call runs"
        } else {
            "redis.call/pcall can only be called inside a script invocation"
        };
        return Err(api::raise_text(lua, text));
    }
    let Ok(mut scratch) = scratch.try_borrow_mut() else {
        return Err(api::raise_text(
            lua,
            "redis.call/pcall called while a call runs",
        ));
    };
    match HOST.with(|host| run_command(lua, host, argv, &mut scratch))? {
        (Value::Table(t), true) => Err(api::raise(lua, t)),
        (v, _) => Ok(v),
    }
}

/// `redis.call`/`redis.pcall`'s work: the arguments as a command, run by the host, its reply
/// as a Lua value and whether it is an error (which `redis.call` raises).
fn run_command(
    lua: &Lua,
    host: &mut dyn Host,
    argv: MultiValue,
    scratch: &mut Scratch,
) -> mlua::Result<(Value, bool)> {
    if argv.is_empty() {
        return refused(
            lua,
            "Please specify at least one argument for this redis lib call",
        );
    }
    let Scratch {
        args: buf,
        ranges,
        reply: out,
    } = scratch;
    buf.clear();
    ranges.clear();
    out.clear();
    for v in &argv {
        let start = buf.len();
        match v {
            Value::String(s) => buf.extend_from_slice(&s.as_bytes()),
            // Lua's own number format loses precision: Redis prints %.17g.
            Value::Integer(n) => buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Number(n) => buf.extend_from_slice(crate::protocol::format_g(*n, 17).as_bytes()),
            _ => {
                return refused(
                    lua,
                    "Lua redis lib command arguments must be strings or integers",
                );
            }
        }
        ranges.push((start, buf.len()));
    }
    // The command never reaches back into Lua, so the run state stays borrowed meanwhile.
    let called = match lua.app_data_mut::<ScriptRun>() {
        Some(mut run) => host.call(&mut run, Args::new(buf, ranges), out),
        None => {
            return refused(
                lua,
                "redis.call/pcall can only be called inside a script invocation",
            );
        }
    };
    match called {
        Ok(()) => reply_to_lua(lua, out),
        Err(text) => {
            let t = convert::error_table(lua, text.as_bytes())?;
            t.raw_set("ignore_error_stats_update", true)?;
            Ok((Value::Table(t), true))
        }
    }
}

fn refused(lua: &Lua, text: &str) -> mlua::Result<(Value, bool)> {
    Ok((
        Value::Table(convert::error_table(lua, text.as_bytes())?),
        true,
    ))
}
