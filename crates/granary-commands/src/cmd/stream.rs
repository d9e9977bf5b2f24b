//! Stream commands (t_stream.c): XADD, XRANGE, XREAD, consumer groups and
//! the rest. The data structure is granary_keyspace::types::stream.
//!
//! Argument checks run in Redis's order (some before the key lookup, some
//! after), since which error a bad call gets is part of the contract.

mod group;
mod info;

use crate::blocking::{self, Waiter};
use crate::ctx::{err, Action, CmdError, CmdResult, Ctx, Store};
use crate::notify::{class, notify};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::types::stream::{Fields, NodeLimits, Stream, StreamId, Trim};
use granary_keyspace::Value;
use granary_protocol::Reply;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Instant;

const G: &str = "stream";

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("xadd", -5, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), xadd).group(G, "5.0.0").acl(&["@write", "@stream", "@fast"]).doc("Appends a new message to a stream. Creates the key if it doesn't exist."),
    Spec::new("xlen", 2, READONLY | FAST, Keys::Range(1, 1, 1), xlen).group(G, "5.0.0").acl(&["@read", "@stream", "@fast"]).doc("Return the number of messages in a stream."),
    Spec::new("xrange", -4, READONLY, Keys::Range(1, 1, 1), xrange).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns the messages from a stream within a range of IDs."),
    Spec::new("xrevrange", -4, READONLY, Keys::Range(1, 1, 1), xrevrange).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns the messages from a stream within a range of IDs in reverse order."),
    Spec::new("xdel", -3, WRITE | FAST, Keys::Range(1, 1, 1), xdel).group(G, "5.0.0").acl(&["@write", "@stream", "@fast"]).doc("Returns the number of messages after removing them from a stream."),
    Spec::new("xtrim", -4, WRITE, Keys::Range(1, 1, 1), xtrim).group(G, "5.0.0").acl(&["@write", "@stream", "@slow"]).doc("Deletes messages from the beginning of a stream."),
    Spec::new("xsetid", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), xsetid).group(G, "5.0.0").acl(&["@write", "@stream", "@fast"]).doc("An internal command for replicating stream values."),
    Spec::new("xread", -4, READONLY | BLOCKING, Keys::Custom(xread_keys), xread).group(G, "5.0.0").acl(&["@read", "@stream", "@slow", "@blocking"]).doc("Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."),
    Spec::new("xreadgroup", -7, WRITE | BLOCKING, Keys::Custom(xread_keys), xreadgroup).group(G, "5.0.0").acl(&["@write", "@stream", "@slow", "@blocking"]).doc("Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise."),
    Spec::new("xack", -4, WRITE | FAST, Keys::Range(1, 1, 1), group::xack).group(G, "5.0.0").acl(&["@write", "@stream", "@fast"]).doc("Returns the number of messages that were successfully acknowledged by the consumer group member of a stream."),
    Spec::new("xpending", -3, READONLY, Keys::Range(1, 1, 1), group::xpending).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns the information and entries from a stream consumer group's pending entries list."),
    Spec::new("xclaim", -6, WRITE | FAST, Keys::Range(1, 1, 1), group::xclaim).group(G, "5.0.0").acl(&["@write", "@stream", "@fast"]).doc("Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member."),
    Spec::new("xautoclaim", -6, WRITE | FAST, Keys::Range(1, 1, 1), group::xautoclaim).group(G, "6.2.0").acl(&["@write", "@stream", "@fast"]).doc("Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member."),
    Spec::container("xgroup", group::XGROUP).group(G, "5.0.0").acl(&["@slow"]).doc("A container for consumer groups commands."),
    Spec::container("xinfo", info::XINFO).group(G, "5.0.0").acl(&["@slow"]).doc("A container for stream introspection commands."),
];

// ---------------------------------------------------------------- IDs

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Redis's string2ull: a canonical integer, else what strtoull accepts
/// (leading blanks, a sign, leading zeros; a minus wraps around).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = granary_keyspace::canonical_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut i = s
        .iter()
        .take_while(|b| b" \t\n\x0b\x0c\r".contains(b))
        .count();
    let mut neg = false;
    if let Some(&c) = s.get(i) {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i += 1;
        }
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A parsed ID argument: `seq_auto` for `<ms>-*`.
struct ParsedId {
    id: StreamId,
    seq_auto: bool,
}

