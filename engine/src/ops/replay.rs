//! Committed replay (§7.4 "Replay"): apply the authoritative committed rows while
//! preserving local intent captured after the freeze, in one apply-mode transaction.

use oversqlite_protocol::{BundleRow, Op};
use rusqlite::Connection;

use crate::client::Ctx;
use crate::codec::{
    local_key_from_key_json, parse_object, payloads_equivalent, wire_payload_to_row, PayloadForm,
};
use crate::error::{Result, SyncError};
use crate::ops::freeze::Outbox;
use crate::report::ChangedTables;
use crate::rows;
use crate::state;
use crate::tx::apply_tx;
use crate::validate::CommittedMeta;

enum Plan {
    Accept,
    /// Keep the local row; requeue `(op, payload)` rebased on the committed version.
    Preserve(Op, Option<String>),
}

fn equivalent_local(ctx: &Ctx, table: &str, a: &str, b: &str) -> Result<bool> {
    let t = ctx.table(table)?;
    let (a, b) = (
        parse_object(a, "local payload")?,
        parse_object(b, "local payload")?,
    );
    Ok(payloads_equivalent(
        t,
        &a,
        PayloadForm::Local,
        &b,
        PayloadForm::Local,
        false,
    ))
}

fn plan_row(ctx: &Ctx, conn: &Connection, row: &state::OutboxRow) -> Result<Plan> {
    let table = ctx.table(&row.table_name)?;
    let key = local_key_from_key_json(table, &row.key_json)?;
    let live = rows::live_row_json(conn, table, &key)?;
    let dirty = rows::dirty_row(conn, &row.schema_name, &row.table_name, &row.key_json)?;
    if row.op == "DELETE" {
        return Ok(match live {
            Some(payload) => Plan::Preserve(Op::Insert, Some(payload)),
            None => Plan::Accept,
        });
    }
    let Some(live) = live else {
        return Ok(Plan::Preserve(Op::Delete, None));
    };
    let uploaded = row.local_payload.as_deref().unwrap_or("{}");
    if let Some(d) = dirty {
        let same = d.op == row.op
            && matches!(&d.payload, Some(p) if equivalent_local(ctx, &row.table_name, p, uploaded)?);
        if !same {
            return Ok(Plan::Preserve(Op::Update, Some(live)));
        }
    }
    if !equivalent_local(ctx, &row.table_name, &live, uploaded)? {
        return Ok(Plan::Preserve(Op::Update, Some(live)));
    }
    Ok(Plan::Accept)
}

/// Replays `committed` (already verified against the outbox, same order).
pub(crate) fn replay_committed(
    ctx: &Ctx,
    outbox: &Outbox,
    committed: &[BundleRow],
    meta: &CommittedMeta,
    changed: &mut ChangedTables,
) -> Result<()> {
    let schema = ctx.config.schema.clone();
    let mut touched = ChangedTables::new();
    apply_tx(ctx.conn, |conn| {
        let plans = outbox
            .rows
            .iter()
            .map(|r| plan_row(ctx, conn, r))
            .collect::<Result<Vec<_>>>()?;
        for ((row, plan), uploaded) in committed.iter().zip(&plans).zip(&outbox.rows) {
            let table = ctx.table(&row.table)?;
            let key = local_key_from_key_json(table, &uploaded.key_json)?;
            let key_json = &uploaded.key_json;
            match plan {
                Plan::Accept => {
                    let values = match (&row.op, &row.payload) {
                        (Op::Delete, _) => None,
                        (_, Some(p)) => Some(wire_payload_to_row(table, p)?),
                        (op, None) => {
                            return Err(SyncError::protocol(format!(
                                "committed {op} row for {} has no payload",
                                row.table
                            )))
                        }
                    };
                    rows::apply_authoritative(
                        conn,
                        &schema,
                        table,
                        &key,
                        key_json,
                        row.row_version,
                        values,
                    )?;
                }
                Plan::Preserve(op, payload) => {
                    rows::upsert_row_state(
                        conn,
                        &schema,
                        &row.table,
                        key_json,
                        row.row_version,
                        row.op == Op::Delete,
                    )?;
                    rows::upsert_dirty(
                        conn,
                        &schema,
                        &row.table,
                        key_json,
                        op.as_str(),
                        row.row_version,
                        payload.as_deref(),
                    )?;
                }
            }
            touched.insert(row.table.clone());
        }
        conn.execute(
            "UPDATE _sync_source_state SET next_source_bundle_id = MAX(next_source_bundle_id, ?2) WHERE source_id = ?1",
            rusqlite::params![outbox.bundle.source_id, outbox.bundle.source_bundle_id + 1],
        )?;
        // Only a contiguous bundle may move the checkpoint: other sources' bundles in
        // a gap have not been pulled yet (§7.4 step 4).
        conn.execute(
            "UPDATE _sync_attachment_state SET last_bundle_seq_seen = ?1 WHERE singleton_key = 1 AND last_bundle_seq_seen + 1 = ?1",
            [meta.bundle_seq],
        )?;
        // The seed bundle is committed: the lease has done its job (§7.3).
        conn.execute("UPDATE _sync_attachment_state SET pending_initialization_id = '' WHERE singleton_key = 1", [])?;
        state::clear_outbox(conn)?;
        oversqlite_core::fault::point("push.mid_replay");
        for (uploaded, plan) in outbox.rows.iter().zip(&plans) {
            let dirty = rows::dirty_row(
                conn,
                &uploaded.schema_name,
                &uploaded.table_name,
                &uploaded.key_json,
            )?;
            let consistent = match plan {
                Plan::Accept => dirty.is_none(),
                Plan::Preserve(..) => dirty.is_some(),
            };
            if !consistent {
                return Err(SyncError::state(format!(
                    "committed replay left inconsistent dirty state for {}",
                    uploaded.key_json
                )));
            }
        }
        Ok(())
    })?;
    changed.extend(touched);
    Ok(())
}
