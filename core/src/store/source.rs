//! `_sync_source_state`: one row per source id this device has used.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::Result;

/// The error text when the current source has no row.
pub const MISSING_CURRENT_SOURCE: &str =
    "the current source has no _sync_source_state row; call oversqlite_open";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceState {
    pub source_id: String,
    pub next_source_bundle_id: i64,
    pub replaced_by_source_id: String,
}

pub fn read(conn: &Connection, source_id: &str) -> Result<Option<SourceState>> {
    Ok(conn
        .query_row(
            "SELECT source_id, next_source_bundle_id, replaced_by_source_id FROM _sync_source_state WHERE source_id = ?1",
            [source_id],
            |r| Ok(SourceState { source_id: r.get(0)?, next_source_bundle_id: r.get(1)?, replaced_by_source_id: r.get(2)? }),
        )
        .optional()?)
}

/// Inserts a fresh source row (`next_source_bundle_id = 1`) unless it exists.
pub fn ensure(conn: &Connection, source_id: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO _sync_source_state(source_id, next_source_bundle_id, replaced_by_source_id, created_at)
         VALUES (?1, 1, '', strftime('%Y-%m-%dT%H:%M:%fZ','now')) ON CONFLICT(source_id) DO NOTHING",
        [source_id],
    )?;
    Ok(())
}

pub fn write(conn: &Connection, s: &SourceState) -> Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET next_source_bundle_id = ?2, replaced_by_source_id = ?3 WHERE source_id = ?1",
        params![s.source_id, s.next_source_bundle_id, s.replaced_by_source_id],
    )?;
    Ok(())
}

/// Records that `old` was replaced by `new`.
pub fn set_replaced_by(conn: &Connection, old: &str, new: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET replaced_by_source_id = ?2 WHERE source_id = ?1",
        params![old, new],
    )?;
    Ok(())
}

/// Raises the next bundle id to at least `next`.
pub fn raise_next_bundle_id(conn: &Connection, source_id: &str, next: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET next_source_bundle_id = MAX(next_source_bundle_id, ?2) WHERE source_id = ?1",
        params![source_id, next],
    )?;
    Ok(())
}

/// Lowers the next bundle id to `next` when it is above it (an uncommitted bundle
/// whose id must be reused).
pub fn lower_next_bundle_id(conn: &Connection, source_id: &str, next: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET next_source_bundle_id = ?2 WHERE source_id = ?1 AND next_source_bundle_id > ?2",
        params![source_id, next],
    )?;
    Ok(())
}
