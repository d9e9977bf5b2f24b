//! Hash-field TTLs (HEXPIRE & co., Redis 7.4) in RDB form.
//!
//! Two representations:
//!
//! - **RDB files** stay loadable by Redis 7.0 (RDB 10, which has no hash
//!   with field TTLs): the hash is written as the plain hash it is, and
//!   right after it an AUX record [`AUX_KEY`] holds its field deadlines.
//!   Redis skips AUX fields it does not know (logged at debug level,
//!   anywhere in the file), so it loads the hash without the TTLs; Granary
//!   puts them back on the hash it just read.
//! - **DUMP payloads** hold one value and no AUX: a hash with field TTLs is
//!   written as Redis 7.4 writes it (RDB 12: RDB_TYPE_HASH_LISTPACK_EX or
//!   RDB_TYPE_HASH_METADATA), so Redis 7.4 restores it and Redis 7.0
//!   refuses its version, as it refuses any newer payload.
//!
//! Reading accepts those Redis 7.4 types (and their 7.4 release-candidate
//! forms, 22 and 23) from files and payloads alike.

use crate::codec::{put_len, put_string_with, Error, Input, Result};
use crate::listpack::{self, LpEntry};
use crate::types;
use crate::value::Limits;
use granary_keyspace::types::HashValue;
use granary_keyspace::Value;

/// The AUX field holding one hash's field deadlines.
pub const AUX_KEY: &[u8] = b"granary-hash-ttls";
/// The layout version of the AUX payload, its first byte.
const AUX_FORMAT: u8 = 1;
/// The largest deadline Redis 7.4 accepts (EB_EXPIRE_TIME_MAX, 2^48 - 1).
pub const MAX_DEADLINE: u64 = (1 << 48) - 1;

// ---------------------------------------------------------------- AUX

/// The AUX payload for `key`'s hash, None if no field has a TTL:
/// format byte, key, count, then (field, deadline u64 LE) pairs.
pub fn aux_payload(key: &[u8], h: &HashValue) -> Option<Vec<u8>> {
    let n = h.volatile_fields();
    if n == 0 {
        return None;
    }
    let mut out = vec![AUX_FORMAT];
    put_string_with(false, &mut out, key);
    put_len(&mut out, n as u64);
    for (f, when) in h.field_ttls() {
        put_string_with(false, &mut out, f);
        out.extend_from_slice(&when.to_le_bytes());
    }
    Some(out)
}

/// Puts the deadlines of an AUX payload on `value`, the hash just read
/// for `key`. Anything that does not fit (another key, not a hash, a
/// field it lacks, a repeated field, trailing bytes) is corrupt data.
pub fn apply_aux(payload: &[u8], key: &[u8], value: &mut Value) -> Result<()> {
    let mut input = Input::new(payload);
    if input.u8()? != AUX_FORMAT {
        return Err(Error("unknown hash field TTL format"));
    }
    if input.string()? != key {
        return Err(Error(
            "hash field TTLs for another key than the one before them",
        ));
    }
    let Value::Hash(h) = value else {
        return Err(Error("hash field TTLs for a key that is not a hash"));
    };
    // Each pair takes at least a length byte and the 8-byte deadline.
    let n = input.count(9)?;
    if n == 0 {
        return Err(Error("empty hash field TTL record"));
    }
    for _ in 0..n {
        let field = input.string()?;
        let when = u64::from_le_bytes(input.array()?);
        set_ttl(h, &field, when)?;
    }
    if input.remaining() != 0 {
        return Err(Error("trailing bytes in hash field TTL record"));
    }
    Ok(())
}

fn set_ttl(h: &mut HashValue, field: &[u8], when: u64) -> Result<()> {
    if when == 0 || when > MAX_DEADLINE {
        return Err(Error("invalid hash field deadline"));
    }
    if !h.contains(field) {
        return Err(Error("hash field TTL for a field the hash lacks"));
    }
    if h.field_ttl(field).is_some() {
        return Err(Error("repeated hash field TTL"));
    }
    h.set_field_ttl(field, when);
    Ok(())
}

// ---------------------------------------------------------------- writing

/// Whether `v` is a hash with field TTLs (written by [`write`]).
pub fn has_ttls(v: &Value) -> bool {
    matches!(v, Value::Hash(h) if h.volatile_fields() > 0)
}

