//! Crash safety: a device process (`device_host`, the extension loaded into a bundled
//! SQLite) is ended at once (`OVERSQLITE_TEST_FAULT=exit:<point>`: `_exit`, no
//! destructor, rollback or flush, like `kill -9`) at every durable step of push, pull,
//! snapshot rebuild, rotated rebuild and hydrate, and once by a real `kill -9` from
//! outside during a large push. Before recovery the file is inspected to prove the crash
//! hit the intended step; then the database is reopened by a fresh connection and synced,
//! and every device must hold exactly the server's rows, with each change present exactly
//! once in the server's committed bundles.
//!
//! Needs `cargo build -p oversqlite` and `cargo build -p oversqlite-server`.
mod e2e_support;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_support::*;
use oversqlite_tests::server::TestServer;
use rusqlite::Connection;
use serde_json::Value;

/// `_exit` status of the `exit:` fault mode (`oversqlite_core::fault::EXIT_STATUS`).
const FAULT_EXIT: i32 = 86;

/// Runs `device_host` on `path`: open, set the token, attach `user`, then `ops`.
fn host(path: &Path, fault: Option<&str>, server: &TestServer, user: &str, ops: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_device_host"));
    cmd.arg(path)
        .arg("SELECT oversqlite_open()")
        .arg(format!(
            "SELECT oversqlite_set_token('{}')",
            server.token(user)
        ))
        .arg(format!("SELECT oversqlite_attach('{user}')"))
        .args(ops)
        .env_remove("OVERSQLITE_TEST_FAULT");
    if let Some(f) = fault {
        cmd.env("OVERSQLITE_TEST_FAULT", format!("exit:{f}"));
    }
    cmd.output().expect("run device_host")
}

