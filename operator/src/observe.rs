//! What the set's pods look like through the Kubernetes API: readiness, the role label and
//! the revision each was made from. Pure: the drive step of the reconcile lists the pods.
//!
//! Replication facts from the servers themselves (INFO replication: sync state, offsets,
//! lag) belong to the data plane, which extends [`Observation`] without changing the steps
//! around it.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::resources::{ROLE_LABEL, ROLE_MASTER};
use crate::server_config::RESTART_HASH_ANNOTATION;

/// One pod as seen through the Kubernetes API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodObservation {
    /// Pod name.
    pub name: String,
    /// The Ready condition is True.
    pub ready: bool,
    /// The pod carries `tandem.dev/role: master`.
    pub master: bool,
    /// The pod's `tandem.dev/role` label, if any.
    pub role: Option<String>,
    /// The StatefulSet revision it was created from (`controller-revision-hash`).
    pub revision: Option<String>,
    /// The digest of the restart-needing serverConfig directives it was created with
    /// ([`crate::server_config::RESTART_HASH_ANNOTATION`]).
    pub restart_config: Option<String>,
}

/// The pods of one set, in ordinal order (`cache-2` before `cache-10`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Every pod of the set that is not being deleted.
    pub pods: Vec<PodObservation>,
    /// Pods being deleted (deletion timestamp set: a drain, an eviction, `kubectl delete`):
    /// a master among them is switched over while it still serves.
    pub terminating: Vec<String>,
}

impl Observation {
    /// Builds the observation from listed pods; pods being deleted no longer count.
    pub fn from_pods(pods_in: &[Pod]) -> Self {
        let mut pods: Vec<PodObservation> = pods_in
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| PodObservation {
                name: p.name_any(),
                ready: is_ready(p),
                master: p.labels().get(ROLE_LABEL).map(String::as_str) == Some(ROLE_MASTER),
                role: p.labels().get(ROLE_LABEL).cloned(),
                revision: p.labels().get(REVISION_LABEL).cloned(),
                restart_config: p.annotations().get(RESTART_HASH_ANNOTATION).cloned(),
            })
            .collect();
        pods.sort_by(|a, b| ordinal_key(&a.name).cmp(&ordinal_key(&b.name)));
        let terminating = pods_being_deleted(pods_in);
        Self { pods, terminating }
    }

    /// The master pod, when exactly one pod holds the role. Two masters is a split the
    /// data plane must resolve; until then no pod is reported as master.
    pub fn master(&self) -> Option<&PodObservation> {
        let mut masters = self.pods.iter().filter(|p| p.master);
        match (masters.next(), masters.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }

    /// Number of ready pods.
    pub fn ready_count(&self) -> usize {
        self.pods.iter().filter(|p| p.ready).count()
    }
}

/// The label the StatefulSet controller puts on each pod: the revision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// StatefulSet pods are `<set>-<ordinal>`; ordering by the number keeps `-10` after `-9`.
fn ordinal_key(name: &str) -> (&str, u64, &str) {
    match name.rsplit_once('-') {
        Some((prefix, ordinal)) => match ordinal.parse() {
            Ok(n) => (prefix, n, ""),
            Err(_) => (name, 0, name),
        },
        None => (name, 0, name),
    }
}

fn pods_being_deleted(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(ResourceExt::name_any)
        .collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, role: Option<&str>, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": role.map(|r| serde_json::json!({ ROLE_LABEL: r })).unwrap_or_default(),
                "deletionTimestamp": deleting.then_some("2026-01-01T00:00:00Z"),
            },
            "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
        }))
        .expect("pod")
    }

    #[test]
    fn reads_readiness_and_role() {
        let o = Observation::from_pods(&[
            pod("cache-1", false, Some("replica"), false),
            pod("cache-0", true, Some("master"), false),
            pod("cache-2", true, None, true),
        ]);
        assert_eq!(o.pods.len(), 2, "a pod being deleted does not count");
        assert_eq!(o.terminating, ["cache-2"], "but is known to be leaving");
        assert_eq!(o.pods[0].name, "cache-0");
        assert_eq!(o.master().map(|m| m.name.as_str()), Some("cache-0"));
        assert_eq!(o.ready_count(), 1);
    }

    #[test]
    fn ordinal_order() {
        let o = Observation::from_pods(&[
            pod("cache-10", true, None, false),
            pod("cache-2", true, None, false),
            pod("cache-0", true, None, false),
        ]);
        let names: Vec<&str> = o.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cache-0", "cache-2", "cache-10"]);
    }

    #[test]
    fn two_masters_is_no_master() {
        let o = Observation::from_pods(&[
            pod("a", true, Some("master"), false),
            pod("b", true, Some("master"), false),
        ]);
        assert_eq!(o.master(), None);
    }
}
