//! Shared by the integration tests: running PyPI's `kubernetes-validate` on a file. No
//! network: the tool bundles the Kubernetes schemas.

use std::path::Path;
use std::process::Command;

/// Runs `kubernetes-validate --strict -k 1.33 FILE` and asserts it passes and really found a
/// schema. When the tool is missing the check is skipped with a message, unless
/// TANDEM_REQUIRE_REAL_DEPS=1 (CI), where a missing tool fails the test.
pub fn assert_valid_for_kubernetes_1_33(file: &Path) {
    let output = match Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.33"])
        .arg(file)
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            tandem_testkit::skip_or_fail(&format!(
                "kubernetes-validate cannot run ({err}); pip install kubernetes-validate"
            ));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubernetes-validate rejected {}:\n{stdout}\n{stderr}",
        file.display()
    );
    // A missing schema is only a warning for the tool; for us it means nothing was checked.
    assert!(
        !stdout.contains("Couldn't find schema") && !stderr.contains("Couldn't find schema"),
        "kubernetes-validate did not check {}:\n{stdout}\n{stderr}",
        file.display()
    );
}
