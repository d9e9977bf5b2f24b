//! Configuration parameters: one table serves the config file, command-line
//! `--name value` options, CONFIG GET/SET/RESETSTAT/REWRITE and INFO.
//! Names are Redis's. Parameters that Granary accepts but whose feature has
//! not landed yet are stored and reported, so stock redis.conf files load.

use crate::glob::glob_match;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int(i64, i64),
    /// Bytes; accepts 1k, 1kb, 1mb, 1gb ... like Redis's memtoull.
    Memory(i64, i64),
    Enum(&'static [&'static str]),
    Str,
    /// Validated by Granary-specific code (save, client-output-buffer-limit, ...).
    Special(fn(&str) -> Result<String, String>),
}

pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub default: &'static str,
    pub kind: Kind,
    /// Can change at run time (CONFIG SET); others only at start-up.
    pub mutable: bool,
    /// Hidden from CONFIG GET * (sensitive or deprecated aliases).
    pub sensitive: bool,
}

const fn p(name: &'static str, default: &'static str, kind: Kind) -> Param {
    Param {
        name,
        alias: None,
        default,
        kind,
        mutable: true,
        sensitive: false,
    }
}

const fn fixed(name: &'static str, default: &'static str, kind: Kind) -> Param {
    Param {
        name,
        alias: None,
        default,
        kind,
        mutable: false,
        sensitive: false,
    }
}

const YESNO: Kind = Kind::Bool;
const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const MAXI: i64 = i64::MAX;

