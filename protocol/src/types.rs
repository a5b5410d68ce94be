//! Wire types of the go-oversync bundle protocol (PROTOCOL.md §1.2, §1.5, §2.1–§2.12).
//!
//! Conventions:
//! * members follow go-oversync 1f1118f's `oversync/rest_models.go` one by one: where the Go
//!   field is `omitempty`, a zero or empty value (0, "", empty list, `None`) is omitted when
//!   serialising and an absent member decodes as that zero value (`Option` or
//!   `#[serde(default)]`); the other members are always sent;
//! * `PushConflictDetails::server_row` is always sent, as `null` when there is no row;
//! * unknown members are ignored when deserialising, except in
//!   [`SnapshotSessionCreateRequest`], which the reference server decodes strictly.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// Go's `omitempty` test for the member types used below.
fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_absent_or_zero(value: &Option<i64>) -> bool {
    matches!(value, None | Some(0))
}

fn is_absent_or_empty(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

/// Structured sync key: exactly one entry `{"<key column>": "<string>"}` on the wire.
pub type SyncKey = BTreeMap<String, String>;

/// Full-row after-image keyed by lowercase column name (wire encoding of §1.4).
pub type Payload = Map<String, Value>;

/// Row operation. The wire spelling is upper case.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }

    /// Parses the exact wire spelling (`INSERT`, `UPDATE`, `DELETE`).
    pub fn from_wire(text: &str) -> Option<Op> {
        match text {
            "INSERT" => Some(Op::Insert),
            "UPDATE" => Some(Op::Update),
            "DELETE" => Some(Op::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// §1.2 error envelope. `conflict` accompanies `push_conflict`; `source_id` and
/// `replaced_by_source_id` accompany `source_retired`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<PushConflictDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_absent_or_empty")]
    pub replaced_by_source_id: Option<String>,
}

impl ErrorBody {
    pub fn new(error: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.to_string(),
            message: message.into(),
            conflict: None,
            source_id: None,
            replaced_by_source_id: None,
        }
    }
}

/// One row of a committed bundle (pull, committed-bundle rows).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BundleRow {
    pub schema: String,
    pub table: String,
    pub key: SyncKey,
    pub op: Op,
    pub row_version: i64,
    /// Absent (or `null`) for DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

/// One complete committed bundle in a pull page. `row_count`/`bundle_hash` are sent by the
/// reference server although the swagger omits them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Bundle {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub row_count: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_empty")]
    pub bundle_hash: Option<String>,
    pub rows: Vec<BundleRow>,
}

/// One pushed row intent. A DELETE must omit `payload` entirely (the reference server
/// rejects even `"payload": null`), hence `skip_serializing_if`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PushRequestRow {
    pub schema: String,
    pub table: String,
    pub key: SyncKey,
    pub op: Op,
    pub base_row_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

/// One current row of a snapshot session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SnapshotRow {
    pub schema: String,
    pub table: String,
    pub key: SyncKey,
    pub row_version: i64,
    pub payload: Payload,
}

/// Body of `409 push_conflict` (`conflict` member). `server_row` is serialised as `null`
/// when the row is deleted or has never existed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PushConflictDetails {
    pub schema: String,
    pub table: String,
    pub key: SyncKey,
    pub op: Op,
    pub base_row_version: i64,
    pub server_row_version: i64,
    pub server_row_deleted: bool,
    #[serde(default)]
    pub server_row: Option<Payload>,
}

/// `registered_table_specs[]` of capabilities.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RegisteredTableSpec {
    pub schema: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_key_columns: Vec<String>,
}

/// `bundle_limits` of capabilities; the reference omits members whose value is 0.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleLimits {
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_rows_per_bundle: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_bytes_per_bundle: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_bundles_per_pull: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub default_rows_per_push_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_rows_per_push_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub push_session_ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub default_rows_per_committed_bundle_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_rows_per_committed_bundle_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub default_rows_per_snapshot_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_rows_per_snapshot_chunk: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub snapshot_session_ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_rows_per_snapshot_session: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub max_bytes_per_snapshot_session: Option<i64>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub initialization_lease_ttl_seconds: Option<i64>,
}

/// `GET /sync/capabilities` response. Only `protocol_version`, `schema_version` and
/// `features` are required.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CapabilitiesResponse {
    pub protocol_version: String,
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "is_absent_or_empty")]
    pub app_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered_tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered_table_specs: Vec<RegisteredTableSpec>,
    pub features: BTreeMap<String, bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_limits: Option<BundleLimits>,
}

