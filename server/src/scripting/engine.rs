//! The interpreter: Lua 5.1 with the libraries and the `redis` API Redis 7.0 provides,
//! globals locked (sandbox.lua), and the run state a script's API calls read and change.

use super::run::{Bound, Scratch, arm_hook, redis_call};
use super::{api, convert, libs};
use crate::state::scripting::{ScriptRun, Scripts};
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Table, Value};

/// The private table of the sandbox: where the host finds the globals and installs the
/// command runner of the script in progress.
pub(super) struct Hidden(pub Table);

/// Redis's `redisLrand48`: a 48-bit linear congruential generator with the libc's
/// constants, so `math.random` gives the same sequence as Redis for the same seed.
pub(super) struct Rand48(u64);

impl Rand48 {
    const A: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn seed(&mut self, seed: i32) {
        self.0 = ((u64::from(seed as u32) << 16) | 0x330e) & Self::MASK;
    }

    fn next(&mut self) -> i64 {
        self.0 = (self.0.wrapping_mul(Self::A).wrapping_add(0xb)) & Self::MASK;
        (self.0 >> 17) as i64
    }
}

impl Default for Rand48 {
    /// Redis's initial state (`X0`, `X1`, `X2` of its rand.c).
    fn default() -> Self {
        Rand48(0x1234_abcd_330e)
    }
}

/// The server's interpreter, created on first use.
///
/// # Errors
/// When Lua cannot be set up (out of memory).
pub fn interpreter(scripts: &mut Scripts) -> mlua::Result<Lua> {
    if let Some(lua) = &scripts.lua {
        return Ok(lua.clone());
    }
    let lua = build()?;
    scripts.lua = Some(lua.clone());
    Ok(lua)
}

/// A new interpreter with the libraries, the `redis` API and the sandbox.
pub(super) fn build() -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    libs::open(&lua)?;
    lua.set_app_data(Rand48::default());
    let hidden = lua.create_table()?;
    let redis = api::redis_table(&lua)?;
    lua.globals().set("redis", redis.clone())?;
    let scratch = std::cell::RefCell::new(Scratch::default());
    redis.set(
        "call",
        lua.create_function(move |lua, argv: MultiValue| redis_call(lua, argv, &scratch))?,
    )?;
    let real_of = lua.create_table()?;
    let weak_keys = lua.create_table()?;
    weak_keys.set("__mode", "k")?;
    real_of.set_metatable(Some(weak_keys))?;
    let (rawset, setmetatable) = api::guards(&lua, &real_of)?;
    hidden.set("real_of", real_of)?;
    hidden.set("guarded_rawset", rawset)?;
    hidden.set("guarded_setmetatable", setmetatable)?;
    hidden.set(
        "unwrap",
        lua.create_function(|lua, e: Value| match e {
            Value::Error(e) => match api::raised_table(lua, &e) {
                Some(t) => Ok(Value::Table(t)),
                None => Ok(Value::String(lua.create_string(convert::error_text(&e))?)),
            },
            other => Ok(other),
        })?,
    )?;
    let math: Table = lua.globals().get("math")?;
    math.set("random", lua.create_function(math_random)?)?;
    math.set("randomseed", lua.create_function(math_randomseed)?)?;
    hidden.set("handler", lua.create_function(error_handler)?)?;
    lua.load(include_str!("sandbox.lua"))
        .set_name("=sandbox")
        .call::<()>(hidden.clone())?;
    lua.set_app_data(std::rc::Rc::new(Bound {
        globals: hidden.get("globals")?,
        handler: hidden.get("handler")?,
        run_eval: hidden.get("run_eval")?,
        run_function: hidden.get("run_function")?,
        keys_key: lua.create_string("KEYS")?,
        argv_key: lua.create_string("ARGV")?,
    }));
    lua.set_app_data(Hidden(hidden));
    arm_hook(&lua)?;
    Ok(lua)
}

/// Lua's `luaL_where(L, 1)`: the position of the Lua code that called a library function,
/// which its error messages start with.
fn caller_position(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let src = d
            .source()
            .short_src
            .map(|s| s.to_string())
            .unwrap_or_default();
        d.current_line().map(|line| format!("{src}:{line}: "))
    })
    .flatten()
    .unwrap_or_default()
}

/// Lua's `luaL_checkint` for argument `n` of `func`.
fn check_int(lua: &Lua, args: &MultiValue, n: usize, func: &str) -> mlua::Result<i64> {
    let v = args.get(n - 1).cloned().unwrap_or(Value::Nil);
    let number = match &v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(f) => Some(*f),
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        _ => None,
    };
    match number {
        Some(f) => Ok(f as i32 as i64),
        None => {
            let got = if args.len() < n {
                "no value"
            } else {
                v.type_name()
            };
            Err(mlua::Error::runtime(format!(
                "{}bad argument #{n} to '{func}' (number expected, got {got})",
                caller_position(lua)
            )))
        }
    }
}

