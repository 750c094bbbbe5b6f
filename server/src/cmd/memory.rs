//! MEMORY: a key's footprint, the server's memory figures and the allocator's report, with
//! Redis 7.0's replies and texts.

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, help, int_arg};
use crate::info::MemoryFigures;
use crate::keyspace::Entry;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[container(
    "memory",
    -2,
    READONLY,
    "server",
    memory_cmd,
    &[
        ("doctor", "memory|doctor", 2),
        ("help", "memory|help", 2),
        ("malloc-stats", "memory|malloc-stats", 2),
        ("purge", "memory|purge", 2),
        ("stats", "memory|stats", 2),
        ("usage", "memory|usage", -3),
    ],
)];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

fn memory_cmd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "usage") {
        usage(ctx, args)?;
    } else if eq(sub, "stats") {
        stats(ctx);
    } else if eq(sub, "doctor") {
        let report = doctor(ctx, &MemoryFigures::read(ctx.srv));
        ctx.reply.verbatim(report.as_bytes());
    } else if eq(sub, "malloc-stats") {
        let mut text = Vec::new();
        tikv_jemalloc_ctl::stats_print::stats_print(&mut text, Default::default())
            .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
        ctx.reply.verbatim(&text);
    } else if eq(sub, "purge") {
        // jemalloc returns dirty pages on its own decay schedule; there is nothing to force.
        ctx.reply.ok();
    } else {
        help(ctx, MEMORY_HELP);
    }
    Ok(())
}

