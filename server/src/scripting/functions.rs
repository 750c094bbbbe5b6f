//! Redis 7.0's function libraries: the `#!lua name=<lib>` metadata line, the environment a
//! library's body runs in while it loads (only `redis.register_function`, `redis.log` and
//! the version; see library_api.lua), `register_function`'s arguments, and creating a
//! library into a registry with Redis's checks and error texts.
//!
//! Libraries live in their own interpreter ([`Functions::lua`]), apart from EVAL's. This
//! module does not decide what a load means for replication or persistence: the commands
//! and the loaders do.

use super::{api, convert, engine};
use crate::state::scripting::{Functions, LibFunction, Libraries, Library, ScriptFlags};
use mlua::{HookTriggers, Lua, MultiValue, Table, Value, VmState};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// FUNCTION LOAD's limit on running a library's body (Redis's `LOAD_TIMEOUT_MS`); loads
/// from a master or a dump have none.
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Lua instructions between two checks of the load's clock, as Redis's hook counts them.
const HOOK_PERIOD: u32 = 100_000;

const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// The functions' interpreter, created on first use.
///
/// # Errors
/// When Lua cannot be set up (out of memory).
pub fn interpreter(functions: &mut Functions) -> mlua::Result<Lua> {
    if let Some(lua) = &functions.lua {
        return Ok(lua.clone());
    }
    let lua = engine::build()?;
    let hidden = lua
        .app_data_ref::<engine::Hidden>()
        .map(|h| h.0.clone())
        .ok_or_else(|| mlua::Error::runtime("the interpreter has no sandbox"))?;
    let register = lua.create_function(register_function)?;
    lua.load(include_str!("library_api.lua"))
        .set_name("=library_api")
        .call::<()>((hidden, register))?;
    functions.lua = Some(lua.clone());
    Ok(lua)
}

/// The metadata line of a library: its engine and name, and where the body starts (at the
/// line's newline, so line numbers stay the user's). Redis's `functionExtractLibMetaData`.
///
/// # Errors
/// Redis's texts, without the `ERR ` code.
pub fn parse_metadata(code: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = crate::protocol::split_args(&code[..end])
        .filter(|p| !p.is_empty())
        .ok_or_else(|| "Invalid library metadata".to_string())?;
    let engine = parts[0][2..].to_vec();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        ));
    }
    let name = name.ok_or_else(|| "Library name was not given".to_string())?;
    Ok((engine, name, end))
}

/// Redis's rule for library and function names: `[a-zA-Z0-9_]+`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Creates the library `code` defines and adds it to `libs` (Redis's
/// `functionsCreateWithLibraryCtx`): `replace` lets it take the place of a library of the
/// same name; `timeout` bounds the run of its body. Returns the library's name.
///
/// # Errors
/// Redis's texts, without the `ERR ` code; `libs` is then unchanged.
pub fn create(
    lua: &Lua,
    libs: &mut Libraries,
    code: &[u8],
    replace: bool,
    timeout: Option<Duration>,
) -> Result<String, String> {
    let (engine, name, body_at) = parse_metadata(code)?;
    if !valid_name(&name) {
        return Err(BAD_NAME.into());
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(&engine)
        ));
    }
    if libs.get(&name).is_some() && !replace {
        return Err(format!("Library '{name}' already exists"));
    }
    let functions = run_body(lua, &code[body_at..], timeout)?;
    if functions.is_empty() {
        return Err("No functions registered".into());
    }
    for f in functions.keys() {
        if libs.owner_of(f).is_some_and(|owner| owner != name) {
            return Err(format!("Function {f} already exists"));
        }
    }
    libs.unlink(&name);
    libs.link(Library {
        name: name.clone(),
        code: code.to_vec(),
        functions,
    });
    Ok(name)
}

/// Builds a new registry holding the libraries of `codes` (a dump's FUNCTION2 records), as
/// Redis loads them into an empty context: a name given twice is an error.
///
/// # Errors
/// The first library that fails, with Redis's text.
pub fn create_all<'c>(
    lua: &Lua,
    codes: impl IntoIterator<Item = &'c [u8]>,
) -> Result<Libraries, String> {
    let mut libs = Libraries::default();
    for code in codes {
        create(lua, &mut libs, code, false, None)?;
    }
    Ok(libs)
}

