//! Differential test: random command sequences sent to Granary and to a real
//! redis-server, raw replies compared byte for byte (error texts included),
//! over RESP2 and RESP3.
//!
//! Reproduce a run with `DIFF_SEED=<seed>`; `DIFF_COMMANDS=<n>` sets the
//! number of commands per protocol, `DIFF_FAMILIES=string,keys` restricts
//! the families. Commands Granary does not implement yet (it answers
//! "unknown command") are skipped and listed; a mismatch in an implemented
//! command fails the test with the minimized command sequence.

mod common;

use common::{show, show_cmd, split_aggregate, Kind, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Args = Vec<Vec<u8>>;

/// Commands per protocol when DIFF_COMMANDS is not set.
const DEFAULT_COMMANDS: usize = 15_000;
/// The keyspace is cleared this often, which also bounds the length of a
/// sequence that reproduces a mismatch.
const EPOCH: usize = 150;
/// A command stops being generated after this many mismatches.
const MAX_MISMATCHES: usize = 3;
/// Time spent shrinking one failing sequence, and all of them in a run.
const SHRINK_BUDGET: Duration = Duration::from_secs(4);
const TOTAL_SHRINK_BUDGET: Duration = Duration::from_secs(20);
/// Databases the generator uses (SELECT, MOVE, COPY ... DB).
const DBS: i64 = 4;

/// How two replies are compared.
#[derive(Clone, Copy)]
enum Cmp {
    /// Byte for byte.
    Exact,
    /// An aggregate whose element order is unspecified (KEYS).
    Sorted,
    /// A time reading (TTL and friends): non-negative integers may differ
    /// by this much, because the two servers run the command moments apart.
    Within(i64),
    /// BITCOUNT/BITPOS: Redis 7.2 moved argument checks before the key
    /// lookup, so where 7.0 answers a missing key (:0 / :-1) or WRONGTYPE,
    /// 7.4 (and Granary) reject the bad arguments first. Only that
    /// difference is tolerated.
    ArgsBeforeKey,
}

/// One generated command: name, family (for switching on whole families),
/// relative weight, comparison and argument generator.
struct Def {
    name: &'static str,
    family: &'static str,
    weight: u32,
    cmp: Cmp,
    gen: fn(&mut Gen) -> Args,
}

const fn d(
    name: &'static str,
    family: &'static str,
    weight: u32,
    gen: fn(&mut Gen) -> Args,
) -> Def {
    Def {
        name,
        family,
        weight,
        cmp: Cmp::Exact,
        gen,
    }
}

const fn t(name: &'static str, tolerance: i64, gen: fn(&mut Gen) -> Args) -> Def {
    Def {
        name,
        family: "expire",
        weight: 3,
        cmp: Cmp::Within(tolerance),
        gen,
    }
}

/// The command table. Families land in Granary at different times: every
/// family listed here is generated once Granary knows the command.
static TABLE: &[Def] = &[
    // Strings (t_string.c).
    d("get", "string", 8, |g| cmd("GET", &[g.key()])),
    d("set", "string", 10, gen_set),
    d("setnx", "string", 2, |g| cmd("SETNX", &[g.key(), g.val()])),
    d("setex", "string", 2, |g| {
        cmd("SETEX", &[g.key(), g.rel_secs(), g.val()])
    }),
    d("psetex", "string", 2, |g| {
        cmd("PSETEX", &[g.key(), g.rel_ms(), g.val()])
    }),
    d("getex", "string", 4, gen_getex),
    d("getdel", "string", 2, |g| cmd("GETDEL", &[g.key()])),
    d("getset", "string", 2, |g| {
        cmd("GETSET", &[g.key(), g.val()])
    }),
    d("mget", "string", 3, |g| {
        let keys = g.keys(1, 4);
        cmd("MGET", &keys)
    }),
    d("mset", "string", 3, |g| gen_pairs(g, "MSET")),
    d("msetnx", "string", 2, |g| gen_pairs(g, "MSETNX")),
    d("append", "string", 4, |g| {
        cmd("APPEND", &[g.key(), g.val()])
    }),
    d("strlen", "string", 2, |g| cmd("STRLEN", &[g.key()])),
    d("getrange", "string", 3, |g| {
        cmd("GETRANGE", &[g.key(), g.offset(), g.offset()])
    }),
    d("substr", "string", 1, |g| {
        cmd("SUBSTR", &[g.key(), g.offset(), g.offset()])
    }),
    d("setrange", "string", 3, |g| {
        cmd("SETRANGE", &[g.key(), g.set_offset(), g.val()])
    }),
    d("incr", "string", 3, |g| cmd("INCR", &[g.key()])),
    d("decr", "string", 2, |g| cmd("DECR", &[g.key()])),
    d("incrby", "string", 3, |g| {
        cmd("INCRBY", &[g.key(), g.int()])
    }),
    d("decrby", "string", 2, |g| {
        cmd("DECRBY", &[g.key(), g.int()])
    }),
    d("incrbyfloat", "string", 3, |g| {
        cmd("INCRBYFLOAT", &[g.key(), g.float()])
    }),
    d("lcs", "string", 2, gen_lcs),
    // Bitmaps (bitops.c).
    d("setbit", "bitmap", 4, |g| {
        cmd("SETBIT", &[g.key(), g.bit_offset(), g.bit_value()])
    }),
    d("getbit", "bitmap", 3, |g| {
        cmd("GETBIT", &[g.key(), g.bit_offset()])
    }),
    Def {
        cmp: Cmp::ArgsBeforeKey,
        ..d("bitcount", "bitmap", 3, gen_bitcount)
    },
    Def {
        cmp: Cmp::ArgsBeforeKey,
        ..d("bitpos", "bitmap", 3, gen_bitpos)
    },
    d("bitop", "bitmap", 3, gen_bitop),
    d("bitfield", "bitmap", 4, |g| gen_bitfield(g, "BITFIELD")),
    d("bitfield_ro", "bitmap", 1, |g| {
        gen_bitfield(g, "BITFIELD_RO")
    }),
    // HyperLogLog (hyperloglog.c): replies and, through GET, the exact
    // sparse/dense bytes; SETRANGE and APPEND above corrupt some of them.
    d("pfadd", "hyperloglog", 5, gen_pfadd),
    d("pfcount", "hyperloglog", 3, |g| {
        let keys = g.keys(1, 3);
        cmd("PFCOUNT", &keys)
    }),
    d("pfmerge", "hyperloglog", 2, |g| {
        let keys = g.keys(1, 3);
        cmd("PFMERGE", &keys)
    }),
    d("pfdebug", "hyperloglog", 1, |g| {
        let sub = g.pick(&["ENCODING", "decode", "TODENSE", "GETREG", "bogus"]);
        cmd("PFDEBUG", &[sub.into(), g.key()])
    }),
    // Keyspace (db.c).
    d("del", "keys", 3, |g| {
        let keys = g.keys(1, 3);
        cmd("DEL", &keys)
    }),
    d("unlink", "keys", 2, |g| {
        let keys = g.keys(1, 3);
        cmd("UNLINK", &keys)
    }),
    d("exists", "keys", 3, |g| {
        let keys = g.keys(1, 4);
        cmd("EXISTS", &keys)
    }),
    d("type", "keys", 3, |g| cmd("TYPE", &[g.key()])),
    d("rename", "keys", 2, |g| cmd("RENAME", &[g.key(), g.key()])),
    d("renamenx", "keys", 2, |g| {
        cmd("RENAMENX", &[g.key(), g.key()])
    }),
    d("copy", "keys", 2, gen_copy),
    d("touch", "keys", 1, |g| {
        let keys = g.keys(1, 3);
        cmd("TOUCH", &keys)
    }),
    d("move", "keys", 2, |g| cmd("MOVE", &[g.key(), g.db()])),
    d("dbsize", "keys", 2, |_| cmd("DBSIZE", &[])),
    d("select", "keys", 2, |g| cmd("SELECT", &[g.db()])),
    d("swapdb", "keys", 1, |g| cmd("SWAPDB", &[g.db(), g.db()])),
    d("flushdb", "server", 1, |g| {
        let mode = g.pick(&["", "ASYNC", "SYNC", "async", "bogus"]);
        match mode {
            "" => cmd("FLUSHDB", &[]),
            m => cmd("FLUSHDB", &[m.into()]),
        }
    }),
    Def {
        cmp: Cmp::Sorted,
        ..d("keys", "keys", 2, gen_keys)
    },
    // Expiry (expire.c).
    d("expire", "expire", 3, |g| {
        gen_expire(g, "EXPIRE", false, false)
    }),
    d("pexpire", "expire", 3, |g| {
        gen_expire(g, "PEXPIRE", true, false)
    }),
    d("expireat", "expire", 3, |g| {
        gen_expire(g, "EXPIREAT", false, true)
    }),
    d("pexpireat", "expire", 3, |g| {
        gen_expire(g, "PEXPIREAT", true, true)
    }),
    t("ttl", 1, |g| cmd("TTL", &[g.key()])),
    t("pttl", 1000, |g| cmd("PTTL", &[g.key()])),
    t("expiretime", 1, |g| cmd("EXPIRETIME", &[g.key()])),
    t("pexpiretime", 1000, |g| cmd("PEXPIRETIME", &[g.key()])),
    d("persist", "expire", 2, |g| cmd("PERSIST", &[g.key()])),
    // Errors that do not belong to a command.
    d("unknown", "errors", 1, gen_unknown),
    // Other types, mostly so that string commands meet WRONGTYPE.
    d("lpush", "list", 2, |g| gen_push(g, "LPUSH")),
    d("rpush", "list", 1, |g| gen_push(g, "RPUSH")),
    d("llen", "list", 1, |g| cmd("LLEN", &[g.key()])),
    d("lrange", "list", 1, |g| {
        cmd("LRANGE", &[g.key(), g.offset(), g.offset()])
    }),
    d("hset", "hash", 2, |g| gen_pairs_for(g, "HSET")),
    d("hget", "hash", 1, |g| cmd("HGET", &[g.key(), g.field()])),
    d("hlen", "hash", 1, |g| cmd("HLEN", &[g.key()])),
    d("sadd", "set", 2, |g| gen_push(g, "SADD")),
    d("scard", "set", 1, |g| cmd("SCARD", &[g.key()])),
    d("sismember", "set", 1, |g| {
        cmd("SISMEMBER", &[g.key(), g.field()])
    }),
    d("zadd", "zset", 2, |g| {
        cmd("ZADD", &[g.key(), g.score(), g.field()])
    }),
    d("zscore", "zset", 1, |g| {
        cmd("ZSCORE", &[g.key(), g.field()])
    }),
    d("zcard", "zset", 1, |g| cmd("ZCARD", &[g.key()])),
];

/// Commands that need no implementation probe (every server answers them).
const NO_PROBE: &[&str] = &["unknown"];

/// Argument generator: the RNG plus what keeps expiry comparisons
/// deterministic.
struct Gen {
    rng: StdRng,
    /// Unix seconds at the start of the run; absolute expiry times are
    /// placed far from every relative one (see `rel_secs`).
    base: i64,
    /// Counter making every relative expiry distinct by 100 s, so NX/XX/
    /// GT/LT comparisons never hinge on the milliseconds between the two
    /// servers.
    seq: i64,
}

/// A small keyspace so commands collide; includes the empty key and binary.
const KEYS: &[&[u8]] = &[
    b"k0",
    b"k1",
    b"k2",
    b"k3",
    b"k4",
    b"k5",
    b"k6",
    b"",
    b"\x00bin\xff\r\n",
    "ключ".as_bytes(),
];

const VALUES: &[&str] = &[
    "",
    "v",
    "hello world",
    "0",
    "1",
    "-1",
    "10",
    "007",
    "-0",
    "+1",
    " 1",
    "1 ",
    "0x10",
    "3.14",
    "1e3",
    "-2.5e-3",
    "inf",
    "-inf",
    "nan",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "123456789012345678901234567890",
    "ohmytext",
    "mynewtext",
    "\r\n",
];

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "5",
    "-7",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "",
    "abc",
    "1.5",
    " 3",
    "3 ",
    "+3",
    "0x1",
    "007",
];

