//! Trigger text, runtime DDL and capture behaviour against the four `local-schema/*`
//! fixtures, on bundled SQLite through the core API (the extension runners in tests/e2e
//! compare the full catalog).
mod common;

use oversqlite_core::sql_text::normalize_sql;
use oversqlite_core::{open, triggers};
use serde_json::{json, Value};

const FIXTURES: [&str; 4] = [
    "basic-sync",
    "blob-sync",
    "business-rich-v0",
    "cascade-sync",
];

fn opened(fixture: &str) -> rusqlite::Connection {
    let conn = common::memory();
    for stmt in common::split_sql(&common::fixture_text(&format!(
        "local-schema/{fixture}/schema.sql"
    ))) {
        conn.execute_batch(&stmt).unwrap();
    }
    common::configure(
        &conn,
        &common::fixture(&format!("local-schema/{fixture}/config.json")),
    );
    open::open(&conn).unwrap();
    conn
}

#[test]
fn generated_triggers_match_fixture_text() {
    if !common::fixtures_available() {
        return;
    }
    for fixture in FIXTURES {
        let conn = opened(fixture);
        let expected = common::fixture(&format!("local-schema/{fixture}/schema.expected.json"));
        let want: Vec<(String, String)> = expected["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["sql"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .unwrap();
        let got: Vec<(String, String)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, normalize_sql(&r.get::<_, String>(1)?)))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(got.len(), want.len(), "{fixture}: trigger count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{fixture}: trigger differs");
        }
        // Fixture SQL must also equal our generator's output, not just what SQLite stored.
        let config = oversqlite_core::config::load(&conn).unwrap();
        for table in &config.tables {
            for (name, sql) in triggers::trigger_sql(&config.schema, table) {
                let w = want.iter().find(|(n, _)| *n == name).unwrap();
                assert_eq!(normalize_sql(&sql), w.1, "{fixture}: {name}");
            }
        }
    }
}

#[test]
fn runtime_ddl_is_byte_identical() {
    if !common::fixtures_available() {
        return;
    }
    for fixture in FIXTURES {
        let conn = opened(fixture);
        let expected = common::fixture(&format!("local-schema/{fixture}/schema.expected.json"));
        for entry in expected["catalog"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            if !name.starts_with("_sync_") && !name.starts_with("idx_sync_") {
                continue;
            }
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, entry["sql"].as_str().unwrap(), "{fixture}: {name}");
        }
    }
}

fn dirty_rows(conn: &rusqlite::Connection) -> Value {
    let mut stmt = conn
        .prepare(
            "SELECT schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal
             FROM _sync_dirty_rows ORDER BY dirty_ordinal, table_name, key_json",
        )
        .unwrap();
    let rows: Vec<Value> = stmt
        .query_map([], |r| {
            Ok(json!({
                "schemaName": r.get::<_, String>(0)?, "tableName": r.get::<_, String>(1)?,
                "keyJson": r.get::<_, String>(2)?, "op": r.get::<_, String>(3)?,
                "baseRowVersion": r.get::<_, i64>(4)?, "payload": r.get::<_, Option<String>>(5)?,
                "dirtyOrdinal": r.get::<_, i64>(6)?,
            }))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    Value::Array(rows)
}

#[test]
fn write_transitions_capture_as_fixtures_expect() {
    if !common::fixtures_available() {
        return;
    }
    for fixture in FIXTURES {
        let input = common::fixture(&format!("local-schema/{fixture}/write-transitions.json"));
        let expected = common::fixture(&format!(
            "local-schema/{fixture}/write-transitions.expected.json"
        ));
        for (case, want) in input["cases"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected["cases"].as_array().unwrap())
        {
            assert_eq!(case["name"], want["name"]);
            let conn = opened(fixture);
            for sql in case["setupSql"]
                .as_array()
                .unwrap()
                .iter()
                .chain(case["actionSql"].as_array().unwrap())
            {
                conn.execute_batch(sql.as_str().unwrap()).unwrap();
            }
            assert_eq!(
                dirty_rows(&conn),
                want["dirtyRows"],
                "{fixture}/{}",
                case["name"]
            );
            for (table, count) in want["applicationRowCounts"].as_object().unwrap() {
                let n: i64 = conn
                    .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(
                    Value::from(n),
                    *count,
                    "{fixture}/{}: {table}",
                    case["name"]
                );
            }
        }
    }
}
