//! tandem-server: a Redis-compatible server (RESP2/RESP3, Redis 7.0 commands and replies)
//! built for what an operator of replicated databases needs.
//!
//! Map: [`protocol`] speaks RESP and knows nothing else; [`cmd`] holds the command table and
//! one module per command family; [`exec`] runs a command with Redis's checks and
//! after-effects; [`keyspace`] stores databases, values and expiry; [`replication`] turns
//! writes into the replication stream; [`persistence`] reads and writes RDB files; [`net`]
//! owns sockets and the cron; [`blocking`] parks and serves clients blocked on keys;
//! [`config`] the directive table; [`server`] the shared state; [`cli`] the command line.

/// The Redis version we answer as (HELLO, INFO, the RDB's `redis-ver`): clients gate features
/// on it.
pub const REDIS_VERSION: &str = "7.0.15";

pub mod access;
pub mod acl;
pub mod aof;
pub mod blocking;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod exec;
pub mod geohash;
pub mod glob;
pub mod hyperloglog;
pub mod info;
pub mod keyspace;
pub mod latency;
pub mod log;
pub mod longdouble;
pub mod memory;
pub mod net;
pub mod notify;
pub mod persistence;
pub mod pqsort;
pub mod probe;
pub mod protocol;
pub mod pubsub;
pub mod rdb;
pub mod replication;
pub mod repr;
pub mod scripting;
pub mod sentinel;
pub mod shutdown;
pub mod slowlog;
pub mod socket;
pub mod state;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod tracking;
