//! Server commands (Redis's server.c, config.c, debug.c, slowlog.c): INFO,
//! CONFIG, TIME, LASTSAVE, SHUTDOWN, DEBUG, SLOWLOG, and the EVAL/EVALSHA
//! placeholders that answer with an error until scripting lands.

mod info;

use crate::ctx::{err, Action, CmdResult, Ctx};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, lossy, parse_i64_opt};
use bytes::Bytes;
use granary_keyspace::{StrValue, Value};
use granary_protocol::Reply;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub use info::info_text;

const G: &str = "server";
/// The flags Redis gives its admin commands.
const ADM: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

pub static COMMANDS: &[Spec] = &[
    Spec::new("info", -1, LOADING | STALE, Keys::None, info::info)
        .group(G, "1.0.0")
        .doc("Returns information and statistics about the server.")
        .acl(&["@slow", "@dangerous"]),
    Spec::container("config", CONFIG)
        .group(G, "2.0.0")
        .doc("A container for server configuration commands."),
    Spec::new("time", 1, LOADING | STALE | FAST, Keys::None, time)
        .group(G, "2.6.0")
        .doc("Returns the server time."),
    Spec::new("lastsave", 1, LOADING | STALE | FAST, Keys::None, lastsave)
        .group(G, "1.0.0")
        .doc("Returns the Unix timestamp of the last successful save to disk.")
        .acl(&["@admin", "@fast", "@dangerous"]),
    Spec::new(
        "shutdown",
        -1,
        ADM | NO_MULTI | ALLOW_BUSY,
        Keys::None,
        shutdown,
    )
    .group(G, "1.0.0")
    .doc("Synchronously saves the database(s) to disk and shuts down the Redis server."),
    Spec::new("debug", -2, ADM, Keys::Custom(debug_keys), debug)
        .group(G, "1.0.0")
        .doc("A container for debugging commands."),
    Spec::container("slowlog", SLOWLOG)
        .group(G, "2.2.12")
        .doc("A container for slow log commands."),
];

static CONFIG: &[Spec] = &[
    Spec::new("config|get", -3, ADM, Keys::None, config_get)
        .group(G, "2.0.0")
        .doc("Returns the effective values of configuration parameters."),
    Spec::new("config|set", -4, ADM, Keys::None, config_set)
        .group(G, "2.0.0")
        .doc("Sets configuration parameters in-flight."),
    Spec::new("config|resetstat", 2, ADM, Keys::None, config_resetstat)
        .group(G, "2.0.0")
        .doc("Resets the server's statistics."),
    Spec::new("config|rewrite", 2, ADM, Keys::None, config_rewrite)
        .group(G, "2.8.0")
        .doc("Persists the effective configuration to file."),
    Spec::new("config|help", 2, LOADING | STALE, Keys::None, config_help)
        .group(G, "5.0.0")
        .doc("Returns helpful text about the different subcommands."),
];

static SLOWLOG: &[Spec] = &[
    Spec::new(
        "slowlog|get",
        -2,
        ADMIN | LOADING | STALE,
        Keys::None,
        slowlog_get,
    )
    .group(G, "2.2.12")
    .doc("Returns the slow log's entries."),
    Spec::new(
        "slowlog|len",
        2,
        ADMIN | LOADING | STALE,
        Keys::None,
        slowlog_len,
    )
    .group(G, "2.2.12")
    .doc("Returns the number of entries in the slow log."),
    Spec::new(
        "slowlog|reset",
        2,
        ADMIN | LOADING | STALE,
        Keys::None,
        slowlog_reset,
    )
    .group(G, "2.2.12")
    .doc("Clears all entries from the slow log."),
    Spec::new("slowlog|help", 2, LOADING | STALE, Keys::None, slowlog_help)
        .group(G, "6.2.0")
        .doc("Show helpful text about the different subcommands."),
];

/// Redis's addReplyHelp: a heading, the lines, and the HELP entry, each a
/// status reply.
pub fn reply_help(out: &mut Reply, command: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
    out.simple("HELP");
    out.simple("    Print this help.");
}

