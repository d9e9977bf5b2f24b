//! x87 80-bit `long double` arithmetic, emulated exactly.
//!
//! INCRBYFLOAT computes in C `long double` (x87 80-bit extended precision
//! on the x86-64 Redis builds everyone runs) and prints with "%.17Lf"
//! trimmed, so "12345.1 + 0.1" answers "12345.19999999999999929". To give
//! the same bytes this module emulates that arithmetic exactly: strtold's
//! correctly rounded parse, one rounded addition, and exact decimal output.

use std::cmp::Ordering;

/// Largest and smallest binary exponents of a normal value, as
/// `exp` below counts them (value = mant * 2^exp, mant in [2^63, 2^64)).
const MAX_EXP: i64 = 16383 - 63;
const MIN_EXP: i64 = -16382 - 63;
/// Redis refuses float strings this long (MAX_LONG_DOUBLE_CHARS).
const MAX_CHARS: usize = 5 * 1024;

/// A finite 80-bit value (infinities only arise from parsing "inf").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F80 {
    neg: bool,
    /// Normalised (top bit set), or 0 for zero.
    mant: u64,
    exp: i64,
    inf: bool,
}

impl F80 {
    pub const ZERO: F80 = F80 {
        neg: false,
        mant: 0,
        exp: 0,
        inf: false,
    };

    fn inf(neg: bool) -> F80 {
        F80 {
            neg,
            inf: true,
            ..F80::ZERO
        }
    }
}

