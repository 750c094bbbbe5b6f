//! The StatefulSet running a set's tandem-server pods: stable names and DNS, probes that
//! tolerate loading and full sync, restricted security context, soft anti-affinity by
//! default, and a volume claim per pod when persistence is on. Pure: no network.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, TCPSocketAction,
    Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{CONFIG_DIR, CONFIG_KEY, DATA_DIR};
use super::meta::{SENTINEL_PORT, SERVER_PORT, child_meta, labels, names, selector_labels};
use super::pod_security::restricted_security_context;
use super::secret::AUTH_DIR;
use crate::policy::{startup_budget_seconds, termination_grace_seconds};
use crate::quantity::format_bytes;
use crate::server_config::{RESTART_HASH_ANNOTATION, restart_hash};
use crate::validate::ValidSet;

/// User and group the server runs as (any non-root id works; fixed so volumes get a stable
/// owner through fsGroup).
pub const SERVER_UID: i64 = 10001;

/// The environment variable carrying the pod's name (downward API), expanded by Kubernetes
/// in the command.
const POD_NAME_ENV: &str = "POD_NAME";

/// Seconds between startup probes.
const STARTUP_PERIOD_SECONDS: i32 = 10;

/// The StatefulSet of one set with `replicas` pods: the size it runs at, which a scale-in
/// holds above spec.replicas until the master left the pods it removes.
pub fn statefulset(set: &ValidSet<'_>, replicas: u32) -> StatefulSet {
    let spec = &set.rrs.spec;
    let data_volume_claims = set.volume_bytes.map(|bytes| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".to_owned()),
                labels: Some(labels(&set.name)),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                storage_class_name: spec.persistence.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(format_bytes(bytes)),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }]
    });
    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&set.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "auth".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::auth_conf_secret(&set.name)),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    if data_volume_claims.is_none() {
        volumes.push(empty_dir("data"));
    }
    volumes.extend(spec.extra_volumes.iter().cloned());
    let mut containers = vec![container(set)];
    containers.extend(super::exporter::sidecar(set));
    containers.extend(spec.extra_containers.iter().cloned());

    // A directive that needs a restart changes the template, so the StatefulSet rolls
    // (replicas first, the master after a switchover); the live ones are CONFIG SET.
    let mut annotations = spec.pod_annotations.clone();
    if let Some(hash) = restart_hash(&spec.server_config) {
        annotations.insert(RESTART_HASH_ANNOTATION.to_owned(), hash);
    }
    let annotations = (!annotations.is_empty()).then_some(annotations);
    // The operator's labels last: the schema already refuses user labels in their
    // namespaces, and the selectors must hold whatever an outdated CRD let through.
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(labels(&set.name));
    StatefulSet {
        metadata: child_meta(set, names::statefulset(&set.name)),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            service_name: Some(names::headless_service(&set.name)),
            // Every pod starts as a replica and the operator picks the master, so there is
            // no ordering to wait for: parallel start lets one diskless snapshot feed all.
            pod_management_policy: Some("Parallel".to_owned()),
            // The operator replaces outdated pods itself, replicas first and the master
            // only after a switchover (dataplane::rollout): a RollingUpdate would restart
            // the master whenever its ordinal came up, a failover that may lose writes.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&set.name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    volumes: Some(volumes),
                    image_pull_secrets: (!spec.image_pull_secrets.is_empty())
                        .then(|| spec.image_pull_secrets.clone()),
                    topology_spread_constraints: (!spec.topology_spread_constraints.is_empty())
                        .then(|| spec.topology_spread_constraints.clone()),
                    affinity: Some(
                        spec.affinity
                            .clone()
                            .unwrap_or_else(|| soft_anti_affinity(&set.name)),
                    ),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    priority_class_name: spec.priority_class_name.clone(),
                    // The server never talks to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(
                        i64::try_from(termination_grace_seconds(
                            planned_dataset(set),
                            crate::persistence::for_spec(&set.rrs.spec.persistence).snapshots(),
                        ))
                        .unwrap_or(i64::MAX),
                    ),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(SERVER_UID),
                        run_as_group: Some(SERVER_UID),
                        fs_group: Some(SERVER_UID),
                        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: data_volume_claims,
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The dataset size the pod template is sized for (startup probe, grace period): the hint
/// alone, not the observed size the live tuning follows. Any change to the template is a new
/// revision, and the rolling update replaces every pod for it, each a full sync: a dataset
/// that grows must not restart the set once per step. The server listens before it loads,
/// so the TCP startup probe passes during a long load anyway; raising the hint moves both.
fn planned_dataset(set: &ValidSet<'_>) -> u64 {
    set.policy_input.dataset_size_hint
}

