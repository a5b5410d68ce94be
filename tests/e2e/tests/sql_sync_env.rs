//! Process-wide settings, in one test so no parallel test sees them: the token
//! environment variables and their precedence, the panic guard of every sync function
//! (`OVERSQLITE_TEST_FAULT=panic:<function>`), and DIRECTONLY (no trigger or view may call
//! a sync function).
mod sql_sync_support;

use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use serde_json::json;
use sql_sync_support::bare_device;

const SYNC_FUNCTIONS: &[&str] = &[
    "oversqlite_attach('x')",
    "oversqlite_push_pending()",
    "oversqlite_pull_to_stable()",
    "oversqlite_sync()",
    "oversqlite_rebuild()",
    "oversqlite_detach()",
    "oversqlite_sync_then_detach()",
    "oversqlite_watch_once(10)",
    "oversqlite_status()",
    "oversqlite_source_info()",
    "oversqlite_upload_once()",
    "oversqlite_download_once(1)",
    "oversqlite_sync_once()",
    "oversqlite_set_token(NULL)",
    "oversqlite_set_call_timeout(NULL)",
    "oversqlite_set_conflict_resolver('server_wins')",
    "oversqlite_pause_uploads()",
    "oversqlite_resume_uploads()",
    "oversqlite_pause_downloads()",
    "oversqlite_resume_downloads()",
];

#[test]
fn environment_tokens_panic_guard_and_direct_only() {
    let server = TestServer::start();
    let good = server.token("alice");
    let bad = server.bad_token("alice");

    // OVERSQLITE_TOKEN alone is enough.
    std::env::set_var("OVERSQLITE_TOKEN", &good);
    let d = bare_device(&server, "env");
    assert_eq!(
        d.ok("SELECT oversqlite_attach('alice')")["outcome"],
        json!("started_empty")
    );

    // set_token wins over the environment.
    std::env::set_var("OVERSQLITE_TOKEN", &bad);
    d.sql("SELECT oversqlite_set_token(?1)", &[&good]).unwrap();
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    d.ok("SELECT oversqlite_set_token(NULL)");
    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let err = d.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: authentication_failed: ") && !err.contains(&bad),
        "{err}"
    );

    // The token file is read on every request: rewriting it takes effect at once.
    std::env::remove_var("OVERSQLITE_TOKEN");
    let file = std::env::temp_dir().join(format!("oversqlite-token-{}", std::process::id()));
    std::fs::write(&file, format!("{bad}\n")).unwrap();
    std::env::set_var("OVERSQLITE_TOKEN_FILE", &file);
    let err = d.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: authentication_failed: ") && !err.contains(&bad),
        "{err}"
    );
    std::fs::write(&file, format!("{good}\n")).unwrap();
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    std::fs::remove_file(&file).unwrap();
    d.exec("INSERT INTO users VALUES ('u3', 'Edsger')");
    let err = d.err("SELECT oversqlite_push_pending()");
    assert!(
        err.starts_with("oversqlite_push_pending: token_unavailable: cannot read the token file"),
        "{err}"
    );

    // The host function comes before the environment.
    std::env::remove_var("OVERSQLITE_TOKEN_FILE");
    std::env::set_var("OVERSQLITE_TOKEN", &bad);
    let host_token = good.clone();
    d.conn
        .create_scalar_function(
            "oversqlite_auth_token",
            0,
            FunctionFlags::SQLITE_UTF8,
            move |_| Ok(host_token.clone()),
        )
        .unwrap();
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    std::env::remove_var("OVERSQLITE_TOKEN");
    assert_eq!(server.bundle_count("alice"), 3);

    // Every sync function turns a panic into a SQL error; the connection keeps working.
    for call in SYNC_FUNCTIONS {
        let name = call.split('(').next().unwrap();
        std::env::set_var("OVERSQLITE_TEST_FAULT", format!("panic:{name}"));
        let err = d.err(&format!("SELECT {call}"));
        std::env::remove_var("OVERSQLITE_TEST_FAULT");
        assert!(
            err.starts_with(&format!("{name}: internal_error: unexpected panic")),
            "{call}: {err}"
        );
    }
    assert_eq!(
        d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
        json!(0)
    );

    // DIRECTONLY: a trigger or a view cannot reach the network or the credentials.
    d.exec("CREATE TABLE audit (n INTEGER)");
    d.exec("CREATE TRIGGER audit_sync AFTER INSERT ON audit BEGIN SELECT oversqlite_sync(); END");
    let err = d
        .conn
        .execute("INSERT INTO audit VALUES (1)", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsafe use of oversqlite_sync()"), "{err}");
    d.exec("CREATE VIEW leak AS SELECT oversqlite_set_token('stolen') AS t");
    let err = d.err("SELECT t FROM leak");
    assert!(
        err.contains("unsafe use of oversqlite_set_token()"),
        "{err}"
    );
    assert_eq!(d.count("SELECT count(*) FROM audit"), 0);
}
