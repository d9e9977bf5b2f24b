//! The flusher thread: waits for the interval, the batch size or a FLUSH,
//! takes the pending set, turns it into operations by reading each key's
//! current state, and writes them in chunks, one transaction each. A
//! failed chunk puts the whole batch back (replaying what was committed is
//! harmless: upserts are idempotent and appended rows carry their ids) and
//! the next attempt waits with exponential backoff.

use crate::model::{self, key_type, Op};
use crate::pace::Pacer;
use crate::pending::{Appended, Batch};
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
    pacer: Pacer,
    /// This cycle was asked for by a FLUSH: it is never paced.
    forced: bool,
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
                pacer: Pacer::for_this_thread(),
                forced: false,
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
        self.forced = forced;
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
        self.pacer.start();
        let taken = wb.take_pending();
        let (version, rules) = wb.versioned_rules();
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
        let batch = wb.settings.read().batch_size.max(1);
        let mut ops = Operations::new(&taken, &rules, ks);
        let fresh = taken.fresh();
        let mut written = Ok(());
        loop {
            let chunk = ops.next_chunk(batch);
            if chunk.is_empty() {
                break;
            }
            written = sink.write(&chunk, fresh);
            if written.is_err() {
                break;
            }
            count(&wb.stats, &chunk);
            wb.chunk_committed(std::mem::take(&mut ops.entries));
            if !self.forced {
                pace(&self.pacer, wb);
            }
            self.pacer.start();
        }
        drop(ops);
        match written {
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

/// Pauses after a slice of work if the CPUs are scarce (`pace` module);
/// a FLUSH or a stop ends the pause.
fn pace(pacer: &Pacer, wb: &WriteBehind) {
    let max_pending = wb.settings.read().max_pending;
    let pause = pacer.pause(wb.pending_rows(), max_pending);
    if pause.is_zero() {
        return;
    }
    let began = Instant::now();
    let until = began + pause;
    loop {
        let now = Instant::now();
        if now >= until || wb.forced.load(Relaxed) || wb.stop.load(Relaxed) {
            break;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
    let paused = began.elapsed().as_millis() as u64;
    wb.stats.paced_ms.fetch_add(paused, Relaxed);
}

/// Counts a committed chunk in the stats.
fn count(s: &crate::Stats, chunk: &[Op]) {
    s.batches_flushed.fetch_add(1, Relaxed);
    for op in chunk {
        s.rows_flushed.fetch_add(op.rows() as u64, Relaxed);
        match op {
            Op::Upsert { .. } | Op::Replace { .. } => s.upserts.fetch_add(1, Relaxed),
            Op::Append { .. } => s.appends.fetch_add(1, Relaxed),
            Op::Delete { .. } | Op::Truncate { .. } => s.deletes.fetch_add(1, Relaxed),
        };
    }
}

/// The operations of a taken batch, a chunk at a time: emptied databases
/// first, then each changed key as it is now, then the appended rows in
/// push order. Built as they are written, so building them is paced like
/// writing them and only one chunk's rows are held at once. Reading a key
/// clears its pending bit under its shard lock, so a write after the read
/// queues it again and a write before it is in what was read.
pub struct Operations<'a> {
    rules: &'a RuleSet,
    ks: &'a Keyspace,
    truncates: Vec<Op>,
    /// (shard, hash, db, key), each key once, grouped by shard so that a
    /// chunk locks each shard once.
    keys: Vec<(usize, u64, usize, &'a [u8])>,
    next_key: usize,
    appended: Box<dyn Iterator<Item = Appended<'a>> + 'a>,
    /// Pending entries (emptied databases, keys, rows) the last chunk
    /// covered: no longer pending once it is committed.
    pub entries: u64,
}

impl<'a> Operations<'a> {
    pub fn new(p: &'a Batch, rules: &'a RuleSet, ks: &'a Keyspace) -> Operations<'a> {
        let mut truncates = vec![];
        for db in p.emptied() {
            for rule in rules.rules.iter().filter(|r| r.db == db && r.delete_rows) {
                truncates.push(Op::Truncate { rule: rule.clone() });
            }
        }
        let mut keys: Vec<_> = p
            .keys()
            .map(|(db, k)| {
                let h = hash_bytes(k);
                (shard_of(h), h, db, k)
            })
            .collect();
        // By shard, then in hash order; a key queued twice is read once.
        keys.sort_unstable();
        keys.dedup();
        // Pending entries that no key or row stands for below (a key
        // queued twice, a database emptied) go with the first chunk.
        let entries = p.rows().saturating_sub(keys.len() + p.appended_rows());
        Operations {
            rules,
            ks,
            truncates,
            keys,
            next_key: 0,
            appended: Box::new(p.appended()),
            entries: entries as u64,
        }
    }

    /// The next chunk: operations of about `rows` rows; empty at the end.
    pub fn next_chunk(&mut self, rows: usize) -> Vec<Op> {
        let mut ops = std::mem::take(&mut self.truncates);
        let mut n = ops.len();
        let first_key = self.next_key;
        let now = now_ms();
        while n < rows && self.next_key < self.keys.len() {
            let shard_index = self.keys[self.next_key].0;
            let mut shard = self.ks.lock_shard(shard_index);
            while let Some(&(s, h, db, key)) = self.keys.get(self.next_key) {
                if s != shard_index || n >= rows {
                    break;
                }
                self.next_key += 1;
                if db >= shard.dbs.len() {
                    continue;
                }
                let before = ops.len();
                match shard.db(db).take_pending(h, key, now) {
                    Some(e) => {
                        let op = key_type(&e.value)
                            .and_then(|t| self.rules.find(db, key, t))
                            .and_then(|rule| model::mirror(rule, key, &e.value));
                        ops.extend(op);
                    }
                    None => deleted(&mut ops, self.rules, db, key),
                }
                n += ops[before..].iter().map(Op::rows).sum::<usize>();
            }
        }
        self.entries += (self.next_key - first_key) as u64;
        while n < rows {
            let Some(a) = self.appended.next() else { break };
            // A row that gives nothing (an entry that does not decode, a
            // key its rule no longer matches) does not count: a chunk is
            // empty only at the end of the batch.
            if let Some(op) = model::appended(a.rule, a.id, a.key, a.value) {
                ops.push(op);
                n += 1;
            }
            self.entries += 1;
        }
        ops
    }
}

/// Every operation of a batch at once (tests).
#[cfg(test)]
fn operations(p: &Batch, rules: &RuleSet, ks: &Keyspace) -> Vec<Op> {
    let mut ops = Operations::new(p, rules, ks);
    let mut all = vec![];
    loop {
        let chunk = ops.next_chunk(3);
        if chunk.is_empty() {
            return all;
        }
        all.extend(chunk);
    }
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
    use crate::model::SqlValue;
    use crate::pending::Pending;
    use granary_keyspace::{StrValue, Value};

    /// Rows that give no operation (their key no longer matches the rule,
    /// an entry that does not decode) never end a batch early, however
    /// many come in a row.
    #[test]
    fn rows_that_give_nothing_do_not_end_the_batch() {
        let rules = RuleSet::parse("l list log:{u} table=log").unwrap();
        let ks = Keyspace::new(1);
        let mut p = Pending::default();
        for id in 0..10 {
            p.append(&rules.rules[0], id, b"other:1", b"lost");
        }
        p.append(&rules.rules[0], 10, b"log:u", b"kept");
        p.mark(0, b"log:x");
        p.mark(0, b"log:x");
        let batch: Batch = p.into();
        let mut ops = Operations::new(&batch, &rules, &ks);
        let chunk = ops.next_chunk(3);
        assert_eq!(chunk.len(), 1, "{chunk:?}");
        assert!(
            matches!(&chunk[0], Op::Append { row, .. } if row[2] == SqlValue::Text("kept".into()))
        );
        // Every pending entry is accounted for, the repeated key included.
        assert_eq!(ops.entries, 13);
        assert!(ops.next_chunk(3).is_empty());
    }

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
