//! Configuration against real Redis 7.0: every directive CONFIG GET * lists, with the same
//! default, and the redis.conf Debian's redis-server ships loading unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

/// CONFIG GET * as a map.
fn all_directives(server: &common::ServerGuard) -> BTreeMap<String, String> {
    let mut c = server.con();
    let pairs: Vec<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*")
        .query(&mut c)
        .unwrap();
    pairs.into_iter().collect()
}

/// Tandem's own directives (docs/configuration.md), which Redis 7.0 does not list.
const TANDEM_ONLY: &[&str] = &["sentinel-port", "sentinel-master-name"];

/// What the harness or the machine sets differently for the two servers.
const LOCAL: &[&str] = &[
    "port",
    "dir",
    // Redis's build (jemalloc background thread, daemonize defaults) and the harness.
    "enable-debug-command",
];

#[test]
fn config_get_lists_what_redis_lists_with_its_defaults() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let theirs = all_directives(&redis);
    let ours = all_directives(&tandem);
    let missing: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "directives Redis 7.0 has that tandem-server lacks: {missing:?}"
    );
    let extra: Vec<&String> = ours
        .keys()
        .filter(|k| !theirs.contains_key(*k) && !TANDEM_ONLY.contains(&k.as_str()))
        .collect();
    for own in TANDEM_ONLY {
        assert!(ours.contains_key(*own), "{own} listed by CONFIG GET *");
    }
    assert!(
        extra.is_empty(),
        "directives tandem-server lists that Redis 7.0 does not: {extra:?}"
    );
    let differ: Vec<String> = theirs
        .iter()
        .filter(|(k, v)| !LOCAL.contains(&k.as_str()) && ours.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: redis {v:?}, tandem {:?}", ours[k]))
        .collect();
    assert!(differ.is_empty(), "defaults differ:\n{}", differ.join("\n"));
}

#[test]
fn config_set_validates_accepted_directives_as_redis_does() {
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let tandem = common::start_tandem(&[]);
    let cases: &[&[&str]] = &[
        &["activerehashing", "no"],
        &["activerehashing", "maybe"],
        &["list-compress-depth", "3"],
        &["list-compress-depth", "-1"],
        &["active-expire-effort", "11"],
        &["stream-node-max-bytes", "8kb"],
        &["oom-score-adj", "relative"],
        &["oom-score-adj", "sometimes"],
        &["oom-score-adj-values", "0 100 2001"],
        &["oom-score-adj-values", "0 100"],
        &["oom-score-adj-values", "0 100 900"],
        &["latency-tracking-info-percentiles", "50 99.99 100"],
        &["latency-tracking-info-percentiles", "50 101"],
        &["latency-tracking-info-percentiles", ""],
        &["shutdown-on-sigterm", "save now"],
        &["shutdown-on-sigterm", "save nosave"],
        &["shutdown-on-sigint", "default"],
        &["tls-port", "70000"],
        &["tcp-backlog", "10"],
        &["cluster-enabled", "yes"],
        &["slave-lazy-flush", "yes"],
        &["hash-max-ziplist-value", "128"],
        &["tracking-table-max-keys", "5"],
    ];
    let answer = |server: &common::ServerGuard, case: &[&str]| {
        let mut c = server.connect();
        let mut set = vec!["CONFIG", "SET"];
        set.extend_from_slice(case);
        let reply = c.cmd(&set);
        let get = c.cmd(&["CONFIG", "GET", case[0]]);
        (
            String::from_utf8_lossy(&reply).into_owned(),
            String::from_utf8_lossy(&get).into_owned(),
        )
    };
    for case in cases {
        assert_eq!(
            answer(&tandem, case),
            answer(&redis, case),
            "CONFIG SET {case:?}"
        );
    }
}

/// The redis.conf of Debian's redis-server package (Redis's own, with Debian's paths):
/// every directive in it is accepted.
#[test]
fn debians_redis_conf_loads() {
    let path = "/etc/redis/redis.conf";
    let Ok(text) = std::fs::read_to_string(path) else {
        common::skip_or_fail(&format!(
            "{path} not readable (apt-get install redis-server)"
        ));
        return;
    };
    let mut config = tandem_server::config::Config::default();
    config.apply_text(&text).unwrap();
    assert_eq!(config.databases, 16);
    assert!(config.accepted.contains_key("list-compress-depth"));
}
