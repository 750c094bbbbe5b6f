//! Lua scripts between real processes: a script's writes reach replicas as its effects (a
//! Redis 7.0 replica of tandem ends with the digest of a Redis that ran the scripts itself,
//! and a tandem replica of a Redis 7.0 master with the master's dataset); a script that only
//! reads sends nothing; a script past `busy-reply-threshold` lets others in (BUSY, SCRIPT
//! KILL, UNKILLABLE, SHUTDOWN NOSAVE); hostile scripts get errors and the server stays up.
//! Every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Info, ServerGuard, start_redis_server, start_tandem, wait_in_sync, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;
use tandem_testkit::redis_available;

const WAIT: Duration = Duration::from_secs(30);

fn eval(c: &mut redis::Connection, script: &str, keys: &[&str], args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap()
}

/// Scripts with writes, all deterministic, so that any server running them ends with the
/// same dataset: loops, SELECT inside the script (the caller's database does not change),
/// a failure after a write (the write stays), a rate limiter of the kind libraries send.
fn run_scripts(s: &ServerGuard) {
    let mut c = s.con();
    for i in 0..20 {
        eval(
            &mut c,
            "for i = 1, 50 do redis.call('HSET', KEYS[1], 'f' .. i, i * tonumber(ARGV[1])) end return redis.call('HLEN', KEYS[1])",
            &[&format!("h:{i}")],
            &[&i.to_string()],
        );
    }
    eval(
        &mut c,
        "redis.call('SELECT', 3) redis.call('SET', 'in3', 'x') return redis.call('LPUSH', 'l3', 'a', 'b')",
        &[],
        &[],
    );
    redis::cmd("SET")
        .arg("db0")
        .arg("still0")
        .query::<()>(&mut c)
        .unwrap();
    let failed = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], 'written') return redis.call('INCR', KEYS[1])")
        .arg(1)
        .arg("halfway")
        .query::<redis::Value>(&mut c);
    assert!(failed.is_err(), "INCR of a non-number fails: {failed:?}");
    for n in 0..30 {
        let v = eval(
            &mut c,
            "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PERSIST', KEYS[1]) end if n > tonumber(ARGV[1]) then return 0 end return 1",
            &["limiter"],
            &["25"],
        );
        assert_eq!(v, redis::Value::Int(i64::from(n < 25)), "call {n}");
    }
    eval(
        &mut c,
        "redis.call('ZADD', KEYS[1], 1, 'a', 2, 'b') redis.call('ZINCRBY', KEYS[1], 5, 'a') return redis.call('SADD', KEYS[2], 'x', 'y')",
        &["z", "s"],
        &[],
    );
}

#[test]
fn script_effects_reach_a_redis_replica_of_tandem() {
    if !redis_available() {
        return;
    }
    // No periodic PING to the replica: the offset must move only for the scripts' writes.
    let master = start_tandem(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
        "--repl-ping-replica-period",
        "3600",
    ]);
    let replica = start_redis_server(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_in_sync(&master, &replica);
    run_scripts(&master);
    wait_in_sync(&master, &replica);
    let reference = start_redis_server(&[]);
    run_scripts(&reference);
    let digest = |p: &ServerGuard| -> String {
        redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut p.con())
            .unwrap()
    };
    assert_eq!(digest(&replica), digest(&reference));

    // A script that only reads adds nothing to the stream.
    let before = master.field("replication", "master_repl_offset");
    let mut c = master.con();
    eval(
        &mut c,
        "return redis.call('HGETALL', KEYS[1])",
        &["h:1"],
        &[],
    );
    eval(&mut c, "return redis.call('GET', 'nothing')", &[], &[]);
    assert_eq!(master.field("replication", "master_repl_offset"), before);

    // redis.set_repl(REPL_NONE): the write stays on the master.
    eval(
        &mut c,
        "redis.set_repl(redis.REPL_NONE) redis.call('SET', 'local-only', '1') redis.set_repl(redis.REPL_ALL) return redis.call('SET', 'everywhere', '1')",
        &[],
        &[],
    );
    wait_in_sync(&master, &replica);
    let mut r = replica.con();
    let exists = |c: &mut redis::Connection, k: &str| -> i64 {
        redis::cmd("EXISTS").arg(k).query(c).unwrap()
    };
    assert_eq!(exists(&mut r, "everywhere"), 1);
    assert_eq!(exists(&mut r, "local-only"), 0);
    assert_eq!(exists(&mut c, "local-only"), 1);
}

