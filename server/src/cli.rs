//! The `tandem-server` command line: `tandem-server [CONFIG_FILE] [--directive value ...]`,
//! like `redis-server`. A library function so that other binaries (tandem-operator's local
//! mode) can run a node from their own executable; it owns the process (runtime, signals,
//! exit codes), so call it from `main` only.

use anyhow::Context as _;
use std::cell::RefCell;
use std::rc::Rc;

use crate::config::{Config, ConfigError, RenameCommand};
use crate::net;
use crate::persistence::{load, save};
use crate::state::Server;
use crate::state::Shared;
use crate::state::persistence::Loading;

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
                "Usage: tandem-server [/path/to/redis.conf] [--directive value ...]\n       tandem-server --check-ready [/path/to/redis.conf] [--directive value ...]\n\nExamples:\n  tandem-server --port 7000\n  tandem-server /etc/tandem.conf --loglevel verbose"
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
        if name.eq_ignore_ascii_case("user") && !values.is_empty() {
            config.users.push(values);
            continue;
        }
        // `--include FILE` reads a file in place, as a config file's `include` line does
        // (Redis turns its arguments into config lines, so it accepts it there too).
        if name.eq_ignore_ascii_case("include") && values.len() == 1 {
            let quoted = values[0].replace('\\', "\\\\").replace('"', "\\\"");
            config
                .apply_text(&format!("include \"{quoted}\"\n"))
                .map_err(|e| anyhow::anyhow!("invalid command-line directive --include: {e}"))?;
            continue;
        }
        if name.eq_ignore_ascii_case("rename-command") && values.len() == 2 {
            config.rename_commands.push(RenameCommand {
                old: values[0].clone(),
                new: values[1].clone(),
                line: None,
            });
            continue;
        }
        config
            .apply(name, &values.join(" "))
            .map_err(|e| anyhow::anyhow!("invalid command-line directive --{name}: {e}"))?;
    }
    Ok(config)
}

/// A dump that cannot be loaded stops the server, as in Redis: serving part of it, or
/// nothing in its place, would hand clients (and replicas) a wrong dataset.
fn fatal_load_error(e: &load::LoadError) -> ! {
    tracing::error!("Fatal error loading the DB: {e}. Exiting.");
    eprintln!("Fatal error loading the DB: {e}. Exiting.");
    std::process::exit(1);
}

/// SIGTERM and SIGINT shut down as Redis 7.0 does (`crate::shutdown`): with the options of
/// `shutdown-on-sigterm` / `shutdown-on-sigint`, waiting for replicas to catch up unless
/// `now`; if the final save fails the server keeps running. A second SIGINT during the wait
/// exits at once.
async fn signals(state: Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        let mut srv = state.borrow_mut();
        if srv.shutdown_wait.is_some() && name == "SIGINT" {
            tracing::warn!("You insist... exiting now.");
            std::process::exit(1);
        }
        tracing::warn!("Received {name} scheduling shutdown...");
        let words = if name == "SIGTERM" {
            &srv.config.shutdown_on_sigterm
        } else {
            &srv.config.shutdown_on_sigint
        };
        let opts = crate::shutdown::signal_options(words);
        let now = crate::clock::now_ms();
        if crate::shutdown::on_signal(&mut srv, opts, now).is_err() {
            tracing::warn!(
                "{name} received but errors trying to shut down the server, check the logs for more information"
            );
        }
    }
}

/// `--check-ready [CONFIG_FILE] [--directive value ...]`: exits 0 when the node configured
/// so is ready for clients, else 1 with the reason on stderr ([`crate::probe`]).
fn check_ready(args: &[String]) -> ! {
    let verdict = parse_args(args)
        .map_err(|e| format!("{e:#}"))
        .and_then(|config| crate::probe::run(&config).map_err(|e| e.to_string()));
    match verdict {
        Ok(role) => {
            println!("ready: {role}");
            std::process::exit(0);
        }
        Err(reason) => {
            eprintln!("not ready: {reason}");
            std::process::exit(1);
        }
    }
}

