//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis ships it. MessagePack from Lua values and back,
//! with its choices: integral numbers as the smallest integer format, other numbers as a
//! float32 when that is exact and else a float64, tables as arrays only when their keys are
//! exactly 1..n, tables nested 16 deep written as nil.
//!
//! Decoding walks nested data with an explicit stack; the Lua stack limits the C meets are
//! counted and reported in its words.

use super::support::{
    Args, Kept, Levels, MAX_C_STACK, MAX_RESULTS, c_i64, error, number, raw_error,
};
use mlua::{Lua, MultiValue, Table, Value};

const TOO_MANY: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

/// Tables at this depth are written as nil, which also ends reference cycles.
const MAX_NESTING: usize = 16;

/// The `cmsgpack` table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: MultiValue| pack(&Args::new(lua, args)))?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new(lua, args);
            // All the arguments stay on the C function's stack.
            let base = args.len();
            unpack(&args, 0, 0, base)
        })?,
    )?;
    t.set(
        "unpack_one",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new(lua, args);
            let offset = args.opt_integer(2, 0)?;
            unpack(&args, 1, offset, 1)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, args: MultiValue| {
            let args = Args::new(lua, args);
            let limit = args.check_integer(2)?;
            let offset = args.opt_integer(3, 0)?;
            unpack(&args, limit, offset, 1)
        })?,
    )?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

fn pack(args: &Args) -> mlua::Result<mlua::LuaString> {
    if args.is_empty() {
        return Err(args.arg_error(0, "MessagePack pack needs input."));
    }
    // The C asks for as many free slots as it has arguments.
    if args.len() * 2 > MAX_C_STACK {
        return Err(args.arg_error(0, "Too many arguments for MessagePack pack."));
    }
    let mut out = Vec::new();
    for v in &args.values {
        encode(&mut out, v, 0)?;
    }
    args.lua.create_string(out)
}

fn encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Table(t) if level < MAX_NESTING => encode_table(out, t, level)?,
        v => match number(v) {
            Some(x) => encode_number(out, x),
            None => out.push(0xc0),
        },
    }
    Ok(())
}

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    match len {
        // Each arm's range makes its cast exact.
        #[allow(clippy::cast_possible_truncation)]
        0..32 => out.push(0xa0 | len as u8),
        #[allow(clippy::cast_possible_truncation)]
        32..=0xff => out.extend_from_slice(&[0xd9, len as u8]),
        #[allow(clippy::cast_possible_truncation)]
        0x100..=0xffff => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        // The C writes the low 32 bits of the length, whatever it is.
        #[allow(clippy::cast_possible_truncation)]
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s);
}

