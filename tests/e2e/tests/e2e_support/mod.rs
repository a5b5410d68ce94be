//! Shared by the end-to-end (`e2e_*`, `fk_*`) and crash-safety (`crash_*`) suites: a server
//! configuration with FK-linked tables, TEXT/TEXT-UUID/BLOB-UUID keys and every column
//! type ([`RICH`]; other suites bring their own [`Schema`]); devices (database files with
//! the built extension loaded); canonical dumps of a device's tables and of the server's
//! rows, so convergence is one equality; a seeded random generator and a resolver for the
//! randomised suites.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use oversqlite_tests::host;
use oversqlite_tests::server::TestServer;
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use serde_json::Value;

pub const CONFIG: &str = r#"
app_name = "oversqlite-e2e-rich"
schema_version = 1

[[tables]]
schema = "main"
table = "users"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
  { name = "email", type = "text" },
]

[[tables]]
schema = "main"
table = "posts"
key = "id"
columns = [
  { name = "id", type = "uuid", nullable = false },
  { name = "user_id", type = "text", nullable = false },
  { name = "title", type = "text", nullable = false },
  { name = "created_at", type = "timestamp", nullable = false },
]
foreign_keys = [{ column = "user_id", references = "users", on_delete = "cascade" }]

[[tables]]
schema = "main"
table = "files"
key = "id"
columns = [
  { name = "id", type = "uuid", nullable = false },
  { name = "post_id", type = "uuid" },
  { name = "name", type = "text", nullable = false },
  { name = "data", type = "blob" },
]
foreign_keys = [{ column = "post_id", references = "posts", on_delete = "cascade" }]

[[tables]]
schema = "main"
table = "file_reviews"
key = "id"
columns = [
  { name = "id", type = "uuid", nullable = false },
  { name = "file_id", type = "uuid", nullable = false },
  { name = "review", type = "text", nullable = false },
]
foreign_keys = [{ column = "file_id", references = "files", on_delete = "cascade" }]

[[tables]]
schema = "main"
table = "typed_rows"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "count_value", type = "integer" },
  { name = "rating", type = "real" },
  { name = "data", type = "blob" },
  { name = "note", type = "text" },
  { name = "happened_at", type = "timestamp" },
]
"#;

/// Local tables matching [`CONFIG`]: `posts.id` is a TEXT UUID, `files.id` and
/// `file_reviews.id`/`file_id` are 16-byte BLOB UUIDs, FKs cascade as on the server.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT);
CREATE TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (id BLOB PRIMARY KEY NOT NULL,
    post_id TEXT REFERENCES posts(id) ON DELETE CASCADE, name TEXT NOT NULL, data BLOB);
