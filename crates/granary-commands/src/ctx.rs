//! What a command handler sees: its arguments, the reply being written, the
//! client, the server, and [`Store`], the keys it has locked.

use crate::client::Client;
use crate::notify::{class, notify};
use crate::server::Server;
use crate::table::Spec;
use bytes::Bytes;
use granary_keyspace::{hash_bytes, Db, Entry, Locked, Shard, StrValue, Value};
use granary_protocol::Reply;
use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// An error reply; the text starts with the error code ("ERR ..."). Bytes,
/// not str: errors quote client arguments, which Redis echoes unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(pub Cow<'static, [u8]>);

impl CmdError {
    /// Builds an error from pieces, some of them client bytes.
    pub fn concat(parts: &[&[u8]]) -> Self {
        CmdError(Cow::Owned(parts.concat()))
    }

    /// The text, lossily decoded (for logs and tests).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl From<&'static str> for CmdError {
    fn from(s: &'static str) -> Self {
        CmdError(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<String> for CmdError {
    fn from(s: String) -> Self {
        CmdError(Cow::Owned(s.into_bytes()))
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Redis's shared error texts.
pub mod err {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const DB_RANGE: &str = "ERR DB index is out of range";
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
    pub const STRING_TOO_LONG: &str =
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
}

/// What the connection must do after a command, beyond sending its reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Close the connection once the reply is written (QUIT, CLIENT KILL of self).
    Close,
    /// Wait before running the next command (DEBUG SLEEP).
    Sleep(Duration),
    /// Stop the server (SHUTDOWN).
    Shutdown,
    /// Wait until woken or timed out, then run the command again (BLPOP & co.).
    Block(std::sync::Arc<crate::blocking::Waiter>),
}

pub struct Ctx<'a> {
    pub server: &'a Server,
    pub client: &'a mut Client,
    pub args: &'a [Bytes],
    pub out: &'a mut Reply,
    pub spec: &'static Spec,
    pub store: Store<'a>,
    pub action: Option<Action>,
}

impl Ctx<'_> {
    pub fn arg(&self, i: usize) -> &Bytes {
        &self.args[i]
    }

    /// The wrong-arity error for this command, as Redis words it.
    pub fn arity_error(&self) -> CmdError {
        format!(
            "ERR wrong number of arguments for '{}' command",
            self.spec.name
        )
        .into()
    }

    /// Publishes keyspace notification `event` about `key` in the selected
    /// database (see [`crate::notify`]).
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        crate::notify::notify(self.server, class, event, key, self.store.db);
    }
}

/// Access to locked shards: a command's own [`Locked`], or one its caller
/// holds for several commands (EXEC). A trait object for the latter, so the
/// caller's lock can be lent to each command for a shorter lifetime.
pub trait ShardAccess {
    /// The shard holding `hash`, which must be locked.
    fn shard(&mut self, hash: u64) -> &mut Shard;
    /// Shard `i` if every shard is held, else None.
    fn shard_at(&mut self, i: usize) -> Option<&mut Shard>;
}

impl ShardAccess for Locked<'_> {
    #[inline]
    fn shard(&mut self, hash: u64) -> &mut Shard {
        Locked::shard(self, hash)
    }

    fn shard_at(&mut self, i: usize) -> Option<&mut Shard> {
        Locked::shard_at(self, i)
    }
}

/// The shards a [`Store`] may touch.
enum Lock<'a> {
    None,
    Own(Locked<'a>),
    Held(&'a mut dyn ShardAccess),
}

/// The keys a command may touch: the shards the dispatcher locked for it,
/// viewed through the client's selected database. Reads expire keys lazily
/// and update their access clock; writes count toward `dirty`.
pub struct Store<'a> {
    pub server: &'a Server,
    locked: Lock<'a>,
    /// The client's selected database.
    pub db: usize,
    /// Milliseconds since the epoch when the command started; one command
    /// sees one instant, as in Redis.
    pub now: u64,
    pub no_touch: bool,
    /// Whether the command may change what it looks up (not flagged
    /// readonly): then a running save gets a key's value before the
    /// command can change it.
    pub writes: bool,
    /// Writes this command made (calls of `modified`): it is logged to the
    /// AOF only if it changed something.
    pub changes: u32,
    /// What to log instead of the command's arguments, when those would not
    /// replay the same (SPOP: the members it removed).
    pub effect: Option<Vec<Vec<u8>>>,
    /// The hash the dispatcher computed to lock a single-key command's
    /// shard, by the key's address and length, so it is not computed twice.
    hint: (usize, usize, u64),
    /// The key (hash) whose access this command counted: a command that
    /// looks a key up again, or creates or replaces it after looking it
    /// up, counts one access, as Redis's one lookup (matters for LFU).
    counted: Option<u64>,
}

