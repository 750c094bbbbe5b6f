//! Client-side caching (CLIENT TRACKING): which clients must hear that a key changed.
//!
//! Two modes, as in Redis 7.0. By default the server remembers, per key, the clients that
//! read it (the keys of their read-only commands, subject to OPTIN/OPTOUT and CLIENT
//! CACHING) and tells each of them once when the key changes; the key is then forgotten
//! until read again. In BCAST mode nothing is remembered: a client names key prefixes and
//! hears about every changed key under them. The table is shared by all databases, as
//! Redis's is: a client caching key `k` of db 0 hears about `k` of db 1.
//!
//! This module only decides who hears what. Changed keys come from
//! [`crate::state::Server::touch_key`]; the messages are written by the command layer
//! (`cmd::tracking`), which knows connections, RESP versions and redirection.

use hashbrown::HashMap;
use std::collections::BTreeMap;

/// A client's CLIENT TRACKING options while tracking is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTracking {
    /// REDIRECT: the id of the client that receives the invalidations; 0 for none.
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// The redirect target has gone (`R` in CLIENT LIST, `broken_redirect` in
    /// TRACKINGINFO).
    pub broken_redirect: bool,
    /// BCAST prefixes, in byte order (an empty prefix stands for every key).
    pub prefixes: Vec<Vec<u8>>,
}

/// An invalidation to deliver: to `target`, for `key` (`None`: everything, after a flush).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Keys a default-mode client had read.
    Keys { target: u64, keys: Vec<Vec<u8>> },
    /// Everything (FLUSHALL, FLUSHDB).
    All { target: u64 },
}

#[derive(Debug, Default)]
struct Broadcast {
    clients: Vec<u64>,
    /// Keys changed under the prefix since the last broadcast, in byte order, with the
    /// client whose command changed each (0 for the server itself), for NOLOOP.
    changed: BTreeMap<Vec<u8>, u64>,
}

#[derive(Debug, Default)]
pub struct Tracking {
    /// Default mode: each key and the clients that read it since it last changed.
    readers: HashMap<Vec<u8>, Vec<u64>>,
    /// Sum of the readers' lists (INFO `tracking_total_items`).
    items: usize,
    prefixes: BTreeMap<Vec<u8>, Broadcast>,
    /// Clients with tracking on, by id.
    clients: HashMap<u64, ClientTracking>,
    /// Invalidations decided and not yet delivered, in order.
    pending: Vec<Invalidation>,
}

/// Why CLIENT TRACKING ON refuses a set of options (Redis's texts).
pub fn check_options(
    current: Option<&ClientTracking>,
    wanted: &ClientTracking,
) -> Result<(), String> {
    if !wanted.bcast && !wanted.prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if current.is_some_and(|c| c.bcast != wanted.bcast) {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if wanted.bcast && (wanted.optin || wanted.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if wanted.optin && wanted.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if current.is_some_and(|c| (wanted.optin && c.optout) || (wanted.optout && c.optin)) {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if wanted.bcast {
        let existing = current.map_or(&[][..], |c| c.prefixes.as_slice());
        let overlaps = |a: &[u8], b: &[u8]| {
            let n = a.len().min(b.len());
            a[..n] == b[..n]
        };
        for (i, p) in wanted.prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlaps(e, p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(e)
                ));
            }
            if let Some(o) = wanted.prefixes[i + 1..].iter().find(|o| overlaps(p, o)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(o)
                ));
            }
        }
    }
    Ok(())
}

impl Tracking {
    pub fn of(&self, id: u64) -> Option<&ClientTracking> {
        self.clients.get(&id)
    }

    pub fn of_mut(&mut self, id: u64) -> Option<&mut ClientTracking> {
        self.clients.get_mut(&id)
    }

    /// Whether anyone tracks at all: the write path's one test when nobody does.
    pub fn is_active(&self) -> bool {
        !self.clients.is_empty()
    }

    /// CLIENT TRACKING ON (options already checked): BCAST prefixes accumulate over
    /// repeated calls, the other options are replaced, as Redis does.
    pub fn enable(&mut self, id: u64, wanted: ClientTracking) {
        let mut prefixes = self
            .clients
            .get(&id)
            .map(|c| c.prefixes.clone())
            .unwrap_or_default();
        if wanted.bcast {
            let mut new = wanted.prefixes.clone();
            if new.is_empty() {
                new.push(Vec::new());
            }
            for p in new {
                let b = self.prefixes.entry(p.clone()).or_default();
                if !b.clients.contains(&id) {
                    b.clients.push(id);
                    prefixes.push(p);
                }
            }
            prefixes.sort();
        }
        self.clients.insert(
            id,
            ClientTracking {
                prefixes,
                broken_redirect: false,
                ..wanted
            },
        );
    }

