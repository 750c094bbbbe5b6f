//! Every move of the master role during a scenario: a watch on the set recording each new
//! `status.lastSwitchover` and `status.lastFailover`. The status keeps only the last of
//! each, and a drain can move the master twice (the first target may be on the drained node
//! too), so a scenario that asserts "switched over, never failed over" needs them all.

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use tandem_operator::crd::{FailoverRecord, RedisReplicaSet, SwitchoverRecord};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::scenario::Scenario;
use crate::set::NAME;

/// What the watch saw, after the records the set already had when it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moves {
    /// Each new `lastSwitchover`, in order.
    pub switchovers: Vec<SwitchoverRecord>,
    /// Each new `lastFailover`, in order.
    pub failovers: Vec<FailoverRecord>,
}

impl Moves {
    /// The switchovers form one chain from `first`: each hands over from the master the one
    /// before made. Returns the last master of the chain.
    ///
    /// # Errors
    /// No switchover at all, or where the chain breaks.
    pub fn switchover_chain(&self, first: &str) -> Result<String, String> {
        if self.switchovers.is_empty() {
            return Err(format!("no switchover from {first}"));
        }
        let mut master = first.to_owned();
        for s in &self.switchovers {
            if s.from != master {
                return Err(format!(
                    "a switchover from {} to {} while {master} was master",
                    s.from, s.to
                ));
            }
            master.clone_from(&s.to);
        }
        Ok(master)
    }
}

/// A running watch; [`MoveWatch::stop`] ends it and returns what it saw.
pub struct MoveWatch {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Moves>,
}

impl MoveWatch {
    /// Starts watching the set [`NAME`]; returns once the watch has its first view, so no
    /// later move is missed.
    ///
    /// # Panics
    /// When the watch has no first view within the run's ready timeout.
    pub async fn start(scenario: &Scenario) -> Self {
        let timeout = scenario.cluster.settings.ready_timeout;
        let sets = scenario.api::<RedisReplicaSet>();
        let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut moves = Moves::default();
            let mut ready = Some(ready_tx);
            // The records the set had when the watch started: not moves of this scenario.
            let mut last: Option<(Option<SwitchoverRecord>, Option<FailoverRecord>)> = None;
            let mut events = std::pin::pin!(watcher(sets, config).default_backoff());
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    event = events.next() => {
                        let rrs = match event {
                            Some(Ok(watcher::Event::InitDone)) => {
                                if let Some(tx) = ready.take() {
                                    tx.send(()).ok();
                                }
                                continue;
                            }
                            Some(Ok(watcher::Event::Apply(rrs) | watcher::Event::InitApply(rrs))) => rrs,
                            Some(Ok(watcher::Event::Init | watcher::Event::Delete(_)) | Err(_)) => continue,
                            None => break,
                        };
                        let status = rrs.status.unwrap_or_default();
                        let now = (status.last_switchover, status.last_failover);
                        if let Some((switchover, failover)) = &last {
                            if now.0.is_some() && now.0 != *switchover {
                                moves.switchovers.extend(now.0.clone());
                            }
                            if now.1.is_some() && now.1 != *failover {
                                moves.failovers.extend(now.1.clone());
                            }
                        }
                        last = Some(now);
                    }
                }
            }
            moves
        });
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(())) => {}
            _ => panic!(
                "the watch of {NAME} had no first view within {} s",
                timeout.as_secs()
            ),
        }
        Self { stop, task }
    }

    /// Ends the watch.
    ///
    /// # Panics
    /// When the watch task panicked.
    pub async fn stop(self) -> Moves {
        self.stop.send(()).ok();
        self.task.await.expect("the set watch task")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn switchover(from: &str, to: &str) -> SwitchoverRecord {
        SwitchoverRecord {
            from: from.to_owned(),
            to: to.to_owned(),
            at: Time("2026-12-08T00:00:00Z".parse().expect("time")),
            offset: 1,
            write_pause_ms: 1,
            reason: format!("pod {from} is terminating"),
        }
    }

    #[test]
    fn a_chain_of_switchovers_ends_at_its_last_target_and_a_break_is_named() {
        let two = Moves {
            switchovers: vec![
                switchover("cache-0", "cache-1"),
                switchover("cache-1", "cache-2"),
            ],
            failovers: Vec::new(),
        };
        assert_eq!(two.switchover_chain("cache-0"), Ok("cache-2".to_owned()));
        let why = two
            .switchover_chain("cache-1")
            .expect_err("starts elsewhere");
        assert!(
            why.contains("from cache-0 to cache-1 while cache-1"),
            "{why}"
        );
        let broken = Moves {
            switchovers: vec![
                switchover("cache-0", "cache-1"),
                switchover("cache-2", "cache-0"),
            ],
            failovers: Vec::new(),
        };
        assert!(broken.switchover_chain("cache-0").is_err());
        assert!(Moves::default().switchover_chain("cache-0").is_err());
    }
}
