//! The tuning loop closed, in `tandem-operator local` against real tandem-server processes:
//! a dataset that outgrows its hint moves the plan on every node. A test binary of its own:
//! it moves 1.2 GiB through a debug build, which would starve the timing of the other
//! local-mode tests if it ran beside them (cargo runs test binaries one at a time).

#![allow(clippy::unwrap_used)]

#[path = "common/local_mode.rs"]
mod local_mode;

use std::time::{Duration, Instant};

use local_mode::{Local, config_get};

/// A set of a few MiB is Ready well within this on a busy 2-core machine.
const READY: Duration = Duration::from_secs(60);

/// A set created with a 64Mi hint and persistence (so disk syncs) that is loaded past 1 GiB:
/// the data plane reads the master's `used_memory_dataset`, the plan switches to diskless
/// with a reason naming the observed size, and every node's CONFIG follows live.
#[test]
fn a_dataset_grown_past_the_hint_switches_the_set_to_diskless() {
    let local = Local::start(2, &["--persistence", "rdb"]);
    let status = local.wait_ready(READY);
    assert_eq!(status["replication"]["mode"], "Disk", "{status:#}");
    let master = status["master"].as_str().expect("master").to_owned();
    // 1,200 values of 1 MiB: about 1.2 GiB of dataset, past the 1 GiB diskless threshold.
    let value = vec![b'x'; 1 << 20];
    let mut m = local.conn(&master);
    for batch in 0..120 {
        let mut pipe = redis::pipe();
        for k in 0..10 {
            pipe.set(format!("big:{batch}:{k}"), &value).ignore();
        }
        pipe.query::<()>(&mut m).expect("SET");
    }
    // The plan may first switch on part of the load (it grew past 1 GiB before the last
    // batch); the full 1,200 MiB is what it settles on.
    let observed = |s: &serde_json::Value| -> Option<u64> {
        let reason = s["replication"]["reason"].as_str()?;
        let size = reason
            .strip_prefix("observed dataset ")?
            .split_once(" >= 1Gi: diskless")?
            .0;
        tandem_operator::quantity::parse_bytes(size).ok()
    };
    let status = local.wait_status(
        "Diskless from the whole observed dataset",
        Duration::from_secs(60),
        |s| s["replication"]["mode"] == "Diskless" && observed(s) >= Some(1200 << 20),
    );
    let reason = status["replication"]["reason"].as_str().expect("reason");
    let bytes = observed(&status).expect("observed size");
    let size = tandem_operator::quantity::format_bytes(bytes);
    assert!(
        reason.contains(&format!(
            "sized for the observed dataset {size} (hint 64Mi)"
        )),
        "{reason}"
    );
    // 1,200 MiB of values and keys, rounded up to an eighth of 1 GiB: 1280Mi on a quiet
    // machine. A master too busy to keep up with its replica also holds the stream it has not
    // sent yet for seconds, in buffers whose spare capacity used_memory counts: a size that
    // lasts is taken, which errs on the large side (timeouts and buffers a little longer).
    assert!(bytes <= 2 << 30, "{size}");
    let timeout = status["replication"]["replTimeoutSeconds"].to_string();
    let wanted = (bytes.div_ceil(20 << 20) * 2).div_ceil(60) * 60;
    assert_eq!(
        timeout,
        wanted.to_string(),
        "{size} at 20 MiB/s, x2, in whole minutes"
    );
    let config = local.config();
    // The next pass sets the new plan on every node.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in ["node-0", "node-1"] {
        let mut c = local.conn(node);
        loop {
            let got = (
                config_get(&mut c, &config, "repl-diskless-sync"),
                config_get(&mut c, &config, "repl-timeout"),
            );
            if got == ("yes".to_owned(), timeout.clone()) {
                break;
            }
            assert!(Instant::now() < deadline, "{node}: {got:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
