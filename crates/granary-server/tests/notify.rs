//! Keyspace notifications, compared with a real redis-server: a subscriber
//! on `__key*__:*` on each server, the same seeded random command sequence
//! run on both, and the notifications each command produced compared in
//! order, for several `notify-keyspace-events` settings. Plus expiry and
//! eviction events, and the config flag round trip.
//!
//! Reproduce a run with `NOTIFY_SEED=<seed>`.

mod common;

use common::{encode, show, show_cmd, split_aggregate, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

type Args = Vec<Vec<u8>>;

/// A channel the pattern matches but no key event uses: publishing on it
/// after each command marks the end of that command's notifications.
const SENTINEL: &[u8] = b"__keyevent@99__:sentinel";

/// One server: a connection running commands and one subscribed to every
/// keyspace and keyevent channel.
struct Side {
    cmd: RawConn,
    sub: RawConn,
}

impl Side {
    fn new(server: &ServerProc, flags: &str) -> Side {
        let mut cmd = server.raw();
        let set = cmd.cmd(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            flags.as_bytes(),
        ]);
        assert_eq!(set, b"+OK\r\n", "{:?}", server.kind);
        let mut sub = server.raw();
        sub.cmd(&[b"PSUBSCRIBE", b"__key*__:*"]);
        Side { cmd, sub }
    }

    /// Runs one command; returns its reply and the notifications it caused
    /// ("channel message" each).
    fn run(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<String>) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = self.cmd.cmd(&refs);
        self.cmd.cmd(&[b"PUBLISH", SENTINEL, b"end"]);
        let mut events = Vec::new();
        loop {
            let frame = self.sub.read_reply().expect("notification");
            let (_, parts) = split_aggregate(&frame).expect("pmessage");
            let (channel, message) = (&parts[2], &parts[3]);
            if channel[..] == bulk(SENTINEL)[..] {
                return (reply, events);
            }
            events.push(format!("{} {}", text(channel), text(message)));
        }
    }
}

/// The contents of a bulk string frame, as text.
fn text(frame: &[u8]) -> String {
    let start = frame.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = frame.len().saturating_sub(2).max(start);
    String::from_utf8_lossy(&frame[start..end]).into_owned()
}

fn bulk(s: &[u8]) -> Vec<u8> {
    let mut b = format!("${}\r\n", s.len()).into_bytes();
    b.extend_from_slice(s);
    b.extend_from_slice(b"\r\n");
    b
}

