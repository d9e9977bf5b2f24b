//! Rules: which keys map to which table, and how.
//!
//! One rule is one line of words (docs/writebehind.md):
//!
//! ```text
//! <name> <type> <pattern> table=<table> [db=<n>] [fields=<f>[:<col>][:<type>],...]
//!        [value=<col>[:<type>]] [member=<col>[:<type>]] [score=<col>] [id=<col>]
//!        [entry-id=<col>] [on-delete=delete|keep]
//! ```
//!
//! The pattern names its parts: `read:{user_id}:{item_id}` matches
//! `read:42:7` with user_id = "42" and item_id = "7". Each `{name}` captures
//! non-empty text up to the first occurrence of the literal that follows it
//! (the last one takes the rest); literal parts must match exactly. The
//! captured parts become the key columns of the table.

use std::fmt;

/// The Redis type a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Hash,
    String,
    Set,
    ZSet,
    List,
    Stream,
}

impl KeyType {
    fn parse(s: &str) -> Option<KeyType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "hash" => KeyType::Hash,
            "string" => KeyType::String,
            "set" => KeyType::Set,
            "zset" => KeyType::ZSet,
            "list" => KeyType::List,
            "stream" => KeyType::Stream,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Hash => "hash",
            KeyType::String => "string",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::List => "list",
            KeyType::Stream => "stream",
        }
    }

    /// Appended rows instead of a mirror of the current state.
    pub fn is_append(self) -> bool {
        matches!(self, KeyType::List | KeyType::Stream)
    }
}

/// A column's SQL type, as rules spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    Text,
    Integer,
    Real,
    Boolean,
    Timestamp,
    Bytes,
}

impl ColType {
    fn parse(s: &str) -> Option<ColType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "text" => ColType::Text,
            "integer" => ColType::Integer,
            "real" => ColType::Real,
            "boolean" => ColType::Boolean,
            "timestamp" => ColType::Timestamp,
            "bytes" => ColType::Bytes,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ColType::Text => "text",
            ColType::Integer => "integer",
            ColType::Real => "real",
            ColType::Boolean => "boolean",
            ColType::Timestamp => "timestamp",
            ColType::Bytes => "bytes",
        }
    }
}

/// One table column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
}

/// A hash field kept as a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMap {
    pub field: Vec<u8>,
    pub column: Column,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    Capture,
}

