//! What a command asks of ACL: the command's id, the keys it names with the access each
//! needs (from the key positions COMMAND GETKEYS finds and Redis 7.0's key specifications),
//! and the channels it publishes or subscribes to.

use crate::acl::key_access::{self, R, RW, W};
use crate::acl::selector::Request;
use crate::acl::universe::UNIVERSE;
use crate::cmd::{Spec, eq, flags, getkeys};
use crate::protocol::Args;
use hashbrown::HashMap;
use std::sync::LazyLock;

static KEY_ACCESS: LazyLock<HashMap<&'static str, (u8, u8)>> = LazyLock::new(|| {
    key_access::TABLE
        .iter()
        .map(|&(n, first, rest)| (n, (first, rest)))
        .collect()
});

/// The request of `args` (a known command, its subcommand and arity already checked).
pub fn of<'a>(spec: &Spec, args: Args<'a>) -> Option<Request<'a>> {
    let sub = (args.len() >= 2).then(|| args.get(1));
    let id = UNIVERSE.id_of(spec.name, sub)?;
    let mut keys = Vec::new();
    let mut key_access = (RW, RW);
    if getkeys::has_keys(spec)
        && let Ok(positions) = getkeys::key_indices(spec, args)
    {
        let (first, rest) = KEY_ACCESS
            .get(UNIVERSE.commands[id].full)
            .copied()
            .unwrap_or((RW, RW));
        let first = match spec.name {
            "set" if (3..args.len()).any(|i| eq(args.get(i), "get")) => RW,
            "set" => W,
            "bitfield" if bitfield_reads_only(args) => R,
            _ => first,
        };
        keys = positions;
        key_access = (first, rest);
    }
    let channels = match spec.name {
        "publish" | "spublish" => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..args.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    };
    Some(Request {
        id,
        no_auth: spec.is(flags::NO_AUTH),
        args,
        keys,
        key_access,
        channels,
    })
}

/// Redis's `bitfieldGetKeys`: only GET and OVERFLOW operations make BITFIELD a read.
fn bitfield_reads_only(args: Args<'_>) -> bool {
    let mut i = 2;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        if eq(args.get(i), "get") && remaining >= 2 {
            i += 3;
        } else if eq(args.get(i), "overflow") && remaining >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}
