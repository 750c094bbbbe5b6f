//! The ACL file (`aclfile`): one `user <name> <rules...>` line per user, read by ACL LOAD and
//! at startup, written by ACL SAVE; with Redis 7.0's error texts, and all-or-nothing: a file
//! with any error changes no user.

use crate::acl::selector::{RuleError, has_spaces};
use crate::acl::user::{User, merge_selectors};
use std::io::Write;
use std::path::Path;

/// Parses the file's text into users (`name` is the path the errors quote).
///
/// # Errors
/// Every problem found, in Redis's words, ending with the line that says nothing changed.
pub fn parse(name: &str, text: &[u8], all_channels: bool) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    let mut errors = String::new();
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        let n = i + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let argv: Vec<&[u8]> = line
            .split(|&c| c == b' ')
            .filter(|a| !a.is_empty())
            .collect();
        if argv.len() < 2 || argv[0] != b"user" {
            errors.push_str(&format!(
                "{name}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let uname = argv[1];
        if has_spaces(uname) {
            errors.push_str(&format!(
                "'{name}:{n}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(uname)
            ));
            continue;
        }
        if users.iter().any(|u| u.name == uname) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {n}. ",
                String::from_utf8_lossy(uname)
            ));
            continue;
        }
        let mut user = User::with_channels(uname, all_channels);
        let mut syntax_error = false;
        match merge_selectors(&argv[2..]) {
            Err(_) => errors.push_str(&format!(
                "{name}:{n}: Unmatched parenthesis in selector definition."
            )),
            Ok(ops) => {
                for op in ops {
                    match user.apply(&op) {
                        Ok(()) => {}
                        Err(e @ RuleError::Unknown) => errors.push_str(&format!(
                            "{name}:{n}: Error in applying operation '{}': {e}. ",
                            String::from_utf8_lossy(&op)
                        )),
                        Err(e) if !syntax_error => {
                            errors.push_str(&format!("{name}:{n}: {e}. "));
                            syntax_error = true;
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        users.push(user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(errors)
    }
}

/// The file's text for these users: `user <name> <description>` lines.
pub fn render<'a>(users: impl Iterator<Item = &'a User>) -> Vec<u8> {
    let mut out = Vec::new();
    for u in users {
        out.extend_from_slice(&u.config_line());
        out.push(b'\n');
    }
    out
}

/// Reads and parses the ACL file (`all_channels`: `acl-pubsub-default allchannels`).
///
/// # Errors
/// The file cannot be opened, or its errors (see [`parse`]).
pub fn load(path: &Path, all_channels: bool) -> Result<Vec<User>, String> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{name}': {}",
            crate::state::persistence::strerror(&e)
        )
    })?;
    parse(&name, &text, all_channels)
}

/// Writes the file through a temporary file renamed over it, so a reader never sees half.
///
/// # Errors
/// The I/O error.
pub fn save(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    ));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_errors_change_nothing() {
        let text = b"user default on nopass ~* &* +@all\nuser app on #2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae ~app:* resetchannels -@all +get\n";
        let users = parse("users.acl", text, false).expect("valid");
        assert_eq!(render(users.iter()), text.to_vec());
        let err = parse("users.acl", b"user a on +nosuch\nfoo\n", false).expect_err("invalid");
        assert_eq!(
            err,
            "users.acl:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. users.acl:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
    }
}
