//! Server-originated writes (§10.11) through the `POST /test/server-bundle` hook: rows
//! written under a server-side source id and recorded as a normal committed bundle (new
//! bundle_seq, row versions, watch event) that clients receive by pull.

use std::collections::HashSet;

use oversqlite_protocol::{codes, PushSessionCreateResponse, WatchEvent};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;

use super::commit::{apply_bundle, commit_checked, row_state};
use super::push_rows::{validate_rows, RawPushRow};
use super::scope::{
    ensure_user, expected_next_source_bundle_id, mark_initialized, SCOPE_INITIALIZING,
    SCOPE_UNINITIALIZED,
};
use crate::error::{ApiError, ServiceResult};
use crate::state::{AppState, ForeignKeyErrors};
use crate::timefmt::{now_ms, rfc3339_from_ms};

/// Body of `POST /test/server-bundle`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServerBundleRequest {
    pub user_id: String,
    #[serde(default = "default_source")]
    pub source_id: String,
    /// Next contiguous id for `source_id` when absent.
    #[serde(default)]
    pub source_bundle_id: Option<i64>,
    /// Rows as in a push chunk; `base_row_version` is ignored (the current row state is used).
    pub rows: Vec<RawPushRow>,
}

fn default_source() -> String {
    "server".to_string()
}

pub enum ServerBundleOutcome {
    /// The bundle's metadata and the watch events of it and of its cascade bundle, if any.
    Committed(oversqlite_protocol::PushCommitResponse, Vec<WatchEvent>),
    AlreadyCommitted(PushSessionCreateResponse),
}

pub fn write(
    app: &AppState,
    conn: &mut Connection,
    req: ServerBundleRequest,
) -> ServiceResult<ServerBundleOutcome> {
    let invalid = |m: String| ApiError::bad_request(codes::INVALID_REQUEST, m);
    let user = req.user_id.trim().to_string();
    let source = req.source_id.trim().to_string();
    if user.is_empty() || source.is_empty() {
        return Err(invalid("user_id and source_id must be non-empty".into()).into());
    }
    if req.rows.is_empty() {
        return Err(invalid("rows must not be empty".into()).into());
    }
    let mut rows = validate_rows(&app.registry, req.rows, &mut HashSet::new()).map_err(invalid)?;
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state = ensure_user(&tx, &user, now)?;
    if state.scope_state == SCOPE_INITIALIZING {
        return Err(ApiError::conflict(
            codes::SCOPE_INITIALIZING,
            "a client holds the initialization lease for this user",
        )
        .into());
    }
    if state.scope_state == SCOPE_UNINITIALIZED {
        // Authoritative server data now exists, so later connects resolve remote_authoritative.
        mark_initialized(&tx, &user, &source, &rfc3339_from_ms(now))?;
    }
    if let Some(id) = req.source_bundle_id {
        let replay = tx
            .query_row(
                "SELECT bundle_seq, row_count, bundle_hash FROM _oversync_bundle_log
                 WHERE user_id = ?1 AND source_id = ?2 AND source_bundle_id = ?3 AND bundle_seq > ?4",
                params![user, source, id, state.retained_floor],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()?;
        if let Some((bundle_seq, row_count, bundle_hash)) = replay {
            return Ok(ServerBundleOutcome::AlreadyCommitted(
                PushSessionCreateResponse::AlreadyCommitted {
                    bundle_seq,
                    source_id: source,
                    source_bundle_id: id,
                    row_count,
                    bundle_hash,
                },
            ));
        }
    }
    let expected = expected_next_source_bundle_id(&tx, &user, &source)?;
    let source_bundle_id = req.source_bundle_id.unwrap_or(expected);
    if source_bundle_id < expected {
        return Err(ApiError::conflict(
            codes::HISTORY_PRUNED,
            format!("source_bundle_id {source_bundle_id} is below the next expected {expected}"),
        )
        .into());
    }
    if source_bundle_id > expected {
        return Err(ApiError::conflict(
            codes::SOURCE_SEQUENCE_OUT_OF_ORDER,
            format!("source_bundle_id {source_bundle_id} is ahead of the next expected {expected}"),
        )
        .into());
    }
    for row in &mut rows {
        row.base_row_version = row_state(&tx, &user, &row.table, &row.key)?
            .map(|(v, _)| v)
            .unwrap_or(0);
    }
    let applied = apply_bundle(app, &tx, &user, &source, source_bundle_id, &rows, now)?;
    // A test route of ours, not go-oversync's commit: always our 400 for a violation.
    commit_checked(tx, ForeignKeyErrors::Ours)?;
    let events = applied.events();
    Ok(ServerBundleOutcome::Committed(applied.pushed, events))
}
