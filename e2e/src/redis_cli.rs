//! Talking RESP to the set from inside the cluster: a client pod running the real `redis-cli`
//! (image `redis:7.0`), driven through the API server's exec subresource (`Api::exec`, the
//! call `kubectl exec` makes).
//!
//! Why exec in a client pod rather than a port-forward from the test process: the master and
//! replicas Services are ClusterIP, reachable only inside the cluster, and the scenarios must
//! go through them (their role-label selectors are what failover moves) and through the
//! headless Service's per-pod DNS names, as a real client does. A port-forward targets one
//! pod and bypasses Service routing. The server image is distroless (no shell, no
//! redis-cli), so the client runs in its own pod.
//!
//! The password reaches redis-cli through the `REDISCLI_AUTH` variable, filled inside the pod
//! from the auth Secret, so it never appears in an exec request. Likewise the secret names the
//! set's CONFIG and SHUTDOWN answer to (the operator renames them) come from the auth-conf
//! Secret's `renamed-commands` into `TANDEM_RENAMED_COMMANDS`, and are picked out inside the
//! pod. Output is read in `--no-raw` form, where errors (`(error) ...`), nils and integers
//! are unambiguous.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, Pod, PodSecurityContext, PodSpec,
    SeccompProfile, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use kube::Api;
use kube::api::{AttachParams, PostParams};
use tokio::io::AsyncReadExt;

use tandem_operator::renames::RENAMED_COMMANDS_KEY;
use tandem_operator::resources::names;

use crate::error::Context;
use crate::scenario::Scenario;
use crate::{Error, wait};

/// Name of the client pod in each scenario's namespace.
pub const CLIENT_POD: &str = "redis-cli";

/// Container name in the client pod.
const CONTAINER: &str = "client";

/// The `redis` user of the official image: the client runs as non-root.
const REDIS_UID: i64 = 999;

/// One command may take this long (a WAIT included).
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Which credentials a command presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The set's password, from its auth Secret.
    Password,
    /// No AUTH at all.
    None,
    /// A password that is not the set's.
    Wrong,
}

/// One reply as `redis-cli --no-raw` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `(nil)`.
    Nil,
    /// `(integer) N`.
    Integer(i64),
    /// `(error) ...`, without the prefix.
    Error(String),
    /// A bulk string (printed quoted) or a status such as OK (printed bare), or a verbatim
    /// text such as INFO's.
    Text(String),
    /// An array of scalars (`1) ...`, `2) ...`), nils as `None`.
    Array(Vec<Option<String>>),
}

impl Reply {
    /// Parses every reply of one redis-cli run (one per command line it read).
    pub fn parse_all(output: &str) -> Vec<Self> {
        let mut replies = Vec::new();
        for line in output.lines() {
            if let Some((index, item)) = array_item(line) {
                let item = match Self::parse_scalar(item) {
                    Self::Nil => None,
                    other => Some(other.text_or_debug()),
                };
                match replies.last_mut() {
                    Some(Self::Array(items)) if index > 1 => items.push(item),
                    _ => replies.push(Self::Array(vec![item])),
                }
            } else if line == "(empty array)" {
                replies.push(Self::Array(Vec::new()));
            } else {
                replies.push(Self::parse_scalar(line));
            }
        }
        replies
    }

    /// Parses the output of a single command. Verbatim text (INFO) spans several lines and
    /// is kept whole.
    pub fn parse(output: &str) -> Self {
        let trimmed = output.trim_end_matches(['\r', '\n']);
        if trimmed.contains('\n') && array_item(trimmed).is_none() {
            return Self::Text(trimmed.to_owned());
        }
        let mut all = Self::parse_all(trimmed);
        if all.len() == 1 {
            all.remove(0)
        } else {
            Self::Text(trimmed.to_owned())
        }
    }

    fn parse_scalar(line: &str) -> Self {
        if line == "(nil)" {
            Self::Nil
        } else if let Some(message) = line.strip_prefix("(error) ") {
            Self::Error(message.to_owned())
        } else if let Some(n) = line.strip_prefix("(integer) ").and_then(|n| n.parse().ok()) {
            Self::Integer(n)
        } else if let Some(quoted) = line
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        {
            Self::Text(unescape(quoted))
        } else {
            Self::Text(line.to_owned())
        }
    }

