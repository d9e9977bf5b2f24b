//! COMMAND and its subcommands, generated from the command table, plus the
//! compatibility table in docs/commands.md (see `render_commands_doc`).
//!
//! docs/redis-commands.txt lists every Redis 7.4 command with its ACL
//! categories and key-spec flags as Redis reports them; COMMAND INFO and
//! GETKEYSANDFLAGS use those so their replies match Redis's. COMMAND DOCS and
//! COMMAND INFO's tips and key specs replay Redis's own (see docs_data.rs).

use super::server::reply_help;
use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::docs_data;
use crate::glob::glob_match;
use crate::table::{flag::*, lookup_sub, Keys, Spec, Table};
use crate::util::{is, lossy};
use bytes::Bytes;
use granary_protocol::Reply;
use std::collections::HashMap;
use std::sync::OnceLock;

mod keyspecs;

const G: &str = "server";
const FLAGS: u32 = LOADING | STALE;

/// COMMAND runs bare and has subcommands, like Redis's.
pub static COMMANDS: &[Spec] = &[Spec {
    subcommands: SUBCOMMANDS,
    ..Spec::new("command", -1, FLAGS, Keys::None, command)
        .group(G, "2.8.13")
        .doc("Returns detailed information about all commands.")
        .acl(CONN)
}];

const CONN: &[&str] = &["@slow", "@connection"];

static SUBCOMMANDS: &[Spec] = &[
    Spec::new("command|count", 2, FLAGS, Keys::None, count)
        .group(G, "2.8.13")
        .doc("Returns a count of commands.")
        .acl(CONN),
    Spec::new("command|docs", -2, FLAGS, Keys::None, docs)
        .group(G, "7.0.0")
        .doc("Returns documentary information about one, multiple or all commands.")
        .acl(CONN),
    Spec::new("command|getkeys", -4, FLAGS, Keys::None, getkeys)
        .group(G, "2.8.13")
        .doc("Extracts the key names from an arbitrary command.")
        .acl(CONN),
    Spec::new(
        "command|getkeysandflags",
        -4,
        FLAGS,
        Keys::None,
        getkeysandflags,
    )
    .group(G, "7.0.0")
    .doc("Extracts the key names and access flags for an arbitrary command.")
    .acl(CONN),
    Spec::new("command|help", 2, FLAGS, Keys::None, help)
        .group(G, "5.0.0")
        .doc("Returns helpful text about the different subcommands.")
        .acl(CONN),
    Spec::new("command|info", -2, FLAGS, Keys::None, info)
        .group(G, "2.8.13")
        .doc("Returns information about one, multiple or all commands.")
        .acl(CONN),
    Spec::new("command|list", -2, FLAGS, Keys::None, list)
        .group(G, "7.0.0")
        .doc("Returns a list of command names.")
        .acl(CONN),
];

/// One line of docs/redis-commands.txt.
pub struct RedisCommand {
    pub name: &'static str,
    pub group: &'static str,
    pub since: &'static str,
    pub acl: Vec<&'static str>,
    pub key_flags: Vec<&'static str>,
}

const REDIS_COMMANDS_TXT: &str = include_str!("../../../../docs/redis-commands.txt");

/// Every Redis 7.4 command and subcommand, in the file's (name) order.
pub fn redis_commands() -> &'static [RedisCommand] {
    static ALL: OnceLock<Vec<RedisCommand>> = OnceLock::new();
    ALL.get_or_init(|| {
        let list = |s: &'static str| -> Vec<&'static str> {
            if s == "-" {
                vec![]
            } else {
                s.split(',').collect()
            }
        };
        REDIS_COMMANDS_TXT
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some(RedisCommand {
                    name: w.next()?,
                    group: w.next()?,
                    since: w.next()?,
                    acl: list(w.next()?),
                    key_flags: list(w.next()?),
                })
            })
            .collect()
    })
}

fn redis_command(name: &str) -> Option<&'static RedisCommand> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static RedisCommand>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| redis_commands().iter().map(|c| (c.name, c)).collect())
        .get(name)
        .copied()
}

