//! Sockets: the accept loop, one task per connection, and the periodic cron.
//!
//! Everything runs on one thread. A connection task reads what the socket has, parses and
//! executes every complete command in the buffer while holding the server state, then writes
//! all replies with one write: pipelined clients get one read and one write per batch.
//! A connection stops reading commands while one of its commands is blocked (BLPOP and
//! friends) or held by CLIENT PAUSE; messages other clients produce for it (pub/sub) are
//! taken from its pending buffer whenever it wakes.

use crate::blocking;
use crate::client::{Client, ClientShared, OwnedArgs};
use crate::exec::{self, Outcome};
use crate::protocol::{Parser, ProtoLimits, Reply};
use crate::state::{Server, Shared};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{Instrument, debug, info};

/// Accepts connections until SHUTDOWN.
pub async fn serve(state: Shared, listeners: Vec<TcpListener>) {
    let shutdown = state.borrow().shutdown.clone();
    for listener in listeners {
        let st = state.clone();
        tokio::task::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((sock, peer)) => {
                        let st = st.clone();
                        let span = tracing::debug_span!("client", addr = %peer);
                        tokio::task::spawn_local(connection(st, sock, peer).instrument(span));
                    }
                    Err(e) => {
                        debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    tokio::task::spawn_local(cron(state.clone()));
    tokio::task::spawn_local(crate::replication::cron::supervise(state.clone()));
    shutdown.notified().await;
    info!("Redis is now ready to exit, bye bye...");
}

/// Periodic work, `hz` times a second: active expiry, ops/sec samples, memory figures.
async fn cron(state: Shared) {
    loop {
        let hz = state.borrow().config.hz.clamp(1, 500);
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        tick(&mut state.borrow_mut());
    }
}

fn tick(srv: &mut Server) {
    {
        let now = crate::clock::now_ms();
        srv.now_ms = now;
        // Expiry is suspended during CLIENT PAUSE so the dataset stays still, as in Redis.
        if !srv.paused(now) {
            srv.active_expire(now, 200);
        }
        let processed = srv.stats.total_commands_processed;
        let samples = &mut srv.stats.ops_samples;
        samples.push((now, processed));
        if samples.len() > 16 {
            samples.remove(0);
        }
        if srv.pause.is_some_and(|(until, _)| until <= now) {
            srv.pause = None;
        }
        crate::memory::peak(crate::memory::refresh());
        crate::persistence::save::cron(srv);
        // A key written outside a connection's command loop still serves its waiters, at the
        // next tick at the latest.
        blocking::serve(srv);
    }
}

async fn connection(state: Shared, mut sock: TcpStream, peer: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let local = sock.local_addr().ok();
    // Bound first: the borrow must end before the refusal is written (an await).
    let admitted = register(&mut state.borrow_mut(), peer, local);
    let registered = match admitted {
        Ok(c) => c,
        Err(refusal) => {
            let _ = sock.write_all(refusal).await;
            return;
        }
    };
    let id = registered.id;
    let shared = registered.shared.clone();
    shared.info.borrow_mut().fd = i64::from(sock.as_raw_fd());
    // `None` while the client is blocked: its state is parked in the server
    // (`crate::blocking`) so that whoever writes its key can serve it at once.
    let mut client = Some(registered);
    // When the blocked client times out.
    let mut block_deadline: Option<Instant> = None;
    // A command held by CLIENT PAUSE, run again when the pause ends or is lifted.
    let mut postponed: Option<OwnedArgs> = None;
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut parser = Parser::new();
    'conn: loop {
        // Wait for input, a wake-up (pushes, served while blocked, unblock, kill) or a
        // timeout (blocking command, end of a pause).
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        let deadline = match &postponed {
            Some(_) => pause_deadline(&state.borrow()),
            None => block_deadline,
        };
        let mut timed_out = false;
        tokio::select! {
            r = read_some(&sock, &mut input) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => {
                    state.borrow_mut().stats.total_net_input_bytes += n as u64;
                    shared.info.borrow_mut().last_interaction_ms = crate::clock::now_ms();
                }
            },
            () = shared.notify.notified() => {}
            () = sleep_until(deadline) => timed_out = true,
        }
        if shared.killed.get() {
            break 'conn;
        }
        let mut close = false;
        {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            srv.now_ms = crate::clock::now_ms();
            // Pending output first: pub/sub messages (pushed even under CLIENT REPLY OFF, as
            // in Redis 7.0) and a reply served while blocked, in the order they came.
            out.append(&mut shared.pending.borrow_mut());
            shared.info.borrow_mut().omem = 0;
            if client.is_none() {
                client = match shared.unblock.take() {
                    // CLIENT UNBLOCK ... ERROR
                    Some(true) => srv.blocking.cancel(id).inspect(|c| {
                        Reply::new(&mut out, c.proto)
                            .error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
                    }),
                    // CLIENT UNBLOCK [TIMEOUT]: as if the timeout passed.
                    Some(false) => {
                        let repl = &srv.repl;
                        srv.blocking.time_out(id, &mut out, |o| repl.acked(o))
                    }
                    None if timed_out => {
                        let repl = &srv.repl;
                        srv.blocking.time_out(id, &mut out, |o| repl.acked(o))
                    }
                    None => srv.blocking.take_served(id),
                };
                if client.is_some() {
                    block_deadline = None;
                }
            }
            let mut park = None;
            if let Some(c) = client.as_mut() {
                let mut next = postponed.take();
                while !close {
                    let limits = ProtoLimits {
                        max_bulk_len: srv.config.proto_max_bulk_len as i64,
                        auth_required: !c.authenticated,
                    };
                    let outcome = match next.take() {
                        Some(held) => exec::execute(srv, c, held.as_args(), &mut out),
                        None => match parser.next(&input, limits) {
                            Ok(Some(args)) => exec::execute(srv, c, args, &mut out),
                            Ok(None) => break,
                            Err(e) => {
                                Reply::new(&mut out, c.proto).error(&format!("ERR {e}"));
                                debug!(error = %e, "closing connection");
                                close = true;
                                break;
                            }
                        },
                    };
                    // Clients blocked on keys this command wrote are served before anything
                    // else runs, as in Redis.
                    blocking::serve(srv);
                    match outcome {
                        Outcome::Continue => {}
                        Outcome::Close => close = true,
                        Outcome::Paused(command) => {
                            c.sync_flags(true);
                            postponed = Some(command);
                            break;
                        }
                        Outcome::Block(block, command) => {
                            park = Some((block, command));
                            break;
                        }
                    }
                    // SYNC/PSYNC: the connection becomes a replica link.
                    if c.sync_request.is_some() {
                        break;
                    }
                }
                let consumed = parser.consumed();
                if consumed > 0 {
                    input.drain(..consumed);
                    parser.compact(consumed);
                }
            }
            if let Some((block, command)) = park
                && let Some(c) = client.take()
            {
                block_deadline = (block.timeout_ms > 0)
                    .then(|| Instant::now().checked_add(Duration::from_millis(block.timeout_ms)))
                    .flatten();
                srv.blocking.park(c, block, command);
            }
            crate::replication::pump(srv);
            srv.stats.total_net_output_bytes += out.len() as u64;
            shared.info.borrow_mut().qbuf = input.len();
        }
        if !out.is_empty() {
            if !write_out(&mut sock, &out, &shared).await {
                break 'conn;
            }
            out.clear();
            if out.capacity() > 1 << 20 {
                out.shrink_to(16 * 1024);
            }
        }
        if close || shared.killed.get() {
            break 'conn;
        }
        if let Some(mut c) = client.take_if(|c| c.sync_request.is_some()) {
            let req = c.sync_request.take();
            let conf = std::mem::take(&mut c.repl_conf);
            if let Some(req) = req {
                crate::replication::master::serve(state, sock, c, conf, req, input).await;
            }
            return;
        }
    }
    let mut srv = state.borrow_mut();
    if client.is_none() {
        client = srv.blocking.cancel(id);
    }
    if let Some(mut c) = client {
        srv.unregister_client(&mut c);
    }
}

