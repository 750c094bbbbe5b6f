//! The C libraries Redis 7.0 loads into its Lua, written in Rust.

/// Sets the library globals.
///
/// # Errors
/// Lua out of memory.
pub fn open(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
