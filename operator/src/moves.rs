//! Reconcile step 6b: planned moves of the master, so Kubernetes never removes the pod that
//! holds it. On scale-in, while the master's ordinal is one the new size removes, the
//! StatefulSet is held at its size ([`rollout::statefulset_replicas`]) and the master is
//! switched over to a surviving pod. On a rolling update (the StatefulSet's `OnDelete`
//! strategy), the next step of [`rollout::next_step`] is carried out: delete one outdated
//! replica, or switch the master over to an updated replica.
//!
//! Touches the network (pod deletes; RESP through [`crate::dataplane::switchover`]); the
//! decisions are [`rollout`]'s. Nothing moves while a failover is pending.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use kube::runtime::events::EventType;
use tracing::{debug, info};

use crate::dataplane::engine::{DataPlane, Pass, line_for};
use crate::dataplane::facts::Role;
use crate::dataplane::pods::PodNodes;
use crate::dataplane::rollout::{self, PodRollout, Step};
use crate::dataplane::switchover::CATCH_UP_TIMEOUT;
use crate::error::Error;
use crate::observe::Observation;
use crate::status::Notice;

/// What the planned moves did in one reconcile.
#[derive(Debug, Default)]
pub struct Moves {
    /// Events to publish.
    pub notices: Vec<Notice>,
    /// The master moved: the pass is out of date.
    pub switched: bool,
    /// A move is under way or waiting for pods to settle: come back soon.
    pub pending: bool,
}

/// The set as the planned moves need it.
pub struct SetShape<'a> {
    /// spec.replicas.
    pub desired: u32,
    /// The StatefulSet's size as applied (held above `desired` during a scale-in).
    pub running: u32,
    /// The StatefulSet's update revision, once its controller set it.
    pub update_revision: Option<&'a str>,
}

/// Carries out the next planned move, if any.
///
/// # Errors
/// Deleting a pod or moving the role label failed.
pub async fn run(
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
    if !rollout::survives(master, shape.desired) {
        let reason = format!("scale-in to {} pods removes {master}", shape.desired);
        let desired = shape.desired;
        let s = dataplane
            .switch_over(
                nodes,
                |n| rollout::survives(n, desired),
                &reason,
                CATCH_UP_TIMEOUT,
                now,
            )
            .await?;
        moves.switched = s.result.is_ok();
        moves.pending = true;
        moves.notices.push(s.notice);
        return Ok(moves);
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
                    "deleted {pod} so the StatefulSet recreates it at revision {} (replicas first, one at a time; the master after a switchover)",
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
            let s = dataplane
                .switch_over(
                    nodes,
                    |n| updated.iter().any(|u| u == n),
                    &format!("rolling update replaces {from}"),
                    CATCH_UP_TIMEOUT,
                    now,
                )
                .await?;
            moves.switched = s.result.is_ok();
            moves.pending = true;
            moves.notices.push(s.notice);
        }
    }
    Ok(moves)
}
