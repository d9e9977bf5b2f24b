//! Background upkeep on its own thread, `hz` times a second: active expiry
//! (so keys with a TTL that nobody reads still go away and memory stays
//! bounded under TTL churn), incremental rehashing of idle tables, and the
//! instantaneous ops/sec sample. Each step holds one shard's lock for a
//! bounded amount of work, so commands never wait long behind it.

use crate::server::Server;
use granary_keyspace::{now_ms, SHARDS};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Keys expired per shard and database per lock hold.
const EXPIRE_BATCH: usize = 200;
/// Buckets rehashed per shard and database per lock hold.
const REHASH_BATCH: usize = 1000;

pub fn start(server: &Arc<Server>) {
    let weak = Arc::downgrade(server);
    std::thread::Builder::new()
        .name("granary-cron".into())
        .spawn(move || run(weak))
        .expect("spawn cron thread");
}

fn run(server: Weak<Server>) {
    let mut last_ops = 0u64;
    let mut last_sample = Instant::now();
    loop {
        let Some(s) = server.upgrade() else { return };
        if s.shutting_down.load(Relaxed) {
            return;
        }
        let hz = s.config.hot.hz.load(Relaxed).clamp(1, 500);
        let cycle_start = Instant::now();
        // Expire until nothing is due or a quarter of the period is spent.
        let budget = Duration::from_millis(250 / hz);
        loop {
            let more = expire_pass(&s);
            if !more || cycle_start.elapsed() > budget {
                break;
            }
        }
        crate::rdb::check_save_points(&s);
        crate::aof::check_auto_rewrite(&s);
        if s.config.get_bool("activerehashing") {
            rehash_pass(&s);
        }
        let elapsed = last_sample.elapsed();
        if elapsed >= Duration::from_millis(100) {
            let ops = s.stats.commands_processed.load(Relaxed);
            let rate = (ops.saturating_sub(last_ops)) as f64 / elapsed.as_secs_f64();
            s.stats.instantaneous_ops.store(rate as u64, Relaxed);
            last_ops = ops;
            last_sample = Instant::now();
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(1000 / hz));
    }
}

/// One pass over all shards; true if some database still has due keys.
fn expire_pass(s: &Server) -> bool {
    let mut more = false;
    for i in 0..SHARDS {
        let now = now_ms();
        let mut shard = s.keyspace.lock_shard(i);
        let mut expired = 0;
        for (dbi, db) in shard.dbs.iter_mut().enumerate() {
            if db.volatile() > 0 {
                more |= db.expire_due(now, EXPIRE_BATCH, |e| {
                    expired += 1;
                    crate::ctx::key_expired(s, dbi, e.key());
                });
            }
            if db.has_hash_ttls() {
                // Hash fields with a TTL that nobody reads (HEXPIRE & co.).
                let mut changed = Vec::new();
                more |= db.expire_hash_fields_due(now, EXPIRE_BATCH, |key, _| {
                    crate::ctx::notify_modified(s, dbi, key);
                    changed.push(key.to_vec());
                });
                for key in changed {
                    let gone = db
                        .peek(granary_keyspace::hash_bytes(&key), &key, now)
                        .is_none();
                    crate::ctx::hash_fields_expired(s, dbi, &key, gone);
                }
            }
        }
        drop(shard);
        if expired > 0 {
            s.stats.expired_keys.fetch_add(expired, Relaxed);
        }
    }
    more
}

fn rehash_pass(s: &Server) {
    let mut courtesy = granary_keyspace::courtesy::Courtesy::default();
    for i in 0..SHARDS {
        {
            let mut shard = s.keyspace.lock_shard(i);
            for db in shard.dbs.iter_mut() {
                db.rehash(REHASH_BATCH);
            }
        }
        courtesy.step();
    }
}