const KEYS: &[&str] = &["a", "b", "c"];
const MEMBERS: &[&str] = &["x", "y", "z", "1", "2"];

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn key(&mut self) -> String {
        KEYS.choose(&mut self.rng).unwrap().to_string()
    }
    fn member(&mut self) -> String {
        MEMBERS.choose(&mut self.rng).unwrap().to_string()
    }
    fn members(&mut self) -> Vec<String> {
        let n = self.rng.gen_range(1..=3);
        (0..n).map(|_| self.member()).collect()
    }
    fn int(&mut self) -> String {
        self.rng.gen_range(-2..4).to_string()
    }

    /// A random command line (words; members never contain spaces).
    fn command(&mut self) -> String {
        let (k, k2, m) = (self.key(), self.key(), self.member());
        let ms = self.members().join(" ");
        let (i, j) = (self.int(), self.int());
        let pairs: String = self
            .members()
            .iter()
            .map(|m| format!("{m} {}", self.rng.gen_range(0..5)))
            .collect::<Vec<_>>()
            .join(" ");
        let scored: String = self
            .members()
            .iter()
            .map(|m| format!("{} {m}", self.rng.gen_range(0..5)))
            .collect::<Vec<_>>()
            .join(" ");
        let all = [
            // strings
            format!("SET {k} {m}"),
            format!("SET {k} {m} EX 100"),
            format!("SET {k} {m} NX"),
            format!("SET {k} {m} XX KEEPTTL"),
            format!("SET {k} {m} GET"),
            format!("SETNX {k} {m}"),
            format!("SETEX {k} 100 {m}"),
            format!("GETSET {k} {m}"),
            format!("GETDEL {k}"),
            format!("GETEX {k} EX 100"),
            format!("GETEX {k} PERSIST"),
            format!("MSET {k} {m} {k2} {m}"),
            format!("MSETNX {k} {m} {k2} {m}"),
            format!("APPEND {k} {m}"),
            format!("SETRANGE {k} 2 {m}"),
            format!("INCR {k}"),
            format!("INCRBY {k} {i}"),
            format!("DECR {k}"),
            format!("INCRBYFLOAT {k} 1.5"),
            format!("GET {k}"),
            format!("MGET {k} {k2}"),
            format!("STRLEN {k}"),
            format!("SETBIT {k} 7 1"),
            format!("BITOP OR {k} {k2} {k}"),
            format!("BITFIELD {k} SET u8 0 5"),
            // keys
            format!("DEL {k} {k2}"),
            format!("UNLINK {k}"),
            format!("EXISTS {k}"),
            format!("TYPE {k}"),
            format!("RENAME {k} {k2}"),
            format!("RENAMENX {k} {k2}"),
            format!("COPY {k} {k2}"),
            format!("COPY {k} {k2} REPLACE"),
            format!("MOVE {k} 1"),
            format!("EXPIRE {k} 100"),
            format!("PEXPIRE {k} 100000"),
            format!("PERSIST {k}"),
            format!("TTL {k}"),
            format!("EXPIREAT {k} 1"),
            format!("PEXPIRE {k} -5"),
            format!("GETEX {k} PXAT 1"),
            format!("COPY {k} {k2} DB 1 REPLACE"),
            format!("SELECT {}", self.rng.gen_range(0..2)),
            // lists
            format!("LPUSH {k} {ms}"),
            format!("RPUSH {k} {ms}"),
            format!("LPUSHX {k} {m}"),
            format!("LPOP {k}"),
            format!("RPOP {k} 2"),
            format!("LSET {k} 0 {m}"),
            format!("LINSERT {k} BEFORE {m} new"),
            format!("LREM {k} 1 {m}"),
            format!("LTRIM {k} {i} {j}"),
            format!("LMOVE {k} {k2} LEFT RIGHT"),
            format!("RPOPLPUSH {k} {k2}"),
            format!("LMPOP 2 {k} {k2} LEFT COUNT 2"),
            format!("LRANGE {k} 0 -1"),
            format!("LLEN {k}"),
            format!("BLPOP {k} {k2} 0.01"),
            format!("BLMOVE {k} {k2} RIGHT LEFT 0.01"),
            // hashes
            format!("HSET {k} {pairs}"),
            format!("HSETNX {k} {m} 1"),
            format!("HDEL {k} {ms}"),
            format!("HINCRBY {k} {m} {i}"),
            format!("HINCRBYFLOAT {k} {m} 0.5"),
            format!("HGET {k} {m}"),
            format!("HGETALL {k}"),
            // sets
            format!("SADD {k} {ms}"),
            format!("SREM {k} {ms}"),
            format!("SMOVE {k} {k2} {m}"),
            format!("SINTERSTORE {k} {k2} {k}"),
            format!("SUNIONSTORE {k} {k2} {k}"),
            format!("SDIFFSTORE {k} {k2} {k}"),
            format!("SCARD {k}"),
            // pops every member (sets here hold at most five)
            format!("SPOP {k} 10"),
            format!("SISMEMBER {k} {m}"),
            // sorted sets
            format!("ZADD {k} {scored}"),
            format!("ZADD {k} NX {scored}"),
            format!("ZADD {k} XX CH {scored}"),
            format!("ZADD {k} INCR 1 {m}"),
            format!("ZINCRBY {k} 2 {m}"),
            format!("ZREM {k} {ms}"),
            format!("ZREMRANGEBYRANK {k} 0 0"),
            format!("ZREMRANGEBYSCORE {k} 0 1"),
            format!("ZREMRANGEBYLEX {k} [a [y"),
            format!("ZPOPMIN {k}"),
            format!("ZPOPMAX {k} 2"),
            format!("ZMPOP 2 {k} {k2} MIN"),
            format!("ZUNIONSTORE {k} 2 {k} {k2}"),
            format!("ZINTERSTORE {k} 2 {k} {k2}"),
            format!("ZDIFFSTORE {k} 2 {k} {k2}"),
            format!("ZRANGESTORE {k2} {k} 0 1"),
            format!("ZSCORE {k} {m}"),
            format!("ZRANGE {k} 0 -1"),
            format!("BZPOPMIN {k} 0.01"),
            // hyperloglog, geo
            format!("PFADD {k} {ms}"),
            format!("PFMERGE {k} {k2}"),
            format!("GEOADD {k} 13.361389 38.115556 {m}"),
            format!("GEOSEARCHSTORE {k2} {k} FROMLONLAT 15 37 BYRADIUS 200 km"),
            // more edge cases: same-key moves, conditional expiry, empty
            // results that delete the destination
            format!("RENAME {k} {k}"),
            format!("SMOVE {k} {k} {m}"),
            format!("LMOVE {k} {k} LEFT RIGHT"),
            format!("EXPIRE {k} 100 NX"),
            format!("EXPIRE {k} 50 GT"),
            format!("PEXPIRE {k} 200000 LT"),
            format!("EXPIRE {k} 0"),
            format!("LPOP {k} 0"),
            format!("SPOP {k}"),
            format!("ZADD {k} GT CH {scored}"),
            format!("ZADD {k} LT INCR 1 {m}"),
            format!("ZRANGESTORE {k2} {k} 5 9"),
            format!("SINTERSTORE {k2} {k}"),
            format!("LINSERT {k} AFTER {m} new"),
            format!("LSET {k} -1 {m}"),
            format!("BLMPOP 0.01 2 {k} {k2} RIGHT COUNT 2"),
            format!("BZMPOP 0.01 1 {k} MAX COUNT 2"),
            format!("HDEL {k} x y z 1 2"),
            format!("HSETNX {k} {m} 2"),
            // streams: explicit IDs, so both servers produce the same ones
            format!("XADD {k} {i}-{j} {m} 1"),
            format!("XADD {k} NOMKSTREAM {}-0 {m} 1", self.rng.gen_range(0..9)),
            format!("XADD {k} MAXLEN 1 {}-1 {m} 1", self.rng.gen_range(0..9)),
            format!("XTRIM {k} MAXLEN {}", self.rng.gen_range(0..3)),
            format!("XTRIM {k} MINID 3"),
            format!("XDEL {k} 1-0 2-1 3-0"),
            format!("XSETID {k} 100-0"),
            format!("XGROUP CREATE {k} g 0"),
            format!("XGROUP CREATE {k} g $ MKSTREAM"),
            format!("XGROUP CREATECONSUMER {k} g c{}", self.rng.gen_range(0..2)),
            format!("XGROUP DELCONSUMER {k} g c{}", self.rng.gen_range(0..2)),
            format!("XGROUP SETID {k} g 0"),
            format!("XGROUP DESTROY {k} g"),
            format!(
                "XREADGROUP GROUP g c{} COUNT 2 STREAMS {k} >",
                self.rng.gen_range(0..2)
            ),
            format!("XACK {k} g 1-0 2-1"),
            format!("XCLAIM {k} g c2 0 1-0 2-1 3-1"),
            format!("XAUTOCLAIM {k} g c3 0 0 COUNT 2"),
            format!("XLEN {k}"),
        ];
        all.choose(&mut self.rng).unwrap().clone()
    }
}

