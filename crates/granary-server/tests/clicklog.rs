//! The click-log workload of the write-back story, through redis-rs
//! pipelines as an application would write it:
//!
//! - `recommend:{user}`: a list of the items recommended to a user, in
//!   recommendation order (RPUSH);
//! - `{user}:recommendedItemId` and `{user}:readItemId`: sets of item ids,
//!   so SINTER answers "recommended and read";
//! - `{user}:{item}`: a hash per read with `readAt` and `isRecommended`.
//!
//! 2,000 users x 50 recommendations and 200,000 reads go in through
//! pipelines of 1,000 commands; then every user's SINTER, every list, and a
//! batch-job walk (SCAN MATCH '*:readItemId' COUNT 1000, then HGETALL of
//! each read) are checked against what the test computed itself.

mod common;

use common::ServerProc;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const USERS: usize = 2_000;
const RECOMMENDED: usize = 50;
const READS: usize = 200_000;
const PIPELINE: usize = 1_000;
const ITEMS: u32 = 5_000;

/// What the test expects the server to hold.
#[derive(Default)]
struct Model {
    recommended: Vec<Vec<u32>>,
    /// user -> item -> (readAt, isRecommended) of the latest read.
    reads: HashMap<usize, BTreeMap<u32, (u64, bool)>>,
}

impl Model {
    fn is_recommended(&self, user: usize, item: u32) -> bool {
        self.recommended[user].contains(&item)
    }

    fn read_ids(&self, user: usize) -> BTreeSet<u32> {
        self.reads
            .get(&user)
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }

    fn recommended_and_read(&self, user: usize) -> BTreeSet<u32> {
        let recommended: BTreeSet<u32> = self.recommended[user].iter().copied().collect();
        self.read_ids(user)
            .intersection(&recommended)
            .copied()
            .collect()
    }
}

fn recommend(c: &mut redis::Connection, rng: &mut StdRng, model: &mut Model) {
    let mut pipe = redis::pipe();
    for user in 0..USERS {
        let mut all: Vec<u32> = (0..ITEMS).collect();
        all.partial_shuffle(rng, RECOMMENDED);
        let items = all[..RECOMMENDED].to_vec();
        pipe.rpush(format!("recommend:{user}"), &items).ignore();
        pipe.sadd(format!("{user}:recommendedItemId"), &items)
            .ignore();
        model.recommended.push(items);
        if (user + 1) % (PIPELINE / 2) == 0 {
            let () = pipe.query(c).expect("recommendation pipeline");
            pipe = redis::pipe();
        }
    }
}

fn record_reads(c: &mut redis::Connection, rng: &mut StdRng, model: &mut Model) {
    for batch in 0..READS / PIPELINE {
        let mut pipe = redis::pipe();
        let mut expect_new = Vec::with_capacity(PIPELINE);
        for i in 0..PIPELINE {
            let user = rng.gen_range(0..USERS);
            // Half the reads follow a recommendation.
            let item = if rng.gen_bool(0.5) {
                model.recommended[user][rng.gen_range(0..RECOMMENDED)]
            } else {
                rng.gen_range(0..ITEMS)
            };
            let read_at = 1_700_000_000_000 + (batch * PIPELINE + i) as u64;
            let flag = model.is_recommended(user, item);
            let first = model
                .reads
                .entry(user)
                .or_default()
                .insert(item, (read_at, flag))
                .is_none();
            expect_new.push(i64::from(first));
            pipe.sadd(format!("{user}:readItemId"), item);
            pipe.hset_multiple(
                format!("{user}:{item}"),
                &[
                    ("readAt", read_at.to_string()),
                    ("isRecommended", u8::from(flag).to_string()),
                ],
            )
            .ignore();
        }
        let added: Vec<i64> = pipe.query(c).expect("read pipeline");
        assert_eq!(added, expect_new, "SADD replies of batch {batch}");
    }
}

#[test]
fn click_log_workload() {
    let s = ServerProc::granary(&[]);
    let mut c = s.conn();
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = Model::default();

    recommend(&mut c, &mut rng, &mut model);
    record_reads(&mut c, &mut rng, &mut model);

    for users in (0..USERS).collect::<Vec<_>>().chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for u in users {
            pipe.sinter(&[format!("{u}:recommendedItemId"), format!("{u}:readItemId")]);
            pipe.lrange(format!("recommend:{u}"), 0, -1);
        }
        let replies: Vec<redis::Value> = pipe.query(&mut c).expect("SINTER pipeline");
        assert_eq!(replies.len(), 2 * users.len());
        for (&u, pair) in users.iter().zip(replies.chunks(2)) {
            let both: BTreeSet<u32> = redis::from_redis_value(&pair[0]).expect("SINTER reply");
            let list: Vec<u32> = redis::from_redis_value(&pair[1]).expect("LRANGE reply");
            assert_eq!(both, model.recommended_and_read(u), "SINTER of user {u}");
            assert_eq!(list, model.recommended[u], "recommend:{u} in push order");
        }
    }

    // The batch job: walk the read sets with SCAN, then fetch every read.
    let mut walked = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("*:readItemId")
            .arg("COUNT")
            .arg(1000)
            .query(&mut c)
            .expect("SCAN");
        walked.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let want: BTreeSet<String> = model
        .reads
        .keys()
        .map(|u| format!("{u}:readItemId"))
        .collect();
    assert_eq!(walked, want, "SCAN walk of the read sets");

    let mut rows = 0;
    for key in &walked {
        let user: usize = key.split(':').next().unwrap().parse().unwrap();
        let ids: BTreeSet<u32> = redis::cmd("SMEMBERS")
            .arg(key)
            .query(&mut c)
            .expect("SMEMBERS");
        assert_eq!(ids, model.read_ids(user), "{key}");
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{user}:{id}"));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query(&mut c).expect("HGETALL");
        for (id, h) in ids.iter().zip(hashes) {
            let (read_at, flag) = model.reads[&user][id];
            assert_eq!(h.len(), 2, "{user}:{id} has readAt and isRecommended");
            assert_eq!(h["readAt"], read_at.to_string(), "{user}:{id} readAt");
            assert_eq!(h["isRecommended"], u8::from(flag).to_string());
            rows += 1;
        }
    }
    let reads_total: usize = model.reads.values().map(BTreeMap::len).sum();
    assert_eq!(rows, reads_total);
}