const FLOATS: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "-0.25",
    "0.1",
    "3.0e3",
    "1e-5",
    "5e308",
    "1e308",
    "1.7976931348623157e308",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "abc",
    "",
    " 1",
    "1 ",
    "0x10",
    "1e",
    "-0",
    "10.50",
    "17179869184",
    "3.000000000000000001",
];

/// A command line: its name and arguments.
fn cmd(name: &str, args: &[Vec<u8>]) -> Args {
    let mut v = vec![name.as_bytes().to_vec()];
    v.extend(args.iter().cloned());
    v
}

impl Gen {
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.choose(&mut self.rng).copied().unwrap_or("")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn key(&mut self) -> Vec<u8> {
        KEYS.choose(&mut self.rng)
            .map(|k| k.to_vec())
            .unwrap_or_default()
    }

    fn keys(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn field(&mut self) -> Vec<u8> {
        self.pick(&["f", "g", "h", "", "1"]).into()
    }

    /// A value: mostly from the pool, sometimes random binary or long.
    fn val(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0 => {
                let n = self.rng.gen_range(0..16);
                (0..n).map(|_| self.rng.gen()).collect()
            }
            1 => {
                let n = self.rng.gen_range(30..600);
                let unit = self.pick(&["a", "ab", "xyz", "0"]).as_bytes().to_vec();
                unit.iter().copied().cycle().take(n).collect()
            }
            2 => self.rng.gen_range(-1000i64..1000).to_string().into(),
            _ => self.pick(VALUES).into(),
        }
    }

