//! What the four libraries share: Lua's C limits as the originals meet them, argument
//! checks with the C API's wording, and number conversions as C performs them.

use mlua::{Lua, LuaString, Value};

/// `LUAI_MAXCSTACK`: the Lua stack slots one C call may use. The C libraries hit it on deep
/// data (and report it in their own words), so the rewrites count the slots the C code would
/// hold and fail at the same point.
pub(super) const MAX_C_STACK: usize = 8000;

/// The most values a Rust callback can return: mlua needs a few Lua stack slots of its own
/// beyond the results (measured), so the C libraries' limit of `MAX_C_STACK` less the
/// arguments is not reachable.
pub(super) const MAX_RESULTS: usize = 7975;

/// Levels of an explicit stack up to this depth hold their Lua values as handles; deeper ones
/// park them in a Lua table. Each handle takes a slot of mlua's reference stack, which is about
/// as small as the Lua stack the C code counts against, so a walk as deep as the C allows
/// would run out of references first.
pub(super) const HELD_LEVELS: usize = 200;

/// Lua values an explicit stack keeps per level: held as handles near the top of the data,
/// parked in a Lua table below [`HELD_LEVELS`].
pub(super) struct Levels<'a> {
    pub(super) lua: &'a Lua,
    pub(super) parked: Option<mlua::Table>,
}

/// One kept value: its handle, or its key in the parking table.
pub(super) enum Kept {
    Held(Value),
    Parked(i64),
}

impl<'a> Levels<'a> {
    pub(super) fn new(lua: &'a Lua) -> Self {
        Levels { lua, parked: None }
    }

    /// Keeps `v` as value number `which` (0 or 1) of level `depth`.
    pub(super) fn keep(&mut self, depth: usize, which: i64, v: Value) -> mlua::Result<Kept> {
        if depth <= HELD_LEVELS {
            return Ok(Kept::Held(v));
        }
        let parked = match &self.parked {
            Some(t) => t,
            None => self.parked.insert(self.lua.create_table()?),
        };
        let key = i64::try_from(depth).unwrap_or(i64::MAX).saturating_mul(2) + which;
        parked.raw_set(key, v)?;
        Ok(Kept::Parked(key))
    }

    pub(super) fn get(&self, kept: &Kept) -> mlua::Result<Value> {
        match (kept, &self.parked) {
            (Kept::Held(v), _) => Ok(v.clone()),
            (Kept::Parked(key), Some(parked)) => parked.raw_get(*key),
            (Kept::Parked(_), None) => Ok(Value::Nil),
        }
    }

    pub(super) fn set(&self, kept: &mut Kept, v: Value) -> mlua::Result<()> {
        match (kept, &self.parked) {
            (Kept::Held(slot), _) => *slot = v,
            (Kept::Parked(key), Some(parked)) => parked.raw_set(*key, v)?,
            (Kept::Parked(_), None) => {}
        }
        Ok(())
    }

    /// Releases what a finished level parked, so the table can be collected.
    pub(super) fn release(&self, kept: Kept) -> mlua::Result<Value> {
        match (kept, &self.parked) {
            (Kept::Held(v), _) => Ok(v),
            (Kept::Parked(key), Some(parked)) => {
                let v = parked.raw_get(key)?;
                parked.raw_set(key, Value::Nil)?;
                Ok(v)
            }
            (Kept::Parked(_), None) => Ok(Value::Nil),
        }
    }
}

/// `luaL_error`: the message behind the calling Lua line's position, when the caller is Lua.
pub(super) fn error(lua: &Lua, msg: &str) -> mlua::Error {
    let place = lua.inspect_stack(1, |d| {
        let line = d.current_line().filter(|&l| l > 0)?;
        let source = d.source();
        let short_src = source.short_src.as_deref().unwrap_or("?");
        Some(format!("{short_src}:{line}: "))
    });
    match place.flatten() {
        Some(place) => raw_error(format!("{place}{msg}")),
        None => raw_error(msg),
    }
}

