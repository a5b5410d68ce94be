//! Interop: the engine over real HTTP (`UreqTransport`) against a real
//! `oversqlite-server` process on loopback. Two devices of one user seed, hydrate,
//! conflict, delete, rebuild after pruning, watch and detach.
//!
//! Needs the server binary: `cargo build -p oversqlite-server`, then
//! `OVERSQLITE_SERVER_BIN=<target>/debug/oversqlite-server cargo test -p oversqlite-engine
//! --test server_interop -- --include-ignored` (without the variable the test looks in
//! `$CARGO_TARGET_DIR/debug` and `target/debug`).

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oversqlite_engine::remote::auth::SharedToken;
use oversqlite_engine::remote::transport::UreqTransport;
use oversqlite_engine::report::{AttachOutcome, PushOutcome, RemoteOutcome};
use oversqlite_engine::{AutoDownloadConfig, AutomaticDownloads, SyncClient};
use rusqlite::Connection;
use serde_json::json;

const CONFIG: &str = r#"
app_name = "engine-interop"
schema_version = 1

[[tables]]
schema = "main"
table = "users"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]

[[tables]]
schema = "main"
table = "posts"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "user_id", type = "text", nullable = false },
  { name = "title", type = "text", nullable = false },
]
foreign_keys = [{ column = "user_id", references = "users" }]

[[tables]]
schema = "main"
table = "files"
key = "id"
columns = [
  { name = "id", type = "uuid", nullable = false },
  { name = "data", type = "blob" },
  { name = "ratio", type = "real" },
]
"#;

const SECRET: &str = "engine-interop-secret";

fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OVERSQLITE_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let mut candidates = Vec::new();
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("debug/oversqlite-server"));
    }
    candidates
        .push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/oversqlite-server"));
    candidates.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target-engine/debug/oversqlite-server"),
    );
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("oversqlite-server binary not found: run `cargo build -p oversqlite-server` or set OVERSQLITE_SERVER_BIN")
}

