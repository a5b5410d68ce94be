//! Issue #10 item 1: a copied or restored database file keeps syncing. Both copies carry
//! the same source id and the same next `source_bundle_id`; whichever pushes second
//! finds its tuple already committed with the other copy's rows. That copy moves to a
//! fresh source of its own (its unsent bundle rebound as bundle 1 of it), pushes its
//! own writes once and pulls the other copy's. The other copy keeps its source.
//!
//! Needs `cargo build -p oversqlite --features test-faults` and `cargo build -p
//! oversqlite-server`.
mod sql_sync_support;

use oversqlite_tests::host;
use oversqlite_tests::server::TestServer;
use serde_json::{json, Value};
use sql_sync_support::{device, Device};

fn copy_of(original: &Device, server: &TestServer, name: &str) -> Device {
    let path = host::temp_db(name);
    // No transaction is open on the original (autocommit, rollback journal): the main
    // file alone is the whole database, as a backup or a file copy would take it.
    std::fs::copy(&original.path, &path).unwrap();
    let conn = host::file(&path);
    let token = server.token("alice");
    host::call(&conn, "SELECT oversqlite_set_token(?1)", &[&token]).unwrap();
    let d = Device { conn, path };
    let attach = d.ok("SELECT oversqlite_attach('alice')");
    assert_eq!(
        attach["outcome"],
        json!("resumed_attached_state"),
        "{attach}"
    );
    d
}

fn source_of(d: &Device) -> String {
    d.ok("SELECT oversqlite_source_info()")["current_source_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pending(d: &Device) -> Value {
    d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"].clone()
}

#[test]
fn copied_database_file_keeps_syncing_on_both_copies_each_write_once() {
    let server = TestServer::start();
    let original = device(&server, "copy-original", "alice");
    original.ok("SELECT oversqlite_attach('alice')");
    original.exec("INSERT INTO users VALUES ('u1', 'synced before the copy')");
    original.ok("SELECT oversqlite_sync()");
    // Written before the copy and not yet sent: both copies carry it.
    original.exec("INSERT INTO users VALUES ('u2', 'unsent at the copy')");

    let copy = copy_of(&original, &server, "copy-restored");
    assert_eq!(source_of(&copy), source_of(&original));

    original.exec("INSERT INTO users VALUES ('o1', 'written on the original')");
    copy.exec("INSERT INTO users VALUES ('c1', 'written on the copy')");
    copy.exec("UPDATE users SET name = 'changed on the copy' WHERE id = 'u1'");

    // The original pushes first and keeps its source.
    let before = source_of(&original);
    let r = original.ok("SELECT oversqlite_sync()");
    assert_eq!(r["push_outcome"], json!("committed"), "{r}");
    assert_eq!(source_of(&original), before);

    // The copy's tuple is taken: it used to fail with source_sequence_mismatch forever.
    let r = copy.ok("SELECT oversqlite_sync()");
    assert_eq!(r["push_outcome"], json!("committed"), "{r}");
    let rotated = source_of(&copy);
    assert_ne!(rotated, before, "the copy moved to a source of its own");
    let info = copy.ok("SELECT oversqlite_source_info()");
    assert_eq!(info["rebuild_required"], json!(false), "{info}");
    assert_eq!(pending(&copy), json!(0));

    // Both keep syncing; a second round changes nothing more.
    original.ok("SELECT oversqlite_sync()");
    copy.ok("SELECT oversqlite_sync()");
    original.exec("INSERT INTO users VALUES ('o2', 'after recovery, original')");
    copy.exec("INSERT INTO users VALUES ('c2', 'after recovery, copy')");
    for _ in 0..2 {
        for d in [&original, &copy] {
            let r = d.ok("SELECT oversqlite_sync()");
            assert!(r.get("push_outcome").is_some(), "{r}");
        }
    }
    assert_eq!(source_of(&original), before);
    assert_eq!(source_of(&copy), rotated);

    let expected = vec![
        "c1=written on the copy",
        "c2=after recovery, copy",
        "o1=written on the original",
        "o2=after recovery, original",
        "u1=changed on the copy",
        "u2=unsent at the copy",
    ];
    let fresh = device(&server, "copy-fresh", "alice");
    fresh.ok("SELECT oversqlite_attach('alice')");
    for (name, d) in [("original", &original), ("copy", &copy), ("fresh", &fresh)] {
        assert_eq!(d.users(), expected, "{name}");
        assert_eq!(pending(d), json!(0), "{name}");
    }
    // The server holds each row once, with the value written last.
    let server_rows: Vec<String> = server
        .rows("users", "alice", "id, name")
        .into_iter()
        .map(|r| format!("{}={}", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect();
    assert_eq!(server_rows, expected);
    // Each copy's own writes went up once: c1 (with the u1 update) in the copy's first
    // bundle of its new source, nothing of it re-sent afterwards.
    let bundles = server.query_store(
        "SELECT source_id, count(*) FROM _oversync_bundle_log WHERE user_id = 'alice' GROUP BY source_id ORDER BY 1",
    );
    let per_source: std::collections::BTreeMap<String, i64> = bundles
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(per_source.len(), 2, "{per_source:?}");
    assert_eq!(per_source[&before], 3, "u1; u2+o1; o2: {per_source:?}");
    assert_eq!(per_source[&rotated], 2, "c1+u1; c2: {per_source:?}");
}
