//! Dangerous commands kept from ordinary clients: which commands each node renames to a
//! secret name or removes (`rename-command`), the secret names (generated once per set and
//! kept with the password), their stored text form, and the names the operator itself sends.
//!
//! Removed: DEBUG (memory dumps, crashes and sleeps on demand) and SLAVEOF (the old alias of
//! REPLICAOF). Renamed: CONFIG (it reads the password back and changes anything, the
//! operator tunes with it), REPLICAOF (it makes a master copy any host, wiping its data; the
//! operator wires roles with it) and SHUTDOWN (stops a node; Kubernetes and local mode stop
//! nodes by signal, so nobody needs the plain name). Left alone on purpose: INFO, CLIENT,
//! WAIT, ROLE (applications and the operator need them), FLUSHALL/FLUSHDB (a client holding
//! the password can delete every key anyway), PSYNC/SYNC/REPLCONF (replicas send them by their
//! real names).
//!
//! Pure apart from [`CommandNames::generate`], which draws from the OS-seeded generator.
//! Writing the names into the Secret or a file, and reading them back, is the callers'.

use std::collections::BTreeMap;
use std::fmt;

use crate::random::random_alphanumeric;

/// Commands renamed to a secret name: the operator still sends them.
pub const RENAMED: [&str; 3] = ["CONFIG", "REPLICAOF", "SHUTDOWN"];

/// Commands removed outright: nobody sends them.
pub const REMOVED: [&str; 2] = ["DEBUG", "SLAVEOF"];

/// Random characters of a secret name after its `<command>-` prefix: about 143 bits.
pub const SECRET_LEN: usize = 24;

/// Key of the stored names in the auth-conf Secret.
pub const RENAMED_COMMANDS_KEY: &str = "renamed-commands";

/// Why stored names cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenamesError {
    /// A line is not `COMMAND name` for a command of [`RENAMED`].
    #[error(
        "line {line} of the renamed commands is not `COMMAND name` for one of CONFIG, REPLICAOF, SHUTDOWN"
    )]
    BadLine {
        /// 1-based line number (the line itself may hold a secret, so it is not shown).
        line: usize,
    },
    /// A renamed command has no name.
    #[error("the renamed commands lack {0}")]
    Missing(&'static str),
}

/// The name each command of [`RENAMED`] answers to. Its `Debug` never shows the names.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandNames {
    names: BTreeMap<&'static str, String>,
}

impl fmt::Debug for CommandNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_plain() {
            "CommandNames(plain)"
        } else {
            "CommandNames(<secret>)"
        })
    }
}

impl Default for CommandNames {
    fn default() -> Self {
        Self::plain()
    }
}

impl CommandNames {
    /// The commands' own names: nodes without renames.
    pub fn plain() -> Self {
        Self {
            names: RENAMED.iter().map(|c| (*c, (*c).to_owned())).collect(),
        }
    }

    /// Fresh secret names, `config-<24 alphanumerics>` and so on.
    pub fn generate() -> Self {
        Self {
            names: RENAMED
                .iter()
                .map(|c| {
                    let secret = random_alphanumeric(SECRET_LEN);
                    (*c, format!("{}-{secret}", c.to_ascii_lowercase()))
                })
                .collect(),
        }
    }

