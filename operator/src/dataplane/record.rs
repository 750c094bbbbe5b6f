//! What the data plane must remember across operator restarts, and taking it back: the
//! master and the run ids it trusts (Invariant 2: a pod that restarted while no operator
//! watched must still not be promoted nor followed), the sync-loop adjustments in effect and
//! the loop found (else a new operator would lower the buffer a loop made it raise, and the
//! loop starts over), the write rate that sized the buffer, and the last full syncs and
//! failover (else the status would lose them: churn for whoever watches it).
//!
//! It lives in the resource's status (`status.dataPlane`, next to the fields already
//! restored from there) rather than in annotations: the status is the operator's own
//! record, written by one apply patch per change already, where an annotation would be a
//! second write to the object users own and would wake every watcher of the spec. Losing it
//! (a status wiped by a backup restore) falls back to the first-start rule: trust what the
//! nodes hold now. Pure.

use super::engine::DataPlane;
use super::syncs::{MAX_ADJUSTMENTS, SyncLoop};
use crate::crd::{DataPlaneRecord, RedisReplicaSetStatus, SyncLoopRecord};
use crate::policy::Observed;

impl DataPlane {
    /// What goes into `status.dataPlane`.
    pub fn record(&self) -> DataPlaneRecord {
        DataPlaneRecord {
            trusted_run_ids: self.knowledge.trusted.clone(),
            sync_loop_adjustments: self.adjustments,
            sync_loop: self.sync_loop.as_ref().map(|l| SyncLoopRecord {
                pod: l.node.clone(),
                attempts: l.attempts,
            }),
            write_bytes_per_second: self.write_rate.peak(),
            dataset_bytes: self.dataset.peak(),
        }
    }

    /// Takes back what an earlier operator wrote into `status`. The master is taken back only
    /// with the run id it was trusted with: a status from before `dataPlane` existed leaves
    /// the first-start rule in charge, instead of failing over a healthy master whose run id
    /// was never recorded.
    pub fn restore(&mut self, status: &RedisReplicaSetStatus) {
        if let Some(kept) = &status.data_plane {
            self.knowledge.trusted.clone_from(&kept.trusted_run_ids);
            self.adjustments = kept.sync_loop_adjustments.min(MAX_ADJUSTMENTS);
            self.sync_loop = kept.sync_loop.as_ref().map(|l| SyncLoop {
                node: l.pod.clone(),
                attempts: l.attempts,
            });
            if let Some(rate) = kept.write_bytes_per_second {
                self.write_rate.restore(rate, self.now_ms());
            }
            if let Some(bytes) = kept.dataset_bytes {
                self.dataset.restore(bytes, self.now_ms());
            }
        }
        if let Some(m) = &status.master
            && self.knowledge.trusted.contains_key(m)
        {
            self.knowledge.master = Some(m.clone());
            self.knowledge.master_offset = status
                .master_offset
                .and_then(|o| u64::try_from(o).ok())
                .unwrap_or(0);
        }
        self.last_failover.clone_from(&status.last_failover);
        self.last_switchover.clone_from(&status.last_switchover);
        for r in &status.nodes {
            if let Some(record) = &r.last_full_sync {
                self.syncs.restore_last(&r.pod, record.clone());
            }
        }
    }