/// Redis's ACL category order (COMMAND INFO lists them in it).
const CATEGORY_ORDER: &[&str] = &[
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// The categories Redis derives from a command's flags and group, for
/// commands not in docs/redis-commands.txt and without explicit ones.
fn derived_categories(spec: &Spec) -> Vec<&'static str> {
    let mut cats = vec![];
    let f = spec.flags;
    let by_flag = [
        (WRITE, "@write"),
        (READONLY, "@read"),
        (ADMIN, "@admin"),
        (ADMIN, "@dangerous"),
        (PUBSUB, "@pubsub"),
        (FAST, "@fast"),
        (BLOCKING, "@blocking"),
    ];
    for (bit, cat) in by_flag {
        if f & bit != 0 {
            cats.push(cat);
        }
    }
    if f & FAST == 0 {
        cats.push("@slow");
    }
    let by_group = match spec.group {
        "generic" => "@keyspace",
        "string" => "@string",
        "list" => "@list",
        "hash" => "@hash",
        "set" => "@set",
        "sorted_set" => "@sortedset",
        "stream" => "@stream",
        "bitmap" => "@bitmap",
        "hyperloglog" => "@hyperloglog",
        "geo" => "@geo",
        "connection" => "@connection",
        "transactions" => "@transaction",
        "scripting" => "@scripting",
        "pubsub" => "@pubsub",
        _ => "",
    };
    if !by_group.is_empty() && !cats.contains(&by_group) {
        cats.push(by_group);
    }
    cats.sort_by_key(|c| CATEGORY_ORDER.iter().position(|o| o == c));
    cats
}

/// ACL categories: the Spec's own, else Redis's, else derived.
pub fn acl_categories(spec: &Spec) -> Vec<&'static str> {
    if !spec.acl.is_empty() {
        return spec.acl.to_vec();
    }
    match redis_command(spec.name) {
        Some(r) => r.acl.clone(),
        None => derived_categories(spec),
    }
}

/// Key-spec flags ("RO", "access", ...) of a command's keys.
fn key_flags(spec: &Spec) -> Vec<&'static str> {
    if let Some(r) = redis_command(spec.name).filter(|r| !r.key_flags.is_empty()) {
        return r.key_flags.clone();
    }
    if spec.is_write() {
        vec!["RW", "access", "update"]
    } else {
        vec!["RO", "access"]
    }
}

/// The legacy (first, last, step) triple and whether the keys are movable:
/// derived from Redis's key specs like Redis does, or from the Spec for a
/// command Redis has no data for.
fn legacy_keys(spec: &Spec) -> ((i64, i64, i64), bool) {
    match keyspecs::specs(spec.name) {
        Some(specs) => keyspecs::legacy_range(specs),
        None => (spec.legacy_range(), matches!(spec.keys, Keys::Custom(_))),
    }
}

/// Flags as COMMAND INFO shows them, `movablekeys` where Redis puts it
/// (just before `allow_busy`).
fn info_flags(spec: &Spec) -> Vec<&'static str> {
    let mut f = spec.flag_names();
    if legacy_keys(spec).1 {
        let at = f.iter().position(|n| *n == "allow_busy").unwrap_or(f.len());
        f.insert(at, "movablekeys");
    }
    f
}

fn status_set(out: &mut Reply, items: &[&str]) {
    out.set(items.len());
    for i in items {
        out.simple(i);
    }
}

/// Redis's key spec for a legacy (first, last, step) range.
fn write_key_specs(out: &mut Reply, spec: &Spec) {
    // Redis sends key specs and subcommands as sets in RESP3.
    let Keys::Range(first, last, step) = spec.keys else {
        out.set(0);
        return;
    };
    let lastkey = if last < 0 { last } else { last - first };
    out.set(1);
    out.map(3);
    out.bulk(b"flags");
    status_set(out, &key_flags(spec));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(first as i64);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"range");
    out.bulk(b"spec");
    out.map(3);
    for (k, v) in [("lastkey", lastkey), ("keystep", step), ("limit", 0)] {
        out.bulk(k.as_bytes());
        out.int(v as i64);
    }
}

