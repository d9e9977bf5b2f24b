//! Write-behind stream rules end to end: every entry XADD adds becomes
//! exactly one row, in a real SQLite file and in a PostgreSQL server the
//! test starts itself (docs/writebehind.md, "Mappings by key type").

mod common;
mod wb_common;

use common::ServerProc;
use redis::Commands;
use std::collections::BTreeSet;
use wb_common::*;

/// Fields kept as typed columns.
const CLICKS: &str = "clicks stream clicks:{user_id} table=clicks fields=item:item_id:integer,at:clicked_at:timestamp,note";
/// The whole entry as a JSON object, in a renamed column.
const EVENTS: &str = "events stream events:{app} table=events value=doc entry-id=eid";
/// A hash rule whose pattern also matches the stream keys: streams must
/// not be mirrored (nor their rows deleted) through it.
const HASHES: &str = "h hash {a}:{b} table=hashes fields=x on-delete=delete";

/// Granary writing to `sink` with `rules`; flushes only on WRITEBEHIND
/// FLUSH unless `interval` is short.
fn granary(sink: &str, interval: &str, rules: &[&str], extra: &[&str]) -> ServerProc {
    let mut args = vec![
        "--writebehind-sink",
        sink,
        "--writebehind-interval",
        interval,
    ];
    for r in rules {
        args.push("--writebehind-rule");
        args.extend(r.split(' '));
    }
    args.extend_from_slice(extra);
    ServerProc::granary(&args)
}

fn wb(c: &mut redis::Connection, sub: &str) {
    let r: String = redis::cmd("WRITEBEHIND").arg(sub).query(c).unwrap();
    assert_eq!(r, "OK");
}

fn xadd(c: &mut redis::Connection, key: &str, id: &str, fields: &[&str]) -> String {
    redis::cmd("XADD")
        .arg(key)
        .arg(id)
        .arg(fields)
        .query(c)
        .unwrap()
}

fn row(cols: &[&str]) -> Vec<String> {
    cols.iter().map(|s| s.to_string()).collect()
}

/// The rows what the test adds must give, in the order added: key part,
/// entry ID, then the other columns rendered as text.
#[derive(Default)]
struct Expected {
    events: Vec<Vec<String>>,
    clicks: Vec<Vec<String>>,
}

impl Expected {
    fn event(&mut self, app: &str, eid: &str, doc: &str) {
        self.events.push(row(&[app, eid, doc]));
    }
}

