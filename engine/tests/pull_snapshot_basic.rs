//! Fixture runner: `pull-snapshot/basic.json` — decode + validate every body with the
//! client's validators, and drive the positive cases end to end.

mod support;

use oversqlite_engine::transport::ScriptedResponse;
use oversqlite_engine::validate::{validate_snapshot_chunk, validate_snapshot_session};
use oversqlite_protocol::{SnapshotChunkResponse, SnapshotSessionCreateResponse};
use rusqlite::Connection;
use serde_json::{json, Value};
use support::fake_server::{route, FakeServer};

fn check_final(name: &str, conn: &Connection, exp: &Value) {
    if let Some(v) = exp["lastBundleSeqSeen"].as_i64() {
        assert_eq!(
            support::scalar_i64(
                conn,
                "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
            ),
            v,
            "{name}"
        );
    }
    if let Some(v) = exp["usersRowCount"].as_i64() {
        assert_eq!(
            support::scalar_i64(conn, "SELECT COUNT(*) FROM users"),
            v,
            "{name}"
        );
    }
    if let Some(v) = exp["rowStateDeleted"].as_i64() {
        assert_eq!(
            support::scalar_i64(
                conn,
                "SELECT deleted FROM _sync_row_state WHERE key_json = '{\"id\":\"user-1\"}'"
            ),
            v,
            "{name}"
        );
    }
    if let Some(v) = exp["dirtyRowCount"].as_i64() {
        assert_eq!(
            support::scalar_i64(conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
            v,
            "{name}"
        );
    }
    if let Some(v) = exp["currentSourceId"].as_str() {
        assert_eq!(
            support::scalar_text(conn, "SELECT current_source_id FROM _sync_attachment_state"),
            v,
            "{name}"
        );
    }
}

#[test]
fn pull_snapshot_basic_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("pull-snapshot/basic.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let after = case["afterBundleSeq"].as_i64().unwrap_or(0);
        // Wire validation.
        if let Some(p) = case.get("pullResponse") {
            // The production check pass, on the page's bytes as a server sends them.
            let body = serde_json::to_vec(p).unwrap();
            let r = oversqlite_engine::ops::pull::check_pull_page(&body, after);
            match case["expectedPullErrorContains"].as_str() {
                Some(msg) => assert!(
                    r.as_ref().unwrap_err().message.contains(msg),
                    "{name}: {r:?}"
                ),
                None => r.unwrap(),
            }
        }
        let session: Option<SnapshotSessionCreateResponse> = case
            .get("snapshotSession")
            .map(|s| serde_json::from_value(s.clone()).unwrap());
        if let Some(s) = &session {
            let r = validate_snapshot_session(s);
            match case["expectedSnapshotSessionErrorContains"].as_str() {
                Some(msg) => assert!(
                    r.as_ref().unwrap_err().message.contains(msg),
                    "{name}: {r:?}"
                ),
                None => r.unwrap_or_else(|e| panic!("{name}: {e}")),
            }
        }
        if let (Some(s), Some(c)) = (&session, case.get("snapshotChunkResponse")) {
            let chunk: SnapshotChunkResponse = serde_json::from_value(c.clone()).unwrap();
            let chunk_after = case["snapshotChunkAfterRowOrdinal"].as_i64().unwrap_or(0);
            let r =
                validate_snapshot_chunk(&chunk, &s.snapshot_id, s.snapshot_bundle_seq, chunk_after);
            match case["expectedSnapshotChunkErrorContains"].as_str() {
                Some(msg) => assert!(
                    r.as_ref().unwrap_err().message.contains(msg),
                    "{name}: {r:?}"
                ),
                None => r.unwrap_or_else(|e| panic!("{name}: {e}")),
            }
        }
        // End to end for the cases with an expected final state.
        let Some(exp) = case.get("expectedFinalState") else {
            continue;
        };
        match name {
            "incremental-insert-delete" => {
                let body = case["pullResponse"].clone();
                let server = FakeServer::new(move |_, req| {
                    (route(req).0 == "pull").then(|| ScriptedResponse::ok(body.clone()))
                });
                let (_db, conn, mut client) = support::attached_users_device(&server);
                let r = client.pull_to_stable(&conn).unwrap();
                assert!(r.changed_tables.contains("users"));
                check_final(name, &conn, exp);
            }
            "history-pruned-fallback" => {
                let pruned = case["historyPrunedResponse"].clone();
                let s = case["snapshotSession"].clone();
                let c = case["snapshotChunkResponse"].clone();
                let server = FakeServer::new(move |_, req| match route(req).0 {
                    "pull" => Some(ScriptedResponse::Json(
                        pruned["status"].as_u64().unwrap() as u16,
                        pruned["body"].clone(),
                    )),
                    "snapshot_create" => Some(ScriptedResponse::ok(s.clone())),
                    "snapshot_chunk" => Some(ScriptedResponse::ok(c.clone())),
                    _ => None,
                });
                let (_db, conn, mut client) = support::attached_users_device(&server);
                conn.execute(
                    "UPDATE _sync_attachment_state SET last_bundle_seq_seen = ?1",
                    [after],
                )
                .unwrap();
                let r = client.pull_to_stable(&conn).unwrap();
                assert_eq!(
                    r.outcome,
                    oversqlite_engine::report::RemoteOutcome::AppliedSnapshot,
                    "{name}"
                );
                let reqs = server.transport.requests();
                assert_eq!(
                    reqs.iter()
                        .find(|r| route(r).0 == "pull")
                        .unwrap()
                        .query("after_bundle_seq")
                        .as_deref(),
                    Some("1")
                );
                assert!(
                    reqs.iter().any(|r| route(r).0 == "snapshot_delete"),
                    "{name}: session cleaned up"
                );
                check_final(name, &conn, exp);
            }
            "source-replacement-snapshot" => {
                // The rotated request body is pinned; drive a persisted source recovery
                // whose reserved replacement is the fixture's new source.
                let req_body = case["snapshotSessionCreateRequest"].clone();
                let s = case["snapshotSession"].clone();
                let c = case["snapshotChunkResponse"].clone();
                let seen = req_body.clone();
                let server = FakeServer::new(move |_, req| match route(req).0 {
                    "snapshot_create" => {
                        assert_eq!(
                            req.body_json().unwrap(),
                            seen,
                            "rotated snapshot request body"
                        );
                        assert_eq!(req.header("Oversync-Source-ID"), Some("retired-source"));
                        Some(ScriptedResponse::ok(s.clone()))
                    }
                    "snapshot_chunk" => Some(ScriptedResponse::ok(c.clone())),
                    _ => None,
                });
                let (_db, conn, mut client) = support::attached_users_device(&server);
                let repl = &req_body["source_replacement"];
                support::local_sql(&conn, &[
                    "INSERT INTO _sync_source_state(source_id, next_source_bundle_id, replaced_by_source_id) VALUES('retired-source', 1, '')".into(),
                    "UPDATE _sync_attachment_state SET current_source_id = 'retired-source'".into(),
                    format!("INSERT INTO _sync_source_state(source_id, next_source_bundle_id, replaced_by_source_id) VALUES('{}', 1, '')", repl["new_source_id"].as_str().unwrap()),
                    format!("UPDATE _sync_operation_state SET kind = 'source_recovery', reason = '{}', replacement_source_id = '{}'", repl["reason"].as_str().unwrap(), repl["new_source_id"].as_str().unwrap()),
                    "UPDATE _sync_attachment_state SET rebuild_required = 1".into(),
                ]).unwrap();
                let r = client.rebuild(&conn).unwrap();
                assert_eq!(r.restore.unwrap().bundle_seq, 9);
                check_final(name, &conn, exp);
                assert_eq!(support::scalar_text(&conn, "SELECT replaced_by_source_id FROM _sync_source_state WHERE source_id = 'retired-source'"), "server-replacement-source");
            }
            "source-replacement-invalid" => {
                let invalid = case["sourceReplacementInvalidResponse"].clone();
                let server = FakeServer::new(move |_, req| {
                    (route(req).0 == "snapshot_create").then(|| {
                        ScriptedResponse::Json(
                            invalid["status"].as_u64().unwrap() as u16,
                            invalid["body"].clone(),
                        )
                    })
                });
                let (_db, conn, mut client) = support::attached_users_device(&server);
                support::local_sql(&conn, &[
                    "INSERT INTO _sync_source_state(source_id, next_source_bundle_id, replaced_by_source_id) VALUES('replacement-x', 1, '')".into(),
                    "UPDATE _sync_operation_state SET kind = 'source_recovery', reason = 'source_retired', replacement_source_id = 'replacement-x'".into(),
                    "UPDATE _sync_attachment_state SET rebuild_required = 1".into(),
                ]).unwrap();
                let before = support::dump_state(&conn);
                let e = client.rebuild(&conn).unwrap_err();
                assert!(exp["rebuildRejected"].as_bool().unwrap());
                assert_eq!(e.code(), "source_replacement_invalid", "{name}");
                assert_eq!(
                    support::dump_state(&conn),
                    before,
                    "{name}: recovery state untouched"
                );
            }
            other => panic!("no end-to-end driver for {other}"),
        }
    }
    let _ = json!(null);
}
