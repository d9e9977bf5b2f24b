//! Lua scripting: EVAL & co. and FUNCTION/FCALL, compared byte for byte
//! with a real redis-server (replies and error texts, RESP2 and RESP3), plus
//! what a differential run cannot show: atomicity with undeclared keys,
//! BUSY while a script loops, SCRIPT KILL, UNKILLABLE and SHUTDOWN NOSAVE.

mod common;

use common::{show, RawConn, ServerProc};
use std::time::{Duration, Instant};

type Cmd = Vec<&'static [u8]>;

fn c(args: &[&'static str]) -> Cmd {
    args.iter().map(|a| a.as_bytes()).collect()
}

fn eval(script: &'static str, rest: &[&'static str]) -> Cmd {
    let mut v: Cmd = vec![b"EVAL", script.as_bytes()];
    v.extend(rest.iter().map(|a| a.as_bytes()));
    v
}

/// Commands whose replies must match Redis exactly. Scripts whose text
/// appears in an error (the SHA1) are the same on both sides.
fn cases() -> Vec<Cmd> {
    vec![
        c(&["SET", "s", "v"]),
        c(&["RPUSH", "l", "a", "b", "c"]),
        c(&["HSET", "h", "f", "1", "g", "2"]),
        c(&["SADD", "st", "m"]),
        c(&["ZADD", "z", "1.5", "m"]),
        // Conversions, Lua to RESP.
        eval("return 1", &["0"]),
        eval("return 3.99", &["0"]),
        eval("return -3.99", &["0"]),
        eval("return 'str'", &["0"]),
        eval("return true", &["0"]),
        eval("return false", &["0"]),
        eval("return nil", &["0"]),
        eval("return {1, 2, {3, 'x'}, nil, 5}", &["0"]),
        eval("return {1, false, 3}", &["0"]),
        eval("return {ok='fine'}", &["0"]),
        eval("return {ok='a\\r\\nb'}", &["0"]),
        eval("return {err='bad'}", &["0"]),
        eval("return {err='MY code'}", &["0"]),
        eval("return {1, {err='inner'}, 3}", &["0"]),
        eval("return redis.error_reply('X y')", &["0"]),
        eval("return redis.error_reply('noc')", &["0"]),
        eval("return redis.error_reply('-ERR dash')", &["0"]),
        eval("return redis.status_reply('PONG')", &["0"]),
        eval("return redis.error_reply(1)", &["0"]),
        eval("return {double=3.5}", &["0"]),
        eval("return {map={a=1}}", &["0"]),
        eval("return {set={a=true}}", &["0"]),
        eval("return {big_number='123456789012345678901234567890'}", &["0"]),
        // RESP to Lua.
        eval("return redis.call('get', KEYS[1])", &["1", "s"]),
        eval("return redis.call('get', 'nokey')", &["0"]),
        eval("return type(redis.call('get', 'nokey'))", &["0"]),
        eval("return redis.call('lrange', 'l', 0, -1)", &["0"]),
        eval("return redis.call('hgetall', 'h')", &["0"]),
        eval("return redis.call('set', 'k2', 'v')", &["0"]),
        eval("return redis.call('set', 'k3', 'v')['ok']", &["0"]),
        eval("return redis.call('incrby', 'n', 5)", &["0"]),
        eval("return redis.call('incrbyfloat', 'f', 1.5)", &["0"]),
        eval("return redis.call('zscore', 'z', 'm')", &["0"]),
        eval("return redis.pcall('lpush', 's', 'a')", &["0"]),
        eval("return redis.pcall('lpush', 's', 'a')['err']", &["0"]),
        eval("return redis.call('exists', KEYS[1], KEYS[2])", &["2", "s", "l"]),
        eval("return ARGV", &["0", "a", "b"]),
        eval("return KEYS", &["2", "k1", "k2", "a1"]),
        eval("return #ARGV", &["1", "k", "a", "b"]),
        eval("return redis.call('ping')", &["0"]),
        eval("return redis.call('echo', 12)", &["0"]),
        eval("return redis.call('echo', 1.5)", &["0"]),
        // RESP3 inside the script.
        eval("redis.setresp(3); return redis.call('hgetall', 'h')", &["0"]),
        eval("redis.setresp(3); return redis.call('smembers', 'st')", &["0"]),
        eval("redis.setresp(3); return redis.call('zscore', 'z', 'm')", &["0"]),
        eval("redis.setresp(3); return redis.call('get', 'nokey')", &["0"]),
        eval("redis.setresp(3); return type(redis.call('get', 'nokey'))", &["0"]),
        eval("redis.setresp(3); return redis.call('zscore', 'z', 'm')['double']", &["0"]),
        eval("redis.setresp(3); return redis.call('hgetall', 'h')['map']['f']", &["0"]),
        eval("redis.setresp(3); return true", &["0"]),
        eval("redis.setresp(3); return false", &["0"]),
        // Errors.
        eval("return x", &["0"]),
        eval("x = 1", &["0"]),
        eval("return redis.call('incr')", &["0"]),
        eval("return redis.call('nosuch')", &["0"]),
        eval("return redis.call()", &["0"]),
        eval("return redis.pcall()", &["0"]),
        eval("return redis.call('lpush', 's', 'a')", &["0"]),
        eval("return redis.call('set', 'a', {})", &["0"]),
        eval("return redis.call('multi')", &["0"]),
        eval("return redis.call('eval', 'return 1', 0)", &["0"]),
        eval("return redis.call('subscribe', 'c')", &["0"]),
        eval("return 1 +", &["0"]),
        eval("error('boom')", &["0"]),
        eval("error({err='MY boom'})", &["0"]),
        eval("local t = nil\nreturn t.x", &["0"]),
        eval("\n\nreturn redis.call('incr', 's')", &["0"]),
        eval("return redis.setresp(4)", &["0"]),
        eval("return redis.sha1hex()", &["0"]),
        eval("os.exit()", &["0"]),
        eval("print('hi')", &["0"]),
        eval("return dofile", &["0"]),
        eval("return loadfile", &["0"]),
        eval("string.rep = nil", &["0"]),
        eval("redis.call = nil", &["0"]),
        eval("return 1", &["-1"]),
        eval("return 1", &["2", "a"]),
        eval("return 1", &["x"]),
        c(&["EVAL", "return 1"]),
        c(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]),
        c(&["EVALSHA", "abc", "0"]),
        c(&["EVAL_RO", "return redis.call('set', 'a', 'b')", "0"]),
        c(&["EVAL_RO", "return redis.call('get', 's')", "0"]),
        eval("#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')", &["0"]),
        eval("#!lua flags=no-writes\nreturn redis.call('get', 's')", &["0"]),
        eval("#!lua flags=bogus\nreturn 1", &["0"]),
        eval("#!python\nreturn 1", &["0"]),
        // Libraries and helpers.
        eval("return redis.sha1hex('')", &["0"]),
        eval("return redis.sha1hex('abc')", &["0"]),
        eval("return tostring(math.random(100))", &["0"]),
        eval("return tostring(math.random())", &["0"]),
        eval("math.randomseed(7); return math.random(1000)", &["0"]),
        eval("return string.format('%d-%s', 5, 'x')", &["0"]),
        eval("return table.concat({'a','b'}, ',')", &["0"]),
        eval("return redis.LOG_WARNING", &["0"]),
        eval("redis.log(redis.LOG_WARNING, 'from a test'); return 1", &["0"]),
        eval("return redis.set_repl(redis.REPL_ALL)", &["0"]),
        eval("return redis.replicate_commands()", &["0"]),
        eval("return pcall(function() error('x') end)", &["0"]),
        eval("local ok, e = pcall(function() error('x') end); return e", &["0"]),
        eval("local ok, e = pcall(redis.call, 'incr'); return e['err']", &["0"]),
        eval("local ok, e = pcall(redis.call, 'incr'); return e", &["0"]),
        eval("local ok, e = pcall(error, {err='x'}); return e", &["0"]),
        eval("local ok, e = pcall(error, {other='x'}); return type(e)", &["0"]),
        eval("return redis.pcall('incr')", &["0"]),
        eval("local function f()\n  error('deep')\nend\nf()", &["0"]),
        eval("local function f()\n  return redis.call('nosuch')\nend\nreturn f()", &["0"]),
        eval("return {1, 2, 3, 'ciao', {1, 2}}", &["0"]),
        eval("return redis.call('hgetall', KEYS[1])", &["1", "nokey"]),
        eval("return redis.call('del', 'nokey')", &["0"]),
        eval("return tonumber('0x10')", &["0"]),
        eval("return cjson.encode({1, 2})", &["0"]),
        eval("return select('#', 1, nil, 3)", &["0"]),
        eval("return unpack({1, 2})", &["0"]),
        eval("return redis.status_reply()", &["0"]),
        eval("return redis.log(1)", &["0"]),
        eval("return redis.log('x', 'y')", &["0"]),
        eval("redis.log(9, 'x')", &["0"]),
        eval("redis.set_repl()", &["0"]),
        eval("redis.set_repl(9)", &["0"]),
        eval("redis.setresp()", &["0"]),
        eval("return math.random(0)", &["0"]),
        eval("return math.random('x')", &["0"]),
        eval("return math.random(5, 1)", &["0"]),
        eval("return redis.sha1hex(1, 2)", &["0"]),
        eval("return type(cjson)", &["0"]),
        eval("return type(bit)", &["0"]),
        // Script cache.
        c(&["SCRIPT", "LOAD", "return 'loaded'"]),
        c(&["EVALSHA", "bd4b5d2fbef0a8b0ff3af8b8bc3f5e95dfcfe9a5", "0"]),
        c(&["SCRIPT", "EXISTS", "bd4b5d2fbef0a8b0ff3af8b8bc3f5e95dfcfe9a5", "ffff"]),
        c(&["SCRIPT", "LOAD", "return +"]),
        c(&["EVALSHA", "BD4B5D2FBEF0A8B0FF3AF8B8BC3F5E95DFCFE9A5", "0"]),
        c(&["SCRIPT", "FLUSH", "bogus"]),
        c(&["SCRIPT", "FLUSH", "ASYNC"]),
        c(&["SCRIPT", "LOAD", "return 'loaded'"]),
        c(&["SCRIPT", "FLUSH"]),
        c(&["SCRIPT", "EXISTS", "bd4b5d2fbef0a8b0ff3af8b8bc3f5e95dfcfe9a5"]),
        c(&["SCRIPT", "KILL"]),
        c(&["SCRIPT", "NOPE"]),
        // Functions.
        c(&["FUNCTION", "FLUSH"]),
        c(&["FUNCTION", "LOAD", "return 1"]),
        c(&["FUNCTION", "LOAD", "#!lua\nreturn 1"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib1\nreturn 1"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return keys[1] end)"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return 1 end)"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function('f1', function(keys, args) return 1 end)"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib3\nredis.register_function{function_name='f3', callback=function(keys, args) return redis.call('set', keys[1], args[1]) end, flags={'no-writes'}, description='d3'}"]),
        c(&["FCALL", "f1", "1", "kk"]),
        c(&["FCALL", "f3", "1", "k", "v"]),
        c(&["FCALL_RO", "f1", "1", "x"]),
        c(&["FCALL", "nope", "0"]),
        c(&["FCALL", "f1", "x"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib4\nredis.register_function{function_name='f4', callback=function(keys, args) return x end, flags={'bad'}}"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib4\nredis.register_function{function_name='f4', callback=function(keys, args) return x end}"]),
        c(&["FCALL", "f4", "0"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib5\nredis.register_function('f5', function(keys, args) return redis.call('get') end)"]),
        c(&["FCALL", "f5", "0"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib6 foo=bar\n"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib6\nx = 1"]),
        c(&["FUNCTION", "LOAD", "#!nolua name=lib6\n"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib6\nreturn 1 +"]),
        c(&["FUNCTION", "LOAD", "#!lua name=lib-6\nredis.register_function('f6', function() end)"]),
        c(&["FUNCTION", "LOAD", "REPLACE", "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return 'replaced' end)"]),
        c(&["FCALL", "f1", "0"]),
        c(&["FUNCTION", "LIST", "LIBRARYNAME", "lib1", "WITHCODE"]),
        c(&["FUNCTION", "LIST", "LIBRARYNAME", "lib3"]),
        c(&["FUNCTION", "DELETE", "nolib"]),
        c(&["FUNCTION", "DELETE", "lib4"]),
        c(&["FUNCTION", "LIST", "LIBRARYNAME", "lib4"]),
        c(&["FUNCTION", "STATS"]),
        c(&["FUNCTION", "KILL"]),
        c(&["FUNCTION", "FLUSH", "bogus"]),
        c(&["FUNCTION", "FLUSH"]),
        c(&["FUNCTION", "LIST"]),
    ]
}

/// Replies that legitimately differ from Redis 7.0.15 (the version string).
fn skip_compare(cmd: &Cmd) -> bool {
    cmd.iter()
        .any(|a| a.windows(13).any(|w| w == b"REDIS_VERSION"))
}

fn run_all(conn: &mut RawConn, resp3: bool) -> Vec<Vec<u8>> {
    if resp3 {
        conn.cmd(&[b"HELLO", b"3"]);
    }
    conn.cmd(&[b"FLUSHALL"]);
    conn.cmd(&[b"SCRIPT", b"FLUSH"]);
    cases().iter().map(|cmd| conn.cmd(cmd)).collect()
}

#[test]
fn eval_matches_redis() {
    let granary = ServerProc::granary(&[]);
    let redis = ServerProc::redis(&[]);
    let mut failures = Vec::new();
    for resp3 in [false, true] {
        let ours = run_all(&mut granary.raw(), resp3);
        let theirs = run_all(&mut redis.raw(), resp3);
        for ((cmd, a), b) in cases().iter().zip(&ours).zip(&theirs) {
            if a != b && !skip_compare(cmd) {
                let args: Vec<String> = cmd
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into())
                    .collect();
                failures.push(format!(
                    "RESP{} {:?}\n  granary: {}\n  redis:   {}",
                    if resp3 { 3 } else { 2 },
                    args,
                    show(a),
                    show(b)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{}\r\n", s.len(), s).into_bytes()
}

/// Polls `f` until it returns true or `limit` passes.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn undeclared_keys_are_atomic() {
    let g = ServerProc::granary(&[]);
    // Each script reads and writes keys it never declares; run from many
    // connections at once, no increment may be lost.
    let script = "local v = tonumber(redis.call('get', 'counter') or '0'); \
                  redis.call('set', 'counter', v + 1); \
                  redis.call('rpush', 'log' .. (v % 3), v); return v";
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = g.addr();
            std::thread::spawn(move || {
                let s = std::net::TcpStream::connect(addr).unwrap();
                let mut conn = RawConn::new(s);
                for _ in 0..200 {
                    let r = conn.cmd(&[b"EVAL", script.as_bytes(), b"0"]);
                    assert_eq!(r[0], b':', "{}", show(&r));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut conn = g.raw();
    assert_eq!(conn.cmd(&[b"GET", b"counter"]), bulk("800"));
    let total: i64 = (0..3)
        .map(|i| {
            let r = conn.cmd(&[b"LLEN", format!("log{i}").as_bytes()]);
            String::from_utf8_lossy(&r[1..r.len() - 2])
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 800);
}

#[test]
fn eval_inside_multi_and_select_stays_in_script() {
    let g = ServerProc::granary(&[]);
    let mut conn = g.raw();
    assert_eq!(conn.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(
        conn.cmd(&[b"EVAL", b"return redis.call('incr', KEYS[1])", b"1", b"m"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(conn.cmd(&[b"INCR", b"m"]), b"+QUEUED\r\n");
    assert_eq!(conn.cmd(&[b"EXEC"]), b"*2\r\n:1\r\n:2\r\n");
    // SELECT inside a script changes the script's database only.
    let r = conn.cmd(&[
        b"EVAL",
        b"redis.call('select', 1); redis.call('set', 'in1', 'x'); return 1",
        b"0",
    ]);
    assert_eq!(r, b":1\r\n");
    assert_eq!(conn.cmd(&[b"EXISTS", b"in1"]), b":0\r\n");
    assert_eq!(conn.cmd(&[b"SELECT", b"1"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&[b"EXISTS", b"in1"]), b":1\r\n");
}

#[test]
fn no_global_leaks_between_scripts() {
    let g = ServerProc::granary(&[]);
    let mut conn = g.raw();
    let r = conn.cmd(&[b"EVAL", b"rawset(_G, 'leak', 1)", b"0"]);
    assert!(
        r.starts_with(b"-ERR user_script:1: Attempt to modify a readonly table"),
        "{}",
        show(&r)
    );
    let r = conn.cmd(&[b"EVAL", b"loadstring('leak2 = 1')()", b"0"]);
    assert!(r.starts_with(b"-ERR"), "{}", show(&r));
    let r = conn.cmd(&[b"EVAL", b"return type(rawget(_G, 'leak2'))", b"0"]);
    assert_eq!(r, bulk("nil"));
    let r = conn.cmd(&[b"EVAL", b"getmetatable('').__index.upper = nil", b"0"]);
    assert!(
        r.starts_with(b"-ERR user_script:1: Attempt to modify a readonly table"),
        "{}",
        show(&r)
    );
    assert_eq!(
        conn.cmd(&[b"EVAL", b"return ('x'):upper()", b"0"]),
        bulk("X")
    );
}

/// Sends a looping script on its own connection without reading the reply.
fn start_loop(g: &ServerProc, script: &[u8]) -> RawConn {
    let mut looping = g.raw();
    looping.send(&common::encode(&[b"EVAL", script, b"0"]));
    looping
}

fn is_busy(conn: &mut RawConn) -> bool {
    conn.cmd(&[b"PING"])
        .starts_with(b"-BUSY Redis is busy running a script.")
}

#[test]
fn busy_script_kill_frees_the_server() {
    let g = ServerProc::granary(&[]);
    let mut other = g.raw();
    other.cmd(&[b"SET", b"k", b"v"]);
    assert_eq!(
        other.cmd(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"100"]),
        b"+OK\r\n"
    );
    let mut looping = start_loop(&g, b"while true do end");
    assert!(wait_for(Duration::from_secs(20), || is_busy(&mut other)));
    assert_eq!(
        other.cmd(&[b"GET", b"k"]),
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    for sub in [&b"KILL"[..], b"STATS"] {
        assert_eq!(
            other.cmd(&[b"FUNCTION", sub]),
            b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
        );
    }
    // Several clients at once must not starve the one sending SCRIPT KILL.
    let mut more: Vec<RawConn> = (0..4).map(|_| g.raw()).collect();
    for m in &mut more {
        m.send(&common::encode(&[b"GET", b"k"]));
    }
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"+OK\r\n");
    let r = looping.read_reply().unwrap();
    assert_eq!(
        show(&r),
        show(b"-ERR Script killed by user with SCRIPT KILL... script: 5fd17d5a0d8b7e5b7f9d1b9e4b13bdb8b3cc4e2b, on @user_script:1.\r\n")
            .replace("5fd17d5a0d8b7e5b7f9d1b9e4b13bdb8b3cc4e2b", &sha_of("while true do end"))
    );
    for m in &mut more {
        let r = m.read_reply().unwrap();
        assert!(r == bulk("v") || r.starts_with(b"-BUSY"), "{}", show(&r));
    }
    assert_eq!(other.cmd(&[b"GET", b"k"]), bulk("v"));
    assert_eq!(
        other.cmd(&[b"SCRIPT", b"KILL"]),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert_eq!(looping.cmd(&[b"PING"]), b"+PONG\r\n");
}

fn sha_of(s: &str) -> String {
    let r = ServerProc::granary(&[])
        .raw()
        .cmd(&[b"SCRIPT", b"LOAD", s.as_bytes()]);
    String::from_utf8_lossy(&r[5..r.len() - 2]).into_owned()
}

#[test]
fn function_kill_and_stats() {
    let g = ServerProc::granary(&[]);
    let mut other = g.raw();
    other.cmd(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"100"]);
    let lib = b"#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(other.cmd(&[b"FUNCTION", b"LOAD", lib]), bulk("spin"));
    let mut looping = g.raw();
    looping.send(&common::encode(&[b"FCALL", b"spin", b"0"]));
    assert!(wait_for(Duration::from_secs(20), || {
        other
            .cmd(&[b"PING"])
            .starts_with(b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL")
    }));
    let stats = other.cmd(&[b"FUNCTION", b"STATS"]);
    assert!(show(&stats).contains("spin"), "{}", show(&stats));
    assert!(other.cmd(&[b"SCRIPT", b"KILL"]).starts_with(b"-BUSY"));
    assert_eq!(other.cmd(&[b"FUNCTION", b"KILL"]), b"+OK\r\n");
    let r = looping.read_reply().unwrap();
    assert!(
        r.starts_with(
            b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
        ),
        "{}",
        show(&r)
    );
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn unkillable_then_shutdown_nosave() {
    let mut g = ServerProc::granary(&[]);
    let mut other = g.raw();
    other.cmd(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"100"]);
    let _looping = start_loop(&g, b"redis.call('set', 'w', '1') while true do end");
    assert!(wait_for(Duration::from_secs(20), || is_busy(&mut other)));
    assert_eq!(
        other.cmd(&[b"SCRIPT", b"KILL"]),
        b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
    );
    assert!(other.cmd(&[b"SHUTDOWN"]).starts_with(b"-BUSY"));
    other.send(&common::encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(
        wait_for(Duration::from_secs(20), || !g.is_running()),
        "server still running"
    );
}

#[test]
fn function_dump_restore_round_trip() {
    let g = ServerProc::granary(&[]);
    let mut conn = g.raw();
    let lib = b"#!lua name=mylib\nredis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)";
    assert_eq!(conn.cmd(&[b"FUNCTION", b"LOAD", lib]), bulk("mylib"));
    let dump = conn.cmd(&[b"FUNCTION", b"DUMP"]);
    assert_eq!(dump[0], b'$');
    let start = dump.iter().position(|&b| b == b'\n').unwrap() + 1;
    let payload = dump[start..dump.len() - 2].to_vec();
    assert!(conn
        .cmd(&[b"FUNCTION", b"RESTORE", &payload])
        .starts_with(b"-ERR Library mylib already exists"));
    assert_eq!(conn.cmd(&[b"FUNCTION", b"FLUSH"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&[b"FUNCTION", b"RESTORE", &payload]), b"+OK\r\n");
    assert_eq!(
        conn.cmd(&[b"FCALL", b"hello", b"0", b"you"]),
        bulk("hi you")
    );
    assert_eq!(
        conn.cmd(&[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"]),
        b"+OK\r\n"
    );
    assert_eq!(
        conn.cmd(&[b"FUNCTION", b"RESTORE", b"garbage"]),
        b"-ERR payload version or checksum are wrong\r\n"
    );
}

#[test]
fn eval_script_cache_is_bounded() {
    let g = ServerProc::granary(&[]);
    let mut conn = g.raw();
    let loaded = conn.cmd(&[b"SCRIPT", b"LOAD", b"return 'kept'"]);
    let loaded = loaded[5..loaded.len() - 2].to_vec();
    let first = sha_of("return 0");
    for i in 0..=500 {
        let body = format!("return {i}");
        assert_eq!(
            conn.cmd(&[b"EVAL", body.as_bytes(), b"0"]),
            format!(":{i}\r\n").into_bytes()
        );
    }
    // The least recently used EVAL script went; SCRIPT LOAD ones stay.
    assert_eq!(
        conn.cmd(&[b"EVALSHA", first.as_bytes(), b"0"]),
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
    );
    assert_eq!(conn.cmd(&[b"EVALSHA", &loaded, b"0"]), bulk("kept"));
    assert_eq!(conn.cmd(&[b"EVAL", b"return 500", b"0"]), b":500\r\n");
}

#[test]
fn function_load_cannot_loop_forever() {
    let g = ServerProc::granary(&[]);
    let mut conn = g.raw();
    let r = conn.cmd(&[b"FUNCTION", b"LOAD", b"#!lua name=spin\nwhile true do end"]);
    assert_eq!(
        show(&r),
        show(b"-ERR Error registering functions: ERR FUNCTION LOAD timeout\r\n")
    );
    assert_eq!(conn.cmd(&[b"PING"]), b"+PONG\r\n");
}

/// The payload of a FUNCTION DUMP reply (a bulk string).
fn payload_of(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply[0], b'$', "{}", show(reply));
    let start = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
    reply[start..reply.len() - 2].to_vec()
}

#[test]
fn function_dump_payloads_cross_with_redis() {
    let g = ServerProc::granary(&[]);
    let r = ServerProc::redis(&[]);
    let (mut gc, mut rc) = (g.raw(), r.raw());
    let lib = b"#!lua name=crosslib\nredis.register_function('cross', function(keys, args) return 'from ' .. args[1] .. ' -- padding so the code is long enough to be compressed by LZF' end)";
    assert_eq!(rc.cmd(&[b"FUNCTION", b"LOAD", lib]), bulk("crosslib"));
    let from_redis = payload_of(&rc.cmd(&[b"FUNCTION", b"DUMP"]));
    assert_eq!(gc.cmd(&[b"FUNCTION", b"RESTORE", &from_redis]), b"+OK\r\n");
    let expected =
        b"$68\r\nfrom x -- padding so the code is long enough to be compressed by LZF\r\n".to_vec();
    assert_eq!(
        show(&gc.cmd(&[b"FCALL", b"cross", b"0", b"x"])),
        show(&expected)
    );
    let from_granary = payload_of(&gc.cmd(&[b"FUNCTION", b"DUMP"]));
    assert_eq!(rc.cmd(&[b"FUNCTION", b"FLUSH"]), b"+OK\r\n");
    assert_eq!(
        rc.cmd(&[b"FUNCTION", b"RESTORE", &from_granary]),
        b"+OK\r\n"
    );
    assert_eq!(
        show(&rc.cmd(&[b"FCALL", b"cross", b"0", b"x"])),
        show(&expected)
    );
}
