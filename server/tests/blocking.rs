//! Blocking list commands over real sockets: the built server binary, raw RESP, exact reply
//! bytes. Every wait polls a condition against a deadline; nothing relies on a fixed sleep.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// A tandem-server process on a free port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
            .args(["--port", &port.to_string(), "--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < DEADLINE, "server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn conn(&self) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    /// Waits until INFO reports `n` blocked clients.
    fn wait_blocked(&self, n: usize) {
        let mut c = self.conn();
        let want = format!("blocked_clients:{n}\r\n");
        let start = Instant::now();
        loop {
            c.send(&["INFO", "clients"]);
            let info = c.read_bulk();
            if info.contains(&want) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "never saw {want:?} in {info}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn send(&mut self, args: &[&str]) {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.s.write_all(req.as_bytes()).unwrap();
    }

    /// Reads until `n` bytes are buffered, or panics at the deadline.
    fn fill(&mut self, n: usize) {
        let start = Instant::now();
        let mut chunk = [0u8; 4096];
        while self.buf.len() < n {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out with {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("connection closed"),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Asserts that the next bytes from the server are exactly `want`.
    fn expect(&mut self, want: &[u8]) {
        self.fill(want.len());
        let got: Vec<u8> = self.buf.drain(..want.len()).collect();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "unexpected reply"
        );
    }

    /// The length of the complete reply starting at `at` in the buffer, reading more as
    /// needed.
    fn reply_len(&mut self, at: usize) -> usize {
        let line_end = loop {
            if let Some(p) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                break at + p;
            }
            self.fill(self.buf.len() + 1);
        };
        let n = || -> i64 {
            String::from_utf8_lossy(&self.buf[at + 1..line_end])
                .parse()
                .unwrap()
        };
        let after = line_end + 2;
        match self.buf[at] {
            b'$' | b'=' | b'!' if n() >= 0 => {
                let len = n() as usize;
                self.fill(after + len + 2);
                after + len + 2 - at
            }
            b'*' | b'~' | b'>' | b'%' | b'|' if n() > 0 => {
                let items = n() as usize
                    * if matches!(self.buf[at], b'%' | b'|') {
                        2
                    } else {
                        1
                    };
                let mut end = after;
                for _ in 0..items {
                    end += self.reply_len(end);
                }
                end - at
            }
            _ => after - at,
        }
    }

    /// Takes one complete reply off the connection, raw.
    fn reply(&mut self) -> Vec<u8> {
        self.fill(1);
        let len = self.reply_len(0);
        self.buf.drain(..len).collect()
    }

    /// Reads one bulk string reply's payload.
    fn read_bulk(&mut self) -> String {
        let raw = String::from_utf8(self.reply()).unwrap();
        let (_, body) = raw.split_once("\r\n").unwrap();
        body.trim_end_matches("\r\n").to_string()
    }
}

#[test]
fn blpop_is_woken_by_rpush_from_another_connection() {
    let srv = Server::start();
    let mut waiter = srv.conn();
    let mut pusher = srv.conn();
    waiter.send(&["BLPOP", "queue", "0"]);
    srv.wait_blocked(1);
    pusher.send(&["RPUSH", "queue", "hello"]);
    pusher.expect(b":1\r\n");
    waiter.expect(b"*2\r\n$5\r\nqueue\r\n$5\r\nhello\r\n");
    pusher.send(&["EXISTS", "queue"]);
    pusher.expect(b":0\r\n");
    srv.wait_blocked(0);
}

#[test]
fn waiters_are_served_in_the_order_they_blocked() {
    let srv = Server::start();
    let mut first = srv.conn();
    let mut second = srv.conn();
    let mut pusher = srv.conn();

    // One element: the first to block gets it, the second keeps waiting for the next one.
    first.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(1);
    second.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(2);
    pusher.send(&["LPUSH", "k", "x"]);
    pusher.expect(b":1\r\n");
    first.expect(b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    srv.wait_blocked(1);
    pusher.send(&["RPUSH", "k", "y"]);
    pusher.expect(b":1\r\n");
    second.expect(b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n");

    // Two elements in one push: each waiter gets one, in blocking order.
    first.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(1);
    second.send(&["BRPOP", "k", "0"]);
    srv.wait_blocked(2);
    pusher.send(&["LPUSH", "k", "1", "2"]);
    pusher.expect(b":2\r\n");
    first.expect(b"*2\r\n$1\r\nk\r\n$1\r\n2\r\n");
    second.expect(b"*2\r\n$1\r\nk\r\n$1\r\n1\r\n");
}

#[test]
fn a_waiter_is_served_before_the_pusher_runs_its_next_command() {
    let srv = Server::start();
    let mut waiter = srv.conn();
    let mut pusher = srv.conn();
    waiter.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(1);
    // Pipelined: the pop runs after the waiter was served.
    pusher.send(&["RPUSH", "k", "v"]);
    pusher.send(&["LPOP", "k"]);
    pusher.expect(b":1\r\n$-1\r\n");
    waiter.expect(b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
}

#[test]
fn timeouts_reply_null() {
    let srv = Server::start();
    let mut c = srv.conn();
    c.send(&["BLPOP", "none", "0.05"]);
    c.expect(b"*-1\r\n");
    c.send(&["BRPOP", "none", "other", "0.01"]);
    c.expect(b"*-1\r\n");
    // Redis 7.0 times BLMOVE and BRPOPLPUSH out with a null array too.
    c.send(&["BLMOVE", "none", "dst", "LEFT", "RIGHT", "0.01"]);
    c.expect(b"*-1\r\n");
    c.send(&["BRPOPLPUSH", "none", "dst", "0.01"]);
    c.expect(b"*-1\r\n");
    c.send(&["BLMPOP", "0.01", "1", "none", "LEFT"]);
    c.expect(b"*-1\r\n");
    c.send(&["HELLO", "3"]);
    assert!(c.reply().starts_with(b"%"));
    c.send(&["BLPOP", "none", "0.01"]);
    c.expect(b"_\r\n");
    srv.wait_blocked(0);
}

#[test]
fn blmove_is_woken_and_moves() {
    let srv = Server::start();
    let mut waiter = srv.conn();
    let mut pusher = srv.conn();
    waiter.send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    srv.wait_blocked(1);
    pusher.send(&["RPUSH", "src", "a", "b"]);
    pusher.expect(b":2\r\n");
    waiter.expect(b"$1\r\na\r\n");
    pusher.send(&["LRANGE", "dst", "0", "-1"]);
    pusher.expect(b"*1\r\n$1\r\na\r\n");
    pusher.send(&["LRANGE", "src", "0", "-1"]);
    pusher.expect(b"*1\r\n$1\r\nb\r\n");

    // A client waiting on the destination is served by the move in the same pass.
    waiter.send(&["BRPOPLPUSH", "s2", "d2", "0"]);
    srv.wait_blocked(1);
    let mut last = srv.conn();
    last.send(&["BLPOP", "d2", "0"]);
    srv.wait_blocked(2);
    pusher.send(&["RPUSH", "s2", "z"]);
    pusher.expect(b":1\r\n");
    waiter.expect(b"$1\r\nz\r\n");
    last.expect(b"*2\r\n$2\r\nd2\r\n$1\r\nz\r\n");
}

#[test]
fn databases_do_not_wake_each_other() {
    let srv = Server::start();
    let mut waiter = srv.conn();
    let mut pusher = srv.conn();
    waiter.send(&["SELECT", "3"]);
    waiter.expect(b"+OK\r\n");
    waiter.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(1);
    pusher.send(&["RPUSH", "k", "db0"]);
    pusher.expect(b":1\r\n");
    pusher.send(&["SELECT", "3"]);
    pusher.expect(b"+OK\r\n");
    pusher.send(&["RPUSH", "k", "db3"]);
    pusher.expect(b":1\r\n");
    // The first reply the waiter gets is db 3's element.
    waiter.expect(b"*2\r\n$1\r\nk\r\n$3\r\ndb3\r\n");
    pusher.send(&["SELECT", "0"]);
    pusher.expect(b"+OK\r\n");
    pusher.send(&["LRANGE", "k", "0", "-1"]);
    pusher.expect(b"*1\r\n$3\r\ndb0\r\n");
}

#[test]
fn a_waiter_that_disconnects_is_forgotten() {
    let srv = Server::start();
    let mut gone = srv.conn();
    gone.send(&["BLPOP", "k", "0"]);
    srv.wait_blocked(1);
    drop(gone);
    srv.wait_blocked(0);
    let mut pusher = srv.conn();
    pusher.send(&["RPUSH", "k", "kept"]);
    pusher.expect(b":1\r\n");
    pusher.send(&["LLEN", "k"]);
    pusher.expect(b":1\r\n");
}
