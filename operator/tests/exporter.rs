//! The redis_exporter sidecar the operator puts in a pod (`spec.metrics.exporter`), run for
//! real: Debian's prometheus-redis-exporter, with the environment the sidecar's spec gives
//! it (its Secret references resolved against the Secrets the operator generates), scraping
//! a tandem-server started with the set's generated auth-conf (password, renamed commands).
//! It exports every series it exports from a Redis 7.0 given the same auth-conf, CONFIG
//! series included (sent by the renamed name).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Secret};
use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::policy::{Observed, plan};
use tandem_operator::renames::CommandNames;
use tandem_operator::resources::exporter::CONTAINER_NAME;
use tandem_operator::resources::secret::{AUTH_CONF_KEY, generated_auth_secret};
use tandem_operator::resources::{Password, desired};
use tandem_operator::validate::validate;
use tandem_testkit::{Launch, free_port, poll, which};

/// What a pod of a set with the sidecar holds: the sidecar, the Secrets it reads, and the
/// auth-conf text the server includes.
struct Pod {
    sidecar: Container,
    secrets: Vec<Secret>,
    auth_conf: String,
}

fn pod() -> Pod {
    let rrs: RedisReplicaSet = serde_yaml::from_str(
        "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: { name: cache, namespace: ns1, uid: u1, generation: 1 }\nspec:\n  replicas: 1\n  datasetSizeHint: 100Mi\n  metrics: { exporter: { enabled: true } }\n",
    )
    .unwrap();
    let set = validate(&rrs, Observed::default()).unwrap();
    let password = Password::generate();
    let d = desired(
        &set,
        &plan(&set.policy_input),
        &password,
        &CommandNames::generate(),
        1,
    );
    let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
    let sidecar = pod
        .containers
        .into_iter()
        .find(|c| c.name == CONTAINER_NAME)
        .expect("the sidecar in the pod");
    let auth_conf =
        String::from_utf8(d.auth_conf.data.as_ref().unwrap()[AUTH_CONF_KEY].0.clone()).unwrap();
    Pod {
        sidecar,
        secrets: vec![generated_auth_secret(&set, &password), d.auth_conf],
        auth_conf,
    }
}

/// The sidecar's environment, Secret references resolved, with the server's and its own
/// addresses moved to this test's ports.
fn environment(
    pod: &Pod,
    pod_dir: &std::path::Path,
    server_port: u16,
    web_port: u16,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in pod.sidecar.env.as_ref().unwrap() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let key = from.secret_key_ref.as_ref().expect("a Secret reference");
                let secret = pod
                    .secrets
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(key.name.as_str()))
                    .unwrap_or_else(|| panic!("{} names a Secret the operator makes", e.name));
                String::from_utf8(secret.data.as_ref().unwrap()[&key.key].0.clone()).unwrap()
            }
            _ => panic!("{} has no value", e.name),
        };
        env.insert(e.name.clone(), value);
    }
    assert_eq!(
        env["REDIS_ADDR"], "redis://localhost:6379",
        "the server's port"
    );
    env.insert(
        "REDIS_ADDR".into(),
        format!("redis://localhost:{server_port}"),
    );
    // The mounted auth-conf Secret: the same file, keyed by this test's address.
    let file = env["REDIS_PASSWORD_FILE"].clone();
    let key = file.rsplit('/').next().unwrap();
    let auth_conf = pod
        .secrets
        .iter()
        .find(|s| s.data.as_ref().unwrap().contains_key(key))
        .expect("the password file is a key of a Secret the operator makes");
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&auth_conf.data.as_ref().unwrap()[key].0).unwrap();
    let password = &map["redis://localhost:6379"];
    let local = pod_dir.join(key);
    std::fs::write(
        &local,
        serde_json::json!({ format!("redis://localhost:{server_port}"): password }).to_string(),
    )
    .unwrap();
    env.insert("REDIS_PASSWORD_FILE".into(), local.display().to_string());
    let port = pod.sidecar.ports.as_ref().unwrap()[0].container_port;
    assert_eq!(env["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"], format!(":{port}"));
    env.insert(
        "REDIS_EXPORTER_WEB_LISTEN_ADDRESS".into(),
        format!("127.0.0.1:{web_port}"),
    );
    env
}

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Scrapes the server on `server_port` through the sidecar's configuration: the series
/// names, and the text.
fn scrape(
    exporter: &std::path::Path,
    pod: &Pod,
    pod_dir: &std::path::Path,
    server_port: u16,
) -> (BTreeSet<String>, String) {
    let web = free_port();
    let child = Command::new(exporter)
        .env_clear()
        .envs(environment(pod, pod_dir, server_port, web))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Exporter(child);
    let text = poll("the exporter to answer", Duration::from_secs(20), || {
        get(web).filter(|t| t.contains("redis_up"))
    });
    let names = text
        .lines()
        .filter(|l| l.starts_with("redis_"))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    (names, text)
}

#[test]
fn the_sidecar_exports_from_tandem_every_series_it_exports_from_redis() {
    let Some(exporter) = which("prometheus-redis-exporter") else {
        tandem_testkit::skip_or_fail(
            "prometheus-redis-exporter not installed (apt-get install prometheus-redis-exporter)",
        );
        return;
    };
    let pod = pod();
    let dir = std::env::temp_dir().join(format!("tandem-exporter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("auth.conf");
    std::fs::write(&auth, &pod.auth_conf).unwrap();
    let include = ["--include", auth.to_str().unwrap()];

    // The operator binary's embedded server (`tandem-operator server ...`), as local mode runs.
    let tandem = Launch::tandem(env!("CARGO_BIN_EXE_tandem-operator"))
        .wrapped_in(&["sh", "-c", "exec \"$0\" server \"$@\""])
        .args(&include)
        .start();
    let (ours, text) = scrape(&exporter, &pod, &dir, tandem.port);
    assert!(text.contains("\nredis_up 1\n"), "{text}");
    assert!(
        text.contains("redis_exporter_last_scrape_error{err=\"\"} 0"),
        "{text}"
    );
    assert!(
        ours.contains("redis_config_maxmemory"),
        "CONFIG reached by its renamed name: {ours:?}"
    );

    let Some(redis) = tandem_testkit::start_redis(&include) else {
        return;
    };
    let (theirs, _) = scrape(&exporter, &pod, &dir, redis.port);
    eprintln!(
        "redis_exporter series: {} from tandem-server, {} from Redis 7.0",
        ours.len(),
        theirs.len()
    );
    let missing: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        missing.is_empty(),
        "series from Redis 7.0 only: {missing:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
