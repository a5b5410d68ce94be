//! Issue #10 item 10: `sqlite3_interrupt()` stops a call that waits on a stalled server,
//! and `oversqlite_set_call_timeout(ms)` bounds every call. The stalled server is a TCP
//! listener that accepts connections and never answers; the host interrupts from another
//! thread (what Python's `conn.interrupt()` or Ctrl-C in the sqlite3 shell do). Each
//! test then points the device back at the real server and syncs: nothing was lost,
//! nothing is sent twice.
//!
//! Needs `cargo build -p oversqlite --features test-faults` and `cargo build -p
//! oversqlite-server`.
mod sql_sync_support;

use std::time::{Duration, Instant};

use oversqlite_tests::host;
use oversqlite_tests::server::{TestServer, SCHEMA};
use oversqlite_tests::stalled::StalledServer;
use rusqlite::ffi;
use serde_json::{json, Value};
use sql_sync_support::{device, Device};

/// Generous bound on how long an interrupted or timed-out call may take to return
/// (the engine polls every 100 ms; a debug build on a busy 2-core machine is slow).
const RETURN_BOUND: Duration = Duration::from_secs(5);

fn point_at(d: &Device, url: &str) {
    host::call(&d.conn, "SELECT oversqlite_init(?1, ?2)", &[&url, &SCHEMA]).unwrap();
}

/// Runs `sql`, which must fail; returns (extended result code, message, elapsed).
fn timed_failure(d: &Device, sql: &str) -> (i32, String, Duration) {
    let started = Instant::now();
    let outcome = d.conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0));
    let elapsed = started.elapsed();
    match outcome {
        Ok(v) => panic!("{sql} should fail, returned {v:?}"),
        Err(rusqlite::Error::SqliteFailure(e, message)) => {
            (e.extended_code, message.unwrap_or_default(), elapsed)
        }
        Err(other) => panic!("{sql}: not a SQLite failure: {other:?}"),
    }
}

/// `sql` on `d` with `sqlite3_interrupt` called from another thread after `after`.
fn interrupted_after(d: &Device, sql: &str, after: Duration) -> (i32, String, Duration) {
    let handle = d.conn.get_interrupt_handle();
    let interrupter = std::thread::spawn(move || {
        std::thread::sleep(after);
        handle.interrupt();
    });
    let failure = timed_failure(d, sql);
    interrupter.join().unwrap();
    failure
}

fn assert_interrupted(sql: &str, (code, message, elapsed): (i32, String, Duration)) {
    let name = &sql[7..sql.find('(').unwrap()];
    assert!(
        message.starts_with(&format!("{name}: interrupted: ")),
        "{sql}: {message}"
    );
    assert!(message.contains("call the function again"), "{message}");
    assert_eq!(code, ffi::SQLITE_INTERRUPT, "{sql}: {message}");
    assert!(
        elapsed < RETURN_BOUND,
        "{sql} took {elapsed:?} to honour the interrupt"
    );
}

fn users_on(d: &Device) -> Vec<String> {
    d.users()
}

