//! HyperLogLog against redis-server, beyond the general differential test
//! (tests/differential.rs, family "hyperloglog"): big sets that go dense,
//! values moved between the two servers with GET/SET, merges of sparse
//! and dense values, and corrupted values.

mod common;

use common::{show, RawConn, ServerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn same(g: &mut RawConn, r: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    let (a, b) = (g.cmd(args), r.cmd(args));
    let shown: Vec<String> = args.iter().take(4).map(|a| show(a)).collect();
    assert_eq!(show(&a), show(&b), "{}", shown.join(" "));
    a
}

fn pfadd_many(g: &mut RawConn, r: &mut RawConn, key: &[u8], from: usize, to: usize) {
    for chunk_start in (from..to).step_by(1000) {
        let elems: Vec<Vec<u8>> = (chunk_start..to.min(chunk_start + 1000))
            .map(|i| format!("element:{i}").into_bytes())
            .collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", key];
        args.extend(elems.iter().map(Vec::as_slice));
        same(g, r, &args);
    }
}

fn int(reply: &[u8]) -> i64 {
    std::str::from_utf8(&reply[1..reply.len() - 2])
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn big_sets_turn_dense_and_match_redis_byte_for_byte() {
    let (gs, rs) = (ServerProc::granary(&[]), ServerProc::redis(&[]));
    let (mut g, mut r) = (gs.raw(), rs.raw());
    let mut last = 0;
    for (key, n) in [(&b"small"[..], 100), (b"medium", 2_000), (b"big", 100_000)] {
        pfadd_many(&mut g, &mut r, key, 0, n);
        let count = int(&same(&mut g, &mut r, &[b"PFCOUNT", key]));
        let err = (count - n as i64).abs() as f64 / n as f64;
        assert!(err < 0.05, "{n} elements estimated as {count}");
        same(&mut g, &mut r, &[b"PFDEBUG", b"ENCODING", key]);
        same(&mut g, &mut r, &[b"GET", key]);
        last = count;
    }
    assert!(last > 0);
    assert_eq!(g.cmd(&[b"PFDEBUG", b"ENCODING", b"big"]), b"+dense\r\n");
    assert_eq!(g.cmd(&[b"PFDEBUG", b"ENCODING", b"small"]), b"+sparse\r\n");
    // The cached count is stored in the value too.
    same(&mut g, &mut r, &[b"GET", b"big"]);
    same(
        &mut g,
        &mut r,
        &[b"PFCOUNT", b"small", b"medium", b"big", b"missing"],
    );
    same(
        &mut g,
        &mut r,
        &[b"PFMERGE", b"merged", b"small", b"medium"],
    );
    same(&mut g, &mut r, &[b"GET", b"merged"]);
    same(&mut g, &mut r, &[b"PFMERGE", b"merged", b"big"]);
    same(&mut g, &mut r, &[b"GET", b"merged"]);
    same(&mut g, &mut r, &[b"PFCOUNT", b"merged"]);
    same(&mut g, &mut r, &[b"PFDEBUG", b"DECODE", b"small"]);
    same(&mut g, &mut r, &[b"PFDEBUG", b"GETREG", b"small"]);
    same(&mut g, &mut r, &[b"GET", b"small"]);
}

#[test]
fn values_move_between_redis_and_granary() {
    let (gs, rs) = (ServerProc::granary(&[]), ServerProc::redis(&[]));
    let (mut g, mut r) = (gs.raw(), rs.raw());
    let plain = |c: &mut RawConn, key: &[u8], n: usize| {
        for i in 0..n {
            c.cmd(&[b"PFADD", key, format!("x{i}").as_bytes()]);
        }
    };
    plain(&mut r, b"from-redis", 3_000);
    plain(&mut g, b"from-granary", 3_000);
    let value = r.cmd(&[b"GET", b"from-redis"]);
    let body = &value[value.iter().position(|&b| b == b'\n').unwrap() + 1..value.len() - 2];
    g.cmd(&[b"SET", b"from-redis", body]);
    let value = g.cmd(&[b"GET", b"from-granary"]);
    let body = &value[value.iter().position(|&b| b == b'\n').unwrap() + 1..value.len() - 2];
    r.cmd(&[b"SET", b"from-granary", body]);
    for key in [&b"from-redis"[..], b"from-granary"] {
        same(&mut g, &mut r, &[b"PFCOUNT", key]);
        same(&mut g, &mut r, &[b"PFADD", key, b"one more"]);
        same(&mut g, &mut r, &[b"GET", key]);
    }
}

#[test]
fn corrupted_values_are_refused_like_redis() {
    let (gs, rs) = (ServerProc::granary(&[]), ServerProc::redis(&[]));
    let (mut g, mut r) = (gs.raw(), rs.raw());
    let mut rng = StdRng::seed_from_u64(3);
    for round in 0..200 {
        let key = format!("h{round}");
        let key = key.as_bytes();
        let n = rng.gen_range(1..3000);
        pfadd_many(&mut g, &mut r, key, 0, n);
        if rng.gen_bool(0.3) {
            same(&mut g, &mut r, &[b"PFDEBUG", b"TODENSE", key]);
        }
        // Overwrite a few bytes anywhere, header included.
        let len = int(&same(&mut g, &mut r, &[b"STRLEN", key]));
        let at = rng.gen_range(0..len).to_string();
        let junk: Vec<u8> = (0..rng.gen_range(1..4)).map(|_| rng.gen()).collect();
        same(&mut g, &mut r, &[b"SETRANGE", key, at.as_bytes(), &junk]);
        same(&mut g, &mut r, &[b"PFCOUNT", key]);
        same(&mut g, &mut r, &[b"PFADD", key, b"a", b"b", b"c"]);
        same(&mut g, &mut r, &[b"PFCOUNT", key, b"h0"]);
        same(&mut g, &mut r, &[b"GET", key]);
    }
    assert_eq!(
        g.cmd(&[b"SET", b"s", b"not an hll at all"]),
        b"+OK\r\n".to_vec()
    );
    same(&mut g, &mut r, &[b"SET", b"s", b"not an hll at all"]);
    same(&mut g, &mut r, &[b"PFADD", b"s", b"x"]);
    same(&mut g, &mut r, &[b"PFCOUNT", b"s"]);
    same(&mut g, &mut r, &[b"PFMERGE", b"d", b"s"]);
    same(&mut g, &mut r, &[b"LPUSH", b"l", b"x"]);
    same(&mut g, &mut r, &[b"PFCOUNT", b"l"]);
    assert_eq!(g.cmd(&[b"PFSELFTEST"]), b"+OK\r\n");
}
