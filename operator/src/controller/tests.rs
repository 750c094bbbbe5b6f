//! The controller against a `tower-test` mock API server: every request of a reconcile
//! asserted in order (method, path, body), and the watches and lease of [`super::run`]. No
//! server process: tests that run tandem-server nodes are in `operator/tests/controller.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use super::{Context, REQUEUE_ACTIVE, RunError, Settings, Shutdown, error_policy, reconcile, run};
use crate::crd::{DEFAULT_IMAGE, RedisReplicaSet};
use crate::error::Error;
use crate::fixtures::{
    ApiServer, NS, Reply, SEED, Seen, auth_conf_secret, password_secret, pods_list, test_clock,
    test_context,
};
use crate::leader::LeaseConfig;
use crate::renames::CommandNames;
use crate::resources::fixtures::rrs;

/// Runs `reconcile` against a scripted API server; a failed assertion in the script is
/// re-raised here with its own message.
async fn run_scenario<S, F>(
    rrs: RedisReplicaSet,
    script: S,
) -> (Result<Action, Error>, Arc<Context>)
where
    S: FnOnce(ApiServer, RedisReplicaSet) -> F,
    F: Future<Output = ApiServer> + Send + 'static,
{
    let (ctx, api) = test_context();
    let server = tokio::spawn(script(api, rrs.clone()));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(rrs), ctx.clone()),
    )
    .await
    .expect("reconcile finished");
    let api = server
        .await
        .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
    api.assert_idle().await;
    (result, ctx)
}

/// The eight applies of every successful reconcile, in order.
async fn expect_applies(api: &mut ApiServer) -> Vec<Seen> {
    let paths = [
        format!("{NS}/secrets/cache-auth-conf"),
        format!("{NS}/configmaps/cache-config"),
        format!("{NS}/services/cache-headless"),
        format!("{NS}/services/cache"),
        format!("{NS}/services/cache-replicas"),
        format!("{NS}/services/cache-sentinel"),
        "/apis/policy/v1/namespaces/ns1/poddisruptionbudgets/cache".to_owned(),
        "/apis/apps/v1/namespaces/ns1/statefulsets/cache".to_owned(),
    ];
    let mut seen = Vec::new();
    for path in paths {
        let s = api.expect(Method::PATCH, &path, Reply::Echo).await;
        s.assert_apply();
        seen.push(s);
    }
    seen
}

async fn expect_pod_list(api: &mut ApiServer, pods: &[(&str, bool, Option<&str>)]) {
    let s = api
        .expect(
            Method::GET,
            &format!("{NS}/pods"),
            Reply::Json(StatusCode::OK, pods_list(pods)),
        )
        .await;
    assert!(
        s.query.contains("labelSelector=app.kubernetes.io%2Finstance%3Dcache%2Capp.kubernetes.io%2Fname%3Dtandem-server"),
        "{}",
        s.query
    );
}

async fn expect_event(api: &mut ApiServer, type_: &str, reason: &str) -> Value {
    let s = api
        .expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ns1/events",
            Reply::Echo,
        )
        .await;
    assert_eq!(
        (s.body["type"].as_str(), s.body["reason"].as_str()),
        (Some(type_), Some(reason)),
        "{}",
        s.body
    );
    assert_eq!(s.body["regarding"]["name"], "cache");
    assert_eq!(s.body["regarding"]["kind"], "RedisReplicaSet");
    s.body
}

async fn expect_status(api: &mut ApiServer, resource: &RedisReplicaSet) -> Value {
    let s = api
        .expect(
            Method::PATCH,
            "/apis/tandem.dev/v1alpha1/namespaces/ns1/redisreplicasets/cache/status",
            Reply::EchoOnto(serde_json::to_value(resource).expect("json")),
        )
        .await;
    assert_eq!(s.body["metadata"], json!({ "name": "cache" }));
    s.assert_apply();
    assert_eq!(s.body["apiVersion"], "tandem.dev/v1alpha1");
    assert_eq!(s.body["kind"], "RedisReplicaSet");
    s.body["status"].clone()
}

fn secret_data(body: &Value, key: &str) -> String {
    let secret: Secret = serde_json::from_value(body.clone()).expect("secret body");
    let data = secret.data.expect("data");
    String::from_utf8(data[key].0.clone()).expect("utf8")
}