/// Writes `out` to the socket. Returns false when the connection must close: a write failed,
/// or the client was killed while its socket was full (a subscriber over its output-buffer
/// limit must be dropped at once, not once it reads again).
async fn write_out(sock: &mut TcpStream, out: &[u8], shared: &ClientShared) -> bool {
    let mut written = match sock.try_write(out) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return false,
    };
    let mut woken = false;
    while written < out.len() {
        tokio::select! {
            r = sock.write(&out[written..]) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => written += n,
            },
            () = shared.notify.notified(), if !woken => woken = true,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if shared.killed.get() {
            return false;
        }
    }
    if woken {
        // The wake-up was for the main loop (pending pushes): keep it for the next wait.
        shared.notify.notify_one();
    }
    true
}

/// What a client refused by protected mode reads before the connection closes: Redis
/// 7.0's text, byte for byte.
pub const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Admits a new connection, or returns the error line to send before closing it: at
/// `maxclients`, or in protected mode (no password, peer not on the loopback interface).
/// As in Redis 7.0, `bind` plays no part: a server bound to a public address alone still
/// refuses unauthenticated strangers.
fn register(
    srv: &mut Server,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<Client, &'static [u8]> {
    srv.stats.total_connections_received += 1;
    if srv.clients.len() as u64 >= srv.config.maxclients {
        srv.stats.rejected_connections += 1;
        return Err(b"-ERR max number of clients reached\r\n");
    }
    // Loopback is 127.0.0.0/8 and ::1, as Redis's `connIsLocal`; an IPv4 peer on a
    // dual-stack socket (::ffff:127.0.0.1) is the same loopback client.
    if srv.config.protected_mode
        && srv.config.requirepass.is_none()
        && !peer.ip().to_canonical().is_loopback()
    {
        srv.stats.rejected_connections += 1;
        return Err(PROTECTED_MODE_DENIED);
    }
    let id = srv.next_client_id();
    let client = Client::new(id, Some(peer), local, srv.config.requirepass.is_some());
    srv.clients.insert(id, client.shared.clone());
    Ok(client)
}

