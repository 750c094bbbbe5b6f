//! Scenarios of a healthy set: it becomes Available with every replica online and its status
//! filled (and CONFIG, REPLICAOF and DEBUG unknown to clients), data written through the
//! master Service is read from the replicas, and a client without the password is refused.
//!
//! Cluster tests: `#[ignore]`d, run with `cargo test -p tandem-e2e -- --ignored` against the
//! cluster KUBECONFIG names (e2e/run-kind.sh makes one). See e2e/README.md.

use kube::ResourceExt;
use tandem_e2e::redis_cli::{Auth, RedisCli, Reply};
use tandem_e2e::{scenario, set};
use tandem_operator::crd::SyncMode;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn a_set_becomes_available_with_every_replica_online_and_its_status_filled() {
    scenario::run("available", |s| async move {
        let rrs = set::create_synced(&s, set::spec(3, "64Mi"))
            .await
            .expect("fully synced");
        let status = rrs.status.clone().expect("status");
        let master = status.master.clone().expect("master");

        let pods = set::pods(&s).await.expect("pods");
        let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
        assert_eq!(names, ["cache-0", "cache-1", "cache-2"]);
        set::roles_match(&rrs, &pods).expect("role labels agree with status.master");

        assert_eq!(status.ready.as_deref(), Some("3/3"));
        assert_eq!(status.ready_replicas, 3);
        assert!(
            status.master_offset.is_some_and(|o| o > 0),
            "masterOffset {:?}",
            status.master_offset
        );
        let replication = status.replication.as_ref().expect("status.replication");
        assert!(!replication.reason.is_empty(), "an empty reason");
        // 64Mi without persistence: no volume to hold a dump (docs/tuning.md).
        assert_eq!(replication.mode, SyncMode::Diskless);
        let listed: Vec<&str> = status.nodes.iter().map(|r| r.pod.as_str()).collect();
        let others: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != master)
            .collect();
        assert_eq!(
            listed, others,
            "one entry per non-master pod, in ordinal order"
        );
        for r in &status.nodes {
            assert!(r.lag.is_some(), "{}: no lag", r.pod);
            let full_sync = r
                .last_full_sync
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no lastFullSync after its initial sync", r.pod));
            assert_eq!(full_sync.mode, replication.mode, "{}", r.pod);
            assert!(full_sync.duration_seconds >= 0, "{}", r.pod);
        }
        for (kind, want) in [
            ("Available", "True"),
            ("Progressing", "False"),
            ("Degraded", "False"),
            ("Ready", "True"),
            ("Reconciling", "False"),
            ("Stalled", "False"),
        ] {
            let condition = status
                .conditions
                .iter()
                .find(|c| c.type_ == kind)
                .unwrap_or_else(|| panic!("no {kind} condition"));
            assert_eq!(condition.status, want, "{kind}: {}", condition.message);
            assert_eq!(
                condition.observed_generation, rrs.metadata.generation,
                "{kind}"
            );
        }

        // The servers agree with the status.
        let cli = RedisCli::start(&s, &set::auth_secret())
            .await
            .expect("client pod");
        let info = cli
            .info(&set::pod_host(&master))
            .await
            .expect("INFO of the master");
        assert_eq!(info["role"], "master");
        assert_eq!(info["connected_slaves"], "2");
        for r in &status.nodes {
            let info = cli
                .info(&set::pod_host(&r.pod))
                .await
                .expect("INFO of a replica");
            assert_eq!(info["role"], "slave", "{}", r.pod);
            assert_eq!(info["master_link_status"], "up", "{}", r.pod);
            assert!(
                info["master_host"].starts_with(&master),
                "{} replicates from {}, not from the master {master}",
                r.pod,
                info["master_host"]
            );
        }

        // A client with the password still cannot reconfigure or re-point a server: the
        // operator renamed CONFIG and REPLICAOF (and removed DEBUG) on every pod, while its
        // own tuning reached them through the secret name.
        for (command, arg) in [("CONFIG", "GET"), ("REPLICAOF", "NO"), ("DEBUG", "SLEEP")] {
            let reply = cli
                .command(&set::pod_host(&master), &[command, arg, "0"])
                .await
                .expect("a reply");
            assert!(
                matches!(&reply, Reply::Error(e) if e.starts_with(&format!("ERR unknown command '{command}'"))),
                "{command}: {reply:?}"
            );
        }
        let timeout = cli
            .config_get(&set::pod_host(&master), "repl-timeout")
            .await
            .expect("CONFIG GET through the renamed name");
        assert_eq!(
            timeout,
            status
                .replication
                .as_ref()
                .expect("replication")
                .repl_timeout_seconds
                .to_string()
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn data_written_through_the_master_service_is_read_from_the_replicas() {
    scenario::run("data", |s| async move {
        let rrs = set::create_synced(&s, set::spec(3, "64Mi"))
            .await
            .expect("fully synced");
        let cli = RedisCli::start(&s, &set::auth_secret())
            .await
            .expect("client pod");

        // WAIT 2: both replicas acknowledged the write, so it is applied on each of them.
        let replies = cli
            .pipeline(
                &set::master_host(),
                &[
                    "SET e2e:key written-through-the-master-service".to_owned(),
                    "WAIT 2 10000".to_owned(),
                ],
            )
            .await
            .expect("write through the master Service");
        assert_eq!(
            replies,
            [Reply::Text("OK".into()), Reply::Integer(2)],
            "SET then WAIT 2"
        );
        let expected = Reply::Text("written-through-the-master-service".into());
        let status = rrs.status.expect("status");
        for r in &status.nodes {
            let got = cli
                .command(&set::pod_host(&r.pod), &["GET", "e2e:key"])
                .await
                .expect("read a replica");
            assert_eq!(got, expected, "GET on replica {}", r.pod);
        }
        let got = cli
            .command(&set::replicas_host(), &["GET", "e2e:key"])
            .await
            .expect("read through the replicas Service");
        assert_eq!(got, expected, "GET through the replicas Service");

        // The replicas Service routes to replicas only: they refuse writes.
        let refused = cli
            .command(&set::replicas_host(), &["SET", "e2e:other", "x"])
            .await
            .expect("write through the replicas Service");
        assert!(
            matches!(&refused, Reply::Error(e) if e.starts_with("READONLY")),
            "{refused:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster with tandem-operator installed: e2e/run-kind.sh"]
async fn a_client_without_the_password_is_refused() {
    scenario::run("auth", |s| async move {
        set::create_synced(&s, set::spec(2, "64Mi"))
            .await
            .expect("fully synced");
        let cli = RedisCli::start(&s, &set::auth_secret())
            .await
            .expect("client pod");

        let mut hosts = vec![set::master_host(), set::replicas_host()];
        hosts.extend(
            set::pods(&s)
                .await
                .expect("pods")
                .iter()
                .map(|p| set::pod_host(&p.name_any())),
        );
        for host in &hosts {
            for auth in [Auth::None, Auth::Wrong] {
                let reply = cli
                    .command_as(auth, host, &["GET", "e2e:key"])
                    .await
                    .expect("redis-cli runs");
                assert!(
                    matches!(&reply, Reply::Error(e) if e.starts_with("NOAUTH")),
                    "{host} with {auth:?}: {reply:?}"
                );
            }
            // The same connection with the password is served: the refusal was the password.
            let reply = cli.command(host, &["PING"]).await.expect("redis-cli runs");
            assert_eq!(
                reply,
                Reply::Text("PONG".into()),
                "{host} with the password"
            );
        }
        let secret: k8s_openapi::api::core::v1::Secret = s
            .api()
            .get(&set::auth_secret())
            .await
            .expect("the operator created the auth Secret");
        let password = secret
            .data
            .as_ref()
            .and_then(|d| d.get(tandem_operator::resources::PASSWORD_KEY))
            .expect("a password key");
        assert_eq!(
            password.0.len(),
            tandem_operator::resources::Password::GENERATED_LEN,
            "a generated password"
        );
    })
    .await;
}
