//! State shared by every connection: the keyspace, configuration, clients,
//! statistics, and the switches that stop or pause the server.

use crate::client::Clients;
use crate::config::Config;
use crate::lazyfree::LazyFree;
use granary_keyspace::Keyspace;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tokio::sync::watch;

#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub error_replies: AtomicU64,
    /// Per error code ("ERR", "WRONGTYPE", ...), for INFO errorstats.
    pub errors: Mutex<HashMap<String, u64>>,
    /// Ops/sec over the last cron samples.
    pub instantaneous_ops: AtomicU64,
}

/// Per-command counters, indexed like `Table::all()`.
pub struct CommandStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
}

/// CLIENT PAUSE state: until when, and whether only writes wait.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pause {
    pub until_ms: u64,
    pub writes_only: bool,
}

pub struct Server {
    pub keyspace: Keyspace,
    pub config: Config,
    pub clients: Clients,
    pub stats: Stats,
    pub command_stats: Vec<CommandStat>,
    pub lazyfree: LazyFree,
    /// The Lua state, script cache, function libraries, busy-script state.
    pub scripting: crate::cmd::scripting::Scripting,
    /// RDB saves: the saver thread's queue and status.
    pub rdb: crate::rdb::Rdb,
    /// The append-only file.
    pub aof: crate::aof::Aof,
    /// Writes since the last save (INFO rdb_changes_since_last_save).
    pub dirty: AtomicU64,
    pub started: Instant,
    pub started_unix_ms: u64,
    pub run_id: String,
    /// The port actually listened on (port 0 picks a free one).
    pub tcp_port: AtomicU64,
    pub pause: watch::Sender<Pause>,
    shutdown: watch::Sender<bool>,
    pub shutting_down: AtomicBool,
    pub config_file: Option<std::path::PathBuf>,
    pub executable: String,
    /// Write-behind to SQL (cmd/writebehind.rs); off without a sink.
    pub writebehind: granary_writebehind::WriteBehind,
}

impl Server {
    pub fn new(config: Config) -> Self {
        let databases = config.get_int("databases").max(1) as usize;
        let n = crate::table::Table::get().all().len();
        let command_stats = (0..n)
            .map(|_| CommandStat {
                calls: AtomicU64::new(0),
                usec: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            })
            .collect();
        let run_id = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        let config_file = config.file.clone();
        let writebehind = crate::cmd::writebehind::from_config(&config);
        let started_unix_ms = granary_keyspace::now_ms();
        Server {
            keyspace: Keyspace::new(databases),
            config,
            clients: Clients::default(),
            stats: Stats::default(),
            command_stats,
            lazyfree: LazyFree::start(),
            scripting: crate::cmd::scripting::Scripting::new(),
            rdb: crate::rdb::Rdb::new(started_unix_ms / 1000),
            aof: crate::aof::Aof::new(),
            dirty: AtomicU64::new(0),
            started: Instant::now(),
            started_unix_ms,
            run_id,
            tcp_port: AtomicU64::new(0),
            pause: watch::channel(Pause::default()).0,
            shutdown: watch::channel(false).0,
            shutting_down: AtomicBool::new(false),
            config_file,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            writebehind,
        }
    }

    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
        self.shutdown.send_replace(true);
    }

    /// Resolves when SHUTDOWN or a signal asked the server to stop.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn record_error(&self, msg: &[u8]) {
        self.stats.error_replies.fetch_add(1, Relaxed);
        let code = msg.split(|&b| b == b' ').next().unwrap_or(b"ERR");
        let code = String::from_utf8_lossy(code).into_owned();
        *self.stats.errors.lock().entry(code).or_insert(0) += 1;
    }

    pub fn reset_stats(&self) {
        let s = &self.stats;
        for c in [
            &s.connections_received,
            &s.rejected_connections,
            &s.commands_processed,
            &s.net_input_bytes,
            &s.net_output_bytes,
            &s.expired_keys,
            &s.evicted_keys,
            &s.keyspace_hits,
            &s.keyspace_misses,
            &s.error_replies,
        ] {
            c.store(0, Relaxed);
        }
        s.errors.lock().clear();
        for c in &self.command_stats {
            for a in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                a.store(0, Relaxed);
            }
        }
    }
}
