//! Full syncs over time: when each replica's sync started and how long the last one took,
//! and the sync-loop guard (a replica that keeps starting full syncs without finishing,
//! the loop of redis/redis #4697 and bitnami/charts #4935) with its bounded plan adjustment.
//! Pure: passes feed observations and the time in.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::facts::{NodeFacts, ReplicaLine};
use crate::crd::{FullSyncRecord, SyncMode};
use crate::policy::{BUFFER_FLOOR_BYTES, Plan};
use crate::quantity::MIB;

/// Full syncs one replica may start without reaching `online` before it is in a loop.
pub const SYNC_LOOP_ATTEMPTS: u32 = 3;

/// Plan adjustments the guard may make in total: each multiplies the replica output buffer
/// by [`BUFFER_STEP`] and repl-timeout by 2, so the master's memory stays bounded.
pub const MAX_ADJUSTMENTS: u32 = 3;

/// Growth of the replica output buffer per adjustment.
pub const BUFFER_STEP: u64 = 4;

/// A replica's sync as the master and the replica itself report it.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaView<'a> {
    /// Node name.
    pub name: &'a str,
    /// The master's `slaveN` line for it, when connected.
    pub line: Option<&'a ReplicaLine>,
    /// Its own INFO, when reachable.
    pub facts: Option<&'a NodeFacts>,
}

impl ReplicaView<'_> {
    /// In a full sync: the master is preparing or sending the snapshot, or the replica is
    /// receiving one.
    pub fn syncing(&self) -> bool {
        self.line
            .is_some_and(|l| l.state == "wait_bgsave" || l.state == "send_bulk")
            || self.facts.is_some_and(|f| f.sync_in_progress)
    }

    /// Online on both ends.
    pub fn online(&self) -> bool {
        self.line.is_some_and(|l| l.state == "online")
            && self.facts.is_none_or(|f| f.link_up && !f.sync_in_progress)
    }
}

/// A replica caught in a sync loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncLoop {
    /// The replica.
    pub node: String,
    /// Full syncs it started without finishing one.
    pub attempts: u32,
}

#[derive(Clone, Debug, Default)]
struct NodeSyncs {
    started: Option<(Timestamp, SyncMode)>,
    /// The most bytes the running sync was seen to move.
    bytes: u64,
    attempts: u32,
    last: Option<FullSyncRecord>,
}

/// Syncs smaller than this say more about the fixed costs (the snapshot's start, the
/// operator's pass interval) than about the link, so no rate is taken from them.
pub const MIN_RATE_SAMPLE_BYTES: u64 = 64 * MIB;

/// Remembers syncs across passes.
#[derive(Clone, Debug, Default)]
pub struct SyncTracker {
    nodes: BTreeMap<String, NodeSyncs>,
    /// The master's sync_full when last seen, and which master that was.
    baseline: Option<(String, u64)>,
}

