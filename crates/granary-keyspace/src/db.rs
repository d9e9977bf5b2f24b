//! One logical database's share of one shard: the key dict plus the expiry
//! index.

use crate::dict::Dict;
use crate::hash::hash_bytes;
use crate::snapshot::Snapshot;
use crate::value::{Entry, Value, FAR_EXPIRE};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// A min-heap of (deadline, key hash). Entries go stale when a TTL changes
/// or a key is deleted; they are checked against the entry when popped and
/// the heap is rebuilt when stale ones outnumber live ones, so memory stays
/// proportional to the keys that have a TTL.
#[derive(Default)]
struct ExpiryIndex {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    live: usize,
}

#[derive(Default)]
pub struct Db {
    dict: Dict<Entry>,
    expiry: ExpiryIndex,
    /// Exact expire times too late for the 46-bit field (rare).
    far: HashMap<Box<[u8]>, u64>,
    /// Hashes with field TTLs, by earliest field deadline, for active
    /// field expiry. An entry is live while the hash's registered deadline
    /// (`HashValue::indexed_at`) equals it; others are skipped when popped.
    hfe: BinaryHeap<Reverse<(u64, Box<[u8]>)>>,
    /// Live entries of `hfe` at its last compaction; it is compacted when
    /// it grows to 4 times that, so stale entries (deleted keys, moved
    /// deadlines) cost amortized O(1) and memory stays bounded.
    hfe_live: usize,
    /// The keyspace's snapshot state, and this database's number in it:
    /// an entry changed or deleted during a save is first preserved.
    snap: Arc<Snapshot>,
    index: usize,
}

/// Outcome of looking a key up.
pub enum Lookup<'a> {
    Found(&'a mut Entry),
    Missing,
}

impl Db {
    /// Database number `index` of a keyspace whose saves go through `snap`.
    pub fn new(index: usize, snap: Arc<Snapshot>) -> Self {
        Db {
            snap,
            index,
            ..Db::default()
        }
    }

    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn volatile(&self) -> usize {
        self.expiry.live
    }

    /// Entry for `key`, or None if absent or expired (an expired key is
    /// deleted here, Redis's lazy expiry; `expired` counts it).
    pub fn get_mut(
        &mut self,
        hash: u64,
        key: &[u8],
        now: u64,
        expired: &mut u64,
    ) -> Option<&mut Entry> {
        self.lookup(hash, key, now, expired, &mut 0)
    }

    /// `get_mut` that also deletes the hash fields whose TTL is due
    /// (counted in `fields`), and the hash if that empties it.
    pub fn lookup(
        &mut self,
        hash: u64,
        key: &[u8],
        now: u64,
        expired: &mut u64,
        fields: &mut u64,
    ) -> Option<&mut Entry> {
        let (deadline, fields_due) = self
            .dict
            .get_mut(hash, key)
            .map(|e| (e.expire_field(), hash_fields_due(&e.value, now)))?;
        if deadline != 0 && self.resolve_expire(key, deadline) <= now {
            self.remove(hash, key);
            *expired += 1;
            return None;
        }
        if fields_due {
            let (n, emptied) = self.expire_hash_fields(hash, key, now, usize::MAX);
            *fields += n as u64;
            if emptied {
                return None;
            }
        }
        self.dict.get_mut(hash, key)
    }

    /// Deletes up to `max` due fields of the hash at `key`, and the key if
    /// no field is left: (fields deleted, key deleted).
    fn expire_hash_fields(&mut self, hash: u64, key: &[u8], now: u64, max: usize) -> (usize, bool) {
        self.preserve(hash, key);
        let Some(Entry {
            value: Value::Hash(h),
            ..
        }) = self.dict.get_mut(hash, key)
        else {
            return (0, false);
        };
        let n = h.expire_fields(now, max);
        if h.is_empty() {
            self.remove(hash, key);
            return (n, true);
        }
        (n, false)
    }

