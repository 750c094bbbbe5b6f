//! `Transfer`: the full-sync payload, received to a temp file (`repl-diskless-load
//! disabled`, the disk sink) or fed to the loader thread as it arrives (the socket sink),
//! loaded into a new keyspace and swapped in only once complete.

use super::conn::{Conn, LinkError, TIMEOUT_TRANSFER};
use crate::keyspace::Keyspace;
use crate::rdb::Aux;
use crate::replication::framing::{self, Framing, Payload};
use crate::replication::loader;
use crate::scripting::functions;
use crate::state::Shared;
use crate::state::persistence::Loading;
use crate::state::scripting::Libraries;
use std::io::Write as _;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::info;

/// The LOADING state while a received payload is parsed (commands without the LOADING flag
/// get `-LOADING`), or async loading (the old data is served meanwhile); left on drop, also
/// when the transfer fails or the task is aborted.
struct LoadingGuard<'a> {
    state: &'a Shared,
}

impl<'a> LoadingGuard<'a> {
    fn enter(state: &'a Shared, total_bytes: u64, serve_old: bool) -> Self {
        let mut srv = state.borrow_mut();
        if serve_old {
            srv.persistence.async_loading = true;
        } else {
            srv.persistence.loading = Some(Loading {
                start_unix: crate::clock::now_ms() / 1000,
                started: std::time::Instant::now(),
                total_bytes,
                loaded_bytes: 0,
                rdb_used_mem: 0,
            });
        }
        LoadingGuard { state }
    }

    fn progress(&self, loaded: u64) {
        if let Ok(mut srv) = self.state.try_borrow_mut()
            && let Some(l) = srv.persistence.loading.as_mut()
        {
            l.loaded_bytes = loaded;
        }
    }
}

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut srv) = self.state.try_borrow_mut() {
            srv.persistence.loading = None;
            srv.persistence.async_loading = false;
        }
    }
}

/// Where the payload goes while it arrives.
enum Sink {
    /// A temp file in `dir`, loaded once complete (`repl-diskless-load disabled`).
    Disk(std::fs::File, std::path::PathBuf),
    /// The parser thread, fed as bytes arrive (diskless load).
    Parser(loader::ChunkSender),
}

