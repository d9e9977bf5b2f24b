//! The DUMP payload (cluster.c createDumpPayload / verifyDumpPayload): a
//! value's RDB type byte and body, then the RDB version (u16 LE) and the
//! CRC64 (Jones, Redis's crc64) of everything before it (u64 LE).

use crate::codec::Input;
use crate::value::{self, Limits};
use crate::{hash_ttl, Error, RDB_VERSION_HASH_TTLS, RDB_VERSION_READ, RDB_VERSION_WRITE};
use granary_keyspace::Value;

const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// Redis's crc64(0, data).
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// Why RESTORE refuses a payload.
#[derive(Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// "DUMP payload version or checksum are wrong".
    VersionOrChecksum,
    /// "Bad data format".
    BadData(Error),
}

/// The DUMP payload of `v`. A hash with field TTLs takes Redis 7.4's form
/// and version (Redis 7.0 refuses it: it has no way to hold the TTLs);
/// every other value is what Redis 7.0 writes.
pub fn dump(v: &Value, lim: &Limits) -> Vec<u8> {
    let mut out = Vec::new();
    let version = match v {
        Value::Hash(h) if hash_ttl::has_ttls(v) => {
            hash_ttl::write(lim.compress, &mut out, h);
            RDB_VERSION_HASH_TTLS
        }
        _ => {
            value::write(&mut out, v, lim);
            RDB_VERSION_WRITE
        }
    };
    out.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the footer (verifyDumpPayload).
pub fn verify(payload: &[u8]) -> Result<(), RestoreError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(RestoreError::VersionOrChecksum);
    };
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    if version > RDB_VERSION_READ {
        return Err(RestoreError::VersionOrChecksum);
    }
    let mut crc = [0; 8];
    crc.copy_from_slice(&payload[body_len + 2..]);
    if crc64(&payload[..body_len + 2]) != u64::from_le_bytes(crc) {
        return Err(RestoreError::VersionOrChecksum);
    }
    Ok(())
}

/// Decodes a DUMP payload into a value with Granary's encodings for `lim`.
/// Like Redis, bytes after the value are ignored, and the value is read
/// from the whole payload: Redis reads a truncated value on into the footer.
pub fn restore(payload: &[u8], lim: &Limits) -> Result<Value, RestoreError> {
    verify(payload)?;
    value::read(&mut Input::new(payload), lim).map_err(RestoreError::BadData)
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_keyspace::StrValue;

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn string_payload_matches_redis() {
        // redis-cli DUMP of SET k hello (Redis 7.0).
        let p = dump(&Value::Str(StrValue::from_bytes(b"hello")), &lim());
        assert_eq!(&p[..8], b"\x00\x05hello\x0a");
        assert_eq!(p[8], 0);
        assert!(restore(&p, &lim()).is_ok());
    }

    #[test]
    fn footer_errors() {
        let p = dump(&Value::Str(StrValue::from_bytes(b"hello")), &lim());
        assert_eq!(verify(&p[..9]), Err(RestoreError::VersionOrChecksum));
        let mut bad = p.clone();
        bad[3] ^= 1;
        assert_eq!(verify(&bad), Err(RestoreError::VersionOrChecksum));
        // A newer RDB version with a valid checksum is refused too.
        let mut newer = p[..p.len() - 10].to_vec();
        newer.extend_from_slice(&(RDB_VERSION_READ + 1).to_le_bytes());
        let crc = crc64(&newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(verify(&newer), Err(RestoreError::VersionOrChecksum));
    }
}
