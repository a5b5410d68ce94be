//! `pull_to_stable` (§7.6): page through `/sync/pull` up to a frozen ceiling,
//! applying each bundle in its own short transaction so the checkpoint only moves
//! after a durable apply. `409 history_pruned` falls back to a keep-source snapshot.

use oversqlite_protocol::{codes, Bundle, Op};

use crate::api::Reply;
use crate::client::{sync_status, Ctx, SyncClient};
use crate::codec::{wire_key_to_local, wire_payload_to_row};
use crate::error::{ErrorKind, Result, SyncError};
use crate::ops::push::check_gates;
use crate::ops::snapshot::{rebuild_from_snapshot, OutboxMode};
use crate::report::{ChangedTables, PullReport, RemoteOutcome};
use crate::rows;
use crate::state;
use crate::tx::apply_tx;
use crate::validate::validate_pull;

impl SyncClient {
    pub fn pull_to_stable(&mut self, conn: &rusqlite::Connection) -> Result<PullReport> {
        let ctx = self.begin(conn)?;
        let att = self.require_connected(&ctx)?;
        let mut changed = ChangedTables::new();
        pull_in(&ctx, &att.attached_user_id, &mut changed)
    }
}

/// Refuses to download over unsent local intent (§7.6 preconditions).
pub(crate) fn require_drained(ctx: &Ctx) -> Result<()> {
    if state::outbox_row_count(ctx.conn)? > 0 {
        return Err(SyncError::new(ErrorKind::PendingLocalChanges, "a pushed bundle still awaits replay (pending push replay); call oversqlite_push_pending() or oversqlite_sync()"));
    }
    let dirty = state::dirty_count(ctx.conn)?;
    if dirty > 0 {
        return Err(SyncError::new(
            ErrorKind::PendingLocalChanges,
            format!("cannot pull while {dirty} local dirty rows exist; call oversqlite_sync() to push them first"),
        ));
    }
    Ok(())
}

pub(crate) fn pull_in(ctx: &Ctx, user: &str, changed: &mut ChangedTables) -> Result<PullReport> {
    check_gates(ctx)?;
    require_drained(ctx)?;
    let att = state::attachment(ctx.conn)?;
    let source = att.current_source_id.clone();
    let initial = att.last_bundle_seq_seen;
    let mut after = initial;
    let mut target = 0i64;
    let mut applied = 0i64;
    let max = ctx.pull_max_bundles();
    loop {
        let resp = match ctx.remote.pull(&source, after, max, target)? {
            Reply::Ok(r) => r,
            Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::HISTORY_PRUNED) => {
                let restore =
                    rebuild_from_snapshot(ctx, user, None, OutboxMode::ClearAll, changed)?;
                return Ok(PullReport {
                    outcome: RemoteOutcome::AppliedSnapshot,
                    restore: Some(restore),
                    bundles_applied: 0,
                    status: sync_status(ctx.conn)?,
                    changed_tables: changed.clone(),
                });
            }
            Reply::Failed(f) => return Err(f.into_error("pull request")),
        };
        validate_pull(&resp, after)?;
        oversqlite_core::fault::point("pull.after_response");
        // A zero checkpoint is never answered `history_pruned` (§10.6): the server
        // silently starts above its retention floor. Bundle sequences are contiguous per
        // user from 1, so a first bundle above 1 means pruned history this device never
        // saw; only a snapshot can bring it back.
        if after == 0 && resp.bundles.first().is_some_and(|b| b.bundle_seq > 1) {
            let restore = rebuild_from_snapshot(ctx, user, None, OutboxMode::ClearAll, changed)?;
            return Ok(PullReport {
                outcome: RemoteOutcome::AppliedSnapshot,
                restore: Some(restore),
                bundles_applied: 0,
                status: sync_status(ctx.conn)?,
                changed_tables: changed.clone(),
            });
        }
        if target == 0 {
            target = resp.stable_bundle_seq;
        } else if resp.stable_bundle_seq != target {
            return Err(SyncError::protocol(format!(
                "pull response stable bundle seq changed from {target} to {}",
                resp.stable_bundle_seq
            )));
        }
        let empty = resp.bundles.is_empty();
        for bundle in &resp.bundles {
            apply_bundle(ctx, bundle, changed)?;
            oversqlite_core::fault::point("pull.after_bundle_applied");
            after = bundle.bundle_seq;
            applied += 1;
        }
        if after >= resp.stable_bundle_seq {
            let outcome = if after == initial && resp.stable_bundle_seq == initial {
                RemoteOutcome::AlreadyAtTarget
            } else {
                RemoteOutcome::AppliedIncremental
            };
            return Ok(PullReport {
                outcome,
                restore: None,
                bundles_applied: applied,
                status: sync_status(ctx.conn)?,
                changed_tables: changed.clone(),
            });
        }
        if !resp.has_more && empty {
            return Err(SyncError::protocol(format!(
                "pull ended before reaching stable bundle seq {}",
                resp.stable_bundle_seq
            )));
        }
        if !resp.has_more {
            return Err(SyncError::protocol(format!(
                "pull ended early at bundle seq {after} below stable bundle seq {}",
                resp.stable_bundle_seq
            )));
        }
    }
}

/// Applies one pulled bundle and advances the checkpoint, in one transaction.
fn apply_bundle(ctx: &Ctx, bundle: &Bundle, changed: &mut ChangedTables) -> Result<()> {
    // Decode everything first: a malformed row must change nothing.
    let mut decoded = Vec::with_capacity(bundle.rows.len());
    for row in &bundle.rows {
        ctx.check_schema(&row.schema)?;
        let table = ctx.table(&row.table)?;
        let key = wire_key_to_local(table, &row.key)?;
        let values = match (&row.op, &row.payload) {
            (Op::Delete, _) => None,
            (_, Some(p)) => Some(wire_payload_to_row(table, p)?),
            (op, None) => {
                return Err(SyncError::protocol(format!(
                    "bundle row {op} for {} has no payload",
                    row.table
                )))
            }
        };
        decoded.push((table, key, row.row_version, values));
    }
    let schema = ctx.config.schema.clone();
    let mut touched = ChangedTables::new();
    apply_tx(ctx.conn, |conn| {
        // The drained check ran before the request; another connection may have
        // written since. Applying over that write would silently lose it, so the
        // bundle is refused as a whole (checkpoint unchanged) and the next sync
        // pushes first.
        let dirty = state::dirty_count(conn)?;
        if dirty > 0 {
            return Err(SyncError::new(
                ErrorKind::PendingLocalChanges,
                format!("{dirty} local rows were written while the pull was in flight; nothing was applied; call oversqlite_sync() to push them first"),
            ));
        }
        for (table, key, version, values) in decoded {
            let key_json = rows::key_json(conn, table, &key)?;
            if let Some(existing) = rows::row_state_version(conn, &schema, &table.name, &key_json)?
            {
                if existing >= version {
                    continue; // already applied (e.g. our own pushed bundle, replayed)
                }
            }
            rows::apply_authoritative(conn, &schema, table, &key, &key_json, version, values)?;
            touched.insert(table.name.clone());
        }
        conn.execute(
            "UPDATE _sync_attachment_state SET last_bundle_seq_seen = MAX(last_bundle_seq_seen, ?1) WHERE singleton_key = 1",
            [bundle.bundle_seq],
        )?;
        oversqlite_core::fault::point("pull.mid_bundle_apply");
        Ok(())
    })?;
    changed.extend(touched);
    Ok(())
}
