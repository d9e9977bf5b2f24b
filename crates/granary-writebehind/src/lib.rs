//! Write-behind: the server mirrors mapped keys into SQLite or PostgreSQL
//! tables in batches, off the command path (docs/writebehind.md).
//!
//! Commands report every changed key to [`WriteBehind::on_write`] (and
//! pushed list elements to [`WriteBehind::on_append`]); matching keys are
//! marked pending, coalesced. The flusher thread ([`flusher`]) takes the
//! pending set every `writebehind-interval` ms or when
//! `writebehind-batch-size` rows wait, reads each key's current state,
//! and writes the rows in chunked transactions, retrying with backoff.
//! Every change to the pending set is also journaled ([`journal`]) before
//! the client's reply, so it survives kill -9 and restart.
//! This crate does not know the command layer: it reads the keyspace
//! through [`Source`].

pub mod flusher;
pub mod ids;
pub mod journal;
pub mod model;
pub mod pace;
pub mod pending;
pub mod rules;
pub mod sink;

use journal::{Journal, Record, RecordRef};
use parking_lot::{Condvar, Mutex, RwLock};
use pending::{Batch, Pending};
use rules::{KeyType, Rule, RuleSet};
use std::path::Path;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use flusher::Source;

/// Settings the flusher and the write hook read (from the config params).
#[derive(Clone, Debug)]
pub struct Settings {
    pub interval_ms: u64,
    pub batch_size: usize,
    pub max_pending: u64,
    /// Past max_pending, accept writes (counted at risk) instead of refusing.
    pub overflow_accept: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval_ms: 1000,
            batch_size: 10_000,
            max_pending: 1_000_000,
            overflow_accept: false,
        }
    }
}

/// Counters for INFO writebehind and WRITEBEHIND STATUS.
#[derive(Default)]
pub struct Stats {
    pub rows_flushed: AtomicU64,
    pub batches_flushed: AtomicU64,
    pub batches_failed: AtomicU64,
    /// Upserts (hash, string rows) written.
    pub upserts: AtomicU64,
    /// Rows appended (list elements) written.
    pub appends: AtomicU64,
    /// Rows deleted by key deletions (statements, not rows).
    pub deletes: AtomicU64,
    /// Writes accepted past writebehind-max-pending (overflow accept).
    pub at_risk: AtomicU64,
    /// Writes refused past writebehind-max-pending.
    pub refused: AtomicU64,
    pub last_error: Mutex<String>,
    pub last_flush_ms: AtomicU64,
    /// Milliseconds the flusher paused to leave scarce CPUs to commands.
    pub paced_ms: AtomicU64,
}

/// Flush cycles, for WRITEBEHIND FLUSH to wait on.
#[derive(Default, Clone, Copy, Debug)]
pub struct Progress {
    /// Cycles started (each takes everything pending at its start).
    pub started: u64,
    /// The last cycle that committed everything it took.
    pub ok: u64,
    /// The last cycle that failed.
    pub failed: u64,
}

/// Keeps its contents on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct CacheLine<T>(pub T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Pending changes are queued in slots, one per writing thread (threads
/// beyond `SLOTS` share): a push takes a lock and touches cache lines no
/// other core is using, where one shared pending set made the two cores
/// of a busy server queue behind each other. The journal keeps one tail
/// per slot the same way. Order across slots does not matter: a queued
/// key is read as it is at the flush, and appended rows carry ids.
pub(crate) const SLOTS: usize = 16;

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Numbers instances (tests run several in one process).
static INSTANCES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static SLOT: usize = THREADS.fetch_add(1, Relaxed) % SLOTS;
    /// This thread's copy of the rules: (instance, version, rules).
    static RULES: std::cell::RefCell<(u64, u64, Arc<RuleSet>)> =
        std::cell::RefCell::new((0, 0, Arc::default()));
}

/// The calling thread's slot.
#[inline]
pub(crate) fn slot() -> usize {
    SLOT.with(|s| *s)
}

/// One slot's pending set, apart from the fields every write command only
/// reads (`enabled`, the rules, the limits).
#[derive(Default)]
struct Slot {
    pending: Mutex<Pending>,
}

