//! The flusher thread: waits for the interval, the batch size or a FLUSH,
//! takes the pending set, turns it into operations by reading each key's
//! current state, and writes them in chunks, one transaction each. A
//! failed chunk puts the whole batch back (replaying what was committed is
//! harmless: upserts are idempotent and appended rows carry their ids) and
//! the next attempt waits with exponential backoff.

use crate::model::{self, key_type, Op};
use crate::pending::Batch;
use crate::rules::RuleSet;
use crate::sink::{self, Sink};
use crate::WriteBehind;
use granary_keyspace::{hash_bytes, now_ms, shard_of, Keyspace};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How the flusher reaches the server without depending on the command
/// layer: the server implements this, holding itself weakly.
pub trait Source: Send + Sync + 'static {
    /// Runs `f` with the write-behind state and the keyspace; false once
    /// the server is gone (the flusher then stops).
    fn with(&self, f: &mut dyn FnMut(&WriteBehind, &Keyspace)) -> bool;
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The flusher's own state between cycles.
struct Flusher {
    sink: Option<Box<dyn Sink>>,
    /// Rules version whose tables are ready.
    prepared: u64,
    next_due: Instant,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// Starts the flusher thread; it runs `init` first (the server lowers its
/// priority there, so that under full load commands go first and the
/// backlog grows instead).
pub fn start(source: impl Source, init: fn()) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("writebehind".into())
        .spawn(move || {
            init();
            let mut f = Flusher {
                sink: None,
                prepared: 0,
                next_due: Instant::now(),
                backoff: Duration::ZERO,
                retry_at: None,
            };
            let mut stop = false;
            while !stop {
                let alive = source.with(&mut |wb, ks| {
                    f.step(wb, ks);
                    stop = wb.stop.load(Relaxed);
                });
                stop |= !alive;
            }
        })
}

impl Flusher {
    /// Waits for work, then runs at most one cycle.
    fn step(&mut self, wb: &WriteBehind, ks: &Keyspace) {
        let interval = Duration::from_millis(wb.settings.read().interval_ms.max(1));
        let now = Instant::now();
        let until = self.retry_at.unwrap_or(self.next_due).max(now);
        // Short waits keep the thread responsive to a dropped server.
        let asked = wb.wait_for_work((until - now).min(Duration::from_millis(200)));
        let forced = wb.forced.swap(false, Relaxed);
        let now = Instant::now();
        if wb.stop.load(Relaxed) {
            return;
        }
        if !forced {
            if wb.paused.load(Relaxed) {
                // Sleep until a FLUSH or RESUME wakes us, not in a loop
                // around a due time that has passed.
                self.next_due = now + interval;
                return;
            }
            if self.retry_at.is_some_and(|t| now < t) {
                return;
            }
            let rules_changed = wb.rules_version.load(Relaxed) != self.prepared;
            let due = now >= self.next_due || rules_changed;
            let big = wb.pending_rows() >= wb.settings.read().batch_size as u64;
            if !(due || asked && big) {
                return;
            }
        }
        self.next_due = now + interval;
        let n = wb.cycle_started();
        let result = self.cycle(wb, ks);
        let ok = result.is_ok();
        if let Err(e) = result {
            tracing::warn!("write-behind: flush failed: {e}");
            wb.stats.batches_failed.fetch_add(1, Relaxed);
            *wb.stats.last_error.lock() = e;
            self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            self.retry_at = Some(Instant::now() + self.backoff);
        } else {
            self.backoff = Duration::ZERO;
            self.retry_at = None;
        }
        wb.cycle_ended(n, ok);
    }

    /// One flush: everything pending now, written or put back.
    fn cycle(&mut self, wb: &WriteBehind, ks: &Keyspace) -> Result<(), String> {
        if self.sink.is_none() {
            self.sink = Some(sink::open(&wb.sink_spec)?);
            self.prepared = 0;
        }
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        // Pending first, rules after: a key marked under a rule added a
        // moment ago is then written under it, not missed.
        let taken = wb.take_pending();
        let rules = wb.rules();
        let version = wb.rules_version.load(Relaxed);
        if self.prepared != version {
            for rule in &rules.rules {
                match sink.prepare(rule) {
                    Ok(max_id) => wb.ids_above(max_id),
                    Err(e) => {
                        wb.requeue(taken);
                        return Err(e);
                    }
                }
            }
            self.prepared = version;
        }
        if taken.is_empty() {
            wb.committed();
            return Ok(());
        }
        let ops = operations(&taken, &rules, ks);
        let batch = wb.settings.read().batch_size.max(1);
        match write_chunks(sink.as_mut(), &ops, batch, wb) {
            Ok(()) => {
                wb.committed();
                wb.stats.last_flush_ms.store(now_ms(), Relaxed);
                Ok(())
            }
            Err(e) => {
                wb.requeue(taken);
                // Reconnect next time: the connection may be what failed.
                self.sink = None;
                Err(e)
            }
        }
    }
}

