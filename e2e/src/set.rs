//! The `RedisReplicaSet` under test: building it from the operator's own types, creating and
//! patching it, and the predicates the scenarios wait on, written against the status
//! contract (docs/status.md).
//!
//! Predicates are pure (`&RedisReplicaSet` in, what is missing out) and unit-tested here;
//! everything that calls the API takes a [`Scenario`].

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tandem_operator::crd::{Phase, RedisReplicaSet, RedisReplicaSetSpec, RedisReplicaSetStatus};
use tandem_operator::resources::{ROLE_LABEL, ROLE_MASTER, ROLE_REPLICA, names, pod_selector};

use crate::error::Context;
use crate::scenario::Scenario;
use crate::{Error, wait};

/// Name of the set every scenario creates (one per namespace).
pub const NAME: &str = "cache";

/// A spec with `replicas` pods and the dataset hint, everything else defaulted as the API
/// server would (through the CRD types' own serde defaults).
///
/// # Panics
/// Never for a valid quantity; the spec types decide.
pub fn spec(replicas: i32, dataset_size_hint: &str) -> RedisReplicaSetSpec {
    serde_json::from_value(json!({
        "replicas": replicas,
        "datasetSizeHint": dataset_size_hint,
    }))
    .expect("a minimal spec deserializes")
}

/// The set named [`NAME`] with `spec`, using the run's server image when one is set.
pub fn resource(scenario: &Scenario, mut spec: RedisReplicaSetSpec) -> RedisReplicaSet {
    if let Some(image) = &scenario.cluster.settings.server_image {
        spec.image = Some(image.clone());
    }
    RedisReplicaSet::new(NAME, spec)
}

/// Creates the set.
///
/// # Errors
/// What the API server says, including schema rejections (see the validation scenario).
pub async fn create(scenario: &Scenario, set: &RedisReplicaSet) -> Result<RedisReplicaSet, Error> {
    scenario
        .api::<RedisReplicaSet>()
        .create(&PostParams::default(), set)
        .await
        .context(|| format!("creating RedisReplicaSet {}", set.name_any()))
}

/// Merge-patches the spec of the set [`NAME`] (`spec` is the JSON of the changed fields).
///
/// # Errors
/// What the API server says.
pub async fn patch_spec(
    scenario: &Scenario,
    spec: serde_json::Value,
) -> Result<RedisReplicaSet, Error> {
    scenario
        .api::<RedisReplicaSet>()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .context(|| format!("patching the spec of {NAME} with {spec}"))
}

/// Scales the set through its scale subresource, as `kubectl scale rrs` and a
/// HorizontalPodAutoscaler do; returns the Scale the API answered.
///
/// # Errors
/// The patch failed (for example, no scale subresource in the installed CRD).
pub async fn scale(scenario: &Scenario, replicas: i32) -> Result<Scale, Error> {
    scenario
        .api::<RedisReplicaSet>()
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
        )
        .await
        .context(|| format!("scaling {NAME} to {replicas} through the scale subresource"))
}

/// Creates the set and waits until it is fully synced: the start of most scenarios.
///
/// # Errors
/// As [`create`] and [`wait_fully_synced`].
pub async fn create_synced(
    scenario: &Scenario,
    spec: RedisReplicaSetSpec,
) -> Result<RedisReplicaSet, Error> {
    create(scenario, &resource(scenario, spec)).await?;
    wait_fully_synced(scenario).await
}

/// Waits until [`fully_synced`] holds for the set [`NAME`], within the run's ready timeout.
///
/// # Errors
/// [`Error::Timeout`] naming what was still missing.
pub async fn wait_fully_synced(scenario: &Scenario) -> Result<RedisReplicaSet, Error> {
    wait::resource(
        &scenario.api(),
        NAME,
        "the set to be Available with every replica online",
        scenario.cluster.settings.ready_timeout,
        fully_synced,
    )
    .await
}