impl<'a> Store<'a> {
    pub fn new(server: &'a Server, locked: Option<Locked<'a>>, db: usize, now: u64) -> Self {
        Store::with_lock(server, locked.map_or(Lock::None, Lock::Own), db, now)
    }

    /// A store for a command run under shards its caller already holds
    /// (EXEC holds every shard for the whole transaction).
    pub fn held(server: &'a Server, held: &'a mut dyn ShardAccess, db: usize, now: u64) -> Self {
        Store::with_lock(server, Lock::Held(held), db, now)
    }

    fn with_lock(server: &'a Server, locked: Lock<'a>, db: usize, now: u64) -> Self {
        Store {
            server,
            locked,
            db,
            now,
            no_touch: false,
            writes: true,
            changes: 0,
            effect: None,
            hint: (0, 0, 0),
            counted: None,
        }
    }

    /// The shard locks this command runs under, to lend to the commands a
    /// script runs (EVAL holds every shard, like EXEC).
    pub fn shard_access(&mut self) -> Option<&mut dyn ShardAccess> {
        match &mut self.locked {
            Lock::Own(l) => Some(l),
            Lock::Held(l) => Some(&mut **l),
            Lock::None => None,
        }
    }

    /// Remembers `hash` as the hash of the argument `key` (same allocation).
    pub fn hint_hash(&mut self, key: &[u8], hash: u64) {
        self.hint = (key.as_ptr() as usize, key.len(), hash);
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        if (key.as_ptr() as usize, key.len()) == (self.hint.0, self.hint.1) {
            self.hint.2
        } else {
            hash_bytes(key)
        }
    }

    /// The locked shard holding `hash`.
    #[inline]
    fn shard(&mut self, hash: u64) -> &mut Shard {
        match &mut self.locked {
            Lock::Own(l) => l.shard(hash),
            Lock::Held(l) => l.shard(hash),
            Lock::None => panic!("command declared no keys but touched the keyspace"),
        }
    }

    /// Whether `key` is live (present, not expired) in database `dbi`,
    /// without expiring it or touching its access clock.
    pub fn is_live(&mut self, dbi: usize, key: &[u8]) -> bool {
        let h = self.hash(key);
        let now = self.now;
        self.db_of(dbi, h).peek(h, key, now).is_some()
    }

    /// The access clock of a key created now (seconds, or an LFU counter).
    fn clock(&self) -> u16 {
        crate::evict::new_clock(self.server, self.now)
    }

    /// The database `dbi`'s part of the shard holding `hash`.
    pub fn db_of(&mut self, dbi: usize, hash: u64) -> &mut Db {
        self.shard(hash).db(dbi)
    }

    /// Looks a key up in database `dbi`, expiring it if due.
    pub fn entry_in(&mut self, dbi: usize, key: &[u8]) -> Option<&mut Entry> {
        let h = self.hash(key);
        let now = self.now;
        let touch = !self.no_touch && self.counted != Some(h);
        if touch {
            self.counted = Some(h);
        }
        let server = self.server;
        let mut expired = 0;
        let mut fields = 0;
        let writes = self.writes;
        let db = self.db_of(dbi, h);
        if writes {
            db.preserve(h, key);
        }
        let e = db.lookup(h, key, now, &mut expired, &mut fields);
        if expired > 0 {
            server.stats.expired_keys.fetch_add(expired, Relaxed);
            key_expired(server, dbi, key);
        }
        if fields > 0 {
            // Hash fields whose TTL passed were deleted (maybe the key).
            notify_modified(server, dbi, key);
            hash_fields_expired(server, dbi, key, e.is_none());
        }
        let e = e?;
        if touch {
            e.set_access_clock(crate::evict::touched_clock(server, e.access_clock(), now));
        }
        Some(e)
    }

    pub fn entry(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.entry_in(self.db, key)
    }

