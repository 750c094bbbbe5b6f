//! Who is master: the decision the data plane makes on every pass, from what each node said
//! (or that it did not answer) and what the operator remembers. Pure: the clock is a number
//! passed in, the commands it returns are carried out by [`crate::dataplane::engine`].
//!
//! The rules (DESIGN.md, "Roles and restarts"; Invariants 2 and 3):
//! - only the operator makes a node master; every node starts as a replica;
//! - a node is trusted while its run id is the one the operator last saw holding good data
//!   (the master it chose, or a replica that finished syncing from it); a restart changes
//!   the run id, so a node that comes back empty is neither promoted nor followed;
//! - when the master stops serving (unreachable for `down_after`, or back at once with a
//!   new run id, or no longer a master), the trusted replica with the highest offset is
//!   promoted and every other node follows it, the old master included.

use std::collections::BTreeMap;

use super::facts::{NodeFacts, Role};

/// Where a node listens: a stable DNS name in Kubernetes, 127.0.0.1 locally. Never a pod IP,
/// which changes when the pod is rescheduled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Host name or loopback address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One node as one pass saw it.
#[derive(Clone, Debug)]
pub struct NodeState {
    /// Pod or local node name.
    pub name: String,
    /// Where it listens.
    pub addr: NodeAddr,
    /// What it said; None when it could not be reached.
    pub facts: Option<NodeFacts>,
}

/// What the data plane knows of roles and trust, carried from pass to pass (and, through
/// [`super::record`], across operator restarts). Not to be confused with a pod's memory limit
/// or a server's used memory, which the tuning policy deals with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// The node the operator made (or found) master.
    pub master: Option<String>,
    /// Per node, the run id it had when its data was last known good.
    pub trusted: BTreeMap<String, String>,
    /// Since when (ms on the caller's clock) the master has not been serving.
    pub master_down_since_ms: Option<u64>,
    /// The master's offset when last seen serving: what a failover may lose beyond the new
    /// master's offset.
    pub master_offset: u64,
    /// When the first pass without a master ran (ms on the caller's clock).
    pub first_pass_ms: Option<u64>,
}

/// A role change to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `REPLICAOF NO ONE` on this node.
    Promote(String),
    /// `REPLICAOF <master's host> <port>` on `node`.
    Follow {
        /// Node to repoint.
        node: String,
        /// Its new master.
        master: NodeAddr,
    },
}

/// A failover the decision started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The master that stopped serving.
    pub from: String,
    /// The promoted replica.
    pub to: String,
    /// The old master's offset when last seen.
    pub from_offset: u64,
    /// The promoted replica's offset.
    pub to_offset: u64,
    /// Why the old master was given up.
    pub why: String,
}

impl Failover {
    /// Bytes of the replication stream the old master had and the new one does not: writes
    /// that may be lost (none of them acknowledged by `WAIT 1` when the promoted replica had
    /// the highest offset).
    pub fn bytes_at_risk(&self) -> u64 {
        self.from_offset.saturating_sub(self.to_offset)
    }
}

/// The outcome of one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The master after this pass's commands.
    pub master: Option<String>,
    /// Role changes, promotion first.
    pub commands: Vec<Command>,
    /// Set when this pass promotes a replica in place of a failed master.
    pub failover: Option<Failover>,
    /// The master is not serving and no replacement was made yet: why.
    pub waiting: Option<String>,
}

