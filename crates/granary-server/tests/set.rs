//! The set family against real servers.
//!
//! - A seeded random differential test: the same command sequences go to
//!   Granary and to redis-server (7.0) over RESP2 and RESP3, raw replies
//!   compared byte for byte, errors and WRONGTYPE included, over six keys
//!   so commands collide, with default and lowered encoding thresholds.
//!   Redis 7.0 has no listpack sets (it keeps string sets in hashtables, so
//!   their order is unspecified): set-valued replies are compared as sorted
//!   multisets there, and OBJECT ENCODING is not compared.
//! - The same test against a Valkey server (Redis 7.4's set encodings) when
//!   one is available (`VALKEY_SERVER`, or the benchmark's copy): there the
//!   order of compact sets (SMEMBERS, SINTER, SSCAN) and OBJECT ENCODING are
//!   compared exactly.
//! - Granary-only checks of what the oracles cannot compare (random
//!   replies, encodings, STORE semantics). The click-log workload that
//!   combines sets with lists and hashes is in tests/clicklog.rs.
//!
//! Reproduce a run with `SET_DIFF_SEED=<seed>`.

mod common;

use common::{show, show_cmd, split_aggregate, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashSet};

type Args = Vec<Vec<u8>>;

/// Commands per protocol and threshold setting.
const COMMANDS: usize = 2_500;
const KEYS: &[&str] = &["s0", "s1", "s2", "s3", "s4", "s5"];

// ------------------------------------------------------------ the oracle

// -------------------------------------------------------------- generator

/// How two replies are compared.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cmp {
    Exact,
    /// A set-valued reply: exact where Redis 7.4's order is determined
    /// (compact encodings, Valkey oracle), else as sorted multisets.
    Members,
    /// Random members: only the reply's type and length.
    Shape,
    /// SSCAN: each server iterated to cursor 0, the members compared.
    FullScan,
}

struct Gen {
    rng: StdRng,
    /// The oracle knows listpack sets and OBJECT ENCODING answers alike.
    rich: bool,
}

impl Gen {
    fn key(&mut self) -> Vec<u8> {
        if self.rng.gen_ratio(1, 25) {
            return b"str".to_vec();
        }
        KEYS[self.rng.gen_range(0..KEYS.len())].as_bytes().to_vec()
    }

