//! The status to write and the events worth publishing, from the plan, the memory budget
//! finding and the observation: the pure part of the reconcile's report step, shared with
//! local mode through [`crate::dataplane::status`].
//!
//! Status must not churn: a condition keeps its lastTransitionTime until its status flips,
//! so an unchanged world produces a byte-identical status and the controller skips the
//! write. No network; the clock is passed in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use crate::crd::{Phase, RedisReplicaSetStatus, ReplicaStatus, ReplicationStatus};
use crate::observe::Observation;
use crate::policy::{BudgetFinding, Plan};
use crate::quantity::format_bytes;

/// Condition: a master is serving.
pub const AVAILABLE: &str = "Available";
/// Condition: pods are starting or syncing towards the desired state.
pub const PROGRESSING: &str = "Progressing";
/// Condition: something needs a human (bad spec, memory budget, ...).
pub const DEGRADED: &str = "Degraded";
/// Condition (data plane): a replica keeps starting full syncs without finishing them.
pub const SYNC_LOOP: &str = "SyncLoop";

/// Condition: the set serves as asked (phase Ready): the one GitOps tools (Flux, Argo CD,
/// kstatus, `kubectl wait --for=condition=Ready`) wait for.
pub const READY: &str = "Ready";
/// Condition (kstatus): not Ready yet, and the operator is working towards it.
pub const RECONCILING: &str = "Reconciling";
/// Condition (kstatus): the operator cannot make progress until a human acts (it mirrors
/// a True Degraded condition).
pub const STALLED: &str = "Stalled";

/// Reason of the Degraded condition for a spec the operator cannot act on.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// Reason of the Degraded condition for an auth Secret without a usable password.
pub const REASON_INVALID_AUTH_SECRET: &str = "InvalidAuthSecret";

/// An event to publish: what a human would want to see in `kubectl describe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub type_: EventType,
    /// PascalCase reason.
    pub reason: &'static str,
    /// One line for humans.
    pub note: String,
    /// PascalCase action.
    pub action: &'static str,
}

/// The status for a reconcile that got as far as observing pods.
pub fn reconciled(
    previous: Option<&RedisReplicaSetStatus>,
    generation: Option<i64>,
    desired_replicas: i32,
    plan: &Plan,
    budget: Option<&BudgetFinding>,
    observation: &Observation,
    now: Timestamp,
) -> RedisReplicaSetStatus {
    let old = previous.map_or(&[][..], |s| s.conditions.as_slice());
    let master = observation.master();
    let ready = i32::try_from(observation.ready_count()).unwrap_or(i32::MAX);
    let cond = |type_, status, reason: &str, message: String| {
        condition(old, type_, status, reason, message, generation, now)
    };

    let available = match master {
        Some(m) if m.ready => cond(
            AVAILABLE,
            true,
            "MasterReady",
            format!("{} is master and ready", m.name),
        ),
        Some(m) => cond(
            AVAILABLE,
            false,
            "MasterNotReady",
            format!("{} is master but not ready", m.name),
        ),
        None => cond(
            AVAILABLE,
            false,
            "NoMaster",
            "no pod holds the master role yet".to_owned(),
        ),
    };
    let progressing = if ready < desired_replicas {
        cond(
            PROGRESSING,
            true,
            "PodsNotReady",
            format!("{ready}/{desired_replicas} pods ready"),
        )
    } else {
        cond(
            PROGRESSING,
            false,
            "AllPodsReady",
            format!("{ready}/{desired_replicas} pods ready"),
        )
    };
    let degraded = match budget {
        Some(f) => cond(DEGRADED, true, f.reason(), f.message()),
        None => cond(DEGRADED, false, "AsExpected", String::new()),
    };

    let phase = if budget.is_some() {
        Phase::Degraded
    } else {
        match master {
            None => Phase::Pending,
            Some(m) if !m.ready => Phase::Degraded,
            Some(_) if ready < desired_replicas => Phase::Syncing,
            Some(_) => Phase::Ready,
        }
    };

    RedisReplicaSetStatus {
        observed_generation: generation,
        phase,
        master: master.map(|m| m.name.clone()),
        ready: Some(format!("{ready}/{desired_replicas}")),
        ready_replicas: ready,
        replication: Some(replication_status(plan)),
        nodes: observation
            .pods
            .iter()
            .filter(|p| !p.master)
            .map(|p| ReplicaStatus {
                pod: p.name.clone(),
                ready: p.ready,
                state: None,
                link_status: None,
                offset: None,
                lag: None,
                sync_progress: None,
                last_full_sync: None,
            })
            .collect(),
        conditions: vec![available, progressing, degraded],
        ..previous.cloned().unwrap_or_default()
    }
}