    /// Registers the hash at `key` in the index of hashes with field TTLs
    /// if its earliest deadline moved earlier (call after giving a field a
    /// TTL).
    pub fn index_hash_ttls(&mut self, hash: u64, key: &[u8]) {
        if let Some(Entry {
            value: Value::Hash(h),
            ..
        }) = self.dict.get_mut(hash, key)
        {
            if let Some(when) = h.take_index_update() {
                self.push_hfe(when, key);
            }
        }
    }

    fn push_hfe(&mut self, when: u64, key: &[u8]) {
        self.hfe.push(Reverse((when, key.into())));
        if self.hfe.len() > 4 * self.hfe_live.max(256) {
            self.compact_hfe();
        }
    }

    /// Drops the stale entries of the field-TTL index.
    fn compact_hfe(&mut self) {
        let dict = &self.dict;
        let mut seen = std::collections::HashSet::new();
        let live: Vec<_> = std::mem::take(&mut self.hfe)
            .into_vec()
            .into_iter()
            .filter(|Reverse((when, key))| {
                hash_indexed_at(dict, key, *when) && seen.insert((*when, key.clone()))
            })
            .collect();
        self.hfe_live = live.len();
        self.hfe = live.into();
    }

    /// Number of hashes with at least one field TTL (INFO keyspace's
    /// `subexpiry=`). Walks the index, so O(its size): for INFO, not for
    /// hot paths.
    pub fn hashes_with_field_ttls(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        for Reverse((when, key)) in self.hfe.iter() {
            if hash_indexed_at(&self.dict, key, *when) {
                seen.insert(&key[..]);
            }
        }
        seen.len()
    }

    /// Whether some hash has field TTLs registered for active expiry.
    pub fn has_hash_ttls(&self) -> bool {
        !self.hfe.is_empty()
    }

    /// Active field expiry: deletes up to `budget` due hash fields (and the
    /// hashes they empty), calling `on_change` with each key changed.
    /// Returns true if more may be due.
    pub fn expire_hash_fields_due(
        &mut self,
        now: u64,
        budget: usize,
        mut on_change: impl FnMut(&[u8], usize),
    ) -> bool {
        let mut done = 0;
        while let Some(Reverse((when, _))) = self.hfe.peek() {
            if *when > now {
                return false;
            }
            if done >= budget {
                return true;
            }
            let Some(Reverse((when, key))) = self.hfe.pop() else {
                break;
            };
            let hash = hash_bytes(&key);
            let live = matches!(self.dict.get(hash, &key),
                Some(Entry { value: Value::Hash(h), .. }) if h.indexed_at() == when);
            if !live {
                // Stale (TTLs changed, key gone or moved): cheap, but
                // counted so one call stays bounded.
                done += 1;
                continue;
            }
            let (n, emptied) = self.expire_hash_fields(hash, &key, now, budget - done);
            done += n.max(1);
            if !emptied {
                if let Some(Entry {
                    value: Value::Hash(h),
                    ..
                }) = self.dict.get_mut(hash, &key)
                {
                    if let Some(next) = h.reindex() {
                        self.hfe.push(Reverse((next, key.clone())));
                    }
                }
            }
            if n > 0 {
                on_change(&key, n);
            }
        }
        false
    }

    /// Like get_mut but never deletes (for reads that must not write, such
    /// as scanning or a replica's view).
    pub fn peek(&self, hash: u64, key: &[u8], now: u64) -> Option<&Entry> {
        live(self.dict.get(hash, key)?, &self.far, now)
    }

    /// Write-behind: marks the entry at `key` pending. Some(true) if it
    /// already was (the write needs nothing more), Some(false) if it is
    /// now, None if there is no entry (a deletion: always queued). The
    /// caller queues the key whenever this is not Some(true).
    #[inline]
    pub fn mark_pending(&mut self, hash: u64, key: &[u8]) -> Option<bool> {
        let e = self.dict.get_mut(hash, key)?;
        let was = e.pending();
        e.set_pending(true);
        Some(was)
    }

    /// Write-behind: whether the entry at `key` is marked pending.
    pub fn is_pending(&self, hash: u64, key: &[u8]) -> bool {
        self.dict.get(hash, key).is_some_and(Entry::pending)
    }

