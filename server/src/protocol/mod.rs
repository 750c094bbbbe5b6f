//! RESP on the wire: requests in (multibulk and inline), replies out (RESP2 and RESP3).
//!
//! This module knows nothing about commands or the keyspace. The parser is incremental and
//! zero-copy: it records argument ranges inside the connection's input buffer and never
//! allocates ahead of the bytes that actually arrived, so a hostile length header costs nothing.

mod integer;
mod parser;
mod reply;

pub use integer::parse_i64;
pub use parser::{Args, ParseError, Parser, ProtoLimits, split_args};
pub use reply::{Protocol, Reply, format_double, format_g};