/// Decides roles for this pass and updates `knowledge`. `nodes` are in ordinal order; ties
/// between equally advanced replicas go to the lowest ordinal.
pub fn decide(
    knowledge: &mut Knowledge,
    nodes: &[NodeState],
    down_after_ms: u64,
    now_ms: u64,
) -> Decision {
    if knowledge.master.is_none() {
        // Until a first master is chosen (a fresh set, or the operator restarted) there is
        // nothing better to go on than what the nodes hold now.
        knowledge.first_pass_ms.get_or_insert(now_ms);
        for n in nodes {
            if let Some(f) = &n.facts {
                knowledge.trusted.insert(n.name.clone(), f.run_id.clone());
            }
        }
        knowledge.master = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.facts.as_ref().is_some_and(|f| f.role == Role::Master))
            .max_by_key(|(i, n)| {
                (
                    n.facts.as_ref().map_or(0, |f| f.offset),
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(_, n)| n.name.clone());
    }

    let mut failover = None;
    let master = match knowledge.master.clone() {
        Some(m) => {
            let state = nodes.iter().find(|n| n.name == m);
            let facts = state.and_then(|n| n.facts.as_ref());
            let trusted = facts.is_some_and(|f| knowledge.trusted.get(&m) == Some(&f.run_id));
            match facts {
                Some(f) if trusted && f.role == Role::Master => {
                    knowledge.master_down_since_ms = None;
                    knowledge.master_offset = f.offset;
                    m
                }
                _ => {
                    let why = match facts {
                        None => "unreachable",
                        Some(_) if !trusted => "restarted (new run id): its data is gone",
                        Some(_) => "no longer a master",
                    };
                    let since = *knowledge.master_down_since_ms.get_or_insert(now_ms);
                    let down_ms = now_ms.saturating_sub(since);
                    if facts.is_none() && down_ms < down_after_ms {
                        return Decision {
                            master: Some(m.clone()),
                            waiting: Some(format!(
                                "master {m} unreachable for {:.1}s (failover after {:.1}s)",
                                ms_to_s(down_ms),
                                ms_to_s(down_after_ms)
                            )),
                            ..Decision::default()
                        };
                    }
                    match candidate(knowledge, nodes, Some(&m)) {
                        Some(c) => {
                            let to_offset = nodes
                                .iter()
                                .find(|n| n.name == c)
                                .and_then(|n| n.facts.as_ref())
                                .map_or(0, |f| f.offset);
                            failover = Some(Failover {
                                from: m,
                                to: c.clone(),
                                from_offset: knowledge.master_offset,
                                to_offset,
                                why: why.to_owned(),
                            });
                            knowledge.master_down_since_ms = None;
                            knowledge.master_offset = to_offset;
                            c
                        }
                        None => {
                            return Decision {
                                master: Some(m.clone()),
                                waiting: Some(format!(
                                    "master {m} {why}; no replica can be promoted safely (none reachable with data it is known to hold)"
                                )),
                                ..Decision::default()
                            };
                        }
                    }
                }
            }
        }
        None if nodes.iter().any(|n| n.facts.is_none())
            && now_ms.saturating_sub(knowledge.first_pass_ms.unwrap_or(now_ms)) < down_after_ms =>
        {
            // The first master is the most advanced node: give every node down-after to
            // answer before choosing among fewer.
            return Decision {
                waiting: Some(
                    "waiting for every node to answer before choosing a master".to_owned(),
                ),
                ..Decision::default()
            };
        }
        None => match candidate(knowledge, nodes, None) {
            Some(c) => c,
            None => {
                return Decision {
                    waiting: Some("no node is reachable yet".to_owned()),
                    ..Decision::default()
                };
            }
        },
    };
    knowledge.master = Some(master.clone());

    let mut commands = Vec::new();
    let Some(master_node) = nodes.iter().find(|n| n.name == master) else {
        return Decision {
            master: Some(master),
            commands,
            failover,
            waiting: None,
        };
    };
    if let Some(f) = &master_node.facts {
        knowledge.trusted.insert(master.clone(), f.run_id.clone());
        if f.role != Role::Master {
            commands.push(Command::Promote(master.clone()));
        }
    }
    let master_addr = (master_node.addr.host.clone(), master_node.addr.port);
    for n in nodes.iter().filter(|n| n.name != master) {
        let Some(f) = &n.facts else { continue };
        let follows = f.role == Role::Replica && f.master.as_ref() == Some(&master_addr);
        if !follows {
            commands.push(Command::Follow {
                node: n.name.clone(),
                master: master_node.addr.clone(),
            });
        } else if f.link_up && !f.sync_in_progress && !f.loading && failover.is_none() {
            // A finished sync from the master: its data is now the master's.
            knowledge.trusted.insert(n.name.clone(), f.run_id.clone());
        }
    }
    Decision {
        master: Some(master),
        commands,
        failover,
        waiting: None,
    }
}

/// The node to make master: the trusted, complete node with the highest offset (lowest
/// ordinal on a tie), never `failed`. When every reachable node restarted and none is
/// unreachable, no trusted copy of the data exists anywhere, so the most advanced of them
/// is the best there is (a one-node set, or all nodes restarted at once).
fn candidate(knowledge: &Knowledge, nodes: &[NodeState], failed: Option<&str>) -> Option<String> {
    let complete = |f: &NodeFacts| !f.loading && !f.sync_in_progress;
    let best = |trusted_only: bool| {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| Some(n.name.as_str()) != failed || !trusted_only)
            .filter_map(|(i, n)| n.facts.as_ref().map(|f| (i, n, f)))
            .filter(|(_, n, f)| {
                complete(f) && (!trusted_only || knowledge.trusted.get(&n.name) == Some(&f.run_id))
            })
            .max_by_key(|(i, _, f)| (f.offset, std::cmp::Reverse(*i)))
            .map(|(_, n, _)| n.name.clone())
    };
    best(true).or_else(|| {
        let all_reachable = nodes.iter().all(|n| n.facts.is_some());
        let none_trusted = nodes.iter().all(|n| {
            n.facts
                .as_ref()
                .is_none_or(|f| knowledge.trusted.get(&n.name) != Some(&f.run_id))
        });
        (all_reachable && none_trusted)
            .then(|| best(false))
            .flatten()
    })
}

