//! Starting and stopping the servers under test: free ports, CPU pinning, readiness, and
//! cleanup even when a benchmark fails half-way.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    child: Child,
    dir: PathBuf,
}

/// A port nothing listens on right now (other servers may run on this machine).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(l.local_addr()?.port())
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
        let port = free_port()?;
        let dir = base.join(format!("tandem-bench-{}-{port}", kind.name()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(core.to_string()).arg(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        cmd.arg("--dir").arg(&dir);
        cmd.arg("--logfile").arg(dir.join(LOG_FILE));
        cmd.args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        let server = Server {
            kind,
            port,
            child,
            dir,
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut c) = self.connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} on port {} did not answer PING within {timeout:?}",
                    self.kind.name(),
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
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
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

impl Drop for Server {
    fn drop(&mut self) {
        let children: Vec<String> = crate::procfs::tree(self.pid())
            .iter()
            .skip(1)
            .map(u32::to_string)
            .collect();
        if !children.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&children).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
