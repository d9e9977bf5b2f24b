//! FUNCTION and FCALL (functions.c, function_lua.c): libraries of named
//! Lua functions, loaded with `#!lua name=<lib>` code that calls
//! `redis.register_function`.

use super::{parse_numkeys, run_script, update_counts, State, G};
use crate::cmd::server::reply_help;
use crate::ctx::{CmdError, CmdResult, Ctx};
use crate::table::{flag::*, Keys, Spec};
use crate::util::is;
use bytes::Bytes;
use mlua::{Lua, MultiValue, Value};
use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;

pub struct Library {
    pub name: String,
    pub code: Bytes,
    /// Function names, in registration order.
    pub functions: Vec<String>,
}

pub struct Func {
    pub library: String,
    pub func: mlua::Function,
    pub description: Option<Vec<u8>>,
    pub flags: u8,
}

/// Function flags, in the order Redis lists them.
const FLAG_NAMES: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
const NO_WRITES: u8 = 1;

const ACL: &[&str] = &["@slow", "@scripting"];
const ACL_WRITE: &[&str] = &["@write", "@slow", "@scripting"];

pub static SUBCOMMANDS: &[Spec] = &[
    Spec::new(
        "function|load",
        -3,
        // Every shard: the AOF logs it in order with a rewrite's snapshot.
        NOSCRIPT | WRITE | DENYOOM | ALL_SHARDS,
        Keys::None,
        load,
    )
    .group(G, "7.0.0")
    .acl(ACL_WRITE)
    .doc("Creates a library."),
    Spec::new(
        "function|delete",
        3,
        NOSCRIPT | WRITE | ALL_SHARDS,
        Keys::None,
        delete,
    )
    .group(G, "7.0.0")
    .acl(ACL_WRITE)
    .doc("Deletes a library and its functions."),
    Spec::new(
        "function|flush",
        -2,
        NOSCRIPT | WRITE | ALL_SHARDS,
        Keys::None,
        flush,
    )
    .group(G, "7.0.0")
    .acl(ACL_WRITE)
    .doc("Deletes all libraries and functions."),
    Spec::new("function|list", -2, NOSCRIPT, Keys::None, list)
        .group(G, "7.0.0")
        .acl(ACL)
        .doc("Returns information about all libraries."),
    Spec::new("function|dump", 2, NOSCRIPT, Keys::None, dump)
        .group(G, "7.0.0")
        .acl(ACL)
        .doc("Dumps all libraries into a serialized binary payload."),
    Spec::new(
        "function|restore",
        -3,
        NOSCRIPT | WRITE | DENYOOM | ALL_SHARDS,
        Keys::None,
        restore,
    )
    .group(G, "7.0.0")
    .acl(ACL_WRITE)
    .doc("Restores all libraries from a payload."),
    Spec::new(
        "function|stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        stats,
    )
    .group(G, "7.0.0")
    .acl(ACL)
    .doc("Returns information about a function during execution."),
    Spec::new("function|kill", 2, NOSCRIPT | ALLOW_BUSY, Keys::None, kill)
        .group(G, "7.0.0")
        .acl(ACL)
        .doc("Terminates a function during execution."),
    Spec::new("function|help", 2, LOADING | STALE, Keys::None, help)
        .group(G, "7.0.0")
        .acl(ACL)
        .doc("Returns helpful text about the different subcommands."),
];

pub fn fcall(c: &mut Ctx) -> CmdResult {
    fcall_generic(c, false)
}

pub fn fcall_ro(c: &mut Ctx) -> CmdResult {
    fcall_generic(c, true)
}

fn fcall_generic(c: &mut Ctx, ro: bool) -> CmdResult {
    let numkeys = parse_numkeys(c.args, "ERR Bad number of keys provided")?;
    let server = c.server;
    let st = server.scripting.state.lock();
    let name = String::from_utf8_lossy(&c.args[1]).into_owned();
    let Some(f) = st.functions.get(&name) else {
        return Err("ERR Function not found".into());
    };
    let no_writes = f.flags & NO_WRITES != 0;
    if ro && !no_writes {
        return Err("ERR Can not execute a script with write flag using *_ro command.".into());
    }
    let (keys, argv) = c.args[3..].split_at(numkeys);
    let engine = &st.engine;
    let tables = (|| Ok::<_, mlua::Error>((engine.strings(keys)?, engine.strings(argv)?)))()
        .map_err(|e| CmdError::from(format!("ERR {e}")))?;
    let tables = (Value::Table(tables.0), Value::Table(tables.1));
    let func = f.func.clone();
    run_script(c, engine, &func, tables, &name, false, ro || no_writes)
}

