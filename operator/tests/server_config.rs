//! The config files the operator writes are accepted by tandem-server's own parser, and every
//! tuned directive can be changed live with CONFIG SET (DESIGN invariant 1 needs both: every
//! node starts with the tuning and gets changes without a restart). No network.

use tandem_operator::crd::RedisReplicaSet;
use tandem_operator::policy::{Observed, plan};
use tandem_operator::renames::CommandNames;
use tandem_operator::resources::secret::{AUTH_CONF_KEY, auth_conf, auth_conf_path};
use tandem_operator::resources::{Password, config};
use tandem_operator::validate::validate;
use tandem_server::cmd::names::{lookup, resolve};
use tandem_server::config::Config;

const SPECS: [&str; 3] = [
    "replicas: 3\n  datasetSizeHint: 20Gi\n",
    "replicas: 2\n  datasetSizeHint: 100Mi\n  persistence: { enabled: true, size: 1Gi }\n",
    "replicas: 5\n  datasetSizeHint: 2Gi\n  serverConfig: { maxmemory: 3gb, maxmemory-policy: allkeys-lru, notify-keyspace-events: '', save: '900 1', loglevel: warning, hz: '20', databases: '4', maxclients: '5000', timeout: '300', tcp-keepalive: '60', maxmemory-samples: '10', slowlog-log-slower-than: '5000', slowlog-max-len: '256' }\n  replication: { mode: Disk, replTimeoutSeconds: 600, clientOutputBufferLimit: { hard: 512Mi, soft: 256Mi, softSeconds: 60 } }\n",
];

fn rrs(spec: &str) -> RedisReplicaSet {
    serde_yaml::from_str(&format!(
        "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{ name: cache, namespace: ns1, uid: u1 }}\nspec:\n  {spec}"
    ))
    .expect("test resource")
}

fn value(config: &Config, name: &str) -> String {
    config
        .get_matching(name.as_bytes())
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("tandem-server has no directive {name}"))
}

#[test]
fn tandem_server_parses_every_generated_line() {
    for spec in SPECS {
        let resource = rrs(spec);
        let set = validate(&resource, Observed::default()).expect("valid");
        let plan = plan(&set.policy_input);
        let conf = config::render(&set, &plan);

        // The include line names the auth file; that file is parsed on its own below.
        let (includes, lines): (Vec<&str>, Vec<&str>) =
            conf.lines().partition(|l| l.starts_with("include "));
        assert_eq!(includes, [format!("include {}", auth_conf_path())]);
        let mut server = Config::default();
        server
            .apply_text(&lines.join("\n"))
            .unwrap_or_else(|e| panic!("tandem-server rejects the config for {spec}: {e}\n{conf}"));

        let names = CommandNames::generate();
        let secret = auth_conf(&set, &Password::new("pa ss\"word".to_owned()), &names);
        let auth =
            String::from_utf8(secret.data.expect("data")[AUTH_CONF_KEY].0.clone()).expect("utf8");
        server
            .apply_text(&auth)
            .unwrap_or_else(|e| panic!("tandem-server rejects auth.conf: {e}"));
        assert_eq!(value(&server, "requirepass"), "pa ss\"word");
        // Invariant 2: every pod starts as a replica (of itself), never as a master.
        assert_eq!(value(&server, "replicaof"), "127.0.0.1 6379");
        assert_eq!(value(&server, "masterauth"), "pa ss\"word");
        let renamed = resolve(&server.rename_commands)
            .unwrap_or_else(|e| panic!("tandem-server refuses the renames: {e}"));
        assert!(lookup(&renamed, b"config").is_none(), "CONFIG renamed");
        assert!(lookup(&renamed, b"debug").is_none(), "DEBUG removed");
        assert!(lookup(&renamed, b"slaveof").is_none(), "SLAVEOF removed");
        for (secret, command) in [
            (names.config(), "config"),
            (names.replicaof(), "replicaof"),
            (names.shutdown(), "shutdown"),
        ] {
            assert_eq!(
                lookup(&renamed, secret.as_bytes()).map(|s| s.name),
                Some(command)
            );
        }

        for (name, wanted) in plan.directives() {
            let got = value(&server, name);
            if name == "client-output-buffer-limit" {
                // CONFIG GET reports the class as `slave`, as Redis 7.0 does.
                let wanted = wanted.replacen("replica", "slave", 1);
                assert!(got.contains(&wanted), "{name}: {got} lacks {wanted}");
            } else {
                assert_eq!(got, wanted, "{name} for {spec}");
            }
        }
    }
}

#[test]
fn every_tuned_directive_is_live_settable() {
    let resource = rrs(SPECS[0]);
    let set = validate(&resource, Observed::default()).expect("valid");
    let mut server = Config::default();
    for (name, value) in plan(&set.policy_input).directives() {
        server
            .set_live(name, &value)
            .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
    }
}

/// The largest inputs validation accepts still give a config tandem-server starts with, and the
/// password comes back byte for byte whatever it holds: no line of auth.conf can be turned
/// into a second directive.
#[test]
fn hostile_values_stay_inside_their_directive() {
    for spec in [
        "replicas: 32\n  datasetSizeHint: 1Pi\n",
        "replicas: 1\n  datasetSizeHint: 0\n",
        "replicas: 2\n  datasetSizeHint: 1Pi\n  replication: { replTimeoutSeconds: 604800, backlogSize: 1Pi, clientOutputBufferLimit: { hard: 1Pi, soft: 1Pi, softSeconds: 4294967295 } }\n",
    ] {
        let resource = rrs(spec);
        let set = validate(&resource, Observed::default()).expect("valid");
        let conf = config::render(&set, &plan(&set.policy_input));
        let lines: Vec<&str> = conf
            .lines()
            .filter(|l| !l.starts_with("include "))
            .collect();
        Config::default()
            .apply_text(&lines.join("\n"))
            .unwrap_or_else(|e| panic!("tandem-server rejects the config for {spec}: {e}\n{conf}"));
    }
    let set_resource = rrs(SPECS[0]);
    let set = validate(&set_resource, Observed::default()).expect("valid");
    for password in [
        "line\nrename-command CONFIG \"\"",
        "cr\rtab\tnul\0del\u{7f}",
        "quote\" backslash\\ end\\",
        "ünïcödé pässwörd",
        "  spaces  ",
    ] {
        let secret = auth_conf(
            &set,
            &Password::new(password.to_owned()),
            &CommandNames::plain(),
        );
        let auth =
            String::from_utf8(secret.data.expect("data")[AUTH_CONF_KEY].0.clone()).expect("utf8");
        assert_eq!(auth.lines().count(), 2, "{auth:?}");
        let mut server = Config::default();
        server
            .apply_text(&auth)
            .unwrap_or_else(|e| panic!("tandem-server rejects auth.conf {auth:?}: {e}"));
        assert_eq!(value(&server, "requirepass"), password);
        assert_eq!(value(&server, "masterauth"), password);
        assert!(server.rename_commands.is_empty(), "no rename slipped in");
    }
}
