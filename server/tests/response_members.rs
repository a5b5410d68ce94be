//! Every response body's members against go-oversync 1f1118f's `oversync/rest_models.go`:
//! a member whose Go field is `omitempty` is left out when its value is zero or empty, every
//! other member is always sent, and nothing else is sent. The tables below are copied from
//! the Go structs (member name, `omitempty`).

mod common;

use common::*;
use serde_json::{json, Value};

/// (JSON member, Go `omitempty`).
type Members = &'static [(&'static str, bool)];

const CAPABILITIES: Members = &[
    ("protocol_version", false),
    ("schema_version", false),
    ("app_name", true),
    ("registered_tables", true),
    ("registered_table_specs", true),
    ("features", false),
    ("bundle_limits", true),
];
const BUNDLE_LIMITS: Members = &[
    ("max_rows_per_bundle", true),
    ("max_bytes_per_bundle", true),
    ("max_bundles_per_pull", true),
    ("default_rows_per_push_chunk", true),
    ("max_rows_per_push_chunk", true),
    ("push_session_ttl_seconds", true),
    ("default_rows_per_committed_bundle_chunk", true),
    ("max_rows_per_committed_bundle_chunk", true),
    ("default_rows_per_snapshot_chunk", true),
    ("max_rows_per_snapshot_chunk", true),
    ("snapshot_session_ttl_seconds", true),
    ("max_rows_per_snapshot_session", true),
    ("max_bytes_per_snapshot_session", true),
    ("initialization_lease_ttl_seconds", true),
];
const REGISTERED_TABLE_SPEC: Members = &[
    ("schema", false),
    ("table", false),
    ("sync_key_columns", true),
];
const CONNECT: Members = &[
    ("resolution", false),
    ("initialization_id", true),
    ("lease_expires_at", true),
    ("retry_after_seconds", true),
];
const PUSH_SESSION_CREATE: Members = &[
    ("push_id", true),
    ("status", false),
    ("planned_row_count", true),
    ("next_expected_row_ordinal", true),
    ("bundle_seq", true),
    ("source_id", true),
    ("source_bundle_id", true),
    ("row_count", true),
    ("bundle_hash", true),
];
const PUSH_SESSION_CHUNK: Members = &[("push_id", false), ("next_expected_row_ordinal", false)];
const PUSH_SESSION_COMMIT: Members = &[
    ("bundle_seq", false),
    ("source_id", false),
    ("source_bundle_id", false),
    ("row_count", false),
    ("bundle_hash", false),
];
const BUNDLE_ROW: Members = &[
    ("schema", false),
    ("table", false),
    ("key", false),
    ("op", false),
    ("row_version", false),
    ("payload", true),
];
const BUNDLE: Members = &[
    ("bundle_seq", false),
    ("source_id", false),
    ("source_bundle_id", false),
    ("row_count", true),
    ("bundle_hash", true),
    ("rows", false),
];
const COMMITTED_BUNDLE_ROWS: Members = &[
    ("bundle_seq", false),
    ("source_id", false),
    ("source_bundle_id", false),
    ("row_count", false),
    ("bundle_hash", false),
    ("rows", false),
    ("next_row_ordinal", false),
    ("has_more", false),
];
const PULL: Members = &[
    ("stable_bundle_seq", false),
    ("bundles", false),
    ("has_more", false),
];
const SNAPSHOT_SESSION: Members = &[
    ("snapshot_id", false),
    ("snapshot_bundle_seq", false),
    ("row_count", false),
    ("byte_count", true),
    ("expires_at", false),
];
const SNAPSHOT_ROW: Members = &[
    ("schema", false),
    ("table", false),
    ("key", false),
    ("row_version", false),
    ("payload", false),
];
const SNAPSHOT_CHUNK: Members = &[
    ("snapshot_id", false),
    ("snapshot_bundle_seq", false),
    ("rows", false),
    ("next_row_ordinal", false),
    ("has_more", false),
];
const ERROR: Members = &[("error", false), ("message", false)];
const SOURCE_RETIRED: Members = &[
    ("error", false),
    ("message", false),
    ("source_id", false),
    ("replaced_by_source_id", true),
];
const PUSH_CONFLICT: Members = &[("error", false), ("message", false), ("conflict", true)];
const PUSH_CONFLICT_DETAILS: Members = &[
    ("schema", false),
    ("table", false),
    ("key", false),
    ("op", false),
    ("base_row_version", false),
    ("server_row_version", false),
    ("server_row_deleted", false),
    ("server_row", false),
];
const STATUS: Members = &[
    ("status", false),
    ("version", false),
    ("app_name", false),
    ("lifecycle", false),
    ("accepting_operations", false),
    ("inflight_operations", false),
    ("registered_tables", false),
    ("features", false),
    ("user_state_retention_floor_ahead_count", false),
    ("latest_bundle_seq_max", false),
    ("retained_bundle_floor_min", false),
    ("retained_bundle_floor_max", false),
    ("retained_bundle_window_min", false),
    ("retained_bundle_window_max", false),
    ("history_pruned_error_count", false),
    ("accepted_push_replay_count", false),
    ("rejected_registered_write_count", false),
    ("committed_bundle_count", false),
    ("committed_bundle_bytes", false),
];

