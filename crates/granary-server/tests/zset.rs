//! Sorted sets against redis-server 7.0.15: seeded random command
//! sequences sent to both, raw replies compared byte for byte in RESP2 and
//! RESP3, plus targeted checks of what the random walk cannot compare
//! (random replies, ZSCAN over the hashtable encoding, 7.2+ additions).
//!
//! 7.0 vs 7.4: 7.0 prints doubles with %.17g and 7.4 shortest round-trip,
//! so the random scores are integers, halves and quarters (printed the same
//! by both); ZRANK/ZREVRANK WITHSCORE (7.2) is checked against fixed bytes.

mod common;

use common::{show, show_cmd, split_aggregate, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: &[&str] = &["z0", "z1", "z2", "z3", "str"];
/// Keys that only ever get score 0, for the lex commands (whose result
/// Redis leaves unspecified when scores differ).
const LEX_KEYS: &[&str] = &["lex0", "lex1"];

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.gen_range(0..xs.len())]
    }

    fn key(&mut self) -> Vec<u8> {
        self.pick(KEYS).as_bytes().to_vec()
    }

    fn lex_key(&mut self) -> Vec<u8> {
        if self.rng.gen_bool(0.05) {
            return b"lexstr".to_vec(); // a string, never touched otherwise
        }
        self.pick(LEX_KEYS).as_bytes().to_vec()
    }

    /// Members: mostly short, sometimes past zset-max-listpack-value (64).
    fn member(&mut self) -> Vec<u8> {
        let n = self.rng.gen_range(0..320);
        if self.rng.gen_bool(0.03) {
            return format!("long{n}-{}", "x".repeat(70)).into_bytes();
        }
        format!("m{n}").into_bytes()
    }

    fn score(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..20) {
            0 => self.pick(&["inf", "-inf", "+inf"]).to_string(),
            1 => self
                .pick(&["abc", "nan", "", " 1", "1e400", "0x10"])
                .to_string(),
            2 => format!("{}.5", self.rng.gen_range(-10..10)),
            3 => format!("{}.25", self.rng.gen_range(-10..10)),
            _ => self.rng.gen_range(-30..30).to_string(),
        }
        .into_bytes()
    }

    fn score_bound(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..12) {
            0 => self
                .pick(&["-inf", "+inf", "(-inf", "(+inf", "inf"])
                .to_string(),
            1 => self.pick(&["x", "(", "(x", "nan", ""]).to_string(),
            2..=4 => format!("({}", self.rng.gen_range(-30..30)),
            _ => self.rng.gen_range(-30..30).to_string(),
        }
        .into_bytes()
    }

    fn lex_bound(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["-", "+", "x", "", "+x"]).as_bytes().to_vec(),
            _ => {
                let open = if self.rng.gen_bool(0.5) { "(" } else { "[" };
                let m = self.member();
                [open.as_bytes(), &m].concat()
            }
        }
    }

    fn index(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0 => b"x".to_vec(),
            1 => self.rng.gen_range(-400..400).to_string().into_bytes(),
            _ => self.rng.gen_range(-12..12).to_string().into_bytes(),
        }
    }

    fn maybe(&mut self, p: f64, words: &[&str]) -> Vec<Vec<u8>> {
        if self.rng.gen_bool(p) {
            words.iter().map(|w| w.as_bytes().to_vec()).collect()
        } else {
            vec![]
        }
    }

    fn limit(&mut self) -> Vec<Vec<u8>> {
        if !self.rng.gen_bool(0.3) {
            return vec![];
        }
        let off = self.rng.gen_range(-1..6).to_string();
        let cnt = self.rng.gen_range(-1..6).to_string();
        vec![b"LIMIT".to_vec(), off.into_bytes(), cnt.into_bytes()]
    }

    fn keys(&mut self, lex: bool) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(1..4);
        let mut v = vec![n.to_string().into_bytes()];
        for _ in 0..n {
            v.push(if lex { self.lex_key() } else { self.key() });
        }
        v
    }

    /// Many adds: sets grow past zset-max-listpack-entries (128).
    fn zadd(&mut self, key: Vec<u8>, lex: bool) -> Vec<Vec<u8>> {
        let mut c = vec![b"ZADD".to_vec(), key];
        for f in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
            if self.rng.gen_bool(0.07) {
                c.push(f.into());
            }
        }
        let n = if self.rng.gen_bool(0.2) {
            self.rng.gen_range(1..60)
        } else {
            1
        };
        for _ in 0..n {
            c.push(if lex { b"0".to_vec() } else { self.score() });
            c.push(self.member());
        }
        c
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        let b = |s: &str| s.as_bytes().to_vec();
        match self.rng.gen_range(0..44) {
            0..=7 => {
                let k = self.key();
                self.zadd(k, false)
            }
            8..=9 => {
                let k = self.lex_key();
                self.zadd(k, true)
            }
            10 => vec![b("ZINCRBY"), self.key(), self.score(), self.member()],
            11 => {
                let mut c = vec![b("ZREM"), self.key()];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.member());
                }
                c
            }
            12 => vec![b("ZCARD"), self.key()],
            13 => vec![b("ZSCORE"), self.key(), self.member()],
            14 => vec![b("ZMSCORE"), self.key(), self.member(), self.member()],
            15 => vec![
                b("ZCOUNT"),
                self.key(),
                self.score_bound(),
                self.score_bound(),
            ],
            16 => vec![
                b("ZLEXCOUNT"),
                self.lex_key(),
                self.lex_bound(),
                self.lex_bound(),
            ],
            17 => vec![
                b(self.pick(&["ZRANK", "ZREVRANK"])),
                self.key(),
                self.member(),
            ],
            18..=19 => {
                let mut c = vec![b("ZRANGE"), self.key(), self.index(), self.index()];
                c.extend(self.maybe(0.2, &["REV"]));
                c.extend(self.maybe(0.4, &["WITHSCORES"]));
                c.extend(self.maybe(0.05, &["LIMIT", "0", "-1"]));
                c
            }
            20 => {
                let mut c = vec![
                    b("ZRANGE"),
                    self.key(),
                    self.score_bound(),
                    self.score_bound(),
                ];
                c.push(b("BYSCORE"));
                c.extend(self.maybe(0.4, &["REV"]));
                c.extend(self.maybe(0.4, &["WITHSCORES"]));
                c.extend(self.limit());
                c
            }
            21 => {
                let mut c = vec![
                    b("ZRANGE"),
                    self.lex_key(),
                    self.lex_bound(),
                    self.lex_bound(),
                ];
                c.push(b("BYLEX"));
                c.extend(self.maybe(0.4, &["REV"]));
                c.extend(self.maybe(0.05, &["WITHSCORES"]));
                c.extend(self.limit());
                c
            }
            22 => {
                let mut c = vec![b("ZREVRANGE"), self.key(), self.index(), self.index()];
                c.extend(self.maybe(0.4, &["WITHSCORES"]));
                c
            }
            23 => {
                let name = self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
                let mut c = vec![b(name), self.key(), self.score_bound(), self.score_bound()];
                c.extend(self.maybe(0.4, &["WITHSCORES"]));
                c.extend(self.limit());
                c
            }
            24 => {
                let name = self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]);
                let mut c = vec![b(name), self.lex_key(), self.lex_bound(), self.lex_bound()];
                c.extend(self.limit());
                c
            }
            25 => {
                let mut c = vec![b("ZRANGESTORE"), self.key(), self.key()];
                if self.rng.gen_bool(0.5) {
                    c.push(self.index());
                    c.push(self.index());
                } else {
                    c.push(self.score_bound());
                    c.push(self.score_bound());
                    c.push(b("BYSCORE"));
                    c.extend(self.limit());
                }
                c.extend(self.maybe(0.3, &["REV"]));
                c
            }
            26 => vec![b("ZREMRANGEBYRANK"), self.key(), self.index(), self.index()],
            27 => vec![
                b("ZREMRANGEBYSCORE"),
                self.key(),
                self.score_bound(),
                self.score_bound(),
            ],
            28 => vec![
                b("ZREMRANGEBYLEX"),
                self.lex_key(),
                self.lex_bound(),
                self.lex_bound(),
            ],
            29 => {
                let mut c = vec![b(self.pick(&["ZPOPMIN", "ZPOPMAX"])), self.key()];
                if self.rng.gen_bool(0.6) {
                    c.push(b(self.pick(&["0", "1", "3", "-1", "x", "500"])));
                }
                c
            }
            30 => {
                let mut c = vec![b("ZMPOP")];
                c.extend(self.keys(false));
                c.push(b(self.pick(&["MIN", "MAX", "mid"])));
                c.extend(self.maybe(0.5, &["COUNT", "2"]));
                c
            }
            31..=33 => {
                let name = self.pick(&[
                    "ZUNION",
                    "ZINTER",
                    "ZDIFF",
                    "ZUNIONSTORE",
                    "ZINTERSTORE",
                    "ZDIFFSTORE",
                ]);
                let store = name.ends_with("STORE");
                let mut c = vec![b(name)];
                if store {
                    c.push(self.key());
                }
                let keys = self.keys(false);
                let n = keys.len() - 1;
                c.extend(keys);
                if !name.starts_with("ZDIFF") && self.rng.gen_bool(0.3) {
                    c.push(b("WEIGHTS"));
                    for _ in 0..n {
                        c.push(b(self.pick(&["1", "2", "0", "-1", "0.5", "inf", "x"])));
                    }
                }
                if !name.starts_with("ZDIFF") && self.rng.gen_bool(0.3) {
                    c.push(b("AGGREGATE"));
                    c.push(b(self.pick(&["SUM", "MIN", "MAX", "AVG"])));
                }
                if !store {
                    c.extend(self.maybe(0.5, &["WITHSCORES"]));
                }
                c
            }
            34 => {
                let mut c = vec![b("ZINTERCARD")];
                c.extend(self.keys(false));
                if self.rng.gen_bool(0.4) {
                    c.push(b("LIMIT"));
                    c.push(b(self.pick(&["0", "1", "3", "-1", "x"])));
                }
                c
            }
            35 => {
                // Only the deterministic forms: zero, the whole set, errors.
                let mut c = vec![b("ZRANDMEMBER"), self.key()];
                c.push(b(self.pick(&["0", "1000", "x", "-9223372036854775808"])));
                c.extend(self.maybe(0.4, &["WITHSCORES"]));
                c
            }
            36 => vec![b("OBJECT"), b("ENCODING"), self.key()],
            37 => vec![b("SET"), b("str"), b("v")],
            38 => vec![b("DEL"), self.key()],
            39 => vec![b("ZSCAN"), self.key(), b("0"), b("COUNT"), b("1000")],
            40 => vec![
                b("ZADD"),
                self.key(),
                b(self.pick(&["NX", "GT", "XX", "INCR"])),
                b(self.pick(&["XX", "LT", "NX", "GT"])),
                b("1"),
                b("a"),
            ],
            41 => vec![
                b("ZADD"),
                self.key(),
                b("INCR"),
                b("1"),
                b("a"),
                b("2"),
                b("b"),
            ],
            42 => vec![b("ZADD"), self.key(), b(self.pick(&["1", "1 2", "NX"]))],
            _ => vec![b("TYPE"), self.key()],
        }
    }
}

