//! `tandem-bench`: measures tandem-server side by side with real Redis 7.0 in one run, on
//! the same machine, with the method of docs/benchmarks.md (servers pinned to one core, the
//! load generator to another, alternating rounds, medians).

mod aof_rewrite;
mod dataset;
mod doc;
mod full_sync;
mod memory;
mod plot;
mod procfs;
mod report;
mod servers;
mod throughput;
mod tls;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "tandem-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every benchmark shares.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Servers to measure, in the order of each round.
    #[arg(long, value_delimiter = ',', default_value = "tandem,redis")]
    servers: Vec<servers::Kind>,
    /// The tandem-server binary; default: next to this binary.
    #[arg(long)]
    tandem_bin: Option<PathBuf>,
    /// The Redis server binary.
    #[arg(long, default_value = "redis-server")]
    redis_bin: PathBuf,
    /// Core the server under test is pinned to (taskset).
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core the load generator is pinned to.
    #[arg(long, default_value_t = 1)]
    client_core: usize,
    /// Write one JSON record per measurement here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// redis-benchmark SET/GET and named command cases (Lua scripts by EVAL and EVALSHA, ...)
    /// at several pipeline depths against each server.
    Throughput(throughput::Args),
    /// Memory per key for small strings, YCSB-shaped hashes and stream entries.
    Memory(memory::Args),
    /// The seed's experiment: a full sync of a YCSB dataset to a fresh replica, disk and
    /// diskless, with times, peak memory and dump bytes.
    FullSync(full_sync::Args),
    /// BGREWRITEAOF of a YCSB dataset under a write load: time and peak memory against the
    /// memory before, with `appendonly yes`.
    AofRewrite(aof_rewrite::Args),
    /// Rewrites the generated full-sync section of docs/benchmarks.md (tables and charts)
    /// from full-sync JSON files.
    Report(doc::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Throughput(a) => throughput::run(&a),
        Command::Memory(a) => memory::run(&a),
        Command::FullSync(a) => full_sync::run(&a),
        Command::AofRewrite(a) => aof_rewrite::run(&a),
        Command::Report(a) => doc::run(&a),
    }
}
