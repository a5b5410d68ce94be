//! A row the server rejects while the bundle is staged (`400 push_chunk_invalid`: here a
//! NULL in a column the server declares NOT NULL) must not block the device for good:
//! the bundle goes back among the local changes with `push_rejected` naming the way
//! out, and a fix written by the app goes up at the next sync, with the other rows of
//! the bundle.
//!
//! Needs `cargo build -p oversqlite --features test-faults` and `cargo build -p
//! oversqlite-server`.
mod e2e_support;

use e2e_support::*;
use oversqlite_tests::server::TestServer;
use serde_json::Value;

const SERVER: &str = r#"
app_name = "oversqlite-e2e-push-rejected"
schema_version = 1

[[tables]]
schema = "main"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]
"#;

/// The device's table allows NULL names; the server's does not.
const LOOSE: Schema = Schema {
    ddl: "CREATE TABLE IF NOT EXISTS person (id TEXT PRIMARY KEY NOT NULL, name TEXT);",
    tables: &[("person", &[Col::Plain("id"), Col::Plain("name")])],
};

const USER: &str = "rejected-user";

#[test]
fn a_row_the_server_rejects_comes_back_to_pending_and_a_fix_goes_up() {
    let server = TestServer::start_with(SERVER, &[]);
    let (d, _) = Device::attached_with(&db_path("rejected"), &server, USER, &LOOSE);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', NULL)");

    let err = d.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(err.starts_with("oversqlite_sync: push_rejected: "), "{err}");
    assert!(err.contains("push_chunk_invalid"), "{err}");
    assert!(err.contains("name"), "{err}");
    assert!(err.contains("change or delete the row"), "{err}");
    assert!(err.contains("oversqlite_pending"), "{err}");
    // Nothing committed; both rows are pending again (not frozen in an outbox).
    assert_eq!(server.rows("person", USER, "id").len(), 0);
    assert_eq!(d.pending(), 2);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM _sync_outbox_rows"),
        0,
        "the rejected bundle must not stay frozen"
    );

    // The same sync again is rejected the same way (nothing changed)...
    let again = d.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(again.contains("push_rejected"), "{again}");
    // ...and a fix goes up with the other row.
    d.exec("UPDATE person SET name = 'Grace' WHERE id = 'p2'");
    let r = d.sync();
    assert_eq!(r["push_outcome"], "committed", "{r}");
    assert_eq!(d.pending(), 0);
    assert_eq!(
        server.rows("person", USER, "id, name"),
        vec![
            vec![Value::from("p1"), Value::from("Ada")],
            vec![Value::from("p2"), Value::from("Grace")],
        ]
    );
    // Deleting a rejected row instead works too.
    d.exec("INSERT INTO person VALUES ('p3', NULL)");
    assert!(d
        .try_sql("SELECT oversqlite_sync()")
        .unwrap_err()
        .contains("push_rejected"));
    d.exec("DELETE FROM person WHERE id = 'p3'");
    let r = d.sync();
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(d.pending(), 0);
    assert_eq!(server.rows("person", USER, "id").len(), 2);
}
