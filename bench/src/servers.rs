//! The servers under test as the benchmarks see them: pinned to a core, logging into their
//! own directory, started and cleaned up (also when a benchmark fails half-way) by the
//! workspace's test harness.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_testkit::{Launch, ServerGuard};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Tandem,
    Redis,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tandem => "tandem",
            Kind::Redis => "redis",
        }
    }
}

/// The server's log, in its directory.
const LOG_FILE: &str = "server.log";

/// A running server process, killed on drop with its children (a Redis fork), its
/// directory removed.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    guard: ServerGuard,
}

/// The tandem-server binary: the given path, or the one built next to this binary.
pub fn tandem_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let candidate = exe.with_file_name("tandem-server");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "tandem-server not found next to {}: build it with `cargo build --release -p tandem-server` or pass --tandem-bin",
        exe.display()
    )
}

impl Server {
    /// Starts `kind` pinned to `core`, with persistence off, and waits until it answers PING.
    pub fn start(kind: Kind, bin: &Path, core: usize, extra: &[&str]) -> anyhow::Result<Server> {
        Server::start_in(kind, bin, core, &std::env::temp_dir(), extra)
    }

    /// [`Server::start`] with the server's directory (dumps, log) created under `base`.
    pub fn start_in(
        kind: Kind,
        bin: &Path,
        core: usize,
        base: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let guard = Launch::new(kind.name(), bin)
            .wrapped_in(&["taskset", "-c", &core.to_string()])
            .scratch_in(base, &format!("tandem-bench-{}", kind.name()))
            .args(&["--logfile", LOG_FILE])
            .args(extra)
            .ready_within(Duration::from_secs(10))
            .try_start()?;
        Ok(Server {
            kind,
            port: guard.port,
            guard,
        })
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        self.guard.try_con()
    }

    /// One `INFO memory` field as an integer.
    pub fn info_u64(&self, field: &str) -> anyhow::Result<u64> {
        let mut c = self.connection()?;
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c)?;
        info_field(&info, field)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("INFO has no {field}"))
    }

    pub fn pid(&self) -> u32 {
        // The child is `taskset`, which execs the server: same pid.
        self.guard.pid()
    }

    pub fn dir(&self) -> &Path {
        self.guard.dir()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.guard.alive()
    }

    /// Resident set size of the server process from /proc.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        crate::procfs::kb_field(&status, "VmRSS").context("no VmRSS")
    }
}

/// A field of an INFO reply (`name:value` lines), trimmed.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    #[test]
    fn info_fields() {
        let info =
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n";
        assert_eq!(super::info_field(info, "master_link_status"), Some("up"));
        assert_eq!(super::info_field(info, "role"), Some("slave"));
        assert_eq!(super::info_field(info, "master_sync"), None);
    }
}
