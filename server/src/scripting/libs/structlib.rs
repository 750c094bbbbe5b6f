//! `struct`: Roberto Ierusalimschy's struct library (1.7, with Redis's security fixes).
//! Binary packing of Lua numbers and strings by a format string, as on Redis's x86-64 build:
//! little-endian by default, `long` and `size_t` of 8 bytes, alignment up to 8.
//!
//! Format options: `>` `<` endianness, `![n]` alignment, `x` padding, `b/B h/H l/L T i[n]/I[n]`
//! integers, `f` `d` floats, `c[n]` fixed strings (`c0`: whole string when packing, length from
//! the previous number when unpacking), `s` zero-terminated strings, spaces ignored.

use super::support::{Args, MAX_C_STACK, MAX_RESULTS, c_i64, c_u64, error, number};
use mlua::{Lua, MultiValue, Table, Value};

/// The widest integer option.
const MAX_INT_SIZE: usize = 32;
/// The default and largest useful alignment (the alignment of a double).
const MAX_ALIGN: usize = 8;

/// The `struct` table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: MultiValue| pack(Args::new(lua, args)))?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| unpack(&Args::new(lua, args)))?,
    )?;
    t.set(
        "size",
        lua.create_function(|lua, args: MultiValue| size(&Args::new(lua, args)))?,
    )?;
    Ok(t)
}

/// The format string and the state it sets as it is read.
struct Format {
    /// Up to the first NUL: the C reads the format as a C string.
    text: Vec<u8>,
    at: usize,
    little: bool,
    align: usize,
}

impl Format {
    fn new(args: &Args) -> mlua::Result<Self> {
        let text = args.check_string(1)?;
        let bytes = text.as_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(Format {
            text: bytes[..end].to_vec(),
            at: 0,
            little: true,
            align: 1,
        })
    }

    fn next(&mut self) -> Option<u8> {
        let opt = self.text.get(self.at).copied();
        self.at += 1;
        opt
    }

    /// A count written after an option, or `default` when there is none.
    fn number(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        let mut n: i32 = 0;
        let mut any = false;
        while let Some(d) = self.text.get(self.at).filter(|c| c.is_ascii_digit()) {
            let d = i32::from(d - b'0');
            if n > i32::MAX / 10 || n * 10 > i32::MAX - d {
                return Err(error(lua, "integral size overflow"));
            }
            n = n * 10 + d;
            any = true;
            self.at += 1;
        }
        Ok(if any {
            usize::try_from(n).unwrap_or(0)
        } else {
            default
        })
    }

    /// The size of option `opt`, reading its count; 0 for options without one.
    fn size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(lua, 1)?,
            b'i' | b'I' => {
                let size = self.number(lua, 4)?;
                if size > MAX_INT_SIZE {
                    return Err(error(
                        lua,
                        &format!("integral size {size} is larger than limit of {MAX_INT_SIZE}"),
                    ));
                }
                size
            }
            _ => 0,
        })
    }

    /// The padding before an item of `size` bytes at offset `len`. The C computes it with a
    /// power-of-two mask even for sizes that are not one (`i3`), and so does this.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        size.wrapping_sub(len & (size - 1)) & (size - 1)
    }

    /// The options that set state rather than take a value.
    fn control(&mut self, args: &Args, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(args.lua, MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(error(
                        args.lua,
                        &format!("alignment {a} is not a power of 2"),
                    ));
                }
                self.align = a;
            }
            _ => {
                let shown = String::from_utf8_lossy(&[opt]).into_owned();
                return Err(args.arg_error(1, &format!("invalid format option '{shown}'")));
            }
        }
        Ok(())
    }
}