/// An unsigned big integer, little-endian 32-bit limbs, no zero top limb.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => self.0.len() as u64 * 32 - top.leading_zeros() as u64,
        }
    }

    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        limb < self.0.len() && self.0[limb] >> (i % 32) & 1 == 1
    }

    /// Whether any of the lowest `n` bits is set.
    fn low_bits_set(&self, n: u64) -> bool {
        (0..n.min(self.bits())).any(|i| self.bit(i))
    }

    fn mul_add_small(&mut self, m: u32, add: u32) {
        let mut carry = add as u64;
        for limb in &mut self.0 {
            let v = *limb as u64 * m as u64 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn mul_pow10(&mut self, mut n: u64) {
        while n >= 9 {
            self.mul_add_small(1_000_000_000, 0);
            n -= 9;
        }
        self.mul_add_small(10u32.pow(n as u32), 0);
    }

    fn shl(&mut self, n: u64) {
        if self.is_zero() {
            return;
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = *limb;
                *limb = (v << bits) | carry;
                carry = v >> (32 - bits);
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }

    fn shr(&self, n: u64) -> Big {
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        if limbs >= self.0.len() {
            return Big(vec![]);
        }
        let src = &self.0[limbs..];
        let mut out: Vec<u32> = (0..src.len())
            .map(|i| {
                let hi = if bits > 0 {
                    src.get(i + 1).map_or(0, |h| h << (32 - bits))
                } else {
                    0
                };
                (src[i] >> bits) | hi
            })
            .collect();
        while out.last() == Some(&0) {
            out.pop();
        }
        Big(out)
    }

    /// The value, which the caller knows fits in 128 bits.
    fn to_u128(&self) -> u128 {
        self.0
            .iter()
            .rev()
            .fold(0u128, |acc, &l| (acc << 32) | l as u128)
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    /// self -= o, for o <= self.
    fn sub(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = *limb as i64 - o.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            borrow = (v < 0) as i64;
            *limb = v.rem_euclid(1 << 32) as u32;
        }
        self.trim();
    }

    /// (self / d, whether a remainder is left), by shift-and-subtract.
    fn div(&self, d: &Big) -> (Big, bool) {
        if self.cmp(d) == Ordering::Less {
            return (Big(vec![]), !self.is_zero());
        }
        let shift = self.bits() - d.bits();
        let mut rem = self.clone();
        let mut q = Big(vec![0; (shift / 32 + 1) as usize]);
        for i in (0..=shift).rev() {
            let mut s = d.clone();
            s.shl(i);
            if rem.cmp(&s) != Ordering::Less {
                rem.sub(&s);
                q.0[(i / 32) as usize] |= 1 << (i % 32);
            }
        }
        q.trim();
        (q, !rem.is_zero())
    }

    fn to_decimal(&self) -> String {
        let mut limbs = self.0.clone();
        let mut chunks = vec![];
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let v = (rem << 32) | *limb as u64;
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut s = chunks.pop().map_or("0".to_string(), |c| c.to_string());
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// Rounds a non-zero x * 2^e (plus a little more if `sticky`) to a
/// 64-bit mantissa, ties to even: (mant, exp), range unchecked.
fn round(x: &Big, e: i64, sticky: bool) -> (u64, i64) {
    let shift = x.bits() as i64 - 64;
    if shift <= 0 {
        return ((x.to_u128() as u64) << -shift, e + shift);
    }
    let s = shift as u64;
    let mant = x.shr(s).to_u128() as u64;
    let half = x.bit(s - 1);
    let rest = sticky || x.low_bits_set(s - 1);
    let up = half && (rest || mant & 1 == 1);
    match mant.checked_add(up as u64) {
        Some(m) => (m, e + shift),
        None => (1 << 63, e + shift + 1),
    }
}

/// A parsed number in range, or None: strtold overflowed, or
/// underflowed all the way to zero (below half the smallest subnormal).
/// Subnormals print as zero anyway, so they flush to it.
fn parsed(neg: bool, (mant, exp): (u64, i64)) -> Option<F80> {
    if !(MIN_EXP - 64..=MAX_EXP).contains(&exp) {
        None
    } else if exp < MIN_EXP {
        Some(F80 { neg, ..F80::ZERO })
    } else {
        Some(F80 {
            neg,
            mant,
            exp,
            inf: false,
        })
    }
}

/// strtold as Redis's string2ld uses it: the whole string must be a
/// number (decimal or hex, or inf/infinity), no leading space, not NaN,
/// no overflow, no underflow to zero.
pub fn parse(s: &[u8]) -> Option<F80> {
    if s.is_empty() || s.len() >= MAX_CHARS || s[0].is_ascii_whitespace() || s[0] == 0x0b {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(F80::inf(neg));
    }
    let hex = body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    if hex {
        parse_digits(neg, &body[2..], 16)
    } else {
        parse_digits(neg, body, 10)
    }
}

/// digits [. digits] [exponent] in `radix` (10: e, power of 10;
/// 16: p, power of 2), nothing after.
fn parse_digits(neg: bool, s: &[u8], radix: u32) -> Option<F80> {
    let mut mant = Big(vec![]);
    let (mut ndigits, mut frac_digits, mut seen_dot) = (0u64, 0i64, false);
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = (b as char).to_digit(radix) {
            ndigits += 1;
            if seen_dot {
                frac_digits += 1;
            }
            mant.mul_add_small(radix, d);
        } else {
            break;
        }
        i += 1;
    }
    if ndigits == 0 {
        return None;
    }
    let mut exp = 0i64;
    if i < s.len() {
        let marker = if radix == 10 { b'e' } else { b'p' };
        if s[i] | 0x20 != marker {
            return None;
        }
        exp = parse_exp(&s[i + 1..])?;
    }
    // Saturated exponents stay far outside every range below.
    if mant.is_zero() {
        return Some(F80 { neg, ..F80::ZERO });
    }
    if radix == 16 {
        let e = exp.saturating_sub(frac_digits * 4).clamp(-1 << 40, 1 << 40);
        return parsed(neg, round(&mant, e, false));
    }
    from_decimal(neg, mant, exp.saturating_sub(frac_digits))
}

/// A decimal exponent: [sign] digits, nothing after; huge ones saturate.
fn parse_exp(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |acc, &d| {
        acc.saturating_mul(10).saturating_add((d - b'0') as i64)
    });
    Some(if neg { -v } else { v })
}

/// d * 10^e (d non-zero), correctly rounded.
fn from_decimal(neg: bool, mut d: Big, e: i64) -> Option<F80> {
    // log10 of the value is within 1 of this; 2^16384 ~ 1.2e4932 and
    // the smallest subnormal ~ 3.6e-4951.
    let magnitude = ((d.bits() as f64 * std::f64::consts::LOG10_2) as i64).saturating_add(e);
    if !(-4960..=4940).contains(&magnitude) {
        return None;
    }
    if e >= 0 {
        d.mul_pow10(e as u64);
        return parsed(neg, round(&d, 0, false));
    }
    let mut p = Big::from_u64(1);
    p.mul_pow10(e.unsigned_abs());
    // Scale so the quotient has 66 to 68 bits: enough to round from,
    // with the remainder as the sticky bit, and few to compute.
    let k = (p.bits() + 66).saturating_sub(d.bits());
    d.shl(k);
    let j = d.bits().saturating_sub(p.bits() + 68);
    p.shl(j);
    let (q, rest) = d.div(&p);
    parsed(neg, round(&q, j as i64 - k as i64, rest))
}

/// a + b rounded to 64 bits; None for an infinite (or NaN) result.
pub fn add(a: F80, b: F80) -> Option<F80> {
    if a.inf || b.inf {
        return None;
    }
    if b.mant == 0 {
        return Some(a);
    }
    if a.mant == 0 {
        return Some(b);
    }
    let (a, b) = if (a.exp, a.mant) >= (b.exp, b.mant) {
        (a, b)
    } else {
        (b, a)
    };
    const GUARD: u32 = 62;
    let wide_a = (a.mant as u128) << GUARD;
    let wide_b = (b.mant as u128) << GUARD;
    let d = (a.exp - b.exp) as u64;
    // Bits shifted out of b are kept as a sticky low bit.
    let small = if d >= 127 {
        1
    } else {
        let lost = wide_b & ((1u128 << d) - 1) != 0;
        (wide_b >> d) | lost as u128
    };
    let sum = if a.neg == b.neg {
        wide_a + small
    } else {
        wide_a - small
    };
    if sum == 0 {
        return Some(F80::ZERO);
    }
    let mut x = Big(vec![
        sum as u32,
        (sum >> 32) as u32,
        (sum >> 64) as u32,
        (sum >> 96) as u32,
    ]);
    x.trim();
    let (mant, exp) = round(&x, a.exp - GUARD as i64, false);
    if exp > MAX_EXP {
        None
    } else if exp < MIN_EXP {
        Some(F80::ZERO)
    } else {
        Some(F80 {
            neg: a.neg,
            mant,
            exp,
            inf: false,
        })
    }
}

/// "%.17Lf" with trailing zeros (and a bare '.') removed, "-0" as "0":
/// Redis's ld2string in LD_STR_HUMAN mode.
pub fn to_human(v: F80) -> String {
    if v.mant == 0 {
        return "0".into();
    }
    let mut n = Big::from_u64(v.mant);
    n.mul_pow10(17);
    if v.exp >= 0 {
        n.shl(v.exp as u64);
    } else {
        // Round to 17 decimals, ties to even, as glibc's printf does.
        let s = v.exp.unsigned_abs();
        let q = n.shr(s);
        let half = n.bit(s - 1);
        let up = half && (n.low_bits_set(s - 1) || q.bit(0));
        n = q;
        if up {
            n.mul_add_small(1, 1);
        }
    }
    if n.is_zero() {
        return "0".into();
    }
    let digits = format!("{:0>18}", n.to_decimal());
    let (int, frac) = digits.split_at(digits.len() - 17);
    let frac = frac.trim_end_matches('0');
    let sign = if v.neg { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> Option<String> {
        let s = add(parse(a.as_bytes())?, parse(b.as_bytes())?)?;
        Some(to_human(s))
    }

    #[test]
    fn matches_redis_long_double_output() {
        // Replies of redis-server 7 (x86-64) for SET k a; INCRBYFLOAT k b.
        for (a, b, want) in [
            ("10.5", "0.1", "10.6"),
            ("0.1", "0.2", "0.3"),
            ("12345.1", "0.1", "12345.19999999999999929"),
            ("1e30", "1", "1000000000000000000024696061952"),
            ("0", "1e-20", "0"),
            ("0", "-1e-20", "0"),
            ("3.0e3", "0", "3000"),
            ("1.5", "0x10", "17.5"),
            ("123456789.123", "0.001", "123456789.12399999999615829"),
            ("1", "1.5e-17", "1.00000000000000001"),
            ("99999999999.9", "0.1", "100000000000"),
            ("1.1", "2.2", "3.3"),
            ("-5", "2", "-3"),
            (
                "123456789012345678901234567890.5e-1",
                "0",
                "12345678901234567890421678080",
            ),
        ] {
            assert_eq!(incr(a, b).as_deref(), Some(want), "{a} + {b}");
        }
        // Long inputs: many digits, big negative exponents.
        let sevens = format!("{}e-2990", "7".repeat(3000));
        assert_eq!(incr(&sevens, "0").unwrap(), "7777777777.77777777798473835");
        let tiny = format!("0.{}123", "0".repeat(4000));
        assert_eq!(incr(&tiny, "1").unwrap(), "1");
    }

    #[test]
    fn rejects_what_strtold_rejects() {
        for bad in [
            "", " 1", "1 ", "nan", "abc", "1e", "0x", "1e99999", "1e-99999", "--1", ".",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(parse(b"inf").is_some());
        assert_eq!(incr("1", "inf"), None);
        assert_eq!(incr("1.7e4932", "1.7e4932"), None);
    }
}
