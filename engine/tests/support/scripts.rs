//! Fake-server scripts named by the push / runtime-state fixtures (§11.5, §11.9).

use oversqlite_engine::remote::transport::ScriptedResponse;
use oversqlite_protocol::{bundle_hash, BundleRow};
use serde_json::{json, Value};

use super::fake_server::{
    committed_page, meta_json, qi64, route, source_of, Committed, FakeServer,
};

/// Registers an already-committed bundle for `source` and answers the create with it.
fn already_committed(
    st: &mut super::fake_server::FakeState,
    source: &str,
    sbid: i64,
    rows: Vec<BundleRow>,
) -> ScriptedResponse {
    if st.find_tuple(source, sbid).is_none() {
        let hash = bundle_hash(&rows);
        st.committed.push(Committed {
            seq: 1,
            source_id: source.to_string(),
            source_bundle_id: sbid,
            rows,
            hash,
        });
        st.next_bundle_seq = st.next_bundle_seq.max(2);
    }
    let mut m = meta_json(st.find_tuple(source, sbid).unwrap());
    m["status"] = json!("already_committed");
    ScriptedResponse::ok(m)
}

pub fn push_server(script: &Value) -> FakeServer {
    let kind = script["kind"]
        .as_str()
        .unwrap_or("echo_committed_rows")
        .to_string();
    let original = script;
    let script = script.clone();
    let mut fired = 0usize;
    let server = FakeServer::new(move |st, req| {
        let (name, _) = route(req);
        let source = source_of(req);
        match (kind.as_str(), name) {
            ("committed_replay_first_fetch_http_error", "committed_rows") if fired == 0 => {
                fired += 1;
                st.committed_fetches += 1;
                Some(ScriptedResponse::error(500, "temporary", "retry"))
            }
            ("committed_bundle_not_found_then_success", "committed_rows")
                if req.query("after_row_ordinal").is_none()
                    && (fired as i64) < script["notFoundCount"].as_i64().unwrap() =>
            {
                fired += 1;
                st.committed_fetches += 1;
                Some(ScriptedResponse::error(
                    404,
                    "committed_bundle_not_found",
                    "not visible yet",
                ))
            }
            ("committed_replay_pruned", "committed_rows") => {
                st.committed_fetches += 1;
                Some(ScriptedResponse::error(
                    409,
                    "history_pruned",
                    "bundle is below the retained floor",
                ))
            }
            ("precommit_retry", "push_commit") if fired == 0 => {
                fired += 1;
                st.commit_requests += 1;
                Some(ScriptedResponse::error(500, "temporary", "retry"))
            }
            ("conflict_once", "push_commit") if fired == 0 => {
                fired += 1;
                st.commit_requests += 1;
                Some(ScriptedResponse::Json(
                    409,
                    json!({"error":"push_conflict","message":"conflict","conflict": script["conflict"]}),
                ))
            }
            ("conflict_once_on_row_count", "push_commit") if fired == 0 => {
                let (_, id) = route(req);
                let rows = st
                    .sessions
                    .get(&id)
                    .map(|s| s.rows.len() as i64)
                    .unwrap_or(0);
                if rows != script["rowCount"].as_i64().unwrap() {
                    return None;
                }
                fired += 1;
                st.commit_requests += 1;
                Some(ScriptedResponse::Json(
                    409,
                    json!({"error":"push_conflict","message":"conflict","conflict": script["conflict"]}),
                ))
            }
            ("already_committed_mismatch", "push_create") => {
                st.create_requests
                    .push(req.body_json().unwrap_or(Value::Null));
                let row: BundleRow = serde_json::from_value(json!({"schema":"main","table":"users","key":{"id":"user-1"},"op":"INSERT","row_version":1,"payload": script["committedPayload"]})).unwrap();
                Some(already_committed(st, &source, 1, vec![row]))
            }
            ("already_committed_rows", "push_create") => {
                let body = req.body_json().unwrap_or(Value::Null);
                st.create_requests.push(body.clone());
                let rows: Vec<BundleRow> =
                    serde_json::from_value(script["committedRows"].clone()).unwrap();
                Some(already_committed(
                    st,
                    &source,
                    body["source_bundle_id"].as_i64().unwrap_or(1),
                    rows,
                ))
            }
            ("committed_remote_mismatch", "committed_rows") => {
                st.committed_fetches += 1;
                let served: Vec<BundleRow> =
                    serde_json::from_value(script["committedRowsResponse"]["rows"].clone())
                        .unwrap();
                let c = st.committed.last().cloned().unwrap();
                let mut meta = meta_json(&c);
                meta["bundle_hash"] = json!(bundle_hash(&served));
                Some(ScriptedResponse::ok(committed_page(
                    meta,
                    &served,
                    qi64(req, "after_row_ordinal"),
                    1000,
                    None,
                )))
            }
            ("pull_incremental_users", "pull") | ("pull_incremental_bundles", "pull") => {
                st.pull_requests += 1;
                Some(ScriptedResponse::ok(script["response"].clone()))
            }
            ("source_retired_on_push_create", "push_create") => {
                st.create_requests
                    .push(req.body_json().unwrap_or(Value::Null));
                Some(ScriptedResponse::Json(
                    409,
                    json!({"error":"source_retired","message":"source retired","source_id": source,"replaced_by_source_id": script["replacementSourceId"]}),
                ))
            }
            _ => None,
        }
    });
    let script = original;
    if script["kind"] == "committed_bundle_seq_gap" {
        let seq = script["bundleSeq"].as_i64().unwrap();
        server.with(|s| s.next_bundle_seq = seq);
    }
    if script["kind"] == "committed_remote_mismatch" {
        // The commit answers with the hash of the rows the server will serve.
        let served: Vec<BundleRow> =
            serde_json::from_value(script["committedRowsResponse"]["rows"].clone()).unwrap();
        let served_hash = bundle_hash(&served);
        server.with(|s| s.commit_hash_override = Some(served_hash));
    }
    if script["kind"] == "committed_replay_bad_bundle_hash" {
        server.with(|s| s.commit_hash_override = Some("bad-hash".into()));
    }
    server
}
