//! Capture and guard triggers (protocol digest §5). Plain SQL, so writes made by a
//! SQLite without this extension loaded are captured too.
use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;
use crate::model::ManagedTable;
use crate::sql_text::{key_expr, normalize_sql, quote_ident, quote_literal, row_expr};

/// Names of the six triggers of a table, guards first.
pub fn trigger_names(table: &str) -> [String; 6] {
    [
        format!("trg_{table}_bi_guard"),
        format!("trg_{table}_bu_guard"),
        format!("trg_{table}_bd_guard"),
        format!("trg_{table}_ai"),
        format!("trg_{table}_au"),
        format!("trg_{table}_ad"),
    ]
}

const CAPTURE_WHEN: &str =
    "WHEN COALESCE((SELECT apply_mode FROM _sync_apply_state WHERE singleton_key = 1), 0) = 0";

fn guard(table: &ManagedTable, suffix: &str, event: &str) -> String {
    format!(
        "CREATE TRIGGER trg_{t}_{suffix}_guard BEFORE {event} ON {qt}\n\
         WHEN EXISTS (\n  SELECT 1 FROM _sync_operation_state WHERE singleton_key = 1 AND kind != 'none'\n)\n\
         AND NOT EXISTS (\n  SELECT 1 FROM _sync_apply_state WHERE singleton_key = 1 AND apply_mode = 1\n)\n\
         BEGIN\n  SELECT RAISE(ABORT, 'SYNC_TRANSITION_PENDING');\nEND",
        t = table.name,
        qt = quote_ident(&table.name),
    )
}

/// `(SELECT <col> FROM <state table> WHERE schema_name=… AND table_name=… AND key_json=<key>)`
fn lookup(column: &str, state_table: &str, schema: &str, table: &str, key: &str) -> String {
    format!(
        "(SELECT {column} FROM {state_table} WHERE schema_name={s} AND table_name={t} AND key_json={key})",
        s = quote_literal(schema),
        t = quote_literal(table),
    )
}

fn base_version(schema: &str, table: &str, key: &str) -> String {
    format!(
        "COALESCE(\n    {},\n    {},\n    0\n  )",
        lookup("base_row_version", "_sync_dirty_rows", schema, table, key),
        lookup("row_version", "_sync_row_state", schema, table, key),
    )
}

fn ordinal(schema: &str, table: &str, key: &str) -> String {
    format!(
        "COALESCE(\n    {},\n    (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows)\n  )",
        lookup("dirty_ordinal", "_sync_dirty_rows", schema, table, key),
    )
}

const DIRTY_COLUMNS: &str =
    "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)";
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Upsert of the current after-image of `NEW` (body of `ai`, tail of `au`).
fn upsert_current(schema: &str, table: &ManagedTable) -> String {
    let key = key_expr(table, "NEW");
    let (s, t) = (quote_literal(schema), quote_literal(&table.name));
    format!(
        "{DIRTY_COLUMNS}\n  VALUES (\n  {s},\n  {t},\n  {key},\n  CASE WHEN EXISTS (\n    SELECT 1 FROM _sync_row_state WHERE schema_name={s} AND table_name={t} AND key_json={key} AND deleted=0\n  ) THEN 'UPDATE' ELSE 'INSERT' END,\n  {base},\n  {row},\n  {ord},\n  {NOW}\n  )\n  ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET\n    op=excluded.op,\n    payload=excluded.payload,\n    updated_at=excluded.updated_at;",
        base = base_version(schema, &table.name, &key),
        row = row_expr(table, "NEW"),
        ord = ordinal(schema, &table.name, &key),
    )
}

/// Delete marker for `OLD`, as `VALUES` (for `ad`) or `SELECT … WHERE key changed` (for `au`).
fn delete_marker(schema: &str, table: &ManagedTable, only_if_key_changed: bool) -> String {
    let key = key_expr(table, "OLD");
    let (s, t) = (quote_literal(schema), quote_literal(&table.name));
    let values = format!(
        "{s},\n  {t},\n  {key},\n  'DELETE',\n  {base},\n  NULL,\n  {ord},\n  {NOW}",
        base = base_version(schema, &table.name, &key),
        ord = ordinal(schema, &table.name, &key),
    );
    let source = if only_if_key_changed {
        format!(
            "SELECT\n  {values}\n  WHERE {key} != {}",
            key_expr(table, "NEW")
        )
    } else {
        format!("VALUES (\n  {values}\n  )")
    };
    format!(
        "{DIRTY_COLUMNS}\n  {source}\n  ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET\n    op='DELETE',\n    payload=NULL,\n    updated_at=excluded.updated_at;"
    )
}

/// The six `(name, CREATE TRIGGER sql)` pairs for a managed table.
pub fn trigger_sql(schema: &str, table: &ManagedTable) -> Vec<(String, String)> {
    let t = &table.name;
    let qt = quote_ident(t);
    let ai = format!(
        "CREATE TRIGGER trg_{t}_ai AFTER INSERT ON {qt}\n{CAPTURE_WHEN}\nBEGIN\n  {}\nEND",
        upsert_current(schema, table)
    );
    let au = format!(
        "CREATE TRIGGER trg_{t}_au AFTER UPDATE ON {qt}\n{CAPTURE_WHEN}\nBEGIN\n  {}\n  {}\nEND",
        delete_marker(schema, table, true),
        upsert_current(schema, table)
    );
    let ad = format!(
        "CREATE TRIGGER trg_{t}_ad AFTER DELETE ON {qt}\n{CAPTURE_WHEN}\nBEGIN\n  {}\nEND",
        delete_marker(schema, table, false)
    );
    let names = trigger_names(t);
    vec![
        (names[0].clone(), guard(table, "bi", "INSERT")),
        (names[1].clone(), guard(table, "bu", "UPDATE")),
        (names[2].clone(), guard(table, "bd", "DELETE")),
        (names[3].clone(), ai),
        (names[4].clone(), au),
        (names[5].clone(), ad),
    ]
}

/// Creates missing triggers and replaces those whose normalised SQL differs.
/// Returns how many triggers were written.
pub fn install_triggers(conn: &Connection, schema: &str, table: &ManagedTable) -> Result<usize> {
    let mut written = 0;
    for (name, sql) in trigger_sql(schema, table) {
        let existing: Option<String> = conn
            .query_row(
                "SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(old) if normalize_sql(&old) == normalize_sql(&sql) => continue,
            Some(_) => conn.execute_batch(&format!("DROP TRIGGER main.{}", quote_ident(&name)))?,
            None => {}
        }
        conn.execute_batch(&sql)?;
        written += 1;
    }
    Ok(written)
}

/// Drops the six triggers of a table (those that exist).
pub fn drop_triggers(conn: &Connection, table: &str) -> Result<()> {
    for name in trigger_names(table) {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS main.{}",
            quote_ident(&name)
        ))?;
    }
    Ok(())
}
