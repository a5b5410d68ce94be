//! Item 1 of issue #10 at the wire: a copy of this database committed our next
//! `(source, source_bundle_id)` with its own rows. With the engine default (the
//! reference clients and their fixtures) the push fails with `source_sequence_mismatch`
//! and keeps the outbox; with `recover_copied_database` (what the SQL layer sets) the
//! device moves to a fresh source and pushes its bundle as bundle 1 of it. The requests
//! are ordinary ones (push-session create, chunks, commit, committed rows, pull): no
//! snapshot, no rotation request, nothing our server has that the reference lacks.
mod support;

use oversqlite_engine::ErrorKind;
use oversqlite_protocol::{BundleRow, Op};
use support::fake_server::{route, source_of, FakeServer};

fn current_source(conn: &rusqlite::Connection) -> String {
    support::scalar_text(conn, "SELECT current_source_id FROM _sync_attachment_state")
}

fn other_copys_row() -> BundleRow {
    BundleRow {
        schema: "main".into(),
        table: "users".into(),
        key: [("id".to_string(), "from-the-other-copy".to_string())].into(),
        op: Op::Insert,
        row_version: 0,
        payload: serde_json::json!({"id": "from-the-other-copy", "name": "Other"})
            .as_object()
            .cloned(),
    }
}

#[test]
fn a_copys_taken_bundle_id_moves_it_to_a_source_of_its_own() {
    let server = FakeServer::plain();
    let (_db, conn, mut c) = support::attached_users_device(&server);
    let shared = current_source(&conn);
    // The other copy already committed (shared, 1).
    server.with(|s| s.commit_rows(&shared, 1, vec![other_copys_row()]));
    conn.execute("INSERT INTO users(id, name) VALUES('mine', 'Ada')", [])
        .unwrap();

    // Reference behaviour (engine default, pinned by fixtures).
    let e = c.push_pending(&conn).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SourceSequenceMismatch, "{e}");
    assert_eq!(
        support::scalar_text(&conn, "SELECT state FROM _sync_outbox_bundle"),
        "prepared"
    );
    assert_eq!(current_source(&conn), shared);

    // Recovery on.
    c.settings.recover_copied_database = true;
    let before = server.transport.requests().len();
    let r = c.push_pending(&conn).unwrap();
    let own = current_source(&conn);
    assert_ne!(own, shared);
    assert_eq!(r.row_count, 1);
    let sent: Vec<(String, String)> = server.transport.requests()[before..]
        .iter()
        .map(|q| (route(q).0.to_string(), source_of(q)))
        .collect();
    let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "push_create",
            "committed_rows",
            "push_create",
            "push_chunk",
            "push_commit",
            "committed_rows"
        ],
        "{sent:?}"
    );
    assert!(sent[..2].iter().all(|(_, s)| *s == shared), "{sent:?}");
    assert!(sent[2..].iter().all(|(_, s)| *s == own), "{sent:?}");
    let (bundles, mine) = server.with(|s| {
        (
            s.committed.len(),
            s.find_tuple(&own, 1).map(|b| b.rows.clone()),
        )
    });
    assert_eq!(bundles, 2);
    let mine = mine.expect("bundle 1 of the new source");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].key["id"], "mine");
    assert_eq!(
        support::scalar_i64(
            &conn,
            &format!(
                "SELECT next_source_bundle_id FROM _sync_source_state WHERE source_id = '{own}'"
            )
        ),
        2
    );
    assert_eq!(
        support::scalar_text(
            &conn,
            &format!(
                "SELECT replaced_by_source_id FROM _sync_source_state WHERE source_id = '{shared}'"
            )
        ),
        own
    );

    // The other copy's row arrives with the pull; nothing is pending.
    c.sync(&conn).unwrap();
    assert_eq!(
        support::scalar_text(
            &conn,
            "SELECT group_concat(id, ',') FROM (SELECT id FROM users ORDER BY id)"
        ),
        "from-the-other-copy,mine"
    );
    assert_eq!(
        support::scalar_i64(&conn, "SELECT count(*) FROM _sync_dirty_rows"),
        0
    );
    assert_eq!(
        server.with(|s| s.snapshot_creates.len()),
        0,
        "no snapshot and no rotation request"
    );
}
