//! The ordered index of a large sorted set: a skiplist with spans, as in Redis, so ranks and
//! rank lookups cost O(log n) like searches by score.
//!
//! Nodes live in an arena (`Vec`) and link to each other by index, which keeps the structure
//! free of `unsafe` and of reference counting; freed slots are reused. Slot 0 is the header.
//! This module only orders (score, member) pairs; it does not know members are unique (the
//! caller's member map guarantees it) and never sees NaN scores.

use crate::keyspace::SmallBytes;
use std::cmp::Ordering;

const MAX_LEVEL: usize = 32;
const HEAD: u32 = 0;
/// No node.
pub const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    forward: u32,
    /// Nodes skipped by following `forward` (the node it lands on included).
    span: usize,
}

#[derive(Debug, Clone)]
struct Node {
    member: SmallBytes,
    score: f64,
    backward: u32,
    links: Vec<Link>,
}

/// Nodes ordered by (score, member), with ranks.
#[derive(Debug, Clone)]
pub struct Skiplist {
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    len: usize,
    level: usize,
    /// xorshift state for node levels: the shape only affects speed, so a cheap generator
    /// seeded per list is enough.
    seed: u64,
}

impl Default for Skiplist {
    fn default() -> Self {
        Skiplist {
            nodes: vec![Node {
                member: SmallBytes::new(b""),
                score: 0.0,
                backward: NIL,
                links: vec![
                    Link {
                        forward: NIL,
                        span: 0
                    };
                    MAX_LEVEL
                ],
            }],
            free: Vec::new(),
            tail: NIL,
            len: 0,
            level: 1,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// The sorted-set order; -0 and 0 compare equal, as C's `<` does.
fn cmp(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

impl Skiplist {
    /// Heap bytes held (MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + self
                .nodes
                .iter()
                .map(|n| n.links.capacity() * std::mem::size_of::<Link>() + n.member.heap_size())
                .sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn fwd(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].links[i].forward
    }

    fn span(&self, x: u32, i: usize) -> usize {
        self.nodes[x as usize].links[i].span
    }

    fn link_mut(&mut self, x: u32, i: usize) -> &mut Link {
        &mut self.nodes[x as usize].links[i]
    }

    /// The (member, score) of node `x`.
    pub fn get(&self, x: u32) -> (&[u8], f64) {
        let n = &self.nodes[x as usize];
        (n.member.as_bytes(), n.score)
    }

    /// The node after `x` in order, or [`NIL`].
    pub fn next(&self, x: u32) -> u32 {
        self.fwd(x, 0)
    }

    /// The node before `x` in order, or [`NIL`].
    pub fn prev(&self, x: u32) -> u32 {
        self.nodes[x as usize].backward
    }

    pub fn first(&self) -> u32 {
        self.fwd(HEAD, 0)
    }

    pub fn last(&self) -> u32 {
        self.tail
    }

    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            // p = 1/4, as Redis's ZSKIPLIST_P.
            if self.seed & 3 != 0 || level >= MAX_LEVEL {
                return level;
            }
            level += 1;
        }
    }

    /// Whether node `f` orders before (score, member).
    fn before(&self, f: u32, score: f64, member: &[u8]) -> bool {
        let (m, s) = self.get(f);
        cmp(s, m, score, member) == Ordering::Less
    }

    /// A list of `sorted` pairs, which must be in strictly increasing (score, member)
    /// order: each node is appended at the tail, so a large set is built without a search
    /// per pair (loading a 4M-member set from an RDB).
    pub fn from_sorted(sorted: impl ExactSizeIterator<Item = (f64, SmallBytes)>) -> Skiplist {
        let mut l = Skiplist::default();
        l.nodes.reserve(sorted.len());
        // Per level: the last node linked at that level so far, and its rank (header: 0).
        let mut last = [HEAD; MAX_LEVEL];
        let mut last_rank = [0usize; MAX_LEVEL];
        for (score, member) in sorted {
            debug_assert!(l.tail == NIL || l.before(l.tail, score, &member));
            let level = l.random_level();
            l.level = l.level.max(level);
            let x = l.nodes.len() as u32;
            let rank = l.len + 1;
            l.nodes.push(Node {
                member,
                score,
                backward: l.tail,
                links: vec![
                    Link {
                        forward: NIL,
                        span: 0
                    };
                    level
                ],
            });
            for i in 0..level {
                *l.link_mut(last[i], i) = Link {
                    forward: x,
                    span: rank - last_rank[i],
                };
                last[i] = x;
                last_rank[i] = rank;
            }
            l.tail = x;
            l.len = rank;
        }
        // A link to nothing spans the rest of the list, as `insert` keeps it.
        for i in 0..l.level {
            let end = l.len - last_rank[i];
            l.link_mut(last[i], i).span = end;
        }
        l
    }

    /// Inserts a pair that is not present; returns its node.
    pub fn insert(&mut self, score: f64, member: SmallBytes) -> u32 {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let f = self.fwd(x, i);
                if f == NIL || !self.before(f, score, &member) {
                    break;
                }
                rank[i] += self.span(x, i);
                x = f;
            }
            update[i] = x;
        }
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.link_mut(HEAD, i).span = self.len;
            }
            self.level = level;
        }
        let node = Node {
            member,
            score,
            backward: if update[0] == HEAD { NIL } else { update[0] },
            links: vec![
                Link {
                    forward: NIL,
                    span: 0
                };
                level
            ],
        };
        let x = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..level {
            let u = update[i];
            let before = *self.link_mut(u, i);
            let skipped = rank[0] - rank[i];
            *self.link_mut(x, i) = Link {
                forward: before.forward,
                span: before.span - skipped,
            };
            *self.link_mut(u, i) = Link {
                forward: x,
                span: skipped + 1,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.link_mut(u, i).span += 1;
        }
        match self.fwd(x, 0) {
            NIL => self.tail = x,
            f => self.nodes[f as usize].backward = x,
        }
        self.len += 1;
        x
    }

    /// Removes the pair; false when absent.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || !self.before(f, score, member) {
                    break;
                }
                x = f;
            }
            update[i] = x;
        }
        let x = self.fwd(update[0], 0);
        if x == NIL {
            return false;
        }
        let (m, s) = self.get(x);
        if cmp(s, m, score, member) != Ordering::Equal {
            return false;
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            if self.fwd(u, i) == x {
                let gone = self.nodes[x as usize].links[i];
                let l = self.link_mut(u, i);
                l.span += gone.span;
                l.span -= 1;
                l.forward = gone.forward;
            } else {
                self.link_mut(u, i).span -= 1;
            }
        }
        let back = self.nodes[x as usize].backward;
        match self.fwd(x, 0) {
            NIL => self.tail = back,
            f => self.nodes[f as usize].backward = back,
        }
        while self.level > 1 && self.fwd(HEAD, self.level - 1) == NIL {
            self.level -= 1;
        }
        let freed = &mut self.nodes[x as usize];
        freed.member = SmallBytes::new(b"");
        freed.links = Vec::new();
        self.free.push(x);
        self.len -= 1;
        true
    }

    /// The 0-based rank of a present pair.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut x = HEAD;
        let mut rank = 0;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL {
                    break;
                }
                let (m, s) = self.get(f);
                if cmp(s, m, score, member) == Ordering::Greater {
                    break;
                }
                rank += self.span(x, i);
                x = f;
            }
            if x != HEAD && self.get(x).0 == member {
                return Some(rank - 1);
            }
        }
        None
    }

    /// The node at 0-based `rank`, or [`NIL`].
    pub fn by_rank(&self, rank: usize) -> u32 {
        let target = rank + 1;
        let mut x = HEAD;
        let mut traversed = 0;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || traversed + self.span(x, i) > target {
                    break;
                }
                traversed += self.span(x, i);
                x = f;
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }

    /// The first node with a score of at least `min`, or [`NIL`].
    pub fn first_from_score(&self, min: f64) -> u32 {
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || self.get(f).1 >= min {
                    break;
                }
                x = f;
            }
        }
        self.fwd(x, 0)
    }

    /// The last node with a score of at most `max`, or [`NIL`].
    pub fn last_to_score(&self, max: f64) -> u32 {
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || self.get(f).1 > max {
                    break;
                }
                x = f;
            }
        }
        if x == HEAD { NIL } else { x }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn walk(l: &Skiplist) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        let mut x = l.first();
        while x != NIL {
            let (m, s) = l.get(x);
            out.push((m.to_vec(), s));
            x = l.next(x);
        }
        out
    }

    proptest! {
        /// Against a sorted Vec model: order both ways, ranks, rank lookups and score seeks.
        #[test]
        fn matches_a_sorted_vec(ops in proptest::collection::vec((any::<bool>(), 0u8..40, -5i8..5), 1..300)) {
            let mut l = Skiplist::default();
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for (insert, m, s) in ops {
                let member = vec![b'a' + m % 26, m];
                let score = f64::from(s);
                let pos = model.iter().position(|(_, mm)| *mm == member);
                match (insert, pos) {
                    (true, None) => {
                        l.insert(score, SmallBytes::new(&member));
                        model.push((score, member));
                    }
                    (false, Some(p)) => {
                        let (os, om) = model.remove(p);
                        prop_assert!(l.remove(os, &om));
                    }
                    (false, None) => prop_assert!(!l.remove(score, &member)),
                    (true, Some(_)) => {}
                }
                model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
            }
            let expect: Vec<(Vec<u8>, f64)> = model.iter().map(|(s, m)| (m.clone(), *s)).collect();
            prop_assert_eq!(walk(&l), expect.clone());
            // The same list built in one pass must answer every query below alike.
            let bulk = Skiplist::from_sorted(model.iter().map(|(s, m)| (*s, SmallBytes::new(m))));
            prop_assert_eq!(walk(&bulk), expect.clone());
            prop_assert_eq!(bulk.len(), model.len());
            for (r, (m, s)) in expect.iter().enumerate() {
                prop_assert_eq!(bulk.rank(*s, m), Some(r));
                prop_assert_eq!(bulk.get(bulk.by_rank(r)).0, m.as_slice());
                prop_assert_eq!(bulk.prev(bulk.by_rank(r)), if r == 0 { NIL } else { bulk.by_rank(r - 1) });
            }
            prop_assert_eq!(bulk.last(), if model.is_empty() { NIL } else { bulk.by_rank(model.len() - 1) });
            let mut grown = bulk.clone();
            grown.insert(99.0, SmallBytes::new(b"zz"));
            grown.insert(-99.0, SmallBytes::new(b"aa"));
            prop_assert_eq!(grown.rank(99.0, b"zz"), Some(model.len() + 1));
            prop_assert_eq!(grown.rank(-99.0, b"aa"), Some(0));
            if let Some((s, m)) = model.first() {
                prop_assert!(grown.remove(*s, m));
                prop_assert_eq!(grown.rank(99.0, b"zz"), Some(model.len()));
            }
            prop_assert_eq!(l.len(), model.len());
            let mut back = Vec::new();
            let mut x = l.last();
            while x != NIL {
                back.push(l.get(x).0.to_vec());
                x = l.prev(x);
            }
            back.reverse();
            prop_assert_eq!(back, expect.iter().map(|e| e.0.clone()).collect::<Vec<_>>());
            for (r, (m, s)) in expect.iter().enumerate() {
                prop_assert_eq!(l.rank(*s, m), Some(r));
                prop_assert_eq!(l.get(l.by_rank(r)).0, m.as_slice());
            }
            prop_assert_eq!(l.by_rank(model.len()), NIL);
            for t in -6..6 {
                let t = f64::from(t);
                let first = expect.iter().position(|e| e.1 >= t);
                let got = l.first_from_score(t);
                prop_assert_eq!(first.map(|i| expect[i].0.as_slice()), (got != NIL).then(|| l.get(got).0));
                let last = expect.iter().rposition(|e| e.1 <= t);
                let got = l.last_to_score(t);
                prop_assert_eq!(last.map(|i| expect[i].0.as_slice()), (got != NIL).then(|| l.get(got).0));
            }
        }
    }
}