/// A key pattern, pre-split so matching is a few slice compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
    /// Capture names in order: the key columns.
    pub names: Vec<String>,
    /// Literal text every key must start / end with (cheap rejection).
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut parts = vec![];
        let mut names = vec![];
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in pattern '{text}'"))?;
                let name = &after[..end];
                check_ident(name)?;
                if names.iter().any(|n| n == name) {
                    return Err(format!("part '{name}' named twice in pattern '{text}'"));
                }
                if parts.last() == Some(&Part::Capture) {
                    return Err(format!(
                        "parts need literal text between them in pattern '{text}'"
                    ));
                }
                names.push(name.to_string());
                parts.push(Part::Capture);
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                if rest[..end].contains('}') {
                    return Err(format!("unmatched '}}' in pattern '{text}'"));
                }
                parts.push(Part::Lit(rest.as_bytes()[..end].to_vec()));
                rest = &rest[end..];
            }
        }
        if names.is_empty() {
            return Err(format!(
                "pattern '{text}' names no part: use {{name}} for the key columns"
            ));
        }
        let prefix = match parts.first() {
            Some(Part::Lit(l)) => l.clone(),
            _ => vec![],
        };
        let suffix = match parts.last() {
            Some(Part::Lit(l)) if parts.len() > 1 => l.clone(),
            _ => vec![],
        };
        Ok(Pattern {
            text: text.to_string(),
            parts,
            names,
            prefix,
            suffix,
        })
    }

    /// Whether `key` matches. No allocation: every write to a key runs
    /// this while write-behind is on.
    pub fn matches(&self, key: &[u8]) -> bool {
        self.walk(key, &mut |_| {}).is_some()
    }

    /// The captured parts of `key`, in order, or None if it does not match.
    pub fn captures<'k>(&self, key: &'k [u8]) -> Option<Vec<&'k [u8]>> {
        let mut out = Vec::with_capacity(self.names.len());
        self.walk(key, &mut |part| out.push(part))?;
        Some(out)
    }

    /// Matches `key`, handing each captured part to `part` in order.
    fn walk<'k>(&self, key: &'k [u8], part: &mut impl FnMut(&'k [u8])) -> Option<()> {
        if key.len() < self.prefix.len() + self.suffix.len()
            || !same(&key[..self.prefix.len()], &self.prefix)
            || !same(&key[key.len() - self.suffix.len()..], &self.suffix)
        {
            return None;
        }
        // The first literal is the prefix, compared above.
        let (mut pos, mut i) = match self.prefix.is_empty() {
            true => (0, 0),
            false => (self.prefix.len(), 1),
        };
        while i < self.parts.len() {
            match &self.parts[i] {
                Part::Lit(l) => {
                    if !key[pos..].get(..l.len()).is_some_and(|k| same(k, l)) {
                        return None;
                    }
                    pos += l.len();
                }
                Part::Capture => {
                    let end = match self.parts.get(i + 1) {
                        None => key.len(),
                        Some(Part::Lit(l)) if i + 2 == self.parts.len() => {
                            // The last literal is the suffix: anchor it at the end.
                            key.len().checked_sub(l.len()).filter(|&e| e >= pos)?
                        }
                        Some(Part::Lit(l)) => {
                            // Non-empty capture: search from one past `pos`.
                            let from = pos + 1;
                            from + find(key.get(from..)?, l)?
                        }
                        Some(Part::Capture) => return None,
                    };
                    if end <= pos {
                        return None;
                    }
                    part(&key[pos..end]);
                    pos = end;
                }
            }
            i += 1;
        }
        (pos == key.len()).then_some(())
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Equal slices of equal length. Pattern literals are a few bytes, often
/// none: a call to libc's memcmp showed at 13 % of a write-behind LPUSH
/// profile for empty and 4-byte compares, and a byte loop at 80
/// instructions for a 7-byte prefix (callgrind). Up to 16 bytes this is
/// two overlapping word loads per side.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half =
        |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Table and column names: plain SQL identifiers, so they never need
/// quoting tricks and read the same in SQLite and PostgreSQL.
fn check_ident(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not a valid name (letters, digits and _, not starting with a digit)"
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub ty: KeyType,
    pub pattern: Pattern,
    pub table: String,
    pub db: usize,
    /// Hash and stream: the fields kept, in column order.
    pub fields: Vec<FieldMap>,
    /// String and list: the value column. Set and zset: the member column.
    /// Stream without `fields`: the column holding the entry as JSON.
    pub value: Column,
    /// Zset: the score column.
    pub score: String,
    /// List and stream: the row id column.
    pub id: String,
    /// Stream: the column holding the entry ID ("1700000000000-0").
    pub entry_id: String,
    /// Deleting the key deletes its rows (else they stay).
    pub delete_rows: bool,
    /// The line the rule was parsed from, for RULES and CONFIG REWRITE.
    pub spec: String,
}

impl Rule {
    /// Parses one rule from its words.
    pub fn parse(words: &[&str]) -> Result<Rule, String> {
        let [name, ty, pattern, opts @ ..] = words else {
            return Err("a rule is: <name> <type> <pattern> table=<table> [options]".into());
        };
        check_ident(name)?;
        let ty = KeyType::parse(ty).ok_or_else(|| {
            format!("unknown key type '{ty}' (hash, string, set, zset, list or stream)")
        })?;
        let pattern = Pattern::parse(pattern)?;
        let default_value = match ty {
            KeyType::Set | KeyType::ZSet => "member",
            _ => "value",
        };
        let mut rule = Rule {
            name: name.to_string(),
            ty,
            pattern,
            table: String::new(),
            db: 0,
            fields: vec![],
            value: Column {
                name: default_value.into(),
                ty: ColType::Text,
            },
            score: "score".into(),
            id: "id".into(),
            entry_id: "entry_id".into(),
            delete_rows: !ty.is_append(),
            spec: words.join(" "),
        };
        let mut given = vec![];
        for opt in opts {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| format!("option '{opt}' is not name=value"))?;
            let k = k.to_ascii_lowercase();
            rule.set_option(&k, v)?;
            given.push(k);
        }
        let has = |opt: &str| given.iter().any(|k| k == opt);
        if ty == KeyType::Stream && has("fields") && has("value") {
            return Err(format!(
                "stream rule '{name}' takes fields=... (fields as columns) or value=<column> (the entry as JSON), not both"
            ));
        }
        rule.validate()?;
        Ok(rule)
    }

    fn set_option(&mut self, k: &str, v: &str) -> Result<(), String> {
        let ty = self.ty;
        let only = |types: &[KeyType]| {
            if types.contains(&ty) {
                Ok(())
            } else {
                Err(format!(
                    "option '{k}' does not apply to {} rules",
                    ty.name()
                ))
            }
        };
        match k {
            "table" => {
                check_ident(v)?;
                self.table = v.to_string();
            }
            "db" => {
                self.db = v
                    .parse()
                    .map_err(|_| format!("db '{v}' is not a database number"))?
            }
            "fields" => {
                only(&[KeyType::Hash, KeyType::Stream])?;
                self.fields = v.split(',').map(parse_field).collect::<Result<_, _>>()?;
            }
            "value" => {
                only(&[KeyType::String, KeyType::List, KeyType::Stream])?;
                self.value = parse_column(v)?;
            }
            "member" => {
                only(&[KeyType::Set, KeyType::ZSet])?;
                self.value = parse_column(v)?;
            }
            "score" => {
                only(&[KeyType::ZSet])?;
                check_ident(v)?;
                self.score = v.to_string();
            }
            "id" => {
                only(&[KeyType::List, KeyType::Stream])?;
                check_ident(v)?;
                self.id = v.to_string();
            }
            "entry-id" => {
                only(&[KeyType::Stream])?;
                check_ident(v)?;
                self.entry_id = v.to_string();
            }
            "on-delete" => {
                self.delete_rows = match v.to_ascii_lowercase().as_str() {
                    "delete" => true,
                    "keep" => false,
                    _ => return Err(format!("on-delete must be delete or keep, not '{v}'")),
                };
                if self.delete_rows && ty.is_append() {
                    return Err(format!(
                        "{} rules append rows: on-delete=delete is not supported",
                        ty.name()
                    ));
                }
            }
            _ => return Err(format!("unknown option '{k}'")),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        if self.table.is_empty() {
            return Err(format!("rule '{}' needs table=<name>", self.name));
        }
        if self.ty == KeyType::Hash && self.fields.is_empty() {
            return Err(format!(
                "hash rule '{}' needs fields=<field>[:<column>][:<type>],...",
                self.name
            ));
        }
        if self.ty == KeyType::Stream && self.fields.is_empty() && self.value.ty != ColType::Text {
            return Err(format!(
                "stream rule '{}' writes each entry as a JSON object into value={}: its type must be text",
                self.name, self.value.name
            ));
        }
        let cols = self.columns();
        for (i, c) in cols.iter().enumerate() {
            if cols[..i]
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(format!(
                    "column '{}' appears twice in rule '{}'",
                    c.name, self.name
                ));
            }
        }
        Ok(())
    }

    /// The table's columns in order: for lists and streams the id first,
    /// then the key parts, then the mapped values (streams: the entry ID,
    /// then the kept fields or the JSON column).
    pub fn columns(&self) -> Vec<Column> {
        let text = |n: &str| Column {
            name: n.to_string(),
            ty: ColType::Text,
        };
        let mut cols = vec![];
        if self.ty.is_append() {
            cols.push(Column {
                name: self.id.clone(),
                ty: ColType::Integer,
            });
        }
        cols.extend(self.pattern.names.iter().map(|n| text(n)));
        match self.ty {
            KeyType::Hash => cols.extend(self.fields.iter().map(|f| f.column.clone())),
            KeyType::String | KeyType::List | KeyType::Set => cols.push(self.value.clone()),
            KeyType::ZSet => {
                cols.push(self.value.clone());
                cols.push(Column {
                    name: self.score.clone(),
                    ty: ColType::Real,
                });
            }
            KeyType::Stream => {
                cols.push(text(&self.entry_id));
                if self.fields.is_empty() {
                    cols.push(self.value.clone());
                } else {
                    cols.extend(self.fields.iter().map(|f| f.column.clone()));
                }
            }
        }
        cols
    }

    /// The columns that identify a row (the primary key).
    pub fn key_columns(&self) -> Vec<String> {
        let mut k: Vec<String> = vec![];
        match self.ty {
            KeyType::List | KeyType::Stream => k.push(self.id.clone()),
            KeyType::Hash | KeyType::String => k.extend(self.pattern.names.iter().cloned()),
            KeyType::Set | KeyType::ZSet => {
                k.extend(self.pattern.names.iter().cloned());
                k.push(self.value.name.clone());
            }
        }
        k
    }
}

