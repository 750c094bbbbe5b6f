//! tandem-operator: runs replicated tandem-server databases on Kubernetes from
//! `RedisReplicaSet` resources, tuning full sync, timeouts, buffers and backlog from the
//! dataset size.
//!
//! The reconcile is staged (see [`controller`]): fetch, validate, build, apply, observe, write
//! status. Modules that touch the network say so in their first line of documentation.

pub mod crd;
pub mod policy;
pub mod quantity;
pub mod resources;
pub mod validate;
