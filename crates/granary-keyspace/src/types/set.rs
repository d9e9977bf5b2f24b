//! SetValue: Redis's set with its three encodings (t_set.c).
//!
//! - `intset`: every member a canonical integer and at most
//!   set-max-intset-entries of them; a sorted array of the narrowest integer
//!   width that holds them all (2, 4 or 8 bytes), so SMEMBERS answers in
//!   ascending order exactly like Redis's intset.
//! - `listpack`: small sets of short strings, one packed byte buffer in
//!   insertion order (removals keep the order of the rest).
//! - `hashtable`: the keyspace's [`Dict`], with members stored inline up to
//!   22 bytes, so large sets cost one node per member and SSCAN keeps
//!   Redis's guarantee.
//!
//! Conversions follow Redis 7.4 exactly (setTypeAddAux, setTypeCreate,
//! setTypeMaybeConvert), because OBJECT ENCODING and the order of small
//! sets are observable; like Redis, a set never converts back on removal.

use crate::compact::{canonical_i64, Key};
use crate::dict::{Dict, DictItem};
use crate::hash::hash_bytes;
use rand::Rng;

/// The encoding thresholds, read from the config by the caller.
#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    pub intset_entries: usize,
    pub listpack_entries: usize,
    pub listpack_value: usize,
}

impl SetLimits {
    /// Redis caps intsets at 2^30 entries whatever the config says.
    fn intset_max(&self) -> usize {
        self.intset_entries.min(1 << 30)
    }
}

/// A member as the encodings hold it: intsets hold integers, the others bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// Runs `f` on the member's bytes (integers formatted as Redis prints them).
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Int(v) => f(itoa::Buffer::new().format(v).as_bytes()),
            Elem::Str(s) => f(s),
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }

    /// The member as an integer if it is a canonical one (string2ll).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Elem::Int(v) => Some(v),
            Elem::Str(s) => canonical_i64(s),
        }
    }
}

// ------------------------------------------------------------------ intset

/// Sorted integers in the narrowest width that holds them all (widening
/// only, as Redis's intset).
#[derive(Clone, Debug)]
enum IntSet {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
}

/// Applies the same expression to whichever width the intset has.
macro_rules! each_width {
    ($s:expr, $v:ident => $e:expr) => {
        match $s {
            IntSet::W16($v) => $e,
            IntSet::W32($v) => $e,
            IntSet::W64($v) => $e,
        }
    };
}

impl IntSet {
    fn len(&self) -> usize {
        each_width!(self, v => v.len())
    }

    fn get(&self, i: usize) -> i64 {
        match self {
            IntSet::W16(v) => i64::from(v[i]),
            IntSet::W32(v) => i64::from(v[i]),
            IntSet::W64(v) => v[i],
        }
    }

    fn find(&self, x: i64) -> Result<usize, usize> {
        match self {
            IntSet::W16(v) => match i16::try_from(x) {
                Ok(x) => v.binary_search(&x),
                Err(_) => Err(if x < 0 { 0 } else { v.len() }),
            },
            IntSet::W32(v) => match i32::try_from(x) {
                Ok(x) => v.binary_search(&x),
                Err(_) => Err(if x < 0 { 0 } else { v.len() }),
            },
            IntSet::W64(v) => v.binary_search(&x),
        }
    }

    fn contains(&self, x: i64) -> bool {
        self.find(x).is_ok()
    }

    /// Widens the array so that `x` fits.
    fn widen_for(&mut self, x: i64) {
        let need = if i16::try_from(x).is_ok() {
            2
        } else if i32::try_from(x).is_ok() {
            4
        } else {
            8
        };
        let have = match self {
            IntSet::W16(_) => 2,
            IntSet::W32(_) => 4,
            IntSet::W64(_) => 8,
        };
        if need <= have {
            return;
        }
        let all: Vec<i64> = (0..self.len()).map(|i| self.get(i)).collect();
        *self = if need == 4 {
            IntSet::W32(all.into_iter().map(|v| v as i32).collect())
        } else {
            IntSet::W64(all)
        };
    }

    fn insert(&mut self, x: i64) -> bool {
        let Err(pos) = self.find(x) else {
            return false;
        };
        self.widen_for(x);
        // The value fits the (possibly widened) width by construction.
        each_width!(self, v => v.insert(pos, x as _));
        true
    }

