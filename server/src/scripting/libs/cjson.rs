//! `cjson`: lua-cjson 2.1.0 as Redis ships it. JSON text to Lua values and back, with the
//! library's configuration functions (kept per module table, as the C keeps them per
//! `cjson.new()`), its table-to-array rules, `%.14g` numbers and its error texts.
//!
//! Encoding and decoding walk nested data with an explicit stack, not recursion: a script may
//! raise the depth limits, and the native stack must not be what stops it. The limits the C
//! code meets on the Lua stack are counted and reported as it reports them.

use super::support::{Args, Kept, Levels, MAX_C_STACK, error, number, type_name};
use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};
use std::cell::Cell;
use std::rc::Rc;

/// The settings of one module table; `cjson.new()` starts a fresh set.
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 refuses NaN and Inf, 1 writes them as `nan`/`inf`, 2 as `null`.
    encode_invalid_numbers: usize,
    decode_invalid_numbers: bool,
    /// Only reported back: it chose whether the C kept its buffer between calls.
    encode_keep_buffer: bool,
    encode_number_precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            encode_keep_buffer: true,
            encode_number_precision: 14,
        }
    }
}

type Shared = Rc<Cell<Config>>;

/// Lua's own `next`, kept where scripts cannot reach: `cjson.new()` runs after the sandbox
/// has emptied the globals table.
fn base_next(lua: &Lua) -> mlua::Result<Function> {
    const KEY: &str = "tandem.cjson.next";
    if let Ok(f) = lua.named_registry_value::<Function>(KEY) {
        return Ok(f);
    }
    let next: Function = lua.globals().raw_get("next")?;
    lua.set_named_registry_value(KEY, &next)?;
    Ok(next)
}

/// The `cjson` table with its own configuration.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let cfg: Shared = Rc::default();
    let next = base_next(lua)?;
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            let args = Args::new(lua, args);
            if args.len() != 1 {
                return Err(args.arg_error(1, "expected 1 argument"));
            }
            let json = Encoder::new(lua, c.get(), &next).encode(args.values[0].clone())?;
            lua.create_string(json)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| decode(&Args::new(lua, args), c.get()))?,
    )?;
    setter(lua, &t, &cfg, "encode_sparse_array", 3, |args, cfg| {
        let convert = bool_option(args, 1, &mut cfg.sparse_convert)?;
        let ratio = int_option(args, 2, &mut cfg.sparse_ratio, 0, i32::MAX)?;
        let safe = int_option(args, 3, &mut cfg.sparse_safe, 0, i32::MAX)?;
        Ok(vec![convert, ratio, safe])
    })?;
    setter(lua, &t, &cfg, "encode_max_depth", 1, |args, cfg| {
        Ok(vec![int_option(
            args,
            1,
            &mut cfg.encode_max_depth,
            1,
            i32::MAX,
        )?])
    })?;
    setter(lua, &t, &cfg, "decode_max_depth", 1, |args, cfg| {
        Ok(vec![int_option(
            args,
            1,
            &mut cfg.decode_max_depth,
            1,
            i32::MAX,
        )?])
    })?;
    setter(lua, &t, &cfg, "encode_number_precision", 1, |args, cfg| {
        Ok(vec![int_option(
            args,
            1,
            &mut cfg.encode_number_precision,
            1,
            14,
        )?])
    })?;
    setter(lua, &t, &cfg, "encode_keep_buffer", 1, |args, cfg| {
        Ok(vec![bool_option(args, 1, &mut cfg.encode_keep_buffer)?])
    })?;
    setter(lua, &t, &cfg, "encode_invalid_numbers", 1, |args, cfg| {
        enum_option(
            args,
            1,
            &mut cfg.encode_invalid_numbers,
            &["off", "on", "null"],
        )
        .map(|v| vec![v])
    })?;
    setter(lua, &t, &cfg, "decode_invalid_numbers", 1, |args, cfg| {
        Ok(vec![bool_option(args, 1, &mut cfg.decode_invalid_numbers)?])
    })?;
    t.set("new", lua.create_function(|lua, ()| module(lua))?)?;
    t.set("null", Value::NULL)?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// A configuration function taking at most `nargs` options. Each option is applied as it is
/// read, so a bad later one leaves the earlier ones set, as in the C.
fn setter(
    lua: &Lua,
    t: &Table,
    cfg: &Shared,
    name: &str,
    nargs: usize,
    apply: fn(&Args, &mut Config) -> mlua::Result<Vec<Value>>,
) -> mlua::Result<()> {
    let cfg = cfg.clone();
    let f = lua.create_function(move |lua, args: MultiValue| {
        let args = Args::new(lua, args);
        if args.len() > nargs {
            return Err(args.arg_error(nargs + 1, "found too many arguments"));
        }
        let mut c = cfg.get();
        let result = apply(&args, &mut c);
        cfg.set(c);
        result.map(MultiValue::from_vec)
    })?;
    t.set(name, f)
}

/// An integer option: nil keeps the setting; out of range is reported against argument 1
/// whatever the position, as the C does.
fn int_option(args: &Args, n: usize, setting: &mut i32, min: i32, max: i32) -> mlua::Result<Value> {
    if !args.is_none_or_nil(n) {
        // `luaL_checkinteger` into a C int: the low 32 bits.
        #[allow(clippy::cast_possible_truncation)]
        let value = args.check_integer(n)? as i32;
        if value < min || value > max {
            return Err(args.arg_error(1, &format!("expected integer between {min} and {max}")));
        }
        *setting = value;
    }
    Ok(Value::Number(f64::from(*setting)))
}

