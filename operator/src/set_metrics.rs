//! Per-set series from the data plane (`tandem_set_*`, `tandem_replica_*`): phase, ready
//! pods, the master's offset, failovers and switchovers, the bytes a failover put at risk,
//! full syncs served by the master, full syncs seen completing and how long each took, sync-loop adjustments, and each replica's
//! lag and sync state. Updated from the status each reconcile (or local pass) builds, so
//! they say what the status says; counters move when the status records a new event, once.
//! Labels are bounded: the set's namespace and name, the pod, and fixed phase and state
//! words. In-process only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::crd::{Phase, RedisReplicaSetStatus};

/// The set a series belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabels {
    /// Namespace of the RedisReplicaSet (`local` in local mode).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A set's phase, one series per phase word (1 for the current one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Namespace of the set.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Pending, Syncing, Ready, Degraded or FailingOver.
    pub phase: String,
}

/// One replica of a set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodLabels {
    /// Namespace of the set.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The replica's pod (or local node).
    pub pod: String,
}

/// One replica's sync state, one series per state word (1 for the current one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Namespace of the set.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The replica.
    pub pod: String,
    /// wait_bgsave, send_bulk, online, or unknown when the master does not list it.
    pub state: String,
}

const PHASES: [Phase; 5] = [
    Phase::Pending,
    Phase::Syncing,
    Phase::Ready,
    Phase::Degraded,
    Phase::FailingOver,
];

const STATES: [&str; 4] = ["wait_bgsave", "send_bulk", "online", "unknown"];

/// The per-set families.
#[derive(Debug, Default)]
pub struct SetMetrics {
    phase: Family<PhaseLabels, Gauge>,
    ready_pods: Family<SetLabels, Gauge>,
    master_offset: Family<SetLabels, Gauge>,
    failovers: Family<SetLabels, Counter>,
    switchovers: Family<SetLabels, Counter>,
    bytes_at_risk: Family<SetLabels, Gauge>,
    full_syncs: Family<SetLabels, Counter>,
    master_full_syncs: Family<SetLabels, Gauge>,
    sync_loop_adjustments: Family<SetLabels, Gauge>,
    lag: Family<PodLabels, Gauge>,
    full_sync_duration: Family<PodLabels, Gauge>,
    sync_state: Family<StateLabels, Gauge>,
}

