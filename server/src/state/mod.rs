//! The server's state, in one declaration as Redis keeps it in `struct redisServer`:
//! configuration, keyspace, clients, statistics, and the replication ([`replication`]),
//! persistence ([`persistence`]) and blocking ([`blocking`]) records. It lives on one thread
//! (like Redis's main thread); tasks share it as [`Shared`] and borrow it for a batch of
//! commands, never across an `.await`.
//!
//! This layer sits below the behaviour: the command table and executor, the replication and
//! persistence tasks and the network loop import it, and it imports none of them. What it
//! does itself is what every caller must get the same way: lazy expiry with its DEL
//! propagated, WATCH and blocked-key signalling, eviction.

pub mod aof;
pub mod blocking;
pub mod commands;
pub mod persistence;
pub mod replication;
pub mod scripting;
pub mod sentinel;

use crate::client::{Client, ClientShared};
use crate::config::{Config, EvictionPolicy};
use crate::keyspace::Keyspace;
use crate::keyspace::SmallBytes;
use crate::notify::{KeyEvent, class};
use crate::pubsub::PubSub;
use crate::tracking::Tracking;
use blocking::Blocking;
use commands::CommandNames;
use hashbrown::HashMap;
use persistence::Persistence;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use replication::Repl;
use replication::feed::Feed;
use replication::master_link::MasterLink;
use replication::transfer::{Outcome, Transfer};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;
use tracing::warn;

/// Redis's refusals of a write: on a read-only replica, and on a master short of replicas.
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// Redis's refusal of a command a stale replica may not serve.
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// The state as every task holds it: one thread, borrowed between awaits.
pub type Shared = Rc<RefCell<Server>>;

/// Counters INFO stats reports.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    pub total_error_replies: u64,
    /// Errors by prefix (`ERR`, `WRONGTYPE`, ...): INFO errorstats.
    pub error_counts: HashMap<String, u64>,
    /// Per-command calls and time: INFO commandstats.
    pub command_calls: HashMap<&'static str, (u64, u64)>,
    /// Per command: calls refused before running (arity, auth, OOM) and calls that replied
    /// with an error (INFO commandstats `rejected_calls`, `failed_calls`).
    pub command_failures: HashMap<&'static str, (u64, u64)>,
    /// Samples of total_commands_processed for instantaneous_ops_per_sec: (ms, count).
    pub ops_samples: Vec<(u64, u64)>,
}

impl Stats {
    /// Commands per second over the recent samples (one per cron tick).
    pub fn instantaneous_ops(&self) -> u64 {
        match (self.ops_samples.first(), self.ops_samples.last()) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => (c1 - c0) * 1000 / (t1 - t0),
            _ => 0,
        }
    }
}

/// Converts time to the access clock stored in each entry, for the configured policy.
#[derive(Debug, Clone, Copy)]
pub struct AccessClock {
    lfu: bool,
    now_s: u32,
    /// `lfu-log-factor` and `lfu-decay-time`.
    log_factor: u64,
    decay_minutes: u64,
    /// A uniform draw in [0, 1) from the server's generator, for the LFU counter's
    /// logarithmic increment (Redis's `rand()` in `LFULogIncr`); unused under LRU.
    draw: f64,
}

/// Redis's starting LFU counter for a new object (`LFU_INIT_VAL`).
const LFU_INIT: u32 = 5;

impl AccessClock {
    /// The clock value of a newly created object: now, and (LFU) the initial counter.
    pub fn fresh(self) -> u32 {
        if self.lfu {
            (self.minutes() << 8) | LFU_INIT
        } else {
            self.now_s
        }
    }

    /// The clock value after an access, given the previous one. LFU follows Redis's
    /// `updateLFU`: decay by the minutes elapsed, then a logarithmic increment.
    pub fn touch(self, prev: u32) -> u32 {
        if self.lfu {
            let mut counter = self.lfu_counter(prev);
            if counter < 255 {
                let base = f64::from(counter.saturating_sub(LFU_INIT));
                let p = 1.0 / (base * self.log_factor as f64 + 1.0);
                if self.draw < p {
                    counter += 1;
                }
            }
            (self.minutes() << 8) | counter
        } else {
            self.now_s
        }
    }

