//! Error codes (`error` member of an error body, PROTOCOL.md §2.14) and the four
//! source-recovery reasons (§2.9, §7.8). Clients branch on these, never on `message`.

pub const INVALID_REQUEST: &str = "invalid_request";
pub const CONNECT_INVALID: &str = "connect_invalid";
pub const PUSH_SESSION_INVALID: &str = "push_session_invalid";
pub const PUSH_CHUNK_INVALID: &str = "push_chunk_invalid";
pub const PUSH_COMMIT_INVALID: &str = "push_commit_invalid";
pub const COMMITTED_BUNDLE_CHUNK_INVALID: &str = "committed_bundle_chunk_invalid";
pub const SNAPSHOT_SESSION_INVALID: &str = "snapshot_session_invalid";
pub const SNAPSHOT_CHUNK_INVALID: &str = "snapshot_chunk_invalid";
pub const AUTHENTICATION_FAILED: &str = "authentication_failed";
pub const PUSH_SESSION_FORBIDDEN: &str = "push_session_forbidden";
pub const SNAPSHOT_SESSION_FORBIDDEN: &str = "snapshot_session_forbidden";
pub const BUNDLE_CHANGE_WATCH_FORBIDDEN: &str = "bundle_change_watch_forbidden";
pub const PUSH_SESSION_NOT_FOUND: &str = "push_session_not_found";
pub const SNAPSHOT_SESSION_NOT_FOUND: &str = "snapshot_session_not_found";
pub const COMMITTED_BUNDLE_NOT_FOUND: &str = "committed_bundle_not_found";
pub const PUSH_CHUNK_OUT_OF_ORDER: &str = "push_chunk_out_of_order";
pub const SCOPE_UNINITIALIZED: &str = "scope_uninitialized";
pub const SCOPE_INITIALIZING: &str = "scope_initializing";
pub const INITIALIZATION_STALE: &str = "initialization_stale";
pub const INITIALIZATION_EXPIRED: &str = "initialization_expired";
pub const HISTORY_PRUNED: &str = "history_pruned";
pub const SOURCE_SEQUENCE_OUT_OF_ORDER: &str = "source_sequence_out_of_order";
pub const SOURCE_SEQUENCE_CHANGED: &str = "source_sequence_changed";
pub const SOURCE_RETIRED: &str = "source_retired";
pub const SOURCE_REPLACEMENT_INVALID: &str = "source_replacement_invalid";
pub const PUSH_CONFLICT: &str = "push_conflict";
pub const PUSH_SESSION_EXPIRED: &str = "push_session_expired";
pub const SNAPSHOT_SESSION_EXPIRED: &str = "snapshot_session_expired";
pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
pub const BUNDLE_CHANGE_WATCH_DISABLED: &str = "bundle_change_watch_disabled";
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";

// `500 <op>_failed`: unexpected server-side failures, always transient for a client.
pub const CONNECT_FAILED: &str = "connect_failed";
pub const PUSH_SESSION_CREATE_FAILED: &str = "push_session_create_failed";
pub const PUSH_CHUNK_FAILED: &str = "push_chunk_failed";
pub const PUSH_SESSION_COMMIT_FAILED: &str = "push_session_commit_failed";
pub const PUSH_SESSION_DELETE_FAILED: &str = "push_session_delete_failed";
pub const COMMITTED_BUNDLE_ROWS_FAILED: &str = "committed_bundle_rows_failed";
pub const PULL_FAILED: &str = "pull_failed";
pub const SNAPSHOT_SESSION_CREATE_FAILED: &str = "snapshot_session_create_failed";
pub const SNAPSHOT_CHUNK_FAILED: &str = "snapshot_chunk_failed";
pub const SNAPSHOT_SESSION_DELETE_FAILED: &str = "snapshot_session_delete_failed";
pub const BUNDLE_CHANGE_WATCH_FAILED: &str = "bundle_change_watch_failed";
pub const HEALTH_FAILED: &str = "health_failed";
pub const STATUS_FAILED: &str = "status_failed";

/// True for the `500 <op>_failed` family (and anything else ending in `_failed` except
/// `authentication_failed`), which a client treats as a transient fault.
pub fn is_operation_failed(code: &str) -> bool {
    code.ends_with("_failed") && code != AUTHENTICATION_FAILED
}

/// Source-recovery reasons: the `reason` of a rotated snapshot's `source_replacement`.
pub const REASON_HISTORY_PRUNED: &str = "history_pruned";
pub const REASON_SOURCE_SEQUENCE_OUT_OF_ORDER: &str = "source_sequence_out_of_order";
pub const REASON_SOURCE_SEQUENCE_CHANGED: &str = "source_sequence_changed";
pub const REASON_SOURCE_RETIRED: &str = "source_retired";

/// All four recovery reasons, in the order PROTOCOL.md lists them.
pub const RECOVERY_REASONS: [&str; 4] = [
    REASON_HISTORY_PRUNED,
    REASON_SOURCE_SEQUENCE_OUT_OF_ORDER,
    REASON_SOURCE_SEQUENCE_CHANGED,
    REASON_SOURCE_RETIRED,
];

pub fn is_recovery_reason(reason: &str) -> bool {
    RECOVERY_REASONS.contains(&reason)
}
