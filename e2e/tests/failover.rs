//! Scenarios of the master leaving and moving, each under a client that writes with
//! `WAIT 1` through the master Service all along ([`Writer`]):
//!
//! - `kubectl delete pod` of the master: switched over before the pod goes (a `SwitchedOver`
//!   event, `status.lastSwitchover` from the old master, no `FailedOver`), no acknowledged
//!   write lost, the old master's new pod back as a replica;
//! - `kubectl drain` of the master's node: the same through evictions the
//!   PodDisruptionBudget paces one pod at a time, the evicted pods rescheduled on the other
//!   worker;
//! - a master whose server exits without a handover (`SHUTDOWN NOW NOSAVE`: what an OOM
//!   kill or a crash looks like to the operator; the container restarts in place, empty):
//!   a failover within the target, no acknowledged write lost, the restarted server back as
//!   a replica;
//! - scaling 3 -> 5 -> 2 never removes the pod that holds the master role (a switchover
//!   moves it first).
//!
//! Why not `kubectl delete pod --grace-period=0 --force` for the crash: it removes the pod
//! object at once, but the kubelet still stops the container with SIGTERM and a grace
//! period, so the server starts its handover while its DNS name already points nowhere:
//! whether that ends in a switchover or a failover is a race, not a crash. The server image
//! is distroless (no shell, no `kill`) and DEBUG is removed, so the crash is asked of the
//! server itself, through the secret name the operator gave SHUTDOWN.
//!
//! Cluster tests: see e2e/README.md.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tandem_e2e::events::{self, FAILED_OVER, SWITCHED_OVER};
use tandem_e2e::moves::{MoveWatch, Moves};
use tandem_e2e::redis_cli::{RedisCli, Reply};
use tandem_e2e::scenario::Scenario;
use tandem_e2e::writer::{Writer, Written};
use tandem_e2e::{drain, scenario, set, wait};
use tandem_operator::crd::{RedisReplicaSet, RedisReplicaSetSpec, SwitchoverRecord};
use tandem_operator::resources::exporter;
use tandem_operator::resources::{ROLE_MASTER, pod_selector};

/// Keys written (and acknowledged) before the master goes.
const KEYS: usize = 200;

