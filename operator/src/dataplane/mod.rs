//! The data plane: what the operator does with the servers themselves, over RESP, the same
//! way for pods and for local processes (the [`engine::Nodes`] seam).
//!
//! Pure parts, tested as data: [`facts`] (INFO parsed), [`roles`] (who is master, failover),
//! [`tuning`] (CONFIG SET diff), [`syncs`] (full-sync timing and the sync-loop guard),
//! [`rate`] (the master's write rate), [`dataset`] (the master's dataset size), [`status`] (the status from a pass), [`record`] (what
//! the data plane knows that must survive an operator restart, kept in the status) and
//! [`rollout`] (scale-in and rolling-update order) and [`departure`] (a master leaving while
//! it serves: deleted pod or SIGTERM). Side effects: [`resp`] (talking to one
//! node) and [`engine`] (one pass: observe, decide, act) and [`pods`] (the seam over a
//! StatefulSet's pods; local processes are [`crate::local`]) and [`switchover`] (a planned
//! move of the master without loss).

pub mod dataset;
pub mod departure;
pub mod engine;
pub mod facts;
pub mod pods;
pub mod rate;
pub mod record;
pub mod resp;
pub mod roles;
pub mod rollout;
pub mod status;
pub mod switchover;
pub mod syncs;
pub mod tuning;
