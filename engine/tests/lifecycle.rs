//! Fixture runners: `lifecycle/behavior/basic.json` and
//! `lifecycle/behavior/source-recovery-replacement.json` — every step is followed
//! by a full normalised runtime-state comparison (§11.12).

mod support;

use std::path::PathBuf;

use oversqlite_engine::transport::ScriptedResponse;
use oversqlite_engine::SyncClient;
use oversqlite_protocol::canonical_json;
use serde_json::{json, Value};
use support::fake_server::{qi64, route, FakeServer};

fn snapshot_session(s: &Value) -> Value {
    json!({
        "snapshot_id": s["id"], "snapshot_bundle_seq": s["bundleSeq"], "row_count": s["rows"].as_array().unwrap().len(),
        "byte_count": 0, "expires_at": "2099-01-01T00:00:00Z"
    })
}

fn snapshot_chunk(s: &Value, after: i64, max: i64) -> ScriptedResponse {
    if s["failAfterRowOrdinal"].as_i64() == Some(after) {
        return ScriptedResponse::error(500, "snapshot_chunk_failed", "injected failure");
    }
    let rows = s["rows"].as_array().unwrap();
    let per = s["rowsPerChunk"].as_i64().unwrap_or(max).min(max).max(1);
    let page: Vec<Value> = rows
        .iter()
        .skip(after as usize)
        .take(per as usize)
        .map(|r| json!({"schema":"main","table":"users","key": r["key"],"row_version": r["rowVersion"],"payload": r["payload"]}))
        .collect();
    let next = after + page.len() as i64;
    ScriptedResponse::ok(json!({
        "snapshot_id": s["id"], "snapshot_bundle_seq": s["bundleSeq"], "rows": page,
        "next_row_ordinal": next, "has_more": (next as usize) < rows.len()
    }))
}

