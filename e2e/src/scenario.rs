//! One scenario, one namespace: created with a generated name before the scenario runs,
//! deleted after it (unless `TANDEM_E2E_KEEP=1`), with the namespace's state dumped to
//! stderr first when the scenario fails, so the evidence outlives the deletion. A node the
//! scenario cordoned (a drain) is uncordoned then too, pass or fail: nodes outlive
//! namespaces, and a cordoned node would starve the scenarios after it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource};

use crate::Error;
use crate::cluster::{Cluster, connect};
use crate::diagnostics;
use crate::error::Context;

/// Label on every namespace the suite creates, to find leftovers.
pub const NAMESPACE_LABEL: &str = "tandem.dev/e2e";

/// The running scenario: the cluster and its own namespace.
#[derive(Clone)]
pub struct Scenario {
    /// The cluster under test.
    pub cluster: Cluster,
    /// The namespace created for this scenario.
    pub namespace: String,
    /// Nodes cordoned by this scenario and not uncordoned yet.
    cordoned: Arc<Mutex<BTreeSet<String>>>,
}

impl Scenario {
    /// An API of a namespaced kind, in this scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.cluster.client.clone(), &self.namespace)
    }

    /// Cordons `node` (`kubectl cordon`: no new pod is scheduled there), remembered so that
    /// the scenario's end uncordons it even when the scenario fails.
    ///
    /// # Errors
    /// What the API server says.
    pub async fn cordon(&self, node: &str) -> Result<(), Error> {
        self.cordoned_nodes().insert(node.to_owned());
        self.nodes()
            .cordon(node)
            .await
            .context(|| format!("cordoning node {node}"))?;
        Ok(())
    }

    /// Uncordons `node` (`kubectl uncordon`).
    ///
    /// # Errors
    /// What the API server says; the node stays on the list for the scenario's end.
    pub async fn uncordon(&self, node: &str) -> Result<(), Error> {
        self.nodes()
            .uncordon(node)
            .await
            .context(|| format!("uncordoning node {node}"))?;
        self.cordoned_nodes().remove(node);
        Ok(())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.cluster.client.clone())
    }

    fn cordoned_nodes(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic elsewhere while holding the lock leaves the set as it was: still usable.
        self.cordoned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `body` in a fresh namespace named `tandem-e2e-<name>-<suffix>`.
///
/// # Panics
/// When no cluster is reachable (with the reason and how to get one), when the namespace
/// cannot be created, and when `body` panics (after the dump and cleanup).
pub async fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Scenario) -> Fut,
    Fut: Future<Output = ()>,
{
    let cluster = match connect().await {
        Ok(cluster) => cluster,
        Err(e) => panic!("scenario {name} needs a Kubernetes cluster: {e}"),
    };
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let created = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    generate_name: Some(format!("tandem-e2e-{name}-")),
                    labels: Some(BTreeMap::from([(
                        NAMESPACE_LABEL.to_owned(),
                        name.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("creating the namespace of scenario {name}: {e}"));
    let namespace = created
        .metadata
        .name
        .expect("the API server names a generateName namespace");
    eprintln!("scenario {name}: namespace {namespace}");
    let scenario = Scenario {
        cluster: cluster.clone(),
        namespace: namespace.clone(),
        cordoned: Arc::default(),
    };

    let outcome = AssertUnwindSafe(body(scenario.clone()))
        .catch_unwind()
        .await;

    if outcome.is_err() {
        diagnostics::dump(&cluster, &namespace).await;
    }
    let left_cordoned: Vec<String> = scenario.cordoned_nodes().iter().cloned().collect();
    for node in left_cordoned {
        match scenario.uncordon(&node).await {
            Ok(()) => eprintln!("scenario {name}: uncordoned node {node}"),
            Err(e) => eprintln!("scenario {name}: {e}; run: kubectl uncordon {node}"),
        }
    }
    if cluster.settings.keep {
        eprintln!("scenario {name}: keeping namespace {namespace} (TANDEM_E2E_KEEP=1)");
    } else if let Err(e) = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
    {
        eprintln!("scenario {name}: could not delete namespace {namespace}: {e}");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
