//! XINFO STREAM [FULL], GROUPS and CONSUMERS, fields in Redis 7.4's order.

use super::{reply_entries, reply_entry, reply_id, stream_at, G};
use crate::ctx::{err, CmdError, CmdResult, Ctx, Store};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use granary_keyspace::types::stream::{Group, Stream, StreamId};
use granary_protocol::Reply;

#[rustfmt::skip]
pub(super) static XINFO: &[Spec] = &[
    Spec::new("xinfo|consumers", 4, READONLY, Keys::Range(2, 2, 1), xinfo_consumers).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns a list of the consumers in a consumer group."),
    Spec::new("xinfo|groups", 3, READONLY, Keys::Range(2, 2, 1), xinfo_groups).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns a list of the consumer groups of a stream."),
    Spec::new("xinfo|help", 2, LOADING | STALE, Keys::None, xinfo_help).group(G, "5.0.0").acl(&["@stream", "@slow"]).doc("Returns helpful text about the different subcommands."),
    Spec::new("xinfo|stream", -3, READONLY, Keys::Range(2, 2, 1), xinfo_stream).group(G, "5.0.0").acl(&["@read", "@stream", "@slow"]).doc("Returns information about a stream."),
];

/// The stream XINFO looks at: it must exist.
fn info_stream<'s>(store: &'s mut Store, key: &[u8]) -> Result<&'s mut Stream, CmdError> {
    stream_at(store, key, true)?.ok_or_else(|| err::NO_SUCH_KEY.into())
}

fn xinfo_consumers(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let now = c.store.now as i64;
    let s = info_stream(&mut c.store, &c.args[2])?;
    let Some(g) = s.groups.get(&args[3][..]) else {
        return Err(CmdError::concat(&[
            b"NOGROUP No such consumer group '",
            &args[3],
            b"' for key name '",
            &args[2],
            b"'",
        ]));
    };
    let out = &mut *c.out;
    out.array(g.consumers.len());
    for cons in g.consumers.values() {
        out.map(4);
        out.bulk(b"name");
        out.bulk(&cons.name);
        out.bulk(b"pending");
        out.int(cons.pel.len() as i64);
        out.bulk(b"idle");
        out.int((now - cons.seen_time as i64).max(0));
        out.bulk(b"inactive");
        out.int(if cons.active_time == -1 {
            -1
        } else {
            now - cons.active_time
        });
    }
    Ok(())
}

fn reply_entries_read(out: &mut Reply, g: &Group) {
    if g.entries_read == -1 {
        out.null();
    } else {
        out.int(g.entries_read);
    }
}

fn reply_lag(out: &mut Reply, s: &Stream, g: &Group) {
    match s.group_lag(g) {
        Some(lag) => out.int(lag),
        None => out.null(),
    }
}

fn xinfo_groups(c: &mut Ctx) -> CmdResult {
    let s = info_stream(&mut c.store, &c.args[2])?;
    let out = &mut *c.out;
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(g.pel.len() as i64);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
    }
    Ok(())
}

fn xinfo_stream(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    info_stream(&mut c.store, &c.args[2])?;
    let opts = &args[3..];
    let (full, count) = match opts.len() {
        0 => (false, 10),
        1 if is(&opts[0], "full") => (true, 10),
        3 if is(&opts[0], "full") && is(&opts[1], "count") => {
            let n = parse_i64(&opts[2])?;
            (true, if n < 0 { 10 } else { n as usize })
        }
        _ => return Err(err::SYNTAX.into()),
    };
    // Redis looks the key up once (one keyspace hit): fetch it again
    // without counting.
    let s = stream_at(&mut c.store, &args[2], false)?.ok_or(err::NO_SUCH_KEY)?;
    let out = &mut *c.out;
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.radix_nodes() as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (name, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(name);
            match s.collect(StreamId::MIN, StreamId::MAX, rev, 1).first() {
                Some((id, f)) => reply_entry(out, *id, f),
                None => out.null(),
            }
        }
        return Ok(());
    }
    out.bulk(b"entries");
    reply_entries(out, &s.collect(StreamId::MIN, StreamId::MAX, false, count));
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        full_group(out, s, name, g, count);
    }
    Ok(())
}

/// One group of XINFO STREAM FULL, its PEL and consumers cut at `count`.
fn full_group(out: &mut Reply, s: &Stream, name: &[u8], g: &Group, count: usize) {
    let cap = |n: usize| if count == 0 { n } else { n.min(count) };
    out.map(7);
    out.bulk(b"name");
    out.bulk(name);
    out.bulk(b"last-delivered-id");
    reply_id(out, g.last_id);
    out.bulk(b"entries-read");
    reply_entries_read(out, g);
    out.bulk(b"lag");
    reply_lag(out, s, g);
    out.bulk(b"pel-count");
    out.int(g.pel.len() as i64);
    out.bulk(b"pending");
    out.array(cap(g.pel.len()));
    for (id, p) in g.pel.iter().take(cap(g.pel.len())) {
        out.array(4);
        reply_id(out, *id);
        out.bulk(&p.consumer);
        out.int(p.delivery_time as i64);
        out.int(p.delivery_count as i64);
    }
    out.bulk(b"consumers");
    out.array(g.consumers.len());
    for cons in g.consumers.values() {
        out.map(5);
        out.bulk(b"name");
        out.bulk(&cons.name);
        out.bulk(b"seen-time");
        out.int(cons.seen_time as i64);
        out.bulk(b"active-time");
        out.int(cons.active_time);
        out.bulk(b"pel-count");
        out.int(cons.pel.len() as i64);
        out.bulk(b"pending");
        out.array(cap(cons.pel.len()));
        for id in cons.pel.iter().take(cap(cons.pel.len())) {
            let p = g.pel.get(id);
            out.array(3);
            reply_id(out, *id);
            out.int(p.map_or(0, |p| p.delivery_time as i64));
            out.int(p.map_or(0, |p| p.delivery_count as i64));
        }
    }
}

fn xinfo_help(c: &mut Ctx) -> CmdResult {
    const LINES: &[&str] = &[
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
    ];
    crate::cmd::server::reply_help(c.out, "XINFO", LINES);
    Ok(())
}
