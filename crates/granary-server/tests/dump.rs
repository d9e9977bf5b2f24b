//! DUMP and RESTORE against a real redis-server (7.0): payloads move both
//! ways with equal values, Granary's payloads are byte-identical to Redis's
//! where Redis's output is deterministic, errors match byte for byte, and
//! corrupt payloads get an error reply without hurting the server.

mod common;

use common::{RawConn, ServerProc};
use granary_persistence::dump::crc64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Connection;

type Cmd = Vec<Vec<u8>>;

/// A key of the fixture: the commands that build it, and whether Redis
/// 7.0's payload for it is deterministic (so Granary's must be identical).
struct Fixture {
    key: String,
    build: Vec<Cmd>,
    identical: bool,
}

fn cmd(parts: &[&[u8]]) -> Cmd {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// A command `name key` followed by `items`, cut into batches.
fn batched(name: &str, key: &str, items: Vec<Vec<u8>>) -> Vec<Cmd> {
    items
        .chunks(1000)
        .map(|chunk| {
            let mut c = vec![name.as_bytes().to_vec(), key.as_bytes().to_vec()];
            c.extend(chunk.iter().cloned());
            c
        })
        .collect()
}

fn strs<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<Vec<u8>> {
    v.into_iter().map(|x| x.to_string().into_bytes()).collect()
}

fn fixtures() -> Vec<Fixture> {
    let mut rng = StdRng::seed_from_u64(7);
    let binary: Vec<u8> = (0..=255u8).collect();
    let random: Vec<u8> = (0..1000).map(|_| rng.gen()).collect();
    let text: Vec<u8> = (0..100_000).map(|i| b"granary "[i % 8]).collect();
    let mut out = Vec::new();
    let mut add = |key: &str, build: Vec<Cmd>, identical: bool| {
        out.push(Fixture {
            key: key.to_string(),
            build,
            identical,
        })
    };
    // Strings: every integer encoding, empty, binary, LZF and raw long ones.
    let strings: Vec<(&str, Vec<u8>)> = vec![
        ("s:hello", b"hello".to_vec()),
        ("s:empty", Vec::new()),
        ("s:int8", b"12".to_vec()),
        ("s:int16", b"-300".to_vec()),
        ("s:int32", b"70000".to_vec()),
        ("s:int64", b"4294967296".to_vec()),
        ("s:minint", i64::MIN.to_string().into_bytes()),
        ("s:zero-padded", b"0123".to_vec()),
        ("s:binary", binary.clone()),
        ("s:lzf", vec![b'a'; 1000]),
        ("s:random", random.clone()),
        ("s:text", text.clone()),
    ];
    for (k, v) in strings {
        add(k, vec![cmd(&[b"SET", k.as_bytes(), &v])], true);
    }
    // Lists: one listpack node with every entry encoding; many nodes.
    let mut mixed = strs([
        "0",
        "127",
        "128",
        "-1",
        "-4096",
        "4095",
        "4096",
        "32767",
        "-32768",
        "40000",
        "-8388608",
        "8388608",
        "2147483648",
        "-2147483649",
    ]);
    mixed.extend(strs([i64::MAX, i64::MIN]));
    mixed.extend([
        Vec::new(),
        binary.clone(),
        b"x".repeat(70),
        b"y".repeat(5000),
    ]);
    add("l:mixed", batched("RPUSH", "l:mixed", mixed), true);
    add(
        "l:small",
        batched("RPUSH", "l:small", strs(["a", "b", "c"])),
        true,
    );
    // Cut into the same nodes as Redis, but the LZF output for 8 KB nodes
    // differs (and Redis's liblzf starts from an uninitialized hash table).
    add(
        "l:10k",
        batched(
            "RPUSH",
            "l:10k",
            strs((0..10_000).map(|i| format!("elem:{i}"))),
        ),
        false,
    );
    add("l:ints", batched("RPUSH", "l:ints", strs(0..5000)), true);
    add(
        "l:big",
        batched(
            "RPUSH",
            "l:big",
            vec![text[..20_000].to_vec(), b"z".to_vec()],
        ),
        true,
    );
    // Sets: intsets of each width, and string sets.
    add("i:16", batched("SADD", "i:16", strs([3, 1, 2, -5])), true);
    add(
        "i:32",
        batched("SADD", "i:32", strs([1, 70000, -70000])),
        true,
    );
    add(
        "i:64",
        batched("SADD", "i:64", strs([1, i64::MAX, i64::MIN])),
        true,
    );
    add(
        "i:500",
        batched("SADD", "i:500", strs((0..500).map(|i| i * 7))),
        true,
    );
    add(
        "set:small",
        batched("SADD", "set:small", strs(["a", "b", "1", ""])),
        false,
    );
    add(
        "set:10k",
        batched(
            "SADD",
            "set:10k",
            strs((0..10_000).map(|i| format!("m{i}"))),
        ),
        false,
    );
    add(
        "set:ints10k",
        batched("SADD", "set:ints10k", strs(0..10_000)),
        false,
    );
    // Hashes: listpack (ints, empty values, binary) and hashtable.
    let mut small = strs(["f", "v", "n", "12", "neg", "-70000", "e", ""]);
    small.extend([b"bin".to_vec(), binary[..40].to_vec()]);
    add("h:small", batched("HSET", "h:small", small), true);
    add(
        "h:longval",
        batched("HSET", "h:longval", vec![b"f".to_vec(), b"v".repeat(100)]),
        false,
    );
    let fields: Vec<Vec<u8>> = (0..10_000)
        .flat_map(|i| {
            [
                format!("field:{i}").into_bytes(),
                format!("{i}").into_bytes(),
            ]
        })
        .collect();
    add("h:10k", batched("HSET", "h:10k", fields), false);
    // Sorted sets: listpack (integer, fractional, infinite scores) and skiplist.
    let z = strs([
        "1", "a", "2.5", "b", "-3", "c", "0.1", "d", "inf", "e", "-inf", "f", "1e20", "g",
    ]);
    add("z:small", batched("ZADD", "z:small", z), true);
    add(
        "z:long",
        batched("ZADD", "z:long", vec![b"1".to_vec(), b"m".repeat(100)]),
        true,
    );
    let members: Vec<Vec<u8>> = (0..10_000)
        .flat_map(|i| {
            [
                format!("{}", (i * 37) % 1000).into_bytes(),
                format!("m{i}").into_bytes(),
            ]
        })
        .collect();
    add("z:10k", batched("ZADD", "z:10k", members), true);
    out
}

fn run(con: &mut Connection, c: &Cmd) {
    let mut r = redis::cmd(std::str::from_utf8(&c[0]).unwrap());
    for a in &c[1..] {
        r.arg(&a[..]);
    }
    if let Err(e) = r.query::<redis::Value>(con) {
        panic!("{}: {e}", common::show_cmd(c));
    }
}

fn dump(con: &mut Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(con).expect("DUMP")
}

fn restore(con: &mut Connection, key: &str, payload: &[u8]) {
    let _: () = redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(payload)
        .query(con)
        .unwrap_or_else(|e| panic!("RESTORE {key}: {e}"));
}

/// The key's type and contents in a comparable form.
fn contents(con: &mut Connection, key: &str) -> (String, Vec<Vec<u8>>) {
    let t: String = redis::cmd("TYPE").arg(key).query(con).unwrap();
    let q = |c: &mut redis::Cmd, con: &mut Connection| -> Vec<Vec<u8>> { c.query(con).unwrap() };
    let items = match t.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query(con).unwrap()],
        "list" => q(redis::cmd("LRANGE").arg(key).arg(0).arg(-1), con),
        "zset" => {
            // Scores as numbers: Redis 7.0 prints 0.1 as 0.10000000000000001.
            let v = q(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
                con,
            );
            v.chunks(2)
                .flat_map(|p| {
                    let score: f64 = std::str::from_utf8(&p[1]).unwrap().parse().unwrap();
                    [p[0].clone(), score.to_bits().to_le_bytes().to_vec()]
                })
                .collect()
        }
        "set" => {
            let mut v = q(redis::cmd("SMEMBERS").arg(key), con);
            v.sort();
            v
        }
        "hash" => {
            let v = q(redis::cmd("HGETALL").arg(key), con);
            let mut pairs: Vec<Vec<u8>> = v.chunks(2).map(|p| p.concat()).collect();
            pairs.sort();
            pairs
        }
        other => panic!("unexpected type {other} for {key}"),
    };
    (t, items)
}

