//! What is waiting for the next flush. Changed keys are queued once per
//! flush (the keyspace entry's pending bit, `Db::mark_pending`, stops the
//! repeats), and the flush reads each key's state then. A key can still be
//! queued twice (deleted and re-created, or queued again after a failed
//! batch was put back): the flush reads it once (`flusher::Operations`).
//! Appended rows (pushed list elements, stream entries) are not coalesced:
//! each keeps its value and an id, assigned in push order, that becomes
//! its row id, so a batch written twice (a retry after a failure) inserts
//! nothing twice.
//!
//! Both are kept in byte arenas, not one allocation per key or row:
//! queueing is on the command path. An arena is a list of fixed-size
//! chunks rather than one growing Vec, which would copy everything pending
//! (and fault in fresh pages) at each doubling while the command holds its
//! shard lock; chunks of a flushed batch go to a small pool for the next.

use crate::journal::{put_bytes as put, take, take_bytes, take_u32};
use crate::rules::Rule;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;

const CHUNK: usize = 256 * 1024;
/// Chunks kept for reuse (16 MiB): about a second of pushes at full speed.
const POOL_MAX: usize = 64;
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Records appended to chunks; a record never straddles two chunks.
#[derive(Default)]
struct Chunks {
    chunks: Vec<Vec<u8>>,
}

impl Chunks {
    /// The chunk a record of `n` bytes goes to (a record larger than a
    /// chunk gets one of its own).
    fn room(&mut self, n: usize) -> &mut Vec<u8> {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= n);
        if !fits {
            let chunk = match n <= CHUNK {
                true => POOL.lock().pop(),
                false => None,
            };
            self.chunks
                .push(chunk.unwrap_or_else(|| Vec::with_capacity(n.max(CHUNK))));
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }

    fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|c| &c[..])
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        let mut pool = POOL.lock();
        for mut c in self.chunks.drain(..) {
            if c.capacity() == CHUNK && pool.len() < POOL_MAX {
                c.clear();
                pool.push(c);
            }
        }
    }
}

/// Queued keys: `db: u32, len: u32, key` records, in arrival order.
#[derive(Default)]
pub struct KeyLog {
    bytes: Chunks,
    len: usize,
}

impl KeyLog {
    fn push(&mut self, db: usize, key: &[u8]) {
        let out = self.bytes.room(8 + key.len());
        out.extend_from_slice(&(db as u32).to_le_bytes());
        put(out, key);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (database, key) in arrival order, repeats included.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.bytes.slices().flat_map(|mut rest| {
            std::iter::from_fn(move || {
                let db = take_u32(&mut rest)? as usize;
                Some((db, take_bytes(&mut rest)?))
            })
        })
    }

    fn append(&mut self, other: &KeyLog) {
        for (db, key) in other.iter() {
            self.push(db, key);
        }
    }

    /// Drops the keys of database `db`.
    fn drop_db(&mut self, db: usize) {
        let mut kept = KeyLog::default();
        for (d, k) in self.iter().filter(|(d, _)| *d != db) {
            kept.push(d, k);
        }
        *self = kept;
    }
}

/// One appended row.
pub struct Appended<'a> {
    pub rule: &'a Arc<Rule>,
    pub id: i64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Appended rows: `rule: u32 (index in rules), id: i64, key, value`
/// records, in push order.
#[derive(Default)]
pub struct AppendLog {
    bytes: Chunks,
    rules: Vec<Arc<Rule>>,
    len: usize,
}

impl AppendLog {
    fn push(&mut self, rule: &Arc<Rule>, id: i64, key: &[u8], value: &[u8]) {
        // Consecutive rows nearly always share a rule: check the last first.
        let index = match self.rules.iter().rposition(|r| Arc::ptr_eq(r, rule)) {
            Some(i) => i,
            None => {
                self.rules.push(rule.clone());
                self.rules.len() - 1
            }
        };
        let out = self.bytes.room(20 + key.len() + value.len());
        out.extend_from_slice(&(index as u32).to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        put(out, key);
        put(out, value);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows in push order.
    pub fn iter(&self) -> impl Iterator<Item = Appended<'_>> {
        self.bytes.slices().flat_map(move |mut rest| {
            std::iter::from_fn(move || {
                let rule = self.rules.get(take_u32(&mut rest)? as usize)?;
                let id = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
                let key = take_bytes(&mut rest)?;
                let value = take_bytes(&mut rest)?;
                Some(Appended {
                    rule,
                    id,
                    key,
                    value,
                })
            })
        })
    }

    fn append(&mut self, other: &AppendLog) {
        for a in other.iter() {
            self.push(a.rule, a.id, a.key, a.value);
        }
    }
}

#[derive(Default)]
pub struct Pending {
    /// Changed keys.
    pub keys: KeyLog,
    pub appended: AppendLog,
    /// Databases emptied (FLUSHDB, FLUSHALL, SWAPDB), in order.
    pub emptied: Vec<usize>,
    /// When the oldest entry still waiting arrived.
    pub oldest: Option<Instant>,
    /// Number of entries (keys + appended rows + emptied databases).
    pub rows: usize,
    /// Holds rows that may have been committed already: replayed from the
    /// journal, or put back after a failed flush.
    pub replayed: bool,
}

impl Pending {
    fn touch(&mut self) {
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
    }

