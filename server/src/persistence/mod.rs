//! Persistence formats and snapshots. [`rdb`] is the byte-exact Redis 7.0 RDB format; it
//! must stay independent of the keyspace so files and replication payloads can be read and
//! written without a running server.

pub mod rdb;