fn parse_column(v: &str) -> Result<Column, String> {
    let (name, ty) = match v.split_once(':') {
        Some((n, t)) => (
            n,
            ColType::parse(t).ok_or_else(|| format!("unknown column type '{t}'"))?,
        ),
        None => (v, ColType::Text),
    };
    check_ident(name)?;
    Ok(Column {
        name: name.to_string(),
        ty,
    })
}

/// `field[:column][:type]`; a lone second part that is a type name is the
/// type (`readAt:timestamp`), else the column.
fn parse_field(v: &str) -> Result<FieldMap, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let (field, column, ty) = match parts[..] {
        [f] => (f, f, "text"),
        [f, t] if ColType::parse(t).is_some() => (f, f, t),
        [f, c] => (f, c, "text"),
        [f, c, t] => (f, c, t),
        _ => return Err(format!("field '{v}' is not field[:column][:type]")),
    };
    if field.is_empty() {
        return Err("empty field name".into());
    }
    let column = parse_column(&format!("{column}:{ty}"))?;
    Ok(FieldMap {
        field: field.as_bytes().to_vec(),
        column,
    })
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// The rules in order; the first whose pattern and type match a key wins.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<std::sync::Arc<Rule>>,
}

impl RuleSet {
    /// Parses rules separated by ';' or newlines (the config value form).
    pub fn parse(text: &str) -> Result<RuleSet, String> {
        let mut set = RuleSet::default();
        for line in text.split([';', '\n']) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            set.add(Rule::parse(&words)?)?;
        }
        Ok(set)
    }

    pub fn add(&mut self, rule: Rule) -> Result<(), String> {
        if self.rules.iter().any(|r| r.name == rule.name) {
            return Err(format!("a rule named '{}' exists", rule.name));
        }
        if let Some(other) = self
            .rules
            .iter()
            .find(|r| r.table.eq_ignore_ascii_case(&rule.table))
        {
            if other.columns() != rule.columns() || other.ty != rule.ty {
                return Err(format!(
                    "table '{}' is already mapped by rule '{}' with other columns",
                    rule.table, other.name
                ));
            }
        }
        self.rules.push(std::sync::Arc::new(rule));
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.name != name);
        self.rules.len() != before
    }

    /// The config value form: rules joined by "; ".
    pub fn render(&self) -> String {
        let specs: Vec<&str> = self.rules.iter().map(|r| r.spec.as_str()).collect();
        specs.join("; ")
    }

    /// Whether any rule's pattern matches `key` in database `db`.
    pub fn any_matches(&self, db: usize, key: &[u8]) -> bool {
        self.rules
            .iter()
            .any(|r| r.db == db && r.pattern.matches(key))
    }

    /// Whether a rule that mirrors state (not an append rule) matches
    /// `key`: only those need a changed key marked pending.
    pub fn mirrors(&self, db: usize, key: &[u8]) -> bool {
        self.rules
            .iter()
            .any(|r| r.db == db && !r.ty.is_append() && r.pattern.matches(key))
    }

    /// The first rule for a key of type `ty`.
    pub fn find(&self, db: usize, key: &[u8], ty: KeyType) -> Option<&std::sync::Arc<Rule>> {
        self.rules
            .iter()
            .find(|r| r.db == db && r.ty == ty && r.pattern.matches(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &str, k: &str) -> Option<Vec<String>> {
        Pattern::parse(p).unwrap().captures(k.as_bytes()).map(|v| {
            v.into_iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        })
    }

    #[test]
    fn literals_compare_at_every_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!same(&a, &b), "{n} {i}");
            }
            assert!(!same(&a, &a[..n.saturating_sub(1)]) || n == 0, "{n}");
        }
    }

    #[test]
    fn patterns_capture_parts() {
        assert_eq!(caps("read:{u}:{i}", "read:42:7").unwrap(), ["42", "7"]);
        assert_eq!(caps("read:{u}:{i}", "read:42:7:9").unwrap(), ["42", "7:9"]);
        assert_eq!(caps("{u}:readItemId", "u1:readItemId").unwrap(), ["u1"]);
        assert_eq!(
            caps("{u}:{i}", "u1:readItemId").unwrap(),
            ["u1", "readItemId"]
        );
        assert_eq!(caps("recommend:{u}", "recommend:5").unwrap(), ["5"]);
        assert_eq!(caps("a{x}b{y}c", "a1b2c").unwrap(), ["1", "2"]);
        assert_eq!(caps("a{x}b{y}c", "abb2c").unwrap(), ["b", "2"]);
        assert!(caps("recommend:{u}", "recommend:").is_none());
        assert!(caps("recommend:{u}", "recommen:1").is_none());
        assert!(caps("{u}:readItemId", ":readItemId").is_none());
        assert!(caps("{u}:{i}", "nocolon").is_none());
        assert!(caps("{u}:{i}", "a:").is_none());
        assert!(caps("x{u}x", "xx").is_none());
        assert!(caps("x{u}x", "xax").is_some());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("plain").is_err());
        assert!(Pattern::parse("{a}{b}").is_err());
        assert!(Pattern::parse("{a").is_err());
        assert!(Pattern::parse("{a}:{a}").is_err());
        assert!(Pattern::parse("{1a}").is_err());
        assert!(Pattern::parse("a}{b}").is_err());
    }

    #[test]
    fn rules_parse_with_options() {
        let r = Rule::parse(&[
            "reads",
            "hash",
            "{user_id}:{item_id}",
            "table=reads",
            "fields=readAt:read_at:timestamp,isRecommended:is_recommended:boolean,x:integer",
        ])
        .unwrap();
        let cols: Vec<String> = r
            .columns()
            .iter()
            .map(|c| format!("{}:{}", c.name, c.ty.name()))
            .collect();
        assert_eq!(
            cols,
            [
                "user_id:text",
                "item_id:text",
                "read_at:timestamp",
                "is_recommended:boolean",
                "x:integer"
            ]
        );
        assert_eq!(r.key_columns(), ["user_id", "item_id"]);
        assert!(r.delete_rows);
        let l = Rule::parse(&[
            "recs",
            "list",
            "recommend:{user_id}",
            "table=recs",
            "value=item_id",
        ])
        .unwrap();
        assert_eq!(l.key_columns(), ["id"]);
        assert!(!l.delete_rows);
        let z = Rule::parse(&["z", "zset", "board:{b}", "table=b", "on-delete=keep"]).unwrap();
        assert_eq!(z.key_columns(), ["b", "member"]);
        assert!(!z.delete_rows);
    }

    #[test]
    fn bad_rules_say_why() {
        let e = |w: &[&str]| Rule::parse(w).unwrap_err();
        assert!(e(&["r", "hash", "{a}", "table=t"]).contains("fields="));
        assert!(e(&["r", "blob", "{a}", "table=t"]).contains("unknown key type"));
        assert!(e(&["r", "set", "{a}"]).contains("table="));
        assert!(e(&["r", "set", "{a}", "table=t", "fields=x"]).contains("does not apply"));
        assert!(e(&["r", "set", "{a}", "table=t", "member=a"]).contains("twice"));
        assert!(e(&["r", "list", "{a}", "table=t", "on-delete=delete"]).contains("append"));
        assert!(e(&["r", "set", "{a}", "table=t;drop"]).contains("not a valid name"));
        assert!(e(&["r", "set", "{a}", "table=t", "bogus=1"]).contains("unknown option"));
    }

    #[test]
    fn stream_rules_take_fields_or_a_json_column() {
        let names = |r: &Rule| -> Vec<String> {
            r.columns()
                .iter()
                .map(|c| format!("{}:{}", c.name, c.ty.name()))
                .collect()
        };
        let j = Rule::parse(&["ev", "stream", "events:{user_id}", "table=events"]).unwrap();
        assert_eq!(j.ty, KeyType::Stream);
        assert!(j.ty.is_append() && !j.delete_rows);
        assert_eq!(
            names(&j),
            ["id:integer", "user_id:text", "entry_id:text", "value:text"]
        );
        assert_eq!(j.key_columns(), ["id"]);
        let f = Rule::parse(&[
            "ev",
            "STREAM",
            "events:{user_id}",
            "table=events",
            "id=row_id",
            "entry-id=eid",
            "fields=item:item_id:integer,at:timestamp,note",
            "on-delete=keep",
        ])
        .unwrap();
        assert_eq!(
            names(&f),
            [
                "row_id:integer",
                "user_id:text",
                "eid:text",
                "item_id:integer",
                "at:timestamp",
                "note:text"
            ]
        );
        assert_eq!(f.key_columns(), ["row_id"]);
        let v = Rule::parse(&["ev", "stream", "e:{u}", "table=t", "value=doc"]).unwrap();
        assert_eq!(names(&v)[3], "doc:text");
        let e = |w: &[&str]| Rule::parse(w).unwrap_err();
        let both = e(&["r", "stream", "{a}", "table=t", "fields=x", "value=v"]);
        assert!(both.contains("not both"), "{both}");
        assert!(e(&["r", "stream", "{a}", "table=t", "value=v:integer"]).contains("JSON"));
        assert!(e(&["r", "stream", "{a}", "table=t", "on-delete=delete"])
            .contains("stream rules append"));
        assert!(e(&["r", "stream", "{a}", "table=t", "member=m"]).contains("does not apply"));
        assert!(e(&["r", "list", "{a}", "table=t", "entry-id=e"]).contains("does not apply"));
        assert!(e(&["r", "stream", "{a}", "table=t", "entry-id=a"]).contains("twice"));
        assert!(e(&["r", "stream", "{a}", "table=t", "fields=x:id"]).contains("twice"));
        let set = RuleSet::parse("s stream log:{k} table=t").unwrap();
        assert!(set.any_matches(0, b"log:x") && !set.mirrors(0, b"log:x"));
        assert!(set.find(0, b"log:x", KeyType::Stream).is_some());
        assert!(set.find(0, b"log:x", KeyType::List).is_none());
    }

    #[test]
    fn first_matching_rule_of_the_type_wins() {
        let set = RuleSet::parse(
            "s set {u}:readItemId table=read_items member=item_id; \
             h hash {u}:{i} table=reads fields=readAt",
        )
        .unwrap();
        assert_eq!(
            set.find(0, b"u1:readItemId", KeyType::Set).unwrap().name,
            "s"
        );
        assert_eq!(
            set.find(0, b"u1:readItemId", KeyType::Hash).unwrap().name,
            "h"
        );
        assert_eq!(set.find(0, b"u1:42", KeyType::Hash).unwrap().name, "h");
        assert!(set.find(0, b"u1:42", KeyType::Set).is_none());
        assert!(set.find(1, b"u1:42", KeyType::Hash).is_none());
        assert!(set.any_matches(0, b"u1:42"));
        assert!(set.mirrors(0, b"u1:42"));
        let lists = RuleSet::parse("l list {k} table=t").unwrap();
        assert!(lists.any_matches(0, b"x") && !lists.mirrors(0, b"x"));
        assert!(!set.any_matches(0, b"nothing"));
        let again = RuleSet::parse(&set.render()).unwrap();
        assert_eq!(again.rules.len(), 2);
        let mut set = set;
        assert!(set
            .add(Rule::parse(&["s", "set", "{u}", "table=other"]).unwrap())
            .is_err());
        assert!(set.remove("s"));
        assert!(!set.remove("s"));
    }
}
