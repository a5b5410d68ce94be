//! The shipped example config (`config/business.toml`) has the reference example server's
//! column types (#10 item 14): uuid keys and foreign-key columns, so a key that is not
//! canonical UUID text is `400 push_chunk_invalid` as in go-oversync; `created_at` /
//! `updated_at` nullable with default now(), so a server-originated insert may omit them.

mod common;

use common::*;
use serde_json::{json, Value};

fn start_example() -> (Server, TempDir) {
    let dir = TempDir::new();
    let server = start_with_config(&example_config_path(), &dir.0.join("store.db"));
    (server, dir)
}

fn row(table: &str, key: &str, payload: Value) -> Value {
    json!({"schema": "business", "table": table, "key": {"id": key}, "op": "INSERT",
           "base_row_version": 0, "payload": payload})
}

const U1: &str = "8d8e1b1c-7f0a-4c43-9d6b-1a2b3c4d5e6f";
const P1: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

#[test]
fn example_config_refuses_non_uuid_keys_and_defaults_timestamps() {
    let (server, _dir) = start_example();
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let (status, created) = alice.create(1, 1);
    assert_eq!(status, 200, "{created}");
    let push_id = created["push_id"].as_str().unwrap().to_string();

    // Keys: anything but canonical dashed lowercase UUID text is refused, with the
    // reference's message; the session stays usable.
    for (table, key, payload) in [
        (
            "users",
            "NOT-A-UUID",
            json!({"id": "NOT-A-UUID", "name": "x", "email": "x@y"}),
        ),
        (
            "users",
            "8D8E1B1C-7F0A-4C43-9D6B-1A2B3C4D5E6F",
            json!({"id": "8D8E1B1C-7F0A-4C43-9D6B-1A2B3C4D5E6F", "name": "x", "email": "x@y"}),
        ),
        (
            "typed_rows",
            "typed-null",
            json!({"id": "typed-null", "name": "x", "enabled_flag": 1}),
        ),
    ] {
        let body = assert_error(
            alice.chunk(&push_id, 0, &[row(table, key, payload)]),
            400,
            "push_chunk_invalid",
        );
        assert_eq!(
            body["message"],
            format!("row key business.{table}.id must use canonical dashed lowercase UUID text"),
            "{body}"
        );
    }
    // A foreign-key column is a uuid too.
    let body = assert_error(
        alice.chunk(
            &push_id,
            0,
            &[row(
                "posts",
                P1,
                json!({"id": P1, "title": "t", "content": "c", "author_id": "u1"}),
            )],
        ),
        400,
        "push_chunk_invalid",
    );
    assert!(
        body["message"].as_str().unwrap().contains("author_id"),
        "{body}"
    );
    // Canonical keys work.
    let (status, chunk) = alice.chunk(
        &push_id,
        0,
        &[row(
            "users",
            U1,
            json!({"id": U1, "name": "Ada", "email": "ada@example.com",
                   "created_at": "2026-03-24T18:42:11Z", "updated_at": "2026-03-24T18:42:11Z"}),
        )],
    );
    assert_eq!(status, 200, "{chunk}");
    assert_eq!(alice.commit(&push_id).0, 200);

    // A server-originated insert that omits created_at/updated_at takes now().
    let before = std::time::SystemTime::now();
    let (status, committed) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "rows": [
            {"schema": "business", "table": "posts", "key": {"id": P1}, "op": "INSERT",
             "payload": {"id": P1, "title": "From the server", "content": "c", "author_id": U1}}
        ]}),
    );
    assert_eq!(status, 200, "{committed}");
    let (status, pull) = alice.pull(1);
    assert_eq!(status, 200, "{pull}");
    let payload = &pull["bundles"][0]["rows"][0]["payload"];
    assert_eq!(payload["title"], "From the server", "{pull}");
    for column in ["created_at", "updated_at"] {
        let text = payload[column]
            .as_str()
            .unwrap_or_else(|| panic!("{column} not set: {pull}"));
        // RFC 3339 in UTC, like PostgreSQL's to_jsonb of a timestamptz.
        assert_eq!(text.len(), "2026-03-24T18:42:11.123+00:00".len(), "{text}");
        assert!(
            text.ends_with("+00:00") && text.as_bytes()[10] == b'T',
            "{text}"
        );
        let year: u64 = text[..4].parse().unwrap();
        let now_year = 1970
            + before
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 31_556_952;
        assert!(year.abs_diff(now_year) <= 1, "{text}");
    }
    // And an explicit null is kept (the columns are nullable, as in the reference).
    // The store's default declarations match the config on restart (no migration refusal).
    let mut server = server;
    server.kill_and_restart();
    let alice = server.client("alice", "dev-a");
    let (status, _) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "rows": [
            {"schema": "business", "table": "users", "key": {"id": U1}, "op": "UPDATE",
             "payload": {"id": U1, "name": "Ada", "email": "ada@example.com",
                         "created_at": null, "updated_at": null}}
        ]}),
    );
    assert_eq!(status, 200);
    let (_, pull) = alice.pull(2);
    assert_eq!(
        pull["bundles"][0]["rows"][0]["payload"]["created_at"],
        Value::Null,
        "{pull}"
    );
}
