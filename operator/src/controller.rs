//! The controller: watches `RedisReplicaSet`s, their children and their pods, and runs the
//! staged reconcile. Touches the network (the Kubernetes API) through the step modules.
//!
//! Stages, each in its own module:
//! 1. validate ([`crate::validate`], pure) — a bad spec is reported and waits for a change;
//! 2. fetch ([`crate::fetch`]) — the password, creating the auth Secret when absent;
//! 3. build ([`crate::policy`], [`crate::resources`], pure) — the tuning plan and objects;
//! 4. apply ([`crate::apply`]) — server-side apply with one field manager;
//! 5. observe ([`crate::observe`]) — the pods as they are;
//! 6. status ([`crate::status`], pure, then one apply patch of the status subresource,
//!    skipped when nothing changed) and events for each new decision.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, instrument, warn};

use crate::apply::{FIELD_MANAGER, apply_all};
use crate::backoff::Backoffs;
use crate::crd::{RedisReplicaSet, RedisReplicaSetStatus};
use crate::error::Error;
use crate::fetch;
use crate::leader::{LeaderElector, LeaderError, LeaseConfig};
use crate::metrics::{Health, Metrics};
use crate::observe::observe;
use crate::policy::{Observed, memory_budget, plan};
use crate::resources::{INSTANCE_LABEL, MANAGED_BY, desired};
use crate::status::{self, Notice, PROGRESSING};
use crate::validate::{InvalidSpec, validate};

/// Requeue while pods are starting or syncing, so status keeps up with a running sync.
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(10);
/// Requeue when everything is ready: a safety net, watches bring changes sooner.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes events.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Per-object retry state.
    pub backoffs: Backoffs,
    /// The clock for condition transition times (fixed in tests).
    pub clock: fn() -> Timestamp,
}

impl Context {
    /// A context on `client` with the real clock.
    pub fn new(client: Client, reporter: Reporter, metrics: Arc<Metrics>) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            backoffs: Backoffs::default(),
            clock: Timestamp::now,
        }
    }
}

fn object_key(rrs: &RedisReplicaSet) -> String {
    format!("{}/{}", rrs.namespace().unwrap_or_default(), rrs.name_any())
}

/// Reconciles one `RedisReplicaSet`: counts, times and logs the staged reconcile.
///
/// # Errors
/// The first failed stage; see [`error_policy`] for what happens next.
#[instrument(skip(rrs, ctx), fields(name = %rrs.name_any(), namespace = %rrs.namespace().unwrap_or_default()))]
pub async fn reconcile(rrs: Arc<RedisReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let started = Instant::now();
    let result = stages(&rrs, &ctx).await;
    ctx.metrics.observe_duration(started.elapsed());
    match &result {
        Ok(action) => {
            ctx.backoffs.succeeded(&object_key(&rrs));
            debug!(?action, "reconciled");
        }
        Err(err) => ctx.metrics.failed(err.category()),
    }
    result
}

async fn stages(rrs: &RedisReplicaSet, ctx: &Context) -> Result<Action, Error> {
    let now = (ctx.clock)();
    // Replication measurements (dataset size, write rate) come from the data plane; until
    // it reports, the policy works from the hint alone.
    let set = match validate(rrs, Observed::default()) {
        Ok(set) => set,
        Err(invalid) => {
            report_invalid(rrs, ctx, &invalid, now).await?;
            return Err(Error::InvalidSpec(invalid));
        }
    };
    let auth = fetch::auth(&ctx.client, &set).await?;

    let plan = plan(&set.policy_input);
    let budget = memory_budget(&set.policy_input, &plan);
    apply_all(
        &ctx.client,
        &set.namespace,
        &desired(&set, &plan, &auth.password),
    )
    .await?;

    let observation = observe(&ctx.client, &set.namespace, &set.name)
        .await
        .map_err(|source| Error::ListPods { source })?;
    let new = status::reconciled(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        rrs.spec.replicas,
        &plan,
        budget.as_ref(),
        &observation,
        now,
    );
    let mut notices = Vec::new();
    if auth.created {
        notices.push(Notice {
            type_: EventType::Normal,
            reason: "AuthSecretCreated",
            note: format!(
                "created Secret {} with a random password",
                set.auth_secret_name
            ),
            action: "CreateAuthSecret",
        });
    }
    notices.extend(status::notices(rrs.status.as_ref(), &new));
    publish(rrs, ctx, &notices).await;
    write_status(rrs, ctx, &new).await?;

    let progressing = new
        .conditions
        .iter()
        .any(|c| c.type_ == PROGRESSING && c.status == "True");
    Ok(Action::requeue(if progressing {
        REQUEUE_PROGRESSING
    } else {
        REQUEUE_STABLE
    }))
}

