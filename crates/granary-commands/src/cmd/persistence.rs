//! Persistence commands (Redis's rdb.c and aof.c): SAVE, BGSAVE and
//! BGREWRITEAOF. All run on the saver thread (`crate::rdb`) as
//! point-in-time snapshots that never stop other clients; SAVE just waits
//! for its snapshot to be on disk.

use crate::ctx::{err, CmdResult, Ctx};
use crate::rdb::BgsaveError;
use crate::table::{flag::*, Keys, Spec};
use crate::util::is;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "server";

pub static COMMANDS: &[Spec] = &[
    Spec::new(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        Keys::None,
        save,
    )
    .group(G, "1.0.0")
    .doc("Synchronously saves the database(s) to disk.")
    .acl(&["@admin", "@slow", "@dangerous"]),
    Spec::new(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        Keys::None,
        bgsave,
    )
    .group(G, "1.0.0")
    .doc("Asynchronously saves the database(s) to disk.")
    .acl(&["@admin", "@slow", "@dangerous"]),
    Spec::new(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        Keys::None,
        bgrewriteaof,
    )
    .group(G, "1.0.0")
    .doc("Asynchronously rewrites the append-only file to disk.")
    .acl(&["@admin", "@slow", "@dangerous"]),
];

fn bgrewriteaof(c: &mut Ctx) -> CmdResult {
    let rdb = &c.server.rdb;
    if rdb.aof_rewriting.load(Relaxed) {
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    let saving = rdb.in_progress.load(Relaxed);
    rdb.request_aof_rewrite();
    c.out.simple(if saving || c.client.in_exec {
        "Background append only file rewriting scheduled"
    } else {
        "Background append only file rewriting started"
    });
    Ok(())
}

fn save(c: &mut Ctx) -> CmdResult {
    if c.server.rdb.in_progress.load(Relaxed) {
        return Err("ERR Background save already in progress".into());
    }
    match c.server.rdb.save_and_wait() {
        Ok(_) => {
            c.out.ok();
            Ok(())
        }
        Err(_) => Err("ERR".into()),
    }
}

fn bgsave(c: &mut Ctx) -> CmdResult {
    let schedule = match c.args.len() {
        1 => false,
        2 if is(&c.args[1], "SCHEDULE") => true,
        _ => return Err(err::SYNTAX.into()),
    };
    match c.server.rdb.request(schedule) {
        Err(BgsaveError::InProgress) => Err("ERR Background save already in progress".into()),
        Err(BgsaveError::RewriteRunning) => Err("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.".into()),
        Ok(()) if schedule && c.server.rdb.aof_rewriting.load(Relaxed) => {
            c.out.simple("Background saving scheduled");
            Ok(())
        }
        // Inside EXEC the saver waits for the transaction's shards, so the
        // snapshot is taken right after it, as Redis schedules it.
        Ok(()) if c.client.in_exec => {
            c.out.simple("Background saving scheduled");
            Ok(())
        }
        Ok(()) => {
            c.out.simple("Background saving started");
            Ok(())
        }
    }
}
