//! The `RedisReplicaSet` custom resource (`tandem.dev/v1alpha1`): spec, status and schema.
//!
//! Invariants that can be checked without looking at the cluster live in the schema (ranges,
//! enums, CEL rules), so `kubectl apply` rejects bad input before the operator sees it.
//! Pure: no network.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::quantity::ByteQuantity;

/// API group of every Tandem resource.
pub const GROUP: &str = "tandem.dev";

/// Image used when `spec.image` is unset: the server built from the same release.
pub const DEFAULT_IMAGE: &str = concat!("tandem-server:", env!("CARGO_PKG_VERSION"));

/// Server directives a user may set through `spec.serverConfig`.
///
/// Everything the operator tunes (replication, persistence paths, ports, auth) is absent on
/// purpose: a free-form override there would silently undo the tuning and the safety rules.
pub const ALLOWED_SERVER_CONFIG: [&str; 13] = [
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "loglevel",
    "save",
    "hz",
    "databases",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "notify-keyspace-events",
];

/// A replicated Redis-compatible database: one master and `replicas - 1` replicas of it,
/// with full-sync mode, timeouts, buffers and backlog derived from the dataset size.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tandem.dev",
    version = "v1alpha1",
    kind = "RedisReplicaSet",
    plural = "redisreplicasets",
    shortname = "rrs",
    category = "tandem",
    namespaced,
    doc = "A replicated Redis-compatible database run by tandem-operator: one master and replicas, with full sync tuned from the dataset size.",
    status = "RedisReplicaSetStatus",
    derive = "PartialEq",
    // `kubectl scale rrs` and a HorizontalPodAutoscaler go through this subresource: it
    // writes spec.replicas, which the StatefulSet follows.
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    // Raw JSON columns: clippy's duplicated_attributes lint misfires on the typed form.
    printcolumn = r#"{"name":"Master","type":"string","jsonPath":".status.master","description":"Pod holding the master role"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.replication.mode","description":"Full-sync mode in effect"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.ready","description":"Ready pods / desired pods"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Hint","type":"string","priority":1,"jsonPath":".spec.datasetSizeHint","description":"Expected dataset size driving the tuning"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","priority":1,"jsonPath":".status.maxLagSeconds","description":"Largest replica lag, seconds since its last acknowledgement"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message","description":"Why the set is or is not Ready"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.replication) || !has(self.replication.minReplicasToWrite) || self.replication.minReplicasToWrite < self.replicas",
    "message": "replication.minReplicasToWrite must be below replicas: the master could never accept a write"
}, {
    "rule": "!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || (has(self.serviceType) && self.serviceType == 'LoadBalancer')",
    "message": "loadBalancerSourceRanges needs serviceType: LoadBalancer"
}]))]
pub struct RedisReplicaSetSpec {
    /// Pods in total: one master plus `replicas - 1` replicas.
    #[schemars(range(min = 1, max = MAX_REPLICAS))]
    pub replicas: i32,

    /// Expected dataset size (a quantity such as 20Gi). It drives the replication tuning:
    /// sync mode, repl-timeout, replica output buffer, backlog and probe budgets.
    pub dataset_size_hint: ByteQuantity,

    /// Replication tuning. Every field is optional; unset fields are derived by the operator
    /// and set fields override the derived value (the status says which).
    #[serde(default)]
    pub replication: ReplicationSpec,

    /// Automatic failover of the master.
    #[serde(default)]
    pub failover: FailoverSpec,

    /// Persistent volumes for the data directory. Without it every pod starts empty.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Password for clients and for replication between nodes. When unset, the Secret is
    /// `<name>-auth`; either way the operator creates it with a random password when it does
    /// not exist, so a set never runs without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Dangerous commands: renamed or removed for every client but the operator.
    #[serde(default)]
    pub security: SecuritySpec,

