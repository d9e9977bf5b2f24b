//! The RDB primitives: length encoding, strings with their integer and LZF
//! special encodings, and binary doubles.
//!
//! Reading never trusts a length: every read checks it against the bytes
//! left, so a corrupt payload gives an [`Error`], never a panic or a huge
//! allocation.

use std::fmt;

/// A payload that is not valid RDB (RESTORE's "Bad data format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub &'static str);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad RDB data: {}", self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
const LEN_ENCVAL: u8 = 3;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Redis compresses strings longer than this (when rdbcompression is on).
const LZF_MIN_LEN: usize = 20;
/// LZF turns one 3-byte back-reference into at most 264 bytes, so a claimed
/// uncompressed length beyond this ratio is corrupt; checking it first caps
/// the allocation a corrupt payload can cause.
const LZF_MAX_RATIO: usize = 90;

// ---------------------------------------------------------------- writing

/// Appends `n` in RDB length encoding (rdbSaveLen).
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push((LEN_14BIT << 6) | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The special encoding of an integer, if it fits 32 bits (rdbEncodeInteger).
fn int_encoding(v: i64, out: &mut Vec<u8>) -> bool {
    let enc = |t: u8| 0xC0 | t;
    if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[enc(ENC_INT8), v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(enc(ENC_INT16));
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(enc(ENC_INT32));
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends an integer-valued string (rdbSaveLongLongAsStringObject): the
/// integer encoding when it fits 32 bits, else its decimal digits.
pub fn put_int_string(out: &mut Vec<u8>, v: i64) {
    if !int_encoding(v, out) {
        let mut buf = itoa::Buffer::new();
        let s = buf.format(v).as_bytes();
        put_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

/// Appends a string as Redis's rdbSaveRawString does: short canonical
/// integers get the integer encoding, strings over 20 bytes are LZF
/// compressed when that saves at least 4 bytes, the rest is stored raw.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_string_with(true, out, s)
}

/// [`put_string`], compressing only if `lzf` (Redis's rdbcompression).
pub fn put_string_with(lzf: bool, out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(v) = granary_keyspace::canonical_i64(s) {
            if int_encoding(v, out) {
                return;
            }
        }
    }
    if lzf && s.len() > LZF_MIN_LEN && put_lzf(out, s) {
        return;
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The LZF encoding (rdbSaveLzfStringObject): kept only if the compressed
/// form is at most `len - 4` bytes, Redis's output buffer size.
fn put_lzf(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let Ok(c) = lzf::compress(s) else {
        return false;
    };
    if c.is_empty() || c.len() > s.len() - 4 {
        return false;
    }
    out.push(0xC0 | ENC_LZF);
    put_len(out, c.len() as u64);
    put_len(out, s.len() as u64);
    out.extend_from_slice(&c);
    true
}

/// Appends a double as 8 little-endian bytes (rdbSaveBinaryDoubleValue).
pub fn put_double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

// ---------------------------------------------------------------- reading

/// A length as read: either a plain length or a special string encoding.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// Where an [`Input`] reads from: a byte string, or a stream (an RDB file)
/// read record by record so that a file is never held in memory whole.
enum Source<'a> {
    Slice(&'a [u8]),
    Stream(&'a mut dyn std::io::Read),
}

/// A cursor over RDB bytes that knows how many are left, so no length read
/// from the data can make it allocate more than the data could hold.
pub struct Input<'a> {
    src: Source<'a>,
    remaining: u64,
}

impl<'a> Input<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Input {
            remaining: buf.len() as u64,
            src: Source::Slice(buf),
        }
    }

    /// Reads from a stream holding at most `remaining` more bytes.
    pub fn stream(r: &'a mut dyn std::io::Read, remaining: u64) -> Self {
        Input {
            src: Source::Stream(r),
            remaining,
        }
    }

    /// Bytes not read yet (an upper bound for a stream).
    pub fn remaining(&self) -> usize {
        usize::try_from(self.remaining).unwrap_or(usize::MAX)
    }

    pub fn remaining_u64(&self) -> u64 {
        self.remaining
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = buf.len();
        if n as u64 > self.remaining {
            return Err(Error("unexpected end of data"));
        }
        match &mut self.src {
            Source::Slice(s) => {
                buf.copy_from_slice(&s[..n]);
                *s = &s[n..];
            }
            Source::Stream(r) => r
                .read_exact(buf)
                .map_err(|_| Error("unexpected end of data"))?,
        }
        self.remaining -= n as u64;
        Ok(())
    }

    pub fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        if n as u64 > self.remaining {
            return Err(Error("unexpected end of data"));
        }
        let mut v = vec![0; n];
        self.fill(&mut v)?;
        Ok(v)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        self.fill(&mut a)?;
        Ok(a)
    }

    fn raw_len(&mut self) -> Result<Len> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            LEN_6BIT => Len::Plain(u64::from(b & 0x3F)),
            LEN_14BIT => Len::Plain((u64::from(b & 0x3F) << 8) | u64::from(self.u8()?)),
            LEN_ENCVAL => Len::Encoded(b & 0x3F),
            _ => match b {
                LEN_32BIT => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                LEN_64BIT => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(Error("unknown length encoding")),
            },
        })
    }

    /// A plain length (rdbLoadLen); a special encoding here is an error.
    pub fn length(&mut self) -> Result<u64> {
        match self.raw_len()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(Error("unexpected string encoding")),
        }
    }

    /// A length that counts items each taking at least `min_bytes` bytes:
    /// refused if the rest of the input cannot hold that many, which also
    /// bounds what a caller preallocates.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.length()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes.max(1)) <= self.remaining() => Ok(n),
            _ => Err(Error("length larger than the data")),
        }
    }

    /// A string in any of its encodings (rdbGenericLoadStringObject).
    pub fn string(&mut self) -> Result<Vec<u8>> {
        match self.raw_len()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| Error("string too long"))?;
                self.take(n)
            }
            Len::Encoded(ENC_INT8) => Ok(int_bytes(i64::from(self.u8()? as i8))),
            Len::Encoded(ENC_INT16) => Ok(int_bytes(i64::from(i16::from_le_bytes(self.array()?)))),
            Len::Encoded(ENC_INT32) => Ok(int_bytes(i64::from(i32::from_le_bytes(self.array()?)))),
            Len::Encoded(ENC_LZF) => self.lzf(),
            Len::Encoded(_) => Err(Error("unknown string encoding")),
        }
    }

    fn lzf(&mut self) -> Result<Vec<u8>> {
        let clen = self.length()?;
        let len = self.length()?;
        let (Ok(clen), Ok(len)) = (usize::try_from(clen), usize::try_from(len)) else {
            return Err(Error("LZF length too large"));
        };
        let data = self.take(clen)?;
        if len == 0 || len > clen.saturating_mul(LZF_MAX_RATIO) {
            return Err(Error("bad LZF length"));
        }
        match lzf::decompress(&data, len) {
            Ok(v) if v.len() == len => Ok(v),
            _ => Err(Error("invalid LZF data")),
        }
    }

    /// A binary double (rdbLoadBinaryDoubleValue).
    pub fn double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A double in the old text form of RDB_TYPE_ZSET (rdbLoadDoubleValue):
    /// a length byte, with 253..=255 meaning NaN, +inf and -inf.
    pub fn text_double(&mut self) -> Result<f64> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(usize::from(n))?;
                std::str::from_utf8(&s)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(Error("bad double"))
            }
        }
    }
}