/// How FUNCTION RESTORE merges a dump's libraries with the loaded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Flush,
    Append,
    Replace,
}

/// Moves every library of `src` into `dst` (Redis's `libraryJoin`, or a swap for FLUSH).
///
/// # Errors
/// A library name taken (APPEND) or a function name taken by a library that stays; `dst` is
/// then unchanged.
pub fn join(dst: &mut Libraries, mut src: Libraries, policy: RestorePolicy) -> Result<(), String> {
    if policy == RestorePolicy::Flush {
        *dst = src;
        return Ok(());
    }
    for lib in src.iter() {
        if dst.get(&lib.name).is_some() && policy == RestorePolicy::Append {
            return Err(format!("Library {} already exists", lib.name));
        }
    }
    for lib in src.iter() {
        for f in lib.functions.keys() {
            if let Some(owner) = dst.owner_of(f)
                && src.get(owner).is_none()
            {
                return Err(format!("Function {f} already exists"));
            }
        }
    }
    for lib in src.take_all() {
        dst.unlink(&lib.name);
        dst.link(lib);
    }
    Ok(())
}

/// What `register_function` collects while a body runs.
struct Loading(BTreeMap<String, LibFunction>);

/// Runs a library's body with the load-time globals; returns the functions it registered.
fn run_body(
    lua: &Lua,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<BTreeMap<String, LibFunction>, String> {
    let chunk = super::chunk::compile(lua, body, "@user_function")
        .map_err(|e| format!("Error compiling function: {e}"))?;
    let hidden = lua
        .app_data_ref::<engine::Hidden>()
        .map(|h| h.0.clone())
        .ok_or("the interpreter has no sandbox")?;
    let meta: Table = hidden.raw_get("globals_meta").map_err(|e| e.to_string())?;
    let load_api: Table = hidden.raw_get("library_api").map_err(|e| e.to_string())?;
    let globals: Table = hidden.raw_get("globals").map_err(|e| e.to_string())?;
    meta.raw_set("__index", load_api)
        .map_err(|e| e.to_string())?;
    lua.set_app_data(Loading(BTreeMap::new()));
    if let Some(limit) = timeout {
        let started = Instant::now();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_PERIOD),
            move |lua, _| {
                if started.elapsed() > limit {
                    return Err(api::raise_text(lua, "FUNCTION LOAD timeout"));
                }
                Ok(VmState::Continue)
            },
        )
        .map_err(|e| e.to_string())?;
    }
    // Under a handler that keeps the error value as raised (a message, or an API error
    // table), as Redis's plain `lua_pcall` does: no traceback gets appended.
    let ran = hidden
        .raw_get::<mlua::Function>("run_eval")
        .and_then(|run| {
            let keep = lua.create_function(|_, e: Value| Ok(e))?;
            run.call::<(bool, Value)>((chunk, keep))
        });
    lua.remove_hook();
    let restored = meta.raw_set("__index", globals);
    let registered = lua.remove_app_data::<Loading>().map(|l| l.0);
    let failure = match ran {
        Ok((true, _)) => None,
        Ok((false, e)) => Some(load_error_text(lua, e)),
        Err(e) => Some(load_error_text(lua, Value::Error(Box::new(e)))),
    };
    if let Some(msg) = failure {
        return Err(format!("Error registering functions: {msg}"));
    }
    restored.map_err(|e| e.to_string())?;
    Ok(registered.unwrap_or_default())
}

/// Redis's `luaExtractErrorInformation` message: a string gets `ERR `, an error table
/// gives its `err`.
fn load_error_text(lua: &Lua, e: Value) -> String {
    let table = match &e {
        Value::Table(t) => Some(t.clone()),
        Value::Error(err) => api::raised_table(lua, err),
        _ => None,
    };
    if let Some(t) = table {
        return match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "(null)".into(),
        };
    }
    match e {
        Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
        Value::Error(err) => format!("ERR {}", convert::error_text(&err)),
        Value::Integer(n) => format!("ERR {n}"),
        Value::Number(n) => format!("ERR {}", convert::number_text(n)),
        _ => "(null)".into(),
    }
}

