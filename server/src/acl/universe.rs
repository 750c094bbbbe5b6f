//! The commands ACL rules can name: every command and subcommand of the command table, each
//! with an id (its bit in a selector's command set), its categories and its family. Built
//! once from the table, by original name, so `rename-command` does not change what a rule
//! means (as Redis bases ACLs on its original command table).

use crate::acl::categories;
use crate::cmd::TABLE;
use hashbrown::HashMap;
use std::sync::LazyLock;

/// Words in a command set: room for 512 commands and subcommands.
pub const WORDS: usize = 8;

/// A set of command ids.
pub type CommandBits = [u64; WORDS];

/// One command or subcommand.
#[derive(Debug)]
pub struct Command {
    /// `get`, or `config|get` for a subcommand.
    pub full: &'static str,
    pub categories: u32,
    /// The container of a subcommand.
    pub parent: Option<usize>,
    /// A container's subcommands.
    pub subs: Vec<usize>,
}

/// Every command by id; ids follow the full names' order, so descriptions that walk the
/// commands are stable from run to run.
#[derive(Debug)]
pub struct Universe {
    pub commands: Vec<Command>,
    by_name: HashMap<&'static str, usize>,
}

pub static UNIVERSE: LazyLock<Universe> = LazyLock::new(|| {
    let cats: HashMap<&str, u32> = categories::TABLE.iter().copied().collect();
    let mut names: Vec<(&'static str, Option<&'static str>)> = TABLE
        .values()
        .flat_map(|s| {
            std::iter::once((s.name, None)).chain(
                s.subcommands
                    .iter()
                    .map(|(_, full, _)| (*full, Some(s.name))),
            )
        })
        .collect();
    names.sort_unstable();
    assert!(
        names.len() < WORDS * 64,
        "the command set outgrew CommandBits"
    );
    let by_name: HashMap<&'static str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    let mut commands: Vec<Command> = names
        .iter()
        .map(|(full, parent)| Command {
            full,
            categories: cats.get(full).copied().unwrap_or(0),
            parent: parent.map(|p| by_name[p]),
            subs: Vec::new(),
        })
        .collect();
    for i in 0..commands.len() {
        if let Some(p) = commands[i].parent {
            commands[p].subs.push(i);
        }
    }
    Universe { commands, by_name }
});

impl Universe {
    /// The id of a command named as ACL rules name it (`get`, `config|get`), any case; a
    /// `|` on a command without subcommands names nothing.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let lower = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(lower.as_str()).copied()
    }

    /// The id of a command by its table name (and subcommand, for a container).
    pub fn id_of(&self, name: &str, sub: Option<&[u8]>) -> Option<usize> {
        let id = *self.by_name.get(name)?;
        match sub {
            Some(sub) if !self.commands[id].subs.is_empty() => {
                let sub = std::str::from_utf8(sub).ok()?.to_ascii_lowercase();
                self.by_name.get(format!("{name}|{sub}").as_str()).copied()
            }
            _ => Some(id),
        }
    }
}

/// A category's bit by name (`string`, any case).
pub fn category(name: &[u8]) -> Option<u32> {
    categories::NAMES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// A command's categories as COMMAND INFO shows them (`@write`, `@string`), in Redis's order.
pub fn category_names(bits: u32) -> impl Iterator<Item = &'static str> {
    categories::NAMES
        .iter()
        .enumerate()
        .filter(move |(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
}

/// The categories of a command by full name (0 for one Redis does not have).
pub fn categories_of(full: &str) -> u32 {
    UNIVERSE
        .by_name
        .get(full)
        .map_or(0, |&id| UNIVERSE.commands[id].categories)
}
