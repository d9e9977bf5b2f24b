//! String commands (Redis's t_string.c).

use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::{StrValue, Value};
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "string";
const K1: Keys = Keys::Range(1, 1, 1);
/// MGET: every argument is a key.
const KALL: Keys = Keys::Range(1, -1, 1);
/// MSET/MSETNX: key value pairs.
const KPAIRS: Keys = Keys::Range(1, -1, 2);

pub static COMMANDS: &[Spec] = &[
    Spec::new("get", 2, READONLY | FAST, K1, get).group(G, "1.0.0").doc("Returns the string value of a key."),
    Spec::new("set", -3, WRITE | DENYOOM, K1, set).group(G, "1.0.0").doc("Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    Spec::new("setnx", 3, WRITE | DENYOOM | FAST, K1, setnx).group(G, "1.0.0").doc("Set the string value of a key only when the key doesn't exist."),
    Spec::new("setex", 4, WRITE | DENYOOM, K1, setex).group(G, "2.0.0").doc("Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    Spec::new("psetex", 4, WRITE | DENYOOM, K1, psetex).group(G, "2.6.0").doc("Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    Spec::new("getex", -2, WRITE | FAST, K1, getex).group(G, "6.2.0").doc("Returns the string value of a key after setting its expiration time."),
    Spec::new("getdel", 2, WRITE | FAST, K1, getdel).group(G, "6.2.0").doc("Returns the string value of a key after deleting the key."),
    Spec::new("getset", 3, WRITE | DENYOOM | FAST, K1, getset).group(G, "1.0.0").doc("Returns the previous string value of a key after setting it to a new value."),
    Spec::new("mget", -2, READONLY | FAST, KALL, mget).group(G, "1.0.0").doc("Atomically returns the string values of one or more keys."),
    Spec::new("mset", -3, WRITE | DENYOOM, KPAIRS, mset).group(G, "1.0.1").doc("Atomically creates or modifies the string values of one or more keys."),
    Spec::new("msetnx", -3, WRITE | DENYOOM, KPAIRS, msetnx).group(G, "1.0.1").doc("Atomically modifies the string values of one or more keys only when all keys don't exist."),
    Spec::new("append", 3, WRITE | DENYOOM | FAST, K1, append).group(G, "2.0.0").doc("Appends a string to the value of a key. Creates the key if it doesn't exist."),
    Spec::new("strlen", 2, READONLY | FAST, K1, strlen).group(G, "2.2.0").doc("Returns the length of a string value."),
    Spec::new("getrange", 4, READONLY, K1, getrange).group(G, "2.4.0").doc("Returns a substring of the string stored at a key."),
    Spec::new("substr", 4, READONLY, K1, getrange).group(G, "1.0.0").doc("Returns a substring from a string value."),
    Spec::new("setrange", 4, WRITE | DENYOOM, K1, setrange).group(G, "2.2.0").doc("Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    Spec::new("incr", 2, WRITE | DENYOOM | FAST, K1, incr).group(G, "1.0.0").doc("Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    Spec::new("decr", 2, WRITE | DENYOOM | FAST, K1, decr).group(G, "1.0.0").doc("Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    Spec::new("incrby", 3, WRITE | DENYOOM | FAST, K1, incrby).group(G, "1.0.0").doc("Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    Spec::new("decrby", 3, WRITE | DENYOOM | FAST, K1, decrby).group(G, "1.0.0").doc("Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    Spec::new("incrbyfloat", 3, WRITE | DENYOOM | FAST, K1, incrbyfloat).group(G, "2.6.0").doc("Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    Spec::new("lcs", -3, READONLY, Keys::Range(1, 2, 1), lcs).group(G, "7.0.0").doc("Finds the longest common substring."),
];

// ---------------------------------------------------------------- replies

/// Writes a string value as a bulk reply (large values without copying).
pub fn reply_str(out: &mut granary_protocol::Reply, v: &StrValue) {
    match v {
        StrValue::Heap(b) | StrValue::Raw(b) => out.bulk_shared(b),
        StrValue::Int(i) => out.bulk_int(*i),
        other => out.bulk(other.bytes(&mut itoa::Buffer::new())),
    }
}

// ------------------------------------------------- SET / GETEX options

/// How an EX/PX/EXAT/PXAT argument is read.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ExpireUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireUnit {
    fn parse(word: &[u8]) -> Option<ExpireUnit> {
        [
            ("EX", ExpireUnit::Ex),
            ("PX", ExpireUnit::Px),
            ("EXAT", ExpireUnit::ExAt),
            ("PXAT", ExpireUnit::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| is(word, name))
        .map(|(_, u)| u)
    }

    fn is_absolute(self) -> bool {
        matches!(self, ExpireUnit::ExAt | ExpireUnit::PxAt)
    }
}

/// The options of SET (NX/XX/GET/KEEPTTL/EX...) and GETEX (PERSIST/EX...).
#[derive(Default)]
struct StrOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// The last expire option and its still unparsed number: Redis checks
    /// the whole syntax before it reads the number.
    expire: Option<(ExpireUnit, &'a [u8])>,
}

/// Redis's parseExtendedStringArgumentsOrReply: options may repeat, but
/// conflicting ones (NX with XX, two different expire forms, KEEPTTL or
/// PERSIST with an expire) are a syntax error.
fn parse_opts(args: &[Bytes], first: usize, for_set: bool) -> Result<StrOpts<'_>, CmdError> {
    let mut o = StrOpts::default();
    let mut i = first;
    while i < args.len() {
        let a = &args[i][..];
        let next = args.get(i + 1);
        let unit = ExpireUnit::parse(a);
        let other_expire = |u: ExpireUnit| o.expire.is_some_and(|(cur, _)| cur != u);
        if for_set && is(a, "NX") && !o.xx {
            o.nx = true;
        } else if for_set && is(a, "XX") && !o.nx {
            o.xx = true;
        } else if for_set && is(a, "GET") {
            o.get = true;
        } else if for_set && is(a, "KEEPTTL") && o.expire.is_none() {
            o.keepttl = true;
        } else if !for_set && is(a, "PERSIST") && o.expire.is_none() {
            o.persist = true;
        } else if let (Some(u), Some(n)) = (unit, next) {
            if o.keepttl || o.persist || other_expire(u) {
                return Err(err::SYNTAX.into());
            }
            o.expire = Some((u, n));
            i += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    Ok(o)
}

/// Turns an expire argument into an absolute time in ms, with Redis's
/// "invalid expire time in '<cmd>' command" for non-positive or
/// overflowing values.
pub fn expire_at(now: u64, cmd: &str, unit: ExpireUnit, n: &[u8]) -> Result<u64, CmdError> {
    let n = parse_i64(n)?;
    let bad = || -> CmdError { format!("ERR invalid expire time in '{cmd}' command").into() };
    let seconds = matches!(unit, ExpireUnit::Ex | ExpireUnit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(bad());
    }
    let ms = if seconds { n * 1000 } else { n };
    let at = if unit.is_absolute() {
        ms
    } else {
        ms.checked_add(now as i64).ok_or_else(bad)?
    };
    Ok(at as u64)
}

/// Stores a string with an optional TTL; a TTL already in the past leaves
/// no key behind (as Redis's expire-on-access would).
fn put(c: &mut Ctx, key: &[u8], v: StrValue, ttl: Option<u64>) {
    if ttl.is_some_and(|t| t <= c.store.now) {
        c.store.remove(key);
    } else {
        c.store.set(key, Value::Str(v), ttl);
    }
}

/// Redis's setGenericCommand without its final reply: with GET it replies
/// the old value itself. Returns whether the value was stored (NX/XX).
fn set_generic(c: &mut Ctx, val: &Bytes, o: &StrOpts, ttl: Option<u64>) -> Result<bool, CmdError> {
    let key = &c.args[1];
    let found = if o.get {
        match c.store.read_str(key)? {
            Some(v) => {
                reply_str(c.out, v);
                true
            }
            None => {
                c.out.null();
                false
            }
        }
    } else if o.nx || o.xx {
        c.store.entry(key).is_some()
    } else {
        false
    };
    if (o.nx && found) || (o.xx && !found) {
        return Ok(false);
    }
    let ttl = if o.keepttl {
        c.store.expire_of(key)
    } else {
        ttl
    };
    put(c, key, StrValue::from_arg(val), ttl);
    c.notify(class::STRING, "set", key);
    if ttl.is_some() && !o.keepttl {
        c.notify(class::GENERIC, "expire", key);
    }
    Ok(true)
}

fn get(c: &mut Ctx) -> CmdResult {
    match c.store.read_str(&c.args[1])? {
        None => c.out.null(),
        Some(v) => reply_str(c.out, v),
    }
    Ok(())
}

fn set(c: &mut Ctx) -> CmdResult {
    let o = parse_opts(c.args, 3, true)?;
    let ttl = match o.expire {
        Some((u, n)) => Some(expire_at(c.store.now, c.spec.name, u, n)?),
        None => None,
    };
    let stored = set_generic(c, &c.args[2], &o, ttl)?;
    if !o.get {
        if stored {
            c.out.ok();
        } else {
            c.out.null();
        }
    }
    Ok(())
}

fn setnx(c: &mut Ctx) -> CmdResult {
    let o = StrOpts {
        nx: true,
        ..Default::default()
    };
    let stored = set_generic(c, &c.args[2], &o, None)?;
    c.out.int(stored as i64);
    Ok(())
}

/// SETEX and PSETEX: SET key value EX/PX n.
fn set_with_ttl(c: &mut Ctx, unit: ExpireUnit) -> CmdResult {
    let ttl = expire_at(c.store.now, c.spec.name, unit, &c.args[2])?;
    set_generic(c, &c.args[3], &StrOpts::default(), Some(ttl))?;
    c.out.ok();
    Ok(())
}

fn setex(c: &mut Ctx) -> CmdResult {
    set_with_ttl(c, ExpireUnit::Ex)
}

fn psetex(c: &mut Ctx) -> CmdResult {
    set_with_ttl(c, ExpireUnit::Px)
}

fn getex(c: &mut Ctx) -> CmdResult {
    let o = parse_opts(c.args, 2, false)?;
    let key = &c.args[1];
    let (now, name) = (c.store.now, c.spec.name);
    // Redis looks the key up (and type-checks it) before it validates the
    // expire time, so a missing key answers nil whatever the number.
    let ttl = match c.store.read_str(key)? {
        None => {
            c.out.null();
            return Ok(());
        }
        Some(v) => {
            let ttl = match o.expire {
                Some((u, n)) => Some((u, expire_at(now, name, u, n)?)),
                None => None,
            };
            reply_str(c.out, v);
            ttl
        }
    };
    match ttl {
        Some((u, at)) if u.is_absolute() && at <= now => {
            c.store.remove(key);
            c.notify(class::GENERIC, "del", key);
        }
        Some((_, at)) => {
            c.store.set_expire(key, Some(at));
            c.notify(class::GENERIC, "expire", key);
        }
        None if o.persist && c.store.expire_of(key).is_some() => {
            c.store.set_expire(key, None);
            c.notify(class::GENERIC, "persist", key);
        }
        None => {}
    }
    Ok(())
}

fn getdel(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    match c.store.read_str(key)? {
        None => c.out.null(),
        Some(v) => {
            reply_str(c.out, v);
            c.store.remove(key);
            c.notify(class::GENERIC, "del", key);
        }
    }
    Ok(())
}

fn getset(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    match c.store.read_str(key)? {
        None => c.out.null(),
        Some(v) => reply_str(c.out, v),
    }
    c.store
        .set(key, Value::Str(StrValue::from_arg(&c.args[2])), None);
    c.notify(class::STRING, "set", key);
    Ok(())
}

fn mget(c: &mut Ctx) -> CmdResult {
    let keys = &c.args[1..];
    c.out.array(keys.len());
    for k in keys {
        // A key of another type reads as nil, not as an error.
        match c.store.read_str(k) {
            Ok(Some(v)) => reply_str(c.out, v),
            _ => c.out.null(),
        }
    }
    Ok(())
}

/// MSET and MSETNX (`nx`): key value pairs, all set or (MSETNX) none.
fn mset_generic(c: &mut Ctx, nx: bool) -> Result<bool, CmdError> {
    // A key without its value.
    if c.args[1..].len() % 2 == 1 {
        return Err(c.arity_error());
    }
    let pairs = c.args[1..].chunks_exact(2);
    if nx && pairs.clone().any(|p| c.store.entry(&p[0]).is_some()) {
        return Ok(false);
    }
    for p in pairs {
        c.store
            .set(&p[0], Value::Str(StrValue::from_arg(&p[1])), None);
        c.notify(class::STRING, "set", &p[0]);
    }
    Ok(true)
}

fn mset(c: &mut Ctx) -> CmdResult {
    mset_generic(c, false)?;
    c.out.ok();
    Ok(())
}

fn msetnx(c: &mut Ctx) -> CmdResult {
    let done = mset_generic(c, true)?;
    c.out.int(done as i64);
    Ok(())
}

fn strlen(c: &mut Ctx) -> CmdResult {
    let n = c.store.read_str(&c.args[1])?.map_or(0, |v| v.len());
    c.out.int(n as i64);
    Ok(())
}

// ------------------------------------------------------------ ranges

/// GETRANGE's byte range of a `len`-byte string, as Redis clamps it.
fn clamp_range(len: usize, start: i64, end: i64) -> Option<std::ops::Range<usize>> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    if start > end || len == 0 {
        return None;
    }
    Some(start as usize..end as usize + 1)
}

/// GETRANGE and SUBSTR.
fn getrange(c: &mut Ctx) -> CmdResult {
    let start = parse_i64(&c.args[2])?;
    let end = parse_i64(&c.args[3])?;
    let Some(v) = c.store.read_str(&c.args[1])? else {
        c.out.bulk(b"");
        return Ok(());
    };
    match (clamp_range(v.len(), start, end), v) {
        (None, _) => c.out.bulk(b""),
        (Some(r), StrValue::Heap(b) | StrValue::Raw(b)) => c.out.bulk_shared(&b.slice(r)),
        (Some(r), v) => c.out.bulk(&v.bytes(&mut itoa::Buffer::new())[r]),
    }
    Ok(())
}

/// proto-max-bulk-len: the longest string a command may build.
fn max_len(c: &Ctx) -> u64 {
    c.server.config.hot.proto_max_bulk_len.load(Relaxed).max(0) as u64
}

/// Redis's checkStringLength: a result longer than proto-max-bulk-len is
/// refused.
fn check_len(max: u64, size: u64, append: u64) -> CmdResult {
    match size.checked_add(append) {
        Some(total) if total <= max => Ok(()),
        _ => Err(err::STRING_TOO_LONG.into()),
    }
}

/// Capacity to allocate for a string about to reach `need` bytes. The
/// first growth follows Redis's sds policy (double below 1 MB, else 1 MB
/// spare); a string that already grew keeps growing geometrically, so
/// repeated APPENDs stay amortised O(1) per byte.
fn growth_target(len: usize, cap: usize, need: usize) -> usize {
    const MB: usize = 1 << 20;
    let greedy = if need < MB { need * 2 } else { need + MB };
    if cap > len {
        greedy.max(need + need / 2)
    } else {
        greedy
    }
}

/// The value's bytes as a growable buffer with room for `need` bytes.
/// A heap value nobody else holds is taken over without copying.
pub(crate) fn take_buf(v: &mut StrValue, need: usize) -> Vec<u8> {
    let len = v.len();
    let target = |cap: usize| {
        if need > cap {
            growth_target(len, cap, need)
        } else {
            cap
        }
    };
    match v {
        StrValue::Heap(b) | StrValue::Raw(b) if b.is_unique() => {
            let mut buf = Vec::from(std::mem::take(&mut **b));
            let extra = target(buf.capacity()) - buf.len();
            buf.reserve_exact(extra);
            buf
        }
        other => {
            let mut buf = Vec::with_capacity(target(len));
            buf.extend_from_slice(other.bytes(&mut itoa::Buffer::new()));
            buf
        }
    }
}

/// What APPEND and SETRANGE build: Redis edits a private raw copy, so
/// OBJECT ENCODING says `raw` even for a short or numeric result.
pub(crate) fn from_buf(buf: Vec<u8>) -> StrValue {
    StrValue::Raw(Box::new(Bytes::from(buf)))
}

fn append(c: &mut Ctx) -> CmdResult {
    let (key, tail) = (&c.args[1], &c.args[2]);
    let max = max_len(c);
    let len = match c.store.str_mut(key)? {
        None => {
            c.store.set(key, Value::Str(StrValue::from_arg(tail)), None);
            tail.len()
        }
        Some(v) => {
            let total = v.len() + tail.len();
            check_len(max, v.len() as u64, tail.len() as u64)?;
            // Even an empty tail leaves a raw string, as in Redis.
            let mut buf = take_buf(v, total);
            buf.extend_from_slice(tail);
            *v = from_buf(buf);
            c.store.modified(c.store.db, key);
            total
        }
    };
    c.notify(class::STRING, "append", key);
    c.out.int(len as i64);
    Ok(())
}

fn setrange(c: &mut Ctx) -> CmdResult {
    let (key, patch) = (&c.args[1], &c.args[3]);
    let offset = parse_i64(&c.args[2])?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let old_len = c.store.str_mut(key)?.map(|v| v.len());
    if patch.is_empty() {
        // Nothing to write: the length, and no key is created.
        c.out.int(old_len.unwrap_or(0) as i64);
        return Ok(());
    }
    check_len(max_len(c), offset as u64, patch.len() as u64)?;
    let (off, end) = (offset as usize, offset as usize + patch.len());
    let new_len = match c.store.str_mut(key)? {
        None => {
            let mut buf = vec![0; end];
            buf[off..].copy_from_slice(patch);
            c.store.set(key, Value::Str(from_buf(buf)), None);
            end
        }
        Some(v) => {
            let need = end.max(v.len());
            let mut buf = take_buf(v, need);
            buf.resize(need, 0);
            buf[off..end].copy_from_slice(patch);
            *v = from_buf(buf);
            c.store.modified(c.store.db, key);
            need
        }
    };
    c.notify(class::STRING, "setrange", key);
    c.out.int(new_len as i64);
    Ok(())
}

// ------------------------------------------------------------ counters

/// INCR and friends: the stored integer changes in place, keeping its TTL.
fn incr_by(c: &mut Ctx, delta: i64) -> CmdResult {
    let key = &c.args[1];
    let new = match c.store.str_mut(key)? {
        None => {
            c.store.set(key, Value::Str(StrValue::Int(delta)), None);
            delta
        }
        Some(v) => {
            let cur = match v {
                StrValue::Int(i) => *i,
                ref other => other.as_int().ok_or(err::NOT_INT)?,
            };
            let new = cur.checked_add(delta).ok_or(err::OVERFLOW)?;
            *v = StrValue::Int(new);
            c.store.modified(c.store.db, key);
            new
        }
    };
    c.notify(class::STRING, "incrby", key);
    c.out.int(new);
    Ok(())
}

fn incr(c: &mut Ctx) -> CmdResult {
    incr_by(c, 1)
}

fn decr(c: &mut Ctx) -> CmdResult {
    incr_by(c, -1)
}

fn incrby(c: &mut Ctx) -> CmdResult {
    let n = parse_i64(&c.args[2])?;
    incr_by(c, n)
}

fn decrby(c: &mut Ctx) -> CmdResult {
    let n = parse_i64(&c.args[2])?;
    let n = n.checked_neg().ok_or("ERR decrement would overflow")?;
    incr_by(c, n)
}

fn incrbyfloat(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    let cur = match c.store.str_mut(key)? {
        None => crate::longdouble::F80::ZERO,
        Some(v) => {
            crate::longdouble::parse(v.bytes(&mut itoa::Buffer::new())).ok_or(err::NOT_FLOAT)?
        }
    };
    let incr = crate::longdouble::parse(&c.args[2]).ok_or(err::NOT_FLOAT)?;
    let sum =
        crate::longdouble::add(cur, incr).ok_or("ERR increment would produce NaN or Infinity")?;
    let text = crate::longdouble::to_human(sum);
    // Redis stores the result as a plain string (embstr), not an integer.
    let v = if text.len() <= 22 {
        let mut data = [0; 22];
        data[..text.len()].copy_from_slice(text.as_bytes());
        StrValue::Inline {
            len: text.len() as u8,
            data,
        }
    } else {
        StrValue::Heap(Box::new(Bytes::from(text.clone())))
    };
    match c.store.str_mut(key)? {
        Some(old) => {
            *old = v;
            c.store.modified(c.store.db, key);
        }
        None => {
            c.store.set(key, Value::Str(v), None);
        }
    }
    c.notify(class::STRING, "incrbyfloat", key);
    c.out.bulk(text.as_bytes());
    Ok(())
}

// ------------------------------------------------------------------ LCS

/// One common run found by LCS IDX: inclusive ranges in each string.
struct Match {
    a: (usize, usize),
    b: (usize, usize),
}

impl Match {
    fn len(&self) -> usize {
        self.a.1 - self.a.0 + 1
    }
}

/// The LCS table of `a` and `b`: cell (i, j) holds the LCS length of
/// a[..i] and b[..j], row-major with `b.len() + 1` columns.
fn lcs_table(a: &[u8], b: &[u8]) -> Result<Vec<u32>, CmdError> {
    let cols = b.len() + 1;
    let cells = (a.len() + 1) * cols;
    let mut t = Vec::new();
    t.try_reserve_exact(cells)
        .map_err(|_| "ERR Insufficient memory, failed allocating transient memory for LCS")?;
    t.resize(cells, 0u32);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * cols + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * cols + j - 1] + 1
            } else {
                t[(i - 1) * cols + j].max(t[i * cols + j - 1])
            };
        }
    }
    Ok(t)
}

/// Walks the table back from the end, as Redis does, collecting the LCS
/// bytes and the matching runs (last run first).
fn lcs_walk(a: &[u8], b: &[u8], t: &[u32]) -> (Vec<u8>, Vec<Match>) {
    let cols = b.len() + 1;
    let mut out = vec![0u8; t[a.len() * cols + b.len()] as usize];
    let mut idx = out.len();
    let mut runs = Vec::new();
    let mut cur: Option<Match> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            out[idx - 1] = a[i - 1];
            idx -= 1;
            let m = match cur.take() {
                // Contiguous with the run being built: extend it backward.
                Some(mut m) if m.a.0 == i && m.b.0 == j => {
                    m.a.0 -= 1;
                    m.b.0 -= 1;
                    m
                }
                Some(m) => {
                    runs.push(m);
                    Match {
                        a: (i - 1, i - 1),
                        b: (j - 1, j - 1),
                    }
                }
                None => Match {
                    a: (i - 1, i - 1),
                    b: (j - 1, j - 1),
                },
            };
            i -= 1;
            j -= 1;
            cur = Some(m);
        } else {
            if t[(i - 1) * cols + j] > t[i * cols + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if let Some(m) = cur.take() {
                runs.push(m);
            }
        }
    }
    runs.extend(cur);
    (out, runs)
}

