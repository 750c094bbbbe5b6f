//! The master's dataset size as it runs (`used_memory_dataset`), for the tuning policy:
//! the hint in the spec is a guess made once, the dataset grows. A size counts once it has
//! lasted [`SUSTAIN_MS`] (the least of the samples over that span): `used_memory` also holds
//! what a bulk load allocates for a moment (buffers being written, their spare capacity),
//! which is no dataset. Then it is kept as a recent peak ([`HeldPeak`]) and rounded up to an eighth of its power of two, so a dataset that
//! wobbles or shrinks for a moment does not move the plan (every change is a CONFIG SET on
//! each node, a status write and an event), while one that grew by more than an eighth
//! does. Pure: sizes and times are passed in.
//!
//! It does not decide what the size means: [`crate::policy`] takes the larger of it and
//! the hint.

use std::collections::VecDeque;

use super::rate::HeldPeak;
use crate::quantity::MIB;

/// Sizes below this are not taken: no rule of the policy moves below it (the backlog's
/// floor is 64 MiB, the buffer's 256 MiB, the timeouts' floors hold up to 600 MiB), and a
/// small dataset's every wobble would otherwise be a status write.
pub const MIN_OBSERVED_BYTES: u64 = 64 * MIB;

/// How long a size must last to count.
pub const SUSTAIN_MS: u64 = 5000;

/// Samples a size must be seen in to count.
pub const MIN_SAMPLES: usize = 3;

/// The recent peak of the master's dataset size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetSize {
    /// Samples (bytes, ms) of the last [`SUSTAIN_MS`] and the one just before, oldest first.
    recent: VecDeque<(u64, u64)>,
    peak: HeldPeak,
}

impl DatasetSize {
    /// Takes the master's `used_memory_dataset` at `now_ms`.
    pub fn observe(&mut self, bytes: u64, now_ms: u64) {
        self.recent.push_back((bytes, now_ms));
        while self
            .recent
            .get(1)
            .is_some_and(|(_, at)| now_ms.saturating_sub(*at) >= SUSTAIN_MS)
        {
            self.recent.pop_front();
        }
        let Some((_, oldest)) = self.recent.front() else {
            return;
        };
        // Over at least three samples: a master too busy to answer most passes gives too
        // few to tell a lasting size from a long moment.
        if now_ms.saturating_sub(*oldest) < SUSTAIN_MS || self.recent.len() < MIN_SAMPLES {
            return;
        }
        let lasting = self.recent.iter().map(|(b, _)| *b).min().unwrap_or(0);
        if lasting >= MIN_OBSERVED_BYTES {
            self.peak.offer(rounded(lasting), now_ms);
        }
    }

    /// The recent peak, rounded; None until a size lasted.
    pub fn peak(&self) -> Option<u64> {
        self.peak.get()
    }

    /// Takes back a peak an earlier operator measured, held from `now_ms`.
    pub fn restore(&mut self, bytes: u64, now_ms: u64) {
        self.peak.offer(rounded(bytes), now_ms);
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
        // Samples a second apart: a size counts after SUSTAIN_MS.
        let feed = |d: &mut DatasetSize, bytes: u64, from: u64| {
            for s in 0..=SUSTAIN_MS / 1000 {
                d.observe(bytes, from + s * 1000);
            }
        };
        assert_eq!(d.peak(), None);
        feed(&mut d, 1536 * MIB, 0);
        assert_eq!(d.peak(), Some(1536 * MIB));
        feed(&mut d, 200 * MIB, 10_000);
        assert_eq!(
            d.peak(),
            Some(1536 * MIB),
            "a FLUSHALL does not shrink the plan at once"
        );
        feed(&mut d, 200 * MIB, 10_000 + PEAK_HOLD_MS);
        assert_eq!(
            d.peak(),
            Some(208 * MIB),
            "after the hold the plan may come down"
        );
        feed(&mut d, MIN_OBSERVED_BYTES - 1, 20_000 + 2 * PEAK_HOLD_MS);
        assert_eq!(
            d.peak(),
            Some(208 * MIB),
            "a size no rule looks at is not taken"
        );
        feed(&mut d, 3 * GIB, 30_000 + 2 * PEAK_HOLD_MS);
        assert_eq!(d.peak(), Some(3 * GIB), "growth counts once it lasted");
    }

    #[test]
    fn a_moment_of_bulk_load_buffers_is_no_dataset() {
        let mut d = DatasetSize::default();
        for (s, bytes) in [1200, 1200, 2800, 1200, 1200, 1200, 1200]
            .into_iter()
            .enumerate()
        {
            d.observe(bytes * MIB, s as u64 * 1000);
        }
        assert_eq!(d.peak(), Some(1280 * MIB), "the spike lasted one sample");
        let mut d = DatasetSize::default();
        d.observe(2 * GIB, 0);
        d.observe(2 * GIB, SUSTAIN_MS - 1);
        assert_eq!(d.peak(), None, "not lasted yet");
        d.observe(2 * GIB, SUSTAIN_MS);
        assert_eq!(d.peak(), Some(2 * GIB));
        let mut d = DatasetSize::default();
        d.observe(2 * GIB, 0);
        d.observe(2 * GIB, 2 * SUSTAIN_MS);
        assert_eq!(d.peak(), None, "two samples are too few");
    }
}
