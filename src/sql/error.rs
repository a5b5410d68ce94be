//! The one error boundary of the extension. Every failure that leaves a SQL function or a
//! virtual table is a [`SqlError`]: a stable snake_case code (the contract hosts branch
//! on), a message, and the SQLite result code the host's `sqlite3_step` returns. The text
//! is always `oversqlite_<fn>: <code>: <message>`.
//!
//! Result codes (`result_code`):
//!
//! | code | SQLite result code |
//! |---|---|
//! | any error that came from SQLite (`sqlite_error`, or another code wrapping one) | SQLite's own extended code, kept (`SQLITE_BUSY`, `SQLITE_CONSTRAINT_*`, `SQLITE_INTERRUPT`, ...) |
//! | `sync_in_progress` | `SQLITE_BUSY` |
//! | `invalid_argument` | `SQLITE_MISUSE` |
//! | `transaction_open` | `SQLITE_MISUSE` |
//! | `interrupted` | `SQLITE_INTERRUPT` (also when SQLite stopped a statement) |
//! | `timeout` | `SQLITE_ERROR` |
//! | everything else | `SQLITE_ERROR` |
//!
//! Why: `sync_in_progress` is "another operation holds the lock, try again later", which is
//! what BUSY means to every host (retry loops, busy handlers in ORMs). A bad argument is a
//! fault of the calling program, not of the data; powersync-sqlite-core reports it as
//! MISUSE too (CONSTRAINT is reserved here for what SQLite itself reports, so a host never
//! mistakes a wrong call for a rejected row). `transaction_open` is the same class: the
//! caller invoked a network operation in a state where the API forbids it, and retrying
//! without changing the call can never succeed, so it is MISUSE rather than BUSY. An
//! `sqlite3_interrupt` is `interrupted` with `SQLITE_INTERRUPT` whether it stopped a wait
//! on the server (the engine watches for it, `engine/src/remote/cancel.rs`) or one of
//! the engine's statements. A `timeout` (the per-call deadline) is ERROR: the host
//! chose the bound, and retrying later is its decision.
//!
//! Note on kept codes: for SQLITE_IOERR, SQLITE_FULL, SQLITE_NOMEM (and SQLITE_INTERRUPT in
//! a writing statement) SQLite rolls back the host's open transaction when the function
//! fails — exactly what it does when the host's own statement fails with that code.
use std::os::raw::c_int;

use rusqlite::ffi;

/// Appended to every error SQLite reported as SQLITE_BUSY (the code itself is kept).
pub const BUSY_ADVICE: &str = "; another connection or process is writing to this database: set a busy timeout on this connection (e.g. PRAGMA busy_timeout = 5000) so SQLite waits for it, then retry";

/// A failure on its way to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// Stable snake_case code (`invalid_argument`, `sync_in_progress`, ...).
    pub code: &'static str,
    pub message: String,
    /// The (extended) SQLite result code handed to `sqlite3_result_error_code`.
    pub result_code: c_int,
}

/// The SQLite result code for an error `code`, given the SQLite code it carries (if it came
/// from SQLite). See the module table.
pub fn result_code(code: &str, sqlite_code: Option<c_int>) -> c_int {
    match sqlite_code {
        Some(c) if c != ffi::SQLITE_OK => return c,
        _ => {}
    }
    match code {
        "sync_in_progress" => ffi::SQLITE_BUSY,
        "invalid_argument" | "transaction_open" => ffi::SQLITE_MISUSE,
        "interrupted" => ffi::SQLITE_INTERRUPT,
        _ => ffi::SQLITE_ERROR,
    }
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>, sqlite_code: Option<c_int>) -> Self {
        let mut message = message.into();
        // "database is locked": another connection or process (the host's own writers)
        // held the write lock, and this connection does not wait for it by default.
        if sqlite_code.is_some_and(|c| c & 0xff == ffi::SQLITE_BUSY) {
            message.push_str(BUSY_ADVICE);
        }
        SqlError {
            code,
            message,
            result_code: result_code(code, sqlite_code),
        }
    }

    /// A bug (a caught panic, an impossible state).
    pub fn internal(message: impl Into<String>) -> Self {
        SqlError::new("internal_error", message, None)
    }

    /// `<function>: <code>: <message>`. A NUL byte (e.g. echoed from a TEXT argument) is
    /// written as `\0`: SQLite reads error messages as C strings, so a raw NUL would cut the
    /// text short (and sqlite-loadable's `result_error` refuses it outright).
    pub fn text(&self, function: &str) -> String {
        format!("{function}: {}: {}", self.code, self.message).replace('\0', "\\0")
    }
}

impl From<oversqlite_core::Error> for SqlError {
    fn from(e: oversqlite_core::Error) -> Self {
        SqlError::new(e.code.as_str(), e.message, e.sqlite_code)
    }
}

impl From<oversqlite_engine::SyncError> for SqlError {
    fn from(e: oversqlite_engine::SyncError) -> Self {
        SqlError::new(e.code(), e.message, e.sqlite_code)
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        oversqlite_core::Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_result_codes() {
        assert_eq!(result_code("sync_in_progress", None), ffi::SQLITE_BUSY);
        assert_eq!(result_code("invalid_argument", None), ffi::SQLITE_MISUSE);
        assert_eq!(result_code("transaction_open", None), ffi::SQLITE_MISUSE);
        assert_eq!(result_code("sqlite_error", None), ffi::SQLITE_ERROR);
        assert_eq!(result_code("internal_error", None), ffi::SQLITE_ERROR);
        assert_eq!(result_code("interrupted", None), ffi::SQLITE_INTERRUPT);
        assert_eq!(result_code("timeout", None), ffi::SQLITE_ERROR);
        assert_eq!(result_code("protocol_error", None), ffi::SQLITE_ERROR);
        assert_eq!(
            result_code("sqlite_error", Some(ffi::SQLITE_CONSTRAINT_UNIQUE)),
            ffi::SQLITE_CONSTRAINT_UNIQUE
        );
        assert_eq!(
            result_code("sqlite_error", Some(ffi::SQLITE_BUSY)),
            ffi::SQLITE_BUSY
        );
        assert_eq!(result_code("invalid_argument", Some(0)), ffi::SQLITE_MISUSE);
    }

    #[test]
    fn text_keeps_the_prefix_and_escapes_nul() {
        let e = SqlError::new("invalid_argument", "bad \"a\0b\"", None);
        assert_eq!(
            e.text("oversqlite_attach"),
            "oversqlite_attach: invalid_argument: bad \"a\\0b\""
        );
    }

    #[test]
    fn typed_errors_keep_code_and_sqlite_code() {
        let core = oversqlite_core::Error {
            sqlite_code: Some(ffi::SQLITE_CONSTRAINT_CHECK),
            ..oversqlite_core::Error::new(oversqlite_core::ErrorCode::Sqlite, "m")
        };
        let e = SqlError::from(core);
        assert_eq!(
            (e.code, e.result_code),
            ("sqlite_error", ffi::SQLITE_CONSTRAINT_CHECK)
        );
        let sync = oversqlite_engine::SyncError::new(
            oversqlite_engine::ErrorKind::SyncInProgress,
            "another operation is running",
        );
        let e = SqlError::from(sync);
        assert_eq!(
            (e.code, e.result_code),
            ("sync_in_progress", ffi::SQLITE_BUSY)
        );
    }
}
