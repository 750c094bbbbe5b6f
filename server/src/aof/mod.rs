//! The append-only file, Redis 7.0's multi-part AOF: a manifest ([`manifest`]) naming an
//! RDB base file and incremental files of commands in the replication stream's format.
//!
//! - [`writer`] appends the feed's AOF buffer after each batch of commands, before replies
//!   leave, and runs the fsync policies (`always`, `everysec`, `no`).
//! - [`load`] loads the files at start-up and for DEBUG LOADAOF.
//! - [`rewrite`] is BGREWRITEAOF on the fork-less keyspace snapshot; [`commands`] turns its
//!   RDB into commands when the base is written without the RDB preamble.
//! - [`control`] turns the AOF on and off (start-up, CONFIG SET appendonly, SHUTDOWN).
//! - [`info`] prints INFO persistence's `aof_*` fields.
//!
//! The state these share is `crate::state::aof`; the commands live in
//! `cmd/persistence.rs`.

pub mod commands;
pub mod control;
pub mod info;
pub mod load;
pub mod manifest;
pub mod rewrite;
pub mod writer;
