//! The generic keyspace and expiry commands over TCP, against the `granary`
//! binary: replies and error texts as Redis 7.4 gives them, SCAN's
//! guarantee under concurrent resizing, lazy and active expiry, and
//! FLUSHALL ASYNC.

mod common;

use common::ServerProc;
use redis::{Connection, FromRedisValue, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs a command that must succeed.
fn q<T: FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    cmd(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn int(con: &mut Connection, args: &[&str]) -> i64 {
    q(con, args)
}

/// Runs a command that must fail; returns the error line as sent.
fn err(con: &mut Connection, args: &[&str]) -> String {
    match cmd(args).query::<Value>(con) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => format!(
            "{} {}",
            e.code().unwrap_or("?"),
            e.detail().unwrap_or_default()
        ),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

#[test]
fn del_unlink_exists_touch_type() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(
        int(&mut c, &["EXISTS", "a", "a", "b", "nope"]),
        3,
        "duplicates count"
    );
    assert_eq!(int(&mut c, &["TOUCH", "a", "a", "nope"]), 2);
    assert_eq!(q::<String>(&mut c, &["TYPE", "a"]), "string");
    assert_eq!(q::<String>(&mut c, &["TYPE", "nope"]), "none");
    assert_eq!(int(&mut c, &["DEL", "a", "a", "nope"]), 1);
    assert_eq!(int(&mut c, &["UNLINK", "b", "c", "nope"]), 2);
    assert_eq!(int(&mut c, &["EXISTS", "a", "b", "c"]), 0);
    // A big value is freed in the background; the key is gone at once.
    let big = "x".repeat(1 << 20);
    let _: () = q(&mut c, &["SET", "big", &big]);
    assert_eq!(int(&mut c, &["UNLINK", "big"]), 1);
    assert_eq!(int(&mut c, &["EXISTS", "big"]), 0);
    for name in ["del", "unlink", "exists", "touch"] {
        assert_eq!(err(&mut c, &[name]), arity(name));
    }
    assert_eq!(err(&mut c, &["TYPE"]), arity("type"));
    assert_eq!(err(&mut c, &["TYPE", "a", "b"]), arity("type"));
}

#[test]
fn rename_copy_move() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "va", "EX", "100"]);
    assert_eq!(err(&mut c, &["RENAME", "nope", "x"]), "ERR no such key");
    assert_eq!(err(&mut c, &["RENAME", "nope", "nope"]), "ERR no such key");
    assert_eq!(err(&mut c, &["RENAMENX", "nope", "x"]), "ERR no such key");
    assert_eq!(q::<Value>(&mut c, &["RENAME", "a", "a"]), Value::Okay);
    assert_eq!(int(&mut c, &["RENAMENX", "a", "a"]), 0);
    assert_eq!(q::<Value>(&mut c, &["RENAME", "a", "b"]), Value::Okay);
    assert_eq!(int(&mut c, &["EXISTS", "a"]), 0);
    assert_eq!(q::<String>(&mut c, &["GET", "b"]), "va");
    let ttl = int(&mut c, &["TTL", "b"]);
    assert!((99..=100).contains(&ttl), "RENAME keeps the TTL: {ttl}");
    // RENAME replaces the destination and its TTL; RENAMENX does not.
    let _: () = q(&mut c, &["SET", "plain", "p"]);
    assert_eq!(int(&mut c, &["RENAMENX", "b", "plain"]), 0);
    assert_eq!(q::<Value>(&mut c, &["RENAME", "plain", "b"]), Value::Okay);
    assert_eq!(int(&mut c, &["TTL", "b"]), -1);
    assert_eq!(int(&mut c, &["RENAMENX", "b", "fresh"]), 1);

    // COPY within a database, with REPLACE, and to another one.
    let _: () = q(&mut c, &["SET", "src", "v1", "PX", "100000"]);
    assert_eq!(int(&mut c, &["COPY", "src", "dst"]), 1);
    assert_eq!(int(&mut c, &["COPY", "src", "dst"]), 0);
    let _: () = q(&mut c, &["SET", "src", "v2"]);
    assert_eq!(int(&mut c, &["COPY", "src", "dst", "REPLACE"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "dst"]), "v2");
    assert_eq!(int(&mut c, &["COPY", "nope", "dst"]), 0);
    assert_eq!(int(&mut c, &["COPY", "dst", "dst", "DB", "3"]), 1);
    assert_eq!(
        err(&mut c, &["COPY", "src", "src"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        err(&mut c, &["COPY", "src", "src", "DB", "0"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        err(&mut c, &["COPY", "src", "x", "DB", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut c, &["COPY", "src", "x", "DB", "-1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut c, &["COPY", "src", "x", "DB", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["COPY", "src", "x", "DB", "99999999999"]),
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );
    assert_eq!(err(&mut c, &["COPY", "src", "x", "DB"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["COPY", "src", "x", "FOO"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut c, &["COPY", "src"]), arity("copy"));
    let _: () = q(&mut c, &["SET", "ttlsrc", "t", "EX", "500"]);
    assert_eq!(int(&mut c, &["COPY", "ttlsrc", "ttlcopy"]), 1);
    assert!(int(&mut c, &["TTL", "ttlcopy"]) > 400, "COPY keeps the TTL");

    // MOVE keeps the TTL and refuses an existing target.
    assert_eq!(int(&mut c, &["MOVE", "ttlsrc", "1"]), 1);
    assert_eq!(int(&mut c, &["EXISTS", "ttlsrc"]), 0);
    assert_eq!(int(&mut c, &["MOVE", "ttlsrc", "1"]), 0);
    assert_eq!(
        err(&mut c, &["MOVE", "src", "0"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        err(&mut c, &["MOVE", "src", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut c, &["MOVE", "src", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = q(&mut c, &["SET", "ttlsrc", "again"]);
    assert_eq!(
        int(&mut c, &["MOVE", "ttlsrc", "1"]),
        0,
        "exists in the target"
    );
    let _: () = q(&mut c, &["SELECT", "1"]);
    assert_eq!(q::<String>(&mut c, &["GET", "ttlsrc"]), "t");
    assert!(int(&mut c, &["TTL", "ttlsrc"]) > 400);
    let _: () = q(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<String>(&mut c, &["GET", "dst"]), "v2");
}

#[test]
fn keys_randomkey_dbsize() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    assert_eq!(q::<Value>(&mut c, &["RANDOMKEY"]), Value::Nil);
    let _: () = q(
        &mut c,
        &["MSET", "k1", "a", "k2", "b", "k3", "c", "other", "d"],
    );
    assert_eq!(sorted(q(&mut c, &["KEYS", "k?"])), ["k1", "k2", "k3"]);
    assert_eq!(sorted(q(&mut c, &["KEYS", "k[12]"])), ["k1", "k2"]);
    assert_eq!(sorted(q(&mut c, &["KEYS", "*"])).len(), 4);
    assert!(q::<Vec<String>>(&mut c, &["KEYS", "zz*"]).is_empty());
    assert_eq!(int(&mut c, &["DBSIZE"]), 4);
    let all: HashSet<String> = ["k1", "k2", "k3", "other"].map(String::from).into();
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let k: String = q(&mut c, &["RANDOMKEY"]);
        assert!(all.contains(&k), "{k}");
        seen.insert(k);
    }
    assert_eq!(seen, all, "every key comes up");
    // Other databases are separate.
    let _: () = q(&mut c, &["SELECT", "5"]);
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
    assert!(q::<Vec<String>>(&mut c, &["KEYS", "*"]).is_empty());
    assert_eq!(err(&mut c, &["KEYS"]), arity("keys"));
    assert_eq!(err(&mut c, &["DBSIZE", "x"]), arity("dbsize"));
    assert_eq!(err(&mut c, &["RANDOMKEY", "x"]), arity("randomkey"));
}

#[test]
fn object_subcommands() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(
        &mut c,
        &["MSET", "n", "100", "bign", "100000", "s", "hello"],
    );
    let _: () = q(&mut c, &["SET", "long", &"x".repeat(100)]);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "n"]), "int");
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "s"]), "embstr");
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "long"]), "raw");
    assert_eq!(
        q::<Value>(&mut c, &["OBJECT", "ENCODING", "nope"]),
        Value::Nil
    );
    assert_eq!(
        int(&mut c, &["OBJECT", "REFCOUNT", "n"]),
        2147483647,
        "shared integer"
    );
    assert_eq!(int(&mut c, &["OBJECT", "REFCOUNT", "bign"]), 1);
    assert_eq!(int(&mut c, &["OBJECT", "REFCOUNT", "s"]), 1);
    assert_eq!(
        q::<Value>(&mut c, &["OBJECT", "REFCOUNT", "nope"]),
        Value::Nil
    );
    let idle = int(&mut c, &["OBJECT", "IDLETIME", "s"]);
    assert!((0..=2).contains(&idle), "{idle}");
    assert_eq!(
        q::<Value>(&mut c, &["OBJECT", "IDLETIME", "nope"]),
        Value::Nil
    );
    assert_eq!(
        err(&mut c, &["OBJECT", "FREQ", "s"]),
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."
    );
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    // A key made under LFU starts at LFU_INIT_VAL (one made before the
    // switch holds an LRU clock, which reads as garbage, as in Redis).
    let _: () = q(&mut c, &["SET", "lfu-key", "v"]);
    assert_eq!(int(&mut c, &["OBJECT", "FREQ", "lfu-key"]), 5);
    assert_eq!(
        err(&mut c, &["OBJECT", "IDLETIME", "s"]),
        "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."
    );
    let help: Vec<String> = q(&mut c, &["OBJECT", "HELP"]);
    assert_eq!(
        help[0],
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    );
    assert_eq!(help.len(), 15);
    assert_eq!(help[help.len() - 1], "    Print this help.");
    assert_eq!(
        err(&mut c, &["OBJECT", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try OBJECT HELP."
    );
    assert_eq!(err(&mut c, &["OBJECT"]), arity("object"));
    assert_eq!(
        err(&mut c, &["OBJECT", "ENCODING"]),
        arity("object|encoding")
    );
    assert_eq!(err(&mut c, &["OBJECT", "HELP", "x"]), arity("object|help"));
}

#[test]
fn object_idletime_counts_seconds_since_access() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "v"]);
    assert!(wait_for(Duration::from_secs(5), || int(
        &mut c,
        &["OBJECT", "IDLETIME", "k"]
    ) >= 2));
    // OBJECT itself does not touch the key; GET does.
    let _: String = q(&mut c, &["GET", "k"]);
    assert_eq!(int(&mut c, &["OBJECT", "IDLETIME", "k"]), 0);
}

#[test]
fn flush_and_swapdb() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["MSET", "a", "1", "b", "2"]);
    let _: () = q(&mut c, &["SELECT", "1"]);
    let _: () = q(&mut c, &["SET", "x", "1"]);
    assert_eq!(q::<Value>(&mut c, &["SWAPDB", "0", "1"]), Value::Okay);
    assert_eq!(int(&mut c, &["DBSIZE"]), 2, "db 1 now holds db 0's keys");
    assert_eq!(q::<Value>(&mut c, &["SWAPDB", "1", "1"]), Value::Okay);
    assert_eq!(q::<Value>(&mut c, &["FLUSHDB"]), Value::Okay);
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
    let _: () = q(&mut c, &["SELECT", "0"]);
    assert_eq!(
        int(&mut c, &["DBSIZE"]),
        1,
        "FLUSHDB leaves other databases"
    );
    assert_eq!(q::<Value>(&mut c, &["FLUSHDB", "ASYNC"]), Value::Okay);
    assert_eq!(q::<Value>(&mut c, &["FLUSHDB", "sync"]), Value::Okay);
    let _: () = q(&mut c, &["SET", "y", "1"]);
    let _: () = q(&mut c, &["SELECT", "9"]);
    let _: () = q(&mut c, &["SET", "z", "1"]);
    assert_eq!(q::<Value>(&mut c, &["FLUSHALL", "SYNC"]), Value::Okay);
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
    let _: () = q(&mut c, &["SELECT", "0"]);
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
    for f in ["FLUSHDB", "FLUSHALL"] {
        assert_eq!(err(&mut c, &[f, "foo"]), "ERR syntax error");
        assert_eq!(err(&mut c, &[f, "async", "sync"]), "ERR syntax error");
    }
    assert_eq!(
        err(&mut c, &["SWAPDB", "0", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut c, &["SWAPDB", "-1", "0"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut c, &["SWAPDB", "x", "0"]),
        "ERR invalid first DB index"
    );
    assert_eq!(
        err(&mut c, &["SWAPDB", "0", "x"]),
        "ERR invalid second DB index"
    );
    assert_eq!(
        err(&mut c, &["SWAPDB", "99999999999", "0"]),
        "ERR invalid first DB index"
    );
    assert_eq!(err(&mut c, &["SWAPDB", "0"]), arity("swapdb"));
}

#[test]
fn flushall_async_of_a_million_keys_returns_quickly() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let mut loaded = 0;
    while loaded < 1_000_000 {
        let mut p = redis::pipe();
        for _ in 0..100 {
            let mut mset = redis::cmd("MSET");
            for _ in 0..1000 {
                mset.arg(format!("key:{loaded}")).arg("v");
                loaded += 1;
            }
            p.add_command(mset).ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    assert_eq!(int(&mut c, &["DBSIZE"]), 1_000_000);
    let start = Instant::now();
    assert_eq!(q::<Value>(&mut c, &["FLUSHALL", "ASYNC"]), Value::Okay);
    let took = start.elapsed();
    // Freeing a million keys inline takes hundreds of ms; handing them to
    // the background thread takes about one.
    assert!(
        took < Duration::from_millis(100),
        "FLUSHALL ASYNC took {took:?}"
    );
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
}

#[test]
fn expire_family_replies_and_errors() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "v"]);
    assert_eq!(int(&mut c, &["TTL", "k"]), -1);
    assert_eq!(int(&mut c, &["PTTL", "k"]), -1);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]), -1);
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]), -1);
    for t in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
        assert_eq!(int(&mut c, &[t, "nope"]), -2);
    }
    assert_eq!(int(&mut c, &["EXPIRE", "nope", "100"]), 0);
    assert_eq!(int(&mut c, &["PERSIST", "k"]), 0);
    assert_eq!(int(&mut c, &["PERSIST", "nope"]), 0);

    // NX / XX / GT / LT.
    assert_eq!(
        int(&mut c, &["EXPIRE", "k", "100", "XX"]),
        0,
        "XX needs a TTL"
    );
    assert_eq!(
        int(&mut c, &["EXPIRE", "k", "100", "GT"]),
        0,
        "no TTL is infinite for GT"
    );
    assert_eq!(int(&mut c, &["EXPIRE", "k", "100", "NX"]), 1);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "200", "NX"]), 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "200", "gt"]), 1);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "300", "LT"]), 0);
    assert_eq!(int(&mut c, &["EXPIRE", "k", "150", "LT", "XX"]), 1);
    assert_eq!(int(&mut c, &["TTL", "k"]), 150);
    let pttl = int(&mut c, &["PTTL", "k"]);
    assert!((149_000..=150_000).contains(&pttl), "{pttl}");
    let at = int(&mut c, &["PEXPIRETIME", "k"]);
    assert!((at - (now_ms() + 150_000)).abs() < 2_000, "{at}");
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]), (at + 500) / 1000);
    assert_eq!(int(&mut c, &["PERSIST", "k"]), 1);
    assert_eq!(int(&mut c, &["TTL", "k"]), -1);
    assert_eq!(
        int(&mut c, &["EXPIRE", "k", "100", "LT"]),
        1,
        "no TTL is infinite for LT"
    );

    // Absolute forms.
    let future = (now_ms() / 1000 + 1000).to_string();
    assert_eq!(int(&mut c, &["EXPIREAT", "k", &future]), 1);
    assert_eq!(
        int(&mut c, &["EXPIRETIME", "k"]),
        future.parse::<i64>().unwrap()
    );
    let future_ms = (now_ms() + 5_000_000).to_string();
    assert_eq!(int(&mut c, &["PEXPIREAT", "k", &future_ms]), 1);
    assert_eq!(
        int(&mut c, &["PEXPIRETIME", "k"]),
        future_ms.parse::<i64>().unwrap()
    );
    // now + i64::MAX overflows; the absolute i64::MAX does not.
    assert_eq!(
        err(&mut c, &["PEXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'pexpire' command"
    );
    assert_eq!(int(&mut c, &["PEXPIREAT", "k", "9223372036854775807"]), 1);
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]), i64::MAX);
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]), 9223372036854776);

    // Past and negative times delete the key and reply 1.
    for args in [
        ["EXPIRE", "k", "-1"],
        ["PEXPIRE", "k", "0"],
        ["EXPIREAT", "k", "1"],
        ["PEXPIREAT", "k", "-5"],
    ] {
        let _: () = q(&mut c, &["SET", "k", "v"]);
        assert_eq!(int(&mut c, &args), 1, "{args:?}");
        assert_eq!(int(&mut c, &["EXISTS", "k"]), 0, "{args:?} deletes");
    }

    // Errors, in Redis's order: options first, then the number.
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let incompatible = "ERR NX and XX, GT or LT options at the same time are not compatible";
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "NX", "XX"]),
        incompatible
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "NX", "GT"]),
        incompatible
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "LT", "NX"]),
        incompatible
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "abc", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "abc", "NX", "XX"]),
        incompatible
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "1.5"]),
        "ERR value is not an integer or out of range"
    );
    for (name, big) in [
        ("expire", "9223372036854776"),
        ("expire", "-9223372036854776"),
        ("expireat", "9223372036854776"),
        ("pexpire", "9223372036854775807"),
    ] {
        assert_eq!(
            err(&mut c, &[name, "k", big]),
            format!("ERR invalid expire time in '{name}' command")
        );
    }
    assert_eq!(int(&mut c, &["EXPIREAT", "k", "9223372036854775"]), 1);
    for name in ["expire", "pexpire", "expireat", "pexpireat"] {
        assert_eq!(err(&mut c, &[name, "k"]), arity(name));
    }
    for name in ["ttl", "pttl", "expiretime", "pexpiretime", "persist"] {
        assert_eq!(err(&mut c, &[name]), arity(name));
        assert_eq!(err(&mut c, &[name, "a", "b"]), arity(name));
    }
}

