//! `POST /sync/connect` (§10.3): decides who initialises an empty scope.

use oversqlite_protocol::{ConnectResolution, ConnectResponse};
use rusqlite::{params, Connection, TransactionBehavior};

use super::scope::{
    ensure_user, mark_initialized, SCOPE_INITIALIZED, SCOPE_INITIALIZING, SCOPE_UNINITIALIZED,
};
use crate::error::ServiceResult;
use crate::state::AppState;
use crate::timefmt::{deadline_ms, now_ms, rfc3339_from_ms};

pub fn connect(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    source: &str,
    has_local_pending_rows: bool,
) -> ServiceResult<ConnectResponse> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let state = ensure_user(&tx, user, now)?;
    let lease_until = deadline_ms(now, app.settings.lease_ttl_secs);
    let response = |resolution| ConnectResponse {
        resolution,
        initialization_id: None,
        lease_expires_at: None,
        retry_after_seconds: None,
    };
    let result = match state.scope_state {
        SCOPE_INITIALIZED => response(ConnectResolution::RemoteAuthoritative),
        SCOPE_UNINITIALIZED if has_local_pending_rows => {
            let initialization_id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "UPDATE _oversync_user_state SET scope_state = 1, initializer_source_id = ?2,
                     initialization_id = ?3, lease_expires_at_ms = ?4 WHERE user_id = ?1",
                params![user, source, initialization_id, lease_until],
            )?;
            ConnectResponse {
                initialization_id: Some(initialization_id),
                lease_expires_at: Some(rfc3339_from_ms(lease_until)),
                ..response(ConnectResolution::InitializeLocal)
            }
        }
        SCOPE_UNINITIALIZED => {
            mark_initialized(&tx, user, source, &rfc3339_from_ms(now))?;
            response(ConnectResolution::InitializeEmpty)
        }
        SCOPE_INITIALIZING if state.initializer_source_id.as_deref() == Some(source) => {
            if has_local_pending_rows {
                tx.execute(
                    "UPDATE _oversync_user_state SET lease_expires_at_ms = ?2 WHERE user_id = ?1",
                    params![user, lease_until],
                )?;
                ConnectResponse {
                    initialization_id: state.initialization_id.clone(),
                    lease_expires_at: Some(rfc3339_from_ms(lease_until)),
                    ..response(ConnectResolution::InitializeLocal)
                }
            } else {
                mark_initialized(&tx, user, source, &rfc3339_from_ms(now))?;
                response(ConnectResolution::InitializeEmpty)
            }
        }
        _ => {
            let expires = state.lease_expires_at_ms.unwrap_or(now);
            let whole_seconds = (expires - now) / 1000;
            ConnectResponse {
                retry_after_seconds: Some(whole_seconds.max(1)),
                lease_expires_at: Some(rfc3339_from_ms(expires)),
                ..response(ConnectResolution::RetryLater)
            }
        }
    };
    tx.commit()?;
    Ok(result)
}
