//! Scenario: raising `datasetSizeHint` past the diskless threshold switches the sync mode to
//! Diskless on every pod, live, and the next full sync is diskless.
//!
//! With persistence, a small dataset syncs through a dump on disk (docs/tuning.md); at 1Gi
//! the policy streams. 64Mi and 1Gi give the same startup budget (its 120 s floor), so the
//! change is pure tuning: no pod template change, no rolling restart. The next full sync is
//! made by adding a pod, which starts with an empty volume.
//!
//! Needs a default StorageClass (kind has one). Cluster test: see e2e/README.md.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use serde_json::json;
use tandem_e2e::redis_cli::RedisCli;
use tandem_e2e::{scenario, set, wait};
use tandem_operator::crd::{PersistenceSpec, RedisReplicaSet, SyncMode};
use tandem_operator::quantity::ByteQuantity;

/// The log line of a diskless full sync (DESIGN.md: the server keeps Redis's phrases).
const DISKLESS_SYNC_LOG: &str = "Starting BGSAVE for SYNC with target: replicas sockets";

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn raising_the_dataset_hint_switches_every_pod_to_diskless_and_the_next_full_sync_streams() {
    scenario::run("diskless", |s| async move {
        let mut spec = set::spec(2, "64Mi");
        spec.persistence = PersistenceSpec {
            enabled: true,
            size: Some(ByteQuantity::new("1Gi")),
            ..PersistenceSpec::default()
        };
        let rrs = set::create_synced(&s, spec).await.expect("fully synced");
        let replication = rrs
            .status
            .as_ref()
            .and_then(|st| st.replication.clone())
            .expect("replication");
        assert_eq!(
            replication.mode,
            SyncMode::Disk,
            "64Mi with persistence: {}",
            replication.reason
        );
        for r in rrs.status.iter().flat_map(|st| &st.nodes) {
            let first = r
                .last_full_sync
                .as_ref()
                .expect("lastFullSync of the first sync");
            assert_eq!(first.mode, SyncMode::Disk, "{}'s first full sync", r.pod);
        }
        let cli = RedisCli::start(&s, &set::auth_secret())
            .await
            .expect("client pod");
        for pod in ["cache-0", "cache-1"] {
            let value = cli
                .config_get(&set::pod_host(pod), "repl-diskless-sync")
                .await
                .expect("CONFIG GET");
            assert_eq!(value, "no", "repl-diskless-sync on {pod} before the change");
        }

        let patched = set::patch_spec(&s, json!({ "datasetSizeHint": "1Gi" }))
            .await
            .expect("raise the hint");
        let generation = patched.metadata.generation;
        let sets: Api<RedisReplicaSet> = s.api();
        let rrs = wait::resource(
            &sets,
            set::NAME,
            "status.replication.mode Diskless for the raised hint",
            s.cluster.settings.ready_timeout,
            |r: &RedisReplicaSet| {
                let status = r.status.as_ref().ok_or("no status")?;
                let mode = status.replication.as_ref().map(|p| p.mode);
                if status.observed_generation >= generation && mode == Some(SyncMode::Diskless) {
                    Ok(())
                } else {
                    Err(format!(
                        "observedGeneration {:?} (want {generation:?}), mode {mode:?}",
                        status.observed_generation
                    ))
                }
            },
        )
        .await
        .expect("mode Diskless");
        let timeout = rrs
            .status
            .and_then(|st| st.replication)
            .map(|p| p.repl_timeout_seconds.to_string())
            .expect("replTimeoutSeconds");

        // Invariant 1: the tuning is on every node, not only the master.
        for pod in ["cache-0", "cache-1"] {
            expect_diskless(&s, &cli, pod, &timeout).await;
        }

        // The next full sync: a new pod starts with an empty volume.
        // Through the scale subresource, as `kubectl scale rrs cache --replicas=3` does.
        let scale = set::scale(&s, 3).await.expect("scale to 3");
        assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
        let rrs = set::wait_fully_synced(&s)
            .await
            .expect("fully synced with 3 pods");
        let master = set::master(&rrs).expect("master").to_owned();
        let status = rrs.status.clone().expect("status");
        let new = status
            .nodes
            .iter()
            .find(|r| r.pod == "cache-2")
            .expect("cache-2 in status.nodes");
        let full_sync = new.last_full_sync.as_ref().expect("cache-2 lastFullSync");
        assert_eq!(
            full_sync.mode,
            SyncMode::Diskless,
            "the new pod's full sync"
        );
        expect_diskless(&s, &cli, "cache-2", &timeout).await;

        let pods: Api<Pod> = s.api();
        let log = pods
            .logs(&master, &LogParams::default())
            .await
            .expect("master log");
        assert!(
            log.contains(DISKLESS_SYNC_LOG),
            "the master {master} logged no diskless full sync ({DISKLESS_SYNC_LOG:?})"
        );
    })
    .await;
}

/// Polls until the pod runs with diskless sync and the status's repl-timeout: CONFIG SET is
/// live but reaches each pod in turn.
async fn expect_diskless(s: &scenario::Scenario, cli: &RedisCli, pod: &str, repl_timeout: &str) {
    let host = set::pod_host(pod);
    wait::poll(
        &format!("repl-diskless-sync yes and repl-timeout {repl_timeout} on {pod}"),
        s.cluster.settings.ready_timeout,
        || async {
            let sync = cli
                .config_get(&host, "repl-diskless-sync")
                .await
                .map_err(|e| e.to_string())?;
            let timeout = cli
                .config_get(&host, "repl-timeout")
                .await
                .map_err(|e| e.to_string())?;
            if sync == "yes" && timeout == repl_timeout {
                Ok(())
            } else {
                Err(format!("repl-diskless-sync {sync}, repl-timeout {timeout}"))
            }
        },
    )
    .await
    .expect("tuning applied");
}
