//! The two Secrets of a set: the auth Secret with the password (generated only when absent,
//! never overwritten) and the derived `-auth-conf` Secret with the `requirepass`/`masterauth`
//! lines that tandem.conf includes, so the password never appears in process arguments, in
//! the ConfigMap or in logs. The `-auth-conf` Secret also keeps the renamed commands' secret
//! names ([`crate::renames`]) and, unless `spec.security.renameCommands` is off, carries
//! their `rename-command` lines. Pure: no network; no randomness except [`Password::generate`].

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::meta::{SERVER_PORT, child_meta, names};
use crate::random::random_alphanumeric;
use crate::renames::{CommandNames, RENAMED_COMMANDS_KEY};
use crate::validate::ValidSet;

/// Key of the password in the auth Secret.
pub const PASSWORD_KEY: &str = "password";

/// A server password. Its `Debug` and `Display` never show it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Length of generated passwords: 32 alphanumerics, about 190 bits.
    pub const GENERATED_LEN: usize = 32;

    /// A fresh random password from the operating system's CSPRNG-seeded generator.
    pub fn generate() -> Self {
        Self(random_alphanumeric(Self::GENERATED_LEN))
    }

    /// Wraps a password read from a Secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret text, for the few places that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where the auth-conf Secret is mounted in the server container.
pub const AUTH_DIR: &str = "/etc/tandem-auth";

/// Key (and file name) of the auth directives.
pub const AUTH_CONF_KEY: &str = "auth.conf";

/// Key in the auth-conf Secret of the name CONFIG answers to (the secret name when commands
/// are renamed, `CONFIG` otherwise), for the metrics sidecar.
pub const CONFIG_COMMAND_KEY: &str = "config-command";

/// Key in the auth-conf Secret of the metrics sidecar's password file: redis_exporter's JSON
/// map from the server's address to its password, read from the mounted Secret so the
/// password is in no environment variable.
pub const EXPORTER_PASSWORDS_KEY: &str = "exporter-passwords.json";

/// The server as the metrics sidecar reaches it, over the pod's loopback.
pub fn exporter_server_uri() -> String {
    format!("redis://localhost:{SERVER_PORT}")
}

/// Path tandem.conf includes.
pub fn auth_conf_path() -> String {
    format!("{AUTH_DIR}/{AUTH_CONF_KEY}")
}

/// The auth Secret the operator creates when the named one does not exist. Owned by the
/// set, so it goes away with it; a user-provided Secret is never modified.
pub fn generated_auth_secret(set: &ValidSet<'_>, password: &Password) -> Secret {
    Secret {
        metadata: child_meta(set, set.auth_secret_name.clone()),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            PASSWORD_KEY.to_owned(),
            ByteString(password.expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The Secret with the `requirepass`/`masterauth` lines derived from the password, the
/// `rename-command` lines when the set renames commands, and the secret names either way
/// (so they stay the same when renaming is turned off and on again).
pub fn auth_conf(set: &ValidSet<'_>, password: &Password, commands: &CommandNames) -> Secret {
    let quoted = quote(password.expose());
    let mut conf = format!("requirepass {quoted}\nmasterauth {quoted}\n");
    let config_command = if set.rrs.spec.security.rename_commands {
        conf.push_str(&commands.directives());
        commands.config().to_owned()
    } else {
        "CONFIG".to_owned()
    };
    Secret {
        metadata: child_meta(set, names::auth_conf_secret(&set.name)),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (AUTH_CONF_KEY.to_owned(), ByteString(conf.into_bytes())),
            (
                RENAMED_COMMANDS_KEY.to_owned(),
                ByteString(commands.to_text().into_bytes()),
            ),
            (
                CONFIG_COMMAND_KEY.to_owned(),
                ByteString(config_command.into_bytes()),
            ),
            (
                EXPORTER_PASSWORDS_KEY.to_owned(),
                ByteString(
                    serde_json::json!({ exporter_server_uri(): password.expose() })
                        .to_string()
                        .into_bytes(),
                ),
            ),
        ])),
        ..Secret::default()
    }
}

/// A redis.conf double-quoted string, so a user's password may hold spaces, quotes or
/// control characters: a raw newline would end the directive and start another one
/// (`requirepass "x` + `\n` + any directive the password's author chose).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Observed;
    use crate::resources::fixtures::rrs;
    use crate::validate::validate;

    #[test]
    fn auth_conf_quotes_the_password() {
        let r = rrs("  replicas: 2\n  datasetSizeHint: 1Gi\n  auth: { secretName: mine }\n");
        let set = validate(&r, Observed::default()).expect("valid");
        let plain = CommandNames::plain();
        let s = auth_conf(&set, &Password::new("a \"b\\c".to_owned()), &plain);
        assert_eq!(s.metadata.name.as_deref(), Some("cache-auth-conf"));
        let data = &s.data.as_ref().expect("data")[AUTH_CONF_KEY];
        assert_eq!(
            String::from_utf8_lossy(&data.0),
            "requirepass \"a \\\"b\\\\c\"\nmasterauth \"a \\\"b\\\\c\"\n"
        );
        let s = auth_conf(
            &set,
            &Password::new("x\nrename-command AUTH \"\"\r\t\0".to_owned()),
            &plain,
        );
        let data = &s.data.as_ref().expect("data")[AUTH_CONF_KEY];
        assert_eq!(
            String::from_utf8_lossy(&data.0),
            "requirepass \"x\\nrename-command AUTH \\\"\\\"\\r\\t\\x00\"\nmasterauth \"x\\nrename-command AUTH \\\"\\\"\\r\\t\\x00\"\n",
            "one line per directive whatever the password holds"
        );
        let generated = generated_auth_secret(&set, &Password::new("pw".to_owned()));
        assert_eq!(generated.metadata.name.as_deref(), Some("mine"));
        assert_eq!(
            generated.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
    }

    fn data(s: &Secret, key: &str) -> String {
        String::from_utf8_lossy(&s.data.as_ref().expect("data")[key].0).into_owned()
    }

    #[test]
    fn the_auth_conf_renames_commands_and_keeps_the_names_unless_opted_out() {
        let names = CommandNames::generate();
        let pw = Password::new("pw".to_owned());
        let on = rrs("  replicas: 2\n  datasetSizeHint: 1Gi\n");
        let set = validate(&on, Observed::default()).expect("valid");
        let s = auth_conf(&set, &pw, &names);
        assert_eq!(
            data(&s, AUTH_CONF_KEY),
            format!(
                "requirepass \"pw\"\nmasterauth \"pw\"\n{}",
                names.directives()
            ),
            "renaming is on by default"
        );
        assert!(
            data(&s, AUTH_CONF_KEY)
                .contains(&format!("rename-command CONFIG {}\n", names.config()))
        );
        assert_eq!(
            CommandNames::parse(&data(&s, RENAMED_COMMANDS_KEY)),
            Ok(names.clone()),
            "the operator reads back what the pods were given"
        );

        let off =
            rrs("  replicas: 2\n  datasetSizeHint: 1Gi\n  security: { renameCommands: false }\n");
        let set = validate(&off, Observed::default()).expect("valid");
        let s = auth_conf(&set, &pw, &names);
        assert_eq!(
            data(&s, AUTH_CONF_KEY),
            "requirepass \"pw\"\nmasterauth \"pw\"\n"
        );
        assert_eq!(
            CommandNames::parse(&data(&s, RENAMED_COMMANDS_KEY)),
            Ok(names),
            "kept for when renaming is turned back on"
        );
    }
}
