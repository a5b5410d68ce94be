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
    assert_eq!(oversqlite_threads(), 2, "the worker and its watch reader");
    assert!(threads() >= baseline + 2);
    let sub = server.watch_subscribers("hank");
    assert_eq!(sub, 1);

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
