//! Test harness: starts the real `oversqlite-server` binary on a free loopback port with a
//! private temporary store, and talks to it with a blocking HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SECRET: &str = "test-secret";
pub const BIN: &str = env!("CARGO_BIN_EXE_oversqlite-server");

/// The suites' configuration: the business tables with text keys (readable ids like "u1").
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/business-text-keys.toml")
}

/// The shipped example configuration (uuid keys, as the reference example server).
pub fn example_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/business.toml")
}

/// A unique, empty temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "oversqlite-server-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    pub data: PathBuf,
    /// The config file it runs with; change it and restart to try another schema.
    pub config: PathBuf,
    args: Vec<String>,
    _dir: Option<TempDir>,
}

impl Server {
    /// Starts a server with test endpoints, a 200 ms watch heartbeat and `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let dir = TempDir::new();
        let data = dir.0.join("store.db");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let config = config_path();
        let (child, base) = spawn(&config, &data, &args);
        Server {
            child,
            base,
            data,
            config,
            args,
            _dir: Some(dir),
        }
    }

    /// Simulates a crash (SIGKILL) and starts a new process on the same store.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// SIGKILL only; the store can then be inspected or edited until [`Server::restart`].
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts a new process on the same store (after [`Server::kill`]).
    pub fn restart(&mut self) {
        let (child, base) = spawn(&self.config, &self.data, &self.args);
        self.child = child;
        self.base = base;
    }

    /// The server process id (to read its memory use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the listener, for raw socket tests.
    pub fn host(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn signin(&self, user: &str) -> String {
        let (status, body) = request(
            &self.url("/dummy-signin"),
            "POST",
            &[],
            Some(&json!({"user": user, "password": "x"}).to_string()),
        );
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["expires_in"], 300);
        assert_eq!(value["user"], user);
        value["token"].as_str().unwrap().to_string()
    }

    pub fn client(&self, user: &str, source: &str) -> Client {
        Client {
            base: self.base.clone(),
            token: self.signin(user),
            source: source.to_string(),
            user: user.to_string(),
        }
    }

    pub fn post_test(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = request(&self.url(path), "POST", &[], Some(&body.to_string()));
        (status, parse(&text))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server with `config` on the store `data` (kept by the caller).
pub fn start_with_config(config: &Path, data: &Path) -> Server {
    let (child, base) = spawn(config, data, &[]);
    Server {
        child,
        base,
        data: data.to_path_buf(),
        config: config.to_path_buf(),
        args: Vec::new(),
        _dir: None,
    }
}

fn spawn(config: &Path, data: &Path, extra: &[String]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
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
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn oversqlite-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(
        addr.starts_with("http://127.0.0.1:"),
        "unexpected start-up line {line:?}"
    );
    (child, addr)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// One HTTP request; returns status and body text (any status).
pub fn request(
    url: &str,
    method: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> (u16, String) {
    request_full(url, method, headers, body)
        .map(|(s, _, b)| (s, b))
        .unwrap()
}

/// Like [`request`], also returning the Content-Type.
pub fn request_full(
    url: &str,
    method: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> Result<(u16, String, String), ureq::Error> {
    let agent = agent();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            for (k, v) in headers {
                r = r.header(*k, v.as_str());
            }
            r.call()?
        }
        ("DELETE", _) => {
            let mut r = agent.delete(url);
            for (k, v) in headers {
                r = r.header(*k, v.as_str());
            }
            r.call()?
        }
        (_, body) => {
            let mut r = if method == "PUT" {
                agent.put(url)
            } else {
                agent.post(url)
            };
            for (k, v) in headers {
                r = r.header(*k, v.as_str());
            }
            match body {
                Some(b) => r.header("Content-Type", "application/json").send(b)?,
                None => r.send_empty()?,
            }
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, content_type, text))
}

pub fn parse(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// A sync client for one (user, source).
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    pub source: String,
    pub user: String,
}

impl Client {
    pub fn with_source(&self, source: &str) -> Client {
        Client {
            source: source.to_string(),
            ..self.clone()
        }
    }

    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Authorization", format!("Bearer {}", self.token)),
            ("Oversync-Source-ID", self.source.clone()),
        ]
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, b) = request(
            &format!("{}{}", self.base, path),
            "GET",
            &self.headers(),
            None,
        );
        (s, parse(&b))
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b) = request(
            &format!("{}{}", self.base, path),
            "POST",
            &self.headers(),
            Some(&body.to_string()),
        );
        (s, parse(&b))
    }

    pub fn post_raw(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        let (s, b) = request(
            &format!("{}{}", self.base, path),
            "POST",
            &self.headers(),
            body,
        );
        (s, parse(&b))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let (s, b) = request(
            &format!("{}{}", self.base, path),
            "DELETE",
            &self.headers(),
            None,
        );
        (s, parse(&b))
    }

    pub fn connect(&self, pending: bool) -> Value {
        let (s, v) = self.post("/sync/connect", json!({"has_local_pending_rows": pending}));
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Creates a session; returns (status, body).
    pub fn create(&self, source_bundle_id: i64, planned: i64) -> (u16, Value) {
        self.post(
            "/sync/push-sessions",
            json!({"source_bundle_id": source_bundle_id, "planned_row_count": planned}),
        )
    }

    pub fn chunk(&self, push_id: &str, start: i64, rows: &[Value]) -> (u16, Value) {
        self.post(
            &format!("/sync/push-sessions/{push_id}/chunks"),
            json!({"start_row_ordinal": start, "rows": rows}),
        )
    }

    pub fn commit(&self, push_id: &str) -> (u16, Value) {
        self.post_raw(&format!("/sync/push-sessions/{push_id}/commit"), None)
    }

    /// Full push of one bundle in one chunk; returns the commit (status, body).
    pub fn push(&self, source_bundle_id: i64, rows: &[Value]) -> (u16, Value) {
        let (s, v) = self.create(source_bundle_id, rows.len() as i64);
        assert_eq!(s, 200, "create: {v}");
        assert_eq!(v["status"], "staging", "{v}");
        let push_id = v["push_id"].as_str().unwrap().to_string();
        let (s, v) = self.chunk(&push_id, 0, rows);
        assert_eq!(s, 200, "chunk: {v}");
        self.commit(&push_id)
    }

    pub fn push_ok(&self, source_bundle_id: i64, rows: &[Value]) -> Value {
        let (s, v) = self.push(source_bundle_id, rows);
        assert_eq!(s, 200, "commit: {v}");
        v
    }

    pub fn pull(&self, after: i64) -> (u16, Value) {
        self.get(&format!(
            "/sync/pull?after_bundle_seq={after}&max_bundles=1000"
        ))
    }
}