fn encoding(con: &mut Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(con)
        .unwrap()
}

fn build_both(g: &mut Connection, r: &mut Connection, fx: &[Fixture]) {
    for f in fx {
        for c in &f.build {
            run(g, c);
            run(r, c);
        }
    }
}

#[test]
fn payloads_move_both_ways_with_equal_values() {
    both_ways(&[]);
}

/// With tiny encoding thresholds on both sides, a restored value converts
/// on load exactly as the commands that built it convert.
#[test]
fn restored_values_convert_at_the_configured_thresholds() {
    both_ways(&[
        "--hash-max-listpack-entries",
        "3",
        "--zset-max-listpack-entries",
        "3",
        "--set-max-intset-entries",
        "3",
        "--list-max-listpack-size",
        "4",
    ]);
}

fn both_ways(config: &[&str]) {
    let granary = ServerProc::granary(config);
    let redis = ServerProc::redis(config);
    let (mut g, mut r) = (granary.conn(), redis.conn());
    let fx = fixtures();
    build_both(&mut g, &mut r, &fx);
    let mut differ = Vec::new();
    for f in &fx {
        let k = f.key.as_str();
        let want = contents(&mut r, k);
        assert_eq!(contents(&mut g, k), want, "{k}: built differently");
        // Redis -> Granary: same value, and the encoding Granary's own
        // commands would have given it.
        let from_redis = dump(&mut r, k);
        let gk = format!("from-redis:{k}");
        restore(&mut g, &gk, &from_redis);
        assert_eq!(
            contents(&mut g, &gk),
            want,
            "{k}: Redis payload into Granary"
        );
        assert_eq!(
            encoding(&mut g, &gk),
            encoding(&mut g, k),
            "{k}: encoding in Granary"
        );
        // Granary -> Redis: same value, and Redis's own encoding for it.
        let from_granary = dump(&mut g, k);
        let rk = format!("from-granary:{k}");
        restore(&mut r, &rk, &from_granary);
        assert_eq!(
            contents(&mut r, &rk),
            want,
            "{k}: Granary payload into Redis"
        );
        assert_eq!(
            encoding(&mut r, &rk),
            encoding(&mut r, k),
            "{k}: encoding in Redis"
        );
        // Granary reads back its own payload too.
        let own = format!("own:{k}");
        restore(&mut g, &own, &from_granary);
        assert_eq!(contents(&mut g, &own), want, "{k}: Granary round trip");
        // With tiny thresholds, small values become (unordered) hashtables.
        if f.identical && config.is_empty() && from_granary != from_redis {
            differ.push(k.to_string());
        }
    }
    assert!(
        differ.is_empty(),
        "payloads differ from Redis's for {differ:?}"
    );
}

