//! One key of a database: the key, its value, its expiry and its access clock.

use super::bytes::SmallBytes;
use super::value::Value;

/// A key with its value and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: SmallBytes,
    pub value: Value,
    /// Absolute expiry in Unix milliseconds, 0 for none.
    pub(super) expire_at: u64,
    /// Access clock for LRU (seconds) or LFU (minutes << 8 | log counter) eviction.
    pub access: u32,
}

impl Entry {
    pub fn new(key: SmallBytes, value: Value) -> Self {
        Entry {
            key,
            value,
            expire_at: 0,
            access: 0,
        }
    }

    /// The expiry time in Unix milliseconds, if any.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }
}