    fn int(&mut self) -> Vec<u8> {
        if self.chance(0.5) {
            self.rng.gen_range(-50i64..50).to_string().into()
        } else {
            self.pick(INTS).into()
        }
    }

    fn float(&mut self) -> Vec<u8> {
        if self.chance(0.3) {
            format!("{:.3}", self.rng.gen_range(-100.0..100.0)).into()
        } else {
            self.pick(FLOATS).into()
        }
    }

    /// A sorted-set score. Only values that Redis 7.0.15 (the oracle,
    /// "%.17g") and Redis 7.4 (shortest round trip, what Granary follows)
    /// print alike: binary fractions with few digits, infinities, and
    /// invalid scores for the error paths. Other scores are compared
    /// against 7.4's formatting in tests/zset.rs.
    fn score(&mut self) -> Vec<u8> {
        if self.chance(0.5) {
            let quarters = self.rng.gen_range(-4000i64..4000);
            format!("{}", quarters as f64 / 4.0).into()
        } else {
            self.pick(&[
                "0", "-0", "1", "+1", "-1.5", "inf", "-inf", "+inf", "1e3", "nan", "abc", "",
            ])
            .into()
        }
    }

    /// A GETRANGE/LRANGE index, often negative or past the end.
    fn offset(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..6) {
            0 => self
                .pick(&["9223372036854775807", "-9223372036854775808", "x", ""])
                .into(),
            1 => self.rng.gen_range(-700i64..700).to_string().into(),
            _ => self.rng.gen_range(-12i64..12).to_string().into(),
        }
    }

    /// A SETRANGE offset: never one that would make Redis allocate a lot.
    fn set_offset(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..8) {
            0 => self
                .pick(&["-1", "536870912", "536870911", "x", "9223372036854775807"])
                .into(),
            1 => self.rng.gen_range(0i64..2000).to_string().into(),
            _ => self.rng.gen_range(0i64..20).to_string().into(),
        }
    }

    fn db(&mut self) -> Vec<u8> {
        if self.chance(0.1) {
            self.pick(&["-1", "16", "x", "", "1.0", "9223372036854775808"])
                .into()
        } else {
            self.rng.gen_range(0..DBS).to_string().into()
        }
    }

    /// An expiry amount that is invalid or makes the key vanish at once.
    fn bad_or_past_amount(&mut self) -> Vec<u8> {
        self.pick(&[
            "0",
            "-1",
            "-100",
            "x",
            "",
            "1.5",
            "9223372036854775807",
            "9223372036854775",
            "9223372036854776",
            "-9223372036854775808",
            "9223372036854775806",
        ])
        .into()
    }

    /// Relative seconds; every call is at least 100 s away from any other
    /// (and from every absolute time generated), so option checks compare
    /// the same way on both servers.
    fn rel_secs(&mut self) -> Vec<u8> {
        if self.chance(0.1) {
            return self.bad_or_past_amount();
        }
        self.next_rel().to_string().into()
    }

    fn rel_ms(&mut self) -> Vec<u8> {
        if self.chance(0.1) {
            return self.bad_or_past_amount();
        }
        let ms = self.next_rel() * 1000 + self.rng.gen_range(0..1000);
        ms.to_string().into()
    }

    fn next_rel(&mut self) -> i64 {
        self.seq += 1;
        1000 + 100 * self.seq
    }

    /// Absolute Unix seconds: past (if allowed), minutes ahead (before any
    /// relative expiry, and after the end of the run), or far beyond any
    /// relative expiry the run creates.
    fn abs_secs(&mut self, past: bool) -> i64 {
        let b = self.base;
        let future = [b + 300, b + 600, b + 100_000_000, b + 200_000_000];
        let choices = [&[1, b - 100][..], &future[..]].concat();
        let from = if past { &choices[..] } else { &future[..] };
        *from.choose(&mut self.rng).unwrap_or(&b)
    }

    /// An absolute time for EXPIREAT and the like. SET ... EXAT in the past
    /// leaves a dead key that DBSIZE counts until active expiry finds it,
    /// at a moment that differs between servers, so SET passes `past:
    /// false`.
    fn abs_amount(&mut self, ms: bool, past: bool) -> Vec<u8> {
        if past && self.chance(0.1) {
            return self.bad_or_past_amount();
        }
        let s = self.abs_secs(past);
        let v = if ms {
            s * 1000 + self.rng.gen_range(0..1000)
        } else {
            s
        };
        v.to_string().into()
    }
}

