//! Pull pages are spooled to a file and applied from it as a stream (DECISIONS.md,
//! "Streaming pull"): member order does not matter, `row_count` and `bundle_hash` are
//! verified before anything is applied, a bad bundle changes nothing, and no spool
//! file is left behind.

mod support;

use oversqlite_engine::remote::transport::ScriptedResponse;
use oversqlite_protocol::{bundle_hash, BundleRow};
use serde_json::{json, Value};
use support::fake_server::{route, FakeServer};

fn row(id: &str, name: &str, version: i64) -> Value {
    json!({"schema": "main", "table": "users", "key": {"id": id}, "op": "INSERT",
           "row_version": version, "payload": {"id": id, "name": name}})
}

fn hash_of(rows: &[Value]) -> String {
    let rows: Vec<BundleRow> = rows
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    bundle_hash(&rows)
}

/// A bundle object written with its rows first and its header last (valid JSON,
/// unusual member order), with an honest `row_count` and `bundle_hash`.
fn bundle_text(seq: i64, rows: &[Value]) -> String {
    format!(
        r#"{{"rows":{},"bundle_hash":"{}","row_count":{},"source_bundle_id":{seq},"source_id":"peer","bundle_seq":{seq}}}"#,
        Value::Array(rows.to_vec()),
        hash_of(rows),
        rows.len()
    )
}

/// A page with the page-level members after the bundles.
fn page_text(bundles: &[String], stable: i64) -> Vec<u8> {
    format!(
        r#"{{"bundles":[{}],"has_more":false,"stable_bundle_seq":{stable}}}"#,
        bundles.join(",")
    )
    .into_bytes()
}

fn server_answering_pull(body: Vec<u8>) -> FakeServer {
    FakeServer::new(move |_, req| match route(req).0 {
        "pull" => Some(ScriptedResponse::Raw(
            200,
            vec![("Content-Type".into(), "application/json".into())],
            body.clone(),
        )),
        _ => None,
    })
}

struct Device {
    db: support::TestDb,
    conn: rusqlite::Connection,
    client: oversqlite_engine::SyncClient,
}

fn attached(server: &FakeServer) -> Device {
    let db = support::TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(server);
    client.attach(&conn, "user-1").unwrap();
    Device { db, conn, client }
}

