//! End-to-end protocol behaviour: parallel users and sources, replay, conflicts, snapshots
//! with source replacement, retention, watch, server-originated bundles, payload encoding.

mod common;

use std::time::Duration;

use common::*;
use oversqlite_protocol::{bundle_hash, BundleRow, PullResponse};
use serde_json::{json, Value};

fn pull_all(client: &Client) -> PullResponse {
    let (status, body) = client.pull(0);
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[test]
fn two_users_with_two_sources_each_in_parallel() {
    let server = Server::start(&[]);
    let mut workers = Vec::new();
    for user in ["alice", "bob"] {
        let first = server.client(user, &format!("{user}-s1"));
        first.connect(false);
        for source in ["s1", "s2"] {
            let client = first.with_source(&format!("{user}-{source}"));
            workers.push(std::thread::spawn(move || {
                let mut hashes = Vec::new();
                for id in 1..=6 {
                    let row = user_row(
                        "INSERT",
                        &format!("{}-{id}", client.source),
                        &client.user,
                        0,
                    );
                    let commit = client.push_ok(id, &[row]);
                    assert_eq!(commit["source_id"], json!(client.source));
                    assert_eq!(commit["source_bundle_id"], id);
                    assert_eq!(commit["row_count"], 1);
                    hashes.push(commit);
                }
                hashes
            }));
        }
    }
    let commits: Vec<Vec<Value>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for (user, others) in [("alice", "bob"), ("bob", "alice")] {
        let client = server.client(user, &format!("{user}-s1"));
        let pulled = pull_all(&client);
        assert_eq!(pulled.stable_bundle_seq, 12);
        let seqs: Vec<i64> = pulled.bundles.iter().map(|b| b.bundle_seq).collect();
        assert_eq!(
            seqs,
            (1..=12).collect::<Vec<_>>(),
            "bundle seqs are per user and dense"
        );
        for source in ["s1", "s2"] {
            let ids: Vec<i64> = pulled
                .bundles
                .iter()
                .filter(|b| b.source_id == format!("{user}-{source}"))
                .map(|b| b.source_bundle_id)
                .collect();
            assert_eq!(
                ids,
                (1..=6).collect::<Vec<_>>(),
                "each source is contiguous"
            );
        }
        for bundle in &pulled.bundles {
            assert_eq!(
                bundle.bundle_hash.as_deref(),
                Some(bundle_hash(&bundle.rows).as_str())
            );
            for row in &bundle.rows {
                assert_eq!(row.row_version, bundle.bundle_seq);
                assert!(row.key["id"].starts_with(user), "{user} sees only its rows");
                assert!(!row.key["id"].starts_with(others));
                assert_eq!(row.payload.as_ref().unwrap()["name"], json!(user));
            }
        }
    }
    // Replays answer already_committed with the original metadata; gaps are out of order.
    let alice = server.client("alice", "alice-s2");
    let original = commits
        .iter()
        .flatten()
        .find(|c| c["source_id"] == "alice-s2" && c["source_bundle_id"] == 3)
        .unwrap();
    let (status, replay) = alice.create(3, 1);
    assert_eq!(status, 200);
    assert_eq!(replay["status"], "already_committed");
    for field in [
        "bundle_seq",
        "source_id",
        "source_bundle_id",
        "row_count",
        "bundle_hash",
    ] {
        assert_eq!(replay[field], original[field], "{field}");
    }
    assert_error(alice.create(8, 1), 409, "source_sequence_out_of_order");
    assert_eq!(alice.create(7, 1).1["status"], "staging");
    // The other user's committed bundles are invisible.
    let (status, rows) = server
        .client("bob", "bob-s1")
        .get("/sync/committed-bundles/1/rows");
    assert_eq!(status, 200);
    assert!(rows["source_id"].as_str().unwrap().starts_with("bob-"));
}

#[test]
fn committed_bundle_is_pushed_rows_in_order_with_after_images() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let rows: Vec<Value> = (0..5)
        .map(|i| user_row("INSERT", &format!("k{}", 4 - i), &format!("n{i}"), 0))
        .collect();
    let (_, session) = alice.create(1, 5);
    let push_id = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        alice.chunk(&push_id, 0, &rows[..2]).1["next_expected_row_ordinal"],
        2
    );
    assert_eq!(
        alice.chunk(&push_id, 2, &rows[2..]).1["next_expected_row_ordinal"],
        5
    );
    let commit = alice.commit(&push_id).1;
    // Update sends only some columns: the after-image read back carries the full row.
    let partial = json!({"schema":"business","table":"users","key":{"id":"k2"},"op":"UPDATE","base_row_version":1,"payload":{"name":"renamed"}});
    let second = alice.push_ok(2, &[partial, user_row("DELETE", "k0", "", 1)]);
    assert_eq!(second["bundle_seq"], 2);

    // Paging with 0-based ordinals: omit after_row_ordinal first, then pass next_row_ordinal.
    let mut fetched: Vec<BundleRow> = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            None => "/sync/committed-bundles/1/rows?max_rows=2".to_string(),
            Some(a) => format!("/sync/committed-bundles/1/rows?max_rows=2&after_row_ordinal={a}"),
        };
        let (status, page) = alice.get(&path);
        assert_eq!(status, 200);
        assert_eq!(page["bundle_hash"], commit["bundle_hash"]);
        assert_eq!(page["row_count"], 5);
        let rows: Vec<BundleRow> = serde_json::from_value(page["rows"].clone()).unwrap();
        assert_eq!(
            page["next_row_ordinal"],
            after.unwrap_or(-1) + rows.len() as i64
        );
        fetched.extend(rows);
        if page["has_more"] == false {
            break;
        }
        after = page["next_row_ordinal"].as_i64();
    }
    let keys: Vec<&str> = fetched.iter().map(|r| r.key["id"].as_str()).collect();
    assert_eq!(keys, ["k4", "k3", "k2", "k1", "k0"], "pushed order is kept");
    assert_eq!(
        bundle_hash(&fetched),
        commit["bundle_hash"].as_str().unwrap()
    );
    let (_, empty) = alice.get("/sync/committed-bundles/1/rows?after_row_ordinal=4");
    assert_eq!(
        (
            empty["rows"].as_array().unwrap().len(),
            &empty["next_row_ordinal"],
            &empty["has_more"]
        ),
        (0, &json!(4), &json!(false))
    );

    let pulled = pull_all(&alice);
    let bundle2 = &pulled.bundles[1];
    assert_eq!(bundle2.rows[0].op, oversqlite_protocol::Op::Update);
    let after_image = bundle2.rows[0].payload.as_ref().unwrap();
    assert_eq!(after_image["name"], "renamed");
    assert_eq!(after_image["email"], "k2@example.test");
    assert_eq!(
        after_image.len(),
        5,
        "every visible column, no hidden owner"
    );
    assert_eq!(bundle2.rows[1].payload, None, "DELETE carries no payload");
    let raw = alice.pull(0).1;
    assert!(raw["bundles"][1]["rows"][1].get("payload").is_none());
    // Pull paging and ceilings.
    let (_, page) = alice.get("/sync/pull?after_bundle_seq=0&max_bundles=1");
    assert_eq!(
        (
            page["bundles"].as_array().unwrap().len(),
            &page["has_more"],
            &page["stable_bundle_seq"]
        ),
        (1, &json!(true), &json!(2))
    );
    let (_, page) = alice.get("/sync/pull?after_bundle_seq=0&max_bundles=5&target_bundle_seq=1");
    assert_eq!(
        (
            page["bundles"].as_array().unwrap().len(),
            &page["has_more"],
            &page["stable_bundle_seq"]
        ),
        (1, &json!(false), &json!(1))
    );
    let (_, page) = alice.get("/sync/pull?after_bundle_seq=2");
    assert_eq!(
        page,
        json!({"stable_bundle_seq": 2, "bundles": [], "has_more": false})
    );
}

