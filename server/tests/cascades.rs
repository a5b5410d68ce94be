//! `on_delete = "cascade"` foreign keys: the committed bundle of a push is exactly the pushed
//! rows (clients compare it with their outbox position by position), and the rows a cascade
//! removes are committed as the next bundle, from the server-side source " server-cascade",
//! which every device (the pusher included) receives by pull.

mod common;

use std::time::Duration;

use common::*;
use oversqlite_protocol::{bundle_hash, Bundle, BundleRow, PullResponse};
use serde_json::{json, Value};

const CASCADE: &str = " server-cascade";

fn insert(table: &str, id: &str, payload: Value) -> Value {
    json!({"schema":"business","table":table,"key":{"id":id},"op":"INSERT","base_row_version":0,"payload":payload})
}

fn update(table: &str, id: &str, base: i64, payload: Value) -> Value {
    json!({"schema":"business","table":table,"key":{"id":id},"op":"UPDATE","base_row_version":base,"payload":payload})
}

fn delete(table: &str, id: &str, base: i64) -> Value {
    json!({"schema":"business","table":table,"key":{"id":id},"op":"DELETE","base_row_version":base})
}

/// `(table, key id, op, row_version)` of one row.
type Summary = (String, String, String, i64);

fn s(table: &str, key: &str, op: &str, version: i64) -> Summary {
    (table.to_string(), key.to_string(), op.to_string(), version)
}

fn summarise(rows: &[BundleRow]) -> Vec<Summary> {
    rows.iter()
        .map(|r| {
            (
                r.table.clone(),
                r.key["id"].clone(),
                r.op.to_string(),
                r.row_version,
            )
        })
        .collect()
}

/// Committed rows of bundle `seq` with their hash and count verified, plus its metadata.
fn committed(client: &Client, seq: i64) -> (Value, Vec<Summary>) {
    let (status, page) = client.get(&format!("/sync/committed-bundles/{seq}/rows"));
    assert_eq!(status, 200, "{page}");
    let rows: Vec<BundleRow> = serde_json::from_value(page["rows"].clone()).unwrap();
    assert_eq!(bundle_hash(&rows), page["bundle_hash"].as_str().unwrap());
    assert_eq!(page["row_count"], rows.len());
    (page, summarise(&rows))
}

fn pull_after(client: &Client, after: i64) -> Vec<Bundle> {
    let (status, body) = client.pull(after);
    assert_eq!(status, 200, "{body}");
    let pulled: PullResponse = serde_json::from_value(body).unwrap();
    assert!(!pulled.has_more);
    pulled.bundles
}

/// `(bundle_seq, source_id, source_bundle_id, rows)` of a pulled bundle.
fn pulled(bundle: &Bundle) -> (i64, &str, i64, Vec<Summary>) {
    (
        bundle.bundle_seq,
        bundle.source_id.as_str(),
        bundle.source_bundle_id,
        summarise(&bundle.rows),
    )
}

