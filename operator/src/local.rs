//! `tandem-operator local`: the data plane driving local tandem-server processes instead of
//! pods. Node i listens on 127.0.0.1:(base port + i) with its own directory; like a
//! StatefulSet, a node that dies is started again (as a replica, never as a master). The
//! status goes to the terminal (a live table, or plain lines when stdout is not a terminal)
//! and to the status file. SIGUSR1 asks for a planned switchover to the most advanced
//! replica ([`crate::dataplane::switchover`]); so does a master that got SIGTERM and waits
//! for its role to move away ([`crate::dataplane::departure`]). As pods do, nodes answer to secret names for
//! CONFIG, REPLICAOF and SHUTDOWN (and not at all to DEBUG and SLAVEOF) unless the settings
//! keep the plain names; the names are generated once per run and kept in
//! `<dir>/renamed-commands` (owner-only), the local counterpart of the auth-conf Secret.
//!
//! Touches processes, files and the terminal; the decisions are [`crate::dataplane`]'s.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use prometheus_client::registry::Registry;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::crd::{Appendfsync, PersistenceMode, RedisReplicaSetStatus};
use crate::dataplane::departure;
use crate::dataplane::engine::{DataPlane, Nodes};
use crate::dataplane::roles::NodeAddr;
use crate::dataplane::status;
use crate::dataplane::switchover::CATCH_UP_TIMEOUT;
use crate::local_view::{View, summary, table};
use crate::metrics::{Health, serve};
use crate::persistence::{self, PersistencePlan};
use crate::policy::{self, Overrides, PolicyInput};
use crate::renames::{CommandNames, RENAMED_COMMANDS_KEY};
use crate::resources::config::DEFAULT_SAVE;
use crate::set_metrics::SetMetrics;
use crate::status::Notice;

/// How often a pass runs: a killed master is noticed within one interval.
pub const PASS_INTERVAL: Duration = Duration::from_millis(200);

/// A node that exits sooner than this after its start waits this long before the next start,
/// so a node that cannot start (port taken, bad binary) does not spin.
pub const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// What to run as a node.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the server's own (`server` when the operator runs itself).
    pub prefix: Vec<String>,
}

impl ServerCommand {
    /// `--server-bin` when given, else this executable's embedded server
    /// (`tandem-operator server ...`), so a fresh clone needs nothing built first.
    ///
    /// # Errors
    /// The path of the running executable cannot be found.
    pub fn resolve(server_bin: Option<PathBuf>) -> std::io::Result<Self> {
        Ok(match server_bin {
            Some(program) => Self {
                program,
                prefix: Vec::new(),
            },
            None => Self {
                program: std::env::current_exe()?,
                prefix: vec!["server".to_owned()],
            },
        })
    }
}

/// `tandem-operator local` settings.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// Nodes in total.
    pub replicas: u32,
    /// Expected dataset size in bytes: drives the tuning, as spec.datasetSizeHint.
    pub dataset_size_hint: u64,
    /// Node i listens on base_port + i.
    pub base_port: u16,
    /// What runs a node.
    pub server: ServerCommand,
    /// Node directories go under it (`node-0`, ...).
    pub dir: PathBuf,
    /// Rewritten with the status (JSON) on every change.
    pub status_file: Option<PathBuf>,
    /// Master unreachable this long before a failover.
    pub down_after: Duration,
    /// Password of every node, when set.
    pub password: Option<String>,
    /// spec.replication-like overrides.
    pub overrides: Overrides,
    /// The names renamed commands answer to ([`CommandNames::plain`] keeps them all).
    pub commands: CommandNames,
    /// Where to serve `/metrics` (the per-set series of [`SetMetrics`]), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// What the nodes keep in their directories (`--persistence`, as spec.persistence
    /// with a volume); `None` keeps nothing.
    pub persistence: Option<PersistenceMode>,
    /// `--appendfsync`, as spec.persistence.appendfsync.
    pub appendfsync: Option<Appendfsync>,
}