/// Raw replies of the same commands from both servers.
fn same_replies(g: &mut RawConn, r: &mut RawConn, cmds: &[Vec<&[u8]>]) {
    for c in cmds {
        let (a, b) = (g.cmd(c), r.cmd(c));
        assert_eq!(
            common::show(&a),
            common::show(&b),
            "{}",
            common::show_cmd(&c.iter().map(|x| x.to_vec()).collect::<Vec<_>>())
        );
    }
}

/// A payload with `body` and a correct footer for RDB `version`.
fn payload(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn restore_options_and_errors_match_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let (mut g, mut r) = (granary.raw(), redis.raw());
    let good = payload(b"\x00\x05hello", 10);
    let mut bad_crc = good.clone();
    bad_crc[3] ^= 1;
    let newer = payload(b"\x00\x05hello", 13);
    let bad_type = payload(b"\x63\x05hello", 10);
    let truncated = payload(b"\x00\x05hel", 10);
    let empty_list = payload(b"\x12\x00", 10);
    let dup_set = payload(b"\x02\x02\x01a\x01a", 10);
    let g_ = &good[..];
    let long = b"abc".repeat(100);
    let cmds: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k", b"0", g_],
        vec![b"GET", b"k"],
        vec![b"RESTORE", b"k", b"0", g_],
        vec![b"RESTORE", b"k", b"abc", g_],
        vec![b"RESTORE", b"k", b"0", g_, b"REPLACE"],
        vec![b"RESTORE", b"k2", b"abc", g_],
        vec![b"RESTORE", b"k2", b"-1", g_],
        vec![b"RESTORE", b"k2", b"0", g_, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"k2", b"0", g_, b"IDLETIME", b"x"],
        vec![b"RESTORE", b"k2", b"0", g_, b"FREQ", b"256"],
        vec![b"RESTORE", b"k2", b"0", g_, b"FREQ", b"-1"],
        vec![
            b"RESTORE",
            b"k2",
            b"0",
            g_,
            b"FREQ",
            b"5",
            b"IDLETIME",
            b"5",
        ],
        vec![
            b"RESTORE",
            b"k2",
            b"0",
            g_,
            b"IDLETIME",
            b"5",
            b"FREQ",
            b"5",
        ],
        vec![b"RESTORE", b"k2", b"0", g_, b"IDLETIME"],
        vec![b"RESTORE", b"k2", b"0", g_, b"BOGUS"],
        vec![b"RESTORE", b"k2", b"0", b"short"],
        vec![b"RESTORE", b"k2", b"0", &bad_crc],
        vec![b"RESTORE", b"k2", b"0", &newer],
        vec![b"RESTORE", b"k2", b"0", &bad_type],
        vec![b"RESTORE", b"k2", b"0", &truncated],
        vec![b"RESTORE", b"k2", b"0", &empty_list],
        vec![b"RESTORE", b"k2", b"0", &dup_set],
        vec![b"EXISTS", b"k2"],
        // A TTL already past: OK, and REPLACE still deletes the old key.
        vec![b"RESTORE", b"k", b"1", g_, b"REPLACE", b"ABSTTL"],
        vec![b"EXISTS", b"k"],
        vec![b"RESTORE", b"k3", b"100000", g_, b"IDLETIME", b"1000"],
        vec![b"OBJECT", b"IDLETIME", b"k3"],
        vec![b"RESTORE", b"k4", b"0", g_, b"FREQ", b"10"],
        vec![b"DUMP", b"nosuchkey"],
        // DUMP honours rdbcompression.
        vec![b"SET", b"long", &long],
        vec![b"CONFIG", b"SET", b"rdbcompression", b"no"],
        vec![b"DUMP", b"long"],
        vec![b"CONFIG", b"SET", b"rdbcompression", b"yes"],
        vec![b"DUMP", b"long"],
        vec![b"DUMP"],
        vec![b"RESTORE", b"k"],
    ];
    same_replies(&mut g, &mut r, &cmds);
    // The TTL was applied.
    let pttl = g.cmd(&[b"PTTL", b"k3"]);
    let ms: i64 = std::str::from_utf8(&pttl[1..pttl.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 50_000 && ms <= 100_000, "PTTL {ms}");
}

