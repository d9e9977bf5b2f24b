//! Hash commands (Redis's t_hash.c). The type and its two encodings live in
//! `granary_keyspace::types::hash`.

use crate::cmd::keys::parse_cursor;
use crate::ctx::{err, CmdError, CmdResult, Ctx, Store};
use crate::glob::glob_match;
use crate::longdouble::{self, F80};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::types::hash::{HashValue, Limits};
use granary_keyspace::Value;
use granary_protocol::Reply;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "hash";
const K1: Keys = Keys::Range(1, 1, 1);

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("hset", -4, WRITE | DENYOOM | FAST, K1, hset).group(G, "2.0.0").doc("Creates or modifies the value of a field in a hash."),
    Spec::new("hmset", -4, WRITE | DENYOOM | FAST, K1, hmset).group(G, "2.0.0").doc("Sets the values of multiple fields."),
    Spec::new("hsetnx", 4, WRITE | DENYOOM | FAST, K1, hsetnx).group(G, "2.0.0").doc("Sets the value of a field in a hash only when the field doesn't exist."),
    Spec::new("hget", 3, READONLY | FAST, K1, hget).group(G, "2.0.0").doc("Returns the value of a field in a hash."),
    Spec::new("hmget", -3, READONLY | FAST, K1, hmget).group(G, "2.0.0").doc("Returns the values of all fields in a hash."),
    Spec::new("hgetall", 2, READONLY, K1, hgetall).group(G, "2.0.0").doc("Returns all fields and values in a hash."),
    Spec::new("hdel", -3, WRITE | FAST, K1, hdel).group(G, "2.0.0").doc("Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    Spec::new("hexists", 3, READONLY | FAST, K1, hexists).group(G, "2.0.0").doc("Determines whether a field exists in a hash."),
    Spec::new("hlen", 2, READONLY | FAST, K1, hlen).group(G, "2.0.0").doc("Returns the number of fields in a hash."),
    Spec::new("hkeys", 2, READONLY, K1, hkeys).group(G, "2.0.0").doc("Returns all fields in a hash."),
    Spec::new("hvals", 2, READONLY, K1, hvals).group(G, "2.0.0").doc("Returns all values in a hash."),
    Spec::new("hstrlen", 3, READONLY | FAST, K1, hstrlen).group(G, "3.2.0").doc("Returns the length of the value of a field."),
    Spec::new("hincrby", 4, WRITE | DENYOOM | FAST, K1, hincrby).group(G, "2.0.0").doc("Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    Spec::new("hincrbyfloat", 4, WRITE | DENYOOM | FAST, K1, hincrbyfloat).group(G, "2.6.0").doc("Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    Spec::new("hrandfield", -2, READONLY, K1, hrandfield).group(G, "6.2.0").doc("Returns one or more random fields from a hash."),
    Spec::new("hscan", -3, READONLY, K1, hscan).group(G, "2.8.0").doc("Iterates over fields and values of a hash."),
    Spec::new("hexpire", -6, WRITE | DENYOOM | FAST, K1, hexpire).group(G, "7.4.0").doc("Set expiry for hash field using relative time to expire (seconds)"),
    Spec::new("hpexpire", -6, WRITE | DENYOOM | FAST, K1, hpexpire).group(G, "7.4.0").doc("Set expiry for hash field using relative time to expire (milliseconds)"),
    Spec::new("hexpireat", -6, WRITE | DENYOOM | FAST, K1, hexpireat).group(G, "7.4.0").doc("Set expiry for hash field using an absolute Unix timestamp (seconds)"),
    Spec::new("hpexpireat", -6, WRITE | DENYOOM | FAST, K1, hpexpireat).group(G, "7.4.0").doc("Set expiry for hash field using an absolute Unix timestamp (milliseconds)"),
    Spec::new("httl", -5, READONLY | FAST, K1, httl).group(G, "7.4.0").doc("Returns the TTL in seconds of a hash field."),
    Spec::new("hpttl", -5, READONLY | FAST, K1, hpttl).group(G, "7.4.0").doc("Returns the TTL in milliseconds of a hash field."),
    Spec::new("hexpiretime", -5, READONLY | FAST, K1, hexpiretime).group(G, "7.4.0").doc("Returns the expiration time of a hash field as a Unix timestamp, in seconds."),
    Spec::new("hpexpiretime", -5, READONLY | FAST, K1, hpexpiretime).group(G, "7.4.0").doc("Returns the expiration time of a hash field as a Unix timestamp, in msec."),
    Spec::new("hpersist", -5, WRITE | FAST, K1, hpersist).group(G, "7.4.0").doc("Removes the expiration time for each specified field"),
];

// ---------------------------------------------------------------- access

fn limits(c: &Ctx) -> Limits {
    let hot = &c.server.config.hot;
    let get = |v: &std::sync::atomic::AtomicI64| usize::try_from(v.load(Relaxed)).unwrap_or(0);
    Limits {
        max_entries: get(&hot.hash_max_listpack_entries),
        max_value: get(&hot.hash_max_listpack_value),
    }
}

/// The hash at `key` for a read command; None if missing.
fn read<'s>(store: &'s mut Store, key: &[u8]) -> Result<Option<&'s HashValue>, CmdError> {
    match store.read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

