//! The master's write rate, for sizing the replica output buffer: growth of
//! `master_repl_offset` over time, kept as a recent peak and rounded up to a power of two so
//! the plan it feeds changes rarely (every change is a CONFIG SET on each node, a status
//! write and an event). Pure: offsets and times are passed in.
//!
//! It does not decide what the buffer should be: that is [`crate::policy`]'s, which bounds
//! it.

use crate::policy::ASSUMED_WRITE_BYTES_PER_SECOND;

/// A rate is measured over at least this long, so one busy instant is not taken for a rate.
pub const MIN_SAMPLE_MS: u64 = 1000;

/// A peak is kept this long after it was last reached, then the rate may come down: a burst
/// every few minutes keeps the buffer sized for it.
pub const PEAK_HOLD_MS: u64 = 15 * 60 * 1000;

/// The recent peak of the master's replication stream growth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteRate {
    /// The master, its offset and when (ms on the caller's clock) of the last sample.
    last: Option<(String, u64, u64)>,
    peak: HeldPeak,
}

/// A measurement's recent peak: the highest value is kept until it was last reached
/// [`PEAK_HOLD_MS`] ago, then a lower one replaces it. Values come in rounded, so the plan
/// they feed moves in steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldPeak {
    /// The peak and when (ms on the caller's clock) it was last reached.
    peak: Option<(u64, u64)>,
}

impl HeldPeak {
    /// Takes a value measured at `now_ms`.
    pub fn offer(&mut self, value: u64, now_ms: u64) {
        self.peak = match self.peak {
            Some((p, since)) if value < p && now_ms.saturating_sub(since) < PEAK_HOLD_MS => {
                Some((p, since))
            }
            _ => Some((value, now_ms)),
        };
    }

    /// The peak, when there is one.
    pub fn get(&self) -> Option<u64> {
        self.peak.map(|(p, _)| p)
    }
}

impl WriteRate {
    /// Takes the master's offset at `now_ms`. A new master, or an offset that went back,
    /// starts the measurement over.
    pub fn observe(&mut self, master: &str, offset: u64, now_ms: u64) {
        if let Some((m, o, t)) = &self.last
            && m == master
            && offset >= *o
        {
            let elapsed = now_ms.saturating_sub(*t);
            if elapsed < MIN_SAMPLE_MS {
                return;
            }
            self.peak
                .offer(rounded((offset - o).saturating_mul(1000) / elapsed), now_ms);
        }
        self.last = Some((master.to_owned(), offset, now_ms));
    }

    /// The recent peak in bytes per second, when it is above what the policy assumes
    /// anyway ([`ASSUMED_WRITE_BYTES_PER_SECOND`]); None when lower or not measured yet.
    pub fn peak(&self) -> Option<u64> {
        self.peak
            .get()
            .filter(|p| *p > ASSUMED_WRITE_BYTES_PER_SECOND)
    }

    /// Takes back a peak an earlier operator measured, held from `now_ms`.
    pub fn restore(&mut self, peak: u64, now_ms: u64) {
        self.peak.offer(rounded(peak), now_ms);
    }
}

/// The next power of two, so a rate that wobbles does not move the plan.
fn rounded(rate: u64) -> u64 {
    rate.checked_next_power_of_two().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::MIB;

    #[test]
    fn the_rate_is_the_offset_growth_rounded_up_and_its_peak_is_held() {
        let mut r = WriteRate::default();
        r.observe("n-0", 0, 0);
        assert_eq!(r.peak(), None, "one sample is no rate");
        r.observe("n-0", 3 * MIB, 500);
        assert_eq!(r.peak(), None, "too short a sample is skipped");
        r.observe("n-0", 6 * MIB, 1000);
        assert_eq!(r.peak(), Some(8 * MIB), "6 MiB in 1 s, rounded up");
        r.observe("n-0", 6 * MIB + 100, 2000);
        assert_eq!(r.peak(), Some(8 * MIB), "a quiet second keeps the peak");
        r.observe("n-0", 6 * MIB + 200, 2000 + PEAK_HOLD_MS);
        assert_eq!(
            r.peak(),
            None,
            "the peak goes after the hold, down to the assumption"
        );
        r.observe("n-0", 6 * MIB + 200 + 40 * MIB, 3000 + PEAK_HOLD_MS);
        assert_eq!(r.peak(), Some(64 * MIB));
    }

    #[test]
    fn a_new_master_or_an_offset_going_back_restarts_the_measurement() {
        let mut r = WriteRate::default();
        r.observe("n-0", 100 * MIB, 0);
        r.observe("n-1", 900 * MIB, 1000);
        assert_eq!(r.peak(), None, "offsets of two masters are not a rate");
        r.observe("n-1", 10, 2000);
        assert_eq!(r.peak(), None, "an offset that went back is not a rate");
        r.observe("n-1", 10 + 2 * MIB, 3000);
        assert_eq!(r.peak(), Some(2 * MIB));
    }

    #[test]
    fn a_restored_peak_is_held_like_a_measured_one() {
        let mut r = WriteRate::default();
        r.restore(5 * MIB, 0);
        assert_eq!(r.peak(), Some(8 * MIB));
        r.observe("n-0", 0, 1000);
        r.observe("n-0", 1000, 2000);
        assert_eq!(r.peak(), Some(8 * MIB));
    }
}
