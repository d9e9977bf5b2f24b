//! Bitmap commands (Redis's bitops.c): strings addressed bit by bit, bit 0
//! being the most significant bit of byte 0.
//!
//! Counting and searching work on whole 64-bit words, masking only the
//! partial bytes at the ends of a BIT range, so BITCOUNT/BITPOS/BITOP over
//! megabyte strings run at memory speed.

use crate::cmd::string::{from_buf, take_buf};
use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use granary_keyspace::Value;
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "bitmap";
const K1: Keys = Keys::Range(1, 1, 1);

pub static COMMANDS: &[Spec] = &[
    Spec::new("setbit", 4, WRITE | DENYOOM, K1, setbit).group(G, "2.2.0").doc("Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    Spec::new("getbit", 3, READONLY | FAST, K1, getbit).group(G, "2.2.0").doc("Returns a bit value by offset."),
    Spec::new("bitcount", -2, READONLY, K1, bitcount).group(G, "2.6.0").doc("Counts the number of set bits (population counting) in a string."),
    Spec::new("bitpos", -3, READONLY, K1, bitpos).group(G, "2.8.7").doc("Finds the first set (1) or clear (0) bit in a string."),
    Spec::new("bitop", -4, WRITE | DENYOOM, Keys::Range(2, -1, 1), bitop).group(G, "2.6.0").doc("Performs bitwise operations on multiple strings, and stores the result."),
    Spec::new("bitfield", -2, WRITE | DENYOOM, K1, bitfield).group(G, "3.2.0").doc("Performs arbitrary bitfield integer operations on strings."),
    Spec::new("bitfield_ro", -2, READONLY | FAST, K1, bitfield_ro).group(G, "6.0.0").doc("Performs arbitrary read-only bitfield integer operations on strings."),
];

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

// ------------------------------------------------------------ arguments

/// A bit offset: a non-negative integer whose byte lies within
/// proto-max-bulk-len. BITFIELD also takes `#n`, meaning n fields of
/// `width` bits.
fn parse_offset(c: &Ctx, arg: &[u8], width: Option<u32>) -> Result<u64, CmdError> {
    let (digits, scale) = match (arg.first(), width) {
        (Some(b'#'), Some(w)) => (&arg[1..], i64::from(w)),
        _ => (arg, 1),
    };
    let max_bytes = c.server.config.hot.proto_max_bulk_len.load(Relaxed);
    match parse_i64(digits) {
        Ok(n) => {
            let bits = n.wrapping_mul(scale);
            if bits < 0 || (bits >> 3) >= max_bytes {
                Err(BAD_OFFSET.into())
            } else {
                Ok(bits as u64)
            }
        }
        Err(_) => Err(BAD_OFFSET.into()),
    }
}

/// The optional `BYTE|BIT` unit of BITCOUNT and BITPOS ranges.
fn parse_unit(arg: Option<&[u8]>) -> Result<bool, CmdError> {
    match arg {
        None => Ok(false),
        Some(a) if is(a, "bit") => Ok(true),
        Some(a) if is(a, "byte") => Ok(false),
        Some(_) => Err(err::SYNTAX.into()),
    }
}

/// Resolves a Redis start/end range (negative counts from the end) over
/// `len` units into an inclusive one, or None when it is empty.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(u64, u64)> {
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    (start <= end).then_some((start as u64, end as u64))
}

/// Converts a range in the given unit to an inclusive bit range.
fn bit_range(range: (u64, u64), in_bits: bool) -> (u64, u64) {
    if in_bits {
        range
    } else {
        (range.0 * 8, range.1 * 8 + 7)
    }
}

// ------------------------------------------------------------ bit primitives

fn get_bit(bytes: &[u8], bit: u64) -> bool {
    bytes
        .get((bit >> 3) as usize)
        .is_some_and(|b| b & (0x80 >> (bit & 7)) != 0)
}

fn set_bit(bytes: &mut [u8], bit: u64, on: bool) {
    let mask = 0x80 >> (bit & 7);
    let b = &mut bytes[(bit >> 3) as usize];
    if on {
        *b |= mask;
    } else {
        *b &= !mask;
    }
}

fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut n: u64 = words
        .by_ref()
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap()).count_ones() as u64)
        .sum();
    n += words
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>();
    n
}

