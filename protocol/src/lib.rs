//! go-oversync wire protocol (go-oversync commit 1f1118f), shared by the oversqlite
//! client engine and `oversqlite-server`. No SQLite, no I/O.
//!
//! # Public API
//!
//! * Wire types ([`types`], re-exported at the root) — serde structs for every request and
//!   response body of PROTOCOL.md §2.1–§2.12 and the shapes of §1.5:
//!   [`BundleRow`], [`Bundle`], [`PushRequestRow`], [`SnapshotRow`], [`PushConflictDetails`],
//!   [`ErrorBody`], [`CapabilitiesResponse`] (+ [`BundleLimits`], [`RegisteredTableSpec`]),
//!   [`ConnectRequest`]/[`ConnectResponse`] ([`ConnectResolution`]),
//!   [`PushSessionCreateRequest`]/[`PushSessionCreateResponse`] (`staging` |
//!   `already_committed`), [`PushChunkRequest`]/[`PushChunkResponse`], [`PushCommitResponse`],
//!   [`CommittedBundleRowsResponse`], [`PullResponse`],
//!   [`SnapshotSessionCreateRequest`] ([`SourceReplacement`]) /
//!   [`SnapshotSessionCreateResponse`], [`SnapshotChunkResponse`], [`WatchEvent`];
//!   aliases [`SyncKey`] (column → string) and [`Payload`] (JSON object), enum [`Op`].
//!   Types are structurally precise (i64 for int64, `Option` for members that may be
//!   absent); semantic validation of responses (positive seqs, matching ids, hidden
//!   columns, ...) belongs to the client engine, not here.
//! * [`codes`] — every error code of §2.14 (`codes::HISTORY_PRUNED`, ...), the `_failed`
//!   family, and the four source-recovery reasons (`codes::RECOVERY_REASONS`).
//! * [`canonical`] — canonical JSON of §8.2 ([`canonical_json`], [`canonicalize_json_text`],
//!   [`ecmascript_number_to_string`]): byte-wise sorted keys, ECMAScript numbers (every
//!   number via f64, integral values without `.0`; negative zero stays `-0` as in Go's
//!   encoder), Go HTML-safe string escaping.
//! * [`hash`] — [`bundle_digest`] / [`bundle_hash`] / [`byte_count`] of a committed bundle's
//!   rows (§8.1; `row_ordinal` is the 0-based position in the slice, DELETE payload hashed as
//!   `null`), [`canonical_request_hash`] of outbox rows (§8.4), [`sha256_hex`]; the
//!   streaming [`BundleHasher`] / [`RequestHasher`] hash row by row in constant memory.
//! * [`values`] — the wire-value grammar (§1.4, §6) shared by the engine and the server:
//!   canonical UUID text ⇄ 16 bytes, standard base64 ⇄ bytes, INTEGER/REAL numbers, RFC 3339
//!   instants (strict parse, Go `RFC3339Nano` formatting).

#![forbid(unsafe_code)]

pub mod canonical;
pub mod codes;
pub mod hash;
pub mod types;
pub mod values;

pub use canonical::{canonical_json, canonicalize_json_text, ecmascript_number_to_string};
pub use hash::{
    bundle_digest, bundle_hash, byte_count, canonical_request_hash, canonical_request_text,
    committed_bundle_canonical_text, sha256_hex, BundleDigest, BundleHasher, RequestHasher,
};
pub use types::*;

/// Value of `protocol_version` in capabilities.
pub const PROTOCOL_VERSION: &str = "v1";
/// Request header carrying the current source (device/writer) id.
pub const SOURCE_ID_HEADER: &str = "Oversync-Source-ID";
/// Hidden server owner column; must never appear in a wire key or payload.
pub const HIDDEN_SCOPE_COLUMN: &str = "_sync_scope_id";

