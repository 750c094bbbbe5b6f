//! Stream entry ids, ordered and printed as Redis's.

use crate::keyspace::SmallBytes;

/// An entry id: milliseconds and sequence number, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next id in order, `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_add(1).map(|ms| StreamId::new(ms, 0)),
        }
    }

    /// The previous id in order, `None` before [`StreamId::MIN`].
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_sub(1).map(|ms| StreamId::new(ms, u64::MAX)),
        }
    }

    /// `ms-seq`, as Redis prints ids.
    pub fn text(self) -> SmallBytes {
        let mut b = itoa::Buffer::new();
        let mut out = [0u8; 41];
        let ms = b.format(self.ms).as_bytes();
        out[..ms.len()].copy_from_slice(ms);
        out[ms.len()] = b'-';
        let at = ms.len() + 1;
        let seq = b.format(self.seq).as_bytes();
        out[at..at + seq.len()].copy_from_slice(seq);
        SmallBytes::new(&out[..at + seq.len()])
    }
}
