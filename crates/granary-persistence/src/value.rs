//! One value in RDB form: its type byte and body (rdbSaveObjectType,
//! rdbSaveObject, rdbLoadObject).
//!
//! Writing uses what Redis 7.0 (RDB 10) writes, so any Redis from 7.0 on
//! loads it: strings as strings, lists as quicklist 2 (listpack nodes),
//! intsets as intsets, other sets as plain sets, small hashes and sorted
//! sets as listpacks, big ones as plain hashes and ZSET_2. Reading accepts
//! those plus the older plain list and text-score zset, and Redis 7.2's
//! listpack set; the result takes Granary's encodings at the configured
//! thresholds, as Redis converts on load. Streams are in [`crate::stream`].

use crate::codec::{put_double, put_int_string, put_len, put_string_with, Error, Input, Result};
use crate::listpack::{self, LpEntry};
use crate::{intset, types, ziplist};
use granary_keyspace::types::{hash, set, zset, HashValue, ListValue, SetValue, ZSetValue};
use granary_keyspace::{StrValue, Value};

/// The configuration that shapes encodings (the caller reads it from the
/// config): the encoding thresholds in force, and rdbcompression.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hash: hash::Limits,
    pub set: set::SetLimits,
    pub zset: zset::Limits,
    /// list-max-listpack-size.
    pub list_fill: i64,
    /// rdbcompression: LZF-compress strings over 20 bytes when writing.
    pub compress: bool,
}

impl Default for Limits {
    /// Redis's default thresholds, rdbcompression on.
    fn default() -> Self {
        Limits {
            hash: hash::Limits {
                max_entries: 128,
                max_value: 64,
            },
            set: set::SetLimits {
                intset_entries: 512,
                listpack_entries: 128,
                listpack_value: 64,
            },
            zset: zset::Limits {
                entries: 128,
                value: 64,
            },
            list_fill: -2,
            compress: true,
        }
    }
}

/// Quicklist node containers (quicklist.h).
const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;
/// Elements this big get a plain node of their own (quicklist's
/// packed_threshold default).
const PLAIN_THRESHOLD: usize = 1 << 30;
/// Node size limits for list-max-listpack-size -1..-5, and the size cap of
/// count-limited nodes (quicklist.c).
const NODE_SIZES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
const SIZE_SAFETY_LIMIT: usize = 8192;
/// What quicklist assumes one insert adds to a node besides the data.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;

// ---------------------------------------------------------------- writing

/// Appends `v`'s type byte and body.
pub fn write(out: &mut Vec<u8>, v: &Value, lim: &Limits) {
    let lz = lim.compress;
    match v {
        Value::Str(s) => {
            out.push(types::STRING);
            put_str_value(lz, out, s);
        }
        Value::List(l) => write_list(lz, out, l, lim.list_fill),
        Value::Set(s) => write_set(lz, out, s),
        Value::Hash(h) => write_hash(lz, out, h),
        Value::ZSet(z) => write_zset(lz, out, z),
        Value::Stream(s) => crate::stream::write(lz, out, s),
    }
}

fn put_str_value(lz: bool, out: &mut Vec<u8>, s: &StrValue) {
    match s {
        StrValue::Int(v) => put_int_string(out, *v),
        other => put_string_with(lz, out, other.bytes(&mut itoa::Buffer::new())),
    }
}

fn push_lp(w: &mut listpack::Writer, s: &StrValue) {
    match s {
        StrValue::Int(v) => w.push_int(*v),
        other => w.push(other.bytes(&mut itoa::Buffer::new())),
    }
}

/// Whether a node of `bytes` listpack bytes and `count` elements is past
/// the fill limit (quicklistNodeExceedsLimit).
fn node_exceeds(fill: i64, bytes: usize, count: usize) -> bool {
    if fill < 0 {
        let i = (-fill - 1).min(4) as usize;
        bytes > NODE_SIZES[i]
    } else {
        bytes > SIZE_SAFETY_LIMIT || count > fill as usize
    }
}

