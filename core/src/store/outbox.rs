//! `_sync_outbox_bundle` and `_sync_outbox_rows`: the one frozen bundle being
//! uploaded, its singleton header and its rows.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::not_open;
use super::OutboxState;
use crate::error::Result;
use crate::model::ManagedTable;
use crate::sql_text::{quote_ident, row_expr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxBundle {
    pub state: OutboxState,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub initialization_id: String,
    pub canonical_request_hash: String,
    pub row_count: i64,
    pub remote_bundle_hash: String,
    pub remote_bundle_seq: i64,
}

impl OutboxBundle {
    pub fn none() -> Self {
        OutboxBundle {
            state: OutboxState::None,
            source_id: String::new(),
            source_bundle_id: 0,
            initialization_id: String::new(),
            canonical_request_hash: String::new(),
            row_count: 0,
            remote_bundle_hash: String::new(),
            remote_bundle_seq: 0,
        }
    }
}

pub fn read_bundle(conn: &Connection) -> Result<OutboxBundle> {
    conn.query_row(
        "SELECT state, source_id, source_bundle_id, initialization_id, canonical_request_hash, row_count,
                remote_bundle_hash, remote_bundle_seq
         FROM _sync_outbox_bundle WHERE singleton_key = 1",
        [],
        |r| {
            Ok(OutboxBundle {
                state: r.get(0)?,
                source_id: r.get(1)?,
                source_bundle_id: r.get(2)?,
                initialization_id: r.get(3)?,
                canonical_request_hash: r.get(4)?,
                row_count: r.get(5)?,
                remote_bundle_hash: r.get(6)?,
                remote_bundle_seq: r.get(7)?,
            })
        },
    )
    .optional()?
    .ok_or_else(not_open)
}

pub fn write_bundle(conn: &Connection, b: &OutboxBundle) -> Result<()> {
    conn.execute(
        "UPDATE _sync_outbox_bundle SET state = ?1, source_id = ?2, source_bundle_id = ?3, initialization_id = ?4,
                canonical_request_hash = ?5, row_count = ?6, remote_bundle_hash = ?7, remote_bundle_seq = ?8
         WHERE singleton_key = 1",
        params![
            b.state,
            b.source_id,
            b.source_bundle_id,
            b.initialization_id,
            b.canonical_request_hash,
            b.row_count,
            b.remote_bundle_hash,
            b.remote_bundle_seq
        ],
    )?;
    Ok(())
}

/// The server committed the bundle as `bundle_seq` with `bundle_hash`.
pub fn mark_committed_remote(
    conn: &Connection,
    bundle_seq: i64,
    bundle_hash: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_outbox_bundle SET state = 'committed_remote', remote_bundle_seq = ?1, remote_bundle_hash = ?2 WHERE singleton_key = 1",
        params![bundle_seq, bundle_hash],
    )?;
    Ok(())
}

/// Carries the bundle over to `source_id` as its first bundle (a rotated rebuild).
pub fn rebind_as_first_bundle(conn: &Connection, source_id: &str) -> rusqlite::Result<()> {
    conn.execute("UPDATE _sync_outbox_bundle SET source_id = ?1, source_bundle_id = 1 WHERE singleton_key = 1", [source_id])?;
    conn.execute("UPDATE _sync_outbox_rows SET source_bundle_id = 1", [])?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub source_bundle_id: i64,
    pub row_ordinal: i64,
    pub schema_name: String,
    pub table_name: String,
    pub key_json: String,
    pub wire_key_json: String,
    pub op: String,
    pub base_row_version: i64,
    pub local_payload: Option<String>,
    pub wire_payload: Option<String>,
}

/// Columns of `_sync_outbox_rows` in [`row_of`] order.
const COLUMNS: &str = "source_bundle_id, row_ordinal, schema_name, table_name, key_json, wire_key_json, op, base_row_version, local_payload, wire_payload";

fn row_of(r: &rusqlite::Row) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        source_bundle_id: r.get(0)?,
        row_ordinal: r.get(1)?,
        schema_name: r.get(2)?,
        table_name: r.get(3)?,
        key_json: r.get(4)?,
        wire_key_json: r.get(5)?,
        op: r.get(6)?,
        base_row_version: r.get(7)?,
        local_payload: r.get(8)?,
        wire_payload: r.get(9)?,
    })
}

/// Every outbox row, in bundle order.
pub fn all_rows(conn: &Connection) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM _sync_outbox_rows ORDER BY source_bundle_id, row_ordinal"
    ))?;
    let rows = stmt.query_map([], row_of)?.collect();
    rows
}

/// Streams every outbox row, in bundle order, into `f` (stops at its first error).
pub fn for_each_row<E: From<rusqlite::Error>>(
    conn: &Connection,
    mut f: impl FnMut(OutboxRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM _sync_outbox_rows ORDER BY source_bundle_id, row_ordinal"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        f(row_of(r)?)?;
    }
    Ok(())
}

/// Up to `limit` rows of `source_bundle_id` after `after_ordinal` (`None`: from the
/// first), in `row_ordinal` order. Keyset paging on the primary key, so each page
/// costs the same wherever it starts and ordinals need not be contiguous.
pub fn page(
    conn: &Connection,
    source_bundle_id: i64,
    after_ordinal: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<OutboxRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM _sync_outbox_rows
         WHERE source_bundle_id = ?1 AND row_ordinal > ?2 ORDER BY row_ordinal LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                source_bundle_id,
                after_ordinal.unwrap_or(i64::MIN),
                limit as i64
            ],
            row_of,
        )?
        .collect();
    rows
}