    /// Looks up a key for a read command, counting keyspace hits and misses.
    pub fn read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let server = self.server;
        let db = self.db;
        let e = self.entry(key);
        let stat = if e.is_some() {
            &server.stats.keyspace_hits
        } else {
            notify(server, class::KEY_MISS, "keymiss", key, db);
            &server.stats.keyspace_misses
        };
        stat.fetch_add(1, Relaxed);
        e
    }

    /// The value at `key` as one type (`pick` says which), or WRONGTYPE;
    /// `read` counts a keyspace hit or miss, as read commands do.
    pub fn typed<T>(
        &mut self,
        key: &[u8],
        read: bool,
        pick: impl FnOnce(&mut Value) -> Option<&mut T>,
    ) -> Result<Option<&mut T>, CmdError> {
        let e = if read {
            self.read(key)
        } else {
            self.entry(key)
        };
        match e {
            None => Ok(None),
            Some(e) => pick(&mut e.value)
                .map(Some)
                .ok_or_else(|| err::WRONGTYPE.into()),
        }
    }

    /// The string at `key`, or WRONGTYPE.
    pub fn read_str(&mut self, key: &[u8]) -> Result<Option<&mut StrValue>, CmdError> {
        match self.read(key) {
            None => Ok(None),
            Some(e) => match &mut e.value {
                Value::Str(s) => Ok(Some(s)),
                #[allow(unreachable_patterns)]
                _ => Err(err::WRONGTYPE.into()),
            },
        }
    }

    /// Like read_str, without counting hits (for writes that read first).
    pub fn str_mut(&mut self, key: &[u8]) -> Result<Option<&mut StrValue>, CmdError> {
        match self.entry(key) {
            None => Ok(None),
            Some(e) => match &mut e.value {
                Value::Str(s) => Ok(Some(s)),
                #[allow(unreachable_patterns)]
                _ => Err(err::WRONGTYPE.into()),
            },
        }
    }

    /// Stores a value, replacing any old one and its TTL (unless `expire`
    /// keeps one). Returns the old value.
    pub fn set_in(
        &mut self,
        dbi: usize,
        key: &[u8],
        value: Value,
        expire: Option<u64>,
    ) -> Option<Value> {
        if self.server.config.hot.notify_keyspace_events.load(Relaxed) != 0 {
            // An expired old value is deleted first ("expired"), so the
            // key is "new", as Redis's lookupKeyWrite then dbAdd.
            self.entry_in(dbi, key);
        }
        let h = self.hash(key);
        let clock = self.clock();
        // A list stored whole (RENAME, MOVE, COPY...) serves blocked clients.
        let list_len = match &value {
            Value::List(l) => l.len(),
            // Every reader blocked on a stream may have something now.
            Value::Stream(_) => usize::MAX,
            _ => 0,
        };
        let lfu = self.server.config.hot.lfu.load(Relaxed);
        let now = self.now;
        // Under LFU a key overwritten keeps its counter (Redis's dbSetValue),
        // with this access counted (setKey's lookupKeyWrite).
        let counted = self.counted == Some(h);
        self.counted = Some(h);
        let server = self.server;
        let db = self.db_of(dbi, h);
        let clock = match lfu.then(|| db.peek(h, key, now)).flatten() {
            Some(old) if counted => old.access_clock(),
            Some(old) => crate::evict::touched_clock(server, old.access_clock(), now),
            None => clock,
        };
        let old = db.insert(h, key, value, expire, clock);
        if old.is_none() {
            notify(self.server, class::NEW, "new", key, dbi);
        }
        self.modified(dbi, key);
        // A stream replaced: its blocked XREADGROUP clients get an error.
        let wake = match &old {
            Some(Value::Stream(_)) => usize::MAX,
            _ => list_len,
        };
        crate::blocking::signal(dbi, key, wake);
        old
    }

    pub fn set(&mut self, key: &[u8], value: Value, expire: Option<u64>) -> Option<Value> {
        self.set_in(self.db, key, value, expire)
    }

    /// Deletes a key; returns its entry if it existed (and was not expired).
    pub fn remove_in(&mut self, dbi: usize, key: &[u8]) -> Option<Entry> {
        self.entry_in(dbi, key)?;
        let h = self.hash(key);
        let e = self.db_of(dbi, h).remove(h, key);
        self.modified(dbi, key);
        if e.as_ref()
            .is_some_and(|e| matches!(e.value, Value::Stream(_)))
        {
            // Clients blocked in XREADGROUP on it get an error.
            crate::blocking::signal(dbi, key, usize::MAX);
        }
        e
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.remove_in(self.db, key)
    }

    /// Current expire time of a live key (ms), or None.
    pub fn expire_of_in(&mut self, dbi: usize, key: &[u8]) -> Option<u64> {
        self.entry_in(dbi, key)?;
        let h = self.hash(key);
        let db = self.db_of(dbi, h);
        let e = db.peek(h, key, 0)?;
        db.expire_of(e)
    }

    pub fn expire_of(&mut self, key: &[u8]) -> Option<u64> {
        self.expire_of_in(self.db, key)
    }

    /// Sets (Some) or clears (None) the TTL of a live key.
    pub fn set_expire(&mut self, key: &[u8], when: Option<u64>) -> bool {
        if self.entry(key).is_none() {
            return false;
        }
        let h = self.hash(key);
        let dbi = self.db;
        let done = self.db_of(dbi, h).set_expire(h, key, when);
        self.modified(dbi, key);
        done
    }

    /// Every write to a key goes through here: the hook where WATCH,
    /// keyspace notifications and write-behind attach.
    #[inline]
    pub fn modified(&mut self, db: usize, key: &[u8]) {
        self.changes += 1;
        notify_changed(self.server, db, key);
        let server = self.server;
        if server.writebehind.maps(db, key) {
            // The entry (hot: the command just wrote it) says whether the
            // key is queued already, so a hot key costs no shared lock.
            let h = self.hash(key);
            if self.db_of(db, h).mark_pending(h, key) != Some(true) {
                server.writebehind.queue(db, key);
            }
        }
    }

    /// Registers the hash at `key` for active field expiry after one of
    /// its fields got a TTL (HEXPIRE & co.).
    pub fn index_hash_ttls(&mut self, key: &[u8]) {
        let h = self.hash(key);
        let dbi = self.db;
        self.db_of(dbi, h).index_hash_ttls(h, key);
    }
}

