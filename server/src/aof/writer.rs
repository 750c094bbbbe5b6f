//! Appending to the AOF, as Redis 7.0's `flushAppendOnlyFile`: the feed's AOF buffer is
//! written to the current incremental file after each batch of commands and before their
//! replies leave (so an acknowledged write survives the process being killed under every
//! policy), and made durable by the fsync thread:
//!
//! - `always`: every batch asks for an fsync and its replies wait until the fsync thread
//!   reports it done. One fsync covers everything written before it, so clients that
//!   write at the same time share it (group commit); a failed fsync stops the server, as
//!   Redis does ("Can't recover from AOF fsync error when the AOF fsync policy is 'always'").
//! - `everysec`: the cron asks for an fsync when the last one is a second old; a machine
//!   crash loses at most the last second or two, as in Redis.
//! - `no`: the kernel decides.
//!
//! With `no-appendfsync-on-rewrite yes` no fsync is asked while a rewrite runs.
//!
//! A failed write (a full disk) truncates the partial write away, keeps the bytes to retry
//! from the cron, and refuses writes with Redis's `-MISCONF Errors writing to the AOF file`
//! until a retry succeeds; nothing already in the file is damaged.
//!
//! This module does not load files (`aof::load`), rewrite them (`aof::rewrite`) or decide
//! when the AOF is on (`aof::control`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use crate::aof::manifest::{Manifest, manifest_name, temp_manifest_name};
use crate::state::Server;
use crate::state::aof::SyncShared;

/// Why the AOF could not be opened or its manifest written.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("Can't open or create append-only dir {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("Can't open the append-only file {name}: {source}")]
    Open {
        name: String,
        source: std::io::Error,
    },
    #[error("Can't write the AOF manifest file {name}: {source}")]
    Manifest {
        name: String,
        source: std::io::Error,
    },
    #[error("Can't write the AOF base file {name}: {reason}")]
    Base { name: String, reason: String },
}

/// The AOF directory: `appenddirname` inside `dir`.
pub fn aof_dir(srv: &Server) -> PathBuf {
    Path::new(&srv.config.dir).join(&srv.config.appenddirname)
}

/// Writes the manifest under a temp name, fsyncs it, renames it over the manifest and
/// fsyncs the directory (Redis's `writeAofManifestFile`).
///
/// # Errors
/// Any step failed; the previous manifest is intact.
pub fn persist_manifest(dir: &Path, appendfilename: &str, m: &Manifest) -> Result<(), AofError> {
    let name = manifest_name(appendfilename);
    let tmp = dir.join(temp_manifest_name(appendfilename));
    let err = |source| AofError::Manifest {
        name: name.clone(),
        source,
    };
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(m.format().as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)
}

/// Opens an incremental file for appending.
pub fn open_append(dir: &Path, name: &str, truncate: bool) -> Result<File, AofError> {
    let mut o = OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(dir.join(name)).map_err(|source| AofError::Open {
        name: name.to_string(),
        source,
    })
}

/// Makes `file` the incremental file commands are appended to, starting the fsync thread
/// on first use, and attaches the feed's AOF buffer.
pub fn install(srv: &mut Server, file: File, name: String) {
    let size = file.metadata().map_or(0, |m| m.len());
    let file = Arc::new(file);
    let sync = srv.aof.sync.get_or_insert_with(Default::default).clone();
    if srv.aof.sync_thread.is_none() {
        let thread_sync = sync.clone();
        match std::thread::Builder::new()
            .name("aof-fsync".into())
            .spawn(move || fsync_thread(&thread_sync))
        {
            Ok(t) => srv.aof.sync_thread = Some(t),
            Err(e) => warn!("Can't start the AOF fsync thread: {e}"),
        }
    }
    // Everything written to earlier files was synced when they were closed.
    let written = sync.written.load(Ordering::Acquire);
    sync.synced.fetch_max(written, Ordering::AcqRel);
    if let Ok(mut r) = sync.request.lock() {
        r.file = Some(file.clone());
    }
    srv.aof.file = Some(file);
    srv.aof.file_name = name;
    srv.aof.incr_size = size;
    if !srv.feed.aof_attached() {
        srv.feed.attach_aof(srv.config.aof_timestamp_enabled);
    } else {
        srv.feed.aof_forget_db();
    }
}

/// Closes the current incremental file, fsynced unless the policy is `no`, so the fsync
/// thread never has to reach back into a file that is no longer written.
pub fn close_current(srv: &mut Server) {
    flush(srv);
    let Some(file) = srv.aof.file.take() else {
        return;
    };
    if srv.config.appendfsync != "no"
        && let Err(e) = file.sync_data()
    {
        warn!("Fail to fsync the AOF file: {e}");
    }
    if let Some(s) = &srv.aof.sync {
        let written = s.written.load(Ordering::Acquire);
        s.synced.fetch_max(written, Ordering::AcqRel);
        if let Ok(mut r) = s.request.lock() {
            r.file = None;
        }
    }
}

