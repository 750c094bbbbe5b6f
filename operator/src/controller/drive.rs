//! Reconcile step drive: the servers themselves. Lists the set's pods, runs one data-plane
//! pass over them by their DNS names ([`crate::dataplane`]: roles, failover, live tuning,
//! sync tracking), then the planned moves of the master, so Kubernetes never removes the
//! pod that holds it, and finally the role label on the master's pod.
//!
//! Planned moves: a master that is leaving while it serves (its pod being deleted, or its
//! server shutting down after a SIGTERM: [`departure`]) is switched over at once. On scale-in, while the master's ordinal is one the new size removes, the
//! StatefulSet is held at its size ([`rollout::statefulset_replicas`], in the prepare step)
//! and the master is switched over to a surviving pod. On a rolling update (the
//! StatefulSet's `OnDelete` strategy), the next step of [`rollout::next_step`] is carried
//! out: delete one outdated replica, or switch the master over to an updated replica. The
//! decisions are [`rollout`]'s.
//!
//! Touches the network: the pod list, RESP to every pod (through
//! [`crate::dataplane::engine`] and [`crate::dataplane::switchover`]), pod deletes and
//! role-label patches.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use tracing::{debug, info, instrument};

use super::apply::Applied;
use super::context::Context;
use super::prepare::Prepared;
use crate::crd::{FailoverSpec, RedisReplicaSet};
use crate::dataplane::departure;
use crate::dataplane::engine::{DataPlane, Pass, line_for};
use crate::dataplane::facts::Role;
use crate::dataplane::pods::PodNodes;
use crate::dataplane::rollout::{self, PodRollout, Step};
use crate::dataplane::switchover::CATCH_UP_TIMEOUT;
use crate::error::Error;
use crate::observe::Observation;
use crate::renames::CommandNames;
use crate::resources::pod_selector;
use crate::server_config;
use crate::status::Notice;

/// What the drive step hands to the report step.
pub struct Driven {
    /// The data-plane pass, as the set is after any planned move, with the moves' events.
    pub pass: Pass,
    /// A planned move is under way or waiting for pods to settle: come back soon.
    pub moving: bool,
}

/// Observes the pods, runs the data-plane pass, carries out the next planned move and
/// labels the master's pod.
///
/// # Errors
/// Listing pods, deleting one, or moving the role label failed. A server that cannot be
/// reached is part of what the pass observes, not an error.
#[instrument(name = "drive", skip_all)]
pub async fn drive(
    rrs: &RedisReplicaSet,
    ctx: &Context,
    dataplane: &mut DataPlane,
    prepared: &Prepared<'_>,
    applied: &Applied,
    now: Timestamp,
) -> Result<Driven, Error> {
    let set = &prepared.set;
    let observation = observe_pods(&ctx.client, &set.namespace, &set.name)
        .await
        .map_err(|source| Error::ListPods { source })?;

    dataplane.configure(
        Some(prepared.auth.password.expose().to_owned()),
        down_after(&rrs.spec.failover),
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace);
    // Pods answer to the plain names until they restart with the renames (and keep the
    // renames until they restart without them).
    let commands = prepared.commands.clone();
    dataplane.use_commands(if rrs.spec.security.rename_commands {
        vec![commands, CommandNames::plain()]
    } else {
        vec![CommandNames::plain(), commands]
    });
    dataplane.use_server_config(server_config::live(
        &rrs.spec.server_config,
        set.policy_input.maxmemory,
    ));
    let mut nodes = PodNodes::new(
        pods.clone(),
        &set.name,
        &set.namespace,
        prepared.running,
        &observation,
        ctx.resolve.clone(),
    );
    let mut pass = dataplane.pass(&mut nodes, &prepared.plan, now).await?;
    let moves = moves(
        dataplane,
        &mut nodes,
        &pods,
        &pass,
        &observation,
        &SetShape {
            desired: prepared.wanted,
            running: prepared.running,
            update_revision: applied.update_revision.as_deref(),
            restart_config: server_config::restart_hash(&rrs.spec.server_config),
        },
        now,
    )
    .await?;
    if moves.switched {
        // The master moved: this reconcile reports the set as it is now.
        let notices = std::mem::take(&mut pass.notices);
        pass = dataplane.pass(&mut nodes, &prepared.plan, now).await?;
        pass.notices.splice(0..0, notices);
    }
    pass.notices.extend(moves.notices);
    if let Some(master) = &pass.decision.master {
        // Pods recreated since the master was published carry no role label yet.
        nodes.label_roles(master).await?;
    }
    Ok(Driven {
        pass,
        moving: moves.pending,
    })
}

/// Lists the pods of set `name` in `namespace`.
async fn observe_pods(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Observation, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&pod_selector(name)))
        .await?;
    Ok(Observation::from_pods(&list.items))
}

/// How long the master may be unreachable before a failover; never when failover is off.
fn down_after(failover: &FailoverSpec) -> Duration {
    if failover.enabled {
        Duration::from_secs(failover.down_after_seconds.into())
    } else {
        Duration::MAX
    }
}

/// What the planned moves did in one reconcile.
#[derive(Debug, Default)]
struct Moves {
    /// Events to publish.
    pub notices: Vec<Notice>,
    /// The master moved: the pass is out of date.
    pub switched: bool,
    /// A move is under way or waiting for pods to settle: come back soon.
    pub pending: bool,
}

