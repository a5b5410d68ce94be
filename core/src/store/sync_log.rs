//! The sync journal `_oversqlite_sync_log`: one row per sync operation (who asked, when,
//! how it ended, how much moved), bounded to the most recent rows. It is our own table
//! (not `_sync_*`, whose layout must stay identical to SQLiteNow's runtime), created on
//! first use, so a database that never synced has none.
//!
//! Callers write a row *after* the operation, in a transaction of its own: the journal
//! never shares a transaction with sync state, and a failed journal write never fails
//! the operation it describes (the engine ignores the error).
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub const SYNC_LOG_TABLE: &str = "_oversqlite_sync_log";

/// Rows kept by default (the most recent ones).
pub const DEFAULT_KEEP: i64 = 1000;

const DDL: &str = "CREATE TABLE IF NOT EXISTS main._oversqlite_sync_log (
  id INTEGER PRIMARY KEY,
  operation TEXT NOT NULL,
  trigger TEXT NOT NULL CHECK (trigger IN ('sql', 'auto', 'cli')),
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  outcome TEXT NOT NULL,
  rows_up INTEGER NOT NULL DEFAULT 0,
  rows_down INTEGER NOT NULL DEFAULT 0,
  bytes_up INTEGER NOT NULL DEFAULT 0,
  bytes_down INTEGER NOT NULL DEFAULT 0,
  error_code TEXT,
  error_message TEXT
)";

/// One journal row. `id` is ignored by [`append`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LogEntry {
    pub id: i64,
    pub operation: String,
    /// `sql`, `auto` or `cli`.
    pub trigger: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    /// `ok`, `error`, `incomplete`, `skipped`, `retry_later`.
    pub outcome: String,
    pub rows_up: i64,
    pub rows_down: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub error_code: Option<String>,
    /// Already redacted by the caller: never a token.
    pub error_message: Option<String>,
}

/// Whether the journal table exists (reading never creates it).
pub fn exists(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
        [SYNC_LOG_TABLE],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Creates the table if missing, appends `entry` and drops all but the newest `keep`
/// rows, in one short `BEGIN IMMEDIATE` transaction. Must not be called inside the
/// caller's transaction (the engine checks `is_autocommit` first).
pub fn append(conn: &Connection, entry: &LogEntry, keep: i64) -> rusqlite::Result<i64> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(DDL)?;
        conn.execute(
            "INSERT INTO main._oversqlite_sync_log(operation, trigger, started_at, finished_at, outcome, \
             rows_up, rows_down, bytes_up, bytes_down, error_code, error_message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                entry.operation,
                entry.trigger,
                entry.started_at,
                entry.finished_at,
                entry.outcome,
                entry.rows_up,
                entry.rows_down,
                entry.bytes_up,
                entry.bytes_down,
                entry.error_code,
                entry.error_message,
            ],
        )?;
        let id = conn.last_insert_rowid();
        prune(conn, keep)?;
        Ok(id)
    })();
    match result {
        Ok(id) => {
            conn.execute_batch("COMMIT")?;
            Ok(id)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Keeps the newest `keep` rows (at least one). The newest row always has the highest
/// id (a new rowid is max + 1, and pruning only removes the lowest), so no
/// AUTOINCREMENT (and no `sqlite_sequence` table) is needed.
fn prune(conn: &Connection, keep: i64) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM main._oversqlite_sync_log WHERE id <= \
         (SELECT MAX(id) FROM main._oversqlite_sync_log) - ?1",
        [keep.max(1)],
    )?;
    Ok(())
}

/// The newest `limit` rows, newest first; empty when the journal was never written.
pub fn recent(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<LogEntry>> {
    if !exists(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT id, operation, trigger, started_at, finished_at, outcome, rows_up, rows_down, \
         bytes_up, bytes_down, error_code, error_message \
         FROM main._oversqlite_sync_log ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit.max(0)], |r| {
        Ok(LogEntry {
            id: r.get(0)?,
            operation: r.get(1)?,
            trigger: r.get(2)?,
            started_at: r.get(3)?,
            finished_at: r.get(4)?,
            outcome: r.get(5)?,
            rows_up: r.get(6)?,
            rows_down: r.get(7)?,
            bytes_up: r.get(8)?,
            bytes_down: r.get(9)?,
            error_code: r.get(10)?,
            error_message: r.get(11)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: &str) -> LogEntry {
        LogEntry {
            operation: op.into(),
            trigger: "sql".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            outcome: "ok".into(),
            rows_up: 3,
            ..Default::default()
        }
    }

    #[test]
    fn append_creates_prunes_and_reads_newest_first() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(recent(&conn, 10).unwrap().is_empty());
        assert!(!exists(&conn).unwrap());
        for i in 0..7 {
            append(&conn, &entry(&format!("op{i}")), 5).unwrap();
        }
        let rows = recent(&conn, 100).unwrap();
        let ops: Vec<_> = rows.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(ops, ["op6", "op5", "op4", "op3", "op2"]);
        assert_eq!(rows[0].rows_up, 3);
        assert_eq!(recent(&conn, 2).unwrap().len(), 2);
    }

    #[test]
    fn a_bad_trigger_is_refused_and_nothing_is_left_open() {
        let conn = Connection::open_in_memory().unwrap();
        let mut e = entry("sync");
        e.trigger = "cron".into();
        assert!(append(&conn, &e, 10).is_err());
        assert!(conn.is_autocommit());
        assert!(recent(&conn, 10).unwrap().is_empty());
    }
}