#[test]
fn conflict_table_rows() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    // State: live at 1 (u-live), tombstone at 2 (u-dead).
    alice.push_ok(
        1,
        &[
            user_row("INSERT", "u-live", "Live", 0),
            user_row("INSERT", "u-dead", "Dead", 0),
        ],
    );
    alice.push_ok(2, &[user_row("DELETE", "u-dead", "", 1)]);
    let live_row = json!({"id":"u-live","name":"Live","email":"u-live@example.test","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"});
    let cases: Vec<(Value, i64, bool, Value)> = vec![
        (user_row("INSERT", "u-new", "x", 3), 0, false, Value::Null),
        (
            user_row("INSERT", "u-live", "x", 1),
            1,
            false,
            live_row.clone(),
        ),
        (user_row("INSERT", "u-dead", "x", 1), 2, true, Value::Null),
        (user_row("UPDATE", "u-new", "x", 0), 0, false, Value::Null),
        (user_row("UPDATE", "u-dead", "x", 2), 2, true, Value::Null),
        (
            user_row("UPDATE", "u-live", "x", 0),
            1,
            false,
            live_row.clone(),
        ),
        (user_row("DELETE", "u-new", "", 0), 0, false, Value::Null),
        (user_row("DELETE", "u-dead", "", 2), 2, true, Value::Null),
        (
            user_row("DELETE", "u-live", "", 2),
            1,
            false,
            live_row.clone(),
        ),
    ];
    for (row, server_version, deleted, server_row) in cases {
        // A valid first row proves the whole bundle is rejected atomically.
        let (status, body) = alice.push(3, &[user_row("INSERT", "u-ok", "ok", 0), row.clone()]);
        assert_eq!(
            (status, &body["error"]),
            (409, &json!("push_conflict")),
            "{row}: {body}"
        );
        let conflict = &body["conflict"];
        assert_eq!(conflict["schema"], "business");
        assert_eq!(conflict["table"], "users");
        assert_eq!(conflict["key"], row["key"]);
        assert_eq!(conflict["op"], row["op"]);
        assert_eq!(conflict["base_row_version"], row["base_row_version"]);
        assert_eq!(conflict["server_row_version"], server_version, "{row}");
        assert_eq!(conflict["server_row_deleted"], deleted, "{row}");
        assert_eq!(conflict["server_row"], server_row, "{row}");
        assert!(conflict.as_object().unwrap().contains_key("server_row"));
    }
    assert_eq!(
        alice.pull(0).1["stable_bundle_seq"],
        2,
        "no conflicting bundle was committed"
    );
    // Accepted rows of the table: insert new at 0, re-insert over a tombstone at its version,
    // update and delete a live row at its version.
    let ok = alice.push_ok(
        3,
        &[
            user_row("INSERT", "u-new", "n", 0),
            user_row("INSERT", "u-dead", "again", 2),
            user_row("UPDATE", "u-live", "upd", 1),
        ],
    );
    assert_eq!(ok["bundle_seq"], 3);
    let ok = alice.push_ok(4, &[user_row("DELETE", "u-live", "", 3)]);
    assert_eq!(ok["bundle_seq"], 4);
    let pulled = pull_all(&alice);
    assert_eq!(
        pulled.bundles[2].rows[1].op,
        oversqlite_protocol::Op::Insert
    );
    assert_eq!(
        pulled.bundles[2].rows[1].payload.as_ref().unwrap()["name"],
        "again"
    );
}

