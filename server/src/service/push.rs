//! Push sessions (§2.3, §2.4, §2.6, §10.4): create, upload chunks, delete. Commit lives in
//! `commit.rs`.

use std::collections::HashSet;

use oversqlite_protocol::values::normalize_uuid;
use oversqlite_protocol::{codes, PushChunkResponse, PushSessionCreateResponse};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;

use super::push_rows::{encode_chunk, validate_rows, RawPushRow};
use super::scope::{
    ensure_user, expected_next_source_bundle_id, load_user, SCOPE_INITIALIZED, SCOPE_INITIALIZING,
    SCOPE_UNINITIALIZED,
};
use crate::error::{ApiError, ServiceResult};
use crate::state::{AppState, Counters, MAX_ROWS_PER_CHUNK};
use crate::timefmt::{deadline_ms, now_ms};

#[derive(Deserialize, Debug)]
pub struct RawCreateRequest {
    #[serde(default)]
    pub source_bundle_id: i64,
    #[serde(default)]
    pub planned_row_count: i64,
    #[serde(default)]
    pub initialization_id: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct RawChunkRequest {
    #[serde(default)]
    pub start_row_ordinal: i64,
    #[serde(default)]
    pub rows: Vec<RawPushRow>,
}

#[derive(Debug, Clone)]
pub struct PushSession {
    pub push_id: String,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub planned_row_count: i64,
    pub next_expected_row_ordinal: i64,
    pub initialization_id: String,
}

fn invalid_session(message: &str) -> ApiError {
    ApiError::bad_request(codes::PUSH_SESSION_INVALID, message)
}

pub fn create(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    source: &str,
    req: RawCreateRequest,
) -> ServiceResult<PushSessionCreateResponse> {
    if req.source_bundle_id <= 0 {
        return Err(invalid_session("source_bundle_id must be > 0").into());
    }
    if req.planned_row_count <= 0 {
        return Err(invalid_session("planned_row_count must be > 0").into());
    }
    let initialization_id = req
        .initialization_id
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM _oversync_push_chunks WHERE push_id IN (SELECT push_id FROM _oversync_push_sessions WHERE expires_at_ms <= ?1)", [now])?;
    tx.execute(
        "DELETE FROM _oversync_push_sessions WHERE expires_at_ms <= ?1",
        [now],
    )?;
    let state = ensure_user(&tx, user, now)?;
    match state.scope_state {
        SCOPE_UNINITIALIZED if initialization_id.is_some() => {
            return Err(ApiError::new(
                410,
                codes::INITIALIZATION_EXPIRED,
                "initialization lease is no longer active",
            )
            .into());
        }
        SCOPE_UNINITIALIZED => {
            return Err(ApiError::conflict(
                codes::SCOPE_UNINITIALIZED,
                format!("sync scope for user {user} is uninitialized; call connect first"),
            )
            .into());
        }
        SCOPE_INITIALIZING => {
            let Some(init) = initialization_id.as_deref() else {
                return Err(invalid_session(
                    "initialization_id is required while the scope is initializing",
                )
                .into());
            };
            recheck_lease(app, &tx, user, source, init, now)?;
        }
        SCOPE_INITIALIZED if initialization_id.is_some() => {
            return Err(invalid_session(
                "initialization_id must be absent once the scope is initialized",
            )
            .into());
        }
        _ => {}
    }
    let replay = tx
        .query_row(
            "SELECT bundle_seq, row_count, bundle_hash FROM _oversync_bundle_log
             WHERE user_id = ?1 AND source_id = ?2 AND source_bundle_id = ?3 AND bundle_seq > ?4",
            params![user, source, req.source_bundle_id, state.retained_floor],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    if let Some((bundle_seq, row_count, bundle_hash)) = replay {
        tx.commit()?;
        Counters::bump(&app.counters.accepted_push_replay);
        return Ok(PushSessionCreateResponse::AlreadyCommitted {
            bundle_seq,
            source_id: source.to_string(),
            source_bundle_id: req.source_bundle_id,
            row_count,
            bundle_hash,
        });
    }
    let expected = expected_next_source_bundle_id(&tx, user, source)?;
    if req.source_bundle_id < expected {
        Counters::bump(&app.counters.history_pruned);
        return Err(ApiError::conflict(
            codes::HISTORY_PRUNED,
            format!("source_bundle_id {} for source {source} is below the next expected {expected} and its committed bundle is no longer retained", req.source_bundle_id),
        )
        .into());
    }
    if req.source_bundle_id > expected {
        return Err(ApiError::conflict(
            codes::SOURCE_SEQUENCE_OUT_OF_ORDER,
            format!(
                "source_bundle_id {} for source {source} is ahead of the next expected {expected}",
                req.source_bundle_id
            ),
        )
        .into());
    }
    tx.execute(
        "DELETE FROM _oversync_push_chunks WHERE push_id IN (SELECT push_id FROM _oversync_push_sessions
             WHERE user_id = ?1 AND source_id = ?2 AND source_bundle_id = ?3)",
        params![user, source, req.source_bundle_id],
    )?;
    tx.execute(
        "DELETE FROM _oversync_push_sessions WHERE user_id = ?1 AND source_id = ?2 AND source_bundle_id = ?3",
        params![user, source, req.source_bundle_id],
    )?;
    let push_id = uuid::Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO _oversync_push_sessions (push_id, user_id, source_id, source_bundle_id, planned_row_count,
             next_expected_row_ordinal, initialization_id, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)",
        params![
            push_id,
            user,
            source,
            req.source_bundle_id,
            req.planned_row_count,
            initialization_id.unwrap_or_default(),
            deadline_ms(now, app.settings.push_session_ttl_secs)
        ],
    )?;
    tx.commit()?;
    Ok(PushSessionCreateResponse::Staging {
        push_id,
        planned_row_count: req.planned_row_count,
        next_expected_row_ordinal: 0,
    })
}

