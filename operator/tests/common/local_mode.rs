//! A running `tandem-operator local` for integration tests: started on free ports in its
//! own temporary directory, its status file polled with deadlines, its nodes reached over
//! RESP, stopped with SIGINT (its clean shutdown) on drop. It does not assert anything
//! about the operator's behaviour; the tests that include it do. Each test crate uses part
//! of it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_operator::local::SENTINEL_PORT_OFFSET;
use tandem_operator::renames::{CommandNames, RENAMED_COMMANDS_KEY};

/// A base port with `n` free ports from it and `n` free Sentinel ports from
/// `base + SENTINEL_PORT_OFFSET`. Both ranges lie below the kernel's ephemeral ports (32768
/// up), so no outgoing connection of a concurrent test takes one between this check and
/// local mode's bind; the tests of one binary take disjoint ranges from a counter.
fn free_base(n: u16) -> u16 {
    const LOW: u16 = 10_000;
    const SPAN: u16 = 32_768 - SENTINEL_PORT_OFFSET - LOW - 64;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; the pid spreads their starting points anyway.
    let start = std::process::id();
    loop {
        let step = u32::from(NEXT.fetch_add(n + 1, Ordering::Relaxed));
        let base = LOW + u16::try_from((start + step) % u32::from(SPAN)).expect("below SPAN");
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if (0..n).all(|i| free(base + i) && free(base + SENTINEL_PORT_OFFSET + i)) {
            return base;
        }
    }
}

pub struct Local {
    child: Child,
    dir: PathBuf,
    status_file: PathBuf,
    base: u16,
}

impl Local {
    /// A set sized for a 64Mi dataset (small buffers and delays, quick syncs).
    pub fn start(replicas: u16, extra: &[&str]) -> Self {
        Self::start_hinted(replicas, "64Mi", extra)
    }

    pub fn start_hinted(replicas: u16, hint: &str, extra: &[&str]) -> Self {
        let base = free_base(replicas);
        let dir =
            std::env::temp_dir().join(format!("tandem-local-test-{}-{base}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let status_file = dir.join("status.json");
        let child = Command::new(env!("CARGO_BIN_EXE_tandem-operator"))
            .args([
                "local",
                "--replicas",
                &replicas.to_string(),
                "--dataset-size-hint",
                hint,
            ])
            .args(["--base-port", &base.to_string()])
            .arg("--dir")
            .arg(dir.join("nodes"))
            .arg("--status-file")
            .arg(&status_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tandem-operator local");
        Self {
            child,
            dir,
            status_file,
            base,
        }
    }

    pub fn port(&self, node: &str) -> u16 {
        node_port(self.base, node)
    }

    /// The port of node-0; node i listens on `base() + i`.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// The names the renamed commands answer to, from the file local mode keeps them in.
    pub fn names(&self) -> CommandNames {
        let text = std::fs::read_to_string(self.dir.join("nodes").join(RENAMED_COMMANDS_KEY))
            .expect("renamed-commands file");
        CommandNames::parse(&text).expect("renamed-commands")
    }

    /// The secret name CONFIG answers to.
    pub fn config(&self) -> String {
        self.names().config().to_owned()
    }

    /// What a writer thread needs to find the current master without borrowing `self`.
    pub fn master_finder(&self) -> MasterFinder {
        MasterFinder {
            status_file: self.status_file.clone(),
            base: self.base,
        }
    }

    pub fn status(&self) -> Option<Value> {
        read_status(&self.status_file)
    }

    /// Polls the status file until `check` holds.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status()
                && check(&s)
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {:#}",
                self.status().unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ready with every replica online.
    pub fn wait_ready(&self, timeout: Duration) -> Value {
        self.wait_status("Ready", timeout, |s| {
            s["phase"] == "Ready"
                && s["nodes"]
                    .as_array()
                    .is_some_and(|r| r.iter().all(|r| r["state"] == "online"))
        })
    }

    pub fn conn(&self, node: &str) -> redis::Connection {
        connect(self.port(node))
    }

    /// `kill -9` of a node's server process (its pid read from INFO).
    pub fn kill_node(&self, node: &str) {
        self.signal_node(node, "-9");
    }

    /// `kill <signal>` of a node's server process (its pid read from INFO).
    pub fn signal_node(&self, node: &str, signal_name: &str) {
        let pid = info_field(&mut self.conn(node), "server", "process_id").expect("process_id");
        signal(signal_name, &pid);
    }

    /// SIGUSR1 to the operator: a planned switchover to the most advanced replica.
    pub fn ask_switchover(&self) {
        signal("-USR1", &self.child.id().to_string());
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status file and port layout of one `Local`, sendable to another thread.
#[derive(Clone)]
pub struct MasterFinder {
    status_file: PathBuf,
    base: u16,
}

impl MasterFinder {
    /// The master the operator's status names, as (node, port).
    pub fn master(&self) -> Option<(String, u16)> {
        let status = read_status(&self.status_file)?;
        let node = status["master"].as_str()?.to_owned();
        let port = node_port(self.base, &node);
        Some((node, port))
    }
}

fn signal(signal: &str, pid: &str) {
    let status = Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

fn read_status(file: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

fn node_port(base: u16, node: &str) -> u16 {
    let i: u16 = node
        .strip_prefix("node-")
        .expect("node name")
        .parse()
        .expect("ordinal");
    base + i
}

/// A connection to a node, retried for a while: a node busy with a large load or sync can
/// leave a connect unanswered (or refused with EAGAIN) for a moment on a loaded machine.
pub fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get_connection_with_timeout(Duration::from_secs(5)) {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < deadline, "connect to {port}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// One directive's value by CONFIG GET under its secret name `config`.
pub fn config_get(c: &mut redis::Connection, config: &str, name: &str) -> String {
    let pair: Vec<String> = redis::cmd(config)
        .arg("GET")
        .arg(name)
        .query(c)
        .expect("CONFIG GET");
    pair.get(1).cloned().unwrap_or_default()
}
