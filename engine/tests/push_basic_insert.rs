//! Fixture runner: `push/basic-insert.json`. Every body is decoded with the wire
//! types, and each scenario is driven end to end against a server that answers
//! with the fixture's bodies (placeholder hashes replaced by the real hash of the
//! rows served, fixture source ids by the request's source header, §11.1).
//!
//! `committed-remote-mismatch-requires-rebuild` differs from the outbox only in the
//! payload, which the reference compares only for a bundle that was already
//! `committed_remote` before the push (§7.4). The driver therefore fails the first
//! committed-rows fetch, so the second push resumes from `committed_remote` and meets
//! the fixture's rows — the state the case is named after.

mod support;

use oversqlite_engine::transport::ScriptedResponse;
use oversqlite_protocol::{
    BundleRow, CommittedBundleRowsResponse, ErrorBody, PushChunkRequest, PushChunkResponse,
    PushCommitResponse, PushSessionCreateRequest, PushSessionCreateResponse,
};
use serde_json::{json, Value};
use support::fake_server::{route, source_of, FakeServer};

fn substitute(mut body: Value, source: &str, rows_for_hash: Option<&Value>) -> Value {
    if body.get("source_id").is_some() {
        body["source_id"] = json!(source);
    }
    if let Some(rows) = rows_for_hash {
        let rows: Vec<BundleRow> = serde_json::from_value(rows.clone()).unwrap();
        body["bundle_hash"] = json!(oversqlite_protocol::bundle_hash(&rows));
    }
    body
}

#[test]
fn push_basic_insert_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("push/basic-insert.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap().to_string();
        // Decode every body with the shared wire types.
        let decode = |k: &str| case.get(k).cloned();
        if let Some(v) = decode("pushSessionCreateRequest") {
            serde_json::from_value::<PushSessionCreateRequest>(v).unwrap();
        }
        if let Some(v) = decode("pushSessionCreateResponse") {
            serde_json::from_value::<PushSessionCreateResponse>(v).unwrap();
        }
        if let Some(v) = decode("pushChunkRequest") {
            serde_json::from_value::<PushChunkRequest>(v).unwrap();
        }
        if let Some(v) = decode("pushChunkResponse") {
            serde_json::from_value::<PushChunkResponse>(v).unwrap();
        }
        if let Some(v) = decode("pushCommitResponse") {
            serde_json::from_value::<PushCommitResponse>(v).unwrap();
        }
        if let Some(v) = decode("committedBundleRowsResponse") {
            serde_json::from_value::<CommittedBundleRowsResponse>(v).unwrap();
        }
        if let Some(v) = decode("pushConflictResponse") {
            assert!(serde_json::from_value::<ErrorBody>(v)
                .unwrap()
                .conflict
                .is_some());
        }

        let c = case.clone();
        let mut committed_fetches = 0;
        let resume_after_failed_fetch = name == "committed-remote-mismatch-requires-rebuild";
        let server = FakeServer::new(move |st, req| {
            let source = source_of(req);
            let rows = c
                .get("committedBundleRowsResponse")
                .map(|r| r["rows"].clone());
            match route(req).0 {
                "push_create" => {
                    if let Some(exp) = c.get("pushSessionCreateRequest") {
                        assert_eq!(&req.body_json().unwrap(), exp, "create request body");
                    }
                    st.create_requests.push(req.body_json().unwrap());
                    c.get("pushSessionCreateResponse").map(|r| {
                        ScriptedResponse::ok(substitute(
                            r.clone(),
                            &source,
                            rows.as_ref().filter(|_| r["status"] == "already_committed"),
                        ))
                    })
                }
                "push_chunk" => {
                    if let Some(exp) = c.get("pushChunkRequest") {
                        assert_eq!(&req.body_json().unwrap(), exp, "chunk request body");
                    }
                    c.get("pushChunkResponse")
                        .map(|r| ScriptedResponse::ok(r.clone()))
                }
                "push_commit" => {
                    if let Some(conflict) = c.get("pushConflictResponse") {
                        return Some(ScriptedResponse::Json(409, conflict.clone()));
                    }
                    c.get("pushCommitResponse").map(|r| {
                        ScriptedResponse::ok(substitute(r.clone(), &source, rows.as_ref()))
                    })
                }
                "committed_rows" => {
                    committed_fetches += 1;
                    if resume_after_failed_fetch && committed_fetches == 1 {
                        return Some(ScriptedResponse::error(500, "temporary", "retry"));
                    }
                    c.get("committedBundleRowsResponse").map(|r| {
                        ScriptedResponse::ok(substitute(r.clone(), &source, rows.as_ref()))
                    })
                }
                _ => None,
            }
        });
        let db = support::TestDb::new();
        let conn = db.create("users", &[("users".into(), "id".into())], "main");
        support::open(&conn);
        let mut client = support::client_for(&server);
        client.attach(&conn, "user-1").unwrap();
        let write = case["localWrite"]["sql"]
            .as_str()
            .unwrap_or("INSERT INTO users(id, name) VALUES('user-1', 'Ada')");
        conn.execute_batch(write).unwrap();
        let mut result = client.push_pending(&conn);
        if resume_after_failed_fetch {
            support::check_exception(&name, "http_error", None, &result);
            result = client.push_pending(&conn);
        }
        let exp = &case["expectedFinalState"];
        let expected_error = exp["error"].as_str().unwrap_or("none");
        support::check_exception(&name, expected_error, None, &result);
        let q = |sql: &str| support::scalar_i64(&conn, sql);
        if let Some(v) = exp["dirtyRowCount"].as_i64() {
            assert_eq!(q("SELECT COUNT(*) FROM _sync_dirty_rows"), v, "{name}");
        }
        if let Some(v) = exp["outboxRowCount"].as_i64() {
            assert_eq!(q("SELECT COUNT(*) FROM _sync_outbox_rows"), v, "{name}");
        }
        if let Some(v) = exp["lastBundleSeqSeen"].as_i64() {
            assert_eq!(
                q("SELECT last_bundle_seq_seen FROM _sync_attachment_state"),
                v,
                "{name}"
            );
        }
        if let Some(v) = exp["rebuildRequired"].as_bool() {
            assert_eq!(
                q("SELECT rebuild_required FROM _sync_attachment_state"),
                v as i64,
                "{name}"
            );
        }
        if let Some(v) = exp["outboxState"].as_str() {
            assert_eq!(
                support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
                v,
                "{name}"
            );
        }
        if let Some(v) = exp["nextSourceBundleId"].as_i64() {
            assert_eq!(q("SELECT next_source_bundle_id FROM _sync_source_state WHERE source_id = (SELECT current_source_id FROM _sync_attachment_state)"), v, "{name}");
        }
        if let Some(rs) = exp.get("rowState") {
            let key = format!("{{\"id\":\"{}\"}}", rs["key"]["id"].as_str().unwrap());
            let (v, d): (i64, i64) = conn
                .query_row("SELECT row_version, deleted FROM _sync_row_state WHERE table_name = ?1 AND key_json = ?2", [rs["table"].as_str().unwrap(), &key], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!(v, rs["rowVersion"].as_i64().unwrap(), "{name}: row_version");
            assert_eq!(d != 0, rs["deleted"].as_bool().unwrap(), "{name}: deleted");
        }
    }
}
