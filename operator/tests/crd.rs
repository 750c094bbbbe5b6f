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
