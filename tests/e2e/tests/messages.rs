//! Issue #10 item 12: the messages a new user meets say what happened and what to do.
//! Each test drives one mistake through SQL against a real server and asserts the
//! `oversqlite_<fn>: <code>:` prefix and the advice words (and, where it matters, the
//! SQLite result code and that nothing secret is echoed).
//!
//! Needs `cargo build -p oversqlite --features test-faults` and `cargo build -p
//! oversqlite-server`.
mod sql_sync_support;

use oversqlite_tests::host;
use oversqlite_tests::server::{TestServer, SCHEMA};
use rusqlite::ffi;
use serde_json::json;
use sql_sync_support::{bare_device, device, Device};

/// A one-value SELECT that must fail: the host's (extended result code, message).
fn failure(d: &Device, sql: &str) -> (i32, String) {
    match d.conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0)) {
        Ok(v) => panic!("{sql} should fail, returned {v:?}"),
        Err(rusqlite::Error::SqliteFailure(e, message)) => {
            (e.extended_code, message.unwrap_or_default())
        }
        Err(other) => panic!("{sql}: not a SQLite failure: {other:?}"),
    }
}

fn assert_contains(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "missing {w:?} in: {text}");
    }
}

/// A device whose server URL is `url` (not the test server's root), with a valid token.
fn device_at(server: &TestServer, name: &str, url: &str) -> Device {
    let d = device(server, name, "alice");
    // Re-initialising keeps the registered tables; only the URL changes.
    host::call(&d.conn, "SELECT oversqlite_init(?1, ?2)", &[&url, &SCHEMA]).unwrap();
    d
}

#[test]
fn unauthorized_gives_the_servers_reason_and_says_check_the_tokens_expiry_and_secret() {
    let server = TestServer::start();
    let d = bare_device(&server, "msg-401");
    let bad = server.bad_token("alice");
    d.sql("SELECT oversqlite_set_token(?1)", &[&bad]).unwrap();
    let err = d.err("SELECT oversqlite_attach('alice')");
    assert!(
        err.starts_with("oversqlite_attach: authentication_failed: "),
        "{err}"
    );
    // Our server answers a plain-text "Invalid token" (as the reference does).
    assert_contains(
        &err,
        &["HTTP 401", "Invalid token", "expiry", "server's secret"],
    );
    // Every place a token can come from is named.
    assert_contains(
        &err,
        &[
            "oversqlite_set_token, OVERSQLITE_TOKEN/OVERSQLITE_TOKEN_FILE, or the host's oversqlite_auth_token()",
        ],
    );
    assert!(!err.contains(&bad), "the token is echoed: {err}");
}

#[test]
fn attach_and_detach_inside_a_transaction_say_the_call_talks_to_the_server() {
    let server = TestServer::start();
    let d = device(&server, "msg-in-tx", "alice");
    for (sql, name) in [
        ("SELECT oversqlite_attach('alice')", "oversqlite_attach"),
        ("SELECT oversqlite_detach()", "oversqlite_detach"),
    ] {
        d.exec("BEGIN");
        let err = d.err(sql);
        d.exec("ROLLBACK");
        assert!(
            err.starts_with(&format!("{name}: transaction_open: ")),
            "{err}"
        );
        assert_contains(
            &err,
            &[
                "talks to the server",
                "cannot run inside an open transaction",
                "commit or roll back first",
            ],
        );
        assert!(!err.contains("cannot sync"), "{err}");
    }
}

