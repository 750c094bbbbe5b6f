//! The replica side: the link to our master, from connecting through the handshake and the
//! RDB transfer to applying the replication stream.
//!
//! One task per configured master runs [`run`]; `REPLICAOF` aborts it (the task holds no
//! borrow of the server across an `.await`, so aborting at any await point is safe) and the
//! replication cron starts a new one. The dataset is replaced only by a complete, parsed RDB.
//! This module must not produce a stream of its own: on a replica the stream is the master's
//! bytes, proxied verbatim to sub-replicas so offsets are identical along a chain.

use super::transfer;
use crate::client::Client;
use crate::exec;
use crate::net::Shared;
use crate::protocol::{Parser, ProtoLimits};
use std::io::Write as _;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tracing::{info, warn};

/// The phase of the link to the master (Redis's `repl_state`, handshake states merged).
///
/// Transitions: `Connect` -> `Connecting` (TCP connect) -> `Handshake` (PING, AUTH,
/// REPLCONF listening-port / ip-address / capa, PSYNC) -> `Transfer` (`+FULLRESYNC`: the RDB
/// is received and loaded) -> `Connected` (streaming); `+CONTINUE` goes from `Handshake`
/// straight to `Connected`.
///
/// Cancellation: any error, EOF or `repl-timeout` without data returns to `Connect` (the
/// history is kept so the next PSYNC can continue; a failed transfer leaves the old dataset
/// in place) and a new attempt follows after a backoff; `REPLICAOF NO ONE` or a new
/// `REPLICAOF` aborts the task in whatever phase it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Transfer,
    Connected,
}

impl LinkState {
    /// The state ROLE reports.
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// This server's master, while it is a replica.
#[derive(Debug)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    pub task: Option<AbortHandle>,
    /// Whether our replid and offset describe a history the master may continue (cached
    /// master): false only for a fresh server, which asks `PSYNC ? -1`.
    pub cached: bool,
    /// Bytes read from the master's stream (`slave_read_repl_offset`).
    pub read_off: u64,
    /// Unix ms of the last byte read from the master.
    pub last_io_ms: u64,
    /// Unix ms since when the link is down, if it ever was up.
    pub down_since_ms: Option<u64>,
    /// RDB transfer progress: total (0 for EOF framing), read so far.
    pub sync_total: u64,
    pub sync_read: u64,
    /// The master client's database, kept across a partial resync.
    pub db: usize,
    /// `REPLCONF GETACK` seen: the ACK to send, with the offset before the GETACK.
    pub getack: Option<u64>,
}

impl MasterLink {
    pub fn new(host: String, port: u16, cached: bool) -> Self {
        MasterLink {
            host,
            port,
            state: LinkState::Connect,
            task: None,
            cached,
            read_off: 0,
            last_io_ms: 0,
            down_since_ms: None,
            sync_total: 0,
            sync_read: 0,
            db: 0,
            getack: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Msg(String),
    #[error("link no longer configured")]
    Gone,
    #[error("Timeout reading from MASTER")]
    Timeout,
}

/// A socket with a read buffer: lines for the handshake, raw bytes afterwards.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self, timeout: Duration) -> Result<usize, LinkError> {
        self.buf.reserve(64 * 1024);
        let n = tokio::time::timeout(
            timeout,
            tokio::io::AsyncReadExt::read_buf(&mut self.sock, &mut self.buf),
        )
        .await
        .map_err(|_| LinkError::Timeout)??;
        if n == 0 {
            return Err(LinkError::Msg("connection closed by MASTER".into()));
        }
        Ok(n)
    }

