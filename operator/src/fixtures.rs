//! Test helpers: a `tower-test` mock API server that answers the controller's requests one
//! by one and lets each test assert method, path, query and body, in order (the approach of
//! kube-rs/controller-rs), and the objects it answers with. No network: requests never leave
//! the process. Built for the crate's own tests and, through the `test-support` feature, for
//! the integration tests in `operator/tests/`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use crate::controller::Context;
use crate::dataplane::pods::Resolve;
use crate::dataplane::roles::NodeAddr;
use crate::metrics::Metrics;
use crate::renames::CommandNames;

/// The spec most controller tests reconcile (`rrs(SEED)`).
pub const SEED: &str = "  replicas: 3\n  datasetSizeHint: 20Gi\n";

/// Where the core objects of the test resource's namespace live.
pub const NS: &str = "/api/v1/namespaces/ns1";

/// The fixed clock of controller tests.
pub fn test_clock() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A client that talks to the returned mock server.
pub fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// A context whose client talks to the returned mock server; no server is reachable (port
/// 1 of the loopback refuses connections at once).
pub fn test_context() -> (Arc<Context>, ApiServer) {
    test_context_resolving(Arc::new(|_: &str| NodeAddr {
        host: "127.0.0.1".to_owned(),
        port: 1,
    }))
}

/// A context whose client talks to the returned mock server and whose data plane dials
/// pods through `resolve`.
pub fn test_context_resolving(resolve: Resolve) -> (Arc<Context>, ApiServer) {
    let (client, api) = mock_client();
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let mut ctx = Context::new(
        client,
        Reporter {
            controller: "tandem-operator".to_owned(),
            instance: Some("test".to_owned()),
        },
        metrics,
    );
    ctx.clock = test_clock;
    ctx.resolve = resolve;
    (Arc::new(ctx), api)
}

/// A pod list as the API server returns it: (name, ready, role label).
pub fn pods_list(pods: &[(&str, bool, Option<&str>)]) -> Value {
    let items: Vec<Value> = pods
        .iter()
        .map(|(name, ready, role)| {
            json!({
                "metadata": { "name": name, "namespace": "ns1", "labels": role.map_or(json!({}), |r| json!({ "tandem.dev/role": r })) },
                "status": { "conditions": [{ "type": "Ready", "status": if *ready { "True" } else { "False" } }] }
            })
        })
        .collect();
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items })
}

/// The auth Secret of the test resource, holding `password`.
pub fn password_secret(password: &str) -> Value {
    serde_json::to_value(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("cache-auth".to_owned()),
            ..Default::default()
        },
        data: Some(
            [(
                "password".to_owned(),
                k8s_openapi::ByteString(password.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    })
    .expect("secret json")
}

/// The auth-conf Secret as a previous reconcile left it, holding `names`.
pub fn auth_conf_secret(names: &CommandNames) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "cache-auth-conf", "namespace": "ns1" },
        "data": { "renamed-commands": k8s_openapi::ByteString(names.to_text().into_bytes()) }
    })
}

/// How the mock answers one request.
pub enum Reply {
    /// 200 with the request body, as an apply or create does.
    Echo,
    /// The given status and JSON body.
    Json(StatusCode, Value),
    /// 200 with this object, its top-level fields replaced by the request's (a status patch
    /// answered with the whole resource).
    EchoOnto(Value),
}

impl Reply {
    /// A Kubernetes NotFound error.
    pub fn not_found(what: &str) -> Self {
        Self::Json(
            StatusCode::NOT_FOUND,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404
            }),
        )
    }
}

/// One request as the controller sent it.
#[derive(Debug)]
pub struct Seen {
    /// Raw query string (percent-encoded).
    pub query: String,
    /// JSON body (Null when empty).
    pub body: Value,
}

impl Seen {
    /// Asserts a server-side apply by the operator's field manager, with force.
    pub fn assert_apply(&self) {
        assert!(
            self.query.contains("fieldManager=tandem-operator")
                && self.query.contains("force=true"),
            "not a forced apply by tandem-operator: {}",
            self.query
        );
    }
}

