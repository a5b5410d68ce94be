//! The row-carrying read bodies (pull, committed rows, snapshot chunks) are encoded from
//! the stored payload text instead of the protocol types: they must stay byte-for-byte what
//! encoding the protocol types produces, with the after-images the store holds. Also:
//! snapshot chunks across stored blocks (by row count and by size), the cascade source id no
//! client can name, and staged push
//! chunks and snapshot sessions across an upgrade and a restart.

mod common;

use common::*;
use oversqlite_protocol::{CommittedBundleRowsResponse, PullResponse, SnapshotChunkResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// GET returning the raw body text.
fn get_text(client: &Client, path: &str) -> String {
    let (status, text) = request(
        &format!("{}{}", client.base, path),
        "GET",
        &client.headers(),
        None,
    );
    assert_eq!(status, 200, "{path}: {text}");
    text
}

/// Decodes `text` as `T` and asserts that encoding it again gives the same bytes.
#[track_caller]
fn assert_protocol_encoding<T: DeserializeOwned + Serialize>(text: &str) -> T {
    let value: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(serde_json::to_string(&value).unwrap(), text);
    value
}

fn typed_row(op: &str, id: &str, base: i64, payload: Value) -> Value {
    json!({"schema": "business", "table": "typed_rows", "key": {"id": id}, "op": op,
           "base_row_version": base, "payload": payload})
}

#[test]
fn read_bodies_are_the_protocol_encoding_of_the_stored_after_images() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-1");
    alice.connect(false);
    let tricky = "tab\tquote\"slash/ctrl\u{1}é😀";
    alice.push_ok(
        1,
        &[
            typed_row(
                "INSERT",
                "t1",
                0,
                json!({"id": "t1", "name": tricky, "note": null, "count_value": 1e3,
                       "enabled_flag": true, "rating": 0.1, "data": "3q2+7w==",
                       "created_at": "2026-03-24T20:42:11+02:00"}),
            ),
            // Absent nullable columns are stored as NULL.
            typed_row(
                "INSERT",
                "t2",
                0,
                json!({"id": "t2", "name": "two", "enabled_flag": 0}),
            ),
            user_row("INSERT", "u1", "Ann", 0),
            // Values the store changes: integral numbers into REAL and INTEGER columns, -0.0.
            typed_row(
                "INSERT",
                "t3",
                0,
                json!({"id": "t3", "name": "three", "count_value": 7.0, "enabled_flag": 1,
                       "rating": 3, "data": "", "note": ""}),
            ),
            typed_row(
                "INSERT",
                "t4",
                0,
                json!({"id": "t4", "name": "four", "enabled_flag": 0, "rating": -0.0}),
            ),
        ],
    );
    // A partial UPDATE changes only its columns; a full one replaces the row.
    alice.push_ok(
        2,
        &[
            typed_row("UPDATE", "t1", 1, json!({"id": "t1", "rating": 2})),
            typed_row(
                "UPDATE",
                "t2",
                1,
                json!({"id": "t2", "name": "TWO", "note": "n", "count_value": -5,
                       "enabled_flag": 1, "rating": null, "data": null, "created_at": null}),
            ),
        ],
    );

    let pull: PullResponse = assert_protocol_encoding(&get_text(
        &alice,
        "/sync/pull?after_bundle_seq=0&max_bundles=10",
    ));
    assert_eq!(pull.bundles.len(), 2);
    let t1_after = pull.bundles[1].rows[0].payload.clone().unwrap();
    assert_eq!(
        Value::Object(t1_after.clone()),
        json!({"id": "t1", "name": tricky, "note": null, "count_value": 1000,
               "enabled_flag": 1, "rating": 2.0, "data": "3q2+7w==",
               "created_at": "2026-03-24T20:42:11+02:00"})
    );
    assert_eq!(
        Value::Object(pull.bundles[0].rows[1].payload.clone().unwrap()),
        json!({"id": "t2", "name": "two", "note": null, "count_value": null,
               "enabled_flag": 0, "rating": null, "data": null, "created_at": null})
    );
    let t2_after = pull.bundles[1].rows[1].payload.clone().unwrap();
    assert_eq!(t2_after["name"], "TWO");
    let t3_after = pull.bundles[0].rows[3].payload.clone().unwrap();
    assert_eq!(
        (
            &t3_after["count_value"],
            &t3_after["rating"],
            &t3_after["data"]
        ),
        (&json!(7), &json!(3.0), &json!(""))
    );
    let t4_after = pull.bundles[0].rows[4].payload.clone().unwrap();
    assert_eq!(serde_json::to_string(&t4_after["rating"]).unwrap(), "0.0");

    // Committed rows, one row per page.
    let mut after = None;
    let mut paged = Vec::new();
    loop {
        let query = match after {
            Some(a) => format!("?after_row_ordinal={a}&max_rows=1"),
            None => "?max_rows=1".to_string(),
        };
        let page: CommittedBundleRowsResponse = assert_protocol_encoding(&get_text(
            &alice,
            &format!("/sync/committed-bundles/1/rows{query}"),
        ));
        paged.extend(page.rows);
        after = Some(page.next_row_ordinal);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(paged, pull.bundles[0].rows);

    // Snapshot: rows in (table, key) order with the latest after-images; `byte_count` is
    // the length of their compact JSON payloads.
    let (status, session) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{session}");
    let id = session["snapshot_id"].as_str().unwrap();
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let chunk: SnapshotChunkResponse = assert_protocol_encoding(&get_text(
            &alice,
            &format!("/sync/snapshot-sessions/{id}?after_row_ordinal={after}&max_rows=2"),
        ));
        rows.extend(chunk.rows);
        after = chunk.next_row_ordinal;
        if !chunk.has_more {
            break;
        }
    }
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.table.clone(), r.key["id"].clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("typed_rows", "t1"),
            ("typed_rows", "t2"),
            ("typed_rows", "t3"),
            ("typed_rows", "t4"),
            ("users", "u1")
        ]
        .map(|(t, k)| (t.to_string(), k.to_string()))
    );
    // The snapshot reads the store: the committed after-images are what it holds.
    let after_images = [&t1_after, &t2_after, &t3_after, &t4_after];
    for (row, after) in rows.iter().zip(after_images) {
        assert_eq!(
            serde_json::to_string(&row.payload).unwrap(),
            serde_json::to_string(after).unwrap()
        );
    }
    assert_eq!(rows[0].row_version, 2);
    assert_eq!(rows[4].row_version, 1);
    let bytes: usize = rows
        .iter()
        .map(|r| serde_json::to_string(&r.payload).unwrap().len())
        .sum();
    assert_eq!(session["byte_count"], json!(bytes));
}

