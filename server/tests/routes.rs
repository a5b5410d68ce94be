//! Every route and every error code the server produces for malformed or unauthorised
//! requests, against the real binary.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn capabilities_health_status_and_method_errors() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    let (status, caps) = alice.get("/sync/capabilities");
    assert_eq!(status, 200);
    assert_eq!(caps["protocol_version"], "v1");
    assert_eq!(caps["schema_version"], 1);
    let features = caps["features"].as_object().unwrap();
    assert_eq!(features.len(), 20);
    assert_eq!(features.values().filter(|v| **v == json!(true)).count(), 19);
    assert_eq!(caps["features"]["server_checkpoint_tracking"], false);
    assert_eq!(caps["features"]["connect_lifecycle"], true);
    assert_eq!(caps["features"]["bundle_change_watch"], true);
    assert_eq!(caps["registered_tables"].as_array().unwrap().len(), 8);
    assert_eq!(caps["registered_tables"][0], "business.categories");
    assert_eq!(
        caps["registered_table_specs"][2],
        json!({"schema":"business","table":"files","sync_key_columns":["id"]})
    );
    let limits = &caps["bundle_limits"];
    assert_eq!(limits["max_bundles_per_pull"], 5000);
    assert_eq!(limits["max_rows_per_push_chunk"], 5000);
    assert_eq!(limits["default_rows_per_snapshot_chunk"], 1000);
    assert_eq!(limits["initialization_lease_ttl_seconds"], 900);
    assert!(
        limits.get("max_rows_per_bundle").is_none(),
        "zero limits are omitted: {limits}"
    );

    for path in ["/syncx/health", "/syncx/status"] {
        let (status, body) = request(&server.url(path), "GET", &[], None);
        assert_eq!(status, 200);
        let body = parse(&body);
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["lifecycle"], "running");
        assert_eq!(body["registered_tables"].as_array().unwrap().len(), 8);
        assert_eq!(body["committed_bundle_count"], 0);
    }
    let (status, body) = request(
        &server.url("/sync/pull"),
        "PUT",
        &alice.headers(),
        Some("{}"),
    );
    assert_eq!(status, 405);
    assert_eq!(parse(&body)["error"], "method_not_allowed");

    let no_watch = Server::start(&["--disable-watch"]);
    let bob = no_watch.client("bob", "dev-b");
    assert_eq!(
        bob.get("/sync/capabilities").1["features"]["bundle_change_watch"],
        false
    );
    bob.connect(false);
    assert_error(bob.get("/sync/watch"), 503, "bundle_change_watch_disabled");
}