fn words(line: &str) -> Args {
    line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

/// Runs `n` random commands on both servers with `flags`; panics at the
/// first command whose notifications differ.
fn compare(flags: &str, seed: u64, n: usize) {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let mut sides = [Side::new(&granary, flags), Side::new(&redis, flags)];
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut history: Vec<String> = Vec::new();
    for step in 0..n {
        let line = if step % 60 == 59 {
            "FLUSHALL".to_string()
        } else {
            gen.command()
        };
        let args = words(&line);
        let (g_reply, g_events) = sides[0].run(&args);
        let (r_reply, r_events) = sides[1].run(&args);
        history.push(line);
        if g_events != r_events
            && consumer_created_up_front(&mut sides[1], &args, &g_events, &r_events)
        {
            continue;
        }
        if g_events != r_events {
            let recent = history[history.len().saturating_sub(15)..].join("\n  ");
            panic!(
                "flags {flags:?} seed {seed} step {step}: {}\n  granary reply {}\n  redis reply   {}\n  granary events {g_events:#?}\n  redis events   {r_events:#?}\nrecent commands:\n  {recent}",
                show_cmd(&args),
                show(&g_reply),
                show(&r_reply),
            );
        }
    }
}

/// Redis 7.2 made XREADGROUP, XCLAIM and XAUTOCLAIM create their consumer
/// up front (Valkey 9.1 agrees, see `group_reads_create_the_consumer_like_
/// valkey`); 7.0 creates it only when it delivers or claims something. So
/// Granary may send one xgroup-createconsumer more than redis-server 7.0:
/// true if that is the only difference and Redis indeed lacks the consumer,
/// which is then created there too so that both go on from the same state.
fn consumer_created_up_front(
    redis: &mut Side,
    args: &[Vec<u8>],
    g_events: &[String],
    r_events: &[String],
) -> bool {
    let name = args[0].to_ascii_uppercase();
    let (key, group, consumer) = match &name[..] {
        b"XREADGROUP" => match args.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS")) {
            Some(i) if i + 3 == args.len() => (&args[i + 1], &args[2], &args[3]),
            _ => return false,
        },
        b"XCLAIM" | b"XAUTOCLAIM" => (&args[1], &args[2], &args[3]),
        _ => return false,
    };
    let key = String::from_utf8_lossy(key).into_owned();
    let space = format!(":{key} xgroup-createconsumer");
    let event = format!(":xgroup-createconsumer {key}");
    let extra: Vec<&String> = g_events
        .iter()
        .filter(|e| e.ends_with(&space) || e.ends_with(&event))
        .collect();
    let rest: Vec<&String> = g_events.iter().filter(|e| !extra.contains(e)).collect();
    if extra.is_empty() || rest != r_events.iter().collect::<Vec<_>>() {
        return false;
    }
    let create = [
        b"XGROUP".to_vec(),
        b"CREATECONSUMER".to_vec(),
        key.into_bytes(),
        group.clone(),
        consumer.clone(),
    ];
    let (reply, events) = redis.run(&create);
    reply == b":1\r\n" && events.iter().collect::<Vec<_>>() == extra
}

