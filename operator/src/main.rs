//! `tandem-operator run`: the in-cluster controller for RedisReplicaSets, configured by
//! flags or environment variables. Talks to the Kubernetes API (kubeconfig or in-cluster
//! config) and serves metrics on its own port.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::Client;
use kube::runtime::events::Reporter;
use tandem_operator::controller::{Settings, Shutdown, run};
use tandem_operator::crd::DEFAULT_IMAGE;
use tandem_operator::leader::LeaseConfig;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
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
        let Command::Run(args) = cli.command;
        assert_eq!(args.namespace.as_deref(), Some("db"));
        assert_eq!(args.metrics_addr, "127.0.0.1:9090".parse().expect("addr"));
        assert_eq!(args.leader_election, Toggle::Off);
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.server_image, "ghcr.io/tandem-dev/tandem-server:0.1.0");
        assert!(
            Cli::try_parse_from(["tandem-operator", "run", "--leader-election", "maybe"]).is_err()
        );
    }
}
