//! Redis's listpack (listpack.c): the blob RDB stores small hashes, sorted
//! sets, list nodes and (7.2+) sets as.
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 when it does
//! not fit), the entries, and 0xFF. Each entry is an encoding byte (with
//! the value or length), the data, then its own size ("backlen") in 1 to 5
//! bytes of 7 bits, readable backwards.

use crate::codec::{Error, Result};

const HEADER: usize = 6;
const EOF: u8 = 0xFF;
/// The element count stored when the real count does not fit 16 bits.
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One listpack element: Redis stores canonical integers as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LpEntry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl LpEntry<'_> {
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            LpEntry::Int(v) => itoa::Buffer::new().format(v).as_bytes().to_vec(),
            LpEntry::Str(s) => s.to_vec(),
        }
    }
}

/// Builds a listpack by appending elements.
pub struct Writer {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// Bytes the finished listpack will take.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends a string, as an integer when it is a canonical one (lpAppend).
    pub fn push(&mut self, s: &[u8]) {
        match granary_keyspace::canonical_i64(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1FFF;
            b.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
        } else if let Ok(v) = i16::try_from(v) {
            b.push(0xF1);
            b.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            b.push(0xF3);
            b.extend_from_slice(&v.to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        self.finish_entry(start);
    }

    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.extend_from_slice(&[0xE0 | (n >> 8) as u8, n as u8]);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        self.finish_entry(start);
    }

    /// Appends the backlen of the entry that began at `start`
    /// (lpEncodeBacklen): most significant 7 bits first; every byte after
    /// the first has the high bit set, which tells a backwards reader to go on.
    fn finish_entry(&mut self, start: usize) {
        let l = (self.buf.len() - start) as u64;
        let groups = backlen_size(l as usize);
        for i in (0..groups).rev() {
            let mut byte = ((l >> (7 * i)) & 127) as u8;
            if i != groups - 1 {
                byte |= 128;
            }
            self.buf.push(byte);
        }
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(COUNT_UNKNOWN);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Size of the backlen field for an entry of `l` bytes.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Reads a listpack, validating it entirely (header, every entry, every
/// backlen, the terminator and the count), like lpValidateIntegrity with
/// deep checking: a corrupt blob is an error, never a panic.
pub fn parse(lp: &[u8]) -> Result<Vec<LpEntry<'_>>> {
    if lp.len() < HEADER + 1 {
        return Err(Error("listpack too short"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() || lp[lp.len() - 1] != EOF {
        return Err(Error("listpack header mismatch"));
    }
    let count = u16::from_le_bytes([lp[4], lp[5]]);
    let end = lp.len() - 1;
    let mut out = Vec::with_capacity(usize::from(count).min(end / 2));
    let mut p = HEADER;
    while p < end {
        let (entry, size) = entry_at(&lp[p..end])?;
        let bl = backlen_size(size);
        let Some(back) = lp
            .get(p + size..p + size + bl)
            .filter(|_| p + size + bl <= end)
        else {
            return Err(Error("listpack entry overflows"));
        };
        if decode_backlen(back) != Some(size) {
            return Err(Error("listpack backlen mismatch"));
        }
        out.push(entry);
        p += size + bl;
    }
    if count != COUNT_UNKNOWN && usize::from(count) != out.len() {
        return Err(Error("listpack count mismatch"));
    }
    Ok(out)
}

/// Decodes a backlen stored in forward order.
fn decode_backlen(b: &[u8]) -> Option<usize> {
    let mut v: usize = 0;
    for (i, &byte) in b.iter().enumerate() {
        let cont = byte & 128 != 0;
        // All bytes but the first of a multi-byte backlen have the flag.
        if cont != (i != 0) {
            return None;
        }
        v = (v << 7) | usize::from(byte & 127);
    }
    Some(v)
}

/// The entry at the start of `b` and its size without the backlen.
fn entry_at(b: &[u8]) -> Result<(LpEntry<'_>, usize)> {
    let short = Error("listpack entry truncated");
    let need = |n: usize| {
        if b.len() < n {
            Err(short.clone())
        } else {
            Ok(())
        }
    };
    let le = |n: usize| -> u64 {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[1..1 + n]);
        u64::from_le_bytes(a)
    };
    // Sign-extends the low `bits` of `u`.
    let signed = |u: u64, bits: u32| ((u << (64 - bits)) as i64) >> (64 - bits);
    let e = b[0];
    Ok(match e {
        0x00..=0x7F => (LpEntry::Int(i64::from(e)), 1),
        0x80..=0xBF => {
            let n = usize::from(e & 0x3F);
            need(1 + n)?;
            (LpEntry::Str(&b[1..1 + n]), 1 + n)
        }
        0xC0..=0xDF => {
            need(2)?;
            let u = (u64::from(e & 0x1F) << 8) | u64::from(b[1]);
            (LpEntry::Int(signed(u, 13)), 2)
        }
        0xE0..=0xEF => {
            need(2)?;
            let n = (usize::from(e & 0x0F) << 8) | usize::from(b[1]);
            need(2 + n)?;
            (LpEntry::Str(&b[2..2 + n]), 2 + n)
        }
        0xF0 => {
            need(5)?;
            let n = le(4) as usize;
            need(5usize.saturating_add(n))?;
            (LpEntry::Str(&b[5..5 + n]), 5 + n)
        }
        0xF1 => {
            need(3)?;
            (LpEntry::Int(signed(le(2), 16)), 3)
        }
        0xF2 => {
            need(4)?;
            (LpEntry::Int(signed(le(3), 24)), 4)
        }
        0xF3 => {
            need(5)?;
            (LpEntry::Int(signed(le(4), 32)), 5)
        }
        0xF4 => {
            need(9)?;
            (LpEntry::Int(le(8) as i64), 9)
        }
        _ => return Err(Error("bad listpack encoding")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_listpack_is_seven_bytes() {
        assert_eq!(Writer::new().finish(), [7, 0, 0, 0, 0, 0, 0xFF]);
    }

    #[test]
    fn every_encoding_round_trips() {
        let ints = [
            0,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            (1 << 23) - 1,
            -(1 << 23),
            1 << 23,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ];
        let strs: Vec<Vec<u8>> = [0usize, 1, 63, 64, 4095, 4096, 70000]
            .iter()
            .map(|&n| (0..n).map(|i| b'a' + (i % 26) as u8).collect())
            .collect();
        let mut w = Writer::new();
        for &v in &ints {
            w.push_int(v);
        }
        for s in &strs {
            w.push_str(s);
        }
        w.push(b"12");
        let lp = w.finish();
        let got = parse(&lp).unwrap();
        let mut want: Vec<LpEntry> = ints.iter().map(|&v| LpEntry::Int(v)).collect();
        want.extend(strs.iter().map(|s| LpEntry::Str(s)));
        want.push(LpEntry::Int(12));
        assert_eq!(got, want);
    }

    #[test]
    fn known_bytes() {
        // What Redis builds for RPUSH l a 1 (a 1-byte string, a 7-bit int).
        let mut w = Writer::new();
        w.push(b"a");
        w.push(b"1");
        assert_eq!(w.finish(), [12, 0, 0, 0, 2, 0, 0x81, b'a', 2, 1, 1, 0xFF]);
        // A 200-byte string entry is 202 bytes: a 2-byte backlen, 1*128 + 74.
        let mut w = Writer::new();
        w.push_str(&[b'x'; 200]);
        let lp = w.finish();
        assert_eq!(&lp[6..8], [0xE0, 200]);
        assert_eq!(&lp[lp.len() - 3..], [1, 74 | 128, 0xFF]);
    }

    #[test]
    fn corrupt_listpacks_are_errors() {
        let mut w = Writer::new();
        w.push(b"hello");
        w.push_int(1000);
        let lp = w.finish();
        for cut in 0..lp.len() {
            assert!(parse(&lp[..cut]).is_err());
        }
        for i in 0..lp.len() {
            for bit in 0..8 {
                let mut b = lp.clone();
                b[i] ^= 1 << bit;
                let _ = parse(&b);
            }
        }
    }
}
