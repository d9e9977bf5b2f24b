//! The generic keyspace commands (Redis's db.c and object.c): deleting,
//! renaming, copying and moving keys, KEYS/SCAN/RANDOMKEY over the sharded
//! keyspace, OBJECT, and the whole-database commands DBSIZE, FLUSHDB,
//! FLUSHALL and SWAPDB. Expiry commands live in `cmd::expire`.

use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::glob::glob_match;
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::keyspace::SHARD_BITS;
use granary_keyspace::{canonical_i64, Db, Entry, StrValue, Value, SHARDS};
use rand::Rng;

const G: &str = "generic";
const S: &str = "server";
const K1: Keys = Keys::Range(1, 1, 1);
const K12: Keys = Keys::Range(1, 2, 1);
const KALL: Keys = Keys::Range(1, -1, 1);

const READ_FAST: &[&str] = &["@keyspace", "@read", "@fast"];
const READ_SLOW: &[&str] = &["@keyspace", "@read", "@slow"];
const WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];
const WRITE_SLOW: &[&str] = &["@keyspace", "@write", "@slow"];
const WRITE_SLOW_DANGER: &[&str] = &["@keyspace", "@write", "@slow", "@dangerous"];

static OBJECT_SUBCOMMANDS: &[Spec] = &[
    Spec::new(
        "object|encoding",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_encoding,
    )
    .group(G, "2.2.3")
    .acl(READ_SLOW)
    .doc("Returns the internal encoding of a Redis object."),
    Spec::new(
        "object|freq",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_freq,
    )
    .group(G, "4.0.0")
    .acl(READ_SLOW)
    .doc("Returns the logarithmic access frequency counter of a Redis object."),
    Spec::new("object|help", 2, LOADING | STALE, Keys::None, object_help)
        .group(G, "6.2.0")
        .acl(&["@keyspace", "@slow"])
        .doc("Returns helpful text about the different subcommands."),
    Spec::new(
        "object|idletime",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_idletime,
    )
    .group(G, "2.2.3")
    .acl(READ_SLOW)
    .doc("Returns the time since the last access to a Redis object."),
    Spec::new(
        "object|refcount",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_refcount,
    )
    .group(G, "2.2.3")
    .acl(READ_SLOW)
    .doc("Returns the reference count of a value of a key."),
];

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("del", -2, WRITE, KALL, del).group(G, "1.0.0").acl(WRITE_SLOW).doc("Deletes one or more keys."),
    Spec::new("unlink", -2, WRITE | FAST, KALL, unlink).group(G, "4.0.0").acl(WRITE_FAST).doc("Asynchronously deletes one or more keys."),
    Spec::new("exists", -2, READONLY | FAST, KALL, exists).group(G, "1.0.0").acl(READ_FAST).doc("Determines whether one or more keys exist."),
    Spec::new("type", 2, READONLY | FAST, K1, type_cmd).group(G, "1.0.0").acl(READ_FAST).doc("Determines the type of value stored at a key."),
    Spec::new("rename", 3, WRITE, K12, rename).group(G, "1.0.0").acl(WRITE_SLOW).doc("Renames a key and overwrites the destination."),
    Spec::new("renamenx", 3, WRITE | FAST, K12, renamenx).group(G, "1.0.0").acl(WRITE_FAST).doc("Renames a key only when the target key name doesn't exist."),
    Spec::new("copy", -3, WRITE | DENYOOM, K12, copy).group(G, "6.2.0").acl(WRITE_SLOW).doc("Copies the value of a key to a new key."),
    Spec::new("move", 3, WRITE | FAST, K1, move_cmd).group(G, "1.0.0").acl(WRITE_FAST).doc("Moves a key to another database."),
    Spec::new("keys", 2, READONLY, Keys::None, keys).group(G, "1.0.0").acl(&["@keyspace", "@read", "@slow", "@dangerous"]).doc("Returns all key names that match a pattern."),
    Spec::new("scan", -2, READONLY, Keys::None, scan).group(G, "2.8.0").acl(READ_SLOW).doc("Iterates over the key names in the database."),
    Spec::new("randomkey", 1, READONLY, Keys::None, randomkey).group(G, "1.0.0").acl(READ_SLOW).doc("Returns a random key name from the database."),
    Spec::new("touch", -2, READONLY | FAST, KALL, touch).group(G, "3.2.1").acl(READ_FAST).doc("Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    Spec::container("object", OBJECT_SUBCOMMANDS).group(G, "2.2.3").acl(&["@slow"]).doc("A container for object introspection commands."),
    Spec::new("dbsize", 1, READONLY | FAST, Keys::None, dbsize).group(S, "1.0.0").acl(READ_FAST).doc("Returns the number of keys in the database."),
    Spec::new("flushdb", -1, WRITE, Keys::None, flushdb).group(S, "1.0.0").acl(WRITE_SLOW_DANGER).doc("Removes all keys from the current database."),
    Spec::new("flushall", -1, WRITE | ALL_SHARDS, Keys::None, flushall).group(S, "1.0.0").acl(WRITE_SLOW_DANGER).doc("Removes all keys from all databases."),
    Spec::new("swapdb", 3, WRITE | FAST | ALL_SHARDS, Keys::None, swapdb).group(S, "4.0.0").acl(&["@keyspace", "@write", "@fast", "@dangerous"]).doc("Swaps two Redis databases."),
];

