//! A malformed snapshot changes nothing: a row newer than the snapshot itself, or a key
//! listed twice (checked before the final apply, whichever way the stage was completed;
//! the bad stage is dropped, so a retry downloads the snapshot again).

mod support;

use std::sync::{Arc, Mutex};

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::{json, Value};
use support::fake_server::{qi64, route, FakeServer};

fn row(id: &str, version: i64) -> Value {
    json!({"schema": "main", "table": "users", "key": {"id": id}, "row_version": version,
           "payload": {"id": id, "name": format!("name of {id}")}})
}

/// A 3-row snapshot at seq 9 served one row per chunk; `rows` can be swapped by the test.
fn snapshot_server(rows: Arc<Mutex<Vec<Value>>>) -> FakeServer {
    FakeServer::new(move |_, req| match route(req).0 {
        "snapshot_create" => Some(ScriptedResponse::ok(json!({
            "snapshot_id": "snap-1", "snapshot_bundle_seq": 9, "row_count": 3,
            "byte_count": 1, "expires_at": "2099-01-01T00:00:00Z"}))),
        "snapshot_chunk" => {
            let after = qi64(req, "after_row_ordinal").unwrap_or(0);
            let all = rows.lock().unwrap().clone();
            let chunk: Vec<Value> = all.iter().skip(after as usize).take(1).cloned().collect();
            let next = after + chunk.len() as i64;
            Some(ScriptedResponse::ok(json!({
                "snapshot_id": "snap-1", "snapshot_bundle_seq": 9, "rows": chunk,
                "next_row_ordinal": next, "has_more": (next as usize) < all.len()})))
        }
        "snapshot_delete" => Some(ScriptedResponse::Json(204, Value::Null)),
        _ => None,
    })
}

fn attached(
    server: &FakeServer,
) -> (
    support::TestDb,
    rusqlite::Connection,
    oversqlite_engine::SyncClient,
) {
    let (db, conn, mut client) = support::attached_users_device(server);
    conn.execute("INSERT INTO users(id, name) VALUES('local', 'kept')", [])
        .unwrap();
    client.push_pending(&conn).unwrap();
    (db, conn, client)
}

#[test]
fn a_row_newer_than_the_snapshot_is_refused() {
    let rows = Arc::new(Mutex::new(vec![row("a", 3), row("b", 10), row("c", 9)]));
    let server = snapshot_server(rows);
    let (_db, conn, mut client) = attached(&server);
    let before = support::app_rows(&conn, "users");

    let err = client.rebuild(&conn).unwrap_err();
    assert_eq!(err.code(), "protocol_error", "{err}");
    assert!(
        err.to_string().contains("above snapshot_bundle_seq 9"),
        "{err}"
    );
    assert_eq!(support::app_rows(&conn, "users"), before);
}

#[test]
fn a_key_listed_twice_is_refused_and_the_retry_downloads_again() {
    let rows = Arc::new(Mutex::new(vec![row("a", 3), row("b", 4), row("a", 5)]));
    let server = snapshot_server(rows.clone());
    let (_db, conn, mut client) = attached(&server);
    let before = support::app_rows(&conn, "users");

    let err = client.rebuild(&conn).unwrap_err();
    assert_eq!(err.code(), "protocol_error", "{err}");
    assert!(err.to_string().contains("more than once"), "{err}");
    assert_eq!(support::app_rows(&conn, "users"), before);
    assert!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_snapshot_stage") < 3,
        "an incomplete stage is never reused"
    );

    // The server fixes its snapshot: the retry downloads it again and applies it.
    *rows.lock().unwrap() = vec![row("a", 3), row("b", 4), row("c", 5)];
    let creates = |server: &FakeServer| {
        let sent = server.transport.requests();
        sent.iter()
            .filter(|r| route(r).0 == "snapshot_create")
            .count()
    };
    let creates_before = creates(&server);
    client.rebuild(&conn).unwrap();
    assert_eq!(creates(&server), creates_before + 1);
    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([{"id":"a","name":"name of a"},{"id":"b","name":"name of b"},{"id":"c","name":"name of c"}])
    );
}

/// All rows, the duplicate included, arrive in a `has_more` chunk and the last chunk is
/// empty (§2.10 allows it): the stage is complete before the last chunk. Attach's
/// remote replace reuses a complete stage, so the check must not depend on which chunk
/// completed it.
#[test]
fn a_duplicate_in_a_stage_completed_before_its_last_chunk_is_never_applied() {
    let server = FakeServer::new(move |_, req| {
        let (name, id) = route(req);
        match name {
            "connect" => Some(ScriptedResponse::ok(
                json!({"resolution": "remote_authoritative"}),
            )),
            "snapshot_create" => Some(ScriptedResponse::ok(json!({
                "snapshot_id": "snap-1", "snapshot_bundle_seq": 1, "row_count": 2,
                "byte_count": 10, "expires_at": "2099-01-01T00:00:00Z"}))),
            "snapshot_chunk" if qi64(req, "after_row_ordinal").unwrap_or(0) == 0 => {
                let row = |n: &str| {
                    json!({"schema":"main","table":"users","key":{"id":"u1"},
                    "row_version":1,"payload":{"id":"u1","name":n}})
                };
                Some(ScriptedResponse::ok(
                    json!({"snapshot_id": id, "snapshot_bundle_seq": 1,
                    "rows": [row("first"), row("second")], "next_row_ordinal": 2, "has_more": true}),
                ))
            }
            "snapshot_chunk" => Some(ScriptedResponse::ok(json!({"snapshot_id": id,
                "snapshot_bundle_seq": 1, "rows": [], "next_row_ordinal": 2, "has_more": false}))),
            "snapshot_delete" => Some(ScriptedResponse::Json(204, Value::Null)),
            _ => None,
        }
    });
    let (_db, conn, mut client) = support::users_device(&server);
    for attempt in 1..=2 {
        let err = client.attach(&conn, "user-1").unwrap_err();
        assert_eq!(err.code(), "protocol_error", "attempt {attempt}: {err}");
        assert!(
            err.to_string().contains("more than once"),
            "attempt {attempt}: {err}"
        );
        assert_eq!(
            support::app_rows(&conn, "users"),
            json!([]),
            "attempt {attempt}"
        );
        assert_eq!(
            support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_snapshot_stage"),
            0
        );
    }
}
