//! RDB persistence: SAVE, BGSAVE, save points, start-up loading, SHUTDOWN
//! and SIGTERM saves, DEBUG RELOAD, MISCONF after a failed save, refusal of
//! corrupt files, files exchanged with a real redis-server both ways, and
//! BGSAVE's point-in-time promise under concurrent writes.

mod common;

use common::{fresh_dir, persistence_field, wait_until, Kind, ServerProc};
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every key of every database, as a comparable text: type, contents in a
/// canonical order, and whether it has a TTL.
fn contents(c: &mut Connection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query(c)
                .unwrap();
            for k in keys {
                let repr = describe(c, &k);
                out.insert(format!("{db}/{}", String::from_utf8_lossy(&k)), repr);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    out
}

/// Asserts equal contents, naming the keys that differ (values cut short).
fn assert_same(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>, what: &str) {
    let cut = |v: Option<&String>| v.map(|v| v.chars().take(200).collect::<String>());
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            format!(
                "{k}: got {:?}, want {:?}",
                cut(got.get(k)),
                cut(want.get(k))
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} keys differ:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

fn describe(c: &mut Connection, k: &[u8]) -> String {
    let t: String = redis::cmd("TYPE").arg(k).query(c).unwrap();
    let q = |name: &str, extra: &[&str], c: &mut Connection| -> Value {
        let mut cmd = redis::cmd(name);
        cmd.arg(k);
        for e in extra {
            cmd.arg(*e);
        }
        cmd.query(c).unwrap()
    };
    let body = match t.as_str() {
        "string" => format!("{:?}", q("GET", &[], c)),
        "list" => format!("{:?}", q("LRANGE", &["0", "-1"], c)),
        "set" => {
            let mut m: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(k).query(c).unwrap();
            m.sort();
            format!("{m:?}")
        }
        "hash" => {
            let m: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(k).query(c).unwrap();
            format!("{m:?}")
        }
        // Scores as numbers: Redis 7.0 prints 17 digits, 7.2+ the shortest.
        "zset" => {
            let m: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(c)
                .unwrap();
            format!("{m:?}")
        }
        other => panic!("unexpected type {other}"),
    };
    let ttl: i64 = redis::cmd("PTTL").arg(k).query(c).unwrap();
    format!("{t} ttl={} {body}", ttl > 0)
}

/// Keys of every type and encoding, in databases 0 and 5, some with TTLs.
fn populate(c: &mut Connection) {
    let mut p = redis::pipe();
    p.cmd("SET").arg("int").arg(12345);
    p.cmd("SET").arg("neg").arg(-7);
    p.cmd("SET").arg("short").arg("hello");
    p.cmd("SET").arg("long").arg("x".repeat(5000));
    p.cmd("SET").arg("bin").arg((0..=255u8).collect::<Vec<_>>());
    p.cmd("SET").arg("ttl").arg("v").arg("EX").arg(1000);
    p.cmd("APPEND").arg("appended").arg("abc");
    p.cmd("RPUSH").arg("list:small").arg(&["a", "1", "b"]);
    p.cmd("RPUSH").arg("list:big").arg(
        (0..3000)
            .map(|i| format!("element-{i}"))
            .collect::<Vec<_>>(),
    );
    p.cmd("SADD").arg("set:int").arg(&[1, 2, 3, 1000000]);
    p.cmd("SADD").arg("set:small").arg(&["a", "b", "c"]);
    p.cmd("SADD")
        .arg("set:big")
        .arg((0..1000).map(|i| format!("m{i}")).collect::<Vec<_>>());
    p.cmd("HSET")
        .arg("hash:small")
        .arg(&["f1", "v1", "f2", "2"]);
    let fields: Vec<String> = (0..600)
        .flat_map(|i| [format!("f{i}"), format!("{i}")])
        .collect();
    p.cmd("HSET").arg("hash:big").arg(fields);
    p.cmd("ZADD")
        .arg("zset:small")
        .arg(&["1.5", "a", "-2", "b"]);
    let members: Vec<String> = (0..500)
        .flat_map(|i| [format!("{}", i as f64 / 3.0), format!("m{i}")])
        .collect();
    p.cmd("ZADD").arg("zset:big").arg(members);
    p.cmd("PFADD").arg("hll").arg(&["a", "b", "c"]);
    p.cmd("EXPIRE").arg("hash:small").arg(5000);
    p.cmd("SELECT").arg(5);
    p.cmd("SET").arg("in5").arg("five");
    p.cmd("RPUSH").arg("list5").arg(&["x", "y"]);
    p.cmd("SELECT").arg(0);
    p.query::<()>(c).unwrap();
}

fn wait_bgsave_done(c: &mut Connection, saves_before: u64) {
    assert!(
        wait_until(Duration::from_secs(60), || {
            persistence_field(c, "rdb_bgsave_in_progress") == "0"
                && persistence_field(c, "rdb_saves").parse::<u64>().unwrap() > saves_before
        }),
        "BGSAVE did not finish"
    );
}

#[test]
fn save_then_kill9_restores_every_type() {
    let mut g = ServerProc::granary(&[]);
    let mut c = g.conn();
    populate(&mut c);
    let before = contents(&mut c);
    assert_eq!(before.len(), 19);
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    // Written after the save: must not survive the crash.
    let _: () = redis::cmd("SET").arg("late").arg(1).query(&mut c).unwrap();
    g.kill9_and_restart();
    let mut c = g.conn();
    assert_same(&contents(&mut c), &before, "after a restart");
    assert_eq!(persistence_field(&mut c, "rdb_last_load_keys_loaded"), "19");
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("hash:big")
        .query(&mut c)
        .unwrap();
    assert_eq!(enc, "hashtable");
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("set:int")
        .query(&mut c)
        .unwrap();
    assert_eq!(enc, "intset");
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut c).unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
}

#[test]
fn files_move_between_granary_and_redis_both_ways() {
    // Granary writes, Redis 7.0 reads.
    let g = ServerProc::granary(&[]);
    let mut gc = g.conn();
    populate(&mut gc);
    let expected = contents(&mut gc);
    let _: () = redis::cmd("SAVE").query(&mut gc).unwrap();
    let r = ServerProc::start_in(Kind::Redis, &g.dir, &[]);
    assert_same(
        &contents(&mut r.conn()),
        &expected,
        "redis-server loading Granary's file",
    );
    drop(r);

    // Redis writes, Granary reads.
    let r = ServerProc::redis(&[]);
    let mut rc = r.conn();
    populate(&mut rc);
    let expected = contents(&mut rc);
    let _: () = redis::cmd("SAVE").query(&mut rc).unwrap();
    let g2 = ServerProc::start_in(Kind::Granary, &r.dir, &[]);
    assert_same(
        &contents(&mut g2.conn()),
        &expected,
        "Granary loading redis-server's file",
    );
}

/// A writer sets k:0, k:1, ... in order while BGSAVE runs. Whatever instant
/// the snapshot is of, it holds the new value for a prefix of the keys and
/// the old one for the rest; a save that read each key at a different time
/// would hold a scattered set.
#[test]
fn bgsave_is_point_in_time_under_writes() {
    const N: usize = 200_000;
    let mut g = ServerProc::granary(&[]);
    let mut overlapped = false;
    for attempt in 0..5 {
        let mut c = g.conn();
        let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
        for chunk in (0..N).collect::<Vec<_>>().chunks(5000) {
            let mut p = redis::pipe();
            for i in chunk {
                p.cmd("SET").arg(format!("k:{i}")).arg("old").ignore();
            }
            p.query::<()>(&mut c).unwrap();
        }
        let saves: u64 = persistence_field(&mut c, "rdb_saves").parse().unwrap();
        let addr = g.addr();
        let writer = std::thread::spawn(move || {
            let mut w = redis::Client::open(format!("redis://{addr}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
                let mut p = redis::pipe();
                for i in chunk {
                    p.cmd("SET").arg(format!("k:{i}")).arg("new").ignore();
                }
                p.query::<()>(&mut w).unwrap();
            }
        });
        // Let the writer get going, then snapshot.
        assert!(wait_until(Duration::from_secs(30), || {
            let v: Option<String> = redis::cmd("GET")
                .arg(format!("k:{}", N / 20))
                .query(&mut c)
                .unwrap();
            v.as_deref() == Some("new")
        }));
        let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        wait_bgsave_done(&mut c, saves);
        writer.join().unwrap();
        let cow: u64 = persistence_field(&mut c, "rdb_last_cow_size")
            .parse()
            .unwrap();
        g.kill9_and_restart();
        let mut c = g.conn();
        let mut first_old = None;
        for chunk in (0..N).collect::<Vec<_>>().chunks(5000) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("k:{i}")).collect();
            let vals: Vec<String> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
            for (i, v) in chunk.iter().zip(vals) {
                match (v.as_str(), first_old) {
                    ("old", None) => first_old = Some(*i),
                    ("new", Some(f)) => panic!("k:{i} is new but k:{f}, written before it, is old"),
                    ("old" | "new", _) => {}
                    (other, _) => panic!("k:{i} = {other}"),
                }
            }
        }
        // The save and the writer overlapped if writes had to preserve
        // values and the snapshot is of a moment mid-way.
        if cow > 0 && first_old.is_some_and(|f| f > 0) {
            overlapped = true;
            eprintln!(
                "attempt {attempt}: snapshot at k:{first_old:?}, {cow} bytes preserved by writers"
            );
            break;
        }
    }
    assert!(
        overlapped,
        "BGSAVE never overlapped the writer; the test proved nothing"
    );
}

