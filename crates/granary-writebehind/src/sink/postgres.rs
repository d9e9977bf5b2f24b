//! The PostgreSQL sink: tokio-postgres on the flusher's own current-thread
//! runtime. A chunk is one round trip: BEGIN, multi-row
//! `INSERT ... ON CONFLICT` statements with the values inline, COMMIT, sent
//! as one simple-protocol batch.

use super::sqlite::upsert_action;
use super::{column_error, ident, ident_list, Sink};
use crate::model::{Op, SqlValue};
use crate::rules::{ColType, Rule};
use std::fmt::Write;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

pub struct PgSink {
    rt: Runtime,
    client: Client,
}

/// Rows per INSERT statement: large enough to amortise parsing, small
/// enough to keep one statement's memory modest.
const ROWS_PER_STATEMENT: usize = 1000;

fn decl(ty: ColType) -> &'static str {
    match ty {
        ColType::Text => "text",
        ColType::Integer => "bigint",
        ColType::Real => "double precision",
        ColType::Boolean => "boolean",
        ColType::Timestamp => "timestamptz",
        ColType::Bytes => "bytea",
    }
}

/// Whether an existing column of information_schema type `t` holds `ty`.
fn compatible(t: &str, ty: ColType) -> bool {
    match ty {
        ColType::Text => matches!(t, "text" | "character varying" | "character"),
        ColType::Integer => matches!(t, "bigint" | "numeric"),
        ColType::Real => matches!(t, "double precision" | "numeric"),
        ColType::Boolean => t == "boolean",
        ColType::Timestamp => t.starts_with("timestamp"),
        ColType::Bytes => t == "bytea",
    }
}

fn err(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {}", db.message()),
        None => format!("postgres: {e}"),
    }
}

/// Appends `v` as an SQL literal.
fn literal(out: &mut String, v: &SqlValue) {
    match v {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::Real(f) => {
            let mut b = ryu::Buffer::new();
            out.push_str(b.format_finite(*f));
            out.push_str("::float8");
        }
        SqlValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        SqlValue::Text(s) => {
            // standard_conforming_strings is on (set at connect): only the
            // quote needs doubling.
            out.push('\'');
            for c in s.chars() {
                if c == '\'' {
                    out.push('\'');
                }
                out.push(c);
            }
            out.push('\'');
        }
        SqlValue::Bytes(b) => {
            out.push_str("'\\x");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            out.push_str("'::bytea");
        }
        SqlValue::Timestamp(ms) => {
            let _ = write!(
                out,
                "to_timestamp({}.{:03})",
                ms.div_euclid(1000),
                ms.rem_euclid(1000)
            );
        }
    }
}

fn tuple(out: &mut String, row: &[SqlValue]) {
    out.push('(');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        literal(out, v);
    }
    out.push(')');
}

/// `"a" = 'x' AND "b" = 'y'` for the key parts of a rule.
fn key_match(out: &mut String, rule: &Rule, key: &[SqlValue]) {
    for (i, (n, v)) in rule.pattern.names.iter().zip(key).enumerate() {
        if i > 0 {
            out.push_str(" AND ");
        }
        out.push_str(&ident(n));
        out.push_str(" = ");
        literal(out, v);
    }
}

/// Multi-row INSERTs for `rows` of one rule. PostgreSQL refuses an
/// ON CONFLICT DO UPDATE that meets one row twice, so rows with the same
/// primary key are reduced to the last one first.
fn insert(out: &mut String, rule: &Rule, rows: &[&[SqlValue]], action: &str) {
    let cols: Vec<String> = rule.columns().into_iter().map(|c| c.name).collect();
    let key_pos: Vec<usize> = rule
        .key_columns()
        .iter()
        .filter_map(|k| cols.iter().position(|c| c == k))
        .collect();
    let mut seen = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let k: Vec<String> = key_pos.iter().map(|&p| format!("{:?}", r[p])).collect();
        seen.insert(k, i);
    }
    let mut keep: Vec<usize> = seen.into_values().collect();
    keep.sort_unstable();
    for chunk in keep.chunks(ROWS_PER_STATEMENT) {
        let _ = write!(
            out,
            "INSERT INTO {} ({}) VALUES ",
            ident(&rule.table),
            ident_list(&cols)
        );
        for (j, &i) in chunk.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            tuple(out, rows[i]);
        }
        let _ = writeln!(
            out,
            " ON CONFLICT ({}) {action};",
            ident_list(&rule.key_columns())
        );
    }
}

