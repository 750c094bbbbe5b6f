//! The events the operator publishes about the set (events.k8s.io/v1, regarding the
//! RedisReplicaSet): how a scenario tells a switchover (`SwitchedOver`, nothing lost) from a
//! failover (`FailedOver`, writes at risk), as a user does with
//! `kubectl events --for redisreplicaset/cache`.

use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;

use crate::error::Context;
use crate::scenario::Scenario;
use crate::set::NAME;
use crate::{Error, wait};

/// Reason of the event a planned switchover publishes.
pub const SWITCHED_OVER: &str = "SwitchedOver";

/// Reason of the event a failover publishes.
pub const FAILED_OVER: &str = "FailedOver";

/// One event about the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// `SwitchedOver`, `FailedOver`, ...
    pub reason: String,
    /// The human-readable text (`note`).
    pub note: String,
}

/// The events regarding the set [`NAME`], oldest first.
///
/// # Errors
/// What the API server says.
pub async fn of_set(scenario: &Scenario) -> Result<Vec<Notice>, Error> {
    let mut events = scenario
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .context(|| format!("listing the events of namespace {}", scenario.namespace))?
        .items;
    events.retain(|e| {
        e.regarding.as_ref().is_some_and(|r| {
            r.kind.as_deref() == Some("RedisReplicaSet") && r.name.as_deref() == Some(NAME)
        })
    });
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    Ok(events
        .into_iter()
        .map(|e| Notice {
            reason: e.reason.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
        })
        .collect())
}

/// The notes of the events with `reason`.
pub fn notes<'a>(events: &'a [Notice], reason: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.reason == reason)
        .map(|e| e.note.as_str())
        .collect()
}

/// Waits until an event with `reason` whose note contains every one of `parts` exists, and
/// returns its note. Events are published after the status is written, so a scenario that
/// saw the status change waits for the event rather than reading once.
///
/// # Errors
/// [`Error::Timeout`] listing the set's events with that reason.
pub async fn wait_for(
    scenario: &Scenario,
    reason: &str,
    parts: &[&str],
    timeout: std::time::Duration,
) -> Result<String, Error> {
    wait::poll(
        &format!("a {reason} event naming {parts:?}"),
        timeout,
        || async {
            let events = of_set(scenario).await.map_err(|e| e.to_string())?;
            let with_reason = notes(&events, reason);
            with_reason
                .iter()
                .find(|note| parts.iter().all(|p| note.contains(p)))
                .map(|note| (*note).to_owned())
                .ok_or_else(|| format!("{reason} events: {with_reason:?}"))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_picked_by_exact_reason() {
        let events = [
            Notice {
                reason: SWITCHED_OVER.to_owned(),
                note: "switched over from cache-0 to cache-1".to_owned(),
            },
            Notice {
                reason: "SwitchoverAborted".to_owned(),
                note: "aborted".to_owned(),
            },
        ];
        assert_eq!(
            notes(&events, SWITCHED_OVER),
            ["switched over from cache-0 to cache-1"]
        );
        assert!(notes(&events, FAILED_OVER).is_empty());
    }
}
