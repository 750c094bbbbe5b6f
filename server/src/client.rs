//! Per-connection state. [`Client`] is owned by the connection's task; [`ClientShared`] is
//! what other parts of the server may see or poke (CLIENT LIST/KILL, pub/sub delivery,
//! wake-ups of blocked clients).

use crate::keyspace::SmallBytes;
use crate::protocol::{Args, Protocol};
use hashbrown::HashSet;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use tokio::sync::Notify;

/// The fields CLIENT LIST / CLIENT INFO print, kept current by the connection task.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
    pub name: Option<Vec<u8>>,
    pub db: usize,
    pub created_ms: u64,
    pub last_interaction_ms: u64,
    pub last_cmd: &'static str,
    pub proto: u8,
    /// Extra CLIENT LIST flags (`x` in MULTI, `b` blocked, `P` pubsub, `S` replica).
    pub flags: String,
    pub sub: usize,
    pub psub: usize,
    pub multi: i64,
    pub qbuf: usize,
    pub omem: usize,
}

/// What other tasks may see and signal about a client.
#[derive(Debug, Default)]
pub struct ClientShared {
    pub info: RefCell<ClientInfo>,
    /// Replies produced for this client by others (pub/sub messages), sent at its next turn.
    pub pending: RefCell<Vec<u8>>,
    /// Wakes the client's task: pending output, unblock, kill.
    pub notify: Notify,
    /// CLIENT KILL or a limit: close after flushing.
    pub killed: Cell<bool>,
    /// Set when a WATCHed key changed: EXEC must fail.
    pub dirty_cas: Cell<bool>,
}

/// State owned by the connection task.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub proto: Protocol,
    pub authenticated: bool,
    pub name: Option<Vec<u8>>,
    pub shared: std::rc::Rc<ClientShared>,
    /// QUIT: close once the reply is written.
    pub close_after_reply: bool,
    /// CLIENT REPLY OFF/SKIP: replies are discarded.
    pub reply_off: bool,
    pub reply_skip_next: bool,
    /// Inside MULTI: the queued commands, and whether one was refused (EXEC then aborts).
    pub multi: Option<Vec<OwnedArgs>>,
    pub multi_error: bool,
    /// WATCHed keys: (database, key).
    pub watched: Vec<(usize, SmallBytes)>,
    /// Subscribed channels and patterns.
    pub channels: HashSet<Vec<u8>>,
    pub patterns: HashSet<Vec<u8>>,
    /// This client is our master's link: its writes are obeyed on a read-only replica and
    /// its stream is proxied verbatim instead of being fed again.
    pub is_master: bool,
    /// Master offset after this client's last command (WAIT's target).
    pub woff: u64,
    /// What REPLCONF told us, for a client about to become a replica.
    pub repl_conf: crate::replication::master::ReplConf,
    /// SYNC/PSYNC received: the connection hands its socket to the replication link.
    pub sync_request: Option<crate::replication::master::SyncRequest>,
}

/// A command kept beyond its input buffer (queued in MULTI, or waiting while blocked).
#[derive(Debug, Clone, Default)]
pub struct OwnedArgs {
    buf: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl OwnedArgs {
    pub fn from_args(args: Args<'_>) -> Self {
        let mut o = OwnedArgs::default();
        for a in args.iter() {
            let start = o.buf.len();
            o.buf.extend_from_slice(a);
            o.ranges.push((start, o.buf.len()));
        }
        o
    }

    pub fn as_args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.ranges)
    }
}

impl Client {
    pub fn new(
        id: u64,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        needs_auth: bool,
    ) -> Self {
        let now = crate::clock::now_ms();
        let info = ClientInfo {
            id,
            addr: peer.map(|a| a.to_string()).unwrap_or_default(),
            laddr: local.map(|a| a.to_string()).unwrap_or_default(),
            created_ms: now,
            last_interaction_ms: now,
            last_cmd: "NULL",
            proto: 2,
            multi: -1,
            ..ClientInfo::default()
        };
        let shared = std::rc::Rc::new(ClientShared {
            info: RefCell::new(info),
            ..ClientShared::default()
        });
        Client {
            id,
            db: 0,
            proto: Protocol::Resp2,
            authenticated: !needs_auth,
            name: None,
            shared,
            close_after_reply: false,
            reply_off: false,
            reply_skip_next: false,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            is_master: false,
            woff: 0,
            repl_conf: Default::default(),
            sync_request: None,
        }
    }

    /// Channels plus patterns: a RESP2 client with any is in subscribed mode.
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}
