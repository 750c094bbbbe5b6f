//! Per-connection state. [`Client`] is owned by the connection's task; [`ClientShared`] is
//! what other parts of the server may see or poke (CLIENT LIST/KILL, pub/sub delivery,
//! wake-ups of blocked clients).

use crate::keyspace::SmallBytes;
use crate::protocol::{Args, Protocol};
use hashbrown::HashSet;
use std::borrow::Cow;
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
    /// The last command, in Redis's `container|sub` form (`NULL` before the first one and
    /// after an unknown command).
    pub last_cmd: Cow<'static, str>,
    pub proto: u8,
    /// The ACL user the client is authenticated as (CLIENT LIST's `user=`).
    pub user: Vec<u8>,
    /// Extra CLIENT LIST flags (`x` in MULTI, `b` blocked, `P` pubsub, `S` replica).
    pub flags: String,
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    pub multi: i64,
    pub qbuf: usize,
    pub omem: usize,
    /// CLIENT TRACKING's CLIENT LIST flags (`t`, then `R` for a broken redirect, `B` for
    /// BCAST) and `redir` (-1 when not tracking).
    pub tracking_flags: &'static str,
    pub redir: i64,
}

impl ClientInfo {
    /// One CLIENT LIST line, in Redis 7.0's field order.
    pub fn line(&self, now_ms: u64) -> String {
        // Tracking's letters come after `OSMPxb` in Redis's order.
        let at = self
            .flags
            .find(|c| !"OSMPxb".contains(c))
            .unwrap_or(self.flags.len());
        let mut flags = self.flags.clone();
        flags.insert_str(at, self.tracking_flags);
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default(),
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_interaction_ms) / 1000,
            flags,
            self.db,
            self.sub,
            self.psub,
            self.ssub,
            self.multi,
            self.qbuf,
            16384usize.saturating_sub(self.qbuf),
            self.omem,
            16384 + self.qbuf + self.omem,
            self.last_cmd,
            String::from_utf8_lossy(&self.user),
            self.redir,
            self.proto,
        )
    }
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
    /// Unix seconds since the pending output has been over the soft output-buffer limit (0 =
    /// under it).
    pub obuf_soft_since: Cell<u64>,
    /// CLIENT UNBLOCK: end the blocking command now, with an error (`true`) or its timeout
    /// reply.
    pub unblock: Cell<Option<bool>>,
    /// The client's socket, for answering it while a script holds the server
    /// (`crate::net::busy`).
    pub socket: RefCell<Option<std::rc::Rc<crate::socket::Socket>>>,
    /// The connection waits for input with nothing buffered or unsent and an authenticated
    /// client: it can be answered directly while a script holds the server.
    pub idle: Cell<bool>,
    /// Bytes read from the socket while a script held the server and not answered then (the
    /// start of a command): the connection parses them before what it reads next.
    pub busy_input: RefCell<Vec<u8>>,
}

impl ClientShared {
    /// A WATCHed key changed: EXEC will fail, and CLIENT LIST shows the `d` flag.
    pub fn mark_dirty_cas(&self) {
        self.dirty_cas.set(true);
        let mut info = self.info.borrow_mut();
        if !info.flags.contains('d') {
            // `d` comes after `P`, `x`, `b` and before `c`, `e` in Redis's order.
            let at = info.flags.find(['c', 'e']).unwrap_or(info.flags.len());
            info.flags.insert(at, 'd');
        }
    }
}

