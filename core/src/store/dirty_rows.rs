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

/// Streams every dirty row with its row state into `f`, in bundle order: upserts
/// parents-first, then deletes children-first; ties keep capture order (`dirty_ordinal`,
/// then schema, table and key). `table_order` gives each table's FK position (parents
/// first); an unlisted table sorts last. `f` returns whether to go on: a freeze that
/// cuts a bundle short stops there.
///
/// Rows are read `page` at a time (`None`: all at once) in two steps: SQLite sorts only
/// rowids and sort keys (`LIMIT`/`OFFSET` over one total order, so pages neither overlap
/// nor skip while the caller's transaction holds the set still), then each row of the
/// page is read with its row state. A freeze that takes a few thousand rows of a large
/// backlog so costs a light pass over the backlog rather than a full read and sort of it,
/// which matters because a capped push freezes many times.
pub fn for_each_in_bundle_order<E: From<rusqlite::Error>>(
    conn: &Connection,
    table_order: &[(String, usize)],
    page: Option<usize>,
    mut f: impl FnMut(FreezeRead) -> std::result::Result<bool, E>,
) -> std::result::Result<(), E> {
    let mut pos = String::from("CASE table_name");
    let mut binds = Vec::new();
    for (name, p) in table_order {
        pos.push_str(&format!(" WHEN ?{} THEN {p}", binds.len() + 1));
        binds.push(Value::Text(name.clone()));
    }
    pos.push_str(&format!(" ELSE {} END", i64::MAX / 2));
    // A payload-less row whose server state is not live is a no-op delete: it is read
    // (and consumed) but never uploaded, so its sort position does not matter.
    let order_sql = format!(
        "SELECT rowid FROM _sync_dirty_rows
         ORDER BY (payload IS NULL), CASE WHEN payload IS NULL THEN -({pos}) ELSE {pos} END,
                  dirty_ordinal, schema_name, table_name, key_json
         LIMIT ?{limit} OFFSET ?{offset}",
        limit = binds.len() + 1,
        offset = binds.len() + 2,
    );
    let mut order = conn.prepare(&order_sql)?;
    let mut row = conn.prepare_cached(
        "SELECT d.schema_name, d.table_name, d.key_json, d.base_row_version, d.payload,
                (rs.key_json IS NOT NULL AND COALESCE(rs.deleted, 0) = 0)
         FROM _sync_dirty_rows AS d
         LEFT JOIN _sync_row_state AS rs
           ON rs.schema_name = d.schema_name AND rs.table_name = d.table_name AND rs.key_json = d.key_json
         WHERE d.rowid = ?1",
    )?;
    let limit = page.map_or(-1, |p| p.max(1) as i64);
    let mut offset = 0i64;
    loop {
        let mut params = binds.clone();
        params.push(Value::Integer(limit));
        params.push(Value::Integer(offset));
        let rowids = order
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        for &rowid in &rowids {
            let read = row.query_row([rowid], |r| {
                Ok(FreezeRead {
                    rowid,
                    schema: r.get(0)?,
                    table: r.get(1)?,
                    key_json: r.get(2)?,
                    base_row_version: r.get(3)?,
                    payload: r.get(4)?,
                    live_state: r.get::<_, i64>(5)? != 0,
                })
            })?;
            if !f(read)? {
                return Ok(());
            }
        }
        if limit < 0 || (rowids.len() as i64) < limit {
            return Ok(());
        }
        offset += rowids.len() as i64;
    }
}

/// Deletes the dirty rows of `rowids` (those a freeze consumed when it cut its bundle
/// short).
pub fn delete_rowids(conn: &Connection, rowids: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM _sync_dirty_rows WHERE rowid = ?1")?;
    for rowid in rowids {
        stmt.execute([rowid])?;
    }
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
