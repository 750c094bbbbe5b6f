//! SAVE, BGSAVE and save points: the dump file consumer of the RDB producer, and the task
//! that drives a background save.
//!
//! A save writes `temp-<pid>.rdb` (BGSAVE: `temp-<pid>-<n>.rdb`) in `dir`, fsyncs it, renames
//! it over `dbfilename` and fsyncs the directory, so a crash or a failure at any point leaves
//! the previous dump intact.
//!
//! BGSAVE without fork: the producer's snapshot is walked on the main thread by a driver
//! task in steps of at most [`STEP_SLOTS`] slots or [`STEP_BYTES`] bytes, with a
//! `yield_now` between steps. A yield hands the thread back to the scheduler, which polls
//! the sockets and runs every connection that has input before the next step, so a client
//! waits at most one step (well under a millisecond) for the snapshot; on an idle server the
//! steps run back to back, so BGSAVE runs at SAVE speed. (A budget per cron tick would
//! instead cap the save rate at budget × hz and make it bursty.) Chunks go to a writer
//! thread over a bounded channel that checksums and writes them: the main thread only walks
//! and encodes. When the channel is full the driver sleeps until the writer takes a chunk.
//!
//! SAVE runs the same producer to completion on the main thread (clients wait, as in
//! Redis), with the same writer thread so encoding and disk writes overlap.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TrySendError, sync_channel};
use std::time::Instant;

use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use crate::rdb::producer::RdbProducer;
use crate::rdb::{Aux, ChecksumWriter, RdbError};
use crate::state::Server;
use crate::state::Shared;
pub use crate::state::persistence::ShutdownOptions;
use crate::state::persistence::{BgSave, Chunk, SaveError};

/// Slots the walker visits per step of a background save.
pub const STEP_SLOTS: u32 = 16 * 1024;
/// Bytes a step produces at most (plus one key).
pub const STEP_BYTES: usize = 128 * 1024;
/// Chunks in flight between the main thread and the writer thread.
const CHANNEL_CHUNKS: usize = 8;
/// After a failed BGSAVE, save points wait this long before trying again (Redis's
/// CONFIG_BGSAVE_RETRY_DELAY).
pub const BGSAVE_RETRY_DELAY_S: u64 = 5;
/// With `rdb-save-incremental-fsync` / `aof-rewrite-incremental-fsync` a save syncs what it
/// wrote every this many bytes (Redis's `REDIS_AUTOSYNC_BYTES`).
pub const AUTOSYNC_BYTES: u64 = 4 * 1024 * 1024;

/// A file that syncs its data every [`AUTOSYNC_BYTES`] written, so the final fsync of a
/// multi-gigabyte dump does not find gigabytes of dirty pages: that one long flush would
/// stall every other writer of the disk (the AOF's own fsync among them) while it runs.
struct AutoSync {
    file: File,
    every: Option<u64>,
    unsynced: u64,
}

