//! Replies to Lua values and back, with Redis 7.0's rules: a command's reply is parsed into
//! Lua as `redis.call` returns it (null -> false, status -> `{ok=}`, error -> `{err=}`,
//! RESP3 maps, sets, doubles and big numbers as one-field tables), and a script's return
//! value becomes the caller's reply (numbers truncated to integers, arrays cut at the first
//! nil, `false` -> null in RESP2 scripts).

use crate::protocol::Reply;
use mlua::{Lua, Table, Value};

/// Lua's C stack limit (`LUAI_MAXCSTACK`): Redis converts a returned value on the Lua stack
/// and answers "reached lua stack limit" where the value nests deeper than it allows.
const LUA_STACK_SLOTS: usize = 8000;
/// Slots Redis's conversion holds before the value's first level, and asks for at each.
const BASE_SLOTS: usize = 2;
const CHECK_SLOTS: usize = 4;

/// Redis's error table (`luaPushErrorBuff`): `-CODE msg` keeps its code, a bare message gets
/// `ERR`, and trailing CR/LF go.
///
/// # Errors
/// Lua out of memory.
pub fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_text_of(text))?)?;
    Ok(t)
}

fn error_text_of(text: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let is_crlf = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = msg.iter().position(|b| !is_crlf(b)).unwrap_or(msg.len());
    let end = msg
        .iter()
        .rposition(|b| !is_crlf(b))
        .map_or(start, |e| e + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&msg[start..end.max(start)]);
    out
}

/// The message of an error mlua raised (a callback's or a syntax error), without mlua's
/// wrapping.
pub fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Parses one reply (as the executor wrote it) into the Lua value `redis.call` returns.
/// Returns the value and whether the reply was an error.
///
/// # Errors
/// Lua out of memory.
pub fn reply_to_lua(lua: &Lua, reply: &[u8]) -> mlua::Result<(Value, bool)> {
    let mut p = Parser { buf: reply, pos: 0 };
    let is_error = reply.first() == Some(&b'-');
    Ok((p.value(lua)?, is_error))
}

struct Parser<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Parser<'b> {
    fn line(&mut self) -> &'b [u8] {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        let end = memchr::memmem::find(rest, b"\r\n").unwrap_or(rest.len());
        self.pos += end + 2;
        &rest[..end]
    }

    fn number(&mut self) -> i64 {
        crate::protocol::parse_i64(self.line()).unwrap_or(0)
    }

    fn bytes(&mut self, len: usize) -> &'b [u8] {
        let start = self.pos.min(self.buf.len());
        let end = (start + len).min(self.buf.len());
        self.pos = end + 2;
        &self.buf[start..end]
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(Value::Nil);
        };
        self.pos += 1;
        Ok(match kind {
            b'+' => {
                let t = lua.create_table()?;
                t.raw_set("ok", lua.create_string(self.line())?)?;
                Value::Table(t)
            }
            b'-' => {
                let mut text = b"-".to_vec();
                text.extend_from_slice(self.line());
                let t = error_table(lua, &text)?;
                // The command already counted its error in the stats.
                t.raw_set("ignore_error_stats_update", true)?;
                Value::Table(t)
            }
            b':' => Value::Number(self.number() as f64),
            b'$' => match usize::try_from(self.number()) {
                Ok(len) => Value::String(lua.create_string(self.bytes(len))?),
                Err(_) => Value::Boolean(false),
            },
            b'*' | b'>' => match usize::try_from(self.number()) {
                Ok(len) => {
                    let t = lua.create_table_with_capacity(len, 0)?;
                    for i in 1..=len {
                        let v = self.value(lua)?;
                        t.raw_set(i, v)?;
                    }
                    Value::Table(t)
                }
                Err(_) => Value::Boolean(false),
            },
            b'%' => {
                let len = usize::try_from(self.number()).unwrap_or(0);
                let map = lua.create_table_with_capacity(0, len)?;
                for _ in 0..len {
                    let k = self.value(lua)?;
                    let v = self.value(lua)?;
                    if !k.is_nil() {
                        map.raw_set(k, v)?;
                    }
                }
                one_field(lua, "map", Value::Table(map))?
            }
            b'~' => {
                let len = usize::try_from(self.number()).unwrap_or(0);
                let set = lua.create_table_with_capacity(0, len)?;
                for _ in 0..len {
                    let k = self.value(lua)?;
                    if !k.is_nil() {
                        set.raw_set(k, true)?;
                    }
                }
                one_field(lua, "set", Value::Table(set))?
            }
            b'_' => {
                self.line();
                Value::Nil
            }
            b'#' => Value::Boolean(self.line() == b"t"),
            b',' => {
                let text = String::from_utf8_lossy(self.line()).to_ascii_lowercase();
                let d = match text.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    "nan" => f64::NAN,
                    t => t.parse().unwrap_or(0.0),
                };
                one_field(lua, "double", Value::Number(d))?
            }
            b'(' => {
                let s = lua.create_string(self.line())?;
                one_field(lua, "big_number", Value::String(s))?
            }
            b'=' => {
                let len = usize::try_from(self.number()).unwrap_or(0);
                let body = self.bytes(len);
                let (format, text) = body.split_at(body.len().min(4));
                let inner = lua.create_table()?;
                inner.raw_set("string", lua.create_string(text)?)?;
                inner.raw_set("format", lua.create_string(&format[..format.len().min(3)])?)?;
                one_field(lua, "verbatim_string", Value::Table(inner))?
            }
            b'|' => {
                // Attributes are not shown to scripts: skip them, keep the reply.
                let len = usize::try_from(self.number()).unwrap_or(0);
                for _ in 0..2 * len {
                    self.value(lua)?;
                }
                self.value(lua)?
            }
            _ => Value::Nil,
        })
    }
}

