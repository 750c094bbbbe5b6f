//! Redis 7.0's own description of its commands: what COMMAND DOCS answers, the tips, key
//! specs and subcommand rows of COMMAND INFO, and the key flags of COMMAND GETKEYSANDFLAGS.
//!
//! The description is data, not behaviour, so it is taken from the source of truth rather
//! than retyped: `server/data/redis-7.0-commands.json`, written by
//! `server/data/generate-command-docs.py` from a live Redis 7.0 (the replies with their RESP3
//! types). It is parsed on first use; commands tandem-server lacks are never shown because
//! every lookup starts from tandem's own command table.

use crate::protocol::{Args, Reply};
use hashbrown::HashMap;
use serde_json::Value;
use std::sync::LazyLock;

/// A reply as Redis wrote it, to be written back in the client's protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Bulk(String),
    Simple(String),
    Int(i64),
    Null,
    Array(Vec<Node>),
    Set(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn from_json(v: &Value) -> Node {
        match v {
            Value::String(s) => Node::Bulk(s.clone()),
            Value::Number(n) => Node::Int(n.as_i64().unwrap_or_default()),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_json).collect()),
            Value::Object(o) => {
                if let Some(Value::String(s)) = o.get("simple") {
                    Node::Simple(s.clone())
                } else if let Some(Value::Array(items)) = o.get("set") {
                    Node::Set(items.iter().map(Node::from_json).collect())
                } else if let Some(Value::Array(pairs)) = o.get("map") {
                    Node::Map(
                        pairs
                            .iter()
                            .filter_map(|p| match p.as_array().map(Vec::as_slice) {
                                Some([k, v]) => Some((Node::from_json(k), Node::from_json(v))),
                                _ => None,
                            })
                            .collect(),
                    )
                } else {
                    Node::Null
                }
            }
            Value::Null | Value::Bool(_) => Node::Null,
        }
    }

    pub fn write(&self, r: &mut Reply<'_>) {
        match self {
            Node::Bulk(s) => r.bulk(s.as_bytes()),
            Node::Simple(s) => r.simple(s),
            Node::Int(i) => r.int(*i),
            Node::Null => r.null(),
            Node::Array(items) => {
                r.array(items.len());
                items.iter().for_each(|i| i.write(r));
            }
            Node::Set(items) => {
                r.set(items.len());
                items.iter().for_each(|i| i.write(r));
            }
            Node::Map(pairs) => {
                r.map(pairs.len());
                for (k, v) in pairs {
                    k.write(r);
                    v.write(r);
                }
            }
        }
    }

    /// The value of `key` in a map.
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Node::Bulk(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Node::Bulk(s) | Node::Simple(s) => Some(s),
            _ => None,
        }
    }

    fn items(&self) -> &[Node] {
        match self {
            Node::Array(items) | Node::Set(items) => items,
            _ => &[],
        }
    }
}

/// What the file says of one command or subcommand (`config|get`).
#[derive(Debug, Default)]
pub struct Described {
    /// COMMAND DOCS's entry (commands only; a container's includes its subcommands).
    pub docs: Option<Node>,
    pub tips: Option<Node>,
    pub key_specs: Option<Node>,
    /// A container's subcommand rows, as COMMAND INFO lists them.
    pub subcommands: Option<Node>,
    /// A subcommand's own COMMAND INFO row.
    pub info: Option<Node>,
}

static COMMANDS: LazyLock<HashMap<String, Described>> = LazyLock::new(|| {
    let text = include_str!("../../data/redis-7.0-commands.json");
    let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut out = HashMap::new();
    if let Some(Value::Object(commands)) = json.get("commands") {
        for (name, c) in commands {
            let field = |k: &str| c.get(k).map(Node::from_json);
            out.insert(
                name.clone(),
                Described {
                    docs: field("docs"),
                    tips: field("tips"),
                    key_specs: field("key_specs"),
                    subcommands: field("subcommands"),
                    info: field("info"),
                },
            );
        }
    }
    out
});

/// Redis's description of `name` (a command, or `container|sub`).
pub fn described(name: &str) -> Option<&'static Described> {
    COMMANDS.get(name)
}

/// COMMAND DOCS's entry for a subcommand (`config|get`): inside its container's.
pub fn subcommand_docs(full: &str) -> Option<&'static Node> {
    let (container, _) = full.split_once('|')?;
    let docs = described(container)?.docs.as_ref()?;
    match docs.get("subcommands")? {
        Node::Map(subs) => subs
            .iter()
            .find(|(n, _)| matches!(n, Node::Bulk(n) if n == full))
            .map(|(_, d)| d),
        _ => None,
    }
}