pub static PARAMS: &[Param] = &[
    fixed("port", "6379", Kind::Int(0, 65535)),
    fixed("bind", "127.0.0.1 -::1", Kind::Str),
    p("requirepass", "", Kind::Str),
    fixed("databases", "16", Kind::Int(1, 1 << 20)),
    p("dir", "", Kind::Special(validate_dir)),
    p("loglevel", "notice", Kind::Enum(LOGLEVELS)),
    fixed("logfile", "", Kind::Str),
    p("protected-mode", "yes", YESNO),
    p("timeout", "0", Kind::Int(0, i32::MAX as i64)),
    p("tcp-keepalive", "300", Kind::Int(0, i32::MAX as i64)),
    fixed("tcp-backlog", "511", Kind::Int(0, i32::MAX as i64)),
    fixed("daemonize", "no", YESNO),
    fixed(
        "supervised",
        "no",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
    ),
    fixed("pidfile", "", Kind::Str),
    p("hz", "10", Kind::Special(clamp_hz)),
    p("dynamic-hz", "yes", YESNO),
    p("maxclients", "10000", Kind::Int(1, u32::MAX as i64)),
    p("maxmemory", "0", Kind::Memory(0, MAXI)),
    p("maxmemory-policy", "noeviction", Kind::Enum(POLICIES)),
    p("maxmemory-samples", "5", Kind::Int(1, 64)),
    p("maxmemory-eviction-tenacity", "10", Kind::Int(0, 100)),
    p(
        "proto-max-bulk-len",
        "536870912",
        Kind::Memory(1024 * 1024, MAXI),
    ),
    p(
        "client-query-buffer-limit",
        "1073741824",
        Kind::Memory(1024 * 1024, MAXI),
    ),
    p(
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::Special(validate_obuf),
    ),
    p(
        "save",
        "3600 1 300 100 60 10000",
        Kind::Special(validate_save),
    ),
    p("appendonly", "no", YESNO),
    p(
        "appendfsync",
        "everysec",
        Kind::Enum(&["always", "everysec", "no"]),
    ),
    p("appendfilename", "appendonly.aof", Kind::Str),
    fixed("appenddirname", "appendonlydir", Kind::Str),
    p("dbfilename", "dump.rdb", Kind::Str),
    p("rdbcompression", "yes", YESNO),
    fixed("rdbchecksum", "yes", YESNO),
    p("stop-writes-on-bgsave-error", "yes", YESNO),
    p("aof-use-rdb-preamble", "yes", YESNO),
    p("aof-load-truncated", "yes", YESNO),
    p(
        "auto-aof-rewrite-percentage",
        "100",
        Kind::Int(0, i32::MAX as i64),
    ),
    p(
        "auto-aof-rewrite-min-size",
        "67108864",
        Kind::Memory(0, MAXI),
    ),
    p(
        "notify-keyspace-events",
        "",
        Kind::Special(crate::notify::normalize),
    ),
    p("hash-max-listpack-entries", "512", Kind::Int(0, MAXI)),
    p("hash-max-listpack-value", "64", Kind::Int(0, MAXI)),
    p("set-max-intset-entries", "512", Kind::Int(0, MAXI)),
    p("set-max-listpack-entries", "128", Kind::Int(0, MAXI)),
    p("set-max-listpack-value", "64", Kind::Int(0, MAXI)),
    p("zset-max-listpack-entries", "128", Kind::Int(0, MAXI)),
    p("zset-max-listpack-value", "64", Kind::Int(0, MAXI)),
    p(
        "list-max-listpack-size",
        "-2",
        Kind::Int(-5, i32::MAX as i64),
    ),
    p("list-compress-depth", "0", Kind::Int(0, i32::MAX as i64)),
    p("hll-sparse-max-bytes", "3000", Kind::Memory(0, MAXI)),
    p("stream-node-max-bytes", "4096", Kind::Memory(0, MAXI)),
    p("stream-node-max-entries", "100", Kind::Int(0, MAXI)),
    p("lazyfree-lazy-eviction", "no", YESNO),
    p("lazyfree-lazy-expire", "no", YESNO),
    p("lazyfree-lazy-server-del", "no", YESNO),
    p("lazyfree-lazy-user-del", "no", YESNO),
    p("lazyfree-lazy-user-flush", "no", YESNO),
    p("busy-reply-threshold", "5000", Kind::Int(0, MAXI)),
    p("slowlog-log-slower-than", "10000", Kind::Int(-1, MAXI)),
    p("slowlog-max-len", "128", Kind::Int(0, MAXI)),
    p("latency-monitor-threshold", "0", Kind::Int(0, MAXI)),
    p("latency-tracking", "yes", YESNO),
    p("activerehashing", "yes", YESNO),
    p("active-expire-effort", "1", Kind::Int(1, 10)),
    p("lfu-log-factor", "10", Kind::Int(0, MAXI)),
    p("lfu-decay-time", "1", Kind::Int(0, MAXI)),
    fixed("io-threads", "1", Kind::Int(1, 128)),
    p("io-threads-do-reads", "no", YESNO),
    fixed("always-show-logo", "no", YESNO),
    p("set-proc-title", "yes", YESNO),
    p(
        "enable-debug-command",
        "local",
        Kind::Enum(&["no", "yes", "local"]),
    ),
    p(
        "enable-protected-configs",
        "no",
        Kind::Enum(&["no", "yes", "local"]),
    ),
    p("replica-read-only", "yes", YESNO),
    p("repl-diskless-sync", "yes", YESNO),
    p("cluster-enabled", "no", YESNO),
    p("lua-time-limit", "5000", Kind::Int(0, MAXI)),
    p("tracking-table-max-keys", "1000000", Kind::Int(0, MAXI)),
    p("jemalloc-bg-thread", "yes", YESNO),
    p("crash-log-enabled", "yes", YESNO),
    p("syslog-enabled", "no", YESNO),
    p("unixsocket", "", Kind::Str),
    p("unixsocketperm", "0", Kind::Int(0, 0o777)),
    p(
        "oom-score-adj",
        "no",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
    ),
    p("locale-collate", "", Kind::Str),
    // Write-behind (docs/writebehind.md). Rules change at run time through
    // WRITEBEHIND RULE ADD/DEL, which keep this value current.
    fixed("writebehind-sink", "", Kind::Special(validate_wb_sink)),
    fixed("writebehind-rule", "", Kind::Special(validate_wb_rules)),
    p("writebehind-interval", "1000", Kind::Int(1, 3_600_000)),
    p("writebehind-batch-size", "10000", Kind::Int(1, 10_000_000)),
    p("writebehind-max-pending", "1000000", Kind::Int(1, MAXI)),
    p(
        "writebehind-overflow",
        "refuse",
        Kind::Enum(&["refuse", "accept"]),
    ),
];

