//! The four C libraries Redis 7.0 loads into its Lua 5.1 as globals (`bit`, `cjson`,
//! `cmsgpack`, `struct`), rewritten on mlua with the originals' observable behaviour: results,
//! number formatting and error texts. It must not know about Redis commands or replies.
//!
//! Errors: these functions are Rust callbacks, so to Lua they are C frames like the originals
//! (a tail call keeps the caller's frame, debug info names them as the caller's code does).
//! They raise [`mlua::Error::RuntimeError`] carrying exactly the text the C library raises,
//! `luaL_error`'s position prefix of the calling Lua line included; mlua wraps it in
//! `CallbackError`, and whoever shows the error to a script or a client reads the root cause.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;
mod support;

use mlua::Lua;

/// Sets the globals `bit`, `cjson`, `cmsgpack` and `struct`.
///
/// # Errors
///
/// Only when Lua cannot allocate the tables or functions.
pub fn open(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.set("bit", bit::module(lua)?)?;
    globals.set("cjson", cjson::module(lua)?)?;
    globals.set("cmsgpack", cmsgpack::module(lua)?)?;
    globals.set("struct", structlib::module(lua)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, Value};

    /// A state with the four libraries, as Redis sets it up.
    pub fn lua() -> Lua {
        let lua = Lua::new();
        super::open(&lua).expect("open the libraries");
        lua
    }

    /// The value of a Lua expression.
    pub fn eval(lua: &Lua, expr: &str) -> Value {
        lua.load(format!("return {expr}"))
            .set_name("@user_script")
            .eval()
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// A Lua expression's value as bytes (it must be a string).
    pub fn bytes(lua: &Lua, expr: &str) -> Vec<u8> {
        match eval(lua, expr) {
            Value::String(s) => s.as_bytes().to_vec(),
            other => panic!("{expr}: not a string: {other:?}"),
        }
    }

    /// A Lua expression's value as text (it must be a UTF-8 string).
    pub fn text(lua: &Lua, expr: &str) -> String {
        String::from_utf8(bytes(lua, expr)).expect("utf-8")
    }

    /// A Lua expression's value as a number.
    pub fn num(lua: &Lua, expr: &str) -> f64 {
        let v = eval(lua, expr);
        super::support::number(&v).unwrap_or_else(|| panic!("{expr}: not a number: {v:?}"))
    }

    /// The message a Lua chunk raises: the library's own text, as a script's `pcall` in Redis
    /// sees it. The chunk is named as Redis names a script, so positions read `user_script:1:`.
    pub fn raised(lua: &Lua, code: &str) -> String {
        let mut err = match lua.load(code).set_name("@user_script").exec() {
            Ok(()) => panic!("{code}: no error"),
            Err(e) => e,
        };
        while let mlua::Error::CallbackError { cause, .. } = err {
            err = (*cause).clone();
        }
        match err {
            mlua::Error::RuntimeError(msg) => msg,
            other => panic!("{code}: {other:?}"),
        }
    }
}
