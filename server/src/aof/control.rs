//! Turning the AOF on and off, as Redis 7.0 does: at start-up (load from the manifest, then
//! open the files), live with CONFIG SET appendonly (on: a rewrite writes the first base
//! while commands collect in a temp incremental file; off: the file is synced and closed),
//! after a replica's full sync (the dataset was replaced: a new base is written), and at
//! shutdown (the buffer is written and synced).

use std::path::Path;

use tracing::{info, warn};

use crate::aof::load::{AofLoadError, read_manifest};
use crate::aof::manifest::{AofFile, FileType, Manifest};
use crate::aof::rewrite::RewriteError;
use crate::aof::rewrite::{kill, temp_incr_name, write_base_now};
use crate::aof::writer::{
    AofError, aof_dir, close_current, delete_history, files_size, install, open_append,
    persist_manifest, stop_thread,
};
use crate::persistence::load::{Access, run_held};
use crate::state::Server;
use crate::state::Shared;
use crate::state::aof::AofState;

/// Why the AOF could not be brought up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Load(#[from] AofLoadError),
    #[error("{0}")]
    Open(#[from] AofError),
}

/// Start-up with `appendonly yes`: reads the manifest, loads the files, opens the AOF for
/// appending. Returns whether a dataset was loaded.
///
/// # Errors
/// The AOF is refused or cannot be opened: the server must exit.
pub async fn start_up(state: &Shared) -> Result<bool, StartError> {
    let (dir, fname) = {
        let srv = state.borrow();
        (aof_dir(&srv), srv.config.appendfilename.clone())
    };
    let mut manifest = read_manifest(&dir, &fname)?;
    let root = std::path::PathBuf::from(state.borrow().config.dir.clone());
    if let Some(m) = upgrade_old_style(&root, &dir, &fname, &manifest)? {
        manifest = m;
    }
    let loaded = crate::aof::load::load(&mut Access::Shared(state), &dir, &manifest).await?;
    let mut srv = state.borrow_mut();
    srv.aof.manifest = manifest;
    open_on_start(&mut srv)?;
    let base = srv
        .aof
        .manifest
        .base
        .as_ref()
        .and_then(|b| std::fs::metadata(dir.join(&b.name)).ok())
        .map_or(0, |m| m.len());
    srv.aof.base_size = base;
    Ok(loaded)
}

/// Opens the AOF after the start-up load (Redis's `aofOpenIfNeededOnServerStart`): with
/// no base and no incremental file, writes a base of the current dataset first; then opens
/// the last incremental file (or a new one) and persists the manifest.
///
/// # Errors
/// The directory, a file or the manifest cannot be written: the server must not start.
pub fn open_on_start(srv: &mut Server) -> Result<(), AofError> {
    let dir = aof_dir(srv);
    std::fs::create_dir_all(&dir).map_err(|source| AofError::Dir {
        dir: srv.config.appenddirname.clone(),
        source,
    })?;
    let fname = srv.config.appendfilename.clone();
    let mut m = srv.aof.manifest.clone();
    if m.base.is_none() && m.incr.is_empty() {
        let base = m.new_base(&fname, srv.config.aof_use_rdb_preamble);
        write_base_now(srv, &dir, &base)?;
        info!("Creating AOF base file {base} on server start");
    }
    let existing = m.last_incr().map(|f| f.name.clone());
    let name = existing.clone().unwrap_or_else(|| m.new_incr(&fname));
    let file = open_append(&dir, &name, false)?;
    persist_manifest(&dir, &fname, &m)?;
    srv.aof.manifest = m;
    srv.aof.state = AofState::On;
    install(srv, file, name.clone());
    if existing.is_some() {
        info!("Opening AOF incr file {name} on server start");
    } else {
        info!("Creating AOF incr file {name} on server start");
    }
    srv.aof.current_size = files_size(&dir, &srv.aof.manifest);
    delete_history(srv);
    Ok(())
}

/// `appendonly no` (CONFIG SET, or a replica about to load its master's data): the last
/// buffer is written and synced, the file closed (Redis's `stopAppendOnly`).
pub fn stop(srv: &mut Server) {
    if !srv.aof.enabled() {
        return;
    }
    close_current(srv);
    kill(srv);
    if srv.aof.state == AofState::WaitRewrite {
        // Its commands would only have counted once a first base existed: no later start
        // reads it (the next `appendonly yes` begins a new one).
        let temp = aof_dir(srv).join(temp_incr_name(&srv.config.appendfilename));
        let _ = std::fs::remove_file(temp);
    }
    srv.feed.detach_aof();
    srv.aof.unwritten.clear();
    srv.aof.state = AofState::Off;
    srv.aof.rewrite_scheduled = false;
    stop_thread(srv);
}

