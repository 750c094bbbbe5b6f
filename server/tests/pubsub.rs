//! Wire tests for what needs more than one connection: pub/sub delivery (RESP2 and RESP3,
//! channels and patterns), the RESP2 subscribed-mode refusal, and WATCH invalidated by
//! another client. They start the built server on a free port and speak raw RESP, asserting
//! exact bytes. Reads poll against deadlines; nothing sleeps for a fixed time.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, ServerGuard, start_tandem, wait_until};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

fn start() -> ServerGuard {
    start_tandem(&[])
}

/// Switches a connection to RESP3, consuming HELLO's reply (its id varies, so only the
/// known tail is checked after reading the whole map).
fn hello3(c: &mut Conn) {
    c.send(&["HELLO", "3"]);
    let got = c.read_reply();
    assert!(
        got.ends_with(b"$7\r\nmodules\r\n*0\r\n"),
        "no HELLO reply: {got:?}"
    );
    assert!(got.starts_with(b"%7\r\n"), "HELLO 3 is a map: {got:?}");
}

#[test]
fn resp2_subscriber_receives_publish_from_another_connection() {
    let server = start();
    let mut sub = server.connect();
    let mut publisher = server.connect();
    sub.call(
        &["SUBSCRIBE", "news", "sport"],
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n",
    );
    publisher.call(&["PUBLISH", "news", "hello world"], b":1\r\n");
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nhello world\r\n");
    publisher.call(&["PUBLISH", "nobody", "x"], b":0\r\n");
    publisher.call(&["PUBSUB", "NUMSUB", "news"], b"*2\r\n$4\r\nnews\r\n:1\r\n");
    sub.call(
        &["UNSUBSCRIBE", "news"],
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    );
    publisher.call(&["PUBLISH", "news", "gone"], b":0\r\n");
    publisher.call(&["PUBLISH", "sport", ""], b":1\r\n");
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$0\r\n\r\n");
}