/// The flags of each key of a command call, by argument index, as COMMAND GETKEYSANDFLAGS
/// reports them: from the key specs (Redis's `getKeysUsingKeySpecs`), or, for the commands
/// whose flags depend on their arguments or whose specs are incomplete, by Redis's rules for
/// them. `keys` are the key positions the command table finds (COMMAND GETKEYS).
pub fn key_flags(spec: &super::Spec, args: Args<'_>, keys: &[usize]) -> Vec<(usize, Node)> {
    // A container's key specs are its subcommands'.
    let full = (args.len() > 1)
        .then(|| {
            let sub = args.get(1);
            spec.subcommands
                .iter()
                .find(|(n, _, _)| n.as_bytes().eq_ignore_ascii_case(sub))
                .map(|(_, full, _)| *full)
        })
        .flatten();
    let name = full.unwrap_or(spec.name);
    let flags =
        |names: &[&str]| Node::Set(names.iter().map(|n| Node::Simple((*n).into())).collect());
    let has = |word: &str, from: usize| {
        args.iter()
            .skip(from)
            .any(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    match name {
        "set" => {
            let f = if has("get", 3) {
                flags(&["RW", "access", "update"])
            } else {
                flags(&["OW", "update"])
            };
            return keys.iter().map(|&i| (i, f.clone())).collect();
        }
        "bitfield" => {
            let f = if bitfield_reads_only(args) {
                flags(&["RO", "access"])
            } else {
                flags(&["RW", "access", "update"])
            };
            return keys.iter().map(|&i| (i, f.clone())).collect();
        }
        "migrate" => {
            let f = flags(&["RW", "access", "delete"]);
            return keys.iter().map(|&i| (i, f.clone())).collect();
        }
        "sort" | "sort_ro" => {
            return keys
                .iter()
                .map(|&i| {
                    let f = if i == 1 {
                        flags(&["RO", "access"])
                    } else {
                        flags(&["OW", "update"])
                    };
                    (i, f)
                })
                .collect();
        }
        _ => {}
    }
    let found = spec_keys(name, args);
    keys.iter()
        .map(|&i| {
            let f = found
                .iter()
                .find(|(j, _)| *j == i)
                .map_or_else(|| Node::Set(Vec::new()), |(_, f)| f.clone());
            (i, f)
        })
        .collect()
}

/// BITFIELD only reads when every operation is a GET (Redis's `bitfieldGetKeys`).
fn bitfield_reads_only(args: Args<'_>) -> bool {
    let mut i = 2;
    while i < args.len() {
        let rest = args.len() - i - 1;
        let a = args.get(i);
        if a.eq_ignore_ascii_case(b"get") && rest >= 2 {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"overflow") && rest >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// Every key the specs of `name` find in `args`, with the spec's flags; specs that do not
/// apply to these arguments are skipped.
fn spec_keys(name: &str, args: Args<'_>) -> Vec<(usize, Node)> {
    let Some(specs) = described(name).and_then(|d| d.key_specs.as_ref()) else {
        return Vec::new();
    };
    let argc = args.len() as i64;
    let mut out = Vec::new();
    for spec in specs.items() {
        let (Some(flags), Some(begin), Some(find)) = (
            spec.get("flags"),
            spec.get("begin_search"),
            spec.get("find_keys"),
        ) else {
            continue;
        };
        let bs = begin.get("spec");
        let first = match begin.get("type").and_then(Node::text) {
            Some("index") => bs.and_then(|s| s.get("index")).and_then(Node::int),
            Some("keyword") => {
                let word = bs.and_then(|s| s.get("keyword")).and_then(Node::text);
                let from = bs.and_then(|s| s.get("startfrom")).and_then(Node::int);
                word.zip(from)
                    .and_then(|(w, from)| keyword_at(args, w, from))
            }
            _ => None,
        };
        let Some(first) = first else {
            continue;
        };
        let fs = find.get("spec");
        let get = |k: &str| fs.and_then(|s| s.get(k)).and_then(Node::int);
        let (first, last, step) = match find.get("type").and_then(Node::text) {
            Some("range") => {
                let (Some(lastkey), Some(step), Some(limit)) =
                    (get("lastkey"), get("keystep"), get("limit"))
                else {
                    continue;
                };
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, step)
            }
            Some("keynum") => {
                let (Some(idx), Some(firstkey), Some(step)) =
                    (get("keynumidx"), get("firstkey"), get("keystep"))
                else {
                    continue;
                };
                let Some(n) = usize::try_from(first + idx)
                    .ok()
                    .filter(|&p| p < args.len())
                    .and_then(|p| crate::protocol::parse_i64(args.get(p)))
                    .filter(|n| *n >= 0)
                else {
                    continue;
                };
                (first + firstkey, first + firstkey + n - 1, step)
            }
            _ => continue,
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            continue;
        }
        let mut i = first;
        while i <= last {
            out.push((i as usize, flags.clone()));
            i += step;
        }
    }
    out
}

/// The index after `word`, searched from `from` (forwards when positive, backwards from the
/// end when negative), as a keyword begin-search does.
fn keyword_at(args: Args<'_>, word: &str, from: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let start = if from > 0 { from } else { argc + from };
    let end = if from > 0 { argc - 1 } else { 1 };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if args.get(i as usize).eq_ignore_ascii_case(word.as_bytes()) {
            return Some(i + 1);
        }
        i += if start <= end { 1 } else { -1 };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    #[test]
    fn the_file_describes_the_commands() {
        let get = described("get").and_then(|d| d.docs.as_ref()).expect("GET");
        assert_eq!(
            get.get("summary").and_then(Node::text),
            Some("Get the value of a key")
        );
        assert!(described("config|get").is_some());
        let mut out = Vec::new();
        Node::Map(vec![(
            Node::Bulk("a".into()),
            Node::Set(vec![Node::Int(1)]),
        )])
        .write(&mut Reply::new(&mut out, Protocol::Resp2));
        assert_eq!(out, b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n");
    }
}
