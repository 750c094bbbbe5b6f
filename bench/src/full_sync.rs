//! `tandem-bench full-sync`: the seed's experiment. For each server, a master is loaded with
//! a YCSB-shaped dataset; then, for each mode, a fresh empty replica is started and told
//! `REPLICAOF`, and the sync is timed from that command until the replica serves a key
//! written just before it. A sampler thread reads the memory of both process trees (fork
//! children included) and the size of both servers' directories every `--sample-ms`.
//!
//! Phases come from the servers' own log lines, which both servers print with Redis's
//! wording: the transfer ends when the master logs that the RDB was sent to the replica
//! (`Synchronization with replica ... succeeded` / `Streamed RDB transfer with replica ...
//! succeeded`), the load ends when the replica logs `MASTER <-> REPLICA sync: Finished with
//! success`. This module measures and draws its chart (through `plot`); it does not judge the results.

use crate::servers::{self, Kind, Server, info_field};
use crate::{dataset, plot, procfs, report};
use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: crate::Common,
    /// Logical dataset size (keys, field names, values, index entries): 512MiB, 4GiB, ...
    /// K/M/G/T suffixes are powers of 1024.
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Sync modes, in the order of the first round.
    #[arg(long, value_delimiter = ',', default_value = "disk,diskless")]
    modes: Vec<Mode>,
    /// Rounds; server and mode orders alternate between rounds.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// HSETs per second on random existing records during each sync (paced writer).
    #[arg(long)]
    write_rate: Option<u64>,
    /// Where the servers' directories (dumps, logs) are created; must be a real disk for the
    /// disk mode to mean anything. Default: the system temp directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Interval of the memory and directory sampler.
    #[arg(long, default_value_t = 50)]
    sample_ms: u64,
    /// Give up on one sync after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_s: u64,
    /// Render the comparison chart to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Replicate over TLS: masters and replicas get a TLS port and `tls-replication yes`,
    /// with certificates made by the openssl command (`tls.rs`).
    #[arg(long)]
    tls: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Master BGSAVEs to a file and sends it; the replica writes it to disk, then loads it.
    Disk,
    /// Master streams the snapshot to the socket; the replica parses it without a file.
    Diskless,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Disk => "disk",
            Mode::Diskless => "diskless",
        }
    }

    /// Master `repl-diskless-sync` and replica `repl-diskless-load`, the same for both servers.
    fn settings(self) -> (&'static str, &'static str) {
        match self {
            Mode::Disk => ("no", "disabled"),
            Mode::Diskless => ("yes", "on-empty-db"),
        }
    }
}

/// One measured sync. Times in seconds from the `REPLICAOF` command.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Record {
    pub server: Kind,
    pub mode: Mode,
    pub round: usize,
    /// Logical bytes loaded (see `--size`), and the master's DBSIZE.
    pub dataset_bytes: u64,
    pub keys: u64,
    pub records: u64,
    /// The master's `used_memory` with the dataset loaded.
    pub master_used_memory_bytes: u64,
    pub replica_diskless_load: String,
    /// Disk mode: until the master's BGSAVE finished.
    pub snapshot_s: Option<f64>,
    /// Until the master sent the last RDB byte to the replica.
    pub transfer_s: f64,
    /// From the end of the transfer until the replica finished loading (a replica that
    /// parses the stream as it arrives has loaded most of it during the transfer).
    pub load_s: f64,
    /// Until the replica's link is up and it answers a read of a key written just before.
    pub total_s: f64,
    pub master_rss_before_bytes: u64,
    /// Peak of the sum of VmRSS over the master's process tree (a Redis fork child counts).
    pub master_peak_rss_bytes: u64,
    /// Peak of the same tree's memory with pages shared by a fork counted once (Pss).
    pub master_peak_pss_bytes: u64,
    pub replica_peak_rss_bytes: u64,
    /// Largest total size of files seen in the master's and the replica's directories
    /// (dumps and temp files; the log excluded).
    pub master_dump_bytes: u64,
    pub replica_dump_bytes: u64,
    pub dump_bytes_written: u64,
    /// Full syncs the master served for this measurement (more than 1: retried).
    pub sync_full: u64,
    /// Peak `omem` of the replica's connection in the master's CLIENT LIST, and peak
    /// `mem_total_replication_buffers`, as each server reports them.
    pub replica_omem_peak_bytes: u64,
    pub repl_buffers_peak_bytes: u64,
    pub write_rate: Option<u64>,
    pub writes_done: u64,
    /// /proc/loadavg (1, 5, 15 min) right before the sync: the machine may be shared.
    pub loadavg: String,
    /// The link was TLS (`--tls`).
    #[serde(default)]
    pub tls: bool,
}