    fn remove(&mut self, x: i64) -> bool {
        match self.find(x) {
            Ok(pos) => {
                each_width!(self, v => { v.remove(pos); });
                true
            }
            Err(_) => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Characters of `v` in decimal, sign included (Redis's sdigits10).
fn digits10(v: i64) -> usize {
    let mut b = itoa::Buffer::new();
    b.format(v).len()
}

// ---------------------------------------------------------------- listpack

/// Members packed one after the other as (varint length, bytes), in
/// insertion order. Small sets only, so lookups are linear like Redis's.
#[derive(Clone, Debug, Default)]
struct Pack {
    buf: Vec<u8>,
    count: usize,
}

fn put_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads a varint at `pos`; returns (value, bytes used).
fn get_varint(buf: &[u8], pos: usize) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (n, i - pos);
        }
        shift += 7;
    }
}

impl Pack {
    fn with_capacity(bytes: usize) -> Self {
        Pack {
            buf: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// (offset of entry, member) pairs in order.
    fn entries(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= self.buf.len() {
                return None;
            }
            let (len, hdr) = get_varint(&self.buf, pos);
            let start = pos + hdr;
            let at = pos;
            pos = start + len;
            Some((at, &self.buf[start..start + len]))
        })
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries().map(|(_, m)| m)
    }

    fn find(&self, m: &[u8]) -> Option<usize> {
        self.entries().find(|(_, e)| *e == m).map(|(at, _)| at)
    }

    fn push(&mut self, m: &[u8]) {
        put_varint(&mut self.buf, m.len());
        self.buf.extend_from_slice(m);
        self.count += 1;
    }

    fn remove_at(&mut self, at: usize) {
        let (len, hdr) = get_varint(&self.buf, at);
        self.buf.drain(at..at + hdr + len);
        self.count -= 1;
    }

    fn nth(&self, i: usize) -> &[u8] {
        self.iter().nth(i).unwrap_or_default()
    }

    /// Removes the members at the given ascending positions and returns
    /// them in order; the others keep their order.
    fn take_positions(&mut self, positions: &[usize]) -> Vec<Vec<u8>> {
        let mut kept = Pack::with_capacity(self.buf.len());
        let mut taken = Vec::with_capacity(positions.len());
        let mut next = positions.iter().peekable();
        for (i, m) in self.iter().enumerate() {
            if next.peek() == Some(&&i) {
                next.next();
                taken.push(m.to_vec());
            } else {
                kept.push(m);
            }
        }
        kept.buf.shrink_to_fit();
        *self = kept;
        taken
    }
}

// --------------------------------------------------------------- hashtable

/// A hashtable member: inline up to 22 bytes.
#[derive(Clone, Debug)]
pub struct Member(Key);

impl DictItem for Member {
    #[inline]
    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn table_insert(d: &mut Dict<Member>, m: &[u8]) -> bool {
    let h = hash_bytes(m);
    if d.get(h, m).is_some() {
        return false;
    }
    d.insert_new(h, Member(Key::new(m)));
    true
}

/// Chain positions a fair pick draws from (chains are rarely longer).
const FAIR_SLOTS: usize = 8;

/// A uniformly random member of a non-empty table. `Dict::random` picks a
/// bucket and then a member of its chain, which favours members of short
/// chains (a member sharing its bucket is half as likely); SRANDMEMBER and
/// SPOP must not. Like Redis's dictGetFairRandomKey this corrects for it: a
/// random bucket (a random scan cursor) and a random position among
/// FAIR_SLOTS, drawn again when the position is past the chain's end, so
/// every member has the same chance.
fn fair_random<'a>(d: &'a Dict<Member>, rng: &mut impl Rng) -> Option<&'a Member> {
    // Bounded: a very sparse table falls back to the plain pick.
    for _ in 0..10_000 {
        let cursor: u64 = rng.gen();
        let mut n = 0;
        d.scan(cursor, |_| n += 1);
        if n == 0 {
            continue;
        }
        let pos = rng.gen_range(0..FAIR_SLOTS.max(n));
        if pos >= n {
            continue;
        }
        let (mut i, mut key) = (0, None);
        d.scan(cursor, |m| {
            if i == pos {
                key = Some(m.key().to_vec());
            }
            i += 1;
        });
        let key = key?;
        return d.get(hash_bytes(&key), &key);
    }
    d.random(rng)
}