    fn text_or_debug(self) -> String {
        match self {
            Self::Text(text) => text,
            other => format!("{other:?}"),
        }
    }

    /// The text of a string or status reply.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// `N) item` of an array.
fn array_item(line: &str) -> Option<(usize, &str)> {
    let (index, item) = line.split_once(") ")?;
    Some((index.parse().ok()?, item))
}

/// redis-cli quotes bulk strings with C-style escapes; the tests' values need only these.
fn unescape(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Fields of an `INFO` reply (`name:value` lines).
pub fn info_fields(info: &str) -> BTreeMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The client pod of one scenario. Cloning shares the pod: a concurrent writer
/// ([`crate::writer`]) runs beside the scenario's own commands.
#[derive(Clone)]
pub struct RedisCli {
    pods: Api<Pod>,
}

impl RedisCli {
    /// Creates the client pod, its password taken from `auth_secret`, and waits until it
    /// runs. Call it once the set exists: the pod cannot start before the Secret does.
    ///
    /// # Errors
    /// When the pod cannot be created or does not run in time (the image cannot be pulled,
    /// for instance: the timeout names the pod's state).
    pub async fn start(scenario: &Scenario, auth_secret: &str) -> Result<Self, Error> {
        let pods: Api<Pod> = scenario.api();
        let pod = client_pod(&scenario.cluster.settings.client_image, auth_secret);
        pods.create(&PostParams::default(), &pod)
            .await
            .context(|| format!("creating client pod {CLIENT_POD}"))?;
        wait::resource(
            &pods,
            CLIENT_POD,
            "the redis-cli client pod to run",
            scenario.cluster.settings.ready_timeout,
            |pod: &Pod| {
                let status = pod.status.as_ref();
                match status.and_then(|s| s.phase.as_deref()) {
                    Some("Running") => Ok(()),
                    phase => Err(format!(
                        "phase {phase:?}, container states {:?}",
                        status.and_then(|s| s.container_statuses.as_ref())
                    )),
                }
            },
        )
        .await?;
        Ok(Self { pods })
    }

    /// Runs one command against `host` (a Service or `<pod>.<headless>` name) with the set's
    /// password.
    ///
    /// # Errors
    /// When redis-cli cannot run or connect (an error *reply* is `Ok(Reply::Error)`).
    pub async fn command(&self, host: &str, args: &[&str]) -> Result<Reply, Error> {
        self.command_as(Auth::Password, host, args).await
    }

    /// Like [`Self::command`], with the given credentials.
    ///
    /// # Errors
    /// As [`Self::command`].
    pub async fn command_as(&self, auth: Auth, host: &str, args: &[&str]) -> Result<Reply, Error> {
        let out = self.exec(&command_argv(auth, host, args)).await?;
        Ok(Reply::parse(&out))
    }

    /// `INFO replication` of one server, as fields.
    ///
    /// # Errors
    /// As [`Self::command`], and when the reply is not INFO text (an error reply).
    pub async fn info(&self, host: &str) -> Result<BTreeMap<String, String>, Error> {
        match self.command(host, &["INFO", "replication"]).await? {
            Reply::Text(text) => Ok(info_fields(&text)),
            other => Err(Error::Exec {
                pod: CLIENT_POD.to_owned(),
                message: format!("INFO replication on {host} replied {other:?}"),
            }),
        }
    }

    /// `CONFIG GET name` of one server: the value.
    ///
    /// # Errors
    /// As [`Self::command`], and when the reply is not a name/value pair.
    pub async fn config_get(&self, host: &str, name: &str) -> Result<String, Error> {
        match self.renamed(host, "CONFIG", &["GET", name]).await? {
            Reply::Array(items) if items.len() == 2 && items[0].as_deref() == Some(name) => {
                Ok(items[1].clone().unwrap_or_default())
            }
            other => Err(Error::Exec {
                pod: CLIENT_POD.to_owned(),
                message: format!("CONFIG GET {name} on {host} replied {other:?}"),
            }),
        }
    }

    /// Runs `command`, one the operator renames (CONFIG, REPLICAOF, SHUTDOWN), under the
    /// set's secret name for it, with `args`.
    ///
    /// # Errors
    /// As [`Self::command`]. A command that ends the server (SHUTDOWN) is an error too:
    /// redis-cli exits 1 with `Server closed the connection`.
    pub async fn renamed(&self, host: &str, command: &str, args: &[&str]) -> Result<Reply, Error> {
        let out = self.exec(&renamed_argv(host, command, args)).await?;
        Ok(Reply::parse(&out))
    }

    /// Sends several command lines over one connection (redis-cli reading them from stdin),
    /// so a `WAIT` covers the writes before it. Returns one reply per line.
    ///
    /// # Errors
    /// As [`Self::command`].
    pub async fn pipeline(&self, host: &str, lines: &[String]) -> Result<Vec<Reply>, Error> {
        let out = self.exec(&pipeline_argv(host, lines)).await?;
        Ok(Reply::parse_all(&out))
    }

    /// Runs `command` in the client container and returns its stdout; a non-zero exit is an
    /// error carrying stderr.
    async fn exec(&self, command: &[String]) -> Result<String, Error> {
        let run = async {
            let params = AttachParams::default().container(CONTAINER).stderr(true);
            let mut attached = self
                .pods
                .exec(CLIENT_POD, command.to_vec(), &params)
                .await
                .context(|| format!("exec {command:?}"))?;
            let stdout = attached.stdout();
            let stderr = attached.stderr();
            let status = attached.take_status();
            let (out, err, status) = tokio::join!(read_all(stdout), read_all(stderr), async {
                match status {
                    Some(status) => status.await,
                    None => None,
                }
            });
            attached.join().await.map_err(|e| Error::Exec {
                pod: CLIENT_POD.to_owned(),
                message: format!("{command:?}: {e}"),
            })?;
            match exit_code(status.as_ref()) {
                Some(0) => Ok(out),
                code => Err(Error::Exec {
                    pod: CLIENT_POD.to_owned(),
                    message: format!("{command:?} exited with {code:?}: {}", err.trim()),
                }),
            }
        };
        tokio::time::timeout(EXEC_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Exec {
                    pod: CLIENT_POD.to_owned(),
                    message: format!(
                        "{command:?} did not finish within {} s",
                        EXEC_TIMEOUT.as_secs()
                    ),
                })
            })
    }
}

