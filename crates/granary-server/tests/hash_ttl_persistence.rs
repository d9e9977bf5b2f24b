//! Hash-field TTLs (HEXPIRE & co.) survive persistence: SAVE and a restart,
//! DEBUG RELOAD, an AOF rewrite's RDB base and kill -9, DUMP/RESTORE
//! between Granary servers. Redis 7.0 loads Granary's files holding them
//! (losing only the TTLs, as documented) and refuses their DUMP payloads
//! with its usual version error.

mod common;

use common::{persistence_field, wait_until, Kind, ServerProc};
use redis::Connection;
use std::collections::BTreeMap;
use std::time::Duration;

const FAR: i64 = 4_000_000_000_000;
/// Far enough ahead that a loaded machine still restarts before it.
const SOON_MS: i64 = 4000;

fn now_ms(c: &mut Connection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query(c).unwrap();
    secs * 1000 + micros / 1000
}

fn hset(c: &mut Connection, key: &str, pairs: &[(String, String)]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (f, v) in pairs {
        cmd.arg(f).arg(v);
    }
    let _: i64 = cmd.query(c).unwrap();
}

fn hpexpireat(c: &mut Connection, key: &str, at: i64, fields: &[&str]) {
    let r: Vec<i64> = redis::cmd("HPEXPIREAT")
        .arg(key)
        .arg(at)
        .arg("FIELDS")
        .arg(fields.len())
        .arg(fields)
        .query(c)
        .unwrap();
    assert!(r.iter().all(|&x| x == 1), "{key}: {r:?}");
}

fn expiretimes(c: &mut Connection, key: &str, fields: &[&str]) -> Vec<i64> {
    redis::cmd("HPEXPIRETIME")
        .arg(key)
        .arg("FIELDS")
        .arg(fields.len())
        .arg(fields)
        .query(c)
        .unwrap()
}

fn pairs(n: usize, value_len: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("f{i}"), format!("{i}:{}", "v".repeat(value_len))))
        .collect()
}

/// What the test writes: `small` (listpackex), `big` (a hashtable with
/// field TTLs), `solo` (one field, due soon), `plain` (no TTLs), a string.
/// Returns the deadline of the soon fields, `soon_ms` from now.
fn populate(c: &mut Connection, soon_ms: i64) -> i64 {
    hset(c, "small", &pairs(5, 3));
    hset(c, "big", &pairs(300, 3));
    hset(c, "solo", &pairs(1, 3));
    hset(c, "plain", &pairs(3, 3));
    let _: () = redis::cmd("SET").arg("str").arg("x").query(c).unwrap();
    hpexpireat(c, "small", FAR, &["f0", "f1"]);
    hpexpireat(c, "small", FAR + 5, &["f2"]);
    for i in (0..300).step_by(7) {
        hpexpireat(c, "big", FAR + i, &[&format!("f{i}")]);
    }
    let soon = now_ms(c) + soon_ms;
    hpexpireat(c, "small", soon, &["f4"]);
    hpexpireat(c, "big", soon, &["f299"]);
    hpexpireat(c, "solo", soon, &["f0"]);
    soon
}

/// Per hash its (field, value, deadline or -1), and DBSIZE.
type State = (BTreeMap<String, Vec<(String, String, i64)>>, i64);

/// Every field's value and deadline (-1: none) of the hashes, and DBSIZE.
fn state(c: &mut Connection) -> State {
    let mut out = BTreeMap::new();
    for key in ["small", "big", "solo", "plain"] {
        let all: Vec<(String, String)> = redis::cmd("HGETALL").arg(key).query(c).unwrap();
        let mut fields = Vec::new();
        for (f, v) in all {
            let t = expiretimes(c, key, &[&f])[0];
            fields.push((f, v, t));
        }
        fields.sort();
        out.insert(key.to_string(), fields);
    }
    let n: i64 = redis::cmd("DBSIZE").query(c).unwrap();
    (out, n)
}

/// Checks the state after a reload against `before`: the same, except
/// that the soon fields may already be gone; then waits for them to
/// expire, `solo` (emptied) by active expiry alone.
fn check_reloaded(c: &mut Connection, before: &State, soon: i64) {
    let (mut got, _) = state(c);
    let mut want = before.0.clone();
    for (key, fields) in want.iter_mut() {
        let have: Vec<&str> = got[key].iter().map(|(f, _, _)| f.as_str()).collect();
        // A soon field may have expired while the server restarted.
        fields.retain(|(f, _, t)| *t != soon || have.contains(&f.as_str()));
    }
    got.retain(|_, f| !f.is_empty());
    want.retain(|_, f| !f.is_empty());
    assert_eq!(got, want);
    assert_eq!(
        expiretimes(c, "small", &["f0", "f2", "f3"]),
        [FAR, FAR + 5, -1]
    );
    assert_eq!(expiretimes(c, "big", &["f7", "f8"]), [FAR + 7, -1]);
    // Active expiry deletes `solo` without any command touching it.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let n: i64 = redis::cmd("DBSIZE").query(c).unwrap();
            n == 4
        }),
        "the soon field of solo never expired"
    );
    assert!(wait_until(Duration::from_secs(30), || {
        let a: i64 = redis::cmd("HEXISTS")
            .arg("small")
            .arg("f4")
            .query(c)
            .unwrap();
        let b: i64 = redis::cmd("HEXISTS")
            .arg("big")
            .arg("f299")
            .query(c)
            .unwrap();
        a == 0 && b == 0
    }));
    let n: i64 = redis::cmd("HLEN").arg("small").query(c).unwrap();
    assert_eq!(n, 4);
}

