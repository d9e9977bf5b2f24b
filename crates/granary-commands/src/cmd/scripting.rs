//! Lua scripting (eval.c, script_lua.c, functions.c, function_lua.c):
//! EVAL/EVALSHA and their _RO forms, SCRIPT, FUNCTION and FCALL.
//!
//! One Lua state per server, behind a mutex ([`State`]). Scripts and
//! functions run under every shard's lock (flag ALL_SHARDS), so any key a
//! script touches, declared or not, is atomic; `redis.call` re-enters the
//! dispatcher under those locks as a client of its own. While a script runs,
//! other clients wait in the dispatcher ([`busy::gate`]), and get BUSY once
//! it has run for busy-reply-threshold milliseconds.

pub mod busy;
pub mod eval;
pub mod function;
pub mod lua;
pub mod lualibs;
pub mod resp;

use crate::ctx::{CmdError, CmdResult, Ctx};
use crate::table::{flag::*, Keys, Spec};
use bytes::Bytes;
use lua::{Engine, Run};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const G: &str = "scripting";

/// A cached EVAL script.
pub struct Script {
    pub body: Bytes,
    pub func: mlua::Function,
    /// `#!lua flags=no-writes`: runs read-only.
    pub no_writes: bool,
    /// Loaded by EVAL (evictable) rather than SCRIPT LOAD, and when: Redis
    /// 7.4 keeps at most [`EVAL_SCRIPTS_MAX`] EVAL scripts, dropping the
    /// least recently used, so generated scripts cannot grow memory forever.
    pub eval_seq: Option<u64>,
}

pub const EVAL_SCRIPTS_MAX: usize = 500;

/// Everything that lives in the Lua state.
pub struct State {
    pub engine: Engine,
    /// EVAL scripts by lowercase SHA1.
    pub scripts: HashMap<String, Script>,
    /// Counter ordering EVAL scripts by last use.
    pub eval_clock: u64,
    pub libraries: BTreeMap<String, function::Library>,
    pub functions: HashMap<String, function::Func>,
}

pub struct Scripting {
    pub state: Mutex<State>,
    pub busy: busy::Busy,
    /// Counts FUNCTION STATS reads without the Lua mutex (held by a
    /// running script).
    pub library_count: AtomicUsize,
    pub function_count: AtomicUsize,
}

impl Scripting {
    pub fn new() -> Self {
        let busy = busy::Busy::default();
        let engine = Engine::new(busy.kill.clone()).expect("create the Lua state");
        Scripting {
            state: Mutex::new(State {
                engine,
                scripts: HashMap::new(),
                eval_clock: 0,
                libraries: BTreeMap::new(),
                functions: HashMap::new(),
            }),
            busy,
            library_count: AtomicUsize::new(0),
            function_count: AtomicUsize::new(0),
        }
    }

    /// Number of cached EVAL scripts (INFO number_of_cached_scripts).
    pub fn cached_scripts(&self) -> usize {
        self.state.try_lock().map_or(0, |s| s.scripts.len())
    }
}

impl Default for Scripting {
    fn default() -> Self {
        Self::new()
    }
}

/// EVAL script numkeys key... / FCALL function numkeys key...: the keys
/// follow numkeys (none when numkeys is invalid).
fn numkeys_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(n) = args.get(2).and_then(|a| crate::util::parse_i64_opt(a)) else {
        return vec![];
    };
    if n <= 0 || n as u64 > (args.len() - 3) as u64 {
        return vec![];
    }
    (3..3 + n as usize).collect()
}

/// Runs `f(keys, args)` for the command in `c`, under the shards it holds,
/// and writes the result. `name` is what error replies quote (the SHA1 of
/// an EVAL script, the name of a function).
pub(crate) fn run_script(
    c: &mut Ctx,
    engine: &Engine,
    f: &mlua::Function,
    (keys, args): (mlua::Value, mlua::Value),
    name: &str,
    eval: bool,
    read_only: bool,
) -> CmdResult {
    let server = c.server;
    let now = c.store.now;
    let Some(held) = c.store.shard_access() else {
        return Err("ERR scripts must run under the keyspace lock".into());
    };
    let run = RefCell::new(Run::new(server, held, c.client, now, read_only));
    let guard = server.scripting.busy.begin(eval, name, c.args);
    let result = off_worker(|| engine.call(f, keys, args, &run));
    drop(guard);
    // What the script's commands changed goes to the AOF as one
    // MULTI/EXEC block (effects, not the script: replays are exact).
    let effects = std::mem::take(&mut run.into_inner().client.propagated);
    c.client.propagated.extend(effects);
    let resp3 = engine.resp3();
    match result {
        Err(e) => Err(format!("ERR {e}").into()),
        Ok(Ok(v)) => lua::write_value(c.out, &v, resp3),
        Ok(Err(e)) => Err(lua::run_error(&e, name)),
    }
}

/// Runs `f` where it may take long: on a tokio worker it first hands the
/// worker's other connections to another thread, so clients can still be
/// read (and told BUSY, or send SCRIPT KILL) while the script runs.
fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The number-of-keys argument of EVAL and FCALL.
fn parse_numkeys(args: &[Bytes], not_int: &'static str) -> Result<usize, CmdError> {
    let n = crate::util::parse_i64_opt(&args[2]).ok_or(CmdError::from(not_int))?;
    if n < 0 {
        return Err("ERR Number of keys can't be negative".into());
    }
    if n as u64 > (args.len() - 3) as u64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    Ok(n as usize)
}

