//! INFO: Redis's sections and field names. Fields for features Granary does
//! not have yet (replication, AOF, Lua, ...) report their idle values, as a
//! Redis with that feature unused would, so monitoring tools parse the
//! output unchanged.

use crate::ctx::{CmdResult, Ctx};
use crate::server::Server;
use crate::table::Table;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Sections in Redis's order, and whether the default set includes them.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
    ("writebehind", false),
];

pub fn info(c: &mut Ctx) -> CmdResult {
    let names: Vec<String> = c.args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    // Counted through the store: inside EXEC every shard is already held.
    let dbs = c.server.keyspace.databases();
    let mut sizes = vec![(0usize, 0usize); dbs];
    for i in 0..granary_keyspace::SHARDS {
        c.store.with_shard(i, |shard| {
            for (d, db) in shard.dbs.iter().enumerate() {
                sizes[d].0 += db.len();
                sizes[d].1 += db.volatile();
            }
        });
    }
    let text = render(c.server, &names, Some(sizes));
    c.out.verbatim(&text);
    Ok(())
}

/// Which sections the arguments select: none means the default set;
/// "all" is everything but module-generated sections, "everything" all.
fn selected(names: &[String]) -> Vec<&'static str> {
    let all = names.iter().any(|n| n == "all" || n == "everything");
    let default = names.is_empty() || names.iter().any(|n| n == "default");
    SECTIONS
        .iter()
        .filter(|(name, dflt)| all || (default && *dflt) || names.iter().any(|n| n == name))
        .map(|(name, _)| *name)
        .collect()
}

/// The INFO text for the given (lowercase) section arguments.
pub fn info_text(server: &Server, names: &[String]) -> String {
    render(server, names, None)
}

/// `sizes`: (keys, volatile) per database if the caller counted them.
fn render(server: &Server, names: &[String], mut sizes: Option<Vec<(usize, usize)>>) -> String {
    let mut out = String::new();
    for (i, name) in selected(names).into_iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut s = Section::new(&mut out, name);
        match name {
            "server" => server_section(server, &mut s),
            "clients" => clients_section(server, &mut s),
            "memory" => memory_section(server, &mut s),
            "persistence" => persistence_section(server, &mut s),
            "stats" => stats_section(server, &mut s),
            "replication" => replication_section(&mut s),
            "cpu" => cpu_section(&mut s),
            "commandstats" => commandstats_section(server, &mut s),
            "errorstats" => errorstats_section(server, &mut s),
            "cluster" => s.field("cluster_enabled", 0),
            "keyspace" => keyspace_section(server, &mut s, sizes.take()),
            "writebehind" => crate::cmd::writebehind::info_section(server, s.out),
            _ => {}
        }
    }
    out
}

/// Writes "# Title" and then "name:value\r\n" lines.
struct Section<'a> {
    out: &'a mut String,
}

impl<'a> Section<'a> {
    fn new(out: &'a mut String, name: &str) -> Self {
        let title = match name {
            "cpu" => "CPU".to_string(),
            other => {
                let mut t = other.to_string();
                t[..1].make_ascii_uppercase();
                t
            }
        };
        let _ = write!(out, "# {title}\r\n");
        Section { out }
    }

    fn field(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}:{value}\r\n");
    }
}

fn uptime_secs(server: &Server) -> u64 {
    server.started.elapsed().as_secs()
}

fn os_name() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{} {} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

fn random_hex40() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}

