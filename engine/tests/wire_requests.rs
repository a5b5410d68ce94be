//! Fixture runner: `protocol-http/requests.json` — every request builder, driven
//! through the real `Remote` (so the Authorization header path is exercised too).

mod support;

use std::sync::Arc;

use oversqlite_engine::remote::auth::SharedToken;
use oversqlite_engine::remote::transport::{
    HttpRequest, RetryPolicy, ScriptedResponse, ScriptedTransport,
};
use oversqlite_engine::remote::{client::Remote, requests::Requests};
use oversqlite_protocol::{
    PushChunkRequest, PushRequestRow, PushSessionCreateRequest, SnapshotSessionCreateRequest,
    SourceReplacement,
};
use serde_json::{json, Value};

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == key || contains_key(v, key)),
        Value::Array(a) => a.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

fn build(req: &Requests, case: &Value) -> HttpRequest {
    let source = case["sourceId"].as_str().unwrap();
    let a = &case["args"];
    match case["operation"].as_str().unwrap() {
        "capabilities" => req.capabilities(source),
        "connect" => req.connect(source, a["hasLocalPendingRows"].as_bool().unwrap()),
        "pull" => req.pull(
            source,
            a["afterBundleSeq"].as_i64().unwrap(),
            a["maxBundles"].as_i64().unwrap(),
            a["targetBundleSeq"].as_i64().unwrap(),
        ),
        "pushSessionCreate" => req.push_session_create(
            source,
            &PushSessionCreateRequest {
                source_bundle_id: a["sourceBundleId"].as_i64().unwrap(),
                planned_row_count: a["plannedRowCount"].as_i64().unwrap(),
                initialization_id: a["initializationId"].as_str().map(str::to_string),
            },
        ),
        "pushSessionChunk" => {
            // The fixture shows the exact row encoding; upload those rows.
            let rows: Vec<PushRequestRow> =
                serde_json::from_value(case["expected"]["body"]["rows"].clone()).unwrap();
            req.push_session_chunk(
                source,
                a["pushId"].as_str().unwrap(),
                &PushChunkRequest {
                    start_row_ordinal: a["startRowOrdinal"].as_i64().unwrap(),
                    rows,
                },
            )
        }
        "pushSessionCommit" => req.push_session_commit(source, a["pushId"].as_str().unwrap()),
        "committedRows" => req.committed_rows(
            source,
            a["bundleSeq"].as_i64().unwrap(),
            a["afterRowOrdinal"].as_i64(),
            a["maxRows"].as_i64().unwrap(),
        ),
        "snapshotSession" => req.snapshot_session_create(source, None),
        "snapshotChunk" => req.snapshot_chunk(
            source,
            a["snapshotId"].as_str().unwrap(),
            a["afterRowOrdinal"].as_i64().unwrap(),
            a["maxRows"].as_i64().unwrap(),
        ),
        "sourceReplacement" => req.snapshot_session_create(
            source,
            Some(&SnapshotSessionCreateRequest {
                source_replacement: Some(SourceReplacement {
                    previous_source_id: a["previousSourceId"].as_str().unwrap().into(),
                    new_source_id: a["newSourceId"].as_str().unwrap().into(),
                    reason: a["reason"].as_str().unwrap().into(),
                }),
            }),
        ),
        "watch" => req.watch(source, a["afterBundleSeq"].as_i64().unwrap()),
        other => panic!("unknown operation {other}"),
    }
}

#[test]
fn protocol_http_requests_fixture() {
    if !support::fixtures_available() {
        return;
    }
    let fx = support::fixture("protocol-http/requests.json");
    let base = fx["baseUri"].as_str().unwrap();
    let requests = Requests::new(base);
    let transport = ScriptedTransport::new(|_| ScriptedResponse::ok(json!({})));
    let token = SharedToken::new(Some("secret-token".into()));
    let retry = RetryPolicy::no_retry();
    let remote = Remote {
        requests: requests.clone(),
        transport: std::sync::Arc::new(transport.clone()),
        tokens: &token,
        retry: &retry,
        limits: oversqlite_engine::remote::cancel::Limits::none(),
    };
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let built = build(&requests, case);
        remote.send_raw(built, name).unwrap();
        let sent = transport.requests().last().cloned().unwrap();
        let exp = &case["expected"];
        assert_eq!(
            sent.method,
            exp["method"].as_str().unwrap(),
            "{name}: method"
        );
        assert_eq!(sent.path(), exp["path"].as_str().unwrap(), "{name}: path");
        let query: serde_json::Map<String, Value> = sent
            .query_pairs()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        assert_eq!(Value::Object(query), exp["query"], "{name}: query");
        assert_eq!(
            sent.header("Oversync-Source-ID"),
            exp["sourceHeader"].as_str(),
            "{name}: source header"
        );
        assert_eq!(
            sent.header("Authorization"),
            Some("Bearer secret-token"),
            "{name}: authorization"
        );
        let body = sent.body_json();
        match &exp["body"] {
            Value::Null => assert!(
                sent.body.is_none(),
                "{name}: expected no body, got {body:?}"
            ),
            expected => assert_eq!(body.as_ref(), Some(expected), "{name}: body"),
        }
        for key in support::strings(&exp["bodyMustNotContain"]) {
            if let Some(b) = &body {
                assert!(!contains_key(b, &key), "{name}: body contains {key}");
            }
        }
    }
}

