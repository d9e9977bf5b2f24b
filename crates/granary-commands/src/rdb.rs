//! RDB snapshots on the server side (rdb.c's bookkeeping): the saver thread
//! that runs SAVE, BGSAVE and save points, their status for INFO
//! persistence and LASTSAVE, and loading at start-up. The snapshot itself
//! (point-in-time, fork-less) is `granary_persistence::snapshot`.

use crate::server::Server;
use granary_persistence::snapshot::{self, Format, LoadError, LoadStats, Progress, SaveStats};
use granary_persistence::Limits;
use parking_lot::{Condvar, Mutex};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The saver's state, shared by the commands and the saver thread.
#[derive(Default)]
pub struct Rdb {
    queue: Mutex<Queue>,
    wake: Condvar,
    pub in_progress: AtomicBool,
    /// Unix seconds of the last successful save (LASTSAVE).
    pub last_save: AtomicU64,
    pub last_ok: AtomicBool,
    /// Duration of the last save in seconds, -1 before the first.
    pub last_secs: AtomicI64,
    /// When the running save started (ms since the epoch), 0 if none.
    pub started_ms: AtomicU64,
    pub saves: AtomicU64,
    pub last_cow: AtomicU64,
    pub progress: Progress,
    pub loaded_keys: AtomicU64,
    pub loaded_expired: AtomicU64,
    /// An AOF rewrite runs on the saver thread.
    pub aof_rewriting: AtomicBool,
    /// Unix seconds of the last save attempt, successful or not (save
    /// points wait a while after a failure, as Redis does).
    last_try: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// A save was asked for and has not started.
    requested: bool,
    /// An AOF rewrite was asked for and has not started.
    aof_requested: bool,
    /// Saves started and finished (or failed) so far: a request is served
    /// by the first save that starts after it.
    started: u64,
    finished: u64,
    /// The outcome of the last save.
    last: Option<Result<SaveStats, String>>,
}

/// Why BGSAVE could not start.
pub enum BgsaveError {
    InProgress,
    /// An AOF rewrite runs (Redis: another child process is active).
    RewriteRunning,
}

impl Rdb {
    pub fn new(started_unix_secs: u64) -> Self {
        let r = Rdb::default();
        r.last_save.store(started_unix_secs, Relaxed);
        r.last_ok.store(true, Relaxed);
        r.last_secs.store(-1, Relaxed);
        r
    }

    /// Asks the saver thread for a save; fails if one runs or is queued,
    /// or (unless `schedule`) if an AOF rewrite runs.
    pub fn request(&self, schedule: bool) -> Result<(), BgsaveError> {
        let mut q = self.queue.lock();
        if q.requested || self.in_progress.load(Relaxed) {
            return Err(BgsaveError::InProgress);
        }
        if !schedule && self.aof_rewriting.load(Relaxed) {
            return Err(BgsaveError::RewriteRunning);
        }
        q.requested = true;
        self.wake.notify_all();
        Ok(())
    }

    /// Asks the saver thread for an AOF rewrite. False if one is already
    /// running or queued.
    pub fn request_aof_rewrite(&self) -> bool {
        let mut q = self.queue.lock();
        if q.aof_requested || self.aof_rewriting.load(Relaxed) {
            return false;
        }
        q.aof_requested = true;
        self.wake.notify_all();
        true
    }

    /// Whether an AOF rewrite waits for a save to finish.
    pub fn aof_rewrite_queued(&self) -> bool {
        self.queue.lock().aof_requested
    }

    /// Runs a save and waits for it (SAVE, SHUTDOWN, DEBUG RELOAD). A save
    /// already running is waited for first, since it began earlier.
    pub fn save_and_wait(&self) -> Result<SaveStats, String> {
        let mut q = self.queue.lock();
        let target = q.started + 1;
        q.requested = true;
        self.wake.notify_all();
        while q.finished < target {
            self.wake.wait(&mut q);
        }
        q.last.clone().unwrap_or_else(|| Err("no save ran".into()))
    }
}

/// The RDB file's path: `dbfilename` in `dir` (the working directory when
/// dir is not set, as the server changed into it at start-up).
pub fn path(server: &Server) -> PathBuf {
    let dir = server.config.get("dir").unwrap_or_default();
    let name = server.config.get("dbfilename").unwrap_or_default();
    if dir.is_empty() {
        PathBuf::from(name)
    } else {
        PathBuf::from(dir).join(name)
    }
}

/// The encoding limits and compression the config asks for.
pub fn limits(server: &Server) -> Limits {
    crate::cmd::dump::limits(server)
}

