//! Configuration: the directive table shared by the config file, `--name value` flags,
//! CONFIG GET/SET/REWRITE. Names, value syntax and error texts follow Redis 7.0.

mod accepted;

use crate::notify::EventClasses;
use accepted::Kind;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

const POLICIES: &[(&str, EvictionPolicy)] = &[
    ("volatile-lru", EvictionPolicy::VolatileLru),
    ("volatile-lfu", EvictionPolicy::VolatileLfu),
    ("volatile-random", EvictionPolicy::VolatileRandom),
    ("volatile-ttl", EvictionPolicy::VolatileTtl),
    ("allkeys-lru", EvictionPolicy::AllKeysLru),
    ("allkeys-lfu", EvictionPolicy::AllKeysLfu),
    ("allkeys-random", EvictionPolicy::AllKeysRandom),
    ("noeviction", EvictionPolicy::NoEviction),
];

impl EvictionPolicy {
    pub fn is_lfu(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }

    /// LRU and LFU policies keep per-object access data, so Redis stops sharing integers.
    pub fn uses_access_data(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLru
                | EvictionPolicy::VolatileLru
                | EvictionPolicy::AllKeysLfu
                | EvictionPolicy::VolatileLfu
        )
    }

    /// Only keys with an expiry are candidates.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }

    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("noeviction", |(n, _)| n)
    }
}

