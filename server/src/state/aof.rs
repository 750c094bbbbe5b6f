//! The append-only file's state: what the writer, the rewrite, the commands and INFO
//! persistence share. The behaviour is in `crate::aof`; this module declares the records so
//! that the server state can hold them without importing that behaviour.

use crate::aof::manifest::Manifest;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Redis's `aof_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AofState {
    #[default]
    Off,
    On,
    /// Turned on live: the first rewrite writes the base; commands go to a temp
    /// incremental file that becomes the first incremental file when the rewrite ends.
    WaitRewrite,
}

/// The append-only file's state.
#[derive(Debug, Default)]
pub struct Aof {
    pub state: AofState,
    pub manifest: Manifest,
    /// The incremental file commands are appended to.
    pub file: Option<Arc<File>>,
    /// Its name, for logs.
    pub file_name: String,
    /// Bytes written to the current incremental file (`aof_last_incr_size`).
    pub incr_size: u64,
    /// Size of the base and incremental files (`aof_current_size`).
    pub current_size: u64,
    /// `aof_current_size` when the last rewrite ended (`aof_base_size`), the reference of
    /// `auto-aof-rewrite-percentage`.
    pub base_size: u64,
    /// Shared with the fsync thread.
    pub sync: Option<Arc<SyncShared>>,
    pub sync_thread: Option<JoinHandle<()>>,
    /// The rewrite running now (it owns the keyspace snapshot, as a BGSAVE does).
    pub rewrite: Option<Rewrite>,
    /// BGREWRITEAOF arrived while the snapshot was taken: run it when that ends.
    pub rewrite_scheduled: bool,
    /// Seconds the last rewrite took, `None` before the first.
    pub last_rewrite_time_sec: Option<i64>,
    /// The last rewrite failed (`aof_last_bgrewrite_status:err`).
    pub last_bgrewrite_failed: bool,
    pub rewrites: u64,
    /// Rewrites started (their save ids).
    pub rewrites_started: u64,
    pub rewrites_consecutive_failures: u64,
    /// The last write to the file failed: writes are refused (`-MISCONF`) until one
    /// succeeds; `last_write_errno` is its errno.
    pub write_failed: bool,
    pub last_write_errno: i32,
    /// Bytes a failed write left, written first by the next attempt.
    pub unwritten: Vec<u8>,
    /// Unix ms of the last fsync request of `everysec`.
    pub last_fsync_ms: u64,
    /// Unix seconds since when writes have found the `everysec` fsync still running, 0 when
    /// they have not (Redis's `aof_flush_postponed_start`).
    pub fsync_busy_since_s: u64,
    /// Writes made while an `everysec` fsync had been running for two seconds or more
    /// (`aof_delayed_fsync`).
    pub delayed_fsync: u64,
    /// The back-off of automatic rewrites after repeated failures.
    pub rewrite_limit: RewriteLimit,
}

/// Redis's `aofRewriteLimited` state: after three consecutive failed rewrites, automatic and
/// scheduled ones wait 1, 2, 4 ... up to 60 minutes between attempts.
#[derive(Debug, Default)]
pub struct RewriteLimit {
    /// The delay of the current wait, 0 when not limited.
    pub delay_minutes: u64,
    /// Unix seconds when the next attempt may start, 0 when none is waited for.
    pub next_at_s: u64,
}

impl Aof {
    /// Whether the AOF is on or waiting for its first rewrite (Redis's `aof_state != AOF_OFF`).
    pub fn enabled(&self) -> bool {
        self.state != AofState::Off
    }

    /// Whether an append acknowledged now is on disk only once the fsync thread reached
    /// `offset` (`appendfsync always`).
    pub fn synced_to(&self, offset: u64) -> bool {
        self.sync
            .as_ref()
            .is_none_or(|s| s.synced.load(Ordering::Acquire) >= offset)
    }
}

/// An AOF rewrite in progress.
#[derive(Debug)]
pub struct Rewrite {
    /// The BGSAVE machinery's save id that writes the new base.
    pub job: u64,
    pub started: Instant,
    /// The base file's name once the rewrite commits.
    pub base_name: String,
}

/// What the main thread and the fsync thread share. Offsets count bytes written to the
/// incremental files since start-up (a new file does not reset them).
#[derive(Debug, Default)]
pub struct SyncShared {
    /// Bytes handed to `write(2)`.
    pub written: AtomicU64,
    /// Bytes known to be on disk.
    pub synced: AtomicU64,
    /// The fsync thread is asked to sync the file up to `written`.
    pub request: Mutex<SyncRequest>,
    pub wake: Condvar,
    /// Woken after each fsync, for clients waiting under `appendfsync always`.
    pub done: tokio::sync::Notify,
    /// The last fsync failed (errno), as Redis's `aof_bio_fsync_status`.
    pub failed_errno: AtomicI32,
    /// An fsync is running (`aof_pending_bio_fsync`).
    pub in_progress: AtomicBool,
}

/// A request to the fsync thread.
#[derive(Debug, Default)]
pub struct SyncRequest {
    pub file: Option<Arc<File>>,
    /// Sync up to this offset (0: nothing asked).
    pub upto: u64,
    /// A failed fsync stops the server (`appendfsync always`).
    pub fatal: bool,
    pub stop: bool,
}
