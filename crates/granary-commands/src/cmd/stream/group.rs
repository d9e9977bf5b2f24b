//! Consumer groups: XGROUP, XREADGROUP's delivery, XACK, XPENDING,
//! XCLAIM and XAUTOCLAIM.

use super::{
    parse_bound, parse_loose_id, parse_strict_id, reply_entry, reply_id, stream_at, touched, G,
};
use crate::ctx::{err, CmdError, CmdResult, Ctx, Store};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64, parse_i64_opt};
use granary_keyspace::types::stream::{Group, Stream, StreamId};
use granary_keyspace::Value;
use granary_protocol::Reply;

#[rustfmt::skip]
pub(super) static XGROUP: &[Spec] = &[
    Spec::new("xgroup|create", -5, WRITE | DENYOOM, Keys::Range(2, 2, 1), xgroup_create).group(G, "5.0.0").acl(&["@write", "@stream", "@slow"]).doc("Creates a consumer group."),
    Spec::new("xgroup|createconsumer", 5, WRITE | DENYOOM, Keys::Range(2, 2, 1), xgroup_createconsumer).group(G, "6.2.0").acl(&["@write", "@stream", "@slow"]).doc("Creates a consumer in a consumer group."),
    Spec::new("xgroup|delconsumer", 5, WRITE, Keys::Range(2, 2, 1), xgroup_delconsumer).group(G, "5.0.0").acl(&["@write", "@stream", "@slow"]).doc("Deletes a consumer from a consumer group."),
    Spec::new("xgroup|destroy", 4, WRITE, Keys::Range(2, 2, 1), xgroup_destroy).group(G, "5.0.0").acl(&["@write", "@stream", "@slow"]).doc("Destroys a consumer group."),
    Spec::new("xgroup|help", 2, LOADING | STALE, Keys::None, xgroup_help).group(G, "5.0.0").acl(&["@stream", "@slow"]).doc("Returns helpful text about the different subcommands."),
    Spec::new("xgroup|setid", -5, WRITE, Keys::Range(2, 2, 1), xgroup_setid).group(G, "5.0.0").acl(&["@write", "@stream", "@slow"]).doc("Sets the last-delivered ID of a consumer group."),
];

/// SCG_INVALID_ENTRIES_READ.
const UNKNOWN_READ: i64 = -1;

fn nogroup(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::concat(&[
        b"NOGROUP No such key '",
        key,
        b"' or consumer group '",
        group,
        b"'",
    ])
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::concat(&[
        b"NOGROUP No such consumer group '",
        group,
        b"' for key name '",
        key,
        b"'",
    ])
}

fn subcommand_syntax(c: &Ctx) -> CmdError {
    CmdError::concat(&[
        b"ERR unknown subcommand or wrong number of arguments for '",
        &c.args[1],
        b"'. Try ",
        c.args[0].to_ascii_uppercase().as_slice(),
        b" HELP.",
    ])
}

/// The stream an XGROUP subcommand works on: it must exist.
fn xgroup_stream<'s>(store: &'s mut Store, key: &[u8]) -> Result<&'s mut Stream, CmdError> {
    match stream_at(store, key, false)? {
        Some(s) => Ok(s),
        None => Err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()),
    }
}

fn parse_entries_read(arg: &[u8]) -> Result<i64, CmdError> {
    let n = parse_i64(arg)?;
    if n < 0 && n != UNKNOWN_READ {
        return Err("ERR value for ENTRIESREAD must be positive or -1".into());
    }
    Ok(n)
}