fn bool_option(args: &Args, n: usize, setting: &mut bool) -> mlua::Result<Value> {
    let mut index = usize::from(*setting);
    let v = enum_option(args, n, &mut index, &["off", "on"])?;
    *setting = index == 1;
    Ok(v)
}

/// An option given as a boolean or one of `options`; reported back as a boolean when it is
/// off or on, else by name.
fn enum_option(
    args: &Args,
    n: usize,
    setting: &mut usize,
    options: &[&str],
) -> mlua::Result<Value> {
    match args.get(n) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = usize::from(*b),
        Some(_) => {
            let name = args.check_string(n)?;
            let name = name.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &name[..]) {
                Some(i) => *setting = i,
                None => {
                    let shown = String::from_utf8_lossy(&name);
                    return Err(args.arg_error(n, &format!("invalid option '{shown}'")));
                }
            }
        }
    }
    Ok(match *setting {
        0 => Value::Boolean(false),
        1 => Value::Boolean(true),
        i => Value::String(args.lua.create_string(options[i])?),
    })
}

/// C's `printf("%.<precision>g")`: the shortest of fixed and exponent notation for that many
/// significant digits, trailing zeros dropped.
pub(super) fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let p = i32::try_from(p).unwrap_or(i32::MAX);
    if exp < -4 || exp >= p {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(p - 1 - exp).unwrap_or(0);
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// One table being written: an array by index, or an object by `next`.
enum Frame {
    Array { table: Kept, index: i32, len: i32 },
    Object { table: Kept, key: Kept },
}

impl Frame {
    /// The Lua stack slots the C holds for this level while it writes a member.
    fn slots(&self) -> usize {
        match self {
            Frame::Array { .. } => 1,
            Frame::Object { .. } => 2,
        }
    }
}

struct Encoder<'a> {
    lua: &'a Lua,
    cfg: Config,
    next: &'a Function,
    levels: Levels<'a>,
    out: Vec<u8>,
}

impl<'a> Encoder<'a> {
    fn new(lua: &'a Lua, cfg: Config, next: &'a Function) -> Self {
        Encoder {
            lua,
            cfg,
            next,
            levels: Levels::new(lua),
            out: Vec::new(),
        }
    }

    fn encode(mut self, value: Value) -> mlua::Result<Vec<u8>> {
        let mut stack: Vec<Frame> = Vec::new();
        // The argument itself occupies one slot.
        let mut slots = 1;
        let mut pending = Some(value);
        loop {
            if let Some(value) = pending.take() {
                if let Value::Table(table) = value {
                    let depth = stack.len() + 1;
                    let max_depth = usize::try_from(self.cfg.encode_max_depth).unwrap_or(0);
                    if depth > max_depth || slots + 3 > MAX_C_STACK {
                        return Err(error(
                            self.lua,
                            &format!("Cannot serialise, excessive nesting ({depth})"),
                        ));
                    }
                    let len = self.array_length(&table)?;
                    let kept = self.levels.keep(depth, 0, Value::Table(table))?;
                    let frame = if len > 0 {
                        self.out.push(b'[');
                        Frame::Array {
                            table: kept,
                            index: 0,
                            len,
                        }
                    } else {
                        self.out.push(b'{');
                        Frame::Object {
                            table: kept,
                            key: self.levels.keep(depth, 1, Value::Nil)?,
                        }
                    };
                    slots += frame.slots();
                    stack.push(frame);
                } else {
                    self.scalar(&value)?;
                }
            }
            let Some(frame) = stack.last_mut() else {
                return Ok(self.out);
            };
            match frame {
                Frame::Array { table, index, len } => {
                    if *index < *len {
                        if *index > 0 {
                            self.out.push(b',');
                        }
                        *index += 1;
                        if let Value::Table(t) = self.levels.get(table)? {
                            pending = Some(t.raw_get(*index)?);
                        }
                        continue;
                    }
                    self.out.push(b']');
                }
                Frame::Object { table, key } => {
                    let previous = self.levels.get(key)?;
                    let first = previous.is_nil();
                    let (k, v): (Value, Value) =
                        self.next.call((self.levels.get(table)?, previous))?;
                    if !k.is_nil() {
                        if !first {
                            self.out.push(b',');
                        }
                        self.key(&k)?;
                        self.levels.set(key, k)?;
                        pending = Some(v);
                        continue;
                    }
                    self.out.push(b'}');
                }
            }
            if let Some(done) = stack.pop() {
                slots -= done.slots();
                match done {
                    Frame::Array { table, .. } => {
                        self.levels.release(table)?;
                    }
                    Frame::Object { table, key } => {
                        self.levels.release(table)?;
                        self.levels.release(key)?;
                    }
                }
            }
        }
    }