#[test]
fn source_sequence_changed_and_retired_on_commit() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(1, &[user_row("INSERT", "u1", "a", 0)]);
    let (_, session) = alice.create(2, 1);
    let push_id = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        alice
            .chunk(&push_id, 0, &[user_row("INSERT", "u2", "b", 0)])
            .0,
        200
    );
    // The same source id commits bundle 2 through the server-side path meanwhile.
    let (status, body) = server.post_test(
        "/test/server-bundle",
        json!({"user_id":"alice","source_id":"dev-a","rows":[user_row("INSERT", "u3", "c", 0)]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source_bundle_id"], 2);
    assert_error(alice.commit(&push_id), 409, "source_sequence_changed");

    let (_, session) = alice.create(3, 1);
    let push_id = session["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        alice
            .chunk(&push_id, 0, &[user_row("INSERT", "u4", "d", 0)])
            .0,
        200
    );
    let rotate = json!({"source_replacement": {"previous_source_id": "dev-a", "new_source_id": "dev-a2", "reason": "source_sequence_changed"}});
    assert_eq!(alice.post("/sync/snapshot-sessions", rotate).0, 200);
    let body = assert_error(alice.commit(&push_id), 409, "source_retired");
    assert_eq!(
        (&body["source_id"], &body["replaced_by_source_id"]),
        (&json!("dev-a"), &json!("dev-a2"))
    );
}

#[test]
fn snapshots_and_source_replacement() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(
        1,
        &[
            user_row("INSERT", "b", "B", 0),
            user_row("INSERT", "a", "A", 0),
        ],
    );
    alice.push_ok(
        2,
        &[
            user_row("UPDATE", "b", "B2", 1),
            user_row("INSERT", "c", "C", 0),
        ],
    );
    alice.push_ok(3, &[user_row("DELETE", "c", "", 2)]);
    let file = json!({"schema":"business","table":"files","key":{"id":"00000000-0000-4000-8000-000000000001"},"op":"INSERT","base_row_version":0,"payload":{"name":"f","data":"AAE="}});
    alice.push_ok(4, &[file]);

    let (status, snap) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200);
    assert_eq!(
        (&snap["snapshot_bundle_seq"], &snap["row_count"]),
        (&json!(4), &json!(3))
    );
    assert!(snap["byte_count"].as_i64().unwrap() > 0);
    assert!(snap["expires_at"].as_str().unwrap().ends_with('Z'));
    let id = snap["snapshot_id"].as_str().unwrap();
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let (_, page) = alice.get(&format!(
            "/sync/snapshot-sessions/{id}?after_row_ordinal={after}&max_rows=2"
        ));
        assert_eq!(page["snapshot_id"], json!(id));
        assert_eq!(page["snapshot_bundle_seq"], 4);
        let n = page["rows"].as_array().unwrap().len() as i64;
        assert_eq!(page["next_row_ordinal"], after + n, "1-based ordinals");
        rows.extend(page["rows"].as_array().unwrap().clone());
        after += n;
        if page["has_more"] == false {
            break;
        }
    }
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap().to_string(),
                r["key"]["id"].as_str().unwrap().to_string(),
                r["row_version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "files".into(),
                "00000000-0000-4000-8000-000000000001".into(),
                4
            ),
            ("users".into(), "a".into(), 1),
            ("users".into(), "b".into(), 2)
        ],
        "ordered by (table, key); row_version is the last writing bundle"
    );
    assert_eq!(rows[2]["payload"]["name"], "B2");
    assert_eq!(rows[0]["payload"]["data"], "AAE=");

    // Rotated rebuild: dev-a is retired in favour of dev-a2.
    let rotate = |prev: &Client, new: &str| {
        prev.post("/sync/snapshot-sessions", json!({"source_replacement": {"previous_source_id": prev.source, "new_source_id": new, "reason": "history_pruned"}}))
    };
    assert_eq!(rotate(&alice, "dev-a2").0, 200);
    let body = assert_error(alice.create(5, 1), 409, "source_retired");
    assert_eq!(
        (&body["source_id"], &body["replaced_by_source_id"]),
        (&json!("dev-a"), &json!("dev-a2"))
    );
    assert_eq!(
        alice.create(2, 1).1["status"],
        "already_committed",
        "a retired source can still replay"
    );
    assert_eq!(
        rotate(&alice, "dev-a2").0,
        200,
        "idempotent retry while the replacement is reserved"
    );
    let body = assert_error(rotate(&alice, "dev-a3"), 409, "source_retired");
    assert_eq!(body["replaced_by_source_id"], "dev-a2");
    let replacement = alice.with_source("dev-a2");
    assert_error(
        replacement.create(2, 1),
        409,
        "source_sequence_out_of_order",
    );
    replacement.push_ok(1, &[user_row("INSERT", "d", "D", 0)]);
    assert_eq!(
        rotate(&alice, "dev-a2").0,
        200,
        "idempotent retry after the replacement became active"
    );
    // The new source must be unknown.
    let other = alice.with_source("dev-b");
    other.push_ok(1, &[user_row("INSERT", "e", "E", 0)]);
    assert_error(rotate(&other, "dev-a2"), 409, "source_replacement_invalid");
    assert_error(rotate(&other, "dev-a"), 409, "source_replacement_invalid");
    // A source that never committed can be rotated too and becomes retired.
    let fresh = alice.with_source("dev-c");
    assert_eq!(rotate(&fresh, "dev-c2").0, 200);
    assert_error(fresh.create(1, 1), 409, "source_retired");
}

