//! The append-only file on the server side (Redis's aof.c): what is
//! appended, when it reaches the disk, how it is rewritten and loaded.
//!
//! - **What**: every command that changed data, as its effect: relative
//!   times become absolute (EXPIRE -> PEXPIREAT, SET EX -> SET PXAT), random
//!   or blocking commands become what they did (SPOP -> SREM, BLPOP ->
//!   LMPOP), floats are stored as their result (INCRBYFLOAT -> SET
//!   KEEPTTL), and expiry and eviction are logged as DEL / HDEL. So a replay
//!   is deterministic. A transaction's commands are wrapped in MULTI/EXEC.
//! - **Order**: a command appends while it still holds its keys' shard
//!   locks, so commands on the same keys are logged in the order they ran,
//!   and everything before a snapshot's instant (taken with every shard
//!   held) is in the old increment, everything after in the new one.
//! - **When**: appends go to a memory buffer. Before a connection sends the
//!   replies of a batch it makes sure the buffer is written to the file up
//!   to its last command (and, with appendfsync always, fsynced): so an
//!   acknowledged write survives kill -9 (everysec, no) or power loss
//!   (always). A background thread writes what no reply waits for and
//!   fsyncs every second for everysec. Writers share one write and one
//!   fsync (group commit).
//! - **Rewrite** (BGREWRITEAOF, and turning AOF on): the saver thread
//!   takes a point-in-time snapshot as the new base, switching to a new
//!   increment at the snapshot's instant; the manifest then names the new
//!   base and increment and the old files are deleted. Writes never wait
//!   for it. The base is an RDB file (`.base.rdb`) with
//!   aof-use-rdb-preamble yes, else the commands that rebuild the data
//!   (`.base.aof`, Redis's rewriteAppendOnlyFileRio), replayed on load as
//!   the increments are.

use crate::client::Client;
use crate::ctx::Ctx;
use crate::server::Server;
use granary_persistence::aof::{encode_command, BadFormat, Entry, Kind, Manifest, Replayed};
use granary_persistence::snapshot::Format;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often buffered data nobody waits for is written out.
const BACKGROUND_WRITE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct Aof {
    /// Appending is on (appendonly yes and the AOF is open).
    pub on: AtomicBool,
    buf: Mutex<Buffer>,
    file: Mutex<Option<Open>>,
    /// Bytes appended / written to the file / fsynced, counted since start.
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    pub rewrites: AtomicU64,
    pub last_rewrite_ok: AtomicBool,
    pub last_rewrite_secs: AtomicI64,
    pub rewrite_started_ms: AtomicU64,
    /// When the last rewrite started (ms), so a failed one is retried later.
    last_attempt_ms: AtomicU64,
    pub last_write_ok: AtomicBool,
    /// Size of the base at the last rewrite and of base + increments now.
    pub base_size: AtomicU64,
    pub current_size: AtomicU64,
    /// The files that make up the AOF now.
    manifest: Mutex<Manifest>,
}

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    /// The database the file's last command ran in (None: emit SELECT).
    db: Option<usize>,
}

/// The increment being appended to.
struct Open {
    file: File,
    name: String,
}

impl Aof {
    pub fn new() -> Self {
        let a = Aof::default();
        a.last_rewrite_ok.store(true, Relaxed);
        a.last_write_ok.store(true, Relaxed);
        a.last_rewrite_secs.store(-1, Relaxed);
        a
    }

    /// Appends one command that ran in database `db`. The caller holds the
    /// shard locks of the keys it touched. Returns the offset a reply must
    /// wait for.
    pub fn append(&self, db: usize, args: &[&[u8]]) -> u64 {
        let mut b = self.buf.lock();
        let before = b.data.len();
        if b.db != Some(db) {
            encode_command(
                &mut b.data,
                &[b"SELECT", itoa::Buffer::new().format(db).as_bytes()],
            );
            b.db = Some(db);
        }
        encode_command(&mut b.data, args);
        let n = (b.data.len() - before) as u64;
        self.appended.fetch_add(n, Relaxed) + n
    }

