//! `key_json` built by SQLite's own `json_object`, so it is byte-identical to what the
//! capture triggers store (a Rust JSON serializer escapes differently).
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::model::{KeyKind, ManagedTable};

/// `key_json` of a local key value: TEXT keys as-is, BLOB keys as lowercase hex.
pub fn key_json(conn: &Connection, table: &ManagedTable, key: &Value) -> Result<String> {
    let sql = match (table.key_kind, key) {
        (KeyKind::Text, Value::Text(_)) => "SELECT json_object(?1, ?2)",
        (KeyKind::UuidBlob, Value::Blob(b)) if b.len() == 16 => {
            "SELECT json_object(?1, lower(hex(?2)))"
        }
        _ => {
            return Err(Error::argument(format!(
                "key value {key:?} does not fit sync key {}.{} ({:?})",
                table.name, table.key_column, table.key_kind
            )))
        }
    };
    Ok(
        conn.query_row(sql, rusqlite::params![table.key_json_name, key], |r| {
            r.get(0)
        })?,
    )
}

/// `key_json` from the text a key shows locally in JSON (TEXT value or lowercase hex).
pub fn key_json_from_local_text(
    conn: &Connection,
    table: &ManagedTable,
    local: &str,
) -> Result<String> {
    Ok(conn.query_row(
        "SELECT json_object(?1, ?2)",
        rusqlite::params![table.key_json_name, local],
        |r| r.get(0),
    )?)
}
