//! Snapshot rebuild downloads chunks one ahead of staging (DECISIONS.md, "Streaming
//! hydrate"): large snapshots arrive complete and in order, the requested chunk size
//! follows the setting, and a failed chunk stops the download and changes nothing.

mod support;

use std::sync::{Arc, Mutex};

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::{json, Value};
use support::fake_server::{qi64, route, FakeServer};

const ROWS: i64 = 12_345;

fn snapshot_row(i: i64) -> Value {
    let id = format!("u{i:05}");
    json!({"schema": "main", "table": "users", "key": {"id": id}, "row_version": 7,
           "payload": {"id": id, "name": format!("name {i}")}})
}

/// A server holding a `ROWS`-row snapshot, capping `max_rows` at 5000 like the
/// reference; `fail_after` makes the chunk at that `after_row_ordinal` a 410.
fn snapshot_server(fail_after: Option<i64>, asked: Arc<Mutex<Vec<(i64, i64)>>>) -> FakeServer {
    FakeServer::new(move |_, req| match route(req).0 {
        "snapshot_create" => Some(ScriptedResponse::ok(json!({
            "snapshot_id": "snap-1", "snapshot_bundle_seq": 9, "row_count": ROWS,
            "byte_count": 1, "expires_at": "2099-01-01T00:00:00Z"}))),
        "snapshot_chunk" => {
            let after = qi64(req, "after_row_ordinal").unwrap_or(0);
            let max = qi64(req, "max_rows").unwrap_or(1000);
            asked.lock().unwrap().push((after, max));
            if fail_after == Some(after) {
                return Some(ScriptedResponse::error(
                    410,
                    "snapshot_session_expired",
                    "gone",
                ));
            }
            let end = (after + max.min(5000)).min(ROWS);
            let rows: Vec<Value> = (after..end).map(snapshot_row).collect();
            Some(ScriptedResponse::ok(json!({
                "snapshot_id": "snap-1", "snapshot_bundle_seq": 9, "rows": rows,
                "next_row_ordinal": end, "has_more": end < ROWS})))
        }
        "snapshot_delete" => Some(ScriptedResponse::Json(204, Value::Null)),
        _ => None,
    })
}

#[test]
fn a_large_snapshot_is_staged_in_big_chunks_and_applied_whole() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let server = snapshot_server(None, asked.clone());
    let (_db, conn, mut client) = support::attached_users_device(&server);

    let report = client.rebuild(&conn).unwrap();

    assert_eq!(report.restore.unwrap().row_count, ROWS);
    assert_eq!(
        *asked.lock().unwrap(),
        vec![(0, 5000), (5000, 5000), (10000, 5000)]
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM users"),
        ROWS
    );
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'u12344'"),
        "name 12344"
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT COUNT(*) FROM _sync_row_state WHERE row_version = 7 AND deleted = 0 AND schema_name = 'main' AND table_name = 'users'"
        ),
        ROWS
    );
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT key_json FROM _sync_row_state ORDER BY key_json LIMIT 1"
        ),
        "{\"id\":\"u00000\"}"
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM _sync_snapshot_stage"),
        0
    );
    assert_eq!(
        support::scalar_i64(
            &conn,
            "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
        ),
        9
    );
}

#[test]
fn a_failed_chunk_stops_the_download_and_changes_nothing() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let server = snapshot_server(Some(5000), asked.clone());
    let (_db, conn, mut client) = support::attached_users_device(&server);
    support::apply_mode_sql(
        &conn,
        &["INSERT INTO users(id, name) VALUES ('keep', 'me')".to_string()],
    )
    .unwrap();

    let err = client.rebuild(&conn).unwrap_err();

    assert_eq!(err.http_status, Some(410), "{err}");
    assert_eq!(
        *asked.lock().unwrap(),
        vec![(0, 5000), (5000, 5000)],
        "no request after the failure"
    );
    assert_eq!(support::scalar_i64(&conn, "SELECT COUNT(*) FROM users"), 1);
    assert_eq!(
        support::scalar_text(&conn, "SELECT name FROM users WHERE id = 'keep'"),
        "me"
    );
    let deletes = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "snapshot_delete")
        .count();
    assert_eq!(deletes, 1, "the session is still cleaned up");
}

/// Records the thread of every token request; the second token is "fresh".
struct ThreadTokens {
    threads: Mutex<Vec<std::thread::ThreadId>>,
    refreshed: Mutex<bool>,
}

impl oversqlite_engine::remote::auth::TokenProvider for ThreadTokens {
    fn token(&self) -> oversqlite_engine::Result<Option<String>> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        let fresh = *self.refreshed.lock().unwrap();
        Ok(Some(if fresh { "fresh" } else { "stale" }.to_string()))
    }

    fn token_after_unauthorized(&self) -> oversqlite_engine::Result<Option<String>> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        *self.refreshed.lock().unwrap() = true;
        Ok(Some("fresh".to_string()))
    }
}

#[test]
fn tokens_are_asked_on_the_calling_thread_and_a_401_is_refreshed() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let inner = snapshot_server(None, asked.clone());
    // A 401 for the second chunk while the stale token is used.
    let transport = inner.transport.clone();
    let server = FakeServer::new(move |_, req| {
        let stale = req.header("Authorization") == Some("Bearer stale");
        if route(req).0 == "snapshot_chunk" && stale && qi64(req, "after_row_ordinal") == Some(5000)
        {
            return Some(ScriptedResponse::error(401, "unauthorized", "expired"));
        }
        use oversqlite_engine::remote::transport::Transport;
        Some(match transport.send(req) {
            Ok(r) => ScriptedResponse::Raw(r.status, r.headers, r.body),
            Err(e) => ScriptedResponse::Fail(e.message),
        })
    });
    let (_db, conn, mut client) = support::attached_users_device(&server);
    let tokens = Arc::new(ThreadTokens {
        threads: Mutex::new(Vec::new()),
        refreshed: Mutex::new(false),
    });
    client.set_token_provider(tokens.clone());

    client.rebuild(&conn).unwrap();

    assert_eq!(
        support::scalar_i64(&conn, "SELECT COUNT(*) FROM users"),
        ROWS
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec![(0, 5000), (5000, 5000), (10000, 5000)],
        "the refused request reached only the outer server"
    );
    let me = std::thread::current().id();
    let threads = tokens.threads.lock().unwrap();
    assert!(threads.len() >= 5, "{threads:?}");
    assert!(
        threads.iter().all(|t| *t == me),
        "a token was asked off the calling thread"
    );
}
