//! ACL users with real processes: every command's categories against a live Redis 7.0, the
//! ACL file (SAVE, restart, LOAD, a bad file, and Redis reading tandem's file), `user`
//! directives in a config file, replicas authenticating to a tandem master as a restricted
//! user (tandem and Redis 7.0 replicas), and clients of deleted or changed users.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Conn, Info, ServerGuard, Value, poll, start_redis, start_redis_server, start_tandem, text,
    wait_until,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_testkit::redis_available;

const WAIT: Duration = Duration::from_secs(30);

fn values(c: &mut Conn, args: &[&str]) -> Vec<Value> {
    c.send(args);
    c.read_value().expect("a reply").children
}

fn strings(c: &mut Conn, args: &[&str]) -> Vec<String> {
    values(c, args).iter().map(text).collect()
}

/// A scratch directory for files a test hands to servers.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-acl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn every_command_has_redis_7_0_categories() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let tandem = start_tandem(&[]);
    let (mut r, mut t) = (redis.connect(), tandem.connect());
    let ours: BTreeSet<String> = strings(&mut t, &["COMMAND", "LIST"]).into_iter().collect();
    let categories = strings(&mut t, &["ACL", "CAT"]);
    assert_eq!(categories, strings(&mut r, &["ACL", "CAT"]));
    assert_eq!(categories.len(), 21);
    // Every command and subcommand, through each category's members.
    for cat in &categories {
        let mine: BTreeSet<String> = strings(&mut t, &["ACL", "CAT", cat]).into_iter().collect();
        let theirs: BTreeSet<String> = strings(&mut r, &["ACL", "CAT", cat])
            .into_iter()
            .filter(|n| ours.contains(n))
            .collect();
        assert!(!theirs.is_empty(), "@{cat} has no command tandem serves");
        assert_eq!(mine, theirs, "members of @{cat}");
        let listed: BTreeSet<String> =
            strings(&mut t, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", cat])
                .into_iter()
                .collect();
        assert_eq!(listed, mine, "COMMAND LIST FILTERBY ACLCAT {cat}");
    }
    // COMMAND INFO's 7th element, byte for byte, for every command.
    let top: Vec<&String> = ours.iter().filter(|n| !n.contains('|')).collect();
    for name in &top {
        let mine = values(&mut t, &["COMMAND", "INFO", name]);
        let theirs = values(&mut r, &["COMMAND", "INFO", name]);
        assert_eq!(
            String::from_utf8_lossy(&mine[0].children[6].raw),
            String::from_utf8_lossy(&theirs[0].children[6].raw),
            "categories of {name}"
        );
    }
    // The category table adds no command: COMMAND COUNT is the command table's size.
    let count = common::cmd(&mut t, &["COMMAND", "COUNT"]);
    assert_eq!(count, top.len().to_string());
}

/// `user` lines as ACL LIST shows them, by name.
fn acl_list(c: &mut Conn) -> BTreeMap<String, String> {
    strings(c, &["ACL", "LIST"])
        .into_iter()
        .map(|l| (l.split(' ').nth(1).unwrap_or_default().to_string(), l))
        .collect()
}