/// The status when something the user must fix stops the reconcile (`reason` is
/// [`REASON_INVALID_SPEC`] or [`REASON_INVALID_AUTH_SECRET`]): everything observed before
/// stays, the Degraded condition says what to fix.
pub fn blocked(
    previous: Option<&RedisReplicaSetStatus>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> RedisReplicaSetStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let degraded = condition(
        &status.conditions,
        DEGRADED,
        true,
        reason,
        message.to_owned(),
        generation,
        now,
    );
    let old = std::mem::take(&mut status.conditions);
    status.conditions = old
        .iter()
        .filter(|c| ![DEGRADED, READY, RECONCILING, STALLED].contains(&c.type_.as_str()))
        .cloned()
        .collect();
    status.conditions.push(degraded);
    status.phase = Phase::Degraded;
    status.observed_generation = generation;
    status.replicas.get_or_insert(0);
    summarize(&old, &mut status, generation, now);
    status
}

/// Appends Ready, Reconciling and Stalled, derived from the phase and the other conditions,
/// with transition times kept from `previous`: the summary that generic tools read, so
/// they need no knowledge of Tandem's own conditions. Stalled mirrors a True Degraded
/// (only a human can fix it), Reconciling is the rest of not Ready.
pub fn summarize(
    previous: &[Condition],
    status: &mut RedisReplicaSetStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let find = |type_: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    let stalled = find(DEGRADED).map(|c| (c.reason.clone(), c.message.clone()));
    let ready = status.phase == Phase::Ready && stalled.is_none();
    let phase = format!("{:?}", status.phase);
    let why = stalled
        .as_ref()
        .map(|(_, m)| m.clone())
        .or_else(|| find(SYNC_LOOP).map(|c| c.message.clone()))
        .or_else(|| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == AVAILABLE && c.status == "False")
                .map(|c| c.message.clone())
        })
        .or_else(|| find(PROGRESSING).map(|c| c.message.clone()))
        .unwrap_or_else(|| match &status.master {
            Some(m) if status.phase == Phase::FailingOver => format!("{m} is being replaced"),
            _ => String::new(),
        });
    let ready_message = if ready {
        format!(
            "{} is master, {} pods ready",
            status.master.as_deref().unwrap_or_default(),
            status.ready.as_deref().unwrap_or_default()
        )
    } else {
        why.clone()
    };
    let cond = |type_, on, reason: &str, message: String| {
        condition(previous, type_, on, reason, message, generation, now)
    };
    let summary = [
        cond(
            READY,
            ready,
            if ready { "SetReady" } else { &phase },
            ready_message,
        ),
        cond(
            RECONCILING,
            !ready && stalled.is_none(),
            if ready || stalled.is_some() {
                "NotReconciling"
            } else {
                &phase
            },
            if ready || stalled.is_some() {
                String::new()
            } else {
                why
            },
        ),
        match stalled {
            Some((reason, message)) => cond(STALLED, true, &reason, message),
            None => cond(STALLED, false, "AsExpected", String::new()),
        },
    ];
    status.conditions.extend(summary);
}

/// What the operator chose, as shown in status.replication.
pub fn replication_status(plan: &Plan) -> ReplicationStatus {
    ReplicationStatus {
        mode: plan.mode,
        repl_timeout_seconds: plan.repl_timeout_seconds,
        diskless_sync_delay_seconds: plan.diskless_sync_delay_seconds,
        client_output_buffer_limit: plan.client_output_buffer_limit.directive_value(),
        backlog_size: format_bytes(plan.backlog_bytes),
        diskless_load: plan.diskless_load.as_str().to_owned(),
        min_replicas_to_write: plan.min_replicas_to_write,
        reason: plan.reason.clone(),
        overrides: plan.overrides.iter().map(|&o| o.to_owned()).collect(),
    }
}

/// Events for the differences between the previous and the new status: each decision is
/// announced once, not on every pass.
pub fn notices(
    previous: Option<&RedisReplicaSetStatus>,
    new: &RedisReplicaSetStatus,
) -> Vec<Notice> {
    let mut out = Vec::new();
    if let Some(r) = &new.replication
        && previous.and_then(|p| p.replication.as_ref()) != Some(r)
    {
        out.push(Notice {
            type_: EventType::Normal,
            reason: "ReplicationTuned",
            note: format!(
                "{:?} full sync, repl-timeout {}s, client-output-buffer-limit {}, repl-backlog-size {}, diskless-sync-delay {}s: {}",
                r.mode,
                r.repl_timeout_seconds,
                r.client_output_buffer_limit,
                r.backlog_size,
                r.diskless_sync_delay_seconds,
                r.reason
            ),
            action: "Tune",
        });
    }
    let degraded = |s: &RedisReplicaSetStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = degraded(new)
        && previous.and_then(degraded) != Some((reason.clone(), message.clone()))
    {
        let (reason, action) = degraded_event(&reason);
        out.push(Notice {
            type_: EventType::Warning,
            reason,
            note: message,
            action,
        });
    }
    out
}

