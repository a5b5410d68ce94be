//! Pausing a direction (per connection, no I/O, said in the report) and the one-shot
//! calls of the earlier SQLiteNow API, against a real server.
//!
//! "No request" is observable twice over: the server's store does not change, and the
//! connection's only token source is a host `oversqlite_auth_token()` function that
//! counts how often it is asked (once per request).
mod sql_sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use serde_json::json;
use sql_sync_support::{bare_device, device, Device};

fn counted_token(d: &Device, token: String) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    d.conn
        .create_scalar_function(
            "oversqlite_auth_token",
            0,
            FunctionFlags::SQLITE_UTF8,
            move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(token.clone())
            },
        )
        .unwrap();
    calls
}

#[test]
fn paused_uploads_send_nothing_and_say_so() {
    let server = TestServer::start();
    let d = bare_device(&server, "pause-up");
    let requests = counted_token(&d, server.token("alice"));
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    assert_eq!(
        d.ok("SELECT oversqlite_pause_uploads()"),
        json!({"uploads_paused": true, "downloads_paused": false})
    );
    let before = requests.load(Ordering::SeqCst);

    let push = d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(
        push,
        json!({"outcome": "skipped", "skipped": "uploads_paused", "row_count": 0, "conflicts_resolved": 0, "changed_tables": []})
    );
    let upload = d.ok("SELECT oversqlite_upload_once()");
    assert_eq!(
        upload,
        json!({"total": 0, "applied": 0, "conflict": 0, "invalid": 0, "materialize_error": 0, "invalid_reasons": {}, "first_error_message": null, "foreign_key_resolutions": [], "skipped": "uploads_paused"})
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "no request while paused"
    );
    assert_eq!(server.bundle_count("alice"), 0);
    let status = d.ok("SELECT oversqlite_status()");
    assert_eq!(status["uploads_paused"], json!(true));
    assert_eq!(status["pending"]["pending_row_count"], json!(1));

    // Pausing is per connection: another connection to the same file is not paused.
    let other = d.reopen();
    let flags: String = other
        .query_row("SELECT oversqlite_resume_downloads()", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        flags,
        r#"{"downloads_paused":false,"uploads_paused":false}"#
    );

    // sync with uploads paused and nothing local to push: only the pull runs.
    d.ok("SELECT oversqlite_resume_uploads()");
    d.ok("SELECT oversqlite_push_pending()");
    d.ok("SELECT oversqlite_pause_uploads()");
    server.upsert_user("alice", "INSERT", "u2", "Grace");
    let sync = d.ok("SELECT oversqlite_sync()");
    assert_eq!(sync["push_outcome"], json!("skipped"), "{sync}");
    assert_eq!(sync["skipped"], json!("uploads_paused"));
    assert_eq!(
        sync["remote_outcome"],
        json!("applied_incremental"),
        "{sync}"
    );
    assert_eq!(d.users(), ["u1=Ada", "u2=Grace"]);
    assert_sync_members(&sync, 0);
    // A change written while uploads are paused stays pending, and the report says so.
    d.exec("INSERT INTO users VALUES ('u4', 'Barbara')");
    let sync = d.ok("SELECT oversqlite_sync()");
    assert_eq!(sync["skipped"], json!("uploads_paused"), "{sync}");
    assert_sync_members(&sync, 1);
    let err = d.err("SELECT oversqlite_sync_then_detach()");
    assert!(
        err.starts_with(
            "oversqlite_sync_then_detach: invalid_state: uploads or downloads are paused"
        ),
        "{err}"
    );

    let resumed = d.ok("SELECT oversqlite_resume_uploads()");
    assert_eq!(
        resumed,
        json!({"uploads_paused": false, "downloads_paused": false})
    );
    d.exec("INSERT INTO users VALUES ('u3', 'Edsger')");
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    assert_eq!(server.bundle_count("alice"), 3);
}

