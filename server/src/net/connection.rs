//! One client connection. It reads what the socket has, runs every complete command in the
//! buffer while holding the server state, then writes all replies with one write: pipelined
//! clients get one read and one write per batch. While one of its commands is blocked (BLPOP
//! and friends) its client state is parked in the server and no command is read; a command
//! held by CLIENT PAUSE is kept and run again when the pause ends. Messages other clients
//! produce for it (pub/sub, a reply served while it was blocked) are taken from its pending
//! buffer whenever it wakes.
//!
//! Every wake-up takes the same steps, in [`run`]: wait, [`Connection::resume_blocked`],
//! [`Connection::run_batch`], [`Connection::flush`], and [`Connection::hand_over`] when the
//! client sent SYNC/PSYNC and the socket becomes a replica link.

use crate::blocking;
use crate::client::{Client, ClientShared, OwnedArgs};
use crate::exec::{self, Outcome};
use crate::protocol::{Parser, ProtoLimits, Reply};
use crate::socket::Socket;
use crate::state::{Server, Shared};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tracing::debug;

/// What a client refused by protected mode reads before the connection closes: Redis
/// 7.0's text, byte for byte.
pub const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// The connection's own state between wake-ups.
struct Connection {
    id: u64,
    shared: Rc<ClientShared>,
    /// `None` while the client is blocked: its state is parked in the server
    /// (`crate::blocking`) so that whoever writes its key can serve it at once.
    client: Option<Client>,
    /// When the blocked client times out.
    block_deadline: Option<Instant>,
    /// A command held by CLIENT PAUSE, run again when the pause ends or is lifted.
    postponed: Option<OwnedArgs>,
    input: Vec<u8>,
    out: Vec<u8>,
    parser: Parser,
}

/// What a connection accepted while a script held the server brings along
/// (`crate::net::busy`): the start of a command, and the user it authenticated as.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub input: Vec<u8>,
    pub user: Option<Vec<u8>>,
}