fn validate_wb_sink(v: &str) -> Result<String, String> {
    granary_writebehind::sink::check_spec(v).map(|_| v.trim().to_string())
}

/// Rules separated by ';' (one config-file line each, joined on load).
fn validate_wb_rules(v: &str) -> Result<String, String> {
    granary_writebehind::rules::RuleSet::parse(v).map(|r| r.render())
}

/// Redis accepts 0..INT_MAX for hz and clamps it into 1..=500.
fn clamp_hz(v: &str) -> Result<String, String> {
    let n: i64 = v
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if !(0..=i32::MAX as i64).contains(&n) {
        return Err(format!(
            "argument must be between 0 and {} inclusive",
            i32::MAX
        ));
    }
    Ok(n.clamp(1, 500).to_string())
}

/// Parameters CONFIG SET may only change when `enable-protected-configs`
/// allows it (they can make the server write files anywhere).
pub const PROTECTED: &[&str] = &["dir", "dbfilename"];

fn validate_dir(v: &str) -> Result<String, String> {
    if v.is_empty() || std::path::Path::new(v).is_dir() {
        Ok(v.to_string())
    } else {
        Err(format!("No such file or directory: {v}"))
    }
}

/// `save "<seconds> <changes> ..."` or `save ""`.
fn validate_save(v: &str) -> Result<String, String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if !parts.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    for x in &parts {
        if x.parse::<u64>().is_err() {
            return Err("Invalid save parameters".into());
        }
    }
    Ok(parts.join(" "))
}

fn validate_obuf(v: &str) -> Result<String, String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if !parts.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut cur: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for c in parts.chunks(4) {
        let class = match c[0].to_ascii_lowercase().as_str() {
            "normal" => "normal",
            "slave" | "replica" => "slave",
            "pubsub" => "pubsub",
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(c[1])
            .ok_or("Error in hard, soft or soft_seconds setting in buffer limit configuration.")?;
        let soft = parse_memory(c[2])
            .ok_or("Error in hard, soft or soft_seconds setting in buffer limit configuration.")?;
        let secs: u64 = c[3].parse().map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration."
        })?;
        cur.insert(class, [hard as u64, soft as u64, secs]);
    }
    // Classes not named keep their defaults.
    let mut out = vec![];
    for (class, def) in [
        ("normal", [0, 0, 0]),
        ("slave", [268435456, 67108864, 60]),
        ("pubsub", [33554432, 8388608, 60]),
    ] {
        let [h, s, t] = cur.get(class).copied().unwrap_or(def);
        out.push(format!("{class} {h} {s} {t}"));
    }
    Ok(out.join(" "))
}

/// Redis's memtoull: plain bytes or k/kb/m/mb/g/gb (k = 1000, kb = 1024).
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul): (&str, i64) = [
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((&lower, 1));
    let n: i64 = num.parse().ok()?;
    n.checked_mul(mul)
}

pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

/// Parses and canonicalises a value for `param`.
pub fn normalize(param: &Param, value: &str) -> Result<String, String> {
    match param.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int(min, max) => {
            let n: i64 = value
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Memory(min, max) => {
            // Like Redis's memtoull, negative sizes are not memory values.
            let n = parse_memory(value)
                .filter(|n| *n >= 0)
                .ok_or_else(|| "argument must be a memory value".to_string())?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Enum(opts) => {
            let v = value.to_ascii_lowercase();
            if opts.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    opts.join(", ")
                ))
            }
        }
        Kind::Str => Ok(value.to_string()),
        Kind::Special(f) => f(value),
    }
}