/// Set bits in the inclusive bit range [first, last] of `bytes`.
fn count_bits(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let head = u64::from(bytes[fb] & !(0xffu8 >> (first & 7))).count_ones();
    let tail = u64::from(bytes[lb] & (0x7fu8 >> (last & 7))).count_ones();
    popcount(&bytes[fb..=lb]) - u64::from(head) - u64::from(tail)
}

/// The first bit equal to `want` in the inclusive bit range [first, last].
fn find_bit(bytes: &[u8], want: bool, first: u64, last: u64) -> Option<u64> {
    // A byte "matches" when it holds a wanted bit: look for bytes that are
    // not all-zero (want 1) or not all-one (want 0), a word at a time.
    let skip = if want { 0u8 } else { 0xff };
    let mut bit = first;
    // Bits up to the next byte boundary one by one.
    while bit <= last && bit & 7 != 0 {
        if get_bit(bytes, bit) == want {
            return Some(bit);
        }
        bit += 1;
    }
    if bit > last {
        return None;
    }
    let mut byte = (bit >> 3) as usize;
    let last_full = ((last + 1) >> 3) as usize; // bytes [byte, last_full) are whole
    let word_skip = u64::from_ne_bytes([skip; 8]);
    while byte + 8 <= last_full
        && u64::from_ne_bytes(bytes[byte..byte + 8].try_into().unwrap()) == word_skip
    {
        byte += 8;
    }
    while byte < last_full && bytes[byte] == skip {
        byte += 1;
    }
    let mut bit = byte as u64 * 8;
    while bit <= last {
        if get_bit(bytes, bit) == want {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

// ------------------------------------------------------------ SETBIT / GETBIT

fn setbit(c: &mut Ctx) -> CmdResult {
    let offset = parse_offset(c, &c.args[2], None)?;
    let on = match parse_i64(&c.args[3]) {
        Ok(v @ (0 | 1)) => v == 1,
        _ => return Err(BAD_BIT.into()),
    };
    let was = with_bits_mut(c, offset, |bytes| {
        let was = get_bit(bytes, offset);
        set_bit(bytes, offset, on);
        (was, was != on)
    })?;
    c.out.int(i64::from(was));
    Ok(())
}

fn getbit(c: &mut Ctx) -> CmdResult {
    let offset = parse_offset(c, &c.args[2], None)?;
    let bit = match c.store.read_str(&c.args[1])? {
        Some(v) => get_bit(v.bytes(&mut itoa::Buffer::new()), offset),
        None => false,
    };
    c.out.int(i64::from(bit));
    Ok(())
}

/// Runs `f` on the string at the command's key grown (with zero bytes) to
/// hold bit `max_bit`, creating it if missing. `f` returns its result and
/// whether it changed a bit; the key counts as modified if it did or if
/// the string was created or grew, as in Redis.
fn with_bits_mut<R>(
    c: &mut Ctx,
    max_bit: u64,
    f: impl FnOnce(&mut [u8]) -> (R, bool),
) -> Result<R, CmdError> {
    let key = &c.args[1];
    let need = (max_bit >> 3) as usize + 1;
    let (result, modified) = match c.store.str_mut(key)? {
        Some(v) => {
            let len = v.len();
            let mut buf = take_buf(v, need.max(len));
            buf.resize(need.max(len), 0);
            let (r, changed) = f(&mut buf);
            *v = from_buf(buf);
            (r, changed || need > len)
        }
        None => {
            let mut buf = vec![0; need];
            let (r, _) = f(&mut buf);
            c.store.set(key, Value::Str(from_buf(buf)), None);
            c.notify(class::STRING, "setbit", key);
            return Ok(r);
        }
    };
    if modified {
        c.store.modified(c.store.db, key);
        // SETBIT and BITFIELD both notify "setbit".
        c.notify(class::STRING, "setbit", key);
    }
    Ok(result)
}

// ------------------------------------------------------------ BITCOUNT / BITPOS

fn bitcount(c: &mut Ctx) -> CmdResult {
    let range = match c.args.len() {
        2 => None,
        4 | 5 => {
            let start = parse_i64(&c.args[2])?;
            let end = parse_i64(&c.args[3])?;
            let in_bits = parse_unit(c.args.get(4).map(|a| &a[..]))?;
            Some((start, end, in_bits))
        }
        _ => return Err(err::SYNTAX.into()),
    };
    let Some(v) = c.store.read_str(&c.args[1])? else {
        c.out.int(0);
        return Ok(());
    };
    let mut scratch = itoa::Buffer::new();
    let bytes = v.bytes(&mut scratch);
    let len = bytes.len() as i64;
    let bits = match range {
        None => clamp_range(0, -1, len).map(|r| bit_range(r, false)),
        Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
        Some((start, end, in_bits)) => {
            let units = if in_bits { len * 8 } else { len };
            clamp_range(start, end, units).map(|r| bit_range(r, in_bits))
        }
    };
    let n = bits.map_or(0, |(first, last)| count_bits(bytes, first, last));
    c.out.int(n as i64);
    Ok(())
}

fn bitpos(c: &mut Ctx) -> CmdResult {
    let want = match parse_i64(&c.args[2])? {
        b @ (0 | 1) => b == 1,
        _ => return Err("ERR The bit argument must be 1 or 0.".into()),
    };
    if c.args.len() > 6 {
        return Err(err::SYNTAX.into());
    }
    let start = c.args.get(3).map(|a| parse_i64(a)).transpose()?;
    let in_bits = parse_unit(c.args.get(5).map(|a| &a[..]))?;
    let end = c.args.get(4).map(|a| parse_i64(a)).transpose()?;
    let Some(v) = c.store.read_str(&c.args[1])? else {
        // A missing key is an infinite run of zeros.
        c.out.int(if want { -1 } else { 0 });
        return Ok(());
    };
    let mut scratch = itoa::Buffer::new();
    let bytes = v.bytes(&mut scratch);
    let len = bytes.len() as i64;
    let units = if in_bits { len * 8 } else { len };
    let range = clamp_range(start.unwrap_or(0), end.unwrap_or(-1), units);
    let pos = match range.map(|r| bit_range(r, in_bits)) {
        None => -1,
        Some((first, last)) => match find_bit(bytes, want, first, last) {
            Some(p) => p as i64,
            // Past the string's end come zeros, unless the caller bounded
            // the search with an explicit end.
            None if !want && end.is_none() => last as i64 + 1,
            None => -1,
        },
    };
    c.out.int(pos);
    Ok(())
}

// ------------------------------------------------------------ BITOP

#[derive(Clone, Copy, PartialEq)]
enum Op {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(c: &mut Ctx) -> CmdResult {
    let op = match &c.args[1] {
        a if is(a, "and") => Op::And,
        a if is(a, "or") => Op::Or,
        a if is(a, "xor") => Op::Xor,
        a if is(a, "not") => Op::Not,
        _ => return Err(err::SYNTAX.into()),
    };
    if op == Op::Not && c.args.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let mut sources = Vec::with_capacity(c.args.len() - 3);
    for key in &c.args[3..] {
        sources.push(c.store.read_str(key)?.map(|v| v.to_bytes()));
    }
    let result = combine(op, &sources);
    let dest = &c.args[2];
    if result.is_empty() {
        if c.store.remove(dest).is_some() {
            c.store.modified(c.store.db, dest);
            c.notify(class::GENERIC, "del", dest);
        }
    } else {
        c.store
            .set(dest, Value::Str(from_buf(result.clone())), None);
        c.notify(class::STRING, "set", dest);
    }
    c.out.int(result.len() as i64);
    Ok(())
}

/// The bitwise combination of the sources, missing ones and the parts past
/// a source's end counting as zero bytes.
fn combine(op: Op, sources: &[Option<bytes::Bytes>]) -> Vec<u8> {
    let empty = bytes::Bytes::new();
    let srcs: Vec<&[u8]> = sources
        .iter()
        .map(|s| s.as_ref().unwrap_or(&empty).as_ref())
        .collect();
    let max = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; max];
    out[..srcs[0].len()].copy_from_slice(srcs[0]);
    if op == Op::Not {
        out.iter_mut().for_each(|b| *b = !*b);
        return out;
    }
    for src in &srcs[1..] {
        let pairs = out.iter_mut().zip(src.iter());
        match op {
            Op::And => {
                pairs.for_each(|(o, s)| *o &= s);
                // Zeros past this source's end clear the rest.
                out[src.len()..].fill(0);
            }
            Op::Or => pairs.for_each(|(o, s)| *o |= s),
            Op::Xor => pairs.for_each(|(o, s)| *o ^= s),
            Op::Not => unreachable!("NOT has one source"),
        }
    }
    out
}

// ------------------------------------------------------------ BITFIELD

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy)]
struct Field {
    signed: bool,
    bits: u32,
    offset: u64,
}

enum FieldOp {
    Get(Field),
    Set(Field, i64, Overflow),
    IncrBy(Field, i64, Overflow),
}

fn parse_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_TYPE.into()),
    };
    let max = if signed { 64 } else { 63 };
    match parse_i64(&arg[1..]) {
        Ok(bits) if (1..=max).contains(&bits) => Ok((signed, bits as u32)),
        _ => Err(BAD_TYPE.into()),
    }
}

