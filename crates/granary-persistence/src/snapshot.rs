//! RDB files of a whole keyspace: a point-in-time save that runs beside
//! the commands (the keyspace's copy-on-write side is
//! `granary_keyspace::snapshot`), and loading at start-up.

use crate::file::{self, Access, Item, ReadError, Writer};
use crate::value::Limits;
use crate::{aof_rewrite, hash_ttl};
use granary_keyspace::{hash_bytes, shard_of, Entry, Keyspace, SHARDS};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How much the saver serializes per shard lock: small enough that a
/// command waiting for the shard waits microseconds, not milliseconds.
const STEP_BYTES: usize = 16 * 1024;
const STEP_KEYS: usize = 32;

/// Counters a running save updates (INFO current_save_keys_*).
#[derive(Default)]
pub struct Progress {
    pub keys_total: AtomicU64,
    pub keys_done: AtomicU64,
}

/// What a finished save did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaveStats {
    pub keys: u64,
    pub bytes: u64,
    /// Bytes commands serialized themselves, for keys they changed first.
    pub cow_bytes: u64,
}

/// The IDLE or FREQ record of a key with this access clock (under an LRU
/// or LFU maxmemory-policy), or None.
pub type AccessOf = Arc<dyn Fn(u16) -> Option<Access> + Send + Sync>;

/// What a save writes.
#[derive(Clone)]
pub enum Format {
    /// An RDB file; without `checksum` (rdbchecksum no) it ends in a zero
    /// checksum, as Redis writes it. With `access`, keys carry their IDLE
    /// or FREQ record, as Redis writes them under an LRU or LFU policy
    /// (except keys commands changed during the save, which the keyspace
    /// hands over without their clock).
    Rdb {
        checksum: bool,
        access: Option<AccessOf>,
    },
    /// Commands that rebuild the data (an AOF base with
    /// aof-use-rdb-preamble no), see [`aof_rewrite`].
    Commands,
}

impl Format {
    /// How one key is written, without its access clock (the keyspace
    /// calls it for keys changed during the save).
    fn encoder(&self, lim: Limits) -> Encoder {
        match self {
            Format::Rdb { .. } => {
                Arc::new(move |key, value, expire, out| record(out, key, value, expire, &lim))
            }
            Format::Commands => {
                Arc::new(|key, value, expire, out| aof_rewrite::key(out, key, value, expire))
            }
        }
    }

    /// How the saver's walk writes an entry.
    fn walker(&self, lim: Limits) -> Walker {
        match self {
            Format::Rdb {
                access: Some(of), ..
            } => {
                let of = of.clone();
                Box::new(move |e, expire, out| {
                    let access = of(e.access_clock());
                    file::record_with_access(out, e.key(), &e.value, expire, access, &lim)
                })
            }
            _ => {
                let encode = self.encoder(lim);
                Box::new(move |e, expire, out| encode(e.key(), &e.value, expire, out))
            }
        }
    }
}

type Encoder = granary_keyspace::snapshot::Encoder;
type Walker = Box<dyn Fn(&Entry, Option<u64>, &mut Vec<u8>)>;

/// Saves `ks` as it is at the moment of the call to `path` (written to a
/// temporary file in the same directory, synced, then renamed, so `path`
/// is always a complete file). Commands keep running meanwhile.
pub fn save(
    ks: &Keyspace,
    path: &Path,
    lim: Limits,
    ctime_secs: u64,
    progress: &Progress,
) -> io::Result<SaveStats> {
    save_observed(ks, path, lim, ctime_secs, progress, || {})
}

/// `save`, calling `between` after the snapshot began and between the
/// saver's steps (with no lock held): tests change the keyspace there to
/// check that the file still holds the instant the save began.
pub fn save_observed(
    ks: &Keyspace,
    path: &Path,
    lim: Limits,
    ctime_secs: u64,
    progress: &Progress,
    between: impl FnMut(),
) -> io::Result<SaveStats> {
    let format = Format::Rdb {
        checksum: true,
        access: None,
    };
    save_with(
        ks,
        path,
        lim,
        format,
        ctime_secs,
        progress,
        Vec::new,
        between,
    )
}

