//! The sync journal from the command line: every CLI operation leaves one
//! `_oversqlite_sync_log` row with trigger `cli` (success and failure, counters, no
//! token), and `oversqlite log` prints the newest rows as a table or a JSON array.
mod support;

use std::path::Path;

use oversqlite_tests::server::TestServer;
use support::{cli, cli_as, device, insert_user, plain};

/// (operation, trigger, outcome, rows_up, rows_down, error_code, error_message), oldest first.
type Row = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

fn journal(path: &Path) -> Vec<Row> {
    let conn = plain(path);
    let mut stmt = conn
        .prepare(
            "SELECT operation, trigger, outcome, rows_up, rows_down, error_code, error_message \
             FROM _oversqlite_sync_log ORDER BY id",
        )
        .unwrap();
    let rows = stmt
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
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

#[test]
fn cli_operations_are_journaled_with_trigger_cli_success_and_failure_without_the_token() {
    let mut server = TestServer::start();
    let db = device(&server, "journal-a");
    cli_as(&server, "alice", &db, &["attach", "--user", "alice"]).ok();
    insert_user(&db, "u1", "Ada");
    insert_user(&db, "u2", "Grace");
    cli_as(&server, "alice", &db, &["sync"]).ok();

    // Another device's row comes down through a CLI pull.
    let other = device(&server, "journal-b");
    cli_as(&server, "alice", &other, &["attach", "--user", "alice"]).ok();
    insert_user(&other, "u3", "Edsger");
    cli_as(&server, "alice", &other, &["push"]).ok();
    cli_as(&server, "alice", &db, &["pull"]).ok();

    // A push with the server down fails (exit 75) and is journaled as an error.
    insert_user(&db, "u4", "Barbara");
    let token = server.token("alice");
    server.kill9();
    let r = cli(
        &["--db", db.to_str().unwrap(), "push"],
        &[("OVERSQLITE_TOKEN", &token)],
    );
    assert_eq!(r.code, 75, "{}", r.stderr);

    let rows = journal(&db);
    let ops: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("attach", "cli", "ok"),
            ("sync", "cli", "ok"),
            ("pull", "cli", "ok"),
            ("push", "cli", "error"),
        ],
        "{rows:?}"
    );
    let sync = &rows[1];
    assert_eq!((sync.3, sync.5.as_deref()), (2, None), "{sync:?}");
    let pull = &rows[2];
    assert_eq!(pull.4, 1, "{pull:?}");
    let failed = &rows[3];
    assert_eq!(failed.5.as_deref(), Some("network_error"), "{failed:?}");
    assert!(!failed.6.clone().unwrap_or_default().is_empty());
    let all = format!("{rows:?}");
    assert!(!all.contains(&token), "the journal holds the token");

    // Detach is journaled too: refused while u4 is unsent (exit 65, `incomplete`, not
    // `ok`), then done after a sync delivered it.
    server.restart();
    assert_eq!(cli_as(&server, "alice", &db, &["detach"]).code, 65);
    cli_as(&server, "alice", &db, &["sync"]).ok();
    cli_as(&server, "alice", &db, &["detach"]).ok();
    let rows = journal(&db);
    let tail: Vec<(&str, &str)> = rows[rows.len() - 3..]
        .iter()
        .map(|r| (r.0.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        tail,
        [("detach", "incomplete"), ("sync", "ok"), ("detach", "ok")],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.1 == "cli"));
    assert_eq!(rows[rows.len() - 2].3, 1, "the retried sync sent u4");
}

#[test]
fn log_prints_the_newest_journal_rows_as_a_table_or_json_and_an_empty_journal() {
    let mut server = TestServer::start();
    let db = device(&server, "log-a");
    let path = db.to_str().unwrap();

    // A file that never synced: no journal table, an empty list, exit 0.
    let r = cli(&["--db", path, "--json", "log"], &[]).ok();
    assert_eq!(r.json(), serde_json::json!([]));
    let r = cli(&["--db", path, "log"], &[]).ok();
    assert_eq!(r.stdout.trim(), "no sync operations recorded");
    assert!(!support::plain(&db)
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = '_oversqlite_sync_log'",
            [],
            |r| r.get::<_, i64>(0)
        )
        .map(|n| n > 0)
        .unwrap());

    cli_as(&server, "alice", &db, &["attach", "--user", "alice"]).ok();
    insert_user(&db, "u1", "Ada");
    cli_as(&server, "alice", &db, &["sync"]).ok();
    insert_user(&db, "u2", "Grace");
    let token = server.token("alice");
    server.kill9();
    let r = cli(&["--db", path, "push"], &[("OVERSQLITE_TOKEN", &token)]);
    assert_eq!(r.code, 75);

    // Newest first; --limit bounds the count.
    let j = cli(&["--db", path, "--json", "log"], &[]).ok().json();
    let ops: Vec<(&str, &str, &str)> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["trigger"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("push", "cli", "error"),
            ("sync", "cli", "ok"),
            ("attach", "cli", "ok")
        ]
    );
    assert_eq!(j[0]["error_code"], "network_error");
    assert_eq!(j[1]["rows_up"], 1);
    assert!(j[1]["bytes_up"].as_i64().unwrap() > 0, "{j}");
    let j = cli(&["--db", path, "--json", "log", "--limit", "1"], &[])
        .ok()
        .json();
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["operation"], "push");

    // The table: a header, one line per row, the error after the counters.
    let r = cli(&["--db", path, "log", "--limit", "2"], &[]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with("id") && lines[0].contains("operation"));
    assert!(lines[1].contains("push") && lines[1].contains("network_error:"));
    assert!(lines[2].contains("sync") && lines[2].contains(" ok "));
    assert!(!r.stdout.contains(&token));

    // Bad limits are usage errors.
    assert_eq!(cli(&["--db", path, "log", "--limit", "0"], &[]).code, 64);
}
