//! The one-shot calls as the SQLiteNow documentation writes them (issue #14), against a
//! real server: every documented call shape and default, `applied` counted in changes,
//! the documented pagination loop, `until` at and between bundles, `include_self` on
//! devices that pushed, and `oversqlite_exec` with schema annotations. Also the README's
//! one-shot examples, statement for statement.
mod sql_sync_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use oversqlite_tests::host;
use oversqlite_tests::server::{TestServer, DEFAULT_CONFIG, SCHEMA};
use serde_json::{json, Value};
use sql_sync_support::{device, Device};

/// Users rows for one server bundle: `n` INSERTs with keys `{prefix}{i}`.
fn user_rows(prefix: &str, n: usize) -> Value {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:05}");
            json!({"schema": SCHEMA, "table": "users", "key": {"id": id}, "op": "INSERT", "payload": {"id": id, "name": format!("n{i}")}})
        })
        .collect()
}

/// The README's pagination loop, as a host runs it: `more = applied == limit`, stop on 0.
/// Returns every `applied` seen.
fn documented_loop(d: &Device, limit: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    loop {
        let r = d.ok(&format!("SELECT oversqlite_download_once({limit})"));
        let applied = r["applied"].as_i64().unwrap();
        seen.push(applied);
        if applied == 0 || applied != limit {
            return seen;
        }
        assert!(seen.len() < 10, "the loop must end: {seen:?}");
    }
}

#[test]
fn every_documented_call_shape_and_default() {
    let server = TestServer::start();
    let d = device(&server, "shapes", "ann");
    d.ok("SELECT oversqlite_attach('ann')");
    server.server_bundle("ann", user_rows("a", 3));

    // downloadOnce() with its defaults: limit 1000, include_self false, until 0.
    assert_eq!(
        d.ok("SELECT oversqlite_download_once()"),
        json!({"applied": 3, "bundles_applied": 1, "next_seq": 1})
    );
    server.server_bundle("ann", user_rows("b", 2));
    // The documented "0 = no limit" until, and the explicit defaults.
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1000, 0, 0)"),
        json!({"applied": 2, "bundles_applied": 1, "next_seq": 2})
    );
    for call in [
        "SELECT oversqlite_download_once(1000)",
        "SELECT oversqlite_download_once(1000, 0)",
        "SELECT oversqlite_download_once(1000, 1, 0)",
        "SELECT oversqlite_download_once(NULL, NULL, NULL)",
    ] {
        assert_eq!(
            d.ok(call),
            json!({"applied": 0, "bundles_applied": 0, "next_seq": 2}),
            "{call}"
        );
    }
    assert_eq!(d.count("SELECT count(*) FROM users"), 5);

    // syncOnce(limit = 1000, includeSelf = false) in every shape.
    d.exec("INSERT INTO users VALUES ('local1', 'L')");
    server.server_bundle("ann", user_rows("c", 4));
    let once = d.ok("SELECT oversqlite_sync_once(1000, 0)");
    assert_eq!(once["upload"]["applied"], json!(1), "{once}");
    // The upload committed bundle 4 after the server's bundle 3, so the checkpoint
    // could not move past it: the download applies bundle 3 (4 changes) and meets our
    // own bundle 4 again, which include_self = 0 leaves out of the counts.
    assert_eq!(once["downloaded"], json!(4), "{once}");
    assert_eq!(once["downloaded_bundles"], json!(1), "{once}");
    for call in [
        "SELECT oversqlite_sync_once()",
        "SELECT oversqlite_sync_once(1000)",
        "SELECT oversqlite_sync_once(NULL, 1)",
    ] {
        let once = d.ok(call);
        assert_eq!(once["upload"]["total"], json!(0), "{call}: {once}");
        assert_eq!(once["downloaded"], json!(0), "{call}: {once}");
    }
    assert_eq!(d.count("SELECT count(*) FROM users"), 10);
    assert_eq!(server.rows("users", "ann", "id").len(), 10);
}

#[test]
fn the_documented_pagination_loop_applies_every_change_once() {
    let server = TestServer::start();
    // 2,500 changes in bundles of 1, 699 and 1,800 rows: whole bundles, so the first
    // call applies all 2,500 (> limit) and the loop stops at once.
    // Both devices attach while the server is empty, so the history arrives as bundles.
    let d = device(&server, "paginate", "bea");
    d.ok("SELECT oversqlite_attach('bea')");
    let f = device(&server, "paginate-1", "bea");
    f.ok("SELECT oversqlite_attach('bea')");
    for (prefix, n) in [("x", 1), ("y", 699), ("z", 1800)] {
        server.server_bundle("bea", user_rows(prefix, n));
    }
    assert_eq!(documented_loop(&d, 1000), [2500]);
    assert_eq!(d.count("SELECT count(*) FROM users"), 2500);
    assert_eq!(
        d.count(
            "SELECT count(*) FROM _sync_row_state WHERE table_name = 'users' AND row_version > 0"
        ),
        2500,
        "every row applied, and recorded at its server version"
    );
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1000)"),
        json!({"applied": 0, "bundles_applied": 0, "next_seq": 3})
    );

    // Exactly 1,000 changes (bundles of 400 and 600): applied == limit, so the loop asks
    // once more and that call applies nothing.
    let e = device(&server, "paginate-1000", "cid");
    e.ok("SELECT oversqlite_attach('cid')");
    server.server_bundle("cid", user_rows("p", 400));
    server.server_bundle("cid", user_rows("q", 600));
    assert_eq!(documented_loop(&e, 1000), [1000, 0]);
    assert_eq!(e.count("SELECT count(*) FROM users"), 1000);

    // `limit` bounds each request, not the call: 1 bundle per request still reaches the
    // stable bundle.
    assert_eq!(
        f.ok("SELECT oversqlite_download_once(1)"),
        json!({"applied": 2500, "bundles_applied": 3, "next_seq": 3})
    );
}