/// Writes what the feed buffered for the AOF (and what a failed write left) to the
/// incremental file; under `always`, asks for the fsync the replies will wait for.
/// Called after each batch of commands, before replies are flushed.
pub fn flush(srv: &mut Server) {
    if !srv.aof.enabled() {
        return;
    }
    let fresh = srv.feed.take_aof();
    if fresh.is_empty() && srv.aof.unwritten.is_empty() {
        return;
    }
    if srv.aof.unwritten.is_empty() {
        srv.aof.unwritten = fresh;
    } else {
        srv.aof.unwritten.extend_from_slice(&fresh);
    }
    let Some(file) = srv.aof.file.clone() else {
        return;
    };
    if srv.config.appendfsync == "everysec" {
        let busy = srv
            .aof
            .sync
            .as_ref()
            .is_some_and(|s| s.in_progress.load(Ordering::Acquire));
        let now_s = crate::clock::now_ms() / 1000;
        if write_delays_fsync(&mut srv.aof.fsync_busy_since_s, busy, now_s) {
            srv.aof.delayed_fsync += 1;
            info!(
                "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
            );
        }
    }
    let buf = std::mem::take(&mut srv.aof.unwritten);
    match (&*file).write(&buf) {
        Ok(n) if n == buf.len() => {
            wrote(srv, n as u64);
            if std::mem::take(&mut srv.aof.write_failed) {
                warn!("AOF write error looks solved, Redis can write again.");
            }
            if srv.config.appendfsync == "always" && fsync_allowed(srv) {
                request_fsync(srv, true);
            }
        }
        res => {
            let (done, errno) = match &res {
                Ok(n) => (*n, 28),
                Err(e) => (0, e.raw_os_error().unwrap_or(5)),
            };
            // Take a partial write back so the file ends on a whole command.
            let kept = if done > 0 && file.set_len(srv.aof.incr_size).is_err() {
                wrote(srv, done as u64);
                done
            } else {
                0
            };
            if !srv.aof.write_failed {
                match &res {
                    Err(e) => warn!("Error writing to the AOF file: {e}"),
                    Ok(n) => warn!(
                        "Short write while writing to the AOF file: (nwritten={n}, expected={})",
                        buf.len()
                    ),
                }
            }
            if srv.config.appendfsync == "always" {
                warn!(
                    "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
                );
                std::process::exit(1);
            }
            srv.aof.write_failed = true;
            srv.aof.last_write_errno = errno;
            srv.aof.unwritten = buf[kept..].to_vec();
        }
    }
}

/// Counts `aof_delayed_fsync` as Redis 7.0 does, for a write under `everysec`: Redis holds
/// back writes while the background fsync runs, up to two seconds, then writes anyway and
/// counts one delayed fsync. Tandem never holds a write back (the bytes must be in the
/// file before the reply leaves, so an acknowledged write survives the process dying), so
/// it counts the writes Redis would have made after waiting those two seconds: a slow disk
/// shows in INFO the same way. `since` is when writes first found the fsync busy.
fn write_delays_fsync(since: &mut u64, busy: bool, now_s: u64) -> bool {
    if !busy {
        *since = 0;
        return false;
    }
    if *since == 0 {
        *since = now_s;
        return false;
    }
    if now_s - *since < 2 {
        return false;
    }
    *since = 0;
    true
}

fn wrote(srv: &mut Server, n: u64) {
    srv.aof.incr_size += n;
    srv.aof.current_size += n;
    if let Some(s) = &srv.aof.sync {
        s.written.fetch_add(n, Ordering::AcqRel);
    }
}

/// Whether fsyncs may run now (`no-appendfsync-on-rewrite` holds them during a rewrite).
fn fsync_allowed(srv: &Server) -> bool {
    !(srv.config.no_appendfsync_on_rewrite && srv.aof.rewrite.is_some())
}

/// Asks the fsync thread to sync everything written so far.
fn request_fsync(srv: &mut Server, fatal: bool) {
    let Some(s) = &srv.aof.sync else {
        return;
    };
    let upto = s.written.load(Ordering::Acquire);
    if s.synced.load(Ordering::Acquire) >= upto {
        return;
    }
    if let Ok(mut r) = s.request.lock() {
        r.upto = r.upto.max(upto);
        r.fatal |= fatal;
        s.wake.notify_one();
    }
    srv.aof.last_fsync_ms = crate::clock::now_ms();
}

/// What a client's replies must wait for under `appendfsync always`: the fsync thread
/// reaching the bytes written so far. `None` when they may leave now.
pub fn ack_barrier(srv: &Server) -> Option<(Arc<SyncShared>, u64)> {
    if srv.config.appendfsync != "always" || !srv.aof.enabled() || !fsync_allowed(srv) {
        return None;
    }
    let s = srv.aof.sync.as_ref()?;
    let upto = s.written.load(Ordering::Acquire);
    (s.synced.load(Ordering::Acquire) < upto).then(|| (s.clone(), upto))
}

