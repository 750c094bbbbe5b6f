//! `tandem-operator local`: the data plane driving local tandem-server processes instead of
//! pods. Node i listens on 127.0.0.1:(base port + i) with its own directory; like a
//! StatefulSet, a node that dies is started again (as a replica, never as a master). The
//! status goes to the terminal (a live table, or plain lines when stdout is not a terminal)
//! and to the status file. SIGUSR1 asks for a planned switchover to the most advanced
//! replica ([`crate::dataplane::switchover`]). As pods do, nodes answer to secret names for
//! CONFIG, REPLICAOF and SHUTDOWN (and not at all to DEBUG and SLAVEOF) unless the settings
//! keep the plain names; the names are generated once per run and kept in
//! `<dir>/renamed-commands` (owner-only), the local counterpart of the auth-conf Secret.
//!
//! Touches processes, files and the terminal; the decisions are [`crate::dataplane`]'s.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::crd::RedisReplicaSetStatus;
use crate::dataplane::engine::{DataPlane, Nodes};
use crate::dataplane::roles::NodeAddr;
use crate::dataplane::status;
use crate::dataplane::switchover::CATCH_UP_TIMEOUT;
use crate::policy::{self, Overrides, PolicyInput};
use crate::renames::{CommandNames, RENAMED_COMMANDS_KEY};
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
}

/// Local processes behind the data plane's [`Nodes`] seam.
pub struct LocalNodes {
    settings: LocalSettings,
    children: Vec<Option<Child>>,
    started_at: Vec<Option<Instant>>,
    plan: policy::Plan,
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
        }
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
        if u32::from(self.settings.base_port) + nodes > 65536 {
            return Err(LocalError::PortRange {
                base: self.settings.base_port,
                nodes,
            });
        }
        for i in 0..self.children.len() {
            let addr = self.addr(i);
            std::net::TcpListener::bind((addr.host.as_str(), addr.port)).map_err(|source| {
                LocalError::PortInUse {
                    node: Self::name(i),
                    host: addr.host.clone(),
                    port: addr.port,
                    source,
                }
            })?;
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
                self.settings.password.as_deref(),
                &self.settings.commands,
            ),
        )
        .map_err(err)?;
        // Every node starts as a replica: of the master when one is known, else of itself,
        // which no one can sync from (`-NOMASTERLINK`): a node that restarts empty never
        // serves as a master its old replicas would copy.
        let follow = master.filter(|m| **m != addr).unwrap_or(&addr);
        let child = Command::new(&self.settings.server.program)
            .args(&self.settings.server.prefix)
            .arg(&conf)
            .arg("--replicaof")
            .arg(&follow.host)
            .arg(follow.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
                warn!(node = %Self::name(i), %code, "exited");
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

/// A node's config file, like the ConfigMap and auth-conf Secret of a pod: listening
/// address, its directory, no snapshots, read-only as a replica, the plan's tuning, the
/// password and the command renames.
pub fn node_config(
    addr: &NodeAddr,
    dir: &Path,
    plan: &policy::Plan,
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
    line("save", "");
    line("appendonly", "no");
    line("replica-read-only", "yes");
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
        // Local nodes keep no snapshots: diskless needs no dump on the way.
        persistence: false,
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
    let mut nodes = LocalNodes::new(settings, plan.clone());
    nodes.check_ports()?;
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
                Ok(s) => announce(&s.notice, tty),
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
        for n in &pass.notices {
            announce(n, tty);
        }
        let new = status::build(
            previous.as_ref(),
            None,
            desired,
            None,
            &pass,
            &dataplane,
            now,
        );
        if previous.as_ref() == Some(&new) {
            continue;
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
            print!("\x1b[H\x1b[2J{}", table(&new));
        } else if previous.as_ref().map(summary) != Some(summary(&new)) {
            println!("{}", summary(&new));
        }
        previous = Some(new);
    };
    nodes.stop().await;
    result
}

