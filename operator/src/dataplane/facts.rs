//! What one node says about itself: `INFO server replication stats keyspace persistence memory`
//! parsed into [`NodeFacts`]. Pure: the text comes from [`crate::dataplane::resp`].
//!
//! Field names and formats are Redis 7.0's, which tandem-server keeps, so the same parser
//! reads a real redis-server.

use std::collections::HashMap;

/// A node's role as INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `role:master`.
    Master,
    /// `role:slave`.
    Replica,
}

/// One `slaveN:` line of a master: a replica as the master sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLine {
    /// The address the replica announced (replica-announce-ip, else its peer address).
    pub ip: String,
    /// The port the replica listens on.
    pub port: u16,
    /// wait_bgsave, send_bulk or online.
    pub state: String,
    /// Offset the replica acknowledged.
    pub offset: u64,
    /// Seconds since its last acknowledgement.
    pub lag: u64,
}

/// The facts the data plane decides from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Changes on every restart: a new run id means the node lost its memory.
    pub run_id: String,
    /// Master or replica.
    pub role: Role,
    /// The replication id of its history.
    pub replid: String,
    /// How far it is in the replication stream.
    pub offset: u64,
    /// For a replica: the master it follows (`master_host`, `master_port`).
    pub master: Option<(String, u16)>,
    /// For a replica: `master_link_status:up`.
    pub link_up: bool,
    /// For a replica: a full sync is being received.
    pub sync_in_progress: bool,
    /// For a replica receiving a full sync: the payload size, when the master sent it
    /// (a diskless transfer does not know it in advance).
    pub sync_total_bytes: Option<u64>,
    /// For a replica receiving a full sync: bytes read so far.
    pub sync_read_bytes: Option<u64>,
    /// For a master: its replicas.
    pub replicas: Vec<ReplicaLine>,
    /// Full syncs served (`sync_full`).
    pub sync_full: u64,
    /// Partial resyncs accepted (`sync_partial_ok`).
    pub sync_partial_ok: u64,
    /// Partial resyncs refused (`sync_partial_err`).
    pub sync_partial_err: u64,
    /// Keys in every database together.
    pub keys: u64,
    /// Loading a dump (`loading:1`): the dataset is not complete yet.
    pub loading: bool,
    /// Shutting down (`shutdown_in_milliseconds`, after a SIGTERM or SHUTDOWN): gone within
    /// this many milliseconds at the latest.
    pub shutdown_in_ms: Option<u64>,
    /// Memory the data takes (`used_memory_dataset`), the size the tuning sizes syncs for.
    pub dataset_bytes: Option<u64>,
}

/// INFO text that lacks what the data plane needs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactsError {
    /// A field the decision depends on is absent.
    #[error("INFO has no {0} field")]
    Missing(&'static str),
    /// A field is there but does not parse.
    #[error("INFO field {field} has an unreadable value {value:?}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What was there.
        value: String,
    },
}

/// The INFO sections [`parse`] reads.
pub const INFO_SECTIONS: [&str; 6] = [
    "server",
    "replication",
    "stats",
    "keyspace",
    "persistence",
    "memory",
];

/// Parses INFO output (any sections, `\r\n` or `\n` line ends).
///
/// # Errors
/// [`FactsError`] when run_id, role or the offset is missing or a number does not parse.
pub fn parse(info: &str) -> Result<NodeFacts, FactsError> {
    let fields: HashMap<&str, &str> = info
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect();
    let get = |name: &'static str| fields.get(name).copied().ok_or(FactsError::Missing(name));
    let number = |name: &'static str| -> Result<Option<u64>, FactsError> {
        fields
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| FactsError::Invalid {
                    field: name,
                    value: (*v).to_owned(),
                })
            })
            .transpose()
    };
    let role = match get("role")? {
        "master" => Role::Master,
        "slave" => Role::Replica,
        other => {
            return Err(FactsError::Invalid {
                field: "role",
                value: other.to_owned(),
            });
        }
    };
    let offset = number("master_repl_offset")?
        .or(number("slave_repl_offset")?)
        .ok_or(FactsError::Missing("master_repl_offset"))?;
    let master = match (fields.get("master_host"), number("master_port")?) {
        (Some(host), Some(port)) if role == Role::Replica => Some((
            (*host).to_owned(),
            u16::try_from(port).map_err(|_| FactsError::Invalid {
                field: "master_port",
                value: port.to_string(),
            })?,
        )),
        _ => None,
    };
    let sync_in_progress = number("master_sync_in_progress")? == Some(1);
    let mut replicas: Vec<(u64, ReplicaLine)> = fields
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("slave")?.parse().ok()?;
            Some((n, replica_line(v)?))
        })
        .collect();
    replicas.sort_by_key(|(n, _)| *n);
    let keys = fields
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("db")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|(_, v)| kv(v, "keys")?.parse::<u64>().ok())
        .sum();
    Ok(NodeFacts {
        run_id: get("run_id")?.to_owned(),
        role,
        replid: fields
            .get("master_replid")
            .copied()
            .unwrap_or("")
            .to_owned(),
        offset,
        master,
        link_up: fields.get("master_link_status") == Some(&"up"),
        sync_in_progress,
        // Redis prints -1 for a streamed transfer; tandem-server prints 0.
        sync_total_bytes: if sync_in_progress {
            fields
                .get("master_sync_total_bytes")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&t| t > 0)
        } else {
            None
        },
        sync_read_bytes: if sync_in_progress {
            number("master_sync_read_bytes")?
        } else {
            None
        },
        replicas: replicas.into_iter().map(|(_, r)| r).collect(),
        sync_full: number("sync_full")?.unwrap_or(0),
        sync_partial_ok: number("sync_partial_ok")?.unwrap_or(0),
        sync_partial_err: number("sync_partial_err")?.unwrap_or(0),
        keys,
        loading: number("loading")? == Some(1),
        shutdown_in_ms: number("shutdown_in_milliseconds")?,
        dataset_bytes: number("used_memory_dataset")?,
    })
}

