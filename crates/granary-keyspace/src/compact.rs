//! Compact byte strings: short ones live inline in the 24 bytes a pointer
//! and length would take anyway, so a typical key or small value costs no
//! allocation of its own.

use bytes::Bytes;

const INLINE: usize = 22;

/// A key: inline up to 22 bytes, else one exact heap allocation.
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, data } => &data[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A string value, in Redis's three encodings: `int` (a canonical decimal
/// that fits i64), short inline bytes (`embstr`), or shared heap bytes
/// (`embstr` up to 44 bytes, else `raw`), which large GETs send without
/// copying. `Raw` is heap bytes that are `raw` whatever their length: what
/// APPEND and SETRANGE build (Redis modifies a private raw copy).
#[derive(Clone, PartialEq, Eq)]
pub enum StrValue {
    Int(i64),
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<Bytes>),
    Raw(Box<Bytes>),
}

/// Longest string Redis stores as `embstr`.
const EMBSTR_MAX: usize = 44;

impl StrValue {
    pub fn from_bytes(b: &[u8]) -> Self {
        if let Some(i) = canonical_i64(b) {
            return StrValue::Int(i);
        }
        if b.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..b.len()].copy_from_slice(b);
            StrValue::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            StrValue::Heap(Box::new(Bytes::copy_from_slice(b)))
        }
    }

    /// Takes ownership of an argument. A big one is kept as it arrived: it
    /// shares its allocation with the read buffer, which for bulks this
    /// large is sized to the bulk (the parser gives bulks of 32 KB and more
    /// their own buffer), so at most a read's worth of other bytes is kept
    /// alive with it. Smaller ones are copied so that a short value never
    /// pins a whole read buffer.
    pub fn from_arg(b: &Bytes) -> Self {
        if b.len() >= 32 * 1024 {
            StrValue::Heap(Box::new(b.clone()))
        } else {
            Self::from_bytes(b)
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.len() <= 20 || v.len() <= INLINE {
            Self::from_bytes(&v)
        } else {
            StrValue::Heap(Box::new(Bytes::from(v)))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(i) => itoa::Buffer::new().format(*i).len(),
            StrValue::Inline { len, .. } => *len as usize,
            StrValue::Heap(b) | StrValue::Raw(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, formatting an integer into `scratch` if needed.
    pub fn bytes<'a>(&'a self, scratch: &'a mut itoa::Buffer) -> &'a [u8] {
        match self {
            StrValue::Int(i) => scratch.format(*i).as_bytes(),
            StrValue::Inline { len, data } => &data[..*len as usize],
            StrValue::Heap(b) | StrValue::Raw(b) => b,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes(&mut itoa::Buffer::new()).to_vec()
    }

    /// As shared bytes (zero-copy for heap values).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            StrValue::Heap(b) | StrValue::Raw(b) => (**b).clone(),
            other => Bytes::copy_from_slice(other.bytes(&mut itoa::Buffer::new())),
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            StrValue::Int(i) => Some(*i),
            other => canonical_i64(other.bytes(&mut itoa::Buffer::new())),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Raw(_) => "raw",
            s if s.len() <= EMBSTR_MAX => "embstr",
            _ => "raw",
        }
    }
}

/// Parses an i64 only if `b` is exactly how i64 prints (no '+', no leading
/// zeros, no spaces), so storing it as an integer loses nothing.
pub fn canonical_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<StrValue>(), 24);
    }

    #[test]
    fn canonical_ints_only() {
        assert_eq!(canonical_i64(b"123"), Some(123));
        assert_eq!(canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_i64(b"9223372036854775808"), None);
        for bad in [&b"0123"[..], b"+1", b" 1", b"-0", b"", b"-", b"1a"] {
            assert_eq!(canonical_i64(bad), None, "{bad:?}");
        }
        assert_eq!(canonical_i64(b"0"), Some(0));
    }

    #[test]
    fn values_round_trip() {
        for v in [&b"hello"[..], b"12", b"012", &[b'x'; 100], &[0, 255, 10]] {
            let s = StrValue::from_bytes(v);
            assert_eq!(s.to_vec(), v);
            assert_eq!(s.len(), v.len());
        }
        assert_eq!(StrValue::from_bytes(b"12").encoding(), "int");
        assert_eq!(StrValue::from_bytes(b"abc").encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'x'; 45]).encoding(), "raw");
    }
}