fn assert_crashed_at(out: &Output, point: &str) {
    assert_eq!(
        out.status.code(),
        Some(FAULT_EXIT),
        "device_host was expected to die at {point}; status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plain connection (no extension) to read durable state after a crash; opening it
/// rolls back whatever transaction the dead process left behind, as any reopen would.
fn peek(path: &Path, sql: &str) -> String {
    let conn = Connection::open(path).unwrap();
    let v: String = conn
        .query_row(&format!("SELECT CAST(({sql}) AS TEXT)"), [], |r| r.get(0))
        .unwrap();
    conn.close().unwrap();
    v
}

fn outbox_state(path: &Path) -> String {
    peek(
        path,
        "SELECT state || ':' || (SELECT count(*) FROM _sync_outbox_rows) FROM _sync_outbox_bundle",
    )
}

fn checkpoint(path: &Path) -> i64 {
    peek(
        path,
        "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
    )
    .parse()
    .unwrap()
}

/// Syncs a reopened device until nothing is pending, running `rebuild()` when the
/// durable state asks for it (as an application following the error codes would).
fn recover(d: &Device) {
    for _ in 0..4 {
        let info = d.json("SELECT oversqlite_source_info()");
        if info["rebuild_required"] == true || info["source_recovery_required"] == true {
            d.json("SELECT oversqlite_rebuild()");
        }
        match d.try_json("SELECT oversqlite_sync()") {
            Ok(r) if r["status"]["pending"]["pending_row_count"] == 0 => return,
            Ok(_) => {}
            Err(e) if e.contains("rebuild_required") || e.contains("source_recovery_required") => {}
            Err(e) => panic!("sync after the crash failed: {e}"),
        }
    }
    panic!("device {} did not drain after the crash", d.path.display());
}

fn assert_exactly_once(server: &TestServer, user: &str, changes: &[(&str, &str, &str)]) {
    assert_eq!(
        duplicated_bundle_rows(server, user),
        Vec::<Vec<Value>>::new(),
        "a change was committed twice"
    );
    for (table, key, op) in changes {
        assert_eq!(
            bundle_row_count(server, user, table, key, op),
            1,
            "{op} {table} {key} committed once"
        );
    }
}

const PUSH_POINTS: &[(&str, &str)] = &[
    // (point, durable outbox state the crash must leave behind)
    ("push.after_freeze", "prepared:5"),
    ("push.after_chunk", "prepared:5"),
    ("push.after_commit_response", "prepared:5"),
    ("push.after_committed_remote", "committed_remote:5"),
    ("push.before_replay", "committed_remote:5"),
    ("push.mid_replay", "committed_remote:5"),
    ("push.after_replay", "none:0"),
];

#[test]
fn a_push_killed_at_any_step_resumes_without_losing_or_duplicating_changes() {
    let server = TestServer::start_with(CONFIG, &[]);
    for (i, (point, left_behind)) in PUSH_POINTS.iter().enumerate() {
        push_crash_case(
            &server,
            &format!("push{i}"),
            point,
            left_behind,
            i >= 2,
            false,
        );
    }
}

/// The same crashes with the device database in WAL mode (recovery replays or drops
/// the WAL instead of rolling back a journal).
#[test]
fn a_push_killed_at_any_step_in_wal_mode_resumes_the_same_way() {
    let server = TestServer::start_with(CONFIG, &[]);
    for (i, (point, left_behind)) in PUSH_POINTS.iter().enumerate() {
        push_crash_case(
            &server,
            &format!("walpush{i}"),
            point,
            left_behind,
            i >= 2,
            true,
        );
    }
}

fn push_crash_case(
    server: &TestServer,
    user: &str,
    point: &str,
    left_behind: &str,
    commits_before_crash: bool,
    wal: bool,
) {
    let path_a = db_path(&format!("crash-{user}-a"));
    let (a, _) = Device::attached(&path_a, server, user);
    let (b, _) = Device::attached(&db_path(&format!("crash-{user}-b")), server, user);
    if wal {
        assert_eq!(a.sql("PRAGMA journal_mode = WAL"), Some("wal".into()));
    }
    a.exec(
        "INSERT INTO users VALUES ('x1', 'one', NULL), ('x2', 'two', NULL), ('x3', 'three', NULL);",
    );
    a.sync();
    b.sync();
    // Offline changes of every kind across FK-linked tables, then the process dies.
    a.exec(
        "UPDATE users SET name = 'one v2' WHERE id = 'x1';
         DELETE FROM users WHERE id = 'x2';
         INSERT INTO users VALUES ('x4', 'four', 'f@x');
         INSERT INTO posts VALUES ('00000000-0000-4000-8000-0000000000a4', 'x4', 'by four', '2026-01-01T00:00:00Z');
         INSERT INTO files VALUES (x'000000000000400080000000000000f4', '00000000-0000-4000-8000-0000000000a4', 'f', x'00ff');",
    );
    a.close();
    let bundles_before = server.bundle_count(user);
    let out = host(
        &path_a,
        Some(point),
        server,
        user,
        &["SELECT oversqlite_sync()"],
    );
    assert_crashed_at(&out, point);
    assert_eq!(
        outbox_state(&path_a),
        left_behind,
        "durable outbox after a crash at {point}"
    );
    let committed = server.bundle_count(user) - bundles_before;
    assert_eq!(
        committed,
        i64::from(commits_before_crash),
        "server bundles committed before the crash at {point}"
    );

    // Meanwhile another device changes a different row.
    b.exec("UPDATE users SET name = 'three by b' WHERE id = 'x3'");
    b.sync();

    let (a, _) = Device::attached(&path_a, server, user);
    recover(&a);
    b.sync();
    assert_converged(server, user, &[&a, &b]);
    assert_eq!(
        a.sql("SELECT group_concat(id || '=' || name) FROM (SELECT * FROM users ORDER BY id)"),
        Some("x1=one v2,x3=three by b,x4=four".into()),
        "after a crash at {point}"
    );
    assert_eq!(a.count("SELECT count(*) FROM files"), 1);
    assert_exactly_once(
        server,
        user,
        &[
            ("users", "x1", "UPDATE"),
            ("users", "x2", "DELETE"),
            ("users", "x4", "INSERT"),
            ("posts", "00000000-0000-4000-8000-0000000000a4", "INSERT"),
            ("files", "00000000-0000-4000-8000-0000000000f4", "INSERT"),
        ],
    );
    a.close();
    b.close();
}

#[test]
fn a_push_killed_while_resolving_a_conflict_resumes_with_the_resolution_applied_once() {
    let server = TestServer::start_with(CONFIG, &[]);
    // (point, durable outbox and dirty-row count the crash must leave behind)
    let points: &[(&str, &str, &str)] = &[
        ("push.mid_conflict_apply", "prepared:3", "0"),
        ("push.after_conflict_applied", "none:0", "2"),
    ];
    for (i, (point, outbox, dirty)) in points.iter().enumerate() {
        let user = format!("conflict{i}");
        let path_a = db_path(&format!("crash-conflict-{i}-a"));
        let (a, _) = Device::attached(&path_a, &server, &user);
        let (b, _) = Device::attached(&db_path(&format!("crash-conflict-{i}-b")), &server, &user);
        a.exec("INSERT INTO users VALUES ('c1', 'one', NULL), ('c2', 'two', NULL), ('c3', 'three', NULL);");
        a.sync();
        b.sync();
        b.exec("UPDATE users SET name = 'one by b' WHERE id = 'c1'");
        b.sync();
        // A's edit of c1 is stale: its commit is refused with push_conflict (server wins).
        a.exec(
            "UPDATE users SET name = 'one by a' WHERE id = 'c1';
             UPDATE users SET name = 'two by a' WHERE id = 'c2';
             INSERT INTO users VALUES ('c4', 'four', NULL);",
        );
        a.close();

        let out = host(
            &path_a,
            Some(point),
            &server,
            &user,
            &["SELECT oversqlite_sync()"],
        );
        assert_crashed_at(&out, point);
        assert_eq!(
            outbox_state(&path_a),
            *outbox,
            "outbox after a crash at {point}"
        );
        assert_eq!(
            peek(&path_a, "SELECT count(*) FROM _sync_dirty_rows"),
            *dirty,
            "dirty rows after a crash at {point}"
        );

        let (a, _) = Device::attached(&path_a, &server, &user);
        recover(&a);
        b.sync();
        assert_converged(&server, &user, &[&a, &b]);
        assert_eq!(
            b.sql("SELECT group_concat(id || '=' || name) FROM (SELECT * FROM users ORDER BY id)"),
            Some("c1=one by b,c2=two by a,c3=three,c4=four".into()),
            "after a crash at {point}"
        );
        assert_exactly_once(
            &server,
            &user,
            &[("users", "c2", "UPDATE"), ("users", "c4", "INSERT")],
        );
        assert_eq!(
            server.query_store(&format!("SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = '{user}' AND payload LIKE '%one by a%'"))[0][0],
            0,
            "the losing edit never reached the server"
        );
        a.close();
        b.close();
    }
}

#[test]
fn a_multi_chunk_push_killed_between_chunks_commits_once() {
    let server = TestServer::start_with(CONFIG, &[]);
    let user = "chunks";
    let path_a = db_path("crash-chunks-a");
    let (a, _) = Device::attached(&path_a, &server, user);
    let (b, _) = Device::attached(&db_path("crash-chunks-b"), &server, user);
    const ROWS: i64 = 450; // three upload chunks of at most 200 rows
    a.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO typed_rows SELECT printf('c%04d', i), i, NULL, NULL, NULL, NULL FROM n;"
    ));
    a.close();
    let out = host(
        &path_a,
        Some("push.after_chunk#2"),
        &server,
        user,
        &["SELECT oversqlite_sync()"],
    );
    assert_crashed_at(&out, "push.after_chunk#2");
    assert_eq!(
        server.query_store("SELECT count(*) FROM _oversync_push_rows")[0][0],
        400,
        "two chunks staged"
    );
    assert_eq!(server.bundle_count(user), 0);
    assert_eq!(outbox_state(&path_a), format!("prepared:{ROWS}"));

    let (a, _) = Device::attached(&path_a, &server, user);
    recover(&a);
    b.sync();
    assert_converged(&server, user, &[&a, &b]);
    assert_eq!(server.bundle_count(user), 1);
    assert_eq!(
        duplicated_bundle_rows(&server, user),
        Vec::<Vec<Value>>::new()
    );
    assert_eq!(
        server.query_store(&format!(
            "SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = '{user}'"
        ))[0][0],
        ROWS
    );
}

