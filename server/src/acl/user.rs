//! An ACL user: its flags, password hashes and selectors, the rules that change them
//! (Redis 7.0's `ACL SETUSER` grammar) and the description ACL LIST and the ACL file use.

use crate::acl::selector::{Denied, Request, RuleError, Selector};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
    pub enabled: bool,
    pub nopass: bool,
    /// `Some(true)` after `sanitize-payload`, `Some(false)` after `skip-sanitize-payload`;
    /// a new user has neither flag.
    pub sanitize_payload: Option<bool>,
    /// SHA-256 hashes, lowercase hex, in the order they were added.
    pub passwords: Vec<String>,
    /// The root selector first, then the `(...)` ones.
    pub selectors: Vec<Selector>,
    /// `acl-pubsub-default allchannels`: selectors this user gains, and `reset`, start with
    /// every channel (Redis reads the directive when it makes a selector).
    pub channels_by_default: bool,
}

/// Redis's error for a bad rule, with the rule quoted.
pub fn rule_error(op: &[u8], e: RuleError) -> String {
    format!(
        "ERR Error in ACL SETUSER modifier '{}': {e}",
        String::from_utf8_lossy(op)
    )
}

impl User {
    /// A new user: off, no password, no permissions, and every channel when
    /// `acl-pubsub-default` is `allchannels`.
    pub fn with_channels(name: &[u8], all_channels: bool) -> Self {
        let mut u = User::new(name);
        u.channels_by_default = all_channels;
        u.selectors[0].all_channels = all_channels;
        u
    }

    /// A new user: off, no password, no permissions.
    pub fn new(name: &[u8]) -> Self {
        User {
            name: name.to_vec(),
            enabled: false,
            nopass: false,
            sanitize_payload: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new()],
            channels_by_default: false,
        }
    }

    /// The `default` user as a server starts: on, no password, every command, key and
    /// channel.
    pub fn default_user() -> Self {
        let mut u = User::new(b"default");
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply(op.as_bytes())
                .expect("the default user's rules are valid");
        }
        u
    }

    /// Applies one rule (Redis's `ACLSetUser`); an empty rule does nothing.
    ///
    /// # Errors
    /// The rule is unknown or malformed.
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let Some(&first) = op.first() else {
            return Ok(());
        };
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize_payload = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize_payload = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if first == b'>' || first == b'#' {
            let hash = if first == b'>' {
                hash_password(&op[1..])
            } else {
                valid_hash(&op[1..])?
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if first == b'<' || first == b'!' {
            let hash = if first == b'<' {
                hash_password(&op[1..])
            } else {
                valid_hash(&op[1..])?
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if first == b'(' && op.last() == Some(&b')') {
            let mut s = Selector::new();
            s.all_channels = self.channels_by_default;
            for part in op[1..op.len() - 1]
                .split(|&c| c == b' ')
                .filter(|p| !p.is_empty())
            {
                s.apply(part)?;
            }
            self.selectors.push(s);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            for op in [
                "resetpass",
                "resetkeys",
                "resetchannels",
                "off",
                "sanitize-payload",
                "clearselectors",
                "-@all",
            ] {
                self.apply(op.as_bytes())?;
            }
            if self.channels_by_default {
                self.apply(b"allchannels")?;
            }
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    /// Applies rules as ACL SETUSER and `user` lines give them: a selector may span several
    /// arguments (`(~key* +get)` split at its spaces), and nothing changes unless every rule
    /// is valid.
    ///
    /// # Errors
    /// Redis's error line (code included) for the first bad rule.
    pub fn apply_all(&mut self, ops: &[&[u8]]) -> Result<(), String> {
        let merged = merge_selectors(ops).map_err(|i| {
            format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(ops[i])
            )
        })?;
        let mut staged = self.clone();
        for op in &merged {
            staged.apply(op).map_err(|e| rule_error(op, e))?;
        }
        *self = staged;
        Ok(())
    }

    /// Whether a password opens this user (disabled users open for nothing).
    pub fn accepts(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(pass);
        // Every stored hash is compared in full, so timing says nothing of which matched.
        self.passwords.iter().fold(false, |ok, p| {
            constant_time_eq(p.as_bytes(), hash.as_bytes()) | ok
        })
    }

    /// Redis's `ACLCheckAllUserCommandPerm`: allowed when one selector allows everything;
    /// otherwise the most relevant refusal of all selectors.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Denied> {
        let mut worst = Denied::Command;
        for s in &self.selectors {
            match s.check(req) {
                Ok(()) => return Ok(()),
                Err(d) if d.rank() > worst.rank() => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// Whether the user may run anything on any key and channel (the executor then skips
    /// the check, as for the default user of a server without ACL rules).
    pub fn is_unrestricted(&self) -> bool {
        let root = &self.selectors[0];
        root.all_commands() && root.all_keys && root.all_channels
    }

    /// GETUSER's flags, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize_payload {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// `user <name> <rules>`: the line ACL LIST shows and the ACL file and the config file
    /// hold.
    pub fn config_line(&self) -> Vec<u8> {
        [&b"user "[..], &self.name, b" ", &self.describe()].concat()
    }

    /// The user's rules as ACL LIST and the ACL file show them (after `user <name> `).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in self.flags() {
            out.extend_from_slice(f.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for (i, s) in self.selectors.iter().enumerate() {
            if i == 0 {
                out.extend_from_slice(&s.describe());
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&s.describe());
                out.push(b')');
            }
        }
        out
    }
}

/// Joins the arguments of a selector split at its spaces (Redis's
/// `ACLMergeSelectorArguments`).
///
/// # Errors
/// The index of the argument that opens a selector never closed.
pub fn merge_selectors(ops: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, op) in ops.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((i, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

/// SHA-256 of a password in lowercase hex, as Redis stores passwords.
pub fn hash_password(pass: &[u8]) -> String {
    let digest = Sha256::digest(pass);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

fn valid_hash(h: &[u8]) -> Result<String, RuleError> {
    if h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(String::from_utf8_lossy(h).into_owned())
    } else {
        Err(RuleError::BadHash)
    }
}

/// Compares secrets without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_password_is_redis_hex() {
        assert_eq!(
            hash_password(b"foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn a_bad_rule_changes_nothing() {
        let mut u = User::new(b"u");
        let before = u.clone();
        let err = u
            .apply_all(&[b"on", b">pw", b"+nosuchcommand"])
            .expect_err("invalid");
        assert_eq!(
            err,
            "ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command or category name in ACL"
        );
        assert_eq!(u, before);
        u.apply_all(&[b"on", b">pw"]).expect("valid");
        assert!(u.accepts(b"pw") && !u.accepts(b"px"));
    }

    #[test]
    fn selectors_may_span_arguments() {
        let mut u = User::new(b"u");
        u.apply_all(&[b"(~a*", b"+get)"]).expect("valid");
        assert_eq!(u.selectors.len(), 2);
        let err = u.apply_all(&[b"(~a*", b"+get"]).expect_err("invalid");
        assert_eq!(
            err,
            "ERR Unmatched parenthesis in acl selector starting at '(~a*'."
        );
    }
}
