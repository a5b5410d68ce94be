//! `_sync_managed_tables`: the runtime's registry of tables it installed triggers on.

use rusqlite::Connection;

/// Every registered table name, sorted.
pub fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT table_name FROM _sync_managed_tables ORDER BY table_name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?.collect();
    names
}