/// Whether a client connected from this address counts as local (for
/// enable-debug-command and enable-protected-configs set to "local").
fn is_local(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true)
}

/// Whether an "enable-..." option (no / yes / local) allows this client.
fn allowed(c: &Ctx, option: &str) -> bool {
    match c.server.config.get(option).as_deref() {
        Some("yes") => true,
        Some("local") => is_local(&c.client.info.addr),
        _ => false,
    }
}

// ---- CONFIG ----

fn config_get(c: &mut Ctx) -> CmdResult {
    let patterns: Vec<&[u8]> = c.args[2..].iter().map(|a| &a[..]).collect();
    let found = c.server.config.matching(&patterns);
    c.out.map(found.len());
    for (name, value) in found {
        c.out.bulk(name.as_bytes());
        c.out.bulk(value.as_bytes());
    }
    Ok(())
}

fn config_set(c: &mut Ctx) -> CmdResult {
    let rest = &c.args[2..];
    if !rest.len().is_multiple_of(2) {
        return Err(err::SYNTAX.into());
    }
    let owned: Vec<(String, String)> = rest
        .chunks(2)
        .map(|p| (lossy(&p[0]), lossy(&p[1])))
        .collect();
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let protected_ok = allowed(c, "enable-protected-configs");
    c.server.config.set_many(&pairs, protected_ok)?;
    if pairs
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("appendonly"))
    {
        crate::aof::set_enabled(c.server, c.server.config.get_bool("appendonly"));
    }
    c.out.ok();
    Ok(())
}

fn config_resetstat(c: &mut Ctx) -> CmdResult {
    c.server.reset_stats();
    c.out.ok();
    Ok(())
}

fn config_rewrite(c: &mut Ctx) -> CmdResult {
    let Some(path) = c.server.config.file.as_ref() else {
        return Err("ERR The server is running without a config file".into());
    };
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("ERR Rewriting config file: {e}").into()),
    };
    let new = c.server.config.rewrite(&old);
    // Write aside and rename, so a crash never leaves half a config file.
    let tmp = path.with_extension("rewrite.tmp");
    std::fs::write(&tmp, new)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("ERR Rewriting config file: {e}"))?;
    tracing::info!("CONFIG REWRITE executed with success.");
    c.out.ok();
    Ok(())
}

fn config_help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}

// ---- TIME, LASTSAVE, SHUTDOWN ----

fn time(c: &mut Ctx) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    c.out.array(2);
    c.out.bulk_int(now.as_secs() as i64);
    c.out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

/// The last successful save; before the first one, the start time (as
/// Redis reports).
fn lastsave(c: &mut Ctx) -> CmdResult {
    c.out.int(c.server.rdb.last_save.load(Relaxed) as i64);
    Ok(())
}

fn shutdown(c: &mut Ctx) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut force) = (false, false, false, false);
    for a in &c.args[1..] {
        if is(a, "NOSAVE") {
            nosave = true;
        } else if is(a, "SAVE") {
            save = true;
        } else if is(a, "ABORT") {
            abort = true;
        } else if is(a, "FORCE") {
            force = true;
        } else if !is(a, "NOW") {
            return Err(err::SYNTAX.into());
        }
    }
    if (save && nosave) || (abort && c.args.len() != 2) {
        return Err(err::SYNTAX.into());
    }
    if abort {
        return Err("ERR No shutdown in progress.".into());
    }
    tracing::info!("User requested shutdown...");
    if !crate::rdb::save_for_shutdown(c.server, save, nosave) && !force {
        return Err("ERR Errors trying to SHUTDOWN. Check logs.".into());
    }
    // Redis sends no reply when it shuts down.
    c.action = Some(Action::Shutdown);
    Ok(())
}

// ---- DEBUG ----

/// DEBUG OBJECT <key> reads a key; other subcommands touch none.
fn debug_keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() == 3 && is(&args[1], "OBJECT") {
        vec![2]
    } else {
        vec![]
    }
}