fn server_for(script: &Value, db_path: PathBuf) -> FakeServer {
    let script = script.clone();
    let kind = script["kind"].as_str().unwrap_or("").to_string();
    let mut pulls = 0usize;
    let mut creates = 0usize;
    let mut errors_sent = 0usize;
    FakeServer::new(move |st, req| {
        let (name, id) = route(req);
        match (kind.as_str(), name) {
            ("chunked_sync", "pull") => {
                let late = script["lateWritesByPull"]
                    .as_array()
                    .and_then(|l| l.get(pulls))
                    .cloned();
                pulls += 1;
                if let Some(sql) = late {
                    // Another connection writes while the pull is in flight.
                    let other = rusqlite::Connection::open(&db_path).unwrap();
                    other
                        .busy_timeout(std::time::Duration::from_secs(5))
                        .unwrap();
                    support::local_sql(&other, &support::strings(&sql)).unwrap();
                }
                None
            }
            ("remote_authoritative_partial_snapshot", "connect") => Some(ScriptedResponse::ok(
                json!({"resolution": script["connectResolution"]}),
            )),
            ("snapshot_rebuild" | "remote_authoritative_partial_snapshot", "snapshot_create") => {
                st.snapshot_creates
                    .push(req.body_json().unwrap_or(Value::Null));
                if let Some(err) = script["snapshotSessionErrors"]
                    .as_array()
                    .and_then(|l| l.get(errors_sent))
                {
                    errors_sent += 1;
                    let mut body = json!({"error": err["error"], "message": err["message"], "source_id": err.get("sourceId").cloned().unwrap_or(json!("current-source"))});
                    if let Some(r) = err.get("replacedBySourceId") {
                        body["replaced_by_source_id"] = r.clone();
                    }
                    return Some(ScriptedResponse::Json(
                        err["status"].as_u64().unwrap_or(409) as u16,
                        body,
                    ));
                }
                let list = script["snapshots"].as_array().unwrap();
                let s = &list[creates.min(list.len() - 1)];
                creates += 1;
                Some(ScriptedResponse::ok(snapshot_session(s)))
            }
            ("snapshot_rebuild" | "remote_authoritative_partial_snapshot", "snapshot_chunk") => {
                let s = script["snapshots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["id"] == json!(id))
                    .cloned()
                    .unwrap();
                Some(snapshot_chunk(
                    &s,
                    qi64(req, "after_row_ordinal").unwrap_or(0),
                    qi64(req, "max_rows").unwrap_or(1000),
                ))
            }
            _ => None,
        }
    })
}

fn result_json(
    action: &str,
    client: &mut SyncClient,
    conn: &rusqlite::Connection,
) -> Result<Value, oversqlite_engine::SyncError> {
    let v = |x: &dyn Erased| x.json();
    match action {
        "attach" => client.attach(conn, "user-1").map(|r| json!({"kind": "attach", "outcome": v(&r.outcome)})),
        "sync" => client.sync(conn).map(|r| json!({"kind":"sync","pushOutcome": v(&r.push_outcome),"remoteOutcome": v(&r.remote_outcome)})),
        "syncThenDetach" => client.sync_then_detach(conn).map(|r| {
            json!({"kind":"sync_then_detach","isSuccess": r.is_success,"detach": v(&r.detach),"syncRounds": r.sync_rounds,
                   "remainingPendingRowCount": r.remaining_pending_row_count,"pushOutcome": v(&r.last_sync.push_outcome),
                   "remoteOutcome": v(&r.last_sync.remote_outcome)})
        }),
        "rebuild" => client.rebuild(conn).map(|r| json!({"kind":"remote_sync","outcome": v(&r.outcome)})),
        "detach" => client.detach(conn).map(|r| json!({"kind":"detach","outcome": v(&r.outcome)})),
        "sourceInfo" => client.source_info(conn).map(|i| {
            let mut o = json!({"kind":"source_info","currentSourceIdPresent": !i.current_source_id.is_empty(),
                               "rebuildRequired": i.rebuild_required,"sourceRecoveryRequired": i.source_recovery_required});
            if let Some(r) = i.source_recovery_reason {
                o["sourceRecoveryReason"] = json!(r);
            }
            o
        }),
        other => panic!("unknown action {other}"),
    }
}

trait Erased {
    fn json(&self) -> Value;
}

impl<T: serde::Serialize> Erased for T {
    fn json(&self) -> Value {
        serde_json::to_value(self).unwrap()
    }
}

fn compare_state(label: &str, actual: &Value, expected: &Value) {
    for (k, v) in expected.as_object().unwrap() {
        assert!(
            actual.get(k) == Some(v),
            "{label}: state.{k} differs\n  expected: {}\n  actual:   {}",
            serde_json::to_string(v).unwrap(),
            serde_json::to_string(&actual[k]).unwrap()
        );
    }
    assert_eq!(actual, expected, "{label}");
}

fn run_file(rel: &str, expected_cases: usize) {
    let fx = support::fixture(rel);
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), expected_cases, "{rel}");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let db = support::TestDb::new();
        let server = server_for(&case["serverScript"], db.path.clone());
        let mut conn = db.create("users", &[("users".into(), "id".into())], "main");
        let mut client = support::client_for(&server);
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let action = step["action"].as_str().unwrap();
            let label = format!("{rel} {name} step {i} ({action})");
            let expected_exc = step["expectedException"].as_str().unwrap_or("none");
            match action {
                "open" => support::open(&conn),
                "reopenOpen" => {
                    drop(conn);
                    conn = db.connect();
                    client = support::client_for(&server);
                    support::open(&conn);
                }
                "localSql" => support::local_sql(&conn, &support::strings(&step["sql"])).unwrap(),
                "applyModeSql" => {
                    support::apply_mode_sql(&conn, &support::strings(&step["sql"])).unwrap()
                }
                _ => {
                    let result = result_json(action, &mut client, &conn);
                    support::check_exception(
                        &label,
                        expected_exc,
                        step["expectedErrorContains"].as_str(),
                        &result,
                    );
                    if let (Some(exp), Ok(actual)) = (step["expectedResult"].as_object(), &result) {
                        for (k, v) in exp {
                            assert_eq!(
                                actual.get(k),
                                Some(v),
                                "{label}: result.{k} (actual {actual})"
                            );
                        }
                    }
                }
            }
            if let Some(exp) = step["expectedServerState"].as_object() {
                let (creates, snaps) =
                    server.with(|s| (s.create_requests.clone(), s.snapshot_creates.clone()));
                if let Some(n) = exp.get("createRequestCount") {
                    assert_eq!(json!(creates.len()), *n, "{label}: createRequestCount");
                }
                if let Some(ids) = exp.get("createSourceBundleIds") {
                    let actual: Vec<Value> = creates
                        .iter()
                        .map(|c| c["source_bundle_id"].clone())
                        .collect();
                    assert_eq!(&json!(actual), ids, "{label}: createSourceBundleIds");
                }
                if let Some(n) = exp.get("snapshotSessionCreateCount") {
                    assert_eq!(
                        json!(snaps.len()),
                        *n,
                        "{label}: snapshotSessionCreateCount"
                    );
                }
                if let Some(list) = exp.get("snapshotSourceReplacementRequests") {
                    let actual: Vec<Value> = snaps
                        .iter()
                        .map(|b| match b.get("source_replacement") {
                            Some(r) => json!(canonical_json(r)),
                            None => json!(""),
                        })
                        .collect();
                    assert_eq!(
                        &json!(actual),
                        list,
                        "{label}: snapshotSourceReplacementRequests"
                    );
                }
            }
            compare_state(
                &label,
                &support::dump_state(&conn),
                &step["expectedState"]["state"],
            );
        }
    }
}

#[test]
fn lifecycle_basic_fixture() {
    if !support::fixtures_available() {
        return;
    }
    run_file("lifecycle/behavior/basic.json", 7);
}

#[test]
fn lifecycle_source_recovery_replacement_fixture() {
    if !support::fixtures_available() {
        return;
    }
    run_file("lifecycle/behavior/source-recovery-replacement.json", 6);
}
