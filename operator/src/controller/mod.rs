//! The controller: watches `RedisReplicaSet`s, their children and their pods ([`run`]), and
//! reconciles each set in four steps, one call each, every step taking what the one before
//! returned ([`reconcile`]):
//!
//! | step | file | network | hands on |
//! |---|---|---|---|
//! | prepare | `prepare.rs` | reads the auth Secrets, creates a missing one | the valid set, the plan, the password and renamed commands' names, the desired objects (the StatefulSet at its running size) |
//! | apply | `apply.rs` | server-side apply of every object | the StatefulSet's update revision |
//! | drive | `drive.rs` | the pod list, RESP to the servers (the data-plane pass, a switchover), pod deletes, role labels | the pass as the set is now, and whether a planned move is under way |
//! | report | `report.rs` | events, one status apply patch | when to come back |
//!
//! A spec or auth Secret only the user can fix stops the reconcile after prepare; the report
//! step says so in the status. Each set's data plane lives in the [`Context`] across
//! reconciles, and in the status (`status.dataPlane`), from which a restarted operator takes
//! it back. `reconcile.rs` is the driver, `run.rs` the watches and the leader lease.

mod apply;
mod context;
mod drive;
mod prepare;
mod reconcile;
mod report;
mod run;

pub use context::Context;
pub use reconcile::{error_policy, reconcile};
pub use report::{REQUEUE_ACTIVE, REQUEUE_PROGRESSING, REQUEUE_STABLE};
pub use run::{RunError, Settings, Shutdown, run};

#[cfg(test)]
mod tests;
