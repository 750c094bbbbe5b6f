//! The replica side: the link to our master, from connecting through the handshake and the
//! RDB transfer to applying the replication stream.
//!
//! One task per configured master runs [`run`]; `REPLICAOF` aborts it (the task holds no
//! borrow of the server across an `.await`, so aborting at any await point is safe) and the
//! replication cron starts a new one. The dataset is replaced only by a complete, parsed RDB.
//! This module must not produce a stream of its own: on a replica the stream is the master's
//! bytes, proxied verbatim to sub-replicas so offsets are identical along a chain.

use super::framing::{self, Framing, FramingError, Payload, PsyncReply};
use super::loader;
use crate::client::Client;
use crate::exec;
use crate::protocol::{Parser, ProtoLimits};
use crate::state::Shared;
use crate::state::persistence::Loading;
use crate::state::replication::master_link::LinkState;
use std::io::Write as _;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Msg(String),
    #[error("link no longer configured")]
    Gone,
    #[error("{0}")]
    Framing(#[from] FramingError),
}

/// What `repl-timeout` without a byte from the master means, by phase, in Redis's words.
const TIMEOUT_HANDSHAKE: &str = "Timeout connecting to the MASTER...";
const TIMEOUT_STREAM: &str = "MASTER timeout: no data nor PING received...";
const TIMEOUT_TRANSFER: &str = "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.";

/// Room made for each read of the master's socket: during a full sync every read is handed
/// to the loader thread, and fewer, larger reads cost fewer wake-ups of it.
const READ_BYTES: usize = 256 * 1024;

/// A socket with a read buffer: lines for the handshake, raw bytes afterwards.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    /// `repl-timeout`: the longest wait for a byte before the handshake or the transfer
    /// fails (Redis measures it from `repl_transfer_lastio` in its cron).
    timeout: Duration,
}

impl Conn {
    /// Reads what is available; `on_timeout` names the phase when nothing comes within
    /// `repl-timeout`.
    async fn fill(&mut self, on_timeout: &str) -> Result<usize, LinkError> {
        self.buf.reserve(READ_BYTES);
        let n = tokio::time::timeout(
            self.timeout,
            tokio::io::AsyncReadExt::read_buf(&mut self.sock, &mut self.buf),
        )
        .await
        .map_err(|_| LinkError::Msg(on_timeout.into()))??;
        if n == 0 {
            return Err(LinkError::Msg("connection closed by MASTER".into()));
        }
        Ok(n)
    }

    /// One line without its `\r\n`.
    async fn line(&mut self, on_timeout: &str) -> Result<String, LinkError> {
        loop {
            if let Some(line) = framing::take_line(&mut self.buf)? {
                return Ok(line);
            }
            self.fill(on_timeout).await?;
        }
    }

    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        crate::state::replication::feed::encode(&mut out, argv);
        self.sock.write_all(&out).await?;
        Ok(())
    }
}

/// The link task: sessions with the master until aborted.
pub async fn run(state: Shared) {
    let mut failures: u64 = 0;
    loop {
        let started = crate::clock::now_ms();
        let result = session(&state, &mut failures).await;
        {
            let mut srv = state.borrow_mut();
            let Some(m) = srv.repl.master.as_mut() else {
                return;
            };
            if m.state == LinkState::Connected {
                info!("Connection with master lost.");
                info!("* Caching the disconnected master state.");
            }
            m.state = LinkState::Connect;
            m.down_since_ms.get_or_insert(crate::clock::now_ms());
        }
        match result {
            Err(LinkError::Gone) => return,
            Err(e) => warn!("{e}"),
            Ok(()) => {}
        }
        if crate::clock::now_ms() - started > 10_000 {
            failures = 0;
        }
        // Backoff: one attempt per second at first, then up to five seconds apart.
        failures += 1;
        tokio::time::sleep(Duration::from_millis(1000 * failures.min(5))).await;
    }
}

fn set_state(state: &Shared, s: LinkState) -> Result<(), LinkError> {
    let mut srv = state.borrow_mut();
    let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
    m.state = s;
    Ok(())
}

