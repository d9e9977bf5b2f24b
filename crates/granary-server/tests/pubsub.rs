//! Pub/sub over TCP: confirmation and message frames compared byte for byte
//! with a real redis-server (RESP2 and RESP3, subscriber plus publisher),
//! subscribed-mode errors, PUBSUB introspection, CLIENT LIST fields,
//! fan-out ordering and the slow-subscriber output-buffer limit.

mod common;

use common::{encode, show, RawConn, ServerProc};
use std::time::{Duration, Instant};

/// One step of a two-connection script: `who` (0 subscriber, 1 publisher)
/// sends `cmd`; then `own` frames are read from it and `other` frames from
/// the other connection.
struct Step {
    who: usize,
    cmd: &'static str,
    own: usize,
    other: usize,
}

const fn step(who: usize, cmd: &'static str, own: usize, other: usize) -> Step {
    Step {
        who,
        cmd,
        own,
        other,
    }
}

/// Runs `script` and returns every frame read, labelled (HELLO's reply,
/// which holds the server's version and client id, is read but not kept).
/// With `sorted`, the frames each step reads from one connection are
/// sorted: Redis delivers pmessages in the order of its pattern hash table.
fn transcript(server: &ServerProc, script: &[Step], sorted: bool) -> Vec<String> {
    let mut conns = [server.raw(), server.raw()];
    let mut log = Vec::new();
    for s in script {
        let args: Vec<&[u8]> = s.cmd.split(' ').map(str::as_bytes).collect();
        conns[s.who].send(&encode(&args));
        for (who, n) in [(s.who, s.own), (1 - s.who, s.other)] {
            let mut group: Vec<String> = (0..n)
                .map(|_| {
                    let r = conns[who].read_reply().expect("frame");
                    format!("{} [{who}] {}", s.cmd, show(&r))
                })
                .collect();
            if sorted {
                group.sort();
            }
            if !s.cmd.starts_with("HELLO") {
                log.extend(group);
            }
        }
    }
    log
}

fn assert_same_as_redis(script: &[Step]) {
    compare_with_redis(script, false)
}

fn compare_with_redis(script: &[Step], sorted: bool) {
    let redis = ServerProc::redis(&[]);
    let granary = ServerProc::granary(&[]);
    let want = transcript(&redis, script, sorted);
    let got = transcript(&granary, script, sorted);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g);
    }
    assert_eq!(want.len(), got.len());
}

#[test]
fn resp2_frames_match_redis() {
    assert_same_as_redis(&[
        step(0, "UNSUBSCRIBE", 1, 0),
        step(0, "PUNSUBSCRIBE", 1, 0),
        step(0, "SUNSUBSCRIBE", 1, 0),
        step(0, "SUBSCRIBE a b a", 3, 0),
        step(0, "GET x", 1, 0),
        step(0, "CLIENT LIST", 1, 0),
        step(0, "PING", 1, 0),
        step(0, "PING hi", 1, 0),
        step(0, "PING a b", 1, 0),
        step(0, "PSUBSCRIBE h* a?", 2, 0),
        step(0, "SSUBSCRIBE s1 s2", 2, 0),
        step(1, "PUBLISH a m1", 1, 1),
        step(1, "PUBLISH ab m1b", 1, 1),
        step(1, "PUBLISH hello m2", 1, 1),
        step(1, "PUBLISH hx m3", 1, 1),
        step(1, "SPUBLISH s1 m4", 1, 1),
        step(1, "SPUBLISH a m5", 1, 0),
        step(1, "PUBLISH nobody x", 1, 0),
        step(0, "PUNSUBSCRIBE a? zz", 2, 0),
        // Unsubscribing from all goes in hash-table order in Redis: leave
        // one channel for it.
        step(0, "UNSUBSCRIBE b", 1, 0),
        step(0, "UNSUBSCRIBE", 1, 0),
        step(0, "PUNSUBSCRIBE", 1, 0),
        step(0, "SUNSUBSCRIBE s2", 1, 0),
        step(0, "SUNSUBSCRIBE", 1, 0),
        step(0, "UNSUBSCRIBE zz", 1, 0),
        step(0, "GET x", 1, 0),
        step(0, "SUBSCRIBE", 1, 0),
        step(1, "PUBLISH a", 1, 0),
        step(0, "SUBSCRIBE q", 1, 0),
        step(0, "MULTI", 1, 0),
        step(0, "EXEC", 1, 0),
        step(0, "RESET", 1, 0),
        step(0, "GET x", 1, 0),
        step(1, "PUBLISH q gone", 1, 0),
        step(0, "MULTI", 1, 0),
        step(0, "SUBSCRIBE r", 1, 0),
        step(0, "EXEC", 1, 0),
        step(1, "PUBLISH r inside", 1, 1),
        step(0, "QUIT", 1, 0),
    ]);
}