/// Values read on every command or connection, kept in atomics.
#[derive(Default)]
pub struct Hot {
    pub proto_max_bulk_len: AtomicI64,
    pub query_buffer_limit: AtomicU64,
    pub maxmemory: AtomicU64,
    pub has_password: AtomicBool,
    pub protected_mode: AtomicBool,
    pub timeout_secs: AtomicU64,
    pub hz: AtomicU64,
    pub maxclients: AtomicU64,
    /// Compact-encoding thresholds, read by every collection write.
    pub hash_max_listpack_entries: AtomicI64,
    pub hash_max_listpack_value: AtomicI64,
    pub set_max_intset_entries: AtomicI64,
    pub set_max_listpack_entries: AtomicI64,
    pub set_max_listpack_value: AtomicI64,
    pub zset_max_listpack_entries: AtomicI64,
    pub zset_max_listpack_value: AtomicI64,
    pub list_max_listpack_size: AtomicI64,
    pub hll_sparse_max_bytes: AtomicI64,
    /// notify-keyspace-events as Redis's NOTIFY_* bits, read per event.
    pub notify_keyspace_events: std::sync::atomic::AtomicU32,
    /// appendfsync is always: replies wait for an fsync (AOF, journal).
    pub fsync_always: AtomicBool,
    /// maxmemory-policy is an LFU one: access clocks are LFU counters
    /// (see `evict::lfu`), kept with lfu-log-factor and lfu-decay-time.
    pub lfu: AtomicBool,
    pub lfu_log_factor: AtomicI64,
    pub lfu_decay_time: AtomicI64,
}

pub struct Config {
    values: RwLock<BTreeMap<&'static str, String>>,
    pub hot: Hot,
    /// The config file the server started from, for CONFIG REWRITE.
    pub file: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Config {
    pub fn new(file: Option<std::path::PathBuf>) -> Self {
        let values = PARAMS
            .iter()
            .map(|p| (p.name, p.default.to_string()))
            .collect();
        let c = Config {
            values: RwLock::new(values),
            hot: Hot::default(),
            file,
        };
        for p in PARAMS {
            c.refresh_hot(p.name);
        }
        c
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let p = find(name)?;
        self.values.read().get(p.name).cloned()
    }

    pub fn get_int(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).as_deref() == Some("yes")
    }

    /// Sets one parameter. `startup` allows immutable ones (config file and
    /// command line). Errors are the text after "... - " in Redis's reply.
    pub fn set(&self, name: &str, value: &str, startup: bool) -> Result<(), String> {
        let p = find(name).ok_or_else(|| "Unknown option".to_string())?;
        if !p.mutable && !startup {
            return Err("can't set immutable config".into());
        }
        let v = normalize(p, value)?;
        self.values.write().insert(p.name, v);
        self.refresh_hot(p.name);
        self.keep_event_flags(p.name, value);
        Ok(())
    }