/// Values whose freeing costs more than this many allocations are freed on
/// the background thread by UNLINK (Redis's LAZYFREE_THRESHOLD).
const LAZYFREE_THRESHOLD: usize = 64;

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

// ---------------------------------------------------------------- DEL & co.

fn del(c: &mut Ctx) -> CmdResult {
    delete_keys(c, false)
}

fn unlink(c: &mut Ctx) -> CmdResult {
    delete_keys(c, true)
}

/// DEL and UNLINK. DEL frees in the background too when
/// lazyfree-lazy-user-del is set, as in Redis; the config is only read when
/// a value big enough to matter is met.
fn delete_keys(c: &mut Ctx, lazy: bool) -> CmdResult {
    let mut lazy = if lazy { Some(true) } else { None };
    let mut n = 0;
    for key in &c.args[1..] {
        let Some(entry) = c.store.remove(key) else {
            continue;
        };
        c.notify(class::GENERIC, "del", key);
        n += 1;
        if entry.value.free_effort() > LAZYFREE_THRESHOLD
            && *lazy.get_or_insert_with(|| c.server.config.get_bool("lazyfree-lazy-user-del"))
        {
            c.server.lazyfree.free(entry);
        }
    }
    c.out.int(n);
    Ok(())
}

/// EXISTS and TOUCH: how many of the keys (repeats counted) exist; only
/// TOUCH updates their access time.
fn count_existing(c: &mut Ctx, touch: bool) -> CmdResult {
    c.store.no_touch = !touch;
    let n = c.args[1..]
        .iter()
        .filter(|k| c.store.read(k).is_some())
        .count();
    c.out.int(n as i64);
    Ok(())
}

fn exists(c: &mut Ctx) -> CmdResult {
    count_existing(c, false)
}

fn touch(c: &mut Ctx) -> CmdResult {
    count_existing(c, true)
}

fn type_cmd(c: &mut Ctx) -> CmdResult {
    c.store.no_touch = true;
    let name = c
        .store
        .read(&c.args[1])
        .map_or("none", |e| e.value.type_name());
    c.out.simple(name);
    Ok(())
}

// ----------------------------------------------------- RENAME, COPY, MOVE

fn rename(c: &mut Ctx) -> CmdResult {
    rename_generic(c, false)
}

fn renamenx(c: &mut Ctx) -> CmdResult {
    rename_generic(c, true)
}

