//! End to end through the loaded extension against a real oversqlite-server: database
//! files as devices of one user converge (every table compared across devices and with
//! the server's rows) over FK-linked tables, TEXT / TEXT-UUID / BLOB-UUID keys and every
//! column type; each conflict policy; detach and a second user on the same file;
//! history_pruned recovery; a rotated rebuild of a database restored from an old copy; a
//! server-originated bundle.
//!
//! Needs `cargo build -p oversqlite` and `cargo build -p oversqlite-server`.
mod e2e_support;

use e2e_support::*;
use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use serde_json::{json, Value};

const F1: &str = "x'0102030405060708090a0b0c0d0e0f10'";
const F2: &str = "x'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'";
const F3: &str = "x'ffeeddccbbaa99887766554433221100'";
const R1: &str = "x'11111111111111111111111111111111'";
const P1: &str = "7d0c5d3a-1f7e-4c2b-9a55-0c1d2e3f4a5b";
const P2: &str = "00000000-0000-4000-8000-000000000002";
const P3: &str = "f0e1d2c3-b4a5-4697-8879-6a5b4c3d2e1f";

fn seed_everything(a: &Device) {
    a.exec(&format!(
        "INSERT INTO users VALUES ('u1', 'Ada', 'ada@example.com'), ('u2', 'Grace', NULL);
         INSERT INTO posts VALUES ('{P1}', 'u1', 'First', '2026-01-02T03:04:05Z'),
                                  ('{P2}', 'u2', 'Second ✓', '2026-01-02T03:04:05.123456+02:00');
         INSERT INTO files VALUES ({F1}, '{P1}', 'a.bin', x'00ff00'),
                                  ({F2}, NULL, 'empty', NULL),
                                  ({F3}, '{P1}', 'zero-length', x'');
         INSERT INTO file_reviews VALUES ({R1}, {F1}, 'looks fine');
         INSERT INTO typed_rows VALUES
           ('t1', 9223372036854775807, 3.25, x'deadbeef', 'ünïcødé \"quoted\" ''single''\nline', '2026-03-04T05:06:07Z'),
           ('t2', NULL, NULL, NULL, NULL, NULL),
           ('t3', -1, -0.5, x'', '', NULL),
           ('t4', 0, 1e300, x'00', ' ', '1970-01-01T00:00:00Z');"
    ));
}

