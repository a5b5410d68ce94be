//! Conflict policies through `oversqlite_set_conflict_resolver`, against a real server:
//! the device pushed `u1 = 'Ada'`, the server then changed it to `'Server'`, and the
//! device, without pulling, changed it to `'Local'`; its push conflicts.
mod sql_sync_support;

use std::sync::{Arc, Mutex};

use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use serde_json::{json, Value};
use sql_sync_support::{device, Device};

fn conflicted(server: &TestServer, name: &str, user: &str) -> Device {
    let d = device(server, name, user);
    d.ok(&format!("SELECT oversqlite_attach('{user}')"));
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    assert_eq!(
        d.ok("SELECT oversqlite_push_pending()")["outcome"],
        json!("committed")
    );
    server.upsert_user(user, "UPDATE", "u1", "Server");
    d.exec("UPDATE users SET name = 'Local' WHERE id = 'u1'");
    d
}

fn server_name(server: &TestServer, user: &str) -> Value {
    server.rows("users", user, "name")[0][0].clone()
}

/// Registers `merge(table, key_json, server_row_json, local_payload_json)` answering
/// `answer(server_row, local)`; returns the recorded argument lists.
fn resolver_fn(
    d: &Device,
    name: &str,
    answer: fn(&Value, &Value) -> Option<String>,
) -> Arc<Mutex<Vec<Vec<Value>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    d.conn
        .create_scalar_function(name, 4, FunctionFlags::SQLITE_UTF8, move |ctx| {
            let args: Vec<Value> = (0..4)
                .map(|i| match ctx.get::<Option<String>>(i).unwrap() {
                    None => Value::Null,
                    Some(t) if i == 0 => json!(t),
                    Some(t) => serde_json::from_str(&t).unwrap(),
                })
                .collect();
            let out = answer(&args[2], &args[3]);
            log.lock().unwrap().push(args);
            Ok(out)
        })
        .unwrap();
    seen
}

#[test]
fn server_wins_by_default() {
    let server = TestServer::start();
    let d = conflicted(&server, "server-wins", "alice");
    let push = d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["conflicts_resolved"], json!(1), "{push}");
    assert_eq!(d.users(), ["u1=Server"]);
    assert_eq!(server_name(&server, "alice"), json!("Server"));
    assert_eq!(
        d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
        json!(0)
    );
}

#[test]
fn client_wins_for_the_client_and_per_table() {
    let server = TestServer::start();
    let d = conflicted(&server, "client-wins", "bob");
    let policies = d.ok("SELECT oversqlite_set_conflict_resolver('client_wins')");
    assert_eq!(
        policies,
        json!({"default": {"policy": "client_wins"}, "tables": {}})
    );
    let push = d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["conflicts_resolved"], json!(1), "{push}");
    assert_eq!(d.users(), ["u1=Local"]);
    assert_eq!(server_name(&server, "bob"), json!("Local"));

    // A per-table policy overrides the client default for that table only.
    let e = conflicted(&server, "per-table", "carol");
    e.ok("SELECT oversqlite_set_conflict_resolver('client_wins')");
    let policies = e.ok("SELECT oversqlite_set_conflict_resolver('server_wins', 'USERS')");
    assert_eq!(
        policies,
        json!({"default": {"policy": "client_wins"}, "tables": {"users": {"policy": "server_wins"}}})
    );
    e.ok("SELECT oversqlite_push_pending()");
    assert_eq!(e.users(), ["u1=Server"]);
    assert_eq!(server_name(&server, "carol"), json!("Server"));

    let policies = e.ok("SELECT oversqlite_set_conflict_resolver(NULL, 'users')");
    assert_eq!(
        policies,
        json!({"default": {"policy": "client_wins"}, "tables": {}}),
        "override removed"
    );
    let err = e.err("SELECT oversqlite_set_conflict_resolver(NULL)");
    assert!(
        err.starts_with(
            "oversqlite_set_conflict_resolver: invalid_argument: policy NULL needs a table"
        ),
        "{err}"
    );

    let f = conflicted(&server, "per-table-2", "dave");
    f.ok("SELECT oversqlite_set_conflict_resolver('client_wins', 'posts')");
    f.ok("SELECT oversqlite_push_pending()");
    assert_eq!(
        f.users(),
        ["u1=Server"],
        "the default (server_wins) still governs users"
    );
}

