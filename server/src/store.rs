//! The SQLite store: one database file holding the registered tables (real tables named
//! `"schema.table"` with the hidden `_sync_scope_id` owner column) and the server's own
//! bookkeeping tables (`_oversync_*`). WAL with `synchronous=FULL`, so a transaction that
//! committed before a 200 was sent survives `kill -9`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::config::Registry;
use crate::error::{Fail, ServiceResult};
use crate::migrate::{self, Plan};

const BOOKKEEPING_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS _oversync_user_state (
  user_id TEXT PRIMARY KEY,
  next_bundle_seq INTEGER NOT NULL DEFAULT 1,
  retained_bundle_floor INTEGER NOT NULL DEFAULT 0,
  scope_state INTEGER NOT NULL DEFAULT 0,
  initializer_source_id TEXT,
  initialization_id TEXT,
  lease_expires_at_ms INTEGER,
  initialized_at TEXT,
  initialized_by_source_id TEXT
);
CREATE TABLE IF NOT EXISTS _oversync_source_state (
  user_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  state TEXT NOT NULL,
  max_committed_source_bundle_id INTEGER NOT NULL DEFAULT 0,
  replaced_by_source_id TEXT,
  retirement_reason TEXT,
  PRIMARY KEY (user_id, source_id)
);
CREATE TABLE IF NOT EXISTS _oversync_row_state (
  user_id TEXT NOT NULL,
  table_name TEXT NOT NULL,
  key TEXT NOT NULL,
  bundle_seq INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  PRIMARY KEY (user_id, table_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _oversync_bundle_log (
  user_id TEXT NOT NULL,
  bundle_seq INTEGER NOT NULL,
  source_id TEXT NOT NULL,
  source_bundle_id INTEGER NOT NULL,
  row_count INTEGER NOT NULL,
  byte_count INTEGER NOT NULL,
  bundle_hash TEXT NOT NULL,
  committed_at TEXT NOT NULL,
  PRIMARY KEY (user_id, bundle_seq),
  UNIQUE (user_id, source_id, source_bundle_id)
);
CREATE TABLE IF NOT EXISTS _oversync_bundle_rows (
  user_id TEXT NOT NULL,
  bundle_seq INTEGER NOT NULL,
  row_ordinal INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  key TEXT NOT NULL,
  op TEXT NOT NULL,
  payload TEXT,
  PRIMARY KEY (user_id, bundle_seq, row_ordinal)
);
CREATE TABLE IF NOT EXISTS _oversync_push_sessions (
  push_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  source_id TEXT NOT NULL,
  source_bundle_id INTEGER NOT NULL,
  planned_row_count INTEGER NOT NULL,
  next_expected_row_ordinal INTEGER NOT NULL,
  initialization_id TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _oversync_push_chunks (
  push_id TEXT NOT NULL,
  start_row_ordinal INTEGER NOT NULL,
  row_count INTEGER NOT NULL,
  rows TEXT NOT NULL,
  PRIMARY KEY (push_id, start_row_ordinal)
);
CREATE TABLE IF NOT EXISTS _oversync_snapshot_sessions (
  snapshot_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  snapshot_bundle_seq INTEGER NOT NULL,
  row_count INTEGER NOT NULL,
  byte_count INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _oversync_snapshot_blocks (
  snapshot_id TEXT NOT NULL,
  first_row_ordinal INTEGER NOT NULL,
  row_count INTEGER NOT NULL,
  rows TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, first_row_ordinal)
);
CREATE TABLE IF NOT EXISTS _oversync_counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _oversync_write_context (
  id INTEGER PRIMARY KEY
);
"#;

/// The staged push rows one per row, as earlier versions stored them: a read-only view
/// for inspecting a store (tools and tests count staged rows with it). Created after the
/// old table of that name is retired.
const PUSH_ROWS_VIEW: &str = "
CREATE VIEW IF NOT EXISTS _oversync_push_rows AS
  SELECT c.push_id AS push_id,
         c.start_row_ordinal + CAST(j.key AS INTEGER) AS row_ordinal,
         json_extract(j.value, '$[0]') AS table_name,
         json_extract(j.value, '$[1]') AS key,
         json_extract(j.value, '$[2]') AS op,
         json_extract(j.value, '$[3]') AS base_row_version,
         json_extract(j.value, '$[4]') AS payload
  FROM _oversync_push_chunks c, json_each(c.rows) j;
";

/// Names of the bookkeeping tables, in an order that is safe for wiping.
pub const BOOKKEEPING_TABLES: [&str; 11] = [
    "_oversync_snapshot_blocks",
    "_oversync_snapshot_sessions",
    "_oversync_push_chunks",
    "_oversync_push_sessions",
    "_oversync_bundle_rows",
    "_oversync_bundle_log",
    "_oversync_row_state",
    "_oversync_source_state",
    "_oversync_user_state",
    "_oversync_counters",
    "_oversync_write_context",
];

/// Opens the write context that lets this transaction modify registered tables.
pub fn open_write_context(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO _oversync_write_context (id) VALUES (1)",
        [],
    )?;
    Ok(())
}

/// Closes it again before the transaction commits, so it is never visible outside.
pub fn close_write_context(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _oversync_write_context", [])?;
    Ok(())
}

/// A small pool of connections to one database file. Each operation borrows a connection
/// for its duration; SQLite itself serialises writers (busy timeout), WAL lets readers run.
pub struct Store {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    pub registry: Arc<Registry>,
}

impl Store {
    /// Opens (or creates) the store and brings it to the config's shape in one
    /// transaction (additive changes only, see `migrate`); returns what it did.
    pub fn open(path: &Path, registry: Arc<Registry>) -> Result<(Store, Plan), String> {
        let store = Store {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            registry,
        };
        let conn = store
            .connect()
            .map_err(|e| format!("cannot open store {}: {e}", path.display()))?;
        let plan = migrate_store(&conn, &store.registry)
            .map_err(|e| format!("store {}: {e}", path.display()))?;
        store.idle.lock().expect("store pool lock").push(conn);
        Ok((store, plan))
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Every registered table has a handful of per-row statements (commit, snapshot);
        // keep them all prepared across requests.
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;",
        )?;
        Ok(conn)
    }

    /// Runs `work` with a pooled connection (blocking; call from `spawn_blocking`).
    pub fn with_conn<R>(
        &self,
        work: impl FnOnce(&mut Connection) -> ServiceResult<R>,
    ) -> ServiceResult<R> {
        let pooled = self.idle.lock().expect("store pool lock").pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self
                .connect()
                .map_err(|e| Fail::Internal(format!("open store connection: {e}")))?,
        };
        let result = work(&mut conn);
        if conn.is_autocommit() {
            self.idle.lock().expect("store pool lock").push(conn);
        }
        result
    }
}

