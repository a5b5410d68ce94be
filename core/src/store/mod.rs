//! Typed stores over the runtime's `_sync_*` tables: the only code that reads or
//! writes them (besides the DDL, the capture triggers and `open`). One module per
//! table family; every state and kind is an enum. Row-level functions return
//! `rusqlite::Result`, so callers keep their own error mapping; the singleton
//! readers return this crate's [`crate::Result`] (`not_open` when the row is missing).

mod enums;

pub mod apply;
pub mod attachment;
pub mod dirty_rows;
pub mod operation;
pub mod outbox;
pub mod registry;
pub mod row_state;
pub mod snapshot_stage;
pub mod source;
pub mod sync_log;

pub use enums::{BindingState, OperationKind, OutboxState, RowOp};

/// The error when the runtime's singleton rows are missing: `open` has not run.
pub(crate) fn not_open() -> crate::Error {
    crate::Error::new(
        crate::ErrorCode::NotOpen,
        "the sync runtime is not installed in this database; call oversqlite_open() first",
    )
}
