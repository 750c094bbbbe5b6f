//! The pub/sub registry: which clients listen on each channel and each pattern, and the
//! encoding of the messages PUBLISH delivers.
//!
//! It knows clients only by id; what each client is subscribed to is kept on the client
//! itself (`Client::channels`, `Client::patterns`) so replies can count subscriptions without
//! a lookup here. Delivering bytes to a client's connection is the caller's job: this module
//! must not touch sockets or client buffers.

use crate::glob;
use crate::protocol::Reply;
use hashbrown::HashMap;

/// Subscribers of every channel and pattern, in subscription order.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: HashMap<Vec<u8>, Vec<u64>>,
    patterns: HashMap<Vec<u8>, Vec<u64>>,
    /// Shard channels (SSUBSCRIBE): a namespace of their own, never matched by patterns.
    shard: HashMap<Vec<u8>, Vec<u64>>,
}

/// Who receives a message published on a channel.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Receivers<'a> {
    /// Clients subscribed to the channel itself.
    pub direct: Vec<u64>,
    /// Clients subscribed to a matching pattern, with the pattern.
    pub by_pattern: Vec<(&'a [u8], u64)>,
}

impl Receivers<'_> {
    /// What PUBLISH replies: one per delivery, so a client matching twice counts twice.
    pub fn count(&self) -> usize {
        self.direct.len() + self.by_pattern.len()
    }
}

impl PubSub {
    /// What a client listens to: channels and shard channels (`false`) and patterns
    /// (`true`), for ACL rules that may no longer allow them.
    pub fn subscriptions_of<'a>(&'a self, id: u64) -> impl Iterator<Item = (&'a [u8], bool)> {
        let tagged = |m: &'a HashMap<Vec<u8>, Vec<u64>>, pattern: bool| {
            m.iter()
                .filter(move |(_, ids)| ids.contains(&id))
                .map(move |(k, _)| (k.as_slice(), pattern))
        };
        tagged(&self.channels, false)
            .chain(tagged(&self.shard, false))
            .chain(tagged(&self.patterns, true))
    }

    /// Adds `id` to `channel`'s subscribers.
    pub fn subscribe(&mut self, channel: &[u8], id: u64) {
        add(&mut self.channels, channel, id);
    }

    /// Removes `id` from `channel`'s subscribers; a channel left without any is forgotten.
    pub fn unsubscribe(&mut self, channel: &[u8], id: u64) {
        remove(&mut self.channels, channel, id);
    }

    pub fn psubscribe(&mut self, pattern: &[u8], id: u64) {
        add(&mut self.patterns, pattern, id);
    }

    pub fn punsubscribe(&mut self, pattern: &[u8], id: u64) {
        remove(&mut self.patterns, pattern, id);
    }

    pub fn ssubscribe(&mut self, channel: &[u8], id: u64) {
        add(&mut self.shard, channel, id);
    }

    pub fn sunsubscribe(&mut self, channel: &[u8], id: u64) {
        remove(&mut self.shard, channel, id);
    }

    /// Shard channels with at least one subscriber (INFO `pubsubshard_channels`).
    pub fn num_shard_channels(&self) -> usize {
        self.shard.len()
    }

    /// Subscribers of a shard channel (PUBSUB SHARDNUMSUB, and SPUBLISH's receivers).
    pub fn shard_subscribers(&self, channel: &[u8]) -> &[u64] {
        self.shard.get(channel).map_or(&[], Vec::as_slice)
    }

    /// Active shard channels matching `pattern` (all when `None`).
    pub fn shard_channels_matching(&self, pattern: Option<&[u8]>) -> Vec<&[u8]> {
        matching(&self.shard, pattern)
    }

    /// Channels with at least one subscriber (INFO `pubsub_channels`).
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Distinct patterns with at least one subscriber: Redis 7.0 counts patterns, not
    /// subscriptions, for PUBSUB NUMPAT and INFO `pubsub_patterns`.
    pub fn num_patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Subscribers of exactly `channel` (PUBSUB NUMSUB ignores patterns).
    pub fn num_subscribers(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, Vec::len)
    }

    /// Active channels matching `pattern` (all when `None`), for PUBSUB CHANNELS.
    pub fn channels_matching(&self, pattern: Option<&[u8]>) -> Vec<&[u8]> {
        matching(&self.channels, pattern)
    }

    /// Everyone a message on `channel` goes to: channel subscribers first, then pattern
    /// subscribers, as Redis delivers them.
    pub fn receivers(&self, channel: &[u8]) -> Receivers<'_> {
        let direct = self.channels.get(channel).cloned().unwrap_or_default();
        let mut by_pattern = Vec::new();
        for (pattern, ids) in &self.patterns {
            if glob::matches(pattern, channel, false) {
                by_pattern.extend(ids.iter().map(|&id| (pattern.as_slice(), id)));
            }
        }
        Receivers { direct, by_pattern }
    }
}

