//! maxmemory: when the allocator's live bytes exceed `maxmemory`, keys are
//! evicted by the configured policy before the next command runs, as Redis
//! does in processCommand. Candidates are sampled (`maxmemory-samples` per
//! round, from random shards) and the best by policy goes: oldest access
//! clock for LRU, lowest access count for LFU, soonest expiry for TTL.
//!
//! Every key has one 16-bit access clock. Under an LRU (or no) policy it
//! holds seconds modulo 2^16 (OBJECT IDLETIME); under an LFU policy it is
//! Redis's LFU counter, see [`lfu`].

use crate::ctx::CmdError;
use crate::server::Server;
use granary_keyspace::{alloc::used_memory, hash_bytes, SHARDS};
use granary_persistence::file::Access;
use granary_persistence::snapshot::AccessOf;
use rand::Rng;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

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
    let now_ms = granary_keyspace::now_ms();
    let now_clock = (now_ms / 1000) as u16;
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
                    Rank::Lfu => lfu_freq(server, e.access_clock(), now_ms) as u64,
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

/// A command's instant for its access clocks: an AOF replay runs commands
/// at instant 0 (so that nothing expires meanwhile), but the keys it makes
/// or reads are used now, as after Redis loads its AOF.
#[inline]
pub(crate) fn clock_time(now_ms: u64) -> u64 {
    if now_ms == 0 {
        granary_keyspace::now_ms()
    } else {
        now_ms
    }
}

/// The access clock of a key created at `now_ms`: its LFU counter's start
/// under an LFU policy, else the time in seconds.
#[inline]
pub fn new_clock(server: &Server, now_ms: u64) -> u16 {
    let now_ms = clock_time(now_ms);
    if server.config.hot.lfu.load(Relaxed) {
        lfu::new_clock(now_ms)
    } else {
        (now_ms / 1000) as u16
    }
}

/// The access clock `old` after an access at `now_ms` (Redis's
/// updateLFU under an LFU policy).
#[inline]
pub fn touched_clock(server: &Server, old: u16, now_ms: u64) -> u16 {
    let now_ms = clock_time(now_ms);
    let hot = &server.config.hot;
    if hot.lfu.load(Relaxed) {
        let factor = hot.lfu_log_factor.load(Relaxed);
        let decay = hot.lfu_decay_time.load(Relaxed);
        lfu::touched(old, now_ms, factor, decay, rand::random())
    } else {
        (now_ms / 1000) as u16
    }
}

/// The access clock of a key loaded at `now_ms` with the IDLE or FREQ
/// record a file had for it (Redis's objectSetLRUOrLFU: FREQ under an LFU
/// policy, IDLE under any other; else as a new key).
pub fn loaded_clock(server: &Server, access: Option<Access>, now_ms: u64) -> u16 {
    let lfu = server.config.hot.lfu.load(Relaxed);
    match access {
        Some(Access::Freq(f)) if lfu => lfu::with_counter(now_ms, f),
        Some(Access::Idle(secs)) if !lfu => (now_ms / 1000).wrapping_sub(secs) as u16,
        _ => new_clock(server, now_ms),
    }
}

/// What a save writes before each key under the policy in force (Redis's
/// rdbSaveKeyValuePair): FREQ under LFU, IDLE under LRU, else nothing.
pub fn access_of(server: &Server, now_ms: u64) -> Option<AccessOf> {
    let policy = server.config.get("maxmemory-policy").unwrap_or_default();
    if policy.ends_with("lfu") {
        let decay = server.config.hot.lfu_decay_time.load(Relaxed);
        Some(Arc::new(move |clock| {
            Some(Access::Freq(lfu::counter(clock, now_ms, decay)))
        }))
    } else if policy.ends_with("lru") {
        let secs = (now_ms / 1000) as u16;
        Some(Arc::new(move |clock| {
            Some(Access::Idle(u64::from(secs.wrapping_sub(clock))))
        }))
    } else {
        None
    }
}

/// The LFU counter an access clock holds at `now_ms`, decayed
/// (LFUDecrAndReturn): what OBJECT FREQ shows and LFU eviction ranks by.
pub fn lfu_freq(server: &Server, clock: u16, now_ms: u64) -> u8 {
    lfu::counter(
        clock,
        now_ms,
        server.config.hot.lfu_decay_time.load(Relaxed),
    )
}