    /// Write-behind's flusher reads `key`: clears its pending mark (the
    /// next write queues it again) and returns it as `peek` would, in one
    /// lookup.
    pub fn take_pending(&mut self, hash: u64, key: &[u8], now: u64) -> Option<&Entry> {
        let e = self.dict.get_mut(hash, key)?;
        e.set_pending(false);
        live(e, &self.far, now)
    }

    /// Write-behind RESYNC: one SCAN step (`Dict::scan_mut`'s cursor) over
    /// the entries. Each not marked pending is offered to `queue`, which
    /// returns whether it queued the key; those are marked. Returns the
    /// next cursor (0: done).
    pub fn mark_pending_step(
        &mut self,
        cursor: u64,
        mut queue: impl FnMut(&[u8], &Value) -> bool,
    ) -> u64 {
        self.dict.scan_mut(cursor, |e| {
            if !e.pending() && queue(e.key(), &e.value) {
                e.set_pending(true);
            }
        })
    }

    /// Clears every pending mark (SWAPDB moved entries between databases:
    /// a mark says a key is queued under this database's number).
    pub fn clear_all_pending(&mut self) {
        let mut cursor = 0;
        loop {
            cursor = self.dict.scan_mut(cursor, |e| e.set_pending(false));
            if cursor == 0 {
                break;
            }
        }
    }

    fn resolve_expire(&self, key: &[u8], field: u64) -> u64 {
        if field == FAR_EXPIRE {
            self.far.get(key).copied().unwrap_or(u64::MAX)
        } else {
            field
        }
    }

    /// Expire time in ms of a present entry.
    pub fn expire_of(&self, e: &Entry) -> Option<u64> {
        match e.expire_field() {
            0 => None,
            f => Some(self.resolve_expire(e.key(), f)),
        }
    }

