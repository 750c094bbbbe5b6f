//! The controller's reconcile over real tandem-server nodes (this package's binary runs
//! them: `tandem-operator server`) behind a fake API server: the data plane wires roles,
//! labels and status and fails over; a scale-in switches the master over before the
//! StatefulSet shrinks; a rolling update replaces replicas first. Pod DNS names resolve to the
//! nodes on the loopback. The request-by-request mock tests are in `src/controller/tests.rs`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tandem_operator::controller::{Context, REQUEUE_ACTIVE, REQUEUE_STABLE, reconcile};
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::dataplane::pods::Resolve;
use tandem_operator::dataplane::roles::NodeAddr;
use tandem_operator::fixtures::{
    ApiServer, NS, SEED, auth_conf_secret, password_secret, pods_list, test_clock,
    test_context_resolving,
};
use tandem_operator::renames::CommandNames;
use tandem_operator::resources::fixtures::rrs;

/// A tandem-server process (this package's operator binary runs one: `tandem-operator
/// server`), started as a replica of itself like a pod, killed on drop.
struct Node {
    child: std::process::Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This package's operator binary, which runs tandem-server as `tandem-operator server`.
fn operator_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tandem-operator"))
}

/// A node as a pod runs it: with `renames` (rename-command lines) on its command line.
fn start_node(bin: &Path, password: &str, renames: &CommandNames) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(bin)
        .args(["server", "--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--requirepass",
            password,
            "--masterauth",
            password,
        ])
        .args(["--replicaof", "127.0.0.1", &port.to_string()])
        .args(renames.directives().lines().flat_map(|l| {
            let words: Vec<String> = l
                .split(' ')
                .map(|w| w.trim_matches('"').to_owned())
                .collect();
            [
                format!("--{}", words[0]),
                words[1].clone(),
                words[2].clone(),
            ]
        }))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tandem-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tandem-server on {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Node { child, port }
}

/// Pod DNS names `cache-i` resolved to the local node `nodes[i]`.
fn resolve_to(nodes: &[Node]) -> Resolve {
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    Arc::new(move |host: &str| {
        let i: usize = host
            .strip_prefix("cache-")
            .and_then(|h| h.strip_suffix(".cache-headless.ns1.svc"))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a pod DNS name: {host}"));
        NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: ports[i],
        }
    })
}

/// What the fake API server saw, in order.
type Requests = tokio::sync::mpsc::UnboundedReceiver<(Method, String, Value)>;

/// Called by the fake API server with (pod, role) when a role label patch arrives, before
/// it answers: what the servers look like at that moment.
type OnLabel = Box<dyn FnMut(&str, &str) + Send>;

/// Pod state the test controls: the StatefulSet's update revision as the fake API server
/// reports it (None: not reported) and each pod's revision (`r1` until deleted; a deleted
/// pod is recreated at the update revision at once, its server kept running); the pods
/// listed with a deletion timestamp; a hook on label patches.
#[derive(Default)]
struct Revisions {
    update: Option<String>,
    pods: std::collections::BTreeMap<String, String>,
    deleting: std::collections::BTreeSet<String>,
    on_label: Option<OnLabel>,
}

/// A fake API server for multi-reconcile scenarios: the Secret holds `password`, applies
/// and events are echoed, pods are listed with the labels patched onto them so far.
fn fake_api(
    api: ApiServer,
    pods: &'static [&'static str],
    password: &str,
    names: &CommandNames,
) -> Requests {
    fake_api_with(api, pods, password, names, Arc::default())
}

