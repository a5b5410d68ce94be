//! Attach outcomes and the lifecycle functions through the loaded extension against a
//! real server: JSON shapes and the rows they move.
mod sql_sync_support;

use oversqlite_tests::server::TestServer;
use serde_json::json;
use sql_sync_support::{bare_device, device};

#[test]
fn started_empty_then_push_pull_sync_status() {
    let server = TestServer::start();
    let a = device(&server, "empty-a", "alice");
    let attach = a.ok("SELECT oversqlite_attach('alice')");
    assert_eq!(attach["status"], json!("connected"), "{attach}");
    assert_eq!(attach["outcome"], json!("started_empty"), "{attach}");
    assert_eq!(
        attach["sync_status"]["authority"],
        json!("authoritative_empty"),
        "{attach}"
    );
    assert_eq!(attach["changed_tables"], json!([]));

    a.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let status = a.ok("SELECT oversqlite_status()");
    assert_eq!(status["pending"]["pending_row_count"], json!(1), "{status}");
    assert_eq!(status["uploads_paused"], json!(false));

    let push = a.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["outcome"], json!("committed"), "{push}");
    assert_eq!(push["bundle_seq"], json!(1));
    assert_eq!(push["row_count"], json!(1));
    assert_eq!(push["changed_tables"], json!(["users"]), "{push}");
    assert_eq!(
        server.rows("users", "alice", "id, name"),
        vec![vec![json!("u1"), json!("Ada")]]
    );

    let again = a.ok("SELECT oversqlite_push_pending()");
    assert_eq!(again["outcome"], json!("no_change"), "{again}");

    server.upsert_user("alice", "INSERT", "u2", "Grace");
    let pull = a.ok("SELECT oversqlite_pull_to_stable()");
    assert_eq!(pull["outcome"], json!("applied_incremental"), "{pull}");
    assert_eq!(pull["bundles_applied"], json!(1));
    assert_eq!(pull["changed_tables"], json!(["users"]));
    assert_eq!(a.users(), ["u1=Ada", "u2=Grace"]);

    a.exec("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'");
    server.upsert_user("alice", "INSERT", "u3", "Edsger");
    let sync = a.ok("SELECT oversqlite_sync()");
    assert_eq!(sync["push_outcome"], json!("committed"), "{sync}");
    assert_eq!(
        sync["remote_outcome"],
        json!("applied_incremental"),
        "{sync}"
    );
    assert_eq!(a.users(), ["u1=Ada L.", "u2=Grace", "u3=Edsger"]);
    assert_eq!(server.rows("users", "alice", "id, name").len(), 3);
    assert_eq!(
        server.rows("users", "alice", "name, id")[0],
        vec![json!("Ada L."), json!("u1")]
    );
    let status = a.ok("SELECT oversqlite_status()");
    assert_eq!(
        status["authority"],
        json!("authoritative_materialized"),
        "{status}"
    );
    assert_eq!(status["last_bundle_seq_seen"], json!(4), "{status}");

    let info = a.ok("SELECT oversqlite_source_info()");
    assert_eq!(info["binding_state"], json!("attached"), "{info}");
    assert_eq!(info["attached_user_id"], json!("alice"));

    let rebuild = a.ok("SELECT oversqlite_rebuild()");
    assert_eq!(rebuild["outcome"], json!("applied_snapshot"), "{rebuild}");
    assert_eq!(a.users(), ["u1=Ada L.", "u2=Grace", "u3=Edsger"]);
}

