//! The engine's single error type. Every failure carries a stable snake_case code
//! (`SyncError::code`) so the SQL layer can print `oversqlite_<fn>: <code>: <message>`
//! and hosts can branch on it without parsing prose.

use std::fmt;

/// Stable failure categories. The string returned by [`ErrorKind::code`] is part of
/// the extension's public contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller holds an open transaction; network operations refuse to run inside it.
    InTransaction,
    /// Another sync operation on the same database is running (this or another process).
    SyncInProgress,
    /// `attach(user)` has not succeeded on this connection (or the binding is anonymous).
    AttachRequired,
    /// Attached to another user (or a pending remote_replace belongs to another user).
    AttachedToOtherUser,
    /// The bearer token is a JWT whose `sub` names another user than `attach(user)`.
    TokenUserMismatch,
    /// The server does not offer the connect lifecycle (capabilities check failed).
    UnsupportedServer,
    /// The server answered with a non-success HTTP status that is not a lifecycle signal.
    HttpError,
    /// The request never produced a response (DNS, connect, TLS, timeout, reset).
    NetworkError,
    /// The server answered 401/403 for authentication.
    AuthenticationFailed,
    /// The server's response violated the protocol (shape, hash, hidden column, ...).
    ProtocolError,
    /// Committed rows disagree with the prepared outbox (already_committed replay).
    SourceSequenceMismatch,
    /// The `rebuild_required` gate is set; call rebuild.
    RebuildRequired,
    /// The source can no longer continue its sequence; call rebuild (rotated).
    SourceRecoveryRequired,
    /// The server names a different replacement source than the one reserved locally.
    SourceReplacementDiverged,
    /// The server rejected the source replacement, or the local replacement row is unusable.
    SourceReplacementInvalid,
    /// the persisted operation `reason` holds a value this runtime does not know.
    InvalidSourceRecoveryReason,
    /// The conflict resolver returned a result that cannot be applied.
    InvalidConflictResolution,
    /// Conflicts kept coming back after the automatic re-pushes.
    PushConflictRetryExhausted,
    /// The initialisation lease was lost; the binding was reset, call attach again.
    InitializationLeaseInvalid,
    /// A pull/rebuild needs a drained outbox or no dirty rows first; push or sync.
    PendingLocalChanges,
    /// The persisted runtime state is inconsistent (corrupt outbox, missing source row, ...).
    InvalidState,
    /// The caller passed a bad argument (empty user id, bad resolver result shape, ...).
    InvalidArgument,
    /// SQLite reported an error.
    DatabaseError,
    /// No token could be obtained from the configured provider.
    TokenUnavailable,
    /// The runtime tables are not installed (`oversqlite_open` not run).
    NotOpen,
    /// `oversqlite_init` was never called.
    NotConfigured,
    /// The sync configuration is invalid.
    InvalidConfig,
    /// Durable runtime state forbids the request.
    StateConflict,
    /// Applying rows would leave a reference to a row that does not exist here; the
    /// message names the tables and keys.
    ForeignKeyViolation,
    /// The server refused to commit a pushed bundle (400 `push_commit_invalid`, or a
    /// 5xx the client could not tell from a refusal) for a reason the client could not
    /// settle; the message names the bundle, its rows and the way out.
    PushCommitRefused,
    /// The server rejected a row of a pushed bundle while staging it (400
    /// `push_chunk_invalid`: a value its schema refuses); nothing was committed and the
    /// bundle is back among the local changes; the message names the row's problem.
    PushRejected,
    /// Rows from the server do not fit this database's tables (a column or table the
    /// device lacks, a NOT NULL column the rows lack): one side's schema is newer and
    /// must be migrated; the message names the migration. Nothing was applied.
    SchemaMismatch,
    /// The host called `sqlite3_interrupt` on the connection while the call ran (a
    /// wait on the server, or a local statement SQLite stopped).
    Interrupted,
    /// The call's overall deadline (the per-connection call timeout) passed.
    Timeout,
    /// A bug (caught panic, impossible state).
    Internal,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InTransaction => "transaction_open",
            ErrorKind::SyncInProgress => "sync_in_progress",
            ErrorKind::AttachRequired => "attach_required",
            ErrorKind::AttachedToOtherUser => "attached_to_other_user",
            ErrorKind::TokenUserMismatch => "token_user_mismatch",
            ErrorKind::UnsupportedServer => "unsupported_server",
            ErrorKind::HttpError => "http_error",
            ErrorKind::NetworkError => "network_error",
            ErrorKind::AuthenticationFailed => "authentication_failed",
            ErrorKind::ProtocolError => "protocol_error",
            ErrorKind::SourceSequenceMismatch => "source_sequence_mismatch",
            ErrorKind::RebuildRequired => "rebuild_required",
            ErrorKind::SourceRecoveryRequired => "source_recovery_required",
            ErrorKind::SourceReplacementDiverged => "source_replacement_diverged",
            ErrorKind::SourceReplacementInvalid => "source_replacement_invalid",
            ErrorKind::InvalidSourceRecoveryReason => "invalid_source_recovery_reason",
            ErrorKind::InvalidConflictResolution => "invalid_conflict_resolution",
            ErrorKind::PushConflictRetryExhausted => "push_conflict_retry_exhausted",
            ErrorKind::InitializationLeaseInvalid => "initialization_lease_invalid",
            ErrorKind::PendingLocalChanges => "pending_local_changes",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::DatabaseError => "sqlite_error",
            ErrorKind::TokenUnavailable => "token_unavailable",
            ErrorKind::NotOpen => "not_open",
            ErrorKind::NotConfigured => "not_configured",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::StateConflict => "state_conflict",
            ErrorKind::ForeignKeyViolation => "foreign_key_violation",
            ErrorKind::PushCommitRefused => "push_commit_refused",
            ErrorKind::PushRejected => "push_rejected",
            ErrorKind::SchemaMismatch => "schema_mismatch",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal_error",
        }
    }
}

