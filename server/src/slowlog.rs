//! The slow log: commands whose execution took at least `slowlog-log-slower-than`
//! microseconds, newest first, at most `slowlog-max-len` of them (SLOWLOG GET/LEN/RESET).
//!
//! Entries keep what Redis 7.0 keeps: at most 32 arguments (the last one says how many more
//! there were), each cut to 128 bytes, and passwords redacted. This module only stores;
//! timing and the decision to record are the executor's.

use std::collections::VecDeque;

/// Arguments kept per entry, the last slot included (`SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGC: usize = 32;
/// Bytes kept per argument (`SLOWLOG_ENTRY_MAX_STRING`).
const MAX_STRING: usize = 128;

/// One logged command.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix time in seconds when the command ran.
    pub time_s: u64,
    pub duration_us: u64,
    pub args: Vec<Vec<u8>>,
    /// `ip:port` of the client.
    pub addr: String,
    pub name: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Slowlog {
    entries: VecDeque<Entry>,
    /// Ids keep growing across RESET, as in Redis.
    next_id: u64,
}

impl Slowlog {
    /// Records a command if it was slow enough; `threshold_us` < 0 disables the log.
    pub fn record<'a>(
        &mut self,
        threshold_us: i64,
        max_len: u64,
        duration_us: u64,
        args: impl ExactSizeIterator<Item = &'a [u8]>,
        addr: &str,
        name: &[u8],
    ) {
        if threshold_us < 0 || duration_us < threshold_us.unsigned_abs() {
            return;
        }
        let argc = args.len();
        let mut kept: Vec<Vec<u8>> = args.take(argc.min(MAX_ARGC)).map(truncate).collect();
        if argc > MAX_ARGC {
            kept[MAX_ARGC - 1] =
                format!("... ({} more arguments)", argc - MAX_ARGC + 1).into_bytes();
        }
        redact(&mut kept);
        self.entries.push_front(Entry {
            id: self.next_id,
            time_s: crate::clock::now_ms() / 1000,
            duration_us,
            args: kept,
            addr: addr.to_string(),
            name: name.to_vec(),
        });
        self.next_id += 1;
        self.entries
            .truncate(usize::try_from(max_len).unwrap_or(usize::MAX));
    }

    /// The newest `count` entries (all for `None`).
    pub fn newest(&self, count: Option<usize>) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(count.unwrap_or(usize::MAX))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

fn truncate(a: &[u8]) -> Vec<u8> {
    if a.len() <= MAX_STRING {
        return a.to_vec();
    }
    let mut v = a[..MAX_STRING].to_vec();
    v.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
    v
}

/// Replaces secrets with `(redacted)`: AUTH's arguments, HELLO's AUTH pair, ACL SETUSER's
/// user and rules (passwords among them), and the value of CONFIG SET requirepass /
/// masterauth.
fn redact(args: &mut [Vec<u8>]) {
    const REDACTED: &[u8] = b"(redacted)";
    let Some(cmd) = args.first().map(|c| c.to_ascii_lowercase()) else {
        return;
    };
    let secret: Vec<usize> = match cmd.as_slice() {
        b"auth" => (1..args.len()).collect(),
        b"hello" => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"auth"))
            .map(|i| vec![i + 1, i + 2])
            .unwrap_or_default(),
        b"acl"
            if args
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"setuser")) =>
        {
            (2..args.len()).collect()
        }
        b"config" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set")) => (2..args.len())
            .step_by(2)
            .filter(|&i| {
                [&b"requirepass"[..], b"masterauth"]
                    .iter()
                    .any(|n| args[i].eq_ignore_ascii_case(n))
            })
            .map(|i| i + 1)
            .collect(),
        _ => Vec::new(),
    };
    for i in secret {
        if let Some(a) = args.get_mut(i) {
            *a = REDACTED.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slowlog;

    fn record(log: &mut Slowlog, args: &[&[u8]]) {
        log.record(0, 3, 7, args.iter().copied(), "127.0.0.1:1", b"");
    }

    #[test]
    fn keeps_what_redis_keeps() {
        let mut log = Slowlog::default();
        let many: Vec<Vec<u8>> = (0..41).map(|i| i.to_string().into_bytes()).collect();
        let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        record(&mut log, &many);
        let long = vec![b'x'; 200];
        record(&mut log, &[b"set", b"k", &long]);
        record(&mut log, &[b"AUTH", b"user", b"pass"]);
        record(
            &mut log,
            &[b"hello", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"],
        );
        assert_eq!(log.len(), 3, "slowlog-max-len");
        let e: Vec<_> = log.newest(None).collect();
        assert_eq!(e[0].id, 3);
        assert_eq!(e[0].args[3], b"(redacted)");
        assert_eq!(e[0].args[4], b"(redacted)");
        assert_eq!(e[0].args[6], b"n");
        assert_eq!(
            e[1].args[1..],
            [b"(redacted)".to_vec(), b"(redacted)".to_vec()]
        );
        assert_eq!(
            e[2].args[2],
            [vec![b'x'; 128], b"... (72 more bytes)".to_vec()].concat()
        );
        log.record(-1, 3, 1_000_000, [&b"get"[..]].into_iter(), "", b"");
        log.record(10, 3, 9, [&b"get"[..]].into_iter(), "", b"");
        assert_eq!(
            log.newest(None).next().map(|e| e.id),
            Some(3),
            "not recorded"
        );
        let mut fresh = Slowlog::default();
        record(&mut fresh, &many);
        let args = &fresh.newest(Some(1)).next().expect("entry").args;
        assert_eq!(args.len(), 32);
        assert_eq!(args[30], b"30");
        assert_eq!(args[31], b"... (10 more arguments)");
        record(&mut fresh, &[b"ACL", b"SETUSER", b"app", b"on", b">secret"]);
        let args = &fresh.newest(Some(1)).next().expect("entry").args;
        assert_eq!(args[1], b"SETUSER");
        assert!(args[2..].iter().all(|a| a == b"(redacted)"));
        fresh.reset();
        assert!(fresh.is_empty());
    }
}