#[test]
fn resp3_subscriber_gets_push_messages_and_may_run_commands() {
    let server = start();
    let mut sub = server.connect();
    let mut publisher = server.connect();
    hello3(&mut sub);
    sub.call(
        &["SUBSCRIBE", "ch"],
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    // RESP3 has no subscribed mode: ordinary commands keep working.
    sub.call(&["GET", "missing"], b"_\r\n");
    publisher.call(&["PUBLISH", "ch", "payload"], b":1\r\n");
    sub.expect(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$7\r\npayload\r\n");
    // A client publishing to itself gets the push before the count.
    sub.call(
        &["PUBLISH", "ch", "me"],
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nme\r\n:1\r\n",
    );
}

#[test]
fn pattern_subscriptions_deliver_pmessage() {
    let server = start();
    let mut sub = server.connect();
    let mut publisher = server.connect();
    sub.call(
        &["PSUBSCRIBE", "news.*"],
        b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n",
    );
    sub.call(
        &["SUBSCRIBE", "news.tech"],
        b"*3\r\n$9\r\nsubscribe\r\n$9\r\nnews.tech\r\n:2\r\n",
    );
    publisher.call(&["PUBSUB", "NUMPAT"], b":1\r\n");
    // Matched twice: once by channel, once by pattern, in that order.
    publisher.call(&["PUBLISH", "news.tech", "rust"], b":2\r\n");
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$9\r\nnews.tech\r\n$4\r\nrust\r\n");
    sub.expect(b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$9\r\nnews.tech\r\n$4\r\nrust\r\n");
    publisher.call(&["PUBLISH", "sport.tennis", "x"], b":0\r\n");
    sub.call(
        &["PUNSUBSCRIBE", "news.*"],
        b"*3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:1\r\n",
    );
    publisher.call(&["PUBSUB", "NUMPAT"], b":0\r\n");
}

#[test]
fn resp2_subscribed_mode_refuses_other_commands() {
    let server = start();
    let mut sub = server.connect();
    sub.call(
        &["SUBSCRIBE", "ch"],
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    sub.call(
        &["GET", "k"],
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    sub.call(
        &["CLIENT", "LIST"],
        b"-ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    sub.call(&["PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    sub.call(&["RESET"], b"+RESET\r\n");
    sub.call(&["GET", "k"], b"$-1\r\n");
}

#[test]
fn disconnecting_subscriber_is_forgotten() {
    let server = start();
    let mut publisher = server.connect();
    {
        let mut sub = server.connect();
        sub.call(
            &["SUBSCRIBE", "ch"],
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        );
    }
    wait_until("the subscriber to be removed", DEADLINE, || {
        publisher.cmd(&["PUBLISH", "ch", "x"]) == b":0\r\n"
    });
}

#[test]
fn watch_is_invalidated_by_another_client() {
    let server = start();
    let mut a = server.connect();
    let mut b = server.connect();
    a.call(&["WATCH", "k"], b"+OK\r\n");
    b.call(&["SET", "k", "from-b"], b"+OK\r\n");
    a.call(&["MULTI"], b"+OK\r\n");
    a.call(&["SET", "k", "from-a"], b"+QUEUED\r\n");
    a.call(&["EXEC"], b"*-1\r\n");
    a.call(&["GET", "k"], b"$6\r\nfrom-b\r\n");
    // Unwatched after EXEC: the next transaction runs.
    a.call(&["WATCH", "k"], b"+OK\r\n");
    a.call(&["MULTI"], b"+OK\r\n");
    a.call(&["SET", "k", "from-a"], b"+QUEUED\r\n");
    a.call(&["EXEC"], b"*1\r\n+OK\r\n");
    a.call(&["GET", "k"], b"$6\r\nfrom-a\r\n");
}

#[test]
fn watched_key_that_expires_fails_exec() {
    let server = start();
    let mut a = server.connect();
    a.call(&["SET", "k", "v", "PX", "30"], b"+OK\r\n");
    a.call(&["WATCH", "k"], b"+OK\r\n");
    a.call(&["MULTI"], b"+OK\r\n");
    a.call(&["PING"], b"+QUEUED\r\n");
    let mut probe = server.connect();
    wait_until("the key to expire", DEADLINE, || {
        probe.cmd(&["PTTL", "k"]) == b":-2\r\n"
    });
    a.call(&["EXEC"], b"*-1\r\n");
}

#[test]
fn client_pause_write_holds_writes_until_unpause() {
    let server = start();
    let mut admin = server.connect();
    let mut a = server.connect();
    admin.call(&["CLIENT", "PAUSE", "100000", "WRITE"], b"+OK\r\n");
    a.call(&["GET", "k"], b"$-1\r\n");
    a.send(&["SET", "k", "v"]);
    a.send(&["GET", "k"]);
    // The write waits, and so does everything the client sent after it.
    wait_until("the client to be paused", DEADLINE, || {
        String::from_utf8_lossy(&admin.cmd(&["CLIENT", "LIST"])).contains("flags=b")
    });
    admin.call(&["GET", "k"], b"$-1\r\n");
    admin.call(&["CLIENT", "UNPAUSE"], b"+OK\r\n");
    a.expect(b"+OK\r\n$1\r\nv\r\n");
}

#[test]
fn client_reply_off_and_skip_suppress_replies() {
    let server = start();
    let mut a = server.connect();
    a.send(&["CLIENT", "REPLY", "OFF"]);
    a.send(&["SET", "k", "1"]);
    a.send(&["CLIENT", "REPLY", "ON"]);
    a.expect(b"+OK\r\n");
    a.send(&["CLIENT", "REPLY", "SKIP"]);
    a.send(&["GET", "k"]);
    a.call(&["ECHO", "after"], b"$5\r\nafter\r\n");
}

#[test]
fn slow_subscriber_over_pubsub_limit_is_disconnected() {
    let server = start();
    let mut admin = server.connect();
    admin.call(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
        b"+OK\r\n",
    );
    let mut sub = server.connect();
    sub.call(
        &["SUBSCRIBE", "big"],
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nbig\r\n:1\r\n",
    );
    // The subscriber never reads: its output piles up until the limit drops it.
    let payload = "x".repeat(100_000);
    let until = Instant::now() + DEADLINE;
    while admin.cmd(&["PUBLISH", "big", &payload]) != b":0\r\n" {
        assert!(Instant::now() < until, "slow subscriber never disconnected");
    }
    admin.call(&["PUBSUB", "NUMSUB", "big"], b"*2\r\n$3\r\nbig\r\n:0\r\n");
}

#[test]
fn shard_channels_deliver_smessage_and_kill_by_type_drops_subscribers() {
    let server = start();
    let mut sub = server.connect();
    let mut other = server.connect();
    sub.call(
        &["SSUBSCRIBE", "orders"],
        b"*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    );
    // Shard channels and ordinary channels are separate namespaces.
    other.call(&["PUBLISH", "orders", "x"], b":0\r\n");
    other.call(&["SPUBLISH", "orders", "42"], b":1\r\n");
    sub.expect(b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\n42\r\n");
    other.call(&["CLIENT", "KILL", "TYPE", "pubsub"], b":1\r\n");
    assert!(
        sub.is_closed(),
        "the killed subscriber got bytes or is still connected"
    );
    other.call(
        &["PUBSUB", "SHARDNUMSUB", "orders"],
        b"*2\r\n$6\r\norders\r\n:0\r\n",
    );
}
