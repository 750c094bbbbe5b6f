//! A connection's socket: plain TCP, or TLS over it, behind one set of calls.
//!
//! The connection loop, both ends of a replication link and the busy-script path
//! (`crate::net::busy`) all drive their socket through the calls a `TcpStream` offers:
//! readiness waits, reads and writes that never block, and, while a script holds the thread,
//! reads and writes made with raw syscalls (tokio's own consult its reactor's readiness, which
//! is stale then). tokio-rustls's stream is poll-only and has none of these, so a TLS socket
//! here runs rustls's own state machine over the same TCP stream: each call moves ciphertext
//! between the socket and rustls as far as the socket allows, and the connection code stays
//! one code path for both kinds.
//!
//! The handshake is driven by the reads like any other record, so a server connection needs
//! no separate handshake step: a peer that never completes it is an idle connection, and a
//! peer that sends garbage gets an alert and its read fails. A client (the replica's link to
//! a TLS master) completes the handshake first ([`Socket::handshake`]): nothing it writes then
//! waits inside rustls for a handshake nobody drives.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream, with a TLS session over it when `tls` is set.
#[derive(Debug)]
pub struct Socket {
    tcp: TcpStream,
    tls: Option<Box<RefCell<rustls::Connection>>>,
}

impl Socket {
    pub fn plain(tcp: TcpStream) -> Self {
        Socket { tcp, tls: None }
    }

