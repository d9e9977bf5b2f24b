//! `cjson`: Lua CJSON 2.1.0 as Redis ships it (lua_cjson.c, fpconv.c).
//! Numbers are formatted with `%.14g`, '/' is escaped as `\/`, empty
//! tables encode as `{}`, JSON null decodes to `cjson.null` (a NULL
//! lightuserdata), and the parser keeps C string semantics (a NUL byte
//! ends the input).

use super::{
    argerr, fmt_g, lerr, strtod, type_name, Args, LibError, LibResult, Registrar, MAX_C_STACK,
};
use mlua::{Lua, MultiValue, Table, Value};
use std::sync::Arc;

/// Settings of one cjson instance (`cjson` itself or `cjson.new()`).
#[derive(Clone, Debug)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0: error, 1: encode as inf/nan, 2: encode as null.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    encode_keep_buffer: i32,
    number_precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            encode_keep_buffer: 1,
            number_precision: 14,
        }
    }
}

type Shared = Arc<parking_lot::Mutex<Config>>;

// ===== configuration functions =====

/// `json_arg_init`: at most `n` arguments.
fn arg_init(a: &Args, n: usize) -> LibResult<()> {
    if a.len() > n {
        return argerr(n as i32 + 1, "found too many arguments");
    }
    Ok(())
}

/// `json_integer_option`: sets an integer in `min..=max` when given and
/// returns the current value. Range errors always name argument 1.
fn integer_option(a: &Args, i: usize, setting: &mut i32, min: i32, max: i32) -> LibResult<Value> {
    if !a.is_none_or_nil(i) {
        // luaL_checkinteger's value is stored in a C int
        let v = a.check_integer(i)? as i32;
        if !(min <= v && v <= max) {
            return argerr(1, format!("expected integer between {min} and {max}"));
        }
        *setting = v;
    }
    Ok(Value::Number(*setting as f64))
}

/// `json_enum_option`: an option given as a boolean or one of `options`;
/// returns it as a boolean when it is 0 or 1, else as its name.
fn enum_option(
    lua: &Lua,
    a: &Args,
    i: usize,
    setting: &mut i32,
    options: &[&str],
) -> LibResult<Value> {
    if !a.is_none_or_nil(i) {
        if let Some(Value::Boolean(b)) = a.get(i) {
            *setting = *b as i32;
        } else {
            let name = a.check_bytes(i)?;
            match options.iter().position(|o| o.as_bytes() == name.as_slice()) {
                Some(p) => *setting = p as i32,
                None => {
                    return argerr(
                        i as i32,
                        format!("invalid option '{}'", String::from_utf8_lossy(&name)),
                    )
                }
            }
        }
    }
    Ok(match *setting {
        0 | 1 => Value::Boolean(*setting == 1),
        n => Value::String(lua.create_string(options[n as usize])?),
    })
}

const BOOL_OPTIONS: &[&str] = &["off", "on"];

fn multi(vals: Vec<Value>) -> LibResult<MultiValue> {
    Ok(MultiValue::from_iter(vals))
}

// ===== encoding =====

struct Encoder<'a> {
    cfg: &'a Config,
    out: Vec<u8>,
}

/// `json_encode_exception`.
fn cannot_serialise<T>(what: Option<&Value>, reason: &str) -> LibResult<T> {
    lerr(format!("Cannot serialise {}: {reason}", type_name(what)))
}

/// The escape cjson writes for a byte, if any.
fn escape(c: u8) -> Option<&'static [u8]> {
    Some(match c {
        b'\x08' => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        b'\x0c' => b"\\f",
        b'\r' => b"\\r",
        b'"' => b"\\\"",
        b'/' => b"\\/",
        b'\\' => b"\\\\",
        _ => return None,
    })
}

