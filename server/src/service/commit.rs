//! Push commit (§2.5, §10.4) and the bundle machinery shared with server-originated
//! bundles: conflict check, apply, committed bundle with after-images read back, the
//! separate bundle of cascaded deletes, bundle log, row state, source state, retention.

use std::borrow::Cow;
use std::collections::HashSet;

use oversqlite_protocol::{
    codes, BundleHasher, Op, Payload, PushCommitResponse, PushConflictDetails, WatchEvent,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::cascade::{cascade_deletes, CASCADE_SOURCE_ID};
use super::push::{delete_session_rows, load_session, recheck_lease};
use super::push_rows::{decode_chunk, StagedRow};
use super::raw_rows::text_column;
use super::scope::{
    expected_next_source_bundle_id, load_user, mark_initialized, record_committed_source,
};
use crate::codec::{sql_to_wire, wire_key, wire_to_sql};
use crate::config::{quote_ident, Column, TableSpec};
use crate::error::{ApiError, Fail, ServiceResult};
use crate::state::{AppState, ForeignKeyErrors};
use crate::store::{close_write_context, open_write_context};
use crate::timefmt::{now_ms, rfc3339_from_ms};

pub fn commit(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    push_id: &str,
) -> ServiceResult<(PushCommitResponse, Vec<WatchEvent>)> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let session = load_session(&tx, push_id, user, now)?;
    let rows = load_staged_rows(&tx, &session.push_id)?;
    let invalid = |m: String| Fail::from(ApiError::bad_request(codes::PUSH_COMMIT_INVALID, m));
    if rows.len() as i64 != session.planned_row_count {
        return Err(invalid(format!(
            "staged row count {} does not match planned_row_count {}",
            rows.len(),
            session.planned_row_count
        )));
    }
    let mut seen = HashSet::new();
    for (index, (ordinal, row)) in rows.iter().enumerate() {
        if *ordinal != index as i64 {
            return Err(invalid(format!(
                "staged rows are not contiguous at row_ordinal {index}"
            )));
        }
        if !seen.insert((row.table.as_str(), row.key.as_str())) {
            return Err(invalid(format!(
                "duplicate target row in staged push session: {} {}",
                row.table, row.key
            )));
        }
    }
    if !session.initialization_id.is_empty() {
        recheck_lease(
            app,
            &tx,
            user,
            &session.source_id,
            &session.initialization_id,
            now,
        )?;
    }
    let expected = expected_next_source_bundle_id(&tx, user, &session.source_id)?;
    if expected != session.source_bundle_id {
        return Err(ApiError::conflict(
            codes::SOURCE_SEQUENCE_CHANGED,
            format!(
                "source {} now expects source_bundle_id {expected}, session holds {}",
                session.source_id, session.source_bundle_id
            ),
        )
        .into());
    }
    let staged: Vec<StagedRow> = rows.into_iter().map(|(_, row)| row).collect();
    let applied = apply_bundle(
        app,
        &tx,
        user,
        &session.source_id,
        session.source_bundle_id,
        &staged,
        now,
    )?;
    delete_session_rows(&tx, &session.push_id)?;
    if !session.initialization_id.is_empty() {
        mark_initialized(&tx, user, &session.source_id, &rfc3339_from_ms(now))?;
    }
    commit_checked(tx, app.settings.foreign_key_errors)?;
    let events = applied.events();
    Ok((applied.pushed, events))
}

