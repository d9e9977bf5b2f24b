//! The string command family against a real Granary process: replies and
//! error texts as Redis 7.4 gives them. To check the expectations
//! themselves against the oracle, run with `STRINGS_TEST_SERVER=redis-server`.

use redis::{Connection, Value};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A Granary process on a free port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra `--name value` config arguments.
    fn start_with(extra: &[&str]) -> Server {
        // The port we pick may be taken before the server binds it; then
        // the process exits and we try another one.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let bin = std::env::var("STRINGS_TEST_SERVER")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_granary").to_string());
            let child = Command::new(bin)
                .args(["--port", &port.to_string(), "--save", ""])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn granary");
            let mut server = Server { child, port };
            if server.wait_ready() {
                return server;
            }
        }
        panic!("granary did not start");
    }

    /// Polls until the server answers PING, or it exits, or time runs out.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                if let Ok(mut con) = self.try_connect(false) {
                    if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                        return true;
                    }
                }
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    fn try_connect(&self, resp3: bool) -> redis::RedisResult<Connection> {
        let proto = if resp3 { "?protocol=resp3" } else { "" };
        redis::Client::open(format!("redis://127.0.0.1:{}/{proto}", self.port))?.get_connection()
    }

    fn con(&self) -> Connection {
        self.try_connect(false).expect("connect")
    }

    fn con3(&self) -> Connection {
        self.try_connect(true).expect("connect with RESP3")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command; Ok(reply) or Err("CODE detail").
fn q(con: &mut Connection, args: &[&[u8]]) -> Result<Value, String> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<Value>(con).map_err(|e| {
        format!(
            "{} {}",
            e.code().unwrap_or("?"),
            e.detail().unwrap_or_default()
        )
    })
}

fn split(line: &str) -> Vec<&[u8]> {
    line.split(' ').map(str::as_bytes).collect()
}

