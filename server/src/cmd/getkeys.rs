//! Where a command's keys are when first/last/step cannot say (Redis's `movablekeys`
//! commands and the subcommands of containers): COMMAND GETKEYS answers from here, as
//! Redis 7.0 answers from its key specs.

use super::{Spec, eq};
use crate::protocol::Args;

/// How to find the keys a spec's fixed positions do not describe.
enum Movable {
    /// A count at this index, the keys after it (`EVAL script numkeys key...`); `dest`: the
    /// argument 1 is a key too (`ZUNIONSTORE dest numkeys key...`).
    NumKeys { at: usize, dest: bool },
    /// The fixed keys, then for each of these words in turn the argument after its last
    /// occurrence (`STORE dest`).
    AfterWord(&'static [&'static str]),
    /// SORT: BY/GET patterns and LIMIT's numbers are skipped while looking for STORE.
    Sort,
    /// After `STREAMS`, the first half of the remaining arguments.
    Streams,
    /// A container's subcommand with its key as argument 2 (`OBJECT ENCODING key`).
    Subcommand(&'static [&'static str]),
    /// MIGRATE: argument 3, or with KEYS (argument 3 empty) every argument after it; AUTH's
    /// and AUTH2's values are skipped while looking for KEYS.
    Migrate,
}

const MOVABLE: &[(&str, Movable)] = &[
    ("eval", Movable::NumKeys { at: 2, dest: false }),
    ("evalsha", Movable::NumKeys { at: 2, dest: false }),
    ("eval_ro", Movable::NumKeys { at: 2, dest: false }),
    ("evalsha_ro", Movable::NumKeys { at: 2, dest: false }),
    ("fcall", Movable::NumKeys { at: 2, dest: false }),
    ("fcall_ro", Movable::NumKeys { at: 2, dest: false }),
    ("zunion", Movable::NumKeys { at: 1, dest: false }),
    ("zinter", Movable::NumKeys { at: 1, dest: false }),
    ("zdiff", Movable::NumKeys { at: 1, dest: false }),
    ("zintercard", Movable::NumKeys { at: 1, dest: false }),
    ("sintercard", Movable::NumKeys { at: 1, dest: false }),
    ("lmpop", Movable::NumKeys { at: 1, dest: false }),
    ("zmpop", Movable::NumKeys { at: 1, dest: false }),
    ("blmpop", Movable::NumKeys { at: 2, dest: false }),
    ("bzmpop", Movable::NumKeys { at: 2, dest: false }),
    ("zunionstore", Movable::NumKeys { at: 2, dest: true }),
    ("zinterstore", Movable::NumKeys { at: 2, dest: true }),
    ("zdiffstore", Movable::NumKeys { at: 2, dest: true }),
    ("georadius", Movable::AfterWord(&["store", "storedist"])),
    (
        "georadiusbymember",
        Movable::AfterWord(&["store", "storedist"]),
    ),
    ("sort", Movable::Sort),
    ("migrate", Movable::Migrate),
    ("sort_ro", Movable::Sort),
    ("xread", Movable::Streams),
    ("xreadgroup", Movable::Streams),
    (
        "object",
        Movable::Subcommand(&["encoding", "freq", "idletime", "refcount"]),
    ),
    ("memory", Movable::Subcommand(&["usage"])),
    (
        "xinfo",
        Movable::Subcommand(&["consumers", "groups", "stream"]),
    ),
    (
        "xgroup",
        Movable::Subcommand(&[
            "create",
            "createconsumer",
            "delconsumer",
            "destroy",
            "setid",
        ]),
    ),
];

/// Why COMMAND GETKEYS finds no keys, in Redis's words.
#[derive(Debug, PartialEq, Eq)]
pub enum NoKeys {
    /// The command never takes keys.
    NoKeyArguments,
    /// These arguments name none (a bad count, a missing STREAMS).
    InvalidArguments,
    /// Keys may be absent (EVAL with no keys): an empty answer.
    Empty,
}

/// Whether the command can take keys at all (Redis's `doesCommandHaveKeys`).
pub fn has_keys(spec: &Spec) -> bool {
    spec.keys.0 > 0 || MOVABLE.iter().any(|(n, _)| *n == spec.name)
}

/// The indices of `cmd`'s keys (`cmd` starts with the command name).
pub fn key_indices(spec: &Spec, cmd: Args<'_>) -> Result<Vec<usize>, NoKeys> {
    let fixed: Vec<usize> = spec.key_indices(cmd.len()).collect();
    let Some((_, movable)) = MOVABLE.iter().find(|(n, _)| *n == spec.name) else {
        return if fixed.is_empty() {
            Err(NoKeys::NoKeyArguments)
        } else {
            Ok(fixed)
        };
    };
    let keys = match movable {
        Movable::NumKeys { at, dest } => {
            let count = super::int_arg(cmd.get(*at))
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n < cmd.len() - at);
            match count {
                Some(n) if n > 0 || spec.is(super::flags::NO_MANDATORY_KEYS) => {
                    let mut keys: Vec<usize> = if *dest { vec![1] } else { Vec::new() };
                    keys.extend(at + 1..at + 1 + n);
                    keys
                }
                _ if spec.is(super::flags::NO_MANDATORY_KEYS) => return Err(NoKeys::Empty),
                _ => return Err(NoKeys::InvalidArguments),
            }
        }
        Movable::AfterWord(words) => {
            let mut keys = fixed;
            for w in *words {
                let last = (1..cmd.len().saturating_sub(1))
                    .rev()
                    .find(|&i| eq(cmd.get(i), w));
                keys.extend(last.map(|i| i + 1));
            }
            keys
        }
        Movable::Sort => {
            let mut store = None;
            let mut i = 2;
            while i < cmd.len() {
                let a = cmd.get(i);
                let skip = if eq(a, "limit") {
                    2
                } else if eq(a, "get") || eq(a, "by") {
                    1
                } else if eq(a, "store") && i + 1 < cmd.len() {
                    store = Some(i + 1);
                    1
                } else {
                    0
                };
                i += skip + 1;
            }
            let mut keys = vec![1];
            keys.extend(store);
            keys
        }
        Movable::Streams => {
            let Some(at) = (1..cmd.len()).find(|&i| eq(cmd.get(i), "streams")) else {
                return Err(NoKeys::InvalidArguments);
            };
            let rest = cmd.len() - at - 1;
            if rest == 0 || !rest.is_multiple_of(2) {
                return Err(NoKeys::InvalidArguments);
            }
            (at + 1..at + 1 + rest / 2).collect()
        }
        Movable::Subcommand(subs) => {
            if cmd.len() < 3 || !subs.iter().any(|s| eq(cmd.get(1), s)) {
                return Err(NoKeys::NoKeyArguments);
            }
            vec![2]
        }
        Movable::Migrate => {
            let mut i = 6;
            let mut keys = vec![3];
            while i < cmd.len() {
                let a = cmd.get(i);
                if eq(a, "keys") {
                    // A key argument besides KEYS is MIGRATE's own syntax error.
                    keys = if cmd.get(3).is_empty() {
                        (i + 1..cmd.len()).collect()
                    } else {
                        Vec::new()
                    };
                    break;
                }
                i += if eq(a, "auth") {
                    2
                } else if eq(a, "auth2") {
                    3
                } else {
                    1
                };
            }
            if keys.is_empty() {
                return Err(NoKeys::InvalidArguments);
            }
            keys
        }
    };
    Ok(keys)
}
