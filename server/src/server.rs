//! The server's shared state: configuration, keyspace, clients, statistics and the
//! replication feed. It lives on one thread (like Redis's main thread); connection tasks
//! borrow it for the duration of a batch of commands, never across an `.await`.

use crate::client::{Client, ClientShared};
use crate::config::{Config, EvictionPolicy};
use crate::keyspace::Keyspace;
use crate::keyspace::SmallBytes;
use crate::replication::Feed;
use hashbrown::HashMap;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::rc::Rc;
use std::time::Instant;

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
}

impl AccessClock {
    /// The clock value after an access, given the previous one.
    pub fn touch(self, prev: u32) -> u32 {
        if self.lfu {
            // minutes in the high 24 bits, a logarithmic counter in the low 8 (Redis's LFU).
            let minutes = (self.now_s / 60) & 0xff_ffff;
            let counter = (prev & 0xff).max(5);
            let counter = if counter < 255 && rand::random::<f64>() < 1.0 / f64::from(counter - 4) {
                counter + 1
            } else {
                counter
            };
            (minutes << 8) | counter
        } else {
            self.now_s
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
    pub clients: HashMap<u64, Rc<ClientShared>>,
    next_client_id: u64,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    pub feed: Feed,
    pub repl: crate::replication::Repl,
    pub started: Instant,
    pub run_id: String,
    pub rng: SmallRng,
    /// Unix seconds of the last successful save (LASTSAVE).
    pub lastsave: u64,
    /// Signalled by SHUTDOWN: the accept loop stops and the process exits.
    pub shutdown: Rc<tokio::sync::Notify>,
    /// The clock commands see, in Unix ms: refreshed before each batch of commands read from
    /// a socket and by the cron, so a pipeline of commands shares one reading of the clock.
    pub now_ms: u64,
    /// CLIENT PAUSE: until when (Unix ms), and whether only writes are paused.
    pub pause: Option<(u64, bool)>,
    /// Clients WATCHing each (database, key).
    watched: HashMap<(usize, SmallBytes), Vec<u64>>,
    /// Clients blocked on each (database, key), in arrival order.
    blocked: HashMap<(usize, SmallBytes), Vec<u64>>,
}

impl Server {
    pub fn new(config: Config) -> Self {
        let run_id: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..40)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let master = config
            .replicaof
            .clone()
            .map(|(h, p)| crate::replication::replica::MasterLink::new(h, p, false));
        Server {
            keyspace: Keyspace::new(config.databases),
            config,
            stats: Stats::default(),
            clients: HashMap::new(),
            next_client_id: 1,
            dirty: 0,
            feed: Feed::default(),
            repl: crate::replication::Repl {
                master,
                ..Default::default()
            },
            started: Instant::now(),
            run_id,
            rng: SmallRng::from_os_rng(),
            lastsave: crate::clock::now_ms() / 1000,
            shutdown: Rc::new(tokio::sync::Notify::new()),
            pause: None,
            now_ms: crate::clock::now_ms(),
            watched: HashMap::new(),
            blocked: HashMap::new(),
        }
    }

    pub fn next_client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// A key was written: transactions WATCHing it will fail, clients blocked on it wake up.
    pub fn touch_key(&mut self, db: usize, key: &[u8]) {
        if self.watched.is_empty() && self.blocked.is_empty() {
            return;
        }
        let k = (db, SmallBytes::new(key));
        for id in self.watched.get(&k).into_iter().flatten() {
            if let Some(c) = self.clients.get(id) {
                c.dirty_cas.set(true);
            }
        }
        for id in self.blocked.get(&k).into_iter().flatten() {
            if let Some(c) = self.clients.get(id) {
                c.notify.notify_one();
            }
        }
    }

    /// Every WATCHed key of `db` (all databases when `None`) counts as changed: FLUSHDB,
    /// FLUSHALL, SWAPDB.
    pub fn touch_all_watched(&mut self, db: Option<usize>) {
        for ((d, _), ids) in &self.watched {
            if db.is_none_or(|x| x == *d) {
                for id in ids {
                    if let Some(c) = self.clients.get(id) {
                        c.dirty_cas.set(true);
                    }
                }
            }
        }
    }

    pub fn watch(&mut self, client: &mut Client, key: &[u8]) {
        let k = (client.db, SmallBytes::new(key));
        if client.watched.contains(&k) {
            return;
        }
        self.watched.entry(k.clone()).or_default().push(client.id);
        client.watched.push(k);
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

    /// Registers `client_id` as blocked on `keys` of `db`.
    pub fn block(&mut self, client_id: u64, db: usize, keys: &[SmallBytes]) {
        for k in keys {
            self.blocked
                .entry((db, k.clone()))
                .or_default()
                .push(client_id);
        }
    }

    pub fn unblock(&mut self, client_id: u64, db: usize, keys: &[SmallBytes]) {
        for k in keys {
            let key = (db, k.clone());
            if let Some(ids) = self.blocked.get_mut(&key) {
                ids.retain(|&id| id != client_id);
                if ids.is_empty() {
                    self.blocked.remove(&key);
                }
            }
        }
    }

    /// Clients blocked on any key (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        let mut ids: Vec<u64> = self.blocked.values().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Forgets a client that disconnected.
    pub fn unregister_client(&mut self, client: &mut Client) {
        self.unwatch_all(client);
        self.clients.remove(&client.id);
    }

    pub fn access_clock(&self, now_ms: u64) -> AccessClock {
        AccessClock {
            lfu: self.config.maxmemory_policy.is_lfu(),
            now_s: (now_ms / 1000) as u32,
        }
    }

    /// The slot of `key` in database `db` if it exists and has not expired. An expired key is
    /// deleted here, and the deletion is propagated as a DEL so replicas stay identical.
    pub fn find_live(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<u32> {
        let d = self.keyspace.db_mut(db);
        let i = d.find(key)?;
        if !d.entry(i).is_expired(now_ms) {
            return Some(i);
        }
        // A replica never expires keys itself: it waits for the master's DEL.
        if self.repl.is_replica() {
            return None;
        }
        d.remove_at(i);
        self.stats.expired_keys += 1;
        self.feed.feed(db, &[b"DEL".as_slice(), key]);
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
                continue;
            }
            let bound = d.slot_bound();
            let mut victims = Vec::new();
            // Random probes: a uniform sample finds expired keys in proportion to their
            // share, as Redis's sampling does, without a second index of volatile keys.
            for _ in 0..budget.min(bound as usize * 2) {
                let i = {
                    use rand::Rng;
                    self.rng.random_range(0..bound)
                };
                if let Some(e) = self.keyspace.db(db).entry_at(i)
                    && e.is_expired(now_ms)
                {
                    victims.push(e.key.clone());
                }
            }
            for key in victims {
                if self.find_live(db, &key, now_ms).is_none() {
                    expired += 1;
                }
            }
        }
        expired
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
        Some(())
    }
}
