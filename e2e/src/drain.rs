//! `kubectl drain` of one node, as far as the set goes: cordon it (no new pod lands there),
//! evict the set's pods on it through the Eviction API, all at once and each retried every
//! second while the PodDisruptionBudget refuses it (HTTP 429), as kubectl does, and wait
//! until they are gone. Other pods on the node (the client pod, the operator, the cluster's
//! own) are left where they are: the scenario is about the set, and an operator restart has
//! a scenario of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::EvictParams;
use kube::{Api, ResourceExt};

use crate::scenario::Scenario;
use crate::{Error, set, wait};

/// One pod the drain evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evicted {
    /// Pod name (the StatefulSet recreates a pod under the same name).
    pub pod: String,
    /// UID of the evicted pod, to tell it from its successor.
    pub uid: String,
    /// Times the PodDisruptionBudget refused the eviction before accepting it.
    pub refusals: u32,
}

/// The node a pod is scheduled on; `None` before the scheduler placed it.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Cordons `node` and evicts the set's pods on it; returns once every evicted pod is gone
/// (deleted, or replaced by a new pod under its name). `timeout` bounds each eviction's
/// wait for the budget and the wait for the pods to go.
///
/// # Errors
/// The cordon or a listing failed, an eviction was not accepted in time, or an evicted pod
/// was still there at the deadline.
pub async fn drain(
    scenario: &Scenario,
    node: &str,
    timeout: Duration,
) -> Result<Vec<Evicted>, Error> {
    scenario.cordon(node).await?;
    let on_node: Vec<Pod> = set::pods(scenario)
        .await?
        .into_iter()
        .filter(|p| node_of(p) == Some(node))
        .collect();
    let pods: Api<Pod> = scenario.api();
    let evicted = try_join_all(on_node.iter().map(|pod| {
        let pods = pods.clone();
        async move {
            let name = pod.name_any();
            let refusals = evict(&pods, &name, timeout).await?;
            Ok::<_, Error>(Evicted {
                uid: pod.uid().unwrap_or_default(),
                pod: name,
                refusals,
            })
        }
    }))
    .await?;
    wait::poll("the evicted pods to be gone", timeout, || async {
        for e in &evicted {
            let now = pods.get_opt(&e.pod).await.map_err(|err| err.to_string())?;
            if now.as_ref().and_then(|p| p.uid()).as_deref() == Some(e.uid.as_str()) {
                return Err(format!("{} (uid {}) is still there", e.pod, e.uid));
            }
        }
        Ok(())
    })
    .await?;
    Ok(evicted)
}

/// Evicts pod `name`, retrying while the budget refuses (429), until `timeout`; a pod
/// already gone (404) counts as evicted. Returns the number of refusals.
async fn evict(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<u32, Error> {
    let refusals = AtomicU32::new(0);
    wait::poll(
        &format!("the eviction of {name} to be accepted"),
        timeout,
        || async {
            match pods.evict(name, &EvictParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    refusals.fetch_add(1, Ordering::Relaxed);
                    Err(format!("refused (429): {}", status.message))
                }
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(refusals.into_inner())
}