#[test]
fn aclfile_save_restart_load_and_redis_reads_it() {
    let dir = scratch("file");
    let file = dir.join("users.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
    let path = file.to_str().unwrap();
    let mut tandem = start_tandem(&["--aclfile", path, "--loglevel", "debug"]);
    let mut t = tandem.connect();
    let set = [
        "ACL", "SETUSER", "app", "on", ">s3cret", "~app:*", "&events", "-@all", "+@read", "+set",
    ];
    assert_eq!(common::cmd(&mut t, &set), "OK");
    assert_eq!(common::cmd(&mut t, &["ACL", "SAVE"]), "OK");
    let saved = std::fs::read_to_string(&file).unwrap();
    let app = saved.lines().find(|l| l.starts_with("user app on #"));
    assert!(
        app.is_some_and(|l| l.ends_with(" ~app:* resetchannels &events -@all +@read +set")),
        "{saved}"
    );
    assert!(!saved.contains("s3cret"), "the file holds hashes only");
    assert_eq!(
        common::cmd(&mut t, &["AUTH", "app", "s3cret-wrong"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let log = tandem.log();
    assert!(
        !log.is_empty() && !log.contains("s3cret"),
        "no password in the log"
    );
    let before = acl_list(&mut t);

    tandem.restart();
    let mut t = tandem.connect();
    assert_eq!(acl_list(&mut t), before, "users after a restart");
    assert_eq!(common::cmd(&mut t, &["AUTH", "app", "s3cret"]), "OK");
    assert_eq!(common::cmd(&mut t, &["SET", "app:1", "v"]), "OK");
    assert_eq!(
        common::cmd(&mut t, &["DEL", "app:1"]),
        "NOPERM this user has no permissions to run the 'del' command"
    );

    // A bad file changes nothing and says why, as Redis words it.
    std::fs::write(&file, "user app on +nosuch\nnot a user line\n").unwrap();
    let mut admin = tandem.connect();
    let err = common::cmd(&mut admin, &["ACL", "LOAD"]);
    assert_eq!(
        err,
        format!(
            "ERR {path}:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. {path}:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        )
    );
    assert_eq!(acl_list(&mut admin), before);
    // A good one replaces every user, and the clients of the old ones are disconnected.
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser ops on nopass +@all ~*\n",
    )
    .unwrap();
    assert_eq!(common::cmd(&mut admin, &["ACL", "LOAD"]), "OK");
    t.send(&["PING"]);
    assert!(t.read_value().is_err(), "app's client is disconnected");
    assert_eq!(
        strings(&mut admin, &["ACL", "USERS"]),
        vec!["default".to_string(), "ops".to_string()]
    );

    // Redis 7.0 reads the file tandem writes and lists the same users.
    if !redis_available() {
        return;
    }
    assert_eq!(common::cmd(&mut admin, &set), "OK");
    assert_eq!(common::cmd(&mut admin, &["ACL", "SAVE"]), "OK");
    let redis = start_redis_server(&["--aclfile", path]);
    assert_eq!(acl_list(&mut redis.connect()), acl_list(&mut admin));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs tandem-server with a config file; the server is expected to refuse it and exit.
fn refused_config(conf: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .arg(conf)
        .args(["--port", &common::free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tandem-server");
    let status = poll("tandem-server to exit", WAIT, || {
        child.try_wait().ok().flatten()
    });
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).unwrap();
    err
}

/// Starts a server with a config file as its first argument (which `Launch` does not put
/// first), and connects once it answers PING.
fn start_with_config(program: &str, conf: &Path, dir: &Path) -> (std::process::Child, Conn) {
    let port = common::free_port();
    let child = Command::new(program)
        .arg(conf)
        .args(["--port", &port.to_string(), "--save", ""])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let conn = poll("the server to answer PING", WAIT, || {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut c = Conn::from_stream(stream);
        (common::cmd(&mut c, &["PING"]) == "PONG").then_some(c)
    });
    (child, conn)
}

/// Adds a user, deletes `reader`, rewrites the config file and returns its `user` lines.
fn rewrite_users(c: &mut Conn, conf: &Path) -> Vec<String> {
    let add = ["ACL", "SETUSER", "newbie", "on", ">x", "~n:*", "+get"];
    assert_eq!(common::cmd(c, &add), "OK");
    assert_eq!(common::cmd(c, &["ACL", "DELUSER", "reader"]), "1");
    assert_eq!(common::cmd(c, &["CONFIG", "REWRITE"]), "OK");
    std::fs::read_to_string(conf)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("user "))
        .map(str::to_string)
        .collect()
}

#[test]
fn user_directives_in_a_config_file() {
    let dir = scratch("conf");
    let conf = dir.join("tandem.conf");
    std::fs::write(
        &conf,
        "user default on nopass ~* &* +@all\nuser app on >pw ~app:* -@all +@read +@string\nuser reader on >r %R~* +get\n",
    )
    .unwrap();
    let redis_conf = dir.join("redis.conf");
    std::fs::copy(&conf, &redis_conf).unwrap();
    let (mut child, mut t) = start_with_config(env!("CARGO_BIN_EXE_tandem-server"), &conf, &dir);
    assert_eq!(common::cmd(&mut t, &["AUTH", "app", "pw"]), "OK");
    assert_eq!(common::cmd(&mut t, &["SET", "app:1", "v"]), "OK");
    assert_eq!(
        common::cmd(&mut t, &["SET", "other", "v"]),
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
    assert_eq!(common::cmd(&mut t, &["AUTH", "reader", "r"]), "OK");
    assert_eq!(common::cmd(&mut t, &["GET", "app:1"]), "v");
    assert_eq!(common::cmd(&mut t, &["AUTH", "default", "any"]), "OK");
    let listed = acl_list(&mut t);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let ours = rewrite_users(&mut t, &conf);
    assert_eq!(ours.len(), 3, "{ours:?}");
    assert!(
        ours.iter().any(|l| l.starts_with("user newbie on #")),
        "{ours:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Redis 7.0 describes the same directives the same way.
    if redis_available() {
        let (mut redis, mut r) = start_with_config("redis-server", &redis_conf, &dir);
        assert_eq!(acl_list(&mut r), listed);
        assert_eq!(
            rewrite_users(&mut r, &redis_conf),
            ours,
            "CONFIG REWRITE's user lines"
        );
        redis.kill().unwrap();
        redis.wait().unwrap();
    }
    // Users in the config file and an ACL file at once: refused, as by Redis.
    std::fs::write(dir.join("users.acl"), "").unwrap();
    let both = dir.join("both.conf");
    std::fs::write(
        &both,
        format!(
            "aclfile {}\nuser app on nopass\n",
            dir.join("users.acl").display()
        ),
    )
    .unwrap();
    assert!(refused_config(&both).contains("please define either an ACL file or declare users directly in your redis.conf, but not both"));
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "user app on +nosuch\n").unwrap();
    assert!(refused_config(&bad).contains("Unknown command or category name in ACL"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The rules a replica's user needs on its master, and no more.
const REPLICATION_USER: &[&str] = &[
    "ACL",
    "SETUSER",
    "repl",
    "on",
    ">replpw",
    "-@all",
    "+psync",
    "+replconf",
    "+ping",
];

/// Waits for the replica's link, then checks it holds the master's key and that the
/// master sees the link as the restricted user.
fn assert_replicates_as_repl(master: &ServerGuard, replica: &ServerGuard) {
    let mut m = master.connect();
    assert_eq!(common::cmd(&mut m, &["SET", "k", "v"]), "OK");
    wait_until("link up", WAIT, || {
        replica.field("replication", "master_link_status") == "up"
    });
    common::wait_in_sync(master, replica);
    assert_eq!(common::cmd(&mut replica.connect(), &["GET", "k"]), "v");
    let clients = common::cmd(&mut m, &["CLIENT", "LIST", "TYPE", "replica"]);
    assert!(clients.contains(" user=repl "), "{clients}");
}

#[test]
fn replica_authenticates_as_a_restricted_user() {
    // tandem -> tandem, and a wrong password is refused and logged without the password.
    let master = start_tandem(&["--repl-diskless-sync-delay", "0"]);
    assert_eq!(common::cmd(&mut master.connect(), REPLICATION_USER), "OK");
    let port = master.port.to_string();
    let as_repl = |pass| {
        [
            "--replicaof",
            "127.0.0.1",
            &port,
            "--masteruser",
            "repl",
            "--masterauth",
            pass,
        ]
    };
    let wrong = start_tandem(&as_repl("nope"));
    let log = poll("a refused AUTH in the ACL LOG", WAIT, || {
        let entries = values(&mut master.connect(), &["ACL", "LOG"]);
        (!entries.is_empty()).then_some(entries)
    });
    let entry: Vec<String> = log[0].children.iter().map(text).collect();
    assert_eq!(
        &entry[..10],
        [
            "count", &entry[1], "reason", "auth", "context", "toplevel", "object", "AUTH",
            "username", "repl"
        ]
    );
    assert_ne!(wrong.field("replication", "master_link_status"), "up");
    assert!(!wrong.log().contains("nope") && !master.log().contains("nope"));
    drop(wrong);
    // The replica's own users do not limit what its master sends: its default user here
    // may only read (and ask INFO, which the test's waits use).
    let read_only_default = [
        "--user", "default", "on", "nopass", "~*", "&*", "-@all", "+@read", "+ping", "+info",
    ];
    let replica = start_tandem(&[&as_repl("replpw")[..], &read_only_default[..]].concat());
    assert_replicates_as_repl(&master, &replica);
    let mut rc = replica.connect();
    assert_eq!(
        common::cmd(&mut rc, &["DEL", "k"]),
        "NOPERM this user has no permissions to run the 'del' command"
    );

    // tandem master -> Redis 7.0 replica (Redis master -> tandem replica as a named user is
    // in security.rs).
    if !redis_available() {
        return;
    }
    let replica = start_redis_server(&as_repl("replpw"));
    assert_replicates_as_repl(&master, &replica);
}

#[test]
fn deleted_user_is_disconnected_and_changed_subscribers_too() {
    let tandem = start_tandem(&[]);
    let mut admin = tandem.connect();
    let setup = [
        "ACL", "SETUSER", "gone", "on", "nopass", "+@all", "~*", "&news",
    ];
    assert_eq!(common::cmd(&mut admin, &setup), "OK");
    let mut victim = tandem.connect();
    assert_eq!(common::cmd(&mut victim, &["AUTH", "gone", "x"]), "OK");
    let mut subscriber = tandem.connect();
    assert_eq!(common::cmd(&mut subscriber, &["AUTH", "gone", "x"]), "OK");
    subscriber.send(&["SUBSCRIBE", "news"]);
    subscriber.read_value().expect("subscribed");
    // Taking the channel away disconnects the subscriber only.
    let revoke = ["ACL", "SETUSER", "gone", "resetchannels"];
    assert_eq!(common::cmd(&mut admin, &revoke), "OK");
    assert!(
        subscriber.read_value().is_err(),
        "the subscriber is disconnected"
    );
    assert_eq!(common::cmd(&mut victim, &["PING"]), "PONG");
    // Deleting the user disconnects its clients.
    assert_eq!(common::cmd(&mut admin, &["ACL", "DELUSER", "gone"]), "1");
    victim.send(&["PING"]);
    assert!(
        victim.read_value().is_err(),
        "the deleted user's client is disconnected"
    );
    assert_eq!(common::cmd(&mut admin, &["PING"]), "PONG");
}

#[test]
fn a_busy_script_does_not_open_the_acl() {
    let tandem = start_tandem(&["--busy-reply-threshold", "100"]);
    let mut admin = tandem.connect();
    let weak = [
        "ACL",
        "SETUSER",
        "weak",
        "on",
        ">pw",
        "~*",
        "+@all",
        "-shutdown",
        "-script|kill",
    ];
    assert_eq!(common::cmd(&mut admin, &weak), "OK");
    // Authenticated before the script: answered on its idle socket while the script runs.
    let mut idle = tandem.connect();
    assert_eq!(common::cmd(&mut idle, &["AUTH", "weak", "pw"]), "OK");
    let mut runner = tandem.connect();
    runner.send(&["EVAL", "local i = 0 while true do i = i + 1 end", "0"]);
    wait_until("others get BUSY", WAIT, || {
        common::cmd(&mut tandem.connect(), &["PING"]).starts_with("BUSY")
    });
    assert_eq!(
        common::cmd(&mut idle, &["SHUTDOWN", "NOSAVE"]),
        "NOPERM this user has no permissions to run the 'shutdown' command"
    );
    // Arriving while the script runs: AUTH works, and the user's rules hold.
    let mut late = tandem.connect();
    assert_eq!(common::cmd(&mut late, &["AUTH", "weak", "pw"]), "OK");
    assert_eq!(
        common::cmd(&mut late, &["SCRIPT", "KILL"]),
        "NOPERM this user has no permissions to run the 'script|kill' command"
    );
    assert!(common::cmd(&mut late, &["PING"]).starts_with("BUSY"));
    assert_eq!(common::cmd(&mut admin, &["SCRIPT", "KILL"]), "OK");
    runner.read_value().expect("the killed script's error");
    assert_eq!(common::cmd(&mut late, &["ACL", "WHOAMI"]), "weak");
    assert_eq!(
        common::cmd(&mut late, &["SHUTDOWN", "NOSAVE"]),
        "NOPERM this user has no permissions to run the 'shutdown' command"
    );
}