/// `client-output-buffer-limit` for one client class: hard bytes, soft bytes, soft seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub protected_mode: bool,
    pub requirepass: Option<String>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub databases: usize,
    pub maxclients: u64,
    pub maxmemory: u64,
    pub maxmemory_policy: EvictionPolicy,
    pub maxmemory_samples: usize,
    pub hz: u64,
    /// `busy-reply-threshold` (`lua-time-limit`): after this many milliseconds a running
    /// script lets other clients in, to answer them BUSY and take SCRIPT KILL.
    pub busy_reply_threshold: u64,
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub dir: String,
    pub dbfilename: String,
    pub save: Vec<(u64, u64)>,
    pub appendonly: bool,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub loglevel: String,
    pub logfile: String,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    /// normal, replica, pubsub.
    pub client_output_buffer_limit: [BufferLimit; 3],
    pub replicaof: Option<(String, u16)>,
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: u64,
    pub repl_diskless_sync_max_replicas: u64,
    pub repl_diskless_load: String,
    pub repl_timeout: u64,
    pub repl_ping_replica_period: u64,
    pub repl_backlog_size: u64,
    pub repl_backlog_ttl: u64,
    pub repl_disable_tcp_nodelay: bool,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    pub replica_priority: u64,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    pub replica_announce_ip: String,
    pub replica_announce_port: u64,
    /// Tandem's own: the port of the Sentinel-compatible discovery endpoint (0: none) and
    /// the master name it answers for (`crate::sentinel`).
    pub sentinel_port: u16,
    pub sentinel_master_name: String,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub appendfsync: String,
    /// The AOF directory inside `dir`, and the prefix of the AOF's file names.
    pub appenddirname: String,
    pub appendfilename: String,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub aof_timestamp_enabled: bool,
    pub no_appendfsync_on_rewrite: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub aof_disable_auto_gc: bool,
    /// Saves and AOF rewrites fsync every 4 MiB they write instead of once at the end, so
    /// the kernel never holds a whole dump's dirty pages (Redis's `REDIS_AUTOSYNC_BYTES`).
    pub rdb_save_incremental_fsync: bool,
    pub aof_rewrite_incremental_fsync: bool,
    pub maxmemory_eviction_tenacity: u64,
    pub maxmemory_clients: u64,
    pub enable_debug_command: String,
    pub daemonize: bool,
    pub pidfile: String,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    pub stream_node_max_entries: u64,
    pub stream_node_max_bytes: u64,
    pub list_max_listpack_size: i64,
    pub hll_sparse_max_bytes: u64,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    /// CLIENT TRACKING's table of read keys is capped at this many keys (0: no cap).
    pub tracking_table_max_keys: u64,
    /// Seconds a master shutting down waits for its replicas (0: it does not wait).
    pub shutdown_timeout: u64,
    /// Seconds a master with replicas, on SIGTERM, waits for its replicas to be handed the
    /// master role (it becomes a replica) before the `shutdown-timeout` wait begins; 0 (the
    /// default) is Redis 7.0's behaviour. A tandem-server directive: an operator sets it so
    /// that a pod's SIGTERM ends in a switchover instead of a failover.
    pub shutdown_handover_timeout: u64,
    /// The SHUTDOWN options a SIGTERM / SIGINT means (`default`, or some of `save`,
    /// `nosave`, `now`, `force`).
    pub shutdown_on_sigterm: String,
    pub shutdown_on_sigint: String,
    pub lfu_log_factor: u64,
    pub lfu_decay_time: u64,
    pub notify_keyspace_events: EventClasses,
    /// Milliseconds from which a command is a spike of the latency monitor; 0 = off.
    pub latency_monitor_threshold: u64,
    /// Per-command latency histograms (LATENCY HISTOGRAM, INFO latencystats).
    pub latency_tracking: bool,
    /// The percentiles INFO latencystats reports.
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// `tls-port`: 0 when no TLS port is opened.
    pub tls_port: u16,
    /// The link to the master and the replicas' links use TLS.
    pub tls_replication: bool,
    /// `no`, `yes` or `optional`: whether a TLS client must present a certificate.
    pub tls_auth_clients: String,
    pub tls_cert_file: String,
    pub tls_key_file: String,
    pub tls_key_file_pass: String,
    pub tls_client_cert_file: String,
    pub tls_client_key_file: String,
    pub tls_client_key_file_pass: String,
    pub tls_ca_cert_file: String,
    pub tls_ca_cert_dir: String,
    pub tls_protocols: String,
    pub tls_ciphers: String,
    pub tls_ciphersuites: String,
    /// The values of the directives tandem-server accepts without acting on them
    /// (`accepted.rs`), by name; absent ones have Redis's default.
    pub accepted: HashMap<&'static str, String>,
    /// Where CONFIG REWRITE writes: the file the server was started with.
    pub config_file: Option<String>,
    /// `rename-command old new` of the config file and command line, in order (not a CONFIG
    /// directive). Plain data: they are resolved against the command table when the server
    /// starts (`crate::cmd::names::resolve`), where an unknown name is refused.
    pub rename_commands: Vec<RenameCommand>,
    /// `user <name> <rules...>` of the config file and command line, in order: the ACL
    /// users the server starts with (`crate::acl::Users::at_startup`).
    pub users: Vec<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        let limit = |hard, soft, soft_seconds| BufferLimit {
            hard,
            soft,
            soft_seconds,
        };
        Config {
            port: 6379,
            bind: vec!["*".into(), "-::*".into()],
            protected_mode: true,
            requirepass: None,
            masterauth: None,
            masteruser: None,
            databases: 16,
            maxclients: 10000,
            maxmemory: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            maxmemory_samples: 5,
            hz: 10,
            busy_reply_threshold: 5000,
            timeout: 0,
            tcp_keepalive: 300,
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            appendonly: false,
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            loglevel: "notice".into(),
            logfile: String::new(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: [
                limit(0, 0, 0),
                limit(256 << 20, 64 << 20, 60),
                limit(32 << 20, 8 << 20, 60),
            ],
            replicaof: None,
            repl_diskless_sync: true,
            repl_diskless_sync_delay: 5,
            repl_diskless_sync_max_replicas: 0,
            repl_diskless_load: "disabled".into(),
            repl_timeout: 60,
            repl_ping_replica_period: 10,
            repl_backlog_size: 1 << 20,
            repl_backlog_ttl: 3600,
            repl_disable_tcp_nodelay: false,
            replica_read_only: true,
            replica_serve_stale_data: true,
            replica_priority: 100,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            replica_announce_ip: String::new(),
            replica_announce_port: 0,
            sentinel_port: 0,
            sentinel_master_name: "mymaster".into(),
            lazyfree_lazy_expire: false,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            appendfsync: "everysec".into(),
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            aof_use_rdb_preamble: true,
            aof_load_truncated: true,
            aof_timestamp_enabled: false,
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            aof_disable_auto_gc: false,
            rdb_save_incremental_fsync: true,
            aof_rewrite_incremental_fsync: true,
            maxmemory_eviction_tenacity: 10,
            maxmemory_clients: 0,
            enable_debug_command: "no".into(),
            daemonize: false,
            pidfile: String::new(),
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            stream_node_max_entries: 100,
            stream_node_max_bytes: 4096,
            list_max_listpack_size: -2,
            hll_sparse_max_bytes: 3000,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            tracking_table_max_keys: 1_000_000,
            shutdown_timeout: 10,
            shutdown_handover_timeout: 0,
            shutdown_on_sigterm: "default".into(),
            shutdown_on_sigint: "default".into(),
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            notify_keyspace_events: EventClasses::default(),
            latency_monitor_threshold: 0,
            latency_tracking: true,
            latency_tracking_info_percentiles: vec![50.0, 99.0, 99.9],
            tls_port: 0,
            tls_replication: false,
            tls_auth_clients: "yes".into(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_key_file_pass: String::new(),
            tls_client_cert_file: String::new(),
            tls_client_key_file: String::new(),
            tls_client_key_file_pass: String::new(),
            tls_ca_cert_file: String::new(),
            tls_ca_cert_dir: String::new(),
            tls_protocols: String::new(),
            tls_ciphers: String::new(),
            tls_ciphersuites: String::new(),
            accepted: HashMap::new(),
            config_file: None,
            rename_commands: Vec::new(),
            users: Vec::new(),
        }
    }
}

/// One `rename-command old new` directive, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameCommand {
    pub old: String,
    /// Empty: the command is removed.
    pub new: String,
    /// The config file's line (number and text) it came from, for the error Redis prints;
    /// `None` on the command line.
    pub line: Option<(usize, String)>,
}

/// A refused directive or value. The text after the name is what Redis prints.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Bad directive or wrong number of arguments")]
    Unknown(String),
    #[error("{1}")]
    Invalid(String, String),
    #[error("can't set immutable config")]
    Immutable(String),
    #[error(
        "*** FATAL CONFIG FILE ERROR ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{source}"
    )]
    File {
        line: usize,
        text: String,
        source: Box<ConfigError>,
    },
    #[error("failed to read config file {path}: {reason}")]
    Io { path: String, reason: String },
}

type Getter = fn(&Config) -> String;
type Setter = fn(&mut Config, &str) -> Result<(), String>;

