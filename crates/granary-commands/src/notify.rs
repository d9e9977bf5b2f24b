//! Keyspace notifications (Redis's notify.c): the `notify-keyspace-events`
//! classes, and [`notify`], which publishes an event about a key on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.
//!
//! The configured classes live in an atomic (`Config::hot`), so a server
//! with notifications off pays one relaxed load per event.

use crate::server::Server;
use std::sync::atomic::Ordering::Relaxed;

/// Event classes, with Redis's bit values (NOTIFY_*).
pub mod class {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    /// Excluded from `ALL` on purpose, as in Redis.
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 13;
    /// Also excluded from `ALL`.
    pub const NEW: u32 = 1 << 14;
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// The class of each flag character, in the order Redis prints them.
const CHARS: &[(u8, u32)] = &[
    (b'g', class::GENERIC),
    (b'$', class::STRING),
    (b'l', class::LIST),
    (b's', class::SET),
    (b'h', class::HASH),
    (b'z', class::ZSET),
    (b'x', class::EXPIRED),
    (b'e', class::EVICTED),
    (b't', class::STREAM),
    (b'd', class::MODULE),
    (b'n', class::NEW),
];

/// Redis's keyspaceEventsStringToFlags; None on an unknown character.
pub fn parse(s: &str) -> Option<u32> {
    let mut flags = 0;
    for b in s.bytes() {
        flags |= match b {
            b'A' => class::ALL,
            b'K' => class::KEYSPACE,
            b'E' => class::KEYEVENT,
            b'm' => class::KEY_MISS,
            _ => CHARS.iter().find(|(c, _)| *c == b)?.1,
        };
    }
    Some(flags)
}

/// Redis's keyspaceEventsFlagsToString: the canonical form CONFIG GET shows.
pub fn format(flags: u32) -> String {
    let mut s = String::new();
    if flags & class::ALL == class::ALL {
        s.push('A');
    } else {
        for &(c, f) in CHARS {
            if flags & f != 0 {
                s.push(c as char);
            }
        }
    }
    for (c, f) in [
        ('K', class::KEYSPACE),
        ('E', class::KEYEVENT),
        ('m', class::KEY_MISS),
    ] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

/// The config validator: canonical form, or Redis's error text.
pub fn normalize(value: &str) -> Result<String, String> {
    parse(value)
        .map(format)
        .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())
}

/// Publishes `event` about `key` in database `db` if its class is enabled.
#[inline]
pub fn notify(server: &Server, class: u32, event: &str, key: &[u8], db: usize) {
    let flags = server.config.hot.notify_keyspace_events.load(Relaxed);
    if flags & class == 0 || flags & (class::KEYSPACE | class::KEYEVENT) == 0 {
        return;
    }
    publish(server, flags, event, key, db);
}

#[cold]
fn publish(server: &Server, flags: u32, event: &str, key: &[u8], db: usize) {
    if flags & class::KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{db}__:").into_bytes();
        channel.extend_from_slice(key);
        crate::pubsub::publish(server, &channel, event.as_bytes());
    }
    if flags & class::KEYEVENT != 0 {
        let channel = format!("__keyevent@{db}__:{event}");
        crate::pubsub::publish(server, channel.as_bytes(), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_redis() {
        for (input, canonical) in [
            ("AKE", "AKE"),
            ("KEA", "AKE"),
            ("Kgx", "gxK"),
            ("$lshzxetmdn", "$lshzxetdnm"),
            ("Ag", "A"),
            ("KEAnm", "AKEm"),
            ("", ""),
            ("g$lshzxetd", "A"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(canonical), "{input}");
        }
    }

    #[test]
    fn unknown_characters_are_rejected() {
        assert!(normalize("K E").is_err());
        assert!(normalize("Kq").is_err());
    }
}
