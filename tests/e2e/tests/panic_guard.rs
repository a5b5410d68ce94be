//! A Rust panic inside the extension reaches the host as a SQL error, never an abort, and
//! a panic in the middle of `oversqlite_open()` rolls the whole open back.
//! Uses the `OVERSQLITE_TEST_FAULT=panic:<point>` hook; one test so the variable is not
//! shared between parallel tests.
use oversqlite_tests::host;

fn set_fault(point: Option<&str>) {
    match point {
        Some(p) => std::env::set_var("OVERSQLITE_TEST_FAULT", format!("panic:{p}")),
        None => std::env::remove_var("OVERSQLITE_TEST_FAULT"),
    }
}

/// Steps through every row reading column 0, so every cursor callback runs.
fn scan(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Option<String>>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Option<rusqlite::types::Value>>(0))
        .map_err(|e| e.to_string())?;
    rows.map(|r| {
        r.map(|v| v.map(|v| format!("{v:?}")))
            .map_err(|e| e.to_string())
    })
    .collect()
}

fn expect_internal(conn: &rusqlite::Connection, sql: &str, prefix: &str) {
    let err = scan(conn, sql).expect_err(sql);
    assert!(err.starts_with(prefix), "{sql}: {err:?}");
    assert!(
        err.contains("internal_error: unexpected panic"),
        "{sql}: {err:?}"
    );
    // The host connection keeps working.
    set_fault(None);
    assert_eq!(
        host::call(conn, "SELECT 'alive'", &[]).unwrap().as_deref(),
        Some("alive")
    );
}

#[test]
fn panics_become_sql_errors() {
    let path = host::temp_db("panic-guard");
    let conn = host::file(&path);
    conn.execute_batch("CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL); INSERT INTO users VALUES ('u1', 'Ada');")
        .unwrap();
    host::call(
        &conn,
        "SELECT oversqlite_init('https://sync.test', 'main')",
        &[],
    )
    .unwrap();
    host::call(&conn, "SELECT oversqlite_enable_sync('users')", &[]).unwrap();

    // Mid-transaction panic: nothing of the open survives.
    let before = std::fs::read(&path).unwrap();
    set_fault(Some("open.after_triggers"));
    expect_internal(&conn, "SELECT oversqlite_open()", "oversqlite_open: ");
    let sync_objects: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE '\\_sync\\_%' ESCAPE '\\' OR name LIKE 'trg\\_%' ESCAPE '\\'", [], |r| r.get(0)).unwrap();
    assert_eq!(
        sync_objects, 0,
        "a panicking open left runtime objects behind"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a panicking open changed the file"
    );
    assert!(
        conn.is_autocommit(),
        "a panicking open left a transaction open"
    );

    for (point, sql, prefix) in [
        (
            "oversqlite_init",
            "SELECT oversqlite_init('https://sync.test', 'main')",
            "oversqlite_init: ",
        ),
        (
            "oversqlite_enable_sync",
            "SELECT oversqlite_enable_sync('users')",
            "oversqlite_enable_sync: ",
        ),
        (
            "oversqlite_disable_sync",
            "SELECT oversqlite_disable_sync('users')",
            "oversqlite_disable_sync: ",
        ),
        (
            "oversqlite_config",
            "SELECT oversqlite_config()",
            "oversqlite_config: ",
        ),
        (
            "oversqlite_version",
            "SELECT oversqlite_version()",
            "oversqlite_version: ",
        ),
        (
            "oversqlite_open",
            "SELECT oversqlite_open()",
            "oversqlite_open: ",
        ),
        (
            "oversqlite_exec",
            "SELECT oversqlite_exec('CREATE TABLE panicked (id TEXT PRIMARY KEY)')",
            "oversqlite_exec: ",
        ),
    ] {
        set_fault(Some(point));
        expect_internal(&conn, sql, prefix);
    }

    host::open(&conn).unwrap();
    for vtab in ["oversqlite_pending", "oversqlite_source_info"] {
        for callback in ["filter", "next", "eof", "column", "best_index", "open"] {
            // A fresh connection so `connect` and `best_index` run again.
            let fresh = host::file(&path);
            set_fault(Some(&format!("{vtab}.{callback}")));
            expect_internal(&fresh, &format!("SELECT * FROM {vtab}"), "");
        }
        let fresh = host::file(&path);
        set_fault(Some(&format!("{vtab}.eof")));
        expect_internal(&fresh, &format!("SELECT COUNT(*) FROM {vtab}"), "");
        let fresh = host::file(&path);
        set_fault(Some(&format!("{vtab}.connect")));
        let err = scan(&fresh, &format!("SELECT * FROM {vtab}")).expect_err("connect panic");
        assert!(
            err.contains("internal_error: unexpected panic"),
            "{vtab}.connect: {err:?}"
        );
        set_fault(None);
    }
    // Everything still works after all those panics.
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM oversqlite_pending", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}
