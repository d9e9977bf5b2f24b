//! From an argument vector to a reply: look the command up, check arity and
//! authentication, lock the shards of its keys, run the handler, account.

use crate::client::Client;
use crate::cmd::multi;
use crate::ctx::{Action, CmdError, Ctx, ShardAccess, Store};
use crate::server::Server;
use crate::table::{flag, lookup_sub, Keys, Spec, Table};
use crate::util::cstr;
use bytes::Bytes;
use granary_protocol::Reply;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;

/// Resolves `args` to a command spec (descending into subcommands), or the
/// error Redis gives for an unknown command or subcommand, or wrong arity.
pub fn resolve(args: &[Bytes]) -> Result<&'static Spec, CmdError> {
    resolve_indexed(args).map(|(s, _)| s)
}

/// Like `resolve`, with the command's index into the stats.
pub fn resolve_indexed(args: &[Bytes]) -> Result<(&'static Spec, usize), CmdError> {
    let table = Table::get();
    let Some((spec, idx)) = table.lookup_indexed(&args[0]) else {
        // Redis quotes with "%.128s": bytes as sent, cut at NUL and 128 bytes.
        let mut rest = Vec::new();
        for a in &args[1..] {
            if rest.len() >= 128 {
                break;
            }
            let room = 128 - rest.len();
            rest.extend_from_slice(b"'");
            rest.extend_from_slice(cstr(a, room));
            rest.extend_from_slice(b"' ");
        }
        return Err(CmdError::concat(&[
            b"ERR unknown command '",
            cstr(&args[0], 128),
            b"', with args beginning with: ",
            &rest,
        ]));
    };
    if spec.subcommands.is_empty() {
        return check_arity(spec, args.len()).map(|s| (s, idx));
    }
    if args.len() < 2 {
        // A container with its own handler (COMMAND) runs bare.
        if spec.handler.is_some() {
            return check_arity(spec, args.len()).map(|s| (s, idx));
        }
        return Err(format!("ERR wrong number of arguments for '{}' command", spec.name).into());
    }
    match lookup_sub(spec, &args[1]) {
        Some(sub) => check_arity(sub, args.len()).map(|s| (s, table.index_of(s))),
        None => {
            let help = format!("'. Try {} HELP.", spec.name.to_uppercase());
            Err(CmdError::concat(&[
                b"ERR unknown subcommand '",
                cstr(&args[1], 128),
                help.as_bytes(),
            ]))
        }
    }
}

fn check_arity(spec: &'static Spec, argc: usize) -> Result<&'static Spec, CmdError> {
    if spec.arity_ok(argc) {
        Ok(spec)
    } else {
        Err(format!("ERR wrong number of arguments for '{}' command", spec.name).into())
    }
}

/// Runs one command, writing its reply to `out`.
pub fn execute(
    server: &Server,
    client: &mut Client,
    args: &[Bytes],
    out: &mut Reply,
) -> Option<Action> {
    execute_at(server, client, args, out, granary_keyspace::now_ms())
}

/// Runs one command as of `now` (ms since the epoch). A connection running a
/// pipeline reads the clock once per batch, not once per command.
pub fn execute_at(
    server: &Server,
    client: &mut Client,
    args: &[Bytes],
    out: &mut Reply,
    now: u64,
) -> Option<Action> {
    let (spec, idx) = match resolve_indexed(args) {
        Ok(x) => x,
        Err(e) => {
            if let Some((_, idx)) = Table::get().lookup_indexed(&args[0]) {
                server.command_stats[idx].rejected.fetch_add(1, Relaxed);
            }
            return reject(server, client, out, &e.0);
        }
    };
    if !client.authenticated
        && spec.flags & flag::NO_AUTH == 0
        && server.config.hot.has_password.load(Relaxed)
    {
        server.command_stats[idx].rejected.fetch_add(1, Relaxed);
        return reject(server, client, out, crate::ctx::err::NOAUTH.as_bytes());
    }
    // While a script runs (holding every shard), wait for it or get BUSY,
    // before taking any lock.
    if server.scripting.busy.active() {
        if let Err(e) = crate::cmd::scripting::busy::gate(server, spec, args) {
            server.command_stats[idx].rejected.fetch_add(1, Relaxed);
            return reject(server, client, out, e.as_bytes());
        }
    }
    if server.config.hot.maxmemory.load(Relaxed) != 0 {
        if let Err(e) = crate::evict::ensure_memory(server) {
            if spec.flags & flag::DENYOOM != 0 || multi::rejected_on_oom(client, spec) {
                server.command_stats[idx].rejected.fetch_add(1, Relaxed);
                return reject(server, client, out, &e.0);
            }
        }
    }
    if crate::cmd::writebehind::refuses(server, spec, args, client.db) {
        server.command_stats[idx].rejected.fetch_add(1, Relaxed);
        let msg = crate::cmd::writebehind::BACKLOG_FULL.as_bytes();
        return reject(server, client, out, msg);
    }
    // The last save failed: refuse writes (and PING) until one succeeds,
    // so nobody writes data that cannot be persisted (Redis's MISCONF).
    if !server.rdb.last_ok.load(Relaxed)
        && (spec.flags & flag::WRITE != 0 || spec.name == "ping")
        && crate::rdb::writes_refused(server)
    {
        server.command_stats[idx].rejected.fetch_add(1, Relaxed);
        return reject(server, client, out, crate::ctx::err::MISCONF.as_bytes());
    }
    if client.in_subscribed_mode() && !crate::cmd::pubsub::allowed_when_subscribed(spec) {
        server.command_stats[idx].rejected.fetch_add(1, Relaxed);
        let msg = crate::cmd::pubsub::subscribed_mode_error(spec);
        return reject(server, client, out, msg.as_bytes());
    }
    client.info.last_cmd.store(idx, Relaxed);
    // Transaction state is rare: one test of two fields otherwise.
    if (client.multi.is_some() || !client.watched.is_empty())
        && multi::intercept(server, client, spec, idx, args, out)
    {
        return None;
    }
    run(server, client, spec, idx, args, out, now, None)
}

/// A command rejected before running: inside MULTI this also dooms the
/// transaction (EXECABORT), as Redis's rejectCommand does.
fn reject(server: &Server, client: &mut Client, out: &mut Reply, msg: &[u8]) -> Option<Action> {
    if let Some(m) = &mut client.multi {
        m.failed = true;
    }
    reply_error(server, out, msg);
    None
}

/// A store over the shards of the command's declared keys, locked.
fn lock_for<'s>(server: &'s Server, spec: &Spec, args: &[Bytes], db: usize, now: u64) -> Store<'s> {
    if spec.flags & flag::ALL_SHARDS != 0 {
        Store::new(server, Some(server.keyspace.lock_all()), db, now)
    } else if matches!(spec.keys, Keys::Range(1, 1, _)) && args.len() > 1 {
        // The common single-key case: hash once, for the lock and the lookup.
        let h = granary_keyspace::hash_bytes(&args[1]);
        let mut store = Store::new(server, Some(server.keyspace.lock_one(h)), db, now);
        store.hint_hash(&args[1], h);
        store
    } else {
        let pos = spec.key_positions(args);
        let locked = if pos.is_empty() {
            None
        } else {
            Some(server.keyspace.lock_keys(pos.iter().map(|&i| &args[i][..])))
        };
        Store::new(server, locked, db, now)
    }
}

