//! Transactions over TCP: MULTI/EXEC/DISCARD/WATCH/UNWATCH replies compared
//! byte for byte with a real redis-server (RESP2 and RESP3), EXEC's
//! atomicity under concurrent clients, and a WATCH-based optimistic counter.

mod common;

use common::{encode, show, split_aggregate, Kind, RawConn, ServerProc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// One step of a scripted scenario.
#[derive(Clone, Copy)]
enum Step {
    /// Connection index and a command line (arguments split on spaces).
    C(usize, &'static str),
    /// Let this many milliseconds of wall-clock time pass (for TTLs).
    Wait(u64),
}

use Step::{Wait, C};

/// Scenarios: a name and the steps; each runs on a flushed server with two
/// connections in db 0.
fn scenarios() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        (
            "basic",
            vec![
                C(0, "MULTI"),
                C(0, "SET a 1"),
                C(0, "INCR a"),
                C(0, "GET a"),
                C(0, "MSET x 1 y 2"),
                C(0, "MGET x y a"),
                C(0, "EXEC"),
                C(0, "GET a"),
            ],
        ),
        ("empty", vec![C(0, "MULTI"), C(0, "EXEC")]),
        (
            "without multi and nested",
            vec![
                C(0, "EXEC"),
                C(0, "DISCARD"),
                C(0, "MULTI"),
                C(0, "MULTI"),
                C(0, "WATCH a"),
                C(0, "SET a 1"),
                C(0, "EXEC"),
                C(0, "GET a"),
            ],
        ),
        (
            "queue errors abort",
            vec![
                C(0, "MULTI"),
                C(0, "SET a 1"),
                C(0, "NOSUCHCMD x y"),
                C(0, "SET b 2"),
                C(0, "EXEC"),
                C(0, "MGET a b"),
                C(0, "MULTI"),
                C(0, "GET"),
                C(0, "SET a 1"),
                C(0, "EXEC"),
                C(0, "MULTI"),
                C(0, "WATCH"),
                C(0, "EXEC"),
                C(0, "MULTI"),
                C(0, "CONFIG NOSUCH"),
                C(0, "EXEC"),
                C(0, "EXISTS a"),
            ],
        ),
        (
            "not allowed in multi",
            vec![
                C(0, "MULTI"),
                C(0, "SET a 1"),
                C(0, "SHUTDOWN"),
                C(0, "EXEC"),
                C(0, "EXISTS a"),
            ],
        ),
        (
            "runtime errors do not roll back",
            vec![
                C(0, "SET s notanumber"),
                C(0, "MULTI"),
                C(0, "SET t 1"),
                C(0, "INCR s"),
                C(0, "INCRBYFLOAT s 1.5"),
                C(0, "SET u 2"),
                C(0, "SETRANGE u -1 x"),
                C(0, "GET u"),
                C(0, "EXEC"),
                C(0, "MGET s t u"),
            ],
        ),
        (
            "discard",
            vec![
                C(0, "MULTI"),
                C(0, "SET d 1"),
                C(0, "DISCARD"),
                C(0, "GET d"),
                C(0, "EXEC"),
                C(0, "WATCH d"),
                C(1, "SET d 2"),
                C(0, "MULTI"),
                C(0, "DISCARD"),
                C(0, "MULTI"),
                C(0, "GET d"),
                C(0, "EXEC"),
            ],
        ),
        (
            "select inside",
            vec![
                C(0, "MULTI"),
                C(0, "SELECT 1"),
                C(0, "SET x in1"),
                C(0, "SELECT 0"),
                C(0, "GET x"),
                C(0, "SELECT 1"),
                C(0, "GET x"),
                C(0, "EXEC"),
                C(0, "GET x"),
                C(0, "SELECT 0"),
            ],
        ),
        (
            "whole keyspace commands inside",
            vec![
                C(0, "SET a 1"),
                C(0, "MULTI"),
                C(0, "DBSIZE"),
                C(0, "KEYS *"),
                C(0, "FLUSHALL"),
                C(0, "DBSIZE"),
                C(0, "SET b 1"),
                C(0, "SWAPDB 0 1"),
                C(0, "DBSIZE"),
                C(0, "SWAPDB 0 1"),
                C(0, "FLUSHDB"),
                C(0, "EXEC"),
                C(0, "DBSIZE"),
            ],
        ),
        (
            "watch modified by another client",
            vec![
                C(0, "SET k v0"),
                C(0, "WATCH k"),
                C(1, "SET k v1"),
                C(0, "MULTI"),
                C(0, "SET k v2"),
                C(0, "EXEC"),
                C(0, "GET k"),
                // The failed EXEC unwatched: the next one runs.
                C(0, "MULTI"),
                C(0, "SET k v3"),
                C(0, "EXEC"),
                C(0, "GET k"),
            ],
        ),
        (
            "watch modified by self",
            vec![
                C(0, "WATCH k"),
                C(0, "SET k mine"),
                C(0, "MULTI"),
                C(0, "GET k"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch untouched",
            vec![
                C(0, "SET k v"),
                C(0, "WATCH k missing"),
                C(1, "SET other 1"),
                C(1, "GET k"),
                C(1, "DEL missing"),
                C(1, "EXPIRE missing 100"),
                C(0, "MULTI"),
                C(0, "GET k"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch deleted and expire set",
            vec![
                C(0, "SET k v"),
                C(0, "SET e v"),
                C(0, "WATCH k"),
                C(1, "DEL k"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                C(0, "WATCH e"),
                C(1, "EXPIRE e 100"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch created key",
            vec![
                C(0, "WATCH newkey"),
                C(1, "SET newkey 1"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch other db is independent",
            vec![
                C(0, "SELECT 1"),
                C(0, "WATCH k"),
                C(1, "SET k 1"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                C(0, "SELECT 0"),
            ],
        ),
        (
            "watch expiry",
            vec![
                C(0, "SET k v PX 100"),
                C(0, "WATCH k"),
                Wait(200),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch already expired key",
            vec![
                C(0, "SET k v PX 10"),
                Wait(50),
                C(0, "WATCH k"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch flushdb",
            vec![
                C(0, "SET k v"),
                C(0, "WATCH k"),
                C(1, "FLUSHDB"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                // A watched key that does not exist survives a flush.
                C(0, "WATCH k"),
                C(1, "SET other 1"),
                C(1, "FLUSHDB"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                C(0, "SET k v"),
                C(0, "WATCH k"),
                C(1, "FLUSHALL"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
            ],
        ),
        (
            "watch swapdb",
            vec![
                // Absent in db 0, present in db 1: the swap fires.
                C(0, "WATCH k"),
                C(1, "SELECT 1"),
                C(1, "SET k in1"),
                C(1, "SWAPDB 0 1"),
                C(0, "MULTI"),
                C(0, "GET k"),
                C(0, "EXEC"),
                // Absent from both: it does not.
                C(0, "WATCH nowhere"),
                C(1, "SWAPDB 0 1"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                // Present in the watched db only.
                C(0, "SET mine 1"),
                C(0, "WATCH mine"),
                C(1, "SWAPDB 1 0"),
                C(0, "MULTI"),
                C(0, "PING"),
                C(0, "EXEC"),
                C(1, "SELECT 0"),
            ],
        ),
        (
            "unwatch",
            vec![
                C(0, "WATCH k"),
                C(1, "SET k 2"),
                C(0, "UNWATCH"),
                C(0, "MULTI"),
                C(0, "GET k"),
                C(0, "UNWATCH"),
                C(0, "EXEC"),
                C(0, "UNWATCH"),
            ],
        ),
        (
            "reset ends multi",
            vec![
                C(0, "WATCH k"),
                C(0, "MULTI"),
                C(0, "SET k 1"),
                C(0, "RESET"),
                C(0, "EXEC"),
                C(0, "GET k"),
            ],
        ),
    ]
}

/// Runs every scenario against a server and returns, per scenario, the
/// replies of all its steps.
fn run_scenarios(server: &ServerProc, resp3: bool) -> Vec<Vec<Vec<u8>>> {
    let mut all = Vec::new();
    for (_, steps) in scenarios() {
        let mut admin = server.raw();
        assert_eq!(admin.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
        let mut conns: Vec<RawConn> = (0..2).map(|_| server.raw()).collect();
        if resp3 {
            for c in &mut conns {
                // HELLO's reply names the server: not compared.
                c.cmd(&[b"HELLO", b"3"]);
            }
        }
        let mut replies = Vec::new();
        for step in steps {
            match step {
                C(i, line) => {
                    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
                    replies.push(conns[i].cmd(&args));
                }
                Wait(ms) => thread::sleep(Duration::from_millis(ms)),
            }
        }
        all.push(replies);
    }
    all
}

#[test]
fn transactions_match_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    for resp3 in [false, true] {
        let got = run_scenarios(&granary, resp3);
        let want = run_scenarios(&redis, resp3);
        for (((name, steps), got), want) in scenarios().iter().zip(&got).zip(&want) {
            let lines = steps.iter().filter_map(|s| match s {
                C(i, line) => Some((i, line)),
                Wait(_) => None,
            });
            for (((conn, line), g), w) in lines.zip(got).zip(want) {
                assert_eq!(
                    show(g),
                    show(w),
                    "scenario {name:?} (resp3={resp3}), conn {conn}: {line}"
                );
            }
        }
    }
}

/// Sends a whole MULTI...EXEC in one write and returns EXEC's reply.
fn transaction(c: &mut RawConn, cmds: &[&[&[u8]]]) -> Vec<u8> {
    let mut bytes = encode(&[b"MULTI"]);
    for cmd in cmds {
        bytes.extend(encode(cmd));
    }
    bytes.extend(encode(&[b"EXEC"]));
    c.send(&bytes);
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    for _ in cmds {
        assert_eq!(c.read_reply().unwrap(), b"+QUEUED\r\n");
    }
    c.read_reply().unwrap()
}

#[test]
fn exec_is_atomic_across_shards() {
    let server = ServerProc::granary(&[]);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut c = server.raw();
        let done = done.clone();
        thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let r = c.cmd(&[b"MGET", b"a", b"b"]);
                let (_, vals) = split_aggregate(&r).expect("MGET array");
                assert_eq!(
                    vals[0],
                    vals[1],
                    "MGET saw a half-applied transaction: {}",
                    show(&r)
                );
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = server.raw();
            thread::spawn(move || {
                for _ in 0..2000 {
                    let r = transaction(&mut c, &[&[b"INCR", b"a"], &[b"INCR", b"b"]]);
                    assert!(r.starts_with(b"*2\r\n:"), "{}", show(&r));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&[b"MGET", b"a", b"b"]),
        b"*2\r\n$4\r\n8000\r\n$4\r\n8000\r\n"
    );
}

/// redis-py's optimistic-locking pattern: WATCH, read, MULTI, write, EXEC,
/// retry when EXEC returns null.
fn optimistic_increment(c: &mut RawConn) -> u32 {
    let mut retries = 0;
    loop {
        assert_eq!(c.cmd(&[b"WATCH", b"counter"]), b"+OK\r\n");
        let r = c.cmd(&[b"GET", b"counter"]);
        let text = String::from_utf8_lossy(&r).into_owned();
        let n: i64 = text
            .split("\r\n")
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let next = (n + 1).to_string();
        let r = transaction(c, &[&[b"SET", b"counter", next.as_bytes()]]);
        if r == b"*1\r\n+OK\r\n" {
            return retries;
        }
        assert_eq!(r, b"*-1\r\n", "EXEC: {}", show(&r));
        retries += 1;
    }
}

#[test]
fn watch_optimistic_counter_loses_no_update() {
    let server = ServerProc::granary(&[]);
    let per_thread = 300;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut c = server.raw();
            thread::spawn(move || {
                (0..per_thread)
                    .map(|_| optimistic_increment(&mut c))
                    .sum::<u32>()
            })
        })
        .collect();
    let retries: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"GET", b"counter"]), b"$4\r\n1200\r\n");
    // Contention must have made some EXEC fail, or the test tested nothing
    // (4 threads on 1200 round trips each practically always collide).
    eprintln!("optimistic counter: {retries} retries");
}

/// INFO total_watched_keys, as a number.
fn watched_keys(c: &mut RawConn) -> i64 {
    let r = c.cmd(&[b"INFO", b"clients"]);
    let text = String::from_utf8_lossy(&r).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("total_watched_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_watched_keys in INFO")
}

#[test]
fn client_state_is_visible_and_dropped_on_disconnect() {
    let server = ServerProc::granary(&[]);
    let mut c = server.raw();
    let mut other = server.raw();
    assert_eq!(c.cmd(&[b"WATCH", b"a", b"b", b"a"]), b"+OK\r\n");
    assert_eq!(watched_keys(&mut other), 2);
    c.cmd(&[b"MULTI"]);
    c.cmd(&[b"SET", b"a", b"1"]);
    c.cmd(&[b"GET", b"a"]);
    let list = other.cmd(&[b"CLIENT", b"LIST"]);
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(
        list.contains("flags=x db=0 sub=0 psub=0 ssub=0 multi=2 watch=2 "),
        "{list}"
    );
    // INFO inside EXEC must not deadlock on the shards EXEC holds.
    c.cmd(&[b"INFO", b"keyspace"]);
    let r = c.cmd(&[b"EXEC"]);
    assert!(r.starts_with(b"*3\r\n+OK\r\n$1\r\n1\r\n$"), "{}", show(&r));
    assert_eq!(watched_keys(&mut other), 0);
    c.cmd(&[b"WATCH", b"a"]);
    assert_eq!(watched_keys(&mut other), 1);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watched_keys(&mut other) != 0 {
        assert!(Instant::now() < deadline, "watch survived its connection");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn oom_rejects_queueing_and_aborts_exec() {
    let server = ServerProc::granary(&["--maxmemory", "1"]);
    let redis = ServerProc::redis(&["--maxmemory", "1"]);
    let script: &[&str] = &[
        "MULTI", "GET a", "SET a 1", "EXEC", "MULTI", "DISCARD", "MULTI", "EXEC",
    ];
    let run = |s: &ServerProc| -> Vec<Vec<u8>> {
        let mut c = s.raw();
        script
            .iter()
            .map(|l| c.cmd(&l.split(' ').map(str::as_bytes).collect::<Vec<_>>()))
            .collect()
    };
    assert_eq!(server.kind, Kind::Granary);
    let got = run(&server);
    let want = run(&redis);
    for ((line, g), w) in script.iter().zip(&got).zip(&want) {
        assert_eq!(show(g), show(w), "{line}");
    }
}
