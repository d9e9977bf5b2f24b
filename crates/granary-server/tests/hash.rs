//! Hash commands: a seeded random differential test against redis-server
//! (RESP2 and RESP3, raw replies byte for byte), plus targeted tests of the
//! encodings, HSCAN and HRANDFIELD, whose replies are partly random.
//!
//! Reproduce a differential run with `HASH_SEED=<seed>`.

mod common;

use common::{show, show_cmd, split_aggregate, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn cmd(c: &mut RawConn, args: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    c.cmd(&refs)
}

fn run(c: &mut RawConn, line: &str) -> Vec<u8> {
    let args: Vec<Vec<u8>> = line.split(' ').map(b).collect();
    cmd(c, &args)
}

// ------------------------------------------------------------ generator

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn key(&mut self) -> Vec<u8> {
        b(&format!("k{}", self.rng.gen_range(0..6)))
    }

    fn field(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..40) {
            // Longer than hash-max-listpack-value (64): forces hashtable.
            0 => vec![b'F'; 70],
            1 => Vec::new(),
            // A few hot fields, so reads and increments mostly hit.
            2..=19 => b(&format!("f{}", self.rng.gen_range(0..16))),
            _ => b(&format!("f{}", self.rng.gen_range(0..300))),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..12) {
            0 => b(&self.rng.gen_range(-100..100).to_string()),
            1 => b(&(i64::MAX - self.rng.gen_range(0..3)).to_string()),
            2 => b("1.5"),
            3 => b("007"),
            4 => vec![b'v'; self.rng.gen_range(0..80)],
            5 => b("-inf"),
            _ => b(&format!("v{}", self.rng.gen_range(0..1000))),
        }
    }

    fn count(&mut self) -> Vec<u8> {
        let words = [
            "0",
            "1",
            "3",
            "-3",
            "10",
            "400",
            "-5",
            "x",
            "-9223372036854775808",
        ];
        b(words[self.rng.gen_range(0..words.len())])
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        let key = self.key();
        let pick = self.rng.gen_range(0..100);
        let args = |name: &str, rest: Vec<Vec<u8>>| {
            let mut v = vec![b(name), key.clone()];
            v.extend(rest);
            v
        };
        match pick {
            0..=29 => {
                let pairs = self.rng.gen_range(1..9);
                let mut rest = Vec::new();
                for _ in 0..pairs {
                    rest.push(self.field());
                    rest.push(self.value());
                }
                if self.rng.gen_range(0..30) == 0 {
                    rest.pop(); // odd: wrong arity
                }
                let name = if self.rng.gen_bool(0.8) {
                    "HSET"
                } else {
                    "hmset"
                };
                args(name, rest)
            }
            30..=33 => args("HSETNX", vec![self.field(), self.value()]),
            34..=39 => args("HGET", vec![self.field()]),
            40..=42 => {
                let fields = (0..self.rng.gen_range(1..5))
                    .map(|_| self.field())
                    .collect();
                args("HMGET", fields)
            }
            43..=52 => {
                let fields = (0..self.rng.gen_range(1..6))
                    .map(|_| self.field())
                    .collect();
                args("HDEL", fields)
            }
            53..=55 => args("HEXISTS", vec![self.field()]),
            56..=57 => args("HLEN", vec![]),
            58..=59 => args("HSTRLEN", vec![self.field()]),
            60..=65 => {
                let incr = match self.rng.gen_range(0..6) {
                    0 => b("x"),
                    1 => b(&i64::MAX.to_string()),
                    _ => b(&self.rng.gen_range(-50..50).to_string()),
                };
                args("HINCRBY", vec![self.field(), incr])
            }
            66..=70 => {
                let incr = match self.rng.gen_range(0..8) {
                    0 => b("abc"),
                    1 => b("inf"),
                    2 => b("1e308"),
                    3 => b("0.1"),
                    _ => b(&format!("{}.25", self.rng.gen_range(-50..50))),
                };
                args("HINCRBYFLOAT", vec![self.field(), incr])
            }
            71..=74 => args("HGETALL", vec![]),
            75..=76 => args("HKEYS", vec![]),
            77..=78 => args("HVALS", vec![]),
            79..=83 => {
                let mut rest = vec![];
                if self.rng.gen_bool(0.8) {
                    rest.push(self.count());
                    match self.rng.gen_range(0..4) {
                        0 => rest.push(b("WITHVALUES")),
                        1 => rest.push(b("withvalues")),
                        2 if self.rng.gen_bool(0.2) => rest.push(b("junk")),
                        _ => {}
                    }
                }
                args("HRANDFIELD", rest)
            }
            84..=87 => {
                let mut rest = vec![b(["0", "x", "7"][self.rng.gen_range(0..3)])];
                match self.rng.gen_range(0..5) {
                    0 => rest.extend([b("MATCH"), b("f1*")]),
                    1 => rest.extend([b("COUNT"), self.count()]),
                    2 => rest.push(b("bogus")),
                    _ => {}
                }
                args("HSCAN", rest)
            }
            88..=90 => args("SET", vec![self.value()]),
            91..=92 => args("GET", vec![]),
            93 => args("DEL", vec![]),
            94 => args("HSET", vec![]),
            95 => args("HGET", vec![]),
            96 => args("EXPIRE", vec![b("100")]),
            97 => args("TTL", vec![]),
            _ => args("TYPE", vec![]),
        }
    }
}