/// Runs `f` on the hash at `key` (created empty first when missing and
/// `create`). `f` returns its result and whether it changed the hash; a
/// change is signalled, and a hash left empty is deleted (Redis never keeps
/// empty collections). Returns None when the key is missing and not created.
fn write<R>(
    c: &mut Ctx,
    key: &[u8],
    create: bool,
    event: &str,
    f: impl FnOnce(&mut HashValue) -> Result<(R, bool), CmdError>,
) -> Result<Option<R>, CmdError> {
    let exists = match c.store.entry(key) {
        None => false,
        Some(e) if matches!(e.value, Value::Hash(_)) => true,
        Some(_) => return Err(err::WRONGTYPE.into()),
    };
    if !exists {
        if !create {
            return Ok(None);
        }
        c.store.set(key, Value::Hash(HashValue::new()), None);
    }
    let Some(Value::Hash(h)) = c.store.entry(key).map(|e| &mut e.value) else {
        return Err("ERR internal error: hash vanished".into());
    };
    let result = f(h);
    let empty = h.is_empty();
    let changed = matches!(result, Ok((_, true)));
    if empty {
        c.store.remove(key);
    }
    if changed || empty {
        c.store.modified(c.store.db, key);
    }
    if changed {
        c.notify(class::HASH, event, key);
    }
    if empty {
        c.notify(class::GENERIC, "del", key);
    }
    result.map(|(r, _)| Some(r))
}

// ---------------------------------------------------------------- setters

/// Checks HSET/HMSET's field value pairs and stores them; returns how many
/// fields were new.
fn set_pairs(c: &mut Ctx) -> Result<i64, CmdError> {
    if c.args.len() % 2 == 1 {
        return Err(c.arity_error());
    }
    let lim = limits(c);
    let args: &[Bytes] = c.args;
    let pairs = &args[2..];
    write(c, &args[1], true, "hset", |h| {
        // Redis 7.4 presizes a hashtable when the pairs alone exceed the
        // listpack limit.
        if pairs.len() / 2 > lim.max_entries {
            h.to_hashtable();
        }
        let added = pairs.chunks(2).filter(|p| h.set(&p[0], &p[1], lim)).count();
        Ok((added as i64, true))
    })
    .map(|n| n.unwrap_or(0))
}

fn hset(c: &mut Ctx) -> CmdResult {
    let added = set_pairs(c)?;
    c.out.int(added);
    Ok(())
}

fn hmset(c: &mut Ctx) -> CmdResult {
    set_pairs(c)?;
    c.out.ok();
    Ok(())
}

fn hsetnx(c: &mut Ctx) -> CmdResult {
    let lim = limits(c);
    let args: &[Bytes] = c.args;
    let (field, value) = (&args[2], &args[3]);
    let added = write(c, &args[1], true, "hset", |h| {
        if h.contains(field) {
            return Ok((false, false));
        }
        h.set(field, value, lim);
        Ok((true, true))
    })?;
    c.out.int(i64::from(added == Some(true)));
    Ok(())
}

fn hdel(c: &mut Ctx) -> CmdResult {
    let args: &[Bytes] = c.args;
    let removed = write(c, &args[1], false, "hdel", |h| {
        let mut n = 0;
        for f in &args[2..] {
            if h.remove(f) {
                n += 1;
                if h.is_empty() {
                    break;
                }
            }
        }
        Ok((n, n > 0))
    })?;
    c.out.int(removed.unwrap_or(0));
    Ok(())
}