impl CapabilitiesResponse {
    /// A feature counts only when present and strictly `true`.
    pub fn feature(&self, name: &str) -> bool {
        self.features.get(name).copied().unwrap_or(false)
    }
}

/// Feature names a client looks at.
pub const FEATURE_CONNECT_LIFECYCLE: &str = "connect_lifecycle";
pub const FEATURE_BUNDLE_CHANGE_WATCH: &str = "bundle_change_watch";

/// `POST /sync/connect` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub has_local_pending_rows: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectResolution {
    RemoteAuthoritative,
    InitializeLocal,
    InitializeEmpty,
    RetryLater,
}

/// `POST /sync/connect` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub resolution: ConnectResolution,
    #[serde(default, skip_serializing_if = "is_absent_or_empty")]
    pub initialization_id: Option<String>,
    /// RFC3339 instant.
    #[serde(default, skip_serializing_if = "is_absent_or_empty")]
    pub lease_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "is_absent_or_zero")]
    pub retry_after_seconds: Option<i64>,
}

/// `POST /sync/push-sessions` request. `initialization_id` only while holding a lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PushSessionCreateRequest {
    pub source_bundle_id: i64,
    pub planned_row_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_id: Option<String>,
}

/// `POST /sync/push-sessions` response, discriminated by `status`. Every member but
/// `status` is `omitempty` in the reference (one Go struct serves both variants), so each
/// is left out when zero or empty and decodes as zero when absent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "status")]
pub enum PushSessionCreateResponse {
    #[serde(rename = "staging")]
    Staging {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        push_id: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        planned_row_count: i64,
        #[serde(default, skip_serializing_if = "is_zero")]
        next_expected_row_ordinal: i64,
    },
    #[serde(rename = "already_committed")]
    AlreadyCommitted {
        #[serde(default, skip_serializing_if = "is_zero")]
        bundle_seq: i64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        source_id: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        source_bundle_id: i64,
        #[serde(default, skip_serializing_if = "is_zero")]
        row_count: i64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        bundle_hash: String,
    },
}

/// `POST /sync/push-sessions/{push_id}/chunks` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PushChunkRequest {
    pub start_row_ordinal: i64,
    pub rows: Vec<PushRequestRow>,
}

/// `POST /sync/push-sessions/{push_id}/chunks` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PushChunkResponse {
    pub push_id: String,
    pub next_expected_row_ordinal: i64,
}

/// `POST /sync/push-sessions/{push_id}/commit` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PushCommitResponse {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub row_count: i64,
    pub bundle_hash: String,
}

/// `GET /sync/committed-bundles/{bundle_seq}/rows` response. Row ordinals are 0-based;
/// `next_row_ordinal` is the ordinal of the last returned row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CommittedBundleRowsResponse {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub row_count: i64,
    pub bundle_hash: String,
    pub rows: Vec<BundleRow>,
    pub next_row_ordinal: i64,
    pub has_more: bool,
}

/// `GET /sync/pull` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PullResponse {
    pub stable_bundle_seq: i64,
    pub bundles: Vec<Bundle>,
    pub has_more: bool,
}

/// `source_replacement` of a rotated snapshot request. `reason` is one of
/// [`crate::codes::RECOVERY_REASONS`]; kept as text so a server can answer
/// `400 snapshot_session_invalid` for anything else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceReplacement {
    pub previous_source_id: String,
    pub new_source_id: String,
    pub reason: String,
}

/// `POST /sync/snapshot-sessions` body (absent for a keep-source rebuild). Decoded strictly:
/// unknown members are an error, as in the reference server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSessionCreateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_replacement: Option<SourceReplacement>,
}

/// `POST /sync/snapshot-sessions` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSessionCreateResponse {
    pub snapshot_id: String,
    pub snapshot_bundle_seq: i64,
    pub row_count: i64,
    /// Sum of the stored payload byte lengths; the reference omits it when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub byte_count: i64,
    /// RFC3339 instant.
    pub expires_at: String,
}

/// `GET /sync/snapshot-sessions/{snapshot_id}` response. Ordinals are 1-based;
/// `next_row_ordinal = after_row_ordinal + rows.len()`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SnapshotChunkResponse {
    pub snapshot_id: String,
    pub snapshot_bundle_seq: i64,
    pub rows: Vec<SnapshotRow>,
    pub next_row_ordinal: i64,
    pub has_more: bool,
}

/// `data` of an SSE `event: bundle` on `GET /sync/watch`. Catch-up events carry only
/// `bundle_seq`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub bundle_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_bundle_id: Option<i64>,
}
