//! Write-behind end to end: a real Granary writing to a real SQLite file
//! (read back with rusqlite), and to a PostgreSQL server the test starts
//! itself (docs/writebehind.md).

mod common;
mod wb_common;

use common::ServerProc;
use redis::Commands;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wb_common::*;

const READS: &str = "reads hash {user_id}:{item_id} table=reads fields=readAt:read_at:integer,isRecommended:is_recommended:boolean";
const READ_SET: &str = "readset set {user_id}:readItemId table=read_items member=item_id";
const RECS: &str = "recs list recommend:{user_id} table=recommendations value=item_id";
const SCORES: &str = "scores zset board:{board} table=scores member=player";
const NAMES: &str = "names string name:{id} table=names value=name on-delete=delete";

/// Granary writing to `sink` with the click-log rules; flushes only on
/// WRITEBEHIND FLUSH unless `interval` is short.
fn granary(sink: &str, interval: &str, extra: &[&str]) -> ServerProc {
    let mut args = vec![
        "--writebehind-sink",
        sink,
        "--writebehind-interval",
        interval,
    ];
    for r in [READ_SET, READS, RECS, SCORES, NAMES] {
        args.push("--writebehind-rule");
        args.extend(r.split(' '));
    }
    args.extend_from_slice(extra);
    ServerProc::granary(&args)
}

fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// The mapping checks, run against SQLite and PostgreSQL alike. `bool_true`
/// is how the database renders a true boolean.
fn check_mappings(c: &mut redis::Connection, db: &mut dyn Db, bool_true: &str) {
    // Coalescing: 1000 changes to one key are one upsert of its last state.
    // (A first FLUSH waits out the start-up flush, which prepares tables.)
    flush(c);
    let before = stat(c, "upserts");
    for i in 0..1000 {
        let _: () = redis::cmd("HSET")
            .arg("u1:i1")
            .arg("readAt")
            .arg(i)
            .arg("isRecommended")
            .arg(i % 2)
            .arg("ignored")
            .arg("x")
            .query(c)
            .unwrap();
    }
    flush(c);
    assert_eq!(stat(c, "upserts") - before, 1);
    assert_eq!(
        db.rows("SELECT user_id, item_id, read_at, is_recommended FROM reads"),
        strs(&[&["u1", "i1", "999", bool_true]])
    );

    // Sets: the table follows added and removed members.
    let _: () = c.sadd("u1:readItemId", &["a", "b", "c"]).unwrap();
    flush(c);
    let _: () = c.srem("u1:readItemId", "b").unwrap();
    let _: () = c.sadd("u1:readItemId", "d").unwrap();
    flush(c);
    assert_eq!(
        db.rows("SELECT user_id, item_id FROM read_items ORDER BY item_id"),
        strs(&[&["u1", "a"], &["u1", "c"], &["u1", "d"]])
    );

    // Sorted sets: member and score.
    let _: () = c.zadd("board:1", "ann", 1.5).unwrap();
    let _: () = c.zadd("board:1", "bob", 2).unwrap();
    flush(c);
    let _: () = c.zincr("board:1", "ann", 10).unwrap();
    let _: () = c.zrem("board:1", "bob").unwrap();
    flush(c);
    assert_eq!(
        db.rows("SELECT board, player, score FROM scores"),
        strs(&[&["1", "ann", "11.5"]])
    );

    // Lists append: every pushed element is a row, popped or not.
    let _: () = c.rpush("recommend:u1", &["x", "y"]).unwrap();
    let _: Option<String> = c.lpop("recommend:u1", None).unwrap();
    let _: () = c.lpush("recommend:u1", "z").unwrap();
    let _: Option<String> = c.rpoplpush("recommend:u1", "recommend:u2").unwrap();
    let _: () = redis::cmd("LINSERT")
        .arg("recommend:u2")
        .arg("BEFORE")
        .arg("y")
        .arg("w")
        .query(c)
        .unwrap();
    flush(c);
    assert_eq!(
        db.rows("SELECT user_id, item_id FROM recommendations ORDER BY id"),
        strs(&[
            &["u1", "x"],
            &["u1", "y"],
            &["u1", "z"],
            &["u2", "y"],
            &["u2", "w"]
        ])
    );
    // A flush with nothing new inserts nothing twice.
    flush(c);
    assert_eq!(db.rows("SELECT count(*) FROM recommendations")[0][0], "5");

    // Strings, and deletes per rule.
    let _: () = c.set("name:7", "seven").unwrap();
    let _: () = c.set("name:8", "eight").unwrap();
    flush(c);
    assert_eq!(
        db.rows("SELECT id, name FROM names ORDER BY id"),
        strs(&[&["7", "seven"], &["8", "eight"]])
    );
    let _: () = c.del("name:7").unwrap();
    let _: () = c.del("u1:i1").unwrap();
    flush(c);
    assert_eq!(db.rows("SELECT id FROM names"), strs(&[&["8"]]));
    assert!(db.rows("SELECT * FROM reads").is_empty());

    // Expiry deletes too.
    let _: () = c.set("name:9", "nine").unwrap();
    flush(c);
    assert_eq!(db.rows("SELECT count(*) FROM names")[0][0], "2");
    let _: () = c.pexpire("name:9", 30).unwrap();
    wait_until(20, "the expired key's row to go", || {
        flush(c);
        db.rows("SELECT count(*) FROM names")[0][0] == "1"
    });

    // FLUSHDB empties the mirrored tables; appended rows stay.
    let _: () = redis::cmd("FLUSHDB").query(c).unwrap();
    flush(c);
    assert!(db.rows("SELECT * FROM names").is_empty());
    assert!(db.rows("SELECT * FROM read_items").is_empty());
    assert!(db.rows("SELECT * FROM scores").is_empty());
    assert_eq!(db.rows("SELECT count(*) FROM recommendations")[0][0], "5");
}

