//! Redis 7.0 Functions between real processes: libraries survive SAVE and a restart; a Redis
//! 7.0 master's libraries reach a tandem replica by full sync and tandem's reach a Redis 7.0
//! replica, with FUNCTION LOAD after the sync replicated both ways; FUNCTION DUMP from one
//! restores in the other (same FUNCTION LIST WITHCODE, and the same dump bytes). The Redis
//! cases are skipped with a printed reason when redis-server is missing, unless
//! TANDEM_REQUIRE_REAL_DEPS=1. Every wait polls with a deadline.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Info, ServerGuard, start_redis_server, start_tandem, wait_in_sync};
use tandem_testkit::redis_available;

const LIB_A: &str = "#!lua name=liba\nredis.register_function('echo', function(keys, args) return args[1] end)\nredis.register_function{function_name='getk', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads a key'}";
const LIB_B: &str = "#!lua name=libb\nredis.register_function('setk', function(keys, args) return redis.call('SET', keys[1], args[1]) end)";
const LIB_C: &str = "#!lua name=libc\nredis.register_function{function_name='later', callback=function() return 'later' end, flags={'allow-stale', 'no-writes'}}";

fn q(c: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap()
}

/// FUNCTION LIST WITHCODE in a form that ignores the order of libraries and of the
/// functions inside one (Redis's follows its hash tables).
fn libraries(s: &ServerGuard) -> Vec<String> {
    fn canonical(v: &redis::Value) -> String {
        match v {
            redis::Value::Array(items) => {
                let mut parts: Vec<String> = items.iter().map(canonical).collect();
                parts.sort();
                format!("[{}]", parts.join(","))
            }
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(t) => t.clone(),
            other => format!("{other:?}"),
        }
    }
    let redis::Value::Array(libs) = q(&mut s.con(), &["FUNCTION", "LIST", "WITHCODE"]) else {
        panic!("FUNCTION LIST is an array");
    };
    let mut out: Vec<String> = libs.iter().map(canonical).collect();
    out.sort();
    out
}

fn load(s: &ServerGuard, code: &str) {
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(code)
        .query(&mut s.con())
        .unwrap();
    assert!(code.contains(&format!("name={name}")), "{name}");
}

#[test]
fn functions_survive_save_and_restart() {
    let mut s = start_tandem(&[]);
    load(&s, LIB_A);
    load(&s, LIB_B);
    let before = libraries(&s);
    let mut c = s.con();
    assert_eq!(
        q(&mut c, &["FCALL", "setk", "1", "k", "v"]),
        redis::Value::Okay
    );
    assert_eq!(q(&mut c, &["SAVE"]), redis::Value::Okay);
    s.restart();
    assert_eq!(libraries(&s), before);
    let mut c = s.con();
    let v: String = redis::cmd("FCALL_RO")
        .arg("getk")
        .arg(1)
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "v");
    assert_eq!(s.field("memory", "number_of_libraries"), "2");
    assert_eq!(s.field("memory", "number_of_functions"), "3");
}

/// Full sync carries the master's libraries, and FUNCTION LOAD after it is replicated; the
/// replica serves the functions.
fn sync_carries_functions(master: &ServerGuard, replica_of: impl Fn(&str) -> ServerGuard) {
    load(master, LIB_A);
    load(master, LIB_B);
    let replica = replica_of(&master.port.to_string());
    wait_in_sync(master, &replica);
    assert_eq!(libraries(&replica), libraries(master));
    load(master, LIB_C);
    let mut m = master.con();
    q(&mut m, &["FCALL", "setk", "1", "fk", "fv"]);
    wait_in_sync(master, &replica);
    assert_eq!(libraries(&replica), libraries(master));
    let mut r = replica.con();
    let v: String = redis::cmd("FCALL_RO")
        .arg("getk")
        .arg(1)
        .arg("fk")
        .query(&mut r)
        .unwrap();
    assert_eq!(v, "fv");
    q(&mut m, &["FUNCTION", "DELETE", "liba"]);
    wait_in_sync(master, &replica);
    assert_eq!(libraries(&replica), libraries(master));
    q(&mut m, &["FUNCTION", "FLUSH"]);
    wait_in_sync(master, &replica);
    assert!(libraries(&replica).is_empty());
}

#[test]
fn redis_master_functions_reach_a_tandem_replica() {
    if !redis_available() {
        return;
    }
    for diskless in ["yes", "no"] {
        let master = start_redis_server(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        sync_carries_functions(&master, |port| {
            start_tandem(&["--replicaof", "127.0.0.1", port])
        });
    }
}

#[test]
fn tandem_master_functions_reach_a_redis_replica() {
    if !redis_available() {
        return;
    }
    for diskless in ["yes", "no"] {
        let master = start_tandem(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        sync_carries_functions(&master, |port| {
            start_redis_server(&["--replicaof", "127.0.0.1", port])
        });
    }
}

fn dump(s: &ServerGuard) -> Vec<u8> {
    redis::cmd("FUNCTION")
        .arg("DUMP")
        .query(&mut s.con())
        .unwrap()
}

fn restore(s: &ServerGuard, payload: &[u8], policy: &str) -> redis::RedisResult<()> {
    redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(payload)
        .arg(policy)
        .query(&mut s.con())
}

#[test]
fn dumps_restore_across_redis_and_tandem() {
    if !redis_available() {
        return;
    }
    let redis = start_redis_server(&[]);
    let tandem = start_tandem(&[]);
    // One library: both servers write the same bytes.
    load(&redis, LIB_A);
    load(&tandem, LIB_A);
    assert_eq!(dump(&tandem), dump(&redis));
    // Several, each way.
    load(&redis, LIB_B);
    restore(&tandem, &dump(&redis), "FLUSH").unwrap();
    assert_eq!(libraries(&tandem), libraries(&redis));
    load(&tandem, LIB_C);
    restore(&redis, &dump(&tandem), "REPLACE").unwrap();
    assert_eq!(libraries(&redis), libraries(&tandem));
    assert_eq!(libraries(&redis).len(), 3);
    // The same refusal from both.
    for s in [&redis, &tandem] {
        let err = restore(s, &dump(s), "APPEND").unwrap_err();
        assert!(
            err.to_string().contains("already exists"),
            "{}: {err}",
            s.name()
        );
    }
}
