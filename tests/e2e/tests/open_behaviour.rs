//! `oversqlite_open()` behaviour beyond the fixtures: capture by a SQLite without the
//! extension, first-open capture order, disable semantics, transactions, crash repair.
use oversqlite_tests::host;
use rusqlite::Connection;
use serde_json::{json, Value};

fn pending(conn: &Connection) -> Vec<Value> {
    let mut stmt = conn
        .prepare("SELECT table_name, key_json, op, base_row_version, payload, state, ordinal FROM oversqlite_pending")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(json!([
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?
        ]))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

fn sql(conn: &Connection, q: &str) -> Result<Option<String>, String> {
    host::call(conn, q, &[])
}

const USERS_POSTS: &str = "
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, title TEXT NOT NULL);
";

fn configured(conn: &Connection) {
    sql(
        conn,
        "SELECT oversqlite_init('https://sync.test/api/', 'main')",
    )
    .unwrap();
    sql(conn, "SELECT oversqlite_enable_sync('posts')").unwrap();
    sql(conn, "SELECT oversqlite_enable_sync('users')").unwrap();
}

#[test]
fn writes_without_the_extension_are_captured() {
    let path = host::temp_db("no-extension");
    {
        let conn = host::file(&path);
        conn.execute_batch(USERS_POSTS).unwrap();
        configured(&conn);
        host::open(&conn).unwrap();
    }
    {
        // A plain SQLite: no extension loaded, the triggers still capture.
        let plain = Connection::open(&path).unwrap();
        plain
            .execute_batch(
                "PRAGMA foreign_keys = ON;
                 INSERT INTO users VALUES ('u1', 'Ada');
                 INSERT INTO posts VALUES ('p1', 'u1', 'Hello');
                 UPDATE users SET name = 'Ada L' WHERE id = 'u1';
                 INSERT INTO users VALUES ('u2', 'Bob');
                 DELETE FROM users WHERE id = 'u2';",
            )
            .unwrap();
    }
    let conn = host::file(&path);
    assert_eq!(
        pending(&conn),
        vec![
            json!([
                "users",
                "{\"id\":\"u1\"}",
                "INSERT",
                0,
                "{\"id\":\"u1\",\"name\":\"Ada L\"}",
                "dirty",
                1
            ]),
            json!([
                "posts",
                "{\"id\":\"p1\"}",
                "INSERT",
                0,
                "{\"id\":\"p1\",\"user_id\":\"u1\",\"title\":\"Hello\"}",
                "dirty",
                2
            ]),
            json!(["users", "{\"id\":\"u2\"}", "DELETE", 0, null, "dirty", 3]),
        ]
    );
}

#[test]
fn first_open_captures_existing_rows_in_fk_then_key_order() {
    let conn = host::memory();
    conn.execute_batch(
        "CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL);
         CREATE TABLE reviews (id TEXT PRIMARY KEY NOT NULL, file_id BLOB REFERENCES files(id), body TEXT);
         INSERT INTO files VALUES (x'ffeeddccbbaa99887766554433221100', 'b.txt'), (x'00112233445566778899aabbccddeeff', 'a.txt');
         INSERT INTO reviews VALUES ('r2', x'00112233445566778899aabbccddeeff', 'second'), ('r1', NULL, 'first');",
    )
    .unwrap();
    sql(
        &conn,
        "SELECT oversqlite_init('https://sync.test', 'business')",
    )
    .unwrap();
    sql(&conn, "SELECT oversqlite_enable_sync('reviews')").unwrap();
    sql(&conn, "SELECT oversqlite_enable_sync('files')").unwrap();
    let report = host::open(&conn).unwrap();
    assert_eq!(report["first_open"], json!(true));
    assert_eq!(report["captured_rows"], json!(4));
    assert_eq!(report["managed_tables"], json!(["files", "reviews"]));
    assert_eq!(report["schema"], json!("business"));
    let rows = pending(&conn);
    assert_eq!(
        rows,
        vec![
            json!(["files", "{\"id\":\"00112233445566778899aabbccddeeff\"}", "INSERT", 0, "{\"id\":\"00112233445566778899aabbccddeeff\",\"name\":\"a.txt\"}", "dirty", 1]),
            json!(["files", "{\"id\":\"ffeeddccbbaa99887766554433221100\"}", "INSERT", 0, "{\"id\":\"ffeeddccbbaa99887766554433221100\",\"name\":\"b.txt\"}", "dirty", 2]),
            json!(["reviews", "{\"id\":\"r1\"}", "INSERT", 0, "{\"id\":\"r1\",\"file_id\":null,\"body\":\"first\"}", "dirty", 3]),
            json!(["reviews", "{\"id\":\"r2\"}", "INSERT", 0, "{\"id\":\"r2\",\"file_id\":\"00112233445566778899aabbccddeeff\",\"body\":\"second\"}", "dirty", 4]),
        ]
    );
    let schemas: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM _sync_dirty_rows WHERE schema_name = 'business'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(schemas, 4);
    // A second open captures nothing more and keeps the source.
    let again = host::open(&conn).unwrap();
    assert_eq!(again["first_open"], json!(false));
    assert_eq!(again["captured_rows"], json!(0));
    assert_eq!(again["source_id"], report["source_id"]);
    assert_eq!(pending(&conn).len(), 4);
}