/// `512MiB`, `4GiB`, `4G`, `100m`, `1048576`: bytes, suffixes are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected a number and a unit like 512MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => return Err(format!("bad size unit {u:?} in {s:?}: use K, M, G or T")),
    };
    let bytes = n * (1u64 << shift) as f64;
    if bytes < 1.0 {
        return Err(format!("size {s:?} is empty"));
    }
    Ok(bytes as u64)
}

/// Memory one server's measurement needs for `size` logical bytes: master and replica each
/// hold the dataset (measured at 4 GiB: Redis 1.82x the logical bytes, tandem 1.47x;
/// rounded up). Both replicas parse the payload as it arrives, so neither holds the RDB
/// besides the dataset (tandem's replica peaked at its master's size at 4 GiB). The
/// master's copy-on-write (Redis fork) or pre-images (tandem) are small on an idle master
/// and up to the whole dataset under a write load.
pub fn memory_needed(kind: Kind, size: u64, write_load: bool) -> u64 {
    let dataset = match kind {
        Kind::Redis => 1.9,
        Kind::Tandem => 1.5,
    };
    let copy = if write_load { dataset } else { 0.1 };
    (size as f64 * (2.0 * dataset + copy)) as u64 + (256 << 20)
}

/// The refusal when the machine cannot hold the run, else `None`.
pub fn memory_refusal(
    kinds: &[Kind],
    size: u64,
    write_load: bool,
    available: u64,
) -> Option<String> {
    let (kind, need) = kinds
        .iter()
        .map(|&k| (k, memory_needed(k, size, write_load)))
        .max_by_key(|&(_, n)| n)?;
    (need > available).then(|| {
        format!(
            "full-sync of {} needs ~{} (master + replica of {}, one pair at a time), the machine has {} available (MemAvailable)",
            gib(size),
            gib(need),
            kind.name(),
            gib(available)
        )
    })
}

/// The refusal when the disk mode's two dumps (master's and replica's, each about the
/// logical size, with a quarter to spare) do not fit in `available` bytes, else `None`.
pub fn disk_refusal(size: u64, available: u64) -> Option<String> {
    let need = size / 2 * 5;
    (need > available).then(|| {
        format!(
            "the disk mode of {} writes two dumps, ~{}; the data directory's file system has {} free (pass --data-dir elsewhere, or --modes diskless)",
            gib(size),
            gib(need),
            gib(available)
        )
    })
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
}

/// Sum of `omem` over the replica connections (flags containing `S`) of a CLIENT LIST reply.
pub fn replica_omem(client_list: &str) -> u64 {
    client_list
        .lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('S')))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("omem="))?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// New complete lines of a log file since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    /// Starts at the current end: earlier lines belong to earlier measurements.
    fn at_end(path: PathBuf) -> LogTail {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        LogTail {
            path,
            offset,
            partial: String::new(),
        }
    }

    fn lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&buf);
        let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
        let rest = self.partial.split_off(complete);
        let lines = std::mem::replace(&mut self.partial, rest);
        lines.lines().map(str::to_owned).collect()
    }
}

#[derive(Default, Debug)]
struct Peaks {
    master_rss: u64,
    master_pss: u64,
    replica_rss: u64,
    master_dir: u64,
    replica_dir: u64,
    omem: u64,
    repl_buffers: u64,
}