    /// The LFU counter of a stored clock value after decay (OBJECT FREQ): minutes in the
    /// high 24 bits, a logarithmic counter in the low 8.
    pub fn lfu_counter(self, stored: u32) -> u32 {
        let counter = stored & 0xff;
        let then = stored >> 8;
        let now = self.minutes();
        let elapsed = if now >= then {
            now - then
        } else {
            0xff_ffff - then + now
        };
        // lfu-decay-time 0 means the counter never decays.
        let periods = u64::from(elapsed)
            .checked_div(self.decay_minutes)
            .unwrap_or(0);
        counter.saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
    }

    fn minutes(self) -> u32 {
        (self.now_s / 60) & 0xff_ffff
    }

    /// The clock value of a restored object (Redis's `objectSetLRUOrLFU`): under LFU the
    /// given frequency counter, otherwise the given idle seconds back from now; a fresh
    /// object when the policy's own option is missing.
    pub fn restored(self, idle_s: Option<u64>, freq: Option<u8>) -> u32 {
        match (self.lfu, idle_s, freq) {
            (true, _, Some(f)) => (self.minutes() << 8) | u32::from(f),
            (false, Some(idle), _) => {
                let idle = u32::try_from(idle).unwrap_or(u32::MAX);
                self.now_s.saturating_sub(idle)
            }
            _ => self.fresh(),
        }
    }

    /// Seconds since the last access, from an LRU clock value.
    pub fn idle_seconds(self, stored: u32) -> u64 {
        u64::from(self.now_s.saturating_sub(stored))
    }
}

pub struct Server {
    pub config: Config,
    pub keyspace: Keyspace,
    pub stats: Stats,
    pub slowlog: crate::slowlog::Slowlog,
    pub latency: crate::latency::Latency,
    /// The cron's expiry of keys nobody reads (DEBUG SET-ACTIVE-EXPIRE turns it off).
    pub active_expire_enabled: bool,
    pub clients: HashMap<u64, Rc<ClientShared>>,
    /// The clients in MONITOR mode, by id, in the order they asked.
    pub monitors: Vec<u64>,
    next_client_id: u64,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    pub feed: Feed,
    pub repl: Repl,
    pub started: Instant,
    pub run_id: String,
    pub rng: SmallRng,
    /// Unix seconds of the last successful save (LASTSAVE).
    pub lastsave: u64,
    /// SAVE/BGSAVE/loading state (INFO persistence).
    pub persistence: Persistence,
    /// The append-only file.
    pub aof: aof::Aof,
    /// Signalled by SHUTDOWN: the accept loop stops and the process exits.
    pub shutdown: Rc<tokio::sync::Notify>,
    /// A shutdown waiting for replicas to catch up (see [`crate::shutdown`]).
    pub shutdown_wait: Option<persistence::ShutdownWait>,
    /// A SIGTERM waiting for the master role to move away first (see [`crate::shutdown`]).
    pub shutdown_handover: Option<persistence::HandoverWait>,
    /// The clock commands see, in Unix ms: refreshed before each batch of commands read from
    /// a socket and by the cron, so a pipeline of commands shares one reading of the clock.
    pub now_ms: u64,
    /// CLIENT PAUSE: until when (Unix ms), and whether only writes are paused.
    pub pause: Option<(u64, bool)>,
    /// Channel and pattern subscribers.
    pub pubsub: PubSub,
    /// Keyspace notifications raised and not yet published (see [`crate::notify`]).
    pub events: Vec<KeyEvent>,
    /// Client-side caching: who must hear of a changed key.
    pub tracking: Tracking,
    /// The client whose command is running (0 between commands): a changed key is
    /// attributed to it, for CLIENT TRACKING's NOLOOP.
    pub current_client: u64,
    /// Clients WATCHing each (database, key).
    watched: HashMap<(usize, SmallBytes), Vec<u64>>,
    /// Clients blocked on keys (BLPOP and friends).
    pub blocking: Blocking,
    /// `rename-command` resolved against the command table (empty until the server starts).
    pub commands: CommandNames,
    /// Lua: the interpreter, the script cache.
    pub scripts: scripting::Scripts,
    /// The listening sockets, for accepting clients while a script holds the server. The
    /// TLS port's are not among them: its clients wait in the backlog until the script ends.
    pub listeners: Vec<Rc<tokio::net::TcpListener>>,
    /// The TLS contexts new connections take (`tls-port`, `tls-replication`); CONFIG SET of
    /// a `tls-*` directive replaces them, established sessions keep theirs.
    pub tls: Option<crate::tls::Contexts>,
    /// Connections accepted while a script held the server, waiting for their tasks; the
    /// accept loop is woken by `arrivals_ready` to start them.
    pub arrivals: Vec<Arrival>,
    pub arrivals_ready: Rc<tokio::sync::Notify>,
    /// ACL users and the ACL LOG.
    pub acl: crate::acl::Users,
    /// `+switch-master` for the Sentinel endpoint's subscribers.
    pub sentinel_events: tokio::sync::broadcast::Sender<sentinel::SwitchMaster>,
}

