//! `struct`: Roberto Ierusalimschy's lua_struct.c (with Redis's security
//! fixes): `pack`, `unpack` and `size` over a format language of
//! endianness (`<` `>`), alignment (`!n`), integers (`b B h H l L T` and
//! `i I` with an optional byte size), `f`, `d`, `x` padding, `c` counted
//! strings and `s` zero-terminated strings. Sizes are x86-64's (long and
//! size_t are 8 bytes, int 4, maximum alignment 8).

use super::{
    argerr, f64_to_i64, f64_to_u64, lerr, to_number, Args, LibResult, Registrar, MAX_C_STACK,
    MAX_RESULTS,
};
use mlua::{Lua, MultiValue, Table, Value};

/// Largest integral size `i`/`I` accept.
const MAXINTSIZE: usize = 32;
/// Default for `!` without a number: the alignment of a double.
const MAXALIGN: usize = 8;

struct Header {
    big: bool,
    align: usize,
}

impl Header {
    /// x86-64 is little endian; no alignment by default.
    fn new() -> Self {
        Header {
            big: false,
            align: 1,
        }
    }
}

/// A cursor over the format string.
struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// `getnum`: a decimal count, or `df` when none follows.
    fn num(&mut self, df: usize) -> LibResult<usize> {
        if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return lerr("integral size overflow");
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }

    /// `optsize`: the byte size of option `opt` (0 for non-data options).
    fn size_of(&mut self, opt: u8) -> LibResult<usize> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let sz = self.num(4)?;
                if sz > MAXINTSIZE {
                    return lerr(format!(
                        "integral size {sz} is larger than limit of {MAXINTSIZE}"
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is
    /// an invalid option.
    fn control(&mut self, opt: u8, h: &mut Header) -> LibResult<()> {
        match opt {
            b' ' => {}
            b'>' => h.big = true,
            b'<' => h.big = false,
            b'!' => {
                let a = self.num(MAXALIGN)?;
                if !(a > 0 && a & (a - 1) == 0) {
                    return lerr(format!("alignment {} is not a power of 2", a as i32));
                }
                h.align = a;
            }
            _ => {
                return argerr(1, format!("invalid format option '{}'", opt as char));
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding needed before an item of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

fn is_integer_opt(opt: u8) -> bool {
    matches!(
        opt,
        b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I'
    )
}

/// `putinteger`: the number converted like C's casts, `size` bytes
/// (bytes past the 8 of a C long are 0).
fn put_integer(out: &mut Vec<u8>, n: f64, big: bool, size: usize) {
    let value = if n < 0.0 {
        f64_to_i64(n) as u64
    } else {
        f64_to_u64(n)
    };
    let mut le: Vec<u8> = (0..size)
        .map(|i| if i < 8 { (value >> (8 * i)) as u8 } else { 0 })
        .collect();
    if big {
        le.reverse();
    }
    out.extend_from_slice(&le);
}

/// `getinteger`: sign-extends from the item's top bit.
fn get_integer(buf: &[u8], big: bool, signed: bool) -> f64 {
    let size = buf.len();
    // most significant byte first; C keeps only the low 8 bytes
    let fold = |l: u64, b: &u8| (l << 8) | *b as u64;
    let mut l = if big {
        buf.iter().fold(0, fold)
    } else {
        buf.iter().rev().fold(0, fold)
    };
    if !signed {
        return l as f64;
    }
    // C shifts by (size*8 - 1) with x86's count masking
    let mask = u64::MAX.wrapping_shl((size * 8).wrapping_sub(1) as u32);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// Floats are stored in native (little endian) order unless `>` is set.
fn ordered<const N: usize>(mut b: [u8; N], big: bool) -> [u8; N] {
    if big {
        b.reverse();
    }
    b
}

fn pack(lua: &Lua, mut a: Args) -> LibResult<MultiValue> {
    let fmt = a.check_bytes(1)?;
    // b_pack pushes a nil above its arguments: a missing argument right
    // after the last one reads as nil, not "no value"
    a.push_nil();
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size_of(opt)?;
        out.resize(out.len() + to_align(out.len(), &h, opt, size), 0);
        match opt {
            o if is_integer_opt(o) => {
                let n = a.check_number(arg)?;
                arg += 1;
                put_integer(&mut out, n, h.big, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = a.check_number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&ordered(v.to_le_bytes(), h.big));
            }
            b'd' => {
                let v = a.check_number(arg)?;
                arg += 1;
                out.extend_from_slice(&ordered(v.to_le_bytes(), h.big));
            }
            b'c' | b's' => {
                let s = a.check_bytes(arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // lua_struct.c reports the index after the string's
                    return argerr(arg as i32, "string too short");
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h)?,
        }
    }
    super::ret1(Value::String(lua.create_string(&out)?))
}

fn unpack(lua: &Lua, a: Args) -> LibResult<MultiValue> {
    let fmt = a.check_bytes(1)?;
    let data = a.check_bytes(2)?;
    let ld = data.len();
    let start = a.opt_integer(3, 1)?;
    if start <= 0 {
        return argerr(3, "offset must be 1 or greater");
    }
    let mut pos = (start - 1) as usize;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    let mut res: Vec<Value> = Vec::new();
    let too_short = || argerr(2, "data string too short");
    while let Some(opt) = f.next() {
        let mut size = f.size_of(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return too_short();
        }
        // luaL_checkstack(L, 2, ...) over the 2 arguments and the results
        if 2 + res.len() + 2 > MAX_C_STACK || res.len() + 1 >= MAX_RESULTS {
            return lerr("stack overflow (too many results)");
        }
        match opt {
            o if is_integer_opt(o) => {
                let v = get_integer(&data[pos..pos + size], h.big, o.is_ascii_lowercase());
                res.push(Value::Number(v));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().unwrap_or_default();
                res.push(Value::Number(f32::from_le_bytes(ordered(b, h.big)) as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().unwrap_or_default();
                res.push(Value::Number(f64::from_le_bytes(ordered(b, h.big))));
            }
            b'c' => {
                if size == 0 {
                    let prev = res.last().and_then(to_number);
                    let Some(n) = prev else {
                        return lerr("format 'c0' needs a previous size");
                    };
                    res.pop();
                    size = f64_to_u64(n) as usize;
                    if size > ld || pos > ld - size {
                        return too_short();
                    }
                }
                res.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&c| c == 0) else {
                    return lerr("unfinished string in data");
                };
                res.push(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => f.control(opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    res.push(Value::Number((pos as f64) + 1.0));
    Ok(MultiValue::from_iter(res))
}

fn size(_: &Lua, a: Args) -> LibResult<MultiValue> {
    let fmt = a.check_bytes(1)?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = f.size_of(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return argerr(1, "option 's' has no fixed size");
        } else if opt == b'c' && size == 0 {
            return argerr(1, "option 'c0' has no fixed size");
        }
        // unknown letters and digits are silently skipped here
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    super::ret1(Value::Number(pos as f64))
}

/// Creates the `struct` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let r = Registrar::new(lua)?;
    let t = lua.create_table()?;
    r.set(&t, "pack", pack)?;
    r.set(&t, "unpack", unpack)?;
    r.set(&t, "size", size)?;
    Ok(t)
}
