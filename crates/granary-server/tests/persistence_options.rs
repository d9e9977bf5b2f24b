//! Persistence options that change what goes to disk: `rdbchecksum no`
//! (RDB files end in a zero checksum, which loaders accept without a
//! check) and `aof-use-rdb-preamble no` (the AOF base is the commands that
//! rebuild the data, `.base.aof`). Files go both ways between Granary and
//! redis-server 7.0.

mod common;

use common::{fresh_dir, persistence_field, wait_until, Kind, ServerProc};
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const DATABASES: usize = 16;
/// How far a TTL may move between a save and a check after a restart.
const TTL_SLACK_MS: i64 = 20_000;

fn run(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")))
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".into(),
        Value::Nil => "(nil)".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(",")),
        other => format!("{other:?}"),
    }
}

/// `v` with the values of the named fields (in flat key-value arrays)
/// blanked: times that a rebuild cannot keep (a consumer's seen time is
/// when XCLAIM ran) or counters of the internal layout.
fn blank_fields(v: &Value, names: &[&str]) -> Value {
    match v {
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().map(|x| blank_fields(x, names)).collect();
            if out.len().is_multiple_of(2) {
                for i in (0..out.len()).step_by(2) {
                    if let Value::BulkString(k) = &out[i] {
                        if names.iter().any(|n| n.as_bytes() == &k[..]) {
                            out[i + 1] = Value::Nil;
                        }
                    }
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

/// Elements of an unordered reply, sorted (pairs kept together).
fn sorted(v: &Value, pairs: bool) -> String {
    let Value::Array(a) = v else { return text(v) };
    let mut items: Vec<String> = if pairs {
        a.chunks(2)
            .map(|p| p.iter().map(text).collect::<Vec<_>>().join("="))
            .collect()
    } else {
        a.iter().map(text).collect()
    };
    items.sort();
    items.join(",")
}

/// One key as type-specific reads show it: (type, content, PTTL).
fn key_state(c: &mut Connection, key: &str, stream_full: bool) -> (String, String, i64) {
    let t = text(&run(c, &["TYPE", key]));
    let content = match t.as_str() {
        "string" => text(&run(c, &["GET", key])),
        "list" => text(&run(c, &["LRANGE", key, "0", "-1"])),
        "set" => sorted(&run(c, &["SMEMBERS", key]), false),
        "zset" => text(&run(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        "hash" => sorted(&run(c, &["HGETALL", key]), true),
        "stream" => {
            let mut s = text(&run(c, &["XRANGE", key, "-", "+"]));
            if stream_full {
                let full = run(c, &["XINFO", "STREAM", key, "FULL"]);
                let ignored = [
                    "seen-time",
                    "active-time",
                    "radix-tree-keys",
                    "radix-tree-nodes",
                    "recorded-first-entry-id",
                ];
                s.push_str(&text(&blank_fields(&full, &ignored)));
            }
            s
        }
        other => panic!("{key}: type {other}"),
    };
    let pttl = match run(c, &["PTTL", key]) {
        Value::Int(i) => i,
        other => panic!("PTTL {key}: {other:?}"),
    };
    (t, content, pttl)
}

type Dataset = BTreeMap<(usize, String), (String, String, i64)>;

/// Every key of every database.
fn dataset(c: &mut Connection, stream_full: bool) -> Dataset {
    let mut out = Dataset::new();
    for db in 0..DATABASES {
        run(c, &["SELECT", &db.to_string()]);
        let Value::Array(keys) = run(c, &["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for k in keys {
            let k = text(&k);
            let state = key_state(c, &k, stream_full);
            out.insert((db, k), state);
        }
    }
    run(c, &["SELECT", "0"]);
    out
}

fn assert_same(got: &Dataset, expected: &Dataset, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: keys"
    );
    for (k, (t, content, pttl)) in expected {
        let (gt, gcontent, gpttl) = &got[k];
        assert_eq!((gt, gcontent), (t, content), "{what}: {k:?}");
        if *pttl < 0 {
            assert_eq!(gpttl, pttl, "{what}: PTTL of {k:?}");
        } else {
            assert!(
                (pttl - gpttl).abs() <= TTL_SLACK_MS,
                "{what}: PTTL of {k:?}: {gpttl} vs {pttl}"
            );
        }
    }
}

const LIBRARY: &str = "#!lua name=persistlib\nredis.register_function('plus1', function(keys) return redis.call('INCR', keys[1]) end)";

/// Writes one of each type and encoding, TTLs, several databases and a
/// function library; `field_ttls` adds a hash with field TTLs (Redis 7.4).
fn fill(c: &mut Connection, field_ttls: bool) {
    run(c, &["SET", "str", "hello world"]);
    run(c, &["SET", "int", "12345"]);
    run(c, &["SET", "neg", "-9007199254740993"]);
    run(c, &["SET", "bin", "a\r\nb\0c"]);
    run(c, &["SET", "long", &"x".repeat(500)]);
    for i in 0..200 {
        run(c, &["RPUSH", "list", &format!("e{i}")]);
        run(c, &["RPUSH", "intlist", &i.to_string()]);
    }
    run(c, &["LPUSH", "small-list", "a", "b", "c"]);
    for i in 0..150 {
        run(c, &["SADD", "intset", &(i * 7).to_string()]);
        run(c, &["SADD", "strset", &format!("m{i}")]);
        run(
            c,
            &["ZADD", "zset", &format!("{}.25", i - 75), &format!("z{i}")],
        );
        run(c, &["HSET", "hash", &format!("f{i}"), &format!("v{i}")]);
    }
    run(c, &["SADD", "small-intset", "1", "2", "3"]);
    run(
        c,
        &[
            "ZADD", "zsmall", "inf", "top", "-inf", "bottom", "0", "zero",
        ],
    );
    run(
        c,
        &["ZADD", "zsmall", "2.5", "two-and-a-half", "1e-300", "tiny"],
    );
    run(c, &["HSET", "small-hash", "a", "1", "b", "2"]);
    // A stream with a deleted entry, two groups, pending entries and a
    // consumer without any.
    for i in 1..=10 {
        run(
            c,
            &[
                "XADD",
                "stream",
                &format!("{i}-1"),
                "n",
                &i.to_string(),
                "other",
                "x",
            ],
        );
    }
    run(c, &["XDEL", "stream", "4-1"]);
    run(c, &["XGROUP", "CREATE", "stream", "g1", "0"]);
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "stream",
            ">",
        ],
    );
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "stream",
            ">",
        ],
    );
    run(c, &["XACK", "stream", "g1", "2-1"]);
    run(c, &["XGROUP", "CREATECONSUMER", "stream", "g1", "carol"]);
    run(c, &["XGROUP", "CREATE", "stream", "g2", "$"]);
    // A stream whose every entry is gone.
    run(c, &["XADD", "empty-stream", "5-5", "a", "b"]);
    run(c, &["XDEL", "empty-stream", "5-5"]);
    run(c, &["SET", "ttl-str", "v", "PX", "3600000"]);
    run(c, &["RPUSH", "ttl-list", "a", "b"]);
    run(c, &["PEXPIRE", "ttl-list", "7200000"]);
    if field_ttls {
        run(c, &["HSET", "ttl-fields", "a", "1", "b", "2", "c", "3"]);
        run(
            c,
            &["HPEXPIRE", "ttl-fields", "3600000", "FIELDS", "2", "a", "c"],
        );
    }
    for db in [3, 9] {
        run(c, &["SELECT", &db.to_string()]);
        run(c, &["SET", "str", &format!("in db {db}")]);
        run(c, &["SADD", "set", "x", "y"]);
    }
    run(c, &["SELECT", "0"]);
    run(c, &["FUNCTION", "LOAD", LIBRARY]);
}

fn assert_library(c: &mut Connection) {
    run(c, &["SET", "fn-counter", "41"]);
    assert_eq!(text(&run(c, &["FCALL", "plus1", "1", "fn-counter"])), "42");
    run(c, &["DEL", "fn-counter"]);
}

/// The field TTLs of the hash `fill` makes: two set, one not.
fn field_ttls(c: &mut Connection) -> Vec<i64> {
    let Value::Array(a) = run(c, &["HPTTL", "ttl-fields", "FIELDS", "3", "a", "b", "c"]) else {
        panic!("HPTTL")
    };
    a.iter()
        .map(|v| match v {
            Value::Int(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn tail8(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"REDIS"), "{}", path.display());
    bytes[bytes.len() - 8..].to_vec()
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

// ---------------------------------------------------------------- rdbchecksum

/// Granary with rdbchecksum no writes a zero checksum; Redis loads the
/// file, and so does Granary (saying it did not check).
#[test]
fn rdbchecksum_no_writes_a_zero_checksum_that_redis_and_granary_load() {
    let g = ServerProc::granary(&["--rdbchecksum", "no"]);
    let mut c = g.conn();
    fill(&mut c, false);
    let expected = dataset(&mut c, false);
    assert_eq!(text(&run(&mut c, &["SAVE"])), "OK");
    let file = g.dir.join("dump.rdb");
    assert_eq!(tail8(&file), [0; 8]);
    // The setting is fixed at start-up, as in Redis.
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdbchecksum")
        .arg("yes")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
    // DUMP payloads keep their CRC whatever rdbchecksum says.
    let Value::BulkString(payload) = run(&mut c, &["DUMP", "str"]) else {
        panic!("DUMP")
    };
    assert_ne!(payload[payload.len() - 8..], [0; 8]);

    let rdir = fresh_dir();
    std::fs::copy(&file, rdir.join("dump.rdb")).unwrap();
    let r = ServerProc::start_in(Kind::Redis, &rdir, &[]);
    let got = dataset(&mut r.conn(), false);
    assert_same(&got, &expected, "redis loading granary's file");
    assert_library(&mut r.conn());
    drop(r);

    let gdir = fresh_dir();
    std::fs::copy(&file, gdir.join("dump.rdb")).unwrap();
    let g2 = ServerProc::start_in(Kind::Granary, &gdir, &["--logfile", "server.log"]);
    let got = dataset(&mut g2.conn(), false);
    assert_same(&got, &expected, "granary loading its own file");
    assert_library(&mut g2.conn());
    assert!(
        log_of(&gdir).contains("RDB file was saved with checksum disabled: no check performed."),
        "{}",
        log_of(&gdir)
    );
    drop(g2);
    for d in [rdir, gdir] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// A file Redis wrote with rdbchecksum no loads into Granary.
#[test]
fn granary_loads_a_redis_file_saved_with_rdbchecksum_no() {
    let r = ServerProc::redis(&["--rdbchecksum", "no"]);
    let mut rc = r.conn();
    fill(&mut rc, false);
    let expected = dataset(&mut rc, false);
    assert_eq!(text(&run(&mut rc, &["SAVE"])), "OK");
    let file = r.dir.join("dump.rdb");
    assert_eq!(tail8(&file), [0; 8]);
    let Value::BulkString(redis_dump) = run(&mut rc, &["DUMP", "str"]) else {
        panic!("DUMP")
    };
    let dir = fresh_dir();
    std::fs::copy(&file, dir.join("dump.rdb")).unwrap();
    drop(r);
    for checksum in ["yes", "no"] {
        let g = ServerProc::start_in(
            Kind::Granary,
            &dir,
            &["--rdbchecksum", checksum, "--logfile", "server.log"],
        );
        let mut c = g.conn();
        assert_same(
            &dataset(&mut c, false),
            &expected,
            "granary loading redis's file",
        );
        assert_library(&mut c);
        // Same DUMP payload as Redis's, CRC included.
        assert_eq!(
            run(&mut c, &["DUMP", "str"]),
            Value::BulkString(redis_dump.clone())
        );
    }
    // With rdbchecksum yes it saw the zero checksum and said so (with no,
    // nothing is checked at all, as in Redis).
    assert!(log_of(&dir).contains("RDB file was saved with checksum disabled: no check performed."));
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- aof-use-rdb-preamble

fn manifest_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap_or_default()
}

/// The base file the manifest names.
fn base_of(dir: &Path) -> PathBuf {
    let m = manifest_of(dir);
    let line = m
        .lines()
        .find(|l| l.ends_with("type b"))
        .unwrap_or_else(|| panic!("no base in {m}"));
    let name = line.split_whitespace().nth(1).unwrap();
    dir.join("appendonlydir").join(name)
}

/// Runs BGREWRITEAOF and waits for it to finish.
fn rewrite(c: &mut Connection) {
    let before: i64 = persistence_field(c, "aof_rewrites").parse().unwrap_or(0);
    let _ = run(c, &["BGREWRITEAOF"]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            persistence_field(c, "aof_rewrite_in_progress") == "0"
                && persistence_field(c, "aof_rewrite_scheduled") == "0"
                && persistence_field(c, "aof_rewrites").parse().unwrap_or(0) > before
        }),
        "the rewrite did not finish"
    );
    assert_eq!(persistence_field(c, "aof_last_bgrewrite_status"), "ok");
}

fn aof_ready(c: &mut Connection) {
    assert!(wait_until(Duration::from_secs(30), || {
        persistence_field(c, "aof_enabled") == "1"
            && persistence_field(c, "aof_rewrite_in_progress") == "0"
            && persistence_field(c, "aof_rewrite_scheduled") == "0"
    }));
}

/// Asserts the AOF base is a command file named `.base.aof`.
fn assert_command_base(dir: &Path) {
    let base = base_of(dir);
    assert!(
        base.to_string_lossy().ends_with(".base.aof"),
        "{}",
        manifest_of(dir)
    );
    let bytes = std::fs::read(&base).unwrap();
    assert!(
        bytes.is_empty() || bytes.starts_with(b"*"),
        "{}",
        base.display()
    );
}

const NO_PREAMBLE: &[&str] = &[
    "--appendonly",
    "yes",
    "--aof-use-rdb-preamble",
    "no",
    "--appendfsync",
    "always",
];

/// With aof-use-rdb-preamble no, the base is commands; kill -9 and a
/// restart give back the same data (streams down to their groups and
/// pending entries, field TTLs included), and redis-server loads the same
/// directory.
#[test]
fn a_command_base_rebuilds_every_type_after_kill9() {
    let mut g = ServerProc::granary(NO_PREAMBLE);
    let mut c = g.conn();
    aof_ready(&mut c);
    assert_command_base(&g.dir);
    fill(&mut c, true);
    let ttls = field_ttls(&mut c);
    let expected = dataset(&mut c, true);
    rewrite(&mut c);
    assert_command_base(&g.dir);
    let base = std::fs::read(base_of(&g.dir)).unwrap();
    let base = String::from_utf8_lossy(&base);
    for cmd in [
        "FUNCTION",
        "SELECT",
        "RPUSH",
        "SADD",
        "ZADD",
        "HMSET",
        "XADD",
        "XSETID",
        "XCLAIM",
        "PEXPIREAT",
        "HPEXPIREAT",
    ] {
        assert!(
            base.contains(&format!("\r\n{cmd}\r\n")),
            "no {cmd} in the base"
        );
    }
    // The increment after the rewrite is empty: the base holds it all.
    g.kill9_and_restart();
    let mut c = g.conn();
    // Keys the replay made were used just now (not at the epoch).
    let Value::Int(idle) = run(&mut c, &["OBJECT", "IDLETIME", "str"]) else {
        panic!("IDLETIME")
    };
    assert!(idle <= 30, "{idle}");
    assert_same(&dataset(&mut c, true), &expected, "granary after kill -9");
    let again = field_ttls(&mut c);
    assert_eq!(again[1], -1);
    for i in [0, 2] {
        assert!(
            (ttls[i] - again[i]).abs() <= TTL_SLACK_MS,
            "{ttls:?} {again:?}"
        );
    }
    assert_library(&mut c);
}

/// Redis 7.0 loads a Granary AOF directory whose base is commands.
#[test]
fn redis_loads_a_granary_command_base() {
    let g = ServerProc::granary(NO_PREAMBLE);
    let mut c = g.conn();
    aof_ready(&mut c);
    fill(&mut c, false);
    rewrite(&mut c);
    assert_command_base(&g.dir);
    // Some writes after the rewrite go to the increment.
    run(&mut c, &["SET", "after", "rewrite"]);
    run(&mut c, &["XADD", "stream", "11-1", "n", "11"]);
    let expected = dataset(&mut c, false);
    let dir = fresh_dir();
    copy_dir(&g.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    drop(g);
    let r = ServerProc::start_in(Kind::Redis, &dir, &["--appendonly", "yes"]);
    let mut rc = r.conn();
    assert_same(
        &dataset(&mut rc, false),
        &expected,
        "redis loading granary's AOF",
    );
    assert_library(&mut rc);
    drop(r);
    std::fs::remove_dir_all(&dir).ok();
}

/// Granary loads an AOF directory Redis wrote without a preamble.
#[test]
fn granary_loads_a_redis_command_base() {
    let r = ServerProc::redis(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut rc = r.conn();
    aof_ready(&mut rc);
    fill(&mut rc, false);
    rewrite(&mut rc);
    assert_command_base(&r.dir);
    run(&mut rc, &["SET", "after", "rewrite"]);
    let expected = dataset(&mut rc, false);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut rc);
    let mut r = r;
    assert!(r.wait_exit(Duration::from_secs(30)));
    let g = ServerProc::start_in(Kind::Granary, &r.dir, &["--appendonly", "yes"]);
    let mut c = g.conn();
    assert_same(
        &dataset(&mut c, false),
        &expected,
        "granary loading redis's AOF",
    );
    assert_library(&mut c);
}

/// The command base is the instant the rewrite began: writes acknowledged
/// while it runs are all there after kill -9 (in the increment), none
/// twice.
#[test]
fn writes_during_a_command_rewrite_survive_kill9() {
    let mut g = ServerProc::granary(NO_PREAMBLE);
    let mut c = g.conn();
    aof_ready(&mut c);
    let mut p = redis::pipe();
    for i in 0..20_000 {
        p.cmd("RPUSH").arg(format!("k{}", i % 500)).arg(i).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    let expected = dataset(&mut c, false);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), g.addr());
        std::thread::spawn(move || {
            let mut w = redis::Client::open(format!("redis://{addr}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            while !stop.load(Relaxed) {
                let n: u64 = redis::cmd("INCR").arg("counter").query(&mut w).unwrap();
                let _: () = redis::cmd("RPUSH")
                    .arg("k7")
                    .arg(format!("late{n}"))
                    .query(&mut w)
                    .unwrap();
                acked.store(n, Relaxed);
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || acked.load(Relaxed) > 10));
    rewrite(&mut c);
    assert!(wait_until(Duration::from_secs(10), || acked.load(Relaxed) > 50));
    stop.store(true, Relaxed);
    writer.join().unwrap();
    let n = acked.load(Relaxed);
    assert_command_base(&g.dir);
    g.kill9_and_restart();
    let mut c = g.conn();
    let counter: u64 = redis::cmd("GET").arg("counter").query(&mut c).unwrap();
    assert_eq!(counter, n);
    let got = dataset(&mut c, false);
    for (k, v) in &expected {
        if k.1 == "k7" {
            let late: Vec<String> = (1..=n).map(|i| format!("late{i}")).collect();
            assert!(
                got[k].1.ends_with(&format!("{}]", late.join(","))),
                "{}",
                got[k].1
            );
        } else {
            assert_eq!(&got[k], v, "{k:?}");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