fn parse_field_ops(c: &Ctx) -> Result<Vec<FieldOp>, CmdError> {
    let args = &c.args;
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let rest = args.len() - i - 1;
        let name = &args[i];
        let operands = match () {
            _ if is(name, "get") && rest >= 2 => 2,
            _ if (is(name, "set") || is(name, "incrby")) && rest >= 3 => 3,
            _ if is(name, "overflow") && rest >= 1 => {
                overflow = match &args[i + 1] {
                    a if is(a, "wrap") => Overflow::Wrap,
                    a if is(a, "sat") => Overflow::Sat,
                    a if is(a, "fail") => Overflow::Fail,
                    _ => return Err("ERR Invalid OVERFLOW type specified".into()),
                };
                i += 2;
                continue;
            }
            _ => return Err(err::SYNTAX.into()),
        };
        let (signed, bits) = parse_type(&args[i + 1])?;
        let offset = parse_offset(c, &args[i + 2], Some(bits))?;
        let field = Field {
            signed,
            bits,
            offset,
        };
        ops.push(if operands == 2 {
            FieldOp::Get(field)
        } else {
            let n = parse_i64(&args[i + 3])?;
            if is(name, "set") {
                FieldOp::Set(field, n, overflow)
            } else {
                FieldOp::IncrBy(field, n, overflow)
            }
        });
        i += 1 + operands;
    }
    Ok(ops)
}