#[test]
fn a_single_unsent_change_is_counted_in_the_singular() {
    let server = TestServer::start();
    let d = device(&server, "msg-one", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let err = d.err("SELECT oversqlite_pull_to_stable()");
    assert_contains(&err, &["cannot pull while 1 local change is unsent"]);
    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let err = d.err("SELECT oversqlite_pull_to_stable()");
    assert_contains(&err, &["cannot pull while 2 local changes are unsent"]);
}

#[test]
fn https_url_to_a_plain_http_server_says_the_server_does_not_speak_tls() {
    let server = TestServer::start();
    let https = server.url.replacen("http://", "https://", 1);
    let d = device_at(&server, "msg-tls", &https);
    let err = d.err("SELECT oversqlite_attach('alice')");
    assert!(
        err.starts_with("oversqlite_attach: network_error: "),
        "{err}"
    );
    assert_contains(&err, &["does not speak TLS", &server.url]);
    assert!(!err.starts_with("received corrupt message"), "{err}");
}

#[test]
fn url_with_an_extra_path_says_it_must_be_the_sync_api_root_and_names_the_url() {
    let server = TestServer::start();
    let url = format!("{}/api/v1", server.url);
    let d = device_at(&server, "msg-404", &url);
    let err = d.err("SELECT oversqlite_attach('alice')");
    assert!(err.starts_with("oversqlite_attach: http_error: "), "{err}");
    assert_contains(
        &err,
        &[
            "HTTP 404",
            "sync API root",
            "http://host:port",
            &format!("{url}/sync/capabilities"),
        ],
    );
}

#[test]
fn status_works_inside_a_transaction_and_without_an_attach_on_this_connection() {
    let server = TestServer::start();
    // Never attached anywhere: status reports the local state.
    let d = bare_device(&server, "msg-status");
    let status = d.ok("SELECT oversqlite_status()");
    assert_eq!(status["connection_attached"], json!(false), "{status}");
    assert_eq!(status["attached_user_id"], json!(null), "{status}");

    // Attached by one connection; a second connection (no attach, no token) reads it,
    // inside its own transaction, and sees its own uncommitted write as pending.
    let a = device(&server, "msg-status-a", "alice");
    a.ok("SELECT oversqlite_attach('alice')");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let mine = a.ok("SELECT oversqlite_status()");
    assert_eq!(mine["connection_attached"], json!(true), "{mine}");
    let other = Device {
        conn: a.reopen(),
        path: a.path.clone(),
    };
    other.exec("BEGIN");
    other.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let status = other.ok("SELECT oversqlite_status()");
    other.exec("ROLLBACK");
    assert_eq!(status["pending"]["pending_row_count"], json!(2), "{status}");
    assert_eq!(status["attached_user_id"], json!("alice"), "{status}");
    assert_eq!(status["connection_attached"], json!(false), "{status}");
    assert_eq!(status["uploads_paused"], json!(false), "{status}");
}

#[test]
fn pending_local_changes_with_uploads_paused_says_resume_uploads_then_sync() {
    let server = TestServer::start();
    let d = device(&server, "msg-paused", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    d.ok("SELECT oversqlite_pause_uploads()");
    for sql in [
        "SELECT oversqlite_rebuild()",
        "SELECT oversqlite_pull_to_stable()",
    ] {
        let name = &sql[7..sql.len() - 2];
        let err = d.err(sql);
        assert!(
            err.starts_with(&format!("{name}: pending_local_changes: ")),
            "{err}"
        );
        assert_contains(
            &err,
            &[
                "uploads are paused",
                "oversqlite_resume_uploads(), then oversqlite_sync()",
            ],
        );
        // Not the circular advice: sync alone sends nothing while uploads are paused.
        assert!(!err.contains("call oversqlite_sync()"), "{err}");
    }
    d.ok("SELECT oversqlite_resume_uploads()");
    assert_eq!(
        d.ok("SELECT oversqlite_sync()")["push_outcome"],
        "committed"
    );
}

#[test]
fn attach_required_says_this_connection_has_not_attached_though_the_database_is() {
    let server = TestServer::start();
    let a = device(&server, "msg-attach", "alice");
    a.ok("SELECT oversqlite_attach('alice')");
    let other = Device {
        conn: a.reopen(),
        path: a.path.clone(),
    };
    let err = other.err("SELECT oversqlite_sync()");
    assert!(
        err.starts_with("oversqlite_sync: attach_required: "),
        "{err}"
    );
    assert_contains(
        &err,
        &[
            "this connection has not attached",
            "attached to user \"alice\"",
            "oversqlite_attach('alice') on this connection",
        ],
    );

    let never = bare_device(&server, "msg-attach-never");
    let err = never.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: attach_required: "),
        "{err}"
    );
    assert_contains(
        &err,
        &[
            "this connection has not attached",
            "not attached to any user",
        ],
    );
}

#[test]
fn database_is_locked_advises_a_busy_timeout_and_keeps_sqlite_busy() {
    let server = TestServer::start();
    let d = device(&server, "msg-busy", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    // The host's other writer holds the write lock; this connection has no busy timeout.
    let writer = rusqlite::Connection::open(&d.path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (code, err) = failure(&d, "SELECT oversqlite_sync()");
    assert_eq!(code & 0xff, ffi::SQLITE_BUSY, "{err}");
    assert!(err.starts_with("oversqlite_sync: sqlite_error: "), "{err}");
    assert_contains(
        &err,
        &["database is locked", "PRAGMA busy_timeout = 5000", "retry"],
    );
    writer.execute_batch("ROLLBACK").unwrap();
    // As advised: with a busy timeout the retry succeeds.
    d.exec("PRAGMA busy_timeout = 5000");
    assert_eq!(
        d.ok("SELECT oversqlite_sync()")["push_outcome"],
        "committed"
    );
}

#[test]
fn attached_to_other_user_names_sync_then_detach_as_the_way_to_switch_users() {
    let server = TestServer::start();
    let d = device(&server, "msg-other-user", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    let bob = server.token("bob");
    d.sql("SELECT oversqlite_set_token(?1)", &[&bob]).unwrap();
    let err = d.err("SELECT oversqlite_attach('bob')");
    assert!(
        err.starts_with("oversqlite_attach: attached_to_other_user: "),
        "{err}"
    );
    assert_contains(
        &err,
        &[
            "\"alice\"",
            "oversqlite_sync_then_detach()",
            "oversqlite_detach()",
        ],
    );
}
