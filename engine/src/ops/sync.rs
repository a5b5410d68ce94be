//! `sync()` (§7.10): push then pull inside one exclusive operation, reporting both
//! outcomes and the union of changed tables.

use rusqlite::Connection;

use crate::client::{sync_status, SyncClient};
use crate::error::Result;
use crate::ops::pull::pull_in;
use crate::ops::push::push_in;
use crate::report::{ChangedTables, PushOutcome, SyncReport, SyncStatus};
use crate::state::{self, SourceInfo};

impl SyncClient {
    pub fn sync(&mut self, conn: &Connection) -> Result<SyncReport> {
        let result = {
            let ctx = self.begin(conn)?;
            let att = self.require_connected(&ctx)?;
            let mut changed = ChangedTables::new();
            push_in(&ctx, &mut changed).and_then(|push| {
                // A push that resumed an outbox frozen earlier (before a crash or a
                // failed call) commits only that bundle; rows written since wait as
                // dirty rows and the pull below would refuse to run over them. One more
                // push sends them (bounded: a host writing all the time still gets
                // `pending_local_changes` and syncs again).
                if push.outcome == PushOutcome::Committed && state::dirty_count(conn)? > 0 {
                    push_in(&ctx, &mut changed)?;
                }
                let pull = pull_in(&ctx, &att.attached_user_id, &mut changed)?;
                Ok(SyncReport {
                    push_outcome: push.outcome,
                    remote_outcome: pull.outcome,
                    restore: pull.restore,
                    status: sync_status(conn)?,
                    changed_tables: changed,
                })
            })
        };
        if let Err(e) = &result {
            self.forget_user_after(e);
        }
        result
    }

    /// `syncStatus()`: needs an attached, connected client.
    pub fn status(&mut self, conn: &Connection) -> Result<SyncStatus> {
        // Local reads only: no operation lock, so status works while a sync runs.
        let ctx = self.begin_read_only(conn)?;
        self.require_connected(&ctx)?;
        sync_status(conn)
    }

    /// `sourceInfo()`: local only, needs only an opened database.
    pub fn source_info(&self, conn: &Connection) -> Result<SourceInfo> {
        state::source_info(conn)
    }
}
