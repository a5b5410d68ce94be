//! §12 hazard "lost commit response while seeding": a push-session create carrying the
//! initialisation lease that is refused `400 push_session_invalid` is retried once
//! without it. The refusal is recognised by its code, never by its message text. And a
//! seed whose rows all cancelled out ends its lease whatever `connect` then answers.

mod support;

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::{json, Value};
use support::fake_server::{route, source_of, FakeServer};

fn seeded_device(
    server: &FakeServer,
) -> (
    support::TestDb,
    rusqlite::Connection,
    oversqlite_engine::SyncClient,
) {
    let (db, conn, mut client) = support::users_device(server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let attach = client.attach(&conn, "user-1").unwrap();
    assert_eq!(
        attach.outcome,
        oversqlite_engine::report::AttachOutcome::SeededFromLocal
    );
    (db, conn, client)
}

/// The seeding commit succeeded but its response was lost: the scope is initialised,
/// so the lease id is refused, and the same tuple without it is `already_committed`.
#[test]
fn a_refused_lease_is_retried_without_it_whatever_the_message_says() {
    let server = FakeServer::new(|st, req| {
        let first_with_lease = route(req).0 == "push_create"
            && req
                .body_json()
                .is_some_and(|b| b.get("initialization_id").is_some());
        first_with_lease.then(|| {
            let rows = serde_json::from_value(json!([{"schema":"main","table":"users",
                "key":{"id":"u1"},"op":"INSERT","row_version":0,"payload":{"id":"u1","name":"Ada"}}]))
            .unwrap();
            st.commit_rows(&source_of(req), 1, rows);
            ScriptedResponse::error(400, "push_session_invalid", "scope already set up")
        })
    });
    let (_db, conn, mut client) = seeded_device(&server);

    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 1);
    let creates: Vec<Value> = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "push_create")
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["initialization_id"], json!("init-connect"));
    assert!(creates[1].get("initialization_id").is_none());
    let chunks = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "push_chunk")
        .count();
    assert_eq!(
        chunks, 0,
        "nothing uploaded again: the bundle was already committed"
    );
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

/// The lease lapsed and another source seeded the scope: the retry without the id is
/// answered `staging`, which proves our seed never committed. A lost lease (§7.3): the
/// device's anonymous rows must not be uploaded into that scope.
#[test]
fn a_retry_answered_staging_means_the_lease_was_lost() {
    let server = FakeServer::new(|_, req| {
        let with_lease = route(req).0 == "push_create"
            && req
                .body_json()
                .is_some_and(|b| b.get("initialization_id").is_some());
        with_lease.then(|| {
            ScriptedResponse::error(
                400,
                "push_session_invalid",
                "initialization_id given after initialization",
            )
        })
    });
    let (_db, conn, mut client) = seeded_device(&server);

    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(err.code(), "initialization_lease_invalid", "{err}");
    let sent = server.transport.requests();
    assert_eq!(
        sent.iter().filter(|r| route(r).0 == "push_chunk").count(),
        0
    );
    assert_eq!(
        sent.iter().filter(|r| route(r).0 == "push_delete").count(),
        1
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT binding_state FROM _sync_attachment_state"),
        "anonymous"
    );
    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([{"id":"u1","name":"Ada"}]),
        "local rows are kept"
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