fn server_section(server: &Server, s: &mut Section) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let port = server.tcp_port.load(Relaxed);
    let uptime = uptime_secs(server);
    let hz = server.config.get_int("hz");
    s.field("redis_version", crate::REDIS_VERSION);
    s.field("granary_version", crate::GRANARY_VERSION);
    s.field("redis_git_sha1", "00000000");
    s.field("redis_git_dirty", 0);
    s.field("redis_build_id", "0");
    s.field("redis_mode", "standalone");
    s.field("os", os_name());
    s.field("arch_bits", usize::BITS);
    s.field("monotonic_clock", "POSIX clock_gettime");
    s.field("multiplexing_api", "epoll");
    s.field("atomicvar_api", "c11-builtin");
    s.field("gcc_version", "0.0.0");
    s.field("process_id", std::process::id());
    s.field("process_supervised", "no");
    s.field("run_id", &server.run_id);
    s.field("tcp_port", port);
    s.field("server_time_usec", now.as_micros());
    s.field("uptime_in_seconds", uptime);
    s.field("uptime_in_days", uptime / 86400);
    s.field("hz", hz);
    s.field("configured_hz", hz);
    s.field("lru_clock", super::lru_clock());
    s.field("executable", &server.executable);
    let file = server.config.file.as_ref().map(|p| p.display().to_string());
    s.field("config_file", file.unwrap_or_default());
    s.field("io_threads_active", 0);
    let bind = server.config.get("bind").unwrap_or_default();
    let binds: Vec<String> = bind
        .split_whitespace()
        .map(|b| format!("bind={b}"))
        .collect();
    s.field(
        "listener0",
        format!("name=tcp,{},port={port}", binds.join(",")),
    );
}

/// Clients subscribed to anything (Redis's CLIENT_PUBSUB count).
fn pubsub_clients(server: &Server) -> usize {
    server
        .clients
        .all()
        .iter()
        .filter(|c| c.sub.load(Relaxed) + c.psub.load(Relaxed) + c.ssub.load(Relaxed) > 0)
        .count()
}

fn clients_section(server: &Server, s: &mut Section) {
    let clients = server.clients.all();
    let max_in = clients
        .iter()
        .map(|c| c.query_buf.load(Relaxed))
        .max()
        .unwrap_or(0);
    let max_out = clients
        .iter()
        .map(|c| c.out_buf.load(Relaxed))
        .max()
        .unwrap_or(0);
    s.field("connected_clients", clients.len());
    s.field("cluster_connections", 0);
    s.field("maxclients", server.config.hot.maxclients.load(Relaxed));
    s.field("client_recent_max_input_buffer", max_in);
    s.field("client_recent_max_output_buffer", max_out);
    let watches = &server.clients.watches;
    for name in [
        "blocked_clients",
        "tracking_clients",
        "pubsub_clients",
        "watching_clients",
        "clients_in_timeout_table",
        "total_watched_keys",
        "total_blocking_keys",
        "total_blocking_keys_on_nokey",
    ] {
        match name {
            "watching_clients" => s.field(name, watches.watching_clients()),
            "total_watched_keys" => s.field(name, watches.total()),
            "blocked_clients" => s.field(name, crate::blocking::blocked_clients()),
            "clients_in_timeout_table" => s.field(name, crate::blocking::clients_with_timeout()),
            "total_blocking_keys" => s.field(name, crate::blocking::blocking_keys()),
            "pubsub_clients" => s.field(name, pubsub_clients(server)),
            "tracking_clients" => s.field(name, crate::tracking::stats(server).0),
            // Only XREADGROUP (no streams yet) waits for a key's deletion.
            _ => s.field(name, 0),
        }
    }
}

/// Redis's bytesToHuman: B, then K/M/G/T/P with two decimals.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    for unit in UNITS {
        if v < 1024.0 || unit == "P" {
            return format!("{v:.2}{unit}");
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at P")
}

/// Resident set size from /proc/self/statm (pages; 4 KiB on Linux here).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Highest used_memory seen by INFO (Redis samples it in its cron).
static PEAK: AtomicU64 = AtomicU64::new(0);
/// used_memory at the first INFO, standing in for Redis's startup figure.
static STARTUP: OnceLock<u64> = OnceLock::new();

fn pct(part: u64, whole: u64) -> String {
    let p = if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    };
    format!("{p:.2}%")
}