#[test]
fn expired_keys_vanish_lazily() {
    // With hz 1 the active cycle rarely runs inside the window below, so
    // reads meet keys that are due but still stored.
    let s = ServerProc::granary(&["--hz", "1"]);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..200 {
        p.cmd("SET")
            .arg(format!("t:{i}"))
            .arg("v")
            .arg("PX")
            .arg(40)
            .ignore();
    }
    p.cmd("SET").arg("keep").arg("v").ignore();
    let _: () = p.query(&mut c).unwrap();
    let due = Instant::now() + Duration::from_millis(60);
    assert!(int(&mut c, &["EXISTS", "t:0"]) == 1 || Instant::now() >= due);
    while Instant::now() < due {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every kind of read treats them as gone.
    assert!(q::<Vec<String>>(&mut c, &["KEYS", "t:*"]).is_empty());
    let (cursor, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "COUNT", "1000"]);
    assert_eq!((cursor.as_str(), keys), ("0", vec!["keep".to_string()]));
    for _ in 0..20 {
        assert_eq!(q::<String>(&mut c, &["RANDOMKEY"]), "keep");
    }
    for i in 0..200 {
        let k = format!("t:{i}");
        assert_eq!(q::<Value>(&mut c, &["GET", &k]), Value::Nil);
        assert_eq!(int(&mut c, &["TTL", &k]), -2);
        assert_eq!(int(&mut c, &["EXPIRE", &k, "100"]), 0);
    }
    assert_eq!(int(&mut c, &["DBSIZE"]), 1);
}

