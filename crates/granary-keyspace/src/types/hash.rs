//! HashValue: Redis's hash type (t_hash.c) in its two encodings.
//!
//! - `listpack`: every field and value packed into one exact-size byte
//!   buffer, `[varint len][field][varint len][value]` repeated, in insertion
//!   order. Lookups scan it, which is fast while it is small (Redis does the
//!   same up to `hash-max-listpack-entries`).
//! - `hashtable`: a [`Dict`] whose items are one allocation each holding
//!   `[varint field len][field][value]`, so a field/value pair costs one
//!   node plus one packed buffer.
//!
//! A hash converts to `hashtable` when it gets more entries than
//! `hash-max-listpack-entries` or a field or value longer than
//! `hash-max-listpack-value`, and never converts back (as Redis).

use crate::dict::{Dict, DictItem};
use crate::hash::hash_bytes;

/// The encoding thresholds, read from the config by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

pub enum HashValue {
    Listpack(Box<[u8]>),
    Table(Box<Dict<Pair>>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::Listpack(Box::default())
    }
}

impl Clone for HashValue {
    fn clone(&self) -> Self {
        match self {
            HashValue::Listpack(b) => HashValue::Listpack(b.clone()),
            HashValue::Table(d) => {
                let mut copy = Dict::new();
                for p in d.iter() {
                    copy.insert_new(hash_bytes(p.field()), p.clone());
                }
                HashValue::Table(Box::new(copy))
            }
        }
    }
}

impl std::fmt::Debug for HashValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashValue({}, {} fields)", self.encoding(), self.len())
    }
}

// ------------------------------------------------------------ varints

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint at `pos`; returns (value, position after it).
fn get_varint(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, pos);
        }
        shift += 7;
    }
}

/// Reads one length-prefixed string at `pos`: (start, end) of its bytes.
fn get_str(buf: &[u8], pos: usize) -> (usize, usize) {
    let (len, start) = get_varint(buf, pos);
    (start, start + len)
}

// ------------------------------------------------------------ hashtable item

/// One field/value pair of a hashtable-encoded hash.
#[derive(Clone)]
pub struct Pair(Box<[u8]>);

impl Pair {
    fn new(field: &[u8], value: &[u8]) -> Pair {
        let mut v = Vec::with_capacity(field.len() + value.len() + 3);
        put_varint(&mut v, field.len());
        v.extend_from_slice(field);
        v.extend_from_slice(value);
        Pair(v.into_boxed_slice())
    }

    fn split(&self) -> (usize, usize) {
        get_str(&self.0, 0)
    }

    pub fn field(&self) -> &[u8] {
        let (s, e) = self.split();
        &self.0[s..e]
    }

    pub fn value(&self) -> &[u8] {
        let (_, e) = self.split();
        &self.0[e..]
    }
}

impl DictItem for Pair {
    fn key(&self) -> &[u8] {
        self.field()
    }
}

// ------------------------------------------------------------ listpack walk

/// One entry found in a listpack buffer: byte ranges of the whole entry,
/// the field and the value.
struct Slot {
    start: usize,
    field: (usize, usize),
    value: (usize, usize),
}

impl Slot {
    fn end(&self) -> usize {
        self.value.1
    }
}

fn lp_slots(buf: &[u8]) -> impl Iterator<Item = Slot> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let field = get_str(buf, pos);
        let value = get_str(buf, field.1);
        let slot = Slot {
            start: pos,
            field,
            value,
        };
        pos = value.1;
        Some(slot)
    })
}

fn lp_find(buf: &[u8], field: &[u8]) -> Option<Slot> {
    lp_slots(buf).find(|s| &buf[s.field.0..s.field.1] == field)
}

fn lp_push(out: &mut Vec<u8>, field: &[u8], value: &[u8]) {
    put_varint(out, field.len());
    out.extend_from_slice(field);
    put_varint(out, value.len());
    out.extend_from_slice(value);
}

