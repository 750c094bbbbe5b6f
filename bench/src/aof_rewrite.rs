//! `tandem-bench aof-rewrite`: BGREWRITEAOF of a YCSB-shaped dataset under a steady write
//! load, for each server with `appendonly yes`: how long the rewrite takes and how much
//! memory the server's process tree holds at its peak (Redis's fork child included, by Pss)
//! against the moment before the rewrite. The same dataset builder and writer as
//! `full-sync`; this module measures, it does not judge.

use crate::full_sync::{build, parse_size, writer};
use crate::servers::{self, Kind, Server, info_field};
use crate::{dataset, procfs, report};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: crate::Common,
    /// Logical dataset size (YCSB records of 10 fields x 100 bytes).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Writes per second (HSET of one field of a random record) during the rewrite.
    #[arg(long, default_value_t = 20_000)]
    write_rate: u64,
    /// `appendfsync` of both servers.
    #[arg(long, default_value = "everysec")]
    appendfsync: String,
    /// Where the servers' directories (and so their AOF files) are created.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    data_dir: PathBuf,
    /// Memory sampling period, milliseconds.
    #[arg(long, default_value_t = 50)]
    sample_ms: u64,
}

#[derive(Serialize, Debug)]
pub struct Record {
    pub server: Kind,
    pub dataset_bytes: u64,
    pub records: u64,
    pub write_rate: u64,
    pub appendfsync: String,
    /// From BGREWRITEAOF until INFO reports the rewrite done.
    pub rewrite_s: f64,
    /// The process tree's memory (Pss) just before BGREWRITEAOF.
    pub rss_before_bytes: u64,
    /// The largest Pss of the process tree during the rewrite.
    pub peak_pss_bytes: u64,
    /// The largest sum of VmRSS of the process tree during the rewrite.
    pub peak_rss_bytes: u64,
    pub peak_over_before: f64,
    /// Writes the load completed per second while the rewrite ran.
    pub writes_per_sec_during: f64,
    /// Size of the AOF directory after the rewrite.
    pub aof_bytes_after: u64,
}

fn persistence_num(server: &Server, field: &str) -> anyhow::Result<u64> {
    let mut c = server.connection()?;
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c)?;
    info_field(&info, field)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in INFO persistence"))
}

fn measure(a: &Args, kind: Kind, bin: &std::path::Path, records: u64) -> anyhow::Result<Record> {
    // No automatic rewrite: the one measured is the BGREWRITEAOF below.
    let extra = [
        "--appendonly",
        "yes",
        "--appendfsync",
        &a.appendfsync,
        "--auto-aof-rewrite-percentage",
        "0",
    ];
    let server = Server::start_in(kind, bin, a.common.server_core, &a.data_dir, &extra)?;
    build(&server, records)?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (port, rate, stop) = (server.port, a.write_rate, stop.clone());
        std::thread::spawn(move || writer(port, rate, records, stop))
    };
    // Let the load reach its rate and the memory settle before the reference reading.
    std::thread::sleep(Duration::from_secs(3));
    let before = procfs::tree_memory(server.pid());
    let rewrites = persistence_num(&server, "aof_rewrites")?;
    let mut c = server.connection()?;
    let reply: String = redis::cmd("BGREWRITEAOF").query(&mut c)?;
    if !reply.starts_with("Background append only file rewriting") {
        bail!("{}: BGREWRITEAOF answered {reply:?}", kind.name());
    }
    let start = Instant::now();
    let (mut peak_pss, mut peak_rss) = (before.pss, before.rss);
    loop {
        let m = procfs::tree_memory(server.pid());
        peak_pss = peak_pss.max(m.pss);
        peak_rss = peak_rss.max(m.rss);
        if persistence_num(&server, "aof_rewrites")? > rewrites
            && persistence_num(&server, "aof_rewrite_in_progress")? == 0
        {
            break;
        }
        if persistence_num(&server, "aof_rewrites_consecutive_failures")? > 0 {
            bail!("{}: the AOF rewrite failed", kind.name());
        }
        std::thread::sleep(Duration::from_millis(a.sample_ms));
    }
    let rewrite_s = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let writes = load
        .join()
        .map_err(|_| anyhow::anyhow!("the write load panicked"))??;
    let aof_dir = server.dir().join("appendonlydir");
    let record = Record {
        server: kind,
        dataset_bytes: a.size,
        records,
        write_rate: a.write_rate,
        appendfsync: a.appendfsync.clone(),
        rewrite_s,
        rss_before_bytes: before.pss,
        peak_pss_bytes: peak_pss,
        peak_rss_bytes: peak_rss,
        peak_over_before: peak_pss as f64 / before.pss.max(1) as f64,
        writes_per_sec_during: writes as f64 / (rewrite_s + 3.0),
        aof_bytes_after: procfs::dir_bytes(&aof_dir, &server.log_path()),
    };
    Ok(record)
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let tandem = servers::tandem_bin(a.common.tandem_bin.as_deref())?;
    let records = dataset::records_for(a.size);
    let mut out = Vec::new();
    for &kind in &a.common.servers {
        let bin = match kind {
            Kind::Tandem => tandem.clone(),
            Kind::Redis => a.common.redis_bin.clone(),
        };
        let r = measure(a, kind, &bin, records)?;
        eprintln!("{r:?}");
        out.push(r);
    }
    let mib = |b: u64| format!("{:.0}", b as f64 / f64::from(1 << 20));
    let rows = out
        .iter()
        .map(|r| {
            vec![
                r.server.name().to_string(),
                format!("{:.1}", r.rewrite_s),
                mib(r.rss_before_bytes),
                mib(r.peak_pss_bytes),
                format!("{:.2}x", r.peak_over_before),
                format!("{:.0}", r.writes_per_sec_during),
            ]
        })
        .collect::<Vec<_>>();
    report::table(
        &[
            "server",
            "rewrite s",
            "before MiB",
            "peak MiB (Pss)",
            "peak/before",
            "writes/s",
        ],
        &rows,
    );
    report::write_json(a.common.json.as_deref(), &out)
}
