//! `_sync_dirty_rows`: local changes captured by the triggers, not yet frozen.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

pub fn count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM _sync_dirty_rows", [], |r| r.get(0))
}

pub fn delete_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM _sync_dirty_rows", [])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct DirtyRow {
    pub op: String,
    pub base_row_version: i64,
    pub payload: Option<String>,
    pub dirty_ordinal: i64,
}

pub fn get(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<Option<DirtyRow>> {
    conn.prepare_cached(
        "SELECT op, base_row_version, payload, dirty_ordinal FROM _sync_dirty_rows
         WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .query_row(params![schema, table, key_json], |r| {
        Ok(DirtyRow {
            op: r.get(0)?,
            base_row_version: r.get(1)?,
            payload: r.get(2)?,
            dirty_ordinal: r.get(3)?,
        })
    })
    .optional()
}

pub fn delete(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM _sync_dirty_rows WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
    )?
    .execute(params![schema, table, key_json])?;
    Ok(())
}

/// Writes a dirty intent, keeping an existing `dirty_ordinal` (else max + 1).
pub fn upsert(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    op: &str,
    base: i64,
    payload: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 COALESCE((SELECT dirty_ordinal FROM _sync_dirty_rows WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3),
                          (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows)),
                 strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET op = excluded.op, base_row_version = excluded.base_row_version,
         payload = excluded.payload, updated_at = excluded.updated_at")?.execute(params![schema, table, key_json, op, base, payload],
    )?;
    Ok(())
}

/// Adds a dirty intent at the end unless the key already has one (which is newer).
pub fn insert_unless_present(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
    op: &str,
    base: i64,
    payload: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows),
                 strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO NOTHING",
    )?
    .execute(params![schema, table, key_json, op, base, payload])?;
    Ok(())
}

/// Puts the rows of outbox bundle `source_bundle_id` back among the dirty rows, in
/// bundle order after the existing ones; a key that already has a dirty row keeps it.
pub fn requeue_outbox_bundle(conn: &Connection, source_bundle_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         SELECT schema_name, table_name, key_json, op, base_row_version, local_payload,
                row_ordinal + 1 + (SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows),
                strftime('%Y-%m-%dT%H:%M:%fZ','now')
         FROM _sync_outbox_rows WHERE source_bundle_id = ?1 ORDER BY row_ordinal
         ON CONFLICT(schema_name, table_name, key_json) DO NOTHING",
        [source_bundle_id],
    )?;
    Ok(())
}

/// Sets the base of one dirty row to 0 (the server then always answers a conflict
/// carrying its row).
pub fn reset_base(
    conn: &Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_dirty_rows SET base_row_version = 0 WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
        params![schema, table, key_json],
    )?;
    Ok(())
}

/// Raises to `committed_seq` the base of each dirty row whose key was in the outbox
/// and whose row state is live at that version or later.
pub fn rebase_over_committed_outbox(conn: &Connection, committed_seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_dirty_rows AS d SET base_row_version = ?1
         WHERE d.base_row_version < ?1
           AND EXISTS (SELECT 1 FROM _sync_outbox_rows AS o
                       WHERE o.schema_name = d.schema_name AND o.table_name = d.table_name AND o.key_json = d.key_json)
           AND EXISTS (SELECT 1 FROM _sync_row_state AS rs
                       WHERE rs.schema_name = d.schema_name AND rs.table_name = d.table_name AND rs.key_json = d.key_json
                         AND rs.deleted = 0 AND rs.row_version >= ?1)",
        [committed_seq],
    )?;
    Ok(())
}

/// `(table, key_json, payload)` of every dirty row, in capture order.
pub fn intents(conn: &Connection) -> rusqlite::Result<Vec<(String, String, Option<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT table_name, key_json, payload FROM _sync_dirty_rows ORDER BY dirty_ordinal",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect();
    rows
}

/// `(table, key_json, is_delete)` of every dirty row of `schema`.
pub fn keys(conn: &Connection, schema: &str) -> rusqlite::Result<Vec<(String, String, bool)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, key_json, payload IS NULL FROM _sync_dirty_rows WHERE schema_name = ?1",
    )?;
    let rows = stmt
        .query_map([schema], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect();
    rows
}

