//! `open`: the local, idempotent start-up of the runtime (protocol digest §3.1, §7.2).
//! Every step runs in one write transaction, so a failed open leaves the file untouched.
use rusqlite::Connection;
use serde::Serialize;

use crate::config;
use crate::ddl;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Config, ManagedTable};
use crate::sql_text::{key_expr, quote_ident, quote_literal, row_expr};
use crate::state::{self, AttachmentState};
use crate::store::{BindingState, OperationKind};
use crate::triggers;
use crate::tx::write_tx;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenReport {
    pub source_id: String,
    pub schema: String,
    /// Managed tables in FK order (parents first).
    pub managed_tables: Vec<String>,
    /// True when this open bound the first source (and captured pre-existing rows).
    pub first_open: bool,
    /// Pre-existing rows queued as pending changes: every row on the first open, and the
    /// rows of tables newly enabled since the previous open.
    pub captured_rows: i64,
    /// Triggers created or replaced by this open (0 when nothing changed).
    pub triggers_written: usize,
    /// Tables disabled since the previous open whose triggers were removed.
    pub removed_tables: Vec<String>,
}

/// Runs the open procedure and returns the validated configuration with a report.
pub fn open(conn: &Connection) -> Result<(Config, OpenReport)> {
    enable_foreign_keys(conn)?;
    write_tx(conn, |conn| {
        ddl::install_runtime_tables(conn)?;
        state::set_apply_mode(conn, false)?;
        let config = config::load(conn)?;
        let removed_tables = retire_unconfigured_tables(conn, &config)?;
        let mut triggers_written = 0;
        let mut newly_managed = Vec::new();
        for table in &config.tables {
            let inserted = conn.execute(
                "INSERT INTO _sync_managed_tables(schema_name, table_name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                [&config.schema, &table.name],
            )?;
            if inserted > 0 {
                newly_managed.push(table);
            }
            triggers_written += triggers::install_triggers(conn, &config.schema, table)?;
        }
        crate::fault::point("open.after_triggers");
        let mut attachment = state::read_attachment(conn)?;
        let first_open = attachment.current_source_id.is_empty();
        if first_open {
            attachment.current_source_id = state::new_source_id();
        }
        state::ensure_source(conn, &attachment.current_source_id)?;
        let captured_rows = if first_open {
            capture_existing_rows(conn, &config)?
        } else {
            capture_newly_managed_rows(conn, &config.schema, &newly_managed)?
        };
        normalize_attachment(conn, attachment.clone())?;
        let report = OpenReport {
            source_id: attachment.current_source_id,
            schema: config.schema.clone(),
            managed_tables: config.tables.iter().map(|t| t.name.clone()).collect(),
            first_open,
            captured_rows,
            triggers_written,
            removed_tables,
        };
        Ok((config, report))
    })
}

/// `PRAGMA foreign_keys` is a no-op inside a transaction, so inside one we can only
/// accept a connection that already has it on.
fn enable_foreign_keys(conn: &Connection) -> Result<()> {
    if conn.is_autocommit() {
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        return Ok(());
    }
    let on: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if on == 0 {
        return Err(Error::new(
            ErrorCode::TransactionOpen,
            "open must turn on PRAGMA foreign_keys, which SQLite ignores inside a transaction; call oversqlite_open() outside BEGIN…COMMIT or run PRAGMA foreign_keys = ON before BEGIN",
        ));
    }
    Ok(())
}

/// Drops triggers and the registry row of tables no longer configured (or registered under
/// another schema). Refuses while such a table still has changes waiting for upload.
fn retire_unconfigured_tables(conn: &Connection, config: &Config) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT schema_name, table_name FROM _sync_managed_tables ORDER BY schema_name, table_name",
    )?;
    let registered = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut removed = Vec::new();
    for (schema, table) in registered {
        let still_managed = schema == config.schema && config.table(&table).is_some();
        if still_managed {
            continue;
        }
        let pending: i64 = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM _sync_dirty_rows WHERE schema_name = ?1 AND table_name = ?2)
                  + (SELECT COUNT(*) FROM _sync_outbox_rows WHERE schema_name = ?1 AND table_name = ?2)",
            [&schema, &table],
            |r| r.get(0),
        )?;
        if pending > 0 {
            return Err(Error::new(
                ErrorCode::StateConflict,
                format!(
                    "table \"{table}\" (schema \"{schema}\") is no longer configured but has {pending} change(s) waiting for upload; re-enable it and sync first, or restore the previous configuration"
                ),
            ));
        }
        if config.table(&table).is_none() {
            triggers::drop_triggers(conn, &table)?;
        }
        conn.execute(
            "DELETE FROM _sync_managed_tables WHERE schema_name = ?1 AND table_name = ?2",
            [&schema, &table],
        )?;
        removed.push(table);
    }
    Ok(removed)
}

