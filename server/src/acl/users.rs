//! The users of a server: the `default` user (whose password `requirepass` sets) and those
//! ACL SETUSER, `user` directives or the ACL file create, in name order as ACL LIST shows
//! them, plus the ACL LOG. Pure state: disconnecting clients is the caller's job.

use crate::acl::log::Log;
use crate::acl::selector::{Denied, Request};
use crate::acl::user::User;
use std::collections::BTreeMap;

/// `acl-pubsub-default`: whether new users and selectors start with every channel.
pub fn channels_by_default(config: &crate::config::Config) -> bool {
    crate::config::directive("acl-pubsub-default").is_some_and(|d| d.get(config) == "allchannels")
}

#[derive(Debug)]
pub struct Users {
    users: BTreeMap<Vec<u8>, User>,
    pub log: Log,
    /// `acl-pubsub-default allchannels` (7.0's default is `resetchannels`).
    pub channels_by_default: bool,
}

impl Default for Users {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), User::default_user());
        Users {
            users,
            log: Log::default(),
            channels_by_default: false,
        }
    }
}

impl Users {
    /// The users a server starts with, as Redis 7.0 builds them: `requirepass` for the
    /// default user, then the `user` directives (a `default` one starts from `reset`), or
    /// the ACL file; both kinds at once is refused.
    ///
    /// # Errors
    /// The message the server exits with.
    pub fn at_startup(
        requirepass: Option<&str>,
        channels_by_default: bool,
        directives: &[Vec<String>],
        aclfile: Option<&std::path::Path>,
    ) -> Result<Users, String> {
        let mut users = Users {
            channels_by_default,
            ..Users::default()
        };
        users.set_default_password(requirepass.map(str::as_bytes));
        if aclfile.is_some() && !directives.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        for d in directives {
            let Some((name, rules)) = d.split_first() else {
                continue;
            };
            if users.get(name.as_bytes()).is_some() && name != "default" {
                return Err(format!(
                    "Error in user declaration '{name}': Duplicate user found. A user can only be defined once in config files"
                ));
            }
            let mut ops: Vec<&[u8]> = Vec::new();
            if name == "default" {
                ops.push(b"reset");
            }
            ops.extend(rules.iter().map(|r| r.as_bytes()));
            users.set_user(name.as_bytes(), &ops).map_err(|e| {
                format!(
                    "Error in user declaration '{name}': {}",
                    e.strip_prefix("ERR ").unwrap_or(&e)
                )
            })?;
        }
        if let Some(path) = aclfile {
            let loaded = crate::acl::file::load(path, channels_by_default)
                .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
            users.replace(loaded);
        }
        Ok(users)
    }

    pub fn get(&self, name: &[u8]) -> Option<&User> {
        self.users.get(name)
    }

    /// All users, by name.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// ACL SETUSER: creates the user if needed and applies the rules, all or none.
    ///
    /// # Errors
    /// Redis's error line for the first bad rule.
    pub fn set_user(&mut self, name: &[u8], ops: &[&[u8]]) -> Result<(), String> {
        let mut user = self
            .users
            .get(name)
            .cloned()
            .unwrap_or_else(|| User::with_channels(name, self.channels_by_default));
        user.channels_by_default = self.channels_by_default;
        user.apply_all(ops)?;
        self.users.insert(name.to_vec(), user);
        Ok(())
    }

    /// Removes a user (never `default`); whether it existed.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        name != b"default" && self.users.remove(name).is_some()
    }

    /// Replaces every user at once (ACL LOAD, startup). A set without `default` gets a
    /// fresh one (on, no password, everything allowed), as Redis 7.0 makes it.
    pub fn replace(&mut self, users: Vec<User>) {
        self.users = users.into_iter().map(|u| (u.name.clone(), u)).collect();
        self.users
            .entry(b"default".to_vec())
            .or_insert_with(User::default_user);
    }

    /// Whether `name` exists, is on and takes `pass`.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> bool {
        self.users.get(name).is_some_and(|u| u.accepts(pass))
    }

    /// `requirepass`: the default user's only password, or `nopass` when unset, as Redis
    /// 7.0 maps it.
    pub fn set_default_password(&mut self, pass: Option<&[u8]>) {
        let user = self
            .users
            .entry(b"default".to_vec())
            .or_insert_with(User::default_user);
        let mut op = b">".to_vec();
        let ops: [&[u8]; 2] = match pass {
            Some(p) => {
                op.extend_from_slice(p);
                [b"resetpass", &op]
            }
            None => [b"resetpass", b"nopass"],
        };
        for o in ops {
            // Both rules are always valid.
            let _ = user.apply(o);
        }
    }

    /// Whether a new connection starts authenticated: the default user is on and takes
    /// any password.
    pub fn default_needs_no_auth(&self) -> bool {
        self.users
            .get(&b"default"[..])
            .is_some_and(|u| u.enabled && u.nopass)
    }

    /// Whether one selector of the user that allows the request may read every key (Redis's
    /// `ACLUserCheckCmdWithUnrestrictedKeyAccess`): SORT's BY and GET patterns read keys no
    /// rule saw.
    pub fn reads_every_key(&self, name: &[u8], req: &Request<'_>) -> bool {
        self.users.get(name).is_some_and(|u| {
            u.selectors.iter().any(|s| {
                s.check(req).is_ok() && s.key_allowed_everywhere(crate::acl::key_access::R)
            })
        })
    }

    /// Checks a command for a user; a user deleted meanwhile may run nothing.
    pub fn check(&self, name: &[u8], req: &Request<'_>) -> Result<(), Denied> {
        self.users
            .get(name)
            .map_or(Err(Denied::Command), |u| u.check(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_set_without_default_gets_a_fresh_one() {
        let mut users = Users::default();
        users.set_default_password(Some(b"pw"));
        users.replace(vec![User::new(b"app")]);
        let names: Vec<&[u8]> = users.iter().map(|u| u.name.as_slice()).collect();
        assert_eq!(names, vec![&b"app"[..], b"default"]);
        assert!(users.default_needs_no_auth());
    }
}
