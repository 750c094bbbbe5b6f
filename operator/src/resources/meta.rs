//! Names, labels and metadata every child object of a set shares, and the controller's
//! watches select on; stable, since clients and the StatefulSet's immutable selector rely on
//! them. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::validate::ValidSet;

/// Port every server listens on.
pub const SERVER_PORT: i32 = 6379;
/// Every pod's Sentinel-compatible discovery endpoint (tandem-server's `sentinel-port`),
/// on Redis Sentinel's usual port.
pub const SENTINEL_PORT: i32 = 26379;

/// Pod label naming the node's current role, `master` or `replica`. Only the operator sets
/// it; the master and replicas Services select on it.
pub const ROLE_LABEL: &str = "tandem.dev/role";

/// Label value of the master.
pub const ROLE_MASTER: &str = "master";

/// Label value of a replica.
pub const ROLE_REPLICA: &str = "replica";

/// Label linking every child object (and pod) to its `RedisReplicaSet`.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Label value set on every object this operator manages; its watches select on it.
pub const MANAGED_BY: &str = "tandem-operator";

/// Labels that select the pods of one set (stable: they are in the StatefulSet selector,
/// which is immutable).
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "tandem-server".to_owned(),
        ),
        (INSTANCE_LABEL.to_owned(), name.to_owned()),
    ])
}

/// Labels of every object of one set.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
    labels.insert("app.kubernetes.io/part-of".to_owned(), "tandem".to_owned());
    labels
}

/// The label selector string of one set's pods, for list and watch calls.
pub fn pod_selector(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Object names derived from the resource name; stable so clients can rely on them.
pub mod names {
    /// StatefulSet (and pod prefix): the resource name itself.
    pub fn statefulset(name: &str) -> String {
        name.to_owned()
    }
    /// Headless Service giving each pod a stable DNS name.
    pub fn headless_service(name: &str) -> String {
        format!("{name}-headless")
    }
    /// Service of the master: what clients connect to.
    pub fn master_service(name: &str) -> String {
        name.to_owned()
    }
    /// Service of the replicas, for reads.
    pub fn replicas_service(name: &str) -> String {
        format!("{name}-replicas")
    }
    /// Service of every ready pod's Sentinel endpoint: what Sentinel-aware clients are given.
    pub fn sentinel_service(name: &str) -> String {
        format!("{name}-sentinel")
    }
    /// ConfigMap holding tandem.conf.
    pub fn config_map(name: &str) -> String {
        format!("{name}-config")
    }
    /// Secret holding the auth directives the server includes.
    pub fn auth_conf_secret(name: &str) -> String {
        format!("{name}-auth-conf")
    }
    /// PodDisruptionBudget.
    pub fn pdb(name: &str) -> String {
        name.to_owned()
    }
    /// A pod's stable DNS name through the headless Service: what replicas announce and
    /// what REPLICAOF names, so roles survive a pod's new IP.
    pub fn pod_host(name: &str, namespace: &str, pod: &str) -> String {
        format!("{pod}.{}.{namespace}.svc", headless_service(name))
    }
}

/// Metadata shared by every child: name, namespace, labels, controller owner reference.
pub fn child_meta(set: &ValidSet<'_>, object_name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name),
        namespace: Some(set.namespace.clone()),
        labels: Some(labels(&set.name)),
        owner_references: Some(vec![set.owner.clone()]),
        ..ObjectMeta::default()
    }
}