#[test]
fn resp3_frames_match_redis() {
    assert_same_as_redis(&[
        step(0, "HELLO 3", 1, 0),
        step(0, "UNSUBSCRIBE", 1, 0),
        step(0, "SUBSCRIBE a", 1, 0),
        step(0, "GET x", 1, 0),
        step(0, "PING", 1, 0),
        step(0, "PSUBSCRIBE *", 1, 0),
        step(0, "SSUBSCRIBE a", 1, 0),
        step(1, "PUBLISH a other", 1, 2),
        step(1, "SPUBLISH a other", 1, 1),
        step(0, "PUBSUB NUMSUB a b", 1, 0),
        step(0, "PUNSUBSCRIBE", 1, 0),
        step(0, "UNSUBSCRIBE", 1, 0),
        step(0, "SUNSUBSCRIBE", 1, 0),
        step(0, "UNSUBSCRIBE", 1, 0),
    ]);
}

#[test]
fn introspection_matches_redis() {
    assert_same_as_redis(&[
        step(0, "SUBSCRIBE news", 1, 0),
        step(0, "PSUBSCRIBE n* x*", 2, 0),
        step(0, "SSUBSCRIBE shard", 1, 0),
        step(1, "PUBSUB NUMSUB news other", 1, 0),
        step(1, "PUBSUB NUMSUB", 1, 0),
        step(1, "PUBSUB NUMPAT", 1, 0),
        step(1, "PUBSUB CHANNELS", 1, 0),
        step(1, "PUBSUB CHANNELS n*", 1, 0),
        step(1, "PUBSUB CHANNELS x*", 1, 0),
        step(1, "PUBSUB SHARDCHANNELS", 1, 0),
        step(1, "PUBSUB SHARDCHANNELS z*", 1, 0),
        step(1, "PUBSUB SHARDNUMSUB shard news", 1, 0),
        step(1, "PUBSUB CHANNELS a b", 1, 0),
        step(1, "PUBSUB NUMPAT x", 1, 0),
        step(1, "PUBSUB nope", 1, 0),
        step(1, "PUBSUB", 1, 0),
        step(1, "PUBLISH news hi", 1, 2),
        step(1, "PUBLISH xenon hi", 1, 1),
        step(1, "PUBLISH [n]ews hi", 1, 0),
        step(0, "RESET", 1, 0),
        step(1, "PUBSUB NUMPAT", 1, 0),
        step(1, "PUBSUB CHANNELS", 1, 0),
        step(1, "PUBSUB SHARDCHANNELS", 1, 0),
    ]);
}

#[test]
fn glob_patterns_match_like_redis() {
    let script = [
        step(0, "PSUBSCRIBE h?llo h[ae]llo h[^e]llo h*o \\*", 5, 0),
        step(1, "PUBLISH hello 1", 1, 3),
        step(1, "PUBLISH hallo 2", 1, 4),
        step(1, "PUBLISH hxllo 3", 1, 3),
        step(1, "PUBLISH ho 4", 1, 1),
        step(1, "PUBLISH * 5", 1, 1),
        step(1, "PUBLISH x 6", 1, 0),
    ];
    compare_with_redis(&script, true);
}

