//! The replication tuning policy: dataset size, replica count, persistence, what was observed
//! and the user's overrides in; sync mode, timeouts, buffers, backlog and a readable reason out.
//!
//! This is the seed article's experiment turned into rules (docs/tuning.md states each rule,
//! its rationale and a table that a test checks against [`plan`]). Pure: no network, no clock.

use std::fmt::Write as _;

use crate::crd::SyncMode;
use crate::quantity::{GIB, MIB, format_bytes};

/// Datasets at or above this size sync diskless: the article measured half the time and no
/// dump in the master's page cache at 20 GB, and the gap only grows with size.
pub const DISKLESS_THRESHOLD_BYTES: u64 = GIB;

/// The transfer rate timeouts are sized for: about a fifth of the ~96 MB/s the article
/// measured for a diskless sync (20 GB in 208 s), so a busy network or a throttled volume
/// still fits.
pub const ASSUMED_TRANSFER_BYTES_PER_SECOND: u64 = 20 * MIB;

/// repl-timeout covers this many times the estimated transfer (the replica is silent for
/// about as long again while it loads what it received).
pub const TIMEOUT_MARGIN: u64 = 2;

/// repl-timeout never goes below Redis's own default.
pub const REPL_TIMEOUT_FLOOR_SECONDS: u64 = 60;

/// Write rate assumed until one is observed: a moderately busy cache.
pub const ASSUMED_WRITE_BYTES_PER_SECOND: u64 = MIB;

/// The replica output buffer never goes below Redis's default hard limit for replicas.
pub const BUFFER_FLOOR_BYTES: u64 = 256 * MIB;

/// The backlog holds this many seconds of writes: a replica pod that is rescheduled and
/// restarted within five minutes resumes with a partial sync.
pub const BACKLOG_WINDOW_SECONDS: u64 = 300;

/// The backlog never goes below this size.
pub const BACKLOG_FLOOR_BYTES: u64 = 64 * MIB;

/// Memory the server needs besides data, buffers and backlog (code, connections, allocator).
pub const SERVER_OVERHEAD_BYTES: u64 = 64 * MIB;

/// repl-diskless-sync-delay when several replicas start together: long enough for the
/// StatefulSet's parallel pods to connect and share one snapshot.
pub const SEVERAL_REPLICAS_SYNC_DELAY_SECONDS: u64 = 5;

/// min-replicas-max-lag that goes with min-replicas-to-write.
pub const MIN_REPLICAS_MAX_LAG_SECONDS: u64 = 10;

/// A starting pod gets at least this long before its startup probe may fail it.
pub const STARTUP_FLOOR_SECONDS: u64 = 120;

/// How long a pod may take to start: loading a dump of the whole dataset, or receiving one
/// in a full sync, takes about the transfer time, so the same estimate and margin as
/// repl-timeout apply. A probe that fails first restarts the pod into a new full sync, the
/// loop of bitnami/charts #4935. With the AOF the load reads the RDB base and replays the
/// incremental files, which grow up to the base's size again before the automatic rewrite
/// (`auto-aof-rewrite-percentage 100`): twice the dataset.
pub fn startup_budget_seconds(dataset: u64, aof: bool) -> u64 {
    let loaded = if aof {
        dataset.saturating_mul(2)
    } else {
        dataset
    };
    transfer_seconds(loaded)
        .saturating_mul(TIMEOUT_MARGIN)
        .max(STARTUP_FLOOR_SECONDS)
}

/// How long a master that got SIGTERM keeps serving so that the operator can switch it over
/// (`shutdown-handover-timeout`): the controller reconciles on the pod's deletion within
/// seconds (its pod watch), local mode looks every 200 ms; a master still serving after
/// this shuts down anyway and its replicas fail over.
pub const HANDOVER_WAIT_SECONDS: u64 = 30;

/// `shutdown-timeout`: Redis's default. After the switchover the old master is a replica
/// with nothing to wait for; the wait only matters when no switchover happened.
pub const SHUTDOWN_TIMEOUT_SECONDS: u64 = 10;

/// The process's exit and the kubelet's own steps, on top of the waits and the save.
pub const STOP_MARGIN_SECONDS: u64 = 5;