#[test]
fn retention_drives_history_pruned() {
    let server = Server::start(&["--retained-window", "2"]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let mut commits = Vec::new();
    for id in 1..=4 {
        commits.push(alice.push_ok(id, &[user_row("INSERT", &format!("u{id}"), "x", 0)]));
    }
    assert_error(alice.pull(1), 409, "history_pruned");
    assert_error(
        alice.get("/sync/pull?after_bundle_seq=3&target_bundle_seq=2"),
        409,
        "history_pruned",
    );
    let pulled = pull_all(&alice);
    assert_eq!(
        pulled
            .bundles
            .iter()
            .map(|b| b.bundle_seq)
            .collect::<Vec<_>>(),
        [3, 4],
        "a zero checkpoint gets what is retained"
    );
    assert_error(alice.pull(2), 409, "history_pruned");
    assert_eq!(
        alice.pull(3).1["bundles"][0]["bundle_seq"],
        4,
        "above the floor pulls work"
    );
    assert_error(
        alice.get("/sync/committed-bundles/2/rows"),
        409,
        "history_pruned",
    );
    assert_eq!(alice.get("/sync/committed-bundles/3/rows").0, 200);
    assert_error(alice.create(1, 1), 409, "history_pruned");
    let replay = alice.create(3, 1).1;
    assert_eq!(
        (&replay["status"], &replay["bundle_hash"]),
        (&json!("already_committed"), &commits[2]["bundle_hash"])
    );
    let (_, status) = request(&server.url("/syncx/status"), "GET", &[], None);
    let status = parse(&status);
    assert_eq!(status["retained_bundle_floor_max"], 2);
    assert_eq!(status["latest_bundle_seq_max"], 4);
    assert_eq!(status["retained_bundle_window_max"], 2);
    assert_eq!(status["committed_bundle_count"], 2);
    assert!(status["history_pruned_error_count"].as_i64().unwrap() >= 4);
    assert!(status["accepted_push_replay_count"].as_i64().unwrap() >= 1);

    // The test hook moves the floor explicitly.
    let (s, body) = server.post_test(
        "/test/retention-floor",
        json!({"user_id": "alice", "retained_bundle_floor": 3}),
    );
    assert_eq!(
        (s, body),
        (
            200,
            json!({"retained_bundle_floor": 3, "status": "ok", "user_id": "alice"})
        )
    );
    assert_error(alice.pull(3), 409, "history_pruned");
    assert_error(
        alice.get("/sync/committed-bundles/3/rows"),
        409,
        "history_pruned",
    );
    assert_error(alice.create(3, 1), 409, "history_pruned");
    assert_eq!(alice.pull(4).0, 200);
    server.post_test(
        "/test/retention-floor",
        json!({"user_id": "alice", "retained_bundle_floor": 4}),
    );
    assert_error(alice.pull(0), 409, "history_pruned");
    let (s, body) = server.post_test(
        "/test/retention-floor",
        json!({"user_id": "nobody", "retained_bundle_floor": 1}),
    );
    assert_eq!((s, &body["error"]), (404, &json!("user_state_not_found")));
    assert_eq!(
        server
            .post_test(
                "/test/retention-floor",
                json!({"user_id": "alice", "retained_bundle_floor": -1})
            )
            .0,
        400
    );
    assert_eq!(
        server
            .post_test("/test/retention-floor", json!({"retained_bundle_floor": 1}))
            .0,
        400
    );
}

#[test]
fn watch_stream_wakes_on_commits() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(1, &[user_row("INSERT", "u1", "x", 0)]);
    let mut stream = WatchStream::open(&alice, 0);
    assert!(
        stream.wait_for("data: {\"bundle_seq\":1}\n\n", 1, Duration::from_secs(5)),
        "catch-up event: {}",
        stream.buffer
    );
    assert!(
        stream.buffer.contains("content-type: text/event-stream"),
        "{}",
        stream.buffer
    );
    assert!(stream.buffer.contains("cache-control: no-cache"));
    assert!(stream.buffer.contains("x-accel-buffering: no"));
    assert!(
        stream.wait_for(": heartbeat\n\n", 1, Duration::from_secs(5)),
        "heartbeat: {}",
        stream.buffer
    );
    let (_, subscribers) = request(
        &server.url("/test/watch-subscribers?user_id=alice"),
        "GET",
        &[],
        None,
    );
    assert_eq!(parse(&subscribers)["subscriber_count"], 1);
    let other = alice.with_source("dev-b");
    other.push_ok(1, &[user_row("INSERT", "u2", "y", 0)]);
    let expected = "event: bundle\ndata: {\"bundle_seq\":2,\"source_id\":\"dev-b\",\"source_bundle_id\":1}\n\n";
    assert!(
        stream.wait_for(expected, 1, Duration::from_secs(5)),
        "commit event: {}",
        stream.buffer
    );
    let (s, _) = server.post_test(
        "/test/server-bundle",
        json!({"user_id":"alice","rows":[user_row("INSERT", "u3", "z", 0)]}),
    );
    assert_eq!(s, 200);
    assert!(
        stream.wait_for(
            "{\"bundle_seq\":3,\"source_id\":\"server\",\"source_bundle_id\":1}",
            1,
            Duration::from_secs(5)
        ),
        "{}",
        stream.buffer
    );
    // A watcher that is up to date gets no catch-up event, and other users' commits never reach it.
    let mut quiet = WatchStream::open(&alice, 3);
    let bob = server.client("bob", "dev-bob");
    bob.connect(false);
    bob.push_ok(1, &[user_row("INSERT", "b1", "b", 0)]);
    assert!(quiet.wait_for(": heartbeat", 2, Duration::from_secs(5)));
    assert!(!quiet.buffer.contains("event: bundle"), "{}", quiet.buffer);
}