    /// lua-cjson's array test: every key an integer >= 1, and not too sparse. Returns the
    /// highest index, or 0 or less for an object. The running maximum is a C int, which a
    /// key past `i32::MAX` turns into `i32::MIN` (x86's conversion of an out-of-range
    /// double), so such tables come out as objects, or as arrays of the keys seen after it.
    fn array_length(&self, table: &Table) -> mlua::Result<i32> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in table.pairs::<Value, Value>() {
            let (k, _) = pair?;
            match number(&k) {
                Some(k) if k.floor() == k && k >= 1.0 => {
                    if k > f64::from(max) {
                        max = c_int(k);
                    }
                    items = items.wrapping_add(1);
                }
                _ => return Ok(-1),
            }
        }
        let cfg = &self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if !cfg.sparse_convert {
                return Err(error(
                    self.lua,
                    "Cannot serialise table: excessively sparse array",
                ));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    fn key(&mut self, k: &Value) -> mlua::Result<()> {
        match k {
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            _ => match number(k) {
                Some(x) => {
                    self.out.push(b'"');
                    self.number(x)?;
                    self.out.extend_from_slice(b"\":");
                }
                None => {
                    return Err(self.unsupported(k, "table key must be a number or string"));
                }
            },
        }
        Ok(())
    }

    fn scalar(&mut self, v: &Value) -> mlua::Result<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            v if v.is_null() => self.out.extend_from_slice(b"null"),
            v => match number(v) {
                Some(x) => self.number(x)?,
                None => return Err(self.unsupported(v, "type not supported")),
            },
        }
        Ok(())
    }

    fn unsupported(&self, v: &Value, reason: &str) -> mlua::Error {
        let kind = type_name(Some(v));
        error(self.lua, &format!("Cannot serialise {kind}: {reason}"))
    }

    fn number(&mut self, x: f64) -> mlua::Result<()> {
        let invalid = x.is_nan() || x.is_infinite();
        match self.cfg.encode_invalid_numbers {
            0 if invalid => {
                return Err(error(
                    self.lua,
                    "Cannot serialise number: must not be NaN or Inf",
                ));
            }
            1 if x.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if invalid => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let precision = usize::try_from(self.cfg.encode_number_precision).unwrap_or(14);
        self.out
            .extend_from_slice(format_g(x, precision).as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &b in s {
            match b {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(b >> 4)]);
                    self.out.push(HEX[usize::from(b & 15)]);
                }
                _ => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }
}

/// A double to a C int the way x86 converts: out of range gives `i32::MIN`.
fn c_int(x: f64) -> i32 {
    if x > -2_147_483_649.0 && x < 2_147_483_648.0 {
        // In range: truncation toward zero, as C.
        #[allow(clippy::cast_possible_truncation)]
        let v = x as i32;
        v
    } else {
        i32::MIN
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    String,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::String => "T_STRING",
            Kind::Number => "T_NUMBER",
            Kind::Boolean => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error => "T_ERROR",
        }
    }
}

struct Token {
    kind: Kind,
    /// Where the token starts, or where the error was found.
    index: usize,
    string: Vec<u8>,
    number: f64,
    boolean: bool,
    error: &'static str,
}

impl Token {
    fn new(kind: Kind, index: usize) -> Self {
        Token {
            kind,
            index,
            string: Vec::new(),
            number: 0.0,
            boolean: false,
            error: "",
        }
    }
}

struct Parser<'a> {
    lua: &'a Lua,
    cfg: Config,
    /// The text; the C reads it as a NUL-terminated string, so reads past the end see 0.
    data: &'a [u8],
    pos: usize,
    levels: Levels<'a>,
}

/// One container being filled: the table, and for an object the pending key.
enum Open {
    Array { table: Kept, next: i64 },
    Object { table: Kept, key: Kept },
}

impl Open {
    fn slots(&self) -> usize {
        match self {
            Open::Array { .. } => 1,
            Open::Object { .. } => 2,
        }
    }
}

