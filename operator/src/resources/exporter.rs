//! The optional redis_exporter sidecar (`spec.metrics.exporter`): Prometheus metrics of each
//! server, read over the pod's loopback with the set's password (a file in the mounted
//! auth-conf Secret, never an environment variable), sending CONFIG by the name the server
//! answers to (a secret name when commands are renamed: an environment variable from a
//! Secret reference, so the pod spec shows only the reference). Pure: no network.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, SecretKeySelector, VolumeMount,
};

use super::meta::names;
use super::pod_security::restricted_security_context;
use super::secret::{AUTH_DIR, CONFIG_COMMAND_KEY, EXPORTER_PASSWORDS_KEY, exporter_server_uri};
use crate::validate::ValidSet;

/// The image used when `spec.metrics.exporter.image` is unset.
pub const DEFAULT_IMAGE: &str = "oliver006/redis_exporter:v1.67.0";
/// Where the sidecar serves `/metrics`, on the container port named `metrics`.
pub const EXPORTER_PORT: i32 = 9121;
/// The sidecar's container name.
pub const CONTAINER_NAME: &str = "exporter";

/// The sidecar, when the set asks for it.
pub fn sidecar(set: &ValidSet<'_>) -> Option<Container> {
    let spec = &set.rrs.spec.metrics.exporter;
    if !spec.enabled {
        return None;
    }
    let from_secret = |name: &str, secret: String, key: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: key.to_owned(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    };
    Some(Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
        ),
        env: Some(vec![
            value("REDIS_ADDR", exporter_server_uri()),
            value(
                "REDIS_PASSWORD_FILE",
                format!("{AUTH_DIR}/{EXPORTER_PASSWORDS_KEY}"),
            ),
            from_secret(
                "REDIS_EXPORTER_CONFIG_COMMAND",
                names::auth_conf_secret(&set.name),
                CONFIG_COMMAND_KEY,
            ),
            value(
                "REDIS_EXPORTER_WEB_LISTEN_ADDRESS",
                format!(":{EXPORTER_PORT}"),
            ),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: EXPORTER_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: "auth".to_owned(),
            mount_path: AUTH_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        security_context: Some(restricted_security_context()),
        ..Container::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Observed;
    use crate::resources::fixtures::rrs;
    use crate::validate::validate;

    #[test]
    fn off_unless_asked_and_never_carries_a_secret_in_the_spec() {
        let off = rrs("  replicas: 2\n  datasetSizeHint: 1Gi\n");
        assert!(sidecar(&validate(&off, Observed::default()).expect("valid")).is_none());
        let on = rrs(
            "  replicas: 2\n  datasetSizeHint: 1Gi\n  metrics: { exporter: { enabled: true } }\n",
        );
        let set = validate(&on, Observed::default()).expect("valid");
        let c = serde_json::to_value(sidecar(&set).expect("sidecar")).expect("json");
        assert_eq!(c["image"], DEFAULT_IMAGE);
        assert_eq!(c["ports"][0]["name"], "metrics");
        let env = c["env"].as_array().expect("env");
        let by_name = |n: &str| env.iter().find(|e| e["name"] == n).expect(n).clone();
        assert_eq!(by_name("REDIS_ADDR")["value"], "redis://localhost:6379");
        assert_eq!(
            by_name("REDIS_PASSWORD_FILE")["value"],
            "/etc/tandem-auth/exporter-passwords.json"
        );
        assert_eq!(c["volumeMounts"][0]["name"], "auth");
        assert_eq!(
            by_name("REDIS_EXPORTER_CONFIG_COMMAND")["valueFrom"]["secretKeyRef"],
            serde_json::json!({ "name": "cache-auth-conf", "key": "config-command" })
        );
        assert!(
            env.iter().all(|e| e
                .get("value")
                .is_none_or(|v| !v.to_string().contains("config-"))),
            "no command name in plain env"
        );
    }
}
