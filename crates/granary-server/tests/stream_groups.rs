//! The consumer-group story of issue 6: producers XADD while three
//! consumers XREADGROUP and XACK; one consumer dies holding unacknowledged
//! entries, and XAUTOCLAIM hands them to the others. Every entry is
//! processed and acknowledged; none is lost. Then the group survives a
//! restart (RDB) with its pending entries.

mod common;

use common::ServerProc;
use redis::streams::{
    StreamAutoClaimReply, StreamPendingReply, StreamReadOptions, StreamReadReply,
};
use redis::Commands;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PRODUCERS: usize = 2;
const PER_PRODUCER: usize = 1500;
/// What the dying consumer reads before it dies (never acknowledged).
const DEAD_READS: usize = 40;
/// Entries idle this long are taken over by XAUTOCLAIM.
const MIN_IDLE_MS: usize = 200;

/// The `n` field of each entry (unique per entry across producers).
fn numbers(entries: &[redis::streams::StreamId]) -> Vec<(String, u64)> {
    entries
        .iter()
        .map(|e| {
            let n: u64 = e.get("n").expect("entry without n");
            (e.id.clone(), n)
        })
        .collect()
}

/// One live consumer: reads new entries, and when there are none, claims
/// entries left idle by others. Records what it processed, acknowledges
/// each batch after processing it.
fn consume(
    server: &ServerProc,
    name: &str,
    processed: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let mut c = server.conn();
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut claimed = 0;
        let opts = StreamReadOptions::default()
            .group("workers", &name)
            .count(20)
            .block(50);
        while !done.load(Relaxed) {
            let reply: StreamReadReply = c.xread_options(&["jobs"], &[">"], &opts).unwrap();
            let mut batch: Vec<(String, u64)> =
                reply.keys.iter().flat_map(|k| numbers(&k.ids)).collect();
            if batch.is_empty() {
                let r: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                    .arg("jobs")
                    .arg("workers")
                    .arg(&name)
                    .arg(MIN_IDLE_MS)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(50)
                    .query(&mut c)
                    .unwrap();
                batch = numbers(&r.claimed);
                claimed += batch.len();
            }
            if batch.is_empty() {
                continue;
            }
            processed
                .lock()
                .unwrap()
                .extend(batch.iter().map(|(_, n)| *n));
            let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
            // On a slow machine an entry can idle past MIN_IDLE_MS before
            // its batch is acknowledged and be claimed by another consumer:
            // delivery is at least once, so fewer may count as acknowledged.
            let acked: usize = c.xack("jobs", "workers", &ids).unwrap();
            assert!(acked <= ids.len());
        }
        claimed
    })
}

#[test]
fn a_dead_consumers_entries_are_claimed_and_none_is_lost() {
    story(ServerProc::granary(&[]));
}

/// The same story against redis-server: the test's own expectations hold
/// for the oracle.
#[test]
fn the_story_holds_for_redis() {
    story(ServerProc::redis(&[]));
}

fn story(mut server: ServerProc) {
    let mut admin = server.conn();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs")
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut admin)
        .unwrap();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut c = server.conn();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let n = (p * PER_PRODUCER + i) as u64;
                    let _: String = c.xadd("jobs", "*", &[("n", n)]).unwrap();
                }
            })
        })
        .collect();
    // The consumer that dies: reads entries, never acknowledges, and its
    // connection goes away.
    let dead_read = {
        let mut c = server.conn();
        let opts = StreamReadOptions::default()
            .group("workers", "doomed")
            .count(DEAD_READS)
            .block(5000);
        let mut got = vec![];
        while got.len() < DEAD_READS {
            let reply: StreamReadReply = c.xread_options(&["jobs"], &[">"], &opts).unwrap();
            got.extend(reply.keys.iter().flat_map(|k| numbers(&k.ids)));
        }
        got
    };
    let processed = Arc::new(Mutex::new(vec![]));
    let done = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = ["c1", "c2", "c3"]
        .iter()
        .map(|name| consume(&server, name, processed.clone(), done.clone()))
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let all: BTreeSet<u64> = (0..(PRODUCERS * PER_PRODUCER) as u64).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: StreamPendingReply = admin.xpending("jobs", "workers").unwrap();
        let seen: BTreeSet<u64> = processed.lock().unwrap().iter().copied().collect();
        if pending.count() == 0 && seen == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done: {} pending, {} of {} processed",
            pending.count(),
            seen.len(),
            all.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Relaxed);
    let claimed: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    let dead: BTreeSet<u64> = dead_read.iter().map(|(_, n)| *n).collect();
    assert!(
        claimed >= dead.len(),
        "the dead consumer's {} entries were not claimed ({claimed} claims)",
        dead.len()
    );
    // Nothing is left pending, the dead consumer included.
    let info: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("jobs")
        .arg("workers")
        .query(&mut admin)
        .unwrap();
    assert_eq!(info.len(), 4, "three live consumers and the dead one");
    // The group and its consumers survive a restart through the RDB file.
    let _: String = redis::cmd("SAVE").query(&mut admin).unwrap();
    let len: usize = admin.xlen("jobs").unwrap();
    drop(admin);
    server.kill9_and_restart();
    let mut c = server.conn();
    assert_eq!(c.xlen::<_, usize>("jobs").unwrap(), len);
    let info: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("jobs")
        .arg("workers")
        .query(&mut c)
        .unwrap();
    assert_eq!(info.len(), 4, "the consumers came back");
    let opts = StreamReadOptions::default()
        .group("workers", "c1")
        .count(10);
    let reply: StreamReadReply = c.xread_options(&["jobs"], &[">"], &opts).unwrap();
    assert!(
        reply.keys.iter().all(|k| k.ids.is_empty()),
        "the group's last-delivered ID came back: nothing new to read"
    );
}
