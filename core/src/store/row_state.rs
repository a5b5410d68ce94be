//! `_sync_row_state`: the server version (and tombstone) last applied per row.

use rusqlite::{params, Connection, OptionalExtension};

/// Records `row_version` for a row whose `key_json` is built in SQL from the key value
/// (`json_object(key_name, key_value)`, as the triggers do), unless the stored state
/// already has that version or a newer one. Returns whether it wrote.
#[allow(clippy::too_many_arguments)]
pub fn advance(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_name: &str,
    key_value: &dyn rusqlite::ToSql,
    row_version: i64,
    deleted: bool,
    updated_at: &str,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted, updated_at)
             VALUES (?1, ?2, json_object(?3, ?4), ?5, ?6, ?7)
             ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET row_version = excluded.row_version,
             deleted = excluded.deleted, updated_at = excluded.updated_at
             WHERE excluded.row_version > _sync_row_state.row_version",
        )?
        .execute(params![
            schema,
            table,
            key_name,
            key_value,
            row_version,
            deleted as i64,
            updated_at
        ])?;
    Ok(changed > 0)
}

pub fn upsert(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    row_version: i64,
    deleted: bool,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET row_version = excluded.row_version,
         deleted = excluded.deleted, updated_at = excluded.updated_at")?.execute(params![schema, table, key_json, row_version, deleted as i64],
    )?;
    Ok(())
}

pub fn delete(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .execute(params![schema, table, key_json])?;
    Ok(())
}

/// Forgets every row of `table` in `schema`.
pub fn delete_table(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2",
        params![schema, table],
    )?;
    Ok(())
}

/// Forgets every row of `table`, whatever its schema.
pub fn delete_table_any_schema(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _sync_row_state WHERE table_name = ?1", [table])?;
    Ok(())
}

/// `row_version` of the stored state, if any.
pub fn version(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT row_version FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3")?
        .query_row(params![schema, table, key_json], |r| r.get(0))
        .optional()
}

/// The stored `deleted` flag (`false` when there is no state or it cannot be read).
pub fn is_deleted(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT deleted FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
        )?
        .query_row(params![schema, table, key_json], |r| r.get::<_, bool>(0))
        .unwrap_or(false))
}

/// Whether the stored state is live (`false` when there is none or it cannot be read).
pub fn is_live(conn: &Connection, schema: &str, table: &str, key_json: &str) -> bool {
    conn.query_row(
        "SELECT deleted = 0 FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
        params![schema, table, key_json],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

/// Whether the stored state is a tombstone written after `version` (`None`: no state).
pub fn deleted_after(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    version: i64,
) -> rusqlite::Result<Option<bool>> {
    conn.prepare_cached(
        "SELECT deleted = 1 AND row_version > ?4 FROM _sync_row_state
         WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .query_row(params![schema, table, key_json, version], |r| r.get(0))
    .optional()
}

/// Number of live rows.
pub fn live_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM _sync_row_state WHERE deleted = 0",
        [],
        |r| r.get(0),
    )
}

/// Records `version` for every row of outbox bundle `source_bundle_id` (a DELETE as a
/// tombstone), in one statement.
pub fn upsert_from_outbox(
    conn: &Connection,
    schema: &str,
    source_bundle_id: i64,
    version: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted, updated_at)
         SELECT ?1, table_name, key_json, ?2, op = 'DELETE', strftime('%Y-%m-%dT%H:%M:%fZ','now')
         FROM _sync_outbox_rows WHERE source_bundle_id = ?3
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET row_version = excluded.row_version,
         deleted = excluded.deleted, updated_at = excluded.updated_at",
        params![schema, version, source_bundle_id],
    )?;
    Ok(())
}

/// Records the staged version of every row of snapshot `snapshot_id`, in one statement.
pub fn upsert_from_snapshot_stage(
    conn: &Connection,
    schema: &str,
    snapshot_id: &str,
    updated_at: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted, updated_at)
         SELECT ?2, table_name, key_json, row_version, 0, ?3
         FROM _sync_snapshot_stage WHERE snapshot_id = ?1 ORDER BY row_ordinal
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET row_version = excluded.row_version,
         deleted = excluded.deleted, updated_at = excluded.updated_at",
    )?
    .execute(params![snapshot_id, schema, updated_at])?;
    Ok(())
}

/// `(table, key_json, row_version)` of every live row of `schema` written after `version`
/// whose key has no unsent change (a key with one shows its local row, not the
/// committed one the version belongs to).
pub fn committed_live_after(
    conn: &Connection,
    schema: &str,
    version: i64,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let rows = conn
        .prepare_cached(
            "SELECT table_name, key_json, row_version FROM _sync_row_state rs
             WHERE schema_name = ?1 AND row_version > ?2 AND deleted = 0
               AND NOT EXISTS (SELECT 1 FROM _sync_dirty_rows d WHERE d.schema_name = rs.schema_name
                               AND d.table_name = rs.table_name AND d.key_json = rs.key_json)",
        )?
        .query_map(params![schema, version], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect();
    rows
}
