//! What the kubelet does with a pod template, done with Docker: the volumes laid out as
//! files with the modes and owners the kubelet gives them, `docker run` arguments from the
//! container and pod security contexts, `$(VAR)` expansion in the command, and the probes.
//! Everything is read from the objects the operator builds, so a test fails when they and the
//! image disagree; what the harness does not know of a pod spec is refused, not ignored.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A pod of a StatefulSet, as the kubelet would run it.
pub struct Pod<'a> {
    /// `<statefulset>-<ordinal>`.
    pub name: String,
    /// The pod template's spec.
    pub spec: &'a PodSpec,
    /// Its namespace (for `metadata.namespace` in the downward API).
    pub namespace: String,
}

impl<'a> Pod<'a> {
    /// Pod `ordinal` of `sts`.
    pub fn of(sts: &'a StatefulSet, ordinal: usize) -> Pod<'a> {
        let spec = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod template");
        Pod {
            name: format!("{}-{ordinal}", sts.metadata.name.as_deref().expect("name")),
            spec,
            namespace: sts.metadata.namespace.clone().unwrap_or_default(),
        }
    }

    /// The first container: the one the pod exists for.
    pub fn main(&self) -> &'a Container {
        &self.spec.containers[0]
    }

    /// The pod's grace period: how long the kubelet waits after SIGTERM.
    pub fn grace_seconds(&self) -> i64 {
        self.spec.termination_grace_period_seconds.unwrap_or(30)
    }

    fn fs_group(&self) -> Option<u32> {
        self.spec
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .map(|g| u32::try_from(g).expect("fsGroup"))
    }

    /// Lays out every volume the pod names under `dir` (a directory per volume, kept across
    /// restarts of the pod) and returns volume name -> host directory. `claims` are the
    /// StatefulSet's volume claim templates, provisioned as an empty root-owned directory.
    pub fn volumes(
        &self,
        dir: &Path,
        config_maps: &[&ConfigMap],
        secrets: &[&Secret],
        claims: &[String],
    ) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for v in self.spec.volumes.iter().flatten() {
            let path = dir.join(&v.name);
            if path.exists() {
                out.insert(v.name.clone(), path);
                continue;
            }
            std::fs::create_dir_all(&path).expect("volume dir");
            if let Some(source) = &v.config_map {
                let cm = config_maps
                    .iter()
                    .find(|c| c.metadata.name == Some(source.name.clone()))
                    .expect("the ConfigMap the pod mounts");
                assert!(source.items.is_none(), "items are not supported here");
                let files = cm.data.iter().flatten().map(|(k, v)| (k, v.as_bytes()));
                self.write_files(&path, files, source.default_mode.unwrap_or(0o644));
            } else if let Some(source) = &v.secret {
                let secret = secrets
                    .iter()
                    .find(|s| s.metadata.name == source.secret_name)
                    .expect("the Secret the pod mounts");
                assert!(source.items.is_none(), "items are not supported here");
                let files = secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k, v.0.as_slice()));
                self.write_files(&path, files, source.default_mode.unwrap_or(0o644));
            } else if let Some(empty) = &v.empty_dir {
                assert!(
                    empty.medium.as_deref().unwrap_or("").is_empty(),
                    "emptyDir medium {:?} is not supported here",
                    empty.medium
                );
                // The kubelet makes an emptyDir world-writable.
                set_mode(&path, 0o777);
                self.own(&path, false);
            } else {
                panic!("volume {} has a source this harness does not know", v.name);
            }
            out.insert(v.name.clone(), path);
        }
        for claim in claims {
            let path = dir.join(claim);
            if !path.exists() {
                std::fs::create_dir_all(&path).expect("claim dir");
                set_mode(&path, 0o755);
                self.own(&path, false);
            }
            out.insert(claim.clone(), path);
        }
        out
    }

    /// A ConfigMap's or Secret's keys as files of mode `mode`, then fsGroup's ownership.
    fn write_files<'b>(
        &self,
        dir: &Path,
        files: impl Iterator<Item = (&'b String, &'b [u8])>,
        mode: i32,
    ) {
        for (key, data) in files {
            let file = dir.join(key);
            std::fs::write(&file, data).expect("write volume file");
            set_mode(&file, u32::try_from(mode).expect("mode"));
            self.own(&file, true);
        }
        set_mode(dir, 0o755);
        self.own(dir, true);
    }

    /// What the kubelet does to a volume for fsGroup: group fsGroup, group read (and write
    /// unless the volume is read-only), setgid and search on directories.
    fn own(&self, path: &Path, read_only: bool) {
        let Some(group) = self.fs_group() else { return };
        chown(path, None, Some(group)).expect("chgrp to fsGroup");
        let mode = std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777;
        let mut mask = if read_only { 0o440 } else { 0o660 };
        if path.is_dir() {
            mask |= 0o2110;
        }
        set_mode(path, mode | mask);
    }

    /// `docker run` arguments (image included) for the main container, with `volumes` from
    /// [`Self::volumes`] and `hosts` as the cluster DNS would answer.
    pub fn run_args(
        &self,
        volumes: &BTreeMap<String, PathBuf>,
        hosts: &[(String, String)],
    ) -> Vec<String> {
        let c = self.main();
        let pod_sc = self.spec.security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        let mut args = vec![
            "--hostname".to_owned(),
            self.name.clone(),
            "--network".to_owned(),
            "none".to_owned(),
            "--stop-timeout".to_owned(),
            self.grace_seconds().to_string(),
        ];
        for (name, ip) in hosts {
            args.push("--add-host".to_owned());
            args.push(format!("{name}:{ip}"));
        }
        let user = sc.run_as_user.or(pod_sc.run_as_user);
        let group = sc.run_as_group.or(pod_sc.run_as_group);
        if sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true) {
            assert!(
                user.is_some_and(|u| u != 0),
                "runAsNonRoot needs a non-root runAsUser here"
            );
        }
        if let Some(user) = user {
            args.push("--user".to_owned());
            args.push(match group {
                Some(g) => format!("{user}:{g}"),
                None => user.to_string(),
            });
        }
        for g in pod_sc
            .fs_group
            .iter()
            .chain(pod_sc.supplemental_groups.iter().flatten())
        {
            args.push("--group-add".to_owned());
            args.push(g.to_string());
        }
        if sc.read_only_root_filesystem == Some(true) {
            args.push("--read-only".to_owned());
        }
        if sc.allow_privilege_escalation == Some(false) {
            args.push("--security-opt".to_owned());
            args.push("no-new-privileges".to_owned());
        }
        assert!(
            sc.privileged != Some(true),
            "privileged is not supported here"
        );
        if let Some(caps) = &sc.capabilities {
            for cap in caps.drop.iter().flatten() {
                args.push("--cap-drop".to_owned());
                args.push(cap.clone());
            }
            for cap in caps.add.iter().flatten() {
                args.push("--cap-add".to_owned());
                args.push(cap.clone());
            }
        }
        for profile in [&sc.seccomp_profile, &pod_sc.seccomp_profile]
            .into_iter()
            .flatten()
        {
            // RuntimeDefault is Docker's default profile.
            match profile.type_.as_str() {
                "RuntimeDefault" => {}
                "Unconfined" => {
                    args.push("--security-opt".to_owned());
                    args.push("seccomp=unconfined".to_owned());
                }
                other => panic!("seccomp profile {other} is not supported here"),
            }
        }
        let env = self.env();
        for (k, v) in &env {
            args.push("--env".to_owned());
            args.push(format!("{k}={v}"));
        }
        for m in c.volume_mounts.iter().flatten() {
            assert!(m.sub_path.is_none(), "subPath is not supported here");
            let source = volumes
                .get(&m.name)
                .unwrap_or_else(|| panic!("volume {} is mounted but not declared", m.name));
            let mut mount = format!(
                "type=bind,source={},target={}",
                source.display(),
                m.mount_path
            );
            if m.read_only == Some(true) {
                mount.push_str(",readonly");
            }
            args.push("--mount".to_owned());
            args.push(mount);
        }
        if let Some(dir) = &c.working_dir {
            args.push("--workdir".to_owned());
            args.push(dir.clone());
        }
        // Kubernetes: command replaces the image's ENTRYPOINT and drops its CMD; args
        // replace CMD.
        let command: Vec<String> = c
            .command
            .iter()
            .flatten()
            .map(|a| expand(a, &env))
            .collect();
        if let Some(first) = command.first() {
            args.push("--entrypoint".to_owned());
            args.push(first.clone());
        }
        args.push(c.image.clone().expect("image"));
        args.extend(command.into_iter().skip(1));
        args.extend(c.args.iter().flatten().map(|a| expand(a, &env)));
        args
    }

    /// The container's environment, the downward API resolved.
    fn env(&self) -> Vec<(String, String)> {
        self.main()
            .env
            .iter()
            .flatten()
            .map(|e| {
                let value = match (&e.value, &e.value_from) {
                    (Some(v), None) => v.clone(),
                    (None, Some(from)) => {
                        let field = from.field_ref.as_ref().unwrap_or_else(|| {
                            panic!("env {}: only fieldRef is supported", e.name)
                        });
                        match field.field_path.as_str() {
                            "metadata.name" => self.name.clone(),
                            "metadata.namespace" => self.namespace.clone(),
                            other => panic!("env {}: fieldRef {other} is not supported", e.name),
                        }
                    }
                    _ => String::new(),
                };
                (e.name.clone(), value)
            })
            .collect()
    }
}

