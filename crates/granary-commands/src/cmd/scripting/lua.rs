//! The Lua state (one per server, as in Redis), its sandbox, and running a
//! script or function in it: `redis.call` re-enters the dispatcher under the
//! shard locks the calling command holds, and the result is converted to a
//! reply with Redis's rules (script_lua.c).

use super::busy::Busy;
use super::resp;
use crate::client::{Client, ClientInfo};
use crate::ctx::{CmdError, ShardAccess};
use crate::server::Server;
use bytes::Bytes;
use granary_protocol::Reply;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Instructions between two checks for SCRIPT KILL (Redis uses the same).
const HOOK_EVERY: u32 = 100_000;
/// Nesting depth at which a returned table is refused (a table holding
/// itself would otherwise recurse forever).
const MAX_DEPTH: usize = 1000;
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// Lua code run once when the state is created, in the real globals. It
/// receives the table where each run installs its callbacks (`hooks`) and
/// the Rust helpers; it returns the environment scripts see (a read-only
/// view of the globals) and the function that runs a script under an
/// error handler.
const BOOTSTRAP: &str = r#"
local rust = ...
local G = _G
local error, type, tostring, select, setmetatable = error, type, tostring, select, setmetatable
local pairs, ipairs, xpcall, floor = pairs, ipairs, xpcall, math.floor
local rawset, getfenv, setfenv, loadstring, load = rawset, getfenv, setfenv, loadstring, load

G.dofile, G.loadfile, G.print, G.module, G.require, G.newproxy = nil, nil, nil, nil, nil, nil

-- luaPushErrorBuff: "-CODE msg" or "msg" (code ERR) as an error table.
local function err_table(s)
  local code, msg = 'ERR', s
  if s:sub(1, 1) == '-' then
    local sp = s:find(' ', 1, true)
    if sp then code, msg = s:sub(2, sp - 1), s:sub(sp + 1) else msg = s:sub(2) end
  end
  msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end

local redis = {}
G.redis = redis

-- Functions that raise errors are Rust (C) functions: a Lua wrapper
-- called as `return redis.call(...)` would be a tail call, and the error
-- would lose the script's line number.
for _, name in ipairs({'call', 'pcall', 'sha1hex', 'log', 'setresp', 'set_repl', 'register_function'}) do
  redis[name] = rust[name]
end

function redis.error_reply(e)
  if type(e) ~= 'string' then return err_table('wrong number or type of arguments') end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return err_table(e)
end

function redis.status_reply(s)
  if type(s) ~= 'string' then return err_table('wrong number or type of arguments') end
  return {ok = s}
end

function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end
function redis.acl_check_cmd(...) return true end

