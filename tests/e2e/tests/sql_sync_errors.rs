//! Argument checking, the open-transaction refusal, and authentication errors of the sync
//! functions, against a real server: bad input and refused calls change nothing locally
//! or on the server, and no error ever contains a token.
mod sql_sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use serde_json::json;
use sql_sync_support::{bare_device, device, Device};

fn user_known(server: &TestServer, user: &str) -> bool {
    !server
        .query_store(&format!(
            "SELECT 1 FROM _oversync_user_state WHERE user_id = '{user}'"
        ))
        .is_empty()
}

/// Registers `oversqlite_auth_token()` answering the queued tokens in turn (the last one
/// repeats); returns the call counter.
fn auth_function(d: &Device, answers: Vec<String>) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let answers = Mutex::new(answers);
    d.conn
        .create_scalar_function(
            "oversqlite_auth_token",
            0,
            FunctionFlags::SQLITE_UTF8,
            move |_| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answers = answers.lock().unwrap();
                Ok(answers[n.min(answers.len() - 1)].clone())
            },
        )
        .unwrap();
    calls
}

#[test]
fn wrong_argument_counts_and_types_change_nothing() {
    let server = TestServer::start();
    let d = device(&server, "args", "alice");
    let cases = [
        ("SELECT oversqlite_attach()", "oversqlite_attach: invalid_argument: expected 1 argument(s), got 0; usage: oversqlite_attach(user_id)"),
        ("SELECT oversqlite_attach(42)", "oversqlite_attach: invalid_argument: argument 1 (user_id) must be TEXT, got INTEGER"),
        ("SELECT oversqlite_attach('  ')", "oversqlite_attach: invalid_argument: "),
        ("SELECT oversqlite_push_pending(1)", "oversqlite_push_pending: invalid_argument: expected 0 argument(s), got 1"),
        ("SELECT oversqlite_pull_to_stable('x')", "oversqlite_pull_to_stable: invalid_argument: "),
        ("SELECT oversqlite_sync(1, 2)", "oversqlite_sync: invalid_argument: "),
        ("SELECT oversqlite_rebuild(1)", "oversqlite_rebuild: invalid_argument: "),
        ("SELECT oversqlite_detach(1)", "oversqlite_detach: invalid_argument: argument 1 (mode) must be TEXT"),
        ("SELECT oversqlite_sync_then_detach(1)", "oversqlite_sync_then_detach: invalid_argument: "),
        ("SELECT oversqlite_status(1)", "oversqlite_status: invalid_argument: "),
        ("SELECT oversqlite_watch_once('soon')", "oversqlite_watch_once: invalid_argument: argument 1 (timeout_ms) must be INTEGER, got TEXT"),
        ("SELECT oversqlite_upload_once(1)", "oversqlite_upload_once: invalid_argument: "),
        ("SELECT oversqlite_download_once(1, 0, 0, 0)", "oversqlite_download_once: invalid_argument: expected 0 to 3 argument(s), got 4"),
        ("SELECT oversqlite_download_once('ten')", "oversqlite_download_once: invalid_argument: argument 1 (limit) must be INTEGER, got TEXT"),
        ("SELECT oversqlite_download_once(0)", "oversqlite_download_once: invalid_argument: limit must be at least 1"),
        ("SELECT oversqlite_download_once(10, 2)", "oversqlite_download_once: invalid_argument: include_self must be 0 or 1"),
        ("SELECT oversqlite_download_once(10, 0, -1)", "oversqlite_download_once: invalid_argument: until must be 0 (no limit) or a bundle sequence, got -1"),
        ("SELECT oversqlite_sync_once(10, 2)", "oversqlite_sync_once: invalid_argument: include_self must be 0 or 1"),
        ("SELECT oversqlite_sync_once(10, 0, 0)", "oversqlite_sync_once: invalid_argument: expected 0 to 2 argument(s), got 3"),
        ("SELECT oversqlite_sync_once(-1)", "oversqlite_sync_once: invalid_argument: limit must be at least 1"),
        ("SELECT oversqlite_set_token()", "oversqlite_set_token: invalid_argument: "),
        ("SELECT oversqlite_set_token(12)", "oversqlite_set_token: invalid_argument: argument 1 (token) must be TEXT, got INTEGER"),
        ("SELECT oversqlite_set_conflict_resolver()", "oversqlite_set_conflict_resolver: invalid_argument: "),
        ("SELECT oversqlite_set_conflict_resolver('newest_wins')", "oversqlite_set_conflict_resolver: invalid_argument: unknown policy \"newest_wins\""),
        ("SELECT oversqlite_set_conflict_resolver('custom')", "oversqlite_set_conflict_resolver: invalid_argument: the 'custom' policy needs function_name"),
        ("SELECT oversqlite_set_conflict_resolver('client_wins', NULL, 'f')", "oversqlite_set_conflict_resolver: invalid_argument: function_name is only used with the 'custom' policy"),
        ("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'no_such_fn')", "oversqlite_set_conflict_resolver: invalid_argument: no SQL function no_such_fn("),
        ("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'x; DROP TABLE users')", "oversqlite_set_conflict_resolver: invalid_argument: function name"),
        ("SELECT oversqlite_set_conflict_resolver('client_wins', 'ghosts')", "oversqlite_set_conflict_resolver: invalid_argument: table \"ghosts\" is not enabled for sync"),
        ("SELECT oversqlite_pause_uploads(1)", "oversqlite_pause_uploads: invalid_argument: "),
        ("SELECT oversqlite_resume_downloads(1)", "oversqlite_resume_downloads: invalid_argument: "),
    ];
    for (sql, prefix) in cases {
        let err = d.err(sql);
        assert!(err.starts_with(prefix), "{sql}: {err}");
    }
    // Nothing reached the server, nothing was attached, the policies are untouched.
    assert!(!user_known(&server, "alice"));
    assert_eq!(
        d.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );
    let policies = d.ok("SELECT oversqlite_set_conflict_resolver('server_wins')");
    assert_eq!(
        policies,
        json!({"default": {"policy": "server_wins"}, "tables": {}})
    );
    let paused = d.ok("SELECT oversqlite_resume_uploads()");
    assert_eq!(
        paused,
        json!({"uploads_paused": false, "downloads_paused": false})
    );
}