/// The set as the planned moves need it.
struct SetShape<'a> {
    /// spec.replicas.
    pub desired: u32,
    /// The StatefulSet's size as applied (held above `desired` during a scale-in).
    pub running: u32,
    /// The StatefulSet's update revision, once its controller set it.
    pub update_revision: Option<&'a str>,
    /// The digest of the restart-needing serverConfig directives the pods should have.
    pub restart_config: Option<String>,
}

/// Carries out the next planned move, if any. Nothing moves while a failover is pending.
///
/// # Errors
/// Deleting a pod or moving the role label failed.
async fn moves(
    dataplane: &mut DataPlane,
    nodes: &mut PodNodes,
    pods: &Api<Pod>,
    pass: &Pass,
    observation: &Observation,
    shape: &SetShape<'_>,
    now: Timestamp,
) -> Result<Moves, Error> {
    let mut moves = Moves::default();
    let Some(master) = pass.decision.master.as_deref() else {
        return Ok(moves);
    };
    if pass.decision.waiting.is_some() || pass.decision.failover.is_some() {
        return Ok(moves);
    }
    if let Some(leaving) = departure::of_master(pass, &observation.terminating) {
        return switch_over(
            dataplane,
            nodes,
            |n| leaving.eligible(n),
            &leaving.reason,
            now,
        )
        .await;
    }
    if !rollout::survives(master, shape.desired) {
        let reason = format!("scale-in to {} pods removes {master}", shape.desired);
        let desired = shape.desired;
        return switch_over(
            dataplane,
            nodes,
            |n| rollout::survives(n, desired),
            &reason,
            now,
        )
        .await;
    }

    let master_facts = pass
        .nodes
        .iter()
        .find(|n| n.name == master)
        .and_then(|n| n.facts.as_ref());
    let pods_now: Vec<PodRollout> = observation
        .pods
        .iter()
        .filter(|p| rollout::ordinal(&p.name).is_some_and(|o| o < shape.running))
        .map(|p| {
            let node = pass.nodes.iter().find(|n| n.name == p.name);
            let in_sync = if p.name == master {
                node.and_then(|n| n.facts.as_ref())
                    .is_some_and(|f| f.role == Role::Master)
            } else {
                node.is_some_and(|n| {
                    n.facts.as_ref().is_some_and(|f| f.link_up)
                        && master_facts
                            .and_then(|m| line_for(m, &n.addr))
                            .is_some_and(|l| l.state == "online")
                })
            };
            PodRollout {
                name: p.name.clone(),
                revision: p.revision.clone(),
                ready: p.ready,
                master: p.name == master,
                in_sync,
            }
        })
        .collect();
    let expected = usize::try_from(shape.running).unwrap_or(usize::MAX);
    match rollout::next_step(&pods_now, expected, shape.update_revision) {
        Step::Done => {}
        Step::Wait(why) => {
            debug!(%why, "rolling update waits");
            moves.pending = true;
        }
        Step::Delete(pod) => {
            let cause = restart_cause(observation, &pod, shape);
            pods.delete(&pod, &DeleteParams::default())
                .await
                .map_err(|source| Error::DeletePod {
                    name: pod.clone(),
                    source,
                })?;
            info!(%pod, "deleted for the rolling update");
            moves.pending = true;
            moves.notices.push(Notice {
                type_: EventType::Normal,
                reason: "PodReplaced",
                note: format!(
                    "deleted {pod} so the StatefulSet recreates it at revision {}{cause} (replicas first, one at a time; the master after a switchover)",
                    shape.update_revision.unwrap_or("-")
                ),
                action: "RollingUpdate",
            });
        }
        Step::SwitchOver { from } => {
            let updated: Vec<String> = pods_now
                .iter()
                .filter(|p| p.revision.as_deref() == shape.update_revision)
                .map(|p| p.name.clone())
                .collect();
            return switch_over(
                dataplane,
                nodes,
                |n| updated.iter().any(|u| u == n),
                &format!(
                    "rolling update replaces {from}{}",
                    restart_cause(observation, &from, shape)
                ),
                now,
            )
            .await;
        }
    }
    Ok(moves)
}

/// Why a rolling update replaces `pod`, when it is a serverConfig directive that needs a
/// restart (the pod's restart digest is not the spec's): `, for serverConfig directives that
/// need a restart (databases)`; empty otherwise.
fn restart_cause(observation: &Observation, pod: &str, shape: &SetShape<'_>) -> String {
    let had = observation
        .pods
        .iter()
        .find(|p| p.name == pod)
        .and_then(|p| p.restart_config.as_deref());
    if had == shape.restart_config.as_deref() {
        return String::new();
    }
    format!(
        ", for serverConfig directives that need a restart ({})",
        server_config::NEEDS_RESTART.join(", ")
    )
}

/// A switchover to the best of `eligible`, for `reason`, as this reconcile's move: pending
/// either way (a next reconcile reports the set as it is), its event published.
///
/// # Errors
/// Moving the role label failed.
async fn switch_over(
    dataplane: &mut DataPlane,
    nodes: &mut PodNodes,
    eligible: impl Fn(&str) -> bool,
    reason: &str,
    now: Timestamp,
) -> Result<Moves, Error> {
    let s = dataplane
        .switch_over(nodes, eligible, reason, CATCH_UP_TIMEOUT, now)
        .await?;
    Ok(Moves {
        notices: vec![s.notice],
        switched: s.result.is_ok(),
        pending: true,
    })
}