/// After a crash that left a frozen outbox, the next sync resumes that bundle; rows the
/// app wrote since then must go up in the same call, or the sync's pull refuses to run
/// over them (`pending_local_changes`) and the call fails although nothing is wrong.
#[test]
fn a_sync_after_a_crash_also_sends_rows_written_since_the_freeze() {
    let server = TestServer::start_with(CONFIG, &[]);
    let user = "resume";
    let path_a = db_path("crash-resume-a");
    let (a, _) = Device::attached(&path_a, &server, user);
    let (b, _) = Device::attached(&db_path("crash-resume-b"), &server, user);
    a.exec("INSERT INTO users VALUES ('w1', 'before the crash', NULL)");
    a.close();
    let out = host(
        &path_a,
        Some("push.after_freeze"),
        &server,
        user,
        &["SELECT oversqlite_sync()"],
    );
    assert_crashed_at(&out, "push.after_freeze");
    b.exec("INSERT INTO users VALUES ('wb', 'from b', NULL)");
    b.sync();

    let (a, _) = Device::attached(&path_a, &server, user);
    a.exec("INSERT INTO users VALUES ('w2', 'after the crash', NULL)");
    let r = a
        .try_json("SELECT oversqlite_sync()")
        .unwrap_or_else(|e| panic!("first sync after the crash: {e}"));
    assert_eq!(r["push_outcome"], "committed", "{r}");
    assert_eq!(r["status"]["pending"]["pending_row_count"], 0, "{r}");
    b.sync();
    assert_converged(&server, user, &[&a, &b]);
    assert_eq!(a.count("SELECT count(*) FROM users"), 3);
    assert_exactly_once(
        &server,
        user,
        &[("users", "w1", "INSERT"), ("users", "w2", "INSERT")],
    );
}

