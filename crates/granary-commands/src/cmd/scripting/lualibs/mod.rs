//! The C libraries Redis links into its Lua 5.1 state, re-implemented in
//! Rust on top of mlua: `cjson` (lua_cjson.c 2.1.0), `cmsgpack`
//! (lua_cmsgpack.c 0.4.0), `bit` (LuaBitOp 1.0.2) and `struct`
//! (lua_struct.c). Replies and error texts follow Redis byte for byte.
//!
//! Errors: the library functions are Rust callbacks, i.e. C functions to
//! Lua, so the stack looks as it does around Redis's C functions and each
//! error message is built as lauxlib would: `luaL_error` prefixes the
//! caller's "chunk:line: ", `luaL_argerror` names the function as called
//! ("bad argument #1 to 'tohex' (...)"). The message is raised as
//! `mlua::Error::RuntimeError`; the engine unwraps it (innermost cause)
//! both in its error handler (Redis's error reply) and in the scripts'
//! `pcall`, which then returns the plain string as Redis does. On the bare
//! state of [`eval_for_test`], `pcall` returns mlua's error object.
//!
//! Table iteration order (which decides the order of encoded object keys)
//! matches Redis's because the vendored Lua hashes strings as Redis's does
//! (vendor/lua-src/PATCHED.md).

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;
#[cfg(test)]
mod tests;

use mlua::{Function, Lua, MultiValue, Table, Value};

/// Lua's LUAI_MAXCSTACK: how many values a C function may keep on its
/// stack; the C libraries fail with "stack overflow" beyond it, which also
/// bounds our recursion on deeply nested input.
pub(crate) const MAX_C_STACK: usize = 8000;

/// Runs one level of a recursive walk over nested data (as deep as the
/// Lua stack allows, thousands of levels) on a stack grown on demand, so
/// deep input cannot overflow the thread's stack.
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

/// How many values a library function can return. Redis's C functions
/// can return up to 7999, but mlua needs some of the C stack for itself
/// around a Rust callback (about 7975 results fit); past this, functions
/// fail with the error Redis raises at its own limit instead of mlua's.
pub(crate) const MAX_RESULTS: usize = 7900;

/// An error raised by a library function, rendered like lauxlib does.
#[derive(Debug)]
pub(crate) enum LibError {
    /// `luaL_error`: the message gets the caller's position prefixed.
    Error(String),
    /// `luaL_argerror(narg, msg)`: "bad argument #n to 'name' (msg)".
    Arg(i32, String),
    /// An error the Lua core raises inside a C function: no position.
    Raw(String),
    /// A failure of mlua itself (memory, ...).
    Lua(mlua::Error),
}

impl From<mlua::Error> for LibError {
    fn from(e: mlua::Error) -> Self {
        LibError::Lua(e)
    }
}

pub(crate) type LibResult<T> = Result<T, LibError>;

/// Shorthand for `luaL_error`.
pub(crate) fn lerr<T>(msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Error(msg.into()))
}

/// Shorthand for `luaL_argerror`.
pub(crate) fn argerr<T>(narg: i32, msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Arg(narg, msg.into()))
}

/// Arguments of a library call, with lauxlib-style checks. `nargs` is
/// what `lua_gettop` would return.
pub(crate) struct Args {
    vals: Vec<Value>,
}

impl Args {
    pub(crate) fn new(args: MultiValue) -> Self {
        Args {
            vals: args.into_iter().collect(),
        }
    }

    /// Pushes a nil after the arguments, as some C functions do before
    /// checking them (so the next index reads "nil", not "no value").
    pub(crate) fn push_nil(&mut self) {
        self.vals.push(Value::Nil);
    }

    pub(crate) fn len(&self) -> usize {
        self.vals.len()
    }

    /// Argument `i` (1-based); `None` when absent ("no value").
    pub(crate) fn get(&self, i: usize) -> Option<&Value> {
        i.checked_sub(1).and_then(|i| self.vals.get(i))
    }

    /// `lua_isnoneornil`.
    pub(crate) fn is_none_or_nil(&self, i: usize) -> bool {
        matches!(self.get(i), None | Some(Value::Nil))
    }

    /// `luaL_typerror`: "<expected> expected, got <type>".
    pub(crate) fn type_error<T>(&self, i: usize, expected: &str) -> LibResult<T> {
        argerr(
            i as i32,
            format!("{expected} expected, got {}", type_name(self.get(i))),
        )
    }

    /// `lua_tonumber`: numbers and numeric strings, else `None`.
    pub(crate) fn to_number(&self, i: usize) -> Option<f64> {
        self.get(i).and_then(to_number)
    }

    /// `luaL_checknumber`.
    pub(crate) fn check_number(&self, i: usize) -> LibResult<f64> {
        match self.to_number(i) {
            Some(n) => Ok(n),
            None => self.type_error(i, "number"),
        }
    }

    /// `luaL_checkinteger`: a number truncated like C's cast.
    pub(crate) fn check_integer(&self, i: usize) -> LibResult<i64> {
        self.check_number(i).map(f64_to_i64)
    }