fn memory_section(server: &Server, s: &mut Section) {
    let used = granary_keyspace::alloc::used_memory() as u64;
    let peak = PEAK.fetch_max(used, Relaxed).max(used);
    let startup = *STARTUP.get_or_init(|| used);
    let rss = rss_bytes();
    let maxmemory = server.config.hot.maxmemory.load(Relaxed);
    let system = total_system_memory();
    let dataset = used.saturating_sub(startup);
    s.field("used_memory", used);
    s.field("used_memory_human", human_bytes(used));
    s.field("used_memory_rss", rss);
    s.field("used_memory_rss_human", human_bytes(rss));
    s.field("used_memory_peak", peak);
    s.field("used_memory_peak_human", human_bytes(peak));
    s.field("used_memory_peak_perc", pct(used, peak));
    s.field("used_memory_overhead", startup.min(used));
    s.field("used_memory_startup", startup);
    s.field("used_memory_dataset", dataset);
    s.field("used_memory_dataset_perc", pct(dataset, used));
    s.field("allocator_allocated", used);
    s.field("allocator_active", used);
    s.field("allocator_resident", rss);
    s.field("total_system_memory", system);
    s.field("total_system_memory_human", human_bytes(system));
    for name in ["used_memory_lua", "used_memory_vm_eval"] {
        s.field(name, 0);
    }
    s.field("used_memory_lua_human", "0B");
    let scripting = &server.scripting;
    s.field("used_memory_scripts_eval", 0);
    s.field("number_of_cached_scripts", scripting.cached_scripts());
    s.field(
        "number_of_functions",
        scripting.function_count.load(Relaxed),
    );
    s.field("number_of_libraries", scripting.library_count.load(Relaxed));
    for name in ["used_memory_vm_functions", "used_memory_vm_total"] {
        s.field(name, 0);
    }
    s.field("used_memory_vm_total_human", "0B");
    s.field("used_memory_functions", 0);
    s.field("used_memory_scripts", 0);
    s.field("used_memory_scripts_human", "0B");
    s.field("maxmemory", maxmemory);
    s.field("maxmemory_human", human_bytes(maxmemory));
    s.field(
        "maxmemory_policy",
        server.config.get("maxmemory-policy").unwrap_or_default(),
    );
    let frag = if used == 0 {
        0.0
    } else {
        rss as f64 / used as f64
    };
    s.field("allocator_frag_ratio", "1.00");
    s.field("allocator_frag_bytes", 0);
    s.field("allocator_rss_ratio", "1.00");
    s.field("allocator_rss_bytes", 0);
    s.field("rss_overhead_ratio", "1.00");
    s.field("rss_overhead_bytes", 0);
    s.field("mem_fragmentation_ratio", format!("{frag:.2}"));
    s.field("mem_fragmentation_bytes", rss as i64 - used as i64);
    for name in [
        "mem_not_counted_for_evict",
        "mem_replication_backlog",
        "mem_total_replication_buffers",
        "mem_clients_slaves",
        "mem_clients_normal",
        "mem_cluster_links",
        "mem_aof_buffer",
    ] {
        s.field(name, 0);
    }
    s.field("mem_allocator", "mimalloc");
    s.field("mem_overhead_db_hashtable_rehashing", 0);
    s.field("active_defrag_running", 0);
    s.field("lazyfree_pending_objects", server.lazyfree.pending());
    s.field("lazyfreed_objects", server.lazyfree.freed());
}