/// Regression: the server pruned a bundle this device committed but never fetched back
/// (outbox `committed_remote`), and the app wrote more rows meanwhile. The fetch answers
/// `history_pruned` → `rebuild_required`; push is gated by rebuild_required and the
/// reference rebuild refuses while dirty rows exist (§7.7.1), so neither could proceed
/// and only `oversqlite_detach('discard_local_changes')` left, losing the newer rows.
/// The keep-source rebuild now carries the dirty rows over, as the rotated one does.
#[test]
fn a_pruned_committed_bundle_with_newer_local_writes_still_syncs() {
    let server = TestServer::start_with(CONFIG, &[]);
    let user = "deadend";
    let path_a = db_path("crash-deadend-a");
    let (a, _) = Device::attached(&path_a, &server, user);
    let (b, _) = Device::attached(&db_path("crash-deadend-b"), &server, user);
    a.exec("INSERT INTO users VALUES ('d1', 'one', NULL)");
    a.close();
    let out = host(
        &path_a,
        Some("push.after_committed_remote"),
        &server,
        user,
        &["SELECT oversqlite_sync()"],
    );
    assert_crashed_at(&out, "push.after_committed_remote");
    for n in 2..4 {
        b.exec(&format!(
            "INSERT INTO users VALUES ('d{n}', 'from b', NULL)"
        ));
        b.sync();
    }
    server.set_retention_floor(user, 2);
    let (a, _) = Device::attached(&path_a, &server, user);
    a.exec("INSERT INTO users VALUES ('d9', 'written after the crash', NULL)");
    recover(&a);
    b.sync();
    assert_converged(&server, user, &[&a, &b]);
    assert_eq!(a.count("SELECT count(*) FROM users"), 4);
}