#[test]
fn inside_an_open_transaction_every_network_call_is_refused() {
    let server = TestServer::start();
    let fresh = device(&server, "tx-fresh", "bob");
    fresh.exec("BEGIN");
    let err = fresh.err("SELECT oversqlite_attach('bob')");
    assert!(
        err.starts_with("oversqlite_attach: transaction_open: "),
        "{err}"
    );
    assert!(err.contains("commit or roll back first"), "{err}");
    fresh.exec("ROLLBACK");
    assert!(!user_known(&server, "bob"), "no request was sent");

    let d = device(&server, "tx", "carol");
    d.ok("SELECT oversqlite_attach('carol')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let bundles = server.bundle_count("carol");
    d.exec("BEGIN");
    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    for f in [
        "push_pending",
        "pull_to_stable",
        "sync",
        "rebuild",
        "sync_then_detach",
        "upload_once",
        "sync_once",
        "detach",
    ] {
        let err = d.err(&format!("SELECT oversqlite_{f}()"));
        assert!(
            err.starts_with(&format!("oversqlite_{f}: transaction_open: ")),
            "{f}: {err}"
        );
    }
    let err = d.err("SELECT oversqlite_download_once(10)");
    assert!(
        err.starts_with("oversqlite_download_once: transaction_open: "),
        "{err}"
    );
    d.exec("COMMIT");
    assert_eq!(server.bundle_count("carol"), bundles, "nothing was pushed");
    assert_eq!(
        d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
        json!(2)
    );
    assert_eq!(
        d.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("attached")
    );
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["row_count"],
        json!(2)
    );
}

#[test]
fn no_token_fails_before_any_request() {
    let server = TestServer::start();
    let d = bare_device(&server, "no-token");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let err = d.err("SELECT oversqlite_attach('dave')");
    assert!(err.starts_with("oversqlite_attach: token_unavailable: no bearer token: call oversqlite_set_token(token)"), "{err}");
    assert!(
        err.contains("OVERSQLITE_TOKEN") && err.contains("oversqlite_auth_token()"),
        "{err}"
    );
    assert!(
        !user_known(&server, "dave"),
        "no request reached the server"
    );
    assert_eq!(
        d.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );
    assert_eq!(d.users(), ["u1=Ada"]);

    // Clearing a token set earlier is the same as never setting one.
    let set = d.ok(&format!(
        "SELECT oversqlite_set_token('{}')",
        server.token("dave")
    ));
    assert_eq!(set, json!({"token_set": true}));
    assert_eq!(
        d.ok("SELECT oversqlite_set_token(NULL)"),
        json!({"token_set": false})
    );
    let err = d.err("SELECT oversqlite_attach('dave')");
    assert!(
        err.starts_with("oversqlite_attach: token_unavailable: "),
        "{err}"
    );
}

#[test]
fn a_rejected_token_names_the_status_but_never_the_token() {
    let server = TestServer::start();
    let d = bare_device(&server, "bad-token");
    let bad = server.bad_token("erin");
    let set = host_text(&d, &format!("SELECT oversqlite_set_token('{bad}')"));
    assert!(!set.contains(&bad), "set_token echoes nothing: {set}");
    let err = d.err("SELECT oversqlite_attach('erin')");
    assert!(
        err.starts_with("oversqlite_attach: authentication_failed: "),
        "{err}"
    );
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains(&bad), "token leaked into {err}");
    for part in bad.split('.') {
        assert!(!err.contains(part), "token part leaked into {err}");
    }
    assert!(!user_known(&server, "erin"));
    assert_eq!(
        d.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );
}