fn conns(g: &ServerProc, r: &ServerProc, resp3: bool) -> (RawConn, RawConn) {
    let (mut a, mut b) = (g.raw(), r.raw());
    if resp3 {
        a.cmd(&[b"HELLO", b"3"]);
        b.cmd(&[b"HELLO", b"3"]);
    }
    (a, b)
}

fn as_slices(c: &[Vec<u8>]) -> Vec<&[u8]> {
    c.iter().map(|a| a.as_slice()).collect()
}

/// ZSCAN of a hashtable-encoded set returns members in hash order, which
/// differs: a ZSCAN whose reply differs is compared as a set of pairs.
fn same_scan(a: &[u8], b: &[u8]) -> bool {
    let pairs = |r: &[u8]| -> Option<Vec<Vec<u8>>> {
        let (_, parts) = split_aggregate(r)?;
        let (_, items) = split_aggregate(parts.get(1)?)?;
        let mut v: Vec<Vec<u8>> = items.chunks(2).map(|c| c.concat()).collect();
        v.sort();
        Some(v)
    };
    pairs(a).is_some() && pairs(a) == pairs(b)
}

fn same_elements(a: &[u8], b: &[u8], chunk: usize) -> bool {
    let elems = |r: &[u8]| -> Option<Vec<Vec<u8>>> {
        let (head, items) = split_aggregate(r)?;
        let mut v: Vec<Vec<u8>> = items.chunks(chunk).map(|c| c.concat()).collect();
        v.sort();
        v.push(head);
        Some(v)
    };
    elems(a).is_some() && elems(a) == elems(b)
}

