//! What is waiting for the next flush. Changed keys are queued once per
//! flush (the keyspace entry's pending bit, `Db::mark_pending`, stops the
//! repeats), and the flush reads each key's state then. A key can still be
//! queued twice (deleted and re-created, or queued again after a failed
//! batch was put back): the flush reads it once (`Pending::keys_by_db`).
//! Appended rows (pushed list elements, stream entries) are not coalesced:
//! each keeps its value and an id, assigned in push order, that becomes
//! its row id, so a batch written twice (a retry after a failure) inserts
//! nothing twice.
//!
//! Both are kept in flat byte arenas, not one allocation per key or row:
//! queueing is on the command path.

use crate::journal::{put_bytes as put, take, take_bytes, take_u32};
use crate::rules::Rule;
use foldhash::{HashSet, HashSetExt};
use std::sync::Arc;
use std::time::Instant;

/// Queued keys: `db: u32, len: u32, key` records, in arrival order.
#[derive(Default)]
pub struct KeyLog {
    bytes: Vec<u8>,
    len: usize,
}

impl KeyLog {
    fn push(&mut self, db: usize, key: &[u8]) {
        self.bytes.extend_from_slice(&(db as u32).to_le_bytes());
        put(&mut self.bytes, key);
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
        let mut rest = &self.bytes[..];
        std::iter::from_fn(move || {
            let db = take_u32(&mut rest)? as usize;
            Some((db, take_bytes(&mut rest)?))
        })
    }

    fn append(&mut self, other: &KeyLog) {
        self.bytes.extend_from_slice(&other.bytes);
        self.len += other.len;
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
    bytes: Vec<u8>,
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
        self.bytes.extend_from_slice(&(index as u32).to_le_bytes());
        self.bytes.extend_from_slice(&id.to_le_bytes());
        put(&mut self.bytes, key);
        put(&mut self.bytes, value);
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
        let mut rest = &self.bytes[..];
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
        if !self.emptied.contains(&db) {
            self.emptied.push(db);
            self.rows += 1;
            self.touch();
        }
        // Keys of that database queued before are gone now; their rows go
        // with the table's, and re-created keys are queued again.
        let before = self.keys.len();
        self.keys.drop_db(db);
        self.rows -= before - self.keys.len();
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes everything, leaving this empty.
    pub fn take(&mut self) -> Pending {
        std::mem::take(self)
    }

    /// The distinct queued keys of each database (index = database).
    pub fn keys_by_db(&self) -> Vec<HashSet<&[u8]>> {
        let mut out: Vec<HashSet<&[u8]>> = vec![];
        for (db, key) in self.keys.iter() {
            if out.len() <= db {
                out.resize_with(db + 1, HashSet::new);
            }
            out[db].insert(key);
        }
        out
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
        old.oldest = match (old.oldest, self.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        *self = old;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Arc<Rule> {
        Arc::new(Rule::parse(&["l", "list", "l:{k}", "table=t"]).unwrap())
    }

    #[test]
    fn repeated_keys_are_read_once() {
        let mut p = Pending::default();
        for _ in 0..3 {
            p.mark(0, b"k");
        }
        p.mark(3, b"k");
        assert_eq!(p.rows, 4);
        let by_db = p.keys_by_db();
        assert_eq!(by_db[0].len(), 1);
        assert!(by_db[3].contains(&b"k"[..]));
        let taken = p.take();
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
