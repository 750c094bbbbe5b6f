//! `bit`: LuaBitOp 1.0.2, bitwise operations on Lua numbers taken as 32-bit integers.
//! Results are signed 32-bit numbers; shift counts use their low 5 bits.

use super::support::Args;
use mlua::{Lua, MultiValue, Table};

/// The `bit` table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("tobit", unary(lua, |b| b)?)?;
    t.set("bnot", unary(lua, |b| !b)?)?;
    t.set("band", fold(lua, |a, b| a & b)?)?;
    t.set("bor", fold(lua, |a, b| a | b)?)?;
    t.set("bxor", fold(lua, |a, b| a ^ b)?)?;
    t.set("lshift", shift(lua, |b, n| b << n)?)?;
    t.set("rshift", shift(lua, |b, n| b >> n)?)?;
    t.set("arshift", shift(lua, |b, n| ((b as i32) >> n) as u32)?)?;
    t.set("rol", shift(lua, u32::rotate_left)?)?;
    t.set("ror", shift(lua, u32::rotate_right)?)?;
    t.set("bswap", unary(lua, u32::swap_bytes)?)?;
    t.set(
        "tohex",
        lua.create_function(|lua, args: MultiValue| tohex(&Args::new(lua, args)))?,
    )?;
    Ok(t)
}

/// Argument `n` as 32 bits. LuaBitOp adds 2^52+2^51 and keeps the low word of the double:
/// numbers round to the nearest integer (ties to even) modulo 2^32, and huge ones give what
/// that word happens to hold; both are kept.
fn arg(args: &Args, n: usize) -> mlua::Result<u32> {
    match args.to_number(n)? {
        // The low word is the point: truncation intended.
        #[allow(clippy::cast_possible_truncation)]
        Some(x) => Ok((x + 6_755_399_441_055_744.0).to_bits() as u32),
        None => Err(args.type_error(n, "number")),
    }
}

/// The result as Lua sees it: the bits read as a signed integer.
fn ret(b: u32) -> f64 {
    f64::from(b as i32)
}

fn unary(lua: &Lua, op: fn(u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args = Args::new(lua, args);
        Ok(ret(op(arg(&args, 1)?)))
    })
}

fn fold(lua: &Lua, op: fn(u32, u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args = Args::new(lua, args);
        let mut b = arg(&args, 1)?;
        // From the last argument down, so a bad one is reported at the highest position.
        for i in (2..=args.len()).rev() {
            b = op(b, arg(&args, i)?);
        }
        Ok(ret(b))
    })
}

fn shift(lua: &Lua, op: fn(u32, u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args = Args::new(lua, args);
        let b = arg(&args, 1)?;
        let n = arg(&args, 2)? & 31;
        Ok(ret(op(b, n)))
    })
}

/// `bit.tohex(x [, n])`: the low `|n|` hex digits (at most 8), uppercase when `n` is negative.
fn tohex(args: &Args) -> mlua::Result<mlua::LuaString> {
    let mut b = arg(args, 1)?;
    let n = match args.get(2) {
        None => 8,
        Some(_) => arg(args, 2)? as i32,
    };
    let digits: &[u8; 16] = if n < 0 {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // `unsigned_abs` also covers i32::MIN, which Redis's build prints as 8 digits.
    let len = n.unsigned_abs().min(8) as usize;
    let mut out = vec![0u8; len];
    for slot in out.iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    args.lua.create_string(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{lua, num, raised, text};

    // Expected values from Redis 7.0:
    // redis-cli EVAL "return tostring(bit.tobit(2^32+1))" 0

    #[test]
    fn tobit_wraps_and_rounds_like_luabitop() {
        let lua = lua();
        for (expr, want) in [
            ("bit.tobit(0xffffffff)", -1.0),
            ("bit.tobit(2^32+1)", 1.0),
            ("bit.tobit(1.5)", 2.0),
            ("bit.tobit(2.5)", 2.0),
            ("bit.tobit(-1.5)", -2.0),
            ("bit.tobit('12')", 12.0),
            ("bit.tobit(2^53)", 0.0),
            ("bit.tobit(2^51+0.5)", 0.0),
            ("bit.tobit(1e300)", -2_013_235_812.0),
            ("bit.tobit(0/0)", 0.0),
            ("bit.tobit(1/0)", 0.0),
        ] {
            assert_eq!(num(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn operations() {
        let lua = lua();
        for (expr, want) in [
            ("bit.bnot(0)", -1.0),
            ("bit.band(0xff, 0x0f, 0x3)", 3.0),
            ("bit.bor(1, 2, 4)", 7.0),
            ("bit.bxor(5, 3)", 6.0),
            ("bit.lshift(1, 31)", -2_147_483_648.0),
            ("bit.lshift(1, 32)", 1.0),
            ("bit.lshift(1, -1)", -2_147_483_648.0),
            ("bit.rshift(-1, 28)", 15.0),
            ("bit.arshift(-256, 4)", -16.0),
            ("bit.rol(0x12345678, 12)", 1_164_411_171.0),
            ("bit.ror(0x12345678, 12)", 1_736_516_421.0),
            ("bit.bswap(0x12345678)", 2_018_915_346.0),
        ] {
            assert_eq!(num(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn tohex() {
        let lua = lua();
        for (expr, want) in [
            ("bit.tohex(255)", "000000ff"),
            ("bit.tohex(255, -4)", "00FF"),
            ("bit.tohex(-1, 20)", "ffffffff"),
            ("bit.tohex(255, 0)", ""),
            ("bit.tohex(255, -2147483648)", "000000FF"),
            ("bit.tohex(-1, 2147483647)", "ffffffff"),
        ] {
            assert_eq!(text(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn errors() {
        let lua = lua();
        for (code, want) in [
            (
                "bit.band()",
                "user_script:1: bad argument #1 to 'band' (number expected, got no value)",
            ),
            (
                "bit.band(1, nil, 'x')",
                "user_script:1: bad argument #3 to 'band' (number expected, got string)",
            ),
            (
                "bit.tohex(1, {})",
                "user_script:1: bad argument #2 to 'tohex' (number expected, got table)",
            ),
            (
                "bit.bor('a')",
                "user_script:1: bad argument #1 to 'bor' (number expected, got string)",
            ),
            // Called from C (pcall): no position, and no name.
            (
                "local ok, e = pcall(bit.tobit) error(e, 0)",
                "bad argument #1 to '?' (number expected, got no value)",
            ),
            // A tail call keeps the caller's frame, as for a C function.
            (
                "return bit.lshift(1)",
                "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)",
            ),
        ] {
            assert_eq!(raised(&lua, code), want, "{code}");
        }
    }
}
