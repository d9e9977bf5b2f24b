//! The AOF base as commands (aof.c rewriteAppendOnlyFileRio, used when
//! aof-use-rdb-preamble is no): per key the commands that rebuild it, in
//! RESP, so that Redis and Granary replay the file as they replay an
//! increment.
//!
//! Collections are written AOF_REWRITE_ITEMS_PER_CMD elements per command
//! (RPUSH, SADD, ZADD, HMSET); streams as one XADD per entry, XSETID for
//! the last ID and counters, then per group XGROUP CREATE ... ENTRIESREAD,
//! one XCLAIM ... JUSTID FORCE per pending entry and XGROUP
//! CREATECONSUMER for consumers without any. A TTL follows its key as
//! PEXPIREAT; a hash field's TTL (Redis 7.4) as HPEXPIREAT ... FIELDS 1.

use crate::aof::encode_command;
use crate::value::score_text;
use granary_keyspace::types::stream::StreamId;
use granary_keyspace::types::Stream;
use granary_keyspace::Value;

/// Elements per variadic command (AOF_REWRITE_ITEMS_PER_CMD).
pub const ITEMS_PER_CMD: usize = 64;

/// `SELECT db`, written before a database's keys.
pub fn select(out: &mut Vec<u8>, db: u64) {
    encode_command(out, &[b"SELECT", itoa::Buffer::new().format(db).as_bytes()]);
}

/// `FUNCTION LOAD code`, written before the databases.
pub fn function(out: &mut Vec<u8>, code: &[u8]) {
    encode_command(out, &[b"FUNCTION", b"LOAD", code]);
}

/// Appends the commands that rebuild `key` holding `value`, with its
/// absolute expire time in ms.
pub fn key(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_ms: Option<u64>) {
    match value {
        Value::Str(s) => {
            let mut scratch = itoa::Buffer::new();
            encode_command(out, &[b"SET", key, s.bytes(&mut scratch)]);
        }
        Value::List(l) => {
            let items = l.iter().map(|e| e.to_vec());
            batched(out, b"RPUSH", key, items, |v, a| a.push(v));
        }
        Value::Set(s) => {
            let items = s.iter().map(|e| e.to_vec());
            batched(out, b"SADD", key, items, |v, a| a.push(v));
        }
        Value::ZSet(z) => {
            let items = z.iter_from(0, false).map(|(m, s)| (m.to_vec(), s));
            batched(out, b"ZADD", key, items, |(m, s), a| {
                a.push(score_text(s).into_bytes());
                a.push(m);
            });
        }
        Value::Hash(h) => {
            let items = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec()));
            batched(out, b"HMSET", key, items, |(f, v), a| {
                a.push(f);
                a.push(v);
            });
            for (field, at) in h.field_ttls() {
                let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
                encode_command(out, &[b"HPEXPIREAT", key, &at, b"FIELDS", b"1", field]);
            }
        }
        Value::Stream(s) => stream(out, key, s),
    }
    if let Some(at) = expire_ms {
        let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
        encode_command(out, &[b"PEXPIREAT", key, &at]);
    }
}

/// `cmd key` followed by the items, at most ITEMS_PER_CMD per command;
/// `push` turns an item into its arguments.
fn batched<T>(
    out: &mut Vec<u8>,
    cmd: &[u8],
    key: &[u8],
    items: impl Iterator<Item = T>,
    mut push: impl FnMut(T, &mut Vec<Vec<u8>>),
) {
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let flush = |args: &mut Vec<Vec<u8>>, out: &mut Vec<u8>| {
        let mut refs: Vec<&[u8]> = vec![cmd, key];
        refs.extend(args.iter().map(|a| &a[..]));
        encode_command(out, &refs);
        args.clear();
    };
    for item in items {
        push(item, &mut args);
        n += 1;
        if n == ITEMS_PER_CMD {
            flush(&mut args, out);
            n = 0;
        }
    }
    if n > 0 {
        flush(&mut args, out);
    }
}

fn id_text(id: StreamId) -> Vec<u8> {
    id.to_string().into_bytes()
}

fn num(n: impl itoa::Integer) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// A stream: its entries, its IDs and counters, its groups, their
/// consumers and pending entries (rewriteStreamObject).
fn stream(out: &mut Vec<u8>, key: &[u8], s: &Stream) {
    if s.is_empty() {
        // XADD MAXLEN 0 makes the key exist without entries.
        encode_command(out, &[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    } else {
        s.range(StreamId::MIN, StreamId::MAX, false, |id, fields| {
            let id = id_text(id);
            let mut args: Vec<&[u8]> = vec![b"XADD", key, &id];
            for (f, v) in fields {
                args.push(f);
                args.push(v);
            }
            encode_command(out, &args);
            true
        });
    }
    encode_command(
        out,
        &[
            b"XSETID",
            key,
            &id_text(s.last_id),
            b"ENTRIESADDED",
            &num(s.entries_added),
            b"MAXDELETEDID",
            &id_text(s.max_deleted_id),
        ],
    );
    for (name, g) in &s.groups {
        encode_command(
            out,
            &[
                b"XGROUP",
                b"CREATE",
                key,
                name,
                &id_text(g.last_id),
                b"ENTRIESREAD",
                &num(g.entries_read),
            ],
        );
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                encode_command(out, &[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
                continue;
            }
            for id in &c.pel {
                let Some(p) = g.pel.get(id) else { continue };
                encode_command(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name,
                        cname,
                        b"0",
                        &id_text(*id),
                        b"TIME",
                        &num(p.delivery_time),
                        b"RETRYCOUNT",
                        &num(p.delivery_count),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}