/// A users row (text key) in wire form.
pub fn user_row(op: &str, id: &str, name: &str, base: i64) -> Value {
    let mut row = json!({"schema": "business", "table": "users", "key": {"id": id}, "op": op, "base_row_version": base});
    if op != "DELETE" {
        row["payload"] = json!({"id": id, "name": name, "email": format!("{id}@example.test"),
                                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"});
    }
    row
}

/// Asserts an error body `{"error": code, "message": ...}` with the given status.
#[track_caller]
pub fn assert_error(result: (u16, Value), status: u16, code: &str) -> Value {
    let (s, v) = result;
    assert_eq!(
        (s, v["error"].as_str().unwrap_or("")),
        (status, code),
        "body: {v}"
    );
    assert!(v["message"].is_string(), "message missing: {v}");
    v
}

/// Minimal SSE reader over a raw socket (the stream never ends, so it reads with a timeout).
pub struct WatchStream {
    stream: TcpStream,
    pub buffer: String,
}

impl WatchStream {
    pub fn open(client: &Client, after: i64) -> WatchStream {
        let host = client.base.trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        write!(
            stream,
            "GET /sync/watch?after_bundle_seq={after} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nOversync-Source-ID: {}\r\n\r\n",
            client.token, client.source
        )
        .unwrap();
        WatchStream {
            stream,
            buffer: String::new(),
        }
    }

    /// Reads until `needle` has appeared `occurrences` times or `timeout` passes.
    pub fn wait_for(&mut self, needle: &str, occurrences: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            if self.buffer.matches(needle).count() >= occurrences {
                return true;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return self.buffer.matches(needle).count() >= occurrences,
                Ok(n) => self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(_) => {}
            }
        }
        self.buffer.matches(needle).count() >= occurrences
    }
}
