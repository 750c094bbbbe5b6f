//! Shared test support: starting tandem-server and a real redis-server on free ports, a raw
//! RESP client, a complete RESP2/RESP3 reply reader, and redis-cli's argument quoting.
//!
//! Servers are killed when their guard drops. Nothing here sleeps for a fixed time: readiness
//! is polled against a deadline.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running server process, killed on drop; its working directory (where a SAVE would
/// write) is a fresh temporary one, removed on drop.
pub struct ServerGuard {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub name: &'static str,
}

impl ServerGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A fresh connection with a read timeout, so a missing reply fails instead of hanging.
    pub fn connect(&self) -> Conn {
        Conn::new(self.port)
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use tandem_testkit::require_real_deps;

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Returns the path of a real tool, or `None` after printing the skip line; panics instead
/// when real dependencies are required.
pub fn real_tool(name: &str) -> Option<PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None => {
            tandem_testkit::skip_or_fail(&format!("{name} not found on PATH"));
            None
        }
    }
}

fn spawn(name: &'static str, bin: &Path, port: u16, extra: &[&str]) -> ServerGuard {
    let dir = std::env::temp_dir().join(format!("tandem-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a server directory");
    let mut cmd = Command::new(bin);
    cmd.current_dir(&dir)
        .arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg("no")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
    let mut guard = ServerGuard {
        child,
        dir,
        port,
        name,
    };
    wait_ready(&mut guard);
    guard
}

/// Polls until the server answers PING, failing after a deadline.
fn wait_ready(g: &mut ServerGuard) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(g.alive(), "{} exited during startup", g.name);
        if let Ok(s) = TcpStream::connect(("127.0.0.1", g.port)) {
            let mut c = Conn::from_stream(s);
            c.send(&[b"PING"]);
            if c.try_read_reply().is_some() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not start on port {}",
            g.name,
            g.port
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the tandem-server binary built for this test run.
pub fn start_tandem(extra: &[&str]) -> ServerGuard {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tandem-server"));
    spawn("tandem-server", &bin, free_port(), extra)
}

/// Starts a real redis-server with the debug command enabled, or `None` (after printing the
/// skip line) when it is not installed.
pub fn start_redis(extra: &[&str]) -> Option<ServerGuard> {
    let bin = real_tool("redis-server")?;
    let mut args = vec!["--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Some(spawn("redis-server", &bin, free_port(), &args))
}

/// A blocking raw connection.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn new(port: u16) -> Self {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    pub fn from_stream(s: TcpStream) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::new(s),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let bytes = encode(args);
        self.write(&bytes);
    }

    /// One complete reply, raw bytes; panics on a closed connection or timeout.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.try_read_reply().expect("a complete reply")
    }

    pub fn try_read_reply(&mut self) -> Option<Vec<u8>> {
        read_value(&mut self.reader).ok().map(|v| v.raw)
    }

    pub fn read_value(&mut self) -> std::io::Result<Value> {
        read_value(&mut self.reader)
    }

    /// Sends a command and returns its raw reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send(args);
        self.read_reply()
    }

    /// True when the server closed the connection (reads EOF before any byte).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One parsed reply: its header line (type byte included, without CRLF), its children for
/// aggregates, and the raw bytes of the whole reply.
#[derive(Debug, Clone)]
pub struct Value {
    pub head: Vec<u8>,
    pub children: Vec<Value>,
    pub raw: Vec<u8>,
}

impl Value {
    pub fn kind(&self) -> u8 {
        self.head[0]
    }
}

fn read_line(r: &mut impl BufRead, raw: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    raw.extend_from_slice(&line);
    if !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad reply line {:?}", escape(&line)),
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn number(head: &[u8]) -> std::io::Result<i64> {
    std::str::from_utf8(&head[1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad length in {:?}", escape(head)),
            )
        })
}

/// Reads exactly one complete reply of any RESP2 or RESP3 type. An attribute (`|`) is read
/// together with the reply it annotates.
pub fn read_value(r: &mut impl BufRead) -> std::io::Result<Value> {
    let mut raw = Vec::new();
    let head = read_line(r, &mut raw)?;
    if head.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "empty reply line",
        ));
    }
    let mut children = Vec::new();
    match head[0] {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => {}
        b'$' | b'!' | b'=' => {
            let n = number(&head)?;
            if n >= 0 {
                let mut body = vec![0u8; n as usize + 2];
                r.read_exact(&mut body)?;
                raw.extend_from_slice(&body);
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(&head)?;
            let n = if matches!(head[0], b'%' | b'|') {
                n * 2
            } else {
                n
            };
            for _ in 0..n.max(0) {
                let v = read_value(r)?;
                raw.extend_from_slice(&v.raw);
                children.push(v);
            }
            if head[0] == b'|' {
                let v = read_value(r)?;
                raw.extend_from_slice(&v.raw);
                children.push(v);
            }
        }
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown reply type {:?}", char::from(other)),
            ));
        }
    }
    Ok(Value {
        head,
        children,
        raw,
    })
}

/// Printable form of bytes: printable ASCII as is, everything else escaped.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Splits a line as redis-cli does (`sdssplitargs`): spaces separate; `"..."` takes
/// `\n \r \t \b \a \xHH` and `\<c>` escapes; `'...'` takes `\'`; a closing quote must be
/// followed by a space or the end. `None` for unbalanced quotes.
pub fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            if dq {
                let c = *b.get(i)?;
                if c == b'\\'
                    && b.get(i + 1) == Some(&b'x')
                    && i + 3 < b.len()
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit()
                {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
                    cur.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else if c == b'\\' && i + 1 < b.len() {
                    i += 1;
                    cur.push(match b[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if sq {
                let c = *b.get(i)?;
                if c == b'\\' && b.get(i + 1) == Some(&b'\'') {
                    cur.push(b'\'');
                    i += 1;
                } else if c == b'\'' {
                    if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(&c) => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(cur);
    }
}
