//! Keyspace values to RDB and back. Saving calls the writer's borrowed-data methods on the
//! value in place (one match arm per type, no copy of the value); loading turns a format
//! value into the keyspace's representation.
//!
//! This module must not decide policy (expiry, duplicates, which keys to save): the producer
//! and the loader do.

use std::cell::RefCell;
use std::io::Write;

use super::rdb::{RdbError, RdbValue, RdbWriter};
use crate::keyspace::{Entry, SmallBytes, Value};

/// Why a loaded value cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The RDB holds a type this server does not store yet.
    #[error("the RDB holds a {0} value, a type this server cannot store")]
    Unsupported(&'static str),
}

/// Writes one key with its value and expiry.
///
/// # Errors
/// The destination failed, or the value is one Redis would refuse to load.
pub fn write_entry<W: Write>(w: &mut RdbWriter<W>, e: &Entry) -> Result<(), RdbError> {
    let key = e.key.as_bytes();
    let expire = e.expire_at();
    match &e.value {
        Value::Str(s) => w.string(key, s, expire),
    }
}

/// The keyspace value for a loaded RDB value.
///
/// # Errors
/// The type is not one the keyspace stores.
pub fn from_rdb(value: RdbValue) -> Result<Value, ConvertError> {
    match value {
        RdbValue::String(s) => Ok(Value::Str(SmallBytes::from_vec(s))),
        other => Err(ConvertError::Unsupported(other.type_name())),
    }
}

thread_local! {
    /// Fragment writers (with and without LZF) reused across keys, so encoding a key does
    /// not allocate the writer's buffers again. Snapshots run on the main thread only.
    static FRAGMENT: RefCell<[Option<RdbWriter<Vec<u8>>>; 2]> = const { RefCell::new([None, None]) };
}

/// Appends `e` to `out` as RDB bytes, with LZF compression (`rdbcompression yes`).
pub fn encode_compressed(e: &Entry, out: &mut Vec<u8>) {
    encode(e, out, true);
}

/// Appends `e` to `out` as RDB bytes, without compression.
pub fn encode_plain(e: &Entry, out: &mut Vec<u8>) {
    encode(e, out, false);
}

fn encode(e: &Entry, out: &mut Vec<u8>, compression: bool) {
    FRAGMENT.with_borrow_mut(|writers| {
        let w = writers[usize::from(compression)]
            .get_or_insert_with(|| RdbWriter::fragment(Vec::new(), compression));
        // The writer appends straight into `out`: swap it in, write, swap it back.
        let res = w
            .flushed_output()
            .map(|dest| std::mem::swap(dest, out))
            .and_then(|()| write_entry(w, e))
            .and_then(|()| w.flushed_output().map(|dest| std::mem::swap(dest, out)));
        if let Err(err) = res {
            // Only an invalid value can fail over a Vec; the key is left out of the dump.
            tracing::warn!(
                "Skipping key '{}' in the RDB: {err}",
                String::from_utf8_lossy(&e.key)
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::rdb::{Aux, Item, RdbReader, WriterOptions};

    #[test]
    fn fragments_concatenate_into_a_valid_stream() {
        let mut body = Vec::new();
        let big = vec![b'x'; 100_000];
        let entries = [
            Entry::new(SmallBytes::new(b"a"), Value::Str(SmallBytes::new(b"1"))),
            Entry::new(SmallBytes::new(b"b"), Value::Str(SmallBytes::new(&big))),
        ];
        for e in &entries {
            encode_compressed(e, &mut body);
        }
        let mut header =
            RdbWriter::new(Vec::new(), WriterOptions::default(), &Aux::default()).expect("header");
        let mut file = std::mem::take(header.flushed_output().expect("flush"));
        file.extend_from_slice(&body);
        let mut tail = RdbWriter::fragment(Vec::new(), true);
        tail.end_of_stream().expect("eof");
        file.extend_from_slice(tail.flushed_output().expect("flush"));
        let mut cw = crate::persistence::rdb::ChecksumWriter::new(Vec::new(), true);
        cw.write(&file).expect("write");
        let file = cw.finish().expect("finish");
        let items: Vec<Item> = RdbReader::new(&file[..])
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("valid");
        let keys: Vec<(Vec<u8>, RdbValue)> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Entry(e) => Some((e.key, e.value)),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (b"a".to_vec(), RdbValue::String(b"1".to_vec())),
                (b"b".to_vec(), RdbValue::String(big)),
            ]
        );
    }
}