#[test]
fn expired_keys_vanish_actively() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    for chunk in 0..10 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("t:{chunk}:{i}"))
                .arg("v")
                .arg("PX")
                .arg(100)
                .ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    // DBSIZE reads no key, so only the active cycle can bring it to 0.
    assert!(int(&mut c, &["DBSIZE"]) > 0);
    assert!(
        wait_for(Duration::from_secs(10), || int(&mut c, &["DBSIZE"]) == 0),
        "active expiry left {} keys",
        int(&mut c, &["DBSIZE"])
    );
}

#[test]
fn scan_options_and_errors() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let (cursor, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0"]);
    assert_eq!((cursor.as_str(), keys.len()), ("0", 0));
    let _: () = q(&mut c, &["MSET", "a1", "1", "a2", "2", "b1", "3"]);
    // A small database comes back whole in one call.
    let (cursor, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0"]);
    assert_eq!(cursor, "0");
    assert_eq!(sorted(keys), ["a1", "a2", "b1"]);
    let (_, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "MATCH", "a*", "COUNT", "100"]);
    assert_eq!(sorted(keys), ["a1", "a2"]);
    let (_, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "TYPE", "STRING"]);
    assert_eq!(keys.len(), 3);
    let (_, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "TYPE", "list"]);
    assert!(keys.is_empty());
    let (_, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "TYPE", "nosuchtype"]);
    assert!(keys.is_empty());
    // A non-canonical but strtoull-valid cursor is accepted.
    let _: (String, Vec<String>) = q(&mut c, &["SCAN", "+0"]);
    for bad in ["abc", "-1", "18446744073709551616", "", "1.5"] {
        assert_eq!(err(&mut c, &["SCAN", bad]), "ERR invalid cursor", "{bad:?}");
    }
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "-1"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(err(&mut c, &["SCAN", "0", "COUNT"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["SCAN", "0", "FOO", "bar"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut c, &["SCAN", "x", "FOO"]), "ERR invalid cursor");
    assert_eq!(err(&mut c, &["SCAN"]), arity("scan"));
}

/// Full SCAN iteration; returns every key seen and the number of calls.
fn scan_all(c: &mut Connection, count: usize) -> (HashSet<String>, usize) {
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let count = count.to_string();
        let (next, keys): (String, Vec<String>) = q(c, &["SCAN", &cursor, "COUNT", &count]);
        calls += 1;
        seen.extend(keys);
        cursor = next;
        if cursor == "0" {
            return (seen, calls);
        }
    }
}

