//! Commands: the table (name, arity, flags, key positions), dispatch, and the execution
//! context handlers receive.
//!
//! One file per command family. A handler validates its arguments, reads or changes the
//! keyspace through [`Ctx`], and writes its reply; it never touches sockets. The WRITE flag
//! decides what is propagated to replicas: after a write that changed something, the
//! dispatcher feeds the command (or the rewrite the handler asked for) to the replication
//! stream, in execution order.

mod args;
mod bitmap;
mod connection;
mod ctx;
mod docs;
mod dump;
mod functions;
mod geo;
mod getkeys;
mod hashes;
mod hyperloglog;
mod keys;
mod latency;
mod lists;
mod lolwut;
mod memory;
mod migrate;
pub mod names;
mod persistence;
mod pubsub;
mod replication;
mod scripting;
mod server;
mod sets;
mod sort;
mod streams;
mod strings;
mod tracking;
mod zset;

pub use ctx::{Ctx, Propagate, ScriptCall};
pub use pubsub::publish_events;
pub use server::{MonitorSource, feed_monitors};
pub use tracking::{deliver_invalidations, remember_reads};

use crate::protocol::Args;
use hashbrown::HashMap;
use std::sync::LazyLock;

/// What went wrong in a command: the dispatcher turns it into the error reply Redis sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// A complete error line with its code, e.g. `ERR syntax error`.
    Msg(String),
    WrongType,
    Syntax,
    NotInteger,
    NotFloat,
    NoSuchKey,
    OutOfRange,
    Overflow,
    DbIndex,
    /// Writes refused because memory is full under `noeviction`.
    Oom,
}

impl CmdError {
    pub fn msg(m: impl Into<String>) -> Self {
        CmdError::Msg(m.into())
    }

    /// The error line, code included.
    pub fn text(&self) -> &str {
        match self {
            CmdError::Msg(m) => m,
            CmdError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            }
            CmdError::Syntax => "ERR syntax error",
            CmdError::NotInteger => "ERR value is not an integer or out of range",
            CmdError::NotFloat => "ERR value is not a valid float",
            CmdError::NoSuchKey => "ERR no such key",
            CmdError::OutOfRange => "ERR index out of range",
            CmdError::Overflow => "ERR increment or decrement would overflow",
            CmdError::DbIndex => "ERR DB index is out of range",
            CmdError::Oom => "OOM command not allowed when used memory > 'maxmemory'.",
        }
    }
}

pub type CmdResult = Result<(), CmdError>;
pub type Handler = fn(&mut Ctx<'_>, Args<'_>) -> CmdResult;

/// Command flags, as COMMAND INFO reports them.
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory: refused with OOM when over `maxmemory` under `noeviction`.
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 9;
    pub const FAST: u32 = 1 << 10;
    /// Not queued inside MULTI: runs at once (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const NO_MULTI_QUEUE: u32 = 1 << 11;
    /// Allowed in RESP2 subscribed mode.
    pub const SUBSCRIBED_OK: u32 = 1 << 12;
    /// Not a write, but may add to the replication stream (PUBLISH, SPUBLISH): held by
    /// CLIENT PAUSE WRITE like writes. Redis 7.0's COMMAND INFO does not list it. It does
    /// not make the executor propagate anything: such a handler feeds the stream itself.
    pub const MAY_REPLICATE: u32 = 1 << 13;
    /// Served while a script runs past `busy-reply-threshold` (the others get BUSY).
    pub const ALLOW_BUSY: u32 = 1 << 14;
    /// Refused inside MULTI (SAVE, SYNC, PSYNC, SHUTDOWN).
    pub const NO_MULTI: u32 = 1 << 15;
    /// Refused with LOADING while a replica loads its master's data beside the old one.
    pub const NO_ASYNC_LOADING: u32 = 1 << 16;
    /// Not logged itself (EXEC: the commands it runs are).
    pub const SKIP_SLOWLOG: u32 = 1 << 17;
    /// Not shown to MONITOR (scripts: the commands they run are).
    pub const SKIP_MONITOR: u32 = 1 << 18;
    /// May be called with no key although it takes keys (EVAL with numkeys 0).
    pub const NO_MANDATORY_KEYS: u32 = 1 << 19;
    /// Keys that first/last/step cannot describe (a numkeys argument): COMMAND GETKEYS
    /// finds them.
    pub const MOVABLEKEYS: u32 = 1 << 20;
    /// COMMAND INFO's names, in Redis 7.0's order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// One command of the table.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Redis's arity: positive = exact argument count (name included), negative = at least.
    pub arity: i32,
    pub flags: u32,
    /// Key positions: first, last (negative counts from the end), step; 0 0 0 for none.
    pub keys: (i32, i32, i32),
    pub group: &'static str,
    pub handler: Handler,
    /// A container command's subcommands: name, full name (`config|get`, the name Redis
    /// reports in errors and INFO commandstats) and arity (name included, as Redis counts
    /// them). Redis 7 checks these before the handler runs, with its own error texts.
    pub subcommands: &'static [(&'static str, &'static str, i32)],
}

impl Spec {
    pub fn is(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Indices of the key arguments in `argc` arguments.
    pub fn key_indices(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, last, step) = self.keys;
        let argc = argc as i32;
        let last = if last < 0 {
            argc + last
        } else {
            last.min(argc - 1)
        };
        let (first, step) = if first <= 0 || step <= 0 {
            (1, 1)
        } else {
            (first, step)
        };
        let end = if self.keys.0 <= 0 { 0 } else { last + 1 };
        (first..end).step_by(step as usize).map(|i| i as usize)
    }
}