#[test]
fn custom_function_merges_and_sees_the_conflict() {
    let server = TestServer::start();
    let d = conflicted(&server, "custom-merge", "erin");
    let seen = resolver_fn(&d, "merge_names", |server_row, local| {
        Some(json!({"id": local["id"], "name": format!("{}+{}", server_row["name"].as_str().unwrap(), local["name"].as_str().unwrap())}).to_string())
    });
    let policies =
        d.ok("SELECT oversqlite_set_conflict_resolver('custom', 'users', 'merge_names')");
    assert_eq!(
        policies["tables"]["users"],
        json!({"policy": "custom", "function": "merge_names"})
    );
    let push = d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(push["conflicts_resolved"], json!(1), "{push}");
    assert_eq!(d.users(), ["u1=Server+Local"]);
    assert_eq!(server_name(&server, "erin"), json!("Server+Local"));
    let calls = seen.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0],
        vec![
            json!("users"),
            json!({"id": "u1"}),
            json!({"id": "u1", "name": "Server"}),
            json!({"id": "u1", "name": "Local"})
        ]
    );
}

#[test]
fn custom_function_answering_local_or_server() {
    let server = TestServer::start();
    let d = conflicted(&server, "custom-local", "frank");
    resolver_fn(&d, "keep_local", |_, _| Some("local".to_string()));
    d.ok("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'keep_local')");
    d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(d.users(), ["u1=Local"]);
    assert_eq!(server_name(&server, "frank"), json!("Local"));

    let e = conflicted(&server, "custom-server", "gina");
    resolver_fn(&e, "take_server", |_, _| Some("server".to_string()));
    e.ok("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'take_server')");
    e.ok("SELECT oversqlite_push_pending()");
    assert_eq!(e.users(), ["u1=Server"]);
    assert_eq!(server_name(&server, "gina"), json!("Server"));
}

#[test]
fn invalid_custom_answers_fail_closed_and_keep_the_local_intent() {
    let server = TestServer::start();
    let d = conflicted(&server, "custom-invalid", "hank");
    resolver_fn(&d, "confused", |_, _| Some("banana".to_string()));
    resolver_fn(&d, "partial", |_, _| {
        Some(r#"{"name": "only one column"}"#.to_string())
    });
    resolver_fn(&d, "silent", |_, _| None);
    resolver_fn(&d, "keep_local", |_, _| Some("local".to_string()));
    for (f, why) in [
        (
            "confused",
            "the resolver function confused() answered \"banana\"",
        ),
        (
            "partial",
            "the merged row from partial() cannot be applied to users",
        ),
        ("silent", "the resolver function silent() returned NULL"),
    ] {
        d.ok(&format!(
            "SELECT oversqlite_set_conflict_resolver('custom', NULL, '{f}')"
        ));
        let err = d.err("SELECT oversqlite_push_pending()");
        assert!(
            err.starts_with(&format!(
                "oversqlite_push_pending: invalid_conflict_resolution: {why}"
            )),
            "{err}"
        );
        assert!(err.contains("the local change was kept"), "{err}");
        assert_eq!(d.users(), ["u1=Local"], "{f}: the local row is untouched");
        assert_eq!(
            d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
            json!(1),
            "{f}: still pending"
        );
        assert_eq!(server_name(&server, "hank"), json!("Server"));
    }
    // The kept intent goes through once the resolver gives a valid answer.
    d.ok("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'keep_local')");
    d.ok("SELECT oversqlite_push_pending()");
    assert_eq!(server_name(&server, "hank"), json!("Local"));
}