/// The options after the ID, parsed for CREATE (MKSTREAM, ENTRIESREAD)
/// and SETID (ENTRIESREAD) before the key is looked at, as Redis does.
fn parse_group_opts(c: &Ctx, create: bool) -> Result<(bool, i64), CmdError> {
    let args = c.args;
    let mut mkstream = false;
    let mut entries_read = UNKNOWN_READ;
    let mut i = 5;
    while i < args.len() {
        if create && is(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if is(&args[i], "entriesread") && i + 1 < args.len() {
            entries_read = parse_entries_read(&args[i + 1])?;
            i += 2;
        } else {
            return Err(subcommand_syntax(c));
        }
    }
    Ok((mkstream, entries_read))
}

fn xgroup_create(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (mkstream, entries_read) = parse_group_opts(c, true)?;
    let key = &args[2];
    let exists = stream_at(&mut c.store, key, false)?.is_some();
    if !exists && !mkstream {
        xgroup_stream(&mut c.store, &c.args[2])?;
    }
    if args.len() > 8 {
        return Err(subcommand_syntax(c));
    }
    let id = if &args[4][..] == b"$" {
        stream_at(&mut c.store, key, false)?.map_or(StreamId::MIN, |s| s.last_id)
    } else {
        parse_strict_id(&args[4])?
    };
    if !exists {
        c.store.set(key, Value::Stream(Box::default()), None);
    }
    let Some(s) = stream_at(&mut c.store, key, false)? else {
        return Ok(());
    };
    if s.groups.contains_key(&args[3][..]) {
        return Err("BUSYGROUP Consumer Group name already exists".into());
    }
    s.groups
        .insert(args[3][..].into(), Group::new(id, entries_read));
    c.out.ok();
    touched(c, key, "xgroup-create");
    Ok(())
}

fn xgroup_setid(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (_, entries_read) = parse_group_opts(c, false)?;
    let s = xgroup_stream(&mut c.store, &c.args[2])?;
    if !s.groups.contains_key(&args[3][..]) {
        return Err(nogroup_for_key(&args[2], &args[3]));
    }
    if args.len() != 5 && args.len() != 7 {
        return Err(subcommand_syntax(c));
    }
    let last = s.last_id;
    let id = if &args[4][..] == b"$" {
        last
    } else {
        parse_loose_id(&args[4])?
    };
    let Some(s) = stream_at(&mut c.store, &args[2], false)? else {
        return Ok(());
    };
    if let Some(g) = s.groups.get_mut(&args[3][..]) {
        g.last_id = id;
        g.entries_read = entries_read;
    }
    c.out.ok();
    touched(c, &args[2], "xgroup-setid");
    Ok(())
}

fn xgroup_destroy(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let s = xgroup_stream(&mut c.store, &c.args[2])?;
    let removed = s.groups.remove(&args[3][..]).is_some();
    c.out.int(removed as i64);
    if removed {
        // Touching wakes XREADGROUP clients blocked on it: they get NOGROUP.
        touched(c, &args[2], "xgroup-destroy");
    }
    Ok(())
}

fn xgroup_createconsumer(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let now = c.store.now;
    let s = xgroup_stream(&mut c.store, &c.args[2])?;
    let Some(g) = s.groups.get_mut(&args[3][..]) else {
        return Err(nogroup_for_key(&args[2], &args[3]));
    };
    let created = g.create_consumer(&args[4], now);
    c.out.int(created as i64);
    if created {
        touched(c, &args[2], "xgroup-createconsumer");
    }
    Ok(())
}

fn xgroup_delconsumer(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let s = xgroup_stream(&mut c.store, &c.args[2])?;
    let Some(g) = s.groups.get_mut(&args[3][..]) else {
        return Err(nogroup_for_key(&args[2], &args[3]));
    };
    let pending = g.delete_consumer(&args[4]);
    c.out.int(pending.unwrap_or(0) as i64);
    if pending.is_some() {
        touched(c, &args[2], "xgroup-delconsumer");
    }
    Ok(())
}

fn xgroup_help(c: &mut Ctx) -> CmdResult {
    const LINES: &[&str] = &[
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
    ];
    crate::cmd::server::reply_help(c.out, "XGROUP", LINES);
    Ok(())
}

// ---------------------------------------------------------------- delivery

/// One XREADGROUP read of one stream.
pub(super) struct GroupRead<'a> {
    pub group: &'a [u8],
    pub consumer: &'a [u8],
    pub count: usize,
    pub noack: bool,
    pub now: u64,
}