fn container(set: &ValidSet<'_>) -> Container {
    let spec = &set.rrs.spec;
    let dataset = planned_dataset(set);
    let aof = crate::persistence::for_spec(&spec.persistence).aof();
    let startup_failures =
        startup_budget_seconds(dataset, aof).div_ceil(STARTUP_PERIOD_SECONDS.unsigned_abs().into());
    Container {
        name: "server".to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| set.default_image.clone()),
        ),
        image_pull_policy: Some(
            spec.image_pull_policy
                .unwrap_or_default()
                .as_str()
                .to_owned(),
        ),
        // The password reaches the server through an included file, never through arguments.
        // The pod's own DNS name is the one per-pod line: the master lists its replicas by
        // it, so the operator matches them to pods.
        command: Some(vec![
            "tandem-server".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
            "--replica-announce-ip".to_owned(),
            names::pod_host(&set.name, &set.namespace, &format!("$({POD_NAME_ENV})")),
        ]),
        env: Some(vec![EnvVar {
            name: POD_NAME_ENV.to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("redis".to_owned()),
                container_port: SERVER_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("sentinel".to_owned()),
                container_port: SENTINEL_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        resources: spec.resources.clone(),
        // Startup and liveness are TCP probes: a server answers connections while it loads
        // a dataset or runs a full sync (commands get -LOADING), so neither makes it look
        // dead or restarts it into another full sync. Readiness asks the server itself
        // (`--check-ready`: a replica is ready only while online), so the replicas Service
        // never sends a client to a replica that is loading, syncing or cut off.
        startup_probe: Some(Probe {
            period_seconds: Some(STARTUP_PERIOD_SECONDS),
            failure_threshold: Some(i32::try_from(startup_failures).unwrap_or(i32::MAX)),
            ..tcp_probe()
        }),
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..tcp_probe()
        }),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "tandem-server".to_owned(),
                    "--check-ready".to_owned(),
                    format!("{CONFIG_DIR}/{CONFIG_KEY}"),
                ]),
            }),
            period_seconds: Some(5),
            failure_threshold: Some(2),
            timeout_seconds: Some(5),
            ..Probe::default()
        }),
        security_context: Some(SecurityContext {
            seccomp_profile: Some(runtime_default()),
            ..restricted_security_context()
        }),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, true),
            mount("auth", AUTH_DIR, true),
            mount("data", DATA_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    }
}

fn tcp_probe() -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("redis".to_owned()),
            ..TCPSocketAction::default()
        }),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// Prefer one pod per node: losing a node then loses one copy of the data, not all of them.
