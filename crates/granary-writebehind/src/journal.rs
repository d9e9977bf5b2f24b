//! The write-behind journal: what is pending survives kill -9 and restart.
//!
//! Every change to the pending set (a key marked, a list element pushed, a
//! database emptied) is appended here while the pending lock is held, so
//! the journal's order is the pending set's order. Before a client gets a
//! reply, what its commands journaled is written to the file (and fsynced
//! with appendfsync always), as the AOF does: an acknowledged change
//! reaches the database even if the server dies before the next flush.
//!
//! The journal is a series of segment files, `journal.<seq>` in the
//! journal directory. When the flusher takes the pending set it *seals* the
//! current segment: every record of the batch it took is in a segment up to
//! that one, and nothing newer is. Once the batch is committed those
//! segments are deleted; a failed batch goes back to the pending set and
//! its segments stay. At start-up every segment left is replayed into the
//! pending set. A batch that was committed but whose segments were not yet
//! deleted is written again, which is harmless: upserts are idempotent and
//! appended rows keep their ids (`INSERT ... ON CONFLICT DO NOTHING`).
//!
//! A segment is a magic line, then frames: a little-endian u32 length, a
//! CRC-32C of the body, and the body, which is whole records. A frame is
//! what one write() carried, and the replies waiting for it were sent only
//! after that write returned, so a torn frame at the end of the last
//! segment held nothing acknowledged and is dropped. A bad frame anywhere
//! else is corruption, and start-up stops with the file and offset.

use crate::{CacheLine, SLOTS};
// A frame's CRC-32C runs before replies are sent: the crate uses the CPU's
// CRC32 instruction (SSE 4.2, ARMv8), several times faster than the
// slice-by-16 tables it replaced (0.9 % of a write-behind LPUSH; the
// byte-at-a-time table before them, 6 %). Same polynomial: files written
// with either read with the other.
use crc32c::crc32c;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const MAGIC: &[u8; 8] = b"GRNWBJ1\n";

/// One change to the pending set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A key changed; its state is read when it is flushed.
    Mark { db: u32, key: Vec<u8> },
    /// An element pushed to a list mapped by the rule named `rule`.
    Append {
        id: i64,
        rule: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A database was emptied.
    Emptied { db: u32 },
}

const MARK: u8 = 1;
const APPEND: u8 = 2;
const EMPTIED: u8 = 3;

/// A record to append, borrowing its bytes (the write path copies them
/// once, into the journal's buffer).
#[derive(Clone, Copy, Debug)]
pub enum RecordRef<'a> {
    Mark {
        db: u32,
        key: &'a [u8],
    },
    Append {
        id: i64,
        rule: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
    Emptied {
        db: u32,
    },
}

impl RecordRef<'_> {
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            RecordRef::Mark { db, key } => {
                out.push(MARK);
                out.extend_from_slice(&db.to_le_bytes());
                put_bytes(out, key);
            }
            RecordRef::Append {
                id,
                rule,
                key,
                value,
            } => {
                out.push(APPEND);
                out.extend_from_slice(&id.to_le_bytes());
                put_bytes(out, rule.as_bytes());
                put_bytes(out, key);
                put_bytes(out, value);
            }
            RecordRef::Emptied { db } => {
                out.push(EMPTIED);
                out.extend_from_slice(&db.to_le_bytes());
            }
        }
    }
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Mark { db, key } => RecordRef::Mark { db: *db, key },
            Record::Append {
                id,
                rule,
                key,
                value,
            } => RecordRef::Append {
                id: *id,
                rule,
                key,
                value,
            },
            Record::Emptied { db } => RecordRef::Emptied { db: *db },
        }
    }

    /// Decodes every record of a frame's body.
    fn decode_all(mut body: &[u8]) -> Option<Vec<Record>> {
        let mut records = vec![];
        while let Some((&kind, rest)) = body.split_first() {
            body = rest;
            let record = match kind {
                MARK => Record::Mark {
                    db: take_u32(&mut body)?,
                    key: take_bytes(&mut body)?.to_vec(),
                },
                APPEND => Record::Append {
                    id: i64::from_le_bytes(take(&mut body, 8)?.try_into().ok()?),
                    rule: String::from_utf8(take_bytes(&mut body)?.to_vec()).ok()?,
                    key: take_bytes(&mut body)?.to_vec(),
                    value: take_bytes(&mut body)?.to_vec(),
                },
                EMPTIED => Record::Emptied {
                    db: take_u32(&mut body)?,
                },
                _ => return None,
            };
            records.push(record);
        }
        Some(records)
    }
}

