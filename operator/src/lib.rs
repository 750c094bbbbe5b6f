//! tandem-operator: runs replicated tandem-server databases on Kubernetes from
//! `RedisReplicaSet` resources, tuning full sync, timeouts, buffers and backlog from the
//! dataset size.
//!
//! The reconcile runs in steps (see [`controller`]): prepare, apply, drive the data plane and
//! the planned moves, report. Each module's documentation says whether it touches the
//! network.

pub mod api_calls;
pub mod backoff;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod error;
#[cfg(feature = "test-support")]
pub mod fixtures;
pub mod leader;
pub mod local;
pub mod local_view;
pub mod metrics;
pub mod observe;
pub mod persistence;
pub mod policy;
pub mod quantity;
pub mod random;
pub mod renames;
pub mod resources;
pub mod server_config;
pub mod set_metrics;
pub mod status;
pub mod validate;
