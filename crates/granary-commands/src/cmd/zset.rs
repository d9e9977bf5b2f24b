//! Sorted-set commands (Redis's t_zset.c).

use crate::blocking::{self, may_take, parse_timeout, served, Waiter};
use crate::cmd::keys::parse_cursor;
use crate::ctx::{err, Action, CmdError, CmdResult, Ctx, Store};
use crate::glob::glob_match;
use crate::notify::{class, notify};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64, parse_i64_opt};
use bytes::Bytes;
use granary_keyspace::types::zset::{cmp_pair, Limits, ZSetValue};
use granary_keyspace::Value;
use granary_protocol::Reply;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

const G: &str = "sorted_set";
const K1: Keys = Keys::Range(1, 1, 1);
const K12: Keys = Keys::Range(1, 2, 1);
const R_FAST: &[&str] = &["@read", "@sortedset", "@fast"];
const R_SLOW: &[&str] = &["@read", "@sortedset", "@slow"];
const W_FAST: &[&str] = &["@write", "@sortedset", "@fast"];
const W_SLOW: &[&str] = &["@write", "@sortedset", "@slow"];
const B_FAST: &[&str] = &["@write", "@sortedset", "@fast", "@blocking"];
const B_SLOW: &[&str] = &["@write", "@sortedset", "@slow", "@blocking"];

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const BAD_RANGE: &str = "ERR min or max is not a float";
const BAD_LEX: &str = "ERR min or max not valid string range item";
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("zadd", -4, WRITE | DENYOOM | FAST, K1, zadd).group(G, "1.2.0").acl(W_FAST).doc("Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    Spec::new("zincrby", 4, WRITE | DENYOOM | FAST, K1, zincrby).group(G, "1.2.0").acl(W_FAST).doc("Increments the score of a member in a sorted set."),
    Spec::new("zrem", -3, WRITE | FAST, K1, zrem).group(G, "1.2.0").acl(W_FAST).doc("Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    Spec::new("zcard", 2, READONLY | FAST, K1, zcard).group(G, "1.2.0").acl(R_FAST).doc("Returns the number of members in a sorted set."),
    Spec::new("zscore", 3, READONLY | FAST, K1, zscore).group(G, "1.2.0").acl(R_FAST).doc("Returns the score of a member in a sorted set."),
    Spec::new("zmscore", -3, READONLY | FAST, K1, zmscore).group(G, "6.2.0").acl(R_FAST).doc("Returns the score of one or more members in a sorted set."),
    Spec::new("zcount", 4, READONLY | FAST, K1, zcount).group(G, "2.0.0").acl(R_FAST).doc("Returns the count of members in a sorted set that have scores within a range."),
    Spec::new("zlexcount", 4, READONLY | FAST, K1, zlexcount).group(G, "2.8.9").acl(R_FAST).doc("Returns the number of members in a sorted set within a lexicographical range."),
    Spec::new("zrank", -3, READONLY | FAST, K1, zrank).group(G, "2.0.0").acl(R_FAST).doc("Returns the index of a member in a sorted set ordered by ascending scores."),
    Spec::new("zrevrank", -3, READONLY | FAST, K1, zrevrank).group(G, "2.0.0").acl(R_FAST).doc("Returns the index of a member in a sorted set ordered by descending scores."),
    Spec::new("zrange", -4, READONLY, K1, zrange).group(G, "1.2.0").acl(R_SLOW).doc("Returns members in a sorted set within a range of indexes."),
    Spec::new("zrevrange", -4, READONLY, K1, zrevrange).group(G, "1.2.0").acl(R_SLOW).doc("Returns members in a sorted set within a range of indexes in reverse order."),
    Spec::new("zrangebyscore", -4, READONLY, K1, zrangebyscore).group(G, "1.0.5").acl(R_SLOW).doc("Returns members in a sorted set within a range of scores."),
    Spec::new("zrevrangebyscore", -4, READONLY, K1, zrevrangebyscore).group(G, "2.2.0").acl(R_SLOW).doc("Returns members in a sorted set within a range of scores in reverse order."),
    Spec::new("zrangebylex", -4, READONLY, K1, zrangebylex).group(G, "2.8.9").acl(R_SLOW).doc("Returns members in a sorted set within a lexicographical range."),
    Spec::new("zrevrangebylex", -4, READONLY, K1, zrevrangebylex).group(G, "2.8.9").acl(R_SLOW).doc("Returns members in a sorted set within a lexicographical range in reverse order."),
    Spec::new("zrangestore", -5, WRITE | DENYOOM, K12, zrangestore).group(G, "6.2.0").acl(W_SLOW).doc("Stores a range of members from sorted set in a key."),
    Spec::new("zremrangebyrank", 4, WRITE, K1, zremrangebyrank).group(G, "2.0.0").acl(W_SLOW).doc("Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    Spec::new("zremrangebyscore", 4, WRITE, K1, zremrangebyscore).group(G, "1.2.0").acl(W_SLOW).doc("Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    Spec::new("zremrangebylex", 4, WRITE, K1, zremrangebylex).group(G, "2.8.9").acl(W_SLOW).doc("Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    Spec::new("zpopmin", -2, WRITE | FAST, K1, zpopmin).group(G, "5.0.0").acl(W_FAST).doc("Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    Spec::new("zpopmax", -2, WRITE | FAST, K1, zpopmax).group(G, "5.0.0").acl(W_FAST).doc("Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    Spec::new("zscan", -3, READONLY, K1, zscan).group(G, "2.8.0").acl(R_SLOW).doc("Iterates over members and scores of a sorted set."),
    Spec::new("zunion", -3, READONLY, Keys::Custom(numkeys_at_1), zunion).group(G, "6.2.0").acl(R_SLOW).doc("Returns the union of multiple sorted sets."),
    Spec::new("zinter", -3, READONLY, Keys::Custom(numkeys_at_1), zinter).group(G, "6.2.0").acl(R_SLOW).doc("Returns the intersect of multiple sorted sets."),
    Spec::new("zdiff", -3, READONLY, Keys::Custom(numkeys_at_1), zdiff).group(G, "6.2.0").acl(R_SLOW).doc("Returns the difference between multiple sorted sets."),
    Spec::new("zunionstore", -4, WRITE | DENYOOM, Keys::Custom(dst_numkeys_at_2), zunionstore).group(G, "2.0.0").acl(W_SLOW).doc("Stores the union of multiple sorted sets in a key."),
    Spec::new("zinterstore", -4, WRITE | DENYOOM, Keys::Custom(dst_numkeys_at_2), zinterstore).group(G, "2.0.0").acl(W_SLOW).doc("Stores the intersect of multiple sorted sets in a key."),
    Spec::new("zdiffstore", -4, WRITE | DENYOOM, Keys::Custom(dst_numkeys_at_2), zdiffstore).group(G, "6.2.0").acl(W_SLOW).doc("Stores the difference of multiple sorted sets in a key."),
    Spec::new("zintercard", -3, READONLY, Keys::Custom(numkeys_at_1), zintercard).group(G, "7.0.0").acl(R_SLOW).doc("Returns the number of members of the intersect of multiple sorted sets."),
    Spec::new("zrandmember", -2, READONLY, K1, zrandmember).group(G, "6.2.0").acl(R_SLOW).doc("Returns one or more random members from a sorted set."),
    Spec::new("bzpopmin", -3, WRITE | NOSCRIPT | FAST | BLOCKING, Keys::Range(1, -2, 1), bzpopmin).group(G, "5.0.0").acl(B_FAST).doc("Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    Spec::new("bzpopmax", -3, WRITE | NOSCRIPT | FAST | BLOCKING, Keys::Range(1, -2, 1), bzpopmax).group(G, "5.0.0").acl(B_FAST).doc("Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    Spec::new("bzmpop", -5, WRITE | BLOCKING, Keys::Custom(numkeys_at_2), bzmpop).group(G, "7.0.0").acl(B_SLOW).doc("Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    Spec::new("zmpop", -4, WRITE, Keys::Custom(numkeys_at_1), zmpop).group(G, "7.0.0").acl(W_SLOW).doc("Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
];

// ------------------------------------------------------------ key helpers

/// Keys of `CMD numkeys key... ...` (numkeys at 1). A bad numkeys names
/// no keys: the handler rejects it before touching any key.
fn numkeys_at_1(args: &[Bytes]) -> Vec<usize> {
    numkeys_keys(args, 1)
}

/// Keys of `CMD dst numkeys key... ...`.
/// Keys of BZMPOP: `timeout numkeys key...`.
fn numkeys_at_2(args: &[Bytes]) -> Vec<usize> {
    numkeys_keys(args, 2)
}

fn dst_numkeys_at_2(args: &[Bytes]) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_keys(args, 2));
    v
}

fn numkeys_keys(args: &[Bytes], at: usize) -> Vec<usize> {
    let n = args.get(at).and_then(|a| parse_i64_opt(a)).unwrap_or(0);
    if n < 1 {
        return vec![];
    }
    let first = at + 1;
    let last = first.saturating_add(n as usize).min(args.len());
    (first..last).collect()
}

pub(crate) fn limits(c: &Ctx) -> Limits {
    let h = &c.server.config.hot;
    Limits {
        entries: h.zset_max_listpack_entries.load(Relaxed).max(0) as usize,
        value: h.zset_max_listpack_value.load(Relaxed).max(0) as usize,
    }
}

/// The sorted set at `key` for a read (counts hits/misses), or WRONGTYPE.
fn zread<'s>(store: &'s mut Store, key: &[u8]) -> Result<Option<&'s mut ZSetValue>, CmdError> {
    match store.read(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

/// The sorted set at `key` for a write, or WRONGTYPE.
fn zwrite<'s>(store: &'s mut Store, key: &[u8]) -> Result<Option<&'s mut ZSetValue>, CmdError> {
    match store.entry(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

/// After a write that changed `key`, which now holds `len` members:
/// deletes it if it became empty (as Redis does), else reports the
/// modification and wakes clients blocked on it (BZPOPMIN & co.).
/// `event` is the keyspace notification (then "del" if emptied).
pub(crate) fn finish_write(store: &mut Store, key: &[u8], len: usize, event: &str) {
    if len == 0 {
        store.remove(key);
    } else {
        let db = store.db;
        store.modified(db, key);
        blocking::signal(db, key, len);
    }
    notify(store.server, class::ZSET, event, key, store.db);
    if len == 0 {
        notify(store.server, class::GENERIC, "del", key, store.db);
    }
}

/// Stores `items` (sorted) at `dst`, replacing whatever was there, or
/// deletes `dst` when there are none (ZRANGESTORE, Z*STORE), notifying
/// `event` (or "del" if an old `dst` was deleted).
pub(crate) fn store_result(
    store: &mut Store,
    dst: &[u8],
    items: &[(Vec<u8>, f64)],
    lim: Limits,
    event: &str,
) {
    if items.is_empty() {
        if store.remove(dst).is_some() {
            notify(store.server, class::GENERIC, "del", dst, store.db);
        }
        return;
    }
    let maxlen = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut z = ZSetValue::default();
    if !lim.fits(items.len(), maxlen) {
        z = ZSetValue::with_hint(usize::MAX, usize::MAX, lim);
    }
    for (m, s) in items {
        z.insert(m, *s, lim);
    }
    store_zset(store, dst, z, event);
}

/// Stores ZRANGESTORE's `items` (in the order the range emits them) at
/// `dst` as Redis fills it: created for `hint` members (the rank range's
/// length; 0 for score and lex ranges), converted at the first member that
/// does not fit. Members added while it was a listpack lost a negative
/// zero's sign there, as in Redis.
fn store_range(store: &mut Store, dst: &[u8], items: &[(Vec<u8>, f64)], hint: usize, lim: Limits) {
    if items.is_empty() {
        return store_result(store, dst, items, lim, "zrangestore");
    }
    let mut z = ZSetValue::with_hint(hint, 0, lim);
    for (m, s) in items {
        z.insert(m, *s, lim);
    }
    store_zset(store, dst, z, "zrangestore");
}

/// Stores the non-empty `z` at `dst`, replacing whatever was there.
fn store_zset(store: &mut Store, dst: &[u8], z: ZSetValue, event: &str) {
    let len = z.len();
    store.set(dst, Value::ZSet(Box::new(z)), None);
    blocking::signal(store.db, dst, len);
    notify(store.server, class::ZSET, event, dst, store.db);
}

// ------------------------------------------------------------ parsing

/// A score argument as Redis's getDoubleFromObject reads it: strtod over
/// the whole argument, no leading space, no overflow, not NaN.
pub(crate) fn parse_score(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.as_bytes()[0].is_ascii_whitespace() || s.as_bytes()[0] == 0x0b {
        return None;
    }
    let v = strtod_all(s)?;
    let lower = s.to_ascii_lowercase();
    if v.is_infinite() && !lower.contains("inf") {
        return None; // ERANGE overflow
    }
    let mantissa = lower.split('e').next().unwrap_or("");
    if v == 0.0 && !lower.contains("0x") && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return None; // ERANGE underflow
    }
    Some(v)
}

/// strtod that must consume all of `s` (leading whitespace allowed, as
/// strtod skips it; an empty string reads as 0, as in zslParseRange).
fn strtod_all(s: &str) -> Option<f64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if t.is_empty() {
        return if s.is_empty() { Some(0.0) } else { None };
    }
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("nan") || body.contains('_') {
        return None;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        let v = parse_hex_float(hex)?;
        return Some(if lower.starts_with('-') { -v } else { v });
    }
    let v: f64 = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if !lower.bytes().all(|b| b"0123456789.eE+-".contains(&b)) {
                return None;
            }
            lower.parse().ok()?
        }
    };
    (!v.is_nan()).then_some(v)
}