/// The steady state the status contract promises: the status describes the current spec,
/// phase Ready, Available=True, one master, every other pod listed, ready, `online` as the
/// master sees it, link `up` as it sees itself, with an acknowledged offset.
///
/// # Errors
/// A sentence saying what does not hold yet.
pub fn fully_synced(set: &RedisReplicaSet) -> Result<(), String> {
    let status = set.status.as_ref().ok_or("no status yet")?;
    if status.observed_generation != set.metadata.generation {
        return Err(format!(
            "status describes generation {:?}, spec is at {:?}",
            status.observed_generation, set.metadata.generation
        ));
    }
    if status.phase != Phase::Ready {
        return Err(format!("phase {:?}", status.phase));
    }
    let available = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .map(|c| c.status.as_str());
    if available != Some("True") {
        return Err(format!("Available is {available:?}"));
    }
    let master = status.master.as_deref().ok_or("no master")?;
    if status.ready_replicas != set.spec.replicas {
        return Err(format!(
            "{} of {} pods ready",
            status.ready_replicas, set.spec.replicas
        ));
    }
    if status.replication.is_none() {
        return Err("no status.replication".to_owned());
    }
    let expected = usize::try_from(set.spec.replicas - 1).unwrap_or(0);
    if status.nodes.len() != expected {
        return Err(format!(
            "{} entries in status.nodes, {expected} expected",
            status.nodes.len()
        ));
    }
    for r in &status.nodes {
        if r.pod == master {
            return Err(format!("the master {master} is listed as a replica"));
        }
        let synced = r.ready
            && r.state.as_deref() == Some("online")
            && r.link_status.as_deref() == Some("up")
            && r.offset.is_some();
        if !synced {
            return Err(format!(
                "replica {} ready={} state={:?} linkStatus={:?} offset={:?}",
                r.pod, r.ready, r.state, r.link_status, r.offset
            ));
        }
    }
    Ok(())
}

/// The status without what moves on its own in a healthy set (offsets and lags advance with
/// every write and replication PING): what is left changes only when something happens (a
/// failover, a resync, a restart, a condition flip, a tuning change).
pub fn stable_status(status: &RedisReplicaSetStatus) -> RedisReplicaSetStatus {
    let mut stable = status.clone();
    stable.master_offset = None;
    for r in &mut stable.nodes {
        r.offset = None;
        r.lag = None;
    }
    stable
}

/// The master named by the status.
pub fn master(set: &RedisReplicaSet) -> Option<&str> {
    set.status.as_ref()?.master.as_deref()
}

/// Pod name of ordinal `i`.
pub fn pod_name(i: i32) -> String {
    format!("{}-{i}", names::statefulset(NAME))
}

/// Ordinal of a pod of the set, from its name.
pub fn ordinal(pod: &str) -> Option<i32> {
    pod.strip_prefix(&format!("{}-", names::statefulset(NAME)))?
        .parse()
        .ok()
}

/// A pod's stable DNS name through the headless Service, from the same namespace.
pub fn pod_host(pod: &str) -> String {
    format!("{pod}.{}", names::headless_service(NAME))
}

/// The master Service: what clients write to.
pub fn master_host() -> String {
    names::master_service(NAME)
}

/// The replicas Service: reads.
pub fn replicas_host() -> String {
    names::replicas_service(NAME)
}

/// The auth Secret the operator creates when the spec names none.
pub fn auth_secret() -> String {
    format!("{NAME}-auth")
}

/// The set's pods, in ordinal order.
///
/// # Errors
/// What the API server says.
pub async fn pods(scenario: &Scenario) -> Result<Vec<Pod>, Error> {
    let mut pods = scenario
        .api::<Pod>()
        .list(&ListParams::default().labels(&pod_selector(NAME)))
        .await
        .context(|| format!("listing the pods of {NAME}"))?
        .items;
    pods.sort_by_key(|p| ordinal(&p.name_any()));
    Ok(pods)
}

/// The pod's role label.
pub fn role(pod: &Pod) -> Option<&str> {
    pod.labels().get(ROLE_LABEL).map(String::as_str)
}