/// Runs one sequence; returns how many keys ended skiplist-encoded (the
/// walk must cross the listpack thresholds to test the conversion).
fn run_differential(seed: u64, steps: usize, resp3: bool) -> usize {
    run_with(seed, steps, resp3, &[])
}

/// `config`: CONFIG SET pairs applied to both servers first.
fn run_with(seed: u64, steps: usize, resp3: bool, config: &[(&str, &str)]) -> usize {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = conns(&granary, &redis, resp3);
    for (name, value) in config {
        let args: &[&[u8]] = &[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()];
        assert_eq!(g.cmd(args), r.cmd(args));
    }
    g.cmd(&[b"SET", b"lexstr", b"v"]);
    r.cmd(&[b"SET", b"lexstr", b"v"]);
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut history = Vec::with_capacity(steps);
    for step in 0..steps {
        let cmd = gen.command();
        history.push(show_cmd(&cmd));
        let args = as_slices(&cmd);
        let (ours, theirs) = (g.cmd(&args), r.cmd(&args));
        if ours != theirs && args[0] == b"ZSCAN" && same_scan(&ours, &theirs) {
            continue;
        }
        // ZRANDMEMBER of the whole set: the order is Redis's own.
        let chunk = if !resp3 && args.len() == 4 { 2 } else { 1 };
        if ours != theirs && args[0] == b"ZRANDMEMBER" && same_elements(&ours, &theirs, chunk) {
            continue;
        }
        if ours != theirs {
            // The state that differs may come from far back: the whole run
            // goes to a file.
            let path = std::env::temp_dir().join(format!("zset-seed-{seed}-resp3-{resp3}.txt"));
            let _ = std::fs::write(&path, history.join("\n"));
            assert_eq!(
                show(&ours),
                show(&theirs),
                "seed {seed} step {step} resp3 {resp3}: {} (commands so far in {})",
                show_cmd(&cmd),
                path.display()
            );
        }
    }
    // The final state, whole, including the encodings.
    let mut skiplists = 0;
    for k in KEYS.iter().chain(LEX_KEYS) {
        for c in [
            vec!["ZRANGE", k, "0", "-1", "WITHSCORES"],
            vec!["OBJECT", "ENCODING", k],
        ] {
            let args: Vec<&[u8]> = c.iter().map(|s| s.as_bytes()).collect();
            let ours = g.cmd(&args);
            assert_eq!(show(&ours), show(&r.cmd(&args)), "final {c:?}");
            skiplists += usize::from(ours.ends_with(b"skiplist\r\n"));
        }
    }
    skiplists
}