    /// Reads the stored form ([`Self::to_text`]).
    ///
    /// # Errors
    /// A line that is not `COMMAND name` with a command of [`RENAMED`] and a name of
    /// letters, digits and dashes; or a command without a name.
    pub fn parse(text: &str) -> Result<Self, RenamesError> {
        let mut names = BTreeMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = RenamesError::BadLine { line: i + 1 };
            let mut words = line.split_whitespace();
            let (Some(command), Some(name), None) = (words.next(), words.next(), words.next())
            else {
                return Err(bad);
            };
            let Some(command) = RENAMED.iter().find(|c| c.eq_ignore_ascii_case(command)) else {
                return Err(bad);
            };
            if name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(bad);
            }
            names.insert(*command, name.to_owned());
        }
        if let Some(missing) = RENAMED.iter().find(|c| !names.contains_key(*c)) {
            return Err(RenamesError::Missing(missing));
        }
        Ok(Self { names })
    }

    /// The stored form: one `COMMAND name` line per renamed command.
    pub fn to_text(&self) -> String {
        self.names
            .iter()
            .map(|(c, n)| format!("{c} {n}\n"))
            .collect()
    }

    /// Whether these are the commands' own names.
    pub fn is_plain(&self) -> bool {
        self.names.iter().all(|(c, n)| c == n)
    }

    /// The `rename-command` lines a node's config needs so that it answers to these names
    /// and no longer to the plain ones, [`REMOVED`] included. None for plain names.
    pub fn directives(&self) -> String {
        if self.is_plain() {
            return String::new();
        }
        let renamed = self
            .names
            .iter()
            .map(|(c, n)| format!("rename-command {c} {n}\n"));
        let removed = REMOVED.iter().map(|c| format!("rename-command {c} \"\"\n"));
        renamed.chain(removed).collect()
    }

    fn get(&self, command: &'static str) -> &str {
        self.names.get(command).map_or(command, String::as_str)
    }

    /// The name CONFIG answers to.
    pub fn config(&self) -> &str {
        self.get("CONFIG")
    }

    /// The name REPLICAOF answers to.
    pub fn replicaof(&self) -> &str {
        self.get("REPLICAOF")
    }

    /// The name SHUTDOWN answers to.
    pub fn shutdown(&self) -> &str {
        self.get("SHUTDOWN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_secret_distinct_and_round_trip() {
        let a = CommandNames::generate();
        let b = CommandNames::generate();
        assert_ne!(a, b);
        assert!(!a.is_plain());
        assert!(a.config().starts_with("config-"), "readable prefix");
        assert_eq!(a.config().len(), "config-".len() + SECRET_LEN);
        assert_ne!(a.config(), a.replicaof());
        assert_eq!(CommandNames::parse(&a.to_text()), Ok(a.clone()));
        assert_eq!(format!("{a:?}"), "CommandNames(<secret>)");
        assert!(!format!("{a:?}").contains(a.config()));
    }

    #[test]
    fn directives_rename_and_remove_and_plain_names_need_none() {
        let n = CommandNames::parse("CONFIG c-1\nREPLICAOF r-2\nSHUTDOWN s-3\n").expect("valid");
        assert_eq!(
            n.directives(),
            "rename-command CONFIG c-1\nrename-command REPLICAOF r-2\nrename-command SHUTDOWN s-3\nrename-command DEBUG \"\"\nrename-command SLAVEOF \"\"\n"
        );
        assert_eq!(
            (n.config(), n.replicaof(), n.shutdown()),
            ("c-1", "r-2", "s-3")
        );
        let plain = CommandNames::plain();
        assert!(plain.is_plain());
        assert_eq!(plain.directives(), "");
        assert_eq!(plain.config(), "CONFIG");
    }

    #[test]
    fn stored_names_that_could_inject_or_are_incomplete_are_refused() {
        for (text, err) in [
            (
                "CONFIG a\"b\nREPLICAOF r\nSHUTDOWN s\n",
                RenamesError::BadLine { line: 1 },
            ),
            (
                "CONFIG a\nREPLICAOF r x\nSHUTDOWN s\n",
                RenamesError::BadLine { line: 2 },
            ),
            (
                "CONFIG a\nGET g\nSHUTDOWN s\n",
                RenamesError::BadLine { line: 2 },
            ),
            ("CONFIG a\nSHUTDOWN s\n", RenamesError::Missing("REPLICAOF")),
            ("", RenamesError::Missing("CONFIG")),
        ] {
            assert_eq!(CommandNames::parse(text), Err(err), "{text:?}");
        }
        let err = CommandNames::parse("CONFIG secret-x y\n").expect_err("bad");
        assert!(!err.to_string().contains("secret-x"), "{err}");
    }
}
