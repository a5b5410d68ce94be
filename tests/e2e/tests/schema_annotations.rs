//! `oversqlite_exec(script)`: a schema script with SQLiteNow's `-- @@{ enableSync=true }`
//! annotations enables exactly the annotated tables; a failing script, a script inside
//! the caller's transaction and a script that would end the transaction change nothing
//! (the database file stays byte-for-byte identical).
use std::path::{Path, PathBuf};

use oversqlite_tests::host;
use serde_json::{json, Value};

const SCRIPT: &str = "
-- The app's schema, as SQLiteNow's schema files write it.
-- @@{ enableSync=true }
CREATE TABLE users (
    id   TEXT PRIMARY KEY NOT NULL,
    -- @@{ field=name, propertyName=displayName }
    name TEXT NOT NULL
);

-- @@{ enableSync=true, syncKeyColumnName=id }
CREATE TABLE posts (
    id      TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title   TEXT NOT NULL  -- a ';' or '-- @@{ enableSync=true }' in a string is no annotation
);

-- Local only: never synced.
CREATE TABLE ui_cache (k INTEGER PRIMARY KEY, v TEXT);
CREATE INDEX posts_by_user ON posts(user_id);
INSERT INTO ui_cache VALUES (1, '-- @@{ enableSync=true }');
";

fn configured(name: &str) -> PathBuf {
    let path = host::temp_db(name);
    let conn = host::file(&path);
    host::call(
        &conn,
        "SELECT oversqlite_init('https://sync.example.com', 'main')",
        &[],
    )
    .unwrap();
    path
}

