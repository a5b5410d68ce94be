//! The SQLite result code a host sees for each class of extension error (see the table in
//! `src/sql/error.rs`), with the `oversqlite_<fn>: <code>: <message>` text unchanged:
//! `sync_in_progress` → SQLITE_BUSY, `invalid_argument` / `transaction_open` →
//! SQLITE_MISUSE, an error SQLite itself reported keeps its extended code, the rest →
//! SQLITE_ERROR.
mod sql_sync_support;

use std::fs::{File, OpenOptions};

use oversqlite_tests::host;
use oversqlite_tests::server::TestServer;
use rusqlite::{ffi, Connection};
use sql_sync_support::device;

/// Runs a one-value SELECT that must fail; the host's (extended code, message).
fn failure(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> (i32, String) {
    match conn.query_row(sql, params, |r| r.get::<_, Option<String>>(0)) {
        Ok(v) => panic!("{sql} should fail, returned {v:?}"),
        Err(rusqlite::Error::SqliteFailure(e, message)) => {
            // The primary code is the low byte of the extended one.
            assert_eq!(
                e,
                ffi::Error::new(e.extended_code),
                "{sql}: inconsistent codes"
            );
            (e.extended_code, message.unwrap_or_default())
        }
        Err(other) => panic!("{sql}: not a SQLite failure: {other:?}"),
    }
}

fn assert_failure(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    code: i32,
    prefix: &str,
) {
    let (got, message) = failure(conn, sql, params);
    assert!(message.starts_with(prefix), "{sql}: {message:?}");
    assert_eq!(got, code, "{sql}: {message}");
}

#[test]
fn argument_errors_are_misuse() {
    let conn = host::memory();
    assert_failure(
        &conn,
        "SELECT oversqlite_version(1)",
        &[],
        ffi::SQLITE_MISUSE,
        "oversqlite_version: invalid_argument: expected 0 argument(s), got 1; usage: oversqlite_version()",
    );
    assert_failure(
        &conn,
        "SELECT oversqlite_init(42, 'main')",
        &[],
        ffi::SQLITE_MISUSE,
        "oversqlite_init: invalid_argument: argument 1 (server_url) must be TEXT, got INTEGER",
    );
    assert_failure(
        &conn,
        "SELECT oversqlite_attach()",
        &[],
        ffi::SQLITE_MISUSE,
        "oversqlite_attach: invalid_argument: expected 1 argument(s), got 0",
    );
    // Not an argument error: the runtime was never configured.
    assert_failure(
        &conn,
        "SELECT oversqlite_open()",
        &[],
        ffi::SQLITE_ERROR,
        "oversqlite_open: not_configured: ",
    );
}

#[test]
fn a_nul_byte_in_a_text_argument_keeps_the_prefixed_error() {
    let conn = host::memory();
    host::call(
        &conn,
        "SELECT oversqlite_init('https://sync.test', 'main')",
        &[],
    )
    .unwrap();
    let table = "no\0such";
    let (code, message) = failure(&conn, "SELECT oversqlite_enable_sync(?1)", &[&table]);
    assert!(
        message.starts_with("oversqlite_enable_sync: "),
        "not the prefixed error: {message:?}"
    );
    assert!(message.contains("no\\0such"), "{message:?}");
    assert_ne!(message, "SQL logic error");
    assert_ne!(code, ffi::SQLITE_OK);
}

#[test]
fn a_constraint_reported_by_sqlite_keeps_its_code() {
    let conn = host::memory();
    conn.execute_batch("CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT)")
        .unwrap();
    host::call(
        &conn,
        "SELECT oversqlite_init('https://sync.test', 'main')",
        &[],
    )
    .unwrap();
    // A host trigger refuses the registration row `oversqlite_enable_sync` writes.
    conn.execute_batch(
        "CREATE TRIGGER refuse_registration BEFORE INSERT ON _oversqlite_tables
         BEGIN SELECT RAISE(ABORT, 'refused by the host'); END;",
    )
    .unwrap();
    let (code, message) = failure(&conn, "SELECT oversqlite_enable_sync('users')", &[]);
    assert_eq!(code, ffi::SQLITE_CONSTRAINT_TRIGGER, "{message}");
    assert!(
        message.starts_with("oversqlite_enable_sync: sqlite_error: refused by the host"),
        "{message:?}"
    );
}

/// Holds the cross-process operation lock of the database at `path` (the engine's
/// `<database>-oversqlite.lock` sidecar, an exclusive `flock`), as another process would.
fn hold_operation_lock(path: &std::path::Path) -> File {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{}-oversqlite.lock", path.display()))
        .unwrap();
    file.try_lock().unwrap();
    file
}

#[test]
fn sync_in_progress_is_busy_and_an_open_transaction_is_misuse() {
    let server = TestServer::start();
    let d = device(&server, "error-codes", "alice");
    d.ok("SELECT oversqlite_attach('alice')");

    let lock = hold_operation_lock(&d.path);
    for sql in [
        "SELECT oversqlite_sync()",
        "SELECT oversqlite_push_pending()",
    ] {
        let name = &sql[7..sql.len() - 2];
        assert_failure(
            &d.conn,
            sql,
            &[],
            ffi::SQLITE_BUSY,
            &format!("{name}: sync_in_progress: "),
        );
    }
    drop(lock);
    d.ok("SELECT oversqlite_sync()");

    d.exec("BEGIN");
    assert_failure(
        &d.conn,
        "SELECT oversqlite_sync()",
        &[],
        ffi::SQLITE_MISUSE,
        "oversqlite_sync: transaction_open: ",
    );
    d.exec("ROLLBACK");
    d.ok("SELECT oversqlite_sync()");
}