#[test]
fn paused_downloads_fetch_nothing_and_say_so() {
    let server = TestServer::start();
    let d = bare_device(&server, "pause-down");
    let requests = counted_token(&d, server.token("bob"));
    d.ok("SELECT oversqlite_attach('bob')");
    server.upsert_user("bob", "INSERT", "u1", "Ada");
    d.ok("SELECT oversqlite_pause_downloads()");
    let before = requests.load(Ordering::SeqCst);

    let pull = d.ok("SELECT oversqlite_pull_to_stable()");
    assert_eq!(
        pull,
        json!({"outcome": "skipped", "skipped": "downloads_paused", "bundles_applied": 0, "changed_tables": []})
    );
    let down = d.ok("SELECT oversqlite_download_once(10)");
    assert_eq!(
        down,
        json!({"applied": 0, "bundles_applied": 0, "next_seq": 0, "skipped": "downloads_paused"})
    );
    assert_eq!(
        d.ok("SELECT oversqlite_rebuild()")["skipped"],
        json!("downloads_paused")
    );
    assert_eq!(
        d.ok("SELECT oversqlite_watch_once(200)")["skipped"],
        json!("downloads_paused")
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "no request while paused"
    );
    assert!(d.users().is_empty());

    // sync pushes but does not pull.
    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let sync = d.ok("SELECT oversqlite_sync()");
    assert_eq!(sync["push_outcome"], json!("committed"), "{sync}");
    assert_eq!(sync["remote_outcome"], json!("skipped"));
    assert_eq!(sync["skipped"], json!("downloads_paused"));
    assert_sync_members(&sync, 0);
    assert_eq!(d.users(), ["u2=Grace"]);
    assert_eq!(server.bundle_count("bob"), 2);

    // Both paused: sync and sync_once do nothing at all.
    d.ok("SELECT oversqlite_pause_uploads()");
    let before = requests.load(Ordering::SeqCst);
    d.exec("INSERT INTO users VALUES ('u3', 'Edsger')");
    let sync = d.ok("SELECT oversqlite_sync()");
    assert_eq!(sync["push_outcome"], json!("skipped"), "{sync}");
    assert_eq!(sync["remote_outcome"], json!("skipped"), "{sync}");
    assert_eq!(sync["skipped"], json!("uploads_and_downloads_paused"));
    assert_eq!(sync["changed_tables"], json!([]));
    assert_sync_members(&sync, 1);
    let once = d.ok("SELECT oversqlite_sync_once()");
    assert_eq!(once["downloaded"], json!(0));
    assert_eq!(once["skipped"], json!("uploads_and_downloads_paused"));
    assert_eq!(once["upload"]["skipped"], json!("uploads_paused"));
    assert_eq!(requests.load(Ordering::SeqCst), before);

    d.ok("SELECT oversqlite_resume_uploads()");
    d.ok("SELECT oversqlite_resume_downloads()");
    let push = d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["outcome"], json!("committed"), "{push}");
    let pull = d.ok("SELECT oversqlite_pull_to_stable()");
    assert_eq!(pull["outcome"], json!("applied_incremental"), "{pull}");
    assert_eq!(d.users(), ["u1=Ada", "u2=Grace", "u3=Edsger"]);
}

/// Every sync report, a paused direction's included, carries the members the README
/// documents as always present, with the pending count the status reports.
fn assert_sync_members(sync: &serde_json::Value, pending: i64) {
    assert_eq!(sync["complete"], json!(pending == 0), "{sync}");
    assert_eq!(sync["pending_row_count"], json!(pending), "{sync}");
    assert_eq!(sync["foreign_key_resolutions"], json!([]), "{sync}");
    assert_eq!(
        sync["status"]["pending"]["pending_row_count"],
        json!(pending),
        "{sync}"
    );
}

