//! Scenario: restarting the operator (deleting every operator pod) changes nothing in a
//! healthy set: no failover, no resync, no status churn.
//!
//! "Nothing changed" is checked three ways over the whole restart, from before the deletion
//! until the new leader has finished a reconcile of every set in the cluster (its
//! `tandem_operator_reconcile_duration_seconds_count` metric, read through the API server's
//! pod proxy): every version of the status the watch sees equals the one before, offsets
//! and lags aside (they advance on their own); the pods keep their UIDs and roles; and each
//! server keeps its replication ID (a REPLICAOF NO ONE or a resync would change it).
//!
//! It deletes the operator's pods, so it must not run beside other scenarios (run-kind.sh
//! uses --test-threads=1). Cluster test: see e2e/README.md.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tandem_e2e::redis_cli::RedisCli;
use tandem_e2e::{operator, scenario, set, wait};
use tandem_operator::crd::{RedisReplicaSet, RedisReplicaSetStatus};

/// Metric counting finished reconciles (a Prometheus histogram's count).
const RECONCILES_DONE: &str = "tandem_operator_reconcile_duration_seconds_count";

/// Metric that is 1 on the replica holding the leader Lease.
const LEADER: &str = "tandem_operator_leader";

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn an_operator_restart_causes_no_failover_and_no_status_churn() {
    scenario::run("restart", |s| async move {
        let before = set::create_synced(&s, set::spec(3, "64Mi")).await.expect("fully synced");
        let status_before = before.status.clone().expect("status");
        let cli = RedisCli::start(&s, &set::auth_secret()).await.expect("client pod");
        let pods_before = pod_roles(&s).await;
        let replids_before = replication_ids(&s, &cli).await;

        let old_operators = operator::pods(&s.cluster).await.expect("operator pods");
        assert!(
            !old_operators.is_empty(),
            "no operator pods match {} in namespace {} (set TANDEM_E2E_OPERATOR_NAMESPACE / TANDEM_E2E_OPERATOR_SELECTOR)",
            s.cluster.settings.operator_selector,
            s.cluster.settings.operator_namespace
        );
        let old_names: BTreeSet<String> = old_operators.iter().map(ResourceExt::name_any).collect();

        // Every version of the set from here on.
        let sets: Api<RedisReplicaSet> = s.api();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let config = watcher::Config::default().fields(&format!("metadata.name={}", set::NAME));
        let seen = tokio::spawn(async move {
            let mut versions: Vec<RedisReplicaSetStatus> = Vec::new();
            let mut ready = Some(ready_tx);
            let mut events = std::pin::pin!(watcher(sets, config).default_backoff());
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    event = events.next() => match event {
                        Some(Ok(watcher::Event::InitDone)) => {
                            if let Some(tx) = ready.take() {
                                tx.send(()).ok();
                            }
                        }
                        Some(Ok(watcher::Event::Apply(rrs) | watcher::Event::InitApply(rrs))) => {
                            versions.push(rrs.status.unwrap_or_default());
                        }
                        Some(Ok(watcher::Event::Delete(_))) => versions.push(RedisReplicaSetStatus::default()),
                        Some(Ok(watcher::Event::Init)) | Some(Err(_)) => {}
                        None => break,
                    }
                }
            }
            versions
        });
        ready_rx.await.expect("the set watch lists the set");

        let operator_pods = operator::pods_api(&s.cluster);
        for name in &old_names {
            operator_pods
                .delete(name, &DeleteParams::default())
                .await
                .expect("delete an operator pod");
        }
        let all_sets: Api<RedisReplicaSet> = Api::all(s.cluster.client.clone());
        wait::poll(
            "a new operator leader that finished a reconcile of every set",
            s.cluster.settings.ready_timeout,
            || async {
                let sets_in_cluster = all_sets
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .len();
                let sets_in_cluster = u32::try_from(sets_in_cluster).unwrap_or(u32::MAX);
                let new: Vec<Pod> = operator::pods(&s.cluster)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|p| !old_names.contains(&p.name_any()) && operator::is_ready(p))
                    .collect();
                if new.len() < old_names.len() {
                    return Err(format!("{} of {} new operator pods ready", new.len(), old_names.len()));
                }
                for pod in &new {
                    let leader = operator::metric(&s.cluster, pod, LEADER).await.map_err(|e| e.to_string())?;
                    let done = operator::metric(&s.cluster, pod, RECONCILES_DONE).await.map_err(|e| e.to_string())?;
                    // Without leader election there is no leader gauge: the only pod acts.
                    let acts = leader.is_none_or(|v| v >= 1.0);
                    if acts && done.is_some_and(|d| d >= f64::from(sets_in_cluster)) {
                        return Ok(());
                    }
                }
                Err(format!("no new leader has finished {sets_in_cluster} reconciles yet"))
            },
        )
        .await
        .expect("the operator is back");
        stop.send(()).ok();
        let versions = seen.await.expect("the set watch");

        let stable_before = set::stable_status(&status_before);
        for (i, status) in versions.iter().enumerate() {
            assert_eq!(
                set::stable_status(status),
                stable_before,
                "status version {i} of {} differs from the one before the restart",
                versions.len()
            );
        }
        let after = set::wait_fully_synced(&s).await.expect("still fully synced");
        assert_eq!(set::master(&after), set::master(&before), "the master changed");
        assert_eq!(pod_roles(&s).await, pods_before, "pods replaced or roles moved");
        assert_eq!(replication_ids(&s, &cli).await, replids_before, "a server changed replication ID");
    })
    .await;
}

/// Each pod's UID and role label.
async fn pod_roles(s: &scenario::Scenario) -> BTreeMap<String, (String, Option<String>)> {
    set::pods(s)
        .await
        .expect("pods")
        .iter()
        .map(|p| {
            (
                p.name_any(),
                (p.uid().unwrap_or_default(), set::role(p).map(str::to_owned)),
            )
        })
        .collect()
}

/// Each server's replication ID as it reports it: `master_replid`, which a replica takes from
/// its master.
async fn replication_ids(s: &scenario::Scenario, cli: &RedisCli) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for pod in set::pods(s).await.expect("pods") {
        let name = pod.name_any();
        let info = cli
            .info(&set::pod_host(&name))
            .await
            .expect("INFO replication");
        ids.insert(name, info.get("master_replid").cloned().unwrap_or_default());
    }
    ids
}
