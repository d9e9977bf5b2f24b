//! Client-side caching (Redis's tracking.c): CLIENT TRACKING and friends,
//! the table of keys read by tracking clients, and the invalidation
//! messages sent when those keys change.
//!
//! Invalidations go through the pub/sub queue of the receiving connection:
//! a RESP3 client gets an `invalidate` push, a RESP2 client redirecting to
//! another connection has it receive a message on `__redis__:invalidate`.
//! Keys are global (not per database), as in Redis. Broadcast-mode
//! invalidations are sent at once, one message per key, where Redis batches
//! the keys of one event-loop iteration.

use crate::client::{Client, ClientInfo};
use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::pubsub::Subscriber;
use crate::server::Server;
use crate::table::{flag, Spec};
use crate::util::{is, parse_i64};
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Per-client tracking flags (`Client::tracking`; 0 means off).
pub mod flags {
    pub const ON: u32 = 1 << 0;
    pub const BCAST: u32 = 1 << 1;
    pub const OPTIN: u32 = 1 << 2;
    pub const OPTOUT: u32 = 1 << 3;
    pub const NOLOOP: u32 = 1 << 4;
    /// CLIENT CACHING YES/NO given for the next command.
    pub const CACHING: u32 = 1 << 5;
    /// The redirect client went away (CLIENT LIST flag R).
    pub const BROKEN_REDIR: u32 = 1 << 6;
}

/// The redirect channel of RESP2 clients.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// All tracking state shared between connections.
#[derive(Default)]
pub struct Table {
    /// Clients with tracking on: zero makes every hook one relaxed load.
    active: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Keys read by clients in default mode, and who read them.
    keys: HashMap<Bytes, HashSet<u64>>,
    /// Broadcast prefixes and their clients ("" matches every key).
    prefixes: BTreeMap<Bytes, HashSet<u64>>,
    clients: HashMap<u64, Tracker>,
}

/// What an invalidation needs to know about a tracking client.
struct Tracker {
    flags: u32,
    /// Client id receiving the messages, or 0 for the client itself.
    redirect: u64,
    prefixes: BTreeSet<Bytes>,
    info: Arc<ClientInfo>,
    queue: Arc<Subscriber>,
}