/// `>`: entries after the group's last delivered ID, which advances (with
/// its read counter, as streamReplyWithRange does); each becomes pending
/// for the consumer unless NOACK.
pub(super) fn reply_new(out: &mut Reply, s: &mut Stream, r: &GroupRead) {
    let Some(mut g) = s.groups.remove(r.group) else {
        out.array(0);
        return;
    };
    let start = g.last_id.next();
    let entries = match start {
        Some(start) => s.collect(start, StreamId::MAX, false, r.count),
        None => Vec::new(),
    };
    super::reply_entries(out, &entries);
    let ids: Vec<StreamId> = entries.iter().map(|(id, _)| *id).collect();
    drop(entries);
    for id in &ids {
        if *id > g.last_id {
            if s.counter_stays_exact(&g) {
                g.entries_read += 1;
            } else if s.entries_added > 0 {
                g.entries_read = s.estimate_position(*id);
            }
            g.last_id = *id;
        }
        if !r.noack {
            g.assign(*id, r.consumer, r.now, 1);
        }
    }
    // Only entries it now owns make the consumer active (not NOACK reads).
    if !ids.is_empty() && !r.noack {
        if let Some(cons) = g.consumers.get_mut(r.consumer) {
            cons.active_time = r.now as i64;
        }
    }
    s.groups.insert(r.group.into(), g);
}

/// An ID: the consumer's own pending entries after `after`, delivered
/// again (a deleted entry comes back as [id, nil]).
pub(super) fn reply_history(out: &mut Reply, s: &mut Stream, r: &GroupRead, after: StreamId) {
    let Some(mut g) = s.groups.remove(r.group) else {
        out.array(0);
        return;
    };
    let ids: Vec<StreamId> = match (g.consumers.get(r.consumer), after.next()) {
        (Some(cons), Some(start)) => {
            let it = cons.pel.range(start..).copied();
            if r.count == 0 {
                it.collect()
            } else {
                it.take(r.count).collect()
            }
        }
        _ => Vec::new(),
    };
    out.array(ids.len());
    for id in &ids {
        match s.get(*id) {
            Some(fields) => {
                reply_entry(out, *id, &fields);
                if let Some(p) = g.pel.get_mut(id) {
                    p.delivery_time = r.now;
                    p.delivery_count += 1;
                }
            }
            None => {
                out.array(2);
                reply_id(out, *id);
                out.null_array();
            }
        }
    }
    s.groups.insert(r.group.into(), g);
}

// ---------------------------------------------------------------- XACK

pub(super) fn xack(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let Some(s) = stream_at(&mut c.store, &args[1], true)? else {
        c.out.int(0);
        return Ok(());
    };
    if !s.groups.contains_key(&args[2][..]) {
        c.out.int(0);
        return Ok(());
    }
    let ids = args[3..]
        .iter()
        .map(|a| parse_strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(g) = s.groups.get_mut(&args[2][..]) else {
        return Ok(());
    };
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    c.out.int(acked as i64);
    if acked > 0 {
        let db = c.store.db;
        c.store.modified(db, &args[1]);
    }
    Ok(())
}

// ---------------------------------------------------------------- XPENDING

pub(super) fn xpending(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let now = c.store.now as i64;
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(err::SYNTAX.into());
    }
    let mut range = None;
    let mut min_idle = 0;
    let mut consumer = None;
    if argc >= 6 {
        let mut at = 3;
        if is(&args[3], "idle") {
            min_idle = parse_i64(&args[4])?;
            if argc < 8 {
                return Err(err::SYNTAX.into());
            }
            at += 2;
        }
        let count = parse_i64(&args[at + 2])?.max(0);
        let start = parse_bound(&args[at], 0, true)?;
        let end = parse_bound(&args[at + 1], u64::MAX, false)?;
        if at + 3 < argc {
            consumer = Some(&args[at + 3]);
        }
        range = Some((start, end, count));
    }
    let Some(s) = stream_at(&mut c.store, &args[1], true)? else {
        return Err(nogroup(&args[1], &args[2]));
    };
    let Some(g) = s.groups.get(&args[2][..]) else {
        return Err(nogroup(&args[1], &args[2]));
    };
    let Some((start, end, count)) = range else {
        pending_summary(c.out, g);
        return Ok(());
    };
    let pel: Vec<StreamId> = match consumer {
        Some(name) => match g.consumers.get(&name[..]) {
            Some(cons) => cons.pel.iter().copied().collect(),
            None => {
                c.out.array(0);
                return Ok(());
            }
        },
        None => g.pel.keys().copied().collect(),
    };
    let mut rows = Vec::new();
    if start <= end {
        for id in pel.iter().filter(|id| **id >= start && **id <= end) {
            if rows.len() as i64 >= count {
                break;
            }
            let Some(p) = g.pel.get(id) else {
                continue;
            };
            let idle = now - p.delivery_time as i64;
            if min_idle != 0 && idle < min_idle {
                continue;
            }
            rows.push((*id, p.consumer.clone(), idle.max(0), p.delivery_count));
        }
    }
    c.out.array(rows.len());
    for (id, name, idle, count) in rows {
        c.out.array(4);
        reply_id(c.out, id);
        c.out.bulk(&name);
        c.out.int(idle);
        c.out.int(count as i64);
    }
    Ok(())
}