/// streamGenericParseIDOrReply: `-` and `+` unless `strict`, `<ms>` (the
/// sequence is `missing_seq`), `<ms>-<seq>`, and `<ms>-*` if `allow_auto`.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto: bool,
) -> Result<ParsedId, CmdError> {
    let plain = |id| {
        Ok(ParsedId {
            id,
            seq_auto: false,
        })
    };
    if arg.len() > 127 {
        return Err(INVALID_ID.into());
    }
    if arg == b"-" || arg == b"+" {
        if strict {
            return Err(INVALID_ID.into());
        }
        return plain(if arg == b"-" {
            StreamId::MIN
        } else {
            StreamId::MAX
        });
    }
    let Some(dash) = arg.iter().position(|&b| b == b'-') else {
        let ms = string2ull(arg).ok_or(INVALID_ID)?;
        return plain(StreamId::new(ms, missing_seq));
    };
    let ms = string2ull(&arg[..dash]).ok_or(INVALID_ID)?;
    let rest = &arg[dash + 1..];
    if allow_auto && rest == b"*" {
        return Ok(ParsedId {
            id: StreamId::new(ms, 0),
            seq_auto: true,
        });
    }
    let seq = string2ull(rest).ok_or(INVALID_ID)?;
    plain(StreamId::new(ms, seq))
}

/// A strict ID (no `-`/`+`): what XADD, XDEL, XACK... take.
fn parse_strict_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_full(arg, 0, true, false).map(|p| p.id)
}

/// An ID that may also be `-` or `+` (XGROUP SETID).
fn parse_loose_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_full(arg, 0, false, false).map(|p| p.id)
}

/// streamParseIntervalIDOrReply: an interval bound, `(` makes it exclusive;
/// the bound comes back already moved past the excluded ID.
fn parse_bound(arg: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, CmdError> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id_full(&arg[1..], missing_seq, true, false)?.id;
        let moved = if start { id.next() } else { id.prev() };
        return moved.ok_or(
            if start {
                "ERR invalid start ID for the interval"
            } else {
                "ERR invalid end ID for the interval"
            }
            .into(),
        );
    }
    parse_id_full(arg, missing_seq, false, false).map(|p| p.id)
}

/// Writes an ID as a bulk string.
pub(crate) fn reply_id(out: &mut Reply, id: StreamId) {
    let mut a = itoa::Buffer::new();
    let mut b = itoa::Buffer::new();
    let ms = a.format(id.ms).as_bytes();
    let seq = b.format(id.seq).as_bytes();
    let mut buf = [0u8; 41];
    buf[..ms.len()].copy_from_slice(ms);
    buf[ms.len()] = b'-';
    buf[ms.len() + 1..ms.len() + 1 + seq.len()].copy_from_slice(seq);
    out.bulk(&buf[..ms.len() + 1 + seq.len()]);
}

/// One entry: [id, [field, value, ...]].
pub(crate) fn reply_entry(out: &mut Reply, id: StreamId, fields: &[(&[u8], &[u8])]) {
    out.array(2);
    reply_id(out, id);
    out.array(fields.len() * 2);
    for (f, v) in fields {
        out.bulk(f);
        out.bulk(v);
    }
}

pub(crate) fn reply_entries(out: &mut Reply, entries: &[(StreamId, Fields)]) {
    out.array(entries.len());
    for (id, f) in entries {
        reply_entry(out, *id, f);
    }
}

// ---------------------------------------------------------------- access

/// The stream at `key`, or WRONGTYPE; `read` counts a keyspace hit/miss.
pub(crate) fn stream_at<'s>(
    store: &'s mut Store,
    key: &[u8],
    read: bool,
) -> Result<Option<&'s mut Stream>, CmdError> {
    store.typed(key, read, |v| match v {
        Value::Stream(s) => Some(&mut **s),
        _ => None,
    })
}

/// A write to the stream at `key`: WATCH, notifications, and clients
/// blocked on it (every one of them may be able to read now).
pub(crate) fn touched(c: &mut Ctx, key: &[u8], event: &str) {
    let db = c.store.db;
    c.store.modified(db, key);
    notify(c.server, class::STREAM, event, key, db);
    blocking::signal(db, key, usize::MAX);
}