thread_local! {
    /// The client whose command runs on this thread (for NOLOOP); 0 for
    /// expiry and eviction.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// Marks `id` as the client running a command until the guard drops.
pub fn enter(id: u64) -> CurrentGuard {
    CurrentGuard(CURRENT.with(|c| c.replace(id)))
}

pub struct CurrentGuard(u64);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Whether any client tracks keys (the hooks' fast path).
#[inline]
pub fn active(server: &Server) -> bool {
    server.clients.tracking.active.load(Relaxed) != 0
}

/// `key` was modified: tell the clients that cached it.
#[inline]
pub fn invalidate_key(server: &Server, key: &[u8]) {
    if active(server) {
        invalidate_slow(server, key);
    }
}

#[cold]
fn invalidate_slow(server: &Server, key: &[u8]) {
    let me = CURRENT.with(Cell::get);
    let mut inner = server.clients.tracking.inner.lock();
    let readers = inner.keys.remove(key).unwrap_or_default();
    // A reader since switched to broadcast mode hears through its prefixes.
    let mut targets: Vec<u64> = readers
        .into_iter()
        .filter(|id| {
            inner
                .clients
                .get(id)
                .is_some_and(|t| t.flags & flags::BCAST == 0)
        })
        .collect();
    targets.sort_unstable();
    for (prefix, ids) in &inner.prefixes {
        if key.starts_with(prefix) {
            targets.extend(ids.iter().copied());
        }
    }
    for id in targets {
        let Some(t) = inner.clients.get(&id) else {
            continue;
        };
        if t.flags & flags::NOLOOP != 0 && id == me {
            continue;
        }
        send(server, &mut inner, id, Some(key));
    }
}

/// FLUSHDB / FLUSHALL: every tracking client is told to drop its whole
/// cache (a null invalidation), and the key table is emptied.
pub fn invalidate_all(server: &Server) {
    if !active(server) {
        return;
    }
    let mut inner = server.clients.tracking.inner.lock();
    inner.keys.clear();
    let ids: Vec<u64> = inner.clients.keys().copied().collect();
    for id in ids {
        send(server, &mut inner, id, None);
    }
}

/// Sends one invalidation (of `key`, or of everything) for tracking client
/// `id`, to it or to its redirect client.
fn send(server: &Server, inner: &mut Inner, id: u64, key: Option<&[u8]>) {
    let Some(t) = inner.clients.get(&id) else {
        return;
    };
    let own_resp3 = t.info.resp.load(Relaxed) == 3;
    // Redis encodes the null with the tracking client's protocol.
    let null: &[u8] = if own_resp3 { b"_\r\n" } else { b"$-1\r\n" };
    if t.redirect == 0 {
        if own_resp3 {
            t.queue.push(server, invalidate_push(key, null));
        }
        // RESP2 without redirect: nowhere to send it.
        return;
    }
    let redirect = t.redirect;
    let target = inner
        .clients
        .get(&redirect)
        .map(|r| r.queue.clone())
        .or_else(|| crate::pubsub::subscriber_of(server, CHANNEL, redirect));
    let Some(target) = target else {
        if server.clients.get(redirect).is_none() {
            broken_redirect(server, inner, id);
        }
        return;
    };
    if target.info.resp.load(Relaxed) == 3 {
        target.push(server, invalidate_push(key, null));
    } else if target.info.sub.load(Relaxed) + target.info.psub.load(Relaxed) > 0 {
        target.push(server, invalidate_message(key, null));
    }
}

/// The redirect client disconnected: flag it, and tell a RESP3 client.
fn broken_redirect(server: &Server, inner: &mut Inner, id: u64) {
    let Some(t) = inner.clients.get_mut(&id) else {
        return;
    };
    t.flags |= flags::BROKEN_REDIR;
    publish_mode(&t.info, t.flags, t.redirect);
    if t.info.resp.load(Relaxed) == 3 {
        let mut b = BytesMut::new();
        b.put_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n");
        b.put_slice(format!(":{}\r\n", t.redirect).as_bytes());
        t.queue.push(server, b.freeze());
    }
}

fn put_keys(b: &mut BytesMut, key: Option<&[u8]>, null: &[u8]) {
    match key {
        None => b.put_slice(null),
        Some(k) => {
            b.put_slice(format!("*1\r\n${}\r\n", k.len()).as_bytes());
            b.put_slice(k);
            b.put_slice(b"\r\n");
        }
    }
}

/// `>2 invalidate [key]` (RESP3 push).
fn invalidate_push(key: Option<&[u8]>, null: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
    put_keys(&mut b, key, null);
    b.freeze()
}

/// `message __redis__:invalidate [key]` (RESP2 pub/sub message).
fn invalidate_message(key: Option<&[u8]>, null: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    put_keys(&mut b, key, null);
    b.freeze()
}

/// After a command of a tracking client: remember the keys it read, and
/// forget CLIENT CACHING once the command it applied to has run.
pub fn after_command(server: &Server, client: &mut Client, spec: &Spec, args: &[Bytes], ok: bool) {
    let f = client.tracking;
    let opted_out = (f & flags::OPTIN != 0 && f & flags::CACHING == 0)
        || (f & flags::OPTOUT != 0 && f & flags::CACHING != 0);
    if ok && spec.flags & flag::READONLY != 0 && f & flags::BCAST == 0 && !opted_out {
        let keys = spec.key_positions(args);
        if !keys.is_empty() {
            remember(server, client.id(), keys.iter().map(|&i| &args[i]));
        }
    }
    // As Redis's resetClient: CACHING lasts for one command, or for a
    // whole MULTI/EXEC.
    if client.multi.is_none() && !client.in_exec && spec.name != "client|caching" {
        client.tracking &= !flags::CACHING;
    }
}

fn remember<'a>(server: &Server, id: u64, keys: impl Iterator<Item = &'a Bytes>) {
    let max = server.config.get_int("tracking-table-max-keys").max(0) as usize;
    let mut inner = server.clients.tracking.inner.lock();
    for k in keys {
        // A copy: an argument may be a slice of a large read buffer.
        let k = Bytes::copy_from_slice(k);
        inner.keys.entry(k).or_default().insert(id);
    }
    // Over the limit: forget keys, telling their readers (Redis's
    // trackingLimitUsedSlots evicts random keys the same way).
    while max != 0 && inner.keys.len() > max {
        let Some(victim) = inner.keys.keys().next().cloned() else {
            break;
        };
        let readers = inner.keys.remove(&victim).unwrap_or_default();
        for r in readers {
            send(server, &mut inner, r, Some(&victim));
        }
    }
}

/// Turns tracking off for a client (CLIENT TRACKING OFF, RESET,
/// disconnection). Keys it read stay in the table until invalidated;
/// invalidations for unknown clients are skipped.
pub fn disable(server: &Server, client: &mut Client) {
    if client.tracking == 0 {
        return;
    }
    client.tracking = 0;
    publish_mode(&client.info, 0, 0);
    let table = &server.clients.tracking;
    let mut inner = table.inner.lock();
    if let Some(t) = inner.clients.remove(&client.id()) {
        for p in &t.prefixes {
            if let Some(ids) = inner.prefixes.get_mut(p) {
                ids.remove(&client.id());
                if ids.is_empty() {
                    inner.prefixes.remove(p);
                }
            }
        }
    }
    table.active.fetch_sub(1, Relaxed);
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN]
/// [OPTOUT] [NOLOOP]
pub fn tracking_command(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let mut redirect = 0u64;
    let mut options = 0u32;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if is(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            let id = parse_i64(&args[j])?;
            match u64::try_from(id)
                .ok()
                .filter(|&id| c.server.clients.get(id).is_some())
            {
                Some(id) => redirect = id,
                None => return Err("ERR The client ID you want redirect to does not exist".into()),
            }
        } else if is(a, "bcast") {
            options |= flags::BCAST;
        } else if is(a, "optin") {
            options |= flags::OPTIN;
        } else if is(a, "optout") {
            options |= flags::OPTOUT;
        } else if is(a, "noloop") {
            options |= flags::NOLOOP;
        } else if is(a, "prefix") && more {
            j += 1;
            prefixes.push(Bytes::copy_from_slice(&args[j]));
        } else {
            return Err(err::SYNTAX.into());
        }
        j += 1;
    }
    if is(&args[2], "on") {
        check_options(c, options, &prefixes)?;
        enable(c.server, c.client, redirect, options, prefixes);
    } else if is(&args[2], "off") {
        disable(c.server, c.client);
    } else {
        return Err(err::SYNTAX.into());
    }
    c.out.ok();
    Ok(())
}

