//! Loading the dump at start-up, as Redis 7.0 does: while it runs the server is in the
//! LOADING state (commands without the LOADING flag get `-LOADING`), keys that already
//! expired are dropped on a master, and a file that is corrupt, truncated or holds a key
//! twice is refused with the reader's error (check and byte offset). The caller then exits:
//! partial data is never served.
//!
//! The load runs on the main thread in batches with a yield between them, so clients get
//! their `-LOADING` replies and INFO shows the progress. It must not decide what happens
//! after a failure: `main` logs the error and exits non-zero.

use std::fs::File;
use std::time::Instant;

use tracing::{info, warn};

use crate::keyspace::{Entry, SmallBytes};
use crate::rdb::convert::{LoadLimits, from_rdb};
use crate::rdb::{Item, RdbError, RdbReader};
use crate::state::Server;
use crate::state::Shared;
use crate::state::persistence::Loading;

/// Items loaded between two yields to the clients.
const BATCH: usize = 1024;

/// Why the dump was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to open the RDB file {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Rdb(#[from] RdbError),
    /// The checksum covers the whole file: the offset is where the trailer ends.
    #[error("{source} (RDB trailer at byte {offset})")]
    Checksum { source: RdbError, offset: u64 },
    #[error("RDB has duplicated key '{key}' in DB {db} (at byte {offset})")]
    Duplicate { key: String, db: u32, offset: u64 },
    /// Redis refuses the whole dump when a library fails to load.
    #[error("Failed loading library, {0}")]
    Library(String),
}

/// What a successful load did.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    pub keys_loaded: u64,
    pub keys_expired: u64,
}

/// Opens `dir/dbfilename` and enters the LOADING state; `Ok(None)` when there is no dump.
/// Called before the server accepts clients, so none sees it outside the LOADING state.
///
/// # Errors
/// The file exists but cannot be opened.
pub fn open_dump(srv: &mut Server) -> Result<Option<File>, LoadError> {
    remove_stale_temp_files(std::path::Path::new(&srv.config.dir));
    let path = std::path::Path::new(&srv.config.dir).join(&srv.config.dbfilename);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Open {
                path: path.display().to_string(),
                source,
            });
        }
    };
    srv.persistence.loading = Some(Loading {
        start_unix: crate::clock::now_ms() / 1000,
        started: Instant::now(),
        total_bytes: file.metadata().map_or(0, |m| m.len()),
        loaded_bytes: 0,
        rdb_used_mem: 0,
    });
    Ok(Some(file))
}

/// Loads the dump opened by [`open_dump`] into the (empty) keyspace and leaves the LOADING
/// state.
///
/// # Errors
/// The file is refused; the keyspace is emptied again.
pub async fn load(state: &Shared, file: File) -> Result<LoadStats, LoadError> {
    let started = Instant::now();
    let res = load_file(state, file).await;
    let mut srv = state.borrow_mut();
    srv.persistence.loading = None;
    match res {
        Ok(stats) => {
            info!(
                "Done loading RDB, keys loaded: {}, keys expired: {}.",
                stats.keys_loaded, stats.keys_expired
            );
            info!(
                "DB loaded from disk: {:.3} seconds",
                started.elapsed().as_secs_f64()
            );
            srv.persistence.last_load_keys_loaded = stats.keys_loaded;
            srv.persistence.last_load_keys_expired = stats.keys_expired;
            Ok(stats)
        }
        Err(e) => {
            srv.keyspace.flush_all();
            srv.scripts.functions.libraries.take_all();
            Err(e)
        }
    }
}

async fn load_file(state: &Shared, file: File) -> Result<LoadStats, LoadError> {
    let databases = state.borrow().keyspace.num_dbs() as u32;
    let mut reader = RdbReader::new(file)?.with_max_databases(databases);
    load_items(&mut Access::Shared(state), &mut reader).await
}

/// How a load reaches the server: through the shared state, yielding to the clients
/// between batches (start-up), or with the server already held by a command that loads
/// while it waits (DEBUG LOADAOF, which blocks the server as in Redis).
pub enum Access<'a> {
    Shared(&'a Shared),
    Held(&'a mut Server),
}

impl Access<'_> {
    /// Runs `f` on the server.
    pub fn with<T>(&mut self, f: impl FnOnce(&mut Server) -> T) -> T {
        match self {
            Access::Shared(s) => f(&mut s.borrow_mut()),
            Access::Held(srv) => f(srv),
        }
    }

    /// Lets the clients in between two batches (only when the server is not held).
    pub async fn pause(&self) {
        if let Access::Shared(_) = self {
            tokio::task::yield_now().await;
        }
    }
}

/// Runs a load over [`Access::Held`] to its end: it never waits (its pauses are empty), so
/// polling completes it.
pub fn run_held<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Loads every item of an RDB stream into the keyspace, in batches with a yield between
/// them (the dump, or the RDB base file of the AOF). The reader stays usable after the
/// trailer: an old-style AOF continues with commands there.
///
/// # Errors
/// The stream is refused; what was loaded stays (the caller empties the keyspace).
pub async fn load_items<R: std::io::Read>(
    access: &mut Access<'_>,
    reader: &mut RdbReader<R>,
) -> Result<LoadStats, LoadError> {
    let mut stats = LoadStats {
        keys_loaded: 0,
        keys_expired: 0,
    };
    let mut finished = false;
    while !finished {
        access.with(|srv| -> Result<(), LoadError> {
            let now = crate::clock::now_ms();
            let master = srv.config.replicaof.is_none();
            for _ in 0..BATCH {
                let next = reader.next_item().map_err(|e| match e {
                    RdbError::ChecksumMismatch { .. } => LoadError::Checksum {
                        source: e,
                        offset: reader.offset(),
                    },
                    other => LoadError::Rdb(other),
                });
                let Some(item) = next? else {
                    finished = true;
                    break;
                };
                apply(srv, item, now, master, reader.offset(), &mut stats)?;
            }
            if let Some(l) = srv.persistence.loading.as_mut() {
                l.loaded_bytes = reader.offset();
            }
            Ok(())
        })?;
        access.pause().await;
    }
    let aux = reader.aux();
    if let (Some(id), Some(offset)) = (&aux.repl_id, aux.repl_offset) {
        access.with(|srv| srv.persistence.loaded_repl = Some((id.clone(), offset)));
    }
    Ok(stats)
}