#[test]
fn one_shot_calls_report_counts() {
    let server = TestServer::start();
    let d = device(&server, "one-shot", "carol");
    d.ok("SELECT oversqlite_attach('carol')");

    let nothing = d.ok("SELECT oversqlite_upload_once()");
    assert_eq!(
        nothing,
        json!({"total": 0, "applied": 0, "conflict": 0, "invalid": 0, "materialize_error": 0, "invalid_reasons": {}, "first_error_message": null, "foreign_key_resolutions": []})
    );
    d.exec("INSERT INTO users VALUES ('u1', 'Ada'), ('u2', 'Grace')");
    let upload = d.ok("SELECT oversqlite_upload_once()");
    assert_eq!(
        upload,
        json!({"total": 2, "applied": 2, "conflict": 0, "invalid": 0, "materialize_error": 0, "invalid_reasons": {}, "first_error_message": null, "foreign_key_resolutions": []})
    );
    assert_eq!(server.rows("users", "carol", "id").len(), 2);

    // Three server bundles, downloaded one bundle per request.
    for (i, name) in ["Edsger", "Barbara", "Donald"].iter().enumerate() {
        server.upsert_user("carol", "INSERT", &format!("s{i}"), name);
    }
    let down = d.ok("SELECT oversqlite_download_once(1, 0, NULL)");
    assert_eq!(
        down,
        json!({"applied": 3, "bundles_applied": 3, "next_seq": 4})
    );
    assert_eq!(d.count("SELECT count(*) FROM users"), 5);
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(5, 1)"),
        json!({"applied": 0, "bundles_applied": 0, "next_seq": 4})
    );

    // Conflict counted by upload_once (server wins by default).
    server.upsert_user("carol", "UPDATE", "u1", "Server");
    d.exec("UPDATE users SET name = 'Local' WHERE id = 'u1'");
    d.exec("INSERT INTO users VALUES ('u3', 'New')");
    server.upsert_user("carol", "INSERT", "s9", "Late");
    let once = d.ok("SELECT oversqlite_sync_once(2)");
    assert_eq!(once["upload"]["conflict"], json!(1), "{once}");
    assert_eq!(once["upload"]["invalid"], json!(0), "{once}");
    assert!(once["downloaded"].as_i64().unwrap() >= 1, "{once}");
    assert!(
        d.users().contains(&"u1=Server".to_string()),
        "{:?}",
        d.users()
    );
    assert!(
        d.users().contains(&"s9=Late".to_string()),
        "{:?}",
        d.users()
    );
    assert_eq!(server.rows("users", "carol", "id").len(), 7);
}

#[test]
fn upload_once_reports_a_bundle_the_server_refuses() {
    let server = TestServer::start();
    let d = device(&server, "refused", "dave");
    d.ok("SELECT oversqlite_attach('dave')");
    // A post whose author exists nowhere: the server's foreign key check refuses the commit.
    d.exec("PRAGMA foreign_keys = OFF; INSERT INTO posts VALUES ('p1', 'ghost', 'Hello')");
    let upload = d.ok("SELECT oversqlite_upload_once()");
    assert_eq!(upload["total"], json!(1), "{upload}");
    assert_eq!(upload["applied"], json!(0));
    assert_eq!(upload["invalid"], json!(1));
    assert_eq!(
        upload["invalid_reasons"],
        json!({"push_commit_invalid": 1}),
        "{upload}"
    );
    let message = upload["first_error_message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 400") && message.contains("push_commit_invalid"),
        "{upload}"
    );
    // Nothing explains it (no race: the parent exists nowhere), and the message says
    // which row references what, and the way out.
    assert!(
        message.contains(r#"posts {"id":"p1"} references users {"id":"ghost"}"#)
            && message.contains("discard_local_changes"),
        "{upload}"
    );
    assert_eq!(server.bundle_count("dave"), 0);
    assert_eq!(
        d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
        json!(1),
        "kept locally"
    );
    let once = d.ok("SELECT oversqlite_sync_once()");
    assert_eq!(once["upload"]["invalid"], json!(1), "{once}");
    assert_eq!(once["download_skipped"], json!("pending_local_changes"));
}
