//! The token provider is only ever asked on the caller's thread. The SQL layer's
//! provider runs a host function on the caller's connection: asked from a helper
//! thread it deadlocks a serialized-mode host (Python's sqlite3) and races a
//! single-thread one. Push overlaps uploads and committed-page fetches with local
//! work on a helper thread; only the HTTP exchange may move there.

mod support;

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use oversqlite_engine::remote::transport::ScriptedResponse;
use support::fake_server::{route, FakeServer};

struct ThreadTokens {
    threads: Mutex<Vec<ThreadId>>,
    refreshed: Mutex<Vec<ThreadId>>,
}

impl oversqlite_engine::remote::auth::TokenProvider for ThreadTokens {
    fn token(&self) -> oversqlite_engine::Result<Option<String>> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        Ok(Some("t1".to_string()))
    }
    fn token_after_unauthorized(&self) -> oversqlite_engine::Result<Option<String>> {
        self.refreshed
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        Ok(Some("t2".to_string()))
    }
}

#[test]
fn push_asks_for_tokens_only_on_the_calling_thread() {
    // Every second chunk and committed page is first refused 401 (stale token).
    let mut calls = 0;
    let server = FakeServer::new(move |_, req| {
        let name = route(req).0;
        if name != "push_chunk" && name != "committed_rows" {
            return None;
        }
        calls += 1;
        let stale = req.header("Authorization") == Some("Bearer t1");
        (stale && calls % 2 == 0).then(|| ScriptedResponse::error(401, "unauthorized", "expired"))
    });
    let (_db, conn, mut client) = support::users_device(&server);
    client.settings.upload_chunk_rows = 3;
    client.settings.committed_rows_page = 4;
    client.attach(&conn, "user-1").unwrap();
    for i in 0..20 {
        conn.execute(
            "INSERT INTO users(id, name) VALUES (?1, 'x')",
            [format!("u{i:02}")],
        )
        .unwrap();
    }
    let tokens = Arc::new(ThreadTokens {
        threads: Mutex::new(Vec::new()),
        refreshed: Mutex::new(Vec::new()),
    });
    client.set_token_provider(tokens.clone());

    let report = client.push_pending(&conn).unwrap();
    assert_eq!(report.row_count, 20);

    let me = std::thread::current().id();
    let asked = tokens.threads.lock().unwrap();
    let refreshed = tokens.refreshed.lock().unwrap();
    assert!(
        asked.len() >= 7 + 5,
        "every chunk and page asked for a token: {}",
        asked.len()
    );
    assert!(!refreshed.is_empty(), "the 401 refresh path was exercised");
    let elsewhere = asked
        .iter()
        .chain(refreshed.iter())
        .filter(|t| **t != me)
        .count();
    assert_eq!(
        elsewhere, 0,
        "{elsewhere} token requests ran on a helper thread"
    );
    let chunks = server
        .transport
        .requests()
        .iter()
        .filter(|r| route(r).0 == "push_chunk" && r.header("Authorization") == Some("Bearer t2"))
        .count();
    assert!(
        chunks > 0,
        "refused chunks were sent again with the fresh token"
    );
}
