//! Bitmaps against real servers, beyond the short strings of the general
//! differential test (tests/differential.rs, family "bitmap"):
//!
//! - megabyte strings: BITCOUNT and BITPOS over random BYTE/BIT ranges,
//!   BITOP of several keys, BITFIELD at far offsets, replies compared with
//!   redis-server byte for byte;
//! - Redis 7.4's argument checking order for BITCOUNT/BITPOS (7.0, the
//!   differential oracle, looked the key up first), from the 7.4 source;
//! - SETBIT growing a string and WATCH seeing bit changes.

mod common;

use common::{show, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn cmd(c: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    c.cmd(args)
}

fn same(g: &mut RawConn, r: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    let (a, b) = (cmd(g, args), cmd(r, args));
    let shown: Vec<String> = args.iter().map(|a| show(&a[..a.len().min(40)])).collect();
    assert_eq!(show(&a), show(&b), "{}", shown.join(" "));
    a
}

#[test]
fn megabyte_bitmaps_match_redis() {
    let (gs, rs) = (ServerProc::granary(&[]), ServerProc::redis(&[]));
    let (mut g, mut r) = (gs.raw(), rs.raw());
    let mut rng = StdRng::seed_from_u64(42);
    // Dense, sparse and all-ones strings of different lengths.
    let mut values: Vec<Vec<u8>> = Vec::new();
    for (len, density) in [(1 << 20, 0.5), (3 << 19, 0.001), ((1 << 20) + 13, 1.0)] {
        let v: Vec<u8> = (0..len)
            .map(|_| (0..8).fold(0u8, |b, i| b | (u8::from(rng.gen_bool(density)) << i)))
            .collect();
        values.push(v);
    }
    let keys: [&[u8]; 3] = [b"dense", b"sparse", b"ones"];
    for (k, v) in keys.iter().zip(&values) {
        same(&mut g, &mut r, &[b"SET", k, v]);
    }
    for _ in 0..300 {
        let k = keys[rng.gen_range(0..3)];
        let len = 1i64 << 23;
        let (a, b) = (rng.gen_range(-len..len), rng.gen_range(-len..len));
        let (a, b) = (a.to_string(), b.to_string());
        let unit: &[u8] = if rng.gen_bool(0.5) { b"BIT" } else { b"BYTE" };
        same(
            &mut g,
            &mut r,
            &[b"BITCOUNT", k, a.as_bytes(), b.as_bytes(), unit],
        );
        let bit: &[u8] = if rng.gen_bool(0.5) { b"1" } else { b"0" };
        same(
            &mut g,
            &mut r,
            &[b"BITPOS", k, bit, a.as_bytes(), b.as_bytes(), unit],
        );
        same(&mut g, &mut r, &[b"BITPOS", k, bit, a.as_bytes()]);
    }
    for k in keys {
        same(&mut g, &mut r, &[b"BITCOUNT", k]);
        same(&mut g, &mut r, &[b"BITPOS", k, b"0"]);
        same(&mut g, &mut r, &[b"BITPOS", k, b"1"]);
    }
    for op in ["AND", "OR", "XOR"] {
        same(
            &mut g,
            &mut r,
            &[
                b"BITOP",
                op.as_bytes(),
                b"dest",
                b"dense",
                b"sparse",
                b"ones",
                b"missing",
            ],
        );
        same(&mut g, &mut r, &[b"GET", b"dest"]);
    }
    same(&mut g, &mut r, &[b"BITOP", b"NOT", b"dest", b"sparse"]);
    same(&mut g, &mut r, &[b"GET", b"dest"]);
    for _ in 0..200 {
        let offset = rng.gen_range(0..(8u64 << 20)).to_string();
        let ty = format!("i{}", rng.gen_range(1..=64));
        let n = rng.gen::<i64>().to_string();
        same(
            &mut g,
            &mut r,
            &[
                b"BITFIELD",
                b"dense",
                b"GET",
                ty.as_bytes(),
                offset.as_bytes(),
                b"INCRBY",
                ty.as_bytes(),
                offset.as_bytes(),
                n.as_bytes(),
            ],
        );
    }
    same(&mut g, &mut r, &[b"GET", b"dense"]);
}

#[test]
fn range_arguments_are_checked_before_the_key_as_in_redis_7_4() {
    let s = ServerProc::granary(&[]);
    let mut c = s.raw();
    cmd(&mut c, &[b"LPUSH", b"list", b"x"]);
    let syntax = b"-ERR syntax error\r\n".to_vec();
    let not_int = b"-ERR value is not an integer or out of range\r\n".to_vec();
    for key in [&b"missing"[..], b"list"] {
        assert_eq!(cmd(&mut c, &[b"BITCOUNT", key, b"0"]), syntax);
        assert_eq!(cmd(&mut c, &[b"BITCOUNT", key, b"x", b"1"]), not_int);
        assert_eq!(
            cmd(&mut c, &[b"BITCOUNT", key, b"0", b"1", b"bits"]),
            syntax
        );
        assert_eq!(cmd(&mut c, &[b"BITPOS", key, b"1", b"x"]), not_int);
        assert_eq!(cmd(&mut c, &[b"BITPOS", key, b"1", b"0", b"x"]), not_int);
        assert_eq!(
            cmd(&mut c, &[b"BITPOS", key, b"1", b"0", b"1", b"bits"]),
            syntax
        );
    }
    // Valid arguments: a missing key counts nothing, a list is WRONGTYPE.
    assert_eq!(
        cmd(&mut c, &[b"BITCOUNT", b"missing", b"0", b"-1", b"BIT"]),
        b":0\r\n"
    );
    assert_eq!(cmd(&mut c, &[b"BITPOS", b"missing", b"0", b"5"]), b":0\r\n");
    assert_eq!(cmd(&mut c, &[b"BITPOS", b"missing", b"1"]), b":-1\r\n");
    assert!(cmd(&mut c, &[b"BITCOUNT", b"list", b"0", b"-1"]).starts_with(b"-WRONGTYPE"));
}

#[test]
fn setbit_grows_the_string_and_invalidates_watch() {
    let s = ServerProc::granary(&[]);
    let (mut c, mut other) = (s.raw(), s.raw());
    assert_eq!(cmd(&mut c, &[b"SETBIT", b"b", b"8000007", b"1"]), b":0\r\n");
    assert_eq!(cmd(&mut c, &[b"STRLEN", b"b"]), b":1000001\r\n");
    assert_eq!(cmd(&mut c, &[b"GETBIT", b"b", b"8000007"]), b":1\r\n");
    assert_eq!(cmd(&mut c, &[b"BITCOUNT", b"b"]), b":1\r\n");
    assert_eq!(cmd(&mut c, &[b"BITPOS", b"b", b"1"]), b":8000007\r\n");

    // Setting a bit to the value it has is no change; flipping one is.
    cmd(&mut c, &[b"WATCH", b"b"]);
    assert_eq!(
        cmd(&mut other, &[b"SETBIT", b"b", b"8000007", b"1"]),
        b":1\r\n"
    );
    cmd(&mut c, &[b"MULTI"]);
    cmd(&mut c, &[b"PING"]);
    assert_eq!(cmd(&mut c, &[b"EXEC"]), b"*1\r\n+PONG\r\n");
    cmd(&mut c, &[b"WATCH", b"b"]);
    assert_eq!(cmd(&mut other, &[b"SETBIT", b"b", b"3", b"1"]), b":0\r\n");
    cmd(&mut c, &[b"MULTI"]);
    cmd(&mut c, &[b"PING"]);
    assert_eq!(cmd(&mut c, &[b"EXEC"]), b"*-1\r\n");
}