/// `terminationGracePeriodSeconds`: the handover wait, then `shutdown-timeout`, then the
/// final save (with snapshots: writing the dataset takes about its transfer time, with the
/// same margin as repl-timeout). A grace period shorter than this would have the kubelet's
/// SIGKILL cut the switchover or the final save short.
pub fn termination_grace_seconds(dataset: u64, snapshots: bool) -> u64 {
    let save = if snapshots {
        transfer_seconds(dataset).saturating_mul(TIMEOUT_MARGIN)
    } else {
        0
    };
    HANDOVER_WAIT_SECONDS
        .saturating_add(SHUTDOWN_TIMEOUT_SECONDS)
        .saturating_add(save)
        .saturating_add(STOP_MARGIN_SECONDS)
}

/// Everything the policy looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyInput {
    /// spec.datasetSizeHint in bytes.
    pub dataset_size_hint: u64,
    /// spec.replicas: pods in total, master included.
    pub replicas: u32,
    /// spec.persistence.enabled.
    pub persistence: bool,
    /// What the data plane measured, when it has.
    pub observed: Observed,
    /// The server container's memory limit, when set.
    pub memory_limit: Option<u64>,
    /// maxmemory from spec.serverConfig, when set.
    pub maxmemory: Option<u64>,
    /// spec.replication fields the user set.
    pub overrides: Overrides,
}

/// Measurements from the running nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The master's dataset size (used_memory_dataset).
    pub dataset_bytes: Option<u64>,
    /// Replication stream growth per second (master_repl_offset delta).
    pub write_bytes_per_second: Option<u64>,
    /// The transfer rate of the last full sync large enough to measure one.
    pub transfer_bytes_per_second: Option<u64>,
}

/// User-set values from spec.replication; each one wins over the derived value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// spec.replication.mode when not Auto.
    pub mode: Option<SyncMode>,
    /// spec.replication.replTimeoutSeconds.
    pub repl_timeout_seconds: Option<u64>,
    /// spec.replication.disklessSyncDelaySeconds.
    pub diskless_sync_delay_seconds: Option<u64>,
    /// spec.replication.clientOutputBufferLimit.
    pub client_output_buffer_limit: Option<BufferLimit>,
    /// spec.replication.backlogSize.
    pub backlog_bytes: Option<u64>,
    /// spec.replication.minReplicasToWrite.
    pub min_replicas_to_write: Option<u32>,
}

/// `client-output-buffer-limit replica <hard> <soft> <soft_seconds>` (0 disables a limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLimit {
    /// Disconnect at once above this many bytes.
    pub hard_bytes: u64,
    /// Disconnect after `soft_seconds` above this many bytes.
    pub soft_bytes: u64,
    /// See `soft_bytes`.
    pub soft_seconds: u64,
}

impl BufferLimit {
    /// The directive's value as redis.conf and CONFIG SET take it.
    pub fn directive_value(&self) -> String {
        format!(
            "replica {} {} {}",
            self.hard_bytes, self.soft_bytes, self.soft_seconds
        )
    }
}

/// repl-diskless-load on the replica side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisklessLoad {
    /// Write the received RDB to disk, then load it.
    Disabled,
    /// Load straight from the socket when the replica's dataset is empty.
    OnEmptyDb,
}

impl DisklessLoad {
    /// The directive's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::OnEmptyDb => "on-empty-db",
        }
    }
}

/// The tuning every node gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Disk or diskless full sync.
    pub mode: SyncMode,
    /// repl-timeout.
    pub repl_timeout_seconds: u64,
    /// repl-diskless-sync-delay.
    pub diskless_sync_delay_seconds: u64,
    /// client-output-buffer-limit replica.
    pub client_output_buffer_limit: BufferLimit,
    /// repl-backlog-size.
    pub backlog_bytes: u64,
    /// repl-diskless-load.
    pub diskless_load: DisklessLoad,
    /// min-replicas-to-write.
    pub min_replicas_to_write: u32,
    /// maxmemory derived from the container's memory limit, when the user set none
    /// ([`derive_maxmemory`]); None leaves maxmemory to spec.serverConfig.
    pub maxmemory_bytes: Option<u64>,
    /// The mode decision and anything notable, for humans.
    pub reason: String,
    /// spec.replication field names that were taken as given.
    pub overrides: Vec<&'static str>,
}

