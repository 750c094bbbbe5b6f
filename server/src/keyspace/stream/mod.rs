//! The stream type: entries ordered by id in packed nodes (see [`block`]), the counters Redis
//! 7.0 keeps beside them (last id, entries added, max deleted id, first id) and the consumer
//! groups ([`group`]).
//!
//! Nodes sit in a `BTreeMap` keyed by the id of the first entry they were created with (their
//! master id, as Redis keys its radix tree by it) and split where Redis's listpacks split, so
//! approximate trimming removes the same entries Redis removes. This module knows no command
//! syntax and no propagation; it checks nothing the command layer has already checked (ids
//! given to [`Stream::append`] are above [`Stream::last_id`]).

pub mod block;
pub mod group;
mod id;

pub use id::StreamId;

use block::{Block, Entry, NodeLimits};
use group::{ENTRIES_READ_UNKNOWN, Group};
use std::collections::BTreeMap;

use super::SmallBytes;

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Keep no entry below this id.
    MinId(StreamId),
}

#[derive(Debug, Clone, Default)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Block>,
    len: u64,
    /// The id of the last entry present (meaningless when empty): XREAD and XREADGROUP ask
    /// for it on every call, and finding it in the tail node means decoding the node.
    top: StreamId,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    pub groups: BTreeMap<SmallBytes, Group>,
}

/// The counters of a stream beyond its entries, as the RDB stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
}

impl Stream {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    pub fn meta(&self) -> Meta {
        Meta {
            last_id: self.last_id,
            first_id: self.first_id,
            max_deleted: self.max_deleted,
            entries_added: self.entries_added,
        }
    }

    /// Replaces the counters (XSETID, loading).
    pub fn set_meta(&mut self, m: Meta) {
        self.last_id = m.last_id;
        self.first_id = m.first_id;
        self.max_deleted = m.max_deleted;
        self.entries_added = m.entries_added;
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Appends an entry with an id above [`Stream::last_id`], in a new node when the tail
    /// one is full by `limits`.
    pub fn append<'a>(
        &mut self,
        id: StreamId,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        limits: NodeLimits,
    ) {
        debug_assert!(id > self.last_id || self.len == 0 && self.entries_added == 0);
        let payload: usize = fields.clone().map(|(f, v)| f.len() + v.len()).sum();
        let start_new = match self.nodes.last_key_value() {
            None => true,
            Some((_, tail)) => tail.full(payload, limits),
        };
        if start_new {
            if let Some(mut tail) = self.nodes.last_entry() {
                tail.get_mut().seal();
            }
            self.nodes.insert(id, Block::new(fields.clone()));
        }
        if let Some(mut tail) = self.nodes.last_entry() {
            let master = *tail.key();
            tail.get_mut().append(master, id, fields);
        }
        self.len += 1;
        self.entries_added += 1;
        self.last_id = id;
        self.top = id;
        if self.len == 1 {
            self.first_id = id;
        }
    }

    /// Entries with ids in `[start, end]`, in order.
    pub fn range(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = Entry<'_>> {
        let from = self
            .nodes
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let nodes = if start <= end {
            self.nodes.range(from..=end)
        } else {
            self.nodes.range(from..from)
        };
        nodes
            .flat_map(|(k, b)| b.iter(*k))
            .skip_while(move |e| e.id < start)
            .take_while(move |e| e.id <= end)
    }

    /// Entries with ids in `[start, end]`, last first.
    pub fn rev_range(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = Entry<'_>> {
        let nodes = if start <= end {
            self.nodes.range(..=end)
        } else {
            self.nodes.range(StreamId::MIN..StreamId::MIN)
        };
        nodes
            .rev()
            .flat_map(|(k, b)| b.iter(*k).collect::<Vec<_>>().into_iter().rev())
            .skip_while(move |e| e.id > end)
            .take_while(move |e| e.id >= start)
    }

    /// The id of the last entry, `None` when the stream is empty.
    pub fn last_entry_id(&self) -> Option<StreamId> {
        (self.len > 0).then_some(self.top)
    }