/// `ip=..,port=..,state=..,offset=..,lag=..`; a line that does not parse is skipped (the
/// replica then shows up on its own INFO only).
fn replica_line(v: &str) -> Option<ReplicaLine> {
    Some(ReplicaLine {
        ip: kv(v, "ip")?.to_owned(),
        port: kv(v, "port")?.parse().ok()?,
        state: kv(v, "state")?.to_owned(),
        offset: kv(v, "offset")?.parse().ok()?,
        lag: kv(v, "lag")?.parse().ok()?,
    })
}

fn kv<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    list.split(',')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A node's facts with nothing going on: no link, no sync, no replicas, no keys; tests set
/// what they need on top.
#[cfg(test)]
pub(crate) fn fixture(run_id: &str, role: Role, offset: u64) -> NodeFacts {
    NodeFacts {
        run_id: run_id.to_owned(),
        role,
        replid: "r".to_owned(),
        offset,
        master: None,
        link_up: false,
        sync_in_progress: false,
        sync_total_bytes: None,
        sync_read_bytes: None,
        replicas: Vec::new(),
        sync_full: 0,
        sync_partial_ok: 0,
        sync_partial_err: 0,
        keys: 0,
        loading: false,
        shutdown_in_ms: None,
        dataset_bytes: None,
    }
}

/// CONFIG GET's reply (name, value, name, value...) as a map.
pub fn config_map(pairs: Vec<String>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut it = pairs.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(k, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis 7.0 master with one online replica and one receiving the snapshot.
    const MASTER: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:aaa111\r\ntcp_port:6379\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Stats\r\nsync_full:3\r\nsync_partial_ok:2\r\nsync_partial_err:1\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=1051,lag=1\r\nslave1:ip=cache-2.cache-headless,port=6379,state=send_bulk,offset=0,lag=0\r\nmaster_failover_state:no-failover\r\nmaster_replid:4b6a1f\r\nmaster_replid2:0000\r\nmaster_repl_offset:1051\r\n\r\n# Keyspace\r\ndb0:keys=10,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=1,avg_ttl=9\r\n";

    const SYNCING_REPLICA: &str = "run_id:bbb\nloading:0\nrole:slave\nmaster_host:127.0.0.1\nmaster_port:23001\nmaster_link_status:down\nmaster_sync_in_progress:1\nslave_read_repl_offset:0\nslave_repl_offset:0\nmaster_sync_total_bytes:2000\nmaster_sync_read_bytes:500\nmaster_replid:x\nmaster_repl_offset:0\n";

    #[test]
    fn a_master_with_its_replicas() {
        let f = parse(MASTER).expect("parses");
        assert_eq!(f.run_id, "aaa111");
        assert_eq!(f.role, Role::Master);
        assert_eq!(f.offset, 1051);
        assert_eq!(f.replid, "4b6a1f");
        assert_eq!(f.master, None);
        assert_eq!(
            (f.sync_full, f.sync_partial_ok, f.sync_partial_err),
            (3, 2, 1)
        );
        assert_eq!(f.keys, 15);
        assert_eq!(f.replicas.len(), 2);
        assert_eq!(
            f.replicas[1],
            ReplicaLine {
                ip: "cache-2.cache-headless".to_owned(),
                port: 6379,
                state: "send_bulk".to_owned(),
                offset: 0,
                lag: 0
            }
        );
        assert_eq!(f.replicas[0].state, "online");
        assert_eq!(f.shutdown_in_ms, None);
        let leaving = parse(&MASTER.replace(
            "tcp_port:6379\r\n",
            "tcp_port:6379\r\nshutdown_in_milliseconds:39000\r\n",
        ))
        .expect("parses");
        assert_eq!(leaving.shutdown_in_ms, Some(39_000), "after a SIGTERM");
    }

    #[test]
    fn a_replica_in_a_full_sync() {
        let f = parse(SYNCING_REPLICA).expect("parses");
        assert_eq!(f.role, Role::Replica);
        assert_eq!(f.master, Some(("127.0.0.1".to_owned(), 23001)));
        assert!(!f.link_up);
        assert!(f.sync_in_progress);
        assert_eq!(
            (f.sync_total_bytes, f.sync_read_bytes),
            (Some(2000), Some(500))
        );
        let streamed = SYNCING_REPLICA.replace("total_bytes:2000", "total_bytes:-1");
        assert_eq!(parse(&streamed).expect("parses").sync_total_bytes, None);
    }

    #[test]
    fn missing_or_garbled_fields_are_errors() {
        assert_eq!(
            parse("role:master\nmaster_repl_offset:1\n"),
            Err(FactsError::Missing("run_id"))
        );
        assert_eq!(
            parse("run_id:a\nrole:sentinel\nmaster_repl_offset:1\n"),
            Err(FactsError::Invalid {
                field: "role",
                value: "sentinel".to_owned()
            })
        );
        assert!(matches!(
            parse("run_id:a\nrole:master\nmaster_repl_offset:x\n"),
            Err(FactsError::Invalid {
                field: "master_repl_offset",
                ..
            })
        ));
    }

    #[test]
    fn config_get_pairs() {
        let m = config_map(vec!["a".into(), "1".into(), "b".into(), "2".into()]);
        assert_eq!(m["b"], "2");
        assert_eq!(m.len(), 2);
    }
}
