//! Taking the server's current row for one key, when a foreign-key race decides that a
//! local row gives way to it (a parent whose local deletion is undone, a child whose
//! local change is reverted).
//!
//! The protocol has no "get one row" route, but it does not need one: the key's
//! `_sync_row_state.row_version` is the `bundle_seq` of the bundle that last wrote it
//! (every row of a bundle gets the bundle's seq, §10.4), and that bundle's rows can be
//! read with `GET /sync/committed-bundles/{seq}/rows` (§2.7) from any source of the
//! user. The pages are read until the key appears; nothing is held but one page.
//!
//! When the bundle is no longer retained (`409 history_pruned`) or does not hold the
//! row, the row is handed to the push instead: its dirty row gets base version 0, which
//! the server always answers with a structured conflict carrying its current row
//! (§10.4 conflict table), and the table's resolver takes it from there.

use oversqlite_protocol::{codes, Op, Payload};

use crate::api::Reply;
use crate::client::Ctx;
use crate::codec::{local_key_from_key_json, wire_payload_to_row};
use crate::error::Result;
use crate::ops::pull::beside::{PendingRestore, RowId};
use crate::report::{ChangedTables, ForeignKeyResolution};
use crate::rows;
use crate::state;
use crate::tx::{apply_tx, without_fk_enforcement_if};

/// How a restore ended.
pub(crate) enum Restored {
    /// The server's row is now the local row; the dirty row is gone. Carries the
    /// restores that follow: a parent whose local deletion the restored row meets.
    Applied(Vec<PendingRestore>),
    /// The row was handed to the next push (base version 0); the pull must stop here.
    HandedToPush,
}

/// Restores `pending.id` from the server's row and reports it in `settled`.
pub(crate) fn restore_from_server(
    ctx: &Ctx,
    pending: &PendingRestore,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<Restored> {
    let (table_name, key_json) = &pending.id;
    let table = ctx.table(table_name)?;
    let schema = &ctx.config.schema;
    let version = rows::row_state_version(ctx.conn, schema, table_name, key_json)?;
    let found = match version {
        Some(v) if v > 0 => find_in_bundle(ctx, v, &pending.id)?,
        _ => None,
    };
    settled.push(pending.report.clone());
    let Some((version, payload)) = found else {
        apply_tx(ctx.conn, |c| {
            c.execute(
                "UPDATE _sync_dirty_rows SET base_row_version = 0 WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
                rusqlite::params![schema, table_name, key_json],
            )?;
            Ok(())
        })?;
        return Ok(Restored::HandedToPush);
    };
    let key = local_key_from_key_json(table, key_json)?;
    let values = payload
        .as_ref()
        .map(|p| wire_payload_to_row(table, p))
        .transpose()?;
    // The server's row may reference a parent this device deleted and has not sent
    // yet; that race is settled right below, so the write must not trip on it.
    let mut follow = Vec::new();
    without_fk_enforcement_if(ctx.conn, true, || {
        apply_tx(ctx.conn, |c| {
            rows::apply_authoritative(c, schema, table, &key, key_json, version, values)?;
            if let Some(payload) = &payload {
                follow =
                    meets_local_deletion(ctx, table, key_json, version, payload, changed, settled)?;
            }
            Ok(())
        })
    })?;
    changed.insert(table.name.clone());
    Ok(Restored::Applied(follow))
}

/// The restored row references a parent whose local deletion is unsent (race B of the
/// README, met by a restore rather than by a pulled row). The parent's policy decides:
/// the parent is restored too (returned), or the deletion extends to this row.
fn meets_local_deletion(
    ctx: &Ctx,
    table: &crate::schema::ManagedTable,
    key_json: &str,
    version: i64,
    payload: &Payload,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<Vec<PendingRestore>> {
    use crate::conflict::{ConflictContext, ForeignKeyContext, ForeignKeyRace, Resolution};
    use crate::ops::pull::beside::{parent_of, race, wire_key};
    use crate::report::ForeignKeyAction;
    let conn = ctx.conn;
    let schema = &ctx.config.schema;
    let mut follow = Vec::new();
    for fk in &table.foreign_keys {
        let Some((parent, parent_key_json, column)) = parent_of(ctx, table, fk, payload)? else {
            continue;
        };
        let Some(dirty) = rows::dirty_row(conn, schema, &parent.name, &parent_key_json)? else {
            continue;
        };
        if dirty.payload.is_some() {
            continue;
        }
        let child_key = wire_key(table, key_json)?;
        let parent_key = wire_key(parent, &parent_key_json)?;
        let question = ConflictContext {
            schema: schema.clone(),
            table: parent.name.clone(),
            key: parent_key.clone(),
            local_op: Op::Delete,
            local_payload: None,
            base_row_version: dirty.base_row_version,
            server_row_version: 0,
            server_row_deleted: false,
            server_row: None,
            foreign_key: Some(ForeignKeyContext {
                race: ForeignKeyRace::ChildAddedRemotely,
                column,
                other_table: table.name.clone(),
                other_key: child_key.clone(),
            }),
        };
        let child = (table.name.as_str(), &child_key);
        let parent_ref = (parent.name.as_str(), &parent_key);
        match ctx.resolver.resolve(&question) {
            Resolution::KeepLocal => {
                let key = local_key_from_key_json(table, key_json)?;
                rows::delete_row(conn, table, &key)?;
                rows::upsert_dirty(conn, schema, &table.name, key_json, "DELETE", version, None)?;
                settled.push(race(
                    ctx,
                    child,
                    ForeignKeyAction::ChildDeleted,
                    parent_ref,
                    &parent.name,
                ));
                changed.insert(table.name.clone());
                return Ok(Vec::new());
            }
            // A merged row cannot answer a DELETE: the parent is restored as for 'server'.
            Resolution::AcceptServer | Resolution::KeepMerged(_) => follow.push(PendingRestore {
                id: (parent.name.clone(), parent_key_json),
                report: race(
                    ctx,
                    child,
                    ForeignKeyAction::ParentRestored,
                    parent_ref,
                    &parent.name,
                ),
            }),
        }
    }
    Ok(follow)
}

/// The row of `id` in committed bundle `seq`: `(row_version, payload)` (`None`
/// payload for a DELETE), or `None` when the bundle is gone or lacks the key.
fn find_in_bundle(ctx: &Ctx, seq: i64, id: &RowId) -> Result<Option<(i64, Option<Payload>)>> {
    let table = ctx.table(&id.0)?;
    let wire_key = crate::ops::pull::beside::wire_key(table, &id.1)?;
    let source = state::attachment(ctx.conn)?.current_source_id;
    let mut after = None;
    loop {
        let page = match ctx.remote.committed_rows(
            &source,
            seq,
            after,
            ctx.settings.committed_rows_page,
        )? {
            Reply::Ok(p) => p,
            Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::HISTORY_PRUNED) => {
                return Ok(None)
            }
            Reply::Failed(f) if f.status == 404 => return Ok(None),
            Reply::Failed(f) => return Err(f.into_error("committed bundle fetch")),
        };
        for row in &page.rows {
            if row.schema == ctx.config.schema && row.table == table.name && row.key == wire_key {
                let payload = if row.op == Op::Delete {
                    None
                } else {
                    row.payload.clone()
                };
                return Ok(Some((row.row_version, payload)));
            }
        }
        if !page.has_more || page.rows.is_empty() {
            return Ok(None);
        }
        after = Some(page.next_row_ordinal);
    }
}
