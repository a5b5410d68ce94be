//! One database file synced alternately by the extension and the CLI (same on-disk
//! state: same source, same checkpoint, no row sent twice), converging with a second
//! device that only uses the CLI.
mod support;

use std::path::Path;

use oversqlite_tests::host;
use oversqlite_tests::server::TestServer;
use rusqlite::Connection;
use serde_json::Value;
use support::{cli, cli_as, device, insert_user, users};

/// A launch of the app: the extension loaded, `oversqlite_open()`, the token set,
/// `oversqlite_attach('alice')`; returns the connection and the attach outcome.
fn app(server: &TestServer, path: &Path) -> (Connection, String) {
    let conn = host::file(path);
    host::open(&conn).unwrap();
    let token = server.token("alice");
    host::call(&conn, "SELECT oversqlite_set_token(?1)", &[&token]).unwrap();
    let r = host::call(&conn, "SELECT oversqlite_attach('alice')", &[])
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&r).unwrap();
    (conn, v["outcome"].as_str().unwrap().to_string())
}

fn sql_sync(conn: &Connection) -> Value {
    let r = host::call(conn, "SELECT oversqlite_sync()", &[])
        .unwrap()
        .unwrap();
    serde_json::from_str(&r).unwrap()
}

fn source_id(path: &Path) -> String {
    let j = cli(&["--db", path.to_str().unwrap(), "--json", "status"], &[])
        .ok()
        .json();
    j["source"]["current_source_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_file_synced_by_the_extension_continues_with_the_cli_and_back() {
    let server = TestServer::start();
    let a = device(&server, "interop-a");
    let b = device(&server, "interop-b");

    // 1. The app (extension) attaches, writes and syncs.
    let (conn, outcome) = app(&server, &a);
    assert_eq!(outcome, "started_empty");
    conn.execute("INSERT INTO users(id, name) VALUES ('u1', 'Ada')", [])
        .unwrap();
    assert_eq!(sql_sync(&conn)["push_outcome"], "committed");
    let source = host::call(
        &conn,
        "SELECT current_source_id FROM oversqlite_source_info",
        &[],
    )
    .unwrap()
    .unwrap();
    drop(conn);

    // 2. The CLI continues the same binding and source.
    assert_eq!(source_id(&a), source);
    insert_user(&a, "u2", "Grace");
    let j = cli_as(&server, "alice", &a, &["--json", "sync"])
        .ok()
        .json();
    assert_eq!(j["push_outcome"], "committed", "{j}");
    assert_eq!(source_id(&a), source);

    // 3. The app again: resumes without a request, writes, syncs.
    let (conn, outcome) = app(&server, &a);
    assert_eq!(outcome, "resumed_attached_state");
    conn.execute("INSERT INTO users(id, name) VALUES ('u3', 'Linus')", [])
        .unwrap();
    let s = sql_sync(&conn);
    assert_eq!(s["push_outcome"], "committed", "{s}");
    assert_eq!(s["status"]["pending"]["pending_row_count"], 0);
    drop(conn);

    // 4. A second device, CLI only: hydrates all three, writes one.
    let j = cli_as(
        &server,
        "alice",
        &b,
        &["--json", "attach", "--user", "alice"],
    )
    .ok()
    .json();
    assert_eq!(j["outcome"], "used_remote_state", "{j}");
    assert_eq!(users(&b).len(), 3);
    insert_user(&b, "u4", "Barbara");
    cli_as(&server, "alice", &b, &["sync"]).ok();

    // 5. A's CLI pulls it; the app's next sync has nothing left to do.
    cli_as(&server, "alice", &a, &["sync"]).ok();
    let (conn, _) = app(&server, &a);
    let s = sql_sync(&conn);
    assert_eq!(s["push_outcome"], "no_change", "{s}");
    assert_eq!(s["remote_outcome"], "already_at_target", "{s}");

    // One journal for both: the extension's virtual table shows the CLI's runs (trigger
    // cli) between the app's (trigger sql), in the order they ran.
    let mut stmt = conn
        .prepare("SELECT operation, trigger, outcome FROM oversqlite_sync_log ORDER BY id")
        .unwrap();
    let journal: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    drop(stmt);
    let syncs: Vec<&str> = journal
        .iter()
        .filter(|r| r.0 == "sync")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(syncs, ["sql", "cli", "sql", "cli", "sql"], "{journal:?}");
    assert!(journal.iter().all(|r| r.2 == "ok"), "{journal:?}");
    drop(conn);

    assert_eq!(users(&a), users(&b));
    let names: Vec<String> = users(&a).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["Ada", "Grace", "Linus", "Barbara"]);
    // Each row reached the server once: one bundle per sync that pushed.
    assert_eq!(server.rows("users", "alice", "id").len(), 4);
    assert_eq!(server.bundle_count("alice"), 4);
}
