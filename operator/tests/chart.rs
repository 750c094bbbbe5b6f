//! The Helm chart (charts/tandem-operator) and the examples (examples/).
//!
//! Pure Rust: the chart's copy of the CRD is the generated one, and every example is a
//! RedisReplicaSet the operator accepts (schema CEL rules, the operator's own validation, a
//! memory limit that fits the tuning). Then the chart's Python tests (Helm's own engine from
//! PyPI helm-python-sdk, kubernetes-validate, jsonschema) run through pytest, given the
//! operator's API call list for the RBAC check and the operator binary for the flag check.
//! No network.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::core::cel::validate_cel;
use tandem_operator::api_calls::API_CALLS;
use tandem_operator::crd::{CRD_PATH, RedisReplicaSet, SyncMode};
use tandem_operator::policy::{Observed, memory_budget, plan};
use tandem_operator::validate::validate;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const CHART: &str = "charts/tandem-operator";

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = std::fs::read_to_string(repo().join(CRD_PATH)).expect("crds/");
    let chart_copy = repo().join(CHART).join(CRD_PATH);
    let copy = std::fs::read_to_string(&chart_copy).unwrap_or_default();
    assert!(
        copy == generated,
        "{} differs from {CRD_PATH}; copy it:\n    cp {CRD_PATH} {CHART}/crds/",
        chart_copy.display()
    );
}

fn examples() -> Vec<(String, RedisReplicaSet)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).expect("read example");
            let mut rrs: RedisReplicaSet = serde_yaml::from_str(&text)
                .unwrap_or_else(|err| panic!("{name} is not a RedisReplicaSet: {err}"));
            // What the API server adds on create.
            rrs.metadata.namespace = Some("default".to_owned());
            rrs.metadata.uid = Some("00000000-0000-4000-8000-000000000001".to_owned());
            (name, rrs)
        })
        .collect()
}

/// Every example passes the CRD's CEL rules and the operator's validation, and its memory
/// limit (if any) covers what the tuning needs.
#[test]
fn examples_are_accepted_by_the_schema_rules_and_the_operator() {
    let examples = examples();
    assert!(
        examples.len() >= 4,
        "{:?}",
        examples.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    for (name, rrs) in &examples {
        validate_cel(rrs).unwrap_or_else(|err| panic!("{name}: CEL rule failed: {err}"));
        let set = validate(rrs, Observed::default())
            .unwrap_or_else(|err| panic!("{name}: the operator rejects it: {err}"));
        let plan = plan(&set.policy_input);
        assert_eq!(
            memory_budget(&set.policy_input, &plan),
            None,
            "{name}: the memory limit does not fit the tuning"
        );
    }
}

/// The seed example says the operator picks diskless sync for 20Gi without being told.
#[test]
fn the_seed_example_syncs_diskless_by_itself() {
    let (_, rrs) = examples()
        .into_iter()
        .find(|(name, _)| name == "seed-20gi-diskless.yaml")
        .expect("seed example");
    assert!(rrs.spec.replication.mode == tandem_operator::crd::ModeChoice::Auto);
    let set = validate(&rrs, Observed::default()).expect("valid");
    assert_eq!(plan(&set.policy_input).mode, SyncMode::Diskless);
}

fn python_deps() -> Result<(), String> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import pytest, yaml, jsonschema, helm_python, kubernetes_validate",
        ])
        .output()
        .map_err(|err| format!("python3 cannot run: {err}"))?;
    if !output.status.success() {
        // The last line names the missing module.
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.trim().lines().last().unwrap_or_default().to_owned());
    }
    which("kubernetes-validate")
}

fn which(tool: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .any(|dir| Path::new(&dir).join(tool).is_file());
    if found {
        Ok(())
    } else {
        Err(format!("{tool} is not on PATH"))
    }
}

/// The chart's Python tests: rendering and strict lint with Helm's own engine, Kubernetes
/// 1.33 schemas for every rendered manifest, the CRD and the examples, and RBAC against
/// [`API_CALLS`].
#[test]
fn chart_python_tests_pass() {
    const INSTALL: &str =
        "pip install pytest pyyaml jsonschema helm-python-sdk==0.2.2 kubernetes-validate";
    if let Err(why) = python_deps() {
        tandem_testkit::skip_or_fail(&format!(
            "the chart's Python tests need Python packages: {why}; {INSTALL}"
        ));
        return;
    }
    let api_calls = serde_json::to_string(API_CALLS).expect("json");
    let output = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join(CHART).join("tests"))
        .env("TANDEM_API_CALLS", api_calls)
        .env("TANDEM_OPERATOR_BIN", env!("CARGO_BIN_EXE_tandem-operator"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chart tests failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}