/// The part of a C99 hex float after "0x": digits, an optional fraction
/// and an optional binary exponent ("1.8p3").
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for d in int.chars() {
        v = v * 16.0 + d.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for d in frac.chars() {
        v += d.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        let one = |a: &[u8]| -> Option<(f64, bool)> {
            let s = std::str::from_utf8(a).ok()?;
            match s.strip_prefix('(') {
                Some(rest) => Some((strtod_all(rest)?, true)),
                None => Some((strtod_all(s)?, false)),
            }
        };
        let ((min, minex), (max, maxex)) = match (one(min), one(max)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(BAD_RANGE.into()),
        };
        Ok(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }

    fn below_min(&self, s: f64) -> bool {
        if self.minex {
            s <= self.min
        } else {
            s < self.min
        }
    }

    fn within_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    /// Ascending index range [start, end) of the members in range.
    fn span(&self, z: &ZSetValue) -> (usize, usize) {
        let start = z.count_before(&|s, _| self.below_min(s));
        let end = z.count_before(&|s, _| self.within_max(s));
        (start, end.max(start))
    }
}

enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        let one = |a: &[u8]| -> Option<LexBound> {
            match a.first()? {
                b'+' if a.len() == 1 => Some(LexBound::Max),
                b'-' if a.len() == 1 => Some(LexBound::Min),
                b'(' => Some(LexBound::Excl(a[1..].to_vec())),
                b'[' => Some(LexBound::Incl(a[1..].to_vec())),
                _ => None,
            }
        };
        match (one(min), one(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(BAD_LEX.into()),
        }
    }

    fn below_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m < b.as_slice(),
            LexBound::Excl(b) => m <= b.as_slice(),
        }
    }

    fn within_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= b.as_slice(),
            LexBound::Excl(b) => m < b.as_slice(),
        }
    }

    /// The index span [start, end) of members in range, walked from the
    /// head (or, with `rev`, from the tail).
    ///
    /// Redis leaves lex ranges over members of different scores
    /// unspecified, but its listpack answer is deterministic and clients
    /// see it: find the first member past the bound at the walk's start,
    /// then take members while they stay within the other bound. A
    /// listpack-sized set walks the same way; a large one (a skiplist in
    /// Redis, whose answer then depends on random node levels) is
    /// searched in O(log n). Both agree whenever the scores are equal.
    fn span(&self, z: &ZSetValue, rev: bool) -> (usize, usize) {
        if z.is_skiplist() {
            let start = z.count_before(&|_, m| self.below_min(m));
            let end = z.count_before(&|_, m| self.within_max(m));
            return (start, end.max(start));
        }
        let members: Vec<&[u8]> = z.iter_from(0, false).map(|(m, _)| m).collect();
        let (Some(first), Some(last)) = (members.first(), members.last()) else {
            return (0, 0);
        };
        if self.below_min(last) || !self.within_max(first) {
            return (0, 0);
        }
        if rev {
            let Some(end) = members.iter().rposition(|m| self.within_max(m)) else {
                return (0, 0);
            };
            let start = members[..=end]
                .iter()
                .rposition(|m| self.below_min(m))
                .map_or(0, |i| i + 1);
            (start, (end + 1).max(start))
        } else {
            let Some(start) = members.iter().position(|m| !self.below_min(m)) else {
                return (0, 0);
            };
            let end = members[start..]
                .iter()
                .position(|m| !self.within_max(m))
                .map_or(members.len(), |i| start + i);
            (start, end)
        }
    }
}

