//! The replication backlog: the last `repl-backlog-size` bytes of the replication stream,
//! kept so a replica that lost its link can continue from its offset (`+CONTINUE`) instead
//! of a full resync. It must not know replicas or ids: the master decides with
//! [`ReplIds::accepts`](super::ids::ReplIds::accepts) and [`Backlog::since`].

use std::collections::VecDeque;

/// Smallest size Redis accepts for the backlog (`resizeReplicationBacklog`).
const MIN_SIZE: usize = 16 * 1024;

/// A ring buffer of stream bytes with the offset of its first byte.
#[derive(Debug)]
pub struct Backlog {
    buf: VecDeque<u8>,
    /// Stream offset of `buf[0]` (`repl_backlog->offset`): `master_repl_offset - histlen + 1`.
    first: u64,
    size: usize,
}

impl Backlog {
    /// An empty backlog whose next byte is stream offset `master_offset + 1`.
    pub fn new(master_offset: u64, size: u64) -> Self {
        Backlog {
            buf: VecDeque::new(),
            first: master_offset + 1,
            size: (size as usize).max(MIN_SIZE),
        }
    }

    /// Appends stream bytes, dropping the oldest beyond the configured size.
    pub fn append(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
        self.trim();
    }

    /// `CONFIG SET repl-backlog-size` takes effect at once.
    pub fn resize(&mut self, size: u64) {
        self.size = (size as usize).max(MIN_SIZE);
        self.trim();
    }

    fn trim(&mut self) {
        let excess = self.buf.len().saturating_sub(self.size);
        if excess > 0 {
            self.buf.drain(..excess);
            self.first += excess as u64;
        }
    }

    /// `repl_backlog_first_byte_offset`.
    pub fn first_byte_offset(&self) -> u64 {
        self.first
    }

    /// `repl_backlog_histlen`.
    pub fn histlen(&self) -> u64 {
        self.buf.len() as u64
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes from stream offset `offset` to the end, when the backlog still holds them:
    /// `first <= offset <= first + histlen` (the data half of PSYNC acceptance; an offset one
    /// past the end yields nothing to send, which is still a success).
    pub fn since(&self, offset: u64) -> Option<Vec<u8>> {
        if offset < self.first || offset > self.first + self.histlen() {
            return None;
        }
        let skip = (offset - self.first) as usize;
        Some(self.buf.range(skip..).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_last_bytes_and_answers_offsets() {
        let mut b = Backlog::new(0, 0);
        assert_eq!(b.first_byte_offset(), 1);
        assert_eq!(b.since(1), Some(Vec::new()));
        b.append(b"hello");
        assert_eq!(b.since(3).as_deref(), Some(&b"llo"[..]));
        assert_eq!(b.since(6), Some(Vec::new()));
        assert_eq!(b.since(7), None);
        b.append(&vec![b'x'; MIN_SIZE]);
        assert_eq!(b.histlen(), MIN_SIZE as u64);
        assert_eq!(b.first_byte_offset(), 6);
        assert_eq!(b.since(5), None);
    }
}