/// Logs an event, and prints it when stdout is not the live table.
fn announce(n: &Notice, tty: bool) {
    let line = format!("event {:?} {}: {}", n.type_, n.reason, n.note);
    info!("{line}");
    if !tty {
        println!("{line}");
    }
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
    #[error("--base-port {base} leaves no room for {nodes} nodes (ports end at 65535)")]
    PortRange {
        /// The base port.
        base: u16,
        /// Nodes in the set.
        nodes: u32,
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

/// One line per change when stdout is not a terminal: phase, master, each replica's state.
pub fn summary(s: &RedisReplicaSetStatus) -> String {
    let mut out = format!(
        "phase {:?} master {} ready {}",
        s.phase,
        s.master.as_deref().unwrap_or("-"),
        s.ready.as_deref().unwrap_or("-")
    );
    for r in &s.nodes {
        let _ = write!(
            out,
            " | {} {} {}",
            r.pod,
            r.state.as_deref().unwrap_or("-"),
            r.sync_progress.as_deref().unwrap_or("")
        );
    }
    out.trim_end().to_owned()
}

const BAR_WIDTH: usize = 20;

/// The live table: the set, then one row per node, a progress bar for a running full sync.
pub fn table(s: &RedisReplicaSetStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tandem local  phase {:?}  master {}  ready {}  offset {}",
        s.phase,
        s.master.as_deref().unwrap_or("-"),
        s.ready.as_deref().unwrap_or("-"),
        s.master_offset.map_or("-".to_owned(), |o| o.to_string())
    );
    if let Some(r) = &s.replication {
        let _ = writeln!(
            out,
            "tuning  {:?}  repl-timeout {}s  client-output-buffer-limit {}  backlog {}",
            r.mode, r.repl_timeout_seconds, r.client_output_buffer_limit, r.backlog_size
        );
    }
    let _ = writeln!(
        out,
        "syncs   full {}  partial ok {}  partial refused {}",
        s.full_syncs.unwrap_or(0),
        s.partial_syncs_accepted.unwrap_or(0),
        s.partial_syncs_rejected.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "\n{:<8} {:<8} {:<12} {:<5} {:>12} {:>4}  SYNC",
        "NODE", "ROLE", "STATE", "LINK", "OFFSET", "LAG"
    );
    if let Some(m) = &s.master {
        let _ = writeln!(
            out,
            "{m:<8} {:<8} {:<12} {:<5} {:>12} {:>4}",
            "master",
            "-",
            "-",
            s.master_offset.map_or("-".to_owned(), |o| o.to_string()),
            "-"
        );
    }
    for r in &s.nodes {
        let sync = match (&r.sync_progress, &r.last_full_sync) {
            (Some(p), _) => bar(p),
            (None, Some(l)) => format!("last full sync {:?} {}s", l.mode, l.duration_seconds),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<12} {:<5} {:>12} {:>4}  {sync}",
            r.pod,
            "replica",
            r.state.as_deref().unwrap_or("-"),
            r.link_status.as_deref().unwrap_or("-"),
            r.offset.map_or("-".to_owned(), |o| o.to_string()),
            r.lag.map_or("-".to_owned(), |o| o.to_string()),
        );
    }
    for c in &s.conditions {
        if c.status == "True" || c.type_ == crate::status::AVAILABLE {
            let _ = writeln!(
                out,
                "\n{} {} {}: {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    if let Some(w) = &s.last_switchover {
        let _ = writeln!(
            out,
            "last switchover {} -> {} ({}) at offset {}, writes held {} ms",
            w.from, w.to, w.reason, w.offset, w.write_pause_ms
        );
    }
    if let Some(f) = &s.last_failover {
        let _ = writeln!(
            out,
            "last failover {} -> {} ({}), up to {} bytes may be lost",
            f.from, f.to, f.reason, f.bytes_at_risk
        );
    }
    out
}

/// `[#######.............] 35%` for a percentage, the text alone otherwise.
fn bar(progress: &str) -> String {
    match progress
        .strip_suffix('%')
        .and_then(|p| p.parse::<usize>().ok())
    {
        Some(p) => {
            let filled = p.min(100) * BAR_WIDTH / 100;
            format!(
                "[{}{}] {progress}",
                "#".repeat(filled),
                ".".repeat(BAR_WIDTH - filled)
            )
        }
        None => progress.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ReplicaStatus;

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
        let conf = node_config(&addr, Path::new("d"), &plan, Some("p\"w"), &names);
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
        assert!(c.replica_read_only);
        assert_eq!(c.requirepass.as_deref(), Some("p\"w"));
        assert_eq!(c.repl_timeout, plan.repl_timeout_seconds);
    }

    #[test]
    fn the_table_shows_a_bar_during_a_sync() {
        let s = RedisReplicaSetStatus {
            master: Some("node-0".to_owned()),
            nodes: vec![ReplicaStatus {
                pod: "node-1".to_owned(),
                ready: false,
                state: Some("send_bulk".to_owned()),
                link_status: Some("down".to_owned()),
                offset: Some(0),
                lag: Some(0),
                sync_progress: Some("35%".to_owned()),
                last_full_sync: None,
            }],
            ..RedisReplicaSetStatus::default()
        };
        let t = table(&s);
        assert!(t.contains("node-1   replica  send_bulk"), "{t}");
        assert!(t.contains("[#######.............] 35%"), "{t}");
        assert_eq!(
            summary(&s),
            "phase Pending master node-0 ready - | node-1 send_bulk 35%"
        );
        assert_eq!(bar("1.0Mi received"), "1.0Mi received");
    }
}