/// Every snapshot chunk of `id` of at most `max_rows` rows after `after`, as raw text.
fn snapshot_chunk(client: &Client, id: &str, after: i64, max_rows: i64) -> SnapshotChunkResponse {
    assert_protocol_encoding(&get_text(
        client,
        &format!("/sync/snapshot-sessions/{id}?after_row_ordinal={after}&max_rows={max_rows}"),
    ))
}

#[test]
fn snapshot_chunks_cross_stored_blocks_at_any_position() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-1");
    alice.connect(false);
    const ROWS: usize = 2_500;
    let rows: Vec<Value> = (0..ROWS)
        .map(|i| user_row("INSERT", &format!("u{i:05}"), &format!("name {i}"), 0))
        .collect();
    alice.push_ok(1, &rows);
    let (status, session) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["row_count"], ROWS);
    let id = session["snapshot_id"].as_str().unwrap();

    // Pages of 700 straddle the stored blocks; every row comes once, in key order.
    let mut keys = Vec::new();
    let mut after = 0;
    loop {
        let chunk = snapshot_chunk(&alice, id, after, 700);
        assert_eq!(chunk.next_row_ordinal, after + chunk.rows.len() as i64);
        keys.extend(chunk.rows.iter().map(|r| r.key["id"].clone()));
        after = chunk.next_row_ordinal;
        if !chunk.has_more {
            break;
        }
        assert_eq!(chunk.rows.len(), 700);
    }
    let expected: Vec<String> = (0..ROWS).map(|i| format!("u{i:05}")).collect();
    assert_eq!(keys, expected);

    // Ordinals are 1-based: after 999 come rows 1000 and 1001 (the first of the second
    // stored block); the last page ends exactly; past the end is empty.
    let pair = snapshot_chunk(&alice, id, 999, 2);
    let pair_keys: Vec<&str> = pair.rows.iter().map(|r| r.key["id"].as_str()).collect();
    assert_eq!(pair_keys, ["u00999", "u01000"]);
    assert!(pair.has_more);
    let tail = snapshot_chunk(&alice, id, 2_499, 5);
    assert_eq!(tail.rows.len(), 1);
    assert!(!tail.has_more);
    assert_eq!(tail.rows[0].payload["name"], "name 2499");
    let past = snapshot_chunk(&alice, id, 2_500, 5);
    assert!(past.rows.is_empty());
    assert!(!past.has_more);
    assert_eq!(past.next_row_ordinal, 2_500);
}

