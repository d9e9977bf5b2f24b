//! Geospatial commands against redis-server 7.0.15: seeded random command
//! sequences sent to both, raw replies compared byte for byte in RESP2 and
//! RESP3, and a 100k-point index searched by both.
//!
//! Search replies without ASC/DESC (or with COUNT ANY) come in geohash-cell
//! order; ours scan the same cells in the same order, but the order is not
//! part of Redis's contract, so a differing reply is accepted when it holds
//! the same elements. Sorted replies must match exactly (or, where equal
//! distances let qsort order ties either way, hold the same elements).
//! STOREDIST destinations are compared without scores: 7.0 prints scores
//! with %.17g, 7.4 (which Granary follows) shortest round-trip.

mod common;

use common::{show, show_cmd, split_aggregate, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: &[&str] = &["g0", "g1", "str", "nokey"];
const UNITS: &[&str] = &["m", "km", "ft", "mi", "M", "KM"];

struct Gen {
    rng: StdRng,
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.gen_range(0..xs.len())]
    }

    fn key(&mut self) -> Vec<u8> {
        if self.rng.gen_bool(0.8) {
            return b(self.pick(&KEYS[..2]));
        }
        b(self.pick(KEYS))
    }

    fn member(&mut self) -> Vec<u8> {
        format!("m{}", self.rng.gen_range(0..150)).into_bytes()
    }

    fn unit(&mut self) -> Vec<u8> {
        if self.rng.gen_bool(0.03) {
            return b(self.pick(&["yd", "", "kms"]));
        }
        b(self.pick(UNITS))
    }

    /// A (lon, lat) pair: mostly around a few hot spots so searches find
    /// members, sometimes anywhere, on the edges, or invalid.
    fn lonlat(&mut self) -> [Vec<u8>; 2] {
        let [lon, lat, _] = self.point();
        [lon, lat]
    }

    /// A GEOADD triple. Points on the edges get a member of their own, so
    /// no two members share a position: equal distances would let Redis's
    /// qsort order (and COUNT pick) them either way.
    fn point(&mut self) -> [Vec<u8>; 3] {
        match self.rng.gen_range(0..40) {
            0 => {
                let lon = self.pick(&["180", "-180", "0", "179.9999999"]);
                // (-180, -85.05112878) is score 0, which ZADD 1e20 below also decodes to.
                let lat = self.pick(&["85.05112878", "-85.0511287", "0.5", "-85.0511"]);
                [b(lon), b(lat), format!("e{lon}/{lat}").into_bytes()]
            }
            1 => [
                b(self.pick(&["180.0001", "-181", "abc", "nan", "10", "inf"])),
                b(self.pick(&["85.06", "-90", "x", "10", "1e400"])),
                self.member(),
            ],
            2..=9 => [
                format!("{:.6}", self.rng.gen_range(-180.0..180.0)).into_bytes(),
                format!("{:.6}", self.rng.gen_range(-85.05..85.05)).into_bytes(),
                self.member(),
            ],
            _ => {
                // Hot spots away from the edges, so no point is clamped onto one.
                let spots = [(13.0, 38.0), (-122.4, 37.7), (179.0, -60.0), (0.0, 83.5)];
                let (lon, lat) = spots[self.rng.gen_range(0..spots.len())];
                let lon = lon + self.rng.gen_range(-0.99..0.99f64);
                let lat = lat + self.rng.gen_range(-0.99..0.99f64);
                [
                    format!("{lon:.6}").into_bytes(),
                    format!("{lat:.6}").into_bytes(),
                    self.member(),
                ]
            }
        }
    }

    fn distance(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..30) {
            0 => b(self.pick(&["-1", "x", "0", "inf"])),
            1 => b("20000000"),
            _ => format!("{}", self.rng.gen_range(0..400_000)).into_bytes(),
        }
    }

    /// The optional part of a search; `store` allows STORE/STOREDIST.
    fn options(&mut self, store: bool, storedist_flag: bool) -> Vec<Vec<u8>> {
        let mut opts: Vec<Vec<Vec<u8>>> = Vec::new();
        for w in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if self.rng.gen_bool(0.3) {
                opts.push(vec![b(w)]);
            }
        }
        if self.rng.gen_bool(0.4) {
            opts.push(vec![b(self.pick(&["ASC", "DESC"]))]);
        }
        if self.rng.gen_bool(0.4) {
            let n = match self.rng.gen_range(0..20) {
                0 => b(self.pick(&["0", "-1", "x"])),
                _ => self.rng.gen_range(1..20).to_string().into_bytes(),
            };
            opts.push(vec![b("COUNT"), n]);
            if self.rng.gen_bool(0.3) {
                opts.push(vec![b("ANY")]);
            }
        } else if self.rng.gen_bool(0.03) {
            opts.push(vec![b("ANY")]);
        }
        if store && self.rng.gen_bool(0.2) {
            opts.push(vec![b(self.pick(&["STORE", "STOREDIST"])), b("dst")]);
        }
        if storedist_flag && self.rng.gen_bool(0.3) {
            opts.push(vec![b("STOREDIST")]);
        }
        if self.rng.gen_bool(0.02) {
            opts.push(vec![b(self.pick(&["BOGUS", "COUNT", "STORE"]))]);
        }
        // Options may come in any order.
        for i in (1..opts.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            opts.swap(i, j);
        }
        opts.concat()
    }

    /// FROM... BY... of GEOSEARCH[STORE], sometimes missing or doubled.
    fn search_spec(&mut self) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        match self.rng.gen_range(0..20) {
            0 => {}
            1..=8 => {
                v.push(b("FROMMEMBER"));
                v.push(self.member());
            }
            _ => {
                v.push(b("FROMLONLAT"));
                v.extend(self.lonlat());
            }
        }
        match self.rng.gen_range(0..20) {
            0 => {}
            1 => {
                v.extend([b("BYRADIUS"), self.distance(), self.unit()]);
                v.extend([b("BYBOX"), self.distance(), self.distance(), self.unit()]);
            }
            2..=10 => v.extend([b("BYRADIUS"), self.distance(), self.unit()]),
            _ => v.extend([b("BYBOX"), self.distance(), self.distance(), self.unit()]),
        }
        // Either order parses: put BY... first half the time.
        if self.rng.gen_bool(0.5) {
            let by = v.iter().position(|a| a.starts_with(b"BY"));
            v.rotate_left(by.unwrap_or(0));
        }
        v
    }

    fn geoadd(&mut self) -> Vec<Vec<u8>> {
        let mut c = vec![b("GEOADD"), self.key()];
        for w in ["NX", "XX", "CH"] {
            if self.rng.gen_bool(0.08) {
                c.push(b(w));
            }
        }
        for _ in 0..self.rng.gen_range(1..6) {
            c.extend(self.point());
        }
        if self.rng.gen_bool(0.03) {
            c.pop();
        }
        c
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        match self.rng.gen_range(0..40) {
            0..=9 => self.geoadd(),
            10..=11 => {
                let mut c = vec![b("GEOPOS"), self.key()];
                for _ in 0..self.rng.gen_range(0..4) {
                    c.push(self.member());
                }
                c
            }
            12..=13 => {
                let mut c = vec![b("GEODIST"), self.key(), self.member(), self.member()];
                if self.rng.gen_bool(0.6) {
                    c.push(self.unit());
                }
                if self.rng.gen_bool(0.03) {
                    c.push(b("x"));
                }
                c
            }
            14..=15 => {
                let mut c = vec![b("GEOHASH"), self.key()];
                for _ in 0..self.rng.gen_range(0..4) {
                    c.push(self.member());
                }
                c
            }
            16..=23 => {
                let mut c = vec![b("GEOSEARCH"), self.key()];
                c.extend(self.search_spec());
                c.extend(self.options(false, false));
                c
            }
            24..=26 => {
                let mut c = vec![b("GEOSEARCHSTORE"), b("dst"), self.key()];
                c.extend(self.search_spec());
                c.extend(self.options(false, true));
                c
            }
            27..=30 => {
                let ro = self.rng.gen_bool(0.3);
                let mut c = vec![b(if ro { "GEORADIUS_RO" } else { "GEORADIUS" }), self.key()];
                c.extend(self.lonlat());
                c.extend([self.distance(), self.unit()]);
                let store = !ro || self.rng.gen_bool(0.1);
                c.extend(self.options(store, false));
                c
            }
            31..=34 => {
                let ro = self.rng.gen_bool(0.3);
                let name = if ro {
                    "GEORADIUSBYMEMBER_RO"
                } else {
                    "GEORADIUSBYMEMBER"
                };
                let mut c = vec![b(name), self.key(), self.member()];
                c.extend([self.distance(), self.unit()]);
                let store = !ro || self.rng.gen_bool(0.1);
                c.extend(self.options(store, false));
                c
            }
            35 => vec![b("ZREM"), self.key(), self.member()],
            36 => {
                // Scores GEOADD never writes still decode somewhere.
                // (Each score has its own member, so no two share a position.)
                let score = self.pick(&["-1", "4503599627370496", "1e20", "123.75", "9.3e18"]);
                vec![
                    b("ZADD"),
                    self.key(),
                    b(score),
                    format!("z{score}").into_bytes(),
                ]
            }
            37 => vec![b("ZRANGE"), b("dst"), b("0"), b("-1")],
            38 => vec![b("ZCARD"), self.key()],
            _ => vec![b("ZRANGE"), self.key(), b("0"), b("-1"), b("WITHSCORES")],
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

/// Whether two aggregate replies hold the same elements in any order.
fn same_elements(a: &[u8], b: &[u8]) -> bool {
    let elems = |r: &[u8]| -> Option<Vec<Vec<u8>>> {
        let (head, mut items) = split_aggregate(r)?;
        items.sort();
        items.push(head);
        Some(items)
    };
    elems(a).is_some() && elems(a) == elems(b)
}

fn is_search(name: &[u8]) -> bool {
    let n = name.to_ascii_uppercase();
    n.starts_with(b"GEOSEARCH") || n.starts_with(b"GEORADIUS")
}

fn run_differential(seed: u64, steps: usize, resp3: bool) {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = conns(&granary, &redis, resp3);
    for c in [&mut g, &mut r] {
        c.cmd(&[b"SET", b"str", b"v"]);
    }
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut searched = 0;
    for step in 0..steps {
        let cmd = gen.command();
        let args = as_slices(&cmd);
        let (ours, theirs) = (g.cmd(&args), r.cmd(&args));
        if is_search(args[0]) && theirs.len() > 8 && theirs.starts_with(b"*") {
            searched += 1;
        }
        if ours != theirs && is_search(args[0]) && same_elements(&ours, &theirs) {
            continue;
        }
        assert_eq!(
            show(&ours),
            show(&theirs),
            "seed {seed} step {step} resp3 {resp3}: {}",
            show_cmd(&cmd)
        );
    }
    assert!(searched > steps / 20, "too few searches found members");
    for k in ["g0", "g1"] {
        let args: &[&[u8]] = &[b"ZRANGE", k.as_bytes(), b"0", b"-1", b"WITHSCORES"];
        assert_eq!(show(&g.cmd(args)), show(&r.cmd(args)), "final {k}");
    }
}

#[test]
fn differential_resp2() {
    for seed in 1..=3 {
        run_differential(seed, 3000, false);
    }
}

#[test]
fn differential_resp3() {
    for seed in 11..=13 {
        run_differential(seed, 3000, true);
    }
}

/// 100k points over the globe (a skiplist-encoded set), searched by both
/// servers with random shapes: the nine-cell scan and the distance checks
/// must select exactly Redis's members, with Redis's distances.
#[test]
fn hundred_thousand_points() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = conns(&granary, &redis, false);
    let mut rng = StdRng::seed_from_u64(42);
    for batch in 0..100 {
        let mut c = vec![b("GEOADD"), b("big")];
        for i in 0..1000 {
            let lon: f64 = rng.gen_range(-180.0..180.0);
            let lat: f64 = rng.gen_range(-85.0..85.0);
            c.push(format!("{lon:.7}").into_bytes());
            c.push(format!("{lat:.7}").into_bytes());
            c.push(format!("p{}", batch * 1000 + i).into_bytes());
        }
        let args = as_slices(&c);
        assert_eq!(g.cmd(&args), r.cmd(&args));
    }
    assert_eq!(g.cmd(&[b"ZCARD", b"big"]), b":100000\r\n");
    for q in 0..60 {
        let lon = format!("{:.5}", rng.gen_range(-180.0..180.0f64));
        let lat = format!("{:.5}", rng.gen_range(-85.0..85.0f64));
        let mut c = vec![b("GEOSEARCH"), b("big"), b("FROMLONLAT"), b(&lon), b(&lat)];
        if q % 2 == 0 {
            c.extend([
                b("BYRADIUS"),
                rng.gen_range(1..800).to_string().into_bytes(),
            ]);
        } else {
            c.extend([
                b("BYBOX"),
                rng.gen_range(1..1500).to_string().into_bytes(),
                rng.gen_range(1..1500).to_string().into_bytes(),
            ]);
        }
        c.extend([b("km"), b("WITHDIST"), b("WITHCOORD"), b("WITHHASH")]);
        if q % 3 == 0 {
            c.push(b("ASC"));
        }
        let args = as_slices(&c);
        let (ours, theirs) = (g.cmd(&args), r.cmd(&args));
        assert!(
            ours == theirs || same_elements(&ours, &theirs),
            "{}: ours {} theirs {}",
            show_cmd(&c),
            show(&ours),
            show(&theirs)
        );
    }
}

/// Hand-picked cases (errors in Redis's order of checks, edges, missing
/// keys and members, STORE forms) compared with Redis in both protocols.
#[test]
fn fixed_cases_match_redis() {
    const CASES: &[&str] = &[
        "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOADD Sicily CH XX 13.361389 38.2 Palermo 1 2 new",
        "GEOADD Sicily NX CH 13.361389 38.3 Palermo 1 2 new",
        "GEOADD Sicily 200 100 bad",
        "GEOADD Sicily 10 85.06 bad",
        "GEOADD Sicily 180 85.05112878 edge1 -180 -85.05112878 edge2 0 0 zero",
        "GEOADD Sicily abc 1 x",
        "GEOADD Sicily 1 abc x",
        "GEOADD Sicily NX XX 1 1 x",
        "GEOADD Sicily NX CH XX",
        "GEOADD Sicily 1 1",
        "GEOADD Sicily GT 1 1 x",
        "GEOADD nokey XX 1 1 x",
        "GEOADD",
        "GEOPOS Sicily Palermo Catania nope edge1 edge2 zero",
        "GEOPOS Sicily",
        "GEOPOS nokey a b",
        "GEOHASH Sicily Palermo Catania nope edge1 edge2 zero",
        "GEOHASH nokey a",
        "GEODIST Sicily Palermo Catania",
        "GEODIST Sicily Palermo Catania km",
        "GEODIST Sicily Palermo Catania MI",
        "GEODIST Sicily Palermo Catania ft",
        "GEODIST Sicily Palermo Catania yd",
        "GEODIST Sicily Palermo Catania km x",
        "GEODIST nokey a b yd",
        "GEODIST Sicily Palermo nope",
        "GEODIST Sicily edge1 edge2",
        "GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH ASC",
        "GEORADIUS Sicily 15 37 200 km WITHDIST DESC COUNT 1",
        "GEORADIUS Sicily 15 37 200 km COUNT 1 ANY",
        "GEORADIUS Sicily 15 37 200 km ANY",
        "GEORADIUS Sicily 15 37 200 km COUNT 0",
        "GEORADIUS Sicily 15 37 200 km COUNT",
        "GEORADIUS Sicily 15 37 -1 km",
        "GEORADIUS Sicily 15 37 x km",
        "GEORADIUS Sicily 15 37 1 kmm",
        "GEORADIUS Sicily 15 95 1 km",
        "GEORADIUS Sicily 15 37 200 km STORE dst WITHDIST",
        "GEORADIUS Sicily 15 37 200 km STORE dst",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEORADIUS Sicily 15 37 200 km STOREDIST dst",
        "ZRANGE dst 0 -1",
        "GEORADIUS Sicily 0 0 1 km STORE dst",
        "EXISTS dst",
        "GEORADIUS_RO Sicily 15 37 200 km STORE dst",
        "GEORADIUSBYMEMBER Sicily Palermo 200 km WITHDIST ASC",
        "GEORADIUSBYMEMBER Sicily nope 200 km",
        "GEORADIUSBYMEMBER Sicily nope -200 km",
        "GEORADIUSBYMEMBER nokey nope -200 km",
        "GEORADIUSBYMEMBER nokey nope 200 km STORE dst",
        "GEORADIUSBYMEMBER_RO Sicily Palermo 200 km COUNT 2 WITHHASH",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST",
        "GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 100 mi ASC WITHDIST",
        "GEOSEARCH Sicily FROMMEMBER Palermo FROMLONLAT 1 1 BYRADIUS 100 mi",
        "GEOSEARCH Sicily FROMLONLAT 1 1 FROMMEMBER Palermo BYRADIUS 100 mi",
        "GEOSEARCH Sicily BYRADIUS 100 mi BYBOX 1 1 km FROMLONLAT 1 1",
        "GEOSEARCH Sicily BYRADIUS 100 mi ASC",
        "GEOSEARCH Sicily FROMLONLAT 1 1 COUNT 2",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 10 km STORE x",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 10 km STOREDIST",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 10 km ANY",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX -1 1 km",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX x 1 km",
        "GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 x km",
        "GEOSEARCH Sicily FROMMEMBER zz BYRADIUS 10 km",
        "GEOSEARCH nokey FROMMEMBER zz BYRADIUS 10 km",
        "GEOSEARCH nokey FROMMEMBER zz",
        "GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 0 m WITHDIST",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 400 400 km STOREDIST",
        "ZRANGE dst 0 -1",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 400 400 km COUNT 1",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 400 400 km WITHDIST",
        "GEOSEARCHSTORE dst nokey FROMLONLAT 15 37 BYBOX 400 400 km",
        "EXISTS dst",
        "SET str x",
        "GEOADD str 1 1 a",
        "GEOADD str 1 100 a",
        "GEOPOS str a",
        "GEOHASH str a",
        "GEODIST str a b",
        "GEOSEARCH str FROMMEMBER zz BYRADIUS 10 km",
        "GEORADIUS str 1 1 1 km",
        "GEOSEARCHSTORE dst str FROMLONLAT 1 1 BYRADIUS 1 km",
        "GEORADIUS Sicily 0 0 20000 km WITHDIST ASC",
        "GEOSEARCH Sicily FROMLONLAT 179 84 BYBOX 40000 40000 km WITHDIST ASC",
        "GEOSEARCH Sicily FROMLONLAT -179 -84 BYRADIUS 5000 km WITHDIST ASC",
    ];
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    for resp3 in [false, true] {
        let (mut g, mut r) = conns(&granary, &redis, resp3);
        for c in [&mut g, &mut r] {
            c.cmd(&[b"FLUSHALL"]);
        }
        for case in CASES {
            let args: Vec<&[u8]> = case.split(' ').map(str::as_bytes).collect();
            let (ours, theirs) = (g.cmd(&args), r.cmd(&args));
            assert!(
                ours == theirs || (is_search(args[0]) && same_elements(&ours, &theirs)),
                "resp3 {resp3}: {case}\nours   {}\ntheirs {}",
                show(&ours),
                show(&theirs)
            );
        }
    }
}
