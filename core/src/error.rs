//! One error type for the local runtime. The SQL adapters prefix it with the
//! function name, giving `oversqlite_<fn>: <code>: <message>`.
use std::fmt;

/// Stable, machine-readable error category (the `<code>` part of a SQL error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The sync configuration (server URL, schema, table registrations) is invalid.
    InvalidConfig,
    /// A SQL function got the wrong number or type of arguments.
    InvalidArgument,
    /// `oversqlite_init` was never called on this database.
    NotConfigured,
    /// The `_sync_*` runtime tables are not installed yet (`oversqlite_open` not run).
    NotOpen,
    /// The call cannot run inside the caller's open transaction.
    TransactionOpen,
    /// Durable runtime state forbids the request (e.g. pending rows of a disabled table).
    StateConflict,
    /// SQLite reported an error.
    Sqlite,
    /// A bug in oversqlite (a caught panic, an impossible state).
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::NotOpen => "not_open",
            ErrorCode::TransactionOpen => "transaction_open",
            ErrorCode::StateConflict => "state_conflict",
            ErrorCode::Sqlite => "sqlite_error",
            ErrorCode::Internal => "internal_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// The (extended) SQLite result code when the error came from SQLite, so the SQL layer
    /// can hand it on to the host (BUSY, CONSTRAINT, ...).
    pub sqlite_code: Option<i32>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            sqlite_code: None,
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidConfig, message)
    }
    pub fn argument(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArgument, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error {
            sqlite_code: e.sqlite_error().map(|f| f.extended_code),
            ..Error::new(
                ErrorCode::Sqlite,
                format!("{e}; check the database is writable and not corrupted, then retry"),
            )
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