    /// `luaL_optinteger`.
    pub(crate) fn opt_integer(&self, i: usize, default: i64) -> LibResult<i64> {
        if self.is_none_or_nil(i) {
            Ok(default)
        } else {
            self.check_integer(i)
        }
    }

    /// `luaL_checklstring`: strings, and numbers formatted with "%.14g".
    pub(crate) fn check_bytes(&self, i: usize) -> LibResult<Vec<u8>> {
        match self.get(i) {
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(Value::Integer(n)) => Ok(fmt_g(*n as f64, 14).into_bytes()),
            Some(Value::Number(n)) => Ok(fmt_g(*n, 14).into_bytes()),
            _ => self.type_error(i, "string"),
        }
    }
}

/// `lua_tonumber` of a value.
pub(crate) fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => str_to_number(&s.as_bytes()),
        _ => None,
    }
}

/// Lua 5.1's `luaO_str2d`: strtod (or a 0x hex integer), surrounded by
/// optional whitespace, the whole string consumed.
pub(crate) fn str_to_number(s: &[u8]) -> Option<f64> {
    let (v, end) = strtod(s)?;
    let mut end = end;
    if matches!(s.get(end), Some(b'x' | b'X')) {
        // "0x..." hex integer, which strtod here did not take
        return None;
    }
    while end < s.len() && is_space(s[end]) {
        end += 1;
    }
    (end == s.len()).then_some(v)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// glibc `strtod` on a byte string: skips leading whitespace, accepts a
/// sign, decimal and hex floats, "inf"/"infinity"/"nan". Returns the value
/// and the index just past the number, or `None` when nothing was parsed.
pub(crate) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let (v, end) = strtod_unsigned(s, i)?;
    Some((if neg { -v } else { v }, end))
}

fn starts_with_ci(s: &[u8], at: usize, word: &[u8]) -> bool {
    s.len() >= at + word.len() && s[at..at + word.len()].eq_ignore_ascii_case(word)
}

fn strtod_unsigned(s: &[u8], i: usize) -> Option<(f64, usize)> {
    if starts_with_ci(s, i, b"infinity") {
        return Some((f64::INFINITY, i + 8));
    }
    if starts_with_ci(s, i, b"inf") {
        return Some((f64::INFINITY, i + 3));
    }
    if starts_with_ci(s, i, b"nan") {
        let mut end = i + 3;
        // "nan(chars)" form
        if s.get(end) == Some(&b'(') {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if s.get(j) == Some(&b')') {
                end = j + 1;
            }
        }
        return Some((f64::NAN, end));
    }
    if s.get(i) == Some(&b'0') && matches!(s.get(i + 1), Some(b'x' | b'X')) {
        if let Some(r) = strtod_hex(s, i + 2) {
            return Some(r);
        }
        // "0x" without hex digits: strtod parses the "0"
        return Some((0.0, i + 1));
    }
    strtod_decimal(s, i)
}

fn strtod_decimal(s: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let digits = |i: &mut usize| {
        let b = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - b
    };
    let mut n = digits(&mut i);
    if s.get(i) == Some(&b'.') {
        let mut j = i + 1;
        let frac = digits(&mut j);
        if n + frac > 0 {
            n += frac;
            i = j;
        }
    }
    if n == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[start..i]).ok()?;
    // Rust's parser is correctly rounded like glibc's; it rejects a
    // trailing '.' ("1."), which strtod accepts.
    let v = text
        .parse::<f64>()
        .or_else(|_| text.replace(".e", "e").trim_end_matches('.').parse::<f64>())
        .ok()?;
    Some((v, i))
}

fn strtod_hex(s: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let mut mant: f64 = 0.0;
    let mut exp: i64 = 0;
    let mut any = false;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        mant = mant * 16.0 + d as f64;
        any = true;
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        let mut j = i + 1;
        let mut frac_any = false;
        while let Some(d) = s.get(j).and_then(|c| (*c as char).to_digit(16)) {
            mant = mant * 16.0 + d as f64;
            exp -= 4;
            frac_any = true;
            j += 1;
        }
        if any || frac_any {
            any = true;
            i = j;
        }
    }
    if !any {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let neg = match s.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let b = j;
        let mut e: i64 = 0;
        while j < s.len() && s[j].is_ascii_digit() {
            e = (e * 10 + (s[j] - b'0') as i64).min(1 << 20);
            j += 1;
        }
        if j > b {
            exp += if neg { -e } else { e };
            i = j;
        }
    }
    Some((mant * 2f64.powi(exp.clamp(-4000, 4000) as i32), i))
}

