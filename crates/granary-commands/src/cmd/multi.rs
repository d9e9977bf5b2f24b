//! Transactions (multi.c): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI only marks the client; the dispatcher then queues every command
//! but the few in [`runs_immediately`] (see [`intercept`]). EXEC locks every
//! shard once and runs the whole queue under that lock, so no other client
//! sees or writes anything in between, on any core. WATCH state lives in
//! `crate::watch`.
//!
//! Blocking commands (BLPOP & co.) must not block inside EXEC: Redis runs
//! them as if their timeout had expired. They will check `Client::in_exec`
//! and reply as on timeout instead of parking the connection.

use crate::client::{Client, Multi, Queued};
use crate::ctx::{CmdResult, Ctx};
use crate::dispatch::{reply_error, run};
use crate::server::Server;
use crate::table::{flag::*, Keys, Spec};
use crate::watch::{unwatch_all, watch_key};
use bytes::Bytes;
use granary_keyspace::{hash_bytes, Locked};
use granary_protocol::Reply;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "transactions";
const FLAGS: u32 = NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY;
const ACL_FAST: &[&str] = &["@fast", "@transaction"];

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

pub static COMMANDS: &[Spec] = &[
    Spec::new("multi", 1, FLAGS, Keys::None, multi)
        .group(G, "1.2.0")
        .acl(ACL_FAST)
        .doc("Starts a transaction."),
    Spec::new(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        Keys::None,
        exec,
    )
    .group(G, "1.2.0")
    .acl(&["@slow", "@transaction"])
    .doc("Executes all commands in a transaction."),
    Spec::new("discard", 1, FLAGS, Keys::None, discard)
        .group(G, "2.0.0")
        .acl(ACL_FAST)
        .doc("Discards a transaction."),
    // The keys are declared so the dispatcher locks their shards: WATCH
    // must see whether each key is live atomically with registering.
    Spec::new("watch", -2, FLAGS, Keys::Range(1, -1, 1), watch)
        .group(G, "2.2.0")
        .acl(ACL_FAST)
        .doc("Monitors changes to keys to determine the execution of a transaction."),
    Spec::new("unwatch", 1, FLAGS, Keys::None, unwatch)
        .group(G, "2.2.0")
        .acl(ACL_FAST)
        .doc("Forgets about watched keys of a transaction."),
];

/// Commands that act at once even inside MULTI (Redis's processCommand list).
fn runs_immediately(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Redis's extra maxmemory rule for transactions: inside MULTI, queueing
/// anything but EXEC/DISCARD/QUIT/RESET is refused when out of memory, and
/// EXEC is refused if it would run a DENYOOM command.
pub fn rejected_on_oom(client: &Client, spec: &Spec) -> bool {
    let Some(m) = &client.multi else { return false };
    match spec.name {
        "exec" => m.flags & DENYOOM != 0,
        "discard" | "quit" | "reset" => false,
        _ => true,
    }
}

/// Called by the dispatcher, for a client in MULTI or watching keys, after
/// the command passed lookup, arity, auth and memory checks. Returns true if
/// the command was consumed here (queued or refused); false to run it.
pub fn intercept(
    server: &Server,
    client: &mut Client,
    spec: &'static Spec,
    idx: usize,
    args: &[Bytes],
    out: &mut Reply,
) -> bool {
    if spec.name == "reset" {
        // RESET discards the transaction and the watches, then runs.
        discard_transaction(server, client);
        return false;
    }
    let Some(m) = &mut client.multi else {
        return false;
    };
    if runs_immediately(spec) {
        return false;
    }
    if spec.flags & NO_MULTI != 0 {
        m.failed = true;
        server.command_stats[idx].rejected.fetch_add(1, Relaxed);
        reply_error(server, out, b"ERR Command not allowed inside a transaction");
        return true;
    }
    m.flags |= spec.flags;
    m.queue.push(Queued {
        spec,
        idx,
        args: args.to_vec(),
    });
    client.info.multi.store(m.queue.len() as i64, Relaxed);
    out.simple("QUEUED");
    true
}

/// Leaves MULTI (if in it) and drops every watch.
fn discard_transaction(server: &Server, client: &mut Client) {
    client.multi = None;
    client.info.multi.store(-1, Relaxed);
    unwatch_all(server, client);
}

fn multi(c: &mut Ctx) -> CmdResult {
    if c.client.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    c.client.multi = Some(Multi::default());
    c.client.info.multi.store(0, Relaxed);
    c.out.ok();
    Ok(())
}

fn discard(c: &mut Ctx) -> CmdResult {
    if c.client.multi.is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    discard_transaction(c.server, c.client);
    c.out.ok();
    Ok(())
}

fn exec(c: &mut Ctx) -> CmdResult {
    let Some(m) = c.client.multi.take() else {
        return Err("ERR EXEC without MULTI".into());
    };
    c.client.info.multi.store(-1, Relaxed);
    let server = c.server;
    if m.failed {
        unwatch_all(server, c.client);
        return Err(EXECABORT.into());
    }
    // Every shard, taken before the watch check: nothing can change between
    // the check and the last queued command.
    let mut all = server.keyspace.lock_all();
    let now = c.store.now;
    let intact = watches_hold(c.client, &mut all, now);
    unwatch_all(server, c.client);
    if !intact {
        c.out.null_array();
        return Ok(());
    }
    c.out.array(m.queue.len());
    c.client.in_exec = true;
    let mut action = None;
    for q in &m.queue {
        c.client.info.last_cmd.store(q.idx, Relaxed);
        let a = run(
            server,
            c.client,
            q.spec,
            q.idx,
            &q.args,
            c.out,
            now,
            Some(&mut all),
        );
        // Close, Shutdown or Sleep from a queued command: keep the last.
        if a.is_some() {
            action = a;
        }
    }
    c.client.in_exec = false;
    c.action = action;
    Ok(())
}

/// True unless a watched key changed since WATCH: a write flagged the
/// client, or a key that was live then has expired since (Redis 7 fails the
/// transaction for that too, even if nothing deleted the key yet).
fn watches_hold(client: &Client, all: &mut Locked, now: u64) -> bool {
    if client.info.dirty_cas.load(Relaxed) {
        return false;
    }
    client.watched.iter().filter(|w| w.existed).all(|w| {
        let h = hash_bytes(&w.key);
        all.shard(h).db(w.db).peek(h, &w.key, now).is_some()
    })
}

fn watch(c: &mut Ctx) -> CmdResult {
    if c.client.multi.is_some() {
        return Err("ERR WATCH inside MULTI is not allowed".into());
    }
    // No point watching more once a watched key changed: EXEC will fail.
    if !c.client.info.dirty_cas.load(Relaxed) {
        let db = c.client.db;
        for key in &c.args[1..] {
            let existed = c.store.is_live(db, key);
            watch_key(c.server, c.client, key, existed);
        }
    }
    c.out.ok();
    Ok(())
}

fn unwatch(c: &mut Ctx) -> CmdResult {
    unwatch_all(c.server, c.client);
    c.out.ok();
    Ok(())
}
