//! BGREWRITEAOF without fork, as Redis 7.0's multi-part rewrite: at the start a new
//! incremental file takes the commands that follow (persisted in the manifest at once), and
//! the fork-less keyspace snapshot is written as the new RDB base file by the same driver
//! and writer thread as BGSAVE (`persistence::save`), while writes go on. When the base is
//! on disk the manifest names it, the incremental files it covers become history and are
//! deleted. Memory stays flat: no child process, no copy-on-write.
//!
//! Turning the AOF on live (`CONFIG SET appendonly yes`) is a rewrite in the
//! `WaitRewrite` state: commands go to `temp-<appendfilename>.incr` until the base exists,
//! then that file is renamed to the first incremental file.
//!
//! With `aof-use-rdb-preamble yes` (the default) the base is the RDB; with `no` the writer
//! thread turns the RDB into commands once it is written (`aof::commands`), as Redis's
//! rewrite writes them, and the base is named `.base.aof`.

use std::path::Path;
use std::time::Instant;

use tracing::{info, warn};

use crate::aof::writer::{
    AofError, aof_dir, close_current, delete_history, install, open_append, persist_manifest,
};
use crate::persistence::save::{self, BgSaveError, Target};
use crate::rdb::Aux;
use crate::state::Server;
use crate::state::aof::{AofState, Rewrite, RewriteLimit};
use crate::state::persistence::SaveError;

/// Save ids of rewrites live apart from BGSAVE's (`rdb_saves`), so a replica waiting for a
/// BGSAVE never mistakes a rewrite for it.
const JOB_ID_BIT: u64 = 1 << 63;

/// Why BGREWRITEAOF did not start; the texts are Redis's replies.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("ERR Background append only file rewriting already in progress")]
    InProgress,
    #[error(
        "ERR Can't execute an AOF background rewriting. Please check the server logs for more information."
    )]
    Failed,
}

/// Consecutive failed rewrites after which automatic ones back off (Redis's
/// `AOF_REWRITE_LIMITE_THRESHOLD`).
const LIMIT_AFTER_FAILURES: u64 = 3;
/// The longest back-off (`AOF_REWRITE_LIMITE_MAX_MINUTES`).
const LIMIT_MAX_MINUTES: u64 = 60;

/// Whether an automatic or scheduled rewrite must wait now, given the consecutive failures
/// so far (Redis's `aofRewriteLimited`): a rewrite that keeps failing (a full disk) would
/// otherwise be retried every cron tick, each attempt walking the whole keyspace. Once the
/// wait is over one attempt is let through; if it fails too, the next wait doubles.
/// BGREWRITEAOF is never limited.
fn limited(l: &mut RewriteLimit, failures: u64, now_s: u64) -> bool {
    if failures < LIMIT_AFTER_FAILURES {
        *l = RewriteLimit::default();
        return false;
    }
    if l.next_at_s != 0 {
        if now_s < l.next_at_s {
            return true;
        }
        l.next_at_s = 0;
        return false;
    }
    l.delay_minutes = (l.delay_minutes * 2).clamp(1, LIMIT_MAX_MINUTES);
    l.next_at_s = now_s + l.delay_minutes * 60;
    warn!(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
        l.delay_minutes
    );
    true
}

/// The AUX fields of a base file: Redis writes `aof-base 1` and no replication identity.
fn base_aux(srv: &Server) -> Aux {
    Aux {
        aof_base: Some(1),
        repl_stream_db: None,
        repl_id: None,
        repl_offset: None,
        ..save::aux_fields(srv)
    }
}

/// The temp name of the incremental file of the `WaitRewrite` state.
pub fn temp_incr_name(appendfilename: &str) -> String {
    format!("temp-{appendfilename}.incr")
}

/// Where a base file is written: the RDB, turned into commands without the preamble.
fn base_target(srv: &Server, dir: &Path, tmp: String, name: &str) -> Target {
    let target = Target::file(srv, dir, tmp, name);
    if srv.config.aof_use_rdb_preamble {
        target
    } else {
        target.converted(crate::aof::commands::convert_file)
    }
}