/// A length-prefixed byte string (also the pending arenas' layout).
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

pub(crate) fn take<'a>(body: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if body.len() < n {
        return None;
    }
    let (head, rest) = body.split_at(n);
    *body = rest;
    Some(head)
}

pub(crate) fn take_u32(body: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(body, 4)?.try_into().ok()?))
}

pub(crate) fn take_bytes<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = take_u32(body)? as usize;
    take(body, n)
}

/// Records appended in memory and not yet written, by segment.
#[derive(Default)]
struct Buffer {
    /// The segment new records go to.
    seq: u64,
    data: Vec<u8>,
    /// Sealed segments whose last records are not written yet.
    sealed: Vec<(u64, Vec<u8>)>,
    /// The buffer last written out, emptied, for `data` next: appends
    /// then reuse its capacity instead of growing a new Vec each time.
    spare: Vec<u8>,
}

/// One writing thread's records (see [`crate::slot`]), on cache lines of
/// their own: appends from two cores never share a lock or a line.
#[derive(Default)]
struct Tail {
    buf: Mutex<Buffer>,
    /// Bytes appended to / written out of this tail since start.
    appended: AtomicU64,
    written: AtomicU64,
}

/// The segment file being written.
struct Segment {
    seq: u64,
    file: File,
    /// Its length: where the next frame starts.
    len: u64,
}

pub struct Journal {
    dir: PathBuf,
    tails: Box<[CacheLine<Tail>]>,
    /// The segment being filled (sealing moves every tail to the next).
    seq: AtomicU64,
    file: Mutex<Option<Segment>>,
    /// Segments finished (a later one is being written) and not fsynced
    /// yet: the next fsync takes them, off the path of the write that
    /// moved on (a reply would otherwise wait for it).
    finished: Mutex<Vec<Segment>>,
    /// Write-outs done / the write-out count at the last fsync.
    writes: AtomicU64,
    synced_writes: AtomicU64,
    /// The last write or fsync error, for INFO (empty: none).
    pub last_error: Mutex<String>,
}

/// What the segments left by the last run held.
pub struct Recovered {
    pub records: Vec<Record>,
    pub segments: usize,
    /// A torn frame was dropped from the end of the last segment.
    pub torn_tail: bool,
}

/// A part of one tail taken for writing: its segment and its bytes.
struct Part {
    tail: usize,
    seq: u64,
    data: Vec<u8>,
}

/// Sealing in progress: holds the file lock, so no frame is written until
/// every tail is sealed and every frame of the old segment goes out before
/// any of the new one.
pub struct Sealing<'a> {
    journal: &'a Journal,
    _file: parking_lot::MutexGuard<'a, Option<Segment>>,
    /// The segment being sealed.
    pub sealed: u64,
}

impl Sealing<'_> {
    /// Seals tail `slot`: its records so far belong to the sealed segment,
    /// later ones to the next. The caller holds that slot's pending lock
    /// and has just taken its pending set.
    pub fn seal(&self, slot: usize) {
        let mut b = self.journal.tails[slot].buf.lock();
        let data = std::mem::take(&mut b.data);
        if !data.is_empty() {
            let seq = b.seq;
            b.sealed.push((seq, data));
        }
        b.seq = self.sealed + 1;
    }
}

