//! Pending local changes: the frozen outbox (being uploaded) followed by dirty rows
//! (captured, not yet frozen), in upload order.
use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::state::require_runtime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingChange {
    pub schema_name: String,
    pub table_name: String,
    pub key_json: String,
    pub op: String,
    pub base_row_version: i64,
    /// Local payload JSON; `None` for a delete.
    pub payload: Option<String>,
    /// `outbox` (frozen for upload) or `dirty` (captured, not yet frozen).
    pub state: String,
    /// `row_ordinal` for outbox rows, `dirty_ordinal` for dirty rows.
    pub ordinal: i64,
}

pub fn pending_changes(conn: &Connection) -> Result<Vec<PendingChange>> {
    require_runtime(conn)?;
    let mut stmt = conn.prepare(
        "SELECT schema_name, table_name, key_json, op, base_row_version, local_payload, 'outbox', row_ordinal, 0 AS grp
           FROM _sync_outbox_rows
         UNION ALL
         SELECT schema_name, table_name, key_json, op, base_row_version, payload, 'dirty', dirty_ordinal, 1
           FROM _sync_dirty_rows
         ORDER BY grp, 8, 2, 3",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PendingChange {
            schema_name: r.get(0)?,
            table_name: r.get(1)?,
            key_json: r.get(2)?,
            op: r.get(3)?,
            base_row_version: r.get(4)?,
            payload: r.get(5)?,
            state: r.get(6)?,
            ordinal: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Number of pending rows (outbox + dirty), the `pendingRowCount` of sync status.
pub fn pending_count(conn: &Connection) -> Result<i64> {
    require_runtime(conn)?;
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM _sync_outbox_rows) + (SELECT COUNT(*) FROM _sync_dirty_rows)",
        [],
        |r| r.get(0),
    )?)
}
