//! The `redis` table scripts call (Redis 7.0's `luaRegisterRedisAPI`), and how its functions
//! raise Redis's error tables.
//!
//! Redis raises `{err="CODE message"}` tables from C. A Rust callback can only fail with an
//! mlua error, so the table waits in the interpreter's app data ([`Pending`]) while a marker
//! error ([`Raised`]) travels up; the message handler and `pcall` put the table back.

use super::convert;
use crate::state::scripting::ScriptRun;
use mlua::{Lua, MultiValue, Table, Value};

/// The error table a failing API call raised, until the handler or `pcall` takes it.
pub(super) struct Pending(Table);

/// The marker error standing for the [`Pending`] table.
#[derive(Debug)]
pub(super) struct Raised;

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("script error")
    }
}

impl std::error::Error for Raised {}

/// Raises `t` as the script's error.
pub(super) fn raise(lua: &Lua, t: Table) -> mlua::Error {
    lua.set_app_data(Pending(t));
    mlua::Error::external(Raised)
}

/// Raises Redis's error table for `text` (`-CODE message`, or a message that gets `ERR`).
pub(super) fn raise_text(lua: &Lua, text: &str) -> mlua::Error {
    match convert::error_table(lua, text.as_bytes()) {
        Ok(t) => raise(lua, t),
        Err(e) => e,
    }
}

/// The table an mlua error stands for, if it is a raised one.
pub(super) fn raised_table(lua: &Lua, e: &mlua::Error) -> Option<Table> {
    let mut cur = e;
    loop {
        match cur {
            mlua::Error::CallbackError { cause, .. } => cur = cause,
            mlua::Error::ExternalError(inner) if inner.downcast_ref::<Raised>().is_some() => {
                return lua.remove_app_data::<Pending>().map(|p| p.0);
            }
            _ => return None,
        }
    }
}

fn arg_bytes(lua: &Lua, v: &Value) -> mlua::Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    })
}

/// C's `(int)` of `lua_tonumber`: how Redis reads numeric API arguments.
fn c_int(v: &Value) -> i64 {
    let n = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(f) => *f,
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    };
    n as i32 as i64
}

fn in_run(lua: &Lua) -> bool {
    lua.app_data_ref::<ScriptRun>().is_some()
}

/// Builds the `redis` table (without `call`/`pcall`, which each run binds to its host).
pub(super) fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    redis.set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_text(lua, "wrong number of arguments"));
            }
            let bytes = arg_bytes(lua, &args[0])?.unwrap_or_default();
            lua.create_string(super::chunk::sha1_hex(&bytes))
        })?,
    )?;
    redis.set(
        "error_reply",
        lua.create_function(|lua, args: MultiValue| match args.front() {
            Some(Value::String(s)) if args.len() == 1 => {
                let mut text = s.as_bytes().to_vec();
                if text.first() != Some(&b'-') {
                    text.insert(0, b'-');
                }
                convert::error_table(lua, &text)
            }
            _ => convert::error_table(lua, b"wrong number or type of arguments"),
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, args: MultiValue| match args.front() {
            Some(Value::String(s)) if args.len() == 1 => {
                let t = lua.create_table()?;
                t.raw_set("ok", s.clone())?;
                Ok(t)
            }
            _ => convert::error_table(lua, b"wrong number or type of arguments"),
        })?,
    )?;
    redis.set("log", lua.create_function(log)?)?;
    redis.set(
        "setresp",
        lua.create_function(|lua, args: MultiValue| {
            if !in_run(lua) {
                return Err(raise_text(
                    lua,
                    "redis.setresp can only be called inside a script invocation",
                ));
            }
            if args.len() != 1 {
                return Err(raise_text(lua, "redis.setresp() requires one argument."));
            }
            let resp = c_int(&args[0]);
            if resp != 2 && resp != 3 {
                return Err(raise_text(lua, "RESP version must be 2 or 3."));
            }
            if let Some(mut run) = lua.app_data_mut::<ScriptRun>() {
                run.resp3 = resp == 3;
            }
            Ok(())
        })?,
    )?;
    redis.set(
        "set_repl",
        lua.create_function(|lua, args: MultiValue| {
            if !in_run(lua) {
                return Err(raise_text(
                    lua,
                    "redis.set_repl can only be called inside a script invocation",
                ));
            }
            if args.len() != 1 {
                return Err(raise_text(lua, "redis.set_repl() requires two arguments."));
            }
            let flags = c_int(&args[0]);
            if !(0..=3).contains(&flags) {
                return Err(raise_text(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            if let Some(mut run) = lua.app_data_mut::<ScriptRun>() {
                // REPL_REPLICA's bit; REPL_AOF's has no file to reach.
                run.replicate = flags & 2 != 0;
            }
            Ok(())
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.set(name, value)?;
    }
    redis.set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.set("REDIS_VERSION_NUM", version_num())?;
    Ok(redis)
}

/// Redis's `REDIS_VERSION_NUM` for the version we answer as (0x00MMmmpp).
fn version_num() -> i64 {
    let mut parts = crate::REDIS_VERSION
        .split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next() << 16) | (next() << 8) | next()
}

/// `redis.log(level, ...)`: the arguments joined by spaces, at the level's severity.
fn log(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return Err(raise_text(
            lua,
            "redis.log() requires two arguments or more.",
        ));
    }
    let numeric = match &args[0] {
        Value::Integer(_) | Value::Number(_) => true,
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .is_some_and(|t| t.trim().parse::<f64>().is_ok()),
        _ => false,
    };
    if !numeric {
        return Err(raise_text(
            lua,
            "First argument must be a number (log level).",
        ));
    }
    let level = c_int(&args[0]);
    if !(0..=3).contains(&level) {
        return Err(raise_text(lua, "Invalid debug level."));
    }
    let mut line = Vec::new();
    for v in args.iter().skip(1) {
        if let Some(bytes) = arg_bytes(lua, v)? {
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(&bytes);
        }
    }
    let text = String::from_utf8_lossy(&line);
    match level {
        0 | 1 => tracing::debug!(target: "script", "{text}"),
        2 => tracing::info!(target: "script", "{text}"),
        _ => tracing::warn!(target: "script", "{text}"),
    }
    Ok(())
}

/// `rawset` and `setmetatable` that refuse the read-only tables (`real_of` maps each proxy
/// to its table), as Redis's Lua refuses writes to its read-only tables.
pub(super) fn guards(lua: &Lua, real_of: &Table) -> mlua::Result<(mlua::Function, mlua::Function)> {
    let protected = real_of.clone();
    let rawset = lua.create_function(move |_, (t, k, v): (Table, Value, Value)| {
        if protected.contains_key(t.clone())? {
            return Err(mlua::Error::runtime("Attempt to modify a readonly table"));
        }
        t.raw_set(k, v)?;
        Ok(t)
    })?;
    let protected = real_of.clone();
    let original: mlua::Function = lua.globals().get("setmetatable")?;
    let setmetatable = lua.create_function(move |_, (t, mt): (Value, Value)| {
        if let Value::Table(t) = &t
            && protected.contains_key(t.clone())?
        {
            return Err(mlua::Error::runtime("Attempt to modify a readonly table"));
        }
        original.call::<Value>((t, mt))
    })?;
    Ok((rawset, setmetatable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_is_hex_packed() {
        assert_eq!(version_num(), 0x07_00_0f);
    }
}
