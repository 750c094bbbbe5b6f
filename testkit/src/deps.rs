//! The rule for tests that need a real part (a binary such as redis-server, a Python tool,
//! root): when the part is missing such a test prints why and skips, except under
//! `TANDEM_REQUIRE_REAL_DEPS=1` (CI), where the missing part fails it.

use std::path::PathBuf;
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

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of a real tool, or `None` after [`skip_or_fail`].
#[track_caller]
pub fn real_tool(name: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        skip_or_fail(&format!("{name} not found on PATH"));
    }
    found
}