#[test]
fn first_capture_refuses_leftover_state_without_a_source() {
    let conn = host::memory();
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    host::open(&conn).unwrap();
    conn.execute_batch("INSERT INTO users VALUES ('u1', 'Ada'); UPDATE _sync_attachment_state SET current_source_id = '';").unwrap();
    let err = host::open(&conn).unwrap_err();
    assert!(
        err.starts_with(
            "oversqlite_open: state_conflict: cannot treat this database as first local capture"
        ),
        "{err}"
    );
}

#[test]
fn disabling_a_table_removes_its_triggers_at_next_open() {
    let conn = host::memory();
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    host::open(&conn).unwrap();
    let config: Value = serde_json::from_str(
        &sql(&conn, "SELECT oversqlite_disable_sync('posts')")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["tables"],
        json!([{"table": "users", "sync_key_column": "id"}])
    );
    assert_eq!(
        config["active_tables"],
        json!(["posts", "users"]),
        "applied only at the next open"
    );
    let report = host::open(&conn).unwrap();
    assert_eq!(report["removed_tables"], json!(["posts"]));
    assert_eq!(report["managed_tables"], json!(["users"]));
    let triggers: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'posts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0);
    let managed: Vec<String> = conn
        .prepare("SELECT table_name FROM _sync_managed_tables")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(managed, vec!["users".to_string()]);
    conn.execute_batch(
        "INSERT INTO users VALUES ('u1', 'Ada'); INSERT INTO posts VALUES ('p1', 'u1', 'x');",
    )
    .unwrap();
    let tables: Vec<String> = pending(&conn)
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tables,
        vec!["users".to_string()],
        "posts is no longer captured"
    );

    // A table with changes waiting for upload cannot be dropped from sync.
    sql(&conn, "SELECT oversqlite_disable_sync('users')").unwrap();
    let err = host::open(&conn).unwrap_err();
    assert!(
        err.starts_with("oversqlite_open: state_conflict: table \"users\""),
        "{err}"
    );
    assert!(err.contains("waiting for upload"), "{err}");
    let still: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'users'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(still, 6, "failed open keeps the triggers");
    sql(&conn, "SELECT oversqlite_enable_sync('users')").unwrap();
    host::open(&conn).unwrap();
}

