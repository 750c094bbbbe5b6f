//! The one error type of the e2e library: what failed and, for waits, what was last seen.

/// Why an e2e step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig and not in a pod: nothing names a cluster.
    #[error(
        "no Kubernetes cluster configured: set KUBECONFIG (or create ~/.kube/config), for example by running e2e/run-kind.sh, which creates a kind cluster and runs these tests against it"
    )]
    NoCluster,
    /// A kubeconfig exists but its cluster does not answer.
    #[error("the cluster named by the kubeconfig is not reachable: {0}")]
    Unreachable(String),
    /// An API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A wait on a resource failed (watch error).
    #[error("waiting for {what}: {source}")]
    Wait {
        /// What was awaited.
        what: String,
        /// The watcher's error.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// A deadline passed before the condition held.
    #[error("timed out after {seconds} s waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        seconds: u64,
        /// The last observation, to tell why.
        last: String,
    },
    /// A command run inside a pod failed.
    #[error("command in pod {pod} failed: {message}")]
    Exec {
        /// The pod the command ran in.
        pod: String,
        /// Exit status and stderr.
        message: String,
    },
}

/// Adds what was being done to a kube error.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, kube::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            context: context(),
            source,
        })
    }
}