/// Redis's rank normalisation: negative counts from the end; returns the
/// inclusive [start, end] clamped to the set, or None when empty.
fn rank_span(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as usize, end as usize))
}

// ------------------------------------------------------------ replies

/// Writes (member, score) pairs as Redis's range replies do: flat in
/// RESP2 with scores, [member, score] pairs in RESP3.
fn reply_items<'a>(
    out: &mut Reply,
    n: usize,
    items: impl Iterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let resp3 = out.resp3();
    out.array(if withscores && !resp3 { n * 2 } else { n });
    for (m, s) in items.take(n) {
        if withscores && resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            reply_double(out, s);
        }
    }
}

/// A score reply. Redis prints negative zero as "-0" (a skiplist keeps it;
/// the listpack stores it as 0).
fn reply_double(out: &mut Reply, d: f64) {
    if d == 0.0 && d.is_sign_negative() {
        if out.resp3() {
            out.raw(b",-0\r\n");
        } else {
            out.bulk(b"-0");
        }
    } else {
        out.double(d);
    }
}

fn fmt_score(d: f64) -> String {
    if d == 0.0 && d.is_sign_negative() {
        "-0".into()
    } else {
        granary_protocol::format_double(d)
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Vec<u8>, f64)> {
    it.map(|(m, s)| (m.to_vec(), s)).collect()
}

// ------------------------------------------------------------ ZADD & co

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

fn zadd(c: &mut Ctx) -> CmdResult {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < c.args.len() {
        let a = &c.args[i];
        if is(a, "nx") {
            f.nx = true;
        } else if is(a, "xx") {
            f.xx = true;
        } else if is(a, "gt") {
            f.gt = true;
        } else if is(a, "lt") {
            f.lt = true;
        } else if is(a, "ch") {
            f.ch = true;
        } else if is(a, "incr") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    zadd_generic(c, f, i)
}

fn zincrby(c: &mut Ctx) -> CmdResult {
    let f = AddFlags {
        incr: true,
        ..Default::default()
    };
    zadd_generic(c, f, 2)
}

fn zadd_generic(c: &mut Ctx, f: AddFlags, scoreidx: usize) -> CmdResult {
    let args = c.args;
    let rest = &args[scoreidx..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(err::SYNTAX.into());
    }
    if f.nx && f.xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if ((f.gt || f.lt) && f.nx) || (f.gt && f.lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    if f.incr && rest.len() > 2 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        let s = parse_score(&p[0]).ok_or(err::NOT_FLOAT)?;
        pairs.push((s, &p[1]));
    }
    let key = &args[1];
    let lim = limits(c);
    if zwrite(&mut c.store, key)?.is_none() {
        if f.xx {
            if f.incr {
                c.out.null();
            } else {
                c.out.int(0);
            }
            return Ok(());
        }
        let maxlen = pairs.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        let z = ZSetValue::with_hint(pairs.len(), maxlen, lim);
        c.store.set(key, Value::ZSet(Box::new(z)), None);
    }
    let Some(z) = zwrite(&mut c.store, key)? else {
        return Err(err::NO_SUCH_KEY.into());
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0);
    let mut newscore = 0.0;
    for (score, member) in pairs {
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                let mut s = score;
                if f.incr {
                    s += cur;
                    if s.is_nan() {
                        return Err(NAN_SCORE.into());
                    }
                }
                if (f.lt && s >= cur) || (f.gt && s <= cur) {
                    continue;
                }
                newscore = s;
                processed += 1;
                if s != cur {
                    z.insert(member, s, lim);
                    updated += 1;
                }
            }
            None if !f.xx => {
                z.insert(member, score, lim);
                newscore = score;
                added += 1;
                processed += 1;
            }
            None => {}
        }
    }
    let len = z.len();
    if added + updated > 0 || len == 0 {
        let event = if f.incr { "zincr" } else { "zadd" };
        finish_write(&mut c.store, key, len, event);
    }
    if f.incr {
        if processed > 0 {
            reply_double(c.out, newscore);
        } else {
            c.out.null();
        }
    } else {
        c.out.int(if f.ch { added + updated } else { added });
    }
    Ok(())
}

