//! The link to our master, while this server is a replica: where the link task
//! (`crate::replication::replica`) records its phase and counters for INFO, ROLE and WAIT.

use tokio::task::AbortHandle;

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