/// RDB_TYPE_LIST_QUICKLIST_2: the node count, then per node its container
/// and its listpack (or, for a huge element, the element itself). Nodes are
/// filled as RPUSH fills them, so a list Redis built by RPUSH is cut the
/// same way.
fn write_list(lz: bool, out: &mut Vec<u8>, l: &ListValue, fill: i64) {
    enum Node {
        Packed(Vec<u8>),
        Plain(Vec<u8>),
    }
    let mut nodes = Vec::new();
    let mut cur = listpack::Writer::new();
    let compact = l.encoding() == "listpack";
    for e in l.iter() {
        let len = e.len();
        if len >= PLAIN_THRESHOLD {
            if cur.count() > 0 {
                nodes.push(Node::Packed(std::mem::take(&mut cur).finish()));
            }
            nodes.push(Node::Plain(e.to_vec()));
            continue;
        }
        let new_size = cur.size() + len + SIZE_ESTIMATE_OVERHEAD;
        if !compact && cur.count() > 0 && node_exceeds(fill, new_size, cur.count() + 1) {
            nodes.push(Node::Packed(std::mem::take(&mut cur).finish()));
        }
        push_lp(&mut cur, &e.to_str_value());
    }
    if cur.count() > 0 {
        nodes.push(Node::Packed(cur.finish()));
    }
    out.push(types::LIST_QUICKLIST_2);
    put_len(out, nodes.len() as u64);
    for n in nodes {
        match n {
            Node::Packed(lp) => {
                put_len(out, NODE_PACKED);
                put_string_with(lz, out, &lp);
            }
            Node::Plain(e) => {
                put_len(out, NODE_PLAIN);
                put_string_with(lz, out, &e);
            }
        }
    }
}

/// An intset as RDB_TYPE_SET_INTSET (at the set's own width, as Redis),
/// anything else as a plain RDB_TYPE_SET: Redis 7.0 has no listpack sets.
fn write_set(lz: bool, out: &mut Vec<u8>, s: &SetValue) {
    if let Some(width) = s.intset_width() {
        let vals: Vec<i64> = s.iter().filter_map(|e| e.as_int()).collect();
        out.push(types::SET_INTSET);
        put_string_with(lz, out, &intset::build(&vals, width));
        return;
    }
    out.push(types::SET);
    put_len(out, s.len() as u64);
    for e in s.iter() {
        e.with_bytes(|b| put_string_with(lz, out, b));
    }
}

/// A listpack hash as RDB_TYPE_HASH_LISTPACK, a hashtable as RDB_TYPE_HASH.
/// Field TTLs are not part of it: files carry them in an AUX record after
/// the key, DUMP in Redis 7.4's types (see [`crate::hash_ttl`]).
fn write_hash(lz: bool, out: &mut Vec<u8>, h: &HashValue) {
    // A listpackex is within the listpack limits: a listpack as Redis 7.0
    // would have it.
    if h.is_compact() {
        let mut w = listpack::Writer::new();
        for (f, v) in h.iter() {
            w.push(f);
            w.push(v);
        }
        out.push(types::HASH_LISTPACK);
        put_string_with(lz, out, &w.finish());
        return;
    }
    out.push(types::HASH);
    put_len(out, h.len() as u64);
    for (f, v) in h.iter() {
        put_string_with(lz, out, f);
        put_string_with(lz, out, v);
    }
}

/// A listpack zset as RDB_TYPE_ZSET_LISTPACK (scores as Redis 7.0's
/// d2string text), a skiplist as RDB_TYPE_ZSET_2 from the highest score
/// down, as Redis writes it (so loading inserts at the head).
fn write_zset(lz: bool, out: &mut Vec<u8>, z: &ZSetValue) {
    if z.encoding() == "listpack" {
        let mut w = listpack::Writer::new();
        for (m, s) in z.iter_from(0, false) {
            w.push(m);
            w.push(score_text(s).as_bytes());
        }
        out.push(types::ZSET_LISTPACK);
        put_string_with(lz, out, &w.finish());
        return;
    }
    out.push(types::ZSET_2);
    put_len(out, z.len() as u64);
    for (m, s) in z.iter_from(0, true) {
        put_string_with(lz, out, m);
        put_double(out, s);
    }
}

/// A score as Redis 7.0's d2string prints it into a listpack: integers
/// below 2^52 in plain digits, others as printf's `%.17g`.
pub fn score_text(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if v > -4503599627370495.0 && v < 4503599627370496.0 && v == (v as i64) as f64 {
        return (v as i64).to_string();
    }
    format_g17(v)
}

