//! Argument shapes several command families share, parsed one way everywhere: SCAN cursors
//! and options (SCAN, HSCAN, SSCAN, ZSCAN), the scan reply, the count of the random-member
//! commands (HRANDFIELD, SRANDMEMBER, ZRANDMEMBER) with their WITHVALUES/WITHSCORES flag,
//! and a distinct random sample for them.

use super::{CmdError, eq, int_arg};
use crate::protocol::{Args, Reply};
use rand::Rng;
use std::hash::Hash;

/// SCAN-family options: MATCH pattern, COUNT n, and (SCAN only) TYPE name.
pub struct ScanOptions<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub type_name: Option<String>,
}

/// Parses a SCAN cursor as Redis 7.0 does with `strtoul`: an empty string is 0, a sign is
/// accepted (`-1` wraps to the largest cursor), leading space, trailing junk and overflow are
/// `ERR invalid cursor`.
pub fn parse_cursor(a: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::msg("ERR invalid cursor");
    let (neg, digits) = match a.first() {
        None => return Ok(0),
        Some(b'-') => (true, &a[1..]),
        Some(b'+') => (false, &a[1..]),
        Some(_) => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// Parses SCAN options starting at argument `from`; TYPE only when `allow_type`.
pub fn scan_options<'a>(
    args: Args<'a>,
    from: usize,
    allow_type: bool,
) -> Result<ScanOptions<'a>, CmdError> {
    let mut o = ScanOptions {
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut i = from;
    while i < args.len() {
        let a = args.get(i);
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        if eq(a, "count") {
            let n = int_arg(args.get(i + 1))?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            o.count = n as usize;
        } else if eq(a, "match") {
            let p = args.get(i + 1);
            o.pattern = (p != b"*").then_some(p);
        } else if eq(a, "type") && allow_type {
            o.type_name = Some(String::from_utf8_lossy(args.get(i + 1)).to_ascii_lowercase());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok(o)
}

/// The head of a scan reply: the next cursor, then an array of `items` elements the caller
/// writes.
pub fn scan_reply_head(reply: &mut Reply<'_>, next: u64, items: usize) {
    reply.array(2);
    reply.bulk(itoa::Buffer::new().format(next).as_bytes());
    reply.array(items);
}

/// The count argument of HRANDFIELD / SRANDMEMBER / ZRANDMEMBER at `args[2]` and, when
/// `with` names the flag (WITHVALUES, WITHSCORES), whether it follows. A negative count asks
/// for repetitions; Redis refuses `i64::MIN` and, with the flag, counts whose doubled reply
/// would overflow.
pub fn random_count(args: Args<'_>, with: Option<&str>) -> Result<(i64, bool), CmdError> {
    let l = int_arg(args.get(2))?;
    if l == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let flag = match (args.len(), with) {
        (3, _) => false,
        (4, Some(name)) if eq(args.get(3), name) => true,
        _ => return Err(CmdError::Syntax),
    };
    if flag && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    Ok((l, flag))
}

/// `count` distinct random elements of a collection of `size`, `count < size`: a partial
/// shuffle of all of them (`all`) when many are wanted, else draws (`draw`) until enough
/// distinct ones came, as Redis's two strategies.
pub fn distinct_sample<T: Copy + Eq + Hash, R: Rng>(
    size: usize,
    count: usize,
    rng: &mut R,
    all: impl FnOnce() -> Vec<T>,
    mut draw: impl FnMut(&mut R) -> Option<T>,
) -> Vec<T> {
    if count * 3 > size {
        let mut all = all();
        for i in 0..count {
            let j = rng.random_range(i..size);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = hashbrown::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            if let Some(x) = draw(rng)
                && seen.insert(x)
            {
                out.push(x);
            }
        }
        out
    }
}

/// A count that must be >= 0 (`getPositiveLongFromObjectOrReply`): one error text for
/// every failure, `msg` or Redis's default.
pub fn non_negative_arg(a: &[u8], msg: Option<&str>) -> Result<i64, CmdError> {
    match crate::protocol::parse_i64(a) {
        Some(v) if v >= 0 => Ok(v),
        _ => Err(CmdError::msg(
            msg.unwrap_or("ERR value is out of range, must be positive"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cursors_read_like_strtoul() {
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+7"), Ok(7));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        for bad in [&b"-"[..], b"+", b" 1", b"1x", b"18446744073709551616"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn samples_are_distinct_by_either_strategy() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let items: Vec<u32> = (0..30).collect();
        for count in [2, 25] {
            let s = distinct_sample(
                items.len(),
                count,
                &mut rng,
                || items.clone(),
                |r| Some(items[r.random_range(0..items.len())]),
            );
            let set: hashbrown::HashSet<_> = s.iter().collect();
            assert_eq!((s.len(), set.len()), (count, count));
        }
    }
}