/// A connection accepted while a script held the server.
#[derive(Debug)]
pub struct Arrival {
    pub sock: std::net::TcpStream,
    pub peer: std::net::SocketAddr,
    /// Bytes read and not answered yet (the start of a command).
    pub input: Vec<u8>,
    /// The user it is authenticated as (by AUTH meanwhile, or a default user needing no
    /// password); `None` until then.
    pub user: Option<Vec<u8>>,
}

impl Server {
    pub fn new(config: Config) -> Self {
        crate::memory::startup();
        let run_id: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..40)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let mut acl = crate::acl::Users::default();
        acl.set_default_password(config.requirepass.as_deref().map(str::as_bytes));
        let master = config
            .replicaof
            .clone()
            .map(|(h, p)| MasterLink::new(h, p, false));
        Server {
            keyspace: Keyspace::new(config.databases),
            config,
            stats: Stats::default(),
            slowlog: crate::slowlog::Slowlog::default(),
            latency: crate::latency::Latency::default(),
            active_expire_enabled: true,
            clients: HashMap::new(),
            monitors: Vec::new(),
            next_client_id: 1,
            dirty: 0,
            feed: Feed::default(),
            repl: Repl {
                master,
                ..Default::default()
            },
            started: Instant::now(),
            run_id,
            rng: SmallRng::from_os_rng(),
            lastsave: crate::clock::now_ms() / 1000,
            persistence: Persistence::default(),
            aof: aof::Aof::default(),
            shutdown: Rc::new(tokio::sync::Notify::new()),
            shutdown_wait: None,
            shutdown_handover: None,
            pause: None,
            now_ms: crate::clock::now_ms(),
            pubsub: PubSub::default(),
            events: Vec::new(),
            tracking: Tracking::default(),
            current_client: 0,
            watched: HashMap::new(),
            blocking: Blocking::default(),
            commands: CommandNames::default(),
            scripts: scripting::Scripts::default(),
            listeners: Vec::new(),
            tls: None,
            arrivals: Vec::new(),
            arrivals_ready: Rc::new(tokio::sync::Notify::new()),
            sentinel_events: tokio::sync::broadcast::Sender::new(16),
            acl,
        }
    }

    /// Whether a CLIENT PAUSE is in effect.
    pub fn paused(&self, now_ms: u64) -> bool {
        self.pause.is_some_and(|(until, _)| until > now_ms)
    }

    pub fn next_client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// Raises a keyspace notification of `class` for `key` of database `db`; queued only
    /// when `notify-keyspace-events` enables the class.
    pub fn notify(&mut self, class: u16, event: &'static str, db: usize, key: &[u8]) {
        if self.config.notify_keyspace_events.wants(class) {
            self.events.push(KeyEvent {
                db,
                event,
                key: key.to_vec(),
            });
        }
    }

    /// A key was written: transactions WATCHing it will fail, clients blocked on it will be
    /// served (by `crate::blocking::serve`, after the current command).
    pub fn touch_key(&mut self, db: usize, key: &[u8]) {
        self.blocking.key_written(db, key);
        if self.tracking.is_active() {
            self.tracking.key_changed(key, self.current_client);
        }
        if self.watched.is_empty() {
            return;
        }
        let k = (db, SmallBytes::new(key));
        for id in self.watched.get(&k).into_iter().flatten() {
            if let Some(c) = self.clients.get(id) {
                c.mark_dirty_cas();
            }
        }
    }

    /// FLUSHDB (`Some(db)`) or FLUSHALL (`None`) is about to empty databases: every
    /// WATCHed key that exists there counts as changed. A watched key that does not exist
    /// is left alone, as in Redis. Call it before emptying.
    pub fn touch_all_watched(&mut self, db: Option<usize>) {
        if self.tracking.is_active() {
            self.tracking.flushed();
        }
        for ((d, key), ids) in &self.watched {
            if db.is_none_or(|x| x == *d) && self.keyspace.db(*d).find(key).is_some() {
                self.mark_dirty_cas(ids);
            }
        }
    }

    /// SWAPDB `a` `b`: a key WATCHed in either database counts as changed when it exists in
    /// either of them (its value may differ after the swap).
    pub fn touch_swapped_watched(&mut self, a: usize, b: usize) {
        for ((d, key), ids) in &self.watched {
            if (*d == a || *d == b)
                && (self.keyspace.db(a).find(key).is_some()
                    || self.keyspace.db(b).find(key).is_some())
            {
                self.mark_dirty_cas(ids);
            }
        }
    }

    fn mark_dirty_cas(&self, ids: &[u64]) {
        for id in ids {
            if let Some(c) = self.clients.get(id) {
                c.mark_dirty_cas();
            }
        }
    }

    pub fn watch(&mut self, client: &mut Client, key: &[u8]) {
        // A key already expired counts as absent: delete it now so its later expiry is not
        // taken for a change (Redis remembers it was expired at WATCH time instead).
        self.find_live(client.db, key, crate::clock::now_ms());
        let k = (client.db, SmallBytes::new(key));
        if client.watched.contains(&k) {
            return;
        }
        self.watched.entry(k.clone()).or_default().push(client.id);
        client.watched.push(k);
    }

    /// EXEC's last check: a WATCHed key that expired since WATCH is a change even when
    /// nothing has deleted it yet. Looking each key up deletes the expired ones, which
    /// flags the transaction.
    pub fn expire_watched(&mut self, client: &Client) {
        let now = crate::clock::now_ms();
        for (db, key) in &client.watched {
            self.find_live(*db, key, now);
        }
    }

    pub fn unwatch_all(&mut self, client: &mut Client) {
        for k in client.watched.drain(..) {
            if let Some(ids) = self.watched.get_mut(&k) {
                ids.retain(|&id| id != client.id);
                if ids.is_empty() {
                    self.watched.remove(&k);
                }
            }
        }
        client.shared.dirty_cas.set(false);
    }

    /// Whether `client_id` waits in a blocking command (CLIENT UNBLOCK applies).
    pub fn is_blocked_on_keys(&self, client_id: u64) -> bool {
        self.blocking.is_waiting(client_id)
    }

    /// Clients waiting in a blocking command or held by CLIENT PAUSE (INFO
    /// `blocked_clients`, which counts both in Redis): the ones flagged `b`.
    pub fn blocked_clients(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.info.borrow().flags.contains('b'))
            .count()
    }

    /// Forgets a client that disconnected.
    pub fn unregister_client(&mut self, client: &mut Client) {
        self.unwatch_all(client);
        self.unsubscribe_all(client);
        self.stop_monitor(client);
        self.tracking.disable(client.id);
        self.clients.remove(&client.id);
    }

    /// Takes `client` out of MONITOR mode (RESET, disconnect).
    pub fn stop_monitor(&mut self, client: &Client) {
        self.monitors.retain(|&id| id != client.id);
        client.shared.info.borrow_mut().flags.retain(|f| f != 'O');
    }

    /// Drops every subscription of `client` without replying (disconnect, RESET).
    pub fn unsubscribe_all(&mut self, client: &mut Client) {
        for ch in client.channels.drain() {
            self.pubsub.unsubscribe(&ch, client.id);
        }
        for p in client.patterns.drain() {
            self.pubsub.punsubscribe(&p, client.id);
        }
        for ch in client.shard_channels.drain() {
            self.pubsub.sunsubscribe(&ch, client.id);
        }
        client.sync_sub_counts();
    }

    pub fn access_clock(&mut self, now_ms: u64) -> AccessClock {
        let lfu = self.config.maxmemory_policy.is_lfu();
        AccessClock {
            lfu,
            now_s: (now_ms / 1000) as u32,
            log_factor: self.config.lfu_log_factor,
            decay_minutes: self.config.lfu_decay_time,
            draw: if lfu {
                rand::Rng::random(&mut self.rng)
            } else {
                0.0
            },
        }
    }

    /// The slot of `key` in database `db` if it exists and has not expired. An expired key is
    /// deleted here, and the deletion is propagated as a DEL so replicas stay identical.
    pub fn find_live(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<u32> {
        let paused = self.paused(now_ms);
        let d = self.keyspace.db_mut(db);
        let i = d.find(key)?;
        if !d.entry(i).is_expired(now_ms) {
            return Some(i);
        }
        // A replica never expires keys itself: it waits for the master's DEL.
        if paused || self.repl.is_replica() {
            // During CLIENT PAUSE the dataset must not change (a failover waits for replicas
            // to reach the master's offset): the key reads as missing but is deleted later,
            // as Redis does. No client write can run while paused, so nothing re-inserts it.
            return None;
        }
        d.remove_at(i);
        self.stats.expired_keys += 1;
        self.feed.feed(db, &[b"DEL".as_slice(), key]);
        self.notify(class::EXPIRED, "expired", db, key);
        // An expiry is a change for WATCH: the transaction must fail, as in Redis.
        self.touch_key(db, key);
        None
    }

    /// One step of the active expiry cycle: samples keys with an expiry in every database
    /// and deletes the expired ones, stopping after `budget` sampled slots.
    pub fn active_expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut expired = 0;
        if self.repl.is_replica() {
            return 0;
        }
        for db in 0..self.keyspace.num_dbs() {
            let d = self.keyspace.db(db);
            if d.expires() == 0 {
                self.keyspace.db_mut(db).record_ttls(0, 0);
                continue;
            }
            let bound = d.slot_bound();
            let mut victims = Vec::new();
            let (mut ttl_sum, mut ttl_samples) = (0, 0);
            // Random probes: a uniform sample finds expired keys in proportion to their
            // share, as Redis's sampling does, without a second index of volatile keys.
            for _ in 0..budget.min(bound as usize * 2) {
                let i = {
                    use rand::Rng;
                    self.rng.random_range(0..bound)
                };
                let Some(e) = self.keyspace.db(db).entry_at(i) else {
                    continue;
                };
                match e.expire_at() {
                    _ if e.is_expired(now_ms) => victims.push(e.key.clone()),
                    Some(at) => {
                        ttl_sum += at - now_ms;
                        ttl_samples += 1;
                    }
                    None => {}
                }
            }
            self.keyspace.db_mut(db).record_ttls(ttl_sum, ttl_samples);
            for key in victims {
                if self.find_live(db, &key, now_ms).is_none() {
                    expired += 1;
                }
            }
        }
        expired
    }

    /// A replica whose link to its master is down serves only `stale` commands when
    /// `replica-serve-stale-data` is off.
    pub fn stale(&self) -> bool {
        !self.config.replica_serve_stale_data
            && self
                .repl
                .master
                .as_ref()
                .is_some_and(|m| m.state != replication::master_link::LinkState::Connected)
    }

    /// A read-only replica refuses writes from its clients (its master's are obeyed).
    pub fn read_only_replica(&self) -> bool {
        self.repl.is_replica() && self.config.replica_read_only
    }

    /// A master with `min-replicas-to-write` has fewer good replicas than it asks for.
    pub fn lacks_good_replicas(&self) -> bool {
        !self.repl.is_replica()
            && self.config.min_replicas_to_write > 0
            && self.config.min_replicas_max_lag > 0
            && (self.repl.good_replicas(self.config.min_replicas_max_lag) as u64)
                < self.config.min_replicas_to_write
    }

    /// Whether writes must be refused for memory: `maxmemory` reached and nothing can be
    /// evicted (or the policy is `noeviction`). Evicts what the policy allows first.
    pub fn make_room(&mut self, now_ms: u64) -> bool {
        let limit = self.config.maxmemory;
        if limit == 0 {
            return true;
        }
        let mut used = crate::memory::used_memory();
        let policy = self.config.maxmemory_policy;
        while used > limit {
            if policy == EvictionPolicy::NoEviction {
                return false;
            }
            match self.evict_one(now_ms) {
                Some(()) => used = crate::memory::used_memory(),
                None => return false,
            }
        }
        true
    }

    /// Evicts the best of `maxmemory-samples` sampled keys for the policy.
    fn evict_one(&mut self, now_ms: u64) -> Option<()> {
        use rand::Rng;
        let policy = self.config.maxmemory_policy;
        let samples = self.config.maxmemory_samples.max(1);
        let mut best: Option<(usize, u32, u64)> = None;
        for db in 0..self.keyspace.num_dbs() {
            let d = self.keyspace.db(db);
            if d.is_empty() || (policy.volatile() && d.expires() == 0) {
                continue;
            }
            for _ in 0..samples {
                let Some(i) = d.random_slot(&mut self.rng) else {
                    break;
                };
                let e = d.entry(i);
                if policy.volatile() && e.expire_at().is_none() {
                    continue;
                }
                // Higher score = better victim.
                let score = match policy {
                    EvictionPolicy::AllKeysRandom | EvictionPolicy::VolatileRandom => {
                        self.rng.random::<u32>().into()
                    }
                    EvictionPolicy::VolatileTtl => u64::MAX - e.expire_at().unwrap_or(u64::MAX),
                    EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => {
                        255 - u64::from(e.access & 0xff)
                    }
                    _ => (now_ms / 1000).saturating_sub(u64::from(e.access)),
                };
                if best.is_none_or(|(_, _, s)| score > s) {
                    best = Some((db, i, score));
                }
            }
        }
        let (db, i, _) = best?;
        let entry = self.keyspace.db_mut(db).remove_at(i);
        self.stats.evicted_keys += 1;
        self.feed.feed(db, &[b"DEL".as_slice(), &entry.key]);
        self.touch_key(db, &entry.key);
        self.notify(class::EVICTED, "evicted", db, &entry.key);
        Some(())
    }
}

