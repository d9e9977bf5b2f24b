//! The append-only file: every acknowledged write survives kill -9 (with
//! appendfsync always and everysec), rewrites under load lose nothing,
//! CONFIG SET appendonly yes starts an AOF from the data in memory, expired
//! keys are not resurrected, replay is deterministic for random and
//! relative-time commands, truncated and corrupt files are handled as
//! aof-load-truncated says, and Redis 7.0 reads Granary's AOF directory and
//! the other way round.

mod common;

use common::{fresh_dir, persistence_field, wait_until, Kind, ServerProc};
use redis::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for the AOF to exist (its manifest, written once the first
/// rewrite has the base) with no rewrite pending.
fn wait_aof_ready(g: &ServerProc) {
    let mut c = g.conn();
    let manifest = g.dir.join("appendonlydir/appendonly.aof.manifest");
    assert!(
        wait_until(Duration::from_secs(30), || {
            manifest.is_file()
                && persistence_field(&mut c, "aof_enabled") == "1"
                && persistence_field(&mut c, "aof_rewrite_in_progress") == "0"
                && persistence_field(&mut c, "aof_rewrite_scheduled") == "0"
        }),
        "the AOF was not set up"
    );
}

fn aof_server(fsync: &str) -> ServerProc {
    let g = ServerProc::granary(&["--appendonly", "yes", "--appendfsync", fsync]);
    wait_aof_ready(&g);
    g
}

/// The first start with appendonly yes creates the AOF before it accepts
/// clients (as Redis does), so writes acknowledged at once survive kill -9.
/// It once built the base in the background and wrote the manifest after:
/// a kill before then lost every acknowledged write.
#[test]
fn writes_right_after_the_first_start_survive_kill9() {
    let mut g = ServerProc::granary(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    assert!(g
        .dir
        .join("appendonlydir/appendonly.aof.manifest")
        .is_file());
    let mut c = g.conn();
    let mut p = redis::pipe();
    for i in 0..200 {
        p.sadd("s", i).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    g.kill9_and_restart();
    let n: usize = redis::cmd("SCARD").arg("s").query(&mut g.conn()).unwrap();
    assert_eq!(n, 200);
}

/// A writer pushes numbered elements in pipelines and counts the ones
/// acknowledged; the server is killed with SIGKILL at a random moment. After
/// a restart the list must hold every acknowledged element, in order, and
/// nothing that was never sent.
fn kill9_keeps_acknowledged_writes(fsync: &str) {
    let mut g = aof_server(fsync);
    for round in 0..3 {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let before: u64 = redis::cmd("LLEN").arg("log").query(&mut g.conn()).unwrap();
        let addr = g.addr();
        let writer = {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(mut c) = redis::Client::open(format!("redis://{addr}/"))
                    .unwrap()
                    .get_connection()
                else {
                    return;
                };
                let mut next = before;
                while !stop.load(Relaxed) {
                    let mut p = redis::pipe();
                    for i in next..next + 50 {
                        p.cmd("RPUSH").arg("log").arg(i).ignore();
                        p.cmd("INCR").arg("count").ignore();
                    }
                    if p.query::<()>(&mut c).is_err() {
                        return;
                    }
                    next += 50;
                    acked.store(next, Relaxed);
                }
            })
        };
        // Kill once a good number of writes went through.
        let target = before + 2000 + round * 700;
        assert!(wait_until(Duration::from_secs(60), || acked.load(Relaxed) >= target));
        g.kill9_and_restart();
        stop.store(true, Relaxed);
        writer.join().unwrap();
        let acked = acked.load(Relaxed);
        let mut c = g.conn();
        let log: Vec<u64> = redis::cmd("LRANGE")
            .arg("log")
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .unwrap();
        let count: u64 = redis::cmd("GET").arg("count").query(&mut c).unwrap();
        assert!(
            log.len() as u64 >= acked,
            "{fsync}: {} elements survived, {acked} were acknowledged",
            log.len()
        );
        assert!(log.len() as u64 <= acked + 50, "more than was ever sent");
        assert!(
            log.iter().enumerate().all(|(i, &v)| v == i as u64),
            "{fsync}: elements out of order or duplicated"
        );
        assert_eq!(
            count,
            log.len() as u64,
            "the transaction-free INCRs and RPUSHes diverged"
        );
        wait_aof_ready(&g);
    }
}

#[test]
fn kill9_keeps_every_acknowledged_write_with_fsync_always() {
    kill9_keeps_acknowledged_writes("always");
}

#[test]
fn kill9_keeps_every_acknowledged_write_with_fsync_everysec() {
    // The file is written before each reply; everysec only delays fsync,
    // which matters for power loss, not for a killed process.
    kill9_keeps_acknowledged_writes("everysec");
}

/// Every key of database 0 and 3 as comparable text.
fn contents(c: &mut Connection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for db in [0, 3] {
        redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        keys.sort();
        for k in keys {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query(c).unwrap();
            let t: String = redis::cmd("TYPE").arg(&k).query(c).unwrap();
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(c).unwrap();
            let body = match t.as_str() {
                "set" => {
                    let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query(c).unwrap();
                    m.sort();
                    format!("{m:?}")
                }
                _ => format!(
                    "{} bytes of DUMP {:?}",
                    dump.len(),
                    &dump[..dump.len().min(40)]
                ),
            };
            out.insert(format!("{db}/{k}"), format!("{t} ttl={} {body}", ttl > 0));
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    out
}

/// Commands whose replay could differ from what they did: random ones,
/// relative times, floats, blocking pops, transactions.
fn tricky_writes(c: &mut Connection) {
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("s")
        .arg("v")
        .arg("EX")
        .arg(1000)
        .cmd("SETEX")
        .arg("se")
        .arg(500)
        .arg("v")
        .cmd("SET")
        .arg("e")
        .arg("v")
        .cmd("EXPIRE")
        .arg("e")
        .arg(700)
        .cmd("SET")
        .arg("g")
        .arg("v")
        .cmd("GETEX")
        .arg("g")
        .arg("PX")
        .arg(900_000)
        .cmd("SET")
        .arg("gd")
        .arg("v")
        .cmd("GETDEL")
        .arg("gd")
        .cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.1")
        .cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.2")
        .cmd("HINCRBYFLOAT")
        .arg("h")
        .arg("x")
        .arg("1.1")
        .cmd("SADD")
        .arg("set")
        .arg((0..50).collect::<Vec<_>>())
        .cmd("SPOP")
        .arg("set")
        .cmd("SPOP")
        .arg("set")
        .arg(7)
        .cmd("SADD")
        .arg("small")
        .arg(&["a", "b", "c"])
        .cmd("SPOP")
        .arg("small")
        .arg(2)
        .cmd("RPUSH")
        .arg("l")
        .arg(&["1", "2", "3"])
        .cmd("BLPOP")
        .arg("missing")
        .arg("l")
        .arg(1)
        .cmd("BLMOVE")
        .arg("l")
        .arg("l2")
        .arg("LEFT")
        .arg("RIGHT")
        .arg(1)
        .cmd("ZADD")
        .arg("z")
        .arg(&["1", "a", "2", "b"])
        .cmd("BZPOPMIN")
        .arg("z")
        .arg(1)
        .cmd("SELECT")
        .arg(3)
        .cmd("SET")
        .arg("flushed")
        .arg("x")
        .cmd("FLUSHDB")
        .cmd("SET")
        .arg("in3")
        .arg("x")
        .cmd("MULTI")
        .cmd("INCR")
        .arg("t")
        .cmd("RPUSH")
        .arg("tl")
        .arg("a")
        .cmd("EXEC")
        .cmd("SELECT")
        .arg(0)
        .query(c)
        .unwrap();
}

#[test]
fn replay_restores_what_random_and_relative_commands_did() {
    let mut g = aof_server("everysec");
    let mut c = g.conn();
    tricky_writes(&mut c);
    let before = contents(&mut c);
    assert!(before.len() >= 12, "{before:?}");
    g.kill9_and_restart();
    assert_eq!(contents(&mut g.conn()), before);
    // And once more after a rewrite folded everything into the base.
    let mut c = g.conn();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(30), || persistence_field(
        &mut c,
        "aof_rewrites"
    ) == "1"));
    g.kill9_and_restart();
    assert_eq!(contents(&mut g.conn()), before);
}

#[test]
fn rewrites_under_writes_lose_nothing() {
    const TOTAL: u64 = 300_000;
    let mut g = aof_server("everysec");
    let addr = g.addr();
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut c = redis::Client::open(format!("redis://{addr}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            for i in 0..(TOTAL / 100) {
                let mut p = redis::pipe();
                for j in 0..100 {
                    p.cmd("SET")
                        .arg(format!("k:{}", i * 100 + j))
                        .arg(i)
                        .ignore();
                }
                p.cmd("INCRBY").arg("n").arg(100).ignore();
                p.query::<()>(&mut c).unwrap();
                acked.store((i + 1) * 100, Relaxed);
            }
        })
    };
    let mut c = g.conn();
    let mut overlapped = 0;
    while acked.load(Relaxed) < TOTAL {
        let before = acked.load(Relaxed);
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap_or_default();
        assert!(wait_until(Duration::from_secs(30), || {
            persistence_field(&mut c, "aof_rewrite_in_progress") == "0"
                && persistence_field(&mut c, "aof_rewrite_scheduled") == "0"
        }));
        let after = acked.load(Relaxed);
        if after > before && after < TOTAL {
            overlapped += 1;
        }
    }
    writer.join().unwrap();
    assert!(overlapped > 0, "no rewrite overlapped the writer");
    g.kill9_and_restart();
    let mut c = g.conn();
    let n: u64 = redis::cmd("GET").arg("n").query(&mut c).unwrap();
    assert_eq!(n, TOTAL);
    let size: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, TOTAL + 1);
}