fn rename_generic(c: &mut Ctx, nx: bool) -> CmdResult {
    let (src, dst) = (&c.args[1], &c.args[2]);
    if c.store.entry(src).is_none() {
        return Err(err::NO_SUCH_KEY.into());
    }
    // Renaming a key to itself is a no-op, but only once it is known to exist.
    if src == dst {
        reply_ok_or_int(c, nx, 0);
        return Ok(());
    }
    let expire = c.store.expire_of(src);
    if nx && c.store.entry(dst).is_some() {
        c.out.int(0);
        return Ok(());
    }
    if let Some(entry) = c.store.remove(src) {
        // Redis deletes an overwritten destination first: it is "new".
        c.store.remove(dst);
        c.store.set(dst, entry.value, expire);
    }
    c.notify(class::GENERIC, "rename_from", src);
    c.notify(class::GENERIC, "rename_to", dst);
    reply_ok_or_int(c, nx, 1);
    Ok(())
}

/// RENAME replies +OK, RENAMENX 1 or 0.
fn reply_ok_or_int(c: &mut Ctx, int: bool, n: i64) {
    if int {
        c.out.int(n);
    } else {
        c.out.ok();
    }
}

/// A database index argument (Redis's getIntFromObjectOrReply, then selectDb).
fn db_index(c: &Ctx, arg: &[u8]) -> Result<usize, CmdError> {
    let n = parse_i64(arg)?;
    let n = i32::try_from(n).map_err(|_| {
        CmdError::from("ERR value is out of range, value must between -2147483648 and 2147483647")
    })?;
    usize::try_from(n)
        .ok()
        .filter(|&i| i < c.server.keyspace.databases())
        .ok_or_else(|| err::DB_RANGE.into())
}

fn copy(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut dst_db = c.store.db;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            dst_db = db_index(c, &args[i + 1])?;
            i += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if dst_db == c.store.db && src == dst {
        return Err(SAME_OBJECT.into());
    }
    let Some(value) = c.store.read(src).map(|e| e.value.clone()) else {
        c.out.int(0);
        return Ok(());
    };
    let expire = c.store.expire_of(src);
    if !replace && c.store.entry_in(dst_db, dst).is_some() {
        c.out.int(0);
        return Ok(());
    }
    // Redis deletes a replaced destination first: it is "new".
    c.store.remove_in(dst_db, dst);
    c.store.set_in(dst_db, dst, value, expire);
    crate::notify::notify(c.server, class::GENERIC, "copy_to", dst, dst_db);
    c.out.int(1);
    Ok(())
}

fn move_cmd(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    let dst_db = db_index(c, &c.args[2])?;
    if dst_db == c.store.db {
        return Err(SAME_OBJECT.into());
    }
    if c.store.entry(key).is_none() {
        c.out.int(0);
        return Ok(());
    }
    let expire = c.store.expire_of(key);
    if c.store.entry_in(dst_db, key).is_some() {
        c.out.int(0);
        return Ok(());
    }
    if let Some(entry) = c.store.remove(key) {
        c.store.set_in(dst_db, key, entry.value, expire);
    }
    c.notify(class::GENERIC, "move_from", key);
    crate::notify::notify(c.server, class::GENERIC, "move_to", key, dst_db);
    c.out.int(1);
    Ok(())
}

// ------------------------------------------------- KEYS, SCAN, RANDOMKEY

fn is_expired(db: &Db, e: &Entry, now: u64) -> bool {
    db.expire_of(e).is_some_and(|t| t <= now)
}

/// KEYS walks the shards one at a time; keys whose time has passed are
/// skipped but left for expiry to delete, as in Redis.
fn keys(c: &mut Ctx) -> CmdResult {
    let pattern = &c.args[1][..];
    let all = pattern == b"*";
    let (dbi, now) = (c.store.db, c.store.now);
    let mut found: Vec<Bytes> = Vec::new();
    for i in 0..SHARDS {
        c.store.with_shard(i, |shard| {
            let db = shard.db(dbi);
            for e in db.dict().iter() {
                if (all || glob_match(pattern, e.key(), false)) && !is_expired(db, e, now) {
                    found.push(Bytes::copy_from_slice(e.key()));
                }
            }
        });
    }
    c.out.array(found.len());
    for k in &found {
        c.out.bulk(k);
    }
    Ok(())
}