/// First open of a database that already holds rows: queue every row as a dirty INSERT,
/// tables in FK order, rows in key order.
fn capture_existing_rows(conn: &Connection, config: &Config) -> Result<i64> {
    let leftovers: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM _sync_row_state) + (SELECT COUNT(*) FROM _sync_dirty_rows)
              + (SELECT COUNT(*) FROM _sync_outbox_rows)",
        [],
        |r| r.get(0),
    )?;
    if leftovers > 0 {
        return Err(Error::new(
            ErrorCode::StateConflict,
            "cannot treat this database as first local capture: _sync_row_state, _sync_dirty_rows or _sync_outbox_rows already hold rows but no source is bound; restore the database from a backup or remove the _sync_* tables to start over",
        ));
    }
    let mut captured = 0;
    for table in &config.tables {
        let base: i64 = conn.query_row(
            "SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows",
            [],
            |r| r.get(0),
        )?;
        captured += conn.execute(&capture_sql(&config.schema, table), [base])? as i64;
    }
    Ok(captured)
}

/// A table enabled on an already-bound database: its existing rows were written while no
/// trigger watched them, so queue them now exactly as the capture triggers would have
/// (INSERT, or UPDATE against a live row version kept from an earlier enablement).
/// Without this, rows of a table enabled after the first open would never be uploaded.
fn capture_newly_managed_rows(
    conn: &Connection,
    schema: &str,
    tables: &[&ManagedTable],
) -> Result<i64> {
    let mut captured = 0;
    for table in tables {
        let base: i64 = conn.query_row(
            "SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows",
            [],
            |r| r.get(0),
        )?;
        captured += conn.execute(&late_capture_sql(schema, table), [base])? as i64;
    }
    Ok(captured)
}

fn late_capture_sql(schema: &str, table: &ManagedTable) -> String {
    let (s, t) = (quote_literal(schema), quote_literal(&table.name));
    let key = key_expr(table, "src");
    format!(
        "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         SELECT {s}, {t}, {key},
                CASE WHEN EXISTS (SELECT 1 FROM _sync_row_state WHERE schema_name={s} AND table_name={t} AND key_json={key} AND deleted=0)
                     THEN 'UPDATE' ELSE 'INSERT' END,
                COALESCE((SELECT row_version FROM _sync_row_state WHERE schema_name={s} AND table_name={t} AND key_json={key}), 0),
                {row},
                ?1 + row_number() OVER (ORDER BY src.{k}),
                strftime('%Y-%m-%dT%H:%M:%fZ','now')
         FROM main.{qt} AS src WHERE true ORDER BY src.{k}
         ON CONFLICT(schema_name, table_name, key_json) DO UPDATE SET
           op=excluded.op, payload=excluded.payload, updated_at=excluded.updated_at",
        row = row_expr(table, "src"),
        k = quote_ident(&table.key_column),
        qt = quote_ident(&table.name),
    )
}

fn capture_sql(schema: &str, table: &ManagedTable) -> String {
    format!(
        "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         SELECT {s}, {t}, {key}, 'INSERT', 0, {row},
                ?1 + row_number() OVER (ORDER BY src.{k}),
                strftime('%Y-%m-%dT%H:%M:%fZ','now')
         FROM main.{qt} AS src ORDER BY src.{k}",
        s = quote_literal(schema),
        t = quote_literal(&table.name),
        key = key_expr(table, "src"),
        row = row_expr(table, "src"),
        k = quote_ident(&table.key_column),
        qt = quote_ident(&table.name),
    )
}

/// Keeps an attached binding unless a `remote_replace` was interrupted; always records the
/// current source.
fn normalize_attachment(conn: &Connection, mut a: AttachmentState) -> Result<()> {
    let operation = state::read_operation(conn)?;
    let keep = a.binding_state == BindingState::Attached
        && !a.attached_user_id.is_empty()
        && operation.kind != OperationKind::RemoteReplace;
    if keep {
        if operation.kind != OperationKind::None {
            a.pending_initialization_id.clear();
        }
    } else {
        a.binding_state = BindingState::Anonymous;
        a.attached_user_id.clear();
        a.schema_name.clear();
        a.last_bundle_seq_seen = 0;
        a.rebuild_required = false;
        a.pending_initialization_id.clear();
    }
    state::write_attachment(conn, &a)
}
