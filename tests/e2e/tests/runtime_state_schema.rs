//! `runtime-state/schema/v0.json` (§11.4): the runtime catalog and bootstrap state after
//! `oversqlite_open()` on an empty `users` database.
use oversqlite_tests::{fixtures, host, state_dump};
use serde_json::json;

#[test]
fn bootstrap_state_matches_v0() {
    if !fixtures::fixtures_available() {
        return;
    }
    let want = fixtures::fixture("runtime-state/schema/v0.json");
    assert_eq!(want["fixture"], "users");
    let conn = host::memory();
    conn.execute_batch("CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)")
        .unwrap();
    host::configure(&conn, &json!({"schema": "main", "syncTables": [{"tableName": "users", "syncKeyColumnName": "id"}]})).unwrap();
    host::open(&conn).unwrap();
    let got = state_dump::dump_runtime(&conn);
    for key in ["pragmas", "tables", "indexes", "triggers", "state"] {
        assert_eq!(got[key], want[key], "v0.json: {key}");
    }
    // The generated source id is a lowercase UUID v4.
    let source: String = conn
        .query_row(
            "SELECT current_source_id FROM _sync_attachment_state",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(source.len(), 36);
    assert_eq!(source, source.to_lowercase());
    assert_eq!(&source[14..15], "4", "UUID version nibble");
}

#[test]
fn normaliser_numbers_sources_by_first_appearance() {
    let raw = json!({
        "attachment_state": [{"current_source_id": "b", "updated_at": "2026-01-01T00:00:00Z"}],
        "source_state": [{"source_id": "a", "replaced_by_source_id": "b", "created_at": "x"}, {"source_id": "b", "replaced_by_source_id": ""}],
        "outbox_bundle": [{"canonical_request_hash": "abc", "remote_bundle_hash": ""}],
    });
    let n = state_dump::normalize_state(&raw);
    assert_eq!(n["attachment_state"][0]["current_source_id"], "<source-1>");
    assert_eq!(n["attachment_state"][0]["updated_at"], "<timestamp>");
    assert_eq!(n["source_state"][0]["source_id"], "<source-2>");
    assert_eq!(n["source_state"][0]["replaced_by_source_id"], "<source-1>");
    assert_eq!(n["source_state"][1]["replaced_by_source_id"], "");
    assert_eq!(n["outbox_bundle"][0]["canonical_request_hash"], "<hash>");
    assert_eq!(n["outbox_bundle"][0]["remote_bundle_hash"], "");
    assert_eq!(n["dirty_rows"], json!([]));
}
