//! What the write-behind integration tests share: SQLite and PostgreSQL
//! read back as rows of text, a PostgreSQL server of the test's own, and
//! the WRITEBEHIND calls they all make.
#![allow(dead_code)]

use crate::common;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fresh directory for one test's database file.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("granary-wb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn flush(c: &mut redis::Connection) {
    let r: String = redis::cmd("WRITEBEHIND").arg("FLUSH").query(c).unwrap();
    assert_eq!(r, "OK");
}

pub fn status(c: &mut redis::Connection) -> BTreeMap<String, String> {
    redis::cmd("WRITEBEHIND").arg("STATUS").query(c).unwrap()
}

pub fn stat(c: &mut redis::Connection, name: &str) -> u64 {
    status(c)[name].parse().unwrap()
}

/// Rows of an SQL query, each column rendered as text ('NULL' for null).
pub trait Db {
    fn rows(&mut self, sql: &str) -> Vec<Vec<String>>;
}

pub struct Sqlite(pub PathBuf);

impl Db for Sqlite {
    fn rows(&mut self, sql: &str) -> Vec<Vec<String>> {
        let c = rusqlite::Connection::open(&self.0).unwrap();
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }
}

/// Polls `f` until true, failing after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PostgreSQL server of the test's own: initdb in a temporary directory,
/// a free port, run as the `postgres` user when the test runs as root.
/// Stopped by PID when dropped, even if the test failed.
pub struct Postgres {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<std::process::Child>,
}

pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest /usr/lib/postgresql/<version>/bin (scripts/test.sh installs
/// PostgreSQL when it is missing).
pub fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/test.sh or apt-get install postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb: install PostgreSQL")
}

impl Postgres {
    pub fn command(&self, prog: &str) -> std::process::Command {
        let path = self.bin.join(prog);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    pub fn start(name: &str) -> Postgres {
        let dir = tmpdir(&format!("pg-{name}"));
        let mut pg = Postgres {
            bin: pg_bin(),
            dir,
            port: common::free_port(),
            child: None,
        };
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&pg.dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL directory failed");
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.run();
        pg
    }

    /// Starts the server on the existing data directory and waits until it
    /// answers.
    pub fn run(&mut self) {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until(60, "PostgreSQL to accept connections", || {
            self.psql_try("SELECT 1").is_some_and(|r| r == "1")
        });
    }

    /// The postmaster's PID, from its pid file.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Fast shutdown by PID, then waits for the process to be gone.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            wait_until(60, "PostgreSQL to stop", || {
                !PathBuf::from(format!("/proc/{pid}")).exists()
            });
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub fn psql_try(&self, sql: &str) -> Option<String> {
        let out = std::process::Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .args(["-p", &self.port.to_string()])
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }
}

impl Db for Postgres {
    fn rows(&mut self, sql: &str) -> Vec<Vec<String>> {
        let text = self
            .psql_try(sql)
            .unwrap_or_else(|| panic!("psql failed: {sql}"));
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(|s| s.to_string()).collect())
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