/// Every valid payload of the fixture, cut short, with bytes flipped (the
/// checksum recomputed so the parser sees the damage), or replaced by
/// garbage: always an error or OK reply, never a dead server.
#[test]
fn corrupt_payloads_are_refused_safely() {
    let mut granary = ServerProc::granary(&[]);
    let mut g = granary.conn();
    let small: Vec<Fixture> = fixtures()
        .into_iter()
        .filter(|f| !f.key.contains("10k") && f.key != "s:text")
        .collect();
    for f in &small {
        for c in &f.build {
            run(&mut g, c);
        }
    }
    let mut raw = granary.raw();
    let mut rng = StdRng::seed_from_u64(42);
    let mut tries = 0;
    for f in &small {
        let p = dump(&mut g, &f.key);
        let body = &p[..p.len() - 10];
        let mut attempts: Vec<Vec<u8>> = Vec::new();
        for cut in (0..body.len()).step_by(1.max(body.len() / 20)) {
            attempts.push(payload(&body[..cut], 10));
        }
        for _ in 0..60 {
            let mut b = body.to_vec();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            attempts.push(payload(&b, 10));
        }
        // Huge lengths where the first length of the body sits.
        for big in [
            &b"\x80\xff\xff\xff\xff"[..],
            b"\x81\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            let mut b = vec![body[0]];
            b.extend_from_slice(big);
            b.extend_from_slice(&body[1..]);
            attempts.push(payload(&b, 10));
        }
        for a in attempts {
            let reply = raw.cmd(&[b"RESTORE", b"victim", b"0", &a, b"REPLACE"]);
            assert!(
                reply == b"+OK\r\n" || reply.starts_with(b"-ERR Bad data format"),
                "{}: {}",
                f.key,
                common::show(&reply)
            );
            tries += 1;
        }
    }
    for _ in 0..300 {
        let n = rng.gen_range(10..200);
        let garbage: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        let reply = raw.cmd(&[
            b"RESTORE",
            b"victim",
            b"0",
            &payload(&garbage, 10),
            b"REPLACE",
        ]);
        assert!(
            reply == b"+OK\r\n" || reply.starts_with(b"-ERR"),
            "{}",
            common::show(&reply)
        );
        let reply = raw.cmd(&[b"RESTORE", b"victim", b"0", &garbage, b"REPLACE"]);
        assert!(reply.starts_with(b"-ERR"), "{}", common::show(&reply));
    }
    assert!(tries > 500);
    granary.assert_alive();
}

