//! Authoritative writes to application tables and the per-row sync bookkeeping
//! (the row-state and dirty-row stores of core). Callers run these inside `apply_tx`.

use std::cell::RefCell;
use std::rc::Rc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

pub use oversqlite_core::sql_text::quote_ident;
use oversqlite_core::sql_text::row_expr;
use oversqlite_core::store::{dirty_rows, row_state};

use crate::error::Result;
use crate::local::schema::ManagedTable;
use crate::values::codec::{LocalKey, RowValues};

/// `key_json` exactly as the capture triggers build it: SQLite's own
/// `json_object(<key>, <value>)`, so lookups are byte-identical (§5.4).
pub fn key_json(conn: &Connection, table: &ManagedTable, key: &LocalKey) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT json_object(?1, ?2)")?
        .query_row(params![table.key_json_name, key.json_value], |r| r.get(0))?)
}

/// The SQL texts addressing one managed table's rows, built once per table shape:
/// formatting and quoting them for every row used to cost about a quarter of a
/// pull's instructions.
#[derive(Debug)]
pub struct TableSql {
    /// `INSERT … ON CONFLICT(key) DO UPDATE` of every column, values `?1..?n` in
    /// column order.
    pub upsert: String,
    /// `DELETE … WHERE key = ?1`.
    pub delete: String,
    /// The row as the capture triggers serialise it, `WHERE key = ?1`.
    pub live_json: String,
}

impl TableSql {
    fn build(table: &ManagedTable) -> TableSql {
        let name = quote_ident(&table.name);
        let key = quote_ident(&table.key_column);
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
        TableSql {
            upsert: format!(
                "INSERT INTO {name} ({}) VALUES ({}) ON CONFLICT({key}) {conflict}",
                cols.join(", "),
                placeholders.join(", "),
            ),
            delete: format!("DELETE FROM {name} WHERE {key} = ?1"),
            live_json: format!(
                "SELECT {} FROM {name} WHERE {key} = ?1",
                row_expr(table, &name)
            ),
        }
    }
}

/// How many table shapes the per-thread cache keeps (a database has a handful of
/// managed tables; the bound only matters for hosts cycling through many schemas).
const TABLE_SQL_CACHE_SIZE: usize = 64;

thread_local! {
    static TABLE_SQL: RefCell<Vec<(ManagedTable, Rc<TableSql>)>> = const { RefCell::new(Vec::new()) };
}

/// The cached SQL of `table`. Keyed by the whole table model (not just its name), so
/// two databases with same-named tables of different columns never share text.
pub fn table_sql(table: &ManagedTable) -> Rc<TableSql> {
    TABLE_SQL.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, sql)) = cache.iter().find(|(t, _)| t == table) {
            return sql.clone();
        }
        if cache.len() >= TABLE_SQL_CACHE_SIZE {
            cache.remove(0);
        }
        let sql = Rc::new(TableSql::build(table));
        cache.push((table.clone(), sql.clone()));
        sql
    })
}

/// The live application row serialised like the triggers do, or `None` if absent.
pub fn live_row_json(
    conn: &Connection,
    table: &ManagedTable,
    key: &LocalKey,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(&table_sql(table).live_json)?
        .query_row([&key.sql], |r| r.get(0))
        .optional()?)
}

/// Upserts a decoded row by primary key: a full row with the prepared statement; a row
/// whose payload left columns out names only the others, so a new row takes those
/// columns' defaults and an existing row keeps their values (see `wire_payload_to_row`).
pub fn upsert_row(conn: &Connection, table: &ManagedTable, row: RowValues) -> Result<()> {
    if row.absent.is_empty() {
        conn.prepare_cached(&table_sql(table).upsert)?
            .execute(params_from_iter(row.values))?;
        return Ok(());
    }
    let named: Vec<(&oversqlite_core::Column, SqlValue)> = table
        .columns
        .iter()
        .zip(row.values)
        .enumerate()
        .filter(|(i, _)| !row.absent.contains(i))
        .map(|(_, pair)| pair)
        .collect();
    let cols: Vec<String> = named.iter().map(|(c, _)| quote_ident(&c.name)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = named
        .iter()
        .filter(|(c, _)| !c.name.eq_ignore_ascii_case(&table.key_column))
        .map(|(c, _)| format!("{0} = excluded.{0}", quote_ident(&c.name)))
        .collect();
    let conflict = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT({}) {conflict}",
        quote_ident(&table.name),
        cols.join(", "),
        marks.join(", "),
        quote_ident(&table.key_column),
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(named.into_iter().map(|(_, v)| v)))?;
    Ok(())
}

pub fn delete_row(conn: &Connection, table: &ManagedTable, key: &LocalKey) -> Result<()> {
    conn.prepare_cached(&table_sql(table).delete)?
        .execute([&key.sql])?;
    Ok(())
}

/// Records `row_version` for a row whose `key_json` is built in SQL from the key
/// value (same `json_object` as the triggers, no separate round trip), unless the
/// stored state already has that version or a newer one. Returns whether it wrote:
/// `false` means the authoritative row was already applied (e.g. our own pushed
/// bundle coming back in a pull) and must be left alone. `updated_at` is taken once
/// per transaction from [`now_timestamp`] rather than formatted again for every row.
pub fn advance_row_state(
    conn: &Connection,
    schema: &str,
    table: &ManagedTable,
    key: &LocalKey,
    row_version: i64,
    deleted: bool,
    updated_at: &str,
) -> Result<bool> {
    Ok(row_state::advance(
        conn,
        schema,
        &table.name,
        &table.key_json_name,
        &key.json_value,
        row_version,
        deleted,
        updated_at,
    )?)
}

/// The current time in the `updated_at` format of the runtime tables, from SQLite's
/// own clock and formatter (so it is byte-compatible with the triggers' values).
pub fn now_timestamp(conn: &Connection) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now')")?
        .query_row([], |r| r.get(0))?)
}

pub fn upsert_row_state(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    row_version: i64,
    deleted: bool,
) -> Result<()> {
    Ok(row_state::upsert(
        conn,
        schema,
        table,
        key_json,
        row_version,
        deleted,
    )?)
}

pub fn delete_row_state(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<()> {
    Ok(row_state::delete(conn, schema, table, key_json)?)
}

/// `row_version` of the stored state, if any.
pub fn row_state_version(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<Option<i64>> {
    Ok(row_state::version(conn, schema, table, key_json)?)
}

pub use oversqlite_core::store::dirty_rows::DirtyRow;

pub fn dirty_row(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<Option<DirtyRow>> {
    Ok(dirty_rows::get(conn, schema, table, key_json)?)
}

pub fn delete_dirty(conn: &Connection, schema: &str, table: &str, key_json: &str) -> Result<()> {
    Ok(dirty_rows::delete(conn, schema, table, key_json)?)
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
    Ok(dirty_rows::upsert(
        conn, schema, table, key_json, op, base, payload,
    )?)
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
    values: Option<RowValues>,
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