#[test]
fn sqlite_mappings_coalescing_and_deletes() {
    let dir = tmpdir("mappings");
    let file = dir.join("wb.db");
    let s = granary(&format!("sqlite:{}", file.display()), "60000", &[]);
    let mut c = s.conn();
    check_mappings(&mut c, &mut Sqlite(file), "1");
    let info: String = redis::cmd("INFO").arg("writebehind").query(&mut c).unwrap();
    for f in [
        "pending_rows:0",
        "rows_flushed:",
        "batches_flushed:",
        "batches_failed:0",
        "oldest_pending_age_ms:0",
        "paused:0",
        "last_error:\r\n",
    ] {
        assert!(info.contains(f), "{f} not in {info}");
    }
}

/// A hash field that expires (HPEXPIRE) queues its hash: the next flush
/// writes the row without it, and the row goes when the last field does.
#[test]
fn expiring_hash_fields_update_their_row() {
    let dir = tmpdir("hash-field-ttl");
    let file = dir.join("wb.db");
    let s = granary(&format!("sqlite:{}", file.display()), "60000", &[]);
    let mut c = s.conn();
    let mut db = Sqlite(file);
    let row = |db: &mut Sqlite| db.rows("SELECT read_at, is_recommended FROM reads");
    let _: () = redis::cmd("HSET")
        .arg(&["u1:i1", "readAt", "5", "isRecommended", "1"])
        .query(&mut c)
        .unwrap();
    flush(&mut c);
    assert_eq!(row(&mut db), strs(&[&["5", "1"]]));
    let _: Vec<i64> = redis::cmd("HPEXPIRE")
        .arg(&["u1:i1", "2000", "FIELDS", "1", "readAt"])
        .query(&mut c)
        .unwrap();
    // HPEXPIRE's own change is flushed while the field still lives; after
    // that no write touches the key: the next flush comes from the expiry
    // (the cron's, or this read's).
    flush(&mut c);
    assert_eq!(row(&mut db), strs(&[&["5", "1"]]));
    wait_until(10, "the field to expire", || {
        let n: i64 = c.hlen("u1:i1").unwrap();
        n == 1
    });
    flush(&mut c);
    assert_eq!(row(&mut db), strs(&[&["NULL", "1"]]));
    let _: Vec<i64> = redis::cmd("HPEXPIRE")
        .arg(&["u1:i1", "1", "FIELDS", "1", "isRecommended"])
        .query(&mut c)
        .unwrap();
    wait_until(10, "the hash to go", || {
        let n: i64 = c.exists("u1:i1").unwrap();
        n == 0
    });
    flush(&mut c);
    assert!(row(&mut db).is_empty());
}