/// Runs a space-separated command that must succeed.
fn ok(con: &mut Connection, line: &str) -> Value {
    q(con, &split(line)).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Runs a space-separated command that must fail; returns the error text.
fn fail(con: &mut Connection, line: &str) -> String {
    match q(con, &split(line)) {
        Ok(v) => panic!("{line}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn int(n: i64) -> Value {
    Value::Int(n)
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

const SYNTAX: &str = "ERR syntax error";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";

fn arity(cmd: &str) -> String {
    format!("ERR wrong number of arguments for '{cmd}' command")
}

fn bad_expire(cmd: &str) -> String {
    format!("ERR invalid expire time in '{cmd}' command")
}

/// Polls until `key` has expired (GET answers nil).
fn wait_expired(con: &mut Connection, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(con, &format!("GET {key}")) != Value::Nil {
        assert!(Instant::now() < deadline, "{key} never expired");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn set_and_get_with_conditions() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "GET k"), Value::Nil);
    assert_eq!(ok(c, "SET k v"), Value::Okay);
    assert_eq!(ok(c, "GET k"), bulk("v"));
    assert_eq!(ok(c, "SET k v2 NX"), Value::Nil);
    assert_eq!(ok(c, "SET k v3 XX"), Value::Okay);
    assert_eq!(ok(c, "GET k"), bulk("v3"));
    assert_eq!(ok(c, "SET new v XX"), Value::Nil);
    assert_eq!(ok(c, "GET new"), Value::Nil);
    assert_eq!(ok(c, "SET new v nx NX"), Value::Okay);
    // GET returns the old value, with or without NX/XX taking effect.
    assert_eq!(ok(c, "SET g a GET"), Value::Nil);
    assert_eq!(ok(c, "SET g b GET"), bulk("a"));
    assert_eq!(ok(c, "SET g c NX GET"), bulk("b"));
    assert_eq!(ok(c, "GET g"), bulk("b"));
    assert_eq!(ok(c, "SET g2 c XX GET"), Value::Nil);
    assert_eq!(ok(c, "GET g2"), Value::Nil);
    assert_eq!(ok(c, "SET g d GET GET"), bulk("b"));
    // Values are binary safe, and big ones round-trip.
    let big = vec![b'x'; 100_000];
    assert_eq!(q(c, &[b"SET", b"big", &big]), Ok(Value::Okay));
    assert_eq!(q(c, &[b"GET", b"big"]), Ok(Value::BulkString(big)));
    assert_eq!(q(c, &[b"SET", b"bin", b"a\0b\r\n"]), Ok(Value::Okay));
    assert_eq!(ok(c, "GET bin"), bulk("a\0b\r\n"));
    assert_eq!(fail(c, "GET"), arity("get"));
    assert_eq!(fail(c, "GET a b"), arity("get"));
    assert_eq!(fail(c, "SET k"), arity("set"));
}

#[test]
fn set_option_syntax() {
    let s = Server::start();
    let c = &mut s.con();
    for line in [
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v EX 10 PX 20",
        "SET k v PX 10 EX 20",
        "SET k v EXAT 10 PXAT 20",
        "SET k v EX 10 KEEPTTL",
        "SET k v KEEPTTL EX 10",
        "SET k v EX",
        "SET k v PXAT",
        "SET k v FOO",
        "SET k v PERSIST",
        // The syntax is checked before the number.
        "SET k v EX 0 FOO",
    ] {
        assert_eq!(fail(c, line), SYNTAX, "{line}");
    }
    // Repeating the same option is allowed; the last number wins, and only
    // that one is parsed.
    assert_eq!(ok(c, "SET k v EX 10 EX 20"), Value::Okay);
    assert_eq!(ok(c, "SET k v EX abc EX 10"), Value::Okay);
    assert_eq!(ok(c, "SET k v KEEPTTL KEEPTTL NX NX"), Value::Nil);
    assert_eq!(fail(c, "SET k v EX abc"), NOT_INT);
    assert_eq!(fail(c, "SET k v PX 1.5"), NOT_INT);
    for line in [
        "SET k v EX 0",
        "SET k v EX -1",
        "SET k v PX 0",
        "SET k v EXAT 0",
        "SET k v PXAT -5",
        "SET k v EX 9223372036854775807",
        "SET k v EX 9223372036854775",
        "SET k v PX 9223372036854775807",
    ] {
        assert_eq!(fail(c, line), bad_expire("set"), "{line}");
    }
    // An absolute time in the past leaves no key.
    assert_eq!(ok(c, "SET past v PXAT 1"), Value::Okay);
    assert_eq!(ok(c, "GET past"), Value::Nil);
    assert_eq!(ok(c, "SET past2 v EXAT 1 GET"), Value::Nil);
    assert_eq!(ok(c, "GET past2"), Value::Nil);
    // A far-future absolute time is fine.
    assert_eq!(ok(c, "SET far v PXAT 9223372036854775807"), Value::Okay);
    assert_eq!(ok(c, "GET far"), bulk("v"));
}

#[test]
fn set_ttls() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "SET e v PX 50"), Value::Okay);
    assert_eq!(ok(c, "GET e"), bulk("v"));
    wait_expired(c, "e");
    // KEEPTTL keeps it; a plain SET or GETSET drops it.
    assert_eq!(ok(c, "SET kt v PX 200"), Value::Okay);
    assert_eq!(ok(c, "SET kt v2 KEEPTTL"), Value::Okay);
    assert_eq!(ok(c, "GET kt"), bulk("v2"));
    assert_eq!(ok(c, "SET plain v PX 100"), Value::Okay);
    assert_eq!(ok(c, "SET plain v2"), Value::Okay);
    assert_eq!(ok(c, "SET gs v PX 100"), Value::Okay);
    assert_eq!(ok(c, "GETSET gs v2"), bulk("v"));
    wait_expired(c, "kt");
    // Well past the old TTLs: the overwritten keys must still be there.
    sleep(Duration::from_millis(200));
    assert_eq!(ok(c, "GET plain"), bulk("v2"));
    assert_eq!(ok(c, "GET gs"), bulk("v2"));
    assert_eq!(ok(c, "SETEX se 100 v"), Value::Okay);
    assert_eq!(ok(c, "GET se"), bulk("v"));
    assert_eq!(ok(c, "PSETEX pe 50 v"), Value::Okay);
    wait_expired(c, "pe");
    for (line, cmd) in [
        ("SETEX se 0 v", "setex"),
        ("SETEX se -5 v", "setex"),
        ("SETEX se 9223372036854775807 v", "setex"),
        ("PSETEX pe 0 v", "psetex"),
    ] {
        assert_eq!(fail(c, line), bad_expire(cmd), "{line}");
    }
    assert_eq!(fail(c, "SETEX se abc v"), NOT_INT);
    assert_eq!(fail(c, "PSETEX pe 1.5 v"), NOT_INT);
    assert_eq!(fail(c, "SETEX se 100"), arity("setex"));
    assert_eq!(fail(c, "PSETEX pe 100"), arity("psetex"));
}