fn int_bytes(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_len(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        put_len(&mut v, n);
        v
    }

    #[test]
    fn lengths_round_trip_in_the_smallest_form() {
        for (n, size) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 5),
            (u64::from(u32::MAX), 5),
            (1 << 32, 9),
            (u64::MAX, 9),
        ] {
            let b = enc_len(n);
            assert_eq!(b.len(), size, "{n}");
            assert_eq!(Input::new(&b).length().unwrap(), n);
        }
        assert_eq!(enc_len(300), [0x41, 0x2C]);
        assert_eq!(enc_len(70000), [0x80, 0, 1, 0x11, 0x70]);
    }

    fn enc_str(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_string(&mut v, s);
        v
    }

    #[test]
    fn strings_use_integer_and_lzf_encodings() {
        assert_eq!(enc_str(b"12"), [0xC0, 12]);
        assert_eq!(enc_str(b"-300"), [0xC1, 0xD4, 0xFE]);
        assert_eq!(enc_str(b"70000"), [0xC2, 0x70, 0x11, 1, 0]);
        assert_eq!(enc_str(b"012"), [3, b'0', b'1', b'2']);
        assert_eq!(enc_str(b"4294967296"), b"\x0a4294967296");
        assert_eq!(enc_str(b""), [0]);
        let long = vec![b'a'; 200];
        let b = enc_str(&long);
        assert_eq!(b[0], 0xC3);
        assert!(b.len() < 20);
        for s in [
            &b"12"[..],
            b"-300",
            b"70000",
            b"",
            b"012",
            &long,
            b"hello world",
        ] {
            assert_eq!(Input::new(&enc_str(s)).string().unwrap(), s);
        }
    }

    #[test]
    fn corrupt_strings_are_errors() {
        // Claims 2^40 bytes: refused before any allocation.
        let mut b = Vec::new();
        put_len(&mut b, 1 << 40);
        assert!(Input::new(&b).string().is_err());
        // LZF claiming a huge uncompressed size.
        let b = [0xC3, 2, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0];
        assert!(Input::new(&b).string().is_err());
        assert!(Input::new(&[0xC4]).string().is_err());
        assert!(Input::new(&[0xC1, 1]).string().is_err());
    }
}
