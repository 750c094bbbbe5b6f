//! The status of a set from a data-plane pass: the generic status ([`crate::status`]) from
//! who is master and who is online, plus each replica's sync state (the master's view and
//! its own), the master's offset and sync counters, the last full syncs and failover, the
//! FailingOver phase and the SyncLoop condition. Pure.

use k8s_openapi::jiff::Timestamp;

use super::engine::{DataPlane, Pass, line_for};
use super::facts::{NodeFacts, Role};
use super::roles::{Command, NodeState};
use crate::crd::{Phase, RedisReplicaSetStatus, ReplicaStatus};
use crate::observe::{Observation, PodObservation};
use crate::policy::BudgetFinding;
use crate::quantity::approx_bytes;
use crate::status::{self, SYNC_LOOP, condition};

/// The status after `pass`, keeping condition times from `previous`; `generation` and
/// `budget` are the resource's (None in local mode).
pub fn build(
    previous: Option<&RedisReplicaSetStatus>,
    generation: Option<i64>,
    desired: i32,
    budget: Option<&BudgetFinding>,
    pass: &Pass,
    dataplane: &DataPlane,
    now: Timestamp,
) -> RedisReplicaSetStatus {
    let master = pass.decision.master.as_deref();
    let master_facts = master
        .and_then(|m| pass.nodes.iter().find(|n| n.name == m))
        .and_then(|n| n.facts.as_ref());
    let observation = Observation {
        pods: pass
            .nodes
            .iter()
            .map(|n| PodObservation {
                name: n.name.clone(),
                ready: ready(n, master, master_facts),
                master: Some(n.name.as_str()) == master,
                role: None,
                revision: None,
                restart_config: None,
            })
            .collect(),
        terminating: Vec::new(),
    };
    let mut s = status::reconciled(
        previous,
        generation,
        desired,
        &pass.plan,
        budget,
        &observation,
        now,
    );
    s.nodes = pass
        .nodes
        .iter()
        .filter(|n| Some(n.name.as_str()) != master)
        .map(|n| replica_status(n, master, master_facts, dataplane))
        .collect();
    s.replicas = Some(
        i32::try_from(pass.nodes.iter().filter(|n| n.facts.is_some()).count()).unwrap_or(i32::MAX),
    );
    s.max_lag_seconds = s.nodes.iter().filter_map(|n| n.lag).max();
    if let Some(f) = master_facts.filter(|f| f.role == Role::Master) {
        s.master_offset = i64::try_from(f.offset).ok();
        s.full_syncs = i64::try_from(f.sync_full).ok();
        s.partial_syncs_accepted = i64::try_from(f.sync_partial_ok).ok();
        s.partial_syncs_rejected = i64::try_from(f.sync_partial_err).ok();
    }
    s.last_failover.clone_from(&dataplane.last_failover);
    s.last_switchover.clone_from(&dataplane.last_switchover);
    s.data_plane = Some(dataplane.record());
    let promoting = pass
        .decision
        .commands
        .iter()
        .any(|c| matches!(c, Command::Promote(_)));
    if pass.decision.waiting.is_some() && master.is_some() || pass.decision.failover.is_some() {
        s.phase = Phase::FailingOver;
    } else if promoting {
        // The first master of a set is being made: not a failure.
        s.phase = Phase::Pending;
    } else if dataplane.sync_loop.is_some() {
        s.phase = Phase::Degraded;
    }
    let old = previous.map_or(&[][..], |p| p.conditions.as_slice());
    let sync_loop = match &dataplane.sync_loop {
        Some(l) => condition(
            old,
            SYNC_LOOP,
            true,
            "FullSyncLoop",
            format!(
                "{} started {} full syncs without finishing one; tuning raised {} time(s)",
                l.node, l.attempts, dataplane.adjustments
            ),
            generation,
            now,
        ),
        None => condition(
            old,
            SYNC_LOOP,
            false,
            if dataplane.adjustments > 0 {
                "Recovered"
            } else {
                "NoLoop"
            },
            String::new(),
            generation,
            now,
        ),
    };
    s.conditions.push(sync_loop);
    status::summarize(old, &mut s, generation, now);
    s
}

/// The master is ready when it serves as master; a replica when the master reports it
/// online and it reports its link up.
fn ready(n: &NodeState, master: Option<&str>, master_facts: Option<&NodeFacts>) -> bool {
    let Some(f) = &n.facts else { return false };
    if Some(n.name.as_str()) == master {
        return f.role == Role::Master && !f.loading;
    }
    master_facts
        .and_then(|m| line_for(m, &n.addr))
        .is_some_and(|l| l.state == "online")
        && f.link_up
        && !f.loading
}

fn replica_status(
    n: &NodeState,
    master: Option<&str>,
    master_facts: Option<&NodeFacts>,
    dataplane: &DataPlane,
) -> ReplicaStatus {
    let line = master_facts.and_then(|m| line_for(m, &n.addr));
    let f = n.facts.as_ref();
    ReplicaStatus {
        pod: n.name.clone(),
        ready: ready(n, master, master_facts),
        state: line.map(|l| l.state.clone()),
        link_status: f.map(|f| if f.link_up { "up" } else { "down" }.to_owned()),
        offset: line
            .map(|l| l.offset)
            .or(f.map(|f| f.offset))
            .and_then(|o| i64::try_from(o).ok()),
        lag: line.and_then(|l| i64::try_from(l.lag).ok()),
        sync_progress: f.and_then(progress),
        last_full_sync: dataplane.syncs.last_full_sync(&n.name).cloned(),
    }
}

