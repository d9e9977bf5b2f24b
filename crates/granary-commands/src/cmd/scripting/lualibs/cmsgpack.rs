//! `cmsgpack`: lua-cmsgpack 0.4.0 (lua_cmsgpack.c). Integral numbers are
//! packed in the smallest int format, other numbers as float32 when
//! lossless else float64; strings always use the raw/str formats (fixstr,
//! str8, str16, str32); tables whose keys are exactly 1..n are arrays, the
//! others maps; tables nested 16 deep pack as nil. Unpacking returns every
//! value of the stream (several results).

use super::{
    argerr, f64_to_i64, lerr, Args, LibError, LibResult, Registrar, MAX_C_STACK, MAX_RESULTS,
};
use mlua::{Lua, MultiValue, Table, Value};

/// Tables nested deeper than this are packed as nil (circular references).
const MAX_NESTING: usize = 16;

// ===== encoding =====

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_double(out: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f as f64 {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Array (0x90, 0xdc, 0xdd) or map (0x80, 0xde, 0xdf) header.
fn encode_header(out: &mut Vec<u8>, n: usize, fix: u8, h16: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 65535 {
        out.push(h16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(h16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// `mp_encode_lua_number`: integral doubles that fit an int64 are ints.
fn encode_number(out: &mut Vec<u8>, n: f64) {
    if !n.is_infinite() && f64_to_i64(n) as f64 == n {
        encode_int(out, f64_to_i64(n));
    } else {
        encode_double(out, n);
    }
}

/// C's `(int)d` on x86-64: out of range and NaN give `i32::MIN`.
fn f64_to_i32(d: f64) -> i32 {
    if d.is_nan() || d >= 2_147_483_648.0 || d <= -2_147_483_649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// `table_is_an_array`: keys are exactly the integers 1..n.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max, mut array) = (0i64, 0i64, true);
    t.for_each(|k: Value, _: Value| {
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => f64::NAN,
        };
        if !array || n.is_nan() || n <= 0.0 || f64_to_i32(n) as f64 != n {
            array = false;
        } else {
            max = max.max(n as i64);
            count += 1;
        }
        Ok(())
    })?;
    Ok(array && max == count)
}

fn encode_table(out: &mut Vec<u8>, t: &Table, level: usize) -> mlua::Result<()> {
    if is_array(t)? {
        let len = t.raw_len();
        encode_header(out, len, 0x90, 0xdc);
        for i in 1..=len {
            let v: Value = t.raw_get(i)?;
            encode_value(out, &v, level + 1)?;
        }
    } else {
        let mut len = 0usize;
        t.for_each(|_: Value, _: Value| {
            len += 1;
            Ok(())
        })?;
        encode_header(out, len, 0x80, 0xde);
        t.for_each(|k: Value, v: Value| {
            encode_value(out, &k, level + 1)?;
            encode_value(out, &v, level + 1)
        })?;
    }
    Ok(())
}

/// `mp_encode_lua_type`: anything else (nil, functions, userdata, ...)
/// packs as nil.
fn encode_value(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(out, *i as f64),
        Value::Number(n) => encode_number(out, *n),
        Value::Table(t) if level < MAX_NESTING => encode_table(out, t, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn pack(lua: &Lua, a: Args) -> LibResult<MultiValue> {
    if a.len() == 0 {
        return argerr(0, "MessagePack pack needs input.");
    }
    // lua_checkstack(L, nargs) on top of the nargs arguments
    if 2 * a.len() > MAX_C_STACK {
        return argerr(0, "Too many arguments for MessagePack pack.");
    }
    let mut out = Vec::new();
    for i in 1..=a.len() {
        encode_value(&mut out, a.get(i).unwrap_or(&Value::Nil), 0)?;
    }
    super::ret1(Value::String(lua.create_string(&out)?))
}

// ===== decoding =====

/// Why decoding stopped early.
enum Stop {
    /// Input ended inside a value.
    Eof,
    /// A byte that starts no supported format.
    BadFormat,
    /// Any other error (stack overflow, table index errors, mlua).
    Fail(LibError),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Self {
        Stop::Fail(LibError::Lua(e))
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    p: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.s.len() - self.p
    }

    /// `mp_cur_need` + consume: the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        if self.left() < n {
            return Err(Stop::Eof);
        }
        let b = &self.s[self.p..self.p + n];
        self.p += n;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, Stop> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    /// `luaL_checkstack(L, 1, msg)` with `slots` values on the C stack.
    fn check_stack(slots: usize, msg: &str) -> Result<(), Stop> {
        if slots + 1 > MAX_C_STACK {
            return Err(Stop::Fail(LibError::Error(format!(
                "stack overflow ({msg})"
            ))));
        }
        Ok(())
    }

    /// `mp_decode_to_lua_type`; `slots` counts the values the C decoder
    /// would have on the Lua stack, which bounds results and nesting.
    fn decode(&mut self, lua: &Lua, slots: usize) -> Result<Value, Stop> {
        if self.left() < 1 {
            return Err(Stop::Eof);
        }
        Self::check_stack(
            slots,
            "too many return values at once; use unpack_one or unpack_limit instead.",
        )?;
        let b = self.s[self.p];
        let num = |n: f64| Ok(Value::Number(n));
        match b {
            0xcc..=0xcf => {
                self.p += 1;
                let n = self.be(1 << (b - 0xcc))?;
                // lua_pushinteger: uint64 beyond i64 wraps negative
                num(n as i64 as f64)
            }
            0xd0..=0xd3 => {
                self.p += 1;
                let size = 1 << (b - 0xd0);
                let n = self.be(size)?;
                let shift = 64 - 8 * size as u32;
                num(((n << shift) as i64 >> shift) as f64)
            }
            0xc0 => {
                self.p += 1;
                Ok(Value::Nil)
            }
            0xc2 | 0xc3 => {
                self.p += 1;
                Ok(Value::Boolean(b == 0xc3))
            }
            0xca => {
                self.p += 1;
                let n = self.be(4)?;
                num(f32::from_bits(n as u32) as f64)
            }
            0xcb => {
                self.p += 1;
                let n = self.be(8)?;
                num(f64::from_bits(n))
            }
            0xd9..=0xdb => {
                self.p += 1;
                let len = self.be(1 << (b - 0xd9))?;
                self.string(lua, len as usize)
            }
            0xdc | 0xdd => {
                self.p += 1;
                let len = self.be(2 << (b - 0xdc))?;
                super::deep(|| self.array(lua, len as usize, slots))
            }
            0xde | 0xdf => {
                self.p += 1;
                let len = self.be(2 << (b - 0xde))?;
                super::deep(|| self.map(lua, len as usize, slots))
            }
            _ if b & 0x80 == 0 => {
                self.p += 1;
                num(b as f64)
            }
            _ if b & 0xe0 == 0xe0 => {
                self.p += 1;
                num(b as i8 as f64)
            }
            _ if b & 0xe0 == 0xa0 => {
                self.p += 1;
                self.string(lua, (b & 0x1f) as usize)
            }
            _ if b & 0xf0 == 0x90 => {
                self.p += 1;
                super::deep(|| self.array(lua, (b & 0xf) as usize, slots))
            }
            _ if b & 0xf0 == 0x80 => {
                self.p += 1;
                super::deep(|| self.map(lua, (b & 0xf) as usize, slots))
            }
            _ => Err(Stop::BadFormat),
        }
    }

    fn string(&mut self, lua: &Lua, len: usize) -> Result<Value, Stop> {
        let s = self.take(len)?;
        Ok(Value::String(lua.create_string(s)?))
    }

    fn array(&mut self, lua: &Lua, len: usize, slots: usize) -> Result<Value, Stop> {
        let t = lua.create_table()?;
        Self::check_stack(slots + 1, "in function mp_decode_to_lua_array")?;
        for i in 1..=len {
            let v = self.decode(lua, slots + 2)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, len: usize, slots: usize) -> Result<Value, Stop> {
        let t = lua.create_table()?;
        for _ in 0..len {
            let k = self.decode(lua, slots + 1)?;
            let v = self.decode(lua, slots + 2)?;
            match k {
                Value::Nil => return Err(Stop::Fail(LibError::Raw("table index is nil".into()))),
                Value::Number(n) if n.is_nan() => {
                    return Err(Stop::Fail(LibError::Raw("table index is NaN".into())))
                }
                k => t.raw_set(k, v)?,
            }
        }
        Ok(Value::Table(t))
    }
}

/// `mp_unpack_full`: decodes up to `limit` values from `offset` (both 0:
/// everything, without the leading next-offset result).
fn unpack_full(lua: &Lua, a: &Args, limit: i64, offset: i64) -> LibResult<MultiValue> {
    let s = a.check_bytes(1)?;
    let len = s.len();
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return lerr(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        ));
    } else if offset as u64 > len as u64 {
        return lerr(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        ));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut c = Cursor {
        s: &s,
        p: offset as usize,
    };
    let mut out: Vec<Value> = Vec::new();
    // the next-offset result takes one of the callback's result slots
    let max_values = MAX_RESULTS - usize::from(!decode_all);
    while c.left() > 0 && (out.len() as i64) < limit {
        if out.len() == max_values {
            return lerr(
                "stack overflow (too many return values at once; \
                 use unpack_one or unpack_limit instead.)",
            );
        }
        match c.decode(lua, 1 + out.len()) {
            Ok(v) => out.push(v),
            Err(Stop::Eof) => return lerr("Missing bytes in input."),
            Err(Stop::BadFormat) => return lerr("Bad data format in input."),
            Err(Stop::Fail(e)) => return Err(e),
        }
    }
    if !decode_all {
        if 1 + out.len() + 1 > MAX_C_STACK {
            return lerr("stack overflow (in function mp_unpack_full)");
        }
        let next = if c.left() == 0 { -1.0 } else { c.p as f64 };
        out.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_iter(out))
}

/// Creates the `cmsgpack` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let r = Registrar::new(lua)?;
    let t = lua.create_table()?;
    r.set(&t, "pack", pack)?;
    r.set(&t, "unpack", |lua, a| unpack_full(lua, &a, 0, 0))?;
    r.set(&t, "unpack_one", |lua, a| {
        let offset = a.opt_integer(2, 0)?;
        unpack_full(lua, &a, 1, offset)
    })?;
    r.set(&t, "unpack_limit", |lua, a| {
        let limit = a.check_integer(2)?;
        let offset = a.opt_integer(3, 0)?;
        unpack_full(lua, &a, limit, offset)
    })?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}