/// A single `appendonly.aof` of Redis before 7.0 in `dir` becomes the base of a new
/// manifest, moved into the AOF directory (Redis's `aofUpgradePrepare`, under the same
/// conditions: no directory, an empty manifest, or a manifest naming only that file as its
/// base while it is still outside). The loader reads it as Redis does: an RDB preamble and
/// its tail of commands, or commands. Returns the new manifest.
///
/// # Errors
/// The directory, the manifest or the move failed; the old file is where it was.
fn upgrade_old_style(
    root: &Path,
    dir: &Path,
    fname: &str,
    m: &Manifest,
) -> Result<Option<Manifest>, AofError> {
    let old = root.join(fname);
    if !old.is_file() {
        return Ok(None);
    }
    let empty = m.base.is_none() && m.incr.is_empty();
    let only_old = m.incr.is_empty()
        && m.base.as_ref().is_some_and(|b| b.name == fname)
        && !dir.join(fname).exists();
    if dir.is_dir() && !empty && !only_old {
        return Ok(None);
    }
    let name = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|source| AofError::Dir {
        dir: name.clone(),
        source,
    })?;
    let mut upgraded = Manifest {
        base_seq: 1,
        ..Manifest::default()
    };
    upgraded.base = Some(AofFile {
        name: fname.to_string(),
        seq: 1,
        kind: FileType::Base,
    });
    persist_manifest(dir, fname, &upgraded)?;
    std::fs::rename(&old, dir.join(fname))
        .and_then(|()| std::fs::File::open(dir).and_then(|d| d.sync_all()))
        .map_err(|source| AofError::Open {
            name: fname.to_string(),
            source,
        })?;
    info!("Successfully migrated an old-style AOF file ({fname}) into the AOF directory ({name}).");
    Ok(Some(upgraded))
}

/// Turns the AOF on: a rewrite writes the base now, or once the snapshot is free (or the
/// transaction ended).
///
/// # Errors
/// The rewrite could not start (Redis's "Unable to turn on AOF").
pub fn turn_on(srv: &mut Server) -> Result<(), RewriteError> {
    if srv.aof.enabled() {
        return Ok(());
    }
    srv.aof.state = AofState::WaitRewrite;
    if srv.persistence.snapshot_busy() || srv.feed.in_atomic() {
        warn!(
            "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
        );
        srv.aof.rewrite_scheduled = true;
        return Ok(());
    }
    match crate::aof::rewrite::start(srv) {
        Ok(()) => Ok(()),
        Err(e) => {
            warn!(
                "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error: {e}"
            );
            stop(srv);
            Err(e)
        }
    }
}

/// Turns the AOF off.
pub fn turn_off(srv: &mut Server) {
    stop(srv);
}

/// CONFIG SET changed AOF directives: `appendonly` turns the AOF on or off,
/// `aof-timestamp-enabled` applies to the next command.
///
/// # Errors
/// `appendonly yes` could not start the AOF.
pub fn config_changed(srv: &mut Server) -> Result<(), RewriteError> {
    srv.feed.aof_timestamps(srv.config.aof_timestamp_enabled);
    match (srv.config.appendonly, srv.aof.enabled()) {
        (true, false) => turn_on(srv),
        (false, true) => {
            turn_off(srv);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A replica's dataset was replaced by its master's: the AOF restarts from a new base,
/// as Redis's `restartAOFAfterSYNC`.
pub fn restart_after_sync(srv: &mut Server) {
    if !srv.aof.enabled() {
        return;
    }
    stop(srv);
    if turn_on(srv).is_err() {
        warn!("Failed enabling the AOF after successful master synchronization!");
    }
}

/// DEBUG LOADAOF: the buffer is written, the dataset emptied and loaded again from the
/// files the manifest names, with the server held (Redis's `debug loadaof`). A refused
/// load stops the server, as in Redis.
pub fn debug_loadaof(srv: &mut Server) {
    crate::aof::writer::flush(srv);
    srv.keyspace.flush_all();
    srv.scripts.functions.libraries.take_all();
    let dir = aof_dir(srv);
    let res = read_manifest(&dir, &srv.config.appendfilename).and_then(|m| {
        srv.aof.manifest = m.clone();
        delete_history(srv);
        // The commands replayed must not be appended again.
        let attached = srv.feed.aof_attached();
        srv.feed.detach_aof();
        let res = run_held(crate::aof::load::load(&mut Access::Held(srv), &dir, &m));
        if attached {
            srv.feed.attach_aof(srv.config.aof_timestamp_enabled);
        }
        res
    });
    match res {
        Ok(_) => {
            srv.dirty = 0;
            warn!("Append Only File loaded by DEBUG LOADAOF");
        }
        Err(e) => {
            warn!("{e}");
            std::process::exit(1);
        }
    }
}

/// Shutdown: the last buffer is written and synced.
pub fn shutdown(srv: &mut Server) {
    if srv.aof.enabled() {
        info!("Calling fsync() on the AOF file.");
        stop(srv);
    }
}