/// A key was deleted because its TTL passed (lazily or by the cron).
pub fn key_expired(server: &Server, db: usize, key: &[u8]) {
    // The expired key's rows follow it (write-behind); journaled before
    // the AOF's DEL (see aof::journal_first).
    server.writebehind.on_write(db, key);
    // Logged as DEL, so a replay never resurrects it.
    crate::aof::deleted(server, db, key);
    notify(server, class::EXPIRED, "expired", key, db);
    crate::tracking::invalidate_key(server, key);
}

/// Fields of the hash at `key` expired (lazily or by the cron), which
/// deleted the key if `gone`.
pub fn hash_fields_expired(server: &Server, db: usize, key: &[u8], gone: bool) {
    notify(server, class::HASH, "hexpired", key, db);
    if gone {
        crate::aof::deleted(server, db, key);
        notify(server, class::GENERIC, "del", key, db);
    }
}

/// `Store::modified` for callers that hold a borrow of the store (they
/// queue the key for write-behind without checking its pending bit).
#[inline]
pub fn notify_modified(server: &Server, db: usize, key: &[u8]) {
    notify_changed(server, db, key);
    // One relaxed load unless write-behind is on.
    server.writebehind.on_write(db, key);
}

/// A write's hooks other than write-behind's.
#[inline]
fn notify_changed(server: &Server, db: usize, key: &[u8]) {
    server.dirty.fetch_add(1, Relaxed);
    // One relaxed load unless some client WATCHes a key.
    server.clients.watches.touch(db, key);
    // One relaxed load unless some client tracks keys.
    crate::tracking::invalidate_key(server, key);
}

// keys helpers
impl Store<'_> {
    /// Runs `f` on shard `i`. When the command already holds every shard
    /// (MULTI/EXEC, ALL_SHARDS commands) it goes through that lock, since
    /// locking again would deadlock; otherwise it locks just this shard for
    /// the duration of `f`, so whole-keyspace walks never hold all shards.
    pub fn with_shard<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut granary_keyspace::Shard) -> R,
    ) -> R {
        let held = match &mut self.locked {
            Lock::Own(l) => l.shard_at(i),
            Lock::Held(l) => l.shard_at(i),
            Lock::None => None,
        };
        if let Some(shard) = held {
            return f(shard);
        }
        f(&mut self.server.keyspace.lock_shard(i))
    }

    /// Counts keys found expired and deleted outside `entry_in`.
    pub fn count_expired(&self, n: u64) {
        if n > 0 {
            self.server.stats.expired_keys.fetch_add(n, Relaxed);
        }
    }

    /// A whole database was emptied or swapped (FLUSHDB, FLUSHALL, SWAPDB):
    /// the hook where WATCH and write-behind attach for those, as `modified`
    /// is for single keys. Redis counts each removed key as a change.
    /// Called after the change, so for SWAPDB `db` already holds what the
    /// other database held.
    pub fn db_replaced(&mut self, db: usize, removed: u64) {
        self.changes += 1;
        self.server.dirty.fetch_add(removed, Relaxed);
        let server = self.server;
        server.writebehind.on_emptied(db);
        if server.writebehind.enabled() {
            // SWAPDB moved entries between databases, their pending bits
            // with them; the emptied database's queued keys are dropped.
            for i in 0..granary_keyspace::SHARDS {
                self.with_shard(i, |s| s.db(db).clear_all_pending());
            }
        }
        server
            .clients
            .watches
            .replaced(db, |key| self.live_in_shard(db, key));
    }

    /// `is_live` for callers that may not hold the key's shard (FLUSHDB
    /// walks shards one at a time).
    fn live_in_shard(&mut self, dbi: usize, key: &[u8]) -> bool {
        let h = hash_bytes(key);
        let now = self.now;
        self.with_shard(granary_keyspace::shard_of(h), |s| {
            s.db(dbi).peek(h, key, now).is_some()
        })
    }
}
