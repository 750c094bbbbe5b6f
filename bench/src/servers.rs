//! Starting and stopping the servers under test: free ports, CPU pinning, readiness, and
//! cleanup even when a benchmark fails half-way.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
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

/// A running server process, killed on drop.
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
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("tandem-bench-{}-{port}", kind.name()));
        std::fs::create_dir_all(&dir)?;
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

    /// One INFO field as an integer.
    pub fn info_u64(&self, field: &str) -> anyhow::Result<u64> {
        let mut c = self.connection()?;
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c)?;
        info.lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("INFO has no {field}"))
    }

    /// Resident set size of the process from /proc (children included when `children`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        // The child is `taskset`, which execs the server: same pid.
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .context("no VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