    /// Container image of tandem-server (default: `tandem-server:<operator version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// When the kubelet pulls the server image: Always, IfNotPresent (the default) or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Secrets holding credentials for a private registry, in the set's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Compute resources of the server container. The memory limit is checked against the
    /// memory the tuning needs (dataset + replica buffers + backlog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of the pods. When unset, pods of one set prefer different nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Extra annotations on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Extra labels on the pods. The labels the operator selects on (`app.kubernetes.io/*`,
    /// `tandem.dev/*`) cannot be set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "x-kubernetes-validations" = [{
        "rule": "self.all(k, !k.startsWith('app.kubernetes.io/') && !k.startsWith('tandem.dev/'))",
        "message": "podLabels cannot set app.kubernetes.io/* or tandem.dev/* labels: the operator's Services, StatefulSet and watches select on them"
    }]))]
    pub pod_labels: BTreeMap<String, String>,

    /// How the pods spread over zones or nodes (added to the default soft anti-affinity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// More containers in every pod, next to the server (an exporter, a log shipper).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(c, c.name != 'server' && c.name != 'exporter')",
        "message": "extraContainers cannot be named server or exporter: those are the database container and the metrics sidecar"
    }]))]
    pub extra_containers: Vec<Container>,

    /// More volumes in every pod, for the extra containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(v, !(v.name in ['config', 'auth', 'data', 'tmp']))",
        "message": "extraVolumes cannot be named config, auth, data or tmp: the server's own volumes have those names"
    }]))]
    pub extra_volumes: Vec<Volume>,

    /// Type of the master and replicas Services.
    #[serde(default)]
    pub service_type: ServiceType,

    /// Extra annotations on the master and replicas Services (a cloud load balancer's
    /// settings, external-dns names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_annotations: BTreeMap<String, String>,

    /// Client address ranges (CIDR) a LoadBalancer Service admits; only with
    /// `serviceType: LoadBalancer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub load_balancer_source_ranges: Vec<String>,

    /// Prometheus metrics of the servers themselves.
    #[serde(default)]
    pub metrics: MetricsSpec,

    /// Extra server directives (`name: value`), limited to an allowlist: maxmemory,
    /// maxmemory-policy, maxmemory-samples, maxclients, timeout, tcp-keepalive, loglevel,
    /// save, hz, databases, slowlog-log-slower-than, slowlog-max-len, notify-keyspace-events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "server_config_schema")]
    pub server_config: BTreeMap<String, String>,
}

/// Prometheus metrics of the servers.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// A redis_exporter sidecar in every pod, serving the server's metrics on the port named
    /// `metrics` (9121) for a PodMonitor (the chart's `databaseMetrics.podMonitor`).
    #[serde(default)]
    pub exporter: ExporterSpec,
}

/// The redis_exporter sidecar.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExporterSpec {
    /// Run the sidecar. It logs in with the set's password and sends CONFIG by the name the
    /// server answers to (the renamed one), so every `redis_config_*` series is there.
    #[serde(default)]
    pub enabled: bool,

    /// Its image (default `oliver006/redis_exporter:v1.67.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Compute resources of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Full-sync mode choice.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ModeChoice {
    /// Let the operator choose from the dataset size.
    #[default]
    Auto,
    /// The master dumps an RDB file to disk, then sends it.
    Disk,
    /// The master streams the snapshot straight to the replicas' sockets.
    Diskless,
}

/// User overrides of the replication tuning.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    /// Full-sync mode: Auto (derived), Disk or Diskless.
    #[serde(default)]
    pub mode: ModeChoice,

    /// repl-timeout in seconds. It must cover the longest silence of a full sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 604800))]
    pub repl_timeout_seconds: Option<u32>,

    /// repl-diskless-sync-delay in seconds: how long the master waits for more replicas
    /// before it starts streaming one snapshot to all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 300))]
    pub diskless_sync_delay_seconds: Option<u32>,

    /// client-output-buffer-limit for replicas. `hard: 0` means unlimited, which can run the
    /// master out of memory during a sync under heavy writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_output_buffer_limit: Option<BufferLimitSpec>,

    /// repl-backlog-size: how much write history the master keeps so a replica that
    /// reconnects can resume with a partial sync instead of a full one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_size: Option<ByteQuantity>,

    /// min-replicas-to-write: the master refuses writes unless this many replicas are
    /// connected with a lag under 10 s. It must be below `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31))]
    pub min_replicas_to_write: Option<u32>,
}