/// Commits, turning a deferred foreign-key violation into `400 push_commit_invalid`, or
/// in [`ForeignKeyErrors::Reference`] mode into go-oversync's
/// `500 push_session_commit_failed` (`Database error [<SQLSTATE>]: <message>`; 23503 is
/// PostgreSQL's foreign_key_violation). The failed COMMIT leaves the transaction open and
/// dropping it rolls the bundle back, so nothing of it is stored either way.
pub fn commit_checked(
    tx: rusqlite::Transaction<'_>,
    foreign_key_errors: ForeignKeyErrors,
) -> ServiceResult<()> {
    match tx.commit() {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(match foreign_key_errors {
                ForeignKeyErrors::Ours => ApiError::bad_request(
                    codes::PUSH_COMMIT_INVALID,
                    "bundle violates a foreign key: a referenced row does not exist in this scope",
                ),
                ForeignKeyErrors::Reference => ApiError::new(
                    500,
                    "push_session_commit_failed",
                    "Database error [23503]: bundle violates foreign key constraint: a referenced row does not exist in this scope",
                ),
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Every staged row of the session with its row ordinal (chunk start + position), in
/// ordinal order.
fn load_staged_rows(conn: &Connection, push_id: &str) -> ServiceResult<Vec<(i64, StagedRow)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT start_row_ordinal, row_count, rows FROM _oversync_push_chunks
         WHERE push_id = ?1 ORDER BY start_row_ordinal",
    )?;
    let mut chunks = stmt.query([push_id])?;
    let mut staged = Vec::new();
    while let Some(chunk) = chunks.next()? {
        let start: i64 = chunk.get(0)?;
        let count: i64 = chunk.get(1)?;
        let rows = decode_chunk(text_column(chunk, 2)?).map_err(Fail::Internal)?;
        if rows.len() as i64 != count {
            return Err(Fail::Internal(format!(
                "stored push chunk at {start} holds {} rows, not {count}",
                rows.len()
            )));
        }
        staged.extend((start..).zip(rows));
    }
    Ok(staged)
}

/// `(bundle_seq, deleted)` of the row state, if the server has ever seen the row.
pub fn row_state(
    conn: &Connection,
    user: &str,
    table: &str,
    key: &str,
) -> rusqlite::Result<Option<(i64, bool)>> {
    conn.prepare_cached(
        "SELECT bundle_seq, deleted FROM _oversync_row_state WHERE user_id = ?1 AND table_name = ?2 AND key = ?3",
    )?
    .query_row(params![user, table, key], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? != 0))
    })
    .optional()
}

/// Current row of `table` in wire form (hidden owner column excluded), if present.
pub fn read_row(
    conn: &Connection,
    table: &TableSpec,
    user: &str,
    key: &str,
) -> rusqlite::Result<Option<Payload>> {
    conn.prepare_cached(&table.sql.select_row)?
        .query_row(params![user, key], |r| row_to_payload(table, r))
        .optional()
}

pub fn row_to_payload(table: &TableSpec, r: &rusqlite::Row<'_>) -> rusqlite::Result<Payload> {
    let mut payload = Payload::new();
    for (i, column) in table.columns.iter().enumerate() {
        let value: SqlValue = r.get(i)?;
        payload.insert(column.name.clone(), sql_to_wire(column, value));
    }
    Ok(payload)
}

fn check_conflict(
    conn: &Connection,
    table: &TableSpec,
    user: &str,
    row: &StagedRow,
) -> ServiceResult<()> {
    let state = row_state(conn, user, &row.table, &row.key)?;
    let base = row.base_row_version;
    let rejection = match (row.op, state) {
        (Op::Insert, None) if base == 0 => None,
        (Op::Insert, None) => Some(format!("expected missing row at version 0, got {base}")),
        (Op::Insert, Some((version, true))) if base == version => None,
        (Op::Insert, Some((version, true))) => {
            Some(format!("expected base_row_version {version}, got {base}"))
        }
        (Op::Insert, Some((version, false))) => {
            Some(format!("row already exists at version {version}"))
        }
        (_, None) | (_, Some((_, true))) => Some("row does not exist".to_string()),
        (_, Some((version, false))) if base == version => None,
        (_, Some((version, false))) => Some(format!("expected version {version}, got {base}")),
    };
    let Some(reason) = rejection else {
        return Ok(());
    };
    let (server_row_version, server_row_deleted) = state.unwrap_or((0, false));
    let server_row = if state.is_some() && !server_row_deleted {
        read_row(conn, table, user, &row.key)?
    } else {
        None
    };
    let details = PushConflictDetails {
        schema: table.schema.clone(),
        table: table.table.clone(),
        key: wire_key(table, &row.key),
        op: row.op,
        base_row_version: base,
        server_row_version,
        server_row_deleted,
        server_row,
    };
    let message = format!(
        "{} conflict on {} {}: {reason}",
        row.op.as_str().to_lowercase(),
        table.qualified,
        row.key
    );
    Err(ApiError::push_conflict(message, details).into())
}

