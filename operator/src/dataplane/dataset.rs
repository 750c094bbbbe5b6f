//! The master's dataset size as it runs (`used_memory_dataset`), for the tuning policy:
//! the hint in the spec is a guess made once, the dataset grows. Kept as a recent peak
//! ([`HeldPeak`]) and rounded up to an eighth of its power of two, so a dataset that
//! wobbles or shrinks for a moment does not move the plan (every change is a CONFIG SET on
//! each node, a status write and an event), while one that grew by more than an eighth
//! does. Pure: sizes and times are passed in.
//!
//! It does not decide what the size means: [`crate::policy`] takes the larger of it and
//! the hint.

use super::rate::HeldPeak;
use crate::quantity::MIB;

/// Sizes below this are not taken: no rule of the policy moves below it (the backlog's
/// floor is 64 MiB, the buffer's 256 MiB, the timeouts' floors hold up to 600 MiB), and a
/// small dataset's every wobble would otherwise be a status write.
pub const MIN_OBSERVED_BYTES: u64 = 64 * MIB;

/// The recent peak of the master's dataset size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatasetSize {
    peak: HeldPeak,
}

impl DatasetSize {
    /// Takes the master's `used_memory_dataset` at `now_ms`.
    pub fn observe(&mut self, bytes: u64, now_ms: u64) {
        if bytes >= MIN_OBSERVED_BYTES {
            self.peak.offer(rounded(bytes), now_ms);
        }
    }

    /// The recent peak, rounded; None until the master reported one.
    pub fn peak(&self) -> Option<u64> {
        self.peak.get()
    }

    /// Takes back a peak an earlier operator measured, held from `now_ms`.
    pub fn restore(&mut self, bytes: u64, now_ms: u64) {
        self.observe(bytes, now_ms);
    }
}

/// Up to the next eighth of the power of two at or below `bytes`: 1.5 GiB stays 1.5 GiB,
/// 1.51 GiB becomes 1.625 GiB, 600 MiB becomes 640 MiB. Coarser steps (powers of two)
/// would move a 513 MiB dataset across the 1 GiB diskless threshold.
fn rounded(bytes: u64) -> u64 {
    if bytes < 8 {
        return bytes;
    }
    let step = (1u64 << bytes.ilog2()) / 8;
    bytes.div_ceil(step).saturating_mul(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::rate::PEAK_HOLD_MS;
    use crate::quantity::GIB;

    #[test]
    fn sizes_round_up_to_an_eighth_of_their_power_of_two() {
        assert_eq!(rounded(3 * GIB / 2), 3 * GIB / 2);
        assert_eq!(rounded(3 * GIB / 2 + 1), 13 * GIB / 8);
        assert_eq!(rounded(600 * MIB), 640 * MIB);
        assert_eq!(
            rounded(513 * MIB),
            576 * MIB,
            "stays below the 1 GiB threshold"
        );
        assert_eq!(rounded(GIB), GIB);
        assert_eq!(rounded(0), 0);
        assert_eq!(rounded(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_peak_is_held_then_follows_a_smaller_dataset() {
        let mut d = DatasetSize::default();
        assert_eq!(d.peak(), None);
        d.observe(1536 * MIB, 0);
        assert_eq!(d.peak(), Some(1536 * MIB));
        d.observe(200 * MIB, 1000);
        assert_eq!(
            d.peak(),
            Some(1536 * MIB),
            "a FLUSHALL does not shrink the plan at once"
        );
        d.observe(200 * MIB, 1000 + PEAK_HOLD_MS);
        assert_eq!(
            d.peak(),
            Some(208 * MIB),
            "after the hold the plan may come down"
        );
        d.observe(MIN_OBSERVED_BYTES - 1, 2 * PEAK_HOLD_MS);
        assert_eq!(
            d.peak(),
            Some(208 * MIB),
            "a size no rule looks at is not taken"
        );
        d.observe(3 * GIB, 2000 + PEAK_HOLD_MS);
        assert_eq!(d.peak(), Some(3 * GIB), "growth counts at once");
    }
}