#[tokio::test]
async fn first_reconcile_creates_everything_then_reports() {
    let (result, ctx) = run_scenario(rrs(SEED), |mut api, resource| async move {
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth"),
            Reply::not_found("secrets \"cache-auth\""),
        )
        .await;
        let created = api
            .expect(Method::POST, &format!("{NS}/secrets"), Reply::Echo)
            .await;
        assert_eq!(created.body["metadata"]["name"], "cache-auth");
        assert_eq!(
            created.body["metadata"]["ownerReferences"][0]["name"],
            "cache"
        );
        let password = secret_data(&created.body, "password");
        assert_eq!(password.len(), 32);
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth-conf"),
            Reply::not_found("secrets \"cache-auth-conf\""),
        )
        .await;

        let applies = expect_applies(&mut api).await;
        let names = CommandNames::parse(&secret_data(&applies[0].body, "renamed-commands"))
            .expect("generated names kept in the auth-conf Secret");
        assert!(!names.is_plain());
        assert_eq!(
            secret_data(&applies[0].body, "auth.conf"),
            format!(
                "requirepass \"{password}\"\nmasterauth \"{password}\"\n{}",
                names.directives()
            ),
            "the server gets the generated password and the renames"
        );
        for apply in &applies[1..] {
            assert!(
                !apply.body.to_string().contains(names.config()),
                "a secret name outside the auth-conf Secret: {}",
                apply.body
            );
        }
        let conf = applies[1].body["data"]["tandem.conf"]
            .as_str()
            .expect("conf")
            .to_owned();
        assert!(
            conf.contains("\nrepl-diskless-sync yes\n") && conf.contains("\nrepl-timeout 2100\n"),
            "{conf}"
        );
        assert!(!conf.contains(&password), "no password in the ConfigMap");
        assert_eq!(applies[7].body["spec"]["replicas"], 3);
        for apply in &applies {
            assert_eq!(apply.body["metadata"]["ownerReferences"][0]["uid"], "u1");
        }

        expect_pod_list(
            &mut api,
            &[
                ("cache-0", true, Some("master")),
                ("cache-1", true, Some("replica")),
                ("cache-2", false, None),
            ],
        )
        .await;
        let created_event = expect_event(&mut api, "Normal", "AuthSecretCreated").await;
        assert!(
            !created_event.to_string().contains(&password),
            "the password is never in an event"
        );
        let tuned = expect_event(&mut api, "Normal", "ReplicationTuned").await;
        assert!(
            tuned["note"]
                .as_str()
                .expect("note")
                .starts_with("Diskless full sync, repl-timeout 2100s"),
            "{tuned}"
        );

        let status = expect_status(&mut api, &resource).await;
        for reported in [&status, &created_event, &tuned] {
            assert!(
                !reported.to_string().contains(names.config()),
                "a secret name in {reported}"
            );
        }
        // No server answers here (the data-plane test below runs real ones): the role
        // labels alone are not trusted, nobody is master yet and nothing is ready.
        assert_eq!(status["phase"], "Pending", "{status}");
        assert!(status.get("master").is_none(), "{status}");
        assert_eq!(status["ready"], "0/3");
        assert_eq!(status["observedGeneration"], 1);
        assert_eq!(status["replication"]["mode"], "Diskless");
        assert_eq!(status["replication"]["replTimeoutSeconds"], 2100);
        // No volume in the seed spec: nothing is kept, and the status says so.
        assert!(status["persistence"].get("mode").is_none(), "{status}");
        assert!(
            status["persistence"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no volume")),
            "{status}"
        );
        assert_eq!(
            status["nodes"],
            json!([
                { "pod": "cache-0", "ready": false },
                { "pod": "cache-1", "ready": false },
                { "pod": "cache-2", "ready": false }
            ])
        );
        assert_eq!(status["replicas"], 0, "no server answered: {status}");
        assert_eq!(
            status["selector"],
            "app.kubernetes.io/instance=cache,app.kubernetes.io/name=tandem-server"
        );
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "Available",
                "Progressing",
                "Degraded",
                "SyncLoop",
                "Ready",
                "Reconciling",
                "Stalled"
            ]
        );
        assert_eq!(status["conditions"][4]["status"], "False");
        assert_eq!(status["conditions"][4]["reason"], "Pending");
        assert_eq!(status["conditions"][5]["status"], "True");
        assert_eq!(status["conditions"][6]["status"], "False");
        api
    })
    .await;
    assert_eq!(
        result.expect("reconciled"),
        Action::requeue(REQUEUE_ACTIVE),
        "waiting for the pods to answer"
    );
    drop(ctx);
}

