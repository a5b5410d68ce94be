//! Throughput of the engine's local work (freeze, replay, pull apply, snapshot
//! staging + final apply) against the in-process fake server. Prints figures only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use oversqlite_engine::remote::transport::ScriptedResponse;
use serde_json::json;
use support::fake_server::{qi64, route, FakeServer};

const ROWS: usize = 5000;

fn figure(label: &str, rows: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<40} {rows:>6} rows  {:>8.1} ms  {:>9.0} rows/s",
        secs * 1000.0,
        rows as f64 / secs
    );
}

fn main() {
    // Push: freeze, chunked upload, commit, committed fetch + hash, replay.
    let server = FakeServer::plain();
    let db = support::TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn);
    let mut client = support::client_for(&server);
    client.attach(&conn, "user-1").unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..ROWS {
        conn.execute(
            "INSERT INTO users(id, name) VALUES(?1, ?2)",
            [format!("user-{i:06}"), format!("Name {i} <&>")],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    let t = Instant::now();
    client.push_pending(&conn).unwrap();
    figure("push_pending (200-row chunks)", ROWS, t);

    // Pull: one remote bundle of ROWS updates applied in one transaction.
    server.with(|s| {
        let rows = (0..ROWS)
            .map(|i| json!({"schema":"main","table":"users","key":{"id":format!("user-{i:06}")},"op":"UPDATE","row_version":0,"payload":{"id":format!("user-{i:06}"),"name":"Remote"}}))
            .collect::<Vec<_>>();
        s.commit_rows("remote-source", 1, serde_json::from_value(json!(rows)).unwrap());
    });
    let t = Instant::now();
    client.pull_to_stable(&conn).unwrap();
    figure("pull_to_stable (one bundle)", ROWS, t);

    // Snapshot: 1000-row chunks staged, then the final apply.
    let snap = FakeServer::new(|_, req| match route(req).0 {
        "snapshot_create" => Some(ScriptedResponse::ok(
            json!({"snapshot_id":"bench","snapshot_bundle_seq":9,"row_count":ROWS,"byte_count":0,"expires_at":"2099-01-01T00:00:00Z"}),
        )),
        "snapshot_chunk" => {
            let after = qi64(req, "after_row_ordinal").unwrap_or(0) as usize;
            let max = qi64(req, "max_rows").unwrap_or(1000) as usize;
            let end = (after + max).min(ROWS);
            let rows: Vec<_> = (after..end)
                .map(|i| json!({"schema":"main","table":"users","key":{"id":format!("s-{i:06}")},"row_version":3,"payload":{"id":format!("s-{i:06}"),"name":"Snapshot"}}))
                .collect();
            Some(ScriptedResponse::ok(
                json!({"snapshot_id":"bench","snapshot_bundle_seq":9,"rows":rows,"next_row_ordinal":end,"has_more":end < ROWS}),
            ))
        }
        _ => None,
    });
    let db2 = support::TestDb::new();
    let conn2 = db2.create("users", &[("users".into(), "id".into())], "main");
    support::open(&conn2);
    let mut client2 = support::client_for(&snap);
    client2.attach(&conn2, "user-1").unwrap();
    let t = Instant::now();
    client2.rebuild(&conn2).unwrap();
    figure("rebuild (snapshot stage + apply)", ROWS, t);
}
