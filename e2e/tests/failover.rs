//! Scenarios of losing and moving the master: deleting the master pod fails over within the
//! target with acknowledged writes intact and the old master back as a replica; scaling
//! 3 -> 5 -> 2 never removes the pod that holds the master role (a switchover moves it
//! first).
//!
//! Cluster tests: see e2e/README.md.

use std::collections::BTreeSet;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tandem_e2e::redis_cli::{RedisCli, Reply};
use tandem_e2e::scenario::Scenario;
use tandem_e2e::{scenario, set, wait};
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::resources::{ROLE_MASTER, pod_selector};

/// Keys written (and acknowledged) before the master goes.
const KEYS: usize = 200;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn deleting_the_master_pod_fails_over_keeps_acknowledged_writes_and_the_old_master_returns_as_replica()
 {
    scenario::run("failover", |s| async move {
        let mut spec = set::spec(3, "64Mi");
        spec.failover.enabled = true;
        spec.failover.down_after_seconds = 5;
        let rrs = set::create_synced(&s, spec).await.expect("fully synced");
        let old_master = set::master(&rrs).expect("master").to_owned();
        let cli = RedisCli::start(&s, &set::auth_secret())
            .await
            .expect("client pod");
        write_acknowledged(&cli, 1).await;

        let pods: Api<Pod> = s.api();
        let old_uid = pods.get(&old_master).await.expect("master pod").uid();
        let started = Instant::now();
        pods.delete(&old_master, &DeleteParams::default())
            .await
            .expect("delete the master pod");

        let sets: Api<RedisReplicaSet> = s.api();
        let target = s.cluster.settings.failover_target;
        let new_master = wait::poll(
            "a new master accepting writes through the master Service",
            target,
            || async {
                let rrs = sets.get(set::NAME).await.map_err(|e| e.to_string())?;
                let master = set::master(&rrs).map(str::to_owned);
                match master {
                    Some(m) if m != old_master => {
                        let reply = cli
                            .command(&set::master_host(), &["SET", "e2e:after-failover", "1"])
                            .await
                            .map_err(|e| e.to_string())?;
                        if reply == Reply::Text("OK".into()) {
                            Ok(m)
                        } else {
                            Err(format!("master {m} replied {reply:?}"))
                        }
                    }
                    other => Err(format!("status.master {other:?}")),
                }
            },
        )
        .await
        .expect("failover within the target");
        eprintln!(
            "failover: {old_master} -> {new_master} in {:.1} s (target {} s)",
            started.elapsed().as_secs_f64(),
            target.as_secs()
        );

        // Invariant 4: writes acknowledged with WAIT 1 survive.
        expect_keys(&cli, &set::master_host()).await;

        // Invariant 3: the old master returns as a replica of the new one.
        let rrs = set::wait_fully_synced(&s)
            .await
            .expect("fully synced again");
        assert_eq!(
            set::master(&rrs),
            Some(new_master.as_str()),
            "the master moved again"
        );
        let returned = pods
            .get(&old_master)
            .await
            .expect("the old master's pod is back");
        assert_ne!(returned.uid(), old_uid, "a new pod under the old name");
        set::roles_match(&rrs, &set::pods(&s).await.expect("pods")).expect("roles");
        let info = cli
            .info(&set::pod_host(&old_master))
            .await
            .expect("INFO of the old master");
        assert_eq!(info["role"], "slave", "{old_master} is back as a replica");
        assert_eq!(info["master_link_status"], "up");
        expect_keys(&cli, &set::pod_host(&old_master)).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn scaling_3_to_5_to_2_never_removes_the_master_without_a_switchover() {
    scenario::run("scale", |s| async move {
        let rrs = set::create_synced(&s, set::spec(3, "64Mi")).await.expect("fully synced with 3");
        let first_master = set::master(&rrs).expect("master").to_owned();

        set::patch_spec(&s, json!({ "replicas": 5 })).await.expect("scale to 5");
        let rrs = set::wait_fully_synced(&s).await.expect("fully synced with 5");
        assert_eq!(
            set::master(&rrs),
            Some(first_master.as_str()),
            "scaling out moved the master"
        );
        let cli = RedisCli::start(&s, &set::auth_secret()).await.expect("client pod");
        // Every replica acknowledges: pods 0 and 1 may be deleted next, and the keys must
        // then be on the others.
        write_acknowledged(&cli, 4).await;

        // Put the master on an ordinal the scale-in removes: pods 0 and 1 deleted together
        // come back empty, and a pod that restarts empty never becomes master (invariant 2).
        if set::ordinal(&first_master).is_some_and(|i| i < 2) {
            let pods: Api<Pod> = s.api();
            for i in 0..2 {
                pods.delete(&set::pod_name(i), &DeleteParams::default())
                    .await
                    .expect("delete a low ordinal");
            }
            let sets: Api<RedisReplicaSet> = s.api();
            wait::resource(
                &sets,
                set::NAME,
                "a master among cache-2..4 and every replica online",
                s.cluster.settings.ready_timeout,
                |r: &RedisReplicaSet| {
                    set::fully_synced(r)?;
                    match set::master(r).and_then(set::ordinal) {
                        Some(i) if i >= 2 => Ok(()),
                        other => Err(format!("master ordinal {other:?}")),
                    }
                },
            )
            .await
            .expect("master on a high ordinal");
            expect_keys(&cli, &set::master_host()).await;
        }
        let rrs = set::wait_fully_synced(&s).await.expect("fully synced with 5");
        let master_before = set::master(&rrs).expect("master").to_owned();

        let watch = RemovalWatch::start(&s).await;
        set::patch_spec(&s, json!({ "replicas": 2 })).await.expect("scale to 2");
        let rrs = set::wait_fully_synced(&s).await.expect("fully synced with 2");
        wait::poll("pods cache-2..4 gone", s.cluster.settings.ready_timeout, || async {
            let names: Vec<String> = set::pods(&s)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            if names == ["cache-0", "cache-1"] { Ok(()) } else { Err(format!("pods {names:?}")) }
        })
        .await
        .expect("scaled in");
        let report = watch.stop().await;

        assert!(
            report.violations.is_empty(),
            "pods removed while holding the master role: {:?}",
            report.violations
        );
        assert!(
            report.removed.contains(&master_before),
            "the master before the scale-in ({master_before}) was removed, so it was switched over first; removed: {:?}",
            report.removed
        );
        let master_after = set::master(&rrs).expect("master").to_owned();
        assert!(
            set::ordinal(&master_after).is_some_and(|i| i < 2),
            "master {master_after} after the scale-in"
        );
        let switchover = rrs
            .status
            .as_ref()
            .and_then(|s| s.last_switchover.as_ref())
            .expect("status.lastSwitchover: the master moved by a switchover");
        assert_eq!(
            (switchover.from.as_str(), switchover.to.as_str()),
            (master_before.as_str(), master_after.as_str())
        );
        assert!(
            switchover.reason.starts_with("scale-in to 2 pods"),
            "{}",
            switchover.reason
        );
        set::roles_match(&rrs, &set::pods(&s).await.expect("pods")).expect("roles");
        expect_keys(&cli, &set::master_host()).await;
        let replica = if master_after == "cache-0" { "cache-1" } else { "cache-0" };
        expect_keys(&cli, &set::pod_host(replica)).await;
    })
    .await;
}

/// Writes [`KEYS`] keys over one connection through the master Service and checks that
/// `replicas` replicas acknowledged them (`WAIT replicas`).
async fn write_acknowledged(cli: &RedisCli, replicas: i64) {
    let mut lines: Vec<String> = (0..KEYS)
        .map(|i| format!("SET e2e:{i} value-{i}"))
        .collect();
    lines.push(format!("WAIT {replicas} 10000"));
    let replies = cli
        .pipeline(&set::master_host(), &lines)
        .await
        .expect("write through the master Service");
    assert_eq!(replies.len(), KEYS + 1, "{replies:?}");
    assert!(
        replies[..KEYS]
            .iter()
            .all(|r| *r == Reply::Text("OK".into())),
        "{replies:?}"
    );
    assert!(
        matches!(replies[KEYS], Reply::Integer(n) if n >= replicas),
        "WAIT {replicas} replied {:?}",
        replies[KEYS]
    );
}

/// Every acknowledged key is on `host` with its value.
async fn expect_keys(cli: &RedisCli, host: &str) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("e2e:{i}")).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    let reply = cli.command(host, &args).await.expect("MGET");
    let expected: Vec<Option<String>> = (0..KEYS).map(|i| Some(format!("value-{i}"))).collect();
    assert_eq!(reply, Reply::Array(expected), "acknowledged keys on {host}");
}

/// Watches the set's pods and records every pod removed while labelled master.
struct RemovalWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Report>,
}

