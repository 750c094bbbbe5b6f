//! A master that is leaving while it still serves: its pod is being deleted (a node drain,
//! an eviction, `kubectl delete pod`), or its server got SIGTERM and waits for the master
//! role to move away (`shutdown-handover-timeout`; INFO's `shutdown_in_milliseconds`). Both
//! are planned departures, so the role moves by a switchover ([`super::switchover`]: pause,
//! catch up, promote) at once, instead of a failover once the master is gone and
//! `downAfterSeconds` passed, which loses what no replica had. Pure: whether, why and to
//! whom; the controller's drive step and local mode carry it out.

use super::engine::Pass;

/// The master is leaving: switch it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departure {
    /// The leaving master.
    pub master: String,
    /// For the event and the switchover record.
    pub reason: String,
    /// Nodes that are leaving too, and so cannot take over.
    leaving: Vec<String>,
}

impl Departure {
    /// Whether `node` may take the master role over.
    pub fn eligible(&self, node: &str) -> bool {
        !self.leaving.iter().any(|l| l == node)
    }
}

/// The departure of the master of `pass`, if it is leaving: its pod is in `terminating`
/// (pods with a deletion timestamp), or it says it is shutting down. Nothing while a
/// failover is pending or under way: that master is not serving.
pub fn of_master(pass: &Pass, terminating: &[String]) -> Option<Departure> {
    if pass.decision.waiting.is_some() || pass.decision.failover.is_some() {
        return None;
    }
    let master = pass.decision.master.as_deref()?;
    let shutting_down = |name: &str| {
        pass.nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| n.facts.as_ref()?.shutdown_in_ms)
    };
    let reason = if terminating.iter().any(|t| t == master) {
        format!("pod {master} is terminating")
    } else {
        let ms = shutting_down(master)?;
        format!("{master} is shutting down, gone within {ms} ms")
    };
    let leaving = pass
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| terminating.contains(n) || shutting_down(n).is_some())
        .collect();
    Some(Departure {
        master: master.to_owned(),
        reason,
        leaving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::facts::{NodeFacts, Role, fixture};
    use crate::dataplane::roles::{Decision, NodeAddr, NodeState};
    use crate::policy::{PolicyInput, plan};

    fn pass(nodes: Vec<(&str, NodeFacts)>) -> Pass {
        Pass {
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, (name, facts))| NodeState {
                    name: name.to_owned(),
                    addr: NodeAddr {
                        host: "127.0.0.1".to_owned(),
                        port: 7000 + u16::try_from(i).expect("few"),
                    },
                    facts: Some(facts),
                })
                .collect(),
            decision: Decision {
                master: Some("n-0".to_owned()),
                ..Decision::default()
            },
            plan: plan(&PolicyInput::default()),
            notices: Vec::new(),
        }
    }

    fn shutting_down(facts: NodeFacts) -> NodeFacts {
        NodeFacts {
            shutdown_in_ms: Some(39_000),
            ..facts
        }
    }

    #[test]
    fn a_terminating_pod_or_a_shutting_down_server_is_a_departure() {
        let steady = pass(vec![
            ("n-0", fixture("a", Role::Master, 10)),
            ("n-1", fixture("b", Role::Replica, 10)),
        ]);
        assert_eq!(of_master(&steady, &[]), None);
        assert_eq!(
            of_master(&steady, &["n-1".to_owned()]),
            None,
            "a terminating replica is no departure of the master"
        );

        let deleted = of_master(&steady, &["n-0".to_owned()]).expect("departure");
        assert_eq!(deleted.master, "n-0");
        assert_eq!(deleted.reason, "pod n-0 is terminating");
        assert!(deleted.eligible("n-1") && !deleted.eligible("n-0"));

        let signalled = pass(vec![
            ("n-0", shutting_down(fixture("a", Role::Master, 10))),
            ("n-1", fixture("b", Role::Replica, 10)),
            ("n-2", shutting_down(fixture("c", Role::Replica, 10))),
        ]);
        let d = of_master(&signalled, &[]).expect("departure");
        assert_eq!(d.reason, "n-0 is shutting down, gone within 39000 ms");
        assert!(
            d.eligible("n-1") && !d.eligible("n-2"),
            "a replica shutting down too cannot take over"
        );
    }

    #[test]
    fn nothing_moves_while_a_failover_is_pending() {
        let mut p = pass(vec![("n-0", fixture("a", Role::Master, 10))]);
        p.decision.waiting = Some("master down".to_owned());
        assert_eq!(of_master(&p, &["n-0".to_owned()]), None);
    }
}
