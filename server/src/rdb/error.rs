//! The one error type of the RDB layer. Every variant that comes from the input names the
//! check that failed and the byte offset where it failed, so a refused file or replication
//! payload can be diagnosed from the log line alone. It must not carry partial data.

use std::io;

/// Why reading or writing an RDB stream failed.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The underlying reader failed (not a format problem).
    #[error("failed to read RDB at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    /// The stream ended before a complete item.
    #[error("truncated RDB at byte {offset}: expected {expected}")]
    Truncated { offset: u64, expected: &'static str },
    /// The bytes are present but violate the format.
    #[error("corrupt RDB at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    /// The first five bytes are not `REDIS`.
    #[error("wrong signature trying to load DB from file: not an RDB file")]
    BadSignature,
    /// Redis 7.0 loads versions 1 to 10 only; the message is Redis's own.
    #[error("Can't handle RDB format version {0}")]
    UnsupportedVersion(u32),
    /// A value type this layer does not decode (streams, modules).
    #[error("unsupported RDB value type {type_id} ({name}) at byte {offset}")]
    UnsupportedType {
        offset: u64,
        type_id: u8,
        name: &'static str,
    },
    /// The CRC64 trailer does not match the bytes before it.
    #[error("RDB checksum mismatch: file says {stored:016x}, computed {computed:016x}")]
    ChecksumMismatch { stored: u64, computed: u64 },
    /// The writer was handed a value Redis would refuse to load.
    #[error("cannot write key to RDB: {0}")]
    InvalidValue(&'static str),
    /// The destination of the writer failed.
    #[error("failed to write RDB: {0}")]
    Write(#[source] io::Error),
}

impl RdbError {
    /// Builds a [`RdbError::Corrupt`]; the reason is formatted only on the error path.
    pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        RdbError::Corrupt {
            offset,
            reason: reason.into(),
        }
    }
}
