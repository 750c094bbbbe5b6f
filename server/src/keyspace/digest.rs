//! Redis 7.0's dataset digest (DEBUG DIGEST, DEBUG DIGEST-VALUE): SHA1s combined so that the
//! same data gives the same 40 hex digits on tandem-server and on Redis, whatever the
//! encodings and iteration orders. Tests and tools compare replicas and migrations with it.
//!
//! Unordered things (keys, set members, hash fields, sorted-set entries) are xored in;
//! ordered ones (list elements) are mixed: xored, then the digest is hashed again.

use super::set::Member;
use super::{Db, Entry, Value};
use sha1::{Digest as _, Sha1};

pub type Digest = [u8; 20];

fn sha1(bytes: &[u8]) -> Digest {
    Sha1::digest(bytes).into()
}

/// Redis's `xorDigest`.
fn xor(digest: &mut Digest, bytes: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(bytes)) {
        *d ^= h;
    }
}

/// Redis's `mixDigest`.
fn mix(digest: &mut Digest, bytes: &[u8]) {
    xor(digest, bytes);
    *digest = sha1(digest.as_slice());
}

/// Redis's type numbers (`OBJ_STRING`, ...), which the digest hashes.
fn type_number(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::Zset(_) => 3,
        Value::Hash(_) => 4,
    }
}

/// One key's value (Redis's `xorObjectDigest`), added to `digest`.
pub fn value_digest(digest: &mut Digest, entry: &Entry) {
    mix(digest, &type_number(&entry.value).to_be_bytes());
    match &entry.value {
        Value::Str(s) => mix(digest, s.as_bytes()),
        Value::List(l) => l.iter().for_each(|e| mix(digest, e)),
        Value::Set(s) => {
            for m in s.iter() {
                match m {
                    Member::Int(i) => xor(digest, itoa::Buffer::new().format(i).as_bytes()),
                    Member::Bytes(b) => xor(digest, b),
                }
            }
        }
        Value::Zset(z) => {
            for (member, score) in z.iter() {
                let mut element = [0u8; 20];
                mix(&mut element, member);
                mix(
                    &mut element,
                    crate::protocol::format_g(score, 17).as_bytes(),
                );
                xor(digest, &element);
            }
        }
        Value::Hash(h) => {
            for (field, value) in h.iter() {
                let mut element = [0u8; 20];
                mix(&mut element, field);
                mix(&mut element, value);
                xor(digest, &element);
            }
        }
    }
    if entry.expire_at().is_some() {
        xor(digest, b"!!expire!!");
    }
}

/// The digest of every database (Redis's `computeDatasetDigest`); all zeros when empty.
pub fn dataset_digest(dbs: &[Db]) -> Digest {
    let mut digest = [0u8; 20];
    for (id, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix(&mut digest, &(id as u32).to_be_bytes());
        for (_, entry) in db.iter() {
            let mut key = [0u8; 20];
            mix(&mut key, entry.key.as_bytes());
            value_digest(&mut key, entry);
            xor(&mut digest, &key);
        }
    }
    digest
}

/// The digest as Redis prints it.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
