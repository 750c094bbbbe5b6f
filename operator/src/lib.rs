//! tandem-operator: runs replicated tandem-server databases on Kubernetes from
//! `RedisReplicaSet` resources, tuning full sync, timeouts, buffers and backlog from the
//! dataset size.
//!
//! The reconcile is staged (see [`controller`]): validate, fetch, build, apply, observe,
//! write status. Each module's documentation says whether it touches the network.

pub mod api_calls;
pub mod apply;
pub mod backoff;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod error;
pub mod fetch;
#[cfg(test)]
mod fixtures;
pub mod leader;
pub mod local;
pub mod metrics;
pub mod moves;
pub mod observe;
pub mod policy;
pub mod quantity;
pub mod random;
pub mod renames;
pub mod resources;
pub mod status;
pub mod validate;