// ---------------------------------------------------------------- RDB files

fn default_limits() -> granary_persistence::Limits {
    granary_persistence::Limits::default()
}

/// A value read from a file, in the form [`contents`] gives.
fn value_contents(v: &granary_keyspace::Value) -> (String, Vec<Vec<u8>>) {
    use granary_keyspace::Value;
    let items = match v {
        Value::Str(s) => vec![s.to_vec()],
        Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
        Value::ZSet(z) => z
            .iter_from(0, false)
            .flat_map(|(m, s)| [m.to_vec(), s.to_bits().to_le_bytes().to_vec()])
            .collect(),
        Value::Set(s) => {
            let mut v: Vec<Vec<u8>> = s.iter().map(|e| e.to_vec()).collect();
            v.sort();
            v
        }
        Value::Hash(h) => {
            let mut v: Vec<Vec<u8>> = h.iter().map(|(f, x)| [f, x].concat()).collect();
            v.sort();
            v
        }
        Value::Stream(s) => vec![s.len().to_string().into_bytes()],
    };
    (v.type_name().to_string(), items)
}

fn select(con: &mut Connection, db: u64) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

fn pexpiretime(con: &mut Connection, key: &[u8]) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(con).unwrap()
}

fn read_file(path: &std::path::Path) -> Vec<granary_persistence::file::Item> {
    let f = std::fs::File::open(path).expect("open rdb");
    let len = f.metadata().unwrap().len();
    let mut items = Vec::new();
    granary_persistence::file::read(std::io::BufReader::new(f), len, &default_limits(), |it| {
        items.push(it)
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    items
}

/// Every item is in `con`'s server with the same value and expire time,
/// and nothing else is.
fn assert_server_holds(con: &mut Connection, items: &[granary_persistence::file::Item]) {
    let mut per_db = std::collections::BTreeMap::new();
    for it in items {
        select(con, it.db);
        let key = std::str::from_utf8(&it.key).unwrap();
        assert_eq!(contents(con, key), value_contents(&it.value), "{key}");
        let want = it.expire_ms.map_or(-1, |t| t as i64);
        assert_eq!(pexpiretime(con, &it.key), want, "{key} expire");
        *per_db.entry(it.db).or_insert(0) += 1;
    }
    for (db, n) in per_db {
        select(con, db);
        let size: i64 = redis::cmd("DBSIZE").query(con).unwrap();
        assert_eq!(size, n, "db {db}");
    }
}

/// Reads a dump.rdb that redis-server saved (every type and encoding, two
/// databases, TTLs), then writes the same keys with the `Writer` and has a
/// fresh redis-server load that file: both hold the same keys and TTLs.
#[test]
fn rdb_files_round_trip_with_redis() {
    let dir = std::env::temp_dir().join(format!("granary-rdb-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let redis = ServerProc::redis(&["--dir", d, "--dbfilename", "from-redis.rdb"]);
    let mut r = redis.conn();
    let fx = fixtures();
    for f in &fx {
        for c in &f.build {
            run(&mut r, c);
        }
    }
    let far = 4_000_000_000_000i64;
    let _: () = redis::cmd("PEXPIREAT")
        .arg("s:hello")
        .arg(far)
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("PEXPIREAT")
        .arg("z:10k")
        .arg(far + 1)
        .query(&mut r)
        .unwrap();
    select(&mut r, 2);
    let _: () = redis::cmd("SET")
        .arg("other-db")
        .arg("v")
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("PEXPIREAT")
        .arg("other-db")
        .arg(far)
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut r).unwrap();

    let items = read_file(&dir.join("from-redis.rdb"));
    assert_eq!(items.len(), fx.len() + 1);
    assert_server_holds(&mut r, &items);

    // Write them back out, grouped by database as they came.
    let out_path = dir.join("from-granary.rdb");
    let file = std::io::BufWriter::new(std::fs::File::create(&out_path).unwrap());
    let mut w = granary_persistence::file::Writer::new(file, default_limits(), 0).unwrap();
    let mut current = None;
    for it in &items {
        if current != Some(it.db) {
            let keys = items.iter().filter(|x| x.db == it.db);
            let expires = keys.clone().filter(|x| x.expire_ms.is_some()).count();
            w.select_db(it.db, keys.count() as u64, expires as u64)
                .unwrap();
            current = Some(it.db);
        }
        w.key(&it.key, &it.value, it.expire_ms).unwrap();
    }
    w.finish().unwrap();
    let loaded = ServerProc::redis(&["--dir", d, "--dbfilename", "from-granary.rdb"]);
    assert_server_holds(&mut loaded.conn(), &items);
    // And Granary's own file reads back the same.
    let again = read_file(&out_path);
    assert_eq!(again.len(), items.len());
    drop(loaded);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------- Redis 7.2+ encodings

/// Valkey writes RDB 80 payloads, which Redis 7.4 (and Granary) refuse;
/// the value bytes are Redis 7.2's, so give them Redis 7.2's footer.
fn as_redis_7_2(p: &[u8]) -> Vec<u8> {
    payload(&p[..p.len() - 10], 11)
}

/// Values move between Granary and a server with Redis 7.4's encodings
/// (listpack sets, listpack lists): each side ends up with the encoding its
/// own commands would have chosen.
#[test]
fn payloads_move_both_ways_with_redis_7_4_encodings() {
    let Some(v) = ServerProc::valkey(&[]) else {
        return;
    };
    let granary = ServerProc::granary(&[]);
    let mut g = granary.conn();
    let mut k = redis::Client::open(format!("redis://127.0.0.1:{}/", v.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let fx = fixtures();
    build_both(&mut g, &mut k, &fx);
    let refused: String = redis::cmd("RESTORE")
        .arg("x")
        .arg(0)
        .arg(dump(&mut k, "s:hello"))
        .query::<()>(&mut g)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("version or checksum"), "{refused}");
    for f in &fx {
        let key = f.key.as_str();
        let want = contents(&mut k, key);
        let from_valkey = as_redis_7_2(&dump(&mut k, key));
        let gk = format!("from-valkey:{key}");
        restore(&mut g, &gk, &from_valkey);
        assert_eq!(contents(&mut g, &gk), want, "{key}: into Granary");
        assert_eq!(encoding(&mut g, &gk), encoding(&mut g, key), "{key}");
        let vk = format!("from-granary:{key}");
        restore(&mut k, &vk, &dump(&mut g, key));
        assert_eq!(contents(&mut k, &vk), want, "{key}: into Valkey");
        assert_eq!(encoding(&mut k, &vk), encoding(&mut k, key), "{key}");
    }
}