/// MEMORY USAGE key [SAMPLES count]: the key, its entry and its value's heap. The size is
/// counted, not sampled, so SAMPLES is checked and then needs no effect.
fn usage(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut i = 3;
    while i < args.len() {
        if eq(args.get(i), "samples") && i + 1 < args.len() {
            if int_arg(args.get(i + 1))? < 0 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(slot) = ctx.find(args.get(2)) else {
        ctx.reply.null();
        return Ok(());
    };
    let e = ctx.db().entry(slot);
    let bytes = std::mem::size_of::<Entry>()
        + std::mem::size_of::<u32>()
        + e.key.heap_size()
        + e.value.heap_size();
    ctx.reply.int(bytes as i64);
    Ok(())
}

/// MEMORY STATS, in Redis 7.0's order of fields.
fn stats(ctx: &mut Ctx<'_>) {
    let m = MemoryFigures::read(ctx.srv);
    let repl = ctx.srv.repl.buffer_memory();
    let scripts = &ctx.srv.scripts;
    let lua_caches = scripts.cache_bytes;
    let functions_caches = scripts.functions.libraries.overhead_bytes();
    let dbs: Vec<(usize, usize, usize)> = ctx
        .srv
        .keyspace
        .dbs()
        .iter()
        .enumerate()
        .filter(|(_, db)| !db.is_empty())
        .map(|(i, db)| (i, db.len(), db.expires()))
        .collect();
    let keys: usize = dbs.iter().map(|(_, n, _)| n).sum();
    // What the key index costs per key (a 4-byte slot and its control byte, at the load
    // factor's spare room), reported where Redis reports its dict's buckets.
    let index_bytes = |n: usize| n * 8;
    let overhead = m.overhead
        + repl.total()
        + dbs
            .iter()
            .map(|(_, n, x)| (index_bytes(*n) + index_bytes(*x)) as u64)
            .sum::<u64>();
    let dataset = m.used.saturating_sub(overhead);
    let r = &mut ctx.reply;
    r.map(27 + dbs.len());
    let mut field = |name: &str, v: i64| {
        r.bulk(name.as_bytes());
        r.int(v);
    };
    field("peak.allocated", m.peak as i64);
    field("total.allocated", m.used as i64);
    field("startup.allocated", m.startup as i64);
    field("replication.backlog", repl.backlog as i64);
    field("clients.slaves", repl.replicas as i64);
    field("clients.normal", 0);
    field("cluster.links", 0);
    field("aof.buffer", 0);
    field("lua.caches", lua_caches as i64);
    field("functions.caches", functions_caches as i64);
    for (db, n, expires) in &dbs {
        r.bulk(format!("db.{db}").as_bytes());
        r.map(3);
        r.bulk(b"overhead.hashtable.main");
        r.int(index_bytes(*n) as i64);
        r.bulk(b"overhead.hashtable.expires");
        r.int(index_bytes(*expires) as i64);
        r.bulk(b"overhead.hashtable.slot-to-keys");
        r.int(0);
    }
    let mut field = |name: &str, v: i64| {
        r.bulk(name.as_bytes());
        r.int(v);
    };
    field("overhead.total", overhead as i64);
    field("keys.count", keys as i64);
    field(
        "keys.bytes-per-key",
        if keys == 0 {
            0
        } else {
            (m.used.saturating_sub(m.startup) / keys as u64) as i64
        },
    );
    field("dataset.bytes", dataset as i64);
    r.bulk(b"dataset.percentage");
    r.double(dataset as f64 * 100.0 / m.used.saturating_sub(m.startup).max(1) as f64);
    r.bulk(b"peak.percentage");
    r.double(m.peak_percent());
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let pairs: [(&str, f64, i64); 4] = [
        (
            "allocator-fragmentation",
            ratio(m.active, m.allocated),
            m.active as i64 - m.allocated as i64,
        ),
        (
            "allocator-rss",
            ratio(m.resident, m.active),
            m.resident as i64 - m.active as i64,
        ),
        (
            "rss-overhead",
            ratio(m.rss, m.resident),
            m.rss as i64 - m.resident as i64,
        ),
        ("", ratio(m.rss, m.used), m.rss as i64 - m.used as i64),
    ];
    r.bulk(b"allocator.allocated");
    r.int(m.allocated as i64);
    r.bulk(b"allocator.active");
    r.int(m.active as i64);
    r.bulk(b"allocator.resident");
    r.int(m.resident as i64);
    for (name, ratio, bytes) in pairs {
        // The last pair is the total: `fragmentation` and `fragmentation.bytes`.
        let (ratio_name, bytes_name) = if name.is_empty() {
            (
                "fragmentation".to_string(),
                "fragmentation.bytes".to_string(),
            )
        } else {
            (format!("{name}.ratio"), format!("{name}.bytes"))
        };
        r.bulk(ratio_name.as_bytes());
        r.double(ratio);
        r.bulk(bytes_name.as_bytes());
        r.int(bytes);
    }
}

/// MEMORY DOCTOR, with Redis 7.0's checks and words for what tandem-server measures.
fn doctor(ctx: &Ctx<'_>, m: &MemoryFigures) -> String {
    if m.used < 5 << 20 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let ten_mb = 10i64 << 20;
    let repl = ctx.srv.repl.buffer_memory();
    let replicas = ctx.srv.repl.replicas.len();
    let mut issues: Vec<&str> = Vec::new();
    if ratio(m.peak, m.used) > 1.5 {
        issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
    }
    if ratio(m.rss, m.used) > 1.4 && m.rss as i64 - m.used as i64 > ten_mb {
        issues.push(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"jemalloc-5.3.0\".\n\n");
    }
    if ratio(m.active, m.allocated) > 1.1 && m.active as i64 - m.allocated as i64 > ten_mb {
        issues.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n");
    }
    if ratio(m.resident, m.active) > 1.1 && m.resident as i64 - m.active as i64 > ten_mb {
        issues.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n");
    }
    if ratio(m.rss, m.resident) > 1.1 && m.rss as i64 - m.resident as i64 > ten_mb {
        issues.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n");
    }
    if replicas > 0 && repl.replicas > 10 << 20 {
        issues.push(" * Big replica buffers: The replica output buffers in this instance are greater than 10MB for each replica (on average). This likely means that there is some replica instance that is struggling receiving data, either because it is too slow or because of networking issues. As a result, data piles on the master output buffers. Please try to identify what replica is not receiving data correctly and why. You can use the INFO output in order to check the replicas delays and the CLIENT LIST command to check the output buffers of each replica.\n\n");
    }
    if ctx.srv.scripts.cache.len() > 1000 {
        issues.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
    }
    if issues.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    let mut s =
        String::from("Sam, I detected a few issues in this Redis instance memory implants:\n\n");
    for i in issues {
        s.push_str(i);
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}
