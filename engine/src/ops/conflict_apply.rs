//! Executing a conflict resolution (§7.5 steps 3–5) in one apply-mode transaction:
//! the conflicting row follows the plan, every other outbox row goes back to the
//! dirty set unchanged, and the outbox is cleared.

use oversqlite_protocol::{Op, PushConflictDetails};
use rusqlite::Connection;

use crate::conflict::{
    plan, Authoritative, ConflictContext, ConflictPlan, RowAction, RowStateAction,
};
use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state::{self, OutboxRow};
use crate::local::tx::apply_tx;
use crate::ops::freeze::Outbox;
use crate::report::ChangedTables;
use crate::sync_client::Ctx;
use crate::values::codec::{
    local_key_from_key_json, local_payload_to_wire, parse_object, wire_payload_to_row,
};
use crate::values::rows;
use oversqlite_core::store::{dirty_rows, source};

/// Puts an outbox row of the refused bundle back into the dirty set. A dirty row that
/// already exists for the key was captured after the freeze (a local write made while
/// the bundle was in flight): it is newer intent and is kept as it is. Its op and base
/// were computed by the capture trigger from the same `_sync_row_state` the outbox row
/// was frozen against (the refused bundle changed no row state), so it stands on its
/// own; overwriting it would push the stale frozen value first and need another round.
fn requeue_unchanged(conn: &Connection, r: &OutboxRow) -> Result<()> {
    Ok(dirty_rows::insert_unless_present(
        conn,
        &r.schema_name,
        &r.table_name,
        &r.key_json,
        &r.op,
        r.base_row_version,
        r.local_payload.as_deref(),
    )?)
}

/// Runs `f` with `PRAGMA foreign_keys` off when `off` and the host enabled it.
///
/// The row a resolution writes (the server's row, or a merge of it) may reference a
/// parent that exists on the server but has not been pulled to this device yet; it
/// arrives with the next pull (sync pulls right after the push). With enforcement on,
/// the deferred check would fail the resolution at commit, the outbox would stay
/// `prepared`, and every later push would conflict and fail the same way, with pull,
/// rebuild and detach all refused over the pending changes. The pragma cannot change
/// inside a transaction; every engine step starts in autocommit, so it is set around
/// this one transaction and restored by a guard, whether `f` returns, fails or panics
/// (a host connection must never be left with enforcement silently off).
fn without_fk_enforcement_if<T>(
    conn: &Connection,
    off: bool,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let enforced: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if !off || enforced == 0 || !conn.is_autocommit() {
        return f();
    }
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let guard = ForeignKeysBackOn { conn };
    let out = f();
    let restored = guard.restore();
    let out = out?;
    restored?;
    Ok(out)
}

/// Turns `PRAGMA foreign_keys` back on when dropped (also while unwinding a panic).
struct ForeignKeysBackOn<'c> {
    conn: &'c Connection,
}

impl ForeignKeysBackOn<'_> {
    /// Restores now, reporting a failure (the drop then has nothing left to do).
    fn restore(self) -> Result<()> {
        let r = self.conn.execute_batch("PRAGMA foreign_keys = ON");
        std::mem::forget(self);
        Ok(r?)
    }
}

impl Drop for ForeignKeysBackOn<'_> {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
    }
}

