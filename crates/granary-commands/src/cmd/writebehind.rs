//! WRITEBEHIND: status and control of write-behind to SQL (the
//! granary-writebehind crate does the work; docs/writebehind.md), and the
//! glue: building it from the config, starting its flusher thread, the
//! backlog check before writes, and its INFO section.

use crate::config::Config;
use crate::ctx::{CmdResult, Ctx};
use crate::server::Server;
use crate::table::{flag::*, Keys, Spec};
use crate::util::lossy;
use bytes::Bytes;
use granary_keyspace::types::stream::StreamId;
use granary_keyspace::Keyspace;
use granary_writebehind::rules::{KeyType, Rule, RuleSet};
use granary_writebehind::{Settings, Source, WriteBehind};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const G: &str = "server";
const ADM: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

pub static COMMANDS: &[Spec] = &[Spec::container("writebehind", SUBCOMMANDS)
    .group(G, "7.4.0")
    .doc("A container for write-behind commands.")];

static SUBCOMMANDS: &[Spec] = &[
    Spec::new("writebehind|status", 2, ADM, Keys::None, status)
        .group(G, "7.4.0")
        .doc("Returns write-behind counters: pending rows, rows flushed, errors."),
    Spec::new("writebehind|flush", 2, ADM | NO_MULTI, Keys::None, flush)
        .group(G, "7.4.0")
        .doc("Flushes everything pending now and returns once it is committed."),
    Spec::new("writebehind|pause", 2, ADM, Keys::None, pause)
        .group(G, "7.4.0")
        .doc("Stops periodic flushing; changes keep accumulating."),
    Spec::new("writebehind|resume", 2, ADM, Keys::None, resume)
        .group(G, "7.4.0")
        .doc("Resumes periodic flushing."),
    Spec::new("writebehind|rules", 2, ADM, Keys::None, rules)
        .group(G, "7.4.0")
        .doc("Lists the write-behind rules in the order they are tried."),
    Spec::new("writebehind|rule", -4, ADM, Keys::None, rule)
        .group(G, "7.4.0")
        .doc("RULE ADD <name> <type> <pattern> table=<t> [options] | RULE DEL <name>."),
    Spec::new("writebehind|resync", 2, ADM | NO_MULTI, Keys::None, resync)
        .group(G, "7.4.0")
        .doc("Queues every existing key a rule maps, so the next flush writes it."),
    Spec::new("writebehind|help", 2, LOADING | STALE, Keys::None, help)
        .group(G, "7.4.0")
        .doc("Returns helpful text about the different subcommands."),
];

/// How long FLUSH waits before answering with an error.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Write-behind as the config describes it (off when the sink is empty).
pub fn from_config(config: &Config) -> WriteBehind {
    let sink = config.get("writebehind-sink").unwrap_or_default();
    // The value was validated when set; an error here cannot happen.
    let rules =
        RuleSet::parse(&config.get("writebehind-rule").unwrap_or_default()).unwrap_or_default();
    WriteBehind::new(&sink, rules, settings(config))
}

fn settings(config: &Config) -> Settings {
    Settings {
        interval_ms: config.get_int("writebehind-interval").max(1) as u64,
        batch_size: config.get_int("writebehind-batch-size").max(1) as usize,
        max_pending: config.get_int("writebehind-max-pending").max(1) as u64,
        overflow_accept: config.get("writebehind-overflow").as_deref() == Some("accept"),
    }
}

/// The flusher's view of the server: held weakly, so it stops with it.
struct ServerSource(Weak<Server>);

impl Source for ServerSource {
    fn with(&self, f: &mut dyn FnMut(&WriteBehind, &Keyspace)) -> bool {
        let Some(server) = self.0.upgrade() else {
            return false;
        };
        // CONFIG SET of the writebehind-* params takes effect here.
        server.writebehind.set_settings(settings(&server.config));
        f(&server.writebehind, &server.keyspace);
        true
    }
}

/// Where the journal lives: `writebehind/` in the data directory.
fn journal_dir(server: &Server) -> PathBuf {
    let dir = server.config.get("dir").unwrap_or_default();
    PathBuf::from(if dir.is_empty() { "." } else { &dir }).join("writebehind")
}

/// Starts write-behind if a sink is configured: recovers what the journal
/// kept pending, turns the write hooks on, and starts the flusher and the
/// journal's writer. Called after the dataset is loaded (the load's own
/// writes are not journaled again) and before clients are accepted. An
/// unreadable journal stops start-up, as a corrupt AOF does.
pub fn start(server: &Arc<Server>) -> Result<(), String> {
    let wb = &server.writebehind;
    if !wb.configured() {
        return Ok(());
    }
    let dir = journal_dir(server);
    let rows = wb.start(&dir).map_err(|e| format!("write-behind: {e}"))?;
    if rows > 0 {
        tracing::info!(
            "write-behind: {rows} pending rows recovered from the journal in {}",
            dir.display()
        );
    }
    granary_writebehind::flusher::start(
        ServerSource(Arc::downgrade(server)),
        crate::rdb::lower_priority,
    )
    .map_err(|e| format!("write-behind: can't start the flusher thread: {e}"))?;
    start_journal_writer(server)
        .map_err(|e| format!("write-behind: can't start the journal thread: {e}"))?;
    Ok(())
}

