#![allow(dead_code)]
use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::Value;

#[path = "../../../tests/contract_fixtures.rs"]
mod contract_fixtures;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared contract fixtures (see `tests/contract_fixtures.rs` for where they are found).
pub fn contracts_dir() -> PathBuf {
    contract_fixtures::dir(&repo())
}

/// Call first in every fixture test: `if !common::fixtures_available() { return; }`.
pub fn fixtures_available() -> bool {
    contract_fixtures::available(&repo())
}

pub fn fixture(rel: &str) -> Value {
    let path = contracts_dir().join(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn fixture_text(rel: &str) -> String {
    std::fs::read_to_string(contracts_dir().join(rel)).unwrap()
}

/// `schema.sql` split on `;` with `--` comment lines removed.
pub fn split_sql(text: &str) -> Vec<String> {
    let cleaned: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    cleaned
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub fn memory() -> Connection {
    Connection::open_in_memory().unwrap()
}

/// Applies a fixture `config.json` through the core configuration API.
pub fn configure(conn: &Connection, config: &Value) {
    oversqlite_core::config::init(
        conn,
        "https://sync.test",
        config["schema"].as_str().unwrap(),
    )
    .unwrap();
    for t in config["syncTables"].as_array().unwrap() {
        let key = t["syncKeyColumnName"].as_str().unwrap().to_string();
        oversqlite_core::config::enable_sync(conn, t["tableName"].as_str().unwrap(), &[key])
            .unwrap();
    }
}
