//! Local writes made by another connection while a download is in flight must never
//! be lost: pull and snapshot re-check dirty rows inside their apply transaction.

mod support;

use serde_json::json;
use support::fake_server::{route, FakeServer};

fn remote_update(name: &str) -> Vec<oversqlite_protocol::BundleRow> {
    serde_json::from_value(
        json!([{"schema":"main","table":"users","key":{"id":"u1"},"op":"UPDATE","row_version":0,
        "payload":{"id":"u1","name":name}}]),
    )
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
    assert!(
        err.message
            .starts_with("1 local row was written while the pull was in flight"),
        "{}",
        err.message
    );
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
        "pull" => Some(
            oversqlite_engine::remote::transport::ScriptedResponse::error(
                409,
                "history_pruned",
                "pruned",
            ),
        ),
        "snapshot_create" => {
            st.snapshot_creates.push(serde_json::Value::Null);
            Some(oversqlite_engine::remote::transport::ScriptedResponse::ok(
                json!({
                "snapshot_id":"snap-1","snapshot_bundle_seq":7,"row_count":1,"byte_count":10,
                "expires_at":"2099-01-01T00:00:00Z"}),
            ))
        }
        "snapshot_chunk" => {
            // The last chunk is served after the drained check: another connection
            // writes u2 meanwhile.
            let other = rusqlite::Connection::open(&path).unwrap();
            other
                .execute(
                    "INSERT INTO users(id, name) VALUES('u2', 'written during download')",
                    [],
                )
                .unwrap();
            Some(oversqlite_engine::remote::transport::ScriptedResponse::ok(
                json!({
                "snapshot_id":"snap-1","snapshot_bundle_seq":7,
                "rows":[{"schema":"main","table":"users","key":{"id":"u1"},"row_version":7,
                         "payload":{"id":"u1","name":"from snapshot"}}],
                "next_row_ordinal":1,"has_more":false}),
            ))
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
    assert!(
        err.message
            .starts_with("1 local row was written while the snapshot downloaded"),
        "{}",
        err.message
    );
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
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM users WHERE id = 'u1'"),
        0
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT COUNT(*) FROM _sync_snapshot_stage WHERE snapshot_id = 'snap-1'"
        ),
        1,
        "the staged snapshot is kept"
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
        ),
        checkpoint_before
    );
}

#[test]
fn committed_remote_rebuild_rebases_a_dirty_row_written_over_its_own_committed_write() {
    rebuild_then_push_edit(
        "UPDATE users SET name = 'Ada 2' WHERE id = 'u1'",
        "UPDATE",
        Some("Ada 2"),
    );
}

#[test]
fn committed_remote_rebuild_rebases_a_delete_of_its_own_committed_write() {
    rebuild_then_push_edit("DELETE FROM users WHERE id = 'u1'", "DELETE", None);
}

fn rebuild_then_push_edit(local_sql: &str, op: &str, name: Option<&str>) {
    let db = support::TestDb::new();
    let uploads: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let seen = uploads.clone();
    let mut fetches = 0;
    let server = FakeServer::new(move |st, req| {
        use oversqlite_engine::remote::transport::ScriptedResponse as R;
        match route(req).0 {
            "committed_rows" => {
                fetches += 1;
                match fetches {
                    1 => Some(R::Fail("connection reset".into())),
                    2 => Some(R::error(409, "history_pruned", "committed rows pruned")),
                    _ => None,
                }
            }
            "push_chunk" => {
                let body = req.body_json().unwrap();
                seen.lock()
                    .unwrap()
                    .extend(body["rows"].as_array().unwrap().iter().cloned());
                None
            }
            "snapshot_create" => {
                let seq = st.latest_seq();
                Some(R::ok(
                    json!({"snapshot_id":"snap-1","snapshot_bundle_seq":seq,"row_count":1,
                    "byte_count":10,"expires_at":"2099-01-01T00:00:00Z"}),
                ))
            }
            "snapshot_chunk" => {
                let seq = st.latest_seq();
                Some(R::ok(
                    json!({"snapshot_id":"snap-1","snapshot_bundle_seq":seq,
                    "rows":[{"schema":"main","table":"users","key":{"id":"u1"},"row_version":seq,
                             "payload":{"id":"u1","name":"Ada"}}],
                    "next_row_ordinal":1,"has_more":false}),
                ))
            }
            _ => None,
        }
    });
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    // The commit lands (bundle 1) but its rows cannot be fetched.
    client.push_pending(&conn).unwrap_err();
    let committed_seq = server.with(|s| s.latest_seq());
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "committed_remote"
    );
    // The app edits its own committed row before its row state was recorded: base 0.
    conn.execute(local_sql, []).unwrap();
    assert_eq!(
        support::scalar_i64(&conn, "SELECT base_row_version FROM _sync_dirty_rows"),
        0
    );
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "rebuild_required"
    );
    client.rebuild(&conn).unwrap();
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM users WHERE id = 'u1'"),
        name.is_some() as i64
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT base_row_version FROM _sync_dirty_rows"),
        committed_seq
    );

    uploads.lock().unwrap().clear();
    client.push_pending(&conn).unwrap();
    let sent = uploads.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["op"], op);
    assert_eq!(sent[0]["base_row_version"], committed_seq);
    match name {
        Some(n) => assert_eq!(sent[0]["payload"]["name"], n),
        None => assert!(sent[0]["payload"].is_null()),
    }
}