// ------------------------------------------------------------ comparison

/// Elements of an aggregate reply as a sorted multiset.
fn sorted_elems(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut v = split_aggregate(reply).map(|(_, e)| e).unwrap_or_default();
    v.sort();
    v
}

/// (field, value) pairs of a flat or map reply, sorted.
fn sorted_pairs(reply: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let e = split_aggregate(reply).map(|(_, e)| e).unwrap_or_default();
    let mut v: Vec<_> = e.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    v.sort();
    v
}

fn first_line(reply: &[u8]) -> &[u8] {
    let end = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(reply.len());
    &reply[..end]
}

/// Every field HSCAN returns when iterated to the end.
fn full_scan(c: &mut RawConn, key: &[u8]) -> BTreeSet<Vec<u8>> {
    let mut cursor = b("0");
    let mut fields = BTreeSet::new();
    loop {
        let r = cmd(c, &[b("HSCAN"), key.to_vec(), cursor, b("COUNT"), b("7")]);
        let (_, parts) = split_aggregate(&r).expect("hscan array");
        let next = String::from_utf8_lossy(&parts[0]).to_string();
        let next = next.split("\r\n").nth(1).unwrap_or("0").to_string();
        let (_, items) = split_aggregate(&parts[1]).expect("hscan items");
        for pair in items.chunks(2) {
            fields.insert(pair[0].clone());
        }
        if next == "0" {
            return fields;
        }
        cursor = b(&next);
    }
}

/// Compares one command's replies, allowing only what Redis leaves
/// unspecified: hashtable order and random picks.
fn compare(g: &mut RawConn, r: &mut RawConn, args: &[Vec<u8>], ctx: &str) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let key = args[1].clone();
    let enc_r = run_args(r, &[b("OBJECT"), b("ENCODING"), key.clone()]);
    let enc_g = run_args(g, &[b("OBJECT"), b("ENCODING"), key.clone()]);
    if enc_r.ends_with(b"listpack\r\n") || enc_r.ends_with(b"hashtable\r\n") {
        assert_eq!(
            show(&enc_g),
            show(&enc_r),
            "{ctx}: encoding before {}",
            show_cmd(args)
        );
    }
    let hashtable = enc_r.starts_with(b"$9\r\nhashtable");
    let got_g = cmd(g, args);
    let got_r = cmd(r, args);
    let both_ok = !got_r.starts_with(b"-") && !got_g.starts_with(b"-");
    let what = format!("{ctx}: {}", show_cmd(args));
    match name.as_str() {
        "HGETALL" if hashtable && both_ok => {
            assert_eq!(first_line(&got_g), first_line(&got_r), "{what}");
            assert_eq!(sorted_pairs(&got_g), sorted_pairs(&got_r), "{what}");
        }
        "HKEYS" | "HVALS" if hashtable && both_ok => {
            assert_eq!(first_line(&got_g), first_line(&got_r), "{what}");
            assert_eq!(sorted_elems(&got_g), sorted_elems(&got_r), "{what}");
        }
        "HSCAN" if hashtable && both_ok => {
            assert_eq!(full_scan(g, &key), full_scan(r, &key), "{what}");
        }
        "HRANDFIELD" if both_ok => {
            // Random picks: the shape must agree, the picks need not.
            let null = |x: &[u8]| x.starts_with(b"$-1") || x.starts_with(b"_");
            assert_eq!(null(&got_g), null(&got_r), "{what}");
            if args.len() > 2 {
                assert_eq!(show(first_line(&got_g)), show(first_line(&got_r)), "{what}");
            }
        }
        _ => assert_eq!(show(&got_g), show(&got_r), "{what}"),
    }
    hashtable
}

