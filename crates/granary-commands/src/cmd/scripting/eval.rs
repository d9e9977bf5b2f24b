//! EVAL, EVALSHA, their _RO forms, and SCRIPT (eval.c).

use super::{parse_numkeys, run_script, Script, State};
use crate::cmd::server::reply_help;
use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::util::is;
use bytes::Bytes;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

pub fn eval(c: &mut Ctx) -> CmdResult {
    eval_generic(c, false, false)
}

pub fn evalsha(c: &mut Ctx) -> CmdResult {
    eval_generic(c, true, false)
}

pub fn eval_ro(c: &mut Ctx) -> CmdResult {
    eval_generic(c, false, true)
}

pub fn evalsha_ro(c: &mut Ctx) -> CmdResult {
    eval_generic(c, true, true)
}

pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// `#!lua flags=...` at the top of an EVAL script: the length of that line
/// (the body is compiled from its newline on, so line numbers still count
/// it) and whether it declares no-writes.
fn shebang(body: &[u8]) -> Result<(usize, bool), CmdError> {
    if !body.starts_with(b"#!") {
        return Ok((0, false));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_whitespace();
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}").into());
    }
    let mut no_writes = false;
    for p in parts {
        let Some(flags) = p.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {p}").into());
        };
        for f in flags.split(',').filter(|f| !f.is_empty()) {
            match f {
                "no-writes" => no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                _ => return Err(format!("ERR Unexpected flag in script shebang: {f}").into()),
            }
        }
    }
    Ok((end, no_writes))
}

/// Compiles and caches `body` unless cached; returns its SHA1. `by_eval`
/// scripts are evictable (see [`super::EVAL_SCRIPTS_MAX`]).
fn load(st: &mut State, body: &Bytes, by_eval: bool) -> Result<String, CmdError> {
    let sha = sha1_hex(body);
    st.eval_clock += 1;
    let now = st.eval_clock;
    if let Some(s) = st.scripts.get_mut(&sha) {
        if by_eval && s.eval_seq.is_some() {
            s.eval_seq = Some(now);
        } else if !by_eval {
            // SCRIPT LOAD makes it permanent.
            s.eval_seq = None;
        }
        return Ok(sha);
    }
    if by_eval {
        evict_eval_scripts(st);
    }
    let (skip, no_writes) = shebang(body)?;
    let func = st
        .engine
        .compile(&body[skip..], "@user_script")
        .map_err(|e| CmdError::from(format!("ERR Error compiling script (new function): {e}")))?;
    st.scripts.insert(
        sha.clone(),
        Script {
            body: body.clone(),
            func,
            no_writes,
            eval_seq: by_eval.then_some(now),
        },
    );
    Ok(sha)
}

/// Makes room for one more EVAL script by dropping the least recently
/// used ones beyond the limit.
fn evict_eval_scripts(st: &mut State) {
    loop {
        let evictable = st.scripts.values().filter(|s| s.eval_seq.is_some());
        if evictable.count() < super::EVAL_SCRIPTS_MAX {
            return;
        }
        let oldest = st
            .scripts
            .iter()
            .filter_map(|(k, s)| s.eval_seq.map(|q| (q, k.clone())))
            .min();
        match oldest {
            Some((_, k)) => st.scripts.remove(&k),
            None => return,
        };
    }
}

fn eval_generic(c: &mut Ctx, by_sha: bool, ro: bool) -> CmdResult {
    let numkeys = parse_numkeys(c.args, err::NOT_INT)?;
    let server = c.server;
    let mut st = server.scripting.state.lock();
    let sha = if by_sha {
        let sha = String::from_utf8_lossy(&c.args[1]).to_ascii_lowercase();
        st.eval_clock += 1;
        let now = st.eval_clock;
        let Some(s) = st.scripts.get_mut(&sha) else {
            return Err(NOSCRIPT.into());
        };
        if s.eval_seq.is_some() {
            s.eval_seq = Some(now);
        }
        sha
    } else {
        load(&mut st, &c.args[1], true)?
    };
    let st = &*st;
    let script = &st.scripts[&sha];
    let (keys, argv) = c.args[3..].split_at(numkeys);
    let engine = &st.engine;
    engine
        .prepare_eval(keys, argv)
        .map_err(|e| CmdError::from(format!("ERR {e}")))?;
    let tables = (mlua::Value::Nil, mlua::Value::Nil);
    let f = script.func.clone();
    run_script(c, engine, &f, tables, &sha, true, ro || script.no_writes)
}

pub fn script_load(c: &mut Ctx) -> CmdResult {
    let mut st = c.server.scripting.state.lock();
    let sha = load(&mut st, &c.args[2], false)?;
    c.out.bulk(sha.as_bytes());
    Ok(())
}

pub fn script_exists(c: &mut Ctx) -> CmdResult {
    let st = c.server.scripting.state.lock();
    c.out.array(c.args.len() - 2);
    for a in &c.args[2..] {
        let sha = String::from_utf8_lossy(a).to_ascii_lowercase();
        c.out.int(st.scripts.contains_key(&sha) as i64);
    }
    Ok(())
}

pub fn script_flush(c: &mut Ctx) -> CmdResult {
    match c.args.get(2) {
        None => {}
        Some(a) if c.args.len() == 3 && (is(a, "SYNC") || is(a, "ASYNC")) => {}
        Some(_) => return Err("ERR SCRIPT FLUSH only support SYNC|ASYNC option".into()),
    }
    let mut st = c.server.scripting.state.lock();
    st.scripts.clear();
    // Let Lua drop the compiled functions now, not at some later GC step.
    let _ = st.engine.lua.gc_collect();
    c.out.ok();
    Ok(())
}

pub fn script_kill(c: &mut Ctx) -> CmdResult {
    match c.server.scripting.busy.request_kill(true) {
        Some(e) => Err(e.into()),
        None => {
            c.out.ok();
            Ok(())
        }
    }
}

/// The Lua debugger (LDB) is not implemented: SCRIPT DEBUG NO is accepted,
/// YES and SYNC are refused.
pub fn script_debug(c: &mut Ctx) -> CmdResult {
    let mode = &c.args[2];
    if is(mode, "NO") {
        c.out.ok();
        Ok(())
    } else if is(mode, "YES") || is(mode, "SYNC") {
        Err("ERR SCRIPT DEBUG is not supported by this server".into())
    } else {
        Err("ERR Use SCRIPT DEBUG YES/SYNC/NO".into())
    }
}

pub fn script_help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    );
    Ok(())
}
