//! `SmallBytes`: the byte string used for keys and string values.
//!
//! Most keys and many values are short, so up to 22 bytes live inline in the 24-byte value
//! itself; longer ones take one exact-size heap allocation. This is what keeps a small key
//! cheaper than Redis's dictEntry + robj + sds chain.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest string stored inline.
pub const INLINE_CAP: usize = 22;

/// Set in an inline string's length byte when the value must not be reported as `int`.
const VERBATIM: u8 = 0x80;

#[derive(Clone)]
pub enum SmallBytes {
    Inline {
        len: u8,
        data: [u8; INLINE_CAP],
    },
    Heap(Box<[u8]>),
    /// A string value changed in place (APPEND, SETRANGE, SETBIT): Redis keeps such values
    /// as `raw` sds whatever their length, and OBJECT ENCODING shows it.
    Raw(Box<[u8]>),
}

impl SmallBytes {
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_CAP {
            let mut data = [0u8; INLINE_CAP];
            data[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            SmallBytes::Heap(bytes.into())
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_CAP {
            Self::new(&v)
        } else {
            SmallBytes::Heap(v.into_boxed_slice())
        }
    }

    /// A string value Redis stores without trying the integer encoding (INCRBYFLOAT's
    /// result): OBJECT ENCODING says `embstr` even when it reads as an integer.
    /// Only inline strings need the mark; longer ones are never integers.
    pub fn verbatim(bytes: &[u8]) -> Self {
        match Self::new(bytes) {
            SmallBytes::Inline { len, data } => SmallBytes::Inline {
                len: len | VERBATIM,
                data,
            },
            other => other,
        }
    }

    /// True for a value made by [`SmallBytes::verbatim`].
    pub fn is_verbatim(&self) -> bool {
        matches!(self, SmallBytes::Inline { len, .. } if len & VERBATIM != 0)
    }

    /// A value produced by an in-place string edit (see [`SmallBytes::Raw`]).
    pub fn raw(v: Vec<u8>) -> Self {
        SmallBytes::Raw(v.into_boxed_slice())
    }

    /// True for [`SmallBytes::Raw`].
    pub fn is_raw(&self) -> bool {
        matches!(self, SmallBytes::Raw(_))
    }

    pub fn from_i64(v: i64) -> Self {
        Self::new(itoa::Buffer::new().format(v).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..usize::from(*len & !VERBATIM)],
            SmallBytes::Heap(b) | SmallBytes::Raw(b) => b,
        }
    }

    /// The bytes as a vector, without copying a heap string (a value edited in place, such
    /// as a HyperLogLog, is taken out and put back).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            SmallBytes::Inline { .. } => self.as_bytes().to_vec(),
            SmallBytes::Heap(b) | SmallBytes::Raw(b) => b.into_vec(),
        }
    }

    /// Heap bytes owned beyond the inline struct (for memory accounting and eviction).
    pub fn heap_size(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(b) | SmallBytes::Raw(b) => b.len(),
        }
    }
}

impl Default for SmallBytes {
    fn default() -> Self {
        SmallBytes::Inline {
            len: 0,
            data: [0; INLINE_CAP],
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> Self {
        SmallBytes::new(b)
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(v: Vec<u8>) -> Self {
        SmallBytes::from_vec(v)
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_round_trip() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        for len in [0, 1, INLINE_CAP, INLINE_CAP + 1, 1000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = SmallBytes::new(&v);
            assert_eq!(s.as_bytes(), &v[..]);
            assert_eq!(s.heap_size() > 0, len > INLINE_CAP);
            assert_eq!(SmallBytes::from_vec(v.clone()), s);
            assert_eq!(SmallBytes::raw(v.clone()), s);
            assert!(SmallBytes::raw(v.clone()).is_raw());
            assert_eq!(SmallBytes::verbatim(&v), s);
            assert_eq!(SmallBytes::verbatim(&v).len(), len);
            assert_eq!(SmallBytes::verbatim(&v).is_verbatim(), len <= INLINE_CAP);
        }
    }
}
