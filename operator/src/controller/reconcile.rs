//! The reconcile driver: one call per step, each step taking what the one before returned
//! (prepare -> apply -> drive -> report; the table is in [`crate::controller`]), and what
//! happens after a failed reconcile. No network of its own: the steps make every call.

use std::sync::Arc;
use std::time::Instant;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{debug, instrument, warn};

use super::apply::apply;
use super::context::{Context, object_key};
use super::drive::drive;
use super::prepare::prepare;
use super::report::{blocked, report};
use crate::crd::RedisReplicaSet;
use crate::error::Error;

/// Reconciles one `RedisReplicaSet`: counts, times and logs the steps.
///
/// # Errors
/// The first failed step; see [`error_policy`] for what happens next.
#[instrument(skip(rrs, ctx), fields(name = %rrs.name_any(), namespace = %rrs.namespace().unwrap_or_default()))]
pub async fn reconcile(rrs: Arc<RedisReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let started = Instant::now();
    let result = steps(&rrs, &ctx).await;
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

async fn steps(rrs: &RedisReplicaSet, ctx: &Context) -> Result<Action, Error> {
    if rrs.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children; applying them
        // now would fight a foreground deletion. The set's data plane goes now.
        ctx.forget(&object_key(rrs));
        debug!("being deleted; nothing to do");
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    let dataplane = ctx.dataplane(&object_key(rrs), rrs.status.as_ref());
    let mut dataplane = dataplane.lock().await;
    let prepared = match prepare(rrs, ctx, &dataplane).await {
        Ok(prepared) => prepared,
        Err(err) => {
            blocked(rrs, ctx, &err, now).await?;
            return Err(err);
        }
    };
    let applied = apply(&ctx.client, &prepared).await?;
    let driven = drive(rrs, ctx, &mut dataplane, &prepared, &applied, now).await?;
    report(rrs, ctx, &prepared, &driven, &dataplane, now).await
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
