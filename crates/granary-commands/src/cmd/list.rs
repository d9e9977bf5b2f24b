//! List commands (Redis's t_list.c).

use crate::blocking::{self, may_take, parse_timeout, served, Waiter};
use crate::cmd::writebehind;
use crate::ctx::{err, Action, CmdError, CmdResult, Ctx, Store};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::types::list::{Elem, ListValue};
use granary_keyspace::{canonical_i64, StrValue, Value};
use granary_protocol::Reply;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

const G: &str = "list";
const K1: Keys = Keys::Range(1, 1, 1);
const K2: Keys = Keys::Range(1, 2, 1);

pub static COMMANDS: &[Spec] = &[
    Spec::new("lpush", -3, WRITE | DENYOOM | FAST, K1, lpush).group(G, "1.0.0").doc("Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    Spec::new("rpush", -3, WRITE | DENYOOM | FAST, K1, rpush).group(G, "1.0.0").doc("Appends one or more elements to a list. Creates the key if it doesn't exist."),
    Spec::new("lpushx", -3, WRITE | DENYOOM | FAST, K1, lpushx).group(G, "2.2.0").doc("Prepends one or more elements to a list only when the list exists."),
    Spec::new("rpushx", -3, WRITE | DENYOOM | FAST, K1, rpushx).group(G, "2.2.0").doc("Appends an element to a list only when the list exists."),
    Spec::new("lpop", -2, WRITE | FAST, K1, lpop).group(G, "1.0.0").doc("Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    Spec::new("rpop", -2, WRITE | FAST, K1, rpop).group(G, "1.0.0").doc("Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    Spec::new("llen", 2, READONLY | FAST, K1, llen).group(G, "1.0.0").doc("Returns the length of a list."),
    Spec::new("lrange", 4, READONLY, K1, lrange).group(G, "1.0.0").doc("Returns a range of elements from a list."),
    Spec::new("lindex", 3, READONLY, K1, lindex).group(G, "1.0.0").doc("Returns an element from a list by its index."),
    Spec::new("lset", 4, WRITE | DENYOOM, K1, lset).group(G, "1.0.0").doc("Sets the value of an element in a list by its index."),
    Spec::new("linsert", 5, WRITE | DENYOOM, K1, linsert).group(G, "2.2.0").doc("Inserts an element before or after another element in a list."),
    Spec::new("lrem", 4, WRITE, K1, lrem).group(G, "1.0.0").doc("Removes elements from a list. Deletes the list if the last element was removed."),
    Spec::new("ltrim", 4, WRITE, K1, ltrim).group(G, "1.0.0").doc("Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    Spec::new("lpos", -3, READONLY, K1, lpos).group(G, "6.0.6").doc("Returns the index of matching elements in a list."),
    Spec::new("lmove", 5, WRITE | DENYOOM, K2, lmove).group(G, "6.2.0").doc("Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    Spec::new("rpoplpush", 3, WRITE | DENYOOM, K2, rpoplpush).group(G, "1.2.0").doc("Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    Spec::new("blpop", -3, WRITE | BLOCKING, Keys::Range(1, -2, 1), blpop).group(G, "2.0.0").doc("Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    Spec::new("brpop", -3, WRITE | BLOCKING, Keys::Range(1, -2, 1), brpop).group(G, "2.0.0").doc("Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    Spec::new("blmove", 6, WRITE | DENYOOM | BLOCKING, K2, blmove).group(G, "6.2.0").doc("Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    Spec::new("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, K2, brpoplpush).group(G, "2.2.0").doc("Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    Spec::new("blmpop", -5, WRITE | BLOCKING, Keys::Custom(blmpop_keys), blmpop).group(G, "7.0.0").doc("Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    Spec::new("lmpop", -4, WRITE, Keys::Custom(lmpop_keys), lmpop).group(G, "7.0.0").doc("Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
];

// ---------------------------------------------------------------- helpers

fn fill(c: &Ctx) -> i64 {
    c.server.config.hot.list_max_listpack_size.load(Relaxed)
}

/// The list at `key`, or WRONGTYPE. `read` counts keyspace hits/misses.
fn list_at<'s>(
    store: &'s mut Store,
    key: &[u8],
    read: bool,
) -> Result<Option<&'s mut ListValue>, CmdError> {
    store.typed(key, read, |v| match v {
        Value::List(l) => Some(&mut **l),
        _ => None,
    })
}

/// After elements were removed from `key` by `event` (notified): deletes
/// it if empty ("del"), else lets it shrink back to a listpack; reports the
/// write either way.
fn after_removal(c: &mut Ctx, key: &[u8], event: &str) {
    c.notify(class::LIST, event, key);
    let fill = fill(c);
    let empty = match list_at(&mut c.store, key, false) {
        Ok(Some(l)) => {
            l.shrink(fill);
            l.is_empty()
        }
        _ => return,
    };
    if empty {
        c.store.remove(key);
        c.notify(class::GENERIC, "del", key);
    } else {
        let db = c.store.db;
        c.store.modified(db, key);
    }
}

/// The bytes Redis's listTypeTryConvertListpack counts for an element:
/// raw argument strings count their length; an element popped from a list
/// is an integer object if it is integer-like, and counts nothing.
fn moved_bytes(v: &[u8]) -> usize {
    if canonical_i64(v).is_some() {
        0
    } else {
        v.len()
    }
}

fn reply_item(out: &mut Reply, v: &StrValue) {
    super::string::reply_str(out, v);
}

/// Replies with an element read in place.
fn reply_elem(out: &mut Reply, v: Elem) {
    match v {
        Elem::Int(i) => out.bulk_int(i),
        Elem::Str(s) => out.bulk(s),
    }
}

/// Redis's "ERR value is out of range, must be positive" count parser.
fn positive_count(arg: &[u8]) -> Result<i64, CmdError> {
    match canonical_i64(arg) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err("ERR value is out of range, must be positive".into()),
    }
}

/// LEFT / RIGHT, true for LEFT (the head).
fn parse_side(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "LEFT") {
        Ok(true)
    } else if is(arg, "RIGHT") {
        Ok(false)
    } else {
        Err(err::SYNTAX.into())
    }
}

/// Resolves a possibly negative index against `len`.
fn index_of(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 {
        index.checked_add(len as i64)?
    } else {
        index
    };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LRANGE/LTRIM's clamping: Some(start..=end) or None when empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let end = if end < 0 {
        end.saturating_add(len)
    } else {
        end
    };
    start = start.max(0);
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

// ---------------------------------------------------------------- push

/// Pushes `args[2..]` to the list at args[1]; with `only_existing` (the
/// X forms) a missing key is left alone. Replies with the new length.
fn push_generic(c: &mut Ctx, left: bool, only_existing: bool) -> CmdResult {
    let args = c.args;
    let key = &args[1];
    let vals = &args[2..];
    let fill = fill(c);
    let add_bytes: usize = vals.iter().map(|v| v.len()).sum();
    let len = match list_at(&mut c.store, key, false)? {
        Some(l) => {
            l.grow(fill, add_bytes, vals.len());
            for v in vals {
                l.push(v, left);
            }
            l.len()
        }
        None if only_existing => {
            c.out.int(0);
            return Ok(());
        }
        None => {
            let mut l = ListValue::default();
            l.grow(fill, add_bytes, vals.len());
            for v in vals {
                l.push(v, left);
            }
            let n = l.len();
            // `set` wakes clients blocked on the key.
            c.store.set(key, Value::List(Box::new(l)), None);
            writebehind::pushed(c.server, c.store.db, key, vals);
            c.notify(class::LIST, push_event(left), key);
            c.out.int(n as i64);
            return Ok(());
        }
    };
    let db = c.store.db;
    c.store.modified(db, key);
    writebehind::pushed(c.server, db, key, vals);
    blocking::signal(db, key, len);
    c.notify(class::LIST, push_event(left), key);
    c.out.int(len as i64);
    Ok(())
}

/// The event Redis notifies for a push to the head or the tail.
fn push_event(left: bool) -> &'static str {
    if left {
        "lpush"
    } else {
        "rpush"
    }
}

fn lpush(c: &mut Ctx) -> CmdResult {
    push_generic(c, true, false)
}

fn rpush(c: &mut Ctx) -> CmdResult {
    push_generic(c, false, false)
}

fn lpushx(c: &mut Ctx) -> CmdResult {
    push_generic(c, true, true)
}

fn rpushx(c: &mut Ctx) -> CmdResult {
    push_generic(c, false, true)
}

// ---------------------------------------------------------------- pop

fn pop_generic(c: &mut Ctx, left: bool) -> CmdResult {
    if c.args.len() > 3 {
        return Err(c.arity_error());
    }
    let count = match c.args.get(2) {
        Some(a) => Some(positive_count(a)?),
        None => None,
    };
    let args = c.args;
    let key = &args[1];
    let Some(l) = list_at(&mut c.store, key, false)? else {
        match count {
            Some(_) => c.out.null_array(),
            None => c.out.null(),
        }
        return Ok(());
    };
    match count {
        Some(0) => {
            c.out.array(0);
            return Ok(());
        }
        None => {
            if l.pop_with(left, |v| reply_elem(c.out, v)).is_none() {
                c.out.null();
            }
        }
        Some(n) => {
            let n = (n as usize).min(l.len());
            c.out.array(n);
            for _ in 0..n {
                l.pop_with(left, |v| reply_elem(c.out, v));
            }
        }
    }
    after_removal(c, key, pop_event(left));
    Ok(())
}

/// The event Redis notifies for a pop from the head or the tail.
fn pop_event(left: bool) -> &'static str {
    if left {
        "lpop"
    } else {
        "rpop"
    }
}

fn lpop(c: &mut Ctx) -> CmdResult {
    pop_generic(c, true)
}

fn rpop(c: &mut Ctx) -> CmdResult {
    pop_generic(c, false)
}

// ---------------------------------------------------------------- reads

fn llen(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let n = list_at(&mut c.store, &args[1], true)?.map_or(0, |l| l.len());
    c.out.int(n as i64);
    Ok(())
}

fn lrange(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let start = parse_i64(&args[2])?;
    let end = parse_i64(&args[3])?;
    let Some(l) = list_at(&mut c.store, &args[1], true)? else {
        c.out.array(0);
        return Ok(());
    };
    match clamp_range(start, end, l.len()) {
        None => c.out.array(0),
        Some((s, e)) => {
            c.out.array(e - s + 1);
            for v in l.range(s, e + 1) {
                reply_elem(c.out, v);
            }
        }
    }
    Ok(())
}

fn lindex(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let Some(l) = list_at(&mut c.store, &args[1], true)? else {
        c.out.null();
        return Ok(());
    };
    let index = parse_i64(&args[2])?;
    match index_of(index, l.len()).and_then(|i| l.get(i)) {
        Some(v) => reply_elem(c.out, v),
        None => c.out.null(),
    }
    Ok(())
}

/// Redis's LPOS option parser result.
struct LposOpts {
    rank: i64,
    count: Option<i64>,
    maxlen: i64,
}

fn lpos_opts(args: &[Bytes]) -> Result<LposOpts, CmdError> {
    let mut o = LposOpts {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i][..];
        let Some(val) = args.get(i + 1) else {
            return Err(err::SYNTAX.into());
        };
        if is(opt, "RANK") {
            o.rank = match canonical_i64(val) {
                None => return Err(err::NOT_INT.into()),
                Some(i64::MIN) => return Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into()),
                Some(0) => return Err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into()),
                Some(r) => r,
            };
        } else if is(opt, "COUNT") {
            match canonical_i64(val) {
                Some(n) if n >= 0 => o.count = Some(n),
                _ => return Err("ERR COUNT can't be negative".into()),
            }
        } else if is(opt, "MAXLEN") {
            match canonical_i64(val) {
                Some(n) if n >= 0 => o.maxlen = n,
                _ => return Err("ERR MAXLEN can't be negative".into()),
            }
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 2;
    }
    Ok(o)
}