#[test]
fn setnx_getex_getdel_getset() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "SETNX n a"), int(1));
    assert_eq!(ok(c, "SETNX n b"), int(0));
    assert_eq!(ok(c, "GET n"), bulk("a"));
    assert_eq!(fail(c, "SETNX n"), arity("setnx"));

    assert_eq!(ok(c, "GETEX nokey"), Value::Nil);
    // A missing key answers nil before the number is looked at.
    assert_eq!(ok(c, "GETEX nokey EX 0"), Value::Nil);
    assert_eq!(ok(c, "GETEX nokey EX abc"), Value::Nil);
    assert_eq!(fail(c, "GETEX nokey FOO"), SYNTAX);
    assert_eq!(ok(c, "SET x v"), Value::Okay);
    assert_eq!(ok(c, "GETEX x"), bulk("v"));
    for line in [
        "GETEX x EX 10 PERSIST",
        "GETEX x PERSIST EX 10",
        "GETEX x EX 10 PX 20",
        "GETEX x NX",
        "GETEX x XX",
        "GETEX x GET",
        "GETEX x KEEPTTL",
        "GETEX x EX",
    ] {
        assert_eq!(fail(c, line), SYNTAX, "{line}");
    }
    assert_eq!(fail(c, "GETEX x EX 0"), bad_expire("getex"));
    assert_eq!(fail(c, "GETEX x PXAT -1"), bad_expire("getex"));
    assert_eq!(fail(c, "GETEX x EX abc"), NOT_INT);
    assert_eq!(ok(c, "GETEX x PERSIST PERSIST"), bulk("v"));
    assert_eq!(ok(c, "GETEX x EX 10 EX 20"), bulk("v"));
    assert_eq!(ok(c, "GETEX x PX 50"), bulk("v"));
    wait_expired(c, "x");
    // PERSIST removes a TTL.
    assert_eq!(ok(c, "SET p v PX 100"), Value::Okay);
    assert_eq!(ok(c, "GETEX p PERSIST"), bulk("v"));
    sleep(Duration::from_millis(250));
    assert_eq!(ok(c, "GET p"), bulk("v"));
    // A past absolute time deletes the key after replying.
    assert_eq!(ok(c, "GETEX p EXAT 1"), bulk("v"));
    assert_eq!(ok(c, "GET p"), Value::Nil);
    assert_eq!(ok(c, "SET p v"), Value::Okay);
    assert_eq!(ok(c, "GETEX p PXAT 99999999999999"), bulk("v"));
    assert_eq!(ok(c, "GET p"), bulk("v"));
    assert_eq!(fail(c, "GETEX"), arity("getex"));

    assert_eq!(ok(c, "SET d val"), Value::Okay);
    assert_eq!(ok(c, "GETDEL d"), bulk("val"));
    assert_eq!(ok(c, "GETDEL d"), Value::Nil);
    assert_eq!(ok(c, "GET d"), Value::Nil);
    assert_eq!(fail(c, "GETDEL"), arity("getdel"));

    assert_eq!(ok(c, "GETSET gs a"), Value::Nil);
    assert_eq!(ok(c, "GETSET gs b"), bulk("a"));
    assert_eq!(ok(c, "GET gs"), bulk("b"));
    assert_eq!(fail(c, "GETSET gs"), arity("getset"));
}

#[test]
fn multi_key_commands() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "MSET a 1 b 2 c 3"), Value::Okay);
    assert_eq!(
        ok(c, "MGET a b nokey c"),
        arr(vec![bulk("1"), bulk("2"), Value::Nil, bulk("3")])
    );
    assert_eq!(fail(c, "MSET a"), arity("mset"));
    assert_eq!(fail(c, "MSET a 1 b"), arity("mset"));
    assert_eq!(fail(c, "MGET"), arity("mget"));
    assert_eq!(ok(c, "MSETNX d 4 e 5"), int(1));
    assert_eq!(ok(c, "MSETNX e 6 f 7"), int(0));
    assert_eq!(
        ok(c, "MGET d e f"),
        arr(vec![bulk("4"), bulk("5"), Value::Nil])
    );
    assert_eq!(ok(c, "MSETNX g 1 g 2"), int(1));
    assert_eq!(ok(c, "GET g"), bulk("2"));
    assert_eq!(fail(c, "MSETNX h 1 i"), arity("msetnx"));
    // Many keys spread over many shards.
    let mut mset: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..500 {
        mset.push(format!("key:{i}").into_bytes());
        mset.push(format!("val:{i}").into_bytes());
    }
    let args: Vec<&[u8]> = mset.iter().map(|a| a.as_slice()).collect();
    assert_eq!(q(c, &args), Ok(Value::Okay));
    let mut mget: Vec<Vec<u8>> = vec![b"MGET".to_vec()];
    mget.extend((0..500).map(|i| format!("key:{i}").into_bytes()));
    let args: Vec<&[u8]> = mget.iter().map(|a| a.as_slice()).collect();
    let want = arr((0..500).map(|i| bulk(&format!("val:{i}"))).collect());
    assert_eq!(q(c, &args), Ok(want));
}

