//! The value types a key can hold, with the names TYPE and OBJECT ENCODING report.

use super::list::List;
use super::zset::ZSet;
use super::{Hash, Set, SmallBytes};

/// A key's value. Aggregate types are boxed so the enum stays 24 bytes: most keys are strings.
#[derive(Debug, Clone)]
pub enum Value {
    Str(SmallBytes),
    Hash(Box<Hash>),
    Set(Box<Set>),
    List(Box<List>),
    Zset(Box<ZSet>),
}

impl Value {
    /// The name TYPE prints and SCAN's TYPE option matches.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::Zset(_) => "zset",
        }
    }

    /// Heap bytes the value holds beyond the entry (MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Hash(h) => std::mem::size_of::<Hash>() + h.heap_size(),
            Value::Set(s) => std::mem::size_of::<Set>() + s.heap_size(),
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::Zset(z) => std::mem::size_of::<ZSet>() + z.heap_size(),
        }
    }

    /// The name OBJECT ENCODING prints, following Redis 7.0's rules for the same content.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => string_encoding(s),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            // Redis 7.0 converts every list to a quicklist, however small.
            Value::List(_) => "quicklist",
            Value::Zset(z) => z.encoding(),
        }
    }
}

/// Redis stores canonical integers as `int` (unless the command skipped that encoding),
/// strings up to 44 bytes as `embstr`, longer ones and strings edited in place as `raw`.
fn string_encoding(s: &SmallBytes) -> &'static str {
    if s.is_raw() {
        "raw"
    } else if !s.is_verbatim() && s.len() <= 20 && crate::protocol::parse_i64(s).is_some() {
        "int"
    } else if s.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}
