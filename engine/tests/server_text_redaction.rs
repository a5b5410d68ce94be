//! Item 5 of issue #10: a server that echoes the request's `Authorization` header into
//! its answer must not put the bearer token into an engine error; response-derived text
//! is also cut to `MAX_SERVER_TEXT_CHARS`.
mod support;

use std::sync::Arc;

use oversqlite_engine::remote::auth::SharedToken;
use oversqlite_engine::remote::redact::MAX_SERVER_TEXT_CHARS;
use oversqlite_engine::remote::transport::ScriptedResponse;
use oversqlite_engine::ErrorKind;
use serde_json::json;
use support::fake_server::{route, FakeServer};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2VjcmV0LXNpZ25hdHVyZQ";

fn auth_header(req: &oversqlite_engine::remote::transport::HttpRequest) -> String {
    req.header("Authorization").unwrap_or("").to_string()
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    for part in TOKEN.split('.') {
        assert!(!text.contains(part), "token part leaked: {text}");
    }
}

/// A device whose every `route` request is answered by `answer(authorization header)`.
fn device_answering(
    which: &'static str,
    answer: impl Fn(String) -> ScriptedResponse + Send + 'static,
) -> (
    support::TestDb,
    rusqlite::Connection,
    oversqlite_engine::SyncClient,
) {
    let server =
        FakeServer::new(move |_, req| (route(req).0 == which).then(|| answer(auth_header(req))));
    let (db, conn, mut client) = support::users_device(&server);
    client.set_token_provider(Arc::new(SharedToken::new(Some(TOKEN.to_string()))));
    (db, conn, client)
}

#[test]
fn server_error_text_echoing_the_authorization_header_is_redacted() {
    // 4xx/5xx error envelopes: code and message both echo the header.
    for status in [400u16, 401, 403, 500] {
        let (_db, conn, mut c) = device_answering("connect", move |auth| {
            ScriptedResponse::Json(
                status,
                json!({"error": format!("bad {auth}"), "message": format!("you sent Authorization: {auth}; token {}", TOKEN)}),
            )
        });
        let e = c.attach(&conn, "user-1").unwrap_err();
        assert_eq!(e.http_status, Some(status), "{e}");
        let kind = if status == 401 {
            ErrorKind::AuthenticationFailed
        } else {
            ErrorKind::HttpError
        };
        assert_eq!(e.kind, kind, "{e}");
        let shown = e.to_string();
        assert_no_token(&shown);
        assert_no_token(e.server_code.as_deref().unwrap_or(""));
        assert!(
            shown.contains("you sent Authorization: [redacted]; token [redacted]"),
            "{shown}"
        );
        assert_eq!(e.server_code.as_deref(), Some("bad [redacted]"));
        assert_eq!(
            support::scalar_text(&conn, "SELECT binding_state FROM _sync_attachment_state"),
            "anonymous"
        );
    }
}

#[test]
fn server_error_text_is_capped() {
    let (_db, conn, mut c) = device_answering("connect", |auth| {
        ScriptedResponse::error(500, "boom", &format!("{}{auth}", "x".repeat(5000)))
    });
    let e = c.attach(&conn, "user-1").unwrap_err();
    assert_no_token(&e.message);
    assert!(
        e.message.len() < MAX_SERVER_TEXT_CHARS + 200,
        "{} chars",
        e.message.len()
    );
    assert!(e.message.contains('…'), "{}", e.message);
}

#[test]
fn malformed_answer_quoting_the_authorization_header_is_redacted() {
    // serde quotes the offending value of a 2xx body in its error.
    let (_db, conn, mut c) = device_answering("connect", |auth| {
        ScriptedResponse::ok(json!({"resolution": auth}))
    });
    let e = c.attach(&conn, "user-1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProtocolError, "{e}");
    assert_no_token(&e.to_string());
    assert!(e.message.contains("[redacted]"), "{}", e.message);
}

#[test]
fn pull_error_echoing_the_authorization_header_is_redacted() {
    // The pull's error body arrives through the spool file, a separate path.
    let server = FakeServer::new(|_, req| {
        (route(req).0 == "pull").then(|| {
            ScriptedResponse::error(
                503,
                "unavailable",
                &format!("header was {}", auth_header(req)),
            )
        })
    });
    let (_db, conn, mut c) = support::users_device(&server);
    c.set_token_provider(Arc::new(SharedToken::new(Some(TOKEN.to_string()))));
    c.attach(&conn, "user-1").unwrap();
    let e = c.pull_to_stable(&conn).unwrap_err();
    assert_eq!(e.http_status, Some(503), "{e}");
    assert_no_token(&e.to_string());
    assert!(e.message.contains("header was [redacted]"), "{}", e.message);
}
