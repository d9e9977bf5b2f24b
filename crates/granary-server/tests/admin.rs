//! Server administration over TCP: INFO, CONFIG, CLIENT, COMMAND, and
//! replies compared byte for byte with a real redis-server where Redis's
//! answer does not depend on version or state.

mod common;

use common::{show, ServerProc};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn info_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

fn info(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd("INFO");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(con).expect("INFO")
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn err_text<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
}

#[test]
fn info_sections_and_fields() {
    let server = ServerProc::granary(&[]);
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let text = info(&mut con, &[]);
    assert!(text.starts_with("# Server\r\n"), "{text}");
    for section in [
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Errorstats",
        "# Keyspace",
    ] {
        assert!(
            text.contains(&format!("\r\n{section}\r\n")),
            "{section} missing"
        );
    }
    assert!(!text.contains("# Commandstats"), "not a default section");
    let m = info_map(&text);
    assert_eq!(m["redis_version"], "7.4.0");
    assert!(m.contains_key("granary_version"));
    assert_eq!(m["tcp_port"], server.port.to_string());
    assert_eq!(m["process_id"], server_pid(&m));
    assert_eq!(m["role"], "master");
    assert_eq!(m["mem_allocator"], "mimalloc");
    assert_eq!(m["maxmemory_policy"], "noeviction");
    assert!(m["used_memory"].parse::<u64>().unwrap() > 0);
    assert!(m["used_memory_rss"].parse::<u64>().unwrap() > 0);
    assert!(m["connected_clients"].parse::<u64>().unwrap() >= 1);
    assert!(m["total_commands_processed"].parse::<u64>().unwrap() >= 2);
    assert!(m["rdb_changes_since_last_save"].parse::<u64>().unwrap() >= 2);
    assert_eq!(m["db0"], "keys=2,expires=1,avg_ttl=0,subexpiry=0");

    // Several sections, in Redis's order whatever the argument order.
    let two = info(&mut con, &["keyspace", "SERVER"]);
    assert!(two.starts_with("# Server\r\n") && two.contains("\r\n\r\n# Keyspace\r\n"));
    assert!(!two.contains("# Clients"));
    let all = info(&mut con, &["all"]);
    assert!(all.contains("cmdstat_set:calls=2,usec="), "{all}");
    assert_eq!(info(&mut con, &["nosuch"]), "");
    let _ = redis::cmd("NOSUCHCMD").query::<()>(&mut con);
    let errs = info(&mut con, &["errorstats"]);
    assert!(errs.contains("errorstat_ERR:count="), "{errs}");
}

fn server_pid(m: &HashMap<String, String>) -> String {
    // The pid is the server's, which is alive and ours to look at.
    let pid = &m["process_id"];
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    pid.clone()
}

#[test]
fn config_get_set_and_errors() {
    let server = ServerProc::granary(&[]);
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query(&mut con)
        .unwrap();
    let got: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .arg("maxmemory-p*")
        .query(&mut con)
        .unwrap();
    assert_eq!(got["maxmemory"], "10485760");
    assert_eq!(got["maxmemory-policy"], "allkeys-lru");
    // What redis-benchmark asks for.
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut con)
        .unwrap();
    assert_eq!(save, vec!["save".to_string(), String::new()]);
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query(&mut con)
        .unwrap();
    assert_eq!(aof, vec!["appendonly", "no"]);

    // All or nothing: the bad hz leaves maxmemory alone.
    let e = err_text(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("1mb")
            .arg("hz")
            .arg("abc")
            .query::<()>(&mut con),
    );
    assert!(
        e.contains(
            "(possibly related to argument 'hz') - argument couldn't be parsed into an integer"
        ),
        "{e}"
    );
    let mm: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut con)
        .unwrap();
    assert_eq!(mm[1], "10485760");
    let mem = info_map(&info(&mut con, &["memory"]));
    assert_eq!(mem["maxmemory"], "10485760");
    assert_eq!(mem["maxmemory_human"], "10.00M");

    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let stats = info_map(&info(&mut con, &["stats"]));
    assert!(stats["total_commands_processed"].parse::<u64>().unwrap() <= 1);
    let e = err_text(redis::cmd("CONFIG").arg("REWRITE").query::<()>(&mut con));
    assert!(
        e.contains("The server is running without a config file"),
        "{e}"
    );
}