/// C's `(int64_t)d` as x86-64 computes it: out of range and NaN give
/// `i64::MIN`.
pub(crate) fn f64_to_i64(d: f64) -> i64 {
    if (-TWO63..TWO63).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// 2^63 as a double.
const TWO63: f64 = 9_223_372_036_854_775_808.0;

/// C's `(uint64_t)d` as gcc compiles it on x86-64.
pub(crate) fn f64_to_u64(d: f64) -> u64 {
    if d < TWO63 {
        f64_to_i64(d) as u64
    } else {
        (f64_to_i64(d - TWO63) as u64) ^ (1 << 63)
    }
}

/// `lua_typename(lua_type(v))`, "no value" for a missing argument.
pub(crate) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// printf's `%.<prec>g`, as used by cjson and by Lua's number formatting.
pub(crate) fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let p = prec.max(1);
    // The exponent %e would print decides between %e and %f style.
    let e_repr = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = e_repr.split_once('e').unwrap_or((&e_repr, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

/// %g drops trailing zeros of the fraction, and the point if nothing is
/// left after it.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Lua 5.1's `luaL_where(L, 1)` in the running library function:
/// "short_src:line: " of its caller, or "" when that is not Lua code.
fn where_prefix(lua: &Lua) -> String {
    // level 0: the Rust function, 1: its caller
    lua.inspect_stack(1, |d| {
        let line = d.current_line()?;
        let src = d.source().short_src?.into_owned();
        Some(format!("{src}:{line}: "))
    })
    .flatten()
    .unwrap_or_default()
}

/// The name `luaL_argerror` would report for the running library function
/// (level 0), and whether it was called as a method.
fn function_name(lua: &Lua) -> (Option<String>, bool) {
    lua.inspect_stack(0, |d| {
        let n = d.names();
        (
            n.name.map(|s| s.into_owned()),
            n.name_what == Some("method"),
        )
    })
    .unwrap_or((None, false))
}

/// The message a library error raises, as lauxlib formats it.
fn render(lua: &Lua, e: LibError) -> mlua::Result<String> {
    Ok(match e {
        LibError::Lua(e) => return Err(e),
        LibError::Raw(msg) => msg,
        LibError::Error(msg) => format!("{}{msg}", where_prefix(lua)),
        LibError::Arg(mut narg, msg) => {
            let (name, method) = function_name(lua);
            if method {
                narg -= 1;
                if narg == 0 {
                    let name = name.unwrap_or_else(|| "?".into());
                    return Ok(format!(
                        "{}calling '{name}' on bad self ({msg})",
                        where_prefix(lua)
                    ));
                }
            }
            let name = name.unwrap_or_else(|| "?".into());
            format!(
                "{}bad argument #{narg} to '{name}' ({msg})",
                where_prefix(lua)
            )
        }
    })
}

/// Registers library functions into one table.
pub(crate) struct Registrar<'a> {
    lua: &'a Lua,
}

impl<'a> Registrar<'a> {
    pub(crate) fn new(lua: &'a Lua) -> mlua::Result<Self> {
        Ok(Registrar { lua })
    }

    /// A Lua function running `f` with lauxlib error semantics.
    pub(crate) fn function<F>(&self, f: F) -> mlua::Result<Function>
    where
        F: Fn(&Lua, Args) -> LibResult<MultiValue> + mlua::MaybeSend + 'static,
    {
        self.lua
            .create_function(move |lua, args: MultiValue| match f(lua, Args::new(args)) {
                Ok(vals) => Ok(vals),
                Err(e) => Err(mlua::Error::RuntimeError(render(lua, e)?)),
            })
    }

    /// Sets `t[name]` to a library function.
    pub(crate) fn set<F>(&self, t: &Table, name: &str, f: F) -> mlua::Result<()>
    where
        F: Fn(&Lua, Args) -> LibResult<MultiValue> + mlua::MaybeSend + 'static,
    {
        t.raw_set(name, self.function(f)?)
    }
}

/// One return value.
pub(crate) fn ret1(v: Value) -> LibResult<MultiValue> {
    Ok(MultiValue::from_iter([v]))
}

/// Registers the four library tables as globals of `lua`, as Redis's
/// `luaLoadLibraries` does.
pub fn open_all(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("cjson", cjson::open(lua)?)?;
    g.raw_set("struct", structlib::open(lua)?)?;
    g.raw_set("cmsgpack", cmsgpack::open(lua)?)?;
    g.raw_set("bit", bit::open(lua)?)?;
    Ok(())
}

/// Runs `code` on a fresh Lua state with the libraries loaded and returns
/// its first result as bytes (strings as is, other values through Lua's
/// `tostring`), or the error message. For differential tests against
/// redis-server, independent of the scripting engine.
pub fn eval_for_test(code: &str) -> Result<Vec<u8>, String> {
    let lua = Lua::new();
    open_all(&lua).map_err(|e| e.to_string())?;
    let run = || -> mlua::Result<Vec<u8>> {
        let v: Value = lua.load(code).set_name("@user_script").eval()?;
        Ok(match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => {
                let tostring: Function = lua.globals().get("tostring")?;
                let s: mlua::String = tostring.call(other)?;
                s.as_bytes().to_vec()
            }
        })
    };
    run().map_err(|e| innermost(&e))
}

/// The message of an error without mlua's wrapping (callback errors,
/// tracebacks).
pub fn innermost(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::WithContext { cause, .. } => innermost(cause),
        mlua::Error::RuntimeError(m) => match m.split_once("\nstack traceback:") {
            Some((msg, _)) => msg.to_string(),
            None => m.clone(),
        },
        e => e.to_string(),
    }
}
