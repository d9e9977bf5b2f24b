//! maxmemory: when the allocator's live bytes exceed `maxmemory`, keys are
//! evicted by the configured policy before the next command runs, as Redis
//! does in processCommand. Candidates are sampled (`maxmemory-samples` per
//! round, from random shards) and the best by policy goes: oldest access
//! clock for LRU, lowest access count for LFU, soonest expiry for TTL.

use crate::ctx::CmdError;
use crate::server::Server;
use granary_keyspace::{alloc::used_memory, hash_bytes, SHARDS};
use rand::Rng;
use std::sync::atomic::Ordering::Relaxed;

pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Upper bound on evictions per command, so one command never stalls for
/// long even if something else keeps allocating.
const MAX_EVICTIONS_PER_CALL: usize = 10_000;

#[derive(Clone, Copy, PartialEq)]
enum Pool {
    AllKeys,
    Volatile,
}

#[derive(Clone, Copy, PartialEq)]
enum Rank {
    Lru,
    Lfu,
    Ttl,
    Random,
}

fn policy(server: &Server) -> Option<(Pool, Rank)> {
    let p = server.config.get("maxmemory-policy").unwrap_or_default();
    let (pool, rank) = p.split_once('-')?;
    let pool = if pool == "allkeys" {
        Pool::AllKeys
    } else {
        Pool::Volatile
    };
    let rank = match rank {
        "lru" => Rank::Lru,
        "lfu" => Rank::Lfu,
        "ttl" => Rank::Ttl,
        _ => Rank::Random,
    };
    Some((pool, rank))
}

/// Frees memory down to maxmemory if needed. Err(OOM) if still above it and
/// nothing more can be evicted (or the policy is noeviction).
pub fn ensure_memory(server: &Server) -> Result<(), CmdError> {
    let limit = server.config.hot.maxmemory.load(Relaxed) as usize;
    if limit == 0 || used_memory() <= limit {
        return Ok(());
    }
    let Some((pool, rank)) = policy(server) else {
        return Err(OOM.into());
    };
    let samples = server.config.get_int("maxmemory-samples").clamp(1, 64) as usize;
    let mut rng = rand::thread_rng();
    for _ in 0..MAX_EVICTIONS_PER_CALL {
        if used_memory() <= limit {
            return Ok(());
        }
        if !evict_one(server, pool, rank, samples, &mut rng) {
            return Err(OOM.into());
        }
    }
    if used_memory() <= limit {
        Ok(())
    } else {
        Err(OOM.into())
    }
}

/// A sampled candidate: where it lives and how evictable it is (lower first).
struct Candidate {
    shard: usize,
    db: usize,
    key: Vec<u8>,
    score: u64,
}

fn evict_one(server: &Server, pool: Pool, rank: Rank, samples: usize, rng: &mut impl Rng) -> bool {
    let mut best: Option<Candidate> = None;
    let now_clock = (granary_keyspace::now_ms() / 1000) as u16;
    // Look at a few shards: enough for `samples` candidates in a normal
    // keyspace, bounded when most shards are empty.
    for _ in 0..samples.max(8) {
        let si = rng.gen_range(0..SHARDS);
        let mut shard = server.keyspace.lock_shard(si);
        for (dbi, db) in shard.dbs.iter_mut().enumerate() {
            if db.is_empty() || (pool == Pool::Volatile && db.volatile() == 0) {
                continue;
            }
            for _ in 0..samples {
                let Some(e) = db.dict().random(rng) else {
                    break;
                };
                let expire = db.expire_of(e);
                if pool == Pool::Volatile && expire.is_none() {
                    continue;
                }
                let score = match rank {
                    // Older access = larger idle = evict first: invert.
                    Rank::Lru => u16::MAX as u64 - now_clock.wrapping_sub(e.access_clock()) as u64,
                    Rank::Lfu => e.access_clock() as u64,
                    Rank::Ttl => expire.unwrap_or(u64::MAX),
                    Rank::Random => rng.gen(),
                };
                if best.as_ref().is_none_or(|b| score < b.score) {
                    best = Some(Candidate {
                        shard: si,
                        db: dbi,
                        key: e.key().to_vec(),
                        score,
                    });
                }
            }
        }
        if best.is_some() && rank == Rank::Random {
            break;
        }
    }
    let Some(c) = best else { return false };
    let mut shard = server.keyspace.lock_shard(c.shard);
    let h = hash_bytes(&c.key);
    match shard.dbs[c.db].remove(h, &c.key) {
        Some(entry) => {
            server.clients.watches.touch(c.db, &c.key);
            crate::notify::notify(
                server,
                crate::notify::class::EVICTED,
                "evicted",
                &c.key,
                c.db,
            );
            crate::tracking::invalidate_key(server, &c.key);
            // An evicted key's rows follow it (write-behind).
            server.writebehind.on_write(c.db, &c.key);
            crate::aof::deleted(server, c.db, &c.key);
            drop(shard);
            server.stats.evicted_keys.fetch_add(1, Relaxed);
            server.dirty.fetch_add(1, Relaxed);
            if entry.value.free_effort() > 64 {
                server.lazyfree.free(entry);
            }
            true
        }
        // Deleted meanwhile: that freed memory too.
        None => true,
    }
}
