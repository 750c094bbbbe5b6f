//! Sockets: the accept loop, one task per connection ([`connection`]), and the periodic cron.
//!
//! Everything runs on one thread; the tasks share the state ([`crate::state::Shared`]) and
//! borrow it between awaits only.

pub mod busy;
mod connection;

pub use connection::PROTECTED_MODE_DENIED;

use crate::blocking;
use crate::socket::Socket;
use crate::state::{Server, Shared};
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{Instrument, debug, info, warn};

/// Accepts connections until SHUTDOWN: plain ones on `listeners`, TLS ones on
/// `tls_listeners` (each session from the server context current when it is accepted).
pub async fn serve(state: Shared, listeners: Vec<TcpListener>, tls_listeners: Vec<TcpListener>) {
    let shutdown = state.borrow().shutdown.clone();
    let listeners: Vec<Rc<TcpListener>> = listeners.into_iter().map(Rc::new).collect();
    state.borrow_mut().listeners = listeners.clone();
    let tls = tls_listeners.into_iter().map(|l| (Rc::new(l), true));
    for (listener, tls) in listeners.into_iter().map(|l| (l, false)).chain(tls) {
        tokio::task::spawn_local(accept(state.clone(), listener, tls));
    }
    tokio::task::spawn_local(start_arrivals(state.clone()));
    tokio::task::spawn_local(cron(state.clone()));
    tokio::task::spawn_local(crate::replication::cron::supervise(state.clone()));
    shutdown.notified().await;
    info!("Redis is now ready to exit, bye bye...");
}

async fn accept(state: Shared, listener: Rc<TcpListener>, tls: bool) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let sock = if tls {
            let Some(context) = state.borrow().tls.as_ref().map(|t| t.server.clone()) else {
                continue;
            };
            match rustls::ServerConnection::new(context) {
                Ok(session) => Socket::tls(sock, session),
                Err(e) => {
                    warn!("Error accepting a client connection: {e} (addr={peer})");
                    continue;
                }
            }
        } else {
            Socket::plain(sock)
        };
        start(&state, sock, peer, connection::Head::default());
    }
}

fn start(state: &Shared, sock: Socket, peer: std::net::SocketAddr, head: connection::Head) {
    let tls = sock.is_tls();
    let admission = connection::admit(&mut state.borrow_mut(), sock, peer, head);
    let span = tracing::debug_span!("client", addr = %peer, tls);
    tokio::task::spawn_local(connection::run(state.clone(), admission).instrument(span));
}

/// Starts the connections accepted while a script held the server, once it lets go.
async fn start_arrivals(state: Shared) {
    let ready = state.borrow().arrivals_ready.clone();
    loop {
        ready.notified().await;
        let arrivals = std::mem::take(&mut state.borrow_mut().arrivals);
        for a in arrivals {
            let head = connection::Head {
                input: a.input,
                user: a.user,
            };
            match tokio::net::TcpStream::from_std(a.sock) {
                Ok(sock) => start(&state, Socket::plain(sock), a.peer, head),
                Err(e) => debug!(error = %e, "could not adopt a connection accepted while busy"),
            }
        }
    }
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
        if srv.active_expire_enabled && !srv.paused(now) {
            srv.active_expire(now, 200);
        }
        crate::cmd::publish_events(srv, None);
        crate::cmd::deliver_invalidations(srv, None);
        if crate::shutdown::complete(srv, now).is_err() {
            warn!("Errors trying to shut down the server, check the logs for more information");
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
        crate::aof::writer::cron(srv);
        crate::aof::rewrite::cron(srv);
        // A key written outside a connection's command loop still serves its waiters, at the
        // next tick at the latest.
        blocking::serve(srv);
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