/// The test server's configuration with `posts.user_id` cascading, so deleting a user
/// on the server commits a second bundle (from " server-cascade") deleting its posts.
fn cascading_config() -> String {
    let from = r#"foreign_keys = [{ column = "user_id", references = "users" }]"#;
    assert!(DEFAULT_CONFIG.contains(from));
    DEFAULT_CONFIG.replacen(
        from,
        r#"foreign_keys = [{ column = "user_id", references = "users", on_delete = "cascade" }]"#,
        1,
    )
}

/// A device whose schema comes from an annotated script (the local foreign key cascades
/// like the server's).
fn cascading_device(server: &TestServer, name: &str, user: &str) -> Device {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = host::temp_db(&format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    let conn = host::file(&path);
    let d = Device { conn, path };
    d.sql("SELECT oversqlite_init(?1, 'main')", &[&server.url])
        .unwrap();
    let report = d.ok("SELECT oversqlite_exec('
        -- @@{ enableSync=true }
        CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
        -- @@{ enableSync=true, syncKeyColumnName=id }
        CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, title TEXT NOT NULL);
        ')");
    assert_eq!(report["enabled_tables"].as_array().unwrap().len(), 2);
    d.ok("SELECT oversqlite_open()");
    d.sql("SELECT oversqlite_set_token(?1)", &[&server.token(user)])
        .unwrap();
    d.ok(&format!("SELECT oversqlite_attach('{user}')"));
    d
}

#[test]
fn until_stops_at_whole_bundles_and_never_inside_a_cascade() {
    let server = TestServer::start_with(&cascading_config(), &[]);
    // Attached while the server is empty, so the history below arrives as bundles (a
    // device attaching later would restore a snapshot instead).
    let d = cascading_device(&server, "until", "eve");
    let post = |id: &str, user: &str| json!({"schema": SCHEMA, "table": "posts", "key": {"id": id}, "op": "INSERT", "payload": {"id": id, "user_id": user, "title": id}});
    server.upsert_user("eve", "INSERT", "u1", "Ada"); // 1
    server.upsert_user("eve", "INSERT", "u2", "Grace"); // 2
    server.server_bundle("eve", json!([post("p1", "u1"), post("p2", "u1")])); // 3
    server.server_bundle(
        "eve",
        json!([{"schema": SCHEMA, "table": "users", "key": {"id": "u1"}, "op": "DELETE"}]),
    ); // 4, and its cascade 5 deleting p1 and p2
    server.upsert_user("eve", "INSERT", "u3", "Barbara"); // 6
    assert_eq!(server.bundle_count("eve"), 6);

    let before = std::fs::read(&d.path).unwrap();
    let err = d.err("SELECT oversqlite_download_once(1000, 0, 4)");
    assert_eq!(
        err,
        "oversqlite_download_once: invalid_argument: until 4 would stop between bundle 4 and bundle 5, which holds the deletions its foreign keys cascaded to; use until = 5 (or 3)"
    );
    assert!(
        std::fs::read(&d.path).unwrap() == before,
        "refused: nothing changed"
    );

    // At a bundle: exactly the bundles up to it.
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1000, 0, 2)"),
        json!({"applied": 2, "bundles_applied": 2, "next_seq": 2})
    );
    assert_eq!(d.users(), ["u1=Ada", "u2=Grace"]);
    // At (or below) the checkpoint: nothing to do, no error.
    for until in [1, 2] {
        assert_eq!(
            d.ok(&format!(
                "SELECT oversqlite_download_once(1000, 0, {until})"
            )),
            json!({"applied": 0, "bundles_applied": 0, "next_seq": 2})
        );
    }
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1, 0, 3)"),
        json!({"applied": 2, "bundles_applied": 1, "next_seq": 3})
    );
    assert_eq!(d.count("SELECT count(*) FROM posts"), 2);
    // Through the delete and its cascade together.
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1000, 0, 5)"),
        json!({"applied": 3, "bundles_applied": 2, "next_seq": 5})
    );
    assert_eq!(d.users(), ["u2=Grace"]);
    assert_eq!(d.count("SELECT count(*) FROM posts"), 0);
    // Beyond the server's latest bundle: everything there is.
    assert_eq!(
        d.ok("SELECT oversqlite_download_once(1000, 0, 99)"),
        json!({"applied": 1, "bundles_applied": 1, "next_seq": 6})
    );
    assert_eq!(d.users(), ["u2=Grace", "u3=Barbara"]);
    assert_eq!(
        d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
        json!(0)
    );
}

