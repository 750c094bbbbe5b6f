//! XREAD BLOCK and XREADGROUP BLOCK over real sockets: woken by XADD in the order they
//! blocked, `$` meaning the last id at the time of the call, the unblocking errors of a
//! deleted stream or group, the null array at the timeout, and no blocking inside MULTI.

mod common;

use common::{start_tandem, wait_blocked};
use std::time::{Duration, Instant};

#[test]
fn xadd_wakes_xread_with_dollar_in_arrival_order() {
    let srv = start_tandem(&[]);
    let mut first = srv.connect();
    let mut second = srv.connect();
    let mut writer = srv.connect();
    writer.call(&["XADD", "s", "1-1", "old", "x"], b"$3\r\n1-1\r\n");
    first.send(&["XREAD", "BLOCK", "0", "STREAMS", "other", "s", "0", "$"]);
    wait_blocked(&srv, 1);
    second.send(&["XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS", "s", "$"]);
    wait_blocked(&srv, 2);
    // Entries written after the call: `$` was 1-1, so 1-1 is not served again.
    writer.call(&["XADD", "s", "2-1", "f", "v"], b"$3\r\n2-1\r\n");
    let served = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n";
    first.expect(served);
    second.expect(served);
    writer.call(&["XLEN", "s"], b":2\r\n");
}

#[test]
fn xreadgroup_block_is_served_once_and_acks_go_to_the_pel() {
    let srv = start_tandem(&[]);
    let mut a = srv.connect();
    let mut b = srv.connect();
    let mut writer = srv.connect();
    writer.call(&["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"], b"+OK\r\n");
    a.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]);
    wait_blocked(&srv, 1);
    b.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]);
    wait_blocked(&srv, 2);
    writer.call(&["XADD", "q", "5-0", "job", "1"], b"$3\r\n5-0\r\n");
    a.expect(b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$3\r\njob\r\n$1\r\n1\r\n");
    // Bob waits on: the only entry went to alice.
    wait_blocked(&srv, 1);
    writer.call(&["XADD", "q", "6-0", "job", "2"], b"$3\r\n6-0\r\n");
    b.expect(b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n$3\r\n6-0\r\n*2\r\n$3\r\njob\r\n$1\r\n2\r\n");
    writer.call(
        &["XPENDING", "q", "g"],
        b"*4\r\n:2\r\n$3\r\n5-0\r\n$3\r\n6-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n",
    );
}

#[test]
fn deleting_the_group_or_the_stream_unblocks_xreadgroup_with_an_error() {
    let srv = start_tandem(&[]);
    let mut a = srv.connect();
    let mut b = srv.connect();
    let mut writer = srv.connect();
    writer.call(&["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"], b"+OK\r\n");
    a.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]);
    wait_blocked(&srv, 1);
    writer.call(&["XGROUP", "DESTROY", "q", "g"], b":1\r\n");
    a.expect(b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n");
    writer.call(&["XGROUP", "CREATE", "q", "g", "$"], b"+OK\r\n");
    b.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]);
    wait_blocked(&srv, 1);
    writer.call(&["DEL", "q"], b":1\r\n");
    b.expect(b"-UNBLOCKED the stream key no longer exists\r\n");
}

#[test]
fn xread_block_times_out_and_never_blocks_in_multi() {
    let srv = start_tandem(&[]);
    let mut c = srv.connect();
    let started = Instant::now();
    c.call(
        &["XREAD", "BLOCK", "50", "STREAMS", "none", "0"],
        b"*-1\r\n",
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    c.call(&["MULTI"], b"+OK\r\n");
    c.call(
        &["XREAD", "BLOCK", "0", "STREAMS", "none", "$"],
        b"+QUEUED\r\n",
    );
    c.call(&["EXEC"], b"*1\r\n*-1\r\n");
    c.send(&["HELLO", "3"]);
    assert!(c.read_reply().starts_with(b"%"));
    c.call(&["XREAD", "BLOCK", "10", "STREAMS", "none", "0"], b"_\r\n");
}
