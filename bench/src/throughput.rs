//! `tandem-bench throughput`: redis-benchmark's SET and GET, and named command cases (a small
//! Lua script by EVAL and EVALSHA, ...), against each server, pinned, in alternating rounds;
//! the median of the rounds is reported.

use crate::servers::{self, Kind, Server};
use crate::{plot, report};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::path::Path;
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: crate::Common,
    /// Rounds; the server order alternates between rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Requests per redis-benchmark run at pipeline 1 (deeper pipelines get proportionally more).
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// Pipeline depths.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pipelines: Vec<u32>,
    /// redis-benchmark tests.
    #[arg(long, value_delimiter = ',', default_value = "set,get")]
    tests: Vec<String>,
    /// Command cases, by name (see `CASES`: each prepares the server, then redis-benchmark
    /// sends one command line); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "eval,evalsha")]
    commands: Vec<String>,
    /// Random keys drawn from this many (redis-benchmark -r).
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    /// Render the comparison chart to this PNG.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// Directives both servers start with, as one string of `--name value` words (for
    /// example `--appendonly yes --appendfsync always`, measured with the AOF on).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    server_args: String,
    /// redis-benchmark connects over TLS: both servers get a TLS port with certificates made
    /// by the openssl command (`tls.rs`).
    #[arg(long)]
    tls: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct Record {
    pub server: Kind,
    pub test: String,
    pub pipeline: u32,
    pub ops_per_sec: f64,
    pub rounds: Vec<f64>,
    pub clients: u32,
    /// The `--server-args` both servers ran with.
    pub server_args: String,
    /// Measured over TLS (`--tls`).
    pub tls: bool,
}

/// The script of the `eval` and `evalsha` cases: what rate limiters and counters send.
const SCRIPT: &str =
    "local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 60) return n";

/// The stream of the `xadd` case: three small fields, capped as a long-running producer would.
const XADD: &[&str] = &[
    "XADD",
    "bench:events",
    "MAXLEN",
    "~",
    "100000",
    "*",
    "user",
    "u:__rand_int__",
    "action",
    "click",
    "item",
    "i:42",
];

/// Entries the `xreadgroup` case prepares: more than its requests at any pipeline depth, so
/// every call delivers one.
const QUEUE_ENTRIES: u64 = 2_000_000;

