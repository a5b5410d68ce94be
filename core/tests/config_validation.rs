//! Drives every case of `local-schema/config-validation.json` through the core API: the
//! registrations go straight to `validate_tables` (so an omitted key stays omitted), then
//! accepted configurations are persisted and opened.
mod common;

use oversqlite_core::validate::{validate_tables, TableRegistration};
use oversqlite_core::{config, open};
use serde_json::Value;

fn registrations(cfg: &Value) -> Vec<TableRegistration> {
    cfg["syncTables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut keys: Vec<String> = t["syncKeyColumns"]
                .as_array()
                .map(|a| a.iter().map(|k| k.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            if let Some(k) = t["syncKeyColumnName"].as_str() {
                keys.insert(0, k.to_string());
            }
            TableRegistration {
                table_name: t["tableName"].as_str().unwrap().to_string(),
                sync_key_columns: keys,
            }
        })
        .collect()
}

#[test]
fn every_config_validation_case() {
    if !common::fixtures_available() {
        return;
    }
    let doc = common::fixture("local-schema/config-validation.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let conn = common::memory();
        for sql in case["schemaSql"].as_array().unwrap() {
            conn.execute_batch(sql.as_str().unwrap()).unwrap();
        }
        let cfg = &case["config"];
        let schema = cfg["schema"].as_str().unwrap();
        let regs = registrations(cfg);
        let result = validate_tables(&conn, schema, &regs);
        match &case["expectedError"] {
            Value::Null => {
                result.unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
                config::init(&conn, "https://sync.test", schema).unwrap();
                for r in &regs {
                    config::enable_sync(&conn, &r.table_name, &r.sync_key_columns).unwrap();
                }
                open::open(&conn).unwrap_or_else(|e| panic!("{name}: open failed: {e}"));
                for sql in case["afterOpenSql"].as_array().into_iter().flatten() {
                    conn.execute_batch(sql.as_str().unwrap()).unwrap();
                }
                for q in case["expectedQueries"].as_array().unwrap() {
                    let got: rusqlite::types::Value = conn
                        .query_row(q["sql"].as_str().unwrap(), [], |r| r.get(0))
                        .unwrap();
                    let got = match got {
                        rusqlite::types::Value::Integer(i) => Value::from(i),
                        rusqlite::types::Value::Text(t) => Value::from(t),
                        other => panic!("{name}: unexpected value {other:?}"),
                    };
                    assert_eq!(got, q["value"], "{name}: {}", q["name"]);
                }
            }
            expected => {
                let err = result.expect_err(name);
                assert_eq!(err.code.as_str(), "invalid_config", "{name}");
                for frag in expected["messageContains"].as_array().unwrap() {
                    assert!(
                        err.message.contains(frag.as_str().unwrap()),
                        "{name}: {:?} lacks {frag}",
                        err.message
                    );
                }
            }
        }
    }
}
