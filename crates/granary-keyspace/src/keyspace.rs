//! The sharded keyspace: every database is split over `SHARDS` shards by key
//! hash, each shard behind its own mutex. A command locks the shards of its
//! keys in ascending order (so two multi-key commands cannot deadlock) and
//! holds them for its whole execution, which makes every command atomic,
//! multi-shard ones included. MULTI/EXEC, scripts and whole-keyspace
//! commands lock every shard.

use crate::db::Db;
use crate::hash::hash_bytes;
use crate::snapshot::Snapshot;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;
use std::sync::Arc;

pub const SHARD_BITS: u32 = 6;
pub const SHARDS: usize = 1 << SHARD_BITS;

#[inline]
pub fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

pub struct Shard {
    pub dbs: Box<[Db]>,
}

impl Shard {
    #[inline]
    pub fn db(&mut self, i: usize) -> &mut Db {
        &mut self.dbs[i]
    }

    /// SWAPDB's part in this shard. A running save first takes what it
    /// still needs of both, under their old numbers.
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        self.dbs[a].settle();
        self.dbs[b].settle();
        self.dbs.swap(a, b);
        self.dbs[a].set_index(a);
        self.dbs[b].set_index(b);
    }
}

pub struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    databases: usize,
    snapshot: Arc<Snapshot>,
}

/// The shards a command holds. Dropping it releases them.
pub struct Locked<'a> {
    guards: SmallVec<[(usize, MutexGuard<'a, Shard>); 2]>,
    all: bool,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        let snapshot = Arc::new(Snapshot::default());
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    dbs: (0..databases)
                        .map(|i| Db::new(i, snapshot.clone()))
                        .collect(),
                })
            })
            .collect();
        Keyspace {
            shards,
            databases,
            snapshot,
        }
    }

    /// The snapshot state (BGSAVE's copy-on-write bookkeeping).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Locks the shards holding these key hashes, in ascending shard order.
    pub fn lock_hashes(&self, hashes: &[u64]) -> Locked<'_> {
        let mut idx: SmallVec<[usize; 4]> = hashes.iter().map(|&h| shard_of(h)).collect();
        idx.sort_unstable();
        idx.dedup();
        Locked {
            guards: idx
                .into_iter()
                .map(|i| (i, self.shards[i].lock()))
                .collect(),
            all: false,
        }
    }

    /// Locks the one shard holding this key hash (the common case).
    pub fn lock_one(&self, hash: u64) -> Locked<'_> {
        let i = shard_of(hash);
        let mut guards = SmallVec::new();
        guards.push((i, self.shards[i].lock()));
        Locked { guards, all: false }
    }

    pub fn lock_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Locked<'_> {
        let hashes: SmallVec<[u64; 4]> = keys.into_iter().map(hash_bytes).collect();
        self.lock_hashes(&hashes)
    }

    pub fn lock_all(&self) -> Locked<'_> {
        Locked {
            guards: self
                .shards
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.lock()))
                .collect(),
            all: true,
        }
    }

    /// Locks one shard by index (for background work that walks shards).
    pub fn lock_shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock()
    }
}

impl<'a> Locked<'a> {
    pub fn holds_all(&self) -> bool {
        self.all
    }

    /// The shard for a key hash. The caller must have locked it: the command
    /// table declares every key a command touches, and the dispatcher locks
    /// them, so a miss here is a bug in the table, reported by a panic that
    /// the dispatcher turns into an error reply.
    #[inline]
    pub fn shard(&mut self, hash: u64) -> &mut Shard {
        let want = shard_of(hash);
        if self.all {
            return &mut self.guards[want].1;
        }
        for (i, g) in self.guards.iter_mut() {
            if *i == want {
                return g;
            }
        }
        panic!("shard {want} used without being locked");
    }

    /// Shard `i` by index, when this lock holds every shard (MULTI/EXEC and
    /// whole-keyspace commands); None if it holds only some.
    pub fn shard_at(&mut self, i: usize) -> Option<&mut Shard> {
        if self.all {
            self.guards.get_mut(i).map(|(_, g)| &mut **g)
        } else {
            None
        }
    }

    pub fn shards(&mut self) -> impl Iterator<Item = &mut Shard> + use<'_, 'a> {
        self.guards.iter_mut().map(|(_, g)| &mut **g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn multi_key_locks_do_not_deadlock() {
        let ks = Arc::new(Keyspace::new(1));
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i}").into_bytes()).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ks = ks.clone();
                let keys = keys.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let a = &keys[(i * 7 + t) % 200];
                        let b = &keys[(i * 13 + t * 3) % 200];
                        let mut l = ks.lock_keys([a.as_slice(), b.as_slice()]);
                        l.shard(hash_bytes(a));
                        l.shard(hash_bytes(b));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
