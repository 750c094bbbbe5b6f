//! Every object the builders produce passes the official Kubernetes 1.33 schemas (strict),
//! for a spread of specs. No network: builders are pure and kubernetes-validate is offline.

mod common;

use kube::ResourceExt;
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::policy::{Observed, memory_budget, plan};
use tandem_operator::resources::secret::generated_auth_secret;
use tandem_operator::resources::{Password, desired};
use tandem_operator::validate::validate;

const SPECS: [&str; 3] = [
    "replicas: 3\n  datasetSizeHint: 20Gi\n",
    "replicas: 1\n  datasetSizeHint: 100Mi\n  persistence: { enabled: true, size: 1Gi, storageClassName: fast }\n  serviceType: LoadBalancer\n  auth: { secretName: my-auth }\n",
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
        let d = desired(&set, &plan, &password);
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
