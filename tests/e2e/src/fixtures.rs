//! Locating and reading the shared contract fixtures.
use std::path::PathBuf;

use serde_json::Value;

#[path = "../../contract_fixtures.rs"]
mod contract_fixtures;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared contract fixtures (see `tests/contract_fixtures.rs` for where they are found).
pub fn contracts_dir() -> PathBuf {
    contract_fixtures::dir(&repo())
}

/// Call first in every fixture test: `if !fixtures::fixtures_available() { return; }`.
pub fn fixtures_available() -> bool {
    contract_fixtures::available(&repo())
}

pub fn fixture_text(rel: &str) -> String {
    let path = contracts_dir().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

pub fn fixture(rel: &str) -> Value {
    serde_json::from_str(&fixture_text(rel))
        .unwrap_or_else(|e| panic!("fixture {rel} is not JSON: {e}"))
}

/// Splits a fixture `schema.sql` on `;`, dropping `--` comment lines.
pub fn split_sql(text: &str) -> Vec<String> {
    let cleaned: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    cleaned
        .join("\n")
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