/// One configuration directive.
pub struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    /// Only settable at start-up.
    pub immutable: bool,
    access: Access,
}

/// Where a directive's value lives.
enum Access {
    /// A field of [`Config`] the server reads.
    Field { get: Getter, set: Setter },
    /// Kept as text in [`Config::accepted`], checked as Redis checks it.
    Stored { kind: Kind, default: &'static str },
}

impl Directive {
    /// The value as CONFIG GET prints it.
    pub fn get(&self, c: &Config) -> String {
        match &self.access {
            Access::Field { get, .. } => get(c),
            Access::Stored { default, .. } => c
                .accepted
                .get(self.name)
                .cloned()
                .unwrap_or_else(|| (*default).to_string()),
        }
    }

    /// Sets the value, or says why not in Redis's words.
    pub fn set(&self, c: &mut Config, v: &str) -> Result<(), String> {
        match &self.access {
            Access::Field { set, .. } => set(c, v),
            Access::Stored { kind, .. } => {
                let value = canonical(self.name, *kind, v)?;
                c.accepted.insert(self.name, value);
                Ok(())
            }
        }
    }
}

/// A file or directory name without a path, as Redis requires of the AOF's names.
fn base_name(v: &str, why: &str) -> Result<String, String> {
    if v.contains('/') {
        return Err(why.to_string());
    }
    Ok(v.to_string())
}

/// Checks an accepted directive's value and returns it as Redis prints it back.
/// `shutdown-on-sigterm` / `shutdown-on-sigint`: SHUTDOWN's options, or `default`.
const SHUTDOWN_ON_SIGNAL: Kind = Kind::Flags(&["default", "save", "nosave", "now", "force"]);

fn canonical(name: &str, kind: Kind, v: &str) -> Result<String, String> {
    match kind {
        Kind::Bool => parse_bool(v).map(yes_no),
        Kind::Int(min, max) => parse_int(v, min, max).map(|n| n.to_string()),
        Kind::Memory(min, max) => {
            let n = parse_memory(v)?;
            if n < min as u64 || n > max as u64 {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        // Redis prints the first name of an enum value: `relative` is stored as `yes`.
        Kind::Enum(options) => match parse_enum(v, options)? {
            "relative" if name == "oom-score-adj" => Ok("yes".into()),
            chosen => Ok(chosen.into()),
        },
        Kind::Flags(options) => {
            let mut chosen = Vec::new();
            for word in v.split_whitespace() {
                chosen.push(parse_enum(word, options)?);
            }
            if chosen.contains(&"save") && chosen.contains(&"nosave") {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
            // Set bits print in the list's order; no bit is `default`.
            let set: Vec<&str> = options[1..]
                .iter()
                .copied()
                .filter(|o| chosen.contains(o))
                .collect();
            Ok(if set.is_empty() {
                options[0].to_string()
            } else {
                set.join(" ")
            })
        }
        Kind::Str => Ok(v.to_string()),
        Kind::Octal(max) => match u32::from_str_radix(v, 8) {
            Ok(n) if n <= max => Ok(format!("{n:o}")),
            Ok(_) => Err(format!("argument must be between 0 and {max:o} inclusive")),
            Err(_) => Err("argument couldn't be parsed into an integer".into()),
        },
        Kind::OomValues => {
            let words: Vec<&str> = v.split_whitespace().collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut values = Vec::new();
            for w in words {
                match w.parse::<i64>() {
                    Ok(n) if (-2000..=2000).contains(&n) => values.push(n.to_string()),
                    _ => {
                        return Err(
                            "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                                .into(),
                        );
                    }
                }
            }
            Ok(values.join(" "))
        }
    }
}

fn parse_percentiles(v: &str) -> Result<Vec<f64>, String> {
    let mut values = Vec::new();
    for w in v.split_whitespace() {
        let p: f64 = w
            .parse()
            .map_err(|_| "Invalid latency-tracking-info-percentiles parameters")?;
        if !(0.0..=100.0).contains(&p) {
            return Err(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                    .into(),
            );
        }
        values.push(p);
    }
    Ok(values)
}

/// A percentile as Redis prints it: `%f` with the trailing zeros trimmed (`99.9`, `50`).
pub fn percentile_text(p: f64) -> String {
    let text = format!("{p:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn yes_no(v: bool) -> String {
    if v { "yes" } else { "no" }.into()
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn parse_int(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let v: i64 = s
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if v < min || v > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(v)
}

/// Parses a memory value as Redis does: `1k` = 1000, `1kb` = 1024, up to `gb`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let err = || "argument must be a memory value".to_string();
    let l = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| l.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((&l, 1));
    let n: u64 = num.parse().map_err(|_| err())?;
    n.checked_mul(mul).ok_or_else(err)
}

fn parse_enum<'a>(s: &str, options: &[&'a str]) -> Result<&'a str, String> {
    options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(s))
        .copied()
        .ok_or_else(|| {
            format!(
                "argument(s) must be one of the following: {}",
                options.join(", ")
            )
        })
}

macro_rules! boolean {
    ($name:literal, $field:ident) => {
        Directive {
            name: $name,
            alias: None,
            immutable: false,
            access: Access::Field {
                get: |c| yes_no(c.$field),
                set: |c, v| {
                    c.$field = parse_bool(v)?;
                    Ok(())
                },
            },
        }
    };
    ($name:literal, $alias:literal, $field:ident) => {
        Directive {
            alias: Some($alias),
            ..boolean!($name, $field)
        }
    };
}

macro_rules! integer {
    ($name:literal, $field:ident, $min:expr, $max:expr) => {
        Directive {
            name: $name,
            alias: None,
            immutable: false,
            access: Access::Field {
                get: |c| c.$field.to_string(),
                set: |c, v| {
                    c.$field = parse_int(v, $min, $max)? as _;
                    Ok(())
                },
            },
        }
    };
    ($name:literal, $alias:literal, $field:ident, $min:expr, $max:expr) => {
        Directive {
            alias: Some($alias),
            ..integer!($name, $field, $min, $max)
        }
    };
}

macro_rules! memory {
    ($name:literal, $alias:literal, $field:ident) => {
        Directive {
            alias: Some($alias),
            ..memory!($name, $field)
        }
    };
    ($name:literal, $field:ident) => {
        Directive {
            name: $name,
            alias: None,
            immutable: false,
            access: Access::Field {
                get: |c| c.$field.to_string(),
                set: |c, v| {
                    c.$field = parse_memory(v)?;
                    Ok(())
                },
            },
        }
    };
}

macro_rules! string {
    ($name:literal, $field:ident, $immutable:expr) => {
        Directive {
            name: $name,
            alias: None,
            immutable: $immutable,
            access: Access::Field {
                get: |c| c.$field.clone(),
                set: |c, v| {
                    c.$field = v.to_string();
                    Ok(())
                },
            },
        }
    };
}

macro_rules! enumerated {
    ($name:literal, $field:ident, [$($option:literal),+ $(,)?]) => {
        Directive {
            name: $name,
            alias: None,
            immutable: false,
            access: Access::Field {
                get: |c| c.$field.clone(),
                set: |c, v| {
                    c.$field = parse_enum(v, &[$($option),+])?.into();
                    Ok(())
                },
            },
        }
    };
}

macro_rules! optional {
    ($name:literal, $field:ident) => {
        Directive {
            name: $name,
            alias: None,
            immutable: false,
            access: Access::Field {
                get: |c| c.$field.clone().unwrap_or_default(),
                set: |c, v| {
                    c.$field = (!v.is_empty()).then(|| v.to_string());
                    Ok(())
                },
            },
        }
    };
}

const CLASSES: [&str; 3] = ["normal", "replica", "pubsub"];

fn get_obuf(c: &Config) -> String {
    let mut s = String::new();
    for (name, l) in ["normal", "slave", "pubsub"]
        .iter()
        .zip(c.client_output_buffer_limit.iter())
    {
        let _ = write!(
            s,
            "{}{name} {} {} {}",
            if s.is_empty() { "" } else { " " },
            l.hard,
            l.soft,
            l.soft_seconds
        );
    }
    s
}

fn set_obuf(c: &mut Config, v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.is_empty() || !parts.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut next = c.client_output_buffer_limit;
    for chunk in parts.chunks(4) {
        let class = match chunk[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "replica" | "slave" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into());
            }
        };
        let hard = parse_memory(chunk[1]).map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string()
        })?;
        let soft = parse_memory(chunk[2]).map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string()
        })?;
        let secs: u64 = chunk[3].parse().map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string()
        })?;
        next[class] = BufferLimit {
            hard,
            soft,
            soft_seconds: secs,
        };
    }
    c.client_output_buffer_limit = next;
    Ok(())
}

