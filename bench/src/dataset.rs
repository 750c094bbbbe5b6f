//! The YCSB-shaped dataset the benchmarks load: records as YCSB's Redis binding writes them
//! (one hash per record, `field0`..`field9` of 100 random printable bytes) and, for the full
//! sync, the binding's `_indices` sorted set. It builds commands and sizes; it does not start
//! servers or decide what is measured.

use rand::{Rng, rngs::StdRng};

/// Fields per record and bytes per value, as YCSB's core workloads default.
pub const FIELDS: usize = 10;
pub const VALUE_LEN: usize = 100;
/// The sorted set YCSB's Redis binding keeps for scans: every record key, scored by its hash.
pub const INDEX_KEY: &str = "_indices";

/// Printable random bytes, like YCSB's values (random, so RDB compression flatters nobody).
pub fn random_text(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random_range(b' '..=b'~')).collect()
}

/// The key of record `k`: `user` and 19 digits, spread like YCSB's hashed insert order.
pub fn key(k: u64) -> String {
    format!("user{}", 1_000_000_000_000_000_000u64 + k * 7919)
}

/// `HSET <key> field0 <v> .. field9 <v>` for record `k`.
pub fn hset(rng: &mut StdRng, k: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key(k));
    for f in 0..FIELDS {
        cmd.arg(format!("field{f}"))
            .arg(random_text(rng, VALUE_LEN));
    }
    cmd
}

/// `ZADD _indices <score> <key>`: the binding scores a key by Java's `String.hashCode`.
pub fn index_add(k: u64) -> redis::Cmd {
    let key = key(k);
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(INDEX_KEY).arg(java_hash(&key)).arg(key);
    cmd
}

/// Java's `String.hashCode` (ASCII keys): `s[0]*31^(n-1) + ... + s[n-1]` in wrapping i32.
pub fn java_hash(s: &str) -> i32 {
    s.bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)))
}

/// Logical bytes of one record with its index entry: key, field names, values, and the
/// index member with its 8-byte score. This, times the records, is `dataset_bytes`; what
/// each server spends in memory for it is measured, not assumed.
pub fn record_bytes() -> u64 {
    let key = key(0).len();
    let fields: usize = (0..FIELDS).map(|f| format!("field{f}").len()).sum();
    (key + fields + FIELDS * VALUE_LEN + key + 8) as u64
}

/// Records needed for `size` logical bytes (at least one).
pub fn records_for(size: u64) -> u64 {
    size.div_ceil(record_bytes()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // "hello".hashCode() == 99162322 and "user1".hashCode() == 111578566 in Java.
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash("user1"), 111_578_566);
    }

    #[test]
    fn record_size_and_count() {
        assert_eq!(key(0).len(), 23);
        assert_eq!(record_bytes(), 23 + 60 + 1000 + 23 + 8);
        assert_eq!(records_for(512 << 20), (512u64 << 20).div_ceil(1114));
        assert_eq!(records_for(1), 1);
    }
}
