//! Scenario: invalid sets are rejected by the API server itself (the CRD's OpenAPI schema and
//! CEL rules), with the schema's message, and nothing is stored.
//!
//! The expected CEL messages are read from the CRD the operator generates
//! (`RedisReplicaSet::crd()`, what crds/ holds), so this checks that the cluster enforces the
//! schema as written, not a copy of it. Cluster test: see e2e/README.md.

use std::collections::BTreeMap;

use kube::api::ListParams;
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};
use tandem_e2e::{Error, scenario, set};
use tandem_operator::crd::{PersistenceSpec, RedisReplicaSet};
use tandem_operator::quantity::ByteQuantity;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn invalid_sets_are_rejected_by_the_api_server_with_the_schema_message() {
    scenario::run("invalid", |s| async move {
        let mut cases: Vec<(&str, RedisReplicaSet, String)> = Vec::new();

        let zero = set::resource(&s, set::spec(0, "1Gi"));
        cases.push((
            "replicas 0",
            zero,
            "should be greater than or equal to 1".to_owned(),
        ));

        let mut bad_hint = set::resource(&s, set::spec(3, "1Gi"));
        bad_hint.spec.dataset_size_hint = ByteQuantity::new("lots");
        cases.push((
            "datasetSizeHint lots",
            bad_hint,
            "spec.datasetSizeHint in body should match".to_owned(),
        ));

        let mut server_config = set::resource(&s, set::spec(3, "1Gi"));
        server_config.spec.server_config =
            BTreeMap::from([("replicaof".to_owned(), "10.0.0.1 6379".to_owned())]);
        cases.push((
            "serverConfig replicaof",
            server_config,
            "serverConfig does not allow replicaof".to_owned(),
        ));

        let mut min_replicas = set::resource(&s, set::spec(3, "1Gi"));
        min_replicas.spec.replication.min_replicas_to_write = Some(3);
        cases.push((
            "minReplicasToWrite 3 of 3",
            min_replicas,
            schema_message("minReplicasToWrite < self.replicas"),
        ));

        let mut no_size = set::resource(&s, set::spec(3, "1Gi"));
        no_size.spec.persistence = PersistenceSpec {
            enabled: true,
            size: None,
            ..PersistenceSpec::default()
        };
        cases.push((
            "persistence without size",
            no_size,
            schema_message("has(self.size)"),
        ));

        for (label, invalid, message) in &cases {
            let refused = set::create(&s, invalid).await.expect_err(label);
            expect_invalid(label, &refused, message);
        }
        let sets: Api<RedisReplicaSet> = s.api();
        let stored = sets.list(&ListParams::default()).await.expect("list sets");
        assert!(stored.items.is_empty(), "a rejected set was stored");

        // A transition rule: persistence cannot change once the set exists.
        set::create(&s, &set::resource(&s, set::spec(1, "64Mi")))
            .await
            .expect("a valid set");
        let refused = set::patch_spec(
            &s,
            json!({ "persistence": { "enabled": true, "size": "1Gi" } }),
        )
        .await
        .expect_err("enabling persistence later");
        expect_invalid(
            "persistence change",
            &refused,
            &schema_message("self == oldSelf"),
        );
        let kept = sets.get(set::NAME).await.expect("the set");
        assert!(
            !kept.spec.persistence.enabled,
            "the refused change was stored"
        );
    })
    .await;
}

/// The API server's answer to invalid input: 422 Invalid, with the message.
fn expect_invalid(label: &str, error: &Error, message: &str) {
    let Error::Kube {
        source: kube::Error::Api(status),
        ..
    } = error
    else {
        panic!("{label}: not an API rejection: {error}");
    };
    assert_eq!(status.code, 422, "{label}: {status:?}");
    assert_eq!(status.reason, "Invalid", "{label}: {status:?}");
    assert!(
        status.message.contains(message),
        "{label}: {:?} does not contain {message:?}",
        status.message
    );
}

/// The message of the CEL rule whose expression contains `rule_fragment`, from the
/// generated CRD.
fn schema_message(rule_fragment: &str) -> String {
    let crd = serde_json::to_value(RedisReplicaSet::crd()).expect("CRD as JSON");
    let mut found = Vec::new();
    collect_rules(&crd, &mut found);
    found
        .into_iter()
        .find(|(rule, _)| rule.contains(rule_fragment))
        .map(|(_, message)| message)
        .unwrap_or_else(|| panic!("no CEL rule containing {rule_fragment:?} in the CRD"))
}

fn collect_rules(value: &Value, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for rule in rules {
                    if let (Some(r), Some(m)) = (rule["rule"].as_str(), rule["message"].as_str()) {
                        found.push((r.to_owned(), m.to_owned()));
                    }
                }
            }
            map.values().for_each(|v| collect_rules(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_rules(v, found)),
        _ => {}
    }
}