    /// Queues a changed key.
    pub fn mark(&mut self, db: usize, key: &[u8]) {
        self.keys.push(db, key);
        self.rows += 1;
        self.touch();
    }

    pub fn append(&mut self, rule: &Arc<Rule>, id: i64, key: &[u8], value: &[u8]) {
        self.appended.push(rule, id, key, value);
        self.rows += 1;
        self.touch();
    }

    pub fn emptied(&mut self, db: usize) {
        self.note_emptied(db);
        self.drop_keys_of(db);
    }

    /// Database `db` was emptied: its delete rules' tables are emptied
    /// before any queued key is written.
    pub fn note_emptied(&mut self, db: usize) {
        if !self.emptied.contains(&db) {
            self.emptied.push(db);
            self.rows += 1;
            self.touch();
        }
    }

    /// Keys of database `db` queued before it was emptied are gone; their
    /// rows go with the tables', and re-created keys are queued again.
    pub fn drop_keys_of(&mut self, db: usize) {
        let before = self.keys.len();
        if before > 0 {
            self.keys.drop_db(db);
            self.rows -= before - self.keys.len();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes everything, leaving this empty.
    pub fn take(&mut self) -> Pending {
        std::mem::take(self)
    }

    /// Puts back a batch that failed to be written: it is older than what
    /// arrived meanwhile, so it goes first.
    pub fn requeue(&mut self, mut old: Pending) {
        for db in std::mem::take(&mut self.emptied) {
            // Emptied after the old batch was taken: its keys are gone.
            old.emptied(db);
        }
        old.keys.append(&self.keys);
        old.appended.append(&self.appended);
        old.rows = old.keys.len() + old.appended.len() + old.emptied.len();
        old.replayed = true;
        old.oldest = match (old.oldest, self.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        *self = old;
    }
}

/// What a flush took: the pending sets of the slots that had any.
#[derive(Default)]
pub struct Batch {
    parts: Vec<Pending>,
}

impl Batch {
    pub fn push(&mut self, p: Pending) {
        self.parts.push(p);
    }

    pub fn into_parts(self) -> Vec<Pending> {
        self.parts
    }

    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    pub fn oldest(&self) -> Option<Instant> {
        self.parts.iter().filter_map(|p| p.oldest).min()
    }

    /// No row of this batch can have been committed before (see
    /// `Pending::replayed`).
    pub fn fresh(&self) -> bool {
        !self.parts.iter().any(|p| p.replayed)
    }

    /// The databases emptied, each once.
    pub fn emptied(&self) -> Vec<usize> {
        let mut dbs: Vec<usize> = self.parts.iter().flat_map(|p| p.emptied.clone()).collect();
        dbs.sort_unstable();
        dbs.dedup();
        dbs
    }

    /// The appended rows in every part.
    pub fn appended_rows(&self) -> usize {
        self.parts.iter().map(|p| p.appended.len()).sum()
    }

    /// The queued keys, (database, key), repeats included.
    pub fn keys(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.parts.iter().flat_map(|p| p.keys.iter())
    }

    /// The appended rows in id order (each slot's are; this merges them),
    /// so rows reach their tables in push order.
    pub fn appended(&self) -> impl Iterator<Item = Appended<'_>> {
        let mut heads: Vec<_> = self
            .parts
            .iter()
            .map(|p| p.appended.iter().peekable())
            .collect();
        std::iter::from_fn(move || {
            let next = heads
                .iter_mut()
                .enumerate()
                .filter_map(|(i, h)| Some((h.peek()?.id, i)))
                .min()?
                .1;
            heads[next].next()
        })
    }
}

impl From<Pending> for Batch {
    fn from(p: Pending) -> Batch {
        Batch { parts: vec![p] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Arc<Rule> {
        Arc::new(Rule::parse(&["l", "list", "l:{k}", "table=t"]).unwrap())
    }

    #[test]
    fn taking_keeps_repeated_keys_and_counts() {
        let mut p = Pending::default();
        for _ in 0..3 {
            p.mark(0, b"k");
        }
        p.mark(3, b"k");
        assert_eq!(p.rows, 4);
        let taken = p.take();
        assert!(p.is_empty() && p.oldest.is_none());
        let batch = Batch::from(taken);
        let keys: Vec<(usize, &[u8])> = batch.keys().collect();
        assert_eq!(keys, [(0, &b"k"[..]), (0, b"k"), (0, b"k"), (3, b"k")]);
        let taken = batch.into_parts().remove(0);
        assert_eq!(taken.rows, 4);
        assert!(p.is_empty() && p.oldest.is_none());
    }

    #[test]
    fn requeue_keeps_order_and_counts() {
        let r = rule();
        let mut p = Pending::default();
        p.append(&r, 1, b"l:1", b"v");
        p.mark(0, b"x");
        let old = p.take();
        p.append(&r, 2, b"l:1", b"w");
        p.mark(0, b"x");
        p.mark(0, b"y");
        p.mark(1, b"z");
        p.requeue(old);
        let rows: Vec<(i64, &[u8])> = p.appended.iter().map(|a| (a.id, a.value)).collect();
        assert_eq!(rows, [(1, &b"v"[..]), (2, &b"w"[..])]);
        assert_eq!(p.rows, 6);
        p.emptied(0);
        // x, x, y gone; z and the two rows stay, plus the emptied database.
        assert_eq!(p.rows, 4);
        let keys: Vec<(usize, &[u8])> = p.keys.iter().collect();
        assert_eq!(keys, [(1, &b"z"[..])]);
    }

    #[test]
    fn records_survive_chunk_boundaries() {
        // Enough rows for several chunks, sizes that end chunks at odd
        // places, and one value larger than a chunk.
        let r = rule();
        let big = vec![7u8; CHUNK + 3];
        let value = |i: usize| -> Vec<u8> {
            match i {
                5000 => big.clone(),
                _ => vec![(i % 251) as u8; i % 97],
            }
        };
        let mut log = AppendLog::default();
        let mut keys = KeyLog::default();
        for i in 0..20_000 {
            log.push(&r, i as i64, format!("l:{i}").as_bytes(), &value(i));
            keys.push(i % 16, format!("k{i}").as_bytes());
        }
        assert!(log.bytes.chunks.len() > 3, "the test should span chunks");
        let mut n = 0;
        for (i, a) in log.iter().enumerate() {
            assert_eq!((a.id, a.key), (i as i64, format!("l:{i}").as_bytes()));
            assert_eq!(a.value, &value(i)[..]);
            n += 1;
        }
        assert_eq!(n, 20_000);
        let got: Vec<(usize, Vec<u8>)> = keys.iter().map(|(d, k)| (d, k.to_vec())).collect();
        let want: Vec<(usize, Vec<u8>)> = (0..20_000)
            .map(|i| (i % 16, format!("k{i}").into_bytes()))
            .collect();
        assert_eq!(got, want);
        keys.drop_db(3);
        assert_eq!(keys.len(), 20_000 - 1250);
        assert!(keys.iter().all(|(d, _)| d != 3));
    }

    #[test]
    fn rows_keep_their_rules() {
        let a = rule();
        let b = Arc::new(Rule::parse(&["m", "list", "m:{k}", "table=u"]).unwrap());
        let mut log = AppendLog::default();
        log.push(&a, 1, b"l:1", b"x");
        log.push(&b, 2, b"m:1", b"y");
        log.push(&a, 3, b"l:2", b"");
        let got: Vec<(&str, i64, &[u8], &[u8])> = log
            .iter()
            .map(|r| (r.rule.name.as_str(), r.id, r.key, r.value))
            .collect();
        assert_eq!(
            got,
            [
                ("l", 1, &b"l:1"[..], &b"x"[..]),
                ("m", 2, &b"m:1"[..], &b"y"[..]),
                ("l", 3, &b"l:2"[..], &b""[..])
            ]
        );
        assert_eq!(log.rules.len(), 2);
    }
}