    /// Name/value pairs matching any of the glob patterns (CONFIG GET).
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let values = self.values.read();
        let mut out: Vec<(&'static str, String)> = vec![];
        for p in PARAMS {
            for name in std::iter::once(p.name).chain(p.alias) {
                let exact = patterns
                    .iter()
                    .any(|pat| pat.eq_ignore_ascii_case(name.as_bytes()));
                let globbed = patterns
                    .iter()
                    .any(|pat| glob_match(pat, name.as_bytes(), true));
                if (exact || (globbed && !p.sensitive)) && !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, values.get(p.name).cloned().unwrap_or_default()));
                }
            }
        }
        out
    }

    /// The canonical notify-keyspace-events string drops 'n' next to 'A'
    /// (as Redis prints it), but the classes given still apply: keep the
    /// flags parsed from the value as given.
    fn keep_event_flags(&self, name: &str, given: &str) {
        if name == "notify-keyspace-events" {
            let flags = crate::notify::parse(given).unwrap_or(0);
            self.hot.notify_keyspace_events.store(flags, Relaxed);
        }
    }

    fn refresh_hot(&self, name: &str) {
        let h = &self.hot;
        let v = self.get(name).unwrap_or_default();
        let int = || v.parse::<i64>().unwrap_or(0);
        match name {
            "proto-max-bulk-len" => h.proto_max_bulk_len.store(int(), Relaxed),
            "client-query-buffer-limit" => h.query_buffer_limit.store(int() as u64, Relaxed),
            "maxmemory" => h.maxmemory.store(int() as u64, Relaxed),
            "requirepass" => h.has_password.store(!v.is_empty(), Relaxed),
            "protected-mode" => h.protected_mode.store(v == "yes", Relaxed),
            "timeout" => h.timeout_secs.store(int() as u64, Relaxed),
            "hz" => h.hz.store(int() as u64, Relaxed),
            "appendfsync" => h.fsync_always.store(v == "always", Relaxed),
            "maxclients" => h.maxclients.store(int() as u64, Relaxed),
            "hash-max-listpack-entries" => h.hash_max_listpack_entries.store(int(), Relaxed),
            "hash-max-listpack-value" => h.hash_max_listpack_value.store(int(), Relaxed),
            "set-max-intset-entries" => h.set_max_intset_entries.store(int(), Relaxed),
            "set-max-listpack-entries" => h.set_max_listpack_entries.store(int(), Relaxed),
            "set-max-listpack-value" => h.set_max_listpack_value.store(int(), Relaxed),
            "zset-max-listpack-entries" => h.zset_max_listpack_entries.store(int(), Relaxed),
            "zset-max-listpack-value" => h.zset_max_listpack_value.store(int(), Relaxed),
            "list-max-listpack-size" => h.list_max_listpack_size.store(int(), Relaxed),
            "hll-sparse-max-bytes" => h.hll_sparse_max_bytes.store(int(), Relaxed),
            "maxmemory-policy" => h.lfu.store(v.ends_with("lfu"), Relaxed),
            "lfu-log-factor" => h.lfu_log_factor.store(int(), Relaxed),
            "lfu-decay-time" => h.lfu_decay_time.store(int(), Relaxed),
            "notify-keyspace-events" => h
                .notify_keyspace_events
                .store(crate::notify::parse(&v).unwrap_or(0), Relaxed),
            _ => {}
        }
    }

    /// CONFIG SET of several name/value pairs: either all take effect or
    /// none does. `allow_protected` says whether `enable-protected-configs`
    /// lets this client change protected parameters. The error is the whole
    /// reply text, as Redis words it.
    pub fn set_many(&self, pairs: &[(&str, &str)], allow_protected: bool) -> Result<(), String> {
        let failed = |name: &str, why: &str| {
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        let mut unknown = None;
        let mut params: Vec<&'static Param> = Vec::with_capacity(pairs.len());
        for (i, (name, _)) in pairs.iter().enumerate() {
            let Some(p) = find(name) else {
                unknown.get_or_insert(*name);
                continue;
            };
            if !p.mutable {
                return Err(failed(name, "can't set immutable config"));
            }
            if PROTECTED.contains(&p.name) && !allow_protected {
                return Err(failed(name, "can't set protected config"));
            }
            let dup = pairs[..i]
                .iter()
                .any(|(n, _)| find(n).is_some_and(|q| std::ptr::eq(q, p)));
            if dup {
                return Err(failed(name, "duplicate parameter"));
            }
            params.push(p);
        }
        if let Some(name) = unknown {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        }
        let mut values = Vec::with_capacity(pairs.len());
        for (p, (name, value)) in params.iter().zip(pairs) {
            values.push(normalize(p, value).map_err(|e| failed(name, &e))?);
        }
        {
            let mut map = self.values.write();
            for (p, v) in params.iter().zip(values) {
                map.insert(p.name, v);
            }
        }
        for (p, (_, value)) in params.iter().zip(pairs) {
            self.refresh_hot(p.name);
            self.keep_event_flags(p.name, value);
        }
        Ok(())
    }

    /// One config-file line for a parameter's current value.
    fn directive(p: &Param, v: &str) -> String {
        match p.name {
            // Word lists: written as separate words, like Redis does.
            "bind" | "save" | "client-output-buffer-limit" if !v.is_empty() => {
                format!("{} {v}", p.name)
            }
            _ => format!("{} {}", p.name, quote(v)),
        }
    }

    /// Renders the current configuration as a config file: parameters that
    /// differ from their defaults, one directive a line.
    pub fn render(&self) -> String {
        self.rewrite("")
    }

    /// CONFIG REWRITE: `old` is the current file. Lines of known parameters
    /// are replaced in place by their current value (later duplicates are
    /// dropped), comments and unknown lines are kept, and parameters that
    /// differ from their defaults but are not in the file are appended.
    pub fn rewrite(&self, old: &str) -> String {
        let values = self.values.read();
        let mut done: Vec<&'static str> = vec![];
        let mut out = String::new();
        for line in old.lines() {
            let word = line.split_whitespace().next().unwrap_or("");
            let param = if line.trim_start().starts_with('#') {
                None
            } else {
                find(word)
            };
            match param {
                Some(p) if done.contains(&p.name) => {}
                Some(p) => {
                    done.push(p.name);
                    out.push_str(&Self::directive(p, &values[p.name]));
                    out.push('\n');
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        let mut added = old.lines().any(|l| l.trim() == REWRITE_MARK);
        for p in PARAMS {
            let v = &values[p.name];
            if v != p.default && !done.contains(&p.name) {
                if !added {
                    out.push_str(REWRITE_MARK);
                    out.push('\n');
                    added = true;
                }
                out.push_str(&Self::directive(p, v));
                out.push('\n');
            }
        }
        out
    }
}

const REWRITE_MARK: &str = "# Generated by CONFIG REWRITE";

/// Quotes a value for a config file when it is empty or has spaces,
/// quotes or control characters (Redis's sdscatrepr).
fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_like_redis() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("10KB"), Some(10240));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn set_validates_and_canonicalises() {
        let c = Config::default();
        c.set("maxmemory", "1mb", false).unwrap();
        assert_eq!(c.get("maxmemory").unwrap(), "1048576");
        assert!(c.set("appendonly", "maybe", false).is_err());
        assert!(c.set("port", "7000", false).is_err());
        c.set("port", "7000", true).unwrap();
        c.set("save", "", false).unwrap();
        assert_eq!(c.get("save").unwrap(), "");
        assert!(c.set("save", "10", false).is_err());
    }

    #[test]
    fn set_many_is_all_or_nothing() {
        let c = Config::default();
        let e = c
            .set_many(&[("maxmemory", "10mb"), ("hz", "abc")], true)
            .unwrap_err();
        assert_eq!(e, "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer");
        assert_eq!(c.get("maxmemory").unwrap(), "0");
        let e = c.set_many(&[("foo", "1"), ("hz", "x")], true).unwrap_err();
        assert_eq!(
            e,
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        let e = c.set_many(&[("hz", "1"), ("HZ", "2")], true).unwrap_err();
        assert!(e.ends_with("'HZ') - duplicate parameter"), "{e}");
        let e = c.set_many(&[("dir", "/tmp")], false).unwrap_err();
        assert!(e.ends_with("can't set protected config"), "{e}");
        let e = c.set_many(&[("databases", "2")], true).unwrap_err();
        assert!(e.ends_with("can't set immutable config"), "{e}");
        c.set_many(&[("maxmemory", "1kb"), ("hz", "1000")], true)
            .unwrap();
        assert_eq!(c.get("maxmemory").unwrap(), "1024");
        assert_eq!(c.get("hz").unwrap(), "500");
        c.set_many(&[("requirepass", "x")], false).unwrap();
        assert!(c.hot.has_password.load(Relaxed));
    }

    #[test]
    fn rewrite_updates_lines_in_place() {
        let c = Config::default();
        c.set("maxmemory", "1mb", true).unwrap();
        c.set("save", "", true).unwrap();
        c.set("requirepass", "a b", true).unwrap();
        let old = "# my comment\nmaxmemory 5\nport 6379\nmaxmemory 7\ninclude x.conf\n";
        let new = c.rewrite(old);
        assert_eq!(
            new,
            "# my comment\nmaxmemory 1048576\nport 6379\ninclude x.conf\n# Generated by CONFIG REWRITE\nrequirepass \"a b\"\nsave \"\"\n"
        );
        // Rewriting again is stable.
        assert_eq!(c.rewrite(&new), new);
    }

    #[test]
    fn glob_get() {
        let c = Config::default();
        let got = c.matching(&[b"maxmemory*"]);
        let names: Vec<_> = got.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"maxmemory") && names.contains(&"maxmemory-policy"));
    }
}