impl Server {
    /// Ends the transfer's snapshot (if still running) and frees the single snapshot.
    pub fn release_transfer(&mut self, transfer: &Rc<Transfer>) {
        if let Some(p) = transfer.producer.borrow_mut().take()
            && !p.is_done()
        {
            p.abort(&mut self.keyspace);
        }
        if self
            .repl
            .transfer
            .as_ref()
            .is_some_and(|t| Rc::ptr_eq(t, transfer))
        {
            self.repl.transfer = None;
            self.persistence.repl_snapshot = false;
        }
    }

    /// Kills the running transfer, if any (Redis's `killRDBChild` with a socket child): the
    /// snapshot ends now and every replica of the transfer is dropped.
    pub fn abort_transfer(&mut self) {
        let Some(transfer) = self.repl.transfer.clone() else {
            return;
        };
        warn!("Background transfer terminated by signal 10");
        self.release_transfer(&transfer);
        for t in transfer.targets.borrow().iter() {
            t.end(Outcome::Failed);
        }
        transfer.space.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::AccessClock;

    fn lfu(now_s: u32) -> AccessClock {
        AccessClock {
            lfu: true,
            now_s,
            log_factor: 10,
            decay_minutes: 1,
            draw: 0.5,
        }
    }

    #[test]
    fn lfu_follows_redis() {
        let c = lfu(600);
        let fresh = c.fresh();
        assert_eq!(c.lfu_counter(fresh), 5, "LFU_INIT_VAL");
        // From the initial value the increment probability is 1.
        let six = c.touch(fresh);
        assert_eq!(c.lfu_counter(six), 6);
        // At 6 it is 1 / (1 * lfu-log-factor + 1) = 1/11: the server's draw decides.
        assert_eq!(c.lfu_counter(c.touch(six)), 6, "a draw of 0.5 misses 1/11");
        let lucky = AccessClock { draw: 0.05, ..c };
        assert_eq!(
            lucky.lfu_counter(lucky.touch(six)),
            7,
            "a draw of 0.05 hits it"
        );
        // Three minutes later the counter has decayed by three (lfu-decay-time 1).
        let later = lfu(600 + 180);
        assert_eq!(later.lfu_counter(fresh), 2);
        let lru = AccessClock {
            lfu: false,
            ..lfu(1000)
        };
        assert_eq!(lru.fresh(), 1000);
        assert_eq!(lru.idle_seconds(990), 10);
    }
}
