//! Every SQL entry point runs inside `catch_unwind`: a Rust panic must never unwind into
//! the host (that would abort it). Errors become `oversqlite_<fn>: <code>: <message>`.
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use oversqlite_core::{Error, ErrorCode};
use rusqlite::Connection;
use sqlite_loadable::prelude::{sqlite3, sqlite3_context};

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

/// Formats an error as the SQL error text of function/vtab `name`.
pub fn format_error(name: &str, e: &Error) -> String {
    format!("{name}: {e}")
}

/// Runs `f`, turning a panic into an `internal_error`.
pub fn guarded<T>(point: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(|| {
        fault_point(point);
        f()
    })) {
        Ok(result) => result,
        Err(payload) => Err(Error::new(
            ErrorCode::Internal,
            format!(
                "unexpected panic ({}); any partial work was rolled back; please report this bug",
                panic_text(payload.as_ref())
            ),
        )),
    }
}

/// A rusqlite view of the caller's connection (not closed on drop).
pub fn connection(db: *mut sqlite3) -> Result<Connection, Error> {
    // SAFETY: `db` is the live handle SQLite passed to this callback; rusqlite's API
    // pointers were initialised by the entry point and the handle is not closed on drop.
    unsafe { Connection::from_handle(db.cast()) }.map_err(Error::from)
}

pub fn context_db(ctx: *mut sqlite3_context) -> *mut sqlite3 {
    // SAFETY: `ctx` is the live function context of the current call.
    unsafe { rusqlite::ffi::sqlite3_context_db_handle(ctx.cast()) }.cast()
}
