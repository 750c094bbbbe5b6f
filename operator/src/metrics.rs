//! Operator metrics (prometheus-client) and the small HTTP server that serves `/metrics`,
//! `/healthz` and `/readyz` on one port. The server touches the network (it listens);
//! everything else here is in-process.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::set_metrics::SetMetrics;

/// Label set of the error counter: the error's category (bounded, see `Error::category`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error category.
    pub category: String,
}

/// Label set of the event counter: the event reason (a fixed set of PascalCase words).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Event reason.
    pub reason: String,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciliations: Counter,
    /// Reconciles that failed, by category.
    pub failures: Family<ErrorLabels, Counter>,
    /// Reconcile wall time.
    pub duration: Histogram,
    /// Events published, by reason.
    pub events: Family<EventLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// Per-set series from the data plane.
    pub sets: SetMetrics,
}

impl Metrics {
    /// Creates the metrics and registers them under the `tandem_operator` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            reconciliations: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            events: Family::default(),
            leader: Gauge::default(),
            sets: SetMetrics::new(registry),
        };
        let r = registry.sub_registry_with_prefix("tandem_operator");
        r.register(
            "reconciliations",
            "Reconciles started",
            m.reconciliations.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciles that failed, by error category",
            m.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Reconcile wall time",
            m.duration.clone(),
        );
        r.register(
            "events",
            "Kubernetes events published, by reason",
            m.events.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader lease",
            m.leader.clone(),
        );
        m
    }

    /// Counts a failed reconcile.
    pub fn failed(&self, category: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                category: category.to_owned(),
            })
            .inc();
    }

    /// Records a reconcile's duration.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a published event.
    pub fn event(&self, reason: &str) {
        self.events
            .get_or_create(&EventLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// What the HTTP endpoints report.
#[derive(Debug)]
pub struct Health {
    registry: Registry,
    ready: AtomicBool,
}

impl Health {
    /// Wraps the registry; not ready until [`Self::set_ready`].
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            ready: AtomicBool::new(false),
        }
    }

    /// Ready means: the CRD is installed and this replica is either reconciling or standing
    /// by for the lease, so a rollout can proceed.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Status and body for a request path.
    pub fn respond(&self, path: &str) -> (StatusCode, String) {
        match path {
            "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, "ready\n".to_owned())
            }
            "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
            "/metrics" => {
                let mut body = String::new();
                match encode(&mut body, &self.registry) {
                    Ok(()) => (StatusCode::OK, body),
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding failed\n".to_owned(),
                    ),
                }
            }
            _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
        }
    }
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, health: Arc<Health>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "metrics listener accept failed");
                    continue;
                }
            },
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (status, body) = health.respond(req.uri().path());
                let content_type = if req.uri().path() == "/metrics" {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                if let Ok(value) = content_type.parse() {
                    response
                        .headers_mut()
                        .insert(hyper::header::CONTENT_TYPE, value);
                }
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn endpoints() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.reconciliations.inc();
        metrics.failed("apply");
        let health = Health::new(registry);
        assert_eq!(health.respond("/healthz").0, StatusCode::OK);
        assert_eq!(health.respond("/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(health.respond("/readyz").0, StatusCode::OK);
        let (status, body) = health.respond("/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("tandem_operator_reconciliations_total 1"),
            "{body}"
        );
        assert!(
            body.contains("tandem_operator_reconcile_failures_total{category=\"apply\"} 1"),
            "{body}"
        );
        assert_eq!(health.respond("/other").0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_http_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Arc::new(Health::new(Registry::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, health, async {
            let _ = stopped.await;
        }));
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("ok\n"), "{reply}");
        stop.send(()).expect("stop");
        server.await.expect("server stops");
    }
}
