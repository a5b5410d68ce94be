//! Bad input gets a clear `oversqlite_<fn>: <code>: <message>` error and leaves the
//! database file byte-for-byte unchanged.
use std::path::Path;

use oversqlite_tests::host;

const SCHEMA: &str = "
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT REFERENCES users(id), title TEXT);
CREATE TABLE counters (id INTEGER PRIMARY KEY NOT NULL, n INTEGER);
CREATE TABLE pairs (id_a TEXT NOT NULL, id_b TEXT NOT NULL, PRIMARY KEY (id_a, id_b));
CREATE TABLE scoped (id TEXT PRIMARY KEY NOT NULL, _sync_scope_id TEXT);
CREATE TABLE keyless (name TEXT);
INSERT INTO users VALUES ('u1', 'Ada');
";

/// Runs `sql` on a fresh connection to `path`, expecting an error; asserts its prefix and
/// fragment, and that the file bytes did not change.
fn rejects(path: &Path, sql: &str, prefix: &str, fragment: &str) {
    let before = std::fs::read(path).unwrap();
    {
        let conn = host::file(path);
        let err = host::call(&conn, sql, &[]).expect_err(sql);
        assert!(
            err.starts_with(prefix),
            "{sql}: {err:?} does not start with {prefix:?}"
        );
        assert!(err.contains(fragment), "{sql}: {err:?} lacks {fragment:?}");
    }
    assert!(
        std::fs::read(path).unwrap() == before,
        "{sql}: database file changed"
    );
}

fn setup(name: &str, extra: &str) -> std::path::PathBuf {
    let path = host::temp_db(name);
    let conn = host::file(&path);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(extra).unwrap();
    path
}

#[test]
fn rejected_configuration_calls_change_nothing() {
    let path = setup("bad-config", "");
    let enable = "oversqlite_enable_sync: invalid_config: ";
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('nope')",
        enable,
        "table \"nope\" does not exist",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('counters')",
        enable,
        "TEXT PRIMARY KEY or BLOB PRIMARY KEY",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('pairs')",
        enable,
        "must declare exactly one local SQLite PRIMARY KEY column",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('pairs', 'id_a', 'id_b')",
        enable,
        "must declare exactly one sync key column",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('keyless')",
        enable,
        "must declare exactly one local SQLite PRIMARY KEY column",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('users', 'missing_id')",
        enable,
        "does not contain configured primary key column missing_id",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('users', 'name')",
        enable,
        "must be the table's PRIMARY KEY column",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('scoped')",
        enable,
        "reserved server column _sync_scope_id",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('main.users')",
        enable,
        "must not include a schema qualifier",
    );
    rejects(
        &path,
        "SELECT oversqlite_enable_sync('_sync_dirty_rows')",
        enable,
        "reserved",
    );
    let init = "oversqlite_init: invalid_config: ";
    rejects(
        &path,
        "SELECT oversqlite_init('ftp://sync.test', 'main')",
        init,
        "http:// or https://",
    );
    rejects(
        &path,
        "SELECT oversqlite_init('https://', 'main')",
        init,
        "http:// or https://",
    );
    rejects(
        &path,
        "SELECT oversqlite_init('https://sync.test', '   ')",
        init,
        "config.schema must be provided",
    );
    rejects(
        &path,
        "SELECT oversqlite_open()",
        "oversqlite_open: not_configured: ",
        "call oversqlite_init(server_url, remote_schema) first",
    );
    rejects(
        &path,
        "SELECT oversqlite_disable_sync('users')",
        "oversqlite_disable_sync: invalid_argument: ",
        "is not enabled",
    );
    rejects(
        &path,
        "SELECT * FROM oversqlite_pending",
        "oversqlite_pending: not_open: ",
        "call oversqlite_open() first",
    );
    rejects(
        &path,
        "SELECT * FROM oversqlite_source_info",
        "oversqlite_source_info: not_open: ",
        "call oversqlite_open() first",
    );
}