/// One COMMAND INFO entry: name, arity, flags, first/last/step, ACL
/// categories, tips, key specs, subcommands.
pub fn write_info(out: &mut Reply, spec: &Spec) {
    let ((first, last, step), _) = legacy_keys(spec);
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(spec.arity as i64);
    status_set(out, &info_flags(spec));
    out.int(first);
    out.int(last);
    out.int(step);
    status_set(out, &acl_categories(spec));
    // Tips and key specs as Redis reports them, else derived from the Spec.
    let data = docs_data::get(spec.name);
    match data.and_then(|d| d.tips) {
        Some(tips) => docs_data::replay(out, tips),
        None => out.set(0),
    }
    match data.and_then(|d| d.key_specs) {
        Some(specs) => docs_data::replay(out, specs),
        None => write_key_specs(out, spec),
    }
    // An empty set, but an array of subcommands (Redis's
    // addReplyCommandSubCommands).
    if spec.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(spec.subcommands.len());
    }
    for sub in spec.subcommands {
        write_info(out, sub);
    }
}

/// One COMMAND DOCS entry (the value; the caller writes the name): Redis's
/// captured docs, with the subcommands Granary has.
fn write_docs(out: &mut Reply, spec: &Spec) {
    let has_subs = !spec.subcommands.is_empty();
    match docs_data::get(spec.name).filter(|d| d.doc_fields > 0) {
        Some(d) => {
            out.map(d.doc_fields + has_subs as usize);
            docs_data::replay(out, d.docs);
        }
        None => {
            out.map(3 + has_subs as usize);
            for (k, v) in [
                ("summary", spec.summary),
                ("since", spec.since),
                ("group", spec.group),
            ] {
                out.bulk(k.as_bytes());
                out.bulk(v.as_bytes());
            }
        }
    }
    if has_subs {
        out.bulk(b"subcommands");
        out.map(spec.subcommands.len());
        for sub in spec.subcommands {
            out.bulk(sub.name.as_bytes());
            write_docs(out, sub);
        }
    }
}

/// Looks a command up by name, "container|sub" names included.
fn find(name: &[u8]) -> Option<&'static Spec> {
    let table = Table::get();
    match name.iter().position(|&b| b == b'|') {
        None => table.lookup(name),
        Some(i) => lookup_sub(table.lookup(&name[..i])?, &name[i + 1..]),
    }
}

fn command(c: &mut Ctx) -> CmdResult {
    let specs: Vec<_> = Table::get().top_level().collect();
    c.out.array(specs.len());
    for s in specs {
        write_info(c.out, s);
    }
    Ok(())
}

fn count(c: &mut Ctx) -> CmdResult {
    c.out.int(Table::get().top_level().count() as i64);
    Ok(())
}

fn info(c: &mut Ctx) -> CmdResult {
    if c.args.len() == 2 {
        return command(c);
    }
    c.out.array(c.args.len() - 2);
    for name in &c.args[2..] {
        match find(name) {
            Some(s) => write_info(c.out, s),
            None => c.out.null(),
        }
    }
    Ok(())
}

fn docs(c: &mut Ctx) -> CmdResult {
    let specs: Vec<&'static Spec> = if c.args.len() == 2 {
        Table::get().top_level().collect()
    } else {
        c.args[2..].iter().filter_map(|n| find(n)).collect()
    };
    c.out.map(specs.len());
    for s in specs {
        c.out.bulk(s.name.as_bytes());
        write_docs(c.out, s);
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT cat | PATTERN pattern].
fn list(c: &mut Ctx) -> CmdResult {
    let all = Table::get().all();
    let names: Vec<&str> = match &c.args[2..] {
        [] => all.iter().map(|s| s.name).collect(),
        [by, kind, value] if is(by, "FILTERBY") => {
            if is(kind, "MODULE") {
                vec![]
            } else if is(kind, "ACLCAT") {
                let cat = format!("@{}", lossy(value).to_ascii_lowercase());
                all.iter()
                    .filter(|s| acl_categories(s).contains(&cat.as_str()))
                    .map(|s| s.name)
                    .collect()
            } else if is(kind, "PATTERN") {
                all.iter()
                    .filter(|s| glob_match(value, s.name.as_bytes(), true))
                    .map(|s| s.name)
                    .collect()
            } else {
                return Err(err::SYNTAX.into());
            }
        }
        _ => return Err(err::SYNTAX.into()),
    };
    c.out.array(names.len());
    for n in names {
        c.out.bulk(n.as_bytes());
    }
    Ok(())
}

