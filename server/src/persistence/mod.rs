//! Persistence: the RDB format, the point-in-time RDB stream of the keyspace, and Redis 7.0's
//! SAVE/BGSAVE/load behaviour on top of them.
//!
//! - [`rdb`] is the byte-exact Redis 7.0 RDB format; it stays independent of the keyspace so
//!   files and replication payloads can be read and written without a running server.
//! - [`convert`] maps keyspace values to the writer's calls and loaded values back.
//! - [`producer`] turns a fork-less snapshot of every database into RDB bytes while the
//!   server keeps running: the disk writer consumes it, and so will diskless replication.
//! - [`save`] drives SAVE, BGSAVE, save points and the dump file (temp file, fsync, rename).
//! - [`load`] loads the dump at start-up, in the LOADING state.
//!
//! [`Persistence`] is the state INFO persistence reports. Nothing here parses commands: the
//! command handlers live in `cmd/persistence.rs`.

pub mod convert;
pub mod load;
pub mod producer;
pub mod rdb;
pub mod save;

use std::rc::Rc;

/// Persistence state of the server.
#[derive(Debug)]
pub struct Persistence {
    /// The BGSAVE in progress.
    pub bgsave: Option<save::BgSave>,
    /// A diskless full sync is walking the keyspace snapshot (the other owner of the single
    /// snapshot, like Redis's child with `RDB_CHILD_TYPE_SOCKET`).
    pub repl_snapshot: bool,
    /// The id of the last background save that ended and whether it succeeded: replicas
    /// waiting for that save learn its outcome here (a killed save counts as failed).
    pub last_job: (u64, bool),
    /// BGSAVE SCHEDULE arrived while a save was running: start one when it ends.
    pub scheduled: bool,
    /// Whether the last background save (or SAVE) succeeded (`rdb_last_bgsave_status`).
    pub last_bgsave_ok: bool,
    /// Duration of the last BGSAVE in seconds, -1 before the first.
    pub last_bgsave_time_sec: i64,
    /// Unix seconds of the last BGSAVE attempt: a failed one is retried by save points only
    /// after [`save::BGSAVE_RETRY_DELAY_S`].
    pub last_bgsave_try: u64,
    /// SAVE and BGSAVE runs (`rdb_saves`).
    pub rdb_saves: u64,
    /// The start-up load, or a replica's load of its master's payload, in progress.
    pub loading: Option<load::Loading>,
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
