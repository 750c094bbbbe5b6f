//! Runs the controller: the metrics server, the check that the CRD is installed, the leader
//! lease, and the watches on `RedisReplicaSet`s, their children and their pods, each change
//! reconciled by [`super::reconcile::reconcile`]. Touches the network (the Kubernetes API).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use super::context::Context;
use super::reconcile::{error_policy, reconcile};
use crate::crd::RedisReplicaSet;
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::{Health, Metrics};
use crate::resources::{INSTANCE_LABEL, MANAGED_BY};

/// A shutdown signal any task can trigger and any task can wait for.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    /// Asks everything to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Self::trigger`] was called.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // An error means the sender is gone, which only happens at process exit.
            let _ = rx.wait_for(|&stop| stop).await;
        }
    }

    /// Whether [`Self::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

/// How `tandem-operator run` was configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace, or all when None.
    pub namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    pub metrics_addr: SocketAddr,
    /// Leader election Lease, or None to act without one (a single replica).
    pub lease: Option<LeaseConfig>,
    /// Identifies this operator in events.
    pub reporter: Reporter,
    /// Server image of sets that do not name one (`--server-image`).
    pub server_image: String,
}

/// Why the operator stopped other than by a requested shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics address is taken or invalid.
    #[error("failed to bind the metrics server to {addr}: {source}")]
    BindMetrics {
        /// Address.
        addr: SocketAddr,
        /// IO error.
        #[source]
        source: std::io::Error,
    },
    /// RedisReplicaSets cannot be listed.
    #[error(
        "failed to list RedisReplicaSets: is the CRD installed? (kubectl apply -f crds/redisreplicasets.tandem.dev.yaml): {source}"
    )]
    CrdNotInstalled {
        /// API error.
        #[source]
        source: kube::Error,
    },
    /// Another replica took the Lease: stop at once so two replicas never act together.
    #[error("lost the leader lease; exiting so a restart can rejoin the election")]
    LostLeadership,
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the operator until `shutdown` is triggered or leadership is lost.
///
/// Permissions it needs: exactly [`crate::api_calls::API_CALLS`] (list/watch on the resource,
/// its children and pods, applies, the auth Secret, the status, events), in the watched
/// namespace or cluster-wide without `namespace`, plus the leader election Lease in its own
/// namespace. The mock API server of the tests and the chart's RBAC are checked against it.
///
/// # Errors
/// See [`RunError`].
pub async fn run(client: Client, settings: Settings, shutdown: Shutdown) -> Result<(), RunError> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = Arc::new(Health::new(registry));
    let listener = TcpListener::bind(settings.metrics_addr)
        .await
        .map_err(|source| RunError::BindMetrics {
            addr: settings.metrics_addr,
            source,
        })?;
    tokio::spawn(crate::metrics::serve(
        listener,
        health.clone(),
        shutdown.wait(),
    ));
    info!(addr = %settings.metrics_addr, "serving /metrics, /healthz and /readyz");

    let namespace = settings.namespace.as_deref();
    let sets: Api<RedisReplicaSet> = scoped(&client, namespace);
    sets.list(&ListParams::default().limit(1))
        .await
        .map_err(|source| RunError::CrdNotInstalled { source })?;
    health.set_ready(true);

    let lost = Arc::new(AtomicBool::new(false));
    let elector = settings
        .lease
        .clone()
        .map(|config| LeaderElector::new(client.clone(), config));
    if let Some(elector) = &elector {
        if !acquire(elector, &shutdown).await {
            return Ok(());
        }
        metrics.leader.set(1);
        tokio::spawn(
            keep_leading(
                elector.clone(),
                shutdown.clone(),
                lost.clone(),
                metrics.clone(),
            )
            .instrument(info_span!("lease")),
        );
    }

    let mut ctx = Context::new(client.clone(), settings.reporter, metrics);
    ctx.server_image = settings.server_image;
    let ctx = Arc::new(ctx);
    let owned =
        || watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    info!(
        namespace = namespace.unwrap_or("<all>"),
        "starting controller"
    );
    Controller::new(sets, watcher::Config::default().any_semantic())
        .owns(scoped::<StatefulSet>(&client, namespace), owned())
        .owns(scoped::<Service>(&client, namespace), owned())
        .owns(scoped::<ConfigMap>(&client, namespace), owned())
        .owns(scoped::<Secret>(&client, namespace), owned())
        .owns(scoped::<PodDisruptionBudget>(&client, namespace), owned())
        .watches(scoped::<Pod>(&client, namespace), owned(), |pod: Pod| {
            let namespace = pod.namespace()?;
            pod.labels()
                .get(INSTANCE_LABEL)
                .map(|name| ObjectRef::<RedisReplicaSet>::new(name).within(&namespace))
        })
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "controller event");
            }
        })
        .await;
    info!("controller stopped");

    if lost.load(Ordering::Relaxed) {
        return Err(RunError::LostLeadership);
    }
    if let Some(elector) = &elector
        && let Err(err) = elector.release().await
    {
        warn!(error = %err, "failed to release the leader lease; it will expire");
    }
    Ok(())
}

/// Waits until this replica holds the Lease. Returns false when shut down first. API errors
/// are retried: a standby replica should wait out an apiserver hiccup, not crash-loop.
async fn acquire(elector: &LeaderElector, shutdown: &Shutdown) -> bool {
    let config = elector.config();
    info!(lease = %config.name, identity = %config.identity, "waiting for the leader lease");
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => {
                info!(lease = %config.name, "acquired the leader lease");
                return true;
            }
            Ok(false) => {}
            Err(err) => warn!(error = %err, "leader election round failed; retrying"),
        }
        tokio::select! {
            () = shutdown.wait() => return false,
            () = tokio::time::sleep(config.renew_every) => {}
        }
    }
}

/// Renews the Lease; when another replica holds it, or renewals fail for longer than the
/// Lease lasts, marks leadership lost and stops the controller.
async fn keep_leading(
    elector: LeaderElector,
    shutdown: Shutdown,
    lost: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let config = elector.config().clone();
    let mut last_renewed = Instant::now();
    while !shutdown.is_triggered() {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(config.renew_every) => {}
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => break,
            Err(err) if last_renewed.elapsed() < config.duration => {
                warn!(error = %err, "lease renewal failed; retrying");
            }
            Err(err) => {
                warn!(error = %err, "lease renewal failed for longer than the lease lasts");
                break;
            }
        }
    }
    if !shutdown.is_triggered() {
        warn!("lost the leader lease; stopping");
        metrics.leader.set(0);
        lost.store(true, Ordering::Relaxed);
        shutdown.trigger();
    }
}
