//! `sync()` (§7.10): push then pull inside one exclusive operation, reporting both
//! outcomes and the union of changed tables.
//!
//! Two things make it more than "push, then pull" (engine/DECISIONS.md):
//!
//! * **Writes during the sync** (issue #16). The pull runs *beside* local changes
//!   written meanwhile (`pull/beside.rs`) instead of refusing them, then the sync
//!   pushes again, for at most [`ROUNDS`] push/pull rounds. An app that writes faster
//!   than that still gets a normal report, with `complete: false` and the pending
//!   count; the next sync sends the rest.
//! * **A refused commit** (issue #15). When the server refuses a bundle (a foreign key
//!   its other devices' changes broke), the bundle goes back among the local changes,
//!   a pull beside them settles the race by policy, and the push is repeated
//!   ([`push_settling`]); only a refusal nothing explains is an error.

use rusqlite::Connection;

use crate::error::{ErrorKind, Result};
use crate::local::state::{self, SourceInfo};
use crate::ops::pull::{pull_in, PullMode};
use crate::ops::push::push_reporting;
use crate::ops::refused::{probe_after_5xx, sweep_orphans, unsettled, Probe};
use crate::report::{
    ChangedTables, ForeignKeyResolution, PullReport, PushOutcome, PushReport, RemoteOutcome,
    SyncReport, SyncStatus,
};
use crate::sync_client::{sync_status, Ctx, SyncClient};

/// Push/pull rounds of one `sync()`. The first sends what was pending at the call;
/// the others send what the app wrote while it ran (and rows a foreign-key race
/// changed). Bounded so a sync returns while the app keeps writing.
pub const ROUNDS: u32 = 3;

/// How many refused commits one push may try to settle before giving up.
const REFUSALS: u32 = 3;

impl SyncClient {
    pub fn sync(&mut self, conn: &Connection) -> Result<SyncReport> {
        self.sync_rounds(conn, ROUNDS)
    }

    /// `sync()` with at most `rounds` push/pull rounds. `sync_then_detach` runs one
    /// per call: its own loop is the reference's round count (fixture
    /// `sync-then-detach-late-write-second-round`).
    pub(crate) fn sync_rounds(&mut self, conn: &Connection, rounds: u32) -> Result<SyncReport> {
        let result = {
            let ctx = self.begin(conn)?;
            let att = self.require_connected(&ctx)?;
            sync_in(&ctx, &att.attached_user_id, rounds.max(1))
        };
        if let Err(e) = &result {
            self.forget_user_after(e);
        }
        result
    }

    /// `push_pending` that settles a refused commit like `sync()` does: the refused
    /// bundle is put back, a pull beside the local changes settles the foreign-key
    /// race by policy, and the push is repeated. It downloads only after a refusal.
    /// Returns the push report and the races settled.
    pub fn push_settling(
        &mut self,
        conn: &Connection,
    ) -> Result<(PushReport, Vec<ForeignKeyResolution>)> {
        let result = {
            let ctx = self.begin(conn)?;
            let att = self.require_connected(&ctx)?;
            let mut changed = ChangedTables::new();
            let mut settled = Vec::new();
            push_settling(
                &ctx,
                &att.attached_user_id,
                &mut changed,
                &mut settled,
                &mut false,
            )
            .map(|push| (push, settled))
        };
        if let Err(e) = &result {
            self.forget_user_after(e);
        }
        result
    }

    /// The pull half of `sync()`: remote bundles applied beside unsent local changes
    /// (which stay unsent), foreign-key races settled by policy. For a sync whose
    /// uploads are paused.
    pub fn pull_beside(
        &mut self,
        conn: &Connection,
    ) -> Result<(PullReport, Vec<ForeignKeyResolution>)> {
        let ctx = self.begin(conn)?;
        let att = self.require_connected(&ctx)?;
        let mut changed = ChangedTables::new();
        let mut settled = Vec::new();
        let report = pull_in(
            &ctx,
            &att.attached_user_id,
            &mut changed,
            PullMode::Beside {
                settled: &mut settled,
            },
        )?;
        Ok((report, settled))
    }

