//! Redis's intset (intset.c): sorted integers of one width (2, 4 or 8
//! bytes), all little-endian, after a header of the width (u32) and the
//! count (u32).

use crate::codec::{Error, Result};

const HEADER: usize = 8;

/// The narrowest width (2, 4 or 8 bytes) that holds `v`.
pub fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// Builds an intset blob of `width` bytes per value from ascending `values`.
pub fn build(values: &[i64], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + values.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Reads an intset blob, checking its header, its size and that the values
/// are strictly ascending (intsetValidateIntegrity with deep checks).
pub fn parse(b: &[u8]) -> Result<Vec<i64>> {
    if b.len() < HEADER {
        return Err(Error("intset too short"));
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(Error("bad intset encoding"));
    }
    if count.checked_mul(width) != Some(b.len() - HEADER) {
        return Err(Error("intset size mismatch"));
    }
    let mut out: Vec<i64> = Vec::with_capacity(count);
    for chunk in b[HEADER..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([chunk[0], chunk[1]])),
            4 => i64::from(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])),
            _ => {
                let mut a = [0; 8];
                a.copy_from_slice(chunk);
                i64::from_le_bytes(a)
            }
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err(Error("intset not sorted"));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_trip() {
        for vals in [
            vec![-3, 1, 2],
            vec![-70000, 5, 70000],
            vec![i64::MIN, 0, i64::MAX],
        ] {
            let w = vals.iter().map(|&v| width_of(v)).max().unwrap();
            let b = build(&vals, w);
            assert_eq!(b.len(), 8 + vals.len() * w);
            assert_eq!(parse(&b).unwrap(), vals);
        }
        assert_eq!(build(&[1, 2], 2), [2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0]);
    }

    #[test]
    fn corrupt_intsets_are_errors() {
        assert!(parse(&build(&[2, 1], 2)).is_err());
        assert!(parse(&build(&[1, 1], 2)).is_err());
        let mut b = build(&[1, 2], 2);
        b[0] = 3;
        assert!(parse(&b).is_err());
        let b = build(&[1, 2], 4);
        assert!(parse(&b[..b.len() - 1]).is_err());
        let mut b = build(&[1], 2);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b).is_err());
    }
}
