//! Persistence commands (Redis's rdb.c): SAVE and BGSAVE. Both run on the
//! saver thread (`crate::rdb`) as point-in-time snapshots that never stop
//! other clients; SAVE just waits for its snapshot to be on disk.

use crate::ctx::{err, CmdResult, Ctx};
use crate::rdb::BgsaveError;
use crate::table::{flag::*, Keys, Spec};
use crate::util::is;

const G: &str = "server";

pub static COMMANDS: &[Spec] = &[
    Spec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, Keys::None, save)
        .group(G, "1.0.0")
        .doc("Synchronously saves the database(s) to disk.")
        .acl(&["@admin", "@slow", "@dangerous"]),
    Spec::new("bgsave", -1, ADMIN | NOSCRIPT, Keys::None, bgsave)
        .group(G, "1.0.0")
        .doc("Asynchronously saves the database(s) to disk.")
        .acl(&["@admin", "@slow", "@dangerous"]),
];

fn save(c: &mut Ctx) -> CmdResult {
    if c.server
        .rdb
        .in_progress
        .load(std::sync::atomic::Ordering::Relaxed)
    {
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
    match c.args.len() {
        1 => {}
        2 if is(&c.args[1], "SCHEDULE") => {}
        _ => return Err(err::SYNTAX.into()),
    }
    match c.server.rdb.request() {
        Err(BgsaveError::InProgress) => Err("ERR Background save already in progress".into()),
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