fn get_save(c: &Config) -> String {
    c.save
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_save(c: &mut Config, v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if !parts.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    let mut points = Vec::new();
    for p in parts.chunks(2) {
        let s = p[0]
            .parse()
            .map_err(|_| "Invalid save parameters".to_string())?;
        let n = p[1]
            .parse()
            .map_err(|_| "Invalid save parameters".to_string())?;
        points.push((s, n));
    }
    c.save = points;
    Ok(())
}

fn get_replicaof(c: &Config) -> String {
    c.replicaof
        .as_ref()
        .map(|(h, p)| format!("{h} {p}"))
        .unwrap_or_default()
}

fn set_replicaof(c: &mut Config, v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    match parts.as_slice() {
        [] => c.replicaof = None,
        [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => {
            c.replicaof = None
        }
        [host, port] => {
            let port = port
                .parse()
                .map_err(|_| "Invalid master port".to_string())?;
            c.replicaof = Some(((*host).to_string(), port));
        }
        _ => return Err("wrong number of arguments".into()),
    }
    Ok(())
}

/// The directive table. Order is the order of CONFIG REWRITE output for new lines.
static DIRECTIVES: &[Directive] = &[
    integer!("port", port, 0, 65535),
    Directive {
        name: "bind",
        alias: None,
        immutable: true,
        access: Access::Field {
            get: |c| c.bind.join(" "),
            set: |c, v| {
                c.bind = v.split_whitespace().map(str::to_string).collect();
                Ok(())
            },
        },
    },
    integer!("tls-port", tls_port, 0, 65535),
    boolean!("tls-replication", tls_replication),
    enumerated!(
        "tls-auth-clients",
        tls_auth_clients,
        ["no", "yes", "optional"]
    ),
    string!("tls-cert-file", tls_cert_file, false),
    string!("tls-key-file", tls_key_file, false),
    string!("tls-key-file-pass", tls_key_file_pass, false),
    string!("tls-client-cert-file", tls_client_cert_file, false),
    string!("tls-client-key-file", tls_client_key_file, false),
    string!("tls-client-key-file-pass", tls_client_key_file_pass, false),
    string!("tls-ca-cert-file", tls_ca_cert_file, false),
    string!("tls-ca-cert-dir", tls_ca_cert_dir, false),
    string!("tls-protocols", tls_protocols, false),
    string!("tls-ciphers", tls_ciphers, false),
    string!("tls-ciphersuites", tls_ciphersuites, false),
    boolean!("protected-mode", protected_mode),
    optional!("requirepass", requirepass),
    optional!("masterauth", masterauth),
    optional!("masteruser", masteruser),
    Directive {
        immutable: true,
        ..integer!("databases", databases, 1, i64::from(i32::MAX))
    },
    integer!("maxclients", maxclients, 1, i64::from(u32::MAX)),
    memory!("maxmemory", maxmemory),
    Directive {
        name: "maxmemory-policy",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| c.maxmemory_policy.name().into(),
            set: |c, v| {
                let names: Vec<&str> = POLICIES.iter().map(|(n, _)| *n).collect();
                let n = parse_enum(v, &names)?;
                c.maxmemory_policy = POLICIES
                    .iter()
                    .find(|(p, _)| *p == n)
                    .map_or(EvictionPolicy::NoEviction, |(_, p)| *p);
                Ok(())
            },
        },
    },
    integer!("maxmemory-samples", maxmemory_samples, 1, 64),
    integer!("hz", hz, 0, i64::from(i32::MAX)),
    integer!(
        "busy-reply-threshold",
        "lua-time-limit",
        busy_reply_threshold,
        0,
        i64::MAX
    ),
    integer!("timeout", timeout, 0, i64::from(i32::MAX)),
    integer!("tcp-keepalive", tcp_keepalive, 0, i64::from(i32::MAX)),
    string!("dir", dir, false),
    string!("dbfilename", dbfilename, false),
    Directive {
        name: "save",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: get_save,
            set: set_save,
        },
    },
    boolean!("appendonly", appendonly),
    boolean!("rdbcompression", rdbcompression),
    boolean!("rdbchecksum", rdbchecksum),
    boolean!("stop-writes-on-bgsave-error", stop_writes_on_bgsave_error),
    enumerated!(
        "loglevel",
        loglevel,
        ["debug", "verbose", "notice", "warning", "nothing"]
    ),
    string!("logfile", logfile, true),
    Directive {
        name: "proto-max-bulk-len",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| c.proto_max_bulk_len.to_string(),
            set: |c, v| {
                let n = parse_memory(v)?;
                if n < 1 << 20 || n > i64::MAX as u64 {
                    return Err(format!(
                        "argument must be between {} and {} inclusive",
                        1 << 20,
                        i64::MAX
                    ));
                }
                c.proto_max_bulk_len = n;
                Ok(())
            },
        },
    },
    memory!("client-query-buffer-limit", client_query_buffer_limit),
    Directive {
        name: "client-output-buffer-limit",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: get_obuf,
            set: set_obuf,
        },
    },
    Directive {
        name: "replicaof",
        alias: Some("slaveof"),
        immutable: false,
        access: Access::Field {
            get: get_replicaof,
            set: set_replicaof,
        },
    },
    boolean!("repl-diskless-sync", repl_diskless_sync),
    integer!(
        "repl-diskless-sync-delay",
        repl_diskless_sync_delay,
        0,
        i64::from(i32::MAX)
    ),
    integer!(
        "repl-diskless-sync-max-replicas",
        repl_diskless_sync_max_replicas,
        0,
        i64::from(i32::MAX)
    ),
    enumerated!(
        "repl-diskless-load",
        repl_diskless_load,
        ["disabled", "on-empty-db", "swapdb"]
    ),
    integer!("repl-timeout", repl_timeout, 1, i64::from(i32::MAX)),
    integer!(
        "repl-ping-replica-period",
        "repl-ping-slave-period",
        repl_ping_replica_period,
        1,
        i64::from(i32::MAX)
    ),
    memory!("repl-backlog-size", repl_backlog_size),
    integer!("repl-backlog-ttl", repl_backlog_ttl, 0, i64::from(i32::MAX)),
    boolean!("repl-disable-tcp-nodelay", repl_disable_tcp_nodelay),
    boolean!("replica-read-only", "slave-read-only", replica_read_only),
    boolean!(
        "replica-serve-stale-data",
        "slave-serve-stale-data",
        replica_serve_stale_data
    ),
    integer!(
        "replica-priority",
        "slave-priority",
        replica_priority,
        0,
        i64::from(i32::MAX)
    ),
    integer!(
        "min-replicas-to-write",
        "min-slaves-to-write",
        min_replicas_to_write,
        0,
        i64::from(i32::MAX)
    ),
    integer!(
        "min-replicas-max-lag",
        "min-slaves-max-lag",
        min_replicas_max_lag,
        0,
        i64::from(i32::MAX)
    ),
    Directive {
        alias: Some("slave-announce-ip"),
        ..string!("replica-announce-ip", replica_announce_ip, false)
    },
    integer!(
        "replica-announce-port",
        "slave-announce-port",
        replica_announce_port,
        0,
        65535
    ),
    Directive {
        immutable: true,
        ..integer!("sentinel-port", sentinel_port, 0, 65535)
    },
    string!("sentinel-master-name", sentinel_master_name, true),
    boolean!("lazyfree-lazy-expire", lazyfree_lazy_expire),
    boolean!("lazyfree-lazy-eviction", lazyfree_lazy_eviction),
    boolean!("lazyfree-lazy-server-del", lazyfree_lazy_server_del),
    boolean!("lazyfree-lazy-user-del", lazyfree_lazy_user_del),
    boolean!("lazyfree-lazy-user-flush", lazyfree_lazy_user_flush),
    enumerated!("appendfsync", appendfsync, ["always", "everysec", "no"]),
    Directive {
        name: "appenddirname",
        alias: None,
        immutable: true,
        access: Access::Field {
            get: |c| c.appenddirname.clone(),
            set: |c, v| {
                c.appenddirname = base_name(v, "appenddirname can't be a path, just a dirname")?;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendfilename",
        alias: None,
        immutable: true,
        access: Access::Field {
            get: |c| c.appendfilename.clone(),
            set: |c, v| {
                c.appendfilename = base_name(v, "appendfilename can't be a path, just a filename")?;
                Ok(())
            },
        },
    },
    boolean!("aof-use-rdb-preamble", aof_use_rdb_preamble),
    boolean!("aof-load-truncated", aof_load_truncated),
    boolean!("aof-timestamp-enabled", aof_timestamp_enabled),
    boolean!("no-appendfsync-on-rewrite", no_appendfsync_on_rewrite),
    integer!(
        "auto-aof-rewrite-percentage",
        auto_aof_rewrite_percentage,
        0,
        i64::from(i32::MAX)
    ),
    memory!("auto-aof-rewrite-min-size", auto_aof_rewrite_min_size),
    boolean!("aof-disable-auto-gc", aof_disable_auto_gc),
    boolean!("rdb-save-incremental-fsync", rdb_save_incremental_fsync),
    boolean!(
        "aof-rewrite-incremental-fsync",
        aof_rewrite_incremental_fsync
    ),
    integer!(
        "maxmemory-eviction-tenacity",
        maxmemory_eviction_tenacity,
        0,
        100
    ),
    memory!("maxmemory-clients", maxmemory_clients),
    Directive {
        immutable: true,
        ..enumerated!(
            "enable-debug-command",
            enable_debug_command,
            ["no", "yes", "local"]
        )
    },
    Directive {
        immutable: true,
        ..boolean!("daemonize", daemonize)
    },
    string!("pidfile", pidfile, true),
    integer!(
        "hash-max-listpack-entries",
        "hash-max-ziplist-entries",
        hash_max_listpack_entries,
        0,
        i64::MAX
    ),
    memory!(
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        hash_max_listpack_value
    ),
    integer!(
        "set-max-intset-entries",
        set_max_intset_entries,
        0,
        i64::MAX
    ),
    integer!(
        "zset-max-listpack-entries",
        "zset-max-ziplist-entries",
        zset_max_listpack_entries,
        0,
        i64::MAX
    ),
    memory!(
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        zset_max_listpack_value
    ),
    integer!(
        "stream-node-max-entries",
        stream_node_max_entries,
        0,
        i64::MAX
    ),
    memory!("stream-node-max-bytes", stream_node_max_bytes),
    integer!(
        "list-max-listpack-size",
        "list-max-ziplist-size",
        list_max_listpack_size,
        i64::from(i32::MIN),
        i64::from(i32::MAX)
    ),
    memory!("hll-sparse-max-bytes", hll_sparse_max_bytes),
    integer!(
        "slowlog-log-slower-than",
        slowlog_log_slower_than,
        -1,
        i64::MAX
    ),
    integer!("slowlog-max-len", slowlog_max_len, 0, i64::MAX),
    integer!("shutdown-timeout", shutdown_timeout, 0, i64::from(i32::MAX)),
    integer!(
        "shutdown-handover-timeout",
        shutdown_handover_timeout,
        0,
        i64::from(i32::MAX)
    ),
    Directive {
        name: "shutdown-on-sigterm",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| c.shutdown_on_sigterm.clone(),
            set: |c, v| {
                c.shutdown_on_sigterm = canonical("shutdown-on-sigterm", SHUTDOWN_ON_SIGNAL, v)?;
                Ok(())
            },
        },
    },
    Directive {
        name: "shutdown-on-sigint",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| c.shutdown_on_sigint.clone(),
            set: |c, v| {
                c.shutdown_on_sigint = canonical("shutdown-on-sigint", SHUTDOWN_ON_SIGNAL, v)?;
                Ok(())
            },
        },
    },
    integer!(
        "tracking-table-max-keys",
        tracking_table_max_keys,
        0,
        i64::MAX
    ),
    integer!("lfu-log-factor", lfu_log_factor, 0, i64::from(i32::MAX)),
    integer!("lfu-decay-time", lfu_decay_time, 0, i64::from(i32::MAX)),
    Directive {
        name: "notify-keyspace-events",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| c.notify_keyspace_events.to_string(),
            set: |c, v| {
                c.notify_keyspace_events = EventClasses::parse(v)
                    .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())?;
                Ok(())
            },
        },
    },
    integer!(
        "latency-monitor-threshold",
        latency_monitor_threshold,
        0,
        i64::MAX
    ),
    boolean!("latency-tracking", latency_tracking),
    Directive {
        name: "latency-tracking-info-percentiles",
        alias: None,
        immutable: false,
        access: Access::Field {
            get: |c| {
                c.latency_tracking_info_percentiles
                    .iter()
                    .map(|p| percentile_text(*p))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            set: |c, v| {
                c.latency_tracking_info_percentiles = parse_percentiles(v)?;
                Ok(())
            },
        },
    },
];