#[test]
fn append_strlen_ranges() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "APPEND a hello"), int(5));
    assert_eq!(q(c, &[b"APPEND", b"a", b" world"]), Ok(int(11)));
    assert_eq!(ok(c, "GET a"), bulk("hello world"));
    assert_eq!(q(c, &[b"APPEND", b"a", b""]), Ok(int(11)));
    assert_eq!(ok(c, "STRLEN a"), int(11));
    assert_eq!(ok(c, "STRLEN nokey"), int(0));
    assert_eq!(q(c, &[b"APPEND", b"empty", b""]), Ok(int(0)));
    assert_eq!(ok(c, "GET empty"), bulk(""));
    // Integers append as their decimal text, and stay usable as integers.
    assert_eq!(ok(c, "SET n 12"), Value::Okay);
    assert_eq!(ok(c, "APPEND n 34"), int(4));
    assert_eq!(ok(c, "INCR n"), int(1235));
    assert_eq!(ok(c, "STRLEN n"), int(4));
    assert_eq!(fail(c, "APPEND a"), arity("append"));
    assert_eq!(fail(c, "STRLEN"), arity("strlen"));

    // Many small appends build a big string correctly (and quickly).
    let chunk = vec![b'z'; 1000];
    let started = Instant::now();
    for i in 1..=2000 {
        assert_eq!(q(c, &[b"APPEND", b"grow", &chunk]), Ok(int(i * 1000)));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(ok(c, "STRLEN grow"), int(2_000_000));
    assert_eq!(ok(c, "GETRANGE grow 1999998 -1"), bulk("zz"));

    assert_eq!(q(c, &[b"SET", b"r", b"This is a string"]), Ok(Value::Okay));
    for (range, want) in [
        ("0 3", "This"),
        ("-3 -1", "ing"),
        ("0 -1", "This is a string"),
        ("10 100", "string"),
        ("0 -100", "T"),
        ("-1 -3", ""),
        ("-100 -50", "T"),
        ("-100 2", "Thi"),
        ("5 2", ""),
        ("100 200", ""),
        (
            "-9223372036854775808 9223372036854775807",
            "This is a string",
        ),
    ] {
        assert_eq!(ok(c, &format!("GETRANGE r {range}")), bulk(want), "{range}");
        assert_eq!(ok(c, &format!("SUBSTR r {range}")), bulk(want), "{range}");
    }
    assert_eq!(ok(c, "GETRANGE nokey 0 -1"), bulk(""));
    assert_eq!(fail(c, "GETRANGE r a 1"), NOT_INT);
    assert_eq!(fail(c, "GETRANGE r 1 b"), NOT_INT);
    assert_eq!(fail(c, "GETRANGE nokey x 1"), NOT_INT);
    assert_eq!(ok(c, "SET i 123456"), Value::Okay);
    assert_eq!(ok(c, "GETRANGE i 1 3"), bulk("234"));
    assert_eq!(fail(c, "GETRANGE r 0"), arity("getrange"));
    assert_eq!(fail(c, "SUBSTR r 0"), arity("substr"));
}

