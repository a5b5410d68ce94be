//! The runtime's singleton and per-source state, as the SQL layer and `open` see it:
//! the typed rows live in [`crate::store`] (re-exported here under their former
//! names), plus `source_info`, `require_runtime` and `new_source_id`.
use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
pub use crate::store::apply::{apply_mode, set_apply_mode};
pub use crate::store::attachment::{
    read as read_attachment, write as write_attachment, AttachmentState,
};
pub use crate::store::operation::{
    read as read_operation, write as write_operation, OperationState,
};
pub use crate::store::outbox::{
    read_bundle as read_outbox_bundle, write_bundle as write_outbox_bundle, OutboxBundle,
};
pub use crate::store::source::{
    ensure as ensure_source, read as read_source, write as write_source, SourceState,
};
use crate::store::OperationKind;

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

pub(crate) use crate::store::not_open;

/// Fails with `not_open` unless the runtime tables exist.
pub fn require_runtime(conn: &Connection) -> Result<()> {
    if crate::ddl::runtime_installed(conn)? {
        Ok(())
    } else {
        Err(not_open())
    }
}

/// A fresh source id: a random UUID v4 in lowercase dashed form.
pub fn new_source_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

pub fn source_info(conn: &Connection) -> Result<SourceInfo> {
    require_runtime(conn)?;
    let a = read_attachment(conn)?;
    let o = read_operation(conn)?;
    let recovering = o.kind == OperationKind::SourceRecovery;
    Ok(SourceInfo {
        current_source_id: a.current_source_id,
        rebuild_required: a.rebuild_required || recovering,
        source_recovery_required: recovering,
        source_recovery_reason: if recovering { Some(o.reason) } else { None },
        binding_state: a.binding_state.as_str().to_string(),
        attached_user_id: a.attached_user_id,
        last_bundle_seq_seen: a.last_bundle_seq_seen,
    })
}
