//! Planned switchover: moves the master role to a chosen replica without losing a write, for
//! scale-in, rolling updates ([`super::rollout`] says when) and on request in local mode.
//!
//! The procedure ([`hand_over`]): hold writes on the master (`CLIENT PAUSE <ms> WRITE`, so
//! its offset stops moving), poll until the target's offset equals the master's (with a
//! deadline), promote the target (`REPLICAOF NO ONE`), point the old master and the other
//! replicas at it (they keep the same history, so they resync partially through replid2),
//! move the role label, then release the held writes (on the old master, now a replica,
//! they get `READONLY` and clients retry on the new master). If the target does not catch up
//! in time or refuses the promotion, the master stays where it was and writes resume: an
//! aborted switchover changes nothing. The pause carries its own expiry, so an operator that
//! dies half-way never holds writes for longer than the deadline plus [`PAUSE_MARGIN`].
//!
//! Pure: [`choose_target`]. Side effects: [`hand_over`] (RESP to the nodes) and
//! [`DataPlane::switch_over`] (the data plane's knowledge, the role label through the
//! [`Nodes`] seam). It does not decide when to switch over.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::engine::{DataPlane, Nodes};
use super::facts::Role;
use super::resp::{NodeConn, RespError};
use super::roles::{Knowledge, NodeState};
use crate::crd::SwitchoverRecord;
use crate::renames::CommandNames;
use crate::status::Notice;

/// How long the target may take to reach the master's offset while writes are held. A
/// replica that is online is normally milliseconds behind; one that is not within this
/// long is too far behind to hold writes for.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause asked of the master lasts the catch-up deadline plus this, then lapses by
/// itself: enough for the promotion and the label move, short enough that an operator that
/// dies mid-way leaves writes held only briefly.
pub const PAUSE_MARGIN: Duration = Duration::from_secs(5);

/// Between two offset reads while catching up.
const POLL: Duration = Duration::from_millis(2);

/// Why a switchover did not happen. In every case the master is the one it was before.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    /// The master the operator knows is not serving: that is a failover's business.
    #[error("no serving master to switch over from")]
    NoMaster,
    /// No replica qualifies.
    #[error(
        "no replica of {master} can take over (one must be online, following it, and known to hold its data)"
    )]
    NoTarget {
        /// The master.
        master: String,
    },
    /// The target did not catch up by the deadline.
    #[error(
        "{target} did not reach {master}'s offset {master_offset} within {timeout:?} (last seen at {target_offset:?}); writes resumed on {master}"
    )]
    NotCaughtUp {
        /// The master, kept.
        master: String,
        /// The replica that was to take over.
        target: String,
        /// The master's offset with writes held.
        master_offset: u64,
        /// The target's last offset read, None if it never answered.
        target_offset: Option<u64>,
        /// The deadline.
        timeout: Duration,
    },
    /// A command failed; what was done was undone.
    #[error("switchover from {master} to {target} failed, {master} kept: {source}")]
    Failed {
        /// The master, kept.
        master: String,
        /// The replica that was to take over.
        target: String,
        /// What failed.
        #[source]
        source: RespError,
    },
}

/// The replica to hand over to: one of `eligible`, following `master` with its link up, no
/// sync or load running, trusted (same run id as when its data was last known good), the
/// highest offset, the lowest ordinal on a tie.
pub fn choose_target(
    knowledge: &Knowledge,
    nodes: &[NodeState],
    master: &NodeState,
    eligible: impl Fn(&str) -> bool,
) -> Option<String> {
    let master_addr = (master.addr.host.clone(), master.addr.port);
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.name != master.name && eligible(&n.name))
        .filter_map(|(i, n)| n.facts.as_ref().map(|f| (i, n, f)))
        .filter(|(_, n, f)| {
            f.role == Role::Replica
                && f.master.as_ref() == Some(&master_addr)
                && f.link_up
                && !f.sync_in_progress
                && !f.loading
                && knowledge.trusted.get(&n.name) == Some(&f.run_id)
        })
        .max_by_key(|(i, _, f)| (f.offset, Reverse(*i)))
        .map(|(_, n, _)| n.name.clone())
}

/// A handover done with writes still held on the old master: release them with
/// [`HandedOver::release`] once the role label has moved.
pub struct HandedOver {
    /// The offset master and target shared at the promotion.
    pub offset: u64,
    paused_at: Instant,
    old_master: NodeConn,
}

impl HandedOver {
    /// Disconnects the old master's clients (writes it held go with them; it is a replica
    /// now and would refuse them), then lifts the pause; returns how long writes were held.
    /// Failures are logged: the pause lapses by itself, and a client left connected meets
    /// `READONLY`.
    pub async fn release(mut self) -> Duration {
        match self.old_master.disconnect_clients().await {
            Ok(n) => info!(clients = n, "clients of the old master disconnected"),
            Err(e) => warn!(error = %e, "CLIENT KILL failed; its clients meet READONLY"),
        }
        if let Err(e) = self.old_master.unpause().await {
            warn!(error = %e, "CLIENT UNPAUSE failed; the pause lapses by itself");
        }
        self.paused_at.elapsed()
    }
}

