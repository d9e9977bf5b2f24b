//! The rows a key produces under its rule, and the operations a flush
//! sends to a sink.

use crate::rules::{ColType, KeyType, Rule};
use granary_keyspace::types::stream::StreamId;
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
    let ms = (if f.abs() >= 1e11 { f } else { f * 1000.0 }).round();
    (FIRST_MS..=LAST_MS).contains(&ms).then_some(ms as i64)
}

/// Times from year 1 to year 9999: what both sinks read back as written
/// (SQLite's date functions stop at 9999, and a year before 1 would need
/// BC notation).
const FIRST_MS: f64 = -62_135_596_800_000.0;
const LAST_MS: f64 = 253_402_300_799_999.0;

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
    /// Insert an appended row unless its id is there already (list, stream).
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
        Value::Stream(_) => KeyType::Stream,
        _ => return None,
    })
}

/// The operation that mirrors `value` (the key's current state) under
/// `rule`, whose pattern and type match. Lists and streams produce nothing
/// here: their rows are appended when elements or entries are added.
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

/// The row an element pushed to a list key, or an entry added to a stream
/// key, produces. `value` is the element, or the entry as
/// [`encode_stream_entry`] wrote it; None if the key does not match or the
/// entry does not decode (a journal from another build may hold anything).
pub fn appended(rule: &Arc<Rule>, id: i64, key: &[u8], value: &[u8]) -> Option<Op> {
    let parts = rule.pattern.captures(key)?;
    let mut row = vec![SqlValue::Int(id)];
    row.extend(key_values(&parts));
    if rule.ty == KeyType::Stream {
        let Some(entry) = decode_stream_entry(value) else {
            tracing::warn!(
                "write-behind: rule {}: row {id} is not a stream entry; dropped",
                rule.name
            );
            return None;
        };
        stream_columns(rule, &entry, &mut row);
    } else {
        row.push(SqlValue::convert(rule.value.ty, value));
    }
    Some(Op::Append {
        rule: rule.clone(),
        row,
    })
}

/// A stream entry's columns: its ID, then the kept fields (the last
/// occurrence of a field repeated in the entry) or the JSON object.
fn stream_columns(rule: &Rule, entry: &StreamEntry<'_>, row: &mut Vec<SqlValue>) {
    row.push(SqlValue::Text(entry.id.to_string()));
    if rule.fields.is_empty() {
        row.push(SqlValue::Text(entry_json(&entry.fields)));
        return;
    }
    for f in &rule.fields {
        let v = entry.fields.iter().rev().find(|(k, _)| *k == f.field);
        row.push(v.map_or(SqlValue::Null, |(_, v)| SqlValue::convert(f.column.ty, v)));
    }
}

// ------------------------------------------------------------ stream entries

/// First byte of an encoded stream entry: a format tag, so bytes of
/// another kind (or a later format) are refused rather than misread.
const STREAM_ENTRY_V1: u8 = 0xF5;

/// One stream entry as the journal and the pending set carry it.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamEntry<'a> {
    pub id: StreamId,
    /// Field/value pairs in the order XADD gave them.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
}

/// Encodes a stream entry (its ID and the flat field, value, ... list
/// XADD got) into one byte string: the tag, the ID's ms and seq, then
/// each field and value, every number a LEB128 varint and every string
/// length-prefixed. [`decode_stream_entry`] reads it back.
pub fn encode_stream_entry(id: StreamId, fields: &[&[u8]]) -> Vec<u8> {
    let size: usize = fields.iter().map(|f| f.len() + 2).sum();
    let mut out = Vec::with_capacity(21 + size);
    out.push(STREAM_ENTRY_V1);
    put_varint(&mut out, id.ms);
    put_varint(&mut out, id.seq);
    for pair in fields.chunks_exact(2) {
        for s in pair {
            put_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s);
        }
    }
    out
}

/// Reads what [`encode_stream_entry`] wrote; None for anything else
/// (another tag, a truncated or overlong number or string, a field
/// without its value, trailing bytes). Never panics.
pub fn decode_stream_entry(b: &[u8]) -> Option<StreamEntry<'_>> {
    let (&tag, mut rest) = b.split_first()?;
    if tag != STREAM_ENTRY_V1 {
        return None;
    }
    let ms = get_varint(&mut rest)?;
    let seq = get_varint(&mut rest)?;
    let mut fields = vec![];
    while !rest.is_empty() {
        let k = get_bytes(&mut rest)?;
        let v = get_bytes(&mut rest)?;
        fields.push((k, v));
    }
    Some(StreamEntry {
        id: StreamId::new(ms, seq),
        fields,
    })
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A LEB128 u64 at the start of `b`, advancing it; None if cut short or
/// longer than 64 bits.
fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// A length-prefixed string at the start of `b`, advancing it.
fn get_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(b)?).ok()?;
    if len > b.len() {
        return None;
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    Some(s)
}

