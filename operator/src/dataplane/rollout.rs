//! Planned moves of a set's pods, decided so that no pod is removed while it is the master:
//! scale-in (the StatefulSet removes the highest ordinals first) and rolling updates (the
//! StatefulSet's `OnDelete` strategy: the operator deletes outdated pods itself, replicas
//! first, one at a time, each back in sync before the next, then switches the master over to
//! an updated replica, then replaces the old master). Pure: what the pods look like in, the
//! next step out; the controller carries it out and [`super::switchover`] moves the master.

/// A StatefulSet pod's ordinal (`cache-4` -> 4).
pub fn ordinal(pod: &str) -> Option<u32> {
    pod.rsplit_once('-')?.1.parse().ok()
}

/// The replica count to give the StatefulSet: `desired`, unless the master's ordinal would
/// be removed by it, in which case the set is held at the master's ordinal + 1 until a
/// switchover moved the master to a surviving pod.
pub fn statefulset_replicas(desired: u32, master: Option<&str>) -> u32 {
    master
        .and_then(ordinal)
        .map_or(desired, |o| desired.max(o.saturating_add(1)))
}

/// Whether `pod` survives a scale to `desired` pods.
pub fn survives(pod: &str, desired: u32) -> bool {
    ordinal(pod).is_some_and(|o| o < desired)
}

/// One pod as a rollout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRollout {
    /// Pod name.
    pub name: String,
    /// Its `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Ready condition true.
    pub ready: bool,
    /// The pod holds the master role.
    pub master: bool,
    /// For a replica: online behind the master with its link up (a master is in sync).
    pub in_sync: bool,
}

/// What to do next in a rolling update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs the update revision (or it is not known yet).
    Done,
    /// Something is settling: act again later.
    Wait(String),
    /// Delete this outdated replica; the StatefulSet recreates it at the update revision.
    Delete(String),
    /// Only the master is outdated: hand its role to an updated replica first.
    SwitchOver {
        /// The outdated master.
        from: String,
    },
}

/// The next rolling-update step for `pods` (every pod of the set, `expected` of them when
/// none is missing) towards `update_revision`.
pub fn next_step(pods: &[PodRollout], expected: usize, update_revision: Option<&str>) -> Step {
    let Some(update) = update_revision else {
        return Step::Done;
    };
    let outdated = |p: &PodRollout| p.revision.as_deref() != Some(update);
    if !pods.iter().any(outdated) {
        return Step::Done;
    }
    if pods.len() < expected {
        return Step::Wait(format!("{} of {expected} pods exist", pods.len()));
    }
    if let Some(p) = pods.iter().find(|p| !p.ready || !p.in_sync) {
        return Step::Wait(format!("{} is not ready and in sync yet", p.name));
    }
    if let Some(replica) = pods.iter().rev().find(|p| !p.master && outdated(p)) {
        return Step::Delete(replica.name.clone());
    }
    // Every replica is updated and in sync here, so one can take over.
    match pods.iter().find(|p| p.master) {
        // A set of one has nobody to hand over to: the update is a restart.
        Some(m) if pods.len() == 1 => Step::Delete(m.name.clone()),
        Some(m) => Step::SwitchOver {
            from: m.name.clone(),
        },
        None => Step::Wait("no master".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_and_the_held_size() {
        assert_eq!(ordinal("cache-12"), Some(12));
        assert_eq!(ordinal("my-cache-0"), Some(0));
        assert_eq!(ordinal("cache"), None);
        assert_eq!(
            statefulset_replicas(2, Some("cache-4")),
            5,
            "held until the master moved"
        );
        assert_eq!(statefulset_replicas(2, Some("cache-3")), 4);
        assert_eq!(statefulset_replicas(2, Some("cache-1")), 2);
        assert_eq!(statefulset_replicas(5, Some("cache-1")), 5);
        assert_eq!(
            statefulset_replicas(2, None),
            2,
            "no master known: as asked"
        );
        assert!(survives("cache-1", 2) && !survives("cache-2", 2));
    }

    fn pod(i: u32, revision: &str, master: bool) -> PodRollout {
        PodRollout {
            name: format!("cache-{i}"),
            revision: Some(revision.to_owned()),
            ready: true,
            master,
            in_sync: true,
        }
    }

    /// Plays a whole rollout: each step applied as Kubernetes and the switchover would,
    /// the recreated pod first seen not ready.
    #[test]
    fn replicas_highest_first_one_at_a_time_then_a_switchover_then_the_old_master() {
        let mut pods = vec![
            pod(0, "old", false),
            pod(1, "old", true),
            pod(2, "old", false),
        ];
        let mut steps = Vec::new();
        for _ in 0..20 {
            let step = next_step(&pods, 3, Some("new"));
            match &step {
                Step::Done => break,
                Step::Delete(name) => {
                    let p = pods.iter_mut().find(|p| &p.name == name).expect("pod");
                    assert!(!p.master, "never deletes the master");
                    p.revision = Some("new".to_owned());
                    p.ready = false;
                    p.in_sync = false;
                }
                Step::Wait(_) => {
                    for p in &mut pods {
                        p.ready = true;
                        p.in_sync = true;
                    }
                }
                Step::SwitchOver { from } => {
                    for p in &mut pods {
                        p.master = p.name == "cache-2";
                    }
                    assert_eq!(from, "cache-1");
                }
            }
            steps.push(step);
        }
        let wait = |pod: &str| Step::Wait(format!("{pod} is not ready and in sync yet"));
        assert_eq!(
            steps,
            [
                Step::Delete("cache-2".to_owned()),
                wait("cache-2"),
                Step::Delete("cache-0".to_owned()),
                wait("cache-0"),
                Step::SwitchOver {
                    from: "cache-1".to_owned()
                },
                Step::Delete("cache-1".to_owned()),
            ],
            "one pod at a time, each back in sync before the next"
        );
        assert_eq!(next_step(&pods, 3, Some("new")), Step::Done);
    }

    #[test]
    fn waits_while_anything_settles_and_restarts_a_set_of_one() {
        let mut pods = vec![pod(0, "old", true), pod(1, "new", false)];
        pods[1].in_sync = false;
        assert_eq!(
            next_step(&pods, 2, Some("new")),
            Step::Wait("cache-1 is not ready and in sync yet".to_owned())
        );
        assert_eq!(
            next_step(&pods[..1], 2, Some("new")),
            Step::Wait("1 of 2 pods exist".to_owned())
        );
        let pair = [pod(0, "old", true), pod(1, "old", false)];
        assert_eq!(
            next_step(&pair, 2, Some("new")),
            Step::Delete("cache-1".to_owned())
        );
        let mut pair = pair;
        pair[1].revision = None;
        assert_eq!(
            next_step(&pair, 2, Some("new")),
            Step::Delete("cache-1".to_owned()),
            "a pod without a revision label is outdated"
        );
        let lone = [pod(0, "old", true)];
        assert_eq!(
            next_step(&lone, 1, Some("new")),
            Step::Delete("cache-0".to_owned()),
            "a set of one is restarted: nobody to hand over to"
        );
        assert_eq!(next_step(&lone, 1, None), Step::Done, "revision unknown");
        assert_eq!(
            next_step(&[pod(0, "new", true)], 1, Some("new")),
            Step::Done
        );
    }
}