/// Waits until the fsync thread has synced `upto`.
pub async fn wait_synced(sync: &SyncShared, upto: u64) {
    loop {
        let notified = sync.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if sync.synced.load(Ordering::Acquire) >= upto {
            return;
        }
        notified.await;
    }
}

/// The AOF's part of the cron: retries a failed write, asks for the `everysec` fsync.
pub fn cron(srv: &mut Server) {
    if !srv.aof.enabled() {
        return;
    }
    flush(srv);
    let now = crate::clock::now_ms();
    if srv.config.appendfsync == "everysec"
        && fsync_allowed(srv)
        && now.saturating_sub(srv.aof.last_fsync_ms) >= 1000
    {
        request_fsync(srv, false);
    }
}

/// The fsync thread: syncs the current incremental file whenever asked (Redis's
/// `BIO_AOF_FSYNC` job) and wakes the clients waiting for it.
fn fsync_thread(s: &SyncShared) {
    loop {
        let (file, upto, fatal) = {
            let Ok(mut r) = s.request.lock() else {
                return;
            };
            while !r.stop && r.upto <= s.synced.load(Ordering::Acquire) {
                r = match s.wake.wait(r) {
                    Ok(r) => r,
                    Err(_) => return,
                };
            }
            if r.stop {
                return;
            }
            let fatal = std::mem::take(&mut r.fatal);
            (r.file.clone(), r.upto, fatal)
        };
        s.in_progress.store(true, Ordering::Release);
        let res = file.as_ref().map_or(Ok(()), |f| f.sync_data());
        s.in_progress.store(false, Ordering::Release);
        match res {
            Ok(()) => {
                s.failed_errno.store(0, Ordering::Release);
                s.synced.fetch_max(upto, Ordering::AcqRel);
            }
            Err(e) => {
                if fatal {
                    warn!(
                        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."
                    );
                    std::process::exit(1);
                }
                warn!("Fail to fsync the AOF file: {e}");
                s.failed_errno
                    .store(e.raw_os_error().unwrap_or(5), Ordering::Release);
                if let Ok(mut r) = s.request.lock() {
                    r.upto = 0;
                }
            }
        }
        s.done.notify_waiters();
    }
}

/// Stops the fsync thread (shutdown, `appendonly no`) after a last fsync.
pub fn stop_thread(srv: &mut Server) {
    let Some(s) = srv.aof.sync.take() else {
        return;
    };
    if let Ok(mut r) = s.request.lock() {
        r.stop = true;
        s.wake.notify_one();
    }
    if let Some(t) = srv.aof.sync_thread.take() {
        let _ = t.join();
    }
}

/// The size of the base and incremental files on disk.
pub fn files_size(dir: &Path, m: &Manifest) -> u64 {
    m.load_order()
        .filter_map(|f| std::fs::metadata(dir.join(&f.name)).ok())
        .map(|md| md.len())
        .sum()
}

/// Deletes the history files and drops them from the manifest (Redis's
/// `aofDelHistoryFiles`), unless `aof-disable-auto-gc` keeps them.
pub fn delete_history(srv: &mut Server) {
    if srv.aof.manifest.history.is_empty() || srv.config.aof_disable_auto_gc {
        return;
    }
    let dir = aof_dir(srv);
    let history = std::mem::take(&mut srv.aof.manifest.history);
    if let Err(e) = persist_manifest(&dir, &srv.config.appendfilename, &srv.aof.manifest) {
        warn!("{e}");
        srv.aof.manifest.history = history;
        return;
    }
    for f in history {
        info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(dir.join(&f.name));
    }
}

/// The errno that makes writes refused (`-MISCONF Errors writing to the AOF file`): the
/// last write or the last background fsync failed (Redis's `DISK_ERROR_TYPE_AOF`).
pub fn write_error(srv: &Server) -> Option<i32> {
    if !srv.aof.enabled() {
        return None;
    }
    if srv.aof.write_failed {
        return Some(srv.aof.last_write_errno);
    }
    let fsync = srv.aof.sync.as_ref()?.failed_errno.load(Ordering::Acquire);
    (fsync != 0).then_some(fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_counts_as_delayed_after_the_fsync_ran_two_seconds() {
        let mut since = 0;
        assert!(!write_delays_fsync(&mut since, false, 100));
        assert!(
            !write_delays_fsync(&mut since, true, 100),
            "first busy write"
        );
        assert!(!write_delays_fsync(&mut since, true, 101));
        assert!(write_delays_fsync(&mut since, true, 102), "two seconds on");
        assert!(
            !write_delays_fsync(&mut since, true, 102),
            "a new wait begins"
        );
        assert!(write_delays_fsync(&mut since, true, 104));
        assert!(!write_delays_fsync(&mut since, true, 105));
        assert!(
            !write_delays_fsync(&mut since, false, 106),
            "the fsync ended"
        );
        assert!(!write_delays_fsync(&mut since, true, 107));
        assert!(!write_delays_fsync(&mut since, true, 108));
    }
}