/// `save_observed`, calling `at_begin` at the instant of the snapshot,
/// with every shard held: it returns the function libraries' code to save
/// with the data, and an AOF rewrite starts its new incremental file
/// there, so the base and the increments meet exactly. `format` says
/// what the file is: RDB or commands.
#[allow(clippy::too_many_arguments)]
pub fn save_with(
    ks: &Keyspace,
    path: &Path,
    lim: Limits,
    format: Format,
    ctime_secs: u64,
    progress: &Progress,
    at_begin: impl FnOnce() -> Vec<Vec<u8>>,
    mut between: impl FnMut(),
) -> io::Result<SaveStats> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp = dir.unwrap_or(Path::new(".")).join(format!(
        "temp-{}.{}",
        std::process::id(),
        format.extension()
    ));
    let mut out = Ok(File::create(&tmp)
        .and_then(|f| Sink::new(CountingWriter::new(f), &format, lim, ctime_secs))
        .map_err(|e| annotate(e, &tmp))?);
    let walk = format.walker(lim);
    let (sizes, functions) = begin(ks, format.encoder(lim), at_begin);
    for code in &functions {
        if let Ok(w) = &mut out {
            if let Err(e) = w.function(code) {
                out = Err(e);
            }
        }
    }
    between();
    progress
        .keys_total
        .store(sizes.iter().map(|s| s.0).sum(), Relaxed);
    progress.keys_done.store(0, Relaxed);
    let mut keys = 0;
    for (db, &(n, expires)) in sizes.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if let Ok(w) = &mut out {
            if let Err(e) = w.select_db(db as u64, n, expires) {
                out = Err(e);
            }
        }
        keys += save_db(ks, db, &walk, &mut out, progress, &mut between);
    }
    let cow_bytes = ks.snapshot().cow_bytes();
    ks.snapshot().end();
    let result = out.and_then(|w| {
        let f = w.finish()?;
        let bytes = f.written;
        f.inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(bytes)
    });
    match result {
        Ok(bytes) => {
            std::fs::rename(&tmp, path).map_err(|e| annotate(e, path))?;
            if let Some(d) = dir {
                // The rename itself must survive a crash.
                File::open(d).and_then(|d| d.sync_all()).ok();
            }
            Ok(SaveStats {
                keys,
                bytes,
                cow_bytes,
            })
        }
        Err(e) => {
            std::fs::remove_file(&tmp).ok();
            Err(e)
        }
    }
}

/// Starts the snapshot with every shard held; returns each database's
/// (keys, keys with a TTL) at that instant.
fn begin(
    ks: &Keyspace,
    encode: Encoder,
    at_begin: impl FnOnce() -> Vec<Vec<u8>>,
) -> (Vec<(u64, u64)>, Vec<Vec<u8>>) {
    let mut locked = ks.lock_all();
    let functions = at_begin();
    let mut sizes = vec![(0u64, 0u64); ks.databases()];
    for shard in locked.shards() {
        for (i, db) in shard.dbs.iter().enumerate() {
            sizes[i].0 += db.len() as u64;
            sizes[i].1 += db.volatile() as u64;
        }
    }
    ks.snapshot().begin(ks.databases(), encode);
    (sizes, functions)
}

/// Writes database `db`: a walk over its shards, what commands preserved
/// meanwhile, and what FLUSHDB handed over. A failed output is dropped and
/// the walk goes on, since every entry must be marked either way.
fn save_db(
    ks: &Keyspace,
    db: usize,
    walk: &Walker,
    out: &mut io::Result<Sink>,
    progress: &Progress,
    between: &mut dyn FnMut(),
) -> u64 {
    let mut keys = 0u64;
    let mut buf = Vec::with_capacity(STEP_BYTES * 2);
    let mut courtesy = granary_keyspace::courtesy::Courtesy::default();
    for shard in 0..SHARDS {
        let mut cursor = 0;
        loop {
            let mut n = 0u64;
            {
                let mut s = ks.lock_shard(shard);
                let d = s.db(db);
                loop {
                    cursor = d.save_step(cursor, |e, expire| {
                        walk(e, expire, &mut buf);
                        n += 1;
                    });
                    if cursor == 0 || buf.len() >= STEP_BYTES || n >= STEP_KEYS as u64 {
                        break;
                    }
                }
            }
            keys += n;
            progress.keys_done.fetch_add(n, Relaxed);
            courtesy.step();
            between();
            emit(&mut buf, out);
            for mut chunk in ks.snapshot().drain_side(db) {
                emit(&mut chunk, out);
            }
            if cursor == 0 {
                break;
            }
        }
    }
    for mut old in ks.snapshot().take_detached(db) {
        let mut cursor = 0;
        loop {
            cursor = old.save_step(cursor, |e, expire| {
                walk(e, expire, &mut buf);
                keys += 1;
            });
            if buf.len() >= STEP_BYTES {
                emit(&mut buf, out);
            }
            if cursor == 0 {
                break;
            }
        }
        emit(&mut buf, out);
    }
    for mut chunk in ks.snapshot().drain_side(db) {
        emit(&mut chunk, out);
    }
    keys
}