#[test]
fn scan_returns_stable_keys_while_another_client_resizes_tables() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let stable: HashSet<String> = (0..20_000).map(|i| format!("stable:{i}")).collect();
    for chunk in stable.iter().collect::<Vec<_>>().chunks(1000) {
        let mut mset = redis::cmd("MSET");
        for k in chunk {
            mset.arg(k.as_str()).arg("v");
        }
        let _: () = mset.query(&mut c).unwrap();
    }
    // The churner adds and deletes 60k keys at a time, so every shard's
    // table grows and shrinks many times during the scan.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let churner = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let mut w = s.conn();
        std::thread::spawn(move || {
            let keys: Vec<String> = (0..60_000).map(|i| format!("churn:{i}")).collect();
            while !stop.load(Ordering::Relaxed) {
                for chunk in keys.chunks(2000) {
                    let mut mset = redis::cmd("MSET");
                    for k in chunk {
                        mset.arg(k.as_str()).arg("v");
                    }
                    let _: () = mset.query(&mut w).unwrap();
                }
                for chunk in keys.chunks(2000) {
                    let _: i64 = redis::cmd("DEL").arg(chunk).query(&mut w).unwrap();
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Scan until one full iteration overlaps at least two complete
    // grow/shrink rounds of the churner.
    let mut overlapped = false;
    for _ in 0..50 {
        let before = rounds.load(Ordering::Relaxed);
        let (seen, calls) = scan_all(&mut c, 20);
        let missing: Vec<_> = stable.difference(&seen).take(5).collect();
        assert!(
            missing.is_empty(),
            "SCAN missed stable keys, e.g. {missing:?}"
        );
        assert!(calls > 100, "{calls} calls");
        if rounds.load(Ordering::Relaxed) >= before + 2 {
            overlapped = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert!(overlapped, "no scan overlapped two churn rounds");
}

#[test]
fn resp3_null_replies() {
    let s = ServerProc::granary(&[]);
    let mut raw = s.raw();
    let hello = raw.cmd(&[b"HELLO", b"3"]);
    assert!(hello.starts_with(b"%"), "{}", common::show(&hello));
    assert_eq!(raw.cmd(&[b"RANDOMKEY"]), b"_\r\n");
    assert_eq!(raw.cmd(&[b"OBJECT", b"ENCODING", b"nope"]), b"_\r\n");
    assert_eq!(raw.cmd(&[b"TYPE", b"nope"]), b"+none\r\n");
    assert_eq!(raw.cmd(&[b"SCAN", b"0"]), b"*2\r\n$1\r\n0\r\n*0\r\n");
}
