//! Fixture runner: `watch/basic.json` — capability detection, the SSE parser, watch
//! setup errors, and the close-then-fallback-pull runtime rule.

mod support;

use oversqlite_engine::sse::SseParser;
use oversqlite_engine::transport::ScriptedResponse;
use oversqlite_engine::WatchOutcome;
use serde_json::Value;
use support::fake_server::{route, FakeServer};

fn status_of(v: &Value) -> u16 {
    v["status"].as_u64().unwrap() as u16
}

#[test]
fn capabilities_cases() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("watch/basic.json");
    let cases = fx["capabilitiesCases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let resp = case["response"].clone();
        let server = FakeServer::new(move |_, req| {
            (route(req).0 == "capabilities")
                .then(|| ScriptedResponse::Json(status_of(&resp), resp["body"].clone()))
        });
        let (_db, conn, mut client) = support::attached_users_device(&server);
        assert_eq!(
            client.bundle_change_watch_supported(&conn).unwrap(),
            case["expectedBundleChangeWatchSupported"]
                .as_bool()
                .unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn sse_cases() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("watch/basic.json");
    let cases = fx["sseCases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut error = None;
        for line in support::strings(&case["lines"]) {
            match parser.push_line(&line) {
                Ok(Some(e)) => events.push(serde_json::to_value(e).unwrap()),
                Ok(None) => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        parser.finish();
        if case["expectError"].as_bool() == Some(true) {
            assert!(error.is_some(), "{name}: expected a stream error");
        } else {
            assert!(error.is_none(), "{name}: {error:?}");
            assert_eq!(Value::Array(events), case["expectedEvents"], "{name}");
        }
    }
}

#[test]
fn setup_error_responses() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("watch/basic.json");
    let cases = fx["setupErrorResponses"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let resp = case.clone();
        let server = FakeServer::new(move |_, req| {
            (route(req).0 == "watch")
                .then(|| ScriptedResponse::Json(status_of(&resp), resp["body"].clone()))
        });
        let (_db, conn, mut client) = support::attached_users_device(&server);
        let report = client.watch_once(&conn).unwrap();
        assert_eq!(report.outcome, WatchOutcome::SetupFailed);
        assert_eq!(report.error_code.as_deref(), case["expectedError"].as_str());
    }
}

#[test]
fn runtime_cases() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("watch/basic.json");
    let cases = fx["runtimeCases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    for case in cases {
        let resp = case["response"].clone();
        let server = FakeServer::new(move |_, req| {
            (route(req).0 == "watch")
                .then(|| ScriptedResponse::Json(status_of(&resp), resp["body"].clone()))
        });
        let (_db, conn, mut client) = support::attached_users_device(&server);
        let pulls_before = server.with(|s| s.pull_requests);
        let report = client.watch_once(&conn).unwrap();
        let pulls = server.with(|s| s.pull_requests) - pulls_before;
        assert_eq!(
            server.transport.closed_streams() as i64,
            case["expectedCloseCount"].as_i64().unwrap()
        );
        assert!(pulls as i64 >= case["expectedFallbackPullsAtLeast"].as_i64().unwrap());
        // The close happened before the fallback pull was sent.
        let reqs = server.transport.requests();
        let watch_at = reqs.iter().position(|r| route(r).0 == "watch").unwrap();
        assert!(reqs.iter().skip(watch_at).any(|r| route(r).0 == "pull"));
        assert_eq!(report.pulls, 1);
    }
}

#[test]
fn bundle_events_trigger_one_pull_each_and_a_reconnect_pull() {
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "watch").then(|| {
            ScriptedResponse::Raw(
                200,
                vec![],
                b": heartbeat\n\nevent: bundle\ndata: {\"bundle_seq\":1}\n\n".to_vec(),
            )
        })
    });
    let (_db, conn, mut client) = support::attached_users_device(&server);
    let report = client.watch_once(&conn).unwrap();
    assert_eq!(report.outcome, WatchOutcome::StreamEnded);
    assert_eq!(report.events, 1);
    assert_eq!(
        report.pulls, 2,
        "one pull for the event, one reconnect pull at EOF"
    );
    assert_eq!(
        server
            .transport
            .requests()
            .iter()
            .find(|r| route(r).0 == "watch")
            .unwrap()
            .query("after_bundle_seq")
            .as_deref(),
        Some("0")
    );
}