/// RDB files as rdbchecksum asks: with no, the checksum is neither
/// computed on save (it is written as 0) nor checked on load.
pub fn checksum(server: &Server) -> bool {
    server.config.get_bool("rdbchecksum")
}

/// Starts the saver thread.
pub fn start(server: &Arc<Server>) {
    let weak = Arc::downgrade(server);
    std::thread::Builder::new()
        .name("granary-rdb".into())
        .spawn(move || run(weak))
        .expect("spawn rdb thread");
}

fn run(server: Weak<Server>) {
    lower_priority();
    loop {
        let Some(s) = server.upgrade() else { return };
        if s.shutting_down.load(Relaxed) {
            return;
        }
        let job = {
            let mut q = s.rdb.queue.lock();
            if !q.requested && !q.aof_requested {
                s.rdb.wake.wait_for(&mut q, Duration::from_millis(200));
            }
            if q.requested {
                q.requested = false;
                q.started += 1;
                s.rdb.in_progress.store(true, Relaxed);
                Some(true)
            } else if q.aof_requested {
                q.aof_requested = false;
                s.rdb.aof_rewriting.store(true, Relaxed);
                Some(false)
            } else {
                None
            }
        };
        if job == Some(false) {
            let _ = crate::aof::rewrite(&s);
            s.rdb.aof_rewriting.store(false, Relaxed);
        }
        if job == Some(true) {
            let result = save_now(&s);
            let mut q = s.rdb.queue.lock();
            s.rdb.in_progress.store(false, Relaxed);
            q.finished += 1;
            q.last = Some(result);
            s.rdb.wake.notify_all();
        }
    }
}

/// Background threads (the saver, the write-behind flusher) yield the CPU
/// to the threads serving commands (they run at nice 10): a snapshot or a
/// flush may take longer under full load, but commands are not delayed
/// behind it, which matters most when cores are scarce.
pub(crate) fn lower_priority() {
    // Ten steps below the server's own priority (a server started under
    // `nice` keeps the gap), as far as 19 allows.
    // SAFETY: gettid and getpriority take and return plain integers and
    // touch no memory.
    let (tid, nice) = unsafe {
        let tid = libc::gettid() as libc::id_t;
        (
            tid,
            (libc::getpriority(libc::PRIO_PROCESS, tid) + 10).min(19),
        )
    };
    // SAFETY: setpriority takes plain integers and changes only this
    // thread's priority.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        tracing::debug!("could not lower a background thread's priority");
    }
    short_slices(tid, nice);
}

/// The shortest time slice the kernel grants (EEVDF's custom slice, Linux
/// 6.12+: `sched_runtime` of a SCHED_OTHER thread, 0.1 ms at least). A low
/// priority thread is picked less often, but once picked it runs its whole
/// slice, 3 ms by default, while a worker sharing its core waits with
/// replies ready. Older kernels refuse or ignore it, which changes nothing.
fn short_slices(tid: libc::id_t, nice: i32) {
    let slice_ns = std::env::var("GRANARY_BG_SLICE_NS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000u64);
    if slice_ns == 0 {
        return;
    }
    // SAFETY: sched_attr is plain integers, for which all-zero is valid.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
    attr.sched_policy = libc::SCHED_OTHER as u32;
    attr.sched_nice = nice;
    attr.sched_runtime = slice_ns;
    // SAFETY: sched_setattr reads `attr` (valid for the call, its size
    // given in `attr.size`) and changes this thread's scheduling only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            tid,
            &attr as *const libc::sched_attr,
            0u32,
        )
    };
    if rc != 0 {
        tracing::debug!("short time slices not available for a background thread");
    }
}

/// One save, with its bookkeeping and log lines.
fn save_now(s: &Server) -> Result<SaveStats, String> {
    let r = &s.rdb;
    let started = Instant::now();
    let now_ms = granary_keyspace::now_ms();
    r.started_ms.store(now_ms, Relaxed);
    r.last_try.store(now_ms / 1000, Relaxed);
    let dirty_before = s.dirty.load(Relaxed);
    let path = path(s);
    tracing::info!("Background saving started");
    let result = snapshot::save_with(
        &s.keyspace,
        &path,
        limits(s),
        Format::Rdb {
            checksum: checksum(s),
            access: crate::evict::access_of(s, now_ms),
        },
        now_ms / 1000,
        &r.progress,
        || crate::cmd::scripting::library_codes(s),
        || {},
    );
    r.started_ms.store(0, Relaxed);
    r.last_secs
        .store(started.elapsed().as_secs() as i64, Relaxed);
    match result {
        Ok(stats) => {
            // Writes during the save are not in it: they still count.
            s.dirty
                .fetch_sub(dirty_before.min(s.dirty.load(Relaxed)), Relaxed);
            r.last_save.store(now_ms / 1000, Relaxed);
            r.last_ok.store(true, Relaxed);
            r.saves.fetch_add(1, Relaxed);
            r.last_cow.store(stats.cow_bytes, Relaxed);
            tracing::info!(
                "DB saved on disk: {} keys, {} bytes in {:.3} s ({} bytes copied for writes meanwhile)",
                stats.keys,
                stats.bytes,
                started.elapsed().as_secs_f64(),
                stats.cow_bytes
            );
            Ok(stats)
        }
        Err(e) => {
            r.last_ok.store(false, Relaxed);
            tracing::warn!("Background saving error: {e}");
            Err(e.to_string())
        }
    }
}