fn host_text(d: &Device, sql: &str) -> String {
    d.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn the_host_token_function_is_asked_again_after_a_401() {
    let server = TestServer::start();
    let d = bare_device(&server, "host-fn");
    let calls = auth_function(&d, vec![server.bad_token("frank"), server.token("frank")]);
    let attach = d.ok("SELECT oversqlite_attach('frank')");
    assert_eq!(attach["outcome"], json!("started_empty"), "{attach}");
    let n = calls.load(Ordering::SeqCst);
    assert!(
        n >= 3,
        "asked per request, and once more after the 401: {n}"
    );

    // A host function that only ever has a rejected token: asked, asked again, then 401.
    let e = bare_device(&server, "host-fn-bad");
    let bad = server.bad_token("gina");
    let calls = auth_function(&e, vec![bad.clone()]);
    let err = e.err("SELECT oversqlite_attach('gina')");
    assert!(
        err.starts_with("oversqlite_attach: authentication_failed: "),
        "{err}"
    );
    assert!(err.contains("HTTP 401") && !err.contains(&bad), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one request, one retry after the 401"
    );

    // A host function that raises: the call fails with its message, nothing is sent.
    let f = bare_device(&server, "host-fn-raises");
    f.conn
        .create_scalar_function(
            "oversqlite_auth_token",
            0,
            FunctionFlags::SQLITE_UTF8,
            |_| Err::<String, _>(rusqlite::Error::UserFunctionError("keychain locked".into())),
        )
        .unwrap();
    let err = f.err("SELECT oversqlite_attach('hank')");
    assert!(err.starts_with("oversqlite_attach: token_unavailable: the host function oversqlite_auth_token() failed: keychain locked"), "{err}");
    assert!(!user_known(&server, "hank"));
}

#[test]
fn set_token_wins_over_the_host_function() {
    let server = TestServer::start();
    let d = bare_device(&server, "precedence");
    let calls = auth_function(&d, vec![server.bad_token("ivan")]);
    d.sql("SELECT oversqlite_set_token(?1)", &[&server.token("ivan")])
        .unwrap();
    d.ok("SELECT oversqlite_attach('ivan')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the explicit token is used, the host is not asked"
    );

    // Cleared: the host function takes over (here with a rejected token).
    d.ok("SELECT oversqlite_set_token(NULL)");
    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let err = d.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: authentication_failed: "),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(server.bundle_count("ivan"), 1);
}

#[test]
fn attach_refuses_a_jwt_for_another_user_before_any_request() {
    let server = TestServer::start();
    let d = device(&server, "token-mismatch", "alice");
    let alice_token = server.token("alice");
    server.upsert_user("alice", "INSERT", "a1", "Alice's row");
    d.exec("INSERT INTO users VALUES ('b1', 'Local')");

    let err = d.err("SELECT oversqlite_attach('bob')");
    assert!(
        err.starts_with("oversqlite_attach: token_user_mismatch: "),
        "{err}"
    );
    assert!(
        err.contains("\"alice\"") && err.contains("\"bob\""),
        "{err}"
    );
    for part in alice_token.split('.') {
        assert!(!err.contains(part), "token part leaked into {err}");
    }
    assert!(!user_known(&server, "bob"), "no request reached the server");
    assert_eq!(
        d.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );
    // alice's server data was not bound locally as bob's.
    assert_eq!(d.users(), ["b1=Local"]);
    assert_eq!(d.count("SELECT count(*) FROM oversqlite_pending"), 1);

    // Refused before any request: a server that is gone does not change the answer.
    let offline = bare_device(&server, "token-mismatch-offline");
    offline.exec("UPDATE _oversqlite_config SET server_url = 'http://127.0.0.1:9'");
    offline
        .sql("SELECT oversqlite_set_token(?1)", &[&alice_token])
        .unwrap();
    let err = offline.err("SELECT oversqlite_attach('bob')");
    assert!(
        err.starts_with("oversqlite_attach: token_user_mismatch: "),
        "{err}"
    );

    // The matching user attaches with the same token.
    let attach = d.ok("SELECT oversqlite_attach('alice')");
    assert_eq!(attach["status"], json!("connected"), "{attach}");

    // Opaque (non-JWT) tokens are still sent; the server decides (here: 401).
    let opaque = bare_device(&server, "token-opaque");
    opaque
        .sql(
            "SELECT oversqlite_set_token('opaque-token-0123456789')",
            &[],
        )
        .unwrap();
    let err = opaque.err("SELECT oversqlite_attach('bob')");
    assert!(
        err.starts_with("oversqlite_attach: authentication_failed: "),
        "{err}"
    );
    assert!(!err.contains("opaque-token-0123456789"), "{err}");
}
