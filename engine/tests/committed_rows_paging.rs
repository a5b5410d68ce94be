//! Committed-rows paging fails closed: an empty page must echo `after_row_ordinal`, and
//! fetching stops as soon as the server returns more rows than it advertised.

mod support;

use oversqlite_engine::remote::validate::{validate_committed_page, CommittedMeta};
use oversqlite_protocol::CommittedBundleRowsResponse;
use serde_json::json;
use support::fake_server::{committed_page, meta_json, route, FakeServer};

fn meta() -> CommittedMeta {
    CommittedMeta {
        bundle_seq: 4,
        source_id: "s".into(),
        source_bundle_id: 1,
        row_count: 3,
        bundle_hash: "h".into(),
    }
}

fn empty_page(next: i64) -> CommittedBundleRowsResponse {
    serde_json::from_value(
        json!({"bundle_seq":4,"source_id":"s","source_bundle_id":1,"row_count":3,
        "bundle_hash":"h","rows":[],"next_row_ordinal":next,"has_more":false}),
    )
    .unwrap()
}

#[test]
fn an_empty_page_must_echo_the_requested_ordinal() {
    assert!(validate_committed_page(&empty_page(2), &meta(), Some(2)).is_ok());
    let err = validate_committed_page(&empty_page(7), &meta(), Some(2)).unwrap_err();
    assert_eq!(err.code(), "protocol_error");
    assert!(validate_committed_page(&empty_page(0), &meta(), None).is_ok());
    assert!(validate_committed_page(&empty_page(-1), &meta(), None).is_ok());
    assert_eq!(
        validate_committed_page(&empty_page(5), &meta(), None)
            .unwrap_err()
            .code(),
        "protocol_error"
    );
}

#[test]
fn fetching_stops_once_the_server_returns_more_rows_than_row_count() {
    // The committed bundle has one row, but the server keeps paging copies of it.
    let server = FakeServer::new(|st, req| {
        if route(req).0 != "committed_rows" {
            return None;
        }
        st.committed_fetches += 1;
        let c = st.committed.last().unwrap().clone();
        let endless: Vec<_> = std::iter::repeat_n(c.rows[0].clone(), 6).collect();
        let after = support::fake_server::qi64(req, "after_row_ordinal");
        Some(oversqlite_engine::remote::transport::ScriptedResponse::ok(
            committed_page(meta_json(&c), &endless, after, 1, None),
        ))
    });
    let db = support::TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.settings.committed_rows_page = 1;
    client.attach(&conn, "user-1").unwrap();
    conn.execute("INSERT INTO users(id, name) VALUES('u1', 'Ada')", [])
        .unwrap();
    let err = client.push_pending(&conn).unwrap_err();
    assert_eq!(err.code(), "protocol_error");
    assert_eq!(
        server.with(|s| s.committed_fetches),
        2,
        "the fetch must stop at the first page that overflows row_count"
    );
}