pub struct WriteBehind {
    /// Started: a sink is configured and the journal is recovered (hooks
    /// stay off while the dataset loads: the journal already holds what
    /// the loaded writes pending). When false every hook is one load.
    enabled: AtomicBool,
    /// A sink is configured.
    configured: bool,
    journal: OnceLock<Journal>,
    /// The rules and their version (bumped at each change, so the
    /// flusher prepares new tables). Read on every write to a key through
    /// a per-thread copy (`with_rules`), so readers share no counter.
    rules: Mutex<(u64, Arc<RuleSet>)>,
    pub rules_version: AtomicU64,
    /// Tells this instance's rules apart in the per-thread copies.
    id: u64,
    slots: Box<[CacheLine<Slot>]>,
    /// Rows waiting in every slot (a mirror for lock-free readers).
    queued: CacheLine<AtomicU64>,
    next_id: CacheLine<AtomicI64>,
    /// No id at or above it was handed out by any run (`ids`).
    ids: OnceLock<ids::IdCeiling>,
    /// The backlog is at writebehind-max-pending: what every write
    /// command reads, changed only when that flips.
    full: AtomicBool,
    /// Rows taken by the flush in progress, pending until committed, and
    /// when the oldest of them arrived.
    inflight_rows: AtomicU64,
    /// The journal segment sealed when the batch in flight was taken.
    inflight_sealed: AtomicU64,
    inflight_oldest: Mutex<Option<Instant>>,
    pub settings: RwLock<Settings>,
    /// Copies of settings read on the write path.
    max_pending: AtomicU64,
    batch_size: AtomicU64,
    overflow_accept: AtomicBool,
    pub paused: AtomicBool,
    pub stats: Stats,
    pub sink_spec: String,
    /// Wakes the flusher (a FLUSH, the batch size reached, a rule change).
    wake: Condvar,
    wake_flag: Mutex<bool>,
    /// A FLUSH asked for a cycle even while paused.
    forced: AtomicBool,
    progress: Mutex<Progress>,
    progress_cv: Condvar,
    pub stop: AtomicBool,
}

