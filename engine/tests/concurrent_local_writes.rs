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
