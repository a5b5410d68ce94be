//! Issue #11 items 1–3 through the loaded extension against a real server: the
//! background worker (`oversqlite_auto_sync_start/stop/status`), live progress
//! (`oversqlite_progress()`, `oversqlite_status()`) and the sync journal
//! (`oversqlite_sync_log`).
//!
//! Needs `cargo build -p oversqlite --features test-faults` and `cargo build -p
//! oversqlite-server`.
mod sql_sync_support;

use std::time::{Duration, Instant};

use oversqlite_tests::server::TestServer;
use serde_json::{json, Value};
use sql_sync_support::{device, Device};

/// Fast settings for tests: short debounce and backoff, a periodic sync that never
/// comes due during a test (so what moves rows is the debounce and the watch).
const FAST: &str =
    r#"{"debounce_ms": 100, "interval_ms": 3600000, "min_backoff_ms": 100, "max_backoff_ms": 800}"#;

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn attached(server: &TestServer, name: &str, user: &str) -> Device {
    let d = device(server, name, user);
    assert_eq!(
        d.ok(&format!("SELECT oversqlite_attach('{user}')"))["status"],
        json!("connected")
    );
    d
}

fn start(d: &Device, options: &str) -> Value {
    d.sql("SELECT oversqlite_auto_sync_start(?1)", &[&options])
        .unwrap_or_else(|e| panic!("start: {e}"))
}

fn auto_status(d: &Device) -> Value {
    d.ok("SELECT oversqlite_auto_sync_status()")
}