/// The walks above use seeds `base + i`: base 0 in the suite (seeds 1..=4
/// and so on, as before), a fresh base with GRANARY_RANDOM_SEEDS; replay a
/// failing run with `ZSET_SEED=<base>`.
fn seed_base() -> u64 {
    common::seed("ZSET_SEED", 0)
}

#[test]
fn differential_resp2() {
    let base = seed_base();
    let skiplists: usize = (1..=4)
        .map(|i| run_differential(base.wrapping_add(i), 2500, false))
        .sum();
    assert!(skiplists > 0, "no set grew past the listpack thresholds");
}

#[test]
fn differential_resp3() {
    let base = seed_base();
    let skiplists: usize = (11..=14)
        .map(|i| run_differential(base.wrapping_add(i), 2500, true))
        .sum();
    assert!(skiplists > 0, "no set grew past the listpack thresholds");
}

/// Small thresholds: most sets convert, so every command meets both encodings.
#[test]
fn differential_small_thresholds() {
    let config = [
        ("zset-max-listpack-entries", "6"),
        ("zset-max-listpack-value", "3"),
    ];
    let base = seed_base();
    let skiplists: usize = (21..=24)
        .map(|i| run_with(base.wrapping_add(i), 2000, i % 2 == 0, &config))
        .sum();
    assert!(skiplists > 0, "no set converted");
}

fn cmd(c: &mut RawConn, s: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = s.split(' ').map(|a| a.as_bytes()).collect();
    c.cmd(&args)
}