/// Applies one pushed row and returns its after-image (`None` for a DELETE). Exactly one
/// table row must change: the row was conflict-checked, and cascades run only after every
/// pushed row, so no pushed row removes another. INSERT and UPDATE read the after-image
/// back right away: no pushed row of the bundle touches another's target, so it is what a
/// read after the whole bundle would see. (`RETURNING` would save the lookup, but SQLite
/// buffers its rows in an ephemeral table per execution, which costs more.)
fn apply_row(
    conn: &Connection,
    table: &TableSpec,
    user: &str,
    row: &StagedRow,
) -> ServiceResult<Option<Payload>> {
    let convert = |name: &str, value: &serde_json::Value| -> ServiceResult<SqlValue> {
        let column = table
            .column(name)
            .ok_or_else(|| Fail::Internal(format!("staged column {name} unknown")))?;
        wire_to_sql(column, value).map_err(Fail::Internal)
    };
    let changed_other = |changed: usize| {
        Fail::Internal(format!(
            "{} {} {} changed {changed} rows",
            row.op, row.table, row.key
        ))
    };
    let (sql, args) = match (row.op, &row.payload) {
        (Op::Delete, _) => {
            let mut stmt = conn.prepare_cached(&table.sql.delete_row)?;
            return match stmt.execute(params![user, row.key])? {
                1 => Ok(None),
                changed => Err(changed_other(changed)),
            };
        }
        (Op::Insert, Some(payload)) => {
            if let Some(name) = payload.keys().find(|n| table.column(n).is_none()) {
                return Err(Fail::Internal(format!("staged column {name} unknown")));
            }
            let mut args: Vec<SqlValue> = Vec::with_capacity(table.columns.len() + 1);
            args.push(SqlValue::Text(user.to_string()));
            if payload.len() < table.columns.len() {
                // A payload from a client that predates a column (or leaves it out): as
                // the reference's INSERT, name only the payload's columns, so the others
                // take their store default (NULL without one); the after-image is read back.
                let mut names = vec![quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN)];
                for (name, value) in payload.iter() {
                    args.push(convert(name, value)?);
                    names.push(quote_ident(name));
                }
                let marks: Vec<String> = (1..=args.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT OR FAIL INTO {} ({}) VALUES ({})",
                    table.sql_name(),
                    names.join(", "),
                    marks.join(", ")
                );
                (Cow::Owned(sql), args)
            } else {
                for column in &table.columns {
                    let value = payload.get(&column.name).ok_or_else(|| {
                        Fail::Internal(format!("staged column {} missing", column.name))
                    })?;
                    args.push(convert(&column.name, value)?);
                }
                let after = stored_image(table.columns.iter().zip(&args[1..]));
                execute_one(conn, &table.sql.insert_row, args).map_err(|c| match c {
                    Ok(changed) => changed_other(changed),
                    Err(e) => e,
                })?;
                return Ok(Some(after));
            }
        }
        (Op::Update, Some(payload)) => {
            let mut args: Vec<SqlValue> = vec![
                SqlValue::Text(user.to_string()),
                SqlValue::Text(row.key.clone()),
            ];
            if payload.len() == table.columns.len() {
                // Full after-image (the usual case): the prebuilt statement.
                for column in table.columns.iter().filter(|c| c.name != table.key_column) {
                    let value = payload.get(&column.name).ok_or_else(|| {
                        Fail::Internal(format!("staged column {} missing", column.name))
                    })?;
                    args.push(convert(&column.name, value)?);
                }
                let key_value = SqlValue::Text(row.key.clone());
                let non_key = table.columns.iter().filter(|c| c.name != table.key_column);
                let key_column = table.column(&table.key_column).into_iter();
                let after = stored_image(
                    non_key
                        .zip(&args[2..])
                        .chain(key_column.zip(std::iter::once(&key_value))),
                );
                execute_one(conn, &table.sql.update_all, args).map_err(|c| match c {
                    Ok(changed) => changed_other(changed),
                    Err(e) => e,
                })?;
                return Ok(Some(after));
            } else {
                // A partial payload updates only its columns. Setting the key to itself
                // keeps the statement valid for a key-only payload.
                let key_column = quote_ident(&table.key_column);
                let mut sets = vec![format!("{key_column} = ?2")];
                for (name, value) in payload.iter().filter(|(n, _)| **n != table.key_column) {
                    args.push(convert(name, value)?);
                    sets.push(format!("{} = ?{}", quote_ident(name), args.len()));
                }
                let sql = format!(
                    "UPDATE OR FAIL {} SET {} WHERE {} = ?1 AND {key_column} = ?2",
                    table.sql_name(),
                    sets.join(", "),
                    quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN),
                );
                (Cow::Owned(sql), args)
            }
        }
        (op, None) => return Err(Fail::Internal(format!("{op} row without payload"))),
    };
    // A partial UPDATE keeps the columns it does not name, a partial INSERT gives them
    // their defaults: read the row back.
    execute_one(conn, &sql, args).map_err(|c| match c {
        Ok(changed) => changed_other(changed),
        Err(e) => e,
    })?;
    let after = read_row(conn, table, user, &row.key)?.ok_or_else(|| changed_other(0))?;
    Ok(Some(after))
}

