//! Engine behaviour beyond the shared fixtures: transaction refusal, the operation
//! lock, BLOB/UUID keys end to end, lease loss, the lost-seeding-commit hazard,
//! source recovery through a rotated rebuild, and conflict retry exhaustion.

mod support;

use std::sync::{Arc, Mutex};

use oversqlite_engine::remote::transport::ScriptedResponse;
use oversqlite_engine::{ClientWins, SyncClient};
use serde_json::{json, Value};
use support::fake_server::{route, FakeServer};

#[test]
fn operations_refuse_to_run_inside_the_callers_transaction() {
    let server = FakeServer::plain();
    let (_db, conn, mut client) = support::users_device(&server);
    client.attach(&conn, "user-1").unwrap();
    let sent = server.transport.requests().len();
    conn.execute_batch("BEGIN; INSERT INTO users(id, name) VALUES('u1', 'Ada');")
        .unwrap();
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "transaction_open"
    );
    assert_eq!(
        client.pull_to_stable(&conn).unwrap_err().code(),
        "transaction_open"
    );
    assert_eq!(client.sync(&conn).unwrap_err().code(), "transaction_open");
    assert_eq!(client.detach(&conn).unwrap_err().code(), "transaction_open");
    assert_eq!(
        server.transport.requests().len(),
        sent,
        "no request may be sent"
    );
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(client.push_pending(&conn).unwrap().row_count, 1);
}

#[test]
fn push_requires_attach_in_this_client() {
    let server = FakeServer::plain();
    let (_db, conn, mut client) = support::users_device(&server);
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "attach_required"
    );
    client.attach(&conn, "user-1").unwrap();
    let mut other = support::client_for(&server);
    assert_eq!(other.sync(&conn).unwrap_err().code(), "attach_required");
    assert_eq!(
        other.attach(&conn, "user-2").unwrap_err().code(),
        "attached_to_other_user"
    );
    assert_eq!(
        other.attach(&conn, " user-1 ").unwrap().outcome,
        oversqlite_engine::report::AttachOutcome::ResumedAttachedState
    );
    assert_eq!(
        other.attach(&conn, "  ").unwrap_err().code(),
        "invalid_argument"
    );
}

#[test]
fn a_second_operation_on_the_same_database_fails_fast_while_one_runs() {
    let db = support::TestDb::new();
    let path = db.path.clone();
    let inner: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let seen = inner.clone();
    let server = FakeServer::new(move |_, req| {
        if route(req).0 == "push_create" {
            // While this push holds the lock, another connection tries to sync.
            let other = rusqlite::Connection::open(&path).unwrap();
            let mut c = SyncClient::with_transport(Arc::new(
                oversqlite_engine::remote::transport::ScriptedTransport::new(|_| {
                    ScriptedResponse::ok(json!({}))
                }),
            ));
            let code = c.pull_to_stable(&other).unwrap_err().code().to_string();
            *seen.lock().unwrap() = Some(code);
        }
        None
    });
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    client.push_pending(&conn).unwrap();
    assert_eq!(inner.lock().unwrap().as_deref(), Some("sync_in_progress"));
}

