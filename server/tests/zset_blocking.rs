//! BZPOPMIN/BZPOPMAX over real sockets: a client blocked on an empty key is woken by a ZADD
//! from another connection, and an unserved one gets the null array when its timeout passes.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tandem_server::config::Config;
use tandem_server::{net, state::Server};

/// Starts a server on an ephemeral port in a background thread.
fn start() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let listeners = net::bind(&["127.0.0.1".to_string()], 0)
                .await
                .expect("bind");
            tx.send(listeners[0].local_addr().expect("addr"))
                .expect("send");
            let state = Rc::new(RefCell::new(Server::new(Config::default())));
            net::serve(state, listeners).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("server up")
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends a command and reads until exactly `expected` arrived (or fails on a mismatch).
fn call(sock: &mut TcpStream, args: &[&str], expected: &[u8]) {
    sock.write_all(&resp(args)).expect("write");
    expect(sock, expected);
}

fn expect(sock: &mut TcpStream, expected: &[u8]) {
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = vec![0u8; expected.len()];
    sock.read_exact(&mut got).expect("reply");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// True when nothing arrives within `wait`.
fn silent(sock: &mut TcpStream, wait: Duration) -> bool {
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut b = [0u8; 1];
    matches!(sock.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn zadd_wakes_a_blocked_bzpopmin() {
    let addr = start();
    let mut waiter = TcpStream::connect(addr).unwrap();
    let mut writer = TcpStream::connect(addr).unwrap();
    waiter
        .write_all(&resp(&["BZPOPMIN", "other", "zk", "0"]))
        .unwrap();
    assert!(
        silent(&mut waiter, Duration::from_millis(200)),
        "must block"
    );
    call(&mut writer, &["ZADD", "zk", "2", "b", "1", "a"], b":2\r\n");
    expect(&mut waiter, b"*3\r\n$2\r\nzk\r\n$1\r\na\r\n$1\r\n1\r\n");
    call(&mut writer, &["ZCARD", "zk"], b":1\r\n");
    // The woken client goes on with its next command normally.
    call(
        &mut waiter,
        &["BZPOPMAX", "zk", "0"],
        b"*3\r\n$2\r\nzk\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    call(&mut waiter, &["EXISTS", "zk"], b":0\r\n");
}

#[test]
fn zadd_wakes_a_blocked_bzmpop() {
    let addr = start();
    let mut waiter = TcpStream::connect(addr).unwrap();
    let mut writer = TcpStream::connect(addr).unwrap();
    waiter
        .write_all(&resp(&[
            "BZMPOP", "5", "2", "k1", "k2", "MAX", "COUNT", "2",
        ]))
        .unwrap();
    assert!(
        silent(&mut waiter, Duration::from_millis(200)),
        "must block"
    );
    call(
        &mut writer,
        &["ZADD", "k2", "1", "a", "2", "b", "3", "c"],
        b":3\r\n",
    );
    expect(
        &mut waiter,
        b"*2\r\n$2\r\nk2\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    call(
        &mut writer,
        &["ZRANGE", "k2", "0", "-1"],
        b"*1\r\n$1\r\na\r\n",
    );
}

#[test]
fn bzpopmax_times_out_with_a_null_array() {
    let addr = start();
    let mut c = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    call(&mut c, &["BZPOPMAX", "none", "0.05"], b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(50));
    call(&mut c, &["HELLO", "3"], b"%");
    let mut rest = Vec::new();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _ = c.read_to_end(&mut rest);
    call(&mut c, &["BZPOPMIN", "none", "0.01"], b"_\r\n");
}