/// Runs a one-row write; `Err(Ok(n))` when it changed `n != 1` rows.
fn execute_one(
    conn: &Connection,
    sql: &str,
    args: Vec<SqlValue>,
) -> Result<(), Result<usize, Fail>> {
    let changed = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params_from_iter(args)))
        .map_err(|e| Err(Fail::from(e)))?;
    match changed {
        1 => Ok(()),
        n => Err(Ok(n)),
    }
}

/// The after-image a read of a row written with every column bound would return, without
/// reading it: SQLite stores a bound value unchanged (the store's columns carry the
/// affinity of the value kind `wire_to_sql` binds, so no conversion applies), except that
/// a REAL column keeps an integral value as an integer and reads it back as a REAL, which
/// turns -0.0 into 0.0.
fn stored_image<'a>(columns: impl Iterator<Item = (&'a Column, &'a SqlValue)>) -> Payload {
    columns
        .map(|(column, value)| {
            let value = match value {
                SqlValue::Real(f) if *f == 0.0 => SqlValue::Real(0.0),
                other => other.clone(),
            };
            (column.name.clone(), sql_to_wire(column, value))
        })
        .collect()
}

/// The bundles one push (or server bundle) commits: the pushed rows, and the deletes their
/// `on_delete = "cascade"` foreign keys caused, if any.
pub struct AppliedBundles {
    pub pushed: PushCommitResponse,
    pub cascade: Option<PushCommitResponse>,
}

impl AppliedBundles {
    /// One watch event per committed bundle, oldest first (the hub keeps the newest).
    pub fn events(&self) -> Vec<WatchEvent> {
        std::iter::once(&self.pushed)
            .chain(self.cascade.as_ref())
            .map(|meta| WatchEvent {
                bundle_seq: meta.bundle_seq,
                source_id: Some(meta.source_id.clone()),
                source_bundle_id: Some(meta.source_bundle_id),
            })
            .collect()
    }
}

/// Conflict-checks, applies and records one bundle inside the caller's write transaction.
///
/// The committed bundle is exactly the pushed rows in pushed order (clients compare it with
/// their outbox position by position, §7.4), with after-images read back. Cascading deletes
/// run only after every pushed row is applied and its after-image read, so a pushed row is
/// never dropped or rewritten by a cascade of the same push; the rows they remove (including
/// pushed INSERT/UPDATE rows whose parent the push deletes) are committed, in the same
/// transaction, as the next bundle from [`CASCADE_SOURCE_ID`].
pub fn apply_bundle(
    app: &AppState,
    conn: &Connection,
    user: &str,
    source: &str,
    source_bundle_id: i64,
    rows: &[StagedRow],
    now: i64,
) -> ServiceResult<AppliedBundles> {
    if rows.is_empty() {
        return Err(ApiError::bad_request(
            codes::PUSH_COMMIT_INVALID,
            "push session produced no captured business-table effects",
        )
        .into());
    }
    conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    for row in rows {
        check_conflict(conn, table_spec(app, &row.table)?, user, row)?;
    }
    open_write_context(conn)?;
    let mut pushed = Vec::with_capacity(rows.len());
    for row in rows {
        let payload = apply_row(conn, table_spec(app, &row.table)?, user, row)?;
        pushed.push((row.table.clone(), row.key.clone(), row.op, payload));
    }
    let roots: Vec<(String, String)> = rows
        .iter()
        .filter(|row| row.op == Op::Delete)
        .map(|row| (row.table.clone(), row.key.clone()))
        .collect();
    let cascaded = cascade_deletes(app, conn, user, &roots)?;
    close_write_context(conn)?;
    let pushed = record_bundle(app, conn, user, source, source_bundle_id, &pushed, now)?;
    let cascade = if cascaded.is_empty() {
        None
    } else {
        let id = expected_next_source_bundle_id(conn, user, CASCADE_SOURCE_ID)?;
        let deletes: Vec<_> = cascaded
            .into_iter()
            .map(|(table, key)| (table, key, Op::Delete, None))
            .collect();
        Some(record_bundle(
            app,
            conn,
            user,
            CASCADE_SOURCE_ID,
            id,
            &deletes,
            now,
        )?)
    };
    Ok(AppliedBundles { pushed, cascade })
}