fn json_call(path: &Path, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Value, String> {
    let conn = host::file(path);
    host::call(&conn, sql, params).map(|t| serde_json::from_str(&t.unwrap()).unwrap())
}

#[test]
fn an_annotated_script_creates_everything_and_enables_the_annotated_tables() {
    let path = configured("annotations-ok");
    let report = json_call(&path, "SELECT oversqlite_exec(?1)", &[&SCRIPT]).unwrap();
    assert_eq!(
        report,
        json!({
            "statements": 5,
            "created_tables": ["posts", "ui_cache", "users"],
            "enabled_tables": [
                {"table": "users", "sync_key_column": "id"},
                {"table": "posts", "sync_key_column": "id"},
            ],
        })
    );
    let config = json_call(&path, "SELECT oversqlite_config()", &[]).unwrap();
    assert_eq!(
        config["tables"],
        json!([{"table": "users", "sync_key_column": "id"}, {"table": "posts", "sync_key_column": "id"}])
    );
    let opened = json_call(&path, "SELECT oversqlite_open()", &[]).unwrap();
    assert_eq!(opened["managed_tables"], json!(["users", "posts"]));

    // Captured: users and posts; not ui_cache.
    let conn = host::file(&path);
    conn.execute_batch(
        "INSERT INTO users VALUES ('u1', 'Ada');
         INSERT INTO posts VALUES ('p1', 'u1', 'Hello');
         INSERT INTO ui_cache VALUES (2, 'x');",
    )
    .unwrap();
    let pending: Vec<String> = conn
        .prepare("SELECT table_name FROM oversqlite_pending ORDER BY table_name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pending, ["posts", "users"]);
    let cached: String = conn
        .query_row("SELECT v FROM ui_cache WHERE k = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cached, "-- @@{ enableSync=true }");

    // A migration script run later: one more synced table next to the existing ones.
    let report = json_call(
        &path,
        "SELECT oversqlite_exec(?1)",
        &[&"ALTER TABLE users ADD COLUMN email TEXT;
            -- @@{ enableSync=true }
            CREATE TABLE tags (id TEXT PRIMARY KEY NOT NULL, label TEXT);"],
    )
    .unwrap();
    assert_eq!(
        report,
        json!({"statements": 2, "created_tables": ["tags"], "enabled_tables": [{"table": "tags", "sync_key_column": "id"}]})
    );
}

/// `sql` must fail with `fragment` in its message and leave the file as it was.
fn fails_unchanged(path: &Path, sql: &str, script: &str, fragment: &str) {
    let before = std::fs::read(path).unwrap();
    let conn = host::file(path);
    let err = host::call(&conn, sql, &[&script]).expect_err(sql);
    assert!(err.contains(fragment), "{err}");
    drop(conn);
    assert!(
        std::fs::read(path).unwrap() == before,
        "{script}: database file changed"
    );
}

#[test]
fn a_failing_script_changes_nothing() {
    let path = configured("annotations-bad");
    let exec = "SELECT oversqlite_exec(?1)";
    // The second annotated table has an INTEGER key: nothing of the script stays.
    fails_unchanged(
        &path,
        exec,
        "-- @@{ enableSync=true }
         CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT);
         CREATE TABLE local_notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO local_notes VALUES (1, 'x');
         -- @@{ enableSync=true }
         CREATE TABLE counters (id INTEGER PRIMARY KEY NOT NULL, n INTEGER);",
        "oversqlite_exec: invalid_config: ",
    );
    fails_unchanged(
        &path,
        exec,
        "-- @@{ enableSync=true }\nCREATE TABLE counters (id INTEGER PRIMARY KEY NOT NULL, n INTEGER);",
        "must be TEXT PRIMARY KEY or BLOB PRIMARY KEY",
    );
    // A statement SQLite refuses, after others ran.
    fails_unchanged(
        &path,
        exec,
        "CREATE TABLE a (id TEXT PRIMARY KEY); INSERT INTO missing VALUES (1);",
        "oversqlite_exec: sqlite_error: ",
    );
    // Annotations that name no table.
    fails_unchanged(
        &path,
        exec,
        "CREATE TABLE a (id TEXT PRIMARY KEY);\n-- @@{ enableSync=true }\nCREATE INDEX ai ON a(id);",
        "oversqlite_exec: invalid_argument: annotation \"@@{ enableSync=true }\" enables sync but it is not followed by CREATE TABLE",
    );
    // A script that would end oversqlite_exec's own transaction.
    fails_unchanged(
        &path,
        exec,
        "CREATE TABLE a (id TEXT PRIMARY KEY); COMMIT; CREATE TABLE b (id TEXT PRIMARY KEY);",
        "oversqlite_exec: invalid_argument: the script runs COMMIT",
    );
    let conn = host::file(&path);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('users', 'local_notes', 'counters', 'a', 'b')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn refused_inside_a_transaction_and_from_views() {
    let path = configured("annotations-tx");
    let before = std::fs::read(&path).unwrap();
    {
        let conn = host::file(&path);
        conn.execute_batch("BEGIN").unwrap();
        let err = host::call(
            &conn,
            "SELECT oversqlite_exec('CREATE TABLE t (id TEXT PRIMARY KEY)')",
            &[],
        )
        .unwrap_err();
        assert!(
            err.starts_with("oversqlite_exec: transaction_open: "),
            "{err}"
        );
        conn.execute_batch("ROLLBACK").unwrap();
        let err = host::call(&conn, "SELECT oversqlite_exec(1)", &[]).unwrap_err();
        assert!(
            err.starts_with("oversqlite_exec: invalid_argument: argument 1 (script) must be TEXT"),
            "{err}"
        );
    }
    assert!(std::fs::read(&path).unwrap() == before);
    // DIRECTONLY: a view (or trigger) in the database cannot run a script. (SQLite
    // trusts TEMP views, so the view is a persistent one, made after the file check.)
    let conn = host::file(&path);
    conn.execute_batch(
        "CREATE VIEW v AS SELECT oversqlite_exec('CREATE TABLE t (id TEXT PRIMARY KEY)') AS r",
    )
    .unwrap();
    let err = host::call(&conn, "SELECT r FROM v", &[]).unwrap_err();
    assert!(err.contains("unsafe use of oversqlite_exec()"), "{err}");
}