-- Redis's pcall: an error table caught becomes its "err" text.
local errmsg, pcall = rust.errmsg, pcall
local function caught(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == 'userdata' then e = errmsg(e) end
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then e = rawget(e, 'err') end
  return false, e
end
G.pcall = function(...) return caught(pcall(...)) end

redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION = '@VERSION@'
redis.REDIS_VERSION_NUM = @VERSION_NUM@

-- Redis's math.random: its own drand48 (Rust, like the C original, so
-- errors point at the caller's line).
math.random, math.randomseed = rust.random, rust.randomseed

local function readonly_error() error('Attempt to modify a readonly table', 2) end
local function readonly(t)
  return setmetatable({}, {__index = t, __newindex = readonly_error, __metatable = false})
end

for _, name in ipairs({'string', 'math', 'table', 'coroutine', 'redis', 'cjson', 'bit', 'struct', 'cmsgpack', 'os'}) do
  if G[name] ~= nil then G[name] = readonly(G[name]) end
end
-- ("x"):upper() finds string functions through the read-only view too.
getmetatable('').__index = G.string

-- What scripts see as their globals: reads of missing names and all
-- writes are errors, so nothing leaks from one script to the next.
local env = setmetatable({}, {
  __index = function(_, k)
    local v = G[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = readonly_error,
  __metatable = false,
})
G._G = env

-- Code loaded at run time gets the same view, never the real globals.
G.loadstring = function(...)
  local f, e = loadstring(...)
  if f then setfenv(f, env) end
  return f, e
end
G.load = function(...)
  local f, e = load(...)
  if f then setfenv(f, env) end
  return f, e
end
G.getfenv = function(...)
  local e = getfenv(...)
  if e == G then return env end
  return e
end
G.rawset = function(t, k, v)
  if t == env then error('Attempt to modify a readonly table', 2) end
  return rawset(t, k, v)
end

local function run(f, handler, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end

return env, run, redis
"#;

/// Everything living in the Lua state, behind the server's mutex.
pub struct Engine {
    pub lua: Lua,
    /// The `redis` table itself (scripts see a read-only view): each run
    /// binds `call` and `pcall` in it, each FUNCTION LOAD
    /// `register_function`.
    redis: Table,
    /// The read-only global view scripts run in.
    pub env: Table,
    runner: mlua::Function,
    handler: mlua::Function,
    /// The real globals (KEYS and ARGV are set there).
    globals: Table,
    /// The running script's protocol (redis.setresp).
    resp3: Arc<AtomicBool>,
    /// The functions `call`, `pcall` and `register_function` are between
    /// runs (errors).
    idle: Vec<(&'static str, mlua::Function)>,
    /// When the library code FUNCTION LOAD runs must stop (ms since the
    /// epoch, 0 outside FUNCTION LOAD): SCRIPT KILL cannot reach it.
    load_deadline: Arc<AtomicU64>,
}

/// How long FUNCTION LOAD may run a library's top-level code (Redis's).
const LOAD_TIMEOUT_MS: u64 = 500;

/// An error a script raises as Redis's error table {err=...}: the text
/// already starts with its code ("ERR ...", "WRONGTYPE ...").
#[derive(Debug)]
struct ScriptError(String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

/// Raises `msg` from a Rust function as an error table would be raised.
fn raise<T>(msg: impl Into<String>) -> mlua::Result<T> {
    Err(mlua::Error::external(ScriptError(msg.into())))
}

/// The ScriptError inside an error a Rust function raised, if any.
fn script_error(e: &mlua::Error) -> Option<&str> {
    match e {
        mlua::Error::CallbackError { cause, .. } => script_error(cause),
        mlua::Error::WithContext { cause, .. } => script_error(cause),
        mlua::Error::ExternalError(x) => x.downcast_ref::<ScriptError>().map(|s| s.0.as_str()),
        _ => None,
    }
}

/// Redis's rand.c: drand48's generator, 48-bit state, starting from the
/// unseeded state and never reseeded (so the sequence runs on across
/// scripts, as in Redis 7).
const RAND48_START: u64 = 0x1234_ABCD_330E;

fn srand48(seed: i32) -> u64 {
    ((seed as u32 as u64) << 16) | 0x330E
}

fn lrand48(state: &AtomicU64) -> i64 {
    let x = state.load(Relaxed);
    let next = (x.wrapping_mul(0x5DEECE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    state.store(next, Relaxed);
    (next >> 17) as i64
}

/// An error as luaL_error raises it from a C function: the message
/// prefixed with the calling Lua code's position ("user_script:1: ").
fn caller_error(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| {
            let src = d.source();
            let line = d.current_line()?;
            Some(format!("{}:{line}: ", src.short_src?))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::runtime(format!("{at}{msg}"))
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// luaL_checkint: argument `i` as an integer (numeric strings too).
fn int_arg(lua: &Lua, args: &MultiValue, i: usize, func: &str) -> mlua::Result<f64> {
    let n = match args.get(i) {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(Value::String(s)) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    };
    match n {
        Some(n) => Ok(n.trunc()),
        None => Err(caller_error(
            lua,
            &format!(
                "bad argument #{} to '{func}' (number expected, got {})",
                i + 1,
                type_name(args.get(i))
            ),
        )),
    }
}

/// Redis's math.random: [0,1), [1,m] or [m,n] from its drand48.
fn random(lua: &Lua, rng: &AtomicU64, args: MultiValue) -> mlua::Result<f64> {
    let r = (lrand48(rng) % i32::MAX as i64) as f64 / i32::MAX as f64;
    let empty = |n: usize| {
        caller_error(
            lua,
            &format!("bad argument #{n} to 'random' (interval is empty)"),
        )
    };
    match args.len() {
        0 => Ok(r),
        1 => {
            let u = int_arg(lua, &args, 0, "random")?;
            if u < 1.0 {
                return Err(empty(1));
            }
            Ok((r * u).floor() + 1.0)
        }
        2 => {
            let l = int_arg(lua, &args, 0, "random")?;
            let u = int_arg(lua, &args, 1, "random")?;
            if l > u {
                return Err(empty(2));
            }
            Ok((r * (u - l + 1.0)).floor() + l)
        }
        _ => Err(caller_error(lua, "wrong number of arguments")),
    }
}

fn sha1hex(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::String> {
    if args.len() != 1 {
        return raise("ERR wrong number of arguments");
    }
    let data = match &args[0] {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Integer(i) => i.to_string().into_bytes(),
        Value::Number(n) => number_arg(*n).into_bytes(),
        _ => Vec::new(),
    };
    lua.create_string(sha1_smol::Sha1::from(&data).digest().to_string())
}

fn log(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return raise("ERR redis.log() requires two arguments or more.");
    }
    let level = match &args[0] {
        Value::Integer(i) => *i,
        Value::Number(n) => *n as i64,
        _ => return raise("ERR First argument must be a number (log level)."),
    };
    if !(0..=3).contains(&level) {
        return raise("ERR Invalid debug level.");
    }
    let parts: Vec<String> = args
        .iter()
        .skip(1)
        .filter_map(|v| match v {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(number_arg(*n)),
            _ => None,
        })
        .collect();
    let msg = parts.join(" ");
    match level {
        0 => tracing::debug!("{msg}"),
        1 | 2 => tracing::info!("{msg}"),
        _ => tracing::warn!("{msg}"),
    }
    Ok(())
}

fn set_repl(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() != 1 {
        return raise("ERR redis.set_repl() requires two arguments.");
    }
    let ok = match &args[0] {
        Value::Integer(i) => (0..=3).contains(i),
        Value::Number(n) => (0.0..=3.0).contains(n),
        _ => false,
    };
    if !ok {
        return raise(
            "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
        );
    }
    Ok(())
}

impl Engine {
    pub fn new(kill: Arc<AtomicBool>) -> mlua::Result<Engine> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
        let lua = Lua::new_with(libs, LuaOptions::default())?;
        super::lualibs::open_all(&lua)?;
        let rng = Arc::new(AtomicU64::new(RAND48_START));
        let resp3 = Arc::new(AtomicBool::new(false));
        let rust = lua.create_table()?;
        rust.raw_set("sha1hex", lua.create_function(sha1hex)?)?;
        rust.raw_set("log", lua.create_function(log)?)?;
        rust.raw_set("set_repl", lua.create_function(set_repl)?)?;
        rust.raw_set(
            "errmsg",
            lua.create_function(|lua, v: Value| {
                Ok(match v {
                    Value::Error(e) => {
                        let text = script_error(&e).map_or_else(|| innermost(&e), str::to_string);
                        Value::String(lua.create_string(text)?)
                    }
                    v => v,
                })
            })?,
        )?;
        let r = resp3.clone();
        let setresp = lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return raise("ERR redis.setresp() requires one argument.");
            }
            let v = match &args[0] {
                Value::Integer(i) => *i as f64,
                Value::Number(n) => *n,
                _ => 0.0,
            };
            if v != 2.0 && v != 3.0 {
                return raise("ERR RESP version must be 2 or 3.");
            }
            r.store(v == 3.0, Relaxed);
            Ok(())
        })?;
        rust.raw_set("setresp", setresp)?;
        let outside = |what: &'static str| {
            lua.create_function(move |_, _: MultiValue| -> mlua::Result<()> { raise(what) })
        };
        let idle = vec![
            (
                "call",
                outside("ERR redis.call can only be called inside a script invocation")?,
            ),
            (
                "pcall",
                outside("ERR redis.pcall can only be called inside a script invocation")?,
            ),
            (
                "register_function",
                outside("ERR redis.register_function can only be called on FUNCTION LOAD command")?,
            ),
        ];
        for (name, f) in &idle {
            rust.raw_set(*name, f.clone())?;
        }
        let r = rng.clone();
        rust.raw_set(
            "random",
            lua.create_function(move |lua, args: MultiValue| random(lua, &r, args))?,
        )?;
        let r = rng.clone();
        rust.raw_set(
            "randomseed",
            lua.create_function(move |lua, args: MultiValue| {
                let seed = int_arg(lua, &args, 0, "randomseed")?;
                r.store(srand48(seed as i64 as i32), Relaxed);
                Ok(())
            })?,
        )?;
        let version = crate::REDIS_VERSION;
        let num = version
            .split('.')
            .fold(0i64, |acc, p| (acc << 8) | p.parse::<i64>().unwrap_or(0));
        let code = BOOTSTRAP
            .replace("@VERSION@", version)
            .replace("@VERSION_NUM@", &num.to_string());
        let (env, runner, redis): (Table, mlua::Function, Table) =
            lua.load(code).set_name("=granary").call(rust)?;
        let handler = lua.create_function(error_handler)?;
        let load_deadline = Arc::new(AtomicU64::new(0));
        let deadline = load_deadline.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if kill.load(Relaxed) {
                    return Err(mlua::Error::runtime(KILLED));
                }
                let d = deadline.load(Relaxed);
                if d != 0 && granary_keyspace::now_ms() > d {
                    return raise("ERR FUNCTION LOAD timeout");
                }
                Ok(VmState::Continue)
            },
        )?;
        let globals = lua.globals();
        Ok(Engine {
            lua,
            redis,
            env,
            runner,
            handler,
            globals,
            resp3,
            idle,
            load_deadline,
        })
    }

    /// Puts back the erroring `call`, `pcall`, `register_function`.
    fn unbind(&self) -> mlua::Result<()> {
        for (name, f) in &self.idle {
            self.redis.raw_set(*name, f.clone())?;
        }
        Ok(())
    }

    /// Compiles `body` as a function of the script environment. The error
    /// is Lua's message ("user_script:1: ...").
    pub fn compile(&self, body: &[u8], chunk: &str) -> Result<mlua::Function, String> {
        self.lua
            .load(body)
            .set_name(chunk)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                e => innermost(&e),
            })
    }

    /// Sets KEYS and ARGV, as Redis does before every EVAL.
    pub fn prepare_eval(&self, keys: &[Bytes], argv: &[Bytes]) -> mlua::Result<()> {
        self.globals.raw_set("KEYS", self.strings(keys)?)?;
        self.globals.raw_set("ARGV", self.strings(argv)?)?;
        Ok(())
    }

    pub fn strings(&self, items: &[Bytes]) -> mlua::Result<Table> {
        let t = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, a) in items.iter().enumerate() {
            t.raw_set(i + 1, self.lua.create_string(a)?)?;
        }
        Ok(t)
    }

    /// Runs `f(keys, args)` under the error handler with `redis.call`
    /// and `redis.pcall` bound to `run`: Ok(value) or the error table
    /// {err, source, line}.
    pub fn call(
        &self,
        f: &mlua::Function,
        keys: Value,
        args: Value,
        run: &RefCell<Run<'_>>,
    ) -> mlua::Result<Result<Value, Value>> {
        self.resp3.store(false, Relaxed);
        let result = self.lua.scope(|scope| {
            let call = scope.create_function(|lua, a: MultiValue| {
                match exec(lua, run, &self.resp3, a)? {
                    (true, v) => Ok(v),
                    (false, v) => raise(String::from_utf8_lossy(&error_text(&v))),
                }
            })?;
            let pcall = scope
                .create_function(|lua, a: MultiValue| Ok(exec(lua, run, &self.resp3, a)?.1))?;
            self.redis.raw_set("call", call)?;
            self.redis.raw_set("pcall", pcall)?;
            let r: MultiValue = self
                .runner
                .call((f.clone(), self.handler.clone(), keys, args))?;
            Ok(r)
        });
        self.unbind()?;
        Ok(outcome(result?))
    }

    /// The protocol the script last chose with redis.setresp.
    pub fn resp3(&self) -> bool {
        self.resp3.load(Relaxed)
    }

    /// Runs a library's code with `redis.register_function` bound to
    /// `register`; Err is the error table.
    pub fn load_library<F>(
        &self,
        f: &mlua::Function,
        register: F,
    ) -> mlua::Result<Result<(), Value>>
    where
        F: Fn(&Lua, MultiValue) -> Result<(), String>,
    {
        let result = self.lua.scope(|scope| {
            let reg = scope.create_function(|lua, a: MultiValue| match register(lua, a) {
                Ok(()) => Ok(()),
                Err(msg) => raise(format!("ERR {msg}")),
            })?;
            self.redis.raw_set("register_function", reg)?;
            self.load_deadline
                .store(granary_keyspace::now_ms() + LOAD_TIMEOUT_MS, Relaxed);
            let r = self.runner.call::<MultiValue>((
                f.clone(),
                self.handler.clone(),
                Value::Nil,
                Value::Nil,
            ));
            self.load_deadline.store(0, Relaxed);
            r
        });
        self.unbind()?;
        Ok(outcome(result?).map(|_| ()))
    }
}