#[test]
fn seeded_from_local_used_remote_state_and_resumed() {
    let server = TestServer::start();
    let a = device(&server, "seed-a", "bob");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada'), ('u2', 'Grace')");
    let attach = a.ok("SELECT oversqlite_attach('bob')");
    assert_eq!(attach["outcome"], json!("seeded_from_local"), "{attach}");
    assert_eq!(
        attach["sync_status"]["authority"],
        json!("pending_local_seed"),
        "{attach}"
    );
    let push = a.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["row_count"], json!(2), "{push}");
    assert_eq!(server.bundle_count("bob"), 1);

    let b = device(&server, "seed-b", "bob");
    let attach = b.ok("SELECT oversqlite_attach('bob')");
    assert_eq!(attach["status"], json!("connected"));
    assert_eq!(attach["outcome"], json!("used_remote_state"), "{attach}");
    assert_eq!(attach["restore"]["row_count"], json!(2), "{attach}");
    assert_eq!(attach["changed_tables"], json!(["posts", "users"]));
    assert_eq!(b.users(), ["u1=Ada", "u2=Grace"]);

    let again = b.ok("SELECT oversqlite_attach('bob')");
    assert_eq!(again["outcome"], json!("resumed_attached_state"), "{again}");

    // A new connection resumes from the persisted binding without any request: it has
    // no token at all.
    let other = b.reopen();
    let text: String = other
        .query_row("SELECT oversqlite_attach('bob')", [], |r| r.get(0))
        .unwrap();
    let resumed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        resumed["outcome"],
        json!("resumed_attached_state"),
        "{resumed}"
    );
    // The token is per connection: this one has none, so a request fails before sending.
    let err = other
        .query_row("SELECT oversqlite_pull_to_stable()", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("oversqlite_pull_to_stable: token_unavailable: "),
        "{err}"
    );
    let err = other
        .query_row("SELECT oversqlite_attach('carol')", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("oversqlite_attach: attached_to_other_user: "),
        "{err}"
    );
}

#[test]
fn two_devices_racing_the_seed_lease_get_retry_later() {
    let server = TestServer::start();
    let a = device(&server, "race-a", "carol");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let b = device(&server, "race-b", "carol");
    b.exec("INSERT INTO users VALUES ('u9', 'Linus')");
    assert_eq!(
        a.ok("SELECT oversqlite_attach('carol')")["outcome"],
        json!("seeded_from_local")
    );
    let raced = b.ok("SELECT oversqlite_attach('carol')");
    assert_eq!(raced["status"], json!("retry_later"), "{raced}");
    assert!(
        raced["retry_after_seconds"].as_i64().unwrap() >= 1,
        "{raced}"
    );
    assert_eq!(
        raced.as_object().unwrap().len(),
        2,
        "exactly status and retry_after_seconds: {raced}"
    );
    // Not attached: the other operations ask for attach.
    let err = b.err("SELECT oversqlite_sync()");
    assert!(
        err.starts_with("oversqlite_sync: attach_required: "),
        "{err}"
    );

    a.ok("SELECT oversqlite_push_pending()");
    let attach = b.ok("SELECT oversqlite_attach('carol')");
    assert_eq!(attach["outcome"], json!("used_remote_state"), "{attach}");
}

#[test]
fn detach_blocked_then_sync_then_detach() {
    let server = TestServer::start();
    let a = device(&server, "detach-a", "dave");
    a.ok("SELECT oversqlite_attach('dave')");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    let blocked = a.ok("SELECT oversqlite_detach()");
    assert_eq!(
        blocked["outcome"],
        json!("blocked_unsynced_data"),
        "{blocked}"
    );
    assert_eq!(blocked["pending_row_count"], json!(1));
    assert_eq!(a.users(), ["u1=Ada"]);

    let err = a.err("SELECT oversqlite_detach('keep_everything')");
    assert!(
        err.starts_with("oversqlite_detach: invalid_argument: "),
        "{err}"
    );

    let done = a.ok("SELECT oversqlite_sync_then_detach()");
    assert_eq!(done["is_success"], json!(true), "{done}");
    assert_eq!(done["detach"], json!("detached"));
    assert_eq!(done["remaining_pending_row_count"], json!(0));
    assert_eq!(server.rows("users", "dave", "id"), vec![vec![json!("u1")]]);
    assert_eq!(
        a.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );

    // Attach again: the server's data comes back.
    let attach = a.ok("SELECT oversqlite_attach('dave')");
    assert_eq!(attach["outcome"], json!("used_remote_state"), "{attach}");
    assert_eq!(a.users(), ["u1=Ada"]);
    let detached = a.ok("SELECT oversqlite_detach()");
    assert_eq!(detached["outcome"], json!("detached"), "{detached}");
    assert_eq!(detached["pending_row_count"], json!(0));

    // Discarding unsent changes is explicit.
    a.ok("SELECT oversqlite_attach('dave')");
    a.exec("INSERT INTO users VALUES ('u2', 'Unsent')");
    let discarded = a.ok("SELECT oversqlite_detach('discard_local_changes')");
    assert_eq!(discarded["outcome"], json!("detached"), "{discarded}");
    assert_eq!(server.rows("users", "dave", "id"), vec![vec![json!("u1")]]);
}