#[test]
fn open_inside_a_transaction() {
    let conn = host::memory();
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN")
        .unwrap();
    let err = host::open(&conn).unwrap_err();
    assert!(
        err.starts_with("oversqlite_open: transaction_open: "),
        "{err}"
    );
    conn.execute_batch("ROLLBACK; PRAGMA foreign_keys = ON; BEGIN")
        .unwrap();
    host::open(&conn).unwrap();
    assert!(!conn.is_autocommit(), "the caller's transaction stays open");
    conn.execute_batch("ROLLBACK").unwrap();
    let installed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name = '_sync_dirty_rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(installed, 0, "the caller's rollback undoes the open");
    host::open(&conn).unwrap();
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn open_repairs_apply_mode_and_interrupted_remote_replace() {
    let conn = host::memory();
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    let first = host::open(&conn).unwrap();
    conn.execute_batch(
        "UPDATE _sync_apply_state SET apply_mode = 1;
         UPDATE _sync_attachment_state SET binding_state = 'attached', attached_user_id = 'user-1', schema_name = 'main',
             last_bundle_seq_seen = 7, rebuild_required = 1, pending_initialization_id = 'init-1';",
    )
    .unwrap();
    host::open(&conn).unwrap();
    let row: (i64, String, String, i64, i64, String) = conn
        .query_row(
            "SELECT (SELECT apply_mode FROM _sync_apply_state), binding_state, attached_user_id, last_bundle_seq_seen, rebuild_required, pending_initialization_id FROM _sync_attachment_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (0, "attached".into(), "user-1".into(), 7, 1, "init-1".into()),
        "attached binding kept"
    );

    conn.execute_batch(
        "UPDATE _sync_operation_state SET kind = 'source_recovery', reason = 'history_pruned'",
    )
    .unwrap();
    host::open(&conn).unwrap();
    let info: (String, i64, i64, Option<String>, String, String, i64) = conn
        .query_row("SELECT * FROM oversqlite_source_info", [], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap();
    assert_eq!(
        info,
        (
            first["source_id"].as_str().unwrap().to_string(),
            1,
            1,
            Some("history_pruned".into()),
            "attached".into(),
            "user-1".into(),
            7
        )
    );
    let lease: String = conn
        .query_row(
            "SELECT pending_initialization_id FROM _sync_attachment_state",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        lease, "",
        "a lease is kept only while no operation is pending"
    );

    conn.execute_batch("UPDATE _sync_operation_state SET kind = 'remote_replace', reason = '', target_user_id = 'user-1'").unwrap();
    host::open(&conn).unwrap();
    let binding: (String, String, String, i64, i64) = conn
        .query_row("SELECT binding_state, attached_user_id, schema_name, last_bundle_seq_seen, rebuild_required FROM _sync_attachment_state", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    assert_eq!(
        binding,
        ("anonymous".into(), "".into(), "".into(), 0, 0),
        "interrupted remote_replace resets the binding"
    );
    let kind: String = conn
        .query_row("SELECT kind FROM _sync_operation_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        kind, "remote_replace",
        "the operation row stays for the next attach"
    );
    // The guards now block application writes.
    let err = conn
        .execute("INSERT INTO users VALUES ('u9', 'x')", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("SYNC_TRANSITION_PENDING"), "{err}");
}

#[test]
fn changed_trigger_text_is_replaced_on_open() {
    let conn = host::memory();
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    host::open(&conn).unwrap();
    conn.execute_batch("DROP TRIGGER trg_users_ai; CREATE TRIGGER trg_users_ai AFTER INSERT ON users BEGIN SELECT 1; END;").unwrap();
    let report = host::open(&conn).unwrap();
    assert_eq!(report["triggers_written"], json!(1));
    conn.execute_batch("INSERT INTO users VALUES ('u1', 'Ada')")
        .unwrap();
    assert_eq!(pending(&conn).len(), 1);
}

#[test]
fn config_and_version_functions() {
    let conn = host::memory();
    assert_eq!(
        sql(&conn, "SELECT oversqlite_version()")
            .unwrap()
            .as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let empty: Value =
        serde_json::from_str(&sql(&conn, "SELECT oversqlite_config()").unwrap().unwrap()).unwrap();
    assert_eq!(
        empty,
        json!({"server_url": null, "schema": null, "tables": [], "active_tables": null})
    );
    let created: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(created, 0, "reading config creates nothing");
    conn.execute_batch(USERS_POSTS).unwrap();
    configured(&conn);
    let cfg: Value =
        serde_json::from_str(&sql(&conn, "SELECT oversqlite_config()").unwrap().unwrap()).unwrap();
    assert_eq!(cfg["server_url"], json!("https://sync.test/api/"));
    assert_eq!(
        cfg["tables"],
        json!([{"table": "posts", "sync_key_column": "id"}, {"table": "users", "sync_key_column": "id"}])
    );
    // Re-enabling with the same key is a no-op; another key is refused.
    sql(&conn, "SELECT oversqlite_enable_sync('USERS', 'ID')").unwrap();
    let err = sql(&conn, "SELECT oversqlite_enable_sync('users', 'name')").unwrap_err();
    assert!(
        err.starts_with("oversqlite_enable_sync: invalid_config: "),
        "{err}"
    );
    // Writes are direct-only: not callable from triggers or views.
    conn.execute_batch("CREATE VIEW v AS SELECT oversqlite_open() AS r")
        .unwrap();
    let err = sql(&conn, "SELECT r FROM v").unwrap_err();
    assert!(err.contains("unsafe use of oversqlite_open"), "{err}");
}