fn decode(args: &Args, cfg: Config) -> mlua::Result<Value> {
    if args.len() != 1 {
        return Err(args.arg_error(1, "expected 1 argument"));
    }
    let text = args.check_string(1)?;
    let data = text.as_bytes();
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(error(
            args.lua,
            "JSON parser does not support UTF-16 or UTF-32",
        ));
    }
    Parser {
        lua: args.lua,
        cfg,
        data: &data[..],
        pos: 0,
        levels: Levels::new(args.lua),
    }
    .parse()
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn parse(&mut self) -> mlua::Result<Value> {
        let mut stack: Vec<Open> = Vec::new();
        // The argument occupies one slot.
        let mut slots = 1;
        let mut token = self.next_token();
        loop {
            let mut value = match token.kind {
                Kind::String => Value::String(self.lua.create_string(&token.string)?),
                Kind::Number => Value::Number(token.number),
                Kind::Boolean => Value::Boolean(token.boolean),
                Kind::Null => Value::NULL,
                Kind::ObjBegin | Kind::ArrBegin => {
                    let is_object = token.kind == Kind::ObjBegin;
                    let depth = stack.len() + 1;
                    let needed = if is_object { 3 } else { 2 };
                    let max_depth = usize::try_from(self.cfg.decode_max_depth).unwrap_or(0);
                    if depth > max_depth || slots + needed > MAX_C_STACK {
                        return Err(error(
                            self.lua,
                            &format!(
                                "Found too many nested data structures ({depth}) at character {}",
                                self.pos
                            ),
                        ));
                    }
                    let table = self.lua.create_table()?;
                    token = self.next_token();
                    let close = if is_object {
                        Kind::ObjEnd
                    } else {
                        Kind::ArrEnd
                    };
                    if token.kind == close {
                        Value::Table(table)
                    } else {
                        let table = self.levels.keep(depth, 0, Value::Table(table))?;
                        let open = if is_object {
                            let key = Value::String(self.object_key(token)?);
                            token = self.next_token();
                            Open::Object {
                                table,
                                key: self.levels.keep(depth, 1, key)?,
                            }
                        } else {
                            Open::Array { table, next: 1 }
                        };
                        slots += open.slots();
                        stack.push(open);
                        continue;
                    }
                }
                _ => return Err(self.unexpected("value", &token)),
            };
            // A value is complete: store it, and close every container it completes.
            loop {
                let Some(open) = stack.last_mut() else {
                    token = self.next_token();
                    if token.kind != Kind::End {
                        return Err(self.unexpected("the end", &token));
                    }
                    return Ok(value);
                };
                let close = match open {
                    Open::Array { table, next } => {
                        if let Value::Table(t) = self.levels.get(table)? {
                            t.raw_set(*next, value)?;
                        }
                        *next += 1;
                        Kind::ArrEnd
                    }
                    Open::Object { table, key } => {
                        if let Value::Table(t) = self.levels.get(table)? {
                            t.raw_set(self.levels.get(key)?, value)?;
                        }
                        Kind::ObjEnd
                    }
                };
                token = self.next_token();
                if token.kind != close && token.kind != Kind::Comma {
                    let expected = if close == Kind::ArrEnd {
                        "comma or array end"
                    } else {
                        "comma or object end"
                    };
                    return Err(self.unexpected(expected, &token));
                }
                if token.kind == Kind::Comma {
                    token = self.next_token();
                    if let Some(Open::Object { key, .. }) = stack.last_mut() {
                        let k = Value::String(self.object_key(token)?);
                        self.levels.set(key, k)?;
                        token = self.next_token();
                    }
                    break;
                }
                let Some(done) = stack.pop() else {
                    unreachable!("a container was open")
                };
                slots -= done.slots();
                value = match done {
                    Open::Array { table, .. } => self.levels.release(table)?,
                    Open::Object { table, key } => {
                        self.levels.release(key)?;
                        self.levels.release(table)?
                    }
                };
            }
        }
    }

    /// An object's key and its colon; leaves the parser at the member's value.
    fn object_key(&mut self, token: Token) -> mlua::Result<LuaString> {
        if token.kind != Kind::String {
            return Err(self.unexpected("object key string", &token));
        }
        let key = self.lua.create_string(&token.string)?;
        let colon = self.next_token();
        if colon.kind != Kind::Colon {
            return Err(self.unexpected("colon", &colon));
        }
        Ok(key)
    }

    fn unexpected(&self, expected: &str, token: &Token) -> mlua::Error {
        let found = if token.kind == Kind::Error {
            token.error
        } else {
            token.kind.name()
        };
        error(
            self.lua,
            &format!(
                "Expected {expected} but found {found} at character {}",
                token.index + 1
            ),
        )
    }

    fn fail(&self, mut token: Token, what: &'static str) -> Token {
        token.kind = Kind::Error;
        token.index = self.pos;
        token.error = what;
        token
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let ch = self.at(self.pos);
        let token = Token::new(Kind::Error, self.pos);
        let single = match ch {
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b',' => Some(Kind::Comma),
            b':' => Some(Kind::Colon),
            0 => {
                return Token::new(Kind::End, self.pos);
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-' | b'0'..=b'9' => None,
            _ => return self.fail(token, "invalid token"),
        };
        if let Some(kind) = single {
            self.pos += 1;
            return Token::new(kind, self.pos - 1);
        }
        let rest = &self.data[self.pos..];
        if ch == b'"' {
            self.string_token(token)
        } else if ch == b'-' || ch.is_ascii_digit() {
            if !self.cfg.decode_invalid_numbers && self.is_invalid_number() {
                return self.fail(token, "invalid number");
            }
            self.number_token(token)
        } else if rest.starts_with(b"true") {
            self.pos += 4;
            Token {
                boolean: true,
                ..Token::new(Kind::Boolean, token.index)
            }
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Token::new(Kind::Boolean, token.index)
        } else if rest.starts_with(b"null") {
            self.pos += 4;
            Token::new(Kind::Null, token.index)
        } else if self.cfg.decode_invalid_numbers && self.is_invalid_number() {
            self.number_token(token)
        } else {
            self.fail(token, "invalid token")
        }
    }

    /// Numbers strict JSON forbids but `strtod` takes: a leading `+`, hex, leading zeros,
    /// inf and nan.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        if self.at(p) == b'0' {
            let next = self.at(p + 1);
            return next | 0x20 == b'x' || next.is_ascii_digit();
        }
        if self.at(p) <= b'9' {
            return false;
        }
        let word = [self.at(p), self.at(p + 1), self.at(p + 2)].map(|b| b.to_ascii_lowercase());
        &word == b"inf" || &word == b"nan"
    }

    fn number_token(&mut self, mut token: Token) -> Token {
        match strtod(self.data, self.pos) {
            Some((x, end)) => {
                self.pos = end;
                token.kind = Kind::Number;
                token.number = x;
                token
            }
            None => self.fail(token, "invalid number"),
        }
    }

    fn string_token(&mut self, mut token: Token) -> Token {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let ch = self.at(self.pos);
            match ch {
                b'"' => break,
                0 => return self.fail(token, "unexpected end of string"),
                b'\\' => {
                    let unescaped = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => b'\x08',
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => b'\x0c',
                        b'r' => b'\r',
                        b'u' => {
                            if !self.unicode_escape(&mut out) {
                                return self.fail(token, "invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return self.fail(token, "invalid escape code"),
                    };
                    out.push(unescaped);
                    self.pos += 2;
                }
                _ => {
                    out.push(ch);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        token.kind = Kind::String;
        token.string = out;
        token
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, i| {
            let digit = char::from(self.at(at + i)).to_digit(16)?;
            Some(acc << 4 | digit)
        })
    }

    /// `\uXXXX` at the parser's position, with a surrogate pair's second half; appends the
    /// code point as UTF-8 and moves past the escape.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(mut code) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if code & 0xF800 == 0xD800 {
            if code & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u'
            {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            code = (((code & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let Some(c) = char::from_u32(code) else {
            return false;
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        self.pos += len;
        true
    }
}

/// C's `strtod` on `data[start..]`: the longest prefix that is a number (decimal, hex, inf,
/// nan), or `None` when there is none. Returns the value and where the number ends.
pub(super) fn strtod(data: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut p = start;
    let negative = at(p) == b'-';
    if matches!(at(p), b'+' | b'-') {
        p += 1;
    }
    let sign = |x: f64| if negative { -x } else { x };
    let word = |p: usize, w: &[u8]| (0..w.len()).all(|i| at(p + i).to_ascii_lowercase() == w[i]);
    if word(p, b"inf") {
        let end = if word(p + 3, b"inity") { p + 8 } else { p + 3 };
        return Some((sign(f64::INFINITY), end));
    }
    if word(p, b"nan") {
        let mut end = p + 3;
        if at(end) == b'(' {
            let mut q = end + 1;
            while at(q).is_ascii_alphanumeric() || at(q) == b'_' {
                q += 1;
            }
            if at(q) == b')' {
                end = q + 1;
            }
        }
        return Some((sign(f64::NAN), end));
    }
    if at(p) == b'0'
        && at(p + 1) | 0x20 == b'x'
        && let Some((x, end)) = hex_float(data, p + 2)
    {
        return Some((sign(x), end));
    }
    let int_start = p;
    while at(p).is_ascii_digit() {
        p += 1;
    }
    let int_digits = &data[int_start..p];
    let mut frac_digits: &[u8] = &[];
    if at(p) == b'.' {
        let f = p + 1;
        let mut q = f;
        while at(q).is_ascii_digit() {
            q += 1;
        }
        frac_digits = &data[f..q];
        if !int_digits.is_empty() || !frac_digits.is_empty() {
            p = q;
        }
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exponent: &[u8] = b"0";
    if at(p) | 0x20 == b'e' {
        let mut q = p + 1;
        if matches!(at(q), b'+' | b'-') {
            q += 1;
        }
        if at(q).is_ascii_digit() {
            let e = p + 1;
            while at(q).is_ascii_digit() {
                q += 1;
            }
            exponent = &data[e..q];
            p = q;
        }
    }
    let mut text = Vec::with_capacity(int_digits.len() + frac_digits.len() + exponent.len() + 4);
    text.extend_from_slice(if int_digits.is_empty() {
        b"0"
    } else {
        int_digits
    });
    text.push(b'.');
    text.extend_from_slice(if frac_digits.is_empty() {
        b"0"
    } else {
        frac_digits
    });
    text.push(b'e');
    text.extend_from_slice(exponent);
    let x: f64 = std::str::from_utf8(&text).ok()?.parse().ok()?;
    Some((sign(x), p))
}

/// The hex digits of a `0x` number starting at `p` (after the `0x`), with an optional
/// fraction and binary exponent; `None` when no hex digit follows.
fn hex_float(data: &[u8], mut p: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut seen_dot = false;
    loop {
        let c = at(p);
        if c == b'.' && !seen_dot {
            seen_dot = true;
            p += 1;
            continue;
        }
        let Some(d) = char::from(c).to_digit(16) else {
            break;
        };
        digits += 1;
        if mantissa < 1 << 60 {
            mantissa = mantissa << 4 | u64::from(d);
            if seen_dot {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_dot {
                exp += 4;
            }
        }
        p += 1;
    }
    if digits == 0 {
        return None;
    }
    if at(p) | 0x20 == b'p' {
        let mut q = p + 1;
        let negative = at(q) == b'-';
        if matches!(at(q), b'+' | b'-') {
            q += 1;
        }
        if at(q).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(q).is_ascii_digit() {
                e = (e * 10 + i64::from(at(q) - b'0')).min(1 << 20);
                q += 1;
            }
            exp += if negative { -e } else { e };
            p = q;
        }
    }
    if sticky {
        mantissa |= 1;
    }
    // u64 to f64 rounds to nearest; the sticky bit keeps dropped digits in that rounding.
    #[allow(clippy::cast_precision_loss)]
    let mut x = mantissa as f64;
    let mut e = exp.clamp(-2200, 2200);
    while e > 0 {
        let step = e.min(1000);
        x *= 2f64.powi(i32::try_from(step).unwrap_or(0));
        e -= step;
    }
    while e < 0 {
        let step = e.max(-1000);
        x *= 2f64.powi(i32::try_from(step).unwrap_or(0));
        e -= step;
    }
    Some((x, p))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, eval, lua, num, raised, text};
    use super::{format_g, strtod};
    use mlua::Value;

    // Expected values from Redis 7.0, e.g.
    // redis-cli EVAL "return cjson.encode({1,2,{a=1}})" 0

    #[test]
    fn encodes_values() {
        let lua = lua();
        for (expr, want) in [
            ("cjson.encode({1,2,{a=1}})", r#"[1,2,{"a":1}]"#),
            ("cjson.encode({})", "{}"),
            ("cjson.encode({1,nil,3})", "[1,null,3]"),
            ("cjson.encode({[1]=1,[2]=2,[4]=4})", "[1,2,null,4]"),
            ("cjson.encode({[3]=1})", "[null,null,1]"),
            ("cjson.encode({[1.5]=1})", r#"{"1.5":1}"#),
            ("cjson.encode({[-1]=1})", r#"{"-1":1}"#),
            ("cjson.encode({[1e10]=1})", r#"{"10000000000":1}"#),
            ("cjson.encode({[2^31]=1})", r#"{"2147483648":1}"#),
            ("cjson.encode({[1e10]=1, [1]=2})", "[2]"),
            ("cjson.encode({1, [1e10]=1})", r#"{"1":1,"10000000000":1}"#),
            ("cjson.encode(nil)", "null"),
            ("cjson.encode(cjson.null)", "null"),
            ("cjson.encode(true)", "true"),
            ("cjson.encode(false)", "false"),
            ("cjson.encode('x')", r#""x""#),
        ] {
            assert_eq!(text(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn encodes_strings_with_cjson_escapes() {
        let lua = lua();
        assert_eq!(
            bytes(&lua, r#"cjson.encode('a/b"\\\n\1\127\200\8\9\12\13')"#),
            b"\"a\\/b\\\"\\\\\\n\\u0001\\u007f\xc8\\b\\t\\f\\r\""
        );
    }

    #[test]
    fn encodes_numbers_with_14_digits() {
        let lua = lua();
        for (expr, want) in [
            ("cjson.encode(0.1)", "0.1"),
            ("cjson.encode(1/3)", "0.33333333333333"),
            ("cjson.encode(-0.0)", "-0"),
            ("cjson.encode(1e100)", "1e+100"),
            ("cjson.encode(2^53)", "9.007199254741e+15"),
            ("cjson.encode(123456789012345)", "1.2345678901234e+14"),
            ("cjson.encode(1e-5)", "1e-05"),
            ("cjson.encode(0.0001)", "0.0001"),
        ] {
            assert_eq!(text(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn format_g_matches_printf() {
        for (x, p, want) in [
            (0.0, 14, "0"),
            (100.0, 14, "100"),
            (1e14, 14, "1e+14"),
            (999_999_999_999_999.0, 14, "1e+15"),
            (12_345_678_901_234.0, 14, "12345678901234"),
            (0.000_012_5, 2, "1.3e-05"),
            (1.23456, 3, "1.23"),
            (1_234_567.0, 3, "1.23e+06"),
            (-1.5, 1, "-2"),
            (2.5, 1, "2"),
            (5e-324, 14, "4.9406564584125e-324"),
            (f64::INFINITY, 14, "inf"),
            (f64::NEG_INFINITY, 14, "-inf"),
        ] {
            assert_eq!(format_g(x, p), want, "{x} %.{p}g");
        }
    }

    #[test]
    fn encode_errors() {
        let lua = lua();
        for (code, want) in [
            (
                "cjson.encode({[11]=1})",
                "user_script:1: Cannot serialise table: excessively sparse array",
            ),
            (
                "cjson.encode({[2^31-1]=1})",
                "user_script:1: Cannot serialise table: excessively sparse array",
            ),
            (
                "cjson.encode(1/0)",
                "user_script:1: Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode({0/0})",
                "user_script:1: Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode({[1/0]=1})",
                "user_script:1: Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode({[true]=1})",
                "user_script:1: Cannot serialise boolean: table key must be a number or string",
            ),
            (
                "cjson.encode({x={print}})",
                "user_script:1: Cannot serialise function: type not supported",
            ),
            (
                "cjson.encode(coroutine.create(function() end))",
                "user_script:1: Cannot serialise thread: type not supported",
            ),
            (
                "cjson.encode(1, 2)",
                "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "cjson.encode()",
                "user_script:1: bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "local a = {} a[1] = a return cjson.encode(a)",
                "user_script:1: Cannot serialise, excessive nesting (1001)",
            ),
        ] {
            assert_eq!(raised(&lua, code), want, "{code}");
        }
    }

    #[test]
    fn encode_depth_limits() {
        let lua = lua();
        assert_eq!(
            raised(&lua, "cjson.encode_max_depth(2) cjson.encode({{{1}}})"),
            "user_script:1: Cannot serialise, excessive nesting (3)"
        );
        assert_eq!(text(&lua, "cjson.encode({{1}})"), "[[1]]");
        // With the limit lifted, the C stops where the Lua stack of one C call is full.
        lua.load("cjson.encode_max_depth(100000)")
            .exec()
            .expect("set");
        for (code, want) in [
            ("local a = {} a[1] = a return cjson.encode(a)", 7998),
            ("local a = {} a.x = a return cjson.encode(a)", 4000),
            ("local a = {} a[1] = {a} return cjson.encode(a)", 7998),
        ] {
            assert_eq!(
                raised(&lua, code),
                format!("user_script:1: Cannot serialise, excessive nesting ({want})"),
                "{code}"
            );
        }
    }

    #[test]
    fn encodes_objects() {
        let lua = lua();
        let back = eval(
            &lua,
            r#"(function()
                local t = cjson.decode(cjson.encode({a=1, b={c="x"}, [5]=true}))
                return t.a == 1 and t.b.c == "x" and t["5"] == true
            end)()"#,
        );
        assert_eq!(back, Value::Boolean(true));
    }

    #[test]
    fn configuration() {
        let lua = lua();
        for (code, want) in [
            (
                "cjson.encode_sparse_array(true) return cjson.encode({[20]=1})",
                r#"{"20":1}"#,
            ),
            (
                "cjson.encode_sparse_array(false, 0) return cjson.encode({[12]=1})",
                "[null,null,null,null,null,null,null,null,null,null,null,1]",
            ),
            (
                "cjson.encode_sparse_array(false, 2, 30) return cjson.encode({[12]=1})",
                "[null,null,null,null,null,null,null,null,null,null,null,1]",
            ),
            (
                "cjson.encode_sparse_array(true, 1, 0) return cjson.encode({1,2,[4]=4})",
                r#"{"1":1,"2":2,"4":4}"#,
            ),
            (
                "cjson.encode_number_precision(3) return cjson.encode({3.14159, 1234567})",
                "[3.14,1.23e+06]",
            ),
            (
                "cjson.encode_invalid_numbers('on') return cjson.encode({1/0, -1/0, 0/0})",
                "[inf,-inf,nan]",
            ),
            (
                "cjson.encode_invalid_numbers('null') return cjson.encode({1/0, -1/0, 0/0})",
                "[null,null,null]",
            ),
            (
                "local c = cjson.new() c.encode_number_precision(2) \
                 return cjson.encode(1/3) .. c.encode(1/3)",
                "0.3330.33",
            ),
            (
                "local c = cjson.new() return c.encode(1/3)",
                "0.33333333333333",
            ),
        ] {
            let got: String = lua.load(code).eval().expect(code);
            assert_eq!(got, want, "{code}");
        }
    }

    #[test]
    fn configuration_results() {
        let lua = lua();
        let got: (Value, f64, f64) = lua
            .load("return cjson.encode_sparse_array()")
            .eval()
            .expect("get");
        assert_eq!(got, (Value::Boolean(false), 2.0, 10.0));
        assert_eq!(num(&lua, "cjson.encode_max_depth()"), 1000.0);
        assert_eq!(num(&lua, "cjson.decode_max_depth()"), 1000.0);
        assert_eq!(num(&lua, "cjson.encode_number_precision()"), 14.0);
        assert_eq!(num(&lua, "cjson.encode_number_precision(3.9)"), 3.0);
        assert_eq!(
            eval(&lua, "cjson.encode_keep_buffer()"),
            Value::Boolean(true)
        );
        assert_eq!(
            eval(&lua, "cjson.encode_keep_buffer(false)"),
            Value::Boolean(false)
        );
        assert_eq!(
            eval(&lua, "cjson.encode_keep_buffer('on')"),
            Value::Boolean(true)
        );
        assert_eq!(
            eval(&lua, "cjson.encode_invalid_numbers()"),
            Value::Boolean(false)
        );
        assert_eq!(text(&lua, "cjson.encode_invalid_numbers('null')"), "null");
        assert_eq!(
            eval(&lua, "cjson.encode_invalid_numbers(true)"),
            Value::Boolean(true)
        );
        assert_eq!(
            eval(&lua, "cjson.decode_invalid_numbers()"),
            Value::Boolean(true)
        );
        assert_eq!(text(&lua, "cjson._NAME"), "cjson");
        assert_eq!(text(&lua, "cjson._VERSION"), "2.1.0");
        assert_eq!(eval(&lua, "cjson.null"), Value::NULL);
    }

    #[test]
    fn configuration_errors() {
        let lua = lua();
        for (code, want) in [
            (
                "cjson.encode_sparse_array(1,2,3,4)",
                "bad argument #4 to 'encode_sparse_array' (found too many arguments)",
            ),
            (
                "cjson.encode_max_depth(0)",
                "bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)",
            ),
            (
                "cjson.encode_number_precision(15)",
                "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)",
            ),
            (
                "cjson.encode_number_precision('x')",
                "bad argument #1 to 'encode_number_precision' (number expected, got string)",
            ),
            (
                "cjson.encode_keep_buffer('maybe')",
                "bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')",
            ),
            (
                "cjson.encode_keep_buffer({})",
                "bad argument #1 to 'encode_keep_buffer' (string expected, got table)",
            ),
            (
                "cjson.encode_sparse_array(nil, 1, -1)",
                "bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)",
            ),
        ] {
            assert_eq!(
                raised(&lua, code),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
        // The options before the bad one are applied.
        assert!(raised(&lua, "cjson.encode_sparse_array(true, -1)").contains("between 0 and"));
        assert_eq!(text(&lua, "cjson.encode({[20]=1})"), r#"{"20":1}"#);
        assert_eq!(
            raised(
                &lua,
                "cjson.encode_sparse_array(false, 1, 0) cjson.encode({1,2,[4]=4})"
            ),
            "user_script:1: Cannot serialise table: excessively sparse array"
        );
    }

    #[test]
    fn decodes_values() {
        let lua = lua();
        for (expr, want) in [
            ("cjson.decode('[1,2,3]')[3]", 3.0),
            ("cjson.decode('0x10')", 16.0),
            ("cjson.decode('+1')", 1.0),
            ("cjson.decode('007')", 7.0),
            ("cjson.decode('1.')", 1.0),
            ("cjson.decode('1E2')", 100.0),
            ("cjson.decode('0x1p3')", 8.0),
            ("cjson.decode(12)", 12.0),
            ("cjson.decode('-0.5e1')", -5.0),
            ("cjson.decode('[[[[1]]]]')[1][1][1][1]", 1.0),
            ("cjson.decode('12' .. string.char(0) .. 'xyz')", 12.0),
            ("cjson.decode(' \\t\\r\\n 5 ')", 5.0),
        ] {
            assert_eq!(num(&lua, expr), want, "{expr}");
        }
        for (expr, want) in [
            ("cjson.decode('1e400')", f64::INFINITY),
            ("cjson.decode('-inf')", f64::NEG_INFINITY),
            ("cjson.decode('inf')", f64::INFINITY),
            ("cjson.decode('Infinity')", f64::INFINITY),
            ("cjson.decode('inF')", f64::INFINITY),
        ] {
            assert_eq!(num(&lua, expr), want, "{expr}");
        }
        for expr in [
            "cjson.decode('nan')",
            "cjson.decode('NaN')",
            "cjson.decode('nan(123)')",
        ] {
            assert!(num(&lua, expr).is_nan(), "{expr}");
        }
        assert!(num(&lua, "cjson.decode('-0')").is_sign_negative());
        assert_eq!(
            text(
                &lua,
                r#"cjson.decode('"\\u00e9\\ud83d\\ude00\\/\\"\\\\\\b\\f\\n\\r\\t"')"#
            ),
            "é😀/\"\\\u{8}\u{c}\n\r\t"
        );
        assert_eq!(num(&lua, r#"cjson.decode('"\\u0000"'):len()"#), 1.0);
        assert_eq!(
            eval(
                &lua,
                r#"cjson.decode('{"a":[1,{"b":null}]}').a[2].b == cjson.null"#
            ),
            Value::Boolean(true)
        );
        assert_eq!(eval(&lua, "cjson.decode('true')"), Value::Boolean(true));
        assert_eq!(eval(&lua, "cjson.decode('false')"), Value::Boolean(false));
        assert_eq!(eval(&lua, "next(cjson.decode(' {} '))"), Value::Nil);
        assert_eq!(
            eval(&lua, "#cjson.decode('[1,2,[],{}]')"),
            Value::Integer(4)
        );
    }

    #[test]
    fn decode_errors() {
        let lua = lua();
        for (arg, want) in [
            (
                "'.5'",
                "Expected value but found invalid token at character 1",
            ),
            ("''", "Expected value but found T_END at character 1"),
            ("'   '", "Expected value but found T_END at character 4"),
            (
                "'[1,]'",
                "Expected value but found T_ARR_END at character 4",
            ),
            (
                r#"'{"a" 1}'"#,
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                "'{1:2}'",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            (
                r#"'{"a":1,}'"#,
                "Expected object key string but found T_OBJ_END at character 8",
            ),
            (
                r#"'{"a":1 "b"}'"#,
                "Expected comma or object end but found T_STRING at character 8",
            ),
            (
                "'[1 2]'",
                "Expected comma or array end but found T_NUMBER at character 4",
            ),
            (
                "'truex'",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "'tru'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "'nul'",
                "Expected value but found invalid token at character 1",
            ),
            (
                r#"'"abc'"#,
                "Expected value but found unexpected end of string at character 5",
            ),
            (
                r#"'"\\x"'"#,
                "Expected value but found invalid escape code at character 2",
            ),
            (
                r#"'"\\u12"'"#,
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                r#"'"\\udc00"'"#,
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                r#"'"\\ud800x"'"#,
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                r#"'"\\ud800\\u0041"'"#,
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "'1 2'",
                "Expected the end but found T_NUMBER at character 3",
            ),
            (
                "'-'",
                "Expected value but found invalid number at character 1",
            ),
            (
                "'-x'",
                "Expected value but found invalid number at character 1",
            ),
            (
                "'0x'",
                "Expected the end but found invalid token at character 2",
            ),
            (
                "'1e+'",
                "Expected the end but found invalid token at character 2",
            ),
            ("'['", "Expected value but found T_END at character 2"),
            (
                "'{'",
                "Expected object key string but found T_END at character 2",
            ),
            (
                r#"'{"a":'"#,
                "Expected value but found T_END at character 6",
            ),
            (
                "'\\f1'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "string.char(0, 49)",
                "JSON parser does not support UTF-16 or UTF-32",
            ),
            (
                "string.char(49, 0)",
                "JSON parser does not support UTF-16 or UTF-32",
            ),
            (
                "string.char(0)",
                "Expected value but found T_END at character 1",
            ),
            (
                r#"'"a' .. string.char(0) .. 'b"'"#,
                "Expected value but found unexpected end of string at character 3",
            ),
            (
                "'[1,2' .. string.char(0) .. ']'",
                "Expected comma or array end but found T_END at character 5",
            ),
            ("", "bad argument #1 to 'decode' (expected 1 argument)"),
            ("1, 2", "bad argument #1 to 'decode' (expected 1 argument)"),
            (
                "{}",
                "bad argument #1 to 'decode' (string expected, got table)",
            ),
        ] {
            let code = format!("cjson.decode({arg})");
            assert_eq!(
                raised(&lua, &code),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
    }

    #[test]
    fn decode_strict_numbers() {
        let lua = lua();
        lua.load("cjson.decode_invalid_numbers(false)")
            .exec()
            .expect("set");
        for (arg, want) in [
            ("0x10", "invalid number"),
            ("inf", "invalid token"),
            ("007", "invalid number"),
            ("+1", "invalid token"),
            ("-inf", "invalid number"),
            ("nan", "invalid token"),
        ] {
            let code = format!("cjson.decode('{arg}')");
            assert_eq!(
                raised(&lua, &code),
                format!("user_script:1: Expected value but found {want} at character 1"),
                "{code}"
            );
        }
        assert_eq!(num(&lua, "cjson.decode('-0.5e1')"), -5.0);
    }

    #[test]
    fn decode_depth_limits() {
        let lua = lua();
        lua.load("cjson.decode_max_depth(2)").exec().expect("set");
        assert_eq!(num(&lua, "cjson.decode('[[1]]')[1][1]"), 1.0);
        for (arg, want) in [
            ("'[[[1]]]'", "(3) at character 3"),
            (r#"'{"a":{"b":{}}}'"#, "(3) at character 11"),
        ] {
            let code = format!("cjson.decode({arg})");
            assert_eq!(
                raised(&lua, &code),
                format!("user_script:1: Found too many nested data structures {want}"),
            );
        }
        lua.load("cjson.decode_max_depth(100000)")
            .exec()
            .expect("set");
        for (arg, want) in [
            ("string.rep('[', 100000)", "(7999) at character 7999"),
            (
                r#"string.rep('{"a":', 100000)"#,
                "(4000) at character 19996",
            ),
        ] {
            let code = format!("cjson.decode({arg})");
            assert_eq!(
                raised(&lua, &code),
                format!("user_script:1: Found too many nested data structures {want}"),
            );
        }
    }

    #[test]
    fn strtod_prefixes() {
        for (text, want, len) in [
            ("1.5x", 1.5, 3),
            ("-.5", -0.5, 3),
            ("1e5", 1e5, 3),
            ("1e", 1.0, 1),
            ("0x1.8p1", 3.0, 7),
            ("0xg", 0.0, 1),
            ("infinity", f64::INFINITY, 8),
            ("-infx", f64::NEG_INFINITY, 4),
        ] {
            assert_eq!(strtod(text.as_bytes(), 0), Some((want, len)), "{text}");
        }
        assert_eq!(strtod(b"-", 0), None);
        assert_eq!(strtod(b".", 0), None);
    }
}