async fn report_invalid(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    invalid: &InvalidSpec,
    now: Timestamp,
) -> Result<(), Error> {
    let new = status::invalid(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        &invalid.0,
        now,
    );
    publish(rrs, ctx, &status::notices(rrs.status.as_ref(), &new)).await;
    write_status(rrs, ctx, &new).await
}

/// Writes the status with an apply patch, unless it is what the object already has.
async fn write_status(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    new: &RedisReplicaSetStatus,
) -> Result<(), Error> {
    if rrs.status.as_ref() == Some(new) {
        return Ok(());
    }
    let api: Api<RedisReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rrs.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": RedisReplicaSet::api_version(&()),
        "kind": RedisReplicaSet::kind(&()),
        "status": new,
    });
    api.patch_status(
        &rrs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::PatchStatus { source })?;
    Ok(())
}

/// Publishes events; a failed publish is logged and counted, never fails the reconcile
/// (events are for humans, the status is the record).
async fn publish(rrs: &RedisReplicaSet, ctx: &Context, notices: &[Notice]) {
    let reference = rrs.object_ref(&());
    for notice in notices {
        let event = Event {
            type_: notice.type_,
            reason: notice.reason.to_owned(),
            note: Some(notice.note.clone()),
            action: notice.action.to_owned(),
            secondary: None,
        };
        match ctx.recorder.publish(&event, &reference).await {
            Ok(()) => {
                ctx.metrics.event(notice.reason);
                info!(reason = notice.reason, note = %notice.note, "event");
            }
            Err(err) => warn!(reason = notice.reason, error = %err, "failed to publish event"),
        }
    }
}

/// After a failed reconcile: a bad spec waits for the user to change it; anything else is
/// retried with per-object exponential backoff and jitter (5 s to 5 min).
pub fn error_policy(rrs: Arc<RedisReplicaSet>, error: &Error, ctx: Arc<Context>) -> Action {
    if !error.is_retryable() {
        warn!(name = %rrs.name_any(), error = %error, "waiting for the spec to change");
        return Action::await_change();
    }
    let delay = ctx
        .backoffs
        .failed(&object_key(&rrs), rand::random::<f64>());
    warn!(name = %rrs.name_any(), error = %error, category = error.category(), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

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

    fn is_triggered(&self) -> bool {
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
    /// Leader election failed before this replica ever led.
    #[error(transparent)]
    Leader(#[from] LeaderError),
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
        if !acquire(elector, &shutdown).await? {
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

    let ctx = Arc::new(Context::new(client.clone(), settings.reporter, metrics));
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

/// Waits until this replica holds the Lease. Returns false when shut down first.
async fn acquire(elector: &LeaderElector, shutdown: &Shutdown) -> Result<bool, RunError> {
    let config = elector.config();
    info!(lease = %config.name, identity = %config.identity, "waiting for the leader lease");
    loop {
        if elector.try_acquire_or_renew().await? {
            info!(lease = %config.name, "acquired the leader lease");
            return Ok(true);
        }
        tokio::select! {
            () = shutdown.wait() => return Ok(false),
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
