//! Durable runtime state, read and written through the local runtime's typed
//! accessors plus the few multi-row updates the engine needs. The database is the
//! only source of truth: every operation reloads what it needs, so changes made by
//! another connection or process are honoured.

use rusqlite::{params, Connection};

use oversqlite_core::state as core_state;
pub use oversqlite_core::state::{
    AttachmentState as Attachment, OperationState as Operation, OutboxBundle, SourceInfo,
    SourceState as SourceRow,
};

use crate::error::Result;

pub fn is_attached(a: &Attachment) -> bool {
    a.binding_state == "attached" && !a.attached_user_id.is_empty()
}

pub fn attachment(conn: &Connection) -> Result<Attachment> {
    core_state::require_runtime(conn)?;
    Ok(core_state::read_attachment(conn)?)
}

pub fn operation(conn: &Connection) -> Result<Operation> {
    Ok(core_state::read_operation(conn)?)
}

pub fn outbox(conn: &Connection) -> Result<OutboxBundle> {
    Ok(core_state::read_outbox_bundle(conn)?)
}

pub fn write_outbox(conn: &Connection, b: &OutboxBundle) -> Result<()> {
    Ok(core_state::write_outbox_bundle(conn, b)?)
}

pub fn source_row(conn: &Connection, source_id: &str) -> Result<Option<SourceRow>> {
    Ok(core_state::read_source(conn, source_id)?)
}

pub fn ensure_source_row(conn: &Connection, source_id: &str) -> Result<()> {
    Ok(core_state::ensure_source(conn, source_id)?)
}

pub fn source_info(conn: &Connection) -> Result<SourceInfo> {
    Ok(core_state::source_info(conn)?)
}

/// A fresh lowercase UUID source id different from every id in `avoid`.
pub fn new_source_id(avoid: &[&str]) -> String {
    loop {
        let id = core_state::new_source_id();
        if !avoid.contains(&id.as_str()) {
            return id;
        }
    }
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

/// Columns of `_sync_outbox_rows` in [`outbox_row_of`] order.
pub const OUTBOX_COLUMNS: &str = "source_bundle_id, row_ordinal, schema_name, table_name, key_json, wire_key_json, op, base_row_version, local_payload, wire_payload";

/// An outbox row selected as [`OUTBOX_COLUMNS`].
pub fn outbox_row_of(r: &rusqlite::Row) -> rusqlite::Result<OutboxRow> {
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

/// Every outbox row, in bundle order (only paths that need them all: conflict
/// resolution and rebuilds; pushes page through them).
pub fn outbox_rows(conn: &Connection) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM _sync_outbox_rows ORDER BY source_bundle_id, row_ordinal"
    ))?;
    let rows = stmt
        .query_map([], outbox_row_of)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn count(conn: &Connection, table: &str) -> Result<i64> {
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

pub fn dirty_count(conn: &Connection) -> Result<i64> {
    count(conn, "_sync_dirty_rows")
}

pub fn outbox_row_count(conn: &Connection) -> Result<i64> {
    count(conn, "_sync_outbox_rows")
}

/// Dirty rows plus frozen outbox rows: the local intent not yet acknowledged.
pub fn pending_row_count(conn: &Connection) -> Result<i64> {
    Ok(dirty_count(conn)? + outbox_row_count(conn)?)
}

pub fn clear_outbox(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM _sync_outbox_rows", [])?;
    write_outbox(conn, &OutboxBundle::none())
}

pub fn reset_operation(conn: &Connection) -> Result<()> {
    Ok(core_state::write_operation(conn, &Operation::none())?)
}

pub fn write_operation(conn: &Connection, o: &Operation) -> Result<()> {
    Ok(core_state::write_operation(conn, o)?)
}

/// Binding `attached` for `user` on `source_id`, keeping the checkpoint and the
/// rebuild gate, operation reset to `none` (§7.3 persistAttached).
pub fn persist_attached(
    conn: &Connection,
    source_id: &str,
    user: &str,
    schema: &str,
    init_id: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = 'attached', attached_user_id = ?2,
         schema_name = ?3, pending_initialization_id = ?4 WHERE singleton_key = 1",
        params![source_id, user, schema, init_id],
    )?;
    reset_operation(conn)
}

/// Binding `anonymous` on `source_id`, every other attachment field at its default.
pub fn persist_anonymous(conn: &Connection, source_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = 'anonymous', attached_user_id = '',
         schema_name = '', last_bundle_seq_seen = 0, rebuild_required = 0, pending_initialization_id = '' WHERE singleton_key = 1",
        [source_id],
    )?;
    Ok(())
}

pub fn set_rebuild_required(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET rebuild_required = 1 WHERE singleton_key = 1",
        [],
    )?;
    Ok(())
}

pub fn set_next_source_bundle_id_at_least(
    conn: &Connection,
    source_id: &str,
    next: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET next_source_bundle_id = MAX(next_source_bundle_id, ?2) WHERE source_id = ?1",
        params![source_id, next],
    )?;
    Ok(())
}
