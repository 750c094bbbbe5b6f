//! What a failed scenario leaves on stderr: the sets' status, the pods with their roles,
//! the namespace's events, the tail of every server's log and of the operator's. Best effort:
//! a failing call is reported and the dump goes on.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::resources::ROLE_LABEL;

use crate::cluster::Cluster;

/// Log lines shown per server pod.
const SERVER_LOG_LINES: i64 = 60;

/// Log lines shown per operator pod.
const OPERATOR_LOG_LINES: i64 = 150;

/// Prints the state of namespace `ns` to stderr. Takes the cluster and the namespace, not
/// the scenario, so that the scenario runner can call it without an import circle.
pub async fn dump(cluster: &Cluster, ns: &str) {
    eprintln!("===== diagnostics of namespace {ns}");

    let sets: Api<RedisReplicaSet> = Api::namespaced(cluster.client.clone(), ns);
    match sets.list(&ListParams::default()).await {
        Ok(list) => {
            for set in list {
                let status = serde_json::to_string_pretty(&set.status).unwrap_or_default();
                eprintln!(
                    "--- RedisReplicaSet {} (generation {:?}) status:\n{status}",
                    set.name_any(),
                    set.metadata.generation
                );
            }
        }
        Err(e) => eprintln!("cannot list RedisReplicaSets: {e}"),
    }

    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let pod_list = match pods.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            eprintln!("cannot list pods: {e}");
            Vec::new()
        }
    };
    eprintln!("--- pods");
    for pod in &pod_list {
        let status = pod.status.clone().unwrap_or_default();
        let restarts: i32 = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum();
        eprintln!(
            "{} phase={:?} role={:?} restarts={restarts} deleting={}",
            pod.name_any(),
            status.phase,
            pod.labels().get(ROLE_LABEL),
            pod.metadata.deletion_timestamp.is_some()
        );
    }

    let events: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            eprintln!("--- events");
            let mut items = list.items;
            items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
            for e in items {
                eprintln!(
                    "{:?} {} {}/{}: {} {}",
                    e.last_timestamp.map(|t| t.0.to_string()),
                    e.type_.unwrap_or_default(),
                    e.involved_object.kind.unwrap_or_default(),
                    e.involved_object.name.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                );
            }
        }
        Err(e) => eprintln!("cannot list events: {e}"),
    }

    for pod in &pod_list {
        print_logs(&pods, &pod.name_any(), SERVER_LOG_LINES).await;
    }

    let settings = &cluster.settings;
    let operator_pods: Api<Pod> =
        Api::namespaced(cluster.client.clone(), &settings.operator_namespace);
    match operator_pods
        .list(&ListParams::default().labels(&settings.operator_selector))
        .await
    {
        Ok(list) => {
            for pod in list {
                print_logs(&operator_pods, &pod.name_any(), OPERATOR_LOG_LINES).await;
            }
        }
        Err(e) => eprintln!("cannot list operator pods: {e}"),
    }
    eprintln!("===== end of diagnostics of namespace {ns}");
}

async fn print_logs(pods: &Api<Pod>, name: &str, lines: i64) {
    let params = LogParams {
        tail_lines: Some(lines),
        ..LogParams::default()
    };
    match pods.logs(name, &params).await {
        Ok(text) => eprintln!("--- last {lines} log lines of {name}\n{text}"),
        Err(e) => eprintln!("--- cannot read the log of {name}: {e}"),
    }
}
