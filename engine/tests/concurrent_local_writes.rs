//! Local writes made by another connection while a download is in flight must never
//! be lost: pull and snapshot re-check dirty rows inside their apply transaction.

mod support;

use serde_json::json;
use support::fake_server::{route, FakeServer};

fn remote_update(name: &str) -> Vec<oversqlite_protocol::BundleRow> {
    serde_json::from_value(json!([{"schema":"main","table":"users","key":{"id":"u1"},"op":"UPDATE","row_version":0,
        "payload":{"id":"u1","name":name}}]))
    .unwrap()
}

#[test]
fn pull_refuses_a_bundle_when_a_local_write_lands_while_it_downloads() {
    let db = support::TestDb::new();
    let path = db.path.clone();
    let server = FakeServer::new(move |_, req| {
        if route(req).0 == "pull" {
            // Another connection edits u1 after pull's drained check.
            let other = rusqlite::Connection::open(&path).unwrap();
            other
                .execute("UPDATE users SET name = 'local edit' WHERE id = 'u1'", [])
                .unwrap();
        }
        None
    });
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    client.push_pending(&conn).unwrap();
    server.with(|s| {
        s.commit_rows("remote-source", 1, remote_update("remote edit"));
    });
    let checkpoint_before = support::scalar_i64(
        &conn,
        "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
    );

    let err = client.pull_to_stable(&conn).unwrap_err();
    assert_eq!(err.code(), "pending_local_changes");
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u1'"),
        "local edit"
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT COUNT(*) FROM _sync_dirty_rows WHERE key_json = '{\"id\":\"u1\"}' AND op = 'UPDATE'"
        ),
        1
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
        ),
        checkpoint_before
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT row_version FROM _sync_row_state WHERE key_json = '{\"id\":\"u1\"}'"
        ),
        1,
        "the pulled version must not be recorded"
    );
}

#[test]
fn keep_source_snapshot_keeps_a_local_write_made_while_it_downloads() {
    let db = support::TestDb::new();
    let path = db.path.clone();
    let server = FakeServer::new(move |st, req| match route(req).0 {
        "pull" => Some(oversqlite_engine::transport::ScriptedResponse::error(
            409,
            "history_pruned",
            "pruned",
        )),
        "snapshot_create" => {
            st.snapshot_creates.push(serde_json::Value::Null);
            Some(oversqlite_engine::transport::ScriptedResponse::ok(json!({
                "snapshot_id":"snap-1","snapshot_bundle_seq":7,"row_count":1,"byte_count":10,
                "expires_at":"2099-01-01T00:00:00Z"})))
        }
        "snapshot_chunk" => {
            // The last chunk is served after the drained check: another connection
            // writes u2 meanwhile.
            let other = rusqlite::Connection::open(&path).unwrap();
            other
                .execute("INSERT INTO users(id, name) VALUES('u2', 'written during download')", [])
                .unwrap();
            Some(oversqlite_engine::transport::ScriptedResponse::ok(json!({
                "snapshot_id":"snap-1","snapshot_bundle_seq":7,
                "rows":[{"schema":"main","table":"users","key":{"id":"u1"},"row_version":7,
                         "payload":{"id":"u1","name":"from snapshot"}}],
                "next_row_ordinal":1,"has_more":false})))
        }
        _ => None,
    });
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    let checkpoint_before = support::scalar_i64(
        &conn,
        "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
    );

    let err = client.pull_to_stable(&conn).unwrap_err();
    assert_eq!(err.code(), "pending_local_changes");
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u2'"),
        "written during download"
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT COUNT(*) FROM _sync_dirty_rows WHERE key_json = '{\"id\":\"u2\"}' AND op = 'INSERT'"
        ),
        1
    );
    assert_eq!(support::scalar_i64(&conn, "SELECT COUNT(*) FROM users WHERE id = 'u1'"), 0);
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_snapshot_stage WHERE snapshot_id = 'snap-1'"),
        1,
        "the staged snapshot is kept"
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT last_bundle_seq_seen FROM _sync_attachment_state"),
        checkpoint_before
    );
}