#[tokio::test]
async fn memory_budget_overrun_degrades_with_a_warning() {
    let resource = rrs(&format!(
        "{SEED}  resources: {{ limits: {{ memory: 16Gi }} }}\n"
    ));
    let (result, _ctx) = run_scenario(resource, |mut api, resource| async move {
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth"),
            Reply::Json(StatusCode::OK, password_secret("pw")),
        )
        .await;
        let names = CommandNames::generate();
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth-conf"),
            Reply::Json(StatusCode::OK, auth_conf_secret(&names)),
        )
        .await;
        let applies = expect_applies(&mut api).await;
        assert_eq!(
            CommandNames::parse(&secret_data(&applies[0].body, "renamed-commands")),
            Ok(names),
            "stored names are kept, never regenerated"
        );
        expect_pod_list(&mut api, &[("cache-0", true, Some("master"))]).await;
        expect_event(&mut api, "Normal", "ReplicationTuned").await;
        let warning = expect_event(&mut api, "Warning", "MemoryBudgetExceeded").await;
        assert!(
            warning["note"]
                .as_str()
                .expect("note")
                .starts_with("memory limit 16Gi is below"),
            "{warning}"
        );
        let status = expect_status(&mut api, &resource).await;
        assert_eq!(status["phase"], "Degraded");
        assert_eq!(status["conditions"][2]["type"], "Degraded");
        assert_eq!(status["conditions"][2]["status"], "True");
        assert_eq!(status["conditions"][2]["reason"], "MemoryBudgetExceeded");
        api
    })
    .await;
    assert!(result.is_ok());
}

/// Replays a reconcile of an existing set with the secrets in place, up to its status
/// write; returns the seven applies (the StatefulSet last).
async fn reconcile_existing(
    mut api: ApiServer,
    pods: &[(&str, bool, Option<&str>)],
) -> (ApiServer, Vec<Seen>) {
    api.expect(
        Method::GET,
        &format!("{NS}/secrets/cache-auth"),
        Reply::Json(StatusCode::OK, password_secret("pw")),
    )
    .await;
    api.expect(
        Method::GET,
        &format!("{NS}/secrets/cache-auth-conf"),
        Reply::Json(StatusCode::OK, auth_conf_secret(&CommandNames::generate())),
    )
    .await;
    let applies = expect_applies(&mut api).await;
    expect_pod_list(&mut api, pods).await;
    expect_event(&mut api, "Normal", "ReplicationTuned").await;
    (api, applies)
}

#[tokio::test]
async fn a_scale_subresource_patch_resizes_the_statefulset() {
    // `kubectl scale rrs cache --replicas=5` writes spec.replicas through the scale
    // subresource (the CRD maps it there); the next reconcile carries it to the StatefulSet.
    let scaled = rrs(&SEED.replace("replicas: 3", "replicas: 5"));
    assert_eq!(scaled.spec.replicas, 5);
    let (result, _ctx) = run_scenario(scaled, |api, resource| async move {
        let (mut api, applies) =
            reconcile_existing(api, &[("cache-0", true, Some("master"))]).await;
        assert_eq!(applies[7].body["spec"]["replicas"], 5);
        let status = expect_status(&mut api, &resource).await;
        assert_eq!(status["ready"], "0/5");
        assert_eq!(
            status["nodes"].as_array().map(Vec::len),
            Some(5),
            "one entry per desired ordinal: {status}"
        );
        assert_eq!(
            status["selector"],
            "app.kubernetes.io/instance=cache,app.kubernetes.io/name=tandem-server",
            "the scale subresource's labelSelectorPath"
        );
        api
    })
    .await;
    result.expect("reconciled");
}

