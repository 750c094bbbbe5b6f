//! The images under the specs that run them: the StatefulSet the operator builds is run with
//! Docker as the kubelet would run it (same image, command, user and group, read-only root
//! with the pod's writable mounts only, capabilities dropped, no-new-privileges, the
//! ConfigMap's and Secret's data as files with the pod's modes, the data volume), and the
//! operator's data plane drives the containers; the operator image runs as the chart says.
//! Everything comes from the objects, so an image that disagrees with its spec fails here.
//!
//! Needs root, Docker and the images `images/build.sh` builds (CI: `.ci/run`); skips with a
//! reason otherwise, and fails instead under TANDEM_REQUIRE_REAL_DEPS=1.

mod docker;
mod kubelet;
mod podnet;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container as ContainerSpec, EnvVar, PodSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::dataplane::engine::{DataPlane, Nodes, Pass, line_for};
use tandem_operator::dataplane::facts::Role;
use tandem_operator::dataplane::roles::NodeAddr;
use tandem_operator::local::PASS_INTERVAL;
use tandem_operator::policy::{self, Observed, Plan};
use tandem_operator::renames::CommandNames;
use tandem_operator::resources::fixtures::rrs;
use tandem_operator::resources::{self, Desired, Password, SERVER_PORT, names};
use tandem_operator::validate::validate;
use tandem_testkit::poll;

use docker::{Container, docker_ok, images_available};
use kubelet::{Pod, probe};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How long a step that needs only a few round trips may take on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(30);

/// The objects the operator applies for one set, and what it made them from.
struct Applied {
    desired: Desired,
    plan: Plan,
    password: Password,
    commands: CommandNames,
    renames: bool,
    replicas: usize,
    name: String,
    namespace: String,
}

impl Applied {
    fn of(resource: &RedisReplicaSet) -> Applied {
        let set = validate(resource, Observed::default()).expect("valid spec");
        let plan = policy::plan(&set.policy_input);
        let password = Password::generate();
        let commands = CommandNames::generate();
        let replicas = set.policy_input.replicas;
        Applied {
            desired: resources::desired(&set, &plan, &password, &commands, replicas),
            plan,
            password,
            commands,
            renames: resource.spec.security.rename_commands,
            replicas: usize::try_from(replicas).expect("replicas"),
            name: set.name.clone(),
            namespace: set.namespace.clone(),
        }
    }

    fn sts(&self) -> &StatefulSet {
        &self.desired.statefulset
    }

    fn image(&self) -> String {
        Pod::of(self.sts(), 0).main().image.clone().expect("image")
    }
}

/// A StatefulSet's pods as containers on one pod network, with their volumes under a
/// scratch directory; the test is their kubelet.
struct Cluster {
    applied: Applied,
    /// Volumes, under `<pod>/<volume>`; its name prefixes the containers'.
    scratch: Scratch,
    pods: Vec<Option<Container>>,
}

impl Cluster {
    fn new(applied: Applied) -> Cluster {
        Cluster {
            pods: (0..applied.replicas).map(|_| None).collect(),
            applied,
            scratch: Scratch::new("pods"),
        }
    }