#[test]
fn blob_uuid_keys_and_typed_columns_round_trip_on_the_wire() {
    let server = FakeServer::plain();
    let db = support::TestDb::new();
    let conn = db.connect();
    conn.execute_batch(
        "CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL, data BLOB, size INTEGER, ratio REAL);
         CREATE TABLE reviews (id BLOB PRIMARY KEY NOT NULL, file_id BLOB NOT NULL REFERENCES files(id), note TEXT);",
    )
    .unwrap();
    oversqlite_core::config::init(&conn, "https://sync.test", "business").unwrap();
    oversqlite_core::config::enable_sync(&conn, "files", &["id".into()]).unwrap();
    oversqlite_core::config::enable_sync(&conn, "reviews", &["id".into()]).unwrap();
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch(
        "INSERT INTO files VALUES (x'00112233445566778899aabbccddeeff', 'a.txt', x'deadbeef', 4, 1.0);
         INSERT INTO reviews VALUES (x'ffeeddccbbaa99887766554433221100', x'00112233445566778899aabbccddeeff', 'ok');",
    )
    .unwrap();
    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 2);
    let committed = server.with(|s| s.committed[0].rows.clone());
    let wire = serde_json::to_value(&committed).unwrap();
    assert_eq!(
        wire[0]["key"],
        json!({"id": "00112233-4455-6677-8899-aabbccddeeff"})
    );
    assert_eq!(
        wire[0]["payload"],
        json!({"id":"00112233-4455-6677-8899-aabbccddeeff","name":"a.txt","data":"3q2+7w==","size":4,"ratio":1})
    );
    assert_eq!(
        wire[1]["payload"]["file_id"],
        json!("00112233-4455-6677-8899-aabbccddeeff")
    );
    assert_eq!(support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_row_state WHERE key_json = '{\"id\":\"00112233445566778899aabbccddeeff\"}'"), 1);

    // A remote bundle with a UUID key lands as a 16-byte BLOB with decoded base64.
    server.with(|s| {
        let rows = serde_json::from_value(json!([{"schema":"business","table":"files","key":{"id":"0f0e0d0c-0b0a-0908-0706-050403020100"},"op":"INSERT","row_version":0,
            "payload":{"id":"0f0e0d0c-0b0a-0908-0706-050403020100","name":"b.bin","data":"AAE=","size":null,"ratio":2.5}}])).unwrap();
        s.commit_rows("remote-source", 1, rows);
    });
    client.pull_to_stable(&conn).unwrap();
    let (len, data, ratio): (i64, String, f64) = conn
        .query_row(
            "SELECT length(id), hex(data), ratio FROM files WHERE name = 'b.bin'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((len, data.as_str(), ratio), (16, "0001", 2.5));

    // A malformed UUID from the server changes nothing.
    server.with(|s| {
        let rows = serde_json::from_value(json!([{"schema":"business","table":"files","key":{"id":"NOT-A-UUID"},"op":"DELETE","row_version":0}])).unwrap();
        s.commit_rows("remote-source", 2, rows);
    });
    let before = support::dump_state(&conn);
    assert_eq!(
        client.pull_to_stable(&conn).unwrap_err().code(),
        "protocol_error"
    );
    assert_eq!(support::dump_state(&conn), before);
}

#[test]
fn losing_the_initialisation_lease_resets_the_binding_and_keeps_local_rows() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "push_create")
            .then(|| ScriptedResponse::error(409, "initialization_stale", "lease lost"))
    });
    let (_db, conn, mut client) = support::users_device(&server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let attach = client.attach(&conn, "user-1").unwrap();
    assert_eq!(
        attach.outcome,
        oversqlite_engine::report::AttachOutcome::SeededFromLocal
    );
    let create = server.transport.requests();
    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(err.code(), "initialization_lease_invalid");
    let sent = server.transport.requests();
    assert_eq!(sent.len(), create.len() + 1);
    assert_eq!(
        sent.last().unwrap().body_json().unwrap()["initialization_id"],
        json!("init-connect")
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT binding_state FROM _sync_attachment_state"),
        "anonymous"
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
        1
    );
    assert_eq!(client.connected_user(), None);
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "attach_required"
    );
}

#[test]
fn a_lost_seeding_commit_response_is_recovered_without_the_lease_id() {
    let mut failed_commit = false;
    let server = FakeServer::new(move |st, req| match route(req).0 {
        "push_commit" if !failed_commit => {
            failed_commit = true;
            // Commit happens on the server, but the response is lost.
            let (_, id) = route(req);
            let s = st.sessions.remove(&id).unwrap();
            let rows = s
                .rows
                .into_iter()
                .map(|r| oversqlite_protocol::BundleRow {
                    schema: r.schema,
                    table: r.table,
                    key: r.key,
                    op: r.op,
                    row_version: 0,
                    payload: r.payload,
                })
                .collect();
            st.commit_rows(&s.source_id, s.source_bundle_id, rows);
            Some(ScriptedResponse::Fail("connection reset".into()))
        }
        "push_create"
            if req.body_json().unwrap().get("initialization_id").is_some()
                && !st.committed.is_empty() =>
        {
            Some(ScriptedResponse::error(
                400,
                "push_session_invalid",
                "initialization_id must not be sent after the scope is initialized",
            ))
        }
        _ => None,
    });
    let (_db, conn, mut client) = support::users_device(&server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    client.attach(&conn, "user-1").unwrap();
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "network_error"
    );
    let r = client.push_pending(&conn).unwrap();
    assert_eq!(r.bundle_seq, Some(1));
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT pending_initialization_id FROM _sync_attachment_state"
        ),
        ""
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
        0
    );
}