/// The namespace and name local mode's series carry, and the master name its Sentinel
/// endpoints answer for.
pub const LOCAL_SET: &str = "local";

/// A node's Sentinel-compatible endpoint listens this far above its port, as a Redis
/// Cluster node's bus does.
pub const SENTINEL_PORT_OFFSET: u16 = 10_000;

/// The Sentinel endpoint of the node listening on `port`.
pub fn sentinel_port(port: u16) -> u16 {
    port.saturating_add(SENTINEL_PORT_OFFSET)
}

/// What local mode prints before it starts: where the nodes listen, where their data,
/// logs and the renamed commands' names are. Kept on top of the live table.
pub fn banner(settings: &LocalSettings) -> String {
    format!(
        "tandem-operator local: {} nodes on 127.0.0.1:{}.., Sentinel endpoints (master name {LOCAL_SET}) on 127.0.0.1:{}.., data and logs (server.log, stderr.log) in {}{}",
        settings.replicas,
        settings.base_port,
        sentinel_port(settings.base_port),
        settings.dir.display(),
        if settings.commands.is_plain() {
            String::new()
        } else {
            format!(
                ", secret names of CONFIG, REPLICAOF and SHUTDOWN in {}",
                settings.dir.join(RENAMED_COMMANDS_KEY).display()
            )
        }
    )
}

/// The file in a node's directory that keeps what the process writes to stderr (a panic,
/// an error before its log file is open).
pub const STDERR_FILE: &str = "stderr.log";

/// Local processes behind the data plane's [`Nodes`] seam.
pub struct LocalNodes {
    settings: LocalSettings,
    children: Vec<Option<Child>>,
    started_at: Vec<Option<Instant>>,
    plan: policy::Plan,
    exits: Vec<Notice>,
}

/// A node could not be started.
#[derive(Debug, thiserror::Error)]
#[error("failed to start {node} ({program}): {source}")]
pub struct StartError {
    node: String,
    program: String,
    #[source]
    source: std::io::Error,
}

impl LocalNodes {
    /// Nodes for `settings`, none started yet; each starts with `plan`'s tuning in its
    /// config file (CONFIG SET keeps it current afterwards).
    pub fn new(settings: LocalSettings, plan: policy::Plan) -> Self {
        let n = usize::try_from(settings.replicas).unwrap_or(0);
        Self {
            settings,
            children: (0..n).map(|_| None).collect(),
            started_at: vec![None; n],
            plan,
            exits: Vec::new(),
        }
    }

    /// Where the nodes listen.
    pub fn addresses(&self) -> Vec<(String, NodeAddr)> {
        (0..self.children.len())
            .map(|i| (Self::name(i), self.addr(i)))
            .collect()
    }

