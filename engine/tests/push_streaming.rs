//! The streaming push path: a bundle spread over several upload chunks and
//! committed-rows pages, writes made by the app while the push is in flight, a server
//! that commits values other than the uploaded ones or per-row versions, tables whose
//! values do not round-trip exactly, and a bundle hash mismatch that must change nothing.

mod support;

use oversqlite_protocol::{bundle_hash, BundleRow, PushChunkRequest};
use rusqlite::Connection;
use serde_json::{json, Value};
use support::fake_server::{meta_json, route, FakeServer, FakeState};
use support::TestDb;

fn users_db(db: &TestDb) -> Connection {
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    conn
}

fn insert_users(conn: &Connection, n: usize) {
    for i in 0..n {
        conn.execute(
            "INSERT INTO users(id, name) VALUES (?1, ?2)",
            [format!("u{i}"), format!("User {i}")],
        )
        .unwrap();
    }
}

fn q(conn: &Connection, sql: &str) -> i64 {
    support::scalar_i64(conn, sql)
}

fn row_versions(conn: &Connection) -> Vec<(String, i64, i64)> {
    conn.prepare("SELECT key_json, row_version, deleted FROM _sync_row_state ORDER BY key_json")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn dirty(conn: &Connection) -> Vec<(String, String, i64, Option<String>)> {
    conn.prepare(
        "SELECT key_json, op, base_row_version, payload FROM _sync_dirty_rows ORDER BY key_json",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Commits the staged session itself, letting `edit` change the committed rows.
fn commit_with(
    st: &mut FakeState,
    push_id: &str,
    edit: impl FnOnce(i64, &mut Vec<BundleRow>),
) -> oversqlite_engine::remote::transport::ScriptedResponse {
    let session = st.sessions.remove(push_id).expect("staged session");
    let seq = st.next_bundle_seq;
    st.next_bundle_seq += 1;
    let mut rows: Vec<BundleRow> = session
        .rows
        .into_iter()
        .map(|r| BundleRow {
            schema: r.schema,
            table: r.table,
            key: r.key,
            op: r.op,
            row_version: seq,
            payload: r.payload,
        })
        .collect();
    edit(seq, &mut rows);
    let c = support::fake_server::Committed {
        seq,
        source_id: session.source_id,
        source_bundle_id: session.source_bundle_id,
        hash: bundle_hash(&rows),
        rows,
    };
    st.committed.push(c.clone());
    oversqlite_engine::remote::transport::ScriptedResponse::ok(meta_json(&c))
}

#[test]
fn a_bundle_over_many_chunks_and_pages_keeps_writes_made_during_the_push() {
    let db = TestDb::new();
    let path = db.path.clone();
    let chunk_sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = chunk_sizes.clone();
    let mut edited = false;
    let server = FakeServer::new(move |_st, req| {
        match route(req).0 {
            "push_chunk" => {
                let body: PushChunkRequest =
                    serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
                seen.lock()
                    .unwrap()
                    .push((body.start_row_ordinal, body.rows.len()));
            }
            "push_commit" if !edited => {
                edited = true;
                // The app writes through its own connection while the push is in
                // flight: after the freeze, before the replay.
                let app = Connection::open(&path).unwrap();
                app.execute_batch(
                    "UPDATE users SET name = 'Later' WHERE id = 'u2';
                     DELETE FROM users WHERE id = 'u3';
                     INSERT INTO users(id, name) VALUES ('u9', 'New');",
                )
                .unwrap();
            }
            _ => {}
        }
        None
    });
    let conn = users_db(&db);
    let mut client = support::client_for(&server);
    client.settings.upload_chunk_rows = 3;
    client.settings.committed_rows_page = 2;
    client.attach(&conn, "user-1").unwrap();
    insert_users(&conn, 7);

    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 7);
    assert_eq!(
        *chunk_sizes.lock().unwrap(),
        vec![(0, 3), (3, 3), (6, 1)],
        "chunks start at the count of rows already sent"
    );
    assert_eq!(
        server.with(|s| s.committed_fetches),
        4,
        "7 rows at 2 per page"
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "none"
    );
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"), 0);
    // Every uploaded row is recorded at the committed version, live or not.
    let versions = row_versions(&conn);
    assert_eq!(versions.len(), 7);
    assert!(versions.iter().all(|(_, v, d)| *v == 1 && *d == 0));
    // The in-flight writes stay local intent, rebased on the committed version; the
    // insert of an unsynced key keeps its own capture.
    assert_eq!(
        dirty(&conn),
        vec![
            (
                r#"{"id":"u2"}"#.into(),
                "UPDATE".into(),
                1,
                Some(r#"{"id":"u2","name":"Later"}"#.into())
            ),
            (r#"{"id":"u3"}"#.into(), "DELETE".into(), 1, None),
            (
                r#"{"id":"u9"}"#.into(),
                "INSERT".into(),
                0,
                Some(r#"{"id":"u9","name":"New"}"#.into())
            ),
        ]
    );
    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([
            {"id":"u0","name":"User 0"}, {"id":"u1","name":"User 1"}, {"id":"u2","name":"Later"},
            {"id":"u4","name":"User 4"}, {"id":"u5","name":"User 5"}, {"id":"u6","name":"User 6"},
            {"id":"u9","name":"New"}
        ])
    );

    // The next push uploads exactly the kept intent, with the rebased bases.
    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 3);
    let pushed: Vec<(String, String, i64)> = server.with(|s| {
        s.committed[1]
            .rows
            .iter()
            .map(|r| {
                (
                    r.key["id"].clone(),
                    r.op.as_str().to_string(),
                    r.row_version,
                )
            })
            .collect()
    });
    assert_eq!(
        pushed,
        vec![
            ("u2".into(), "UPDATE".into(), 2),
            ("u9".into(), "INSERT".into(), 2),
            ("u3".into(), "DELETE".into(), 2)
        ]
    );
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"), 0);
}

#[test]
fn values_the_server_committed_differently_are_applied_with_per_row_versions() {
    let server = FakeServer::new(|st, req| {
        let (name, id) = route(req);
        (name == "push_commit").then(|| {
            commit_with(st, &id, |seq, rows| {
                // A normalising server, and versions that differ per row.
                rows[1].payload.as_mut().unwrap()["name"] = json!("Normalised");
                rows[3].row_version = seq + 5;
            })
        })
    });
    let db = TestDb::new();
    let conn = users_db(&db);
    let mut client = support::client_for(&server);
    client.settings.committed_rows_page = 3;
    client.attach(&conn, "user-1").unwrap();
    insert_users(&conn, 5);
    client.push_pending(&conn).unwrap();

    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([
            {"id":"u0","name":"User 0"}, {"id":"u1","name":"Normalised"}, {"id":"u2","name":"User 2"},
            {"id":"u3","name":"User 3"}, {"id":"u4","name":"User 4"}
        ])
    );
    let versions: Vec<i64> = row_versions(&conn).into_iter().map(|r| r.1).collect();
    assert_eq!(versions, vec![1, 1, 1, 6, 1]);
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"), 0);
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"), 0);
}

#[test]
fn a_bundle_hash_mismatch_on_the_last_page_changes_nothing() {
    let server = FakeServer::plain();
    server.with(|s| s.commit_hash_override = Some("0".repeat(64)));
    let db = TestDb::new();
    let conn = users_db(&db);
    let mut client = support::client_for(&server);
    client.settings.committed_rows_page = 2;
    client.attach(&conn, "user-1").unwrap();
    insert_users(&conn, 5);
    let before = support::app_rows(&conn, "users");

    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(err.code(), "protocol_error");
    assert!(err.message.contains("bundle hash mismatch"), "{err:?}");
    assert_eq!(
        server.with(|s| s.committed_fetches),
        3,
        "every page was read"
    );
    // The commit is recorded (the server said so), but nothing was replayed.
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "committed_remote"
    );
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"), 5);
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_row_state"), 0);
    assert_eq!(
        q(
            &conn,
            "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
        ),
        0
    );
    assert_eq!(support::app_rows(&conn, "users"), before);
}

#[test]
fn tables_with_real_and_blob_columns_replay_every_row() {
    let server = FakeServer::plain();
    let db = TestDb::new();
    let conn = db.create("typed-rows", &[("typed_rows".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.settings.upload_chunk_rows = 2;
    client.settings.committed_rows_page = 2;
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch(
        "INSERT INTO typed_rows VALUES ('a', 'A', NULL, 7, 1, 0.5, x'deadbeef', '2026-01-01T00:00:00Z');
         INSERT INTO typed_rows VALUES ('b', 'B', 'n', NULL, 0, 2.0, NULL, NULL);
         INSERT INTO typed_rows VALUES ('c', 'C', NULL, -3, 1, NULL, x'00', NULL);",
    )
    .unwrap();
    let before = support::app_rows(&conn, "typed_rows");
    client.push_pending(&conn).unwrap();

    let wire: Vec<Value> = server.with(|s| {
        s.committed[0]
            .rows
            .iter()
            .map(|r| serde_json::to_value(&r.payload).unwrap())
            .collect()
    });
    assert_eq!(wire[0]["data"], json!("3q2+7w=="));
    assert_eq!(wire[1]["rating"], json!(2));
    assert_eq!(support::app_rows(&conn, "typed_rows"), before);
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT group_concat(typeof(rating) || '/' || typeof(data), ',') FROM (SELECT * FROM typed_rows ORDER BY id)"
        ),
        "real/blob,real/null,null/blob",
        "the replay wrote the committed values back with their storage classes"
    );
    assert_eq!(
        q(
            &conn,
            "SELECT COUNT(*) FROM _sync_row_state WHERE row_version = 1"
        ),
        3
    );
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"), 0);
}

#[test]
fn chunk_bodies_carry_exact_values() {
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = bodies.clone();
    let server = FakeServer::new(move |_st, req| {
        if route(req).0 == "push_chunk" {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(req.body.as_ref().unwrap()).unwrap());
        }
        None
    });
    let db = TestDb::new();
    let conn = db.create("typed-rows", &[("typed_rows".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch(
        "INSERT INTO typed_rows VALUES ('big', 'R&D <ops> \"q\" é', NULL, 9007199254740993, 1, 0.1, x'00ff', NULL);
         INSERT INTO typed_rows VALUES ('gone', 'G', NULL, NULL, 0, NULL, NULL, NULL);",
    )
    .unwrap();
    client.push_pending(&conn).unwrap();
    conn.execute("DELETE FROM typed_rows WHERE id = 'gone'", [])
        .unwrap();
    client.push_pending(&conn).unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let first = &bodies[0];
    assert_eq!(first["start_row_ordinal"], json!(0));
    let big = &first["rows"][0];
    assert_eq!(big["schema"], json!("main"));
    assert_eq!(big["table"], json!("typed_rows"));
    assert_eq!(big["key"], json!({"id": "big"}));
    assert_eq!(big["op"], json!("INSERT"));
    assert_eq!(big["base_row_version"], json!(0));
    let payload = &big["payload"];
    assert_eq!(payload["count_value"].as_i64(), Some(9007199254740993));
    assert_eq!(payload["name"], json!("R&D <ops> \"q\" é"));
    assert_eq!(payload["rating"], json!(0.1));
    assert_eq!(payload["data"], json!("AP8="));
    assert_eq!(payload["note"], Value::Null);
    // A DELETE carries no payload member at all (the reference server refuses null).
    let delete = &bodies[1]["rows"][0];
    assert_eq!(delete["op"], json!("DELETE"));
    assert_eq!(delete["base_row_version"], json!(1));
    assert!(delete.get("payload").is_none(), "{delete}");
    // The exact integer reached the committed bundle and came back unchanged.
    assert_eq!(
        q(&conn, "SELECT count_value FROM typed_rows WHERE id = 'big'"),
        9007199254740993
    );
}

/// An integer above 2^53 that the server stores through a double (as a `double
/// precision` column or a float64 JSON decode would) comes back rounded. The stored
/// canonical wire text was rounded the same way, so "committed equals uploaded text"
/// proves nothing here: the replay must write the committed value, or the device keeps
/// a value the server never had, with no dirty row left to repair it.
#[test]
fn a_big_integer_the_server_rounds_is_followed_locally() {
    for (server_value, expected) in [
        (json!(9007199254740992i64), 9007199254740992i64),
        (json!(9007199254740993i64), 9007199254740993i64),
    ] {
        let server = FakeServer::new(move |st, req| {
            let (name, id) = route(req);
            let value = server_value.clone();
            (name == "push_commit").then(|| {
                commit_with(st, &id, move |_, rows| {
                    rows[0].payload.as_mut().unwrap()["n"] = value;
                })
            })
        });
        let db = TestDb::new();
        let conn = db.create("counters", &[("counters".into(), "id".into())], "main");
        support::open(&conn);
        let mut client = support::client_for(&server);
        client.attach(&conn, "user-1").unwrap();
        conn.execute("INSERT INTO counters VALUES ('a', 9007199254740993)", [])
            .unwrap();

        client.push_pending(&conn).unwrap();

        let local = support::scalar_i64(&conn, "SELECT n FROM counters WHERE id = 'a'");
        assert_eq!(
            local, expected,
            "server kept {expected}, device has {local}"
        );
        assert_eq!(
            support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
            0
        );
    }
}

/// The chunk bodies are written by hand for speed (stored canonical texts are copied,
/// not re-serialised); this pins that they are exactly the protocol's
/// `PushChunkRequest`: every body decodes into the typed request, with no member
/// missing or extra, and serde's own rendering of it is the same JSON value. Rows
/// cover INSERT, UPDATE and DELETE, NULLs, REAL, BLOB (base64), a big integer and text
/// needing escapes.
#[test]
fn chunk_bodies_are_exactly_the_protocol_push_chunk_request() {
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = bodies.clone();
    let server = FakeServer::new(move |_st, req| {
        if route(req).0 == "push_chunk" {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(req.body.as_ref().unwrap()).unwrap());
        }
        None
    });
    let db = TestDb::new();
    let conn = db.create("typed-rows", &[("typed_rows".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.settings.upload_chunk_rows = 2;
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch(
        "INSERT INTO typed_rows VALUES ('a', 'A \"q\" \\ </x>', NULL, 9007199254740993, 1, 0.1, x'deadbeef', '2026-01-01T00:00:00Z');
         INSERT INTO typed_rows VALUES ('b', 'B', 'n', NULL, 0, 2.0, NULL, NULL);",
    )
    .unwrap();
    client.push_pending(&conn).unwrap();
    conn.execute_batch(
        "UPDATE typed_rows SET note = 'é\u{2028}' WHERE id = 'a';
         DELETE FROM typed_rows WHERE id = 'b';
         INSERT INTO typed_rows VALUES ('c', 'C', NULL, -3, 1, NULL, x'00', NULL);",
    )
    .unwrap();
    client.push_pending(&conn).unwrap();

    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "two chunks, then one");
    let mut ops = Vec::new();
    for body in &bodies {
        let typed: oversqlite_protocol::PushChunkRequest =
            serde_json::from_value(body.clone()).expect("a PushChunkRequest");
        assert_eq!(&serde_json::to_value(&typed).unwrap(), body);
        ops.extend(typed.rows.iter().map(|r| r.op.as_str().to_string()));
    }
    ops.sort();
    assert_eq!(ops, ["DELETE", "INSERT", "INSERT", "INSERT", "UPDATE"]);
}

/// A server that answers `413` to a chunk of more than 3 rows (oversqlite-server's
/// per-route body limit, met by rows with large blobs): the push sends that chunk again
/// as smaller ones, from its first row, and commits every row once; a single row over
/// the limit fails the push naming the 413, with the rows kept.
#[test]
fn a_chunk_too_large_for_the_server_is_sent_again_in_halves() {
    let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, usize)>::new()));
    let seen = sizes.clone();
    let max_rows = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(3));
    let limit = max_rows.clone();
    let server = FakeServer::new(move |_st, req| {
        if route(req).0 != "push_chunk" {
            return None;
        }
        let body: Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        let rows = body["rows"].as_array().unwrap().len();
        seen.lock()
            .unwrap()
            .push((body["start_row_ordinal"].as_i64().unwrap(), rows));
        (rows > limit.load(std::sync::atomic::Ordering::SeqCst)).then(|| {
            oversqlite_engine::remote::transport::ScriptedResponse::error(
                413,
                "request_body_too_large",
                "request body exceeds this route's limit",
            )
        })
    });
    let db = TestDb::new();
    let conn = users_db(&db);
    let mut client = support::client_for(&server);
    client.settings.upload_chunk_rows = 10;
    client.attach(&conn, "user-1").unwrap();
    insert_users(&conn, 12);

    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 12);
    assert_eq!(q(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"), 0);
    assert_eq!(
        q(
            &conn,
            "SELECT COUNT(*) FROM _sync_row_state WHERE row_version > 0"
        ),
        12
    );
    // 10 refused, then 5 refused, then chunks of 2 from ordinal 0 on.
    assert_eq!(
        *sizes.lock().unwrap(),
        vec![
            (0, 10),
            (0, 5),
            (0, 2),
            (2, 2),
            (4, 2),
            (6, 2),
            (8, 2),
            (10, 2)
        ]
    );

    // One row over the limit: nothing to halve, the push fails and keeps the row.
    max_rows.store(0, std::sync::atomic::Ordering::SeqCst);
    insert_users_from(&conn, 100, 1);
    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(err.http_status, Some(413), "{err}");
    assert!(err.message.contains("make the row smaller"), "{err}");
    assert_eq!(
        q(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows")
            + q(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
        1
    );
}

fn insert_users_from(conn: &Connection, first: usize, n: usize) {
    for i in first..first + n {
        conn.execute(
            "INSERT INTO users(id, name) VALUES (?1, ?2)",
            [format!("u{i}"), format!("User {i}")],
        )
        .unwrap();
    }
}