/// `client-output-buffer-limit replica <hard> <soft> <softSeconds>`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BufferLimitSpec {
    /// A replica whose output buffer reaches this size is disconnected at once (0: no limit).
    pub hard: ByteQuantity,
    /// A replica whose output buffer stays above this size for softSeconds is disconnected.
    #[serde(default = "zero_bytes")]
    pub soft: ByteQuantity,
    /// See soft.
    #[serde(default)]
    #[schemars(range(min = 0, max = 86400))]
    pub soft_seconds: u32,
}

fn zero_bytes() -> ByteQuantity {
    ByteQuantity::new("0")
}

/// Failover settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// Promote a replica when the master is down.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long the master must be unreachable before a failover starts.
    #[serde(default = "default_down_after")]
    #[schemars(range(min = 1, max = 3600))]
    pub down_after_seconds: u32,
}

impl Default for FailoverSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            down_after_seconds: default_down_after(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_down_after() -> u32 {
    5
}

/// Persistent storage for `/data`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "!self.enabled || has(self.size)", "message": "persistence.size is required when persistence is enabled" },
    { "rule": "self == oldSelf", "message": "persistence cannot change after creation: StatefulSet volume claims are immutable" }
]))]
pub struct PersistenceSpec {
    /// Give every pod a PersistentVolumeClaim for its data directory.
    #[serde(default)]
    pub enabled: bool,
    /// Size of each claim; leave room for the dataset and one RDB dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteQuantity>,
    /// StorageClass of the claims (cluster default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What is kept on the volume: `Rdb` snapshots, the append-only file (`Aof`), or
    /// `Both`. Unset: chosen by the operator (`Both`, docs/tuning.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PersistenceMode>,
    /// `appendfsync` of the append-only file. Unset: `Everysec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appendfsync: Option<Appendfsync>,
}

/// What a node keeps on its volume.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PersistenceMode {
    /// RDB snapshots at the `save` points.
    Rdb,
    /// The append-only file (with an RDB base).
    Aof,
    /// Both: the AOF for durability, snapshots for a restarted node's replication offset.
    Both,
}

/// When the append-only file is fsynced, as Redis's `appendfsync`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Appendfsync {
    /// Before every reply: no acknowledged write is lost, even by a machine crash.
    Always,
    /// Once a second: a machine crash loses at most about the last second.
    Everysec,
    /// When the kernel writes back.
    No,
}

/// Authentication settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret holding the password under the key `password`. The operator creates it with a
    /// random password when it does not exist.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Security settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// Rename CONFIG, REPLICAOF and SHUTDOWN to secret names only the operator knows (kept
    /// in the `<name>-auth-conf` Secret, key `renamed-commands`) and remove DEBUG and
    /// SLAVEOF. Takes effect as each pod starts.
    #[serde(default = "default_true")]
    pub rename_commands: bool,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        Self {
            rename_commands: true,
        }
    }
}

/// When the kubelet pulls an image.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// On every pod start.
    Always,
    /// Only when the node does not have it.
    #[default]
    IfNotPresent,
    /// Never: the image must be on the node.
    Never,
}

impl PullPolicy {
    /// The value as the pod spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Kubernetes Service type for the master and replicas Services.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Through a cloud load balancer.
    LoadBalancer,
}

/// The most pods a set may ask for (schema maximum, re-checked by validation).
pub const MAX_REPLICAS: u32 = 32;

