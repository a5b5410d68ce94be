//! Shared by the `sql_sync_*` suites: a device = a database file with the default
//! schema, configured for the test server and opened, driven only through SQL.
#![allow(dead_code)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use oversqlite_tests::host;
use oversqlite_tests::server::{TestServer, CLIENT_DDL, SCHEMA};
use rusqlite::Connection;
use serde_json::Value;

pub struct Device {
    pub conn: Connection,
    pub path: PathBuf,
}

fn unique(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A configured, opened device database with no token.
pub fn bare_device(server: &TestServer, name: &str) -> Device {
    let path = host::temp_db(&unique(name));
    let conn = host::file(&path);
    conn.execute_batch(CLIENT_DDL).unwrap();
    host::call(
        &conn,
        "SELECT oversqlite_init(?1, ?2)",
        &[&server.url, &SCHEMA],
    )
    .unwrap();
    for t in ["users", "posts"] {
        host::call(&conn, "SELECT oversqlite_enable_sync(?1)", &[&t]).unwrap();
    }
    host::open(&conn).unwrap();
    Device { conn, path }
}

/// A device with a valid token for `user` set on its connection.
pub fn device(server: &TestServer, name: &str, user: &str) -> Device {
    let d = bare_device(server, name);
    let token = server.token(user);
    d.sql("SELECT oversqlite_set_token(?1)", &[&token]).unwrap();
    d
}

impl Device {
    /// Runs a one-value SELECT and parses its TEXT as JSON; errors as text.
    pub fn sql(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Value, String> {
        let text =
            host::call(&self.conn, sql, params)?.ok_or_else(|| format!("{sql} returned NULL"))?;
        serde_json::from_str(&text).map_err(|e| format!("{sql} returned non-JSON {text:?}: {e}"))
    }

    /// `sql` that must succeed.
    pub fn ok(&self, sql: &str) -> Value {
        self.sql(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `sql` that must fail; the error text.
    pub fn err(&self, sql: &str) -> String {
        match self.sql(sql, &[]) {
            Ok(v) => panic!("{sql} should fail, returned {v}"),
            Err(e) => e,
        }
    }

    pub fn exec(&self, sql: &str) {
        self.conn
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// `users` rows as `id=name` strings, ordered by id.
    pub fn users(&self) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare("SELECT id || '=' || name FROM users ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A second connection to the same file (the extension loaded, no token).
    pub fn reopen(&self) -> Connection {
        host::file(&self.path)
    }
}