/// Samples both process trees, both directories and the master's replication buffers until
/// `stop` is set.
fn sampler(
    master: (u32, u16, PathBuf, PathBuf),
    replica: (u32, PathBuf, PathBuf),
    every: Duration,
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<Peaks>>,
) {
    let (m_pid, m_port, m_dir, m_log) = master;
    let (r_pid, r_dir, r_log) = replica;
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{m_port}/"))
        .and_then(|c| c.get_connection())
        .ok();
    loop {
        // Checked before sampling so one last sample is taken after the sync ended.
        let last = stop.load(Ordering::Relaxed);
        let m = procfs::tree_memory(m_pid);
        let r = procfs::tree_memory(r_pid);
        let m_files = procfs::dir_bytes(&m_dir, &m_log);
        let r_files = procfs::dir_bytes(&r_dir, &r_log);
        let (omem, bufs) = conn.as_mut().map_or((0, 0), |c| {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(c)
                .unwrap_or_default();
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query(c)
                .unwrap_or_default();
            let bufs = info_field(&info, "mem_total_replication_buffers")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (replica_omem(&list), bufs)
        });
        if let Ok(mut p) = peaks.lock() {
            p.master_rss = p.master_rss.max(m.rss);
            p.master_pss = p.master_pss.max(m.pss);
            p.replica_rss = p.replica_rss.max(r.rss);
            p.master_dir = p.master_dir.max(m_files);
            p.replica_dir = p.replica_dir.max(r_files);
            p.omem = p.omem.max(omem);
            p.repl_buffers = p.repl_buffers.max(bufs);
        }
        if last {
            break;
        }
        std::thread::sleep(every);
    }
}

