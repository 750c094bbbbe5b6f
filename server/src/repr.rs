//! Redis's `sdscatrepr`: how Redis quotes bytes for humans (MONITOR lines, the AOF
//! manifest's file names). Pure.

use std::fmt::Write as _;

/// Redis's `sdscatrepr`: a double-quoted string with C escapes and `\xHH` for the rest.
pub fn quote_into(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}
