//! The SQLite sink: one file, prepared statements, one transaction per
//! chunk.

use super::{column_error, ident, ident_list, Sink};
use crate::model::{format_timestamp, Op, SqlValue};
use crate::rules::{ColType, Rule};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ToSql};
use std::collections::HashMap;
use std::sync::Arc;

pub struct SqliteSink {
    conn: Connection,
    /// Each rule's statements, built once (by rule name).
    sql: HashMap<String, RuleSql>,
}

/// The SQL text of a rule's statements (prepared and cached by SQLite's
/// statement cache, looked up by this text).
struct RuleSql {
    table: String,
    upsert: String,
    append: String,
    delete: String,
    truncate: String,
}

impl RuleSql {
    fn new(rule: &Rule) -> RuleSql {
        RuleSql {
            table: rule.table.clone(),
            upsert: upsert_sql(rule),
            append: insert_sql(rule, "DO NOTHING"),
            delete: delete_sql(rule),
            truncate: format!("DELETE FROM {}", ident(&rule.table)),
        }
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlValue::Int(i) => ToSqlOutput::from(*i),
            SqlValue::Real(f) => ToSqlOutput::from(*f),
            SqlValue::Bool(b) => ToSqlOutput::from(*b as i64),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlValue::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlValue::Timestamp(ms) => ToSqlOutput::from(format_timestamp(*ms)),
        })
    }
}

/// The declared SQL type a new table gets for a column.
fn decl(ty: ColType) -> &'static str {
    match ty {
        ColType::Text | ColType::Timestamp => "TEXT",
        ColType::Integer | ColType::Boolean => "INTEGER",
        ColType::Real => "REAL",
        ColType::Bytes => "BLOB",
    }
}

/// SQLite's type affinity of a declared type (its section 3.1 rules).
fn affinity(declared: &str) -> &'static str {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        "INTEGER"
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        "TEXT"
    } else if d.contains("BLOB") || d.is_empty() {
        "BLOB"
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// Whether an existing column of type `declared` holds `ty` values faithfully.
fn compatible(declared: &str, ty: ColType) -> bool {
    let a = affinity(declared);
    match ty {
        ColType::Text => a == "TEXT" || a == "BLOB",
        ColType::Integer | ColType::Boolean => matches!(a, "INTEGER" | "NUMERIC"),
        ColType::Real => matches!(a, "REAL" | "NUMERIC"),
        ColType::Timestamp => matches!(a, "TEXT" | "NUMERIC" | "BLOB"),
        ColType::Bytes => a == "BLOB",
    }
}

fn err(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

impl SqliteSink {
    pub fn open(path: &str) -> Result<SqliteSink, String> {
        let conn = Connection::open(path).map_err(|e| format!("sqlite: can't open {path}: {e}"))?;
        // WAL lets readers look while the flusher writes; FULL syncs each
        // commit, so a committed chunk survives a power loss. Pages are
        // read through a memory map and a 64 MB cache: upserts look up
        // their keys' index pages, and read() calls per page cost more
        // than the lookups.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; \
             PRAGMA mmap_size=268435456; PRAGMA cache_size=-65536;",
        )
        .map_err(err)?;
        conn.set_prepared_statement_cache_capacity(256);
        Ok(SqliteSink {
            conn,
            sql: HashMap::new(),
        })
    }

    fn create(&mut self, rule: &Rule) -> Result<(), String> {
        let cols: Vec<String> = rule
            .columns()
            .iter()
            .map(|c| {
                if rule.ty.is_append() && c.name == rule.id {
                    format!("{} INTEGER PRIMARY KEY", ident(&c.name))
                } else {
                    format!("{} {}", ident(&c.name), decl(c.ty))
                }
            })
            .collect();
        let pk = if rule.ty.is_append() {
            String::new()
        } else {
            format!(", PRIMARY KEY ({})", ident_list(&rule.key_columns()))
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}{pk})",
            ident(&rule.table),
            cols.join(", ")
        );
        self.conn.execute_batch(&sql).map_err(err)
    }

    /// Checks an existing table: every column there with a compatible
    /// type, and the rule's key columns as its primary key.
    fn check(&mut self, rule: &Rule, existing: &[(String, String, i64)]) -> Result<(), String> {
        for c in rule.columns() {
            let found = existing
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(&c.name));
            match found {
                None => return Err(column_error(rule, &c.name, None, c.ty)),
                Some((_, t, _)) if !compatible(t, c.ty) => {
                    return Err(column_error(rule, &c.name, Some(t), c.ty))
                }
                _ => {}
            }
        }
        let mut pk: Vec<(i64, String)> = existing
            .iter()
            .filter(|(_, _, k)| *k > 0)
            .map(|(n, _, k)| (*k, n.to_ascii_lowercase()))
            .collect();
        pk.sort();
        let mut have: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        have.sort();
        let mut want: Vec<String> = rule
            .key_columns()
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        want.sort();
        if have != want {
            return Err(format!(
                "table {} has primary key ({}), rule {} needs ({}) (the table is never altered)",
                rule.table,
                have.join(", "),
                rule.name,
                want.join(", ")
            ));
        }
        Ok(())
    }

    /// The statements of `rule`, built when not seen yet (or when its
    /// name now maps another table).
    fn rule_sql(&mut self, rule: &Rule) -> &RuleSql {
        let stale = self
            .sql
            .get(&rule.name)
            .is_none_or(|s| s.table != rule.table);
        if stale {
            self.sql.insert(rule.name.clone(), RuleSql::new(rule));
        }
        &self.sql[&rule.name]
    }
}

