//! Drives `rich-schema/business-rich-v0.json` from the server side: the shipped
//! `config/business.toml` must register exactly the fixture's tables, columns, keys and
//! foreign keys, with the reference example server's PostgreSQL types (go-oversync 1f1118f,
//! examples/nethttp_server/server/handlers.go): every key and foreign-key column uuid (the
//! fixture's `text`/`blob` is the local SQLite type), `created_at`/`updated_at` nullable with
//! default now() where the local schema has them NOT NULL with a default, other
//! nullability as in the fixture.

mod common;

use std::path::PathBuf;

use serde_json::Value;

#[path = "../../tests/contract_fixtures.rs"]
mod contract_fixtures;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn business_config_matches_the_rich_schema_fixture() {
    if !contract_fixtures::available(&repo()) {
        return;
    }
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            contract_fixtures::dir(&repo()).join("rich-schema/business-rich-v0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(common::example_config_path()).unwrap()).unwrap();
    let tables = config["tables"].as_array().unwrap();
    let fixture_tables = fixture["tables"].as_array().unwrap();
    assert_eq!(tables.len(), fixture_tables.len());
    // Tables whose client key is a BLOB carry uuid keys on the server.
    let blob_keyed: Vec<&str> = fixture_tables
        .iter()
        .filter(|t| {
            let key = t["syncKeyColumnName"].as_str().unwrap();
            t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == key && c["logicalType"] == "blob")
        })
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(blob_keyed, ["file_reviews", "files"]);
    for expected in fixture_tables {
        let name = expected["name"].as_str().unwrap();
        let table = tables
            .iter()
            .find(|t| t["table"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} not configured"));
        assert_eq!(
            table["schema"].as_str(),
            fixture["schema"].as_str(),
            "{name}"
        );
        assert_eq!(
            table["key"].as_str(),
            expected["syncKeyColumnName"].as_str(),
            "{name}"
        );
        assert_eq!(
            expected["primaryKey"],
            serde_json::json!([expected["syncKeyColumnName"]])
        );
        let fks = expected["foreignKeys"].as_array().unwrap();
        let columns = table["columns"].as_array().unwrap();
        let fixture_columns = expected["columns"].as_array().unwrap();
        assert_eq!(columns.len(), fixture_columns.len(), "{name}");
        for (column, want) in columns.iter().zip(fixture_columns) {
            let column_name = want["name"].as_str().unwrap();
            assert_eq!(
                column["name"].as_str(),
                Some(column_name),
                "{name}: column order"
            );
            let nullable = column
                .get("nullable")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let default = column.get("default").and_then(|v| v.as_str());
            if ["created_at", "updated_at"].contains(&column_name)
                && !want["nullable"].as_bool().unwrap()
            {
                // PostgreSQL `TIMESTAMPTZ DEFAULT now()` in the reference example.
                assert_eq!(
                    (nullable, default, column["type"].as_str()),
                    (true, Some("now()"), Some("timestamp")),
                    "{name}.{column_name}"
                );
            } else {
                assert_eq!(
                    nullable,
                    want["nullable"].as_bool().unwrap(),
                    "{name}.{column_name}"
                );
                assert_eq!(default, None, "{name}.{column_name}");
            }
            let is_foreign_key = fks.iter().any(|fk| fk["from"] == column_name);
            let is_key = expected["syncKeyColumnName"] == column_name;
            let server_type = column["type"].as_str().unwrap();
            let allowed: &[&str] = match want["logicalType"].as_str().unwrap() {
                _ if is_key || is_foreign_key => &["uuid"],
                "blob" => &["blob"],
                "text" => &["text", "timestamp"],
                "integer" => &["integer"],
                "real" => &["real"],
                other => panic!("unknown logical type {other}"),
            };
            assert!(
                allowed.contains(&server_type),
                "{name}.{column_name}: {server_type} not in {allowed:?}"
            );
        }
        let configured: Vec<(String, String, String)> = table
            .get("foreign_keys")
            .and_then(|v| v.as_array())
            .map(|fks| {
                fks.iter()
                    .map(|fk| {
                        (
                            fk["column"].as_str().unwrap().to_string(),
                            fk["references"].as_str().unwrap().to_string(),
                            fk.get("on_delete")
                                .and_then(|v| v.as_str())
                                .unwrap_or("no_action")
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let wanted: Vec<(String, String, String)> = fks
            .iter()
            .map(|fk| {
                let target = fk["toTable"].as_str().unwrap();
                let target_key = fixture_tables.iter().find(|t| t["name"] == target).unwrap()
                    ["syncKeyColumnName"]
                    .clone();
                assert_eq!(
                    fk["toColumn"], target_key,
                    "{name}: foreign keys reference sync keys"
                );
                let on_delete = match fk["onDelete"].as_str().unwrap() {
                    "CASCADE" => "cascade",
                    "NO ACTION" => "no_action",
                    other => panic!("unsupported onDelete {other}"),
                };
                (
                    fk["from"].as_str().unwrap().to_string(),
                    target.to_string(),
                    on_delete.to_string(),
                )
            })
            .collect();
        assert_eq!(configured, wanted, "{name}: foreign keys");
    }
}