fn node_limits(c: &Ctx) -> NodeLimits {
    let cfg = &c.server.config;
    NodeLimits {
        max_entries: cfg.get_int("stream-node-max-entries").max(0) as u64,
        max_bytes: cfg.get_int("stream-node-max-bytes").max(0) as u64,
    }
}

// ---------------------------------------------------------------- XADD / XTRIM

/// XADD's and XTRIM's options (streamAddTrimArgs).
#[derive(Default)]
struct AddTrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: Option<i64>,
    no_mkstream: bool,
    /// XADD's explicit ID.
    id: Option<ParsedId>,
    /// Where XADD's ID argument is.
    id_pos: usize,
}

/// streamParseAddOrTrimArgsOrReply.
fn parse_add_trim(c: &Ctx, xadd: bool) -> Result<AddTrimArgs, CmdError> {
    let args = c.args;
    let mut a = AddTrimArgs::default();
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible".into());
            }
            a.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let v = &args[i + 1];
            if is(opt, "maxlen") {
                let n = parse_i64(v)?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                a.trim = Some(Trim::MaxLen(n as u64));
            } else {
                a.trim = Some(Trim::MinId(parse_strict_id(v)?));
            }
            i += 1;
        } else if is(opt, "limit") && more > 0 {
            let n = parse_i64(&args[i + 1])?;
            if n < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            a.limit = Some(n);
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            a.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    a.id_pos = i;
    if a.limit.is_some_and(|l| l != 0) && a.trim.is_none() {
        return Err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into(),
        );
    }
    if !xadd && a.trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if a.limit.is_some() && !a.approx {
        return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
    }
    if a.limit.is_none() && a.approx {
        let l = 100 * c.server.config.get_int("stream-node-max-entries");
        a.limit = Some(if l <= 0 || l > 10000 { 10000 } else { l });
    }
    Ok(a)
}

/// Trims as parsed; the number of entries removed.
fn apply_trim(s: &mut Stream, a: &AddTrimArgs) -> u64 {
    match a.trim {
        Some(how) => s.trim(how, a.approx, a.limit.unwrap_or(0).max(0) as u64),
        None => 0,
    }
}

/// The ID XADD gives the new entry (streamAppendItem's checks).
fn next_id(s: &Stream, given: Option<&ParsedId>, now: u64) -> Result<StreamId, CmdError> {
    const NOT_GREATER: &str =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    let last = s.last_id;
    let id = match given {
        Some(p) if !p.seq_auto => p.id,
        Some(p) if p.id.ms == last.ms => {
            if last.seq == u64::MAX {
                return Err(NOT_GREATER.into());
            }
            StreamId::new(last.ms, last.seq + 1)
        }
        Some(p) => p.id,
        None if now > last.ms => StreamId::new(now, 0),
        None => last.next().unwrap_or(last),
    };
    if id <= last {
        return Err(NOT_GREATER.into());
    }
    Ok(id)
}

fn xadd(c: &mut Ctx) -> CmdResult {
    let a = parse_add_trim(c, true)?;
    let args = c.args;
    let fields_at = a.id_pos + 1;
    let n = args.len() - fields_at.min(args.len());
    if n < 2 || n % 2 == 1 {
        return Err(c.arity_error());
    }
    if let Some(p) = &a.id {
        if !p.seq_auto && p.id.is_zero() {
            return Err("ERR The ID specified in XADD must be greater than 0-0".into());
        }
    }
    let key = &args[1];
    let lim = node_limits(c);
    let now = c.store.now;
    if stream_at(&mut c.store, key, false)?.is_none() {
        if a.no_mkstream {
            c.out.null();
            return Ok(());
        }
        c.store.set(key, Value::Stream(Box::default()), None);
    }
    let Some(s) = stream_at(&mut c.store, key, false)? else {
        return Ok(());
    };
    if s.last_id == StreamId::MAX {
        return Err(
            "ERR The stream has exhausted the last possible ID, unable to add more items".into(),
        );
    }
    let id = next_id(s, a.id.as_ref(), now)?;
    let fields: Vec<&[u8]> = args[fields_at..].iter().map(|b| &b[..]).collect();
    s.append(id, &fields, lim);
    let trimmed = apply_trim(s, &a);
    crate::cmd::writebehind::stream_added(c.server, c.store.db, key, id, &fields);
    reply_id(c.out, id);
    touched(c, key, "xadd");
    if trimmed > 0 {
        notify(c.server, class::STREAM, "xtrim", key, c.store.db);
    }
    Ok(())
}