#[test]
fn config_set_appendonly_yes_starts_from_the_data_in_memory() {
    let mut g = ServerProc::granary(&[]);
    let mut c = g.conn();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    wait_aof_ready(&g);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut c)
        .unwrap();
    // Restart with appendonly on, as CONFIG REWRITE would have recorded.
    let dir = g.dir.clone();
    drop(c);
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<()>(&mut g.conn());
    assert!(g.wait_exit(Duration::from_secs(30)));
    let g2 = ServerProc::start_in(Kind::Granary, &dir, &["--appendonly", "yes"]);
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg("before")
        .arg("after")
        .query(&mut g2.conn())
        .unwrap();
    assert_eq!(v, vec![Some("1".into()), Some("2".into())]);
}

#[test]
fn expired_keys_are_not_resurrected() {
    let mut g = aof_server("everysec");
    let mut c = g.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("string")
        .arg("PX")
        .arg(150)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("gone")
        .arg("x")
        .arg("PX")
        .arg(150)
        .query(&mut c)
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        redis::cmd("PTTL").arg("k").query::<i64>(&mut c).unwrap() == -2
    }));
    // The key expired, then became a set.
    let _: () = redis::cmd("SADD").arg("k").arg("m").query(&mut c).unwrap();
    g.kill9_and_restart();
    let mut c = g.conn();
    let t: String = redis::cmd("TYPE").arg("k").query(&mut c).unwrap();
    assert_eq!(t, "set");
    let exists: u64 = redis::cmd("EXISTS").arg("gone").query(&mut c).unwrap();
    assert_eq!(exists, 0);
}

