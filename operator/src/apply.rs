//! Reconcile step 4: server-side apply of the desired objects with one field manager,
//! forcing ownership of the fields the operator sets. Touches the network.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::resources::Desired;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "tandem-operator";

/// Applies every desired object, configuration first and the StatefulSet last; returns the
/// StatefulSet as the API server has it (its status names the update revision).
///
/// # Errors
/// The first failed apply, named by object.
pub async fn apply_all(
    client: &Client,
    namespace: &str,
    desired: &Desired,
) -> Result<StatefulSet, Error> {
    apply(client, namespace, &desired.auth_conf)
        .await
        .map_err(|(name, source)| Error::ApplyAuthConf { name, source })?;
    apply(client, namespace, &desired.config_map)
        .await
        .map_err(|(name, source)| Error::ApplyConfigMap { name, source })?;
    for service in &desired.services {
        apply(client, namespace, service)
            .await
            .map_err(|(name, source)| Error::ApplyService { name, source })?;
    }
    apply(client, namespace, &desired.pdb)
        .await
        .map_err(|(name, source)| Error::ApplyPodDisruptionBudget { name, source })?;
    apply(client, namespace, &desired.statefulset)
        .await
        .map_err(|(name, source)| Error::ApplyStatefulSet { name, source })
}

async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, (String, kube::Error)>
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