/// A RESP3 subscriber publishing to itself gets the reply first, then the
/// push (Redis 7.2+ and Valkey order; 7.0 sent the push first). Inside
/// EXEC the push follows the whole EXEC reply.
#[test]
fn resp3_self_publish_replies_before_the_push() {
    let server = ServerProc::granary(&[]);
    let mut c = server.raw();
    c.cmd(&[b"HELLO", b"3"]);
    assert_eq!(
        c.cmd(&[b"SUBSCRIBE", b"a"]),
        b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    let push = |m: &[u8]| {
        let mut f = b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n".to_vec();
        f.extend_from_slice(format!("${}\r\n", m.len()).as_bytes());
        f.extend_from_slice(m);
        f.extend_from_slice(b"\r\n");
        f
    };
    assert_eq!(c.cmd(&[b"PUBLISH", b"a", b"x"]), b":1\r\n");
    assert_eq!(c.read_reply().expect("push"), push(b"x"));
    assert_eq!(c.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"PUBLISH", b"a", b"y"]), b"+QUEUED\r\n");
    assert_eq!(c.cmd(&[b"EXEC"]), b"*1\r\n:1\r\n");
    assert_eq!(c.read_reply().expect("push"), push(b"y"));
    // Pipelined: the push comes before the next command's reply.
    let mut batch = encode(&[b"PUBLISH", b"a", b"z"]);
    batch.extend(encode(&[b"PING"]));
    c.send(&batch);
    assert_eq!(c.read_reply().expect("reply"), b":1\r\n");
    assert_eq!(c.read_reply().expect("push"), push(b"z"));
    assert_eq!(c.read_reply().expect("pong"), b"+PONG\r\n");
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

fn int_reply(r: &[u8]) -> i64 {
    let s = std::str::from_utf8(r).expect("utf8");
    assert!(s.starts_with(':'), "{s}");
    s[1..].trim_end().parse().expect("int")
}

fn info_field(con: &mut RawConn, section: &str, field: &str) -> String {
    let r = con.cmd(&[b"INFO", section.as_bytes()]);
    let text = String::from_utf8_lossy(&r).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim_end()
        .to_string()
}