/// What the runner's xpcall returned: (true, value) or (false, error).
fn outcome(r: MultiValue) -> Result<Value, Value> {
    let mut r = r.into_iter();
    let ok = matches!(r.next(), Some(Value::Boolean(true)));
    let v = r.next().unwrap_or(Value::Nil);
    if ok {
        Ok(v)
    } else {
        Err(v)
    }
}

/// The message of a Rust-side error, without mlua's wrapping.
fn innermost(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::WithContext { cause, .. } => innermost(cause),
        e => e.to_string(),
    }
}

/// The xpcall handler (Redis's __redis__err__handler): turns any error
/// into {err=..., source=..., line=...}, the position being that of the
/// innermost frame of user code.
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            let msg = match other {
                Value::String(s) => format!("ERR {}", s.to_string_lossy()),
                Value::Error(e) => match script_error(&e) {
                    Some(m) => m.to_string(),
                    None => format!("ERR {}", innermost(&e)),
                },
                Value::Nil => "ERR nil".into(),
                v => format!("ERR {}", v.to_string().unwrap_or_default()),
            };
            let t = lua.create_table()?;
            t.raw_set("err", msg)?;
            t
        }
    };
    for level in 0..64 {
        let Some(found) = lua.inspect_stack(level, |d| {
            let src = d.source();
            let user = src.what != "C" && src.source.as_deref() != Some("=granary");
            user.then(|| {
                (
                    src.source.map(|s| s.into_owned()).unwrap_or_default(),
                    d.current_line().unwrap_or(0),
                )
            })
        }) else {
            break;
        };
        if let Some((source, line)) = found {
            t.raw_set("source", source)?;
            t.raw_set("line", line)?;
            break;
        }
    }
    Ok(t)
}

