//! `oversqlite_init`, `oversqlite_enable_sync`, `oversqlite_disable_sync`, `oversqlite_config`.
use oversqlite_core::{config, ddl, Error};
use rusqlite::Connection;
use serde_json::{json, Value};

use super::args::Args;

/// The persisted configuration plus the tables the last `open` applied.
pub fn config_json(conn: &Connection) -> Result<String, Error> {
    let settings = config::read_settings(conn)?;
    let active: Value = if ddl::runtime_installed(conn)? {
        json!(oversqlite_core::store::registry::table_names(conn)?)
    } else {
        Value::Null
    };
    Ok(json!({
        "server_url": settings.server_url,
        "schema": settings.schema,
        "tables": settings.tables,
        "active_tables": active,
    })
    .to_string())
}

/// `oversqlite_init(server_url, remote_schema)` → configuration JSON.
pub fn init(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(2, 2, "oversqlite_init(server_url, remote_schema)")?;
    let url = args.text(0, "server_url")?;
    let schema = args.text(1, "remote_schema")?;
    config::init(conn, &url, &schema)?;
    config_json(conn)
}

/// `oversqlite_enable_sync(table [, sync_key_column])` → configuration JSON. Extra key
/// arguments are accepted only to report that composite sync keys are unsupported.
pub fn enable_sync(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(
        1,
        usize::MAX,
        "oversqlite_enable_sync(table [, sync_key_column])",
    )?;
    let table = args.text(0, "table")?;
    let keys = (1..args.len())
        .map(|i| args.text(i, "sync_key_column"))
        .collect::<Result<Vec<_>, _>>()?;
    config::enable_sync(conn, &table, &keys)?;
    config_json(conn)
}

/// `oversqlite_disable_sync(table)` → configuration JSON.
pub fn disable_sync(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(1, 1, "oversqlite_disable_sync(table)")?;
    let table = args.text(0, "table")?;
    config::disable_sync(conn, &table)?;
    config_json(conn)
}

/// `oversqlite_config()` → configuration JSON.
pub fn show(conn: &Connection, args: &Args) -> Result<String, Error> {
    args.expect_count(0, 0, "oversqlite_config()")?;
    config_json(conn)
}