/// An engine failure: a kind, a human message (never containing a token), and for
/// HTTP failures the status and the server's `error` code.
#[derive(Debug, Clone)]
pub struct SyncError {
    pub kind: ErrorKind,
    pub message: String,
    /// HTTP status when the failure came from a server response.
    pub http_status: Option<u16>,
    /// The server's `error` member when the body was a JSON error envelope.
    pub server_code: Option<String>,
    /// The (extended) SQLite result code when the failure came from SQLite.
    pub sqlite_code: Option<i32>,
}

impl SyncError {
    /// `oversqlite_<function>: <code>: <message>`: the SQL error text.
    pub fn sql_message(&self, function: &str) -> String {
        format!("{function}: {}: {}", self.code(), self.message)
    }

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SyncError {
            kind,
            message: message.into(),
            http_status: None,
            server_code: None,
            sqlite_code: None,
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ProtocolError, message)
    }

    pub fn state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, message)
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// True for faults worth retrying with backoff: network failures, 5xx and 429.
    /// Lifecycle and protocol errors are never transient (§7.11).
    pub fn is_transient(&self) -> bool {
        match self.kind {
            ErrorKind::NetworkError => true,
            ErrorKind::HttpError => matches!(self.http_status, Some(s) if s >= 500 || s == 429),
            _ => false,
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for SyncError {}

impl From<rusqlite::Error> for SyncError {
    fn from(e: rusqlite::Error) -> Self {
        let sqlite_code = e.sqlite_error().map(|f| f.extended_code);
        // A statement SQLite stopped because the host called sqlite3_interrupt.
        let kind = if sqlite_code == Some(rusqlite::ffi::SQLITE_INTERRUPT) {
            ErrorKind::Interrupted
        } else {
            ErrorKind::DatabaseError
        };
        SyncError {
            sqlite_code,
            ..SyncError::new(kind, e.to_string())
        }
    }
}

impl From<oversqlite_core::Error> for SyncError {
    fn from(e: oversqlite_core::Error) -> Self {
        use oversqlite_core::ErrorCode as C;
        let kind = match e.code {
            C::Sqlite if e.sqlite_code == Some(rusqlite::ffi::SQLITE_INTERRUPT) => {
                ErrorKind::Interrupted
            }
            C::InvalidConfig => ErrorKind::InvalidConfig,
            C::InvalidArgument => ErrorKind::InvalidArgument,
            C::NotConfigured => ErrorKind::NotConfigured,
            C::NotOpen => ErrorKind::NotOpen,
            C::TransactionOpen => ErrorKind::InTransaction,
            C::StateConflict => ErrorKind::StateConflict,
            C::Sqlite => ErrorKind::DatabaseError,
            C::Internal => ErrorKind::Internal,
        };
        SyncError {
            sqlite_code: e.sqlite_code,
            ..SyncError::new(kind, e.message)
        }
    }
}

pub type Result<T> = std::result::Result<T, SyncError>;
