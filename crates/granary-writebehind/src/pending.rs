//! What is waiting for the next flush. Keys are coalesced: a key changed
//! a thousand times between flushes is one entry, and the flush reads its
//! state then. Pushed list elements are not coalesced: each keeps its value
//! and an id, assigned here in push order, that becomes its row id, so a
//! batch written twice (a retry after a failure) inserts nothing twice.

use crate::rules::Rule;
use foldhash::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// One pushed list element.
#[derive(Clone, Debug)]
pub struct Appended {
    pub rule: Arc<Rule>,
    pub id: i64,
    pub key: Box<[u8]>,
    pub value: Box<[u8]>,
}

#[derive(Default)]
pub struct Pending {
    /// Changed keys per database.
    pub keys: Vec<HashSet<Box<[u8]>>>,
    pub appended: Vec<Appended>,
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

    /// Marks a key changed; false if it was already pending.
    pub fn mark(&mut self, db: usize, key: &[u8]) -> bool {
        if self.keys.len() <= db {
            self.keys.resize_with(db + 1, HashSet::default);
        }
        if self.keys[db].contains(key) {
            return false;
        }
        self.keys[db].insert(key.into());
        self.rows += 1;
        self.touch();
        true
    }

    pub fn append(&mut self, a: Appended) {
        self.appended.push(a);
        self.rows += 1;
        self.touch();
    }

    pub fn emptied(&mut self, db: usize) {
        if !self.emptied.contains(&db) {
            self.emptied.push(db);
            self.rows += 1;
            self.touch();
        }
        // Keys of that database marked before are gone now; their rows go
        // with the table's, and re-created keys are marked again.
        if let Some(keys) = self.keys.get_mut(db) {
            self.rows -= keys.len();
            keys.clear();
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
        for (db, keys) in std::mem::take(&mut self.keys).into_iter().enumerate() {
            for k in keys {
                old.mark(db, &k);
            }
        }
        old.appended.append(&mut self.appended);
        // Keys pending in both were counted twice: recount.
        old.rows = old.keys.iter().map(|k| k.len()).sum::<usize>()
            + old.appended.len()
            + old.emptied.len();
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
    fn keys_coalesce() {
        let mut p = Pending::default();
        for _ in 0..1000 {
            p.mark(0, b"k");
        }
        p.mark(3, b"k");
        assert_eq!(p.rows, 2);
        let taken = p.take();
        assert_eq!(taken.rows, 2);
        assert!(p.is_empty() && p.oldest.is_none());
    }

    #[test]
    fn requeue_keeps_order_and_counts() {
        let mut p = Pending::default();
        let a = |id| Appended {
            rule: rule(),
            id,
            key: b"l:1".as_slice().into(),
            value: b"v".as_slice().into(),
        };
        p.append(a(1));
        p.mark(0, b"x");
        let old = p.take();
        p.append(a(2));
        p.mark(0, b"x");
        p.mark(0, b"y");
        p.requeue(old);
        let ids: Vec<i64> = p.appended.iter().map(|a| a.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(p.rows, 4);
        p.emptied(0);
        assert_eq!(p.rows, 3);
    }
}
