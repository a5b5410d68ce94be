//! Item 2 of issue #10: the server commits, but the `bundle_hash` of its commit answer
//! does not match the rows it then returns for that bundle. The first push keeps the
//! committed outbox and fails with a protocol error (fixture
//! `committed-replay-bad-bundle-hash-preserves-committed-outbox`); the resumed one sets
//! the rebuild gate (§7.4) instead of failing every later sync; both messages show the
//! two hashes; `rebuild()` then recovers.
mod support;

use oversqlite_engine::remote::transport::ScriptedResponse;
use oversqlite_engine::ErrorKind;
use serde_json::json;
use support::fake_server::{default_route, route, FakeServer};

const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000bad";

fn outbox_state(conn: &rusqlite::Connection) -> String {
    support::scalar_text(conn, "SELECT state FROM _sync_outbox_bundle")
}

fn rebuild_required(conn: &rusqlite::Connection) -> i64 {
    support::scalar_i64(conn, "SELECT rebuild_required FROM _sync_attachment_state")
}

/// The commit answer advertises `WRONG`; the committed-rows pages carry the real hash.
/// Snapshots hold the committed rows (the default fake's snapshots are empty).
fn server_with_wrong_commit_answer_hash() -> FakeServer {
    FakeServer::new(|st, req| match route(req) {
        ("push_commit", _) => Some(match default_route(st, req) {
            ScriptedResponse::Json(200, mut body) => {
                body["bundle_hash"] = WRONG.into();
                ScriptedResponse::Json(200, body)
            }
            other => other,
        }),
        ("snapshot_create", _) => Some(ScriptedResponse::ok(json!({
            "snapshot_id": "s1", "snapshot_bundle_seq": st.latest_seq(), "row_count": 1,
            "byte_count": 10, "expires_at": "2099-01-01T00:00:00Z"}))),
        ("snapshot_chunk", id) => Some(ScriptedResponse::ok(json!({
            "snapshot_id": id, "snapshot_bundle_seq": st.latest_seq(),
            "next_row_ordinal": 1, "has_more": false,
            "rows": [{"schema": "main", "table": "users", "key": {"id": "u1"},
                      "row_version": st.latest_seq(), "payload": {"id": "u1", "name": "Ada"}}]}))),
        _ => None,
    })
}

#[test]
fn commit_answer_with_bad_bundle_hash_sets_rebuild_gate_and_shows_both_hashes() {
    let server = server_with_wrong_commit_answer_hash();
    let (_db, conn, mut c) = support::attached_users_device(&server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();

    // First push: protocol error, committed outbox kept, gate not set (fixture).
    let e = c.push_pending(&conn).unwrap_err();
    let real = server.with(|s| s.committed[0].hash.clone());
    assert_ne!(real, WRONG);
    assert_eq!(e.kind, ErrorKind::ProtocolError, "{e}");
    assert!(
        e.message.contains(WRONG) && e.message.contains(&real),
        "{e}"
    );
    assert_eq!(outbox_state(&conn), "committed_remote");
    assert_eq!(
        support::scalar_text(&conn, "SELECT remote_bundle_hash FROM _sync_outbox_bundle"),
        WRONG
    );
    assert_eq!(rebuild_required(&conn), 0);

    // The resumed committed outbox can never verify: the rebuild gate is set and the
    // message still shows both hashes.
    let e = c.sync(&conn).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RebuildRequired, "{e}");
    assert!(
        e.message.contains(WRONG) && e.message.contains(&real),
        "{e}"
    );
    assert!(e.message.contains("oversqlite_rebuild()"), "{e}");
    assert_eq!(rebuild_required(&conn), 1);
    assert_eq!(outbox_state(&conn), "committed_remote");
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
        1
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u1'"),
        "Ada"
    );
    // Every later push is gated until a rebuild.
    let e = c.push_pending(&conn).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RebuildRequired, "{e}");

    // rebuild() restores the server's state and clears the gate and the outbox.
    c.rebuild(&conn).unwrap();
    assert_eq!(rebuild_required(&conn), 0);
    assert_eq!(outbox_state(&conn), "none");
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u1'"),
        "Ada"
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        0
    );
    assert_eq!(
        server.with(|s| s.committed.len()),
        1,
        "committed exactly once"
    );
}

#[test]
fn committed_rows_with_bad_bundle_hash_on_resume_set_rebuild_gate() {
    // The server's committed rows themselves hash differently from what it advertises
    // everywhere (the fixture's script): the same gate on the resumed outbox.
    let server = FakeServer::plain();
    server.with(|s| s.commit_hash_override = Some(WRONG.into()));
    let (_db, conn, mut c) = support::attached_users_device(&server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let e = c.push_pending(&conn).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProtocolError, "{e}");
    assert!(
        e.message.contains(&format!("server advertised {WRONG}")),
        "{e}"
    );
    assert!(e.message.contains("rows hash to "), "{e}");
    assert_eq!(rebuild_required(&conn), 0);
    let e = c.push_pending(&conn).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RebuildRequired, "{e}");
    assert!(
        e.message.contains(WRONG) && e.message.contains("rows hash to "),
        "{e}"
    );
    assert_eq!(rebuild_required(&conn), 1);
    assert_eq!(outbox_state(&conn), "committed_remote");
}