/// Redis's compatibility checks of CLIENT TRACKING ON options, in order.
fn check_options(c: &Ctx, options: u32, prefixes: &[Bytes]) -> CmdResult {
    let cur = c.client.tracking;
    if options & flags::BCAST == 0 && !prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if cur != 0 && (cur & flags::BCAST) != (options & flags::BCAST) {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if options & flags::BCAST != 0 && options & (flags::OPTIN | flags::OPTOUT) != 0 {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if options & flags::OPTIN != 0 && options & flags::OPTOUT != 0 {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if (options & flags::OPTIN != 0 && cur & flags::OPTOUT != 0)
        || (options & flags::OPTOUT != 0 && cur & flags::OPTIN != 0)
    {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if options & flags::BCAST != 0 {
        let existing = own_prefixes(c.server, c.client.id());
        check_prefix_collisions(&existing, prefixes)?;
    }
    Ok(())
}

/// One of `a`, `b` is a prefix of the other (Redis's stringCheckPrefix).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Redis's checkPrefixCollisionsOrReply.
fn check_prefix_collisions(existing: &[Bytes], new: &[Bytes]) -> CmdResult {
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlap(old, p)) {
            return Err(CmdError::concat(&[
                b"ERR Prefix '",
                p,
                b"' overlaps with an existing prefix '",
                old,
                b"'. Prefixes for a single client must not overlap.",
            ]));
        }
        if let Some(other) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(CmdError::concat(&[
                b"ERR Prefix '",
                p,
                b"' overlaps with another provided prefix '",
                other,
                b"'. Prefixes for a single client must not overlap.",
            ]));
        }
    }
    Ok(())
}

fn own_prefixes(server: &Server, id: u64) -> Vec<Bytes> {
    let inner = server.clients.tracking.inner.lock();
    inner
        .clients
        .get(&id)
        .map(|t| t.prefixes.iter().cloned().collect())
        .unwrap_or_default()
}

/// Redis's enableTracking: (re)sets the mode, adds broadcast prefixes.
fn enable(server: &Server, client: &mut Client, redirect: u64, options: u32, prefixes: Vec<Bytes>) {
    let table = &server.clients.tracking;
    if client.tracking == 0 {
        table.active.fetch_add(1, Relaxed);
    }
    let info = client.info.clone();
    let queue = client
        .pubsub
        .subscriber
        .get_or_insert_with(|| Arc::new(Subscriber::new(info.clone())))
        .clone();
    let id = client.id();
    let mut inner = table.inner.lock();
    let t = inner.clients.entry(id).or_insert_with(|| Tracker {
        flags: 0,
        redirect: 0,
        prefixes: BTreeSet::new(),
        info,
        queue,
    });
    let keep = flags::CACHING & client.tracking;
    t.flags = flags::ON | options;
    t.redirect = redirect;
    client.tracking = t.flags | keep;
    publish_mode(&t.info, t.flags, redirect);
    let mut added = Vec::new();
    if options & flags::BCAST != 0 {
        if prefixes.is_empty() {
            added.push(Bytes::new());
        }
        added.extend(prefixes);
        for p in &added {
            t.prefixes.insert(p.clone());
        }
    }
    for p in added {
        inner.prefixes.entry(p).or_default().insert(id);
    }
}

/// CLIENT CACHING YES|NO
pub fn caching_command(c: &mut Ctx) -> CmdResult {
    let f = c.client.tracking;
    if f == 0 {
        return Err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled".into());
    }
    let opt = &c.args[2];
    if is(opt, "yes") {
        if f & flags::OPTIN == 0 {
            return Err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
                    .into(),
            );
        }
    } else if is(opt, "no") {
        if f & flags::OPTOUT == 0 {
            return Err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
                    .into(),
            );
        }
    } else {
        return Err(err::SYNTAX.into());
    }
    c.client.tracking |= flags::CACHING;
    c.out.ok();
    Ok(())
}