fn run_args(c: &mut RawConn, args: &[Vec<u8>]) -> Vec<u8> {
    cmd(c, args)
}

fn seed() -> u64 {
    common::seed("HASH_SEED", 0x4a54_1234)
}

fn differential(resp3: bool) {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = (granary.raw(), redis.raw());
    // A lower entry limit than the default 512, so ~300 fields cross it.
    for c in [&mut g, &mut r] {
        assert_eq!(
            run(c, "CONFIG SET hash-max-listpack-entries 128"),
            b"+OK\r\n"
        );
    }
    if resp3 {
        assert_eq!(
            first_line(&run(&mut g, "HELLO 3")),
            first_line(&run(&mut r, "HELLO 3"))
        );
    }
    let seed = seed() ^ resp3 as u64;
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut hashtable_steps = 0;
    for i in 0..4000 {
        let args = gen.command();
        hashtable_steps += compare(&mut g, &mut r, &args, &format!("seed {seed} step {i}")) as u32;
    }
    // The run must have exercised both encodings.
    assert!(
        hashtable_steps > 100,
        "hashtable reached in {hashtable_steps} steps only"
    );
}

#[test]
fn differential_resp2() {
    differential(false);
}

#[test]
fn differential_resp3() {
    differential(true);
}

// ------------------------------------------------------------ targeted

#[test]
fn encodings_follow_config_thresholds() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    // Redis's defaults.
    let defaults = "*4\r\n$25\r\nhash-max-listpack-entries\r\n$3\r\n512\r\n$23\r\nhash-max-listpack-value\r\n$2\r\n64\r\n";
    assert_eq!(
        show(&run(&mut c, "CONFIG GET hash-max-listpack-*")),
        show(defaults.as_bytes())
    );
    // HSET with more pairs than the limit makes a hashtable up front (7.4),
    // even when the fields repeat.
    let pairs = vec!["f x"; 513].join(" ");
    assert_eq!(run(&mut c, &format!("HSET dup {pairs}")), b":1\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING dup"), b"$9\r\nhashtable\r\n");
    // HSETNX on an existing field leaves the encoding alone.
    run(&mut c, "HSET nx a 1");
    let long = "x".repeat(65);
    assert_eq!(run(&mut c, &format!("HSETNX nx a {long}")), b":0\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING nx"), b"$8\r\nlistpack\r\n");
    assert_eq!(run(&mut c, &format!("HSETNX nx b {long}")), b":1\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING nx"), b"$9\r\nhashtable\r\n");
    assert_eq!(
        run(&mut c, "CONFIG SET hash-max-listpack-entries 3"),
        b"+OK\r\n"
    );
    assert_eq!(
        run(&mut c, "CONFIG SET hash-max-listpack-value 5"),
        b"+OK\r\n"
    );
    assert_eq!(run(&mut c, "HSET h a 1 b 2 c 3"), b":3\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING h"), b"$8\r\nlistpack\r\n");
    // Insertion order is kept while compact.
    assert_eq!(
        run(&mut c, "HKEYS h"),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );
    assert_eq!(run(&mut c, "HSET h a 0"), b":0\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING h"), b"$8\r\nlistpack\r\n");
    assert_eq!(run(&mut c, "HSET h d 4"), b":1\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING h"), b"$9\r\nhashtable\r\n");
    // Never converts back.
    assert_eq!(run(&mut c, "HDEL h a b c"), b":3\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING h"), b"$9\r\nhashtable\r\n");
    assert_eq!(run(&mut c, "HSET v f 123456"), b":1\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING v"), b"$9\r\nhashtable\r\n");
    // HINCRBYFLOAT growing a value past the limit converts too.
    assert_eq!(run(&mut c, "HSET w n 1"), b":1\r\n");
    assert_eq!(run(&mut c, "HINCRBYFLOAT w n 0.125"), b"$5\r\n1.125\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING w"), b"$8\r\nlistpack\r\n");
    assert_eq!(run(&mut c, "HINCRBYFLOAT w n 0.0001"), b"$6\r\n1.1251\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING w"), b"$9\r\nhashtable\r\n");
    // Lowering the limit converts on the next write, even an update.
    run(&mut c, "HSET u a 1 b 2 c 3");
    assert_eq!(
        run(&mut c, "CONFIG SET hash-max-listpack-entries 2"),
        b"+OK\r\n"
    );
    assert_eq!(run(&mut c, "OBJECT ENCODING u"), b"$8\r\nlistpack\r\n");
    assert_eq!(run(&mut c, "HSET u a 9"), b":0\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING u"), b"$9\r\nhashtable\r\n");
    // Emptied hashes are deleted.
    assert_eq!(run(&mut c, "HDEL w n"), b":1\r\n");
    assert_eq!(run(&mut c, "EXISTS w"), b":0\r\n");
}