/// Go's `omitempty` emptiness: false, 0, "", an empty array or object, null (nil pointer).
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Asserts `value`'s members fit `table`: each non-`omitempty` member present, each
/// `omitempty` member absent or non-empty, no other member. Returns the sorted member list.
#[track_caller]
fn check(name: &str, table: Members, value: &Value) -> Vec<String> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an object: {value}"));
    for (member, omitempty) in table {
        match (object.get(*member), omitempty) {
            (None, false) => panic!("{name}: required member {member} missing: {value}"),
            (Some(v), true) if is_empty(v) => {
                panic!("{name}: omitempty member {member} sent empty: {value}")
            }
            _ => {}
        }
    }
    for member in object.keys() {
        assert!(
            table.iter().any(|(m, _)| m == member),
            "{name}: member {member} is not in rest_models.go: {value}"
        );
    }
    let mut names: Vec<String> = object.keys().cloned().collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// A canonical uuid key (the example schema's keys are uuids).
fn uid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

#[test]
fn every_response_has_the_reference_member_set() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");

    let (status, caps) = alice.get("/sync/capabilities");
    assert_eq!(status, 200);
    check("CapabilitiesResponse", CAPABILITIES, &caps);
    check(
        "BundleCapabilitiesLimits",
        BUNDLE_LIMITS,
        &caps["bundle_limits"],
    );
    // The server has no bundle row/byte limit: those members are left out, not sent as 0.
    assert!(caps["bundle_limits"].get("max_rows_per_bundle").is_none());
    assert!(caps["bundle_limits"]
        .get("max_rows_per_snapshot_session")
        .is_none());
    for spec in caps["registered_table_specs"].as_array().unwrap() {
        check("RegisteredTableSpec", REGISTERED_TABLE_SPEC, spec);
    }

    // Connect: initialize_empty, initialize_local, retry_later.
    assert_eq!(
        check("ConnectResponse", CONNECT, &alice.connect(false)),
        ["resolution"]
    );
    let bob = server.client("bob", "dev-b");
    assert_eq!(
        check("ConnectResponse", CONNECT, &bob.connect(true)),
        sorted(&["resolution", "initialization_id", "lease_expires_at"])
    );
    let retry = bob.with_source("dev-b2").connect(true);
    assert_eq!(retry["resolution"], "retry_later");
    assert_eq!(
        check("ConnectResponse", CONNECT, &retry),
        sorted(&["resolution", "lease_expires_at", "retry_after_seconds"])
    );

    // Push session: create (next_expected_row_ordinal 0 is left out), chunk, commit.
    let (status, staging) = alice.create(1, 2);
    assert_eq!(status, 200, "{staging}");
    assert_eq!(
        check("PushSessionCreateResponse", PUSH_SESSION_CREATE, &staging),
        sorted(&["push_id", "status", "planned_row_count"])
    );
    let push_id = staging["push_id"].as_str().unwrap().to_string();
    let rows = [
        user_row("INSERT", &uid(1), "a", 0),
        user_row("INSERT", &uid(2), "b", 0),
    ];
    let (status, chunk) = alice.chunk(&push_id, 0, &rows);
    assert_eq!(status, 200, "{chunk}");
    check("PushSessionChunkResponse", PUSH_SESSION_CHUNK, &chunk);
    let (status, commit) = alice.commit(&push_id);
    assert_eq!(status, 200, "{commit}");
    check("PushSessionCommitResponse", PUSH_SESSION_COMMIT, &commit);
    let (status, replay) = alice.create(1, 2);
    assert_eq!(status, 200, "{replay}");
    assert_eq!(
        check("PushSessionCreateResponse", PUSH_SESSION_CREATE, &replay),
        sorted(&[
            "status",
            "bundle_seq",
            "source_id",
            "source_bundle_id",
            "row_count",
            "bundle_hash"
        ])
    );

    // Pull and committed rows, with a DELETE row (payload left out).
    alice.push_ok(2, &[user_row("DELETE", &uid(2), "", 1)]);
    let (status, pull) = alice.pull(0);
    assert_eq!(status, 200, "{pull}");
    check("PullResponse", PULL, &pull);
    let bundles = pull["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 2);
    for bundle in bundles {
        check("Bundle", BUNDLE, bundle);
        for row in bundle["rows"].as_array().unwrap() {
            check("BundleRow", BUNDLE_ROW, row);
        }
    }
    assert!(bundles[1]["rows"][0].get("payload").is_none());
    let (status, page) = alice.get("/sync/committed-bundles/1/rows");
    assert_eq!(status, 200, "{page}");
    check("CommittedBundleRowsResponse", COMMITTED_BUNDLE_ROWS, &page);
    for row in page["rows"].as_array().unwrap() {
        check("BundleRow", BUNDLE_ROW, row);
    }

    // Snapshot sessions: byte_count is left out when 0 (an empty scope), sent otherwise.
    let carol = server.client("carol", "dev-c");
    carol.connect(false);
    let (status, empty) = carol.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{empty}");
    assert_eq!(
        check("SnapshotSession", SNAPSHOT_SESSION, &empty),
        sorted(&[
            "snapshot_id",
            "snapshot_bundle_seq",
            "row_count",
            "expires_at"
        ])
    );
    let (status, snapshot) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{snapshot}");
    assert_eq!(
        check("SnapshotSession", SNAPSHOT_SESSION, &snapshot),
        sorted(&[
            "snapshot_id",
            "snapshot_bundle_seq",
            "row_count",
            "byte_count",
            "expires_at"
        ])
    );
    let id = snapshot["snapshot_id"].as_str().unwrap();
    let (status, chunk) = alice.get(&format!(
        "/sync/snapshot-sessions/{id}?after_row_ordinal=0&max_rows=10"
    ));
    assert_eq!(status, 200, "{chunk}");
    check("SnapshotChunkResponse", SNAPSHOT_CHUNK, &chunk);
    assert_eq!(chunk["rows"].as_array().unwrap().len(), 1);
    check("SnapshotRow", SNAPSHOT_ROW, &chunk["rows"][0]);

    // Errors: plain, push_conflict, source_retired.
    let (status, error) = alice.get("/sync/pull?after_bundle_seq=x");
    assert_eq!(status, 400, "{error}");
    check("ErrorResponse", ERROR, &error);
    let (status, conflict) = alice.push(3, &[user_row("INSERT", &uid(1), "again", 0)]);
    assert_eq!(status, 409, "{conflict}");
    check("PushConflictResponse", PUSH_CONFLICT, &conflict);
    check(
        "PushConflictDetails",
        PUSH_CONFLICT_DETAILS,
        &conflict["conflict"],
    );
    let rotate = json!({"source_replacement": {"previous_source_id": "dev-a", "new_source_id": "dev-a2", "reason": "source_sequence_changed"}});
    assert_eq!(alice.post("/sync/snapshot-sessions", rotate).0, 200);
    let (status, retired) = alice.create(3, 1);
    assert_eq!(status, 409, "{retired}");
    assert_eq!(
        check("SourceRetiredResponse", SOURCE_RETIRED, &retired),
        sorted(&["error", "message", "source_id", "replaced_by_source_id"])
    );

    let (status, text) = request(&server.url("/syncx/status"), "GET", &[], None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        check("StatusResponse", STATUS, &parse(&text)).len(),
        STATUS.len()
    );
}