#[test]
fn save_points_start_a_background_save() {
    let g = ServerProc::granary(&[]);
    let mut c = g.conn();
    let before: u64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("save")
        .arg("1 1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        persistence_field(&mut c, "rdb_saves") != "0"
    }));
    assert_eq!(
        persistence_field(&mut c, "rdb_changes_since_last_save"),
        "0"
    );
    let after: u64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(after >= before);
    assert!(g.dir.join("dump.rdb").is_file());
}

#[test]
fn a_failed_save_refuses_writes_until_a_save_succeeds() {
    let g = ServerProc::granary(&["--save", "3600 1", "--enable-protected-configs", "yes"]);
    let mut c = g.conn();
    let sub = g.dir.join("data");
    std::fs::create_dir(&sub).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg(sub.to_str().unwrap())
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    std::fs::remove_dir(&sub).unwrap();
    let e = redis::cmd("SAVE").query::<()>(&mut c).unwrap_err();
    assert_eq!(e.code(), Some("ERR"));
    assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "err");
    let e = redis::cmd("SET")
        .arg("b")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(e.code(), Some("MISCONF"), "{e}");
    let e = redis::cmd("PING").query::<String>(&mut c).unwrap_err();
    assert_eq!(e.code(), Some("MISCONF"));
    // Reads still work.
    let v: String = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    assert_eq!(v, "1");
    std::fs::create_dir(&sub).unwrap();
    let saves: u64 = persistence_field(&mut c, "rdb_saves").parse().unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    wait_bgsave_done(&mut c, saves);
    assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "ok");
    let _: () = redis::cmd("SET").arg("b").arg("1").query(&mut c).unwrap();
}