impl SyncTracker {
    /// Feeds one pass: the master's name and INFO, its replicas, the mode in effect.
    /// Returns the replica now in a sync loop, if one reached [`SYNC_LOOP_ATTEMPTS`] (its
    /// count then starts over, so a loop that persists after an adjustment is seen again).
    pub fn observe(
        &mut self,
        master: &str,
        master_facts: &NodeFacts,
        replicas: &[ReplicaView<'_>],
        mode: SyncMode,
        now: Timestamp,
    ) -> Option<SyncLoop> {
        let new_syncs = match &self.baseline {
            Some((m, n)) if m == master => master_facts.sync_full.saturating_sub(*n),
            _ => 0,
        };
        self.baseline = Some((master.to_owned(), master_facts.sync_full));
        let syncing = replicas.iter().filter(|r| r.syncing()).count() as u64;
        // sync_full counts every replica's full sync; share new ones among those syncing.
        let each = if syncing == 0 {
            0
        } else {
            u32::try_from(new_syncs.div_ceil(syncing)).unwrap_or(u32::MAX)
        };
        let mut found = None;
        for r in replicas {
            let n = self.nodes.entry(r.name.to_owned()).or_default();
            if r.syncing() {
                // The first sight of a sync counts it even when sync_full had no baseline.
                let seen = if n.started.is_none() {
                    n.started = Some((now, mode));
                    n.bytes = 0;
                    each.max(1)
                } else {
                    each
                };
                if let Some(f) = r.facts {
                    n.bytes = n
                        .bytes
                        .max(f.sync_total_bytes.unwrap_or(0))
                        .max(f.sync_read_bytes.unwrap_or(0));
                }
                n.attempts = n.attempts.saturating_add(seen);
                if n.attempts >= SYNC_LOOP_ATTEMPTS && found.is_none() {
                    found = Some(SyncLoop {
                        node: r.name.to_owned(),
                        attempts: n.attempts,
                    });
                    n.attempts = 1;
                }
            } else if r.online() {
                if let Some((started, mode)) = n.started.take() {
                    n.last = Some(FullSyncRecord {
                        mode,
                        started_at: Time(started),
                        duration_seconds: now.duration_since(started).as_secs(),
                        bytes: (n.bytes > 0).then_some(n.bytes),
                    });
                }
                n.attempts = 0;
            }
        }
        found
    }

    /// Takes back `record` as `node`'s last completed full sync (from an earlier operator's
    /// status).
    pub fn restore_last(&mut self, node: &str, record: FullSyncRecord) {
        self.nodes.entry(node.to_owned()).or_default().last = Some(record);
    }

    /// The last completed full sync of `node`.
    pub fn last_full_sync(&self, node: &str) -> Option<&FullSyncRecord> {
        self.nodes.get(node).and_then(|n| n.last.as_ref())
    }

    /// The transfer rate of the most recent completed full sync that moved at least
    /// [`MIN_RATE_SAMPLE_BYTES`], in bytes per second, rounded down to a power of two (a
    /// slower guess is the safe side, and the plan it feeds moves in steps).
    pub fn transfer_rate(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter_map(|n| n.last.as_ref())
            .filter(|r| r.bytes.is_some_and(|b| b >= MIN_RATE_SAMPLE_BYTES))
            .max_by_key(|r| r.started_at.0)
            .and_then(|r| {
                let seconds = u64::try_from(r.duration_seconds).ok()?.max(1);
                let rate = r.bytes? / seconds;
                (rate > 0).then(|| 1 << rate.ilog2())
            })
    }
}

/// The plan after `steps` sync-loop adjustments (at most [`MAX_ADJUSTMENTS`]): a larger
/// replica output buffer (never below the floor, and never unlimited when it was bounded)
/// and a longer repl-timeout, the two limits that cut a sync short. The soft limit goes,
/// since it disconnects a replica that is merely slow.
pub fn adjusted(mut plan: Plan, steps: u32) -> Plan {
    let steps = steps.min(MAX_ADJUSTMENTS);
    if steps == 0 {
        return plan;
    }
    let factor = BUFFER_STEP.saturating_pow(steps);
    let limit = &mut plan.client_output_buffer_limit;
    if limit.hard_bytes != 0 {
        limit.hard_bytes = limit
            .hard_bytes
            .max(BUFFER_FLOOR_BYTES / BUFFER_STEP)
            .saturating_mul(factor);
    }
    limit.soft_bytes = 0;
    limit.soft_seconds = 0;
    plan.repl_timeout_seconds = plan.repl_timeout_seconds.saturating_mul(1 << steps);
    plan.reason.push_str(&format!(
        "; sync loop guard: output buffer and repl-timeout raised (step {steps}/{MAX_ADJUSTMENTS})"
    ));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::facts::{Role, fixture};
    use crate::policy::{PolicyInput, plan};
    use crate::quantity::{GIB, MIB};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    fn master(sync_full: u64) -> NodeFacts {
        NodeFacts {
            sync_full,
            ..fixture("m", Role::Master, 0)
        }
    }

    fn line(state: &str) -> ReplicaLine {
        ReplicaLine {
            ip: "127.0.0.1".to_owned(),
            port: 1,
            state: state.to_owned(),
            offset: 0,
            lag: 0,
        }
    }

    #[test]
    fn a_sync_is_timed_from_first_sight_to_online() {
        let mut tr = SyncTracker::default();
        let bulk = line("send_bulk");
        let online = line("online");
        let view = |l| {
            [ReplicaView {
                name: "n-1",
                line: Some(l),
                facts: None,
            }]
        };
        assert_eq!(
            tr.observe("n-0", &master(0), &view(&bulk), SyncMode::Diskless, t(100)),
            None
        );
        assert_eq!(
            tr.observe("n-0", &master(1), &view(&bulk), SyncMode::Diskless, t(110)),
            None
        );
        assert_eq!(tr.last_full_sync("n-1"), None);
        assert_eq!(
            tr.observe("n-0", &master(1), &view(&online), SyncMode::Disk, t(130)),
            None
        );
        let rec = tr.last_full_sync("n-1").expect("record");
        assert_eq!(rec.mode, SyncMode::Diskless, "the mode the sync ran with");
        assert_eq!(rec.started_at, Time(t(100)));
        assert_eq!(rec.duration_seconds, 30);
    }

    #[test]
    fn the_transfer_rate_comes_from_the_bytes_a_replica_received() {
        let mut tr = SyncTracker::default();
        let bulk = line("send_bulk");
        let online = line("online");
        let receiving = |read: u64| NodeFacts {
            sync_in_progress: true,
            sync_read_bytes: Some(read),
            ..fixture("r", Role::Replica, 0)
        };
        let sync = |tr: &mut SyncTracker, name: &str, start: i64, seconds: i64, bytes: u64| {
            for (at, read) in [(start, bytes / 3), (start + seconds - 1, bytes)] {
                let f = receiving(read);
                let view = [ReplicaView {
                    name,
                    line: Some(&bulk),
                    facts: Some(&f),
                }];
                tr.observe("n-0", &master(1), &view, SyncMode::Diskless, t(at));
            }
            let view = [ReplicaView {
                name,
                line: Some(&online),
                facts: None,
            }];
            tr.observe(
                "n-0",
                &master(1),
                &view,
                SyncMode::Diskless,
                t(start + seconds),
            );
        };
        sync(&mut tr, "n-1", 0, 10, 10 * MIB);
        assert_eq!(
            tr.last_full_sync("n-1").and_then(|r| r.bytes),
            Some(10 * MIB)
        );
        assert_eq!(
            tr.transfer_rate(),
            None,
            "10 MiB is too small to time a link"
        );
        // 600 MiB in 100 s: 6 MiB/s, rounded down to 4 MiB/s.
        sync(&mut tr, "n-2", 100, 100, 600 * MIB);
        assert_eq!(tr.transfer_rate(), Some(4 * MIB));
        // A later sync of another replica is the one that counts.
        sync(&mut tr, "n-1", 300, 10, GIB);
        assert_eq!(tr.transfer_rate(), Some(64 * MIB));
    }

    #[test]
    fn repeated_full_syncs_without_online_are_a_loop() {
        let mut tr = SyncTracker::default();
        let bulk = line("send_bulk");
        let view = [ReplicaView {
            name: "n-1",
            line: Some(&bulk),
            facts: None,
        }];
        assert_eq!(
            tr.observe("n-0", &master(1), &view, SyncMode::Diskless, t(0)),
            None
        );
        assert_eq!(
            tr.observe("n-0", &master(2), &view, SyncMode::Diskless, t(1)),
            None
        );
        let found = tr.observe("n-0", &master(3), &view, SyncMode::Diskless, t(2));
        assert_eq!(
            found,
            Some(SyncLoop {
                node: "n-1".to_owned(),
                attempts: 3
            })
        );
        assert_eq!(
            tr.observe("n-0", &master(3), &view, SyncMode::Diskless, t(3)),
            None,
            "counted once"
        );

        // One full sync that finishes is no loop, however long it takes.
        let mut tr = SyncTracker::default();
        let online = line("online");
        for (i, n) in [1, 2].into_iter().enumerate() {
            assert_eq!(
                tr.observe("n-0", &master(n), &view, SyncMode::Diskless, t(i as i64)),
                None
            );
            let done = [ReplicaView {
                name: "n-1",
                line: Some(&online),
                facts: None,
            }];
            assert_eq!(
                tr.observe("n-0", &master(n), &done, SyncMode::Diskless, t(10)),
                None
            );
        }
    }

    #[test]
    fn adjustments_grow_the_limits_and_stop_at_the_bound() {
        let mut p = plan(&PolicyInput {
            dataset_size_hint: GIB,
            replicas: 2,
            ..PolicyInput::default()
        });
        p.client_output_buffer_limit.hard_bytes = 64 * 1024;
        p.client_output_buffer_limit.soft_bytes = 1024;
        p.client_output_buffer_limit.soft_seconds = 5;
        assert_eq!(adjusted(p.clone(), 0), p);
        let one = adjusted(p.clone(), 1);
        assert_eq!(
            one.client_output_buffer_limit.hard_bytes,
            BUFFER_FLOOR_BYTES
        );
        assert_eq!(one.client_output_buffer_limit.soft_bytes, 0);
        assert_eq!(one.repl_timeout_seconds, p.repl_timeout_seconds * 2);
        assert!(one.reason.contains("sync loop guard"), "{}", one.reason);
        let max = adjusted(p.clone(), 99);
        assert_eq!(max, adjusted(p.clone(), MAX_ADJUSTMENTS));
        assert_eq!(max.client_output_buffer_limit.hard_bytes, 64 * 64 * MIB);
        p.client_output_buffer_limit.hard_bytes = 0;
        assert_eq!(
            adjusted(p, 2).client_output_buffer_limit.hard_bytes,
            0,
            "unlimited stays unlimited"
        );
    }
}
