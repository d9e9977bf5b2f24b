//! COMMAND DOCS and COMMAND INFO against redis-server 7.0.15, in RESP2 and
//! RESP3.
//!
//! Granary serves Redis 7.4's docs. Between 7.0 and 7.4 Redis rewrote every
//! summary and added `display_text` to every argument (7.2); everything else
//! of the sampled commands is unchanged, so their docs must equal 7.0's
//! byte for byte once those two fields are removed from both replies.
//! COMMAND INFO must equal 7.0's as is.

mod common;

use common::{RawConn, ServerProc};

/// Commands whose docs agree between 7.0 and 7.4 apart from summaries and
/// display texts (deprecated ones included for their extra fields).
const SAMPLE: &[&str] = &[
    "get",
    "set",
    "append",
    "getset",
    "substr",
    "getex",
    "getrange",
    "incrbyfloat",
    "del",
    "exists",
    "expire",
    "pexpireat",
    "ttl",
    "copy",
    "keys",
    "scan",
    "ping",
    "echo",
    "info",
    "type",
];

/// A parsed reply that keeps the wire type of every value.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Type byte and the line or bulk payload.
    Scalar(u8, Vec<u8>),
    /// Type byte and the elements (maps: keys and values alternating).
    Aggregate(u8, Vec<Node>),
}

fn parse(buf: &[u8], pos: &mut usize) -> Node {
    let end = buf[*pos..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("line end")
        + *pos;
    let kind = buf[*pos];
    let line = buf[*pos + 1..end].to_vec();
    *pos = end + 2;
    let count = || -> usize { String::from_utf8_lossy(&line).parse().expect("count") };
    match kind {
        b'$' | b'=' => {
            let n = count();
            let data = buf[*pos..*pos + n].to_vec();
            *pos += n + 2;
            Node::Scalar(kind, data)
        }
        b'*' | b'~' | b'>' => {
            let items = (0..count()).map(|_| parse(buf, pos)).collect();
            Node::Aggregate(kind, items)
        }
        b'%' => {
            let items = (0..count() * 2).map(|_| parse(buf, pos)).collect();
            Node::Aggregate(kind, items)
        }
        _ => Node::Scalar(kind, line),
    }
}

fn encode(node: &Node, out: &mut Vec<u8>) {
    match node {
        Node::Scalar(k @ (b'$' | b'='), data) => {
            out.push(*k);
            out.extend_from_slice(format!("{}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Node::Scalar(k, line) => {
            out.push(*k);
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        Node::Aggregate(k, items) => {
            let n = if *k == b'%' {
                items.len() / 2
            } else {
                items.len()
            };
            out.push(*k);
            out.extend_from_slice(format!("{n}\r\n").as_bytes());
            for i in items {
                encode(i, out);
            }
        }
    }
}

/// Removes the `summary` and `display_text` pairs from every map (RESP3
/// maps, or RESP2 arrays holding them flattened).
fn strip_7_2_fields(node: &Node) -> Node {
    let Node::Aggregate(kind, items) = node else {
        return node.clone();
    };
    let is_dropped_key =
        |n: &Node| matches!(n, Node::Scalar(b'$', k) if k == b"summary" || k == b"display_text");
    let mut out = vec![];
    let mut i = 0;
    while i < items.len() {
        let pair_start = i % 2 == 0 && i + 1 < items.len() && items.len() % 2 == 0;
        if pair_start && is_dropped_key(&items[i]) {
            i += 2;
            continue;
        }
        out.push(strip_7_2_fields(&items[i]));
        i += 1;
    }
    Node::Aggregate(*kind, out)
}

fn normalized(reply: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    let node = parse(reply, &mut pos);
    assert_eq!(pos, reply.len(), "one reply");
    let mut out = vec![];
    encode(&strip_7_2_fields(&node), &mut out);
    out
}

/// Connections to both servers, in RESP3 when `resp3`.
fn conns(granary: &ServerProc, redis: &ServerProc, resp3: bool) -> (RawConn, RawConn) {
    let (mut g, mut r) = (granary.raw(), redis.raw());
    if resp3 {
        g.cmd(&[b"HELLO", b"3"]);
        r.cmd(&[b"HELLO", b"3"]);
    }
    (g, r)
}

#[test]
fn docs_match_redis_apart_from_7_2_texts() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    for resp3 in [false, true] {
        let (mut g, mut r) = conns(&granary, &redis, resp3);
        for name in SAMPLE {
            let args: &[&[u8]] = &[b"COMMAND", b"DOCS", name.as_bytes()];
            let (ours, theirs) = (g.cmd(args), r.cmd(args));
            assert!(ours.len() > 60, "{name}: {}", common::show(&ours));
            assert_eq!(
                common::show(&normalized(&ours)),
                common::show(&normalized(&theirs)),
                "COMMAND DOCS {name} (resp3: {resp3})"
            );
        }
    }
}

#[test]
fn info_matches_redis_byte_for_byte() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    for resp3 in [false, true] {
        let (mut g, mut r) = conns(&granary, &redis, resp3);
        for name in SAMPLE {
            let args: &[&[u8]] = &[b"COMMAND", b"INFO", name.as_bytes()];
            assert_eq!(
                common::show(&g.cmd(args)),
                common::show(&r.cmd(args)),
                "COMMAND INFO {name} (resp3: {resp3})"
            );
        }
    }
}

#[test]
fn docs_carry_redis_7_4_texts_and_fields() {
    let granary = ServerProc::granary(&[]);
    let mut g = granary.raw();
    g.cmd(&[b"HELLO", b"3"]);
    let get = g.cmd(&[b"COMMAND", b"DOCS", b"get"]);
    let want =
        b"%1\r\n$3\r\nget\r\n%5\r\n$7\r\nsummary\r\n$34\r\nReturns the string value of a key.\r\n\
$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n\
$9\r\narguments\r\n*1\r\n%4\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n\
$12\r\ndisplay_text\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n";
    assert_eq!(common::show(&get), common::show(want));
    // Containers list the subcommands Granary has, each with its docs.
    let client = g.cmd(&[b"COMMAND", b"DOCS", b"client"]);
    let text = String::from_utf8_lossy(&client);
    assert!(text.contains("subcommands"), "{text}");
    assert!(
        text.contains("client|kill") && text.contains("MAXAGE"),
        "{text}"
    );
    // Subcommands are found by their full name; unknown names are skipped.
    let sub = g.cmd(&[b"COMMAND", b"DOCS", b"config|get", b"nosuch"]);
    assert!(sub.starts_with(b"%1\r\n$10\r\nconfig|get\r\n%"), "{sub:?}");
}