/// `(child key_json, parent key_json)` of every dirty INSERT/UPDATE of `table` whose
/// payload member at `path` is set; the parent key is `json_object(parent_key_name, value)`.
pub fn parent_refs(
    conn: &Connection,
    schema: &str,
    table: &str,
    path: &str,
    parent_key_name: &str,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_json, json_object(?4, json_extract(payload, ?3)) FROM _sync_dirty_rows
         WHERE schema_name = ?1 AND table_name = ?2 AND payload IS NOT NULL
           AND json_extract(payload, ?3) IS NOT NULL",
    )?;
    let rows = stmt
        .query_map(params![schema, table, path, parent_key_name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect();
    rows
}

/// Like [`parent_refs`], with the parent's stored `deleted` flag (`None`: no row state).
pub fn parent_refs_with_state(
    conn: &Connection,
    schema: &str,
    table: &str,
    path: &str,
    parent_key_name: &str,
    parent_table: &str,
) -> rusqlite::Result<Vec<(String, String, Option<bool>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.key_json, json_object(?4, json_extract(d.payload, ?3)),
                (SELECT deleted FROM _sync_row_state rs WHERE rs.schema_name = ?1 AND rs.table_name = ?5
                   AND rs.key_json = json_object(?4, json_extract(d.payload, ?3)))
         FROM _sync_dirty_rows d
         WHERE d.schema_name = ?1 AND d.table_name = ?2 AND d.payload IS NOT NULL
           AND json_extract(d.payload, ?3) IS NOT NULL",
    )?;
    let rows = stmt
        .query_map(
            params![schema, table, path, parent_key_name, parent_table],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect();
    rows
}

/// One dirty row as the freeze reads it, already in bundle order.
pub struct FreezeRead {
    /// The dirty row's rowid, for [`delete_rowids`].
    pub rowid: i64,
    pub schema: String,
    pub table: String,
    pub key_json: String,
    pub base_row_version: i64,
    pub payload: Option<String>,
    /// The row state exists and is not deleted.
    pub live_state: bool,
}

/// The rowids of every dirty row, in bundle order: upserts parents-first, then deletes
/// children-first; ties keep capture order (`dirty_ordinal`, then schema, table and
/// key). `table_order` gives each table's FK position (parents first); an unlisted table
/// sorts last (deletes: first). SQLite sorts only rowids and sort keys; the rows
/// themselves are read by [`read_in_order`], a bundle at a time, so a push of several
/// bundles sorts its backlog once instead of once per bundle (engine `ops/freeze.rs`).
pub fn bundle_order(
    conn: &Connection,
    table_order: &[(String, usize)],
) -> rusqlite::Result<Vec<i64>> {
    let mut pos = String::from("CASE table_name");
    let mut binds = Vec::new();
    for (name, p) in table_order {
        pos.push_str(&format!(" WHEN ?{} THEN {p}", binds.len() + 1));
        binds.push(Value::Text(name.clone()));
    }
    pos.push_str(&format!(" ELSE {} END", i64::MAX / 2));
    // A payload-less row whose server state is not live is a no-op delete: it is read
    // (and consumed) but never uploaded, so its sort position does not matter.
    let sql = format!(
        "SELECT rowid FROM _sync_dirty_rows
         ORDER BY (payload IS NULL), CASE WHEN payload IS NULL THEN -({pos}) ELSE {pos} END,
                  dirty_ordinal, schema_name, table_name, key_json"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rowids = stmt
        .query_map(rusqlite::params_from_iter(binds), |r| r.get::<_, i64>(0))?
        .collect();
    rowids
}

/// Streams the dirty rows of `rowids`, in that order, with their row state into `f`;
/// a rowid no longer present is skipped. `f` returns whether to go on (a freeze that
/// cuts its bundle short stops there). Returns how many rowids were passed to `f`
/// (or skipped) before it stopped.
pub fn read_in_order<E: From<rusqlite::Error>>(
    conn: &Connection,
    rowids: &[i64],
    mut f: impl FnMut(FreezeRead) -> std::result::Result<bool, E>,
) -> std::result::Result<usize, E> {
    let list = rowid_list(rowids);
    let mut stmt = conn.prepare_cached(
        "SELECT je.key, d.rowid, d.schema_name, d.table_name, d.key_json, d.base_row_version, d.payload,
                (rs.key_json IS NOT NULL AND COALESCE(rs.deleted, 0) = 0)
         FROM json_each(?1) AS je
         JOIN _sync_dirty_rows AS d ON d.rowid = je.value
         LEFT JOIN _sync_row_state AS rs
           ON rs.schema_name = d.schema_name AND rs.table_name = d.table_name AND rs.key_json = d.key_json
         ORDER BY je.key",
    )?;
    let mut read = stmt.query([list])?;
    while let Some(r) = read.next()? {
        let index: i64 = r.get(0)?;
        let go_on = f(FreezeRead {
            rowid: r.get(1)?,
            schema: r.get(2)?,
            table: r.get(3)?,
            key_json: r.get(4)?,
            base_row_version: r.get(5)?,
            payload: r.get(6)?,
            live_state: r.get::<_, i64>(7)? != 0,
        })?;
        if !go_on {
            return Ok(index as usize);
        }
    }
    Ok(rowids.len())
}

/// `rowids` as a JSON array, bound as one parameter and read back with `json_each`
/// (one statement for a bundle's rows, not one per row).
fn rowid_list(rowids: &[i64]) -> String {
    let items: Vec<String> = rowids.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// Deletes the dirty rows of `rowids` (those a freeze consumed when it cut its bundle
/// short).
pub fn delete_rowids(conn: &Connection, rowids: &[i64]) -> rusqlite::Result<()> {
    let list = rowid_list(rowids);
    conn.prepare_cached(
        "DELETE FROM _sync_dirty_rows WHERE rowid IN (SELECT value FROM json_each(?1))",
    )?
    .execute([list])?;
    Ok(())
}

/// `(key_json, payload, base_row_version)` of every unsent INSERT/UPDATE of `table` whose
/// payload member at `path` makes `json_object(parent_key_name, value) = parent_key_json`:
/// the dirty rows first, then the outbox rows.
pub fn children_of(
    conn: &Connection,
    schema: &str,
    table: &str,
    path: &str,
    parent_key_name: &str,
    parent_key_json: &str,
) -> rusqlite::Result<[Vec<(String, String, i64)>; 2]> {
    let mut out: [Vec<(String, String, i64)>; 2] = [Vec::new(), Vec::new()];
    for (i, sql) in [
        "SELECT key_json, payload, base_row_version FROM _sync_dirty_rows
         WHERE schema_name = ?1 AND table_name = ?2 AND payload IS NOT NULL
           AND json_object(?4, json_extract(payload, ?3)) = ?5",
        "SELECT key_json, local_payload, base_row_version FROM _sync_outbox_rows
         WHERE schema_name = ?1 AND table_name = ?2 AND local_payload IS NOT NULL
           AND json_object(?4, json_extract(local_payload, ?3)) = ?5",
    ]
    .into_iter()
    .enumerate()
    {
        out[i] = conn
            .prepare_cached(sql)?
            .query_map(
                params![schema, table, path, parent_key_name, parent_key_json],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(out)
}