impl HashValue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match self {
            HashValue::Listpack(b) => lp_slots(b).count(),
            HashValue::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            HashValue::Listpack(b) => b.is_empty(),
            HashValue::Table(d) => d.is_empty(),
        }
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        match self {
            HashValue::Listpack(_) => "listpack",
            HashValue::Table(_) => "hashtable",
        }
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self, HashValue::Listpack(_))
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashValue::Listpack(b) => lp_find(b, field).map(|s| &b[s.value.0..s.value.1]),
            HashValue::Table(d) => d.get(hash_bytes(field), field).map(Pair::value),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to `hashtable` now (HSET with more pairs than the listpack
    /// limit does so up front, as Redis 7.4).
    pub fn to_hashtable(&mut self) {
        if let HashValue::Listpack(b) = self {
            let mut d = Dict::new();
            for s in lp_slots(b) {
                let field = &b[s.field.0..s.field.1];
                d.insert_new(
                    hash_bytes(field),
                    Pair::new(field, &b[s.value.0..s.value.1]),
                );
            }
            *self = HashValue::Table(Box::new(d));
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts to
    /// `hashtable` past the limits, like Redis's hashTypeSet.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: Limits) -> bool {
        if self.is_listpack() && (field.len() > lim.max_value || value.len() > lim.max_value) {
            self.to_hashtable();
        }
        let new = match self {
            HashValue::Listpack(b) => lp_set(b, field, value),
            HashValue::Table(d) => {
                let h = hash_bytes(field);
                let new = d.remove(h, field).is_none();
                d.insert_new(h, Pair::new(field, value));
                new
            }
        };
        // Checked on updates too, as Redis does (the limit may have been
        // lowered since the last insert).
        if self.is_listpack() && self.len() > lim.max_entries {
            self.to_hashtable();
        }
        new
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Listpack(b) => match lp_find(b, field) {
                Some(s) => {
                    let mut v = std::mem::take(b).into_vec();
                    v.drain(s.start..s.end());
                    *b = v.into_boxed_slice();
                    true
                }
                None => false,
            },
            HashValue::Table(d) => d.remove(hash_bytes(field), field).is_some(),
        }
    }

    /// Every (field, value): insertion order for a listpack.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            HashValue::Listpack(b) => {
                Box::new(lp_slots(b).map(|s| (&b[s.field.0..s.field.1], &b[s.value.0..s.value.1])))
            }
            HashValue::Table(d) => Box::new(d.iter().map(|p| (p.field(), p.value()))),
        }
    }

    /// A uniformly random (field, value), None when empty.
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<(&[u8], &[u8])> {
        match self {
            HashValue::Listpack(_) => {
                let n = self.len();
                if n == 0 {
                    return None;
                }
                self.iter().nth(rng.gen_range(0..n))
            }
            HashValue::Table(d) => d.random(rng).map(|p| (p.field(), p.value())),
        }
    }

    /// One HSCAN step over a hashtable (Redis's dictScan cursor); a
    /// listpack is returned whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            HashValue::Listpack(_) => {
                for (k, v) in self.iter() {
                    f(k, v);
                }
                0
            }
            HashValue::Table(d) => d.scan(cursor, |p| f(p.field(), p.value())),
        }
    }
}

/// Sets a field in a listpack buffer, rebuilding it at its exact size;
/// true if the field is new (appended at the end).
fn lp_set(b: &mut Box<[u8]>, field: &[u8], value: &[u8]) -> bool {
    let found = lp_find(b, field);
    let mut v = std::mem::take(b).into_vec();
    let new = match found {
        Some(s) => {
            let mut entry = Vec::with_capacity(value.len() + 5);
            put_varint(&mut entry, value.len());
            entry.extend_from_slice(value);
            // Replace the value (with its length prefix) in place.
            let vstart = s.value.0 - varint_len(s.value.1 - s.value.0);
            v.splice(vstart..s.value.1, entry);
            false
        }
        None => {
            lp_push(&mut v, field, value);
            true
        }
    };
    *b = v.into_boxed_slice();
    new
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_entries: 4,
        max_value: 8,
    };

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let mut h = HashValue::new();
        assert!(h.set(b"a", b"1", LIM));
        assert!(h.set(b"b", b"2", LIM));
        assert!(!h.set(b"a", &[b'x'; 200][..8], LIM));
        assert_eq!(h.get(b"a"), Some(&b"xxxxxxxx"[..]));
        let fields: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec![&b"a"[..], b"b"]);
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn converts_past_entries_or_value_length() {
        let mut h = HashValue::new();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", LIM);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f4", b"v", LIM);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"f2"), Some(&b"v"[..]));

        let mut h = HashValue::new();
        h.set(b"f", b"123456789", LIM);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.clone().get(b"f"), Some(&b"123456789"[..]));
    }

    #[test]
    fn long_lengths_round_trip() {
        let big = vec![7u8; 300];
        let mut h = HashValue::new();
        let lim = Limits {
            max_entries: 10,
            max_value: 1000,
        };
        h.set(&big, &big, lim);
        h.set(b"x", &big[..200], lim);
        h.set(&big, b"short", lim);
        assert_eq!(h.get(&big), Some(&b"short"[..]));
        assert_eq!(h.get(b"x").map(<[u8]>::len), Some(200));
        assert_eq!(h.len(), 2);
    }
}