struct Server {
    child: Child,
    url: String,
    _dir: support::TestDb,
    config: PathBuf,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        Self::start_with(CONFIG, extra)
    }

    fn start_with(config_text: &str, extra: &[&str]) -> Self {
        let dir = support::TestDb::new();
        let config = dir.dir.join("server.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(server_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret",
                SECRET,
                "--enable-test-endpoints",
                "--watch-heartbeat-ms",
                "200",
            ])
            .arg("--data")
            .arg(dir.dir.join("server.db"))
            .args(extra)
            // Warnings and failures only (no line per request) on the inherited stderr.
            .env("OVERSQLITE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start oversqlite-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected server banner {line:?}"
        );
        Server {
            child,
            url,
            _dir: dir,
            config,
        }
    }

    fn token(&self, user: &str) -> String {
        let out = Command::new(server_bin())
            .args(["token", "--jwt-secret", SECRET, "--user", user, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn post(&self, path: &str, body: serde_json::Value) {
        let agent = ureq::Agent::new_with_defaults();
        agent
            .post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Device {
    _db: support::TestDb,
    conn: Connection,
    client: SyncClient,
}

fn device(server: &Server, token: &str) -> Device {
    let db = support::TestDb::new();
    let conn = db.connect();
    conn.execute_batch(
        "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
         CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id), title TEXT NOT NULL);
         CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, data BLOB, ratio REAL);",
    )
    .unwrap();
    oversqlite_core::config::init(&conn, &server.url, "main").unwrap();
    for t in ["users", "posts", "files"] {
        oversqlite_core::config::enable_sync(&conn, t, &["id".to_string()]).unwrap();
    }
    support::open(&conn);
    let mut client = SyncClient::with_transport(Arc::new(UreqTransport::default()));
    client.set_token_provider(Arc::new(SharedToken::new(Some(token.to_string()))));
    Device {
        _db: db,
        conn,
        client,
    }
}

#[test]
#[ignore = "needs the oversqlite-server binary (see the file header)"]
fn two_devices_against_a_real_server() {
    let server = Server::start(&[]);
    let token = server.token("alice");

    // Device A seeds the empty scope from rows written before attaching.
    let mut a = device(&server, &token);
    a.conn
        .execute_batch(
            "INSERT INTO users VALUES ('u1', 'Ada'), ('u2', 'R&D <ops>');
             INSERT INTO posts VALUES ('p1', 'u1', 'Hello');
             INSERT INTO files VALUES (x'00112233445566778899aabbccddeeff', x'deadbeef', 1.5);",
        )
        .unwrap();
    assert_eq!(
        a.client.attach(&a.conn, "alice").unwrap().outcome,
        AttachOutcome::SeededFromLocal
    );
    let s = a.client.sync(&a.conn).unwrap();
    assert_eq!(s.push_outcome, PushOutcome::Committed);
    assert_eq!(
        support::scalar_text(
            &a.conn,
            "SELECT pending_initialization_id FROM _sync_attachment_state"
        ),
        ""
    );
    assert_eq!(
        support::scalar_i64(
            &a.conn,
            "SELECT last_bundle_seq_seen FROM _sync_attachment_state"
        ),
        1
    );

    // Device B hydrates from a snapshot.
    let mut b = device(&server, &token);
    let attach = b.client.attach(&b.conn, "alice").unwrap();
    assert_eq!(attach.outcome, AttachOutcome::UsedRemoteState);
    assert_eq!(attach.restore.unwrap().row_count, 4);
    assert_eq!(
        support::app_rows(&b.conn, "users"),
        json!([{"id":"u1","name":"Ada"},{"id":"u2","name":"R&D <ops>"}])
    );
    assert_eq!(
        support::scalar_text(&b.conn, "SELECT hex(data) || ':' || ratio FROM files"),
        "DEADBEEF:1.5"
    );

    // Concurrent edits of one row: B commits first, A's push conflicts, server wins.
    b.conn
        .execute("UPDATE users SET name = 'Ada (B)' WHERE id = 'u1'", [])
        .unwrap();
    b.client.sync(&b.conn).unwrap();
    a.conn
        .execute("UPDATE users SET name = 'Ada (A)' WHERE id = 'u1'", [])
        .unwrap();
    a.conn
        .execute("INSERT INTO posts VALUES ('p2', 'u1', 'Second')", [])
        .unwrap();
    let r = a.client.sync(&a.conn).unwrap();
    assert_eq!(
        r.push_outcome,
        PushOutcome::Committed,
        "the sibling post is re-pushed after the conflict"
    );
    assert_eq!(
        support::app_rows(&a.conn, "users")[0]["name"],
        json!("Ada (B)")
    );
    b.client.sync(&b.conn).unwrap();
    assert_eq!(
        support::scalar_i64(&b.conn, "SELECT COUNT(*) FROM posts"),
        2
    );

    // Deletes travel (child first), and tombstones stay.
    a.conn
        .execute_batch("DELETE FROM posts WHERE user_id = 'u2'; DELETE FROM users WHERE id = 'u2';")
        .unwrap();
    a.client.sync(&a.conn).unwrap();
    let pulled = b.client.sync(&b.conn).unwrap();
    assert_eq!(pulled.remote_outcome, RemoteOutcome::AppliedIncremental);
    assert_eq!(
        support::app_rows(&b.conn, "users"),
        json!([{"id":"u1","name":"Ada (B)"}])
    );
    assert_eq!(
        support::scalar_i64(
            &b.conn,
            "SELECT deleted FROM _sync_row_state WHERE key_json = '{\"id\":\"u2\"}'"
        ),
        1
    );

    // B follows A through the watch stream, in the background on its own connection.
    let (b_path, b_token) = (b._db.path.clone(), token.clone());
    let worker = AutomaticDownloads::start(
        move || {
            let conn = Connection::open(&b_path).map_err(oversqlite_engine::SyncError::from)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(oversqlite_engine::SyncError::from)?;
            let mut client = SyncClient::with_transport(Arc::new(UreqTransport::default()));
            client.set_token_provider(Arc::new(SharedToken::new(Some(b_token))));
            Ok((conn, client))
        },
        "alice",
        AutoDownloadConfig {
            interval: Duration::from_secs(60),
            watch: true,
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(200),
        },
    );
    assert!(b.client.bundle_change_watch_supported(&b.conn).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    a.conn
        .execute("INSERT INTO users VALUES ('u3', 'Grace')", [])
        .unwrap();
    a.client.sync(&a.conn).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::scalar_i64(&b.conn, "SELECT COUNT(*) FROM users WHERE id = 'u3'") == 0 {
        assert!(
            Instant::now() < deadline,
            "the watch never delivered A's commit to B: {:?}",
            worker.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    let stats = worker.stop();
    assert!(stats.events >= 1, "{stats:?}");
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "stopping cancels the open stream promptly"
    );

    // A bounded watch round in the caller's thread: the catch-up event pulls A's write.
    a.conn
        .execute("INSERT INTO users VALUES ('u4', 'Linus')", [])
        .unwrap();
    a.client.sync(&a.conn).unwrap();
    let round = b
        .client
        .watch_for(&b.conn, Duration::from_millis(700))
        .unwrap();
    assert_eq!(
        round.outcome,
        oversqlite_engine::WatchOutcome::Stopped,
        "{round:?}"
    );
    assert!(
        round.events >= 1 && round.changed_tables.contains("users"),
        "{round:?}"
    );
    assert_eq!(
        support::scalar_i64(&b.conn, "SELECT COUNT(*) FROM users WHERE id = 'u4'"),
        1
    );

    // History pruning forces B to rebuild from a snapshot on its next pull.
    let latest = support::scalar_i64(
        &a.conn,
        "SELECT last_bundle_seq_seen FROM _sync_attachment_state",
    );
    server.post(
        "/test/retention-floor",
        json!({"user_id": "alice", "retained_bundle_floor": latest}),
    );
    let r = b.client.pull_to_stable(&b.conn).unwrap();
    assert_eq!(r.outcome, RemoteOutcome::AppliedSnapshot);
    assert_eq!(
        support::app_rows(&b.conn, "users"),
        support::app_rows(&a.conn, "users")
    );

    // Detach rotates the source and wipes managed data.
    let d = a.client.sync_then_detach(&a.conn).unwrap();
    assert!(d.is_success);
    assert_eq!(
        support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM users"),
        0
    );
}

/// A tiny deterministic generator (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random interleavings of writes and syncs on two devices (one resolving conflicts
/// server-wins, the other client-wins) must converge to the server's state.
#[test]
#[ignore = "needs the oversqlite-server binary (see the file header)"]
fn random_two_device_histories_converge() {
    let server = Server::start(&[]);
    for seed in 1..=8u64 {
        let user = format!("user-{seed}");
        let token = server.token(&user);
        let mut devices = [device(&server, &token), device(&server, &token)];
        devices[1]
            .client
            .set_resolver(Arc::new(oversqlite_engine::ClientWins));
        for d in devices.iter_mut() {
            d.client.attach(&d.conn, &user).unwrap();
        }
        let mut rng = Lcg(seed);
        for step in 0..150 {
            let d = &mut devices[rng.next(2) as usize];
            let id = format!("k{}", rng.next(6));
            let action = rng.next(5);
            let sql = match action {
                0 => format!("INSERT OR REPLACE INTO users(id, name) VALUES ('{id}', 'n{step} <&>')"),
                1 => format!("UPDATE users SET name = 'u{step}' WHERE id = '{id}'"),
                2 => format!("DELETE FROM users WHERE id = '{id}'"),
                3 => format!("INSERT OR REPLACE INTO files(id, data, ratio) VALUES (x'000000000000000000000000000000{:02x}', randomblob(4), {step}.25)", rng.next(4)),
                _ => String::new(),
            };
            if sql.is_empty() {
                d.client
                    .sync(&d.conn)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            } else {
                d.conn.execute_batch(&sql).unwrap();
            }
        }
        for round in 0..3 {
            for (i, d) in devices.iter_mut().enumerate() {
                d.client
                    .sync(&d.conn)
                    .unwrap_or_else(|e| panic!("seed {seed} final round {round} device {i}: {e}"));
            }
        }
        for table in ["users", "files"] {
            let q = format!("SELECT json_group_array(json_array(hex(id), {})) FROM (SELECT * FROM {table} ORDER BY id)", if table == "users" { "name" } else { "hex(data), ratio" });
            let a = support::scalar_text(&devices[0].conn, &q);
            let b = support::scalar_text(&devices[1].conn, &q);
            assert_eq!(a, b, "seed {seed}: devices diverge on {table}");
        }
        for d in &devices {
            assert_eq!(
                support::scalar_i64(&d.conn, "SELECT COUNT(*) FROM _sync_dirty_rows")
                    + support::scalar_i64(&d.conn, "SELECT COUNT(*) FROM _sync_outbox_rows"),
                0
            );
        }
    }
}

/// Forwards to the real transport but loses the response of chosen requests after the
/// server has acted on them (a dropped connection at the worst moment).
struct LosingTransport {
    inner: UreqTransport,
    lose: std::sync::Mutex<Vec<&'static str>>,
}

impl oversqlite_engine::remote::transport::Transport for LosingTransport {
    fn send(
        &self,
        req: &oversqlite_engine::remote::transport::HttpRequest,
    ) -> Result<
        oversqlite_engine::remote::transport::HttpResponse,
        oversqlite_engine::remote::transport::TransportError,
    > {
        let resp = self.inner.send(req)?;
        let mut lose = self.lose.lock().unwrap();
        if let Some(i) = lose.iter().position(|suffix| req.path().ends_with(suffix)) {
            lose.remove(i);
            return Err(oversqlite_engine::remote::transport::TransportError {
                message: "connection reset after the server answered".into(),
            });
        }
        Ok(resp)
    }

    fn open_stream(
        &self,
        req: &oversqlite_engine::remote::transport::HttpRequest,
    ) -> Result<
        oversqlite_engine::remote::transport::StreamResponse,
        oversqlite_engine::remote::transport::TransportError,
    > {
        self.inner.open_stream(req)
    }
}

/// Lost responses at the commit and at the committed-rows fetch, then a device restored
/// from an old backup: the engine converges through `already_committed` (strict typed
/// comparison against the server's own rendering) and through source recovery.
#[test]
#[ignore = "needs the oversqlite-server binary (see the file header)"]
fn lost_responses_and_a_restored_backup_converge() {
    let server = Server::start(&[]);
    let token = server.token("bob");
    let mut a = device(&server, &token);
    a.client.set_transport(Arc::new(LosingTransport {
        inner: UreqTransport::default(),
        lose: std::sync::Mutex::new(vec!["/commit", "/rows"]),
    }));
    a.client
        .set_token_provider(Arc::new(SharedToken::new(Some(token.clone()))));
    a.client.settings.retry = oversqlite_engine::remote::transport::RetryPolicy::no_retry();
    a.client.attach(&a.conn, "bob").unwrap();
    a.conn
        .execute_batch("INSERT INTO users VALUES ('u1', 'Ada'); INSERT INTO files VALUES (x'0102030405060708090a0b0c0d0e0f10', x'00ff', 2.0);")
        .unwrap();
    // The commit happens but its answer is lost: the outbox stays prepared.
    assert_eq!(
        a.client.push_pending(&a.conn).unwrap_err().code(),
        "network_error"
    );
    assert_eq!(
        support::scalar_text(&a.conn, "SELECT state FROM _sync_outbox_bundle"),
        "prepared"
    );
    // Next push: already_committed, then the committed-rows answer is lost.
    assert_eq!(
        a.client.push_pending(&a.conn).unwrap_err().code(),
        "network_error"
    );
    // Finally the strict replay matches the server's rendering (2.0 vs 2, base64, UUID).
    let r = a.client.push_pending(&a.conn).unwrap();
    assert_eq!(r.bundle_seq, Some(1));
    assert_eq!(
        support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM _sync_outbox_rows")
            + support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM _sync_dirty_rows"),
        0
    );

    // Two more bundles, then the device is "restored from a backup" that predates them
    // and the server has pruned that history: its sequence can no longer continue.
    a.conn
        .execute("INSERT INTO users VALUES ('u2', 'Bob')", [])
        .unwrap();
    a.client.sync(&a.conn).unwrap();
    a.conn
        .execute("INSERT INTO users VALUES ('u3', 'Cy')", [])
        .unwrap();
    a.client.sync(&a.conn).unwrap();
    let old_source = support::scalar_text(
        &a.conn,
        "SELECT current_source_id FROM _sync_attachment_state",
    );
    server.post(
        "/test/retention-floor",
        json!({"user_id": "bob", "retained_bundle_floor": 3}),
    );
    a.conn.execute_batch(&format!("UPDATE _sync_source_state SET next_source_bundle_id = 2 WHERE source_id = '{old_source}'")).unwrap();
    a.conn
        .execute("INSERT INTO users VALUES ('u4', 'Dee')", [])
        .unwrap();
    assert_eq!(
        a.client.sync(&a.conn).unwrap_err().code(),
        "source_recovery_required"
    );
    let rebuilt = a.client.rebuild(&a.conn).unwrap();
    assert_eq!(rebuilt.outcome, RemoteOutcome::AppliedSnapshot);
    let new_source = support::scalar_text(
        &a.conn,
        "SELECT current_source_id FROM _sync_attachment_state",
    );
    assert_ne!(new_source, old_source);
    // The preserved local row is still visible and is uploaded as bundle 1 of the new source.
    assert_eq!(
        support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM users WHERE id = 'u4'"),
        1
    );
    let s = a.client.sync(&a.conn).unwrap();
    assert_eq!(s.push_outcome, PushOutcome::Committed);

    let mut b = device(&server, &token);
    b.client.attach(&b.conn, "bob").unwrap();
    assert_eq!(
        support::app_rows(&b.conn, "users"),
        support::app_rows(&a.conn, "users")
    );
    assert_eq!(
        support::scalar_i64(&b.conn, "SELECT COUNT(*) FROM users"),
        4
    );
}

fn business_device(server: &Server, token: &str) -> Device {
    let db = support::TestDb::new();
    let conn = db.connect();
    let dir = support::contracts_dir().join("local-schema/business-rich-v0");
    conn.execute_batch(&std::fs::read_to_string(dir.join("schema.sql")).unwrap())
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    oversqlite_core::config::init(&conn, &server.url, config["schema"].as_str().unwrap()).unwrap();
    for t in config["syncTables"].as_array().unwrap() {
        oversqlite_core::config::enable_sync(
            &conn,
            t["tableName"].as_str().unwrap(),
            &[t["syncKeyColumnName"].as_str().unwrap().to_string()],
        )
        .unwrap();
    }
    support::open(&conn);
    let mut client = SyncClient::with_transport(Arc::new(UreqTransport::default()));
    client.set_token_provider(Arc::new(SharedToken::new(Some(token.to_string()))));
    Device {
        _db: db,
        conn,
        client,
    }
}

/// Every table as JSON text (BLOBs as hex), for comparing two devices.
fn business_dump(conn: &Connection) -> String {
    let mut out = String::new();
    for t in [
        "users",
        "posts",
        "categories",
        "teams",
        "team_members",
        "files",
        "file_reviews",
        "typed_rows",
    ] {
        let cols: Vec<String> = {
            let mut st = conn.prepare(&format!("PRAGMA table_info({t})")).unwrap();
            st.query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .map(|c| c.unwrap())
                .collect()
        };
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| format!("CASE typeof({c}) WHEN 'blob' THEN hex({c}) ELSE {c} END"))
            .collect();
        let q = format!(
            "SELECT json_group_array(json_array({})) FROM (SELECT * FROM {t} ORDER BY 1)",
            exprs.join(", ")
        );
        out.push_str(&format!("{t}: {}\n", support::scalar_text(conn, &q)));
    }
    out
}

/// The 8-table `business` schema (TEXT and UUID-BLOB keys, cyclic and cascading FKs,
/// typed columns) against the server's `business.toml`, whose keys and foreign-key columns
/// are uuids as in the reference example server: TEXT keys hold UUID text.
#[test]
#[ignore = "needs the oversqlite-server binary (see the file header)"]
fn business_rich_schema_round_trips() {
    if !support::fixtures_available() {
        return;
    }
    let config = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/config/business.toml"),
    )
    .unwrap();
    let server = Server::start_with(&config, &[]);
    let token = server.token("carol");
    let mut a = business_device(&server, &token);
    a.conn
        .execute_batch(
            "BEGIN;
             INSERT INTO users(id, name, email, created_at, updated_at) VALUES ('10000000-0000-4000-8000-000000000001', 'Ada', 'ada@example.com', '2026-03-24T18:42:11Z', '2026-03-24T18:42:11Z');
             INSERT INTO posts(id, title, content, author_id, created_at, updated_at) VALUES ('20000000-0000-4000-8000-000000000001', 'Hello', 'R&D <ops> \"quoted\"', '10000000-0000-4000-8000-000000000001', '2026-03-24T18:42:11Z', '2026-03-24T18:42:11Z');
             INSERT INTO categories VALUES ('30000000-0000-4000-8000-000000000001', 'Root', NULL), ('30000000-0000-4000-8000-000000000002', 'Child', '30000000-0000-4000-8000-000000000001'), ('30000000-0000-4000-8000-000000000003', 'Grandchild', '30000000-0000-4000-8000-000000000002');
             INSERT INTO teams VALUES ('40000000-0000-4000-8000-000000000001', 'Team', '50000000-0000-4000-8000-000000000001');
             INSERT INTO team_members VALUES ('50000000-0000-4000-8000-000000000001', 'Captain', '40000000-0000-4000-8000-000000000001'), ('50000000-0000-4000-8000-000000000002', 'Member', '40000000-0000-4000-8000-000000000001');
             INSERT INTO files VALUES (x'00112233445566778899aabbccddeeff', 'a.bin', x'deadbeef00');
             INSERT INTO file_reviews VALUES (x'ffeeddccbbaa99887766554433221100', 'ok', x'00112233445566778899aabbccddeeff');
             INSERT INTO typed_rows VALUES ('60000000-0000-4000-8000-000000000001', 'Typed', NULL, 42, 1, 1.25, x'cafebabe', '2026-03-24T18:42:11Z'),
                                           ('60000000-0000-4000-8000-000000000002', 'Nulls', 'note', NULL, 0, NULL, NULL, NULL),
                                           ('60000000-0000-4000-8000-000000000003', 'Whole', '', -7, 1, 3.0, x'', NULL);
             COMMIT;",
        )
        .unwrap();
    assert_eq!(
        a.client.attach(&a.conn, "carol").unwrap().outcome,
        AttachOutcome::SeededFromLocal
    );
    let pushed = a.client.sync(&a.conn).unwrap();
    assert_eq!(pushed.push_outcome, PushOutcome::Committed);

    let mut b = business_device(&server, &token);
    assert_eq!(
        b.client.attach(&b.conn, "carol").unwrap().outcome,
        AttachOutcome::UsedRemoteState
    );
    assert_eq!(business_dump(&b.conn), business_dump(&a.conn));

    // Cascading deletes on both sides, and an update of typed values.
    a.conn
        .execute_batch(
            "PRAGMA foreign_keys = ON;
             DELETE FROM categories WHERE id = '30000000-0000-4000-8000-000000000001';
             DELETE FROM files WHERE name = 'a.bin';
             UPDATE typed_rows SET rating = 0.1, count_value = 9007199254740993, data = x'00' WHERE id = '60000000-0000-4000-8000-000000000001';",
        )
        .unwrap();
    assert_eq!(
        support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM categories")
            + support::scalar_i64(&a.conn, "SELECT COUNT(*) FROM file_reviews"),
        0
    );
    a.client.sync(&a.conn).unwrap();
    b.client.sync(&b.conn).unwrap();
    assert_eq!(business_dump(&b.conn), business_dump(&a.conn));
    assert_eq!(
        support::scalar_i64(
            &a.conn,
            "SELECT rebuild_required FROM _sync_attachment_state"
        ),
        0
    );
}

const CUT_CONFIG: &str = r#"
app_name = "engine-bundle-cut"
schema_version = 1

[[tables]]
schema = "main"
table = "users"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]