fn table_spec<'a>(app: &'a AppState, qualified: &str) -> ServiceResult<&'a TableSpec> {
    let (schema, table) = qualified.split_once('.').unwrap_or(("", qualified));
    app.registry
        .table(schema, table)
        .ok_or_else(|| Fail::Internal(format!("table {qualified} not registered")))
}

/// Appends one committed bundle (rows already applied): next `bundle_seq`, row versions,
/// bundle log and rows, row state, source high-water mark, retention.
fn record_bundle(
    app: &AppState,
    conn: &Connection,
    user: &str,
    source: &str,
    source_bundle_id: i64,
    rows: &[(String, String, Op, Option<Payload>)],
    now: i64,
) -> ServiceResult<PushCommitResponse> {
    let state = load_user(conn, user)?
        .ok_or_else(|| Fail::Internal(format!("user state for {user} missing")))?;
    let bundle_seq = state.next_bundle_seq;
    // One pass: hash (streaming, no per-row copies), store the row, update its state.
    let mut hasher = BundleHasher::new();
    {
        let mut insert_row = conn.prepare_cached(
            "INSERT INTO _oversync_bundle_rows (user_id, bundle_seq, row_ordinal, table_name, key, op, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut upsert_state = conn.prepare_cached(
            "INSERT INTO _oversync_row_state (user_id, table_name, key, bundle_seq, deleted) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user_id, table_name, key) DO UPDATE SET bundle_seq = excluded.bundle_seq, deleted = excluded.deleted",
        )?;
        for (ordinal, (table_name, key, op, payload)) in rows.iter().enumerate() {
            let table = table_spec(app, table_name)?;
            hasher.push_parts(
                &table.schema,
                &table.table,
                &wire_key(table, key),
                *op,
                bundle_seq,
                payload.as_ref(),
            );
            let payload = payload.as_ref().map(serde_json::to_string).transpose()?;
            insert_row.execute(params![
                user,
                bundle_seq,
                ordinal as i64,
                table_name,
                key,
                op.as_str(),
                payload
            ])?;
            upsert_state.execute(params![
                user,
                table_name,
                key,
                bundle_seq,
                i64::from(*op == Op::Delete)
            ])?;
        }
    }
    let digest = hasher.finish();
    conn.execute(
        "UPDATE _oversync_user_state SET next_bundle_seq = ?2 WHERE user_id = ?1",
        params![user, bundle_seq + 1],
    )?;
    conn.execute(
        "INSERT INTO _oversync_bundle_log (user_id, bundle_seq, source_id, source_bundle_id, row_count, byte_count, bundle_hash, committed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![user, bundle_seq, source, source_bundle_id, rows.len() as i64, digest.byte_count as i64, digest.bundle_hash, rfc3339_from_ms(now)],
    )?;
    record_committed_source(conn, user, source, source_bundle_id)?;
    enforce_retention(app, conn, user, bundle_seq, state.retained_floor)?;
    Ok(PushCommitResponse {
        bundle_seq,
        source_id: source.to_string(),
        source_bundle_id,
        row_count: rows.len() as i64,
        bundle_hash: digest.bundle_hash,
    })
}

/// §10.7: keep `retained_window` bundles; raise the floor by at most one prune batch.
fn enforce_retention(
    app: &AppState,
    conn: &Connection,
    user: &str,
    latest: i64,
    floor: i64,
) -> rusqlite::Result<()> {
    let target = (latest - app.settings.retained_window).max(0);
    if target <= floor {
        return Ok(());
    }
    let new_floor = target.min(floor + app.settings.prune_batch);
    conn.execute(
        "DELETE FROM _oversync_bundle_rows WHERE user_id = ?1 AND bundle_seq <= ?2",
        params![user, new_floor],
    )?;
    conn.execute(
        "DELETE FROM _oversync_bundle_log WHERE user_id = ?1 AND bundle_seq <= ?2",
        params![user, new_floor],
    )?;
    conn.execute(
        "UPDATE _oversync_user_state SET retained_bundle_floor = ?2 WHERE user_id = ?1",
        params![user, new_floor],
    )?;
    Ok(())
}