/// Writes `ops` in transactions of about `batch` rows each.
fn write_chunks(
    sink: &mut dyn Sink,
    ops: &[Op],
    batch: usize,
    wb: &WriteBehind,
) -> Result<(), String> {
    let mut start = 0;
    while start < ops.len() {
        let mut rows = 0;
        let mut end = start;
        while end < ops.len() && (end == start || rows + ops[end].rows() <= batch) {
            rows += ops[end].rows();
            end += 1;
        }
        let chunk = &ops[start..end];
        sink.write(chunk)?;
        let s = &wb.stats;
        s.batches_flushed.fetch_add(1, Relaxed);
        s.rows_flushed.fetch_add(rows as u64, Relaxed);
        for op in chunk {
            match op {
                Op::Upsert { .. } | Op::Replace { .. } => s.upserts.fetch_add(1, Relaxed),
                Op::Append { .. } => s.appends.fetch_add(1, Relaxed),
                Op::Delete { .. } | Op::Truncate { .. } => s.deletes.fetch_add(1, Relaxed),
            };
        }
        start = end;
    }
    Ok(())
}

/// The operations for a pending batch: emptied databases first, then each
/// changed key as it is now, then the appended rows in push order. Reading
/// a key clears its pending bit under its shard lock, so a write after the
/// read queues it again and a write before it is in what was read.
pub fn operations(p: &Batch, rules: &RuleSet, ks: &Keyspace) -> Vec<Op> {
    let mut ops = vec![];
    for db in p.emptied() {
        for rule in rules.rules.iter().filter(|r| r.db == db && r.delete_rows) {
            ops.push(Op::Truncate { rule: rule.clone() });
        }
    }
    // Group the keys by shard, so each shard is locked once.
    let mut keys: Vec<(usize, u64, usize, &[u8])> = vec![];
    for (db, set) in p.keys_by_db().into_iter().enumerate() {
        for k in set {
            let h = hash_bytes(k);
            keys.push((shard_of(h), h, db, k));
        }
    }
    keys.sort_unstable_by_key(|k| k.0);
    let now = now_ms();
    for group in keys.chunk_by(|a, b| a.0 == b.0) {
        let mut shard = ks.lock_shard(group[0].0);
        for &(_, h, db, key) in group {
            if db >= shard.dbs.len() {
                continue;
            }
            shard.db(db).clear_pending(h, key);
            match shard.db(db).peek(h, key, now) {
                Some(e) => {
                    let op = key_type(&e.value)
                        .and_then(|t| rules.find(db, key, t))
                        .and_then(|rule| model::mirror(rule, key, &e.value));
                    ops.extend(op);
                }
                None => deleted(&mut ops, rules, db, key),
            }
        }
    }
    for a in p.appended() {
        ops.extend(model::appended(a.rule, a.id, a.key, a.value));
    }
    ops
}

/// A key that is gone: its rows go under every rule that deletes rows and
/// whose pattern matches (its type is no longer known).
fn deleted(ops: &mut Vec<Op>, rules: &RuleSet, db: usize, key: &[u8]) {
    for rule in &rules.rules {
        if rule.db != db || !rule.delete_rows || rule.ty.is_append() {
            continue;
        }
        if let Some(parts) = rule.pattern.captures(key) {
            ops.push(Op::Delete {
                rule: rule.clone(),
                key: model::key_values(&parts),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::Pending;
    use granary_keyspace::{StrValue, Value};

    #[test]
    fn operations_follow_current_state() {
        let rules = RuleSet::parse(
            "n string name:{id} table=names; \
             k string keep:{id} table=kept on-delete=keep; \
             l list log:{u} table=log",
        )
        .unwrap();
        let ks = Keyspace::new(2);
        let h = hash_bytes(b"name:1");
        ks.lock_shard(shard_of(h)).db(0).insert(
            h,
            b"name:1",
            Value::Str(StrValue::from_bytes(b"one")),
            None,
            0,
        );
        assert_eq!(
            ks.lock_shard(shard_of(h)).db(0).mark_pending(h, b"name:1"),
            Some(false)
        );
        let mut p = Pending::default();
        p.mark(0, b"name:1");
        p.mark(0, b"name:2"); // gone: its row is deleted
        p.mark(0, b"keep:3"); // gone, but its rule keeps rows
        p.mark(0, b"name:1"); // queued twice: read once
        p.append(&rules.rules[2], 9, b"log:u", b"v");
        let mut ops = operations(&p.into(), &rules, &ks);
        // Read: the next write to it queues it again.
        assert!(!ks.lock_shard(shard_of(h)).db(0).is_pending(h, b"name:1"));
        ops.sort_by_key(|o| format!("{o:?}"));
        let kinds: Vec<String> = ops
            .iter()
            .map(|o| match o {
                Op::Upsert { rule, row } => format!("upsert {} {row:?}", rule.table),
                Op::Delete { rule, key } => format!("delete {} {key:?}", rule.table),
                Op::Append { rule, row } => format!("append {} {row:?}", rule.table),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                r#"append log [Int(9), Text("u"), Text("v")]"#,
                r#"delete names [Text("2")]"#,
                r#"upsert names [Text("1"), Text("one")]"#,
            ]
        );
        let mut p = Pending::default();
        p.emptied(0);
        let ops = operations(&p.into(), &rules, &ks);
        assert_eq!(ops.len(), 1);
        assert!(matches!(&ops[0], Op::Truncate { rule } if rule.table == "names"));
    }
}
