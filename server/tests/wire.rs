//! Wire tests: exact bytes for the protocol edge cases, as Redis 7.0.15 answers them
//! (learned from a real redis-server, asserted here against tandem-server only).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, ServerGuard, escape, start_tandem};
use std::io::Read;

/// Sends raw bytes and reads until `expected.len()` bytes arrived, then compares.
fn exchange(c: &mut Conn, send: &[u8], expected: &[u8]) {
    c.write(send);
    let mut got = vec![0u8; expected.len()];
    c.reader
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading {:?} for {:?}: {e}", escape(expected), escape(send)));
    assert_eq!(
        escape(&got),
        escape(expected),
        "reply to {:?}",
        escape(send)
    );
}

/// Sends raw bytes, expects exactly `expected` and then the connection closed.
fn exchange_then_closed(server: &ServerGuard, send: &[u8], expected: &[u8]) {
    let mut c = server.connect();
    exchange(&mut c, send, expected);
    assert!(
        c.is_closed(),
        "connection must be closed after {:?}",
        escape(send)
    );
}

#[test]
fn inline_commands_follow_redis_quoting() {
    let t = start_tandem(&[]);
    let mut c = t.connect();
    exchange(&mut c, b"PING\r\n", b"+PONG\r\n");
    exchange(&mut c, b"   PING   \r\n", b"+PONG\r\n");
    exchange(
        &mut c,
        b"set \"a b\" 'c d'\r\nget \"a b\"\r\n",
        b"+OK\r\n$3\r\nc d\r\n",
    );
    exchange(&mut c, b"echo \"\\x41\\n\"\r\n", b"$2\r\nA\n\r\n");
    exchange(&mut c, b"echo 'it\\'s'\r\n", b"$4\r\nit's\r\n");
    exchange(&mut c, b"ECHO a\nECHO b\r\n", b"$1\r\na\r\n$1\r\nb\r\n");
    exchange(
        &mut c,
        b"\"\" a\r\n",
        b"-ERR unknown command '', with args beginning with: 'a' \r\n",
    );
    exchange(
        &mut c,
        b"*1\r\n$0\r\n\r\n",
        b"-ERR unknown command '', with args beginning with: \r\n",
    );
}

#[test]
fn empty_requests_are_skipped() {
    let t = start_tandem(&[]);
    let mut c = t.connect();
    exchange(&mut c, b"*0\r\nPING\r\n", b"+PONG\r\n");
    exchange(&mut c, b"*-1\r\nPING\r\n", b"+PONG\r\n");
    exchange(&mut c, b"\r\n\r\n\n PING\r\n", b"+PONG\r\n");
    // Like Redis, the two bytes after a bulk payload are skipped without a check.
    exchange(
        &mut c,
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nbXXPING\r\n",
        b"+OK\r\n+PONG\r\n",
    );
}

#[test]
fn pipelines_split_at_every_byte_boundary() {
    let t = start_tandem(&[]);
    let mut batch = Vec::new();
    batch.extend_from_slice(&common::encode(&[&b"SET"[..], b"k", b"v\r\n\x00"]));
    batch.extend_from_slice(b"GET k\r\n");
    batch.extend_from_slice(&common::encode(&[&b"INCR"[..], b"n"]));
    batch.extend_from_slice(b"*0\r\n");
    batch.extend_from_slice(&common::encode(&[&b"ECHO"[..], b""]));
    batch.extend_from_slice(b"echo \"x y\"\n");
    batch.extend_from_slice(&common::encode(&[&b"DEL"[..], b"n"]));
    let expected: &[u8] = b"+OK\r\n$4\r\nv\r\n\x00\r\n:1\r\n$0\r\n\r\n$3\r\nx y\r\n:1\r\n";
    let mut c = t.connect();
    for split in 1..batch.len() {
        c.write(&batch[..split]);
        exchange(&mut c, &batch[split..], expected);
    }
    // And one byte per write.
    for b in &batch[..batch.len() - 1] {
        c.write(std::slice::from_ref(b));
    }
    exchange(&mut c, &batch[batch.len() - 1..], expected);
}