fn seed() -> u64 {
    common::seed("NOTIFY_SEED", 0x6e6f_7469_6679)
}

#[test]
fn all_classes_match_redis() {
    compare("AKE", seed(), 400);
}

#[test]
fn new_and_key_miss_classes_match_redis() {
    compare("KEAnm", seed(), 300);
}

#[test]
fn single_classes_match_redis() {
    let s = seed();
    for flags in ["Kl", "E$", "Kg", "Ehzs", "Kn", "Et", "Kx"] {
        compare(flags, s, 150);
    }
}

#[test]
fn config_shows_the_canonical_form() {
    let g = ServerProc::granary(&[]);
    let mut c = g.raw();
    for (given, shown) in [("KEA", "AKE"), ("Kgx", "gxK"), ("KEAnm", "AKEm"), ("", "")] {
        assert_eq!(
            c.cmd(&[
                b"CONFIG",
                b"SET",
                b"notify-keyspace-events",
                given.as_bytes()
            ]),
            b"+OK\r\n"
        );
        let got = c.cmd(&[b"CONFIG", b"GET", b"notify-keyspace-events"]);
        assert_eq!(
            got,
            encode(&[b"notify-keyspace-events", shown.as_bytes()]),
            "{given}"
        );
    }
    let bad = c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"K E"]);
    assert_eq!(
        show(&bad),
        show(b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n")
    );
}

