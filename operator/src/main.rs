//! `tandem-operator run`: the in-cluster controller for RedisReplicaSets, configured by
//! flags or environment variables. Talks to the Kubernetes API (kubeconfig or in-cluster
//! config) and serves metrics on its own port.
//!
//! `tandem-operator local`: the same data plane over local tandem-server processes
//! ([`tandem_operator::local`]). `tandem-operator server ARGS` (hidden) is tandem-server
//! itself, so local mode can run nodes from this one binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::Client;
use kube::runtime::events::Reporter;
use tandem_operator::controller::{Settings, Shutdown, run};
use tandem_operator::crd::DEFAULT_IMAGE;
use tandem_operator::crd::{Appendfsync, PersistenceMode, SyncMode};
use tandem_operator::leader::LeaseConfig;
use tandem_operator::local::{LocalSettings, ServerCommand};
use tandem_operator::policy::{BufferLimit, Overrides};
use tandem_operator::quantity::parse_bytes;
use tandem_operator::renames::CommandNames;
use tikv_jemallocator::Jemalloc;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

// The embedded tandem-server (`tandem-operator server`) allocates like the standalone one.
#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "tandem-operator",
    version,
    about = "Kubernetes operator for RedisReplicaSet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller against the cluster (kubeconfig, or in-cluster config in a pod).
    Run(RunArgs),
    /// Run a replicated set of local tandem-server processes with the operator's tuning,
    /// roles, failover and live status: no Kubernetes needed. SIGUSR1 asks for a planned
    /// switchover to the most advanced replica.
    Local(LocalArgs),
}

#[derive(Args, Debug)]
struct LocalArgs {
    /// Nodes in total: one master plus replicas.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=32))]
    replicas: u32,

    /// Expected dataset size (e.g. 1Gi): drives the tuning, as spec.datasetSizeHint.
    #[arg(long, value_parser = parse_size)]
    dataset_size_hint: u64,

    /// Node i listens on 127.0.0.1:(base-port + i), its Sentinel-compatible endpoint 10000 above.
    #[arg(long, default_value_t = 7000)]
    base_port: u16,

    /// tandem-server executable for the nodes (default: this binary's embedded server).
    #[arg(long)]
    server_bin: Option<PathBuf>,

    /// Directory for the nodes' data and logs (default: a new directory under the system's
    /// temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Rewritten with the status (JSON, the shape of the resource's status) on every change.
    #[arg(long)]
    status_file: Option<PathBuf>,

    /// Seconds the master must be unreachable before a failover (as failover.downAfterSeconds).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    down_after_seconds: u64,

    /// Password of every node (as the auth Secret).
    #[arg(long, env = "TANDEM_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Full-sync mode (as spec.replication.mode).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,

    /// Replica output buffer limit `HARD SOFT SOFT_SECONDS` in bytes (as
    /// spec.replication.clientOutputBufferLimit).
    #[arg(long, value_parser = parse_buffer_limit)]
    client_output_buffer_limit: Option<BufferLimit>,

    /// Serve the set's metrics (Prometheus text format) on this address, at /metrics.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,

    /// Keep CONFIG, REPLICAOF, SHUTDOWN, DEBUG and SLAVEOF under their own names (as
    /// spec.security.renameCommands: false). By default the first three answer to secret
    /// names kept in <dir>/renamed-commands and the last two are removed.
    #[arg(long)]
    no_rename_commands: bool,

    /// What each node keeps in its directory (as spec.persistence.mode with a volume):
    /// RDB snapshots, the append-only file, or both. Without it nodes keep nothing.
    #[arg(long, value_enum)]
    persistence: Option<PersistenceArg>,