/// Runs a resolved command: it locks the shards of its keys, or, with
/// `held`, runs under shards the caller already holds (EXEC runs its whole
/// queue under one `lock_all`, which makes it atomic).
#[allow(clippy::too_many_arguments)]
pub fn run(
    server: &Server,
    client: &mut Client,
    spec: &'static Spec,
    idx: usize,
    args: &[Bytes],
    out: &mut Reply,
    now: u64,
    held: Option<&mut dyn ShardAccess>,
) -> Option<Action> {
    let handler = spec.handler?;
    let nested = held.is_some();
    // TSC-based: a clock_gettime per command showed up in profiles.
    let started = quanta::Instant::now();
    let mut store = match held {
        Some(h) => Store::held(server, h, client.db, now),
        None => lock_for(server, spec, args, client.db, now),
    };
    store.no_touch = client.no_touch && spec.name != "touch";
    store.writes = spec.flags & flag::READONLY == 0;
    let mark = out.mark();
    let mut ctx = Ctx {
        server,
        client,
        args,
        out,
        spec,
        store,
        action: None,
    };
    // NOLOOP needs to know who writes; nobody asks when nobody tracks.
    let id = ctx.client.id();
    let current = crate::tracking::active(server).then(|| crate::tracking::enter(id));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let r = handler(&mut ctx);
        (r, ctx.action.take())
    }));
    drop(current);
    if ctx.client.tracking != 0 {
        // Under the command's locks, so no write slips in between the
        // read and its recording.
        let ok = matches!(result, Ok((Ok(()), _)));
        crate::tracking::after_command(server, ctx.client, spec, args, ok);
    }
    // Logged while the shards are still held, so the AOF has the order
    // in which commands changed each key.
    if server.aof.on.load(Relaxed) {
        if ctx.store.changes > 0 {
            let effect = crate::aof::effect(&mut ctx);
            let db = ctx.store.db;
            crate::aof::propagate(server, ctx.client, db, effect, nested);
        }
        if !nested && !ctx.client.propagated.is_empty() {
            crate::aof::flush_batch(server, ctx.client);
        }
    }
    // Release the shards before accounting.
    drop(ctx);
    let stat = &server.command_stats[idx];
    stat.calls.fetch_add(1, Relaxed);
    server.stats.commands_processed.fetch_add(1, Relaxed);
    let action = match result {
        Ok((Ok(()), action)) => action,
        Ok((Err(e), action)) => {
            out.truncate(mark);
            stat.failed.fetch_add(1, Relaxed);
            reply_error(server, out, &e.0);
            action
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(command = spec.name, "command panicked: {what}");
            out.truncate(mark);
            stat.failed.fetch_add(1, Relaxed);
            reply_error(
                server,
                out,
                format!("ERR internal error executing '{}'", spec.name).as_bytes(),
            );
            None
        }
    };
    stat.usec
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    action
}

pub(crate) fn reply_error(server: &Server, out: &mut Reply, msg: &[u8]) {
    server.record_error(msg);
    out.error(msg);
}
