//! Lua scripting (EVAL and friends) on an embedded Lua 5.1.
pub mod libs;