fn lpos(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let o = lpos_opts(args)?;
    let Some(l) = list_at(&mut c.store, &args[1], true)? else {
        match o.count {
            Some(_) => c.out.array(0),
            None => c.out.null(),
        }
        return Ok(());
    };
    let wanted = &args[2][..];
    let len = l.len();
    let maxlen = if o.maxlen == 0 {
        len
    } else {
        (o.maxlen as usize).min(len)
    };
    let limit = match o.count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let mut skip = o.rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let mut buf = itoa::Buffer::new();
    let mut check = |pos: usize, v: Elem| -> bool {
        if v.bytes(&mut buf) == wanted {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(pos);
            }
        }
        found.len() >= limit
    };
    if o.rank > 0 {
        for (pos, v) in l.iter().enumerate().take(maxlen) {
            if check(pos, v) {
                break;
            }
        }
    } else {
        for (k, v) in l.iter_rev().enumerate().take(maxlen) {
            if check(len - 1 - k, v) {
                break;
            }
        }
    }
    match o.count {
        Some(_) => {
            c.out.array(found.len());
            for p in found {
                c.out.int(p as i64);
            }
        }
        None => match found.first() {
            Some(&p) => c.out.int(p as i64),
            None => c.out.null(),
        },
    }
    Ok(())
}