fn pack(mut args: Args) -> mlua::Result<mlua::LuaString> {
    let mut fmt = Format::new(&args)?;
    // The C pushes a nil to mark the end of its arguments, so the first missing value is
    // reported as a nil and those after it as absent.
    args.values.push(Value::Nil);
    let lua = args.lua;
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(lua, opt)?;
        let pad = fmt.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = args.check_number(arg)?;
                arg += 1;
                let mut value = if n < 0.0 { c_i64(n) as u64 } else { c_u64(n) };
                let mut bytes = vec![0u8; size];
                for b in &mut bytes {
                    // The low byte of what is left.
                    #[allow(clippy::cast_possible_truncation)]
                    let low = value as u8;
                    *b = low;
                    value >>= 8;
                }
                if !fmt.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                // Rounds to nearest, as C's conversion.
                #[allow(clippy::cast_possible_truncation)]
                let f = args.check_number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if fmt.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                });
            }
            b'd' => {
                let d = args.check_number(arg)?;
                arg += 1;
                out.extend_from_slice(&if fmt.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = args.check_string(arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C checks after moving to the next argument, and names that one.
                    return Err(args.arg_error(arg, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => fmt.control(&args, opt)?,
        }
    }
    lua.create_string(out)
}

/// An integer of `bytes.len()` bytes. Only the 8 bytes nearest the low end count; the sign
/// test of wider ones uses the shift count modulo 64, as x86 does.
fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: &u8| l = l.wrapping_shl(8) | u64::from(*b);
    if little {
        bytes.iter().rev().for_each(&mut push);
    } else {
        bytes.iter().for_each(&mut push);
    }
    // The value read as a Lua number, signed or not; a double holds what it can.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
    if signed {
        let bits = u32::try_from(bytes.len() * 8).unwrap_or(0).wrapping_sub(1) & 63;
        let mask = u64::MAX << bits;
        if l & mask != 0 {
            l |= mask;
        }
        l as i64 as f64
    } else {
        l as f64
    }
}

fn unpack(args: &Args) -> mlua::Result<MultiValue> {
    let lua = args.lua;
    let mut fmt = Format::new(args)?;
    let data = args.check_string(2)?;
    let data = data.as_bytes();
    let ld = data.len();
    // A size_t in the C: negative offsets wrap to huge ones.
    #[allow(clippy::cast_sign_loss)]
    let start = args.opt_integer(3, 1)? as u64;
    if start == 0 {
        return Err(args.arg_error(3, "offset must be 1 or greater"));
    }
    let mut pos = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let too_short = || args.arg_error(2, "data string too short");
    let mut results: Vec<Value> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(lua, opt)?;
        pos = pos.wrapping_add(fmt.padding(pos, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        // Room for this result and the position returned after the last.
        if args.len() + results.len() + 2 > MAX_C_STACK || results.len() + 2 > MAX_RESULTS {
            return Err(error(lua, "stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                let x = get_integer(&data[pos..pos + size], fmt.little, signed);
                results.push(Value::Number(x));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if fmt.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                results.push(Value::Number(f64::from(f)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let d = if fmt.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                results.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let previous = match results.last() {
                        Some(v) => match number(v) {
                            Some(x) => Some(x),
                            None => lua.coerce_number(v.clone())?,
                        },
                        None => None,
                    };
                    let Some(x) = previous else {
                        return Err(error(lua, "format 'c0' needs a previous size"));
                    };
                    size = usize::try_from(c_u64(x)).unwrap_or(usize::MAX);
                    results.pop();
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                results.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(error(lua, "unfinished string in data"));
                };
                size = len + 1;
                results.push(Value::String(lua.create_string(&data[pos..pos + len])?));
            }
            _ => fmt.control(args, opt)?,
        }
        pos = pos.wrapping_add(size);
    }
    // Back to 1-based, as a lua_Integer: a wrapped offset shows as negative.
    #[allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]
    let next = pos.wrapping_add(1) as i64 as f64;
    results.push(Value::Number(next));
    Ok(MultiValue::from_vec(results))
}

fn size(args: &Args) -> mlua::Result<f64> {
    let lua = args.lua;
    let mut fmt = Format::new(args)?;
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = fmt.size(lua, opt)?;
        pos = pos.wrapping_add(fmt.padding(pos, opt, size));
        if opt == b's' {
            return Err(args.arg_error(1, "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(args.arg_error(1, "option 'c0' has no fixed size"));
        }
        // Letters and digits the C does not know add nothing here, though pack rejects them.
        if !opt.is_ascii_alphanumeric() {
            fmt.control(args, opt)?;
        }
        pos = pos.wrapping_add(size);
    }
    // A format's size: far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    Ok(pos as f64)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, lua, raised, text};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Expected values from Redis 7.0, e.g. (bytes shown as hex)
    // redis-cli EVAL "return struct.pack('>I2', 258)" 0

    #[test]
    fn packs() {
        let lua = lua();
        for (expr, want) in [
            ("struct.pack('>I2', 258)", "0102"),
            ("struct.pack('<i4', -2)", "feffffff"),
            (
                "struct.pack('bBhHlLT', -1, 255, -2, 65535, -3, 4, 5)",
                "fffffefffffffdffffffffffffff04000000000000000500000000000000",
            ),
            (
                "struct.pack('>i16', -1)",
                "0000000000000000ffffffffffffffff",
            ),
            (
                "struct.pack('<i16', -1)",
                "ffffffffffffffff0000000000000000",
            ),
            ("struct.pack('i3', 0x123456)", "563412"),
            ("struct.pack('!4 b i4', 1, 2)", "0100000002000000"),
            (
                "struct.pack('!b d', 1, 1.5)",
                "0100000000000000000000000000f83f",
            ),
            ("struct.pack('!2 b i8', 1, 2)", "01000200000000000000"),
            (
                "struct.pack('!8 b i3 i5', 1, 2, 3)",
                "0100000200000300000000",
            ),
            ("struct.pack('b x b', 1, 2)", "010002"),
            ("struct.pack('c3', 'abcdef')", "616263"),
            ("struct.pack('c0', 'abcdef')", "616263646566"),
            ("struct.pack('s', 'ab')", "616200"),
            ("struct.pack('f d', 1.5, 0.1)", "0000c03f9a9999999999b93f"),
            ("struct.pack('>f >d', 1.5, 0.1)", "3fc000003fb999999999999a"),
            ("struct.pack('i', '12')", "0c000000"),
            ("struct.pack('c', 12)", "31"),
            ("struct.pack('>L', 1e20)", "0000000000000000"),
            ("struct.pack('>L', 0/0)", "8000000000000000"),
            ("struct.pack('>l', -1e20)", "8000000000000000"),
            ("struct.pack('>l', 2^63)", "8000000000000000"),
            ("struct.pack('>L', 2^64)", "0000000000000000"),
            ("struct.pack('>L', 1.9)", "0000000000000001"),
            ("struct.pack('>l', -1.9)", "ffffffffffffffff"),
            ("struct.pack('>B', 256)", "00"),
            ("struct.pack('i0', 5)", ""),
            ("struct.pack('!', 1)", ""),
            ("struct.pack('b', 1, 2, 3)", "01"),
            ("struct.pack('b' .. string.char(0) .. 'z', 1)", "01"),
        ] {
            assert_eq!(hex(&bytes(&lua, expr)), want, "{expr}");
        }
    }

    #[test]
    fn unpacks() {
        let lua = lua();
        for (call, want) in [
            ("struct.unpack('>I2', string.char(1,2))", "[258,3]"),
            (
                "struct.unpack('<i4', string.char(254,255,255,255))",
                "[-2,5]",
            ),
            (
                "struct.unpack('bBhH', string.char(255,255,254,255,255,255))",
                "[-1,255,-2,65535,7]",
            ),
            (
                "struct.unpack('>i16', string.rep(string.char(255), 16))",
                "[-1,17]",
            ),
            (
                "struct.unpack('<I16', string.rep(string.char(255), 16))",
                "[1.844674407371e+19,17]",
            ),
            (
                "struct.unpack('<i9', string.char(0x80,0,0,0,0,0,0,0,0))",
                "[-128,10]",
            ),
            (
                "struct.unpack('<i9', string.char(0x7f,0,0,0,0,0,0,0,0))",
                "[127,10]",
            ),
            (
                "struct.unpack('>i9', string.char(0,0,0,0,0,0,0,0,0x80))",
                "[-128,10]",
            ),
            (
                "struct.unpack('>L', string.rep(string.char(255), 8))",
                "[1.844674407371e+19,9]",
            ),
            (
                "struct.unpack('s', 'ab' .. string.char(0) .. 'cd')",
                r#"["ab",4]"#,
            ),
            ("struct.unpack('c2', 'abc')", r#"["ab",3]"#),
            (
                "struct.unpack('b c0', string.char(2) .. 'abc')",
                r#"["ab",4]"#,
            ),
            ("struct.unpack('c1 c0', '2abc')", r#"["ab",4]"#),
            ("struct.unpack('b', 'abc', 2)", "[98,3]"),
            ("struct.unpack('', 'abc', -1)", "[-1]"),
            ("struct.unpack('', 'abc', 10)", "[10]"),
            (
                "struct.unpack('!4 b i4', string.rep('a', 8))",
                "[97,1633771873,9]",
            ),
            (
                "struct.unpack('f', struct.pack('f', 0.1))",
                "[0.10000000149012,5]",
            ),
            ("struct.unpack('>d', struct.pack('>d', 0.1))", "[0.1,9]"),
            ("struct.unpack('x b', 'ab')", "[98,3]"),
            ("struct.unpack('i0', '')", "[0,1]"),
        ] {
            assert_eq!(
                text(&lua, &format!("cjson.encode({{{call}}})")),
                want,
                "{call}"
            );
        }
    }

    #[test]
    fn sizes() {
        let lua = lua();
        for (fmt, want) in [
            ("bhilT", "23"),
            ("!bd", "16"),
            ("!bi3", "6"),
            ("c5x", "6"),
            ("z5", "0"),
            ("<>!4 i", "4"),
        ] {
            let got = text(&lua, &format!("tostring(struct.size('{fmt}'))"));
            assert_eq!(got, want, "{fmt}");
        }
    }

    #[test]
    fn errors() {
        let lua = lua();
        for (code, want) in [
            (
                "struct.pack('s5', 'ab')",
                "bad argument #1 to 'pack' (invalid format option '5')",
            ),
            (
                "struct.pack('c5', 'ab')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.pack('c2', 'a')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.pack('z', 1)",
                "bad argument #1 to 'pack' (invalid format option 'z')",
            ),
            (
                "struct.pack('?', 1)",
                "bad argument #1 to 'pack' (invalid format option '?')",
            ),
            (
                "struct.pack('i33', 1)",
                "integral size 33 is larger than limit of 32",
            ),
            ("struct.pack('i99999999999', 1)", "integral size overflow"),
            ("struct.pack('!3 i', 1)", "alignment 3 is not a power of 2"),
            ("struct.pack('!0 i', 1)", "alignment 0 is not a power of 2"),
            (
                "struct.pack('i')",
                "bad argument #2 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('bi', 1)",
                "bad argument #3 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('bii', 1)",
                "bad argument #3 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('bbi', 1)",
                "bad argument #3 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('i', 'x')",
                "bad argument #2 to 'pack' (number expected, got string)",
            ),
            (
                "struct.pack()",
                "bad argument #1 to 'pack' (string expected, got no value)",
            ),
            (
                "struct.pack(12, 1)",
                "bad argument #1 to 'pack' (invalid format option '1')",
            ),
            ("struct.unpack('s', 'abc')", "unfinished string in data"),
            (
                "struct.unpack('c2', 'a')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('c0', 'abc')",
                "format 'c0' needs a previous size",
            ),
            (
                "struct.unpack('c1 c0', 'xabc')",
                "format 'c0' needs a previous size",
            ),
            (
                "struct.unpack('b', 'abc', 0)",
                "bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "struct.unpack('b', 'abc', -1)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'abc', 4)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('!4 b i4', string.rep('a', 7))",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b c0', string.char(255) .. 'abc')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('z', 'ab')",
                "bad argument #1 to 'unpack' (invalid format option 'z')",
            ),
            (
                "struct.unpack('b')",
                "bad argument #2 to 'unpack' (string expected, got no value)",
            ),
            (
                "struct.unpack('b', 'a', 'x')",
                "bad argument #3 to 'unpack' (number expected, got string)",
            ),
            (
                "struct.size('s')",
                "bad argument #1 to 'size' (option 's' has no fixed size)",
            ),
            (
                "struct.size('c0')",
                "bad argument #1 to 'size' (option 'c0' has no fixed size)",
            ),
            (
                "struct.size('?')",
                "bad argument #1 to 'size' (invalid format option '?')",
            ),
            (
                "struct.size()",
                "bad argument #1 to 'size' (string expected, got no value)",
            ),
            ("struct.size('!5')", "alignment 5 is not a power of 2"),
        ] {
            assert_eq!(
                raised(&lua, code),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
    }

    #[test]
    fn result_limit() {
        let lua = lua();
        let n: f64 = lua
            .load("return select('#', struct.unpack(string.rep('b', 7000), string.rep('a', 8000)))")
            .eval()
            .expect("unpack");
        assert_eq!(n, 7001.0);
        // Redis returns up to 7997 values and the position; mlua cannot return quite as many.
        assert_eq!(
            raised(
                &lua,
                "struct.unpack(string.rep('b', 7997), string.rep('a', 8000))"
            ),
            "user_script:1: stack overflow (too many results)"
        );
    }
}
