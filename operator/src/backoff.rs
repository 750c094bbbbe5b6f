//! Per-object exponential backoff with jitter for failed reconciles: 5 s doubling to 5 min,
//! reset by a success. Kept per object so one broken resource never slows the others.
//! No network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First retry delay.
pub const MIN_DELAY: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// Jitter spreads retries by up to ±20 % so objects that failed together do not retry in step.
const JITTER: f64 = 0.2;

/// The delay before retry number `failures` (1 for the first failure). `jitter` is a uniform
/// sample in [0, 1).
pub fn delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = MIN_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
    let factor = 1.0 - JITTER + 2.0 * JITTER * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor).clamp(MIN_DELAY, MAX_DELAY)
}

/// Consecutive failure counts per object key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, u32>>);

impl Backoffs {
    /// Records a failure of `key` and returns the delay before its retry.
    pub fn failed(&self, key: &str, jitter: f64) -> Duration {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let failures = map.entry(key.to_owned()).or_default();
        *failures = failures.saturating_add(1);
        delay(*failures, jitter)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_to_five_minutes() {
        let mid = |n| delay(n, 0.5).as_secs();
        assert_eq!(
            [
                mid(1),
                mid(2),
                mid(3),
                mid(4),
                mid(5),
                mid(6),
                mid(7),
                mid(50)
            ],
            [5, 10, 20, 40, 80, 160, 300, 300]
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        assert_eq!(delay(1, 0.0), MIN_DELAY, "never below the floor");
        assert_eq!(delay(3, 0.0), Duration::from_secs(16));
        assert_eq!(
            delay(3, 0.999_999),
            Duration::from_secs_f64(20.0 * (0.8 + 0.4 * 0.999_999))
        );
        assert_eq!(delay(9, 1.0), MAX_DELAY, "never above the cap");
    }

    #[test]
    fn per_object_and_reset_on_success() {
        let b = Backoffs::default();
        assert_eq!(b.failed("ns/a", 0.5).as_secs(), 5);
        assert_eq!(b.failed("ns/a", 0.5).as_secs(), 10);
        assert_eq!(
            b.failed("ns/b", 0.5).as_secs(),
            5,
            "other objects are unaffected"
        );
        b.succeeded("ns/a");
        assert_eq!(b.failed("ns/a", 0.5).as_secs(), 5);
    }
}
