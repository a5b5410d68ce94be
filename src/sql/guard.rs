//! The one panic guard: every SQL entry point (function call, virtual-table callback) runs
//! inside [`guarded`], so a Rust panic never unwinds into the host (that would abort it)
//! and instead becomes an `internal_error`. Errors leave as [`SqlError`]s, see `error.rs`.
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::ffi::sqlite3;
use rusqlite::Connection;

use super::error::SqlError;

/// Test hook, see `oversqlite_core::fault`: `OVERSQLITE_TEST_FAULT=panic:<point>` makes the
/// named entry point panic, so tests can prove the host gets an error instead of aborting.
pub use oversqlite_core::fault::point as fault_point;

pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f` (after the test fault point named `point`), turning its error into a
/// [`SqlError`] and a panic into an `internal_error`.
pub fn guarded<T, E: Into<SqlError>>(
    point: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, SqlError> {
    match catch_unwind(AssertUnwindSafe(|| {
        fault_point(point);
        f().map_err(Into::into)
    })) {
        Ok(result) => result,
        Err(payload) => Err(SqlError::internal(format!(
            "unexpected panic ({}); any partial work was rolled back; please report this bug",
            panic_text(payload.as_ref())
        ))),
    }
}

/// A rusqlite view of the caller's connection (not closed on drop).
pub(crate) fn connection(db: *mut sqlite3) -> Result<Connection, oversqlite_core::Error> {
    // SAFETY: `db` is the live handle SQLite passed to this callback (or to the entry
    // point); rusqlite's API pointers were initialised by the entry point and the handle is
    // not closed on drop.
    unsafe { Connection::from_handle(db) }.map_err(oversqlite_core::Error::from)
}
