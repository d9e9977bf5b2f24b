//! Start-up and shutdown of the real binary: config file, command-line
//! directives, Redis-style errors naming the bad line, and graceful exits on
//! SIGTERM, SIGINT and SHUTDOWN.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn granary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_granary"))
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn wait_ping(port: u16) -> redis::Connection {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection())
        {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut c);
            if pong.is_ok()
                || pong
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("NOAUTH"))
            {
                return c;
            }
        }
        assert!(Instant::now() < end, "server on {port} never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_file_and_command_line_directives_apply() {
    let dir = std::env::temp_dir().join(format!("granary-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let conf = dir.join("granary.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    writeln!(f, "# comment\nport {port}\ndatabases 4\nrequirepass \"s3cret\"\nsave 900 1 300 10\nmaxmemory 64mb").unwrap();
    let mut child = granary()
        .arg(&conf)
        .args(["--hz", "20", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut con = wait_ping(port);
    let e = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut con).unwrap();
    let get = |con: &mut redis::Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(con)
            .unwrap();
        v[1].clone()
    };
    assert_eq!(get(&mut con, "databases"), "4");
    assert_eq!(get(&mut con, "save"), "900 1 300 10");
    assert_eq!(get(&mut con, "maxmemory"), (64 << 20).to_string());
    assert_eq!(get(&mut con, "hz"), "20");
    let e = redis::cmd("SELECT")
        .arg(4)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("DB index is out of range"), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_directive_is_a_startup_error_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("granary-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "port 0\n\nnot-a-directive yes\n").unwrap();
    let out = granary().arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at line 3"), "{err}");
    assert!(err.contains(">>> 'not-a-directive yes'"), "{err}");
    assert!(err.contains("Bad directive"), "{err}");
    let out = granary()
        .args(["--port", "0", "--maxmemory", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("maxmemory"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn signals_and_shutdown_stop_gracefully() {
    for how in ["TERM", "INT", "SHUTDOWN"] {
        let port = common::free_port();
        let mut child = granary()
            .args(["--port", &port.to_string(), "--save", ""])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut con = wait_ping(port);
        if how == "SHUTDOWN" {
            // No reply: the connection just closes, as with Redis.
            let r: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut con);
            assert!(r.is_err());
        } else {
            let st = Command::new("kill")
                .args([&format!("-{how}"), &child.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let status = wait_exit(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{how}: still running"));
        assert!(status.success(), "{how}: exit {status:?}");
        let mut log = String::new();
        // Like Redis with no logfile, the log goes to standard output.
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut log).unwrap();
        assert!(log.contains("ready to exit"), "{how}: {log}");
    }
}
