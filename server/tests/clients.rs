//! Real clients against tandem-server: the `redis` crate (sync, async, RESP3, pipelines,
//! transactions) and `redis-cli`, whose printed output must equal what it prints for a real
//! redis-server.

#![allow(clippy::unwrap_used)]

mod common;

use common::start_tandem;
use redis::{Commands, RedisResult, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

#[test]
fn redis_crate_strings_and_keys() -> RedisResult<()> {
    let t = start_tandem(&[]);
    let client = redis::Client::open(url(t.port))?;
    let mut con = client.get_connection()?;
    let pong: String = redis::cmd("PING").query(&mut con)?;
    assert_eq!(pong, "PONG");
    let () = con.set("k", "v")?;
    assert_eq!(con.get::<_, String>("k")?, "v");
    assert_eq!(con.get::<_, Option<String>>("missing")?, None);
    let bin: Vec<u8> = vec![0, 1, 2, 255, b'\r', b'\n'];
    let () = con.set("bin", &bin)?;
    assert_eq!(con.get::<_, Vec<u8>>("bin")?, bin);
    let () = con.set_ex("ttl", "v", 100)?;
    let ttl: i64 = con.ttl("ttl")?;
    assert!((99..=100).contains(&ttl));
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("GET")
        .query(&mut con)?;
    assert_eq!(old.as_deref(), Some("v"));
    let nx: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("x")
        .arg("NX")
        .query(&mut con)?;
    assert_eq!(nx, None);
    let () = con.mset(&[("a", "1"), ("b", "2")])?;
    let vals: Vec<Option<String>> = con.mget(&["a", "b", "c"])?;
    assert_eq!(vals, vec![Some("1".into()), Some("2".into()), None]);
    assert_eq!(con.incr::<_, _, i64>("a", 10)?, 11);
    assert_eq!(con.decr::<_, _, i64>("a", 1)?, 10);
    let f: f64 = con.incr("f", 0.1)?;
    assert!((f - 0.1).abs() < 1e-12);
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.2")
        .query(&mut con)?;
    assert_eq!(f, "0.3");
    assert_eq!(con.append::<_, _, i64>("s", "Hello")?, 5);
    assert_eq!(con.append::<_, _, i64>("s", " World")?, 11);
    assert_eq!(con.strlen::<_, i64>("s")?, 11);
    assert_eq!(con.getrange::<_, String>("s", -5, -1)?, "World");
    assert_eq!(con.setrange::<_, _, i64>("s", 6, "Redis")?, 11);
    assert_eq!(con.get::<_, String>("s")?, "Hello Redis");
    assert!(!con.setbit::<_, bool>("bits", 7, true)?);
    assert!(con.getbit::<_, bool>("bits", 7)?);
    assert_eq!(con.bitcount::<_, i64>("bits")?, 1);
    assert_eq!(con.exists::<_, i64>(&["a", "b", "nope"])?, 2);
    assert!(con.expire::<_, bool>("a", 100)?);
    assert!(con.persist::<_, bool>("a")?);
    assert_eq!(con.ttl::<_, i64>("a")?, -1);
    let () = con.rename("a", "a2")?;
    assert_eq!(
        redis::cmd("TYPE").arg("a2").query::<String>(&mut con)?,
        "string"
    );
    let mut keys: Vec<String> = con.keys("a*")?;
    keys.sort();
    assert_eq!(keys, vec!["a2"]);
    let mut scanned: Vec<String> = con
        .scan_match::<_, String>("*")?
        .collect::<RedisResult<Vec<String>>>()?;
    scanned.sort();
    let mut all: Vec<String> = con.keys("*")?;
    all.sort();
    assert_eq!(scanned, all);
    assert_eq!(con.del::<_, i64>(&["a2", "b", "nope"])?, 2);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con)?;
    assert_eq!(dbsize, all.len() as i64 - 2);
    let err = con.incr::<_, _, i64>("s", 1).expect_err("not an integer");
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
    );
    assert!(
        err.to_string()
            .contains("value is not an integer or out of range"),
        "{err}"
    );
    Ok(())
}

#[test]
fn redis_crate_pipelines_transactions_and_dbs() -> RedisResult<()> {
    let t = start_tandem(&[]);
    let client = redis::Client::open(format!("{}3", url(t.port)))?;
    let mut con = client.get_connection()?;
    let (a, b): (i64, String) = redis::pipe()
        .atomic()
        .set("x", 41)
        .ignore()
        .incr("x", 1)
        .get("x")
        .query(&mut con)?;
    assert_eq!((a, b.as_str()), (42, "42"));
    let v: i64 = redis::transaction(&mut con, &["x"], |con, pipe| {
        let cur: i64 = con.get("x")?;
        pipe.set("x", cur * 2).ignore().get("x").query(con)
    })
    .map(|(v,): (i64,)| v)?;
    assert_eq!(v, 84);
    // The database in the URL was selected: db 0 does not see the key.
    let mut zero = redis::Client::open(url(t.port))?.get_connection()?;
    assert_eq!(zero.get::<_, Option<i64>>("x")?, None);
    let name: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query(&mut con)?;
    let () = name;
    let got: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut con)?;
    assert_eq!(got, "tester");
    let cfg: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query(&mut con)?;
    assert_eq!(
        cfg.get("maxmemory-policy").map(String::as_str),
        Some("noeviction")
    );
    Ok(())
}

