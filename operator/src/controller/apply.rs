//! Reconcile step apply: server-side apply of the desired objects with one field manager,
//! forcing ownership of the fields the operator sets. Touches the network.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::instrument;

use super::prepare::Prepared;
use crate::error::Error;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "tandem-operator";

/// What the apply step hands to the drive step.
pub struct Applied {
    /// The StatefulSet's update revision, once its controller set it: the revision a
    /// rolling update replaces pods with.
    pub update_revision: Option<String>,
}

/// Applies every desired object, configuration first and the StatefulSet last, so pods never
/// start without their configuration.
///
/// # Errors
/// The first failed apply, named by object.
#[instrument(name = "apply", skip_all)]
pub async fn apply(client: &Client, prepared: &Prepared<'_>) -> Result<Applied, Error> {
    let namespace = &prepared.set.namespace;
    let desired = &prepared.objects;
    apply_one(client, namespace, &desired.auth_conf)
        .await
        .map_err(|(name, source)| Error::ApplyAuthConf { name, source })?;
    apply_one(client, namespace, &desired.config_map)
        .await
        .map_err(|(name, source)| Error::ApplyConfigMap { name, source })?;
    for service in &desired.services {
        apply_one(client, namespace, service)
            .await
            .map_err(|(name, source)| Error::ApplyService { name, source })?;
    }
    apply_one(client, namespace, &desired.pdb)
        .await
        .map_err(|(name, source)| Error::ApplyPodDisruptionBudget { name, source })?;
    let statefulset = apply_one(client, namespace, &desired.statefulset)
        .await
        .map_err(|(name, source)| Error::ApplyStatefulSet { name, source })?;
    Ok(Applied {
        update_revision: statefulset.status.and_then(|s| s.update_revision),
    })
}

async fn apply_one<K>(
    client: &Client,
    namespace: &str,
    object: &K,
) -> Result<K, (String, kube::Error)>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| (name, source))
}