/// A key is queued once per flush (its entry carries a pending bit, cleared
/// when the flusher reads it): every write after a flush is written by the
/// next, and keys that move (SWAPDB, MOVE, RENAME) are never left marked
/// as queued when they are not.
#[test]
fn keys_are_written_again_after_each_flush_and_after_moves() {
    let dir = tmpdir("pending-bit");
    let file = dir.join("wb.db");
    let s = granary(&format!("sqlite:{}", file.display()), "60000", &[]);
    let mut c = s.conn();
    let mut db = Sqlite(file);
    let names = |db: &mut Sqlite| db.rows("SELECT id, name FROM names ORDER BY id");
    flush(&mut c);
    for v in ["a", "b", "c"] {
        let _: () = c.set("name:1", v).unwrap();
        flush(&mut c);
        assert_eq!(names(&mut db), strs(&[&["1", v]]));
    }
    // Queued in db 0, swapped away and back before the flush: SWAPDB
    // empties both databases' tables, and the key's next write is queued.
    let _: () = c.set("name:2", "x").unwrap();
    for _ in 0..2 {
        let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).unwrap();
    }
    flush(&mut c);
    let _: () = c.set("name:2", "y").unwrap();
    flush(&mut c);
    assert!(names(&mut db).contains(&vec!["2".to_string(), "y".to_string()]));
    // MOVE away and back, RENAME: the key's new identity is written.
    let _: () = c.set("name:3", "m").unwrap();
    let _: () = redis::cmd("MOVE")
        .arg("name:3")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    let _: () = redis::cmd("MOVE")
        .arg("name:3")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
    let _: () = c.set("name:4", "r").unwrap();
    flush(&mut c);
    let _: () = c.rename("name:4", "name:5").unwrap();
    flush(&mut c);
    let _: () = c.set("name:3", "m2").unwrap();
    flush(&mut c);
    let rows = names(&mut db);
    assert!(
        rows.contains(&vec!["3".to_string(), "m2".to_string()]),
        "{rows:?}"
    );
    assert!(
        rows.contains(&vec!["5".to_string(), "r".to_string()]),
        "{rows:?}"
    );
    assert!(!rows.iter().any(|r| r[0] == "4"), "{rows:?}");
}

/// RESYNC queues keys no write queued: keys written before their rule
/// existed, and keys SWAPDB brought in. Keys already queued are not
/// counted twice, and keys of a type no rule maps are not queued.
#[test]
fn resync_writes_keys_that_existed_before() {
    let dir = tmpdir("resync");
    let file = dir.join("wb.db");
    let s = ServerProc::granary(&[
        "--writebehind-sink",
        &format!("sqlite:{}", file.display()),
        "--writebehind-interval",
        "60000",
    ]);
    let mut c = s.conn();
    let mut db = Sqlite(file);
    for i in 0..500 {
        let _: () = c.set(format!("city:{i}"), format!("c{i}")).unwrap();
    }
    let _: () = c.set("other", "x").unwrap();
    let _: () = c.rpush("city:list", "a").unwrap(); // matches, but not a string
    let _: String = redis::cmd("WRITEBEHIND")
        .arg("RULE")
        .arg("ADD")
        .arg(
            "cities string city:{id} table=cities value=name"
                .split(' ')
                .collect::<Vec<_>>(),
        )
        .query(&mut c)
        .unwrap();
    let count = |db: &mut Sqlite| db.rows("SELECT count(*) FROM cities")[0][0].clone();
    flush(&mut c);
    assert_eq!(count(&mut db), "0", "existing keys wait for RESYNC");
    let _: () = c.set("city:0", "changed").unwrap(); // queued by its write
    let n: i64 = redis::cmd("WRITEBEHIND")
        .arg("RESYNC")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 499);
    flush(&mut c);
    assert_eq!(count(&mut db), "500");
    assert_eq!(
        db.rows("SELECT name FROM cities WHERE id = '0'"),
        strs(&[&["changed"]])
    );
    let n: i64 = redis::cmd("WRITEBEHIND")
        .arg("RESYNC")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 500, "after a flush every key is queued again");
    flush(&mut c);
    // SWAPDB empties the table; RESYNC brings the swapped-in keys back.
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    for i in 0..10 {
        let _: () = c.set(format!("city:{i}"), "from db 1").unwrap();
    }
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).unwrap();
    flush(&mut c);
    assert_eq!(count(&mut db), "0");
    let n: i64 = redis::cmd("WRITEBEHIND")
        .arg("RESYNC")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 10);
    flush(&mut c);
    assert_eq!(count(&mut db), "10");
}

