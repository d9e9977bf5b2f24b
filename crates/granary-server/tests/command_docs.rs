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
        // Null bulk or array.
        _ if line.first() == Some(&b'-') && kind != b'-' => Node::Scalar(kind, line),
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

/// Commands whose COMMAND INFO changed between Redis 7.0 and 7.4: 7.2
/// dropped `noscript` from the blocking list commands and gave ZRANK and
/// ZREVRANK a WITHSCORE argument (arity -3). Commands 7.0 lacks are skipped
/// too (it answers null).
const INFO_CHANGED_SINCE_7_0: &[&str] = &[
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
    "zrank",
    "zrevrank",
];

/// Subcommands 7.0 lacks.
const SUBCOMMANDS_SINCE_7_2: &[&[u8]] = &[b"client|no-touch", b"client|setinfo"];

/// A COMMAND INFO entry with its subcommands sorted (Redis lists them in
/// hash table order) and those 7.0 lacks removed.
fn sorted_subcommands(node: &Node) -> Node {
    let Node::Aggregate(kind, items) = node else {
        return node.clone();
    };
    let mut items = items.clone();
    if let Some(Node::Aggregate(k, subs)) = items.get(9) {
        let mut subs: Vec<Node> = subs
            .iter()
            .filter(|s| {
                !matches!(s, Node::Aggregate(_, f)
                    if matches!(f.first(), Some(Node::Scalar(_, n)) if SUBCOMMANDS_SINCE_7_2.contains(&n.as_slice())))
            })
            .map(sorted_subcommands)
            .collect();
        subs.sort_by_key(|s| {
            let mut out = vec![];
            encode(s, &mut out);
            out
        });
        items[9] = Node::Aggregate(*k, subs);
    }
    Node::Aggregate(*kind, items)
}

/// Every command and subcommand Granary has: COMMAND INFO equals 7.0's
/// (first/last/step and movablekeys included, which Redis derives from its
/// key specs), apart from the documented 7.2+ changes.
#[test]
fn info_of_every_command_matches_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let mut names = vec![];
    let list = granary.raw().cmd(&[b"COMMAND", b"LIST"]);
    let mut pos = 0;
    if let Node::Aggregate(_, items) = parse(&list, &mut pos) {
        for i in items {
            if let Node::Scalar(_, n) = i {
                names.push(n);
            }
        }
    }
    assert!(names.len() > 150, "{}", names.len());
    for resp3 in [false, true] {
        let (mut g, mut r) = conns(&granary, &redis, resp3);
        let mut compared = 0;
        for name in &names {
            let args: &[&[u8]] = &[b"COMMAND", b"INFO", name];
            let (ours, theirs) = (g.cmd(args), r.cmd(args));
            let (mut p1, mut p2) = (0, 0);
            let (Node::Aggregate(_, ours), Node::Aggregate(_, theirs)) =
                (parse(&ours, &mut p1), parse(&theirs, &mut p2))
            else {
                panic!("COMMAND INFO replies are arrays");
            };
            let unchanged = !INFO_CHANGED_SINCE_7_0.contains(&&*String::from_utf8_lossy(name));
            if matches!(theirs[0], Node::Scalar(..)) || !unchanged {
                continue;
            }
            compared += 1;
            let (mut a, mut b) = (vec![], vec![]);
            encode(&sorted_subcommands(&ours[0]), &mut a);
            encode(&sorted_subcommands(&theirs[0]), &mut b);
            assert_eq!(
                common::show(&a),
                common::show(&b),
                "COMMAND INFO {} (resp3: {resp3})",
                String::from_utf8_lossy(name)
            );
        }
        assert!(compared > 150, "{compared}");
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS follow Redis's key specs: numkeys
/// forms, per-key flags, SET's GET, commands whose keys may be absent.
#[test]
fn getkeys_matches_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = conns(&granary, &redis, false);
    let lines = [
        "zunionstore d 2 a b weights 1 2",
        "zinterstore d 2 a b",
        "zdiffstore d 2 a b",
        "zunionstore d 3 a b",
        "zinter 2 a b",
        "zunion 2 a b withscores",
        "zunion 0 a",
        "zdiff 2 a b",
        "sintercard 2 a b limit 1",
        "lmpop 2 a b left",
        "lmpop 5 a b left",
        "lmpop x a b",
        "blmpop 0 2 a b left",
        "zmpop 2 a b min",
        "bzmpop 0 2 a b min count 1",
        "eval s 2 a b c",
        "eval s 0",
        "eval s -1",
        "evalsha s 1 a",
        "blmove a b left left 0",
        "lmove a b left left",
        "set a b",
        "set a b ex 1 get",
        "mset a 1 b 2",
        "rename a b",
        "smove a b c",
        "copy a b",
        "sinterstore d a b",
        "zrangestore d s 0 1",
        "blpop a b 0",
        "bzpopmin a b 0",
        "debug object a",
        "object encoding a",
        "ping",
        "get a b",
        "nosuch a",
    ];
    for line in lines {
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            let mut args: Vec<&[u8]> = vec![b"COMMAND", sub.as_bytes()];
            args.extend(line.split(' ').map(str::as_bytes));
            assert_eq!(
                common::show(&g.cmd(&args)),
                common::show(&r.cmd(&args)),
                "COMMAND {sub} {line}"
            );
        }
    }
}