    /// Inserts or replaces, returning the old entry's value if there was one.
    /// The new key has no TTL unless `expire` is given.
    pub fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        value: Value,
        expire: Option<u64>,
        clock: u16,
    ) -> Option<Value> {
        // Overwriting keeps the node: no free and malloc per SET of a hot key.
        self.preserve(hash, key);
        let old = match self.dict.get_mut(hash, key) {
            Some(e) => {
                let had_ttl = e.expire_field() != 0;
                let far = e.expire_field() == FAR_EXPIRE;
                e.set_expire_field(0);
                e.set_access_clock(clock);
                let old = std::mem::replace(&mut e.value, value);
                if had_ttl {
                    self.expiry.live -= 1;
                }
                if far {
                    self.far.remove(key);
                }
                Some(old)
            }
            None => {
                let e = self.dict.insert_new(hash, Entry::new(key, value));
                e.set_access_clock(clock);
                // Created now: not part of a save that is running.
                e.set_mark(self.snap.parity());
                None
            }
        };
        if let Some(when) = expire {
            self.set_expire(hash, key, Some(when));
        }
        self.index_moved_hash(hash, key);
        old
    }

    /// A hash stored whole (RENAME, MOVE, COPY, RESTORE) keeps its field
    /// TTLs: register it under its new key.
    fn index_moved_hash(&mut self, hash: u64, key: &[u8]) {
        if let Some(Entry {
            value: Value::Hash(h),
            ..
        }) = self.dict.get_mut(hash, key)
        {
            if let Some(when) = h.reindex() {
                self.push_hfe(when, key);
            }
        }
    }

    /// Sets or clears the TTL of a present key. Returns false if absent.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], when: Option<u64>) -> bool {
        self.preserve(hash, key);
        let Some(e) = self.dict.get_mut(hash, key) else {
            return false;
        };
        let had = e.expire_field() != 0;
        match when {
            None => {
                e.set_expire_field(0);
                if had {
                    self.expiry.live -= 1;
                }
                self.far.remove(key);
            }
            Some(when) => {
                let when = when.max(1);
                if when >= FAR_EXPIRE {
                    e.set_expire_field(FAR_EXPIRE);
                    self.far.insert(key.into(), when);
                } else {
                    e.set_expire_field(when);
                    self.far.remove(key);
                }
                if !had {
                    self.expiry.live += 1;
                }
                self.expiry.heap.push(Reverse((when, hash)));
                self.compact_expiry();
            }
        }
        true
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        self.preserve(hash, key);
        let e = self.dict.remove(hash, key)?;
        if e.expire_field() != 0 {
            self.expiry.live -= 1;
            if e.expire_field() == FAR_EXPIRE {
                self.far.remove(key);
            }
        }
        Some(e)
    }

    /// Call before changing or deleting the entry at `key` in place: if a
    /// running save does not have it yet, it gets the value as it is now
    /// (see `snapshot.rs`). One relaxed load when no save runs.
    #[inline]
    pub fn preserve(&mut self, hash: u64, key: &[u8]) {
        if self.snap.active() {
            self.preserve_slow(hash, key);
        }
    }

    #[cold]
    fn preserve_slow(&mut self, hash: u64, key: &[u8]) {
        let Db {
            dict, far, snap, ..
        } = self;
        if let Some(e) = dict.get_mut(hash, key) {
            if snap.owes(e) {
                let expire = expire_time(far, e);
                snap.preserve(self.index, e, expire);
            }
        }
    }

    /// One step of a save's walk over this database: every entry in the
    /// buckets at `cursor` that the save does not have yet is passed to
    /// `save` (with its expire time) and marked. Returns the next cursor,
    /// 0 at the end.
    pub fn save_step(&mut self, cursor: u64, mut save: impl FnMut(&Entry, Option<u64>)) -> u64 {
        let Db {
            dict, far, snap, ..
        } = self;
        let parity = snap.parity();
        dict.scan_mut(cursor, |e| {
            if e.mark() != parity {
                save(e, expire_time(far, e));
                e.set_mark(parity);
            }
        })
    }

    /// Preserves every entry a running save does not have yet (before a
    /// SWAPDB moves them to another database number).
    pub fn settle(&mut self) {
        if !self.snap.active() {
            return;
        }
        let mut cursor = 0;
        loop {
            let Db {
                dict, far, snap, ..
            } = self;
            let index = self.index;
            cursor = dict.scan_mut(cursor, |e| {
                if snap.owes(e) {
                    let expire = expire_time(far, e);
                    snap.preserve(index, e, expire);
                }
            });
            if cursor == 0 {
                break;
            }
        }
    }

    /// This database's number (changed by SWAPDB).
    pub fn set_index(&mut self, index: usize) {
        self.index = index;
    }

    fn compact_expiry(&mut self) {
        let x = &mut self.expiry;
        if x.heap.len() > 64 && x.heap.len() > 2 * x.live {
            let far = &self.far;
            x.heap = self
                .dict
                .iter()
                .filter(|e| e.expire_field() != 0)
                .map(|e| {
                    let f = e.expire_field();
                    let when = if f == FAR_EXPIRE {
                        far.get(e.key()).copied().unwrap_or(u64::MAX)
                    } else {
                        f
                    };
                    Reverse((when, hash_bytes(e.key())))
                })
                .collect();
        }
    }

    /// Deletes up to `budget` keys whose time has come, calling `on_expire`
    /// with each. Returns true if more may be due.
    pub fn expire_due(
        &mut self,
        now: u64,
        budget: usize,
        mut on_expire: impl FnMut(&Entry),
    ) -> bool {
        let mut done = 0;
        while let Some(&Reverse((when, hash))) = self.expiry.heap.peek() {
            if when > now {
                return false;
            }
            if done >= budget {
                return true;
            }
            self.expiry.heap.pop();
            let far = &self.far;
            let stale_check = |e: &Entry| {
                let f = e.expire_field();
                f != 0
                    && (if f == FAR_EXPIRE {
                        far.get(e.key()).copied() == Some(when)
                    } else {
                        f == when
                    })
            };
            if let Some(mut e) = self.dict.remove_by_hash(hash, stale_check) {
                self.expiry.live -= 1;
                if e.expire_field() == FAR_EXPIRE {
                    self.far.remove(e.key());
                }
                if self.snap.owes(&e) {
                    self.snap.preserve(self.index, &mut e, Some(when));
                }
                on_expire(&e);
                done += 1;
            }
        }
        false
    }

    pub fn dict(&self) -> &Dict<Entry> {
        &self.dict
    }

    /// Advances an ongoing rehash by up to `n` buckets.
    pub fn rehash(&mut self, n: usize) -> bool {
        self.dict.rehash(n)
    }

    /// Empties the database, returning the old contents so the caller can
    /// drop them where it suits (in the background for FLUSH ... ASYNC).
    pub fn take(&mut self) -> Db {
        let fresh = Db::new(self.index, self.snap.clone());
        let old = std::mem::replace(self, fresh);
        // A running save still owes the old contents: it takes them over.
        self.snap.detach(self.index, old).unwrap_or_default()
    }
}

