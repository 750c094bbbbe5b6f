//! The desired Kubernetes objects of one `RedisReplicaSet`, built by the reconcile's prepare
//! step from the validated spec and the tuning plan. One module per object kind; the names
//! and labels every builder and the controller's watches share are in [`meta`].
//!
//! Pure: no network, no clock, no randomness except [`Password::generate`].

use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::policy::Plan;
use crate::renames::CommandNames;
use crate::validate::ValidSet;

pub mod config;
pub mod exporter;
pub mod meta;
pub mod pdb;
pub mod pod_security;
pub mod secret;
pub mod services;
pub mod statefulset;

pub use meta::{
    INSTANCE_LABEL, MANAGED_BY, ROLE_LABEL, ROLE_MASTER, ROLE_REPLICA, SERVER_PORT, names,
    pod_selector,
};
pub use secret::{PASSWORD_KEY, Password};

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
    /// Headless, master, replicas and sentinel Services.
    pub services: [Service; 4],
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
