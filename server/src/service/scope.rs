//! Per-user scope state (UNINITIALIZED → INITIALIZING → INITIALIZED, §10.2) and per-source
//! state (active / reserved / retired).

use oversqlite_protocol::codes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{ApiError, ServiceResult};

pub const SCOPE_UNINITIALIZED: i64 = 0;
pub const SCOPE_INITIALIZING: i64 = 1;
pub const SCOPE_INITIALIZED: i64 = 2;

#[derive(Clone, Debug)]
pub struct UserState {
    pub next_bundle_seq: i64,
    pub retained_floor: i64,
    pub scope_state: i64,
    pub initializer_source_id: Option<String>,
    pub initialization_id: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
}

impl UserState {
    pub fn latest_bundle_seq(&self) -> i64 {
        self.next_bundle_seq - 1
    }

    pub fn lease_expired(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms
            .map(|t| t <= now_ms)
            .unwrap_or(true)
    }
}

pub fn load_user(conn: &Connection, user: &str) -> rusqlite::Result<Option<UserState>> {
    conn.query_row(
        "SELECT next_bundle_seq, retained_bundle_floor, scope_state, initializer_source_id, initialization_id, lease_expires_at_ms
         FROM _oversync_user_state WHERE user_id = ?1",
        [user],
        |r| {
            Ok(UserState {
                next_bundle_seq: r.get(0)?,
                retained_floor: r.get(1)?,
                scope_state: r.get(2)?,
                initializer_source_id: r.get(3)?,
                initialization_id: r.get(4)?,
                lease_expires_at_ms: r.get(5)?,
            })
        },
    )
    .optional()
}

/// Loads the user's state, creating it UNINITIALIZED if missing, and drops an expired
/// initialisation lease back to UNINITIALIZED. Call inside a write transaction.
pub fn ensure_user(conn: &Connection, user: &str, now_ms: i64) -> rusqlite::Result<UserState> {
    conn.execute(
        "INSERT OR IGNORE INTO _oversync_user_state (user_id) VALUES (?1)",
        [user],
    )?;
    let mut state = load_user(conn, user)?.expect("user state row inserted above");
    if state.scope_state == SCOPE_INITIALIZING && state.lease_expired(now_ms) {
        conn.execute(
            "UPDATE _oversync_user_state SET scope_state = 0, initializer_source_id = NULL,
                 initialization_id = NULL, lease_expires_at_ms = NULL WHERE user_id = ?1",
            [user],
        )?;
        state.scope_state = SCOPE_UNINITIALIZED;
        state.initializer_source_id = None;
        state.initialization_id = None;
        state.lease_expires_at_ms = None;
    }
    Ok(state)
}

/// Pull, snapshot and watch need an INITIALIZED scope (§10.6 step 1).
pub fn require_initialized(state: Option<&UserState>, now_ms: i64) -> ServiceResult<()> {
    let error = match state {
        Some(s) if s.scope_state == SCOPE_INITIALIZED => return Ok(()),
        Some(s) if s.scope_state == SCOPE_INITIALIZING && !s.lease_expired(now_ms) => {
            ApiError::conflict(
                codes::SCOPE_INITIALIZING,
                "sync scope is being initialized by another source; retry later",
            )
        }
        _ => ApiError::conflict(
            codes::SCOPE_UNINITIALIZED,
            "sync scope is not initialized; call connect first",
        ),
    };
    Err(error.into())
}

pub fn mark_initialized(
    conn: &Connection,
    user: &str,
    source: &str,
    now_text: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _oversync_user_state SET scope_state = 2, initializer_source_id = NULL, initialization_id = NULL,
             lease_expires_at_ms = NULL, initialized_at = ?2, initialized_by_source_id = ?3 WHERE user_id = ?1",
        params![user, now_text, source],
    )?;
    Ok(())
}

pub const SOURCE_ACTIVE: &str = "active";
pub const SOURCE_RESERVED: &str = "reserved";
pub const SOURCE_RETIRED: &str = "retired";

#[derive(Clone, Debug)]
pub struct SourceState {
    pub state: String,
    pub max_committed: i64,
    pub replaced_by: Option<String>,
}

pub fn load_source(
    conn: &Connection,
    user: &str,
    source: &str,
) -> rusqlite::Result<Option<SourceState>> {
    conn.query_row(
        "SELECT state, max_committed_source_bundle_id, replaced_by_source_id
         FROM _oversync_source_state WHERE user_id = ?1 AND source_id = ?2",
        [user, source],
        |r| {
            Ok(SourceState {
                state: r.get(0)?,
                max_committed: r.get(1)?,
                replaced_by: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Next `source_bundle_id` the source must use; a retired source gets `409 source_retired`.
pub fn expected_next_source_bundle_id(
    conn: &Connection,
    user: &str,
    source: &str,
) -> ServiceResult<i64> {
    match load_source(conn, user, source)? {
        None => Ok(1),
        Some(s) if s.state == SOURCE_RETIRED => {
            Err(ApiError::source_retired(source, s.replaced_by).into())
        }
        Some(s) => Ok(s.max_committed + 1),
    }
}

/// After a commit: the source is active with its new high-water mark (a reserved source
/// becomes active here), replacement fields cleared.
pub fn record_committed_source(
    conn: &Connection,
    user: &str,
    source: &str,
    source_bundle_id: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _oversync_source_state (user_id, source_id, state, max_committed_source_bundle_id)
         VALUES (?1, ?2, 'active', ?3)
         ON CONFLICT (user_id, source_id) DO UPDATE SET state = 'active',
             max_committed_source_bundle_id = excluded.max_committed_source_bundle_id,
             replaced_by_source_id = NULL, retirement_reason = NULL",
        params![user, source, source_bundle_id],
    )?;
    Ok(())
}
