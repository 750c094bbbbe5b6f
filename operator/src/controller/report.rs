//! Reconcile step report: the status from the drive step's pass
//! ([`crate::dataplane::status`], pure, on top of [`crate::status`]), an event for each new
//! decision, one apply patch of the status subresource (skipped when nothing changed), and
//! when to come back. Also reports a reconcile that stopped at the prepare step on
//! something only the user can fix.
//!
//! Touches the network: event creates and the status patch.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::apply::FIELD_MANAGER;
use super::context::Context;
use super::drive::Driven;
use super::prepare::Prepared;
use crate::crd::{RedisReplicaSet, RedisReplicaSetStatus};
use crate::dataplane::engine::{DataPlane, Pass};
use crate::error::Error;
use crate::resources::meta::pod_selector;
use crate::status::{self, Notice, PROGRESSING};

/// Requeue while pods are starting or syncing, so status keeps up with a running sync.
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(10);
/// Requeue when everything is ready: a safety net, watches bring changes sooner.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(300);
/// Requeue while a full sync runs or a failover is pending: pods' watches do not see
/// either, and both the sync's progress and the down-after clock need frequent passes.
pub const REQUEUE_ACTIVE: Duration = Duration::from_secs(2);

/// Writes the status and publishes the events of a reconcile that got through the drive
/// step; returns when to reconcile again.
///
/// # Errors
/// The status patch failed (a failed event is logged, never an error).
#[instrument(name = "report", skip_all)]
pub async fn report(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    prepared: &Prepared<'_>,
    driven: &Driven,
    dataplane: &DataPlane,
    now: Timestamp,
) -> Result<Action, Error> {
    let mut new = crate::dataplane::status::build(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        rrs.spec.replicas,
        prepared.budget.as_ref(),
        &driven.pass,
        dataplane,
        now,
    );
    new.persistence = Some(crate::persistence::for_spec(&rrs.spec.persistence).status());
    new.server_config =
        crate::server_config::status(&rrs.spec.server_config, &dataplane.server_config_applied);
    let mut notices = Vec::new();
    if prepared.auth.created {
        notices.push(Notice {
            type_: EventType::Normal,
            reason: "AuthSecretCreated",
            note: format!(
                "created Secret {} with a random password",
                prepared.set.auth_secret_name
            ),
            action: "CreateAuthSecret",
        });
    }
    notices.extend(driven.pass.notices.iter().cloned());
    notices.extend(status::notices(rrs.status.as_ref(), &new));
    publish(rrs, ctx, &notices).await;
    let new = write_status(rrs, ctx, new).await?;
    ctx.metrics.sets.observe(
        &rrs.namespace().unwrap_or_default(),
        &rrs.name_any(),
        rrs.status.as_ref(),
        &new,
    );

    let progressing = new
        .conditions
        .iter()
        .any(|c| c.type_ == PROGRESSING && c.status == "True");
    Ok(Action::requeue(
        if driven.moving || active(&driven.pass, &new) {
            REQUEUE_ACTIVE
        } else if progressing {
            REQUEUE_PROGRESSING
        } else {
            REQUEUE_STABLE
        },
    ))
}

/// Reports a reconcile that `error` stopped when only the user can fix the cause (the spec,
/// or the auth Secret they own): a Degraded condition and a Warning event, once. Any other
/// error is left to the retries of [`super::reconcile::error_policy`].
///
/// # Errors
/// The status patch failed.
#[instrument(name = "report", skip_all)]
pub async fn blocked(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    error: &Error,
    now: Timestamp,
) -> Result<(), Error> {
    let (reason, message) = match error {
        Error::InvalidSpec(invalid) => (status::REASON_INVALID_SPEC, invalid.0.clone()),
        Error::ReadAuthSecret { .. } => (status::REASON_INVALID_AUTH_SECRET, error.to_string()),
        _ => return Ok(()),
    };
    let new = status::blocked(
        rrs.status.as_ref(),
        rrs.metadata.generation,
        reason,
        &message,
        now,
    );
    publish(rrs, ctx, &status::notices(rrs.status.as_ref(), &new)).await;
    write_status(rrs, ctx, new).await.map(drop)
}

/// Whether the set needs another pass soon: a failover is pending or roles just changed,
/// or a replica is in a full sync.
fn active(pass: &Pass, status: &RedisReplicaSetStatus) -> bool {
    pass.decision.waiting.is_some()
        || !pass.decision.commands.is_empty()
        || status
            .nodes
            .iter()
            .any(|r| r.sync_progress.is_some() || r.state.as_deref().is_some_and(|s| s != "online"))
}

/// Writes the status with an apply patch, unless it is what the object already has; returns
/// the status as written (with the scale subresource's selector).
///
/// A status an older operator wrote holds the per-pod list in `status.replicas`, where the
/// schema now wants the pod count; an apply cannot merge into a field of the wrong type, so
/// that list is first removed with a merge patch (once: every status written since carries
/// the count).
async fn write_status(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    mut new: RedisReplicaSetStatus,
) -> Result<RedisReplicaSetStatus, Error> {
    new.selector = Some(pod_selector(&rrs.name_any()));
    if rrs.status.as_ref() == Some(&new) {
        return Ok(new);
    }
    let api: Api<RedisReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rrs.namespace().unwrap_or_default());
    if rrs.status.as_ref().is_some_and(|s| s.replicas.is_none()) {
        api.patch_status(
            &rrs.name_any(),
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(json!({ "status": { "replicas": null } })),
        )
        .await
        .map_err(|source| Error::PatchStatus { source })?;
    }
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
    Ok(new)
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