fn gen_set(g: &mut Gen) -> Args {
    let mut a = cmd("SET", &[g.key(), g.val()]);
    let n = g.rng.gen_range(0..4);
    for _ in 0..n {
        match g.rng.gen_range(0..11) {
            0 => a.push(b"NX".to_vec()),
            1 => a.push(b"XX".to_vec()),
            2 | 3 => a.push(b"GET".to_vec()),
            4 => a.extend([b"EX".to_vec(), g.rel_secs()]),
            5 => a.extend([b"PX".to_vec(), g.rel_ms()]),
            6 => a.extend([b"EXAT".to_vec(), g.abs_amount(false, false)]),
            7 => a.extend([b"PXAT".to_vec(), g.abs_amount(true, false)]),
            8 => a.push(b"KEEPTTL".to_vec()),
            9 => a.push(
                g.pick(&["ex", "px", "nx", "keepttl", "get", "bogus"])
                    .into(),
            ),
            _ => a.push(g.pick(&["EX", "PX", "EXAT", "PXAT"]).into()),
        }
    }
    a
}

fn gen_getex(g: &mut Gen) -> Args {
    let mut a = cmd("GETEX", &[g.key()]);
    let n = g.rng.gen_range(0..3);
    for _ in 0..n {
        match g.rng.gen_range(0..7) {
            0 => a.extend([b"EX".to_vec(), g.rel_secs()]),
            1 => a.extend([b"PX".to_vec(), g.rel_ms()]),
            2 => a.extend([b"EXAT".to_vec(), g.abs_amount(false, true)]),
            3 => a.extend([b"PXAT".to_vec(), g.abs_amount(true, true)]),
            4 => a.push(b"PERSIST".to_vec()),
            5 => a.push(g.pick(&["persist", "KEEPTTL", "NX", "ex"]).into()),
            _ => a.push(b"EX".to_vec()),
        }
    }
    a
}