impl Journal {
    /// Opens the journal in `dir` (created if absent) and reads what the
    /// last run left. New records go to a segment after the last one found.
    pub fn open(dir: &Path) -> Result<(Journal, Recovered), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("can't create the journal directory {}: {e}", dir.display()))?;
        let segments = list_segments(dir)?;
        let mut recovered = Recovered {
            records: vec![],
            segments: segments.len(),
            torn_tail: false,
        };
        for (i, (_, path)) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            recovered.torn_tail |= read_segment(path, last, &mut recovered.records)?;
        }
        let next = segments.last().map_or(1, |(seq, _)| seq + 1);
        let tails = (0..SLOTS)
            .map(|_| {
                CacheLine(Tail {
                    buf: Mutex::new(Buffer {
                        seq: next,
                        ..Buffer::default()
                    }),
                    ..Tail::default()
                })
            })
            .collect();
        let journal = Journal {
            dir: dir.to_path_buf(),
            tails,
            seq: AtomicU64::new(next),
            file: Mutex::new(None),
            finished: Mutex::new(vec![]),
            writes: AtomicU64::new(0),
            synced_writes: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        };
        Ok((journal, recovered))
    }

    /// Appends a record to tail `slot` (the caller holds that slot's
    /// pending lock, so the tail's records are in its pending set's order).
    pub fn append(&self, slot: usize, r: RecordRef<'_>) {
        let t = &self.tails[slot];
        let mut b = t.buf.lock();
        let before = b.data.len();
        r.encode(&mut b.data);
        let n = (b.data.len() - before) as u64;
        t.appended.store(t.appended.load(Relaxed) + n, Relaxed);
    }

    /// Starts ending the current segment (see [`Sealing`]).
    pub fn begin_seal(&self) -> Sealing<'_> {
        let file = self.file.lock();
        let sealed = self.seq.fetch_add(1, Relaxed);
        Sealing {
            journal: self,
            _file: file,
            sealed,
        }
    }

    /// Keeps sealing from starting while the guard lives.
    pub fn no_sealing(&self) -> impl Drop + '_ {
        self.file.lock()
    }

    /// Seals every tail at once; returns the sealed segment's number.
    pub fn seal(&self) -> u64 {
        let sealing = self.begin_seal();
        for slot in 0..SLOTS {
            sealing.seal(slot);
        }
        sealing.sealed
    }

    /// Everything appended is written (and fsynced with `always`)? Cheap
    /// when there is nothing to do: a few relaxed loads.
    pub fn wait_durable(&self, always: bool) {
        let needed = || self.unwritten() || (always && self.unsynced());
        if !needed() {
            return;
        }
        let mut f = self.file.lock();
        if !needed() {
            return;
        }
        self.write_out(&mut f);
        if always {
            self.sync(&mut f);
        }
    }

    /// Writes what is buffered (the background thread, every 100 ms).
    pub fn write_pending(&self) {
        if self.unwritten() {
            self.write_out(&mut self.file.lock());
        }
    }

    /// fsyncs the segment being written (appendfsync everysec).
    pub fn sync_now(&self) {
        if self.unsynced() {
            self.sync(&mut self.file.lock());
        }
    }

    /// The batch taken when segment `sealed` was sealed is committed:
    /// deletes that segment and every older one.
    pub fn committed(&self, sealed: u64) {
        let mut f = self.file.lock();
        // Sealed data still in memory must not be written after its file
        // is deleted, nor be lost if it belongs to a later segment.
        self.write_out(&mut f);
        if f.as_ref().is_some_and(|s| s.seq <= sealed) {
            *f = None;
        }
        // Committed: their files go, no need to fsync them.
        self.finished.lock().retain(|seg| seg.seq > sealed);
        match list_segments(&self.dir) {
            Ok(segments) => {
                for (seq, path) in segments {
                    if seq <= sealed {
                        if let Err(e) = std::fs::remove_file(&path) {
                            self.failed(&path, "delete", &e);
                        }
                    }
                }
            }
            Err(e) => *self.last_error.lock() = e,
        }
    }

    /// Something appended is not yet written. Tails no thread writes to
    /// stay in every core's cache, so their loads cost little.
    #[inline]
    pub fn unwritten(&self) -> bool {
        self.tails
            .iter()
            .any(|t| t.written.load(Relaxed) < t.appended.load(Relaxed))
    }

    /// Something written is not yet fsynced.
    #[inline]
    pub fn unsynced(&self) -> bool {
        self.synced_writes.load(Relaxed) < self.writes.load(Relaxed)
    }

    /// Writes every tail's buffered records out, older segments first,
    /// one frame per tail and segment. The caller holds the file lock.
    fn write_out(&self, f: &mut Option<Segment>) {
        let mut parts = vec![];
        let mut targets = [0u64; SLOTS];
        for (i, t) in self.tails.iter().enumerate() {
            if t.written.load(Relaxed) >= t.appended.load(Relaxed) {
                continue;
            }
            let mut b = t.buf.lock();
            targets[i] = t.appended.load(Relaxed);
            for (seq, data) in std::mem::take(&mut b.sealed) {
                parts.push(Part { tail: i, seq, data });
            }
            let spare = std::mem::take(&mut b.spare);
            let data = std::mem::replace(&mut b.data, spare);
            if !data.is_empty() {
                parts.push(Part {
                    tail: i,
                    seq: b.seq,
                    data,
                });
            }
        }
        if parts.is_empty() {
            return;
        }
        // Stable: each tail's parts keep their order.
        parts.sort_by_key(|p| p.seq);
        let failed = parts.iter().position(|p| {
            self.write_frame(f, p.seq, &p.data).is_err_and(|(path, e)| {
                self.failed(&path, "write", &e);
                true
            })
        });
        let retry = match failed {
            Some(i) => parts.split_off(i),
            None => vec![],
        };
        if retry.is_empty() {
            self.writes.fetch_add(1, Relaxed);
            self.last_error.lock().clear();
        }
        // The records of a failed write stay in memory, in order, and are
        // retried; the replies waiting for them still go out (as Redis does
        // when an AOF write fails with appendfsync no).
        let mut back: [Vec<(u64, Vec<u8>)>; SLOTS] = Default::default();
        for p in retry {
            back[p.tail].push((p.seq, p.data));
        }
        for (i, t) in self.tails.iter().enumerate() {
            if targets[i] == 0 && back[i].is_empty() {
                continue;
            }
            let mut b = t.buf.lock();
            if back[i].is_empty() {
                t.written.store(targets[i], Relaxed);
            } else {
                let mut newer = std::mem::take(&mut b.sealed);
                b.sealed = std::mem::take(&mut back[i]);
                b.sealed.append(&mut newer);
            }
        }
        for p in parts {
            let mut data = p.data;
            if data.capacity() > 0 {
                data.clear();
                let mut b = self.tails[p.tail].buf.lock();
                if b.spare.capacity() < data.capacity() {
                    b.spare = data;
                }
            }
        }
    }

    fn write_frame(
        &self,
        f: &mut Option<Segment>,
        seq: u64,
        data: &[u8],
    ) -> Result<(), (PathBuf, io::Error)> {
        let path = segment_path(&self.dir, seq);
        if f.as_ref().is_none_or(|s| s.seq != seq) {
            // Its frames are fsynced with the current segment's.
            if let Some(old) = f.take() {
                self.finished.lock().push(old);
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| (path.clone(), e))?;
            let mut len = file.metadata().map_err(|e| (path.clone(), e))?.len();
            if len == 0 {
                file.write_all(MAGIC).map_err(|e| (path.clone(), e))?;
                len = MAGIC.len() as u64;
            }
            *f = Some(Segment { seq, file, len });
        }
        let Some(seg) = f.as_mut() else {
            return Ok(());
        };
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32c(data).to_le_bytes());
        match write_all_vectored(&mut seg.file, &header, data) {
            Ok(()) => {
                seg.len += (header.len() + data.len()) as u64;
                Ok(())
            }
            Err(e) => {
                // A frame cut short in the middle of a segment would read
                // as corruption: cut it off (the retry writes it whole).
                let _ = seg.file.set_len(seg.len);
                Err((path, e))
            }
        }
    }

    fn sync(&self, f: &mut Option<Segment>) {
        let writes = self.writes.load(Relaxed);
        let finished = std::mem::take(&mut *self.finished.lock());
        let mut ok = true;
        for seg in finished.iter().chain(f.as_ref()) {
            if let Err(e) = seg.file.sync_data() {
                self.failed(&segment_path(&self.dir, seg.seq), "fsync", &e);
                ok = false;
            }
        }
        if ok {
            self.synced_writes.store(writes, Relaxed);
        } else {
            // Tried again at the next fsync.
            let mut again = self.finished.lock();
            let newer = std::mem::replace(&mut *again, finished);
            again.extend(newer);
        }
    }

    fn failed(&self, path: &Path, what: &str, e: &io::Error) {
        let msg = format!("can't {what} the journal {}: {e}", path.display());
        tracing::warn!("write-behind: {msg}");
        *self.last_error.lock() = msg;
    }
}

