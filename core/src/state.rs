//! Typed access to the runtime's singleton rows and per-source rows. Callers run writes
//! inside their own transaction (see `tx::write_tx`).
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentState {
    pub current_source_id: String,
    /// `anonymous` or `attached`.
    pub binding_state: String,
    pub attached_user_id: String,
    pub schema_name: String,
    pub last_bundle_seq_seen: i64,
    pub rebuild_required: bool,
    pub pending_initialization_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationState {
    /// `none`, `remote_replace` or `source_recovery`.
    pub kind: String,
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
            kind: "none".into(),
            target_user_id: String::new(),
            staged_snapshot_id: String::new(),
            snapshot_bundle_seq: 0,
            snapshot_row_count: 0,
            reason: String::new(),
            replacement_source_id: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxBundle {
    /// `none`, `prepared` or `committed_remote`.
    pub state: String,
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
            state: "none".into(),
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceState {
    pub source_id: String,
    pub next_source_bundle_id: i64,
    pub replaced_by_source_id: String,
}

/// What `oversqlite_source_info` shows (protocol digest §7.1 `sourceInfo` plus binding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub current_source_id: String,
    /// `rebuild_required = 1 OR operation kind = 'source_recovery'`.
    pub rebuild_required: bool,
    pub source_recovery_required: bool,
    /// Set only while a source recovery is pending.
    pub source_recovery_reason: Option<String>,
    pub binding_state: String,
    pub attached_user_id: String,
    pub last_bundle_seq_seen: i64,
}

fn not_open() -> Error {
    Error::new(
        ErrorCode::NotOpen,
        "the sync runtime is not installed in this database; call oversqlite_open() first",
    )
}

/// Fails with `not_open` unless the runtime tables exist.
pub fn require_runtime(conn: &Connection) -> Result<()> {
    if crate::ddl::runtime_installed(conn)? {
        Ok(())
    } else {
        Err(not_open())
    }
}

pub fn read_attachment(conn: &Connection) -> Result<AttachmentState> {
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

pub fn write_attachment(conn: &Connection, a: &AttachmentState) -> Result<()> {
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

pub fn read_operation(conn: &Connection) -> Result<OperationState> {
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

pub fn write_operation(conn: &Connection, o: &OperationState) -> Result<()> {
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

pub fn read_outbox_bundle(conn: &Connection) -> Result<OutboxBundle> {
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

pub fn write_outbox_bundle(conn: &Connection, b: &OutboxBundle) -> Result<()> {
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

pub fn read_source(conn: &Connection, source_id: &str) -> Result<Option<SourceState>> {
    Ok(conn
        .query_row(
            "SELECT source_id, next_source_bundle_id, replaced_by_source_id FROM _sync_source_state WHERE source_id = ?1",
            [source_id],
            |r| Ok(SourceState { source_id: r.get(0)?, next_source_bundle_id: r.get(1)?, replaced_by_source_id: r.get(2)? }),
        )
        .optional()?)
}

/// Inserts a fresh source row (`next_source_bundle_id = 1`) unless it exists.
pub fn ensure_source(conn: &Connection, source_id: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO _sync_source_state(source_id, next_source_bundle_id, replaced_by_source_id, created_at)
         VALUES (?1, 1, '', strftime('%Y-%m-%dT%H:%M:%fZ','now')) ON CONFLICT(source_id) DO NOTHING",
        [source_id],
    )?;
    Ok(())
}

pub fn write_source(conn: &Connection, s: &SourceState) -> Result<()> {
    conn.execute(
        "UPDATE _sync_source_state SET next_source_bundle_id = ?2, replaced_by_source_id = ?3 WHERE source_id = ?1",
        params![s.source_id, s.next_source_bundle_id, s.replaced_by_source_id],
    )?;
    Ok(())
}

/// A fresh source id: a random UUID v4 in lowercase dashed form.
pub fn new_source_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

pub fn apply_mode(conn: &Connection) -> Result<bool> {
    let v: i64 = conn.query_row(
        "SELECT apply_mode FROM _sync_apply_state WHERE singleton_key = 1",
        [],
        |r| r.get(0),
    )?;
    Ok(v != 0)
}

/// Turns capture suppression on/off. Runtime writes to app tables set it to `true` for the
/// duration of one transaction; `open` always resets it.
pub fn set_apply_mode(conn: &Connection, on: bool) -> Result<()> {
    conn.execute(
        "UPDATE _sync_apply_state SET apply_mode = ?1 WHERE singleton_key = 1",
        [on as i64],
    )?;
    Ok(())
}

pub fn source_info(conn: &Connection) -> Result<SourceInfo> {
    require_runtime(conn)?;
    let a = read_attachment(conn)?;
    let o = read_operation(conn)?;
    let recovering = o.kind == "source_recovery";
    Ok(SourceInfo {
        current_source_id: a.current_source_id,
        rebuild_required: a.rebuild_required || recovering,
        source_recovery_required: recovering,
        source_recovery_reason: if recovering { Some(o.reason) } else { None },
        binding_state: a.binding_state,
        attached_user_id: a.attached_user_id,
        last_bundle_seq_seen: a.last_bundle_seq_seen,
    })
}