/// Letters, digits and underscores, at least one (library and function names).
fn valid_name(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The `#!<engine> name=<lib>` first line: (library name, header length).
fn metadata(code: &[u8]) -> Result<(String, usize), CmdError> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let line = String::from_utf8_lossy(&code[..end]);
    let mut parts = line.split_whitespace();
    let engine = parts.next().unwrap_or("#!")[2..].to_string();
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) if name.is_none() => name = Some(n.to_string()),
            Some(_) => {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                )
            }
            None => return Err(format!("ERR Invalid metadata value given: {p}").into()),
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found").into());
    }
    Ok((name, end))
}

/// One `redis.register_function` call's result.
struct Registered {
    name: String,
    func: mlua::Function,
    description: Option<Vec<u8>>,
    flags: u8,
}

fn parse_flags(v: &Value) -> Result<u8, String> {
    let Value::Table(t) = v else {
        return Err(
            "flags argument to redis.register_function must be a table representing function flags"
                .into(),
        );
    };
    let mut flags = 0u8;
    for item in t.clone().sequence_values::<Value>() {
        let Ok(Value::String(s)) = item else {
            return Err("unknown flag given".into());
        };
        let s = s.to_string_lossy();
        match FLAG_NAMES.iter().position(|f| *f == s) {
            Some(i) => flags |= 1 << i,
            None => return Err("unknown flag given".into()),
        }
    }
    Ok(flags)
}

/// Reads the arguments of `redis.register_function`, positional
/// (name, callback) or one table of named arguments.
fn registration(args: MultiValue) -> Result<Registered, String> {
    let args: Vec<Value> = args.into_iter().collect();
    let (mut name, mut func, mut description, mut flags) = (None, None, None, 0);
    match args.as_slice() {
        [Value::Table(t)] => {
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let Value::String(k) = k else {
                    return Err(
                        "named argument key given to redis.register_function is not a string"
                            .into(),
                    );
                };
                match &*k.to_string_lossy() {
                    "function_name" => match v {
                        Value::String(s) => name = Some(s.to_string_lossy()),
                        _ => return Err("function_name argument given to redis.register_function must be a string".into()),
                    },
                    "description" => match v {
                        Value::String(s) => description = Some(s.as_bytes().to_vec()),
                        _ => return Err("description argument given to redis.register_function must be a string".into()),
                    },
                    "callback" => match v {
                        Value::Function(f) => func = Some(f),
                        _ => return Err("callback argument given to redis.register_function must be a function".into()),
                    },
                    "flags" => flags = parse_flags(&v)?,
                    _ => return Err("unknown argument given to redis.register_function".into()),
                }
            }
            let Some(n) = name else {
                return Err("redis.register_function must get a function name argument".into());
            };
            name = Some(n);
            if func.is_none() {
                return Err("redis.register_function must get a callback argument".into());
            }
        }
        [_] => return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into()),
        [n, f] => {
            // Lua's "string" includes numbers, as lua_isstring does.
            let n = match n {
                Value::String(n) => n.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                Value::Number(x) => super::lua::number_arg(*x),
                _ => {
                    return Err(
                        "first argument to redis.register_function must be a string".into(),
                    )
                }
            };
            let Value::Function(f) = f else {
                return Err("second argument to redis.register_function must be a function".into());
            };
            name = Some(n);
            func = Some(f.clone());
        }
        _ => return Err("wrong number of arguments to redis.register_function".into()),
    }
    let (Some(name), Some(func)) = (name, func) else {
        return Err("wrong number of arguments to redis.register_function".into());
    };
    if !valid_name(name.as_bytes()) {
        return Err("Function names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok(Registered {
        name,
        func,
        description,
        flags,
    })
}

