//! Streams: a seeded random differential test over every stream command
//! against redis-server 7.0.15 (and Valkey 9.1 for what 7.2+ changed,
//! ignored by default), blocking XREAD/XREADGROUP, and memory use.
//!
//! Reproduce a differential run with `STREAM_SEED=<seed>`.

mod common;

use common::{show_cmd, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn args_of(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
}

fn run(c: &mut RawConn, line: &str) -> Vec<u8> {
    let args = args_of(line);
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    c.cmd(&refs)
}

/// Polls `f` until it returns true; generous, for a loaded machine.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn seed() -> u64 {
    std::env::var("STREAM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen())
}

// ------------------------------------------------------------ replies

/// A parsed reply, maps kept as ordered pairs.
#[derive(Debug, Clone, PartialEq)]
enum R {
    Str(Vec<u8>),
    Err(String),
    Int(i64),
    Nil,
    Arr(Vec<R>),
    Map(Vec<(R, R)>),
    Other(Vec<u8>),
}

fn line(b: &[u8], at: &mut usize) -> Vec<u8> {
    let start = *at;
    while &b[*at..*at + 2] != b"\r\n" {
        *at += 1;
    }
    let l = b[start..*at].to_vec();
    *at += 2;
    l
}

fn parse(b: &[u8], at: &mut usize) -> R {
    let t = b[*at];
    *at += 1;
    let l = line(b, at);
    let text = String::from_utf8_lossy(&l).into_owned();
    let n = || text.parse::<i64>().unwrap_or(-1);
    match t {
        b'+' => R::Str(l),
        b'-' => R::Err(text),
        b':' => R::Int(n()),
        b'_' => R::Nil,
        b'$' | b'=' if n() < 0 => R::Nil,
        b'$' | b'=' => {
            let v = b[*at..*at + n() as usize].to_vec();
            *at += n() as usize + 2;
            R::Str(v)
        }
        b'*' | b'~' | b'>' if n() < 0 => R::Nil,
        b'*' | b'~' | b'>' => R::Arr((0..n()).map(|_| parse(b, at)).collect()),
        b'%' => R::Map(
            (0..n())
                .map(|_| {
                    let k = parse(b, at);
                    (k, parse(b, at))
                })
                .collect(),
        ),
        _ => R::Other(l),
    }
}

fn parsed(raw: &[u8]) -> R {
    parse(raw, &mut 0)
}

/// A flat RESP2 key/value array or a RESP3 map, as pairs.
fn pairs_mut(r: &mut R) -> Option<Vec<(&mut R, &mut R)>> {
    match r {
        R::Map(m) => Some(m.iter_mut().map(|(k, v)| (k, v)).collect()),
        R::Arr(a) if a.len() % 2 == 0 && a.iter().step_by(2).all(|k| matches!(k, R::Str(_))) => {
            let mut out = Vec::new();
            let mut it = a.iter_mut();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            Some(out)
        }
        _ => None,
    }
}

/// Blanks the values of wall-clock fields anywhere in the reply.
fn blank_times(r: &mut R, fields: &[&str]) {
    if let Some(ps) = pairs_mut(r) {
        for (k, v) in ps {
            let is_time = matches!(k, R::Str(s) if fields.iter().any(|f| f.as_bytes() == s));
            if is_time {
                if let R::Int(i) = v {
                    // -1 (never active) is deterministic.
                    *i = if *i == -1 { -1 } else { 0 };
                }
            } else {
                blank_times(v, fields);
            }
        }
        return;
    }
    if let R::Arr(a) = r {
        for x in a {
            blank_times(x, fields);
        }
    }
}

/// Removes map fields Redis 7.0 does not have.
fn drop_fields(r: &mut R, fields: &[&str]) {
    let drop = |k: &R| matches!(k, R::Str(s) if fields.iter().any(|f| f.as_bytes() == s));
    match r {
        R::Map(m) => {
            m.retain(|(k, _)| !drop(k));
            for (_, v) in m {
                drop_fields(v, fields);
            }
        }
        R::Arr(a) => {
            if pairs_mut(&mut R::Arr(a.clone())).is_some() {
                let mut out = Vec::new();
                let mut i = 0;
                while i + 1 < a.len() {
                    if !drop(&a[i]) {
                        out.push(a[i].clone());
                        out.push(a[i + 1].clone());
                    }
                    i += 2;
                }
                *a = out;
            }
            for x in a {
                drop_fields(x, fields);
            }
        }
        _ => {}
    }
}

/// The reply with what depends on the wall clock blanked: idle times,
/// delivery and seen times.
fn normalize(args: &[Vec<u8>], raw: &[u8], redis70: bool) -> R {
    let mut r = parsed(raw);
    let cmd = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let sub = args
        .get(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
        .unwrap_or_default();
    if cmd == "XPENDING" && args.len() > 3 {
        if let R::Arr(rows) = &mut r {
            for row in rows {
                if let R::Arr(f) = row {
                    if f.len() == 4 {
                        f[2] = R::Int(0);
                    }
                }
            }
        }
    }
    if cmd == "XINFO" {
        blank_times(&mut r, &["idle", "inactive", "seen-time", "active-time"]);
        if sub == "STREAM" {
            blank_pending_times(&mut r);
        }
        if redis70 {
            drop_fields(&mut r, &["inactive", "active-time"]);
            // 7.2+ counts entries-read and lag more precisely.
            drop_fields(&mut r, &["entries-read", "lag"]);
        }
    }
    r
}

/// XINFO STREAM FULL's PEL rows hold delivery times: blank them.
fn blank_pending_times(r: &mut R) {
    match r {
        R::Arr(a) => {
            let row = a.len() >= 3
                && matches!(a[0], R::Str(_))
                && matches!(a[a.len() - 2], R::Int(_))
                && matches!(a[a.len() - 1], R::Int(_));
            if row && (a.len() == 3 || a.len() == 4) {
                let i = a.len() - 2;
                a[i] = R::Int(0);
                return;
            }
            for x in a {
                blank_pending_times(x);
            }
        }
        R::Map(m) => {
            for (_, v) in m {
                blank_pending_times(v);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------ generator

struct Gen {
    rng: StdRng,
    /// Redis 7.0 as the oracle: leave out what 7.2+ changed.
    redis70: bool,
}

impl Gen {
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.gen_range(0..from.len())]
    }

    fn key(&mut self) -> String {
        if self.rng.gen_ratio(1, 40) {
            return "str".into();
        }
        format!("s{}", self.rng.gen_range(0..3))
    }

    fn group(&mut self) -> String {
        format!("g{}", self.rng.gen_range(0..3))
    }

    fn consumer(&mut self) -> String {
        format!("c{}", self.rng.gen_range(0..3))
    }

    /// A valid ID, mostly small, sometimes a bare ms.
    fn id(&mut self) -> String {
        let ms = self.rng.gen_range(0..40);
        match self.rng.gen_range(0..10) {
            0 => format!("{ms}"),
            _ => format!("{ms}-{}", self.rng.gen_range(0..4)),
        }
    }

    fn odd_id(&mut self) -> String {
        self.pick(&[
            "abc",
            "1-x",
            "-1",
            "1-",
            "-",
            "+",
            "0-0",
            "+5",
            "007-1",
            "18446744073709551615-18446744073709551615",
            "18446744073709551616",
            "1-18446744073709551615",
        ])
        .to_string()
    }

    fn some_id(&mut self) -> String {
        if self.rng.gen_ratio(1, 12) {
            self.odd_id()
        } else {
            self.id()
        }
    }

    fn bound(&mut self, start: bool) -> String {
        match self.rng.gen_range(0..8) {
            0 => if start { "-" } else { "+" }.into(),
            1 => format!("({}", self.id()),
            2 => self.odd_id(),
            _ => self.id(),
        }
    }

    fn fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let n = self.rng.gen_range(1..4);
        let base = self.rng.gen_range(0..2);
        for i in 0..n {
            out.push(format!("f{}", base + i));
            let v = match self.rng.gen_range(0..4) {
                0 => self.rng.gen_range(-200..70000).to_string(),
                1 => "x".repeat(self.rng.gen_range(0..80)),
                _ => format!("v{}", self.rng.gen_range(0..100)),
            };
            out.push(v);
        }
        out
    }

    fn trim_opts(&mut self, out: &mut Vec<String>) {
        let strat = self.pick(&["MAXLEN", "MINID", "maxlen"]);
        out.push(strat.into());
        let approx = self.pick(&["", "", "~", "="]);
        if !approx.is_empty() {
            out.push(approx.into());
        }
        if strat.eq_ignore_ascii_case("minid") {
            out.push(self.id());
        } else {
            out.push(self.rng.gen_range(-1..30).to_string());
        }
        if self.rng.gen_ratio(1, 4) {
            out.push("LIMIT".into());
            out.push(self.rng.gen_range(-1..200).to_string());
        }
    }

    fn xadd(&mut self) -> Vec<String> {
        let mut a = vec!["XADD".to_string(), self.key()];
        if self.rng.gen_ratio(1, 8) {
            a.push("NOMKSTREAM".into());
        }
        if self.rng.gen_ratio(1, 4) {
            self.trim_opts(&mut a);
        }
        let id = match self.rng.gen_range(0..12) {
            0 => format!("{}-*", self.rng.gen_range(0..40)),
            1 => self.odd_id(),
            _ => {
                let ms = self.rng.gen_range(0..40);
                format!("{ms}-{}", self.rng.gen_range(0..3))
            }
        };
        a.push(id);
        a.extend(self.fields());
        if self.rng.gen_ratio(1, 30) {
            a.pop();
        }
        a
    }

    fn read_ids(&mut self, n: usize, group: bool) -> Vec<String> {
        (0..n)
            .map(|_| match self.rng.gen_range(0..6) {
                0 | 1 if group => ">".into(),
                0 if !group => "$".into(),
                1 => "0".into(),
                _ => self.some_id(),
            })
            .collect()
    }

    fn command(&mut self) -> Vec<String> {
        let k = self.key();
        let g = self.group();
        let c = self.consumer();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match self.rng.gen_range(0..100) {
            0..=29 => self.xadd(),
            30..=32 => s(&["XLEN", &k]),
            33..=37 => {
                let name = if self.rng.gen_bool(0.5) {
                    "XRANGE"
                } else {
                    "XREVRANGE"
                };
                let (a, b) = (self.bound(true), self.bound(false));
                let mut v = if name == "XRANGE" {
                    s(&[name, &k, &a, &b])
                } else {
                    s(&[name, &k, &b, &a])
                };
                if self.rng.gen_ratio(1, 2) {
                    v.push("COUNT".into());
                    v.push(self.rng.gen_range(-1..5).to_string());
                }
                v
            }
            38..=41 => {
                let mut v = s(&["XDEL", &k]);
                for _ in 0..self.rng.gen_range(1..4) {
                    v.push(self.some_id());
                }
                v
            }
            42..=43 => {
                let mut v = s(&["XTRIM", &k]);
                self.trim_opts(&mut v);
                v
            }
            44..=48 => {
                let id = match self.rng.gen_range(0..4) {
                    0 => "$".to_string(),
                    1 => "0".to_string(),
                    _ => self.some_id(),
                };
                let mut v = s(&["XGROUP", "CREATE", &k, &g, &id]);
                if self.rng.gen_ratio(1, 2) {
                    v.push("MKSTREAM".into());
                }
                if self.rng.gen_ratio(1, 4) {
                    v.push("ENTRIESREAD".into());
                    v.push(self.rng.gen_range(-2..10).to_string());
                }
                v
            }
            49..=50 => {
                let id = if self.rng.gen_ratio(1, 3) {
                    "$".into()
                } else {
                    self.some_id()
                };
                let mut v = s(&["XGROUP", "SETID", &k, &g, &id]);
                if self.rng.gen_ratio(1, 3) {
                    v.push("ENTRIESREAD".into());
                    v.push(self.rng.gen_range(-2..10).to_string());
                }
                v
            }
            51 => s(&["XGROUP", "DESTROY", &k, &g]),
            52 => s(&["XGROUP", "CREATECONSUMER", &k, &g, &c]),
            53 => s(&["XGROUP", "DELCONSUMER", &k, &g, &c]),
            54..=63 => {
                let mut v = s(&["XREADGROUP", "GROUP", &g, &c]);
                if self.rng.gen_ratio(1, 2) {
                    v.push("COUNT".into());
                    v.push(self.rng.gen_range(0..4).to_string());
                }
                if self.rng.gen_ratio(1, 6) {
                    v.push("NOACK".into());
                }
                v.push("STREAMS".into());
                let n = self.rng.gen_range(1..3);
                for _ in 0..n {
                    v.push(self.key());
                }
                v.extend(self.read_ids(n, true));
                v
            }
            64..=67 => {
                let mut v = s(&["XREAD"]);
                if self.rng.gen_ratio(1, 2) {
                    v.push("COUNT".into());
                    v.push(self.rng.gen_range(0..4).to_string());
                }
                v.push("STREAMS".into());
                let n = self.rng.gen_range(1..3);
                for _ in 0..n {
                    v.push(self.key());
                }
                v.extend(self.read_ids(n, false));
                v
            }
            68..=72 => {
                let mut v = s(&["XACK", &k, &g]);
                for _ in 0..self.rng.gen_range(1..4) {
                    v.push(self.some_id());
                }
                v
            }
            73..=77 => {
                let mut v = s(&["XPENDING", &k, &g]);
                if self.rng.gen_ratio(2, 3) {
                    if self.rng.gen_ratio(1, 3) {
                        v.push("IDLE".into());
                        v.push(self.pick(&["0", "100000000"]).into());
                    }
                    v.push(self.bound(true));
                    v.push(self.bound(false));
                    v.push(self.rng.gen_range(-1..6).to_string());
                    if self.rng.gen_ratio(1, 2) {
                        v.push(c.clone());
                    }
                }
                v
            }
            78..=82 => {
                let idle = self.pick(&["0", "100000000", "-5"]);
                let mut v = s(&["XCLAIM", &k, &g, &c, idle]);
                for _ in 0..self.rng.gen_range(1..4) {
                    v.push(self.id());
                }
                for _ in 0..self.rng.gen_range(0..3) {
                    match self.rng.gen_range(0..7) {
                        0 => v.extend(s(&["TIME", self.pick(&["1", "1000", "-3"])])),
                        1 => v.extend(s(&["IDLE", self.pick(&["200000000", "300000000"])])),
                        2 => v.extend(s(&["RETRYCOUNT", self.pick(&["0", "5", "x"])])),
                        3 => v.push("FORCE".into()),
                        4 => v.push("JUSTID".into()),
                        5 => {
                            let id = self.id();
                            v.extend(s(&["LASTID", &id]));
                        }
                        _ => v.push("BOGUS".into()),
                    }
                }
                v
            }
            83..=86 => {
                let idle = self.pick(&["0", "100000000", "x"]);
                let start = self.bound(true);
                let mut v = s(&["XAUTOCLAIM", &k, &g, &c, idle, &start]);
                if self.rng.gen_ratio(1, 2) {
                    v.push("COUNT".into());
                    v.push(self.rng.gen_range(0..4).to_string());
                }
                if self.rng.gen_ratio(1, 3) {
                    v.push("JUSTID".into());
                }
                v
            }
            87..=88 => {
                let mut v = s(&["XINFO", "STREAM", &k]);
                if self.rng.gen_ratio(1, 2) {
                    v.push("FULL".into());
                    if self.rng.gen_ratio(1, 2) {
                        v.push("COUNT".into());
                        v.push(self.rng.gen_range(-1..4).to_string());
                    }
                }
                v
            }
            89..=90 => s(&["XINFO", "GROUPS", &k]),
            91 => s(&["XINFO", "CONSUMERS", &k, &g]),
            // 7.0 checks XSETID's arguments differently.
            92..=93 if !self.redis70 => {
                let id = self.some_id();
                let mut v = s(&["XSETID", &k, &id]);
                if self.rng.gen_ratio(1, 3) {
                    v.push("ENTRIESADDED".into());
                    v.push(self.rng.gen_range(-1..30).to_string());
                }
                if self.rng.gen_ratio(1, 3) {
                    let id = self.id();
                    v.extend(s(&["MAXDELETEDID", &id]));
                }
                v
            }
            94 => s(&["DEL", &k]),
            95 => s(&["TYPE", &k]),
            96 => s(&["SET", "str", "x"]),
            _ => s(&["XLEN", &k]),
        }
    }
}

/// Runs `steps` random commands on both servers, comparing parsed replies
/// with wall-clock values blanked.
fn differential(oracle: &ServerProc, redis70: bool, steps: usize) {
    let seed = seed();
    eprintln!("STREAM_SEED={seed}");
    let g = ServerProc::granary(&[]);
    for resp3 in [false, true] {
        let mut o = oracle.raw();
        let mut c = g.raw();
        run(&mut c, "FLUSHALL");
        run(&mut o, "FLUSHALL");
        if resp3 {
            run(&mut c, "HELLO 3");
            run(&mut o, "HELLO 3");
        }
        let mut gen = Gen {
            rng: StdRng::seed_from_u64(seed ^ resp3 as u64),
            redis70,
        };
        let mut entries = 0;
        for i in 0..steps {
            let args: Vec<Vec<u8>> = gen.command().into_iter().map(String::into_bytes).collect();
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let want_raw = o.cmd(&refs);
            if redis70 && !want_raw.starts_with(b"-") {
                created_since_72(&mut o, &args);
            }
            if std::env::var_os("STREAM_TRACE").is_some() {
                eprintln!("{i}: {} -> {}", show_cmd(&args), common::show(&want_raw));
            }
            if args[0] == b"XREADGROUP" && want_raw.len() > 40 {
                entries += 1;
            }
            let want = normalize(&args, &want_raw, gen.redis70);
            let have = normalize(&args, &c.cmd(&refs), gen.redis70);
            if redis70 && (new_in_74(&args) || changed_since_70(&args, &have, &want)) {
                continue;
            }
            assert_eq!(
                have,
                want,
                "seed {seed} resp3 {resp3} step {i}: {}",
                show_cmd(&args)
            );
        }
        assert!(entries > 20, "XREADGROUP delivered too rarely: {entries}");
    }
}

/// Replies that differ between 7.0 and 7.2+ (checked against Valkey):
/// XSETID checks max_deleted_entry_id before the top item since 7.2.
fn changed_since_70(args: &[Vec<u8>], have: &R, want: &R) -> bool {
    args[0].eq_ignore_ascii_case(b"XSETID") && matches!((have, want), (R::Err(_), R::Err(_)))
}

/// XREAD's `+` ID is new in 7.4 (Valkey 9.1 has it, 7.0 not).
fn new_in_74(args: &[Vec<u8>]) -> bool {
    args[0].to_ascii_uppercase().starts_with(b"XREAD") && args.iter().any(|a| a == b"+")
}

/// Redis 7.2+ creates the consumer of XREADGROUP, XCLAIM and XAUTOCLAIM
/// even when it gets nothing (7.0 only when it does): creates it in 7.0.
fn created_since_72(o: &mut RawConn, args: &[Vec<u8>]) {
    let cmd = args[0].to_ascii_uppercase();
    let mut create = |k: &[u8], g: &[u8], c: &[u8]| {
        o.cmd(&[b"XGROUP", b"CREATECONSUMER", k, g, c]);
    };
    if cmd == b"XCLAIM" || cmd == b"XAUTOCLAIM" {
        create(&args[1], &args[2], &args[3]);
    } else if cmd == b"XREADGROUP" {
        let at = args
            .iter()
            .position(|a| a == b"STREAMS")
            .unwrap_or(args.len());
        let n = (args.len() - at - 1) / 2;
        for k in &args[at + 1..at + 1 + n] {
            create(k, &args[2], &args[3]);
        }
    }
}

/// XREADGROUP GROUP g c BLOCK 0 STREAMS s >
const XREADGROUP_BLOCK: &[&[u8]] = &[
    b"XREADGROUP",
    b"GROUP",
    b"g",
    b"c",
    b"BLOCK",
    b"0",
    b"STREAMS",
    b"s",
    b">",
];

#[test]
fn matches_redis() {
    let redis = ServerProc::redis(&[]);
    differential(&redis, true, 4000);
}

/// What Redis 7.2+ added (XINFO inactive/active-time) against Valkey 9.1:
/// `cargo nextest run -p granary-server --test stream --run-ignored only`.
#[test]
#[ignore]
fn matches_valkey() {
    let valkey = ServerProc::valkey(&[]).expect("valkey-server (set VALKEY_SERVER)");
    differential(&valkey, false, 4000);
}

// ------------------------------------------------------------ targeted

#[test]
fn errors_and_edge_ids() {
    let g = ServerProc::granary(&[]);
    let mut c = g.raw();
    let e = |t: &str| format!("-{t}\r\n").into_bytes();
    assert_eq!(run(&mut c, "XADD s 5-5 f v"), b"$3\r\n5-5\r\n");
    assert_eq!(
        run(&mut c, "XADD s 5-5 f v"),
        e("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    );
    assert_eq!(run(&mut c, "XADD s 5-* f v"), b"$3\r\n5-6\r\n");
    assert_eq!(
        run(&mut c, "XADD s 0-0 f v"),
        e("ERR The ID specified in XADD must be greater than 0-0")
    );
    assert_eq!(
        run(&mut c, "XADD s 1-x f v"),
        e("ERR Invalid stream ID specified as stream command argument")
    );
    assert_eq!(
        run(&mut c, "XADD s 9-18446744073709551615 f v"),
        b"$22\r\n9-18446744073709551615\r\n"
    );
    assert_eq!(
        run(&mut c, "XADD s 9-* f v"),
        e("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    );
    assert_eq!(
        run(&mut c, "XADD s f v x"),
        e("ERR Invalid stream ID specified as stream command argument")
    );
    assert_eq!(
        run(&mut c, "XADD s 10-1 f"),
        e("ERR wrong number of arguments for 'xadd' command")
    );
    assert_eq!(run(&mut c, "XADD nokey NOMKSTREAM * f v"), b"$-1\r\n");
    assert_eq!(
        run(&mut c, "XADD s MAXLEN 1 LIMIT 10 * f v"),
        e("ERR syntax error, LIMIT cannot be used without the special ~ option")
    );
    assert_eq!(run(&mut c, "XRANGE s - + COUNT 0"), b"*-1\r\n");
    assert_eq!(
        run(&mut c, "XREADGROUP GROUP g c STREAMS s >"),
        e("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option")
    );
    assert_eq!(
        run(&mut c, "XGROUP CREATE nokey g $"),
        e("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")
    );
    assert_eq!(run(&mut c, "TYPE s"), b"+stream\r\n");
    assert_eq!(run(&mut c, "OBJECT ENCODING s"), b"$6\r\nstream\r\n");
}

/// A deleted entry still pending comes back from the history as [id, nil].
#[test]
fn history_of_deleted_entry() {
    let g = ServerProc::granary(&[]);
    let mut c = g.raw();
    run(&mut c, "XADD s 1-1 f v");
    run(&mut c, "XGROUP CREATE s g 0");
    run(&mut c, "XREADGROUP GROUP g c STREAMS s >");
    run(&mut c, "XDEL s 1-1");
    assert_eq!(
        run(&mut c, "XREADGROUP GROUP g c STREAMS s 0"),
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*-1\r\n"
    );
}

fn blocked_clients(c: &mut RawConn) -> usize {
    let info = String::from_utf8_lossy(&run(c, "INFO clients")).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn xread_block_is_woken_by_xadd() {
    let g = ServerProc::granary(&[]);
    let mut admin = g.raw();
    run(&mut admin, "XADD s 1-1 f old");
    let mut reader = g.raw();
    reader.send(&common::encode(&[
        b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$",
    ]));
    wait_for("the reader to block", || blocked_clients(&mut admin) == 1);
    run(&mut admin, "XADD s 2-1 f new");
    let reply = reader.read_reply().expect("reply");
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$3\r\nnew\r\n"
    );
    // A timeout replies a null array.
    assert_eq!(run(&mut reader, "XREAD BLOCK 50 STREAMS s $"), b"*-1\r\n");
    // Inside MULTI it does not block.
    run(&mut reader, "MULTI");
    run(&mut reader, "XREAD BLOCK 0 STREAMS s $");
    assert_eq!(run(&mut reader, "EXEC"), b"*1\r\n*-1\r\n");
}

#[test]
fn xreadgroup_block_gets_new_entries() {
    let g = ServerProc::granary(&[]);
    let mut admin = g.raw();
    run(&mut admin, "XGROUP CREATE s g $ MKSTREAM");
    let mut reader = g.raw();
    reader.send(&common::encode(XREADGROUP_BLOCK));
    wait_for("the reader to block", || blocked_clients(&mut admin) == 1);
    run(&mut admin, "XADD s 3-1 f v");
    let reply = reader.read_reply().expect("reply");
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(
        run(&mut admin, "XPENDING s g"),
        b"*4\r\n:1\r\n$3\r\n3-1\r\n$3\r\n3-1\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n1\r\n"
    );
    // Deleting the stream ends the wait with an error (7.2+ runs the
    // command again: no group any more).
    reader.send(&common::encode(XREADGROUP_BLOCK));
    wait_for("the reader to block again", || {
        blocked_clients(&mut admin) == 1
    });
    run(&mut admin, "DEL s");
    assert_eq!(
        reader.read_reply().expect("reply"),
        b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );
    // Destroying the group ends it with NOGROUP.
    run(&mut admin, "XGROUP CREATE s g $ MKSTREAM");
    reader.send(&common::encode(XREADGROUP_BLOCK));
    wait_for("the reader to block a third time", || {
        blocked_clients(&mut admin) == 1
    });
    run(&mut admin, "XGROUP DESTROY s g");
    assert_eq!(
        reader.read_reply().expect("reply"),
        b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );
}

/// Used memory per entry for 100k small entries, MAXLEN ~ trimmed.
fn bytes_per_entry(server: &ServerProc) -> f64 {
    let mut c = server.raw();
    let used = |c: &mut RawConn| -> f64 {
        let info = String::from_utf8_lossy(&run(c, "INFO memory")).into_owned();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let before = used(&mut c);
    let n = 100_000;
    let mut batch = Vec::new();
    for i in 1..=n {
        let id = format!("{i}-1");
        let v = (i % 1000).to_string();
        batch.extend(common::encode(&[
            b"XADD",
            b"s",
            b"MAXLEN",
            b"~",
            b"1000000",
            id.as_bytes(),
            b"field",
            v.as_bytes(),
            b"other",
            b"x",
        ]));
        if i % 1000 == 0 {
            c.send(&batch);
            batch.clear();
            for _ in 0..1000 {
                c.read_reply().expect("reply");
            }
        }
    }
    assert_eq!(run(&mut c, "XLEN s"), b":100000\r\n");
    (used(&mut c) - before) / n as f64
}

#[test]
fn memory_stays_compact() {
    let g = ServerProc::granary(&[]);
    let r = ServerProc::redis(&[]);
    let ours = bytes_per_entry(&g);
    let theirs = bytes_per_entry(&r);
    eprintln!("bytes per entry: granary {ours:.1}, redis {theirs:.1}");
    assert!(
        ours < theirs * 1.5 + 4.0,
        "granary {ours:.1} vs redis {theirs:.1}"
    );
}

/// MAXLEN ~ trims whole nodes, so XLEN after it depends on node sizes:
/// the same as Redis for both node limits.
#[test]
fn approximate_trim_matches_redis_nodes() {
    let g = ServerProc::granary(&[]);
    let r = ServerProc::redis(&[]);
    let mut rng = StdRng::seed_from_u64(seed());
    let mut cg = g.raw();
    let mut cr = r.raw();
    for (entries, bytes) in [("100", "4096"), ("7", "0"), ("0", "300")] {
        for c in [&mut cg, &mut cr] {
            run(c, "FLUSHALL");
            run(c, &format!("CONFIG SET stream-node-max-entries {entries}"));
            run(c, &format!("CONFIG SET stream-node-max-bytes {bytes}"));
        }
        for i in 1..600 {
            let v = "y".repeat(rng.gen_range(0..60));
            let n = rng.gen_range(0..12345);
            let line = if i % 3 == 0 {
                format!("XADD s MAXLEN ~ 50 {i}-1 a {v} b {n}")
            } else {
                format!("XADD s {i}-1 a {n} c {v}z")
            };
            assert_eq!(run(&mut cg, &line), run(&mut cr, &line), "{line}");
            if i % 50 == 0 {
                assert_eq!(run(&mut cg, "XLEN s"), run(&mut cr, "XLEN s"));
                let info = |c: &mut RawConn| {
                    let r = parsed(&run(c, "XINFO STREAM s"));
                    match r {
                        R::Arr(a) => a[..6].to_vec(),
                        other => vec![other],
                    }
                };
                assert_eq!(
                    info(&mut cg),
                    info(&mut cr),
                    "nodes at {i} ({entries}/{bytes})"
                );
            }
        }
    }
}