/// Redis's string2ull, which SCAN cursors go through: a canonical
/// non-negative integer, or else anything C's strtoull accepts as a whole
/// (leading spaces, a sign; a negative wraps around).
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    // The C code sees the argument up to its first NUL.
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    if let Some(v) = canonical_i64(arg) {
        return u64::try_from(v).ok();
    }
    let s = match arg.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)) {
        Some(p) => &arg[p..],
        None => return None,
    };
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if neg { v.wrapping_neg() } else { v })
}

struct ScanOpts<'a> {
    count: usize,
    pattern: Option<&'a [u8]>,
    type_name: Option<&'a [u8]>,
}

fn parse_scan_opts(args: &[Bytes]) -> Result<ScanOpts<'_>, CmdError> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut i = 0;
    while i < args.len() {
        let (opt, has_value) = (&args[i], i + 1 < args.len());
        if is(opt, "count") && has_value {
            let n = parse_i64(&args[i + 1])?;
            if n < 1 {
                return Err(err::SYNTAX.into());
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(opt, "match") && has_value {
            // "*" matches everything: no need to filter.
            o.pattern = Some(&args[i + 1][..]).filter(|p| *p != b"*");
        } else if is(opt, "type") && has_value {
            o.type_name = Some(&args[i + 1][..]);
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 2;
    }
    Ok(o)
}

const SHARD_MASK: u64 = (1 << SHARD_BITS) - 1;

/// The keyspace SCAN cursor is the shard index in the low SHARD_BITS bits
/// and that shard's dict cursor above them. Shards are walked in order, each
/// with Redis's reverse-binary dict cursor, and a key lives in one shard
/// for life, so Redis's guarantee carries over: every key present for the
/// whole iteration is returned at least once, however the tables resize.
///
/// `step(shard, dict_cursor)` scans some of a shard and returns the next
/// dict cursor (0 when that shard is done) and whether to stop for this call.
fn walk_shards(cursor: u64, mut step: impl FnMut(usize, u64) -> (u64, bool)) -> u64 {
    let mut shard = (cursor & SHARD_MASK) as usize;
    let mut dict_cursor = cursor >> SHARD_BITS;
    while shard < SHARDS {
        let (next, stop) = step(shard, dict_cursor);
        dict_cursor = next;
        if next == 0 {
            shard += 1;
        }
        if stop {
            break;
        }
    }
    if shard >= SHARDS {
        0
    } else {
        (dict_cursor << SHARD_BITS) | shard as u64
    }
}

/// A key SCAN found, with its type for the TYPE filter.
struct Found {
    key: Bytes,
    type_name: &'static str,
}

/// What one SCAN call gathers and how much work it may still do. Like
/// Redis, a call does at most 10 x COUNT dict steps, so a sparse table
/// cannot make it run long; empty shards are skipped without counting.
struct ScanBatch {
    found: Vec<Found>,
    expired: Vec<Bytes>,
    want: usize,
    budget: usize,
}

impl ScanBatch {
    fn new(count: usize) -> Self {
        ScanBatch {
            found: Vec::new(),
            expired: Vec::new(),
            want: count,
            budget: count.saturating_mul(10),
        }
    }

    fn done(&self) -> bool {
        self.found.len() >= self.want || self.budget == 0
    }

    /// Scans one shard's database from `cursor` until the shard is done or
    /// the batch is; returns the next dict cursor.
    fn scan_db(&mut self, db: &Db, mut cursor: u64, now: u64) -> u64 {
        if db.is_empty() {
            return 0;
        }
        loop {
            cursor = db.dict().scan(cursor, |e| {
                let key = Bytes::copy_from_slice(e.key());
                if is_expired(db, e, now) {
                    self.expired.push(key);
                } else {
                    let type_name = e.value.type_name();
                    self.found.push(Found { key, type_name });
                }
            });
            self.budget = self.budget.saturating_sub(1);
            if cursor == 0 || self.done() {
                return cursor;
            }
        }
    }

    /// Deletes the expired keys met in this shard, like Redis's SCAN does
    /// through expireIfNeeded. Returns how many.
    fn delete_expired(&mut self, db: &mut Db) -> u64 {
        let n = self.expired.len() as u64;
        for key in self.expired.drain(..) {
            db.remove(granary_keyspace::hash_bytes(&key), &key);
        }
        n
    }
}

fn scan(c: &mut Ctx) -> CmdResult {
    let cursor = parse_cursor(&c.args[1]).ok_or("ERR invalid cursor")?;
    let opts = parse_scan_opts(&c.args[2..])?;
    let (dbi, now) = (c.store.db, c.store.now);
    let mut batch = ScanBatch::new(opts.count);
    let mut expired = 0;
    let next = walk_shards(cursor, |i, dict_cursor| {
        c.store.with_shard(i, |shard| {
            let db = shard.db(dbi);
            let next = batch.scan_db(db, dict_cursor, now);
            expired += batch.delete_expired(db);
            (next, batch.done())
        })
    });
    c.store.count_expired(expired);
    let keep = |f: &Found| {
        opts.pattern.is_none_or(|p| glob_match(p, &f.key, false))
            && opts
                .type_name
                .is_none_or(|t| t.eq_ignore_ascii_case(f.type_name.as_bytes()))
    };
    let found: Vec<&Found> = batch.found.iter().filter(|f| keep(f)).collect();
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    c.out.array(found.len());
    for f in found {
        c.out.bulk(&f.key);
    }
    Ok(())
}

/// A random live key: a shard is picked with probability proportional to
/// its size, then a key inside it. Expired keys met on the way are deleted
/// (Redis does the same), so the loop ends.
fn randomkey(c: &mut Ctx) -> CmdResult {
    let (dbi, now) = (c.store.db, c.store.now);
    let mut rng = rand::thread_rng();
    let mut expired = 0;
    let key = 'outer: loop {
        let sizes: Vec<usize> = (0..SHARDS)
            .map(|i| c.store.with_shard(i, |s| s.db(dbi).len()))
            .collect();
        let total: usize = sizes.iter().sum();
        if total == 0 {
            break None;
        }
        let mut pick = rng.gen_range(0..total);
        let shard = sizes
            .iter()
            .position(|&n| {
                let here = pick < n;
                pick = pick.saturating_sub(n);
                here
            })
            .unwrap_or(0);
        // Retry inside the shard while it has keys; re-weigh once it is empty.
        loop {
            let got = c.store.with_shard(shard, |s| {
                let db = s.db(dbi);
                let e = db.dict().random(&mut rng)?;
                let key = Bytes::copy_from_slice(e.key());
                if is_expired(db, e, now) {
                    db.remove(granary_keyspace::hash_bytes(&key), &key);
                    Some(Err(()))
                } else {
                    Some(Ok(key))
                }
            });
            match got {
                None => break,
                Some(Ok(key)) => break 'outer Some(key),
                Some(Err(())) => expired += 1,
            }
        }
    };
    c.store.count_expired(expired);
    match key {
        Some(k) => c.out.bulk(&k),
        None => c.out.null(),
    }
    Ok(())
}

// ------------------------------------------------------------------ OBJECT

/// The entry an OBJECT subcommand inspects, without touching its access
/// time. Redis counts the lookup as a keyspace hit or miss but sends no
/// keymiss event (LOOKUP_NOTOUCH|LOOKUP_NONOTIFY).
fn object_entry<'c>(c: &'c mut Ctx) -> Option<&'c mut Entry> {
    c.store.no_touch = true;
    let stats = &c.server.stats;
    let e = c.store.entry(&c.args[2]);
    let stat = if e.is_some() {
        &stats.keyspace_hits
    } else {
        &stats.keyspace_misses
    };
    stat.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    e
}