fn incr_file(dir: &Path) -> std::path::PathBuf {
    let manifest =
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    dir.join("appendonlydir").join(name)
}

/// A stopped server's directory with 100 INCRs in its AOF.
fn aof_dir_with_incrs() -> std::path::PathBuf {
    let dir = fresh_dir();
    let mut g = ServerProc::start_in(Kind::Granary, &dir, &["--appendonly", "yes"]);
    wait_aof_ready(&g);
    let mut c = g.conn();
    for _ in 0..100 {
        let _: i64 = redis::cmd("INCR").arg("n").query(&mut c).unwrap();
    }
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    assert!(g.wait_exit(Duration::from_secs(30)));
    dir
}

fn start_output(dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_granary"))
        .args([
            "--port",
            &common::free_port().to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
        ])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that loads keeps running: give it a moment, then stop it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = child.try_wait().unwrap().is_some_and(|s| !s.success());
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        refused,
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_truncated_tail_is_cut_off_when_allowed_and_refused_otherwise() {
    let dir = aof_dir_with_incrs();
    let f = incr_file(&dir);
    let len = std::fs::metadata(&f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len - 5).unwrap();
    let (refused, log) = start_output(&dir, &["--aof-load-truncated", "no"]);
    assert!(refused, "{log}");
    assert!(
        log.contains("Unexpected end of file") && log.contains(".incr.aof"),
        "{log}"
    );
    let g = ServerProc::start_in(Kind::Granary, &dir, &["--appendonly", "yes"]);
    let n: i64 = redis::cmd("GET").arg("n").query(&mut g.conn()).unwrap();
    assert_eq!(n, 99, "the cut command is lost, the ones before it are not");
    drop(g);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_file_is_refused_naming_the_file_and_offset() {
    let dir = aof_dir_with_incrs();
    let f = incr_file(&dir);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    let at = mid + bytes[mid..].iter().position(|&b| b == b'*').unwrap();
    bytes[at] = b'?';
    std::fs::write(&f, &bytes).unwrap();
    let (refused, log) = start_output(&dir, &[]);
    assert!(refused, "{log}");
    assert!(
        log.contains("Bad file format") && log.contains(&format!("offset {at}")),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unfinished_transaction_at_the_end_is_reverted() {
    let dir = aof_dir_with_incrs();
    let f = incr_file(&dir);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
    std::fs::write(&f, &bytes).unwrap();
    let g = ServerProc::start_in(Kind::Granary, &dir, &["--appendonly", "yes"]);
    let mut c = g.conn();
    let n: i64 = redis::cmd("GET").arg("n").query(&mut c).unwrap();
    assert_eq!(n, 100);
    // The file was cut before MULTI, so what is appended now replays.
    let _: i64 = redis::cmd("INCR").arg("n").query(&mut c).unwrap();
    drop(c);
    let mut g = g;
    g.kill9_and_restart();
    let n: i64 = redis::cmd("GET").arg("n").query(&mut g.conn()).unwrap();
    assert_eq!(n, 101);
    drop(g);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn redis_reads_granary_aof_and_granary_reads_redis_aof() {
    let g = aof_server("everysec");
    let mut c = g.conn();
    tricky_writes(&mut c);
    let expected = contents(&mut c);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let mut g = g;
    assert!(g.wait_exit(Duration::from_secs(30)));
    let r = ServerProc::start_in(Kind::Redis, &g.dir, &["--appendonly", "yes"]);
    let mut rc = r.conn();
    let got = contents(&mut rc);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    // Redis appends to the same directory; Granary replays what it wrote.
    let _: () = redis::cmd("SET")
        .arg("by-redis")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(&mut rc)
        .unwrap();
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut rc);
    let mut r = r;
    assert!(r.wait_exit(Duration::from_secs(30)));
    let g2 = ServerProc::start_in(Kind::Granary, &g.dir, &["--appendonly", "yes"]);
    let mut c = g2.conn();
    let ttl: i64 = redis::cmd("TTL").arg("by-redis").query(&mut c).unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    let got = contents(&mut c);
    for (k, v) in &expected {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
}

#[test]
fn streams_scripts_and_functions_replay_from_the_aof() {
    let mut g = aof_server("everysec");
    let mut c = g.conn();
    for i in 0..5 {
        let _: String = redis::cmd("XADD")
            .arg("st")
            .arg("*")
            .arg("n")
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], 'from-lua'); return redis.call('INCRBY', 'undeclared', 5)")
        .arg(1)
        .arg("lk")
        .query::<i64>(&mut c)
        .map(|_| ())
        .unwrap();
    let lib = "#!lua name=mylib\nredis.register_function('double', function(keys) return redis.call('INCRBY', keys[1], redis.call('GET', keys[1])) end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("d").arg(3).query(&mut c).unwrap();
    let _: i64 = redis::cmd("FCALL")
        .arg("double")
        .arg(1)
        .arg("d")
        .query(&mut c)
        .unwrap();
    let stream: redis::Value = redis::cmd("XRANGE")
        .arg("st")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    g.kill9_and_restart();
    let mut c = g.conn();
    let again: redis::Value = redis::cmd("XRANGE")
        .arg("st")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    assert_eq!(again, stream, "XADD * replayed with the IDs it generated");
    let v: Vec<String> = redis::cmd("MGET")
        .arg("lk")
        .arg("undeclared")
        .arg("d")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["from-lua", "5", "6"]);
    let d: i64 = redis::cmd("FCALL")
        .arg("double")
        .arg(1)
        .arg("d")
        .query(&mut c)
        .unwrap();
    assert_eq!(d, 12, "the function library came back");
    // The rewrite's RDB base holds the stream: after it, the restart
    // below has only the base to find the stream in.
    let rewrites: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        let done: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
        done > rewrites && persistence_field(&mut c, "aof_rewrite_in_progress") == "0"
    }));
    assert_eq!(persistence_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    g.kill9_and_restart();
    let again: redis::Value = redis::cmd("XRANGE")
        .arg("st")
        .arg("-")
        .arg("+")
        .query(&mut g.conn())
        .unwrap();
    assert_eq!(again, stream);
}

#[test]
fn functions_survive_a_rewrite() {
    let mut g = aof_server("everysec");
    let mut c = g.conn();
    let lib = "#!lua name=lib2\nredis.register_function('hello', function() return 'hi' end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(30), || persistence_field(
        &mut c,
        "aof_rewrites"
    ) == "2"));
    g.kill9_and_restart();
    let v: String = redis::cmd("FCALL")
        .arg("hello")
        .arg(0)
        .query(&mut g.conn())
        .unwrap();
    assert_eq!(v, "hi");
}
