//! One data-plane pass over a set, whatever runs its nodes: ask every node for its facts,
//! decide roles ([`super::roles`]), carry out promotions and REPLICAOFs, keep the tuning
//! in line on every node ([`super::tuning`]), follow full syncs and guard against sync loops
//! ([`super::syncs`]). Touches the network (RESP to the nodes) and the node runner through
//! the [`Nodes`] seam; the decisions themselves are the pure modules'.

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::dataset::DatasetSize;
use super::rate::WriteRate;
use super::resp::NodeConn;
use super::roles::{self, Command, Decision, Knowledge, NodeAddr, NodeState};
use super::syncs::{self, ReplicaView, SyncLoop, SyncTracker};
use super::tuning;
use crate::crd::{FailoverRecord, SwitchoverRecord};
use crate::policy::Plan;
use crate::renames::CommandNames;
use crate::status::Notice;

/// What runs a set's nodes: local processes or a StatefulSet's pods. The data plane asks
/// it for stable addresses, to (re)start nodes, and to publish which node is master.
#[allow(async_fn_in_trait)]
pub trait Nodes {
    /// Why the runner failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every node of the set in ordinal order, with its stable address.
    async fn list(&mut self) -> Result<Vec<(String, NodeAddr)>, Self::Error>;

    /// Starts the nodes that are not running, as replicas of `master` (or of nobody when
    /// no master is known); returns the names of those started. A StatefulSet does this
    /// by itself.
    async fn ensure_running(
        &mut self,
        master: Option<&NodeAddr>,
    ) -> Result<Vec<String>, Self::Error>;

    /// Publishes `master` as the master (the role label Services select on).
    async fn publish_master(&mut self, master: &str) -> Result<(), Self::Error>;
}

