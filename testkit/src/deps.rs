//! Test support shared by the workspace's crates, as a dev-dependency only: the rule for
//! tests that need a real part (a binary such as redis-server, a Python tool, root). When the
//! part is missing such a test prints why and skips, except under
//! `TANDEM_REQUIRE_REAL_DEPS=1` (CI), where the missing part fails it. It starts nothing;
//! the one part it looks for itself is redis-server, which most suites compare against.

use std::process::Command;

/// True when `TANDEM_REQUIRE_REAL_DEPS=1`: missing real dependencies are then failures.
pub fn require_real_deps() -> bool {
    std::env::var("TANDEM_REQUIRE_REAL_DEPS").is_ok_and(|v| v == "1")
}

/// A real part is missing: fails the calling test under `TANDEM_REQUIRE_REAL_DEPS=1`,
/// otherwise prints `SKIP: {why}` so the skip shows in the test output. The caller returns
/// after it.
#[track_caller]
pub fn skip_or_fail(why: &str) {
    assert!(
        !require_real_deps(),
        "{why}, and TANDEM_REQUIRE_REAL_DEPS=1 makes that a failure"
    );
    println!("SKIP: {why}");
}

/// True when a working `redis-server` is on PATH; otherwise [`skip_or_fail`].
#[track_caller]
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_or_fail("redis-server not found on PATH");
    }
    found
}