#[test]
fn a_pull_killed_at_any_step_applies_each_bundle_exactly_once() {
    let server = TestServer::start_with(CONFIG, &[]);
    // (point, checkpoint the crash must leave behind, relative to before the pull)
    let points: &[(&str, i64)] = &[
        ("pull.after_response", 0),
        ("pull.mid_bundle_apply#2", 1),
        ("pull.after_bundle_applied#2", 2),
    ];
    for (i, (point, advanced)) in points.iter().enumerate() {
        let user = format!("pull{i}");
        let path_a = db_path(&format!("crash-pull-{i}-a"));
        let (a, _) = Device::attached(&path_a, &server, &user);
        let (b, _) = Device::attached(&db_path(&format!("crash-pull-{i}-b")), &server, &user);
        b.exec("INSERT INTO users VALUES ('y0', 'zero', NULL)");
        b.sync();
        a.sync();
        let before = checkpoint(&path_a);
        a.close();
        b.exec("INSERT INTO users VALUES ('y1', 'one', NULL)");
        b.sync();
        b.exec("UPDATE users SET name = 'zero v2' WHERE id = 'y0'; INSERT INTO typed_rows VALUES ('t', 1, 0.5, x'01', 'n', NULL);");
        b.sync();
        b.exec("DELETE FROM users WHERE id = 'y1'");
        b.sync();

        let out = host(
            &path_a,
            Some(point),
            &server,
            &user,
            &["SELECT oversqlite_sync()"],
        );
        assert_crashed_at(&out, point);
        assert_eq!(
            checkpoint(&path_a),
            before + advanced,
            "checkpoint after a crash at {point}"
        );
        // A bundle is applied together with its checkpoint or not at all.
        let users = peek(
            &path_a,
            "SELECT group_concat(id || '=' || name) FROM (SELECT * FROM users ORDER BY id)",
        );
        let expected_users = ["y0=zero", "y0=zero,y1=one", "y0=zero v2,y1=one"][*advanced as usize];
        assert_eq!(users, expected_users, "rows after a crash at {point}");
        assert_eq!(
            peek(&path_a, "SELECT count(*) FROM _sync_dirty_rows"),
            "0",
            "applied rows are never captured"
        );

        let (a, _) = Device::attached(&path_a, &server, &user);
        recover(&a);
        assert_converged(&server, &user, &[&a, &b]);
        assert_eq!(
            a.sql("SELECT group_concat(id || '=' || name) FROM users"),
            Some("y0=zero v2".into())
        );
        a.close();
        b.close();
    }
}

const SNAPSHOT_POINTS: &[&str] = &[
    "snapshot.after_session_create",
    "snapshot.after_stage_chunk",
    "snapshot.before_final_apply",
    "snapshot.mid_final_apply",
    "snapshot.after_final_apply",
];

#[test]
fn a_snapshot_rebuild_after_history_pruned_survives_a_crash_at_any_step() {
    let server = TestServer::start_with(CONFIG, &[]);
    for (i, point) in SNAPSHOT_POINTS.iter().enumerate() {
        let user = format!("snap{i}");
        let path_a = db_path(&format!("crash-snap-{i}-a"));
        let (a, _) = Device::attached(&path_a, &server, &user);
        let (b, _) = Device::attached(&db_path(&format!("crash-snap-{i}-b")), &server, &user);
        b.exec("INSERT INTO users VALUES ('z0', 'zero', NULL)");
        b.sync();
        a.sync();
        a.close();
        for n in 1..4 {
            b.exec(&format!("INSERT INTO users VALUES ('z{n}', 'n{n}', NULL); UPDATE users SET name = 'zero v{n}' WHERE id = 'z0';"));
            b.sync();
        }
        server.set_retention_floor(&user, 3);

        let out = host(
            &path_a,
            Some(point),
            &server,
            &user,
            &["SELECT oversqlite_sync()"],
        );
        assert_crashed_at(&out, point);
        let users = peek(&path_a, "SELECT count(*) FROM users");
        let finished = *point == "snapshot.after_final_apply";
        assert_eq!(
            users,
            if finished { "4" } else { "1" },
            "the final apply is all or nothing ({point})"
        );
        assert_eq!(checkpoint(&path_a), if finished { 4 } else { 1 });

        let (a, _) = Device::attached(&path_a, &server, &user);
        recover(&a);
        assert_converged(&server, &user, &[&a, &b]);
        assert_eq!(a.count("SELECT count(*) FROM users"), 4);
        assert_eq!(
            a.count("SELECT count(*) FROM _sync_snapshot_stage"),
            0,
            "no staged rows left behind"
        );
        a.close();
        b.close();
    }
}

