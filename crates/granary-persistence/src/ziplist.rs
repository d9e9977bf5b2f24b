//! Redis's ziplist (ziplist.c, RDB 9 and older: Redis 6 and before), read
//! only, so files and payloads from older Redis versions load.
//!
//! Layout: total bytes (u32 LE), offset of the last entry (u32 LE), entry
//! count (u16 LE, 65535 when unknown), entries, 0xFF. Each entry: the
//! previous entry's size (1 byte, or 0xFE and u32 LE), an encoding with the
//! string length or integer type, then the data.

use crate::codec::{Error, Result};
use crate::listpack::LpEntry;

const HEADER: usize = 10;
const END: u8 = 0xFF;
const BIG_PREVLEN: u8 = 0xFE;

/// Reads a ziplist, checking every entry (sizes, back links, count).
pub fn parse(zl: &[u8]) -> Result<Vec<LpEntry<'_>>> {
    if zl.len() < HEADER + 1 {
        return Err(Error("ziplist too short"));
    }
    let u32_at = |i: usize| u32::from_le_bytes([zl[i], zl[i + 1], zl[i + 2], zl[i + 3]]) as usize;
    if u32_at(0) != zl.len() || zl[zl.len() - 1] != END {
        return Err(Error("ziplist header mismatch"));
    }
    let tail = u32_at(4);
    let count = u16::from_le_bytes([zl[8], zl[9]]);
    let end = zl.len() - 1;
    let mut out = Vec::with_capacity(usize::from(count).min(end / 2));
    let mut p = HEADER;
    let mut prev_size = 0;
    let mut last = HEADER;
    while p < end {
        let (prevlen, header) = prevlen_at(&zl[p..end])?;
        if prevlen != prev_size {
            return Err(Error("ziplist prevlen mismatch"));
        }
        let (entry, size) = entry_at(&zl[p + header..end])?;
        out.push(entry);
        last = p;
        prev_size = header + size;
        p += prev_size;
    }
    let tail_ok = if out.is_empty() {
        tail == HEADER
    } else {
        tail == last
    };
    if !tail_ok || (count != u16::MAX && usize::from(count) != out.len()) {
        return Err(Error("ziplist count or tail mismatch"));
    }
    Ok(out)
}

/// The previous entry's size and the bytes that field takes.
fn prevlen_at(b: &[u8]) -> Result<(usize, usize)> {
    match b.first() {
        Some(&BIG_PREVLEN) if b.len() >= 5 => {
            Ok((u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize, 5))
        }
        Some(&BIG_PREVLEN) | None => Err(Error("ziplist entry truncated")),
        Some(&n) => Ok((usize::from(n), 1)),
    }
}

/// The entry (after its prevlen) at the start of `b` and its size.
fn entry_at(b: &[u8]) -> Result<(LpEntry<'_>, usize)> {
    let need = |n: usize| {
        if b.len() < n {
            Err(Error("ziplist entry truncated"))
        } else {
            Ok(())
        }
    };
    need(1)?;
    let e = b[0];
    let int = |n: usize| -> Result<(LpEntry<'_>, usize)> {
        need(1 + n)?;
        let mut a = [0u8; 8];
        a[8 - n..].copy_from_slice(&b[1..1 + n]);
        // Little-endian bytes placed high, then shifted down with sign.
        let v = i64::from_le_bytes(a) >> (8 * (8 - n));
        Ok((LpEntry::Int(v), 1 + n))
    };
    let string = |start: usize, n: usize| -> Result<(LpEntry<'_>, usize)> {
        need(start.saturating_add(n))?;
        Ok((LpEntry::Str(&b[start..start + n]), start + n))
    };
    match e >> 6 {
        0 => string(1, usize::from(e & 0x3F)),
        1 => {
            need(2)?;
            string(2, (usize::from(e & 0x3F) << 8) | usize::from(b[1]))
        }
        2 => {
            need(5)?;
            string(5, u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize)
        }
        _ => match e {
            0xC0 => int(2),
            0xD0 => int(4),
            0xE0 => int(8),
            0xF0 => int(3),
            0xFE => int(1),
            0xF1..=0xFD => Ok((LpEntry::Int(i64::from(e & 0x0F) - 1), 1)),
            _ => Err(Error("bad ziplist encoding")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a ziplist from encoded entries (encoding + data).
    fn build(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut last = HEADER;
        for e in entries {
            last = HEADER + body.len();
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(BIG_PREVLEN);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            body.extend_from_slice(e);
            prev = if prev < 254 { 1 } else { 5 } + e.len();
        }
        let total = HEADER + body.len() + 1;
        let mut zl = Vec::new();
        zl.extend_from_slice(&(total as u32).to_le_bytes());
        zl.extend_from_slice(&(last as u32).to_le_bytes());
        zl.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(END);
        zl
    }

    #[test]
    fn every_encoding() {
        let long = vec![b'x'; 300];
        let mut e14 = vec![0x40 | 1, 44];
        e14.extend_from_slice(&long);
        let entries = vec![
            b"\x03abc".to_vec(),
            e14,
            vec![0xC0, 0x2E, 0xFB],
            vec![0xD0, 0x70, 0x11, 0x01, 0x00],
            [vec![0xE0], i64::MIN.to_le_bytes().to_vec()].concat(),
            vec![0xF0, 0xFF, 0xFF, 0x7F],
            vec![0xFE, 0x80],
            vec![0xF1],
            vec![0xFD],
        ];
        let zl = build(&entries);
        assert_eq!(
            parse(&zl).unwrap(),
            [
                LpEntry::Str(b"abc"),
                LpEntry::Str(&long),
                LpEntry::Int(-1234),
                LpEntry::Int(70000),
                LpEntry::Int(i64::MIN),
                LpEntry::Int(8388607),
                LpEntry::Int(-128),
                LpEntry::Int(0),
                LpEntry::Int(12),
            ]
        );
        for cut in 0..zl.len() {
            assert!(parse(&zl[..cut]).is_err());
        }
        for i in 0..zl.len() {
            let mut bad = zl.clone();
            bad[i] ^= 0x55;
            let _ = parse(&bad);
        }
    }

    #[test]
    fn old_types_load_from_ziplists() {
        use crate::codec::{put_len, put_string, Input};
        use crate::{types, value};
        let zl = build(&[
            b"\x01f".to_vec(),
            vec![0xF2],
            b"\x01g".to_vec(),
            b"\x032.5".to_vec(),
        ]);
        let lim = value::tests::lim();
        let read = |t: u8, body: &[u8]| {
            let v = value::read_body(t, &mut Input::new(body), &lim).unwrap();
            (v.type_name(), v.encoding(), v.free_effort())
        };
        let mut blob = Vec::new();
        put_string(&mut blob, &zl);
        assert_eq!(read(types::HASH_ZIPLIST, &blob), ("hash", "listpack", 2));
        assert_eq!(read(types::ZSET_ZIPLIST, &blob), ("zset", "listpack", 2));
        assert_eq!(read(types::LIST_ZIPLIST, &blob), ("list", "listpack", 4));
        let mut ql = Vec::new();
        put_len(&mut ql, 2);
        ql.extend_from_slice(&blob);
        ql.extend_from_slice(&blob);
        assert_eq!(read(types::LIST_QUICKLIST, &ql), ("list", "listpack", 8));
    }
}
