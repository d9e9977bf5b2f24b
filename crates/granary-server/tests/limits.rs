//! maxmemory over TCP: eviction policies keep memory bounded, noeviction
//! refuses writes with Redis's OOM error, and the server keeps serving.

mod common;

use common::ServerProc;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn fill(con: &mut redis::Connection, n: usize, value: &[u8]) -> Vec<redis::Value> {
    let mut out = vec![];
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET").arg(format!("key:{i}")).arg(value);
        }
        out.extend(p.query::<Vec<redis::Value>>(con).unwrap());
    }
    out
}

#[test]
fn allkeys_lru_keeps_memory_bounded() {
    let server = ServerProc::granary(&["--maxmemory", "30mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut con = server.conn();
    // 150 MB of values into a 30 MB budget.
    let replies = fill(&mut con, 150_000, &[b'v'; 1000]);
    assert!(
        replies.iter().all(|r| *r == redis::Value::Okay),
        "every SET accepted"
    );
    let kept: usize = (0..150_000)
        .step_by(10)
        .filter(|i| {
            redis::cmd("EXISTS")
                .arg(format!("key:{i}"))
                .query::<i64>(&mut con)
                .unwrap()
                == 1
        })
        .count();
    assert!(
        kept > 0 && kept < 6_000,
        "some keys evicted, some kept: {kept} of 15000 sampled"
    );
    // The most recent writes survive LRU eviction.
    let last: i64 = redis::cmd("EXISTS")
        .arg("key:149999")
        .query(&mut con)
        .unwrap();
    assert_eq!(last, 1);
    let rss_mb = rss_kb(server.pid()) / 1024;
    assert!(rss_mb < 120, "RSS {rss_mb} MB stays near the 30 MB budget");
}

#[test]
fn noeviction_refuses_writes_but_serves_reads() {
    let server = ServerProc::granary(&["--maxmemory", "20mb", "--maxmemory-policy", "noeviction"]);
    let mut con = server.conn();
    let mut refused = None;
    for i in 0..100_000 {
        let r: redis::RedisResult<redis::Value> = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(&[b'x'; 1000][..])
            .query(&mut con);
        if let Err(e) = r {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (at, msg) = refused.expect("writes refused once over maxmemory");
    assert!(at > 1000, "refused only when full ({at})");
    assert!(
        msg.contains("command not allowed when used memory > 'maxmemory'"),
        "{msg}"
    );
    let v: Vec<u8> = redis::cmd("GET").arg("key:0").query(&mut con).unwrap();
    assert_eq!(v.len(), 1000, "reads still served");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