    fn pod(&self, i: usize) -> Pod<'_> {
        Pod::of(self.applied.sts(), i)
    }

    /// Pod `i`'s stable DNS name, as the headless Service gives it.
    fn host(&self, i: usize) -> String {
        names::pod_host(
            &self.applied.name,
            &self.applied.namespace,
            &self.pod(i).name,
        )
    }

    fn addr(&self, i: usize) -> NodeAddr {
        NodeAddr {
            host: self.host(i),
            port: u16::try_from(SERVER_PORT).expect("port"),
        }
    }

    /// What the cluster DNS answers: every pod's name and address.
    fn dns(&self) -> Vec<(String, String)> {
        (0..self.applied.replicas)
            .map(|i| (self.host(i), podnet::pod_ip(i)))
            .collect()
    }

    /// Starts pod `i` (again, with the volumes it had) and wires it to the pod network.
    fn start(&mut self, i: usize) {
        let pod = self.pod(i);
        let claims: Vec<String> = self
            .applied
            .sts()
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let desired = &self.applied.desired;
        let volumes = pod.volumes(
            &self.scratch.0.join(&pod.name),
            &[&desired.config_map],
            &[&desired.auth_conf],
            &claims,
        );
        let args = pod.run_args(&volumes, &self.dns());
        let pod_name = pod.name.clone();
        let name = format!("{}-{pod_name}", self.scratch.name());
        // A pod restarted by its StatefulSet replaces the container that ran before.
        self.pods[i] = None;
        let container = Container::run(&name, &args);
        let pid = container.pid();
        assert!(
            pid != 0,
            "pod {pod_name} exited as it started: {}",
            container.logs()
        );
        podnet::attach(pid, i);
        self.pods[i] = Some(container);
    }

    fn container(&self, i: usize) -> &Container {
        self.pods[i].as_ref().expect("pod running")
    }

    /// Waits for the startup probe within its budget (period x failureThreshold), then
    /// checks the liveness probe once. Returns how long startup took. Readiness comes after
    /// the data plane wired the pod ([`Cluster::wait_ready`]).
    fn wait_probes(&self, i: usize) -> Duration {
        let pod = self.pod(i);
        let c = pod.main();
        let host = self.host(i);
        let exec = |cmd: &[String]| self.container(i).exec(cmd);
        let start = Instant::now();
        if let Some(startup) = &c.startup_probe {
            let budget =
                startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
            let budget = Duration::from_secs(u64::try_from(budget).expect("budget"));
            poll("the startup probe to pass", budget, || {
                assert!(
                    self.container(i).running(),
                    "pod {} exited: {}",
                    pod.name,
                    self.container(i).logs()
                );
                probe(startup, c, &host, exec).ok()
            });
        }
        let took = start.elapsed();
        if let Some(p) = &c.liveness_probe {
            probe(p, c, &host, exec)
                .unwrap_or_else(|e| panic!("liveness probe of {} failed: {e}", pod.name));
        }
        took
    }

    /// The readiness probe's verdict on pod `i` now: Err with the probe's reason.
    fn ready(&self, i: usize) -> Result<(), String> {
        let pod = self.pod(i);
        let c = pod.main();
        let p = c.readiness_probe.as_ref().expect("a readiness probe");
        probe(p, c, &self.host(i), |cmd: &[String]| {
            self.container(i).exec(cmd)
        })
    }

    /// Waits until the readiness probe passes on pod `i`.
    fn wait_ready(&self, i: usize) {
        poll("the readiness probe to pass", STEP, || self.ready(i).ok());
    }

    /// A client of pod `i`, logged in with the set's password.
    fn client(&self, i: usize) -> redis::Connection {
        let url = format!(
            "redis://:{}@{}:{SERVER_PORT}/",
            self.applied.password.expose(),
            self.host(i)
        );
        redis::Client::open(url)
            .expect("client")
            .get_connection_with_timeout(STEP)
            .expect("connect with the password")
    }

    /// Runs data-plane passes over the pods until `done` holds for one.
    fn drive(&self, dataplane: &mut DataPlane, within: Duration, done: impl Fn(&Pass) -> bool) {
        let mut nodes = PodContainers { cluster: self };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let deadline = Instant::now() + within;
            loop {
                let pass = dataplane
                    .pass(&mut nodes, &self.applied.plan, Timestamp::now())
                    .await
                    .expect("pass");
                if done(&pass) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "the data plane did not get there within {within:?}: master {:?}, waiting {:?}, nodes {:?}",
                    pass.decision.master,
                    pass.decision.waiting,
                    pass.nodes
                );
                tokio::time::sleep(PASS_INTERVAL).await;
            }
        });
    }

    fn data_plane(&self) -> DataPlane {
        let mut dataplane = DataPlane::new(
            Some(self.applied.password.expose().to_owned()),
            Duration::from_secs(5),
        );
        // As the controller: the names the pods were started with first.
        let (secret, plain) = (self.applied.commands.clone(), CommandNames::plain());
        dataplane.use_commands(if self.applied.renames {
            vec![secret, plain]
        } else {
            vec![plain, secret]
        });
        dataplane
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The containers go before their volumes do.
        self.pods.clear();
    }
}

/// The StatefulSet's side of the data plane's seam: the pods exist already (the test is their
/// kubelet), addressed by their DNS names; the role label has no Service to move here.
struct PodContainers<'a> {
    cluster: &'a Cluster,
}

impl Nodes for PodContainers<'_> {
    type Error = std::convert::Infallible;

    async fn list(&mut self) -> Result<Vec<(String, NodeAddr)>, Self::Error> {
        Ok((0..self.cluster.applied.replicas)
            .map(|i| (self.cluster.pod(i).name, self.cluster.addr(i)))
            .collect())
    }

    async fn ensure_running(
        &mut self,
        _master: Option<&NodeAddr>,
    ) -> Result<Vec<String>, Self::Error> {
        Ok(Vec::new())
    }

    async fn publish_master(&mut self, _master: &str) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Runs `body` with the pods of the set `spec` describes on a pod network of their own; skips