/// Redis's LFU counter (evict.c) in the 16-bit access clock: the low byte
/// is the logarithmic counter (LFULogIncr: an access increments it with
/// probability 1 / ((counter - 5) * lfu-log-factor + 1), up to 255), the
/// high byte the minute of the last decrement, modulo 256 (Redis keeps 16
/// bits of minutes). The counter loses one per lfu-decay-time minutes
/// elapsed since (LFUDecrAndReturn), applied when it is read or
/// incremented. Elapsed minutes are taken modulo 256: a key left alone
/// longer than 4 h 16 min may look idle for less (Redis: 45 days), so it
/// decays less than it should.
pub mod lfu {
    /// LFU_INIT_VAL: the counter of a new key, so it is not evicted at once.
    pub const INIT_VAL: u8 = 5;

    fn minutes(now_ms: u64) -> u8 {
        (now_ms / 60_000) as u8
    }

    fn pack(minutes: u8, counter: u8) -> u16 {
        (minutes as u16) << 8 | counter as u16
    }

    /// The clock of a new key.
    pub fn new_clock(now_ms: u64) -> u16 {
        with_counter(now_ms, INIT_VAL)
    }

    /// A clock holding `counter` as of `now_ms` (RESTORE ... FREQ).
    pub fn with_counter(now_ms: u64, counter: u8) -> u16 {
        pack(minutes(now_ms), counter)
    }

    /// The counter, decayed by the periods of `decay` minutes elapsed
    /// (none if `decay` is 0).
    pub fn counter(clock: u16, now_ms: u64, decay: i64) -> u8 {
        let counter = clock as u8;
        let elapsed = minutes(now_ms).wrapping_sub((clock >> 8) as u8) as u64;
        let periods = u64::try_from(decay)
            .ok()
            .and_then(|d| elapsed.checked_div(d))
            .unwrap_or(0);
        counter.saturating_sub(periods.min(255) as u8)
    }

    /// LFULogIncr with `r` uniform in [0, 1).
    pub fn log_incr(counter: u8, factor: i64, r: f64) -> u8 {
        if counter == 255 {
            return 255;
        }
        let base = counter.saturating_sub(INIT_VAL) as f64;
        let p = 1.0 / (base * factor.max(0) as f64 + 1.0);
        if r < p {
            counter + 1
        } else {
            counter
        }
    }

    /// updateLFU: decay, then count this access.
    pub fn touched(clock: u16, now_ms: u64, factor: i64, decay: i64, r: f64) -> u16 {
        let c = log_incr(counter(clock, now_ms, decay), factor, r);
        pack(minutes(now_ms), c)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const MIN: u64 = 60_000;

        #[test]
        fn counts_decays_and_wraps() {
            let t0 = 1_000 * MIN;
            let mut c = new_clock(t0);
            assert_eq!(counter(c, t0, 1), INIT_VAL);
            // lfu-log-factor 0: every access counts, up to 255.
            for _ in 0..300 {
                c = touched(c, t0, 0, 1, 0.999);
            }
            assert_eq!(counter(c, t0, 1), 255);
            // One per lfu-decay-time minutes; decay 0 never.
            assert_eq!(counter(c, t0 + 10 * MIN, 1), 245);
            assert_eq!(counter(c, t0 + 10 * MIN, 5), 253);
            assert_eq!(counter(c, t0 + 200 * MIN, 0), 255);
            assert_eq!(counter(c, t0 + 255 * MIN, 1), 0);
            // The documented wrap: 256 minutes look like none.
            assert_eq!(counter(c, t0 + 256 * MIN, 1), 255);
            // Above INIT_VAL, a higher factor makes increments rarer.
            let ten = with_counter(t0, 10);
            assert_eq!(counter(touched(ten, t0, 10, 1, 0.05), t0, 1), 10);
            assert_eq!(counter(touched(ten, t0, 10, 1, 0.01), t0, 1), 11);
            // An access writes the current minute, so decay restarts.
            let later = touched(with_counter(t0, 20), t0 + 3 * MIN, 0, 1, 0.0);
            assert_eq!(counter(later, t0 + 3 * MIN, 1), 18);
        }
    }
}