fn gen_pairs(g: &mut Gen, name: &str) -> Args {
    let mut a = cmd(name, &[]);
    for _ in 0..g.rng.gen_range(1..4) {
        a.extend([g.key(), g.val()]);
    }
    if g.chance(0.1) {
        a.pop();
    }
    a
}

fn gen_pairs_for(g: &mut Gen, name: &str) -> Args {
    let mut a = cmd(name, &[g.key()]);
    for _ in 0..g.rng.gen_range(1..3) {
        a.extend([g.field(), g.val()]);
    }
    a
}

fn gen_push(g: &mut Gen, name: &str) -> Args {
    let mut a = cmd(name, &[g.key()]);
    for _ in 0..g.rng.gen_range(1..3) {
        a.push(g.field());
    }
    a
}

impl Gen {
    /// A SETBIT/GETBIT offset: small, or invalid, or (reads only) huge;
    /// never one that makes a server allocate much.
    fn bit_offset(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0 => self
                .pick(&["-1", "x", "", "4294967296", "1.5", "#3", "+5", "007"])
                .into(),
            1 => self.rng.gen_range(0..4000).to_string().into(),
            _ => self.rng.gen_range(0..80).to_string().into(),
        }
    }

    fn bit_value(&mut self) -> Vec<u8> {
        if self.chance(0.1) {
            self.pick(&["2", "-1", "x", "", "01", "1.0"]).into()
        } else {
            self.pick(&["0", "1"]).into()
        }
    }

    /// A BITCOUNT/BITPOS range index. Only valid integers: Redis 7.0 looks
    /// the key up before parsing the range and 7.4 after, so with bad
    /// arguments the two answer differently for missing or non-string
    /// keys (tests/bitmap.rs checks 7.4's order).
    fn bit_index(&mut self) -> Vec<u8> {
        self.rng.gen_range(-40i64..40).to_string().into()
    }

    fn bit_unit(&mut self) -> Vec<u8> {
        self.pick(&["BIT", "BYTE", "bit", "byte"]).into()
    }
}

fn gen_bitcount(g: &mut Gen) -> Args {
    let mut a = cmd("BITCOUNT", &[g.key()]);
    if g.chance(0.7) {
        a.extend([g.bit_index(), g.bit_index()]);
        if g.chance(0.5) {
            a.push(g.bit_unit());
        }
    }
    a
}

fn gen_bitpos(g: &mut Gen) -> Args {
    let bit = if g.chance(0.05) {
        g.pick(&["2", "x", "-1"]).into()
    } else {
        g.pick(&["0", "1"]).into()
    };
    let mut a = cmd("BITPOS", &[g.key(), bit]);
    let extra = g.rng.gen_range(0..4);
    for (i, _) in (0..extra).enumerate() {
        a.push(if i < 2 { g.bit_index() } else { g.bit_unit() });
    }
    a
}

fn gen_bitop(g: &mut Gen) -> Args {
    let op = g.pick(&["AND", "OR", "XOR", "NOT", "and", "not", "nand"]);
    let mut a = cmd("BITOP", &[op.into(), g.key()]);
    let keys = g.keys(1, 3);
    a.extend(keys);
    a
}

fn gen_bitfield(g: &mut Gen, name: &str) -> Args {
    let mut a = cmd(name, &[g.key()]);
    for _ in 0..g.rng.gen_range(0..4) {
        let ty = match g.rng.gen_range(0..12) {
            0 => g
                .pick(&["u64", "i65", "i0", "x8", "u", "", "I8"])
                .to_string(),
            1..=5 => format!("i{}", g.rng.gen_range(1..=64)),
            _ => format!("u{}", g.rng.gen_range(1..=63)),
        };
        let offset = match g.rng.gen_range(0..10) {
            0 => g.pick(&["-1", "x", "#-1", "#", "4294967296"]).to_string(),
            1 | 2 => format!("#{}", g.rng.gen_range(0..20)),
            _ => g.rng.gen_range(0..300).to_string(),
        };
        match g.rng.gen_range(0..10) {
            0..=3 => a.extend([b"GET".to_vec(), ty.into(), offset.into()]),
            4 | 5 => a.extend([b"SET".to_vec(), ty.into(), offset.into(), g.int()]),
            6 | 7 => a.extend([b"INCRBY".to_vec(), ty.into(), offset.into(), g.int()]),
            8 => {
                let how = g.pick(&["WRAP", "SAT", "FAIL", "fail", "bogus"]);
                a.extend([b"OVERFLOW".to_vec(), how.into()]);
            }
            _ => a.push(g.pick(&["GET", "SET", "OVERFLOW", "bogus"]).into()),
        }
    }
    a
}

