//! Replica links seen from the master: what SYNC/PSYNC turns a client connection into.
//!
//! The connection task hands its socket to [`serve`], which decides partial or full
//! resynchronization, sends the RDB (socket or disk target), then streams the replication
//! stream and reads `REPLCONF ACK`s. The stream bytes reach a link through
//! [`Link::push`], called by [`super::pump`] on the main thread; the link's task writes
//! them. This module must not execute commands or touch the keyspace except through the
//! RDB producer it steps (socket target) or the BGSAVE it starts or attaches to (disk
//! target).
//!
//! One keyspace snapshot exists at a time, as Redis has one child: a disk-target replica
//! attaches to a running BGSAVE (its `+FULLRESYNC` offset is the one recorded when that
//! snapshot began; the backlog supplies the stream since) or starts one, taking along the
//! replicas waiting for a socket transfer; a socket-target replica waits in `wait_bgsave`,
//! with a newline a second, until a transfer shared with the other waiting replicas takes
//! it (`fanout.rs` decides when and produces the chunks; this module writes them).

use super::fanout;
use crate::client::{Client, ReplConf, SyncRequest};
use crate::persistence::save;
use crate::protocol::{Parser, ProtoLimits};
use crate::socket::Socket;
use crate::state::Server;
use crate::state::Shared;
use crate::state::replication::replicas::{Link, ReplicaState};
use crate::state::replication::transfer::{Outcome, Target, Transfer};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// Runs a replica link on `sock` until it ends; `client` is the connection that sent
/// SYNC/PSYNC and is unregistered when the link ends.
pub async fn serve(
    state: Shared,
    mut sock: Socket,
    mut client: Client,
    conf: ReplConf,
    req: SyncRequest,
    input: Vec<u8>,
) {
    let peer_ip = {
        let info = client.shared.info.borrow();
        info.addr
            .rsplit_once(':')
            .map_or(info.addr.clone(), |(h, _)| h.to_string())
    };
    let ip = conf.ip_address.clone().unwrap_or(peer_ip);
    let link = Rc::new(Link {
        client_id: client.id,
        ip,
        port: conf.listening_port,
        state: Cell::new(ReplicaState::WaitBgsave),
        ack_off: Cell::new(0),
        ack_ms: Cell::new(crate::clock::now_ms()),
        out: RefCell::new(Vec::new()),
        accumulating: Cell::new(false),
        soft_since: Cell::new(None),
        shared: client.shared.clone(),
        asked_ms: crate::clock::now_ms(),
        socket_wait: Cell::new(false),
        transfer: RefCell::new(None),
        joined: RefCell::new(None),
    });
    client.shared.info.borrow_mut().flags = "S".into();
    let who = format!("{}:{}", link.ip, link.port);
    let result = run(&state, &mut sock, &link, &conf, &req, &who, input).await;
    if let Err(e) = result {
        info!("Connection with replica {who} lost ({e}).");
    } else {
        info!("Connection with replica {who} lost.");
    }
    // However the link ended (even between being taken by a transfer and noticing it), the
    // transfer must stop waiting for it.
    if let Some((transfer, target)) = link.transfer.take() {
        target.drop_out(&transfer);
    }
    let mut srv = state.borrow_mut();
    srv.repl.replicas.retain(|l| !Rc::ptr_eq(l, &link));
    if srv.repl.replicas.is_empty() {
        srv.repl.no_replicas_since_ms = crate::clock::now_ms();
    }
    srv.unregister_client(&mut client);
}