fn saved_state(c: &mut Connection) -> (State, i64) {
    let soon = populate(c, SOON_MS);
    let before = state(c);
    assert_eq!(before.1, 5);
    assert_eq!(before.0["small"].iter().filter(|x| x.2 != -1).count(), 4);
    (before, soon)
}

#[test]
fn save_and_restart_keep_field_ttls() {
    let mut g = ServerProc::granary(&[]);
    let mut c = g.conn();
    let (before, soon) = saved_state(&mut c);
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    g.kill9_and_restart();
    let mut c = g.conn();
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("small")
        .query(&mut c)
        .unwrap();
    assert_eq!(enc, "listpackex");
    check_reloaded(&mut c, &before, soon);
}

#[test]
fn debug_reload_keeps_field_ttls() {
    let g = ServerProc::granary(&[]);
    let mut c = g.conn();
    let (before, soon) = saved_state(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    check_reloaded(&mut c, &before, soon);
}

#[test]
fn aof_rewrite_base_keeps_field_ttls() {
    let mut g = ServerProc::granary(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = g.conn();
    let ready = |c: &mut Connection| {
        persistence_field(c, "aof_enabled") == "1"
            && persistence_field(c, "aof_rewrite_in_progress") == "0"
            && persistence_field(c, "aof_rewrite_scheduled") == "0"
    };
    assert!(wait_until(Duration::from_secs(30), || ready(&mut c)));
    let (before, soon) = saved_state(&mut c);
    let rewrites: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        let n: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
        n > rewrites && ready(&mut c)
    }));
    // The HPEXPIREATs are folded into the base: the TTLs are in it alone.
    let dir = g.dir.join("appendonlydir");
    let base = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .expect("an RDB base");
    let bytes = std::fs::read(base).unwrap();
    assert!(bytes.windows(17).any(|w| w == b"granary-hash-ttls"));
    g.kill9_and_restart();
    check_reloaded(&mut g.conn(), &before, soon);
}

fn dump(c: &mut Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

#[test]
fn dump_restore_between_granary_servers_keeps_field_ttls() {
    let a = ServerProc::granary(&[]);
    let b = ServerProc::granary(&[]);
    let (mut ca, mut cb) = (a.conn(), b.conn());
    let (before, soon) = saved_state(&mut ca);
    for key in ["small", "big", "solo", "plain", "str"] {
        let p = dump(&mut ca, key);
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(p)
            .query(&mut cb)
            .unwrap();
    }
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("small")
        .query(&mut cb)
        .unwrap();
    assert_eq!(enc, "listpackex");
    check_reloaded(&mut cb, &before, soon);
    // REPLACE ABSTTL sets the key's TTL and keeps the fields'.
    let p = dump(&mut ca, "big");
    let at = FAR / 2;
    let _: () = redis::cmd("RESTORE")
        .arg("big")
        .arg(at)
        .arg(p)
        .arg("REPLACE")
        .arg("ABSTTL")
        .query(&mut cb)
        .unwrap();
    let t: i64 = redis::cmd("PEXPIRETIME").arg("big").query(&mut cb).unwrap();
    assert_eq!(t, at);
    assert_eq!(expiretimes(&mut cb, "big", &["f7", "f8"]), [FAR + 7, -1]);
}

#[test]
fn redis_7_0_loads_granary_files_without_the_field_ttls() {
    let g = ServerProc::granary(&[]);
    let mut gc = g.conn();
    populate(&mut gc, 3_600_000);
    let mut want = BTreeMap::new();
    for key in ["small", "big", "solo", "plain"] {
        let all: BTreeMap<String, String> = redis::cmd("HGETALL").arg(key).query(&mut gc).unwrap();
        want.insert(key.to_string(), all);
    }
    let _: () = redis::cmd("SAVE").query(&mut gc).unwrap();
    let file = std::fs::read(g.dir.join("dump.rdb")).unwrap();
    assert!(file.windows(17).any(|w| w == b"granary-hash-ttls"));
    let r = ServerProc::start_in(Kind::Redis, &g.dir, &[]);
    let mut rc = r.conn();
    // Every key and field is there; the TTLs are lost (Redis 7.0 has none).
    for (key, fields) in &want {
        let all: BTreeMap<String, String> = redis::cmd("HGETALL").arg(key).query(&mut rc).unwrap();
        assert_eq!(&all, fields, "{key}");
    }
    let s: String = redis::cmd("GET").arg("str").query(&mut rc).unwrap();
    assert_eq!(s, "x");
    let n: i64 = redis::cmd("DBSIZE").query(&mut rc).unwrap();
    assert_eq!(n, 5);
}

#[test]
fn redis_7_0_refuses_dumps_of_hashes_with_field_ttls() {
    let g = ServerProc::granary(&[]);
    let r = ServerProc::redis(&[]);
    let (mut gc, mut rc) = (g.conn(), r.conn());
    populate(&mut gc, 3_600_000);
    for key in ["small", "big"] {
        let p = dump(&mut gc, key);
        let e = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(p)
            .query::<()>(&mut rc)
            .unwrap_err();
        assert_eq!(
            e.detail(),
            Some("DUMP payload version or checksum are wrong"),
            "{e}"
        );
    }
    // A hash without field TTLs moves as before.
    let p = dump(&mut gc, "plain");
    assert_eq!(&p[p.len() - 10..p.len() - 8], &[10, 0], "RDB version 10");
    let _: () = redis::cmd("RESTORE")
        .arg("plain")
        .arg(0)
        .arg(&p)
        .query(&mut rc)
        .unwrap();
    let got: BTreeMap<String, String> = redis::cmd("HGETALL").arg("plain").query(&mut rc).unwrap();
    assert_eq!(got, pairs(3, 3).into_iter().collect());
}