// ---------------------------------------------------------------- edits

fn lset(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let fill = fill(c);
    let Some(l) = list_at(&mut c.store, &args[1], false)? else {
        return Err(err::NO_SUCH_KEY.into());
    };
    let index = parse_i64(&args[2])?;
    let val = &args[3];
    l.grow(fill, val.len(), 1);
    let Some(i) = index_of(index, l.len()) else {
        return Err("ERR index out of range".into());
    };
    l.set(i, val);
    l.shrink(fill);
    let db = c.store.db;
    c.store.modified(db, &args[1]);
    c.notify(class::LIST, "lset", &args[1]);
    c.out.ok();
    Ok(())
}

fn linsert(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let after = if is(&args[2], "AFTER") {
        true
    } else if is(&args[2], "BEFORE") {
        false
    } else {
        return Err(err::SYNTAX.into());
    };
    let fill = fill(c);
    let Some(l) = list_at(&mut c.store, &args[1], false)? else {
        c.out.int(0);
        return Ok(());
    };
    let (pivot, val) = (&args[3][..], &args[4]);
    l.grow(fill, val.len(), 1);
    let mut buf = itoa::Buffer::new();
    let Some(pos) = l.iter().position(|v| v.bytes(&mut buf) == pivot) else {
        c.out.int(-1);
        return Ok(());
    };
    l.insert_at_pivot(pos, val, after);
    let len = l.len();
    let db = c.store.db;
    c.store.modified(db, &args[1]);
    writebehind::pushed(c.server, db, &args[1], std::slice::from_ref(val));
    c.notify(class::LIST, "linsert", &args[1]);
    c.out.int(len as i64);
    Ok(())
}

