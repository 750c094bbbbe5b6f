//! The persistence state of the server: what SAVE/BGSAVE and the loads act on and INFO
//! persistence reports. The behaviour is in `crate::persistence` (save, load); this module
//! declares the records so that the server state, replication and the commands can name
//! them without importing that behaviour.

use crate::rdb::RdbError;
use crate::rdb::producer::{RdbProducer, SnapshotLost};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{Notify, oneshot};

/// Persistence state of the server.
#[derive(Debug)]
pub struct Persistence {
    /// The BGSAVE in progress.
    pub bgsave: Option<BgSave>,
    /// A diskless full sync is walking the keyspace snapshot (the other owner of the single
    /// snapshot, like Redis's child with `RDB_CHILD_TYPE_SOCKET`).
    pub repl_snapshot: bool,
    /// The id of the last background save that ended and whether it succeeded: replicas
    /// waiting for that save learn its outcome here (a killed save counts as failed).
    pub last_job: (u64, bool),
    /// The id and outcome of the last background save of a file other than the dump (an
    /// AOF rewrite's base), until its owner takes it.
    pub other_done: Option<(u64, Result<u64, String>)>,
    /// BGSAVE SCHEDULE arrived while a save was running: start one when it ends.
    pub scheduled: bool,
    /// Whether the last background save (or SAVE) succeeded (`rdb_last_bgsave_status`).
    pub last_bgsave_ok: bool,
    /// Duration of the last BGSAVE in seconds, -1 before the first.
    pub last_bgsave_time_sec: i64,
    /// Unix seconds of the last BGSAVE attempt: a failed one is retried by save points only
    /// after `BGSAVE_RETRY_DELAY_S` (persistence::save).
    pub last_bgsave_try: u64,
    /// SAVE and BGSAVE runs (`rdb_saves`).
    pub rdb_saves: u64,
    /// The start-up load, or a replica's load of its master's payload, in progress.
    pub loading: Option<Loading>,
    /// A replica loads its master's payload while serving the old data (`swapdb` on the
    /// same replication history; INFO's `async_loading`).
    pub async_loading: bool,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// The replication id and offset the loaded dump was written at, for a later partial
    /// resynchronisation.
    pub loaded_repl: Option<(String, i64)>,
    /// Wakes the BGSAVE driver task.
    pub wake: Rc<tokio::sync::Notify>,
}

impl Persistence {
    /// Whether the keyspace snapshot is taken (a BGSAVE or a diskless sync runs): only one
    /// can exist, so SAVE, BGSAVE and save points must wait.
    pub fn snapshot_busy(&self) -> bool {
        self.bgsave.is_some() || self.repl_snapshot
    }
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            bgsave: None,
            repl_snapshot: false,
            last_job: (0, false),
            other_done: None,
            scheduled: false,
            last_bgsave_ok: true,
            last_bgsave_time_sec: -1,
            last_bgsave_try: 0,
            rdb_saves: 0,
            loading: None,
            async_loading: false,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            loaded_repl: None,
            wake: Rc::new(tokio::sync::Notify::new()),
        }
    }
}

/// A background save in progress.
pub struct BgSave {
    pub(crate) id: u64,
    pub(crate) producer: RdbProducer,
    pub started: Instant,
    pub(crate) dirty_before: u64,
    pub(crate) tx: Option<SyncSender<Chunk>>,
    /// A chunk the full channel did not take yet.
    pub(crate) pending: Option<Chunk>,
    pub(crate) space: Arc<Notify>,
    pub(crate) result: Option<oneshot::Receiver<Result<u64, SaveError>>>,
    pub(crate) thread: Option<JoinHandle<()>>,
    /// The replication id and offset at the snapshot instant, when the backlog was
    /// recording the stream then: a replica attaching to this save gets them in
    /// `+FULLRESYNC` and the stream from that offset out of the backlog. `None` (no backlog,
    /// or started inside EXEC): the stream after the offset would not match the snapshot,
    /// so no replica can attach.
    pub(crate) start: Option<(String, u64)>,
    /// The file is not the dump (an AOF base): its outcome goes to
    /// [`Persistence::other_done`] instead of the dump's bookkeeping.
    pub(crate) other: bool,
}

impl std::fmt::Debug for BgSave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgSave").field("id", &self.id).finish()
    }
}

impl BgSave {
    /// (keys processed, keys total) of the snapshot.
    pub fn progress(&self, ks: &crate::keyspace::Keyspace) -> (u64, u64) {
        self.producer.progress(ks)
    }

    /// This save's number (`rdb_saves` when it started), matched against
    /// [`Persistence::last_job`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The replication id and offset the snapshot was taken at, if the backlog holds the
    /// stream since.
    pub fn start(&self) -> Option<(&str, u64)> {
        self.start.as_ref().map(|(id, off)| (id.as_str(), *off))
    }
}

/// A chunk for the writer thread; `last` closes the stream.
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub last: bool,
}

/// Why a save failed; the texts follow Redis's log lines.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(
        "Failed opening the temp RDB file {tmp} (in server root dir {dir}) for saving: {source}"
    )]
    Open {
        tmp: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("Write error saving DB on disk: {}", strerror(.0))]
    Write(#[source] std::io::Error),
    #[error(
        "Error moving temp DB file {tmp} on the final destination {dest} (in server root dir {dir}): {source}"
    )]
    Rename {
        tmp: String,
        dest: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("Failed to fsync directory while saving DB: {}", strerror(.0))]
    FsyncDir(#[source] std::io::Error),
    #[error("{0}")]
    Snapshot(#[from] SnapshotLost),
    #[error("the save was aborted")]
    Aborted,
    #[error("the RDB writer thread stopped unexpectedly")]
    WriterGone,
}

/// An I/O error as C's `strerror` words it (Redis's logs), without Rust's " (os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl From<RdbError> for SaveError {
    fn from(e: RdbError) -> Self {
        match e {
            RdbError::Write(io) => SaveError::Write(io),
            other => SaveError::Write(std::io::Error::other(other.to_string())),
        }
    }
}

/// Progress of the load in progress (INFO persistence's `loading_*` fields).
#[derive(Debug, Clone)]
pub struct Loading {
    pub start_unix: u64,
    pub started: Instant,
    pub total_bytes: u64,
    pub loaded_bytes: u64,
    /// `used-mem` from the dump's AUX fields.
    pub rdb_used_mem: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_strerror() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(strerror(&e), "No such file or directory");
        assert_eq!(strerror(&std::io::Error::other("plain")), "plain");
    }
}

/// SHUTDOWN's options (ABORT is handled by the command).
#[derive(Debug, Default, Clone, Copy)]
pub struct ShutdownOptions {
    pub nosave: bool,
    pub save: bool,
    /// Do not wait for replicas to catch up.
    pub now: bool,
    /// Exit even when the final save fails.
    pub force: bool,
}

/// A SIGTERM waiting for a replica to take the master role over before the shutdown
/// begins (`shutdown-handover-timeout`, see `crate::shutdown`).
#[derive(Debug, Clone)]
pub struct HandoverWait {
    pub opts: ShutdownOptions,
    /// Unix ms when it stops waiting and begins the shutdown anyway.
    pub deadline_ms: u64,
}

/// A shutdown waiting for replicas to catch up (see `crate::shutdown`).
#[derive(Debug, Clone)]
pub struct ShutdownWait {
    pub opts: ShutdownOptions,
    /// Unix ms when it stops waiting and shuts down anyway.
    pub deadline_ms: u64,
    /// Clients blocked in SHUTDOWN (none for a signal).
    pub clients: Vec<u64>,
}