    /// `syncStatus()`: local reads only, so it needs no attach on this connection, no
    /// operation lock (it works while a sync runs) and may run inside the caller's
    /// transaction (it reads what that transaction sees). It reports what the database
    /// knows locally; it does not ask the server.
    pub fn status(&mut self, conn: &Connection) -> Result<SyncStatus> {
        oversqlite_core::state::require_runtime(conn)?;
        sync_status(conn)
    }

    /// `sourceInfo()`: local only, needs only an opened database.
    pub fn source_info(&self, conn: &Connection) -> Result<SourceInfo> {
        state::source_info(conn)
    }
}

fn sync_in(ctx: &Ctx, user: &str, rounds: u32) -> Result<SyncReport> {
    let mut changed = ChangedTables::new();
    let mut settled = Vec::new();
    let mut push_outcome = PushOutcome::NoChange;
    let mut remote: Option<PullReport> = None;
    // Also set by the pulls that settle a refused commit.
    let mut applied_any = false;
    for round in 0..rounds {
        let push = push_settling(ctx, user, &mut changed, &mut settled, &mut applied_any)?;
        if push.outcome == PushOutcome::Committed {
            push_outcome = PushOutcome::Committed;
        }
        let pull = pull_in(
            ctx,
            user,
            &mut changed,
            PullMode::Beside {
                settled: &mut settled,
            },
        )?;
        applied_any |= pull.outcome != RemoteOutcome::AlreadyAtTarget;
        let stopped_early = pull.stopped_early;
        let restore = remote.as_ref().and_then(|r| r.restore);
        remote = Some(PullReport {
            restore: pull.restore.or(restore),
            ..pull
        });
        let pending = state::pending_row_count(ctx.conn)?;
        if (pending == 0 && !stopped_early) || round + 1 == rounds {
            break;
        }
    }
    let remote = remote.expect("at least one round ran");
    let remote_outcome = match remote.outcome {
        RemoteOutcome::AlreadyAtTarget if applied_any => RemoteOutcome::AppliedIncremental,
        other => other,
    };
    let pending = state::pending_row_count(ctx.conn)?;
    Ok(SyncReport {
        push_outcome,
        remote_outcome,
        restore: remote.restore,
        complete: pending == 0,
        pending_row_count: pending,
        foreign_key_resolutions: settled,
        status: sync_status(ctx.conn)?,
        changed_tables: changed,
    })
}

/// `push_in`, settling refused commits: see the module docs.
/// `pulled` is set when a settling pull applied remote bundles.
pub(crate) fn push_settling(
    ctx: &Ctx,
    user: &str,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
    pulled: &mut bool,
) -> Result<PushReport> {
    let mut refusals = 0;
    loop {
        let error = match push_reporting(ctx, changed, settled) {
            Err(e) if e.kind == ErrorKind::PushCommitRefused => e,
            Err(e) if e.http_status.is_some_and(|s| s >= 500) && refusals < REFUSALS => {
                refusals += 1;
                if let Probe::Requeued = probe_after_5xx(ctx)? {
                    // Settled like a refusal; if nothing explains it, it stays what it
                    // was: a server error worth retrying later.
                    if !settle(ctx, user, changed, settled, pulled)?.0 {
                        return Err(e);
                    }
                }
                continue;
            }
            other => return other,
        };
        refusals += 1;
        let (progress, unexplained) = settle(ctx, user, changed, settled, pulled)?;
        if !progress || refusals >= REFUSALS {
            return Err(unsettled(error, &unexplained));
        }
    }
}

/// After a refused bundle was put back: pulls beside the local changes (settling
/// foreign-key races by policy), then sweeps local children whose parent the server
/// deleted. Returns whether anything changed (else pushing again is pointless) and
/// the references nothing explains.
fn settle(
    ctx: &Ctx,
    user: &str,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
    pulled: &mut bool,
) -> Result<(bool, Vec<String>)> {
    let before = (
        settled.len(),
        state::attachment(ctx.conn)?.last_bundle_seq_seen,
    );
    let pull = pull_in(ctx, user, changed, PullMode::Beside { settled })?;
    *pulled |= pull.bundles_applied > 0 || pull.outcome == RemoteOutcome::AppliedSnapshot;
    let (swept, unexplained) = sweep_orphans(ctx, changed, settled)?;
    let after = (
        settled.len(),
        state::attachment(ctx.conn)?.last_bundle_seq_seen,
    );
    Ok((
        after != before || swept > 0 || pull.stopped_early,
        unexplained,
    ))
}
