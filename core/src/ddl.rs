//! The runtime's `_sync_*` DDL, read from `sql/runtime_schema.sql` at compile time. The statement text is the SQLiteNow runtime's, kept
//! byte-identical because `sqlite_master.sql` is compared against the fixtures: SQLite
//! removes `IF NOT EXISTS` and stores the rest verbatim.
use std::sync::LazyLock;

use rusqlite::Connection;

use crate::error::Result;

/// `sql/runtime_schema.sql`, the one copy of the runtime DDL (comment lines start
/// with `--`; statements end with `;` at the end of a line).
pub const RUNTIME_SCHEMA_SQL: &str = include_str!("../../sql/runtime_schema.sql");

/// The ten runtime tables and the dirty-ordinal index, in creation order: the
/// statements of [`RUNTIME_SCHEMA_SQL`], without their `;`.
pub static RUNTIME_DDL: LazyLock<[&'static str; 11]> = LazyLock::new(|| {
    let statements: Vec<&'static str> = split_statements(RUNTIME_SCHEMA_SQL);
    statements.try_into().unwrap_or_else(|v: Vec<_>| {
        panic!("sql/runtime_schema.sql has {} statements, not 11", v.len())
    })
});

/// The statements of a schema file: `--` lines dropped, split at `;` line ends.
fn split_statements(text: &'static str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            if start.is_none() {
                offset += line.len();
                continue;
            }
        } else if start.is_none() {
            start = Some(offset);
        }
        offset += line.len();
        if let (Some(s), true) = (start, trimmed.ends_with(';')) {
            let end = offset - (line.len() - trimmed.len()) - 1;
            out.push(&text[s..end]);
            start = None;
        }
    }
    out
}

/// Singleton rows every runtime needs; existing rows are left as they are.
const SINGLETON_ROWS: [&str; 4] = [
    "INSERT INTO _sync_apply_state(singleton_key, apply_mode) VALUES (1, 0) ON CONFLICT(singleton_key) DO NOTHING",
    "INSERT INTO _sync_attachment_state(singleton_key, current_source_id, binding_state, attached_user_id, schema_name, last_bundle_seq_seen, rebuild_required, pending_initialization_id) VALUES (1, '', 'anonymous', '', '', 0, 0, '') ON CONFLICT(singleton_key) DO NOTHING",
    "INSERT INTO _sync_operation_state(singleton_key, kind, target_user_id, staged_snapshot_id, snapshot_bundle_seq, snapshot_row_count, reason, replacement_source_id) VALUES (1, 'none', '', '', 0, 0, '', '') ON CONFLICT(singleton_key) DO NOTHING",
    "INSERT INTO _sync_outbox_bundle(singleton_key, state, source_id, source_bundle_id, initialization_id, canonical_request_hash, row_count, remote_bundle_hash, remote_bundle_seq) VALUES (1, 'none', '', 0, '', '', 0, '', 0) ON CONFLICT(singleton_key) DO NOTHING",
];

/// Names of the runtime tables (for "is the runtime installed" checks and dumps).
pub const RUNTIME_TABLES: [&str; 10] = [
    "_sync_apply_state",
    "_sync_row_state",
    "_sync_dirty_rows",
    "_sync_snapshot_stage",
    "_sync_source_state",
    "_sync_attachment_state",
    "_sync_operation_state",
    "_sync_outbox_bundle",
    "_sync_outbox_rows",
    "_sync_managed_tables",
];

/// Creates the runtime tables/index when missing and inserts the singleton rows.
/// Must run inside the caller's write transaction.
pub fn install_runtime_tables(conn: &Connection) -> Result<()> {
    for stmt in RUNTIME_DDL.iter().chain(SINGLETON_ROWS.iter()) {
        conn.execute(stmt, [])?;
    }
    Ok(())
}

/// True when every runtime table exists (i.e. `open` has run on this database).
pub fn runtime_installed(conn: &Connection) -> Result<bool> {
    let mut stmt =
        conn.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    for name in RUNTIME_TABLES {
        let n: i64 = stmt.query_row([name], |r| r.get(0))?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