#[test]
fn a_rotated_rebuild_of_a_restored_database_survives_a_crash_at_any_step() {
    let server = TestServer::start_with(CONFIG, &[]);
    let points: Vec<&str> = std::iter::once("rebuild.after_recovery_persisted")
        .chain(SNAPSHOT_POINTS.iter().copied())
        .collect();
    for (i, point) in points.iter().enumerate() {
        let user = format!("rot{i}");
        let path_a = db_path(&format!("crash-rot-{i}-a"));
        let backup = db_path(&format!("crash-rot-{i}-backup"));
        let (a, _) = Device::attached(&path_a, &server, &user);
        let (b, _) = Device::attached(&db_path(&format!("crash-rot-{i}-b")), &server, &user);
        a.exec("INSERT INTO users VALUES ('r1', 'one', NULL)");
        a.sync();
        b.sync();
        a.close();
        copy_db(&path_a, &backup);
        let (a, _) = Device::attached(&path_a, &server, &user);
        for id in ["r2", "r3"] {
            a.exec(&format!("INSERT INTO users VALUES ('{id}', '{id}', NULL)"));
            a.sync();
        }
        a.close();
        copy_db(&backup, &path_a);
        server.set_retention_floor(&user, 3);
        // Made after the restore: must reach the server exactly once, from the new source.
        let (a, _) = Device::attached(&path_a, &server, &user);
        a.exec("INSERT INTO users VALUES ('r4', 'four', NULL)");
        let ops: &[&str] = if *point == "rebuild.after_recovery_persisted" {
            a.close();
            &["SELECT oversqlite_sync()"]
        } else {
            let err = a.try_sql("SELECT oversqlite_sync()").unwrap_err();
            assert!(err.contains("source_recovery_required"), "{err}");
            a.close();
            &["SELECT oversqlite_rebuild()"]
        };

        let out = host(&path_a, Some(point), &server, &user, ops);
        assert_crashed_at(&out, point);
        let rotated = *point == "snapshot.after_final_apply";
        assert_eq!(
            peek(&path_a, "SELECT kind FROM _sync_operation_state"),
            if rotated { "none" } else { "source_recovery" },
            "recovery state after a crash at {point}"
        );
        assert_eq!(
            peek(&path_a, "SELECT count(*) FROM users WHERE id = 'r4'"),
            "1",
            "local intent stays visible"
        );

        let (a, _) = Device::attached(&path_a, &server, &user);
        recover(&a);
        b.sync();
        assert_converged(&server, &user, &[&a, &b]);
        assert_eq!(
            b.sql("SELECT group_concat(id) FROM (SELECT id FROM users ORDER BY id)"),
            Some("r1,r2,r3,r4".into()),
            "after a crash at {point}"
        );
        assert_exactly_once(&server, &user, &[("users", "r4", "INSERT")]);
        a.close();
        b.close();
    }
}

#[test]
fn hydrating_a_new_device_survives_a_crash_at_any_step() {
    let server = TestServer::start_with(CONFIG, &[]);
    let points = [
        "attach.after_remote_replace_persisted",
        "snapshot.after_stage_chunk",
        "snapshot.mid_final_apply",
    ];
    for (i, point) in points.iter().enumerate() {
        let user = format!("hyd{i}");
        let (b, _) = Device::attached(&db_path(&format!("crash-hyd-{i}-b")), &server, &user);
        b.exec(
            "INSERT INTO users VALUES ('h1', 'one', NULL), ('h2', 'two', NULL);
             INSERT INTO typed_rows VALUES ('t', -7, 2.5, x'0102', 'x', '2026-01-01T00:00:00Z');",
        );
        b.sync();
        // A new device with rows of its own from before it ever attached: the server
        // is authoritative, so they are replaced, never uploaded.
        let path_c = db_path(&format!("crash-hyd-{i}-c"));
        let c = Device::open(&path_c, &server, &user);
        c.exec("INSERT INTO users VALUES ('local', 'never uploaded', NULL)");
        c.close();

        let out = host(&path_c, Some(point), &server, &user, &[]);
        assert_crashed_at(&out, point);
        assert_eq!(
            peek(&path_c, "SELECT kind FROM _sync_operation_state"),
            "remote_replace"
        );
        assert_eq!(
            peek(&path_c, "SELECT binding_state FROM _sync_attachment_state"),
            "anonymous"
        );

        let (c, report) = Device::attached(&path_c, &server, &user);
        assert_eq!(report["outcome"], "used_remote_state", "{report}");
        recover(&c);
        assert_converged(&server, &user, &[&b, &c]);
        assert_eq!(
            server.bundle_count(&user),
            1,
            "the hydrated device uploaded nothing"
        );
        c.close();
        b.close();
    }
}

