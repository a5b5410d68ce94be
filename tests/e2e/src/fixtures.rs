//! Locating and reading the shared contract fixtures.
use std::path::PathBuf;

use serde_json::Value;

/// `$OVERSQLITE_CONTRACTS_DIR`, else `shared/contracts` inside or next to the repository.
pub fn contracts_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("OVERSQLITE_CONTRACTS_DIR") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for candidate in [
        repo.join("shared/contracts"),
        repo.join("../shared/contracts"),
    ] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!(
        "contract fixtures not found next to {}; set OVERSQLITE_CONTRACTS_DIR",
        repo.display()
    );
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
