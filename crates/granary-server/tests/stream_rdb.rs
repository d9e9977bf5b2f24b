//! Streams in RDB files and DUMP payloads, against redis-server 7.0.15 in
//! both directions: nodes with deleted entries and both entry shapes,
//! trimmed streams, consumer groups with their PELs, empty streams with
//! groups and XSETID's counters. Also restarts (SHUTDOWN SAVE, DEBUG
//! RELOAD, an AOF rewrite's RDB base) and corrupt payloads.

mod common;

use common::{persistence_field, wait_until, Kind, ServerProc};
use granary_keyspace::types::stream::{Group, NodeLimits, StreamId};
use granary_keyspace::types::Stream;
use granary_keyspace::Value as GValue;
use redis::{Connection, Value};
use std::time::Duration;

const KEYS: [&str; 4] = ["s", "big", "e", "mk"];
/// Makes redis-server validate every node of what it loads or restores.
const SANITIZE: [&str; 2] = ["--sanitize-dump-payload", "yes"];

fn run(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")))
}

/// Builds the same streams on Granary or Redis.
fn build(c: &mut Connection) {
    let mut pipe = redis::pipe();
    for i in 1..=250u32 {
        let id = format!("{i}-1");
        let v = i.to_string();
        let cmd = pipe.cmd("XADD").arg("s").arg(&id);
        if i % 5 == 0 {
            cmd.arg("other").arg(&v);
        } else if i % 7 == 0 {
            cmd.arg("a").arg(&v).arg("b").arg("x").arg("c").arg("y");
        } else {
            cmd.arg("a").arg(&v).arg("b").arg(format!("x{i}"));
        }
        pipe.ignore();
    }
    // Nodes cut by stream-node-max-bytes rather than by entry count.
    let long = "v".repeat(300);
    for i in 1..=60u32 {
        pipe.cmd("XADD")
            .arg("big")
            .arg(format!("{i}-0"))
            .arg("a")
            .arg(&long)
            .arg("n")
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query(c).unwrap();
    run(c, &["XDEL", "s", "3-1", "7-1", "120-1", "200-1"]);
    run(c, &["XTRIM", "s", "MAXLEN", "240"]);
    run(c, &["XDEL", "big", "30-0"]);
    run(c, &["XGROUP", "CREATE", "s", "g1", "0"]);
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "5",
            "STREAMS",
            "s",
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
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    );
    run(c, &["XGROUP", "CREATECONSUMER", "s", "g1", "carol"]);
    run(
        c,
        &["XAUTOCLAIM", "s", "g1", "carol", "0", "0-0", "COUNT", "2"],
    );
    // Acknowledge bob's first entry.
    let Value::Array(p) = run(c, &["XPENDING", "s", "g1", "-", "+", "10", "bob"]) else {
        panic!("XPENDING")
    };
    let Some(Value::Array(first)) = p.first() else {
        panic!("bob has nothing pending")
    };
    let Value::BulkString(id) = &first[0] else {
        panic!("ID")
    };
    run(c, &["XACK", "s", "g1", std::str::from_utf8(id).unwrap()]);
    run(c, &["XGROUP", "CREATE", "s", "g2", "$"]);
    // A group whose read counter is unknown (deletions after its ID).
    run(c, &["XGROUP", "CREATE", "s", "g3", "100-1"]);
    run(c, &["XADD", "s", "301-1", "z", "1"]);
    run(
        c,
        &["XREADGROUP", "GROUP", "g2", "dave", "STREAMS", "s", ">"],
    );
    run(c, &["XGROUP", "CREATE", "big", "g", "0"]);
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "4",
            "STREAMS",
            "big",
            ">",
        ],
    );
    // An empty stream with a group and XSETID's counters.
    run(c, &["XADD", "e", "1-1", "f", "v"]);
    run(c, &["XDEL", "e", "1-1"]);
    run(c, &["XGROUP", "CREATE", "e", "g", "$"]);
    run(
        c,
        &[
            "XSETID",
            "e",
            "5-5",
            "ENTRIESADDED",
            "10",
            "MAXDELETEDID",
            "3-3",
        ],
    );
    run(c, &["XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM"]);
}

/// `v` without what moves with the clock or exists only in Redis 7.2+:
/// idle times become 0, active-time and inactive go (Redis 7.0 has none).
fn normalize(v: Value) -> Value {
    let Value::Array(items) = v else {
        return v;
    };
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while let Some(x) = it.next() {
        match &x {
            Value::BulkString(k) if k == b"active-time" || k == b"inactive" => {
                it.next();
            }
            Value::BulkString(k) if k == b"idle" => {
                it.next();
                out.push(x);
                out.push(Value::Int(0));
            }
            _ => out.push(normalize(x)),
        }
    }
    Value::Array(out)
}