    /// Makes sure everything appended up to `offset` is in the file (and
    /// fsynced with appendfsync always) before a reply is sent.
    pub fn wait_durable(&self, offset: u64, always: bool) {
        let have = if always { &self.synced } else { &self.written };
        if offset == 0 || have.load(Relaxed) >= offset {
            return;
        }
        let mut f = self.file.lock();
        if have.load(Relaxed) >= offset {
            return;
        }
        self.write_out(&mut f);
        if always {
            self.sync(&mut f);
        }
    }

    /// Writes the buffer to the file; the caller holds the file lock.
    fn write_out(&self, f: &mut Option<Open>) {
        let (data, end) = {
            let mut b = self.buf.lock();
            (std::mem::take(&mut b.data), self.appended.load(Relaxed))
        };
        if data.is_empty() {
            return;
        }
        let Some(open) = f.as_mut() else { return };
        match open.file.write_all(&data) {
            Ok(()) => {
                self.written.store(end, Relaxed);
                self.current_size.fetch_add(data.len() as u64, Relaxed);
                self.last_write_ok.store(true, Relaxed);
            }
            Err(e) => {
                // Redis retries a failed write; the data stays in memory
                // and the reply still goes out (as with appendfsync no).
                tracing::warn!("Error writing to the AOF file {}: {e}", open.name);
                self.last_write_ok.store(false, Relaxed);
                let mut b = self.buf.lock();
                let newer = std::mem::replace(&mut b.data, data);
                b.data.extend_from_slice(&newer);
            }
        }
    }

    fn sync(&self, f: &mut Option<Open>) {
        let written = self.written.load(Relaxed);
        if let Some(open) = f.as_mut() {
            if open.file.sync_data().is_ok() {
                self.synced.store(written, Relaxed);
            }
        }
    }

    /// Switches appending to a new increment (at a snapshot's instant: the
    /// caller holds every shard). The old one is written out and fsynced.
    fn switch_to(&self, file: File, name: String) {
        let mut f = self.file.lock();
        self.write_out(&mut f);
        self.sync(&mut f);
        *f = Some(Open { file, name });
        self.buf.lock().db = None;
    }

    /// Stops appending (appendonly no), after writing out what is buffered.
    fn close(&self) {
        let mut f = self.file.lock();
        self.on.store(false, Relaxed);
        self.write_out(&mut f);
        self.sync(&mut f);
        *f = None;
        let mut b = self.buf.lock();
        b.data.clear();
        b.db = None;
    }

    pub fn pending_bytes(&self) -> u64 {
        self.buf.lock().data.len() as u64
    }
}

/// The directory of the AOF files (`appenddirname` in `dir`).
fn dir(s: &Server) -> PathBuf {
    let d = s.config.get("appenddirname").unwrap_or_default();
    let base = s.config.get("dir").unwrap_or_default();
    if base.is_empty() {
        PathBuf::from(d)
    } else {
        PathBuf::from(base).join(d)
    }
}

fn file_name(s: &Server) -> String {
    s.config.get("appendfilename").unwrap_or_default()
}

fn manifest_path(s: &Server) -> PathBuf {
    dir(s).join(format!("{}.manifest", file_name(s)))
}

/// Appends one command's effect, or queues it in the client's transaction
/// batch when it runs inside EXEC or a script (`nested`).
pub fn propagate(s: &Server, client: &mut Client, db: usize, args: Vec<Vec<u8>>, nested: bool) {
    if nested {
        client.propagated.push((db, args));
    } else {
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        client.aof_offset = s.aof.append(db, &refs);
    }
}

/// Appends a transaction's batch wrapped in MULTI/EXEC (the caller still
/// holds every shard).
pub fn flush_batch(s: &Server, client: &mut Client) {
    if client.propagated.is_empty() {
        return;
    }
    let batch = std::mem::take(&mut client.propagated);
    let first_db = batch[0].0;
    s.aof.append(first_db, &[b"MULTI"]);
    for (db, args) in &batch {
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        s.aof.append(*db, &refs);
    }
    client.aof_offset = s
        .aof
        .append(batch.last().map_or(first_db, |b| b.0), &[b"EXEC"]);
}

