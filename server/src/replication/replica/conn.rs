//! The socket to the master with its read buffer: lines for the handshake, raw bytes for the
//! payload and the stream, every wait bounded by `repl-timeout`; and how a session fails.

use crate::replication::framing::{self, FramingError};
use crate::socket::Socket;
use crate::state::replication::feed::encode;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
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
pub(super) const TIMEOUT_HANDSHAKE: &str = "Timeout connecting to the MASTER...";
pub(super) const TIMEOUT_STREAM: &str = "MASTER timeout: no data nor PING received...";
pub(super) const TIMEOUT_TRANSFER: &str = "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.";

/// Room made for each read of the master's socket: during a full sync every read is handed
/// to the loader thread, and fewer, larger reads cost fewer wake-ups of it.
const READ_BYTES: usize = 256 * 1024;

/// A socket with a read buffer: lines for the handshake, raw bytes afterwards.
pub(super) struct Conn {
    pub(super) sock: Socket,
    pub(super) buf: Vec<u8>,
    /// `repl-timeout`: the longest wait for a byte before the handshake or the transfer
    /// fails (Redis measures it from `repl_transfer_lastio` in its cron).
    timeout: Duration,
}

impl Conn {
    pub(super) fn new(sock: Socket, timeout: Duration) -> Self {
        Conn {
            sock,
            buf: Vec::new(),
            timeout,
        }
    }

    /// Reads what is available; `on_timeout` names the phase when nothing comes within
    /// `repl-timeout`.
    pub(super) async fn fill(&mut self, on_timeout: &str) -> Result<usize, LinkError> {
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
    pub(super) async fn line(&mut self, on_timeout: &str) -> Result<String, LinkError> {
        loop {
            if let Some(line) = framing::take_line(&mut self.buf)? {
                return Ok(line);
            }
            self.fill(on_timeout).await?;
        }
    }

    pub(super) async fn send(&mut self, argv: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        encode(&mut out, argv);
        self.sock.write_all(&out).await?;
        Ok(())
    }
}