/// Writes `head` then `body` with as few write calls as the kernel allows
/// (one, nearly always), without copying them into one buffer.
fn write_all_vectored(file: &mut File, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut bufs = [io::IoSlice::new(head), io::IoSlice::new(body)];
    let mut slices = &mut bufs[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal.{seq:012}"))
}

/// The segment files in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("can't read the journal directory {}: {e}", dir.display()))?;
    let mut segments: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let seq = name.to_str()?.strip_prefix("journal.")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

/// Reads one segment's records into `out`. Returns whether a torn frame
/// was dropped from its end (allowed only in the `last` segment).
fn read_segment(path: &Path, last: bool, out: &mut Vec<Record>) -> Result<bool, String> {
    let mut data = vec![];
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| format!("can't read the journal {}: {e}", path.display()))?;
    let bad = |offset: usize, what: &str| {
        format!(
            "the write-behind journal {} is corrupt at offset {offset} ({what}); move it away to start without it (its changes would not reach the database)",
            path.display()
        )
    };
    if data.len() < MAGIC.len() {
        // Created, then the server died before its first frame.
        return if last && MAGIC.starts_with(&data) {
            Ok(!data.is_empty())
        } else {
            Err(bad(0, "no journal header"))
        };
    }
    if &data[..MAGIC.len()] != MAGIC {
        return Err(bad(0, "no journal header"));
    }
    let mut at = MAGIC.len();
    while at < data.len() {
        let frame = data.get(at..at + 8).and_then(|h| {
            let len = u32::from_le_bytes(h[..4].try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(h[4..].try_into().ok()?);
            let body = data.get(at + 8..(at + 8).checked_add(len)?)?;
            Some((crc, body))
        });
        let Some((crc, body)) = frame else {
            // Shorter than its header says: a write cut short.
            return if last {
                Ok(true)
            } else {
                Err(bad(at, "truncated frame"))
            };
        };
        if crc32c(body) != crc {
            return Err(bad(at, "checksum mismatch"));
        }
        let records = Record::decode_all(body).ok_or_else(|| bad(at, "bad record"))?;
        out.extend(records);
        at += 8 + body.len();
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "granary-journal-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mark(key: &str) -> Record {
        Record::Mark {
            db: 0,
            key: key.as_bytes().to_vec(),
        }
    }

    fn append(id: i64) -> Record {
        Record::Append {
            id,
            rule: "clicks".into(),
            key: b"recommend:1".to_vec(),
            value: format!("item{id}").into_bytes(),
        }
    }

    #[test]
    fn records_survive_a_restart_until_committed() {
        let d = dir("restart");
        let (j, rec) = Journal::open(&d).unwrap();
        assert!(rec.records.is_empty());
        j.append(0, mark("a").as_ref());
        j.append(0, append(7).as_ref());
        j.wait_durable(false);
        let sealed = j.seal();
        j.append(0, Record::Emptied { db: 2 }.as_ref());
        j.append(0, append(8).as_ref());
        j.wait_durable(true);
        drop(j);
        // Nothing committed: everything comes back, in order.
        let (j, rec) = Journal::open(&d).unwrap();
        assert_eq!(
            rec.records,
            [mark("a"), append(7), Record::Emptied { db: 2 }, append(8)]
        );
        assert!(!rec.torn_tail);
        // The first batch committed in the old run's numbering: only the
        // second batch's records remain.
        j.committed(sealed);
        drop(j);
        let (_, rec) = Journal::open(&d).unwrap();
        assert_eq!(rec.records, [Record::Emptied { db: 2 }, append(8)]);
    }

    /// Moving on to a new segment leaves the old one's fsync to the next
    /// fsync (the background thread's, or a reply's with `always`), not
    /// to the write that moved on; a commit drops it.
    #[test]
    fn finished_segments_are_fsynced_with_the_next_fsync() {
        let d = dir("finished");
        let (j, _) = Journal::open(&d).unwrap();
        j.append(0, mark("a").as_ref());
        j.wait_durable(false);
        let first = j.seal();
        j.append(0, mark("b").as_ref());
        j.wait_durable(false);
        assert_eq!(j.finished.lock().len(), 1);
        assert!(j.unsynced());
        j.sync_now();
        assert!(j.finished.lock().is_empty() && !j.unsynced());
        j.seal();
        j.append(0, mark("c").as_ref());
        j.wait_durable(false);
        assert_eq!(j.finished.lock().len(), 1);
        j.committed(first + 1);
        assert!(j.finished.lock().is_empty());
        drop(j);
        let (_, rec) = Journal::open(&d).unwrap();
        assert_eq!(rec.records, [mark("c")]);
    }

    #[test]
    fn commit_keeps_what_came_after_the_seal() {
        let d = dir("seal");
        let (j, _) = Journal::open(&d).unwrap();
        j.append(0, mark("taken").as_ref());
        // Sealed while still in memory: the flusher took the batch before
        // the background writer ran.
        let sealed = j.seal();
        j.append(0, mark("newer").as_ref());
        j.committed(sealed);
        j.wait_durable(false);
        drop(j);
        let (_, rec) = Journal::open(&d).unwrap();
        assert_eq!(rec.records, [mark("newer")]);
    }

    #[test]
    fn torn_tail_is_dropped_and_corruption_refused() {
        let d = dir("torn");
        let (j, _) = Journal::open(&d).unwrap();
        j.append(0, mark("kept").as_ref());
        j.wait_durable(false);
        j.append(0, mark("torn").as_ref());
        j.wait_durable(false);
        drop(j);
        let path = list_segments(&d).unwrap().pop().unwrap().1;
        let full = std::fs::read(&path).unwrap();
        // Cut inside the second frame: the first survives.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (_, rec) = Journal::open(&d).unwrap();
        assert_eq!(rec.records, [mark("kept")]);
        assert!(rec.torn_tail);
        // A flipped byte inside the first frame: refused, naming the file.
        let mut bad = full.clone();
        bad[MAGIC.len() + 10] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let err = Journal::open(&d).err().unwrap();
        assert!(
            err.contains("corrupt at offset 8") && err.contains("journal."),
            "{err}"
        );
        // A torn frame in a segment that is not the last is corruption too.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        std::fs::write(segment_path(&d, 999), MAGIC).unwrap();
        let err = Journal::open(&d).err().unwrap();
        assert!(err.contains("truncated frame"), "{err}");
    }

    /// CRC-32C's check value: journals of earlier builds (the `crc`
    /// crate's CRC_32_ISCSI) still read.
    #[test]
    fn frames_use_crc32c() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn garbage_lengths_do_not_allocate() {
        let d = dir("garbage");
        std::fs::create_dir_all(&d).unwrap();
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&[0; 4]);
        std::fs::write(segment_path(&d, 1), &data).unwrap();
        // A header claiming 4 GB at the end of the last segment: torn.
        let (_, rec) = Journal::open(&d).unwrap();
        assert!(rec.torn_tail && rec.records.is_empty());
        // A record whose inner length overruns its frame: refused.
        let body = [MARK, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&(body.len() as u32).to_le_bytes());
        data.extend_from_slice(&crc32c(&body).to_le_bytes());
        data.extend_from_slice(&body);
        std::fs::write(segment_path(&d, 1), &data).unwrap();
        assert!(Journal::open(&d).err().unwrap().contains("bad record"));
    }
}