fn object_encoding(c: &mut Ctx) -> CmdResult {
    match object_entry(c).map(|e| e.value.encoding()) {
        Some(enc) => c.out.bulk_str(enc),
        None => c.out.null(),
    }
    Ok(())
}

/// Integers below this are shared objects in Redis (OBJ_SHARED_INTEGERS),
/// reported with refcount INT_MAX.
const SHARED_INTEGERS: i64 = 10_000;

fn object_refcount(c: &mut Ctx) -> CmdResult {
    let shared_int = match object_entry(c) {
        None => {
            c.out.null();
            return Ok(());
        }
        Some(e) => {
            matches!(e.value, Value::Str(StrValue::Int(i)) if (0..SHARED_INTEGERS).contains(&i))
        }
    };
    // Redis stops sharing integers when an LRU/LFU policy with maxmemory
    // needs a per-object access clock.
    let shared =
        shared_int && (c.server.config.get_int("maxmemory") == 0 || !policy(c).uses_object_clock());
    c.out.int(if shared { i32::MAX as i64 } else { 1 });
    Ok(())
}

#[derive(PartialEq)]
enum Policy {
    Lru,
    Lfu,
    Other,
}

impl Policy {
    fn uses_object_clock(&self) -> bool {
        *self != Policy::Other
    }
}