/// A key's record. One value is serialized whole, under its shard's lock:
/// a huge collection (a stream of millions of entries, say) holds the
/// shard for the time it takes.
fn record(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &granary_keyspace::Value,
    expire: Option<u64>,
    lim: &Limits,
) {
    file::record(out, key, value, expire, lim)
}

/// Writes `buf` out (unless the output already failed) and clears it.
fn emit(buf: &mut Vec<u8>, out: &mut io::Result<Sink>) {
    if let Ok(w) = out {
        if !buf.is_empty() {
            if let Err(e) = w.records(buf) {
                *out = Err(e);
            }
        }
    }
    buf.clear();
}

impl Format {
    fn extension(&self) -> &'static str {
        match self {
            Format::Rdb { .. } => "rdb",
            Format::Commands => "aof",
        }
    }
}

/// The file being written, in either format.
enum Sink {
    Rdb(Writer<CountingWriter>),
    Commands(CountingWriter),
}

impl Sink {
    fn new(out: CountingWriter, format: &Format, lim: Limits, ctime_secs: u64) -> io::Result<Sink> {
        Ok(match format {
            Format::Rdb { checksum, .. } => {
                Sink::Rdb(Writer::with_checksum(out, lim, ctime_secs, *checksum)?)
            }
            Format::Commands => Sink::Commands(out),
        })
    }

    fn function(&mut self, code: &[u8]) -> io::Result<()> {
        match self {
            Sink::Rdb(w) => w.function(code),
            Sink::Commands(w) => {
                let mut buf = Vec::new();
                aof_rewrite::function(&mut buf, code);
                w.write_all(&buf)
            }
        }
    }

    fn select_db(&mut self, db: u64, keys: u64, expires: u64) -> io::Result<()> {
        match self {
            Sink::Rdb(w) => w.select_db(db, keys, expires),
            Sink::Commands(w) => {
                let mut buf = Vec::new();
                aof_rewrite::select(&mut buf, db);
                w.write_all(&buf)
            }
        }
    }