/// Soft, so a small cluster still schedules every pod.
fn soft_anti_affinity(name: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(name)),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::DEFAULT_IMAGE;
    use crate::policy::Observed;
    use crate::resources::fixtures::rrs;
    use crate::validate::validate;

    fn sts(spec: &str) -> Value {
        let r = rrs(spec);
        let set = validate(&r, Observed::default()).expect("valid");
        serde_json::to_value(statefulset(&set, set.policy_input.replicas)).expect("json")
    }

    #[test]
    fn pods_are_restricted_and_get_config_and_auth_from_files() {
        let s = sts("  replicas: 3\n  datasetSizeHint: 20Gi\n");
        assert_eq!(s["apiVersion"], "apps/v1");
        assert_eq!(s["metadata"]["name"], "cache");
        assert_eq!(s["metadata"]["ownerReferences"][0]["controller"], true);
        let spec = &s["spec"];
        assert_eq!(spec["replicas"], 3);
        assert_eq!(spec["serviceName"], "cache-headless");
        assert_eq!(spec["podManagementPolicy"], "Parallel");
        assert_eq!(
            spec["updateStrategy"],
            serde_json::json!({ "type": "OnDelete" })
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0];
        assert_eq!(c["image"], DEFAULT_IMAGE);
        assert_eq!(
            c["command"],
            json!([
                "tandem-server",
                "/etc/tandem/tandem.conf",
                "--replica-announce-ip",
                "$(POD_NAME).cache-headless.ns1.svc"
            ])
        );
        assert_eq!(
            c["env"],
            json!([{ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }]),
            "no secrets in env"
        );
        assert!(c.get("args").is_none(), "no secrets in args");
        assert_eq!(
            c["securityContext"],
            json!({
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] },
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "seccompProfile": { "type": "RuntimeDefault" }
            })
        );
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .collect();
        assert_eq!(mounts, ["/etc/tandem", "/etc/tandem-auth", "/data", "/tmp"]);
        let volumes = pod["volumes"].as_array().expect("volumes");
        assert_eq!(volumes[1]["secret"]["secretName"], "cache-auth-conf");
        assert!(
            volumes[3]["emptyDir"].is_object(),
            "no persistence: emptyDir data"
        );
        assert!(spec.get("volumeClaimTemplates").is_none());
        let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(
            anti["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname"
        );
    }

    #[test]
    fn probes_tolerate_loading_with_a_startup_budget_from_the_hint() {
        let c = &sts("  replicas: 2\n  datasetSizeHint: 20Gi\n")["spec"]["template"]["spec"]["containers"]
            [0];
        assert_eq!(c["startupProbe"]["tcpSocket"]["port"], "redis");
        // 20Gi: 2048 s of budget in 10 s periods.
        assert_eq!(c["startupProbe"]["failureThreshold"], 205);
        assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], "redis");
        assert_eq!(
            c["readinessProbe"]["exec"]["command"],
            serde_json::json!(["tandem-server", "--check-ready", "/etc/tandem/tandem.conf"]),
            "readiness asks the server whether it is online"
        );
        let small = &sts("  replicas: 2\n  datasetSizeHint: 10Mi\n")["spec"]["template"]["spec"]["containers"]
            [0];
        assert_eq!(small["startupProbe"]["failureThreshold"], 12);
    }

    #[test]
    fn an_observed_dataset_leaves_the_pod_template_as_it_is() {
        let r = rrs("  replicas: 2\n  datasetSizeHint: 64Mi\n");
        let template = |observed: Observed| {
            let set = validate(&r, observed).expect("valid");
            serde_json::to_value(statefulset(&set, 2)).expect("json")["spec"]["template"].clone()
        };
        let grown = Observed {
            dataset_bytes: Some(20 * crate::quantity::GIB),
            ..Observed::default()
        };
        assert_eq!(
            template(grown),
            template(Observed::default()),
            "no rolling replacement of every pod for a growing dataset"
        );
    }

    #[test]
    fn a_directive_needing_a_restart_changes_the_pod_template() {
        let annotation = |s: &str| {
            sts(s)["spec"]["template"]["metadata"]["annotations"][RESTART_HASH_ANNOTATION].clone()
        };
        let live = annotation(
            "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { maxmemory-policy: allkeys-lru }\n",
        );
        assert!(
            live.is_null(),
            "a live directive leaves the template as it is"
        );
        let a = annotation(
            "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { databases: '32' }\n",
        );
        let b = annotation(
            "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { databases: '64', hz: '50' }\n",
        );
        assert!(a.is_string() && b.is_string() && a != b, "{a} {b}");
    }

    #[test]
    fn the_grace_period_is_sized_from_the_plan() {
        let spec =
            |s: &str| sts(s)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].clone();
        assert_eq!(
            spec("  replicas: 2\n  datasetSizeHint: 20Gi\n"),
            45,
            "handover 30 + shutdown-timeout 10 + 5; no snapshots without persistence"
        );
        assert_eq!(
            spec(
                "  replicas: 2\n  datasetSizeHint: 20Gi\n  persistence: { enabled: true, size: 40Gi }\n"
            ),
            45 + 2048,
            "and the final save of 20Gi"
        );
    }

    #[test]
    fn persistence_and_pod_knobs() {
        let s = sts(r"
  replicas: 2
  datasetSizeHint: 1Gi
  image: registry.local/tandem-server:dev
  persistence: { enabled: true, size: 2Gi, storageClassName: fast }
  nodeSelector: { disk: ssd }
  tolerations: [ { key: dedicated, operator: Equal, value: db, effect: NoSchedule } ]
  priorityClassName: high
  podAnnotations: { a: b }
  affinity: { nodeAffinity: {} }
");
        let claim = &s["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "data");
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
        let tpl = &s["spec"]["template"];
        assert_eq!(tpl["metadata"]["annotations"]["a"], "b");
        let pod = &tpl["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.local/tandem-server:dev"
        );
        assert_eq!(pod["nodeSelector"]["disk"], "ssd");
        assert_eq!(pod["tolerations"][0]["key"], "dedicated");
        assert_eq!(pod["priorityClassName"], "high");
        assert_eq!(
            pod["affinity"],
            json!({ "nodeAffinity": {} }),
            "user affinity replaces the default"
        );
        let names: Vec<&str> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["config", "auth", "tmp"],
            "data comes from the claim"
        );
    }

    #[test]
    fn the_operator_default_image_applies_only_when_the_spec_names_none() {
        let image = |spec: &str| {
            let r = rrs(spec);
            let mut set = validate(&r, Observed::default()).expect("valid");
            set.default_image = "ghcr.io/example/tandem-server:9.9.9".to_owned();
            serde_json::to_value(statefulset(&set, set.policy_input.replicas)).expect("json")["spec"]["template"]["spec"]
                ["containers"][0]["image"]
                .clone()
        };
        assert_eq!(
            image("  replicas: 1\n  datasetSizeHint: 1Gi\n"),
            "ghcr.io/example/tandem-server:9.9.9"
        );
        assert_eq!(
            image("  replicas: 1\n  datasetSizeHint: 1Gi\n  image: mine:1\n"),
            "mine:1"
        );
    }
}