/// Writes a base of the current dataset now, blocking (the first base at start-up).
///
/// # Errors
/// The file could not be written.
pub fn write_base_now(srv: &mut Server, dir: &Path, name: &str) -> Result<(), AofError> {
    let aux = base_aux(srv);
    let tmp = format!("temp-rewriteaof-{}.aof", std::process::id());
    let target = base_target(srv, dir, tmp, name);
    save::write_snapshot(srv, target, &aux).map_err(|e| AofError::Base {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

/// BGREWRITEAOF: opens the next incremental file and starts writing the base from the
/// snapshot. The caller schedules it instead when the snapshot is taken.
///
/// # Errors
/// A rewrite runs already, or a file could not be opened (nothing changed then).
pub fn start(srv: &mut Server) -> Result<(), RewriteError> {
    if srv.aof.rewrite.is_some() {
        return Err(RewriteError::InProgress);
    }
    let dir = aof_dir(srv);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warn!(
            "Can't open or create append-only dir {}: {e}",
            srv.config.appenddirname
        );
        return Err(RewriteError::Failed);
    }
    let fname = srv.config.appendfilename.clone();
    if let Err(e) = open_next_incr(srv, &dir, &fname) {
        warn!("{e}");
        return Err(RewriteError::Failed);
    }
    let base_name = srv
        .aof
        .manifest
        .clone()
        .new_base(&fname, srv.config.aof_use_rdb_preamble);
    srv.aof.rewrites_started += 1;
    let id = JOB_ID_BIT | srv.aof.rewrites_started;
    let tmp = format!("temp-rewriteaof-bg-{}.aof", std::process::id());
    let target = base_target(srv, &dir, tmp, &base_name);
    let aux = base_aux(srv);
    match save::start_snapshot(srv, id, target, &aux, true) {
        Ok(()) => {}
        Err(BgSaveError::InProgress | BgSaveError::Failed(_)) => {
            srv.aof.last_bgrewrite_failed = true;
            return Err(RewriteError::Failed);
        }
    }
    srv.aof.rewrite = Some(Rewrite {
        job: id,
        started: Instant::now(),
        base_name,
    });
    srv.aof.rewrite_scheduled = false;
    info!(
        "Background append only file rewriting started by pid {}",
        std::process::id()
    );
    Ok(())
}

/// Switches appends to a new incremental file: the manifest's next one (persisted before
/// any command goes there) when the AOF is on, the temp one while waiting for the first
/// base.
fn open_next_incr(srv: &mut Server, dir: &Path, fname: &str) -> Result<(), AofError> {
    if srv.aof.state == AofState::WaitRewrite {
        let name = temp_incr_name(fname);
        let file = open_append(dir, &name, true)?;
        close_current(srv);
        install(srv, file, name);
        return Ok(());
    }
    let mut m = srv.aof.manifest.clone();
    let name = m.new_incr(fname);
    let file = open_append(dir, &name, true)?;
    persist_manifest(dir, fname, &m)?;
    close_current(srv);
    srv.aof.manifest = m;
    install(srv, file, name.clone());
    info!("Creating AOF incr file {name} on background rewrite");
    Ok(())
}

/// Takes the outcome of the running rewrite's background save once it ended (Redis's
/// `backgroundRewriteDoneHandler`).
fn collect(srv: &mut Server) {
    let Some(job) = srv.aof.rewrite.as_ref().map(|r| r.job) else {
        return;
    };
    let Some((_, res)) = srv.persistence.other_done.take_if(|(id, _)| *id == job) else {
        return;
    };
    let Some(rw) = srv.aof.rewrite.take() else {
        return;
    };
    let elapsed = rw.started.elapsed().as_secs() as i64;
    match res.and_then(|_| commit(srv, &rw)) {
        Ok(()) => {
            srv.aof.last_bgrewrite_failed = false;
            srv.aof.rewrites += 1;
            srv.aof.rewrites_consecutive_failures = 0;
            srv.aof.last_rewrite_time_sec = Some(elapsed);
            info!("Background AOF rewrite finished successfully");
        }
        Err(e) if e == SaveError::Aborted.to_string() => {
            // Killed on purpose (FLUSHALL, SHUTDOWN, `appendonly no`): not a failure; an
            // AOF that stays on rewrites again.
            srv.aof.rewrite_scheduled = srv.aof.enabled();
        }
        Err(e) => {
            warn!("Background AOF rewrite terminated with error: {e}");
            srv.aof.last_bgrewrite_failed = true;
            srv.aof.rewrites_consecutive_failures += 1;
            srv.aof.last_rewrite_time_sec = Some(elapsed);
            if srv.aof.state == AofState::WaitRewrite {
                srv.aof.rewrite_scheduled = true;
            }
        }
    }
}

/// Names the new base in the manifest and retires what it covers.
fn commit(srv: &mut Server, rw: &Rewrite) -> Result<(), String> {
    let dir = aof_dir(srv);
    let fname = srv.config.appendfilename.clone();
    let mut m = srv.aof.manifest.clone();
    let ext_rdb = rw.base_name.ends_with(".rdb");
    let base = m.new_base(&fname, ext_rdb);
    debug_assert_eq!(base, rw.base_name);
    let waiting = srv.aof.state == AofState::WaitRewrite;
    let mut renamed = None;
    if waiting {
        let incr = m.new_incr(&fname);
        std::fs::rename(dir.join(temp_incr_name(&fname)), dir.join(&incr))
            .map_err(|e| format!("Error trying to rename the temporary AOF incr file: {e}"))?;
        renamed = Some(incr);
    }
    m.retire_rewritten_incrs(true);
    if let Err(e) = persist_manifest(&dir, &fname, &m) {
        let _ = std::fs::remove_file(dir.join(&base));
        if let Some(incr) = renamed {
            let _ = std::fs::rename(dir.join(&incr), dir.join(temp_incr_name(&fname)));
        }
        return Err(e.to_string());
    }
    srv.aof.manifest = m;
    if let Some(incr) = renamed {
        srv.aof.file_name = incr;
        srv.aof.state = AofState::On;
        info!("AOF rewrite done, the AOF is on");
    }
    delete_history(srv);
    srv.aof.current_size = crate::aof::writer::files_size(&dir, &srv.aof.manifest);
    srv.aof.base_size = srv.aof.current_size;
    Ok(())
}

/// Stops a running rewrite (`appendonly no`, SHUTDOWN, FLUSHALL), removing its temp files.
pub fn kill(srv: &mut Server) {
    let Some(rw) = srv.aof.rewrite.take() else {
        return;
    };
    info!("Killing running AOF rewrite");
    if srv
        .persistence
        .bgsave
        .as_ref()
        .is_some_and(|j| j.id() == rw.job)
    {
        save::kill_bgsave(srv);
    }
}

/// The cron's rewrite work: the end of a running rewrite, a scheduled rewrite once the
/// snapshot is free, and the
/// automatic rewrite when the AOF grew by `auto-aof-rewrite-percentage` over its size
/// after the last rewrite and is at least `auto-aof-rewrite-min-size`.
pub fn cron(srv: &mut Server) {
    collect(srv);
    if !srv.aof.enabled()
        || srv.aof.rewrite.is_some()
        || srv.persistence.snapshot_busy()
        || srv.persistence.loading.is_some()
    {
        return;
    }
    let now_s = crate::clock::now_ms() / 1000;
    let failures = srv.aof.rewrites_consecutive_failures;
    if srv.aof.rewrite_scheduled {
        if !limited(&mut srv.aof.rewrite_limit, failures, now_s) {
            let _ = start(srv);
        }
        return;
    }
    let pct = srv.config.auto_aof_rewrite_percentage;
    let size = srv.aof.current_size;
    if srv.aof.state == AofState::On && pct > 0 && size > srv.config.auto_aof_rewrite_min_size {
        let base = srv.aof.base_size.max(1);
        let growth = (size * 100 / base).saturating_sub(100);
        if growth >= pct && !limited(&mut srv.aof.rewrite_limit, failures, now_s) {
            info!("Starting automatic rewriting of AOF on {growth}% growth");
            let _ = start(srv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_back_off_after_three_failures_doubling_to_an_hour() {
        let mut l = RewriteLimit::default();
        assert!(!limited(&mut l, 2, 1000), "two failures do not limit");
        assert!(limited(&mut l, 3, 1000), "the third starts a wait");
        assert_eq!(l.delay_minutes, 1);
        assert!(limited(&mut l, 3, 1059));
        assert!(
            !limited(&mut l, 3, 1060),
            "one attempt once the wait is over"
        );
        assert!(limited(&mut l, 4, 1061), "it failed: the next wait");
        assert_eq!((l.delay_minutes, l.next_at_s), (2, 1061 + 120));
        let mut now = 1061 + 120;
        for _ in 0..10 {
            assert!(!limited(&mut l, 5, now));
            assert!(limited(&mut l, 5, now));
            now = l.next_at_s;
        }
        assert_eq!(l.delay_minutes, 60, "capped at an hour");
        assert!(!limited(&mut l, 0, now), "a success resets the limit");
        assert_eq!((l.delay_minutes, l.next_at_s), (0, 0));
    }
}
