//! What `tandem-operator local` shows: the live table on a terminal (the start-up banner on
//! top, one row per node with its address, how to connect, the latest events) and one line
//! per change otherwise. Sizes are binary (`Ki`, `Mi`, `Gi`) and durations in seconds
//! everywhere, so no two numbers on the screen need different readings. Pure: text from the
//! status and the [`View`].

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::crd::RedisReplicaSetStatus;
use crate::dataplane::roles::NodeAddr;
use crate::quantity::approx_bytes;

/// Events kept on screen.
pub const EVENTS_SHOWN: usize = 5;

const BAR_WIDTH: usize = 20;

/// What the table shows besides the status.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The start-up banner: where the data and the renamed commands' names are.
    pub banner: String,
    /// Every node and where it listens.
    pub addresses: Vec<(String, NodeAddr)>,
    /// The password clients need, if any (shown only as `-a ...` in the connect line).
    pub password: bool,
    /// The latest events, oldest first, at most [`EVENTS_SHOWN`].
    pub events: VecDeque<String>,
}

impl View {
    /// Keeps `line` among the latest events.
    pub fn event(&mut self, line: String) {
        if self.events.len() == EVENTS_SHOWN {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    fn address(&self, node: &str) -> String {
        self.addresses
            .iter()
            .find(|(n, _)| n == node)
            .map_or_else(|| "-".to_owned(), |(_, a)| format!("{}:{}", a.host, a.port))
    }
}

/// One line per change when stdout is not a terminal: phase, master, each replica's state.
pub fn summary(s: &RedisReplicaSetStatus) -> String {
    let mut out = format!(
        "phase {:?} master {} ready {}",
        s.phase,
        s.master.as_deref().unwrap_or("-"),
        s.ready.as_deref().unwrap_or("-")
    );
    for r in &s.nodes {
        let _ = write!(
            out,
            " | {} {} {}",
            r.pod,
            r.state.as_deref().unwrap_or("-"),
            r.sync_progress.as_deref().unwrap_or("")
        );
    }
    out.trim_end().to_owned()
}

/// The live table: the banner, the set, one row per node (a progress bar for a running full
/// sync), how to connect to the master, the conditions that hold and the latest events.
pub fn table(s: &RedisReplicaSetStatus, view: &View) -> String {
    let mut out = String::new();
    if !view.banner.is_empty() {
        let _ = writeln!(out, "{}\n", view.banner.trim_end());
    }
    let _ = writeln!(
        out,
        "tandem local  phase {:?}  master {}  ready {}  offset {}",
        s.phase,
        s.master.as_deref().unwrap_or("-"),
        s.ready.as_deref().unwrap_or("-"),
        bytes_or_dash(s.master_offset)
    );
    if let Some(r) = &s.replication {
        let _ = writeln!(
            out,
            "tuning  {:?}  repl-timeout {}s  replica buffer {}  backlog {}",
            r.mode,
            r.repl_timeout_seconds,
            buffer_limit(&r.client_output_buffer_limit),
            r.backlog_size
        );
    }
    let _ = writeln!(
        out,
        "syncs   full {}  partial ok {}  partial refused {}",
        s.full_syncs.unwrap_or(0),
        s.partial_syncs_accepted.unwrap_or(0),
        s.partial_syncs_rejected.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "\n{:<8} {:<21} {:<8} {:<12} {:<5} {:>9} {:>5}  SYNC",
        "NODE", "ADDRESS", "ROLE", "STATE", "LINK", "OFFSET", "LAG"
    );
    if let Some(m) = &s.master {
        let _ = writeln!(
            out,
            "{m:<8} {:<21} {:<8} {:<12} {:<5} {:>9} {:>5}",
            view.address(m),
            "master",
            "-",
            "-",
            bytes_or_dash(s.master_offset),
            "-"
        );
    }
    for r in &s.nodes {
        let sync = match (&r.sync_progress, &r.last_full_sync) {
            (Some(p), _) => bar(p),
            (None, Some(l)) => format!("last full sync {:?} {}s", l.mode, l.duration_seconds),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<21} {:<8} {:<12} {:<5} {:>9} {:>5}  {sync}",
            r.pod,
            view.address(&r.pod),
            "replica",
            r.state.as_deref().unwrap_or("-"),
            r.link_status.as_deref().unwrap_or("-"),
            bytes_or_dash(r.offset),
            r.lag.map_or("-".to_owned(), |l| format!("{l}s")),
        );
    }
    if let Some(m) = s
        .master
        .as_deref()
        .and_then(|m| view.addresses.iter().find(|(n, _)| n == m).map(|(_, a)| a))
    {
        let _ = writeln!(
            out,
            "\nconnect: redis-cli -h {} -p {}{}",
            m.host,
            m.port,
            if view.password { " -a PASSWORD" } else { "" }
        );
    }
    for c in &s.conditions {
        if c.status == "True" || c.type_ == crate::status::AVAILABLE {
            let _ = writeln!(
                out,
                "\n{} {} {}: {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    if let Some(w) = &s.last_switchover {
        #[allow(clippy::cast_precision_loss)]
        let held = w.write_pause_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "last switchover {} -> {} ({}) at offset {}, writes held {held:.3}s",
            w.from,
            w.to,
            w.reason,
            approx_bytes(w.offset)
        );
    }
    if let Some(f) = &s.last_failover {
        let _ = writeln!(
            out,
            "last failover {} -> {} ({}), up to {} may be lost",
            f.from,
            f.to,
            f.reason,
            approx_bytes(f.bytes_at_risk)
        );
    }
    if !view.events.is_empty() {
        let _ = writeln!(out, "\nevents");
        for e in &view.events {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// A replication offset (bytes of stream) in binary units.
fn bytes_or_dash(offset: Option<i64>) -> String {
    offset
        .and_then(|o| u64::try_from(o).ok())
        .map_or_else(|| "-".to_owned(), approx_bytes)
}

/// `replica 2202009600 0 0` as `hard 2.1Gi, soft 0B for 0s`.
fn buffer_limit(directive: &str) -> String {
    let numbers: Vec<u64> = directive
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers.as_slice() {
        [hard, soft, seconds] => format!(
            "hard {}, soft {} for {seconds}s",
            approx_bytes(*hard),
            approx_bytes(*soft)
        ),
        _ => directive.to_owned(),
    }
}

/// `[#######.............] 35%` for a percentage, the text alone otherwise.
fn bar(progress: &str) -> String {
    match progress
        .strip_suffix('%')
        .and_then(|p| p.parse::<usize>().ok())
    {
        Some(p) => {
            let filled = p.min(100) * BAR_WIDTH / 100;
            format!(
                "[{}{}] {progress}",
                "#".repeat(filled),
                ".".repeat(BAR_WIDTH - filled)
            )
        }
        None => progress.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ReplicaStatus, ReplicationStatus, SwitchoverRecord, SyncMode};

    fn addr(port: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    #[test]
    fn the_table_keeps_the_banner_shows_addresses_units_and_events() {
        let s = RedisReplicaSetStatus {
            master: Some("node-0".to_owned()),
            master_offset: Some(3 * 1024 * 1024),
            replication: Some(ReplicationStatus {
                mode: SyncMode::Diskless,
                repl_timeout_seconds: 2100,
                diskless_sync_delay_seconds: 0,
                client_output_buffer_limit: "replica 2202009600 0 0".to_owned(),
                backlog_size: "300Mi".to_owned(),
                diskless_load: "on-empty-db".to_owned(),
                min_replicas_to_write: 1,
                reason: "r".to_owned(),
                overrides: Vec::new(),
            }),
            nodes: vec![ReplicaStatus {
                pod: "node-1".to_owned(),
                ready: false,
                state: Some("send_bulk".to_owned()),
                link_status: Some("down".to_owned()),
                offset: Some(0),
                lag: Some(2),
                sync_progress: Some("35%".to_owned()),
                last_full_sync: None,
            }],
            last_switchover: Some(SwitchoverRecord {
                from: "node-1".to_owned(),
                to: "node-0".to_owned(),
                at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
                offset: 2048,
                write_pause_ms: 12,
                reason: "asked with SIGUSR1".to_owned(),
            }),
            ..RedisReplicaSetStatus::default()
        };
        let mut view = View {
            banner: "tandem-operator local: 2 nodes".to_owned(),
            addresses: vec![
                ("node-0".to_owned(), addr(7000)),
                ("node-1".to_owned(), addr(7001)),
            ],
            password: true,
            events: VecDeque::new(),
        };
        for i in 0..=EVENTS_SHOWN {
            view.event(format!("event {i}"));
        }
        let t = table(&s, &view);
        assert!(t.starts_with("tandem-operator local: 2 nodes\n"), "{t}");
        assert!(t.contains("node-0   127.0.0.1:7000        master"), "{t}");
        assert!(
            t.contains("node-1   127.0.0.1:7001        replica  send_bulk    down         0B    2s  [#######.............] 35%"),
            "{t}"
        );
        assert!(t.contains("offset 3.0Mi"), "{t}");
        assert!(
            t.contains("replica buffer hard 2.1Gi, soft 0B for 0s  backlog 300Mi"),
            "{t}"
        );
        assert!(
            t.contains("connect: redis-cli -h 127.0.0.1 -p 7000 -a PASSWORD"),
            "{t}"
        );
        assert!(t.contains("at offset 2.0Ki, writes held 0.012s"), "{t}");
        assert!(
            !t.contains("event 0"),
            "only the latest {EVENTS_SHOWN}: {t}"
        );
        assert!(t.contains(&format!("  event {EVENTS_SHOWN}\n")), "{t}");
        assert_eq!(
            summary(&s),
            "phase Pending master node-0 ready - | node-1 send_bulk 35%"
        );
        assert_eq!(bar("1.0Mi received"), "1.0Mi received");
    }
}
