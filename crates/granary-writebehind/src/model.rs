//! The rows a key produces under its rule, and the operations a flush
//! sends to a sink.

use crate::rules::{ColType, KeyType, Rule};
use granary_keyspace::Value;
use std::sync::Arc;

/// One SQL value, already converted to its column's type.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

impl SqlValue {
    /// Converts Redis bytes to a column's type. Text that is not valid
    /// UTF-8 is converted lossily; a value that does not parse as the
    /// column's type becomes NULL (docs/writebehind.md).
    pub fn convert(ty: ColType, b: &[u8]) -> SqlValue {
        let s = || std::str::from_utf8(b).ok().map(str::trim);
        match ty {
            ColType::Text => SqlValue::Text(text(b)),
            ColType::Bytes => SqlValue::Bytes(b.to_vec()),
            ColType::Integer => s()
                .and_then(|s| s.parse().ok())
                .map_or(SqlValue::Null, SqlValue::Int),
            ColType::Real => s()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .map_or(SqlValue::Null, SqlValue::Real),
            ColType::Boolean => match s().map(str::to_ascii_lowercase).as_deref() {
                Some("1" | "true" | "t" | "yes" | "y" | "on") => SqlValue::Bool(true),
                Some("0" | "false" | "f" | "no" | "n" | "off" | "") => SqlValue::Bool(false),
                _ => SqlValue::Null,
            },
            ColType::Timestamp => s()
                .and_then(parse_epoch_ms)
                .map_or(SqlValue::Null, SqlValue::Timestamp),
        }
    }
}

/// Text for a text column: lossy UTF-8 without NUL (PostgreSQL text cannot
/// hold it).
pub fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.into_owned()
    }
}

/// Unix time in seconds, or in milliseconds when 10^11 or more (later than
/// year 5138 in seconds, 1973 in milliseconds); fractions allowed.
fn parse_epoch_ms(s: &str) -> Option<i64> {
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let ms = if f.abs() >= 1e11 { f } else { f * 1000.0 };
    (ms.abs() < 9.0e15).then_some(ms.round() as i64)
}

/// "YYYY-MM-DD HH:MM:SS.mmm" in UTC (how SQLite's date functions read
/// time), from milliseconds since the epoch.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{milli:03}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What a flush does to a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Insert or update one row (hash, string): key parts then values.
    Upsert { rule: Arc<Rule>, row: Vec<SqlValue> },
    /// Make the key's rows equal `rows` (set, zset): delete then insert.
    Replace {
        rule: Arc<Rule>,
        key: Vec<SqlValue>,
        rows: Vec<Vec<SqlValue>>,
    },
    /// Delete the rows of one key (key parts).
    Delete { rule: Arc<Rule>, key: Vec<SqlValue> },
    /// Insert an appended row unless its id is there already (list).
    Append { rule: Arc<Rule>, row: Vec<SqlValue> },
    /// Delete every row of the rule's table (FLUSHDB of its database).
    Truncate { rule: Arc<Rule> },
}

impl Op {
    /// Rows this operation writes, for chunking and counting.
    pub fn rows(&self) -> usize {
        match self {
            Op::Replace { rows, .. } => rows.len().max(1),
            _ => 1,
        }
    }

    pub fn rule(&self) -> &Arc<Rule> {
        match self {
            Op::Upsert { rule, .. }
            | Op::Replace { rule, .. }
            | Op::Delete { rule, .. }
            | Op::Append { rule, .. }
            | Op::Truncate { rule } => rule,
        }
    }
}

/// The key parts as text values.
pub fn key_values(parts: &[&[u8]]) -> Vec<SqlValue> {
    parts.iter().map(|p| SqlValue::Text(text(p))).collect()
}

/// The Redis type of a value, if write-behind maps that type.
pub fn key_type(v: &Value) -> Option<KeyType> {
    #[allow(unreachable_patterns)]
    Some(match v {
        Value::Hash(_) => KeyType::Hash,
        Value::Str(_) => KeyType::String,
        Value::Set(_) => KeyType::Set,
        Value::ZSet(_) => KeyType::ZSet,
        Value::List(_) => KeyType::List,
        _ => return None,
    })
}

