//! The `TestServer` helper itself: start, tokens, test hooks, store queries, kill -9 and
//! restart on the same address and store.
use oversqlite_tests::server::TestServer;
use serde_json::json;

#[test]
fn test_server_hooks_store_and_restart() {
    let mut server = TestServer::start();
    let token = server.token("alice");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let (status, caps) = server.get("/sync/capabilities", Some((&token, "probe-source")));
    assert_eq!(status, 200, "{caps}");
    let (status, _) = server.get(
        "/sync/capabilities",
        Some((&server.bad_token("alice"), "probe-source")),
    );
    assert_eq!(status, 401);

    assert_eq!(server.bundle_count("alice"), 0);
    let commit = server.upsert_user("alice", "INSERT", "u1", "Ada");
    assert_eq!(commit["bundle_seq"], json!(1));
    assert_eq!(server.bundle_count("alice"), 1);
    assert_eq!(
        server.rows("users", "alice", "id, name"),
        vec![vec![json!("u1"), json!("Ada")]]
    );

    let url = server.url.clone();
    server.kill9();
    assert!(!server.is_running());
    server.restart();
    assert_eq!(server.url, url, "same address after restart");
    assert_eq!(
        server.bundle_count("alice"),
        1,
        "the store survives kill -9"
    );
    server.upsert_user("alice", "UPDATE", "u1", "Ada L.");
    server.set_retention_floor("alice", 1);
    assert_eq!(server.watch_subscribers("alice"), 0);
    server.reset();
    assert_eq!(server.bundle_count("alice"), 0);
}
