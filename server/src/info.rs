//! INFO: sections and field names as Redis 7.0 prints them, so dashboards, exporters and the
//! operator read ours unchanged.

use crate::REDIS_VERSION;
use crate::state::Server;
use std::fmt::Write as _;

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// Human-readable bytes as Redis prints them (`1.23M`).
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    let units = [
        ("B", 1.0),
        ("K", 1024.0),
        ("M", 1048576.0),
        ("G", 1073741824.0),
        ("T", 1099511627776.0),
    ];
    if n < 1024.0 {
        return format!("{}B", n as u64);
    }
    let (u, d) = units
        .iter()
        .rev()
        .find(|(_, d)| n >= *d)
        .copied()
        .unwrap_or(("B", 1.0));
    format!("{:.2}{u}", n / d)
}

/// Selected sections, from INFO's arguments (none = default; `all`, `everything`).
pub fn sections(args: &[String]) -> Vec<&'static str> {
    if args.is_empty() || args.iter().any(|a| a == "default") {
        return DEFAULT_SECTIONS.to_vec();
    }
    if args.iter().any(|a| a == "all" || a == "everything") {
        return ALL_SECTIONS.to_vec();
    }
    ALL_SECTIONS
        .iter()
        .copied()
        .filter(|s| args.iter().any(|a| a == s))
        .collect()
}

/// Renders the requested sections.
pub fn render(srv: &Server, wanted: &[&str]) -> String {
    let mut out = String::new();
    for s in wanted {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = if *s == "cpu" {
            "CPU".to_string()
        } else {
            format!("{}{}", s[..1].to_ascii_uppercase(), &s[1..])
        };
        let _ = write!(out, "# {title}\r\n");
        match *s {
            "server" => server(srv, &mut out),
            "clients" => clients(srv, &mut out),
            "memory" => memory(srv, &mut out),
            "persistence" => persistence(srv, &mut out),
            "stats" => stats(srv, &mut out),
            "replication" => replication(srv, &mut out),
            "cpu" => cpu(&mut out),
            "commandstats" => commandstats(srv, &mut out),
            "errorstats" => errorstats(srv, &mut out),
            "latencystats" => latencystats(srv, &mut out),
            "cluster" => out.push_str("cluster_enabled:0\r\n"),
            "keyspace" => keyspace(srv, &mut out),
            _ => {}
        }
    }
    out
}

macro_rules! field {
    ($out:expr, $name:literal, $v:expr) => {
        let _ = write!($out, concat!($name, ":{}\r\n"), $v);
    };
}

