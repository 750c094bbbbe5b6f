//! A stream's consumer groups: each group's last delivered id, its 7.0 read counter, its
//! pending entries list (PEL) and its consumers, as Redis 7.0's `streamCG` and
//! `streamConsumer` hold them. Which entries a command delivers or claims is decided by the
//! command layer; this module keeps the two views of the PEL (the group's and each
//! consumer's) in step.

use super::id::StreamId;
use crate::keyspace::SmallBytes;
use std::collections::{BTreeMap, BTreeSet};

/// Redis's `SCG_INVALID_ENTRIES_READ`: the group's read counter is unknown.
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

/// One pending entry: delivered to `consumer`, not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub consumer: SmallBytes,
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// Unix ms of the consumer's last interaction (Redis 7.0's `seen_time`).
    pub seen_time: u64,
    /// The ids of the group's PEL owned by this consumer.
    pub pel: BTreeSet<StreamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read (7.0's `entries_read`), or [`ENTRIES_READ_UNKNOWN`].
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<SmallBytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer `name`, created with `now` as its seen time when absent; true when created.
    pub fn consumer(&mut self, name: &[u8], now: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(SmallBytes::new(name))
            .or_insert_with(|| Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            });
        (c, created)
    }

    /// Removes a consumer and its pending entries; the number of pending entries it had, or
    /// `None` when there is no such consumer.
    pub fn remove_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Acknowledges `id`; true when it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Records a delivery of `id` to `consumer` (which must exist): a new pending entry with
    /// one delivery, or an existing one moved to `consumer` (XCLAIM's ownership change).
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], time: u64, count: u64) {
        if let Some(old) = self.pel.get(&id)
            && old.consumer.as_bytes() != consumer
            && let Some(c) = self.consumers.get_mut(&old.consumer)
        {
            c.pel.remove(&id);
        }
        self.pel.insert(
            id,
            Pending {
                consumer: SmallBytes::new(consumer),
                delivery_time: time,
                delivery_count: count,
            },
        );
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }
}