#[test]
fn detach_never_deletes_unsent_changes_without_discard() {
    // A database that was never attached: its local rows are still unsent changes.
    let server = TestServer::start();
    let a = device(&server, "detach-never-attached", "frank");
    a.exec("INSERT INTO users VALUES ('u1', 'Local only')");
    assert_eq!(a.count("SELECT count(*) FROM oversqlite_pending"), 1);

    let blocked = a.ok("SELECT oversqlite_detach()");
    assert_eq!(
        blocked["outcome"],
        json!("blocked_unsynced_data"),
        "{blocked}"
    );
    assert_eq!(blocked["pending_row_count"], json!(1), "{blocked}");
    assert_eq!(blocked["changed_tables"], json!([]), "{blocked}");
    assert_eq!(a.users(), ["u1=Local only"]);
    assert_eq!(a.count("SELECT count(*) FROM oversqlite_pending"), 1);
    assert_eq!(
        a.ok("SELECT oversqlite_source_info()")["binding_state"],
        json!("anonymous")
    );

    let discarded = a.ok("SELECT oversqlite_detach('discard_local_changes')");
    assert_eq!(discarded["outcome"], json!("detached"), "{discarded}");
    assert_eq!(discarded["pending_row_count"], json!(0), "{discarded}");
    assert_eq!(
        discarded["changed_tables"],
        json!(["posts", "users"]),
        "{discarded}"
    );
    assert!(a.users().is_empty());
    assert_eq!(a.count("SELECT count(*) FROM oversqlite_pending"), 0);
    // Nothing reached the server.
    assert!(server.rows("users", "frank", "id").is_empty());
}

#[test]
fn watch_once_is_bounded_and_pulls_new_bundles() {
    let server = TestServer::start();
    let a = device(&server, "watch-a", "erin");
    a.ok("SELECT oversqlite_attach('erin')");
    let report = a.ok("SELECT oversqlite_watch_once(300)");
    assert_eq!(report["outcome"], json!("stopped"), "{report}");
    assert_eq!(report["changed_tables"], json!([]));

    server.upsert_user("erin", "INSERT", "u1", "Ada");
    let report = a.ok("SELECT oversqlite_watch_once(500)");
    assert!(report["pulls"].as_i64().unwrap() >= 1, "{report}");
    assert_eq!(report["changed_tables"], json!(["users"]), "{report}");
    assert_eq!(a.users(), ["u1=Ada"]);
    let err = a.err("SELECT oversqlite_watch_once(0)");
    assert!(
        err.starts_with("oversqlite_watch_once: invalid_argument: "),
        "{err}"
    );
}

#[test]
fn functions_without_a_configured_database_fail_clearly() {
    let server = TestServer::start();
    let d = bare_device(&server, "unattached");
    let err = d.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: attach_required: "),
        "{err}"
    );
    // Status is local only: it answers without an attach.
    let status = d.ok("SELECT oversqlite_status()");
    assert_eq!(status["connection_attached"], serde_json::json!(false));
    let mem = oversqlite_tests::host::memory();
    let err = oversqlite_tests::host::call(&mem, "SELECT oversqlite_attach('x')", &[]).unwrap_err();
    assert!(err.contains("oversqlite_attach: not_open: the sync runtime is not installed in this database; call oversqlite_open() first"), "{err}");
}