impl Plan {
    /// The replication directives in redis.conf syntax, in a stable order; the same list
    /// goes into every node's config file.
    pub fn directives(&self) -> Vec<(&'static str, String)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        vec![
            (
                "repl-diskless-sync",
                yes_no(self.mode == SyncMode::Diskless),
            ),
            (
                "repl-diskless-sync-delay",
                self.diskless_sync_delay_seconds.to_string(),
            ),
            ("repl-diskless-load", self.diskless_load.as_str().to_owned()),
            ("repl-timeout", self.repl_timeout_seconds.to_string()),
            ("repl-backlog-size", self.backlog_bytes.to_string()),
            (
                "client-output-buffer-limit",
                self.client_output_buffer_limit.directive_value(),
            ),
            (
                "min-replicas-to-write",
                self.min_replicas_to_write.to_string(),
            ),
            (
                "min-replicas-max-lag",
                MIN_REPLICAS_MAX_LAG_SECONDS.to_string(),
            ),
            ("shutdown-timeout", SHUTDOWN_TIMEOUT_SECONDS.to_string()),
            (
                "shutdown-handover-timeout",
                HANDOVER_WAIT_SECONDS.to_string(),
            ),
        ]
        .into_iter()
        .chain(self.maxmemory_bytes.map(|b| ("maxmemory", b.to_string())))
        .collect()
    }
}