#[test]
fn source_recovery_rotates_and_uploads_the_preserved_outbox_as_bundle_one() {
    let mut refused = false;
    let server = FakeServer::new(move |st, req| {
        if route(req).0 == "push_create" && !refused {
            refused = true;
            st.create_requests.push(req.body_json().unwrap());
            return Some(ScriptedResponse::error(
                409,
                "history_pruned",
                "source bundle below floor",
            ));
        }
        None
    });
    let (_db, conn, mut client) = support::users_device(&server);
    client.attach(&conn, "user-1").unwrap();
    let old = support::scalar_text(
        &conn,
        "SELECT current_source_id FROM _sync_attachment_state",
    );
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "source_recovery_required"
    );
    let info = client.source_info(&conn).unwrap();
    assert!(info.source_recovery_required && info.rebuild_required);
    assert_eq!(
        info.source_recovery_reason.as_deref(),
        Some("history_pruned")
    );
    // Writes are blocked while recovering; push keeps failing.
    assert!(conn
        .execute("INSERT INTO users(id, name) VALUES('u2', 'Bob')", [])
        .unwrap_err()
        .to_string()
        .contains("SYNC_TRANSITION_PENDING"));
    assert_eq!(
        client.sync(&conn).unwrap_err().code(),
        "source_recovery_required"
    );

    let rebuilt = client.rebuild(&conn).unwrap();
    assert_eq!(
        rebuilt.outcome,
        oversqlite_engine::report::RemoteOutcome::AppliedSnapshot
    );
    let new = support::scalar_text(
        &conn,
        "SELECT current_source_id FROM _sync_attachment_state",
    );
    assert_ne!(new, old);
    let body = server.with(|s| s.snapshot_creates.last().cloned().unwrap());
    assert_eq!(body["source_replacement"]["previous_source_id"], json!(old));
    assert_eq!(body["source_replacement"]["new_source_id"], json!(new));
    // The frozen local row stays visible after the rotation (DECISIONS.md §12 #7).
    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([{"id":"u1","name":"Ada"}])
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "prepared"
    );

    client.push_pending(&conn).unwrap();
    let last = server.with(|s| s.create_requests.last().cloned().unwrap());
    assert_eq!(last["source_bundle_id"], json!(1));
    assert_eq!(
        server
            .transport
            .requests()
            .iter()
            .rfind(|r| route(r).0 == "push_create")
            .unwrap()
            .header("Oversync-Source-ID"),
        Some(new.as_str())
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            &format!(
                "SELECT next_source_bundle_id FROM _sync_source_state WHERE source_id = '{new}'"
            )
        ),
        2
    );
    assert_eq!(
        support::scalar_text(
            &conn,
            &format!(
                "SELECT replaced_by_source_id FROM _sync_source_state WHERE source_id = '{old}'"
            )
        ),
        new
    );
}

#[test]
fn conflicts_that_keep_coming_back_exhaust_the_retry_budget() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "push_commit").then(|| {
            ScriptedResponse::Json(409, json!({"error":"push_conflict","message":"conflict","conflict":{"schema":"main","table":"users","key":{"id":"u1"},
                "op":"INSERT","base_row_version":0,"server_row_version":9,"server_row_deleted":false,"server_row":{"id":"u1","name":"Server"}}}))
        })
    });
    let (_db, conn, mut client) = support::users_device(&server);
    client.set_resolver(Arc::new(ClientWins));
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Local')", [])
        .unwrap();
    assert_eq!(
        client.push_pending(&conn).unwrap_err().code(),
        "push_conflict_retry_exhausted"
    );
    assert_eq!(
        server
            .transport
            .requests()
            .iter()
            .filter(|r| route(r).0 == "push_commit")
            .count(),
        3
    );
    // The local intent survives, rebased on the server version.
    assert_eq!(
        support::app_rows(&conn, "users"),
        json!([{"id":"u1","name":"Local"}])
    );
    let (op, base): (String, i64) = conn
        .query_row(
            "SELECT op, base_row_version FROM _sync_dirty_rows",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((op.as_str(), base), ("UPDATE", 9));
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "none"
    );
}

