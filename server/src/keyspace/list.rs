//! The list value: a double-ended queue of byte strings, with the index rules Redis's list
//! commands share (negative indices count from the tail, ranges clamp to the list).
//!
//! Like Redis's quicklist, elements are packed into nodes: each node keeps its elements'
//! bytes back to back in one buffer plus their end offsets, so an element costs its length
//! and four bytes instead of a separately allocated string. Nodes are bounded
//! ([`NODE_BYTES`], [`NODE_ITEMS`]), which keeps edits inside a node cheap. This module
//! knows nothing of commands, replies or blocking.

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

/// A node stops taking elements at this many bytes of data (one larger element gets a node
/// of its own)...
const NODE_BYTES: usize = 4096;
/// ...or at this many elements.
const NODE_ITEMS: usize = 128;

/// Elements packed back to back; `ends[i]` is where element `i` ends in `data`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Node {
    fn with(value: &[u8]) -> Node {
        let mut n = Node::default();
        n.insert(0, value);
        n
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] as usize }
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.data[self.start(i)..self.ends[i] as usize]
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Whether one more element of `extra` bytes belongs in another node.
    fn is_full(&self, extra: usize) -> bool {
        !self.ends.is_empty()
            && (self.ends.len() >= NODE_ITEMS || self.data.len() + extra > NODE_BYTES)
    }

    /// Whether the node grew past twice its bounds (by inserts in the middle) and should split.
    fn is_oversized(&self) -> bool {
        self.ends.len() > 2 * NODE_ITEMS
            || (self.ends.len() > 1 && self.data.len() > 2 * NODE_BYTES)
    }

    fn insert(&mut self, i: usize, value: &[u8]) {
        let at = self.start(i);
        self.data.splice(at..at, value.iter().copied());
        let n = value.len() as u32;
        self.ends.insert(i, at as u32 + n);
        self.ends[i + 1..].iter_mut().for_each(|e| *e += n);
    }

    fn remove(&mut self, i: usize) -> SmallBytes {
        let (s, e) = (self.start(i), self.ends[i] as usize);
        let v = SmallBytes::new(&self.data[s..e]);
        self.data.drain(s..e);
        self.ends.remove(i);
        let n = (e - s) as u32;
        self.ends[i..].iter_mut().for_each(|x| *x -= n);
        v
    }

    fn replace(&mut self, i: usize, value: &[u8]) {
        let (s, e) = (self.start(i), self.ends[i] as usize);
        self.data.splice(s..e, value.iter().copied());
        let delta = value.len() as i64 - (e - s) as i64;
        self.ends[i..]
            .iter_mut()
            .for_each(|x| *x = (i64::from(*x) + delta) as u32);
    }

    /// Drops the first `n` elements.
    fn drop_front(&mut self, n: usize) {
        let cut = self.start(n);
        self.data.drain(..cut);
        self.ends.drain(..n);
        self.ends.iter_mut().for_each(|x| *x -= cut as u32);
    }

    /// Drops the last `n` elements.
    fn drop_back(&mut self, n: usize) {
        let keep = self.len() - n;
        self.data.truncate(self.start(keep));
        self.ends.truncate(keep);
    }

    /// Splits off the second half as a new node.
    fn split(&mut self) -> Node {
        let half = self.len() / 2;
        let cut = self.start(half);
        let data = self.data.split_off(cut);
        let ends = self
            .ends
            .split_off(half)
            .iter()
            .map(|e| e - cut as u32)
            .collect();
        self.data.shrink_to_fit();
        Node { data, ends }
    }
}

/// A Redis list. Never stored empty: commands delete the key when the last element goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

impl List {
    pub fn new() -> Self {
        List::default()
    }

    /// Heap bytes held (MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self
                .nodes
                .iter()
                .map(|n| n.data.capacity() + n.ends.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, end: End, value: &[u8]) {
        match end {
            End::Left => match self.nodes.front_mut() {
                Some(n) if !n.is_full(value.len()) => n.insert(0, value),
                _ => self.nodes.push_front(Node::with(value)),
            },
            End::Right => match self.nodes.back_mut() {
                Some(n) if !n.is_full(value.len()) => n.insert(n.len(), value),
                _ => self.nodes.push_back(Node::with(value)),
            },
        }
        self.len += 1;
    }

    pub fn pop(&mut self, end: End) -> Option<SmallBytes> {
        let (v, emptied) = match end {
            End::Left => {
                let n = self.nodes.front_mut()?;
                (n.remove(0), n.len() == 0)
            }
            End::Right => {
                let n = self.nodes.back_mut()?;
                (n.remove(n.len() - 1), n.len() == 0)
            }
        };
        if emptied {
            match end {
                End::Left => self.nodes.pop_front(),
                End::Right => self.nodes.pop_back(),
            };
        }
        self.len -= 1;
        Some(v)
    }

