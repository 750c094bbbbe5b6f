//! The committed CRD in crds/ matches the code, and passes the official Kubernetes 1.33
//! schemas (strict). No network: kubernetes-validate runs offline.

mod common;

use std::path::PathBuf;

use tandem_operator::crd::{CRD_PATH, crd_yaml};

const REGENERATE: &str =
    "cargo run -p tandem-operator --bin crdgen > crds/redisreplicasets.tandem.dev.yaml";

fn committed_crd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH)
}

#[test]
fn committed_crd_is_up_to_date() {
    let generated = crd_yaml().expect("crd serializes");
    let committed = std::fs::read_to_string(committed_crd_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "{CRD_PATH} is out of date with operator/src/crd.rs; regenerate it with:\n    {REGENERATE}"
    );
}

/// The CRD passes the official Kubernetes 1.33 schemas, strictly (unknown keys are errors).
#[test]
fn crd_passes_kubernetes_validate_strict_1_33() {
    common::assert_valid_for_kubernetes_1_33(&committed_crd_path());
}

/// Every field of the status schema is explained in docs/status.md.
#[test]
fn docs_status_md_explains_every_status_field() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(tandem_operator::crd::RedisReplicaSet::crd()).expect("crd");
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    let mut paths = Vec::new();
    collect_paths(status, "status", &mut paths);
    assert!(paths.len() > 20, "walked the status schema: {paths:?}");
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/status.md"),
    )
    .expect("docs/status.md");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !doc.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/status.md does not explain {missing:?}"
    );
}

fn collect_paths(schema: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    let (props, prefix) = match schema["items"]["properties"].as_object() {
        Some(props) => (Some(props), format!("{prefix}[]")),
        None => (schema["properties"].as_object(), prefix.to_owned()),
    };
    for (name, sub) in props.into_iter().flatten() {
        let path = format!("{prefix}.{name}");
        out.push(path.clone());
        collect_paths(sub, &path, out);
    }
}

/// The schema's CEL rules, evaluated client-side with kube's CEL validator.
mod cel {
    use kube::core::cel::{validate_cel, validate_cel_update};
    use tandem_operator::crd::RedisReplicaSet;

    fn rrs(spec: &str) -> RedisReplicaSet {
        serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{ name: cache, namespace: ns1 }}\nspec:\n  replicas: 3\n  datasetSizeHint: 20Gi\n{spec}"
        ))
        .expect("test resource")
    }

    fn rejection(spec: &str) -> String {
        validate_cel(&rrs(spec)).expect_err(spec).to_string()
    }

    #[test]
    fn allowed_server_config_passes() {
        validate_cel(&rrs(
            "  serverConfig: { maxmemory: 4gb, maxmemory-policy: noeviction, save: '' }\n",
        ))
        .expect("allowlisted directives");
        validate_cel(&rrs("")).expect("no serverConfig");
    }

    #[test]
    fn unlisted_server_config_is_rejected_by_name() {
        let message =
            rejection("  serverConfig: { maxmemory: 4gb, repl-timeout: '5', port: '7000' }\n");
        // Map iteration order is not defined in CEL, so the names may come in either order.
        let named = message
            .split("serverConfig does not allow ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_default();
        let mut names: Vec<&str> = named.split(", ").collect();
        names.sort_unstable();
        assert_eq!(names, ["port", "repl-timeout"], "{message}");
    }

    #[test]
    fn multi_line_values_are_rejected() {
        let message =
            rejection("  serverConfig: { maxmemory-policy: \"noeviction\\nrequirepass x\" }\n");
        assert!(
            message.contains("serverConfig values must be a single line"),
            "{message}"
        );
        for value in ["'no\"eviction'", "\"no'eviction\"", "'no\\eviction'"] {
            let message = rejection(&format!(
                "  serverConfig: {{ maxmemory-policy: {value} }}\n"
            ));
            assert!(
                message.contains("without quotes or backslashes"),
                "{value}: {message}"
            );
        }
    }

    #[test]
    fn persistence_needs_a_size_and_cannot_change() {
        let message = rejection("  persistence: { enabled: true }\n");
        assert!(
            message.contains("persistence.size is required"),
            "{message}"
        );
        let old = rrs("  persistence: { enabled: true, size: 30Gi }\n");
        validate_cel_update(&old, &old).expect("unchanged");
        let new = rrs("  persistence: { enabled: true, size: 60Gi }\n");
        let message = validate_cel_update(&new, &old)
            .expect_err("changed")
            .to_string();
        assert!(
            message.contains("persistence cannot change after creation"),
            "{message}"
        );
    }

    #[test]
    fn min_replicas_to_write_must_leave_a_writable_master() {
        validate_cel(&rrs("  replication: { minReplicasToWrite: 2 }\n")).expect("2 of 3");
        let message = rejection("  replication: { minReplicasToWrite: 3 }\n");
        assert!(
            message.contains("minReplicasToWrite must be below replicas"),
            "{message}"
        );
    }

    #[test]
    fn pod_knobs_cannot_take_the_operators_names() {
        validate_cel(&rrs(
            "  podLabels: { team: a }\n  extraContainers: [ { name: shipper } ]\n  extraVolumes: [ { name: spool, emptyDir: {} } ]\n",
        ))
        .expect("own names");
        for (spec, expected) in [
            (
                "  podLabels: { app.kubernetes.io/instance: other }\n",
                "podLabels cannot set app.kubernetes.io/* or tandem.dev/* labels",
            ),
            (
                "  podLabels: { tandem.dev/role: master }\n",
                "podLabels cannot set app.kubernetes.io/* or tandem.dev/* labels",
            ),
            (
                "  extraContainers: [ { name: server } ]\n",
                "extraContainers cannot be named server or exporter",
            ),
            (
                "  extraContainers: [ { name: exporter } ]\n",
                "extraContainers cannot be named server or exporter",
            ),
            (
                "  extraVolumes: [ { name: data, emptyDir: {} } ]\n",
                "extraVolumes cannot be named config, auth, data or tmp",
            ),
        ] {
            let message = rejection(spec);
            assert!(message.contains(expected), "{spec}: {message}");
        }
    }

    #[test]
    fn load_balancer_source_ranges_need_a_load_balancer() {
        validate_cel(&rrs(
            "  serviceType: LoadBalancer\n  loadBalancerSourceRanges: [ 10.0.0.0/8 ]\n",
        ))
        .expect("with a LoadBalancer");
        let message = rejection("  loadBalancerSourceRanges: [ 10.0.0.0/8 ]\n");
        assert!(
            message.contains("loadBalancerSourceRanges needs serviceType: LoadBalancer"),
            "{message}"
        );
    }

    #[test]
    fn negative_sizes_are_rejected() {
        let mut r = rrs("");
        r.spec.dataset_size_hint = tandem_operator::quantity::ByteQuantity::new("1Gi");
        validate_cel(&r).expect("string size");
        let value = serde_json::json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplicaSet",
            "metadata": { "name": "cache" },
            "spec": { "replicas": 3, "datasetSizeHint": -5 }
        });
        let message = kube::core::cel::Validator::new()
            .validate(&crd_schema(), &value, None)
            .expect_err("negative")
            .to_string();
        assert!(message.contains("a size cannot be negative"), "{message}");
    }

    fn crd_schema() -> serde_json::Value {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(RedisReplicaSet::crd()).expect("crd");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }
}