    /// When the append-only file is fsynced (as spec.persistence.appendfsync).
    #[arg(long, value_enum)]
    appendfsync: Option<AppendfsyncArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PersistenceArg {
    Rdb,
    Aof,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AppendfsyncArg {
    Always,
    Everysec,
    No,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Auto,
    Disk,
    Diskless,
}

fn parse_size(text: &str) -> Result<u64, String> {
    parse_bytes(text).map_err(|e| e.to_string())
}

fn parse_buffer_limit(text: &str) -> Result<BufferLimit, String> {
    let parts: Vec<u64> = text
        .split_whitespace()
        .map(|p| parse_bytes(p).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [hard, soft, soft_seconds] => Ok(BufferLimit {
            hard_bytes: *hard,
            soft_bytes: *soft,
            soft_seconds: *soft_seconds,
        }),
        _ => Err(format!("expected HARD SOFT SOFT_SECONDS, got {text:?}")),
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "TANDEM_NAMESPACE")]
    namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "TANDEM_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,

    /// Elect a leader on a Lease so that only one operator replica acts at a time.
    #[arg(long, env = "TANDEM_LEADER_ELECTION", value_enum, default_value_t = Toggle::On)]
    leader_election: Toggle,

    /// Name of the leader election Lease.
    #[arg(long, env = "TANDEM_LEASE_NAME", default_value = "tandem-operator")]
    lease_name: String,

    /// Namespace of the Lease (default: the client's namespace, the pod's own in-cluster).
    #[arg(long, env = "TANDEM_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,

    /// Identity of this replica in the Lease and in events (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Server image of RedisReplicaSets that do not set `spec.image` (default: the
    /// tandem-server image of this operator's own version).
    #[arg(long, env = "TANDEM_SERVER_IMAGE", default_value = DEFAULT_IMAGE)]
    server_image: String,

    /// Log line format.
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Toggle {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    // Before clap: the server's arguments are redis-server style (`--port 7000`), not ours.
    if argv.get(1).map(String::as_str) == Some("server") {
        return tandem_server::cli::run(&argv[2..]);
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("failed to start the runtime")?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run_controller(args)),
        Command::Local(args) => runtime.block_on(run_local(args)),
    }
}

async fn run_local(args: LocalArgs) -> anyhow::Result<()> {
    // Logs go to stderr at warn by default: stdout is the live status.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("tandem-local-{}", std::process::id())),
    };
    let settings = LocalSettings {
        replicas: args.replicas,
        dataset_size_hint: args.dataset_size_hint,
        base_port: args.base_port,
        server: ServerCommand::resolve(args.server_bin)
            .context("cannot find this executable to run nodes from")?,
        dir,
        status_file: args.status_file,
        down_after: Duration::from_secs(args.down_after_seconds),
        password: args.password,
        overrides: Overrides {
            mode: match args.mode {
                ModeArg::Auto => None,
                ModeArg::Disk => Some(SyncMode::Disk),
                ModeArg::Diskless => Some(SyncMode::Diskless),
            },
            client_output_buffer_limit: args.client_output_buffer_limit,
            ..Overrides::default()
        },
        metrics_addr: args.metrics_addr,
        commands: if args.no_rename_commands {
            CommandNames::plain()
        } else {
            CommandNames::generate()
        },
        persistence: args.persistence.map(|p| match p {
            PersistenceArg::Rdb => PersistenceMode::Rdb,
            PersistenceArg::Aof => PersistenceMode::Aof,
            PersistenceArg::Both => PersistenceMode::Both,
        }),
        appendfsync: args.appendfsync.map(|f| match f {
            AppendfsyncArg::Always => Appendfsync::Always,
            AppendfsyncArg::Everysec => Appendfsync::Everysec,
            AppendfsyncArg::No => Appendfsync::No,
        }),
    };
    eprintln!("{}", tandem_operator::local::banner(&settings));
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tandem_operator::local::run(settings, stop).await?;
    eprintln!("tandem-operator local: nodes stopped");
    Ok(())
}

async fn run_controller(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);

    let client = Client::try_default()
        .await
        .context("failed to configure the Kubernetes client (kubeconfig or in-cluster)")?;
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("tandem-operator-{}", std::process::id()));
    let lease = (args.leader_election == Toggle::On).then(|| LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned()),
        identity: identity.clone(),
        duration: std::time::Duration::from_secs(15),
        renew_every: std::time::Duration::from_secs(5),
    });
    let settings = Settings {
        namespace: args.namespace,
        metrics_addr: args.metrics_addr,
        lease,
        reporter: Reporter {
            controller: "tandem-operator".to_owned(),
            instance: Some(identity),
        },
        server_image: args.server_image,
    };

    let shutdown = Shutdown::default();
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
        on_signal.trigger();
    });

    run(client, settings, shutdown).await?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "tandem-operator",
            "run",
            "--namespace",
            "db",
            "--metrics-addr",
            "127.0.0.1:9090",
            "--leader-election",
            "off",
            "--log-format",
            "json",
            "--server-image",
            "ghcr.io/tandem-dev/tandem-server:0.1.0",
        ])
        .expect("flags parse");
        let Command::Run(args) = cli.command else {
            panic!("run parses as run");
        };
        assert_eq!(args.namespace.as_deref(), Some("db"));
        assert_eq!(args.metrics_addr, "127.0.0.1:9090".parse().expect("addr"));
        assert_eq!(args.leader_election, Toggle::Off);
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.server_image, "ghcr.io/tandem-dev/tandem-server:0.1.0");
        assert!(
            Cli::try_parse_from(["tandem-operator", "run", "--leader-election", "maybe"]).is_err()
        );
    }

    #[test]
    fn local_flags_parse() {
        let cli = Cli::try_parse_from([
            "tandem-operator",
            "local",
            "--replicas",
            "3",
            "--dataset-size-hint",
            "1Gi",
            "--client-output-buffer-limit",
            "64Ki 0 0",
            "--mode",
            "disk",
        ])
        .expect("flags parse");
        let Command::Local(args) = cli.command else {
            panic!("local parses as local");
        };
        assert_eq!(args.dataset_size_hint, 1 << 30);
        assert_eq!(args.base_port, 7000);
        assert_eq!(args.down_after_seconds, 5);
        assert_eq!(args.mode, ModeArg::Disk);
        assert_eq!(
            args.client_output_buffer_limit.map(|b| b.hard_bytes),
            Some(64 * 1024)
        );
        for bad in [["--dataset-size-hint", "lots"], ["--replicas", "0"]] {
            let mut argv = vec!["tandem-operator", "local", "--dataset-size-hint", "1Gi"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
