//! Set commands (Redis's t_set.c). The data structure and its encodings
//! live in `granary_keyspace::types::set`; this module follows Redis's
//! algorithms where their choices are observable: which set SINTER walks,
//! which SDIFF algorithm runs (it decides the result's encoding), and how
//! SPOP and SRANDMEMBER pick and order members of a listpack.

use crate::cmd::keys::parse_cursor;
use crate::ctx::{err, CmdError, CmdResult, Ctx, Store};
use crate::glob::glob_match;
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::is;
use bytes::Bytes;
use granary_keyspace::types::set::{Elem, SetLimits, SetValue};
use granary_keyspace::{canonical_i64, Entry, Value};
use granary_protocol::Reply;
use rand::Rng;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "set";
const K1: Keys = Keys::Range(1, 1, 1);
const KALL: Keys = Keys::Range(1, -1, 1);

pub static COMMANDS: &[Spec] = &[
    Spec::new("sadd", -3, WRITE | DENYOOM | FAST, K1, sadd).group(G, "1.0.0").doc("Adds one or more members to a set. Creates the key if it doesn't exist."),
    Spec::new("srem", -3, WRITE | FAST, K1, srem).group(G, "1.0.0").doc("Removes one or more members from a set. Deletes the set if the last member was removed."),
    Spec::new("smembers", 2, READONLY, K1, smembers).group(G, "1.0.0").doc("Returns all members of a set."),
    Spec::new("sismember", 3, READONLY | FAST, K1, sismember).group(G, "1.0.0").doc("Determines whether a member belongs to a set."),
    Spec::new("smismember", -3, READONLY | FAST, K1, smismember).group(G, "6.2.0").doc("Determines whether multiple members belong to a set."),
    Spec::new("scard", 2, READONLY | FAST, K1, scard).group(G, "1.0.0").doc("Returns the number of members in a set."),
    Spec::new("spop", -2, WRITE | FAST, K1, spop).group(G, "1.0.0").doc("Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    Spec::new("srandmember", -2, READONLY, K1, srandmember).group(G, "1.0.0").doc("Get one or multiple random members from a set"),
    Spec::new("smove", 4, WRITE | FAST, Keys::Range(1, 2, 1), smove).group(G, "1.0.0").doc("Moves a member from one set to another."),
    Spec::new("sinter", -2, READONLY, KALL, sinter).group(G, "1.0.0").doc("Returns the intersect of multiple sets."),
    Spec::new("sintercard", -3, READONLY, Keys::Custom(sintercard_keys), sintercard).group(G, "7.0.0").doc("Returns the number of members of the intersect of multiple sets."),
    Spec::new("sinterstore", -3, WRITE | DENYOOM, KALL, sinterstore).group(G, "1.0.0").doc("Stores the intersect of multiple sets in a key."),
    Spec::new("sunion", -2, READONLY, KALL, sunion).group(G, "1.0.0").doc("Returns the union of multiple sets."),
    Spec::new("sunionstore", -3, WRITE | DENYOOM, KALL, sunionstore).group(G, "1.0.0").doc("Stores the union of multiple sets in a key."),
    Spec::new("sdiff", -2, READONLY, KALL, sdiff).group(G, "1.0.0").doc("Returns the difference of multiple sets."),
    Spec::new("sdiffstore", -3, WRITE | DENYOOM, KALL, sdiffstore).group(G, "1.0.0").doc("Stores the difference of multiple sets in a key."),
    Spec::new("sscan", -3, READONLY, K1, sscan).group(G, "2.8.0").doc("Iterates over members of a set."),
];

/// SPOP picks one member at a time while the members that stay outnumber
/// the popped ones by this factor; otherwise it picks the ones that stay.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;
/// SRANDMEMBER copies the whole set and drops members when the set is not
/// this many times larger than the count.
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;
/// Granary refuses SRANDMEMBER with a negative count beyond this, whose
/// reply could not be built in memory (Redis would grow the output buffer
/// until the client is closed or memory runs out).
const MAX_REPEATED_SAMPLE: u64 = 1 << 32;

// ----------------------------------------------------------------- helpers

/// The encoding thresholds, as configured now.
fn limits(c: &Ctx) -> SetLimits {
    let h = &c.server.config.hot;
    let get = |a: &std::sync::atomic::AtomicI64| usize::try_from(a.load(Relaxed)).unwrap_or(0);
    SetLimits {
        intset_entries: get(&h.set_max_intset_entries),
        listpack_entries: get(&h.set_max_listpack_entries),
        listpack_value: get(&h.set_max_listpack_value),
    }
}

/// The set in an entry, or WRONGTYPE.
fn set_of(e: Option<&mut Entry>) -> Result<Option<&mut SetValue>, CmdError> {
    match e {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

fn reply_elem(out: &mut Reply, e: Elem) {
    match e {
        Elem::Int(v) => out.bulk_int(v),
        Elem::Str(s) => out.bulk(s),
    }
}

/// A set reply (`~` in RESP3) with every member of `s` in its order.
fn reply_members(out: &mut Reply, s: &SetValue) {
    out.set(s.len());
    for e in s.iter() {
        reply_elem(out, e);
    }
}

/// `count` distinct positions out of `n`, ascending: how Redis walks a
/// listpack once to sample it (lpNextRandom keeps the listpack's order).
fn sorted_sample(rng: &mut impl Rng, n: usize, count: usize) -> Vec<usize> {
    let mut v = rand::seq::index::sample(rng, n, count).into_vec();
    v.sort_unstable();
    v
}

/// Redis's getPositiveLongFromObjectOrReply with the default message.
fn positive_count(arg: &[u8]) -> Result<usize, CmdError> {
    match canonical_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err("ERR value is out of range, must be positive".into()),
    }
}

/// Stores `result` at `dst` (replacing any value and TTL), or deletes `dst`
/// when the result is empty, and replies with the result's size.
fn store_result(c: &mut Ctx, dst: &[u8], mut result: SetValue, event: &str) {
    let n = result.len();
    if n == 0 {
        remove_dst(c, dst);
    } else {
        result.shrink_to_fit();
        c.store.set(dst, Value::Set(Box::new(result)), None);
        c.notify(class::SET, event, dst);
    }
    c.out.int(n as i64);
}

// ---------------------------------------------------- multi-key operands

/// The sets named by a multi-key command, lifted out of the keyspace for
/// the time of the computation so several can be read at once without
/// copying them; `restore` puts them back. A key named twice is lifted once.
struct Operands {
    /// Each distinct existing key and its set.
    lifted: Vec<(Bytes, SetValue)>,
    /// For each key argument, its index in `lifted` (None: no such key).
    at: Vec<Option<usize>>,
}

impl Operands {
    /// Type-checks every key in order (WRONGTYPE for the first non-set, as
    /// Redis does, before anything changes), then lifts the sets.
    fn lift(store: &mut Store, keys: &[Bytes]) -> Result<Operands, CmdError> {
        let mut present = Vec::with_capacity(keys.len());
        for k in keys {
            present.push(set_of(store.read(k))?.is_some());
        }
        let mut ops = Operands {
            lifted: Vec::new(),
            at: Vec::with_capacity(keys.len()),
        };
        for (k, &here) in keys.iter().zip(&present) {
            if !here {
                ops.at.push(None);
                continue;
            }
            if let Some(i) = ops.lifted.iter().position(|(name, _)| name == k) {
                ops.at.push(Some(i));
                continue;
            }
            let taken = match set_of(store.entry(k)) {
                Ok(Some(s)) => std::mem::take(s),
                _ => SetValue::default(),
            };
            ops.at.push(Some(ops.lifted.len()));
            ops.lifted.push((k.clone(), taken));
        }
        Ok(ops)
    }

    fn get(&self, i: usize) -> Option<&SetValue> {
        self.at[i].map(|j| &self.lifted[j].1)
    }

    fn len_of(&self, i: usize) -> usize {
        self.get(i).map_or(0, SetValue::len)
    }

    /// Whether arguments `i` and `j` name the same existing key.
    fn same(&self, i: usize, j: usize) -> bool {
        self.at[i].is_some() && self.at[i] == self.at[j]
    }

    fn restore(self, store: &mut Store) {
        for (k, v) in self.lifted {
            if let Ok(Some(s)) = set_of(store.entry(&k)) {
                *s = v;
            }
        }
    }
}

/// Lifts the sets named by `keys`, runs `f` on them and puts them back —
/// also if `f` panics (the dispatcher turns a panic into an error reply;
/// the sets must not be left empty behind it).
fn with_operands<R>(
    store: &mut Store,
    keys: &[Bytes],
    f: impl FnOnce(&Operands) -> R,
) -> Result<R, CmdError> {
    let ops = Operands::lift(store, keys)?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ops)));
    ops.restore(store);
    match result {
        Ok(r) => Ok(r),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

// ------------------------------------------------------------- commands

fn sadd(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (key, members) = (&args[1], &args[2..]);
    let lim = limits(c);
    let added = match set_of(c.store.entry(key))? {
        Some(s) => {
            s.maybe_convert(members.len(), &lim);
            let n = members.iter().filter(|m| s.add(m, &lim)).count();
            if n > 0 {
                // Compact encodings stay exact-size, as Redis's do.
                s.shrink_to_fit();
                c.store.modified(c.store.db, key);
            }
            n
        }
        None => {
            let mut s = SetValue::create(&members[0], members.len(), &lim);
            let n = members.iter().filter(|m| s.add(m, &lim)).count();
            s.shrink_to_fit();
            // `set` reports the write.
            c.store.set(key, Value::Set(Box::new(s)), None);
            n
        }
    };
    if added > 0 {
        c.notify(class::SET, "sadd", key);
    }
    c.out.int(added as i64);
    Ok(())
}

fn srem(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let key = &args[1];
    let Some(s) = set_of(c.store.entry(key))? else {
        c.out.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for m in &args[2..] {
        if s.remove(m) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    let emptied = s.is_empty();
    if removed > 0 {
        after_removal(c, key, "srem", emptied);
    }
    c.out.int(removed);
    Ok(())
}

fn smembers(c: &mut Ctx) -> CmdResult {
    match set_of(c.store.read(&c.args[1]))? {
        Some(s) => reply_members(c.out, s),
        None => c.out.set(0),
    }
    Ok(())
}

fn sismember(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let found = set_of(c.store.read(&args[1]))?.is_some_and(|s| s.contains(&args[2]));
    c.out.int(found as i64);
    Ok(())
}

fn smismember(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let s = set_of(c.store.read(&args[1]))?;
    c.out.array(args.len() - 2);
    for m in &args[2..] {
        let found = s.as_ref().is_some_and(|s| s.contains(m));
        c.out.int(found as i64);
    }
    Ok(())
}

fn scard(c: &mut Ctx) -> CmdResult {
    let n = set_of(c.store.read(&c.args[1]))?.map_or(0, |s| s.len());
    c.out.int(n as i64);
    Ok(())
}

fn spop(c: &mut Ctx) -> CmdResult {
    match c.args.len() {
        2 => {}
        3 => return spop_count(c),
        _ => return Err(err::SYNTAX.into()),
    }
    let args = c.args;
    let key = &args[1];
    let Some(s) = set_of(c.store.entry(key))? else {
        c.out.null();
        return Ok(());
    };
    let m = s.pop_random(&mut rand::thread_rng()).unwrap_or_default();
    let emptied = s.is_empty();
    c.out.bulk(&m);
    // Logged as what it removed: a replayed SPOP would pick another.
    c.store.effect = Some(vec![b"SREM".to_vec(), key.to_vec(), m.to_vec()]);
    after_removal(c, key, "spop", emptied);
    Ok(())
}

/// SPOP key count: Redis's three cases (whole set, pick the popped ones,
/// pick the ones that stay). The reply is a set in RESP3.
fn spop_count(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let key = &args[1];
    let count = positive_count(&args[2])?;
    let lim = limits(c);
    let Some(s) = set_of(c.store.entry(key))? else {
        c.out.set(0);
        return Ok(());
    };
    if count == 0 {
        c.out.set(0);
        return Ok(());
    }
    let size = s.len();
    let mut rng = rand::thread_rng();
    if count >= size {
        // Redis answers with SUNION of the key: the members re-added to a
        // fresh set, whose order that rebuild decides. That SUNION's read
        // lookup counts a keyspace hit.
        c.server
            .stats
            .keyspace_hits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut all = SetValue::new_intset();
        for e in s.iter() {
            all.add_elem(e, &lim);
        }
        reply_members(c.out, &all);
        c.store.effect = Some(vec![b"DEL".to_vec(), key.to_vec()]);
        after_removal(c, key, "spop", true);
        return Ok(());
    }
    let remaining = size - count;
    c.out.set(count);
    // Logged as the SREM of what was popped (replaying SPOP would pick
    // other members).
    let mut srem = vec![b"SREM".to_vec(), key.to_vec()];
    if s.is_listpack() {
        // One ordered pass: popping `count` random positions or keeping
        // `remaining` random ones is the same uniform choice.
        for m in s.take_positions(&sorted_sample(&mut rng, size, count)) {
            c.out.bulk(&m);
            srem.push(m.to_vec());
        }
    } else if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        for _ in 0..count {
            let m = s.pop_random(&mut rng).unwrap_or_default();
            c.out.bulk(&m);
            srem.push(m.to_vec());
        }
    } else {
        // Move the members that stay to a new set (a listpack when they are
        // strings, so a hashtable can come back compact), reply the rest.
        let mut kept = if s.is_table() {
            SetValue::new_listpack()
        } else {
            SetValue::new_intset()
        };
        for _ in 0..remaining {
            let m = s.pop_random(&mut rng).unwrap_or_default();
            kept.add(&m, &lim);
        }
        for e in s.iter() {
            reply_elem(c.out, e);
            srem.push(e.with_bytes(|b| b.to_vec()));
        }
        *s = kept;
    }
    c.store.effect = Some(srem);
    after_removal(c, key, "spop", false);
    Ok(())
}

fn srandmember(c: &mut Ctx) -> CmdResult {
    match c.args.len() {
        2 => {}
        3 => return srandmember_count(c),
        _ => return Err(err::SYNTAX.into()),
    }
    match set_of(c.store.read(&c.args[1]))? {
        None => c.out.null(),
        Some(s) => match s.random(&mut rand::thread_rng()) {
            Some(e) => reply_elem(c.out, e),
            None => c.out.null(),
        },
    }
    Ok(())
}

fn srandmember_count(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let l = match canonical_i64(&args[2]) {
        None => return Err(err::NOT_INT.into()),
        Some(i64::MIN) => return Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into()),
        Some(l) => l,
    };
    let Some(s) = set_of(c.store.read(&args[1]))? else {
        c.out.array(0);
        return Ok(());
    };
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    if count == 0 {
        c.out.array(0);
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    // Case 1: repetitions allowed (or a single member): independent picks.
    if !uniq || count == 1 {
        if count > MAX_REPEATED_SAMPLE {
            return Err("ERR value is out of range".into());
        }
        let count = count as usize;
        c.out.array(count);
        if s.is_table() {
            for _ in 0..count {
                if let Some(e) = s.random(&mut rng) {
                    reply_elem(c.out, e);
                }
            }
        } else {
            // Index the compact encodings once instead of walking per pick.
            let all: Vec<Elem> = s.iter().collect();
            for _ in 0..count {
                reply_elem(c.out, all[rng.gen_range(0..all.len())]);
            }
        }
        return Ok(());
    }
    let size = s.len();
    // Case 2: the whole set, in its order.
    if count >= size as u64 {
        c.out.array(size);
        for e in s.iter() {
            reply_elem(c.out, e);
        }
        return Ok(());
    }
    let count = count as usize;
    c.out.array(count);
    // Case 2.5 (listpack) and case 3: distinct positions, in set order.
    if s.is_listpack() || count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        let picks = sorted_sample(&mut rng, size, count);
        let mut next = picks.iter().peekable();
        for (i, e) in s.iter().enumerate() {
            if next.peek() == Some(&&i) {
                next.next();
                reply_elem(c.out, e);
            }
        }
        return Ok(());
    }
    // Case 4: a large set, few members wanted: random picks until enough
    // distinct ones.
    let mut seen = std::collections::HashSet::with_capacity(count);
    while seen.len() < count {
        if let Some(e) = s.random(&mut rng) {
            let m = e.to_vec();
            if !seen.contains(&m) {
                c.out.bulk(&m);
                seen.insert(m);
            }
        }
    }
    Ok(())
}

fn smove(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let lim = limits(c);
    let src_exists = c.store.entry(src).is_some();
    let dst_exists = c.store.entry(dst).is_some();
    if !src_exists {
        c.out.int(0);
        return Ok(());
    }
    set_of(c.store.entry(src))?;
    if dst_exists {
        set_of(c.store.entry(dst))?;
    }
    if src == dst {
        let found = set_of(c.store.entry(src))?.is_some_and(|s| s.contains(member));
        c.out.int(found as i64);
        return Ok(());
    }
    let Some(s) = set_of(c.store.entry(src))? else {
        c.out.int(0);
        return Ok(());
    };
    if !s.remove(member) {
        c.out.int(0);
        return Ok(());
    }
    let emptied = s.is_empty();
    after_removal(c, src, "srem", emptied);
    match set_of(c.store.entry(dst))? {
        Some(d) => {
            if d.add(member, &lim) {
                c.store.modified(c.store.db, dst);
                c.notify(class::SET, "sadd", dst);
            }
        }
        None => {
            let mut d = SetValue::create(member, 1, &lim);
            d.add(member, &lim);
            c.store.set(dst, Value::Set(Box::new(d)), None);
            c.notify(class::SET, "sadd", dst);
        }
    }
    c.out.int(1);
    Ok(())
}

/// Deletes `dst` (an empty STORE result), notifying "del" if it existed.
fn remove_dst(c: &mut Ctx, dst: &[u8]) {
    if c.store.remove(dst).is_some() {
        c.notify(class::GENERIC, "del", dst);
    }
}

/// After members were removed from `key` by `event`: deletes it if empty.
fn after_removal(c: &mut Ctx, key: &[u8], event: &str, emptied: bool) {
    if emptied {
        c.store.remove(key);
    } else {
        c.store.modified(c.store.db, key);
    }
    c.notify(class::SET, event, key);
    if emptied {
        c.notify(class::GENERIC, "del", key);
    }
}

// ---------------------------------------------------------- intersection

/// What SINTER's walk produces.
#[derive(Clone, Copy)]
enum InterMode<'k> {
    Reply,
    Card { limit: usize },
    Store { dst: &'k Bytes },
}

fn sinter(c: &mut Ctx) -> CmdResult {
    let keys = &c.args[1..];
    sinter_generic(c, keys, InterMode::Reply)
}

fn sinterstore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    sinter_generic(c, &args[2..], InterMode::Store { dst: &args[1] })
}

