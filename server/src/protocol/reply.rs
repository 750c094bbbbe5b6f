//! Reply encoding. One writer serves RESP2 and RESP3 so command code states what it means
//! (a map, a set, a double, a null) and the protocol chosen with HELLO decides the bytes.

/// The protocol a client negotiated with HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Appends encoded replies to a connection's output buffer.
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    proto: Protocol,
}

impl<'a> Reply<'a> {
    pub fn new(out: &'a mut Vec<u8>, proto: Protocol) -> Self {
        Reply { out, proto }
    }

    /// Switches protocol mid-reply: HELLO answers in the protocol it selects.
    pub fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
    }

    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    pub fn resp3(&self) -> bool {
        self.proto == Protocol::Resp3
    }

    /// Bytes written so far to the underlying buffer (to undo a partial reply).
    pub fn mark(&self) -> usize {
        self.out.len()
    }

    /// Drops everything written after `mark`.
    pub fn rewind(&mut self, mark: usize) {
        self.out.truncate(mark);
    }

    /// Raw bytes that are already valid RESP.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// A status reply (`+text`); `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.out.push(b'+');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// An error reply. `msg` carries its own code (`ERR ...`, `WRONGTYPE ...`); CR and LF are
    /// replaced by spaces, as Redis does, so the reply stays one line.
    pub fn error(&mut self, msg: &str) {
        self.out.push(b'-');
        self.out.extend(
            msg.bytes()
                .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, v: i64) {
        self.header(b':', v);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `v`.
    pub fn bulk_int(&mut self, v: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(v).as_bytes());
    }

    /// The null bulk string (`$-1` / `_`).
    pub fn null(&mut self) {
        self.out
            .extend_from_slice(if self.resp3() { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// The null array (`*-1` / `_`), used by blocking commands that time out and EXEC aborts.
    pub fn null_array(&mut self) {
        self.out
            .extend_from_slice(if self.resp3() { b"_\r\n" } else { b"*-1\r\n" });
    }

    pub fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// A map of `len` pairs: `%len` in RESP3, a flat array of `2 * len` in RESP2.
    pub fn map(&mut self, len: usize) {
        if self.resp3() {
            self.header(b'%', len as i64);
        } else {
            self.header(b'*', 2 * len as i64);
        }
    }

    /// A set: `~len` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        self.header(if self.resp3() { b'~' } else { b'*' }, len as i64);
    }

    /// An out-of-band push (`>` in RESP3, an array in RESP2): pub/sub messages.
    pub fn push(&mut self, len: usize) {
        self.header(if self.resp3() { b'>' } else { b'*' }, len as i64);
    }

    /// A double: `,` in RESP3, a bulk string in RESP2, formatted as Redis's `%.17g`.
    pub fn double(&mut self, v: f64) {
        let text = format_double(v);
        if self.resp3() {
            self.out.push(b',');
            self.out.extend_from_slice(text.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, v: bool) {
        if self.resp3() {
            self.out
                .extend_from_slice(if v { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(i64::from(v));
        }
    }

    /// A verbatim text (`=len\r\ntxt:...` in RESP3, a bulk string in RESP2): INFO, CLIENT LIST.
    pub fn verbatim(&mut self, text: &[u8]) {
        self.verbatim_as(b"txt", text);
    }

    /// A verbatim string of the given three-letter format (`txt`, `mkd`), as a script returns
    /// it.
    pub fn verbatim_as(&mut self, format: &[u8], text: &[u8]) {
        if self.resp3() {
            self.header(b'=', (text.len() + format.len() + 1) as i64);
            self.out.extend_from_slice(format);
            self.out.push(b':');
            self.out.extend_from_slice(text);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// A big number (`(digits` in RESP3, a bulk string in RESP2).
    pub fn big_number(&mut self, digits: &[u8]) {
        if self.resp3() {
            self.out.push(b'(');
            self.out.extend_from_slice(digits);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(digits);
        }
    }

    fn header(&mut self, kind: u8, n: i64) {
        let mut b = itoa::Buffer::new();
        self.out.push(kind);
        self.out.extend_from_slice(b.format(n).as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Formats a double as Redis's replies do (`%.17g`, with `inf`/`-inf`/`nan`).
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return "nan".into();
    }
    format_g(v, 17)
}

/// C's `%.{prec}g`: the shorter of fixed and exponent notation, trailing zeros removed.
pub fn format_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp_form = format!("{:.*e}", prec.saturating_sub(1), v);
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format_matches_c() {
        assert_eq!(format_g(1.5, 17), "1.5");
        assert_eq!(format_g(1.1, 17), "1.1000000000000001");
        assert_eq!(format_g(100.0, 17), "100");
        assert_eq!(format_g(1e20, 17), "1e+20");
        assert_eq!(format_g(0.0001, 17), "0.0001");
        assert_eq!(format_g(0.00001, 17), "1.0000000000000001e-05");
        assert_eq!(format_g(-2.5, 17), "-2.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
    }

    #[test]
    fn resp3_shapes() {
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, Protocol::Resp3);
        r.map(1);
        r.null();
        r.double(2.0);
        r.verbatim(b"a");
        assert_eq!(out, b"%1\r\n_\r\n,2\r\n=5\r\ntxt:a\r\n");
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, Protocol::Resp2);
        r.map(1);
        r.null();
        r.double(2.0);
        r.error("ERR a\r\nb");
        assert_eq!(out, b"*2\r\n$-1\r\n$1\r\n2\r\n-ERR a  b\r\n");
    }
}