/// Reads notifications until `want` arrives (or fails after a generous
/// timeout); returns everything read.
fn wait_for(sub: &mut RawConn, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let frame = sub.read_reply().expect("notification");
        let (_, parts) = split_aggregate(&frame).expect("pmessage");
        let line = format!("{} {}", text(&parts[2]), text(&parts[3]));
        let done = line == want;
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("no {want:?} within 20 s; saw {seen:#?}");
}

#[test]
fn active_expiry_notifies_expired() {
    let g = ServerProc::granary(&[]);
    let mut side = Side::new(&g, "Ex");
    side.cmd.cmd(&[b"SET", b"k", b"v", b"PX", b"30"]);
    // Nobody reads the key: the cron must expire it.
    wait_for(&mut side.sub, "__keyevent@0__:expired k");
}

#[test]
fn expired_key_read_notifies_expired_then_keymiss() {
    let g = ServerProc::granary(&[]);
    let mut side = Side::new(&g, "Exm");
    side.cmd.cmd(&[b"SET", b"k", b"v", b"PX", b"20"]);
    // Expired lazily by the GET or before it by the cron: either way the
    // "expired" comes first, then the read's miss.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    loop {
        let (reply, mut more) = side.run(&words("GET k"));
        events.append(&mut more);
        if reply == b"$-1\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "key never expired");
    }
    assert_eq!(
        events,
        ["__keyevent@0__:expired k", "__keyevent@0__:keymiss k"]
    );
}

#[test]
fn eviction_notifies_evicted() {
    let g = ServerProc::granary(&[]);
    let mut side = Side::new(&g, "Ee");
    let mut c = g.raw();
    for i in 0..200 {
        let key = format!("key{i}");
        c.cmd(&[b"SET", key.as_bytes(), &[b'x'; 1000]]);
    }
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-random"]);
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"1"]);
    // The next command makes room first.
    c.cmd(&[b"GET", b"key0"]);
    let frame = side.sub.read_reply().expect("evicted");
    let (_, parts) = split_aggregate(&frame).expect("pmessage");
    assert_eq!(parts[2], bulk(b"__keyevent@0__:evicted"));
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"0"]);
}

/// Hash field TTLs (Redis 7.4): the events Valkey (our 7.4-level oracle)
/// sends, including the expiry of the last field deleting the key.
fn hash_field_events(server: &ServerProc) -> Vec<String> {
    let mut side = Side::new(server, "KEA");
    let mut events = Vec::new();
    for line in [
        "HSET h f v g w",
        "HPEXPIRE h 100000 FIELDS 1 f",
        "HEXPIREAT h 1 FIELDS 1 f",
        "HSET h2 a 1",
        "HPERSIST h2 FIELDS 1 a",
        "HPEXPIRE h2 100000 FIELDS 1 a",
        "HPERSIST h2 FIELDS 1 a",
        "HPEXPIRE h 20 FIELDS 1 g",
    ] {
        events.append(&mut side.run(&words(line)).1);
    }
    // The last field of h expires (by the cron, or by this read).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (reply, mut more) = side.run(&words("EXISTS h"));
        events.append(&mut more);
        if reply == b":0\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "field never expired");
    }
    events.retain(|e| e.starts_with("__keyevent"));
    events
}

