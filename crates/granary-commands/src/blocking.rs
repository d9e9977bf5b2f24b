//! Clients blocked on list keys (BLPOP & co.; Redis's blocked.c).
//!
//! A blocking command that finds nothing registers its client in a FIFO
//! queue per (db, key) and returns `Action::Block`; the connection task
//! then waits, holding no lock, until it is woken or its deadline passes,
//! and runs the same command again. A write that adds elements to a key
//! wakes as many waiters as the list now holds; a woken client may take
//! from a key only while it is the first waiter of that key, so clients are
//! served first blocked, first served. A served, timed-out or disconnected
//! client leaves every queue and wakes the next waiters. CLIENT UNBLOCK
//! ends a wait from another connection: each waiter's `state` leaves
//! WAITING once, so being served, the deadline and CLIENT UNBLOCK cannot
//! both claim it (CLIENT UNBLOCK replies 1 only if the client then gets
//! the timeout reply or the UNBLOCKED error). Only the waiting
//! task itself ever pops for its client, so a client killed while blocked
//! cannot lose an element.
//!
//! Lock order: a keyspace shard lock, then a registry part (writers signal
//! with their shard locked); the registry is never held while locking a
//! shard. With no blocked client anywhere, a write pays one atomic load.
//!
//! The registry is process-wide: one server runs per process.

use crate::ctx::CmdError;
use crate::util::parse_f64_opt;
use bytes::Bytes;
use granary_keyspace::{hash_bytes, shard_of, SHARDS};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One blocked client.
pub struct Waiter {
    pub client: u64,
    pub db: usize,
    /// The distinct keys it waits on.
    keys: Vec<Bytes>,
    /// When it gives up (None: never); kept across re-runs.
    pub deadline: Option<Instant>,
    pub notify: Notify,
    /// WAITING, TAKING, or how the wait ended without an element (see
    /// `Ending`). Moves away from WAITING exactly once, so CLIENT UNBLOCK,
    /// the deadline and a key being served cannot both claim the client.
    state: AtomicU8,
}

const WAITING: u8 = 0;
/// It is taking from a key: nothing can unblock it any more.
const TAKING: u8 = 1;
const TIMED_OUT: u8 = 2;
const UNBLOCKED_ERROR: u8 = 3;

/// How a wait ended without an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The deadline passed, or CLIENT UNBLOCK [TIMEOUT]: the timeout reply.
    Timeout,
    /// CLIENT UNBLOCK ERROR.
    Error,
}

impl Ending {
    /// The error CLIENT UNBLOCK ERROR makes the blocked command reply.
    pub const ERROR_TEXT: &'static str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
}

impl Waiter {
    /// Claims the client for `to`; false if something else ended the wait.
    fn claim(&self, to: u8) -> bool {
        self.state
            .compare_exchange(WAITING, to, Relaxed, Relaxed)
            .is_ok()
    }

    /// How the wait ended, if CLIENT UNBLOCK (or the deadline) ended it.
    pub fn ended(&self) -> Option<Ending> {
        match self.state.load(Relaxed) {
            TIMED_OUT => Some(Ending::Timeout),
            UNBLOCKED_ERROR => Some(Ending::Error),
            _ => None,
        }
    }

    /// The deadline passed: ends the wait with a timeout, unless CLIENT
    /// UNBLOCK got there first (then its ending wins).
    pub fn time_out(&self) -> Ending {
        self.claim(TIMED_OUT);
        self.ended().unwrap_or(Ending::Timeout)
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Waiter(client {}, {} keys)",
            self.client,
            self.keys.len()
        )
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.client == other.client
    }
}

type Queues = HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>;

struct Registry {
    /// Number of blocked clients; 0 makes `signal` free.
    active: AtomicUsize,
    /// Queues split like the keyspace shards.
    parts: Box<[Mutex<Queues>]>,
    clients: Mutex<HashMap<u64, Arc<Waiter>>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    active: AtomicUsize::new(0),
    parts: (0..SHARDS).map(|_| Mutex::default()).collect(),
    clients: Mutex::default(),
});

fn part(key: &[u8]) -> &'static Mutex<Queues> {
    &REGISTRY.parts[shard_of(hash_bytes(key))]
}

/// Number of clients blocked now (INFO blocked_clients).
pub fn blocked_clients() -> usize {
    REGISTRY.active.load(Relaxed)
}

/// The registration of `client` if it is blocked (a re-run command).
pub fn current(client: u64) -> Option<Arc<Waiter>> {
    if REGISTRY.active.load(Relaxed) == 0 {
        return None;
    }
    REGISTRY.clients.lock().get(&client).cloned()
}

/// Registers `client` at the back of the queue of each key. Call with the
/// keys' shards locked, after finding them all empty.
pub fn block(client: u64, db: usize, keys: &[Bytes], deadline: Option<Instant>) -> Arc<Waiter> {
    let mut distinct: Vec<Bytes> = Vec::with_capacity(keys.len());
    for k in keys {
        if !distinct.contains(k) {
            distinct.push(k.clone());
        }
    }
    let w = Arc::new(Waiter {
        client,
        db,
        keys: distinct,
        deadline,
        notify: Notify::new(),
        state: AtomicU8::new(WAITING),
    });
    if let Some(old) = REGISTRY.clients.lock().insert(client, w.clone()) {
        leave(&old);
    } else {
        REGISTRY.active.fetch_add(1, Relaxed);
    }
    for k in &w.keys {
        part(k)
            .lock()
            .entry((db, k.clone()))
            .or_default()
            .push_back(w.clone());
    }
    w
}