#[test]
fn three_devices_converge_over_fk_tables_uuid_keys_and_typed_columns() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, attach_a) = Device::attached(&db_path("conv-a"), &server, "alice");
    assert_eq!(attach_a["outcome"], "started_empty", "{attach_a}");
    let (b, _) = Device::attached(&db_path("conv-b"), &server, "alice");

    seed_everything(&a);
    assert_eq!(a.pending(), 12);
    let pushed = a.sync();
    assert_eq!(pushed["push_outcome"], "committed", "{pushed}");
    assert_eq!(a.pending(), 0);
    let pulled = b.sync();
    assert_eq!(pulled["remote_outcome"], "applied_incremental", "{pulled}");
    assert_eq!(
        pulled["changed_tables"],
        json!(["file_reviews", "files", "posts", "typed_rows", "users"])
    );

    // A third device arrives after the data exists: it hydrates from a snapshot.
    let (c, attach_c) = Device::attached(&db_path("conv-c"), &server, "alice");
    assert_eq!(attach_c["outcome"], "used_remote_state", "{attach_c}");
    assert_converged(&server, "alice", &[&a, &b, &c]);
    assert_eq!(row_total(&a.dump()), 12);
    // Types survive the round trip exactly (quote() tells 1 from 1.0 from '1').
    assert_eq!(
        c.sql("SELECT quote(count_value) || ' ' || quote(rating) || ' ' || quote(data) FROM typed_rows WHERE id = 't1'"),
        Some("9223372036854775807 3.25 X'DEADBEEF'".into())
    );
    assert_eq!(
        c.sql("SELECT typeof(id) || length(id) FROM files WHERE name = 'a.bin'"),
        Some("blob16".into())
    );

    // Offline edits on every device, then sync in turn.
    a.exec(&format!(
        "UPDATE users SET name = 'Ada Lovelace' WHERE id = 'u1';
         DELETE FROM posts WHERE id = '{P2}';
         INSERT INTO typed_rows VALUES ('t5', 42, 2.0, x'0a', 'from A', NULL);"
    ));
    b.exec(&format!(
        "DELETE FROM files WHERE id = {F1};
         UPDATE typed_rows SET count_value = 7, rating = 0.125, data = x'beef', note = 'filled', happened_at = '2026-05-06T07:08:09Z' WHERE id = 't2';
         INSERT INTO users VALUES ('u3', 'Linus', 'l@example.com');
         INSERT INTO posts VALUES ('{P3}', 'u3', 'Third', '2026-06-07T08:09:10Z');"
    ));
    // The local FK cascade removed the review too, and both deletions were captured.
    assert_eq!(b.count("SELECT count(*) FROM file_reviews"), 0);
    assert_eq!(b.pending(), 5);
    c.exec(&format!(
        "UPDATE files SET name = 'renamed on C', data = x'c0ffee' WHERE id = {F2};
         UPDATE typed_rows SET note = NULL WHERE id = 't1';"
    ));
    for d in [&a, &b, &c, &a, &b] {
        let r = d.sync();
        assert_eq!(r["status"]["pending"]["pending_row_count"], 0, "{r}");
    }
    assert_converged(&server, "alice", &[&a, &b, &c]);
    assert_eq!(
        a.sql("SELECT name FROM users WHERE id = 'u1'"),
        Some("Ada Lovelace".into())
    );
    assert_eq!(
        a.count(&format!(
            "SELECT count(*) FROM posts WHERE id IN ('{P2}', '{P3}')"
        )),
        1
    );
    assert_eq!(a.count("SELECT count(*) FROM file_reviews"), 0);
    assert_eq!(
        a.sql(&format!(
            "SELECT name || hex(data) FROM files WHERE id = {F2}"
        )),
        Some("renamed on CC0FFEE".into())
    );
    assert_eq!(
        b.sql("SELECT quote(note) FROM typed_rows WHERE id = 't1'"),
        Some("NULL".into())
    );
    assert_eq!(
        c.sql("SELECT quote(rating) FROM typed_rows WHERE id = 't5'"),
        Some("2.0".into())
    );
    assert!(duplicated_bundle_rows(&server, "alice").is_empty());
}

fn set_name(d: &Device, name: &str) {
    d.exec(&format!("UPDATE users SET name = '{name}' WHERE id = 'u1'"));
}

fn names(devices: &[&Device]) -> Vec<Option<String>> {
    devices
        .iter()
        .map(|d| d.sql("SELECT name || '/' || ifnull(email, '-') FROM users WHERE id = 'u1'"))
        .collect()
}