const EVAL_FLAGS: u32 = NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE;
const EVAL_RO_FLAGS: u32 = NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY;
const ACL: &[&str] = &["@slow", "@scripting"];

pub static COMMANDS: &[Spec] = &[
    Spec::new(
        "eval",
        -3,
        EVAL_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        eval::eval,
    )
    .group(G, "2.6.0")
    .acl(ACL)
    .doc("Executes a server-side Lua script."),
    Spec::new(
        "evalsha",
        -3,
        EVAL_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        eval::evalsha,
    )
    .group(G, "2.6.0")
    .acl(ACL)
    .doc("Executes a server-side Lua script by SHA1 digest."),
    Spec::new(
        "eval_ro",
        -3,
        EVAL_RO_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        eval::eval_ro,
    )
    .group(G, "7.0.0")
    .acl(ACL)
    .doc("Executes a read-only server-side Lua script."),
    Spec::new(
        "evalsha_ro",
        -3,
        EVAL_RO_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        eval::evalsha_ro,
    )
    .group(G, "7.0.0")
    .acl(ACL)
    .doc("Executes a read-only server-side Lua script by SHA1 digest."),
    Spec::new(
        "fcall",
        -3,
        EVAL_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        function::fcall,
    )
    .group(G, "7.0.0")
    .acl(ACL)
    .doc("Invokes a function."),
    Spec::new(
        "fcall_ro",
        -3,
        EVAL_RO_FLAGS | ALL_SHARDS,
        Keys::Custom(numkeys_keys),
        function::fcall_ro,
    )
    .group(G, "7.0.0")
    .acl(ACL)
    .doc("Invokes a read-only function."),
    Spec::container("script", SCRIPT_SUBCOMMANDS)
        .group(G, "2.6.0")
        .doc("A container for Lua scripts management commands."),
    Spec::container("function", function::SUBCOMMANDS)
        .group(G, "7.0.0")
        .doc("A container for function commands."),
];

static SCRIPT_SUBCOMMANDS: &[Spec] = &[
    Spec::new(
        "script|load",
        3,
        NOSCRIPT | STALE,
        Keys::None,
        eval::script_load,
    )
    .group(G, "2.6.0")
    .acl(ACL)
    .doc("Loads a server-side Lua script to the script cache."),
    Spec::new(
        "script|exists",
        -3,
        NOSCRIPT,
        Keys::None,
        eval::script_exists,
    )
    .group(G, "2.6.0")
    .acl(ACL)
    .doc("Determines whether server-side Lua scripts exist in the script cache."),
    Spec::new("script|flush", -2, NOSCRIPT, Keys::None, eval::script_flush)
        .group(G, "2.6.0")
        .acl(ACL)
        .doc("Removes all server-side Lua scripts from the script cache."),
    Spec::new(
        "script|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        eval::script_kill,
    )
    .group(G, "2.6.0")
    .acl(ACL)
    .doc("Terminates a server-side Lua script during execution."),
    Spec::new("script|debug", 3, NOSCRIPT, Keys::None, eval::script_debug)
        .group(G, "3.2.0")
        .acl(ACL)
        .doc("Sets the debug mode of server-side Lua scripts."),
    Spec::new(
        "script|help",
        2,
        LOADING | STALE,
        Keys::None,
        eval::script_help,
    )
    .group(G, "5.0.0")
    .acl(ACL)
    .doc("Returns helpful text about the different subcommands."),
];

/// Whether Relaxed counters need refreshing after a library change.
pub(crate) fn update_counts(server: &crate::server::Server, st: &State) {
    let s = &server.scripting;
    s.library_count.store(st.libraries.len(), Relaxed);
    s.function_count.store(st.functions.len(), Relaxed);
}

/// The code of every function library (saved with RDB snapshots and AOF
/// bases, as Redis saves them).
pub fn library_codes(server: &crate::server::Server) -> Vec<Vec<u8>> {
    let st = server.scripting.state.lock();
    st.libraries.values().map(|l| l.code.to_vec()).collect()
}

/// Loads function libraries read from an RDB file (replacing same-named
/// ones); a library that fails to load is logged and skipped.
pub fn load_libraries(server: &crate::server::Server, codes: &[Vec<u8>]) {
    if codes.is_empty() {
        return;
    }
    let mut st = server.scripting.state.lock();
    for code in codes {
        if let Err(e) = function::load_library(&mut st, &Bytes::copy_from_slice(code), true) {
            tracing::warn!(
                "Failed loading a function library from the RDB file: {}",
                e.text()
            );
        }
    }
    update_counts(server, &st);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numkeys_key_positions() {
        let args: Vec<Bytes> = ["eval", "s", "2", "a", "b", "c"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        assert_eq!(numkeys_keys(&args), vec![3, 4]);
        assert!(numkeys_keys(&args[..3]).is_empty());
        let bad: Vec<Bytes> = ["eval", "s", "-1"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert!(numkeys_keys(&bad).is_empty());
    }
}