    fn keys(&mut self, max: usize) -> Args {
        let n = self.rng.gen_range(1..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn member(&mut self) -> Vec<u8> {
        let r = &mut self.rng;
        match r.gen_range(0..12) {
            0..=4 => r.gen_range(0..700).to_string().into_bytes(),
            5 => {
                let edge = [
                    i64::MIN,
                    i64::MAX,
                    -1,
                    -32769,
                    32768,
                    2147483648,
                    -2147483649,
                ];
                edge[r.gen_range(0..edge.len())].to_string().into_bytes()
            }
            6 => {
                let odd = ["007", "+1", "-0", " 1", "1.5", "", "9223372036854775808"];
                odd[r.gen_range(0..odd.len())].as_bytes().to_vec()
            }
            7 => {
                let len = r.gen_range(10..80);
                let mut v = format!("long{}:", r.gen_range(0..20)).into_bytes();
                v.resize(len, b'x');
                v
            }
            _ => format!("m{}", r.gen_range(0..60)).into_bytes(),
        }
    }

    fn members(&mut self, max: usize) -> Args {
        let n = self.rng.gen_range(1..=max);
        (0..n).map(|_| self.member()).collect()
    }

    fn pick(&mut self, opts: &[&str]) -> Vec<u8> {
        opts[self.rng.gen_range(0..opts.len())].as_bytes().to_vec()
    }

    fn next(&mut self) -> (Args, Cmp) {
        let c = |name: &str, rest: Args| -> Args {
            let mut a = vec![name.as_bytes().to_vec()];
            a.extend(rest);
            a
        };
        let w = self.rng.gen_range(0..100);
        let (args, cmp) = match w {
            0..=21 => {
                // Mostly small additions; sometimes a batch that crosses a
                // threshold at once.
                let max = if self.rng.gen_ratio(1, 6) { 140 } else { 6 };
                let mut a = vec![self.key()];
                a.extend(self.members(max));
                (c("SADD", a), Cmp::Exact)
            }
            22..=28 => {
                let mut a = vec![self.key()];
                a.extend(self.members(8));
                (c("SREM", a), Cmp::Exact)
            }
            29..=33 => (c("SMEMBERS", vec![self.key()]), Cmp::Members),
            34..=36 => (c("SISMEMBER", vec![self.key(), self.member()]), Cmp::Exact),
            37..=38 => {
                let mut a = vec![self.key()];
                a.extend(self.members(4));
                (c("SMISMEMBER", a), Cmp::Exact)
            }
            39..=41 => (c("SCARD", vec![self.key()]), Cmp::Exact),
            42 => {
                // Popping everything is deterministic.
                let n = self.pick(&["1000", "100000"]);
                (c("SPOP", vec![self.key(), n]), Cmp::Members)
            }
            43 => {
                let bad = self.pick(&["-1", "x", "0", "1 2"]);
                let mut a = vec![self.key()];
                a.extend(bad.split(|&b| b == b' ').map(<[u8]>::to_vec));
                (c("SPOP", a), Cmp::Exact)
            }
            44..=46 => {
                let n = self.pick(&["1", "3", "-5", "0", "1000", "-9223372036854775808", "x"]);
                (c("SRANDMEMBER", vec![self.key(), n]), Cmp::Shape)
            }
            47..=51 => {
                let (a, b, m) = (self.key(), self.key(), self.member());
                (c("SMOVE", vec![a, b, m]), Cmp::Exact)
            }
            52..=56 => (c("SINTER", self.keys(3)), Cmp::Members),
            57..=60 => {
                let keys = self.keys(3);
                let mut n = keys.len().to_string().into_bytes();
                if self.rng.gen_ratio(1, 8) {
                    n = self.pick(&["0", "-1", "x", "9"]);
                }
                let mut a = vec![n];
                a.extend(keys);
                if self.rng.gen_ratio(1, 2) {
                    a.push(self.pick(&["LIMIT", "limit", "BOGUS"]));
                    a.push(self.pick(&["0", "1", "3", "-1", "x"]));
                }
                (c("SINTERCARD", a), Cmp::Exact)
            }
            61..=63 => {
                let mut a = vec![self.key()];
                a.extend(self.keys(3));
                (c("SINTERSTORE", a), Cmp::Exact)
            }
            64..=67 => (c("SUNION", self.keys(3)), Cmp::Members),
            68..=70 => {
                let mut a = vec![self.key()];
                a.extend(self.keys(3));
                (c("SUNIONSTORE", a), Cmp::Exact)
            }
            71..=74 => (c("SDIFF", self.keys(3)), Cmp::Members),
            75..=77 => {
                let mut a = vec![self.key()];
                a.extend(self.keys(3));
                (c("SDIFFSTORE", a), Cmp::Exact)
            }
            78..=81 => {
                let mut a = vec![self.key(), b"0".to_vec()];
                if self.rng.gen_ratio(1, 2) {
                    a.push(b"MATCH".to_vec());
                    a.push(self.pick(&["*", "m1*", "1*", "long*", "*5"]));
                }
                if self.rng.gen_ratio(1, 2) {
                    a.push(b"COUNT".to_vec());
                    a.push(self.pick(&["1", "5", "100"]));
                }
                if self.rng.gen_ratio(1, 15) {
                    // NOVALUES has its own error since 7.4 (7.0: syntax error).
                    let opts: &[&str] = if self.rich {
                        &["NOVALUES", "TYPE", "COUNT"]
                    } else {
                        &["TYPE", "COUNT"]
                    };
                    a.push(self.pick(opts));
                }
                if self.rng.gen_ratio(1, 20) {
                    // 7.0 took a negative cursor; 7.4 refuses it.
                    let bad: &[&str] = if self.rich {
                        &["-1", "x", "18446744073709551616"]
                    } else {
                        &["x", "18446744073709551616"]
                    };
                    a[1] = self.pick(bad);
                }
                (c("SSCAN", a), Cmp::FullScan)
            }
            82..=83 => (c("SET", vec![self.key(), b"v".to_vec()]), Cmp::Exact),
            84 => (c("DEL", vec![self.key()]), Cmp::Exact),
            85 => (c("TYPE", vec![self.key()]), Cmp::Exact),
            86..=91 if self.rich => (
                c("OBJECT", vec![b"ENCODING".to_vec(), self.key()]),
                Cmp::Exact,
            ),
            92..=94 => {
                // Arity errors.
                let name = self.pick(&[
                    "SADD",
                    "SREM",
                    "SMEMBERS",
                    "SISMEMBER",
                    "SMISMEMBER",
                    "SCARD",
                    "SMOVE",
                    "SINTER",
                    "SINTERCARD",
                    "SINTERSTORE",
                    "SUNIONSTORE",
                    "SDIFFSTORE",
                    "SSCAN",
                    "SPOP",
                    "SRANDMEMBER",
                ]);
                (vec![name], Cmp::Exact)
            }
            _ => (c("SCARD", vec![self.key()]), Cmp::Exact),
        };
        (args, cmp)
    }
}

// ------------------------------------------------------------- comparison

fn send(conn: &mut RawConn, args: &Args) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    conn.cmd(&refs)
}

fn sorted_elems(reply: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let (head, mut elems) = split_aggregate(reply)?;
    elems.sort();
    Some((head, elems))
}

/// The bulk strings of a flat aggregate reply.
fn bulks(reply: &[u8]) -> Vec<Vec<u8>> {
    split_aggregate(reply)
        .map(|(_, e)| e.into_iter().map(|b| bulk_body(&b)).collect())
        .unwrap_or_default()
}

fn bulk_body(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&c| c == b'\n').map_or(0, |p| p + 1);
    b[start..b.len().saturating_sub(2)].to_vec()
}

