//! `_sync_operation_state`: the singleton multi-step operation in progress.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::not_open;
use super::OperationKind;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationState {
    pub kind: OperationKind,
    pub target_user_id: String,
    pub staged_snapshot_id: String,
    pub snapshot_bundle_seq: i64,
    pub snapshot_row_count: i64,
    pub reason: String,
    pub replacement_source_id: String,
}

impl OperationState {
    pub fn none() -> Self {
        OperationState {
            kind: OperationKind::None,
            target_user_id: String::new(),
            staged_snapshot_id: String::new(),
            snapshot_bundle_seq: 0,
            snapshot_row_count: 0,
            reason: String::new(),
            replacement_source_id: String::new(),
        }
    }
}

pub fn read(conn: &Connection) -> Result<OperationState> {
    conn.query_row(
        "SELECT kind, target_user_id, staged_snapshot_id, snapshot_bundle_seq, snapshot_row_count, reason,
                replacement_source_id
         FROM _sync_operation_state WHERE singleton_key = 1",
        [],
        |r| {
            Ok(OperationState {
                kind: r.get(0)?,
                target_user_id: r.get(1)?,
                staged_snapshot_id: r.get(2)?,
                snapshot_bundle_seq: r.get(3)?,
                snapshot_row_count: r.get(4)?,
                reason: r.get(5)?,
                replacement_source_id: r.get(6)?,
            })
        },
    )
    .optional()?
    .ok_or_else(not_open)
}

pub fn write(conn: &Connection, o: &OperationState) -> Result<()> {
    conn.execute(
        "UPDATE _sync_operation_state SET kind = ?1, target_user_id = ?2, staged_snapshot_id = ?3,
                snapshot_bundle_seq = ?4, snapshot_row_count = ?5, reason = ?6, replacement_source_id = ?7
         WHERE singleton_key = 1",
        params![
            o.kind,
            o.target_user_id,
            o.staged_snapshot_id,
            o.snapshot_bundle_seq,
            o.snapshot_row_count,
            o.reason,
            o.replacement_source_id
        ],
    )?;
    Ok(())
}