/// `(operation, trigger, outcome, error_code)` of the journal, oldest first.
fn journal(d: &Device) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = d
        .conn
        .prepare(
            "SELECT operation, trigger, outcome, error_code FROM oversqlite_sync_log ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// operation, trigger, outcome, rows_up, bytes_up, error_code, error_message
type LogRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

fn has_user(d: &Device, id: &str) -> bool {
    d.count(&format!("SELECT COUNT(*) FROM users WHERE id = '{id}'")) == 1
}

#[test]
fn a_write_on_a_reaches_b_with_no_sync_call() {
    let server = TestServer::start();
    let a = attached(&server, "auto-a", "alice");
    let b = attached(&server, "auto-b", "alice");
    let st = start(&a, FAST);
    assert_eq!(st["running"], json!(true), "{st}");
    assert_eq!(st["debounce_ms"], json!(100));
    start(&b, FAST);
    wait_until("B watching", Duration::from_secs(10), || {
        auto_status(&b)["watching"] == json!(true)
    });

    a.exec("INSERT INTO users VALUES ('w1', 'written on A')");
    // debounce (0.1 s) + push + watch event + pull, with a generous bound for a debug
    // build on a loaded machine.
    let took = wait_until("the row on B", Duration::from_secs(8), || {
        has_user(&b, "w1")
    });
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(server.rows("users", "alice", "id").len(), 1);

    // The run that pushed (a push, or the first periodic sync if it was still
    // running) is journaled once it has returned.
    let moved = |d: &Device, column: &str| {
        d.count(&format!(
            "SELECT COUNT(*) FROM oversqlite_sync_log WHERE trigger = 'auto' AND outcome = 'ok' \
             AND operation IN ('push', 'pull', 'sync') AND {column} >= 1"
        )) >= 1
    };
    wait_until("A's push journaled", Duration::from_secs(8), || {
        moved(&a, "rows_up")
    });
    wait_until("B's pull journaled", Duration::from_secs(8), || {
        moved(&b, "rows_down")
    });
    let ja = journal(&a);
    // The attach calls made from SQL are journaled with their own trigger.
    assert_eq!(ja[0].0, "attach");
    assert_eq!(ja[0].1, "sql");

    let status = a.ok("SELECT oversqlite_status()");
    assert_eq!(status["auto_sync"]["running"], json!(true), "{status}");
    assert!(
        status["auto_sync"]["runs"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert_eq!(status["auto_sync"]["consecutive_failures"], json!(0));

    let stopped = a.ok("SELECT oversqlite_auto_sync_stop()");
    assert_eq!(stopped["stopped"], json!(true), "{stopped}");
    assert_eq!(stopped["running"], json!(false), "{stopped}");
    assert_eq!(auto_status(&a)["state"], json!("not_started"));
    // Stopped: a write stays local.
    a.exec("INSERT INTO users VALUES ('w2', 'after stop')");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server.rows("users", "alice", "id").len(), 1);
}

#[test]
fn server_down_backs_off_then_catches_up_without_loss_or_duplicates() {
    let mut server = TestServer::start();
    let a = attached(&server, "down-a", "bob");
    let b = attached(&server, "down-b", "bob");
    start(&a, FAST);
    start(&b, FAST);
    wait_until("B watching", Duration::from_secs(10), || {
        auto_status(&b)["watching"] == json!(true)
    });

    server.kill9();
    for i in 0..5 {
        a.exec(&format!(
            "INSERT INTO users VALUES ('d{i}', 'while down {i}')"
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until("A failing", Duration::from_secs(10), || {
        auto_status(&a)["consecutive_failures"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    });
    let st = auto_status(&a);
    assert!(st["last_error_code"].is_string(), "{st}");
    match st["state"].as_str() {
        Some("backing_off") => assert!(st["next_run_at"].is_string(), "{st}"),
        Some("syncing") => {}
        _ => panic!("unexpected state {st}"),
    }
    let failures = journal(&a)
        .into_iter()
        .filter(|(_, trig, out, code)| {
            trig == "auto" && out == "error" && code.as_deref() == Some("network_error")
        })
        .count();
    assert!(failures >= 2, "failed runs are journaled");

    server.restart();
    wait_until("all rows on B", Duration::from_secs(20), || {
        b.count("SELECT COUNT(*) FROM users WHERE id LIKE 'd%'") == 5
    });
    wait_until("A recovered", Duration::from_secs(10), || {
        auto_status(&a)["consecutive_failures"] == json!(0)
    });
    let rows = server.rows("users", "bob", "id");
    assert_eq!(rows.len(), 5, "{rows:?}");
    // Nothing uploaded twice: every change is in exactly one bundle row.
    let uploaded =
        server.query_store("SELECT COUNT(*) FROM _oversync_bundle_rows WHERE user_id = 'bob'");
    assert_eq!(uploaded[0][0], json!(5), "{uploaded:?}");
    assert_eq!(a.count("SELECT COUNT(*) FROM oversqlite_pending"), 0);
}

#[test]
fn paused_directions_are_honoured_by_the_worker() {
    let server = TestServer::start();
    let a = attached(&server, "pause-a", "carol");
    let b = attached(&server, "pause-b", "carol");
    a.ok("SELECT oversqlite_pause_uploads()");
    b.ok("SELECT oversqlite_pause_downloads()");
    start(&a, FAST);
    start(&b, FAST);
    a.exec("INSERT INTO users VALUES ('p1', 'paused upload')");
    server.upsert_user("carol", "INSERT", "s1", "from server");
    // A downloads (its downloads run), B does not.
    wait_until("A pulls s1", Duration::from_secs(8), || has_user(&a, "s1"));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server
        .rows("users", "carol", "id")
        .iter()
        .all(|r| r[0] != json!("p1")));
    assert!(!has_user(&b, "s1"), "B's downloads are paused");
    assert_eq!(auto_status(&b)["watching"], json!(false));

    a.ok("SELECT oversqlite_resume_uploads()");
    b.ok("SELECT oversqlite_resume_downloads()");
    wait_until("p1 on the server", Duration::from_secs(8), || {
        server
            .rows("users", "carol", "id")
            .iter()
            .any(|r| r[0] == json!("p1"))
    });
    wait_until("B catches up", Duration::from_secs(8), || {
        has_user(&b, "s1") && has_user(&b, "p1")
    });
}

#[test]
fn a_refused_token_waits_for_a_new_one_instead_of_retrying() {
    let server = TestServer::start();
    let a = attached(&server, "tok-a", "dave");
    let bad = server.bad_token("dave");
    a.sql("SELECT oversqlite_set_token(?1)", &[&bad]).unwrap();
    start(&a, FAST);
    a.exec("INSERT INTO users VALUES ('t1', 'needs a token')");
    wait_until("waiting_for_token", Duration::from_secs(8), || {
        auto_status(&a)["state"] == json!("waiting_for_token")
    });
    let st = auto_status(&a);
    assert!(
        st["advice"]
            .as_str()
            .unwrap()
            .contains("oversqlite_set_token"),
        "{st}"
    );
    let runs = st["runs"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        auto_status(&a)["runs"].as_u64().unwrap(),
        runs,
        "no retries while waiting"
    );
    // The journal keeps the failure, never the token.
    let texts: Vec<String> = a
        .conn
        .prepare("SELECT COALESCE(error_message, '') || COALESCE(error_code, '') FROM oversqlite_sync_log")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("authentication_failed")),
        "{texts:?}"
    );
    assert!(
        texts.iter().all(|t| !t.contains(&bad)),
        "token leaked: {texts:?}"
    );

    let good = server.token("dave");
    a.sql("SELECT oversqlite_set_token(?1)", &[&good]).unwrap();
    wait_until("t1 on the server", Duration::from_secs(8), || {
        server.rows("users", "dave", "id").len() == 1
    });
    wait_until("the worker recovered", Duration::from_secs(5), || {
        auto_status(&a)["consecutive_failures"] == json!(0)
    });
}

#[test]
fn bad_options_change_nothing_and_one_worker_per_file() {
    let server = TestServer::start();
    let a = attached(&server, "opts-a", "erin");
    for bad in [
        "not json",
        "[1]",
        r#"{"interval_ms": -5}"#,
        r#"{"debounce": 10}"#,
        r#"{"watch": "yes"}"#,
        r#"{"min_backoff_ms": 5000, "max_backoff_ms": 1000}"#,
    ] {
        let e = a
            .sql("SELECT oversqlite_auto_sync_start(?1)", &[&bad])
            .unwrap_err();
        assert!(
            e.contains("oversqlite_auto_sync_start: invalid_argument: "),
            "{bad}: {e}"
        );
    }
    assert_eq!(auto_status(&a)["state"], json!("not_started"));
    start(&a, FAST);
    let e = a
        .sql("SELECT oversqlite_auto_sync_start(?1)", &[&FAST])
        .unwrap_err();
    assert!(
        e.contains("invalid_state") && e.contains("already running"),
        "{e}"
    );
    let other = a.reopen();
    let e = other
        .query_row("SELECT oversqlite_auto_sync_start()", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("one worker per file"), "{e}");
    a.ok("SELECT oversqlite_auto_sync_stop()");
    // In memory: refused.
    let mem = oversqlite_tests::host::memory();
    let e = mem
        .query_row("SELECT oversqlite_auto_sync_start()", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("oversqlite_auto_sync_start: "), "{e}");
}

#[test]
fn journal_rows_for_success_and_failure_are_bounded_and_readable_elsewhere() {
    let server = TestServer::start();
    let a = attached(&server, "log-a", "frank");
    // journal_keep is set with the worker's options and applies to SQL calls too.
    start(
        &a,
        r#"{"journal_keep": 4, "interval_ms": 3600000, "watch": false}"#,
    );
    a.ok("SELECT oversqlite_auto_sync_stop()");
    for i in 0..3 {
        a.exec(&format!("INSERT INTO users VALUES ('j{i}', 'x')"));
        a.ok("SELECT oversqlite_push_pending()");
    }
    a.ok("SELECT oversqlite_pause_uploads()");
    assert_eq!(
        a.ok("SELECT oversqlite_push_pending()")["skipped"],
        json!("uploads_paused")
    );
    a.ok("SELECT oversqlite_resume_uploads()");
    let bad = server.bad_token("frank");
    a.sql("SELECT oversqlite_set_token(?1)", &[&bad]).unwrap();
    a.exec("INSERT INTO users VALUES ('j9', 'x')");
    a.err("SELECT oversqlite_push_pending()");
    // A call refused for its arguments changes nothing, the journal included.
    a.err("SELECT oversqlite_push_pending(1)");

    let other = a.reopen();
    let rows: Vec<LogRow> = other
        .prepare("SELECT operation, trigger, outcome, rows_up, bytes_up, error_code, error_message FROM oversqlite_sync_log")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4, "bounded to journal_keep: {rows:?}");
    // Newest first.
    assert_eq!(rows[0].0, "push");
    assert_eq!(rows[0].2, "error");
    assert_eq!(rows[0].5.as_deref(), Some("authentication_failed"));
    assert!(!rows[0].6.as_deref().unwrap_or("").contains(&bad));
    assert_eq!(rows[1].2, "skipped");
    assert_eq!((rows[2].2.as_str(), rows[2].3), ("ok", 1), "{:?}", rows[2]);
    assert!(rows[2].4 > 0, "bytes_up counted: {:?}", rows[2]);
    assert!(rows.iter().all(|r| r.1 == "sql"));
    let started: String = other
        .query_row(
            "SELECT started_at <= finished_at FROM oversqlite_sync_log LIMIT 1",
            [],
            |r| r.get::<_, i64>(0).map(|v| v.to_string()),
        )
        .unwrap();
    assert_eq!(started, "1");
}

#[test]
fn progress_is_visible_from_another_connection_during_a_large_push_and_a_hydrate() {
    let server = TestServer::start();
    let a = attached(&server, "prog-a", "gina");
    let n = 20_000;
    a.exec("BEGIN");
    for i in 0..n {
        a.conn
            .execute(
                "INSERT INTO users VALUES (?1, 'some name for progress')",
                [format!("r{i:06}")],
            )
            .unwrap();
    }
    a.exec("COMMIT");
    assert_eq!(a.ok("SELECT oversqlite_progress()"), Value::Null);

    let watch = |path: std::path::PathBuf, done: std::sync::Arc<std::sync::atomic::AtomicBool>| {
        std::thread::spawn(move || {
            let c = oversqlite_tests::host::file(&path);
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let t: String = c
                    .query_row("SELECT oversqlite_progress()", [], |r| r.get(0))
                    .unwrap();
                let v: Value = serde_json::from_str(&t).unwrap();
                if !v.is_null() {
                    seen.push(v);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = watch(a.path.clone(), done.clone());
    let push = a.ok("SELECT oversqlite_push_pending()");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(push["row_count"], json!(n));
    let seen = observer.join().unwrap();
    let mid: Vec<&Value> = seen
        .iter()
        .filter(|v| v["operation"] == json!("push") && v["phase"] == json!("uploading"))
        .filter(|v| {
            let up = v["rows_up"].as_i64().unwrap();
            up > 0 && up < n
        })
        .collect();
    assert!(
        !mid.is_empty(),
        "no mid-push progress among {} samples",
        seen.len()
    );
    assert_eq!(mid[0]["rows_up_total"], json!(n), "{}", mid[0]);
    assert_eq!(mid[0]["trigger"], json!("sql"));
    assert!(mid.last().unwrap()["bytes_up"].as_i64().unwrap() > 0);
    assert_eq!(a.ok("SELECT oversqlite_progress()"), Value::Null);

    // Hydrate: a fresh device attaches by snapshot.
    let c = device(&server, "prog-c", "gina");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = watch(c.path.clone(), done.clone());
    let attach = c.ok("SELECT oversqlite_attach('gina')");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(attach["status"], json!("connected"), "{attach}");
    let seen = observer.join().unwrap();
    let mid: Vec<&Value> = seen
        .iter()
        .filter(|v| v["operation"] == json!("attach") && v["phase"] == json!("staging_snapshot"))
        .filter(|v| {
            let down = v["rows_down"].as_i64().unwrap();
            down > 0 && down < n
        })
        .collect();
    assert!(
        !mid.is_empty(),
        "no mid-hydrate progress among {} samples: {:?}",
        seen.len(),
        seen.iter()
            .map(|v| (v["phase"].clone(), v["rows_down"].clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(mid[0]["rows_down_total"], json!(n), "{}", mid[0]);
    assert_eq!(c.count("SELECT COUNT(*) FROM users"), n);
}

#[test]
fn a_detach_elsewhere_parks_the_worker_until_the_next_attach() {
    let server = TestServer::start();
    let a = attached(&server, "detach-a", "ivan");
    start(&a, FAST);
    wait_until("the first run", Duration::from_secs(8), || {
        auto_status(&a)["runs"].as_u64().unwrap_or(0) >= 1
    });
    // Detach from another connection: the worker notices through data_version.
    let other = a.reopen();
    let token = server.token("ivan");
    other
        .query_row("SELECT oversqlite_set_token(?1)", [&token], |_| Ok(()))
        .unwrap();
    let detached = loop {
        // The worker may hold the operation lock for a moment: retry sync_in_progress.
        match other.query_row("SELECT oversqlite_detach()", [], |r| r.get::<_, String>(0)) {
            Ok(text) => break text,
            Err(e) if e.to_string().contains("sync_in_progress") => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("detach: {e}"),
        }
    };
    assert!(detached.contains("\"detached\""), "{detached}");
    wait_until("waiting_for_attach", Duration::from_secs(8), || {
        auto_status(&a)["state"] == json!("waiting_for_attach")
    });
    let runs = auto_status(&a)["runs"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        auto_status(&a)["runs"].as_u64().unwrap(),
        runs,
        "no runs while detached"
    );
    // Attached again (the server's state wins over rows written while detached, by the
    // protocol): the worker resumes and pushes what is written next.
    a.ok("SELECT oversqlite_attach('ivan')");
    a.exec("INSERT INTO users VALUES ('x1', 'written after the new attach')");
    wait_until("x1 on the server", Duration::from_secs(8), || {
        server.rows("users", "ivan", "id").len() == 1
    });
}

/// A sync called on demand while this process's worker is mid-run waits for the run
/// instead of failing with `sync_in_progress`, and then sends what was written since.
#[test]
fn a_sync_on_demand_during_a_worker_run_waits_for_it() {
    let server = TestServer::start();
    let a = attached(&server, "ondemand-a", "hana");
    a.exec("BEGIN");
    for i in 0..20_000 {
        a.conn
            .execute(
                "INSERT INTO users VALUES (?1, 'backlog for the worker')",
                [format!("w{i:06}")],
            )
            .unwrap();
    }
    a.exec("COMMIT");
    start(&a, r#"{"debounce_ms": 50, "interval_ms": 3600000}"#);
    let other = oversqlite_tests::host::file(&a.path);
    wait_until("the worker's run", Duration::from_secs(30), || {
        let t: String = other
            .query_row("SELECT oversqlite_progress()", [], |r| r.get(0))
            .unwrap();
        serde_json::from_str::<Value>(&t).unwrap()["trigger"] == json!("auto")
    });
    other
        .execute(
            "INSERT INTO users VALUES ('on-demand', 'written during the run')",
            [],
        )
        .unwrap();
    let token = server.token("hana");
    let _: String = other
        .query_row("SELECT oversqlite_set_token(?1)", [&token], |r| r.get(0))
        .unwrap();
    let report: String = other
        .query_row("SELECT oversqlite_attach('hana')", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("attach on the second connection: {e}"));
    assert!(report.contains("connected"), "{report}");
    let report: String = other
        .query_row("SELECT oversqlite_sync()", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("a sync during the worker's run failed: {e}"));
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["complete"], json!(true), "{report}");
    let b = attached(&server, "ondemand-b", "hana");
    assert!(has_user(&b, "on-demand"));
    assert_eq!(b.count("SELECT COUNT(*) FROM users"), 20_001);
}
