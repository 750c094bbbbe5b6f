//! Every object the builders produce passes the official Kubernetes 1.33 schemas (strict),
//! for a spread of specs. No network: builders are pure and kubernetes-validate is offline.

mod common;

use kube::ResourceExt;
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::policy::{Observed, memory_budget, plan};
use tandem_operator::renames::CommandNames;
use tandem_operator::resources::exporter::CONTAINER_NAME;
use tandem_operator::resources::secret::{CONFIG_COMMAND_KEY, generated_auth_secret};
use tandem_operator::resources::statefulset::SERVER_UID;
use tandem_operator::resources::{Password, desired};
use tandem_operator::validate::validate;

const SPECS: [&str; 4] = [
    "replicas: 3\n  datasetSizeHint: 20Gi\n  metrics: { exporter: { enabled: true, resources: { limits: { memory: 64Mi } } } }\n",
    "replicas: 1\n  datasetSizeHint: 100Mi\n  persistence: { enabled: true, size: 1Gi, storageClassName: fast }\n  serviceType: LoadBalancer\n  auth: { secretName: my-auth }\n",
    "replicas: 3\n  datasetSizeHint: 1Gi\n  imagePullPolicy: Always\n  imagePullSecrets: [ { name: registry-creds } ]\n  podLabels: { team: payments }\n  topologySpreadConstraints: [ { maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: { matchLabels: { app.kubernetes.io/instance: cache } } } ]\n  extraContainers: [ { name: shipper, image: example.com/shipper:1, volumeMounts: [ { name: spool, mountPath: /spool } ] } ]\n  extraVolumes: [ { name: spool, emptyDir: { sizeLimit: 1Gi } } ]\n  serviceType: LoadBalancer\n  serviceAnnotations: { service.beta.kubernetes.io/aws-load-balancer-internal: 'true' }\n  loadBalancerSourceRanges: [ 10.0.0.0/8, 192.168.0.0/16 ]\n",
    "replicas: 5\n  datasetSizeHint: 2Gi\n  image: registry.local/tandem-server:dev\n  resources: { requests: { cpu: 500m, memory: 8Gi }, limits: { memory: 8Gi } }\n  nodeSelector: { disk: ssd }\n  tolerations: [ { key: dedicated, operator: Equal, value: db, effect: NoSchedule } ]\n  priorityClassName: high\n  podAnnotations: { prometheus.io/scrape: 'true' }\n  serverConfig: { maxmemory: 3gb, maxmemory-policy: allkeys-lru }\n  replication: { mode: Disk, replTimeoutSeconds: 600, clientOutputBufferLimit: { hard: 512Mi, soft: 256Mi, softSeconds: 60 } }\n",
];