/// PFADD of a few elements, or now and then of hundreds, so that sparse
/// values grow past hll-sparse-max-bytes and turn dense.
fn gen_pfadd(g: &mut Gen) -> Args {
    let mut a = cmd("PFADD", &[g.key()]);
    let n = if g.chance(0.05) {
        g.rng.gen_range(100..800)
    } else {
        g.rng.gen_range(0..5)
    };
    for _ in 0..n {
        let e = if g.chance(0.5) {
            g.val()
        } else {
            format!("e{}", g.rng.gen_range(0..5000)).into_bytes()
        };
        a.push(e);
    }
    a
}

fn gen_lcs(g: &mut Gen) -> Args {
    let mut a = cmd("LCS", &[g.key(), g.key()]);
    for _ in 0..g.rng.gen_range(0..4) {
        match g.rng.gen_range(0..6) {
            0 => a.push(b"LEN".to_vec()),
            1 => a.push(b"IDX".to_vec()),
            2 => a.push(b"WITHMATCHLEN".to_vec()),
            3 => a.extend([b"MINMATCHLEN".to_vec(), g.int()]),
            4 => a.push(g.pick(&["idx", "minmatchlen", "bogus"]).into()),
            _ => a.push(b"MINMATCHLEN".to_vec()),
        }
    }
    a
}

fn gen_copy(g: &mut Gen) -> Args {
    let mut a = cmd("COPY", &[g.key(), g.key()]);
    for _ in 0..g.rng.gen_range(0..3) {
        match g.rng.gen_range(0..4) {
            0 => a.extend([b"DB".to_vec(), g.db()]),
            1 => a.push(b"REPLACE".to_vec()),
            2 => a.push(g.pick(&["db", "replace", "bogus"]).into()),
            _ => a.push(b"DB".to_vec()),
        }
    }
    a
}

fn gen_keys(g: &mut Gen) -> Args {
    let pattern = g.pick(&[
        "*",
        "k*",
        "k?",
        "k[0-3]",
        "k[^0-3]",
        "[^k]*",
        "*\\*",
        "\\k0",
        "",
        "?",
        "*i*",
        "k[",
        "[a-z][0-9]",
    ]);
    cmd("KEYS", &[pattern.into()])
}

/// EXPIRE family: relative or absolute amount plus random NX/XX/GT/LT
/// (sometimes incompatible combinations or junk).
fn gen_expire(g: &mut Gen, name: &str, ms: bool, absolute: bool) -> Args {
    let amount = match (absolute, ms) {
        (true, _) => g.abs_amount(ms, true),
        (false, true) => g.rel_ms(),
        (false, false) => g.rel_secs(),
    };
    let mut a = cmd(name, &[g.key(), amount]);
    for _ in 0..g.rng.gen_range(0..3) {
        a.push(
            g.pick(&["NX", "XX", "GT", "LT", "nx", "gt", "XX", "LT", "bogus"])
                .into(),
        );
    }
    a
}

fn gen_unknown(g: &mut Gen) -> Args {
    // No NUL inside a name: Redis hashes the whole name but compares with
    // strcasecmp, so whether "SET\0" runs SET depends on its random dict
    // seed (two redis-servers disagree with each other).
    let name = g.pick(&["FOOBAR", "getx", "", "x y", "ÿ", "\r\n"]);
    let mut a = cmd(name, &[]);
    if g.chance(0.2) {
        // Past the 128-byte echo limit, in multi-byte characters.
        a[0] = "é".repeat(g.rng.gen_range(60..70)).into_bytes();
    }
    for _ in 0..g.rng.gen_range(0..4) {
        let v = if g.chance(0.2) {
            "ж".repeat(g.rng.gen_range(30..100)).into_bytes()
        } else {
            g.val()
        };
        a.push(v);
    }
    a
}