/// Reads what the socket has into `buf`.
///
/// Unlike `read_buf`, a read that did not fill the buffer also clears the socket's
/// readiness, so the next call waits for epoll instead of first paying for a read that
/// returns EAGAIN: one syscall less per request for a client that is not pipelining. This is
/// safe with tokio's edge-triggered readiness: data arriving after our read raises a new
/// readiness event, which a stale clear does not erase.
async fn read_some(sock: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        sock.readable().await?;
        let spare = buf.capacity() - buf.len();
        let mut got = None;
        let r = sock.try_io(tokio::io::Interest::READABLE, || {
            let n = sock.try_read_buf(buf)?;
            got = Some(n);
            if n > 0 && n < spare {
                Err(std::io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        match (r, got) {
            (Ok(n), _) => return Ok(n),
            (Err(_), Some(n)) => return Ok(n),
            (Err(e), None) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            (Err(e), None) => return Err(e),
        }
    }
}

/// When the current CLIENT PAUSE ends, as a timer deadline.
fn pause_deadline(srv: &Server) -> Option<Instant> {
    let (until, _) = srv.pause?;
    let left = until.saturating_sub(crate::clock::now_ms());
    Some(Instant::now() + Duration::from_millis(left))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Binds every address of `bind` on `port`; `*` means all IPv4, `-::*` all IPv6 when
/// available (the leading `-` makes a failure non-fatal, as in Redis).
///
/// # Errors
/// When a mandatory address cannot be bound.
pub async fn bind(addrs: &[String], port: u16) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        let (optional, a) = match a.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, a.as_str()),
        };
        let host = match a {
            "*" => "0.0.0.0",
            "::*" => "::",
            other => other,
        };
        match TcpListener::bind((host, port)).await {
            Ok(l) => out.push(l),
            Err(e) if optional => debug!(error = %e, addr = host, "optional bind failed"),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("Could not create server TCP listening socket {host}:{port}: {e}"),
                ));
            }
        }
    }
    Ok(out)
}