/// Path of the generated CRD in the repository, relative to the workspace root.
pub const CRD_PATH: &str = "crds/redisreplicasets.tandem.dev.yaml";

/// The CRD as YAML, exactly what `crdgen` prints and `crds/` holds.
///
/// # Errors
/// Only if YAML serialization fails, which would be a bug in the schema types.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&RedisReplicaSet::crd())
}

fn server_config_schema(_: &mut SchemaGenerator) -> Schema {
    let allowed = ALLOWED_SERVER_CONFIG
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    json_schema!({
        "description": "Extra server directives (name: value), limited to an allowlist: maxmemory, maxmemory-policy, maxmemory-samples, maxclients, timeout, tcp-keepalive, loglevel, save, hz, databases, slowlog-log-slower-than, slowlog-max-len, notify-keyspace-events.",
        "type": "object",
        "maxProperties": ALLOWED_SERVER_CONFIG.len(),
        "additionalProperties": { "type": "string", "maxLength": 256 },
        "x-kubernetes-validations": [
            {
                "rule": format!("self.all(k, k in [{allowed}])"),
                "messageExpression": format!(
                    "'serverConfig does not allow ' + self.filter(k, !(k in [{allowed}])).join(', ') + ': the operator manages replication, ports, paths and auth'"
                ),
            },
            {
                "rule": "self.all(k, !self[k].contains('\\n') && !self[k].contains('\\r') && !self[k].contains('\"') && !self[k].contains(\"'\") && !self[k].contains('\\\\'))",
                "message": "serverConfig values must be a single line without quotes or backslashes",
            }
        ],
    })
}

/// Lifecycle phase shown by `kubectl get rrs`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// No master yet: pods are starting or no node has been promoted.
    #[default]
    Pending,
    /// A master serves; some replicas are not ready or still syncing.
    Syncing,
    /// The master and every replica are ready.
    Ready,
    /// Something needs attention (see the Degraded condition).
    Degraded,
    /// The master is being replaced.
    FailingOver,
}

/// Full-sync mode in effect.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SyncMode {
    /// RDB dumped to the master's disk, then sent.
    Disk,
    /// RDB streamed straight to the replicas' sockets.
    Diskless,
}

/// Observed state, written by the operator only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisReplicaSetStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Syncing, Ready, Degraded or FailingOver.
    #[serde(default)]
    pub phase: Phase,
    /// Pod that currently holds the master role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Ready pods over desired pods, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Number of ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods of the set whose server answered the operator: the scale subresource's current
    /// count (`kubectl scale`, HorizontalPodAutoscaler). Absent in a status written by an
    /// operator from before `status.nodes`, whose `status.replicas` was the per-pod list.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count_or_legacy_list"
    )]
    pub replicas: Option<i32>,
    /// Label selector of the set's pods, for the scale subresource (an autoscaler finds the
    /// pods' metrics through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The largest `lag` among the replicas (the wide `LAG` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_seconds: Option<i64>,
    /// The replication tuning in effect on every node, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// What the nodes keep on their volume, and why (the persistence policy's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceStatus>,
    /// Where spec.serverConfig stands on the running nodes; absent when it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_config: Option<ServerConfigStatus>,
    /// One entry per non-master pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub nodes: Vec<ReplicaStatus>,
    /// The master's replication offset (master_repl_offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_offset: Option<i64>,
    /// Full syncs the master served (sync_full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_syncs: Option<i64>,
    /// Partial resyncs the master accepted (sync_partial_ok).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_syncs_accepted: Option<i64>,
    /// Partial resyncs the master refused, each followed by a full sync (sync_partial_err).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_syncs_rejected: Option<i64>,
    /// The last automatic failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverRecord>,
    /// The last planned switchover (scale-in, rolling update, or asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<SwitchoverRecord>,
    /// Ready (the summary GitOps tools wait for), Reconciling and Stalled (kstatus),
    /// Available, Progressing and Degraded, plus SyncLoop once the data plane reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// What the data plane must remember across operator restarts: read back when an
    /// operator starts, so it neither trusts a pod that restarted meanwhile nor undoes its
    /// tuning adjustments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane: Option<DataPlaneRecord>,
}

