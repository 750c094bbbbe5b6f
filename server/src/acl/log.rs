//! ACL LOG: the last refusals (commands, keys, channels, failed AUTH), newest first, with
//! similar ones within a minute folded into one entry and its count, as Redis 7.0 keeps them.

use std::collections::VecDeque;

/// Entries closer in time than this are folded when everything else matches.
const GROUPING_MS: u64 = 60_000;
/// Redis looks this far back for an entry to fold into.
const SCAN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    /// The command's full name, the key, the channel, or AUTH's command name.
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    /// Unix ms of the last refusal folded in.
    pub updated_ms: u64,
    /// The CLIENT LIST line of the last client refused.
    pub client_info: String,
}

/// `acllog-max-len`: how many entries the log keeps.
pub fn max_len(config: &crate::config::Config) -> usize {
    crate::config::directive("acllog-max-len")
        .and_then(|d| d.get(config).parse().ok())
        .unwrap_or(128)
}

#[derive(Debug, Default)]
pub struct Log {
    entries: VecDeque<Entry>,
}

impl Log {
    /// Records a refusal: folds it into a recent similar entry (moved to the front) or adds
    /// it, keeping at most `max_len` entries.
    pub fn add(&mut self, e: Entry, max_len: usize) {
        let similar = self.entries.iter().take(SCAN).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.updated_ms.abs_diff(e.updated_ms) <= GROUPING_MS
                && o.object == e.object
                && o.username == e.username
        });
        match similar.and_then(|i| self.entries.remove(i)) {
            Some(mut o) => {
                o.count += 1;
                o.updated_ms = e.updated_ms;
                o.client_info = e.client_info;
                self.entries.push_front(o);
            }
            None => {
                self.entries.push_front(e);
                self.entries.truncate(max_len);
            }
        }
    }

    /// Records a refusal that happened now.
    pub fn record(
        &mut self,
        reason: Reason,
        context: Context,
        object: Vec<u8>,
        username: Vec<u8>,
        client_info: String,
        max_len: usize,
    ) {
        let e = Entry {
            count: 1,
            reason,
            context,
            object,
            username,
            updated_ms: crate::clock::now_ms(),
            client_info,
        };
        self.add(e, max_len);
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// Newest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &[u8], at: u64) -> Entry {
        Entry {
            count: 1,
            reason: Reason::Command,
            context: Context::Toplevel,
            object: object.to_vec(),
            username: b"u".to_vec(),
            updated_ms: at,
            client_info: String::new(),
        }
    }

    #[test]
    fn similar_refusals_fold_and_the_log_is_bounded() {
        let mut log = Log::default();
        log.add(entry(b"get", 0), 2);
        log.add(entry(b"set", 1), 2);
        log.add(entry(b"get", 2), 2);
        let objects: Vec<_> = log.entries().map(|e| (e.object.clone(), e.count)).collect();
        assert_eq!(objects, vec![(b"get".to_vec(), 2), (b"set".to_vec(), 1)]);
        log.add(entry(b"get", 2 + GROUPING_MS + 1), 2);
        log.add(entry(b"del", 3 + GROUPING_MS), 2);
        assert_eq!(log.entries().count(), 2);
        assert_eq!(
            log.entries().next().map(|e| e.object.clone()),
            Some(b"del".to_vec())
        );
    }
}