impl std::io::Write for AutoSync {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(every) = self.every {
            self.unsynced += n as u64;
            if self.unsynced >= every {
                self.file.sync_data()?;
                self.unsynced = 0;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The dump file being written: a temp file renamed over the dump only when complete.
struct DumpFile {
    tmp: PathBuf,
    tmp_name: String,
    dest: PathBuf,
    dir: PathBuf,
    out: ChecksumWriter<BufWriter<AutoSync>>,
}

impl DumpFile {
    fn create(
        dir: &str,
        tmp_name: String,
        dbfilename: &str,
        checksum: bool,
        autosync: bool,
    ) -> Result<Self, SaveError> {
        let dir_path = PathBuf::from(dir);
        let tmp = dir_path.join(&tmp_name);
        let file = File::create(&tmp).map_err(|source| SaveError::Open {
            tmp: tmp_name.clone(),
            dir: absolute(&dir_path),
            source,
        })?;
        Ok(DumpFile {
            tmp,
            tmp_name,
            dest: dir_path.join(dbfilename),
            dir: dir_path,
            out: ChecksumWriter::new(
                BufWriter::with_capacity(
                    1 << 20,
                    AutoSync {
                        file,
                        every: autosync.then_some(AUTOSYNC_BYTES),
                        unsynced: 0,
                    },
                ),
                checksum,
            ),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SaveError> {
        Ok(self.out.write(bytes)?)
    }

    /// Trailer, fsync, rename over the dump, fsync of the directory. Removes the temp file
    /// on failure. Returns the file's size.
    fn commit(self) -> Result<u64, SaveError> {
        let tmp = self.tmp.clone();
        let res = self.commit_inner();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn commit_inner(self) -> Result<u64, SaveError> {
        let size = self.out.written() + 8;
        let file = self
            .out
            .finish()?
            .into_inner()
            .map_err(|e| SaveError::Write(e.into_error()))?
            .file;
        file.sync_all().map_err(SaveError::Write)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|source| SaveError::Rename {
            tmp: self.tmp_name.clone(),
            dest: self.dest.display().to_string(),
            dir: absolute(&self.dir),
            source,
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(SaveError::FsyncDir)?;
        Ok(size)
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn absolute(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// Where a save writes: `tmp_name` in `dir`, renamed over `dbfilename` there.
pub struct Target {
    dir: String,
    tmp_name: String,
    dbfilename: String,
    checksum: bool,
    /// Sync every [`AUTOSYNC_BYTES`] (`rdb-save-incremental-fsync`, or
    /// `aof-rewrite-incremental-fsync` for an AOF base).
    autosync: bool,
    /// Rewrites the committed file in place into another form (the AOF's base in commands).
    convert: Option<Convert>,
}

/// Turns a committed RDB file into another form, in place.
pub type Convert = fn(&Path) -> Result<(), RdbError>;

impl Target {
    fn new(srv: &Server, tmp_name: String) -> Self {
        Target {
            dir: srv.config.dir.clone(),
            tmp_name,
            dbfilename: srv.config.dbfilename.clone(),
            checksum: srv.config.rdbchecksum,
            autosync: srv.config.rdb_save_incremental_fsync,
            convert: None,
        }
    }

    /// An AOF base file (written as an RDB first).
    pub fn file(srv: &Server, dir: &Path, tmp_name: String, name: &str) -> Self {
        Target {
            dir: dir.display().to_string(),
            tmp_name,
            dbfilename: name.to_string(),
            checksum: srv.config.rdbchecksum,
            autosync: srv.config.aof_rewrite_incremental_fsync,
            convert: None,
        }
    }

    /// The committed file is then turned into another form by `convert`.
    pub fn converted(self, convert: Convert) -> Self {
        Target {
            convert: Some(convert),
            ..self
        }
    }
}

/// The writer thread: creates the temp file, writes chunks until the last one, then
/// commits. A closed channel without a last chunk means the save was aborted: the temp
/// file is removed. On any failure the thread drops the channel, which the producing side
/// sees on its next send.
fn writer_thread(
    rx: Receiver<Chunk>,
    target: Target,
    space: Option<Arc<Notify>>,
) -> Result<u64, SaveError> {
    let mut file = DumpFile::create(
        &target.dir,
        target.tmp_name,
        &target.dbfilename,
        target.checksum,
        target.autosync,
    )?;
    loop {
        let Ok(chunk) = rx.recv() else {
            file.discard();
            return Err(SaveError::Aborted);
        };
        if let Some(s) = &space {
            s.notify_one();
        }
        if let Err(e) = file.write(&chunk.bytes) {
            file.discard();
            return Err(e);
        }
        if chunk.last {
            let dest = file.dest.clone();
            let size = file.commit()?;
            return match target.convert {
                Some(convert) => {
                    convert(&dest)?;
                    Ok(std::fs::metadata(&dest).map_or(size, |m| m.len()))
                }
                None => Ok(size),
            };
        }
    }
}

/// The producer of a dump of the whole server: the function libraries, then the keyspace
/// from a fork-less snapshot.
pub fn snapshot(srv: &mut Server, aux: &Aux) -> RdbProducer {
    RdbProducer::begin(&mut srv.keyspace, aux, srv.config.rdbcompression).with_functions(
        srv.scripts
            .functions
            .libraries
            .iter()
            .map(|l| l.code.as_slice()),
    )
}

/// The AUX fields Redis 7.0 writes, with this server's replication identity.
pub fn aux_fields(srv: &Server) -> Aux {
    Aux {
        redis_ver: Some(crate::REDIS_VERSION.to_string()),
        redis_bits: Some(64),
        ctime: Some((crate::clock::now_ms() / 1000) as i64),
        used_mem: Some(crate::memory::used_memory() as i64),
        repl_stream_db: Some(0),
        repl_id: Some(srv.repl.ids.replid.clone()),
        repl_offset: Some(srv.feed.offset as i64),
        aof_base: Some(0),
        other: Vec::new(),
    }
}

/// Whether `save` points are configured (Redis's `saveparamslen > 0`).
pub fn has_save_points(srv: &Server) -> bool {
    !srv.config.save.is_empty()
}

/// SAVE: writes the dump now, blocking the server until it is on disk.
///
/// # Errors
/// The file could not be written; the previous dump is untouched.
pub fn save(srv: &mut Server) -> Result<(), SaveError> {
    let res = save_inner(srv);
    match &res {
        Ok(()) => {
            info!("DB saved on disk");
            srv.dirty = 0;
            srv.lastsave = crate::clock::now_ms() / 1000;
            srv.persistence.last_bgsave_ok = true;
        }
        Err(e) => warn!("{e}"),
    }
    res
}

fn save_inner(srv: &mut Server) -> Result<(), SaveError> {
    let aux = aux_fields(srv);
    let tmp_name = format!("temp-{}.rdb", std::process::id());
    let target = Target::new(srv, tmp_name);
    write_snapshot(srv, target, &aux)
}

/// Writes a snapshot of the server to `target` now, blocking the server until it is on
/// disk (SAVE, and the AOF's first base file).
///
/// # Errors
/// The file could not be written; a previous file of that name is untouched.
pub fn write_snapshot(srv: &mut Server, target: Target, aux: &Aux) -> Result<(), SaveError> {
    let (tx, rx) = sync_channel::<Chunk>(CHANNEL_CHUNKS);
    let thread = std::thread::Builder::new()
        .name("rdb-save".into())
        .spawn(move || writer_thread(rx, target, None))
        .map_err(SaveError::Write)?;
    let mut producer = snapshot(srv, aux);
    let mut res = Ok(());
    loop {
        let mut bytes = Vec::with_capacity(STEP_BYTES + 64 * 1024);
        match producer.step(&mut srv.keyspace, u32::MAX, STEP_BYTES, &mut bytes) {
            Ok(last) => {
                if tx.send(Chunk { bytes, last }).is_err() || last {
                    break;
                }
            }
            Err(e) => {
                res = Err(SaveError::from(e));
                break;
            }
        }
    }
    if !producer.is_done() {
        producer.abort(&mut srv.keyspace);
    }
    drop(tx);
    let written = thread.join().unwrap_or(Err(SaveError::WriterGone));
    res.and(written.map(|_| ()))
}

/// Why BGSAVE did not start.
#[derive(Debug, thiserror::Error)]
pub enum BgSaveError {
    #[error("ERR Background save already in progress")]
    InProgress,
    #[error("ERR {0}")]
    Failed(SaveError),
}

/// BGSAVE: starts the snapshot now and lets the driver task write it.
///
/// # Errors
/// A save is already running, or the writer thread cannot be started (recorded as a failed
/// background save, as a failed fork is in Redis). Failures of the file itself arrive later,
/// through the driver, as they do from Redis's child.
pub fn start_bgsave(srv: &mut Server) -> Result<(), BgSaveError> {
    if srv.persistence.snapshot_busy() {
        return Err(BgSaveError::InProgress);
    }
    let now_s = crate::clock::now_ms() / 1000;
    srv.persistence.rdb_saves += 1;
    srv.persistence.last_bgsave_try = now_s;
    let id = srv.persistence.rdb_saves;
    let tmp_name = format!("temp-{}-{id}.rdb", std::process::id());
    let target = Target::new(srv, tmp_name);
    let aux = aux_fields(srv);
    start_snapshot(srv, id, target, &aux, false)?;
    srv.persistence.scheduled = false;
    info!("Background saving started by pid {}", std::process::id());
    Ok(())
}

/// Starts background save `id` of a snapshot to `target`, driven by the driver task.
/// `other`: the file is not the dump (the AOF's base), its outcome lands in
/// `Persistence::other_done` and no replica attaches to it.
///
/// # Errors
/// The writer thread cannot be started.
pub fn start_snapshot(
    srv: &mut Server,
    id: u64,
    target: Target,
    aux: &Aux,
    other: bool,
) -> Result<(), BgSaveError> {
    // A replica may attach to this save and apply the stream from this offset on an empty
    // selection: the next propagated command names its database.
    srv.feed.forget_db();
    // Inside EXEC the transaction's earlier writes are in the snapshot but reach the
    // stream only after this offset (at the end of EXEC): no replica may attach then.
    let start = (!other && srv.repl.backlog.is_some() && !srv.feed.in_atomic())
        .then(|| (srv.repl.ids.replid.clone(), srv.feed.offset));
    let producer = snapshot(srv, aux);
    let (tx, rx) = sync_channel::<Chunk>(CHANNEL_CHUNKS);
    let (done_tx, done_rx) = oneshot::channel();
    let space = Arc::new(Notify::new());
    let thread_space = space.clone();
    let thread = std::thread::Builder::new()
        .name("rdb-bgsave".into())
        .spawn(move || {
            let _ = done_tx.send(writer_thread(rx, target, Some(thread_space)));
        });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            producer.abort(&mut srv.keyspace);
            if !other {
                srv.persistence.last_bgsave_ok = false;
            }
            return Err(BgSaveError::Failed(SaveError::Write(e)));
        }
    };
    srv.persistence.bgsave = Some(BgSave {
        id,
        producer,
        started: Instant::now(),
        dirty_before: srv.dirty,
        tx: Some(tx),
        pending: None,
        space,
        result: Some(done_rx),
        thread: Some(thread),
        start,
        other,
    });
    srv.persistence.wake.notify_one();
    Ok(())
}

/// Stops a running BGSAVE and removes its temp file (SHUTDOWN, FLUSHALL, a stopped AOF
/// rewrite). Waits for the writer thread, so no late rename can replace a file written
/// after this call.
pub fn kill_bgsave(srv: &mut Server) {
    let Some(mut job) = srv.persistence.bgsave.take() else {
        return;
    };
    srv.persistence.last_job = (job.id, false);
    if !job.producer.is_done() {
        job.producer.abort(&mut srv.keyspace);
    }
    job.pending = None;
    job.tx = None;
    if let Some(t) = job.thread.take() {
        let _ = t.join();
    }
    // The driver may be waiting for channel space that this writer will never free.
    job.space.notify_one();
    if job.other {
        srv.persistence.other_done = Some((job.id, Err(SaveError::Aborted.to_string())));
    }
}

/// What the driver does after a step.
enum Next {
    Yield,
    WaitForSpace(Arc<Notify>),
    Finished(u64, oneshot::Receiver<Result<u64, SaveError>>),
    Gone,
}

/// The task that drives background saves: sleeps until a BGSAVE starts, then walks and
/// feeds it to the writer thread step by step, then records the outcome.
pub async fn driver(state: Shared) {
    let wake = state.borrow().persistence.wake.clone();
    loop {
        wake.notified().await;
        run(&state).await;
    }
}

async fn run(state: &Shared) {
    loop {
        let next = step(&mut state.borrow_mut());
        match next {
            Next::Yield => tokio::task::yield_now().await,
            Next::WaitForSpace(space) => space.notified().await,
            Next::Gone => return,
            Next::Finished(id, rx) => {
                let res = rx.await.unwrap_or(Err(SaveError::WriterGone));
                finished(&mut state.borrow_mut(), id, res);
                return;
            }
        }
    }
}

/// One step of the running BGSAVE.
fn step(srv: &mut Server) -> Next {
    let Some(job) = srv.persistence.bgsave.as_mut() else {
        return Next::Gone;
    };
    if job.pending.is_none() && !job.producer.is_done() {
        let mut bytes = Vec::with_capacity(STEP_BYTES + 64 * 1024);
        match job
            .producer
            .step(&mut srv.keyspace, STEP_SLOTS, STEP_BYTES, &mut bytes)
        {
            Ok(last) => {
                if !bytes.is_empty() || last {
                    job.pending = Some(Chunk { bytes, last });
                }
            }
            Err(e) => {
                warn!("Background saving error: {e}");
                job.tx = None;
            }
        }
    }
    if let (Some(chunk), Some(tx)) = (job.pending.take(), job.tx.as_ref()) {
        match tx.try_send(chunk) {
            Ok(()) => {}
            Err(TrySendError::Full(chunk)) => {
                job.pending = Some(chunk);
                return Next::WaitForSpace(job.space.clone());
            }
            Err(TrySendError::Disconnected(_)) => job.tx = None,
        }
    }
    if job.producer.is_done() || job.tx.is_none() {
        job.tx = None;
        let Some(rx) = job.result.take() else {
            return Next::Gone;
        };
        return Next::Finished(job.id, rx);
    }
    Next::Yield
}

/// Records the outcome of background save `id`, unless it was killed meanwhile.
fn finished(srv: &mut Server, id: u64, res: Result<u64, SaveError>) {
    if srv.persistence.bgsave.as_ref().is_none_or(|j| j.id != id) {
        return;
    }
    let Some(mut job) = srv.persistence.bgsave.take() else {
        return;
    };
    if !job.producer.is_done() {
        job.producer.abort(&mut srv.keyspace);
    }
    if let Some(t) = job.thread.take() {
        let _ = t.join();
    }
    if job.other {
        if let Err(e) = &res {
            warn!("{e}");
        }
        srv.persistence.other_done = Some((id, res.map_err(|e| e.to_string())));
        return;
    }
    let p = &mut srv.persistence;
    p.last_bgsave_time_sec = job.started.elapsed().as_secs() as i64;
    p.last_job = (id, res.is_ok());
    match res {
        Ok(_) => {
            info!("DB saved on disk");
            info!("Background saving terminated with success");
            srv.dirty = srv.dirty.saturating_sub(job.dirty_before);
            srv.lastsave = crate::clock::now_ms() / 1000;
            p.last_bgsave_ok = true;
        }
        Err(e) => {
            warn!("{e}");
            warn!("Background saving error");
            p.last_bgsave_ok = false;
        }
    }
}

/// The cron's persistence work: a scheduled BGSAVE, then save points.
pub fn cron(srv: &mut Server) {
    if srv.persistence.loading.is_some() || srv.persistence.snapshot_busy() {
        return;
    }
    if srv.persistence.scheduled {
        let _ = start_bgsave(srv);
        return;
    }
    let now_s = crate::clock::now_ms() / 1000;
    let retry_ok = srv.persistence.last_bgsave_ok
        || now_s.saturating_sub(srv.persistence.last_bgsave_try) > BGSAVE_RETRY_DELAY_S;
    let elapsed = now_s.saturating_sub(srv.lastsave);
    let due = srv
        .config
        .save
        .iter()
        .find(|&&(secs, changes)| srv.dirty >= changes && elapsed > secs)
        .copied();
    if let Some((secs, changes)) = due
        && retry_ok
    {
        info!("{changes} changes in {secs} seconds. Saving...");
        let _ = start_bgsave(srv);
    }
}

/// What Redis does before exiting: kills a running BGSAVE, then saves when save points are
/// configured (unless NOSAVE) or SAVE was asked.
///
/// # Errors
/// The final save failed and FORCE was not given: the server must keep running.
pub fn prepare_shutdown(srv: &mut Server, opts: ShutdownOptions) -> Result<(), SaveError> {
    if srv.persistence.snapshot_busy() {
        warn!("There is a child saving an .rdb. Killing it!");
        kill_rdb_child(srv);
    }
    if (has_save_points(srv) && !opts.nosave) || opts.save {
        info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = save(srv) {
            if opts.force {
                warn!("Error trying to save the DB. Exit anyway.");
            } else {
                warn!("Error trying to save the DB, can't exit.");
                warn!(
                    "Errors trying to shut down the server. Check the logs for more information."
                );
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Stops whichever background snapshot runs, as Redis's `killRDBChild` does for either
/// child type: a BGSAVE, or a socket-target replication transfer (its replicas are dropped
/// and resynchronize later).
pub fn kill_rdb_child(srv: &mut Server) {
    kill_bgsave(srv);
    srv.abort_transfer();
}

/// FLUSHALL's persistence side, as Redis 7.0: a running BGSAVE or diskless transfer is
/// killed and, when save points are configured, the now empty dataset is saved at once
/// (which resets the change counter).
pub fn after_flushall(srv: &mut Server) {
    kill_rdb_child(srv);
    if has_save_points(srv) {
        let _ = save(srv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_keeps_the_previous_dump() {
        let dir = std::env::temp_dir().join(format!("tandem-save-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("dump.rdb"), b"previous").expect("write");
        let d = dir.to_str().expect("utf-8");
        let mut f = DumpFile::create(d, "temp-x.rdb".into(), "missing/dump.rdb", true, false)
            .expect("create");
        f.write(b"REDIS0010").expect("write");
        assert!(matches!(f.commit(), Err(SaveError::Rename { .. })));
        assert_eq!(
            std::fs::read(dir.join("dump.rdb")).expect("read"),
            b"previous"
        );
        assert!(!dir.join("temp-x.rdb").exists(), "temp file removed");
        // With incremental fsync, across several sync points: every byte lands, in order.
        let mut f =
            DumpFile::create(d, "temp-y.rdb".into(), "dump.rdb", true, true).expect("create");
        let body: Vec<u8> = (0..(2 * AUTOSYNC_BYTES + 12345)).map(|i| i as u8).collect();
        for piece in body.chunks(300_007) {
            f.write(piece).expect("write");
        }
        let size = body.len() as u64 + 8;
        assert_eq!(f.commit().expect("commit"), size);
        let dump = std::fs::read(dir.join("dump.rdb")).expect("read");
        assert_eq!(dump.len() as u64, size);
        assert_eq!(&dump[..body.len()], &body[..]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