#[test]
fn protocol_errors_close_the_connection() {
    let t = start_tandem(&[]);
    let cases: Vec<(Vec<u8>, &[u8])> = vec![
        (
            b"*abc\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2147483648\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nx\r\n".to_vec(),
            b"-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            b"*1\r\n$abc\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-1\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$2147483648\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"echo \"abc\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"echo 'abc\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"echo \"a\"b\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            vec![b'x'; 70_000],
            b"-ERR Protocol error: too big inline request\r\n",
        ),
        (
            [&b"*"[..], &[b'1'; 70_000]].concat(),
            b"-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            [&b"*1\r\n$"[..], &[b'1'; 70_000]].concat(),
            b"-ERR Protocol error: too big bulk count string\r\n",
        ),
    ];
    for (send, expected) in cases {
        exchange_then_closed(&t, &send, expected);
    }
    // Replies to the commands before the bad one are still delivered.
    exchange_then_closed(
        &t,
        b"PING\r\n*1\r\nx\r\n",
        b"+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n",
    );
}

/// Resident set size of a process in kB, from /proc (Linux only).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn huge_length_headers_allocate_nothing() {
    let t = start_tandem(&["--proto-max-bulk-len", "4gb"]);
    let Some(before) = rss_kb(t.pid()) else {
        println!("SKIP: no /proc/<pid>/status here");
        return;
    };
    let mut hostile = Vec::new();
    for _ in 0..4 {
        let mut c = t.connect();
        c.write(b"*2147483647\r\n$2147483648\r\n");
        c.write(&[b'a'; 64 * 1024]);
        hostile.push(c);
    }
    // The server still answers, and has not reserved the announced gigabytes.
    let mut c = t.connect();
    exchange(&mut c, b"PING\r\n", b"+PONG\r\n");
    let after = rss_kb(t.pid()).expect("rss");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} kB to {after} kB on length headers alone"
    );
}

#[test]
fn unauthenticated_clients_are_limited() {
    let t = start_tandem(&["--requirepass", "secret"]);
    let mut c = t.connect();
    exchange(&mut c, b"PING\r\n", b"-NOAUTH Authentication required.\r\n");
    exchange(
        &mut c,
        b"MULTI\r\n",
        b"-NOAUTH Authentication required.\r\n",
    );
    // Arity and subcommands are checked before authentication, as in Redis 7.0.
    exchange(
        &mut c,
        b"GET\r\nCONFIG GET\r\nCONFIG FOO\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n-ERR wrong number of arguments for 'config|get' command\r\n-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n",
    );
    exchange_then_closed(
        &t,
        b"*11\r\n",
        b"-ERR Protocol error: unauthenticated multibulk length\r\n",
    );
    exchange_then_closed(
        &t,
        b"*1\r\n$16385\r\n",
        b"-ERR Protocol error: unauthenticated bulk length\r\n",
    );
    // After AUTH the limits are gone.
    let mut c = t.connect();
    let mut mset = vec![b"MSET".to_vec()];
    for i in 0..5 {
        mset.push(format!("k{i}").into_bytes());
        mset.push(vec![b'v'; 20_000]);
    }
    exchange(&mut c, b"AUTH secret\r\n", b"+OK\r\n");
    exchange(&mut c, &common::encode(&mset), b"+OK\r\n");
}

#[test]
fn auth_flows() {
    let t = start_tandem(&["--requirepass", "secret"]);
    let noauth_hello: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
    let wrongpass: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let mut c = t.connect();
    exchange(
        &mut c,
        b"GET a\r\n",
        b"-NOAUTH Authentication required.\r\n",
    );
    exchange(&mut c, b"HELLO 3\r\n", noauth_hello);
    exchange(&mut c, b"HELLO\r\n", noauth_hello);
    exchange(&mut c, b"AUTH wrong\r\n", wrongpass);
    exchange(&mut c, b"AUTH bob secret\r\n", wrongpass);
    exchange(&mut c, b"HELLO 3 AUTH default wrong\r\n", wrongpass);
    exchange(
        &mut c,
        b"AUTH\r\n",
        b"-ERR wrong number of arguments for 'auth' command\r\n",
    );
    exchange(&mut c, b"AUTH a b c\r\n", b"-ERR syntax error\r\n");
    exchange(&mut c, b"AUTH secret\r\nPING\r\n", b"+OK\r\n+PONG\r\n");
    exchange(
        &mut c,
        b"RESET\r\nPING\r\n",
        b"+RESET\r\n-NOAUTH Authentication required.\r\n",
    );
    exchange(
        &mut c,
        b"AUTH default secret\r\nPING\r\n",
        b"+OK\r\n+PONG\r\n",
    );
    exchange(&mut c, b"QUIT\r\n", b"+OK\r\n");
    assert!(c.is_closed());

    let mut c = t.connect();
    c.write(b"HELLO 3 AUTH default secret SETNAME app\r\n");
    let hello = c.read_reply();
    let id = hello_id(&hello);
    assert_eq!(escape(&hello), escape(&hello_bytes(3, id)));
    exchange(&mut c, b"CLIENT GETNAME\r\n", b"$3\r\napp\r\n");
}