/// Redis's `math.random`: Lua's own, drawing from Redis's rand48.
fn math_random(lua: &Lua, args: MultiValue) -> mlua::Result<f64> {
    if lua.app_data_ref::<ScriptRun>().is_none() {
        return Err(mlua::Error::runtime(format!(
            "{}math.random can only be called inside a script invocation",
            caller_position(lua)
        )));
    }
    const MAX: i64 = i32::MAX as i64;
    let draw = lua.app_data_mut::<Rand48>().map_or(0, |mut r| r.next());
    let r = (draw % MAX) as f64 / MAX as f64;
    let empty = |arg: usize| {
        mlua::Error::runtime(format!(
            "{}bad argument #{arg} to 'random' (interval is empty)",
            caller_position(lua)
        ))
    };
    match args.len() {
        0 => Ok(r),
        1 => {
            let u = check_int(lua, &args, 1, "random")?;
            if u < 1 {
                return Err(empty(1));
            }
            Ok((r * u as f64).floor() + 1.0)
        }
        2 => {
            let l = check_int(lua, &args, 1, "random")?;
            let u = check_int(lua, &args, 2, "random")?;
            if l > u {
                return Err(empty(2));
            }
            Ok((r * (u - l + 1) as f64).floor() + l as f64)
        }
        _ => Err(mlua::Error::runtime(format!(
            "{}wrong number of arguments",
            caller_position(lua)
        ))),
    }
}

fn math_randomseed(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if lua.app_data_ref::<ScriptRun>().is_none() {
        return Err(mlua::Error::runtime(format!(
            "{}math.randomseed can only be called inside a script invocation",
            caller_position(lua)
        )));
    }
    let seed = check_int(lua, &args, 1, "randomseed")?;
    if let Some(mut r) = lua.app_data_mut::<Rand48>() {
        r.seed(seed as i32);
    }
    Ok(())
}

/// The message handler a script runs under (Redis's `__redis__err__handler`): the error
/// becomes a table `{err=}` (`ERR ` before a plain message) and gets the source and line of
/// the script code that failed, the innermost frame of the user's code.
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            if let Value::Error(e) = &other
                && let Some(t) = api::raised_table(lua, e)
            {
                return with_position(lua, t);
            }
            let msg = match &other {
                Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                Value::Number(n) => convert::number_text(*n),
                Value::Integer(n) => n.to_string(),
                Value::Error(e) => convert::error_text(e),
                Value::Nil => "nil".into(),
                Value::Boolean(b) => b.to_string(),
                v => v.type_name().to_string(),
            };
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {msg}"))?;
            t
        }
    };
    with_position(lua, t)
}

/// Adds the source and line of the code that failed: the first frame, from the error up,
/// that is neither a C function nor the sandbox's own Lua (Redis's handler takes the
/// caller of the raising C function).
fn with_position(lua: &Lua, t: Table) -> mlua::Result<Table> {
    for level in 1..64 {
        let Some(frame) = lua.inspect_stack(level, |d| {
            let source = d.source();
            (
                source.what,
                source.source.map(|s| s.to_string()),
                d.current_line(),
            )
        }) else {
            break;
        };
        if let (what, Some(source), Some(line)) = frame
            && what != "C"
            && source != "=sandbox"
        {
            t.raw_set("source", source)?;
            t.raw_set("line", line)?;
            break;
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(lua: &Lua, code: &str) -> mlua::Result<Value> {
        lua.load(code).set_name("@user_script").eval()
    }

    #[test]
    fn globals_are_read_only_with_redis_errors() {
        let lua = build().expect("lua");
        let e = eval(&lua, "a = 1").expect_err("an error").to_string();
        assert!(
            e.contains("user_script:1: Attempt to modify a readonly table"),
            "{e}"
        );
        let e = eval(&lua, "return undefined_name")
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains("user_script:1: Script attempted to access nonexistent global variable 'undefined_name'"),
            "{e}"
        );
        let e = eval(&lua, "string.x = 1")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("Attempt to modify a readonly table"), "{e}");
        let e = eval(&lua, "rawset(_G, 'a', 1)")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("Attempt to modify a readonly table"), "{e}");
        for gone in [
            "os", "io", "print", "dofile", "loadfile", "require", "debug", "package", "getfenv",
            "setfenv", "newproxy",
        ] {
            let e = eval(&lua, &format!("return {gone}"))
                .expect_err("an error")
                .to_string();
            assert!(e.contains("nonexistent global variable"), "{gone}: {e}");
        }
        // Reads still work, through the proxies.
        let v: String = lua
            .load("return ('abc'):upper() .. string.rep('x', 2)")
            .eval()
            .expect("str");
        assert_eq!(v, "ABCxx");
        let n: i64 = lua
            .load("local n = 0 for k in pairs(string) do n = n + 1 end return n")
            .eval()
            .expect("pairs");
        assert!(n > 10, "pairs sees the library: {n}");
        let same: bool = lua
            .load("return _G == _G._G and _G.redis ~= nil")
            .eval()
            .expect("g");
        assert!(same);
    }

    #[test]
    fn math_random_is_redis_sequence() {
        let lua = build().expect("lua");
        lua.set_app_data(ScriptRun::default());
        // redis-cli EVAL "math.randomseed(42); return {math.random(1000), math.random(1000),
        // tostring(math.random())}" 0
        let v: (i64, i64, String) = lua
            .load("math.randomseed(42) return math.random(1000), math.random(1000), tostring(math.random())")
            .eval()
            .expect("random");
        assert_eq!(v, (745, 343, "0.11108528222474".to_string()));
        let e = eval(&lua, "return math.random(5, 1)")
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains("user_script:1: bad argument #2 to 'random' (interval is empty)"),
            "{e}"
        );
    }
}