/// The key positions of SINTERCARD numkeys key... (none when numkeys is
/// invalid: the handler then fails before touching any key).
fn sintercard_keys(args: &[Bytes]) -> Vec<usize> {
    match args.get(1).and_then(|a| canonical_i64(a)) {
        Some(n) if n >= 1 && (n as u64) <= (args.len() as u64).saturating_sub(2) => {
            (2..2 + n as usize).collect()
        }
        _ => Vec::new(),
    }
}

fn sintercard(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let numkeys = match canonical_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    let numkeys = numkeys as usize;
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if is(&args[i], "limit") && i + 1 < args.len() {
            limit = match canonical_i64(&args[i + 1]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err("ERR LIMIT can't be negative".into()),
            };
            i += 2;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    sinter_generic(c, &args[2..2 + numkeys], InterMode::Card { limit })
}

/// SINTER, SMEMBERS-like single-key reads, SINTERSTORE and SINTERCARD
/// (Redis's sinterGenericCommand): walk the smallest set, probe the others.
fn sinter_generic(c: &mut Ctx, keys: &[Bytes], mode: InterMode) -> CmdResult {
    let lim = limits(c);
    let out = &mut *c.out;
    // Computes the reply (or the set to store) with the operands lifted.
    let stored = with_operands(&mut c.store, keys, |ops| -> Option<SetValue> {
        if ops.at.iter().any(Option::is_none) {
            // An intersection with an empty set is empty.
            match mode {
                InterMode::Reply => out.set(0),
                InterMode::Card { .. } => out.int(0),
                InterMode::Store { .. } => {}
            }
            return None;
        }
        // Smallest first; a stable sort, so equal sizes keep argument order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| ops.len_of(i));
        let first = order[0];
        let walked = ops.get(first)?;
        let others: Vec<&SetValue> = order[1..]
            .iter()
            .filter(|&&j| !ops.same(j, first))
            .filter_map(|&j| ops.get(j))
            .collect();
        let common = walked
            .iter()
            .filter(|e| others.iter().all(|s| s.contains_elem(*e)));
        match mode {
            InterMode::Card { limit } => {
                let n = if limit > 0 {
                    common.take(limit).count()
                } else {
                    common.count()
                };
                out.int(n as i64);
                None
            }
            InterMode::Reply => {
                let found: Vec<Elem> = common.collect();
                out.set(found.len());
                for e in found {
                    reply_elem(out, e);
                }
                None
            }
            InterMode::Store { .. } => {
                // Redis starts from an intset when the walked set is one, else
                // from a listpack, and makes an intset of an all-integer result.
                let mut result = if walked.encoding() == "intset" {
                    SetValue::new_intset()
                } else {
                    SetValue::new_listpack()
                };
                let mut only_ints = true;
                for e in common {
                    only_ints = only_ints && e.as_int().is_some();
                    result.add_elem(e, &lim);
                }
                if only_ints {
                    result.convert_to_intset_if_fits(&lim);
                }
                Some(result)
            }
        }
    })?;
    if let InterMode::Store { dst } = mode {
        match stored {
            Some(result) => store_result(c, dst, result, "sinterstore"),
            None => {
                remove_dst(c, dst);
                c.out.int(0);
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------ union, difference

fn sunion(c: &mut Ctx) -> CmdResult {
    let keys = &c.args[1..];
    sunion_diff(c, keys, None, false)
}

fn sunionstore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    sunion_diff(c, &args[2..], Some(&args[1]), false)
}

fn sdiff(c: &mut Ctx) -> CmdResult {
    let keys = &c.args[1..];
    sunion_diff(c, keys, None, true)
}

fn sdiffstore(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    sunion_diff(c, &args[2..], Some(&args[1]), true)
}

/// SUNION/SDIFF and their STORE forms (Redis's sunionDiffGenericCommand).
/// The result is built in a fresh set that starts as an intset, so its
/// encoding and its order follow the usual conversion rules.
fn sunion_diff(c: &mut Ctx, keys: &[Bytes], dst: Option<&Bytes>, diff: bool) -> CmdResult {
    let lim = limits(c);
    let result = with_operands(&mut c.store, keys, |ops| {
        let mut result = SetValue::new_intset();
        if !diff {
            for i in 0..keys.len() {
                for e in ops.get(i).into_iter().flat_map(|s| s.iter()) {
                    result.add_elem(e, &lim);
                }
            }
        } else if let Some(first) = ops.get(0) {
            let same_set = (1..keys.len()).any(|j| ops.same(0, j));
            if !same_set {
                diff_into(ops, first, &mut result, &lim);
            }
        }
        result
    })?;
    match dst {
        Some(dst) => {
            let event = if diff { "sdiffstore" } else { "sunionstore" };
            store_result(c, dst, result, event)
        }
        None => reply_members(c.out, &result),
    }
    Ok(())
}

/// The difference of the first set and the others, with the algorithm
/// Redis would pick (it decides the result's encoding).
fn diff_into(ops: &Operands, first: &SetValue, result: &mut SetValue, lim: &SetLimits) {
    let n = ops.at.len();
    let present: Vec<&SetValue> = (1..n).filter_map(|j| ops.get(j)).collect();
    // Algorithm 1 walks the first set probing the others: about
    // |first| * sets, halved for its better constants. Algorithm 2 adds the
    // first set and removes every other member: the total size.
    let algo_one = (first.len() * (present.len() + 1)) / 2;
    let algo_two = first.len() + present.iter().map(|s| s.len()).sum::<usize>();
    if algo_one <= algo_two {
        for e in first.iter() {
            if !present.iter().any(|s| s.contains_elem(e)) {
                result.add_elem(e, lim);
            }
        }
    } else {
        for e in first.iter() {
            result.add_elem(e, lim);
        }
        for s in present {
            for e in s.iter() {
                e.with_bytes(|b| result.remove(b));
            }
            if result.is_empty() {
                break;
            }
        }
    }
}

// ----------------------------------------------------------------- SSCAN

fn sscan(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let mut cursor = parse_cursor(&args[2]).ok_or("ERR invalid cursor")?;
    let Some(s) = set_of(c.store.read(&args[1]))? else {
        c.out.array(2);
        c.out.bulk(b"0");
        c.out.array(0);
        return Ok(());
    };
    // Options are parsed after the key lookup, as Redis does.
    let mut count: u64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is(&args[i], "count") && has_value {
            let n = canonical_i64(&args[i + 1]).ok_or(err::NOT_INT)?;
            if n < 1 {
                return Err(err::SYNTAX.into());
            }
            count = n as u64;
            i += 2;
        } else if is(&args[i], "match") && has_value {
            pattern = Some(&args[i + 1][..]).filter(|p| *p != b"*");
            i += 2;
        } else if is(&args[i], "novalues") {
            return Err("ERR NOVALUES option can only be used in HSCAN".into());
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut sampled: u64 = 0;
    let mut budget = count.saturating_mul(10);
    loop {
        cursor = s.scan(cursor, |e| {
            sampled += 1;
            e.with_bytes(|b| {
                if pattern.is_none_or(|p| glob_match(p, b, false)) {
                    found.push(b.to_vec());
                }
            })
        });
        if cursor == 0 || budget == 0 || sampled >= count {
            break;
        }
        budget -= 1;
    }
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(cursor).as_bytes());
    c.out.array(found.len());
    for m in &found {
        c.out.bulk(m);
    }
    Ok(())
}