#[test]
fn each_conflict_policy_decides_and_all_devices_converge() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, _) = Device::attached(&db_path("res-a"), &server, "alice");
    let (b, _) = Device::attached(&db_path("res-b"), &server, "alice");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada', 'a@x')");
    a.sync();
    b.sync();

    // server_wins (the default): B's concurrent edit loses.
    set_name(&a, "A1");
    set_name(&b, "B1");
    a.sync();
    let r = b.sync();
    assert_eq!(r["status"]["pending"]["pending_row_count"], 0, "{r}");
    a.sync();
    assert_eq!(names(&[&a, &b]), vec![Some("A1/a@x".into()); 2]);

    // client_wins on B: B's edit is kept and re-pushed.
    let policy = b.json("SELECT oversqlite_set_conflict_resolver('client_wins')");
    assert_eq!(policy["default"]["policy"], "client_wins", "{policy}");
    set_name(&a, "A2");
    set_name(&b, "B2");
    a.sync();
    let r = b.sync();
    assert_eq!(r["push_outcome"], "committed", "{r}");
    a.sync();
    assert_eq!(names(&[&a, &b]), vec![Some("B2/a@x".into()); 2]);

    // custom on B for users: a host SQL function merges both names, keeps B's email.
    b.conn
        .create_scalar_function("merge_user", 4, FunctionFlags::SQLITE_UTF8, |ctx| {
            let table: String = ctx.get(0)?;
            let server: Option<String> = ctx.get(2)?;
            let local: Option<String> = ctx.get(3)?;
            let (Some(server), Some(local)) = (server, local) else {
                return Ok("server".to_string());
            };
            let server: Value = serde_json::from_str(&server).unwrap();
            let local: Value = serde_json::from_str(&local).unwrap();
            assert_eq!(table, "users");
            let mut merged = server.clone();
            merged["name"] = json!(format!(
                "{}+{}",
                server["name"].as_str().unwrap(),
                local["name"].as_str().unwrap()
            ));
            merged["email"] = local["email"].clone();
            Ok(merged.to_string())
        })
        .unwrap();
    b.json("SELECT oversqlite_set_conflict_resolver('custom', 'users', 'merge_user')");
    set_name(&a, "A3");
    b.exec("UPDATE users SET name = 'B3', email = 'b@x' WHERE id = 'u1'");
    a.sync();
    let r = b.sync();
    assert_eq!(r["push_outcome"], "committed", "{r}");
    a.sync();
    assert_eq!(names(&[&a, &b]), vec![Some("A3+B3/b@x".into()); 2]);
    assert_converged(&server, "alice", &[&a, &b]);
    assert!(duplicated_bundle_rows(&server, "alice").is_empty());
}

/// Regression (found by the randomised suite, `OVERSQLITE_RANDOM_SEEDS=13`): with
/// `PRAGMA foreign_keys = ON`, a push conflict resolved in the server's favour writes the
/// server's row at once; when that row references a parent this device has not pulled
/// yet, the resolution transaction used to fail its deferred FK check (`sqlite_error:
/// FOREIGN KEY constraint failed`) with the outbox left `prepared`, so every later sync
/// failed the same way and pull, rebuild and detach were all refused: the device was
/// stuck for good. The resolution now runs without FK enforcement; the parent arrives
/// with the pull that follows.
#[test]
fn a_server_wins_conflict_whose_row_references_an_unpulled_parent_still_converges() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, _) = Device::attached(&db_path("fkconf-a"), &server, "alice");
    let (b, _) = Device::attached(&db_path("fkconf-b"), &server, "alice");
    b.exec(&format!("INSERT INTO users VALUES ('u2', 'by b', NULL); INSERT INTO posts VALUES ('{P1}', 'u2', 'post by b', '2026-01-01T00:00:00Z');"));
    b.sync();
    // A has not pulled yet and creates the same post id under its own user.
    a.exec(&format!("INSERT INTO users VALUES ('u0', 'by a', NULL); INSERT INTO posts VALUES ('{P1}', 'u0', 'post by a', '2026-01-01T00:00:00Z');"));
    for attempt in 0..2 {
        if let Err(e) = a.try_sql("SELECT oversqlite_sync()") {
            panic!("sync attempt {attempt} failed: {e}");
        }
    }
    b.sync();
    assert_converged(&server, "alice", &[&a, &b]);
    assert_eq!(
        a.sql(&format!("SELECT user_id FROM posts WHERE id = '{P1}'")),
        Some("u2".into())
    );
}