#[test]
fn rules_at_run_time_and_incompatible_tables() {
    let dir = tmpdir("rules");
    let file = dir.join("wb.db");
    {
        let db = rusqlite::Connection::open(&file).unwrap();
        db.execute_batch("CREATE TABLE visits (page TEXT PRIMARY KEY, hits BLOB);")
            .unwrap();
    }
    let s = ServerProc::granary(&[
        "--writebehind-sink",
        &format!("sqlite:{}", file.display()),
        "--writebehind-interval",
        "60000",
    ]);
    let mut c = s.conn();
    let wb = |c: &mut redis::Connection, args: &[&str]| -> redis::RedisResult<redis::Value> {
        redis::cmd("WRITEBEHIND").arg(args).query(c)
    };
    let rules: Vec<String> = redis::cmd("WRITEBEHIND")
        .arg("RULES")
        .query(&mut c)
        .unwrap();
    assert!(rules.is_empty());
    let e = wb(&mut c, &["RULE", "ADD", "r", "hash", "{a}", "table=t"]).unwrap_err();
    assert!(e.to_string().contains("needs fields="), "{e}");
    let e = wb(
        &mut c,
        &["RULE", "ADD", "r", "hash", "x", "table=t", "fields=a"],
    )
    .unwrap_err();
    assert!(e.to_string().contains("names no part"), "{e}");
    wb(
        &mut c,
        &["RULE", "ADD", "n", "string", "name:{id}", "table=names"],
    )
    .unwrap();
    let rules: Vec<String> = redis::cmd("WRITEBEHIND")
        .arg("RULES")
        .query(&mut c)
        .unwrap();
    assert_eq!(rules, ["n string name:{id} table=names"]);
    let cfg: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("writebehind-rule")
        .query(&mut c)
        .unwrap();
    assert_eq!(cfg[1], "n string name:{id} table=names");
    let _: () = c.set("name:1", "one").unwrap();
    flush(&mut c);
    assert_eq!(
        Sqlite(file.clone()).rows("SELECT id, value FROM names"),
        strs(&[&["1", "one"]])
    );

    // A table whose column has the wrong type is refused, naming it.
    wb(
        &mut c,
        &[
            "RULE",
            "ADD",
            "v",
            "string",
            "visits:{page}",
            "table=visits",
            "value=hits:integer",
        ],
    )
    .unwrap();
    let _: () = c.set("visits:home", "3").unwrap();
    let e = wb(&mut c, &["FLUSH"]).unwrap_err().to_string();
    assert!(e.contains("column hits has type BLOB"), "{e}");
    let info: String = redis::cmd("INFO").arg("writebehind").query(&mut c).unwrap();
    assert!(
        info.contains("last_error:sqlite") || info.contains("column hits"),
        "{info}"
    );
    assert!(stat(&mut c, "batches_failed") >= 1);
    // Removing the rule lets the rest flush again.
    wb(&mut c, &["RULE", "DEL", "v"]).unwrap();
    let e = wb(&mut c, &["RULE", "DEL", "v"]).unwrap_err();
    assert!(e.to_string().contains("no rule named"), "{e}");
    let _: () = c.set("name:2", "two").unwrap();
    wait_until(30, "a flush after the bad rule went", || {
        wb(&mut c, &["FLUSH"]).is_ok()
    });
    assert_eq!(
        Sqlite(file).rows("SELECT id, value FROM names ORDER BY id"),
        strs(&[&["1", "one"], &["2", "two"]])
    );
}

#[test]
fn backlog_limit_refuses_or_counts_at_risk() {
    let dir = tmpdir("backlog");
    let file = dir.join("wb.db");
    let s = granary(
        &format!("sqlite:{}", file.display()),
        "60000",
        &["--writebehind-max-pending", "5"],
    );
    let mut c = s.conn();
    let r: String = redis::cmd("WRITEBEHIND")
        .arg("PAUSE")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, "OK");
    for i in 0..5 {
        let _: () = c.set(format!("name:{i}"), i).unwrap();
    }
    assert_eq!(stat(&mut c, "pending_rows"), 5);
    let e = c.set::<_, _, ()>("name:5", 5).unwrap_err();
    assert!(e.to_string().contains("WRITEBEHIND backlog full"), "{e}");
    // Unmapped keys and reads are not affected.
    let _: () = c.set("other", 1).unwrap();
    let _: Option<String> = c.get("name:1").unwrap();
    assert_eq!(stat(&mut c, "writes_refused"), 1);
    // FLUSH works while paused, and frees the backlog.
    flush(&mut c);
    assert_eq!(stat(&mut c, "pending_rows"), 0);
    let _: () = c.set("name:5", 5).unwrap();
    // Accept mode: writes past the limit go through, counted at risk.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("writebehind-overflow")
        .arg("accept")
        .query(&mut c)
        .unwrap();
    // The flusher picks config changes up within a fraction of a second.
    wait_until(10, "overflow accept", || {
        for i in 10..20 {
            if c.set::<_, _, ()>(format!("name:{i}"), i).is_err() {
                return false;
            }
        }
        true
    });
    assert!(stat(&mut c, "writes_at_risk") > 0);
    let r: String = redis::cmd("WRITEBEHIND")
        .arg("RESUME")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, "OK");
    flush(&mut c);
    assert_eq!(
        Sqlite(file).rows("SELECT count(*) FROM names")[0][0],
        (1 + 5 + 10).to_string()
    );
}