/// Redis 7.0.15's HELLO reply for protocol `proto` and client `id`.
fn hello_bytes(proto: u8, id: i64) -> Vec<u8> {
    let head = if proto == 3 { "%7" } else { "*14" };
    format!(
        "{head}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
    )
    .into_bytes()
}

fn hello_id(reply: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(reply);
    let after = text.split("$2\r\nid\r\n:").nth(1).expect("id field");
    after
        .split("\r\n")
        .next()
        .expect("id")
        .parse()
        .expect("numeric id")
}

#[test]
fn hello_shapes() {
    let t = start_tandem(&[]);
    let mut c = t.connect();
    c.write(b"CLIENT ID\r\n");
    let id: i64 = String::from_utf8(c.read_reply())
        .expect("utf8")
        .trim_start_matches(':')
        .trim_end()
        .parse()
        .expect("id");
    exchange(&mut c, b"HELLO 3\r\n", &hello_bytes(3, id));
    // RESP3 shapes: map, double-free null, verbatim text.
    exchange(
        &mut c,
        b"CONFIG GET hz\r\n",
        b"%1\r\n$2\r\nhz\r\n$2\r\n10\r\n",
    );
    exchange(&mut c, b"GET missing\r\n", b"_\r\n");
    exchange(
        &mut c,
        b"SET k v\r\nEXEC\r\n",
        b"+OK\r\n-ERR EXEC without MULTI\r\n",
    );
    exchange(&mut c, b"HELLO\r\n", &hello_bytes(3, id));
    exchange(&mut c, b"HELLO 2\r\n", &hello_bytes(2, id));
    exchange(&mut c, b"GET missing\r\n", b"$-1\r\n");
    exchange(
        &mut c,
        b"HELLO 4\r\n",
        b"-NOPROTO unsupported protocol version\r\n",
    );
    exchange(
        &mut c,
        b"HELLO abc\r\n",
        b"-ERR Protocol version is not an integer or out of range\r\n",
    );
    exchange(
        &mut c,
        b"HELLO 3 FOO\r\n",
        b"-ERR Syntax error in HELLO option 'FOO'\r\n",
    );
    exchange(
        &mut c,
        b"HELLO 3 SETNAME x\r\nCLIENT GETNAME\r\n",
        &[hello_bytes(3, id), b"$1\r\nx\r\n".to_vec()].concat(),
    );
    exchange(&mut c, b"RESET\r\nGET missing\r\n", b"+RESET\r\n$-1\r\n");
}

#[test]
fn slowlog_entries_have_redis_shape() {
    let t = start_tandem(&["--slowlog-log-slower-than", "0"]);
    let mut c = t.connect();
    exchange(
        &mut c,
        b"CLIENT SETNAME me\r\nSLOWLOG RESET\r\n",
        b"+OK\r\n+OK\r\n",
    );
    exchange(&mut c, b"AUTH x\r\n", b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n");
    c.send(&[&b"SLOWLOG"[..], b"GET", b"1"]);
    let v = c.read_value().expect("reply");
    assert_eq!(v.head, b"*1");
    let entry = &v.children[0];
    assert_eq!(entry.head, b"*6");
    assert_eq!(entry.children[0].kind(), b':');
    assert_eq!(entry.children[1].kind(), b':');
    assert_eq!(entry.children[2].kind(), b':');
    assert_eq!(
        entry.children[3].raw,
        b"*2\r\n$4\r\nAUTH\r\n$10\r\n(redacted)\r\n"
    );
    let addr = String::from_utf8_lossy(&entry.children[4].raw).into_owned();
    assert!(addr.contains("127.0.0.1:"), "{addr}");
    assert_eq!(entry.children[5].raw, b"$2\r\nme\r\n");
}
