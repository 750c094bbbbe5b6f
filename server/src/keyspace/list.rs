//! The list value: a double-ended queue of byte strings, with the index rules Redis's list
//! commands share (negative indices count from the tail, ranges clamp to the list).
//!
//! Elements are [`SmallBytes`], so short elements (the common case for queues of ids) live
//! inline in the deque's buffer without a heap allocation each. This module knows nothing of
//! commands, replies or blocking.

use super::SmallBytes;
use std::collections::VecDeque;

/// Which end of a list an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (`LEFT`, index 0).
    Left,
    /// The tail (`RIGHT`, index -1).
    Right,
}

impl End {
    /// The lowercase word Redis uses when it writes the end into a propagated command.
    pub fn word(self) -> &'static [u8] {
        match self {
            End::Left => b"left",
            End::Right => b"right",
        }
    }
}

/// A Redis list. Never stored empty: commands delete the key when the last element goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    items: VecDeque<SmallBytes>,
}

impl List {
    pub fn new() -> Self {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, end: End, value: &[u8]) {
        let v = SmallBytes::new(value);
        match end {
            End::Left => self.items.push_front(v),
            End::Right => self.items.push_back(v),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<SmallBytes> {
        match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }
    }

    /// The position of a Redis index (negative counts from the tail), if it is inside the list.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 {
            len.checked_add(index)?
        } else {
            index
        };
        (0..len).contains(&i).then_some(i as usize)
    }

    pub fn get(&self, index: i64) -> Option<&SmallBytes> {
        self.items.get(self.position(index)?)
    }

    /// Replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        match self.position(index) {
            Some(i) => {
                self.items[i] = SmallBytes::new(value);
                true
            }
            None => false,
        }
    }

    /// The inclusive positions `start..=end` that LRANGE and LTRIM select, `None` when empty.
    pub fn range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.items.len() as i64;
        let mut start = if start < 0 {
            start.saturating_add(len)
        } else {
            start
        };
        let mut end = if end < 0 {
            end.saturating_add(len)
        } else {
            end
        };
        if start < 0 {
            start = 0;
        }
        if start > end || start >= len {
            return None;
        }
        if end >= len {
            end = len - 1;
        }
        Some((start as usize, end as usize))
    }

    /// Elements of the inclusive position range.
    pub fn slice(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &SmallBytes> {
        self.items.range(start..=end)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &SmallBytes> {
        self.items.iter()
    }

    /// Keeps only the inclusive position range (or nothing); returns how many were removed.
    pub fn retain_range(&mut self, range: Option<(usize, usize)>) -> usize {
        let before = self.items.len();
        match range {
            Some((start, end)) => {
                self.items.truncate(end + 1);
                self.items.drain(..start);
            }
            None => self.items.clear(),
        }
        before - self.items.len()
    }

    /// Inserts `value` before or after the first element equal to `pivot` (searching from the
    /// head); false when there is no such element.
    pub fn insert_at_pivot(&mut self, pivot: &[u8], value: &[u8], after: bool) -> bool {
        let Some(i) = self.items.iter().position(|e| e.as_bytes() == pivot) else {
            return false;
        };
        let at = if after { i + 1 } else { i };
        self.items.insert(at, SmallBytes::new(value));
        true
    }

    /// Removes up to `limit` elements equal to `value` (0 = all), scanning from the head, or
    /// from the tail when `from_tail`; returns how many were removed.
    pub fn remove_matching(&mut self, value: &[u8], limit: usize, from_tail: bool) -> usize {
        let matches = self.items.iter().filter(|e| e.as_bytes() == value).count();
        let to_remove = if limit == 0 {
            matches
        } else {
            matches.min(limit)
        };
        // Matches are numbered from the head; from the tail, the last `to_remove` ones go.
        let first_removed = if from_tail { matches - to_remove } else { 0 };
        let last_removed = first_removed + to_remove;
        let mut seen = 0;
        self.items.retain(|e| {
            if e.as_bytes() != value {
                return true;
            }
            seen += 1;
            !(first_removed < seen && seen <= last_removed)
        });
        to_remove
    }

    /// Removes up to `count` elements from one end, in the order they are popped.
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<SmallBytes> {
        let n = count.min(self.items.len());
        match end {
            End::Left => self.items.drain(..n).collect(),
            End::Right => {
                let at = self.items.len() - n;
                self.items.drain(at..).rev().collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> List {
        let mut l = List::new();
        for i in items {
            l.push(End::Right, i.as_bytes());
        }
        l
    }

    fn strings<'a>(it: impl Iterator<Item = &'a SmallBytes>) -> Vec<String> {
        it.map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn push_pop_both_ends() {
        let mut l = List::new();
        l.push(End::Left, b"b");
        l.push(End::Left, b"a");
        l.push(End::Right, b"c");
        assert_eq!(strings(l.iter()), ["a", "b", "c"]);
        assert_eq!(l.pop(End::Right).as_deref(), Some(&b"c"[..]));
        assert_eq!(l.pop(End::Left).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn indices_follow_redis() {
        let mut l = list(&["a", "b", "c"]);
        assert_eq!(l.get(-1).map(|s| s.as_bytes()), Some(&b"c"[..]));
        assert_eq!(l.get(-3).map(|s| s.as_bytes()), Some(&b"a"[..]));
        assert_eq!(l.get(-4), None);
        assert_eq!(l.get(3), None);
        assert_eq!(l.get(i64::MIN), None);
        assert!(l.set(-1, b"z"));
        assert!(!l.set(3, b"z"));
        assert_eq!(strings(l.iter()), ["a", "b", "z"]);
    }

    #[test]
    fn ranges_clamp() {
        let l = list(&["a", "b", "c", "d"]);
        assert_eq!(l.range(0, -1), Some((0, 3)));
        assert_eq!(l.range(-100, 100), Some((0, 3)));
        assert_eq!(l.range(2, 1), None);
        assert_eq!(l.range(4, 10), None);
        assert_eq!(l.range(-2, -1), Some((2, 3)));
        assert_eq!(l.range(i64::MIN, i64::MAX), Some((0, 3)));
        assert_eq!(l.range(0, -5), None);
    }

    #[test]
    fn trim_insert_remove() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(l.retain_range(l.range(1, 2)), 2);
        assert_eq!(strings(l.iter()), ["b", "c"]);
        assert!(l.insert_at_pivot(b"c", b"x", false));
        assert!(l.insert_at_pivot(b"c", b"y", true));
        assert!(!l.insert_at_pivot(b"nope", b"y", true));
        assert_eq!(strings(l.iter()), ["b", "x", "c", "y"]);
        assert_eq!(l.retain_range(None), 4);
        assert!(l.is_empty());

        let mut l = list(&["a", "x", "a", "x", "a"]);
        assert_eq!(l.remove_matching(b"a", 2, true), 2);
        assert_eq!(strings(l.iter()), ["a", "x", "x"]);
        assert_eq!(l.remove_matching(b"x", 0, false), 2);
        assert_eq!(strings(l.iter()), ["a"]);
    }

    #[test]
    fn pop_many_keeps_pop_order() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(strings(l.pop_many(End::Right, 3).iter()), ["d", "c", "b"]);
        assert_eq!(strings(l.pop_many(End::Left, 10).iter()), ["a"]);
        assert!(l.is_empty());
    }
}