/// The initialising source must still own an active lease; refreshes it on success.
pub fn recheck_lease(
    app: &AppState,
    conn: &Connection,
    user: &str,
    source: &str,
    init: &str,
    now: i64,
) -> ServiceResult<()> {
    let state = load_user(conn, user)?.ok_or_else(|| {
        ApiError::conflict(codes::INITIALIZATION_STALE, "initialization lease is stale")
    })?;
    if state.scope_state != SCOPE_INITIALIZING {
        return Err(ApiError::conflict(
            codes::INITIALIZATION_STALE,
            "scope is no longer initializing",
        )
        .into());
    }
    if state.lease_expired(now) {
        return Err(ApiError::new(
            410,
            codes::INITIALIZATION_EXPIRED,
            "initialization lease has expired",
        )
        .into());
    }
    if state.initializer_source_id.as_deref() != Some(source)
        || state.initialization_id.as_deref() != Some(init)
    {
        return Err(ApiError::conflict(
            codes::INITIALIZATION_STALE,
            "initialization lease is held by another source or id",
        )
        .into());
    }
    conn.execute(
        "UPDATE _oversync_user_state SET lease_expires_at_ms = ?2 WHERE user_id = ?1",
        params![user, deadline_ms(now, app.settings.lease_ttl_secs)],
    )?;
    Ok(())
}

