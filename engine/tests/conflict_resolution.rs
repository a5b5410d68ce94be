//! Conflict resolution (§7.5): a rejected bundle's other rows go back to the dirty set,
//! but a local write made to one of them while the bundle was in flight is newer intent
//! that must survive the resolution.
//!
//! (The conflict body's `op` / `base_row_version` are deliberately not cross-checked
//! against the uploaded row: contract fixture `server-wins-update-conflict` answers an
//! uploaded INSERT with an UPDATE conflict and expects it to resolve.)

mod support;

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::json;
use support::fake_server::{route, FakeServer};

#[test]
fn a_write_made_during_a_rejected_push_is_what_the_next_push_sends() {
    let db = support::TestDb::new();
    let path = db.path.clone();
    let mut first_commit = true;
    let server = FakeServer::new(move |_, req| {
        if route(req).0 != "push_commit" || !first_commit {
            return None;
        }
        first_commit = false;
        // Another connection edits u2 (frozen in this bundle) before the server answers.
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute("UPDATE users SET name = 'newer' WHERE id = 'u2'", [])
            .unwrap();
        Some(ScriptedResponse::Json(
            409,
            json!({"error":"push_conflict","message":"conflict","conflict":{"schema":"main","table":"users","key":{"id":"u1"},
            "op":"INSERT","base_row_version":0,"server_row_version":9,"server_row_deleted":false,"server_row":{"id":"u1","name":"Server"}}}),
        ))
    });
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch(
        "INSERT INTO users(id, name) VALUES('u1', 'Local'); INSERT INTO users(id, name) VALUES('u2', 'first');",
    )
    .unwrap();

    client.push_pending(&conn).unwrap();
    while support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows") > 0 {
        client.push_pending(&conn).unwrap();
    }

    let pushed: Vec<(String, serde_json::Value)> = server.with(|s| {
        s.committed
            .iter()
            .flat_map(|c| c.rows.iter())
            .filter(|r| r.key["id"] == "u2")
            .map(|r| (r.op.as_str().to_string(), json!(r.payload)))
            .collect()
    });
    assert_eq!(
        pushed,
        vec![("INSERT".to_string(), json!({"id":"u2","name":"newer"}))],
        "the server must end with the newest local value of u2"
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u2'"),
        "newer"
    );
    // Server wins for the conflicting row.
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u1'"),
        "Server"
    );
}
