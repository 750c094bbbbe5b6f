//! The part of the suite that runs everywhere, CI included: the kind config, the driver
//! script, the chart and the Dockerfile must agree, so drift between them fails here instead
//! of on the first kind run. (CI cannot run the cluster scenarios: no container engine.)

use std::path::{Path, PathBuf};

use serde_yaml::Value;
use tandem_e2e::cluster::{
    DEFAULT_CLIENT_IMAGE, DEFAULT_OPERATOR_NAMESPACE, DEFAULT_OPERATOR_SELECTOR,
};
use tandem_e2e::operator::METRICS_PORT_NAME;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// Values of `--flag value` and `--flag=value` occurrences in the script.
fn flag_values<'a>(script: &'a str, flag: &str) -> Vec<&'a str> {
    script
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter_map(|w| {
            if w[0] == flag {
                Some(w[1])
            } else {
                w[0].strip_prefix(flag)?.strip_prefix('=')
            }
        })
        .collect()
}

#[test]
fn the_kind_config_is_a_v1alpha4_cluster_on_the_oldest_supported_kubernetes() {
    let config = yaml("e2e/kind-config.yaml");
    assert_eq!(config["kind"], "Cluster");
    assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
    let nodes = config["nodes"].as_sequence().expect("nodes");
    let roles: Vec<&str> = nodes.iter().filter_map(|n| n["role"].as_str()).collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "control-plane").count(),
        1,
        "{roles:?}"
    );
    assert!(
        roles.iter().filter(|r| **r == "worker").count() >= 2,
        "pods of a set spread over at least two workers: {roles:?}"
    );

    // The workspace's k8s-openapi feature (e.g. v1_33) names the oldest supported version.
    let workspace = read("Cargo.toml");
    let feature = workspace
        .split('"')
        .find(|s| s.starts_with("v1_") && s[3..].chars().all(|c| c.is_ascii_digit()))
        .expect("a k8s-openapi v1_NN feature in Cargo.toml");
    let minor = format!("v1.{}.", &feature[3..]);
    for node in nodes {
        let image = node["image"].as_str().expect("every node names its image");
        let tag = image
            .strip_prefix("kindest/node:")
            .unwrap_or_else(|| panic!("{image} is not a kind node image"));
        assert!(
            tag.starts_with(&minor),
            "{image}: Kubernetes {minor}x expected ({feature})"
        );
    }
}

#[test]
fn every_chart_value_the_script_sets_exists_in_values_yaml() {
    let script = read("e2e/run-kind.sh");
    let values = yaml("charts/tandem-operator/values.yaml");
    let keys: Vec<&str> = flag_values(&script, "--set")
        .into_iter()
        .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k))
        .collect();
    assert!(
        keys.contains(&"image.repository") && keys.contains(&"serverImage.repository"),
        "{keys:?}"
    );
    for key in keys {
        let mut node = &values;
        for part in key.split('.') {
            node = node.get(part).unwrap_or_else(|| {
                panic!("run-kind.sh sets {key}, which values.yaml does not have")
            });
        }
        assert!(
            !node.is_mapping(),
            "{key} is a map in values.yaml, not a value"
        );
    }
}

#[test]
fn the_script_builds_dockerfile_targets_and_uses_the_suite_defaults() {
    let script = read("e2e/run-kind.sh");
    let dockerfile = read("Dockerfile");
    let targets = flag_values(&script, "--target");
    assert_eq!(targets, ["server", "operator"]);
    for target in targets {
        assert!(
            dockerfile
                .lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {target}"))),
            "the Dockerfile has no stage {target}"
        );
    }
    assert!(
        script.contains(&format!(
            "TANDEM_E2E_CLIENT_IMAGE:-{DEFAULT_CLIENT_IMAGE}}}"
        )),
        "run-kind.sh loads another client image than the tests default to"
    );
    assert!(
        script.contains(&format!(
            "TANDEM_E2E_OPERATOR_NAMESPACE:-{DEFAULT_OPERATOR_NAMESPACE}}}"
        )),
        "run-kind.sh installs into another namespace than the tests look in"
    );
    let crd = flag_values(&script, "--filename");
    assert_eq!(crd.len(), 1, "{crd:?}");
    let crd_path = crd[0].trim_matches('"').replace("${repo_root}/", "");
    assert!(
        repo().join(&crd_path).is_file(),
        "{crd_path} does not exist"
    );
}

#[test]
fn the_operator_pods_are_found_as_the_chart_labels_them() {
    let chart = yaml("charts/tandem-operator/Chart.yaml");
    let name = chart["name"].as_str().expect("chart name");
    let values = yaml("charts/tandem-operator/values.yaml");
    assert_eq!(
        values["nameOverride"], "",
        "the name label is the chart name"
    );
    assert_eq!(
        DEFAULT_OPERATOR_SELECTOR,
        format!("app.kubernetes.io/name={name}")
    );
    let deployment = read("charts/tandem-operator/templates/deployment.yaml");
    assert!(
        deployment.contains(&format!("- name: {METRICS_PORT_NAME}")),
        "the operator container has no port named {METRICS_PORT_NAME}"
    );
}