#[test]
fn cascade_of_rows_the_pusher_never_saw_is_a_separate_bundle() {
    let server = Server::start(&[]);
    let device_a = server.client("alice", "dev-a");
    let device_b = device_a.with_source("dev-b");
    device_a.connect(false);
    assert_eq!(
        device_a.push_ok(1, &[insert("teams", "t1", json!({"name": "T"}))])["bundle_seq"],
        1
    );
    // Device B adds a member under t1; device A never pulls it and deletes t1.
    let member = json!({"name": "M9", "team_id": "t1"});
    assert_eq!(
        device_b.push_ok(1, &[insert("team_members", "m9", member)])["bundle_seq"],
        2
    );
    let mut watch = WatchStream::open(&device_b, 2);
    let commit = device_a.push_ok(2, &[delete("teams", "t1", 1)]);
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(3), &json!(1))
    );
    // The pushed bundle is exactly the pushed row: clients verify it position by position.
    let (_, rows) = committed(&device_a, 3);
    assert_eq!(rows, [s("teams", "t1", "DELETE", 3)]);
    // The cascade is the next bundle, from the server-side source, readable by any device.
    let (meta, rows) = committed(&device_b, 4);
    assert_eq!(
        (&meta["source_id"], &meta["source_bundle_id"]),
        (&json!(CASCADE), &json!(1))
    );
    assert_eq!(rows, [s("team_members", "m9", "DELETE", 4)]);
    let expected = "{\"bundle_seq\":4,\"source_id\":\" server-cascade\",\"source_bundle_id\":1}";
    assert!(
        watch.wait_for(expected, 1, Duration::from_secs(5)),
        "cascade watch event: {}",
        watch.buffer
    );
    // Device B pulls both; the pusher pulls the cascade after replaying its own bundle.
    let bundles = pull_after(&device_b, 2);
    let got: Vec<_> = bundles.iter().map(pulled).collect();
    assert_eq!(
        got,
        [
            (3, "dev-a", 2, vec![s("teams", "t1", "DELETE", 3)]),
            (4, CASCADE, 1, vec![s("team_members", "m9", "DELETE", 4)]),
        ]
    );
    assert!(bundles[1].rows[0].payload.is_none());
    let bundles = pull_after(&device_a, 3);
    assert_eq!(
        bundles.iter().map(pulled).collect::<Vec<_>>(),
        [(4, CASCADE, 1, vec![s("team_members", "m9", "DELETE", 4)])]
    );
    // Row state of the cascaded child is the cascade bundle: re-inserting needs base 4.
    let again = insert(
        "team_members",
        "m9",
        json!({"name": "again", "team_id": "t2"}),
    );
    let (status, conflict) = device_b.push(
        2,
        &[insert("teams", "t2", json!({"name": "T2"})), again.clone()],
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        (
            &conflict["conflict"]["server_row_version"],
            &conflict["conflict"]["server_row_deleted"]
        ),
        (&json!(4), &json!(true))
    );
    let mut rebased = again;
    rebased["base_row_version"] = json!(4);
    let commit = device_b.push_ok(2, &[insert("teams", "t2", json!({"name": "T2"})), rebased]);
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(5), &json!(2))
    );
    // The cascade source keeps its own contiguous ids: the next cascade is source bundle 2.
    let commit = device_b.push_ok(3, &[delete("teams", "t2", 5)]);
    assert_eq!(commit["row_count"], 1);
    let (meta, rows) = committed(&device_a, 7);
    assert_eq!(
        (&meta["source_id"], &meta["source_bundle_id"]),
        (&json!(CASCADE), &json!(2))
    );
    assert_eq!(rows, [s("team_members", "m9", "DELETE", 7)]);
    let (_, snapshot) = device_a.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(snapshot["row_count"], 0, "{snapshot}");
}

#[test]
fn cascading_foreign_keys_commit_their_deletes_after_the_pushed_bundle() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let file = "00000000-0000-4000-8000-00000000000f";
    let review = "00000000-0000-4000-8000-0000000000a1";
    alice.push_ok(1, &[
        insert("teams", "t1", json!({"name": "T"})),
        insert("team_members", "m2", json!({"name": "M2", "team_id": "t1"})),
        insert("team_members", "m1", json!({"name": "M1", "team_id": "t1"})),
        insert("categories", "c1", json!({"name": "root"})),
        insert("categories", "c2", json!({"name": "child", "parent_id": "c1"})),
        insert("categories", "c3", json!({"name": "grandchild", "parent_id": "c2"})),
        insert("files", file, json!({"name": "f", "data": "AA=="})),
        insert("file_reviews", review, json!({"review": "r", "file_id": file})),
        user_row("INSERT", "u1", "U", 0),
        insert("posts", "p1", json!({"title": "t", "content": "c", "author_id": "u1", "created_at": "x", "updated_at": "y"})),
    ]);
    // Deleting a team: the bundle is the pushed delete; its members follow in key order.
    let commit = alice.push_ok(2, &[delete("teams", "t1", 1)]);
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(committed(&alice, 2).1, [s("teams", "t1", "DELETE", 2)]);
    assert_eq!(
        committed(&alice, 3).1,
        [
            s("team_members", "m1", "DELETE", 3),
            s("team_members", "m2", "DELETE", 3)
        ]
    );
    // Recursive cascade: a pushed delete of a row the cascade would reach stays in the pushed
    // bundle, and the cascade holds only the rows nobody pushed.
    let commit = alice.push_ok(
        3,
        &[delete("categories", "c1", 1), delete("categories", "c3", 1)],
    );
    assert_eq!(commit["bundle_seq"], 4);
    assert_eq!(
        committed(&alice, 4).1,
        [
            s("categories", "c1", "DELETE", 4),
            s("categories", "c3", "DELETE", 4)
        ]
    );
    assert_eq!(committed(&alice, 5).1, [s("categories", "c2", "DELETE", 5)]);
    // Children deleted first: nothing left to cascade, so no extra bundle.
    let commit = alice.push_ok(
        4,
        &[delete("file_reviews", review, 1), delete("files", file, 1)],
    );
    assert_eq!(commit["bundle_seq"], 6);
    assert_eq!(
        committed(&alice, 6).1,
        [
            s("file_reviews", review, "DELETE", 6),
            s("files", file, "DELETE", 6)
        ]
    );
    assert_error(
        alice.get("/sync/committed-bundles/7/rows"),
        404,
        "committed_bundle_not_found",
    );
    // posts.author_id is NO ACTION: the user cannot go while a post references it.
    assert_error(
        alice.push(5, &[user_row("DELETE", "u1", "", 1)]),
        400,
        "push_commit_invalid",
    );
    let commit = alice.push_ok(
        5,
        &[user_row("DELETE", "u1", "", 1), delete("posts", "p1", 1)],
    );
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(7), &json!(2))
    );
    let (_, snap) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(snap["row_count"], 0);
    let sources: Vec<(i64, String, i64)> = pull_after(&alice, 0)
        .iter()
        .map(|b| (b.bundle_seq, b.source_id.clone(), b.source_bundle_id))
        .collect();
    let dev = |seq: i64, id: i64| (seq, "dev-a".to_string(), id);
    let cascade = |seq: i64, id: i64| (seq, CASCADE.to_string(), id);
    assert_eq!(
        sources,
        [
            dev(1, 1),
            dev(2, 2),
            cascade(3, 1),
            dev(4, 3),
            cascade(5, 2),
            dev(6, 4),
            dev(7, 5)
        ]
    );
}