fn persistence_section(server: &Server, s: &mut Section) {
    for name in [
        "loading",
        "async_loading",
        "current_cow_peak",
        "current_cow_size",
        "current_cow_size_age",
    ] {
        s.field(name, 0);
    }
    let r = &server.rdb;
    let running = r.in_progress.load(Relaxed);
    let started = r.started_ms.load(Relaxed);
    s.field("current_fork_perc", "0.00");
    let (done, total) = if running {
        (
            r.progress.keys_done.load(Relaxed),
            r.progress.keys_total.load(Relaxed),
        )
    } else {
        (0, 0)
    };
    s.field("current_save_keys_processed", done);
    s.field("current_save_keys_total", total);
    s.field("rdb_changes_since_last_save", server.dirty.load(Relaxed));
    s.field("rdb_bgsave_in_progress", running as u8);
    s.field("rdb_last_save_time", r.last_save.load(Relaxed));
    s.field(
        "rdb_last_bgsave_status",
        if r.last_ok.load(Relaxed) { "ok" } else { "err" },
    );
    s.field("rdb_last_bgsave_time_sec", r.last_secs.load(Relaxed));
    let current = if running && started != 0 {
        (granary_keyspace::now_ms().saturating_sub(started) / 1000) as i64
    } else {
        -1
    };
    s.field("rdb_current_bgsave_time_sec", current);
    s.field("rdb_saves", r.saves.load(Relaxed));
    s.field("rdb_last_cow_size", r.last_cow.load(Relaxed));
    s.field("rdb_last_load_keys_expired", r.loaded_expired.load(Relaxed));
    s.field("rdb_last_load_keys_loaded", r.loaded_keys.load(Relaxed));
    let a = &server.aof;
    let ok = |b: &std::sync::atomic::AtomicBool| if b.load(Relaxed) { "ok" } else { "err" };
    let enabled = server.config.get_bool("appendonly");
    let rewriting = r.aof_rewriting.load(Relaxed);
    s.field("aof_enabled", enabled as u8);
    s.field("aof_rewrite_in_progress", rewriting as u8);
    s.field("aof_rewrite_scheduled", r.aof_rewrite_queued() as u8);
    s.field(
        "aof_last_rewrite_time_sec",
        a.last_rewrite_secs.load(Relaxed),
    );
    let started = a.rewrite_started_ms.load(Relaxed);
    let current = if rewriting && started != 0 {
        (granary_keyspace::now_ms().saturating_sub(started) / 1000) as i64
    } else {
        -1
    };
    s.field("aof_current_rewrite_time_sec", current);
    s.field("aof_last_bgrewrite_status", ok(&a.last_rewrite_ok));
    s.field("aof_rewrites", a.rewrites.load(Relaxed));
    s.field("aof_rewrites_consecutive_failures", 0);
    s.field("aof_last_write_status", ok(&a.last_write_ok));
    s.field("aof_last_cow_size", 0);
    s.field("module_fork_in_progress", 0);
    s.field("module_fork_last_cow_size", 0);
    if enabled {
        s.field("aof_current_size", a.current_size.load(Relaxed));
        s.field("aof_base_size", a.base_size.load(Relaxed));
        s.field("aof_pending_rewrite", 0);
        s.field("aof_buffer_length", a.pending_bytes());
        s.field("aof_pending_bio_fsync", 0);
        s.field("aof_delayed_fsync", 0);
    }
}

