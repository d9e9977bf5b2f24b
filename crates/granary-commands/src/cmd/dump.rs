//! DUMP and RESTORE (Redis's cluster.c): a value serialized in RDB form
//! with the RDB version and a CRC64, byte-compatible with Redis, so keys
//! move between Granary and Redis in either direction.

use crate::ctx::{err, CmdResult, Ctx};
use crate::notify::class;
use crate::server::Server;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use granary_keyspace::types::{hash, set, zset};
use granary_persistence::dump::{self, RestoreError};
use granary_persistence::Limits;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "generic";
const K1: Keys = Keys::Range(1, 1, 1);

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("dump", 2, READONLY, K1, dump_cmd).group(G, "2.6.0").acl(&["@keyspace", "@read", "@slow"]).doc("Returns a serialized representation of the value stored at a key."),
    Spec::new("restore", -4, WRITE | DENYOOM, K1, restore).group(G, "2.6.0").acl(&["@keyspace", "@write", "@slow", "@dangerous"]).doc("Creates a key from the serialized representation of a value."),
];

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_DATA: &str = "ERR Bad data format";

/// The configuration in force: the encoding thresholds decide how a list
/// is cut into nodes when written and which encodings a restored value
/// takes; rdbcompression whether DUMP compresses long strings (as Redis).
pub(crate) fn limits(server: &Server) -> Limits {
    let hot = &server.config.hot;
    let get = |a: &std::sync::atomic::AtomicI64| usize::try_from(a.load(Relaxed)).unwrap_or(0);
    Limits {
        hash: hash::Limits {
            max_entries: get(&hot.hash_max_listpack_entries),
            max_value: get(&hot.hash_max_listpack_value),
        },
        set: set::SetLimits {
            intset_entries: get(&hot.set_max_intset_entries),
            listpack_entries: get(&hot.set_max_listpack_entries),
            listpack_value: get(&hot.set_max_listpack_value),
        },
        zset: zset::Limits {
            entries: get(&hot.zset_max_listpack_entries),
            value: get(&hot.zset_max_listpack_value),
        },
        list_fill: hot.list_max_listpack_size.load(Relaxed),
        compress: server.config.get_bool("rdbcompression"),
    }
}

fn dump_cmd(c: &mut Ctx) -> CmdResult {
    let lim = limits(c.server);
    match c.store.read(&c.args[1]) {
        Some(e) => {
            let payload = dump::dump(&e.value, &lim);
            c.out.bulk(&payload);
        }
        None => c.out.null(),
    }
    Ok(())
}

/// RESTORE's options after the payload.
#[derive(Default)]
struct Options {
    replace: bool,
    absttl: bool,
    idle: Option<i64>,
    freq: Option<i64>,
}

/// Parses the options in Redis's order and with its errors: IDLETIME and
/// FREQ exclude each other (the second is a syntax error).
fn parse_options(c: &Ctx) -> Result<Options, crate::ctx::CmdError> {
    let args = c.args;
    let mut o = Options::default();
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        if is(&args[j], "replace") {
            o.replace = true;
        } else if is(&args[j], "absttl") {
            o.absttl = true;
        } else if is(&args[j], "idletime") && more && o.freq.is_none() {
            let v = parse_i64(&args[j + 1])?;
            if v < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0".into());
            }
            o.idle = Some(v);
            j += 1;
        } else if is(&args[j], "freq") && more && o.idle.is_none() {
            let v = parse_i64(&args[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255".into());
            }
            o.freq = Some(v);
            j += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    Ok(o)
}

fn restore(c: &mut Ctx) -> CmdResult {
    let o = parse_options(c)?;
    let key = &c.args[1];
    // Redis checks for an existing key before it looks at the TTL.
    if !o.replace && c.store.entry(key).is_some() {
        return Err(BUSYKEY.into());
    }
    let ttl = parse_i64(&c.args[2])?;
    if ttl < 0 {
        return Err("ERR Invalid TTL value, must be >= 0".into());
    }
    let value = match dump::restore(&c.args[3], &limits(c.server)) {
        Ok(v) => v,
        Err(RestoreError::VersionOrChecksum) => return Err(BAD_PAYLOAD.into()),
        Err(RestoreError::BadData(_)) => return Err(BAD_DATA.into()),
    };
    let now = c.store.now as i64;
    let expire = match ttl {
        0 => None,
        t if o.absttl => Some(t),
        t => Some(t.saturating_add(now)),
    };
    let replaced = o.replace && c.store.remove(key).is_some();
    // A TTL already in the past restores nothing (the old key, if
    // REPLACE, is gone all the same), as Redis.
    if let Some(at) = expire {
        if at <= now {
            if replaced {
                c.notify(class::GENERIC, "del", key);
            }
            c.out.ok();
            return Ok(());
        }
    }
    c.store.set(key, value, expire.map(|t| t as u64));
    c.notify(class::GENERIC, "restore", key);
    set_lru_or_lfu(c, o.idle, o.freq);
    c.out.ok();
    Ok(())
}

/// Redis's objectSetLRUOrLFU: under an LFU policy FREQ sets the key's LFU
/// counter, else IDLETIME backdates its access clock (seconds, modulo
/// 2^16); the other option is ignored.
fn set_lru_or_lfu(c: &mut Ctx, idle: Option<i64>, freq: Option<i64>) {
    let now = crate::evict::clock_time(c.store.now);
    let clock = if c.server.config.hot.lfu.load(Relaxed) {
        match freq {
            Some(f) => crate::evict::lfu::with_counter(now, f.clamp(0, 255) as u8),
            None => return,
        }
    } else {
        match idle {
            Some(idle) => ((now / 1000) as i64).wrapping_sub(idle) as u16,
            None => return,
        }
    };
    c.store.no_touch = true;
    if let Some(e) = c.store.entry(&c.args[1]) {
        e.set_access_clock(clock);
    }
    c.store.no_touch = false;
}