#[test]
fn hscan_walks_big_hashes_and_supports_novalues() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    for i in 0..1000 {
        run(&mut c, &format!("HSET big f{i} v{i}"));
    }
    let all = full_scan(&mut c, b"big");
    assert_eq!(all.len(), 1000);
    // MATCH filters fields; NOVALUES (7.4) leaves values out.
    let r = run(&mut c, "HSCAN big 0 MATCH f99* COUNT 100000 NOVALUES");
    let (_, parts) = split_aggregate(&r).unwrap();
    assert_eq!(parts[0], b"$1\r\n0\r\n");
    let fields = sorted_elems(&parts[1]);
    let want: Vec<Vec<u8>> = [
        "f99", "f990", "f991", "f992", "f993", "f994", "f995", "f996", "f997", "f998", "f999",
    ]
    .iter()
    .map(|f| format!("${}\r\n{f}\r\n", f.len()).into_bytes())
    .collect();
    assert_eq!(fields, want);
    run(&mut c, "HSET small a 1 b 2");
    assert_eq!(
        run(&mut c, "HSCAN small 0 NOVALUES"),
        b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(
        run(&mut c, "HSCAN small 0"),
        b"*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        run(&mut c, "HSCAN nokey 0 COUNT 0"),
        b"*2\r\n$1\r\n0\r\n*0\r\n"
    );
    assert_eq!(
        run(&mut c, "HSCAN small 0 COUNT 0"),
        b"-ERR syntax error\r\n"
    );
}

#[test]
fn hrandfield_picks_and_shapes() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    run(&mut c, "HSET h a 1 b 2 c 3 d 4 e 5");
    // Distinct picks.
    for _ in 0..20 {
        let r = run(&mut c, "HRANDFIELD h 3");
        let e = sorted_elems(&r);
        assert_eq!(e.len(), 3);
        assert_eq!(e.iter().collect::<BTreeSet<_>>().len(), 3, "{}", show(&r));
    }
    // Negative counts repeat.
    let r = run(&mut c, "HRANDFIELD h -20 WITHVALUES");
    assert!(r.starts_with(b"*40\r\n"), "{}", show(&r));
    for pair in split_aggregate(&r).unwrap().1.chunks(2) {
        let f = &pair[0][4..5];
        let v = &pair[1][4..5];
        assert_eq!(f[0] - b'a' + b'1', v[0]);
    }
    // Few distinct picks from a big hashtable.
    let pairs: Vec<String> = (0..600).map(|i| format!("f{i} v{i}")).collect();
    run(&mut c, &format!("HSET big {}", pairs.join(" ")));
    assert_eq!(run(&mut c, "OBJECT ENCODING big"), b"$9\r\nhashtable\r\n");
    for _ in 0..20 {
        let r = run(&mut c, "HRANDFIELD big 5 WITHVALUES");
        let (_, items) = split_aggregate(&r).unwrap();
        let fields: BTreeSet<_> = items.chunks(2).map(|p| p[0].clone()).collect();
        assert_eq!(fields.len(), 5, "{}", show(&r));
    }
    assert_eq!(run(&mut c, "HRANDFIELD h 0"), b"*0\r\n");
    assert_eq!(run(&mut c, "HRANDFIELD nokey 5"), b"*0\r\n");
    assert_eq!(run(&mut c, "HRANDFIELD nokey"), b"$-1\r\n");
    run(&mut c, "HELLO 3");
    let r = run(&mut c, "HRANDFIELD h 2 WITHVALUES");
    let (head, pairs) = split_aggregate(&r).unwrap();
    assert_eq!(head, b"*2\r\n");
    assert!(
        pairs.iter().all(|p| p.starts_with(b"*2\r\n")),
        "{}",
        show(&r)
    );
    assert_eq!(run(&mut c, "HRANDFIELD nokey"), b"_\r\n");
    assert!(run(&mut c, "HGETALL h").starts_with(b"%5\r\n"));
}