/// A writer keeps adding while the flusher runs every few milliseconds:
/// after a final FLUSH every write is in the tables.
fn writer_during_flushes(s: &ServerProc, db: &mut dyn Db) {
    const N: usize = 3000;
    let mut w = s.conn();
    let writer = std::thread::spawn(move || {
        let mut expected_sets: BTreeSet<(String, String)> = BTreeSet::new();
        for i in 0..N {
            let user = format!("w{}", i % 17);
            let mut p = redis::pipe();
            p.rpush(format!("recommend:{user}"), i)
                .ignore()
                .sadd(format!("{user}:readItemId"), i)
                .ignore()
                .hset(format!("{user}:{i}"), "readAt", i)
                .ignore();
            let _: () = p.query(&mut w).unwrap();
            expected_sets.insert((user, i.to_string()));
        }
        expected_sets
    });
    let mut c = s.conn();
    // Flushes happen on their own (short interval); also force some.
    while !writer.is_finished() {
        let _: redis::RedisResult<String> = redis::cmd("WRITEBEHIND").arg("FLUSH").query(&mut c);
    }
    let expected = writer.join().unwrap();
    flush(&mut c);
    let got: BTreeSet<(String, String)> = db
        .rows("SELECT user_id, item_id FROM read_items WHERE user_id LIKE 'w%'")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(got, expected);
    let n = |db: &mut dyn Db, sql: &str| db.rows(sql)[0][0].parse::<usize>().unwrap();
    assert_eq!(
        n(
            db,
            "SELECT count(*) FROM recommendations WHERE user_id LIKE 'w%'"
        ),
        N
    );
    assert_eq!(
        n(
            db,
            "SELECT count(DISTINCT item_id) FROM recommendations WHERE user_id LIKE 'w%'"
        ),
        N
    );
    assert_eq!(
        n(db, "SELECT count(*) FROM reads WHERE user_id LIKE 'w%'"),
        N
    );
}

#[test]
fn sqlite_writer_during_flushes_loses_nothing() {
    let dir = tmpdir("writer");
    let file = dir.join("wb.db");
    let s = granary(
        &format!("sqlite:{}", file.display()),
        "5",
        &["--writebehind-batch-size", "500"],
    );
    writer_during_flushes(&s, &mut Sqlite(file));
}

#[test]
fn postgres_mappings_and_writer() {
    let mut pg = Postgres::start("mappings");
    let s = granary(&pg.url(), "60000", &[]);
    let mut c = s.conn();
    check_mappings(&mut c, &mut pg, "t");
    drop(c);
    let s2 = granary(&pg.url(), "5", &["--writebehind-batch-size", "500"]);
    writer_during_flushes(&s2, &mut pg);
}

#[test]
fn postgres_incompatible_table_is_refused() {
    let mut pg = Postgres::start("schema");
    pg.rows("CREATE TABLE names (id text PRIMARY KEY, name integer)");
    let s = granary(&pg.url(), "60000", &[]);
    let mut c = s.conn();
    let _: () = c.set("name:1", "x").unwrap();
    let e = redis::cmd("WRITEBEHIND")
        .arg("FLUSH")
        .query::<String>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table names column name has type integer"),
        "{e}"
    );
}

/// Values of every column type reach PostgreSQL intact, through COPY
/// straight into the table (fresh appended rows), through the staging
/// table (upserts), and through the staging table after a replay (rows
/// recovered from the journal after kill -9): text holding what separates
/// COPY's columns and rows, bytes with NUL and 0xff, a fractional time.
#[test]
fn postgres_values_of_every_type_survive_copy() {
    let mut pg = Postgres::start("types");
    const TYPES: &str =
        "types hash t:{k} table=types fields=s,i:integer,r:real,b:boolean,ts:timestamp,raw:bytes";
    const TEXTS: &str = "texts list texts:{k} table=texts value=v";
    let mut s = ServerProc::granary(&[
        "--writebehind-sink",
        &pg.url(),
        "--writebehind-interval",
        "60000",
        "--writebehind-rule",
        TYPES,
        "--writebehind-rule",
        TEXTS,
    ]);
    let text = "tab\there\\back\nnew'quote\r\u{e9}";
    let raw: &[u8] = &[0, 9, 10, 92, 255];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut c = s.conn();
    flush(&mut c);
    // Pushed, then the server killed before any flush: the restart
    // replays them from the journal (the staged path).
    let _: () = c.rpush("texts:replayed", text).unwrap();
    drop(c);
    s.kill9_and_restart();
    let mut c = s.conn();
    let _: () = redis::cmd("HSET")
        .arg("t:1")
        .arg("s")
        .arg(text)
        .arg("i")
        .arg("-42")
        .arg("r")
        .arg("2.5")
        .arg("b")
        .arg("yes")
        .arg("ts")
        .arg("1700000000.5")
        .arg("raw")
        .arg(raw)
        .query(&mut c)
        .unwrap();
    flush(&mut c);
    let _: () = c.rpush("texts:fresh", text).unwrap();
    flush(&mut c);
    let text_hex = hex(text.as_bytes());
    assert_eq!(
        pg.rows(
            "SELECT encode(convert_to(s, 'UTF8'), 'hex'), i, r, b, \
             extract(epoch FROM ts)::text, encode(raw, 'hex') FROM types"
        ),
        strs(&[&[&text_hex, "-42", "2.5", "t", "1700000000.500000", &hex(raw)]])
    );
    assert_eq!(
        pg.rows("SELECT k, encode(convert_to(v, 'UTF8'), 'hex') FROM texts ORDER BY id"),
        strs(&[&["replayed", &text_hex], &["fresh", &text_hex]])
    );
}