/// An error raised without a position, as `lua_error` and the core's own errors in a C call.
pub(super) fn raw_error(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// `lua_typename(lua_type(v))`; `None` is an argument position past the end ("no value").
pub(super) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_) | Value::UserData(_)) => "userdata",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// A Lua number as a double (mlua hands integral doubles over as `Integer`).
pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        // Lua 5.1 numbers are doubles, so this conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A double to int64 as x86 converts it: out of range, and NaN, give `i64::MIN`. The C
/// libraries convert out-of-range numbers too, and their results are what x86 makes of it.
pub(super) fn c_i64(x: f64) -> i64 {
    // -2^63 and 2^63.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        // In range: truncation toward zero, as in C.
        #[allow(clippy::cast_possible_truncation)]
        let v = x as i64;
        v
    } else {
        i64::MIN
    }
}

/// A double to uint64 as gcc's x86 code converts it: from 2^63 on, by the signed conversion
/// of `x - 2^63` with the top bit flipped; so 2^64 and beyond give 0, NaN `1 << 63`.
pub(super) fn c_u64(x: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // Reinterpreting the signed result's bits is the point.
    #[allow(clippy::cast_sign_loss)]
    if x >= TWO_63 {
        (c_i64(x - TWO_63) as u64) ^ (1 << 63)
    } else {
        c_i64(x) as u64
    }
}

/// The arguments of one call, with the `luaL_check*` family's coercions and messages.
pub(super) struct Args<'a> {
    pub(super) lua: &'a Lua,
    pub(super) values: Vec<Value>,
}

impl<'a> Args<'a> {
    pub(super) fn new(lua: &'a Lua, values: mlua::MultiValue) -> Self {
        Args {
            lua,
            values: values.into_vec(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Argument `n` (1-based), `None` past the end.
    pub(super) fn get(&self, n: usize) -> Option<&Value> {
        n.checked_sub(1).and_then(|i| self.values.get(i))
    }

    pub(super) fn is_none_or_nil(&self, n: usize) -> bool {
        matches!(self.get(n), None | Some(Value::Nil))
    }

    /// `luaL_argerror`: names the function the way the caller's code called it.
    pub(super) fn arg_error(&self, n: usize, extra: &str) -> mlua::Error {
        let names = self.lua.inspect_stack(0, |d| {
            let names = d.names();
            (names.name.map(|s| s.into_owned()), names.name_what)
        });
        let Some((name, what)) = names else {
            return error(self.lua, &format!("bad argument #{n} ({extra})"));
        };
        let mut n = i64::try_from(n).unwrap_or(i64::MAX);
        if what == Some("method") {
            n -= 1;
            if n == 0 {
                let name = name.as_deref().unwrap_or("?");
                return error(self.lua, &format!("calling '{name}' on bad self ({extra})"));
            }
        }
        let name = name.as_deref().unwrap_or("?");
        error(
            self.lua,
            &format!("bad argument #{n} to '{name}' ({extra})"),
        )
    }

    /// `luaL_typerror`.
    pub(super) fn type_error(&self, n: usize, expected: &str) -> mlua::Error {
        let got = type_name(self.get(n));
        self.arg_error(n, &format!("{expected} expected, got {got}"))
    }

    /// `lua_tonumber`: numbers and numeric strings, else `None`.
    pub(super) fn to_number(&self, n: usize) -> mlua::Result<Option<f64>> {
        match self.get(n) {
            None => Ok(None),
            Some(v) => match number(v) {
                Some(x) => Ok(Some(x)),
                None => self.lua.coerce_number(v.clone()),
            },
        }
    }

    /// `luaL_checknumber`.
    pub(super) fn check_number(&self, n: usize) -> mlua::Result<f64> {
        self.to_number(n)?
            .ok_or_else(|| self.type_error(n, "number"))
    }

    /// `luaL_checkinteger`: the number truncated toward zero.
    pub(super) fn check_integer(&self, n: usize) -> mlua::Result<i64> {
        // A C cast; Rust saturates where C's is undefined.
        #[allow(clippy::cast_possible_truncation)]
        self.check_number(n).map(|x| x as i64)
    }

    /// `luaL_optinteger`.
    pub(super) fn opt_integer(&self, n: usize, default: i64) -> mlua::Result<i64> {
        if self.is_none_or_nil(n) {
            Ok(default)
        } else {
            self.check_integer(n)
        }
    }

    /// `luaL_checklstring`: strings, and numbers converted as Lua does.
    pub(super) fn check_string(&self, n: usize) -> mlua::Result<LuaString> {
        let converted = match self.get(n) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Integer(_) | Value::Number(_))) => {
                self.lua.coerce_string(v.clone())?
            }
            _ => None,
        };
        converted.ok_or_else(|| self.type_error(n, "string"))
    }
}