/// spec.serverConfig on the running nodes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfigStatus {
    /// The live directives every node that answered has, as CONFIG GET prints them (set
    /// with CONFIG SET, replicas first, or started with). A directive a node refused is
    /// missing until it is in line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<String, String>,
    /// Directives that only take effect at a start (databases): a change rolls the pods,
    /// replicas first and the master after a switchover.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_restart: BTreeMap<String, String>,
}

/// The data plane's record kept in the status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPlaneRecord {
    /// Per pod, the run id it had when its data was last known good (the master, or a
    /// replica that finished syncing from it). A pod whose run id differs restarted since:
    /// it is neither promoted nor followed until it synced again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trusted_run_ids: BTreeMap<String, String>,
    /// Sync-loop adjustments in effect (each raises the replica output buffer and
    /// repl-timeout; at most 3).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sync_loop_adjustments: u32,
    /// The replica found in a sync loop, until every replica is online again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_loop: Option<SyncLoopRecord>,
    /// The master's recent peak write rate (replication stream bytes per second, rounded up
    /// to a power of two), which sizes the replica output buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes_per_second: Option<u64>,
    /// The master's recent peak dataset size (`used_memory_dataset`, rounded up to an eighth
    /// of its power of two), which sizes the tuning when larger than datasetSizeHint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_bytes: Option<u64>,
}

/// A replica caught in a sync loop.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncLoopRecord {
    /// The replica.
    pub pod: String,
    /// Full syncs it started without finishing one.
    pub attempts: u32,
}

/// Reads `status.replicas` as the pod count, and the per-pod list an older operator kept
/// there as absent: the object still loads, and the absent count tells the controller to
/// clear the old list before its first apply (docs/status.md, "Upgrading").
fn count_or_legacy_list<'de, D>(deserializer: D) -> Result<Option<i32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("status.replicas {n} is not a pod count"))),
        _ => Ok(None),
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One failover: who replaced whom, and how much of the stream may be lost.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// The master that stopped serving.
    pub from: String,
    /// The replica promoted in its place.
    pub to: String,
    /// When the promotion was made.
    pub at: Time,
    /// The old master's replication offset when last seen.
    pub from_offset: u64,
    /// The promoted replica's offset.
    pub to_offset: u64,
    /// Bytes of the replication stream the promoted replica lacked: writes that may be
    /// lost. Writes acknowledged by `WAIT 1` are never among them.
    pub bytes_at_risk: u64,
    /// Why the old master was given up.
    pub reason: String,
}

/// One planned switchover: writes were paused until the new master had every byte of the
/// old one's stream, so nothing was lost.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchoverRecord {
    /// The master that handed over.
    pub from: String,
    /// The replica promoted in its place.
    pub to: String,
    /// When the promotion was made.
    pub at: Time,
    /// The replication offset both had at the promotion.
    pub offset: u64,
    /// How long writes were held on the old master, in milliseconds.
    pub write_pause_ms: u64,
    /// Why the master moved.
    pub reason: String,
}

/// The tuning the operator chose.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// Disk or Diskless.
    pub mode: SyncMode,
    /// repl-timeout in seconds.
    pub repl_timeout_seconds: u64,
    /// repl-diskless-sync-delay in seconds.
    pub diskless_sync_delay_seconds: u64,
    /// The directive as written to every node, e.g. `replica 536870912 0 0`.
    pub client_output_buffer_limit: String,
    /// repl-backlog-size, e.g. `300Mi`.
    pub backlog_size: String,
    /// repl-diskless-load: disabled or on-empty-db.
    pub diskless_load: String,
    /// min-replicas-to-write.
    pub min_replicas_to_write: u32,
    /// Why these values, in one line.
    pub reason: String,
    /// Fields taken from spec.replication instead of derived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// The persistence policy's choice, as status.persistence shows it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceStatus {
    /// Rdb, Aof or Both; absent without a volume (nothing is written to disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PersistenceMode>,
    /// The AOF's fsync policy; absent when the AOF is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appendfsync: Option<Appendfsync>,
    /// Why, in one line.
    pub reason: String,
}