#[test]
fn detach_is_blocked_then_sync_then_detach_and_a_second_user_takes_the_file() {
    let server = TestServer::start_with(CONFIG, &[]);
    let path = db_path("detach-a");
    let (a, _) = Device::attached(&path, &server, "alice");
    let (b, _) = Device::attached(&db_path("detach-b"), &server, "alice");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada', NULL); INSERT INTO typed_rows VALUES ('t1', 1, 1.5, x'01', 'a', NULL);");

    let blocked = a.json("SELECT oversqlite_detach()");
    assert_eq!(blocked["outcome"], "blocked_unsynced_data", "{blocked}");
    assert_eq!(blocked["pending_row_count"], 2);
    assert_eq!(
        a.count("SELECT count(*) FROM users"),
        1,
        "a blocked detach changes nothing"
    );
    assert_eq!(a.pending(), 2);

    let done = a.json("SELECT oversqlite_sync_then_detach()");
    assert_eq!(done["is_success"], true, "{done}");
    assert_eq!(done["detach"], "detached");
    assert_eq!(row_total(&a.dump()), 0, "detach wipes the managed tables");
    let info = a.json("SELECT oversqlite_source_info()");
    assert_eq!(info["binding_state"], "anonymous", "{info}");
    b.sync();
    assert_eq!(
        b.count("SELECT count(*) FROM users"),
        1,
        "the rows pushed before detach reached B"
    );

    // Bob on the same file: his own (server-side) data only, his own scope on the server.
    server.server_bundle(
        "bob",
        json!([{"schema": "main", "table": "users", "key": {"id": "b1"}, "op": "INSERT",
        "payload": {"id": "b1", "name": "Bob", "email": null}}]),
    );
    a.set_token(&server.token("bob"));
    let bob = a.json("SELECT oversqlite_attach('bob')");
    assert_eq!(bob["outcome"], "used_remote_state", "{bob}");
    assert_eq!(
        a.sql("SELECT group_concat(id) FROM users"),
        Some("b1".into())
    );
    a.exec("INSERT INTO users VALUES ('b2', 'Bob two', NULL)");
    assert_eq!(a.sync()["push_outcome"], "committed");
    assert_converged(&server, "bob", &[&a]);
    assert_eq!(server.rows("users", "alice", "id"), vec![vec![json!("u1")]]);
    // Alice's device B is untouched by Bob's rows.
    b.sync();
    assert_converged(&server, "alice", &[&b]);
}

#[test]
fn a_device_behind_the_retention_floor_recovers_from_a_snapshot() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, _) = Device::attached(&db_path("pruned-a"), &server, "alice");
    let (b, _) = Device::attached(&db_path("pruned-b"), &server, "alice");
    for i in 0..5 {
        a.exec(&format!(
            "INSERT INTO users VALUES ('u{i}', 'User {i}', NULL)"
        ));
        a.sync();
        if i == 0 {
            // B's checkpoint must be above 0: by the protocol (§10.6) a zero checkpoint is
            // never "pruned", it silently receives only the bundles above the floor.
            b.sync();
        }
    }
    a.exec("UPDATE users SET name = 'renamed' WHERE id = 'u0'; DELETE FROM users WHERE id = 'u1';");
    a.sync();
    server.set_retention_floor("alice", 4);
    let r = b.sync();
    assert_eq!(r["remote_outcome"], "applied_snapshot", "{r}");
    assert_eq!(r["restore"]["bundle_seq"], 6, "{r}");
    assert_converged(&server, "alice", &[&a, &b]);
    assert_eq!(b.count("SELECT count(*) FROM users"), 4);
    // Incremental pulls continue afterwards.
    a.exec("INSERT INTO users VALUES ('u9', 'after', NULL)");
    a.sync();
    assert_eq!(b.sync()["remote_outcome"], "applied_incremental");
    assert_converged(&server, "alice", &[&a, &b]);
}