/// Fixed replies that differ from 7.0 on purpose (7.2+/7.4 behaviour).
#[test]
fn redis_7_4_additions() {
    let granary = ServerProc::granary(&[]);
    let mut g = granary.raw();
    cmd(&mut g, "ZADD z 1.1 a 2 b");
    assert_eq!(
        cmd(&mut g, "ZRANGE z 0 0 WITHSCORES"),
        b"*2\r\n$1\r\na\r\n$3\r\n1.1\r\n"
    );
    assert_eq!(
        cmd(&mut g, "ZRANK z b WITHSCORE"),
        b"*2\r\n:1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        cmd(&mut g, "ZREVRANK z a WITHSCORE"),
        b"*2\r\n:1\r\n$3\r\n1.1\r\n"
    );
    assert_eq!(cmd(&mut g, "ZRANK z nope WITHSCORE"), b"*-1\r\n");
    assert_eq!(cmd(&mut g, "ZRANK nokey a WITHSCORE"), b"*-1\r\n");
    assert_eq!(
        cmd(&mut g, "ZRANK z a WITHSCOREZ"),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(
        cmd(&mut g, "ZRANK z a WITHSCORE x"),
        b"-ERR wrong number of arguments for 'zrank' command\r\n"
    );
    assert_eq!(
        cmd(&mut g, "ZSCAN z 0"),
        b"*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$3\r\n1.1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    cmd(&mut g, "HELLO 3");
    assert_eq!(cmd(&mut g, "ZRANK z b WITHSCORE"), b"*2\r\n:1\r\n,2\r\n");
    assert_eq!(cmd(&mut g, "ZRANK z nope WITHSCORE"), b"_\r\n");
    assert_eq!(cmd(&mut g, "ZINCRBY z 0.1 a"), b",1.2000000000000002\r\n");
    assert_eq!(cmd(&mut g, "ZADD z INCR inf a"), b",inf\r\n");
    assert_eq!(
        cmd(&mut g, "ZADD z INCR -inf a"),
        b"-ERR resulting score is not a number (NaN)\r\n"
    );
}

/// ZSCAN over the hashtable encoding: every member exactly as stored, over
/// a full cursor walk with small COUNTs.
#[test]
fn zscan_walks_the_whole_skiplist() {
    let granary = ServerProc::granary(&[]);
    let mut g = granary.raw();
    for i in 0..1000 {
        let (s, m) = (i.to_string(), format!("m{i}"));
        g.cmd(&[b"ZADD", b"z", s.as_bytes(), m.as_bytes()]);
    }
    assert_eq!(cmd(&mut g, "OBJECT ENCODING z"), b"$8\r\nskiplist\r\n");
    let mut cursor = b"0".to_vec();
    let mut seen = std::collections::HashSet::new();
    loop {
        let reply = g.cmd(&[b"ZSCAN", b"z", &cursor, b"COUNT", b"7"]);
        let (_, parts) = split_aggregate(&reply).expect("array");
        let (_, items) = split_aggregate(&parts[1]).expect("items");
        for pair in items.chunks(2) {
            let m = String::from_utf8_lossy(&pair[0]).to_string();
            let s = String::from_utf8_lossy(&pair[1]).to_string();
            let i: usize = m.trim_end().rsplit('m').next().unwrap().parse().unwrap();
            assert!(s.contains(&format!("\r\n{i}\r\n")), "{m} {s}");
            seen.insert(i);
        }
        let c = &parts[0];
        cursor = c[c.iter().position(|&b| b == b'\n').unwrap() + 1..c.len() - 2].to_vec();
        if cursor == b"0" {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
}

/// ZRANDMEMBER: distinct members for a positive count, repeats allowed
/// for a negative one, always members of the set.
#[test]
fn zrandmember_draws_members() {
    let granary = ServerProc::granary(&[]);
    let mut g = granary.raw();
    for n in [10, 300] {
        cmd(&mut g, "DEL z");
        for i in 0..n {
            let (s, m) = (i.to_string(), format!("m{i}"));
            g.cmd(&[b"ZADD", b"z", s.as_bytes(), m.as_bytes()]);
        }
        let members = |reply: &[u8]| -> Vec<String> {
            let (_, items) = split_aggregate(reply).expect("array");
            items
                .iter()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .collect()
        };
        let distinct = members(&cmd(&mut g, "ZRANDMEMBER z 5"));
        assert_eq!(distinct.len(), 5);
        let set: std::collections::HashSet<_> = distinct.iter().collect();
        assert_eq!(set.len(), 5, "{distinct:?}");
        let repeated = members(&cmd(&mut g, "ZRANDMEMBER z -50"));
        assert_eq!(repeated.len(), 50);
        assert!(repeated.iter().all(|m| m.contains("\r\nm")));
        let with = members(&cmd(&mut g, "ZRANDMEMBER z -3 WITHSCORES"));
        assert_eq!(with.len(), 6);
        let one = cmd(&mut g, "ZRANDMEMBER z");
        assert!(one.starts_with(b"$") && one.windows(1).any(|w| w == b"m"));
    }
}

/// ZUNION & co take plain sets too (every member scored 1). Skipped while
/// Granary has no SADD (the set family is developed separately).
#[test]
fn set_algebra_accepts_plain_sets() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = conns(&granary, &redis, false);
    if cmd(&mut g, "SADD probe x").starts_with(b"-ERR unknown command") {
        return;
    }
    let mut rng = StdRng::seed_from_u64(99);
    for step in 0..600 {
        let k = format!("{}{}", ["s", "z"][rng.gen_range(0..2)], rng.gen_range(0..3));
        let m = format!("{}", rng.gen_range(0..40));
        let line = match rng.gen_range(0..6) {
            0 | 1 => format!("SADD {k} {m}"),
            2 | 3 => format!("ZADD {k} {} {m}", rng.gen_range(-5..5)),
            _ => {
                let op = ["ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD"][rng.gen_range(0..4)];
                let keys = ["s0 z0", "z1 s1", "s0 s1 z2", "s2 z0 z1"][rng.gen_range(0..4)];
                let n = keys.split(' ').count();
                let tail = match op {
                    "ZINTERCARD" => "",
                    "ZDIFF" => " WITHSCORES",
                    _ => " AGGREGATE MAX WITHSCORES",
                };
                format!("{op} {n} {keys}{tail}")
            }
        };
        let (ours, theirs) = (cmd(&mut g, &line), cmd(&mut r, &line));
        assert_eq!(show(&ours), show(&theirs), "step {step}: {line}");
    }
}

/// Waits until INFO reports `n` blocked clients.
fn wait_blocked(c: &mut RawConn, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&cmd(c, "INFO clients")).contains(&want) {
        assert!(std::time::Instant::now() < deadline, "never got {want}");
        std::thread::yield_now();
    }
}

/// BZPOPMIN/BZPOPMAX/BZMPOP: served at once when there is something to
/// pop, otherwise woken by a write, first blocked first served; a timeout
/// replies a null array.
#[test]
fn blocking_pops() {
    let granary = ServerProc::granary(&[]);
    let mut ctl = granary.raw();
    let (mut a, mut b) = (granary.raw(), granary.raw());
    assert_eq!(cmd(&mut a, "BZPOPMIN nokey 0.05"), b"*-1\r\n");
    a.send(&common::encode(&[b"BZPOPMIN", b"k1", b"k2", b"0"]));
    wait_blocked(&mut ctl, 1);
    b.send(&common::encode(&[
        b"BZMPOP", b"0", b"1", b"k2", b"MAX", b"COUNT", b"5",
    ]));
    wait_blocked(&mut ctl, 2);
    // One member: the first blocked client gets it, the second waits on.
    assert_eq!(cmd(&mut ctl, "ZADD k2 7 x"), b":1\r\n");
    assert_eq!(
        a.read_reply().unwrap(),
        b"*3\r\n$2\r\nk2\r\n$1\r\nx\r\n$1\r\n7\r\n"
    );
    wait_blocked(&mut ctl, 1);
    cmd(&mut ctl, "ZADD src 1 p 2 q");
    assert_eq!(cmd(&mut ctl, "ZUNIONSTORE k2 1 src"), b":2\r\n");
    assert_eq!(
        b.read_reply().unwrap(),
        b"*2\r\n$2\r\nk2\r\n*2\r\n*2\r\n$1\r\nq\r\n$1\r\n2\r\n*2\r\n$1\r\np\r\n$1\r\n1\r\n"
    );
    wait_blocked(&mut ctl, 0);
    assert_eq!(cmd(&mut ctl, "EXISTS k2"), b":0\r\n");
    // Already there: no blocking.
    assert_eq!(
        cmd(&mut a, "BZPOPMAX src 0"),
        b"*3\r\n$3\r\nsrc\r\n$1\r\nq\r\n$1\r\n2\r\n"
    );
}

/// Lex ranges over members of different scores: Redis calls the result
/// unspecified, but a listpack-encoded set answers deterministically (a
/// walk from one end) and clients see that answer, so Granary gives the
/// same one. Random small sets with mixed scores, random bounds, every
/// lex command in both directions.
#[test]
fn lex_ranges_over_mixed_scores_match_listpack_walk() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = (granary.raw(), redis.raw());
    let mut rng = StdRng::seed_from_u64(7);
    let letters = ["a", "b", "c", "m", "x", "y", "z", "1", "ab"];
    let bound = |rng: &mut StdRng| -> String {
        match rng.gen_range(0..10) {
            0 => "-".into(),
            1 => "+".into(),
            n => format!(
                "{}{}",
                if n % 2 == 0 { "[" } else { "(" },
                letters[rng.gen_range(0..letters.len())]
            ),
        }
    };
    for round in 0..400 {
        let mut zadd = vec!["ZADD".to_string(), "mixed".into()];
        for _ in 0..rng.gen_range(1..8) {
            zadd.push(rng.gen_range(0..4).to_string());
            zadd.push(letters[rng.gen_range(0..letters.len())].into());
        }
        let (lo, hi) = (bound(&mut rng), bound(&mut rng));
        let commands = [
            zadd.join(" "),
            format!("ZRANGEBYLEX mixed {lo} {hi}"),
            format!("ZREVRANGEBYLEX mixed {hi} {lo}"),
            format!("ZREVRANGEBYLEX mixed {hi} {lo} LIMIT 1 2"),
            format!("ZRANGE mixed {lo} {hi} BYLEX LIMIT 1 1"),
            format!("ZLEXCOUNT mixed {lo} {hi}"),
            format!("ZREMRANGEBYLEX mixed {lo} {hi}"),
            "ZRANGE mixed 0 -1 WITHSCORES".into(),
        ];
        for c in &commands {
            assert_eq!(
                show(&cmd(&mut g, c)),
                show(&cmd(&mut r, c)),
                "round {round}: {c}"
            );
        }
        if round % 10 == 9 {
            cmd(&mut g, "DEL mixed");
            cmd(&mut r, "DEL mixed");
        }
    }
}

/// Regressions found by fresh ZSET_SEEDs: a later NaN weight product in
/// ZINTER (0 * -inf) makes the SUM 0 and leaves MIN/MAX alone (ZSET_SEED=
/// 1795387419898349336); ZRANGESTORE fills its destination as a listpack
/// first, so members added before it converts lose a negative zero's sign
/// (ZSET_SEED=1795366168315280356). Both compared with redis-server.
#[test]
fn weights_and_negative_zero_like_redis() {
    let long = format!("long-{}", "x".repeat(70));
    let setup = [
        "ZADD inf -inf m 1 n 2 o".to_string(),
        // A skiplist (long member) holding -0 scores.
        format!("ZADD src -1 a -2 b -3 c 4 d -5 {long}"),
        "ZUNIONSTORE neg 1 src WEIGHTS 0".to_string(),
    ];
    let checks = [
        "ZINTER 2 inf inf WEIGHTS 0.5 0 WITHSCORES",
        "ZINTER 2 inf inf WEIGHTS 0.5 0 AGGREGATE MIN WITHSCORES",
        "ZINTER 2 inf inf WEIGHTS 0.5 0 AGGREGATE MAX WITHSCORES",
        "ZINTER 2 inf inf WEIGHTS 0 1 WITHSCORES",
        "ZUNION 2 inf inf WEIGHTS 0.5 0 WITHSCORES",
        "ZRANGE neg 0 -1 WITHSCORES",
        "ZRANGESTORE d1 neg 5 -5 BYSCORE REV",
        "ZRANGE d1 0 -1 WITHSCORES",
        "ZRANGESTORE d2 neg -5 5 BYSCORE",
        "ZRANGE d2 0 -1 WITHSCORES",
        "ZRANGESTORE d3 neg 0 -1 REV",
        "ZRANGE d3 0 -1 WITHSCORES",
        "ZRANGESTORE d4 neg - + BYLEX REV",
        "ZRANGE d4 0 -1 WITHSCORES",
        "OBJECT ENCODING d4",
    ];
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    for resp3 in [false, true] {
        let (mut g, mut r) = conns(&granary, &redis, resp3);
        cmd(&mut g, "FLUSHALL");
        cmd(&mut r, "FLUSHALL");
        for line in setup.iter().map(String::as_str).chain(checks) {
            assert_eq!(
                show(&cmd(&mut g, line)),
                show(&cmd(&mut r, line)),
                "resp3 {resp3}: {line}"
            );
        }
    }
}
