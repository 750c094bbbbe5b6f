//! Keyspace notifications (`notify-keyspace-events`): the classes a user enables, and the
//! events commands, expiry and eviction raise.
//!
//! Raising an event only queues it on the server ([`crate::state::Server::notify`]); the
//! command layer publishes the queue on the `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>` channels once the command (or cron step) is done, because
//! delivering to other clients' buffers belongs to the pub/sub code, not to the keyspace.
//! Nothing is queued for a class that is off, so the cost when notifications are disabled
//! (Redis's default) is one test of a bit mask.

use std::fmt;

/// Notification classes, Redis's bits (its `NOTIFY_*` flags).
pub mod class {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u16 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u16 = 1 << 1;
    /// `g`: DEL, EXPIRE, RENAME... (type-independent commands).
    pub const GENERIC: u16 = 1 << 2;
    /// `$`
    pub const STRING: u16 = 1 << 3;
    /// `l`
    pub const LIST: u16 = 1 << 4;
    /// `s`
    pub const SET: u16 = 1 << 5;
    /// `h`
    pub const HASH: u16 = 1 << 6;
    /// `z`
    pub const ZSET: u16 = 1 << 7;
    /// `x`: a key deleted because it expired.
    pub const EXPIRED: u16 = 1 << 8;
    /// `e`: a key evicted for `maxmemory`.
    pub const EVICTED: u16 = 1 << 9;
    /// `t`
    pub const STREAM: u16 = 1 << 10;
    /// `m`: a read found no key (not part of `A`: it would fire on every cache miss).
    pub const KEY_MISS: u16 = 1 << 11;
    /// `d`: module events (accepted; tandem has no modules).
    pub const MODULE: u16 = 1 << 13;
    /// `n`: a key was created (not part of `A`).
    pub const NEW: u16 = 1 << 14;
    /// `A`
    pub const ALL: u16 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// The enabled classes, as `notify-keyspace-events` sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventClasses(u16);

/// The letters of each class, in the order Redis writes them back (CONFIG GET, CONFIG
/// REWRITE).
const LETTERS: [(char, u16); 11] = [
    ('g', class::GENERIC),
    ('$', class::STRING),
    ('l', class::LIST),
    ('s', class::SET),
    ('h', class::HASH),
    ('z', class::ZSET),
    ('x', class::EXPIRED),
    ('e', class::EVICTED),
    ('t', class::STREAM),
    ('d', class::MODULE),
    ('n', class::NEW),
];

impl EventClasses {
    /// Reads the directive's letters; `None` for a letter that names no class.
    pub fn parse(text: &str) -> Option<Self> {
        let mut bits = 0;
        for c in text.chars() {
            bits |= match c {
                'A' => class::ALL,
                'K' => class::KEYSPACE,
                'E' => class::KEYEVENT,
                'm' => class::KEY_MISS,
                _ => LETTERS.iter().find(|(l, _)| *l == c)?.1,
            };
        }
        Some(EventClasses(bits))
    }

    /// Whether an event of `class` is published: its class is on, and at least one of
    /// the two channel kinds.
    pub fn wants(self, class: u16) -> bool {
        self.0 & class != 0 && self.0 & (class::KEYSPACE | class::KEYEVENT) != 0
    }

    pub fn has(self, class: u16) -> bool {
        self.0 & class != 0
    }
}

impl fmt::Display for EventClasses {
    /// Redis's form: `A` when every class of it is on, else the letters in table order;
    /// then `K`, `E`, `m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 & class::ALL == class::ALL {
            // Redis 7.0 writes `n` only in the per-letter branch, so CONFIG GET of `An`
            // reads `A` (the class stays on).
            f.write_str("A")?;
        } else {
            for (letter, bit) in LETTERS {
                if self.has(bit) {
                    write!(f, "{letter}")?;
                }
            }
        }
        for (letter, bit) in [
            ('K', class::KEYSPACE),
            ('E', class::KEYEVENT),
            ('m', class::KEY_MISS),
        ] {
            if self.has(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One raised event, waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub db: usize,
    pub event: &'static str,
    pub key: Vec<u8>,
}

impl KeyEvent {
    /// `__keyspace@<db>__:<key>`, whose message is the event name.
    pub fn keyspace_channel(&self) -> Vec<u8> {
        let mut c = format!("__keyspace@{}__:", self.db).into_bytes();
        c.extend_from_slice(&self.key);
        c
    }

    /// `__keyevent@<db>__:<event>`, whose message is the key.
    pub fn keyevent_channel(&self) -> Vec<u8> {
        format!("__keyevent@{}__:{}", self.db, self.event).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_read_and_written_back_as_redis_does() {
        let cases = [
            ("", ""),
            ("KEA", "AKE"),
            ("AKEmn", "AKEm"),
            ("Elg", "glE"),
            ("xE", "xE"),
            ("g$lshzxetdK", "AK"),
            ("Kn", "nK"),
        ];
        for (input, canonical) in cases {
            let c = EventClasses::parse(input).expect(input);
            assert_eq!(c.to_string(), canonical, "{input}");
        }
        assert_eq!(EventClasses::parse("KEQ"), None);
        assert!(
            !EventClasses::parse("A")
                .unwrap_or_default()
                .wants(class::SET)
        );
        assert!(
            EventClasses::parse("Ks")
                .unwrap_or_default()
                .wants(class::SET)
        );
        assert!(
            !EventClasses::parse("KEA")
                .unwrap_or_default()
                .wants(class::NEW)
        );
    }

    #[test]
    fn channels_name_database_key_and_event() {
        let e = KeyEvent {
            db: 3,
            event: "set",
            key: b"k:1".to_vec(),
        };
        assert_eq!(e.keyspace_channel(), b"__keyspace@3__:k:1");
        assert_eq!(e.keyevent_channel(), b"__keyevent@3__:set");
    }
}