/// (a failure under TANDEM_REQUIRE_REAL_DEPS=1) without root, Docker or the server image.
fn with_pods(spec: &str, body: impl FnOnce(&mut Cluster) + Send) {
    let applied = Applied::of(&rrs(spec));
    if !podnet::available() || !images_available(&[&applied.image()]) {
        return;
    }
    let (hosts, _scratch) = podnet_hosts(&applied);
    podnet::within(&hosts, move || body(&mut Cluster::new(applied)));
}

/// The master is `pod` and every other pod is an online replica of it.
fn settled(pass: &Pass) -> bool {
    let Some(master) = &pass.decision.master else {
        return false;
    };
    let Some(facts) = pass
        .nodes
        .iter()
        .find(|n| &n.name == master)
        .and_then(|n| n.facts.as_ref())
    else {
        return false;
    };
    facts.role == Role::Master
        && pass.nodes.iter().filter(|n| &n.name != master).all(|n| {
            n.facts.as_ref().is_some_and(|f| f.link_up)
                && line_for(facts, &n.addr).is_some_and(|l| l.state == "online")
        })
}

/// Every key with its DUMP payload, sorted: equal datasets give equal lists. (DEBUG DIGEST
/// is not there to ask: pods run with enable-debug-command off and DEBUG removed.)
fn dataset(con: &mut redis::Connection) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query(con).expect("DUMP");
            (k, dump)
        })
        .collect()
}

/// Writes strings, a hash, a list and a set with an expiry.
fn write_data(con: &mut redis::Connection, keys: usize) {
    let mut pipe = redis::pipe();
    for i in 0..keys {
        pipe.cmd("SET")
            .arg(format!("key:{i}"))
            .arg(format!("value {i}"))
            .ignore();
    }
    pipe.cmd("HSET")
        .arg("hash")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .ignore();
    pipe.cmd("RPUSH")
        .arg("list")
        .arg("x")
        .arg("y")
        .arg("z")
        .ignore();
    pipe.cmd("SADD").arg("set").arg("m").ignore();
    pipe.cmd("EXPIRE").arg("set").arg(3600).ignore();
    pipe.query::<()>(con).expect("write");
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .trim()
        .to_owned()
}

#[test]
fn a_server_pod_serves_keeps_its_dump_and_stops_within_its_grace_period() {
    // Plain command names, so CONFIG answers the test; persistence, so there is a volume.
    let spec = "  replicas: 1\n  datasetSizeHint: 10Mi\n  persistence: { enabled: true, size: 1Gi }\n  security: { renameCommands: false }\n";
    with_pods(spec, |cluster| {
        cluster.start(0);
        let startup = cluster.wait_probes(0);
        println!("pod started and its probes passed in {startup:?}");

        // The pod starts as a replica of itself, not ready to serve; the data plane makes
        // it the master.
        let refused = cluster.ready(0).expect_err("not ready before it is wired");
        assert!(
            refused.contains("not ready: replica with its master link down"),
            "{refused}"
        );
        let mut dataplane = cluster.data_plane();
        cluster.drive(&mut dataplane, STEP, settled);
        cluster.wait_ready(0);

        let mut con = cluster.client(0);
        let sts = cluster.applied.sts().clone();
        let pod = Pod::of(&sts, 0);
        let config: BTreeMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("*")
            .query(&mut con)
            .expect("CONFIG GET");
        let data_mount = pod
            .main()
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "data")
            .expect("the data volume's mount");
        assert_eq!(
            config["dir"], data_mount.mount_path,
            "the server keeps its data on the data volume"
        );
        assert_eq!(
            config["replica-announce-ip"],
            cluster.host(0),
            "the command's $(POD_NAME) expanded"
        );
        let anonymous = redis::Client::open(format!("redis://{}:{SERVER_PORT}/", cluster.host(0)))
            .expect("client")
            .get_connection_with_timeout(STEP)
            .and_then(|mut c| redis::cmd("GET").arg("x").query::<Option<String>>(&mut c));
        assert!(
            anonymous.is_err_and(|e| e.code() == Some("NOAUTH")),
            "the Secret's password is required"
        );

        write_data(&mut con, 1000);
        let before = dataset(&mut con);
        assert_eq!(before.len(), 1003);

        let grace = pod.grace_seconds();
        let stopped = cluster.container(0).stop(grace);
        let logs = cluster.container(0).logs();
        println!("docker stop took {stopped:?} (grace period {grace} s)");
        assert_eq!(
            cluster.container(0).exit_code(),
            0,
            "the server must exit by itself on SIGTERM, not be killed: {logs}"
        );
        assert!(
            stopped < Duration::from_secs(u64::try_from(grace).expect("grace")) / 2,
            "stopping took {stopped:?} of a {grace} s grace period"
        );
        let saved = logs.find("DB saved on disk").expect("a final save");
        let bye = logs.find("ready to exit").expect("an orderly exit");
        assert!(saved < bye, "the save comes before the exit: {logs}");

        let data_dir = cluster.scratch.0.join(&pod.name).join("data");
        let dump = std::fs::metadata(data_dir.join(&config["dbfilename"]))
            .expect("the dump on the volume");
        let uid = pod
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user);
        assert_eq!(
            Some(i64::from(dump.uid())),
            uid,
            "written as the pod's user"
        );

        cluster.start(0);
        let startup = cluster.wait_probes(0);
        println!("pod restarted from its volume in {startup:?}");
        let mut con = cluster.client(0);
        poll("the dump to be loaded", STEP, || {
            (info_field(&mut con, "persistence", "loading") == "0").then_some(())
        });
        assert_eq!(
            dataset(&mut con),
            before,
            "the restarted pod has every key back"
        );
    });
}