#[test]
fn hash_field_ttl_events_match_valkey() {
    let expected = [
        "__keyevent@0__:hset h",
        "__keyevent@0__:hexpire h",
        "__keyevent@0__:hexpired h",
        "__keyevent@0__:hset h2",
        "__keyevent@0__:hexpire h2",
        "__keyevent@0__:hpersist h2",
        "__keyevent@0__:hexpire h",
        "__keyevent@0__:hexpired h",
        "__keyevent@0__:del h",
    ];
    assert_eq!(hash_field_events(&ServerProc::granary(&[])), expected);
    if let Some(v) = ServerProc::valkey(&[]) {
        assert_eq!(hash_field_events(&v), expected);
    }
}

/// A push that serves a blocked BLPOP: the pusher's events, then the
/// pop's, as in Redis.
fn served_pop_events(server: &ServerProc) -> Vec<String> {
    let mut side = Side::new(server, "KEA");
    let mut blocked = server.raw();
    blocked.send(&encode(&[b"BLPOP", b"q", b"0"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = side.cmd.cmd(&[b"INFO", b"clients"]);
        if String::from_utf8_lossy(&info).contains("blocked_clients:1\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "BLPOP never blocked");
    }
    side.cmd.cmd(&[b"LPUSH", b"q", b"x"]);
    blocked.read_reply().expect("BLPOP served");
    // Only now mark the end: the pop ran after the push's reply.
    let (_, events) = side.run(&words("PING"));
    events
}

#[test]
fn served_blocked_pop_matches_redis() {
    let granary = served_pop_events(&ServerProc::granary(&[]));
    let redis = served_pop_events(&ServerProc::redis(&[]));
    assert_eq!(granary, redis);
    assert!(
        granary.contains(&"__keyevent@0__:lpop q".to_string()),
        "{granary:?}"
    );
}

fn transaction_events(server: &ServerProc) -> Vec<String> {
    let mut side = Side::new(server, "KEAnm");
    for line in [
        "MULTI",
        "SET a 1",
        "LPUSH l x y",
        "GET nosuch",
        "RENAME a b",
        "LPOP l 2",
        "EXEC",
    ] {
        let refs: Vec<Vec<u8>> = words(line);
        let refs: Vec<&[u8]> = refs.iter().map(Vec::as_slice).collect();
        side.cmd.cmd(&refs);
    }
    side.run(&words("PING")).1
}

#[test]
fn transaction_events_match_redis() {
    let granary = transaction_events(&ServerProc::granary(&[]));
    let redis = transaction_events(&ServerProc::redis(&[]));
    assert_eq!(granary, redis);
    assert!(granary.len() > 10, "{granary:?}");
}

fn restore_events(server: &ServerProc, payload: &[u8]) -> Vec<String> {
    let mut side = Side::new(server, "KEAn");
    let mut events = Vec::new();
    for args in [
        vec![&b"RESTORE"[..], b"k", b"0", payload],
        vec![b"RESTORE", b"k", b"0", payload, b"REPLACE"],
        vec![b"RESTORE", b"k", b"1", payload, b"REPLACE", b"ABSTTL"],
    ] {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        events.append(&mut side.run(&args).1);
    }
    events
}

#[test]
fn restore_events_match_redis() {
    let redis = ServerProc::redis(&[]);
    let mut c = redis.raw();
    c.cmd(&[b"SET", b"src", b"value"]);
    let dump = c.cmd(&[b"DUMP", b"src"]);
    let start = dump.iter().position(|&b| b == b'\n').unwrap() + 1;
    let payload = &dump[start..dump.len() - 2];
    let granary = restore_events(&ServerProc::granary(&[]), payload);
    assert_eq!(granary, restore_events(&redis, payload));
    assert!(
        granary.contains(&"__keyevent@0__:restore k".to_string()),
        "{granary:?}"
    );
}

/// keyspace_hits and keyspace_misses from INFO stats.
fn lookup_stats(c: &mut RawConn) -> (u64, u64) {
    let info = c.cmd(&[b"INFO", b"stats"]);
    let text = String::from_utf8_lossy(&info).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    };
    (field("keyspace_hits"), field("keyspace_misses"))
}

/// For each command: its reply, its keymiss events and how many keyspace
/// hits and misses it counted.
fn lookups(server: &ServerProc) -> Vec<String> {
    let mut side = Side::new(server, "Em");
    let mut stats = server.raw();
    let mut seen = Vec::new();
    for line in [
        "SET s hello",
        "RPUSH l a",
        "XADD x 1-0 f v",
        "PFADD p a b",
        // XREAD looks each key up twice (parsing the IDs, then serving);
        // XREADGROUP fails on the first, missing, key.
        "XREAD STREAMS nokey 0",
        "XREAD STREAMS x 0",
        "XREAD STREAMS x s 0 0",
        "XREADGROUP GROUP g c STREAMS nokey >",
        "XGROUP CREATE x g 0",
        "XREADGROUP GROUP g c STREAMS x >",
        "XCLAIM x g c2 0 1-0",
        "XINFO STREAM x",
        // OBJECT counts a miss without a keymiss event.
        "OBJECT ENCODING nokey",
        "OBJECT ENCODING s",
        // PFDEBUG looks the key up for writing: nothing counted.
        "PFDEBUG GETREG nokey",
        "PFDEBUG ENCODING p",
        // LCS looks both keys up before checking their types.
        "LCS l s",
        "LCS s l",
        // SPOP of the whole set replies through SUNION, a read lookup
        // (an intset, so that the reply's order is fixed).
        "SADD q 1 2",
        "SPOP q 5",
    ] {
        let before = lookup_stats(&mut stats);
        let (reply, events) = side.run(&words(line));
        let after = lookup_stats(&mut stats);
        seen.push(format!(
            "{line} => {} {events:?} hits +{} misses +{}",
            show(&reply),
            after.0 - before.0,
            after.1 - before.1
        ));
    }
    seen
}

/// Regression: lookups found by the notification fuzz (NOTIFY_SEED=
/// 1795305169392397349: XREADGROUP on a missing key sent no keymiss) and
/// the INFO hit/miss counters of the same commands.
#[test]
fn lookups_count_and_notify_like_redis() {
    let granary = lookups(&ServerProc::granary(&[]));
    let redis = lookups(&ServerProc::redis(&[]));
    for (g, r) in granary.iter().zip(&redis) {
        assert_eq!(g, r);
    }
}

/// The stream events of consumer-group reads and claims that deliver
/// nothing, on `server`.
fn group_read_events(server: &ServerProc) -> Vec<String> {
    let mut side = Side::new(server, "KEA");
    let mut events = Vec::new();
    for line in [
        "XADD s 1-0 f v",
        "XGROUP CREATE s g $",
        "XREADGROUP GROUP g c1 STREAMS s >",
        "XREADGROUP GROUP g c1 STREAMS s >",
        "XCLAIM s g c2 0 1-0",
        "XAUTOCLAIM s g c3 0 0",
        "XGROUP CREATECONSUMER s g c3",
        "XGROUP SETID s g 0",
        "XREADGROUP GROUP g c4 STREAMS s >",
        "XCLAIM s g c5 0 1-0",
        "XAUTOCLAIM s g c6 0 0",
    ] {
        let (reply, mut more) = side.run(&words(line));
        events.push(format!("{line} => {}", show(&reply)));
        events.append(&mut more);
    }
    events
}

/// Regression (NOTIFY_SEED=1795247941679792904): since Redis 7.2, group
/// reads and claims create their consumer even when they deliver nothing,
/// with its xgroup-createconsumer event (XCLAIM and XAUTOCLAIM sent none).
#[test]
fn group_reads_create_the_consumer_like_valkey() {
    let Some(valkey) = ServerProc::valkey(&[]) else {
        return;
    };
    let granary = group_read_events(&ServerProc::granary(&[]));
    assert_eq!(granary, group_read_events(&valkey));
    let created = granary
        .iter()
        .filter(|e| e.starts_with("__keyevent@0__:xgroup-createconsumer"))
        .count();
    assert_eq!(created, 6, "{granary:#?}");
}
