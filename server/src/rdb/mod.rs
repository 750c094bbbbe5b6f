//! The RDB file format of Redis 7.0 (version 10, reading 1 to 10): a streaming reader and a
//! streaming writer over a format-level model ([`RdbValue`], [`RdbEntry`], [`Aux`]).
//!
//! A library under both persistence and replication, knowing neither: the disk writer and
//! the diskless transfer consume the same [`producer`], the start-up load and the replica's
//! loader use the same reader and [`convert`].
//!
//! The format modules (reader, writer, encodings) know bytes and encodings only: not the
//! keyspace, configuration thresholds or in-memory encodings. [`convert`] is the bridge: it
//! maps keyspace values to the writer's calls and loaded [`RdbValue`]s back (the loaders
//! decide what to do with expired keys, duplicate keys and database numbers); [`producer`]
//! turns a fork-less snapshot of every database into RDB bytes while the server keeps
//! running.

mod compact;
pub mod convert;
pub mod dump;
mod encoding;
mod error;
pub mod function_dump;
mod model;
pub mod producer;
mod reader;
mod writer;

pub use encoding::RDB_VERSION;
pub use error::RdbError;
pub use model::{
    Aux, RdbConsumer, RdbEntry, RdbGroup, RdbStream, RdbStreamEntry, RdbStreamId, RdbStreamMeta,
    RdbValue,
};
pub use reader::{Item, RdbReader};
pub use writer::{ChecksumWriter, RdbWriter, WriterOptions};