/// printf's `%.17g`: 17 significant digits, trailing zeros dropped,
/// exponent form when the exponent is below -4 or at least 17.
fn format_g17(v: f64) -> String {
    let sci = format!("{v:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let prec = (16 - exp) as usize;
    trim_fraction(&format!("{v:.prec$}")).to_string()
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

// ---------------------------------------------------------------- reading

/// Reads a type byte and the value after it.
pub fn read(input: &mut Input, lim: &Limits) -> Result<Value> {
    let t = input.u8()?;
    read_body(t, input, lim)
}

/// Reads the body of a value of RDB type `t`.
pub fn read_body(t: u8, input: &mut Input, lim: &Limits) -> Result<Value> {
    let v = match t {
        types::STRING => Value::Str(StrValue::from_vec(input.string()?)),
        types::LIST => read_plain_list(input, lim)?,
        types::LIST_QUICKLIST_2 => read_quicklist(input, lim)?,
        types::LIST_ZIPLIST => list_from(&ziplist::parse(&input.string()?)?, lim)?,
        types::LIST_QUICKLIST => read_ziplist_quicklist(input, lim)?,
        types::HASH_ZIPLIST => hash_from(&ziplist::parse(&input.string()?)?, lim)?,
        types::ZSET_ZIPLIST => zset_from(&ziplist::parse(&input.string()?)?, lim)?,
        types::SET => read_plain_set(input, lim)?,
        types::SET_INTSET => read_intset(input, lim)?,
        types::SET_LISTPACK => read_listpack_set(input, lim)?,
        types::HASH => read_plain_hash(input, lim)?,
        types::HASH_LISTPACK => read_listpack_hash(input, lim)?,
        types::ZSET | types::ZSET_2 => read_plain_zset(t, input, lim)?,
        types::ZSET_LISTPACK => read_listpack_zset(input, lim)?,
        types::HASH_METADATA | types::HASH_METADATA_PRE_GA => {
            crate::hash_ttl::read_metadata(t, input, lim)?
        }
        types::HASH_LISTPACK_EX | types::HASH_LISTPACK_EX_PRE_GA => {
            crate::hash_ttl::read_listpack_ex(t, input, lim)?
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            crate::stream::read(t, input)?
        }
        _ => return Err(Error("unsupported value type")),
    };
    Ok(v)
}

const EMPTY: Error = Error("empty collection");
const DUPLICATE: Error = Error("duplicate member");

/// Appends one element as RPUSH would (the list's encoding follows).
fn list_push(l: &mut ListValue, e: &[u8], fill: i64) {
    l.grow(fill, e.len(), 1);
    l.push_back(e);
}

fn read_plain_list(input: &mut Input, lim: &Limits) -> Result<Value> {
    let n = input.count(1)?;
    let mut l = ListValue::default();
    for _ in 0..n {
        list_push(&mut l, &input.string()?, lim.list_fill);
    }
    finish_list(l)
}

fn read_quicklist(input: &mut Input, lim: &Limits) -> Result<Value> {
    let nodes = input.count(2)?;
    let mut l = ListValue::default();
    for _ in 0..nodes {
        let container = input.length()?;
        let data = input.string()?;
        match container {
            NODE_PLAIN => list_push(&mut l, &data, lim.list_fill),
            NODE_PACKED => {
                // Redis skips empty listpack nodes when loading.
                for e in listpack::parse(&data)? {
                    list_push(&mut l, &e.to_vec(), lim.list_fill);
                }
            }
            _ => return Err(Error("bad quicklist container")),
        }
    }
    finish_list(l)
}

fn list_from(entries: &[LpEntry], lim: &Limits) -> Result<Value> {
    let mut l = ListValue::default();
    for e in entries {
        list_push(&mut l, &e.to_vec(), lim.list_fill);
    }
    finish_list(l)
}

/// RDB_TYPE_LIST_QUICKLIST (Redis 3.2 to 6): nodes are ziplists.
fn read_ziplist_quicklist(input: &mut Input, lim: &Limits) -> Result<Value> {
    let nodes = input.count(1)?;
    let mut l = ListValue::default();
    for _ in 0..nodes {
        for e in ziplist::parse(&input.string()?)? {
            list_push(&mut l, &e.to_vec(), lim.list_fill);
        }
    }
    finish_list(l)
}

fn finish_list(l: ListValue) -> Result<Value> {
    if l.is_empty() {
        return Err(EMPTY);
    }
    Ok(Value::List(Box::new(l)))
}

/// Builds a set from its members as SADD does (setTypeCreate sized for all
/// of them, then each added); a repeated member is corrupt data.
fn build_set<'a>(
    n: usize,
    mut next: impl FnMut() -> Result<std::borrow::Cow<'a, [u8]>>,
    lim: &Limits,
) -> Result<Value> {
    if n == 0 {
        return Err(EMPTY);
    }
    let first = next()?;
    let mut s = SetValue::create(&first, n, &lim.set);
    s.add(&first, &lim.set);
    for _ in 1..n {
        if !s.add(&next()?, &lim.set) {
            return Err(DUPLICATE);
        }
    }
    Ok(Value::Set(Box::new(s)))
}

fn read_plain_set(input: &mut Input, lim: &Limits) -> Result<Value> {
    let n = input.count(1)?;
    build_set(n, || input.string().map(Into::into), lim)
}

fn read_intset(input: &mut Input, lim: &Limits) -> Result<Value> {
    let vals = intset::parse(&input.string()?)?;
    let mut it = vals.iter();
    build_set(
        vals.len(),
        || {
            let v = it.next().ok_or(EMPTY)?;
            Ok(itoa::Buffer::new().format(*v).as_bytes().to_vec().into())
        },
        lim,
    )
}

fn read_listpack_set(input: &mut Input, lim: &Limits) -> Result<Value> {
    let blob = input.string()?;
    let entries = listpack::parse(&blob)?;
    let mut it = entries.iter();
    build_set(
        entries.len(),
        || Ok(it.next().ok_or(EMPTY)?.to_vec().into()),
        lim,
    )
}

fn hash_insert(h: &mut HashValue, f: &[u8], v: &[u8], lim: &Limits) -> Result<()> {
    if h.set(f, v, lim.hash) {
        Ok(())
    } else {
        Err(DUPLICATE)
    }
}

fn read_plain_hash(input: &mut Input, lim: &Limits) -> Result<Value> {
    let n = input.count(2)?;
    if n == 0 {
        return Err(EMPTY);
    }
    let mut h = HashValue::new();
    if n > lim.hash.max_entries {
        h.to_hashtable();
    }
    for _ in 0..n {
        let f = input.string()?;
        let v = input.string()?;
        hash_insert(&mut h, &f, &v, lim)?;
    }
    Ok(Value::Hash(h))
}

fn read_listpack_hash(input: &mut Input, lim: &Limits) -> Result<Value> {
    hash_from(&listpack::parse(&input.string()?)?, lim)
}

/// A hash from a listpack's or ziplist's field, value, field... entries.
fn hash_from(entries: &[LpEntry], lim: &Limits) -> Result<Value> {
    if entries.is_empty() || !entries.len().is_multiple_of(2) {
        return Err(Error("bad hash listpack"));
    }
    let mut h = HashValue::new();
    if entries.len() / 2 > lim.hash.max_entries {
        h.to_hashtable();
    }
    for pair in entries.chunks_exact(2) {
        hash_insert(&mut h, &pair[0].to_vec(), &pair[1].to_vec(), lim)?;
    }
    Ok(Value::Hash(h))
}

/// Adds members as ZADD does; NaN scores and repeated members are corrupt.
fn zset_insert(z: &mut ZSetValue, m: &[u8], score: f64, lim: &Limits) -> Result<()> {
    if score.is_nan() {
        return Err(Error("NaN score"));
    }
    if z.insert(m, score, lim.zset) {
        Ok(())
    } else {
        Err(DUPLICATE)
    }
}

fn new_zset(n: usize, lim: &Limits) -> Result<ZSetValue> {
    if n == 0 {
        return Err(EMPTY);
    }
    Ok(ZSetValue::with_hint(n, 0, lim.zset))
}

fn read_plain_zset(t: u8, input: &mut Input, lim: &Limits) -> Result<Value> {
    let n = input.count(2)?;
    let mut z = new_zset(n, lim)?;
    for _ in 0..n {
        let m = input.string()?;
        let score = if t == types::ZSET_2 {
            input.double()?
        } else {
            input.text_double()?
        };
        zset_insert(&mut z, &m, score, lim)?;
    }
    Ok(Value::ZSet(Box::new(z)))
}

fn read_listpack_zset(input: &mut Input, lim: &Limits) -> Result<Value> {
    zset_from(&listpack::parse(&input.string()?)?, lim)
}

/// A sorted set from a listpack's or ziplist's member, score... entries.
fn zset_from(entries: &[LpEntry], lim: &Limits) -> Result<Value> {
    if !entries.len().is_multiple_of(2) {
        return Err(Error("bad zset listpack"));
    }
    let mut z = new_zset(entries.len() / 2, lim)?;
    for pair in entries.chunks_exact(2) {
        let score = match pair[1] {
            LpEntry::Int(v) => v as f64,
            LpEntry::Str(s) => parse_score(s)?,
        };
        zset_insert(&mut z, &pair[0].to_vec(), score, lim)?;
    }
    Ok(Value::ZSet(Box::new(z)))
}

/// A listpack score (strtod of what d2string printed).
fn parse_score(s: &[u8]) -> Result<f64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or(Error("bad score"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    pub fn lim() -> Limits {
        Limits::default()
    }

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, v, &lim());
        out
    }

    fn decode(b: &[u8]) -> Result<Value> {
        read(&mut Input::new(b), &lim())
    }

    /// The value's type, encoding and contents as text, for comparisons.
    fn show(v: &Value) -> String {
        let body: Vec<String> = match v {
            Value::Str(s) => vec![format!("{:?}", s.to_vec())],
            Value::List(l) => l.iter().map(|e| format!("{:?}", e.to_vec())).collect(),
            Value::Set(s) => {
                let mut m: Vec<String> = s.iter().map(|e| format!("{:?}", e.to_vec())).collect();
                m.sort();
                m
            }
            Value::Hash(h) => {
                let mut m: Vec<String> = h.iter().map(|p| format!("{p:?}")).collect();
                m.sort();
                m
            }
            Value::ZSet(z) => z.iter_from(0, false).map(|p| format!("{p:?}")).collect(),
            Value::Stream(s) => vec![format!("{}", s.len())],
        };
        format!("{} {} {}", v.type_name(), v.encoding(), body.join(","))
    }

    fn samples() -> Vec<Value> {
        let l = lim();
        let mut out = vec![
            Value::Str(StrValue::from_bytes(b"")),
            Value::Str(StrValue::from_bytes(b"-123456789012")),
            Value::Str(StrValue::from_vec(vec![b'q'; 5000])),
        ];
        for n in [3usize, 300, 3000] {
            let mut list = ListValue::default();
            let mut ints = SetValue::new_intset();
            let mut strs = SetValue::new_listpack();
            let mut h = HashValue::new();
            let mut z = ZSetValue::default();
            for i in 0..n {
                let s = format!("member:{i}");
                list_push(&mut list, s.as_bytes(), l.list_fill);
                list_push(&mut list, i.to_string().as_bytes(), l.list_fill);
                ints.add((i as i64 * 100_003).to_string().as_bytes(), &l.set);
                strs.add(s.as_bytes(), &l.set);
                h.set(s.as_bytes(), i.to_string().as_bytes(), l.hash);
                z.insert(s.as_bytes(), i as f64 / 3.0, l.zset);
            }
            for c in [
                Value::List(Box::new(list)),
                Value::Set(Box::new(ints)),
                Value::Set(Box::new(strs)),
                Value::Hash(h),
                Value::ZSet(Box::new(z)),
            ] {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn every_type_and_encoding_round_trips() {
        for v in samples() {
            let back = decode(&encode(&v)).unwrap();
            assert_eq!(show(&back), show(&v));
        }
    }

    #[test]
    fn reads_redis_7_2_listpack_sets_and_old_types() {
        let mut w = listpack::Writer::new();
        for m in ["a", "1", "b"] {
            w.push(m.as_bytes());
        }
        let mut b = vec![types::SET_LISTPACK];
        crate::codec::put_string(&mut b, &w.finish());
        let v = decode(&b).unwrap();
        assert_eq!(show(&v), "set listpack [49],[97],[98]");
        // RDB_TYPE_LIST and RDB_TYPE_ZSET (text scores, 254 = +inf).
        let v = decode(b"\x01\x02\x01a\xc0\x07").unwrap();
        assert_eq!(show(&v), "list listpack [97],[55]");
        let v = decode(b"\x03\x02\x01a\x031.5\x01b\xfe").unwrap();
        assert_eq!(show(&v), "zset listpack ([97], 1.5),([98], inf)");
    }

    #[test]
    fn refuses_empty_duplicate_and_nan() {
        let bad: [&[u8]; 6] = [
            b"\x02\x00",
            b"\x02\x02\x01a\x01a",
            b"\x04\x02\x01a\x01b\x01a\x01c",
            b"\x03\x01\x01a\xfd",
            b"\x12\x01\x03\x01a",
            b"\x63",
        ];
        for b in bad {
            assert!(decode(b).is_err(), "{b:?}");
        }
    }

    /// Damaged encodings of every sample: errors or values, never a panic.
    #[test]
    fn damaged_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(1);
        for v in samples() {
            let good = encode(&v);
            for _ in 0..300 {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                let cut = rng.gen_range(0..=b.len());
                let _ = decode(&b);
                let _ = decode(&b[..cut]);
            }
        }
    }

    #[test]
    fn scores_print_like_redis_7_0() {
        for (v, s) in [
            (1.0, "1"),
            (-3.0, "-3"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1.25e-7, "1.2499999999999999e-07"),
            (4503599627370496.0, "4503599627370496"),
            (123456789.125, "123456789.125"),
            (f64::INFINITY, "inf"),
            (-0.0, "-0"),
        ] {
            assert_eq!(score_text(v), s, "{v}");
        }
    }
}