pub(crate) fn apply_conflict(
    ctx: &Ctx,
    outbox: &Outbox,
    details: &PushConflictDetails,
    changed: &mut ChangedTables,
) -> Result<()> {
    let index = outbox
        .push_rows
        .iter()
        .position(|p| {
            p.schema == details.schema && p.table == details.table && p.key == details.key
        })
        .ok_or_else(|| {
            SyncError::protocol(format!(
                "push conflict names {}.{} {:?}, which is not in the uploaded bundle",
                details.schema, details.table, details.key
            ))
        })?;
    let conflicting = &outbox.rows[index];
    let local_op = outbox.push_rows[index].op;
    let table = ctx.table(&conflicting.table_name)?;
    let local_payload = conflicting
        .local_payload
        .as_deref()
        .map(|t| parse_object(t, "outbox local_payload"))
        .transpose()?;
    let context = ConflictContext {
        schema: details.schema.clone(),
        table: details.table.clone(),
        key: details.key.clone(),
        local_op,
        local_payload: local_payload.clone(),
        base_row_version: conflicting.base_row_version,
        server_row_version: details.server_row_version,
        server_row_deleted: details.server_row_deleted,
        server_row: details.server_row.clone(),
        foreign_key: None,
    };
    let resolution = ctx.resolver.resolve(&context);
    let auth = Authoritative::of(
        &details.server_row,
        details.server_row_deleted,
        details.server_row_version,
    );
    let columns: Vec<String> = table.columns.iter().map(|c| c.json_name.clone()).collect();
    let planned = plan(
        &resolution,
        local_op,
        local_payload.as_ref(),
        &auth,
        &columns,
    );

    // Decode everything before writing so a bad server row changes nothing.
    let key = local_key_from_key_json(table, &conflicting.key_json)?;
    let values = match &planned {
        Ok(ConflictPlan {
            row: RowAction::UpsertServer(p),
            ..
        }) => Some(wire_payload_to_row(table, p)?),
        Ok(ConflictPlan {
            row: RowAction::UpsertLocal(p),
            ..
        }) => Some(wire_payload_to_row(
            table,
            &local_payload_to_wire(table, p)?,
        )?),
        _ => None,
    };
    let schema = ctx.config.schema.clone();
    let writes_row = values.is_some();
    without_fk_enforcement_if(ctx.conn, writes_row, || {
        apply_tx(ctx.conn, |conn| {
            for (i, r) in outbox.rows.iter().enumerate() {
                if i != index || planned.is_err() {
                    requeue_unchanged(conn, r)?;
                }
            }
            if let Ok(p) = &planned {
                let key_json = &conflicting.key_json;
                match &p.row {
                    RowAction::Delete => rows::delete_row(conn, table, &key)?,
                    _ => rows::upsert_row(conn, table, values.clone().unwrap_or_default())?,
                }
                match p.row_state {
                    RowStateAction::Remove => {
                        rows::delete_row_state(conn, &schema, &table.name, key_json)?
                    }
                    RowStateAction::Set { version, deleted } => rows::upsert_row_state(
                        conn,
                        &schema,
                        &table.name,
                        key_json,
                        version,
                        deleted,
                    )?,
                }
                match p.requeue {
                    None => rows::delete_dirty(conn, &schema, &table.name, key_json)?,
                    Some((op, base)) => {
                        let payload = if op == Op::Delete {
                            None
                        } else {
                            rows::live_row_json(conn, table, &key)?
                        };
                        rows::upsert_dirty(
                            conn,
                            &schema,
                            &table.name,
                            key_json,
                            op.as_str(),
                            base,
                            payload.as_deref(),
                        )?;
                    }
                }
            }
            // The refused bundle was not committed, so the next freeze must reuse its
            // source_bundle_id. Normally the counter still equals it; a rotated rebuild
            // advances the new source to 2 while the carried bundle 1 is unsent, and
            // freezing 2 next would be `source_sequence_out_of_order` (rotating again).
            source::lower_next_bundle_id(
                conn,
                &outbox.bundle.source_id,
                outbox.bundle.source_bundle_id,
            )?;
            oversqlite_core::fault::point("push.mid_conflict_apply");
            state::clear_outbox(conn)
        })
    })?;
    match planned {
        Ok(_) => {
            changed.insert(table.name.clone());
            Ok(())
        }
        Err(why) => Err(SyncError::new(
            ErrorKind::InvalidConflictResolution,
            format!("{why}; the rejected bundle was restored as local changes"),
        )),
    }
}

#[cfg(test)]
mod fk_guard_tests {
    use super::*;

    fn fk(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn enforcement_is_off_inside_and_back_on_after_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let err = without_fk_enforcement_if(&conn, true, || -> Result<()> {
            assert_eq!(fk(&conn), 0);
            Err(SyncError::state("resolution failed"))
        })
        .unwrap_err();
        assert_eq!(err.code(), SyncError::state("x").code());
        assert_eq!(fk(&conn), 1);
    }

    #[test]
    fn enforcement_is_back_on_after_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = without_fk_enforcement_if(&conn, true, || -> Result<()> {
                panic!("resolver panicked")
            });
        }));
        assert!(caught.is_err());
        assert_eq!(fk(&conn), 1);
    }
}
