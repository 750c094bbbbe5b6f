//! The reconcile error: one variant per failed action, each with a metric/event category,
//! grouped by the reconcile step that fails with it (prepare, apply, drive, report). No
//! network.

use crate::validate::InvalidSpec;

/// Why one reconcile of a `RedisReplicaSet` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Step prepare.
    /// The spec cannot be acted on until the user changes it.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),

    /// Reading the auth Secret failed.
    #[error("failed to get auth secret {name}: {source}")]
    GetAuthSecret {
        /// Secret name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Creating the auth Secret with a generated password failed.
    #[error("failed to create auth secret {name}: {source}")]
    CreateAuthSecret {
        /// Secret name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// The auth Secret exists but holds no usable password.
    #[error("failed to read auth secret {name}: {why}")]
    ReadAuthSecret {
        /// Secret name.
        name: String,
        /// What is wrong with it (never the password).
        why: &'static str,
    },

    /// Reading the auth-conf Secret (for the renamed commands' names) failed.
    #[error("failed to get secret {name}: {source}")]
    GetAuthConf {
        /// Secret name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// The auth-conf Secret holds renamed-command names that cannot be used.
    #[error("failed to read the renamed commands in secret {name}: {source}")]
    ReadRenamedCommands {
        /// Secret name.
        name: String,
        /// What is wrong (never a name).
        #[source]
        source: crate::renames::RenamesError,
    },

    // Step apply.
    /// Applying the auth-conf Secret failed.
    #[error("failed to apply secret {name}: {source}")]
    ApplyAuthConf {
        /// Secret name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Applying the ConfigMap failed.
    #[error("failed to apply configmap {name}: {source}")]
    ApplyConfigMap {
        /// ConfigMap name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Applying a Service failed.
    #[error("failed to apply service {name}: {source}")]
    ApplyService {
        /// Service name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Applying the PodDisruptionBudget failed.
    #[error("failed to apply poddisruptionbudget {name}: {source}")]
    ApplyPodDisruptionBudget {
        /// PDB name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Applying the StatefulSet failed.
    #[error("failed to apply statefulset {name}: {source}")]
    ApplyStatefulSet {
        /// StatefulSet name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    // Step drive.
    /// Listing the set's pods failed.
    #[error("failed to list pods: {source}")]
    ListPods {
        /// API error.
        #[source]
        source: kube::Error,
    },

    /// Moving the role label to the master failed.
    #[error(transparent)]
    LabelPod(#[from] crate::dataplane::pods::LabelError),

    /// Deleting an outdated pod during a rolling update failed.
    #[error("failed to delete pod {name} for the rolling update: {source}")]
    DeletePod {
        /// Pod name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },

    // Step report.
    /// Writing the status subresource failed.
    #[error("failed to patch status: {source}")]
    PatchStatus {
        /// API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A short, bounded label for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "invalid_spec",
            Self::GetAuthSecret { .. }
            | Self::CreateAuthSecret { .. }
            | Self::ReadAuthSecret { .. }
            | Self::GetAuthConf { .. }
            | Self::ReadRenamedCommands { .. } => "auth",
            Self::ApplyAuthConf { .. }
            | Self::ApplyConfigMap { .. }
            | Self::ApplyService { .. }
            | Self::ApplyPodDisruptionBudget { .. }
            | Self::ApplyStatefulSet { .. } => "apply",
            Self::ListPods { .. } => "observe",
            Self::LabelPod(_) => "roles",
            Self::DeletePod { .. } => "rollout",
            Self::PatchStatus { .. } => "status",
        }
    }

    /// Whether retrying can help without the user changing the spec.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::InvalidSpec(_))
    }
}