/// A row id already in the table (written by something else) makes the
/// straight COPY of fresh rows fail; the chunk is written again through
/// the staging table, the flush succeeds, and only the taken id is
/// skipped.
#[test]
fn postgres_ids_taken_by_another_writer_do_not_fail_the_flush() {
    let mut pg = Postgres::start("taken");
    let s = granary(&pg.url(), "60000", &[]);
    let mut c = s.conn();
    let _: () = c.rpush("recommend:u1", "first").unwrap();
    flush(&mut c);
    let first: i64 = pg.rows("SELECT id FROM recommendations")[0][0]
        .parse()
        .unwrap();
    // The next pushes get ids first + 1 and first + 2.
    pg.rows(&format!(
        "INSERT INTO recommendations (id, user_id, item_id) VALUES ({}, 'other', 'foreign')",
        first + 1
    ));
    let _: () = c.rpush("recommend:u1", &["second", "third"]).unwrap();
    flush(&mut c);
    assert_eq!(
        pg.rows(&format!(
            "SELECT id - {first}, user_id, item_id FROM recommendations ORDER BY id"
        )),
        strs(&[
            &["0", "u1", "first"],
            &["1", "other", "foreign"],
            &["2", "u1", "third"]
        ])
    );
}

/// Two keys whose key columns the table holds as equal (character(n)
/// ignores trailing spaces) are upserted in one chunk: one row, no
/// "cannot affect row a second time".
#[test]
fn postgres_keys_equal_in_the_table_are_one_upsert() {
    let mut pg = Postgres::start("bpchar");
    pg.rows("CREATE TABLE names (id character(4) PRIMARY KEY, name text)");
    let s = granary(&pg.url(), "60000", &[]);
    let mut c = s.conn();
    let _: () = c.set("name:x", "first").unwrap();
    let _: () = c.set("name:x ", "second").unwrap();
    flush(&mut c);
    let rows = pg.rows("SELECT id, name FROM names");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].trim_end(), "x");
}

/// PostgreSQL stopped under load, then started: the backlog rises while it
/// is down and drains after; every row arrives once.
#[test]
fn postgres_outage_backlog_rises_and_drains() {
    let mut pg = Postgres::start("outage");
    let s = granary(&pg.url(), "20", &[]);
    let mut c = s.conn();
    let push = |c: &mut redis::Connection, from: usize, to: usize| {
        for i in from..to {
            let _: () = c.rpush(format!("recommend:o{}", i % 5), i).unwrap();
            let _: () = c.sadd(format!("o{}:readItemId", i % 5), i).unwrap();
        }
    };
    push(&mut c, 0, 200);
    flush(&mut c);
    pg.stop();
    push(&mut c, 200, 1200);
    wait_until(30, "a failed batch while PostgreSQL is down", || {
        stat(&mut c, "batches_failed") > 0
    });
    // The backlog shows: rows waiting (or being retried) and their age.
    let pending = stat(&mut c, "pending_rows");
    assert!(pending >= 1000, "pending_rows {pending}");
    let st = status(&mut c);
    assert!(!st["last_error"].is_empty(), "{st:?}");
    wait_until(30, "the oldest pending age to grow", || {
        stat(&mut c, "oldest_pending_age_ms") > 0
    });
    pg.run();
    wait_until(60, "the backlog to drain", || {
        stat(&mut c, "pending_rows") == 0
    });
    flush(&mut c);
    assert_eq!(
        pg.rows("SELECT count(*), count(DISTINCT item_id) FROM recommendations"),
        strs(&[&["1200", "1200"]])
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM read_items"),
        strs(&[&["1200"]])
    );
}

// ------------------------------------------------------------ kill -9