/// Regression for a protocol hazard (PROTOCOL.md §10.6: "`after = 0` is never pruned:
/// a zero checkpoint silently receives only bundles above the floor"): a device that
/// attached to an empty scope and never pulled before the server pruned used to get only
/// the retained bundles and silently miss every older row (the crash soak reached it
/// through devices whose syncs kept failing before their pull). Bundle sequences are
/// contiguous per user, so the engine now treats a first bundle above 1 after a zero
/// checkpoint as pruned history and rebuilds from a snapshot.
#[test]
fn a_device_with_a_zero_checkpoint_is_not_silently_missing_pruned_rows() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, _) = Device::attached(&db_path("zero-a"), &server, "alice");
    let (b, _) = Device::attached(&db_path("zero-b"), &server, "alice");
    for i in 0..4 {
        a.exec(&format!(
            "INSERT INTO users VALUES ('u{i}', 'User {i}', NULL)"
        ));
        a.sync();
    }
    server.set_retention_floor("alice", 3);
    b.sync();
    assert_converged(&server, "alice", &[&a, &b]);
}

#[test]
fn a_database_restored_from_an_old_copy_rebuilds_with_a_new_source() {
    let server = TestServer::start_with(CONFIG, &[]);
    let path = db_path("restore-a");
    let backup = db_path("restore-a-backup");
    let (a, _) = Device::attached(&path, &server, "alice");
    let (b, _) = Device::attached(&db_path("restore-b"), &server, "alice");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada', NULL)");
    a.sync();
    b.sync();
    let old_source = a.json("SELECT oversqlite_source_info()")["current_source_id"].clone();
    a.close();
    copy_db(&path, &backup);

    let (a, _) = Device::attached(&path, &server, "alice");
    for (id, name) in [("u2", "Bob"), ("u3", "Cy")] {
        a.exec(&format!(
            "INSERT INTO users VALUES ('{id}', '{name}', NULL)"
        ));
        a.sync();
    }
    a.close();
    // The file goes back in time: its source sequence is behind the server's, and the
    // server no longer keeps the history to compare it with.
    copy_db(&backup, &path);
    server.set_retention_floor("alice", 3);
    let (a, _) = Device::attached(&path, &server, "alice");
    a.exec("INSERT INTO users VALUES ('u4', 'Dee', NULL)");
    let err = a.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(
        err.starts_with("oversqlite_sync: source_recovery_required: "),
        "{err}"
    );
    let info = a.json("SELECT oversqlite_source_info()");
    assert_eq!(info["source_recovery_required"], true, "{info}");

    let rebuilt = a.json("SELECT oversqlite_rebuild()");
    assert_eq!(rebuilt["outcome"], "applied_snapshot", "{rebuilt}");
    let info = a.json("SELECT oversqlite_source_info()");
    assert_ne!(
        info["current_source_id"], old_source,
        "the rebuild rotated to a new source"
    );
    assert_eq!(info["source_recovery_required"], false);
    // The change made after the restore survives and is uploaded by the new source.
    assert_eq!(
        a.sql("SELECT name FROM users WHERE id = 'u4'"),
        Some("Dee".into())
    );
    assert_eq!(a.sync()["push_outcome"], "committed");
    b.sync();
    assert_converged(&server, "alice", &[&a, &b]);
    assert_eq!(
        b.sql("SELECT group_concat(id) FROM (SELECT id FROM users ORDER BY id)"),
        Some("u1,u2,u3,u4".into())
    );
    assert_eq!(
        bundle_row_count(&server, "alice", "users", "u4", "INSERT"),
        1
    );
}