/// Compiles and runs a library's code, then installs it (replacing the
/// library of the same name if `replace`). Returns the library name.
pub fn load_library(st: &mut State, code: &Bytes, replace: bool) -> Result<String, CmdError> {
    let (name, header) = metadata(code)?;
    if !valid_name(name.as_bytes()) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !replace && st.libraries.contains_key(&name) {
        return Err(format!("ERR Library '{name}' already exists").into());
    }
    let f = st
        .engine
        .compile(&code[header..], "@user_function")
        .map_err(|e| CmdError::from(format!("ERR Error compiling function: {e}")))?;
    let registered: RefCell<Vec<Registered>> = RefCell::new(Vec::new());
    let register = |_: &Lua, args: MultiValue| {
        let r = registration(args)?;
        let mut all = registered.borrow_mut();
        if all.iter().any(|x| x.name == r.name) {
            return Err("Function already exists in the library".to_string());
        }
        all.push(r);
        Ok(())
    };
    let outcome = st
        .engine
        .load_library(&f, register)
        .map_err(|e| CmdError::from(format!("ERR {e}")))?;
    if let Err(e) = outcome {
        let mut msg = b"ERR Error registering functions: ".to_vec();
        msg.extend(super::lua::error_text(&e));
        return Err(CmdError(msg.into()));
    }
    let registered = registered.into_inner();
    if registered.is_empty() {
        return Err("ERR No functions registered".into());
    }
    for r in &registered {
        if let Some(other) = st.functions.get(&r.name) {
            if other.library != name {
                return Err(format!("ERR Function {} already exists", r.name).into());
            }
        }
    }
    remove_library(st, &name);
    let functions = registered.iter().map(|r| r.name.clone()).collect();
    for r in registered {
        st.functions.insert(
            r.name,
            Func {
                library: name.clone(),
                func: r.func,
                description: r.description,
                flags: r.flags,
            },
        );
    }
    st.libraries.insert(
        name.clone(),
        Library {
            name: name.clone(),
            code: code.clone(),
            functions,
        },
    );
    Ok(name)
}

fn remove_library(st: &mut State, name: &str) -> bool {
    let Some(lib) = st.libraries.remove(name) else {
        return false;
    };
    for f in &lib.functions {
        st.functions.remove(f);
    }
    true
}

fn load(c: &mut Ctx) -> CmdResult {
    let (replace, code) = match &c.args[2..] {
        [code] => (false, code),
        [r, code] if is(r, "REPLACE") => (true, code),
        [r, _] => return Err(CmdError::concat(&[b"ERR Unknown option given: ", r])),
        _ => return Err("ERR wrong number of arguments for 'function|load' command".into()),
    };
    let mut st = c.server.scripting.state.lock();
    let name = load_library(&mut st, code, replace)?;
    update_counts(c.server, &st);
    c.server.dirty.fetch_add(1, Relaxed);
    // Logged to the AOF, so the libraries survive a restart.
    c.store.changes += 1;
    c.out.bulk(name.as_bytes());
    Ok(())
}

fn delete(c: &mut Ctx) -> CmdResult {
    let mut st = c.server.scripting.state.lock();
    let name = String::from_utf8_lossy(&c.args[2]).into_owned();
    if !remove_library(&mut st, &name) {
        return Err("ERR Library not found".into());
    }
    update_counts(c.server, &st);
    c.server.dirty.fetch_add(1, Relaxed);
    // Logged to the AOF, so the libraries survive a restart.
    c.store.changes += 1;
    c.out.ok();
    Ok(())
}

fn flush_all(st: &mut State) {
    st.libraries.clear();
    st.functions.clear();
}

fn flush(c: &mut Ctx) -> CmdResult {
    match &c.args[2..] {
        [] => {}
        [a] if is(a, "SYNC") || is(a, "ASYNC") => {}
        _ => return Err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into()),
    }
    let mut st = c.server.scripting.state.lock();
    flush_all(&mut st);
    update_counts(c.server, &st);
    c.server.dirty.fetch_add(1, Relaxed);
    // Logged to the AOF, so the libraries survive a restart.
    c.store.changes += 1;
    c.out.ok();
    Ok(())
}