    /// The nodes that exited since the last call, each with the last line it wrote to
    /// stderr (or its log), as Warning events.
    pub fn take_exits(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.exits)
    }

    fn name(i: usize) -> String {
        format!("node-{i}")
    }

    fn addr(&self, i: usize) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: self
                .settings
                .base_port
                .saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
        }
    }

    /// Refuses a set whose ports are not all free before any node starts (each is bound once
    /// and released), so a busy base port is an error at start, not a set reporting Ready
    /// against somebody else's servers while its own nodes fail to start.
    pub fn check_ports(&self) -> Result<(), LocalError> {
        let nodes = self.settings.replicas;
        if u32::from(self.settings.base_port) + u32::from(SENTINEL_PORT_OFFSET) + nodes > 65536 {
            return Err(LocalError::PortRange {
                base: self.settings.base_port,
                nodes,
            });
        }
        for i in 0..self.children.len() {
            let addr = self.addr(i);
            for port in [addr.port, sentinel_port(addr.port)] {
                std::net::TcpListener::bind((addr.host.as_str(), port)).map_err(|source| {
                    LocalError::PortInUse {
                        node: Self::name(i),
                        host: addr.host.clone(),
                        port,
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// The tuning nodes started from now on get in their config file.
    pub fn set_plan(&mut self, plan: policy::Plan) {
        self.plan = plan;
    }

    /// The node's process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i)?.as_ref()?.id()
    }

    fn start(&mut self, i: usize, master: Option<&NodeAddr>) -> Result<(), StartError> {
        let name = Self::name(i);
        let addr = self.addr(i);
        let dir = self.settings.dir.join(&name);
        let err = |source| StartError {
            node: name.clone(),
            program: self.settings.server.program.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        let conf = dir.join("tandem.conf");
        std::fs::write(
            &conf,
            node_config(
                &addr,
                &dir,
                &self.plan,
                &persistence::plan(
                    self.settings.persistence.is_some(),
                    self.settings.persistence,
                    self.settings.appendfsync,
                ),
                self.settings.password.as_deref(),
                &self.settings.commands,
            ),
        )
        .map_err(err)?;
        // Every node starts as a replica: of the master when one is known, else of itself,
        // which no one can sync from (`-NOMASTERLINK`): a node that restarts empty never
        // serves as a master its old replicas would copy.
        let follow = master.filter(|m| **m != addr).unwrap_or(&addr);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(STDERR_FILE))
            .map_err(err)?;
        let child = Command::new(&self.settings.server.program)
            .args(&self.settings.server.prefix)
            .arg(&conf)
            .arg("--replicaof")
            .arg(&follow.host)
            .arg(follow.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        info!(node = %name, %addr, follows = %follow, pid = child.id(), "started");
        self.children[i] = Some(child);
        self.started_at[i] = Some(Instant::now());
        Ok(())
    }

    /// Stops every node (SIGKILL: nothing is saved locally, so nothing is lost that a
    /// graceful stop would keep).
    pub async fn stop(&mut self) {
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(mut child) = slot.take() {
                let _ = child.kill().await;
                info!(node = %Self::name(i), "stopped");
            }
        }
    }
}

impl Nodes for LocalNodes {
    type Error = StartError;

    async fn list(&mut self) -> Result<Vec<(String, NodeAddr)>, StartError> {
        Ok((0..self.children.len())
            .map(|i| (Self::name(i), self.addr(i)))
            .collect())
    }

    async fn ensure_running(
        &mut self,
        master: Option<&NodeAddr>,
    ) -> Result<Vec<String>, StartError> {
        let mut started = Vec::new();
        for i in 0..self.children.len() {
            if let Some(child) = &mut self.children[i]
                && let Ok(Some(code)) = child.try_wait()
            {
                let dir = self.settings.dir.join(Self::name(i));
                let said = [STDERR_FILE, "server.log"].iter().find_map(|f| {
                    last_line(&std::fs::read_to_string(dir.join(f)).unwrap_or_default())
                        .map(str::to_owned)
                });
                warn!(node = %Self::name(i), %code, last = said.as_deref().unwrap_or(""), "exited");
                self.exits.push(Notice {
                    type_: EventType::Warning,
                    reason: "NodeExited",
                    note: format!(
                        "{} exited ({code}){}",
                        Self::name(i),
                        said.map(|l| format!(": {l}")).unwrap_or_default()
                    ),
                    action: "Restart",
                });
                self.children[i] = None;
            }
            let backing_off = self.started_at[i].is_some_and(|t| t.elapsed() < RESTART_BACKOFF);
            if self.children[i].is_none() && !backing_off {
                self.start(i, master)?;
                started.push(Self::name(i));
            }
        }
        Ok(started)
    }

    async fn publish_master(&mut self, master: &str) -> Result<(), StartError> {
        info!(master, "role moved");
        Ok(())
    }
}

/// The last line with something on it: what a process said before it stopped.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim_end)
        .rfind(|l| !l.trim().is_empty())
}

/// A node's config file, like the ConfigMap and auth-conf Secret of a pod: listening
/// address, its directory, what it keeps there (`kept`), read-only as a replica, the plan's
/// tuning, the password and the command renames.
pub fn node_config(
    addr: &NodeAddr,
    dir: &Path,
    plan: &policy::Plan,
    kept: &PersistencePlan,
    password: Option<&str>,
    commands: &CommandNames,
) -> String {
    let mut conf = String::new();
    let mut line = |k: &str, v: &str| {
        let v = if v.is_empty() { "\"\"" } else { v };
        let _ = writeln!(conf, "{k} {v}");
    };
    line("port", &addr.port.to_string());
    line("bind", &addr.host);
    line("dir", &dir.display().to_string());
    line("logfile", &dir.join("server.log").display().to_string());
    line("save", if kept.snapshots() { DEFAULT_SAVE } else { "" });
    for (k, v) in kept.directives() {
        line(k, &v);
    }
    line("replica-read-only", "yes");
    line("sentinel-port", &sentinel_port(addr.port).to_string());
    line("sentinel-master-name", LOCAL_SET);
    for (k, v) in plan.directives() {
        line(k, &v);
    }
    if let Some(pw) = password {
        line("requirepass", &quote(pw));
        line("masterauth", &quote(pw));
    }
    conf.push_str(&commands.directives());
    conf
}

/// Keeps the secret names where the user (and only the user) can read them.
fn write_commands(dir: &Path, commands: &CommandNames) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(RENAMED_COMMANDS_KEY);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?
        .write_all(commands.to_text().as_bytes())?;
    Ok(path)
}

/// A redis.conf double-quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs local mode until `shutdown` resolves, then stops the nodes.
///
/// # Errors
/// A node cannot be started, or the status file cannot be written.
pub async fn run(
    settings: LocalSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalError> {
    let input = PolicyInput {
        dataset_size_hint: settings.dataset_size_hint,
        replicas: settings.replicas,
        // Without --persistence local nodes keep nothing: diskless needs no dump on the way.
        persistence: settings.persistence.is_some(),
        overrides: settings.overrides,
        ..PolicyInput::default()
    };
    let mut plan = policy::plan(&input);
    let desired = i32::try_from(settings.replicas).unwrap_or(i32::MAX);
    let status_file = settings.status_file.clone();
    let mut dataplane = DataPlane::new(settings.password.clone(), settings.down_after);
    if !settings.commands.is_plain() {
        let path = write_commands(&settings.dir, &settings.commands).map_err(|source| {
            LocalError::CommandsFile {
                path: settings.dir.join(RENAMED_COMMANDS_KEY),
                source,
            }
        })?;
        info!(path = %path.display(), "renamed commands' names written");
    }
    dataplane.use_commands(vec![settings.commands.clone()]);
    let mut view = View {
        banner: banner(&settings),
        password: settings.password.is_some(),
        ..View::default()
    };
    let set_metrics = match settings.metrics_addr {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    let kept = persistence::plan(
        settings.persistence.is_some(),
        settings.persistence,
        settings.appendfsync,
    )
    .status();
    let mut nodes = LocalNodes::new(settings, plan.clone());
    nodes.check_ports()?;
    view.addresses = nodes.addresses();
    let tty = std::io::stdout().is_terminal();
    let mut previous: Option<RedisReplicaSetStatus> = None;
    let mut ticker = tokio::time::interval(PASS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut switchover_requests =
        signal(SignalKind::user_defined1()).map_err(LocalError::Signal)?;
    tokio::pin!(shutdown);
    let result = loop {
        let mut switch = false;
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = ticker.tick() => {}
            _ = switchover_requests.recv() => switch = true,
        }
        let now = Timestamp::now();
        if switch {
            match dataplane
                .switch_over(
                    &mut nodes,
                    |_| true,
                    "asked with SIGUSR1",
                    CATCH_UP_TIMEOUT,
                    now,
                )
                .await
            {
                Ok(s) => announce(&s.notice, tty, &mut view),
                Err(e) => break Err(LocalError::Start(e)),
            }
        }
        let observed = policy::plan(&PolicyInput {
            observed: dataplane.observed(),
            ..input.clone()
        });
        if observed != plan {
            plan = observed;
            nodes.set_plan(plan.clone());
        }
        let pass = match dataplane.pass(&mut nodes, &plan, now).await {
            Ok(p) => p,
            Err(e) => break Err(LocalError::Start(e)),
        };
        let events = pass.notices.len() + nodes.exits.len();
        for n in nodes.take_exits().iter().chain(&pass.notices) {
            announce(n, tty, &mut view);
        }
        if let Some(leaving) = departure::of_master(&pass, &[]) {
            let s = match dataplane
                .switch_over(
                    &mut nodes,
                    |n| leaving.eligible(n),
                    &leaving.reason,
                    CATCH_UP_TIMEOUT,
                    now,
                )
                .await
            {
                Ok(s) => s,
                Err(e) => break Err(LocalError::Start(e)),
            };
            announce(&s.notice, tty, &mut view);
            if s.result.is_ok() {
                // The pass is out of date: the next one reports the new master.
                continue;
            }
        }
        let mut new = status::build(
            previous.as_ref(),
            None,
            desired,
            None,
            &pass,
            &dataplane,
            now,
        );
        new.persistence = Some(kept.clone());
        if previous.as_ref() == Some(&new) && events == 0 {
            continue;
        }
        if let Some((metrics, _)) = &set_metrics {
            metrics.observe(LOCAL_SET, LOCAL_SET, previous.as_ref(), &new);
        }
        if let Some(path) = &status_file
            && let Err(source) = write_status(path, &new)
        {
            break Err(LocalError::StatusFile {
                path: path.clone(),
                source,
            });
        }
        if tty {
            // Home and clear, then the table: a live view without a TUI library.
            print!("\x1b[H\x1b[2J{}", table(&new, &view));
        } else if previous.as_ref().map(summary) != Some(summary(&new)) {
            println!("{}", summary(&new));
        }
        previous = Some(new);
    };
    nodes.stop().await;
    if let Some((_, server)) = set_metrics {
        server.abort();
    }
    result
}

/// Serves `/metrics` (and `/healthz`, `/readyz`) for local mode's set on `addr`.
async fn serve_metrics(
    addr: SocketAddr,
) -> Result<(Arc<SetMetrics>, tokio::task::JoinHandle<()>), LocalError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LocalError::Metrics { addr, source })?;
    let mut registry = Registry::default();
    let metrics = Arc::new(SetMetrics::new(&mut registry));
    let health = Arc::new(Health::new(registry));
    health.set_ready(true);
    let server = tokio::spawn(serve(listener, health, std::future::pending()));
    Ok((metrics, server))
}

/// Logs an event, keeps it on the live table, and prints it when stdout is not the table.
fn announce(n: &Notice, tty: bool, view: &mut View) {
    let line = format!("{:?} {}: {}", n.type_, n.reason, n.note);
    info!("event {line}");
    if !tty {
        println!("event {line}");
    }
    view.event(format!("{} {line}", Timestamp::now().strftime("%H:%M:%S")));
}

/// Why local mode stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The renamed commands' names could not be written.
    #[error("failed to write the renamed commands' names to {path}: {source}")]
    CommandsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The SIGUSR1 handler (switchover requests) could not be installed.
    #[error("failed to listen for SIGUSR1: {0}")]
    Signal(#[source] std::io::Error),
    /// A node's port is taken before the set starts (another local set, a Redis): the node
    /// would fail to bind, and the data plane would report the other instance's servers.
    #[error(
        "port {port} of {node} is already in use on {host} ({source}): stop what listens there or choose another --base-port"
    )]
    PortInUse {
        /// The node that would listen there.
        node: String,
        /// Its address.
        host: String,
        /// Its port.
        port: u16,
        /// Why the port could not be bound.
        #[source]
        source: std::io::Error,
    },
    /// `--base-port` plus the number of nodes passes the last port.
    #[error(
        "--base-port {base} leaves no room for {nodes} nodes and their Sentinel endpoints 10000 above (ports end at 65535)"
    )]
    PortRange {
        /// The base port.
        base: u16,
        /// Nodes in the set.
        nodes: u32,
    },
    /// The metrics address cannot be listened on.
    #[error("failed to listen for /metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The status file could not be written.
    #[error("failed to write the status file {path}: {source}")]
    StatusFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the status as JSON through a temporary file and a rename, so a reader never sees
