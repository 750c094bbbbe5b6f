//! The controller: watches `RedisReplicaSet`s, their children and their pods, and runs the
//! staged reconcile. Touches the network (the Kubernetes API) through the step modules.
//!
//! Stages, each in its own module:
//! 1. validate ([`crate::validate`], pure) — a bad spec is reported and waits for a change;
//! 2. fetch ([`crate::fetch`]) — the password, creating the auth Secret when absent, and
//!    the renamed commands' secret names;
//! 3. build ([`crate::policy`], [`crate::resources`], pure) — the tuning plan and objects;
//! 4. apply ([`crate::apply`]) — server-side apply with one field manager;
//! 5. observe ([`crate::observe`]) — the pods as they are;
//! 6. data plane ([`crate::dataplane`]) — one pass over the pods by their DNS names: roles
//!    (REPLICAOF, failover, the role label), live tuning (CONFIG SET), sync tracking; its
//!    memory lives in the context, one per set, across reconciles, and in the status
//!    (`status.dataPlane`), from which a restarted operator takes it back; then the planned
//!    moves ([`crate::moves`]): a switchover before a scale-in removes the master's pod (the
//!    StatefulSet is held at its size until then), the rolling update's next step;
//! 7. status ([`crate::dataplane::status`], pure, then one apply patch of the status
//!    subresource, skipped when nothing changed) and events for each new decision.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
use crate::crd::{DEFAULT_IMAGE, FailoverSpec, RedisReplicaSet, RedisReplicaSetStatus};
use crate::dataplane::engine::{DataPlane, Pass};
use crate::dataplane::pods::{self, PodNodes, Resolve};
use crate::dataplane::rollout;
use crate::error::Error;
use crate::fetch;
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::{Health, Metrics};
use crate::moves::{self, SetShape};
use crate::observe::observe;
use crate::policy::{memory_budget, plan};
use crate::renames::CommandNames;
use crate::resources::{INSTANCE_LABEL, MANAGED_BY, desired};
use crate::status::{self, Notice, PROGRESSING};
use crate::validate::validate;

/// Requeue while pods are starting or syncing, so status keeps up with a running sync.
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(10);
/// Requeue when everything is ready: a safety net, watches bring changes sooner.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(300);
/// Requeue while a full sync runs or a failover is pending: pods' watches do not see
/// either, and both the sync's progress and the down-after clock need frequent passes.
pub const REQUEUE_ACTIVE: Duration = Duration::from_secs(2);

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
    /// Server image of sets that do not name one.
    pub server_image: String,
    /// From a pod's DNS name to the address dialled (the name itself in a cluster).
    pub resolve: Resolve,
    /// Each set's data-plane memory (roles, trust, full syncs), by `namespace/name`. A
    /// set's reconciles never run concurrently, so its lock is only contended by nothing.
    pub dataplanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<DataPlane>>>>,
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
            server_image: DEFAULT_IMAGE.to_owned(),
            resolve: pods::dns(),
            dataplanes: Mutex::new(HashMap::new()),
        }
    }

    /// The data-plane memory of the set at `key`, created on first use from what an
    /// earlier operator left in the set's `status` ([`DataPlane::restore`]).
    fn dataplane(
        &self,
        key: &str,
        status: Option<&RedisReplicaSetStatus>,
    ) -> Arc<tokio::sync::Mutex<DataPlane>> {
        let mut map = self
            .dataplanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key.to_owned())
            .or_insert_with(|| {
                let mut dataplane = DataPlane::new(None, Duration::ZERO);
                if let Some(status) = status {
                    dataplane.restore(status);
                }
                Arc::new(tokio::sync::Mutex::new(dataplane))
            })
            .clone()
    }
}

/// How long the master may be unreachable before a failover; never when failover is off.
fn down_after(failover: &FailoverSpec) -> Duration {
    if failover.enabled {
        Duration::from_secs(failover.down_after_seconds.into())
    } else {
        Duration::MAX
    }
}