/// Builds a table entry; keeps the family tables one line per command.
pub const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    handler: Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        group,
        handler,
        subcommands: &[],
    }
}

/// A container command (OBJECT, CONFIG, CLIENT, COMMAND): `subcommands` lists each
/// subcommand and its arity.
pub const fn container(
    name: &'static str,
    arity: i32,
    flags: u32,
    group: &'static str,
    handler: Handler,
    subcommands: &'static [(&'static str, &'static str, i32)],
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys: (0, 0, 0),
        group,
        handler,
        subcommands,
    }
}

/// The subcommand entry of a container command's arguments, if it names a known one.
fn find_subcommand(
    spec: &Spec,
    args: Args<'_>,
) -> Option<&'static (&'static str, &'static str, i32)> {
    if args.len() < 2 {
        return None;
    }
    let sub = args.get(1);
    spec.subcommands.iter().find(|(n, _, _)| eq(sub, n))
}

/// The name INFO commandstats counts a call under: `config|get` for a subcommand; `None`
/// for an unknown subcommand, which Redis does not count at all.
pub fn stat_name(spec: &'static Spec, args: Args<'_>) -> Option<&'static str> {
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Some(spec.name);
    }
    find_subcommand(spec, args).map(|(_, full, _)| *full)
}

/// Redis 7's refusal of a container command's subcommand: unknown, or the wrong number of
/// arguments for it (reported under the `container|sub` name).
pub fn subcommand_error(spec: &Spec, args: Args<'_>) -> Option<String> {
    if spec.subcommands.is_empty() || args.len() < 2 {
        return None;
    }
    let Some((_, full, arity)) = find_subcommand(spec, args) else {
        let sub = args.get(1);
        return Some(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)]),
            String::from_utf8_lossy(args.get(0)).to_ascii_uppercase()
        ));
    };
    let argc = args.len() as i32;
    let ok = if *arity >= 0 {
        argc == *arity
    } else {
        argc >= -arity
    };
    (!ok).then(|| format!("ERR wrong number of arguments for '{full}' command"))
}

/// Every command, by lowercase name.
pub static TABLE: LazyLock<HashMap<&'static [u8], &'static Spec>> = LazyLock::new(|| {
    let families: &[&'static [Spec]] = &[
        strings::COMMANDS,
        bitmap::COMMANDS,
        keys::COMMANDS,
        lists::COMMANDS,
        connection::COMMANDS,
        server::COMMANDS,
        latency::COMMANDS,
        lolwut::COMMANDS,
        memory::COMMANDS,
        migrate::COMMANDS,
        persistence::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        replication::COMMANDS,
        pubsub::COMMANDS,
        zset::COMMANDS,
        geo::COMMANDS,
        sort::COMMANDS,
        scripting::COMMANDS,
        functions::COMMANDS,
        hyperloglog::COMMANDS,
        dump::COMMANDS,
        streams::COMMANDS,
    ];
    families
        .iter()
        .flat_map(|f| f.iter())
        .map(|s| (s.name.as_bytes(), s))
        .collect()
});

/// Finds a command by name, case-insensitively, without allocating for short names.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    TABLE.get(&*lower).copied()
}

/// Parses an integer argument (`ERR value is not an integer or out of range` otherwise).
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    crate::protocol::parse_i64(a).ok_or(CmdError::NotInteger)
}

/// Parses a float argument the way Redis's `getDoubleFromObject` does (`inf`, `-inf`, no NaN,
/// no surrounding spaces).
pub fn float_arg(a: &[u8]) -> Result<f64, CmdError> {
    parse_f64(a).ok_or(CmdError::NotFloat)
}

/// Float parsing with Redis's rules: strtod syntax, no leading/trailing space, no NaN.
pub fn parse_f64(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("nan") || l.contains("inf") => return None,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// A container's HELP reply: its lines as status replies.
pub fn help(ctx: &mut Ctx<'_>, lines: &[&str]) {
    ctx.reply.array(lines.len());
    for l in lines {
        ctx.reply.simple(l);
    }
}

/// Case-insensitive comparison of an argument with an option name.
pub fn eq(a: &[u8], opt: &str) -> bool {
    a.eq_ignore_ascii_case(opt.as_bytes())
}

/// `ERR wrong number of arguments for '<name>' command`.
pub fn arity_error(name: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (name, spec) in TABLE.iter() {
            assert_eq!(*name, spec.name.as_bytes());
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0, "{}", spec.name);
            assert!(
                !(spec.is(flags::WRITE) && spec.is(flags::READONLY)),
                "{} is both write and readonly",
                spec.name
            );
        }
    }

    #[test]
    fn subcommand_full_names_match_their_container() {
        for spec in TABLE.values() {
            for (name, full, _) in spec.subcommands {
                assert_eq!(*full, format!("{}|{name}", spec.name));
            }
        }
    }

    #[test]
    fn key_positions() {
        let mset = lookup(b"MSET").expect("mset");
        assert_eq!(mset.key_indices(5).collect::<Vec<_>>(), vec![1, 3]);
        let get = lookup(b"get").expect("get");
        assert_eq!(get.key_indices(2).collect::<Vec<_>>(), vec![1]);
        let ping = lookup(b"ping").expect("ping");
        assert_eq!(ping.key_indices(2).count(), 0);
    }

    #[test]
    fn floats_follow_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"abc", b"1.5x"] {
            assert_eq!(parse_f64(bad), None);
        }
    }
}