/// The command line running one redis-cli command against `host`.
fn command_argv(auth: Auth, host: &str, args: &[&str]) -> Vec<String> {
    let script = format!(
        r#"host="$1"; shift; {} exec redis-cli --no-raw -h "$host" "$@""#,
        auth_prefix(auth)
    );
    sh_argv(script, host, args.iter().map(|a| (*a).to_owned()))
}

/// The command line running `command` `args` under the name the set renamed it to, read
/// from `TANDEM_RENAMED_COMMANDS` (`COMMAND name` pairs) inside the pod; the plain name when
/// the variable names none.
fn renamed_argv(host: &str, command: &str, args: &[&str]) -> Vec<String> {
    let script = format!(
        r#"host="$1"; plain="$2"; shift 2; name="$plain"; prev=; for w in $TANDEM_RENAMED_COMMANDS; do if [ "$prev" = "$plain" ]; then name="$w"; fi; prev="$w"; done; {} exec redis-cli --no-raw -h "$host" "$name" "$@""#,
        auth_prefix(Auth::Password)
    );
    sh_argv(
        script,
        host,
        std::iter::once(command.to_owned()).chain(args.iter().map(|a| (*a).to_owned())),
    )
}

/// The command line sending `lines` over one connection (redis-cli reading stdin).
fn pipeline_argv(host: &str, lines: &[String]) -> Vec<String> {
    let script = format!(
        r#"host="$1"; shift; printf '%s\n' "$@" | {} redis-cli --no-raw -h "$host""#,
        auth_prefix(Auth::Password)
    );
    sh_argv(script, host, lines.iter().cloned())
}

/// `sh -c SCRIPT sh HOST REST...`: the host and the rest travel as positional parameters,
/// never spliced into the script, so no quoting can break it.
fn sh_argv(script: String, host: &str, rest: impl Iterator<Item = String>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script,
        "sh".to_owned(),
        host.to_owned(),
    ];
    argv.extend(rest);
    argv
}

fn auth_prefix(auth: Auth) -> &'static str {
    match auth {
        Auth::Password => r#"REDISCLI_AUTH="$TANDEM_PASSWORD""#,
        Auth::None => "",
        Auth::Wrong => "REDISCLI_AUTH=not-the-password",
    }
}