#[test]
fn setrange() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "SETRANGE s 5 hello"), int(10));
    assert_eq!(ok(c, "GET s"), bulk("\0\0\0\0\0hello"));
    assert_eq!(ok(c, "SETRANGE s 0 HE"), int(10));
    assert_eq!(ok(c, "GET s"), bulk("HE\0\0\0hello"));
    assert_eq!(ok(c, "SETRANGE s 20 x"), int(21));
    assert_eq!(ok(c, "STRLEN s"), int(21));
    assert_eq!(q(c, &[b"SETRANGE", b"s", b"1", b""]), Ok(int(21)));
    // Writing nothing to a missing key creates nothing.
    assert_eq!(q(c, &[b"SETRANGE", b"none", b"3", b""]), Ok(int(0)));
    assert_eq!(ok(c, "GET none"), Value::Nil);
    assert_eq!(q(c, &[b"SETRANGE", b"none", b"536870912", b""]), Ok(int(0)));
    assert_eq!(ok(c, "SET i 1234"), Value::Okay);
    assert_eq!(ok(c, "SETRANGE i 1 x"), int(4));
    assert_eq!(ok(c, "GET i"), bulk("1x34"));
    assert_eq!(fail(c, "SETRANGE s -1 x"), "ERR offset is out of range");
    assert_eq!(fail(c, "SETRANGE s abc x"), NOT_INT);
    let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    assert_eq!(fail(c, "SETRANGE s 536870912 x"), too_long);
    assert_eq!(fail(c, "SETRANGE s 9223372036854775807 x"), too_long);
    assert_eq!(fail(c, "SETRANGE s 0"), arity("setrange"));
    // Mutating in place keeps the TTL.
    assert_eq!(ok(c, "SET t abc PX 150"), Value::Okay);
    assert_eq!(ok(c, "SETRANGE t 1 X"), int(3));
    assert_eq!(ok(c, "APPEND t d"), int(4));
    assert_eq!(ok(c, "GET t"), bulk("aXcd"));
    wait_expired(c, "t");
}

#[test]
fn counters() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "INCR n"), int(1));
    assert_eq!(ok(c, "INCR n"), int(2));
    assert_eq!(ok(c, "DECR n"), int(1));
    assert_eq!(ok(c, "INCRBY n 10"), int(11));
    assert_eq!(ok(c, "DECRBY n 5"), int(6));
    assert_eq!(ok(c, "INCRBY n -3"), int(3));
    assert_eq!(ok(c, "GET n"), bulk("3"));
    assert_eq!(ok(c, "DECR fresh"), int(-1));
    for line in [
        "INCRBY n abc",
        "INCRBY n 1.5",
        "INCRBY n +1",
        "INCRBY n 007",
        "DECRBY n 9223372036854775808",
    ] {
        assert_eq!(fail(c, line), NOT_INT, "{line}");
    }
    assert_eq!(q(c, &[b"INCRBY", b"n", b" 1"]), Err(NOT_INT.into()));
    assert_eq!(
        fail(c, "DECRBY n -9223372036854775808"),
        "ERR decrement would overflow"
    );
    let overflow = "ERR increment or decrement would overflow";
    assert_eq!(ok(c, "SET big 9223372036854775806"), Value::Okay);
    assert_eq!(ok(c, "INCR big"), int(i64::MAX));
    assert_eq!(fail(c, "INCR big"), overflow);
    assert_eq!(ok(c, "GET big"), bulk("9223372036854775807"));
    assert_eq!(ok(c, "SET small -9223372036854775807"), Value::Okay);
    assert_eq!(ok(c, "DECR small"), int(i64::MIN));
    assert_eq!(fail(c, "DECR small"), overflow);
    assert_eq!(ok(c, "DECRBY n 9223372036854775807"), int(3 - i64::MAX));
    // Only canonical decimal integers count.
    for v in [
        "abc",
        " 1",
        "007",
        "1.0",
        "+5",
        "-0",
        "99999999999999999999",
        "",
    ] {
        assert_eq!(q(c, &[b"SET", b"bad", v.as_bytes()]), Ok(Value::Okay));
        assert_eq!(fail(c, "INCR bad"), NOT_INT, "{v:?}");
    }
    assert_eq!(fail(c, "INCR"), arity("incr"));
    assert_eq!(fail(c, "INCRBY n"), arity("incrby"));
    assert_eq!(fail(c, "DECRBY n"), arity("decrby"));
    // In-place updates keep the TTL.
    assert_eq!(ok(c, "SET t 10 PX 150"), Value::Okay);
    assert_eq!(ok(c, "INCR t"), int(11));
    assert_eq!(ok(c, "INCRBYFLOAT t 0.5"), bulk("11.5"));
    wait_expired(c, "t");
}