/// The source id of the bundles oversqlite-server commits for the rows an
/// `ON DELETE CASCADE` removed, right after the bundle whose deletes caused them (the
/// leading space keeps any client from ever using it). Clients read it to know that a
/// checkpoint between the two bundles would show the parent's deletion without its
/// cascade. (`server/src/service/cascade.rs` holds the server's copy.)
pub const CASCADE_SOURCE_ID: &str = " server-cascade";

#[cfg(test)]
mod wire_shape_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delete_push_row_omits_payload() {
        let row = PushRequestRow {
            schema: "main".into(),
            table: "users".into(),
            key: [("id".to_string(), "u1".to_string())].into_iter().collect(),
            op: Op::Delete,
            base_row_version: 4,
            payload: None,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"schema":"main","table":"users","key":{"id":"u1"},"op":"DELETE","base_row_version":4})
        );
    }

    #[test]
    fn push_create_response_is_discriminated_by_status() {
        let staging: PushSessionCreateResponse =
            serde_json::from_str(r#"{"push_id":"p","status":"staging","planned_row_count":3}"#)
                .unwrap();
        assert_eq!(
            staging,
            PushSessionCreateResponse::Staging {
                push_id: "p".into(),
                planned_row_count: 3,
                next_expected_row_ordinal: 0
            }
        );
        let replay: PushSessionCreateResponse = serde_json::from_str(
            r#"{"status":"already_committed","bundle_seq":7,"source_id":"s","source_bundle_id":2,"row_count":1,"bundle_hash":"h"}"#,
        )
        .unwrap();
        assert!(matches!(
            replay,
            PushSessionCreateResponse::AlreadyCommitted { bundle_seq: 7, .. }
        ));
        assert!(
            serde_json::from_str::<PushSessionCreateResponse>(r#"{"status":"other"}"#).is_err()
        );
        // Go `omitempty`: a zero `next_expected_row_ordinal` is left out, a non-zero one sent.
        assert_eq!(
            serde_json::to_value(&staging).unwrap(),
            json!({"status":"staging","push_id":"p","planned_row_count":3})
        );
        let resumed = PushSessionCreateResponse::Staging {
            push_id: "p".into(),
            planned_row_count: 3,
            next_expected_row_ordinal: 2,
        };
        assert_eq!(
            serde_json::to_value(&resumed).unwrap(),
            json!({"status":"staging","push_id":"p","planned_row_count":3,"next_expected_row_ordinal":2})
        );
    }

    #[test]
    fn omitempty_members_are_left_out_when_zero_and_decode_as_zero_when_absent() {
        let snapshot: SnapshotSessionCreateResponse = serde_json::from_str(
            r#"{"snapshot_id":"s","snapshot_bundle_seq":0,"row_count":0,"expires_at":"t"}"#,
        )
        .unwrap();
        assert_eq!(snapshot.byte_count, 0);
        assert_eq!(
            serde_json::to_value(&snapshot).unwrap(),
            json!({"snapshot_id":"s","snapshot_bundle_seq":0,"row_count":0,"expires_at":"t"})
        );
        let connect = ConnectResponse {
            resolution: ConnectResolution::RetryLater,
            initialization_id: Some(String::new()),
            lease_expires_at: Some("t".into()),
            retry_after_seconds: Some(0),
        };
        assert_eq!(
            serde_json::to_value(&connect).unwrap(),
            json!({"resolution":"retry_later","lease_expires_at":"t"})
        );
        let limits = BundleLimits {
            max_rows_per_bundle: Some(0),
            max_bundles_per_pull: Some(1000),
            ..BundleLimits::default()
        };
        assert_eq!(
            serde_json::to_value(&limits).unwrap(),
            json!({"max_bundles_per_pull":1000})
        );
        let replay: PushSessionCreateResponse =
            serde_json::from_str(r#"{"status":"already_committed"}"#).unwrap();
        assert_eq!(
            replay,
            PushSessionCreateResponse::AlreadyCommitted {
                bundle_seq: 0,
                source_id: String::new(),
                source_bundle_id: 0,
                row_count: 0,
                bundle_hash: String::new(),
            }
        );
        assert_eq!(
            serde_json::to_value(&replay).unwrap(),
            json!({"status":"already_committed"})
        );
    }

    #[test]
    fn conflict_error_body_round_trips_with_null_server_row() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":"push_conflict","message":"m","conflict":{"schema":"main","table":"users","key":{"id":"user-1"},
                "op":"UPDATE","base_row_version":0,"server_row_version":2,"server_row_deleted":true,"server_row":null}}"#,
        )
        .unwrap();
        let conflict = body.conflict.clone().unwrap();
        assert_eq!(conflict.server_row, None);
        assert!(conflict.server_row_deleted);
        assert_eq!(
            serde_json::to_value(&conflict).unwrap()["server_row"],
            serde_json::Value::Null
        );
        let retired: ErrorBody = serde_json::from_str(
            r#"{"error":"source_retired","message":"m","source_id":"a","replaced_by_source_id":"b"}"#,
        )
        .unwrap();
        assert_eq!(retired.replaced_by_source_id.as_deref(), Some("b"));
        assert_eq!(
            serde_json::to_value(ErrorBody::new(codes::INVALID_REQUEST, "x")).unwrap(),
            json!({"error":"invalid_request","message":"x"})
        );
    }

    #[test]
    fn snapshot_create_request_rejects_unknown_members() {
        assert!(serde_json::from_str::<SnapshotSessionCreateRequest>(r#"{"extra":1}"#).is_err());
        assert!(serde_json::from_str::<SnapshotSessionCreateRequest>(
            r#"{"source_replacement":{"previous_source_id":"a","new_source_id":"b","reason":"x","more":1}}"#
        )
        .is_err());
        let req: SnapshotSessionCreateRequest = serde_json::from_str(
            r#"{"source_replacement":{"previous_source_id":"a","new_source_id":"b","reason":"source_retired"}}"#,
        )
        .unwrap();
        assert!(codes::is_recovery_reason(
            &req.source_replacement.unwrap().reason
        ));
    }

    #[test]
    fn capabilities_features_and_omitted_limits() {
        let caps: CapabilitiesResponse = serde_json::from_str(
            r#"{"protocol_version":"v1","schema_version":1,"features":{"connect_lifecycle":true,"bundle_change_watch":false}}"#,
        )
        .unwrap();
        assert!(caps.feature(FEATURE_CONNECT_LIFECYCLE));
        assert!(!caps.feature(FEATURE_BUNDLE_CHANGE_WATCH));
        assert!(!caps.feature("missing"));
        assert_eq!(caps.bundle_limits, None);
        let limits = BundleLimits {
            max_bundles_per_pull: Some(5000),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(limits).unwrap(),
            json!({"max_bundles_per_pull":5000})
        );
    }

    #[test]
    fn watch_event_and_connect_response_optional_members() {
        let event: WatchEvent = serde_json::from_str(r#"{"bundle_seq":5,"extra":"x"}"#).unwrap();
        assert_eq!(
            event,
            WatchEvent {
                bundle_seq: 5,
                source_id: None,
                source_bundle_id: None
            }
        );
        let connect: ConnectResponse =
            serde_json::from_str(r#"{"resolution":"retry_later","retry_after_seconds":3}"#)
                .unwrap();
        assert_eq!(connect.resolution, ConnectResolution::RetryLater);
        assert_eq!(connect.retry_after_seconds, Some(3));
        assert!(serde_json::from_str::<ConnectResponse>(r#"{"resolution":"bogus"}"#).is_err());
        assert_eq!(
            serde_json::to_value(ConnectResponse {
                resolution: ConnectResolution::RemoteAuthoritative,
                initialization_id: None,
                lease_expires_at: None,
                retry_after_seconds: None
            })
            .unwrap(),
            json!({"resolution":"remote_authoritative"})
        );
    }

    #[test]
    fn non_string_key_value_is_rejected() {
        assert!(serde_json::from_str::<BundleRow>(
            r#"{"schema":"s","table":"t","key":{"id":1},"op":"INSERT","row_version":1,"payload":{}}"#
        )
        .is_err());
    }
}
