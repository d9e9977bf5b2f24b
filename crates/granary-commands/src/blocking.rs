//! Clients blocked on list keys (BLPOP & co.; Redis's blocked.c).
//!
//! A blocking command that finds nothing registers its client in a FIFO
//! queue per (db, key) and returns `Action::Block`; the connection task
//! then waits, holding no lock, until it is woken or its deadline passes,
//! and runs the same command again. A write that adds elements to a key
//! wakes as many waiters as the list now holds; a woken client may take
//! from a key only while it is the first waiter of that key, so clients are
//! served first blocked, first served. A served, timed-out or disconnected
//! client leaves every queue and wakes the next waiters. Only the waiting
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
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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
/// waiter (first blocked, first served); a new client takes what it finds.
pub fn may_take(me: Option<&Arc<Waiter>>, key: &[u8]) -> bool {
    me.is_none_or(|w| is_first(w, key))
}

/// After a blocked client took from `key` (`remaining` elements left): it
/// leaves the queues and the next waiters get their turn.
pub fn served(me: Option<&Arc<Waiter>>, db: usize, key: &[u8], remaining: usize) {
    if let Some(w) = me {
        unregister(w.client);
        signal(db, key, remaining);
    }
}