fn zrem(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let key = &args[1];
    let Some(z) = zwrite(&mut c.store, key)? else {
        c.out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &args[2..] {
        if z.remove(m).is_some() {
            n += 1;
        }
    }
    let len = z.len();
    if n > 0 {
        finish_write(&mut c.store, key, len, "zrem");
    }
    c.out.int(n);
    Ok(())
}

fn zcard(c: &mut Ctx) -> CmdResult {
    let n = zread(&mut c.store, &c.args[1])?.map_or(0, |z| z.len());
    c.out.int(n as i64);
    Ok(())
}

fn zscore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    match zread(&mut c.store, &args[1])?.and_then(|z| z.score(&args[2])) {
        Some(s) => reply_double(c.out, s),
        None => c.out.null(),
    }
    Ok(())
}

fn zmscore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let z = zread(&mut c.store, &args[1])?;
    c.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            Some(s) => reply_double(c.out, s),
            None => c.out.null(),
        }
    }
    Ok(())
}

fn zcount(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let range = ScoreRange::parse(&args[2], &args[3])?;
    let n = zread(&mut c.store, &args[1])?.map_or(0, |z| {
        let (a, b) = range.span(z);
        b - a
    });
    c.out.int(n as i64);
    Ok(())
}

fn zlexcount(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let range = LexRange::parse(&args[2], &args[3])?;
    let n = zread(&mut c.store, &args[1])?.map_or(0, |z| {
        let (a, b) = range.span(z, false);
        b - a
    });
    c.out.int(n as i64);
    Ok(())
}