/// One set's data plane: what it knows and measures, carried across passes.
pub struct DataPlane {
    /// Roles and trust.
    pub knowledge: Knowledge,
    /// Full syncs over time.
    pub syncs: SyncTracker,
    /// Sync-loop adjustments made so far (bounded by [`syncs::MAX_ADJUSTMENTS`]).
    pub adjustments: u32,
    /// The last sync loop found, until every replica is online again.
    pub sync_loop: Option<SyncLoop>,
    /// The last failover.
    pub last_failover: Option<FailoverRecord>,
    /// The last planned switchover ([`super::switchover`]).
    pub last_switchover: Option<SwitchoverRecord>,
    /// The master's write rate.
    pub write_rate: WriteRate,
    pub dataset: DatasetSize,
    pub(super) password: Option<String>,
    pub(super) commands: Vec<CommandNames>,
    /// The user's live-settable `spec.serverConfig` directives ([`crate::server_config`]),
    /// set on every node with the plan's.
    server_config: Vec<(&'static str, String)>,
    /// Of `server_config`, what every node that answered had in line after the last pass.
    pub server_config_applied: Vec<(&'static str, String)>,
    down_after: Duration,
    epoch: Instant,
    pub(super) published: Option<String>,
}

/// What one pass saw and did.
pub struct Pass {
    /// Every node, with its facts when it answered.
    pub nodes: Vec<NodeState>,
    /// The role decision.
    pub decision: Decision,
    /// The tuning in effect (the plan after sync-loop adjustments).
    pub plan: Plan,
    /// Events worth publishing.
    pub notices: Vec<Notice>,
}

impl DataPlane {
    /// A data plane that fails over after the master was unreachable for `down_after`.
    pub fn new(password: Option<String>, down_after: Duration) -> Self {
        Self {
            knowledge: Knowledge::default(),
            syncs: SyncTracker::default(),
            adjustments: 0,
            sync_loop: None,
            last_failover: None,
            last_switchover: None,
            write_rate: WriteRate::default(),
            dataset: DatasetSize::default(),
            password,
            commands: Vec::new(),
            server_config: Vec::new(),
            server_config_applied: Vec::new(),
            down_after,
            epoch: Instant::now(),
            published: None,
        }
    }

    /// Takes the set's current password and failover delay (both can change between the
    /// passes of an in-cluster set).
    pub fn configure(&mut self, password: Option<String>, down_after: Duration) {
        self.password = password;
        self.down_after = down_after;
    }

    /// Takes the names renamed commands answer to, in the order to try them
    /// ([`NodeConn::connect`]).
    pub fn use_commands(&mut self, commands: Vec<CommandNames>) {
        self.commands = commands;
    }

    /// Takes the user's live-settable server directives ([`crate::server_config::live`]).
    pub fn use_server_config(&mut self, directives: Vec<(&'static str, String)>) {
        self.server_config = directives;
    }

    /// Runs one pass with `plan` as the tuning before sync-loop adjustments.
    ///
    /// # Errors
    /// Only the runner's errors; a node that cannot be reached or refuses a command is part
    /// of what the pass observes and is retried on the next one.
    pub async fn pass<N: Nodes>(
        &mut self,
        runner: &mut N,
        plan: &Plan,
        now: Timestamp,
    ) -> Result<Pass, N::Error> {
        let mut notices = Vec::new();
        let listed = runner.list().await?;
        let master_addr = self
            .knowledge
            .master
            .as_ref()
            .and_then(|m| listed.iter().find(|(n, _)| n == m))
            .map(|(_, a)| a.clone());
        for name in runner.ensure_running(master_addr.as_ref()).await? {
            notices.push(Notice {
                type_: EventType::Normal,
                reason: "NodeStarted",
                note: format!(
                    "started {name} as a replica of {}",
                    master_addr
                        .as_ref()
                        .map_or("nobody".to_owned(), ToString::to_string)
                ),
                action: "Start",
            });
        }

        let (nodes, mut conns) = self.observe(listed).await;

        let now_ms = self.now_ms();
        let down_after_ms = u64::try_from(self.down_after.as_millis()).unwrap_or(u64::MAX);
        let decision = roles::decide(&mut self.knowledge, &nodes, down_after_ms, now_ms);
        if let Some(m) = &decision.master
            && let Some(f) = nodes
                .iter()
                .find(|n| &n.name == m)
                .and_then(|n| n.facts.as_ref())
            && f.role == super::facts::Role::Master
        {
            self.write_rate.observe(m, f.offset, now_ms);
            if let Some(bytes) = f.dataset_bytes {
                self.dataset.observe(bytes, now_ms);
            }
        }
        if let Some(f) = &decision.failover {
            let note = format!(
                "failover from {} (offset {}, {}) to {} (offset {}): up to {} bytes of writes may be lost",
                f.from,
                f.from_offset,
                f.why,
                f.to,
                f.to_offset,
                f.bytes_at_risk()
            );
            warn!(from = %f.from, to = %f.to, "{note}");
            notices.push(Notice {
                type_: EventType::Warning,
                reason: "FailedOver",
                note,
                action: "Promote",
            });
            self.last_failover = Some(FailoverRecord {
                from: f.from.clone(),
                to: f.to.clone(),
                at: Time(now),
                from_offset: f.from_offset,
                to_offset: f.to_offset,
                bytes_at_risk: f.bytes_at_risk(),
                reason: f.why.clone(),
            });
        }
        for command in &decision.commands {
            let (node, target) = match command {
                Command::Promote(node) => (node, None),
                Command::Follow { node, master } => (node, Some(master)),
            };
            let Some(i) = nodes.iter().position(|n| &n.name == node) else {
                continue;
            };
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            match conn.replicaof(target).await {
                Ok(()) => {
                    info!(node = %node, master = %target.map_or("NO ONE".to_owned(), ToString::to_string), "REPLICAOF")
                }
                Err(e) => warn!(node = %node, error = %e, "REPLICAOF failed"),
            }
        }
        if let Some(m) = &decision.master
            && self.published.as_ref() != Some(m)
        {
            runner.publish_master(m).await?;
            self.published = Some(m.clone());
        }

        if let Some(found) = self.observe_syncs(&nodes, &decision, plan, now) {
            self.adjustments = (self.adjustments + 1).min(syncs::MAX_ADJUSTMENTS);
            notices.push(Notice {
                type_: EventType::Warning,
                reason: "SyncLoop",
                note: format!(
                    "{} started {} full syncs without finishing one; replica output buffer and repl-timeout raised (adjustment {}/{})",
                    found.node, found.attempts, self.adjustments, syncs::MAX_ADJUSTMENTS
                ),
                action: "Tune",
            });
            self.sync_loop = Some(found);
        }
        let plan = syncs::adjusted(plan.clone(), self.adjustments);

        let mut wanted = plan.directives();
        wanted.extend(self.server_config.iter().cloned());
        let names: Vec<&str> = wanted.iter().map(|(k, _)| *k).collect();
        // Replicas first: a directive a node refuses is found before the master has it.
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| decision.master.as_deref() == Some(nodes[i].name.as_str()));
        let mut user_applied: Vec<(String, Vec<String>)> = Vec::new();
        let mut refused: Vec<&'static str> = Vec::new();
        for i in order {
            let (node, Some(conn)) = (&nodes[i], &mut conns[i]) else {
                continue;
            };
            let Ok(current) = conn.config_get(&names).await else {
                continue;
            };
            let changes = tuning::changes(&wanted, &current);
            if changes.is_empty() {
                continue;
            }
            match conn.config_set(&changes).await {
                Ok(()) => {
                    info!(node = %node.name, ?changes, "tuned");
                    let user: Vec<String> = changes
                        .iter()
                        .filter(|(k, _)| self.server_config.iter().any(|(u, _)| u == k))
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    if !user.is_empty() {
                        user_applied.push((node.name.clone(), user));
                    }
                }
                Err(e) => {
                    warn!(node = %node.name, error = %e, "CONFIG SET failed");
                    let user: Vec<&'static str> = changes
                        .iter()
                        .map(|(k, _)| *k)
                        .filter(|k| self.server_config.iter().any(|(u, _)| u == k))
                        .collect();
                    if !user.is_empty() {
                        refused.extend(user);
                        notices.push(Notice {
                            type_: EventType::Warning,
                            reason: "ServerConfigRefused",
                            note: format!("CONFIG SET on {} refused: {e}", node.name),
                            action: "ApplyServerConfig",
                        });
                    }
                }
            }
        }
        self.server_config_applied = self
            .server_config
            .iter()
            .filter(|(k, _)| !refused.contains(k))
            .cloned()
            .collect();
        if !user_applied.is_empty() {
            let applied: Vec<String> = user_applied
                .iter()
                .map(|(node, d)| format!("{node}: {}", d.join(", ")))
                .collect();
            notices.push(Notice {
                type_: EventType::Normal,
                reason: "ServerConfigApplied",
                note: format!(
                    "serverConfig set live with CONFIG SET, replicas first, no restart: {}",
                    applied.join("; ")
                ),
                action: "ApplyServerConfig",
            });
        }
        Ok(Pass {
            nodes,
            decision,
            plan,
            notices,
        })
    }

    /// Connects to every listed node and asks for its facts; a node that does not answer
    /// has no facts and no connection.
    pub(super) async fn observe(
        &self,
        listed: Vec<(String, NodeAddr)>,
    ) -> (Vec<NodeState>, Vec<Option<NodeConn>>) {
        let password = self.password.as_deref();
        let commands = &self.commands;
        let mut conns: Vec<Option<NodeConn>> =
            join_all(listed.iter().map(|(_, addr)| async move {
                NodeConn::connect(addr, password, commands).await.ok()
            }))
            .await;
        let facts = join_all(conns.iter_mut().map(|c| async move {
            match c {
                Some(c) => c
                    .facts()
                    .await
                    .map_err(|e| warn!(error = %e, "no facts"))
                    .ok(),
                None => None,
            }
        }))
        .await;
        let nodes = listed
            .into_iter()
            .zip(facts)
            .map(|((name, addr), facts)| NodeState { name, addr, facts })
            .collect();
        (nodes, conns)
    }

    /// Milliseconds since this data plane was made: the clock of its pure parts.
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Feeds the sync tracker from the master's view; clears a past sync loop once every
    /// replica is online.
    fn observe_syncs(
        &mut self,
        nodes: &[NodeState],
        decision: &Decision,
        plan: &Plan,
        now: Timestamp,
    ) -> Option<SyncLoop> {
        let master = decision.master.as_ref()?;
        let master_facts = nodes.iter().find(|n| &n.name == master)?.facts.as_ref()?;
        let views: Vec<ReplicaView<'_>> = nodes
            .iter()
            .filter(|n| &n.name != master)
            .map(|n| ReplicaView {
                name: &n.name,
                line: line_for(master_facts, &n.addr),
                facts: n.facts.as_ref(),
            })
            .collect();
        let found = self
            .syncs
            .observe(master, master_facts, &views, plan.mode, now);
        if found.is_none() && views.iter().all(ReplicaView::online) {
            self.sync_loop = None;
        }
        found
    }
}

/// The master's `slaveN` line for the node at `addr`.
pub fn line_for<'a>(
    master: &'a super::facts::NodeFacts,
    addr: &NodeAddr,
) -> Option<&'a super::facts::ReplicaLine> {
    master
        .replicas
        .iter()
        .find(|l| l.port == addr.port && l.ip == addr.host)
}
