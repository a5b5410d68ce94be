//! `_sync_attachment_state`: the singleton binding of this database to a user.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::not_open;
use super::BindingState;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentState {
    pub current_source_id: String,
    pub binding_state: BindingState,
    pub attached_user_id: String,
    pub schema_name: String,
    pub last_bundle_seq_seen: i64,
    pub rebuild_required: bool,
    pub pending_initialization_id: String,
}

impl AttachmentState {
    /// Attached to a user (the binding says so and names one).
    pub fn is_attached(&self) -> bool {
        self.binding_state == BindingState::Attached && !self.attached_user_id.is_empty()
    }
}

pub fn read(conn: &Connection) -> Result<AttachmentState> {
    conn.query_row(
        "SELECT current_source_id, binding_state, attached_user_id, schema_name, last_bundle_seq_seen,
                rebuild_required, pending_initialization_id
         FROM _sync_attachment_state WHERE singleton_key = 1",
        [],
        |r| {
            Ok(AttachmentState {
                current_source_id: r.get(0)?,
                binding_state: r.get(1)?,
                attached_user_id: r.get(2)?,
                schema_name: r.get(3)?,
                last_bundle_seq_seen: r.get(4)?,
                rebuild_required: r.get::<_, i64>(5)? != 0,
                pending_initialization_id: r.get(6)?,
            })
        },
    )
    .optional()?
    .ok_or_else(not_open)
}

pub fn write(conn: &Connection, a: &AttachmentState) -> Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = ?2, attached_user_id = ?3,
                schema_name = ?4, last_bundle_seq_seen = ?5, rebuild_required = ?6, pending_initialization_id = ?7
         WHERE singleton_key = 1",
        params![
            a.current_source_id,
            a.binding_state,
            a.attached_user_id,
            a.schema_name,
            a.last_bundle_seq_seen,
            a.rebuild_required as i64,
            a.pending_initialization_id
        ],
    )?;
    Ok(())
}

/// Binding `attached` for `user` on `source_id`, keeping the checkpoint and the
/// rebuild gate (§7.3 persistAttached).
pub fn persist_attached(
    conn: &Connection,
    source_id: &str,
    user: &str,
    schema: &str,
    init_id: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = 'attached', attached_user_id = ?2,
         schema_name = ?3, pending_initialization_id = ?4 WHERE singleton_key = 1",
        params![source_id, user, schema, init_id],
    )?;
    Ok(())
}

/// Binding `attached` after a snapshot was applied: checkpoint at the snapshot, the
/// rebuild gate and any initialisation lease cleared (§7.7.1).
pub fn persist_snapshot_applied(
    conn: &Connection,
    source_id: &str,
    user: &str,
    schema: &str,
    snapshot_bundle_seq: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = 'attached', attached_user_id = ?2,
         schema_name = ?3, last_bundle_seq_seen = ?4, rebuild_required = 0, pending_initialization_id = '' WHERE singleton_key = 1",
        params![source_id, user, schema, snapshot_bundle_seq],
    )?;
    Ok(())
}

/// Binding `anonymous` on `source_id`, every other field at its default.
pub fn persist_anonymous(conn: &Connection, source_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET current_source_id = ?1, binding_state = 'anonymous', attached_user_id = '',
         schema_name = '', last_bundle_seq_seen = 0, rebuild_required = 0, pending_initialization_id = '' WHERE singleton_key = 1",
        [source_id],
    )?;
    Ok(())
}

pub fn set_rebuild_required(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET rebuild_required = 1 WHERE singleton_key = 1",
        [],
    )?;
    Ok(())
}

/// The initialisation lease has done its job (or is moot).
pub fn clear_pending_initialization(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET pending_initialization_id = '' WHERE singleton_key = 1",
        [],
    )?;
    Ok(())
}

/// Moves the checkpoint up to `seq` (never down).
pub fn advance_checkpoint(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET last_bundle_seq_seen = MAX(last_bundle_seq_seen, ?1) WHERE singleton_key = 1",
        [seq],
    )?;
    Ok(())
}

/// Moves the checkpoint to `seq` only when it is the next one (a contiguous bundle).
pub fn advance_checkpoint_if_next(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_attachment_state SET last_bundle_seq_seen = ?1 WHERE singleton_key = 1 AND last_bundle_seq_seen + 1 = ?1",
        [seq],
    )?;
    Ok(())
}