/// The state of one script run, shared by its `redis.call`s.
pub struct Run<'a> {
    pub server: &'a Server,
    pub held: &'a mut dyn ShardAccess,
    pub client: Client,
    pub now: u64,
    pub read_only: bool,
    pub busy: &'a Busy,
}

impl<'a> Run<'a> {
    pub fn new(
        server: &'a Server,
        held: &'a mut dyn ShardAccess,
        caller: &Client,
        now: u64,
        read_only: bool,
    ) -> Self {
        let info = Arc::new(ClientInfo::new(0, String::new(), String::new(), now));
        let mut client = Client::new(info, true);
        client.select(caller.db);
        client.user = caller.user.clone();
        // Blocking commands reply at once, as inside MULTI.
        client.in_exec = true;
        Run {
            server,
            held,
            client,
            now,
            read_only,
            busy: &server.scripting.busy,
        }
    }

    /// Runs one command; Ok(reply bytes) or Err(message for an error table).
    fn command(&mut self, argv: &[Bytes], resp3: bool) -> Result<Vec<u8>, String> {
        let (spec, idx) = crate::dispatch::resolve_indexed(argv).map_err(|e| {
            if e.0.starts_with(b"ERR wrong number") {
                "Wrong number of args calling Redis command from script".to_string()
            } else {
                "Unknown Redis command called from script".to_string()
            }
        })?;
        let flags = spec.flags;
        if flags & crate::table::flag::NOSCRIPT != 0 {
            return Err("This Redis command is not allowed from script".into());
        }
        if spec.is_write() {
            if self.read_only {
                return Err("Write commands are not allowed from read-only scripts.".into());
            }
            self.busy.wrote.store(true, Relaxed);
        }
        self.client.resp3 = resp3;
        let mut out = Reply::new(resp3);
        crate::dispatch::run(
            self.server,
            &mut self.client,
            spec,
            idx,
            argv,
            &mut out,
            self.now,
            Some(&mut *self.held),
        );
        Ok(out
            .take_chunks()
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect())
    }
}