/// Random case for a command name: Redis is case-insensitive but echoes
/// names in some errors.
fn mix_case(rng: &mut StdRng, name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&c| {
            if rng.gen_bool(0.5) {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// A Granary and a redis-server side by side, with one connection each.
struct Pair {
    granary: ServerProc,
    redis: ServerProc,
    gc: RawConn,
    rc: RawConn,
    resp3: bool,
    /// True when Granary has FLUSHALL, so resets need no restart.
    flushall: bool,
    /// Set after an I/O error: the next reset must restart the servers.
    broken: bool,
}

impl Pair {
    /// `subject` is normally Granary; Redis against itself checks that
    /// the generator is deterministic.
    fn start(resp3: bool, subject: Kind) -> Pair {
        let granary = ServerProc::start(subject, &[]);
        let redis = ServerProc::redis(&[]);
        let (gc, rc) = (granary.raw(), redis.raw());
        let mut p = Pair {
            granary,
            redis,
            gc,
            rc,
            resp3,
            flushall: false,
            broken: false,
        };
        p.connect();
        let (g, r) = p.exec(&[b"FLUSHALL".to_vec()]);
        p.flushall = g == b"+OK\r\n" && r == b"+OK\r\n";
        p
    }

    /// Fresh connections (database 0), switched to RESP3 if asked.
    fn connect(&mut self) {
        self.gc = self.granary.raw();
        self.rc = self.redis.raw();
        if self.resp3 {
            // HELLO's reply names the server and its version: not compared.
            let hello = common::encode(&[b"HELLO", b"3"]);
            for c in [&mut self.gc, &mut self.rc] {
                c.send(&hello);
                let reply = c.read_reply().expect("HELLO reply");
                assert!(reply.starts_with(b"%"), "HELLO 3 failed: {}", show(&reply));
            }
        }
    }

    /// Empties both servers and reconnects.
    fn reset(&mut self) {
        if self.flushall && !self.broken {
            let (g, r) = self.exec(&[b"FLUSHALL".to_vec()]);
            if g == b"+OK\r\n" && r == b"+OK\r\n" {
                self.connect();
                return;
            }
        }
        self.granary.restart();
        self.redis.restart();
        self.broken = false;
        self.connect();
    }

    /// Sends a command to both; a failed read becomes a pseudo reply
    /// (which never matches) and marks the pair for a restart.
    fn exec(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let wire = common::encode(&refs);
        let mut replies = vec![];
        for (c, kind) in [(&mut self.gc, Kind::Granary), (&mut self.rc, Kind::Redis)] {
            let r = c.try_send(&wire).and_then(|_| c.read_reply());
            replies.push(r.unwrap_or_else(|e| {
                self.broken = true;
                format!("<{} I/O error: {e}>", kind.name()).into_bytes()
            }));
        }
        let r = replies.pop().unwrap_or_default();
        let g = replies.pop().unwrap_or_default();
        (g, r)
    }

    /// Replays `seq` on emptied servers; true if its last command still
    /// mismatches.
    fn fails(&mut self, seq: &[Args], cmp: Cmp) -> bool {
        self.reset();
        let Some((last, prefix)) = seq.split_last() else {
            return false;
        };
        for a in prefix {
            self.exec(a);
        }
        let (g, r) = self.exec(last);
        !equivalent(cmp, &g, &r)
    }
}

fn equivalent(cmp: Cmp, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match cmp {
        Cmp::Exact => false,
        Cmp::Sorted => sorted(a).is_some() && sorted(a) == sorted(b),
        Cmp::Within(tol) => match (int_reply(a), int_reply(b)) {
            (Some(x), Some(y)) if x >= 0 && y >= 0 => (x - y).abs() <= tol,
            _ => false,
        },
        Cmp::ArgsBeforeKey => {
            a.starts_with(b"-ERR ")
                && (matches!(b, b":0\r\n" | b":-1\r\n") || b.starts_with(b"-WRONGTYPE"))
        }
    }
}

fn sorted(reply: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let (header, mut elems) = split_aggregate(reply)?;
    elems.sort();
    Some((header, elems))
}

fn int_reply(r: &[u8]) -> Option<i64> {
    let body = r.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

/// Shrinks a failing sequence by dropping chunks that are not needed to
/// reproduce the mismatch of its last command.
fn shrink(pair: &mut Pair, seq: &[Args], cmp: Cmp) -> Option<Vec<Args>> {
    let deadline = Instant::now() + SHRINK_BUDGET;
    if !pair.fails(seq, cmp) {
        return None;
    }
    let mut seq = seq.to_vec();
    let mut chunk = (seq.len() / 2).max(1);
    loop {
        let mut i = 0;
        while i + 1 < seq.len() && Instant::now() < deadline {
            let end = (i + chunk).min(seq.len() - 1);
            let candidate: Vec<Args> = seq[..i].iter().chain(&seq[end..]).cloned().collect();
            if pair.fails(&candidate, cmp) {
                seq = candidate;
            } else {
                i = end;
            }
        }
        if chunk == 1 || Instant::now() >= deadline {
            return Some(seq);
        }
        chunk /= 2;
    }
}

#[derive(Default)]
struct Stat {
    sent: usize,
    mismatches: usize,
    reports: Vec<String>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    common::seed("DIFF_SEED", 0x6469_6666)
}

fn families_on(def: &Def) -> bool {
    match std::env::var("DIFF_FAMILIES") {
        Ok(list) => list.split(',').any(|f| f.trim() == def.family),
        Err(_) => true,
    }
}

/// True if Granary knows the command (any reply but "unknown command").
fn implemented(pair: &mut Pair, def: &Def) -> bool {
    if NO_PROBE.contains(&def.name) {
        return true;
    }
    let (g, _) = pair.exec(&[def.name.as_bytes().to_vec()]);
    !g.starts_with(b"-ERR unknown command")
}

fn describe(seq: &[Args], g: &[u8], r: &[u8]) -> String {
    let mut s = String::new();
    for (i, a) in seq.iter().enumerate() {
        let mark = if i + 1 == seq.len() { ">>" } else { "  " };
        s.push_str(&format!("    {mark} {}\n", show_cmd(a)));
    }
    s.push_str(&format!(
        "    granary: {}\n    redis:   {}\n",
        show(g),
        show(r)
    ));
    s
}

fn run(resp3: bool, subject: Kind, total: usize) {
    let seed = seed();
    let proto = if resp3 { "RESP3" } else { "RESP2" };
    println!("differential {proto}: DIFF_SEED={seed} commands={total}");
    let mut pair = Pair::start(resp3, subject);
    let mut shrink_left = TOTAL_SHRINK_BUDGET;
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed ^ resp3 as u64),
        base,
        seq: 0,
    };
    let mut missing = vec![];
    let mut active: Vec<&Def> = vec![];
    for def in TABLE.iter().filter(|d| families_on(d)) {
        if implemented(&mut pair, def) {
            active.push(def);
        } else {
            missing.push(def.name);
        }
    }
    pair.reset();
    let mut stats: BTreeMap<&str, Stat> = BTreeMap::new();
    let mut history: Vec<Args> = vec![];
    for i in 0..total {
        if active.is_empty() {
            break;
        }
        if i % EPOCH == 0 || pair.broken {
            pair.reset();
            history.clear();
        }
        let Ok(def) = active.choose_weighted(&mut g.rng, |d| d.weight).copied() else {
            break;
        };
        let mut args = (def.gen)(&mut g);
        if g.chance(0.04) {
            // Wrong arity (or, by chance, a valid call): the same name with
            // a random number of random arguments.
            let n = g.rng.gen_range(0..4);
            args.truncate(1);
            for _ in 0..n {
                let v = g.val();
                args.push(v);
            }
        }
        if g.chance(0.15) && def.name != "unknown" {
            args[0] = mix_case(&mut g.rng, &args[0]);
        }
        history.push(args.clone());
        let (gr, rr) = pair.exec(&args);
        let stat = stats.entry(def.name).or_default();
        stat.sent += 1;
        if equivalent(def.cmp, &gr, &rr) {
            continue;
        }
        stat.mismatches += 1;
        let first = stat.mismatches == 1;
        let seq = if first && !pair.broken && shrink_left > Duration::ZERO {
            let started = Instant::now();
            let s = shrink(&mut pair, &history, def.cmp);
            shrink_left = shrink_left.saturating_sub(started.elapsed());
            s
        } else {
            None
        };
        // The first example of a command shows how to reproduce it; later
        // ones only the command (the seed reproduces them all).
        let (shown, tail) = match seq {
            Some(s) => (
                format!("  minimized ({} of {} commands):\n", s.len(), history.len()),
                s,
            ),
            None if first => (
                format!("  last of {} commands since the reset:\n", history.len()),
                // All of it (an epoch is short): a mismatch that does not
                // replay depends on timing, and its cause may come early.
                history.clone(),
            ),
            None => ("  another:\n".to_string(), vec![args]),
        };
        let stat = stats.entry(def.name).or_default();
        stat.reports
            .push(format!("{shown}{}", describe(&tail, &gr, &rr)));
        if stat.mismatches >= MAX_MISMATCHES {
            active.retain(|d| d.name != def.name);
        }
        pair.reset();
        history.clear();
    }
    report(proto, seed, &stats, &missing);
}

fn report(proto: &str, seed: u64, stats: &BTreeMap<&str, Stat>, missing: &[&str]) {
    let mut summary = String::new();
    for (name, s) in stats {
        summary.push_str(&format!("{name}:{}/{} ", s.mismatches, s.sent));
    }
    println!("{proto} commands (mismatches/sent): {summary}");
    if !missing.is_empty() {
        println!(
            "{proto}: not implemented in Granary yet (skipped): {}",
            missing.join(" ")
        );
    }
    let failed: Vec<_> = stats.iter().filter(|(_, s)| s.mismatches > 0).collect();
    if failed.is_empty() {
        return;
    }
    let mut msg =
        format!("{proto}: Granary and redis-server disagree (reproduce with DIFF_SEED={seed}):\n");
    for (name, s) in &failed {
        msg.push_str(&format!("== {name}: {} mismatches\n", s.mismatches));
        for r in &s.reports {
            msg.push_str(r);
        }
    }
    println!("{msg}");
    let names: Vec<&str> = failed.iter().map(|(n, _)| **n).collect();
    panic!("{proto}: mismatching commands: {}", names.join(" "));
}

fn commands() -> usize {
    env_usize("DIFF_COMMANDS", DEFAULT_COMMANDS)
}

#[test]
fn differential_resp2() {
    run(false, Kind::Granary, commands());
}

#[test]
fn differential_resp3() {
    run(true, Kind::Granary, commands());
}

/// Redis against Redis must never mismatch: proves the generator and the
/// loose comparisons (TTLs, KEYS order) are deterministic, so every
/// mismatch above is Granary's.
#[test]
fn generator_is_deterministic_against_redis_itself() {
    run(false, Kind::Redis, commands() / 4);
    run(true, Kind::Redis, commands() / 4);
}
