//! One logical database's share of one shard: the key dict plus the expiry
//! index.

use crate::dict::Dict;
use crate::hash::hash_bytes;
use crate::value::{Entry, Value, FAR_EXPIRE};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
    /// Exact expire times too late for the 48-bit field (rare).
    far: HashMap<Box<[u8]>, u64>,
}

/// Outcome of looking a key up.
pub enum Lookup<'a> {
    Found(&'a mut Entry),
    Missing,
}

impl Db {
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
        let deadline = self.dict.get_mut(hash, key).map(|e| e.expire_field())?;
        if deadline != 0 && self.resolve_expire(key, deadline) <= now {
            self.remove(hash, key);
            *expired += 1;
            return None;
        }
        self.dict.get_mut(hash, key)
    }

    /// Like get_mut but never deletes (for reads that must not write, such
    /// as scanning or a replica's view).
    pub fn peek(&self, hash: u64, key: &[u8], now: u64) -> Option<&Entry> {
        let e = self.dict.get(hash, key)?;
        let f = e.expire_field();
        if f != 0 && self.resolve_expire(key, f) <= now {
            return None;
        }
        Some(e)
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
                self.dict
                    .insert_new(hash, Entry::new(key, value))
                    .set_access_clock(clock);
                None
            }
        };
        if let Some(when) = expire {
            self.set_expire(hash, key, Some(when));
        }
        old
    }

    /// Sets or clears the TTL of a present key. Returns false if absent.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], when: Option<u64>) -> bool {
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
        let e = self.dict.remove(hash, key)?;
        if e.expire_field() != 0 {
            self.expiry.live -= 1;
            if e.expire_field() == FAR_EXPIRE {
                self.far.remove(key);
            }
        }
        Some(e)
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
            if let Some(e) = self.dict.remove_by_hash(hash, stale_check) {
                self.expiry.live -= 1;
                if e.expire_field() == FAR_EXPIRE {
                    self.far.remove(e.key());
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
        std::mem::take(self)
    }
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

    #[test]
    fn far_future_expire_is_exact() {
        let mut db = Db::default();
        let far = u64::MAX / 4;
        put(&mut db, "a", Some(far));
        let e = db.peek(hash_bytes(b"a"), b"a", 0).unwrap();
        assert_eq!(db.expire_of(e), Some(far));
    }
}
