//! The `docker` command line, for the container tests: whatever daemon `DOCKER_HOST` names
//! (CI's private one from images/dockerd.sh, or the user's).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tandem_testkit::{skip_or_fail, which};

/// Runs `docker ARGS`, returning its output whatever its exit status.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Runs `docker ARGS` and returns its stdout; panics with its stderr when it fails.
#[track_caller]
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// True when a daemon answers and every image is present; otherwise says why
/// ([`skip_or_fail`]).
#[track_caller]
pub fn images_available(images: &[&str]) -> bool {
    if which("docker").is_none() {
        skip_or_fail("docker not found on PATH (apt-get install docker.io)");
        return false;
    }
    if !docker(&["version"]).status.success() {
        skip_or_fail("no Docker daemon answers (images/dockerd.sh starts one; export DOCKER_HOST)");
        return false;
    }
    for image in images {
        if !docker(&["image", "inspect", image]).status.success() {
            skip_or_fail(&format!(
                "image {image} not found (cargo build --release, then images/build.sh)"
            ));
            return false;
        }
    }
    true
}

/// A container this test started; removed (with its anonymous volumes) on drop.
pub struct Container {
    /// Its name, unique on the daemon.
    pub name: String,
}

impl Container {
    /// Starts `docker run --detach --name NAME ARGS`.
    #[track_caller]
    pub fn run(name: &str, args: &[String]) -> Container {
        // Made first, so a container that was created but could not start is removed too.
        let container = Container {
            name: name.to_owned(),
        };
        let mut all = vec!["run", "--detach", "--name", name];
        all.extend(args.iter().map(String::as_str));
        docker_ok(&all);
        container
    }

    /// The process id of its PID 1 on this machine (0 once it stopped).
    pub fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().expect("pid")
    }

    /// Whether it still runs.
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// The exit code of its PID 1 after it stopped.
    pub fn exit_code(&self) -> i32 {
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("exit code")
    }

    /// What it wrote to stdout and stderr.
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `docker stop --time GRACE`: SIGTERM to PID 1, SIGKILL after `grace` seconds, as the
    /// kubelet stops a container. Returns how long it took.
    pub fn stop(&self, grace: i64) -> Duration {
        let start = Instant::now();
        docker_ok(&["stop", "--time", &grace.to_string(), &self.name]);
        start.elapsed()
    }

    /// Runs `docker exec` with `command`; returns whether it exited 0, and its output.
    pub fn exec(&self, command: &[String]) -> (bool, String) {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend(command.iter().map(String::as_str));
        let out = docker(&args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "--format", format, &self.name])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.name]);
    }
}