/// Turns the inputs into the tuning. Overrides always win and are named in the reason.
pub fn plan(input: &PolicyInput) -> Plan {
    let o = &input.overrides;
    let dataset = input
        .observed
        .dataset_bytes
        .map_or(input.dataset_size_hint, |seen| {
            seen.max(input.dataset_size_hint)
        });
    let write_rate = input
        .observed
        .write_bytes_per_second
        .unwrap_or(ASSUMED_WRITE_BYTES_PER_SECOND);

    let (mode, mut reason) = match o.mode {
        Some(mode) => (mode, format!("mode {mode:?} set in spec.replication")),
        None => {
            let label = if dataset > input.dataset_size_hint {
                "observed dataset"
            } else {
                "datasetSizeHint"
            };
            derive_mode(dataset, label, input.persistence)
        }
    };
    if let Some(seen) = input
        .observed
        .dataset_bytes
        .filter(|seen| *seen > input.dataset_size_hint)
    {
        let _ = write!(
            reason,
            "; sized for the observed dataset {} (hint {})",
            format_bytes(seen),
            format_bytes(input.dataset_size_hint)
        );
    }

    if write_rate > ASSUMED_WRITE_BYTES_PER_SECOND {
        let _ = write!(
            reason,
            "; buffers sized for the observed write rate {}/s",
            format_bytes(write_rate)
        );
    }

    // A measured rate only ever slows the estimate: a fast sync once is no promise.
    let transfer_rate = input
        .observed
        .transfer_bytes_per_second
        .filter(|r| *r < ASSUMED_TRANSFER_BYTES_PER_SECOND);
    if let Some(rate) = transfer_rate {
        let _ = write!(
            reason,
            "; timeouts sized for the measured transfer rate {}/s",
            format_bytes(rate)
        );
    }
    let repl_timeout_seconds = o.repl_timeout_seconds.unwrap_or_else(|| {
        derive_repl_timeout(
            dataset,
            transfer_rate.unwrap_or(ASSUMED_TRANSFER_BYTES_PER_SECOND),
        )
    });
    let diskless_sync_delay_seconds =
        o.diskless_sync_delay_seconds
            .unwrap_or(if input.replicas > 2 {
                SEVERAL_REPLICAS_SYNC_DELAY_SECONDS
            } else {
                0
            });
    let backlog_bytes = o
        .backlog_bytes
        .unwrap_or_else(|| derive_backlog(write_rate, dataset));
    let client_output_buffer_limit = o.client_output_buffer_limit.unwrap_or_else(|| {
        derive_buffer_limit(
            input,
            dataset,
            write_rate,
            repl_timeout_seconds,
            backlog_bytes,
        )
    });
    let diskless_load = if input.persistence {
        DisklessLoad::Disabled
    } else {
        DisklessLoad::OnEmptyDb
    };
    let min_replicas_to_write =
        o.min_replicas_to_write
            .unwrap_or(if input.replicas >= 3 { 1 } else { 0 });
    let maxmemory_bytes = match (input.maxmemory, input.memory_limit) {
        (None, Some(limit)) => derive_maxmemory(
            limit,
            input.replicas,
            client_output_buffer_limit,
            backlog_bytes,
        ),
        _ => None,
    };
    if let (Some(bytes), Some(limit)) = (maxmemory_bytes, input.memory_limit) {
        let _ = write!(
            reason,
            "; maxmemory {} from the memory limit {} less replica buffers, backlog and overhead",
            format_bytes(bytes),
            format_bytes(limit)
        );
    }

    let overrides: Vec<&'static str> = [
        ("mode", o.mode.is_some()),
        ("replTimeoutSeconds", o.repl_timeout_seconds.is_some()),
        (
            "disklessSyncDelaySeconds",
            o.diskless_sync_delay_seconds.is_some(),
        ),
        (
            "clientOutputBufferLimit",
            o.client_output_buffer_limit.is_some(),
        ),
        ("backlogSize", o.backlog_bytes.is_some()),
        ("minReplicasToWrite", o.min_replicas_to_write.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !overrides.is_empty() {
        let _ = write!(reason, "; overridden: {}", overrides.join(", "));
    }

    Plan {
        mode,
        repl_timeout_seconds,
        diskless_sync_delay_seconds,
        client_output_buffer_limit,
        backlog_bytes,
        diskless_load,
        min_replicas_to_write,
        maxmemory_bytes,
        reason,
        overrides,
    }
}

/// What the data may take inside the container's memory limit: the limit less every
/// replica's output buffer at its hard limit, the backlog and the server's overhead, the
/// worst case [`memory_budget`] checks. With it the server refuses writes (`-OOM`, or evicts
/// under an eviction policy) where it would otherwise grow into the limit and be OOM-killed
/// mid-sync, losing every replica's sync with it. None when nothing is left.
fn derive_maxmemory(
    limit: u64,
    replicas: u32,
    buffer: BufferLimit,
    backlog_bytes: u64,
) -> Option<u64> {
    let buffers = buffer
        .hard_bytes
        .saturating_mul(u64::from(replicas.saturating_sub(1)));
    let left = limit
        .saturating_sub(buffers)
        .saturating_sub(backlog_bytes)
        .saturating_sub(SERVER_OVERHEAD_BYTES);
    Some(round_down_mib(left)).filter(|b| *b > 0)
}

/// `label` says where the size came from (the hint, or a larger observed dataset).
fn derive_mode(dataset: u64, label: &str, persistence: bool) -> (SyncMode, String) {
    let size = format_bytes(dataset);
    let threshold = format_bytes(DISKLESS_THRESHOLD_BYTES);
    if dataset >= DISKLESS_THRESHOLD_BYTES {
        (
            SyncMode::Diskless,
            format!(
                "{label} {size} >= {threshold}: diskless streams the snapshot, no dump on disk"
            ),
        )
    } else if !persistence {
        (
            SyncMode::Diskless,
            format!(
                "{label} {size} < {threshold} without persistence: diskless, no volume to hold a dump"
            ),
        )
    } else {
        (
            SyncMode::Disk,
            format!(
                "{label} {size} < {threshold} with persistence: disk, the dump doubles as the node's snapshot"
            ),
        )
    }
}

/// Seconds to move `bytes` at the assumed rate, rounded up.
fn transfer_seconds(bytes: u64) -> u64 {
    bytes.div_ceil(ASSUMED_TRANSFER_BYTES_PER_SECOND)
}

/// `rate`: the assumed one, or a slower measured one.
fn derive_repl_timeout(dataset: u64, rate: u64) -> u64 {
    let wanted = dataset.div_ceil(rate.max(1)).saturating_mul(TIMEOUT_MARGIN);
    // Whole minutes read better in status and leave a little extra margin.
    wanted
        .div_ceil(60)
        .saturating_mul(60)
        .max(REPL_TIMEOUT_FLOOR_SECONDS)
}

/// A backlog larger than the dataset costs more memory than the full sync it would avoid,
/// so the dataset size caps it.
fn derive_backlog(write_rate: u64, dataset: u64) -> u64 {
    round_up_mib(write_rate.saturating_mul(BACKLOG_WINDOW_SECONDS))
        .min(round_up_mib(dataset))
        .max(BACKLOG_FLOOR_BYTES)
}

/// Writes arrive for the whole sync, which may last up to repl-timeout (the expected
/// transfer times [`TIMEOUT_MARGIN`]); the master must buffer them all or it drops the
/// replica and the sync starts over (the full-sync loop of redis/redis #4697). The rate is
/// the observed one when the data plane measured more than the assumption. The soft limit is off: a soft limit disconnects a replica that is
/// merely slow, mid-sync, which is the loop again.
fn derive_buffer_limit(
    input: &PolicyInput,
    dataset: u64,
    write_rate: u64,
    repl_timeout_seconds: u64,
    backlog_bytes: u64,
) -> BufferLimit {
    let wanted = round_up_mib(write_rate.saturating_mul(repl_timeout_seconds));
    let cap = buffer_cap(input, dataset, backlog_bytes);
    BufferLimit {
        hard_bytes: wanted.min(cap).max(BUFFER_FLOOR_BYTES),
        soft_bytes: 0,
        soft_seconds: 0,
    }
}

/// The most one replica's buffer may take before it risks the master's memory: the memory
/// limit's headroom shared by the replicas that may sync at once, or without a limit the
/// dataset size. That lets a sync under the heaviest writes at most double the master's
/// memory per syncing replica, what a fork's copy-on-write costs Redis; a smaller cap (it
/// was a quarter) makes a fast writer overflow the buffer, drop the replica and start the
/// sync over, with min-replicas-to-write refusing writes meanwhile.
fn buffer_cap(input: &PolicyInput, dataset: u64, backlog_bytes: u64) -> u64 {
    match input.memory_limit {
        Some(limit) => {
            let data = input.maxmemory.unwrap_or(0).max(dataset);
            let headroom = limit
                .saturating_sub(data)
                .saturating_sub(backlog_bytes)
                .saturating_sub(SERVER_OVERHEAD_BYTES);
            round_down_mib(headroom / u64::from(syncing_replicas(input.replicas)))
        }
        None => round_up_mib(dataset),
    }
}

/// Replicas that may be in a full sync at the same time (at least one, so a one-pod set
/// that is scaled up later is already tuned).
fn syncing_replicas(replicas: u32) -> u32 {
    replicas.saturating_sub(1).max(1)
}

fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

fn round_down_mib(bytes: u64) -> u64 {
    bytes / MIB * MIB
}

/// Why the pod's memory limit cannot hold what the tuning needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetFinding {
    /// Dataset + replica buffers + backlog + overhead exceed the limit.
    Exceeded {
        /// Bytes needed in the worst case (every replica in a full sync at once).
        needed: u64,
        /// The container's memory limit.
        limit: u64,
        /// max(maxmemory, dataset).
        data: u64,
        /// Replica output buffers at their hard limit, all replicas together.
        buffers: u64,
        /// repl-backlog-size.
        backlog: u64,
    },
    /// The replica output buffer has no hard limit, so no limit can be shown to hold.
    UnboundedBuffer {
        /// The container's memory limit.
        limit: u64,
    },
}