/// Writes the concurrent writer gets acknowledged before the master is made to go, so that
/// it goes under load, and again after the new master is named, to show it takes them.
const WRITES_EACH_SIDE: usize = 20;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn deleting_the_master_pod_switches_over_before_it_goes_with_no_acknowledged_write_lost() {
    scenario::run("delete-master", |s| async move {
        let Loaded { old_master, cli, moves, mut writer } = Loaded::start(&s).await;
        let settings = &s.cluster.settings;

        let pods: Api<Pod> = s.api();
        let old_uid = pods.get(&old_master).await.expect("master pod").uid();
        let started = Instant::now();
        // `kubectl delete pod`: the pod's own grace period, a deletion timestamp first.
        pods.delete(&old_master, &DeleteParams::default())
            .await
            .expect("delete the master pod");

        let target = settings.failover_target;
        let new_master = wait_switched_over_from(&s, &old_master, target).await;
        let named = started.elapsed();
        let resumed = writes_resume(&mut writer, started, target).await;
        eprintln!(
            "delete of {old_master}: switched over to {new_master}, named in the status after {:.1} s, a write acknowledged again after {:.1} s (target {} s)",
            named.as_secs_f64(),
            resumed.as_secs_f64(),
            target.as_secs()
        );

        // Invariant 3: the old master's new pod comes back as a replica of the new master.
        let rrs = set::wait_fully_synced(&s).await.expect("fully synced again");
        let (written, moves) = finish(writer, moves).await;

        assert_eq!(moves.switchover_chain(&old_master), Ok(new_master.clone()), "{moves:?}");
        assert_eq!(moves.switchovers.len(), 1, "{moves:?}");
        assert!(moves.failovers.is_empty(), "a failover: {moves:?}");
        let status = rrs.status.as_ref().expect("status");
        let last = status.last_switchover.as_ref().expect("status.lastSwitchover");
        assert_eq!(*last, moves.switchovers[0]);
        assert_departure(last);
        assert!(status.last_failover.is_none(), "{:?}", status.last_failover);
        assert_eq!(set::master(&rrs), Some(new_master.as_str()), "the master moved again");
        expect_switched_over_not_failed_over(&s, last).await;

        // Invariant 4: every write acknowledged with WAIT 1 is on the new master.
        expect_kept(&cli, &written).await;

        let returned = pods.get(&old_master).await.expect("the old master's pod is back");
        assert_ne!(returned.uid(), old_uid, "a new pod under the old name");
        expect_back_as_replica(&s, &cli, &rrs, &old_master, &written).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn draining_the_masters_node_switches_over_paced_by_the_pdb_with_no_acknowledged_write_lost()
{
    scenario::run("drain", |s| async move {
        let Loaded { old_master, cli, moves, mut writer } = Loaded::start(&s).await;
        let settings = &s.cluster.settings;
        let pods_before = set::pods(&s).await.expect("pods");
        let node = pods_before
            .iter()
            .find(|p| p.name_any() == old_master)
            .and_then(drain::node_of)
            .expect("the master pod is scheduled")
            .to_owned();
        let on_node = pods_before
            .iter()
            .filter(|p| drain::node_of(p) == Some(node.as_str()))
            .count();

        let started = Instant::now();
        // Each pod after the first waits for the one before to be back and Ready.
        let budget = settings.ready_timeout * u32::try_from(on_node).unwrap_or(u32::MAX);
        let evicted = drain::drain(&s, &node, budget).await.expect("node drained");
        eprintln!(
            "drain of {node} ({on_node} of the set's pods, master {old_master}): evictions accepted and pods gone after {:.1} s: {evicted:?}",
            started.elapsed().as_secs_f64()
        );
        let rrs = set::wait_fully_synced(&s).await.expect("fully synced after the drain");
        writes_resume(&mut writer, Instant::now(), settings.failover_target).await;
        let (written, moves) = finish(writer, moves).await;
        s.uncordon(&node).await.expect("uncordon the drained node");

        let evicted_names: BTreeSet<&str> = evicted.iter().map(|e| e.pod.as_str()).collect();
        assert!(evicted_names.contains(old_master.as_str()), "{evicted:?}");
        assert_eq!(evicted.len(), on_node, "{evicted:?}");
        if evicted.len() > 1 {
            assert!(
                evicted.iter().any(|e| e.refusals > 0),
                "the PodDisruptionBudget let two pods of the set go at once: {evicted:?}"
            );
        }
        // Every move a switchover away from a pod the drain evicted, the first from the old
        // master (the first target may be on the drained node too, and moves again).
        let new_master = moves.switchover_chain(&old_master).expect("every move a switchover");
        assert!(moves.failovers.is_empty(), "a failover: {moves:?}");
        for sw in &moves.switchovers {
            assert!(evicted_names.contains(sw.from.as_str()), "{sw:?}");
            assert_departure(sw);
            expect_switched_over_not_failed_over(&s, sw).await;
        }
        assert_eq!(set::master(&rrs), Some(new_master.as_str()));
        let status = rrs.status.as_ref().expect("status");
        assert_eq!(
            status.last_switchover.as_ref().map(|l| l.to.as_str()),
            Some(new_master.as_str())
        );
        assert!(status.last_failover.is_none(), "{:?}", status.last_failover);

        // The evicted pods were recreated on the other nodes.
        let pods_after = set::pods(&s).await.expect("pods");
        for pod in &pods_after {
            assert_ne!(drain::node_of(pod), Some(node.as_str()), "{} on the drained node", pod.name_any());
        }
        for e in &evicted {
            let now = pods_after.iter().find(|p| p.name_any() == e.pod).expect("recreated");
            assert_ne!(now.uid().as_deref(), Some(e.uid.as_str()), "{} not replaced", e.pod);
        }
        set::roles_match(&rrs, &pods_after).expect("roles");

        // Invariant 4 on the master, and every pod the drain moved holds the writes too.
        expect_kept(&cli, &written).await;
        for e in evicted.iter().filter(|e| e.pod != new_master) {
            expect_back_as_replica(&s, &cli, &rrs, &e.pod, &written).await;
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn a_master_that_exits_without_a_handover_fails_over_within_the_target_with_no_acknowledged_write_lost()
 {
    scenario::run("crash", |s| async move {
        let Loaded { old_master, cli, moves, mut writer } = Loaded::start(&s).await;
        let settings = &s.cluster.settings;
        let pods: Api<Pod> = s.api();
        let before = pods.get(&old_master).await.expect("master pod");
        let restarts_before = server_restarts(&before);

        let target = settings.failover_target;
        let started = Instant::now();
        // No handover, no save: the process is gone at once, and the kubelet restarts the
        // container in place with an empty dataset.
        let shutdown = cli
            .renamed(&set::pod_host(&old_master), "SHUTDOWN", &["NOW", "NOSAVE"])
            .await;
        wait::resource(
            &pods,
            &old_master,
            "the master's server container to restart",
            target,
            |p: &Pod| {
                let n = server_restarts(p);
                if n > restarts_before { Ok(()) } else { Err(format!("{n} restarts")) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}; SHUTDOWN NOW NOSAVE gave {shutdown:?}"));

        let sets: Api<RedisReplicaSet> = s.api();
        let failed_over = wait::resource(
            &sets,
            set::NAME,
            "a failover away from the old master",
            remaining(started, target),
            |r: &RedisReplicaSet| {
                let last = r.status.as_ref().and_then(|st| st.last_failover.as_ref());
                match (last, set::master(r)) {
                    (Some(f), Some(m)) if f.from == old_master && m != old_master => Ok(()),
                    (last, master) => Err(format!("master {master:?}, lastFailover {last:?}")),
                }
            },
        )
        .await
        .expect("failover within the target");
        let new_master = set::master(&failed_over).expect("master").to_owned();
        let resumed = writes_resume(&mut writer, started, target).await;
        eprintln!(
            "crash of {old_master}: failed over to {new_master}, a write acknowledged again after {:.1} s (target {} s)",
            resumed.as_secs_f64(),
            target.as_secs()
        );

        let rrs = set::wait_fully_synced(&s).await.expect("fully synced again");
        let (written, moves) = finish(writer, moves).await;

        assert_eq!(moves.failovers.len(), 1, "{moves:?}");
        assert_eq!(moves.failovers[0].from, old_master);
        assert!(moves.switchovers.is_empty(), "nothing was planned: {moves:?}");
        assert_eq!(set::master(&rrs), Some(new_master.as_str()), "the master moved again");
        events::wait_for(
            &s,
            FAILED_OVER,
            &[&format!("failover from {old_master} "), &format!(" to {new_master} ")],
            settings.failover_target,
        )
        .await
        .expect("FailedOver event");
        let notices = events::of_set(&s).await.expect("events");
        assert!(events::notes(&notices, SWITCHED_OVER).is_empty(), "{notices:?}");

        // Invariant 4 holds for a crash too: WAIT 1 means a replica had the write.
        expect_kept(&cli, &written).await;

        // Invariant 2 and 3: the same pod, restarted empty, never master again, back as a
        // replica with the data.
        let returned = pods.get(&old_master).await.expect("the old master's pod");
        assert_eq!(returned.uid(), before.uid(), "the pod was kept, its container restarted");
        expect_back_as_replica(&s, &cli, &rrs, &old_master, &written).await;
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

/// A fully synced set under load: [`KEYS`] keys acknowledged by `WAIT 1`, the watch on
/// master moves running, and the writer going with its first writes acknowledged.
struct Loaded {
    old_master: String,
    cli: RedisCli,
    moves: MoveWatch,
    writer: Writer,
}

impl Loaded {
    async fn start(s: &Scenario) -> Self {
        let rrs = set::create_synced(s, failover_spec())
            .await
            .expect("fully synced");
        let old_master = set::master(&rrs).expect("master").to_owned();
        let cli = RedisCli::start(s, &set::auth_secret())
            .await
            .expect("client pod");
        write_acknowledged(&cli, 1).await;
        let moves = MoveWatch::start(s).await;
        let mut writer = Writer::start(cli.clone(), "e2e:w");
        writer
            .wait_acknowledged(WRITES_EACH_SIDE, s.cluster.settings.ready_timeout)
            .await
            .expect("the writer's first writes");
        Self {
            old_master,
            cli,
            moves,
            writer,
        }
    }
}

/// Stops the writer and the watch; prints what the writer did.
async fn finish(writer: Writer, moves: MoveWatch) -> (Written, Moves) {
    let written = writer.stop().await;
    eprintln!("writer: {}", written.summary());
    (written, moves.stop().await)
}

/// Invariant 4 on the master: the [`KEYS`] keys and every write the writer got
/// acknowledged.
async fn expect_kept(cli: &RedisCli, written: &Written) {
    expect_keys(cli, &set::master_host()).await;
    expect_written(cli, &set::master_host(), written).await;
}

/// Three pods, failover on with `downAfterSeconds: 5`: a master that is not switched over in
/// time would be failed over quickly, so "no FailedOver" means something.
fn failover_spec() -> RedisReplicaSetSpec {
    let mut spec = set::spec(3, "64Mi");
    spec.failover.enabled = true;
    spec.failover.down_after_seconds = 5;
    spec
}

/// Waits for a write acknowledged after the new master was named, within what is left of
/// the target since `started`, then for [`WRITES_EACH_SIDE`] of them (the writer goes on at
/// its own pace); returns when the first came, since `started`.
async fn writes_resume(writer: &mut Writer, started: Instant, target: Duration) -> Duration {
    let acknowledged = writer.acknowledged();
    writer
        .wait_acknowledged(acknowledged + 1, remaining(started, target))
        .await
        .expect("a write acknowledged through the master Service within the target");
    let first = started.elapsed();
    writer
        .wait_acknowledged(acknowledged + WRITES_EACH_SIDE, target)
        .await
        .expect("the writer's writes acknowledged again");
    first
}

/// What is left of `budget` since `started` (a deadline for several waits in a row).
fn remaining(started: Instant, budget: Duration) -> Duration {
    budget.saturating_sub(started.elapsed())
}

/// Waits until the status says the master was switched over away from `from`; returns the
/// new master.
async fn wait_switched_over_from(s: &Scenario, from: &str, timeout: Duration) -> String {
    let sets: Api<RedisReplicaSet> = s.api();
    let rrs = wait::resource(
        &sets,
        set::NAME,
        &format!("a switchover away from {from}"),
        timeout,
        |r: &RedisReplicaSet| {
            let last = r.status.as_ref().and_then(|st| st.last_switchover.as_ref());
            match (last, set::master(r)) {
                (Some(sw), Some(m)) if sw.from == from && m != from => Ok(()),
                (last, master) => Err(format!("master {master:?}, lastSwitchover {last:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("switchover within the target: {e}"));
    set::master(&rrs).expect("master").to_owned()
}

/// The switchover was made because its master was leaving: its pod terminating (the
/// deletion timestamp seen first, as expected) or its server shutting down after the
/// kubelet's SIGTERM (seen first when a reconcile listed the pods just before the deletion
/// and asked the server just after). Both are the planned path; a failover is not.
fn assert_departure(sw: &SwitchoverRecord) {
    let terminating = sw.reason == format!("pod {} is terminating", sw.from);
    let shutting_down = sw
        .reason
        .starts_with(&format!("{} is shutting down", sw.from));
    assert!(terminating || shutting_down, "{sw:?}");
}

/// A `SwitchedOver` event for the switchover `sw`, with its reason, and no `FailedOver`
/// event at all.
async fn expect_switched_over_not_failed_over(s: &Scenario, sw: &SwitchoverRecord) {
    events::wait_for(
        s,
        SWITCHED_OVER,
        &[
            &format!("from {} to {} ", sw.from, sw.to),
            &format!("({})", sw.reason),
        ],
        s.cluster.settings.failover_target,
    )
    .await
    .expect("SwitchedOver event");
    let notices = events::of_set(s).await.expect("events");
    assert!(
        events::notes(&notices, FAILED_OVER).is_empty(),
        "{notices:?}"
    );
}

/// Every write the writer got acknowledged is on `host` now.
async fn expect_written(cli: &RedisCli, host: &str, written: &Written) {
    assert!(!written.acknowledged.is_empty(), "{}", written.summary());
    let missing = written
        .missing_on(cli, host)
        .await
        .expect("read back the writes");
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing on {host}: {missing:?}",
        missing.len(),
        written.acknowledged.len()
    );
}

/// `pod` is a replica of the status's master with its link up, holding the 200 keys and,
/// once it has caught up (a replica may trail the last writes by moments), every write the
/// writer got acknowledged.
async fn expect_back_as_replica(
    s: &Scenario,
    cli: &RedisCli,
    rrs: &RedisReplicaSet,
    pod: &str,
    written: &Written,
) {
    set::roles_match(rrs, &set::pods(s).await.expect("pods")).expect("roles");
    let host = set::pod_host(pod);
    let info = cli.info(&host).await.expect("INFO replication");
    assert_eq!(info["role"], "slave", "{pod} is back as a replica");
    assert_eq!(info["master_link_status"], "up", "{pod}");
    let master = set::master(rrs).expect("master");
    assert!(
        info["master_host"].starts_with(master),
        "{pod} replicates from {}, not from {master}",
        info["master_host"]
    );
    expect_keys(cli, &host).await;
    wait::poll(
        &format!("{pod} to hold every acknowledged write"),
        s.cluster.settings.failover_target,
        || async {
            let missing = written
                .missing_on(cli, &host)
                .await
                .map_err(|e| e.to_string())?;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} missing, first {:?}",
                    missing.len(),
                    missing.first()
                ))
            }
        },
    )
    .await
    .expect("the acknowledged writes on the returned replica");
}

/// Restarts of the pod's server container (the exporter sidecar's are not the server's).
fn server_restarts(pod: &Pod) -> i32 {
    pod.status
        .iter()
        .flat_map(|st| st.container_statuses.iter().flatten())
        .filter(|c| c.name != exporter::CONTAINER_NAME)
        .map(|c| c.restart_count)
        .sum()
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