/// Acknowledged list rows survive kill -9 through the journal alone: with
/// no AOF and no RDB the keyspace comes back empty, yet every element
/// pushed while flushing was paused reaches the table, once.
#[test]
fn journal_keeps_acknowledged_rows_across_kill9() {
    let dir = tmpdir("journal");
    let file = dir.join("wb.db");
    let mut s = granary(&format!("sqlite:{}", file.display()), "60000", &[]);
    let mut c = s.conn();
    flush(&mut c);
    let _: String = redis::cmd("WRITEBEHIND")
        .arg("PAUSE")
        .query(&mut c)
        .unwrap();
    for i in 0..500 {
        let _: () = c.rpush(format!("recommend:j{}", i % 7), i).unwrap();
    }
    let _: () = c.set("name:1", "before-crash").unwrap();
    assert!(stat(&mut c, "pending_rows") >= 501);
    drop(c);
    s.kill9_and_restart();
    let mut c = s.conn();
    flush(&mut c);
    let mut db = Sqlite(file);
    assert_eq!(
        db.rows("SELECT count(*), count(DISTINCT item_id) FROM recommendations"),
        strs(&[&["500", "500"]])
    );
    // The string's key did not survive (no persistence): its pending mark
    // came back and the flush mirrors the keyspace, which has no row.
    assert_eq!(db.rows("SELECT count(*) FROM names"), strs(&[&["0"]]));
    // A second restart replays nothing: the committed batch's journal
    // segments are gone.
    drop(c);
    s.kill9_and_restart();
    let mut c = s.conn();
    flush(&mut c);
    assert_eq!(
        db.rows("SELECT count(*) FROM recommendations"),
        strs(&[&["500"]])
    );
}

/// A writer runs while the flusher commits every few milliseconds and the
/// server is killed with SIGKILL, three times, at moments of the test's
/// choosing. After each restart and a FLUSH: every acknowledged element
/// is in the table exactly once (never twice, even when a batch committed
/// just before the kill is replayed), and the set rows equal the sets the
/// server kept (AOF, everysec).
fn kill9_during_flushes(db: &mut dyn Db, sink: &str) {
    let mut s = granary(
        sink,
        "10",
        &[
            "--writebehind-batch-size",
            "300",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
    );
    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let mut next = 0usize;
    for round in 0..3 {
        let mut w = s.conn();
        let start = next;
        let writer = std::thread::spawn(move || {
            let mut done = vec![];
            for i in start.. {
                let user = format!("k{}", i % 13);
                let mut p = redis::pipe();
                p.rpush(format!("recommend:{user}"), i)
                    .ignore()
                    .sadd(format!("{user}:readItemId"), i)
                    .ignore();
                if p.query::<()>(&mut w).is_err() {
                    break; // the server died under us
                }
                done.push(i);
            }
            done
        });
        let mut c = s.conn();
        let flushed = stat(&mut c, "rows_flushed");
        // Kill once some batches committed while the writer runs.
        wait_until(60, "batches committed under the writer", || {
            stat(&mut c, "rows_flushed") >= flushed + 2000
        });
        drop(c);
        s.kill9_and_restart();
        let done = writer.join().unwrap();
        assert!(!done.is_empty(), "round {round}: the writer wrote nothing");
        // Past anything the dying writer may have sent without an answer
        // (run, maybe, but not acknowledged): each element is pushed once.
        next = done.last().unwrap() + 1_000;
        acked.extend(done);
        let mut c = s.conn();
        flush(&mut c);
        let rows = db.rows("SELECT item_id, count(*) FROM recommendations GROUP BY item_id");
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        for r in &rows {
            assert_eq!(r[1], "1", "round {round}: item {} inserted twice", r[0]);
            seen.insert(r[0].parse().unwrap());
        }
        let lost: Vec<&usize> = acked.difference(&seen).take(10).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged rows lost: {lost:?}"
        );
        // Set rows mirror the sets as the server has them after restart
        // (acknowledged adds are there: the AOF promises it for kill -9).
        let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
        for u in 0..13 {
            let members: Vec<String> = c.smembers(format!("k{u}:readItemId")).unwrap();
            kept.extend(members.into_iter().map(|m| (format!("k{u}"), m)));
        }
        let got: BTreeSet<(String, String)> = db
            .rows("SELECT user_id, item_id FROM read_items WHERE user_id LIKE 'k%'")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(got, kept, "round {round}");
        let kept_items: BTreeSet<usize> = kept.iter().map(|(_, i)| i.parse().unwrap()).collect();
        let lost: Vec<&usize> = acked.difference(&kept_items).take(10).collect();
        assert!(
            lost.is_empty(),
            "round {round}: the AOF lost acknowledged adds: {lost:?} (acked up to {next})"
        );
    }
}

#[test]
fn sqlite_kill9_during_flushes_loses_and_duplicates_nothing() {
    let dir = tmpdir("kill9");
    let file = dir.join("wb.db");
    kill9_during_flushes(
        &mut Sqlite(file.clone()),
        &format!("sqlite:{}", file.display()),
    );
}

#[test]
fn postgres_kill9_during_flushes_loses_and_duplicates_nothing() {
    let mut pg = Postgres::start("kill9");
    let url = pg.url();
    kill9_during_flushes(&mut pg, &url);
}