/// Logs the deletion of an expired or evicted key (Redis propagates DEL).
#[inline]
pub fn deleted(s: &Server, db: usize, key: &[u8]) {
    if s.aof.on.load(Relaxed) {
        s.aof.append(db, &[b"DEL", key]);
    }
}

/// Logs hash fields deleted because their TTL passed.
pub fn fields_deleted(s: &Server, db: usize, key: &[u8], fields: &[Vec<u8>]) {
    if s.aof.on.load(Relaxed) && !fields.is_empty() {
        let mut args: Vec<&[u8]> = vec![b"HDEL", key];
        args.extend(fields.iter().map(|f| &f[..]));
        s.aof.append(db, &args);
    }
}

/// Whether appendfsync is always.
pub fn fsync_always(s: &Server) -> bool {
    s.config.hot.fsync_always.load(Relaxed)
}

/// The write-behind journal goes to disk before the AOF, everywhere the
/// AOF is written: a command journals before it appends to the AOF, so
/// whatever a crash leaves in the AOF is in the journal too, and a change
/// replayed from the AOF is never missing from the pending set.
fn journal_first(s: &Server, sync: bool) {
    s.writebehind.journal_tick(sync);
}

/// Called before a connection sends replies: what its commands appended
/// must be in the file (fsynced with appendfsync always). The caller has
/// made the journal durable first.
pub fn before_reply(s: &Server, client: &mut Client) {
    if client.aof_offset != 0 {
        s.aof.wait_durable(client.aof_offset, fsync_always(s));
        client.aof_offset = 0;
    }
}

/// The background writer: writes what nobody waits for and, with
/// appendfsync everysec, fsyncs once a second.
pub fn start(server: &Arc<Server>) {
    let weak = Arc::downgrade(server);
    std::thread::Builder::new()
        .name("granary-aof".into())
        .spawn(move || {
            let mut last_sync = Instant::now();
            loop {
                std::thread::sleep(BACKGROUND_WRITE);
                let Some(s) = weak.upgrade() else { return };
                if s.shutting_down.load(Relaxed) {
                    return;
                }
                if !s.aof.on.load(Relaxed) {
                    continue;
                }
                let everysec = s.config.get("appendfsync").as_deref() == Some("everysec");
                let sync = everysec && last_sync.elapsed() >= Duration::from_secs(1);
                journal_first(&s, sync);
                let mut f = s.aof.file.lock();
                s.aof.write_out(&mut f);
                if sync {
                    s.aof.sync(&mut f);
                    last_sync = Instant::now();
                }
            }
        })
        .expect("spawn aof thread");
}

/// Writes out and fsyncs everything (SHUTDOWN, appendonly no).
pub fn flush_all(s: &Server) {
    journal_first(s, true);
    let mut f = s.aof.file.lock();
    s.aof.write_out(&mut f);
    s.aof.sync(&mut f);
}

// ---------------------------------------------------------------- rewrite

/// A rewrite, run on the saver thread: a snapshot as the new base, the
/// switch to a new increment at its instant, then the new manifest.
pub fn rewrite(s: &Server) -> Result<(), String> {
    let started = Instant::now();
    s.aof
        .rewrite_started_ms
        .store(granary_keyspace::now_ms(), Relaxed);
    let result = rewrite_inner(s);
    s.aof.rewrite_started_ms.store(0, Relaxed);
    s.aof
        .last_attempt_ms
        .store(granary_keyspace::now_ms(), Relaxed);
    s.aof
        .last_rewrite_secs
        .store(started.elapsed().as_secs() as i64, Relaxed);
    s.aof.last_rewrite_ok.store(result.is_ok(), Relaxed);
    match &result {
        Ok(()) => {
            s.aof.rewrites.fetch_add(1, Relaxed);
            tracing::info!("Background AOF rewrite finished successfully");
        }
        Err(e) => tracing::warn!("Background AOF rewrite failed: {e}"),
    }
    result
}

