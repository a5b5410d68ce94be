//! `oversqlite_pending`, `oversqlite_source_info` and `oversqlite_sync_log`.
use oversqlite_core::store::sync_log;
use oversqlite_core::{pending, state, Error};
use rusqlite::Connection;

use super::rows_vtab::{Cell, RowSource};

pub struct Pending;

impl RowSource for Pending {
    const NAME: &'static str = "oversqlite_pending";
    const SCHEMA: &'static str =
        "CREATE TABLE x(schema_name TEXT, table_name TEXT, key_json TEXT, op TEXT, \
        base_row_version INTEGER, payload TEXT, state TEXT, ordinal INTEGER)";

    fn rows(conn: &Connection) -> Result<Vec<Vec<Cell>>, Error> {
        Ok(pending::pending_changes(conn)?
            .into_iter()
            .map(|p| {
                vec![
                    Cell::Text(p.schema_name),
                    Cell::Text(p.table_name),
                    Cell::Text(p.key_json),
                    Cell::Text(p.op),
                    Cell::Int(p.base_row_version),
                    p.payload.into(),
                    Cell::Text(p.state),
                    Cell::Int(p.ordinal),
                ]
            })
            .collect())
    }
}

pub struct SourceInfo;

impl RowSource for SourceInfo {
    const NAME: &'static str = "oversqlite_source_info";
    const SCHEMA: &'static str =
        "CREATE TABLE x(current_source_id TEXT, rebuild_required INTEGER, \
        source_recovery_required INTEGER, source_recovery_reason TEXT, binding_state TEXT, \
        attached_user_id TEXT, last_bundle_seq_seen INTEGER)";

    fn rows(conn: &Connection) -> Result<Vec<Vec<Cell>>, Error> {
        let info = state::source_info(conn)?;
        Ok(vec![vec![
            Cell::Text(info.current_source_id),
            Cell::Int(info.rebuild_required as i64),
            Cell::Int(info.source_recovery_required as i64),
            info.source_recovery_reason.into(),
            Cell::Text(info.binding_state),
            Cell::Text(info.attached_user_id),
            Cell::Int(info.last_bundle_seq_seen),
        ]])
    }
}

/// `oversqlite_sync_log`: the sync journal, newest first (empty before the first
/// journaled operation). Any connection that loaded the extension reads it, whichever
/// process wrote the rows.
pub struct SyncLog;

impl RowSource for SyncLog {
    const NAME: &'static str = "oversqlite_sync_log";
    const SCHEMA: &'static str =
        "CREATE TABLE x(id INTEGER, operation TEXT, trigger TEXT, started_at TEXT, \
        finished_at TEXT, outcome TEXT, rows_up INTEGER, rows_down INTEGER, bytes_up INTEGER, \
        bytes_down INTEGER, error_code TEXT, error_message TEXT)";

    fn rows(conn: &Connection) -> Result<Vec<Vec<Cell>>, Error> {
        Ok(sync_log::recent(conn, i64::MAX)?
            .into_iter()
            .map(|e| {
                vec![
                    Cell::Int(e.id),
                    Cell::Text(e.operation),
                    Cell::Text(e.trigger),
                    Cell::Text(e.started_at),
                    Cell::Text(e.finished_at),
                    Cell::Text(e.outcome),
                    Cell::Int(e.rows_up),
                    Cell::Int(e.rows_down),
                    Cell::Int(e.bytes_up),
                    Cell::Int(e.bytes_down),
                    e.error_code.into(),
                    e.error_message.into(),
                ]
            })
            .collect())
    }
}
