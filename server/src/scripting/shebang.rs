//! The `#!lua flags=...` line a Redis 7.0 script may start with.

use crate::state::scripting::ScriptFlags;

/// Reads the shebang of a script body: its flags, and how many bytes the line takes (the
/// line is skipped when compiling but its newline kept, so line numbers stay the user's).
/// A body without a shebang runs in compatibility mode.
///
/// # Errors
/// Redis's texts, without the `ERR ` code.
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((
            ScriptFlags {
                compat: true,
                ..ScriptFlags::default()
            },
            0,
        ));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(engine) = parts.first() else {
        return Err("Invalid engine in script shebang".into());
    };
    if *engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags::default();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        // An empty list declares no flag; an empty item in a list is an unknown flag.
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" => flags.allow_stale = true,
                "no-cluster" => flags.no_cluster = true,
                "allow-cross-slot-keys" => flags.allow_cross_slot = true,
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_errors_as_redis_reads_them() {
        let (f, len) = parse_shebang(b"return 1").expect("plain");
        assert!(f.compat);
        assert_eq!(len, 0);
        let (f, len) = parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").expect("flags");
        assert!(f.no_writes && f.allow_oom && !f.compat);
        assert_eq!(len, 31);
        let (f, _) = parse_shebang(b"#!lua flags=\nreturn 1").expect("no flags");
        assert_eq!(f, ScriptFlags::default());
        assert_eq!(
            parse_shebang(b"#!lua flags=no-writes,\n").expect_err("an error"),
            "Unexpected flag in script shebang: "
        );
        assert_eq!(
            parse_shebang(b"#!lua").expect_err("an error"),
            "Invalid script shebang"
        );
        assert_eq!(
            parse_shebang(b"#!python\n").expect_err("an error"),
            "Unexpected engine in script shebang: #!python"
        );
        assert_eq!(
            parse_shebang(b"#!lua name=x\n").expect_err("an error"),
            "Unknown lua shebang option: name=x"
        );
        assert_eq!(
            parse_shebang(b"#!lua flags=bad\n").expect_err("an error"),
            "Unexpected flag in script shebang: bad"
        );
    }
}