/// The redirect id and the flags Redis keeps outside `Client::tracking`
/// (broken redirect), for a tracking client.
fn shared_state(server: &Server, id: u64) -> (u64, u32, Vec<Bytes>) {
    let inner = server.clients.tracking.inner.lock();
    inner.clients.get(&id).map_or((0, 0, Vec::new()), |t| {
        (t.redirect, t.flags, t.prefixes.iter().cloned().collect())
    })
}

/// CLIENT GETREDIR
pub fn getredir_command(c: &mut Ctx) -> CmdResult {
    let redir = if c.client.tracking == 0 {
        -1
    } else {
        shared_state(c.server, c.client.id()).0 as i64
    };
    c.out.int(redir);
    Ok(())
}

/// CLIENT TRACKINGINFO
pub fn trackinginfo_command(c: &mut Ctx) -> CmdResult {
    let f = c.client.tracking;
    let (redirect, shared, prefixes) = shared_state(c.server, c.client.id());
    let mut names: Vec<&[u8]> = vec![if f != 0 { b"on" } else { b"off" }];
    let caching = f & flags::CACHING != 0;
    for (bit, name) in [
        (flags::BCAST, &b"bcast"[..]),
        (flags::OPTIN, b"optin"),
        (flags::OPTOUT, b"optout"),
    ] {
        if f & bit != 0 {
            names.push(name);
        }
        if f & bit != 0 && caching && bit != flags::BCAST {
            names.push(if bit == flags::OPTIN {
                b"caching-yes"
            } else {
                b"caching-no"
            });
        }
    }
    if f & flags::NOLOOP != 0 {
        names.push(b"noloop");
    }
    if shared & flags::BROKEN_REDIR != 0 {
        names.push(b"broken_redirect");
    }
    let out = &mut *c.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(names.len());
    for n in names {
        out.bulk(n);
    }
    out.bulk(b"redirect");
    out.int(if f != 0 { redirect as i64 } else { -1 });
    out.bulk(b"prefixes");
    out.array(prefixes.len());
    for p in &prefixes {
        out.bulk(p);
    }
    Ok(())
}

/// CLIENT LIST flags of a client: t, R, B.
pub fn list_flags(info: &ClientInfo) -> &'static str {
    let f = info.tracking.load(Relaxed);
    match (f & flags::BROKEN_REDIR != 0, f & flags::BCAST != 0) {
        _ if f == 0 => "",
        (false, false) => "t",
        (true, false) => "tR",
        (false, true) => "tB",
        (true, true) => "tRB",
    }
}

/// Mirrors a tracker's mode into its ClientInfo, for CLIENT LIST.
fn publish_mode(info: &ClientInfo, flags: u32, redirect: u64) {
    info.tracking.store(flags, Relaxed);
    let redir = if flags == 0 { -1 } else { redirect as i64 };
    info.tracking_redir.store(redir, Relaxed);
}

/// INFO: tracking clients, keys in the table, broadcast prefixes.
pub fn stats(server: &Server) -> (usize, usize, usize, usize) {
    let table = &server.clients.tracking;
    let inner = table.inner.lock();
    let items = inner.keys.values().map(HashSet::len).sum();
    (
        table.active.load(Relaxed),
        inner.keys.len(),
        items,
        inner.prefixes.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_when_one_starts_the_other() {
        assert!(overlap(b"a", b"ab"));
        assert!(overlap(b"ab", b"a"));
        assert!(overlap(b"", b"x"));
        assert!(!overlap(b"ab", b"ac"));
    }

    #[test]
    fn collision_errors_name_both_prefixes() {
        let e = check_prefix_collisions(&[Bytes::from_static(b"foo")], &[Bytes::from("fo")])
            .unwrap_err();
        assert_eq!(
            e.text(),
            "ERR Prefix 'fo' overlaps with an existing prefix 'foo'. Prefixes for a single client must not overlap."
        );
        let e = check_prefix_collisions(&[], &[Bytes::from("a"), Bytes::from("ab")]).unwrap_err();
        assert!(e.text().contains("with another provided prefix 'ab'"));
    }

    #[test]
    fn messages_are_resp() {
        assert_eq!(
            &invalidate_push(Some(b"k"), b"_\r\n")[..],
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(
            &invalidate_message(None, b"$-1\r\n")[..],
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        );
    }
}