fn stats_section(server: &Server, s: &mut Section) {
    let st = &server.stats;
    let get = |a: &AtomicU64| a.load(Relaxed);
    s.field("total_connections_received", get(&st.connections_received));
    s.field("total_commands_processed", get(&st.commands_processed));
    s.field("instantaneous_ops_per_sec", get(&st.instantaneous_ops));
    s.field("total_net_input_bytes", get(&st.net_input_bytes));
    s.field("total_net_output_bytes", get(&st.net_output_bytes));
    s.field("total_net_repl_input_bytes", 0);
    s.field("total_net_repl_output_bytes", 0);
    for name in [
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "instantaneous_input_repl_kbps",
        "instantaneous_output_repl_kbps",
    ] {
        s.field(name, "0.00");
    }
    s.field("rejected_connections", get(&st.rejected_connections));
    s.field("sync_full", 0);
    s.field("sync_partial_ok", 0);
    s.field("sync_partial_err", 0);
    s.field("expired_keys", get(&st.expired_keys));
    s.field("expired_subkeys", 0);
    s.field("expired_stale_perc", "0.00");
    s.field("expired_time_cap_reached_count", 0);
    s.field("expire_cycle_cpu_milliseconds", 0);
    s.field("evicted_keys", get(&st.evicted_keys));
    s.field("evicted_clients", 0);
    s.field("evicted_scripts", 0);
    s.field("total_eviction_exceeded_time", 0);
    s.field("current_eviction_exceeded_time", 0);
    s.field("keyspace_hits", get(&st.keyspace_hits));
    s.field("keyspace_misses", get(&st.keyspace_misses));
    {
        use crate::pubsub::{total, Kind};
        s.field("pubsub_channels", total(server, Kind::Channel));
        s.field("pubsub_patterns", total(server, Kind::Pattern));
        s.field("pubsubshard_channels", total(server, Kind::Shard));
    }
    let (_, tracked_keys, tracked_items, prefixes) = crate::tracking::stats(server);
    for name in [
        "latest_fork_usec",
        "total_forks",
        "migrate_cached_sockets",
        "slave_expires_tracked_keys",
        "active_defrag_hits",
        "active_defrag_misses",
        "active_defrag_key_hits",
        "active_defrag_key_misses",
        "total_active_defrag_time",
        "current_active_defrag_time",
        "tracking_total_keys",
        "tracking_total_items",
        "tracking_total_prefixes",
        "unexpected_error_replies",
    ] {
        match name {
            "tracking_total_keys" => s.field(name, tracked_keys),
            "tracking_total_items" => s.field(name, tracked_items),
            "tracking_total_prefixes" => s.field(name, prefixes),
            _ => s.field(name, 0),
        }
    }
    s.field("total_error_replies", get(&st.error_replies));
    s.field("dump_payload_sanitizations", 0);
    s.field("total_reads_processed", get(&st.commands_processed));
    s.field("total_writes_processed", get(&st.commands_processed));
    for name in [
        "io_threaded_reads_processed",
        "io_threaded_writes_processed",
        "client_query_buffer_limit_disconnections",
        "client_output_buffer_limit_disconnections",
        "reply_buffer_shrinks",
        "reply_buffer_expands",
        "eventloop_cycles",
        "eventloop_duration_sum",
        "eventloop_duration_cmd_sum",
        "instantaneous_eventloop_cycles_per_sec",
        "instantaneous_eventloop_duration_usec",
        "acl_access_denied_auth",
        "acl_access_denied_cmd",
        "acl_access_denied_key",
        "acl_access_denied_channel",
    ] {
        if name == "client_output_buffer_limit_disconnections" {
            let n = server.clients.pubsub.obuf_disconnections.load(Relaxed);
            s.field(name, n);
        } else {
            s.field(name, 0);
        }
    }
}

fn replication_section(s: &mut Section) {
    static REPLID: OnceLock<String> = OnceLock::new();
    s.field("role", "master");
    s.field("connected_slaves", 0);
    s.field("master_failover_state", "no-failover");
    s.field("master_replid", REPLID.get_or_init(random_hex40));
    s.field("master_replid2", "0".repeat(40));
    s.field("master_repl_offset", 0);
    s.field("second_repl_offset", -1);
    s.field("repl_backlog_active", 0);
    s.field("repl_backlog_size", 1048576);
    s.field("repl_backlog_first_byte_offset", 0);
    s.field("repl_backlog_histlen", 0);
}

/// (user, system) CPU seconds from a /proc stat file: fields 14 and 15
/// (or 16 and 17 for children), in clock ticks of 1/100 s on Linux.
fn proc_cpu(path: &str, children: bool) -> (f64, f64) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (0.0, 0.0);
    };
    // The command name (field 2) may hold spaces; count after its ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    // `fields[0]` is field 3 (state), so field n is at n - 3.
    let base = if children { 16 - 3 } else { 14 - 3 };
    (at(base), at(base + 1))
}

