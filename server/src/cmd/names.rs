//! `rename-command`: the names commands answer to once the configuration renamed or removed
//! some (to keep DEBUG, SHUTDOWN or CONFIG away from clients that do not know the new name).
//!
//! As in Redis, only the config file and the command line rename (CONFIG GET does not list
//! it), and a rename changes the lookup of the name a client sends, nothing else: the command
//! keeps its own name in errors, COMMAND replies and statistics, and the replication stream
//! carries what the client sent (Redis does the same, so a replica needs the same renames).
//! With no rename configured, lookups go straight to [`super::lookup`].

use super::Spec;
use hashbrown::{HashMap, HashSet};

/// The renames in force.
#[derive(Debug, Clone, Default)]
pub struct CommandNames {
    /// New name (lowercase) -> the command it now calls.
    added: HashMap<Vec<u8>, &'static Spec>,
    /// Table names (lowercase) that no longer call their command.
    removed: HashSet<&'static str>,
}

impl CommandNames {
    /// Finds a command by the name a client sent, renames applied.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Spec> {
        if self.removed.is_empty() {
            return super::lookup(name);
        }
        if let Some(spec) = self.added.get(&name.to_ascii_lowercase()) {
            return Some(spec);
        }
        super::lookup(name).filter(|s| !self.removed.contains(s.name))
    }

    /// `rename-command old new`; an empty `new` removes the command.
    ///
    /// # Errors
    /// Redis's texts: `old` is not a command (now), or `new` already names one.
    pub fn rename(&mut self, old: &str, new: &str) -> Result<(), String> {
        let spec = self
            .lookup(old.as_bytes())
            .ok_or("No such command in rename-command")?;
        if !new.is_empty() && self.lookup(new.as_bytes()).is_some() {
            return Err("Target command name already exists".into());
        }
        self.added.remove(&old.to_ascii_lowercase().into_bytes());
        self.removed.insert(spec.name);
        if !new.is_empty() {
            self.added
                .insert(new.to_ascii_lowercase().into_bytes(), spec);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_and_removed_commands() {
        let mut n = CommandNames::default();
        assert_eq!(n.lookup(b"CONFIG").map(|s| s.name), Some("config"));
        n.rename("config", "").expect("remove");
        n.rename("SHUTDOWN", "op-Shutdown").expect("rename");
        assert!(n.lookup(b"config").is_none());
        assert!(n.lookup(b"shutdown").is_none());
        assert_eq!(n.lookup(b"OP-SHUTDOWN").map(|s| s.name), Some("shutdown"));
        assert_eq!(n.lookup(b"get").map(|s| s.name), Some("get"));
        assert_eq!(
            n.rename("config", "x"),
            Err("No such command in rename-command".into())
        );
        assert_eq!(
            n.rename("debug", "get"),
            Err("Target command name already exists".into())
        );
        assert_eq!(
            n.rename("debug", "op-shutdown"),
            Err("Target command name already exists".into())
        );
        // A renamed command can be renamed again under its new name.
        n.rename("op-shutdown", "op2").expect("rename again");
        assert!(n.lookup(b"op-shutdown").is_none());
        assert_eq!(n.lookup(b"op2").map(|s| s.name), Some("shutdown"));
    }
}