/// Whether the set needs another pass soon: a failover is pending or roles just changed,
/// or a replica is in a full sync.
fn active(pass: &Pass, status: &RedisReplicaSetStatus) -> bool {
    pass.decision.waiting.is_some()
        || !pass.decision.commands.is_empty()
        || status
            .replicas
            .iter()
            .any(|r| r.sync_progress.is_some() || r.state.as_deref().is_some_and(|s| s != "online"))
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
    if rrs.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children; applying them
        // now would fight a foreground deletion. The set's data-plane memory goes now.
        ctx.dataplanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&object_key(rrs));
        debug!("being deleted; nothing to do");
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    // Replication measurements (the write rate) come from the data plane; until it
    // reports, the policy works from the hint alone.
    let dataplane = ctx.dataplane(&object_key(rrs), rrs.status.as_ref());
    let mut dataplane = dataplane.lock().await;
    let mut set = match validate(rrs, dataplane.observed()) {
        Ok(set) => set,
        Err(invalid) => {
            report_blocked(rrs, ctx, status::REASON_INVALID_SPEC, &invalid.0, now).await?;
            return Err(Error::InvalidSpec(invalid));
        }
    };
    set.default_image.clone_from(&ctx.server_image);
    let auth = match fetch::auth(&ctx.client, &set).await {
        Err(err @ Error::ReadAuthSecret { .. }) => {
            // Only the user can fix the Secret, so say so where they look.
            let message = err.to_string();
            report_blocked(rrs, ctx, status::REASON_INVALID_AUTH_SECRET, &message, now).await?;
            return Err(err);
        }
        other => other?,
    };

    let commands = fetch::command_names(&ctx.client, &set).await?;

    let plan = plan(&set.policy_input);
    let budget = memory_budget(&set.policy_input, &plan);
    // A scale-in keeps the master's pod until the master was switched over to a pod that
    // stays; after an operator restart the status remembers who the master is.
    let wanted = u32::try_from(rrs.spec.replicas).unwrap_or(0);
    let known_master = dataplane
        .memory
        .master
        .clone()
        .or_else(|| rrs.status.as_ref().and_then(|s| s.master.clone()));
    let running = rollout::statefulset_replicas(wanted, known_master.as_deref());
    let mut objects = desired(&set, &plan, &auth.password, &commands);
    if let Some(spec) = objects.statefulset.spec.as_mut() {
        spec.replicas = Some(i32::try_from(running).unwrap_or(i32::MAX));
    }
    let applied = apply_all(&ctx.client, &set.namespace, &objects).await?;
    let update_revision = applied.status.and_then(|s| s.update_revision);

    let observation = observe(&ctx.client, &set.namespace, &set.name)
        .await
        .map_err(|source| Error::ListPods { source })?;

    dataplane.configure(
        Some(auth.password.expose().to_owned()),
        down_after(&rrs.spec.failover),
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace);
    // Pods answer to the plain names until they restart with the renames (and keep the
    // renames until they restart without them).
    dataplane.use_commands(if rrs.spec.security.rename_commands {
        vec![commands, CommandNames::plain()]
    } else {
        vec![CommandNames::plain(), commands]
    });
    let mut nodes = PodNodes::new(
        pods.clone(),
        &set.name,
        &set.namespace,
        running,
        &observation,
        ctx.resolve.clone(),
    );
    let mut pass = dataplane.pass(&mut nodes, &plan, now).await?;
    let moves = moves::run(
        &mut dataplane,
        &mut nodes,
        &pods,
        &pass,
        &observation,
        &SetShape {
            desired: wanted,
            running,
            update_revision: update_revision.as_deref(),
        },
        now,
    )
    .await?;
    if moves.switched {
        // The master moved: this reconcile reports the set as it is now.
        let notices = std::mem::take(&mut pass.notices);
        pass = dataplane.pass(&mut nodes, &plan, now).await?;
        pass.notices.splice(0..0, notices);
    }
    pass.notices.extend(moves.notices);
    if let Some(master) = &pass.decision.master {
        // Pods recreated since the master was published carry no role label yet.
        nodes.label_roles(master).await?;
    }
    let new = crate::dataplane::status::build(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        rrs.spec.replicas,
        budget.as_ref(),
        &pass,
        &dataplane,
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
    notices.extend(pass.notices.iter().cloned());
    notices.extend(status::notices(rrs.status.as_ref(), &new));
    publish(rrs, ctx, &notices).await;
    write_status(rrs, ctx, &new).await?;

    let progressing = new
        .conditions
        .iter()
        .any(|c| c.type_ == PROGRESSING && c.status == "True");
    Ok(Action::requeue(if moves.pending || active(&pass, &new) {
        REQUEUE_ACTIVE
    } else if progressing {
        REQUEUE_PROGRESSING
    } else {
        REQUEUE_STABLE
    }))
}