    pub fn tls(tcp: TcpStream, session: impl Into<rustls::Connection>) -> Self {
        Socket {
            tcp,
            tls: Some(Box::new(RefCell::new(session.into()))),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Completes the handshake now rather than with the first reads: a replica's link checks
    /// the master's certificate before its first command, a refused client is sent its
    /// refusal once it can read it.
    ///
    /// # Errors
    /// The socket fails, the peer closes it, or the handshake is refused (rustls's reason).
    pub async fn handshake(&self) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        loop {
            if !tls.borrow().is_handshaking() {
                return self.flush_pending().await;
            }
            self.readable().await?;
            let mut nothing = [0u8; 0];
            match self.pull(tls, &mut nothing, false) {
                Ok(0) if tls.borrow().is_handshaking() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until a read can make progress: the socket is readable, or rustls holds
    /// plaintext already. Meanwhile, ciphertext rustls still holds (the end of a reply the
    /// socket did not take at once) goes out as the socket takes it.
    ///
    /// # Errors
    /// The socket fails.
    pub async fn readable(&self) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return self.tcp.readable().await;
        };
        loop {
            if has_plaintext(&mut tls.borrow_mut()) {
                return Ok(());
            }
            if !tls.borrow().wants_write() {
                return self.tcp.readable().await;
            }
            tokio::select! {
                r = self.tcp.readable() => return r,
                r = self.tcp.writable() => {
                    r?;
                    match push(&mut tls.borrow_mut(), &mut self.io(false)) {
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether ciphertext written earlier still waits in rustls for the socket to take it
    /// ([`Socket::try_write`] of nothing sends it).
    pub fn has_pending(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.borrow().wants_write())
    }

    /// Waits until a write can make progress.
    ///
    /// # Errors
    /// The socket fails.
    pub async fn writable(&self) -> io::Result<()> {
        match &self.tls {
            Some(tls) if !tls.borrow().wants_write() => Ok(()),
            _ => self.tcp.writable().await,
        }
    }

    /// Reads what is available without waiting: `WouldBlock` when nothing is, `Ok(0)` at
    /// the end of the stream.
    ///
    /// # Errors
    /// `WouldBlock`, a socket error, or a TLS error (`InvalidData`, after the alert went
    /// out).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.tls {
            None => self.tcp.try_read(buf),
            Some(tls) => self.pull(tls, buf, false),
        }
    }

    /// [`Socket::try_read`] into the spare capacity of `buf`.
    ///
    /// # Errors
    /// As [`Socket::try_read`].
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.try_read_buf(buf);
        };
        let len = buf.len();
        buf.resize(buf.capacity().max(len + 4096), 0);
        let r = self.pull(tls, &mut buf[len..], false);
        buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Writes what the socket takes now: `WouldBlock` when it takes nothing. On TLS the
    /// count is of plaintext taken; its ciphertext may still wait in rustls, and goes out
    /// with the next write or while waiting in [`Socket::readable`].
    ///
    /// # Errors
    /// `WouldBlock`, or a socket error.
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => self.tcp.try_write(data),
            Some(tls) => self.put(tls, data, false),
        }
    }

    /// Reads everything available into `input` with raw syscalls, for when the reactor does
    /// not run (a script holds the thread). Returns true when the peer closed the connection
    /// or it failed.
    pub fn read_now(&self, input: &mut Vec<u8>) -> bool {
        let Some(tls) = &self.tls else {
            return read_available(&self.tcp, input);
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.pull(tls, &mut chunk, true) {
                Ok(0) => return true,
                Ok(n) => input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Writes what the socket takes now with raw syscalls; returns how much of `out`.
    pub fn write_now(&self, out: &[u8]) -> usize {
        let Some(tls) = &self.tls else {
            return write_available(&self.tcp, out);
        };
        let mut written = 0;
        while written < out.len() {
            match self.put(tls, &out[written..], true) {
                Ok(n) if n > 0 => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        written
    }

    /// Sends the ciphertext rustls still holds.
    async fn flush_pending(&self) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        while tls.borrow().wants_write() {
            self.tcp.writable().await?;
            match push(&mut tls.borrow_mut(), &mut self.io(false)) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn io(&self, raw: bool) -> Io<'_> {
        Io {
            tcp: &self.tcp,
            raw,
        }
    }

    /// Plaintext from rustls, reading and processing ciphertext from the socket until some
    /// comes or the socket has none. Handshake messages and alerts rustls produces on the
    /// way go out at once.
    fn pull(
        &self,
        tls: &RefCell<rustls::Connection>,
        buf: &mut [u8],
        raw: bool,
    ) -> io::Result<usize> {
        let mut tls = tls.borrow_mut();
        let mut io = self.io(raw);
        loop {
            if !buf.is_empty() {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed the socket without close_notify: the end, as on TCP.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            let n = tls.read_tls(&mut io)?;
            let processed = tls.process_new_packets();
            // An alert or the handshake's next flight; a failure to send it is not the
            // caller's concern, the read's result is.
            let _ = push(&mut tls, &mut io);
            if let Err(e) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if n == 0 {
                return match tls.reader().read(buf) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Ok(0),
                };
            }
            if buf.is_empty() {
                return Ok(n);
            }
        }
    }

    /// Plaintext into rustls once the ciphertext it held went out, then as much
    /// ciphertext as the socket takes.
    fn put(&self, tls: &RefCell<rustls::Connection>, data: &[u8], raw: bool) -> io::Result<usize> {
        let mut tls = tls.borrow_mut();
        let mut io = self.io(raw);
        push(&mut tls, &mut io)?;
        let n = tls.writer().write(data)?;
        if n == 0 && !data.is_empty() {
            return Err(io::Error::other("TLS write before the handshake completed"));
        }
        match push(&mut tls, &mut io) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }
}

/// Whether a read can return without touching the socket: plaintext is buffered, or the
/// peer's close_notify (or an error) is there to report.
fn has_plaintext(tls: &mut rustls::Connection) -> bool {
    tls.process_new_packets().map_or(true, |s| {
        s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
    })
}

/// Writes the ciphertext rustls holds until it has none (`Ok`) or the socket is full
/// (`WouldBlock`).
fn push(tls: &mut rustls::Connection, io: &mut Io<'_>) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(io)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The TCP stream as rustls reads and writes it: through tokio, whose calls keep its
/// readiness right, or with raw syscalls while the reactor does not run.
struct Io<'a> {
    tcp: &'a TcpStream,
    raw: bool,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.raw {
            return rustix::io::read(self.tcp, buf).map_err(io::Error::from);
        }
        self.tcp.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.raw {
            return rustix::io::write(self.tcp, buf).map_err(io::Error::from);
        }
        self.tcp.try_write(buf)
    }

    /// rustls hands over its records as separate buffers: one syscall for all of them.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.raw {
            return rustix::io::writev(self.tcp, bufs).map_err(io::Error::from);
        }
        self.tcp.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads what a socket has with raw syscalls; true when the peer closed it or it failed.
pub fn read_available(sock: &impl AsFd, input: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match rustix::io::read(sock, &mut chunk) {
            Ok(0) => return true,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// Writes what a socket takes now with raw syscalls; returns how much.
pub fn write_available(sock: &impl AsFd, out: &[u8]) -> usize {
    let mut written = 0;
    while written < out.len() {
        match rustix::io::write(sock, &out[written..]) {
            Ok(n) if n > 0 => written += n,
            Err(rustix::io::Errno::INTR) => {}
            _ => break,
        }
    }
    written
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(tls) = &this.tls else {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        };
        loop {
            if tls.borrow().wants_write()
                && let Poll::Ready(r) = this.tcp.poll_write_ready(cx)
            {
                r?;
                match push(&mut tls.borrow_mut(), &mut this.io(false)) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                        return Poll::Ready(Err(e));
                    }
                    _ => continue,
                }
            }
            match this.pull(tls, buf.initialize_unfilled(), false) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            ready!(this.tcp.poll_read_ready(cx))?;
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(tls) = &this.tls else {
            return Pin::new(&mut this.tcp).poll_write(cx, data);
        };
        loop {
            match this.put(tls, data, false) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(this.tcp.poll_write_ready(cx))?;
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(tls) = &this.tls else {
            return Poll::Ready(Ok(()));
        };
        while tls.borrow().wants_write() {
            match push(&mut tls.borrow_mut(), &mut this.io(false)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(this.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
                Ok(()) => {}
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(tls) = &self.tls {
            tls.borrow_mut().send_close_notify();
        }
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
