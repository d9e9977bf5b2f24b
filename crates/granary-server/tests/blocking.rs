//! Blocked clients seen from outside: CLIENT UNBLOCK, CLIENT LIST's `b`
//! flag, INFO's blocking counters, and SWAPDB/FLUSHALL with clients blocked.
//! Each scenario runs against redis-server and Granary with the same
//! expectations (the lists and sorted sets' own blocking behaviour is tested
//! in list.rs and zset.rs).

mod common;

use common::{encode, RawConn, ServerProc};
use std::time::{Duration, Instant};

/// Polls INFO until it shows `field:value`.
fn wait_info(c: &mut RawConn, field: &str, value: usize) {
    let want = format!("\r\n{field}:{value}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = c.cmd(&[b"INFO", b"clients"]);
        if String::from_utf8_lossy(&info).contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {want:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_blocked(c: &mut RawConn, n: usize) {
    wait_info(c, "blocked_clients", n);
}

fn client_id(c: &mut RawConn) -> Vec<u8> {
    let id = c.cmd(&[b"CLIENT", b"ID"]);
    id[1..id.len() - 2].to_vec()
}

/// Sends a command without reading its reply (it blocks).
fn send(c: &mut RawConn, args: &[&[u8]]) {
    c.send(&encode(args));
}

const UNBLOCKED: &[u8] = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";

/// Every blocking command is woken by CLIENT UNBLOCK, with the timeout
/// reply (default, TIMEOUT) or the UNBLOCKED error (ERROR).
fn unblock_every_command(s: &ServerProc) {
    let mut ctl = s.raw();
    let mut a = s.raw();
    let id = client_id(&mut a);
    let commands: &[&[&[u8]]] = &[
        &[b"BLPOP", b"l1", b"l2", b"0"],
        &[b"BRPOP", b"l1", b"100"],
        &[b"BLMOVE", b"l1", b"d", b"LEFT", b"RIGHT", b"0"],
        &[b"BRPOPLPUSH", b"l1", b"d", b"0"],
        &[b"BLMPOP", b"0", b"2", b"l1", b"l2", b"LEFT"],
        &[b"BZPOPMIN", b"z1", b"0"],
        &[b"BZPOPMAX", b"z1", b"z2", b"0"],
        &[b"BZMPOP", b"0", b"1", b"z1", b"MAX", b"COUNT", b"2"],
    ];
    for cmd in commands {
        for (reason, reply) in [
            (None, &b"*-1\r\n"[..]),
            (Some(&b"timeout"[..]), b"*-1\r\n"),
            (Some(b"ERROR"), UNBLOCKED),
        ] {
            send(&mut a, cmd);
            wait_blocked(&mut ctl, 1);
            let mut unblock: Vec<&[u8]> = vec![b"CLIENT", b"UNBLOCK", &id];
            unblock.extend(reason);
            assert_eq!(ctl.cmd(&unblock), b":1\r\n", "{}", s.kind.name());
            assert_eq!(
                a.read_reply().unwrap(),
                reply,
                "{}: {:?} unblocked with {reason:?}",
                s.kind.name(),
                String::from_utf8_lossy(cmd[0])
            );
            wait_blocked(&mut ctl, 0);
            // Not blocked any more.
            assert_eq!(ctl.cmd(&unblock), b":0\r\n");
        }
    }
    // RESP3's null.
    a.cmd(&[b"HELLO", b"3"]);
    send(&mut a, &[b"BLPOP", b"l1", b"0"]);
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&[b"CLIENT", b"UNBLOCK", &id]);
    assert_eq!(a.read_reply().unwrap(), b"_\r\n");
    a.cmd(&[b"HELLO", b"2"]);

    // An unblocked client leaves the queue: the next waiter is served, and
    // the unblocked one goes on with its pipelined commands.
    let mut b = s.raw();
    a.send(&[encode(&[b"BLPOP", b"q", b"0"]), encode(&[b"PING"])].concat());
    wait_blocked(&mut ctl, 1);
    send(&mut b, &[b"BLPOP", b"q", b"0"]);
    wait_blocked(&mut ctl, 2);
    assert_eq!(ctl.cmd(&[b"CLIENT", b"UNBLOCK", &id, b"ERROR"]), b":1\r\n");
    assert_eq!(a.read_reply().unwrap(), UNBLOCKED);
    assert_eq!(a.read_reply().unwrap(), b"+PONG\r\n");
    ctl.cmd(&[b"RPUSH", b"q", b"v"]);
    assert_eq!(b.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
    assert_eq!(ctl.cmd(&[b"EXISTS", b"q"]), b":0\r\n");

    // Clients that are not blocked, or do not exist.
    assert_eq!(ctl.cmd(&[b"CLIENT", b"UNBLOCK", &id]), b":0\r\n");
    assert_eq!(ctl.cmd(&[b"CLIENT", b"UNBLOCK", b"999999"]), b":0\r\n");
    assert_eq!(
        ctl.cmd(&[b"CLIENT", b"UNBLOCK", b"-1", b"ERROR"]),
        b":0\r\n"
    );
    // Redis checks the reason before the id.
    assert_eq!(
        ctl.cmd(&[b"CLIENT", b"UNBLOCK", b"abc", b"foo"]),
        b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    assert_eq!(
        ctl.cmd(&[b"CLIENT", b"UNBLOCK", b"abc"]),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        ctl.cmd(&[b"CLIENT", b"UNBLOCK", b"1", b"ERROR", b"x"]),
        b"-ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP.\r\n"
    );
}

#[test]
fn client_unblock_wakes_blocked_commands() {
    unblock_every_command(&ServerProc::redis(&[]));
    unblock_every_command(&ServerProc::granary(&[]));
}

/// The field `name=` of a CLIENT LIST / CLIENT INFO line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = format!(" {name}=");
    let start = line.find(&at).map(|i| i + at.len()).expect(name);
    line[start..].split(' ').next().unwrap_or("")
}

/// CLIENT LIST shows a blocked client with flag `b`, its command and a real
/// fd; INFO counts blocked clients and those with a timeout.
fn blocked_client_introspection(s: &ServerProc) {
    let mut ctl = s.raw();
    let mut a = s.raw();
    let id = client_id(&mut a);
    let line = String::from_utf8_lossy(&a.cmd(&[b"CLIENT", b"INFO"])).into_owned();
    let fd: i64 = field(&line, "fd").parse().unwrap();
    assert!(fd > 2, "{}: fd={fd}", s.kind.name());
    send(&mut a, &[b"BLPOP", b"k1", b"k2", b"1000"]);
    wait_blocked(&mut ctl, 1);
    wait_info(&mut ctl, "clients_in_timeout_table", 1);
    let list = ctl.cmd(&[b"CLIENT", b"LIST", b"ID", &id]);
    let list = String::from_utf8_lossy(&list).into_owned();
    assert_eq!(field(&list, "flags"), "b", "{}", s.kind.name());
    assert_eq!(field(&list, "cmd"), "blpop");
    assert_eq!(field(&list, "fd"), fd.to_string());
    ctl.cmd(&[b"RPUSH", b"k2", b"v"]);
    assert_eq!(a.read_reply().unwrap(), b"*2\r\n$2\r\nk2\r\n$1\r\nv\r\n");
    wait_blocked(&mut ctl, 0);
    wait_info(&mut ctl, "clients_in_timeout_table", 0);
    let line = String::from_utf8_lossy(&a.cmd(&[b"CLIENT", b"INFO"])).into_owned();
    assert_eq!(field(&line, "flags"), "N");
}

#[test]
fn blocked_clients_in_client_list_and_info() {
    blocked_client_introspection(&ServerProc::redis(&[]));
    blocked_client_introspection(&ServerProc::granary(&[]));
}

/// Redis 7.2+'s INFO fields (redis-server 7.0 has none; values checked
/// against Valkey 9.1): distinct (db, key) pairs waited on.
#[test]
fn info_counts_blocking_keys() {
    let s = ServerProc::granary(&[]);
    let mut ctl = s.raw();
    let (mut a, mut b, mut c) = (s.raw(), s.raw(), s.raw());
    wait_info(&mut ctl, "total_blocking_keys", 0);
    send(&mut a, &[b"BLPOP", b"k1", b"k2", b"100"]);
    send(&mut b, &[b"BZPOPMIN", b"k1", b"0"]);
    c.cmd(&[b"SELECT", b"3"]);
    send(&mut c, &[b"BLPOP", b"k1", b"0"]);
    wait_blocked(&mut ctl, 3);
    wait_info(&mut ctl, "total_blocking_keys", 3);
    wait_info(&mut ctl, "total_blocking_keys_on_nokey", 0);
    wait_info(&mut ctl, "clients_in_timeout_table", 1);
    ctl.cmd(&[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes"]);
    wait_blocked(&mut ctl, 0);
    wait_info(&mut ctl, "total_blocking_keys", 0);
}

/// SWAPDB serves clients blocked on keys the swapped-in database holds
/// (with their type); FLUSHDB/FLUSHALL leave blocked clients blocked.
fn swap_and_flush(s: &ServerProc) {
    let mut ctl = s.raw();
    let (mut a, mut b, mut c) = (s.raw(), s.raw(), s.raw());
    // db 1 holds the list a waits for in db 0; db 0 the sorted set b waits
    // for in db 1; c waits in db 0 for a key that is a string in db 1.
    ctl.cmd(&[b"SELECT", b"1"]);
    ctl.cmd(&[b"RPUSH", b"l", b"x", b"y"]);
    ctl.cmd(&[b"SET", b"s", b"str"]);
    ctl.cmd(&[b"SELECT", b"0"]);
    ctl.cmd(&[b"ZADD", b"z", b"1", b"m"]);
    send(&mut a, &[b"BLPOP", b"l", b"0"]);
    b.cmd(&[b"SELECT", b"1"]);
    send(&mut b, &[b"BZPOPMIN", b"z", b"0"]);
    send(&mut c, &[b"BLPOP", b"s", b"0"]);
    wait_blocked(&mut ctl, 3);
    assert_eq!(ctl.cmd(&[b"SWAPDB", b"0", b"1"]), b"+OK\r\n");
    assert_eq!(a.read_reply().unwrap(), b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n");
    assert_eq!(
        b.read_reply().unwrap(),
        b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$1\r\n1\r\n",
        "{}",
        s.kind.name()
    );
    wait_blocked(&mut ctl, 1);
    assert_eq!(
        ctl.cmd(&[b"LRANGE", b"l", b"0", b"-1"]),
        b"*1\r\n$1\r\ny\r\n"
    );
    // c is still blocked on the string; flushing leaves it blocked.
    assert_eq!(ctl.cmd(&[b"FLUSHDB"]), b"+OK\r\n");
    assert_eq!(ctl.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
    assert_eq!(ctl.cmd(&[b"SWAPDB", b"0", b"1"]), b"+OK\r\n");
    wait_blocked(&mut ctl, 1);
    ctl.cmd(&[b"RPUSH", b"s", b"v"]);
    assert_eq!(c.read_reply().unwrap(), b"*2\r\n$1\r\ns\r\n$1\r\nv\r\n");
    wait_blocked(&mut ctl, 0);
    assert_eq!(ctl.cmd(&[b"DBSIZE"]), b":0\r\n");
}

#[test]
fn swapdb_serves_blocked_clients_flush_does_not() {
    swap_and_flush(&ServerProc::redis(&[]));
    swap_and_flush(&ServerProc::granary(&[]));
}