/// The server's threads: (name, the fields of /proc/<pid>/task/<tid>/stat
/// after the name, so field 3 of proc(5) is index 0).
fn threads(pid: u32) -> Vec<(String, Vec<String>)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap();
            let (head, rest) = stat.split_once(") ").unwrap();
            let name = head.split_once(" (").unwrap().1.to_string();
            (name, rest.split(' ').map(String::from).collect())
        })
        .collect()
}

/// CPU ticks (utime + stime, fields 14 and 15) used by the thread `name`.
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let (_, f) = threads(pid)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no thread named {name}"));
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A paused flusher sleeps: it once spun around its past due time,
/// taking a core from the commands.
#[test]
fn paused_flusher_does_not_spin() {
    let dir = tmpdir("paused");
    let s = granary(
        &format!("sqlite:{}", dir.join("wb.db").display()),
        "50",
        &[],
    );
    let mut c = s.conn();
    flush(&mut c);
    let _: String = redis::cmd("WRITEBEHIND")
        .arg("PAUSE")
        .query(&mut c)
        .unwrap();
    let before = thread_ticks(s.pid(), "writebehind");
    // Measuring CPU use over an interval: the wait is the measurement.
    std::thread::sleep(Duration::from_secs(1));
    let used = thread_ticks(s.pid(), "writebehind") - before;
    assert!(used < 20, "the paused flusher used {used} ticks in 1 s");
    // And it still flushes on demand, then resumes.
    let _: () = c.set("name:1", "x").unwrap();
    flush(&mut c);
    let _: String = redis::cmd("WRITEBEHIND")
        .arg("RESUME")
        .query(&mut c)
        .unwrap();
}

/// The flusher runs at nice 10, so under full load commands go first and
/// the backlog grows instead (read from /proc: the thread is named).
#[test]
fn flusher_thread_yields_to_commands() {
    let dir = tmpdir("nice");
    let s = granary(
        &format!("sqlite:{}", dir.join("wb.db").display()),
        "1000",
        &[],
    );
    let mut c = s.conn();
    flush(&mut c); // the flusher is up
                   // Field 19 of proc(5) is the nice value. The server inherits the test
                   // runner's (`nice cargo test` starts it at 10), so compare.
    let nices: BTreeMap<String, i64> = threads(s.pid())
        .into_iter()
        .map(|(name, f)| (name, f[16].parse().unwrap()))
        .collect();
    let base = nices["tokio-rt-worker"];
    assert_eq!(
        nices.get("writebehind"),
        Some(&(base + 10).min(19)),
        "{nices:?}"
    );
    assert!(base < 19, "run the test below nice 19: {nices:?}");
    // And it asks for 0.1 ms time slices (Linux 6.12+ shows them as
    // se.slice), so a worker sharing its core never waits out a long one.
    if let Some(slice) = sched_field(s.pid(), "writebehind", "se.slice") {
        assert_eq!(slice, 100_000);
        let worker = sched_field(s.pid(), "tokio-rt-worker", "se.slice").unwrap();
        assert!(worker > slice, "workers keep the default slice: {worker}");
    }
}

/// When every CPU is busy, the flusher leaves them to others (it waits
/// for a CPU, so it pauses between chunks: `paced_ms` grows) and still
/// writes every row without a FLUSH.
#[test]
fn busy_cpus_pace_the_flusher_without_stopping_it() {
    let dir = tmpdir("pace");
    let db = dir.join("wb.db");
    let s = granary(&format!("sqlite:{}", db.display()), "100", &[]);
    let mut c = s.conn();
    flush(&mut c);
    // Threads of this process at the workers' priority, one more than
    // there are CPUs, spinning until the rows are in.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hogs: Vec<_> = (0..=cpus)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut pipe = redis::pipe();
    for u in 0..1000 {
        pipe.rpush(format!("recommend:u{u}"), (0..100).collect::<Vec<_>>())
            .ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    wait_until(120, "every row flushed while the CPUs are busy", || {
        stat(&mut c, "appends") >= 100_000
    });
    let paced = stat(&mut c, "paced_ms");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    assert!(paced > 0, "the flusher never paused for the busy CPUs");
    assert_eq!(
        Sqlite(db).rows("SELECT count(*), count(DISTINCT id) FROM recommendations"),
        strs(&[&["100000", "100000"]])
    );
}

/// A numeric field of /proc/<pid>/task/<tid>/sched for the first thread
/// named `thread`, if the kernel shows it.
fn sched_field(pid: u32, thread: &str, field: &str) -> Option<u64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != thread {
            continue;
        }
        let sched = std::fs::read_to_string(dir.join("sched")).ok()?;
        return sched.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            (name.trim() == field).then(|| value.trim().parse().ok())?
        });
    }
    None
}