#[test]
fn authentication_and_source_header() {
    let server = Server::start(&[]);
    let routes: [(&str, &str); 12] = [
        ("GET", "/sync/capabilities"),
        ("POST", "/sync/connect"),
        ("POST", "/sync/push-sessions"),
        (
            "POST",
            "/sync/push-sessions/3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10/chunks",
        ),
        (
            "POST",
            "/sync/push-sessions/3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10/commit",
        ),
        (
            "DELETE",
            "/sync/push-sessions/3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10",
        ),
        ("GET", "/sync/committed-bundles/1/rows"),
        ("GET", "/sync/pull"),
        ("POST", "/sync/snapshot-sessions"),
        (
            "GET",
            "/sync/snapshot-sessions/3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10",
        ),
        (
            "DELETE",
            "/sync/snapshot-sessions/3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10",
        ),
        ("GET", "/sync/watch"),
    ];
    let other_secret = String::from_utf8(
        Command::new(BIN)
            .args([
                "token",
                "--user",
                "alice",
                "--jwt-secret",
                "another-secret",
                "--config",
            ])
            .arg(config_path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let expired = String::from_utf8(
        Command::new(BIN)
            .args([
                "token",
                "--user",
                "alice",
                "--ttl-seconds",
                "-600",
                "--config",
            ])
            .arg(config_path())
            .env("OVERSQLITE_JWT_SECRET", SECRET)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let source = ("Oversync-Source-ID", "dev-a".to_string());
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![source.clone()], "Authorization header required"),
        (
            vec![("Authorization", "Token abc".into()), source.clone()],
            "Invalid authorization header format",
        ),
        (
            vec![("Authorization", "Bearer a b".into()), source.clone()],
            "Invalid authorization header format",
        ),
        (
            vec![("Authorization", "Bearer not-a-jwt".into()), source.clone()],
            "Invalid token",
        ),
        (
            vec![
                ("Authorization", format!("Bearer {}", other_secret.trim())),
                source.clone(),
            ],
            "Invalid token",
        ),
        (
            vec![
                ("Authorization", format!("Bearer {}", expired.trim())),
                source.clone(),
            ],
            "Invalid token",
        ),
    ];
    for (method, path) in routes {
        for (headers, text) in &cases {
            let (status, content_type, body) = request_full(
                &server.url(path),
                method,
                headers,
                Some("{}").filter(|_| method == "POST"),
            )
            .unwrap();
            assert_eq!((status, body.trim()), (401, *text), "{method} {path}");
            assert!(content_type.starts_with("text/plain"), "{content_type}");
        }
        let alice = server.client("alice", "dev-a");
        for blank in ["", "   "] {
            let headers = vec![
                ("Authorization", format!("Bearer {}", alice.token)),
                ("Oversync-Source-ID", blank.to_string()),
            ];
            let (status, content_type, body) = request_full(
                &server.url(path),
                method,
                &headers,
                Some("{}").filter(|_| method == "POST"),
            )
            .unwrap();
            assert_eq!(status, 400, "{method} {path}");
            assert_eq!(content_type, "application/json");
            assert_eq!(parse(&body)["error"], "invalid_request");
        }
    }
    // A token printed by the CLI works like a signed-in one.
    let cli = Command::new(BIN)
        .args([
            "token",
            "--user",
            "carol",
            "--jwt-secret",
            SECRET,
            "--config",
        ])
        .arg(config_path())
        .output()
        .unwrap();
    assert!(cli.status.success());
    let carol = Client {
        base: server.base.clone(),
        token: String::from_utf8(cli.stdout).unwrap().trim().to_string(),
        source: "c".into(),
        user: "carol".into(),
    };
    assert_eq!(carol.connect(false)["resolution"], "initialize_empty");
    // Without any secret the CLI refuses.
    let none = Command::new(BIN)
        .args(["token", "--user", "x", "--config"])
        .arg(config_path())
        .env_remove("OVERSQLITE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no JWT secret"));
}