fn one_field(lua: &Lua, name: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(name, v)?;
    Ok(Value::Table(t))
}

/// Writes a script's return value as the caller's reply. `script_resp3` is the protocol the
/// script chose with `redis.setresp` (booleans are read by it). Nested tables are walked
/// with a work list, not recursion: a table may contain itself.
///
/// # Errors
/// Lua errors while reading the value's tables.
pub fn lua_to_reply(v: &Value, reply: &mut Reply<'_>, script_resp3: bool) -> mlua::Result<()> {
    // (value, Lua stack slots Redis would hold while converting it)
    let mut work = vec![(v.clone(), BASE_SLOTS)];
    while let Some((v, slots)) = work.pop() {
        if slots + CHECK_SLOTS > LUA_STACK_SLOTS {
            reply.error("ERR reached lua stack limit");
            continue;
        }
        match v {
            Value::String(s) => reply.bulk(&s.as_bytes()),
            Value::Boolean(b) => {
                if script_resp3 {
                    reply.boolean(b);
                } else if b {
                    reply.int(1);
                } else {
                    reply.null();
                }
            }
            Value::Integer(n) => reply.int(n),
            Value::Number(n) => reply.int(c_long_long(n)),
            Value::Table(t) => {
                let children = write_table(&t, reply)?;
                let per_level = if children.kind == Kind::Array { 1 } else { 3 };
                for child in children.items.into_iter().rev() {
                    work.push((child, slots + per_level));
                }
            }
            _ => reply.null(),
        }
    }
    Ok(())
}

/// C's `(long long)` of a double as the x86-64 conversion gives it: truncation, and the
/// "integer indefinite" value for NaN and out-of-range numbers.
fn c_long_long(n: f64) -> i64 {
    // 2^63 as a double: every double in [-2^63, 2^63) converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Leaf,
    Array,
    Aggregate,
}

/// The values a table's reply header announced, in reply order.
struct Children {
    kind: Kind,
    items: Vec<Value>,
}

