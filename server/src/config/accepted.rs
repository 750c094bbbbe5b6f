//! Redis 7.0 directives tandem-server accepts, validates and reports with Redis's defaults
//! without acting on them (cluster, process and allocator tuning, TLS session caching and DH
//! parameters, which rustls decides itself): a user's redis.conf loads unchanged and CONFIG GET/SET answer as Redis
//! does. docs/configuration.md lists them; a directive that gains an effect moves to the
//! main table.

/// One accepted directive: Redis's name and alias, its kind of value, its default as CONFIG
/// GET prints it, and whether only start-up may set it.
pub struct Accepted {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
    pub immutable: bool,
}

/// The kind of value of an accepted directive, with Redis's bounds.
#[derive(Clone, Copy)]
pub enum Kind {
    Bool,
    Int(i64, i64),
    Memory(i64, i64),
    Enum(&'static [&'static str]),
    /// Several words of the list at once (`shutdown-on-sigterm save now`).
    Flags(&'static [&'static str]),
    Str,
    /// Octal digits up to this value (`unixsocketperm`).
    Octal(u32),
    /// Three `oom_score_adj` values, -2000 to 2000.
    OomValues,
}

const fn accepted(
    name: &'static str,
    alias: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    immutable: bool,
) -> Accepted {
    Accepted {
        name,
        alias,
        kind,
        default,
        immutable,
    }
}

const fn modifiable(name: &'static str, kind: Kind, default: &'static str) -> Accepted {
    accepted(name, None, kind, default, false)
}

const fn fixed(name: &'static str, kind: Kind, default: &'static str) -> Accepted {
    accepted(name, None, kind, default, true)
}

const INT_MAX: i64 = i32::MAX as i64;
const PORT: Kind = Kind::Int(0, 65535);
const PROTECTED_ACTION: Kind = Kind::Enum(&["no", "yes", "local"]);

