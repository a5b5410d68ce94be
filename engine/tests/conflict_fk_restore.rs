//! A conflict resolution runs with `PRAGMA foreign_keys` off; the host's setting must
//! come back even when the resolution transaction panics. Own test binary: the fault
//! hook is driven by a process-wide environment variable.

mod support;

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::json;
use support::fake_server::{route, FakeServer};

#[test]
fn foreign_keys_are_re_enabled_after_a_panic_in_the_conflict_transaction() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "push_commit").then(|| {
            ScriptedResponse::Json(409, json!({"error":"push_conflict","message":"conflict","conflict":{"schema":"main","table":"users","key":{"id":"u1"},
                "op":"INSERT","base_row_version":0,"server_row_version":9,"server_row_deleted":false,"server_row":{"id":"u1","name":"Server"}}}))
        })
    });
    let db = support::TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Local')", [])
        .unwrap();

    std::env::set_var("OVERSQLITE_TEST_FAULT", "panic:push.mid_conflict_apply");
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.push_pending(&conn)));
    std::env::remove_var("OVERSQLITE_TEST_FAULT");
    assert!(outcome.is_err(), "the injected fault must have fired");

    assert!(
        conn.is_autocommit(),
        "the resolution transaction was rolled back"
    );
    assert_eq!(
        support::scalar_i64(&conn, "PRAGMA foreign_keys"),
        1,
        "the host's foreign key enforcement must be restored"
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u1'"),
        "Local"
    );
}