/// Writes a table's reply (a leaf such as `{ok=}`, or the header of an aggregate) and returns
/// what goes under the header.
fn write_table(t: &Table, reply: &mut Reply<'_>) -> mlua::Result<Children> {
    let leaf = Children {
        kind: Kind::Leaf,
        items: Vec::new(),
    };
    if let Value::String(e) = t.raw_get::<Value>("err")? {
        reply.error(&String::from_utf8_lossy(&e.as_bytes()));
        return Ok(leaf);
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        let text = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        reply.simple(&text);
        return Ok(leaf);
    }
    match t.raw_get::<Value>("double")? {
        Value::Number(d) => {
            reply.double(d);
            return Ok(leaf);
        }
        Value::Integer(d) => {
            reply.double(d as f64);
            return Ok(leaf);
        }
        _ => {}
    }
    if let Value::String(s) = t.raw_get::<Value>("big_number")? {
        let text: Vec<u8> = s
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        reply.big_number(&text);
        return Ok(leaf);
    }
    if let Value::Table(vt) = t.raw_get::<Value>("verbatim_string")?
        && let Value::String(format) = vt.raw_get::<Value>("format")?
        && let Value::String(text) = vt.raw_get::<Value>("string")?
    {
        reply.verbatim_as(&format.as_bytes(), &text.as_bytes());
        return Ok(leaf);
    }
    if let Value::Table(map) = t.raw_get::<Value>("map")? {
        let mut items = Vec::new();
        for pair in map.pairs::<Value, Value>() {
            let (k, v) = pair?;
            items.push(k);
            items.push(v);
        }
        reply.map(items.len() / 2);
        return Ok(Children {
            kind: Kind::Aggregate,
            items,
        });
    }
    if let Value::Table(set) = t.raw_get::<Value>("set")? {
        let items: Vec<Value> = set
            .pairs::<Value, Value>()
            .map(|p| p.map(|(k, _)| k))
            .collect::<mlua::Result<_>>()?;
        reply.set(items.len());
        return Ok(Children {
            kind: Kind::Aggregate,
            items,
        });
    }
    let mut items = Vec::new();
    loop {
        let v: Value = t.raw_get(items.len() + 1)?;
        if v.is_nil() {
            break;
        }
        items.push(v);
    }
    reply.array(items.len());
    Ok(Children {
        kind: Kind::Array,
        items,
    })
}