#[test]
fn kill_9_from_outside_during_a_large_push_loses_and_duplicates_nothing() {
    let server = TestServer::start_with(CONFIG, &[]);
    let user = "bulk";
    let path_a = db_path("crash-kill9-a");
    let (a, _) = Device::attached(&path_a, &server, user);
    let (b, _) = Device::attached(&db_path("crash-kill9-b"), &server, user);
    const ROWS: i64 = 4000;
    a.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO typed_rows SELECT printf('k%05d', i), i, i / 7.0, randomblob(64), printf('row %d', i), NULL FROM n;"
    ));
    a.close();

    let token = server.token(user);
    let mut child = Command::new(env!("CARGO_BIN_EXE_device_host"))
        .arg(&path_a)
        .arg("SELECT oversqlite_open()")
        .arg(format!("SELECT oversqlite_set_token('{token}')"))
        .arg(format!("SELECT oversqlite_attach('{user}')"))
        .arg("SELECT oversqlite_sync()")
        .env_remove("OVERSQLITE_TEST_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the server holds some, but not all, of the staged rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let staged = server.query_store("SELECT count(*) FROM _oversync_push_rows")[0][0]
            .as_i64()
            .unwrap();
        if staged > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push finished before any row was seen staged"
        );
        assert!(Instant::now() < deadline, "the push never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "killed mid-push (stdout: {stdout})"
    );
    assert_eq!(
        server.bundle_count(user),
        0,
        "nothing was committed before the kill"
    );
    assert_eq!(outbox_state(&path_a), format!("prepared:{ROWS}"));

    let (a, _) = Device::attached(&path_a, &server, user);
    recover(&a);
    b.sync();
    assert_converged(&server, user, &[&a, &b]);
    assert_eq!(b.count("SELECT count(*) FROM typed_rows"), ROWS);
    assert_eq!(
        duplicated_bundle_rows(&server, user),
        Vec::<Vec<Value>>::new()
    );
    assert_eq!(
        server.query_store(&format!(
            "SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = '{user}' AND op = 'INSERT'"
        ))[0][0],
        ROWS
    );
}

#[test]
fn two_processes_syncing_one_file_at_once_never_upload_twice() {
    let server = TestServer::start_with(CONFIG, &[]);
    let user = "twoproc";
    let path_a = db_path("twoproc-a");
    let (a, _) = Device::attached(&path_a, &server, user);
    let (b, _) = Device::attached(&db_path("twoproc-b"), &server, user);
    const ROWS: i64 = 600;
    a.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO typed_rows SELECT printf('p%04d', i), i, NULL, randomblob(32), NULL, NULL FROM n;"
    ));
    a.close();
    let token = server.token(user);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_device_host"))
            .arg(&path_a)
            .arg("SELECT oversqlite_open()")
            .arg(format!("SELECT oversqlite_set_token('{token}')"))
            .arg(format!("SELECT oversqlite_attach('{user}')"))
            .arg("SELECT oversqlite_sync()")
            .env_remove("OVERSQLITE_TEST_FAULT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    let mut succeeded = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            succeeded += 1;
        } else {
            // The loser is turned away by the cross-process operation lock, never by a
            // half-done upload.
            assert!(
                stdout.contains("sync_in_progress"),
                "unexpected failure: {stdout}"
            );
        }
    }
    assert!(succeeded >= 1, "at least one process synced");
    let (a, _) = Device::attached(&path_a, &server, user);
    recover(&a);
    b.sync();
    assert_converged(&server, user, &[&a, &b]);
    assert_eq!(server.bundle_count(user), 1, "one bundle, uploaded once");
    assert_eq!(
        duplicated_bundle_rows(&server, user),
        Vec::<Vec<Value>>::new()
    );
    assert_eq!(b.count("SELECT count(*) FROM typed_rows"), ROWS);
}
