//! HyperLogLog strings, byte for byte as Redis lays them out
//! (hyperloglog.c), so values move between Granary and Redis through GET/
//! SET, DUMP/RESTORE and RDB and give the same counts.
//!
//! A value is a 16-byte header (`HYLL`, encoding, 3 unused bytes, the
//! cached cardinality as 8 little-endian bytes whose top bit marks it
//! stale) followed by 16384 6-bit registers, either
//! - dense: packed little-endian-bitwise in 12288 bytes, or
//! - sparse: run-length opcodes, `00xxxxxx` ZERO (1-64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1-16384 zero registers), `1vvvvvxx` VAL
//!   (1-4 registers of value 1-32). A sparse value is promoted to dense
//!   when a register needs a value above 32 or the string would exceed
//!   `hll-sparse-max-bytes`.
//!
//! Every reader checks the structure and answers `Corrupt` rather than
//! trusting a string a client may have written with SET or SETRANGE.

pub const P: u32 = 14;
pub const REGISTERS: usize = 1 << P;
const Q: u32 = 64 - P;
pub const HEADER: usize = 16;
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * 6).div_ceil(8);
const MAGIC: &[u8; 4] = b"HYLL";
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// 0.5 / ln(2), the estimator's alpha for m -> infinity.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A HyperLogLog string whose content is not a valid register set.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `b` has a valid header (Redis's isHLLObjectOrReply).
pub fn is_hll(b: &[u8]) -> bool {
    b.len() >= HEADER
        && &b[..4] == MAGIC
        && b[4] <= SPARSE
        && (b[4] != DENSE || b.len() == DENSE_SIZE)
}

pub fn is_sparse(b: &[u8]) -> bool {
    b[4] == SPARSE
}

/// An empty HyperLogLog: sparse, one XZERO run covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + 2);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&[SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

// ------------------------------------------------------------ hashing

/// MurmurHash64A, reading 8-byte blocks little-endian as Redis does on
/// every platform.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in blocks.by_ref() {
        let mut k = u64::from_le_bytes(block.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it proposes: one plus
/// the number of trailing zeros of the hash bits above the index.
pub fn register_for(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ------------------------------------------------------------ cached cardinality

pub fn cached_count(b: &[u8]) -> Option<u64> {
    (b[15] & 0x80 == 0).then(|| u64::from_le_bytes(b[8..16].try_into().unwrap()))
}

pub fn set_cached_count(b: &mut [u8], n: u64) {
    b[8..16].copy_from_slice(&n.to_le_bytes());
}

pub fn invalidate_cache(b: &mut [u8]) {
    b[15] |= 0x80;
}

// ------------------------------------------------------------ dense registers

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let (byte, shift) = (i * 6 / 8, (i * 6) % 8);
    let lo = regs[byte] >> shift;
    let hi = regs
        .get(byte + 1)
        .map_or(0, |&b| b.checked_shl(8 - shift as u32).unwrap_or(0));
    (lo | hi) & 63
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let (byte, shift) = (i * 6 / 8, (i * 6) % 8);
    regs[byte] &= !(63 << shift);
    regs[byte] |= v << shift;
    if shift > 2 {
        let spill = 8 - shift;
        regs[byte + 1] &= !(63 >> spill);
        regs[byte + 1] |= v >> spill;
    }
}

// ------------------------------------------------------------ sparse opcodes

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// `len` zero registers, in one byte (ZERO) or two (XZERO).
    Zero {
        len: usize,
        wide: bool,
    },
    Val {
        value: u8,
        len: usize,
    },
}

impl Op {
    fn size(self) -> usize {
        match self {
            Op::Zero { wide: true, .. } => 2,
            _ => 1,
        }
    }

    fn len(self) -> usize {
        match self {
            Op::Zero { len, .. } | Op::Val { len, .. } => len,
        }
    }
}

/// The opcode at `at`. An XZERO cut off by the end of the string reads a
/// zero second byte, as Redis reads the string's NUL terminator there
/// (readers then see the registers don't add up; PFDEBUG DECODE prints it).
fn decode_op(b: &[u8], at: usize) -> Op {
    let x = b[at];
    match x & 0xc0 {
        0x00 => Op::Zero {
            len: usize::from(x & 0x3f) + 1,
            wide: false,
        },
        0x40 => {
            let low = b.get(at + 1).copied().unwrap_or(0);
            Op::Zero {
                len: ((usize::from(x & 0x3f) << 8) | usize::from(low)) + 1,
                wide: true,
            }
        }
        _ => Op::Val {
            value: ((x >> 2) & 0x1f) + 1,
            len: usize::from(x & 3) + 1,
        },
    }
}

fn val_byte(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(0x40 | (l >> 8) as u8);
    out.push((l & 0xff) as u8);
}