/// The roles agree with the status: exactly the status's master is labelled master, every
/// other live pod replica.
///
/// # Errors
/// Which pod disagrees.
pub fn roles_match(set: &RedisReplicaSet, pods: &[Pod]) -> Result<(), String> {
    let master = master(set).ok_or("no master in status")?;
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.name_any();
        let want = if name == master {
            ROLE_MASTER
        } else {
            ROLE_REPLICA
        };
        if role(pod) != Some(want) {
            return Err(format!(
                "pod {name} has role {:?}, {want} expected",
                role(pod)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: &str) -> RedisReplicaSet {
        serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{ name: cache, generation: 2 }}\nspec: {{ replicas: 3, datasetSizeHint: 1Gi }}\nstatus:\n{status}"
        ))
        .expect("test resource")
    }

    const SYNCED: &str = r"
  observedGeneration: 2
  phase: Ready
  master: cache-0
  readyReplicas: 3
  replication: { mode: Diskless, replTimeoutSeconds: 120, disklessSyncDelaySeconds: 5, clientOutputBufferLimit: replica 268435456 0 0, backlogSize: 64Mi, disklessLoad: disabled, minReplicasToWrite: 0, reason: r }
  nodes:
  - { pod: cache-1, ready: true, state: online, linkStatus: up, offset: 100, lag: 0 }
  - { pod: cache-2, ready: true, state: online, linkStatus: up, offset: 100, lag: 1 }
  conditions:
  - { type: Available, status: 'True', reason: MasterReady, message: m, lastTransitionTime: '2026-01-01T00:00:00Z' }
";

    #[test]
    fn a_synced_status_is_fully_synced_and_each_gap_is_named() {
        assert_eq!(fully_synced(&with_status(SYNCED)), Ok(()));
        let cases = [
            (
                "observedGeneration: 2",
                "observedGeneration: 1",
                "generation",
            ),
            ("phase: Ready", "phase: Syncing", "Syncing"),
            (
                "state: online, linkStatus: up, offset: 100, lag: 1",
                "state: send_bulk, linkStatus: up, offset: 100, lag: 1",
                "cache-2",
            ),
            (
                "linkStatus: up, offset: 100, lag: 0",
                "linkStatus: down, offset: 100, lag: 0",
                "cache-1",
            ),
            ("status: 'True'", "status: 'False'", "Available"),
            ("readyReplicas: 3", "readyReplicas: 2", "2 of 3"),
        ];
        for (from, to, named) in cases {
            let status = SYNCED.replacen(from, to, 1);
            assert_ne!(status, SYNCED, "{from} not in the fixture");
            let why = fully_synced(&with_status(&status)).expect_err(to);
            assert!(why.contains(named), "{to}: {why}");
        }
        let missing_replica = SYNCED.replacen(
            "  - { pod: cache-2, ready: true, state: online, linkStatus: up, offset: 100, lag: 1 }\n",
            "",
            1,
        );
        assert!(fully_synced(&with_status(&missing_replica)).is_err());
    }

    #[test]
    fn stable_status_ignores_offsets_and_lags_only() {
        let a = with_status(SYNCED).status.expect("status");
        let moved = with_status(&SYNCED.replace("offset: 100, lag: 1", "offset: 900, lag: 3"))
            .status
            .expect("status");
        assert_ne!(a, moved);
        assert_eq!(stable_status(&a), stable_status(&moved));
        let failed_over = with_status(&SYNCED.replace("master: cache-0", "master: cache-1"))
            .status
            .expect("status");
        assert_ne!(stable_status(&a), stable_status(&failed_over));
    }

    #[test]
    fn names_follow_the_operator() {
        assert_eq!(pod_name(2), "cache-2");
        assert_eq!(ordinal("cache-12"), Some(12));
        assert_eq!(ordinal("other-1"), None);
        assert_eq!(pod_host("cache-1"), "cache-1.cache-headless");
        assert_eq!(master_host(), "cache");
        assert_eq!(replicas_host(), "cache-replicas");
    }
}