fn matching<'a>(map: &'a HashMap<Vec<u8>, Vec<u64>>, pattern: Option<&[u8]>) -> Vec<&'a [u8]> {
    map.keys()
        .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
        .map(Vec::as_slice)
        .collect()
}

fn add(map: &mut HashMap<Vec<u8>, Vec<u64>>, name: &[u8], id: u64) {
    match map.get_mut(name) {
        Some(ids) => ids.push(id),
        None => {
            map.insert(name.to_vec(), vec![id]);
        }
    }
}

fn remove(map: &mut HashMap<Vec<u8>, Vec<u64>>, name: &[u8], id: u64) {
    if let Some(ids) = map.get_mut(name) {
        ids.retain(|&x| x != id);
        if ids.is_empty() {
            map.remove(name);
        }
    }
}

/// A `message` push: `[message, channel, payload]` (`smessage` for shard channels).
pub fn message(r: &mut Reply<'_>, kind: &str, channel: &[u8], payload: &[u8]) {
    r.push(3);
    r.bulk(kind.as_bytes());
    r.bulk(channel);
    r.bulk(payload);
}

/// A `pmessage` push: `[pmessage, pattern, channel, payload]`.
pub fn pmessage(r: &mut Reply<'_>, pattern: &[u8], channel: &[u8], payload: &[u8]) {
    r.push(4);
    r.bulk(b"pmessage");
    r.bulk(pattern);
    r.bulk(channel);
    r.bulk(payload);
}

/// The reply to each channel or pattern of a (P)(UN)SUBSCRIBE: `[kind, name, count]`, with
/// a null name when UNSUBSCRIBE without arguments had nothing to leave.
pub fn confirmation(r: &mut Reply<'_>, kind: &str, name: Option<&[u8]>, count: usize) {
    r.push(3);
    r.bulk(kind.as_bytes());
    match name {
        Some(n) => r.bulk(n),
        None => r.null(),
    }
    r.int(count as i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    #[test]
    fn registry_counts_and_forgets_empty_channels() {
        let mut ps = PubSub::default();
        ps.subscribe(b"news", 1);
        ps.subscribe(b"news", 2);
        ps.psubscribe(b"n*", 1);
        ps.psubscribe(b"n*", 3);
        assert_eq!(ps.num_channels(), 1);
        assert_eq!(ps.num_patterns(), 1);
        assert_eq!(ps.num_subscribers(b"news"), 2);
        let r = ps.receivers(b"news");
        assert_eq!(r.direct, vec![1, 2]);
        assert_eq!(r.by_pattern, vec![(&b"n*"[..], 1), (&b"n*"[..], 3)]);
        assert_eq!(r.count(), 4);
        ps.unsubscribe(b"news", 1);
        ps.unsubscribe(b"news", 2);
        ps.punsubscribe(b"n*", 1);
        assert_eq!(ps.num_channels(), 0);
        assert_eq!(ps.num_patterns(), 1);
        assert_eq!(ps.receivers(b"other").count(), 0);
        ps.ssubscribe(b"news", 4);
        assert_eq!(ps.shard_subscribers(b"news"), &[4]);
        assert_eq!(ps.receivers(b"news").count(), 1);
        ps.sunsubscribe(b"news", 4);
        assert_eq!(ps.num_shard_channels(), 0);
    }

    #[test]
    fn channels_filtered_by_glob() {
        let mut ps = PubSub::default();
        for c in [&b"a1"[..], b"a2", b"b1"] {
            ps.subscribe(c, 7);
        }
        let mut all = ps.channels_matching(None);
        all.sort();
        assert_eq!(all, vec![&b"a1"[..], b"a2", b"b1"]);
        let mut a = ps.channels_matching(Some(b"a*"));
        a.sort();
        assert_eq!(a, vec![&b"a1"[..], b"a2"]);
    }

    #[test]
    fn message_shapes() {
        let mut out = Vec::new();
        message(
            &mut Reply::new(&mut out, Protocol::Resp2),
            "message",
            b"ch",
            b"hi",
        );
        assert_eq!(out, b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        out.clear();
        pmessage(
            &mut Reply::new(&mut out, Protocol::Resp3),
            b"c*",
            b"ch",
            b"",
        );
        assert_eq!(
            out,
            b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n"
        );
        out.clear();
        confirmation(
            &mut Reply::new(&mut out, Protocol::Resp2),
            "unsubscribe",
            None,
            0,
        );
        assert_eq!(out, b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    }
}
