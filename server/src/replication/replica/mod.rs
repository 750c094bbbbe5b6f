//! The replica side: the link to our master, from connecting through the handshake and the
//! RDB transfer to applying the replication stream.
//!
//! One task per configured master runs [`run`]; `REPLICAOF` aborts it (the task holds no
//! borrow of the server across an `.await`, so aborting at any await point is safe) and the
//! replication cron starts a new one. Each session goes through the phases of
//! [`LinkState`] in order, one function each, and records the phase in the state: connect
//! and handshake here, the payload in [`payload`] (to a temp file or straight to the
//! loader thread), the stream in [`stream`]. The dataset is replaced only by a complete,
//! parsed RDB. This module must not produce a stream of its own: on a replica the stream is
//! the master's bytes, proxied verbatim to sub-replicas so offsets are identical along a
//! chain.

mod conn;
mod payload;
mod stream;

use super::framing::{self, PsyncReply};
use crate::socket::Socket;
use crate::state::Shared;
use crate::state::replication::feed::encode;
use crate::state::replication::master_link::LinkState;
use conn::{Conn, LinkError, TIMEOUT_HANDSHAKE};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{info, warn};

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

/// One session with the master, phase by phase as [`LinkState`] lists them; any error ends it
/// and [`run`] starts the next after a backoff.
async fn session(state: &Shared, failures: &mut u64) -> Result<(), LinkError> {
    // As Redis, no connection to the master before the dump is loaded.
    while state.borrow().persistence.loading.is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    resume_loaded_history(state);
    set_state(state, LinkState::Connecting)?;
    let mut conn = connect(state).await?;
    set_state(state, LinkState::Handshake)?;
    handshake(state, &mut conn).await?;
    if let Some((replid, offset)) = psync(state, &mut conn).await? {
        set_state(state, LinkState::Transfer)?;
        payload::receive(state, &mut conn, &replid, offset).await?;
    }
    *failures = 0;
    go_online(state)?;
    stream::apply(state, conn).await
}

/// A dump with replication AUX fields (a restart) restores our place in the master's
/// history: the first PSYNC can continue from it.
fn resume_loaded_history(state: &Shared) {
    let mut srv = state.borrow_mut();
    let srv = &mut *srv;
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

/// `Connecting`: the TCP connection, and with `tls-replication` the TLS handshake, within
/// `repl-timeout`.
async fn connect(state: &Shared) -> Result<Conn, LinkError> {
    let (host, port, timeout, tls) = {
        let srv = state.borrow();
        let m = srv.repl.master.as_ref().ok_or(LinkError::Gone)?;
        let tls = match (srv.config.tls_replication, &srv.tls) {
            (false, _) => None,
            (true, Some(contexts)) => Some(contexts.client.clone()),
            (true, None) => return Err(LinkError::Msg("TLS is not configured".into())),
        };
        (m.host.clone(), m.port, srv.config.repl_timeout, tls)
    };
    info!("Connecting to MASTER {host}:{port}");
    let limit = Duration::from_secs(timeout.max(1));
    let sock = tokio::time::timeout(limit, async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let Some(context) = tls else {
            return Ok::<_, LinkError>(Socket::plain(tcp));
        };
        let session = rustls::ClientConnection::new(context, crate::tls::server_name(&host))
            .map_err(|e| LinkError::Msg(e.to_string()))?;
        let sock = Socket::tls(tcp, session);
        sock.handshake().await?;
        Ok(sock)
    })
    .await
    .map_err(|_| LinkError::Msg(TIMEOUT_HANDSHAKE.into()))??;
    info!("MASTER <-> REPLICA sync started");
    Ok(Conn::new(sock, limit))
}

/// `Handshake`: PING, then AUTH and the REPLCONFs in one burst, as a 7.0 replica sends them.
async fn handshake(state: &Shared, conn: &mut Conn) -> Result<(), LinkError> {
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
        } else if c.tls_replication && c.tls_port != 0 {
            c.tls_port
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
            Some(u) => encode(&mut burst, &[b"AUTH", u.as_bytes(), pass.as_bytes()]),
            None => encode(&mut burst, &[b"AUTH", pass.as_bytes()]),
        }
    }
    let port_s = listen_port.to_string();
    encode(
        &mut burst,
        &[b"REPLCONF".as_slice(), b"listening-port", port_s.as_bytes()],
    );
    if let Some(ip) = &announce_ip {
        encode(
            &mut burst,
            &[b"REPLCONF".as_slice(), b"ip-address", ip.as_bytes()],
        );
    }
    encode(
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
    Ok(())
}

/// Still `Handshake`: PSYNC with our cached history (or `? -1`). `+CONTINUE` is handled here
/// (the stream goes on from our offset, under the master's new replid if it changed); a
/// full resynchronization returns the replid and offset the payload will be at.
async fn psync(state: &Shared, conn: &mut Conn) -> Result<Option<(String, u64)>, LinkError> {
    let (psync_id, psync_off, failover) = {
        let srv = state.borrow();
        let failover = crate::replication::failover::handing_over(&srv);
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
                failover,
            )
        } else {
            info!("Partial resynchronization not possible (no cached master)");
            ("?".to_string(), "-1".to_string(), failover)
        }
    };
    // A master handing over with FAILOVER asks the target to promote itself first.
    if failover {
        conn.send(&[
            &b"PSYNC"[..],
            psync_id.as_bytes(),
            psync_off.as_bytes(),
            b"FAILOVER",
        ])
        .await?;
    } else {
        conn.send(&[b"PSYNC", psync_id.as_bytes(), psync_off.as_bytes()])
            .await?;
    }
    let reply = loop {
        let l = conn.line(TIMEOUT_HANDSHAKE).await?;
        if !l.is_empty() {
            break l;
        }
    };
    let reply = framing::parse_psync_reply(&reply);
    if failover {
        let mut srv = state.borrow_mut();
        if matches!(
            reply,
            PsyncReply::Continue(_) | PsyncReply::FullResync { .. }
        ) {
            crate::replication::failover::completed(&mut srv);
        } else {
            crate::replication::failover::abort(&mut srv, "Failover target rejected psync request");
            return Err(LinkError::Gone);
        }
    }
    match reply {
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
            return Ok(Some((replid, offset)));
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
    Ok(None)
}

/// `Connected`: the history is ours to continue from now on.
fn go_online(state: &Shared) -> Result<(), LinkError> {
    let mut srv = state.borrow_mut();
    let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
    m.state = LinkState::Connected;
    m.cached = true;
    m.down_since_ms = None;
    m.last_io_ms = crate::clock::now_ms();
    Ok(())
}