/// Sync state of one replica.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pod name.
    pub pod: String,
    /// Whether the pod passes its readiness probe.
    pub ready: bool,
    /// wait_bgsave, send_bulk or online, as the master reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// up or down, as the replica reports its link to the master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_status: Option<String>,
    /// Replication offset the replica acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Seconds since the replica's last acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Progress of a running full sync, from the replica's byte counters (e.g. `41%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_progress: Option<String>,
    /// The last completed full sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync: Option<FullSyncRecord>,
}

/// One completed full sync.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FullSyncRecord {
    /// Disk or Diskless.
    pub mode: SyncMode,
    /// When the sync started.
    pub started_at: Time,
    /// From the request to the replica having loaded the data.
    pub duration_seconds: i64,
    /// Bytes of snapshot the replica reported receiving (its `master_sync_total_bytes`, or
    /// for a streamed snapshot the most of `master_sync_read_bytes` seen); with the duration
    /// it gives the measured transfer rate the timeouts follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn api_names_match_the_contract() {
        let crd = RedisReplicaSet::crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.kind, "RedisReplicaSet");
        assert_eq!(crd.spec.names.plural, "redisreplicasets");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&["rrs".to_owned()][..])
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "Master", "Mode", "Ready", "Phase", "Age", "Hint", "Lag", "Message"
            ]
        );
        let wide: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority == Some(1))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(wide, ["Hint", "Lag", "Message"], "shown by -o wide only");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["tandem".to_owned()][..])
        );
        let scale = version
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
    }

    #[test]
    fn the_design_example_deserializes() {
        let rrs: RedisReplicaSet = serde_yaml::from_str(
            r"
apiVersion: tandem.dev/v1alpha1
kind: RedisReplicaSet
metadata: { name: cache }
spec:
  replicas: 3
  datasetSizeHint: 20Gi
  replication:
    mode: Auto
    replTimeoutSeconds: 1800
    disklessSyncDelaySeconds: 0
    clientOutputBufferLimit: { hard: 0, soft: 0, softSeconds: 0 }
    backlogSize: 256Mi
  failover: { enabled: true, downAfterSeconds: 5 }
  persistence: { enabled: true, size: 30Gi, storageClassName: standard }
  auth: { secretName: cache-auth }
",
        )
        .expect("design example");
        assert_eq!(rrs.spec.replicas, 3);
        assert_eq!(rrs.spec.replication.repl_timeout_seconds, Some(1800));
        let cob = rrs
            .spec
            .replication
            .client_output_buffer_limit
            .expect("cob");
        assert_eq!(cob.hard.bytes(), Ok(0));
        assert_eq!(
            rrs.spec.persistence.storage_class_name.as_deref(),
            Some("standard")
        );
    }

    #[test]
    fn server_config_allowlist_is_a_cel_rule_naming_the_offender() {
        let schema = serde_json::to_value(RedisReplicaSet::crd()).expect("crd json");
        let rules = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["serverConfig"]["x-kubernetes-validations"];
        let allow = rules[0]["rule"].as_str().expect("rule");
        for name in ALLOWED_SERVER_CONFIG {
            assert!(
                allow.contains(&format!("'{name}'")),
                "{name} missing from {allow}"
            );
        }
        assert!(
            !allow.contains("repl-"),
            "replication directives must not be allowed"
        );
        let message = rules[0]["messageExpression"]
            .as_str()
            .expect("messageExpression");
        assert!(message.contains("self.filter(k, !(k in ["), "{message}");
    }
}