/// The absolute expire time of `e`, whose far-future times live in `far`.
fn expire_time(far: &HashMap<Box<[u8]>, u64>, e: &Entry) -> Option<u64> {
    match e.expire_field() {
        0 => None,
        FAR_EXPIRE => Some(far.get(e.key()).copied().unwrap_or(u64::MAX)),
        f => Some(f),
    }
}

/// `e` as readers see it at `now`: None once its TTL has passed, or if it
/// is a hash whose fields have all expired.
fn live<'a>(e: &'a Entry, far: &HashMap<Box<[u8]>, u64>, now: u64) -> Option<&'a Entry> {
    if expire_time(far, e).is_some_and(|t| t <= now) {
        return None;
    }
    if let Value::Hash(h) = &e.value {
        if h.fields_due(now) && h.live_len(now) == 0 {
            return None;
        }
    }
    Some(e)
}

/// Whether the hash at `key` has field TTLs and is registered in the
/// field-TTL index under `when` (so an index entry (when, key) is live).
fn hash_indexed_at(dict: &Dict<Entry>, key: &[u8], when: u64) -> bool {
    matches!(dict.get(hash_bytes(key), key),
        Some(Entry { value: Value::Hash(h), .. })
            if h.indexed_at() == when && h.volatile_fields() > 0)
}