    /// The position of a Redis index (negative counts from the tail), if it is inside the list.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.len as i64;
        let i = if index < 0 {
            len.checked_add(index)?
        } else {
            index
        };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The node holding position `pos` (< len) and the offset inside it, walking from the
    /// nearer end.
    fn locate(&self, pos: usize) -> (usize, usize) {
        if pos < self.len / 2 {
            let mut rest = pos;
            for (i, n) in self.nodes.iter().enumerate() {
                if rest < n.len() {
                    return (i, rest);
                }
                rest -= n.len();
            }
        } else {
            let mut after = self.len - pos;
            for (i, n) in self.nodes.iter().enumerate().rev() {
                if after <= n.len() {
                    return (i, n.len() - after);
                }
                after -= n.len();
            }
        }
        unreachable!("position {pos} checked against the length {}", self.len)
    }

    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let (n, i) = self.locate(self.position(index)?);
        Some(self.nodes[n].get(i))
    }

    /// Replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        let Some(pos) = self.position(index) else {
            return false;
        };
        let (n, i) = self.locate(pos);
        self.nodes[n].replace(i, value);
        self.split_if_oversized(n);
        true
    }

    fn split_if_oversized(&mut self, n: usize) {
        if self.nodes[n].is_oversized() {
            let second = self.nodes[n].split();
            self.nodes.insert(n + 1, second);
        }
    }

    /// The inclusive positions `start..=end` that LRANGE and LTRIM select, `None` when empty.
    pub fn range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.len as i64;
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
    pub fn slice(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        let (first, offset) = self.locate(start);
        self.nodes
            .range(first..)
            .enumerate()
            .flat_map(move |(k, n)| n.iter().skip(if k == 0 { offset } else { 0 }))
            .take(end + 1 - start)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.nodes.iter().flat_map(Node::iter)
    }

    /// Drops `n` elements from one end, whole nodes first.
    fn drop_end(&mut self, end: End, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let node = match end {
                End::Left => self.nodes.front_mut(),
                End::Right => self.nodes.back_mut(),
            };
            let Some(node) = node else {
                return;
            };
            if n >= node.len() {
                n -= node.len();
                match end {
                    End::Left => self.nodes.pop_front(),
                    End::Right => self.nodes.pop_back(),
                };
            } else {
                match end {
                    End::Left => node.drop_front(n),
                    End::Right => node.drop_back(n),
                }
                n = 0;
            }
        }
    }

    /// Keeps only the inclusive position range (or nothing); returns how many were removed.
    pub fn retain_range(&mut self, range: Option<(usize, usize)>) -> usize {
        let before = self.len;
        match range {
            Some((start, end)) => {
                self.drop_end(End::Right, self.len - end - 1);
                self.drop_end(End::Left, start);
            }
            None => *self = List::new(),
        }
        before - self.len
    }

    /// Inserts `value` before or after the first element equal to `pivot` (searching from the
    /// head); false when there is no such element.
    pub fn insert_at_pivot(&mut self, pivot: &[u8], value: &[u8], after: bool) -> bool {
        let found = self
            .nodes
            .iter()
            .enumerate()
            .find_map(|(n, node)| node.iter().position(|e| e == pivot).map(|i| (n, i)));
        let Some((n, i)) = found else {
            return false;
        };
        self.nodes[n].insert(if after { i + 1 } else { i }, value);
        self.len += 1;
        self.split_if_oversized(n);
        true
    }

    /// Removes up to `limit` elements equal to `value` (0 = all), scanning from the head, or
    /// from the tail when `from_tail`; returns how many were removed.
    pub fn remove_matching(&mut self, value: &[u8], limit: usize, from_tail: bool) -> usize {
        let matches = self.iter().filter(|e| *e == value).count();
        let to_remove = if limit == 0 {
            matches
        } else {
            matches.min(limit)
        };
        if to_remove == 0 {
            return 0;
        }
        // Matches are numbered from the head; from the tail, the last `to_remove` ones go.
        let first_removed = if from_tail { matches - to_remove } else { 0 };
        let last_removed = first_removed + to_remove;
        let mut seen = 0;
        for node in &mut self.nodes {
            if !node.iter().any(|e| e == value) {
                continue;
            }
            let mut kept = Node::default();
            for e in node.iter() {
                if e == value {
                    seen += 1;
                    if first_removed < seen && seen <= last_removed {
                        continue;
                    }
                }
                kept.insert(kept.len(), e);
            }
            *node = kept;
        }
        self.nodes.retain(|n| n.len() > 0);
        self.len -= to_remove;
        to_remove
    }

    /// Removes up to `count` elements from one end, in the order they are popped.
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<SmallBytes> {
        let n = count.min(self.len);
        let popped: Vec<SmallBytes> = match end {
            End::Left => self.iter().take(n).map(SmallBytes::new).collect(),
            End::Right => self.iter().rev().take(n).map(SmallBytes::new).collect(),
        };
        self.drop_end(end, n);
        popped
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

    fn strings<'a>(it: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
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
        assert_eq!(l.get(-1), Some(&b"c"[..]));
        assert_eq!(l.get(-3), Some(&b"a"[..]));
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
        let popped = l.pop_many(End::Right, 3);
        assert_eq!(
            strings(popped.iter().map(|s| s.as_bytes())),
            ["d", "c", "b"]
        );
        let popped = l.pop_many(End::Left, 10);
        assert_eq!(strings(popped.iter().map(|s| s.as_bytes())), ["a"]);
        assert!(l.is_empty());
    }

    #[test]
    fn matches_a_plain_deque_across_nodes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut l = List::new();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for step in 0..20_000 {
            let len = if rng.random_bool(0.01) {
                5000
            } else {
                rng.random_range(0..12)
            };
            let v: Vec<u8> = (0..len).map(|_| rng.random_range(b'a'..b'd')).collect();
            let index = rng.random_range(-(model.len() as i64) - 2..model.len() as i64 + 2);
            match rng.random_range(0..10) {
                0..=2 => {
                    l.push(End::Right, &v);
                    model.push_back(v);
                }
                3 | 4 => {
                    l.push(End::Left, &v);
                    model.push_front(v);
                }
                5 => assert_eq!(l.pop(End::Left).map(|s| s.to_vec()), model.pop_front()),
                6 => assert_eq!(l.pop(End::Right).map(|s| s.to_vec()), model.pop_back()),
                7 => {
                    let pos = l.position(index);
                    assert_eq!(l.set(index, &v), pos.is_some());
                    if let Some(p) = pos {
                        model[p] = v;
                    }
                }
                8 => {
                    let after = rng.random_bool(0.5);
                    let found = model.iter().position(|e| e[..] == v[..]);
                    assert_eq!(l.insert_at_pivot(&v, b"pivot", after), found.is_some());
                    if let Some(i) = found {
                        model.insert(if after { i + 1 } else { i }, b"pivot".to_vec());
                    }
                }
                _ => {
                    let n = rng.random_range(0..40);
                    let end = if rng.random_bool(0.5) {
                        End::Left
                    } else {
                        End::Right
                    };
                    let popped = l.pop_many(end, n);
                    for p in popped {
                        let m = match end {
                            End::Left => model.pop_front(),
                            End::Right => model.pop_back(),
                        };
                        assert_eq!(Some(p.to_vec()), m);
                    }
                }
            }
            assert_eq!(l.len(), model.len(), "step {step}");
            assert_eq!(
                l.get(index),
                model
                    .get(l.position(index).unwrap_or(usize::MAX))
                    .map(|v| &v[..])
            );
            if step % 500 == 0 {
                assert!(l.iter().eq(model.iter().map(|v| &v[..])));
                assert!(l.iter().rev().eq(model.iter().rev().map(|v| &v[..])));
                if let Some((s, e)) = l.range(1, -2) {
                    assert!(l.slice(s, e).eq(model.range(s..=e).map(|v| &v[..])));
                }
                let value = b"a".to_vec();
                let removed = l.remove_matching(&value, 3, step % 1000 == 0);
                let mut left = removed;
                let order: Vec<usize> = if step % 1000 == 0 {
                    (0..model.len()).rev().collect()
                } else {
                    (0..model.len()).collect()
                };
                let mut drop = vec![false; model.len()];
                for i in order {
                    if left > 0 && model[i] == value {
                        drop[i] = true;
                        left -= 1;
                    }
                }
                let mut it = drop.iter();
                model.retain(|_| !*it.next().unwrap_or(&false));
                assert!(l.iter().eq(model.iter().map(|v| &v[..])));
                let keep = l.range(2, -3);
                l.retain_range(keep);
                match keep {
                    Some((s, e)) => {
                        model.truncate(e + 1);
                        model.drain(..s);
                    }
                    None => model.clear(),
                }
                assert!(l.iter().eq(model.iter().map(|v| &v[..])));
                assert_eq!(l.len(), model.len());
            }
        }
    }
}