#[test]
fn sqlite3_interrupt_stops_sync_push_pull_rebuild_and_watch_against_a_stalled_server() {
    let server = TestServer::start();
    let stalled = StalledServer::start();
    let d = device(&server, "interrupt", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");

    // With an unsent row: the calls that upload, and a watch without a timeout.
    point_at(&d, &stalled.url);
    for sql in [
        "SELECT oversqlite_sync()",
        "SELECT oversqlite_push_pending()",
        "SELECT oversqlite_watch_once()",
    ] {
        assert_interrupted(sql, interrupted_after(&d, sql, Duration::from_millis(400)));
        assert_eq!(
            d.ok("SELECT oversqlite_status()")["pending"]["pending_row_count"],
            json!(1),
            "{sql}: the unsent row is kept"
        );
    }

    // Back on the real server: the row goes up once.
    point_at(&d, &server.url);
    let r = d.ok("SELECT oversqlite_sync()");
    assert_eq!(r["push_outcome"], json!("committed"), "{r}");

    // Drained: the calls that only download (pull and hydrate).
    point_at(&d, &stalled.url);
    for sql in [
        "SELECT oversqlite_pull_to_stable()",
        "SELECT oversqlite_rebuild()",
    ] {
        assert_interrupted(sql, interrupted_after(&d, sql, Duration::from_millis(400)));
    }

    // A watch on a healthy, idle stream (heartbeats only) stops on the interrupt too.
    point_at(&d, &server.url);
    let sql = "SELECT oversqlite_watch_once()";
    assert_interrupted(sql, interrupted_after(&d, sql, Duration::from_millis(600)));

    d.exec("INSERT INTO users VALUES ('u2', 'Grace')");
    let r = d.ok("SELECT oversqlite_sync()");
    assert_eq!(r["push_outcome"], json!("committed"), "{r}");
    assert_eq!(users_on(&d), vec!["u1=Ada", "u2=Grace"]);
    assert_eq!(server.bundle_count("alice"), 2, "nothing was sent twice");
    let fresh = device(&server, "interrupt-fresh", "alice");
    fresh.ok("SELECT oversqlite_attach('alice')");
    assert_eq!(users_on(&fresh), vec!["u1=Ada", "u2=Grace"]);
}

#[test]
fn call_timeout_fails_a_stalled_sync_with_timeout_and_the_next_sync_succeeds() {
    let server = TestServer::start();
    let stalled = StalledServer::start();
    let d = device(&server, "call-timeout", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    d.exec("INSERT INTO users VALUES ('u1', 'Ada')");
    assert_eq!(
        d.ok("SELECT oversqlite_set_call_timeout(400)"),
        json!({"call_timeout_ms": 400})
    );

    point_at(&d, &stalled.url);
    let (code, message, elapsed) = timed_failure(&d, "SELECT oversqlite_sync()");
    assert!(
        message.starts_with("oversqlite_sync: timeout: "),
        "{message}"
    );
    assert!(
        message.contains("400 ms") && message.contains("oversqlite_set_call_timeout"),
        "{message}"
    );
    assert_eq!(code, ffi::SQLITE_ERROR, "{message}");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < RETURN_BOUND,
        "{elapsed:?}"
    );

    // A bad bound is refused and changes nothing.
    let err = d.err("SELECT oversqlite_set_call_timeout(-1)");
    assert!(
        err.starts_with("oversqlite_set_call_timeout: invalid_argument: "),
        "{err}"
    );

    // The bound applies per call: a healthy sync well within it succeeds.
    point_at(&d, &server.url);
    d.ok("SELECT oversqlite_set_call_timeout(30000)");
    let r = d.ok("SELECT oversqlite_sync()");
    assert_eq!(r["push_outcome"], json!("committed"), "{r}");
    assert_eq!(server.bundle_count("alice"), 1);

    // A watch on a healthy, idle stream ends at the call's deadline like a
    // watch_once(timeout_ms): outcome `stopped`, not an error.
    d.ok("SELECT oversqlite_set_call_timeout(500)");
    let started = Instant::now();
    let w: Value = d.ok("SELECT oversqlite_watch_once()");
    assert_eq!(w["outcome"], json!("stopped"), "{w}");
    assert!(started.elapsed() < RETURN_BOUND);
    assert_eq!(
        d.ok("SELECT oversqlite_set_call_timeout(NULL)"),
        json!({"call_timeout_ms": null})
    );
}

/// `oversqlite_watch_once(timeout_ms)` against a server that accepts and never answers
/// ends at its limit with outcome `stopped` (no fallback pull on the same server), and so
/// does a watch bounded only by the call timeout.
#[test]
fn watch_once_with_a_timeout_stops_at_it_against_a_stalled_server() {
    let server = TestServer::start();
    let stalled = StalledServer::start();
    let d = device(&server, "watch-stalled", "alice");
    d.ok("SELECT oversqlite_attach('alice')");
    point_at(&d, &stalled.url);

    let started = Instant::now();
    let w: Value = d.ok("SELECT oversqlite_watch_once(700)");
    let elapsed = started.elapsed();
    assert_eq!(w["outcome"], json!("stopped"), "{w}");
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < RETURN_BOUND,
        "{elapsed:?}"
    );

    d.ok("SELECT oversqlite_set_call_timeout(600)");
    let started = Instant::now();
    let w: Value = d.ok("SELECT oversqlite_watch_once()");
    assert_eq!(w["outcome"], json!("stopped"), "{w}");
    assert!(started.elapsed() < RETURN_BOUND, "{:?}", started.elapsed());
    d.ok("SELECT oversqlite_set_call_timeout(NULL)");

    // Back on the real server, the watch works as before.
    point_at(&d, &server.url);
    let w: Value = d.ok("SELECT oversqlite_watch_once(300)");
    assert_eq!(w["outcome"], json!("stopped"), "{w}");
}