/// [`fake_api`] with pod state the test controls.
fn fake_api_with(
    api: ApiServer,
    pods: &'static [&'static str],
    password: &str,
    names: &CommandNames,
    revisions: Arc<Mutex<Revisions>>,
) -> Requests {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let secret = password_secret(password);
    let auth_conf = auth_conf_secret(names);
    let mut labels: std::collections::BTreeMap<String, String> = Default::default();
    tokio::spawn(api.answer(tx, move |method, path, body| {
        let pod_path = format!("{NS}/pods/");
        match (method.as_str(), path) {
            ("GET", p) if p == format!("{NS}/secrets/cache-auth") => {
                (StatusCode::OK, secret.clone())
            }
            ("GET", p) if p == format!("{NS}/secrets/cache-auth-conf") => {
                (StatusCode::OK, auth_conf.clone())
            }
            ("GET", p) if p == format!("{NS}/pods") => {
                let listed: Vec<(&str, bool, Option<&str>)> = pods
                    .iter()
                    .map(|p| (*p, true, labels.get(*p).map(String::as_str)))
                    .collect();
                let mut list = pods_list(&listed);
                let revisions = revisions.lock().expect("revisions");
                for item in list["items"].as_array_mut().expect("items") {
                    let name = item["metadata"]["name"].as_str().expect("name");
                    if revisions.deleting.contains(name) {
                        item["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
                    }
                }
                if revisions.update.is_some() {
                    for item in list["items"].as_array_mut().expect("items") {
                        let name = item["metadata"]["name"].as_str().expect("name");
                        let revision = revisions.pods.get(name).map_or("r1", String::as_str);
                        item["metadata"]["labels"]["controller-revision-hash"] =
                            json!(revision);
                    }
                }
                (StatusCode::OK, list)
            }
            ("DELETE", p) if p.starts_with(&pod_path) => {
                let pod = &p[pod_path.len()..];
                let mut revisions = revisions.lock().expect("revisions");
                let update = revisions.update.clone().expect("deleted before a rollout");
                revisions.pods.insert(pod.to_owned(), update);
                (StatusCode::OK, json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": pod, "namespace": "ns1" } }))
            }
            ("PATCH", p) if p.ends_with("/statefulsets/cache") => {
                let mut object = body.clone();
                if let Some(update) = &revisions.lock().expect("revisions").update {
                    object["status"] = json!({ "replicas": 0, "updateRevision": update });
                }
                (StatusCode::OK, object)
            }
            ("PATCH", p) if p.starts_with(&pod_path) => {
                let pod = &p[pod_path.len()..];
                let role = body["metadata"]["labels"]["tandem.dev/role"]
                    .as_str()
                    .expect("role label patch");
                if let Some(hook) = &mut revisions.lock().expect("revisions").on_label {
                    hook(pod, role);
                }
                labels.insert(pod.to_owned(), role.to_owned());
                (StatusCode::OK, json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": pod, "namespace": "ns1", "labels": { "tandem.dev/role": role } } }))
            }
            ("PATCH", p) if p.ends_with("/status") => {
                let mut object = serde_json::to_value(rrs(SEED)).expect("json");
                object["status"] = body["status"].clone();
                (StatusCode::OK, object)
            }
            _ => (StatusCode::OK, body.clone()),
        }
    }));
    rx
}

/// Requests seen so far, without waiting.
fn drain(requests: &mut Requests) -> Vec<(Method, String, Value)> {
    std::iter::from_fn(|| requests.try_recv().ok()).collect()
}

fn label_patches(seen: &[(Method, String, Value)]) -> Vec<(String, String)> {
    seen.iter()
        .filter(|(m, p, _)| *m == Method::PATCH && p.starts_with(&format!("{NS}/pods/")))
        .map(|(_, p, b)| {
            (
                p.rsplit('/').next().unwrap_or_default().to_owned(),
                b["metadata"]["labels"]["tandem.dev/role"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn statuses(seen: &[(Method, String, Value)]) -> Vec<Value> {
    seen.iter()
        .filter(|(m, p, _)| *m == Method::PATCH && p.ends_with("/status"))
        .map(|(_, _, b)| b["status"].clone())
        .collect()
}

fn events(seen: &[(Method, String, Value)]) -> Vec<Value> {
    seen.iter()
        .filter(|(m, p, _)| *m == Method::POST && p.ends_with("/events"))
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// The in-cluster data plane over real servers: the first reconcile promotes cache-0
/// and labels the pods (replica first), the status follows the replica's sync to online,
/// a steady reconcile writes nothing; then `kill -9` of the master: FailingOver while
/// down-after runs, then cache-1 promoted, the labels moved, a FailedOver Warning with
/// the offsets, and lastFailover in the status.
#[tokio::test]
async fn the_data_plane_wires_roles_labels_status_and_fails_over() {
    let bin = operator_binary();
    let password = "pw";
    let names = CommandNames::generate();
    // cache-0 started with the set's renames; cache-1 before the set had any (a pod
    // that has not restarted since): the operator must reach both.
    let mut nodes = vec![
        start_node(bin, password, &names),
        start_node(bin, password, &CommandNames::plain()),
    ];
    let (ctx, api) = test_context_resolving(resolve_to(&nodes));
    let mut requests = fake_api(api, &["cache-0", "cache-1"], password, &names);
    let mut resource =
        rrs("  replicas: 2\n  datasetSizeHint: 64Mi\n  failover: { downAfterSeconds: 1 }\n");

    // Until cache-1 is online behind cache-0.
    let mut seen = Vec::new();
    let mut first_action = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let action = reconcile(Arc::new(resource.clone()), ctx.clone())
            .await
            .expect("reconciled");
        first_action.get_or_insert(action);
        let new = drain(&mut requests);
        if let Some(status) = statuses(&new).last() {
            resource.status = Some(serde_json::from_value(status.clone()).expect("status"));
        }
        seen.extend(new);
        let status = resource.status.as_ref().expect("a status was written");
        if status.nodes.first().and_then(|r| r.state.as_deref()) == Some("online") {
            break;
        }
        assert!(Instant::now() < deadline, "never online: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first_action, Some(Action::requeue(REQUEUE_ACTIVE)));
    assert_eq!(
        label_patches(&seen),
        [
            ("cache-1".to_owned(), "replica".to_owned()),
            ("cache-0".to_owned(), "master".to_owned())
        ],
        "labels once, the replica first so the master Service never has two pods"
    );
    let status = serde_json::to_value(resource.status.as_ref().expect("status")).expect("json");
    assert_eq!(status["master"], "cache-0");
    assert_eq!(status["phase"], "Ready", "{status}");
    assert_eq!(status["ready"], "2/2");
    let replica = &status["nodes"][0];
    assert_eq!(replica["pod"], "cache-1");
    assert_eq!(replica["state"], "online");
    assert_eq!(replica["linkStatus"], "up");
    assert!(
        replica["offset"].as_i64().is_some() && replica["lag"].as_i64().is_some(),
        "{replica}"
    );
    assert!(status["masterOffset"].as_i64().is_some(), "{status}");
    assert_eq!(status["fullSyncs"], 1, "{status}");
    let sync_loop = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "SyncLoop")
        .expect("SyncLoop condition");
    assert_eq!(sync_loop["status"], "False");
    assert_eq!(status["replicas"], 2, "both servers answered: {status}");
    let ready_of = |s: &Value| {
        s["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone())
    };
    assert_eq!(ready_of(&status), Some(json!("True")), "{status}");
    assert_eq!(
        ready_of(&statuses(&seen)[0]),
        Some(json!("False")),
        "Ready flips with the set, not before it"
    );
    let tuned = statuses(&seen)
        .iter()
        .any(|s| s["nodes"][0]["state"] != "online");
    assert!(
        tuned,
        "the replica's sync states before online are reported"
    );
    // The tuning reached both nodes, cache-0 through its secret CONFIG name, which an
    // ordinary client does not have.
    let timeout = status["replication"]["replTimeoutSeconds"].to_string();
    for (node, config) in [(&nodes[0], names.config()), (&nodes[1], "CONFIG")] {
        let mut c = redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/", node.port))
            .expect("client")
            .get_connection()
            .expect("connection");
        let pair: Vec<String> = redis::cmd(config)
            .arg("GET")
            .arg("repl-timeout")
            .query(&mut c)
            .expect("CONFIG GET");
        assert_eq!(pair, ["repl-timeout".to_owned(), timeout.clone()]);
        if node.port == nodes[0].port {
            let refused = redis::cmd("CONFIG")
                .arg("GET")
                .arg("requirepass")
                .query::<Vec<String>>(&mut c)
                .expect_err("CONFIG is renamed");
            assert!(
                refused.to_string().contains("unknown command 'CONFIG'"),
                "{refused}"
            );
        }
    }

    // Steady: nothing to write, the usual interval.
    let action = reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    let steady = drain(&mut requests);
    assert!(
        statuses(&steady).is_empty()
            && events(&steady).is_empty()
            && label_patches(&steady).is_empty()
    );
    assert_eq!(action, Action::requeue(REQUEUE_STABLE));

    // An operator restart: a data plane made afresh from the stored status takes the
    // knowledge back and changes nothing: no status write, event, label or REPLICAOF.
    let knowledge = |ctx: &Context| {
        let map = ctx.dataplanes.lock().expect("lock");
        let dp = map["ns1/cache"].try_lock().expect("idle");
        (dp.knowledge.clone(), dp.record())
    };
    let before = knowledge(&ctx);
    assert_eq!(before.0.trusted.len(), 2, "{:?}", before.0);
    ctx.dataplanes.lock().expect("lock").clear();
    let action = reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    let restarted = drain(&mut requests);
    assert!(
        statuses(&restarted).is_empty()
            && events(&restarted).is_empty()
            && label_patches(&restarted).is_empty(),
        "{restarted:?}"
    );
    assert_eq!(action, Action::requeue(REQUEUE_STABLE));
    let after = knowledge(&ctx);
    assert_eq!(
        (after.0.master, after.0.trusted, after.1),
        (before.0.master, before.0.trusted, before.1)
    );

    // kill -9 of the master.
    drop(nodes.remove(0));
    let mut seen = Vec::new();
    let mut failing_over = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed_over = loop {
        let action = reconcile(Arc::new(resource.clone()), ctx.clone())
            .await
            .expect("an unreachable pod does not fail the reconcile");
        let new = drain(&mut requests);
        if let Some(status) = statuses(&new).last() {
            failing_over |= status["phase"] == "FailingOver";
            resource.status = Some(serde_json::from_value(status.clone()).expect("status"));
        }
        seen.extend(new);
        if let Some(e) = events(&seen)
            .into_iter()
            .find(|e| e["reason"] == "FailedOver")
        {
            break e;
        }
        assert_eq!(
            action,
            Action::requeue(REQUEUE_ACTIVE),
            "while the failover is pending"
        );
        assert!(
            Instant::now() < deadline,
            "never failed over: {:?}",
            resource.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        failing_over,
        "the phase showed FailingOver while down-after ran"
    );
    assert_eq!(failed_over["type"], "Warning");
    let note = failed_over["note"].as_str().expect("note");
    assert!(
        note.starts_with("failover from cache-0 (offset ")
            && note.contains(") to cache-1 (offset ")
            && note.contains("bytes of writes may be lost"),
        "{note}"
    );
    assert_eq!(
        label_patches(&seen),
        [
            ("cache-0".to_owned(), "replica".to_owned()),
            ("cache-1".to_owned(), "master".to_owned())
        ]
    );
    let status = serde_json::to_value(resource.status.as_ref().expect("status")).expect("json");
    assert_eq!(status["master"], "cache-1", "{status}");
    assert_eq!(status["lastFailover"]["from"], "cache-0");
    assert_eq!(status["lastFailover"]["to"], "cache-1");

    // Deleting the set drops its data-plane knowledge.
    let has_knowledge = |ctx: &Context| {
        ctx.dataplanes
            .lock()
            .expect("lock")
            .contains_key("ns1/cache")
    };
    assert!(has_knowledge(&ctx));
    resource.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(test_clock()),
    );
    let action = reconcile(Arc::new(resource), ctx.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    assert!(!has_knowledge(&ctx));
}

/// Reconciles until `done` holds for the status written, collecting every request seen
/// into `seen` and the written status into `resource`.
async fn reconcile_until(
    ctx: &Arc<Context>,
    resource: &mut RedisReplicaSet,
    requests: &mut Requests,
    seen: &mut Vec<(Method, String, Value)>,
    what: &str,
    done: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        reconcile(Arc::new(resource.clone()), ctx.clone())
            .await
            .expect("reconciled");
        let new = drain(requests);
        if let Some(status) = statuses(&new).last() {
            resource.status = Some(serde_json::from_value(status.clone()).expect("status"));
        }
        seen.extend(new);
        let status = serde_json::to_value(&resource.status).expect("json");
        if done(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn every_replica_online(status: &Value) -> bool {
    status["phase"] == "Ready"
        && status["nodes"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["state"] == "online"))
}

/// Replicas given to each StatefulSet apply, in order, with the request's index.
fn statefulset_sizes(seen: &[(Method, String, Value)]) -> Vec<(usize, i64)> {
    seen.iter()
        .enumerate()
        .filter(|(_, (m, p, _))| *m == Method::PATCH && p.ends_with("/statefulsets/cache"))
        .map(|(i, (_, _, b))| (i, b["spec"]["replicas"].as_i64().expect("replicas")))
        .collect()
}

fn redis_conn(node: &Node, password: &str) -> redis::Connection {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/", node.port))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect")
}

/// `SET k0..k99` on `m`, then `WAIT` until `replicas` replicas have them.
fn write_keys_acked(m: &mut redis::Connection, replicas: i64) {
    for i in 0..100 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(m)
            .expect("SET");
    }
    let acked: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(5000)
        .query(m)
        .expect("WAIT");
    assert_eq!(acked, replicas);
}

/// Every key of [`write_keys_acked`] is on `n` with its value.
fn assert_keys_kept(n: &mut redis::Connection) {
    for k in 0..100 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("k{k}"))
            .query(n)
            .expect("GET");
        assert_eq!(v, Some(k), "k{k} acknowledged by WAIT and lost");
    }
}

fn role_of(conn: &mut redis::Connection) -> (String, Option<String>) {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(conn)
        .expect("INFO");
    let field = |f: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{f}:")))
            .map(|v| v.trim().to_owned())
    };
    (field("role").expect("role"), field("master_port"))
}

/// Scale-in 3 -> 2 with the master on cache-2: the StatefulSet stays at 3 until the
/// master was switched over to cache-0 or cache-1 (labels moved, SwitchedOver event,
/// lastSwitchover), then shrinks to 2; no failover, no write acknowledged by WAIT lost,
/// the old master follows the new one.
#[tokio::test]
async fn scale_in_switches_the_master_over_before_the_statefulset_shrinks() {
    let bin = operator_binary();
    let password = "pw";
    let names = CommandNames::generate();
    let nodes: Vec<Node> = (0..3).map(|_| start_node(bin, password, &names)).collect();
    // cache-2 already serves as master: the operator adopts it.
    redis::cmd(names.replicaof())
        .arg("NO")
        .arg("ONE")
        .query::<()>(&mut redis_conn(&nodes[2], password))
        .expect("REPLICAOF NO ONE");
    let (ctx, api) = test_context_resolving(resolve_to(&nodes));
    let mut requests = fake_api(api, &["cache-0", "cache-1", "cache-2"], password, &names);
    let mut resource = rrs("  replicas: 3\n  datasetSizeHint: 64Mi\n");
    let mut seen = Vec::new();
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "Ready behind cache-2",
        |s| s["master"] == "cache-2" && every_replica_online(s),
    )
    .await;
    let mut m = redis_conn(&nodes[2], password);
    write_keys_acked(&mut m, 2);

    resource.spec.replicas = 2;
    let mut seen = Vec::new();
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "scaled in behind a surviving master",
        |s| {
            s["master"]
                .as_str()
                .is_some_and(|m| m == "cache-0" || m == "cache-1")
                && every_replica_online(s)
        },
    )
    .await;
    // One more reconcile applies the smaller StatefulSet.
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "the StatefulSet shrunk",
        |_| true,
    )
    .await;
    let new_master = resource
        .status
        .as_ref()
        .and_then(|s| s.master.clone())
        .expect("master");

    let sizes = statefulset_sizes(&seen);
    let first_shrink = sizes
        .iter()
        .find(|(_, r)| *r == 2)
        .map(|(i, _)| *i)
        .expect("the StatefulSet was shrunk");
    assert_eq!(
        sizes.first().map(|(_, r)| *r),
        Some(3),
        "held at 3 while cache-2 is master: {sizes:?}"
    );
    let label_moves: Vec<(usize, String, String)> = seen
        .iter()
        .enumerate()
        .filter(|(_, (m, p, _))| *m == Method::PATCH && p.starts_with(&format!("{NS}/pods/")))
        .map(|(i, (_, p, b))| {
            (
                i,
                p.rsplit('/').next().unwrap_or_default().to_owned(),
                b["metadata"]["labels"]["tandem.dev/role"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let demoted = label_moves
        .iter()
        .find(|(_, pod, role)| pod == "cache-2" && role == "replica")
        .expect("cache-2 labelled replica");
    let promoted = label_moves
        .iter()
        .find(|(_, pod, role)| *pod == new_master && role == "master")
        .expect("the new master labelled");
    assert!(
        demoted.0 < promoted.0 && promoted.0 < first_shrink,
        "labels moved (replica first) before the StatefulSet shrank: {label_moves:?}, shrink at {first_shrink}"
    );
    let events = events(&seen);
    let switched = events
        .iter()
        .find(|e| e["reason"] == "SwitchedOver")
        .expect("SwitchedOver event");
    assert_eq!(switched["type"], "Normal");
    let note = switched["note"].as_str().expect("note");
    assert!(
        note.starts_with(&format!(
            "switched over from cache-2 to {new_master} at offset "
        )) && note.contains("scale-in to 2 pods removes cache-2"),
        "{note}"
    );
    assert!(
        !events.iter().any(|e| e["reason"] == "FailedOver"),
        "no failover"
    );
    let status = serde_json::to_value(&resource.status).expect("json");
    assert_eq!(status["lastSwitchover"]["from"], "cache-2");
    assert_eq!(status["lastSwitchover"]["to"], new_master.as_str());
    assert!(status.get("lastFailover").is_none(), "{status}");

    let i: usize = new_master
        .strip_prefix("cache-")
        .and_then(|i| i.parse().ok())
        .expect("ordinal");
    let mut n = redis_conn(&nodes[i], password);
    assert_keys_kept(&mut n);
    // The switchover disconnected the old master's clients, so a new connection asks.
    assert_eq!(
        role_of(&mut redis_conn(&nodes[2], password)),
        ("slave".to_owned(), Some(nodes[i].port.to_string())),
        "the old master follows the new one"
    );
}

/// A rolling update (OnDelete): the operator deletes the outdated replicas, highest
/// ordinal first, one at a time, then switches the master over to an updated replica,
/// then deletes the old master; no pod is deleted while labelled master.
#[tokio::test]
async fn a_rolling_update_replaces_replicas_first_and_the_master_after_a_switchover() {
    let bin = operator_binary();
    let password = "pw";
    let names = CommandNames::generate();
    let nodes: Vec<Node> = (0..3).map(|_| start_node(bin, password, &names)).collect();
    let (ctx, api) = test_context_resolving(resolve_to(&nodes));
    let revisions: Arc<Mutex<Revisions>> = Arc::default();
    let mut requests = fake_api_with(
        api,
        &["cache-0", "cache-1", "cache-2"],
        password,
        &names,
        revisions.clone(),
    );
    let mut resource = rrs("  replicas: 3\n  datasetSizeHint: 64Mi\n");
    let mut seen = Vec::new();
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "Ready",
        |s| s["master"] == "cache-0" && every_replica_online(s),
    )
    .await;

    revisions.lock().expect("revisions").update = Some("r2".to_owned());
    let mut seen = Vec::new();
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "every pod updated",
        |s| {
            let all = revisions.lock().expect("revisions").pods.len() == 3;
            all && every_replica_online(s)
        },
    )
    .await;

    let mut labels: std::collections::BTreeMap<String, String> = [
        ("cache-0", "master"),
        ("cache-1", "replica"),
        ("cache-2", "replica"),
    ]
    .into_iter()
    .map(|(p, r)| (p.to_owned(), r.to_owned()))
    .collect();
    let mut deleted = Vec::new();
    let pod_path = format!("{NS}/pods/");
    for (method, path, body) in &seen {
        let Some(pod) = path.strip_prefix(&pod_path) else {
            continue;
        };
        if *method == Method::PATCH {
            let role = body["metadata"]["labels"]["tandem.dev/role"]
                .as_str()
                .expect("role");
            labels.insert(pod.to_owned(), role.to_owned());
        } else if *method == Method::DELETE {
            assert_eq!(
                labels.get(pod).map(String::as_str),
                Some("replica"),
                "{pod} deleted while labelled {:?}",
                labels.get(pod)
            );
            deleted.push(pod.to_owned());
        }
    }
    assert_eq!(deleted, ["cache-2", "cache-1", "cache-0"]);
    let events = events(&seen);
    let switched = events
        .iter()
        .find(|e| e["reason"] == "SwitchedOver")
        .expect("SwitchedOver event");
    assert!(
        switched["note"]
            .as_str()
            .is_some_and(|n| n.contains("rolling update replaces cache-0")),
        "{switched}"
    );
    // The recorder patches a repeated event rather than creating another.
    let replaced = events
        .iter()
        .find(|e| e["reason"] == "PodReplaced")
        .expect("PodReplaced event");
    assert!(
        replaced["note"].as_str().is_some_and(
            |n| n.starts_with("deleted cache-2 so the StatefulSet recreates it at revision r2")
        ),
        "{replaced}"
    );
    assert!(!events.iter().any(|e| e["reason"] == "FailedOver"));
    let status = resource.status.as_ref().expect("status");
    assert_ne!(status.master.as_deref(), Some("cache-0"));
    assert_eq!(
        status.last_switchover.as_ref().map(|s| s.from.as_str()),
        Some("cache-0")
    );

    // Done: a steady reconcile deletes nothing more.
    reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    assert!(
        !drain(&mut requests)
            .iter()
            .any(|(m, _, _)| *m == Method::DELETE)
    );
}

/// Two nodes behind the fake API, reconciled until Ready behind cache-0.
struct Pair {
    nodes: Vec<Node>,
    ctx: Arc<Context>,
    requests: Requests,
    resource: RedisReplicaSet,
    names: CommandNames,
    /// The pod state the fake API lists, as the test controls it.
    pods: Arc<Mutex<Revisions>>,
}

async fn ready_pair(password: &str) -> Pair {
    let names = CommandNames::generate();
    let bin = operator_binary();
    let nodes: Vec<Node> = (0..2).map(|_| start_node(bin, password, &names)).collect();
    let (ctx, api) = test_context_resolving(resolve_to(&nodes));
    let pods: Arc<Mutex<Revisions>> = Arc::default();
    let mut requests = fake_api_with(api, &["cache-0", "cache-1"], password, &names, pods.clone());
    let mut resource = rrs("  replicas: 2\n  datasetSizeHint: 64Mi\n");
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut Vec::new(),
        "Ready behind cache-0",
        |s| s["master"] == "cache-0" && every_replica_online(s),
    )
    .await;
    Pair {
        nodes,
        ctx,
        requests,
        resource,
        names,
        pods,
    }
}

/// `kubectl delete pod` (or a drain, an eviction) of the master: the pod is listed with a
/// deletion timestamp while its server still serves, and the reconcile switches it over at
/// once. When the new master's label patch arrives, writes are already held on the old
/// master (a PUBLISH there waits), the new master is promoted and the old one follows it:
/// pause, promote, label, in that order; then writes are released. A SwitchedOver event
/// names the terminating pod; no failover; every write acknowledged by WAIT is on the new
/// master.
#[tokio::test]
async fn a_master_pod_being_deleted_is_switched_over_before_it_goes() {
    let password = "pw";
    let Pair {
        nodes,
        ctx,
        mut requests,
        mut resource,
        pods,
        ..
    } = ready_pair(password).await;
    let mut m = redis_conn(&nodes[0], password);
    write_keys_acked(&mut m, 1);

    // (pod, role, new master's role, old master's role and master port, PUBLISH on the old
    // master held) at each label patch.
    type AtLabel = (String, String, String, (String, Option<String>), bool);
    let at_label: Arc<Mutex<Vec<AtLabel>>> = Arc::default();
    {
        let at_label = at_label.clone();
        let (old, new) = (nodes[0].port, nodes[1].port);
        let password = password.to_owned();
        let mut pods = pods.lock().expect("pods");
        pods.deleting.insert("cache-0".to_owned());
        pods.on_label = Some(Box::new(move |pod, role| {
            let conn = |port: u16| {
                redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}/"))
                    .expect("client")
                    .get_connection_with_timeout(Duration::from_secs(5))
                    .expect("connect")
            };
            let mut publisher = conn(old);
            publisher
                .set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            let held = redis::cmd("PUBLISH")
                .arg("ch")
                .arg("x")
                .query::<i64>(&mut publisher)
                .is_err_and(|e| e.is_timeout());
            at_label.lock().expect("at_label").push((
                pod.to_owned(),
                role.to_owned(),
                role_of(&mut conn(new)).0,
                role_of(&mut conn(old)),
                held,
            ));
        }));
    }
    let mut seen = Vec::new();
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "switched over to cache-1",
        |s| s["master"] == "cache-1",
    )
    .await;

    assert_eq!(
        *at_label.lock().expect("at_label"),
        [(
            "cache-1".to_owned(),
            "master".to_owned(),
            "master".to_owned(),
            ("slave".to_owned(), Some(nodes[1].port.to_string())),
            true
        )],
        "one label patch, made with writes held, after the promotion and the repointing"
    );
    assert_eq!(
        label_patches(&seen),
        [("cache-1".to_owned(), "master".to_owned())],
        "the terminating pod is not relabelled: it is going"
    );
    let events = events(&seen);
    let switched = events
        .iter()
        .find(|e| e["reason"] == "SwitchedOver")
        .expect("SwitchedOver event");
    let note = switched["note"].as_str().expect("note");
    assert!(
        note.starts_with("switched over from cache-0 to cache-1 at offset ")
            && note.contains("(pod cache-0 is terminating)"),
        "{note}"
    );
    assert!(!events.iter().any(|e| e["reason"] == "FailedOver"));
    let status = serde_json::to_value(resource.status.as_ref().expect("status")).expect("json");
    assert_eq!(status["lastSwitchover"]["from"], "cache-0");
    assert_eq!(
        status["lastSwitchover"]["reason"],
        "pod cache-0 is terminating"
    );
    assert!(status.get("lastFailover").is_none(), "{status}");

    // Writes released: a PUBLISH on the old master answers at once (on a new connection:
    // the switchover disconnected its clients so they find the new master).
    let mut old = redis_conn(&nodes[0], password);
    old.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("ch")
        .arg("y")
        .query(&mut old)
        .expect("writes released after the label moved");
    let mut n = redis_conn(&nodes[1], password);
    assert_keys_kept(&mut n);
}

/// A `spec.serverConfig` edit of live directives reaches every node with CONFIG SET, replicas
/// first, without a restart (no pod deleted), with a `ServerConfigApplied` event; a node in
/// line is not set again. `databases`, which needs a restart, changes the pod template's
/// restart hash instead, so the StatefulSet rolls, replicas first and the master after a
/// switchover, the events naming the cause.
#[tokio::test]
async fn a_server_config_edit_is_applied_live_replicas_first() {
    let password = "pw";
    let Pair {
        nodes,
        ctx,
        mut requests,
        mut resource,
        names,
        pods,
    } = ready_pair(password).await;

    resource.spec.server_config = [
        ("maxmemory-policy", "allkeys-lru"),
        ("maxmemory", "64mb"),
        ("notify-keyspace-events", "KEA"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    let seen = drain(&mut requests);
    let applied: Vec<Value> = events(&seen)
        .into_iter()
        .filter(|e| e["reason"] == "ServerConfigApplied")
        .collect();
    assert_eq!(applied.len(), 1, "{applied:?}");
    let note = applied[0]["note"].as_str().expect("note");
    let (replica_at, master_at) = (
        note.find("cache-1:").expect("the replica"),
        note.find("cache-0:").expect("the master"),
    );
    assert!(replica_at < master_at, "replicas first: {note}");
    assert!(
        note.contains("maxmemory-policy allkeys-lru") && note.contains("maxmemory 67108864"),
        "{note}"
    );
    assert!(
        !seen.iter().any(|(m, _, _)| *m == Method::DELETE),
        "no restart"
    );
    for node in &nodes {
        let mut c = redis_conn(node, password);
        let got: Vec<String> = redis::cmd(names.config())
            .arg("GET")
            .arg("maxmemory*")
            .query(&mut c)
            .expect("CONFIG GET");
        let got: std::collections::BTreeMap<String, String> = got
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        assert_eq!(got["maxmemory-policy"], "allkeys-lru");
        assert_eq!(got["maxmemory"], "67108864");
    }

    let status = statuses(&seen).last().cloned().expect("status written");
    assert_eq!(
        status["serverConfig"],
        json!({ "applied": {
            "maxmemory": "67108864",
            "maxmemory-policy": "allkeys-lru",
            "notify-keyspace-events": "KEA"
        } }),
        "{status}"
    );
    resource.status = Some(serde_json::from_value(status).expect("status"));

    // In line now: nothing is set again, no new event.
    reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    let again = drain(&mut requests);
    assert!(
        !events(&again)
            .iter()
            .any(|e| e["reason"] == "ServerConfigApplied"),
        "{:?}",
        events(&again)
    );

    // databases needs a restart: the template's restart hash appears, nothing is set live.
    resource
        .spec
        .server_config
        .insert("databases".to_owned(), "32".to_owned());
    reconcile(Arc::new(resource.clone()), ctx.clone())
        .await
        .expect("reconciled");
    let restart = drain(&mut requests);
    let template = restart
        .iter()
        .rev()
        .find(|(m, p, _)| *m == Method::PATCH && p.ends_with("/statefulsets/cache"))
        .map(|(_, _, b)| b["spec"]["template"]["metadata"].clone())
        .expect("StatefulSet applied");
    assert!(
        template["annotations"]["tandem.dev/restart-config"].is_string(),
        "{template}"
    );
    let status = statuses(&restart).last().cloned().expect("status written");
    assert_eq!(
        status["serverConfig"]["onRestart"],
        json!({ "databases": "32" })
    );
    assert!(
        !events(&restart)
            .iter()
            .any(|e| e["reason"] == "ServerConfigApplied")
    );

    // The new template's revision rolls the set: replica first, the master after a
    // switchover, each event naming the restart directive as the cause.
    pods.lock().expect("pods").update = Some("r2".to_owned());
    let mut seen = restart;
    reconcile_until(
        &ctx,
        &mut resource,
        &mut requests,
        &mut seen,
        "every pod replaced",
        |s| pods.lock().expect("pods").pods.len() == 2 && every_replica_online(s),
    )
    .await;
    let events = events(&seen);
    let cause = "for serverConfig directives that need a restart (databases)";
    let replaced = events
        .iter()
        .find(|e| e["reason"] == "PodReplaced")
        .expect("PodReplaced event");
    assert!(
        replaced["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("deleted cache-1") && n.contains(cause)),
        "{replaced}"
    );
    let switched = events
        .iter()
        .find(|e| e["reason"] == "SwitchedOver")
        .expect("SwitchedOver event");
    assert!(
        switched["note"].as_str().is_some_and(|n| n.contains(cause)),
        "{switched}"
    );
    assert!(!events.iter().any(|e| e["reason"] == "FailedOver"));
}
