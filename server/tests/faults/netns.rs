//! A two-host network for fault tests: two network namespaces joined by a veth pair whose
//! addresses exist only inside them, and the faults this kernel supports (iptables DROP for
//! a partition, iptables `statistic` for random loss, `tc tbf` for a slow link; it has no
//! netem). Servers run inside a namespace through `ip netns exec`; the test thread reaches
//! them by entering the namespace only while it connects (`setns`), so the root namespace
//! gets no address, route or rule. Everything is removed on drop, also when a test panics.
//!
//! This module does not start servers or check data: `main.rs` does.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::common::{skip_or_fail, which};

/// The master's side of the link.
pub const ADDR_A: &str = "10.231.0.1";
/// The replica's side of the link.
pub const ADDR_B: &str = "10.231.0.2";
/// Both ends use the same interface name, each in its own namespace.
const DEV: &str = "tfveth";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One side of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn addr(self) -> &'static str {
        match self {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        }
    }

    fn peer(self) -> &'static str {
        match self {
            Side::A => ADDR_B,
            Side::B => ADDR_A,
        }
    }
}

/// Two namespaces and the veth pair between them.
pub struct Net {
    a: String,
    b: String,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// True when this process is root and has `tools`; otherwise prints why the test is skipped
/// (a failure instead under `TANDEM_REQUIRE_REAL_DEPS=1`).
pub fn root_with(tools: &[&str]) -> bool {
    let why = if !is_root() {
        Some("not root (namespaces and mounts need CAP_SYS_ADMIN)".to_string())
    } else {
        tools
            .iter()
            .find(|t| which(t).is_none())
            .map(|t| format!("{t} not found (apt-get install iproute2 iptables)"))
    };
    let Some(why) = why else { return true };
    skip_or_fail(&format!("fault tests need root and {tools:?}: {why}"));
    false
}

/// Runs a command that must succeed.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    /// Builds the network, or returns `None` after printing why it cannot (a failure instead
    /// under `TANDEM_REQUIRE_REAL_DEPS=1`).
    pub fn new() -> Option<Net> {
        if !root_with(&["ip", "iptables", "tc"]) {
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id();
        let net = Net {
            a: format!("tf{id}x{n}a"),
            b: format!("tf{id}x{n}b"),
        };
        run(&["ip", "netns", "add", &net.a]);
        run(&["ip", "netns", "add", &net.b]);
        // Created inside the namespaces: the interfaces never appear in the root one.
        run(&[
            "ip", "link", "add", DEV, "netns", &net.a, "type", "veth", "peer", "name", DEV,
            "netns", &net.b,
        ]);
        for side in [Side::A, Side::B] {
            let ns = net.ns(side);
            let cidr = format!("{}/30", side.addr());
            run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", DEV]);
            run(&["ip", "-n", ns, "link", "set", DEV, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some(net)
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn iptables(&self, side: Side, rule: &[&str]) {
        let mut args = vec!["ip", "netns", "exec", self.ns(side), "iptables"];
        args.extend_from_slice(rule);
        run(&args);
    }

    /// Cuts the link both ways: B drops everything from and to A. Established connections
    /// stay open on both ends and only time out (no RST, no FIN gets through).
    pub fn partition(&self) {
        self.iptables(Side::B, &["-A", "INPUT", "-s", ADDR_A, "-j", "DROP"]);
        self.iptables(Side::B, &["-A", "OUTPUT", "-d", ADDR_A, "-j", "DROP"]);
    }

    /// Removes every DROP rule (partition and loss).
    pub fn heal(&self) {
        for side in [Side::A, Side::B] {
            self.iptables(side, &["-F", "INPUT"]);
            self.iptables(side, &["-F", "OUTPUT"]);
        }
    }

    /// Drops each packet arriving on either side with probability `p` (netem's `loss` with
    /// iptables' `statistic` match).
    pub fn loss(&self, p: f64) {
        let p = format!("{p}");
        for side in [Side::A, Side::B] {
            self.iptables(
                side,
                &[
                    "-A",
                    "INPUT",
                    "-s",
                    side.peer(),
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            );
        }
    }

    fn tc(&self, side: Side, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", self.ns(side), "tc", "qdisc"];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Limits what `side` sends to `mbit` Mbit/s with a token bucket filter.
    pub fn rate(&self, side: Side, mbit: u32) {
        let rate = format!("{mbit}mbit");
        self.tc(
            side,
            &[
                "replace", "dev", DEV, "root", "tbf", "rate", &rate, "burst", "64kb", "latency",
                "400ms",
            ],
        );
    }

    /// Removes the rate limit of `side`.
    pub fn unlimited(&self, side: Side) {
        self.tc(side, &["del", "dev", DEV, "root"]);
    }
}

/// A TCP connection to `host:port` made from inside the namespace `ns`: the socket keeps
/// that namespace after the thread returns to its own.
pub fn connect_in(ns: &str, host: &str, port: u16) -> std::io::Result<TcpStream> {
    let home = File::open("/proc/thread-self/ns/net")?;
    let there = File::open(format!("/run/netns/{ns}"))?;
    move_into_link_name_space(there.as_fd(), Some(LinkNameSpaceType::Network))?;
    let addr: SocketAddr = format!("{host}:{port}").parse().expect("socket address");
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    move_into_link_name_space(home.as_fd(), Some(LinkNameSpaceType::Network))
        .expect("back to the test's own namespace");
    s
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
