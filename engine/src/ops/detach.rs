//! `detach()` and `sync_then_detach()` (§7.9). A successful detach wipes managed
//! data and rotates to a fresh source in one transaction, so the next user of this
//! database starts clean and the old source can never be reused.

use rusqlite::Connection;

use crate::error::Result;
use crate::local::state;
use crate::local::state::OperationKind;
use crate::local::tx::{apply_tx, write_tx};
use crate::ops::snapshot::managed_table_names;
use crate::report::{ChangedTables, DetachOutcome, DetachReport, SyncThenDetachReport};
use crate::sync_client::{Ctx, SyncClient};
use crate::values::rows::quote_ident;
use oversqlite_core::store::{dirty_rows, row_state, snapshot_stage, source};

impl SyncClient {
    pub fn detach(&mut self, conn: &Connection) -> Result<DetachReport> {
        self.detach_with(conn, false)
    }

    /// Detach even though local changes were never uploaded: they are discarded with
    /// all managed data and the source rotates. The escape hatch for a bundle the
    /// server can never accept (e.g. `400 push_commit_invalid` after a referenced
    /// parent was deleted elsewhere); attach again to hydrate from the server.
    pub fn detach_discarding_local_changes(&mut self, conn: &Connection) -> Result<DetachReport> {
        self.detach_with(conn, true)
    }

    fn detach_with(&mut self, conn: &Connection, discard: bool) -> Result<DetachReport> {
        let report = {
            let ctx = self.begin(conn)?;
            detach_in(&ctx, discard)?
        };
        if report.outcome == DetachOutcome::Detached {
            self.set_connected(None);
        }
        Ok(report)
    }

    /// Up to `sync_then_detach_rounds` rounds of sync + detach; stops early when a
    /// blocked detach shows no progress in the pending count.
    pub fn sync_then_detach(&mut self, conn: &Connection) -> Result<SyncThenDetachReport> {
        let mut changed = ChangedTables::new();
        let mut previous_pending: Option<i64> = None;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let sync = self.sync_rounds(conn, 1)?;
            changed.extend(sync.changed_tables.iter().cloned());
            let detach = self.detach(conn)?;
            changed.extend(detach.changed_tables.iter().cloned());
            let done = detach.outcome == DetachOutcome::Detached;
            let stalled = previous_pending.is_some_and(|p| detach.pending_row_count >= p);
            if done || stalled || rounds >= self.settings.sync_then_detach_rounds {
                return Ok(SyncThenDetachReport {
                    is_success: done,
                    last_sync: sync,
                    detach: detach.outcome,
                    sync_rounds: rounds,
                    remaining_pending_row_count: detach.pending_row_count,
                    changed_tables: changed,
                });
            }
            previous_pending = Some(detach.pending_row_count);
        }
    }
}

fn detach_in(ctx: &Ctx, discard: bool) -> Result<DetachReport> {
    let conn = ctx.conn;
    let op = state::operation(conn)?;
    if op.kind == OperationKind::RemoteReplace {
        // Cancel the hydrate: metadata only, application rows are untouched.
        write_tx(conn, |c| {
            let source = state::attachment(c)?.current_source_id;
            snapshot_stage::clear(c)?;
            state::persist_anonymous(c, &source)?;
            state::reset_operation(c)
        })?;
        return Ok(DetachReport {
            outcome: DetachOutcome::Detached,
            pending_row_count: state::pending_row_count(conn)?,
            changed_tables: ChangedTables::new(),
        });
    }
    let att = state::attachment(conn)?;
    let pending = state::pending_row_count(conn)?;
    // Unsent local changes block a detach whether or not the database was ever
    // attached (the reference only checks attached databases and deletes a
    // never-attached database's rows); only an explicit discard drops them.
    if pending > 0 && !discard {
        return Ok(DetachReport {
            outcome: DetachOutcome::BlockedUnsyncedData,
            pending_row_count: pending,
            changed_tables: ChangedTables::new(),
        });
    }
    let old = att.current_source_id.clone();
    let new = state::new_source_id(&[old.as_str()]);
    let tables = apply_tx(conn, |c| {
        let tables = managed_table_names(ctx, c)?;
        for t in &tables {
            c.execute(&format!("DELETE FROM {}", quote_ident(t)), [])?;
            row_state::delete_table_any_schema(c, t)?;
        }
        dirty_rows::delete_all(c)?;
        state::clear_outbox(c)?;
        snapshot_stage::clear(c)?;
        state::ensure_source_row(c, &new)?;
        source::set_replaced_by(c, &old, &new)?;
        state::persist_anonymous(c, &new)?;
        state::reset_operation(c)?;
        Ok(tables)
    })?;
    Ok(DetachReport {
        outcome: DetachOutcome::Detached,
        pending_row_count: 0,
        changed_tables: tables.into_iter().collect(),
    })
}
