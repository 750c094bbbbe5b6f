//! Test support shared by the workspace's crates: the rule for tests that need a real part
//! ([`skip_or_fail`]), and one harness for servers under test (a free port, a guard that
//! kills the process and keeps its output for the failure message, readiness polled against
//! a deadline, a raw RESP connection), and certificates for servers under TLS ([`tls`]).
//! bench links it at run time too, so it stays on std
//! (plus the `redis` client behind a feature for the crates that already speak through it).

mod deps;
mod launch;
pub mod resp;
pub mod tls;
mod wait;

pub use deps::{real_tool, redis_available, require_real_deps, skip_or_fail, which};
pub use launch::{Launch, ServerGuard, free_port, process_tree, start_redis};
pub use resp::Conn;
pub use wait::{poll, wait_until};
