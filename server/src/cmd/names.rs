//! `rename-command`: the names commands answer to once the configuration renamed or removed
//! some (to keep DEBUG, SHUTDOWN or CONFIG away from clients that do not know the new name).
//!
//! As in Redis, only the config file and the command line rename (CONFIG GET does not list
//! it), and a rename changes the lookup of the name a client sends, nothing else: the command
//! keeps its own name in errors, COMMAND replies and statistics, and the replication stream
//! carries what the client sent (Redis does the same, so a replica needs the same renames).
//! The configuration keeps the directives as given; [`resolve`] checks them against the
//! table into the state's [`CommandNames`], and [`lookup`] applies them. With no rename
//! configured, lookups go straight to [`super::lookup`].

use super::Spec;
use crate::config::{ConfigError, RenameCommand};
use crate::state::commands::CommandNames;

/// Finds a command by the name a client sent, renames applied.
pub fn lookup(names: &CommandNames, name: &[u8]) -> Option<&'static Spec> {
    if names.removed.is_empty() {
        return super::lookup(name);
    }
    if let Some(table_name) = names.added.get(&name.to_ascii_lowercase()) {
        return super::lookup(table_name.as_bytes());
    }
    super::lookup(name).filter(|s| !names.removed.contains(s.name))
}

/// The `rename-command old new` directives, applied in order (an empty `new` removes the
/// command).
///
/// # Errors
/// Redis's texts: `old` is not a command (by then), or `new` already names one; for a
/// directive of the config file, with its line as Redis reports a bad line.
pub fn resolve(renames: &[RenameCommand]) -> Result<CommandNames, ConfigError> {
    let mut names = CommandNames::default();
    for r in renames {
        rename(&mut names, &r.old, &r.new).map_err(|msg| {
            let invalid = ConfigError::Invalid("rename-command".into(), msg);
            match &r.line {
                Some((line, text)) => ConfigError::File {
                    line: *line,
                    text: text.clone(),
                    source: Box::new(invalid),
                },
                None => invalid,
            }
        })?;
    }
    Ok(names)
}

fn rename(names: &mut CommandNames, old: &str, new: &str) -> Result<(), String> {
    let spec = lookup(names, old.as_bytes()).ok_or("No such command in rename-command")?;
    if !new.is_empty() && lookup(names, new.as_bytes()).is_some() {
        return Err("Target command name already exists".into());
    }
    names.added.remove(&old.to_ascii_lowercase().into_bytes());
    names.removed.insert(spec.name);
    if !new.is_empty() {
        names
            .added
            .insert(new.to_ascii_lowercase().into_bytes(), spec.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(pairs: &[(&str, &str)]) -> Result<CommandNames, String> {
        let owned: Vec<RenameCommand> = pairs
            .iter()
            .map(|(old, new)| RenameCommand {
                old: old.to_string(),
                new: new.to_string(),
                line: None,
            })
            .collect();
        resolve(&owned).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bad_rename_in_the_file_names_its_line() {
        let mut c = crate::config::Config::default();
        c.apply_text("port 7000\nrename-command nosuch x\n")
            .expect("parsed");
        let e = resolve(&c.rename_commands).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "*** FATAL CONFIG FILE ERROR ***\nReading the configuration file, at line 2\n\
             >>> 'rename-command nosuch x'\nNo such command in rename-command"
        );
    }

    #[test]
    fn renamed_and_removed_commands() {
        let plain = CommandNames::default();
        assert_eq!(lookup(&plain, b"CONFIG").map(|s| s.name), Some("config"));
        let n = renamed(&[("config", ""), ("SHUTDOWN", "op-Shutdown")]).expect("renames");
        assert!(lookup(&n, b"config").is_none());
        assert!(lookup(&n, b"shutdown").is_none());
        assert_eq!(lookup(&n, b"OP-SHUTDOWN").map(|s| s.name), Some("shutdown"));
        assert_eq!(lookup(&n, b"get").map(|s| s.name), Some("get"));
        assert_eq!(
            renamed(&[("config", ""), ("config", "x")]).err(),
            Some("No such command in rename-command".into())
        );
        assert_eq!(
            renamed(&[("debug", "get")]).err(),
            Some("Target command name already exists".into())
        );
        assert_eq!(
            renamed(&[("SHUTDOWN", "op-Shutdown"), ("debug", "op-shutdown")]).err(),
            Some("Target command name already exists".into())
        );
        // A renamed command can be renamed again under its new name.
        let n = renamed(&[("SHUTDOWN", "op-Shutdown"), ("op-shutdown", "op2")]).expect("again");
        assert!(lookup(&n, b"op-shutdown").is_none());
        assert_eq!(lookup(&n, b"op2").map(|s| s.name), Some("shutdown"));
    }
}