/// The pods' hosts file for [`podnet::within`], in a scratch directory.
fn podnet_hosts(applied: &Applied) -> (PathBuf, Scratch) {
    let scratch = Scratch::new("hosts");
    let file = scratch.0.join("hosts");
    let mut hosts = "127.0.0.1 localhost\n::1 localhost\n".to_owned();
    for i in 0..applied.replicas {
        let pod = Pod::of(applied.sts(), i).name;
        hosts.push_str(&format!(
            "{} {}\n",
            podnet::pod_ip(i),
            names::pod_host(&applied.name, &applied.namespace, &pod)
        ));
    }
    std::fs::write(&file, hosts).expect("hosts");
    (file, scratch)
}

/// A directory of this test process's, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "tandem-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn name(&self) -> String {
        self.0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two or three pods replicating as the data plane wires them, in `mode`.
fn replicate(mode: &str, replicas: usize) {
    let spec = format!(
        "  replicas: {replicas}\n  datasetSizeHint: 10Mi\n  replication: {{ mode: {mode}, disklessSyncDelaySeconds: 0 }}\n"
    );
    with_pods(&spec, |cluster| {
        let start = Instant::now();
        for i in 0..replicas {
            cluster.start(i);
        }
        for i in 0..replicas {
            cluster.wait_probes(i);
        }
        let mut dataplane = cluster.data_plane();
        cluster.drive(&mut dataplane, STEP * 2, settled);
        for i in 0..replicas {
            cluster.wait_ready(i);
        }
        println!(
            "{replicas} pods up and replicating ({mode}) in {:?}",
            start.elapsed()
        );
        let master = dataplane.knowledge.master.clone().expect("a master");
        let m = (0..replicas)
            .find(|&i| cluster.pod(i).name == master)
            .expect("master pod");
        let mut con = cluster.client(m);
        write_data(&mut con, 2000);
        let expected = dataset(&mut con);
        let offset: u64 = info_field(&mut con, "replication", "master_repl_offset")
            .parse()
            .expect("offset");
        for i in (0..replicas).filter(|&i| i != m) {
            let mut replica = cluster.client(i);
            poll("the replica to catch up", STEP, || {
                let at: u64 = info_field(&mut replica, "replication", "slave_repl_offset")
                    .parse()
                    .ok()?;
                (at >= offset).then_some(())
            });
            assert_eq!(
                dataset(&mut replica),
                expected,
                "{} has the master's data",
                cluster.pod(i).name
            );
        }
        let logs = cluster.container(m).logs();
        let target = if mode == "Diskless" {
            "replicas sockets"
        } else {
            "disk"
        };
        assert!(
            logs.contains(&format!("Starting BGSAVE for SYNC with target: {target}")),
            "the master synced its replicas {mode}: {logs}"
        );
        assert_eq!(
            info_field(&mut con, "stats", "sync_full"),
            (replicas - 1).to_string(),
            "one full sync per replica"
        );
    });
}