/// The SQL for a chunk of operations, consecutive inserts into one table
/// grouped into multi-row statements.
pub fn chunk_sql(ops: &[Op]) -> String {
    let mut out = String::from("BEGIN;\n");
    let mut i = 0;
    while i < ops.len() {
        let op = &ops[i];
        match op {
            Op::Upsert { .. } | Op::Append { .. } => {
                let rule = op.rule();
                let same = |o: &Op| {
                    std::mem::discriminant(o) == std::mem::discriminant(op)
                        && std::sync::Arc::ptr_eq(o.rule(), rule)
                };
                let n = ops[i..].iter().take_while(|o| same(o)).count();
                let rows: Vec<&[SqlValue]> = ops[i..i + n]
                    .iter()
                    .map(|o| match o {
                        Op::Upsert { row, .. } | Op::Append { row, .. } => row.as_slice(),
                        _ => &[],
                    })
                    .collect();
                let action = match op {
                    Op::Append { .. } => "DO NOTHING".to_string(),
                    _ => upsert_action(rule),
                };
                insert(&mut out, rule, &rows, &action);
                i += n;
                continue;
            }
            Op::Delete { rule, key } => {
                let _ = write!(out, "DELETE FROM {} WHERE ", ident(&rule.table));
                key_match(&mut out, rule, key);
                out.push_str(";\n");
            }
            Op::Truncate { rule } => {
                let _ = writeln!(out, "DELETE FROM {};", ident(&rule.table));
            }
            Op::Replace { rule, key, rows } => {
                let _ = write!(out, "DELETE FROM {} WHERE ", ident(&rule.table));
                key_match(&mut out, rule, key);
                out.push_str(";\n");
                if !rows.is_empty() {
                    let rows: Vec<&[SqlValue]> = rows.iter().map(|r| r.as_slice()).collect();
                    insert(&mut out, rule, &rows, &upsert_action(rule));
                }
            }
        }
        i += 1;
    }
    out.push_str("COMMIT;");
    out
}

impl PgSink {
    pub fn open(conninfo: &str) -> Result<PgSink, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("postgres: runtime: {e}"))?;
        let client = rt.block_on(async {
            let connect = tokio_postgres::connect(conninfo, NoTls);
            let (client, conn) = tokio::time::timeout(std::time::Duration::from_secs(10), connect)
                .await
                .map_err(|_| "postgres: connect timed out".to_string())?
                .map_err(err)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!("write-behind: postgres connection ended: {e}");
                }
            });
            client
                .batch_execute(
                    "SET standard_conforming_strings = on; SET client_min_messages = warning;",
                )
                .await
                .map_err(err)?;
            Ok::<_, String>(client)
        })?;
        Ok(PgSink { rt, client })
    }

    fn create(&self, rule: &Rule) -> Result<(), String> {
        let cols: Vec<String> = rule
            .columns()
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), decl(c.ty)))
            .collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            ident(&rule.table),
            cols.join(", "),
            ident_list(&rule.key_columns())
        );
        self.rt
            .block_on(self.client.batch_execute(&sql))
            .map_err(err)
    }
}

impl Sink for PgSink {
    fn prepare(&mut self, rule: &Rule) -> Result<i64, String> {
        let rows = self
            .rt
            .block_on(self.client.query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&rule.table],
            ))
            .map_err(err)?;
        let existing: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if existing.is_empty() {
            self.create(rule)?;
        } else {
            for c in rule.columns() {
                match existing.iter().find(|(n, _)| *n == c.name) {
                    None => return Err(column_error(rule, &c.name, None, c.ty)),
                    Some((_, t)) if !compatible(t, c.ty) => {
                        return Err(column_error(rule, &c.name, Some(t), c.ty))
                    }
                    _ => {}
                }
            }
        }
        if !rule.ty.is_append() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT coalesce(max({}), 0)::bigint FROM {}",
            ident(&rule.id),
            ident(&rule.table)
        );
        let row = self
            .rt
            .block_on(self.client.query_one(&sql, &[]))
            .map_err(err)?;
        Ok(row.get(0))
    }

    fn write(&mut self, ops: &[Op]) -> Result<(), String> {
        let sql = chunk_sql(ops);
        let r = self.rt.block_on(self.client.batch_execute(&sql));
        if let Err(e) = r {
            // A failed statement leaves the transaction aborted.
            let _ = self.rt.block_on(self.client.batch_execute("ROLLBACK"));
            return Err(err(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn chunks_group_rows_and_quote_values() {
        let h =
            Arc::new(Rule::parse(&["h", "hash", "{u}", "table=t", "fields=a:integer,b"]).unwrap());
        let row = |u: &str, b: &str| Op::Upsert {
            rule: h.clone(),
            row: vec![
                SqlValue::Text(u.into()),
                SqlValue::Int(1),
                SqlValue::Text(b.into()),
            ],
        };
        let sql = chunk_sql(&[row("x", "it's"), row("y", "2"), row("x", "3")]);
        assert_eq!(
            sql,
            "BEGIN;\nINSERT INTO \"t\" (\"u\", \"a\", \"b\") VALUES ('y',1,'2'),('x',1,'3') \
             ON CONFLICT (\"u\") DO UPDATE SET \"a\" = excluded.\"a\", \"b\" = excluded.\"b\";\nCOMMIT;"
        );
        let sql = chunk_sql(&[row("q'", "z")]);
        assert!(sql.contains("('q''',1,'z')"), "{sql}");
        let mut s = String::new();
        literal(&mut s, &SqlValue::Bytes(vec![0, 255]));
        literal(&mut s, &SqlValue::Timestamp(1500));
        assert_eq!(s, "'\\x00ff'::byteato_timestamp(1.500)");
    }
}