#[test]
fn incrbyfloat() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "INCRBYFLOAT f 10.5"), bulk("10.5"));
    assert_eq!(ok(c, "INCRBYFLOAT f 0.1"), bulk("10.6"));
    assert_eq!(ok(c, "INCRBYFLOAT f -5"), bulk("5.6"));
    // Redis computes in long double and prints 17 decimals: the same
    // artifacts must show.
    assert_eq!(ok(c, "INCRBYFLOAT f 5.0e3"), bulk("5005.60000000000000009"));
    assert_eq!(ok(c, "GET f"), bulk("5005.60000000000000009"));
    for (start, incr, want) in [
        ("0.1", "0.2", "0.3"),
        ("3.0e3", "0", "3000"),
        ("12345.1", "0.1", "12345.19999999999999929"),
        ("123456789.123", "0.001", "123456789.12399999999615829"),
        ("1e30", "1", "1000000000000000000024696061952"),
        ("1", "1.5e-17", "1.00000000000000001"),
        ("0", "1e-20", "0"),
        ("0", "-1e-20", "0"),
        ("100", "-100", "0"),
        ("1.5", "0x10", "17.5"),
        ("0", "0x1p-2", "0.25"),
        ("1", ".5", "1.5"),
        ("1", "5.", "6"),
        ("1", "+1", "2"),
        ("1", "1E2", "101"),
        ("12345678901234567890", "1", "12345678901234567891"),
        ("0.000003814697265625", "0", "0.00000381469726562"),
    ] {
        assert_eq!(ok(c, &format!("SET g {start}")), Value::Okay);
        assert_eq!(
            ok(c, &format!("INCRBYFLOAT g {incr}")),
            bulk(want),
            "{start} + {incr}"
        );
    }
    for incr in ["abc", "nan", "1e", "1e+", "1e5000", "1e-5000", "0x", "--1"] {
        assert_eq!(
            fail(c, &format!("INCRBYFLOAT f {incr}")),
            NOT_FLOAT,
            "{incr}"
        );
    }
    assert_eq!(q(c, &[b"INCRBYFLOAT", b"f", b" 1"]), Err(NOT_FLOAT.into()));
    assert_eq!(q(c, &[b"INCRBYFLOAT", b"f", b"1 "]), Err(NOT_FLOAT.into()));
    let nan_inf = "ERR increment would produce NaN or Infinity";
    for incr in ["inf", "-inf", "Infinity"] {
        assert_eq!(fail(c, &format!("INCRBYFLOAT f {incr}")), nan_inf, "{incr}");
    }
    // Beyond long double's range (~1.19e4932) a number is not a float;
    // within it, a sum can still overflow.
    assert_eq!(ok(c, "SET huge 1.7e4932"), Value::Okay);
    assert_eq!(fail(c, "INCRBYFLOAT huge 1"), NOT_FLOAT);
    assert_eq!(ok(c, "SET huge 1.1e4932"), Value::Okay);
    assert_eq!(fail(c, "INCRBYFLOAT huge 1.1e4932"), nan_inf);
    let Value::BulkString(b) = ok(c, "INCRBYFLOAT huge2 1.1e4932") else {
        panic!("bulk expected");
    };
    assert_eq!(b.len(), 4933);
    assert!(b.starts_with(b"10999999999999999999743731075282418176"));
    assert_eq!(ok(c, "GET f"), bulk("5005.60000000000000009"));
    assert_eq!(ok(c, "SET notnum abc"), Value::Okay);
    assert_eq!(fail(c, "INCRBYFLOAT notnum 1"), NOT_FLOAT);
    assert_eq!(fail(c, "INCRBYFLOAT f"), arity("incrbyfloat"));
}