/// Kubernetes' expansion of `$(VAR)` in command and args: defined names are replaced, `$$`
/// is a literal `$`, anything else stays as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Runs `probe` once against the pod at `host` as the kubelet would: a TCP connect within the
/// probe's timeout, or its command in the container. Err says why it failed.
pub fn probe(
    probe: &Probe,
    container: &Container,
    host: &str,
    exec: impl FnOnce(&[String]) -> (bool, String),
) -> Result<(), String> {
    let timeout = Duration::from_secs(
        u64::try_from(probe.timeout_seconds.unwrap_or(1)).expect("timeoutSeconds"),
    );
    if let Some(tcp) = &probe.tcp_socket {
        let port = match &tcp.port {
            IntOrString::Int(p) => *p,
            IntOrString::String(name) => {
                container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("probe port {name} is not a container port"))
                    .container_port
            }
        };
        let host = tcp.host.as_deref().unwrap_or(host);
        let addr = (host, u16::try_from(port).expect("port"))
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|e| format!("tcp {addr}: {e}"))
    } else if let Some(action) = &probe.exec {
        let command = action.command.clone().unwrap_or_default();
        let (ok, output) = exec(&command);
        ok.then_some(())
            .ok_or_else(|| format!("{command:?} failed: {output}"))
    } else {
        Err(format!(
            "this harness runs tcpSocket and exec probes, not {probe:?}"
        ))
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let env = [("POD_NAME".to_owned(), "cache-0".to_owned())];
    assert_eq!(expand("$(POD_NAME).svc", &env), "cache-0.svc");
    assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
    assert_eq!(expand("$(OTHER) $", &env), "$(OTHER) $");
}
