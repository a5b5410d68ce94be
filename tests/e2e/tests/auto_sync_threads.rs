//! Closing the connection that started auto sync stops the worker and leaves no thread
//! behind. Its own test binary: it counts this process's threads.
mod sql_sync_support;

use std::time::{Duration, Instant};

use oversqlite_tests::server::TestServer;
use serde_json::json;
use sql_sync_support::device;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// CPU ticks (1/100 s) used so far by this process's worker threads.
fn worker_ticks() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let path = t.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if !comm.starts_with("oversqlite-auto") {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn oversqlite_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("oversqlite-"))
        .count()
}

#[test]
fn closing_the_connection_stops_the_worker_and_its_threads() {
    let server = TestServer::start();
    let a = device(&server, "threads-a", "hank");
    a.ok("SELECT oversqlite_attach('hank')");
    let baseline = threads();
    let st = a.ok(r#"SELECT oversqlite_auto_sync_start('{"debounce_ms": 50}')"#);
    assert_eq!(st["running"], json!(true));
    let start = Instant::now();
    while a.ok("SELECT oversqlite_auto_sync_status()")["watching"] != json!(true) {
        assert!(start.elapsed() < Duration::from_secs(10), "never watching");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The worker and its watch reader; a run's request thread (`oversqlite-request`,
    // one per exchange) may still be ending when the watch is first reported.
    let start = Instant::now();
    while oversqlite_threads() != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} oversqlite threads, not the worker and its watch reader",
            oversqlite_threads()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(threads() >= baseline + 2);
    let sub = server.watch_subscribers("hank");
    assert_eq!(sub, 1);

    // Work held back by paused directions is not "due": the worker sleeps, it does not
    // spin (a spinning thread would use about 100 ticks a second).
    a.ok("SELECT oversqlite_pause_uploads()");
    a.ok("SELECT oversqlite_pause_downloads()");
    a.exec("INSERT INTO users VALUES ('held', 'back')");
    std::thread::sleep(Duration::from_millis(300));
    let before = worker_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = worker_ticks() - before;
    assert!(used < 20, "the paused worker used {used} ticks in 1 s");

    drop(a);
    // The worker is joined while the connection closes; the watch reader ends at the
    // server's next heartbeat (200 ms in tests).
    let start = Instant::now();
    while threads() > baseline || oversqlite_threads() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "threads left: {} > {baseline}",
            threads()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(oversqlite_threads(), 0);
}