/// `redis.register_function`: adds a function to the library being loaded (Redis's
/// `luaRegisterFunction`).
fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if lua.app_data_ref::<Loading>().is_none() {
        return Err(api::raise_text(
            lua,
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    }
    let f = read_args(lua, &args)?.map_err(|e| api::raise_text(lua, e))?;
    if !valid_name(f.name.as_bytes()) {
        return Err(api::raise_text(lua, BAD_NAME));
    }
    let Some(mut loading) = lua.app_data_mut::<Loading>() else {
        return Ok(());
    };
    if loading.0.contains_key(&f.name) {
        drop(loading);
        return Err(api::raise_text(
            lua,
            "Function already exists in the library",
        ));
    }
    loading.0.insert(f.name.clone(), f);
    Ok(())
}

/// Lua's `lua_tostring` for a string or a number; `None` for anything else.
fn lua_text(lua: &Lua, v: &Value) -> mlua::Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    })
}

/// `register_function`'s arguments, positional (name, callback) or named (a table), with
/// Redis's errors.
fn read_args(lua: &Lua, args: &MultiValue) -> mlua::Result<Result<LibFunction, &'static str>> {
    match args.len() {
        1 => read_named(lua, &args[0]),
        2 => {
            let Some(name) = lua_text(lua, &args[0])? else {
                return Ok(Err(
                    "first argument to redis.register_function must be a string",
                ));
            };
            let Value::Function(function) = args[1].clone() else {
                return Ok(Err(
                    "second argument to redis.register_function must be a function",
                ));
            };
            Ok(Ok(LibFunction {
                name: String::from_utf8_lossy(&name).into_owned(),
                description: None,
                flags: ScriptFlags::default(),
                function,
            }))
        }
        _ => Ok(Err("wrong number of arguments to redis.register_function")),
    }
}

fn read_named(lua: &Lua, arg: &Value) -> mlua::Result<Result<LibFunction, &'static str>> {
    let Value::Table(t) = arg else {
        return Ok(Err(
            "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
        ));
    };
    let mut name = None;
    let mut description = None;
    let mut callback = None;
    let mut flags = ScriptFlags::default();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(key) = lua_text(lua, &k)? else {
            return Ok(Err(
                "named argument key given to redis.register_function is not a string",
            ));
        };
        if key.eq_ignore_ascii_case(b"function_name") {
            let Some(n) = lua_text(lua, &v)? else {
                return Ok(Err(
                    "function_name argument given to redis.register_function must be a string",
                ));
            };
            name = Some(n);
        } else if key.eq_ignore_ascii_case(b"description") {
            let Some(d) = lua_text(lua, &v)? else {
                return Ok(Err(
                    "description argument given to redis.register_function must be a string",
                ));
            };
            description = Some(d);
        } else if key.eq_ignore_ascii_case(b"callback") {
            let Value::Function(f) = v else {
                return Ok(Err(
                    "callback argument given to redis.register_function must be a function",
                ));
            };
            callback = Some(f);
        } else if key.eq_ignore_ascii_case(b"flags") {
            let Value::Table(list) = v else {
                return Ok(Err(
                    "flags argument to redis.register_function must be a table representing function flags",
                ));
            };
            match read_flags(lua, &list)? {
                Some(f) => flags = f,
                None => return Ok(Err("unknown flag given")),
            }
        } else {
            return Ok(Err("unknown argument given to redis.register_function"));
        }
    }
    let Some(name) = name else {
        return Ok(Err(
            "redis.register_function must get a function name argument",
        ));
    };
    let Some(function) = callback else {
        return Ok(Err("redis.register_function must get a callback argument"));
    };
    Ok(Ok(LibFunction {
        name: String::from_utf8_lossy(&name).into_owned(),
        description,
        flags,
        function,
    }))
}

/// The `flags` list: `t[1]`, `t[2]`, ... up to the first nil; `None` for an unknown flag.
fn read_flags(lua: &Lua, list: &Table) -> mlua::Result<Option<ScriptFlags>> {
    let mut flags = ScriptFlags::default();
    for j in 1.. {
        let v: Value = list.get(j)?;
        if v.is_nil() {
            break;
        }
        let Some(flag) = lua_text(lua, &v)? else {
            return Ok(None);
        };
        let flag = String::from_utf8_lossy(&flag).to_ascii_lowercase();
        match flag.as_str() {
            "no-writes" => flags.no_writes = true,
            "allow-oom" => flags.allow_oom = true,
            "allow-stale" => flags.allow_stale = true,
            "no-cluster" => flags.no_cluster = true,
            "allow-cross-slot-keys" => flags.allow_cross_slot = true,
            _ => return Ok(None),
        }
    }
    Ok(Some(flags))
}