fn zrank(c: &mut Ctx) -> CmdResult {
    rank_generic(c, false)
}

fn zrevrank(c: &mut Ctx) -> CmdResult {
    rank_generic(c, true)
}

fn rank_generic(c: &mut Ctx, rev: bool) -> CmdResult {
    let args = c.args;
    if args.len() > 4 {
        return Err(c.arity_error());
    }
    let withscore = match args.get(3) {
        None => false,
        Some(a) if is(a, "withscore") => true,
        Some(_) => return Err(err::SYNTAX.into()),
    };
    let found = zread(&mut c.store, &args[1])?.and_then(|z| {
        let len = z.len();
        z.rank(&args[2])
            .map(|(r, s)| (if rev { len - 1 - r } else { r }, s))
    });
    match found {
        Some((r, s)) => {
            if withscore {
                c.out.array(2);
            }
            c.out.int(r as i64);
            if withscore {
                reply_double(c.out, s);
            }
        }
        None if withscore => c.out.null_array(),
        None => c.out.null(),
    }
    Ok(())
}

// ------------------------------------------------------------ ZRANGE family

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Rank,
    Score,
    Lex,
}

/// Which members a range selects: `count` members from index `from`
/// counted in the walking direction.
struct Selection {
    from: usize,
    count: usize,
    rev: bool,
}

enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

impl Range {
    fn select(&self, z: &ZSetValue, rev: bool, offset: i64, limit: i64) -> Selection {
        let len = z.len();
        let empty = Selection {
            from: 0,
            count: 0,
            rev,
        };
        let (start, end) = match self {
            Range::Rank(a, b) => {
                return match rank_span(*a, *b, len) {
                    Some((s, e)) => Selection {
                        from: s,
                        count: e - s + 1,
                        rev,
                    },
                    None => empty,
                };
            }
            Range::Score(r) => r.span(z),
            Range::Lex(r) => r.span(z, rev),
        };
        // A negative offset skips everything in Redis (its loop counts down forever).
        if offset < 0 || (offset as u64) >= (end - start) as u64 {
            return empty;
        }
        let offset = offset as usize;
        let avail = end - start - offset;
        let count = if limit < 0 {
            avail
        } else {
            avail.min(limit as usize)
        };
        let from = if rev {
            len - end + offset
        } else {
            start + offset
        };
        Selection { from, count, rev }
    }
}

fn zrange(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, None, None)
}

fn zrevrange(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, Some(RangeType::Rank), Some(true))
}

fn zrangebyscore(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, Some(RangeType::Score), Some(false))
}

fn zrevrangebyscore(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, Some(RangeType::Score), Some(true))
}

fn zrangebylex(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, Some(RangeType::Lex), Some(false))
}

fn zrevrangebylex(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 1, false, Some(RangeType::Lex), Some(true))
}

fn zrangestore(c: &mut Ctx) -> CmdResult {
    zrange_generic(c, 2, true, None, None)
}