#[test]
fn init_refuses_url_credentials_nul_bytes_and_oversized_ids() {
    let path = setup("bad-init-values", "");
    {
        let conn = host::file(&path);
        host::call(
            &conn,
            "SELECT oversqlite_init('https://sync.test', 'main')",
            &[],
        )
        .unwrap();
    }
    let init = "oversqlite_init: invalid_config: ";
    for url in [
        "http://bob:secret@sync.test/api",
        "https://bob:secret@sync.test",
        "https://secret@sync.test",
        "bob:secret@sync.test",
    ] {
        let sql = format!("SELECT oversqlite_init('{url}', 'main')");
        rejects(&path, &sql, init, "must not contain credentials");
        rejects(&path, &sql, init, "oversqlite_set_token");
        let conn = host::file(&path);
        let err = host::call(&conn, &sql, &[]).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
    // An '@' after the host (path, query) is not a credential.
    let at_in_path = setup("bad-init-at-path", "");
    let conn = host::file(&at_in_path);
    let shown = host::call(
        &conn,
        "SELECT oversqlite_init('https://sync.test/u/@me?x=a@b', 'main')",
        &[],
    )
    .unwrap()
    .unwrap();
    assert!(shown.contains("https://sync.test/u/@me?x=a@b"), "{shown}");
    drop(conn);

    rejects(
        &path,
        "SELECT oversqlite_init('https://sync.test' || char(0) || 'evil', 'main')",
        init,
        "server_url must not contain NUL bytes",
    );
    rejects(
        &path,
        "SELECT oversqlite_init('https://sync.test', 'main' || char(0) || 'x')",
        init,
        "config.schema must not contain NUL bytes",
    );
    let long_url = format!("https://sync.test/{}", "a".repeat(2048));
    rejects(
        &path,
        &format!("SELECT oversqlite_init('{long_url}', 'main')"),
        init,
        "at most 2048 bytes are accepted",
    );
    let ok_url = format!("https://sync.test/{}", "a".repeat(2048 - 18));
    assert_eq!(ok_url.len(), 2048);
    rejects(
        &path,
        &format!("SELECT oversqlite_init('{ok_url}', '{}')", "s".repeat(257)),
        init,
        "config.schema is 257 bytes long; at most 256 bytes are accepted",
    );
    let attach = "oversqlite_attach: invalid_argument: ";
    rejects(
        &path,
        &format!("SELECT oversqlite_attach('{}')", "u".repeat(257)),
        attach,
        "user_id is 257 bytes long; at most 256 bytes are accepted",
    );
    rejects(
        &path,
        "SELECT oversqlite_attach('bob' || char(0) || 'alice')",
        attach,
        "user_id must not contain NUL bytes",
    );
    // The limits themselves are accepted, and nothing above changed the stored config.
    let conn = host::file(&path);
    let cfg = host::call(&conn, "SELECT oversqlite_config()", &[])
        .unwrap()
        .unwrap();
    assert!(
        cfg.contains("\"server_url\":\"https://sync.test\""),
        "{cfg}"
    );
    let shown = host::call(
        &conn,
        &format!("SELECT oversqlite_init('{ok_url}', '{}')", "s".repeat(256)),
        &[],
    )
    .unwrap()
    .unwrap();
    assert!(shown.contains(&ok_url), "limit-length URL refused: {shown}");
}

#[test]
fn wrong_argument_counts_and_types_change_nothing() {
    let path = setup("bad-args", "");
    let cases = [
        (
            "SELECT oversqlite_init('https://sync.test')",
            "oversqlite_init: invalid_argument: ",
            "expected 2 argument(s), got 1",
        ),
        (
            "SELECT oversqlite_init(1, 'main')",
            "oversqlite_init: invalid_argument: ",
            "argument 1 (server_url) must be TEXT, got INTEGER",
        ),
        (
            "SELECT oversqlite_init('https://sync.test', NULL)",
            "oversqlite_init: invalid_argument: ",
            "argument 2 (remote_schema) must be TEXT, got NULL",
        ),
        (
            "SELECT oversqlite_enable_sync()",
            "oversqlite_enable_sync: invalid_argument: ",
            "expected at least 1 argument(s), got 0",
        ),
        (
            "SELECT oversqlite_enable_sync(42)",
            "oversqlite_enable_sync: invalid_argument: ",
            "argument 1 (table) must be TEXT, got INTEGER",
        ),
        (
            "SELECT oversqlite_enable_sync('users', x'00')",
            "oversqlite_enable_sync: invalid_argument: ",
            "argument 2 (sync_key_column) must be TEXT, got BLOB",
        ),
        (
            "SELECT oversqlite_disable_sync()",
            "oversqlite_disable_sync: invalid_argument: ",
            "expected 1 argument(s), got 0",
        ),
        (
            "SELECT oversqlite_disable_sync(1.5)",
            "oversqlite_disable_sync: invalid_argument: ",
            "must be TEXT, got REAL",
        ),
        (
            "SELECT oversqlite_open('now')",
            "oversqlite_open: invalid_argument: ",
            "usage: oversqlite_open()",
        ),
        (
            "SELECT oversqlite_config(1)",
            "oversqlite_config: invalid_argument: ",
            "expected 0 argument(s), got 1",
        ),
        (
            "SELECT oversqlite_version(1)",
            "oversqlite_version: invalid_argument: ",
            "expected 0 argument(s), got 1",
        ),
    ];
    for (sql, prefix, fragment) in cases {
        rejects(&path, sql, prefix, fragment);
    }
}

#[test]
fn failed_open_changes_nothing() {
    // posts is enabled without its FK parent users: accepted per table, rejected at open.
    let path = setup("bad-open", "");
    {
        let conn = host::file(&path);
        host::call(
            &conn,
            "SELECT oversqlite_init('https://sync.test', 'main')",
            &[],
        )
        .unwrap();
        host::call(&conn, "SELECT oversqlite_enable_sync('posts')", &[]).unwrap();
    }
    rejects(
        &path,
        "SELECT oversqlite_open()",
        "oversqlite_open: invalid_config: ",
        "managed tables are not FK-closed: posts.user_id -> users.id",
    );

    // An already-open database: a table dropped behind our back makes the next open fail
    // without touching the runtime state.
    let path = setup(
        "bad-reopen",
        "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT);",
    );
    {
        let conn = host::file(&path);
        host::call(
            &conn,
            "SELECT oversqlite_init('https://sync.test', 'main')",
            &[],
        )
        .unwrap();
        host::call(&conn, "SELECT oversqlite_enable_sync('users')", &[]).unwrap();
        host::call(&conn, "SELECT oversqlite_enable_sync('notes')", &[]).unwrap();
        host::open(&conn).unwrap();
        conn.execute_batch("DROP TABLE notes").unwrap();
    }
    rejects(
        &path,
        "SELECT oversqlite_open()",
        "oversqlite_open: invalid_config: ",
        "table \"notes\" does not exist",
    );
}