#[test]
fn shutdown_and_sigterm_save_and_nosave_does_not() {
    let dir = fresh_dir();
    let args = ["--save", "3600 1"];
    // SHUTDOWN saves when save points are configured.
    let mut g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let _: () = redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query(&mut g.conn())
        .unwrap();
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut g.conn());
    assert!(g.wait_exit(Duration::from_secs(30)));
    // SHUTDOWN NOSAVE does not.
    let mut g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let mut c = g.conn();
    let v: Option<String> = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    let _: () = redis::cmd("SET").arg("b").arg("1").query(&mut c).unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    assert!(g.wait_exit(Duration::from_secs(30)));
    // SIGTERM saves.
    let mut g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let mut c = g.conn();
    let v: Option<String> = redis::cmd("GET").arg("b").query(&mut c).unwrap();
    assert_eq!(v, None);
    let _: () = redis::cmd("SET").arg("c").arg("1").query(&mut c).unwrap();
    let ok = Command::new("kill")
        .args(["-TERM", &g.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(g.wait_exit(Duration::from_secs(30)));
    let g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let v: Option<String> = redis::cmd("GET").arg("c").query(&mut g.conn()).unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    drop(g);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn debug_reload_keeps_the_data_and_nosave_reverts_to_the_file() {
    let g = ServerProc::granary(&[]);
    let mut c = g.conn();
    populate(&mut c);
    let before = contents(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(contents(&mut c), before);
    let _: () = redis::cmd("SET")
        .arg("extra")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOSAVE")
        .query(&mut c)
        .unwrap();
    assert_eq!(contents(&mut c), before);
}

/// Starts Granary in `dir` expecting it to refuse to start; returns its log.
fn refused_start(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_granary"))
        .args([
            "--port",
            &common::free_port().to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with a bad dump.rdb");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn corrupt_or_truncated_files_are_refused_with_a_clear_message() {
    let g = ServerProc::granary(&[]);
    let mut c = g.conn();
    populate(&mut c);
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let good = std::fs::read(g.dir.join("dump.rdb")).unwrap();
    drop(c);

    let dir = fresh_dir();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(dir.join("dump.rdb"), &flipped).unwrap();
    let log = refused_start(&dir);
    assert!(log.contains("dump.rdb"), "{log}");

    std::fs::write(dir.join("dump.rdb"), &good[..good.len() - 100]).unwrap();
    let log = refused_start(&dir);
    assert!(log.contains("dump.rdb"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
