//! Durable runtime state, read and written through the local runtime's typed stores
//! (`oversqlite_core::store`); this module only adds the engine's compound steps.
//! The database is the only source of truth: every operation reloads what it needs,
//! so changes made by another connection or process are honoured.

use rusqlite::Connection;

use oversqlite_core::state as core_state;
pub use oversqlite_core::state::{
    AttachmentState as Attachment, OperationState as Operation, OutboxBundle, SourceInfo,
};
pub use oversqlite_core::store::outbox::OutboxRow;
use oversqlite_core::store::{attachment, dirty_rows, operation, outbox, source};
pub use oversqlite_core::store::{OperationKind, OutboxState};

use crate::error::Result;

pub fn is_attached(a: &Attachment) -> bool {
    a.is_attached()
}

pub fn attachment(conn: &Connection) -> Result<Attachment> {
    core_state::require_runtime(conn)?;
    Ok(attachment::read(conn)?)
}

pub fn operation(conn: &Connection) -> Result<Operation> {
    Ok(operation::read(conn)?)
}

pub fn outbox(conn: &Connection) -> Result<OutboxBundle> {
    Ok(outbox::read_bundle(conn)?)
}

pub fn write_outbox(conn: &Connection, b: &OutboxBundle) -> Result<()> {
    Ok(outbox::write_bundle(conn, b)?)
}

pub fn source_row(conn: &Connection, source_id: &str) -> Result<Option<source::SourceState>> {
    Ok(source::read(conn, source_id)?)
}

pub fn ensure_source_row(conn: &Connection, source_id: &str) -> Result<()> {
    Ok(source::ensure(conn, source_id)?)
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

/// Every outbox row, in bundle order (only paths that need them all: conflict
/// resolution and rebuilds; pushes page through them).
pub fn outbox_rows(conn: &Connection) -> Result<Vec<OutboxRow>> {
    Ok(outbox::all_rows(conn)?)
}

pub fn dirty_count(conn: &Connection) -> Result<i64> {
    Ok(dirty_rows::count(conn)?)
}

pub fn outbox_row_count(conn: &Connection) -> Result<i64> {
    Ok(outbox::row_count(conn)?)
}

/// Dirty rows plus frozen outbox rows: the local intent not yet acknowledged.
pub fn pending_row_count(conn: &Connection) -> Result<i64> {
    Ok(dirty_count(conn)? + outbox_row_count(conn)?)
}

pub fn clear_outbox(conn: &Connection) -> Result<()> {
    outbox::delete_rows(conn)?;
    write_outbox(conn, &OutboxBundle::none())
}

pub fn reset_operation(conn: &Connection) -> Result<()> {
    Ok(operation::write(conn, &Operation::none())?)
}

pub fn write_operation(conn: &Connection, o: &Operation) -> Result<()> {
    Ok(operation::write(conn, o)?)
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
    attachment::persist_attached(conn, source_id, user, schema, init_id)?;
    reset_operation(conn)
}

/// Binding `anonymous` on `source_id`, every other attachment field at its default.
pub fn persist_anonymous(conn: &Connection, source_id: &str) -> Result<()> {
    Ok(attachment::persist_anonymous(conn, source_id)?)
}

pub fn set_rebuild_required(conn: &Connection) -> Result<()> {
    Ok(attachment::set_rebuild_required(conn)?)
}

pub fn set_next_source_bundle_id_at_least(
    conn: &Connection,
    source_id: &str,
    next: i64,
) -> Result<()> {
    Ok(source::raise_next_bundle_id(conn, source_id, next)?)
}
