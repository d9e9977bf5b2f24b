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
//!
//! Field TTLs (HEXPIRE & co., Redis 7.4) live in [`FieldTtls`], a side
//! structure that only hashes with volatile fields carry, so plain hashes
//! stay as small as before. A listpack that gets a TTL becomes a table
//! with TTLs, reported as `listpackex` while it is within the listpack
//! limits, as Redis's encoding of the same name.

use crate::dict::{Dict, DictItem};
use crate::hash::hash_bytes;
use std::collections::{BTreeSet, HashMap};

/// The encoding thresholds, read from the config by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

pub enum HashValue {
    Listpack(Box<[u8]>),
    Table(Box<Table>),
}

/// A `hashtable` hash (or a `listpackex` one, see [`FieldTtls::small`]).
#[derive(Default)]
pub struct Table {
    dict: Dict<Pair>,
    ttl: Option<Box<FieldTtls>>,
}

/// Deadlines (unix ms) of a hash's volatile fields, with a time-ordered
/// index so the due ones are found in O(k log n).
#[derive(Clone, Default)]
pub struct FieldTtls {
    by_field: HashMap<Box<[u8]>, u64>,
    order: BTreeSet<(u64, Box<[u8]>)>,
    /// Converted from a listpack only to hold TTLs and still within the
    /// listpack limits: OBJECT ENCODING says `listpackex`.
    small: bool,
    /// The deadline under which the database's index of hashes with field
    /// TTLs knows this hash (0: not indexed). See `Db::index_hash_ttls`.
    indexed: u64,
}

impl FieldTtls {
    fn get(&self, field: &[u8]) -> Option<u64> {
        self.by_field.get(field).copied()
    }

    fn set(&mut self, field: &[u8], when: u64) {
        if let Some(old) = self.by_field.insert(field.into(), when) {
            self.order.remove(&(old, Box::from(field)));
        }
        self.order.insert((when, field.into()));
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.by_field.remove(field) {
            Some(old) => {
                self.order.remove(&(old, Box::from(field)));
                true
            }
            None => false,
        }
    }

    fn next(&self) -> Option<u64> {
        self.order.first().map(|(t, _)| *t)
    }

    fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }
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
            HashValue::Table(t) => {
                let mut copy = Dict::new();
                for p in t.dict.iter() {
                    copy.insert_new(hash_bytes(p.field()), p.clone());
                }
                // The copy is a new key: not in any database's index yet.
                let ttl = t.ttl.clone().map(|mut x| {
                    x.indexed = 0;
                    x
                });
                HashValue::Table(Box::new(Table { dict: copy, ttl }))
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
            HashValue::Table(t) => t.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            HashValue::Listpack(b) => b.is_empty(),
            HashValue::Table(t) => t.dict.is_empty(),
        }
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        match self {
            HashValue::Listpack(_) => "listpack",
            HashValue::Table(t) if t.ttl.as_ref().is_some_and(|x| x.small) => "listpackex",
            HashValue::Table(_) => "hashtable",
        }
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self, HashValue::Listpack(_))
    }

    /// A listpack or a `listpackex`: small enough that HSCAN returns it
    /// whole, as Redis does for both.
    pub fn is_compact(&self) -> bool {
        self.is_listpack() || self.encoding() == "listpackex"
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashValue::Listpack(b) => lp_find(b, field).map(|s| &b[s.value.0..s.value.1]),
            HashValue::Table(t) => t.dict.get(hash_bytes(field), field).map(Pair::value),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to `hashtable` now (HSET with more pairs than the listpack
    /// limit does so up front, as Redis 7.4).
    pub fn to_hashtable(&mut self) {
        match self {
            HashValue::Listpack(b) => {
                let mut d = Dict::new();
                for s in lp_slots(b) {
                    let field = &b[s.field.0..s.field.1];
                    d.insert_new(
                        hash_bytes(field),
                        Pair::new(field, &b[s.value.0..s.value.1]),
                    );
                }
                *self = HashValue::Table(Box::new(Table { dict: d, ttl: None }));
            }
            HashValue::Table(t) => {
                if let Some(x) = &mut t.ttl {
                    x.small = false;
                }
            }
        }
    }

    /// Sets `field` to `value`, dropping any TTL it had (HSET); true if the
    /// field is new. Converts to `hashtable` past the limits, like Redis's
    /// hashTypeSet.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: Limits) -> bool {
        self.set_value(field, value, lim, false)
    }

    /// Like `set`, keeping the field's TTL (HINCRBY, HINCRBYFLOAT).
    pub fn set_keep_ttl(&mut self, field: &[u8], value: &[u8], lim: Limits) -> bool {
        self.set_value(field, value, lim, true)
    }

    fn set_value(&mut self, field: &[u8], value: &[u8], lim: Limits, keep_ttl: bool) -> bool {
        let too_long = field.len() > lim.max_value || value.len() > lim.max_value;
        if self.is_compact() && too_long {
            self.to_hashtable();
        }
        let new = match self {
            HashValue::Listpack(b) => lp_set(b, field, value),
            HashValue::Table(t) => {
                let h = hash_bytes(field);
                let new = t.dict.remove(h, field).is_none();
                t.dict.insert_new(h, Pair::new(field, value));
                if !keep_ttl {
                    t.drop_ttl(field);
                }
                new
            }
        };
        // Checked on updates too, as Redis does (the limit may have been
        // lowered since the last insert).
        if self.is_compact() && self.len() > lim.max_entries {
            self.to_hashtable();
        }
        new
    }

    /// Removes `field` (and its TTL); true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Listpack(b) => match lp_find(b, field) {
                Some(s) => {
                    // A new exact-size buffer (see lp_set).
                    let mut v = Vec::with_capacity(b.len() - (s.end() - s.start));
                    v.extend_from_slice(&b[..s.start]);
                    v.extend_from_slice(&b[s.end()..]);
                    *b = v.into_boxed_slice();
                    true
                }
                None => false,
            },
            HashValue::Table(t) => {
                let found = t.dict.remove(hash_bytes(field), field).is_some();
                if found {
                    t.drop_ttl(field);
                }
                found
            }
        }
    }

    /// Every (field, value): insertion order for a listpack.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            HashValue::Listpack(b) => {
                Box::new(lp_slots(b).map(|s| (&b[s.field.0..s.field.1], &b[s.value.0..s.value.1])))
            }
            HashValue::Table(t) => Box::new(t.dict.iter().map(|p| (p.field(), p.value()))),
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
            HashValue::Table(t) => t.dict.random(rng).map(|p| (p.field(), p.value())),
        }
    }

    /// One HSCAN step over a hashtable (Redis's dictScan cursor); a
    /// listpack (or listpackex) is returned whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            HashValue::Table(t) if !self.is_compact() => {
                t.dict.scan(cursor, |p| f(p.field(), p.value()))
            }
            _ => {
                for (k, v) in self.iter() {
                    f(k, v);
                }
                0
            }
        }
    }

    // ------------------------------------------------------------ field TTLs

    fn ttls(&self) -> Option<&FieldTtls> {
        match self {
            HashValue::Table(t) => t.ttl.as_deref(),
            HashValue::Listpack(_) => None,
        }
    }

    /// The deadline (unix ms) of `field`, if it has a TTL.
    pub fn field_ttl(&self, field: &[u8]) -> Option<u64> {
        self.ttls()?.get(field)
    }

    /// Gives the existing `field` a deadline. A listpack becomes a
    /// `listpackex` to hold it, a hashtable gets its side structure.
    pub fn set_field_ttl(&mut self, field: &[u8], when: u64) {
        if self.is_listpack() {
            self.to_hashtable();
            if let HashValue::Table(t) = self {
                t.ttl = Some(Box::new(FieldTtls {
                    small: true,
                    ..FieldTtls::default()
                }));
            }
        }
        if let HashValue::Table(t) = self {
            t.ttl.get_or_insert_with(Box::default).set(field, when);
        }
    }

    /// Drops `field`'s TTL; true if it had one.
    pub fn persist_field(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Table(t) => t.drop_ttl(field),
            HashValue::Listpack(_) => false,
        }
    }

    /// Every (field, deadline) of the volatile fields, earliest first (the
    /// order of a Redis 7.4 `listpackex`).
    pub fn field_ttls(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.ttls()
            .into_iter()
            .flat_map(|x| x.order.iter().map(|(t, f)| (&f[..], *t)))
    }

    /// Number of fields with a TTL.
    pub fn volatile_fields(&self) -> usize {
        self.ttls().map_or(0, |x| x.by_field.len())
    }

    /// The earliest field deadline.
    pub fn next_field_expiry(&self) -> Option<u64> {
        self.ttls()?.next()
    }

    /// Whether some field's deadline is at or before `now`.
    #[inline]
    pub fn fields_due(&self, now: u64) -> bool {
        self.next_field_expiry().is_some_and(|t| t <= now)
    }

    /// Fields not yet due at `now`.
    pub fn live_len(&self, now: u64) -> usize {
        let due = self
            .ttls()
            .map_or(0, |x| x.order.range(..(now + 1, Box::default())).count());
        self.len() - due
    }

    /// Deletes up to `max` fields whose deadline is at or before `now`;
    /// returns how many.
    pub fn expire_fields(&mut self, now: u64, max: usize) -> usize {
        let HashValue::Table(t) = self else { return 0 };
        let mut n = 0;
        while n < max {
            let Some(x) = t.ttl.as_deref_mut() else { break };
            let Some((when, _)) = x.order.first() else {
                break;
            };
            if *when > now {
                break;
            }
            let Some((_, field)) = x.order.pop_first() else {
                break;
            };
            x.by_field.remove(&field);
            t.dict.remove(hash_bytes(&field), &field);
            n += 1;
        }
        t.shrink_ttls();
        n
    }

    /// The deadline to (re-)register in the database's index, if it is
    /// earlier than the one registered (or none is).
    pub fn take_index_update(&mut self) -> Option<u64> {
        let HashValue::Table(t) = self else {
            return None;
        };
        let x = t.ttl.as_deref_mut()?;
        let next = x.next()?;
        if x.indexed != 0 && x.indexed <= next {
            return None;
        }
        x.indexed = next;
        Some(next)
    }

    /// Forgets the registration (the value moved to another key or the
    /// index entry was consumed), then registers anew.
    pub fn reindex(&mut self) -> Option<u64> {
        if let HashValue::Table(t) = self {
            if let Some(x) = t.ttl.as_deref_mut() {
                x.indexed = 0;
            }
        }
        self.take_index_update()
    }

    /// The deadline this hash is registered under (0: none).
    pub fn indexed_at(&self) -> u64 {
        self.ttls().map_or(0, |x| x.indexed)
    }
}