/// A function's flags as FUNCTION LIST names them, in Redis's order.
pub fn flag_names(flags: ScriptFlags) -> Vec<&'static str> {
    [
        (flags.no_writes, "no-writes"),
        (flags.allow_oom, "allow-oom"),
        (flags.allow_stale, "allow-stale"),
        (flags.no_cluster, "no-cluster"),
        (flags.allow_cross_slot, "allow-cross-slot-keys"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(lua: &Lua, libs: &mut Libraries, body: &str) -> Result<String, String> {
        create(lua, libs, body.as_bytes(), false, Some(LOAD_TIMEOUT))
    }

    #[test]
    fn metadata_as_redis_reads_it() {
        assert_eq!(
            parse_metadata(b"#!lua name=mylib\nreturn 1"),
            Ok((b"lua".to_vec(), b"mylib".to_vec(), 16))
        );
        assert_eq!(
            parse_metadata(b"#!lua NAME=\"a b\"\n"),
            Ok((b"lua".to_vec(), b"a b".to_vec(), 16))
        );
        for (code, err) in [
            (&b"return 1"[..], "Missing library metadata"),
            (b"#!lua name=x", "Invalid library metadata"),
            (b"#!lua name=\"x\n", "Invalid library metadata"),
            (b"#!lua\n", "Library name was not given"),
            (
                b"#!lua name=a name=b\n",
                "Invalid metadata value, name argument was given multiple times",
            ),
            (b"#!lua foo=a\n", "Invalid metadata value given: foo=a"),
        ] {
            assert_eq!(parse_metadata(code).expect_err("an error"), err);
        }
    }

    #[test]
    fn load_time_environment_and_errors() {
        let mut f = Functions::default();
        let lua = interpreter(&mut f).expect("lua");
        let libs = &mut f.libraries;
        assert_eq!(
            load(&lua, libs, "#!lua name=x\nredis.call('ping')"),
            Err("Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'".into())
        );
        assert_eq!(
            load(&lua, libs, "#!lua name=x\nlocal s = string.format('a')"),
            Err("Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'".into())
        );
        assert_eq!(
            load(&lua, libs, "#!lua name=x\nx = 1"),
            Err("Error registering functions: ERR user_function:2: Attempt to modify a readonly table".into())
        );
        assert_eq!(
            load(&lua, libs, "#!lua name=x\nreturn (("),
            Err("Error compiling function: user_function:2: unexpected symbol near '<eof>'".into())
        );
        assert_eq!(
            load(
                &lua,
                libs,
                "#!lua name=x\nredis.log(redis.LOG_NOTICE, 'hi')"
            ),
            Err("No functions registered".into())
        );
        assert_eq!(
            load(&lua, libs, "#!py name=x\n"),
            Err("Engine 'py' not found".into())
        );
        assert_eq!(load(&lua, libs, "#!lua name=a-b\n"), Err(BAD_NAME.into()));
        let cases = [
            (
                "redis.register_function()",
                "wrong number of arguments to redis.register_function",
            ),
            (
                "redis.register_function(1)",
                "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
            ),
            (
                "redis.register_function({})",
                "redis.register_function must get a function name argument",
            ),
            (
                "redis.register_function({function_name='a'})",
                "redis.register_function must get a callback argument",
            ),
            (
                "redis.register_function({function_name={}, callback=function() end})",
                "function_name argument given to redis.register_function must be a string",
            ),
            (
                "redis.register_function({function_name='a', callback=1})",
                "callback argument given to redis.register_function must be a function",
            ),
            (
                "redis.register_function({function_name='a', callback=function() end, flags=1})",
                "flags argument to redis.register_function must be a table representing function flags",
            ),
            (
                "redis.register_function({function_name='a', callback=function() end, flags={'bad'}})",
                "unknown flag given",
            ),
            (
                "redis.register_function({function_name='a', callback=function() end, description={}})",
                "description argument given to redis.register_function must be a string",
            ),
            (
                "redis.register_function({function_name='a', callback=function() end, foo=1})",
                "unknown argument given to redis.register_function",
            ),
            (
                "redis.register_function({}, 2)",
                "first argument to redis.register_function must be a string",
            ),
            (
                "redis.register_function('a', 2)",
                "second argument to redis.register_function must be a function",
            ),
            ("redis.register_function('a-b', function() end)", BAD_NAME),
            (
                "redis.register_function('a', function() end)\nredis.register_function('a', function() end)",
                "Function already exists in the library",
            ),
        ];
        for (body, err) in cases {
            assert_eq!(
                load(&lua, libs, &format!("#!lua name=t\n{body}")),
                Err(format!("Error registering functions: ERR {err}")),
                "{body}"
            );
        }
        assert!(libs.is_empty());
    }

    #[test]
    fn libraries_register_with_flags_and_collide_by_name() {
        let mut f = Functions::default();
        let lua = interpreter(&mut f).expect("lua");
        let libs = &mut f.libraries;
        let lib = "#!lua name=lib\nredis.register_function{function_name='Aa', callback=function(k, a) return #k + #a end, flags={'NO-WRITES', 'allow-oom'}, description='d'}\nredis.register_function(1, function() return 1 end)";
        assert_eq!(load(&lua, libs, lib), Ok("lib".into()));
        assert_eq!(
            load(&lua, libs, lib),
            Err("Library 'lib' already exists".into())
        );
        let f = libs.function(b"aA").expect("case-insensitive");
        assert_eq!(f.name, "Aa");
        assert_eq!(flag_names(f.flags), ["no-writes", "allow-oom"]);
        assert_eq!(f.description.as_deref(), Some(&b"d"[..]));
        assert!(libs.function(b"1").is_some());
        assert_eq!(
            load(
                &lua,
                libs,
                "#!lua name=other\nredis.register_function('AA', function() end)"
            ),
            Err("Function AA already exists".into())
        );
        // REPLACE may keep its own function names.
        assert_eq!(
            create(&lua, libs, lib.as_bytes(), true, None),
            Ok("lib".into())
        );
        assert_eq!(libs.function_count(), 2);
    }

    #[test]
    fn a_body_that_runs_too_long_is_stopped() {
        let mut f = Functions::default();
        let lua = interpreter(&mut f).expect("lua");
        let err = create(
            &lua,
            &mut f.libraries,
            b"#!lua name=x\nlocal a = 1 while true do a = a + 1 end",
            false,
            Some(Duration::from_millis(20)),
        );
        assert_eq!(
            err,
            Err("Error registering functions: ERR FUNCTION LOAD timeout".into())
        );
        // The globals are the run-time ones again.
        let v: String = lua.load("return string.upper('a')").eval().expect("eval");
        assert_eq!(v, "A");
    }

    #[test]
    fn restore_policies() {
        let mut f = Functions::default();
        let lua = interpreter(&mut f).expect("lua");
        let a = "#!lua name=a\nredis.register_function('fa', function() end)";
        let b = "#!lua name=b\nredis.register_function('fb', function() end)";
        let b2 = "#!lua name=b2\nredis.register_function('fb', function() end)";
        let mut dst = create_all(&lua, [a.as_bytes(), b.as_bytes()]).expect("dst");
        let src = create_all(&lua, [b.as_bytes()]).expect("src");
        assert_eq!(
            join(&mut dst, src, RestorePolicy::Append),
            Err("Library b already exists".into())
        );
        let src = create_all(&lua, [b2.as_bytes()]).expect("src");
        assert_eq!(
            join(&mut dst, src, RestorePolicy::Replace),
            Err("Function fb already exists".into())
        );
        assert_eq!(dst.len(), 2);
        let src = create_all(&lua, [b.as_bytes()]).expect("src");
        assert_eq!(join(&mut dst, src, RestorePolicy::Replace), Ok(()));
        assert_eq!(dst.len(), 2);
        let src = create_all(&lua, [b2.as_bytes()]).expect("src");
        assert_eq!(join(&mut dst, src, RestorePolicy::Flush), Ok(()));
        assert_eq!(
            dst.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["b2"]
        );
        assert_eq!(
            create_all(&lua, [a.as_bytes(), a.as_bytes()]).map(|l| l.len()),
            Err("Library 'a' already exists".into())
        );
    }
}