fn server(srv: &Server, out: &mut String) {
    let uptime = srv.started.elapsed().as_secs();
    field!(out, "redis_version", REDIS_VERSION);
    field!(out, "redis_git_sha1", "00000000");
    field!(out, "redis_git_dirty", 0);
    field!(out, "redis_build_id", "0");
    field!(out, "redis_mode", "standalone");
    field!(
        out,
        "os",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
    );
    field!(out, "arch_bits", 64);
    field!(out, "monotonic_clock", "POSIX clock_gettime");
    field!(out, "multiplexing_api", "epoll");
    field!(out, "atomicvar_api", "c11-builtin");
    field!(out, "gcc_version", "0.0.0");
    field!(out, "process_id", std::process::id());
    field!(out, "process_supervised", "no");
    field!(out, "run_id", srv.run_id);
    // Redis shows the TLS port when no plain port is open.
    let port = match srv.config.port {
        0 => srv.config.tls_port,
        p => p,
    };
    field!(out, "tcp_port", port);
    field!(out, "server_time_usec", crate::clock::now_us());
    field!(out, "uptime_in_seconds", uptime);
    field!(out, "uptime_in_days", uptime / 86400);
    field!(out, "hz", srv.config.hz);
    field!(out, "configured_hz", srv.config.hz);
    field!(
        out,
        "lru_clock",
        (crate::clock::now_ms() / 1000) & 0xff_ffff
    );
    field!(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    field!(
        out,
        "config_file",
        srv.config.config_file.clone().unwrap_or_default()
    );
    field!(out, "io_threads_active", 0);
    if let Some(ms) = crate::shutdown::remaining_ms(srv, crate::clock::now_ms()) {
        field!(out, "shutdown_in_milliseconds", ms);
    }
    field!(out, "tandem_version", env!("CARGO_PKG_VERSION"));
}

fn clients(srv: &Server, out: &mut String) {
    field!(out, "connected_clients", srv.clients.len());
    field!(out, "cluster_connections", 0);
    field!(out, "maxclients", srv.config.maxclients);
    field!(out, "client_recent_max_input_buffer", 0);
    field!(out, "client_recent_max_output_buffer", 0);
    field!(out, "blocked_clients", srv.blocked_clients());
    field!(out, "tracking_clients", srv.tracking.counts().0);
    field!(out, "clients_in_timeout_table", 0);
}

/// A ratio as Redis prints it (`%.2f`).
fn ratio(a: u64, b: u64) -> String {
    format!("{:.2}", a as f64 / b.max(1) as f64)
}

/// The memory figures INFO memory and MEMORY STATS / DOCTOR report (Redis's
/// `getMemoryOverheadData`), read once.
#[derive(Debug, Clone, Copy)]
pub struct MemoryFigures {
    pub used: u64,
    pub rss: u64,
    pub peak: u64,
    pub startup: u64,
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub overhead: u64,
    pub dataset: u64,
}

impl MemoryFigures {
    /// As Redis, the overhead is the start-up memory plus the replication backlog and the
    /// clients' buffers (replicas' output included), so `used_memory_dataset` is the data:
    /// a bulk load's pipelined input or a slow replica's pending stream is not taken for
    /// dataset by whoever sizes from it (the operator's tuning does).
    pub fn read(srv: &Server) -> Self {
        let used = crate::memory::used_memory();
        let (allocated, active, resident) = crate::memory::allocator();
        let startup = crate::memory::startup();
        let clients: u64 = srv
            .clients
            .values()
            .map(|c| {
                let info = c.info.borrow();
                (info.qbuf + info.omem) as u64
            })
            .sum();
        let overhead = startup
            .saturating_add(srv.repl.buffer_memory().backlog)
            .saturating_add(clients)
            .min(used);
        MemoryFigures {
            used,
            rss: crate::memory::rss(),
            peak: crate::memory::peak(used),
            startup,
            allocated,
            active,
            resident,
            overhead,
            dataset: used - overhead,
        }
    }

    /// The dataset's share of what the server allocated beyond its start-up, in percent.
    pub fn dataset_percent(&self) -> f64 {
        self.dataset as f64 * 100.0 / self.used.saturating_sub(self.startup).max(1) as f64
    }

    pub fn peak_percent(&self) -> f64 {
        self.used as f64 * 100.0 / self.peak.max(1) as f64
    }
}

/// The memory section, in Redis 7.0's field order. There are no AOF buffers here.
fn memory(srv: &Server, out: &mut String) {
    let m = MemoryFigures::read(srv);
    let MemoryFigures {
        used,
        rss,
        peak,
        startup,
        allocated,
        active,
        resident,
        overhead,
        dataset,
    } = m;
    field!(out, "used_memory", used);
    field!(out, "used_memory_human", human_bytes(used));
    field!(out, "used_memory_rss", rss);
    field!(out, "used_memory_rss_human", human_bytes(rss));
    field!(out, "used_memory_peak", peak);
    field!(out, "used_memory_peak_human", human_bytes(peak));
    field!(
        out,
        "used_memory_peak_perc",
        format!("{:.2}%", m.peak_percent())
    );
    field!(out, "used_memory_overhead", overhead);
    field!(out, "used_memory_startup", startup);
    field!(out, "used_memory_dataset", dataset);
    field!(
        out,
        "used_memory_dataset_perc",
        format!("{:.2}%", m.dataset_percent())
    );
    field!(out, "allocator_allocated", allocated);
    field!(out, "allocator_active", active);
    field!(out, "allocator_resident", resident);
    field!(out, "total_system_memory", total_system_memory());
    field!(
        out,
        "total_system_memory_human",
        human_bytes(total_system_memory())
    );
    // The EVAL interpreter is created on first use: 0 before any script.
    let eval_vm = srv.scripts.lua_memory();
    let eval_overhead = srv.scripts.cache_bytes;
    field!(out, "used_memory_lua", eval_vm);
    field!(out, "used_memory_vm_eval", eval_vm);
    field!(out, "used_memory_lua_human", human_bytes(eval_vm as u64));
    field!(out, "used_memory_scripts_eval", eval_overhead);
    field!(out, "number_of_cached_scripts", srv.scripts.cache.len());
    let functions = &srv.scripts.functions;
    let functions_vm = functions.lua_memory();
    let functions_overhead = functions.libraries.overhead_bytes();
    field!(
        out,
        "number_of_functions",
        functions.libraries.function_count()
    );
    field!(out, "number_of_libraries", functions.libraries.len());
    field!(out, "used_memory_vm_functions", functions_vm);
    field!(out, "used_memory_vm_total", eval_vm + functions_vm);
    field!(
        out,
        "used_memory_vm_total_human",
        human_bytes((eval_vm + functions_vm) as u64)
    );
    field!(out, "used_memory_functions", functions_overhead);
    field!(
        out,
        "used_memory_scripts",
        eval_overhead + functions_overhead
    );
    field!(
        out,
        "used_memory_scripts_human",
        human_bytes((eval_overhead + functions_overhead) as u64)
    );
    field!(out, "maxmemory", srv.config.maxmemory);
    field!(out, "maxmemory_human", human_bytes(srv.config.maxmemory));
    field!(out, "maxmemory_policy", srv.config.maxmemory_policy.name());
    field!(out, "allocator_frag_ratio", ratio(active, allocated));
    field!(
        out,
        "allocator_frag_bytes",
        active as i64 - allocated as i64
    );
    field!(out, "allocator_rss_ratio", ratio(resident, active));
    field!(out, "allocator_rss_bytes", resident as i64 - active as i64);
    field!(out, "rss_overhead_ratio", ratio(rss, resident));
    field!(out, "rss_overhead_bytes", rss as i64 - resident as i64);
    field!(out, "mem_fragmentation_ratio", ratio(rss, used));
    field!(out, "mem_fragmentation_bytes", rss as i64 - used as i64);
    let repl = srv.repl.buffer_memory();
    field!(out, "mem_not_counted_for_evict", 0);
    field!(out, "mem_replication_backlog", repl.backlog);
    field!(out, "mem_total_replication_buffers", repl.total());
    field!(out, "mem_clients_slaves", repl.replicas);
    for zero in ["mem_clients_normal", "mem_cluster_links", "mem_aof_buffer"] {
        let _ = write!(out, "{zero}:0\r\n");
    }
    field!(out, "mem_allocator", "jemalloc-5.3.0");
    field!(out, "active_defrag_running", 0);
    field!(out, "lazyfree_pending_objects", 0);
    field!(out, "lazyfreed_objects", 0);
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn persistence(srv: &Server, out: &mut String) {
    let p = &srv.persistence;
    // Either owner of the snapshot: a BGSAVE or a diskless transfer (Redis's RDB child).
    let (processed, total) = p
        .bgsave
        .as_ref()
        .map(|b| b.progress(&srv.keyspace))
        .or_else(|| srv.repl.transfer.as_ref()?.progress(&srv.keyspace))
        .unwrap_or((0, 0));
    let fork_perc = if total > 0 {
        processed as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    field!(out, "loading", u8::from(p.loading.is_some()));
    field!(out, "async_loading", u8::from(p.async_loading));
    field!(out, "current_cow_peak", 0);
    field!(out, "current_cow_size", 0);
    field!(out, "current_cow_size_age", 0);
    field!(out, "current_fork_perc", format!("{fork_perc:.2}"));
    field!(out, "current_save_keys_processed", processed);
    field!(out, "current_save_keys_total", total);
    field!(out, "rdb_changes_since_last_save", srv.dirty);
    field!(
        out,
        "rdb_bgsave_in_progress",
        u8::from(p.snapshot_busy() && srv.aof.rewrite.is_none())
    );
    field!(out, "rdb_last_save_time", srv.lastsave);
    field!(
        out,
        "rdb_last_bgsave_status",
        if p.last_bgsave_ok { "ok" } else { "err" }
    );
    field!(out, "rdb_last_bgsave_time_sec", p.last_bgsave_time_sec);
    field!(
        out,
        "rdb_current_bgsave_time_sec",
        p.bgsave
            .as_ref()
            .map_or(-1, |b| b.started.elapsed().as_secs() as i64)
    );
    field!(out, "rdb_saves", p.rdb_saves);
    field!(out, "rdb_last_cow_size", 0);
    field!(out, "rdb_last_load_keys_expired", p.last_load_keys_expired);
    field!(out, "rdb_last_load_keys_loaded", p.last_load_keys_loaded);
    crate::aof::info::persistence(srv, out);
    if let Some(l) = &p.loading {
        let elapsed = l.started.elapsed().as_secs_f64();
        let perc = if l.total_bytes > 0 {
            l.loaded_bytes as f64 * 100.0 / l.total_bytes as f64
        } else {
            0.0
        };
        let eta = if l.loaded_bytes > 0 && elapsed > 0.0 {
            let rate = l.loaded_bytes as f64 / elapsed;
            (l.total_bytes.saturating_sub(l.loaded_bytes) as f64 / rate) as i64
        } else {
            1
        };
        field!(out, "loading_start_time", l.start_unix);
        field!(out, "loading_total_bytes", l.total_bytes);
        field!(out, "loading_rdb_used_mem", l.rdb_used_mem);
        field!(out, "loading_loaded_bytes", l.loaded_bytes);
        field!(out, "loading_loaded_perc", format!("{perc:.2}"));
        field!(out, "loading_eta_seconds", eta);
    }
}

fn stats(srv: &Server, out: &mut String) {
    let s = &srv.stats;
    field!(
        out,
        "total_connections_received",
        s.total_connections_received
    );
    field!(out, "total_commands_processed", s.total_commands_processed);
    field!(out, "instantaneous_ops_per_sec", s.instantaneous_ops());
    field!(out, "total_net_input_bytes", s.total_net_input_bytes);
    field!(out, "total_net_output_bytes", s.total_net_output_bytes);
    field!(out, "total_net_repl_input_bytes", 0);
    field!(out, "total_net_repl_output_bytes", 0);
    field!(out, "instantaneous_input_kbps", "0.00");
    field!(out, "instantaneous_output_kbps", "0.00");
    field!(out, "instantaneous_input_repl_kbps", "0.00");
    field!(out, "instantaneous_output_repl_kbps", "0.00");
    field!(out, "rejected_connections", s.rejected_connections);
    field!(out, "sync_full", srv.repl.sync_full);
    field!(out, "sync_partial_ok", srv.repl.sync_partial_ok);
    field!(out, "sync_partial_err", srv.repl.sync_partial_err);
    field!(out, "expired_keys", s.expired_keys);
    field!(out, "expired_stale_perc", "0.00");
    field!(out, "expired_time_cap_reached_count", 0);
    field!(out, "expire_cycle_cpu_milliseconds", 0);
    field!(out, "evicted_keys", s.evicted_keys);
    field!(out, "evicted_clients", 0);
    field!(out, "total_eviction_exceeded_time", 0);
    field!(out, "current_eviction_exceeded_time", 0);
    field!(out, "keyspace_hits", s.keyspace_hits);
    field!(out, "keyspace_misses", s.keyspace_misses);
    field!(out, "pubsub_channels", srv.pubsub.num_channels());
    field!(out, "pubsub_patterns", srv.pubsub.num_patterns());
    field!(out, "pubsubshard_channels", srv.pubsub.num_shard_channels());
    field!(out, "latest_fork_usec", 0);
    field!(out, "total_forks", 0);
    field!(out, "migrate_cached_sockets", 0);
    field!(out, "slave_expires_tracked_keys", 0);
    field!(out, "active_defrag_hits", 0);
    field!(out, "active_defrag_misses", 0);
    field!(out, "active_defrag_key_hits", 0);
    field!(out, "active_defrag_key_misses", 0);
    field!(out, "total_active_defrag_time", 0);
    field!(out, "current_active_defrag_time", 0);
    let (_, keys, items, prefixes) = srv.tracking.counts();
    field!(out, "tracking_total_keys", keys);
    field!(out, "tracking_total_items", items);
    field!(out, "tracking_total_prefixes", prefixes);
    field!(out, "unexpected_error_replies", 0);
    field!(out, "total_error_replies", s.total_error_replies);
    field!(out, "dump_payload_sanitizations", 0);
    field!(out, "total_reads_processed", 0);
    field!(out, "total_writes_processed", 0);
    field!(out, "io_threaded_reads_processed", 0);
    field!(out, "io_threaded_writes_processed", 0);
    field!(out, "reply_buffer_shrinks", 0);
    field!(out, "reply_buffer_expands", 0);
}

fn replication(srv: &Server, out: &mut String) {
    let r = &srv.repl;
    let now = crate::clock::now_ms();
    let secs = |ms: u64| now.saturating_sub(ms) / 1000;
    if let Some(m) = &r.master {
        use crate::state::replication::master_link::LinkState;
        let up = m.state == LinkState::Connected;
        field!(out, "role", "slave");
        field!(out, "master_host", m.host);
        field!(out, "master_port", m.port);
        field!(out, "master_link_status", if up { "up" } else { "down" });
        if m.last_io_ms == 0 {
            field!(out, "master_last_io_seconds_ago", -1);
        } else {
            field!(out, "master_last_io_seconds_ago", secs(m.last_io_ms));
        }
        let transfer = m.state == LinkState::Transfer;
        field!(out, "master_sync_in_progress", u8::from(transfer));
        field!(
            out,
            "slave_read_repl_offset",
            m.read_off.max(srv.feed.offset)
        );
        field!(out, "slave_repl_offset", srv.feed.offset);
        if transfer {
            let left = m.sync_total.saturating_sub(m.sync_read);
            let perc = if m.sync_total > 0 {
                m.sync_read as f64 * 100.0 / m.sync_total as f64
            } else {
                0.0
            };
            field!(out, "master_sync_total_bytes", m.sync_total);
            field!(out, "master_sync_read_bytes", m.sync_read);
            field!(out, "master_sync_left_bytes", left);
            field!(out, "master_sync_perc", format!("{perc:.2}"));
            field!(out, "master_sync_last_io_seconds_ago", secs(m.last_io_ms));
        }
        if !up {
            let down = m.down_since_ms.map_or(-1, |t| secs(t) as i64);
            field!(out, "master_link_down_since_seconds", down);
        }
        field!(out, "slave_priority", srv.config.replica_priority);
        field!(
            out,
            "slave_read_only",
            u8::from(srv.config.replica_read_only)
        );
        field!(out, "replica_announced", 1);
    } else {
        field!(out, "role", "master");
    }
    field!(out, "connected_slaves", r.replicas.len());
    let (min, lag) = (
        srv.config.min_replicas_to_write,
        srv.config.min_replicas_max_lag,
    );
    if min > 0 && lag > 0 {
        field!(out, "min_slaves_good_slaves", r.good_replicas(lag));
    }
    for (i, l) in r.replicas.iter().enumerate() {
        use crate::state::replication::replicas::ReplicaState;
        let lag = if l.state.get() == ReplicaState::Online {
            secs(l.ack_ms.get())
        } else {
            0
        };
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            l.ip,
            l.port,
            l.state.get().name(),
            l.ack_off.get(),
            lag
        );
    }
    field!(
        out,
        "master_failover_state",
        crate::state::replication::Failover::state_name(srv.repl.failover.as_ref())
    );
    field!(out, "master_replid", r.ids.replid);
    field!(out, "master_replid2", r.ids.replid2);
    field!(out, "master_repl_offset", srv.feed.offset);
    field!(out, "second_repl_offset", r.ids.second_offset);
    match &r.backlog {
        Some(b) => {
            field!(out, "repl_backlog_active", 1);
            field!(out, "repl_backlog_size", srv.config.repl_backlog_size);
            field!(out, "repl_backlog_first_byte_offset", b.first_byte_offset());
            field!(out, "repl_backlog_histlen", b.histlen());
        }
        None => {
            field!(out, "repl_backlog_active", 0);
            field!(out, "repl_backlog_size", srv.config.repl_backlog_size);
            field!(out, "repl_backlog_first_byte_offset", 0);
            field!(out, "repl_backlog_histlen", 0);
        }
    }
}

fn cpu(out: &mut String) {
    let (user, sys) = cpu_times();
    field!(out, "used_cpu_sys", format!("{sys:.6}"));
    field!(out, "used_cpu_user", format!("{user:.6}"));
    field!(out, "used_cpu_sys_children", "0.000000");
    field!(out, "used_cpu_user_children", "0.000000");
    field!(out, "used_cpu_sys_main_thread", format!("{sys:.6}"));
    field!(out, "used_cpu_user_main_thread", format!("{user:.6}"));
}

/// User and system CPU seconds of this process, from /proc/self/stat.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

/// One line per command that was called, refused or failed, sorted by name.
fn commandstats(srv: &Server, out: &mut String) {
    let stats = &srv.stats;
    let mut names: Vec<&str> = stats
        .command_calls
        .keys()
        .chain(stats.command_failures.keys())
        .copied()
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (calls, usec) = stats.command_calls.get(name).copied().unwrap_or_default();
        let (rejected, failed) = stats
            .command_failures
            .get(name)
            .copied()
            .unwrap_or_default();
        let _ = write!(
            out,
            "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
            usec as f64 / calls.max(1) as f64
        );
    }
}

/// One line per command with a latency histogram: the configured percentiles, in
/// microseconds.
fn latencystats(srv: &Server, out: &mut String) {
    for (name, h) in srv.latency.histograms() {
        let _ = write!(out, "latency_percentiles_usec_{name}:");
        for (i, p) in srv
            .config
            .latency_tracking_info_percentiles
            .iter()
            .enumerate()
        {
            let _ = write!(
                out,
                "{}p{}={:.3}",
                if i == 0 { "" } else { "," },
                crate::config::percentile_text(*p),
                crate::latency::percentile_usec(h, *p)
            );
        }
        out.push_str("\r\n");
    }
}

fn errorstats(srv: &Server, out: &mut String) {
    let mut errs: Vec<_> = srv.stats.error_counts.iter().collect();
    errs.sort();
    for (code, n) in errs {
        let _ = write!(out, "errorstat_{code}:count={n}\r\n");
    }
}

fn keyspace(srv: &Server, out: &mut String) {
    for (i, db) in srv.keyspace.dbs().iter().enumerate() {
        if !db.is_empty() {
            let _ = write!(
                out,
                "db{i}:keys={},expires={},avg_ttl={}\r\n",
                db.len(),
                db.expires(),
                db.avg_ttl()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(human_bytes(1000), "1000B");
        assert_eq!(human_bytes(1286840), "1.23M");
        assert_eq!(human_bytes(0), "0B");
    }

    #[test]
    fn section_selection() {
        assert_eq!(sections(&[]), DEFAULT_SECTIONS);
        assert_eq!(sections(&["replication".into()]), vec!["replication"]);
        assert!(sections(&["all".into()]).contains(&"commandstats"));
    }
}