#[test]
fn connect_resolutions_and_leases() {
    let server = Server::start(&[]);
    let a1 = server.client("alice", "a1");
    assert_eq!(a1.connect(false), json!({"resolution": "initialize_empty"}));
    assert_eq!(
        a1.connect(true),
        json!({"resolution": "remote_authoritative"})
    );
    let (status, body) = a1.post("/sync/connect", json!({}));
    assert_eq!(
        (status, &body["resolution"]),
        (200, &json!("remote_authoritative"))
    );
    assert_error(
        a1.post_raw("/sync/connect", Some("{bad")),
        400,
        "invalid_request",
    );
    assert_error(
        a1.post_raw("/sync/connect", Some(r#"{"has_local_pending_rows":"yes"}"#)),
        400,
        "invalid_request",
    );

    let b1 = server.client("bob", "b1");
    let b2 = b1.with_source("b2");
    let first = b1.connect(true);
    assert_eq!(first["resolution"], "initialize_local");
    let init = first["initialization_id"].as_str().unwrap().to_string();
    assert_eq!(init.len(), 36);
    assert!(first["lease_expires_at"].as_str().unwrap().ends_with('Z'));
    let other = b2.connect(true);
    assert_eq!(other["resolution"], "retry_later");
    assert!(other["retry_after_seconds"].as_i64().unwrap() >= 1);
    assert!(other["lease_expires_at"].is_string());
    assert_eq!(
        b1.connect(true)["initialization_id"],
        json!(init),
        "same source keeps its lease"
    );
    // While initializing, reads are refused.
    assert_error(b2.pull(0), 409, "scope_initializing");
    assert_error(
        b2.post_raw("/sync/snapshot-sessions", None),
        409,
        "scope_initializing",
    );
    assert_error(b2.get("/sync/watch"), 409, "scope_initializing");
    // Seeding push under the lease.
    assert_error(b1.create(1, 1), 400, "push_session_invalid");
    let with_init = |c: &Client, id: &str| {
        c.post(
            "/sync/push-sessions",
            json!({"source_bundle_id": 1, "planned_row_count": 1, "initialization_id": id}),
        )
    };
    assert_error(with_init(&b2, &init), 409, "initialization_stale");
    assert_error(
        with_init(&b1, "3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"),
        409,
        "initialization_stale",
    );
    let (status, session) = with_init(&b1, &init);
    assert_eq!(status, 200, "{session}");
    let push_id = session["push_id"].as_str().unwrap();
    assert_eq!(
        b1.chunk(push_id, 0, &[user_row("INSERT", "u1", "Ann", 0)])
            .0,
        200
    );
    assert_eq!(b1.commit(push_id).0, 200);
    assert_eq!(b2.connect(true)["resolution"], "remote_authoritative");
    assert_error(with_init(&b1, &init), 400, "push_session_invalid");
    assert_eq!(b2.pull(0).1["stable_bundle_seq"], 1);

    // An initializer that connects again without pending rows initialises empty.
    let c1 = server.client("carol", "c1");
    assert_eq!(c1.connect(true)["resolution"], "initialize_local");
    assert_eq!(c1.connect(false)["resolution"], "initialize_empty");

    // Never connected: pushes and reads are refused.
    let d1 = server.client("dave", "d1");
    // Malformed connects change nothing: the scope stays uninitialized.
    assert_error(
        d1.post_raw("/sync/connect", Some("[")),
        400,
        "invalid_request",
    );
    assert_error(
        d1.post_raw("/sync/connect", Some(r#"{"has_local_pending_rows":1}"#)),
        400,
        "invalid_request",
    );
    assert_error(d1.create(1, 1), 409, "scope_uninitialized");
    assert_error(with_init(&d1, &init), 410, "initialization_expired");
    assert_error(d1.pull(0), 409, "scope_uninitialized");
    assert_error(
        d1.post_raw("/sync/snapshot-sessions", None),
        409,
        "scope_uninitialized",
    );
    let bad_replacement =
        r#"{"source_replacement":{"previous_source_id":"other","new_source_id":"n","reason":"x"}}"#;
    assert_error(
        d1.post_raw("/sync/snapshot-sessions", Some(bad_replacement)),
        409,
        "scope_uninitialized",
    );
    assert_error(d1.get("/sync/watch"), 409, "scope_uninitialized");
}

#[test]
fn expired_leases_and_sessions() {
    let server = Server::start(&[
        "--initialization-lease-ttl-seconds",
        "1",
        "--push-session-ttl-seconds",
        "1",
        "--snapshot-session-ttl-seconds",
        "1",
    ]);
    let e1 = server.client("erin", "e1");
    let init = e1.connect(true)["initialization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, session) = e1.post(
        "/sync/push-sessions",
        json!({"source_bundle_id": 1, "planned_row_count": 1, "initialization_id": init}),
    );
    assert_eq!(status, 200);
    let push_id = session["push_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1300));
    assert_error(
        e1.chunk(&push_id, 0, &[user_row("INSERT", "u1", "x", 0)]),
        410,
        "push_session_expired",
    );
    assert_error(e1.commit(&push_id), 410, "push_session_expired");
    assert_error(
        e1.delete(&format!("/sync/push-sessions/{push_id}")),
        410,
        "push_session_expired",
    );
    // The lease expired too: the scope fell back to uninitialized.
    assert_error(
        e1.post(
            "/sync/push-sessions",
            json!({"source_bundle_id": 1, "planned_row_count": 1, "initialization_id": init}),
        ),
        410,
        "initialization_expired",
    );
    // A live session whose lease lapses fails on commit with initialization_expired.
    let init = e1.connect(true)["initialization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, session) = e1.post(
        "/sync/push-sessions",
        json!({"source_bundle_id": 1, "planned_row_count": 2, "initialization_id": init}),
    );
    let push_id = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        e1.chunk(&push_id, 0, &[user_row("INSERT", "u1", "x", 0)]).0,
        200
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        e1.chunk(&push_id, 1, &[user_row("INSERT", "u2", "y", 0)]).0,
        200,
        "chunks refresh the session and the lease"
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_error(e1.commit(&push_id), 410, "push_session_expired");

    // Leases alone expiring (sessions still valid): commit answers initialization_expired, and
    // once another source took over the scope, the old session's chunks are stale.
    let lease_only = Server::start(&["--initialization-lease-ttl-seconds", "1"]);
    let g1 = lease_only.client("gina", "g1");
    let g2 = g1.with_source("g2");
    let init = g1.connect(true)["initialization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, session) = g1.post(
        "/sync/push-sessions",
        json!({"source_bundle_id": 1, "planned_row_count": 2, "initialization_id": init}),
    );
    let push_id = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        g1.chunk(&push_id, 0, &[user_row("INSERT", "u1", "x", 0)]).0,
        200
    );
    let h1 = lease_only.client("hank", "h1");
    let h_init = h1.connect(true)["initialization_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, h_session) = h1.post(
        "/sync/push-sessions",
        json!({"source_bundle_id": 1, "planned_row_count": 1, "initialization_id": h_init}),
    );
    let h_push = h_session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        h1.chunk(&h_push, 0, &[user_row("INSERT", "u1", "x", 0)]).0,
        200
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_error(
        g1.chunk(&push_id, 1, &[user_row("INSERT", "u2", "y", 0)]),
        410,
        "initialization_expired",
    );
    assert_error(h1.commit(&h_push), 410, "initialization_expired");
    assert_eq!(
        g2.connect(true)["resolution"],
        "initialize_local",
        "the expired lease is free again"
    );
    assert_error(
        g1.chunk(&push_id, 1, &[user_row("INSERT", "u2", "y", 0)]),
        409,
        "initialization_stale",
    );
    assert_error(h1.pull(0), 409, "scope_uninitialized");

    let f1 = server.client("frank", "f1");
    f1.connect(false);
    let (_, snap) = f1.post_raw("/sync/snapshot-sessions", None);
    let snapshot_id = snap["snapshot_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1300));
    assert_error(
        f1.get(&format!("/sync/snapshot-sessions/{snapshot_id}")),
        410,
        "snapshot_session_expired",
    );
    assert_eq!(
        f1.delete(&format!("/sync/snapshot-sessions/{snapshot_id}"))
            .0,
        204
    );
}

#[test]
fn push_session_validation_errors_write_nothing() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    assert_error(alice.create(0, 1), 400, "push_session_invalid");
    assert_error(alice.create(1, 0), 400, "push_session_invalid");
    assert_error(
        alice.post_raw("/sync/push-sessions", Some("not json")),
        400,
        "invalid_request",
    );
    assert_error(
        alice.post_raw(
            "/sync/push-sessions",
            Some(r#"{"source_bundle_id":"1","planned_row_count":1}"#),
        ),
        400,
        "invalid_request",
    );
    assert_error(
        alice.post_raw("/sync/push-sessions", Some("")),
        400,
        "invalid_request",
    );
    assert_error(alice.create(2, 1), 409, "source_sequence_out_of_order");

    let (_, session) = alice.create(1, 2);
    let push_id = session["push_id"].as_str().unwrap().to_string();
    let good = user_row("INSERT", "u1", "Ann", 0);
    let with = |mutate: &dyn Fn(&mut Value)| {
        let mut row = good.clone();
        mutate(&mut row);
        row
    };
    let invalid_rows: Vec<(Value, &str)> = vec![
        (
            with(&|r| r["schema"] = json!("Bad-Schema")),
            "invalid schema",
        ),
        (with(&|r| r["table"] = json!("nope")), "not registered"),
        (with(&|r| r["schema"] = json!("")), "not registered"),
        (with(&|r| r["op"] = json!("UPSERT")), "invalid op"),
        (with(&|r| r["key"] = json!({})), "must include"),
        (with(&|r| r["key"] = json!({"id": 5})), "must be a string"),
        (
            with(&|r| {
                r["op"] = json!("DELETE");
            }),
            "must not include payload",
        ),
        (
            with(&|r| {
                r["op"] = json!("DELETE");
                r["payload"] = Value::Null;
            }),
            "must not include payload",
        ),
        (
            with(&|r| {
                r.as_object_mut().unwrap().remove("payload");
            }),
            "requires payload",
        ),
        (
            with(&|r| r["payload"] = Value::Null),
            "must be a JSON object",
        ),
        (
            with(&|r| r["payload"]["_sync_scope_id"] = json!("bob")),
            "hidden scope column",
        ),
        (with(&|r| r["payload"]["nope"] = json!(1)), "unknown column"),
        (
            with(&|r| r["payload"]["bad name"] = json!(1)),
            "invalid column",
        ),
        (
            with(&|r| r["payload"]["id"] = json!("other")),
            "must match request key",
        ),
        (
            with(&|r| r["payload"]["name"] = json!(7)),
            "must be a string",
        ),
        (
            with(&|r| r["payload"]["name"] = Value::Null),
            "must not be null",
        ),
        (
            with(&|r| {
                r["payload"].as_object_mut().unwrap().remove("email");
            }),
            "non-null column",
        ),
        (
            json!({"schema":"business","table":"files","key":{"id":"3F1C0B0E-8D52-4A7E-9A51-0C6C3F1B2A10"},"op":"INSERT","base_row_version":0,
                   "payload":{"name":"f","data":"3q2+7w=="}}),
            "canonical dashed lowercase UUID",
        ),
        (
            json!({"schema":"business","table":"files","key":{"id":"3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"},"op":"INSERT","base_row_version":0,
                   "payload":{"name":"f","data":"***"}}),
            "valid base64",
        ),
        (
            json!({"schema":"business","table":"typed_rows","key":{"id":"t1"},"op":"INSERT","base_row_version":0,
                   "payload":{"name":"t","enabled_flag":1.5}}),
            "64-bit integer",
        ),
    ];
    for (row, message) in &invalid_rows {
        let v = assert_error(
            alice.chunk(&push_id, 0, std::slice::from_ref(row)),
            400,
            "push_chunk_invalid",
        );
        assert!(
            v["message"].as_str().unwrap().contains(message),
            "{message}: {v}"
        );
    }
    let v = assert_error(
        alice.chunk(&push_id, 0, &[good.clone(), good.clone()]),
        400,
        "push_chunk_invalid",
    );
    assert!(
        v["message"].as_str().unwrap().contains("duplicate target"),
        "{v}"
    );
    assert_error(alice.chunk(&push_id, 0, &[]), 400, "push_chunk_invalid");
    assert_error(
        alice.chunk(&push_id, -1, std::slice::from_ref(&good)),
        400,
        "push_chunk_invalid",
    );
    let many: Vec<Value> = (0..5001)
        .map(|i| user_row("INSERT", &format!("m{i}"), "m", 0))
        .collect();
    assert_error(alice.chunk(&push_id, 0, &many), 400, "push_chunk_invalid");
    assert_error(
        alice.chunk(
            &push_id,
            0,
            &[
                good.clone(),
                user_row("INSERT", "u2", "b", 0),
                user_row("INSERT", "u3", "c", 0),
            ],
        ),
        400,
        "push_chunk_invalid",
    );
    assert_error(
        alice.post_raw(&format!("/sync/push-sessions/{push_id}/chunks"), Some("{")),
        400,
        "invalid_request",
    );
    assert_error(
        alice.post_raw(
            &format!("/sync/push-sessions/{push_id}/chunks"),
            Some(r#"{"start_row_ordinal":0,"rows":[{"base_row_version":"x"}]}"#),
        ),
        400,
        "invalid_request",
    );
    // Nothing was staged by the failures.
    assert_error(alice.commit(&push_id), 400, "push_commit_invalid");
    assert_error(
        alice.chunk(&push_id, 1, std::slice::from_ref(&good)),
        409,
        "push_chunk_out_of_order",
    );
    assert_eq!(
        alice.chunk(&push_id, 0, std::slice::from_ref(&good)).1["next_expected_row_ordinal"],
        1
    );
    assert_error(
        alice.chunk(&push_id, 0, std::slice::from_ref(&good)),
        409,
        "push_chunk_out_of_order",
    );
    let v = assert_error(
        alice.chunk(
            &push_id,
            1,
            &[
                user_row("INSERT", "u5", "e", 0),
                user_row("INSERT", "u6", "f", 0),
            ],
        ),
        400,
        "push_chunk_invalid",
    );
    assert!(
        v["message"].as_str().unwrap().contains("planned_row_count"),
        "{v}"
    );
    // Duplicates across chunks are only detected at commit.
    assert_eq!(
        alice
            .chunk(&push_id, 1, &[user_row("INSERT", "u1", "dup", 0)])
            .0,
        200
    );
    let v = assert_error(alice.commit(&push_id), 400, "push_commit_invalid");
    assert!(
        v["message"].as_str().unwrap().contains("duplicate target"),
        "{v}"
    );
    assert_eq!(alice.pull(0).1["stable_bundle_seq"], 0, "nothing committed");

    // Unknown, malformed and foreign session ids.
    for id in ["not-a-uuid", "3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"] {
        assert_error(
            alice.chunk(id, 0, std::slice::from_ref(&good)),
            404,
            "push_session_not_found",
        );
        assert_error(alice.commit(id), 404, "push_session_not_found");
        assert_error(
            alice.delete(&format!("/sync/push-sessions/{id}")),
            404,
            "push_session_not_found",
        );
    }
    let bob = server.client("bob", "dev-b");
    bob.connect(false);
    assert_error(
        bob.chunk(&push_id, 2, std::slice::from_ref(&good)),
        403,
        "push_session_forbidden",
    );
    assert_error(bob.commit(&push_id), 403, "push_session_forbidden");
    assert_error(
        bob.delete(&format!("/sync/push-sessions/{push_id}")),
        403,
        "push_session_forbidden",
    );
    assert_eq!(
        alice.delete(&format!("/sync/push-sessions/{push_id}")).0,
        204
    );
    assert_error(
        alice.delete(&format!("/sync/push-sessions/{push_id}")),
        404,
        "push_session_not_found",
    );
    assert_error(alice.commit(&push_id), 404, "push_session_not_found");

    // A committed session is gone.
    let committed = alice.push_ok(1, std::slice::from_ref(&good));
    assert_eq!(committed["bundle_seq"], 1);
    let (_, session) = alice.create(2, 1);
    let second = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        alice
            .chunk(&second, 0, &[user_row("INSERT", "u9", "z", 0)])
            .0,
        200
    );
    assert_eq!(alice.commit(&second).0, 200);
    assert_error(alice.commit(&second), 404, "push_session_not_found");
}

#[test]
fn read_route_parameter_errors() {
    let server = Server::start(&["--max-rows-per-snapshot-session", "1"]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(1, &[user_row("INSERT", "u1", "Ann", 0)]);
    for path in [
        "/sync/committed-bundles/abc/rows",
        "/sync/committed-bundles/0/rows",
        "/sync/committed-bundles/1/rows?after_row_ordinal=-1",
        "/sync/committed-bundles/1/rows?after_row_ordinal=x",
        "/sync/committed-bundles/1/rows?max_rows=0",
        "/sync/committed-bundles/1/rows?max_rows=ten",
    ] {
        assert_error(alice.get(path), 400, "committed_bundle_chunk_invalid");
    }
    assert_error(
        alice.get("/sync/committed-bundles/99/rows"),
        404,
        "committed_bundle_not_found",
    );
    let bob = server.client("bob", "dev-b");
    bob.connect(false);
    assert_error(
        bob.get("/sync/committed-bundles/1/rows"),
        404,
        "committed_bundle_not_found",
    );
    for query in [
        "after_bundle_seq=x",
        "after_bundle_seq=-1",
        "max_bundles=0",
        "max_bundles=5001",
        "max_bundles=x",
        "target_bundle_seq=-1",
        "target_bundle_seq=y",
    ] {
        assert_error(
            alice.get(&format!("/sync/pull?{query}")),
            400,
            "invalid_request",
        );
    }
    for query in ["after_bundle_seq=-1", "after_bundle_seq=z"] {
        assert_error(
            alice.get(&format!("/sync/watch?{query}")),
            400,
            "invalid_request",
        );
    }

    // Snapshot create: body decoding and replacement shape.
    let bad_bodies = [
        "{",
        r#"{"unknown":1}"#,
        r#"{"source_replacement":{"previous_source_id":"dev-a","new_source_id":"n","reason":"history_pruned","x":1}}"#,
        r#"{"source_replacement":{"previous_source_id":"other","new_source_id":"n","reason":"history_pruned"}}"#,
        r#"{"source_replacement":{"previous_source_id":"dev-a","new_source_id":" ","reason":"history_pruned"}}"#,
        r#"{"source_replacement":{"previous_source_id":"dev-a","new_source_id":"dev-a","reason":"history_pruned"}}"#,
        r#"{"source_replacement":{"previous_source_id":"dev-a","new_source_id":"n","reason":"because"}}"#,
    ];
    for body in bad_bodies {
        assert_error(
            alice.post_raw("/sync/snapshot-sessions", Some(body)),
            400,
            "snapshot_session_invalid",
        );
    }
    assert_eq!(alice.post_raw("/sync/snapshot-sessions", Some("{}")).0, 200);
    alice.push_ok(2, &[user_row("INSERT", "u2", "Bo", 0)]);
    assert_error(
        alice.post_raw("/sync/snapshot-sessions", None),
        500,
        "snapshot_session_create_failed",
    );
    alice.push_ok(3, &[user_row("DELETE", "u2", "", 2)]);
    let (status, snap) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{snap}");
    let id = snap["snapshot_id"].as_str().unwrap().to_string();
    for query in [
        "max_rows=0",
        "max_rows=x",
        "after_row_ordinal=-1",
        "after_row_ordinal=q",
    ] {
        assert_error(
            alice.get(&format!("/sync/snapshot-sessions/{id}?{query}")),
            400,
            "snapshot_chunk_invalid",
        );
    }
    for missing in ["nope", "3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"] {
        assert_error(
            alice.get(&format!("/sync/snapshot-sessions/{missing}")),
            404,
            "snapshot_session_not_found",
        );
        assert_error(
            alice.delete(&format!("/sync/snapshot-sessions/{missing}")),
            404,
            "snapshot_session_not_found",
        );
    }
    assert_error(
        bob.get(&format!("/sync/snapshot-sessions/{id}")),
        403,
        "snapshot_session_forbidden",
    );
    assert_error(
        bob.delete(&format!("/sync/snapshot-sessions/{id}")),
        403,
        "snapshot_session_forbidden",
    );
    assert_eq!(
        alice.delete(&format!("/sync/snapshot-sessions/{id}")).0,
        204
    );
    assert_error(
        alice.get(&format!("/sync/snapshot-sessions/{id}")),
        404,
        "snapshot_session_not_found",
    );
}

#[test]
fn test_endpoints_are_absent_unless_enabled() {
    let dir = TempDir::new();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config_path())
        .args(["--listen", "127.0.0.1:0", "--jwt-secret", SECRET, "--data"])
        .arg(dir.0.join("s.db"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    for path in [
        "/dummy-signin",
        "/test/reset",
        "/test/retention-floor",
        "/test/server-bundle",
    ] {
        let (status, _) = request(&format!("{base}{path}"), "POST", &[], Some("{}"));
        assert_eq!(status, 404, "{path}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Bad configuration and missing secrets stop start-up with a message.
    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "[[tables]]\ntable = \"t\"\nkey = \"id\"\ncolumns = [{ name = \"id\", type = \"blob\" }]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&bad)
        .args(["--jwt-secret", "s", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("text or uuid"));
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config_path())
        .env_remove("OVERSQLITE_JWT_SECRET")
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no JWT secret"));
    // A store whose tables differ from the config in a non-additive way is refused
    // (additive changes migrate: tests/migration.rs).
    let changed = dir.0.join("changed.toml");
    let original = std::fs::read_to_string(config_path()).unwrap();
    std::fs::write(
        &changed,
        original.replace(
            r#"{ name = "email", type = "text", nullable = false },"#,
            r#"{ name = "email", type = "integer", nullable = false },"#,
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&changed)
        .args(["--jwt-secret", "s", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.0.join("s.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("column business.users.email changes type from TEXT to INTEGER"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_drains_with_service_unavailable_then_exits() {
    let dir = TempDir::new();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config_path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
            "--enable-test-endpoints",
            "--shutdown-grace-ms",
            "1500",
            "--data",
        ])
        .arg(dir.0.join("s.db"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    let (_, body) = request(
        &format!("{base}/dummy-signin"),
        "POST",
        &[],
        Some(r#"{"user":"alice","password":"p"}"#),
    );
    let alice = Client {
        base: base.clone(),
        token: parse(&body)["token"].as_str().unwrap().to_string(),
        source: "dev-a".into(),
        user: "alice".into(),
    };
    alice.connect(false);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(200));
    assert_error(alice.pull(0), 503, "service_unavailable");
    assert_error(
        alice.post("/sync/connect", json!({"has_local_pending_rows": false})),
        503,
        "service_unavailable",
    );
    let (_, status) = request(&format!("{base}/syncx/status"), "GET", &[], None);
    let status = parse(&status);
    assert_eq!(
        (&status["lifecycle"], &status["accepting_operations"]),
        (&json!("shutting_down"), &json!(false))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after its grace period"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The member names of a JSON object, sorted.
fn members(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Each test endpoint answers with the members (and fixed values) of go-oversync 1f1118f's
/// example server (examples/nethttp_server/server/setup.go), which clients' test suites read.
#[test]
fn test_endpoints_answer_the_reference_shapes() {
    let server = Server::start(&[]);
    // POST /dummy-signin: {"token","expires_in","user"}.
    let (status, signin) =
        server.post_test("/dummy-signin", json!({"user": "alice", "password": "p"}));
    assert_eq!(status, 200);
    assert_eq!(members(&signin), ["expires_in", "token", "user"]);
    assert_eq!(
        (signin["expires_in"].clone(), signin["user"].clone()),
        (json!(300), json!("alice"))
    );
    assert_error(
        server.post_test("/dummy-signin", json!({"user": ""})),
        400,
        "invalid_request",
    );

    // GET /test/watch-subscribers: {"process_local_only":true,"subscriber_count":N,"user_id"}.
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let watch = |user: &str| {
        let (status, text) = request(
            &server.url(&format!("/test/watch-subscribers?user_id={user}")),
            "GET",
            &[],
            None,
        );
        (status, parse(&text))
    };
    let (status, none) = watch("alice");
    assert_eq!(status, 200);
    assert_eq!(
        none,
        json!({"process_local_only": true, "subscriber_count": 0, "user_id": "alice"})
    );
    let mut stream = WatchStream::open(&alice, 0);
    assert!(
        stream.wait_for(": heartbeat", 1, Duration::from_secs(5)),
        "{}",
        stream.buffer
    );
    assert_eq!(
        watch("alice").1,
        json!({"process_local_only": true, "subscriber_count": 1, "user_id": "alice"})
    );
    let (status, missing) = watch("");
    assert_eq!(
        (status, missing["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(missing["message"], "user_id required");
    drop(stream);

    // POST /test/retention-floor: {"retained_bundle_floor","status":"ok","user_id"}.
    alice.push_ok(1, &[user_row("INSERT", "u1", "x", 0)]);
    let (status, floor) = server.post_test(
        "/test/retention-floor",
        json!({"user_id": "alice", "retained_bundle_floor": 0}),
    );
    assert_eq!(status, 200, "{floor}");
    assert_eq!(
        floor,
        json!({"retained_bundle_floor": 0, "status": "ok", "user_id": "alice"})
    );
    assert_error(
        server.post_test(
            "/test/retention-floor",
            json!({"user_id": "nobody", "retained_bundle_floor": 1}),
        ),
        404,
        "user_state_not_found",
    );

    // POST /test/reset: {"schema":"business","status":"ok"}.
    let (status, reset) = server.post_test("/test/reset", json!({}));
    assert_eq!(status, 200);
    assert_eq!(reset, json!({"schema": "business", "status": "ok"}));
}
