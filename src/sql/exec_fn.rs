//! `oversqlite_exec(script)`: a schema or migration script, with sync enabled for the
//! tables its SQLiteNow annotations mark (`-- @@{ enableSync=true }` above a
//! `CREATE TABLE`). The work is `oversqlite_core::script`.
use oversqlite_core::{script, Error};
use rusqlite::Connection;
use serde_json::json;

use super::args::Args;

/// → `{"statements":N,"created_tables":[...],"enabled_tables":[{"table","sync_key_column"}]}`.
pub fn exec(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(1, 1, "oversqlite_exec(script)")?;
    let text = args.text(0, "script")?;
    let report = script::exec_script(conn, &text)?;
    let enabled: Vec<_> = report
        .enabled
        .iter()
        .map(|(table, key)| json!({"table": table, "sync_key_column": key}))
        .collect();
    Ok(json!({
        "statements": report.statements,
        "created_tables": report.created_tables,
        "enabled_tables": enabled,
    })
    .to_string())
}