#[test]
fn client_list_and_info_report_subscriptions() {
    let server = ServerProc::granary(&[]);
    let mut sub = server.raw();
    let mut admin = server.raw();
    sub.send(b"*4\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
    for _ in 0..3 {
        sub.read_reply().expect("confirmation");
    }
    sub.cmd(&[b"PSUBSCRIBE", b"p*"]);
    sub.cmd(&[b"SSUBSCRIBE", b"s"]);
    let list = String::from_utf8_lossy(&admin.cmd(&[b"CLIENT", b"LIST"])).into_owned();
    let line = list
        .lines()
        .find(|l| l.contains("cmd=ssubscribe"))
        .expect("subscriber line");
    assert!(line.contains(" flags=P "), "{line}");
    assert!(line.contains(" sub=3 psub=1 ssub=1 "), "{line}");
    assert_eq!(info_field(&mut admin, "stats", "pubsub_channels"), "3");
    assert_eq!(info_field(&mut admin, "stats", "pubsub_patterns"), "1");
    assert_eq!(info_field(&mut admin, "stats", "pubsubshard_channels"), "1");
    assert_eq!(info_field(&mut admin, "clients", "pubsub_clients"), "1");
    // A disconnect drops every subscription.
    drop(sub);
    assert!(wait_for(Duration::from_secs(10), || {
        int_reply(&admin.cmd(&[b"PUBLISH", b"a", b"x"])) == 0
            && info_field(&mut admin, "stats", "pubsub_patterns") == "0"
            && info_field(&mut admin, "stats", "pubsubshard_channels") == "0"
    }));
}

#[test]
fn fan_out_delivers_every_message_in_order() {
    const SUBSCRIBERS: usize = 100;
    const MESSAGES: usize = 200;
    let server = ServerProc::granary(&[]);
    let mut subs: Vec<RawConn> = (0..SUBSCRIBERS).map(|_| server.raw()).collect();
    for s in &mut subs {
        s.cmd(&[b"SUBSCRIBE", b"fan"]);
    }
    let mut publisher = server.raw();
    for i in 0..MESSAGES {
        let msg = format!("m{i}");
        let n = int_reply(&publisher.cmd(&[b"PUBLISH", b"fan", msg.as_bytes()]));
        assert_eq!(n, SUBSCRIBERS as i64);
    }
    for s in &mut subs {
        for i in 0..MESSAGES {
            let want = encode(&[b"message", b"fan", format!("m{i}").as_bytes()]);
            assert_eq!(s.read_reply().expect("message"), want);
        }
    }
}

#[test]
fn slow_subscriber_hits_the_hard_limit_and_is_closed() {
    // Default limits: pubsub 32 MB hard, 8 MB soft for 60 s.
    let server = ServerProc::granary(&[]);
    let mut slow = server.raw();
    slow.cmd(&[b"SUBSCRIBE", b"flood"]);
    let mut publisher = server.raw();
    let payload = vec![b'x'; 1 << 20];
    let mut sent = 0;
    // The subscriber never reads; kernel buffers take a few MB, the rest
    // piles up in its queue until the 32 MB limit closes it.
    while int_reply(&publisher.cmd(&[b"PUBLISH", b"flood", &payload])) == 1 {
        sent += 1;
        assert!(sent < 200, "subscriber never disconnected");
    }
    assert!(sent >= 32, "closed after only {sent} MB");
    let (_, closed) = slow.read_to_close(Duration::from_secs(30));
    assert!(closed, "slow subscriber still connected");
    assert_eq!(
        info_field(
            &mut publisher,
            "stats",
            "client_output_buffer_limit_disconnections"
        ),
        "1"
    );
}

#[test]
fn configured_limit_applies() {
    let server = ServerProc::granary(&[]);
    let mut admin = server.raw();
    let r = admin.cmd(&[
        b"CONFIG",
        b"SET",
        b"client-output-buffer-limit",
        b"pubsub 1048576 0 0",
    ]);
    assert_eq!(r, b"+OK\r\n");
    let mut slow = server.raw();
    slow.cmd(&[b"SUBSCRIBE", b"c"]);
    let payload = vec![b'y'; 256 * 1024];
    let mut sent = 0;
    while int_reply(&admin.cmd(&[b"PUBLISH", b"c", &payload])) == 1 {
        sent += 1;
        assert!(sent < 2000, "subscriber never disconnected");
    }
    let (_, closed) = slow.read_to_close(Duration::from_secs(30));
    assert!(closed);
}

#[test]
fn soft_limit_closes_a_subscriber_that_stays_over_it() {
    let server = ServerProc::granary(&[]);
    let mut admin = server.raw();
    let r = admin.cmd(&[
        b"CONFIG",
        b"SET",
        b"client-output-buffer-limit",
        b"pubsub 0 1048576 1",
    ]);
    assert_eq!(r, b"+OK\r\n");
    let mut slow = server.raw();
    slow.cmd(&[b"SUBSCRIBE", b"c"]);
    let payload = vec![b'z'; 64 * 1024];
    let started = Instant::now();
    // No hard limit: only time over the soft limit closes it, so keep
    // publishing (the limit is checked on delivery) until it is gone.
    while int_reply(&admin.cmd(&[b"PUBLISH", b"c", &payload])) == 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "never closed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before its soft-limit time"
    );
    let (_, closed) = slow.read_to_close(Duration::from_secs(30));
    assert!(closed);
}