#[test]
fn server_originated_bundles_reach_clients() {
    let server = Server::start(&[]);
    // For a user the server has never seen, the bundle initialises the scope.
    let (status, commit) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "rows": [user_row("INSERT", "s1", "Server", 0), user_row("INSERT", "s2", "Two", 0)]}),
    );
    assert_eq!(status, 200, "{commit}");
    assert_eq!(
        (
            &commit["bundle_seq"],
            &commit["source_id"],
            &commit["source_bundle_id"],
            &commit["row_count"]
        ),
        (&json!(1), &json!("server"), &json!(1), &json!(2))
    );
    let alice = server.client("alice", "dev-a");
    assert_eq!(alice.connect(true)["resolution"], "remote_authoritative");
    let (s, second) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "source_id": "server", "source_bundle_id": 2, "rows": [user_row("UPDATE", "s1", "Renamed", 0), user_row("DELETE", "s2", "", 0)]}),
    );
    assert_eq!(s, 200, "{second}");
    let pulled = pull_all(&alice);
    assert_eq!(pulled.bundles.len(), 2);
    assert_eq!(pulled.bundles[1].source_id, "server");
    assert_eq!(
        pulled.bundles[1].rows[0].payload.as_ref().unwrap()["name"],
        "Renamed"
    );
    assert_eq!(
        pulled.bundles[1].bundle_hash.as_deref(),
        Some(bundle_hash(&pulled.bundles[1].rows).as_str())
    );
    // Clients build on server rows with the server's row versions.
    alice.push_ok(1, &[user_row("UPDATE", "s1", "Client", 2)]);
    let (s, replay) = server.post_test("/test/server-bundle", json!({"user_id": "alice", "source_bundle_id": 2, "rows": [user_row("INSERT", "zz", "z", 0)]}));
    assert_eq!(
        (s, &replay["status"], &replay["bundle_hash"]),
        (200, &json!("already_committed"), &second["bundle_hash"])
    );
    let (s, gap) = server.post_test("/test/server-bundle", json!({"user_id": "alice", "source_bundle_id": 9, "rows": [user_row("INSERT", "zz", "z", 0)]}));
    assert_eq!(
        (s, &gap["error"]),
        (409, &json!("source_sequence_out_of_order"))
    );
    let (s, conflict) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "rows": [user_row("INSERT", "s1", "again", 0)]}),
    );
    assert_eq!((s, &conflict["error"]), (409, &json!("push_conflict")));
    for bad in [
        json!({"user_id": "alice", "rows": []}),
        json!({"user_id": "", "rows": [user_row("INSERT", "q", "q", 0)]}),
        json!({"user_id": "alice", "rows": [], "extra": 1}),
        json!({"user_id": "alice", "rows": [{"table": "nope"}]}),
    ] {
        let (s, body) = server.post_test("/test/server-bundle", bad.clone());
        assert_eq!(
            (s, &body["error"]),
            (400, &json!("invalid_request")),
            "{bad}"
        );
    }
    // While a client holds the initialisation lease the hook is refused.
    let bob = server.client("bob", "dev-b");
    bob.connect(true);
    let (s, body) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "bob", "rows": [user_row("INSERT", "q", "q", 0)]}),
    );
    assert_eq!((s, &body["error"]), (409, &json!("scope_initializing")));

    let (s, reset) = server.post_test("/test/reset", json!({}));
    assert_eq!(
        (s, reset),
        (200, json!({"schema": "business", "status": "ok"}))
    );
    assert_error(alice.pull(0), 409, "scope_uninitialized");
    assert_eq!(alice.connect(false)["resolution"], "initialize_empty");
    assert_eq!(pull_all(&alice).stable_bundle_seq, 0);
}