fn list(c: &mut Ctx) -> CmdResult {
    let mut pattern: Option<&Bytes> = None;
    let mut with_code = false;
    let mut i = 2;
    while i < c.args.len() {
        let a = &c.args[i];
        if is(a, "WITHCODE") && !with_code {
            with_code = true;
        } else if is(a, "LIBRARYNAME") && pattern.is_none() {
            i += 1;
            let Some(p) = c.args.get(i) else {
                return Err("ERR library name argument was not given".into());
            };
            pattern = Some(p);
        } else {
            return Err(CmdError::concat(&[b"ERR Unknown argument ", a]));
        }
        i += 1;
    }
    let st = c.server.scripting.state.lock();
    let libs: Vec<&Library> = st
        .libraries
        .values()
        .filter(|l| pattern.is_none_or(|p| crate::glob::glob_match(p, l.name.as_bytes(), false)))
        .collect();
    let out = &mut *c.out;
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for name in &lib.functions {
            let f = &st.functions[name];
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = FLAG_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| f.flags & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

/// RDB_OPCODE_FUNCTION2: one library's code in an RDB file or payload.
const RDB_FUNCTION: u8 = 245;

/// FUNCTION DUMP's payload, as Redis builds it: each library as an RDB
/// function record, then the DUMP footer (RDB version, CRC64).
fn dump(c: &mut Ctx) -> CmdResult {
    let st = c.server.scripting.state.lock();
    let mut payload = Vec::new();
    for lib in st.libraries.values() {
        payload.push(RDB_FUNCTION);
        granary_persistence::codec::put_string(&mut payload, &lib.code);
    }
    payload.extend_from_slice(&granary_persistence::RDB_VERSION_WRITE.to_le_bytes());
    let crc = granary_persistence::dump::crc64(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    c.out.bulk(&payload);
    Ok(())
}

/// The libraries' code in a FUNCTION DUMP payload (Redis's or ours).
fn parse_dump(payload: &[u8]) -> Result<Vec<Bytes>, CmdError> {
    if granary_persistence::dump::verify(payload).is_err() {
        return Err("ERR payload version or checksum are wrong".into());
    }
    let mut input = granary_persistence::codec::Input::new(&payload[..payload.len() - 10]);
    let mut libs = Vec::new();
    while input.remaining() > 0 {
        let bad = |_| CmdError::from("ERR Bad data format");
        if input.u8().map_err(bad)? != RDB_FUNCTION {
            return Err("ERR given type is not a function".into());
        }
        libs.push(Bytes::from(input.string().map_err(bad)?));
    }
    Ok(libs)
}

fn restore(c: &mut Ctx) -> CmdResult {
    let policy =
        match &c.args[3..] {
            [] => "APPEND",
            [p] if is(p, "APPEND") => "APPEND",
            [p] if is(p, "REPLACE") => "REPLACE",
            [p] if is(p, "FLUSH") => "FLUSH",
            [_] => return Err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
                    .into(),
            ),
            _ => return Err(crate::ctx::err::SYNTAX.into()),
        };
    let libs = parse_dump(&c.args[2])?;
    let mut st = c.server.scripting.state.lock();
    if policy == "APPEND" {
        for code in &libs {
            let (name, _) = metadata(code)?;
            if st.libraries.contains_key(&name) {
                return Err(format!("ERR Library {name} already exists").into());
            }
        }
    }
    if policy == "FLUSH" {
        flush_all(&mut st);
    }
    for code in &libs {
        load_library(&mut st, code, policy != "APPEND")?;
    }
    update_counts(c.server, &st);
    c.server.dirty.fetch_add(1, Relaxed);
    // Logged to the AOF, so the libraries survive a restart.
    c.store.changes += 1;
    c.out.ok();
    Ok(())
}

/// Reads only atomics and the busy state: the Lua mutex is held by the
/// script this is asked about.
fn stats(c: &mut Ctx) -> CmdResult {
    let s = &c.server.scripting;
    let running = s.busy.running();
    if running.started.is_some() && running.eval {
        // Redis answers about functions only.
        return Err(super::busy::BUSY_EVAL.into());
    }
    let out = &mut *c.out;
    out.map(2);
    out.bulk(b"running_script");
    match running.started {
        Some(started) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(running.name.as_bytes());
            out.bulk(b"command");
            out.array(running.command.len());
            for a in &running.command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(started.elapsed().as_millis() as i64);
        }
        _ => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(s.library_count.load(Relaxed) as i64);
    out.bulk(b"functions_count");
    out.int(s.function_count.load(Relaxed) as i64);
    Ok(())
}

fn kill(c: &mut Ctx) -> CmdResult {
    match c.server.scripting.busy.request_kill(false) {
        Some(e) => Err(e.into()),
        None => {
            c.out.ok();
            Ok(())
        }
    }
}

fn help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    );
    Ok(())
}