#[test]
fn include_self_counts_own_bundles_without_reapplying_them_wrongly() {
    let server = TestServer::start();
    let a = device(&server, "self-a", "fay");
    let b = device(&server, "self-b", "fay");
    let c = device(&server, "self-c", "fay");
    for d in [&a, &b, &c] {
        d.ok("SELECT oversqlite_attach('fay')");
    }
    a.exec("INSERT INTO users VALUES ('a1', 'A1'), ('a2', 'A2')");
    assert_eq!(a.ok("SELECT oversqlite_upload_once()")["applied"], json!(2)); // bundle 1
    b.exec("INSERT INTO users VALUES ('b1', 'B1'), ('b2', 'B2'), ('b3', 'B3')");
    assert_eq!(b.ok("SELECT oversqlite_upload_once()")["applied"], json!(3)); // bundle 2
    c.exec("INSERT INTO users VALUES ('c1', 'C1')");
    assert_eq!(c.ok("SELECT oversqlite_upload_once()")["applied"], json!(1)); // bundle 3

    // A's own bundle 1 was applied when it committed (checkpoint 1): with or without
    // include_self it is never applied again.
    assert_eq!(
        a.ok("SELECT oversqlite_download_once(1000, 1, 0)"),
        json!({"applied": 4, "bundles_applied": 2, "next_seq": 3})
    );
    // B's bundle 2 came after A's, so B's checkpoint could not move past it: the
    // download meets it again. include_self = 0 leaves it out of the counts.
    assert_eq!(
        b.ok("SELECT oversqlite_download_once(1000, 0, 0)"),
        json!({"applied": 3, "bundles_applied": 2, "next_seq": 3})
    );
    // include_self = 1 counts it too.
    assert_eq!(
        c.ok("SELECT oversqlite_download_once(1000, 1, 0)"),
        json!({"applied": 6, "bundles_applied": 3, "next_seq": 3})
    );
    let all = ["a1=A1", "a2=A2", "b1=B1", "b2=B2", "b3=B3", "c1=C1"];
    for d in [&a, &b, &c] {
        assert_eq!(d.users(), all);
        assert_eq!(
            d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
            json!(0),
            "re-applying an own bundle captured nothing"
        );
        assert_eq!(
            d.count("SELECT count(*) FROM _sync_row_state WHERE row_version > 0 AND deleted = 0"),
            6
        );
    }
}

#[test]
fn readme_one_shot_examples() {
    let server = TestServer::start();
    let d = device(&server, "readme", "gus");
    d.ok("SELECT oversqlite_attach('gus')");

    // Upload summary.
    d.exec("INSERT INTO users VALUES ('u1', 'Ada'), ('u2', 'Grace')");
    let row: (i64, i64, i64, i64) = d
        .conn
        .query_row(
            "SELECT r ->> 'total', r ->> 'applied', r ->> 'conflict', r ->> 'invalid'
             FROM (SELECT oversqlite_upload_once() AS r)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, (2, 2, 0, 0));

    // Paginated download (the loop is the host's; each round is this statement).
    server.server_bundle("gus", user_rows("s", 1000));
    let page = |d: &Device| -> (i64, i64) {
        d.conn
            .query_row(
                "SELECT r ->> 'applied', r ->> 'next_seq' FROM (SELECT oversqlite_download_once(1000) AS r)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(page(&d), (1000, 2)); // applied == 1000: more
    assert_eq!(page(&d), (0, 2)); // applied == 0: done

    // Sync once.
    d.exec("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'");
    let once = d.ok("SELECT oversqlite_sync_once()");
    assert_eq!(once["upload"]["applied"], json!(1), "{once}");
    assert_eq!(once["downloaded"], json!(0), "{once}");

    // Pause/resume around a bulk import: nothing goes out until resume.
    d.ok("SELECT oversqlite_pause_uploads()");
    d.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO users SELECT 'imp' || i, 'Imported ' || i FROM n",
    );
    let skipped = d.ok("SELECT oversqlite_sync_once()");
    assert_eq!(skipped["skipped"], json!("uploads_paused"), "{skipped}");
    assert_eq!(server.rows("users", "gus", "id").len(), 1002);
    d.ok("SELECT oversqlite_resume_uploads()");
    let once = d.ok("SELECT oversqlite_sync_once()");
    assert_eq!(once["upload"]["applied"], json!(500), "{once}");
    assert_eq!(server.rows("users", "gus", "id").len(), 1502);
}
