//! Reaching the cluster under test, and the settings a run takes from the environment.
//!
//! A cluster is named the usual way (KUBECONFIG, ~/.kube/config, or in-cluster). The tests
//! are `#[ignore]`d, so running them means asking for a cluster: without one they fail with
//! a message saying how to get one, never pass silently.

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

use crate::Error;

/// How long the API server gets to answer the first request.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Namespace of the operator's Helm release unless `TANDEM_E2E_OPERATOR_NAMESPACE` says.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "tandem-system";

/// Label selector of the operator pods: the chart's `app.kubernetes.io/name`.
pub const DEFAULT_OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=tandem-operator";

/// Image of the in-cluster redis-cli client unless `TANDEM_E2E_CLIENT_IMAGE` says.
pub const DEFAULT_CLIENT_IMAGE: &str = "docker.io/library/redis:7.0";

/// Run settings, from environment variables (all optional).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the operator's Helm release (`TANDEM_E2E_OPERATOR_NAMESPACE`, default
    /// `tandem-system`, what run-kind.sh installs into).
    pub operator_namespace: String,
    /// Label selector of the operator pods (`TANDEM_E2E_OPERATOR_SELECTOR`, default the
    /// chart's `app.kubernetes.io/name=tandem-operator`).
    pub operator_selector: String,
    /// Image with `redis-cli` and `sh` for the in-cluster client pod
    /// (`TANDEM_E2E_CLIENT_IMAGE`, default `docker.io/library/redis:7.0`).
    pub client_image: String,
    /// `spec.image` of the sets the tests create (`TANDEM_E2E_SERVER_IMAGE`); unset: the
    /// operator's default server image, which the chart sets.
    pub server_image: Option<String>,
    /// Keep each scenario's namespace instead of deleting it (`TANDEM_E2E_KEEP=1`).
    pub keep: bool,
    /// Deadline for a set to become fully synced (`TANDEM_E2E_TIMEOUT_SECONDS`, default 300:
    /// image pulls on a fresh node dominate).
    pub ready_timeout: Duration,
    /// Target for a master's departure (its pod deleted, or its server gone): from then to
    /// the new master named in the status and writes acknowledged by it through the master
    /// Service (`TANDEM_E2E_FAILOVER_TARGET_SECONDS`, default 30 with the scenarios'
    /// downAfterSeconds of 5). Also the deadline for events and replicas to catch up.
    pub failover_target: Duration,
}

impl Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let seconds = |name: &str, default: u64| {
            Duration::from_secs(var(name).and_then(|v| v.parse().ok()).unwrap_or(default))
        };
        Self {
            operator_namespace: var("TANDEM_E2E_OPERATOR_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.to_owned()),
            operator_selector: var("TANDEM_E2E_OPERATOR_SELECTOR")
                .unwrap_or_else(|| DEFAULT_OPERATOR_SELECTOR.to_owned()),
            client_image: var("TANDEM_E2E_CLIENT_IMAGE")
                .unwrap_or_else(|| DEFAULT_CLIENT_IMAGE.to_owned()),
            server_image: var("TANDEM_E2E_SERVER_IMAGE"),
            keep: var("TANDEM_E2E_KEEP").as_deref() == Some("1"),
            ready_timeout: seconds("TANDEM_E2E_TIMEOUT_SECONDS", 300),
            failover_target: seconds("TANDEM_E2E_FAILOVER_TARGET_SECONDS", 30),
        }
    }
}

/// A reachable cluster and the run's settings.
#[derive(Clone)]
pub struct Cluster {
    /// Client of the cluster's API server.
    pub client: Client,
    /// Run settings.
    pub settings: Settings,
}

/// Connects to the cluster the environment names and checks that it answers.
///
/// # Errors
/// [`Error::NoCluster`] when nothing names a cluster, [`Error::Unreachable`] when it does
/// not answer within 15 s.
pub async fn connect() -> Result<Cluster, Error> {
    if !cluster_configured() {
        return Err(Error::NoCluster);
    }
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Unreachable(format!("cannot configure a client: {e}")))?;
    match tokio::time::timeout(REACHABLE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(Cluster {
            client,
            settings: Settings::from_env(),
        }),
        Ok(Err(e)) => Err(Error::Unreachable(e.to_string())),
        Err(_) => Err(Error::Unreachable(format!(
            "no answer from the API server within {} s",
            REACHABLE_TIMEOUT.as_secs()
        ))),
    }
}

/// KUBECONFIG, ~/.kube/config or a pod's service account environment.
fn cluster_configured() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let default_config = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".kube").join("config"))
        .is_some_and(|path| path.is_file());
    set("KUBECONFIG") || default_config || set("KUBERNETES_SERVICE_HOST")
}