impl BudgetFinding {
    /// Condition and event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Exceeded { .. } => "MemoryBudgetExceeded",
            Self::UnboundedBuffer { .. } => "UnboundedReplicaBuffer",
        }
    }

    /// One line for the Degraded condition and the Warning event.
    pub fn message(&self) -> String {
        match self {
            Self::Exceeded {
                needed,
                limit,
                data,
                buffers,
                backlog,
            } => format!(
                "memory limit {} is below the {} a full sync can need: data {} + replica buffers {} + backlog {} + overhead {}; raise resources.limits.memory or lower the tuning",
                format_bytes(*limit),
                format_bytes(*needed),
                format_bytes(*data),
                format_bytes(*buffers),
                format_bytes(*backlog),
                format_bytes(SERVER_OVERHEAD_BYTES),
            ),
            Self::UnboundedBuffer { limit } => format!(
                "client-output-buffer-limit replica hard 0 is unlimited: a sync under heavy writes can exceed the memory limit {} and get the master OOM-killed",
                format_bytes(*limit)
            ),
        }
    }
}

/// Checks maxmemory (or the dataset) + replica buffers + backlog against the memory limit.
/// Without a limit there is nothing to check against.
pub fn memory_budget(input: &PolicyInput, plan: &Plan) -> Option<BudgetFinding> {
    let limit = input.memory_limit?;
    if input.replicas > 1 && plan.client_output_buffer_limit.hard_bytes == 0 {
        return Some(BudgetFinding::UnboundedBuffer { limit });
    }
    let dataset = input
        .observed
        .dataset_bytes
        .unwrap_or(0)
        .max(input.dataset_size_hint);
    let data = input.maxmemory.unwrap_or(0).max(dataset);
    let buffers = plan
        .client_output_buffer_limit
        .hard_bytes
        .saturating_mul(u64::from(input.replicas.saturating_sub(1)));
    let needed = data
        .saturating_add(buffers)
        .saturating_add(plan.backlog_bytes)
        .saturating_add(SERVER_OVERHEAD_BYTES);
    (needed > limit).then_some(BudgetFinding::Exceeded {
        needed,
        limit,
        data,
        buffers,
        backlog: plan.backlog_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::parse_bytes;

    fn input(hint: u64, replicas: u32, persistence: bool) -> PolicyInput {
        PolicyInput {
            dataset_size_hint: hint,
            replicas,
            persistence,
            ..PolicyInput::default()
        }
    }

    #[test]
    fn the_seed_dataset_syncs_diskless_with_a_long_timeout() {
        let plan = plan(&input(20 * GIB, 2, true));
        assert_eq!(plan.mode, SyncMode::Diskless);
        assert_eq!(plan.repl_timeout_seconds, 2100);
        assert_eq!(plan.diskless_sync_delay_seconds, 0);
        assert!(
            plan.reason
                .starts_with("datasetSizeHint 20Gi >= 1Gi: diskless"),
            "{}",
            plan.reason
        );
        assert!(plan.overrides.is_empty());
    }

    #[test]
    fn small_persistent_data_uses_disk_and_small_volatile_data_diskless() {
        assert_eq!(plan(&input(100 * MIB, 3, true)).mode, SyncMode::Disk);
        assert_eq!(plan(&input(100 * MIB, 3, false)).mode, SyncMode::Diskless);
        assert_eq!(plan(&input(GIB - 1, 3, true)).mode, SyncMode::Disk);
        assert_eq!(plan(&input(GIB, 3, true)).mode, SyncMode::Diskless);
    }

    #[test]
    fn timeout_has_a_floor_and_grows_with_size() {
        assert_eq!(plan(&input(0, 1, false)).repl_timeout_seconds, 60);
        assert_eq!(plan(&input(GIB, 1, false)).repl_timeout_seconds, 120);
        let big = plan(&input(100 * GIB, 1, false)).repl_timeout_seconds;
        assert_eq!(big, 10260);
        // Never shorter than the transfer at the assumed bandwidth.
        assert!(big >= 100 * GIB / ASSUMED_TRANSFER_BYTES_PER_SECOND);
    }

    #[test]
    fn buffer_covers_writes_for_the_whole_sync_but_is_capped() {
        let mut i = input(20 * GIB, 3, false);
        i.observed.write_bytes_per_second = Some(2 * MIB);
        let p = plan(&i);
        assert_eq!(p.client_output_buffer_limit.hard_bytes, 4200 * MIB);
        assert_eq!(p.client_output_buffer_limit.soft_bytes, 0);
        assert_ne!(
            p.client_output_buffer_limit.hard_bytes, 0,
            "never the blind 0 0 0"
        );

        // A flood of writes hits the dataset cap.
        i.observed.write_bytes_per_second = Some(100 * MIB);
        assert_eq!(plan(&i).client_output_buffer_limit.hard_bytes, 20 * GIB);

        // With a memory limit the headroom is shared by the two replicas:
        // (32Gi - 20Gi data - 1200Mi backlog - 64Mi overhead) / 2 = 5512Mi.
        i.observed.write_bytes_per_second = Some(4 * MIB);
        i.memory_limit = Some(32 * GIB);
        let p = plan(&i);
        assert_eq!(p.backlog_bytes, 1200 * MIB);
        assert_eq!(p.client_output_buffer_limit.hard_bytes, 5512 * MIB);
        assert_eq!(memory_budget(&i, &p), None);
    }

    #[test]
    fn an_observed_write_rate_sizes_the_buffer_within_bounds() {
        // The issue-8 case: 1Gi without persistence, a full-speed writer. The assumed
        // 1 MiB/s gives the 256Mi floor, which such a writer overflowed.
        let mut i = input(GIB, 3, false);
        assert_eq!(plan(&i).client_output_buffer_limit.hard_bytes, 256 * MIB);

        // 4 MiB/s for repl-timeout 120 s: 480Mi.
        i.observed.write_bytes_per_second = Some(4 * MIB);
        let p = plan(&i);
        assert_eq!(p.client_output_buffer_limit.hard_bytes, 480 * MIB);
        assert!(
            p.reason.contains("observed write rate 4Mi/s"),
            "{}",
            p.reason
        );
        // 64 MiB/s would want 7.5Gi: bounded by the dataset.
        i.observed.write_bytes_per_second = Some(64 * MIB);
        assert_eq!(plan(&i).client_output_buffer_limit.hard_bytes, GIB);
        // ... and by a memory limit's headroom: 3Gi - 1Gi - backlog 1Gi - 64Mi, over 2.
        i.memory_limit = Some(3 * GIB);
        assert_eq!(
            plan(&i).client_output_buffer_limit.hard_bytes,
            (3 * GIB - GIB - GIB - 64 * MIB) / 2
        );
    }

    #[test]
    fn startup_budget_scales_with_the_dataset() {
        assert_eq!(startup_budget_seconds(0, false), 120);
        assert_eq!(startup_budget_seconds(GIB, false), 120);
        assert_eq!(startup_budget_seconds(20 * GIB, false), 2048);
        assert_eq!(startup_budget_seconds(20 * GIB, true), 4096);
    }

    #[test]
    fn delay_is_zero_for_one_replica_and_short_for_several() {
        assert_eq!(plan(&input(GIB, 2, false)).diskless_sync_delay_seconds, 0);
        assert_eq!(
            plan(&input(GIB, 4, false)).diskless_sync_delay_seconds,
            SEVERAL_REPLICAS_SYNC_DELAY_SECONDS
        );
    }

    #[test]
    fn backlog_holds_five_minutes_of_writes() {
        assert_eq!(plan(&input(GIB, 2, false)).backlog_bytes, 300 * MIB);
        let mut i = input(GIB, 2, false);
        i.observed.write_bytes_per_second = Some(1000);
        assert_eq!(plan(&i).backlog_bytes, BACKLOG_FLOOR_BYTES);
    }

    #[test]
    fn empty_replicas_load_from_the_socket() {
        assert_eq!(
            plan(&input(GIB, 2, false)).diskless_load,
            DisklessLoad::OnEmptyDb
        );
        assert_eq!(
            plan(&input(GIB, 2, true)).diskless_load,
            DisklessLoad::Disabled
        );
    }

    #[test]
    fn overrides_win_and_are_reported() {
        let mut i = input(20 * GIB, 3, true);
        i.overrides = Overrides {
            mode: Some(SyncMode::Disk),
            repl_timeout_seconds: Some(1800),
            diskless_sync_delay_seconds: Some(0),
            client_output_buffer_limit: Some(BufferLimit {
                hard_bytes: 0,
                soft_bytes: 0,
                soft_seconds: 0,
            }),
            backlog_bytes: Some(256 * MIB),
            min_replicas_to_write: Some(0),
        };
        let p = plan(&i);
        assert_eq!(p.mode, SyncMode::Disk);
        assert_eq!(p.repl_timeout_seconds, 1800);
        assert_eq!(p.diskless_sync_delay_seconds, 0);
        assert_eq!(
            p.client_output_buffer_limit.directive_value(),
            "replica 0 0 0"
        );
        assert_eq!(p.backlog_bytes, 256 * MIB);
        assert_eq!(p.min_replicas_to_write, 0);
        assert_eq!(
            p.reason,
            "mode Disk set in spec.replication; overridden: mode, replTimeoutSeconds, \
             disklessSyncDelaySeconds, clientOutputBufferLimit, backlogSize, minReplicasToWrite"
        );
        i.memory_limit = Some(64 * GIB);
        let finding = memory_budget(&i, &p).expect("unbounded buffer");
        assert_eq!(finding.reason(), "UnboundedReplicaBuffer");
    }

    #[test]
    fn observed_dataset_larger_than_the_hint_wins() {
        let mut i = input(512 * MIB, 2, true);
        i.observed.dataset_bytes = Some(2 * GIB);
        let p = plan(&i);
        assert_eq!(p.mode, SyncMode::Diskless);
        assert!(
            p.reason.starts_with("observed dataset 2Gi >= 1Gi"),
            "{}",
            p.reason
        );
        assert!(
            p.reason
                .ends_with("sized for the observed dataset 2Gi (hint 512Mi)"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn budget_flags_a_limit_below_the_dataset() {
        let mut i = input(20 * GIB, 3, false);
        i.memory_limit = Some(16 * GIB);
        let p = plan(&i);
        assert_eq!(p.client_output_buffer_limit.hard_bytes, BUFFER_FLOOR_BYTES);
        let finding = memory_budget(&i, &p).expect("over budget");
        assert_eq!(finding.reason(), "MemoryBudgetExceeded");
        assert!(
            finding
                .message()
                .starts_with("memory limit 16Gi is below the 21356Mi"),
            "{}",
            finding.message()
        );
    }

    #[test]
    fn directives_are_redis_conf_lines() {
        let p = plan(&input(20 * GIB, 3, false));
        let lines: Vec<String> = p
            .directives()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        assert_eq!(
            lines,
            [
                "repl-diskless-sync yes",
                "repl-diskless-sync-delay 5",
                "repl-diskless-load on-empty-db",
                "repl-timeout 2100",
                "repl-backlog-size 314572800",
                "client-output-buffer-limit replica 2202009600 0 0",
                "min-replicas-to-write 1",
                "min-replicas-max-lag 10",
                "shutdown-timeout 10",
                "shutdown-handover-timeout 30",
            ]
        );
    }

    #[test]
    fn the_grace_period_covers_the_handover_the_replicas_wait_and_the_final_save() {
        assert_eq!(
            termination_grace_seconds(64 * MIB, false),
            30 + 10 + 5,
            "no save without snapshots"
        );
        assert_eq!(
            termination_grace_seconds(20 * GIB, true),
            30 + 10 + 2048 + 5,
            "20Gi at 20 MiB/s is 1024 s, twice for the margin"
        );
        assert!(termination_grace_seconds(u64::MAX, true) >= HANDOVER_WAIT_SECONDS);
    }

    #[test]
    fn a_slower_measured_transfer_rate_stretches_the_timeout_and_a_faster_one_does_not() {
        let mut i = input(GIB, 2, true);
        assert_eq!(plan(&i).repl_timeout_seconds, 120, "1 GiB at 20 MiB/s, x2");
        i.observed.transfer_bytes_per_second = Some(4 * MIB);
        let slow = plan(&i);
        assert_eq!(
            slow.repl_timeout_seconds, 540,
            "1 GiB at 4 MiB/s is 256 s, x2"
        );
        assert!(
            slow.reason
                .ends_with("; timeouts sized for the measured transfer rate 4Mi/s"),
            "{}",
            slow.reason
        );
        i.observed.transfer_bytes_per_second = Some(512 * MIB);
        let fast = plan(&i);
        assert_eq!(
            fast.repl_timeout_seconds, 120,
            "a fast sync once is no promise"
        );
        assert!(!fast.reason.contains("measured transfer rate"));
    }

    /// docs/tuning.md's table of inputs -> outputs is checked row by row against [`plan`] and
    /// [`memory_budget`], so the documentation cannot drift from the code.
    #[test]
    fn docs_tuning_table_matches_the_policy() {
        let doc = include_str!("../../docs/tuning.md");
        let table = doc
            .split("<!-- policy-table:begin -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- policy-table:end -->").next())
            .expect("docs/tuning.md has the policy-table markers");
        let rows: Vec<Vec<&str>> = table
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        assert!(rows.len() >= 8, "the table should cover the rules");
        let mut failures = Vec::new();
        for row in rows {
            let [
                hint,
                replicas,
                persistence,
                write_rate,
                limit,
                expected @ ..,
            ] = row.as_slice()
            else {
                panic!("row {row:?} has too few cells");
            };
            let mut i = PolicyInput {
                dataset_size_hint: parse_bytes(hint).expect("hint"),
                replicas: replicas.parse().expect("replicas"),
                persistence: *persistence == "yes",
                ..PolicyInput::default()
            };
            if *write_rate != "-" {
                let rate = write_rate.trim_end_matches("/s");
                i.observed.write_bytes_per_second = Some(parse_bytes(rate).expect("rate"));
            }
            if *limit != "-" {
                i.memory_limit = Some(parse_bytes(limit).expect("limit"));
            }
            let p = plan(&i);
            let got = [
                format!("{:?}", p.mode),
                p.repl_timeout_seconds.to_string(),
                p.diskless_sync_delay_seconds.to_string(),
                format_bytes(p.client_output_buffer_limit.hard_bytes),
                format_bytes(p.backlog_bytes),
                p.diskless_load.as_str().to_owned(),
                p.min_replicas_to_write.to_string(),
                memory_budget(&i, &p)
                    .map_or("ok", |f| f.reason())
                    .to_owned(),
                p.maxmemory_bytes.map_or("-".to_owned(), format_bytes),
            ];
            if got.iter().map(String::as_str).ne(expected.iter().copied()) {
                failures.push(format!(
                    "| {hint} | {replicas} | {persistence} | {write_rate} | {limit} | {} |",
                    got.join(" | ")
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "docs/tuning.md table differs from the policy; the code computes:\n{}",
            failures.join("\n")
        );
    }
}