/// Lua's `tostring` of a number (`%.14g`).
pub(super) fn number_text(n: f64) -> String {
    crate::protocol::format_g(n, 14)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;
    use proptest::prelude::*;

    #[test]
    fn error_text_keeps_or_adds_the_code() {
        assert_eq!(
            error_text_of(b"-WRONGTYPE bad kind\r\n"),
            b"WRONGTYPE bad kind"
        );
        assert_eq!(error_text_of(b"-NOSPACE"), b"ERR NOSPACE");
        assert_eq!(error_text_of(b"plain words"), b"ERR plain words");
    }

    fn round_trip(reply: &[u8], proto: Protocol, resp3_script: bool) -> Vec<u8> {
        let lua = Lua::new();
        let (v, _) = reply_to_lua(&lua, reply).expect("parse");
        let mut out = Vec::new();
        lua_to_reply(&v, &mut Reply::new(&mut out, proto), resp3_script).expect("write");
        out
    }

    #[test]
    fn replies_survive_the_trip_through_lua() {
        let p2 = Protocol::Resp2;
        let p3 = Protocol::Resp3;
        assert_eq!(round_trip(b"+OK\r\n", p2, false), b"+OK\r\n");
        assert_eq!(round_trip(b"-ERR x\r\n", p2, false), b"-ERR x\r\n");
        assert_eq!(round_trip(b":42\r\n", p2, false), b":42\r\n");
        assert_eq!(round_trip(b"$3\r\nabc\r\n", p2, false), b"$3\r\nabc\r\n");
        // A null bulk becomes false, which a RESP2 script returns as a null.
        assert_eq!(round_trip(b"$-1\r\n", p3, false), b"_\r\n");
        assert_eq!(round_trip(b"*-1\r\n", p2, false), b"$-1\r\n");
        // Arrays stop at the first nil (a RESP3 null inside).
        assert_eq!(
            round_trip(b"*3\r\n:1\r\n_\r\n:3\r\n", p2, true),
            b"*1\r\n:1\r\n"
        );
        assert_eq!(round_trip(b",1.5\r\n", p3, true), b",1.5\r\n");
        assert_eq!(round_trip(b",1.5\r\n", p2, true), b"$3\r\n1.5\r\n");
        assert_eq!(round_trip(b"#t\r\n", p3, true), b"#t\r\n");
        assert_eq!(round_trip(b"#f\r\n", p2, true), b":0\r\n");
        assert_eq!(
            round_trip(b"(12345678901234567890\r\n", p3, true),
            b"(12345678901234567890\r\n"
        );
        assert_eq!(
            round_trip(b"%1\r\n$1\r\na\r\n:1\r\n", p3, true),
            b"%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(
            round_trip(b"%1\r\n$1\r\na\r\n:1\r\n", p2, true),
            b"*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(
            round_trip(b"~1\r\n$1\r\na\r\n", p3, true),
            b"~1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            round_trip(b"=7\r\ntxt:abc\r\n", p3, true),
            b"=7\r\ntxt:abc\r\n"
        );
    }

    #[test]
    fn numbers_truncate_like_c() {
        assert_eq!(c_long_long(3.99), 3);
        assert_eq!(c_long_long(-3.99), -3);
        assert_eq!(c_long_long(f64::NAN), i64::MIN);
        assert_eq!(c_long_long(1e300), i64::MIN);
    }

    /// A reply of the kinds that pass through a RESP3 script unchanged.
    #[derive(Debug, Clone)]
    enum R {
        Int(i64),
        Bulk(Vec<u8>),
        Simple(String),
        Error(String),
        Double(f64),
        Bool(bool),
        Big(String),
        Verbatim(String),
        Array(Vec<R>),
        Map1(Vec<u8>, Box<R>),
        Set1(Vec<u8>),
    }

    fn write(r: &R, out: &mut Reply<'_>) {
        match r {
            R::Int(n) => out.int(*n),
            R::Bulk(b) => out.bulk(b),
            R::Simple(s) => out.simple(s),
            R::Error(e) => out.error(e),
            R::Double(d) => out.double(*d),
            R::Bool(b) => out.boolean(*b),
            R::Big(d) => out.big_number(d.as_bytes()),
            R::Verbatim(t) => out.verbatim(t.as_bytes()),
            R::Array(items) => {
                out.array(items.len());
                items.iter().for_each(|i| write(i, out));
            }
            R::Map1(k, v) => {
                out.map(1);
                out.bulk(k);
                write(v, out);
            }
            R::Set1(m) => {
                out.set(1);
                out.bulk(m);
            }
        }
    }

    fn reply_strategy() -> impl Strategy<Value = R> {
        let exact = -(1i64 << 53)..(1i64 << 53);
        let leaf = prop_oneof![
            exact.prop_map(R::Int),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(R::Bulk),
            "[a-zA-Z0-9 ]{0,12}".prop_map(R::Simple),
            "[A-Z]{1,8} [a-z0-9 ]{0,12}".prop_map(R::Error),
            any::<f64>()
                .prop_filter("finite", |d| d.is_finite())
                .prop_map(R::Double),
            any::<bool>().prop_map(R::Bool),
            "-?[1-9][0-9]{0,40}".prop_map(R::Big),
            "[a-z ]{0,12}".prop_map(R::Verbatim),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(R::Array),
                (proptest::collection::vec(any::<u8>(), 1..8), inner)
                    .prop_map(|(k, v)| R::Map1(k, Box::new(v))),
                proptest::collection::vec(any::<u8>(), 1..8).prop_map(R::Set1),
            ]
        })
    }

    proptest::proptest! {
        /// What a command replies reaches a RESP3 script and comes back from it byte for
        /// byte, as `return redis.call(...)` does in Redis after `redis.setresp(3)`.
        #[test]
        fn replies_pass_through_a_resp3_script_unchanged(r in reply_strategy()) {
            let mut bytes = Vec::new();
            write(&r, &mut Reply::new(&mut bytes, Protocol::Resp3));
            proptest::prop_assert_eq!(round_trip(&bytes, Protocol::Resp3, true), bytes);
        }
    }
}