/// Thresholds in force, to know when Redis 7.4's order is determined.
#[derive(Clone, Copy)]
struct Thresholds {
    listpack_entries: usize,
    listpack_value: usize,
}

/// Whether a set-valued reply's order is determined in Redis 7.4 and
/// comparable with Valkey: SMEMBERS and SINTER, whose order is that of a
/// stored set, when every key involved is compact. (SUNION, SDIFF and a
/// whole-set SPOP answer from a temporary set; Valkey answers those
/// without Redis 7.4's temporary listpack, so their order differs.)
fn order_determined(
    oracle: &mut RawConn,
    args: &Args,
    reply: &[u8],
    t: Thresholds,
    tainted: &HashSet<Vec<u8>>,
) -> bool {
    let name = args[0].to_ascii_uppercase();
    if name != b"SMEMBERS" && name != b"SINTER" {
        return false;
    }
    if args[1..].iter().any(|k| tainted.contains(k)) {
        return false;
    }
    let elems = bulks(reply);
    if elems.len() > t.listpack_entries || elems.iter().any(|e| e.len() > t.listpack_value) {
        return false;
    }
    args[1..].iter().all(|k| !is_hashtable(oracle, k))
}

fn is_hashtable(oracle: &mut RawConn, key: &[u8]) -> bool {
    let enc = send(
        oracle,
        &vec![b"OBJECT".to_vec(), b"ENCODING".to_vec(), key.to_vec()],
    );
    enc.starts_with(b"$9\r\nhashtable")
}

/// Iterates SSCAN to cursor 0; returns the first reply and all members.
fn full_scan(conn: &mut RawConn, args: &Args) -> (Vec<u8>, BTreeSet<Vec<u8>>) {
    let first = send(conn, args);
    let mut members = BTreeSet::new();
    let mut reply = first.clone();
    for _ in 0..100_000 {
        let Some((_, parts)) = split_aggregate(&reply) else {
            break;
        };
        if parts.len() != 2 {
            break;
        }
        members.extend(bulks(&parts[1]));
        let cursor = bulk_body(&parts[0]);
        if cursor == b"0" {
            break;
        }
        let mut next = args.clone();
        next[2] = cursor;
        reply = send(conn, &next);
    }
    (first, members)
}