    /// The first or last entry.
    pub fn edge(&self, last: bool) -> Option<Entry<'_>> {
        if last {
            self.rev_range(StreamId::MIN, StreamId::MAX).next()
        } else {
            self.range(StreamId::MIN, StreamId::MAX).next()
        }
    }

    /// Deletes the entry `id`; true when it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&key, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        if !node.remove(key, id) {
            return false;
        }
        if node.live() == 0 {
            self.nodes.remove(&key);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.edge(false).map_or(StreamId::MIN, |e| e.id);
        }
        if self.len > 0 && id == self.top {
            let last = self.nodes.last_key_value();
            self.top = last
                .and_then(|(k, b)| b.iter(*k).last())
                .map_or(StreamId::MIN, |e| e.id);
        }
        true
    }

    /// Trims from the head as Redis's `streamTrim` does: whole nodes while they fit the
    /// bound, then (unless `approx`) entries of the next node; at most `limit` entries
    /// (0: no limit) counted a node at a time. Returns the number removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some(mut first) = self.nodes.first_entry() {
            if let Trim::MaxLen(max) = how
                && self.len <= max
            {
                break;
            }
            let master = *first.key();
            let entries = first.get().live() as u64;
            if limit > 0 && deleted + entries > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(max) => self.len - entries >= max,
                Trim::MinId(min) => first.get().iter(master).last().is_some_and(|e| e.id < min),
            };
            if whole {
                first.remove();
                self.len -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let n = match how {
                Trim::MaxLen(max) => (self.len - max) as usize,
                Trim::MinId(min) => first.get().iter(master).take_while(|e| e.id < min).count(),
            };
            if n > 0 {
                first.get_mut().remove_first(master, n);
                self.len -= n as u64;
                deleted += n as u64;
            }
            break;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge(false).map_or(StreamId::MIN, |e| e.id);
        }
        deleted
    }

    /// Heap bytes: the nodes' buffers and map slots, and the groups' PEL entries and
    /// consumers (tree overhead estimated per element, as the other types estimate theirs).
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let nodes: usize = self.nodes.values().map(Block::heap_size).sum::<usize>()
            + self.nodes.len() * (size_of::<StreamId>() + size_of::<Block>());
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, g)| {
                name.heap_size()
                    + size_of::<Group>()
                    + g.pel.len() * (size_of::<StreamId>() + size_of::<group::Pending>())
                    + g.consumers
                        .iter()
                        .map(|(n, c)| {
                            n.heap_size()
                                + size_of::<group::Consumer>()
                                + c.pel.len() * size_of::<StreamId>()
                        })
                        .sum::<usize>()
            })
            .sum();
        nodes + groups
    }

    /// Whether a deleted entry may lie in `[start, MAX]` (`streamRangeHasTombstones`).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() || self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// The number of entries added up to `id` when it can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`), else [`ENTRIES_READ_UNKNOWN`].
    pub fn entries_before(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            if id < self.first_id {
                return added - self.len as i64;
            }
            if id == self.first_id {
                return added - self.len as i64 + 1;
            }
        }
        ENTRIES_READ_UNKNOWN
    }

    /// A group's lag (XINFO GROUPS), `None` when it cannot be known (`streamReplyWithCGLag`).
    /// Negative when XSETID or XGROUP SETID put a counter ahead of the stream's, as in Redis.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let added = self.entries_added as i64;
        if g.entries_read != ENTRIES_READ_UNKNOWN && !self.has_tombstones_from(g.last_id) {
            return Some(added.wrapping_sub(g.entries_read));
        }
        let read = self.entries_before(g.last_id);
        (read != ENTRIES_READ_UNKNOWN).then(|| added.wrapping_sub(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut Stream, ms: u64, seq: u64, kv: &[(&str, &str)]) {
        s.append(
            StreamId::new(ms, seq),
            kv.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
            NodeLimits::default(),
        );
    }

    fn ids(it: impl Iterator<Item = StreamId>) -> Vec<(u64, u64)> {
        it.map(|i| (i.ms, i.seq)).collect()
    }

    #[test]
    fn append_range_and_fields() {
        let mut s = Stream::default();
        add(&mut s, 1, 0, &[("a", "1"), ("b", "2")]);
        add(&mut s, 1, 5, &[("a", "3"), ("b", "4")]);
        add(&mut s, 7, 0, &[("c", "x")]);
        let all: Vec<_> = s
            .range(StreamId::MIN, StreamId::MAX)
            .map(|e| (e.id, e.fields().collect::<Vec<_>>()))
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].1, vec![(&b"a"[..], &b"3"[..]), (b"b", b"4")]);
        assert_eq!(all[2].1, vec![(&b"c"[..], &b"x"[..])]);
        assert_eq!(
            ids(s
                .rev_range(StreamId::new(1, 1), StreamId::MAX)
                .map(|e| e.id)),
            vec![(7, 0), (1, 5)]
        );
    }

    #[test]
    fn nodes_split_delete_and_trim_like_redis() {
        let mut s = Stream::default();
        for i in 1..=250 {
            add(&mut s, i, 0, &[("f", "v")]);
        }
        assert_eq!(s.node_count(), 3);
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(!s.delete(StreamId::new(1, 0)));
        assert_eq!(s.meta().first_id, StreamId::new(2, 0));
        assert_eq!(s.trim(Trim::MaxLen(200), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(150), true, 0), 99);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(205, 0)), false, 0), 104);
        assert_eq!(s.edge(false).map(|e| e.id), Some(StreamId::new(205, 0)));
        assert_eq!(s.edge(true).map(|e| e.id), Some(StreamId::new(250, 0)));
        assert!(s.delete(StreamId::new(250, 0)));
        assert_eq!(s.last_entry_id(), Some(StreamId::new(249, 0)));
        assert_eq!(s.trim(Trim::MaxLen(0), false, 0), 45);
        assert_eq!(s.last_entry_id(), None);
    }
}