/// Event reason and action for a Degraded reason (events take `&'static str`).
fn degraded_event(reason: &str) -> (&'static str, &'static str) {
    match reason {
        REASON_INVALID_SPEC => (REASON_INVALID_SPEC, "Validate"),
        REASON_INVALID_AUTH_SECRET => (REASON_INVALID_AUTH_SECRET, "ReadAuthSecret"),
        "MemoryBudgetExceeded" => ("MemoryBudgetExceeded", "CheckMemoryBudget"),
        "UnboundedReplicaBuffer" => ("UnboundedReplicaBuffer", "CheckMemoryBudget"),
        _ => ("Degraded", "Reconcile"),
    }
}

/// A condition that keeps its previous lastTransitionTime unless its status changed.
pub(crate) fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SyncMode;
    use crate::observe::PodObservation;
    use crate::policy::{PolicyInput, memory_budget, plan};
    use crate::quantity::GIB;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn pods(spec: &[(&str, bool, bool)]) -> Observation {
        Observation {
            pods: spec
                .iter()
                .map(|&(name, ready, master)| PodObservation {
                    name: name.to_owned(),
                    ready,
                    master,
                    role: None,
                    revision: None,
                    restart_config: None,
                })
                .collect(),
            terminating: Vec::new(),
        }
    }

    fn seed_plan() -> Plan {
        plan(&PolicyInput {
            dataset_size_hint: 20 * GIB,
            replicas: 3,
            ..PolicyInput::default()
        })
    }

    fn cond<'a>(s: &'a RedisReplicaSetStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn phases_follow_the_pods() {
        let p = seed_plan();
        let none = reconciled(
            None,
            Some(1),
            3,
            &p,
            None,
            &pods(&[("c-0", true, false)]),
            t(10),
        );
        assert_eq!(none.phase, Phase::Pending);
        assert_eq!(cond(&none, AVAILABLE).reason, "NoMaster");
        let syncing = reconciled(
            None,
            Some(1),
            3,
            &p,
            None,
            &pods(&[("c-0", true, true), ("c-1", false, false)]),
            t(10),
        );
        assert_eq!(syncing.phase, Phase::Syncing);
        assert_eq!(syncing.master.as_deref(), Some("c-0"));
        assert_eq!(syncing.ready.as_deref(), Some("1/3"));
        assert_eq!(syncing.nodes.len(), 1);
        assert_eq!(syncing.nodes[0].pod, "c-1");
        let all = pods(&[
            ("c-0", true, true),
            ("c-1", true, false),
            ("c-2", true, false),
        ]);
        let ready = reconciled(None, Some(1), 3, &p, None, &all, t(10));
        assert_eq!(ready.phase, Phase::Ready);
        assert_eq!(cond(&ready, PROGRESSING).status, "False");
        assert_eq!(cond(&ready, AVAILABLE).observed_generation, Some(1));
        let r = ready.replication.as_ref().expect("replication");
        assert_eq!(r.mode, SyncMode::Diskless);
        assert_eq!(r.client_output_buffer_limit, "replica 2202009600 0 0");
        assert_eq!(r.backlog_size, "300Mi");
    }

    #[test]
    fn unchanged_world_gives_an_identical_status() {
        let p = seed_plan();
        let o = pods(&[("c-0", true, true), ("c-1", false, false)]);
        let first = reconciled(None, Some(1), 2, &p, None, &o, t(10));
        let second = reconciled(Some(&first), Some(1), 2, &p, None, &o, t(99));
        assert_eq!(first, second, "no timestamp rewritten on a quiet pass");
        assert!(notices(Some(&first), &second).is_empty());

        let healed = pods(&[("c-0", true, true), ("c-1", true, false)]);
        let third = reconciled(Some(&second), Some(1), 2, &p, None, &healed, t(120));
        assert_eq!(cond(&third, PROGRESSING).last_transition_time, Time(t(120)));
        assert_eq!(cond(&third, AVAILABLE).last_transition_time, Time(t(10)));
    }

    #[test]
    fn budget_finding_degrades_and_warns_once() {
        let input = PolicyInput {
            dataset_size_hint: 20 * GIB,
            replicas: 3,
            memory_limit: Some(16 * GIB),
            ..PolicyInput::default()
        };
        let p = plan(&input);
        let finding = memory_budget(&input, &p);
        let o = pods(&[("c-0", true, true)]);
        let s = reconciled(None, Some(2), 3, &p, finding.as_ref(), &o, t(5));
        assert_eq!(s.phase, Phase::Degraded);
        assert_eq!(cond(&s, DEGRADED).reason, "MemoryBudgetExceeded");
        let n = notices(None, &s);
        assert_eq!(
            n.iter().map(|n| n.reason).collect::<Vec<_>>(),
            ["ReplicationTuned", "MemoryBudgetExceeded"]
        );
        assert_eq!(n[1].type_, EventType::Warning);
        let again = reconciled(Some(&s), Some(2), 3, &p, finding.as_ref(), &o, t(50));
        assert!(notices(Some(&s), &again).is_empty());
    }

    fn summarized(
        previous: Option<&RedisReplicaSetStatus>,
        o: &Observation,
        budget: Option<&BudgetFinding>,
        now: i64,
    ) -> RedisReplicaSetStatus {
        let mut s = reconciled(previous, Some(1), 3, &seed_plan(), budget, o, t(now));
        let old = previous.map_or(&[][..], |p| p.conditions.as_slice());
        summarize(old, &mut s, Some(1), t(now));
        s
    }

    #[test]
    fn ready_flips_with_the_set_and_kstatus_follows() {
        let syncing = summarized(
            None,
            &pods(&[
                ("c-0", true, true),
                ("c-1", true, false),
                ("c-2", false, false),
            ]),
            None,
            10,
        );
        let ready = cond(&syncing, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Syncing")
        );
        assert_eq!(ready.message, "2/3 pods ready");
        assert_eq!(cond(&syncing, RECONCILING).status, "True");
        assert_eq!(cond(&syncing, STALLED).status, "False");

        let all = pods(&[
            ("c-0", true, true),
            ("c-1", true, false),
            ("c-2", true, false),
        ]);
        let done = summarized(Some(&syncing), &all, None, 20);
        let ready = cond(&done, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "SetReady")
        );
        assert_eq!(ready.message, "c-0 is master, 3/3 pods ready");
        assert_eq!(ready.last_transition_time, Time(t(20)));
        assert_eq!(cond(&done, RECONCILING).status, "False");
        assert_eq!(cond(&done, STALLED).status, "False");
        assert_eq!(
            summarized(Some(&done), &all, None, 30),
            done,
            "a quiet pass rewrites no condition"
        );

        let lost = summarized(Some(&done), &pods(&[("c-1", true, false)]), None, 40);
        let ready = cond(&lost, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Pending")
        );
        assert_eq!(ready.message, "no pod holds the master role yet");
        assert_eq!(ready.last_transition_time, Time(t(40)));

        let input = PolicyInput {
            dataset_size_hint: 20 * GIB,
            replicas: 3,
            memory_limit: Some(16 * GIB),
            ..PolicyInput::default()
        };
        let finding = memory_budget(&input, &plan(&input));
        let over = summarized(Some(&done), &all, finding.as_ref(), 50);
        let stalled = cond(&over, STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "MemoryBudgetExceeded")
        );
        assert_eq!(cond(&over, READY).status, "False");
        assert_eq!(cond(&over, RECONCILING).status, "False");
    }

    #[test]
    fn invalid_spec_keeps_what_was_observed() {
        let p = seed_plan();
        let good = reconciled(
            None,
            Some(1),
            1,
            &p,
            None,
            &pods(&[("c-0", true, true)]),
            t(1),
        );
        let bad = blocked(
            Some(&good),
            Some(2),
            REASON_INVALID_SPEC,
            "serverConfig does not allow port",
            t(2),
        );
        assert_eq!(bad.phase, Phase::Degraded);
        assert_eq!(bad.master.as_deref(), Some("c-0"));
        assert_eq!(bad.observed_generation, Some(2));
        assert_eq!(cond(&bad, DEGRADED).reason, REASON_INVALID_SPEC);
        assert_eq!(bad.conditions.len(), 6);
        assert_eq!(cond(&bad, STALLED).status, "True");
        assert_eq!(
            cond(&bad, STALLED).message,
            "serverConfig does not allow port"
        );
        assert_eq!(cond(&bad, READY).status, "False");
        assert_eq!(cond(&bad, RECONCILING).status, "False");
        let again = blocked(
            Some(&bad),
            Some(2),
            REASON_INVALID_SPEC,
            "serverConfig does not allow port",
            t(9),
        );
        assert_eq!(again, bad, "a second refusal changes nothing");
        let n = notices(Some(&good), &bad);
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].reason, n[0].type_),
            ("InvalidSpec", EventType::Warning)
        );
    }
}
