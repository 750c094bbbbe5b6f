//! Sockets: the accept loop, one task per connection, and the periodic cron.
//!
//! Everything runs on one thread. A connection task reads what the socket has, parses and
//! executes every complete command in the buffer while holding the server state, then writes
//! all replies with one write: pipelined clients get one read and one write per batch.

use crate::client::{Client, OwnedArgs};
use crate::cmd::{Block, TimeoutReply};
use crate::exec::{self, Outcome};
use crate::protocol::{Parser, ProtoLimits, Reply};
use crate::server::Server;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{Instrument, debug, info};

pub type Shared = Rc<RefCell<Server>>;

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
    tokio::task::spawn_local(crate::replication::supervise(state.clone()));
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
        srv.active_expire(now, 200);
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
    }
}

/// A client blocked by BLPOP and friends.
struct Blocked {
    block: Block,
    command: OwnedArgs,
    deadline: Option<Instant>,
    db: usize,
}

async fn connection(state: Shared, mut sock: TcpStream, peer: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let local = sock.local_addr().ok();
    let Some(mut client) = register(&mut state.borrow_mut(), peer, local) else {
        let _ = sock
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut parser = Parser::new();
    let mut blocked: Option<Blocked> = None;
    let shared = client.shared.clone();
    'conn: loop {
        // Wait for input, a wake-up (pushes, unblock, kill) or a blocking timeout.
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        let deadline = blocked.as_ref().and_then(|b| b.deadline);
        let mut timed_out = false;
        tokio::select! {
            r = read_some(&sock, &mut input) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => state.borrow_mut().stats.total_net_input_bytes += n as u64,
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
            out.append(&mut shared.pending.borrow_mut());
            if let Some(b) = blocked.take() {
                srv.unblock(client.id, b.db, &b.block.keys);
                if timed_out {
                    let mut r = Reply::new(&mut out, client.proto);
                    match b.block.on_timeout {
                        TimeoutReply::NullArray => r.null_array(),
                        TimeoutReply::Null => r.null(),
                        TimeoutReply::Acked(off) => {
                            srv.repl.waiters.retain(|&id| id != client.id);
                            r.int(srv.repl.acked(off) as i64);
                        }
                    }
                } else {
                    match exec::execute(srv, &mut client, b.command.as_args(), &mut out) {
                        Outcome::Block(block, command) => {
                            srv.block(client.id, client.db, &block.keys);
                            blocked = Some(Blocked {
                                block,
                                command,
                                deadline: b.deadline,
                                db: client.db,
                            });
                        }
                        Outcome::Close => close = true,
                        Outcome::Continue => {}
                    }
                }
            }
            while blocked.is_none() && !close && client.sync_request.is_none() {
                let limits = ProtoLimits {
                    max_bulk_len: srv.config.proto_max_bulk_len as i64,
                    auth_required: !client.authenticated,
                };
                let args = match parser.next(&input, limits) {
                    Ok(Some(args)) => args,
                    Ok(None) => break,
                    Err(e) => {
                        Reply::new(&mut out, client.proto).error(&format!("ERR {e}"));
                        debug!(error = %e, "closing connection");
                        close = true;
                        break;
                    }
                };
                match exec::execute(srv, &mut client, args, &mut out) {
                    Outcome::Continue => {}
                    Outcome::Close => close = true,
                    Outcome::Block(block, command) => {
                        srv.block(client.id, client.db, &block.keys);
                        let deadline = (block.timeout_ms > 0)
                            .then(|| Instant::now() + Duration::from_millis(block.timeout_ms));
                        blocked = Some(Blocked {
                            block,
                            command,
                            deadline,
                            db: client.db,
                        });
                    }
                }
            }
            let consumed = parser.consumed();
            if client.sync_request.is_some() {
                // The connection becomes a replica link: what follows PSYNC goes to it.
                input.drain(..consumed);
            } else if consumed > 0 {
                input.drain(..consumed);
                parser.compact(consumed);
            }
            crate::replication::pump(srv);
            srv.stats.total_net_output_bytes += out.len() as u64;
            shared.info.borrow_mut().qbuf = input.len();
        }
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
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
        if let Some(req) = client.sync_request.take() {
            let conf = std::mem::take(&mut client.repl_conf);
            crate::replication::master::serve(state, sock, client, conf, req, input).await;
            return;
        }
    }
    let mut srv = state.borrow_mut();
    if let Some(b) = blocked {
        srv.unblock(client.id, b.db, &b.block.keys);
    }
    srv.unregister_client(&mut client);
}

/// Admits a new connection, or refuses it at `maxclients`.
fn register(srv: &mut Server, peer: SocketAddr, local: Option<SocketAddr>) -> Option<Client> {
    srv.stats.total_connections_received += 1;
    if srv.clients.len() as u64 >= srv.config.maxclients {
        srv.stats.rejected_connections += 1;
        return None;
    }
    let id = srv.next_client_id();
    let client = Client::new(id, Some(peer), local, srv.config.requirepass.is_some());
    srv.clients.insert(id, client.shared.clone());
    Some(client)
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
