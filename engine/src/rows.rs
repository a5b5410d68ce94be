//! Authoritative writes to application tables and the per-row sync bookkeeping
//! (`_sync_row_state`, `_sync_dirty_rows`). Callers run these inside `apply_tx`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

pub use oversqlite_core::sql_text::quote_ident;
use oversqlite_core::sql_text::row_expr;

use crate::codec::LocalKey;
use crate::error::Result;
use crate::schema::ManagedTable;

/// `key_json` exactly as the capture triggers build it: SQLite's own
/// `json_object(<key>, <value>)`, so lookups are byte-identical (§5.4).
pub fn key_json(conn: &Connection, table: &ManagedTable, key: &LocalKey) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT json_object(?1, ?2)")?
        .query_row(params![table.key_json_name, key.json_value], |r| r.get(0))?)
}

/// The live application row serialised like the triggers do, or `None` if absent.
pub fn live_row_json(
    conn: &Connection,
    table: &ManagedTable,
    key: &LocalKey,
) -> Result<Option<String>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ?1",
        row_expr(table, &quote_ident(&table.name)),
        quote_ident(&table.name),
        quote_ident(&table.key_column)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([&key.sql], |r| r.get(0))
        .optional()?)
}

/// Upserts a full row (values in column order) by primary key.
pub fn upsert_row(conn: &Connection, table: &ManagedTable, values: Vec<SqlValue>) -> Result<()> {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !c.name.eq_ignore_ascii_case(&table.key_column))
        .map(|c| format!("{0} = excluded.{0}", quote_ident(&c.name)))
        .collect();
    let conflict = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT({}) {}",
        quote_ident(&table.name),
        cols.join(", "),
        placeholders.join(", "),
        quote_ident(&table.key_column),
        conflict
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(())
}

pub fn delete_row(conn: &Connection, table: &ManagedTable, key: &LocalKey) -> Result<()> {
    let sql = format!(
        "DELETE FROM {} WHERE {} = ?1",
        quote_ident(&table.name),
        quote_ident(&table.key_column)
    );
    conn.prepare_cached(&sql)?.execute([&key.sql])?;
    Ok(())
}

pub fn upsert_row_state(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    row_version: i64,
    deleted: bool,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET row_version = excluded.row_version,
         deleted = excluded.deleted, updated_at = excluded.updated_at")?.execute(params![schema, table, key_json, row_version, deleted as i64],
    )?;
    Ok(())
}

pub fn delete_row_state(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .execute(params![schema, table, key_json])?;
    Ok(())
}

/// `row_version` of the stored state, if any.
pub fn row_state_version(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<Option<i64>> {
    Ok(conn.prepare_cached("SELECT row_version FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3")?.query_row(params![schema, table, key_json],
            |r| r.get(0),
        )
        .optional()?)
}

#[derive(Debug, Clone)]
pub struct DirtyRow {
    pub op: String,
    pub base_row_version: i64,
    pub payload: Option<String>,
    pub dirty_ordinal: i64,
}

pub fn dirty_row(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<Option<DirtyRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT op, base_row_version, payload, dirty_ordinal FROM _sync_dirty_rows
             WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
        )?
        .query_row(params![schema, table, key_json], |r| {
            Ok(DirtyRow {
                op: r.get(0)?,
                base_row_version: r.get(1)?,
                payload: r.get(2)?,
                dirty_ordinal: r.get(3)?,
            })
        })
        .optional()?)
}

pub fn delete_dirty(conn: &Connection, schema: &str, table: &str, key_json: &str) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM _sync_dirty_rows WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .execute(params![schema, table, key_json])?;
    Ok(())
}

/// Writes a dirty intent, keeping an existing `dirty_ordinal` (else max + 1).
pub fn upsert_dirty(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    op: &str,
    base: i64,
    payload: Option<&str>,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 COALESCE((SELECT dirty_ordinal FROM _sync_dirty_rows WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3),
                          (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows)),
                 strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET op = excluded.op, base_row_version = excluded.base_row_version,
         payload = excluded.payload, updated_at = excluded.updated_at")?.execute(params![schema, table, key_json, op, base, payload],
    )?;
    Ok(())
}

/// Applies one authoritative row: upsert (or delete) the application row, record
/// its version, and drop any dirty intent for it.
pub fn apply_authoritative(
    conn: &Connection,
    schema: &str,
    table: &ManagedTable,
    key: &LocalKey,
    key_json: &str,
    row_version: i64,
    values: Option<Vec<SqlValue>>,
) -> Result<()> {
    match values {
        Some(v) => {
            upsert_row(conn, table, v)?;
            upsert_row_state(conn, schema, &table.name, key_json, row_version, false)?;
        }
        None => {
            delete_row(conn, table, key)?;
            upsert_row_state(conn, schema, &table.name, key_json, row_version, true)?;
        }
    }
    delete_dirty(conn, schema, &table.name, key_json)
}