/// The command named by `args` (a full command line).
fn command_of(args: &[Bytes]) -> Result<&'static Spec, CmdError> {
    let invalid = || CmdError::from("ERR Invalid command specified");
    let mut spec = Table::get().lookup(&args[0]).ok_or_else(invalid)?;
    if !spec.subcommands.is_empty() {
        let sub = args.get(1).ok_or_else(invalid)?;
        spec = lookup_sub(spec, sub).ok_or_else(invalid)?;
    }
    if !spec.arity_ok(args.len()) {
        return Err("ERR Invalid number of arguments specified for command".into());
    }
    Ok(spec)
}

/// The keys of a command line and each one's flags, as Redis's COMMAND
/// GETKEYS finds them: from Redis's key specs where they are known.
fn keys_of(args: &[Bytes]) -> Result<Vec<(usize, Vec<&'static str>)>, CmdError> {
    let spec = command_of(args)?;
    let no_keys = || CmdError::from("ERR The command has no key arguments");
    let Some(specs) = keyspecs::specs(spec.name) else {
        // No Redis data: the Spec's own positions.
        let keys = spec.key_positions(args);
        if keys.is_empty() {
            return Err(no_keys());
        }
        let flags = key_flags(spec);
        return Ok(keys.into_iter().map(|k| (k, flags.clone())).collect());
    };
    if specs.is_empty() {
        return Err(no_keys());
    }
    let found = keyspecs::find_keys(specs, args).unwrap_or_default();
    if found.is_empty() && spec.flags & NO_MANDATORY_KEYS == 0 {
        return Err("ERR Invalid arguments specified for command".into());
    }
    Ok(found
        .into_iter()
        .map(|(pos, ks)| (pos, key_spec_flags(ks, args)))
        .collect())
}

/// A key's flags. A spec with variable flags (SET's only) takes them from
/// the arguments as Redis's setGetKeys does: with GET it reads the key.
fn key_spec_flags(ks: &keyspecs::KeySpec, args: &[Bytes]) -> Vec<&'static str> {
    if ks.flags.iter().any(|f| f == "variable_flags") {
        let get = args.iter().skip(3).any(|a| is(a, "GET"));
        return if get {
            vec!["RW", "access", "update"]
        } else {
            vec!["OW", "update"]
        };
    }
    ks.flags.iter().filter_map(|f| static_flag(f)).collect()
}

/// Key-spec flag names as static strings (Redis's full set).
fn static_flag(f: &str) -> Option<&'static str> {
    const ALL: &[&str] = &[
        "RW",
        "RO",
        "OW",
        "RM",
        "access",
        "update",
        "insert",
        "delete",
        "not_key",
        "incomplete",
        "variable_flags",
    ];
    ALL.iter().copied().find(|n| *n == f)
}

fn getkeys(c: &mut Ctx) -> CmdResult {
    let args = &c.args[2..];
    let keys = keys_of(args)?;
    c.out.array(keys.len());
    for (k, _) in keys {
        c.out.bulk(&args[k]);
    }
    Ok(())
}

fn getkeysandflags(c: &mut Ctx) -> CmdResult {
    let args = &c.args[2..];
    let keys = keys_of(args)?;
    c.out.array(keys.len());
    for (k, flags) in keys {
        c.out.array(2);
        c.out.bulk(&args[k]);
        status_set(c.out, &flags);
    }
    Ok(())
}

fn help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    );
    Ok(())
}

// ---- docs/commands.md ----

/// Commands that exist but behave differently from Redis, and why.
const NOTES: &[(&str, &str, &str)] = &[
    (
        "script|debug",
        "partial",
        "`NO` only: the Lua debugger (LDB) is not implemented.",
    ),
    (
        "client|reply",
        "partial",
        "`ON` only; `OFF`/`SKIP` reply an error.",
    ),
    (
        "client|unblock",
        "partial",
        "Always 0: no blocking commands yet.",
    ),
    (
        "client|list",
        "supported",
        "`fd` is -1; buffer fields are approximate.",
    ),
    (
        "debug",
        "partial",
        "`OBJECT`, `SLEEP`, `RELOAD`, `POPULATE` and `HELP` only.",
    ),
    (
        "save",
        "supported",
        "Runs the same fork-less snapshot as BGSAVE and waits for it: other clients are served meanwhile.",
    ),
    (
        "bgsave",
        "supported",
        "Fork-less point-in-time snapshot (ARCHITECTURE.md, Persistence).",
    ),
    (
        "bgrewriteaof",
        "supported",
        "The new base is a fork-less snapshot; writes never wait for it.",
    ),
    (
        "slowlog|get",
        "partial",
        "Always empty: slow commands are not recorded yet.",
    ),
    (
        "slowlog|len",
        "partial",
        "Always 0: slow commands are not recorded yet.",
    ),
    (
        "config|set",
        "supported",
        "Parameters of features not yet implemented are stored but have no effect.",
    ),
    (
        "command|getkeysandflags",
        "supported",
        "Every key gets the flags of the command's first key spec.",
    ),
    (
        "info",
        "supported",
        "Fields of features not yet implemented report idle values.",
    ),
];