fn policy(c: &Ctx) -> Policy {
    let p = c.server.config.get("maxmemory-policy").unwrap_or_default();
    if p.ends_with("lfu") {
        Policy::Lfu
    } else if p.ends_with("lru") {
        Policy::Lru
    } else {
        Policy::Other
    }
}

const POLICY_SWITCH_NOTE: &str =
    "Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Seconds since the access clock `clock` was stamped, at `now_ms`. The
/// clock keeps seconds modulo 2^16, so it wraps after about 18 hours (Redis's
/// own LRU clock wraps too, after 194 days).
fn idle_secs(clock: u16, now_ms: u64) -> u64 {
    u64::from(((now_ms / 1000) as u16).wrapping_sub(clock))
}

fn object_idletime(c: &mut Ctx) -> CmdResult {
    let now = c.store.now;
    let Some(clock) = object_entry(c).map(|e| e.access_clock()) else {
        c.out.null();
        return Ok(());
    };
    if policy(c) == Policy::Lfu {
        return Err(format!(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. {POLICY_SWITCH_NOTE}"
        )
        .into());
    }
    c.out.int(idle_secs(clock, now) as i64);
    Ok(())
}

/// The key's LFU counter, decayed to now (under an LFU policy the access
/// clock is the counter, see `evict::lfu`).
fn object_freq(c: &mut Ctx) -> CmdResult {
    let now = c.store.now;
    let Some(clock) = object_entry(c).map(|e| e.access_clock()) else {
        c.out.null();
        return Ok(());
    };
    if policy(c) != Policy::Lfu {
        return Err(format!(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. {POLICY_SWITCH_NOTE}"
        )
        .into());
    }
    let freq = crate::evict::lfu_freq(c.server, clock, now);
    c.out.int(i64::from(freq));
    Ok(())
}

const OBJECT_HELP: &[&str] = &[
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
];

fn object_help(c: &mut Ctx) -> CmdResult {
    reply_help(c, OBJECT_HELP);
    Ok(())
}

/// Redis's addReplyHelp: a heading naming the command as typed, the lines,
/// and the HELP entry.
fn reply_help(c: &mut Ctx, lines: &[&str]) {
    let name = String::from_utf8_lossy(&c.args[0]).to_uppercase();
    crate::cmd::server::reply_help(c.out, &name, lines);
}

// ------------------------------------------------ whole-database commands

fn dbsize(c: &mut Ctx) -> CmdResult {
    let dbi = c.store.db;
    let n: usize = (0..SHARDS)
        .map(|i| c.store.with_shard(i, |s| s.db(dbi).len()))
        .sum();
    c.out.int(n as i64);
    Ok(())
}

/// FLUSHDB/FLUSHALL's [ASYNC|SYNC]; without one, lazyfree-lazy-user-flush decides.
fn flush_is_async(c: &Ctx) -> Result<bool, CmdError> {
    match c.args.len() {
        1 => Ok(c.server.config.get_bool("lazyfree-lazy-user-flush")),
        2 if is(&c.args[1], "sync") => Ok(false),
        2 if is(&c.args[1], "async") => Ok(true),
        _ => Err(err::SYNTAX.into()),
    }
}