/// Runs the server with `args` (the command line without the program name) until it shuts
/// down. Exits the process on a configuration or load error, as `redis-server` does.
///
/// # Errors
/// The log file cannot be opened, the runtime cannot start, or the port cannot be bound.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(("--check-ready", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) {
        check_ready(rest);
    }
    let (config, commands) = match parse_args(args).and_then(|c| {
        let names = crate::cmd::names::resolve(&c.rename_commands).map_err(|e| match e {
            ConfigError::File { .. } => anyhow::Error::new(e),
            e => anyhow::anyhow!("invalid command-line directive --rename-command: {e}"),
        })?;
        Ok((c, names))
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n*** FATAL CONFIG ERROR ***\n{e:#}");
            std::process::exit(1);
        }
    };
    crate::log::init(&config.loglevel, &config.logfile).context("failed to open the log file")?;
    let aclfile = crate::config::directive("aclfile")
        .map(|d| d.get(&config))
        .filter(|f| !f.is_empty());
    let users = match crate::acl::Users::at_startup(
        config.requirepass.as_deref(),
        crate::acl::users::channels_by_default(&config),
        &config.users,
        aclfile.as_deref().map(std::path::Path::new),
    ) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let tls = match crate::tls::wanted(&config).then(|| crate::tls::contexts(&config)) {
            Some(Err(e)) => {
                tracing::warn!("{e}");
                tracing::warn!("Failed to configure TLS. Check logs for more info.");
                eprintln!("{e}\nFailed to configure TLS. Check logs for more info.");
                std::process::exit(1);
            }
            Some(Ok(contexts)) => Some(contexts),
            None => None,
        };
        // Port 0 opens no plain port, as in Redis.
        let listeners = match config.port {
            0 => Vec::new(),
            port => net::bind(&config.bind, port).await?,
        };
        let tls_listeners = match config.tls_port {
            0 => Vec::new(),
            port => net::bind(&config.bind, port).await?,
        };
        let sentinel_listeners = crate::sentinel::bind(&config).await?;
        if listeners.is_empty() && tls_listeners.is_empty() {
            tracing::warn!("Configured to not listen anywhere, exiting.");
            std::process::exit(1);
        }
        tracing::info!("Server initialized");
        let port = config.port;
        let mut srv = Server::new(config);
        srv.tls = tls;
        srv.commands = commands;
        let aof = srv.config.appendonly;
        srv.acl = users;
        let state = Rc::new(RefCell::new(srv));
        // With the AOF on, the AOF alone is the dataset, as in Redis.
        let dump = match load::open_dump(&mut state.borrow_mut()) {
            Ok(d) if !aof => d,
            Ok(_) => None,
            Err(e) => fatal_load_error(&e),
        };
        if aof {
            // Clients connecting before the load task runs get -LOADING.
            state.borrow_mut().persistence.loading = Some(Loading {
                start_unix: crate::clock::now_ms() / 1000,
                started: std::time::Instant::now(),
                total_bytes: 0,
                loaded_bytes: 0,
                rdb_used_mem: 0,
            });
        }
        tokio::task::spawn_local(save::driver(state.clone()));
        tokio::task::spawn_local(signals(state.clone()));
        if !sentinel_listeners.is_empty() {
            crate::sentinel::serve(&state, sentinel_listeners);
        }
        let loader = state.clone();
        tokio::task::spawn_local(async move {
            if let Some(file) = dump
                && let Err(e) = load::load(&loader, file).await
            {
                fatal_load_error(&e);
            }
            if aof && let Err(e) = crate::aof::control::start_up(&loader).await {
                tracing::error!("Fatal error loading the AOF: {e}. Exiting.");
                eprintln!("Fatal error loading the AOF: {e}. Exiting.");
                std::process::exit(1);
            }
            loader.borrow_mut().persistence.loading = None;
            tracing::info!("Ready to accept connections tcp (port {port})");
        });
        net::serve(state.clone(), listeners, tls_listeners).await;
        crate::aof::control::shutdown(&mut state.borrow_mut());
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}