/// Commands that write a set at their first key argument.
fn is_set_write(name: &[u8]) -> bool {
    let name = name.to_ascii_uppercase();
    [
        &b"SADD"[..],
        b"SREM",
        b"SINTERSTORE",
        b"SUNIONSTORE",
        b"SDIFFSTORE",
        b"SPOP",
    ]
    .contains(&name.as_slice())
}

/// With `SET_DIFF_HISTORY=<file>`, writes the whole failing sequence there
/// (one command per line, as shown in failure messages).
fn dump_history(history: &[String]) {
    if let Ok(path) = std::env::var("SET_DIFF_HISTORY") {
        let _ = std::fs::write(path, history.join("\n"));
    }
}

fn is_store(name: &[u8]) -> bool {
    let name = name.to_ascii_uppercase();
    [&b"SINTERSTORE"[..], b"SUNIONSTORE", b"SDIFFSTORE"].contains(&name.as_slice())
}

struct Mismatch {
    step: usize,
    /// The commands before the failing one (the tail of the sequence).
    history: Vec<String>,
    cmd: String,
    granary: String,
    oracle: String,
}

/// Runs one sequence; returns the first mismatch.
fn run_sequence(
    g: &mut RawConn,
    o: &mut RawConn,
    gen: &mut Gen,
    n: usize,
    t: Thresholds,
) -> Option<Mismatch> {
    let mut history: Vec<String> = Vec::new();
    // Compact sets whose member order legitimately differs between the
    // servers: stored from a walk over a hashtable (or over such a set).
    let mut tainted: HashSet<Vec<u8>> = HashSet::new();
    for step in 0..n {
        let (args, cmp) = gen.next();
        let mut failed = false;
        let store_dst = if gen.rich && args.len() > 2 && is_store(&args[0]) {
            let unordered = args[2..]
                .iter()
                .any(|k| tainted.contains(k) || is_hashtable(o, k));
            Some((args[1].clone(), unordered))
        } else {
            None
        };
        let fail = |a: &[u8], b: &[u8]| {
            Some(Mismatch {
                step,
                history: history[history.len().saturating_sub(40)..].to_vec(),
                cmd: show_cmd(&args),
                granary: show(a),
                oracle: show(b),
            })
        };
        match cmp {
            Cmp::FullScan => {
                let (ga, gm) = full_scan(g, &args);
                let (oa, om) = full_scan(o, &args);
                let errors = ga.starts_with(b"-") || oa.starts_with(b"-");
                // A compact set answers whole, in its order, with cursor 0.
                let compact_same =
                    gen.rich && !tainted.contains(&args[1]) && !is_hashtable(o, &args[1]);
                if (errors || compact_same) && ga != oa {
                    return fail(&ga, &oa);
                }
                if gm != om {
                    let show_set = |s: &BTreeSet<Vec<u8>>| {
                        s.iter().map(|m| show(m)).collect::<Vec<_>>().join(",")
                    };
                    return fail(show_set(&gm).as_bytes(), show_set(&om).as_bytes());
                }
            }
            _ => {
                let (a, b) = (send(g, &args), send(o, &args));
                failed = b.starts_with(b"-");
                let same = match cmp {
                    Cmp::Exact => a == b,
                    Cmp::Members => {
                        a == b
                            || (!(gen.rich && order_determined(o, &args, &b, t, &tainted))
                                && sorted_elems(&a).is_some()
                                && sorted_elems(&a) == sorted_elems(&b))
                    }
                    Cmp::Shape => match (split_aggregate(&a), split_aggregate(&b)) {
                        (Some((ha, _)), Some((hb, _))) => ha == hb,
                        _ if a.starts_with(b"-") || b.starts_with(b"-") => a == b,
                        _ => a.first() == b.first(),
                    },
                    Cmp::FullScan => unreachable!(),
                };
                if !same {
                    dump_history(&history);
                    return fail(&a, &b);
                }
            }
        }
        if let Some((dst, unordered)) = store_dst.filter(|_| !failed) {
            if unordered {
                tainted.insert(dst);
            } else {
                tainted.remove(&dst);
            }
        }
        // A deleted or overwritten key starts over.
        tainted.retain(|k| send(o, &vec![b"TYPE".to_vec(), k.clone()]) == b"+set\r\n");
        // With the 7.4-encoding oracle, a written set must also hold its
        // members in the same order when it is compact.
        if gen.rich && args.len() > 1 && is_set_write(&args[0]) {
            let key = args[1].clone();
            if !tainted.contains(&key) && !is_hashtable(o, &key) {
                let probe = vec![b"SMEMBERS".to_vec(), key];
                let (a, b) = (send(g, &probe), send(o, &probe));
                if a != b {
                    history.push(show_cmd(&args));
                    dump_history(&history);
                    return Some(Mismatch {
                        step,
                        history: history[history.len().saturating_sub(40)..].to_vec(),
                        cmd: show_cmd(&probe),
                        granary: show(&a),
                        oracle: show(&b),
                    });
                }
            }
        }
        history.push(show_cmd(&args));
    }
    None
}