/// Every key of the first databases with its type and value (members sorted).
fn dataset(s: &ServerGuard) -> BTreeMap<(u8, Vec<u8>), String> {
    let mut c = s.con();
    let mut out = BTreeMap::new();
    for db in 0..4u8 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
            let v = match t.as_str() {
                "string" => format!(
                    "{:?}",
                    redis::cmd("GET").arg(&k).query::<Vec<u8>>(&mut c).unwrap()
                ),
                "hash" => format!(
                    "{:?}",
                    redis::cmd("HGETALL")
                        .arg(&k)
                        .query::<BTreeMap<String, String>>(&mut c)
                        .unwrap()
                ),
                "list" => format!(
                    "{:?}",
                    redis::cmd("LRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<String>>(&mut c)
                        .unwrap()
                ),
                "set" => {
                    let mut v: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap();
                    v.sort();
                    format!("{v:?}")
                }
                "zset" => format!(
                    "{:?}",
                    redis::cmd("ZRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query::<Vec<String>>(&mut c)
                        .unwrap()
                ),
                other => other.to_string(),
            };
            out.insert((db, k), format!("{t} {v}"));
        }
    }
    out
}

#[test]
fn a_redis_masters_script_effects_reach_a_tandem_replica() {
    if !redis_available() {
        return;
    }
    let master = start_redis_server(&[]);
    let replica = start_tandem(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_in_sync(&master, &replica);
    run_scripts(&master);
    wait_in_sync(&master, &replica);
    let want = dataset(&master);
    assert!(want.len() > 20, "the scripts wrote: {}", want.len());
    assert_eq!(dataset(&replica), want);
}

fn ping(s: &ServerGuard) -> String {
    let mut c = s.con();
    match redis::cmd("PING").query::<String>(&mut c) {
        Ok(v) => v,
        Err(e) => e.to_string(),
    }
}

/// Runs a script on its own connection; returns its reply (or error) when it ends.
fn run_in_background(s: &ServerGuard, script: &'static str) -> std::thread::JoinHandle<String> {
    let mut c = s.con();
    std::thread::spawn(move || {
        match redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query::<redis::Value>(&mut c)
        {
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        }
    })
}

#[test]
fn a_busy_script_can_be_killed_until_it_writes() {
    let mut s = start_tandem(&["--busy-reply-threshold", "100"]);
    let looping = run_in_background(&s, "local i = 0 while true do i = i + 1 end");
    wait_until("others get BUSY", WAIT, || ping(&s).contains("BUSY"));
    let busy = ping(&s);
    assert!(
        busy.contains(
            "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        ),
        "{busy}"
    );
    let wrong_kill = redis::cmd("FUNCTION")
        .arg("KILL")
        .query::<String>(&mut s.con())
        .unwrap_err()
        .to_string();
    assert!(
        wrong_kill.contains("BUSY"),
        "FUNCTION KILL does not stop a script: {wrong_kill}"
    );
    let killed: String = redis::cmd("SCRIPT")
        .arg("KILL")
        .query(&mut s.con())
        .unwrap();
    assert_eq!(killed, "OK");
    let ended = looping.join().unwrap();
    assert!(
        ended.contains("Script killed by user with SCRIPT KILL..."),
        "{ended}"
    );
    assert_eq!(ping(&s), "PONG");
    let idle = redis::cmd("SCRIPT")
        .arg("KILL")
        .query::<String>(&mut s.con())
        .unwrap_err();
    assert!(
        format!("{idle:?} {idle}").contains("No scripts in execution right now."),
        "{idle:?}"
    );

    // Once it wrote, only SHUTDOWN NOSAVE ends it.
    let _writer = run_in_background(
        &s,
        "redis.call('SET', 'w', '1') local i = 0 while true do i = i + 1 end",
    );
    wait_until("others get BUSY", WAIT, || ping(&s).contains("BUSY"));
    let refused = redis::cmd("SCRIPT")
        .arg("KILL")
        .query::<String>(&mut s.con())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("UNKILLABLE"), "{refused}");
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<()>(&mut s.con());
    let status = s.wait_exit(WAIT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn hostile_scripts_get_errors_and_the_server_stays_up() {
    let s = start_tandem(&["--maxmemory", "200mb"]);
    let mut c = s.con();
    let err = |c: &mut redis::Connection, script: &str| -> String {
        redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query::<redis::Value>(c)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&mut c, "return +").contains("Error compiling script"));
    assert!(err(&mut c, "return nil .. 1").contains("attempt to concatenate"));
    assert!(
        err(&mut c, "local function f() return 1 + f() end return f()").contains("stack overflow")
    );
    // A string bomb meets the memory limit instead of taking the machine's memory.
    let bomb = err(&mut c, "local s = 'x' while true do s = s .. s end");
    assert!(bomb.contains("not enough memory"), "{bomb}");
    assert!(err(&mut c, "os.exit(1)").contains("nonexistent global variable 'os'"));
    // A huge reply is delivered whole.
    let big: Vec<i64> = redis::cmd("EVAL")
        .arg("local t = {} for i = 1, 200000 do t[i] = i end return t")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(big.len(), 200_000);
    assert_eq!(big[199_999], 200_000);
    assert_eq!(ping(&s), "PONG");
    let lua_bytes: u64 = s.field("memory", "used_memory_lua").parse().unwrap();
    assert!(lua_bytes > 0, "the Lua heap is counted");
    assert_eq!(s.field("memory", "number_of_cached_scripts"), "5");
}