fn err_value(lua: &Lua, msg: &str) -> mlua::Result<(bool, Value)> {
    let t = lua.create_table()?;
    t.raw_set("err", format!("ERR {msg}"))?;
    Ok((false, Value::Table(t)))
}

/// `redis.call` / `redis.pcall`: (true, reply) or (false, error table).
fn exec(
    lua: &Lua,
    run: &RefCell<Run<'_>>,
    resp3: &AtomicBool,
    args: MultiValue,
) -> mlua::Result<(bool, Value)> {
    if args.is_empty() {
        return err_value(
            lua,
            "Please specify at least one argument for this redis lib call",
        );
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => argv.push(Bytes::from(i.to_string())),
            Value::Number(n) => argv.push(Bytes::from(number_arg(*n))),
            _ => {
                return err_value(
                    lua,
                    "Lua redis lib command arguments must be strings or integers",
                )
            }
        }
    }
    let reply = run.borrow_mut().command(&argv, resp3.load(Relaxed));
    match reply {
        Err(msg) => err_value(lua, &msg),
        Ok(bytes) => {
            let v = resp::to_lua(lua, &bytes)?;
            Ok((bytes.first() != Some(&b'-'), v))
        }
    }
}

/// A Lua number as a command argument: integers without a fraction, else
/// the shortest text that reads back the same (Redis 7.4's fpconv_dtoa).
pub(crate) fn number_arg(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        granary_protocol::format_double(n)
    }
}