fn rewrite_inner(s: &Server) -> Result<(), String> {
    let d = dir(s);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let name = file_name(s);
    let seq = s
        .aof
        .manifest
        .lock()
        .entries
        .iter()
        .map(|e| e.seq)
        .max()
        .unwrap_or(0)
        + 1;
    // aof-use-rdb-preamble no: the base is the commands that rebuild
    // the data (`.base.aof`), as Redis writes it.
    let format = if s.config.get_bool("aof-use-rdb-preamble") {
        Format::Rdb {
            checksum: crate::rdb::checksum(s),
            access: crate::evict::access_of(s, granary_keyspace::now_ms()),
        }
    } else {
        Format::Commands
    };
    let base_name = match &format {
        Format::Commands => format!("{name}.{seq}.base.aof"),
        Format::Rdb { .. } => format!("{name}.{seq}.base.rdb"),
    };
    let incr_name = format!("{name}.{seq}.incr.aof");
    let incr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join(&incr_name))
        .map_err(|e| format!("{incr_name}: {e}"))?;
    // Until the new base is written, the manifest lists the old files
    // plus the new increment (empty until the switch), which together hold
    // everything whenever a crash comes. Written before the switch, so no
    // command lands in a file the manifest does not name.
    let was_on = s.aof.on.load(Relaxed);
    if was_on {
        let mut interim = s.aof.manifest.lock().clone();
        interim.entries.push(Entry {
            name: incr_name.clone(),
            seq,
            kind: Kind::Incr,
        });
        interim
            .write(&manifest_path(s))
            .map_err(|e| format!("writing the manifest: {e}"))?;
        *s.aof.manifest.lock() = interim;
    }
    let mut incr = Some(incr);
    let stats = granary_persistence::snapshot::save_with(
        &s.keyspace,
        &d.join(&base_name),
        crate::rdb::limits(s),
        format,
        granary_keyspace::now_ms() / 1000,
        &s.rdb.progress,
        || {
            if let Some(f) = incr.take() {
                journal_first(s, false);
                s.aof.switch_to(f, incr_name.clone());
                s.aof.on.store(true, Relaxed);
            }
            crate::cmd::scripting::library_codes(s)
        },
        || {},
    );
    let stats = match stats {
        Ok(st) => st,
        Err(e) => return Err(e.to_string()),
    };
    let fresh = Manifest {
        entries: vec![
            Entry {
                name: base_name,
                seq,
                kind: Kind::Base,
            },
            Entry {
                name: incr_name,
                seq,
                kind: Kind::Incr,
            },
        ],
    };
    fresh
        .write(&manifest_path(s))
        .map_err(|e| format!("writing the manifest: {e}"))?;
    let old = std::mem::replace(&mut *s.aof.manifest.lock(), fresh.clone());
    for e in old.entries {
        if !fresh.entries.iter().any(|f| f.name == e.name) {
            std::fs::remove_file(d.join(&e.name)).ok();
        }
    }
    s.aof.base_size.store(stats.bytes, Relaxed);
    s.aof.current_size.store(stats.bytes, Relaxed);
    Ok(())
}

/// CONFIG SET appendonly: yes starts appending with a rewrite that writes
/// the current data as the base (as Redis does); no stops appending.
pub fn set_enabled(s: &Server, on: bool) {
    if on && !s.aof.on.load(Relaxed) {
        s.rdb.request_aof_rewrite();
    } else if !on && s.aof.on.load(Relaxed) {
        journal_first(s, true);
        s.aof.close();
        *s.aof.manifest.lock() = Manifest::default();
    }
}

// ---------------------------------------------------------------- loading

/// What loading the AOF found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub keys: u64,
    pub commands: u64,
}