/// Applies one item of the dump.
fn apply(
    srv: &mut Server,
    item: Item,
    now: u64,
    master: bool,
    offset: u64,
    stats: &mut LoadStats,
) -> Result<(), LoadError> {
    match item {
        Item::Aux { key, value } => aux_log(srv, &key, &value, now),
        Item::Function(code) => load_library(srv, &code)?,
        Item::SelectDb(_) | Item::ResizeDb { .. } => {}
        Item::Entry(e) => {
            // As Redis: an expired key is dropped before the duplicate check.
            if master && e.expire_ms.is_some_and(|t| t < now) {
                stats.keys_expired += 1;
                return Ok(());
            }
            let db = srv.keyspace.db_mut(e.db as usize);
            if db.find(&e.key).is_some() {
                return Err(LoadError::Duplicate {
                    key: String::from_utf8_lossy(&e.key).into_owned(),
                    db: e.db,
                    offset,
                });
            }
            let key = SmallBytes::from_vec(e.key);
            let value = from_rdb(e.value, LoadLimits::from_config(&srv.config));
            let i = db.insert(Entry::new(key, value));
            if e.expire_ms.is_some() {
                db.set_expire(i, e.expire_ms);
            }
            stats.keys_loaded += 1;
        }
    }
    Ok(())
}

/// Creates a library of the dump (no time limit, and a name given twice is an error, as
/// in Redis's load).
fn load_library(srv: &mut Server, code: &[u8]) -> Result<(), LoadError> {
    let f = &mut srv.scripts.functions;
    let lua = crate::scripting::functions::interpreter(f)
        .map_err(|e| LoadError::Library(e.to_string()))?;
    crate::scripting::functions::create(&lua, &mut f.libraries, code, false, None)
        .map_err(LoadError::Library)?;
    Ok(())
}

/// Logs the AUX fields Redis logs while loading.
fn aux_log(srv: &mut Server, key: &[u8], value: &[u8], now: u64) {
    let text = String::from_utf8_lossy(value);
    match key {
        b"redis-ver" => info!("Loading RDB produced by version {text}"),
        b"ctime" => {
            if let Ok(t) = text.parse::<i64>() {
                let age = (now / 1000) as i64 - t;
                info!("RDB age {age} seconds");
            }
        }
        b"used-mem" => {
            if let Ok(m) = text.parse::<u64>() {
                info!(
                    "RDB memory usage when created {:.2} Mb",
                    m as f64 / (1024.0 * 1024.0)
                );
                if let Some(l) = srv.persistence.loading.as_mut() {
                    l.rdb_used_mem = m;
                }
            }
        }
        _ => {}
    }
}

/// Deletes the temp files a killed process left in `dir` (a save or a replica's transfer
/// interrupted by SIGKILL or a crash): each is as large as the dataset, and a server that
/// crashes repeatedly would otherwise fill its disk. A file is stale when the process named
/// in it is gone or is this one (in a container every restart has the same pid); called at
/// start-up, before this process writes any.
fn remove_stale_temp_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_file_pid(&name) else {
            continue;
        };
        if pid == me || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(e.path()) {
                Ok(()) => info!("Removed {name}, left by an interrupted save or sync"),
                Err(err) => warn!("Could not remove the stale temp file {name}: {err}"),
            }
        }
    }
}

/// The pid in the name of a temp file this server writes: `temp-<pid>.rdb` (SAVE),
/// `temp-<pid>-<n>.rdb` (BGSAVE), `temp-<unixtime>.<pid>.rdb` (a replica's transfer, as
/// Redis names it).
fn temp_file_pid(name: &str) -> Option<u32> {
    let stem = name.strip_prefix("temp-")?.strip_suffix(".rdb")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pid = match (stem.split_once('.'), stem.split_once('-')) {
        (Some((time, pid)), None) if digits(time) => pid,
        (None, Some((pid, n))) if digits(n) => pid,
        (None, None) => stem,
        _ => return None,
    };
    if !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_names_give_their_pid() {
        assert_eq!(temp_file_pid("temp-42.rdb"), Some(42));
        assert_eq!(temp_file_pid("temp-42-7.rdb"), Some(42));
        assert_eq!(temp_file_pid("temp-1795701940.24811.rdb"), Some(24811));
        for other in [
            "dump.rdb",
            "temp-.rdb",
            "temp-x.rdb",
            "temp-42.rdb.bak",
            "temp-1.2-3.rdb",
        ] {
            assert_eq!(temp_file_pid(other), None, "{other}");
        }
    }

    #[test]
    fn stale_temp_files_are_removed_and_others_kept() {
        let dir = std::env::temp_dir().join(format!("tandem-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let me = std::process::id();
        // pid_max is at most 2^22: this pid cannot be running.
        let gone = "temp-1795701940.4194305.rdb";
        let mine = format!("temp-{me}-3.rdb");
        for f in [gone, &mine, "dump.rdb", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").expect("write");
        }
        remove_stale_temp_files(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["dump.rdb", "notes.txt"]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