/// The differential run against one oracle, over RESP2 and RESP3 and two
/// threshold settings. `rich`: the oracle has Redis 7.4's encodings.
fn differential(granary: &ServerProc, mut oracle: impl FnMut() -> RawConn, rich: bool) {
    let seed = common::seed("SET_DIFF_SEED", 0x0073_6574);
    eprintln!("set differential (rich={rich})");
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        rich,
    };
    for low in [false, true] {
        for resp3 in [false, true] {
            let (mut g, mut o) = (granary.raw(), oracle());
            let mut config: Vec<(&str, &str)> =
                vec![("set-max-intset-entries", if low { "32" } else { "512" })];
            if rich {
                config.push(("set-max-listpack-entries", if low { "16" } else { "128" }));
                config.push(("set-max-listpack-value", if low { "16" } else { "64" }));
            }
            for conn in [&mut g, &mut o] {
                assert_eq!(conn.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
                for (k, v) in &config {
                    let r = conn.cmd(&[b"CONFIG", b"SET", k.as_bytes(), v.as_bytes()]);
                    assert_eq!(r, b"+OK\r\n", "CONFIG SET {k}");
                }
                if resp3 {
                    assert!(conn.cmd(&[b"HELLO", b"3"]).starts_with(b"%"));
                }
            }
            let t = if low {
                Thresholds {
                    listpack_entries: 16,
                    listpack_value: 16,
                }
            } else {
                Thresholds {
                    listpack_entries: 128,
                    listpack_value: 64,
                }
            };
            if let Some(m) = run_sequence(&mut g, &mut o, &mut gen, COMMANDS, t) {
                panic!(
                    "mismatch (seed {seed}, low thresholds {low}, resp3 {resp3}) at step {}:\n  {}\n  granary: {}\n  oracle:  {}\nafter:\n  {}",
                    m.step,
                    m.cmd,
                    m.granary,
                    m.oracle,
                    m.history.join("\n  ")
                );
            }
        }
    }
}

#[test]
fn differential_against_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    differential(&granary, || redis.raw(), false);
}

#[test]
fn differential_against_valkey_encodings() {
    let Some(v) = ServerProc::valkey(&[]) else {
        return;
    };
    let granary = ServerProc::granary(&[]);
    differential(&granary, || v.raw(), true);
}

// --------------------------------------------------------- granary only

fn cmd(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd(&refs)
}

fn encoding(c: &mut RawConn, key: &str) -> String {
    let r = cmd(c, &["OBJECT", "ENCODING", key]);
    String::from_utf8(bulk_body(&r)).unwrap()
}

fn members_of(c: &mut RawConn, key: &str) -> BTreeSet<Vec<u8>> {
    bulks(&cmd(c, &["SMEMBERS", key])).into_iter().collect()
}