    /// CLIENT TRACKING OFF, RESET or disconnect. Keys the client read stay in the table
    /// (skipped when they change), as in Redis, where the cleanup is lazy.
    pub fn disable(&mut self, id: u64) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        for p in c.prefixes {
            if let Some(b) = self.prefixes.get_mut(&p) {
                b.clients.retain(|&x| x != id);
                if b.clients.is_empty() {
                    self.prefixes.remove(&p);
                }
            }
        }
    }

    /// Remembers that `id` read `keys` (a default-mode client's read-only command).
    pub fn remember(&mut self, id: u64, keys: impl Iterator<Item = Vec<u8>>) {
        for k in keys {
            let ids = self.readers.entry(k).or_default();
            if !ids.contains(&id) {
                ids.push(id);
                self.items += 1;
            }
        }
    }

    /// `key` changed (by the command of client `writer`, 0 for the server itself):
    /// invalidations for its readers, and the key recorded for the broadcasts of the
    /// prefixes it falls under.
    pub fn key_changed(&mut self, key: &[u8], writer: u64) {
        for (p, b) in self.prefixes.range_mut(..=key.to_vec()) {
            if key.starts_with(p) {
                b.changed.insert(key.to_vec(), writer);
            }
        }
        let Some(ids) = self.readers.remove(key) else {
            return;
        };
        self.items -= ids.len();
        for target in ids {
            let wants = self
                .clients
                .get(&target)
                .is_some_and(|c| !(c.bcast || (c.noloop && target == writer)));
            if wants {
                self.pending.push(Invalidation::Keys {
                    target,
                    keys: vec![key.to_vec()],
                });
            }
        }
    }

    /// A flush: every tracking client hears that everything changed, and the table is
    /// emptied.
    pub fn flushed(&mut self) {
        let mut ids: Vec<u64> = self.clients.keys().copied().collect();
        ids.sort_unstable();
        self.pending
            .extend(ids.into_iter().map(|target| Invalidation::All { target }));
        self.readers.clear();
        self.items = 0;
    }

    /// The broadcasts due: for each prefix with changed keys, one message per client of
    /// the prefix with the keys in byte order (less those the client changed itself when
    /// NOLOOP). Queued after the pending invalidations.
    pub fn broadcast(&mut self) {
        for b in self.prefixes.values_mut() {
            if b.changed.is_empty() {
                continue;
            }
            let changed = std::mem::take(&mut b.changed);
            for &target in &b.clients {
                let noloop = self.clients.get(&target).is_some_and(|c| c.noloop);
                let keys: Vec<Vec<u8>> = changed
                    .iter()
                    .filter(|(_, w)| !noloop || **w != target)
                    .map(|(k, _)| k.clone())
                    .collect();
                if !keys.is_empty() {
                    self.pending.push(Invalidation::Keys { target, keys });
                }
            }
        }
    }

    /// The invalidations to deliver now.
    pub fn take_pending(&mut self) -> Vec<Invalidation> {
        std::mem::take(&mut self.pending)
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.prefixes.values().any(|b| !b.changed.is_empty())
    }

    /// `tracking-table-max-keys`: forgets keys (invalidating their readers) until the
    /// table holds at most `max` keys; 0 means no limit.
    pub fn limit(&mut self, max: usize) {
        if max == 0 {
            return;
        }
        while self.readers.len() > max {
            let Some(key) = self.readers.keys().next().cloned() else {
                break;
            };
            self.key_changed(&key, 0);
        }
    }

    /// INFO stats: tracking_clients (in INFO clients), total keys, items, prefixes.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.clients.len(),
            self.readers.len(),
            self.items,
            self.prefixes.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(target: u64, ks: &[&str]) -> Invalidation {
        Invalidation::Keys {
            target,
            keys: ks.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn a_read_key_is_invalidated_once() {
        let mut t = Tracking::default();
        t.enable(1, ClientTracking::default());
        t.remember(1, [b"k".to_vec(), b"k".to_vec()].into_iter());
        assert_eq!(t.counts(), (1, 1, 1, 0));
        t.key_changed(b"k", 2);
        assert_eq!(t.take_pending(), vec![keys(1, &["k"])]);
        t.key_changed(b"k", 2);
        assert!(t.take_pending().is_empty());
        assert_eq!(t.counts(), (1, 0, 0, 0));
    }

    #[test]
    fn broadcasts_group_keys_by_prefix_in_byte_order() {
        let mut t = Tracking::default();
        t.enable(
            1,
            ClientTracking {
                bcast: true,
                prefixes: vec![b"a:".to_vec()],
                ..Default::default()
            },
        );
        t.enable(
            2,
            ClientTracking {
                bcast: true,
                noloop: true,
                ..Default::default()
            },
        );
        for (k, w) in [("a:2", 2), ("b", 1), ("a:1", 1)] {
            t.key_changed(k.as_bytes(), w);
        }
        t.broadcast();
        assert_eq!(
            t.take_pending(),
            vec![keys(2, &["a:1", "b"]), keys(1, &["a:1", "a:2"])]
        );
        t.disable(1);
        t.disable(2);
        assert_eq!(t.counts(), (0, 0, 0, 0));
    }

    #[test]
    fn options_refused_with_redis_texts() {
        let bcast = ClientTracking {
            bcast: true,
            prefixes: vec![b"ab".to_vec(), b"a".to_vec()],
            ..Default::default()
        };
        assert!(
            check_options(None, &bcast)
                .expect_err("refused")
                .contains("overlaps with another")
        );
        let plain = ClientTracking {
            prefixes: vec![b"a".to_vec()],
            ..Default::default()
        };
        assert!(
            check_options(None, &plain)
                .expect_err("refused")
                .contains("requires BCAST")
        );
    }
}