/// How often journal records no reply waits for are written out.
const JOURNAL_WRITE: Duration = Duration::from_millis(100);

/// Writes what no reply waited for, and fsyncs once a second with
/// appendfsync everysec (the journal follows the AOF's fsync policy).
fn start_journal_writer(server: &Arc<Server>) -> std::io::Result<()> {
    let weak = Arc::downgrade(server);
    std::thread::Builder::new()
        .name("granary-wb-journal".into())
        .spawn(move || {
            let mut last_sync = Instant::now();
            loop {
                std::thread::sleep(JOURNAL_WRITE);
                let Some(s) = weak.upgrade() else { return };
                let everysec = s.config.get("appendfsync").as_deref() == Some("everysec");
                let sync = everysec && last_sync.elapsed() >= Duration::from_secs(1);
                if sync {
                    last_sync = Instant::now();
                }
                s.writebehind.journal_tick(sync);
                if s.shutting_down.load(Relaxed) {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// Before a connection sends replies: what its commands journaled is in
/// the file (fsynced with appendfsync always), so an acknowledged change
/// reaches the database even after kill -9.
#[inline]
pub fn before_reply(server: &Server) {
    server
        .writebehind
        .wait_durable(|| crate::aof::fsync_always(server));
}

/// At shutdown: the journal is written and fsynced.
pub fn flush_journal(server: &Server) {
    server.writebehind.journal_tick(true);
}

/// Whether a write command must be refused because the write-behind
/// backlog is full and one of its keys is mapped. One relaxed load when
/// write-behind is off.
pub fn refuses(server: &Server, spec: &Spec, args: &[Bytes], db: usize) -> bool {
    let wb = &server.writebehind;
    if spec.flags & WRITE == 0 || !wb.refusing() {
        return false;
    }
    spec.key_positions(args)
        .into_iter()
        .any(|i| wb.refuses(db, &args[i]))
}

/// The error a refused write gets.
pub const BACKLOG_FULL: &str =
    "ERR WRITEBEHIND backlog full: the database is behind (see INFO writebehind); retry later";

/// The INFO writebehind fields.
pub fn info_fields(server: &Server) -> Vec<(&'static str, String)> {
    let wb = &server.writebehind;
    let s = &wb.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed).to_string();
    vec![
        ("writebehind_enabled", (wb.enabled() as u8).to_string()),
        ("paused", (wb.paused.load(Relaxed) as u8).to_string()),
        ("rules", wb.rules().rules.len().to_string()),
        ("pending_rows", wb.pending_rows().to_string()),
        (
            "oldest_pending_age_ms",
            wb.oldest_pending_age_ms().to_string(),
        ),
        ("rows_flushed", n(&s.rows_flushed)),
        ("batches_flushed", n(&s.batches_flushed)),
        ("batches_failed", n(&s.batches_failed)),
        ("upserts", n(&s.upserts)),
        ("appends", n(&s.appends)),
        ("deletes", n(&s.deletes)),
        ("writes_at_risk", n(&s.at_risk)),
        ("writes_refused", n(&s.refused)),
        ("last_flush_ms", n(&s.last_flush_ms)),
        ("paced_ms", n(&s.paced_ms)),
        ("last_error", one_line(&s.last_error.lock())),
    ]
}

/// INFO values are one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Appends the INFO writebehind section's fields.
pub fn info_section(server: &Server, out: &mut String) {
    for (k, v) in info_fields(server) {
        let _ = write!(out, "{k}:{v}\r\n");
    }
}

fn status(c: &mut Ctx) -> CmdResult {
    let fields = info_fields(c.server);
    c.out.map(fields.len());
    for (k, v) in fields {
        c.out.bulk(k.as_bytes());
        c.out.bulk(v.as_bytes());
    }
    Ok(())
}

fn enabled(c: &Ctx) -> CmdResult {
    if c.server.writebehind.enabled() {
        Ok(())
    } else {
        Err("ERR write-behind is off: set writebehind-sink in the config".into())
    }
}

/// Waits for the flush on this thread. On a multi-threaded runtime the
/// worker hands its other connections to the other workers meanwhile
/// (block_in_place); the wait is bounded by FLUSH_TIMEOUT either way.
fn flush(c: &mut Ctx) -> CmdResult {
    enabled(c)?;
    let wb = &c.server.writebehind;
    let wait = || wb.flush_and_wait(FLUSH_TIMEOUT);
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let r = if multi_thread {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    };
    match r {
        Ok(()) => {
            c.out.ok();
            Ok(())
        }
        Err(e) => Err(format!("ERR WRITEBEHIND flush failed: {}", one_line(&e)).into()),
    }
}

fn pause(c: &mut Ctx) -> CmdResult {
    enabled(c)?;
    c.server.writebehind.paused.store(true, Relaxed);
    c.out.ok();
    Ok(())
}

fn resume(c: &mut Ctx) -> CmdResult {
    enabled(c)?;
    let wb = &c.server.writebehind;
    wb.paused.store(false, Relaxed);
    wb.wake_flusher();
    c.out.ok();
    Ok(())
}

fn rules(c: &mut Ctx) -> CmdResult {
    let rules = c.server.writebehind.rules();
    c.out.array(rules.rules.len());
    for r in &rules.rules {
        c.out.bulk(r.spec.as_bytes());
    }
    Ok(())
}

/// RULE ADD <words...> | RULE DEL <name>. The config value follows, so
/// CONFIG GET and CONFIG REWRITE see the rules in force.
fn rule(c: &mut Ctx) -> CmdResult {
    let what = lossy(&c.args[2]).to_ascii_lowercase();
    let words: Vec<String> = c.args[3..].iter().map(|a| lossy(a)).collect();
    let wb = &c.server.writebehind;
    let mut set = (*wb.rules()).clone();
    match what.as_str() {
        "add" => {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let rule = Rule::parse(&words).map_err(|e| format!("ERR {e}"))?;
            set.add(rule).map_err(|e| format!("ERR {e}"))?;
        }
        "del" if words.len() == 1 => {
            if !set.remove(&words[0]) {
                return Err(format!("ERR no rule named '{}'", words[0]).into());
            }
        }
        _ => return Err(crate::ctx::err::SYNTAX.into()),
    }
    let _ = c.server.config.set("writebehind-rule", &set.render(), true);
    wb.set_rules(set);
    c.out.ok();
    Ok(())
}

/// RESYNC: queues every existing key that a state rule maps (keys that
/// were there before write-behind or the rule, or that SWAPDB brought in),
/// one shard and one SCAN step at a time, so commands on other keys keep
/// running. Replies with the number of keys queued.
fn resync(c: &mut Ctx) -> CmdResult {
    let wb = &c.server.writebehind;
    if !wb.enabled() {
        return Err("ERR write-behind is off (writebehind-sink is empty)".into());
    }
    let rules = wb.rules();
    let mut dbs: Vec<usize> = rules
        .rules
        .iter()
        .filter(|r| !r.ty.is_append())
        .map(|r| r.db)
        .collect();
    dbs.sort_unstable();
    dbs.dedup();
    let mut queued = 0i64;
    for shard in 0..granary_keyspace::SHARDS {
        for &db in &dbs {
            let mut cursor = 0;
            loop {
                cursor = c.store.with_shard(shard, |s| {
                    if db >= s.dbs.len() {
                        return 0;
                    }
                    s.db(db).mark_pending_step(cursor, |key, value| {
                        let mapped = granary_writebehind::model::key_type(value)
                            .is_some_and(|t| !t.is_append() && rules.find(db, key, t).is_some());
                        if mapped {
                            wb.queue(db, key);
                            queued += 1;
                        }
                        mapped
                    })
                });
                if cursor == 0 {
                    break;
                }
            }
        }
    }
    c.out.int(queued);
    Ok(())
}

fn help(c: &mut Ctx) -> CmdResult {
    const LINES: &[&str] = &[
        "STATUS",
        "    Return pending rows, rows flushed, failed batches and the last error.",
        "FLUSH",
        "    Flush everything pending now; return once it is committed.",
        "PAUSE",
        "    Stop periodic flushing (changes keep accumulating).",
        "RESUME",
        "    Resume periodic flushing.",
        "RULES",
        "    List the rules, in the order they are tried.",
        "RULE ADD <name> <type> <pattern> table=<table> [option=value ...]",
        "    Add a rule (see docs/writebehind.md).",
        "RULE DEL <name>",
        "    Remove a rule.",
        "RESYNC",
        "    Queue every existing key a state rule maps; return how many.",
    ];
    crate::cmd::server::reply_help(c.out, "WRITEBEHIND", LINES);
    Ok(())
}

/// List push paths report the pushed elements here: each becomes one row
/// of an append rule, even if popped before the flush.
#[inline]
pub fn pushed(server: &Server, db: usize, key: &[u8], values: &[Bytes]) {
    server
        .writebehind
        .on_append(db, key, granary_writebehind::rules::KeyType::List, values);
}

/// XADD reports each entry it added here (`fields` flat: field, value,
/// ...): it becomes one row of a stream rule, even if trimmed, deleted or
/// expired before the flush. The entry travels as one encoded value
/// (model::encode_stream_entry), decoded by the flusher.
#[inline]
pub fn stream_added(server: &Server, db: usize, key: &[u8], id: StreamId, fields: &[&[u8]]) {
    let wb = &server.writebehind;
    if wb.appends(db, key, KeyType::Stream) {
        let entry = granary_writebehind::model::encode_stream_entry(id, fields);
        wb.on_append(db, key, KeyType::Stream, &[&entry]);
    }
}