/// Writes a script's result with Redis's Lua-to-RESP rules. A top-level
/// error table becomes the command's error (Err).
pub fn write_value(out: &mut Reply, v: &Value, resp3: bool) -> Result<(), CmdError> {
    write_at(out, v, resp3, 0)
}

fn field(t: &Table, k: &str) -> Value {
    t.raw_get(k).unwrap_or(Value::Nil)
}

fn write_at(out: &mut Reply, v: &Value, resp3: bool, depth: usize) -> Result<(), CmdError> {
    if depth > MAX_DEPTH {
        return Err("ERR reached lua stack limit".into());
    }
    match v {
        Value::Boolean(b) => {
            if resp3 {
                out.boolean(*b)
            } else if *b {
                out.int(1)
            } else {
                out.null()
            }
        }
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(*n as i64),
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Table(t) => write_table(out, t, resp3, depth)?,
        _ => out.null(),
    }
    Ok(())
}

/// Status and error texts stay on one line, as Redis's sdsmapchars does.
fn one_line(s: &[u8]) -> Vec<u8> {
    s.iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect()
}

fn write_table(out: &mut Reply, t: &Table, resp3: bool, depth: usize) -> Result<(), CmdError> {
    if let Value::String(e) = field(t, "err") {
        let msg = e.as_bytes().to_vec();
        if depth == 0 {
            return Err(CmdError(msg.into()));
        }
        out.error(&msg);
        return Ok(());
    }
    if let Value::String(s) = field(t, "ok") {
        let mut line = b"+".to_vec();
        line.extend(one_line(&s.as_bytes()));
        line.extend_from_slice(b"\r\n");
        out.raw(&line);
        return Ok(());
    }
    let double = match field(t, "double") {
        Value::Number(d) => Some(d),
        Value::Integer(i) => Some(i as f64),
        _ => None,
    };
    if let Some(d) = double {
        out.double(d);
        return Ok(());
    }
    if let Value::String(s) = field(t, "big_number") {
        let s = one_line(&s.as_bytes());
        if out.resp3() {
            out.raw(&[b"(", &s[..], b"\r\n"].concat());
        } else {
            out.bulk(&s);
        }
        return Ok(());
    }
    if let Value::Table(m) = field(t, "map") {
        let pairs: Vec<(Value, Value)> = m.pairs().filter_map(|p| p.ok()).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            write_at(out, k, resp3, depth + 1)?;
            write_at(out, v, resp3, depth + 1)?;
        }
        return Ok(());
    }
    if let Value::Table(s) = field(t, "set") {
        let keys: Vec<Value> = s
            .pairs::<Value, Value>()
            .filter_map(|p| p.ok().map(|(k, _)| k))
            .collect();
        out.set(keys.len());
        for k in &keys {
            write_at(out, k, resp3, depth + 1)?;
        }
        return Ok(());
    }
    if let Value::Table(v) = field(t, "verbatim_string") {
        if let (Value::String(f), Value::String(s)) = (field(&v, "format"), field(&v, "string")) {
            let (f, s) = (f.as_bytes(), s.as_bytes());
            if out.resp3() && f.len() == 3 {
                let body = [&f[..], b":", &s[..]].concat();
                out.raw(format!("={}\r\n", body.len()).as_bytes());
                out.raw(&body);
                out.raw(b"\r\n");
            } else {
                out.bulk(&s);
            }
            return Ok(());
        }
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for v in &items {
        write_at(out, v, resp3, depth + 1)?;
    }
    Ok(())
}

