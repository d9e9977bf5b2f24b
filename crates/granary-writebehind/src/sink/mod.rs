//! Where rows go: SQLite (a file) or PostgreSQL (a connection string).

pub mod postgres;
pub mod sqlite;

use crate::model::Op;
use crate::rules::{ColType, Rule};

/// A database the flusher writes to. Each `write` is one transaction:
/// all of it is committed or none.
pub trait Sink: Send {
    /// Creates the rule's table when absent, or checks that an existing one
    /// has the columns the rule needs (never altering it). Returns the
    /// largest row id already there (list rules; 0 otherwise), so new ids
    /// start above it.
    fn prepare(&mut self, rule: &Rule) -> Result<i64, String>;
    /// Writes a chunk. `fresh`: the chunk's batch was never attempted
    /// before, so no appended row of it can be in its table yet (a sink
    /// may then insert them without looking for conflicts).
    fn write(&mut self, ops: &[Op], fresh: bool) -> Result<(), String>;
}

/// Opens the sink `spec` names: `sqlite:<path>` (or a path ending in .db),
/// or a PostgreSQL URL (`postgres://...`, `postgresql://...`) or key/value
/// connection string (`host=... port=...`).
pub fn open(spec: &str) -> Result<Box<dyn Sink>, String> {
    let spec = spec.trim();
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return Ok(Box::new(sqlite::SqliteSink::open(path)?));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") || spec.contains('=') {
        return Ok(Box::new(postgres::PgSink::open(spec)?));
    }
    if spec.ends_with(".db") || spec.ends_with(".sqlite") || spec.ends_with(".sqlite3") {
        return Ok(Box::new(sqlite::SqliteSink::open(spec)?));
    }
    Err(format!(
        "writebehind-sink '{spec}' is neither sqlite:<path> nor a PostgreSQL connection string"
    ))
}

/// Whether a sink spec names a known kind, without connecting.
pub fn check_spec(spec: &str) -> Result<(), String> {
    let s = spec.trim();
    let known = s.is_empty()
        || s.starts_with("sqlite:")
        || s.starts_with("postgres://")
        || s.starts_with("postgresql://")
        || s.contains('=')
        || s.ends_with(".db")
        || s.ends_with(".sqlite")
        || s.ends_with(".sqlite3");
    if known {
        Ok(())
    } else {
        Err("argument must be sqlite:<path> or a PostgreSQL connection string".into())
    }
}

/// A quoted SQL identifier (names are checked to be plain when parsed).
pub fn ident(name: &str) -> String {
    format!("\"{name}\"")
}

/// `"a", "b"`.
pub fn ident_list<S: AsRef<str>>(names: &[S]) -> String {
    let v: Vec<String> = names.iter().map(|n| ident(n.as_ref())).collect();
    v.join(", ")
}

/// The error for a column an existing table lacks or types differently.
pub fn column_error(rule: &Rule, column: &str, found: Option<&str>, ty: ColType) -> String {
    match found {
        None => format!(
            "table {} has no column {column}, which rule {} needs (the table is never altered: create it with the column or drop it)",
            rule.table, rule.name
        ),
        Some(t) => format!(
            "table {} column {column} has type {t}, incompatible with {} which rule {} needs (the table is never altered)",
            rule.table,
            ty.name(),
            rule.name
        ),
    }
}
