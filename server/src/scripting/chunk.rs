//! What a script is called and compiled as: Redis names EVAL scripts by the SHA1 of their
//! body and compiles them under a chunk name that error messages show.

/// Redis's script names are the lowercase hex SHA1 of their body.
pub fn sha1_hex(body: &[u8]) -> [u8; 40] {
    let digest = <sha1::Sha1 as sha1::Digest>::digest(body);
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
        .map_err(|e| super::convert::error_text(&e))
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