#[test]
fn built_objects_pass_kubernetes_validate_strict_1_33() {
    let mut docs = Vec::new();
    for spec in SPECS {
        let rrs: RedisReplicaSet = serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{ name: cache, namespace: ns1, uid: 5c1e6a3e-0000-4000-8000-000000000001, generation: 1 }}\nspec:\n  {spec}"
        ))
        .expect("test resource");
        let set = validate(&rrs, Observed::default()).expect("valid spec");
        let plan = plan(&set.policy_input);
        assert_eq!(memory_budget(&set.policy_input, &plan), None, "{spec}");
        let password = Password::generate();
        let d = desired(
            &set,
            &plan,
            &password,
            &CommandNames::generate(),
            set.policy_input.replicas,
        );
        let mut push = |value: serde_json::Value| {
            docs.push(serde_yaml::to_string(&value).expect("yaml"));
        };
        push(serde_json::to_value(generated_auth_secret(&set, &password)).expect("json"));
        push(serde_json::to_value(&d.auth_conf).expect("json"));
        push(serde_json::to_value(&d.config_map).expect("json"));
        for service in &d.services {
            push(serde_json::to_value(service).expect("json"));
        }
        push(serde_json::to_value(&d.pdb).expect("json"));
        push(serde_json::to_value(&d.statefulset).expect("json"));
        assert_eq!(d.statefulset.name_any(), "cache");
    }
    let file = std::env::temp_dir().join(format!(
        "tandem-operator-manifests-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&file, docs.join("---\n")).expect("write manifests");
    common::assert_valid_for_kubernetes_1_33(&file);
    std::fs::remove_file(&file).expect("remove manifests");
}

/// The password is only ever in the two Secrets: not in the pods' command, args or env, not
/// in the ConfigMap, Services or PodDisruptionBudget, for every spec.
#[test]
fn the_password_is_only_in_secrets() {
    for spec in SPECS {
        let rrs: RedisReplicaSet = serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{ name: cache, namespace: ns1, uid: u1, generation: 1 }}\nspec:\n  {spec}"
        ))
        .expect("test resource");
        let set = validate(&rrs, Observed::default()).expect("valid spec");
        let password = Password::new("pw-5e7d1c9a-only-in-secrets".to_owned());
        let names = CommandNames::generate();
        let d = desired(
            &set,
            &plan(&set.policy_input),
            &password,
            &names,
            set.policy_input.replicas,
        );
        let auth_conf = serde_json::to_string(&d.auth_conf).expect("json");
        let encoded = serde_json::to_string(&k8s_openapi::ByteString(
            password.expose().as_bytes().to_vec(),
        ))
        .expect("json");
        assert!(
            auth_conf.contains(encoded.trim_matches('"')),
            "the auth-conf Secret carries it"
        );
        let mut plain = vec![
            serde_json::to_string(&d.config_map).expect("json"),
            serde_json::to_string(&d.pdb).expect("json"),
            serde_json::to_string(&d.statefulset).expect("json"),
        ];
        plain.extend(
            d.services
                .iter()
                .map(|s| serde_json::to_string(s).expect("json")),
        );
        for json in plain {
            assert!(!json.contains(password.expose()), "password in {json}");
            for secret in [names.config(), names.replicaof(), names.shutdown()] {
                assert!(!json.contains(secret), "renamed command in {json}");
            }
            assert!(
                !json.contains(encoded.trim_matches('"')),
                "encoded password in {json}"
            );
        }
        let pod = d
            .statefulset
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec");
        for c in &pod.containers {
            assert!(c.env_from.is_none(), "no envFrom: {c:?}");
            if c.name == CONTAINER_NAME {
                // The metrics sidecar reads the password from the mounted Secret; the one
                // variable from a Secret is the name CONFIG answers to.
                for var in c.env.iter().flatten() {
                    let from = var
                        .value_from
                        .as_ref()
                        .and_then(|f| f.secret_key_ref.as_ref());
                    match from {
                        Some(key) => assert_eq!(
                            (var.name.as_str(), key.key.as_str()),
                            ("REDIS_EXPORTER_CONFIG_COMMAND", CONFIG_COMMAND_KEY)
                        ),
                        None => assert!(var.value.is_some(), "{var:?}"),
                    }
                }
                continue;
            }
            // The only variable is the pod's name from the downward API (for
            // replica-announce-ip); nothing comes from a Secret.
            for var in c.env.iter().flatten() {
                let source = var.value_from.as_ref().expect("from the downward API");
                assert!(
                    var.value.is_none() && source.secret_key_ref.is_none(),
                    "{var:?}"
                );
                assert_eq!(
                    source.field_ref.as_ref().map(|f| f.field_path.as_str()),
                    Some("metadata.name")
                );
            }
            assert_eq!(c.args, None);
        }
    }
}

/// The images run as non-root users, the same ones the pods ask for: the server image as
/// the StatefulSet's runAsUser, the operator image as the chart's runAsUser.
#[test]
fn images_run_as_the_non_root_users_the_pods_ask_for() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let values = std::fs::read_to_string(root.join("charts/tandem-operator/values.yaml"))
        .expect("values.yaml");
    let values: serde_yaml::Value = serde_yaml::from_str(&values).expect("yaml");
    let chart_uid = values["podSecurityContext"]["runAsUser"]
        .as_i64()
        .expect("chart runAsUser");
    let mut users = std::collections::BTreeMap::new();
    let mut stage = String::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["FROM", base, "AS", name] => {
                stage = (*name).to_owned();
                // A stage built on an earlier one runs as its user unless it sets another.
                if let Some(user) = users.get(*base).cloned() {
                    users.insert(stage.clone(), user);
                }
            }
            ["USER", user] => {
                users.insert(stage.clone(), (*user).to_owned());
            }
            _ => {}
        }
    }
    for (stage, uid) in [("server", SERVER_UID), ("operator", chart_uid)] {
        assert_ne!(uid, 0, "{stage} would run as root");
        assert_eq!(
            users.get(stage).map(String::as_str),
            Some(format!("{uid}:{uid}").as_str()),
            "Dockerfile stage {stage} must end with USER {uid}:{uid}"
        );
    }
}