/// Group names from XINFO GROUPS.
fn group_names(groups: &Value) -> Vec<String> {
    let Value::Array(gs) = groups else {
        panic!("XINFO GROUPS: {groups:?}")
    };
    gs.iter()
        .map(|g| match g {
            Value::Array(kv) => match &kv[1] {
                Value::BulkString(n) => String::from_utf8(n.clone()).unwrap(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Everything observable about stream `key`, clock-dependent values
/// normalized.
fn observe(c: &mut Connection, key: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let add = |out: &mut Vec<(String, Value)>, c: &mut Connection, args: &[&str]| {
        let v = normalize(run(c, args));
        out.push((args.join(" "), v.clone()));
        v
    };
    add(&mut out, c, &["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
    add(&mut out, c, &["XINFO", "STREAM", key]);
    add(&mut out, c, &["XRANGE", key, "-", "+"]);
    let groups = add(&mut out, c, &["XINFO", "GROUPS", key]);
    for g in group_names(&groups) {
        add(&mut out, c, &["XINFO", "CONSUMERS", key, &g]);
        add(&mut out, c, &["XPENDING", key, &g]);
        let Value::Array(entries) = run(c, &["XPENDING", key, &g, "-", "+", "1000"]) else {
            panic!("XPENDING")
        };
        // ID, consumer, idle time (moves), delivery count.
        let entries = entries
            .into_iter()
            .map(|e| match e {
                Value::Array(mut f) => {
                    f[2] = Value::Int(0);
                    Value::Array(f)
                }
                other => other,
            })
            .collect();
        out.push((
            format!("XPENDING {key} {g} - + 1000"),
            Value::Array(entries),
        ));
    }
    out
}

fn observe_all(c: &mut Connection) -> Vec<(String, Value)> {
    let all: Vec<_> = KEYS.iter().flat_map(|k| observe(c, k)).collect();
    // s has 3 groups, the others 1: 4 + 3 per group observations each.
    assert_eq!(all.len(), 4 * 4 + 3 * 6, "every stream and group seen");
    let entries = |cmd: &str| match &all.iter().find(|(c, _)| c == cmd).unwrap().1 {
        Value::Array(a) => a.len(),
        other => panic!("{cmd}: {other:?}"),
    };
    assert!(entries("XRANGE s - +") > 200);
    assert_eq!(entries("XPENDING s g1 - + 1000"), 7);
    all
}

fn assert_same(got: &[(String, Value)], want: &[(String, Value)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of observations");
    for ((cmd, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}: {cmd}");
    }
}

#[test]
fn redis_files_load_in_granary() {
    let r = ServerProc::redis(&[]);
    let mut rc = r.conn();
    build(&mut rc);
    let want = observe_all(&mut rc);
    run(&mut rc, &["SAVE"]);
    let g = ServerProc::start_in(Kind::Granary, &r.dir, &[]);
    assert_same(
        &observe_all(&mut g.conn()),
        &want,
        "Granary loading Redis's file",
    );
}

#[test]
fn granary_files_load_in_redis_and_granary() {
    let g = ServerProc::granary(&[]);
    let mut gc = g.conn();
    build(&mut gc);
    let want = observe_all(&mut gc);
    run(&mut gc, &["SAVE"]);
    // Deep sanitization: Redis checks every node's layout as it loads.
    let r = ServerProc::start_in(Kind::Redis, &g.dir, &SANITIZE);
    assert_same(
        &observe_all(&mut r.conn()),
        &want,
        "Redis loading Granary's file",
    );
    drop(r);
    let g2 = ServerProc::start_in(Kind::Granary, &g.dir, &[]);
    assert_same(
        &observe_all(&mut g2.conn()),
        &want,
        "Granary loading its file",
    );
}

/// DUMPs every key from `from` and RESTOREs it into `to`.
fn move_keys(from: &mut Connection, to: &mut Connection) {
    for k in KEYS {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(k).query(from).unwrap();
        let _: () = redis::cmd("RESTORE")
            .arg(k)
            .arg(0)
            .arg(payload)
            .query(to)
            .unwrap();
    }
}

#[test]
fn dump_and_restore_between_granary_and_redis() {
    let r = ServerProc::redis(&[]);
    let mut rc = r.conn();
    build(&mut rc);
    let want = observe_all(&mut rc);
    let g = ServerProc::granary(&[]);
    let mut gc = g.conn();
    move_keys(&mut rc, &mut gc);
    assert_same(&observe_all(&mut gc), &want, "Redis DUMP, Granary RESTORE");
    let r2 = ServerProc::redis(&SANITIZE);
    let mut r2c = r2.conn();
    move_keys(&mut gc, &mut r2c);
    assert_same(&observe_all(&mut r2c), &want, "Granary DUMP, Redis RESTORE");
}

fn history(c: &mut Connection, consumer: &str) -> Value {
    run(
        c,
        &["XREADGROUP", "GROUP", "g1", consumer, "STREAMS", "s", "0"],
    )
}

#[test]
fn consumer_groups_survive_restarts() {
    let dir = common::fresh_dir();
    let args = ["--save", "3600 1", "--enable-debug-command", "yes"];
    let mut g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let mut c = g.conn();
    build(&mut c);
    let pending: Vec<Value> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| history(&mut c, n))
        .collect();
    let Value::Array(_) = &pending[0] else {
        panic!("no history")
    };
    let after_history = observe_all(&mut c);
    run(&mut c, &["DEBUG", "RELOAD"]);
    assert_same(&observe_all(&mut c), &after_history, "after DEBUG RELOAD");
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut c);
    assert!(g.wait_exit(Duration::from_secs(30)));
    let g = ServerProc::start_in(Kind::Granary, &dir, &args);
    let mut c = g.conn();
    assert_same(&observe_all(&mut c), &after_history, "after SHUTDOWN SAVE");
    for (n, p) in ["alice", "bob", "carol"].iter().zip(&pending) {
        assert_eq!(&history(&mut c, n), p, "{n}'s pending entries");
    }
    // The group goes on from where it was: the next new entry for g1.
    let next = run(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "carol",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let Value::Array(streams) = next else {
        panic!("nothing new")
    };
    assert_eq!(streams.len(), 1);
    drop(g);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_aof_rewrite_base_holds_streams() {
    let mut g = ServerProc::granary(&["--appendonly", "yes"]);
    let mut c = g.conn();
    assert!(wait_until(Duration::from_secs(30), || {
        persistence_field(&mut c, "aof_rewrite_in_progress") == "0"
            && persistence_field(&mut c, "aof_rewrite_scheduled") == "0"
    }));
    build(&mut c);
    let want = observe_all(&mut c);
    let rewrites: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
    run(&mut c, &["BGREWRITEAOF"]);
    assert!(wait_until(Duration::from_secs(30), || {
        let done: u64 = persistence_field(&mut c, "aof_rewrites").parse().unwrap();
        done > rewrites && persistence_field(&mut c, "aof_rewrite_in_progress") == "0"
    }));
    assert_eq!(persistence_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    g.kill9_and_restart();
    assert_same(&observe_all(&mut g.conn()), &want, "after the rewrite");
}

/// A DUMP payload of `v` (RDB 10, valid footer).
fn payload_of(v: &GValue) -> Vec<u8> {
    granary_persistence::dump::dump(v, &granary_persistence::Limits::default())
}

/// `body` with a valid RDB 10 footer.
fn with_footer(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = granary_persistence::dump::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn restore_err(c: &mut Connection, payload: &[u8]) -> String {
    let e = redis::cmd("RESTORE")
        .arg("bad")
        .arg(0)
        .arg(payload)
        .query::<()>(c)
        .unwrap_err();
    e.to_string()
}

#[test]
fn corrupt_stream_payloads_are_refused_like_redis() {
    let lim = NodeLimits {
        max_entries: 100,
        max_bytes: 4096,
    };
    let mut s = Stream::new();
    for i in 1..=20 {
        s.append(StreamId::new(i, 0), &[b"f", b"v"], lim);
    }
    let mut g = Group::new(StreamId::new(20, 0), 20);
    g.create_consumer(b"c", 1);
    g.assign(StreamId::new(5, 0), b"c", 2, 1);
    s.groups.insert(b"g"[..].into(), g.clone());
    let good = payload_of(&GValue::Stream(Box::new(s.clone())));
    // A consumer owning an entry the group PEL lacks.
    g.pel.clear();
    s.groups.insert(b"g"[..].into(), g);
    let orphan = payload_of(&GValue::Stream(Box::new(s)));
    let body = &good[..good.len() - 10];
    let mut flipped = good.clone();
    flipped[20] ^= 0x40;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            good[..good.len() - 1].to_vec(),
            "payload version or checksum",
        ),
        (flipped, "payload version or checksum"),
        (with_footer(&body[..body.len() / 2]), "Bad data format"),
        (with_footer(&body[..body.len() - 3]), "Bad data format"),
        (orphan, "Bad data format"),
    ];
    let r = ServerProc::redis(&[]);
    let mut g = ServerProc::granary(&[]);
    let (mut rc, mut gc) = (r.conn(), g.conn());
    for (p, want) in &cases {
        let (got, oracle) = (restore_err(&mut gc, p), restore_err(&mut rc, p));
        assert!(got.contains(want), "Granary: {got}");
        assert_eq!(got, oracle, "same error as Redis");
    }
    // Random damage with a valid footer: an error or a value, never a crash.
    for i in 0..200usize {
        let mut b = body.to_vec();
        let at = 1 + (i * 7919) % (b.len() - 1);
        b[at] ^= 1 << (i % 8);
        let _ = redis::cmd("RESTORE")
            .arg("x")
            .arg(0)
            .arg(with_footer(&b))
            .arg("REPLACE")
            .query::<()>(&mut gc);
    }
    g.assert_alive();
    let _: () = redis::cmd("RESTORE")
        .arg("ok")
        .arg(0)
        .arg(&good)
        .query(&mut gc)
        .unwrap();
    let n: i64 = redis::cmd("XLEN").arg("ok").query(&mut gc).unwrap();
    assert_eq!(n, 20);
}