#[test]
fn lcs() {
    let s = Server::start();
    let c = &mut s.con();
    assert_eq!(ok(c, "MSET a ohmytext b mynewtext"), Value::Okay);
    assert_eq!(ok(c, "LCS a b"), bulk("mytext"));
    assert_eq!(ok(c, "LCS a b LEN"), int(6));
    let range = |a: i64, b: i64| arr(vec![int(a), int(b)]);
    let idx = |matches: Vec<Value>, len: i64| {
        arr(vec![bulk("matches"), arr(matches), bulk("len"), int(len)])
    };
    assert_eq!(
        ok(c, "LCS a b IDX"),
        idx(
            vec![
                arr(vec![range(4, 7), range(5, 8)]),
                arr(vec![range(2, 3), range(0, 1)]),
            ],
            6
        )
    );
    assert_eq!(
        ok(c, "LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN"),
        idx(vec![arr(vec![range(4, 7), range(5, 8), int(4)])], 6)
    );
    assert_eq!(
        ok(c, "LCS a b IDX WITHMATCHLEN MINMATCHLEN -5"),
        idx(
            vec![
                arr(vec![range(4, 7), range(5, 8), int(4)]),
                arr(vec![range(2, 3), range(0, 1), int(2)]),
            ],
            6
        )
    );
    assert_eq!(ok(c, "LCS a b LEN MINMATCHLEN 2"), int(6));
    assert_eq!(ok(c, "LCS a nokey"), bulk(""));
    assert_eq!(ok(c, "LCS nokey1 nokey2 IDX"), idx(vec![], 0));
    assert_eq!(ok(c, "LCS nokey1 nokey2 LEN"), int(0));
    assert_eq!(
        fail(c, "LCS a b LEN IDX"),
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(fail(c, "LCS a b FOO"), SYNTAX);
    assert_eq!(fail(c, "LCS a b MINMATCHLEN"), SYNTAX);
    assert_eq!(fail(c, "LCS a b MINMATCHLEN abc"), NOT_INT);
    assert_eq!(fail(c, "LCS a"), arity("lcs"));
    // Integer-encoded values compare as their text.
    assert_eq!(ok(c, "MSET i 123 j 12abc3"), Value::Okay);
    assert_eq!(ok(c, "LCS i j"), bulk("123"));
    assert_eq!(
        ok(c, "LCS i j IDX"),
        idx(
            vec![
                arr(vec![range(2, 2), range(5, 5)]),
                arr(vec![range(0, 1), range(0, 1)]),
            ],
            3
        )
    );
    // The DP table is bounded by proto-max-bulk-len.
    let big = vec![b'a'; 20_000];
    assert_eq!(q(c, &[b"MSET", b"x", &big, b"y", &big]), Ok(Value::Okay));
    assert_eq!(
        fail(c, "LCS x y LEN"),
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
    );
}

#[test]
fn resp3_shapes() {
    let s = Server::start();
    let c = &mut s.con3();
    assert_eq!(ok(c, "GET nokey"), Value::Nil);
    assert_eq!(ok(c, "SET k v NX"), Value::Okay);
    assert_eq!(ok(c, "SET k v NX"), Value::Nil);
    assert_eq!(ok(c, "MGET k nokey"), arr(vec![bulk("v"), Value::Nil]));
    // INCRBYFLOAT answers a bulk string, not a RESP3 double.
    assert_eq!(ok(c, "INCRBYFLOAT f 1.5"), bulk("1.5"));
    assert_eq!(ok(c, "MSET a ohmytext b mynewtext"), Value::Okay);
    let range = |a: i64, b: i64| arr(vec![int(a), int(b)]);
    assert_eq!(
        ok(c, "LCS a b IDX MINMATCHLEN 3"),
        Value::Map(vec![
            (
                bulk("matches"),
                arr(vec![arr(vec![range(4, 7), range(5, 8)])])
            ),
            (bulk("len"), int(6)),
        ])
    );
}

#[test]
fn results_are_bounded_by_proto_max_bulk_len() {
    let s = Server::start_with(&["--proto-max-bulk-len", "1048576"]);
    let c = &mut s.con();
    let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    assert_eq!(fail(c, "SETRANGE k 1048576 x"), too_long);
    assert_eq!(ok(c, "GET k"), Value::Nil);
    assert_eq!(ok(c, "SETRANGE k 1048575 x"), int(1_048_576));
    assert_eq!(fail(c, "APPEND k x"), too_long);
    assert_eq!(ok(c, "STRLEN k"), int(1_048_576));
    assert_eq!(q(c, &[b"APPEND", b"k", b""]), Ok(int(1_048_576)));
    assert_eq!(ok(c, "SETRANGE k 0 y"), int(1_048_576));
    let half = vec![b'h'; 600];
    assert_eq!(q(c, &[b"MSET", b"a", &half, b"b", &half]), Ok(Value::Okay));
    assert_eq!(
        fail(c, "LCS a b"),
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
    );
    assert_eq!(ok(c, "MSET x hello y yellow"), Value::Okay);
    assert_eq!(ok(c, "LCS x y"), bulk("ello"));
}

#[test]
fn ttls_are_kept_or_replaced() {
    let s = Server::start();
    let c = &mut s.con();
    let ttl = |c: &mut Connection, key: &str| match ok(c, &format!("TTL {key}")) {
        Value::Int(n) => n,
        other => panic!("TTL {key}: {other:?}"),
    };
    assert_eq!(ok(c, "SETEX k 100 v"), Value::Okay);
    assert!((99..=100).contains(&ttl(c, "k")));
    // In-place changes keep the TTL.
    for line in [
        "SET k 1 KEEPTTL",
        "INCR k",
        "INCRBYFLOAT k 1.5",
        "APPEND k x",
        "SETRANGE k 0 y",
        "GETEX k",
        "SET k v XX KEEPTTL GET",
    ] {
        ok(c, line);
        assert!((99..=100).contains(&ttl(c, "k")), "{line}");
    }
    assert_eq!(ok(c, "GETEX k EX 50"), bulk("v"));
    assert!((49..=50).contains(&ttl(c, "k")));
    assert_eq!(ok(c, "GETEX k PERSIST"), bulk("v"));
    assert_eq!(ttl(c, "k"), -1);
    // Replacing the value drops the TTL.
    for line in ["SET k v", "GETSET k v", "MSET k v"] {
        assert_eq!(ok(c, "EXPIRE k 100"), int(1));
        ok(c, line);
        assert_eq!(ttl(c, "k"), -1, "{line}");
    }
    assert_eq!(ok(c, "SET k v EX 100 EX 200"), Value::Okay);
    assert!((199..=200).contains(&ttl(c, "k")));
    assert_eq!(ok(c, "SET k v EXAT 99999999999"), Value::Okay);
    assert!(ttl(c, "k") > 90_000_000_000);
    assert_eq!(ok(c, "PSETEX k 100000 v"), Value::Okay);
    assert!((99..=100).contains(&ttl(c, "k")));
    // Encodings as Redis reports them.
    assert_eq!(ok(c, "SET n 10"), Value::Okay);
    assert_eq!(ok(c, "INCR n"), int(11));
    assert_eq!(ok(c, "OBJECT ENCODING n"), bulk("int"));
    assert_eq!(ok(c, "INCRBYFLOAT n 1"), bulk("12"));
    assert_eq!(ok(c, "OBJECT ENCODING n"), bulk("embstr"));
}

/// OBJECT ENCODING after each way of writing a string: SET-like commands
/// store `int`/`embstr`/`raw` by value; APPEND and SETRANGE leave a `raw`
/// string whatever its length (Redis edits a private raw copy), except
/// APPEND creating the key; INCR makes an `int`, INCRBYFLOAT an `embstr`.
#[test]
fn string_encodings_follow_redis() {
    let s = Server::start();
    let c = &mut s.con();
    let x44 = "x".repeat(44);
    let x45 = "x".repeat(45);
    let cases: &[(&str, &str)] = &[
        ("SET s abc", "embstr"),
        ("SET n 123", "int"),
        ("SET l 0123", "embstr"),
        (&format!("SET e {x44}"), "embstr"),
        (&format!("SET r {x45}"), "raw"),
        ("APPEND s def", "raw"),
        ("APPEND n 4", "raw"),
        ("APPEND fresh abc", "embstr"),
        ("APPEND freshint 12", "int"),
        ("APPEND l ''", "raw"),
        ("SET s2 abc", "embstr"),
        ("SETRANGE s2 0 ''", "embstr"),
        ("SETRANGE s2 1 z", "raw"),
        ("SETRANGE missing 2 ab", "raw"),
        ("SET ten 1", "int"),
        ("APPEND ten 0", "raw"),
        ("INCR ten", "int"),
        ("INCRBYFLOAT f 1.5", "embstr"),
        ("INCRBYFLOAT ten 1", "embstr"),
        ("DECRBY ten 2", "int"),
        ("GETSET g 42", "int"),
        ("GETSET g abc", "embstr"),
        ("SETNX x 7", "int"),
        ("MSET a 1 b xyz", "int"),
        ("SETEX t 100 5", "int"),
        ("PSETEX t 100000 five", "embstr"),
        ("SET s abc", "embstr"),
    ];
    for (line, want) in cases {
        // '' stands for an empty argument.
        let args: Vec<&[u8]> = line
            .split(' ')
            .map(|w| if w == "''" { &b""[..] } else { w.as_bytes() })
            .collect();
        q(c, &args).unwrap_or_else(|e| panic!("{line}: {e}"));
        let key = line.split(' ').nth(1).unwrap_or_default();
        assert_eq!(
            ok(c, &format!("OBJECT ENCODING {key}")),
            bulk(want),
            "after {line}"
        );
    }
    assert_eq!(ok(c, "OBJECT ENCODING b"), bulk("embstr"));
    // Copies and renames keep the encoding.
    ok(c, "APPEND s d");
    ok(c, "COPY s copied");
    assert_eq!(ok(c, "OBJECT ENCODING copied"), bulk("raw"));
    ok(c, "RENAME copied renamed");
    assert_eq!(ok(c, "OBJECT ENCODING renamed"), bulk("raw"));
    assert_eq!(ok(c, "GET renamed"), bulk("abcd"));
}
