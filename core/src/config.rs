//! Sync configuration persisted in the application database, outside the `_sync_*`
//! namespace, so a migration sets it once and every `open` re-reads it:
//! `_oversqlite_config` (server URL + remote schema) and `_oversqlite_tables`
//! (one row per enabled table, in enable order). Changes take effect at the next `open`.
//!
//! Enabling validates the table on its own at once (it must exist, have a single TEXT or
//! BLOB primary key, no `_sync_scope_id`); FK closure needs the whole set, so `open`
//! checks it. When `open` first manages a table on an already-bound database it queues the
//! table's existing rows, as the triggers would have.
//!
//! Disabling removes the registration; the next `open` drops the table's six triggers and
//! its `_sync_managed_tables` row, keeps its `_sync_row_state` rows (so re-enabling resumes
//! from the known versions), and refuses with `state_conflict` while dirty or outbox rows
//! of that table still wait for upload.
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};
use crate::model::Config;
use crate::table_info;
use crate::tx::write_tx;
use crate::validate::{self, TableRegistration};

pub const CONFIG_TABLE: &str = "_oversqlite_config";
pub const TABLES_TABLE: &str = "_oversqlite_tables";

const CONFIG_DDL: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS _oversqlite_config (
  singleton_key INTEGER NOT NULL PRIMARY KEY CHECK (singleton_key = 1),
  server_url TEXT NOT NULL,
  schema_name TEXT NOT NULL
)",
    "CREATE TABLE IF NOT EXISTS _oversqlite_tables (
  table_name TEXT NOT NULL PRIMARY KEY,
  sync_key_column TEXT NOT NULL,
  position INTEGER NOT NULL
)",
];

/// One enabled table as persisted (not yet validated against the live schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSetting {
    pub table: String,
    pub sync_key_column: String,
}

/// The persisted configuration, as written by `init`/`enable_sync`/`disable_sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Settings {
    /// `None` until `init` has run.
    pub server_url: Option<String>,
    pub schema: Option<String>,
    /// In enable order (the tie-breaker for FK ordering).
    pub tables: Vec<TableSetting>,
}

fn config_tables_exist(conn: &Connection) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name IN ('_oversqlite_config', '_oversqlite_tables')",
        [],
        |r| r.get(0),
    )?;
    Ok(n == 2)
}

fn ensure_config_tables(conn: &Connection) -> Result<()> {
    for ddl in CONFIG_DDL {
        conn.execute(ddl, [])?;
    }
    Ok(())
}