/// HSETs one random field of a random existing record, `rate` a second, in 10 ms batches,
/// until `stop`; returns the writes done.
pub(crate) fn writer(
    port: u16,
    rate: u64,
    records: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection()?;
    let mut rng = StdRng::seed_from_u64(7);
    let start = Instant::now();
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let n = due.saturating_sub(done).min(rate / 10 + 1);
        if n > 0 {
            let mut p = redis::pipe();
            for _ in 0..n {
                let k = rng.random_range(0..records);
                p.cmd("HSET")
                    .arg(dataset::key(k))
                    .arg(format!("field{}", rng.random_range(0..dataset::FIELDS)))
                    .arg(dataset::random_text(&mut rng, dataset::VALUE_LEN))
                    .ignore();
            }
            p.query::<()>(&mut c).context("write load")?;
            done += n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(done)
}

/// Loads `records` YCSB records and their index entries, pipelined, with a progress bar.
pub(crate) fn build(server: &Server, records: u64) -> anyhow::Result<()> {
    let mut c = server.connection()?;
    let mut rng = StdRng::seed_from_u64(42);
    let bar = ProgressBar::new(records).with_style(
        ProgressStyle::with_template(
            "{prefix:>8} build [{bar:30}] {human_pos}/{human_len} records {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(server.kind.name());
    let batch = 500;
    let mut k = 0;
    while k < records {
        let end = (k + batch).min(records);
        let mut p = redis::pipe();
        for i in k..end {
            p.add_command(dataset::hset(&mut rng, i)).ignore();
            p.add_command(dataset::index_add(i)).ignore();
        }
        p.query::<()>(&mut c)
            .with_context(|| format!("loading the dataset into {}", server.kind.name()))?;
        bar.set_position(end);
        k = end;
    }
    bar.finish_and_clear();
    Ok(())
}

fn config_set(server: &Server, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut c = server.connection()?;
    for (k, v) in pairs {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query::<()>(&mut c)
            .with_context(|| format!("{}: CONFIG SET {k} {v}", server.kind.name()))?;
    }
    Ok(())
}

fn info(server: &Server, section: &str) -> anyhow::Result<String> {
    let mut c = server.connection()?;
    Ok(redis::cmd("INFO").arg(section).query(&mut c)?)
}

fn info_num(info: &str, field: &str) -> u64 {
    info_field(info, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Removes what earlier syncs left in the master's directory (its dump), keeping the log.
fn clear_dumps(server: &Server) -> anyhow::Result<()> {
    for e in std::fs::read_dir(server.dir())?.flatten() {
        if e.path() != server.log_path() && e.path().is_file() {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

struct Setup<'a> {
    a: &'a Args,
    bin: PathBuf,
    base: PathBuf,
    records: u64,
    round: usize,
    /// With `--tls`: the certificates, and the master's TLS port the replica links to.
    tls: Option<(&'a crate::tls::Certs, u16)>,
}

/// One sync of a fresh replica from `master` in `mode`.
fn measure(s: &Setup, master: &mut Server, mode: Mode) -> anyhow::Result<Record> {
    let a = s.a;
    let kind = master.kind;
    let (diskless_sync, diskless_load) = mode.settings();
    config_set(master, &[("repl-diskless-sync", diskless_sync)])?;
    clear_dumps(master)?;
    let sentinel: String = format!("{:016x}", rand::rng().random::<u64>());
    {
        let mut c = master.connection()?;
        redis::cmd("SET")
            .arg("tandem-bench:sentinel")
            .arg(&sentinel)
            .query::<()>(&mut c)?;
    }
    let stats = info(master, "stats")?;
    let sync_full_before = info_num(&stats, "sync_full");
    let keys: u64 = redis::cmd("DBSIZE").query(&mut master.connection()?)?;
    let used = master.info_u64("used_memory")?;
    let rss_before = procfs::tree_memory(master.pid()).rss;

    let tls_args = s
        .tls
        .map(|(certs, _)| certs.server_args(tandem_testkit::free_port()))
        .unwrap_or_default();
    let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let mut replica = Server::start_in(kind, &s.bin, a.common.client_core, &s.base, &tls_args)?;
    config_set(
        &replica,
        &[
            ("repl-diskless-load", diskless_load),
            ("repl-timeout", "3600"),
        ],
    )?;
    let mut master_log = LogTail::at_end(master.log_path());
    let mut replica_log = LogTail::at_end(replica.log_path());

    let stop = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new(Peaks::default()));
    let sampler = {
        let master = (
            master.pid(),
            master.port,
            master.dir().to_path_buf(),
            master.log_path(),
        );
        let replica = (
            replica.pid(),
            replica.dir().to_path_buf(),
            replica.log_path(),
        );
        let (stop, peaks) = (stop.clone(), peaks.clone());
        let every = Duration::from_millis(a.sample_ms);
        std::thread::spawn(move || sampler(master, replica, every, stop, peaks))
    };
    let writer = a.write_rate.map(|rate| {
        let (port, records, stop) = (master.port, s.records, stop.clone());
        std::thread::spawn(move || writer(port, rate, records, stop))
    });

    let loadavg = procfs::loadavg();
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{prefix:>8} {spinner} {elapsed:>4} {msg}",
    )?);
    bar.set_prefix(format!("{} {}", kind.name(), mode.name()));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message("REPLICAOF sent");

    let t0 = Instant::now();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(s.tls.map_or(master.port, |(_, port)| port))
        .query::<()>(&mut replica.connection()?)?;
    let (mut snapshot, mut transfer, mut loaded, mut serving) = (None, None, None, None);
    let deadline = t0 + Duration::from_secs(a.timeout_s);
    let outcome = loop {
        let now = t0.elapsed().as_secs_f64();
        for l in master_log.lines() {
            if l.contains("Background saving terminated with success") && snapshot.is_none() {
                snapshot = Some(now);
                bar.set_message("snapshot saved, sending");
            }
            if l.contains("succeeded") && l.contains("with replica") {
                transfer = Some(now);
                bar.set_message("transfer done, replica loading");
            }
        }
        for l in replica_log.lines() {
            if l.contains("MASTER <-> REPLICA sync: Finished with success") {
                loaded = Some(now);
            }
        }
        if loaded.is_some() && transfer.is_some() {
            let mut c = replica.connection()?;
            let inf: String = redis::cmd("INFO").arg("replication").query(&mut c)?;
            let got: Option<String> = redis::cmd("GET")
                .arg("tandem-bench:sentinel")
                .query(&mut c)?;
            if info_field(&inf, "master_link_status") == Some("up")
                && got.as_deref() == Some(&sentinel)
            {
                serving = Some(t0.elapsed().as_secs_f64());
                break Ok(());
            }
        }
        if !replica.alive() || !master.alive() {
            break Err(anyhow::anyhow!(
                "{} died during the {} sync (logs: {}, {})",
                kind.name(),
                mode.name(),
                master.log_path().display(),
                replica.log_path().display()
            ));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "{} {} sync did not finish within {} s",
                kind.name(),
                mode.name(),
                a.timeout_s
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let writes_done = match writer {
        Some(w) => w
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??,
        None => 0,
    };
    bar.finish_and_clear();
    outcome?;
    let p = peaks
        .lock()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    let stats = info(master, "stats")?;
    let (transfer, loaded, total) = (
        transfer.unwrap_or_default(),
        loaded.unwrap_or_default(),
        serving.unwrap_or_default(),
    );
    drop(replica);
    clear_dumps(master)?;
    Ok(Record {
        server: kind,
        mode,
        round: s.round,
        dataset_bytes: s.records * dataset::record_bytes(),
        keys,
        records: s.records,
        master_used_memory_bytes: used,
        replica_diskless_load: diskless_load.into(),
        snapshot_s: snapshot.filter(|_| mode == Mode::Disk),
        transfer_s: transfer,
        load_s: (loaded - transfer).max(0.0),
        total_s: total,
        master_rss_before_bytes: rss_before,
        master_peak_rss_bytes: p.master_rss,
        master_peak_pss_bytes: p.master_pss,
        replica_peak_rss_bytes: p.replica_rss,
        master_dump_bytes: p.master_dir,
        replica_dump_bytes: p.replica_dir,
        dump_bytes_written: p.master_dir + p.replica_dir,
        sync_full: info_num(&stats, "sync_full").saturating_sub(sync_full_before),
        replica_omem_peak_bytes: p.omem,
        repl_buffers_peak_bytes: p.repl_buffers,
        write_rate: a.write_rate,
        writes_done,
        loadavg,
        tls: s.tls.is_some(),
    })
}

/// Pins this process (and the threads it starts later) to `core`: the write load and the
/// sampler share the replica's core, the master has its own.
fn pin_self(core: usize) -> anyhow::Result<()> {
    let st = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .context("taskset not found (util-linux)")?;
    if !st.success() {
        bail!("taskset could not pin the benchmark to core {core}");
    }
    Ok(())
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    if a.modes.is_empty() || a.common.servers.is_empty() || a.rounds == 0 {
        bail!("nothing to measure: give at least one mode, one server and one round");
    }
    if let Some(why) = memory_refusal(
        &a.common.servers,
        a.size,
        a.write_rate.is_some(),
        procfs::mem_available()?,
    ) {
        bail!("refusing to start: {why}");
    }
    let tandem = servers::tandem_bin(a.common.tandem_bin.as_deref())?;
    let base = a.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    if a.modes.contains(&Mode::Disk)
        && let Some(why) = disk_refusal(a.size, procfs::disk_available(&base)?)
    {
        bail!("refusing to start: {why}");
    }
    pin_self(a.common.client_core)?;
    let records = dataset::records_for(a.size);
    eprintln!(
        "full-sync: {} records ({} logical bytes), master on core {}, replica and client on core {}, loadavg {}",
        records,
        records * dataset::record_bytes(),
        a.common.server_core,
        a.common.client_core,
        procfs::loadavg()
    );
    let certs = a.tls.then(crate::tls::Certs::make).transpose()?;
    let mut records_out = Vec::new();
    for round in 0..a.rounds {
        let mut kinds = a.common.servers.clone();
        let mut modes = a.modes.clone();
        if round % 2 == 1 {
            kinds.reverse();
            modes.reverse();
        }
        for kind in kinds {
            let bin = match kind {
                Kind::Tandem => tandem.clone(),
                Kind::Redis => a.common.redis_bin.clone(),
            };
            let master_tls_port = tandem_testkit::free_port();
            let tls_args = certs
                .as_ref()
                .map(|c| c.server_args(master_tls_port))
                .unwrap_or_default();
            let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
            let mut master = Server::start_in(kind, &bin, a.common.server_core, &base, &tls_args)?;
            config_set(
                &master,
                &[
                    ("repl-diskless-sync-delay", "0"),
                    ("repl-timeout", "3600"),
                    ("client-output-buffer-limit", "replica 0 0 0"),
                ],
            )?;
            build(&master, records)?;
            let setup = Setup {
                a,
                bin,
                base: base.clone(),
                records,
                round: round + 1,
                tls: certs.as_ref().map(|c| (c, master_tls_port)),
            };
            for &mode in &modes {
                let r = measure(&setup, &mut master, mode)?;
                eprintln!(
                    "round {}/{} {:>6} {:>8}: total {:.2} s (transfer {:.2} s, load {:.2} s), dump {} bytes",
                    round + 1,
                    a.rounds,
                    kind.name(),
                    mode.name(),
                    r.total_s,
                    r.transfer_s,
                    r.load_s,
                    r.dump_bytes_written
                );
                records_out.push(r);
            }
        }
    }
    print_table(&records_out);
    report::write_json(a.common.json.as_deref(), &records_out)?;
    if let Some(png) = &a.plot {
        chart(&records_out, png)?;
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.0}", b as f64 / f64::from(1u32 << 20))
}

pub fn print_table(records: &[Record]) {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.server.name().into(),
                r.mode.name().into(),
                r.round.to_string(),
                mib(r.dataset_bytes),
                format!("{:.2}", r.transfer_s),
                format!("{:.2}", r.load_s),
                format!("{:.2}", r.total_s),
                mib(r.master_rss_before_bytes),
                mib(r.master_peak_rss_bytes),
                mib(r.master_peak_pss_bytes),
                mib(r.replica_peak_rss_bytes),
                mib(r.dump_bytes_written),
                r.sync_full.to_string(),
            ]
        })
        .collect();
    report::table(
        &[
            "server",
            "mode",
            "round",
            "data MiB",
            "transfer s",
            "load s",
            "total s",
            "master MiB",
            "master peak rss",
            "master peak pss",
            "replica peak rss",
            "dump MiB",
            "full syncs",
        ],
        &rows,
    );
}

fn median_of(records: &[&Record], f: &dyn Fn(&Record) -> f64) -> f64 {
    let v: Vec<f64> = records.iter().map(|r| f(r)).collect();
    report::median(&v)
}

/// The full-sync chart: time per (mode, server), transfer and load stacked, and the
/// master's peak memory; medians over rounds.
pub fn chart(records: &[Record], path: &Path) -> anyhow::Result<()> {
    let mut kinds: Vec<Kind> = Vec::new();
    let mut modes: Vec<Mode> = Vec::new();
    for r in records {
        if !kinds.contains(&r.server) {
            kinds.push(r.server);
        }
        if !modes.contains(&r.mode) {
            modes.push(r.mode);
        }
    }
    let pick = |k: Kind, m: Mode| -> Vec<&Record> {
        records
            .iter()
            .filter(|r| r.server == k && r.mode == m)
            .collect()
    };
    let gib = f64::from(1u32 << 30);
    // values[server][mode]: the median of `total`, its lower part the median of `lower`.
    let bars = |lower: &dyn Fn(&Record) -> f64, total: &dyn Fn(&Record) -> f64| {
        kinds
            .iter()
            .map(|&k| {
                modes
                    .iter()
                    .map(|&m| {
                        let total = median_of(&pick(k, m), total);
                        let lower = median_of(&pick(k, m), lower).min(total);
                        plot::Bar {
                            lower,
                            upper: total - lower,
                        }
                    })
                    .collect()
            })
            .collect::<Vec<Vec<plot::Bar>>>()
    };
    let one = |f: &dyn Fn(&Record) -> f64| bars(f, f);
    let panel_of = |title: &str, values, parts, label: fn(f64) -> String| plot::Panel {
        title: title.into(),
        groups: modes.iter().map(|m| m.name().to_string()).collect(),
        series: kinds.iter().map(|k| k.name().to_string()).collect(),
        values,
        parts,
        label,
    };
    let size = records.first().map_or(0, |r| r.dataset_bytes);
    let load = records
        .iter()
        .find_map(|r| r.write_rate)
        .map_or(String::new(), |w| format!(" under {w} HSET/s"));
    let title = format!(
        "Full sync of {} of YCSB records{load}, tandem-server vs Redis 7.0 (lower is better)",
        plot::human(size)
    );
    plot::render(
        path,
        &title,
        &[
            panel_of(
                "until the replica serves (s)",
                bars(&|r| r.transfer_s, &|r| r.total_s),
                Some(("transfer".into(), "load".into())),
                |v| format!("{v:.1}"),
            ),
            panel_of(
                "master peak memory, fork included (GiB)",
                one(&|r| r.master_peak_pss_bytes as f64 / gib),
                None,
                |v| format!("{v:.2}"),
            ),
            panel_of(
                "dump written to disk (GiB)",
                one(&|r| r.dump_bytes_written as f64 / gib),
                None,
                |v| format!("{v:.2}"),
            ),
        ],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12 parsecs").unwrap_err().contains("unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn memory_guard_refuses_what_does_not_fit() {
        let gb = 1u64 << 30;
        // 4 GiB on a 24 GiB machine with ~20 GiB available: fits, one pair at a time.
        assert_eq!(
            memory_refusal(&[Kind::Tandem, Kind::Redis], 4 * gb, false, 20 * gb),
            None
        );
        let why = memory_refusal(&[Kind::Tandem, Kind::Redis], 8 * gb, false, 20 * gb).unwrap();
        assert!(
            why.contains("needs ~") && why.contains("20.0 GiB available"),
            "{why}"
        );
        // A write load may copy the whole dataset on the master.
        assert!(memory_needed(Kind::Redis, gb, true) > memory_needed(Kind::Redis, gb, false));
    }

    #[test]
    fn disk_guard_counts_both_dumps() {
        let gb = 1u64 << 30;
        assert_eq!(disk_refusal(4 * gb, 17 * gb), None);
        let why = disk_refusal(4 * gb, 9 * gb).unwrap();
        assert!(
            why.contains("~10.0 GiB") && why.contains("9.0 GiB free"),
            "{why}"
        );
    }

    #[test]
    fn omem_of_replicas_only() {
        let list = "id=3 addr=127.0.0.1:5 flags=N omem=100 cmd=hset\n\
                    id=4 addr=127.0.0.1:6 flags=S omem=4096 cmd=replconf\n";
        assert_eq!(replica_omem(list), 4096);
        assert_eq!(replica_omem(""), 0);
    }

    #[test]
    fn log_tail_returns_complete_new_lines_once() {
        let path = std::env::temp_dir().join(format!("tandem-bench-tail-{}", std::process::id()));
        std::fs::write(&path, "old line\n").unwrap();
        let mut t = LogTail::at_end(path.clone());
        assert!(t.lines().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"one\ntw").unwrap();
        assert_eq!(t.lines(), vec!["one".to_string()]);
        std::io::Write::write_all(&mut f, b"o\n").unwrap();
        assert_eq!(t.lines(), vec!["two".to_string()]);
        std::fs::remove_file(&path).unwrap();
    }
}