impl Table {
    /// Drops `field`'s TTL; true if it had one.
    fn drop_ttl(&mut self, field: &[u8]) -> bool {
        let dropped = self.ttl.as_deref_mut().is_some_and(|x| x.remove(field));
        if dropped {
            self.shrink_ttls();
        }
        dropped
    }

    /// A hashtable with no volatile field left frees its side structure;
    /// a listpackex keeps it, as Redis keeps the encoding.
    fn shrink_ttls(&mut self) {
        if self.ttl.as_ref().is_some_and(|x| x.is_empty() && !x.small) {
            self.ttl = None;
        }
    }
}

/// Sets a field in a listpack buffer, rebuilding it at its exact size;
/// true if the field is new (appended at the end).
///
/// The new buffer is allocated at exactly its final size: a `Vec` grown by
/// pushing and then shrunk would keep its doubled block (the allocator
/// shrinks in place), which for small hashes cost a third more memory.
fn lp_set(b: &mut Box<[u8]>, field: &[u8], value: &[u8]) -> bool {
    let entry_len =
        |f: &[u8], v: &[u8]| varint_len(f.len()) + f.len() + varint_len(v.len()) + v.len();
    match lp_find(b, field) {
        Some(s) => {
            // Replace the value (with its length prefix).
            let vstart = s.value.0 - varint_len(s.value.1 - s.value.0);
            let mut v = Vec::with_capacity(
                b.len() - (s.value.1 - vstart) + varint_len(value.len()) + value.len(),
            );
            v.extend_from_slice(&b[..vstart]);
            put_varint(&mut v, value.len());
            v.extend_from_slice(value);
            v.extend_from_slice(&b[s.value.1..]);
            *b = v.into_boxed_slice();
            false
        }
        None => {
            let mut v = Vec::with_capacity(b.len() + entry_len(field, value));
            v.extend_from_slice(b);
            lp_push(&mut v, field, value);
            *b = v.into_boxed_slice();
            true
        }
    }
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
    fn field_ttls_live_beside_the_fields() {
        let mut h = HashValue::new();
        h.set(b"a", b"1", LIM);
        h.set(b"b", b"2", LIM);
        h.set_field_ttl(b"a", 500);
        assert_eq!(h.encoding(), "listpackex");
        assert_eq!(h.field_ttl(b"a"), Some(500));
        assert_eq!(h.next_field_expiry(), Some(500));
        // HINCRBY keeps a TTL, HSET drops it, HDEL takes it with the field.
        h.set_keep_ttl(b"a", b"2", LIM);
        assert_eq!(h.field_ttl(b"a"), Some(500));
        h.set(b"a", b"3", LIM);
        assert_eq!(h.field_ttl(b"a"), None);
        h.set_field_ttl(b"b", 300);
        h.set_field_ttl(b"a", 200);
        assert_eq!(h.clone().field_ttl(b"b"), Some(300));
        assert_eq!(h.live_len(250), 1);
        assert_eq!(h.expire_fields(250, 10), 1);
        assert_eq!((h.len(), h.get(b"a")), (1, None));
        assert!(h.persist_field(b"b"));
        assert!(!h.persist_field(b"b"));
        assert_eq!(h.next_field_expiry(), None);
        // Still listpackex, as Redis keeps the encoding, until it grows.
        assert_eq!(h.encoding(), "listpackex");
        for i in 0..5 {
            h.set(format!("x{i}").as_bytes(), b"v", LIM);
        }
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn plain_hashes_stay_small() {
        // Field TTLs live behind the table's box: a plain hash pays nothing.
        assert_eq!(std::mem::size_of::<HashValue>(), 16);
    }

    #[test]
    fn index_registration_only_moves_earlier() {
        let mut h = HashValue::new();
        h.set(b"a", b"1", LIM);
        h.set(b"b", b"1", LIM);
        h.set_field_ttl(b"a", 500);
        assert_eq!(h.take_index_update(), Some(500));
        h.set_field_ttl(b"b", 700);
        assert_eq!(h.take_index_update(), None);
        h.set_field_ttl(b"b", 100);
        assert_eq!(h.take_index_update(), Some(100));
        assert_eq!(h.indexed_at(), 100);
        assert_eq!(h.clone().indexed_at(), 0, "a copy is a new key");
        assert_eq!(h.reindex(), Some(100));
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