fn bitfield(c: &mut Ctx) -> CmdResult {
    bitfield_generic(c, false)
}

fn bitfield_ro(c: &mut Ctx) -> CmdResult {
    bitfield_generic(c, true)
}

fn bitfield_generic(c: &mut Ctx, read_only: bool) -> CmdResult {
    let ops = parse_field_ops(c)?;
    let highest_write = ops
        .iter()
        .filter_map(|op| match op {
            FieldOp::Get(_) => None,
            FieldOp::Set(f, ..) | FieldOp::IncrBy(f, ..) => Some(f.offset + u64::from(f.bits) - 1),
        })
        .max();
    let Some(max_bit) = highest_write else {
        // Only GETs: a missing key reads as zeros.
        let bytes = match c.store.read_str(&c.args[1])? {
            Some(v) => v.to_bytes(),
            None => bytes::Bytes::new(),
        };
        c.out.array(ops.len());
        for op in &ops {
            if let FieldOp::Get(f) = op {
                c.out.int(read_field(&bytes, *f));
            }
        }
        return Ok(());
    };
    if read_only {
        return Err("ERR BITFIELD_RO only supports the GET subcommand".into());
    }
    let replies = with_bits_mut(c, max_bit, |bytes| {
        let mut changed = false;
        let replies: Vec<Option<i64>> = ops
            .iter()
            .map(|op| {
                let (reply, wrote) = apply_field_op(bytes, op);
                changed |= wrote;
                reply
            })
            .collect();
        (replies, changed)
    })?;
    c.out.array(replies.len());
    for r in replies {
        match r {
            Some(n) => c.out.int(n),
            None => c.out.null(),
        }
    }
    Ok(())
}

/// Runs one op on a string long enough for it: (reply, whether a bit
/// changed). A failed overflow check replies null and writes nothing.
fn apply_field_op(bytes: &mut [u8], op: &FieldOp) -> (Option<i64>, bool) {
    let (f, n, overflow, incr) = match *op {
        FieldOp::Get(f) => return (Some(read_field(bytes, f)), false),
        FieldOp::Set(f, n, o) => (f, n, o, false),
        FieldOp::IncrBy(f, n, o) => (f, n, o, true),
    };
    let old = read_field(bytes, f);
    let (value, incr_by) = if incr { (old, n) } else { (n, 0) };
    let new = match checked_field_add(f, value, incr_by) {
        Ok(v) => v,
        Err(_) if overflow == Overflow::Fail => return (None, false),
        Err((wrapped, saturated)) => {
            if overflow == Overflow::Wrap {
                wrapped
            } else {
                saturated
            }
        }
    };
    write_field(bytes, f, new as u64);
    (Some(if incr { new } else { old }), new != old)
}

