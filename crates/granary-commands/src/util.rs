//! Argument parsing shared by the command families, with Redis's error texts.

use crate::ctx::{err, CmdError};

/// Parses a whole-argument i64 as Redis's string2ll does (no spaces, no '+').
pub fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_opt(arg).ok_or_else(|| err::NOT_INT.into())
}

/// Redis's string2ll accepts exactly the canonical form: "007", "+1",
/// "-0" and " 1" are not integers.
pub fn parse_i64_opt(arg: &[u8]) -> Option<i64> {
    granary_keyspace::canonical_i64(arg)
}

pub fn parse_u64(arg: &[u8]) -> Result<u64, CmdError> {
    let n = parse_i64(arg)?;
    u64::try_from(n).map_err(|_| err::NOT_INT.into())
}

/// Parses a float as Redis's string2ld/strtold: no spaces, not NaN.
pub fn parse_f64(arg: &[u8]) -> Result<f64, CmdError> {
    parse_f64_opt(arg).ok_or_else(|| err::NOT_FLOAT.into())
}

pub fn parse_f64_opt(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Client bytes as Redis prints them with "%.<max>s": cut at the first NUL
/// and after `max` bytes.
pub fn cstr(b: &[u8], max: usize) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len()).min(max);
    &b[..end]
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_floats() {
        assert_eq!(parse_i64(b"-12").unwrap(), -12);
        assert!(parse_i64(b"+1").is_err());
        assert!(parse_i64(b"007").is_err());
        assert!(parse_i64(b"1 ").is_err());
        assert!(parse_i64(b"99999999999999999999").is_err());
        assert_eq!(parse_f64(b"1.5").unwrap(), 1.5);
        assert_eq!(parse_f64(b"-inf").unwrap(), f64::NEG_INFINITY);
        assert!(parse_f64(b"nan").is_err());
        assert!(parse_f64(b" 1").is_err());
    }
}