#[tokio::test]
async fn every_pod_knob_lands_in_the_applied_objects() {
    let knobs = format!(
        "{SEED}{}",
        r"  image: registry.example.com/tandem-server:1.2.3
  imagePullPolicy: Always
  imagePullSecrets: [ { name: registry-creds } ]
  podLabels: { team: payments }
  podAnnotations: { example.com/owner: payments }
  priorityClassName: databases
  topologySpreadConstraints:
  - { maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway,
      labelSelector: { matchLabels: { app.kubernetes.io/instance: cache } } }
  extraContainers:
  - { name: shipper, image: example.com/shipper:1, volumeMounts: [ { name: spool, mountPath: /spool } ] }
  extraVolumes:
  - { name: spool, emptyDir: {} }
  serviceType: LoadBalancer
  serviceAnnotations: { service.beta.kubernetes.io/aws-load-balancer-internal: 'true' }
  loadBalancerSourceRanges: [ 10.0.0.0/8 ]
"
    );
    let (result, _ctx) = run_scenario(rrs(&knobs), |api, resource| async move {
        let (mut api, applies) =
            reconcile_existing(api, &[("cache-0", true, Some("master"))]).await;
        let [headless, master, replicas] = [&applies[2], &applies[3], &applies[4]];
        for service in [master, replicas] {
            assert_eq!(
                service.body["metadata"]["annotations"],
                json!({ "service.beta.kubernetes.io/aws-load-balancer-internal": "true" })
            );
            assert_eq!(service.body["spec"]["type"], "LoadBalancer");
            assert_eq!(
                service.body["spec"]["loadBalancerSourceRanges"],
                json!(["10.0.0.0/8"])
            );
        }
        assert!(
            headless.body["metadata"].get("annotations").is_none(),
            "the headless Service is the operator's own: {}",
            headless.body
        );
        let template = &applies[7].body["spec"]["template"];
        let labels = &template["metadata"]["labels"];
        assert_eq!(labels["team"], "payments");
        assert_eq!(labels["app.kubernetes.io/instance"], "cache");
        assert_eq!(
            template["metadata"]["annotations"],
            json!({ "example.com/owner": "payments" })
        );
        let pod = &template["spec"];
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{ "name": "registry-creds" }])
        );
        assert_eq!(pod["priorityClassName"], "databases");
        assert_eq!(
            pod["topologySpreadConstraints"][0]["topologyKey"],
            "topology.kubernetes.io/zone"
        );
        let containers: Vec<&str> = pod["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(containers, ["server", "shipper"]);
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.example.com/tandem-server:1.2.3"
        );
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(volumes, ["config", "auth", "tmp", "data", "spool"]);
        expect_status(&mut api, &resource).await;
        api
    })
    .await;
    result.expect("reconciled");
}

#[tokio::test]
async fn a_status_from_before_status_nodes_is_cleared_then_applied() {
    // What an operator before the rename left: the per-pod list in status.replicas.
    let mut old = serde_json::to_value(rrs(SEED)).expect("json");
    old["status"] = json!({
        "replicas": [
            { "pod": "cache-1", "ready": true, "state": "online" },
            { "pod": "cache-2", "ready": true, "state": "online" }
        ]
    });
    let resource: RedisReplicaSet = serde_json::from_value(old).expect("an old status still loads");
    let status = resource.status.as_ref().expect("status");
    assert_eq!((status.replicas, status.nodes.len()), (None, 0));
    let (result, _ctx) = run_scenario(resource, |api, resource| async move {
        let (mut api, _) = reconcile_existing(api, &[("cache-0", true, Some("master"))]).await;
        let cleared = api
            .expect(
                Method::PATCH,
                "/apis/tandem.dev/v1alpha1/namespaces/ns1/redisreplicasets/cache/status",
                Reply::EchoOnto(serde_json::to_value(&resource).expect("json")),
            )
            .await;
        assert_eq!(cleared.body, json!({ "status": { "replicas": null } }));
        assert!(
            !cleared.query.contains("force=true"),
            "a merge patch, not an apply: {}",
            cleared.query
        );
        let status = expect_status(&mut api, &resource).await;
        assert_eq!(status["replicas"], 0);
        assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3));
        api
    })
    .await;
    result.expect("reconciled");
}