impl Encoder<'_> {
    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &c in s {
            if let Some(e) = escape(c) {
                self.out.extend_from_slice(e);
            } else if c < 0x20 || c == 0x7f {
                self.out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
            } else {
                self.out.push(c);
            }
        }
        self.out.push(b'"');
    }

    /// `json_append_number`.
    fn number(&mut self, n: f64) -> LibResult<()> {
        let invalid = n.is_nan() || n.is_infinite();
        match self.cfg.encode_invalid_numbers {
            0 if invalid => {
                return cannot_serialise(Some(&Value::Number(n)), "must not be NaN or Inf")
            }
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if invalid => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let s = fmt_g(n, self.cfg.number_precision as usize);
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// `json_append_data`: `slots` is how many values the C encoder would
    /// have on the Lua stack, which bounds nesting like lua_checkstack.
    fn value(&mut self, v: &Value, depth: i32, slots: usize) -> LibResult<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(n) => self.number(*n as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > self.cfg.encode_max_depth || slots + 3 > MAX_C_STACK {
                    return lerr(format!("Cannot serialise, excessive nesting ({depth})"));
                }
                super::deep(|| match self.array_length(t)? {
                    Some(len) if len > 0 => self.array(t, len, depth, slots),
                    _ => self.object(t, depth, slots),
                })?;
            }
            other => return cannot_serialise(Some(other), "type not supported"),
        }
        Ok(())
    }

    /// `lua_array_length`: `Some(max index)` when all keys are positive
    /// integers (and the array is not excessively sparse), else `None`.
    fn array_length(&self, t: &Table) -> LibResult<Option<i32>> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        let mut is_array = true;
        t.for_each(|k: Value, _: Value| {
            if !is_array {
                return Ok(());
            }
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => f64::NAN,
            };
            if k != 0.0 && !k.is_nan() && k.floor() == k && k >= 1.0 {
                // C stores the double in an int: out of range gives INT_MIN
                if k > max as f64 {
                    max = if k < 2_147_483_648.0 {
                        k as i32
                    } else {
                        i32::MIN
                    };
                }
                items += 1;
            } else {
                is_array = false;
            }
            Ok(())
        })?;
        if !is_array {
            return Ok(None);
        }
        let cfg = self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if cfg.sparse_convert == 0 {
                return lerr("Cannot serialise table: excessively sparse array");
            }
            return Ok(None);
        }
        Ok(Some(max))
    }

    fn array(&mut self, t: &Table, len: i32, depth: i32, slots: usize) -> LibResult<()> {
        self.out.push(b'[');
        for i in 1..=len {
            if i > 1 {
                self.out.push(b',');
            }
            let v: Value = t.raw_get(i)?;
            self.value(&v, depth, slots + 1)?;
        }
        self.out.push(b']');
        Ok(())
    }

    fn object(&mut self, t: &Table, depth: i32, slots: usize) -> LibResult<()> {
        self.out.push(b'{');
        let mut first = true;
        let mut failure: Option<LibError> = None;
        t.for_each(|k: Value, v: Value| {
            if failure.is_some() {
                return Ok(());
            }
            if let Err(e) = self.pair(&k, &v, first, depth, slots) {
                failure = Some(e);
            }
            first = false;
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.out.push(b'}');
        Ok(())
    }

    fn pair(
        &mut self,
        k: &Value,
        v: &Value,
        first: bool,
        depth: i32,
        slots: usize,
    ) -> LibResult<()> {
        if !first {
            self.out.push(b',');
        }
        match k {
            Value::Integer(_) | Value::Number(_) => {
                let n = super::to_number(k).unwrap_or(0.0);
                self.out.push(b'"');
                self.number(n)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            other => return cannot_serialise(Some(other), "table key must be a number or string"),
        }
        self.value(v, depth, slots + 2)
    }
}

fn encode(lua: &Lua, cfg: &Config, a: &Args) -> LibResult<MultiValue> {
    if a.len() != 1 {
        return argerr(1, "expected 1 argument");
    }
    let mut enc = Encoder {
        cfg,
        out: Vec::new(),
    };
    enc.value(a.get(1).unwrap_or(&Value::Nil), 0, 1)?;
    super::ret1(Value::String(lua.create_string(&enc.out)?))
}

// ===== decoding =====

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    /// A lexical error, with its description.
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Number => "T_NUMBER",
            Tok::Boolean => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Token {
    tok: Tok,
    /// 0-based offset of the token (of the error for `Tok::Error`).
    index: usize,
    string: Vec<u8>,
    number: f64,
    boolean: bool,
}

struct Parser<'a> {
    data: &'a [u8],
    ptr: usize,
    cfg: &'a Config,
    depth: i32,
}

fn hex_digit(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

fn push_utf8(out: &mut Vec<u8>, cp: u32) -> bool {
    if let Some(ch) = char::from_u32(cp) {
        let mut b = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
        true
    } else {
        false
    }
}

impl Parser<'_> {
    /// The byte at `i`, with the C string's terminating NUL past the end.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn token(&self, tok: Tok, index: usize) -> Token {
        Token {
            tok,
            index,
            string: Vec::new(),
            number: 0.0,
            boolean: false,
        }
    }

    fn error_token(&self, what: &'static str) -> Token {
        self.token(Tok::Error(what), self.ptr)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, i| Some(acc * 16 + hex_digit(self.at(at + i))?))
    }

    /// `json_append_unicode_escape`: at `\uXXXX` (maybe a surrogate pair).
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        if !push_utf8(out, cp) {
            return false;
        }
        self.ptr += len;
        true
    }

    fn string_token(&mut self) -> Token {
        let start = self.ptr;
        self.ptr += 1;
        let mut s = Vec::new();
        loop {
            let mut ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.error_token("unexpected end of string");
            }
            if ch == b'\\' {
                ch = match self.at(self.ptr + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape(&mut s) {
                            continue;
                        }
                        return self.error_token("invalid unicode escape code");
                    }
                    _ => return self.error_token("invalid escape code"),
                };
                self.ptr += 1;
            }
            s.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        let mut t = self.token(Tok::Str, start);
        t.string = s;
        t
    }

    /// `json_is_invalid_number`: forms strtod accepts but JSON does not.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).eq_ignore_ascii_case(&w[i]));
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Token {
        let start = self.ptr;
        // strtod stops at the C string's NUL
        let end = self.data[start..]
            .iter()
            .position(|&c| c == 0)
            .map_or(self.data.len(), |p| start + p);
        match strtod(&self.data[start..end]) {
            Some((n, len)) if len > 0 => {
                self.ptr += len;
                let mut t = self.token(Tok::Number, start);
                t.number = n;
                t
            }
            _ => self.error_token("invalid number"),
        }
    }

    fn starts_with(&self, w: &[u8]) -> bool {
        self.data[self.ptr..].starts_with(w)
    }

    /// `json_next_token`.
    fn next(&mut self) -> Token {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        let index = self.ptr;
        let ch = self.at(self.ptr);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            0 => return self.token(Tok::End, index),
            _ => None,
        };
        if let Some(tok) = single {
            self.ptr += 1;
            return self.token(tok, index);
        }
        if !matches!(
            ch,
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-'
        ) && !ch.is_ascii_digit()
        {
            return self.error_token("invalid token");
        }
        if ch == b'"' {
            return self.string_token();
        }
        if ch == b'-' || ch.is_ascii_digit() {
            if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                return self.error_token("invalid number");
            }
            return self.number_token();
        }
        let literal = [
            (&b"true"[..], Tok::Boolean, true),
            (&b"false"[..], Tok::Boolean, false),
            (&b"null"[..], Tok::Null, false),
        ];
        for (word, tok, b) in literal {
            if self.starts_with(word) {
                self.ptr += word.len();
                let mut t = self.token(tok, index);
                t.boolean = b;
                return t;
            }
        }
        if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() {
            return self.number_token();
        }
        self.error_token("invalid token")
    }

    fn parse_error<T>(&self, expected: &str, t: &Token) -> LibResult<T> {
        lerr(format!(
            "Expected {expected} but found {} at character {}",
            t.tok.name(),
            t.index + 1
        ))
    }

    /// `json_decode_descend`: nesting and Lua stack limits.
    fn descend(&mut self, slots: usize, needed: usize) -> LibResult<()> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && slots + needed <= MAX_C_STACK {
            return Ok(());
        }
        lerr(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.ptr
        ))
    }

    fn object(&mut self, lua: &Lua, slots: usize) -> LibResult<Value> {
        self.descend(slots, 3)?;
        let t = lua.create_table()?;
        let mut tok = self.next();
        if tok.tok == Tok::ObjEnd {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            if tok.tok != Tok::Str {
                return self.parse_error("object key string", &tok);
            }
            let key = lua.create_string(&tok.string)?;
            tok = self.next();
            if tok.tok != Tok::Colon {
                return self.parse_error("colon", &tok);
            }
            tok = self.next();
            let v = self.value(lua, &tok, slots + 2)?;
            t.raw_set(key, v)?;
            tok = self.next();
            if tok.tok == Tok::ObjEnd {
                self.depth -= 1;
                return Ok(Value::Table(t));
            }
            if tok.tok != Tok::Comma {
                return self.parse_error("comma or object end", &tok);
            }
            tok = self.next();
        }
    }

    fn array(&mut self, lua: &Lua, slots: usize) -> LibResult<Value> {
        self.descend(slots, 2)?;
        let t = lua.create_table()?;
        let mut tok = self.next();
        if tok.tok == Tok::ArrEnd {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1usize;
        loop {
            let v = self.value(lua, &tok, slots + 1)?;
            t.raw_set(i, v)?;
            i += 1;
            tok = self.next();
            if tok.tok == Tok::ArrEnd {
                self.depth -= 1;
                return Ok(Value::Table(t));
            }
            if tok.tok != Tok::Comma {
                return self.parse_error("comma or array end", &tok);
            }
            tok = self.next();
        }
    }

    /// `json_process_value`.
    fn value(&mut self, lua: &Lua, tok: &Token, slots: usize) -> LibResult<Value> {
        Ok(match tok.tok {
            Tok::Str => Value::String(lua.create_string(&tok.string)?),
            Tok::Number => Value::Number(tok.number),
            Tok::Boolean => Value::Boolean(tok.boolean),
            Tok::ObjBegin => super::deep(|| self.object(lua, slots))?,
            Tok::ArrBegin => super::deep(|| self.array(lua, slots))?,
            Tok::Null => Value::NULL,
            _ => return self.parse_error("value", tok),
        })
    }
}

