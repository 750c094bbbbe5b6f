//! Replication identity as PSYNC2 defines it: the current history id (`replid`), the
//! previous one (`replid2`) with the last offset it is valid for, and the random hex ids
//! both are made of. It must not know the backlog or the offsets' source: callers pass the
//! master offset in.

use rand::Rng;

/// The all-zero id Redis shows when there is no previous history.
pub const NO_ID: &str = "0000000000000000000000000000000000000000";

/// 40 random lowercase hex characters (`getRandomHexChars`).
pub fn random_hex40() -> String {
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// `replid`, `replid2` and `second_replid_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplIds {
    pub replid: String,
    pub replid2: String,
    /// replid2 is valid for PSYNC offsets up to this one; -1 when there is no replid2.
    pub second_offset: i64,
}

impl Default for ReplIds {
    fn default() -> Self {
        ReplIds {
            replid: random_hex40(),
            replid2: NO_ID.to_string(),
            second_offset: -1,
        }
    }
}

impl ReplIds {
    /// A new history with no past (`changeReplicationId` + `clearReplicationId2`): used when
    /// a master creates its backlog for a first replica and when the backlog expires.
    pub fn reset(&mut self) {
        *self = ReplIds::default();
    }

    /// Promotion (`shiftReplicationId`): the old id stays valid as replid2 for offsets up to
    /// `master_offset + 1`, so replicas of the same old master can continue partially.
    pub fn shift(&mut self, master_offset: u64) {
        self.replid2 = std::mem::replace(&mut self.replid, random_hex40());
        self.second_offset = master_offset as i64 + 1;
    }

    /// After a full sync the replica adopts its master's history and forgets its own past.
    pub fn adopt(&mut self, master_replid: &str) {
        self.replid = master_replid.to_string();
        self.replid2 = NO_ID.to_string();
        self.second_offset = -1;
    }

    /// `+CONTINUE <new id>`: the master's history changed (it was promoted); the replica keeps
    /// the old id as replid2 valid up to `master_offset + 1`.
    pub fn follow(&mut self, new_replid: &str, master_offset: u64) {
        if new_replid != self.replid {
            self.replid2 = std::mem::replace(&mut self.replid, new_replid.to_string());
            self.second_offset = master_offset as i64 + 1;
        }
    }

    /// Whether a PSYNC for `id` at `offset` belongs to our history (the id half of
    /// `masterTryPartialResynchronization`).
    pub fn accepts(&self, id: &str, offset: u64) -> bool {
        id.eq_ignore_ascii_case(&self.replid)
            || (id.eq_ignore_ascii_case(&self.replid2) && offset as i64 <= self.second_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_keeps_the_old_history_valid_up_to_the_offset() {
        let mut ids = ReplIds::default();
        assert_eq!(ids.replid.len(), 40);
        let old = ids.replid.clone();
        ids.shift(1190);
        assert_ne!(ids.replid, old);
        assert!(ids.accepts(&old, 1191));
        assert!(!ids.accepts(&old, 1192));
        assert!(ids.accepts(&ids.replid.clone(), 5000));
        ids.follow("a".repeat(40).as_str(), 2000);
        assert_eq!(ids.second_offset, 2001);
    }
}