/// Reports a reconcile stopped by something the user must fix: a Degraded condition and a
/// Warning event, once.
async fn report_blocked(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let new = status::blocked(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        reason,
        message,
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
        "metadata": { "name": rrs.name_any() },
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

#[cfg(test)]
mod tests {
    use std::future::Future;

    use http::{Method, StatusCode};
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::{Value, json};

    use super::*;
    use crate::dataplane::roles::NodeAddr;
    use crate::fixtures::{
        ApiServer, Reply, Seen, test_clock, test_context, test_context_resolving,
    };
    use crate::resources::fixtures::rrs;

    const SEED: &str = "  replicas: 3\n  datasetSizeHint: 20Gi\n";
    const NS: &str = "/api/v1/namespaces/ns1";

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

    fn pods_list(pods: &[(&str, bool, Option<&str>)]) -> Value {
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

    /// The seven applies of every successful reconcile, in order.
    async fn expect_applies(api: &mut ApiServer) -> Vec<Seen> {
        let paths = [
            format!("{NS}/secrets/cache-auth-conf"),
            format!("{NS}/configmaps/cache-config"),
            format!("{NS}/services/cache-headless"),
            format!("{NS}/services/cache"),
            format!("{NS}/services/cache-replicas"),
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

    fn password_secret(password: &str) -> Value {
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
    fn auth_conf_secret(names: &CommandNames) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "cache-auth-conf", "namespace": "ns1" },
            "data": { "renamed-commands": k8s_openapi::ByteString(names.to_text().into_bytes()) }
        })
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
                conf.contains("\nrepl-diskless-sync yes\n")
                    && conf.contains("\nrepl-timeout 2100\n"),
                "{conf}"
            );
            assert!(!conf.contains(&password), "no password in the ConfigMap");
            assert_eq!(applies[6].body["spec"]["replicas"], 3);
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
            assert_eq!(
                status["replicas"],
                json!([
                    { "pod": "cache-0", "ready": false },
                    { "pod": "cache-1", "ready": false },
                    { "pod": "cache-2", "ready": false }
                ])
            );
            let types: Vec<&str> = status["conditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .filter_map(|c| c["type"].as_str())
                .collect();
            assert_eq!(types, ["Available", "Progressing", "Degraded", "SyncLoop"]);
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

    /// The operator binary next to this test binary, or None (printed) when it was not
    /// built; with TANDEM_REQUIRE_REAL_DEPS=1 a missing binary fails the test.
    fn operator_binary() -> Option<std::path::PathBuf> {
        let exe = std::env::current_exe().expect("test binary");
        let bin = exe.parent()?.parent()?.join("tandem-operator");
        if bin.is_file() {
            return Some(bin);
        }
        tandem_testkit::skip_or_fail(&format!(
            "{} is missing (cargo test -p tandem-operator builds it)",
            bin.display()
        ));
        None
    }

    /// A node as a pod runs it: with `renames` (rename-command lines) on its command line.
    fn start_node(bin: &std::path::Path, password: &str, renames: &CommandNames) -> Node {
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

    /// The StatefulSet's update revision as the fake API server reports it (None: not
    /// reported) and each pod's revision (`r1` until deleted; a deleted pod is recreated at
    /// the update revision at once, its server kept running).
    #[derive(Default)]
    struct Revisions {
        update: Option<String>,
        pods: std::collections::BTreeMap<String, String>,
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

    /// [`fake_api`] with pod revisions the test controls.
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
        let Some(bin) = operator_binary() else { return };
        let password = "pw";
        let names = CommandNames::generate();
        // cache-0 started with the set's renames; cache-1 before the set had any (a pod
        // that has not restarted since): the operator must reach both.
        let mut nodes = vec![
            start_node(&bin, password, &names),
            start_node(&bin, password, &CommandNames::plain()),
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
            if status.replicas.first().and_then(|r| r.state.as_deref()) == Some("online") {
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
        let replica = &status["replicas"][0];
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
        let tuned = statuses(&seen)
            .iter()
            .any(|s| s["replicas"][0]["state"] != "online");
        assert!(
            tuned,
            "the replica's sync states before online are reported"
        );
        // The tuning reached both nodes, cache-0 through its secret CONFIG name, which an
        // ordinary client does not have.
        let timeout = status["replication"]["replTimeoutSeconds"].to_string();
        for (node, config) in [(&nodes[0], names.config()), (&nodes[1], "CONFIG")] {
            let mut c =
                redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/", node.port))
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
        // memory back and changes nothing: no status write, event, label or REPLICAOF.
        let memory = |ctx: &Context| {
            let map = ctx.dataplanes.lock().expect("lock");
            let dp = map["ns1/cache"].try_lock().expect("idle");
            (dp.memory.clone(), dp.remembered())
        };
        let before = memory(&ctx);
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
        let after = memory(&ctx);
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

        // Deleting the set drops its data-plane memory.
        let has_memory = |ctx: &Context| {
            ctx.dataplanes
                .lock()
                .expect("lock")
                .contains_key("ns1/cache")
        };
        assert!(has_memory(&ctx));
        resource.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(test_clock()),
        );
        let action = reconcile(Arc::new(resource), ctx.clone())
            .await
            .expect("reconciled");
        assert_eq!(action, Action::await_change());
        assert!(!has_memory(&ctx));
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
            && status["replicas"]
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
        let Some(bin) = operator_binary() else { return };
        let password = "pw";
        let names = CommandNames::generate();
        let nodes: Vec<Node> = (0..3).map(|_| start_node(&bin, password, &names)).collect();
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
        for i in 0..100 {
            redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(i)
                .query::<()>(&mut m)
                .expect("SET");
        }
        let acked: i64 = redis::cmd("WAIT")
            .arg(2)
            .arg(5000)
            .query(&mut m)
            .expect("WAIT");
        assert_eq!(acked, 2);

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
        for k in 0..100 {
            let v: Option<i64> = redis::cmd("GET")
                .arg(format!("k{k}"))
                .query(&mut n)
                .expect("GET");
            assert_eq!(v, Some(k), "k{k} acknowledged by WAIT and lost");
        }
        assert_eq!(
            role_of(&mut m),
            ("slave".to_owned(), Some(nodes[i].port.to_string())),
            "the old master follows the new one"
        );
    }

    /// A rolling update (OnDelete): the operator deletes the outdated replicas, highest
    /// ordinal first, one at a time, then switches the master over to an updated replica,
    /// then deletes the old master; no pod is deleted while labelled master.
    #[tokio::test]
    async fn a_rolling_update_replaces_replicas_first_and_the_master_after_a_switchover() {
        let Some(bin) = operator_binary() else { return };
        let password = "pw";
        let names = CommandNames::generate();
        let nodes: Vec<Node> = (0..3).map(|_| start_node(&bin, password, &names)).collect();
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
            replaced["note"]
                .as_str()
                .is_some_and(|n| n
                    .starts_with("deleted cache-2 so the StatefulSet recreates it at revision r2")),
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
                        query.contains(
                            "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtandem-operator"
                        ),
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
        let (result, ctx) =
            run_scenario(rrs(SEED), |mut api, _resource| async move {
                api.expect(
                Method::GET,
                &format!("{NS}/secrets/cache-auth"),
                Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "etcd unavailable", "reason": "InternalError", "code": 500
                })),
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
}