/// A run of zeros as the shortest opcode.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push(len as u8 - 1);
    }
}

/// Calls `f(first_register, op)` for each opcode; checks that they cover
/// exactly the registers.
fn for_each_op(b: &[u8], mut f: impl FnMut(usize, Op)) -> Result<(), Corrupt> {
    let (mut at, mut reg) = (HEADER, 0usize);
    while at < b.len() {
        let op = decode_op(b, at);
        if reg + op.len() > REGISTERS {
            return Err(Corrupt);
        }
        f(reg, op);
        reg += op.len();
        at += op.size();
    }
    if reg == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

// ------------------------------------------------------------ updates

/// Adds an element: Ok(true) if a register grew.
pub fn add(b: &mut Vec<u8>, element: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = register_for(element);
    set_register(b, index, count, sparse_max)
}

/// Raises register `index` to `count` if it is lower: Ok(true) if it was.
pub fn set_register(
    b: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, Corrupt> {
    if !is_sparse(b) {
        let regs = &mut b[HEADER..];
        if dense_get(regs, index) >= count {
            return Ok(false);
        }
        dense_set(regs, index, count);
        return Ok(true);
    }
    if count > VAL_MAX_VALUE {
        return promote_and_set(b, index, count);
    }
    match sparse_set(b, index, count, sparse_max)? {
        SparseSet::Done(changed) => Ok(changed),
        SparseSet::TooBig => promote_and_set(b, index, count),
    }
}

fn promote_and_set(b: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(b)?;
    let regs = &mut b[HEADER..];
    let grew = dense_get(regs, index) < count;
    if grew {
        dense_set(regs, index, count);
    }
    Ok(grew)
}

enum SparseSet {
    Done(bool),
    /// The split would make the string longer than hll-sparse-max-bytes.
    TooBig,
}

/// Redis's hllSparseSet: finds the opcode covering `index`, rewrites it
/// as up to three opcodes (zeros or old value, the new VAL, zeros or old
/// value), then merges equal adjacent VALs around it. The exact opcode
/// sequence matters: it is what GET and DUMP show.
fn sparse_set(b: &mut Vec<u8>, index: usize, count: u8, max: usize) -> Result<SparseSet, Corrupt> {
    // Locate the opcode covering `index`, and the one before it.
    let (mut at, mut first, mut prev) = (HEADER, 0usize, None);
    let op = loop {
        if at >= b.len() {
            return Err(Corrupt);
        }
        let op = decode_op(b, at);
        if at + op.size() > b.len() {
            return Err(Corrupt);
        }
        if index < first + op.len() {
            break op;
        }
        prev = Some(at);
        first += op.len();
        at += op.size();
    };
    let last = first + op.len() - 1;
    match op {
        Op::Val { value, .. } if value >= count => return Ok(SparseSet::Done(false)),
        Op::Val { len: 1, .. }
        | Op::Zero {
            len: 1,
            wide: false,
        } => {
            b[at] = val_byte(count, 1);
        }
        _ => {
            let mut seq = Vec::with_capacity(5);
            let fill = |seq: &mut Vec<u8>, len: usize| match op {
                Op::Zero { .. } => push_zeros(seq, len),
                Op::Val { value, .. } => seq.push(val_byte(value, len)),
            };
            if index != first {
                fill(&mut seq, index - first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                fill(&mut seq, last - index);
            }
            let grows = seq.len() > op.size();
            if grows && b.len() + seq.len() - op.size() > max {
                return Ok(SparseSet::TooBig);
            }
            b.splice(at..at + op.size(), seq);
        }
    }
    merge_adjacent_vals(b, prev.unwrap_or(HEADER));
    invalidate_cache(b);
    Ok(SparseSet::Done(true))
}

/// Merges adjacent VAL opcodes of equal value, scanning at most five
/// opcodes from `at` (Redis's step 4).
fn merge_adjacent_vals(b: &mut Vec<u8>, mut at: usize) {
    let mut budget = 5;
    while at < b.len() && budget > 0 {
        budget -= 1;
        let x = b[at];
        if x & 0xc0 == 0x40 {
            at += 2;
            continue;
        }
        if x & 0x80 == 0 {
            at += 1;
            continue;
        }
        if let Some(&y) = b.get(at + 1) {
            if y & 0x80 != 0 {
                let (v1, v2) = ((x >> 2) & 0x1f, (y >> 2) & 0x1f);
                let len = usize::from(x & 3) + usize::from(y & 3) + 2;
                if v1 == v2 && len <= VAL_MAX_LEN {
                    b[at + 1] = val_byte(v1 + 1, len);
                    b.remove(at);
                    continue;
                }
            }
        }
        at += 1;
    }
}

/// Converts a sparse value to dense in place (the header, cached count
/// included, is kept).
pub fn to_dense(b: &mut Vec<u8>) -> Result<(), Corrupt> {
    if !is_sparse(b) {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HEADER].copy_from_slice(&b[..HEADER]);
    dense[4] = DENSE;
    let regs = &mut dense[HEADER..];
    for_each_op(b, |first, op| {
        if let Op::Val { value, len } = op {
            for r in first..first + len {
                dense_set(regs, r, value);
            }
        }
    })?;
    *b = dense;
    Ok(())
}

/// Raises each of `max` to this value's register where it is higher
/// (PFCOUNT of several keys, PFMERGE).
pub fn merge_into(max: &mut [u8], b: &[u8]) -> Result<(), Corrupt> {
    if is_sparse(b) {
        for_each_op(b, |first, op| {
            if let Op::Val { value, len } = op {
                for m in &mut max[first..first + len] {
                    *m = (*m).max(value);
                }
            }
        })
    } else {
        let regs = &b[HEADER..];
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(regs, i));
        }
        Ok(())
    }
}

/// Every register's value.
pub fn registers(b: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut regs = vec![0u8; REGISTERS];
    merge_into(&mut regs, b)?;
    Ok(regs)
}

/// Writes registers into a value (PFMERGE's destination), the way Redis
/// does: register by register through the value's own encoding.
pub fn raise_registers(b: &mut Vec<u8>, max: &[u8], sparse_max: usize) -> Result<(), Corrupt> {
    for (i, &v) in max.iter().enumerate() {
        if v != 0 {
            set_register(b, i, v, sparse_max)?;
        }
    }
    invalidate_cache(b);
    Ok(())
}

/// PFDEBUG DECODE's rendering of a sparse value: `z:len`, `Z:len` (XZERO)
/// and `v:value,len` opcodes separated by spaces.
pub fn describe_sparse(b: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut at = HEADER;
    while at < b.len() {
        let op = decode_op(b, at);
        parts.push(match op {
            Op::Zero { len, wide: false } => format!("z:{len}"),
            Op::Zero { len, wide: true } => format!("Z:{len}"),
            Op::Val { value, len } => format!("v:{value},{len}"),
        });
        at += op.size();
    }
    parts.join(" ")
}

// ------------------------------------------------------------ counting

/// The cardinality estimate of a value's registers.
pub fn count(b: &[u8]) -> Result<u64, Corrupt> {
    let mut histogram = [0u32; 64];
    if is_sparse(b) {
        for_each_op(b, |_, op| match op {
            Op::Zero { len, .. } => histogram[0] += len as u32,
            Op::Val { value, len } => histogram[usize::from(value)] += len as u32,
        })?;
    } else {
        let regs = &b[HEADER..];
        for i in 0..REGISTERS {
            histogram[usize::from(dense_get(regs, i))] += 1;
        }
    }
    Ok(estimate(&histogram))
}

/// The cardinality estimate of raw registers (one byte each).
pub fn count_registers(regs: &[u8]) -> u64 {
    let mut histogram = [0u32; 64];
    for &r in regs {
        histogram[usize::from(r & 63)] += 1;
    }
    estimate(&histogram)
}

/// Otmar Ertl's improved raw estimator, as Redis computes it (same
/// operations in the same order, so the same doubles and the same count).
fn estimate(histogram: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let q = Q as usize;
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for j in (1..=q).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_registers_round_trip_at_every_bit_position() {
        let mut regs = vec![0u8; DENSE_SIZE - HEADER];
        for i in 0..REGISTERS {
            dense_set(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), (i % 64) as u8, "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree_and_stay_valid() {
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        to_dense(&mut dense).unwrap();
        for i in 0..3000u32 {
            let e = i.to_string();
            let a = add(&mut sparse, e.as_bytes(), usize::MAX).unwrap();
            let b = add(&mut dense, e.as_bytes(), usize::MAX).unwrap();
            assert_eq!(a, b, "element {i}");
        }
        assert!(is_sparse(&sparse));
        assert_eq!(registers(&sparse).unwrap(), registers(&dense).unwrap());
        assert_eq!(count(&sparse).unwrap(), count(&dense).unwrap());
        let n = count(&dense).unwrap();
        assert!((2900..3100).contains(&n), "estimate {n}");
    }

    #[test]
    fn corrupt_sparse_values_are_detected() {
        let mut b = new_sparse();
        b[HEADER + 1] = 0; // XZERO covering one register short
        assert_eq!(count(&b), Err(Corrupt));
        let mut b = new_sparse();
        b.push(0x00); // one register too many
        assert_eq!(count(&b), Err(Corrupt));
        assert_eq!(to_dense(&mut b), Err(Corrupt));
        let mut b = new_sparse();
        b.truncate(HEADER);
        assert_eq!(add(&mut b, b"x", 3000), Err(Corrupt));
    }
}