impl WriteBehind {
    /// Write-behind to `sink` (empty: off) with `rules`.
    pub fn new(sink: &str, rules: RuleSet, settings: Settings) -> WriteBehind {
        // Row ids start at the current time in microseconds, so ids stay
        // above those of an earlier run even before the tables are read.
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(1);
        let wb = WriteBehind {
            enabled: AtomicBool::new(false),
            configured: !sink.trim().is_empty(),
            journal: OnceLock::new(),
            rules: Mutex::new((1, Arc::new(rules))),
            rules_version: AtomicU64::new(1),
            id: INSTANCES.fetch_add(1, Relaxed),
            slots: (0..SLOTS).map(|_| CacheLine::default()).collect(),
            queued: CacheLine::default(),
            next_id: CacheLine(AtomicI64::new(now_us)),
            ids: OnceLock::new(),
            full: AtomicBool::new(false),
            inflight_rows: AtomicU64::new(0),
            inflight_sealed: AtomicU64::new(0),
            inflight_oldest: Mutex::new(None),
            settings: RwLock::new(Settings::default()),
            max_pending: AtomicU64::new(0),
            batch_size: AtomicU64::new(0),
            overflow_accept: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            stats: Stats::default(),
            sink_spec: sink.trim().to_string(),
            wake: Condvar::new(),
            wake_flag: Mutex::new(false),
            forced: AtomicBool::new(false),
            progress: Mutex::default(),
            progress_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        wb.set_settings(settings);
        wb
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// A sink is configured (write-behind runs once started).
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// Opens the journal in `dir`, puts back what the last run left
    /// pending, and turns the write hooks on. Called once the dataset is
    /// loaded, before clients are accepted. Returns the rows recovered.
    pub fn start(&self, dir: &Path) -> Result<usize, String> {
        let (journal, recovered) = Journal::open(dir)?;
        if recovered.torn_tail {
            tracing::warn!(
                "write-behind: the journal ended with a write cut short (never acknowledged); dropped it"
            );
        }
        let ids = ids::IdCeiling::open(dir)?;
        self.ids_above(ids.get() - 1);
        let rows = self.recover(recovered.records);
        ids.reserve(self.next_id.load(Relaxed))?;
        if self.journal.set(journal).is_err() || self.ids.set(ids).is_err() {
            return Err("write-behind started twice".into());
        }
        self.enabled.store(self.configured, Relaxed);
        Ok(rows)
    }

    /// Ids up to `end` are about to be used: the ceiling must be above
    /// them first (the background thread keeps it a block ahead, so this
    /// writes only after a burst of more than half a block in 100 ms).
    #[inline]
    fn ids_used(&self, end: i64) {
        if let Some(ids) = self.ids.get() {
            if end > ids.get() {
                self.reserve_ids(end);
            }
        }
    }

    #[cold]
    fn reserve_ids(&self, end: i64) {
        if let Some(Err(e)) = self.ids.get().map(|ids| ids.reserve(end)) {
            tracing::warn!("write-behind: {e}");
            *self.stats.last_error.lock() = e;
        }
    }

    /// Replays journaled records into the pending set (not journaled
    /// again: their segments stay until the batch holding them commits).
    fn recover(&self, records: Vec<Record>) -> usize {
        let rules = self.rules();
        let mut p = self.slots[0].pending.lock();
        p.replayed |= !records.is_empty();
        let mut dropped = 0u64;
        for r in records {
            match r {
                Record::Mark { db, key } => {
                    p.mark(db as usize, &key);
                }
                Record::Append {
                    id,
                    rule,
                    key,
                    value,
                } => match rules.rules.iter().find(|r| r.name == rule) {
                    Some(rule) => {
                        self.ids_above(id);
                        p.append(rule, id, &key, &value);
                    }
                    None => dropped += 1,
                },
                // Tails interleave in the file, so a key queued after the
                // database was emptied may come first: keep every key (it
                // is read as it is now, after the emptied tables).
                Record::Emptied { db } => p.note_emptied(db as usize),
            }
        }
        if dropped > 0 {
            let msg = format!(
                "{dropped} journaled list rows belong to rules that no longer exist; dropped"
            );
            tracing::warn!("write-behind: {msg}");
            *self.stats.last_error.lock() = msg;
        }
        self.queued.store(p.rows as u64, Relaxed);
        self.refresh_full();
        p.rows
    }

    /// Journals one change to slot `slot` (the caller holds its lock).
    #[inline]
    fn journal(&self, slot: usize, r: RecordRef<'_>) {
        if let Some(j) = self.journal.get() {
            j.append(slot, r);
        }
    }

    /// Before a reply: what was journaled is written out (and fsynced with
    /// `always`). A few relaxed loads when there is nothing to write.
    #[inline]
    pub fn wait_durable(&self, always: impl FnOnce() -> bool) {
        if let Some(j) = self.journal.get() {
            if j.unwritten() || j.unsynced() {
                j.wait_durable(always());
            }
        }
    }

    /// The journal's background duty: write what nobody waited for, and
    /// fsync when `sync` (appendfsync everysec).
    pub fn journal_tick(&self, sync: bool) {
        if let Some(j) = self.journal.get() {
            j.write_pending();
            if sync {
                j.sync_now();
            }
        }
        // Keep the id ceiling at least half a block ahead of the ids.
        let next = self.next_id.load(Relaxed);
        if self
            .ids
            .get()
            .is_some_and(|ids| next + ids::BLOCK / 2 > ids.get())
        {
            self.reserve_ids(next);
        }
    }

    /// The journal's last write error (empty: none).
    pub fn journal_error(&self) -> String {
        self.journal
            .get()
            .map(|j| j.last_error.lock().clone())
            .unwrap_or_default()
    }

    pub fn set_settings(&self, s: Settings) {
        self.max_pending.store(s.max_pending, Relaxed);
        self.refresh_full();
        self.batch_size.store(s.batch_size as u64, Relaxed);
        self.overflow_accept.store(s.overflow_accept, Relaxed);
        *self.settings.write() = s;
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.lock().1.clone()
    }

    /// The rules with their version, read together.
    pub fn versioned_rules(&self) -> (u64, Arc<RuleSet>) {
        self.rules.lock().clone()
    }

    /// Runs `f` with the rules: this thread's copy, unless they changed
    /// since it was taken (one atomic load and a thread-local borrow).
    #[inline]
    fn with_rules<R>(&self, f: impl FnOnce(&RuleSet) -> R) -> R {
        let version = self.rules_version.load(Acquire);
        RULES.with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != self.id || cached.1 != version {
                let (v, rules) = &*self.rules.lock();
                *cached = (self.id, *v, rules.clone());
            }
            f(&cached.2)
        })
    }

