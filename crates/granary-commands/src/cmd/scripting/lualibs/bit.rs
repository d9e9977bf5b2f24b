//! `bit`: LuaBitOp 1.0.2 (lua_bit.c). Operands are normalised to 32-bit
//! integers and results are signed 32-bit numbers (`bit.tobit(0xffffffff)
//! == -1`).

use super::{ret1, Args, LibResult, Registrar};
use mlua::{Lua, MultiValue, Table, Value};

/// `barg`: the argument as 32 bits. LuaBitOp adds 2^52+2^51 to the double
/// and keeps the low word of its representation, which rounds to nearest
/// even and wraps modulo 2^32; a non-number fails only when that gives 0.
fn barg(args: &Args, i: usize) -> LibResult<u32> {
    let n = args.to_number(i).unwrap_or(0.0);
    let b = (n + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && args.to_number(i).is_none() {
        return args.type_error(i, "number");
    }
    Ok(b)
}

/// `BRET`: results are pushed as signed 32-bit numbers.
fn bret(b: u32) -> LibResult<MultiValue> {
    ret1(Value::Number(b as i32 as f64))
}

fn fold(args: &Args, op: fn(u32, u32) -> u32) -> LibResult<MultiValue> {
    let mut b = barg(args, 1)?;
    // LuaBitOp reads the operands from the last one down
    for i in (2..=args.len()).rev() {
        b = op(b, barg(args, i)?);
    }
    bret(b)
}

fn shift(args: &Args, op: fn(u32, u32) -> u32) -> LibResult<MultiValue> {
    let b = barg(args, 1)?;
    let n = barg(args, 2)? & 31;
    bret(op(b, n))
}

fn tohex(lua: &Lua, args: &Args) -> LibResult<MultiValue> {
    let mut b = barg(args, 1)?;
    let mut n = if args.get(2).is_none() {
        8
    } else {
        barg(args, 2)? as i32
    };
    let mut digits = b"0123456789abcdef";
    if n < 0 {
        n = n.wrapping_neg();
        digits = b"0123456789ABCDEF";
    }
    // i32::MIN stays negative after negation: C would push garbage, we
    // push an empty string
    let n = n.clamp(0, 8) as usize;
    let mut buf = vec![0u8; n];
    for c in buf.iter_mut().rev() {
        *c = digits[(b & 15) as usize];
        b >>= 4;
    }
    ret1(Value::String(lua.create_string(&buf)?))
}

/// Creates the `bit` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let r = Registrar::new(lua)?;
    let t = lua.create_table()?;
    r.set(&t, "tobit", |_, a| bret(barg(&a, 1)?))?;
    r.set(&t, "bnot", |_, a| bret(!barg(&a, 1)?))?;
    r.set(&t, "band", |_, a| fold(&a, |x, y| x & y))?;
    r.set(&t, "bor", |_, a| fold(&a, |x, y| x | y))?;
    r.set(&t, "bxor", |_, a| fold(&a, |x, y| x ^ y))?;
    r.set(&t, "lshift", |_, a| shift(&a, |b, n| b << n))?;
    r.set(&t, "rshift", |_, a| shift(&a, |b, n| b >> n))?;
    r.set(&t, "arshift", |_, a| {
        shift(&a, |b, n| ((b as i32) >> n) as u32)
    })?;
    r.set(&t, "rol", |_, a| shift(&a, |b, n| b.rotate_left(n)))?;
    r.set(&t, "ror", |_, a| shift(&a, |b, n| b.rotate_right(n)))?;
    r.set(&t, "bswap", |_, a| bret(barg(&a, 1)?.swap_bytes()))?;
    r.set(&t, "tohex", |lua, a| tohex(lua, &a))?;
    Ok(t)
}