fn debug(c: &mut Ctx) -> CmdResult {
    if !allowed(c, "enable-debug-command") {
        return Err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.".into());
    }
    let sub = &c.args[1];
    let n = c.args.len();
    if is(sub, "HELP") && n == 2 {
        debug_help(c.out);
    } else if is(sub, "SLEEP") && n == 3 {
        // Like Redis's atof: anything unparsable sleeps for 0 seconds.
        let secs = crate::util::parse_f64_opt(&c.args[2]).unwrap_or(0.0);
        let d = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO);
        c.action = Some(Action::Sleep(d));
        c.out.ok();
    } else if is(sub, "OBJECT") && n == 3 {
        debug_object(c)?;
    } else if is(sub, "RELOAD") {
        debug_reload(c)?;
    } else if is(sub, "POPULATE") && (3..=5).contains(&n) {
        debug_populate(c)?;
    } else {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            lossy(sub)
        )
        .into());
    }
    Ok(())
}

fn debug_help(out: &mut Reply) {
    reply_help(
        out,
        "DEBUG",
        &[
            "OBJECT <key>",
            "    Show low level info about the `key` and associated value.",
            "POPULATE <count> [<prefix>] [<size>]",
            "    Create <count> string keys named key:<num>. If <prefix> is specified then",
            "    it is used instead of the 'key' prefix. Existing keys are left alone.",
            "RELOAD [NOSAVE] [NOFLUSH]",
            "    Save the RDB on disk and reload it back to memory. With NOSAVE the",
            "    file on disk is loaded as it is; with NOFLUSH the current data is",
            "    not removed first (loading fails on an existing key).",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    );
}

/// Redis's LRU clock: seconds, 24 bits.
fn lru_clock() -> u64 {
    (granary_keyspace::now_ms() / 1000) & ((1 << 24) - 1)
}

/// Bytes the value would take in an RDB file (without LZF compression).
fn serialized_len(v: &StrValue) -> usize {
    if let Some(i) = v.as_int() {
        if (-128..=127).contains(&i) {
            return 2;
        } else if (-32768..=32767).contains(&i) {
            return 3;
        } else if i32::try_from(i).is_ok() {
            return 5;
        }
    }
    let len = v.len();
    let prefix = match len {
        0..=63 => 1,
        64..=16383 => 2,
        _ if len <= u32::MAX as usize => 5,
        _ => 9,
    };
    prefix + len
}

/// DEBUG POPULATE <count> [prefix] [size]: `prefix:N` = `value:N` (cut or
/// zero-padded to `size`), skipping keys that exist. For tests and
/// benchmarks; each key takes its own shard lock, so a big count does not
/// stop other clients.
fn debug_populate(c: &mut Ctx) -> CmdResult {
    let positive = |a: &Bytes| crate::util::parse_i64(a).ok().filter(|&v| v >= 0);
    const RANGE: &str = "ERR value is out of range, must be positive";
    let count = positive(&c.args[2]).ok_or(RANGE)?;
    let prefix = c.args.get(3).map_or(&b"key"[..], |p| &p[..]).to_vec();
    let size = match c.args.get(4) {
        Some(a) => positive(a).ok_or(RANGE)? as usize,
        None => 0,
    };
    if c.client.in_exec {
        return Err("ERR DEBUG POPULATE is not allowed inside MULTI".into());
    }
    let server = c.server;
    let db = c.client.db;
    let now = granary_keyspace::now_ms();
    let clock = crate::evict::new_clock(server, now);
    let mut key = prefix.clone();
    for i in 0..count {
        key.truncate(prefix.len());
        key.extend_from_slice(format!(":{i}").as_bytes());
        let mut value = format!("value:{i}").into_bytes();
        if size > 0 {
            value.resize(size, 0);
        }
        let h = granary_keyspace::hash_bytes(&key);
        let mut locked = server.keyspace.lock_one(h);
        let d = locked.shard(h).db(db);
        if d.get_mut(h, &key, now, &mut 0).is_none() {
            d.insert(h, &key, Value::Str(StrValue::from_vec(value)), None, clock);
            crate::ctx::notify_modified(server, db, &key);
        }
    }
    c.out.ok();
    Ok(())
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves (unless NOSAVE), then
/// empties the keyspace (unless NOFLUSH) and loads the file back, all
/// shards held, so clients see the old data or the reloaded data.
fn debug_reload(c: &mut Ctx) -> CmdResult {
    let (mut save, mut flush) = (true, true);
    for a in &c.args[2..] {
        if is(a, "NOSAVE") {
            save = false;
        } else if is(a, "NOFLUSH") {
            flush = false;
        } else if !is(a, "MERGE") {
            return Err(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.".into(),
            );
        }
    }
    if c.client.in_exec {
        return Err("ERR DEBUG RELOAD is not allowed inside MULTI".into());
    }
    let server = c.server;
    if save && server.rdb.save_and_wait().is_err() {
        return Err("ERR".into());
    }
    let path = crate::rdb::path(server);
    let lim = crate::rdb::limits(server);
    let now = granary_keyspace::now_ms();
    let databases = server.keyspace.databases();
    let loaded = {
        let mut locked = server.keyspace.lock_all();
        if flush {
            for shard in locked.shards() {
                for db in shard.dbs.iter_mut() {
                    drop(db.take());
                }
            }
        }
        let mut functions = Vec::new();
        let r = granary_persistence::snapshot::load_with(
            &path,
            &lim,
            now,
            databases,
            &mut functions,
            |item| {
                let h = granary_keyspace::hash_bytes(&item.key);
                let clock = crate::evict::loaded_clock(server, item.access, now);
                locked.shard(h).db(item.db as usize).insert(
                    h,
                    &item.key,
                    item.value,
                    item.expire_ms,
                    clock,
                );
            },
        );
        crate::cmd::scripting::load_libraries(server, &functions);
        r
    };
    for db in 0..databases {
        c.store.db_replaced(db, 0);
    }
    // The data is what the file says: nothing for the AOF to log.
    c.store.changes = 0;
    match loaded {
        Ok(_) => {
            c.out.ok();
            Ok(())
        }
        Err(e) => {
            tracing::warn!("DEBUG RELOAD: {}: {e}", path.display());
            Err("ERR Error trying to load the RDB dump, check server logs.".into())
        }
    }
}

fn debug_object(c: &mut Ctx) -> CmdResult {
    let now_secs = (c.store.now / 1000) as u16;
    c.store.no_touch = true;
    let Some(e) = c.store.entry(&c.args[2]) else {
        return Err(err::NO_SUCH_KEY.into());
    };
    let idle = now_secs.wrapping_sub(e.access_clock()) as u64;
    let addr = e as *const _ as usize;
    let (encoding, len) = match &e.value {
        Value::Str(s) => (s.encoding(), serialized_len(s)),
        #[allow(unreachable_patterns)]
        other => (other.encoding(), 0),
    };
    let lru = lru_clock().wrapping_sub(idle) & ((1 << 24) - 1);
    c.out.simple(&format!(
        "Value at:{addr:#x} refcount:1 encoding:{encoding} serializedlength:{len} lru:{lru} lru_seconds_idle:{idle}"
    ));
    Ok(())
}

// ---- SLOWLOG (nothing is recorded yet: the log is always empty) ----

fn slowlog_get(c: &mut Ctx) -> CmdResult {
    if c.args.len() > 3 {
        return Err(c.arity_error());
    }
    if let Some(a) = c.args.get(2) {
        match parse_i64_opt(a) {
            Some(n) if n >= -1 => {}
            _ => return Err("ERR count should be greater than or equal to -1".into()),
        }
    }
    c.out.array(0);
    Ok(())
}

fn slowlog_len(c: &mut Ctx) -> CmdResult {
    c.out.int(0);
    Ok(())
}

fn slowlog_reset(c: &mut Ctx) -> CmdResult {
    c.out.ok();
    Ok(())
}

fn slowlog_help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_lengths_like_rdb() {
        assert_eq!(serialized_len(&StrValue::from_bytes(b"bar")), 4);
        assert_eq!(serialized_len(&StrValue::from_bytes(b"12345")), 3);
        assert_eq!(serialized_len(&StrValue::from_bytes(b"-1")), 2);
        assert_eq!(serialized_len(&StrValue::from_bytes(b"100000")), 5);
    }
}