/// Redis's zrangeGenericCommand: `argc_start` is the source key's index;
/// fixed range type/direction for the legacy commands.
fn zrange_generic(
    c: &mut Ctx,
    argc_start: usize,
    store: bool,
    fixed_type: Option<RangeType>,
    fixed_rev: Option<bool>,
) -> CmdResult {
    let args = c.args;
    let (mut rtype, mut rev) = (fixed_type, fixed_rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = argc_start + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = parse_i64(&args[j + 1])?;
            limit = parse_i64(&args[j + 2])?;
            j += 2;
        } else if rev.is_none() && is(a, "rev") {
            rev = Some(true);
        } else if fixed_type.is_none() && rtype.is_none() && is(a, "bylex") {
            rtype = Some(RangeType::Lex);
        } else if fixed_type.is_none() && rtype.is_none() && is(a, "byscore") {
            rtype = Some(RangeType::Score);
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    let rtype = rtype.unwrap_or(RangeType::Rank);
    if limit != -1 && rtype == RangeType::Rank {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    if withscores && rtype == RangeType::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    let (mut lo, mut hi) = (&args[argc_start + 1], &args[argc_start + 2]);
    if rev && rtype != RangeType::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let range = match rtype {
        RangeType::Rank => Range::Rank(parse_i64(lo)?, parse_i64(hi)?),
        RangeType::Score => Range::Score(ScoreRange::parse(lo, hi)?),
        RangeType::Lex => Range::Lex(LexRange::parse(lo, hi)?),
    };
    let src = &args[argc_start];
    if store {
        let items = match zread(&mut c.store, src)? {
            None => Vec::new(),
            Some(z) => {
                let sel = range.select(z, rev, offset, limit);
                owned(z.iter_from(sel.from, sel.rev).take(sel.count))
            }
        };
        let lim = limits(c);
        let hint = if rtype == RangeType::Rank {
            items.len()
        } else {
            0
        };
        store_range(&mut c.store, &args[1], &items, hint, lim);
        c.out.int(items.len() as i64);
        return Ok(());
    }
    match zread(&mut c.store, src)? {
        None => c.out.array(0),
        Some(z) => {
            let sel = range.select(z, rev, offset, limit);
            reply_items(c.out, sel.count, z.iter_from(sel.from, sel.rev), withscores);
        }
    }
    Ok(())
}

// ------------------------------------------------------------ ZREMRANGEBY*

fn zremrangebyrank(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (a, b) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
    remrange(c, Range::Rank(a, b))
}

fn zremrangebyscore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let r = ScoreRange::parse(&args[2], &args[3])?;
    remrange(c, Range::Score(r))
}

fn zremrangebylex(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let r = LexRange::parse(&args[2], &args[3])?;
    remrange(c, Range::Lex(r))
}

fn remrange(c: &mut Ctx, range: Range) -> CmdResult {
    let key = &c.args[1];
    let Some(z) = zwrite(&mut c.store, key)? else {
        c.out.int(0);
        return Ok(());
    };
    let sel = range.select(z, false, 0, -1);
    z.remove_range(sel.from, sel.from + sel.count);
    let len = z.len();
    if sel.count > 0 {
        // The command's name is the event (zremrangebyrank & co.).
        finish_write(&mut c.store, key, len, c.spec.name);
    }
    c.out.int(sel.count as i64);
    Ok(())
}

// ------------------------------------------------------------ pops

fn zpopmin(c: &mut Ctx) -> CmdResult {
    zpop_cmd(c, false)
}

fn zpopmax(c: &mut Ctx) -> CmdResult {
    zpop_cmd(c, true)
}

fn zpop_cmd(c: &mut Ctx, max: bool) -> CmdResult {
    let args = c.args;
    if args.len() > 3 {
        return Err(c.arity_error());
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match parse_i64_opt(a) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Err(NOT_POSITIVE.into()),
        },
    };
    let key = &args[1];
    let Some(z) = zwrite(&mut c.store, key)? else {
        c.out.array(0);
        return Ok(());
    };
    if count == Some(0) {
        c.out.array(0);
        return Ok(());
    }
    let popped = pop_n(z, max, count.unwrap_or(1));
    let len = z.len();
    finish_write(&mut c.store, key, len, pop_event(max));
    let nested = count.is_some() && c.out.resp3();
    c.out.array(if nested {
        popped.len()
    } else {
        popped.len() * 2
    });
    for (m, s) in &popped {
        if nested {
            c.out.array(2);
        }
        c.out.bulk(m);
        reply_double(c.out, *s);
    }
    Ok(())
}

/// The event Redis notifies for a pop of the lowest or highest members.
fn pop_event(max: bool) -> &'static str {
    if max {
        "zpopmax"
    } else {
        "zpopmin"
    }
}

fn pop_n(z: &mut ZSetValue, max: bool, n: usize) -> Vec<(Vec<u8>, f64)> {
    let n = n.min(z.len());
    let items = owned(z.iter_from(0, max).take(n));
    if max {
        let len = z.len();
        z.remove_range(len - n, len);
    } else {
        z.remove_range(0, n);
    }
    items
}

/// ZMPOP/BZMPOP arguments after the command (and BZMPOP's timeout).
struct MpopArgs {
    keys: std::ops::Range<usize>,
    max: bool,
    count: usize,
}