/// Whether `w` is the first waiter of `key` (so it may take from it).
pub fn is_first(w: &Waiter, key: &[u8]) -> bool {
    let queues = part(key).lock();
    queues
        .get(&(w.db, Bytes::copy_from_slice(key)))
        .and_then(|q| q.front())
        .is_some_and(|f| f.client == w.client)
}

/// Removes `w` from its queues and wakes the new first waiter of each
/// queue it headed.
fn leave(w: &Waiter) {
    for k in &w.keys {
        let mut queues = part(k).lock();
        let id = (w.db, k.clone());
        let Some(q) = queues.get_mut(&id) else {
            continue;
        };
        let was_first = q.front().is_some_and(|f| f.client == w.client);
        q.retain(|x| x.client != w.client);
        if q.is_empty() {
            queues.remove(&id);
        } else if was_first {
            q[0].notify.notify_one();
        }
    }
}

/// `client` is no longer blocked (served, timed out, disconnected).
pub fn unregister(client: u64) {
    if REGISTRY.active.load(Relaxed) == 0 {
        return;
    }
    let Some(w) = REGISTRY.clients.lock().remove(&client) else {
        return;
    };
    REGISTRY.active.fetch_sub(1, Relaxed);
    leave(&w);
}

/// `key` in `db` now holds `len` elements: wakes its first `len` waiters.
/// Called by writers with the key's shard locked.
#[inline]
pub fn signal(db: usize, key: &[u8], len: usize) {
    if REGISTRY.active.load(Relaxed) != 0 {
        signal_slow(db, key, len);
    }
}

fn signal_slow(db: usize, key: &[u8], len: usize) {
    let queues = part(key).lock();
    if let Some(q) = queues.get(&(db, Bytes::copy_from_slice(key))) {
        for w in q.iter().take(len) {
            w.notify.notify_one();
        }
    }
}

/// Redis's getTimeoutFromObjectOrReply in seconds, for every blocking
/// command: the deadline, or None for 0 (wait forever).
pub fn parse_timeout(arg: &[u8], now_ms: u64) -> Result<Option<Instant>, CmdError> {
    let secs = parse_f64_opt(arg).ok_or("ERR timeout is not a float or out of range")?;
    let ms = secs * 1000.0;
    if ms > i64::MAX as f64 {
        return Err("ERR timeout is out of range".into());
    }
    let ms = ms.ceil() as i64;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    if ms == 0 {
        return Ok(None);
    }
    if ms > i64::MAX - now_ms as i64 {
        return Err("ERR timeout is out of range".into());
    }
    // Past what Instant can hold is as good as forever.
    Ok(Instant::now().checked_add(Duration::from_millis(ms as u64)))
}

/// A blocked client may take from a key only while it is the key's first
/// waiter (first blocked, first served) and nothing has unblocked it; a new
/// client takes what it finds. True means the caller takes now.
pub fn may_take(me: Option<&Arc<Waiter>>, key: &[u8]) -> bool {
    me.is_none_or(|w| is_first(w, key) && w.claim(TAKING))
}

/// Like `may_take` without the first-waiter rule, for stream readers: one
/// new entry serves every client blocked on the stream.
pub fn may_serve(me: Option<&Arc<Waiter>>) -> bool {
    me.is_none_or(|w| w.claim(TAKING))
}

/// CLIENT UNBLOCK: ends the wait of `client` if it is blocked (with the
/// timeout reply, or the UNBLOCKED error when `error`). Its own connection
/// replies and leaves the queues. False if it is not blocked.
pub fn unblock(client: u64, error: bool) -> bool {
    let Some(w) = current(client) else {
        return false;
    };
    let claimed = w.claim(if error { UNBLOCKED_ERROR } else { TIMED_OUT });
    if claimed {
        w.notify.notify_one();
    }
    claimed
}

/// Whether `client` is blocked now (CLIENT LIST flag `b`).
pub fn is_blocked(client: u64) -> bool {
    current(client).is_some()
}

/// Distinct keys clients are blocked on, over all databases (INFO
/// total_blocking_keys).
pub fn blocking_keys() -> usize {
    if REGISTRY.active.load(Relaxed) == 0 {
        return 0;
    }
    REGISTRY.parts.iter().map(|p| p.lock().len()).sum()
}

/// Blocked clients that have a deadline (INFO clients_in_timeout_table).
pub fn clients_with_timeout() -> usize {
    if REGISTRY.active.load(Relaxed) == 0 {
        return 0;
    }
    let clients = REGISTRY.clients.lock();
    clients.values().filter(|w| w.deadline.is_some()).count()
}

/// The keys clients are blocked on in `db` (SWAPDB re-checks them, as
/// Redis's scanDatabaseForReadyKeys).
pub fn keys_in_db(db: usize) -> Vec<Bytes> {
    if REGISTRY.active.load(Relaxed) == 0 {
        return Vec::new();
    }
    let mut keys = Vec::new();
    for p in REGISTRY.parts.iter() {
        let queues = p.lock();
        keys.extend(
            queues
                .keys()
                .filter(|(d, _)| *d == db)
                .map(|(_, k)| k.clone()),
        );
    }
    keys
}

/// After a blocked client took from `key` (`remaining` elements left): it
/// leaves the queues and the next waiters get their turn.
pub fn served(me: Option<&Arc<Waiter>>, db: usize, key: &[u8], remaining: usize) {
    if let Some(w) = me {
        unregister(w.client);
        signal(db, key, remaining);
    }
}