fn hincrby(c: &mut Ctx) -> CmdResult {
    let incr = parse_i64(&c.args[3])?;
    let lim = limits(c);
    let args: &[Bytes] = c.args;
    let field = &args[2];
    let n = write(c, &args[1], true, "hincrby", |h| {
        let cur = match h.get(field) {
            None => 0,
            Some(v) => {
                parse_i64(v).map_err(|_| CmdError::from("ERR hash value is not an integer"))?
            }
        };
        let n = cur.checked_add(incr).ok_or(err::OVERFLOW)?;
        // Redis 7.4 keeps the field's TTL on HINCRBY (HASH_SET_KEEP_TTL).
        h.set_keep_ttl(field, itoa::Buffer::new().format(n).as_bytes(), lim);
        Ok((n, true))
    })?;
    c.out.int(n.unwrap_or(0));
    Ok(())
}

fn hincrbyfloat(c: &mut Ctx) -> CmdResult {
    let incr = longdouble::parse(&c.args[3]).ok_or(err::NOT_FLOAT)?;
    // `add` refuses infinities, so adding to zero tells whether incr is one.
    if longdouble::add(F80::ZERO, incr).is_none() {
        return Err("ERR value is NaN or Infinity".into());
    }
    let lim = limits(c);
    let args: &[Bytes] = c.args;
    let field = &args[2];
    let text = write(c, &args[1], true, "hincrbyfloat", |h| {
        let cur = match h.get(field) {
            None => F80::ZERO,
            Some(v) => longdouble::parse(v).ok_or("ERR hash value is not a float")?,
        };
        let sum =
            longdouble::add(cur, incr).ok_or("ERR increment would produce NaN or Infinity")?;
        let text = longdouble::to_human(sum);
        h.set_keep_ttl(field, text.as_bytes(), lim);
        Ok((text, true))
    })?;
    c.out.bulk(text.unwrap_or_default().as_bytes());
    Ok(())
}

// ---------------------------------------------------------------- getters

fn hget(c: &mut Ctx) -> CmdResult {
    match read(&mut c.store, &c.args[1])?.and_then(|h| h.get(&c.args[2])) {
        Some(v) => c.out.bulk(v),
        None => c.out.null(),
    }
    Ok(())
}

fn hmget(c: &mut Ctx) -> CmdResult {
    let h = read(&mut c.store, &c.args[1])?;
    let fields = &c.args[2..];
    c.out.array(fields.len());
    for f in fields {
        match h.and_then(|h| h.get(f)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        }
    }
    Ok(())
}

/// Which parts of each pair HGETALL / HKEYS / HVALS send.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    Both,
    Fields,
    Values,
}

fn reply_all(c: &mut Ctx, parts: Parts) -> CmdResult {
    let Some(h) = read(&mut c.store, &c.args[1])? else {
        match parts {
            Parts::Both => c.out.map(0),
            _ => c.out.array(0),
        }
        return Ok(());
    };
    let n = h.len();
    match parts {
        Parts::Both => c.out.map(n),
        _ => c.out.array(n),
    }
    for (f, v) in h.iter() {
        if parts != Parts::Values {
            c.out.bulk(f);
        }
        if parts != Parts::Fields {
            c.out.bulk(v);
        }
    }
    Ok(())
}

fn hgetall(c: &mut Ctx) -> CmdResult {
    reply_all(c, Parts::Both)
}

fn hkeys(c: &mut Ctx) -> CmdResult {
    reply_all(c, Parts::Fields)
}

fn hvals(c: &mut Ctx) -> CmdResult {
    reply_all(c, Parts::Values)
}

fn hexists(c: &mut Ctx) -> CmdResult {
    let found = read(&mut c.store, &c.args[1])?.is_some_and(|h| h.contains(&c.args[2]));
    c.out.int(i64::from(found));
    Ok(())
}

fn hlen(c: &mut Ctx) -> CmdResult {
    let n = read(&mut c.store, &c.args[1])?.map_or(0, HashValue::len);
    c.out.int(n as i64);
    Ok(())
}

