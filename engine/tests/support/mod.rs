//! Shared fixture-runner building blocks (PROTOCOL.md §11.1): databases with the
//! named schemas, the SQL helpers, the normalised runtime-state dump (§11.4), and
//! expected-exception matching.
#![allow(dead_code)]

pub mod fake_server;
pub mod scripts;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use oversqlite_engine::{ErrorKind, SyncError};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

#[path = "../../../tests/contract_fixtures.rs"]
mod contract_fixtures;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared contract fixtures (see `tests/contract_fixtures.rs` for where they are found).
pub fn contracts_dir() -> PathBuf {
    contract_fixtures::dir(&repo())
}

/// Call first in every fixture test: `if !support::fixtures_available() { return; }`.
pub fn fixtures_available() -> bool {
    contract_fixtures::available(&repo())
}

pub fn fixture(rel: &str) -> Value {
    let path = contracts_dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
}

pub fn schema_sql(name: &str) -> Vec<&'static str> {
    match name {
        "users" => vec!["CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)"],
        "users-posts" => vec![
            "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)",
            "CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id), title TEXT NOT NULL)",
        ],
        "immediate-authors-profiles-cycle" => vec![
            "CREATE TABLE authors (id TEXT PRIMARY KEY NOT NULL, profile_id TEXT NOT NULL REFERENCES profiles(id), name TEXT NOT NULL)",
            "CREATE TABLE profiles (id TEXT PRIMARY KEY NOT NULL, author_id TEXT NOT NULL REFERENCES authors(id), bio TEXT NOT NULL)",
        ],
        "typed-rows" => vec![
            "CREATE TABLE typed_rows (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, note TEXT NULL, count_value INTEGER NULL, enabled_flag INTEGER NOT NULL, rating REAL NULL, data BLOB NULL, created_at TEXT NULL)",
        ],
        "counters" => vec!["CREATE TABLE counters (id TEXT PRIMARY KEY NOT NULL, n INTEGER NULL)"],
        other => panic!("unknown fixture schema {other}"),
    }
}