fn lcs(c: &mut Ctx) -> CmdResult {
    const TYPE: &str = "ERR The specified keys must contain string values";
    // Redis looks both keys up (a keyspace hit or miss each) before it
    // checks their types.
    let a = c
        .store
        .read_str(&c.args[1])
        .map(|v| v.map(|v| v.to_bytes()));
    let b = c
        .store
        .read_str(&c.args[2])
        .map(|v| v.map(|v| v.to_bytes()));
    let (Ok(a), Ok(b)) = (a, b) else {
        return Err(TYPE.into());
    };
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    let (mut want_len, mut want_idx, mut with_len) = (false, false, false);
    let mut min_len = 0i64;
    let mut i = 3;
    while i < c.args.len() {
        let o = &c.args[i];
        if is(o, "IDX") {
            want_idx = true;
        } else if is(o, "LEN") {
            want_len = true;
        } else if is(o, "WITHMATCHLEN") {
            with_len = true;
        } else if is(o, "MINMATCHLEN") && i + 1 < c.args.len() {
            min_len = parse_i64(&c.args[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if want_idx && want_len {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err("ERR String too long for LCS".into());
    }
    let max = c.server.config.hot.proto_max_bulk_len.load(Relaxed).max(0) as u128;
    if (a.len() as u128 + 1) * (b.len() as u128 + 1) * 4 > max {
        return Err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into(),
        );
    }
    let t = lcs_table(&a, &b)?;
    let total = t[t.len() - 1] as i64;
    if want_len {
        c.out.int(total);
        return Ok(());
    }
    let (common, runs) = lcs_walk(&a, &b, &t);
    if !want_idx {
        c.out.bulk(&common);
        return Ok(());
    }
    let runs: Vec<&Match> = runs.iter().filter(|m| m.len() as i64 >= min_len).collect();
    c.out.map(2);
    c.out.bulk(b"matches");
    c.out.array(runs.len());
    for m in runs {
        c.out.array(2 + with_len as usize);
        for (s, e) in [m.a, m.b] {
            c.out.array(2);
            c.out.int(s as i64);
            c.out.int(e as i64);
        }
        if with_len {
            c.out.int(m.len() as i64);
        }
    }
    c.out.bulk(b"len");
    c.out.int(total);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_clamps_like_redis() {
        assert_eq!(clamp_range(5, 0, -1), Some(0..5));
        assert_eq!(clamp_range(5, -3, -1), Some(2..5));
        assert_eq!(clamp_range(5, -1, -3), None);
        assert_eq!(clamp_range(5, 10, 20), None);
        assert_eq!(clamp_range(5, 0, -100), Some(0..1));
        assert_eq!(clamp_range(0, 0, -1), None);
        assert_eq!(clamp_range(5, i64::MIN, i64::MAX), Some(0..5));
    }

    #[test]
    fn lcs_runs_like_redis() {
        let (a, b) = (b"ohmytext", b"mynewtext");
        let t = lcs_table(a, b).unwrap();
        let (s, runs) = lcs_walk(a, b, &t);
        assert_eq!(s, b"mytext");
        let r: Vec<_> = runs.iter().map(|m| (m.a, m.b)).collect();
        assert_eq!(r, vec![((4, 7), (5, 8)), ((2, 3), (0, 1))]);
    }

    #[test]
    fn appends_reuse_their_buffer() {
        let mut v = StrValue::from_bytes(&[b'x'; 100]);
        let mut last = 0;
        let mut moves = 0;
        for _ in 0..10_000 {
            let need = v.len() + 10;
            let mut buf = take_buf(&mut v, need);
            buf.extend_from_slice(b"0123456789");
            if buf.as_ptr() as usize != last {
                moves += 1;
                last = buf.as_ptr() as usize;
            }
            v = from_buf(buf);
        }
        assert_eq!(v.len(), 100_100);
        assert!(moves < 40, "{moves} reallocations");
    }
}