#[test]
fn requirepass_set_at_run_time_takes_effect() {
    let server = ServerProc::granary(&[]);
    let mut admin = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut admin)
        .unwrap();
    // The connection that set it stays authenticated.
    let _: () = redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let mut raw = server.raw();
    assert_eq!(
        show(&raw.cmd(&[b"GET", b"a"])),
        show(b"-NOAUTH Authentication required.\r\n")
    );
    assert_eq!(raw.cmd(&[b"AUTH", b"wrong"])[..11], b"-WRONGPASS "[..]);
    assert_eq!(raw.cmd(&[b"AUTH", b"s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"a"]), b"$1\r\n1\r\n");
}

#[test]
fn client_identity_list_and_kill() {
    let server = ServerProc::granary(&[]);
    let mut a = server.conn();
    let mut b = server.raw();
    assert_eq!(b.cmd(&[b"CLIENT", b"SETNAME", b"worker-b"]), b"+OK\r\n");
    assert_eq!(b.cmd(&[b"CLIENT", b"GETNAME"]), b"$8\r\nworker-b\r\n");
    let b_id: i64 = {
        let r = b.cmd(&[b"CLIENT", b"ID"]);
        String::from_utf8_lossy(&r[1..r.len() - 2]).parse().unwrap()
    };
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut a).unwrap();
    let line = list
        .lines()
        .find(|l| l.contains("name=worker-b"))
        .expect("b listed");
    assert!(
        line.starts_with(&format!("id={b_id} addr=127.0.0.1:")),
        "{line}"
    );
    assert!(line.contains(" cmd=client|id user=default "), "{line}");
    let mine: String = redis::cmd("CLIENT").arg("INFO").query(&mut a).unwrap();
    assert!(mine.contains(" cmd=client|info "), "{mine}");
    let only_b: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(b_id)
        .query(&mut a)
        .unwrap();
    assert_eq!(only_b.lines().count(), 1);

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(b_id)
        .query(&mut a)
        .unwrap();
    assert_eq!(killed, 1);
    let (_, closed) = b.read_to_close(Duration::from_secs(5));
    assert!(closed, "killed connection closes");
    let e = err_text(
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("1.2.3.4:5")
            .query::<()>(&mut a),
    );
    assert!(e.contains("No such client"), "{e}");

    // Killing yourself: the reply arrives, then the connection closes.
    let mut c = server.raw();
    let my_id = id_of(&mut c);
    let out = c.cmd(&[b"CLIENT", b"KILL", b"SKIPME", b"no", b"ID", &my_id]);
    assert_eq!(out, b":1\r\n");
    let (_, closed) = c.read_to_close(Duration::from_secs(5));
    assert!(closed);
}

fn id_of(c: &mut common::RawConn) -> Vec<u8> {
    let r = c.cmd(&[b"CLIENT", b"ID"]);
    r[1..r.len() - 2].to_vec()
}

#[test]
fn client_pause_holds_writes_until_unpause() {
    let server = ServerProc::granary(&[]);
    let mut admin = server.conn();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query(&mut admin)
        .unwrap();
    let mut writer = server.conn();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let t = std::thread::spawn(move || {
        let _: () = redis::cmd("SET")
            .arg("p")
            .arg("1")
            .query(&mut writer)
            .unwrap();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Reads still run while writes wait.
    let mut reader = server.conn();
    let held = !wait_for(Duration::from_millis(300), || {
        done.load(std::sync::atomic::Ordering::SeqCst)
            || redis::cmd("EXISTS")
                .arg("p")
                .query::<i64>(&mut reader)
                .unwrap()
                == 1
    });
    assert!(held, "the write ran during the pause");
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut admin)
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || done
        .load(std::sync::atomic::Ordering::SeqCst)));
    t.join().unwrap();
    let v: String = redis::cmd("GET").arg("p").query(&mut reader).unwrap();
    assert_eq!(v, "1");
}

#[test]
fn command_introspection() {
    let server = ServerProc::granary(&[]);
    let mut con = server.conn();
    let count: usize = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    let all: Vec<redis::Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    assert_eq!(count, all.len());
    let names: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut con).unwrap();
    assert_eq!(names.iter().filter(|n| !n.contains('|')).count(), count);
    assert!(names.contains(&"config|get".to_string()));
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec!["a", "b"]);
    let e = err_text(
        redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg("nosuch")
            .arg("x")
            .query::<()>(&mut con),
    );
    assert!(e.contains("Invalid command specified"), "{e}");
}

/// Replies that must be byte-identical to redis-server's.
#[test]
fn replies_match_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let cases: &[&[&str]] = &[
        &["CONFIG", "SET", "foo", "bar"],
        &["CONFIG", "SET", "maxmemory", "abc"],
        &["CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"],
        &["CONFIG", "SET", "appendonly", "maybe"],
        &["CONFIG", "SET", "hz", "10", "maxmemory"],
        &["CONFIG", "SET", "maxmemory-policy", "foo"],
        &["CONFIG", "SET", "save", "10"],
        &["CONFIG", "SET", "databases", "3"],
        &["CONFIG", "SET", "dir", "/tmp"],
        &["CONFIG", "SET", "timeout", "-1"],
        &["CONFIG", "SET", "maxmemory", "-1"],
        &["CONFIG", "GET"],
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "REWRITE"],
        &["CONFIG", "NOSUCH"],
        &["COMMAND", "INFO", "get", "nosuch"],
        &["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"],
        &["COMMAND", "GETKEYSANDFLAGS", "mset", "a", "1", "b", "2"],
        &["COMMAND", "GETKEYS", "get", "a", "b"],
        &["COMMAND", "GETKEYS", "config", "get", "x"],
        &["COMMAND", "GETKEYS", "ping"],
        &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
        &["COMMAND", "LIST", "FILTERBY", "foo", "x"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "abc"],
        &["CLIENT", "KILL", "USER", "nobody"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "PAUSE", "abc"],
        &["CLIENT", "PAUSE", "-1"],
        &["CLIENT", "PAUSE", "10", "foo"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "LIST", "TYPE", "foo"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "UNPAUSE"],
        &["CLIENT", "NOSUCH"],
        &["SHUTDOWN", "ABORT"],
        &["SHUTDOWN", "foo"],
        &["SLOWLOG", "GET", "-2"],
        &["TIME", "x"],
    ];
    for proto in ["2", "3"] {
        let mut g = granary.raw();
        let mut r = redis.raw();
        g.cmd(&[b"HELLO", proto.as_bytes()]);
        r.cmd(&[b"HELLO", proto.as_bytes()]);
        for case in cases {
            let args: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
            assert_eq!(
                show(&g.cmd(&args)),
                show(&r.cmd(&args)),
                "RESP{proto} {case:?}"
            );
        }
    }
}
