//! Lua scripting, as Redis 7.0 embeds it: Lua 5.1 with the `redis` API, the libraries
//! scripts rely on (`cjson`, `cmsgpack`, `bit`, `struct`), globals that scripts can read but
//! never change, and the conversions between Lua values and replies.
//!
//! A script's commands run through the executor like any client's, so their checks, stats
//! and replication are the ones every command gets; this module reaches the executor only
//! through [`Host`], which keeps it below the command table. The interpreter itself lives in
//! the server's state ([`crate::state::scripting`]).

mod api;
mod convert;
mod engine;
pub mod functions;
pub mod libs;
mod run;
mod shebang;

pub use engine::interpreter;
pub use run::{Host, Invocation, Target, invoke};
pub use shebang::parse_shebang;

/// Redis's script names are the lowercase hex SHA1 of their body.
pub fn sha1_hex(body: &[u8]) -> [u8; 40] {
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut out = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Compiles a script body (its shebang line already blanked) under Redis's chunk name, so
/// errors read `user_script:LINE: ...`.
///
/// # Errors
/// Lua's syntax error message.
pub fn compile(lua: &mlua::Lua, body: &[u8], chunk_name: &str) -> Result<mlua::Function, String> {
    lua.load(body)
        .set_name(chunk_name)
        .into_function()
        .map_err(|e| convert::error_text(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_a_script_is_its_redis_name() {
        // redis-cli SCRIPT LOAD "return 1"
        assert_eq!(
            &sha1_hex(b"return 1"),
            b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
