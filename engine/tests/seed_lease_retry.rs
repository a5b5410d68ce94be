//! §12 hazard "lost commit response while seeding": a push-session create carrying the
//! initialisation lease that is refused `400 push_session_invalid` is retried once
//! without it. The refusal is recognised by its code, never by its message text. And a
//! seed whose rows all cancelled out ends its lease whatever `connect` then answers.

mod support;

use oversqlite_engine::transport::ScriptedResponse;
use serde_json::{json, Value};
use support::fake_server::{route, FakeServer};

fn create_bodies(server: &FakeServer) -> Vec<Value> {
    server.with(|s| s.create_requests.clone())
}

fn seeded_device(
    server: &FakeServer,
) -> (
    support::TestDb,
    rusqlite::Connection,
    oversqlite_engine::SyncClient,
) {
    let db = support::TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let attach = client.attach(&conn, "user-1").unwrap();
    assert_eq!(
        attach.outcome,
        oversqlite_engine::report::AttachOutcome::SeededFromLocal
    );
    (db, conn, client)
}

#[test]
fn a_refused_lease_is_retried_without_it_whatever_the_message_says() {
    let server = FakeServer::new(|_, req| {
        let first_with_lease = route(req).0 == "push_create"
            && req
                .body_json()
                .is_some_and(|b| b.get("initialization_id").is_some());
        first_with_lease
            .then(|| ScriptedResponse::error(400, "push_session_invalid", "scope already set up"))
    });
    let (_db, conn, mut client) = seeded_device(&server);

    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 1);
    let creates = create_bodies(&server);
    assert_eq!(
        creates.len(),
        1,
        "the fake server records the create it answered itself"
    );
    assert!(creates[0].get("initialization_id").is_none());
    let lease_creates = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "push_create")
        .filter(|r| r.body_json().unwrap()["initialization_id"] == json!("init-connect"))
        .count();
    assert_eq!(lease_creates, 1);
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT pending_initialization_id FROM _sync_attachment_state"
        ),
        ""
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        0
    );
}

#[test]
fn a_request_refused_again_without_the_lease_reports_the_first_refusal() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "push_create").then(|| {
            let with_lease = req
                .body_json()
                .is_some_and(|b| b.get("initialization_id").is_some());
            let message = if with_lease {
                "first refusal"
            } else {
                "second refusal"
            };
            ScriptedResponse::error(400, "push_session_invalid", message)
        })
    });
    let (_db, conn, mut client) = seeded_device(&server);

    let err = client.push_pending(&conn).unwrap_err();
    assert!(err.to_string().contains("first refusal"), "{err}");
    let creates = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "push_create")
        .count();
    assert_eq!(creates, 2, "one retry, no more");
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT pending_initialization_id FROM _sync_attachment_state"
        ),
        "init-connect"
    );
}

/// A seed whose rows cancelled out asks `connect` again with no pending rows; every
/// answer must leave the device consistent.
fn cancelled_seed_with_connect_answer(
    answer: Value,
) -> (support::TestDb, rusqlite::Connection, Result<(), String>) {
    let mut connects = 0;
    let server = FakeServer::new(move |_, req| {
        if route(req).0 != "connect" {
            return None;
        }
        connects += 1;
        (connects > 1).then(|| ScriptedResponse::ok(answer.clone()))
    });
    let (db, conn, mut client) = seeded_device(&server);
    conn.execute("DELETE FROM users WHERE id = 'u1'", [])
        .unwrap();
    let result = client
        .push_pending(&conn)
        .map(|_| ())
        .map_err(|e| e.code().to_string());
    (db, conn, result)
}

#[test]
fn a_cancelled_seed_answered_remote_authoritative_drops_the_moot_lease() {
    let (_db, conn, result) =
        cancelled_seed_with_connect_answer(json!({"resolution": "remote_authoritative"}));
    assert_eq!(result, Ok(()));
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT binding_state || '/' || pending_initialization_id FROM _sync_attachment_state"
        ),
        "attached/"
    );
}

#[test]
fn a_cancelled_seed_answered_retry_later_has_lost_its_lease() {
    let (_db, conn, result) = cancelled_seed_with_connect_answer(json!({
        "resolution": "retry_later", "retry_after_seconds": 30,
        "lease_expires_at": "2099-01-01T00:00:00Z"}));
    assert_eq!(result, Err("initialization_lease_invalid".to_string()));
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT binding_state || '/' || pending_initialization_id FROM _sync_attachment_state"
        ),
        "anonymous/"
    );
}
