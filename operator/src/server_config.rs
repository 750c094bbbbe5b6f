//! `spec.serverConfig` on running nodes: which directives `CONFIG SET` changes live (every
//! allowed one but `databases`, which Redis 7.0 only takes at start-up) and, for those that
//! need a restart, the hash put on the pod template so that an edit rolls the StatefulSet
//! (the rolling update replaces replicas first and switches the master over). The ConfigMap
//! carries every directive either way, so a pod that restarts starts with them. Pure.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::crd::{ALLOWED_SERVER_CONFIG, ServerConfigStatus};

/// Allowed directives that `CONFIG SET` refuses on a running server (Redis 7.0's
/// `IMMUTABLE_CONFIG` among [`ALLOWED_SERVER_CONFIG`]).
pub const NEEDS_RESTART: [&str; 1] = ["databases"];

/// The pod template annotation holding [`restart_hash`].
pub const RESTART_HASH_ANNOTATION: &str = "tandem.dev/restart-config";

/// The live-settable directives of `server_config`, with the value as CONFIG GET prints it
/// (`maxmemory` in bytes: `maxmemory_bytes`, which validation parsed), so that a node in
/// line is not set again.
pub fn live(
    server_config: &BTreeMap<String, String>,
    maxmemory_bytes: Option<u64>,
) -> Vec<(&'static str, String)> {
    ALLOWED_SERVER_CONFIG
        .iter()
        .filter(|name| !NEEDS_RESTART.contains(name))
        .filter_map(|name| {
            let value = server_config.get(*name)?;
            Some(match (*name, maxmemory_bytes) {
                ("maxmemory", Some(bytes)) => (*name, bytes.to_string()),
                _ => (*name, value.clone()),
            })
        })
        .collect()
}

/// A digest of the directives that need a restart, as set (None when none is): it changes
/// exactly when one of them does.
pub fn restart_hash(server_config: &BTreeMap<String, String>) -> Option<String> {
    let lines: String = NEEDS_RESTART
        .iter()
        .filter_map(|name| Some(format!("{name} {}\n", server_config.get(*name)?)))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let digest = Sha256::digest(lines.as_bytes());
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// `status.serverConfig`: `applied` (the live directives the data plane found in line on
/// every node that answered) and the directives that wait for a restart; None when
/// `server_config` is empty.
pub fn status(
    server_config: &BTreeMap<String, String>,
    applied: &[(&'static str, String)],
) -> Option<ServerConfigStatus> {
    if server_config.is_empty() {
        return None;
    }
    Some(ServerConfigStatus {
        applied: applied
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        on_restart: server_config
            .iter()
            .filter(|(k, _)| NEEDS_RESTART.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn live_directives_leave_out_the_ones_needing_a_restart() {
        let c = config(&[
            ("maxmemory", "1gb"),
            ("maxmemory-policy", "allkeys-lru"),
            ("databases", "32"),
        ]);
        assert_eq!(
            live(&c, Some(1 << 30)),
            [
                ("maxmemory", "1073741824".to_owned()),
                ("maxmemory-policy", "allkeys-lru".to_owned())
            ]
        );
    }

    #[test]
    fn the_restart_hash_follows_only_the_restart_directives() {
        let none = config(&[("maxmemory-policy", "allkeys-lru")]);
        assert_eq!(restart_hash(&none), None);
        let a = restart_hash(&config(&[("databases", "32")])).expect("hash");
        let b = restart_hash(&config(&[("databases", "64")])).expect("hash");
        assert_eq!(a.len(), 16);
        assert_ne!(a, b, "an edit of databases changes the hash");
        assert_eq!(
            restart_hash(&config(&[("databases", "32"), ("hz", "50")])),
            Some(a),
            "a live directive does not"
        );
    }
}