/// Regression (found by the randomised crash soak, crash_random.rs seed 18): a rotated
/// rebuild rebinds the unsent outbox to the new source as its bundle 1 and advances the
/// new source's next id to 2. When that carried bundle then conflicts, it is refused as
/// a whole (nothing committed), but the next freeze took id 2: the server answered
/// `source_sequence_out_of_order`, which rotated again, and again, forever.
#[test]
fn a_conflicting_bundle_carried_over_a_rotation_is_resent_as_bundle_one() {
    let server = TestServer::start_with(CONFIG, &[]);
    let path = db_path("rotconf-a");
    let backup = db_path("rotconf-a-backup");
    let (a, _) = Device::attached(&path, &server, "alice");
    let (b, _) = Device::attached(&db_path("rotconf-b"), &server, "alice");
    a.exec("INSERT INTO users VALUES ('r1', 'one', NULL)");
    a.sync();
    b.sync();
    a.close();
    copy_db(&path, &backup);
    let (a, _) = Device::attached(&path, &server, "alice");
    a.exec("INSERT INTO users VALUES ('r2', 'two', NULL)");
    a.sync();
    a.close();
    copy_db(&backup, &path);
    b.sync();
    b.exec("UPDATE users SET name = 'one by b' WHERE id = 'r1'");
    b.sync();
    server.set_retention_floor("alice", 3);
    let (a, _) = Device::attached(&path, &server, "alice");
    // A stale edit of r1 (conflicts after the rotation) and a new row.
    a.exec("UPDATE users SET name = 'one by a' WHERE id = 'r1'; INSERT INTO users VALUES ('r9', 'nine', NULL);");
    let err = a.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(err.contains("source_recovery_required"), "{err}");
    a.json("SELECT oversqlite_rebuild()");
    let rotated = a.json("SELECT oversqlite_source_info()")["current_source_id"].clone();
    let r = a
        .try_json("SELECT oversqlite_sync()")
        .unwrap_or_else(|e| panic!("sync after the rotated rebuild: {e}"));
    assert_eq!(r["status"]["pending"]["pending_row_count"], 0, "{r}");
    assert_eq!(
        a.json("SELECT oversqlite_source_info()")["current_source_id"],
        rotated,
        "no second rotation"
    );
    b.sync();
    assert_converged(&server, "alice", &[&a, &b]);
    assert_eq!(
        b.sql("SELECT group_concat(id || '=' || name) FROM (SELECT * FROM users ORDER BY id)"),
        Some("r1=one by b,r2=two,r9=nine".into())
    );
    assert_eq!(
        bundle_row_count(&server, "alice", "users", "r9", "INSERT"),
        1
    );
}

#[test]
fn a_server_originated_bundle_reaches_every_device() {
    let server = TestServer::start_with(CONFIG, &[]);
    let (a, _) = Device::attached(&db_path("srv-a"), &server, "alice");
    let (b, _) = Device::attached(&db_path("srv-b"), &server, "alice");
    let (c, _) = Device::attached(&db_path("srv-c"), &server, "alice");
    a.exec("INSERT INTO users VALUES ('u1', 'Ada', NULL)");
    a.sync();
    b.sync();
    c.sync();
    server.server_bundle(
        "alice",
        json!([
            {"schema": "main", "table": "users", "key": {"id": "s1"}, "op": "INSERT",
             "payload": {"id": "s1", "name": "From server", "email": "s@x"}},
            {"schema": "main", "table": "files", "key": {"id": "0a0b0c0d-0e0f-4000-8000-000000000001"}, "op": "INSERT",
             "payload": {"id": "0a0b0c0d-0e0f-4000-8000-000000000001", "post_id": null, "name": "srv", "data": "AAEC"}},
            {"schema": "main", "table": "users", "key": {"id": "u1"}, "op": "UPDATE",
             "payload": {"id": "u1", "name": "Ada (server)", "email": null}},
        ]),
    );
    for d in [&a, &b, &c] {
        let r = d.sync();
        assert_eq!(r["remote_outcome"], "applied_incremental", "{r}");
        assert_eq!(r["changed_tables"], json!(["files", "users"]), "{r}");
        assert_eq!(
            d.pending(),
            0,
            "applied rows are not captured as local changes"
        );
    }
    assert_converged(&server, "alice", &[&a, &b, &c]);
    assert_eq!(
        b.sql("SELECT hex(id) || ':' || hex(data) FROM files"),
        Some("0A0B0C0D0E0F40008000000000000001:000102".into())
    );
    assert_eq!(
        a.sql("SELECT name FROM users WHERE id = 'u1'"),
        Some("Ada (server)".into())
    );
}