#[test]
fn encodings_follow_redis_thresholds() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    cmd(&mut c, &["SADD", "i", "3", "-1", "2"]);
    assert_eq!(encoding(&mut c, "i"), "intset");
    assert_eq!(
        bulks(&cmd(&mut c, &["SMEMBERS", "i"])),
        vec![b"-1".to_vec(), b"2".to_vec(), b"3".to_vec()]
    );
    // A string turns the intset into a listpack: sorted integers first.
    cmd(&mut c, &["SADD", "i", "b", "a"]);
    assert_eq!(encoding(&mut c, "i"), "listpack");
    let order = bulks(&cmd(&mut c, &["SMEMBERS", "i"]));
    assert_eq!(
        order,
        ["-1", "2", "3", "b", "a"].map(|s| s.as_bytes().to_vec())
    );
    // Removing never converts back.
    cmd(&mut c, &["SREM", "i", "a", "b"]);
    assert_eq!(encoding(&mut c, "i"), "listpack");
    // 513 integers: hashtable.
    let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
    let mut a = vec!["SADD", "big"];
    a.extend(ints.iter().map(String::as_str).take(512));
    cmd(&mut c, &a);
    assert_eq!(encoding(&mut c, "big"), "intset");
    cmd(&mut c, &["SADD", "big", "512"]);
    assert_eq!(encoding(&mut c, "big"), "hashtable");
    // A value longer than 64 bytes, or a 129th member: hashtable.
    cmd(&mut c, &["SADD", "l", "x"]);
    cmd(&mut c, &["SADD", "l", &"y".repeat(65)]);
    assert_eq!(encoding(&mut c, "l"), "hashtable");
    let names: Vec<String> = (0..129).map(|i| format!("m{i}")).collect();
    let mut a = vec!["SADD", "n"];
    a.extend(names.iter().map(String::as_str));
    cmd(&mut c, &a);
    assert_eq!(encoding(&mut c, "n"), "hashtable");
    assert_eq!(cmd(&mut c, &["SCARD", "n"]), b":129\r\n");
    // CONFIG SET lowers the thresholds for new conversions.
    cmd(&mut c, &["CONFIG", "SET", "set-max-listpack-entries", "2"]);
    cmd(&mut c, &["SADD", "t", "a", "b"]);
    assert_eq!(encoding(&mut c, "t"), "listpack");
    cmd(&mut c, &["SADD", "t", "c"]);
    assert_eq!(encoding(&mut c, "t"), "hashtable");
}

#[test]
fn random_members_obey_the_count_rules() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    let fill = |c: &mut RawConn, key: &str, members: &[String]| {
        let mut a = vec!["SADD", key];
        a.extend(members.iter().map(String::as_str));
        cmd(c, &a);
    };
    let cases: [(&str, Vec<String>); 3] = [
        ("ints", (0..300).map(|i| i.to_string()).collect()),
        ("pack", (0..100).map(|i| format!("p{i}")).collect()),
        ("table", (0..1000).map(|i| format!("t{i}")).collect()),
    ];
    for (key, members) in &cases {
        fill(&mut c, key, members);
        let all: HashSet<Vec<u8>> = members.iter().map(|m| m.as_bytes().to_vec()).collect();
        for count in [1usize, 5, 40, 99, 250, 999, 5000] {
            let got = bulks(&cmd(&mut c, &["SRANDMEMBER", key, &count.to_string()]));
            let uniq: HashSet<_> = got.iter().cloned().collect();
            assert_eq!(got.len(), count.min(all.len()), "{key} {count}");
            assert_eq!(uniq.len(), got.len(), "{key} {count}: repeated members");
            assert!(uniq.is_subset(&all));
        }
        let got = bulks(&cmd(&mut c, &["SRANDMEMBER", key, "-2000"]));
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(|m| all.contains(m)));
        // Popping in several rounds takes every member exactly once.
        let mut popped = HashSet::new();
        for count in ["1", "7", "30", "200", "100000"] {
            for m in bulks(&cmd(&mut c, &["SPOP", key, count])) {
                assert!(popped.insert(m), "{key}: popped twice");
            }
            let left = members_of(&mut c, key);
            assert!(left.iter().all(|m| !popped.contains(m)));
            assert_eq!(left.len() + popped.len(), all.len());
        }
        assert_eq!(popped, all);
        assert_eq!(cmd(&mut c, &["EXISTS", key]), b":0\r\n");
    }
    cmd(&mut c, &["SADD", "one", "x"]);
    assert_eq!(cmd(&mut c, &["SPOP", "one"]), b"$1\r\nx\r\n");
    assert_eq!(cmd(&mut c, &["EXISTS", "one"]), b":0\r\n");
    assert_eq!(cmd(&mut c, &["SPOP", "one"]), b"$-1\r\n");
    assert_eq!(cmd(&mut c, &["SRANDMEMBER", "one"]), b"$-1\r\n");
}