/// The markdown compatibility table: every Redis 7.4 command, whether
/// Granary has it, and notes.
pub fn render_commands_doc() -> String {
    let mut out = String::from(
        "# Command compatibility\n\n\
         Every Redis 7.4 command and subcommand and its status in Granary.\n\
         Generated from the command table and `docs/redis-commands.txt` by\n\
         `UPDATE_DOCS=1 cargo test -p granary-commands --test commands_doc`; do not edit by hand.\n\n\
         Status: **supported** (Redis's replies and errors), **partial** (see notes),\n\
         **stub** (registered, replies an error), **not yet**.\n\n",
    );
    let rows = redis_commands();
    let supported = rows
        .iter()
        .filter(|r| find(r.name.as_bytes()).is_some())
        .count();
    out.push_str(&format!(
        "{supported} of {} commands and subcommands are available.\n\n",
        rows.len()
    ));
    out.push_str("| Command | Group | Since | Status | Notes |\n|---|---|---|---|---|\n");
    for r in rows {
        let display = r.name.replace('|', " ").to_uppercase();
        let (status, note) = match NOTES.iter().find(|(n, _, _)| *n == r.name) {
            Some((_, s, note)) => (*s, *note),
            None if find(r.name.as_bytes()).is_some() => ("supported", ""),
            None => ("not yet", ""),
        };
        out.push_str(&format!(
            "| {display} | {} | {} | {status} | {note} |\n",
            r.group, r.since
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Granary's own commands (and their subcommands), not in Redis.
    fn granary_only(name: &str) -> bool {
        let top = name.split('|').next().unwrap_or(name);
        ["writebehind"].contains(&top)
    }

    #[test]
    fn every_granary_command_is_a_redis_command() {
        for s in Table::get().all().iter().filter(|s| !granary_only(s.name)) {
            assert!(
                redis_command(s.name).is_some(),
                "{} is not in Redis",
                s.name
            );
        }
    }

    #[test]
    fn every_granary_command_has_redis_docs() {
        for s in Table::get().all().iter().filter(|s| !granary_only(s.name)) {
            let d = docs_data::get(s.name);
            assert!(
                d.is_some_and(|d| d.doc_fields > 0 && d.tips.is_some() && d.key_specs.is_some()),
                "{} has no captured docs",
                s.name
            );
        }
    }

    #[test]
    fn derived_categories_follow_redis_rules() {
        let get = Spec::new("x", 2, READONLY | FAST, Keys::Range(1, 1, 1), |_| Ok(()))
            .group("string", "1.0.0");
        assert_eq!(derived_categories(&get), vec!["@read", "@string", "@fast"]);
        let kill = Spec::new("y", -3, ADMIN | NOSCRIPT, Keys::None, |_| Ok(()))
            .group("connection", "1.0.0");
        assert_eq!(
            derived_categories(&kill),
            vec!["@admin", "@slow", "@dangerous", "@connection"]
        );
    }

    #[test]
    fn getkeys_errors_like_redis() {
        let a =
            |v: &[&str]| -> Vec<Bytes> { v.iter().map(|s| Bytes::from(s.to_string())).collect() };
        let e = |v: &[&str]| keys_of(&a(v)).err().map(|e| e.text());
        assert_eq!(
            e(&["nosuch", "x"]).as_deref(),
            Some("ERR Invalid command specified")
        );
        assert_eq!(
            e(&["config", "get", "x"]).as_deref(),
            Some("ERR The command has no key arguments")
        );
        assert!(redis_commands().len() > 370);
    }
}