/// Blocks also close by size, so a snapshot of large rows never builds one stored value
/// near SQLite's 1 GB limit (a single value that large is refused, failing every
/// snapshot of the user).
#[test]
fn snapshot_blocks_of_large_rows_close_by_size() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-1");
    alice.connect(false);
    let big = "x".repeat(1 << 20);
    let rows: Vec<Value> = (0..10)
        .map(|i| user_row("INSERT", &format!("u{i:02}"), &format!("{i}{big}"), 0))
        .collect();
    alice.push_ok(1, &rows);
    let (status, session) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{session}");
    let id = session["snapshot_id"].as_str().unwrap().to_string();

    let store = rusqlite::Connection::open(&server.data).unwrap();
    let (blocks, largest): (i64, i64) = store
        .query_row(
            "SELECT COUNT(*), MAX(length(rows)) FROM _oversync_snapshot_blocks WHERE snapshot_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(blocks >= 3, "10 rows of 1 MiB in {blocks} blocks");
    assert!(largest <= 4 << 20, "largest block {largest} bytes");
    // Pages of 3 rows (the test client reads at most 10 MB per response).
    let mut names = Vec::new();
    let mut after = 0;
    loop {
        let chunk = snapshot_chunk(&alice, &id, after, 3);
        names.extend(
            chunk
                .rows
                .iter()
                .map(|r| r.payload["name"].as_str().unwrap().to_string()),
        );
        after = chunk.next_row_ordinal;
        if !chunk.has_more {
            break;
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("{i}{big}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn no_client_can_name_the_cascade_source() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-1");
    alice.connect(false);
    alice.push_ok(1, &[user_row("INSERT", "u1", "Ann", 0)]);
    // The cascade bundles' id starts with a space; headers are trimmed, so every id a
    // client can send, `server-cascade` included, is an ordinary source (the reference
    // reserves none).
    let named = alice.with_source(" server-cascade ");
    named.connect(false);
    named.push_ok(1, &[user_row("INSERT", "u2", "Bob", 0)]);
    let (status, page) = named.get("/sync/pull?after_bundle_seq=0&max_bundles=10");
    assert_eq!(status, 200, "{page}");
    let sources: Vec<&str> = page["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source_id"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["dev-1", "server-cascade"]);
    // A rotation cannot hand out the cascade id either: `new_source_id` is trimmed too,
    // so the rotated device gets the ordinary id and can use it.
    let bob = server.client("bob", "dev-b");
    bob.connect(false);
    bob.push_ok(1, &[user_row("INSERT", "b1", "Bea", 0)]);
    let rotate = json!({"source_replacement": {"previous_source_id": "dev-b",
        "new_source_id": " server-cascade", "reason": "source_sequence_changed"}});
    let (status, body) = bob.post("/sync/snapshot-sessions", rotate);
    assert_eq!(status, 200, "{body}");
    assert_error(bob.create(2, 1), 409, "source_retired");
    let rotated = bob.with_source("server-cascade");
    rotated.connect(false);
    rotated.push_ok(1, &[user_row("INSERT", "b2", "Ben", 0)]);
}

#[test]
fn staged_chunks_survive_a_restart_and_old_row_storage_is_retired() {
    let mut server = Server::start(&[]);
    let alice = server.client("alice", "dev-1");
    alice.connect(false);
    alice.push_ok(1, &[user_row("INSERT", "u0", "Zed", 0)]);

    // Session A is staged the current way (one chunk of two rows, one more to come).
    let (_, created) = alice.create(2, 3);
    let kept = created["push_id"].as_str().unwrap().to_string();
    let (status, body) = alice.chunk(
        &kept,
        0,
        &[
            user_row("INSERT", "u1", "Ann", 0),
            user_row("INSERT", "u2", "Bob", 0),
        ],
    );
    assert_eq!(status, 200, "{body}");
    // Session B stands for one an older server staged row by row.
    let bob = server.client("bob", "dev-b");
    bob.connect(false);
    let (_, created) = bob.create(1, 2);
    let old = created["push_id"].as_str().unwrap().to_string();
    let (status, body) = bob.chunk(&old, 0, &[user_row("INSERT", "b1", "Bea", 0)]);
    assert_eq!(status, 200, "{body}");
    // A snapshot session stands for one an older server froze row by row.
    let (status, snapshot) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(status, 200, "{snapshot}");
    let snapshot_id = snapshot["snapshot_id"].as_str().unwrap().to_string();

    server.kill();
    {
        let db = rusqlite::Connection::open(&server.data).unwrap();
        db.execute_batch(
            "DROP VIEW _oversync_push_rows;
             CREATE TABLE _oversync_push_rows (push_id TEXT NOT NULL, row_ordinal INTEGER NOT NULL,
               table_name TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
               base_row_version INTEGER NOT NULL, payload TEXT, PRIMARY KEY (push_id, row_ordinal))",
        )
        .unwrap();
        db.execute(
            "INSERT INTO _oversync_push_rows VALUES (?1, 0, 'business.users', 'b1', 'INSERT', 0, NULL)",
            [&old],
        )
        .unwrap();
        db.execute(
            "DELETE FROM _oversync_push_chunks WHERE push_id = ?1",
            [&old],
        )
        .unwrap();
        db.execute_batch(
            "CREATE TABLE _oversync_snapshot_rows (snapshot_id TEXT NOT NULL, row_ordinal INTEGER NOT NULL,
               table_name TEXT NOT NULL, key TEXT NOT NULL, row_version INTEGER NOT NULL,
               payload TEXT NOT NULL, PRIMARY KEY (snapshot_id, row_ordinal));
             DELETE FROM _oversync_snapshot_blocks;",
        )
        .unwrap();
    }
    server.restart();
    let alice = server.client("alice", "dev-1");
    let bob = server.client("bob", "dev-b");

    assert_error(
        bob.chunk(&old, 1, &[user_row("INSERT", "b2", "Ben", 0)]),
        404,
        "push_session_not_found",
    );
    assert_error(
        alice.get(&format!("/sync/snapshot-sessions/{snapshot_id}")),
        404,
        "snapshot_session_not_found",
    );
    // The old table is gone; a view of that name lists the rows staged in chunks.
    let db = rusqlite::Connection::open(&server.data).unwrap();
    let kind: String = db
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = '_oversync_push_rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "view");
    let old_snapshot_table: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = '_oversync_snapshot_rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_snapshot_table, 0);
    let staged: Vec<(String, i64, String, String, String, i64, String)> = db
        .prepare("SELECT * FROM _oversync_push_rows ORDER BY push_id, row_ordinal")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let summary: Vec<(&str, i64, &str, &str, &str, i64)> = staged
        .iter()
        .map(|(p, o, t, k, op, b, _)| (p.as_str(), *o, t.as_str(), k.as_str(), op.as_str(), *b))
        .collect();
    assert_eq!(
        summary,
        [
            (kept.as_str(), 0, "business.users", "u1", "INSERT", 0),
            (kept.as_str(), 1, "business.users", "u2", "INSERT", 0)
        ]
    );
    let payload: Value = serde_json::from_str(&staged[1].6).unwrap();
    assert_eq!(payload["name"], "Bob");

    // Out-of-order and over-long chunks are still refused against the restored position.
    assert_error(
        alice.chunk(&kept, 0, &[user_row("INSERT", "u3", "Cy", 0)]),
        409,
        "push_chunk_out_of_order",
    );
    let (status, body) = alice.chunk(&kept, 2, &[user_row("INSERT", "u3", "Cy", 0)]);
    assert_eq!(status, 200, "{body}");
    let (status, commit) = alice.commit(&kept);
    assert_eq!(status, 200, "{commit}");
    assert_eq!(commit["row_count"], 3);
    let (_, page) = alice.get(&format!(
        "/sync/committed-bundles/{}/rows?max_rows=10",
        commit["bundle_seq"]
    ));
    let ids: Vec<&str> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
}