pub fn row_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM _sync_outbox_rows", [], |r| r.get(0))
}

pub fn delete_rows(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _sync_outbox_rows", [])?;
    Ok(())
}

/// Rows per table of one bundle.
pub fn table_counts(
    conn: &Connection,
    source_bundle_id: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, COUNT(*) FROM _sync_outbox_rows WHERE source_bundle_id = ?1 GROUP BY table_name",
    )?;
    let counts = stmt
        .query_map([source_bundle_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect();
    counts
}

/// The tables one bundle touches.
pub fn tables(conn: &Connection, source_bundle_id: i64) -> rusqlite::Result<Vec<String>> {
    let tables = conn
        .prepare("SELECT DISTINCT table_name FROM _sync_outbox_rows WHERE source_bundle_id = ?1")?
        .query_map([source_bundle_id], |r| r.get(0))?
        .collect();
    tables
}

pub fn key_json_at(
    conn: &Connection,
    source_bundle_id: i64,
    ordinal: i64,
) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT key_json FROM _sync_outbox_rows WHERE source_bundle_id = ?1 AND row_ordinal = ?2",
        params![source_bundle_id, ordinal],
        |r| r.get(0),
    )
}

/// Ordinals of the bundle's rows that have a dirty row for the same key.
pub fn ordinals_with_dirty_rows(
    conn: &Connection,
    source_bundle_id: i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "SELECT o.row_ordinal FROM _sync_outbox_rows AS o
         JOIN _sync_dirty_rows AS d
           ON d.schema_name = o.schema_name AND d.table_name = o.table_name AND d.key_json = o.key_json
         WHERE o.source_bundle_id = ?1",
    )?;
    let ordinals = stmt.query_map([source_bundle_id], |r| r.get(0))?.collect();
    ordinals
}

/// Ordinals of `table`'s rows in the bundle whose replay is not the plain case: a
/// dirty row exists for the key, the key is not text at `key_path`, or the live
/// application row is not exactly the uploaded local payload (DELETE: still present).
pub fn unusual_ordinals(
    conn: &Connection,
    table: &ManagedTable,
    key_path: &str,
    source_bundle_id: i64,
) -> rusqlite::Result<Vec<i64>> {
    let t = quote_ident(&table.name);
    let k = quote_ident(&table.key_column);
    let sql = format!(
        "SELECT o.row_ordinal FROM _sync_outbox_rows AS o
         LEFT JOIN _sync_dirty_rows AS d
           ON d.schema_name = o.schema_name AND d.table_name = o.table_name AND d.key_json = o.key_json
         LEFT JOIN {t} AS r ON r.{k} = json_extract(o.key_json, ?3)
         WHERE o.source_bundle_id = ?1 AND o.table_name = ?2
           AND NOT (d.key_json IS NULL AND json_type(o.key_json, ?3) IS 'text' AND
                    CASE WHEN o.op = 'DELETE' THEN r.{k} IS NULL
                         ELSE r.{k} IS NOT NULL AND {live} IS o.local_payload END)
         ORDER BY o.row_ordinal",
        live = row_expr(table, "r"),
    );
    let mut stmt = conn.prepare(&sql)?;
    let ordinals = stmt
        .query_map(params![source_bundle_id, table.name, key_path], |r| {
            r.get(0)
        })?
        .collect();
    ordinals
}

/// Outbox rows inserted several per statement: every execution of the single-row
/// INSERT pays for statement setup and for the ephemeral table SQLite builds for the
/// `op IN (...)` CHECK constraint, which is most of an insert's CPU besides the B-tree.
#[derive(Default)]
pub struct RowWriter {
    rows: Vec<OutboxRow>,
    /// The statement text for a full batch, built once.
    full_sql: Option<String>,
}

/// `INSERT INTO _sync_outbox_rows(...) VALUES (?1, ..., ?10), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p: Vec<String> = (1..=10).map(|c| format!("?{}", i * 10 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO _sync_outbox_rows({COLUMNS}) VALUES {}",
        values.join(", ")
    )
}

impl RowWriter {
    /// Rows per statement: 10 parameters each, below SQLite's historical 999 limit.
    const ROWS: usize = 64;

    pub fn push(&mut self, conn: &Connection, row: OutboxRow) -> rusqlite::Result<()> {
        self.rows.push(row);
        if self.rows.len() == Self::ROWS {
            self.flush(conn)?;
        }
        Ok(())
    }

    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let partial;
        let sql: &str = if self.rows.len() == Self::ROWS {
            self.full_sql.get_or_insert_with(|| insert_sql(Self::ROWS))
        } else {
            partial = insert_sql(self.rows.len());
            &partial
        };
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(self.rows.len() * 10);
        for r in &self.rows {
            params.extend([
                &r.source_bundle_id as &dyn rusqlite::ToSql,
                &r.row_ordinal,
                &r.schema_name,
                &r.table_name,
                &r.key_json,
                &r.wire_key_json,
                &r.op,
                &r.base_row_version,
                &r.local_payload,
                &r.wire_payload,
            ]);
        }
        conn.prepare_cached(sql)?.execute(params.as_slice())?;
        self.rows.clear();
        Ok(())
    }
}
