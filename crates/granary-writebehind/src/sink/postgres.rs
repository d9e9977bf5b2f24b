//! The PostgreSQL sink: tokio-postgres on the flusher's own current-thread
//! runtime. A chunk is one transaction. Rows travel by COPY (text format),
//! which PostgreSQL ingests several times faster than INSERT statements:
//!
//! - appended rows of a batch never attempted before (`fresh`) are copied
//!   straight into their table: their ids are new, so nothing can conflict;
//! - upserted rows, set members, and appended rows of a batch that may
//!   have been committed already (replayed from the journal, or put back
//!   after a failure) are copied into a staging table of the rule (a
//!   temporary table like the target, emptied at each commit), then moved
//!   with `INSERT ... SELECT ... ON CONFLICT`, so a replay inserts nothing
//!   twice;
//! - deletions are plain statements sent with BEGIN.
//!
//! Values go as their text form, the same for every path, so an existing
//! table's compatible column types (numeric, varchar, timestamp without
//! time zone) read them as INSERT literals would.

use super::sqlite::upsert_action;
use super::{column_error, ident, ident_list, Sink};
use crate::model::{format_timestamp, Op, SqlValue};
use crate::rules::{ColType, Rule};
use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

pub struct PgSink {
    rt: Runtime,
    client: Client,
    /// Each rule's staging table on this connection, by the rule's text (a
    /// rule redefined under its name gets a new one).
    stages: HashMap<String, String>,
}

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
    err_ref(&e)
}

fn err_ref(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {}", db.message()),
        None => format!("postgres: {e}"),
    }
}

/// A timestamp as PostgreSQL reads it: UTC, in a column with or without
/// a time zone alike.
fn timestamp_text(ms: i64) -> String {
    format!("{}+00", format_timestamp(ms))
}

/// Appends `v` as an SQL literal (the key values of DELETE statements).
fn literal(out: &mut String, v: &SqlValue) {
    match v {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::Real(f) => {
            let mut b = ryu::Buffer::new();
            out.push_str(b.format_finite(*f));
        }
        SqlValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        SqlValue::Text(s) => quoted(out, s),
        SqlValue::Bytes(b) => {
            out.push_str("'\\x");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            out.push('\'');
        }
        SqlValue::Timestamp(ms) => quoted(out, &timestamp_text(*ms)),
    }
}

/// A string literal: standard_conforming_strings is on (set at connect),
/// so only the quote needs doubling.
fn quoted(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Appends `v` in COPY's text format: `\N` for NULL, and in text the
/// backslash and the characters that separate columns and rows escaped.
fn copy_value(out: &mut Vec<u8>, v: &SqlValue) {
    match v {
        SqlValue::Null => out.extend_from_slice(b"\\N"),
        SqlValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        SqlValue::Real(f) => out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes()),
        SqlValue::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        SqlValue::Text(s) => copy_text(out, s.as_bytes()),
        SqlValue::Bytes(b) => {
            // bytea's hex input, its backslash escaped for COPY.
            out.extend_from_slice(b"\\\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for x in b {
                out.push(HEX[(x >> 4) as usize]);
                out.push(HEX[(x & 15) as usize]);
            }
        }
        SqlValue::Timestamp(ms) => copy_text(out, timestamp_text(*ms).as_bytes()),
    }
}

fn copy_text(out: &mut Vec<u8>, s: &[u8]) {
    let special = |c: &u8| matches!(c, b'\\' | b'\t' | b'\n' | b'\r');
    if !s.iter().any(special) {
        out.extend_from_slice(s);
        return;
    }
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c => out.push(c),
        }
    }
}

/// One row as a line of COPY text.
fn copy_row(out: &mut Vec<u8>, row: &[SqlValue]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        copy_value(out, v);
    }
    out.push(b'\n');
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

/// The staging table's own column: the order rows were staged in.
const STAGE_ORDER: &str = "granary_seq";

/// How a rule's rows reach its table.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// COPY into the table itself (fresh appended rows).
    Copy,
    /// COPY into the staging table, then INSERT ... ON CONFLICT DO NOTHING.
    StagedInsert,
    /// COPY into the staging table, then INSERT ... ON CONFLICT DO UPDATE.
    StagedUpsert,
}

/// The rows one rule gets in a chunk.
struct Group<'a> {
    rule: &'a Arc<Rule>,
    via: Via,
    rows: Vec<&'a [SqlValue]>,
}

/// A chunk as PostgreSQL gets it: the statements sent with BEGIN
/// (deletions, in order), then each rule's rows.
struct Plan<'a> {
    head: String,
    groups: Vec<Group<'a>>,
}

