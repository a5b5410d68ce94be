//! A real `oversqlite-server` process for end-to-end suites: free loopback port, test
//! endpoints on, a temporary store, bearer tokens minted with the server's own `token`
//! command. The process is killed (and its directory removed) on drop.
//!
//! Needs the binary: `cargo build -p oversqlite-server` (found at `target/debug/` of this
//! workspace, or `$OVERSQLITE_SERVER_BIN`).
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

/// Server-side schema of [`DEFAULT_CONFIG`]; clients use it as `oversqlite_init(url, 'main')`.
pub const SCHEMA: &str = "main";

/// The configuration shared with the Python, shell and Node suites
/// (`tests/server-config.toml`): `users(id, name)` and `posts(id, user_id → users, title)`
/// (the tables these suites use), plus `notes` and `files` of the other suites.
pub const DEFAULT_CONFIG: &str = include_str!("../../server-config.toml");

/// The client-side tables matching [`DEFAULT_CONFIG`].
pub const CLIENT_DDL: &str = "
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id), title TEXT NOT NULL);
";

const SECRET: &str = "oversqlite-e2e-secret";

/// `$OVERSQLITE_SERVER_BIN`, else `target/debug/oversqlite-server` of this workspace.
pub fn server_bin() -> PathBuf {
    let path = match std::env::var("OVERSQLITE_SERVER_BIN") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/oversqlite-server")
        }
    };
    assert!(
        path.is_file(),
        "server not found at {}: build it first with `cargo build -p oversqlite-server` (or set OVERSQLITE_SERVER_BIN)",
        path.display()
    );
    path
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("oversqlite-e2e-server-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TestServer {
    /// `http://127.0.0.1:<port>` (no trailing slash): pass to `oversqlite_init`.
    pub url: String,
    /// `127.0.0.1:<port>`: a restart binds the same address.
    pub addr: String,
    dir: PathBuf,
    config: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl TestServer {
    /// [`DEFAULT_CONFIG`], default flags.
    pub fn start() -> Self {
        Self::start_with(DEFAULT_CONFIG, &[])
    }

    /// Any configuration text and extra `serve` flags (e.g. `--retained-window 2`).
    pub fn start_with(config_text: &str, extra: &[&str]) -> Self {
        let dir = fresh_dir();
        let config = dir.join("server.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut server = TestServer {
            url: String::new(),
            addr: "127.0.0.1:0".to_string(),
            dir,
            config,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new(server_bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args([
                "--listen",
                &self.addr,
                "--jwt-secret",
                SECRET,
                "--enable-test-endpoints",
                "--watch-heartbeat-ms",
                "200",
            ])
            .args(["--shutdown-grace-ms", "0"])
            .arg("--data")
            .arg(self.store_path())
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oversqlite-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected server banner {line:?}"
        );
        self.addr = url.trim_start_matches("http://").to_string();
        self.url = url;
        self.child = Some(child);
    }

    /// The server's SQLite store (open it read-only to inspect `_oversync_*` tables).
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("server.db")
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// A valid bearer token (HS256, 1 h) for `user`.
    pub fn token(&self, user: &str) -> String {
        let out = Command::new(server_bin())
            .args(["token", "--jwt-secret", SECRET, "--user", user, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A well-formed token signed with another secret: the server answers 401.
    pub fn bad_token(&self, user: &str) -> String {
        let out = Command::new(server_bin())
            .args([
                "token",
                "--jwt-secret",
                "not-the-server-secret",
                "--user",
                user,
                "--config",
            ])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut resp = result.expect("request to the test server");
        let status = resp.status().as_u16();
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST <path>` with a JSON body, no auth (test endpoints): status and JSON answer.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::answer(
            Self::agent()
                .post(&format!("{}{path}", self.url))
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    /// `GET <path>`, optionally with a bearer token and a source id.
    pub fn get(&self, path: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
        let mut req = Self::agent().get(&format!("{}{path}", self.url));
        if let Some((token, source)) = auth {
            req = req
                .header("Authorization", &format!("Bearer {token}"))
                .header("Oversync-Source-ID", source);
        }
        Self::answer(req.call())
    }

    /// Commits a server-originated bundle for `user` (`POST /test/server-bundle`); panics
    /// unless the server answers 200. `rows` use the push-row shape, see server/README.md.
    pub fn server_bundle(&self, user: &str, rows: Value) -> Value {
        let (status, body) = self.post(
            "/test/server-bundle",
            json!({"user_id": user, "rows": rows}),
        );
        assert_eq!(status, 200, "server-bundle failed: {body}");
        body
    }

    /// `server_bundle` of single-row INSERTs/UPDATEs into `main.users`.
    pub fn upsert_user(&self, user: &str, op: &str, id: &str, name: &str) -> Value {
        self.server_bundle(
            user,
            json!([{"schema": SCHEMA, "table": "users", "key": {"id": id}, "op": op, "payload": {"id": id, "name": name}}]),
        )
    }

    /// Prunes history: `POST /test/retention-floor`.
    pub fn set_retention_floor(&self, user: &str, floor: i64) -> Value {
        let (status, body) = self.post(
            "/test/retention-floor",
            json!({"user_id": user, "retained_bundle_floor": floor}),
        );
        assert_eq!(status, 200, "retention-floor failed: {body}");
        body
    }

    /// Wipes every user's data (`POST /test/reset`).
    pub fn reset(&self) {
        let (status, body) = self.post("/test/reset", json!({}));
        assert_eq!(status, 200, "reset failed: {body}");
    }

    /// Open `/sync/watch` streams of `user`.
    pub fn watch_subscribers(&self, user: &str) -> i64 {
        let (status, body) = self.get(&format!("/test/watch-subscribers?user_id={user}"), None);
        assert_eq!(status, 200, "watch-subscribers failed: {body}");
        body["subscriber_count"].as_i64().unwrap()
    }

    /// Runs a read-only query on the store; each row as a JSON array.
    pub fn query_store(&self, sql: &str) -> Vec<Vec<Value>> {
        let conn = rusqlite::Connection::open_with_flags(
            self.store_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(v) => json!(v),
                            rusqlite::types::ValueRef::Real(v) => json!(v),
                            rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                            rusqlite::types::ValueRef::Blob(b) => json!(format!("{b:?}")),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        rows
    }

    /// Committed bundles of `user` (0 for an unknown user).
    pub fn bundle_count(&self, user: &str) -> i64 {
        let rows = self.query_store(&format!(
            "SELECT count(*) FROM _oversync_bundle_log WHERE user_id = '{}'",
            user.replace('\'', "''")
        ));
        rows[0][0].as_i64().unwrap()
    }

    /// Visible rows of a registered table for `user`, ordered by key, as `[key, ...]` JSON.
    pub fn rows(&self, table: &str, user: &str, columns: &str) -> Vec<Vec<Value>> {
        self.query_store(&format!(
            "SELECT {columns} FROM \"{SCHEMA}.{table}\" WHERE _sync_scope_id = '{}' ORDER BY 1",
            user.replace('\'', "''")
        ))
    }

    /// `kill -9`: the process dies without any shutdown work.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same address and store (after `kill9`, or kills first).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