#[test]
fn reports_serialise_to_snake_case_json() {
    let server = FakeServer::plain();
    let (_db, conn, mut client) = support::users_device(&server);
    let attach: Value = serde_json::to_value(client.attach(&conn, "user-1").unwrap()).unwrap();
    assert_eq!(attach["outcome"], json!("started_empty"));
    assert_eq!(attach["status"]["authority"], json!("authoritative_empty"));
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let sync: Value = serde_json::to_value(client.sync(&conn).unwrap()).unwrap();
    assert_eq!(sync["push_outcome"], json!("committed"));
    assert_eq!(sync["remote_outcome"], json!("already_at_target"));
    assert_eq!(sync["changed_tables"], json!(["users"]));
    assert_eq!(
        sync["status"]["authority"],
        json!("authoritative_materialized")
    );
    let status: Value = serde_json::to_value(client.status(&conn).unwrap()).unwrap();
    assert_eq!(status["pending"]["pending_row_count"], json!(0));
}

#[test]
fn server_bundle_limits_clamp_chunk_and_page_sizes() {
    let server = FakeServer::plain();
    server.with(|s| {
        s.capabilities = json!({"protocol_version":"v1","schema_version":1,"features":{"connect_lifecycle":true},
            "bundle_limits":{"max_rows_per_push_chunk":2,"max_bundles_per_pull":25}});
    });
    let (_db, conn, mut client) = support::users_device(&server);
    client.attach(&conn, "user-1").unwrap();
    for i in 0..5 {
        conn.execute(
            "INSERT INTO users(id, name) VALUES(?1, 'x')",
            [format!("u{i}")],
        )
        .unwrap();
    }
    client.sync(&conn).unwrap();
    let reqs = server.transport.requests();
    let starts: Vec<i64> = reqs
        .iter()
        .filter(|r| route(r).0 == "push_chunk")
        .map(|r| {
            r.body_json().unwrap()["start_row_ordinal"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(starts, vec![0, 2, 4]);
    assert_eq!(
        reqs.iter()
            .find(|r| route(r).0 == "pull")
            .unwrap()
            .query("max_bundles")
            .as_deref(),
        Some("25")
    );
}

/// Every request of a push may fail (a network error, or the response lost after
/// the server acted). Pushing again must converge: exactly one committed bundle on
/// the server, nothing pending locally, no duplicate rows.
#[test]
fn push_converges_after_a_failure_at_any_request() {
    for fail_at in 1..=4 {
        for lose_response in [false, true] {
            let mut n = 0;
            let server = FakeServer::new(move |st, req| {
                let name = route(req).0;
                if name == "capabilities" || name == "connect" {
                    return None;
                }
                n += 1;
                if n != fail_at {
                    return None;
                }
                if lose_response {
                    let _ = support::fake_server::default_route(st, req);
                }
                Some(ScriptedResponse::Fail(format!(
                    "injected failure at request {fail_at}"
                )))
            });
            let (_db, conn, mut client) = support::users_device(&server);
            client.attach(&conn, "user-1").unwrap();
            conn.execute_batch("INSERT INTO users VALUES ('u1','Ada'); INSERT INTO users VALUES ('u2','Bob'); INSERT INTO users VALUES ('u3','Cy');").unwrap();
            let mut attempts = 0;
            while client.push_pending(&conn).is_err() {
                attempts += 1;
                assert!(
                    attempts < 4,
                    "fail_at {fail_at} lose {lose_response}: push never converged"
                );
            }
            let label = format!("fail_at {fail_at} lose_response {lose_response}");
            let (bundles, rows) = server.with(|s| {
                (
                    s.committed.len(),
                    s.committed.iter().map(|c| c.rows.len()).sum::<usize>(),
                )
            });
            assert_eq!((bundles, rows), (1, 3), "{label}");
            assert_eq!(
                support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows")
                    + support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
                0,
                "{label}"
            );
            assert_eq!(
                support::scalar_i64(
                    &conn,
                    "SELECT COUNT(*) FROM _sync_row_state WHERE row_version = 1 AND deleted = 0"
                ),
                3,
                "{label}"
            );
            assert_eq!(
                support::scalar_i64(
                    &conn,
                    "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
                ),
                1,
                "{label}"
            );
            assert_eq!(
                support::scalar_i64(&conn, "SELECT apply_mode FROM _sync_apply_state"),
                0,
                "{label}"
            );
        }
    }
}

#[test]
fn a_seed_that_cancelled_out_finishes_the_initialisation_empty() {
    let server = FakeServer::plain();
    let (_db, conn, mut client) = support::users_device(&server);
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    assert_eq!(
        client.attach(&conn, "user-1").unwrap().outcome,
        oversqlite_engine::report::AttachOutcome::SeededFromLocal
    );
    conn.execute("DELETE FROM users WHERE id = 'u1'", [])
        .unwrap();
    let r = client.push_pending(&conn).unwrap();
    assert_eq!(r.outcome, oversqlite_engine::report::PushOutcome::NoChange);
    let connects: Vec<Value> = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "connect")
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(
        connects,
        vec![
            json!({"has_local_pending_rows": true}),
            json!({"has_local_pending_rows": false})
        ]
    );
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT pending_initialization_id FROM _sync_attachment_state"
        ),
        ""
    );
    assert_eq!(
        serde_json::to_value(r.status).unwrap()["authority"],
        json!("authoritative_empty")
    );
}