#[allow(clippy::cast_precision_loss)]
fn ms_to_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::facts::fixture;

    fn addr(i: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: 7000 + i,
        }
    }

    fn facts(run_id: &str, role: Role, offset: u64, master: Option<u16>) -> NodeFacts {
        NodeFacts {
            master: master.map(|i| ("127.0.0.1".to_owned(), 7000 + i)),
            link_up: master.is_some(),
            ..fixture(run_id, role, offset)
        }
    }

    fn node(i: u16, facts: Option<NodeFacts>) -> NodeState {
        NodeState {
            name: format!("n-{i}"),
            addr: addr(i),
            facts,
        }
    }

    /// n-0 master at 100, n-1 at 90, n-2 at 95, all following n-0.
    fn healthy() -> Vec<NodeState> {
        vec![
            node(0, Some(facts("a", Role::Master, 100, None))),
            node(1, Some(facts("b", Role::Replica, 90, Some(0)))),
            node(2, Some(facts("c", Role::Replica, 95, Some(0)))),
        ]
    }

    #[test]
    fn a_fresh_set_promotes_the_first_node_and_points_the_others_at_it() {
        let mut m = Knowledge::default();
        let nodes: Vec<_> = (0..3)
            .map(|i| node(i, Some(facts(&format!("r{i}"), Role::Replica, 0, None))))
            .collect();
        let d = decide(&mut m, &nodes, 5000, 0);
        assert_eq!(d.master.as_deref(), Some("n-0"));
        assert_eq!(
            d.commands,
            [
                Command::Promote("n-0".to_owned()),
                Command::Follow {
                    node: "n-1".to_owned(),
                    master: addr(0)
                },
                Command::Follow {
                    node: "n-2".to_owned(),
                    master: addr(0)
                },
            ]
        );
        assert_eq!(d.failover, None);
    }

    #[test]
    fn the_first_master_waits_for_every_node_up_to_down_after() {
        let mut m = Knowledge::default();
        let mut nodes: Vec<_> = (0..3)
            .map(|i| node(i, Some(facts(&format!("r{i}"), Role::Replica, 0, None))))
            .collect();
        nodes[0].facts = None;
        let d = decide(&mut m, &nodes, 5000, 100);
        assert_eq!((d.master, d.commands), (None, vec![]));
        nodes[0].facts = Some(facts("r0", Role::Replica, 0, None));
        let d = decide(&mut m, &nodes, 5000, 200);
        assert_eq!(
            d.master.as_deref(),
            Some("n-0"),
            "late but equal: the first ordinal"
        );

        let mut m = Knowledge::default();
        nodes[0].facts = None;
        decide(&mut m, &nodes, 5000, 100);
        let d = decide(&mut m, &nodes, 5000, 5100);
        assert_eq!(
            d.master.as_deref(),
            Some("n-1"),
            "a node that never answers is not waited for"
        );
    }

    #[test]
    fn a_serving_master_is_kept_and_nothing_is_commanded() {
        let mut m = Knowledge::default();
        let d = decide(&mut m, &healthy(), 5000, 0);
        assert_eq!(d.master.as_deref(), Some("n-0"));
        assert_eq!(d.commands, []);
        assert_eq!(m.master_offset, 100);
        let again = decide(&mut m, &healthy(), 5000, 10);
        assert_eq!(again.commands, []);
    }

    #[test]
    fn an_unreachable_master_is_replaced_after_down_after_by_the_highest_offset() {
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let mut down = healthy();
        down[0].facts = None;
        let wait = decide(&mut m, &down, 5000, 1000);
        assert_eq!(wait.master.as_deref(), Some("n-0"));
        assert_eq!(wait.commands, []);
        assert!(
            wait.waiting
                .as_deref()
                .is_some_and(|w| w.contains("unreachable")),
            "{wait:?}"
        );
        let still = decide(&mut m, &down, 5000, 5999);
        assert!(still.failover.is_none());

        let d = decide(&mut m, &down, 5000, 6000);
        assert_eq!(d.master.as_deref(), Some("n-2"), "95 beats 90");
        assert_eq!(
            d.commands,
            [
                Command::Promote("n-2".to_owned()),
                Command::Follow {
                    node: "n-1".to_owned(),
                    master: addr(2)
                },
            ]
        );
        let f = d.failover.expect("failover");
        assert_eq!((f.from.as_str(), f.to.as_str()), ("n-0", "n-2"));
        assert_eq!(
            (f.from_offset, f.to_offset, f.bytes_at_risk()),
            (100, 95, 5)
        );

        // The old master comes back as it was (same run id, still a master): it follows.
        let mut back = down.clone();
        back[0].facts = Some(facts("a", Role::Master, 100, None));
        back[2].facts = Some(facts("c", Role::Master, 95, None));
        back[1].facts = Some(facts("b", Role::Replica, 95, Some(2)));
        let d = decide(&mut m, &back, 5000, 7000);
        assert_eq!(d.master.as_deref(), Some("n-2"));
        assert_eq!(
            d.commands,
            [Command::Follow {
                node: "n-0".to_owned(),
                master: addr(2)
            }]
        );
    }

    #[test]
    fn a_master_back_with_a_new_run_id_fails_over_at_once_and_is_never_followed() {
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let mut restarted = healthy();
        // Restarted empty, as a replica of nobody (itself).
        restarted[0].facts = Some(facts("a2", Role::Replica, 0, Some(0)));
        let d = decide(&mut m, &restarted, 5000, 100);
        assert_eq!(d.master.as_deref(), Some("n-2"));
        let f = d.failover.expect("failover");
        assert!(f.why.contains("new run id"), "{}", f.why);
        assert!(d.commands.contains(&Command::Follow {
            node: "n-0".to_owned(),
            master: addr(2)
        }));
        assert!(!d.commands.contains(&Command::Promote("n-0".to_owned())));
    }

    #[test]
    fn a_replica_that_restarted_is_not_a_candidate_until_it_synced_again() {
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let mut nodes = healthy();
        // n-2 restarted (new run id), reloaded an old dump with a high offset and has not
        // reached its master yet.
        let mut restarted = facts("c2", Role::Replica, 500, Some(0));
        restarted.link_up = false;
        nodes[2].facts = Some(restarted);
        decide(&mut m, &nodes, 5000, 10);
        nodes[0].facts = None;
        let d = decide(&mut m, &nodes, 0, 20);
        assert_eq!(
            d.master.as_deref(),
            Some("n-1"),
            "the restarted n-2 is never promoted"
        );

        // Once a restarted replica finished a sync from the master, it is trusted again.
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let mut nodes = healthy();
        nodes[2].facts = Some(facts("c2", Role::Replica, 99, Some(0)));
        decide(&mut m, &nodes, 5000, 10);
        nodes[0].facts = None;
        let d = decide(&mut m, &nodes, 0, 20);
        assert_eq!(d.master.as_deref(), Some("n-2"));
    }

    #[test]
    fn a_syncing_or_loading_replica_is_not_promoted() {
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let mut nodes = healthy();
        nodes[0].facts = None;
        if let Some(f) = nodes[2].facts.as_mut() {
            f.sync_in_progress = true;
        }
        let d = decide(&mut m, &nodes, 0, 1);
        assert_eq!(d.master.as_deref(), Some("n-1"));
    }

    #[test]
    fn without_a_safe_candidate_the_operator_waits() {
        let mut m = Knowledge::default();
        decide(&mut m, &healthy(), 5000, 0);
        let nodes = vec![
            node(0, Some(facts("a2", Role::Replica, 0, Some(0)))),
            node(1, None),
            node(2, Some(facts("c2", Role::Replica, 0, Some(0)))),
        ];
        let d = decide(&mut m, &nodes, 0, 10);
        assert!(d.commands.is_empty());
        assert!(
            d.waiting
                .as_deref()
                .is_some_and(|w| w.contains("no replica can be promoted")),
            "{d:?}"
        );
        assert_eq!(m.master.as_deref(), Some("n-0"));
    }

    #[test]
    fn a_lone_node_that_restarted_is_master_again() {
        let mut m = Knowledge::default();
        decide(
            &mut m,
            &[node(0, Some(facts("a", Role::Master, 10, None)))],
            5000,
            0,
        );
        let d = decide(
            &mut m,
            &[node(0, Some(facts("a2", Role::Replica, 0, Some(0))))],
            5000,
            10,
        );
        assert_eq!(d.master.as_deref(), Some("n-0"));
        assert_eq!(d.commands, [Command::Promote("n-0".to_owned())]);
    }

    #[test]
    fn the_operator_starting_late_adopts_the_running_master() {
        let mut m = Knowledge::default();
        let mut nodes = healthy();
        nodes.swap(0, 2);
        let d = decide(&mut m, &nodes, 5000, 0);
        assert_eq!(d.master.as_deref(), Some("n-0"));
        assert_eq!(d.commands, []);
    }
}