/// The stream checks, run against SQLite and PostgreSQL alike. `epoch`
/// turns a timestamp column into whole Unix seconds as text in that
/// database's SQL.
fn check_streams(c: &mut redis::Connection, db: &mut dyn Db, epoch: &dyn Fn(&str) -> String) {
    // A first FLUSH waits out the start-up flush, which creates the tables.
    flush(c);
    let mut want = Expected::default();

    // Typed columns: an auto ID, explicit IDs (full, seq auto, ms only), a
    // value that is not an integer (NULL), a field missing (NULL), fields
    // not selected (not written), a field repeated (its last value).
    let auto = xadd(
        c,
        "clicks:42",
        "*",
        &["item", "7", "at", "1700000000", "note", "hi"],
    );
    want.clicks
        .push(row(&["42", &auto, "hi", "7", "1700000000"]));
    for (id, got, fields, item, note) in [
        ("1-1", "1-1", &["item", "1", "other", "x"][..], "1", "NULL"),
        ("1-*", "1-2", &["item", "2", "item", "3"][..], "3", "NULL"),
        ("5", "5-0", &["item", "x", "note", ""][..], "NULL", ""),
    ] {
        assert_eq!(xadd(c, "clicks:43", id, fields), got);
        want.clicks.push(row(&["43", got, note, item, "NULL"]));
    }

    // JSON: pairs in order, escapes, repeated fields kept.
    assert_eq!(
        xadd(c, "events:web", "1-1", &["user", "42", "action", "click"]),
        "1-1"
    );
    want.event("web", "1-1", r#"{"user":"42","action":"click"}"#);
    let id = xadd(
        c,
        "events:web",
        "*",
        &["q\"\\", "a\nb\tc\u{1}", "k", "1", "k", "2"],
    );
    want.event("web", &id, r#"{"q\"\\":"a\nb\tc\u0001","k":"1","k":"2"}"#);

    // Append-only: entries trimmed, deleted, or whose key is deleted or
    // expires before the flush are rows all the same.
    for i in 1..=3 {
        let id = format!("1-{i}");
        xadd(c, "events:trim", &id, &["n", &i.to_string()]);
        want.event("trim", &id, &format!(r#"{{"n":"{i}"}}"#));
    }
    let id: String = redis::cmd("XADD")
        .arg(&["events:trim", "MAXLEN", "1", "1-4", "n", "4"])
        .query(c)
        .unwrap();
    want.event("trim", &id, r#"{"n":"4"}"#);
    let n: i64 = redis::cmd("XTRIM")
        .arg(&["events:trim", "MAXLEN", "0"])
        .query(c)
        .unwrap();
    assert_eq!(n, 1);
    xadd(c, "events:xdel", "2-1", &["d", "1"]);
    want.event("xdel", "2-1", r#"{"d":"1"}"#);
    let n: i64 = c.xdel("events:xdel", &["2-1"]).unwrap();
    assert_eq!(n, 1);
    xadd(c, "events:gone", "3-1", &["g", "1"]);
    want.event("gone", "3-1", r#"{"g":"1"}"#);
    let n: i64 = c.del("events:gone").unwrap();
    assert_eq!(n, 1);
    xadd(c, "events:exp", "4-1", &["e", "1"]);
    want.event("exp", "4-1", r#"{"e":"1"}"#);
    let _: i64 = c.pexpire("events:exp", 1).unwrap();
    wait_until(30, "events:exp to expire", || {
        !c.exists::<_, bool>("events:exp").unwrap()
    });

    // MULTI/EXEC and scripts run the same XADD.
    let ids: Vec<String> = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(&["events:multi", "5-1", "m", "1"])
        .cmd("XADD")
        .arg(&["events:multi", "*", "m", "2"])
        .query(c)
        .unwrap();
    want.event("multi", &ids[0], r#"{"m":"1"}"#);
    want.event("multi", &ids[1], r#"{"m":"2"}"#);
    let ids: Vec<String> = redis::cmd("EVAL")
        .arg(
            "return {redis.call('XADD', KEYS[1], '6-1', 'l', '1'), \
             redis.call('XADD', KEYS[1], '*', 'l', '2')}",
        )
        .arg(1)
        .arg("events:lua")
        .query(c)
        .unwrap();
    want.event("lua", &ids[0], r#"{"l":"1"}"#);
    want.event("lua", &ids[1], r#"{"l":"2"}"#);

    // Nothing added, nothing written: a refused ID, NOMKSTREAM on a
    // missing key, a key no stream rule matches, a list under the pattern.
    let e = redis::cmd("XADD")
        .arg(&["events:web", "1-1", "a", "b"])
        .query::<String>(c)
        .unwrap_err();
    assert!(e.to_string().contains("equal or smaller"), "{e}");
    let none: Option<String> = redis::cmd("XADD")
        .arg(&["events:none", "NOMKSTREAM", "*", "a", "b"])
        .query(c)
        .unwrap();
    assert_eq!(none, None);
    xadd(c, "unmapped:1", "*", &["a", "b"]);
    let _: i64 = c.rpush("events:alist", "x").unwrap();

    flush(c);
    let events = db.rows("SELECT app, eid, doc FROM events ORDER BY id");
    assert_eq!(events, want.events);
    let ts = epoch("clicked_at");
    // (psql output loses a trailing empty column: the note is not last.)
    let clicks = db.rows(&format!(
        "SELECT user_id, entry_id, coalesce(note, 'NULL'), \
         coalesce(CAST(item_id AS TEXT), 'NULL'), coalesce({ts}, 'NULL') \
         FROM clicks ORDER BY id"
    ));
    assert_eq!(clicks, want.clicks);
    // The stream keys matched the hash rule's pattern too: no hash rows
    // were written or deleted for them.
    assert_eq!(db.rows("SELECT count(*) FROM hashes"), [row(&["0"])]);

    // A flush writes nothing twice, and a key created again after DEL
    // gives new rows even under an entry ID seen before.
    flush(c);
    xadd(c, "events:gone", "3-1", &["g", "again"]);
    want.event("gone", "3-1", r#"{"g":"again"}"#);
    flush(c);
    assert_eq!(
        db.rows("SELECT app, eid, doc FROM events ORDER BY id"),
        want.events
    );
    assert_eq!(stat(c, "pending_rows"), 0);
}

/// SQLite's and PostgreSQL's way to write a timestamp as Unix seconds.
fn sqlite_epoch(col: &str) -> String {
    format!("strftime('%s', {col})")
}

fn pg_epoch(col: &str) -> String {
    format!("CAST(CAST(extract(epoch FROM {col}) AS bigint) AS text)")
}

#[test]
fn sqlite_stream_entries_are_rows_once_each() {
    let dir = tmpdir("core");
    let file = dir.join("wb.db");
    let s = granary(
        &format!("sqlite:{}", file.display()),
        "60000",
        &[CLICKS, EVENTS, HASHES],
        &[],
    );
    let mut c = s.conn();
    check_streams(&mut c, &mut Sqlite(file.clone()), &sqlite_epoch);
    // The tables the rules created: integer id primary key, text columns.
    let mut db = Sqlite(file);
    assert_eq!(
        db.rows("SELECT name, type, pk FROM pragma_table_info('clicks') ORDER BY cid"),
        [
            row(&["id", "INTEGER", "1"]),
            row(&["user_id", "TEXT", "0"]),
            row(&["entry_id", "TEXT", "0"]),
            row(&["item_id", "INTEGER", "0"]),
            row(&["clicked_at", "TEXT", "0"]),
            row(&["note", "TEXT", "0"]),
        ]
    );
    assert_eq!(
        db.rows("SELECT clicked_at FROM clicks WHERE clicked_at IS NOT NULL"),
        [row(&["2023-11-14 22:13:20.000"])]
    );
    // The JSON reads back as JSON.
    assert_eq!(
        db.rows(
            "SELECT json_extract(doc, '$.action') FROM events WHERE app = 'web' AND eid = '1-1'"
        ),
        [row(&["click"])]
    );
}

#[test]
fn stream_rules_at_run_time_say_what_is_wrong() {
    let dir = tmpdir("rules");
    let file = dir.join("wb.db");
    let s = granary(&format!("sqlite:{}", file.display()), "60000", &[], &[]);
    let mut c = s.conn();
    let add = |c: &mut redis::Connection, words: &str| {
        redis::cmd("WRITEBEHIND")
            .arg("RULE")
            .arg("ADD")
            .arg(words.split(' ').collect::<Vec<_>>())
            .query::<String>(c)
    };
    for (words, err) in [
        ("s stream x:{a} table=t fields=a value=b", "not both"),
        (
            "s stream x:{a} table=t on-delete=delete",
            "stream rules append rows",
        ),
        ("s stream x:{a} table=t value=v:integer", "JSON"),
        (
            "s stream x:{a} table=t member=m",
            "does not apply to stream rules",
        ),
        ("s stream x:{a} table=t entry-id=a", "appears twice"),
    ] {
        let e = add(&mut c, words).unwrap_err().to_string();
        assert!(e.contains(err), "{words}: {e}");
    }
    assert_eq!(
        add(&mut c, "s stream x:{a} table=t on-delete=keep").unwrap(),
        "OK"
    );
    let id = xadd(&mut c, "x:1", "*", &["f", "v"]);
    flush(&mut c);
    assert_eq!(
        Sqlite(file).rows("SELECT a, entry_id, value FROM t"),
        [row(&["1", &id, r#"{"f":"v"}"#])]
    );
}

// ------------------------------------------------------------ kill -9

const KILLED: &str = "st stream s:{k} table=st fields=n:integer";

/// Every `n` in the table exactly once, and exactly `want`.
fn assert_once(db: &mut dyn Db, want: &BTreeSet<u64>, what: &str) {
    let rows = db.rows("SELECT n, count(*) FROM st GROUP BY n");
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert_eq!(r[1], "1", "{what}: entry {} inserted twice", r[0]);
        seen.insert(r[0].parse::<u64>().unwrap());
    }
    let lost: Vec<&u64> = want.difference(&seen).take(10).collect();
    assert!(
        lost.is_empty(),
        "{what}: acknowledged entries lost: {lost:?}"
    );
    let extra: Vec<&u64> = seen.difference(want).take(10).collect();
    assert!(extra.is_empty(), "{what}: entries never added: {extra:?}");
}

/// With flushing paused, entries are added (and trimmed, deleted, expired)
/// and the server is killed: the journal alone brings every acknowledged
/// entry back (no AOF: the keyspace comes back empty), and a second
/// restart replays nothing.
#[test]
fn journal_keeps_acknowledged_entries_across_kill9() {
    let dir = tmpdir("journal");
    let file = dir.join("wb.db");
    let mut s = granary(
        &format!("sqlite:{}", file.display()),
        "60000",
        &[KILLED],
        &[],
    );
    let mut c = s.conn();
    flush(&mut c);
    wb(&mut c, "PAUSE");
    let mut added = BTreeSet::new();
    for n in 0..600u64 {
        let key = format!("s:{}", n % 7);
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg(&["MAXLEN", "~", "20", "*", "n"])
            .arg(n)
            .query(&mut c)
            .unwrap();
        added.insert(n);
        if n % 100 == 99 {
            let _: i64 = c.del(&key).unwrap();
            let _: i64 = redis::cmd("XTRIM")
                .arg(format!("s:{}", (n + 1) % 7))
                .arg(&["MAXLEN", "0"])
                .query(&mut c)
                .unwrap();
        }
    }
    let _: i64 = c.pexpire("s:3", 1).unwrap();
    assert!(stat(&mut c, "pending_rows") >= 600);
    drop(c);
    s.kill9_and_restart();
    let mut c = s.conn();
    flush(&mut c);
    let mut db = Sqlite(file);
    assert_once(&mut db, &added, "after the restart");
    drop(c);
    s.kill9_and_restart();
    let mut c = s.conn();
    flush(&mut c);
    assert_once(&mut db, &added, "after a second restart");
}

/// A writer adds entries while the flusher commits every few milliseconds
/// and the server is killed mid-stream, twice: after each restart every
/// acknowledged entry is in the table exactly once, even when a batch
/// committed just before the kill is replayed from the journal.
fn kill9_during_flushes(db: &mut dyn Db, sink: &str) {
    let mut s = granary(sink, "10", &[KILLED], &["--writebehind-batch-size", "200"]);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut maybe: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..2 {
        let mut w = s.conn();
        let start = next;
        let writer = std::thread::spawn(move || {
            let mut done = vec![];
            for n in start.. {
                let r: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg(format!("s:{}", n % 11))
                    .arg(&["MAXLEN", "50", "*", "n"])
                    .arg(n)
                    .query(&mut w);
                if r.is_err() {
                    return (done, n); // the server died under us
                }
                done.push(n);
            }
            unreachable!()
        });
        let mut c = s.conn();
        let flushed = stat(&mut c, "rows_flushed");
        wait_until(60, "batches committed under the writer", || {
            stat(&mut c, "rows_flushed") >= flushed + 1000
        });
        drop(c);
        s.kill9_and_restart();
        let (done, unanswered) = writer.join().unwrap();
        assert!(!done.is_empty(), "round {round}: the writer wrote nothing");
        acked.extend(done);
        // Sent but not answered: it may have been added, or not.
        maybe.insert(unanswered);
        next = unanswered + 1;
        let mut c = s.conn();
        flush(&mut c);
        let rows = db.rows("SELECT n, count(*) FROM st GROUP BY n");
        let mut seen = BTreeSet::new();
        for r in &rows {
            assert_eq!(r[1], "1", "round {round}: entry {} inserted twice", r[0]);
            seen.insert(r[0].parse::<u64>().unwrap());
        }
        let lost: Vec<&u64> = acked.difference(&seen).take(10).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged entries lost: {lost:?}"
        );
        let extra: Vec<&u64> = seen
            .iter()
            .filter(|n| !acked.contains(n) && !maybe.contains(n))
            .take(10)
            .collect();
        assert!(
            extra.is_empty(),
            "round {round}: entries never added: {extra:?}"
        );
    }
}

#[test]
fn sqlite_kill9_during_flushes_loses_and_duplicates_no_entry() {
    let dir = tmpdir("kill9");
    let file = dir.join("wb.db");
    kill9_during_flushes(
        &mut Sqlite(file.clone()),
        &format!("sqlite:{}", file.display()),
    );
}

#[test]
fn postgres_stream_entries_are_rows_once_each() {
    let mut pg = Postgres::start("streams");
    let s = granary(&pg.url(), "60000", &[CLICKS, EVENTS, HASHES], &[]);
    let mut c = s.conn();
    check_streams(&mut c, &mut pg, &pg_epoch);
    assert_eq!(
        pg.rows(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = 'events' ORDER BY ordinal_position"
        ),
        [
            row(&["id", "bigint"]),
            row(&["app", "text"]),
            row(&["eid", "text"]),
            row(&["doc", "text"]),
        ]
    );
    assert_eq!(
        pg.rows("SELECT doc::jsonb ->> 'action' FROM events WHERE app = 'web' AND eid = '1-1'"),
        [row(&["click"])]
    );
}

#[test]
fn postgres_kill9_during_flushes_loses_and_duplicates_no_entry() {
    let mut pg = Postgres::start("kill9");
    let url = pg.url();
    kill9_during_flushes(&mut pg, &url);
}
