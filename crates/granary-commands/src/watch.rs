//! WATCH: which clients watch which keys, and flagging them when a watched
//! key changes (Redis's `watched_keys` dicts and CLIENT_DIRTY_CAS).
//!
//! The registry is split like the keyspace: the watchers of a key live in
//! the registry shard with the same index as the key's keyspace shard. A
//! write already holds its keyspace shard lock, so the registry shard's
//! mutex is only ever contended by WATCH/UNWATCH of the same shard. Lock
//! order is always keyspace shard, then registry shard, never the reverse.
//!
//! When nobody watches anything, `touch` is one relaxed atomic load: the
//! per-write cost of this module is zero in the common case. That load is
//! ordered correctly without fences because a watcher registers while
//! holding the key's keyspace shard lock, and a writer to that key loads
//! the counter while holding the same lock.

use crate::client::{Client, ClientInfo};
use crate::server::Server;
use bytes::Bytes;
use granary_keyspace::{hash_bytes, shard_of, SHARDS};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// One client watching one key in one database.
struct Watcher {
    db: usize,
    /// Whether the key was live when WATCH ran; see [`Watches::replaced`].
    existed: bool,
    client: Arc<ClientInfo>,
}

type Registry = HashMap<Box<[u8]>, Vec<Watcher>>;

pub struct Watches {
    /// Number of (client, db, key) registrations; 0 makes `touch` free.
    active: AtomicUsize,
    /// Number of clients watching at least one key (INFO watching_clients).
    clients: AtomicUsize,
    shards: Box<[Mutex<Registry>]>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            active: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// A key a client watches, as the client remembers it (to unwatch it and
/// to check at EXEC whether it expired).
pub struct Watched {
    pub db: usize,
    pub key: Bytes,
    /// The key was live at WATCH time.
    pub existed: bool,
}

impl Watches {
    /// Total keys watched, over all clients (INFO total_watched_keys).
    pub fn total(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Clients watching at least one key (INFO watching_clients).
    pub fn watching_clients(&self) -> usize {
        self.clients.load(Relaxed)
    }

    /// A key was written: flag every client watching it. Called from
    /// `Store::modified` with the key's shard locked.
    #[inline]
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.active.load(Relaxed) != 0 {
            self.touch_slow(db, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn touch_slow(&self, db: usize, key: &[u8]) {
        let reg = self.shards[shard_of(hash_bytes(key))].lock();
        if let Some(list) = reg.get(key) {
            for w in list.iter().filter(|w| w.db == db) {
                w.client.dirty_cas.store(true, Relaxed);
            }
        }
    }

    /// A whole database was emptied or swapped with another. Redis flags a
    /// watcher if its key exists in the database before or after: before is
    /// `existed` (a key created after WATCH already flagged its watchers),
    /// after is asked of `live_now`, which sees the new contents.
    pub fn replaced(&self, db: usize, mut live_now: impl FnMut(&[u8]) -> bool) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        for shard in self.shards.iter() {
            // Collected first: `live_now` may lock a keyspace shard, which
            // must never be taken while holding a registry shard.
            let mut candidates: Vec<(Box<[u8]>, bool, Arc<ClientInfo>)> = Vec::new();
            for (key, list) in shard.lock().iter() {
                for w in list.iter().filter(|w| w.db == db) {
                    candidates.push((key.clone(), w.existed, w.client.clone()));
                }
            }
            // Watchers of one key are adjacent: look each key up once.
            let mut live: Option<(Box<[u8]>, bool)> = None;
            for (key, existed, client) in candidates {
                let fires = existed || {
                    if live.as_ref().is_none_or(|(k, _)| *k != key) {
                        let now = live_now(&key);
                        live = Some((key, now));
                    }
                    live.as_ref().is_some_and(|(_, l)| *l)
                };
                if fires {
                    client.dirty_cas.store(true, Relaxed);
                }
            }
        }
    }

    fn add(&self, db: usize, key: &[u8], existed: bool, client: &Arc<ClientInfo>) {
        let mut reg = self.shards[shard_of(hash_bytes(key))].lock();
        reg.entry(key.into()).or_default().push(Watcher {
            db,
            existed,
            client: client.clone(),
        });
        self.active.fetch_add(1, Relaxed);
    }

    fn remove(&self, db: usize, key: &[u8], client_id: u64) {
        let mut reg = self.shards[shard_of(hash_bytes(key))].lock();
        let Some(list) = reg.get_mut(key) else { return };
        if let Some(i) = list
            .iter()
            .position(|w| w.db == db && w.client.id == client_id)
        {
            list.swap_remove(i);
            self.active.fetch_sub(1, Relaxed);
        }
        if list.is_empty() {
            reg.remove(key);
        }
    }
}

/// WATCH of one key by `client`; the caller holds the key's shard lock and
/// says whether the key is live. Watching a key twice is a no-op.
pub fn watch_key(server: &Server, client: &mut Client, key: &Bytes, existed: bool) {
    let db = client.db;
    if client
        .watched
        .iter()
        .any(|w| w.db == db && w.key[..] == key[..])
    {
        return;
    }
    let watches = &server.clients.watches;
    if client.watched.is_empty() {
        watches.clients.fetch_add(1, Relaxed);
    }
    watches.add(db, key, existed, &client.info);
    client.watched.push(Watched {
        db,
        // Copied: the argument is a slice of the connection's read buffer.
        key: Bytes::copy_from_slice(key),
        existed,
    });
    client.info.watching.store(client.watched.len(), Relaxed);
}

/// Forgets every key the client watches and clears its dirty flag (UNWATCH,
/// EXEC, DISCARD, RESET, disconnect).
pub fn unwatch_all(server: &Server, client: &mut Client) {
    if !client.watched.is_empty() {
        let watches = &server.clients.watches;
        for w in client.watched.drain(..) {
            watches.remove(w.db, &w.key, client.info.id);
        }
        watches.clients.fetch_sub(1, Relaxed);
        client.info.watching.store(0, Relaxed);
    }
    // Cleared last: once unregistered, no writer can set it again.
    client.info.dirty_cas.store(false, Relaxed);
}