#[test]
fn redis_crate_resp3_and_auth() -> RedisResult<()> {
    let t = start_tandem(&["--requirepass", "secret"]);
    let anonymous = redis::Client::open(url(t.port))?.get_connection();
    let denied = anonymous.and_then(|mut c| redis::cmd("GET").arg("k").query::<Value>(&mut c));
    assert!(denied.is_err(), "commands need AUTH");
    let client = redis::Client::open(format!(
        "redis://:secret@127.0.0.1:{}/?protocol=resp3",
        t.port
    ))?;
    let mut con = client.get_connection()?;
    let () = con.set("k", "v")?;
    let cfg: Value = redis::cmd("CONFIG").arg("GET").arg("hz").query(&mut con)?;
    assert!(matches!(cfg, Value::Map(_)), "RESP3 map, got {cfg:?}");
    let missing: Value = redis::cmd("GET").arg("nope").query(&mut con)?;
    assert_eq!(missing, Value::Nil);
    let info: String = redis::cmd("INFO").arg("server").query(&mut con)?;
    assert!(info.contains("redis_version:7.0.15"), "{info}");
    Ok(())
}

#[test]
fn redis_crate_async_multiplexed() -> RedisResult<()> {
    let t = start_tandem(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = redis::Client::open(url(t.port))?;
        let con = client.get_multiplexed_async_connection().await?;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let mut con = con.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("async:{i}");
                let mut pipe = redis::pipe();
                for _ in 0..50 {
                    pipe.incr(&key, 1).ignore();
                }
                pipe.get(&key);
                let (v,): (i64,) = pipe.query_async(&mut con).await?;
                RedisResult::Ok(v)
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task")?, 50);
        }
        let mut con = con.clone();
        let n: i64 = redis::cmd("DBSIZE").query_async(&mut con).await?;
        assert_eq!(n, 20);
        Ok(())
    })
}

/// Runs redis-cli against `port` with `input` on stdin, returning what it printed.
fn redis_cli(bin: &std::path::Path, port: u16, extra: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin)
        .arg("-p")
        .arg(port.to_string())
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("redis-cli output");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn redis_cli_prints_the_same() {
    let Some(cli) = common::real_tool("redis-cli") else {
        return;
    };
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let t = start_tandem(&[]);
    let script = "PING\nSET k \"hello world\"\nGET k\nMSET a 1 b 2\nMGET a b missing\nINCR a\nINCRBYFLOAT f 0.1\nINCR k\nEXPIRE k 100\nTTL k\nTYPE k\nEXISTS a b c\nSET bin \"\\x00\\xff\"\nGET bin\nGETRANGE k 0 4\nSCAN 0 MATCH nomatch* COUNT 1000\nCONFIG GET maxmemory\nOBJECT ENCODING a\nSELECT 1\nDBSIZE\nNOSUCH cmd\nDEL a b k\n";
    for extra in [&[][..], &["-3"][..], &["--no-raw"][..], &["--raw"][..]] {
        let want = redis_cli(&cli, redis.port, extra, script);
        let got = redis_cli(&cli, t.port, extra, script);
        assert_eq!(got, want, "redis-cli {extra:?} output differs");
        for c in [redis.port, t.port] {
            redis_cli(&cli, c, &[], "FLUSHALL\n");
        }
    }
}

