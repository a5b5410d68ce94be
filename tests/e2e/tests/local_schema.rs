//! Runs every `local-schema/<fixture>/` case through the loaded extension: the full SQL
//! catalog after `oversqlite_open()` (§11.2) and every write-transition case.
use oversqlite_tests::{catalog, fixtures, host};
use rusqlite::Connection;
use serde_json::{json, Value};

const FIXTURES: [&str; 4] = [
    "basic-sync",
    "blob-sync",
    "business-rich-v0",
    "cascade-sync",
];

fn opened(fixture: &str) -> Connection {
    let conn = host::memory();
    for stmt in fixtures::split_sql(&fixtures::fixture_text(&format!(
        "local-schema/{fixture}/schema.sql"
    ))) {
        conn.execute_batch(&stmt).unwrap();
    }
    host::configure(
        &conn,
        &fixtures::fixture(&format!("local-schema/{fixture}/config.json")),
    )
    .unwrap();
    host::open(&conn).unwrap();
    conn
}

/// Compares arrays element by element so a failure names the differing entry.
fn assert_same(fixture: &str, what: &str, got: &Value, want: &Value) {
    let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
    for (a, b) in g.iter().zip(w) {
        assert_eq!(a, b, "{fixture}: {what} entry differs");
    }
    assert_eq!(g.len(), w.len(), "{fixture}: {what} count");
}

#[test]
fn catalog_matches_every_fixture() {
    if !fixtures::fixtures_available() {
        return;
    }
    for fixture in FIXTURES {
        let conn = opened(fixture);
        let want = fixtures::fixture(&format!("local-schema/{fixture}/schema.expected.json"));
        let got = catalog::dump(&conn);
        for key in ["catalog", "tables", "views", "triggers"] {
            assert_same(fixture, key, &got[key], &want[key]);
        }
        // The configuration tables are the only extra objects, and they exist.
        let extra: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<String>>>()
            .unwrap()
            .into_iter()
            .filter(|n| !want["catalog"].as_array().unwrap().iter().any(|c| c["name"] == n.as_str()))
            .collect();
        assert_eq!(
            extra,
            catalog::OVERSQLITE_CONFIG_TABLES.to_vec(),
            "{fixture}: unexpected extra objects"
        );
    }
}

#[test]
fn reopening_keeps_the_catalog_identical() {
    if !fixtures::fixtures_available() {
        return;
    }
    for fixture in FIXTURES {
        let conn = opened(fixture);
        let before = catalog::dump(&conn);
        let report = host::open(&conn).unwrap();
        assert_eq!(
            report["triggers_written"],
            json!(0),
            "{fixture}: second open rewrote triggers"
        );
        assert_eq!(catalog::dump(&conn), before, "{fixture}");
    }
}

fn dirty_rows(conn: &Connection) -> Value {
    let mut stmt = conn
        .prepare(
            "SELECT schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal
             FROM _sync_dirty_rows ORDER BY dirty_ordinal, table_name, key_json",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(json!({
                "schemaName": r.get::<_, String>(0)?, "tableName": r.get::<_, String>(1)?,
                "keyJson": r.get::<_, String>(2)?, "op": r.get::<_, String>(3)?,
                "baseRowVersion": r.get::<_, i64>(4)?, "payload": r.get::<_, Option<String>>(5)?,
                "dirtyOrdinal": r.get::<_, i64>(6)?,
            }))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    Value::Array(rows)
}

#[test]
fn write_transitions_match_every_case() {
    if !fixtures::fixtures_available() {
        return;
    }
    let mut cases_run = 0;
    for fixture in FIXTURES {
        let input = fixtures::fixture(&format!("local-schema/{fixture}/write-transitions.json"));
        let expected = fixtures::fixture(&format!(
            "local-schema/{fixture}/write-transitions.expected.json"
        ));
        let (cases, wants) = (
            input["cases"].as_array().unwrap(),
            expected["cases"].as_array().unwrap(),
        );
        assert_eq!(cases.len(), wants.len(), "{fixture}: case count");
        for (case, want) in cases.iter().zip(wants) {
            let name = case["name"].as_str().unwrap();
            assert_eq!(case["name"], want["name"], "{fixture}: case order");
            let conn = opened(fixture);
            for sql in case["setupSql"]
                .as_array()
                .unwrap()
                .iter()
                .chain(case["actionSql"].as_array().unwrap())
            {
                conn.execute_batch(sql.as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{fixture}/{name}: {sql}: {e}"));
            }
            assert_eq!(
                dirty_rows(&conn),
                want["dirtyRows"],
                "{fixture}/{name}: dirty rows"
            );
            for (table, count) in want["applicationRowCounts"].as_object().unwrap() {
                let n: i64 = conn
                    .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(json!(n), *count, "{fixture}/{name}: rows in {table}");
            }
            // The same rows are visible through the extension's pending view.
            let pending: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM oversqlite_pending WHERE state = 'dirty'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                pending as usize,
                want["dirtyRows"].as_array().unwrap().len(),
                "{fixture}/{name}: oversqlite_pending"
            );
            cases_run += 1;
        }
    }
    assert!(cases_run >= 4, "no write-transition cases ran");
}