impl SetMetrics {
    /// Creates the families and registers them under the `tandem` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem");
        r.register(
            "set_phase",
            "1 for the set's current phase (status.phase)",
            m.phase.clone(),
        );
        r.register(
            "set_ready_pods",
            "Ready pods, master included (status.readyReplicas)",
            m.ready_pods.clone(),
        );
        r.register(
            "set_master_offset_bytes",
            "The master's replication offset (status.masterOffset)",
            m.master_offset.clone(),
        );
        r.register(
            "set_failovers",
            "Automatic failovers recorded in status.lastFailover",
            m.failovers.clone(),
        );
        r.register(
            "set_switchovers",
            "Planned switchovers recorded in status.lastSwitchover",
            m.switchovers.clone(),
        );
        r.register(
            "set_failover_bytes_at_risk",
            "Bytes of write stream the last failover's new master lacked",
            m.bytes_at_risk.clone(),
        );
        r.register(
            "set_full_syncs_completed",
            "Full syncs of replicas completed (a new status.nodes[].lastFullSync)",
            m.full_syncs.clone(),
        );
        r.register(
            "set_master_full_syncs",
            "Full syncs the current master served since it started (status.fullSyncs, its sync_full)",
            m.master_full_syncs.clone(),
        );
        r.register(
            "set_sync_loop_adjustments",
            "Sync-loop adjustments in effect (status.dataPlane.syncLoopAdjustments)",
            m.sync_loop_adjustments.clone(),
        );
        r.register(
            "replica_lag_seconds",
            "Seconds since the replica's last acknowledgement (status.nodes[].lag)",
            m.lag.clone(),
        );
        r.register(
            "replica_last_full_sync_duration_seconds",
            "Duration of the replica's last completed full sync",
            m.full_sync_duration.clone(),
        );
        r.register(
            "replica_sync_state",
            "1 for the replica's current state as the master reports it",
            m.sync_state.clone(),
        );
        m
    }

    /// Brings the series of set `namespace/name` to `new`, counting what `previous` (the
    /// status before, as stored) did not have yet.
    pub fn observe(
        &self,
        namespace: &str,
        name: &str,
        previous: Option<&RedisReplicaSetStatus>,
        new: &RedisReplicaSetStatus,
    ) {
        let set = SetLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        for phase in PHASES {
            self.phase
                .get_or_create(&PhaseLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    phase: format!("{phase:?}"),
                })
                .set(i64::from(phase == new.phase));
        }
        self.ready_pods
            .get_or_create(&set)
            .set(i64::from(new.ready_replicas));
        if let Some(offset) = new.master_offset {
            self.master_offset.get_or_create(&set).set(offset);
        }
        let failovers = self.failovers.get_or_create(&set);
        if new.last_failover.is_some()
            && previous.and_then(|p| p.last_failover.as_ref()) != new.last_failover.as_ref()
        {
            failovers.inc();
        }
        if let Some(f) = &new.last_failover {
            self.bytes_at_risk
                .get_or_create(&set)
                .set(i64::try_from(f.bytes_at_risk).unwrap_or(i64::MAX));
        }
        let switchovers = self.switchovers.get_or_create(&set);
        if new.last_switchover.is_some()
            && previous.and_then(|p| p.last_switchover.as_ref()) != new.last_switchover.as_ref()
        {
            switchovers.inc();
        }
        if let Some(full) = new.full_syncs {
            self.master_full_syncs.get_or_create(&set).set(full);
        }
        self.sync_loop_adjustments.get_or_create(&set).set(
            new.data_plane
                .as_ref()
                .map_or(0, |d| i64::from(d.sync_loop_adjustments)),
        );
        // A pod that left the list (the new master, a removed ordinal) keeps no series.
        for gone in previous
            .iter()
            .flat_map(|p| &p.nodes)
            .filter(|o| !new.nodes.iter().any(|n| n.pod == o.pod))
        {
            let pod = PodLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                pod: gone.pod.clone(),
            };
            self.lag.remove(&pod);
            self.full_sync_duration.remove(&pod);
            for state in STATES {
                self.sync_state.remove(&StateLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    pod: gone.pod.clone(),
                    state: state.to_owned(),
                });
            }
        }
        let full_syncs = self.full_syncs.get_or_create(&set);
        for node in &new.nodes {
            let pod = PodLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                pod: node.pod.clone(),
            };
            if let Some(lag) = node.lag {
                self.lag.get_or_create(&pod).set(lag);
            }
            if let Some(sync) = &node.last_full_sync {
                self.full_sync_duration
                    .get_or_create(&pod)
                    .set(sync.duration_seconds);
                let before = previous
                    .and_then(|p| p.nodes.iter().find(|n| n.pod == node.pod))
                    .and_then(|n| n.last_full_sync.as_ref());
                if before != Some(sync) {
                    full_syncs.inc();
                }
            }
            let current = node.state.as_deref().unwrap_or("unknown");
            for state in STATES {
                self.sync_state
                    .get_or_create(&StateLabels {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        pod: node.pod.clone(),
                        state: state.to_owned(),
                    })
                    .set(i64::from(state == current));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::crd::{FailoverRecord, FullSyncRecord, ReplicaStatus, SyncMode};

    #[test]
    fn each_recorded_event_counts_once_and_gauges_follow_the_status() {
        let mut registry = Registry::default();
        let m = SetMetrics::new(&mut registry);
        let synced = RedisReplicaSetStatus {
            phase: Phase::Ready,
            ready_replicas: 2,
            master_offset: Some(4096),
            nodes: vec![ReplicaStatus {
                pod: "cache-1".to_owned(),
                ready: true,
                state: Some("online".to_owned()),
                link_status: Some("up".to_owned()),
                offset: Some(4096),
                lag: Some(1),
                sync_progress: None,
                last_full_sync: Some(FullSyncRecord {
                    mode: SyncMode::Diskless,
                    started_at: Time(Timestamp::UNIX_EPOCH),
                    duration_seconds: 7,
                    bytes: None,
                }),
            }],
            ..RedisReplicaSetStatus::default()
        };
        m.observe("ns1", "cache", None, &synced);
        m.observe("ns1", "cache", Some(&synced), &synced);
        let failed_over = RedisReplicaSetStatus {
            phase: Phase::FailingOver,
            last_failover: Some(FailoverRecord {
                from: "cache-0".to_owned(),
                to: "cache-1".to_owned(),
                at: Time(Timestamp::UNIX_EPOCH),
                from_offset: 5000,
                to_offset: 4096,
                bytes_at_risk: 904,
                reason: "unreachable".to_owned(),
            }),
            ..synced.clone()
        };
        m.observe("ns1", "cache", Some(&synced), &failed_over);
        m.observe("ns1", "cache", Some(&failed_over), &failed_over);
        let promoted = RedisReplicaSetStatus {
            nodes: Vec::new(),
            full_syncs: Some(3),
            ..failed_over.clone()
        };
        m.observe("ns1", "other", None, &promoted);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for line in [
            "tandem_set_failovers_total{namespace=\"ns1\",name=\"cache\"} 1",
            "tandem_set_switchovers_total{namespace=\"ns1\",name=\"cache\"} 0",
            "tandem_set_full_syncs_completed_total{namespace=\"ns1\",name=\"cache\"} 1",
            "tandem_set_failover_bytes_at_risk{namespace=\"ns1\",name=\"cache\"} 904",
            "tandem_set_phase{namespace=\"ns1\",name=\"cache\",phase=\"FailingOver\"} 1",
            "tandem_set_phase{namespace=\"ns1\",name=\"cache\",phase=\"Ready\"} 0",
            "tandem_replica_lag_seconds{namespace=\"ns1\",name=\"cache\",pod=\"cache-1\"} 1",
            "tandem_replica_last_full_sync_duration_seconds{namespace=\"ns1\",name=\"cache\",pod=\"cache-1\"} 7",
            "tandem_replica_sync_state{namespace=\"ns1\",name=\"cache\",pod=\"cache-1\",state=\"online\"} 1",
            "tandem_set_master_full_syncs{namespace=\"ns1\",name=\"other\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        m.observe("ns1", "cache", Some(&failed_over), &promoted);
        let mut after = String::new();
        encode(&mut after, &registry).expect("encode");
        assert!(
            !after.contains("pod=\"cache-1\""),
            "a pod gone from the list keeps no series:\n{after}"
        );
    }
}