fn hstrlen(c: &mut Ctx) -> CmdResult {
    let n = read(&mut c.store, &c.args[1])?
        .and_then(|h| h.get(&c.args[2]))
        .map_or(0, <[u8]>::len);
    c.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------- HRANDFIELD

fn hrandfield(c: &mut Ctx) -> CmdResult {
    if c.args.len() == 2 {
        let mut rng = rand::thread_rng();
        match read(&mut c.store, &c.args[1])?.and_then(|h| h.random(&mut rng)) {
            Some((f, _)) => c.out.bulk(f),
            None => c.out.null(),
        }
        return Ok(());
    }
    let count = parse_i64(&c.args[2])?;
    if count == i64::MIN {
        return Err(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )
        .into());
    }
    let withvalues = match c.args.len() {
        3 => false,
        4 if is(&c.args[3], "withvalues") => true,
        _ => return Err(err::SYNTAX.into()),
    };
    if withvalues && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err("ERR value is out of range".into());
    }
    let resp3 = c.out.resp3();
    let Some(h) = read(&mut c.store, &c.args[1])? else {
        c.out.array(0);
        return Ok(());
    };
    let resp = Shape { withvalues, resp3 };
    if count < 0 {
        // Picks with repetition, streamed: the count may be huge.
        let n = count.unsigned_abs() as usize;
        let mut rng = rand::thread_rng();
        resp.header(c.out, if h.is_empty() { 0 } else { n });
        for _ in 0..n {
            if let Some((f, v)) = h.random(&mut rng) {
                resp.pair(c.out, f, v);
            }
        }
        return Ok(());
    }
    let picks = pick_distinct(h, count as usize);
    resp.header(c.out, picks.len());
    for (f, v) in picks {
        resp.pair(c.out, f, v);
    }
    Ok(())
}

/// How HRANDFIELD replies: RESP2 flattens pairs, RESP3 sends each pair as a
/// 2-element array.
struct Shape {
    withvalues: bool,
    resp3: bool,
}

impl Shape {
    fn header(&self, out: &mut Reply, n: usize) {
        out.array(if self.withvalues && !self.resp3 {
            n * 2
        } else {
            n
        });
    }

    fn pair(&self, out: &mut Reply, f: &[u8], v: &[u8]) {
        if self.withvalues && self.resp3 {
            out.array(2);
        }
        out.bulk(f);
        if self.withvalues {
            out.bulk(v);
        }
    }
}

/// HRANDFIELD's distinct selection: the whole hash when it is no bigger
/// than `count`, in its own order, as Redis.
fn pick_distinct(h: &HashValue, count: usize) -> Vec<(&[u8], &[u8])> {
    let mut rng = rand::thread_rng();
    let size = h.len();
    if !h.is_compact() && count.saturating_mul(3) < size {
        // Few picks from a big table: draw until enough distinct fields,
        // without walking the whole table (Redis's CASE 4).
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match h.random(&mut rng) {
                Some((f, v)) if seen.insert(f) => out.push((f, v)),
                Some(_) => {}
                None => break,
            }
        }
        return out;
    }
    let mut all: Vec<(&[u8], &[u8])> = h.iter().collect();
    if count >= all.len() {
        return all;
    }
    // Keep a random `count` of them, in the hash's order (Redis does so for
    // listpacks; for hashtables any order is as good).
    let mut keep = vec![false; all.len()];
    for i in rand::seq::index::sample(&mut rng, all.len(), count) {
        keep[i] = true;
    }
    let mut i = 0;
    all.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    all
}

// ---------------------------------------------------------------- HSCAN

struct ScanOpts<'a> {
    count: usize,
    pattern: Option<&'a [u8]>,
    novalues: bool,
}

