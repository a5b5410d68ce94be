//! Fixture runners: `push/behavior/apply.json` and `push/behavior/recovery.json`.

mod support;

use std::sync::Arc;

use oversqlite_engine::{ClientWins, ConflictResolver, Resolution, ServerWins};
use serde_json::{json, Value};

struct KeepMergedUser;

impl ConflictResolver for KeepMergedUser {
    fn resolve(&self, _: &oversqlite_engine::ConflictContext) -> Resolution {
        Resolution::KeepMerged(
            json!({"id": "user-1", "name": "Merged"})
                .as_object()
                .unwrap()
                .clone(),
        )
    }
}

/// The fixtures' raw `keep_local` resolver: KeepLocal even where it is invalid.
struct KeepLocalAlways;

impl ConflictResolver for KeepLocalAlways {
    fn resolve(&self, _: &oversqlite_engine::ConflictContext) -> Resolution {
        Resolution::KeepLocal
    }
}

fn resolver(name: &str) -> Arc<dyn ConflictResolver> {
    match name {
        "server_wins" => Arc::new(ServerWins),
        "client_wins" => Arc::new(ClientWins),
        "keep_local" => Arc::new(KeepLocalAlways),
        "keep_merged_user" => Arc::new(KeepMergedUser),
        other => panic!("unknown resolver {other}"),
    }
}

fn check_state(label: &str, conn: &rusqlite::Connection, exp: &Value) {
    let q = |sql: &str| support::scalar_i64(conn, sql);
    let checks: [(&str, i64); 7] = [
        ("rebuildRequired", q("SELECT rebuild_required FROM _sync_attachment_state")),
        ("outboxRowCount", q("SELECT COUNT(*) FROM _sync_outbox_rows")),
        ("dirtyRowCount", q("SELECT COUNT(*) FROM _sync_dirty_rows")),
        (
            "nextSourceBundleId",
            q("SELECT next_source_bundle_id FROM _sync_source_state WHERE source_id = (SELECT current_source_id FROM _sync_attachment_state)"),
        ),
        ("lastBundleSeqSeen", q("SELECT last_bundle_seq_seen FROM _sync_attachment_state")),
        ("applyMode", q("SELECT apply_mode FROM _sync_apply_state")),
        ("snapshotStageCount", q("SELECT COUNT(*) FROM _sync_snapshot_stage")),
    ];
    for (key, actual) in checks {
        if let Some(v) = exp.get(key) {
            let want = v
                .as_i64()
                .or_else(|| v.as_bool().map(|b| b as i64))
                .unwrap();
            assert_eq!(actual, want, "{label}: {key}");
        }
    }
    if let Some(s) = exp["outboxState"].as_str() {
        assert_eq!(
            support::scalar_text(conn, "SELECT state FROM _sync_outbox_bundle"),
            s,
            "{label}: outboxState"
        );
    }
}

fn check_app(label: &str, conn: &rusqlite::Connection, exp: &Value) {
    if let Some(tables) = exp.as_object() {
        for (k, rows) in tables {
            assert_eq!(
                &support::app_rows(conn, support::app_table_name(k)),
                rows,
                "{label}: app table {k}"
            );
        }
    }
}

fn run_file(rel: &str, expected_cases: usize) {
    let fx = support::fixture(rel);
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), expected_cases, "{rel}");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let server = support::scripts::push_server(&case["serverScript"]);
        let db = support::TestDb::new();
        let schema = case["schema"].as_str().unwrap_or("users");
        let conn = db.create(schema, &support::sync_tables(case), "main");
        support::open(&conn);
        let mut client = support::client_for(&server);
        client.set_resolver(resolver(case["resolver"].as_str().unwrap_or("server_wins")));
        client.attach(&conn, "user-1").unwrap();
        support::local_sql(&conn, &support::strings(&case["localSetupSql"])).unwrap();
        if case.get("localApplyModeSql").is_some() {
            support::apply_mode_sql(&conn, &support::strings(&case["localApplyModeSql"])).unwrap();
        }
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let action = step["action"].as_str().unwrap();
            let label = format!("{rel} {name} step {i} ({action})");
            let expected = step["expectedException"].as_str().unwrap_or("none");
            match action {
                "pushPending" => {
                    let r = client.push_pending(&conn);
                    support::check_exception(
                        &label,
                        expected,
                        step["expectedErrorContains"].as_str(),
                        &r,
                    );
                }
                "localSql" => support::local_sql(&conn, &support::strings(&step["sql"])).unwrap(),
                "applyModeSql" => {
                    support::apply_mode_sql(&conn, &support::strings(&step["sql"])).unwrap()
                }
                other => panic!("{label}: unknown action {other}"),
            }
            if let Some(exp) = step.get("expectedState") {
                check_state(&label, &conn, exp);
            }
            if let Some(exp) = step.get("expectedAppState") {
                check_app(&label, &conn, exp);
            }
            if let Some(exp) = step.get("expectedServerState") {
                if let Some(n) = exp["createRequestCount"].as_u64() {
                    assert_eq!(
                        server.with(|s| s.create_requests.len()) as u64,
                        n,
                        "{label}: createRequestCount"
                    );
                }
                if let Some(rows) = exp.get("uploadedRows") {
                    assert_eq!(
                        &json!(server.with(|s| s.last_chunk_rows.clone())),
                        rows,
                        "{label}: uploadedRows"
                    );
                }
            }
        }
    }
}

#[test]
fn push_behavior_apply_fixture() {
    if !support::fixtures_available() {
        return;
    }
    run_file("push/behavior/apply.json", 10);
}

#[test]
fn push_behavior_recovery_fixture() {
    if !support::fixtures_available() {
        return;
    }
    run_file("push/behavior/recovery.json", 9);
}