/// One rule's statements within a chunk, each prepared (taken from
/// SQLite's statement cache) on first use, then run for every row.
struct Statements<'c> {
    conn: &'c Connection,
    sql: &'c RuleSql,
    upsert: Option<rusqlite::CachedStatement<'c>>,
    append: Option<rusqlite::CachedStatement<'c>>,
    delete: Option<rusqlite::CachedStatement<'c>>,
}

impl<'c> Statements<'c> {
    fn run(
        conn: &'c Connection,
        slot: &mut Option<rusqlite::CachedStatement<'c>>,
        text: &str,
        params: &[SqlValue],
    ) -> Result<(), String> {
        if slot.is_none() {
            *slot = Some(conn.prepare_cached(text).map_err(err)?);
        }
        if let Some(st) = slot {
            st.execute(params_from_iter(params.iter())).map_err(err)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let (conn, sql) = (self.conn, self.sql);
        match op {
            Op::Upsert { row, .. } => Self::run(conn, &mut self.upsert, &sql.upsert, row),
            Op::Append { row, .. } => Self::run(conn, &mut self.append, &sql.append, row),
            Op::Delete { key, .. } => Self::run(conn, &mut self.delete, &sql.delete, key),
            Op::Truncate { .. } => conn.execute(&sql.truncate, []).map(drop).map_err(err),
            Op::Replace { key, rows, .. } => {
                Self::run(conn, &mut self.delete, &sql.delete, key)?;
                rows.iter()
                    .try_for_each(|r| Self::run(conn, &mut self.upsert, &sql.upsert, r))
            }
        }
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn insert_sql(rule: &Rule, on_conflict: &str) -> String {
    let cols: Vec<String> = rule.columns().into_iter().map(|c| c.name).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {on_conflict}",
        ident(&rule.table),
        ident_list(&cols),
        placeholders(cols.len()),
        ident_list(&rule.key_columns())
    )
}

/// INSERT ... ON CONFLICT DO UPDATE of the non-key columns (same syntax
/// in SQLite and PostgreSQL).
pub(crate) fn upsert_action(rule: &Rule) -> String {
    let keys = rule.key_columns();
    let sets: Vec<String> = rule
        .columns()
        .into_iter()
        .filter(|c| !keys.contains(&c.name))
        .map(|c| format!("{0} = excluded.{0}", ident(&c.name)))
        .collect();
    if sets.is_empty() {
        "DO NOTHING".into()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    }
}

fn upsert_sql(rule: &Rule) -> String {
    insert_sql(rule, &upsert_action(rule))
}

/// Deletes the rows of one key: its key-part columns equal.
fn delete_sql(rule: &Rule) -> String {
    let conds: Vec<String> = rule
        .pattern
        .names
        .iter()
        .map(|n| format!("{} = ?", ident(n)))
        .collect();
    format!(
        "DELETE FROM {} WHERE {}",
        ident(&rule.table),
        conds.join(" AND ")
    )
}

impl Sink for SqliteSink {
    fn prepare(&mut self, rule: &Rule) -> Result<i64, String> {
        let existing: Vec<(String, String, i64)> = {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA table_info({})", ident(&rule.table)))
                .map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        if existing.is_empty() {
            self.create(rule)?;
        } else {
            self.check(rule, &existing)?;
        }
        // A rule re-added under the same name may map other columns.
        self.sql.insert(rule.name.clone(), RuleSql::new(rule));
        if !rule.ty.is_append() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT coalesce(max({}), 0) FROM {}",
            ident(&rule.id),
            ident(&rule.table)
        );
        self.conn.query_row(&sql, [], |r| r.get(0)).map_err(err)
    }

    fn write(&mut self, ops: &[Op], _fresh: bool) -> Result<(), String> {
        // Truncations first (two rules may share a table), then each
        // rule's operations together, so a chunk looks each statement up
        // once, not once per row.
        let mut truncates = vec![];
        let mut groups: Vec<(&Arc<Rule>, Vec<&Op>)> = vec![];
        for op in ops {
            let rule = op.rule();
            if let Op::Truncate { .. } = op {
                truncates.push(rule);
                continue;
            }
            match groups.iter_mut().find(|(r, _)| Arc::ptr_eq(r, rule)) {
                Some((_, g)) => g.push(op),
                None => groups.push((rule, vec![op])),
            }
        }
        for rule in truncates.iter().copied().chain(groups.iter().map(|g| g.0)) {
            self.rule_sql(rule);
        }
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        for rule in truncates {
            let sql = &self.sql[&rule.name].truncate;
            self.conn.execute(sql, []).map_err(err)?;
        }
        for (rule, ops) in &groups {
            let mut st = Statements {
                conn: &self.conn,
                sql: &self.sql[&rule.name],
                upsert: None,
                append: None,
                delete: None,
            };
            for op in ops {
                st.apply(op)?;
            }
        }
        // Dropping the transaction unfinished (an error above) rolls back.
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(words: &str) -> Arc<Rule> {
        Arc::new(Rule::parse(&words.split_whitespace().collect::<Vec<_>>()).unwrap())
    }

    fn tmp(name: &str) -> String {
        let p = std::env::temp_dir().join(format!("wb-{}-{name}.db", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p.display().to_string()
    }

    /// The first column of a query's rows, as text.
    fn q(s: &SqliteSink, sql: &str) -> Vec<String> {
        let mut st = s.conn.prepare(sql).unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn t(s: &str) -> SqlValue {
        SqlValue::Text(s.into())
    }

    /// Two rules writing one table from two databases, both emptied: the
    /// chunk's truncations run before any row is written, whatever the
    /// grouping by rule.
    #[test]
    fn truncations_come_before_the_rows_of_a_shared_table() {
        let path = tmp("shared");
        let mut s = SqliteSink::open(&path).unwrap();
        let r0 = rule("a string n:{id} table=names db=0");
        let r1 = rule("b string n:{id} table=names db=1");
        s.prepare(&r0).unwrap();
        s.prepare(&r1).unwrap();
        let truncate = |r: &Arc<Rule>| Op::Truncate { rule: r.clone() };
        let up = Op::Upsert {
            rule: r0.clone(),
            row: vec![t("1"), t("one")],
        };
        s.write(&[truncate(&r0), truncate(&r1), up], true).unwrap();
        assert_eq!(q(&s, "SELECT id || value FROM names"), ["1one"]);
    }

    #[test]
    fn upserts_replaces_and_appends() {
        let path = tmp("ops");
        let mut s = SqliteSink::open(&path).unwrap();
        let h = rule("h hash {u}:{i} table=reads fields=readAt:read_at:integer");
        let z = rule("z set {u}:readItemId table=read_items member=item_id");
        let l = rule("l list recommend:{u} table=recs value=item_id");
        for r in [&h, &z, &l] {
            assert_eq!(s.prepare(r).unwrap(), 0);
        }
        let up = |v| Op::Upsert {
            rule: h.clone(),
            row: vec![t("u1"), t("i1"), SqlValue::Int(v)],
        };
        s.write(&[up(1), up(2)], true).unwrap();
        let replace = |m: &[&str]| Op::Replace {
            rule: z.clone(),
            key: vec![t("u1")],
            rows: m.iter().map(|m| vec![t("u1"), t(m)]).collect(),
        };
        s.write(&[replace(&["a", "b", "c"])], true).unwrap();
        s.write(&[replace(&["b", "d"])], true).unwrap();
        let app = |id| Op::Append {
            rule: l.clone(),
            row: vec![SqlValue::Int(id), t("u1"), t("x")],
        };
        s.write(&[app(5), app(6)], true).unwrap();
        s.write(&[app(6), app(7)], false).unwrap(); // a replayed batch
        assert_eq!(q(&s, "SELECT read_at || '' FROM reads"), ["2"]);
        assert_eq!(
            q(&s, "SELECT item_id FROM read_items ORDER BY 1"),
            ["b", "d"]
        );
        assert_eq!(
            q(&s, "SELECT id || '' FROM recs ORDER BY 1"),
            ["5", "6", "7"]
        );
        assert_eq!(s.prepare(&l).unwrap(), 7);
        s.write(
            &[Op::Delete {
                rule: z.clone(),
                key: vec![t("u1")],
            }],
            true,
        )
        .unwrap();
        assert!(q(&s, "SELECT item_id FROM read_items").is_empty());
    }

    #[test]
    fn incompatible_tables_are_refused_naming_the_column() {
        let path = tmp("schema");
        let mut s = SqliteSink::open(&path).unwrap();
        s.conn
            .execute_batch("CREATE TABLE reads (user_id TEXT, item_id TEXT, read_at BLOB, PRIMARY KEY (user_id, item_id))")
            .unwrap();
        let e = s
            .prepare(&rule(
                "h hash {user_id}:{item_id} table=reads fields=readAt:read_at:integer",
            ))
            .unwrap_err();
        assert!(e.contains("column read_at has type BLOB"), "{e}");
        let e = s
            .prepare(&rule(
                "h hash {user_id}:{item_id} table=reads fields=readAt:seen:integer",
            ))
            .unwrap_err();
        assert!(e.contains("no column seen"), "{e}");
        let e = s
            .prepare(&rule(
                "h hash {user_id}:{x} table=reads fields=read_at:bytes",
            ))
            .unwrap_err();
        assert!(e.contains("no column x"), "{e}");
        s.conn
            .execute_batch("CREATE TABLE nopk (k TEXT, value TEXT)")
            .unwrap();
        let e = s.prepare(&rule("s string {k} table=nopk")).unwrap_err();
        assert!(e.contains("primary key"), "{e}");
    }
}