    /// One line without its `\r\n` (5 s per line, as `syncReadLine`).
    async fn line(&mut self) -> Result<String, LinkError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            self.fill(Duration::from_secs(5)).await?;
        }
    }

    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        super::encode(&mut out, argv);
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
    };
    info!("Non blocking connect for SYNC fired the event.");
    conn.send(&[b"PING"]).await?;
    let pong = conn.line().await?;
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
            Some(u) => super::encode(&mut burst, &[b"AUTH", u.as_bytes(), pass.as_bytes()]),
            None => super::encode(&mut burst, &[b"AUTH", pass.as_bytes()]),
        }
    }
    let port_s = listen_port.to_string();
    super::encode(
        &mut burst,
        &[b"REPLCONF".as_slice(), b"listening-port", port_s.as_bytes()],
    );
    if let Some(ip) = &announce_ip {
        super::encode(
            &mut burst,
            &[b"REPLCONF".as_slice(), b"ip-address", ip.as_bytes()],
        );
    }
    super::encode(
        &mut burst,
        &[b"REPLCONF".as_slice(), b"capa", b"eof", b"capa", b"psync2"],
    );
    conn.sock.write_all(&burst).await?;
    if auth.is_some() {
        let r = conn.line().await?;
        if r.starts_with('-') {
            return Err(LinkError::Msg(format!("Unable to AUTH to MASTER: {r}")));
        }
    }
    for what in ["listening-port", "ip-address", "capa"] {
        if what == "ip-address" && announce_ip.is_none() {
            continue;
        }
        let r = conn.line().await?;
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
        let l = conn.line().await?;
        if !l.is_empty() {
            break l;
        }
    };
    if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            let off = srv.feed.offset;
            if new_id.len() == 40 && new_id != srv.repl.ids.replid {
                srv.repl.ids.follow(new_id, off);
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
    } else if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split(' ');
        let id = it.next().unwrap_or_default().to_string();
        let off: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if id.len() != 40 {
            return Err(LinkError::Msg(
                "Master replied with wrong +FULLRESYNC syntax.".into(),
            ));
        }
        info!("Full resync from master: {id}:{off}");
        set_state(state, LinkState::Transfer)?;
        receive_rdb(state, &mut conn, &id, off).await?;
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(LinkError::Msg(format!(
            "Master is currently unable to PSYNC but should be in the future: {reply}"
        )));
    } else {
        return Err(LinkError::Msg(format!(
            "Unexpected reply to PSYNC from master: {reply}"
        )));
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

/// Receives the `$<len>` or `$EOF:<mark>` payload, loads it into a new keyspace and swaps it
/// in; the old dataset stays untouched if anything fails.
async fn receive_rdb(
    state: &Shared,
    conn: &mut Conn,
    replid: &str,
    offset: u64,
) -> Result<(), LinkError> {
    let (timeout, to_disk, dir, dbfilename) = {
        let srv = state.borrow();
        let c = &srv.config;
        let to_disk = match c.repl_diskless_load.as_str() {
            "swapdb" => false,
            "on-empty-db" => srv.keyspace.total_keys() > 0,
            _ => true,
        };
        (
            Duration::from_secs(c.repl_timeout.max(1)),
            to_disk,
            c.dir.clone(),
            c.dbfilename.clone(),
        )
    };
    let header = loop {
        let l = conn.line().await?;
        if l.is_empty() {
            continue;
        }
        if l.starts_with('-') {
            return Err(LinkError::Msg(format!(
                "MASTER aborted replication with an error: {l}"
            )));
        }
        if !l.starts_with('$') {
            return Err(LinkError::Msg(format!(
                "Bad protocol from MASTER, the first byte is not '$' (we received '{l}'), are you sure the host and port are right?"
            )));
        }
        break l;
    };
    let mark = header
        .strip_prefix("$EOF:")
        .filter(|m| m.len() >= 40)
        .map(|m| m.as_bytes()[..40].to_vec());
    let total: u64 = if mark.is_some() {
        0
    } else {
        header[1..]
            .parse()
            .map_err(|_| LinkError::Msg(format!("Bad bulk length from MASTER: {header}")))?
    };
    let target = if to_disk { "to disk" } else { "to parser" };
    if mark.is_some() {
        info!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF {target}");
    } else {
        info!("MASTER <-> REPLICA sync: receiving {total} bytes from master {target}");
    }
    {
        let mut srv = state.borrow_mut();
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.sync_total = total;
        m.sync_read = 0;
    }
    let mut payload: Vec<u8> = Vec::new();
    loop {
        let done = match &mark {
            Some(mark) => payload.len() >= 40 && payload.ends_with(mark),
            None => payload.len() as u64 >= total,
        };
        if done {
            break;
        }
        if conn.buf.is_empty() {
            conn.fill(timeout).await.map_err(|e| match e {
                // Redis's words, which name the setting to change.
                LinkError::Timeout => LinkError::Msg(
                    "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.".into(),
                ),
                e => e,
            })?;
        }
        let take = match &mark {
            Some(_) => conn.buf.len(),
            None => conn.buf.len().min((total - payload.len() as u64) as usize),
        };
        payload.extend(conn.buf.drain(..take));
        let mut srv = state.borrow_mut();
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.sync_read = payload.len() as u64;
        m.last_io_ms = crate::clock::now_ms();
    }
    if mark.is_some() {
        payload.truncate(payload.len() - 40);
    }
    let (databases, limits) = {
        let srv = state.borrow();
        (
            srv.config.databases,
            crate::persistence::convert::LoadLimits::from_config(&srv.config),
        )
    };
    let loaded = if to_disk {
        let dir = std::path::Path::new(&dir);
        let tmp = dir.join(format!(
            "temp-{}.{}.rdb",
            crate::clock::now_ms() / 1000,
            std::process::id()
        ));
        info!("MASTER <-> REPLICA sync: Flushing old data");
        info!("MASTER <-> REPLICA sync: Loading DB in memory");
        let path = tmp.clone();
        // Writing and fsyncing a dataset-sized file is slow too: same thread.
        let loaded = load_beside(conn, move || {
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&payload)?;
            f.sync_all()?;
            drop(payload);
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            Ok(transfer::load_rdb(file, databases, limits))
        })
        .await;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                // A full disk or a write error leaves no partial file behind.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // The received file becomes our dump only once it loaded: a bad one never
        // replaces a good dump.
        if loaded.is_ok() {
            std::fs::rename(&tmp, dir.join(&dbfilename))?;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        loaded
    } else {
        info!("MASTER <-> REPLICA sync: Loading DB in memory");
        load_beside(conn, move || {
            Ok(transfer::load_rdb(&payload[..], databases, limits))
        })
        .await?
    };
    let (ks, aux) = loaded.map_err(|e| {
        LinkError::Msg(format!(
            "Failed trying to load the MASTER synchronization DB from {}: {e}",
            if to_disk { "disk" } else { "socket" }
        ))
    })?;
    {
        let mut srv = state.borrow_mut();
        let srv = &mut *srv;
        srv.keyspace = ks;
        srv.touch_all_watched(None);
        srv.repl.ids.adopt(replid);
        srv.feed.offset = offset;
        srv.feed.attach();
        srv.repl
            .create_backlog(offset, srv.config.repl_backlog_size, false);
        srv.repl.kill_replicas();
        let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
        m.read_off = offset;
        m.db = aux.repl_stream_db.map_or(0, |d| d.max(0) as usize);
    }
    if mark.is_some() {
        conn.send(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
            .await?;
    }
    info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

type Loaded =
    Result<(crate::keyspace::Keyspace, crate::persistence::rdb::Aux), transfer::LoadError>;

/// Parses the received RDB on a blocking thread: the server keeps serving its current
/// dataset meanwhile (it is replaced only when the new one is complete), and the master gets
/// a `\n` every second so its repl-timeout does not fire during a long load (Redis's
/// `replicationSendNewlineToMaster`). Loading on the main thread left a replica silent for
/// the whole load of a large dataset, to its clients and to its master.
async fn load_beside(
    conn: &mut Conn,
    load: impl FnOnce() -> std::io::Result<Loaded> + Send + 'static,
) -> Result<Loaded, LinkError> {
    let mut job = tokio::task::spawn_blocking(load);
    loop {
        tokio::select! {
            r = &mut job => {
                return Ok(r.map_err(|e| LinkError::Msg(format!("RDB load aborted: {e}")))??);
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                conn.sock.write_all(b"\n").await?;
            }
        }
    }
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
                return Err(LinkError::Msg(
                    "MASTER timeout: no data nor PING received...".into(),
                ));
            }
            conn.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
                .await?;
            next_ack += Duration::from_secs(1);
        }
        tokio::select! {
            r = conn.fill(Duration::from_secs(3600)) => {
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