/// half a file.
fn write_status(path: &Path, status: &RedisReplicaSetStatus) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_skips_trailing_blank_lines() {
        assert_eq!(last_line("a\nb  \n\n  \n"), Some("b"));
        assert_eq!(last_line(" \n"), None);
        assert_eq!(last_line(""), None);
    }

    #[tokio::test]
    async fn a_node_that_exits_leaves_its_stderr_and_an_event_naming_its_last_line() {
        let dir = std::env::temp_dir().join(format!("tandem-local-exit-{}", std::process::id()));
        let settings = LocalSettings {
            replicas: 1,
            dataset_size_hint: 1 << 20,
            base_port: 1,
            // A stand-in server that fails the way a real one can before its log is open.
            server: ServerCommand {
                program: PathBuf::from("/bin/sh"),
                prefix: vec![
                    "-c".to_owned(),
                    "echo starting >&2; echo 'fatal: cannot read dump.rdb' >&2; exit 3".to_owned(),
                    "sh".to_owned(),
                ],
            },
            dir: dir.clone(),
            status_file: None,
            down_after: Duration::from_secs(5),
            password: None,
            overrides: Overrides::default(),
            commands: CommandNames::plain(),
            metrics_addr: None,
            persistence: None,
            appendfsync: None,
        };
        let plan = policy::plan(&PolicyInput {
            dataset_size_hint: 1 << 20,
            replicas: 1,
            ..PolicyInput::default()
        });
        let mut nodes = LocalNodes::new(settings, plan);
        let deadline = Instant::now() + Duration::from_secs(10);
        let exits = loop {
            nodes.ensure_running(None).await.expect("started");
            let exits = nodes.take_exits();
            if !exits.is_empty() {
                break exits;
            }
            assert!(Instant::now() < deadline, "the node never exited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(exits[0].reason, "NodeExited");
        assert_eq!(exits[0].type_, EventType::Warning);
        assert_eq!(
            exits[0].note,
            "node-0 exited (exit status: 3): fatal: cannot read dump.rdb"
        );
        let kept =
            std::fs::read_to_string(dir.join("node-0").join(STDERR_FILE)).expect("stderr.log");
        assert!(
            kept.starts_with("starting\nfatal: cannot read dump.rdb\n"),
            "{kept}"
        );
        nodes.stop().await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn node_config_is_read_by_the_server_itself() {
        let plan = policy::plan(&PolicyInput {
            dataset_size_hint: 1 << 30,
            replicas: 3,
            ..PolicyInput::default()
        });
        let addr = NodeAddr {
            host: "127.0.0.1".to_owned(),
            port: 23001,
        };
        let names = CommandNames::generate();
        let kept = persistence::plan(true, None, None);
        let conf = node_config(&addr, Path::new("d"), &plan, &kept, Some("p\"w"), &names);
        let mut c = tandem_server::config::Config::default();
        c.apply_text(&conf).expect("tandem-server accepts the file");
        use tandem_server::cmd::names::{lookup, resolve};
        let renamed = resolve(&c.rename_commands).expect("tandem-server accepts the renames");
        assert!(lookup(&renamed, b"config").is_none(), "CONFIG renamed");
        assert!(lookup(&renamed, b"debug").is_none(), "DEBUG removed");
        assert_eq!(
            lookup(&renamed, names.config().as_bytes()).map(|s| s.name),
            Some("config")
        );
        assert_eq!(c.port, 23001);
        assert_eq!(c.sentinel_port, 33001);
        assert_eq!(c.sentinel_master_name, LOCAL_SET);
        assert!(c.replica_read_only);
        assert_eq!(c.requirepass.as_deref(), Some("p\"w"));
        assert_eq!(c.repl_timeout, plan.repl_timeout_seconds);
        assert!(c.appendonly, "--persistence both writes the AOF");
        assert_eq!(c.appendfsync, "everysec");
        assert!(!c.save.is_empty(), "and takes snapshots");
    }
}