fn decode(lua: &Lua, cfg: &Config, a: &Args) -> LibResult<MultiValue> {
    if a.len() != 1 {
        return argerr(1, "expected 1 argument");
    }
    let data = a.check_bytes(1)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return lerr("JSON parser does not support UTF-16 or UTF-32");
    }
    let mut p = Parser {
        data: &data,
        ptr: 0,
        cfg,
        depth: 0,
    };
    let tok = p.next();
    let v = p.value(lua, &tok, 1)?;
    let tok = p.next();
    if tok.tok != Tok::End {
        return p.parse_error("the end", &tok);
    }
    super::ret1(v)
}

// ===== module =====

/// Creates a `cjson` table with its own configuration (`cjson.new`).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let r = Registrar::new(lua)?;
    let t = lua.create_table()?;
    let cfg: Shared = Arc::default();

    let c = cfg.clone();
    r.set(&t, "encode", move |lua, a| {
        let cfg = c.lock().clone();
        encode(lua, &cfg, &a)
    })?;
    let c = cfg.clone();
    r.set(&t, "decode", move |lua, a| {
        let cfg = c.lock().clone();
        decode(lua, &cfg, &a)
    })?;
    let c = cfg.clone();
    r.set(&t, "encode_sparse_array", move |lua, a| {
        arg_init(&a, 3)?;
        let mut g = c.lock();
        let convert = enum_option(lua, &a, 1, &mut g.sparse_convert, BOOL_OPTIONS)?;
        let ratio = integer_option(&a, 2, &mut g.sparse_ratio, 0, i32::MAX)?;
        let safe = integer_option(&a, 3, &mut g.sparse_safe, 0, i32::MAX)?;
        multi(vec![convert, ratio, safe])
    })?;
    let c = cfg.clone();
    r.set(&t, "encode_max_depth", move |_, a| {
        arg_init(&a, 1)?;
        super::ret1(integer_option(
            &a,
            1,
            &mut c.lock().encode_max_depth,
            1,
            i32::MAX,
        )?)
    })?;
    let c = cfg.clone();
    r.set(&t, "decode_max_depth", move |_, a| {
        arg_init(&a, 1)?;
        super::ret1(integer_option(
            &a,
            1,
            &mut c.lock().decode_max_depth,
            1,
            i32::MAX,
        )?)
    })?;
    let c = cfg.clone();
    r.set(&t, "encode_number_precision", move |_, a| {
        arg_init(&a, 1)?;
        super::ret1(integer_option(
            &a,
            1,
            &mut c.lock().number_precision,
            1,
            14,
        )?)
    })?;
    let c = cfg.clone();
    r.set(&t, "encode_keep_buffer", move |lua, a| {
        arg_init(&a, 1)?;
        let mut g = c.lock();
        super::ret1(enum_option(
            lua,
            &a,
            1,
            &mut g.encode_keep_buffer,
            BOOL_OPTIONS,
        )?)
    })?;
    let c = cfg.clone();
    r.set(&t, "encode_invalid_numbers", move |lua, a| {
        arg_init(&a, 1)?;
        let mut g = c.lock();
        let opts = &["off", "on", "null"];
        super::ret1(enum_option(
            lua,
            &a,
            1,
            &mut g.encode_invalid_numbers,
            opts,
        )?)
    })?;
    let c = cfg;
    r.set(&t, "decode_invalid_numbers", move |lua, a| {
        arg_init(&a, 1)?;
        let mut g = c.lock();
        super::ret1(enum_option(
            lua,
            &a,
            1,
            &mut g.decode_invalid_numbers,
            BOOL_OPTIONS,
        )?)
    })?;
    r.set(&t, "new", |lua, _| super::ret1(Value::Table(open(lua)?)))?;
    t.raw_set("null", Value::NULL)?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}