/// The operation that mirrors `value` (the key's current state) under
/// `rule`, whose pattern and type match. Lists produce nothing here: their
/// rows are appended when elements are pushed.
pub fn mirror(rule: &Arc<Rule>, key: &[u8], value: &Value) -> Option<Op> {
    let parts = rule.pattern.captures(key)?;
    let keyv = key_values(&parts);
    let rule = rule.clone();
    #[allow(unreachable_patterns)]
    match value {
        Value::Hash(h) => {
            let mut row = keyv;
            for f in &rule.fields {
                row.push(
                    h.get(&f.field)
                        .map_or(SqlValue::Null, |v| SqlValue::convert(f.column.ty, v)),
                );
            }
            Some(Op::Upsert { rule, row })
        }
        Value::Str(s) => {
            let mut buf = itoa::Buffer::new();
            let mut row = keyv;
            row.push(SqlValue::convert(rule.value.ty, s.bytes(&mut buf)));
            Some(Op::Upsert { rule, row })
        }
        Value::Set(s) => {
            let rows = s
                .iter()
                .map(|m| {
                    let mut row = keyv.clone();
                    row.push(m.with_bytes(|b| SqlValue::convert(rule.value.ty, b)));
                    row
                })
                .collect();
            Some(Op::Replace {
                rule,
                key: keyv,
                rows,
            })
        }
        Value::ZSet(z) => {
            let rows = z
                .iter_from(0, false)
                .map(|(m, score)| {
                    let mut row = keyv.clone();
                    row.push(SqlValue::convert(rule.value.ty, m));
                    row.push(if score.is_finite() {
                        SqlValue::Real(score)
                    } else {
                        SqlValue::Null
                    });
                    row
                })
                .collect();
            Some(Op::Replace {
                rule,
                key: keyv,
                rows,
            })
        }
        _ => None,
    }
}

/// The row an element pushed to a list key produces.
pub fn appended(rule: &Arc<Rule>, id: i64, key: &[u8], value: &[u8]) -> Option<Op> {
    let parts = rule.pattern.captures(key)?;
    let mut row = vec![SqlValue::Int(id)];
    row.extend(key_values(&parts));
    row.push(SqlValue::convert(rule.value.ty, value));
    Some(Op::Append {
        rule: rule.clone(),
        row,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rule;
    use granary_keyspace::types::{hash::Limits, HashValue};

    #[test]
    fn conversions() {
        use SqlValue::*;
        assert_eq!(SqlValue::convert(ColType::Integer, b" 42 "), Int(42));
        assert_eq!(SqlValue::convert(ColType::Integer, b"4x"), Null);
        assert_eq!(SqlValue::convert(ColType::Real, b"1.5"), Real(1.5));
        assert_eq!(SqlValue::convert(ColType::Real, b"inf"), Null);
        assert_eq!(SqlValue::convert(ColType::Boolean, b"TRUE"), Bool(true));
        assert_eq!(SqlValue::convert(ColType::Boolean, b"0"), Bool(false));
        assert_eq!(SqlValue::convert(ColType::Boolean, b"maybe"), Null);
        assert_eq!(
            SqlValue::convert(ColType::Timestamp, b"1700000000"),
            Timestamp(1_700_000_000_000)
        );
        assert_eq!(
            SqlValue::convert(ColType::Timestamp, b"1700000000123"),
            Timestamp(1_700_000_000_123)
        );
        assert_eq!(
            SqlValue::convert(ColType::Text, b"a\0b\xff"),
            Text("ab\u{fffd}".into())
        );
        assert_eq!(
            SqlValue::convert(ColType::Bytes, b"\0\xff"),
            Bytes(vec![0, 255])
        );
    }

    #[test]
    fn timestamps_format_in_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_timestamp(1_700_000_000_123),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn hash_maps_selected_fields() {
        let rule = Arc::new(
            Rule::parse(&[
                "r",
                "hash",
                "{u}:{i}",
                "table=t",
                "fields=readAt:read_at:integer,isRecommended:rec:boolean,missing",
            ])
            .unwrap(),
        );
        let mut h = HashValue::new();
        let lim = Limits {
            max_entries: 128,
            max_value: 64,
        };
        h.set(b"readAt", b"17", lim);
        h.set(b"isRecommended", b"1", lim);
        h.set(b"other", b"x", lim);
        let op = mirror(&rule, b"u1:i9", &Value::Hash(h)).unwrap();
        let Op::Upsert { row, .. } = op else {
            panic!("{op:?}")
        };
        use SqlValue::*;
        assert_eq!(
            row,
            [
                Text("u1".into()),
                Text("i9".into()),
                Int(17),
                Bool(true),
                Null
            ]
        );
    }
}