/// Called by the cron: starts a save when a save point is reached
/// (`save "<seconds> <changes> ..."`), or retries a failed one after 5 s.
pub fn check_save_points(s: &Server) {
    let r = &s.rdb;
    if r.in_progress.load(Relaxed) {
        return;
    }
    let dirty = s.dirty.load(Relaxed);
    if dirty == 0 {
        return;
    }
    let now = granary_keyspace::now_ms() / 1000;
    let since = now.saturating_sub(r.last_save.load(Relaxed));
    if !r.last_ok.load(Relaxed) && now.saturating_sub(r.last_try.load(Relaxed)) < 5 {
        return;
    }
    let points = s.config.get("save").unwrap_or_default();
    let nums: Vec<u64> = points
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    for pair in nums.chunks_exact(2) {
        let (secs, changes) = (pair[0], pair[1]);
        if dirty >= changes && since >= secs {
            tracing::info!("{changes} changes in {secs} seconds. Saving...");
            let _ = r.request(false);
            return;
        }
    }
}

/// Whether writes must be refused: the last save failed and
/// stop-writes-on-bgsave-error is on (with save points configured).
pub fn writes_refused(s: &Server) -> bool {
    !s.rdb.last_ok.load(Relaxed)
        && s.config.get_bool("stop-writes-on-bgsave-error")
        && !s.config.get("save").unwrap_or_default().is_empty()
}

/// Loads the RDB file at start-up, if there is one: logs what it loaded.
pub fn load_at_startup(s: &Server) -> Result<Option<LoadStats>, String> {
    let path = path(s);
    if !path.exists() {
        return Ok(None);
    }
    let started = Instant::now();
    let stats = load_file(s, &path).map_err(|e| {
        format!(
            "Short read or OOM loading DB. Unrecoverable error, aborting now. ({}: {e})",
            path.display()
        )
    })?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds, {} keys loaded, {} expired keys skipped",
        started.elapsed().as_secs_f64(),
        stats.keys,
        stats.expired
    );
    Ok(Some(stats))
}

/// Loads `path` into the keyspace and records the counts for INFO.
pub fn load_file(s: &Server, path: &std::path::Path) -> Result<LoadStats, LoadError> {
    let now = granary_keyspace::now_ms();
    let ks = &s.keyspace;
    let mut functions = Vec::new();
    let stats = snapshot::load_checked(
        path,
        &limits(s),
        now,
        ks.databases(),
        checksum(s),
        &mut functions,
        |item| {
            let h = granary_keyspace::hash_bytes(&item.key);
            let mut shard = ks.lock_shard(granary_keyspace::shard_of(h));
            let clock = crate::evict::loaded_clock(s, item.access, now);
            shard
                .db(item.db as usize)
                .insert(h, &item.key, item.value, item.expire_ms, clock);
        },
    )?;
    if stats.checksum_disabled {
        tracing::info!("RDB file was saved with checksum disabled: no check performed.");
    }
    crate::cmd::scripting::load_libraries(s, &functions);
    s.rdb.loaded_keys.store(stats.keys, Relaxed);
    s.rdb.loaded_expired.store(stats.expired, Relaxed);
    Ok(stats)
}

/// The save SHUTDOWN (or SIGTERM) makes first: with SAVE, or when save
/// points are configured, unless NOSAVE. False if it failed (the server
/// then keeps running, as Redis does).
pub fn save_for_shutdown(s: &Server, save: bool, nosave: bool) -> bool {
    crate::cmd::writebehind::flush_journal(s);
    if s.aof.on.load(Relaxed) {
        tracing::info!("Calling fsync() on the AOF file.");
        crate::aof::flush_all(s);
    }
    let points = !s.config.get("save").unwrap_or_default().is_empty();
    if nosave || !(save || points) {
        return true;
    }
    tracing::info!("Saving the final RDB snapshot before exiting.");
    match s.rdb.save_and_wait() {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
            false
        }
    }
}