impl<'a> Plan<'a> {
    fn new(ops: &'a [Op], fresh: bool) -> Plan<'a> {
        let mut plan = Plan {
            head: String::from("BEGIN;\n"),
            groups: vec![],
        };
        for op in ops {
            match op {
                Op::Truncate { rule } => {
                    let _ = writeln!(plan.head, "DELETE FROM {};", ident(&rule.table));
                }
                Op::Delete { rule, key } => plan.delete(rule, key),
                Op::Replace { rule, key, rows } => {
                    plan.delete(rule, key);
                    for r in rows {
                        plan.row(rule, Via::StagedUpsert, r);
                    }
                }
                Op::Upsert { rule, row } => plan.row(rule, Via::StagedUpsert, row),
                Op::Append { rule, row } => {
                    let via = if fresh { Via::Copy } else { Via::StagedInsert };
                    plan.row(rule, via, row)
                }
            }
        }
        plan
    }

    fn delete(&mut self, rule: &Rule, key: &[SqlValue]) {
        let _ = write!(self.head, "DELETE FROM {} WHERE ", ident(&rule.table));
        key_match(&mut self.head, rule, key);
        self.head.push_str(";\n");
    }

    fn row(&mut self, rule: &'a Arc<Rule>, via: Via, row: &'a [SqlValue]) {
        // Chunks mix a few rules: a short scan beats a map.
        let group = match self
            .groups
            .iter()
            .position(|g| Arc::ptr_eq(g.rule, rule) && g.via == via)
        {
            Some(i) => &mut self.groups[i],
            None => {
                self.groups.push(Group {
                    rule,
                    via,
                    rows: vec![],
                });
                self.groups.last_mut().unwrap_or_else(|| unreachable!())
            }
        };
        group.rows.push(row);
    }
}

impl Group<'_> {
    /// The rows as COPY text.
    fn copy_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows.len() * 48);
        for r in &self.rows {
            copy_row(&mut out, r);
        }
        out
    }

    /// The COPY statement, into `target`.
    fn copy_sql(&self, target: &str) -> String {
        let cols: Vec<String> = self.rule.columns().into_iter().map(|c| c.name).collect();
        format!("COPY {target} ({}) FROM STDIN", ident_list(&cols))
    }

    /// The statement moving staged rows into the table. PostgreSQL
    /// refuses an ON CONFLICT DO UPDATE that meets one row twice; rows
    /// with equal key columns are rare (keys whose text is equal once
    /// made valid UTF-8, a table whose key column is character(n) or has
    /// a nondeterministic collation), so `dedup` (the last staged of them
    /// wins, as the table compares them) is asked for only after that
    /// refusal: sorting every chunk cost a tenth of the rows per second.
    fn move_sql(&self, stage: &str, dedup: bool) -> String {
        let cols = ident_list(
            &self
                .rule
                .columns()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
        );
        let keys = ident_list(&self.rule.key_columns());
        let table = ident(&self.rule.table);
        match self.via {
            Via::StagedUpsert if dedup => format!(
                "INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {stage} \
                 ORDER BY {keys}, {STAGE_ORDER} DESC ON CONFLICT ({keys}) {}",
                upsert_action(self.rule)
            ),
            Via::StagedUpsert => format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({keys}) {}",
                upsert_action(self.rule)
            ),
            _ => format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({keys}) DO NOTHING"
            ),
        }
    }
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
        Ok(PgSink {
            rt,
            client,
            stages: HashMap::new(),
        })
    }

    /// The rule's staging table, created on this connection when first
    /// needed: a temporary table with the target's columns and defaults
    /// whose rows go at each commit. Created outside the chunk's
    /// transaction, so a rollback does not take it back.
    fn stage(&mut self, rule: &Rule) -> Result<String, tokio_postgres::Error> {
        let spec = rule.to_string();
        if let Some(name) = self.stages.get(&spec) {
            return Ok(name.clone());
        }
        let name = ident(&format!("granary_stage_{}", self.stages.len() + 1));
        let sql = format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {name} (LIKE {} INCLUDING DEFAULTS, \
             {STAGE_ORDER} bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS",
            ident(&rule.table)
        );
        self.rt.block_on(self.client.batch_execute(&sql))?;
        self.stages.insert(spec, name.clone());
        Ok(name)
    }

    /// One chunk in one transaction.
    fn transaction(
        &mut self,
        ops: &[Op],
        fresh: bool,
        dedup: bool,
    ) -> Result<(), tokio_postgres::Error> {
        let plan = Plan::new(ops, fresh);
        let mut steps = Vec::with_capacity(plan.groups.len());
        for g in &plan.groups {
            let (target, then) = match g.via {
                Via::Copy => (ident(&g.rule.table), None),
                _ => {
                    let stage = self.stage(g.rule)?;
                    let then = g.move_sql(&stage, dedup);
                    (stage, Some(then))
                }
            };
            steps.push((g.copy_sql(&target), Bytes::from(g.copy_data()), then));
        }
        let client = &self.client;
        self.rt.block_on(async {
            client.batch_execute(&plan.head).await?;
            for (copy, data, then) in steps {
                let sink = client.copy_in(&copy).await?;
                futures_util::pin_mut!(sink);
                sink.send(data).await?;
                sink.finish().await?;
                if let Some(then) = then {
                    client.batch_execute(&then).await?;
                }
            }
            client.batch_execute("COMMIT").await
        })
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

    fn write(&mut self, ops: &[Op], fresh: bool) -> Result<(), String> {
        let (mut fresh, mut dedup) = (fresh, false);
        loop {
            let Err(e) = self.transaction(ops, fresh, dedup) else {
                return Ok(());
            };
            // A failed statement leaves the transaction aborted.
            let _ = self.rt.block_on(self.client.batch_execute("ROLLBACK"));
            match e.code() {
                Some(&SqlState::UNIQUE_VIOLATION) if fresh => {
                    // Ids taken by rows this server did not write (another
                    // writer): write the chunk as a replay, where taken
                    // ids are skipped.
                    tracing::warn!(
                        "write-behind: appended rows met ids already in their table ({}); rows whose id was taken are skipped",
                        err_ref(&e)
                    );
                    fresh = false;
                }
                Some(&SqlState::CARDINALITY_VIOLATION) if !dedup => dedup = true,
                _ => return Err(err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(words: &str) -> Arc<Rule> {
        Arc::new(Rule::parse(&words.split_whitespace().collect::<Vec<_>>()).unwrap())
    }

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.into())
    }

    #[test]
    fn copy_text_escapes_what_separates_columns_and_rows() {
        let mut out = vec![];
        copy_row(
            &mut out,
            &[
                text("a\tb\\c\nd\re"),
                SqlValue::Null,
                SqlValue::Int(-7),
                SqlValue::Real(1.5),
                SqlValue::Bool(true),
                SqlValue::Bytes(vec![0, 255]),
                SqlValue::Timestamp(1500),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\\\c\\nd\\re\t\\N\t-7\t1.5\tt\t\\\\x00ff\t1970-01-01 00:00:01.500+00\n"
        );
        let mut lit = String::new();
        literal(&mut lit, &text("q'"));
        lit.push(' ');
        literal(&mut lit, &SqlValue::Timestamp(1500));
        assert_eq!(lit, "'q''' '1970-01-01 00:00:01.500+00'");
    }

    #[test]
    fn plans_copy_fresh_rows_and_stage_the_rest() {
        let h = rule("h hash {u} table=t fields=a:integer,b");
        let l = rule("l list log:{u} table=log");
        let up = |u: &str, b: &str| Op::Upsert {
            rule: h.clone(),
            row: vec![text(u), SqlValue::Int(1), text(b)],
        };
        let app = |id| Op::Append {
            rule: l.clone(),
            row: vec![SqlValue::Int(id), text("u"), text("v")],
        };
        let ops = [
            up("x", "1"),
            app(5),
            up("y", "2"),
            Op::Delete {
                rule: h.clone(),
                key: vec![text("z")],
            },
            up("x", "3"),
            app(6),
        ];
        let plan = Plan::new(&ops, true);
        assert_eq!(plan.head, "BEGIN;\nDELETE FROM \"t\" WHERE \"u\" = 'z';\n");
        let vias: Vec<_> = plan
            .groups
            .iter()
            .map(|g| (g.rule.name.as_str(), g.via))
            .collect();
        assert_eq!(vias, [("h", Via::StagedUpsert), ("l", Via::Copy)]);
        assert_eq!(plan.groups[0].copy_data(), b"x\t1\t1\ny\t1\t2\nx\t1\t3\n");
        // Rows move as staged; once PostgreSQL refused a key met twice,
        // the upserts of key x are reduced to the last staged.
        assert_eq!(
            plan.groups[0].move_sql("s", false),
            "INSERT INTO \"t\" (\"u\", \"a\", \"b\") SELECT \"u\", \"a\", \"b\" FROM s \
             ON CONFLICT (\"u\") DO UPDATE SET \"a\" = excluded.\"a\", \"b\" = excluded.\"b\""
        );
        assert_eq!(
            plan.groups[0].move_sql("s", true),
            "INSERT INTO \"t\" (\"u\", \"a\", \"b\") SELECT DISTINCT ON (\"u\") \"u\", \"a\", \"b\" FROM s \
             ORDER BY \"u\", granary_seq DESC \
             ON CONFLICT (\"u\") DO UPDATE SET \"a\" = excluded.\"a\", \"b\" = excluded.\"b\""
        );
        assert_eq!(plan.groups[1].copy_data(), b"5\tu\tv\n6\tu\tv\n");
        assert_eq!(
            plan.groups[1].copy_sql("\"log\""),
            "COPY \"log\" (\"id\", \"u\", \"value\") FROM STDIN"
        );
        // A batch that may have been committed already goes through the
        // stage, where rows already there are skipped.
        let plan = Plan::new(&ops, false);
        assert_eq!(plan.groups[1].via, Via::StagedInsert);
        assert!(plan.groups[1]
            .move_sql("s", false)
            .ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }
}
