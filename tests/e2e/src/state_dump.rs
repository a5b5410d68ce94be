//! The runtime catalog + state dump of `runtime-state/*` fixtures and its normaliser
//! (protocol digest §11.4). Reusable by the engine's runners: `dump_runtime` reads a
//! connection, `normalize_state` rewrites volatile values into the fixture placeholders.
use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use crate::catalog::normalize_trigger_sql;

/// `(fixture key, table, ORDER BY)` in dump order (which also numbers `<source-N>`).
pub const STATE_TABLES: [(&str, &str, &str); 10] = [
    ("apply_state", "_sync_apply_state", "singleton_key"),
    (
        "attachment_state",
        "_sync_attachment_state",
        "singleton_key",
    ),
    ("source_state", "_sync_source_state", "source_id"),
    ("operation_state", "_sync_operation_state", "singleton_key"),
    ("outbox_bundle", "_sync_outbox_bundle", "singleton_key"),
    (
        "outbox_rows",
        "_sync_outbox_rows",
        "source_bundle_id, row_ordinal",
    ),
    (
        "dirty_rows",
        "_sync_dirty_rows",
        "dirty_ordinal, table_name, key_json",
    ),
    (
        "row_state",
        "_sync_row_state",
        "schema_name, table_name, key_json",
    ),
    (
        "snapshot_stage",
        "_sync_snapshot_stage",
        "snapshot_id, row_ordinal",
    ),
    (
        "managed_tables",
        "_sync_managed_tables",
        "schema_name, table_name",
    ),
];

fn query(
    conn: &Connection,
    sql: &str,
    f: impl Fn(&rusqlite::Row) -> rusqlite::Result<Value>,
) -> Vec<Value> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| f(r))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

/// `SELECT *` of one runtime table: INTEGER-declared columns as numbers, others as strings.
pub fn dump_table(conn: &Connection, table: &str, order_by: &str) -> Vec<Value> {
    let decl: Vec<(String, bool)> = query(
        conn,
        &format!("SELECT name, type FROM pragma_table_info('{table}')"),
        |r| {
            Ok(json!([
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?.to_ascii_uppercase().contains("INT")
            ]))
        },
    )
    .into_iter()
    .map(|v| (v[0].as_str().unwrap().to_string(), v[1].as_bool().unwrap()))
    .collect();
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY {order_by}"))
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let mut obj = Map::new();
        for (i, (name, integer)) in decl.iter().enumerate() {
            let v = match row.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) if *integer => json!(n),
                ValueRef::Integer(n) => json!(n.to_string()),
                ValueRef::Real(f) if *integer => json!(f),
                ValueRef::Real(f) => json!(f.to_string()),
                ValueRef::Text(t) => {
                    let s = String::from_utf8_lossy(t).to_string();
                    match (integer, s.parse::<i64>()) {
                        (true, Ok(n)) => json!(n),
                        _ => json!(s),
                    }
                }
                ValueRef::Blob(b) => {
                    json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                }
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    out
}

/// Raw `state` object: the ten runtime tables, each `SELECT *` in fixture order.
pub fn dump_state(conn: &Connection) -> Value {
    let mut state = Map::new();
    for (key, table, order) in STATE_TABLES {
        state.insert(
            key.to_string(),
            Value::Array(dump_table(conn, table, order)),
        );
    }
    Value::Object(state)
}

const SOURCE_COLUMNS: [&str; 4] = [
    "source_id",
    "current_source_id",
    "replaced_by_source_id",
    "replacement_source_id",
];

/// Rewrites timestamps, hashes and source ids into the fixture placeholders.
pub fn normalize_state(state: &Value) -> Value {
    let mut sources: HashMap<String, String> = HashMap::new();
    let mut out = Map::new();
    for (key, _, _) in STATE_TABLES {
        let rows = state[key].as_array().cloned().unwrap_or_default();
        let rows = rows
            .into_iter()
            .map(|row| {
                let mut obj = row.as_object().cloned().unwrap_or_default();
                for (col, v) in obj.iter_mut() {
                    let text = v.as_str().unwrap_or("").to_string();
                    if col == "created_at" || col == "updated_at" {
                        *v = json!("<timestamp>");
                    } else if (col == "canonical_request_hash" || col == "remote_bundle_hash")
                        && !text.is_empty()
                    {
                        *v = json!("<hash>");
                    } else if SOURCE_COLUMNS.contains(&col.as_str()) && !text.is_empty() {
                        let n = sources.len() + 1;
                        *v = json!(sources
                            .entry(text)
                            .or_insert_with(|| format!("<source-{n}>"))
                            .clone());
                    }
                }
                Value::Object(obj)
            })
            .collect();
        out.insert(key.to_string(), Value::Array(rows));
    }
    Value::Object(out)
}

/// The whole `runtime-state/schema` document shape: pragmas, `_sync_*` tables, indexes,
/// `_sync_`-mentioning triggers and the normalised state.
pub fn dump_runtime(conn: &Connection) -> Value {
    let foreign_keys: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    let names: Vec<String> = query(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
        |r| Ok(json!(r.get::<_, String>(0)?)),
    )
    .into_iter()
    .map(|v| v.as_str().unwrap().to_string())
    .filter(|n| n.starts_with("_sync_"))
    .collect();
    let tables: Vec<Value> = names
        .iter()
        .map(|t| {
            let columns = query(conn, &format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')"), |r| {
                Ok(json!({
                    "name": r.get::<_, String>(0)?, "type": r.get::<_, String>(1)?, "notNull": r.get::<_, i64>(2)? != 0,
                    "defaultValue": r.get::<_, Option<String>>(3)?, "primaryKeyPosition": r.get::<_, i64>(4)?,
                }))
            });
            json!({"name": t, "columns": columns})
        })
        .collect();
    let indexes: Vec<Value> = query(
        conn,
        "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        |r| Ok(json!([r.get::<_, String>(0)?, r.get::<_, String>(1)?])),
    )
    .into_iter()
    .filter(|v| v[1].as_str().unwrap().starts_with("_sync_"))
    .map(|v| {
        let name = v[0].as_str().unwrap();
        let unique: i64 = conn
            .query_row(&format!("SELECT \"unique\" FROM pragma_index_list('{}') WHERE name = ?1", v[1].as_str().unwrap()), [name], |r| r.get(0))
            .unwrap();
        let columns = query(conn, &format!("SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"), |r| {
            Ok(json!(r.get::<_, String>(0)?))
        });
        json!({"name": name, "unique": unique != 0, "table": v[1], "columns": columns})
    })
    .collect();
    let triggers: Vec<Value> = query(conn, "SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name", |r| {
        Ok(json!({"name": r.get::<_, String>(0)?, "table": r.get::<_, String>(1)?, "sql": normalize_trigger_sql(&r.get::<_, String>(2)?)}))
    })
    .into_iter()
    .filter(|t| t["sql"].as_str().unwrap().contains("_sync_"))
    .collect();
    json!({
        "pragmas": {"foreignKeys": foreign_keys},
        "tables": tables,
        "indexes": indexes,
        "triggers": triggers,
        "state": normalize_state(&dump_state(conn)),
    })
}