/// `value + incr` in the field's range, or Err((wrapped, saturated)).
/// Unsigned values are carried in an i64 holding their bit pattern.
fn checked_field_add(f: Field, value: i64, incr: i64) -> Result<i64, (i64, i64)> {
    let bits = f.bits;
    if f.signed {
        let max: i128 = (1i128 << (bits - 1)) - 1;
        let min: i128 = -max - 1;
        let sum = i128::from(value) + i128::from(incr);
        if (min..=max).contains(&sum) {
            return Ok(sum as i64);
        }
        let raw = (value as u64).wrapping_add(incr as u64);
        let wrapped = if bits == 64 {
            raw as i64
        } else {
            // Sign-extend the low `bits` bits.
            ((raw << (64 - bits)) as i64) >> (64 - bits)
        };
        let saturated = if sum > max { max } else { min } as i64;
        Err((wrapped, saturated))
    } else {
        let max: i128 = (1i128 << bits) - 1;
        // SET's value is taken as the u64 Redis would see (negative is huge).
        let base = i128::from(value as u64);
        let sum = base + i128::from(incr);
        if (0..=max).contains(&sum) {
            return Ok(sum as i64);
        }
        let wrapped = ((value as u64).wrapping_add(incr as u64) & (u64::MAX >> (64 - bits))) as i64;
        let saturated = if sum > max { max as i64 } else { 0 };
        Err((wrapped, saturated))
    }
}

fn read_field(bytes: &[u8], f: Field) -> i64 {
    let mut v: u64 = 0;
    for i in 0..u64::from(f.bits) {
        v = (v << 1) | u64::from(get_bit(bytes, f.offset + i));
    }
    if f.signed && f.bits < 64 && v & (1 << (f.bits - 1)) != 0 {
        v |= u64::MAX << f.bits;
    }
    v as i64
}

fn write_field(bytes: &mut [u8], f: Field, v: u64) {
    for i in 0..u64::from(f.bits) {
        let on = v >> (u64::from(f.bits) - 1 - i) & 1 == 1;
        set_bit(bytes, f.offset + i, on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_find_agree_with_a_bit_by_bit_scan() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let total = bytes.len() as u64 * 8;
        for first in (0..total).step_by(13) {
            for last in (first..total).step_by(29) {
                let want = (first..=last).filter(|&b| get_bit(&bytes, b)).count() as u64;
                assert_eq!(count_bits(&bytes, first, last), want, "{first}..={last}");
                for bit in [false, true] {
                    let want = (first..=last).find(|&b| get_bit(&bytes, b) == bit);
                    assert_eq!(find_bit(&bytes, bit, first, last), want);
                }
            }
        }
    }

    #[test]
    fn find_bit_skips_long_runs_word_by_word() {
        let mut bytes = vec![0u8; 4096];
        bytes[4000] = 0x10;
        assert_eq!(find_bit(&bytes, true, 3, 4096 * 8 - 1), Some(4000 * 8 + 3));
        let ones = vec![0xffu8; 100];
        assert_eq!(find_bit(&ones, false, 0, 799), None);
    }

    #[test]
    fn fields_round_trip_at_unaligned_offsets() {
        let mut bytes = vec![0u8; 20];
        for (signed, bits, v) in [
            (true, 5, -7i64),
            (false, 13, 8000),
            (true, 64, i64::MIN),
            (false, 63, i64::MAX),
        ] {
            let f = Field {
                signed,
                bits,
                offset: 11,
            };
            write_field(&mut bytes, f, v as u64);
            assert_eq!(read_field(&bytes, f), v);
        }
    }

    #[test]
    fn overflow_wraps_and_saturates_like_redis() {
        let i8f = Field {
            signed: true,
            bits: 8,
            offset: 0,
        };
        assert_eq!(checked_field_add(i8f, 127, 1), Err((-128, 127)));
        assert_eq!(checked_field_add(i8f, -128, -1), Err((127, -128)));
        let u8f = Field {
            signed: false,
            bits: 8,
            offset: 0,
        };
        assert_eq!(checked_field_add(u8f, 255, 1), Err((0, 255)));
        assert_eq!(checked_field_add(u8f, 0, -1), Err((255, 0)));
        assert_eq!(checked_field_add(u8f, -1, 0), Err((255, 255)));
        let i64f = Field {
            signed: true,
            bits: 64,
            offset: 0,
        };
        assert_eq!(
            checked_field_add(i64f, i64::MAX, 1),
            Err((i64::MIN, i64::MAX))
        );
    }
}
