//! Fixture runner: `protocol-handshake/connect.json`, driven end to end: canned
//! capabilities/connect responses, a real database, `open` + `attach`.

mod support;

use oversqlite_engine::report::AttachOutcome;
use oversqlite_engine::transport::ScriptedResponse;
use serde_json::Value;
use support::fake_server::{route, FakeServer};

#[test]
fn protocol_handshake_connect_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("protocol-handshake/connect.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let caps = case["capabilities"].clone();
        let connect = case["connect"].clone();
        let server = FakeServer::new(move |_, req| match route(req).0 {
            "capabilities" => Some(ScriptedResponse::Json(
                caps["status"].as_u64().unwrap() as u16,
                caps["body"].clone(),
            )),
            "connect" if !connect.is_null() => Some(ScriptedResponse::Json(
                connect["status"].as_u64().unwrap() as u16,
                connect["body"].clone(),
            )),
            "connect" => panic!("connect must not be called"),
            _ => None,
        });
        let db = support::TestDb::new();
        let conn = db.create("users", &[("users".into(), "id".into())], "main");
        support::open(&conn);
        let pending = case["local"]["hasLocalPendingRows"].as_bool().unwrap();
        if pending {
            conn.execute("INSERT INTO users(id, name) VALUES('user-1', 'Ada')", [])
                .unwrap();
        }
        let mut client = support::client_for(&server);
        let result = client.attach(&conn, "user-1");
        let exp = &case["expected"];
        let connects: Vec<_> = server
            .transport
            .requests()
            .into_iter()
            .filter(|r| route(r).0 == "connect")
            .collect();
        assert_eq!(
            !connects.is_empty(),
            exp["connectCalled"].as_bool().unwrap(),
            "{name}: connect called"
        );
        if let Some(c) = connects.first() {
            assert_eq!(
                c.body_json().unwrap()["has_local_pending_rows"],
                Value::Bool(pending),
                "{name}: pending flag"
            );
        }
        match exp["attachKind"].as_str().unwrap() {
            "unsupportedCapability" => {
                let e = result.unwrap_err();
                assert_eq!(e.code(), "unsupported_server", "{name}");
                assert!(!exp["connectLifecycleSupported"].as_bool().unwrap());
            }
            "retryLater" => {
                let r = result.unwrap();
                assert_eq!(r.outcome, AttachOutcome::RetryLater, "{name}");
                assert_eq!(
                    r.retry_after_seconds,
                    exp["retryAfterSeconds"].as_i64(),
                    "{name}"
                );
                assert_eq!(
                    support::scalar_text(&conn, "SELECT binding_state FROM _sync_attachment_state"),
                    "anonymous",
                    "{name}: nothing persisted"
                );
            }
            "connected" => {
                let r = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let outcome = match exp["attachOutcome"].as_str().unwrap() {
                    "startedEmpty" => AttachOutcome::StartedEmpty,
                    "seededFromLocal" => AttachOutcome::SeededFromLocal,
                    "usedRemoteState" => AttachOutcome::UsedRemoteState,
                    o => panic!("unknown outcome {o}"),
                };
                assert_eq!(r.outcome, outcome, "{name}");
                assert_eq!(
                    support::scalar_text(&conn, "SELECT binding_state FROM _sync_attachment_state"),
                    exp["bindingState"].as_str().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    support::scalar_text(
                        &conn,
                        "SELECT pending_initialization_id FROM _sync_attachment_state"
                    ),
                    exp["pendingInitializationId"].as_str().unwrap(),
                    "{name}"
                );
                assert_eq!(client.connected_user(), Some("user-1"));
            }
            k => panic!("unknown attachKind {k}"),
        }
    }
}
