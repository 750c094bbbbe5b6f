//! The pods' network. A cluster gives every pod its own network namespace and address, and
//! every server binds 0.0.0.0:6379 in its own; so here each container runs with
//! `--network none` (a namespace of its own) and gets a veth to a bridge in a namespace made
//! for the test alone, with addresses that exist only inside these namespaces (as the
//! server's fault tests do). The test's thread runs inside that namespace, and inside a mount
//! namespace whose /etc/hosts names the pods, so it dials the pods' DNS names as the operator
//! does in a cluster. The machine's own namespaces get no address, route or rule, and both
//! namespaces go away with the thread.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
use rustix::thread::UnshareFlags;
use tandem_testkit::{skip_or_fail, which};

/// The pods' /24: pod i is `SUBNET.(10 + i)`.
const SUBNET: &str = "10.232.0";
/// The bridge every pod's veth joins.
const BRIDGE: &str = "pods";

static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// The address of pod `ordinal`.
pub fn pod_ip(ordinal: usize) -> String {
    format!("{SUBNET}.{}", 10 + ordinal)
}

/// True when this process may make namespaces and has `ip` and `nsenter`; otherwise says why
/// ([`skip_or_fail`]).
#[track_caller]
pub fn available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    let why = if !root {
        Some("not root (the pod network needs network and mount namespaces)".to_owned())
    } else {
        ["ip", "nsenter"]
            .iter()
            .find(|t| which(t).is_none())
            .map(|t| format!("{t} not found (apt-get install iproute2 util-linux)"))
    };
    match why {
        Some(why) => {
            skip_or_fail(&why);
            false
        }
        None => true,
    }
}

/// Runs `body` on a thread inside a new pod network whose /etc/hosts is `hosts` (a file the
/// caller may rewrite while `body` runs); a panic in `body` is the caller's.
pub fn within<T: Send>(hosts: &Path, body: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        match s
            .spawn(|| {
                enter(hosts);
                body()
            })
            .join()
        {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn enter(hosts: &Path) {
    // Only this thread's network and mount namespaces (and so its own filesystem context)
    // are unshared, never its file descriptor table, which is what makes rustix call the
    // general `unshare` unsafe.
    #[allow(deprecated)]
    rustix::thread::unshare(UnshareFlags::NEWNET | UnshareFlags::NEWNS).expect("unshare");
    // Nothing mounted here reaches the machine's mount namespace.
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .expect("make / a slave mount");
    mount_bind(hosts, "/etc/hosts").expect("bind the pods' hosts file");
    ip(&["link", "set", "lo", "up"]);
    ip(&["link", "add", BRIDGE, "type", "bridge"]);
    ip(&["addr", "add", &format!("{SUBNET}.254/24"), "dev", BRIDGE]);
    ip(&["link", "set", BRIDGE, "up"]);
}

/// Gives the container whose PID 1 is `pid` the address of pod `ordinal`, on the bridge.
/// Called from the thread [`within`] runs.
pub fn attach(pid: u32, ordinal: usize) {
    let link = format!("pod{}", NEXT_LINK.fetch_add(1, Ordering::Relaxed));
    let pid = pid.to_string();
    ip(&[
        "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &pid,
    ]);
    ip(&["link", "set", &link, "master", BRIDGE, "up"]);
    in_netns(
        &pid,
        &[
            "addr",
            "add",
            &format!("{}/24", pod_ip(ordinal)),
            "dev",
            "eth0",
        ],
    );
    in_netns(&pid, &["link", "set", "eth0", "up"]);
}

#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[track_caller]
fn in_netns(pid: &str, args: &[&str]) {
    let out = Command::new("nsenter")
        .args(["--target", pid, "--net", "ip"])
        .args(args)
        .output()
        .expect("run nsenter");
    assert!(
        out.status.success(),
        "nsenter -t {pid} -n ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