#[test]
fn delete_rows_omit_payload_and_sessions_cleanup_paths() {
    let requests = Requests::new("https://h/x");
    let row: PushRequestRow = serde_json::from_value(json!({"schema":"main","table":"users","key":{"id":"u"},"op":"DELETE","base_row_version":3})).unwrap();
    let req = requests.push_session_chunk(
        "s",
        "p/1",
        &PushChunkRequest {
            start_row_ordinal: 0,
            rows: vec![row],
        },
    );
    let body = req.body_json().unwrap();
    assert!(
        body["rows"][0].get("payload").is_none(),
        "DELETE must omit payload: {body}"
    );
    assert_eq!(req.path(), "/x/sync/push-sessions/p%2F1/chunks");
    assert_eq!(requests.push_session_delete("s", "p1").method, "DELETE");
    assert_eq!(
        requests
            .committed_rows("s", 3, None, 10)
            .query("after_row_ordinal"),
        None
    );
}

#[test]
fn token_is_refreshed_once_after_401_and_never_in_errors() {
    let transport = ScriptedTransport::new(|req| match req.header("Authorization") {
        Some("Bearer fresh") => ScriptedResponse::ok(json!({"ok": true})),
        _ => ScriptedResponse::error(401, "authentication_failed", "bad token"),
    });
    let provider = oversqlite_engine::remote::auth::CallbackToken(|refresh: bool| {
        Ok(Some(if refresh { "fresh" } else { "stale" }.to_string()))
    });
    let retry = RetryPolicy::no_retry();
    let remote = Remote {
        requests: Requests::new("https://h"),
        transport: std::sync::Arc::new(transport.clone()),
        tokens: &provider,
        retry: &retry,
        limits: oversqlite_engine::remote::cancel::Limits::none(),
    };
    let resp = remote
        .send_raw(remote.requests.capabilities("s"), "caps")
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(transport.requests().len(), 2);

    let denied = ScriptedTransport::new(|_| {
        ScriptedResponse::error(401, "authentication_failed", "bad token")
    });
    let token = SharedToken::new(Some("very-secret".into()));
    let remote = Remote {
        requests: Requests::new("https://h"),
        transport: std::sync::Arc::new(denied.clone()),
        tokens: &token,
        retry: &retry,
        limits: oversqlite_engine::remote::cancel::Limits::none(),
    };
    let err = remote
        .capabilities("s")
        .unwrap()
        .ok_or_error("capabilities request")
        .unwrap_err();
    assert_eq!(err.code(), "authentication_failed");
    assert!(!err.to_string().contains("very-secret"));
}

#[test]
fn transient_failures_are_retried_with_backoff_and_protocol_errors_are_not() {
    let transport = ScriptedTransport::new({
        let mut n = 0;
        move |_| {
            n += 1;
            match n {
                1 => ScriptedResponse::Fail("connection reset".into()),
                2 => ScriptedResponse::Raw(
                    503,
                    vec![("Retry-After".into(), "0".into())],
                    b"{\"error\":\"service_unavailable\"}".to_vec(),
                ),
                _ => ScriptedResponse::ok(json!({"ok": true})),
            }
        }
    });
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let token = SharedToken::new(None);
    let remote = Remote {
        requests: Requests::new("https://h"),
        transport: std::sync::Arc::new(transport.clone()),
        tokens: &token,
        retry: &retry,
        limits: oversqlite_engine::remote::cancel::Limits::none(),
    };
    assert_eq!(
        remote
            .send_raw(remote.requests.capabilities("s"), "caps")
            .unwrap()
            .status,
        200
    );
    assert_eq!(transport.requests().len(), 3);
    assert!(transport.requests()[0].header("Authorization").is_none());

    let conflict = Arc::new(ScriptedTransport::new(|_| {
        ScriptedResponse::error(409, "history_pruned", "gone")
    }));
    let remote = Remote {
        requests: Requests::new("https://h"),
        transport: conflict.clone(),
        tokens: &token,
        retry: &retry,
        limits: oversqlite_engine::remote::cancel::Limits::none(),
    };
    assert_eq!(
        remote
            .send_raw(remote.requests.pull("s", 0, 1, 0), "pull")
            .unwrap()
            .status,
        409
    );
    assert_eq!(conflict.requests().len(), 1, "409 must not be retried");
}