fn encode_number(out: &mut Vec<u8>, x: f64) {
    let i = c_i64(x);
    // Lua 5.1 numbers are doubles: the comparison is the C's test for an integral value.
    #[allow(clippy::cast_precision_loss)]
    let integral = !x.is_infinite() && i as f64 == x;
    if integral {
        encode_int(out, i);
        return;
    }
    // Rounds to nearest, as C's conversion.
    #[allow(clippy::cast_possible_truncation)]
    let f = x as f32;
    if f64::from(f) == x {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&x.to_be_bytes());
    }
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    // Each arm's range makes its cast exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    match n {
        0..=127 => out.push(n as u8),
        128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -32..=-1 => out.push(n as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Writes a collection header: the fix form for up to 15 entries, else 16 or 32 bits.
fn encode_header(out: &mut Vec<u8>, n: usize, fix: u8, wide: u8) {
    // Each arm's range makes its cast exact; beyond 32 bits the C keeps the low word.
    #[allow(clippy::cast_possible_truncation)]
    match n {
        0..=15 => out.push(fix | n as u8),
        16..=0xffff => {
            out.push(wide);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(wide + 1);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

fn encode_table(out: &mut Vec<u8>, t: &Table, level: usize) -> mlua::Result<()> {
    if is_array(t)? {
        let len = t.raw_len();
        encode_header(out, len, 0x90, 0xdc);
        for i in 1..=len {
            let v: Value = t.raw_get(i)?;
            encode(out, &v, level + 1)?;
        }
    } else {
        let mut count = 0;
        for pair in t.pairs::<Value, Value>() {
            pair?;
            count += 1;
        }
        encode_header(out, count, 0x80, 0xde);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(out, &k, level + 1)?;
            encode(out, &v, level + 1)?;
        }
    }
    Ok(())
}

/// lua-cmsgpack's array test: the keys are exactly 1..n, each an exact C int. An empty table
/// is an array.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let mut count: i64 = 0;
    let mut max: i64 = 0;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let int = match number(&k) {
            Some(n) if n > 0.0 && n < 2_147_483_648.0 && n.fract() == 0.0 => n,
            _ => return Ok(false),
        };
        // Checked above: a positive integer below 2^31.
        #[allow(clippy::cast_possible_truncation)]
        let int = int as i64;
        max = max.max(int);
        count += 1;
    }
    Ok(max == count)
}

fn unpack(args: &Args, limit: i64, offset: i64, base: usize) -> mlua::Result<MultiValue> {
    let lua = args.lua;
    let input = args.check_string(1)?;
    let data = input.as_bytes();
    let len = data.len();
    // The C prints these as ints, the second being the length rather than the limit.
    #[allow(clippy::cast_possible_truncation)]
    let (shown_offset, shown_len) = (offset as i32, len as i32);
    if offset < 0 || limit < 0 {
        return Err(error(
            lua,
            &format!(
                "Invalid request to unpack with offset of {shown_offset} and limit of {shown_len}."
            ),
        ));
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start > len {
        return Err(error(
            lua,
            &format!("Start offset {shown_offset} greater than input length {shown_len}."),
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut decoder = Decoder {
        lua,
        data: &data[..],
        pos: start,
        levels: Levels::new(lua),
    };
    let mut values = Vec::new();
    let mut count = 0;
    while decoder.pos < len && count < limit {
        if values.len() >= MAX_RESULTS {
            return Err(error(lua, TOO_MANY));
        }
        let used = base + values.len();
        match decoder.value(used) {
            Ok(v) => values.push(v),
            Err(Failure::Eof) => return Err(error(lua, "Missing bytes in input.")),
            Err(Failure::BadFormat) => return Err(error(lua, "Bad data format in input.")),
            Err(Failure::Lua(e)) => return Err(e),
        }
        count += 1;
    }
    if !decode_all {
        if base + values.len() + 1 > MAX_C_STACK || values.len() >= MAX_RESULTS {
            return Err(error(lua, "stack overflow (in function mp_unpack_full)"));
        }
        let next = if decoder.pos == len {
            -1.0
        } else {
            // An offset into a Lua string: exact as a double.
            #[allow(clippy::cast_precision_loss)]
            let next = decoder.pos as f64;
            next
        };
        values.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_vec(values))
}

enum Failure {
    /// The input ends inside a value.
    Eof,
    /// A type byte lua-cmsgpack does not read (bin, ext, 0xc1).
    BadFormat,
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(e: mlua::Error) -> Self {
        Failure::Lua(e)
    }
}

/// What one type byte starts.
enum Item {
    Scalar(Value),
    Array(usize),
    Map(usize),
}

/// A table being filled.
enum Open {
    Array {
        table: Kept,
        next: i64,
        left: usize,
    },
    Map {
        table: Kept,
        key: Option<Kept>,
        left: usize,
    },
}

struct Decoder<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
    levels: Levels<'a>,
}

impl Decoder<'_> {
    fn take<const N: usize>(&mut self, skip: usize) -> Result<[u8; N], Failure> {
        let bytes = self
            .data
            .get(self.pos + skip..self.pos + skip + N)
            .ok_or(Failure::Eof)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn bytes(&mut self, header: usize, len: usize) -> Result<Value, Failure> {
        let start = self.pos + header;
        let end = start.checked_add(len).ok_or(Failure::Eof)?;
        let s = self.data.get(start..end).ok_or(Failure::Eof)?;
        let v = Value::String(self.lua.create_string(s)?);
        self.pos = end;
        Ok(v)
    }

    fn scalar(&mut self, size: usize, v: Value) -> Item {
        self.pos += size;
        Item::Scalar(v)
    }

    /// Reads one type byte and what follows it, up to a collection's entries.
    fn item(&mut self) -> Result<Item, Failure> {
        let byte = self.data[self.pos];
        let num = |x: f64| Value::Number(x);
        // 64-bit values become Lua numbers through a signed 64-bit integer, as in the C.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
        let item = match byte {
            0xcc => {
                let [b] = self.take(1)?;
                self.scalar(2, num(f64::from(b)))
            }
            0xd0 => {
                let b = self.take(1)?;
                self.scalar(2, num(f64::from(i8::from_be_bytes(b))))
            }
            0xcd => {
                let b = self.take(1)?;
                self.scalar(3, num(f64::from(u16::from_be_bytes(b))))
            }
            0xd1 => {
                let b = self.take(1)?;
                self.scalar(3, num(f64::from(i16::from_be_bytes(b))))
            }
            0xce => {
                let b = self.take(1)?;
                self.scalar(5, num(f64::from(u32::from_be_bytes(b))))
            }
            0xd2 => {
                let b = self.take(1)?;
                self.scalar(5, num(f64::from(i32::from_be_bytes(b))))
            }
            0xcf => {
                let b = self.take(1)?;
                self.scalar(9, num(u64::from_be_bytes(b) as i64 as f64))
            }
            0xd3 => {
                let b = self.take(1)?;
                self.scalar(9, num(i64::from_be_bytes(b) as f64))
            }
            0xc0 => self.scalar(1, Value::Nil),
            0xc3 => self.scalar(1, Value::Boolean(true)),
            0xc2 => self.scalar(1, Value::Boolean(false)),
            0xca => {
                let b = self.take(1)?;
                self.scalar(5, num(f64::from(f32::from_be_bytes(b))))
            }
            0xcb => {
                let b = self.take(1)?;
                self.scalar(9, num(f64::from_be_bytes(b)))
            }
            0xd9 => {
                let [len] = self.take(1)?;
                Item::Scalar(self.bytes(2, usize::from(len))?)
            }
            0xda => {
                let len = u16::from_be_bytes(self.take(1)?);
                Item::Scalar(self.bytes(3, usize::from(len))?)
            }
            0xdb => {
                let len = u32::from_be_bytes(self.take(1)?);
                Item::Scalar(self.bytes(5, usize::try_from(len).unwrap_or(usize::MAX))?)
            }
            0xdc | 0xde => {
                let len = usize::from(u16::from_be_bytes(self.take(1)?));
                self.pos += 3;
                if byte == 0xdc {
                    Item::Array(len)
                } else {
                    Item::Map(len)
                }
            }
            0xdd | 0xdf => {
                let len = u32::from_be_bytes(self.take(1)?);
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.pos += 5;
                if byte == 0xdd {
                    Item::Array(len)
                } else {
                    Item::Map(len)
                }
            }
            0x00..=0x7f => self.scalar(1, num(f64::from(byte))),
            0xe0..=0xff => self.scalar(1, num(f64::from(byte as i8))),
            0xa0..=0xbf => Item::Scalar(self.bytes(1, usize::from(byte & 0x1f))?),
            0x90..=0x9f => {
                self.pos += 1;
                Item::Array(usize::from(byte & 0xf))
            }
            0x80..=0x8f => {
                self.pos += 1;
                Item::Map(usize::from(byte & 0xf))
            }
            _ => return Err(Failure::BadFormat),
        };
        Ok(item)
    }

    /// One whole value, `used` being the Lua stack slots the C holds when it starts.
    fn value(&mut self, mut used: usize) -> Result<Value, Failure> {
        let mut stack: Vec<Open> = Vec::new();
        loop {
            if self.pos >= self.data.len() {
                return Err(Failure::Eof);
            }
            if used + 1 > MAX_C_STACK {
                return Err(Failure::Lua(error(self.lua, TOO_MANY)));
            }
            let mut value = match self.item()? {
                Item::Scalar(v) => v,
                Item::Array(len) => {
                    // The new table, then the C's own check for the index it pushes.
                    if used + 2 > MAX_C_STACK {
                        return Err(Failure::Lua(error(
                            self.lua,
                            "stack overflow (in function mp_decode_to_lua_array)",
                        )));
                    }
                    let table = self.lua.create_table()?;
                    if len == 0 {
                        Value::Table(table)
                    } else {
                        let table = self.levels.keep(stack.len() + 1, 0, Value::Table(table))?;
                        stack.push(Open::Array {
                            table,
                            next: 1,
                            left: len,
                        });
                        used += 2;
                        continue;
                    }
                }
                Item::Map(len) => {
                    let table = self.lua.create_table()?;
                    if len == 0 {
                        Value::Table(table)
                    } else {
                        let table = self.levels.keep(stack.len() + 1, 0, Value::Table(table))?;
                        stack.push(Open::Map {
                            table,
                            key: None,
                            left: len,
                        });
                        used += 1;
                        continue;
                    }
                }
            };
            // A value is complete: store it, and close every table it completes.
            loop {
                let depth = stack.len();
                let Some(open) = stack.last_mut() else {
                    return Ok(value);
                };
                let left = match open {
                    Open::Array { table, next, left } => {
                        if let Value::Table(t) = self.levels.get(table)? {
                            t.raw_set(*next, value)?;
                        }
                        *next += 1;
                        *left -= 1;
                        *left
                    }
                    Open::Map {
                        key: key @ None, ..
                    } => {
                        *key = Some(self.levels.keep(depth, 1, value)?);
                        used += 1;
                        break;
                    }
                    Open::Map { table, key, left } => {
                        let k = match key.take() {
                            Some(kept) => self.levels.release(kept)?,
                            None => Value::Nil,
                        };
                        used -= 1;
                        match &k {
                            Value::Nil => return Err(raw_error("table index is nil").into()),
                            k if number(k).is_some_and(f64::is_nan) => {
                                return Err(raw_error("table index is NaN").into());
                            }
                            _ => {}
                        }
                        if let Value::Table(t) = self.levels.get(table)? {
                            t.raw_set(k, value)?;
                        }
                        *left -= 1;
                        *left
                    }
                };
                if left > 0 {
                    break;
                }
                let Some(done) = stack.pop() else {
                    unreachable!("a table was open")
                };
                value = match done {
                    Open::Array { table, .. } => {
                        used -= 2;
                        self.levels.release(table)?
                    }
                    Open::Map { table, .. } => {
                        used -= 1;
                        self.levels.release(table)?
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, eval, lua, num, raised, text};
    use mlua::Value;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A Lua expression building the string of these hex bytes.
    fn chars(hex: &str) -> String {
        let codes: Vec<String> = (0..hex.len())
            .step_by(2)
            .map(|i| format!("0x{}", &hex[i..i + 2]))
            .collect();
        format!("string.char({})", codes.join(","))
    }

    // Expected values from Redis 7.0, e.g. (bytes shown as hex)
    // redis-cli EVAL "return cmsgpack.pack(1.5, 0.1)" 0

    #[test]
    fn packs_numbers() {
        let lua = lua();
        for (expr, want) in [
            (
                "cmsgpack.pack(1,-1,-32,-33,127,128,255,256,65535,65536,2^32-1,2^32,\
                 -128,-129,-32768,-32769,-2^31,-2^31-1)",
                "01ffe0d0df7fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000\
                 d080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffff",
            ),
            (
                "cmsgpack.pack(2^63, -2^63, 2^53, 2^64, -2^64)",
                "ca5f000000d38000000000000000cf0020000000000000ca5f800000cadf800000",
            ),
            (
                "cmsgpack.pack(1.5, 0.1, 1/0, -1/0, 0/0, -0.0, 3.4028234663852886e38, 1e39)",
                "ca3fc00000cb3fb999999999999aca7f800000caff800000cbfff800000000000000\
                 ca7f7fffffcb48078287f49c4a1d",
            ),
        ] {
            assert_eq!(hex(&bytes(&lua, expr)), want, "{expr}");
        }
    }

    #[test]
    fn packs_tables_strings_and_the_rest() {
        let lua = lua();
        for (expr, want) in [
            (
                "cmsgpack.pack({}, {1,2}, {a=1}, {[1]=1,[3]=3}, {[0]=1}, {[1.5]=1}, {[2^31]=1})",
                "9092010281a16101820101030381000181ca3fc000000181ce8000000001",
            ),
            (
                "cmsgpack.pack(nil, true, false, function() end)",
                "c0c3c2c0",
            ),
            ("cmsgpack.pack(cjson.null)", "c0"),
            ("cmsgpack.pack('')", "a0"),
            (
                "cmsgpack.pack(string.rep('a', 31), string.rep('b', 32))",
                "bf61616161616161616161616161616161616161616161616161616161616161\
                 d9206262626262626262626262626262626262626262626262626262626262626262",
            ),
            ("cmsgpack.pack(string.rep('a', 256)):sub(1, 3)", "da0100"),
            (
                "cmsgpack.pack(string.rep('a', 65536)):sub(1, 5)",
                "db00010000",
            ),
            (
                "cmsgpack.pack((function() local t = {} for i=1,16 do t[i] = i end return t end)())",
                "dc00100102030405060708090a0b0c0d0e0f10",
            ),
            (
                "cmsgpack.pack((function() local t = {} for i=1,16 do t['k'..i] = 1 end \
                 return t end)()):sub(1, 3)",
                "de0010",
            ),
            (
                "cmsgpack.pack((function() local t = {} local c = t for i=1,20 do c[1] = {} \
                 c = c[1] end return t end)())",
                "91919191919191919191919191919191c0",
            ),
            (
                "cmsgpack.pack((function() local t = {} t[1] = t return t end)())",
                "91919191919191919191919191919191c0",
            ),
        ] {
            assert_eq!(hex(&bytes(&lua, expr)), want, "{expr}");
        }
    }

    #[test]
    fn packs_maps_that_read_back() {
        let lua = lua();
        let ok = eval(
            &lua,
            "(function() local t = cmsgpack.unpack(cmsgpack.pack({a=1, b={c='x'}, [7]=true})) \
             return t.a == 1 and t.b.c == 'x' and t[7] == true end)()",
        );
        assert_eq!(ok, Value::Boolean(true));
    }

    #[test]
    fn unpacks() {
        let lua = lua();
        for (input, want) in [
            (
                "01ffd0dfcc80cd0100ce00010000d2ffff7fffd1ff7f",
                "[1,-1,-33,128,256,65536,-32769,-129]",
            ),
            ("cfffffffffffffffff", "[-1]"),
            ("cf8000000000000000", "[-9.2233720368548e+18]"),
            ("d3fffffffffffffffe", "[-2]"),
            ("ca3fc00000cb3fb999999999999a", "[1.5,0.1]"),
            ("92010281a16102", r#"[[1,2],{"a":2}]"#),
            ("9301c003", "[[1,null,3]]"),
            ("82a16101a162c0", r#"[{"a":1}]"#),
            ("c0c3c2", "[null,true,false]"),
            ("a3616263", r#"["abc"]"#),
            ("d903616263", r#"["abc"]"#),
            ("da0003616263", r#"["abc"]"#),
            ("db00000003616263", r#"["abc"]"#),
            ("dc000201dd0000000102", "[[1,[2]]]"),
            ("de0001a16101df00000001a16202", r#"[{"a":1},{"b":2}]"#),
        ] {
            let expr = format!("cjson.encode({{cmsgpack.unpack({})}})", chars(input));
            assert_eq!(text(&lua, &expr), want, "{input}");
        }
        assert_eq!(num(&lua, "select('#', cmsgpack.unpack(''))"), 0.0);
        assert_eq!(text(&lua, "cjson.encode({cmsgpack.unpack(12)})"), "[49,50]");
    }

    #[test]
    fn unpack_one_and_limit() {
        let lua = lua();
        let s = chars("010203");
        for (call, want) in [
            (format!("cmsgpack.unpack_one({s})"), "[1,1]"),
            (format!("cmsgpack.unpack_one({s}, 1)"), "[2,2]"),
            (format!("cmsgpack.unpack_one({s}, 2)"), "[-1,3]"),
            (format!("cmsgpack.unpack_one({s}, 3)"), "[-1]"),
            (format!("cmsgpack.unpack_limit({s}, 2)"), "[2,1,2]"),
            (format!("cmsgpack.unpack_limit({s}, 2, 2)"), "[-1,3]"),
            (format!("cmsgpack.unpack_limit({s}, 0)"), "[1,2,3]"),
            (format!("cmsgpack.unpack_limit({s}, 5)"), "[-1,1,2,3]"),
            (format!("cmsgpack.unpack_limit({s}, 0, 1)"), "[1]"),
        ] {
            assert_eq!(
                text(&lua, &format!("cjson.encode({{{call}}})")),
                want,
                "{call}"
            );
        }
    }

    #[test]
    fn errors() {
        let lua = lua();
        let s = chars("010203");
        for (code, want) in [
            (
                format!("cmsgpack.unpack({})", chars("c1")),
                "Bad data format in input.",
            ),
            (
                format!("cmsgpack.unpack({})", chars("c4")),
                "Bad data format in input.",
            ),
            (
                format!("cmsgpack.unpack({})", chars("92")),
                "Missing bytes in input.",
            ),
            (
                format!("cmsgpack.unpack({})", chars("cd01")),
                "Missing bytes in input.",
            ),
            (
                format!("cmsgpack.unpack({})", chars("db0000000361")),
                "Missing bytes in input.",
            ),
            (
                "cmsgpack.unpack()".to_string(),
                "bad argument #1 to 'unpack' (string expected, got no value)",
            ),
            (
                "cmsgpack.unpack({})".to_string(),
                "bad argument #1 to 'unpack' (string expected, got table)",
            ),
            (
                format!("cmsgpack.unpack_one({s}, 4)"),
                "Start offset 4 greater than input length 3.",
            ),
            (
                format!("cmsgpack.unpack_one({s}, -1)"),
                "Invalid request to unpack with offset of -1 and limit of 3.",
            ),
            (
                format!("cmsgpack.unpack_limit({s}, -1)"),
                "Invalid request to unpack with offset of 0 and limit of 3.",
            ),
            (
                format!("cmsgpack.unpack_limit({s})"),
                "bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            (
                format!("cmsgpack.unpack_limit({s}, 'x')"),
                "bad argument #2 to 'unpack_limit' (number expected, got string)",
            ),
            (
                format!("cmsgpack.unpack_one({s}, 'x')"),
                "bad argument #2 to 'unpack_one' (number expected, got string)",
            ),
            (
                "cmsgpack.unpack_one()".to_string(),
                "bad argument #1 to 'unpack_one' (string expected, got no value)",
            ),
            (
                "cmsgpack.pack()".to_string(),
                "bad argument #0 to 'pack' (MessagePack pack needs input.)",
            ),
        ] {
            assert_eq!(
                raised(&lua, &code),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
        // The core's own errors when a map key cannot be one: no position.
        assert_eq!(
            raised(&lua, &format!("cmsgpack.unpack({})", chars("81c001"))),
            "table index is nil"
        );
        assert_eq!(
            raised(
                &lua,
                &format!("cmsgpack.unpack({})", chars("81cbfff800000000000001"))
            ),
            "table index is NaN"
        );
    }

    #[test]
    fn stack_limits() {
        let lua = lua();
        let values = |n: usize, code: &str| {
            format!("return select('#', cmsgpack.unpack({code}))").replace("N", &n.to_string())
        };
        let count = |code: String| -> f64 { lua.load(&code).eval().expect(&code) };
        assert_eq!(count(values(7975, "string.rep(string.char(1), N)")), 7975.0);
        assert_eq!(
            count(values(
                3999,
                "string.rep(string.char(0x91), N) .. string.char(1)"
            )),
            1.0
        );
        assert_eq!(
            count(values(
                3999,
                "string.rep(string.char(0x81, 1), N) .. string.char(1)"
            )),
            1.0
        );
        assert_eq!(
            count(
                "return select('#', cmsgpack.unpack(string.rep(string.char(1), 7970) .. \
                 string.rep(string.char(0x91), 14) .. string.char(1)))"
                    .to_string()
            ),
            7971.0
        );
        let too_many = "user_script:1: stack overflow (too many return values at once; \
                        use unpack_one or unpack_limit instead.)";
        let arrays = "user_script:1: stack overflow (in function mp_decode_to_lua_array)";
        for (code, want) in [
            (values(8000, "string.rep(string.char(1), N)"), too_many),
            // Redis returns up to 7999 values; mlua cannot return quite as many.
            (values(7976, "string.rep(string.char(1), N)"), too_many),
            (
                values(4000, "string.rep(string.char(0x91), N) .. string.char(1)"),
                arrays,
            ),
            (
                values(
                    4000,
                    "string.rep(string.char(0x81, 1), N) .. string.char(1)",
                ),
                too_many,
            ),
            (
                values(
                    3996,
                    "string.rep(string.char(0x81, 0x91), N) .. string.char(1)",
                ),
                too_many,
            ),
            (
                "return select('#', cmsgpack.unpack(string.rep(string.char(1), 7970) .. \
                 string.rep(string.char(0x91), 15) .. string.char(1)))"
                    .to_string(),
                arrays,
            ),
        ] {
            assert_eq!(raised(&lua, &code), want, "{code}");
        }
    }

    #[test]
    fn module_fields() {
        let lua = lua();
        assert_eq!(
            text(
                &lua,
                "cmsgpack._NAME .. '|' .. cmsgpack._VERSION .. '|' .. cmsgpack._COPYRIGHT \
                 .. '|' .. cmsgpack._DESCRIPTION"
            ),
            "cmsgpack|lua-cmsgpack 0.4.0|Copyright (C) 2012, Salvatore Sanfilippo|\
             MessagePack C implementation for Lua"
        );
    }
}