/// Fails on a request that `api_calls::API_CALLS` does not list, so the list (and the
/// chart's RBAC, tested against it) covers every call the controller tests exercise.
fn assert_declared(request: &Request<Body>) {
    let (method, path) = (request.method().as_str(), request.uri().path());
    let query = request.uri().query().unwrap_or_default();
    let apply = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
    assert!(
        crate::api_calls::declared(method, path, query, apply),
        "{method} {path}?{query} (apply: {apply}) is not covered by api_calls::API_CALLS (an apply needs create too): add it there, the chart's RBAC is tested against that list"
    );
}

/// A request's JSON body, `Null` when it has none (GET, DELETE).
async fn json_body(request: Request<Body>) -> Value {
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json request body")
    }
}

/// The mock API server.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

impl ApiServer {
    /// Takes the next request, asserts its method and path, answers it, returns what was sent.
    pub async fn expect(&mut self, method: Method, path: &str, reply: Reply) -> Seen {
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {method} {path}, but no more requests came"));
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "unexpected request (query {:?})",
            request.uri().query()
        );
        assert_declared(&request);
        let query = request.uri().query().unwrap_or_default().to_owned();
        let body = json_body(request).await;
        let (status, response) = match reply {
            Reply::Echo => (StatusCode::OK, body.clone()),
            Reply::Json(status, value) => (status, value),
            Reply::EchoOnto(mut object) => {
                if let (Some(target), Some(fields)) = (object.as_object_mut(), body.as_object()) {
                    target.extend(fields.clone());
                }
                (StatusCode::OK, object)
            }
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&response).expect("json")))
                .expect("response"),
        );
        Seen { query, body }
    }

    /// Answers every request until the clients are gone: `special` may answer a request
    /// (method, path); otherwise lists come back empty and watches end at once. Each
    /// request's path and query are sent to `seen` as they arrive.
    pub async fn serve<F>(
        mut self,
        seen: tokio::sync::mpsc::UnboundedSender<(String, String)>,
        mut special: F,
    ) where
        F: FnMut(&Method, &str) -> Option<(StatusCode, Value)>,
    {
        while let Some((request, send)) = self.0.next_request().await {
            assert_declared(&request);
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            let (status, body) = match special(request.method(), &path) {
                Some((status, value)) => (status, serde_json::to_vec(&value).expect("json")),
                None if query.contains("watch=true") => (StatusCode::OK, Vec::new()),
                None => (
                    StatusCode::OK,
                    serde_json::to_vec(&json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "1" }, "items": [] }))
                        .expect("json"),
                ),
            };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(body))
                    .expect("response"),
            );
            if seen.send((path, query)).is_err() {
                return;
            }
        }
    }

    /// Answers every request with `answer` (method, path, JSON body) until the clients are
    /// gone, sending each request to `seen` as it arrives: a small fake API server for
    /// scenarios whose request sequence depends on real servers' timing.
    pub async fn answer<F>(
        mut self,
        seen: tokio::sync::mpsc::UnboundedSender<(Method, String, Value)>,
        mut answer: F,
    ) where
        F: FnMut(&Method, &str, &Value) -> (StatusCode, Value),
    {
        while let Some((request, send)) = self.0.next_request().await {
            assert_declared(&request);
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let body = json_body(request).await;
            let (status, response) = answer(&method, &path, &body);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&response).expect("json")))
                    .expect("response"),
            );
            if seen.send((method, path, body)).is_err() {
                return;
            }
        }
    }

    /// Asserts that no further request arrives (the reconcile under test has returned, so
    /// anything still coming would be a request the script did not expect).
    pub async fn assert_idle(mut self) {
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(100), self.0.next_request())
                .await;
        if let Ok(Some((request, _))) = next {
            panic!(
                "unexpected extra request {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}