async fn read_all(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut buf = Vec::new();
    if let Some(mut reader) = reader {
        // A read error ends the output early; the exit status still tells what happened.
        let _ = reader.read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The exit code in an exec's final Status: `Success`, or `NonZeroExitCode` with the code
/// as an `ExitCode` cause.
fn exit_code(status: Option<&Status>) -> Option<i64> {
    let status = status?;
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|cause| cause.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_ref()?
        .parse()
        .ok()
}

/// The client pod: redis-cli idling, with the set's password in `TANDEM_PASSWORD`, under
/// the restricted Pod Security Standard.
fn client_pod(image: &str, auth_secret: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(CLIENT_POD.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "tandem-e2e-client".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: CONTAINER.to_owned(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command: Some(vec!["sleep".to_owned(), "infinity".to_owned()]),
                env: Some(vec![
                    EnvVar {
                        name: "TANDEM_PASSWORD".to_owned(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: auth_secret.to_owned(),
                                key: tandem_operator::resources::PASSWORD_KEY.to_owned(),
                                ..SecretKeySelector::default()
                            }),
                            ..EnvVarSource::default()
                        }),
                        ..EnvVar::default()
                    },
                    EnvVar {
                        name: "TANDEM_RENAMED_COMMANDS".to_owned(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: names::auth_conf_secret(crate::set::NAME),
                                key: RENAMED_COMMANDS_KEY.to_owned(),
                                optional: Some(true),
                            }),
                            ..EnvVarSource::default()
                        }),
                        ..EnvVar::default()
                    },
                ]),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_owned()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(REDIS_UID),
                run_as_group: Some(REDIS_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            // `sleep` as PID 1 ignores SIGTERM: do not hold the namespace deletion for it.
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of redis-cli 7.0 `--no-raw` reading these lines from stdin: SET k "a b",
    /// WAIT 0 100, GET k, CONFIG GET repl-diskless-sync, GET missing, LPUSH k x,
    /// MGET k missing, PING.
    const PIPELINE_OUTPUT: &str = "OK\n(integer) 0\n\"a b\"\n1) \"repl-diskless-sync\"\n2) \"yes\"\n(nil)\n(error) WRONGTYPE Operation against a key holding the wrong kind of value\n1) \"a b\"\n2) (nil)\nPONG\n";

    #[test]
    fn no_raw_output_splits_into_typed_replies() {
        assert_eq!(
            Reply::parse_all(PIPELINE_OUTPUT),
            vec![
                Reply::Text("OK".into()),
                Reply::Integer(0),
                Reply::Text("a b".into()),
                Reply::Array(vec![Some("repl-diskless-sync".into()), Some("yes".into())]),
                Reply::Nil,
                Reply::Error(
                    "WRONGTYPE Operation against a key holding the wrong kind of value".into()
                ),
                Reply::Array(vec![Some("a b".into()), None]),
                Reply::Text("PONG".into()),
            ]
        );
    }

    #[test]
    fn info_stays_one_text_reply() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n";
        let reply = Reply::parse(info);
        let fields = info_fields(reply.text().expect("text"));
        assert_eq!(fields["role"], "master");
        assert_eq!(fields["connected_slaves"], "2");
        assert_eq!(
            Reply::parse("(error) NOAUTH Authentication required.\n"),
            Reply::Error("NOAUTH Authentication required.".into())
        );
    }

    /// Runs the exec command lines on this machine, as the client container would, against
    /// a real redis-server with a password: `sh`, the real `redis-cli` 7.0 (behind a shim
    /// that swaps `-h HOST` for the server's Unix socket) and the reply parser together.
    /// Skips without redis-server/redis-cli unless TANDEM_REQUIRE_REAL_DEPS=1.
    #[test]
    fn the_command_lines_work_with_the_real_redis_cli() {
        let Some(real_cli) = on_path("redis-cli") else {
            return skip("redis-cli");
        };
        let Some(server_bin) = on_path("redis-server") else {
            return skip("redis-server");
        };
        let dir = std::env::temp_dir().join(format!("tandem-e2e-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("redis.sock");
        let mut server = KillOnDrop(
            std::process::Command::new(server_bin)
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--requirepass",
                    "pw",
                    "--rename-command",
                    "CONFIG",
                    "config-e2e",
                    "--rename-command",
                    "SHUTDOWN",
                    "shutdown-e2e",
                ])
                .arg("--unixsocket")
                .arg(&socket)
                .arg("--dir")
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start redis-server"),
        );
        let shim = dir.join("redis-cli");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\n# --no-raw -h HOST ARGS... -> the local socket\nraw=\"$1\"; shift 3\nexec {} \"$raw\" -s {} \"$@\"\n",
                real_cli.display(),
                socket.display()
            ),
        )
        .expect("shim");
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&shim)
            .status()
            .expect("chmod");
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = |argv: &[String]| {
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env("PATH", &path)
                .env("TANDEM_PASSWORD", "pw")
                .env(
                    "TANDEM_RENAMED_COMMANDS",
                    "CONFIG config-e2e\nREPLICAOF replicaof-e2e\nSHUTDOWN shutdown-e2e\n",
                )
                .output()
                .expect("run the command line")
        };
        let run = |argv: Vec<String>| {
            let out = output(&argv);
            assert!(out.status.success(), "{argv:?}: {out:?}");
            String::from_utf8(out.stdout).expect("utf-8")
        };
        let ping = command_argv(Auth::Password, "cache", &["PING"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Reply::parse(&String::from_utf8_lossy(&output(&ping).stdout))
            != Reply::Text("PONG".into())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        let lines = [
            "SET e2e:k \"two words\"".to_owned(),
            "WAIT 0 100".to_owned(),
        ];
        assert_eq!(
            Reply::parse_all(&run(pipeline_argv("cache", &lines))),
            [Reply::Text("OK".into()), Reply::Integer(0)]
        );
        assert_eq!(
            Reply::parse(&run(command_argv(
                Auth::Password,
                "cache",
                &["GET", "e2e:k"]
            ))),
            Reply::Text("two words".into())
        );
        assert_eq!(
            Reply::parse(&run(command_argv(
                Auth::Password,
                "cache",
                &["MGET", "e2e:k", "nope"]
            ))),
            Reply::Array(vec![Some("two words".into()), None])
        );
        for auth in [Auth::None, Auth::Wrong] {
            let reply = Reply::parse(&run(command_argv(auth, "cache", &["GET", "e2e:k"])));
            assert!(
                matches!(&reply, Reply::Error(e) if e.starts_with("NOAUTH")),
                "{auth:?}: {reply:?}"
            );
        }
        assert_eq!(
            Reply::parse(&run(renamed_argv(
                "cache",
                "CONFIG",
                &["GET", "repl-diskless-sync"]
            ))),
            Reply::Array(vec![Some("repl-diskless-sync".into()), Some("yes".into())])
        );
        assert!(
            matches!(
                Reply::parse(&run(command_argv(
                    Auth::Password,
                    "cache",
                    &["CONFIG", "GET", "repl-diskless-sync"]
                ))),
                Reply::Error(e) if e.starts_with("ERR unknown command 'CONFIG'")
            ),
            "CONFIG is renamed"
        );
        let info = Reply::parse(&run(command_argv(
            Auth::Password,
            "cache",
            &["INFO", "replication"],
        )));
        let fields = info_fields(info.text().expect("INFO text"));
        assert_eq!(fields["role"], "master");
        assert_eq!(fields["connected_slaves"], "0");

        // The crash scenario's SHUTDOWN NOW NOSAVE under the secret name: the server exits
        // at once, and redis-cli, not knowing the name for SHUTDOWN, reports the closed
        // connection and exits 1.
        let out = output(&renamed_argv("cache", "SHUTDOWN", &["NOW", "NOSAVE"]));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Server closed the connection"),
            "{out:?}"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while server.0.try_wait().expect("server status").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server still runs after SHUTDOWN NOW NOSAVE"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    /// Stops the server also when an assertion fails.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // Already gone is fine: the point is that it does not outlive the test.
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }

    fn on_path(name: &str) -> Option<std::path::PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    }

    fn skip(what: &str) {
        tandem_testkit::skip_or_fail(&format!("{what} not found on PATH"));
    }

    #[test]
    fn exit_code_comes_from_the_exec_status() {
        let failed: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": { "causes": [ { "reason": "ExitCode", "message": "1" } ] }
        }))
        .expect("status");
        assert_eq!(exit_code(Some(&failed)), Some(1));
        let ok: Status =
            serde_json::from_value(serde_json::json!({ "status": "Success" })).expect("status");
        assert_eq!(exit_code(Some(&ok)), Some(0));
        assert_eq!(exit_code(None), None);
    }
}