/// Drops emptied databases: on the background thread for ASYNC, so a
/// flush of millions of keys returns at once; here otherwise.
fn dispose(c: &Ctx, old: Vec<Db>, is_async: bool) {
    if is_async && !old.is_empty() {
        c.server.lazyfree.free(old);
    }
}

/// FLUSHDB empties the selected database one shard at a time; each shard's
/// part is taken under its lock and freed after the lock is released.
fn flushdb(c: &mut Ctx) -> CmdResult {
    let is_async = flush_is_async(c)?;
    let dbi = c.store.db;
    let mut old = Vec::new();
    let mut removed = 0;
    for i in 0..SHARDS {
        let part = c.store.with_shard(i, |s| s.db(dbi).take());
        if !part.is_empty() {
            removed += part.len() as u64;
            old.push(part);
        }
        if !is_async {
            old.clear();
        }
    }
    c.store.db_replaced(dbi, removed);
    crate::tracking::invalidate_all(c.server);
    dispose(c, old, is_async);
    c.out.ok();
    Ok(())
}

/// FLUSHALL holds every shard (ALL_SHARDS), so no client sees a
/// half-flushed keyspace.
fn flushall(c: &mut Ctx) -> CmdResult {
    let is_async = flush_is_async(c)?;
    let databases = c.server.keyspace.databases();
    let mut old = Vec::new();
    let mut removed = vec![0u64; databases];
    for i in 0..SHARDS {
        c.store.with_shard(i, |s| {
            for (dbi, db) in s.dbs.iter_mut().enumerate() {
                if !db.is_empty() {
                    removed[dbi] += db.len() as u64;
                    old.push(db.take());
                }
            }
        });
    }
    for (dbi, n) in removed.into_iter().enumerate() {
        c.store.db_replaced(dbi, n);
    }
    crate::tracking::invalidate_all(c.server);
    // Redis counts the flush itself as a change even on an empty keyspace.
    c.server
        .dirty
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dispose(c, old, is_async);
    c.out.ok();
    Ok(())
}

fn swapdb(c: &mut Ctx) -> CmdResult {
    let first = db_arg(&c.args[1], "ERR invalid first DB index")?;
    let second = db_arg(&c.args[2], "ERR invalid second DB index")?;
    let n = c.server.keyspace.databases() as i64;
    if !(0..n).contains(&first) || !(0..n).contains(&second) {
        return Err(err::DB_RANGE.into());
    }
    let (a, b) = (first as usize, second as usize);
    if a != b {
        for i in 0..SHARDS {
            c.store.with_shard(i, |s| s.swap_dbs(a, b));
        }
        c.store.db_replaced(a, 1);
        c.store.db_replaced(b, 0);
        wake_ready_keys(c, a);
        wake_ready_keys(c, b);
    }
    c.out.ok();
    Ok(())
}

/// After SWAPDB, clients blocked on keys of `db` may find elements in the
/// swapped-in data (Redis's scanDatabaseForReadyKeys): wake them. A woken
/// client re-checks the type and blocks again if it cannot take.
fn wake_ready_keys(c: &mut Ctx, db: usize) {
    for key in crate::blocking::keys_in_db(db) {
        let len = match c.store.entry_in(db, &key).map(|e| &e.value) {
            Some(Value::List(l)) => l.len(),
            Some(Value::ZSet(z)) => z.len(),
            _ => continue,
        };
        crate::blocking::signal(db, &key, len);
    }
}