    /// What the data plane measured, for the tuning policy.
    pub fn observed(&self) -> Observed {
        Observed {
            write_bytes_per_second: self.write_rate.peak(),
            dataset_bytes: self.dataset.peak(),
            transfer_bytes_per_second: self.syncs.transfer_rate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::crd::{FailoverRecord, FullSyncRecord, ReplicaStatus, SyncMode};
    use crate::dataplane::facts::{Role, fixture};
    use crate::dataplane::roles::{NodeAddr, NodeState, decide};
    use crate::quantity::MIB;

    fn node(i: u16, run_id: &str, role: Role, offset: u64) -> NodeState {
        NodeState {
            name: format!("n-{i}"),
            addr: NodeAddr {
                host: "127.0.0.1".to_owned(),
                port: 7000 + i,
            },
            facts: Some(crate::dataplane::facts::NodeFacts {
                master: (role == Role::Replica).then(|| ("127.0.0.1".to_owned(), 7000)),
                link_up: role == Role::Replica,
                ..fixture(run_id, role, offset)
            }),
        }
    }

    fn kept_status() -> RedisReplicaSetStatus {
        let at = Time(Timestamp::from_second(1_000).expect("time"));
        RedisReplicaSetStatus {
            master: Some("n-0".to_owned()),
            master_offset: Some(500),
            nodes: vec![ReplicaStatus {
                pod: "n-1".to_owned(),
                ready: true,
                state: Some("online".to_owned()),
                link_status: Some("up".to_owned()),
                offset: Some(500),
                lag: Some(0),
                sync_progress: None,
                last_full_sync: Some(FullSyncRecord {
                    mode: SyncMode::Disk,
                    started_at: at.clone(),
                    duration_seconds: 7,
                    bytes: Some(112 * MIB),
                }),
            }],
            last_failover: Some(FailoverRecord {
                from: "n-2".to_owned(),
                to: "n-0".to_owned(),
                at,
                from_offset: 10,
                to_offset: 10,
                bytes_at_risk: 0,
                reason: "unreachable".to_owned(),
            }),
            data_plane: Some(DataPlaneRecord {
                trusted_run_ids: [("n-0", "a"), ("n-1", "b"), ("n-2", "c")]
                    .into_iter()
                    .map(|(n, r)| (n.to_owned(), r.to_owned()))
                    .collect(),
                sync_loop_adjustments: 2,
                sync_loop: Some(SyncLoopRecord {
                    pod: "n-1".to_owned(),
                    attempts: 3,
                }),
                write_bytes_per_second: Some(16 * MIB),
                dataset_bytes: Some(1536 * MIB),
            }),
            ..RedisReplicaSetStatus::default()
        }
    }

    #[test]
    fn what_is_remembered_comes_back_the_same() {
        let mut dp = DataPlane::new(None, Duration::from_secs(5));
        dp.restore(&kept_status());
        assert_eq!(dp.record(), kept_status().data_plane.expect("kept"));
        assert_eq!(dp.knowledge.master.as_deref(), Some("n-0"));
        assert_eq!(dp.knowledge.master_offset, 500);
        assert_eq!(dp.last_failover, kept_status().last_failover);
        assert_eq!(
            dp.syncs.last_full_sync("n-1"),
            kept_status().nodes[0].last_full_sync.as_ref()
        );
        assert_eq!(
            dp.observed().write_bytes_per_second,
            Some(16 * MIB),
            "the buffer stays sized for the rate seen before the restart"
        );
        assert_eq!(
            dp.observed().dataset_bytes,
            Some(1536 * MIB),
            "and the tuning for the dataset seen before it"
        );
        assert_eq!(
            dp.observed().transfer_bytes_per_second,
            Some(16 * MIB),
            "and the timeouts for the rate of the last sync: 112 MiB in 7 s"
        );
    }

    #[test]
    fn a_restarted_operator_does_not_trust_a_node_that_restarted_meanwhile() {
        let mut dp = DataPlane::new(None, Duration::from_secs(5));
        dp.restore(&kept_status());
        // n-0 is gone; n-2 restarted while no operator ran (new run id) from an old dump
        // with a higher offset; n-1 is the trusted copy.
        let mut nodes = vec![
            node(0, "a", Role::Master, 500),
            node(1, "b", Role::Replica, 480),
            node(2, "c-restarted", Role::Replica, 900),
        ];
        nodes[0].facts = None;
        let d = decide(&mut dp.knowledge, &nodes, 0, 10);
        assert_eq!(d.master.as_deref(), Some("n-1"), "{d:?}");
        assert_eq!(d.failover.map(|f| f.from), Some("n-0".to_owned()));

        // Without the kept run ids the first-start rule would have trusted n-2 and chosen it.
        let mut fresh = DataPlane::new(None, Duration::from_secs(5));
        let d = decide(&mut fresh.knowledge, &nodes, 0, 10);
        assert_eq!(d.master.as_deref(), Some("n-2"));
    }

    #[test]
    fn a_status_from_before_data_plane_record_keeps_the_first_start_rule() {
        let mut old = kept_status();
        old.data_plane = None;
        let mut dp = DataPlane::new(None, Duration::from_secs(5));
        dp.restore(&old);
        assert_eq!(
            dp.knowledge.master, None,
            "no run id to check the master against"
        );
        let nodes = vec![
            node(0, "a", Role::Master, 500),
            node(1, "b", Role::Replica, 500),
        ];
        let d = decide(&mut dp.knowledge, &nodes, 5000, 0);
        assert_eq!(d.master.as_deref(), Some("n-0"));
        assert_eq!(
            (d.commands, d.failover),
            (vec![], None),
            "adopted, no failover"
        );
    }
}
