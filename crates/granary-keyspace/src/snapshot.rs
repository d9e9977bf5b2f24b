//! Fork-less point-in-time snapshots: the keyspace's side of BGSAVE.
//!
//! Redis forks and lets the kernel copy pages on write, which stalls the
//! parent for the fork and can double memory under writes. Granary copies
//! per key instead, and only keys that change during the save:
//!
//! - Every entry carries a one-bit mark. A save starts (with every shard
//!   held, so no command is half-way) by flipping the keyspace's *parity*:
//!   from then on an entry whose mark differs from the parity still owes
//!   its value to the snapshot. Entries created during the save get the new
//!   parity, so they are not part of it.
//! - The saver thread walks each database shard by shard (SCAN's cursor, so
//!   a rehash cannot make it miss an entry), serializes every entry that
//!   still owes, and sets its mark.
//! - A writer about to change or delete an entry that still owes (`Db`
//!   calls `preserve` first) serializes the old value into the save's side
//!   buffer for that database and sets the mark. So each entry is written
//!   exactly once, as it was when the save started, whoever writes it.
//! - A database emptied by FLUSHDB/FLUSHALL during a save is handed over
//!   whole (`detach`), the saver finishes it later.
//!
//! After a save every entry's mark equals the parity, so the next flip makes
//! them all owe again. A save that fails still walks to the end (writing
//! nothing), which keeps that invariant.

use crate::value::{Entry, Value};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// The size of the side buffer's chunks.
const SIDE_CHUNK: usize = 1 << 20;

/// Serializes one key (its record in the snapshot's format) into `out`.
pub type Encoder = std::sync::Arc<dyn Fn(&[u8], &Value, Option<u64>, &mut Vec<u8>) + Send + Sync>;

/// The snapshot state shared by every `Db` of a keyspace.
#[derive(Default)]
pub struct Snapshot {
    active: AtomicBool,
    parity: AtomicBool,
    /// Bytes writers serialized on the command path during the current or
    /// last save (INFO rdb_last_cow_size).
    cow_bytes: AtomicU64,
    job: Mutex<Option<Job>>,
}

struct Job {
    encode: Encoder,
    /// Per database: records writers serialized before changing entries.
    /// Per database, chunks of at most about SIDE_CHUNK bytes: a buffer
    /// that only grew would be copied whole on reallocation, by a writer
    /// holding its shard (a pause of milliseconds when the saver, at low
    /// priority, falls behind).
    side: Vec<Vec<Vec<u8>>>,
    /// Per database: contents emptied (FLUSHDB) during the save.
    detached: Vec<Vec<crate::db::Db>>,
}

impl Snapshot {
    /// Whether a save is running.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// The mark an entry gets once the current save has it (or, between
    /// saves, the mark every entry has).
    #[inline]
    pub fn parity(&self) -> bool {
        self.parity.load(Relaxed)
    }

    /// Starts a save of `dbs` databases. The caller must hold every shard,
    /// so that no entry is being changed while the parity flips.
    pub fn begin(&self, dbs: usize, encode: Encoder) {
        *self.job.lock() = Some(Job {
            encode,
            side: (0..dbs).map(|_| Vec::new()).collect(),
            detached: (0..dbs).map(|_| Vec::new()).collect(),
        });
        self.cow_bytes.store(0, Relaxed);
        self.parity.fetch_xor(true, Relaxed);
        self.active.store(true, Release);
    }

    /// Ends the save. Every entry's mark must equal the parity by now.
    pub fn end(&self) {
        self.active.store(false, Release);
        *self.job.lock() = None;
    }

    /// Whether `e` still owes its value to the running save.
    #[inline]
    pub(crate) fn owes(&self, e: &Entry) -> bool {
        self.active() && e.mark() != self.parity()
    }

    /// Serializes `e` (as it is now) into database `db`'s side buffer and
    /// marks it saved. The caller holds `e`'s shard.
    pub(crate) fn preserve(&self, db: usize, e: &mut Entry, expire: Option<u64>) {
        if let Some(job) = self.job.lock().as_mut() {
            let chunks = &mut job.side[db];
            if chunks.last().is_none_or(|c| c.len() >= SIDE_CHUNK) {
                chunks.push(Vec::with_capacity(SIDE_CHUNK));
            }
            if let Some(buf) = chunks.last_mut() {
                let before = buf.len();
                (job.encode)(e.key(), &e.value, expire, buf);
                self.cow_bytes
                    .fetch_add((buf.len() - before) as u64, Relaxed);
            }
        }
        e.set_mark(self.parity());
    }

    /// What writers preserved for database `db` since the last call.
    pub fn drain_side(&self, db: usize) -> Vec<Vec<u8>> {
        self.job
            .lock()
            .as_mut()
            .map(|j| std::mem::take(&mut j.side[db]))
            .unwrap_or_default()
    }

    /// Hands the old contents of database `db`, emptied during the save,
    /// to the saver.
    pub(crate) fn detach(&self, db: usize, old: crate::db::Db) -> Option<crate::db::Db> {
        match self.job.lock().as_mut() {
            Some(j) => {
                j.detached[db].push(old);
                None
            }
            None => Some(old),
        }
    }

    /// The emptied contents of database `db` still owed to the save.
    pub fn take_detached(&self, db: usize) -> Vec<crate::db::Db> {
        self.job
            .lock()
            .as_mut()
            .map(|j| std::mem::take(&mut j.detached[db]))
            .unwrap_or_default()
    }

    /// Bytes writers serialized during the current or last save.
    pub fn cow_bytes(&self) -> u64 {
        self.cow_bytes.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::StrValue;

    /// Preserved values land in chunks of about SIDE_CHUNK bytes (a
    /// growing buffer would be copied whole while a writer waits), and
    /// draining gives them back in order.
    #[test]
    fn side_buffer_grows_by_chunks_in_order() {
        let snap = Snapshot::default();
        snap.begin(
            1,
            std::sync::Arc::new(|key, _, _, out: &mut Vec<u8>| out.extend_from_slice(key)),
        );
        let n = 3 * SIDE_CHUNK / 1000 + 7;
        let mut want = vec![];
        for i in 0..n {
            let key = format!("{i:0>1000}");
            let mut e = Entry::new(key.as_bytes(), Value::Str(StrValue::from_bytes(b"v")));
            assert!(snap.owes(&e));
            snap.preserve(0, &mut e, None);
            assert!(!snap.owes(&e), "a preserved entry is marked saved");
            want.extend_from_slice(key.as_bytes());
        }
        let chunks = snap.drain_side(0);
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < SIDE_CHUNK + 1000));
        assert_eq!(chunks.concat(), want);
        assert!(snap.drain_side(0).is_empty());
        snap.end();
    }
}