/// A socket the server took: registered as a client, or refused with this line.
pub(super) enum Admission {
    Client(Box<Client>, Rc<Socket>, Head),
    Refused(Socket, &'static [u8]),
}

/// Registers an accepted socket as a client, at once: a script that takes the server before
/// the connection's task first runs still finds it (`crate::net::busy`), idle if it needs
/// no password.
pub(super) fn admit(srv: &mut Server, sock: Socket, peer: SocketAddr, head: Head) -> Admission {
    let _ = sock.tcp().set_nodelay(true);
    let local = sock.tcp().local_addr().ok();
    let mut client = match register(srv, peer, local) {
        Ok(c) => c,
        Err(refusal) => return Admission::Refused(sock, refusal),
    };
    client.shared.info.borrow_mut().fd = i64::from(sock.raw_fd());
    if let Some(user) = &head.user {
        client.authenticated = true;
        client.set_user(user);
    }
    let sock = Rc::new(sock);
    *client.shared.socket.borrow_mut() = Some(sock.clone());
    client
        .shared
        .idle
        .set(client.authenticated && head.input.is_empty());
    Admission::Client(Box::new(client), sock, head)
}

/// Serves one admitted socket until the client leaves, is killed, or becomes a replica.
pub(super) async fn run(state: Shared, admission: Admission) {
    let (registered, sock, head) = match admission {
        Admission::Client(client, sock, head) => (*client, sock, head),
        Admission::Refused(mut sock, refusal) => {
            // A TLS peer can read the refusal once its handshake is done; one that does not
            // finish it soon gets nothing.
            let handshake = tokio::time::timeout(Duration::from_secs(5), sock.handshake()).await;
            if matches!(handshake, Ok(Ok(()))) {
                let _ = sock.write_all(refusal).await;
                let _ = sock.flush().await;
            }
            return;
        }
    };
    let mut input = head.input;
    input.reserve(16 * 1024);
    let mut conn = Connection {
        id: registered.id,
        shared: registered.shared.clone(),
        client: Some(registered),
        block_deadline: None,
        postponed: None,
        input,
        out: Vec::with_capacity(16 * 1024),
        parser: Parser::new(),
    };
    // A head may hold whole commands: run them before waiting for more.
    let mut ready = !conn.input.is_empty();
    loop {
        let timed_out = if std::mem::take(&mut ready) {
            false
        } else {
            match conn.wait(&state, &sock).await {
                Some(t) => t,
                None => break,
            }
        };
        if conn.shared.killed.get() {
            break;
        }
        let (close, barrier) = {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            srv.now_ms = crate::clock::now_ms();
            conn.resume_blocked(srv, timed_out);
            let close = conn.run_batch(srv);
            crate::replication::pump(srv);
            srv.stats.total_net_output_bytes += conn.out.len() as u64;
            conn.shared.info.borrow_mut().qbuf = conn.input.len();
            (close, crate::aof::writer::ack_barrier(srv))
        };
        // `appendfsync always`: no reply leaves before the writes it acknowledges are on
        // disk.
        if let Some((sync, upto)) = barrier {
            crate::aof::writer::wait_synced(&sync, upto).await;
        }
        if !conn.flush(&sock).await || close || conn.shared.killed.get() {
            break;
        }
        if let Some(c) = conn.client.take_if(|c| c.sync_request.is_some()) {
            conn.shared.socket.borrow_mut().take();
            if let Ok(sock) = Rc::try_unwrap(sock) {
                conn.hand_over(c, state, sock).await;
            }
            return;
        }
    }
    conn.shared.socket.borrow_mut().take();
    let mut srv = state.borrow_mut();
    let client = match conn.client {
        Some(c) => Some(c),
        None => srv.blocking.cancel(conn.id),
    };
    if let Some(mut c) = client {
        srv.unregister_client(&mut c);
    }
}

impl Connection {
    /// Waits for input, a wake-up (pushes, served while blocked, unblock, kill) or a timeout
    /// (blocking command, end of a pause). `None` when the socket is closed, else whether
    /// the deadline passed.
    async fn wait(&mut self, state: &Shared, sock: &Socket) -> Option<bool> {
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(16 * 1024);
        }
        let deadline = match &self.postponed {
            Some(_) => pause_deadline(&state.borrow()),
            None => self.block_deadline,
        };
        // While a script holds the server, an idle client can be answered on its socket
        // directly (`crate::net::busy`); what was read then comes first.
        let idle = self.input.is_empty()
            && self.postponed.is_none()
            && self.client.as_ref().is_some_and(|c| c.authenticated);
        self.shared.idle.set(idle);
        let woke = tokio::select! {
            r = read_some(sock, &mut self.input) => match r {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    state.borrow_mut().stats.total_net_input_bytes += n as u64;
                    self.shared.info.borrow_mut().last_interaction_ms = crate::clock::now_ms();
                    Some(false)
                }
            },
            () = self.shared.notify.notified() => Some(false),
            () = sleep_until(deadline) => Some(true),
        };
        self.shared.idle.set(false);
        let early = std::mem::take(&mut *self.shared.busy_input.borrow_mut());
        if !early.is_empty() {
            self.input.splice(0..0, early);
        }
        woke
    }

    /// Takes the pending output, then a blocked client back once it was served, unblocked
    /// (CLIENT UNBLOCK) or timed out.
    #[inline]
    fn resume_blocked(&mut self, srv: &mut Server, timed_out: bool) {
        // Pending output first: pub/sub messages (pushed even under CLIENT REPLY OFF, as
        // in Redis 7.0) and a reply served while blocked, in the order they came.
        self.out.append(&mut self.shared.pending.borrow_mut());
        self.shared.info.borrow_mut().omem = 0;
        if self.client.is_some() {
            return;
        }
        let (id, out) = (self.id, &mut self.out);
        self.client = match self.shared.unblock.take() {
            // CLIENT UNBLOCK ... ERROR
            Some(true) => srv.blocking.cancel(id).inspect(|c| {
                Reply::new(out, c.proto).error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
            }),
            // CLIENT UNBLOCK [TIMEOUT]: as if the timeout passed.
            Some(false) => {
                let repl = &srv.repl;
                srv.blocking.time_out(id, out, |o| repl.acked(o))
            }
            None if timed_out => {
                let repl = &srv.repl;
                srv.blocking.time_out(id, out, |o| repl.acked(o))
            }
            None => srv.blocking.take_served(id),
        };
        if self.client.is_some() {
            self.block_deadline = None;
        }
    }

    /// Runs the held command, then every complete command in the input, until one blocks,
    /// is held by a pause, or turns the connection into a replica link. Returns whether the
    /// connection must close.
    #[inline]
    fn run_batch(&mut self, srv: &mut Server) -> bool {
        let mut close = false;
        let mut park = None;
        if let Some(c) = self.client.as_mut() {
            let mut next = self.postponed.take();
            while !close {
                let limits = ProtoLimits {
                    max_bulk_len: srv.config.proto_max_bulk_len as i64,
                    auth_required: !c.authenticated,
                };
                let outcome = match next.take() {
                    Some(held) => exec::execute(srv, c, held.as_args(), &mut self.out),
                    None => match self.parser.next(&self.input, limits) {
                        Ok(Some(args)) => exec::execute(srv, c, args, &mut self.out),
                        Ok(None) => break,
                        Err(e) => {
                            Reply::new(&mut self.out, c.proto).error(&format!("ERR {e}"));
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
                        self.postponed = Some(command);
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
            let consumed = self.parser.consumed();
            if consumed > 0 {
                self.input.drain(..consumed);
                self.parser.compact(consumed);
            }
        }
        if let Some((block, command)) = park
            && let Some(c) = self.client.take()
        {
            self.block_deadline = (block.timeout_ms > 0)
                .then(|| Instant::now().checked_add(Duration::from_millis(block.timeout_ms)))
                .flatten();
            srv.blocking.park(c, block, command);
        }
        close
    }

    /// Writes the batch's replies; false when the connection must close.
    async fn flush(&mut self, sock: &Socket) -> bool {
        if self.out.is_empty() {
            return true;
        }
        if !write_out(sock, &self.out, &self.shared).await {
            return false;
        }
        self.out.clear();
        if self.out.capacity() > 1 << 20 {
            self.out.shrink_to(16 * 1024);
        }
        true
    }

    /// SYNC/PSYNC: the socket, the client and the input not yet parsed go to a replica link
    /// (`crate::replication::master`), which unregisters the client when it ends.
    async fn hand_over(self, mut client: Client, state: Shared, sock: Socket) {
        let req = client.sync_request.take();
        let conf = std::mem::take(&mut client.repl_conf);
        if let Some(req) = req {
            crate::replication::master::serve(state, sock, client, conf, req, self.input).await;
        }
    }
}

/// Writes `out` to the socket. Returns false when the connection must close: a write failed,
/// or the client was killed while its socket was full (a subscriber over its output-buffer
/// limit must be dropped at once, not once it reads again).
async fn write_out(sock: &Socket, out: &[u8], shared: &ClientShared) -> bool {
    let mut written = match sock.try_write(out) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return false,
    };
    let mut woken = false;
    // On TLS the reply is out once rustls holds no ciphertext of it either (a write of
    // nothing sends it): a client closed right after (QUIT, a kill) still gets all of it.
    while written < out.len() || sock.has_pending() {
        tokio::select! {
            r = sock.writable() => match r.and_then(|()| sock.try_write(&out[written..])) {
                Ok(0) if written < out.len() => return false,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
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
        && srv.acl.default_needs_no_auth()
        && !peer.ip().to_canonical().is_loopback()
    {
        srv.stats.rejected_connections += 1;
        return Err(PROTECTED_MODE_DENIED);
    }
    let id = srv.next_client_id();
    let client = Client::new(id, Some(peer), local, !srv.acl.default_needs_no_auth());
    srv.clients.insert(id, client.shared.clone());
    Ok(client)
}

/// Reads what the socket has into `buf`.
///
/// Unlike `read_buf`, a read that did not fill the buffer also clears the socket's
/// readiness, so the next call waits for epoll instead of first paying for a read that
/// returns EAGAIN: one syscall less per request for a client that is not pipelining. This is
/// safe with tokio's edge-triggered readiness: data arriving after our read raises a new
/// readiness event, which a stale clear does not erase. A TLS socket reads through rustls,
/// which reads the socket until it would block.
async fn read_some(sock: &Socket, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if sock.is_tls() {
        loop {
            sock.readable().await?;
            match sock.try_read_buf(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                r => return r,
            }
        }
    }
    let sock = sock.tcp();
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