/// Runs the redis-py suite (`tests/py`) against this build's binary. Skipped when python3,
/// pytest or redis-py is missing, unless real dependencies are required.
#[test]
fn redis_py_suite() {
    let Some(python) = common::real_tool("python3") else {
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import pytest, redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run python3");
    if !probe.success() {
        common::skip_or_fail("pytest or redis-py not installed (pip install pytest redis)");
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", dir])
        .env("TANDEM_SERVER_BIN", env!("CARGO_BIN_EXE_tandem-server"))
        .env("TANDEM_REQUIRE_REAL_DEPS", "1")
        .output()
        .expect("run pytest");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-py suite failed:\n{text}");
}

/// Runs the ioredis suite (`tests/node`, `node --test`) against this build's binary, the port
/// in `TANDEM_PORT`. Skipped when node or the suite's ioredis is missing (install it with
/// `npm ci --prefix server/tests/node`), unless real dependencies are required.
#[test]
fn node_ioredis_suite() {
    let Some(node) = common::real_tool("node") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/ioredis/package.json").is_file() {
        common::skip_or_fail(
            "ioredis not installed for tests/node (npm ci --prefix server/tests/node)",
        );
        return;
    }
    let t = start_tandem(&[]);
    let out = Command::new(&node)
        .arg("--test")
        .current_dir(&dir)
        .env("TANDEM_PORT", t.port.to_string())
        .output()
        .expect("run node --test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ioredis suite failed:\n{text}");
    // node --test passes when it finds no test files: make sure the suite ran.
    assert!(
        text.contains("# pass ") && !text.contains("# pass 0\n"),
        "no ioredis tests ran:\n{text}"
    );
}

/// redis-cli's keyspace tools and MONITOR give the same report on both servers for the same
/// data: `--bigkeys` (its summary; the progress lines follow SCAN's order), `--memkeys` and
/// `--hotkeys` (the same keys, with sizes and LFU counters that are each server's own),
/// `--latency` (one line of four numbers when not on a terminal) and `MONITOR` (the same
/// lines once the clock and the client's port are taken out).
#[test]
fn redis_cli_tools_report_the_same() {
    let Some(cli) = common::real_tool("redis-cli") else {
        return;
    };
    let Some(redis) = common::start_redis(&[]) else {
        return;
    };
    let t = start_tandem(&[]);
    let data = "MSET s1 aaaa s22 bbbbbbbbb\nRPUSH l1 a b c\nRPUSH l2 a\nSADD set1 a b c d e\nHSET h1 f v g w\nZADD z1 1 a 2 b\nXADD x1 1-1 f v\nGET s1\nGET s1\n";
    let summary = |text: &str| -> String {
        text.split("-------- summary -------")
            .nth(1)
            .unwrap_or_else(|| panic!("no summary in {text}"))
            .to_string()
    };
    let numbers_out = |text: &str| -> String {
        text.split_inclusive(|c: char| !c.is_ascii_digit() && c != '.')
            .map(|w| {
                let digits = w.trim_end_matches(|c: char| !c.is_ascii_digit() && c != '.');
                if digits.is_empty() {
                    w.to_string()
                } else {
                    w.replacen(digits, "N", 1)
                }
            })
            .collect()
    };
    for port in [redis.port, t.port] {
        redis_cli(&cli, port, &[], "CONFIG SET maxmemory-policy allkeys-lfu\n");
        redis_cli(&cli, port, &[], data);
    }
    let report = |port: u16, tool: &str| redis_cli(&cli, port, &[tool], "");
    assert_eq!(
        summary(&report(t.port, "--bigkeys")),
        summary(&report(redis.port, "--bigkeys")),
        "--bigkeys"
    );
    // Keys with equal counters are listed in SCAN's order: compare the lines as a set.
    let lines = |text: String| -> Vec<String> {
        let mut l: Vec<String> = text.lines().map(str::to_string).collect();
        l.sort();
        l
    };
    for tool in ["--memkeys", "--hotkeys"] {
        assert_eq!(
            lines(numbers_out(&summary(&report(t.port, tool)))),
            lines(numbers_out(&summary(&report(redis.port, tool)))),
            "{tool}"
        );
    }
    for port in [redis.port, t.port] {
        let line = report(port, "--latency");
        let fields: Vec<f64> = line
            .split_whitespace()
            .map(|f| {
                f.parse()
                    .unwrap_or_else(|_| panic!("--latency printed {line:?}"))
            })
            .collect();
        assert_eq!(fields.len(), 4, "--latency printed {line:?}");
    }
    let monitor = |port: u16| -> Vec<String> {
        let mut m = Command::new(&cli)
            .args(["-p", &port.to_string(), "MONITOR"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli MONITOR");
        let mut out = std::io::BufReader::new(m.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("OK line");
        redis_cli(
            &cli,
            port,
            &[],
            "SET k \"a b\"\nSELECT 2\nHSET h f \"\\x00\"\nEVAL \"return redis.call('GET', KEYS[1])\" 1 k\nPING\n",
        );
        let mut lines = Vec::new();
        while lines.len() < 6 {
            let mut l = String::new();
            if std::io::BufRead::read_line(&mut out, &mut l).expect("a line") == 0 {
                break;
            }
            // `1702000000.123456 [0 127.0.0.1:40000] "SET" ...`: the clock and the port vary.
            let rest = l.split_once(' ').map_or(l.as_str(), |(_, r)| r);
            let normal = match rest.split_once(':') {
                Some((head, tail)) => {
                    let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
                    format!("{head}:PORT{tail}")
                }
                None => rest.to_string(),
            };
            lines.push(normal.trim_end().to_string());
        }
        let _ = m.kill();
        let _ = m.wait();
        lines
    };
    let (want, got) = (monitor(redis.port), monitor(t.port));
    assert_eq!(want.len(), 6, "{want:?}");
    assert_eq!(got, want);
}