/// Finds a directive by name or alias (case-insensitive).
/// The directives the server only accepts, as directives.
static ACCEPTED: LazyLock<Vec<Directive>> = LazyLock::new(|| {
    accepted::ACCEPTED
        .iter()
        .map(|a| Directive {
            name: a.name,
            alias: a.alias,
            immutable: a.immutable,
            access: Access::Stored {
                kind: a.kind,
                default: a.default,
            },
        })
        .collect()
});

/// Directives a CONFIG GET pattern does not list, only their exact name (Redis's
/// `HIDDEN_CONFIG`): tandem-server's own, so `CONFIG GET *` lists what Redis 7.0 lists.
const HIDDEN: &[&str] = &["shutdown-handover-timeout"];

/// Every directive: those the server acts on, then those it only accepts.
fn directives() -> impl Iterator<Item = &'static Directive> {
    DIRECTIVES.iter().chain(ACCEPTED.iter())
}

pub fn directive(name: &str) -> Option<&'static Directive> {
    directives().find(|d| {
        d.name.eq_ignore_ascii_case(name) || d.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

impl Config {
    /// Applies one directive at start-up (file or command line): immutable ones allowed.
    ///
    /// # Errors
    /// Unknown directive or invalid value.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let d = directive(name).ok_or_else(|| ConfigError::Unknown(name.into()))?;
        d.set(self, value)
            .map_err(|e| ConfigError::Invalid(d.name.into(), e))
    }

    /// Applies a live CONFIG SET.
    ///
    /// # Errors
    /// Unknown, immutable or invalid.
    pub fn set_live(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let d = directive(name).ok_or_else(|| ConfigError::Unknown(name.into()))?;
        if d.immutable {
            return Err(ConfigError::Immutable(name.into()));
        }
        d.set(self, value)
            .map_err(|e| ConfigError::Invalid(name.into(), e))
    }

    /// Parses redis.conf text: one directive per line, `#` comments, quoted arguments.
    ///
    /// # Errors
    /// The first bad line, with its number and text, as Redis reports it.
    pub fn apply_text(&mut self, text: &str) -> Result<(), ConfigError> {
        self.apply_text_nested(text, 0)
    }

    /// `apply_text` with `include FILE` support (relative to the working directory, as in
    /// Redis); `depth` stops include loops.
    fn apply_text_nested(&mut self, text: &str, depth: usize) -> Result<(), ConfigError> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split_config_line(line).ok_or_else(|| ConfigError::File {
                line: n + 1,
                text: line.into(),
                source: Box::new(ConfigError::Invalid(
                    String::new(),
                    "Unbalanced quotes in configuration line".into(),
                )),
            })?;
            let Some((name, args)) = words.split_first() else {
                continue;
            };
            let file_err = |e| ConfigError::File {
                line: n + 1,
                text: line.into(),
                source: Box::new(e),
            };
            if name.eq_ignore_ascii_case("include") && args.len() == 1 {
                if depth >= 10 {
                    return Err(file_err(ConfigError::Invalid(
                        "include".into(),
                        "too many nested includes".into(),
                    )));
                }
                let path = &args[0];
                let nested = std::fs::read_to_string(path).map_err(|e| {
                    file_err(ConfigError::Io {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                })?;
                self.apply_text_nested(&nested, depth + 1)?;
                continue;
            }
            if name.eq_ignore_ascii_case("rename-command") && args.len() == 2 {
                self.rename_commands.push(RenameCommand {
                    old: args[0].clone(),
                    new: args[1].clone(),
                    line: Some((n + 1, line.into())),
                });
                continue;
            }
            if name.eq_ignore_ascii_case("user") && !args.is_empty() {
                self.users.push(args.to_vec());
                continue;
            }
            if args.is_empty() && !name.eq_ignore_ascii_case("save") {
                return Err(file_err(ConfigError::Unknown(name.clone())));
            }
            self.apply(name, &args.join(" ")).map_err(file_err)?;
        }
        Ok(())
    }

    /// CONFIG GET: every directive (and alias) whose name matches the glob, with its value;
    /// a hidden directive only by its exact name.
    pub fn get_matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let glob = pattern.iter().any(|b| b"*?[".contains(b));
        for d in directives() {
            if glob && HIDDEN.contains(&d.name) {
                continue;
            }
            for name in std::iter::once(d.name).chain(d.alias) {
                if crate::glob::matches(pattern, name.as_bytes(), true)
                    && !out.iter().any(|(n, _)| *n == name)
                {
                    out.push((name, d.get(self)));
                }
            }
        }
        out
    }

    /// The client-output-buffer-limit class index for `name` (normal, replica/slave, pubsub).
    pub fn buffer_class(name: &str) -> Option<usize> {
        let n = if name.eq_ignore_ascii_case("slave") {
            "replica"
        } else {
            name
        };
        CLASSES.iter().position(|c| c.eq_ignore_ascii_case(n))
    }

    /// CONFIG REWRITE: keeps the file's lines, replaces the ones for known directives with the
    /// current values, appends directives that differ from the defaults. The `user` lines
    /// are replaced by `users` (every ACL user, where the first one stood, else at the end),
    /// or dropped when the users live in an ACL file (`users` is `None`), as Redis does.
    ///
    /// # Errors
    /// No config file, or I/O failure.
    pub fn rewrite(&self, users: Option<&[String]>) -> Result<(), ConfigError> {
        let path = self.config_file.clone().ok_or_else(|| ConfigError::Io {
            path: String::new(),
            reason: "The server is running without a config file".into(),
        })?;
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let defaults = Config::default();
        let mut written: Vec<&str> = Vec::new();
        let mut out = String::new();
        let mut users_written = false;
        let mut write_users = |out: &mut String| {
            if !std::mem::replace(&mut users_written, true) {
                users
                    .into_iter()
                    .flatten()
                    .for_each(|u| writeln!(out, "{u}").unwrap_or_default());
            }
        };
        for line in old.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.eq_ignore_ascii_case("user") {
                write_users(&mut out);
                continue;
            }
            match directive(name) {
                Some(d) if !line.trim_start().starts_with('#') => {
                    if !written.contains(&d.name) {
                        written.push(d.name);
                        let _ = writeln!(out, "{} {}", d.name, quote(d.get(self)));
                    }
                }
                _ => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        for d in directives() {
            if !written.contains(&d.name) && d.get(self) != d.get(&defaults) {
                let _ = writeln!(out, "{} {}", d.name, quote(d.get(self)));
            }
        }
        write_users(&mut out);
        let tmp = format!("{path}.tmp-rewrite");
        let io = |e: std::io::Error| ConfigError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::write(&tmp, out).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

fn quote(v: String) -> String {
    if v.is_empty() {
        "\"\"".into()
    } else if v.contains(|c: char| c == '"' || c == '\\' || c.is_control())
        || v.contains(' ') && !v.contains(|c: char| c.is_ascii_digit())
    {
        format!("{v:?}")
    } else {
        v
    }
}

/// Splits a config line into words with Redis's quoting rules.
fn split_config_line(line: &str) -> Option<Vec<String>> {
    let mut scratch = Vec::new();
    let mut ranges = Vec::new();
    let mut parser = crate::protocol::Parser::new();
    let mut input = line.as_bytes().to_vec();
    input.push(b'\n');
    let args = parser
        .next(&input, crate::protocol::ProtoLimits::default())
        .ok()??;
    for a in args.iter() {
        let start = scratch.len();
        scratch.extend_from_slice(a);
        ranges.push((start, scratch.len()));
    }
    Some(
        ranges
            .iter()
            .map(|&(s, e)| String::from_utf8_lossy(&scratch[s..e]).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_commands_parse() {
        let mut c = Config::default();
        c.set_live("repl-timeout", "1800").expect("timeout");
        c.set_live("repl-diskless-sync", "yes").expect("diskless");
        c.set_live("repl-diskless-sync-delay", "0").expect("delay");
        c.set_live("client-output-buffer-limit", "slave 0 0 0")
            .expect("obuf");
        assert_eq!(c.repl_timeout, 1800);
        assert_eq!(
            c.client_output_buffer_limit[1],
            BufferLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0
            }
        );
        assert_eq!(
            get_obuf(&c),
            "normal 0 0 0 slave 0 0 0 pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn errors_read_like_redis() {
        let mut c = Config::default();
        assert_eq!(
            c.set_live("maxmemory", "abc").expect_err("bad").to_string(),
            "argument must be a memory value"
        );
        assert_eq!(
            c.set_live("daemonize", "yes")
                .expect_err("immutable")
                .to_string(),
            "can't set immutable config"
        );
        assert!(matches!(
            c.set_live("foo", "1"),
            Err(ConfigError::Unknown(_))
        ));
        let err = c.apply_text("port 7000\nfoo bar\n").expect_err("unknown");
        assert!(
            err.to_string()
                .contains("at line 2\n>>> 'foo bar'\nBad directive"),
            "{err}"
        );
        assert_eq!(parse_memory("1kb"), Ok(1024));
        assert_eq!(parse_memory("1k"), Ok(1000));
        assert_eq!(parse_memory("2GB"), Ok(2 << 30));
    }

    #[test]
    fn include_reads_the_named_file() {
        let dir =
            std::env::temp_dir().join(format!("tandem-config-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let auth = dir.join("auth.conf");
        std::fs::write(&auth, "requirepass secret\n").expect("write");
        let mut c = Config::default();
        c.apply_text(&format!("port 7001\ninclude {}\n", auth.display()))
            .expect("include");
        assert_eq!(c.requirepass.as_deref(), Some("secret"));
        let err = c
            .apply_text("include /nonexistent/tandem.conf\n")
            .expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/tandem.conf"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn file_syntax() {
        let mut c = Config::default();
        c.apply_text("# comment\nsave 900 1 300 10\nrequirepass \"a b\"\nslaveof 127.0.0.1 7000\nsave \"\"\n").expect("valid");
        assert!(c.save.is_empty());
        assert_eq!(c.requirepass.as_deref(), Some("a b"));
        assert_eq!(c.replicaof, Some(("127.0.0.1".into(), 7000)));
    }
}
