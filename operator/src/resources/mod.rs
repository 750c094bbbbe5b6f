//! Reconcile step 3: the desired Kubernetes objects of one `RedisReplicaSet`, built from the
//! validated spec and the tuning plan. One module per object kind; names and labels live here
//! because every builder and the controller's watches share them.
//!
//! Pure: no network, no clock, no randomness except [`Password::generate`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::policy::Plan;
use crate::random::random_alphanumeric;
use crate::renames::CommandNames;
use crate::validate::ValidSet;

pub mod config;
pub mod pdb;
pub mod secret;
pub mod services;
pub mod statefulset;

/// Port every server listens on.
pub const SERVER_PORT: i32 = 6379;

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

/// Key of the password in the auth Secret.
pub const PASSWORD_KEY: &str = "password";

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

/// A server password. Its `Debug` and `Display` never show it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Length of generated passwords: 32 alphanumerics, about 190 bits.
    pub const GENERATED_LEN: usize = 32;

    /// A fresh random password from the operating system's CSPRNG-seeded generator.
    pub fn generate() -> Self {
        Self(random_alphanumeric(Self::GENERATED_LEN))
    }

    /// Wraps a password read from a Secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret text, for the few places that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Every object the operator applies for one set, in apply order: configuration first, so
/// pods never start without it; the StatefulSet last.
///
/// Its `Debug` lists object names only: the auth-conf Secret holds the password.
#[derive(Clone)]
pub struct Desired {
    /// requirepass/masterauth for the server to include.
    pub auth_conf: Secret,
    /// tandem.conf.
    pub config_map: ConfigMap,
    /// Headless, master and replicas Services.
    pub services: [Service; 3],
    /// PodDisruptionBudget.
    pub pdb: PodDisruptionBudget,
    /// The pods.
    pub statefulset: StatefulSet,
}

impl fmt::Debug for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kube::ResourceExt;
        f.debug_struct("Desired")
            .field("auth_conf", &self.auth_conf.name_any())
            .field("config_map", &self.config_map.name_any())
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(ResourceExt::name_any)
                    .collect::<Vec<_>>(),
            )
            .field("pdb", &self.pdb.name_any())
            .field("statefulset", &self.statefulset.name_any())
            .finish()
    }
}

/// Builds every desired object, the StatefulSet with `replicas` pods (spec.replicas, or
/// more while a scale-in waits for the master to move off a pod it removes).
pub fn desired(
    set: &ValidSet<'_>,
    plan: &Plan,
    password: &Password,
    commands: &CommandNames,
    replicas: u32,
) -> Desired {
    Desired {
        auth_conf: secret::auth_conf(set, password, commands),
        config_map: config::config_map(set, plan),
        services: services::services(set),
        pdb: pdb::pdb(set),
        statefulset: statefulset::statefulset(set, replicas),
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fixtures {
    //! The resource tests build objects from: a `RedisReplicaSet` as the apiserver returns it.

    use crate::crd::RedisReplicaSet;

    /// A resource as the apiserver would return it, from a spec in YAML.
    pub fn rrs(spec_yaml: &str) -> RedisReplicaSet {
        serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{name: cache, namespace: ns1, uid: u1, generation: 1}}\nspec:\n{spec_yaml}"
        ))
        .expect("test resource")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_random_alphanumeric_and_never_printed() {
        let a = Password::generate();
        let b = Password::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), Password::GENERATED_LEN);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(format!("{a:?}"), "Password(<redacted>)");
    }

    #[test]
    fn desired_debug_never_shows_the_password() {
        let r = fixtures::rrs("  replicas: 2\n  datasetSizeHint: 1Gi\n");
        let set = crate::validate::validate(&r, crate::policy::Observed::default()).expect("valid");
        let plan = crate::policy::plan(&set.policy_input);
        let d = desired(
            &set,
            &plan,
            &Password::new("hunter2hunter2".to_owned()),
            &CommandNames::generate(),
            set.policy_input.replicas,
        );
        let shown = format!("{d:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache-auth-conf"), "{shown}");
    }

    #[test]
    fn selector_string_matches_labels() {
        assert_eq!(
            pod_selector("cache"),
            "app.kubernetes.io/instance=cache,app.kubernetes.io/name=tandem-server"
        );
    }
}