/// A push that keeps (INSERTs or UPDATEs) a row whose parent it deletes: every pushed row
/// is applied first and committed with its after-image, then the cascade removes the child
/// in the next bundle, whatever the pushed order.
#[test]
fn pushed_rows_removed_by_their_own_cascade_stay_in_the_pushed_bundle() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(
        1,
        &[
            insert("teams", "t1", json!({"name": "T1"})),
            insert("team_members", "m1", json!({"name": "M1", "team_id": "t1"})),
            insert("team_members", "m2", json!({"name": "M2", "team_id": "t1"})),
        ],
    );
    let renamed = json!({"id": "m1", "name": "renamed", "team_id": "t1"});
    let commit = alice.push_ok(
        2,
        &[
            delete("teams", "t1", 1),
            update("team_members", "m1", 1, renamed.clone()),
            insert("team_members", "m3", json!({"name": "M3", "team_id": "t1"})),
        ],
    );
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(2), &json!(3))
    );
    let (status, page) = alice.get("/sync/committed-bundles/2/rows");
    assert_eq!(status, 200);
    let rows: Vec<BundleRow> = serde_json::from_value(page["rows"].clone()).unwrap();
    assert_eq!(
        summarise(&rows),
        [
            s("teams", "t1", "DELETE", 2),
            s("team_members", "m1", "UPDATE", 2),
            s("team_members", "m3", "INSERT", 2)
        ]
    );
    assert_eq!(json!(rows[1].payload), renamed);
    assert_eq!(rows[2].payload.as_ref().unwrap()["name"], "M3");
    assert_eq!(
        committed(&alice, 3).1,
        [
            s("team_members", "m1", "DELETE", 3),
            s("team_members", "m2", "DELETE", 3),
            s("team_members", "m3", "DELETE", 3)
        ]
    );
    let (_, snap) = alice.post_raw("/sync/snapshot-sessions", None);
    assert_eq!(snap["row_count"], 0);
    // The cascade's tombstones are the current row state of every child.
    for (id, base) in [("m1", 2), ("m3", 2)] {
        let row = update("team_members", id, base, json!({"name": "x"}));
        let conflict = assert_error(alice.push(3, &[row]), 409, "push_conflict");
        assert_eq!(
            (
                &conflict["conflict"]["server_row_version"],
                &conflict["conflict"]["server_row_deleted"]
            ),
            (&json!(3), &json!(true))
        );
    }
}

/// A server-originated bundle's deletes cascade the same way: its own bundle, then the cascade.
#[test]
fn server_bundle_deletes_cascade_into_a_separate_bundle() {
    let server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(
        1,
        &[
            insert("teams", "t1", json!({"name": "T1"})),
            insert("team_members", "m1", json!({"name": "M1", "team_id": "t1"})),
        ],
    );
    let (status, commit) = server.post_test(
        "/test/server-bundle",
        json!({"user_id": "alice", "rows": [delete("teams", "t1", 0)]}),
    );
    assert_eq!(status, 200, "{commit}");
    assert_eq!(
        (&commit["bundle_seq"], &commit["row_count"]),
        (&json!(2), &json!(1))
    );
    let bundles = pull_after(&alice, 1);
    let got: Vec<_> = bundles.iter().map(pulled).collect();
    assert_eq!(
        got,
        [
            (2, "server", 1, vec![s("teams", "t1", "DELETE", 2)]),
            (3, CASCADE, 1, vec![s("team_members", "m1", "DELETE", 3)]),
        ]
    );
}