#[tokio::test]
async fn invalid_spec_is_reported_and_waits_for_a_change() {
    let resource = rrs(&format!("{SEED}  serverConfig: {{ port: '7000' }}\n"));
    let (result, ctx) = run_scenario(resource.clone(), |mut api, resource| async move {
        let warning = expect_event(&mut api, "Warning", "InvalidSpec").await;
        assert!(
            warning["note"]
                .as_str()
                .expect("note")
                .starts_with("serverConfig does not allow port"),
            "{warning}"
        );
        let status = expect_status(&mut api, &resource).await;
        assert_eq!(status["phase"], "Degraded");
        assert_eq!(status["conditions"][0]["reason"], "InvalidSpec");
        let stalled = &status["conditions"][3];
        assert_eq!(
            (&stalled["type"], &stalled["status"], &stalled["reason"]),
            (&json!("Stalled"), &json!("True"), &json!("InvalidSpec")),
            "kstatus tools see a set only the user can fix: {status}"
        );
        assert_eq!(status["conditions"][1]["type"], "Ready");
        assert_eq!(status["conditions"][1]["status"], "False");
        api
    })
    .await;
    let err = result.expect_err("invalid");
    assert_eq!(err.category(), "invalid_spec");
    assert_eq!(
        error_policy(Arc::new(resource), &err, ctx),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_resource_being_deleted_is_left_to_the_garbage_collector() {
    let mut resource = rrs(SEED);
    resource.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(test_clock()),
    );
    let (result, _ctx) = run_scenario(resource, |api, _resource| async move { api }).await;
    assert_eq!(result.expect("reconciled"), Action::await_change());
}

#[tokio::test]
async fn run_fails_fast_when_the_crd_is_missing() {
    let (client, mut api) = crate::fixtures::mock_client();
    let server = tokio::spawn(async move {
        let s = api
            .expect(
                Method::GET,
                "/apis/tandem.dev/v1alpha1/namespaces/ops/redisreplicasets",
                Reply::not_found("the server could not find the requested resource"),
            )
            .await;
        assert!(s.query.contains("limit=1"), "{}", s.query);
    });
    let settings = Settings {
        namespace: Some("ops".to_owned()),
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        lease: None,
        reporter: Reporter {
            controller: "tandem-operator".to_owned(),
            instance: None,
        },
        server_image: DEFAULT_IMAGE.to_owned(),
    };
    let err = run(client, settings, Shutdown::default())
        .await
        .expect_err("no CRD");
    server
        .await
        .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
    assert!(err.to_string().contains("is the CRD installed?"), "{err}");
}

/// The whole controller against a mock API server: it lists and watches the resource,
/// every owned kind and the pods, in the one namespace, with the operator's label
/// selector on children; then it stops on shutdown.
#[tokio::test]
async fn run_watches_everything_in_its_namespace_and_stops_on_shutdown() {
    let (client, api) = crate::fixtures::mock_client();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(api.serve(seen_tx, |_, _| None));
    let settings = Settings {
        namespace: Some("db".to_owned()),
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        lease: None,
        reporter: Reporter {
            controller: "tandem-operator".to_owned(),
            instance: None,
        },
        server_image: DEFAULT_IMAGE.to_owned(),
    };
    let shutdown = Shutdown::default();
    let running = tokio::spawn(run(client, settings, shutdown.clone()));

    let mut wanted: std::collections::BTreeSet<&str> = [
        "/apis/tandem.dev/v1alpha1/namespaces/db/redisreplicasets",
        "/apis/apps/v1/namespaces/db/statefulsets",
        "/api/v1/namespaces/db/services",
        "/api/v1/namespaces/db/configmaps",
        "/api/v1/namespaces/db/secrets",
        "/apis/policy/v1/namespaces/db/poddisruptionbudgets",
        "/api/v1/namespaces/db/pods",
    ]
    .into();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !wanted.is_empty() {
            let (path, query) = seen.recv().await.expect("requests keep coming");
            if !path.ends_with("redisreplicasets") {
                assert!(
                    query
                        .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtandem-operator"),
                    "{path}?{query}"
                );
            }
            wanted.remove(path.as_str());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never listed {wanted:?}"));

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops on shutdown")
        .expect("task")
        .expect("clean exit");
}

/// A leader that finds another holder on renewal stops acting and reports it.
#[tokio::test]
async fn losing_the_lease_stops_the_controller() {
    let (client, api) = crate::fixtures::mock_client();
    let (seen_tx, _seen) = tokio::sync::mpsc::unbounded_channel();
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/tandem-operator";
    let mut lease_reads = 0;
    tokio::spawn(api.serve(seen_tx, move |method, path| match (method.as_str(), path) {
        ("GET", p) if p == lease_path => {
            lease_reads += 1;
            Some(if lease_reads == 1 {
                (StatusCode::NOT_FOUND, json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404 }))
            } else {
                (StatusCode::OK, json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": { "name": "tandem-operator", "namespace": "ops", "resourceVersion": "5" },
                    "spec": { "holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now()) }
                }))
            })
        }
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/ops/leases") => Some((StatusCode::CREATED, json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": "tandem-operator", "namespace": "ops", "resourceVersion": "4" },
            "spec": { "holderIdentity": "me" }
        }))),
        _ => None,
    }));
    let settings = Settings {
        namespace: None,
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        lease: Some(LeaseConfig {
            name: "tandem-operator".to_owned(),
            namespace: "ops".to_owned(),
            identity: "me".to_owned(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_millis(50),
        }),
        reporter: Reporter {
            controller: "tandem-operator".to_owned(),
            instance: None,
        },
        server_image: DEFAULT_IMAGE.to_owned(),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(client, settings, Shutdown::default()),
    )
    .await
    .expect("stops by itself");
    assert!(
        matches!(result, Err(RunError::LostLeadership)),
        "{result:?}"
    );
}