// -------------------------------------------------------------------- set

enum Repr {
    Ints(IntSet),
    Pack(Pack),
    Table(Dict<Member>),
}

/// A set value; the encoding is private so conversions stay Redis's.
pub struct SetValue(Repr);

impl Default for SetValue {
    fn default() -> Self {
        SetValue(Repr::Ints(IntSet::W16(Vec::new())))
    }
}

impl Clone for SetValue {
    fn clone(&self) -> Self {
        SetValue(match &self.0 {
            Repr::Ints(i) => Repr::Ints(i.clone()),
            Repr::Pack(p) => Repr::Pack(p.clone()),
            Repr::Table(d) => {
                let mut t = Dict::new();
                for m in d.iter() {
                    t.insert_new(hash_bytes(m.key()), m.clone());
                }
                Repr::Table(t)
            }
        })
    }
}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetValue")
            .field("encoding", &self.encoding())
            .field("len", &self.len())
            .finish()
    }
}

impl SetValue {
    /// An empty intset (SUNION/SDIFF build their result from one, so the
    /// result's encoding follows the usual conversion rules).
    pub fn new_intset() -> Self {
        SetValue::default()
    }

    /// An empty listpack (SINTERSTORE's and SPOP's starting point).
    pub fn new_listpack() -> Self {
        SetValue(Repr::Pack(Pack::default()))
    }

    /// The set SADD or SMOVE creates for a new key (Redis's setTypeCreate):
    /// the encoding that can hold `first`, sized for `size_hint` members.
    pub fn create(first: &[u8], size_hint: usize, lim: &SetLimits) -> Self {
        if canonical_i64(first).is_some() && size_hint <= lim.intset_entries {
            SetValue::new_intset()
        } else if size_hint <= lim.listpack_entries {
            SetValue::new_listpack()
        } else {
            SetValue(Repr::Table(Dict::new()))
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Ints(i) => i.len(),
            Repr::Pack(p) => p.count,
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        match &self.0 {
            Repr::Ints(_) => "intset",
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self.0, Repr::Table(_))
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self.0, Repr::Pack(_))
    }

    /// Converts to a hashtable ahead of adding about `size_hint` members, if
    /// that many would not fit the compact encoding (setTypeMaybeConvert).
    pub fn maybe_convert(&mut self, size_hint: usize, lim: &SetLimits) {
        let too_big = match &self.0 {
            Repr::Pack(_) => size_hint > lim.listpack_entries,
            Repr::Ints(_) => size_hint > lim.intset_entries,
            Repr::Table(_) => false,
        };
        if too_big {
            self.convert_to_table();
        }
    }

    fn convert_to_table(&mut self) {
        let mut d = Dict::new();
        for e in self.iter() {
            e.with_bytes(|b| d.insert_new(hash_bytes(b), Member(Key::new(b))));
        }
        self.0 = Repr::Table(d);
    }

    /// Intset to listpack: the integers in ascending order come first.
    fn convert_ints_to_pack(&mut self) {
        let mut p = Pack::with_capacity(self.len() * 4 + 16);
        for e in self.iter() {
            e.with_bytes(|b| p.push(b));
        }
        self.0 = Repr::Pack(p);
    }

    /// Adds a member; true if it was not there (Redis's setTypeAddAux).
    pub fn add(&mut self, m: &[u8], lim: &SetLimits) -> bool {
        match &mut self.0 {
            Repr::Table(d) => table_insert(d, m),
            Repr::Pack(p) => {
                if p.find(m).is_some() {
                    return false;
                }
                if p.count < lim.listpack_entries && m.len() <= lim.listpack_value {
                    p.push(m);
                } else {
                    self.convert_to_table();
                    self.add(m, lim);
                }
                true
            }
            Repr::Ints(is) => {
                if let Some(v) = canonical_i64(m) {
                    if !is.insert(v) {
                        return false;
                    }
                    if is.len() > lim.intset_max() {
                        self.convert_to_table();
                    }
                    return true;
                }
                let n = is.len();
                let widest = if n == 0 {
                    0
                } else {
                    digits10(is.get(0)).max(digits10(is.get(n - 1)))
                };
                if n < lim.listpack_entries
                    && m.len() <= lim.listpack_value
                    && widest <= lim.listpack_value
                {
                    self.convert_ints_to_pack();
                } else {
                    self.convert_to_table();
                }
                self.add(m, lim)
            }
        }
    }