/// Parses `numkeys key... MIN|MAX [COUNT count]` with numkeys at `at`.
fn parse_mpop(args: &[Bytes], at: usize) -> Result<MpopArgs, CmdError> {
    let numkeys = match parse_i64_opt(&args[at]) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    let where_idx = numkeys.saturating_add(at + 1);
    let Some(w) = args.get(where_idx) else {
        return Err(err::SYNTAX.into());
    };
    let max = if is(w, "min") {
        false
    } else if is(w, "max") {
        true
    } else {
        return Err(err::SYNTAX.into());
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            match parse_i64_opt(&args[j + 1]) {
                Some(n) if n >= 1 => count = Some(n as usize),
                _ => return Err("ERR count should be greater than 0".into()),
            }
            j += 2;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    Ok(MpopArgs {
        keys: at + 1..where_idx,
        max,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first non-empty key of `m` and replies [key, [[m, s]...]];
/// false when every key is empty. `me`: the blocked client re-running.
fn mpop_from(c: &mut Ctx, m: &MpopArgs, me: Option<&Arc<Waiter>>) -> Result<bool, CmdError> {
    let args = c.args;
    for key in &args[m.keys.clone()] {
        let z = match zwrite(&mut c.store, key) {
            Ok(Some(z)) => z,
            Ok(None) => continue,
            Err(e) if me.is_none() => return Err(e),
            Err(_) => continue,
        };
        if z.is_empty() || !may_take(me, key) {
            continue;
        }
        let popped = pop_n(z, m.max, m.count);
        let len = z.len();
        finish_write(&mut c.store, key, len, pop_event(m.max));
        c.out.array(2);
        c.out.bulk(key);
        c.out.array(popped.len());
        for (m, s) in &popped {
            c.out.array(2);
            c.out.bulk(m);
            reply_double(c.out, *s);
        }
        served(me, c.store.db, key, len);
        return Ok(true);
    }
    Ok(false)
}

fn zmpop(c: &mut Ctx) -> CmdResult {
    let m = parse_mpop(c.args, 1)?;
    if !mpop_from(c, &m, None)? {
        c.out.null_array();
    }
    Ok(())
}

// ------------------------------------------------------------ blocking pops
//
// The same protocol as the list family's blocking commands (see
// blocking.rs): nothing to pop registers the client and returns
// Action::Block; the connection re-runs the command when woken, and a
// re-run takes from a key only as that key's first waiter.

/// Nothing to pop: inside EXEC reply a null array at once, else register
/// (first run) and ask the connection to wait.
fn block_on(c: &mut Ctx, me: Option<Arc<Waiter>>, keys: &[Bytes], deadline: Option<Instant>) {
    if let Some(w) = me {
        c.action = Some(Action::Block(w));
    } else if c.client.in_exec {
        c.out.null_array();
    } else {
        let w = blocking::block(c.client.info.id, c.store.db, keys, deadline);
        c.action = Some(Action::Block(w));
    }
}

fn bzpopmin(c: &mut Ctx) -> CmdResult {
    bzpop(c, false)
}

fn bzpopmax(c: &mut Ctx) -> CmdResult {
    bzpop(c, true)
}

fn bzpop(c: &mut Ctx, max: bool) -> CmdResult {
    let args = c.args;
    let deadline = parse_timeout(&args[args.len() - 1], c.store.now)?;
    let me = blocking::current(c.client.info.id);
    let keys = &args[1..args.len() - 1];
    for key in keys {
        let z = match zwrite(&mut c.store, key) {
            Ok(Some(z)) => z,
            Ok(None) => continue,
            Err(e) if me.is_none() => return Err(e),
            Err(_) => continue,
        };
        if z.is_empty() || !may_take(me.as_ref(), key) {
            continue;
        }
        let popped = pop_n(z, max, 1);
        let len = z.len();
        finish_write(&mut c.store, key, len, pop_event(max));
        let Some((m, s)) = popped.first() else {
            continue;
        };
        c.out.array(3);
        c.out.bulk(key);
        c.out.bulk(m);
        reply_double(c.out, *s);
        served(me.as_ref(), c.store.db, key, len);
        return Ok(());
    }
    block_on(c, me, keys, deadline);
    Ok(())
}

fn bzmpop(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let m = parse_mpop(args, 2)?;
    let deadline = parse_timeout(&args[1], c.store.now)?;
    let me = blocking::current(c.client.info.id);
    if !mpop_from(c, &m, me.as_ref())? {
        block_on(c, me, &args[m.keys.clone()], deadline);
    }
    Ok(())
}

// ------------------------------------------------------------ ZRANDMEMBER

fn zrandmember(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let key = &args[1];
    let Some(count_arg) = args.get(2) else {
        let z = zread(&mut c.store, key)?;
        match z {
            Some(z) if !z.is_empty() => {
                let i = rand::thread_rng().gen_range(0..z.len());
                match z.get(i) {
                    Some((m, _)) => c.out.bulk(m),
                    None => c.out.null(),
                }
            }
            _ => c.out.null(),
        }
        return Ok(());
    };
    let l = parse_i64(count_arg)?;
    if l == i64::MIN {
        return Err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
                .into(),
        );
    }
    if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withscores")) {
        return Err(err::SYNTAX.into());
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err("ERR value is out of range".into());
    }
    let Some(z) = zread(&mut c.store, key)? else {
        c.out.array(0);
        return Ok(());
    };
    let (uniq, count) = (l >= 0, l.unsigned_abs() as usize);
    let len = z.len();
    if count == 0 || len == 0 {
        c.out.array(0);
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    if !uniq || count == 1 {
        let picks = (0..count).map(|_| rng.gen_range(0..len));
        let items = picks.filter_map(|i| z.get(i));
        reply_items(c.out, count, items, withscores);
    } else if count >= len {
        reply_items(c.out, len, z.iter_from(0, false), withscores);
    } else {
        // Distinct indexes; sample then keep the draw order random.
        let mut picked = rand::seq::index::sample(&mut rng, len, count).into_vec();
        picked.sort_unstable_by_key(|_| rng.gen::<u32>());
        let items = picked.into_iter().filter_map(|i| z.get(i));
        reply_items(c.out, count, items, withscores);
    }
    Ok(())
}

// ------------------------------------------------------------ ZSCAN

fn zscan(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let cursor = parse_cursor(&args[2]).ok_or("ERR invalid cursor")?;
    let Some(z) = zread(&mut c.store, &args[1])? else {
        c.out.array(2);
        c.out.bulk(b"0");
        c.out.array(0);
        return Ok(());
    };
    let (mut count, mut pattern) = (10usize, None);
    let mut j = 3;
    while j < args.len() {
        let has_value = j + 1 < args.len();
        if is(&args[j], "count") && has_value {
            let n = parse_i64(&args[j + 1])?;
            if n < 1 {
                return Err(err::SYNTAX.into());
            }
            count = n as usize;
            j += 2;
        } else if is(&args[j], "match") && has_value {
            pattern = Some(&args[j + 1][..]);
            j += 2;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    // Redis skips the filter when the pattern is "*".
    let pattern = pattern.filter(|p| *p != b"*");
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut next = cursor;
    let mut budget = count.saturating_mul(10);
    loop {
        next = z.scan(next, &mut |m, s| {
            if pattern.is_none_or(|p| glob_match(p, m, false)) {
                found.push((m.to_vec(), s));
            }
        });
        budget -= 1;
        if next == 0 || budget == 0 || found.len() * 2 >= count {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    c.out.array(found.len() * 2);
    for (m, s) in &found {
        c.out.bulk(m);
        c.out.bulk(fmt_score(*s).as_bytes());
    }
    Ok(())
}

// ------------------------------------------------------------ set algebra

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val
            }
        }
    }
}

/// One input of ZUNION & co: its members and scores, and its weight.
struct Source {
    items: Vec<(Vec<u8>, f64)>,
    weight: f64,
}

fn zunion(c: &mut Ctx) -> CmdResult {
    algebra(c, None, 1, Op::Union, false)
}

fn zinter(c: &mut Ctx) -> CmdResult {
    algebra(c, None, 1, Op::Inter, false)
}

fn zdiff(c: &mut Ctx) -> CmdResult {
    algebra(c, None, 1, Op::Diff, false)
}

fn zintercard(c: &mut Ctx) -> CmdResult {
    algebra(c, None, 1, Op::Inter, true)
}

fn zunionstore(c: &mut Ctx) -> CmdResult {
    algebra(c, Some(1), 2, Op::Union, false)
}

fn zinterstore(c: &mut Ctx) -> CmdResult {
    algebra(c, Some(1), 2, Op::Inter, false)
}

fn zdiffstore(c: &mut Ctx) -> CmdResult {
    algebra(c, Some(1), 2, Op::Diff, false)
}

/// Reads an input of the set algebra: a sorted set (or a plain set, each
/// member scored 1, as Redis allows).
fn read_source(store: &mut Store, key: &[u8]) -> Result<Vec<(Vec<u8>, f64)>, CmdError> {
    match store.read(key) {
        None => Ok(Vec::new()),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(owned(z.iter_from(0, false))),
            Value::Set(s) => Ok(s.iter().map(|m| (m.to_vec(), 1.0)).collect()),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

/// Redis's zunionInterDiffGenericCommand.
fn algebra(c: &mut Ctx, dst: Option<usize>, numkeys_idx: usize, op: Op, card: bool) -> CmdResult {
    let args = c.args;
    let setnum = parse_i64(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            c.spec.name
        )
        .into());
    }
    if setnum > (args.len() - numkeys_idx - 1) as i64 {
        return Err(err::SYNTAX.into());
    }
    let setnum = setnum as usize;
    let mut srcs = Vec::with_capacity(setnum);
    for key in &args[numkeys_idx + 1..numkeys_idx + 1 + setnum] {
        let items = read_source(&mut c.store, key)?;
        srcs.push(Source { items, weight: 1.0 });
    }
    let mut agg = Aggregate::Sum;
    let (mut withscores, mut limit) = (false, 0usize);
    let mut j = numkeys_idx + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != Op::Diff && !card && remaining > setnum && is(a, "weights") {
            for (i, src) in srcs.iter_mut().enumerate() {
                src.weight =
                    parse_score(&args[j + 1 + i]).ok_or("ERR weight value is not a float")?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && is(a, "aggregate") {
            let v = &args[j + 1];
            agg = if is(v, "sum") {
                Aggregate::Sum
            } else if is(v, "min") {
                Aggregate::Min
            } else if is(v, "max") {
                Aggregate::Max
            } else {
                return Err(err::SYNTAX.into());
            };
            j += 2;
        } else if dst.is_none() && !card && is(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is(a, "limit") {
            match parse_i64_opt(&args[j + 1]) {
                Some(n) if n >= 0 => limit = n as usize,
                _ => return Err("ERR LIMIT can't be negative".into()),
            }
            j += 2;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    let mut result = compute(srcs, op, agg);
    if card {
        let n = if limit > 0 {
            result.len().min(limit)
        } else {
            result.len()
        };
        c.out.int(n as i64);
        return Ok(());
    }
    result.sort_by(|a, b| cmp_pair(a.1, &a.0, b.1, &b.0));
    match dst {
        Some(d) => {
            let lim = limits(c);
            // The command's name is the event (zunionstore & co.).
            store_result(&mut c.store, &args[d], &result, lim, c.spec.name);
            c.out.int(result.len() as i64);
        }
        None => {
            let n = result.len();
            let items = result.iter().map(|(m, s)| (m.as_slice(), *s));
            reply_items(c.out, n, items, withscores);
        }
    }
    Ok(())
}

fn weighted(w: f64, s: f64) -> f64 {
    let v = w * s;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn compute(mut srcs: Vec<Source>, op: Op, agg: Aggregate) -> Vec<(Vec<u8>, f64)> {
    match op {
        Op::Diff => {
            let first = srcs.remove(0);
            let others: HashSet<&[u8]> = srcs
                .iter()
                .flat_map(|s| s.items.iter().map(|(m, _)| m.as_slice()))
                .collect();
            first
                .items
                .into_iter()
                .filter(|(m, _)| !others.contains(m.as_slice()))
                .collect()
        }
        Op::Inter => {
            if srcs.iter().any(|s| s.items.is_empty()) {
                return Vec::new();
            }
            srcs.sort_by_key(|s| s.items.len());
            let maps: Vec<HashMap<&[u8], f64>> = srcs[1..]
                .iter()
                .map(|s| s.items.iter().map(|(m, v)| (m.as_slice(), *v)).collect())
                .collect();
            let mut out = Vec::new();
            'members: for (m, s) in &srcs[0].items {
                let mut score = weighted(srcs[0].weight, *s);
                for (k, map) in maps.iter().enumerate() {
                    let Some(v) = map.get(m.as_slice()) else {
                        continue 'members;
                    };
                    // Only the first weighted score has NaN made 0, as
                    // in Redis: a later NaN (0 * inf) makes the SUM NaN,
                    // hence 0, and leaves MIN and MAX unchanged.
                    aggregate(&mut score, srcs[k + 1].weight * *v, agg);
                }
                out.push((m.clone(), score));
            }
            out
        }
        Op::Union => {
            srcs.sort_by_key(|s| s.items.len());
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for src in srcs {
                for (m, s) in src.items {
                    let score = weighted(src.weight, s);
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
    }
}