/// Loads a push session for `user`: 404 unknown/non-UUID id, 403 other user, 410 expired.
pub fn load_session(
    conn: &Connection,
    push_id: &str,
    user: &str,
    now: i64,
) -> ServiceResult<PushSession> {
    let not_found = || {
        ApiError::new(
            404,
            codes::PUSH_SESSION_NOT_FOUND,
            format!("push session {push_id} not found"),
        )
    };
    if normalize_uuid(push_id.trim()).is_none() {
        return Err(not_found().into());
    }
    let row = conn
        .query_row(
            "SELECT push_id, user_id, source_id, source_bundle_id, planned_row_count, next_expected_row_ordinal,
                    initialization_id, expires_at_ms FROM _oversync_push_sessions WHERE push_id = ?1",
            [push_id.trim().to_lowercase()],
            |r| {
                Ok((
                    PushSession {
                        push_id: r.get(0)?,
                        source_id: r.get(2)?,
                        source_bundle_id: r.get(3)?,
                        planned_row_count: r.get(4)?,
                        next_expected_row_ordinal: r.get(5)?,
                        initialization_id: r.get(6)?,
                    },
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(7)?,
                ))
            },
        )
        .optional()?;
    let (session, owner, expires_at) = row.ok_or_else(not_found)?;
    if owner != user {
        return Err(ApiError::new(
            403,
            codes::PUSH_SESSION_FORBIDDEN,
            format!("push session {push_id} belongs to another user"),
        )
        .into());
    }
    if expires_at <= now {
        return Err(ApiError::new(
            410,
            codes::PUSH_SESSION_EXPIRED,
            format!("push session {push_id} has expired"),
        )
        .into());
    }
    Ok(session)
}

pub fn upload_chunk(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    push_id: &str,
    req: RawChunkRequest,
) -> ServiceResult<PushChunkResponse> {
    let invalid = |m: String| ApiError::bad_request(codes::PUSH_CHUNK_INVALID, m);
    if req.start_row_ordinal < 0 {
        return Err(invalid("start_row_ordinal must be >= 0".into()).into());
    }
    if req.rows.is_empty() {
        return Err(invalid("rows must not be empty".into()).into());
    }
    if req.rows.len() as i64 > MAX_ROWS_PER_CHUNK {
        return Err(invalid(format!(
            "rows length {} exceeds max_rows_per_push_chunk {MAX_ROWS_PER_CHUNK}",
            req.rows.len()
        ))
        .into());
    }
    let rows = validate_rows(&app.registry, req.rows, &mut HashSet::new()).map_err(invalid)?;
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let session = load_session(&tx, push_id, user, now)?;
    if !session.initialization_id.is_empty() {
        recheck_lease(
            app,
            &tx,
            user,
            &session.source_id,
            &session.initialization_id,
            now,
        )?;
    }
    if req.start_row_ordinal != session.next_expected_row_ordinal {
        return Err(ApiError::conflict(
            codes::PUSH_CHUNK_OUT_OF_ORDER,
            format!(
                "push session {push_id} expected start_row_ordinal {}, got {}",
                session.next_expected_row_ordinal, req.start_row_ordinal
            ),
        )
        .into());
    }
    let next = req.start_row_ordinal + rows.len() as i64;
    if next > session.planned_row_count {
        return Err(invalid("chunk exceeds planned_row_count".into()).into());
    }
    tx.execute(
        "INSERT INTO _oversync_push_chunks (push_id, start_row_ordinal, row_count, rows) VALUES (?1, ?2, ?3, ?4)",
        params![
            session.push_id,
            req.start_row_ordinal,
            rows.len() as i64,
            encode_chunk(&rows)?
        ],
    )?;
    tx.execute(
        "UPDATE _oversync_push_sessions SET next_expected_row_ordinal = ?2, expires_at_ms = ?3 WHERE push_id = ?1",
        params![session.push_id, next, deadline_ms(now, app.settings.push_session_ttl_secs)],
    )?;
    tx.commit()?;
    Ok(PushChunkResponse {
        push_id: session.push_id,
        next_expected_row_ordinal: next,
    })
}

pub fn delete_session(conn: &mut Connection, user: &str, push_id: &str) -> ServiceResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let session = load_session(&tx, push_id, user, now_ms())?;
    delete_session_rows(&tx, &session.push_id)?;
    tx.commit()?;
    Ok(())
}

pub fn delete_session_rows(conn: &Connection, push_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM _oversync_push_chunks WHERE push_id = ?1",
        [push_id],
    )?;
    conn.execute(
        "DELETE FROM _oversync_push_sessions WHERE push_id = ?1",
        [push_id],
    )?;
    Ok(())
}