fn cpu_section(s: &mut Section) {
    let (user, sys) = proc_cpu("/proc/self/stat", false);
    let (cuser, csys) = proc_cpu("/proc/self/stat", true);
    let (muser, msys) = proc_cpu("/proc/thread-self/stat", false);
    s.field("used_cpu_sys", format!("{sys:.6}"));
    s.field("used_cpu_user", format!("{user:.6}"));
    s.field("used_cpu_sys_children", format!("{csys:.6}"));
    s.field("used_cpu_user_children", format!("{cuser:.6}"));
    s.field("used_cpu_sys_main_thread", format!("{msys:.6}"));
    s.field("used_cpu_user_main_thread", format!("{muser:.6}"));
}

fn commandstats_section(server: &Server, s: &mut Section) {
    for (spec, st) in Table::get().all().iter().zip(&server.command_stats) {
        let calls = st.calls.load(Relaxed);
        let usec = st.usec.load(Relaxed);
        let rejected = st.rejected.load(Relaxed);
        let failed = st.failed.load(Relaxed);
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let per_call = if calls == 0 {
            0.0
        } else {
            usec as f64 / calls as f64
        };
        s.field(
            &format!("cmdstat_{}", spec.name),
            format!(
                "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
            ),
        );
    }
}

fn errorstats_section(server: &Server, s: &mut Section) {
    let mut errors: Vec<(String, u64)> = server
        .stats
        .errors
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    errors.sort();
    for (code, n) in errors {
        s.field(&format!("errorstat_{code}"), format!("count={n}"));
    }
}

fn keyspace_section(server: &Server, s: &mut Section, sizes: Option<Vec<(usize, usize)>>) {
    let dbs = server.keyspace.databases();
    let mut keys = vec![0usize; dbs];
    let mut volatile = vec![0usize; dbs];
    match sizes {
        Some(sizes) => {
            for (d, (k, v)) in sizes.into_iter().enumerate() {
                keys[d] = k;
                volatile[d] = v;
            }
        }
        None => {
            for i in 0..granary_keyspace::SHARDS {
                let shard = server.keyspace.lock_shard(i);
                for (d, db) in shard.dbs.iter().enumerate() {
                    keys[d] += db.len();
                    volatile[d] += db.volatile();
                }
            }
        }
    }
    for d in 0..dbs {
        if keys[d] > 0 {
            s.field(
                &format!("db{d}"),
                format!(
                    "keys={},expires={},avg_ttl=0,subexpiry=0",
                    keys[d], volatile[d]
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units_like_redis() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(941024), "918.97K");
        assert_eq!(human_bytes(7032832), "6.71M");
        assert_eq!(human_bytes(25276063744), "23.54G");
    }

    #[test]
    fn section_selection() {
        let s = |v: &[&str]| selected(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert!(!s(&[]).contains(&"commandstats"));
        assert!(s(&[]).contains(&"keyspace"));
        assert!(s(&["all"]).contains(&"commandstats"));
        assert_eq!(s(&["keyspace", "server"]), vec!["server", "keyspace"]);
        assert!(s(&["nosuch"]).is_empty());
        assert_eq!(s(&["default", "commandstats"]).len(), 12);
    }

    #[test]
    fn info_text_shape() {
        let server = Server::new(crate::config::Config::default());
        let text = info_text(&server, &["everything".into()]);
        assert!(text.starts_with("# Server\r\nredis_version:"));
        assert!(text.contains("\r\n\r\n# Clients\r\n"));
        assert!(text.contains("\r\n# CPU\r\n"));
        assert!(text.contains("mem_allocator:mimalloc\r\n"));
        assert!(text.ends_with("\r\n"));
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.starts_with('#') || line.contains(':'), "{line}");
        }
    }
}