/// Loads the AOF named by the manifest (base, then increments) at
/// start-up and reopens the last increment for appending. Without a
/// manifest, starts one from the (empty) dataset. Errors name the file and
/// the offset.
pub fn load_at_startup(s: &Server) -> Result<Loaded, String> {
    let mpath = manifest_path(s);
    let text = match std::fs::read_to_string(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Synchronously, as Redis does: the dataset is empty, and until
            // a manifest names the increment, acknowledged writes would be
            // in a file no restart reads.
            rewrite(s).map_err(|e| format!("Creating the AOF base file on server start: {e}"))?;
            tracing::info!("Created the AOF base file on server start");
            return Ok(Loaded::default());
        }
        Err(e) => return Err(format!("{}: {e}", mpath.display())),
    };
    let manifest = Manifest::parse(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
    let d = dir(s);
    let started = Instant::now();
    let mut loaded = Loaded::default();
    let mut size = 0u64;
    if let Some(base) = manifest.base() {
        let path = d.join(&base.name);
        size += file_len(&path);
        if base.name.ends_with(".rdb") {
            let st =
                crate::rdb::load_file(s, &path).map_err(|e| format!("{}: {e}", path.display()))?;
            loaded.keys += st.keys;
        } else {
            loaded.commands += replay_file(s, &path, false)?;
        }
    }
    s.aof.base_size.store(size, Relaxed);
    let incrs: Vec<&Entry> = manifest.incrs().collect();
    for (i, e) in incrs.iter().enumerate() {
        let path = d.join(&e.name);
        size += file_len(&path);
        loaded.commands += replay_file(s, &path, i + 1 == incrs.len())?;
    }
    tracing::info!(
        "DB loaded from append only file: {:.3} seconds ({} keys from the base, {} commands replayed)",
        started.elapsed().as_secs_f64(),
        loaded.keys,
        loaded.commands
    );
    // Keep appending to the last increment.
    let last = incrs
        .last()
        .ok_or_else(|| format!("{}: no incremental file", mpath.display()))?;
    let f = OpenOptions::new()
        .append(true)
        .open(d.join(&last.name))
        .map_err(|e| format!("{}: {e}", last.name))?;
    *s.aof.file.lock() = Some(Open {
        file: f,
        name: last.name.clone(),
    });
    s.aof
        .current_size
        .store(file_len(&d.join(&last.name)) + size, Relaxed);
    *s.aof.manifest.lock() = manifest;
    s.aof.on.store(true, Relaxed);
    Ok(loaded)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Replays one command file through the dispatcher with expiry suspended
/// (as Redis does while loading, so a key that expired later in the log's
/// time still takes the commands that followed). A truncated tail is cut
/// off when allowed (the last file and aof-load-truncated yes), else the
/// load fails; an unfinished MULTI at the end counts as truncated.
fn replay_file(s: &Server, path: &Path, last: bool) -> Result<u64, String> {
    let info = Arc::new(crate::client::ClientInfo::new(
        0,
        "aof".into(),
        String::new(),
        0,
    ));
    let mut client = Client::new(info, true);
    let mut out = granary_protocol::Reply::new(false);
    let empty = out.mark();
    let mut n = 0u64;
    let mut multi_start = None;
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = granary_persistence::aof::replay(path, |args, offset| {
        let args: Vec<bytes::Bytes> = args.into_iter().map(bytes::Bytes::from).collect();
        if crate::util::is(&args[0], "MULTI") {
            multi_start = Some(offset);
        } else if crate::util::is(&args[0], "EXEC") {
            multi_start = None;
        }
        crate::dispatch::execute_at(s, &mut client, &args, &mut out, 0);
        out.truncate(empty);
        n += 1;
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let cut_at = match result {
        Ok(Replayed::Complete) => None,
        Ok(Replayed::Truncated { valid_len }) => Some(valid_len),
        Err(BadFormat { offset, what }) => {
            return Err(format!(
                "Bad file format reading the append only file {name} at offset {offset} ({what}): make a backup of your AOF file, then use redis-check-aof --fix <filename.manifest>"
            ))
        }
    };
    // A transaction cut short counts as truncated before its MULTI: its
    // commands were never acknowledged.
    let cut_at = match (multi_start, cut_at) {
        (Some(m), _) => {
            tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
            Some(m)
        }
        (None, c) => c,
    };
    if let Some(valid) = cut_at {
        if !last || !s.config.get_bool("aof-load-truncated") {
            return Err(format!(
                "Unexpected end of file reading the append only file {name} (valid up to offset {valid}). You can: 1) Make a backup of your AOF file, then use redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
            ));
        }
        tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        f.set_len(valid).map_err(|e| e.to_string())?;
        tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled (truncated to {valid} bytes)");
    }
    Ok(n)
}

// ---------------------------------------------------------------- effects

/// What to log for the command `c` just ran (it changed data): its
/// arguments, unless replaying them could do something else than it did.
pub fn effect(c: &mut Ctx) -> Vec<Vec<u8>> {
    if let Some(e) = c.store.effect.take() {
        return e;
    }
    let args: Vec<Vec<u8>> = c.args.iter().map(|a| a.to_vec()).collect();
    as_effect(c, args)
}

fn as_effect(c: &mut Ctx, mut a: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let now = c.store.now as i64;
    let name = c.spec.name;
    let int = |b: &[u8]| crate::util::parse_i64(b).unwrap_or(0);
    let abs = |v: i64| v.to_string().into_bytes();
    let word = |w: &str| w.as_bytes().to_vec();
    match name {
        "expire" | "pexpire" | "expireat" => {
            let t = int(&a[2]);
            let when = match name {
                "expire" => now.saturating_add(t.saturating_mul(1000)),
                "pexpire" => now.saturating_add(t),
                _ => t.saturating_mul(1000),
            };
            a[0] = word("PEXPIREAT");
            a[2] = abs(when);
            a
        }
        "setex" | "psetex" => {
            let t = int(&a[2]);
            let when = if name == "setex" {
                now.saturating_add(t.saturating_mul(1000))
            } else {
                now.saturating_add(t)
            };
            vec![
                word("SET"),
                a[1].clone(),
                a[3].clone(),
                word("PXAT"),
                abs(when),
            ]
        }
        "set" => {
            absolute_option(&mut a, 3, now);
            a
        }
        "getex" => {
            let mut opts = a[2..].to_vec();
            if opts.iter().any(|o| crate::util::is(o, "PERSIST")) {
                return vec![word("PERSIST"), a[1].clone()];
            }
            let mut tmp = vec![Vec::new()];
            tmp.append(&mut opts);
            absolute_option(&mut tmp, 1, now);
            match tmp.iter().position(|o| crate::util::is(o, "PXAT")) {
                Some(i) => vec![word("PEXPIREAT"), a[1].clone(), tmp[i + 1].clone()],
                None => a,
            }
        }
        "getdel" => vec![word("DEL"), a[1].clone()],
        "incrbyfloat" => match c.store.str_mut(&a[1]) {
            Ok(Some(v)) => vec![word("SET"), a[1].clone(), v.to_vec(), word("KEEPTTL")],
            _ => a,
        },
        "hincrbyfloat" => {
            let v = match c.store.entry(&a[1]).map(|e| &e.value) {
                Some(granary_keyspace::Value::Hash(h)) => h.get(&a[2]).map(|v| v.to_vec()),
                _ => None,
            };
            match v {
                Some(v) => vec![word("HSET"), a[1].clone(), a[2].clone(), v],
                None => a,
            }
        }
        "restore" => {
            let has_abs = a[4..].iter().any(|o| crate::util::is(o, "ABSTTL"));
            let ttl = int(&a[2]);
            if ttl > 0 && !has_abs {
                a[2] = abs(now.saturating_add(ttl));
                a.push(word("ABSTTL"));
            }
            a
        }
        "hexpire" | "hpexpire" | "hexpireat" => {
            let t = int(&a[2]);
            let when = match name {
                "hexpire" => now.saturating_add(t.saturating_mul(1000)),
                "hpexpire" => now.saturating_add(t),
                _ => t.saturating_mul(1000),
            };
            a[0] = word("HPEXPIREAT");
            a[2] = abs(when);
            a
        }
        // Blocking pops log their non-blocking twin: same keys, same
        // choice on the same data.
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let keys = &a[1..a.len() - 1];
            let (cmd, side) = match name {
                "blpop" => ("LMPOP", "LEFT"),
                "brpop" => ("LMPOP", "RIGHT"),
                "bzpopmin" => ("ZMPOP", "MIN"),
                _ => ("ZMPOP", "MAX"),
            };
            let mut out = vec![word(cmd), abs(keys.len() as i64)];
            out.extend(keys.iter().cloned());
            out.extend([word(side), word("COUNT"), word("1")]);
            out
        }
        "blmpop" | "bzmpop" => {
            let mut out = vec![word(if name == "blmpop" { "LMPOP" } else { "ZMPOP" })];
            out.extend(a[2..].iter().cloned());
            out
        }
        "blmove" => {
            let mut out = vec![word("LMOVE")];
            out.extend(a[1..5].iter().cloned());
            out
        }
        "brpoplpush" => vec![word("RPOPLPUSH"), a[1].clone(), a[2].clone()],
        // The ID XADD generated, not `*`: a replay must make the same one.
        "xadd" => {
            let id = match c.store.entry(&a[1]).map(|e| &e.value) {
                Some(granary_keyspace::Value::Stream(st)) => Some(st.last_id.to_string()),
                _ => None,
            };
            if let (Some(i), Some(id)) = (xadd_id_index(&a), id) {
                a[i] = id.into_bytes();
            }
            a
        }
        _ => a,
    }
}

/// Where XADD's ID argument is: after NOMKSTREAM, MAXLEN|MINID [=|~]
/// threshold and LIMIT count.
fn xadd_id_index(a: &[Vec<u8>]) -> Option<usize> {
    let mut i = 2;
    while i < a.len() {
        let w = &a[i];
        if crate::util::is(w, "NOMKSTREAM") {
            i += 1;
        } else if crate::util::is(w, "MAXLEN") || crate::util::is(w, "MINID") {
            i += 1;
            if a.get(i).is_some_and(|x| x == b"=" || x == b"~") {
                i += 1;
            }
            i += 1;
        } else if crate::util::is(w, "LIMIT") {
            i += 2;
        } else {
            return Some(i);
        }
    }
    None
}

/// Replaces SET's (or GETEX's) EX/PX/EXAT option, from `from` on, by the
/// absolute PXAT.
fn absolute_option(a: &mut [Vec<u8>], from: usize, now: i64) {
    let mut i = from;
    while i + 1 < a.len() {
        let opt = &a[i];
        let t = crate::util::parse_i64(&a[i + 1]).unwrap_or(0);
        let when = if crate::util::is(opt, "EX") {
            Some(now.saturating_add(t.saturating_mul(1000)))
        } else if crate::util::is(opt, "PX") {
            Some(now.saturating_add(t))
        } else if crate::util::is(opt, "EXAT") {
            Some(t.saturating_mul(1000))
        } else {
            None
        };
        if let Some(w) = when {
            a[i] = b"PXAT".to_vec();
            a[i + 1] = w.to_string().into_bytes();
            i += 2;
        } else {
            i += 1;
        }
    }
}

/// Called by the cron: a rewrite once the AOF has grown by
/// auto-aof-rewrite-percentage over its base and past
/// auto-aof-rewrite-min-size.
pub fn check_auto_rewrite(s: &Server) {
    if !s.aof.on.load(Relaxed)
        || s.rdb.aof_rewriting.load(Relaxed)
        || s.rdb.in_progress.load(Relaxed)
    {
        return;
    }
    // A failed rewrite is retried a minute later, not every tick.
    let since = granary_keyspace::now_ms().saturating_sub(s.aof.last_attempt_ms.load(Relaxed));
    if !s.aof.last_rewrite_ok.load(Relaxed) && since < 60_000 {
        return;
    }
    let pct = s.config.get_int("auto-aof-rewrite-percentage");
    let min = s.config.get_int("auto-aof-rewrite-min-size").max(0) as u64;
    let (cur, base) = (
        s.aof.current_size.load(Relaxed),
        s.aof.base_size.load(Relaxed).max(1),
    );
    if pct > 0 && cur >= min && (cur - base.min(cur)) * 100 / base >= pct as u64 {
        tracing::info!(
            "Starting automatic rewriting of AOF on {}% growth",
            (cur - base.min(cur)) * 100 / base
        );
        s.rdb.request_aof_rewrite();
    }
}
