//! The SQL catalog dump of `local-schema/*/schema.expected.json` (protocol digest §11.2).
use rusqlite::Connection;
use serde_json::{json, Value};

/// Our configuration tables: the only objects oversqlite adds beyond SQLiteNow's runtime.
/// Catalog comparisons drop them (and assert they are present).
pub const OVERSQLITE_CONFIG_TABLES: [&str; 2] = ["_oversqlite_config", "_oversqlite_tables"];

/// Trims, collapses whitespace runs and drops `IF NOT EXISTS` after `CREATE TRIGGER`.
pub fn normalize_trigger_sql(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.strip_prefix("CREATE TRIGGER IF NOT EXISTS ") {
        Some(rest) => format!("CREATE TRIGGER {rest}"),
        None => collapsed,
    }
}

fn rows(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    f: impl Fn(&rusqlite::Row) -> rusqlite::Result<Value>,
) -> Vec<Value> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map(params, |r| f(r))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

fn is_excluded(name: &str) -> bool {
    name.starts_with("sqlite_") || OVERSQLITE_CONFIG_TABLES.contains(&name)
}

/// `{catalog, tables, views, triggers}` as in the fixture, without our config tables.
pub fn dump(conn: &Connection) -> Value {
    let catalog: Vec<Value> = rows(
        conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name",
        &[],
        |r| {
            let kind: String = r.get(0)?;
            let sql: Option<String> = r.get(3)?;
            let sql = if kind == "trigger" { sql.map(|s| normalize_trigger_sql(&s)) } else { sql };
            Ok(json!({"type": kind, "name": r.get::<_, String>(1)?, "tableName": r.get::<_, String>(2)?, "sql": sql}))
        },
    )
    .into_iter()
    .filter(|v| !is_excluded(v["name"].as_str().unwrap()) && !is_excluded(v["tableName"].as_str().unwrap()))
    .collect();
    let table_names: Vec<String> = catalog
        .iter()
        .filter(|v| v["type"] == "table")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = table_names.clone();
    sorted.sort();
    let tables: Vec<Value> = sorted.iter().map(|t| table(conn, t)).collect();
    let views: Vec<Value> = catalog
        .iter()
        .filter(|v| v["type"] == "view")
        .map(|v| json!({"name": v["name"], "sql": v["sql"]}))
        .collect();
    let triggers: Vec<Value> = catalog
        .iter()
        .filter(|v| v["type"] == "trigger")
        .map(|v| json!({"name": v["name"], "tableName": v["tableName"], "sql": v["sql"]}))
        .collect();
    json!({"catalog": catalog, "tables": tables, "views": views, "triggers": triggers})
}

fn table(conn: &Connection, name: &str) -> Value {
    let columns = rows(
        conn,
        "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
        &[&name],
        |r| {
            Ok(json!({
                "cid": r.get::<_, i64>(0)?, "name": r.get::<_, String>(1)?, "type": r.get::<_, String>(2)?,
                "notNull": r.get::<_, i64>(3)? != 0, "defaultValue": r.get::<_, Option<String>>(4)?,
                "primaryKeyPosition": r.get::<_, i64>(5)?,
            }))
        },
    );
    let foreign_keys = rows(
        conn,
        "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" FROM pragma_foreign_key_list(?1)",
        &[&name],
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?, "seq": r.get::<_, i64>(1)?, "table": r.get::<_, String>(2)?,
                "from": r.get::<_, String>(3)?, "to": r.get::<_, Option<String>>(4)?,
                "onUpdate": r.get::<_, String>(5)?, "onDelete": r.get::<_, String>(6)?, "match": r.get::<_, String>(7)?,
            }))
        },
    );
    let indexes = rows(conn, "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?1)", &[&name], |r| {
        Ok(json!({
            "seq": r.get::<_, i64>(0)?, "name": r.get::<_, String>(1)?, "unique": r.get::<_, i64>(2)? != 0,
            "origin": r.get::<_, String>(3)?, "partial": r.get::<_, i64>(4)? != 0,
        }))
    })
    .into_iter()
    .map(|mut idx| {
        let idx_name = idx["name"].as_str().unwrap().to_string();
        idx["columns"] = Value::Array(rows(
            conn,
            "SELECT seqno, cid, name, \"desc\", coll, \"key\" FROM pragma_index_xinfo(?1)",
            &[&idx_name],
            |r| {
                Ok(json!({
                    "seqno": r.get::<_, i64>(0)?, "cid": r.get::<_, i64>(1)?, "name": r.get::<_, Option<String>>(2)?,
                    "desc": r.get::<_, i64>(3)? != 0, "collation": r.get::<_, String>(4)?, "key": r.get::<_, i64>(5)? != 0,
                }))
            },
        ));
        idx
    })
    .collect::<Vec<_>>();
    json!({"name": name, "columns": columns, "foreignKeys": foreign_keys, "indexes": indexes})
}
