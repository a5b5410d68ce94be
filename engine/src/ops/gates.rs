//! The gates every workflow checks before it touches the server: a pending source
//! recovery or other operation, the rebuild gate, and "nothing unsent" before a
//! download that replaces local rows.

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state;
use crate::local::state::OperationKind;
use crate::sync_client::Ctx;
use crate::wording::counted;

/// Gates shared by push, pull and sync: source recovery first, then the rebuild gate.
pub(crate) fn check_gates(ctx: &Ctx) -> Result<()> {
    let op = state::operation(ctx.conn)?;
    if op.kind == OperationKind::SourceRecovery {
        if !oversqlite_protocol::codes::is_recovery_reason(&op.reason) {
            return Err(SyncError::new(
                ErrorKind::InvalidSourceRecoveryReason,
                format!("persisted source recovery reason {:?} is not one this runtime knows; the database needs manual repair", op.reason),
            ));
        }
        return Err(source_recovery_error(&op.reason));
    }
    if op.kind != OperationKind::None {
        return Err(SyncError::new(
            ErrorKind::AttachRequired,
            format!(
                "a {} operation is pending; call oversqlite_attach to finish it",
                op.kind
            ),
        ));
    }
    if state::attachment(ctx.conn)?.rebuild_required {
        return Err(SyncError::new(
            ErrorKind::RebuildRequired,
            "local state must be rebuilt from a snapshot; call oversqlite_rebuild()",
        ));
    }
    Ok(())
}

pub(crate) fn source_recovery_error(reason: &str) -> SyncError {
    SyncError::new(
        ErrorKind::SourceRecoveryRequired,
        format!("this device's source can no longer continue its sequence ({reason}); call oversqlite_rebuild() to rotate to a new source"),
    )
}

/// Refuses to download over unsent local intent (§7.6 preconditions).
pub(crate) fn require_drained(ctx: &Ctx) -> Result<()> {
    if state::outbox_row_count(ctx.conn)? > 0 {
        return Err(SyncError::new(ErrorKind::PendingLocalChanges, "a pushed bundle still awaits replay (pending push replay); call oversqlite_push_pending() or oversqlite_sync()"));
    }
    let dirty = state::dirty_count(ctx.conn)?;
    if dirty > 0 {
        return Err(SyncError::new(
            ErrorKind::PendingLocalChanges,
            format!(
                "cannot pull while {} unsent; call oversqlite_sync(), which sends them and then pulls beside any written meanwhile",
                counted(dirty, "local change is", "local changes are")
            ),
        ));
    }
    Ok(())
}