/// Every directive of Redis 7.0's table that tandem-server has no effect for, with Redis's
/// kind of value, bounds, default (as CONFIG GET prints it) and mutability.
pub static ACCEPTED: &[Accepted] = &[
    fixed("io-threads", Kind::Int(1, 128), "1"),
    fixed("io-threads-do-reads", Kind::Bool, "no"),
    fixed("always-show-logo", Kind::Bool, "no"),
    modifiable("rdb-del-sync-files", Kind::Bool, "no"),
    modifiable("activerehashing", Kind::Bool, "yes"),
    fixed("set-proc-title", Kind::Bool, "yes"),
    modifiable("dynamic-hz", Kind::Bool, "yes"),
    modifiable("cluster-require-full-coverage", Kind::Bool, "yes"),
    accepted(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        Kind::Bool,
        "no",
        false,
    ),
    accepted(
        "replica-lazy-flush",
        Some("slave-lazy-flush"),
        Kind::Bool,
        "no",
        false,
    ),
    accepted(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        Kind::Bool,
        "yes",
        false,
    ),
    modifiable("jemalloc-bg-thread", Kind::Bool, "yes"),
    modifiable("activedefrag", Kind::Bool, "no"),
    fixed("syslog-enabled", Kind::Bool, "no"),
    fixed("cluster-enabled", Kind::Bool, "no"),
    modifiable("cluster-allow-reads-when-down", Kind::Bool, "no"),
    modifiable("cluster-allow-pubsubshard-when-down", Kind::Bool, "yes"),
    modifiable("crash-log-enabled", Kind::Bool, "yes"),
    modifiable("crash-memcheck-enabled", Kind::Bool, "yes"),
    fixed("disable-thp", Kind::Bool, "yes"),
    modifiable("cluster-allow-replica-migration", Kind::Bool, "yes"),
    modifiable("replica-announced", Kind::Bool, "yes"),
    modifiable("replica-ignore-disk-write-errors", Kind::Bool, "no"),
    fixed("aclfile", Kind::Str, ""),
    fixed("unixsocket", Kind::Str, ""),
    modifiable("cluster-announce-ip", Kind::Str, ""),
    fixed("cluster-config-file", Kind::Str, "nodes.conf"),
    modifiable("cluster-announce-hostname", Kind::Str, ""),
    fixed("syslog-ident", Kind::Str, "redis"),
    fixed("server_cpulist", Kind::Str, ""),
    fixed("bio_cpulist", Kind::Str, ""),
    fixed("aof_rewrite_cpulist", Kind::Str, ""),
    fixed("bgsave_cpulist", Kind::Str, ""),
    modifiable("ignore-warnings", Kind::Str, ""),
    modifiable(
        "proc-title-template",
        Kind::Str,
        "{title} {listen-addr} {server-mode}",
    ),
    modifiable("bind-source-addr", Kind::Str, ""),
    fixed(
        "supervised",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
    ),
    fixed(
        "syslog-facility",
        Kind::Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        "local0",
    ),
    modifiable(
        "oom-score-adj",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
    ),
    modifiable(
        "acl-pubsub-default",
        Kind::Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
    ),
    modifiable(
        "sanitize-dump-payload",
        Kind::Enum(&["no", "yes", "clients"]),
        "no",
    ),
    fixed("enable-protected-configs", PROTECTED_ACTION, "no"),
    fixed("enable-module-command", PROTECTED_ACTION, "no"),
    modifiable(
        "cluster-preferred-endpoint-type",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
    ),
    modifiable(
        "propagation-error-behavior",
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
    ),
    accepted(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        Kind::Int(0, INT_MAX),
        "10",
        false,
    ),
    modifiable("cluster-migration-barrier", Kind::Int(0, INT_MAX), "1"),
    modifiable("active-defrag-cycle-min", Kind::Int(1, 99), "1"),
    modifiable("active-defrag-cycle-max", Kind::Int(1, 99), "25"),
    modifiable("active-defrag-threshold-lower", Kind::Int(0, 1000), "10"),
    modifiable("active-defrag-threshold-upper", Kind::Int(0, 1000), "100"),
    fixed("tcp-backlog", Kind::Int(0, INT_MAX), "511"),
    fixed("cluster-port", PORT, "0"),
    modifiable("cluster-announce-bus-port", PORT, "0"),
    modifiable("cluster-announce-port", PORT, "0"),
    modifiable("cluster-announce-tls-port", PORT, "0"),
    modifiable("list-compress-depth", Kind::Int(0, INT_MAX), "0"),
    modifiable("active-expire-effort", Kind::Int(1, 10), "1"),
    fixed("unixsocketperm", Kind::Octal(0o777), "0"),
    fixed("socket-mark-id", Kind::Int(0, u32::MAX as i64), "0"),
    modifiable(
        "active-defrag-max-scan-fields",
        Kind::Int(1, i64::MAX),
        "1000",
    ),
    modifiable("acllog-max-len", Kind::Int(0, i64::MAX), "128"),
    modifiable("cluster-node-timeout", Kind::Int(0, i64::MAX), "15000"),
    modifiable("cluster-link-sendbuf-limit", Kind::Memory(0, i64::MAX), "0"),
    modifiable(
        "active-defrag-ignore-bytes",
        Kind::Memory(1, i64::MAX),
        "104857600",
    ),
    modifiable("tls-session-cache-size", Kind::Int(0, INT_MAX), "20480"),
    modifiable("tls-session-cache-timeout", Kind::Int(0, INT_MAX), "300"),
    modifiable("tls-cluster", Kind::Bool, "no"),
    modifiable("tls-prefer-server-ciphers", Kind::Bool, "no"),
    modifiable("tls-session-caching", Kind::Bool, "yes"),
    modifiable("tls-dh-params-file", Kind::Str, ""),
    modifiable("oom-score-adj-values", Kind::OomValues, "0 200 800"),
];