[[tables]]
schema = "main"
table = "posts"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "user_id", type = "text", nullable = false },
  { name = "title", type = "text", nullable = false },
]
foreign_keys = [{ column = "user_id", references = "users", on_delete = "cascade" }]

[[tables]]
schema = "main"
table = "categories"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "parent_id", type = "text" },
]
foreign_keys = [{ column = "parent_id", references = "categories", on_delete = "cascade" }]

[[tables]]
schema = "main"
table = "teams"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "captain_member_id", type = "text" },
]
foreign_keys = [{ column = "captain_member_id", references = "team_members" }]

[[tables]]
schema = "main"
table = "team_members"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "team_id", type = "text", nullable = false },
]
foreign_keys = [{ column = "team_id", references = "teams", on_delete = "cascade" }]
"#;

const CUT_TABLES: [&str; 5] = ["users", "posts", "categories", "teams", "team_members"];

/// A device of [`CUT_CONFIG`] whose bundles are capped at `cap` rows.
fn cut_device(server: &Server, token: &str, cap: usize) -> Device {
    let db = support::TestDb::new();
    let conn = db.connect();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
         CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL,
             user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
             title TEXT NOT NULL);
         CREATE TABLE categories (id TEXT PRIMARY KEY NOT NULL,
             parent_id TEXT REFERENCES categories(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE teams (id TEXT PRIMARY KEY NOT NULL,
             captain_member_id TEXT REFERENCES team_members(id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE team_members (id TEXT PRIMARY KEY NOT NULL,
             team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);",
    )
    .unwrap();
    oversqlite_core::config::init(&conn, &server.url, "main").unwrap();
    for t in CUT_TABLES {
        oversqlite_core::config::enable_sync(&conn, t, &["id".to_string()]).unwrap();
    }
    support::open(&conn);
    let mut client = SyncClient::with_transport(Arc::new(UreqTransport::default()));
    client.set_token_provider(Arc::new(SharedToken::new(Some(token.to_string()))));
    client.settings.max_bundle_rows = cap;
    Device {
        _db: db,
        conn,
        client,
    }
}

fn cut_dump(conn: &Connection) -> String {
    CUT_TABLES
        .iter()
        .map(|t| {
            support::scalar_text(
                conn,
                &format!(
                    "SELECT json_group_array(json(r)) FROM (SELECT json_array({}) AS r FROM {t} ORDER BY 1)",
                    cut_columns(t)
                ),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cut_columns(table: &str) -> &'static str {
    match table {
        "users" => "id, name",
        "posts" => "id, user_id, title",
        "categories" => "id, parent_id",
        "teams" => "id, captain_member_id",
        _ => "id, team_id",
    }
}

/// The `(table, op)` of every row of committed bundle `seq`, in bundle order.
fn committed_rows(server: &Server, token: &str, seq: i64) -> Vec<(String, String)> {
    let agent = ureq::Agent::new_with_defaults();
    let text = agent
        .get(&format!(
            "{}/sync/committed-bundles/{seq}/rows?max_rows=5000",
            server.url
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Oversync-Source-ID", "bundle-cut-reader")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap().to_string(),
                r["op"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Issue #16: a backlog larger than `max_bundle_rows` goes up in several bundles, each
/// committed on its own, cut only where no foreign key needs a later bundle: never
/// inside a self-referencing table (categories) or a cycle (teams ↔ team_members).
/// Upserts and deletes both; a second device converges.
#[test]
#[ignore = "needs the oversqlite-server binary (see the file header)"]
fn a_backlog_larger_than_a_bundle_is_pushed_in_bundles_cut_outside_foreign_key_cycles() {
    const CAP: usize = 4;
    let server = Server::start_with(CUT_CONFIG, &[]);
    let token = server.token("dora");
    let mut a = cut_device(&server, &token, CAP);
    a.client.attach(&a.conn, "dora").unwrap();
    let mut sql = String::from("BEGIN;");
    for i in 0..10 {
        sql.push_str(&format!("INSERT INTO users VALUES ('u{i}', 'User {i}');"));
        sql.push_str(&format!(
            "INSERT INTO posts VALUES ('p{i}', 'u{i}', 'Post {i}');"
        ));
    }
    sql.push_str("INSERT INTO categories VALUES ('c0', NULL);");
    for i in 1..8 {
        sql.push_str(&format!(
            "INSERT INTO categories VALUES ('c{i}', 'c{}');",
            i - 1
        ));
    }
    for t in 0..3 {
        sql.push_str(&format!("INSERT INTO teams VALUES ('t{t}', 'm{t}a');"));
        sql.push_str(&format!(
            "INSERT INTO team_members VALUES ('m{t}a', 't{t}'), ('m{t}b', 't{t}');"
        ));
    }
    sql.push_str("COMMIT;");
    a.conn.execute_batch(&sql).unwrap();
    let total = 10 + 10 + 8 + 9;

    let report = a.client.sync(&a.conn).unwrap();
    assert_eq!(report.push_outcome, PushOutcome::Committed);
    assert!(report.complete, "{report:?}");
    let seq = report.status.last_bundle_seq_seen;
    let bundles: Vec<Vec<(String, String)>> = (1..=seq)
        .map(|s| committed_rows(&server, &token, s))
        .collect();
    assert_eq!(bundles.iter().map(Vec::len).sum::<usize>(), total);
    assert!(bundles.len() >= total / 9, "{bundles:?}");
    let holding = |table: &str| -> Vec<usize> {
        (0..bundles.len())
            .filter(|&i| bundles[i].iter().any(|(t, _)| t == table))
            .collect()
    };
    // The self-reference and the cycle each went up in one bundle, whole.
    assert_eq!(holding("categories").len(), 1, "{bundles:?}");
    assert_eq!(holding("teams"), holding("team_members"), "{bundles:?}");
    assert_eq!(holding("teams").len(), 1, "{bundles:?}");
    // Tables in no cycle were cut at the cap.
    for (i, b) in bundles.iter().enumerate() {
        let cyclic = b
            .iter()
            .any(|(t, _)| ["categories", "teams", "team_members"].contains(&t.as_str()));
        assert!(cyclic || b.len() <= CAP, "bundle {i} {b:?}");
    }

    let mut b = cut_device(&server, &token, CAP);
    b.client.attach(&b.conn, "dora").unwrap();
    assert_eq!(cut_dump(&b.conn), cut_dump(&a.conn));

    // Deletes, children first, also cut outside the cycles; the cascades on the server
    // and on the other device agree.
    a.conn
        .execute_batch(
            "DELETE FROM categories WHERE id = 'c0';
             UPDATE teams SET captain_member_id = NULL;
             DELETE FROM teams;
             DELETE FROM users WHERE id IN ('u0', 'u1', 'u2', 'u3', 'u4', 'u5');",
        )
        .unwrap();
    let report = a.client.sync(&a.conn).unwrap();
    assert!(report.complete, "{report:?}");
    assert!(report.status.last_bundle_seq_seen > seq + 1, "{report:?}");
    b.client.sync(&b.conn).unwrap();
    assert_eq!(cut_dump(&b.conn), cut_dump(&a.conn));
    assert_eq!(
        support::scalar_i64(
            &b.conn,
            "SELECT (SELECT COUNT(*) FROM categories) + (SELECT COUNT(*) FROM teams) + (SELECT COUNT(*) FROM team_members)"
        ),
        0
    );
    assert_eq!(
        support::scalar_i64(&b.conn, "SELECT COUNT(*) FROM posts"),
        4
    );
}