/// XPENDING key group: [count, first, last, [[consumer, count]...]].
fn pending_summary(out: &mut Reply, g: &Group) {
    out.array(4);
    out.int(g.pel.len() as i64);
    let (Some((first, _)), Some((last, _))) = (g.pel.first_key_value(), g.pel.last_key_value())
    else {
        out.null();
        out.null();
        out.null_array();
        return;
    };
    reply_id(out, *first);
    reply_id(out, *last);
    let busy: Vec<_> = g.consumers.values().filter(|c| !c.pel.is_empty()).collect();
    out.array(busy.len());
    for cons in busy {
        out.array(2);
        out.bulk(&cons.name);
        let mut b = itoa::Buffer::new();
        out.bulk(b.format(cons.pel.len()).as_bytes());
    }
}

// ---------------------------------------------------------------- XCLAIM

/// XCLAIM's options after the IDs.
struct ClaimOpts {
    force: bool,
    justid: bool,
    /// Last delivery time to set (None: now).
    time: Option<i64>,
    retry: Option<i64>,
    last_id: StreamId,
}

fn parse_claim_opts(c: &Ctx, from: usize, now: i64) -> Result<ClaimOpts, CmdError> {
    let args = c.args;
    let mut o = ClaimOpts {
        force: false,
        justid: false,
        time: None,
        retry: None,
        last_id: StreamId::MIN,
    };
    let int = |a: &[u8], what: &'static str| parse_i64_opt(a).ok_or(CmdError::from(what));
    let mut j = from;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j][..];
        if is(opt, "force") {
            o.force = true;
        } else if is(opt, "justid") {
            o.justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            let idle = int(&args[j], "ERR Invalid IDLE option argument for XCLAIM")?;
            o.time = Some(now.wrapping_sub(idle));
        } else if is(opt, "time") && more > 0 {
            j += 1;
            o.time = Some(int(
                &args[j],
                "ERR Invalid TIME option argument for XCLAIM",
            )?);
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            o.retry = Some(int(
                &args[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            )?);
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            o.last_id = parse_strict_id(&args[j])?;
        } else {
            return Err(CmdError::concat(&[
                b"ERR Unrecognized XCLAIM option '",
                opt,
                b"'",
            ]));
        }
        j += 1;
    }
    Ok(o)
}

/// Replies with entry `id` of `s` as XCLAIM does (nil if it vanished).
fn reply_claimed(out: &mut Reply, s: &Stream, id: StreamId, justid: bool) {
    if justid {
        reply_id(out, id);
    } else {
        match s.get(id) {
            Some(f) => reply_entry(out, id, &f),
            None => out.null(),
        }
    }
}

