//! The operator's RESP conversations with one node (the `redis` crate): INFO, CONFIG
//! GET/SET, REPLICAOF, under the names the node answers to ([`crate::renames`]). Touches the
//! network; every call is bounded by a timeout so a node that hangs looks unreachable
//! instead of stalling the pass.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo,
};

use super::facts::{self, FactsError, NodeFacts};
use super::roles::NodeAddr;
use crate::renames::CommandNames;

/// Connecting and each command give up after this long: well under a failover's
/// down-after, so one pass notices an unreachable master in time.
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// A failed conversation.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Connect, auth or command failed.
    #[error("{addr}: {source}")]
    Redis {
        /// The node.
        addr: NodeAddr,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// The node answers to none of the command names the operator knows. The name sent is
    /// not shown: it may be a secret.
    #[error(
        "{addr}: unknown command (the node answers to none of the names the operator knows for it)"
    )]
    UnknownCommand {
        /// The node.
        addr: NodeAddr,
    },
    /// INFO lacks what the data plane needs.
    #[error("{addr}: {source}")]
    Facts {
        /// The node.
        addr: NodeAddr,
        /// What was missing.
        #[source]
        source: FactsError,
    },
}

/// A connection to one node.
pub struct NodeConn {
    addr: NodeAddr,
    conn: MultiplexedConnection,
    names: Vec<CommandNames>,
    using: usize,
}

/// Whether the server refused the command's name (not its arguments).
fn unknown_command(e: &redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.starts_with("unknown command"))
}

impl NodeConn {
    /// Connects (and authenticates with `password` when set). Renamed commands are sent by
    /// the first of `names`, or the next ones when the node does not know it: a pod started
    /// before its set's renames (or before they were turned off) answers to the others until
    /// it restarts. No names means the plain ones.
    ///
    /// # Errors
    /// The node is unreachable, refuses the password, or does not answer in time.
    pub async fn connect(
        addr: &NodeAddr,
        password: Option<&str>,
        names: &[CommandNames],
    ) -> Result<Self, RespError> {
        let err = |source| RespError::Redis {
            addr: addr.clone(),
            source,
        };
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(pw) = password {
            settings = settings.set_password(pw);
        }
        let info = ConnectionAddr::Tcp(addr.host.clone(), addr.port)
            .into_connection_info()
            .map_err(err)?
            .set_redis_settings(settings);
        let client = Client::open(info).map_err(err)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(err)?;
        Ok(Self {
            addr: addr.clone(),
            conn,
            names: if names.is_empty() {
                vec![CommandNames::plain()]
            } else {
                names.to_vec()
            },
            using: 0,
        })
    }

    fn err(&self, source: redis::RedisError) -> RespError {
        if unknown_command(&source) {
            return RespError::UnknownCommand {
                addr: self.addr.clone(),
            };
        }
        RespError::Redis {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Sends the command `build` makes with the names in use, moving on to the next names
    /// while the node says the command is unknown; the names that worked stay in use.
    async fn renamed<T: FromRedisValue>(
        &mut self,
        build: impl Fn(&CommandNames) -> Cmd,
    ) -> Result<T, RespError> {
        loop {
            let result = build(&self.names[self.using])
                .query_async(&mut self.conn)
                .await;
            match result {
                Err(e) if unknown_command(&e) && self.using + 1 < self.names.len() => {
                    self.using += 1;
                }
                other => return other.map_err(|e| self.err(e)),
            }
        }
    }

    /// INFO of the sections the data plane reads, parsed.
    ///
    /// # Errors
    /// The command fails or the reply lacks a needed field.
    pub async fn facts(&mut self) -> Result<NodeFacts, RespError> {
        let text: String = redis::cmd("INFO")
            .arg(&facts::INFO_SECTIONS)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        facts::parse(&text).map_err(|source| RespError::Facts {
            addr: self.addr.clone(),
            source,
        })
    }

    /// CONFIG GET of `names`.
    ///
    /// # Errors
    /// The command fails.
    pub async fn config_get(
        &mut self,
        names: &[&str],
    ) -> Result<HashMap<String, String>, RespError> {
        let pairs: Vec<String> = self
            .renamed(|n| {
                let mut cmd = redis::cmd(n.config());
                cmd.arg("GET").arg(names);
                cmd
            })
            .await?;
        Ok(facts::config_map(pairs))
    }

    /// One CONFIG SET of all `pairs` (atomic on the server: all or none).
    ///
    /// # Errors
    /// The command fails or the server refuses a value.
    pub async fn config_set(&mut self, pairs: &[(&str, String)]) -> Result<(), RespError> {
        self.renamed(|n| {
            let mut cmd = redis::cmd(n.config());
            cmd.arg("SET");
            for (k, v) in pairs {
                cmd.arg(*k).arg(v);
            }
            cmd
        })
        .await
    }

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` for None.
    ///
    /// # Errors
    /// The command fails.
    pub async fn replicaof(&mut self, master: Option<&NodeAddr>) -> Result<(), RespError> {
        self.renamed(|n| {
            let mut cmd = redis::cmd(n.replicaof());
            match master {
                Some(m) => cmd.arg(&m.host).arg(m.port),
                None => cmd.arg("NO").arg("ONE"),
            };
            cmd
        })
        .await
    }

    /// `CLIENT PAUSE ms WRITE`: holds every write (and anything that would replicate) for
    /// up to `duration`, so the replication offset stops moving; reads go on.
    ///
    /// # Errors
    /// The command fails.
    pub async fn pause_writes(&mut self, duration: Duration) -> Result<(), RespError> {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            .arg("WRITE")
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// `CLIENT UNPAUSE`: held commands run now (a node that became a replica meanwhile
    /// refuses held writes with READONLY).
    ///
    /// # Errors
    /// The command fails.
    pub async fn unpause(&mut self) -> Result<(), RespError> {
        redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// `CLIENT KILL TYPE normal` and `TYPE pubsub` (this connection is skipped): what Redis
    /// Sentinel sends a demoted master, so that every client reconnects and finds the new
    /// master (through the master Service or the Sentinel endpoint) instead of meeting
    /// `READONLY` one request at a time. Returns how many clients were disconnected.
    ///
    /// # Errors
    /// The command fails.
    pub async fn disconnect_clients(&mut self) -> Result<u64, RespError> {
        let mut killed = 0;
        for kind in ["normal", "pubsub"] {
            killed += redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(kind)
                .query_async::<u64>(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(killed)
    }
}
