//! Persistence: Redis 7.0's SAVE/BGSAVE/load behaviour on top of the RDB library
//! ([`crate::rdb`], shared with replication).
//!
//! - [`save`] drives SAVE, BGSAVE, save points and the dump file (temp file, fsync, rename).
//! - [`load`] loads the dump at start-up, in the LOADING state.
//!
//! [`Persistence`] is the state INFO persistence reports. Nothing here parses commands: the
//! command handlers live in `cmd/persistence.rs`.

pub mod load;
pub mod save;