pub(super) fn xclaim(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let now = c.store.now;
    let db = c.store.db;
    let Some(s) = stream_at(&mut c.store, &args[1], true)? else {
        return Err(nogroup(&args[1], &args[2]));
    };
    if !s.groups.contains_key(&args[2][..]) {
        return Err(nogroup(&args[1], &args[2]));
    }
    let min_idle = parse_i64_opt(&args[4])
        .ok_or("ERR Invalid min-idle-time argument for XCLAIM")?
        .max(0);
    let ids: Vec<StreamId> = args[5..]
        .iter()
        .map_while(|a| parse_strict_id(a).ok())
        .collect();
    let o = parse_claim_opts(c, 5 + ids.len(), now as i64)?;
    // Found above (one keyspace hit, as Redis counts): fetch it again
    // without counting.
    let Some(s) = stream_at(&mut c.store, &args[1], false)? else {
        return Ok(());
    };
    let Some(mut g) = s.groups.remove(&args[2][..]) else {
        return Ok(());
    };
    if o.last_id > g.last_id {
        g.last_id = o.last_id;
    }
    let name = &args[3][..];
    super::consumer_up_front(c.server, &mut g, name, now, &args[1], db);
    if let Some(cons) = g.consumers.get_mut(name) {
        cons.seen_time = now;
    }
    // A time in the future is bogus: now instead, as Redis. An AOF replay
    // runs at instant 0 (expiry suspended) and keeps the logged time.
    let time = match o.time {
        Some(t) if t >= 0 && (t <= now as i64 || now == 0) => t as u64,
        _ => now,
    };
    let mut claimed = Vec::new();
    for id in ids {
        if !s.contains(id) {
            g.ack(id);
            continue;
        }
        let (owner, count) = match g.pel.get(&id) {
            Some(p) => (Some(p.consumer.clone()), p.delivery_count),
            None if o.force => (None, 1),
            None => continue,
        };
        // An entry FORCE just created has no owner and no idle time.
        if owner.is_some() && min_idle != 0 {
            let since = g.pel.get(&id).map_or(now, |p| p.delivery_time);
            if (now as i64) - (since as i64) < min_idle {
                continue;
            }
        }
        let count = match o.retry {
            Some(n) if n >= 0 => n as u64,
            _ if !o.justid => count + 1,
            _ => count,
        };
        g.assign(id, name, time, count);
        if let Some(cons) = g.consumers.get_mut(name) {
            cons.active_time = now as i64;
        }
        claimed.push(id);
    }
    s.groups.insert(args[2][..].into(), g);
    c.out.array(claimed.len());
    for id in claimed {
        reply_claimed(c.out, s, id, o.justid);
    }
    c.store.modified(db, &args[1]);
    Ok(())
}

// ---------------------------------------------------------------- XAUTOCLAIM

pub(super) fn xautoclaim(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let now = c.store.now;
    let db = c.store.db;
    let min_idle = parse_i64_opt(&args[4])
        .ok_or("ERR Invalid min-idle-time argument for XAUTOCLAIM")?
        .max(0);
    let start = parse_bound(&args[5], 0, true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = match parse_i64_opt(&args[j + 1]) {
                Some(n) if (1..=max).contains(&n) => n,
                _ => return Err("ERR COUNT must be > 0".into()),
            };
            j += 1;
        } else if is(&args[j], "justid") {
            justid = true;
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    let Some(s) = stream_at(&mut c.store, &args[1], true)? else {
        return Err(nogroup(&args[1], &args[2]));
    };
    let Some(mut g) = s.groups.remove(&args[2][..]) else {
        return Err(nogroup(&args[1], &args[2]));
    };
    let name = &args[3][..];
    super::consumer_up_front(c.server, &mut g, name, now, &args[1], db);
    if let Some(cons) = g.consumers.get_mut(name) {
        cons.seen_time = now;
    }
    let mut attempts = count * 10;
    let mut left = count;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor = Some(start);
    while let Some(from) = cursor {
        if attempts == 0 || left == 0 {
            break;
        }
        let Some((&id, p)) = g.pel.range(from..).next() else {
            cursor = None;
            break;
        };
        attempts -= 1;
        cursor = id.next();
        if !s.contains(id) {
            g.ack(id);
            deleted.push(id);
            left -= 1;
            continue;
        }
        if min_idle != 0 && (now as i64) - (p.delivery_time as i64) < min_idle {
            continue;
        }
        let n = p.delivery_count + u64::from(!justid);
        g.assign(id, name, now, n);
        if let Some(cons) = g.consumers.get_mut(name) {
            cons.active_time = now as i64;
        }
        claimed.push(id);
        left -= 1;
    }
    let next = cursor
        .and_then(|from| g.pel.range(from..).next().map(|(id, _)| *id))
        .unwrap_or(StreamId::MIN);
    s.groups.insert(args[2][..].into(), g);
    c.out.array(3);
    reply_id(c.out, next);
    c.out.array(claimed.len());
    for id in claimed {
        reply_claimed(c.out, s, id, justid);
    }
    c.out.array(deleted.len());
    for id in deleted {
        reply_id(c.out, id);
    }
    c.store.modified(db, &args[1]);
    Ok(())
}