/// Writes a hash with field TTLs as Redis 7.4 does: a `listpackex` as
/// RDB_TYPE_HASH_LISTPACK_EX (earliest deadline, then a listpack of field,
/// value, deadline triples, volatile fields first by deadline, 0 for
/// none), a hashtable as RDB_TYPE_HASH_METADATA (earliest deadline, count,
/// then per field its deadline relative to the earliest plus one, 0 for
/// none, the field and the value).
pub fn write(lz: bool, out: &mut Vec<u8>, h: &HashValue) {
    let min = h.next_field_expiry().unwrap_or(0);
    if h.encoding() == "listpackex" {
        let mut w = listpack::Writer::new();
        for (f, when) in h.field_ttls() {
            w.push(f);
            w.push(h.get(f).unwrap_or_default());
            w.push_int(when as i64);
        }
        for (f, v) in h.iter().filter(|(f, _)| h.field_ttl(f).is_none()) {
            w.push(f);
            w.push(v);
            w.push_int(0);
        }
        out.push(types::HASH_LISTPACK_EX);
        out.extend_from_slice(&min.to_le_bytes());
        put_string_with(lz, out, &w.finish());
        return;
    }
    out.push(types::HASH_METADATA);
    out.extend_from_slice(&min.to_le_bytes());
    put_len(out, h.len() as u64);
    for (f, v) in h.iter() {
        put_len(out, h.field_ttl(f).map_or(0, |t| t - min + 1));
        put_string_with(lz, out, f);
        put_string_with(lz, out, v);
    }
}

// ---------------------------------------------------------------- reading

const DUPLICATE: Error = Error("duplicate member");
const EMPTY: Error = Error("empty collection");

/// A new hash sized for `n` fields, as the plain hash readers make it.
fn new_hash(n: usize, lim: &Limits) -> HashValue {
    let mut h = HashValue::new();
    if n > lim.hash.max_entries {
        h.to_hashtable();
    }
    h
}

fn insert(h: &mut HashValue, f: &[u8], v: &[u8], when: u64, lim: &Limits) -> Result<()> {
    if when > MAX_DEADLINE {
        return Err(Error("invalid hash field deadline"));
    }
    if !h.set(f, v, lim.hash) {
        return Err(DUPLICATE);
    }
    if when != 0 {
        h.set_field_ttl(f, when);
    }
    Ok(())
}

/// RDB_TYPE_HASH_METADATA (24) and its pre-release form (22, deadlines
/// absolute and no earliest deadline first).
pub fn read_metadata(t: u8, input: &mut Input, lim: &Limits) -> Result<Value> {
    let min = match t {
        types::HASH_METADATA => u64::from_le_bytes(input.array()?),
        _ => 0,
    };
    // A field takes at least its TTL, field and value length bytes.
    let n = input.count(3)?;
    if n == 0 {
        return Err(EMPTY);
    }
    let mut h = new_hash(n, lim);
    for _ in 0..n {
        let ttl = input.length()?;
        let when = match (t, ttl) {
            (_, 0) => 0,
            (types::HASH_METADATA, d) => d
                .checked_add(min)
                .and_then(|x| x.checked_sub(1))
                .ok_or(Error("invalid hash field deadline"))?,
            (_, abs) => abs,
        };
        let f = input.string()?;
        let v = input.string()?;
        insert(&mut h, &f, &v, when, lim)?;
    }
    Ok(Value::Hash(h))
}

/// RDB_TYPE_HASH_LISTPACK_EX (25) and its pre-release form (23, no
/// earliest deadline first): a listpack of field, value, deadline.
pub fn read_listpack_ex(t: u8, input: &mut Input, lim: &Limits) -> Result<Value> {
    if t == types::HASH_LISTPACK_EX {
        // The earliest deadline, a hint Redis does not use on load either.
        input.array::<8>()?;
    }
    let blob = input.string()?;
    let entries = listpack::parse(&blob)?;
    if entries.is_empty() || !entries.len().is_multiple_of(3) {
        return Err(Error("bad hash listpack"));
    }
    let mut h = new_hash(entries.len() / 3, lim);
    for e in entries.chunks_exact(3) {
        let when = match e[2] {
            LpEntry::Int(v) => {
                u64::try_from(v).map_err(|_| Error("invalid hash field deadline"))?
            }
            LpEntry::Str(_) => return Err(Error("invalid hash field deadline")),
        };
        insert(&mut h, &e[0].to_vec(), &e[1].to_vec(), when, lim)?;
    }
    Ok(Value::Hash(h))
}