#[test]
fn store_commands_overwrite_and_delete() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    cmd(&mut c, &["SADD", "a", "1", "2", "x"]);
    cmd(&mut c, &["SADD", "b", "2", "x", "y"]);
    cmd(&mut c, &["SET", "dst", "string", "EX", "100"]);
    assert_eq!(cmd(&mut c, &["SINTERSTORE", "dst", "a", "b"]), b":2\r\n");
    assert_eq!(cmd(&mut c, &["TYPE", "dst"]), b"+set\r\n");
    assert_eq!(
        cmd(&mut c, &["TTL", "dst"]),
        b":-1\r\n",
        "the TTL goes with the old value"
    );
    assert_eq!(
        members_of(&mut c, "dst"),
        [b"2".to_vec(), b"x".to_vec()].into()
    );
    // An all-integer intersection is stored as an intset.
    cmd(&mut c, &["SADD", "c", "2", "1"]);
    cmd(&mut c, &["SINTERSTORE", "ints", "a", "c"]);
    assert_eq!(encoding(&mut c, "ints"), "intset");
    // Empty results delete the destination, whatever it held.
    assert_eq!(cmd(&mut c, &["SDIFFSTORE", "dst", "a", "a"]), b":0\r\n");
    assert_eq!(cmd(&mut c, &["EXISTS", "dst"]), b":0\r\n");
    cmd(&mut c, &["SET", "dst", "v"]);
    assert_eq!(
        cmd(&mut c, &["SINTERSTORE", "dst", "a", "nokey"]),
        b":0\r\n"
    );
    assert_eq!(cmd(&mut c, &["EXISTS", "dst"]), b":0\r\n");
    // A source may be the destination.
    assert_eq!(cmd(&mut c, &["SUNIONSTORE", "a", "a", "b"]), b":4\r\n");
    assert_eq!(cmd(&mut c, &["SCARD", "a"]), b":4\r\n");
    assert_eq!(cmd(&mut c, &["SINTERSTORE", "b", "b", "a", "b"]), b":3\r\n");
    // RESP3: set replies.
    cmd(&mut c, &["HELLO", "3"]);
    assert!(cmd(&mut c, &["SMEMBERS", "a"]).starts_with(b"~4\r\n"));
    assert!(cmd(&mut c, &["SINTER", "a", "b"]).starts_with(b"~3\r\n"));
    assert_eq!(cmd(&mut c, &["SUNION", "nokey"]), b"~0\r\n");
    assert!(cmd(&mut c, &["SRANDMEMBER", "a", "2"]).starts_with(b"*2\r\n"));
}

#[test]
fn sscan_returns_every_member_while_the_set_changes() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    let stable: Vec<String> = (0..3000).map(|i| format!("stable:{i}")).collect();
    for chunk in stable.chunks(500) {
        let mut a = vec!["SADD", "big"];
        a.extend(chunk.iter().map(String::as_str));
        cmd(&mut c, &a);
    }
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let r = cmd(&mut c, &["SSCAN", "big", &cursor, "COUNT", "20"]);
        let (_, parts) = split_aggregate(&r).expect("scan reply");
        seen.extend(bulks(&parts[1]));
        cursor = String::from_utf8(bulk_body(&parts[0])).unwrap();
        // Grow the set under the scan so its table resizes.
        let extra: Vec<String> = (0..30).map(|i| format!("extra:{round}:{i}")).collect();
        let mut a = vec!["SADD", "big"];
        a.extend(extra.iter().map(String::as_str));
        cmd(&mut c, &a);
        round += 1;
        if cursor == "0" {
            break;
        }
    }
    let missing = stable
        .iter()
        .filter(|m| !seen.contains(m.as_bytes()))
        .count();
    assert_eq!(missing, 0);
}