fn users(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT id, name FROM users ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn checkpoint(conn: &rusqlite::Connection) -> i64 {
    support::scalar_i64(
        conn,
        "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
    )
}

/// Files in the database directory other than the database and its journals.
fn stray_files(db: &support::TestDb) -> Vec<String> {
    std::fs::read_dir(&db.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("app.db"))
        .collect()
}

#[test]
fn bundles_apply_whatever_the_member_order_and_leave_no_spool_file() {
    let first: Vec<Value> = (0..300)
        .map(|i| row(&format!("u{i:03}"), &format!("n{i}"), 1))
        .collect();
    let mut second = vec![row("u000", "renamed", 2)];
    second.push(json!({"schema": "main", "table": "users", "key": {"id": "u001"}, "op": "DELETE", "row_version": 2}));
    let body = page_text(&[bundle_text(1, &first), bundle_text(2, &second)], 2);
    let server = server_answering_pull(body);
    let mut d = attached(&server);

    let report = d.client.pull_to_stable(&d.conn).unwrap();

    assert_eq!(report.bundles_applied, 2);
    assert_eq!(checkpoint(&d.conn), 2);
    let rows = users(&d.conn);
    assert_eq!(rows.len(), 299);
    assert_eq!(rows[0], ("u000".to_string(), "renamed".to_string()));
    assert_eq!(rows[1], ("u002".to_string(), "n2".to_string()));
    assert_eq!(
        support::scalar_i64(&d.conn, "SELECT row_version FROM _sync_row_state WHERE key_json = '{\"id\":\"u001\"}' AND deleted = 1"),
        2
    );
    assert_eq!(
        support::scalar_i64(&d.conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        0
    );
    assert!(stray_files(&d.db).is_empty(), "{:?}", stray_files(&d.db));
}

#[test]
fn a_bundle_hash_mismatch_applies_nothing_of_the_page() {
    let good = bundle_text(1, &[row("a", "A", 1)]);
    let tampered = bundle_text(2, &[row("b", "B", 2)]).replace("\"name\":\"B\"", "\"name\":\"X\"");
    let server = server_answering_pull(page_text(&[good, tampered], 2));
    let mut d = attached(&server);

    let err = d.client.pull_to_stable(&d.conn).unwrap_err();

    assert_eq!(err.code(), "protocol_error", "{err}");
    assert!(err.to_string().contains("bundle 2 bundle_hash"), "{err}");
    assert!(users(&d.conn).is_empty(), "checked before any apply");
    assert_eq!(checkpoint(&d.conn), 0);
    assert!(stray_files(&d.db).is_empty());
}

#[test]
fn a_row_count_mismatch_is_refused() {
    let text = bundle_text(1, &[row("a", "A", 1)]).replace("\"row_count\":1", "\"row_count\":2");
    let server = server_answering_pull(page_text(&[text], 1));
    let mut d = attached(&server);

    let err = d.client.pull_to_stable(&d.conn).unwrap_err();

    assert!(
        err.to_string()
            .contains("bundle 1 row_count 2 does not match the 1 row received"),
        "{err}"
    );
    assert!(users(&d.conn).is_empty());
    assert_eq!(checkpoint(&d.conn), 0);
}

#[test]
fn a_row_that_fails_to_decode_rolls_back_only_its_own_bundle() {
    // Valid shape and hash, but the payload lacks a column: only the apply pass finds it.
    let bad = json!({"schema": "main", "table": "users", "key": {"id": "c"}, "op": "INSERT",
                     "row_version": 2, "payload": {"id": "c"}});
    let body = page_text(
        &[
            bundle_text(1, &[row("a", "A", 1)]),
            bundle_text(2, &[row("b", "B", 2), bad]),
        ],
        2,
    );
    let server = server_answering_pull(body);
    let mut d = attached(&server);

    let err = d.client.pull_to_stable(&d.conn).unwrap_err();

    assert!(
        err.to_string().contains("lacks NOT NULL column(s) name"),
        "{err}"
    );
    assert_eq!(users(&d.conn), vec![("a".to_string(), "A".to_string())]);
    assert_eq!(checkpoint(&d.conn), 1, "the first bundle stays applied");
    assert_eq!(
        support::scalar_i64(&d.conn, "SELECT COUNT(*) FROM _sync_row_state"),
        1
    );
    assert_eq!(
        support::scalar_i64(&d.conn, "SELECT apply_mode FROM _sync_apply_state"),
        0
    );
}

#[test]
fn a_truncated_page_is_a_protocol_error_and_applies_nothing() {
    let mut body = page_text(&[bundle_text(1, &[row("a", "A", 1)])], 1);
    body.truncate(body.len() - 20);
    let server = server_answering_pull(body);
    let mut d = attached(&server);

    let err = d.client.pull_to_stable(&d.conn).unwrap_err();

    assert!(
        err.to_string()
            .contains("pull request: malformed response body"),
        "{err}"
    );
    assert!(users(&d.conn).is_empty());
    assert!(stray_files(&d.db).is_empty());
}

#[test]
fn an_already_applied_version_is_left_alone() {
    // Same key twice in the page: the older version in bundle 2 must not win.
    let body = page_text(
        &[
            bundle_text(1, &[row("a", "new", 5)]),
            bundle_text(2, &[row("a", "old", 2)]),
        ],
        2,
    );
    let server = server_answering_pull(body);
    let mut d = attached(&server);

    d.client.pull_to_stable(&d.conn).unwrap();

    assert_eq!(users(&d.conn), vec![("a".to_string(), "new".to_string())]);
    assert_eq!(
        support::scalar_i64(&d.conn, "SELECT row_version FROM _sync_row_state"),
        5
    );
    assert_eq!(checkpoint(&d.conn), 2);
}

#[test]
fn error_responses_are_decoded_from_the_spooled_body() {
    let server = FakeServer::new(|_, req| match route(req).0 {
        "pull" => Some(ScriptedResponse::error(
            409,
            "scope_uninitialized",
            "not yet",
        )),
        _ => None,
    });
    let mut d = attached(&server);

    let err = d.client.pull_to_stable(&d.conn).unwrap_err();

    assert_eq!(err.http_status, Some(409));
    assert_eq!(err.server_code.as_deref(), Some("scope_uninitialized"));
}