/// Hands the master role from `master` to `target` and repoints `others`, holding writes
/// until `target` has all of `master`'s stream; on any failure before the old master
/// follows the target, undoes what was done and resumes writes on `master`.
///
/// # Errors
/// [`SwitchoverError::NotCaughtUp`] or [`SwitchoverError::Failed`]; `master` is master
/// again and unpaused (unless it stopped answering, in which case the pause lapses).
pub async fn hand_over(
    master: &NodeState,
    target: &NodeState,
    others: &[&NodeState],
    password: Option<&str>,
    commands: &[CommandNames],
    timeout: Duration,
) -> Result<HandedOver, SwitchoverError> {
    let failed = |source| SwitchoverError::Failed {
        master: master.name.clone(),
        target: target.name.clone(),
        source,
    };
    let mut m = NodeConn::connect(&master.addr, password, commands)
        .await
        .map_err(failed)?;
    let mut t = NodeConn::connect(&target.addr, password, commands)
        .await
        .map_err(failed)?;
    m.pause_writes(timeout + PAUSE_MARGIN)
        .await
        .map_err(failed)?;
    let paused_at = Instant::now();
    info!(master = %master.name, target = %target.name, "writes paused for a switchover");

    let deadline = paused_at + timeout;
    let mut target_offset = None;
    let offset = loop {
        let master_offset = match m.facts().await {
            Ok(f) => f.offset,
            Err(e) => {
                resume(&mut m).await;
                return Err(failed(e));
            }
        };
        target_offset = t.facts().await.ok().map(|f| f.offset).or(target_offset);
        if target_offset == Some(master_offset) {
            break master_offset;
        }
        if Instant::now() >= deadline {
            resume(&mut m).await;
            return Err(SwitchoverError::NotCaughtUp {
                master: master.name.clone(),
                target: target.name.clone(),
                master_offset,
                target_offset,
                timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    };

    if let Err(e) = t.replicaof(None).await {
        resume(&mut m).await;
        return Err(failed(e));
    }
    if let Err(e) = m.replicaof(Some(&target.addr)).await {
        // No client could reach the target as a master yet (the label has not moved), so
        // putting it back under the old master loses nothing.
        if let Err(undo) = t.replicaof(Some(&master.addr)).await {
            warn!(target = %target.name, error = %undo, "could not put the target back; the next pass repoints it");
        }
        resume(&mut m).await;
        return Err(failed(e));
    }
    info!(from = %master.name, to = %target.name, offset, "promoted; old master follows");
    for other in others {
        let repointed = match NodeConn::connect(&other.addr, password, commands).await {
            Ok(mut c) => c.replicaof(Some(&target.addr)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = repointed {
            warn!(node = %other.name, error = %e, "not repointed; the next pass does it");
        }
    }
    Ok(HandedOver {
        offset,
        paused_at,
        old_master: m,
    })
}

async fn resume(master: &mut NodeConn) {
    if let Err(e) = master.unpause().await {
        warn!(error = %e, "CLIENT UNPAUSE failed; the pause lapses by itself");
    }
}

/// A switchover attempt: its outcome and the event to publish.
pub struct Switchover {
    /// The record (also kept as [`DataPlane::last_switchover`]) or why nothing changed.
    pub result: Result<SwitchoverRecord, SwitchoverError>,
    /// `SwitchedOver` (Normal) or `SwitchoverAborted` (Warning).
    pub notice: Notice,
}

impl DataPlane {
    /// Switches the master over to the best replica among `eligible`, for `reason`.
    ///
    /// # Errors
    /// Only the runner's (listing nodes, moving the role label); a switchover that cannot
    /// be done is an `Err` in [`Switchover::result`], with the master left in place.
    pub async fn switch_over<N: Nodes>(
        &mut self,
        runner: &mut N,
        eligible: impl Fn(&str) -> bool,
        reason: &str,
        timeout: Duration,
        now: Timestamp,
    ) -> Result<Switchover, N::Error> {
        let listed = runner.list().await?;
        let (nodes, _) = self.observe(listed).await;
        let result = match self
            .try_switch_over(runner, &nodes, eligible, timeout)
            .await
        {
            Ok(Ok((from, to, offset, paused))) => Ok(SwitchoverRecord {
                from,
                to,
                at: Time(now),
                offset,
                write_pause_ms: u64::try_from(paused.as_millis()).unwrap_or(u64::MAX),
                reason: reason.to_owned(),
            }),
            Ok(Err(e)) => Err(e),
            Err(e) => return Err(e),
        };
        let notice = match &result {
            Ok(r) => {
                self.last_switchover = Some(r.clone());
                Notice {
                    type_: EventType::Normal,
                    reason: "SwitchedOver",
                    note: format!(
                        "switched over from {} to {} at offset {} ({reason}); writes held {} ms, none lost",
                        r.from, r.to, r.offset, r.write_pause_ms
                    ),
                    action: "Switchover",
                }
            }
            Err(e) => Notice {
                type_: EventType::Warning,
                reason: "SwitchoverAborted",
                note: format!("switchover ({reason}) aborted: {e}"),
                action: "Switchover",
            },
        };
        Ok(Switchover { result, notice })
    }

    async fn try_switch_over<N: Nodes>(
        &mut self,
        runner: &mut N,
        nodes: &[NodeState],
        eligible: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Result<(String, String, u64, Duration), SwitchoverError>, N::Error> {
        let master = self
            .knowledge
            .master
            .as_ref()
            .and_then(|m| nodes.iter().find(|n| &n.name == m))
            .filter(|n| {
                n.facts.as_ref().is_some_and(|f| {
                    f.role == Role::Master && self.knowledge.trusted.get(&n.name) == Some(&f.run_id)
                })
            });
        let Some(master) = master else {
            return Ok(Err(SwitchoverError::NoMaster));
        };
        let Some(target) = choose_target(&self.knowledge, nodes, master, eligible)
            .and_then(|t| nodes.iter().find(|n| n.name == t))
        else {
            return Ok(Err(SwitchoverError::NoTarget {
                master: master.name.clone(),
            }));
        };
        let others: Vec<&NodeState> = nodes
            .iter()
            .filter(|n| n.name != master.name && n.name != target.name && n.facts.is_some())
            .collect();
        let handed = match hand_over(
            master,
            target,
            &others,
            self.password.as_deref(),
            &self.commands,
            timeout,
        )
        .await
        {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        self.knowledge.master = Some(target.name.clone());
        self.knowledge.master_offset = handed.offset;
        self.knowledge.master_down_since_ms = None;
        let offset = handed.offset;
        let published = runner.publish_master(&target.name).await;
        let paused = handed.release().await;
        published?;
        self.published = Some(target.name.clone());
        info!(from = %master.name, to = %target.name, offset, paused_ms = paused.as_millis(), "switched over");
        Ok(Ok((
            master.name.clone(),
            target.name.clone(),
            offset,
            paused,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::facts::{NodeFacts, fixture};
    use crate::dataplane::roles::NodeAddr;

    fn node(i: u16, facts: Option<NodeFacts>) -> NodeState {
        NodeState {
            name: format!("n-{i}"),
            addr: NodeAddr {
                host: "127.0.0.1".to_owned(),
                port: 7000 + i,
            },
            facts,
        }
    }

    fn replica(run_id: &str, offset: u64) -> NodeFacts {
        NodeFacts {
            master: Some(("127.0.0.1".to_owned(), 7000)),
            link_up: true,
            ..fixture(run_id, Role::Replica, offset)
        }
    }

    fn trusted(nodes: &[NodeState]) -> Knowledge {
        Knowledge {
            master: Some("n-0".to_owned()),
            trusted: nodes
                .iter()
                .filter_map(|n| Some((n.name.clone(), n.facts.as_ref()?.run_id.clone())))
                .collect(),
            ..Knowledge::default()
        }
    }

    #[test]
    fn the_most_advanced_eligible_trusted_replica_is_chosen() {
        let nodes = vec![
            node(0, Some(fixture("a", Role::Master, 100))),
            node(1, Some(replica("b", 90))),
            node(2, Some(replica("c", 95))),
            node(3, Some(replica("d", 95))),
        ];
        let m = trusted(&nodes);
        assert_eq!(
            choose_target(&m, &nodes, &nodes[0], |_| true).as_deref(),
            Some("n-2"),
            "95 beats 90; n-2 before n-3 on a tie"
        );
        assert_eq!(
            choose_target(&m, &nodes, &nodes[0], |n| n != "n-2" && n != "n-3").as_deref(),
            Some("n-1"),
            "only the eligible (e.g. ordinals that survive a scale-in)"
        );
        assert_eq!(choose_target(&m, &nodes, &nodes[0], |n| n == "n-0"), None);
    }

    #[test]
    fn a_replica_that_is_not_safely_in_sync_is_never_chosen() {
        let mut restarted = replica("b2", 500);
        restarted.link_up = true;
        let mut down = replica("c", 99);
        down.link_up = false;
        let mut syncing = replica("d", 98);
        syncing.sync_in_progress = true;
        let mut elsewhere = replica("e", 97);
        elsewhere.master = Some(("127.0.0.1".to_owned(), 7009));
        let nodes = vec![
            node(0, Some(fixture("a", Role::Master, 100))),
            node(1, Some(restarted)),
            node(2, Some(down)),
            node(3, Some(syncing)),
            node(4, Some(elsewhere)),
            node(5, None),
            node(6, Some(replica("g", 10))),
        ];
        let mut m = trusted(&nodes);
        m.trusted.insert("n-1".to_owned(), "b".to_owned());
        assert_eq!(
            choose_target(&m, &nodes, &nodes[0], |_| true).as_deref(),
            Some("n-6"),
            "restarted, link down, syncing, following another node, unreachable: all skipped"
        );
    }
}
