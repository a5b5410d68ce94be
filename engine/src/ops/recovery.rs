//! What a refusal from the push-session routes does to durable state: entering
//! source recovery (§7.8: persist the gate and reserve the replacement source
//! durably, before anything is sent with the new id) or losing the initialisation
//! lease (§7.3); [`push_failure`] maps each refusal onto one of them.

use oversqlite_protocol::codes;
use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state::OperationKind;
use crate::local::state::{self, Operation};
use crate::local::tx::write_tx;
use crate::ops::gates::source_recovery_error;
use crate::remote::client::HttpFailure;
use crate::sync_client::Ctx;

/// Checks that `replacement` has a fresh source row (next id 1, not replaced).
pub(crate) fn require_fresh_replacement(conn: &Connection, replacement: &str) -> Result<()> {
    match state::source_row(conn, replacement)? {
        Some(r) if r.next_source_bundle_id == 1 && r.replaced_by_source_id.is_empty() => Ok(()),
        Some(r) => Err(SyncError::new(
            ErrorKind::SourceReplacementInvalid,
            format!(
                "replacement source {replacement:?} is not fresh (next_source_bundle_id {}, replaced_by {:?}); it cannot take over this device's history",
                r.next_source_bundle_id, r.replaced_by_source_id
            ),
        )),
        None => Err(SyncError::new(ErrorKind::SourceReplacementInvalid, format!("replacement source {replacement:?} has no local row"))),
    }
}

/// Persists `source_recovery(reason, replacement)` and returns the error the caller
/// must raise. An existing reservation is kept; a server naming a different one is
/// refused (`source_replacement_diverged`).
pub(crate) fn enter_source_recovery(
    conn: &Connection,
    reason: &str,
    preferred: Option<&str>,
) -> Result<SyncError> {
    write_tx(conn, |c| {
        let att = state::attachment(c)?;
        let op = state::operation(c)?;
        let current = att.current_source_id.clone();
        let replacement = if op.kind == OperationKind::SourceRecovery
            && !op.replacement_source_id.is_empty()
        {
            if let Some(p) = preferred {
                if p != op.replacement_source_id {
                    return Err(SyncError::new(
                        ErrorKind::SourceReplacementDiverged,
                        format!(
                            "the server names replacement source {p:?} but {:?} is already reserved locally",
                            op.replacement_source_id
                        ),
                    ));
                }
            }
            op.replacement_source_id.clone()
        } else {
            match preferred.filter(|p| *p != current) {
                Some(p) => p.to_string(),
                None => state::new_source_id(&[current.as_str()]),
            }
        };
        state::ensure_source_row(c, &replacement)?;
        require_fresh_replacement(c, &replacement)?;
        state::set_rebuild_required(c)?;
        state::write_operation(
            c,
            &Operation {
                kind: OperationKind::SourceRecovery,
                reason: reason.to_string(),
                replacement_source_id: replacement,
                ..Operation::none()
            },
        )
    })?;
    oversqlite_core::fault::point("rebuild.after_recovery_persisted");
    Ok(source_recovery_error(reason))
}

/// Reaction to a refusal from the push-session routes (§2.3–§2.5).
pub(crate) fn push_failure(ctx: &Ctx, failure: HttpFailure, what: &str) -> SyncError {
    let code = failure.code().unwrap_or("").to_string();
    let result = match (failure.status, code.as_str()) {
        (409, codes::HISTORY_PRUNED)
        | (409, codes::SOURCE_SEQUENCE_OUT_OF_ORDER)
        | (409, codes::SOURCE_SEQUENCE_CHANGED) => enter_source_recovery(ctx.conn, &code, None),
        (409, codes::SOURCE_RETIRED) => {
            let preferred = failure
                .body
                .as_ref()
                .and_then(|b| b.replaced_by_source_id.clone())
                .filter(|s| !s.trim().is_empty());
            enter_source_recovery(ctx.conn, &code, preferred.as_deref())
        }
        (409, codes::INITIALIZATION_STALE) | (410, codes::INITIALIZATION_EXPIRED) => {
            lose_lease(ctx, &code)
        }
        _ => Ok(failure.into_error(what)),
    };
    result.unwrap_or_else(|e| e)
}

/// §7.3 lease loss: back to anonymous on the same source; local intent is kept.
pub(crate) fn lose_lease(ctx: &Ctx, code: &str) -> Result<SyncError> {
    write_tx(ctx.conn, |c| {
        let att = state::attachment(c)?;
        state::persist_anonymous(c, &att.current_source_id)?;
        state::reset_operation(c)
    })?;
    Ok(SyncError::new(
        ErrorKind::InitializationLeaseInvalid,
        format!("the initialisation lease is no longer valid ({code}); local changes are kept, call oversqlite_attach(user_id) again"),
    ))
}
