//! Fixture runner: `pull-snapshot/behavior/apply.json` — incremental pull and
//! snapshot rebuild behaviour.

mod support;

use oversqlite_engine::transport::ScriptedResponse;
use serde_json::Value;
use support::fake_server::{qi64, route, FakeServer};

fn server_for(script: &Value) -> FakeServer {
    let script = script.clone();
    let mut pulls = 0usize;
    let mut sessions = 0usize;
    FakeServer::new(move |st, req| {
        let (name, id) = route(req);
        match (script["kind"].as_str().unwrap(), name) {
            ("pull_incremental_bundles", "pull") => {
                Some(ScriptedResponse::ok(script["response"].clone()))
            }
            ("pull_sequence", "pull") => {
                pulls += 1;
                let list = script["responses"].as_array().unwrap();
                Some(ScriptedResponse::ok(
                    list[(pulls - 1).min(list.len() - 1)].clone(),
                ))
            }
            ("snapshot_sequence", "snapshot_create") => {
                st.snapshot_creates
                    .push(req.body_json().unwrap_or(Value::Null));
                sessions += 1;
                let list = script["sessions"].as_array().unwrap();
                Some(ScriptedResponse::ok(
                    list[(sessions - 1).min(list.len() - 1)].clone(),
                ))
            }
            ("snapshot_sequence", "snapshot_chunk") => {
                let after = qi64(req, "after_row_ordinal").unwrap_or(0).to_string();
                let chunk = &script["chunks"][&id][&after];
                Some(
                    if chunk.get("status").is_some() && chunk.get("snapshot_id").is_none() {
                        ScriptedResponse::Json(
                            chunk["status"].as_u64().unwrap() as u16,
                            chunk["body"].clone(),
                        )
                    } else if chunk.is_null() {
                        ScriptedResponse::error(404, "snapshot_session_not_found", "no such chunk")
                    } else {
                        ScriptedResponse::ok(chunk.clone())
                    },
                )
            }
            _ => None,
        }
    })
}

#[test]
fn pull_snapshot_behavior_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("pull-snapshot/behavior/apply.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let server = server_for(&case["serverScript"]);
        let db = support::TestDb::new();
        let conn = db.create(
            case["schema"].as_str().unwrap_or("users"),
            &support::sync_tables(case),
            "main",
        );
        support::open(&conn);
        let mut client = support::client_for(&server);
        client.attach(&conn, "user-1").unwrap();
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let action = step["action"].as_str().unwrap();
            let label = format!("{name} step {i} ({action})");
            if step.get("setupSql").is_some() {
                support::local_sql(&conn, &support::strings(&step["setupSql"])).unwrap();
            }
            let source_at_start = support::scalar_text(
                &conn,
                "SELECT current_source_id FROM _sync_attachment_state",
            );
            let result = match action {
                "pullToStable" => client.pull_to_stable(&conn),
                "rebuild" => client.rebuild(&conn),
                other => panic!("{label}: unknown action {other}"),
            };
            support::check_exception(
                &label,
                step["expectedException"].as_str().unwrap(),
                step["expectedErrorContains"].as_str(),
                &result,
            );
            let exp = &step["expectedState"];
            let q = |sql: &str| support::scalar_i64(&conn, sql);
            let checks = [
                (
                    "lastBundleSeqSeen",
                    "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
                ),
                ("dirtyRowCount", "SELECT COUNT(*) FROM _sync_dirty_rows"),
                (
                    "snapshotStageCount",
                    "SELECT COUNT(*) FROM _sync_snapshot_stage",
                ),
                ("rowStateCount", "SELECT COUNT(*) FROM _sync_row_state"),
                ("outboxRowCount", "SELECT COUNT(*) FROM _sync_outbox_rows"),
                (
                    "rebuildRequired",
                    "SELECT rebuild_required FROM _sync_attachment_state",
                ),
            ];
            for (key, sql) in checks {
                if let Some(v) = exp[key].as_i64() {
                    assert_eq!(q(sql), v, "{label}: {key}");
                }
            }
            let current = support::scalar_text(
                &conn,
                "SELECT current_source_id FROM _sync_attachment_state",
            );
            if let Some(v) = exp["currentSourceChangedFromStepStart"].as_bool() {
                assert_eq!(current != source_at_start, v, "{label}: source changed");
            }
            if let Some(v) = exp["oldSourceReplacedByCurrent"].as_bool() {
                let replaced: String = conn
                    .query_row(
                        "SELECT replaced_by_source_id FROM _sync_source_state WHERE source_id = ?1",
                        [&source_at_start],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(
                    replaced == current,
                    v,
                    "{label}: old source replaced by current"
                );
            }
            if let Some(tables) = step["expectedAppState"].as_object() {
                for (k, rows) in tables {
                    assert_eq!(
                        &support::app_rows(&conn, support::app_table_name(k)),
                        rows,
                        "{label}: app {k}"
                    );
                }
            }
        }
    }
}