#[tokio::test]
async fn shutdown_reaches_every_waiter() {
    let shutdown = Shutdown::default();
    let before = shutdown.wait();
    let clone = shutdown.clone();
    assert!(!shutdown.is_triggered());
    clone.trigger();
    tokio::time::timeout(Duration::from_secs(1), before)
        .await
        .expect("waiter created before the trigger");
    tokio::time::timeout(Duration::from_secs(1), shutdown.wait())
        .await
        .expect("waiter created after the trigger");
}

#[tokio::test]
async fn a_secret_without_a_password_is_reported_and_retried() {
    let (result, ctx) = run_scenario(rrs(SEED), |mut api, resource| async move {
        let mut secret = password_secret("unused");
        secret["data"] = json!({ "pass": "eA==" });
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth"),
            Reply::Json(StatusCode::OK, secret),
        )
        .await;
        let warning = expect_event(&mut api, "Warning", "InvalidAuthSecret").await;
        assert_eq!(
            warning["note"],
            "failed to read auth secret cache-auth: it has no key \"password\""
        );
        let status = expect_status(&mut api, &resource).await;
        assert_eq!(status["conditions"][0]["reason"], "InvalidAuthSecret");
        api
    })
    .await;
    let err = result.expect_err("no password");
    assert_eq!(err.category(), "auth");
    let action = error_policy(Arc::new(rrs(SEED)), &err, ctx);
    assert_ne!(
        action,
        Action::await_change(),
        "a Secret edit does not trigger a reconcile, so retry"
    );
}

#[tokio::test]
async fn api_failure_backs_off_per_object() {
    let (result, ctx) = run_scenario(rrs(SEED), |mut api, _resource| async move {
        api.expect(
            Method::GET,
            &format!("{NS}/secrets/cache-auth"),
            Reply::Json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "etcd unavailable", "reason": "InternalError", "code": 500
                }),
            ),
        )
        .await;
        api
    })
    .await;
    let err = result.expect_err("api failure");
    assert_eq!(err.category(), "auth");
    assert!(
        err.to_string()
            .starts_with("failed to get auth secret cache-auth"),
        "{err}"
    );
    let resource = Arc::new(rrs(SEED));
    let first = error_policy(resource.clone(), &err, ctx.clone());
    let second = error_policy(resource, &err, ctx);
    let secs = |a: &Action| format!("{a:?}");
    assert_ne!(secs(&first), secs(&second), "the delay grows");
}