/// State owned by the connection task.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub proto: Protocol,
    pub authenticated: bool,
    /// The ACL user whose permissions apply (`default` until AUTH names another).
    pub user: Vec<u8>,
    pub name: Option<Vec<u8>>,
    pub shared: std::rc::Rc<ClientShared>,
    /// QUIT: close once the reply is written.
    pub close_after_reply: bool,
    /// CLIENT REPLY OFF/SKIP: replies are discarded. SKIP marks the next command
    /// (`reply_skip_next`), which becomes the skipped one (`reply_skip`) once SKIP is done.
    pub reply_off: bool,
    pub reply_skip_next: bool,
    pub reply_skip: bool,
    /// CLIENT NO-EVICT: shown as the `e` flag.
    pub no_evict: bool,
    /// CLIENT CACHING YES/NO given for the next command (or transaction).
    pub tracking_caching: bool,
    /// Inside MULTI: the queued commands, and whether one was refused (EXEC then aborts).
    pub multi: Option<Vec<OwnedArgs>>,
    pub multi_error: bool,
    /// EXEC is running the queued commands (Redis's DENY_BLOCKING while in EXEC).
    pub in_exec: bool,
    /// WATCHed keys: (database, key).
    pub watched: Vec<(usize, SmallBytes)>,
    /// Subscribed channels, patterns and shard channels (SSUBSCRIBE).
    pub channels: HashSet<Vec<u8>>,
    pub patterns: HashSet<Vec<u8>>,
    /// This client is our master's link: its writes are obeyed on a read-only replica and
    /// its stream is proxied verbatim instead of being fed again.
    pub is_master: bool,
    /// Master offset after this client's last command (WAIT's target).
    pub woff: u64,
    /// What REPLCONF told us, for a client about to become a replica.
    pub repl_conf: ReplConf,
    /// SYNC/PSYNC received: the connection hands its socket to the replication link.
    pub sync_request: Option<SyncRequest>,
    pub shard_channels: HashSet<Vec<u8>>,
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
            last_cmd: Cow::Borrowed("NULL"),
            proto: 2,
            user: b"default".to_vec(),
            multi: -1,
            redir: -1,
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
            user: b"default".to_vec(),
            name: None,
            shared,
            close_after_reply: false,
            reply_off: false,
            reply_skip_next: false,
            reply_skip: false,
            no_evict: false,
            tracking_caching: false,
            multi: None,
            multi_error: false,
            in_exec: false,
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            is_master: false,
            woff: 0,
            repl_conf: Default::default(),
            sync_request: None,
            shard_channels: HashSet::new(),
        }
    }

    /// Makes `name` the client's ACL user, in what CLIENT LIST shows too.
    pub fn set_user(&mut self, name: &[u8]) {
        self.user = name.to_vec();
        self.shared.info.borrow_mut().user = name.to_vec();
    }

    /// Channels plus patterns: the count (P)(UN)SUBSCRIBE replies carry.
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether the client listens to anything, shard channels included: a RESP2 client
    /// that does is in subscribed mode, and CLIENT LIST shows `P`.
    pub fn in_pubsub(&self) -> bool {
        self.subscriptions() + self.shard_channels.len() > 0
    }

    /// Copies the subscription counts to what CLIENT LIST shows.
    pub fn sync_sub_counts(&self) {
        let mut info = self.shared.info.borrow_mut();
        info.sub = self.channels.len();
        info.psub = self.patterns.len();
        info.ssub = self.shard_channels.len();
    }

    /// Recomputes the CLIENT LIST flags from the client's state, in Redis's order. Flags set
    /// by replication (`S`, `M`, `O`) are kept.
    pub fn sync_flags(&self, blocked: bool) {
        let mut info = self.shared.info.borrow_mut();
        let mut f: String = info.flags.chars().filter(|c| "OSM".contains(*c)).collect();
        if self.in_pubsub() {
            f.push('P');
        }
        if self.multi.is_some() {
            f.push('x');
        }
        if blocked {
            f.push('b');
        }
        if self.shared.dirty_cas.get() {
            f.push('d');
        }
        if self.close_after_reply {
            f.push('c');
        }
        if self.no_evict {
            f.push('e');
        }
        info.flags = f;
    }
}

/// What the replica said about itself with REPLCONF before SYNC/PSYNC.
#[derive(Debug, Clone, Default)]
pub struct ReplConf {
    pub listening_port: u16,
    pub ip_address: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// `REPLCONF rdb-only 1` (`redis-cli --rdb`): closed once the RDB is sent.
    pub rdb_only: bool,
}

/// A SYNC or PSYNC request: the connection becomes a replica link after the command.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// PSYNC's replid and offset; `None` for SYNC (no `+FULLRESYNC` line, no ACKs).
    pub psync: Option<(String, String)>,
}