#[derive(Debug, Default)]
struct Report {
    /// Pods seen being removed.
    removed: BTreeSet<String>,
    /// Pods removed while holding the master role.
    violations: Vec<String>,
}

impl RemovalWatch {
    /// Starts watching; returns once the watch has its initial list, so no later removal
    /// is missed.
    async fn start(s: &Scenario) -> Self {
        let pods: Api<Pod> = s.api();
        let config = watcher::Config::default().labels(&pod_selector(set::NAME));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut report = Report::default();
            let mut ready = Some(ready_tx);
            let mut events = std::pin::pin!(watcher(pods, config).default_backoff());
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    event = events.next() => {
                        let (pod, deleted) = match event {
                            Some(Ok(watcher::Event::InitDone)) => {
                                if let Some(tx) = ready.take() {
                                    tx.send(()).ok();
                                }
                                continue;
                            }
                            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => (pod, false),
                            Some(Ok(watcher::Event::Delete(pod))) => (pod, true),
                            Some(Ok(watcher::Event::Init)) | Some(Err(_)) => continue,
                            None => break,
                        };
                        if deleted || pod.metadata.deletion_timestamp.is_some() {
                            let name = pod.name_any();
                            if set::role(&pod) == Some(ROLE_MASTER) {
                                report.violations.push(format!("{name} (deleted: {deleted})"));
                            }
                            report.removed.insert(name);
                        }
                    }
                }
            }
            report
        });
        ready_rx.await.expect("the pod watch lists the pods");
        Self { stop, task }
    }

    async fn stop(self) -> Report {
        self.stop.send(()).ok();
        self.task.await.expect("the watch task")
    }
}
