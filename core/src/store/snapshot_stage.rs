//! `_sync_snapshot_stage`: snapshot rows downloaded before the final apply. The stage
//! only ever holds one snapshot (staging starts by clearing it).

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

/// Empties the stage. Unqualified, so SQLite drops its pages at once instead of
/// deleting row by row.
pub fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _sync_snapshot_stage", [])?;
    Ok(())
}

/// One staged row: `(table, key name, key value, row_version, payload)`; `key_json`
/// is built by SQLite's own `json_object`, as the triggers do.
pub type StagedRow<'a> = (&'a str, &'a str, &'a dyn rusqlite::ToSql, i64, &'a str);

/// Stages `rows` for `snapshot_id`, ordinals from `first_ordinal` on.
pub fn insert<'a>(
    conn: &Connection,
    snapshot_id: &str,
    schema: &str,
    first_ordinal: i64,
    rows: impl Iterator<Item = StagedRow<'a>>,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO _sync_snapshot_stage(snapshot_id, row_ordinal, schema_name, table_name, key_json, row_version, payload)
         VALUES (?1, ?2, ?3, ?4, json_object(?5, ?6), ?7, ?8)",
    )?;
    for (i, (table, key_name, key_value, version, payload)) in rows.enumerate() {
        insert.execute(params![
            snapshot_id,
            first_ordinal + i as i64,
            schema,
            table,
            key_name,
            key_value,
            version,
            payload
        ])?;
    }
    Ok(())
}

pub fn count(conn: &Connection, snapshot_id: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM _sync_snapshot_stage WHERE snapshot_id = ?1",
        [snapshot_id],
        |r| r.get(0),
    )
}

/// Streams `(table_name, payload)` of every staged row of `snapshot_id` in ordinal
/// order, borrowed (no copy per row), into `f`.
pub fn for_each_payload<E: From<rusqlite::Error>>(
    conn: &Connection,
    snapshot_id: &str,
    mut f: impl FnMut(ValueRef<'_>, ValueRef<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, payload FROM _sync_snapshot_stage WHERE snapshot_id = ?1 ORDER BY row_ordinal",
    )?;
    let mut staged = stmt.query([snapshot_id])?;
    while let Some(r) = staged.next()? {
        f(r.get_ref(0)?, r.get_ref(1)?)?;
    }
    Ok(())
}

/// A `(table, key_json)` staged more than once, if any.
pub fn duplicate_key(
    conn: &Connection,
    snapshot_id: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT table_name, key_json FROM _sync_snapshot_stage WHERE snapshot_id = ?1
         GROUP BY schema_name, table_name, key_json HAVING COUNT(*) > 1 LIMIT 1",
        [snapshot_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}