/// Stores made by earlier versions staged push rows one store row each in
/// `_oversync_push_rows`; chunks are now staged whole in `_oversync_push_chunks`. Push
/// sessions with rows staged the old way are dropped with the table (their clients get
/// `404 push_session_not_found` and stage the push again, as after an expiry).
fn retire_row_staging(conn: &Connection) -> rusqlite::Result<String> {
    Ok(if table_exists(conn, "_oversync_push_rows")? {
        "DELETE FROM _oversync_push_sessions WHERE push_id IN (SELECT push_id FROM _oversync_push_rows);
         DROP TABLE _oversync_push_rows;\n"
            .to_string()
    } else {
        String::new()
    })
}

/// Stores made by earlier versions froze snapshot rows one store row each in
/// `_oversync_snapshot_rows`; they are now stored in blocks. Open snapshot sessions of such
/// a store are dropped with the table (their clients get `404 snapshot_session_not_found`
/// and start the snapshot again).
fn retire_snapshot_rows(conn: &Connection) -> rusqlite::Result<String> {
    Ok(if table_exists(conn, "_oversync_snapshot_rows")? {
        "DELETE FROM _oversync_snapshot_sessions;
         DROP TABLE _oversync_snapshot_rows;\n"
            .to_string()
    } else {
        String::new()
    })
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Plans the migration and applies it with the bookkeeping DDL, the write guards and the
/// retirements of older layouts, all in one `BEGIN IMMEDIATE` transaction: a failure (or a
/// crash) at any statement leaves the store exactly as it was.
pub fn migrate_store(conn: &Connection, registry: &Registry) -> Result<Plan, String> {
    // Planned inside the transaction, so no other process changes the store in between.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| format!("cannot start the schema transaction: {e}"))?;
    let result = plan_and_apply(conn, registry).and_then(|plan| {
        conn.execute_batch("COMMIT")
            .map_err(|e| format!("cannot commit the schema transaction: {e}"))?;
        Ok(plan)
    });
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn plan_and_apply(conn: &Connection, registry: &Registry) -> Result<Plan, String> {
    let plan = migrate::plan(conn, registry)?;
    let mut ddl = String::from(BOOKKEEPING_DDL);
    ddl.push_str(&plan.ddl(registry));
    for table in &registry.tables {
        ddl.push_str(&table.write_guard_sql());
    }
    ddl.push_str(&retire_row_staging(conn).map_err(|e| e.to_string())?);
    ddl.push_str(&retire_snapshot_rows(conn).map_err(|e| e.to_string())?);
    ddl.push_str(PUSH_ROWS_VIEW);
    conn.execute_batch(&ddl)
        .map_err(|e| format!("migration failed, the store is unchanged: {e}"))?;
    Ok(plan)
}
