//! Waiting for a condition: polled against a deadline, so a test is as fast as the server
//! and a hang fails with what it waited for instead of a fixed sleep that is either too
//! short on a loaded machine or wasted on an idle one.

use std::time::{Duration, Instant};

/// How often a condition is polled: short next to any deadline, long next to the cost of
/// asking a server.
const POLL: Duration = Duration::from_millis(20);

/// Polls `f` until it returns `Some`, panicking with `what` when `within` has passed.
#[track_caller]
pub fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds (see [`poll`]); returns how long that took, which the fault
/// tests report.
#[track_caller]
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    poll(what, within, || cond().then_some(()));
    start.elapsed()
}