#[test]
fn a_bundle_the_server_refuses_forever_can_be_discarded_by_a_forced_detach() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "push_commit")
            .then(|| ScriptedResponse::error(400, "push_commit_invalid", "foreign key violation"))
    });
    let (_db, conn, mut client) = support::users_device(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let e = client.push_pending(&conn).unwrap_err();
    assert_eq!(
        (e.code(), e.server_code.as_deref()),
        ("push_commit_refused", Some("push_commit_invalid"))
    );
    // The refused bundle is back among the local changes, nothing was committed.
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        1
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
        0
    );
    // sync() pulls beside it, finds nothing that explains the refusal, and says so
    // (once: no endless retry), naming the bundle and the way out.
    let e = client.sync(&conn).unwrap_err();
    assert_eq!(e.code(), "push_commit_refused");
    assert!(
        e.message.contains("source bundle 1 (rows: users 1)"),
        "{}",
        e.message
    );
    assert!(e.message.contains("no foreign-key race"), "{}", e.message);
    assert!(e.message.contains("discard_local_changes"), "{}", e.message);
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        1
    );
    assert_eq!(
        client.detach(&conn).unwrap().outcome,
        oversqlite_engine::report::DetachOutcome::BlockedUnsyncedData
    );
    let old = support::scalar_text(
        &conn,
        "SELECT current_source_id FROM _sync_attachment_state",
    );
    let r = client.detach_discarding_local_changes(&conn).unwrap();
    assert_eq!(
        r.outcome,
        oversqlite_engine::report::DetachOutcome::Detached
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM users")
            + support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_outbox_rows")
            + support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        0
    );
    assert_ne!(
        support::scalar_text(
            &conn,
            "SELECT current_source_id FROM _sync_attachment_state"
        ),
        old
    );
}

#[test]
fn reports_serialise_and_sql_error_text() {
    let server = FakeServer::plain();
    let (_db, conn, mut client) = support::users_device(&server);
    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(
        err.sql_message("oversqlite_push_pending"),
        format!("oversqlite_push_pending: attach_required: {}", err.message)
    );
    let attach: Value = serde_json::to_value(client.attach(&conn, "user-1").unwrap()).unwrap();
    assert_eq!(attach["outcome"], json!("started_empty"));
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let sync: Value = serde_json::to_value(client.sync(&conn).unwrap()).unwrap();
    assert_eq!(sync["push_outcome"], json!("committed"));
    let info: Value = serde_json::to_value(client.source_info(&conn).unwrap()).unwrap();
    assert_eq!(info["source_recovery_required"], json!(false));
    assert!(oversqlite_engine::conflict::resolver_by_name("Client_Wins").is_some());
    assert!(oversqlite_engine::conflict::resolver_by_name("newest").is_none());
}

#[test]
fn operations_can_wait_for_a_lock_held_by_another_process() {
    let server = FakeServer::plain();
    let (db, conn, mut client) = support::users_device(&server);
    client.attach(&conn, "user-1").unwrap();
    // Another process holds the operation lock for a moment.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{}-oversqlite.lock", db.path.display()))
        .unwrap();
    lock.try_lock().unwrap();
    assert_eq!(
        client.pull_to_stable(&conn).unwrap_err().code(),
        "sync_in_progress"
    );
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(150));
        drop(lock);
    });
    client.settings.lock_wait = std::time::Duration::from_secs(5);
    client.pull_to_stable(&conn).unwrap();
    releaser.join().unwrap();
}