fn lrem(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let count = parse_i64(&args[2])?;
    let Some(l) = list_at(&mut c.store, &args[1], false)? else {
        c.out.int(0);
        return Ok(());
    };
    let wanted = &args[3][..];
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut buf = itoa::Buffer::new();
    let mut hits = Vec::new();
    if count >= 0 {
        for (i, v) in l.iter().enumerate() {
            if hits.len() < limit && v.bytes(&mut buf) == wanted {
                hits.push(i);
            }
        }
    } else {
        let len = l.len();
        for (k, v) in l.iter_rev().enumerate() {
            if hits.len() < limit && v.bytes(&mut buf) == wanted {
                hits.push(len - 1 - k);
            }
        }
        hits.reverse();
    }
    l.remove_many(&hits);
    if !hits.is_empty() {
        after_removal(c, &args[1], "lrem");
    }
    c.out.int(hits.len() as i64);
    Ok(())
}

fn ltrim(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let start = parse_i64(&args[2])?;
    let end = parse_i64(&args[3])?;
    let Some(l) = list_at(&mut c.store, &args[1], false)? else {
        c.out.ok();
        return Ok(());
    };
    match clamp_range(start, end, l.len()) {
        None => l.trim(0, 0),
        Some((s, e)) => l.trim(s, e + 1),
    }
    after_removal(c, &args[1], "ltrim");
    c.out.ok();
    Ok(())
}

// ---------------------------------------------------------------- moves

