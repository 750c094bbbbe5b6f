//! The Kubernetes side of the [`Nodes`] seam: a StatefulSet's pods, addressed by their
//! stable DNS names (never pod IPs, which change on every restart), with the role label
//! moved by a merge patch so the master and replicas Services follow. It starts nothing
//! (the StatefulSet restarts pods) and talks to no server (the engine does).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::info;

use super::engine::Nodes;
use super::roles::NodeAddr;
use crate::observe::Observation;
use crate::resources::{ROLE_LABEL, ROLE_MASTER, ROLE_REPLICA, SERVER_PORT, names};

/// Turns a pod's stable DNS name into the address the operator dials. In a cluster that is
/// the name itself on the server port ([`dns`]); tests map names to local servers.
pub type Resolve = Arc<dyn Fn(&str) -> NodeAddr + Send + Sync>;

/// The resolver used in a cluster: the DNS name on the server port.
pub fn dns() -> Resolve {
    Arc::new(|host: &str| NodeAddr {
        host: host.to_owned(),
        port: u16::try_from(SERVER_PORT).unwrap_or(6379),
    })
}

/// Moving the role label failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to label pod {pod}: {source}")]
pub struct LabelError {
    /// The pod.
    pub pod: String,
    /// API error.
    #[source]
    pub source: kube::Error,
}

/// The pods of one set.
pub struct PodNodes {
    api: Api<Pod>,
    set: String,
    namespace: String,
    replicas: u32,
    /// Role label of every existing pod, as observed and then as patched.
    roles: BTreeMap<String, Option<String>>,
    resolve: Resolve,
}

impl PodNodes {
    /// The `replicas` pods of set `set`; `observation` says which exist and how they are
    /// labelled now.
    pub fn new(
        api: Api<Pod>,
        set: &str,
        namespace: &str,
        replicas: u32,
        observation: &Observation,
        resolve: Resolve,
    ) -> Self {
        Self {
            api,
            set: set.to_owned(),
            namespace: namespace.to_owned(),
            replicas,
            roles: observation
                .pods
                .iter()
                .map(|p| (p.name.clone(), p.role.clone()))
                .collect(),
            resolve,
        }
    }

    /// Labels `master` as master and every other existing pod as replica, patching only the
    /// pods whose label differs; replicas first, so the master Service never selects two
    /// pods. A pod that does not exist yet gets its label once it does.
    ///
    /// # Errors
    /// A patch failed.
    pub async fn label_roles(&mut self, master: &str) -> Result<(), LabelError> {
        let mut order: Vec<String> = self
            .roles
            .keys()
            .filter(|p| *p != master)
            .cloned()
            .collect();
        if self.roles.contains_key(master) {
            order.push(master.to_owned());
        }
        for pod in order {
            let role = if pod == master {
                ROLE_MASTER
            } else {
                ROLE_REPLICA
            };
            if self.roles.get(&pod).and_then(Option::as_deref) == Some(role) {
                continue;
            }
            let patch = json!({ "metadata": { "labels": { ROLE_LABEL: role } } });
            self.api
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|source| LabelError {
                    pod: pod.clone(),
                    source,
                })?;
            info!(pod = %pod, role, "labelled");
            self.roles.insert(pod, Some(role.to_owned()));
        }
        Ok(())
    }
}

impl Nodes for PodNodes {
    type Error = LabelError;

    /// Every ordinal the StatefulSet should run, existing or not: a master whose pod is
    /// gone is still down, and its down-after clock keeps running.
    async fn list(&mut self) -> Result<Vec<(String, NodeAddr)>, LabelError> {
        Ok((0..self.replicas)
            .map(|i| {
                let pod = format!("{}-{i}", names::statefulset(&self.set));
                let addr = (self.resolve)(&names::pod_host(&self.set, &self.namespace, &pod));
                (pod, addr)
            })
            .collect())
    }

    async fn ensure_running(
        &mut self,
        _master: Option<&NodeAddr>,
    ) -> Result<Vec<String>, LabelError> {
        Ok(Vec::new())
    }

    async fn publish_master(&mut self, master: &str) -> Result<(), LabelError> {
        self.label_roles(master).await
    }
}
