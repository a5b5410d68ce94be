//! Fixture runner: `invalidation/behavior/basic.json`. Each action names a scenario
//! built here (§11.14); the emission is the report's `changed_tables` set.

mod support;

use oversqlite_engine::report::ChangedTables;
use oversqlite_engine::transport::ScriptedResponse;
use oversqlite_engine::SyncClient;
use serde_json::json;
use support::fake_server::{route, FakeServer};

fn setup(server: &FakeServer, schema: &str) -> (support::TestDb, rusqlite::Connection, SyncClient) {
    let db = support::TestDb::new();
    let tables: Vec<(String, String)> = match schema {
        "users-posts" => vec![("users".into(), "id".into()), ("posts".into(), "id".into())],
        _ => vec![("users".into(), "id".into())],
    };
    let conn = db.create(schema, &tables, "main");
    support::open(&conn);
    let client = support::client_for(server);
    (db, conn, client)
}

fn remote_bundle(table: &str, id: &str, payload: serde_json::Value) -> serde_json::Value {
    json!({"stable_bundle_seq": 1, "has_more": false, "bundles": [{"bundle_seq": 1, "source_id": "remote-source", "source_bundle_id": 1,
        "rows": [{"schema": "main", "table": table, "key": {"id": id}, "op": "INSERT", "row_version": 1, "payload": payload}]}]})
}

fn scenario(action: &str) -> ChangedTables {
    match action {
        "incrementalPull" => {
            let server = FakeServer::new(|_, req| {
                (route(req).0 == "pull").then(|| {
                    ScriptedResponse::ok(remote_bundle(
                        "users",
                        "u1",
                        json!({"id":"u1","name":"Remote"}),
                    ))
                })
            });
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap();
            c.pull_to_stable(&conn).unwrap().changed_tables
        }
        "snapshotHydrate" => {
            let server = FakeServer::new(|_, req| match route(req).0 {
                "connect" => Some(ScriptedResponse::ok(
                    json!({"resolution":"remote_authoritative"}),
                )),
                "snapshot_create" => Some(ScriptedResponse::ok(
                    json!({"snapshot_id":"s1","snapshot_bundle_seq":3,"row_count":1,"byte_count":10,"expires_at":"2099-01-01T00:00:00Z"}),
                )),
                "snapshot_chunk" => Some(ScriptedResponse::ok(
                    json!({"snapshot_id":"s1","snapshot_bundle_seq":3,"next_row_ordinal":1,"has_more":false,
                    "rows":[{"schema":"main","table":"users","key":{"id":"u1"},"row_version":3,"payload":{"id":"u1","name":"Snap"}}]}),
                )),
                _ => None,
            });
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap().changed_tables
        }
        "committedReplay" => {
            let server = FakeServer::plain();
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap();
            conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
                .unwrap();
            c.push_pending(&conn).unwrap().changed_tables
        }
        "conflictRewrite" => {
            let server = FakeServer::new(|_, req| {
                (route(req).0 == "push_commit").then(|| {
                    ScriptedResponse::Json(409, json!({"error":"push_conflict","message":"conflict","conflict":{"schema":"main","table":"users","key":{"id":"u1"},
                        "op":"INSERT","base_row_version":0,"server_row_version":4,"server_row_deleted":false,"server_row":{"id":"u1","name":"Server"}}}))
                })
            });
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap();
            conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Local')", [])
                .unwrap();
            let r = c.push_pending(&conn).unwrap();
            assert_eq!(
                support::app_rows(&conn, "users"),
                json!([{"id":"u1","name":"Server"}])
            );
            r.changed_tables
        }
        "syncUnion" => {
            let server = FakeServer::plain();
            server.with(|s| {
                let rows = serde_json::from_value(json!([{"schema":"main","table":"posts","key":{"id":"p1"},"op":"INSERT","row_version":0,
                    "payload":{"id":"p1","user_id":"u1","title":"Remote post"}}])).unwrap();
                s.commit_rows("remote-source", 1, rows);
            });
            let (_db, conn, mut c) = setup(&server, "users-posts");
            c.attach(&conn, "user-1").unwrap();
            conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
                .unwrap();
            c.sync(&conn).unwrap().changed_tables
        }
        "successfulDetach" => {
            let server = FakeServer::plain();
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap();
            support::apply_mode_sql(
                &conn,
                &["INSERT INTO users(id, name) VALUES('u1', 'Ada')".into()],
            )
            .unwrap();
            c.detach(&conn).unwrap().changed_tables
        }
        "blockedDetach" => {
            let server = FakeServer::plain();
            let (_db, conn, mut c) = setup(&server, "users");
            c.attach(&conn, "user-1").unwrap();
            conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
                .unwrap();
            let r = c.detach(&conn).unwrap();
            assert_eq!(
                r.outcome,
                oversqlite_engine::report::DetachOutcome::BlockedUnsyncedData
            );
            r.changed_tables
        }
        "noopDetach" => {
            let server = FakeServer::plain();
            let (_db, conn, mut c) = setup(&server, "users");
            support::local_sql(&conn, &["UPDATE _sync_operation_state SET kind = 'remote_replace', target_user_id = 'user-1'".into()]).unwrap();
            let r = c.detach(&conn).unwrap();
            assert_eq!(
                support::scalar_text(&conn, "SELECT kind FROM _sync_operation_state"),
                "none"
            );
            r.changed_tables
        }
        other => panic!("unknown invalidation action {other}"),
    }
}

#[test]
fn invalidation_behavior_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("invalidation/behavior/basic.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let changed = scenario(case["action"].as_str().unwrap());
        assert!(
            changed.iter().all(|t| !t.starts_with("_sync_")),
            "{name}: runtime tables reported: {changed:?}"
        );
        let watched = support::strings(&case["watchTables"]);
        let emitted = watched.iter().any(|t| changed.contains(t));
        assert_eq!(
            emitted,
            case["expectedEmission"].as_bool().unwrap(),
            "{name}: changed {changed:?}"
        );
        if name == "sync-union" {
            assert!(
                watched.iter().all(|t| changed.contains(t)),
                "{name}: union expected, got {changed:?}"
            );
        }
    }
}
