//! tandem-e2e: end-to-end tests of tandem-operator and tandem-server on a real Kubernetes
//! cluster (a kind cluster made by `e2e/run-kind.sh`, or any cluster a kubeconfig names).
//!
//! The library holds what every scenario shares: reaching the cluster, one namespace per
//! scenario, waiting with deadlines, running `redis-cli` inside the cluster, and dumping
//! diagnostics when a scenario fails. The scenarios themselves are the `#[ignore]`d tests in
//! `tests/`. Nothing here mocks the API: every call goes to the cluster.

pub mod cluster;
pub mod diagnostics;
pub mod drain;
pub mod error;
pub mod events;
pub mod moves;
pub mod operator;
pub mod redis_cli;
pub mod scenario;
pub mod set;
pub mod wait;
pub mod writer;

pub use error::Error;