/// Reads the persisted configuration; empty settings when nothing was configured yet.
pub fn read_settings(conn: &Connection) -> Result<Settings> {
    if !config_tables_exist(conn)? {
        return Ok(Settings::default());
    }
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT server_url, schema_name FROM _oversqlite_config WHERE singleton_key = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut stmt = conn.prepare(
        "SELECT table_name, sync_key_column FROM _oversqlite_tables ORDER BY position, table_name",
    )?;
    let tables = stmt
        .query_map([], |r| {
            Ok(TableSetting {
                table: r.get(0)?,
                sync_key_column: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Settings {
        server_url: row.as_ref().map(|r| r.0.clone()),
        schema: row.map(|r| r.1),
        tables,
    })
}

/// Longest accepted `server_url`, in bytes.
pub const MAX_SERVER_URL_BYTES: usize = 2048;

/// Accepts `http://host…` or `https://host…` without whitespace, NUL bytes or
/// credentials (`user:password@host`), at most [`MAX_SERVER_URL_BYTES`] long. The
/// rejections that could carry a secret or a huge value never echo the URL.
pub fn validate_server_url(url: &str) -> Result<()> {
    if url.len() > MAX_SERVER_URL_BYTES {
        return Err(Error::config(format!(
            "server_url is {} bytes long; at most {MAX_SERVER_URL_BYTES} bytes are accepted",
            url.len()
        )));
    }
    if url.contains('\0') {
        return Err(Error::config("server_url must not contain NUL bytes"));
    }
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(Error::config(
            "server_url must not contain credentials (user:password@host); pass the bearer token with oversqlite_set_token(token) or an oversqlite_auth_token() function instead",
        ));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let host_ok = rest
        .map(|r| !r.is_empty() && !r.starts_with('/'))
        .unwrap_or(false);
    if !host_ok || url.chars().any(char::is_whitespace) {
        return Err(Error::config(format!(
            "server_url \"{url}\" must be an http:// or https:// URL with a host, e.g. 'https://sync.example.com'"
        )));
    }
    Ok(())
}

/// Sets the server URL and remote schema (replacing earlier values).
pub fn init(conn: &Connection, server_url: &str, schema: &str) -> Result<Settings> {
    let url = server_url.trim();
    validate_server_url(url)?;
    validate::validate_schema_name(schema)?;
    write_tx(conn, |conn| {
        ensure_config_tables(conn)?;
        conn.execute(
            "INSERT INTO _oversqlite_config(singleton_key, server_url, schema_name) VALUES (1, ?1, ?2)
             ON CONFLICT(singleton_key) DO UPDATE SET server_url = excluded.server_url, schema_name = excluded.schema_name",
            [url, schema.trim()],
        )?;
        Ok(())
    })?;
    read_settings(conn)
}

/// Resolves the default sync key: the table's single PRIMARY KEY column.
fn default_key(conn: &Connection, table: &str) -> Result<String> {
    if !table_info::table_exists(conn, table)? {
        return Err(Error::config(format!(
            "table \"{table}\" does not exist in the main database; create it before enabling sync"
        )));
    }
    let pk: Vec<String> = table_info::columns(conn, table)?
        .into_iter()
        .filter(|c| c.pk > 0)
        .map(|c| c.name)
        .collect();
    if pk.len() != 1 {
        return Err(Error::config(format!(
            "table \"{table}\" must declare exactly one local SQLite PRIMARY KEY column (it has {}); composite or missing primary keys are not supported",
            pk.len()
        )));
    }
    Ok(pk[0].clone())
}

/// Registers a table for sync. `keys` empty = use the single PRIMARY KEY column.
/// Validates the table on its own (FK closure is checked at `open`, when the whole set is
/// known). A rejected call writes nothing. Returns the sync key column used.
pub fn enable_sync(conn: &Connection, table: &str, keys: &[String]) -> Result<String> {
    let name = validate::normalize_table_name(table)?;
    let keys = if keys.is_empty() {
        vec![default_key(conn, &name)?]
    } else {
        keys.to_vec()
    };
    let managed = validate::validate_table(
        conn,
        &TableRegistration {
            table_name: name.clone(),
            sync_key_columns: keys,
        },
    )?;
    let existing = read_settings(conn)?
        .tables
        .into_iter()
        .find(|t| t.table == name);
    if let Some(existing) = existing {
        if existing
            .sync_key_column
            .eq_ignore_ascii_case(&managed.key_column)
        {
            return Ok(existing.sync_key_column);
        }
        return Err(Error::config(format!(
            "table \"{name}\" is already enabled with sync key column {}; call oversqlite_disable_sync('{name}') first to change it",
            existing.sync_key_column
        )));
    }
    write_tx(conn, |conn| {
        ensure_config_tables(conn)?;
        conn.execute(
            "INSERT INTO _oversqlite_tables(table_name, sync_key_column, position)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(position), 0) + 1 FROM _oversqlite_tables))",
            [&name, &managed.key_column],
        )?;
        Ok(())
    })?;
    Ok(managed.key_column)
}

/// Removes a table from the configuration; the next `open` drops its triggers.
pub fn disable_sync(conn: &Connection, table: &str) -> Result<()> {
    let name = validate::normalize_table_name(table)?;
    if !read_settings(conn)?.tables.iter().any(|t| t.table == name) {
        return Err(Error::argument(format!(
            "table \"{name}\" is not enabled for sync; see oversqlite_config() for the enabled tables"
        )));
    }
    write_tx(conn, |conn| {
        conn.execute(
            "DELETE FROM _oversqlite_tables WHERE table_name = ?1",
            [&name],
        )?;
        Ok(())
    })
}

/// Reads and fully validates the configuration against the live schema; tables come
/// back in FK order (parents first).
pub fn load(conn: &Connection) -> Result<Config> {
    let settings = read_settings(conn)?;
    let (Some(server_url), Some(schema)) = (settings.server_url, settings.schema) else {
        return Err(Error::new(
            ErrorCode::NotConfigured,
            "sync is not configured; call oversqlite_init(server_url, remote_schema) first",
        ));
    };
    let regs: Vec<TableRegistration> = settings
        .tables
        .iter()
        .map(|t| TableRegistration {
            table_name: t.table.clone(),
            sync_key_columns: if t.sync_key_column.trim().is_empty() {
                vec![]
            } else {
                vec![t.sync_key_column.clone()]
            },
        })
        .collect();
    let tables = validate::validate_tables(conn, &schema, &regs)?;
    Ok(Config {
        server_url,
        schema,
        tables,
    })
}