async fn run(
    state: &Shared,
    sock: &mut Socket,
    link: &Rc<Link>,
    conf: &ReplConf,
    req: &SyncRequest,
    who: &str,
    input: Vec<u8>,
) -> std::io::Result<()> {
    info!("Replica {who} asks for synchronization");
    let partial = {
        let mut srv = state.borrow_mut();
        let srv = &mut *srv;
        super::pump(srv);
        let partial = req.psync.as_ref().and_then(|(id, off)| {
            if id == "?" {
                info!("Full resync requested by replica {who}");
                return None;
            }
            let backlog = srv.repl.backlog.as_ref()?;
            let off: u64 = off.parse().ok()?;
            if !srv.repl.ids.accepts(id, off) {
                info!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{id}', my replication IDs are '{}' and '{}')",
                    srv.repl.ids.replid, srv.repl.ids.replid2
                );
                return None;
            }
            match backlog.since(off) {
                Some(bytes) => Some((off, bytes)),
                None => {
                    info!(
                        "Unable to partial resync with replica {who} for lack of backlog (Replica request was: {off})."
                    );
                    None
                }
            }
        });
        if let Some((_, bytes)) = &partial {
            srv.repl.sync_partial_ok += 1;
            link.state.set(ReplicaState::Online);
            link.accumulating.set(true);
            link.out.borrow_mut().extend_from_slice(bytes);
        } else {
            if req.psync.as_ref().is_some_and(|(id, _)| id != "?") {
                srv.repl.sync_partial_err += 1;
            }
            srv.repl.sync_full += 1;
            if srv.repl.backlog.is_none() {
                srv.repl
                    .create_backlog(srv.feed.offset, srv.config.repl_backlog_size, true);
                srv.feed.attach();
            }
        }
        srv.repl.replicas.push(link.clone());
        partial.map(|(off, bytes)| (off, bytes.len(), srv.repl.ids.replid.clone()))
    };
    if let Some((off, n, replid)) = partial {
        let line = if conf.capa_psync2 {
            format!("+CONTINUE {replid}\r\n")
        } else {
            "+CONTINUE\r\n".to_string()
        };
        sock.write_all(line.as_bytes()).await?;
        info!(
            "Partial resynchronization accepted: request from {who}. Sending {n} bytes of backlog starting from offset {off}."
        );
        return stream(state, sock, link, false, true, input).await;
    }
    let diskless = full_sync(state, sock, link, conf, req, who).await?;
    if conf.rdb_only {
        return Ok(());
    }
    stream(state, sock, link, diskless, req.psync.is_some(), input).await
}

/// A full synchronization up to the point the replica is online; returns whether the socket
/// target was used (the stream then waits for the first ACK).
async fn full_sync(
    state: &Shared,
    sock: &mut Socket,
    link: &Rc<Link>,
    conf: &ReplConf,
    req: &SyncRequest,
    who: &str,
) -> std::io::Result<bool> {
    let diskless = state.borrow().config.repl_diskless_sync && conf.capa_eof;
    if diskless && let Some((transfer, target)) = wait_for_transfer(state, sock, link).await? {
        diskless_sync(state, sock, link, req, who, &transfer, &target).await?;
        link.transfer.take();
        return Ok(req.psync.is_some());
    }
    disk_sync(state, sock, link, req, who).await?;
    Ok(false)
}

/// `wait_bgsave` for the socket target: newlines once a second until a transfer takes this
/// replica (see `fanout::maybe_start`); `None` when diskless sync was turned off meanwhile
/// or a disk-target BGSAVE for SYNC took it along.
async fn wait_for_transfer(
    state: &Shared,
    sock: &mut Socket,
    link: &Rc<Link>,
) -> std::io::Result<Option<(Rc<Transfer>, Rc<Target>)>> {
    {
        let srv = state.borrow();
        if srv.repl.transfer.is_some() {
            info!("Current BGSAVE has socket target. Waiting for next BGSAVE for SYNC");
        } else if srv.config.repl_diskless_sync_delay > 0 {
            info!("Delay next BGSAVE for diskless SYNC");
        }
    }
    link.socket_wait.set(true);
    fanout::maybe_start(state);
    let mut last_newline = tokio::time::Instant::now();
    loop {
        if let Some(assigned) = link.transfer.borrow().clone() {
            return Ok(Some(assigned));
        }
        // Diskless sync turned off, or a disk-target replica started a BGSAVE that takes
        // this one along.
        if !state.borrow().config.repl_diskless_sync || !link.socket_wait.get() {
            link.socket_wait.set(false);
            return Ok(None);
        }
        keepalive(sock, link, &mut last_newline).await?;
    }
}