#[test]
fn payload_encoding_and_store_layout() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let file_id = "3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10";
    let typed = json!({"schema":"business","table":"typed_rows","key":{"id":"t1"},"op":"INSERT","base_row_version":0,
        "payload":{"id":"t1","name":"R&D <ops>","note":null,"count_value":9007199254740993i64,"enabled_flag":1,"rating":1.5,
                   "data":"3q2+7w==","created_at":"2026-03-24T20:42:11+02:00"}});
    let file = json!({"schema":"business","table":"files","key":{"id":file_id},"op":"INSERT","base_row_version":0,"payload":{"id":file_id,"name":"f","data":""}});
    let review = json!({"schema":"business","table":"file_reviews","key":{"id":"9b2e4c1a-0000-4000-8000-000000000001"},"op":"INSERT","base_row_version":0,
        "payload":{"review":"ok","file_id":"3F1C0B0E-8D52-4A7E-9A51-0C6C3F1B2A10"}});
    // Children may precede parents inside one bundle (foreign keys are deferred).
    let commit = alice.push_ok(1, &[review, file, typed]);
    let pulled = pull_all(&alice);
    let rows = &pulled.bundles[0].rows;
    assert_eq!(bundle_hash(rows), commit["bundle_hash"].as_str().unwrap());
    assert_eq!(
        rows[0].payload.as_ref().unwrap()["file_id"],
        json!(file_id),
        "uuid columns are canonical lowercase"
    );
    assert_eq!(rows[1].payload.as_ref().unwrap()["data"], json!(""));
    let t = rows[2].payload.as_ref().unwrap();
    assert_eq!(
        t["count_value"],
        json!(9007199254740993i64),
        "int64 survives exactly on the wire"
    );
    assert_eq!(
        (&t["rating"], &t["data"], &t["note"], &t["name"]),
        (
            &json!(1.5),
            &json!("3q2+7w=="),
            &Value::Null,
            &json!("R&D <ops>")
        )
    );
    assert_eq!(t["created_at"], "2026-03-24T20:42:11+02:00");
    // A dangling foreign key fails the commit and writes nothing.
    let orphan = json!({"schema":"business","table":"file_reviews","key":{"id":"9b2e4c1a-0000-4000-8000-000000000002"},"op":"INSERT","base_row_version":0,
        "payload":{"review":"x","file_id":"00000000-0000-4000-8000-00000000dead"}});
    assert_error(alice.push(2, &[orphan]), 400, "push_commit_invalid");
    assert_eq!(pull_all(&alice).stable_bundle_seq, 1);
    assert_eq!(
        alice.create(2, 1).1["status"],
        "staging",
        "the source sequence did not advance"
    );

    // A chunk larger than common 2 MB body limits is accepted.
    let blob = "QUJD".repeat(400);
    let big: Vec<Value> = (0..2000)
        .map(|i| json!({"schema":"business","table":"typed_rows","key":{"id":format!("big{i}")},"op":"INSERT","base_row_version":0,
                        "payload":{"name":"b","enabled_flag":0,"data":blob}}))
        .collect();
    let big_commit = alice.push_ok(2, &big);
    assert_eq!(big_commit["row_count"], 2000);

    // Operators can query the registered tables directly; the owner column is the user id.
    let conn = rusqlite::Connection::open_with_flags(
        &server.data,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (owner, data, count): (String, Vec<u8>, i64) = conn
        .query_row(r#"SELECT _sync_scope_id, data, count_value FROM "business.typed_rows" WHERE id = 't1'"#, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(
        (owner.as_str(), data, count),
        ("alice", vec![0xde, 0xad, 0xbe, 0xef], 9007199254740993)
    );
    let review_fk: String = conn
        .query_row(r#"SELECT file_id FROM "business.file_reviews""#, [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(review_fk, file_id);
    // Direct writes bypassing sync bundles are rejected: clients would never see them.
    let writer = rusqlite::Connection::open(&server.data).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    for sql in [
        r#"INSERT INTO "business.users" (_sync_scope_id, id, name, email, created_at, updated_at) VALUES ('alice', 'x', 'x', 'x', 'x', 'x')"#,
        r#"UPDATE "business.typed_rows" SET name = 'changed'"#,
        r#"DELETE FROM "business.files""#,
    ] {
        let error = writer.execute(sql, []).unwrap_err().to_string();
        assert!(
            error.contains("is a registered sync table"),
            "{sql}: {error}"
        );
    }
    let context_rows: i64 = writer
        .query_row("SELECT COUNT(*) FROM _oversync_write_context", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(context_rows, 0);
    drop(writer);
    assert_eq!(
        alice.push_ok(3, &[user_row("INSERT", "after-guard", "g", 0)])["bundle_seq"],
        3
    );
}