fn xtrim(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    let a = parse_add_trim(c, false)?;
    let Some(s) = stream_at(&mut c.store, key, false)? else {
        c.out.int(0);
        return Ok(());
    };
    let n = apply_trim(s, &a);
    c.out.int(n as i64);
    if n > 0 {
        touched(c, key, "xtrim");
    }
    Ok(())
}

fn xlen(c: &mut Ctx) -> CmdResult {
    let n = stream_at(&mut c.store, &c.args[1], true)?.map_or(0, |s| s.len());
    c.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------- XRANGE

fn range_generic(c: &mut Ctx, rev: bool) -> CmdResult {
    let args = c.args;
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = parse_bound(start_arg, 0, true)?;
    let end = parse_bound(end_arg, u64::MAX, false)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if is(&args[j], "count") && j + 1 < args.len() {
            count = parse_i64(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(err::SYNTAX.into());
        }
    }
    let Some(s) = stream_at(&mut c.store, &args[1], true)? else {
        c.out.array(0);
        return Ok(());
    };
    if count == 0 {
        c.out.null_array();
        return Ok(());
    }
    let entries = s.collect(start, end, rev, count.max(0) as usize);
    reply_entries(c.out, &entries);
    Ok(())
}

fn xrange(c: &mut Ctx) -> CmdResult {
    range_generic(c, false)
}

fn xrevrange(c: &mut Ctx) -> CmdResult {
    range_generic(c, true)
}

// ---------------------------------------------------------------- XDEL / XSETID

fn xdel(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let Some(s) = stream_at(&mut c.store, &args[1], false)? else {
        c.out.int(0);
        return Ok(());
    };
    let ids = args[2..]
        .iter()
        .map(|a| parse_strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0;
    let mut first = false;
    for id in ids {
        if s.delete(id) {
            first |= id == s.first_id;
            if id > s.max_deleted_id {
                s.max_deleted_id = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 && (s.is_empty() || first) {
        s.refresh_first_id();
    }
    c.out.int(deleted);
    if deleted > 0 {
        touched(c, &args[1], "xdel");
    }
    Ok(())
}

fn xsetid(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let id = parse_strict_id(&args[2])?;
    let mut entries_added: i64 = -1;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is(&args[i], "entriesadded") && more > 0 {
            entries_added = parse_i64(&args[i + 1])?;
            if entries_added < 0 {
                return Err("ERR entries_added must be positive".into());
            }
        } else if is(&args[i], "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(&args[i + 1])?;
            if id < max_deleted {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 2;
    }
    let Some(s) = stream_at(&mut c.store, &args[1], false)? else {
        return Err(err::NO_SUCH_KEY.into());
    };
    if id < s.max_deleted_id {
        return Err(
            "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id".into(),
        );
    }
    if !s.is_empty() {
        if id < s.edge_id(false).unwrap_or_default() {
            return Err(
                "ERR The ID specified in XSETID is smaller than the target stream top item".into(),
            );
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length".into());
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_deleted.is_zero() {
        s.max_deleted_id = max_deleted;
    }
    c.out.ok();
    touched(c, &args[1], "xsetid");
    Ok(())
}

// ---------------------------------------------------------------- XREAD

/// XREAD/XREADGROUP keys: half of what follows STREAMS. Walks the options
/// as `parse_read` does, so both agree on where STREAMS is; none if the
/// arguments are malformed (the command then fails before any access).
fn xread_keys(args: &[Bytes]) -> Vec<usize> {
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = &args[i][..];
        if (is(o, "block") || is(o, "count")) && more > 0 {
            i += 2;
        } else if is(o, "streams") && more > 0 {
            let n = args.len() - i - 1;
            if !n.is_multiple_of(2) {
                return vec![];
            }
            return (i + 1..i + 1 + n / 2).collect();
        } else if is(o, "group") && more >= 2 {
            i += 3;
        } else if is(o, "noack") {
            i += 1;
        } else {
            return vec![];
        }
    }
    vec![]
}

/// XREAD's and XREADGROUP's options.
struct ReadArgs {
    /// Timeout deadline: None = no BLOCK, Some(None) = forever.
    block: Option<Option<Instant>>,
    count: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    /// First key's index; the IDs follow the keys.
    keys_at: usize,
    nkeys: usize,
}

fn parse_read(c: &Ctx, group_cmd: bool) -> Result<ReadArgs, CmdError> {
    let args = c.args;
    let mut r = ReadArgs {
        block: None,
        count: 0,
        group: None,
        noack: false,
        keys_at: 0,
        nkeys: 0,
    };
    let name = if group_cmd { "XREADGROUP" } else { "XREAD" };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = &args[i][..];
        if is(o, "block") && more > 0 {
            i += 1;
            r.block = Some(parse_block_timeout(&args[i], c.store.now)?);
        } else if is(o, "count") && more > 0 {
            i += 1;
            r.count = parse_i64(&args[i])?.max(0) as usize;
        } else if is(o, "streams") && more > 0 {
            let n = args.len() - i - 1;
            if !n.is_multiple_of(2) {
                let sym = if group_cmd { '>' } else { '$' };
                return Err(format!("ERR Unbalanced '{}' list of streams: for each stream key an ID or '{sym}' must be specified.", name.to_lowercase()).into());
            }
            r.keys_at = i + 1;
            r.nkeys = n / 2;
            break;
        } else if is(o, "group") && more >= 2 {
            if !group_cmd {
                return Err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
                        .into(),
                );
            }
            r.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if is(o, "noack") {
            if !group_cmd {
                return Err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
                        .into(),
                );
            }
            r.noack = true;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if r.keys_at == 0 {
        return Err(err::SYNTAX.into());
    }
    if group_cmd && r.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    Ok(r)
}

/// getTimeoutFromObjectOrReply in milliseconds.
fn parse_block_timeout(arg: &[u8], now: u64) -> Result<Option<Instant>, CmdError> {
    let ms =
        crate::util::parse_i64_opt(arg).ok_or("ERR timeout is not an integer or out of range")?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    if ms == 0 {
        return Ok(None);
    }
    if ms > i64::MAX - now as i64 {
        return Err("ERR timeout is out of range".into());
    }
    Ok(Instant::now().checked_add(std::time::Duration::from_millis(ms as u64)))
}

/// What to read from one stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum From {
    /// Entries after this ID.
    After(StreamId),
    /// XREADGROUP `>`: entries never delivered to the group.
    New,
}

/// The IDs `$` resolved to when a client blocked, per client (Redis
/// rewrites the blocked command's arguments instead).
type Resolved = HashMap<u64, (Weak<Waiter>, Vec<From>)>;
static RESOLVED: LazyLock<Mutex<Resolved>> = LazyLock::new(Mutex::default);

fn resolved_for(me: Option<&Arc<Waiter>>) -> Option<Vec<From>> {
    let w = me?;
    let map = RESOLVED.lock();
    let (weak, ids) = map.get(&w.client)?;
    (weak.as_ptr() == Arc::as_ptr(w)).then(|| ids.clone())
}

fn remember_resolved(w: &Arc<Waiter>, ids: Vec<From>) {
    let mut map = RESOLVED.lock();
    map.retain(|_, (weak, _)| weak.strong_count() > 0);
    map.insert(w.client, (Arc::downgrade(w), ids));
}

fn forget_resolved(client: u64) {
    let mut map = RESOLVED.lock();
    if !map.is_empty() {
        map.remove(&client);
    }
}

/// Parses the IDs after the keys, resolving `$` (and `+`) now.
fn parse_read_ids(c: &mut Ctx, r: &ReadArgs) -> Result<Vec<From>, CmdError> {
    let args = c.args;
    let mut out = Vec::with_capacity(r.nkeys);
    for k in 0..r.nkeys {
        let key = &args[r.keys_at + k];
        let arg = &args[r.keys_at + r.nkeys + k][..];
        // A read lookup, as Redis's: a missing key is a keyspace miss (and
        // XREAD misses it again when serving, two keymiss events).
        let s = stream_at(&mut c.store, key, true)?;
        if let Some((g, _)) = &r.group {
            if s.as_ref().is_none_or(|s| !s.groups.contains_key(&g[..])) {
                return Err(nogroup_read(key, g));
            }
        }
        let from = match arg {
            b"$" if r.group.is_some() => return Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into()),
            b"$" => From::After(s.map_or(StreamId::MIN, |s| s.last_id)),
            b">" if r.group.is_none() => return Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".into()),
            b">" => From::New,
            // Redis marks `>` as the largest ID: that ID means `>` too.
            _ if r.group.is_some() && parse_strict_id(arg).ok() == Some(StreamId::MAX) => From::New,
            b"+" if r.group.is_some() => return Err("ERR The + ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The + ID would just return an empty result set.".into()),
            // XREAD `+`: the entry with the last ID, if it still exists.
            b"+" => From::After(s.and_then(|s| s.last_id.prev()).unwrap_or(StreamId::MIN)),
            _ => From::After(parse_strict_id(arg)?),
        };
        out.push(from);
    }
    Ok(out)
}

pub(crate) fn nogroup_read(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::concat(&[
        b"NOGROUP No such key '",
        key,
        b"' or consumer group '",
        group,
        b"' in XREADGROUP with GROUP option",
    ])
}

fn xread(c: &mut Ctx) -> CmdResult {
    read_generic(c, false)
}

fn xreadgroup(c: &mut Ctx) -> CmdResult {
    read_generic(c, true)
}

/// XREAD and XREADGROUP: serve what is there, else block (or reply null).
fn read_generic(c: &mut Ctx, group_cmd: bool) -> CmdResult {
    let r = parse_read(c, group_cmd)?;
    let me = blocking::current(c.client.info.id);
    let args = c.args;
    let ids = match resolved_for(me.as_ref()) {
        Some(ids) if !group_cmd => ids,
        _ => parse_read_ids(c, &r)?,
    };
    if any_ready(c, &r, &ids)? && blocking::may_serve(me.as_ref()) {
        if let Some(w) = &me {
            blocking::unregister(w.client);
        }
        forget_resolved(c.client.info.id);
        return serve_streams(c, &r, &ids);
    }
    match (r.block, me) {
        (_, Some(w)) => c.action = Some(Action::Block(w)),
        (Some(deadline), None) if !c.client.in_exec => {
            let keys = &args[r.keys_at..r.keys_at + r.nkeys];
            let w = blocking::block(c.client.info.id, c.store.db, keys, deadline);
            if !group_cmd {
                remember_resolved(&w, ids);
            }
            c.action = Some(Action::Block(w));
        }
        _ => c.out.null_array(),
    }
    Ok(())
}

/// Whether the reader has something to get from any of the streams (and,
/// for groups, the consumer is created now even if it gets nothing).
fn any_ready(c: &mut Ctx, r: &ReadArgs, ids: &[From]) -> Result<bool, CmdError> {
    let args = c.args;
    let now = c.store.now;
    let db = c.store.db;
    let mut any = false;
    for (k, from) in ids.iter().enumerate() {
        let key = &args[r.keys_at + k];
        // IDs were checked against the keys' types; a blocked XREAD re-run
        // skips a key that became another type, as Redis keeps it waiting.
        let Ok(Some(s)) = stream_at(&mut c.store, key, true) else {
            continue;
        };
        if let Some((gname, cname)) = &r.group {
            let Some(g) = s.groups.get_mut(&gname[..]) else {
                return Err(nogroup_read(key, gname));
            };
            consumer_up_front(c.server, g, cname, now, key, db);
            if let Some(cons) = g.consumers.get_mut(&cname[..]) {
                cons.seen_time = now;
            }
        }
        any |= is_ready(s, r, *from);
    }
    Ok(any)
}

/// Since Redis 7.2, XREADGROUP, XCLAIM and XAUTOCLAIM create their
/// consumer up front, even when they deliver nothing, and notify it.
fn consumer_up_front(
    server: &crate::server::Server,
    g: &mut granary_keyspace::types::stream::Group,
    name: &[u8],
    now: u64,
    key: &[u8],
    db: usize,
) {
    if g.create_consumer(name, now) {
        notify(server, class::STREAM, "xgroup-createconsumer", key, db);
    }
}

/// Whether reading `from` in `s` gets something now.
fn is_ready(s: &Stream, r: &ReadArgs, from: From) -> bool {
    let last = s.edge_id(false);
    match (&r.group, from) {
        (Some((gname, _)), From::New) => {
            let g = s.groups.get(&gname[..]);
            last.is_some_and(|l| g.is_some_and(|g| l > g.last_id))
        }
        (Some(_), _) => true,
        (None, From::After(id)) => last.is_some_and(|l| l > id),
        (None, From::New) => false,
    }
}

/// Replies with the entries of each stream that has some, in order (a
/// stream named twice is checked again after the first read): an array of
/// [key, entries], a map in RESP3.
fn serve_streams(c: &mut Ctx, r: &ReadArgs, ids: &[From]) -> CmdResult {
    let args = c.args;
    let resp3 = c.out.resp3();
    let mut body = Reply::new(resp3);
    let mut served = 0;
    let now = c.store.now;
    for (k, from) in ids.iter().enumerate() {
        let key = &args[r.keys_at + k];
        // IDs were checked against the keys' types; a blocked XREAD re-run
        // skips a key that became another type, as Redis keeps it waiting.
        // Not counted as a keyspace hit: any_ready did (Redis looks each
        // key up twice, once parsing the IDs and once serving).
        let Ok(Some(s)) = stream_at(&mut c.store, key, false) else {
            continue;
        };
        if !is_ready(s, r, *from) {
            continue;
        }
        served += 1;
        if !resp3 {
            body.array(2);
        }
        body.bulk(key);
        match &r.group {
            None => {
                let entries = match *from {
                    From::After(id) => match id.next() {
                        Some(start) => s.collect(start, StreamId::MAX, false, r.count),
                        None => Vec::new(),
                    },
                    From::New => Vec::new(),
                };
                reply_entries(&mut body, &entries);
            }
            Some((gname, cname)) => {
                let read = group::GroupRead {
                    group: gname,
                    consumer: cname,
                    count: r.count,
                    noack: r.noack,
                    now,
                };
                match *from {
                    From::After(id) => group::reply_history(&mut body, s, &read, id),
                    _ => group::reply_new(&mut body, s, &read),
                }
                let db = c.store.db;
                c.store.modified(db, key);
            }
        }
    }
    if resp3 {
        c.out.map(served);
    } else {
        c.out.array(served);
    }
    for chunk in body.take_chunks() {
        c.out.raw(&chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn read_keys_follow_the_option_parser() {
        assert_eq!(
            xread_keys(&args("XREAD COUNT 1 STREAMS a b 0 0")),
            vec![4, 5]
        );
        assert_eq!(
            xread_keys(&args(
                "XREADGROUP GROUP streams c NOACK BLOCK 0 STREAMS k >"
            )),
            vec![8]
        );
        assert!(xread_keys(&args("XREAD STREAMS a b 0")).is_empty());
        assert!(xread_keys(&args("XREAD BOGUS STREAMS a 0")).is_empty());
    }

    #[test]
    fn ids_parse_like_redis() {
        assert_eq!(string2ull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(string2ull(b"18446744073709551616"), None);
        assert_eq!(string2ull(b"-1"), None);
        assert_eq!(string2ull(b"007"), Some(7));
        assert_eq!(string2ull(b"-05"), Some(5u64.wrapping_neg()));
        assert_eq!(string2ull(b""), None);
        let p = parse_id_full(b"5-*", 0, true, true)
            .ok()
            .map(|p| (p.id, p.seq_auto));
        assert_eq!(p, Some((StreamId::new(5, 0), true)));
        assert!(parse_strict_id(b"+").is_err());
        assert_eq!(parse_bound(b"-", 0, true).ok(), Some(StreamId::MIN));
        assert_eq!(parse_bound(b"(5", 0, true).ok(), Some(StreamId::new(5, 1)));
        assert!(parse_bound(b"(18446744073709551615-18446744073709551615", 0, true).is_err());
    }
}