/// The error reply for a failed run: "<err> script: <name>, on <source>:<line>."
pub fn run_error(err: &Value, name: &str) -> CmdError {
    let Value::Table(t) = err else {
        return format!("ERR Error running script {name}, execution failure").into();
    };
    let msg = match field(t, "err") {
        Value::String(s) => s.as_bytes().to_vec(),
        _ => b"ERR unknown error".to_vec(),
    };
    let mut full = msg;
    if let (Value::String(src), Some(line)) = (field(t, "source"), line_of(t)) {
        full.extend_from_slice(format!(" script: {name}, on ").as_bytes());
        full.extend_from_slice(&src.as_bytes());
        full.extend_from_slice(format!(":{line}.").as_bytes());
    }
    CmdError(full.into())
}

fn line_of(t: &Table) -> Option<i64> {
    match field(t, "line") {
        Value::Integer(i) => Some(i),
        Value::Number(n) => Some(n as i64),
        _ => None,
    }
}

/// The "err" text of an error table (FUNCTION LOAD's "Error registering
/// functions: ..." quotes it without position).
pub fn error_text(err: &Value) -> Vec<u8> {
    match err {
        Value::Table(t) => match field(t, "err") {
            Value::String(s) => s.as_bytes().to_vec(),
            _ => b"ERR unknown error".to_vec(),
        },
        _ => b"ERR unknown error".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lrand48_matches_redis() {
        assert_eq!(srand48(0), 0x330E);
        // math.random(100) right after redisSrand48(0) is 85 in Redis.
        // The first math.random(100) after Redis starts is 40, then 85.
        let s = AtomicU64::new(RAND48_START);
        let next = || {
            let r = (lrand48(&s) % 2147483647) as f64 / 2147483647.0;
            (r * 100.0).floor() as i64 + 1
        };
        assert_eq!((next(), next()), (40, 85));
    }
}