    /// Adds a member as an encoding handed it out.
    pub fn add_elem(&mut self, e: Elem, lim: &SetLimits) -> bool {
        e.with_bytes(|b| self.add(b, lim))
    }

    /// Removes a member; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Table(d) => d.remove(hash_bytes(m), m).is_some(),
            Repr::Pack(p) => match p.find(m) {
                Some(at) => {
                    p.remove_at(at);
                    true
                }
                None => false,
            },
            Repr::Ints(is) => canonical_i64(m).is_some_and(|v| is.remove(v)),
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.0 {
            Repr::Table(d) => d.get(hash_bytes(m), m).is_some(),
            Repr::Pack(p) => p.find(m).is_some(),
            Repr::Ints(is) => canonical_i64(m).is_some_and(|v| is.contains(v)),
        }
    }

    /// Membership of a member handed out by another set, without
    /// formatting integers when this set is an intset.
    pub fn contains_elem(&self, e: Elem) -> bool {
        match (&self.0, e) {
            (Repr::Ints(is), Elem::Int(v)) => is.contains(v),
            _ => e.with_bytes(|b| self.contains(b)),
        }
    }

    /// Every member, in the encoding's order (ascending for intsets,
    /// insertion order for listpacks, table order for hashtables).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Elem<'_>> + '_> {
        match &self.0 {
            Repr::Ints(is) => Box::new(is.iter().map(Elem::Int)),
            Repr::Pack(p) => Box::new(p.iter().map(Elem::Str)),
            Repr::Table(d) => Box::new(d.iter().map(|m| Elem::Str(m.key()))),
        }
    }

    /// One random member of a non-empty set.
    pub fn random(&self, rng: &mut impl Rng) -> Option<Elem<'_>> {
        if self.is_empty() {
            return None;
        }
        Some(match &self.0 {
            Repr::Ints(is) => Elem::Int(is.get(rng.gen_range(0..is.len()))),
            Repr::Pack(p) => Elem::Str(p.nth(rng.gen_range(0..p.count))),
            Repr::Table(d) => Elem::Str(fair_random(d, rng)?.key()),
        })
    }

    /// Removes and returns one random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Vec<u8>> {
        let m = self.random(rng)?.to_vec();
        self.remove(&m);
        Some(m)
    }

    /// Listpack only: removes the members at the given ascending positions
    /// and returns them in order (SPOP's single pass over a listpack).
    /// Other encodings return nothing.
    pub fn take_positions(&mut self, positions: &[usize]) -> Vec<Vec<u8>> {
        match &mut self.0 {
            Repr::Pack(p) => p.take_positions(positions),
            _ => Vec::new(),
        }
    }

    /// One SSCAN step: compact encodings return everything and cursor 0;
    /// hashtables follow the dict's reverse-binary cursor.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(Elem)) -> u64 {
        match &self.0 {
            Repr::Table(d) => d.scan(cursor, |m| f(Elem::Str(m.key()))),
            _ => {
                self.iter().for_each(f);
                0
            }
        }
    }

    /// Converts to an intset when every member is known to be an integer
    /// and they fit one (Redis's maybeConvertToIntset, used by SINTERSTORE).
    pub fn convert_to_intset_if_fits(&mut self, lim: &SetLimits) {
        if matches!(self.0, Repr::Ints(_)) || self.len() > lim.intset_max() {
            return;
        }
        let mut is = IntSet::W16(Vec::with_capacity(self.len()));
        for e in self.iter() {
            match e.as_int() {
                Some(v) => {
                    is.insert(v);
                }
                None => return,
            }
        }
        self.0 = Repr::Ints(is);
    }

    /// Releases spare capacity of the compact encodings.
    pub fn shrink_to_fit(&mut self) {
        match &mut self.0 {
            Repr::Ints(is) => each_width!(is, v => v.shrink_to_fit()),
            Repr::Pack(p) => p.buf.shrink_to_fit(),
            Repr::Table(_) => {}
        }
    }

    /// The byte width (2, 4 or 8) of an intset's integers, which only ever
    /// widens, as in Redis (RDB writes the intset at this width).
    pub fn intset_width(&self) -> Option<usize> {
        match &self.0 {
            Repr::Ints(IntSet::W16(_)) => Some(2),
            Repr::Ints(IntSet::W32(_)) => Some(4),
            Repr::Ints(IntSet::W64(_)) => Some(8),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: SetLimits = SetLimits {
        intset_entries: 512,
        listpack_entries: 128,
        listpack_value: 64,
    };

    fn members(s: &SetValue) -> Vec<Vec<u8>> {
        s.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn intset_sorted_and_widens() {
        let mut s = SetValue::create(b"5", 3, &LIM);
        for m in ["5", "-3", "70000", "5", "-9000000000"] {
            s.add(m.as_bytes(), &LIM);
        }
        assert_eq!(s.encoding(), "intset");
        assert_eq!(
            members(&s),
            vec![
                b"-9000000000".to_vec(),
                b"-3".to_vec(),
                b"5".to_vec(),
                b"70000".to_vec()
            ]
        );
        assert!(s.contains(b"70000") && !s.contains(b"070000"));
        assert!(s.remove(b"-3") && !s.remove(b"-3"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn intset_to_listpack_keeps_sorted_ints_first() {
        let mut s = SetValue::create(b"3", 1, &LIM);
        s.add(b"3", &LIM);
        s.add(b"1", &LIM);
        s.add(b"b", &LIM);
        s.add(b"a", &LIM);
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(
            members(&s),
            vec![b"1".to_vec(), b"3".to_vec(), b"b".to_vec(), b"a".to_vec()]
        );
        s.remove(b"3");
        assert_eq!(
            members(&s),
            vec![b"1".to_vec(), b"b".to_vec(), b"a".to_vec()]
        );
    }

    #[test]
    fn thresholds_convert_to_hashtable() {
        let mut s = SetValue::create(b"x", 1, &LIM);
        for i in 0..128 {
            s.add(format!("m{i}").as_bytes(), &LIM);
        }
        assert_eq!(s.encoding(), "listpack");
        s.add(b"one more", &LIM);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 129);
        let mut long = SetValue::create(b"x", 1, &LIM);
        long.add(&[b'a'; 65], &LIM);
        assert_eq!(long.encoding(), "hashtable");
        let mut ints = SetValue::create(b"1", 1, &LIM);
        for i in 0..513 {
            ints.add(i.to_string().as_bytes(), &LIM);
        }
        assert_eq!(ints.encoding(), "hashtable");
        let mut c = ints.clone();
        assert!(c.remove(b"77") && c.len() == 512 && ints.len() == 513);
    }

    /// Every member of a hashtable is drawn about equally often (the
    /// plain bucket-then-chain pick halves members that share a bucket).
    #[test]
    fn table_random_is_fair() {
        let mut s = SetValue::new_listpack();
        let n = 1000;
        for i in 0..n {
            s.add(format!("m{i}").as_bytes(), &LIM);
        }
        assert_eq!(s.encoding(), "hashtable");
        let mut rng = rand::thread_rng();
        let draws = 200 * n;
        let mut hits: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        for _ in 0..draws {
            *hits
                .entry(s.random(&mut rng).unwrap().to_vec())
                .or_default() += 1;
        }
        assert_eq!(hits.len(), n);
        // Chi-square with n-1 degrees of freedom: mean 999, sd ~45.
        let expected = (draws / n) as f64;
        let chi2: f64 = hits
            .values()
            .map(|&h| (h as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 1300.0, "chi-square {chi2}");
    }

    #[test]
    fn take_positions_keeps_order() {
        let mut s = SetValue::new_listpack();
        for m in ["a", "b", "c", "d"] {
            s.add(m.as_bytes(), &LIM);
        }
        let taken = s.take_positions(&[1, 3]);
        assert_eq!(taken, vec![b"b".to_vec(), b"d".to_vec()]);
        assert_eq!(members(&s), vec![b"a".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn convert_to_intset_if_fits() {
        let mut s = SetValue::new_listpack();
        for m in ["9", "-1", "4"] {
            s.add(m.as_bytes(), &LIM);
        }
        s.convert_to_intset_if_fits(&LIM);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(
            members(&s),
            vec![b"-1".to_vec(), b"4".to_vec(), b"9".to_vec()]
        );
    }
}
