//! `tandem-bench full-sync` end to end at a tiny size: real redis-server and the built
//! tandem-server, both modes, one round. Checks the JSON contract and that the figures are
//! sane (diskless writes no dump, disk mode writes one on both sides, one full sync each),
//! not speed: speed is for the benchmark itself. Skips when redis-server or tandem-server is
//! missing, unless TANDEM_REQUIRE_REAL_DEPS=1.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn full_sync_json_has_the_contracted_fields_and_sane_values() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_tandem-bench"));
    // `cargo test --workspace` builds the server's binary into the same directory.
    let tandem = bench.with_file_name("tandem-server");
    for (what, present) in [
        (
            "redis-server on PATH",
            tandem_testkit::which("redis-server").is_some(),
        ),
        (
            "taskset on PATH",
            tandem_testkit::which("taskset").is_some(),
        ),
        (
            "tandem-server (cargo build -p tandem-server)",
            tandem.is_file(),
        ),
    ] {
        if !present {
            tandem_testkit::skip_or_fail(&format!("{what} missing"));
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("tandem-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("full-sync.json");
    let png = dir.join("full-sync.png");
    let out = Command::new(&bench)
        .args(["full-sync", "--size", "4MiB", "--modes", "disk,diskless"])
        .args([
            "--servers",
            "tandem,redis",
            "--sample-ms",
            "5",
            "--timeout-s",
            "120",
        ])
        .arg("--tandem-bin")
        .arg(&tandem)
        .arg("--data-dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&png)
        .output()
        .expect("run tandem-bench");
    assert!(
        out.status.success(),
        "tandem-bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("transfer s") && table.contains("diskless"),
        "{table}"
    );
    let records: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(records.len(), 4, "{records:?}");
    for r in &records {
        for field in [
            "server",
            "mode",
            "dataset_bytes",
            "keys",
            "transfer_s",
            "load_s",
            "total_s",
            "master_rss_before_bytes",
            "master_peak_rss_bytes",
            "replica_peak_rss_bytes",
            "dump_bytes_written",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        let f = |k: &str| {
            r[k].as_f64()
                .unwrap_or_else(|| panic!("{k} not a number in {r}"))
        };
        let (server, mode) = (
            r["server"].as_str().expect("server"),
            r["mode"].as_str().expect("mode"),
        );
        assert!(f("dataset_bytes") >= 4.0 * 1024.0 * 1024.0, "{r}");
        // Every record, the _indices set and the sentinel key.
        assert_eq!(f("keys"), f("records") + 2.0, "{r}");
        assert!(f("total_s") > 0.0 && f("transfer_s") > 0.0, "{r}");
        assert!(
            f("transfer_s") <= f("total_s") && f("load_s") <= f("total_s"),
            "{r}"
        );
        assert!(
            f("master_peak_rss_bytes") >= f("master_rss_before_bytes"),
            "{r}"
        );
        assert!(
            f("master_rss_before_bytes") > 0.0 && f("replica_peak_rss_bytes") > 0.0,
            "{r}"
        );
        assert_eq!(
            f("sync_full"),
            1.0,
            "{server} {mode}: one full sync, no retry: {r}"
        );
        match mode {
            "diskless" => assert_eq!(f("dump_bytes_written"), 0.0, "{server}: {r}"),
            "disk" => {
                // The master's RDB and the replica's copy, each about the dataset.
                assert!(
                    f("master_dump_bytes") > f("dataset_bytes") / 2.0,
                    "{server}: {r}"
                );
                assert!(
                    f("replica_dump_bytes") > f("dataset_bytes") / 2.0,
                    "{server}: {r}"
                );
                assert!(f("snapshot_s") > 0.0, "{server}: {r}");
            }
            m => panic!("unexpected mode {m}"),
        }
    }
    for s in ["tandem", "redis"] {
        for m in ["disk", "diskless"] {
            assert!(
                records.iter().any(|r| r["server"] == s && r["mode"] == m),
                "{s} {m}"
            );
        }
    }
    let png_bytes = std::fs::read(&png).expect("chart written");
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // Nothing left behind but what the test itself wrote.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tandem-bench-"))
        .collect();
    assert!(left.is_empty(), "server directories left behind: {left:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