    /// Replaces the rules (RULE ADD / DEL) and wakes the flusher to
    /// prepare their tables.
    pub fn set_rules(&self, rules: RuleSet) {
        let mut current = self.rules.lock();
        let version = self.rules_version.load(Relaxed) + 1;
        *current = (version, Arc::new(rules));
        self.rules_version.store(version, Release);
        drop(current);
        self.wake_flusher();
    }

    /// Rows not committed yet: waiting, or being written now.
    pub fn pending_rows(&self) -> u64 {
        self.queued.load(Relaxed) + self.inflight_rows.load(Relaxed)
    }

    /// Milliseconds the oldest change not committed yet has waited.
    pub fn oldest_pending_age_ms(&self) -> u64 {
        let waiting = self
            .slots
            .iter()
            .filter_map(|s| s.pending.lock().oldest)
            .min();
        let inflight = *self.inflight_oldest.lock();
        let oldest = match (waiting, inflight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.map_or(0, |t| t.elapsed().as_millis() as u64)
    }

    fn over_limit(&self) -> bool {
        self.pending_rows() >= self.max_pending.load(Relaxed)
    }

    /// Sets `full` after the counts or the limit changed. Two racing
    /// refreshes can leave it stale: a stale `true` is checked against the
    /// counts (`refusing`), a stale `false` lasts until the next queued
    /// change refreshes it.
    fn refresh_full(&self) {
        let full = self.over_limit();
        if self.full.load(Relaxed) != full {
            self.full.store(full, Relaxed);
        }
    }

    /// Writes to mapped keys are being refused now (the backlog is full
    /// and overflow is not accepted): a few relaxed loads, so the write
    /// path looks at keys only then.
    #[inline]
    pub fn refusing(&self) -> bool {
        self.enabled()
            && self.full.load(Relaxed)
            && self.over_limit()
            && !self.overflow_accept.load(Relaxed)
    }

    /// Whether a write to `key` must be refused because the backlog is
    /// full (checked before a write command runs).
    pub fn refuses(&self, db: usize, key: &[u8]) -> bool {
        if !self.enabled() || !self.over_limit() || self.overflow_accept.load(Relaxed) {
            return false;
        }
        let refuse = self.with_rules(|r| r.any_matches(db, key));
        if refuse {
            self.stats.refused.fetch_add(1, Relaxed);
        }
        refuse
    }

    /// A key changed (any write, expiry, eviction): queues it if a rule's
    /// pattern matches. The flush reads its state then. For writes that
    /// can see the key's entry, `Store::modified` checks the entry's
    /// pending bit first (`maps` + `queue`), so a key is queued once per
    /// flush, not once per write.
    #[inline]
    pub fn on_write(&self, db: usize, key: &[u8]) {
        if self.maps(db, key) {
            self.queue(db, key);
        }
    }

    /// Whether changes to `key` are mirrored (write-behind is on and a
    /// state rule's pattern matches; list keys matter only through their
    /// pushed elements, `on_append`).
    #[inline]
    pub fn maps(&self, db: usize, key: &[u8]) -> bool {
        self.enabled() && self.with_rules(|r| r.mirrors(db, key))
    }

    /// Queues a changed key that `maps` accepted.
    pub fn queue(&self, db: usize, key: &[u8]) {
        let slot = slot();
        let mut p = self.slots[slot].pending.lock();
        p.mark(db, key);
        self.journal(slot, RecordRef::Mark { db: db as u32, key });
        drop(p);
        self.counted(1);
    }

    /// Elements were added to the append-only collection of type `ty` at
    /// `key` (list elements pushed): each becomes a row.
    pub fn on_append<V: AsRef<[u8]>>(&self, db: usize, key: &[u8], ty: KeyType, values: &[V]) {
        if !self.enabled() {
            return;
        }
        self.with_rules(|rules| {
            if let Some(rule) = rules.find(db, key, ty) {
                self.append_rows(rule, key, values);
            }
        })
    }

    /// Whether an element added to the `ty` collection at `key` would be
    /// a row (so a caller can skip encoding it).
    pub fn appends(&self, db: usize, key: &[u8], ty: KeyType) -> bool {
        self.enabled() && self.with_rules(|r| r.find(db, key, ty).is_some())
    }

    fn append_rows<V: AsRef<[u8]>>(&self, rule: &Arc<Rule>, key: &[u8], values: &[V]) {
        let slot = slot();
        let mut p = self.slots[slot].pending.lock();
        // Taken under the key's shard lock: a key's rows get ids in push
        // order, whichever slots they are queued in.
        let first = self.next_id.fetch_add(values.len() as i64, Relaxed);
        self.ids_used(first + values.len() as i64);
        for (id, v) in (first..).zip(values) {
            self.journal(
                slot,
                RecordRef::Append {
                    id,
                    rule: &rule.name,
                    key,
                    value: v.as_ref(),
                },
            );
            p.append(rule, id, key, v.as_ref());
        }
        drop(p);
        self.counted(values.len() as i64);
    }

    /// A database was emptied (FLUSHDB, FLUSHALL, SWAPDB).
    pub fn on_emptied(&self, db: usize) {
        if !self.enabled() {
            return;
        }
        if !self.with_rules(|r| r.rules.iter().any(|r| r.db == db)) {
            return;
        }
        // Not while a flush is taking the slots: a key queued after this
        // in a slot taken later would be in that batch while this goes to
        // the next one, whose emptied tables would lose its row. (No key
        // is queued meanwhile: emptying holds every shard.)
        let _no_seal = self.journal.get().map(|j| j.no_sealing());
        let mine = slot();
        let mut delta = 0i64;
        for (i, s) in self.slots.iter().enumerate() {
            let mut p = s.pending.lock();
            let before = p.rows as i64;
            p.drop_keys_of(db);
            if i == mine {
                p.note_emptied(db);
                self.journal(i, RecordRef::Emptied { db: db as u32 });
            }
            delta += p.rows as i64 - before;
        }
        self.counted(delta);
    }

    /// Publishes the pending count; wakes the flusher at the batch size
    /// and counts writes accepted past the limit.
    fn counted(&self, delta: i64) {
        let before = self.queued.fetch_add(delta as u64, Relaxed);
        let rows = before.wrapping_add(delta as u64);
        self.refresh_full();
        if self.over_limit() {
            self.stats.at_risk.fetch_add(1, Relaxed);
        }
        let batch = self.batch_size.load(Relaxed);
        if before < batch && rows >= batch {
            self.wake_flusher();
        }
    }

    pub fn wake_flusher(&self) {
        *self.wake_flag.lock() = true;
        self.wake.notify_one();
    }

    /// Makes ids of new rows larger than `id` (ids found in a table).
    pub fn ids_above(&self, id: i64) {
        self.next_id.fetch_max(id + 1, Relaxed);
    }

    pub fn progress(&self) -> Progress {
        *self.progress.lock()
    }

    /// WRITEBEHIND FLUSH: waits until everything pending now is committed.
    /// Err with the sink's error if a cycle that started after this call
    /// failed, or on timeout.
    pub fn flush_and_wait(&self, timeout: Duration) -> Result<(), String> {
        if !self.enabled() {
            return Err("write-behind is off (writebehind-sink is empty)".into());
        }
        let deadline = Instant::now() + timeout;
        let mut prog = self.progress.lock();
        // The next cycle to start takes everything pending now.
        let target = prog.started + 1;
        self.forced.store(true, Relaxed);
        self.wake_flusher();
        loop {
            if prog.ok >= target {
                return Ok(());
            }
            if prog.failed >= target {
                return Err(self.stats.last_error.lock().clone());
            }
            if self.progress_cv.wait_until(&mut prog, deadline).timed_out() {
                return Err("timed out waiting for the flush".into());
            }
        }
    }

    /// Takes every slot's pending set, sealing each slot's journal tail
    /// as its set is taken.
    fn take_pending(&self) -> Batch {
        let sealing = self.journal.get().map(|j| j.begin_seal());
        let mut taken = Batch::default();
        for (i, s) in self.slots.iter().enumerate() {
            let mut p = s.pending.lock();
            if let Some(sealing) = &sealing {
                sealing.seal(i);
            }
            if !p.is_empty() {
                taken.push(p.take());
            }
        }
        if let Some(sealing) = &sealing {
            self.inflight_sealed.store(sealing.sealed, Relaxed);
        }
        drop(sealing);
        let rows = taken.rows();
        self.inflight_rows.store(rows as u64, Relaxed);
        *self.inflight_oldest.lock() = taken.oldest();
        self.queued.fetch_sub(rows as u64, Relaxed);
        taken
    }

    /// A chunk of the batch in flight is committed: `entries` of the
    /// pending entries it took are pending no more.
    fn chunk_committed(&self, entries: u64) {
        let _ = self
            .inflight_rows
            .fetch_update(Relaxed, Relaxed, |r| Some(r.saturating_sub(entries)));
        self.refresh_full();
    }

    /// The batch in progress is committed: its journal segments go.
    fn committed(&self) {
        if let Some(j) = self.journal.get() {
            j.committed(self.inflight_sealed.load(Relaxed));
        }
        self.nothing_inflight();
    }

    fn nothing_inflight(&self) {
        self.inflight_rows.store(0, Relaxed);
        *self.inflight_oldest.lock() = None;
        self.refresh_full();
    }

    fn requeue(&self, old: Batch) {
        let mut p = self.slots[slot()].pending.lock();
        let before = p.rows;
        for part in old.into_parts().into_iter().rev() {
            p.requeue(part);
        }
        let added = p.rows - before;
        drop(p);
        self.queued.fetch_add(added as u64, Relaxed);
        // Not committed: its journal segments stay.
        self.nothing_inflight();
    }

    /// Waits until a flush is due (interval, batch size, a FLUSH), up to
    /// `timeout`. True if something asked for it before the timeout.
    fn wait_for_work(&self, timeout: Duration) -> bool {
        let mut flag = self.wake_flag.lock();
        if !*flag {
            let _ = self.wake.wait_for(&mut flag, timeout);
        }
        std::mem::replace(&mut *flag, false)
    }

    fn cycle_started(&self) -> u64 {
        let mut p = self.progress.lock();
        p.started += 1;
        p.started
    }

    fn cycle_ended(&self, n: u64, ok: bool) {
        let mut p = self.progress.lock();
        if ok {
            p.ok = p.ok.max(n);
        } else {
            p.failed = p.failed.max(n);
        }
        self.progress_cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn started(name: &str) -> (WriteBehind, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("granary-wb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rules =
            RuleSet::parse("l list log:{n} table=t; s string k:{n} table=u value=v").unwrap();
        let wb = WriteBehind::new("sqlite:unused.db", rules, Settings::default());
        wb.start(&dir).unwrap();
        (wb, dir)
    }

    fn value(thread: usize, i: usize) -> Vec<u8> {
        format!("{thread}-{i}").into_bytes()
    }

    /// Ids of a run start above every id of the run before, even with
    /// the clock set back between them.
    #[test]
    fn ids_stay_above_the_previous_run_whatever_the_clock() {
        let (wb, dir) = started("ids");
        let rows: Vec<Vec<u8>> = (0..1000).map(|i| value(0, i)).collect();
        wb.on_append(0, b"log:1", KeyType::List, &rows);
        let last = wb.next_id.load(Relaxed) - 1;
        // Written to the database: nothing of them is left in the journal.
        drop(wb.take_pending());
        wb.committed();
        // The journal's thread tops the ceiling up ahead of the ids.
        wb.next_id.fetch_add(ids::BLOCK, Relaxed);
        wb.journal_tick(false);
        let used = wb.next_id.load(Relaxed) - 1;
        assert!(wb.ids.get().unwrap().get() > used + ids::BLOCK / 2);
        drop(wb);
        let rules = RuleSet::parse("l list log:{n} table=t").unwrap();
        let wb = WriteBehind::new("sqlite:unused.db", rules, Settings::default());
        // A clock set back to 1970.
        wb.next_id.store(1, Relaxed);
        wb.start(&dir).unwrap();
        wb.take_pending();
        wb.on_append(0, b"log:1", KeyType::List, &[b"after"]);
        let batch = wb.take_pending();
        let id = batch.appended().next().unwrap().id;
        assert!(id > used && id > last, "{id} <= {used}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The per-thread copy of the rules follows RULE ADD / DEL, and two
    /// instances on one thread (tests) never see each other's rules.
    #[test]
    fn threads_see_rule_changes_and_instances_their_own_rules() {
        let rules = |r: &str| RuleSet::parse(r).unwrap();
        let a = WriteBehind::new("", rules("s string a:{n} table=t"), Settings::default());
        let b = WriteBehind::new("", rules("s string b:{n} table=t"), Settings::default());
        let sees = |wb: &WriteBehind, key: &[u8]| wb.with_rules(|r| r.mirrors(0, key));
        assert!(sees(&a, b"a:1") && !sees(&a, b"b:1"));
        assert!(sees(&b, b"b:1") && !sees(&b, b"a:1"));
        std::thread::scope(|s| {
            let (to_thread, from_main) = std::sync::mpsc::channel::<()>();
            let (to_main, from_thread) = std::sync::mpsc::channel::<()>();
            let (a, sees) = (&a, &sees);
            let other = s.spawn(move || {
                assert!(sees(a, b"a:1"));
                to_main.send(()).unwrap();
                from_main.recv().unwrap();
                sees(a, b"c:1") && !sees(a, b"a:1")
            });
            from_thread.recv().unwrap();
            a.set_rules(rules("s string c:{n} table=t"));
            to_thread.send(()).unwrap();
            assert!(other.join().unwrap(), "a thread kept the old rules");
        });
        assert!(sees(&a, b"c:1") && !sees(&a, b"a:1"));
        assert!(sees(&b, b"b:1"));
    }

    /// Tails interleave in the file: a key queued (in another slot) after
    /// a FLUSHDB can be journaled before it. Replay keeps it.
    #[test]
    fn replay_keeps_keys_journaled_before_an_emptied_database() {
        let (wb, dir) = started("replay");
        drop(wb);
        let (j, _) = Journal::open(&dir).unwrap();
        j.append(1, RecordRef::Mark { db: 0, key: b"k:1" });
        j.wait_durable(false);
        j.append(0, RecordRef::Emptied { db: 0 });
        j.wait_durable(false);
        drop(j);
        let rules = RuleSet::parse("s string k:{n} table=u value=v").unwrap();
        let wb = WriteBehind::new("sqlite:unused.db", rules, Settings::default());
        assert_eq!(wb.start(&dir).unwrap(), 2);
        let batch = wb.take_pending();
        assert_eq!(batch.emptied(), [0]);
        assert!(batch.keys().any(|k| k == (0, &b"k:1"[..])));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Threads push rows and mark keys in their own slots while batches are
    /// taken and committed: every row is in exactly one batch, in id order,
    /// and the journal left after the last commit holds exactly the rest.
    #[test]
    fn slots_lose_nothing_while_batches_are_taken() {
        let (wb, dir) = started("slots");
        const THREADS: usize = 4;
        const ROWS: usize = 50_000;
        let done = std::sync::atomic::AtomicUsize::new(0);
        // Batches taken with rows in them: each writer waits for one more
        // every 10,000 rows, so takes fall in the middle of the writing
        // however the threads are scheduled.
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = HashSet::new();
        let mut batches = 0;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (wb, done, taken) = (&wb, &done, &taken);
                s.spawn(move || {
                    for i in 0..ROWS {
                        while taken.load(Relaxed) < i / 10_000 {
                            std::thread::yield_now();
                        }
                        let key = format!("log:{}", i % 7);
                        wb.on_append(0, key.as_bytes(), KeyType::List, &[value(t, i)]);
                        if i % 100 == 0 {
                            wb.queue(0, format!("k:{t}").as_bytes());
                        }
                    }
                    done.fetch_add(1, Relaxed);
                });
            }
            // Take and commit batches while the threads run.
            while done.load(Relaxed) < THREADS {
                let batch = wb.take_pending();
                if !batch.is_empty() {
                    batches += 1;
                    taken.fetch_add(1, Relaxed);
                }
                let ids: Vec<i64> = batch.appended().map(|a| a.id).collect();
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "rows out of id order");
                for a in batch.appended() {
                    assert!(seen.insert(a.value.to_vec()), "a row taken twice");
                }
                wb.committed();
            }
        });
        assert!(batches >= ROWS / 10_000 - 1, "{batches} batches");
        // The lock-free count matches what the slots hold.
        let counted = wb.queued.load(Relaxed) as usize;
        let rest = wb.take_pending();
        assert_eq!(rest.rows(), counted);
        // What was not committed is what the journal gives back.
        drop(rest);
        drop(wb);
        let (_, recovered) = Journal::open(&dir).unwrap();
        let mut rest = HashSet::new();
        for r in recovered.records {
            if let Record::Append { value, .. } = r {
                assert!(rest.insert(value), "a row journaled twice");
            }
        }
        assert_eq!(seen.len() + rest.len(), THREADS * ROWS);
        assert!(seen.is_disjoint(&rest), "a committed row came back");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