/// The sync tables of a case (`syncTables`), defaulting to `users` keyed by `id`.
pub fn sync_tables(case: &Value) -> Vec<(String, String)> {
    match case.get("syncTables").and_then(|v| v.as_array()) {
        Some(list) => list
            .iter()
            .map(|t| {
                (
                    t["tableName"].as_str().unwrap().to_string(),
                    t["syncKeyColumnName"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        None => vec![("users".into(), "id".into())],
    }
}

/// A database file in a private temporary directory, removed on drop.
pub struct TestDb {
    pub dir: PathBuf,
    pub path: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("oversqlite-engine-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.db");
        TestDb { dir, path }
    }

    pub fn connect(&self) -> Connection {
        let c = Connection::open(&self.path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    /// Creates the app schema and the sync configuration (no `open` yet).
    pub fn create(
        &self,
        schema: &str,
        tables: &[(String, String)],
        remote_schema: &str,
    ) -> Connection {
        let conn = self.connect();
        for sql in schema_sql(schema) {
            conn.execute_batch(sql).unwrap();
        }
        oversqlite_core::config::init(&conn, "https://sync.test/", remote_schema).unwrap();
        for (t, k) in tables {
            oversqlite_core::config::enable_sync(&conn, t, std::slice::from_ref(k)).unwrap();
        }
        conn
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn open(conn: &Connection) {
    oversqlite_core::open::open(conn).unwrap();
}

/// `localSql`: one IMMEDIATE transaction with deferred FKs, triggers active.
pub fn local_sql(conn: &Connection, sql: &[String]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
    for s in sql {
        if let Err(e) = conn.execute_batch(s) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    conn.execute_batch("COMMIT")
}

/// `applyModeSql`: the same wrapped in `apply_mode = 1 … 0`.
pub fn apply_mode_sql(conn: &Connection, sql: &[String]) -> rusqlite::Result<()> {
    let mut all =
        vec!["UPDATE _sync_apply_state SET apply_mode = 1 WHERE singleton_key = 1".to_string()];
    all.extend(sql.iter().cloned());
    all.push("UPDATE _sync_apply_state SET apply_mode = 0 WHERE singleton_key = 1".to_string());
    local_sql(conn, &all)
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

pub fn scalar_i64(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn scalar_text(conn: &Connection, sql: &str) -> String {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

const STATE_TABLES: [(&str, &str, &str); 10] = [
    ("apply_state", "_sync_apply_state", "singleton_key"),
    (
        "attachment_state",
        "_sync_attachment_state",
        "singleton_key",
    ),
    ("source_state", "_sync_source_state", "source_id"),
    ("operation_state", "_sync_operation_state", "singleton_key"),
    ("outbox_bundle", "_sync_outbox_bundle", "singleton_key"),
    (
        "outbox_rows",
        "_sync_outbox_rows",
        "source_bundle_id, row_ordinal",
    ),
    (
        "dirty_rows",
        "_sync_dirty_rows",
        "dirty_ordinal, table_name, key_json",
    ),
    (
        "row_state",
        "_sync_row_state",
        "schema_name, table_name, key_json",
    ),
    (
        "snapshot_stage",
        "_sync_snapshot_stage",
        "snapshot_id, row_ordinal",
    ),
    (
        "managed_tables",
        "_sync_managed_tables",
        "schema_name, table_name",
    ),
];

const SOURCE_COLUMNS: [&str; 4] = [
    "source_id",
    "current_source_id",
    "replaced_by_source_id",
    "replacement_source_id",
];

/// The normalised runtime-state dump of §11.4.
pub fn dump_state(conn: &Connection) -> Value {
    let mut sources: HashMap<String, usize> = HashMap::new();
    let mut state = Map::new();
    for (name, table, order) in STATE_TABLES {
        let int_cols: Vec<bool> = {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info({table})"))
                .unwrap();
            stmt.query_map([], |r| {
                Ok(r.get::<_, String>(2)?.to_ascii_uppercase().contains("INT"))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = Vec::new();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let mut obj = Map::new();
            for (i, col) in names.iter().enumerate() {
                let raw = r.get_ref(i).unwrap();
                let v = match raw {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) if int_cols[i] => json!(n),
                    ValueRef::Integer(n) => Value::String(n.to_string()),
                    ValueRef::Real(f) => json!(f),
                    ValueRef::Text(t) => {
                        let s = String::from_utf8_lossy(t).into_owned();
                        if col == "created_at" || col == "updated_at" {
                            Value::String("<timestamp>".into())
                        } else if (col == "canonical_request_hash" || col == "remote_bundle_hash")
                            && !s.is_empty()
                        {
                            Value::String("<hash>".into())
                        } else if SOURCE_COLUMNS.contains(&col.as_str()) && !s.is_empty() {
                            let next = sources.len() + 1;
                            let n = *sources.entry(s).or_insert(next);
                            Value::String(format!("<source-{n}>"))
                        } else if int_cols[i] {
                            s.parse::<i64>()
                                .map(|n| json!(n))
                                .unwrap_or(Value::String(s))
                        } else {
                            Value::String(s)
                        }
                    }
                    ValueRef::Blob(b) => {
                        Value::String(b.iter().map(|x| format!("{x:02x}")).collect())
                    }
                };
                obj.insert(col.clone(), v);
            }
            rows.push(Value::Object(obj));
        }
        state.insert(name.to_string(), Value::Array(rows));
    }
    Value::Object(state)
}

/// Rows of an app table as the fixtures show them (`SELECT <cols> FROM t ORDER BY id`).
pub fn app_rows(conn: &Connection, table: &str) -> Value {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY id"))
        .unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut q = stmt.query([]).unwrap();
    let mut rows = Vec::new();
    while let Some(r) = q.next().unwrap() {
        let mut obj = Map::new();
        for (i, col) in names.iter().enumerate() {
            let v = match r.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            };
            obj.insert(col.clone(), v);
        }
        rows.push(Value::Object(obj));
    }
    Value::Array(rows)
}

/// Fixture app-state key → table name.
pub fn app_table_name(key: &str) -> &str {
    match key {
        "typedRows" => "typed_rows",
        other => other,
    }
}

/// Does `result` match the fixture's `expectedException` category (§11.1)?
pub fn check_exception<T: std::fmt::Debug>(
    label: &str,
    expected: &str,
    contains: Option<&str>,
    result: &Result<T, SyncError>,
) {
    match (expected, result) {
        ("none", Ok(_)) => {}
        ("none", Err(e)) => panic!("{label}: expected success, got {e}"),
        (_, Ok(v)) => panic!("{label}: expected {expected}, got success {v:?}"),
        (category, Err(e)) => {
            let ok = match category {
                "any_error" => true,
                "http_error" => matches!(
                    e.kind,
                    ErrorKind::HttpError
                        | ErrorKind::NetworkError
                        | ErrorKind::AuthenticationFailed
                ),
                "protocol_error" => matches!(
                    e.kind,
                    ErrorKind::ProtocolError | ErrorKind::InvalidConflictResolution
                ),
                code => e.code() == code,
            };
            assert!(ok, "{label}: expected {expected}, got {e}");
            if let Some(c) = contains {
                assert!(
                    e.message.contains(c),
                    "{label}: error {e} does not contain {c:?}"
                );
            }
        }
    }
}

/// A client over the fake server with fixture settings: no transient retry,
/// instant committed-bundle visibility retries.
pub fn client_for(server: &fake_server::FakeServer) -> oversqlite_engine::SyncClient {
    let mut c = oversqlite_engine::SyncClient::with_transport(std::sync::Arc::new(
        server.transport.clone(),
    ));
    c.settings.retry = oversqlite_engine::transport::RetryPolicy::no_retry();
    c.settings.committed_not_found_backoff = vec![std::time::Duration::ZERO; 5];
    c
}

/// A device for the common case: a fresh database with `users(id, name)` opened for
/// sync under schema `main`, and a client over `server` (not attached yet).
pub fn users_device(
    server: &fake_server::FakeServer,
) -> (TestDb, Connection, oversqlite_engine::SyncClient) {
    let db = TestDb::new();
    let conn = db.create("users", &[("users".into(), "id".into())], "main");
    open(&conn);
    let client = client_for(server);
    (db, conn, client)
}

/// [`users_device`] attached as `user-1`.
pub fn attached_users_device(
    server: &fake_server::FakeServer,
) -> (TestDb, Connection, oversqlite_engine::SyncClient) {
    let (db, conn, mut client) = users_device(server);
    client.attach(&conn, "user-1").unwrap();
    (db, conn, client)
}