#[inline]
fn hash_fields_due(v: &Value, now: u64) -> bool {
    matches!(v, Value::Hash(h) if h.fields_due(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::StrValue;

    fn v(s: &str) -> Value {
        Value::Str(StrValue::from_bytes(s.as_bytes()))
    }

    fn put(db: &mut Db, k: &str, exp: Option<u64>) {
        db.insert(hash_bytes(k.as_bytes()), k.as_bytes(), v("x"), exp, 0);
    }

    #[test]
    fn lazy_and_active_expiry() {
        let mut db = Db::default();
        put(&mut db, "a", Some(100));
        put(&mut db, "b", Some(200));
        put(&mut db, "c", None);
        let mut n = 0;
        assert!(db.get_mut(hash_bytes(b"a"), b"a", 150, &mut n).is_none());
        assert_eq!(n, 1);
        let mut gone = vec![];
        db.expire_due(250, 100, |e| gone.push(e.key().to_vec()));
        assert_eq!(gone, vec![b"b".to_vec()]);
        assert_eq!(db.len(), 1);
        assert_eq!(db.volatile(), 0);
    }

    #[test]
    fn ttl_churn_keeps_index_bounded() {
        let mut db = Db::default();
        for round in 0..1000u64 {
            for k in 0..10 {
                put(&mut db, &format!("k{k}"), Some(1_000_000 + round));
            }
        }
        assert_eq!(db.volatile(), 10);
        assert!(db.expiry.heap.len() <= 128, "{}", db.expiry.heap.len());
    }

    #[test]
    fn changed_ttl_is_not_expired_early() {
        let mut db = Db::default();
        put(&mut db, "a", Some(100));
        db.set_expire(hash_bytes(b"a"), b"a", Some(1000));
        db.expire_due(500, 100, |_| panic!("expired early"));
        assert_eq!(db.len(), 1);
        let mut n = 0;
        db.expire_due(1000, 100, |_| n += 1);
        assert_eq!(n, 1);
    }

    fn hash_with_ttls(db: &mut Db, k: &str, ttls: &[(&str, Option<u64>)]) {
        let lim = crate::types::hash::Limits {
            max_entries: 128,
            max_value: 64,
        };
        let mut h = crate::types::HashValue::new();
        for (f, _) in ttls {
            h.set(f.as_bytes(), b"v", lim);
        }
        for (f, t) in ttls {
            if let Some(t) = t {
                h.set_field_ttl(f.as_bytes(), *t);
            }
        }
        db.insert(
            hash_bytes(k.as_bytes()),
            k.as_bytes(),
            Value::Hash(h),
            None,
            0,
        );
    }

    fn hash_len(db: &mut Db, k: &str) -> Option<usize> {
        match &db.dict.get(hash_bytes(k.as_bytes()), k.as_bytes())?.value {
            Value::Hash(h) => Some(h.len()),
            _ => None,
        }
    }

    #[test]
    fn hash_fields_expire_lazily_and_actively() {
        let mut db = Db::default();
        hash_with_ttls(&mut db, "a", &[("x", Some(100)), ("y", None)]);
        hash_with_ttls(&mut db, "b", &[("x", Some(100)), ("y", Some(300))]);
        hash_with_ttls(&mut db, "c", &[("x", Some(200))]);
        assert_eq!(db.hashes_with_field_ttls(), 3);
        // Lazy: a lookup deletes the due fields, and an emptied hash.
        let (mut keys, mut fields) = (0, 0);
        let h = hash_bytes(b"c");
        assert!(db.lookup(h, b"c", 150, &mut keys, &mut fields).is_some());
        assert_eq!(fields, 0);
        assert!(db.peek(h, b"c", 250).is_none(), "all fields due: not live");
        assert!(db.lookup(h, b"c", 250, &mut keys, &mut fields).is_none());
        assert_eq!((keys, fields), (0, 1));
        // Active: the index finds what is due, in deadline order.
        let mut changed = vec![];
        assert!(!db.expire_hash_fields_due(150, 100, |k, n| changed.push((k.to_vec(), n))));
        changed.sort();
        assert_eq!(changed, vec![(b"a".to_vec(), 1), (b"b".to_vec(), 1)]);
        assert_eq!(hash_len(&mut db, "a"), Some(1));
        assert_eq!(db.hashes_with_field_ttls(), 1);
        db.expire_hash_fields_due(300, 100, |_, _| {});
        assert_eq!(hash_len(&mut db, "b"), None, "emptied hash deleted");
        assert!(!db.has_hash_ttls());
    }

    #[test]
    fn field_ttl_index_stays_bounded_under_churn() {
        let mut db = Db::default();
        for round in 0..200u64 {
            for k in 0..10 {
                let key = format!("k{k}");
                hash_with_ttls(&mut db, &key, &[("x", Some(1_000_000 - round))]);
            }
        }
        assert_eq!(db.hashes_with_field_ttls(), 10);
        assert!(db.hfe.len() <= 4 * 256 + 1, "{}", db.hfe.len());
        let mut n = 0;
        db.expire_hash_fields_due(u64::MAX, usize::MAX, |_, f| n += f);
        assert_eq!((n, db.len()), (10, 0));
    }

    #[test]
    fn moved_hash_is_indexed_under_its_new_key() {
        let mut db = Db::default();
        hash_with_ttls(&mut db, "a", &[("x", Some(100)), ("y", None)]);
        let e = db.remove(hash_bytes(b"a"), b"a").unwrap();
        db.insert(hash_bytes(b"b"), b"b", e.value, None, 0);
        db.expire_hash_fields_due(100, 100, |_, _| {});
        assert_eq!(hash_len(&mut db, "b"), Some(1));
    }

    #[test]
    fn far_future_expire_is_exact() {
        let mut db = Db::default();
        let far = u64::MAX / 4;
        put(&mut db, "a", Some(far));
        let e = db.peek(hash_bytes(b"a"), b"a", 0).unwrap();
        assert_eq!(db.expire_of(e), Some(far));
    }
}
