//! DUMP payloads, as Redis's `createDumpPayload` and `verifyDumpPayload` make and check them:
//! one value in RDB form (its type byte, then its body), the RDB version (2 bytes, little
//! endian) and the CRC64 of everything before it (8 bytes, little endian).
//!
//! The value goes through the same writer and reader as RDB files, so every type they know
//! is covered and nothing here knows a type. Both speak in keyed records: the writer is
//! given an empty key, whose one length byte is taken out after the type byte, and the
//! reader is given that byte back inside a stream made of an RDB header and the payload.

use super::encoding::{OPCODE_FUNCTION2, RDB_VERSION, crc64_digest};
use super::{Item, RdbReader, RdbValue, RdbWriter, convert};
use crate::keyspace::Value;

/// Why a payload was refused, in the two cases RESTORE tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("Bad data format")]
    BadFormat,
}

/// The DUMP payload of a value; `compression` is `rdbcompression`, which Redis applies to
/// payloads too.
pub fn encode(value: &Value, compression: bool) -> Vec<u8> {
    let mut w = RdbWriter::fragment(Vec::new(), compression).with_redis_lzf();
    // Only a value Redis could not load fails over a Vec (a NaN score, which no command
    // stores).
    let mut out = convert::write_value(&mut w, b"", None, value)
        .and_then(|()| w.flushed_output().map(std::mem::take))
        .unwrap_or_default();
    if out.len() >= 2 {
        // The empty key's length byte, after the type byte.
        out.remove(1);
    }
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let mut crc = crc64_digest();
    crc.update(&out);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out
}

/// The value of a payload, after checking its version (at most ours) and checksum.
///
/// # Errors
/// [`DumpError::VersionOrChecksum`] for a short payload, a newer version or a wrong CRC;
/// [`DumpError::BadFormat`] when the body is not one valid value.
pub fn decode(payload: &[u8]) -> Result<RdbValue, DumpError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(DumpError::VersionOrChecksum);
    };
    let footer = &payload[body_len..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if u32::from(version) > RDB_VERSION {
        return Err(DumpError::VersionOrChecksum);
    }
    let mut crc = crc64_digest();
    crc.update(&payload[..body_len + 2]);
    if crc.finalize().to_le_bytes() != footer[2..] {
        return Err(DumpError::VersionOrChecksum);
    }
    // Redis reads the value from the whole payload, footer included: a body that claims
    // more bytes than it has reads into the footer, and only past it is the value short.
    // Only a value type may come first: opcodes (expiry, SELECTDB, ...) are not values.
    let (&type_id, rest) = payload
        .split_first()
        .filter(|(t, _)| **t < OPCODE_FUNCTION2)
        .ok_or(DumpError::BadFormat)?;
    let mut stream = format!("REDIS{RDB_VERSION:04}").into_bytes();
    stream.extend_from_slice(&[type_id, 0]);
    stream.extend_from_slice(rest);
    let mut reader = RdbReader::new(&stream[..]).map_err(|_| DumpError::BadFormat)?;
    match reader.next_item() {
        Ok(Some(Item::Entry(e))) => Ok(e.value),
        _ => Err(DumpError::BadFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::super::encoding::OPCODE_EOF;
    use super::*;
    use crate::keyspace::SmallBytes;

    #[test]
    fn string_payloads_are_redis_bytes() {
        // Redis 7.0: SET k hello; DUMP k
        let v = Value::Str(SmallBytes::new(b"hello"));
        let p = encode(&v, true);
        assert_eq!(
            p,
            b"\x00\x05hello\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a".to_vec()
        );
        assert_eq!(decode(&p), Ok(RdbValue::String(b"hello".to_vec())));
    }

    #[test]
    fn damaged_payloads_are_refused() {
        let mut p = encode(&Value::Str(SmallBytes::new(b"12345")), true);
        assert_eq!(decode(&p[..9]), Err(DumpError::VersionOrChecksum));
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(decode(&p), Err(DumpError::VersionOrChecksum));
        let mut newer = p[..p.len() - 10].to_vec();
        newer.extend_from_slice(&11u16.to_le_bytes());
        let mut crc = crc64_digest();
        crc.update(&newer);
        newer.extend_from_slice(&crc.finalize().to_le_bytes());
        assert_eq!(decode(&newer), Err(DumpError::VersionOrChecksum));
        let mut opcode = vec![OPCODE_EOF, 10, 0];
        let mut crc = crc64_digest();
        crc.update(&opcode);
        opcode.extend_from_slice(&crc.finalize().to_le_bytes());
        assert_eq!(decode(&opcode), Err(DumpError::BadFormat));
    }
}
