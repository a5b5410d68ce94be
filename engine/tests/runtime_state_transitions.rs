//! Fixture runner: `runtime-state/transitions/basic.json` — after every step the
//! full normalised `_sync_*` dump (§11.4) must equal the fixture's.

mod support;

use oversqlite_engine::SyncClient;
use serde_json::Value;

fn diff(label: &str, actual: &Value, expected: &Value) {
    if actual != expected {
        for (k, v) in expected.as_object().unwrap() {
            if actual.get(k) != Some(v) {
                panic!(
                    "{label}: state.{k} differs\n  expected: {}\n  actual:   {}",
                    serde_json::to_string(v).unwrap(),
                    serde_json::to_string(&actual[k]).unwrap()
                );
            }
        }
        panic!("{label}: state differs: {actual}");
    }
}

#[test]
fn runtime_state_transitions_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("runtime-state/transitions/basic.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let server = support::scripts::push_server(&case["serverScript"]);
        let db = support::TestDb::new();
        let mut conn = db.create("users", &[("users".into(), "id".into())], "main");
        let mut client: SyncClient = support::client_for(&server);
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let action = step["action"].as_str().unwrap();
            let label = format!("{name} step {i} ({action})");
            let expected_exc = step["expectedException"].as_str().unwrap_or("none");
            match action {
                "open" => support::open(&conn),
                "attach" => {
                    let r = client.attach(&conn, "user-1").map(|_| ());
                    support::check_exception(&label, expected_exc, None, &r);
                }
                "localSql" => support::local_sql(&conn, &support::strings(&step["sql"])).unwrap(),
                "pushPending" => {
                    let r = client.push_pending(&conn).map(|_| ());
                    support::check_exception(&label, expected_exc, None, &r);
                }
                "pullToStable" => {
                    let r = client.pull_to_stable(&conn).map(|_| ());
                    support::check_exception(&label, expected_exc, None, &r);
                }
                "reopen" => {
                    drop(conn);
                    conn = db.connect();
                    client = support::client_for(&server);
                    support::open(&conn);
                    client
                        .attach(&conn, "user-1")
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                }
                "sourceInfo" => {
                    let info = client.source_info(&conn).unwrap();
                    assert!(!info.current_source_id.is_empty(), "{label}");
                }
                other => panic!("{label}: unknown action {other}"),
            }
            diff(
                &label,
                &support::dump_state(&conn),
                &step["expectedState"]["state"],
            );
        }
    }
}