/// Pops from `src` (head if `from_left`) and pushes to `dst`, replying
/// with the element or null. Redis's lmoveGenericCommand.
pub(crate) fn move_generic(
    c: &mut Ctx,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> CmdResult {
    let fill = fill(c);
    let Some(l) = list_at(&mut c.store, src, false)? else {
        c.out.null();
        return Ok(());
    };
    if l.is_empty() {
        c.out.null();
        return Ok(());
    }
    list_at(&mut c.store, dst, false)?;
    let Some(v) = list_at(&mut c.store, src, false)?.and_then(|l| l.pop(from_left)) else {
        c.out.null();
        return Ok(());
    };
    let v = v.to_bytes();
    let db = c.store.db;
    match list_at(&mut c.store, dst, false)? {
        Some(d) => {
            d.grow(fill, moved_bytes(&v), 1);
            d.push(&v, to_left);
            let n = d.len();
            c.store.modified(db, dst);
            writebehind::pushed(c.server, db, dst, std::slice::from_ref(&v));
            blocking::signal(db, dst, n);
        }
        None => {
            let mut d = ListValue::default();
            d.grow(fill, moved_bytes(&v), 1);
            d.push(&v, to_left);
            c.store.set(dst, Value::List(Box::new(d)), None);
            writebehind::pushed(c.server, db, dst, std::slice::from_ref(&v));
        }
    }
    c.notify(class::LIST, push_event(to_left), dst);
    c.out.bulk_shared(&v);
    after_removal(c, src, pop_event(from_left));
    Ok(())
}

fn lmove(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let from = parse_side(&args[3])?;
    let to = parse_side(&args[4])?;
    move_generic(c, &args[1], &args[2], from, to)
}

fn rpoplpush(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    move_generic(c, &args[1], &args[2], false, true)
}

// ---------------------------------------------------------------- LMPOP

/// The keys of `LMPOP numkeys key... LEFT|RIGHT` (numkeys at `at`); an
/// invalid numkeys yields no keys (the handler then replies the error).
pub(crate) fn mpop_keys_at(args: &[Bytes], at: usize) -> Vec<usize> {
    let n = args.get(at).and_then(|a| canonical_i64(a)).unwrap_or(0);
    if n <= 0 || n as usize > args.len().saturating_sub(at + 1) {
        return Vec::new();
    }
    (at + 1..at + 1 + n as usize).collect()
}

fn lmpop_keys(args: &[Bytes]) -> Vec<usize> {
    mpop_keys_at(args, 1)
}

/// Parsed `numkeys key... LEFT|RIGHT [COUNT n]` starting at `at`.
pub(crate) struct MpopArgs {
    pub keys: std::ops::Range<usize>,
    pub left: bool,
    pub count: usize,
}

pub(crate) fn parse_mpop(args: &[Bytes], at: usize) -> Result<MpopArgs, CmdError> {
    let n = match canonical_i64(&args[at]) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    let where_idx = at.saturating_add(n).saturating_add(1);
    let Some(side) = args.get(where_idx) else {
        return Err(err::SYNTAX.into());
    };
    let left = parse_side(side)?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "COUNT") && j + 1 < args.len() {
            j += 1;
            match canonical_i64(&args[j]) {
                Some(v) if v >= 1 => count = Some(v as usize),
                _ => return Err("ERR count should be greater than 0".into()),
            }
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: at + 1..at + 1 + n,
        left,
        count: count.unwrap_or(1),
    })
}

/// Pops up to `count` from the first non-empty list among `keys` that
/// `me` may take from, replying [key, [elements]]; Ok(false) without a
/// reply if there is none. A blocked client (`me`) skips keys of another
/// type, as Redis does when it serves blocked clients.
pub(crate) fn mpop_from(
    c: &mut Ctx,
    m: &MpopArgs,
    me: Option<&Arc<Waiter>>,
) -> Result<bool, CmdError> {
    let args = c.args;
    for key in &args[m.keys.clone()] {
        let l = match list_at(&mut c.store, key, false) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) if me.is_none() => return Err(e),
            Err(_) => continue,
        };
        if l.is_empty() || !may_take(me, key) {
            continue;
        }
        let n = m.count.min(l.len());
        c.out.array(2);
        c.out.bulk(key);
        c.out.array(n);
        for _ in 0..n {
            l.pop_with(m.left, |v| reply_elem(c.out, v));
        }
        let remaining = l.len();
        after_removal(c, key, pop_event(m.left));
        served(me, c.store.db, key, remaining);
        return Ok(true);
    }
    Ok(false)
}