/// The entry's pairs as a JSON object, in order (a repeated field appears
/// each time, as XRANGE shows it). Strings are text as text columns are:
/// invalid UTF-8 replaced; control characters, NUL included, escaped.
pub fn entry_json(fields: &[(&[u8], &[u8])]) -> String {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = String::with_capacity(size + 2);
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, k);
        out.push(':');
        json_string(&mut out, v);
    }
    out.push('}');
    out
}

fn json_string(out: &mut String, b: &[u8]) {
    use std::fmt::Write;
    out.push('"');
    for ch in String::from_utf8_lossy(b).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
            SqlValue::convert(ColType::Timestamp, b"253402300799999"),
            Timestamp(253_402_300_799_999)
        );
        assert_eq!(
            SqlValue::convert(ColType::Timestamp, b"-62135596800"),
            Timestamp(-62_135_596_800_000)
        );
        assert_eq!(
            SqlValue::convert(ColType::Timestamp, b"253402300800000"),
            Null
        );
        assert_eq!(
            SqlValue::convert(ColType::Timestamp, b"-62135596800001"),
            Null
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
        assert_eq!(
            format_timestamp(-62_135_596_800_000),
            "0001-01-01 00:00:00.000"
        );
        assert_eq!(
            format_timestamp(253_402_300_799_999),
            "9999-12-31 23:59:59.999"
        );
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

    #[test]
    fn stream_entries_round_trip() {
        let big = vec![b'x'; 300];
        let cases: [(StreamId, Vec<&[u8]>); 4] = [
            (
                StreamId::new(1_700_000_000_000, 0),
                vec![b"a", b"1", b"b", b""],
            ),
            (StreamId::new(u64::MAX, u64::MAX), vec![b"", b"\0\xff"]),
            (StreamId::new(0, 1), vec![b"dup", b"1", b"dup", &big]),
            (StreamId::new(5, 127), vec![]),
        ];
        for (id, flat) in &cases {
            let enc = encode_stream_entry(*id, flat);
            let dec = decode_stream_entry(&enc).unwrap();
            assert_eq!(dec.id, *id);
            let pairs: Vec<(&[u8], &[u8])> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
            assert_eq!(dec.fields, pairs);
        }
    }

    #[test]
    fn malformed_stream_entries_decode_to_none() {
        let good = encode_stream_entry(StreamId::new(1_700_000_000_000, 3), &[b"field", b"value"]);
        // Every strict prefix is cut short somewhere (past the ID, a field
        // without its value or a string shorter than its length).
        for n in 0..good.len() {
            let cut = &good[..n];
            let ok = decode_stream_entry(cut).is_some();
            assert!(!ok || n == 1 + 6 + 1, "prefix {n} decoded");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_stream_entry(&trailing).is_none());
        assert!(decode_stream_entry(b"plain list element").is_none());
        assert!(decode_stream_entry(&[
            STREAM_ENTRY_V1,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
            0
        ])
        .is_none());
        assert!(
            decode_stream_entry(&[STREAM_ENTRY_V1, 1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'])
                .is_none()
        );
        // Arbitrary bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let mut b = vec![STREAM_ENTRY_V1];
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            let _ = decode_stream_entry(&b);
        }
    }

    #[test]
    fn stream_rows_hold_fields_or_json() {
        let enc = encode_stream_entry(
            StreamId::new(1_700_000_000_000, 2),
            &[
                b"item",
                b"7",
                b"at",
                b"1700000000",
                b"item",
                b"8",
                b"q\"\n",
                b"\x01\xff",
            ],
        );
        let json = Arc::new(Rule::parse(&["s", "stream", "ev:{u}", "table=t"]).unwrap());
        let Some(Op::Append { row, .. }) = appended(&json, 9, b"ev:42", &enc) else {
            panic!("no row")
        };
        use SqlValue::*;
        assert_eq!(
            row,
            [
                Int(9),
                Text("42".into()),
                Text("1700000000000-2".into()),
                Text(r#"{"item":"7","at":"1700000000","item":"8","q\"\n":"\u0001�"}"#.into())
            ]
        );
        let cols = Arc::new(
            Rule::parse(&[
                "s",
                "stream",
                "ev:{u}",
                "table=t",
                "fields=item:integer,at:timestamp,none",
            ])
            .unwrap(),
        );
        let Some(Op::Append { row, .. }) = appended(&cols, 10, b"ev:42", &enc) else {
            panic!("no row")
        };
        assert_eq!(
            row,
            [
                Int(10),
                Text("42".into()),
                Text("1700000000000-2".into()),
                Int(8),
                Timestamp(1_700_000_000_000),
                Null
            ]
        );
        assert!(appended(&cols, 11, b"ev:42", b"not an entry").is_none());
        assert!(appended(&cols, 11, b"other", &enc).is_none());
    }
}