/// `41%` when the size of the transfer is known, else the bytes received so far (a
/// streamed transfer announces no size).
pub fn progress(f: &NodeFacts) -> Option<String> {
    if !f.sync_in_progress {
        return None;
    }
    let read = f.sync_read_bytes.unwrap_or(0);
    Some(match f.sync_total_bytes {
        Some(total) => format!("{}%", read.saturating_mul(100) / total.max(1)),
        None => format!("{} received", approx_bytes(read)),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dataplane::facts::{ReplicaLine, fixture};
    use crate::dataplane::roles::{Decision, NodeAddr};
    use crate::dataplane::syncs::SyncLoop;
    use crate::policy::{PolicyInput, plan};
    use crate::quantity::GIB;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    fn facts(run_id: &str, role: Role) -> NodeFacts {
        NodeFacts {
            master: (role == Role::Replica).then(|| ("127.0.0.1".to_owned(), 7000)),
            link_up: role == Role::Replica,
            sync_full: 2,
            sync_partial_ok: 1,
            keys: 3,
            ..fixture(run_id, role, 500)
        }
    }

    fn addr(i: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: 7000 + i,
        }
    }

    fn line(port: u16, state: &str) -> ReplicaLine {
        ReplicaLine {
            ip: "127.0.0.1".to_owned(),
            port,
            state: state.to_owned(),
            offset: 480,
            lag: 1,
        }
    }

    fn pass(states: [&str; 2], waiting: bool) -> Pass {
        let mut m = facts("a", Role::Master);
        m.replicas = vec![line(7001, states[0]), line(7002, states[1])];
        let mut syncing = facts("c", Role::Replica);
        syncing.link_up = states[1] == "online";
        syncing.sync_in_progress = states[1] != "online";
        syncing.sync_total_bytes = Some(400);
        syncing.sync_read_bytes = Some(100);
        Pass {
            nodes: vec![
                NodeState {
                    name: "n-0".to_owned(),
                    addr: addr(0),
                    facts: Some(m),
                },
                NodeState {
                    name: "n-1".to_owned(),
                    addr: addr(1),
                    facts: Some(facts("b", Role::Replica)),
                },
                NodeState {
                    name: "n-2".to_owned(),
                    addr: addr(2),
                    facts: Some(syncing),
                },
            ],
            decision: Decision {
                master: Some("n-0".to_owned()),
                waiting: waiting.then(|| "master n-0 unreachable".to_owned()),
                ..Decision::default()
            },
            plan: plan(&PolicyInput {
                dataset_size_hint: GIB,
                replicas: 3,
                ..PolicyInput::default()
            }),
            notices: Vec::new(),
        }
    }

    #[test]
    fn replicas_carry_both_views_and_the_phase_follows_the_sync() {
        let dp = DataPlane::new(None, Duration::from_secs(5));
        let s = build(
            None,
            None,
            3,
            None,
            &pass(["online", "send_bulk"], false),
            &dp,
            t(1),
        );
        assert_eq!(s.phase, Phase::Syncing);
        assert_eq!(s.master.as_deref(), Some("n-0"));
        assert_eq!(
            (s.master_offset, s.full_syncs, s.partial_syncs_accepted),
            (Some(500), Some(2), Some(1))
        );
        assert_eq!(s.ready.as_deref(), Some("2/3"));
        let r = &s.nodes[1];
        assert_eq!((r.pod.as_str(), r.ready), ("n-2", false));
        assert_eq!(r.state.as_deref(), Some("send_bulk"));
        assert_eq!(r.link_status.as_deref(), Some("down"));
        assert_eq!(r.sync_progress.as_deref(), Some("25%"));
        assert_eq!((r.offset, r.lag), (Some(480), Some(1)));
        assert_eq!(s.nodes[0].sync_progress, None);
        let sync_loop = s
            .conditions
            .iter()
            .find(|c| c.type_ == SYNC_LOOP)
            .expect("SyncLoop");
        assert_eq!(
            (sync_loop.status.as_str(), sync_loop.reason.as_str()),
            ("False", "NoLoop")
        );

        let ready = build(
            Some(&s),
            None,
            3,
            None,
            &pass(["online", "online"], false),
            &dp,
            t(2),
        );
        assert_eq!(ready.phase, Phase::Ready);
        assert_eq!(ready.ready.as_deref(), Some("3/3"));
    }

    #[test]
    fn a_failing_master_and_a_sync_loop_show_in_the_phase() {
        let mut dp = DataPlane::new(None, Duration::from_secs(5));
        let s = build(
            None,
            None,
            3,
            None,
            &pass(["online", "online"], true),
            &dp,
            t(1),
        );
        assert_eq!(s.phase, Phase::FailingOver);
        dp.sync_loop = Some(SyncLoop {
            node: "n-2".to_owned(),
            attempts: 3,
        });
        dp.adjustments = 1;
        let s = build(
            Some(&s),
            None,
            3,
            None,
            &pass(["online", "wait_bgsave"], false),
            &dp,
            t(2),
        );
        assert_eq!(s.phase, Phase::Degraded);
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == SYNC_LOOP)
            .expect("SyncLoop");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "FullSyncLoop")
        );
        assert!(
            c.message.starts_with("n-2 started 3 full syncs"),
            "{}",
            c.message
        );
    }

    #[test]
    fn progress_of_a_streamed_transfer_is_in_bytes() {
        let mut f = facts("x", Role::Replica);
        assert_eq!(progress(&f), None);
        f.sync_in_progress = true;
        f.sync_read_bytes = Some(3 * 1024 * 1024);
        assert_eq!(progress(&f).as_deref(), Some("3.0Mi received"));
    }
}