fn lmpop(c: &mut Ctx) -> CmdResult {
    let m = parse_mpop(c.args, 1)?;
    if !mpop_from(c, &m, None)? {
        c.out.null_array();
    }
    Ok(())
}

// ---------------------------------------------------------------- blocking

/// Nothing to take: inside EXEC reply null at once (a null array, or a
/// null bulk for BLMOVE), else register (first run) and ask the connection
/// to wait. (A timeout replies a null array for every list command.)
fn block_on(
    c: &mut Ctx,
    me: Option<Arc<Waiter>>,
    keys: &[Bytes],
    deadline: Option<Instant>,
    null_array: bool,
) {
    if let Some(w) = me {
        c.action = Some(Action::Block(w));
    } else if c.client.in_exec {
        if null_array {
            c.out.null_array();
        } else {
            c.out.null();
        }
    } else {
        let w = blocking::block(c.client.info.id, c.store.db, keys, deadline);
        c.action = Some(Action::Block(w));
    }
}

fn bpop_generic(c: &mut Ctx, left: bool) -> CmdResult {
    let args = c.args;
    let deadline = parse_timeout(&args[args.len() - 1], c.store.now)?;
    let me = blocking::current(c.client.info.id);
    let keys = &args[1..args.len() - 1];
    for key in keys {
        let l = match list_at(&mut c.store, key, false) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) if me.is_none() => return Err(e),
            Err(_) => continue,
        };
        if l.is_empty() || !may_take(me.as_ref(), key) {
            continue;
        }
        let Some(v) = l.pop(left) else {
            continue;
        };
        let remaining = l.len();
        c.out.array(2);
        c.out.bulk(key);
        reply_item(c.out, &v);
        after_removal(c, key, pop_event(left));
        served(me.as_ref(), c.store.db, key, remaining);
        return Ok(());
    }
    block_on(c, me, keys, deadline, true);
    Ok(())
}

fn blpop(c: &mut Ctx) -> CmdResult {
    bpop_generic(c, true)
}

fn brpop(c: &mut Ctx) -> CmdResult {
    bpop_generic(c, false)
}

fn bmove_generic(c: &mut Ctx, from_left: bool, to_left: bool, timeout: &[u8]) -> CmdResult {
    let args = c.args;
    let deadline = parse_timeout(timeout, c.store.now)?;
    let me = blocking::current(c.client.info.id);
    let (src, dst) = (&args[1], &args[2]);
    let ready = match list_at(&mut c.store, src, false) {
        Ok(l) => l.is_some_and(|l| !l.is_empty()),
        Err(e) if me.is_none() => return Err(e),
        Err(_) => false,
    };
    if ready && may_take(me.as_ref(), src) {
        move_generic(c, src, dst, from_left, to_left)?;
        let remaining = list_at(&mut c.store, src, false)
            .ok()
            .flatten()
            .map_or(0, |l| l.len());
        served(me.as_ref(), c.store.db, src, remaining);
        return Ok(());
    }
    block_on(c, me, &args[1..2], deadline, false);
    Ok(())
}

fn blmove(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let from = parse_side(&args[3])?;
    let to = parse_side(&args[4])?;
    bmove_generic(c, from, to, &args[5])
}

fn brpoplpush(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    bmove_generic(c, false, true, &args[3])
}

fn blmpop_keys(args: &[Bytes]) -> Vec<usize> {
    mpop_keys_at(args, 2)
}

fn blmpop(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let m = parse_mpop(args, 2)?;
    let deadline = parse_timeout(&args[1], c.store.now)?;
    let me = blocking::current(c.client.info.id);
    if !mpop_from(c, &m, me.as_ref())? {
        block_on(c, me, &args[m.keys.clone()], deadline, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(index_of(-1, 3), Some(2));
        assert_eq!(index_of(-4, 3), None);
        assert_eq!(index_of(i64::MIN, 3), None);
    }
}