async fn session(state: &Shared, failures: &mut u64) -> Result<(), LinkError> {
    // As Redis, no connection to the master before the dump is loaded.
    while state.borrow().persistence.loading.is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut srv = state.borrow_mut();
        let srv = &mut *srv;
        // A dump with replication AUX fields (a restart) restores our place in the master's
        // history: the first PSYNC can continue from it.
        if let Some((id, off)) = srv.persistence.loaded_repl.take()
            && let Some(m) = srv.repl.master.as_mut()
            && !m.cached
            && off >= 0
        {
            m.cached = true;
            srv.repl.ids.adopt(&id);
            srv.feed.offset = off as u64;
            srv.feed.attach();
            srv.repl
                .create_backlog(off as u64, srv.config.repl_backlog_size, false);
        }
    }
    let (host, port, timeout) = {
        let srv = state.borrow();
        let m = srv.repl.master.as_ref().ok_or(LinkError::Gone)?;
        (m.host.clone(), m.port, srv.config.repl_timeout)
    };
    info!("Connecting to MASTER {host}:{port}");
    set_state(state, LinkState::Connecting)?;
    let sock = tokio::time::timeout(
        Duration::from_secs(timeout.max(1)),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| LinkError::Msg("Timeout connecting to the MASTER...".into()))??;
    let _ = sock.set_nodelay(true);
    info!("MASTER <-> REPLICA sync started");
    set_state(state, LinkState::Handshake)?;
    let mut conn = Conn {
        sock,
        buf: Vec::new(),
        timeout: Duration::from_secs(timeout.max(1)),
    };
    info!("Non blocking connect for SYNC fired the event.");
    conn.send(&[b"PING"]).await?;
    let pong = conn.line(TIMEOUT_HANDSHAKE).await?;
    if !(pong.starts_with('+')
        || pong.starts_with("-NOAUTH")
        || pong.starts_with("-NOPERM")
        || pong.starts_with("-ERR operation not permitted"))
    {
        return Err(LinkError::Msg(format!(
            "Error reply to PING from master: '{pong}'"
        )));
    }
    info!("Master replied to PING, replication can continue...");
    let (auth, listen_port, announce_ip) = {
        let srv = state.borrow();
        let c = &srv.config;
        let auth = c.masterauth.clone().map(|p| (c.masteruser.clone(), p));
        let port = if c.replica_announce_port > 0 {
            c.replica_announce_port as u16
        } else {
            c.port
        };
        let ip = (!c.replica_announce_ip.is_empty()).then(|| c.replica_announce_ip.clone());
        (auth, port, ip)
    };
    // AUTH, listening-port, ip-address and capa go out in one burst, as a 7.0 replica sends
    // them; then one reply line is read per command.
    let mut burst = Vec::new();
    if let Some((user, pass)) = &auth {
        match user {
            Some(u) => crate::state::replication::feed::encode(
                &mut burst,
                &[b"AUTH", u.as_bytes(), pass.as_bytes()],
            ),
            None => {
                crate::state::replication::feed::encode(&mut burst, &[b"AUTH", pass.as_bytes()])
            }
        }
    }
    let port_s = listen_port.to_string();
    crate::state::replication::feed::encode(
        &mut burst,
        &[b"REPLCONF".as_slice(), b"listening-port", port_s.as_bytes()],
    );
    if let Some(ip) = &announce_ip {
        crate::state::replication::feed::encode(
            &mut burst,
            &[b"REPLCONF".as_slice(), b"ip-address", ip.as_bytes()],
        );
    }
    crate::state::replication::feed::encode(
        &mut burst,
        &[b"REPLCONF".as_slice(), b"capa", b"eof", b"capa", b"psync2"],
    );
    conn.sock.write_all(&burst).await?;
    if auth.is_some() {
        let r = conn.line(TIMEOUT_HANDSHAKE).await?;
        if r.starts_with('-') {
            return Err(LinkError::Msg(format!("Unable to AUTH to MASTER: {r}")));
        }
    }
    for what in ["listening-port", "ip-address", "capa"] {
        if what == "ip-address" && announce_ip.is_none() {
            continue;
        }
        let r = conn.line(TIMEOUT_HANDSHAKE).await?;
        if r.starts_with('-') {
            info!("(Non critical) Master does not understand REPLCONF {what}: {r}");
        }
    }
    let (psync_id, psync_off) = {
        let srv = state.borrow();
        let m = srv.repl.master.as_ref().ok_or(LinkError::Gone)?;
        if m.cached {
            info!(
                "Trying a partial resynchronization (request {}:{}).",
                srv.repl.ids.replid,
                srv.feed.offset + 1
            );
            (
                srv.repl.ids.replid.clone(),
                (srv.feed.offset + 1).to_string(),
            )
        } else {
            info!("Partial resynchronization not possible (no cached master)");
            ("?".to_string(), "-1".to_string())
        }
    };
    conn.send(&[b"PSYNC", psync_id.as_bytes(), psync_off.as_bytes()])
        .await?;
    let reply = loop {
        let l = conn.line(TIMEOUT_HANDSHAKE).await?;
        if !l.is_empty() {
            break l;
        }
    };
    match framing::parse_psync_reply(&reply) {
        PsyncReply::Continue(new_id) => {
            {
                let mut srv = state.borrow_mut();
                let srv = &mut *srv;
                let off = srv.feed.offset;
                if let Some(new_id) = new_id.filter(|id| *id != srv.repl.ids.replid) {
                    srv.repl.ids.follow(&new_id, off);
                    info!("Master replication ID changed to {new_id}");
                    srv.repl.kill_replicas();
                }
                if srv.repl.backlog.is_none() {
                    srv.repl
                        .create_backlog(off, srv.config.repl_backlog_size, false);
                    srv.feed.attach();
                }
            }
            info!("Successful partial resynchronization with master.");
            info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        }
        PsyncReply::FullResync { replid, offset } => {
            info!("Full resync from master: {replid}:{offset}");
            set_state(state, LinkState::Transfer)?;
            receive_rdb(state, &mut conn, &replid, offset).await?;
        }
        PsyncReply::TryLater(reply) => {
            return Err(LinkError::Msg(format!(
                "Master is currently unable to PSYNC but should be in the future: {reply}"
            )));
        }
        PsyncReply::Unexpected(reply) if reply.starts_with("+FULLRESYNC") => {
            return Err(LinkError::Msg(
                "Master replied with wrong +FULLRESYNC syntax.".into(),
            ));
        }
        PsyncReply::Unexpected(reply) => {
            return Err(LinkError::Msg(format!(
                "Unexpected reply to PSYNC from master: {reply}"
            )));
        }
    }
    *failures = 0;
    {
        let mut srv = state.borrow_mut();
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.state = LinkState::Connected;
        m.cached = true;
        m.down_since_ms = None;
        m.last_io_ms = crate::clock::now_ms();
    }
    apply_stream(state, conn).await
}

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
async fn receive_rdb(
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
    let (ks, aux) = loaded.map_err(|e| {
        LinkError::Msg(format!(
            "Failed trying to load the MASTER synchronization DB from {}: {e}",
            if to_disk { "disk" } else { "socket" }
        ))
    })?;
    // The received file becomes our dump only once it loaded: a bad one never replaces a
    // good dump.
    if let Some(path) = temp.0.take() {
        std::fs::rename(&path, std::path::Path::new(&dir).join(&dbfilename))?;
    }
    drop(loading);
    {
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
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.read_off = offset;
        m.sync_read = received;
        m.db = aux.repl_stream_db.map_or(0, |d| d.max(0) as usize);
    }
    if eof {
        conn.send(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
            .await?;
    }
    info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// Applies the master's stream as the master client, proxies it to our own stream (backlog
/// and sub-replicas), ACKs every second, and answers GETACK.
async fn apply_stream(state: &Shared, mut conn: Conn) -> Result<(), LinkError> {
    let mut client = {
        let mut srv = state.borrow_mut();
        let id = srv.next_client_id();
        let mut c = Client::new(id, None, None, false);
        c.is_master = true;
        c.db = srv.repl.master.as_ref().map_or(0, |m| m.db);
        c.shared.info.borrow_mut().flags = "M".into();
        srv.clients.insert(id, c.shared.clone());
        c
    };
    let result = stream_loop(state, &mut conn, &mut client).await;
    let mut srv = state.borrow_mut();
    if let Some(m) = srv.repl.master.as_mut() {
        m.db = client.db;
    }
    srv.unregister_client(&mut client);
    result
}

async fn stream_loop(
    state: &Shared,
    conn: &mut Conn,
    client: &mut Client,
) -> Result<(), LinkError> {
    let mut parser = Parser::new();
    let mut sink = Vec::new();
    let mut next_ack = tokio::time::Instant::now();
    loop {
        let ack = {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            srv.now_ms = crate::clock::now_ms();
            loop {
                let before = parser.consumed();
                let limits = ProtoLimits {
                    max_bulk_len: srv.config.proto_max_bulk_len as i64,
                    auth_required: false,
                };
                let args = match parser.next(&conn.buf, limits) {
                    Ok(Some(a)) => a,
                    Ok(None) => break,
                    Err(e) => {
                        return Err(LinkError::Msg(format!("Protocol error from MASTER: {e}")));
                    }
                };
                exec::execute(srv, client, args, &mut sink);
                sink.clear();
                let after = parser.consumed();
                srv.feed.feed_raw(&conn.buf[before..after]);
            }
            super::pump(srv);
            let consumed = parser.consumed();
            conn.buf.drain(..consumed);
            parser.compact(consumed);
            srv.repl.master.as_mut().and_then(|m| m.getack.take())
        };
        if let Some(off) = ack {
            conn.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
                .await?;
        }
        if tokio::time::Instant::now() >= next_ack {
            let (off, last_io, timeout) = {
                let srv = state.borrow();
                let m = srv.repl.master.as_ref().ok_or(LinkError::Gone)?;
                (srv.feed.offset, m.last_io_ms, srv.config.repl_timeout)
            };
            if crate::clock::now_ms().saturating_sub(last_io) > timeout * 1000 {
                return Err(LinkError::Msg(TIMEOUT_STREAM.into()));
            }
            conn.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
                .await?;
            next_ack += Duration::from_secs(1);
        }
        tokio::select! {
            r = conn.fill(TIMEOUT_STREAM) => {
                let n = r?;
                let mut srv = state.borrow_mut();
                let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
                m.read_off += n as u64;
                m.last_io_ms = crate::clock::now_ms();
            }
            () = tokio::time::sleep_until(next_ack) => {}
        }
    }
}