/// What one redis-benchmark run measures.
enum Workload<'a> {
    /// Its built-in tests (`-t set,get`).
    Tests(&'a [String]),
    /// One command, reported under this name.
    Command(&'a str, Vec<String>),
}

/// A command case: its name (for `--commands` and the report) and what prepares a freshly
/// started server and returns the command line redis-benchmark repeats (`__rand_int__` is
/// replaced by a random number below `--keyspace`).
struct Case {
    name: &'static str,
    prepare: fn(port: u16) -> anyhow::Result<Vec<String>>,
}

/// Every command case. Keys are not `key:...`: redis-benchmark's own SET test fills those with
/// strings other commands would refuse.
const CASES: &[Case] = &[
    Case {
        name: "eval",
        prepare: |_| Ok(argv(&["EVAL", SCRIPT, "1", "counter:__rand_int__"])),
    },
    Case {
        name: "evalsha",
        prepare: |port| {
            let sha = redis_cli(port, &["SCRIPT", "LOAD", SCRIPT])?;
            if sha.len() != 40 {
                bail!("SCRIPT LOAD answered {sha:?}");
            }
            Ok(argv(&["EVALSHA", &sha, "1", "counter:__rand_int__"]))
        },
    },
    Case {
        name: "xadd",
        prepare: |_| Ok(argv(XADD)),
    },
    Case {
        name: "xreadgroup",
        prepare: |port| {
            let fill = "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'user', \
                        'u:' .. i, 'action', 'click', 'item', 'i:42') end \
                        return redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '0')";
            let ok = redis_cli(
                port,
                &["EVAL", fill, "1", "bench:queue", &QUEUE_ENTRIES.to_string()],
            )?;
            if ok != "OK" {
                bail!("filling the queue answered {ok:?}");
            }
            Ok(argv(&[
                "XREADGROUP",
                "GROUP",
                "workers",
                "consumer",
                "COUNT",
                "1",
                "STREAMS",
                "bench:queue",
                ">",
            ]))
        },
    },
    Case {
        name: "geosearch",
        prepare: |port| {
            let n = GEO_POINTS.to_string();
            let loaded = redis_cli(port, &["EVAL", GEO_LOAD, "1", GEO_KEY, &n])?;
            if loaded != n {
                bail!("loading {n} points answered {loaded:?}");
            }
            Ok(argv(&[
                "GEOSEARCH",
                GEO_KEY,
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "COUNT",
                "10",
            ]))
        },
    },
    Case {
        name: "pfadd",
        // One counter of distinct visitors: dense after its first few thousand elements.
        prepare: |_| Ok(argv(&["PFADD", "visitors", "user:__rand_int__"])),
    },
    Case {
        name: "pfcount",
        // The counter read between additions: the cached cardinality.
        prepare: |port| {
            let users: Vec<String> = (0..10_000).map(|i| format!("user:{i}")).collect();
            let mut args = vec!["PFADD", "visitors"];
            args.extend(users.iter().map(String::as_str));
            redis_cli(port, &args)?;
            Ok(argv(&["PFCOUNT", "visitors"]))
        },
    },
];

/// The `geosearch` case's key and its number of points: a regional search (22 points lie
/// within 200 km of its centre) in an index spread over the whole map.
const GEO_KEY: &str = "geo:points";
const GEO_POINTS: u32 = 100_000;

/// Loads ARGV[1] points spread over the map on a lattice (the same points on every server,
/// no random source involved) and returns how many the key holds.
const GEO_LOAD: &str = "for i = 1, tonumber(ARGV[1]) do \
     redis.call('GEOADD', KEYS[1], i * 7919 % 36000 / 100 - 180, i * 104729 % 17000 / 100 - 85, 'p' .. i) \
     end return redis.call('ZCARD', KEYS[1])";

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

/// Runs one command with redis-cli and returns its trimmed output.
fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .context("failed to run redis-cli (apt-get install redis-tools)")?;
    if !out.status.success() {
        bail!(
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The case called `name`, or an error listing the known ones.
fn case(name: &str) -> anyhow::Result<&'static Case> {
    CASES.iter().find(|c| c.name == name).with_context(|| {
        let known: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        format!(
            "unknown command case {name:?} (known: {})",
            known.join(", ")
        )
    })
}

/// Runs redis-benchmark once (with `client_args`: over TLS) and returns (test, requests per
/// second) pairs.
fn bench_once(
    a: &Args,
    port: u16,
    client_args: &[String],
    pipeline: u32,
    work: &Workload<'_>,
) -> anyhow::Result<Vec<(String, f64)>> {
    let requests = a.requests * u64::from(pipeline.clamp(1, 8));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &a.common.client_core.to_string(), "redis-benchmark"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(client_args)
        .args(["-c", &a.clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "-r", &a.keyspace.to_string()])
        .arg("--csv");
    match work {
        Workload::Tests(tests) => cmd.args(["-t", &tests.join(",")]),
        Workload::Command(_, argv) => cmd.args(argv),
    };
    let out = cmd
        .output()
        .context("failed to run redis-benchmark (apt-get install redis-tools)")?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut results = Vec::new();
    for line in text.lines().skip(1) {
        // Quoted fields: a custom command's name may hold commas.
        let cols: Vec<&str> = line.trim_matches('"').split("\",\"").collect();
        if let (Some(test), Some(rps)) = (
            cols.first(),
            cols.get(1).and_then(|r| r.parse::<f64>().ok()),
        ) {
            let test = match work {
                Workload::Tests(_) => test.to_ascii_lowercase(),
                Workload::Command(name, _) => (*name).to_string(),
            };
            results.push((test, rps));
        }
    }
    if results.is_empty() {
        bail!("redis-benchmark printed no results: {text}");
    }
    Ok(results)
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    // `--tests ""` or `--commands ""` turns a kind of workload off.
    let tests: Vec<String> = a.tests.iter().filter(|t| !t.is_empty()).cloned().collect();
    let cases = a
        .commands
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| case(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tandem = servers::tandem_bin(a.common.tandem_bin.as_deref())?;
    let certs = a.tls.then(crate::tls::Certs::make).transpose()?;
    let client_args = certs.as_ref().map(|c| c.client_args()).unwrap_or_default();
    let mut samples: Vec<Record> = Vec::new();
    for round in 0..a.rounds {
        let mut order = a.common.servers.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            let bin = match kind {
                Kind::Tandem => tandem.clone(),
                Kind::Redis => a.common.redis_bin.clone(),
            };
            let tls_port = tandem_testkit::free_port();
            let tls_args = certs.as_ref().map(|c| c.server_args(tls_port));
            let mut extra: Vec<&str> = a.server_args.split_whitespace().collect();
            extra.extend(tls_args.iter().flatten().map(String::as_str));
            let server = Server::start(kind, &bin, a.common.server_core, &extra)?;
            let port = if a.tls { tls_port } else { server.port };
            let mut work = Vec::new();
            if !tests.is_empty() {
                work.push(Workload::Tests(&tests));
            }
            for case in &cases {
                work.push(Workload::Command(case.name, (case.prepare)(server.port)?));
            }
            let runs = a
                .pipelines
                .iter()
                .flat_map(|&p| work.iter().map(move |w| (p, w)));
            for (p, w) in runs {
                for (test, rps) in bench_once(a, port, &client_args, p, w)? {
                    eprintln!(
                        "round {}/{} {:>6} {test:>4} -P {p:<3} {rps:>12.0} ops/s",
                        round + 1,
                        a.rounds,
                        kind.name()
                    );
                    match samples
                        .iter_mut()
                        .find(|r| r.server == kind && r.test == test && r.pipeline == p)
                    {
                        Some(r) => r.rounds.push(rps),
                        None => samples.push(Record {
                            server: kind,
                            test,
                            pipeline: p,
                            ops_per_sec: 0.0,
                            rounds: vec![rps],
                            clients: a.clients,
                            server_args: a.server_args.clone(),
                            tls: a.tls,
                        }),
                    }
                }
            }
        }
    }
    for r in &mut samples {
        r.ops_per_sec = report::median(&r.rounds);
    }
    let mut rows = Vec::new();
    for r in samples.iter().filter(|r| r.server == Kind::Tandem) {
        let redis = samples
            .iter()
            .find(|x| x.server == Kind::Redis && x.test == r.test && x.pipeline == r.pipeline);
        rows.push(vec![
            r.test.to_uppercase(),
            format!("-P {}", r.pipeline),
            format!("{:.0}", r.ops_per_sec),
            redis.map_or("-".into(), |x| format!("{:.0}", x.ops_per_sec)),
            redis.map_or("-".into(), |x| {
                format!("{:.2}x", r.ops_per_sec / x.ops_per_sec)
            }),
        ]);
    }
    report::table(
        &[
            "test",
            "pipeline",
            "tandem ops/s",
            "redis ops/s",
            "tandem/redis",
        ],
        &rows,
    );
    report::write_json(a.common.json.as_deref(), &samples)?;
    if let Some(png) = &a.plot {
        chart(&samples, png)?;
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

/// The throughput chart: median ops/s per (test, pipeline), one bar per server.
pub fn chart(records: &[Record], path: &Path) -> anyhow::Result<()> {
    let mut groups: Vec<(String, u32)> = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    for r in records {
        if !groups.contains(&(r.test.clone(), r.pipeline)) {
            groups.push((r.test.clone(), r.pipeline));
        }
        if !kinds.contains(&r.server) {
            kinds.push(r.server);
        }
    }
    let values = kinds
        .iter()
        .map(|&k| {
            groups
                .iter()
                .map(|(t, p)| plot::Bar {
                    lower: records
                        .iter()
                        .find(|r| r.server == k && &r.test == t && r.pipeline == *p)
                        .map_or(0.0, |r| r.ops_per_sec / 1000.0),
                    upper: 0.0,
                })
                .collect()
        })
        .collect();
    plot::render(
        path,
        "redis-benchmark throughput, tandem-server vs Redis 7.0 (higher is better)",
        &[plot::Panel {
            title: "thousand requests per second (median of rounds)".into(),
            groups: groups
                .iter()
                .map(|(t, p)| format!("{} -P {p}", t.to_uppercase()))
                .collect(),
            series: kinds.iter().map(|k| k.name().to_string()).collect(),
            values,
            parts: None,
            label: |v| format!("{v:.0}"),
        }],
    )
}