    fn records(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Rdb(w) => w.records(bytes),
            Sink::Commands(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<CountingWriter> {
        match self {
            Sink::Rdb(w) => w.finish(),
            Sink::Commands(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A buffered file that counts what went through it.
struct CountingWriter {
    inner: BufWriter<File>,
    written: u64,
}

impl CountingWriter {
    fn new(f: File) -> Self {
        CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, f),
            written: 0,
        }
    }
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What loading a file did.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    pub keys: u64,
    /// Keys skipped because their time had passed.
    pub expired: u64,
    /// The file's checksum was 0 (saved with rdbchecksum no): not checked.
    pub checksum_disabled: bool,
}

/// What can stop a load.
#[derive(Debug)]
pub enum LoadError {
    Read(ReadError),
    /// The file has a database number this server does not have.
    Database(u64),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(e) => write!(f, "{e}"),
            LoadError::Database(db) => write!(
                f,
                "the file holds database {db}, more than this server's databases setting allows"
            ),
        }
    }
}

/// Loads the RDB file at `path` into `ks` (normally empty), skipping keys
/// whose expire time is before `now_ms`, as Redis does on a primary.
pub fn load(ks: &Keyspace, path: &Path, lim: &Limits, now_ms: u64) -> Result<LoadStats, LoadError> {
    let clock = (now_ms / 1000) as u16;
    load_with(path, lim, now_ms, ks.databases(), &mut Vec::new(), |item| {
        let h = hash_bytes(&item.key);
        let mut s = ks.lock_shard(shard_of(h));
        s.db(item.db as usize)
            .insert(h, &item.key, item.value, item.expire_ms, clock);
    })
}

/// Reads the RDB file at `path`, passing `put` every key of a database
/// below `databases` whose expire time is after `now_ms`, and collecting
/// the function libraries' code into `functions`.
pub fn load_with(
    path: &Path,
    lim: &Limits,
    now_ms: u64,
    databases: usize,
    functions: &mut Vec<Vec<u8>>,
    put: impl FnMut(Item),
) -> Result<LoadStats, LoadError> {
    load_checked(path, lim, now_ms, databases, true, functions, put)
}

/// `load_with`, verifying the file's checksum only if `verify`
/// (rdbchecksum yes).
pub fn load_checked(
    path: &Path,
    lim: &Limits,
    now_ms: u64,
    databases: usize,
    verify: bool,
    functions: &mut Vec<Vec<u8>>,
    mut put: impl FnMut(Item),
) -> Result<LoadStats, LoadError> {
    let f = File::open(path).map_err(|e| LoadError::Read(ReadError::Io(annotate(e, path))))?;
    let len = f
        .metadata()
        .map_err(|e| LoadError::Read(ReadError::Io(e)))?
        .len();
    let mut stats = LoadStats::default();
    let mut bad_db = None;
    let info = file::read_with_functions(
        io::BufReader::with_capacity(1 << 20, f),
        len,
        lim,
        verify,
        |mut item: Item| {
            if item.db as usize >= databases {
                bad_db.get_or_insert(item.db);
                return;
            }
            // A hash whose every field expired is an expired key too.
            if item.expire_ms.is_some_and(|t| t <= now_ms)
                || hash_ttl::drop_expired(&mut item.value, now_ms)
            {
                stats.expired += 1;
                return;
            }
            put(item);
            stats.keys += 1;
        },
        functions,
    )
    .map_err(LoadError::Read)?;
    stats.checksum_disabled = info.checksum_disabled;
    match bad_db {
        Some(db) => Err(LoadError::Database(db)),
        None => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_keyspace::{StrValue, Value};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    type State = BTreeMap<(usize, Vec<u8>), (Vec<u8>, Option<u64>)>;

    const DBS: usize = 3;
    const FAR: u64 = 4_000_000_000_000;

    fn string(v: &[u8]) -> Value {
        Value::Str(StrValue::from_bytes(v))
    }

    fn state(ks: &Keyspace) -> State {
        let mut out = State::new();
        for i in 0..SHARDS {
            let mut s = ks.lock_shard(i);
            for db in 0..DBS {
                let d = s.db(db);
                for e in d.dict().iter() {
                    let Value::Str(v) = &e.value else {
                        panic!("strings only")
                    };
                    out.insert((db, e.key().to_vec()), (v.to_vec(), d.expire_of(e)));
                }
            }
        }
        out
    }

    fn put(ks: &Keyspace, db: usize, key: &[u8], v: &[u8], expire: Option<u64>) {
        let h = hash_bytes(key);
        ks.lock_shard(shard_of(h))
            .db(db)
            .insert(h, key, string(v), expire, 0);
    }

    /// What commands do to keys, applied directly to the keyspace.
    fn mutate(ks: &Keyspace, rng: &mut StdRng, keys: usize) {
        for _ in 0..rng.gen_range(0..40) {
            let db = rng.gen_range(0..DBS);
            let key = format!("k{}", rng.gen_range(0..keys * 2)).into_bytes();
            let h = hash_bytes(&key);
            let mut s = ks.lock_shard(shard_of(h));
            match rng.gen_range(0..100) {
                0..=29 => {
                    s.db(db).insert(h, &key, string(b"overwritten"), None, 0);
                }
                30..=49 => {
                    s.db(db).remove(h, &key);
                }
                50..=64 => {
                    s.db(db).set_expire(h, &key, Some(FAR + 7));
                }
                65..=89 => {
                    // In place, as APPEND or INCR do through the Store.
                    let d = s.db(db);
                    d.preserve(h, &key);
                    if let Some(e) = d.get_mut(h, &key, 0, &mut 0) {
                        e.value = string(b"changed in place");
                    }
                }
                90..=97 => {
                    drop(s);
                    let (a, b) = (rng.gen_range(0..DBS), rng.gen_range(0..DBS));
                    // SWAPDB holds every shard.
                    let mut all = ks.lock_all();
                    for shard in all.shards() {
                        shard.swap_dbs(a, b);
                    }
                }
                _ => {
                    drop(s);
                    let mut all = ks.lock_all();
                    for shard in all.shards() {
                        drop(shard.db(db).take());
                    }
                }
            }
        }
    }

    #[test]
    fn the_file_holds_the_instant_the_save_began() {
        let dir = std::env::temp_dir().join(format!("granary-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dump.rdb");
        for seed in 0..12u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let ks = Keyspace::new(DBS);
            let keys = 2000;
            for i in 0..keys {
                let db = i % DBS;
                let expire = (i % 3 == 0).then_some(FAR + i as u64);
                put(
                    &ks,
                    db,
                    format!("k{i}").as_bytes(),
                    format!("v{i}").as_bytes(),
                    expire,
                );
            }
            // Saves one after another must each see their own instant.
            for round in 0..3 {
                let before = state(&ks);
                save_observed(
                    &ks,
                    &path,
                    Limits::default(),
                    0,
                    &Progress::default(),
                    || mutate(&ks, &mut rng, keys),
                )
                .unwrap();
                let loaded = Keyspace::new(DBS);
                load(&loaded, &path, &Limits::default(), 0).unwrap();
                assert_eq!(state(&loaded), before, "seed {seed} round {round}");
                assert!(!ks.snapshot().active());
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
