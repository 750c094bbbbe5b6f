//! A raw RESP connection for tests that assert the exact bytes a server sends: a reply is
//! read whole (every RESP2 and RESP3 type), so a test never guesses where one ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read waits: a reply that does not come fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking raw connection.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn new(port: u16) -> Self {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    pub fn from_stream(s: TcpStream) -> Self {
        s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
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

    /// Reads exactly as many bytes as `want` has and asserts they are `want`: for replies
    /// whose bytes are the point (pushes, several replies in a row).
    #[track_caller]
    pub fn expect(&mut self, want: &[u8]) {
        let mut got = vec![0u8; want.len()];
        if let Err(e) = self.reader.read_exact(&mut got) {
            panic!("expected {:?}: {e}", escape(want));
        }
        assert_eq!(escape(&got), escape(want));
    }

    /// Sends a command and asserts its exact reply.
    #[track_caller]
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A], want: &[u8]) {
        self.send(args);
        self.expect(want);
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

#[cfg(test)]
mod tests {
    use super::{encode, escape, read_value};

    #[test]
    fn a_reply_is_read_whole_whatever_its_type() {
        let wire: &[u8] = b"|1\r\n+ttl\r\n:3\r\n%1\r\n$1\r\nk\r\n*2\r\n_\r\n$-1\r\n+next\r\n";
        let mut r = wire;
        let v = read_value(&mut r).expect("a reply");
        assert_eq!(v.kind(), b'|');
        assert_eq!(
            v.children.len(),
            3,
            "the attribute's pair and the map it annotates"
        );
        assert_eq!(
            escape(&read_value(&mut r).expect("the next").raw),
            "+next\\r\\n"
        );
    }

    #[test]
    fn commands_are_multibulk_and_binary_safe() {
        assert_eq!(
            encode(&[&b"SET"[..], b"k", b"\r\n\x00"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\r\n\x00\r\n"
        );
    }
}
