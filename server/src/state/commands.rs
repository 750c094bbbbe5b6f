//! The names commands answer to once `rename-command` renamed or removed some, as plain data
//! (the command table's own names): resolved against the table at start-up by
//! `crate::cmd::names`, which also applies it to every lookup. Kept in the state so a layer
//! that names it does not import the command table.

use hashbrown::{HashMap, HashSet};

/// The renames in force; empty when none is configured.
#[derive(Debug, Clone, Default)]
pub struct CommandNames {
    /// New name (lowercase) -> the table name of the command it now calls.
    pub added: HashMap<Vec<u8>, &'static str>,
    /// Table names that no longer call their command under that name.
    pub removed: HashSet<&'static str>,
}