CREATE TABLE IF NOT EXISTS file_reviews (id BLOB PRIMARY KEY NOT NULL,
    file_id BLOB NOT NULL REFERENCES files(id) ON DELETE CASCADE, review TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS typed_rows (id TEXT PRIMARY KEY NOT NULL, count_value INTEGER,
    rating REAL, data BLOB, note TEXT, happened_at TEXT);
";

/// How a column is compared between a device and the server.
#[derive(Clone, Copy, PartialEq)]
pub enum Col {
    Plain(&'static str),
    /// A 16-byte BLOB locally, dashed UUID text on the server.
    UuidBlob(&'static str),
}

/// A synced table and how its columns are compared.
pub type Table = (&'static str, &'static [Col]);

/// The device side of a server configuration: the tables' DDL and the synced tables, in
/// the order they are enabled for sync and dumped.
pub struct Schema {
    pub ddl: &'static str,
    pub tables: &'static [Table],
}

/// [`CONFIG`]'s tables.
pub const RICH: Schema = Schema {
    ddl: DDL,
    tables: TABLES,
};

pub const TABLES: &[Table] = &[
    (
        "users",
        &[Col::Plain("id"), Col::Plain("name"), Col::Plain("email")],
    ),
    (
        "posts",
        &[
            Col::Plain("id"),
            Col::Plain("user_id"),
            Col::Plain("title"),
            Col::Plain("created_at"),
        ],
    ),
    (
        "files",
        &[
            Col::UuidBlob("id"),
            Col::Plain("post_id"),
            Col::Plain("name"),
            Col::Plain("data"),
        ],
    ),
    (
        "file_reviews",
        &[
            Col::UuidBlob("id"),
            Col::UuidBlob("file_id"),
            Col::Plain("review"),
        ],
    ),
    (
        "typed_rows",
        &[
            Col::Plain("id"),
            Col::Plain("count_value"),
            Col::Plain("rating"),
            Col::Plain("data"),
            Col::Plain("note"),
            Col::Plain("happened_at"),
        ],
    ),
];

/// A database file of its own, in a directory unique to this test process and `tag`.
pub fn db_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oversqlite-e2e-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.db"));
    remove_db(&path);
    path
}

pub fn remove_db(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm", "-oversqlite.lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Copies a closed database file (and nothing else: no WAL is left after a clean close).
pub fn copy_db(from: &Path, to: &Path) {
    remove_db(to);
    std::fs::copy(from, to).unwrap();
}

/// One device: a connection to its own file with the extension loaded, the tables
/// created, sync configured and opened, and a bearer token set (not yet attached).
pub struct Device {
    pub conn: Connection,
    pub path: PathBuf,
    pub schema: &'static Schema,
}

impl Device {
    /// [`Device::open_with`] the [`RICH`] schema.
    pub fn open(path: &Path, server: &TestServer, user: &str) -> Device {
        Device::open_with(path, server, user, &RICH)
    }

    /// A device with `schema`'s tables, `PRAGMA foreign_keys = ON` (as apps run).
    pub fn open_with(
        path: &Path,
        server: &TestServer,
        user: &str,
        schema: &'static Schema,
    ) -> Device {
        let conn = host::file(path);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        conn.execute_batch(schema.ddl).unwrap();
        let d = Device {
            conn,
            path: path.to_path_buf(),
            schema,
        };
        d.sql(&format!("SELECT oversqlite_init('{}', 'main')", server.url));
        for (t, _) in schema.tables {
            d.sql(&format!("SELECT oversqlite_enable_sync('{t}')"));
        }
        d.sql("SELECT oversqlite_open()");
        d.set_token(&server.token(user));
        d
    }

    /// `open` plus `oversqlite_attach(user)`; returns the device and the attach report.
    pub fn attached(path: &Path, server: &TestServer, user: &str) -> (Device, Value) {
        Device::attached_with(path, server, user, &RICH)
    }

    pub fn attached_with(
        path: &Path,
        server: &TestServer,
        user: &str,
        schema: &'static Schema,
    ) -> (Device, Value) {
        let d = Device::open_with(path, server, user, schema);
        let report = d.json(&format!("SELECT oversqlite_attach('{user}')"));
        assert_eq!(report["status"], "connected", "{report}");
        (d, report)
    }

    pub fn set_token(&self, token: &str) {
        self.conn
            .query_row("SELECT oversqlite_set_token(?1)", [token], |_| Ok(()))
            .unwrap();
    }

    /// Runs a one-value SELECT; the value as text (or NULL), or the SQLite error text.
    pub fn try_sql(&self, sql: &str) -> Result<Option<String>, String> {
        host::call(&self.conn, sql, &[])
    }

    pub fn sql(&self, sql: &str) -> Option<String> {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A SQL function's JSON report.
    pub fn json(&self, sql: &str) -> Value {
        let text = self
            .sql(sql)
            .unwrap_or_else(|| panic!("{sql} returned NULL"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{sql}: {e}: {text}"))
    }

    pub fn try_json(&self, sql: &str) -> Result<Value, String> {
        self.try_sql(sql)
            .map(|t| serde_json::from_str(&t.unwrap_or_default()).unwrap_or(Value::Null))
    }

    pub fn exec(&self, sql: &str) {
        self.conn
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn sync(&self) -> Value {
        self.json("SELECT oversqlite_sync()")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn pending(&self) -> i64 {
        self.count("SELECT count(*) FROM oversqlite_pending")
    }

    /// Every synced table as sorted canonical row strings.
    pub fn dump(&self) -> Vec<(String, Vec<String>)> {
        dump_tables(&self.conn, self.schema.tables)
    }

    pub fn close(self) {
        self.conn.close().map_err(|(_, e)| e).unwrap();
    }
}

fn row_sql(cols: &[Col], server: bool) -> String {
    cols.iter()
        .map(|c| match (c, server) {
            (Col::Plain(n), _) | (Col::UuidBlob(n), false) => format!("quote(\"{n}\")"),
            (Col::UuidBlob(n), true) => {
                format!("CASE WHEN \"{n}\" IS NULL THEN 'NULL' ELSE 'X''' || upper(replace(\"{n}\", '-', '')) || '''' END")
            }
        })
        .collect::<Vec<_>>()
        .join(" || '|' || ")
}

/// [`RICH`]'s tables of `conn`, as [`Device::dump`].
pub fn dump_device(conn: &Connection) -> Vec<(String, Vec<String>)> {
    dump_tables(conn, TABLES)
}

pub fn dump_tables(conn: &Connection, tables: &[Table]) -> Vec<(String, Vec<String>)> {
    tables
        .iter()
        .map(|(t, cols)| {
            let sql = format!("SELECT {} FROM \"{t}\"", row_sql(cols, false));
            let mut stmt = conn.prepare(&sql).unwrap();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            rows.sort();
            (t.to_string(), rows)
        })
        .collect()
}

/// The server's visible rows of `user` in [`RICH`]'s tables, as [`Device::dump`].
pub fn dump_server(server: &TestServer, user: &str) -> Vec<(String, Vec<String>)> {
    dump_server_tables(server, user, TABLES)
}

/// The server's visible rows of `user` in `tables`, in the same canonical form as
/// [`Device::dump`].
pub fn dump_server_tables(
    server: &TestServer,
    user: &str,
    tables: &[Table],
) -> Vec<(String, Vec<String>)> {
    tables
        .iter()
        .map(|(t, cols)| {
            let sql = format!(
                "SELECT {} FROM \"main.{t}\" WHERE _sync_scope_id = '{}'",
                row_sql(cols, true),
                user.replace('\'', "''")
            );
            let mut rows: Vec<String> = server
                .query_store(&sql)
                .into_iter()
                .map(|r| r[0].as_str().unwrap().to_string())
                .collect();
            rows.sort();
            (t.to_string(), rows)
        })
        .collect()
}

pub fn row_total(dump: &[(String, Vec<String>)]) -> usize {
    dump.iter().map(|(_, r)| r.len()).sum()
}

/// `(table, key, op)` groups that occur more than once in the server's committed bundle
/// rows of `user`: a change uploaded twice shows up here.
pub fn duplicated_bundle_rows(server: &TestServer, user: &str) -> Vec<Vec<Value>> {
    server.query_store(&format!(
        "SELECT table_name, key, op, payload, count(*) FROM _oversync_bundle_rows WHERE user_id = '{}'
         GROUP BY table_name, key, op, payload HAVING count(*) > 1",
        user.replace('\'', "''")
    ))
}

/// How many committed bundle rows of `user` carry `(table, key, op)`.
pub fn bundle_row_count(server: &TestServer, user: &str, table: &str, key: &str, op: &str) -> i64 {
    server.query_store(&format!(
        "SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = '{}' AND table_name LIKE '%{table}' AND key = '{key}' AND op = '{op}'",
        user.replace('\'', "''")
    ))[0][0]
        .as_i64()
        .unwrap()
}

/// Asserts every device and the server hold the same rows.
pub fn assert_converged(server: &TestServer, user: &str, devices: &[&Device]) {
    for d in devices {
        assert_eq!(
            d.dump(),
            dump_server_tables(server, user, d.schema.tables),
            "device {} differs from the server",
            d.path.display()
        );
    }
}

/// Committed rows of `user` that repeat the previous committed row of the same key
/// (same op and payload): a change uploaded twice. Unlike [`duplicated_bundle_rows`] it
/// allows a row to come back with earlier values after a deletion (a recreated parent).
pub fn repeated_bundle_rows(server: &TestServer, user: &str) -> Vec<String> {
    let history = server.query_store(&format!(
        "SELECT bundle_seq, table_name, key, op, ifnull(payload, '') FROM _oversync_bundle_rows
         WHERE user_id = '{}' ORDER BY table_name, key, bundle_seq, row_ordinal",
        user.replace('\'', "''")
    ));
    history
        .windows(2)
        .filter(|w| w[0][1..] == w[1][1..])
        .map(|w| {
            format!(
                "{} {} {} at bundles {} and {}",
                w[1][1], w[1][2], w[1][3], w[0][0], w[1][0]
            )
        })
        .collect()
}

/// xorshift64*: deterministic, so a failing seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value; the state is never zero).
    pub fn for_seed(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Registers the custom resolver `keep_mine` on `d` and makes it the default policy. It
/// answers validly in every case: the local change merged over the server row (so every
/// column is named), `'local'` for a local DELETE of a live server row (a merge would be
/// invalid there), and `'server'` when the server row is deleted or missing (keeping a
/// local UPDATE would be invalid).
pub fn install_keep_mine_resolver(d: &Device) {
    d.conn
        .create_scalar_function("keep_mine", 4, FunctionFlags::SQLITE_UTF8, |ctx| {
            let server: Option<String> = ctx.get(2)?;
            let local: Option<String> = ctx.get(3)?;
            let parse = |t: &str| -> rusqlite::Result<Value> {
                serde_json::from_str(t).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
            };
            Ok(match (server, local) {
                (None, _) => "server".to_string(),
                (Some(_), None) => "local".to_string(),
                (Some(server), Some(local)) => {
                    let mut merged = parse(&server)?;
                    for (k, v) in parse(&local)?.as_object().into_iter().flatten() {
                        merged[k] = v.clone();
                    }
                    merged.to_string()
                }
            })
        })
        .unwrap();
    d.json("SELECT oversqlite_set_conflict_resolver('custom', NULL, 'keep_mine')");
}