/// Deletes the fields whose deadline is at or before `now_ms` (loading a
/// file drops them as it drops expired keys); true if none is left.
pub fn drop_expired(v: &mut Value, now_ms: u64) -> bool {
    match v {
        Value::Hash(h) if h.fields_due(now_ms) => {
            h.expire_fields(now_ms, usize::MAX);
            h.is_empty()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::put_string;
    use crate::file;
    use granary_keyspace::StrValue;

    fn lim() -> Limits {
        Limits::default()
    }

    /// A hash of `n` fields `f0..`, fields `f0` and `f1` with deadlines.
    fn sample(n: usize) -> HashValue {
        let mut h = HashValue::new();
        for i in 0..n {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                lim().hash,
            );
        }
        h.set_field_ttl(b"f1", 2_000_000_000_000);
        h.set_field_ttl(b"f0", 1_900_000_000_123);
        h
    }

    fn show(v: &Value) -> Vec<(Vec<u8>, Vec<u8>, Option<u64>)> {
        let Value::Hash(h) = v else {
            panic!("not a hash")
        };
        let mut out: Vec<_> = h
            .iter()
            .map(|(f, v)| (f.to_vec(), v.to_vec(), h.field_ttl(f)))
            .collect();
        out.sort();
        out
    }

    fn file_with(keys: &[(&[u8], Value)]) -> Vec<u8> {
        let mut w = file::Writer::new(Vec::new(), lim(), 0).unwrap();
        w.select_db(0, keys.len() as u64, 0).unwrap();
        for (k, v) in keys {
            w.key(k, v, None).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_file(f: &[u8]) -> std::result::Result<Vec<(Vec<u8>, Value)>, file::ReadError> {
        let mut got = Vec::new();
        file::read(f, f.len() as u64, &lim(), |it| got.push((it.key, it.value)))?;
        Ok(got)
    }

    #[test]
    fn files_carry_field_ttls_in_an_aux_record() {
        let small = Value::Hash(sample(3));
        let big = Value::Hash(sample(300));
        let plain = Value::Str(StrValue::from_bytes(b"x"));
        let f = file_with(&[
            (b"small", small.clone()),
            (b"s", plain),
            (b"big", big.clone()),
        ]);
        let got = read_file(&f).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(show(&got[0].1), show(&small));
        assert_eq!(got[0].1.encoding(), "listpackex");
        assert_eq!(show(&got[2].1), show(&big));
        assert_eq!(got[2].1.encoding(), "hashtable");
        // The hash itself is the plain one Redis 7.0 reads.
        let mut plain_hash = Vec::new();
        crate::value::write(&mut plain_hash, &small, &lim());
        assert_eq!(plain_hash[0], types::HASH_LISTPACK);
        let aux = find(&f, b"granary-hash-ttls").expect("aux record");
        assert_eq!(f[aux - 2], 0xfa);
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// A file holding the hash `k` {a: 1, b: 2}, then an AUX record of ours
    /// with `payload`.
    fn with_aux(payload: &[u8]) -> Vec<u8> {
        let mut w = file::Writer::new(Vec::new(), lim(), 0).unwrap();
        w.select_db(0, 1, 0).unwrap();
        let mut rec = Vec::new();
        let mut h = HashValue::new();
        h.set(b"a", b"1", lim().hash);
        h.set(b"b", b"2", lim().hash);
        file::record(&mut rec, b"k", &Value::Hash(h), None, &lim());
        rec.push(0xfa);
        put_string(&mut rec, AUX_KEY);
        put_string(&mut rec, payload);
        w.records(&rec).unwrap();
        w.finish().unwrap()
    }

    fn payload(key: &[u8], n: u64, pairs: &[(&[u8], u64)], tail: &[u8]) -> Vec<u8> {
        let mut p = vec![AUX_FORMAT];
        put_string(&mut p, key);
        put_len(&mut p, n);
        for (f, t) in pairs {
            put_string(&mut p, f);
            p.extend_from_slice(&t.to_le_bytes());
        }
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn bad_aux_payloads_are_load_errors() {
        let good = payload(b"k", 1, &[(b"a", 5000)], b"");
        let got = read_file(&with_aux(&good)).unwrap();
        assert_eq!(show(&got[0].1)[0].2, Some(5000));
        let mut bad_format = good.clone();
        bad_format[0] = 9;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (bad_format, "unknown hash field TTL format"),
            (payload(b"other", 1, &[(b"a", 5000)], b""), "another key"),
            (payload(b"k", 1, &[(b"zz", 5000)], b""), "lacks"),
            (payload(b"k", 2, &[(b"a", 5), (b"a", 6)], b""), "repeated"),
            (payload(b"k", 1, &[(b"a", 5)], b"x"), "trailing"),
            (payload(b"k", 1, &[(b"a", 0)], b""), "deadline"),
            (payload(b"k", 1, &[(b"a", u64::MAX)], b""), "deadline"),
            (payload(b"k", 0, &[], b""), "empty"),
            // A count no payload could hold: refused before allocating.
            (payload(b"k", u64::MAX >> 2, &[(b"a", 5)], b""), "length"),
            (good[..good.len() - 3].to_vec(), "data"),
        ];
        for (p, why) in cases {
            let e = read_file(&with_aux(&p)).err().expect(why).to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
        // Random damage: an error or a value, never a panic.
        let mut x = 7u64;
        for i in 0..2000 {
            let mut p = good.clone();
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 33) as usize % p.len();
            p[at] = (x >> 20) as u8;
            let _ = read_file(&with_aux(&p[..p.len() - i % 3]));
        }
    }

    #[test]
    fn aux_without_a_hash_before_it_is_an_error() {
        let mut w = file::Writer::new(Vec::new(), lim(), 0).unwrap();
        let mut rec = vec![0xfa];
        put_string(&mut rec, AUX_KEY);
        put_string(&mut rec, &payload(b"k", 1, &[(b"a", 5)], b""));
        w.records(&rec).unwrap();
        let f = w.finish().unwrap();
        assert!(read_file(&f).is_err());
        // After a string key: not a hash.
        let mut w = file::Writer::new(Vec::new(), lim(), 0).unwrap();
        let mut rec = Vec::new();
        file::record(
            &mut rec,
            b"k",
            &Value::Str(StrValue::from_bytes(b"a")),
            None,
            &lim(),
        );
        rec.push(0xfa);
        put_string(&mut rec, AUX_KEY);
        put_string(&mut rec, &payload(b"k", 1, &[(b"a", 5)], b""));
        w.records(&rec).unwrap();
        let e = read_file(&w.finish().unwrap()).err().unwrap().to_string();
        assert!(e.contains("not a hash"), "{e}");
    }

    /// RDB_TYPE_HASH_LISTPACK_EX as Redis 7.4 writes it (rdbSaveObject):
    /// the earliest deadline (ms, u64 LE), then the listpack string.
    #[test]
    fn reads_redis_7_4_listpack_ex() {
        let mut lp = listpack::Writer::new();
        for (f, v, t) in [("a", "1", 1_800_000_000_000i64), ("b", "x", 0)] {
            lp.push(f.as_bytes());
            lp.push(v.as_bytes());
            lp.push_int(t);
        }
        let lp = lp.finish();
        let mut b = vec![types::HASH_LISTPACK_EX];
        b.extend_from_slice(&1_800_000_000_000u64.to_le_bytes());
        put_string(&mut b, &lp);
        let v = crate::value::read(&mut Input::new(&b), &lim()).unwrap();
        assert_eq!(v.encoding(), "listpackex");
        assert_eq!(
            show(&v),
            [
                (b"a".to_vec(), b"1".to_vec(), Some(1_800_000_000_000)),
                (b"b".to_vec(), b"x".to_vec(), None)
            ]
        );
        // The pre-release type 23: the same without the earliest deadline.
        let mut b23 = vec![types::HASH_LISTPACK_EX_PRE_GA];
        put_string(&mut b23, &lp);
        let v23 = crate::value::read(&mut Input::new(&b23), &lim()).unwrap();
        assert_eq!(show(&v23), show(&v));
        // What Granary's DUMP writes is the same bytes.
        let Value::Hash(h) = &v else { unreachable!() };
        let mut ours = Vec::new();
        write(false, &mut ours, h);
        assert_eq!(ours, b);
        // A string deadline, a negative one, or pairs instead of triples.
        for bad in [
            vec![("a", "1", None)],
            vec![("a", "1", Some(-5))],
            vec![("a", "1", Some(1 << 50))],
        ] {
            let mut w = listpack::Writer::new();
            for (f, v, t) in bad {
                w.push(f.as_bytes());
                w.push(v.as_bytes());
                match t {
                    Some(t) => w.push_int(t),
                    None => w.push(b"soon"),
                }
            }
            let mut b = vec![types::HASH_LISTPACK_EX_PRE_GA];
            put_string(&mut b, &w.finish());
            assert!(crate::value::read(&mut Input::new(&b), &lim()).is_err());
        }
    }

    /// RDB_TYPE_HASH_METADATA as Redis 7.4 writes it: the earliest deadline
    /// (u64 LE), the count, then per field its deadline relative to the
    /// earliest plus one (0: none), the field and the value.
    #[test]
    fn reads_redis_7_4_hash_metadata() {
        let min = 1_700_000_000_000u64;
        let mut b = vec![types::HASH_METADATA];
        b.extend_from_slice(&min.to_le_bytes());
        put_len(&mut b, 3);
        for (rel, f, v) in [(1u64, "a", "1"), (0, "b", "2"), (501, "c", "3")] {
            put_len(&mut b, rel);
            put_string(&mut b, f.as_bytes());
            put_string(&mut b, v.as_bytes());
        }
        let v = crate::value::read(&mut Input::new(&b), &lim()).unwrap();
        assert_eq!(
            show(&v),
            [
                (b"a".to_vec(), b"1".to_vec(), Some(min)),
                (b"b".to_vec(), b"2".to_vec(), None),
                (b"c".to_vec(), b"3".to_vec(), Some(min + 500))
            ]
        );
        // Type 22: absolute deadlines, no earliest deadline first.
        let mut b22 = vec![types::HASH_METADATA_PRE_GA];
        put_len(&mut b22, 1);
        put_len(&mut b22, min + 7);
        put_string(&mut b22, b"a");
        put_string(&mut b22, b"1");
        let v22 = crate::value::read(&mut Input::new(&b22), &lim()).unwrap();
        assert_eq!(show(&v22), [(b"a".to_vec(), b"1".to_vec(), Some(min + 7))]);
        // Damage: errors, never a panic (nor an overflow).
        for cut in 0..b.len() {
            assert!(crate::value::read(&mut Input::new(&b[..cut]), &lim()).is_err());
        }
        let mut huge = vec![types::HASH_METADATA];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        put_len(&mut huge, 1);
        put_len(&mut huge, 5);
        put_string(&mut huge, b"a");
        put_string(&mut huge, b"1");
        assert!(crate::value::read(&mut Input::new(&huge), &lim()).is_err());
    }

    #[test]
    fn dump_payloads_of_ttl_hashes_are_redis_7_4s() {
        for (n, t) in [(3, types::HASH_LISTPACK_EX), (300, types::HASH_METADATA)] {
            let v = Value::Hash(sample(n));
            let p = crate::dump::dump(&v, &lim());
            assert_eq!(p[0], t);
            assert_eq!(&p[p.len() - 10..p.len() - 8], &12u16.to_le_bytes());
            let back = crate::dump::restore(&p, &lim()).unwrap();
            assert_eq!(show(&back), show(&v));
        }
        // Without field TTLs: Redis 7.0's payload, version 10.
        let mut h = HashValue::new();
        h.set(b"a", b"1", lim().hash);
        let p = crate::dump::dump(&Value::Hash(h), &lim());
        assert_eq!(p[0], types::HASH_LISTPACK);
        assert_eq!(&p[p.len() - 10..p.len() - 8], &10u16.to_le_bytes());
    }

    #[test]
    fn expired_fields_are_dropped_at_load() {
        let dir = std::env::temp_dir().join(format!("granary-hfe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dump.rdb");
        let mut gone = HashValue::new();
        gone.set(b"only", b"1", lim().hash);
        gone.set_field_ttl(b"only", 1_000);
        let f = file_with(&[(b"h", Value::Hash(sample(3))), (b"gone", Value::Hash(gone))]);
        std::fs::write(&path, f).unwrap();
        // f0 is due at load time, f1 is not: f0 goes, the hash stays.
        let now = 1_950_000_000_000;
        let mut got = Vec::new();
        let stats = crate::snapshot::load_with(&path, &lim(), now, 16, &mut Vec::new(), |it| {
            got.push((it.key, it.value))
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!((stats.keys, stats.expired), (1, 1));
        assert_eq!(got[0].0, b"h");
        assert_eq!(
            show(&got[0].1),
            [
                (b"f1".to_vec(), b"v1".to_vec(), Some(2_000_000_000_000)),
                (b"f2".to_vec(), b"v2".to_vec(), None)
            ]
        );
    }
}
