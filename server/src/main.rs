//! `tandem-server [CONFIG_FILE] [--directive value ...]`, like `redis-server`.

use anyhow::Context as _;
use std::cell::RefCell;
use std::rc::Rc;
use tandem_server::config::Config;
use tandem_server::{net, server::Server};
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// Builds the configuration from the optional file and `--name value...` flags; a flag's
/// value runs until the next `--`.
fn parse_args(args: &[String]) -> anyhow::Result<Config> {
    let mut config = Config::default();
    let mut rest = args;
    if let Some(first) = rest.first() {
        if first == "-v" || first == "--version" {
            println!(
                "tandem-server v={} (Redis 7.0 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            std::process::exit(0);
        }
        if first == "-h" || first == "--help" {
            println!(
                "Usage: tandem-server [/path/to/redis.conf] [--directive value ...]\n\nExamples:\n  tandem-server --port 7000\n  tandem-server /etc/tandem.conf --loglevel verbose"
            );
            std::process::exit(0);
        }
        if !first.starts_with("--") {
            let text = std::fs::read_to_string(first)
                .with_context(|| format!("failed to read config file {first}"))?;
            config.apply_text(&text)?;
            config.config_file = Some(
                std::fs::canonicalize(first)
                    .map_or_else(|_| first.clone(), |p| p.display().to_string()),
            );
            rest = &rest[1..];
        }
    }
    let mut i = 0;
    while i < rest.len() {
        let Some(name) = rest[i].strip_prefix("--") else {
            anyhow::bail!(
                "unexpected argument '{}': directives are given as --name value",
                rest[i]
            );
        };
        let mut values = Vec::new();
        i += 1;
        while i < rest.len() && !rest[i].starts_with("--") {
            values.push(rest[i].clone());
            i += 1;
        }
        config
            .apply(name, &values.join(" "))
            .map_err(|e| anyhow::anyhow!("invalid command-line directive --{name}: {e}"))?;
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n*** FATAL CONFIG ERROR ***\n{e:#}");
            std::process::exit(1);
        }
    };
    tandem_server::log::init(&config.loglevel, &config.logfile)
        .context("failed to open the log file")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listeners = net::bind(&config.bind, config.port).await?;
        tracing::info!("Server initialized");
        tracing::info!("Ready to accept connections tcp (port {})", config.port);
        let state = Rc::new(RefCell::new(Server::new(config)));
        net::serve(state, listeners).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}