/// Removes the temp file unless it became the dump.
struct TempFile(Option<std::path::PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Waits for the loader thread, writing `\n` to the master once a second meanwhile (Redis's
/// `replicationSendNewlineToMaster`), so a long load does not make it time us out.
async fn await_load(
    conn: &mut Conn,
    mut rx: tokio::sync::oneshot::Receiver<loader::Loaded>,
) -> Result<loader::Loaded, LinkError> {
    loop {
        tokio::select! {
            r = &mut rx => return r.map_err(|_| LinkError::Msg("RDB loader thread ended".into())),
            () = tokio::time::sleep(Duration::from_secs(1)) => conn.sock.write_all(b"\n").await?,
        }
    }
}

/// Receives the `$<len>` or `$EOF:<mark>` payload, loads it into a new keyspace and swaps it
/// in; the old dataset stays untouched if anything fails. To disk: the payload is written
/// to a temp file as it arrives, then parsed (LOADING meanwhile). Diskless: it is parsed as
/// it arrives; `on-empty-db` (and `swapdb` for a new history) answer LOADING meanwhile,
/// `swapdb` on the same history keeps serving the old data (Redis's async loading).
pub(super) async fn receive(
    state: &Shared,
    conn: &mut Conn,
    replid: &str,
    offset: u64,
) -> Result<(), LinkError> {
    let (to_disk, serve_old, dir, dbfilename, databases, limits) = {
        let srv = state.borrow();
        let c = &srv.config;
        let to_disk = match c.repl_diskless_load.as_str() {
            "swapdb" => false,
            "on-empty-db" => srv.keyspace.total_keys() > 0,
            _ => true,
        };
        (
            to_disk,
            c.repl_diskless_load == "swapdb" && srv.repl.ids.replid == replid,
            c.dir.clone(),
            c.dbfilename.clone(),
            c.databases,
            crate::rdb::convert::LoadLimits::from_config(c),
        )
    };
    let framing = loop {
        let line = conn.line(TIMEOUT_TRANSFER).await?;
        if let Some(f) = framing::parse_preamble(&line)? {
            break f;
        }
    };
    let target = if to_disk { "to disk" } else { "to parser" };
    let eof = matches!(framing, Framing::Eof(_));
    let mut payload = Payload::new(framing);
    if eof {
        info!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF {target}");
    } else {
        let total = payload.total();
        info!("MASTER <-> REPLICA sync: receiving {total} bytes from master {target}");
    }
    {
        let mut srv = state.borrow_mut();
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.sync_total = payload.total();
        m.sync_read = 0;
    }
    let mut temp = TempFile(None);
    let mut loading = None;
    let mut parsed = None;
    let mut sink = if to_disk {
        let path = std::path::Path::new(&dir).join(format!(
            "temp-{}.{}.rdb",
            crate::clock::now_ms() / 1000,
            std::process::id()
        ));
        let file = std::fs::File::create(&path)?;
        temp.0 = Some(path.clone());
        Sink::Disk(file, path)
    } else {
        loading = Some(LoadingGuard::enter(state, payload.total(), serve_old));
        info!("MASTER <-> REPLICA sync: Loading DB in memory");
        let (chunks, reader) = loader::ChunkReader::channel(16);
        parsed = Some(loader::spawn_load(reader, databases, limits)?);
        Sink::Parser(chunks)
    };
    let mut last_newline = tokio::time::Instant::now();
    // The disk sink's buffer, written out and refilled in place.
    let mut spare = Vec::new();
    loop {
        let mut bytes = match &sink {
            Sink::Parser(chunks) => chunks.buffer(),
            Sink::Disk(..) => std::mem::take(&mut spare),
        };
        let took = payload.feed(&conn.buf, &mut bytes);
        conn.buf.drain(..took);
        match &mut sink {
            Sink::Disk(f, _) => {
                f.write_all(&bytes)?;
                bytes.clear();
                spare = bytes;
            }
            // A closed channel means the parser already failed: its error follows.
            Sink::Parser(chunks) => {
                if !bytes.is_empty() && chunks.tx.send(bytes).await.is_err() {
                    break;
                }
            }
        }
        if payload.is_complete() {
            break;
        }
        {
            let mut srv = state.borrow_mut();
            let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
            m.sync_read = payload.received();
            m.last_io_ms = crate::clock::now_ms();
        }
        if let Some(l) = &loading {
            l.progress(payload.received());
        }
        if matches!(sink, Sink::Parser(_)) && last_newline.elapsed() >= Duration::from_secs(1) {
            conn.sock.write_all(b"\n").await?;
            last_newline = tokio::time::Instant::now();
        }
        conn.fill(TIMEOUT_TRANSFER).await?;
    }
    let received = payload.received();
    let parsed = match sink {
        Sink::Disk(f, path) => {
            // An fsync of a dataset-sized file takes seconds: off the main thread, which
            // keeps answering clients meanwhile.
            tokio::task::spawn_blocking(move || f.sync_all())
                .await
                .map_err(|e| LinkError::Msg(format!("fsync of the received RDB aborted: {e}")))??;
            loading = Some(LoadingGuard::enter(state, received, false));
            info!("MASTER <-> REPLICA sync: Flushing old data");
            info!("MASTER <-> REPLICA sync: Loading DB in memory");
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            loader::spawn_load(file, databases, limits)?
        }
        Sink::Parser(chunks) => {
            // The end of the payload: the parser sees EOF after what it was sent.
            drop(chunks);
            parsed.ok_or_else(|| LinkError::Msg("RDB loader thread missing".into()))?
        }
    };
    let loaded = await_load(conn, parsed).await?;
    let (ks, aux, libraries) = loaded.map_err(|e| {
        LinkError::Msg(format!(
            "Failed trying to load the MASTER synchronization DB from {}: {e}",
            if to_disk { "disk" } else { "socket" }
        ))
    })?;
    let libraries = compile_libraries(state, &libraries).map_err(|e| {
        LinkError::Msg(format!(
            "Failed trying to load the MASTER synchronization DB from {}: Failed loading library, {e}",
            if to_disk { "disk" } else { "socket" }
        ))
    })?;
    // The received file becomes our dump only once it loaded: a bad one never replaces a
    // good dump.
    if let Some(path) = temp.0.take() {
        std::fs::rename(&path, std::path::Path::new(&dir).join(&dbfilename))?;
    }
    drop(loading);
    state.borrow_mut().scripts.functions.libraries = libraries;
    swap_in(state, ks, &aux, replid, offset, received)?;
    if eof {
        conn.send(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
            .await?;
    }
    info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// The payload's function libraries, compiled into a new registry that replaces ours
/// (Redis empties its libraries before loading a full sync's).
fn compile_libraries(state: &Shared, codes: &[Vec<u8>]) -> Result<Libraries, String> {
    let mut srv = state.borrow_mut();
    let f = &mut srv.scripts.functions;
    let lua = functions::interpreter(f).map_err(|e| e.to_string())?;
    functions::create_all(&lua, codes.iter().map(Vec::as_slice))
}

/// The loaded payload becomes the dataset, and its replid and offset our history: the feed,
/// backlog and sub-replicas start again from there.
fn swap_in(
    state: &Shared,
    ks: Keyspace,
    aux: &Aux,
    replid: &str,
    offset: u64,
    received: u64,
) -> Result<(), LinkError> {
    let mut srv = state.borrow_mut();
    let srv = &mut *srv;
    let old = std::mem::replace(&mut srv.keyspace, ks);
    // Freeing a large dataset takes a while: off the main thread, as Redis's lazyfree.
    let _ = std::thread::Builder::new()
        .name("lazyfree".into())
        .spawn(move || drop(old));
    srv.touch_all_watched(None);
    srv.repl.ids.adopt(replid);
    srv.feed.offset = offset;
    srv.feed.attach();
    srv.repl
        .create_backlog(offset, srv.config.repl_backlog_size, false);
    srv.repl.kill_replicas();
    crate::aof::control::restart_after_sync(srv);
    let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
    m.read_off = offset;
    m.sync_read = received;
    m.db = aux.repl_stream_db.map_or(0, |d| d.max(0) as usize);
    Ok(())
}