/// Sends `\n` once a second while the replica waits (Redis's keepalive in `wait_bgsave`;
/// the replica skips empty lines before the payload header).
async fn keepalive(
    sock: &mut Socket,
    link: &Link,
    last: &mut tokio::time::Instant,
) -> std::io::Result<()> {
    if link.shared.killed.get() {
        return Err(std::io::ErrorKind::ConnectionAborted.into());
    }
    if last.elapsed() >= Duration::from_secs(1) {
        sock.write_all(b"\n").await?;
        *last = tokio::time::Instant::now();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// The disk target: attaches to the running BGSAVE when the backlog still holds the stream
/// from its snapshot instant, otherwise starts one (or waits for the running one to end),
/// then sends the dump file as `$<len>` and its bytes.
async fn disk_sync(
    state: &Shared,
    sock: &mut Socket,
    link: &Rc<Link>,
    req: &SyncRequest,
    who: &str,
) -> std::io::Result<()> {
    let mut last_newline = tokio::time::Instant::now();
    let mut told_wait = false;
    let (job_id, replid, offset) = loop {
        let attached = {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            // Taken along by the BGSAVE another replica started (see below).
            let joined = link.joined.take();
            let started = joined.is_none() && !srv.persistence.snapshot_busy();
            if started {
                info!("Starting BGSAVE for SYNC with target: disk");
                save::start_bgsave(srv).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            // Everything before this point is in the backlog; from here on the link
            // buffers the stream itself.
            super::pump(srv);
            let attached = joined.or_else(|| attach(srv, link));
            if attached.is_some() && started {
                // As Redis's `startBgsaveForReplication`, every replica waiting for a sync
                // joins this BGSAVE at its start: one replica without `capa eof` puts the
                // whole batch on the disk target.
                for l in &srv.repl.replicas {
                    if l.waits_for_socket()
                        && let Some(j) = attach(srv, l)
                    {
                        l.socket_wait.set(false);
                        *l.joined.borrow_mut() = Some(j);
                    }
                }
            } else if attached.is_some() && !started {
                info!("Waiting for end of BGSAVE for SYNC");
            }
            attached
        };
        if let Some(a) = attached {
            break a;
        }
        if !told_wait {
            info!(
                "Can't attach the replica to the current BGSAVE. Waiting for next BGSAVE for SYNC"
            );
            told_wait = true;
        }
        keepalive(sock, link, &mut last_newline).await?;
    };
    if req.psync.is_some() {
        sock.write_all(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes())
            .await?;
    }
    loop {
        let (running, ok, path) = {
            let srv = state.borrow();
            let p = &srv.persistence;
            (
                p.bgsave.as_ref().is_some_and(|j| j.id() == job_id),
                p.last_job == (job_id, true),
                std::path::Path::new(&srv.config.dir).join(&srv.config.dbfilename),
            )
        };
        if !running {
            if !ok {
                warn!("SYNC failed. BGSAVE child returned an error");
                return Err(std::io::Error::other("BGSAVE failed"));
            }
            // Opened at once: a later save renames a new file over the path, not over
            // the one this descriptor reads.
            let file = std::fs::File::open(&path)?;
            return send_file(sock, link, file, who).await;
        }
        keepalive(sock, link, &mut last_newline).await?;
    }
}

/// Attaches `link` to the running BGSAVE when the backlog still holds the stream from its
/// snapshot instant: the link's buffer starts with that stream. Returns the job and the
/// `+FULLRESYNC` replid and offset.
fn attach(srv: &Server, link: &Link) -> Option<(u64, String, u64)> {
    let job = srv.persistence.bgsave.as_ref()?;
    let (id, off) = job.start()?;
    if id != srv.repl.ids.replid {
        return None;
    }
    // `since` takes PSYNC's form: the offset of the first byte wanted.
    let bytes = srv.repl.backlog.as_ref()?.since(off + 1)?;
    link.out.borrow_mut().extend_from_slice(&bytes);
    link.accumulating.set(true);
    Some((job.id(), id.to_string(), off))
}

/// `$<len>` and the dump file, in bounded reads.
async fn send_file(
    sock: &mut Socket,
    link: &Link,
    mut file: std::fs::File,
    who: &str,
) -> std::io::Result<()> {
    use std::io::Read;
    let len = file.metadata()?.len();
    link.state.set(ReplicaState::SendBulk);
    sock.write_all(format!("${len}\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = n.min(left as usize);
        sock.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    link.put_online();
    info!("Synchronization with replica {who} succeeded");
    Ok(())
}

/// The socket target once a transfer took this replica: `+FULLRESYNC` with the transfer's
/// offset, `$EOF:<mark>`, then the shared chunks as they are queued. `repl-timeout` without
/// write progress drops the replica (Redis's `repl_last_partial_write` check); the transfer
/// continues for the others.
async fn diskless_sync(
    state: &Shared,
    sock: &mut Socket,
    link: &Link,
    req: &SyncRequest,
    who: &str,
    transfer: &Transfer,
    target: &Target,
) -> std::io::Result<()> {
    if req.psync.is_some() {
        let line = format!("+FULLRESYNC {} {}\r\n", transfer.replid, transfer.offset);
        sock.write_all(line.as_bytes()).await?;
    }
    sock.write_all(format!("$EOF:{}\r\n", transfer.mark).as_bytes())
        .await?;
    loop {
        if link.is_killed() {
            return Err(std::io::ErrorKind::ConnectionAborted.into());
        }
        if let Some(chunk) = target.pop(transfer) {
            let timeout = Duration::from_secs(state.borrow().config.repl_timeout.max(1));
            if tokio::time::timeout(timeout, sock.write_all(&chunk))
                .await
                .is_err()
            {
                warn!(
                    "Disconnecting timedout replica (full sync): {}:{}",
                    link.ip, link.port
                );
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            continue;
        }
        match target.outcome() {
            Outcome::Complete => break,
            Outcome::Failed => {
                warn!("SYNC failed. BGSAVE child returned an error");
                return Err(std::io::Error::other("BGSAVE failed"));
            }
            Outcome::Running => {
                tokio::select! {
                    () = target.ready.notified() => {}
                    () = link.shared.notify.notified() => {}
                }
            }
        }
    }
    link.put_online();
    info!(
        "Streamed RDB transfer with replica {who} succeeded (socket). Waiting for REPLCONF ACK from replica to enable streaming"
    );
    Ok(())
}

/// Streams the buffered replication stream and reads ACKs until the link ends.
/// `wait_ack`: hold the stream back until the first `REPLCONF ACK` (socket target).
/// `acks`: the replica sends ACKs (PSYNC), so `repl-timeout` applies; a SYNC client has none.
///
/// Writing never blocks the loop: a replica behind a cut link stops taking bytes, and its
/// `repl-timeout` must still fire (and its ACKs still be read while a large write drains).
async fn stream(
    state: &Shared,
    sock: &mut Socket,
    link: &Rc<Link>,
    mut wait_ack: bool,
    acks: bool,
    mut input: Vec<u8>,
) -> std::io::Result<()> {
    let mut parser = Parser::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut written = 0;
    let mut tick = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        if link.shared.killed.get() {
            return Err(std::io::ErrorKind::ConnectionAborted.into());
        }
        let timeout = state.borrow().config.repl_timeout;
        if acks && crate::clock::now_ms().saturating_sub(link.ack_ms.get()) > timeout * 1000 {
            warn!(
                "Disconnecting timedout replica (streaming sync): {}:{}",
                link.ip, link.port
            );
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        if !wait_ack && written == pending.len() {
            pending = std::mem::take(&mut *link.out.borrow_mut());
            written = 0;
            link.shared.info.borrow_mut().omem = 0;
        }
        let writing = written < pending.len();
        tokio::select! {
            r = sock.writable(), if writing => {
                r?;
                match sock.try_write(&pending[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            r = sock.readable() => {
                r?;
                let mut buf = [0u8; 4096];
                match sock.try_read(&mut buf) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
                let now = crate::clock::now_ms();
                link.ack_ms.set(now);
                // Empty lines are liveness (sent while the replica loads); never answered.
                while input.first().is_some_and(|&b| b == b'\n' || b == b'\r') {
                    input.remove(0);
                    parser = Parser::new();
                }
                let mut acked = false;
                while let Ok(Some(args)) = parser.next(&input, ProtoLimits::default()) {
                    if args.len() >= 3
                        && args.get(0).eq_ignore_ascii_case(b"replconf")
                        && args.get(1).eq_ignore_ascii_case(b"ack")
                        && let Some(off) = std::str::from_utf8(args.get(2)).ok().and_then(|s| s.parse::<u64>().ok())
                    {
                        link.ack_off.set(link.ack_off.get().max(off));
                        acked = true;
                    }
                }
                let consumed = parser.consumed();
                input.drain(..consumed);
                parser.compact(consumed);
                if acked {
                    wait_ack = false;
                    let mut srv = state.borrow_mut();
                    let srv = &mut *srv;
                    let blocking = &srv.blocking;
                    srv.repl.waiters.retain(|&id| blocking.is_waiting(id));
                    let waiters = srv.repl.waiters.clone();
                    for id in waiters {
                        crate::blocking::retry(srv, id);
                    }
                }
            }
            () = link.shared.notify.notified() => {}
            // Wakes the loop once a second for the timeout check above, however busy the
            // other branches are (a per-iteration sleep would restart on every write).
            () = tokio::time::sleep_until(tick) => {
                tick = tokio::time::Instant::now() + Duration::from_secs(1);
            }
        }
    }
}