fn parse_scan_opts(args: &[Bytes]) -> Result<ScanOpts<'_>, CmdError> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
        novalues: false,
    };
    let mut i = 0;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is(&args[i], "count") && has_value {
            let n = parse_i64(&args[i + 1])?;
            if n < 1 {
                return Err(err::SYNTAX.into());
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else if is(&args[i], "match") && has_value {
            o.pattern = Some(&args[i + 1][..]).filter(|p| *p != b"*");
            i += 2;
        } else if is(&args[i], "novalues") {
            o.novalues = true;
            i += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    Ok(o)
}

fn hscan(c: &mut Ctx) -> CmdResult {
    let cursor = parse_cursor(&c.args[2]).ok_or("ERR invalid cursor")?;
    let Some(h) = read(&mut c.store, &c.args[1])? else {
        c.out.array(2);
        c.out.bulk(b"0");
        c.out.array(0);
        return Ok(());
    };
    let o = parse_scan_opts(&c.args[3..])?;
    // Dict::scan lends each item only for the callback, so copy them out.
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut cursor = cursor;
    // As Redis: at most 10 * COUNT bucket steps, stop once COUNT matched.
    let mut steps = o.count.saturating_mul(10);
    loop {
        cursor = h.scan(cursor, |f, v| {
            if o.pattern.is_none_or(|p| glob_match(p, f, false)) {
                found.push((f.to_vec(), v.to_vec()));
            }
        });
        steps -= 1;
        if cursor == 0 || steps == 0 || found.len() >= o.count {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(cursor).as_bytes());
    c.out.array(if o.novalues {
        found.len()
    } else {
        found.len() * 2
    });
    for (f, v) in found {
        c.out.bulk(&f);
        if !o.novalues {
            c.out.bulk(&v);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- field TTLs

/// The latest field deadline Redis 7.4 accepts (ms): 48-bit times with two
/// bits reserved (HFE_MAX_ABS_TIME_MSEC).
const MAX_FIELD_DEADLINE: i64 = ((1 << 48) - 1) >> 2;

/// HEXPIRE's per-field replies.
const NO_FIELD: i64 = -2;
const NO_TTL: i64 = -1;

/// Whether `key` holds a hash (WRONGTYPE if it holds something else):
/// checked first, as Redis, so a wrong type wins over argument errors.
fn hash_exists(c: &mut Ctx, key: &[u8]) -> Result<bool, CmdError> {
    match c.store.entry(key) {
        None => Ok(false),
        Some(e) if matches!(e.value, Value::Hash(_)) => Ok(true),
        Some(_) => Err(err::WRONGTYPE.into()),
    }
}

/// Parses `FIELDS numfields field...` with FIELDS at `at`: the fields.
/// `count_error` is the text for a numfields that is not a positive
/// integer (Redis words it differently for HEXPIRE and the readers).
fn parse_fields<'a>(
    args: &'a [Bytes],
    at: usize,
    count_error: &'static str,
) -> Result<&'a [Bytes], CmdError> {
    if !args.get(at).is_some_and(|a| is(a, "fields")) {
        return Err("ERR Mandatory argument FIELDS is missing or not at the right position".into());
    }
    let n = args
        .get(at + 1)
        .and_then(|a| parse_i64(a).ok())
        .filter(|n| *n >= 1)
        .ok_or(count_error)?;
    let fields = &args[at + 2..];
    if usize::try_from(n).ok() != Some(fields.len()) {
        return Err("ERR The `numfields` parameter must match the number of arguments".into());
    }
    Ok(fields)
}

/// NX | XX | GT | LT of HEXPIRE & co.
#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

impl Cond {
    fn parse(arg: &[u8]) -> Option<Cond> {
        [
            ("nx", Cond::Nx),
            ("xx", Cond::Xx),
            ("gt", Cond::Gt),
            ("lt", Cond::Lt),
        ]
        .into_iter()
        .find(|(name, _)| is(arg, name))
        .map(|(_, c)| c)
    }

    /// Whether a field whose deadline is `prev` may get `when`. A field
    /// without TTL counts as never expiring: GT fails, LT passes.
    fn allows(self, prev: Option<u64>, when: u64) -> bool {
        match (self, prev) {
            (Cond::Always, _) => true,
            (Cond::Nx, p) => p.is_none(),
            (Cond::Xx, p) => p.is_some(),
            (Cond::Gt, None) => false,
            (Cond::Gt, Some(p)) => when > p,
            (Cond::Lt, None) => true,
            (Cond::Lt, Some(p)) => when < p,
        }
    }
}

fn hexpire(c: &mut Ctx) -> CmdResult {
    hexpire_generic(c, 1000, true)
}

fn hpexpire(c: &mut Ctx) -> CmdResult {
    hexpire_generic(c, 1, true)
}

fn hexpireat(c: &mut Ctx) -> CmdResult {
    hexpire_generic(c, 1000, false)
}

fn hpexpireat(c: &mut Ctx) -> CmdResult {
    hexpire_generic(c, 1, false)
}

/// The absolute deadline (ms) HEXPIRE & co. were given, checked as Redis
/// 7.4's hexpireGenericCommand.
fn parse_deadline(c: &Ctx, unit: i64, relative: bool) -> Result<u64, CmdError> {
    let t = parse_i64(&c.args[2])?;
    if t < 0 {
        return Err("ERR invalid expire time, must be >= 0".into());
    }
    let invalid = || {
        CmdError::from(format!(
            "ERR invalid expire time in '{}' command",
            c.spec.name
        ))
    };
    if t > MAX_FIELD_DEADLINE / unit {
        return Err(invalid());
    }
    let base = if relative { c.store.now as i64 } else { 0 };
    let ms = t * unit;
    if ms > MAX_FIELD_DEADLINE - base {
        return Err(invalid());
    }
    Ok((ms + base) as u64)
}

fn hexpire_generic(c: &mut Ctx, unit: i64, relative: bool) -> CmdResult {
    let exists = hash_exists(c, &c.args[1])?;
    let when = parse_deadline(c, unit, relative)?;
    let cond = Cond::parse(&c.args[3]);
    let at = if cond.is_some() { 4 } else { 3 };
    let cond = cond.unwrap_or(Cond::Always);
    let args: &[Bytes] = c.args;
    let fields = parse_fields(
        args,
        at,
        "ERR Parameter `numFields` should be greater than 0",
    )?;
    let key = &args[1];
    if !exists {
        reply_all_same(c.out, fields.len(), NO_FIELD);
        return Ok(());
    }
    let now = c.store.now;
    // A deadline already passed deletes the fields instead.
    let event = if when <= now { "hexpired" } else { "hexpire" };
    let codes = write(c, key, false, event, |h| {
        let mut changed = false;
        let codes: Vec<i64> = fields
            .iter()
            .map(|f| {
                if !h.contains(f) {
                    return NO_FIELD;
                }
                if !cond.allows(h.field_ttl(f), when) {
                    return 0;
                }
                changed = true;
                if when <= now {
                    // A deadline already passed deletes the field.
                    h.remove(f);
                    2
                } else {
                    h.set_field_ttl(f, when);
                    1
                }
            })
            .collect();
        Ok((codes, changed))
    })?
    .unwrap_or_default();
    if codes.contains(&1) {
        c.store.index_hash_ttls(key);
    }
    c.out.array(codes.len());
    for code in codes {
        c.out.int(code);
    }
    Ok(())
}

fn reply_all_same(out: &mut Reply, n: usize, code: i64) {
    out.array(n);
    for _ in 0..n {
        out.int(code);
    }
}

/// What HTTL & co. report for a field's deadline.
#[derive(Clone, Copy)]
enum TtlView {
    Secs,
    Millis,
    AtSecs,
    AtMillis,
}

fn httl(c: &mut Ctx) -> CmdResult {
    httl_generic(c, TtlView::Secs)
}

fn hpttl(c: &mut Ctx) -> CmdResult {
    httl_generic(c, TtlView::Millis)
}

fn hexpiretime(c: &mut Ctx) -> CmdResult {
    httl_generic(c, TtlView::AtSecs)
}

fn hpexpiretime(c: &mut Ctx) -> CmdResult {
    httl_generic(c, TtlView::AtMillis)
}

const READER_COUNT_ERROR: &str = "ERR Number of fields must be a positive integer";

fn httl_generic(c: &mut Ctx, view: TtlView) -> CmdResult {
    let now = c.store.now;
    // The type is checked before the arguments, as Redis.
    let h = read(&mut c.store, &c.args[1])?;
    let fields = parse_fields(c.args, 2, READER_COUNT_ERROR)?;
    let Some(h) = h else {
        reply_all_same(c.out, fields.len(), NO_FIELD);
        return Ok(());
    };
    c.out.array(fields.len());
    for f in fields {
        let code = match (h.contains(f), h.field_ttl(f)) {
            (false, _) => NO_FIELD,
            (true, None) => NO_TTL,
            // Seconds round up, as Redis: a field with 1 ms left has 1 s.
            (true, Some(t)) => match view {
                // Due fields were deleted on lookup: t > now.
                TtlView::Secs => t.saturating_sub(now).div_ceil(1000) as i64,
                TtlView::Millis => t.saturating_sub(now) as i64,
                TtlView::AtSecs => t.div_ceil(1000) as i64,
                TtlView::AtMillis => t as i64,
            },
        };
        c.out.int(code);
    }
    Ok(())
}

fn hpersist(c: &mut Ctx) -> CmdResult {
    let exists = hash_exists(c, &c.args[1])?;
    let args: &[Bytes] = c.args;
    let fields = parse_fields(args, 2, READER_COUNT_ERROR)?;
    if !exists {
        reply_all_same(c.out, fields.len(), NO_FIELD);
        return Ok(());
    }
    let codes = write(c, &args[1], false, "hpersist", |h| {
        let codes: Vec<i64> = fields
            .iter()
            .map(|f| match (h.contains(f), h.persist_field(f)) {
                (false, _) => NO_FIELD,
                (true, false) => NO_TTL,
                (true, true) => 1,
            })
            .collect();
        let changed = codes.contains(&1);
        Ok((codes, changed))
    })?
    .unwrap_or_default();
    c.out.array(codes.len());
    for code in codes {
        c.out.int(code);
    }
    Ok(())
}