#[test]
fn three_pods_replicate_diskless_as_the_data_plane_wires_them() {
    replicate("Diskless", 3);
}

#[test]
fn two_pods_replicate_through_disk_as_the_data_plane_wires_them() {
    replicate("Disk", 2);
}

#[test]
fn the_operator_image_runs_read_only_as_the_chart_says() {
    let image = format!("tandem-operator:{}", env!("CARGO_PKG_VERSION"));
    if !images_available(&[&image]) {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("charts/tandem-operator/values.yaml")).expect("values"),
    )
    .expect("values.yaml");
    let spec = |command: Option<&str>, args: &[&str]| PodSpec {
        security_context: Some(
            serde_yaml::from_value(values["podSecurityContext"].clone())
                .expect("podSecurityContext"),
        ),
        containers: vec![ContainerSpec {
            name: "operator".to_owned(),
            image: Some(image.clone()),
            command: command.map(|c| vec![c.to_owned()]),
            args: (!args.is_empty()).then(|| args.iter().map(|a| (*a).to_owned()).collect()),
            security_context: Some(
                serde_yaml::from_value(values["securityContext"].clone()).expect("securityContext"),
            ),
            ..ContainerSpec::default()
        }],
        ..PodSpec::default()
    };
    let run_spec = |spec: PodSpec, config_maps: &[&ConfigMap]| {
        let pod = Pod {
            name: "tandem-operator".to_owned(),
            spec: &spec,
            namespace: "tandem-system".to_owned(),
        };
        let scratch = Scratch::new("operator");
        let volumes = pod.volumes(&scratch.0, config_maps, &[], &[]);
        let mut all = vec!["run".to_owned(), "--rm".to_owned()];
        all.extend(pod.run_args(&volumes, &[]));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = docker::docker(&all);
        (out, start.elapsed())
    };
    let run = |command: Option<&str>, args: &[&str]| run_spec(spec(command, args), &[]);

    let (help, _) = run(None, &["--help"]);
    assert!(help.status.success(), "{help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: tandem-operator"));

    let (crd, _) = run(Some("crdgen"), &[]);
    assert!(crd.status.success(), "{crd:?}");
    let committed = std::fs::read_to_string(root.join("crds/redisreplicasets.tandem.dev.yaml"))
        .expect("committed CRD");
    assert_eq!(
        String::from_utf8_lossy(&crd.stdout).trim_end(),
        committed.trim_end(),
        "the image's crdgen prints the committed CRD"
    );

    // The image's default command is `run`; with no API server it must say so and exit.
    let (controller, took) = run(None, &[]);
    let said = String::from_utf8_lossy(&controller.stderr);
    println!("run without an API server exited in {took:?}");
    assert!(!controller.status.success(), "{controller:?}");
    assert!(
        said.contains("failed to configure the Kubernetes client"),
        "a clear error: {said}"
    );

    // A kubeconfig naming an API server nobody listens on (the pod has no network): the
    // controller's first list fails, and it exits saying so.
    let kubeconfig = ConfigMap {
        metadata: ObjectMeta {
            name: Some("kubeconfig".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "config".to_owned(),
            "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n".to_owned(),
        )])),
        ..ConfigMap::default()
    };
    let mut unreachable = spec(None, &[]);
    unreachable.volumes = Some(vec![Volume {
        name: "kubeconfig".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: "kubeconfig".to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }]);
    unreachable.containers[0].volume_mounts = Some(vec![VolumeMount {
        name: "kubeconfig".to_owned(),
        mount_path: "/kube".to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }]);
    unreachable.containers[0].env = Some(vec![EnvVar {
        name: "KUBECONFIG".to_owned(),
        value: Some("/kube/config".to_owned()),
        ..EnvVar::default()
    }]);
    let (controller, took) = run_spec(unreachable, &[&kubeconfig]);
    let said = String::from_utf8_lossy(&controller.stderr);
    println!("run with an unreachable API server exited in {took:?}");
    assert!(!controller.status.success(), "{controller:?}");
    assert!(
        said.contains("failed to list RedisReplicaSets") && said.contains("Connect"),
        "a clear error: {said}"
    );

    let user = docker_ok(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
    let uid = values["podSecurityContext"]["runAsUser"]
        .as_i64()
        .expect("runAsUser");
    assert_eq!(
        user,
        format!("{uid}:{uid}"),
        "the image's own user is the chart's"
    );
}