/// An int-range database index, with SWAPDB's own error text.
fn db_arg(arg: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    canonical_i64(arg)
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_keyspace::{hash_bytes, Keyspace};
    use std::collections::HashSet;

    #[test]
    fn cursor_parsing_follows_string2ull() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"-1"), None);
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b" 7"), Some(7));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"-01"), Some(u64::MAX));
        assert_eq!(parse_cursor(b""), None);
        assert_eq!(parse_cursor(b" "), None);
        assert_eq!(parse_cursor(b"1a"), None);
        assert_eq!(parse_cursor(b"7 "), None);
        assert_eq!(parse_cursor(b"3\0junk"), Some(3));
    }

    #[test]
    fn idle_time_wraps_with_the_clock() {
        assert_eq!(idle_secs(10, 15_999), 5);
        assert_eq!(idle_secs(65_535, 65_536 * 1000 + 2_000), 3);
        assert_eq!(idle_secs(7, 7_000), 0);
    }

    #[test]
    fn walk_visits_shards_in_order_and_encodes_cursors() {
        // Stop after the first step in shard 3 with dict cursor 9.
        let next = walk_shards(3, |shard, dc| {
            assert_eq!((shard, dc), (3, 0));
            (9, true)
        });
        assert_eq!(next, (9 << SHARD_BITS) | 3);
        // Resuming finishes every later shard and ends at 0.
        let mut seen = vec![];
        let next = walk_shards(next, |shard, dc| {
            seen.push(shard);
            assert_eq!(dc, if shard == 3 { 9 } else { 0 });
            (0, false)
        });
        assert_eq!(next, 0);
        assert_eq!(seen, (3..SHARDS).collect::<Vec<_>>());
    }

    fn put(ks: &Keyspace, k: &[u8], expire: Option<u64>) {
        let h = hash_bytes(k);
        let mut l = ks.lock_hashes(&[h]);
        let v = Value::Str(StrValue::from_bytes(b"v"));
        l.shard(h).db(0).insert(h, k, v, expire, 0);
    }

    fn del(ks: &Keyspace, k: &[u8]) {
        let h = hash_bytes(k);
        ks.lock_hashes(&[h]).shard(h).db(0).remove(h, k);
    }

    /// One SCAN call as the command makes it, on a bare keyspace.
    fn scan_call(ks: &Keyspace, cursor: u64, count: usize, now: u64) -> (u64, Vec<Bytes>) {
        let mut batch = ScanBatch::new(count);
        let next = walk_shards(cursor, |i, dc| {
            let mut shard = ks.lock_shard(i);
            let db = shard.db(0);
            let next = batch.scan_db(db, dc, now);
            batch.delete_expired(db);
            (next, batch.done())
        });
        (next, batch.found.into_iter().map(|f| f.key).collect())
    }

    #[test]
    fn sharded_scan_returns_stable_keys_while_tables_resize() {
        let ks = Keyspace::new(1);
        let key = |p: &str, i: u32| format!("{p}:{i}").into_bytes();
        for i in 0..2_000 {
            put(&ks, &key("stable", i), None);
        }
        for i in 0..20_000 {
            put(&ks, &key("churn", i), None);
        }
        let mut seen = HashSet::new();
        let (mut cursor, mut round) = (0, 0u32);
        loop {
            let (next, keys) = scan_call(&ks, cursor, 10, 0);
            seen.extend(keys);
            // Shrink then grow every shard's table under the scan.
            for j in 0..40 {
                let n = round * 40 + j;
                if n < 20_000 {
                    del(&ks, &key("churn", n));
                } else {
                    put(&ks, &key("grow", n), None);
                }
            }
            round += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..2_000 {
            assert!(seen.contains(&key("stable", i)[..]), "missed stable:{i}");
        }
    }

    #[test]
    fn small_db_scans_in_one_call_and_skips_expired() {
        let ks = Keyspace::new(1);
        for i in 0..8 {
            put(&ks, format!("k{i}").as_bytes(), None);
        }
        put(&ks, b"gone", Some(50));
        let (next, keys) = scan_call(&ks, 0, 10, 100);
        assert_eq!(next, 0);
        assert_eq!(keys.len(), 8);
        assert!(!keys.iter().any(|k| &k[..] == b"gone"));
        let h = hash_bytes(b"gone");
        assert!(ks
            .lock_hashes(&[h])
            .shard(h)
            .db(0)
            .peek(h, b"gone", 0)
            .is_none());
    }
}
