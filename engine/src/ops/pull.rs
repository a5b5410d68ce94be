//! `pull_to_stable` (§7.6): page through `/sync/pull` up to a frozen ceiling,
//! applying each bundle in its own short transaction so the checkpoint only moves
//! after a durable apply. `409 history_pruned` falls back to a keep-source snapshot.
//!
//! A page carries whole bundles, so one page can be tens of megabytes. It is never
//! held in memory: the body is downloaded into a spool file (`pull/spool.rs`), then, with no
//! request in flight, read twice as a stream (`pull/page.rs`): a check pass validates the
//! page and every bundle (row shapes, `row_count`, `bundle_hash` recomputed row by
//! row), and an apply pass applies each bundle in its own transaction. A row that
//! still fails to decode in the apply pass rolls its bundle's transaction back, so a
//! malformed row changes nothing of its bundle.

mod page;
#[cfg(test)]
mod page_fuzz;
mod spool;

use oversqlite_protocol::{codes, BundleHasher, BundleRow, Op, CASCADE_SOURCE_ID};
use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state;
use crate::local::tx::ImmediateTx;
use crate::ops::gates::{check_gates, require_drained};
use crate::ops::snapshot::{rebuild_from_snapshot, OutboxMode};
use crate::remote::client::Reply;
use crate::remote::validate::{
    validate_bundle_digest, validate_bundle_head, validate_bundle_row, validate_pull_head,
};
use crate::report::{ChangedTables, PullCounts, PullReport, RemoteOutcome};
use crate::sync_client::{sync_status, Ctx, SyncClient};
use crate::values::codec::{wire_key_to_local, wire_payload_to_row};
use crate::values::rows;
use crate::wording::counted;
use oversqlite_core::store::{apply, attachment};

use crate::ops::beside::{
    apply_row_beside, superseded_by_parent_delete, Flow, LocalIntent, NewerChildren, PendingRestore,
};
use crate::ops::server_row::{restore_from_server, Restored};
use crate::report::ForeignKeyResolution;
use page::{read_page, BundleHead, PageSink};
use spool::Spool;

/// How a pull treats unsent local changes.
pub(crate) enum PullMode<'s> {
    /// The reference contract (§7.6): refuse while any local change is unsent.
    Drained,
    /// `Drained`, stopping at bundle `until` instead of the server's latest bundle when
    /// that is lower (`oversqlite_download_once`'s `until`). Refused when `until` would
    /// separate a bundle from the cascade bundle the server committed right after it.
    Until(i64),
    /// Apply remote bundles beside unsent local changes (`pull/beside.rs`), settling
    /// foreign-key races by policy and reporting each in `settled`.
    Beside {
        settled: &'s mut Vec<ForeignKeyResolution>,
    },
}

/// Restores that one pull may run before giving up on making progress (each one
/// turns one local change into the server's row, so a pull needs at most one per
/// pending row; the cap only guards against a server that keeps changing history).
const MAX_RESTORES: usize = 10_000;

impl SyncClient {
    pub fn pull_to_stable(&mut self, conn: &rusqlite::Connection) -> Result<PullReport> {
        let ctx = self.begin(conn)?;
        let att = self.require_connected(&ctx)?;
        let mut changed = ChangedTables::new();
        pull_in(&ctx, &att.attached_user_id, &mut changed, PullMode::Drained)
    }

    /// `pull_to_stable`, but with the ceiling at bundle `until` when that is below the
    /// server's latest bundle (`until` <= 0: no ceiling). `invalid_argument` when
    /// stopping after bundle `until` would apply a parent's deletion without the
    /// cascade bundle right after it.
    pub fn pull_until(&mut self, conn: &rusqlite::Connection, until: i64) -> Result<PullReport> {
        let ctx = self.begin(conn)?;
        let att = self.require_connected(&ctx)?;
        let mut changed = ChangedTables::new();
        let mode = if until > 0 {
            PullMode::Until(until)
        } else {
            PullMode::Drained
        };
        pull_in(&ctx, &att.attached_user_id, &mut changed, mode)
    }
}

fn snapshot_report(ctx: &Ctx, user: &str, changed: &mut ChangedTables) -> Result<PullReport> {
    let restore = rebuild_from_snapshot(ctx, user, None, OutboxMode::ClearAll, changed)?;
    Ok(PullReport {
        outcome: RemoteOutcome::AppliedSnapshot,
        counts: PullCounts {
            rows: restore.row_count,
            ..PullCounts::default()
        },
        restore: Some(restore),
        bundles_applied: 0,
        stopped_early: false,
        status: sync_status(ctx.conn)?,
        changed_tables: changed.clone(),
    })
}

pub(crate) fn pull_in(
    ctx: &Ctx,
    user: &str,
    changed: &mut ChangedTables,
    mut mode: PullMode,
) -> Result<PullReport> {
    check_gates(ctx)?;
    let mut restores = 0usize;
    let mut careful = false;
    loop {
        let (beside, until) = match &mut mode {
            PullMode::Drained => (None, 0),
            PullMode::Until(until) => (None, *until),
            PullMode::Beside { settled } => (Some(&mut **settled), 0),
        };
        let paged = match pull_pages(ctx, user, changed, beside, careful, until) {
            // A bundle broke a local foreign key: rows the server's later history
            // already deleted (see `superseded_by_parent_delete`) are skipped on a
            // second, careful pass from the unchanged checkpoint.
            Err(e) if e.kind == ErrorKind::ForeignKeyViolation && !careful => {
                careful = true;
                continue;
            }
            other => other?,
        };
        match paged {
            Paged::Done(report) => return Ok(report),
            Paged::Restore(pending) => {
                // A bundle needs the server's row of a local key first (a foreign-key
                // race that policy settled for the server): it was rolled back; take
                // the row, then pull again from the checkpoint, which did not move.
                let PullMode::Beside { settled } = &mut mode else {
                    return Err(SyncError::new(
                        ErrorKind::Internal,
                        "a restore was asked for outside a pull beside local changes",
                    ));
                };
                let mut queue = vec![pending];
                let mut handed = false;
                while let Some(next) = queue.pop() {
                    restores += 1;
                    if restores > MAX_RESTORES {
                        return Err(SyncError::new(
                            ErrorKind::Internal,
                            format!(
                                "a pull restored {MAX_RESTORES} rows without finishing; sync again"
                            ),
                        ));
                    }
                    match restore_from_server(ctx, &next, changed, settled)? {
                        Restored::Applied(more) => queue.extend(more),
                        Restored::HandedToPush => handed = true,
                    }
                }
                match handed {
                    false => continue,
                    true => {
                        // The next push settles the row (a structured conflict), then a
                        // pull continues from here.
                        return Ok(PullReport {
                            outcome: RemoteOutcome::AppliedIncremental,
                            restore: None,
                            bundles_applied: 0,
                            counts: PullCounts::default(),
                            stopped_early: true,
                            status: sync_status(ctx.conn)?,
                            changed_tables: changed.clone(),
                        });
                    }
                }
            }
        }
    }
}

/// How one pass over the pages ended.
enum Paged {
    Done(PullReport),
    Restore(PendingRestore),
}

fn pull_pages(
    ctx: &Ctx,
    user: &str,
    changed: &mut ChangedTables,
    mut beside: Option<&mut Vec<ForeignKeyResolution>>,
    careful: bool,
    until: i64,
) -> Result<Paged> {
    // Beside local changes, a bundle frozen for upload must still be sent first: its
    // rows' versions are decided by its commit, not by what the pull brings.
    if beside.is_none() || state::outbox_row_count(ctx.conn)? > 0 {
        require_drained(ctx)?;
    }
    let att = state::attachment(ctx.conn)?;
    let source = att.current_source_id.clone();
    let initial = att.last_bundle_seq_seen;
    let newer = NewerChildren::load(ctx, initial)?;
    let mut after = initial;
    let mut target = 0i64;
    let mut applied = 0i64;
    let mut counts = PullCounts::default();
    let max = ctx.pull_max_bundles();
    let mut spool = Spool::create(ctx.conn)?;
    crate::progress::set_phase(crate::progress::Phase::Downloading);
    if until > 0 {
        if until <= initial {
            // Already past the ceiling: nothing to ask for (the server would answer a
            // stable bundle below the checkpoint, which §2.8 validation refuses).
            return Ok(Paged::Done(PullReport {
                outcome: RemoteOutcome::AlreadyAtTarget,
                restore: None,
                bundles_applied: 0,
                counts,
                stopped_early: false,
                status: sync_status(ctx.conn)?,
                changed_tables: changed.clone(),
            }));
        }
        target = safe_ceiling(ctx, &source, until, &mut spool)?;
    }
    loop {
        match ctx
            .remote
            .pull_to_file(&source, after, max, target, spool.file_mut())?
        {
            Reply::Ok(()) => {}
            Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::HISTORY_PRUNED) => {
                require_drained(ctx)?;
                return snapshot_report(ctx, user, changed).map(Paged::Done);
            }
            Reply::Failed(f) => return Err(f.into_error("pull request")),
        }
        let page = check_page(&mut spool, after)?;
        oversqlite_core::fault::point("pull.after_response");
        // A zero checkpoint is never answered `history_pruned` (§10.6): the server
        // silently starts above its retention floor. Bundle sequences are contiguous per
        // user from 1, so a first bundle above 1 means pruned history this device never
        // saw; only a snapshot can bring it back.
        if after == 0 && page.bundle_seqs.first().is_some_and(|s| *s > 1) {
            require_drained(ctx)?;
            return snapshot_report(ctx, user, changed).map(Paged::Done);
        }
        let stable = page.stable_bundle_seq;
        if target == 0 {
            target = stable;
        } else if stable != target {
            return Err(SyncError::protocol(format!(
                "pull response stable bundle seq changed from {target} to {stable}"
            )));
        }
        let empty = page.bundle_seqs.is_empty();
        if !empty {
            let mut applier = Applier {
                ctx,
                bundle_seqs: &page.bundle_seqs,
                bundle_hashes: &page.bundle_hashes,
                hasher: BundleHasher::new(),
                tx: None,
                updated_at: String::new(),
                touched: ChangedTables::new(),
                changed: &mut *changed,
                after: &mut after,
                applied: &mut applied,
                beside: beside.is_some(),
                careful,
                source: &source,
                counts: &mut counts,
                newer: &newer,
                intent: None,
                settled: Vec::new(),
                bundle_settled: Vec::new(),
                restore: None,
            };
            let read = read_page(spool.reader()?, &mut applier);
            let (settled, restore) = (std::mem::take(&mut applier.settled), applier.restore.take());
            if let Some(out) = beside.as_deref_mut() {
                out.extend(settled);
            }
            if let Some(pending) = restore {
                return Ok(Paged::Restore(pending));
            }
            read?;
        }
        if after >= stable {
            let outcome = if after == initial && stable == initial {
                RemoteOutcome::AlreadyAtTarget
            } else {
                RemoteOutcome::AppliedIncremental
            };
            return Ok(Paged::Done(PullReport {
                outcome,
                restore: None,
                bundles_applied: applied,
                counts,
                stopped_early: false,
                status: sync_status(ctx.conn)?,
                changed_tables: changed.clone(),
            }));
        }
        if !page.has_more && empty {
            return Err(SyncError::protocol(format!(
                "pull ended before reaching stable bundle seq {stable}"
            )));
        }
        if !page.has_more {
            return Err(SyncError::protocol(format!(
                "pull ended early at bundle seq {after} below stable bundle seq {stable}"
            )));
        }
    }
}

/// The first request's `target_bundle_seq` for a pull that stops at `until`: 0 (the
/// server's latest bundle) when `until` is at or beyond it, else `until`, once one
/// bundle read past it shows that `until` is a whole stopping point. Bundles are always
/// applied whole, so the only unsafe ceiling is one between a bundle and the cascade
/// bundle (`CASCADE_SOURCE_ID`) the server committed right after it: that checkpoint
/// would show a parent's deletion with its children still present. One bundle of
/// history is read for the check (a whole bundle, however large; the page is spooled).
fn safe_ceiling(ctx: &Ctx, source: &str, until: i64, spool: &mut Spool) -> Result<i64> {
    match ctx
        .remote
        .pull_to_file(source, until, 1, 0, spool.file_mut())?
    {
        Reply::Ok(()) => {}
        // History up to `until` is gone: the pull itself meets the same answer and
        // rebuilds from a snapshot (the whole current state; no ceiling applies).
        Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::HISTORY_PRUNED) => {
            return Ok(until)
        }
        Reply::Failed(f) => return Err(f.into_error("pull request")),
    }
    // Checked as a page after 0, not after `until`: at or beyond the server's latest
    // bundle the answer's stable bundle is below `until`, which is the case looked for,
    // not a malformed page.
    let next = check_page(spool, 0)?;
    if until >= next.stable_bundle_seq {
        return Ok(0);
    }
    if next.source_ids.first().map(String::as_str) == Some(CASCADE_SOURCE_ID) {
        let cascade = next.bundle_seqs[0];
        return Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!(
                "until {until} would stop between bundle {until} and bundle {cascade}, which holds the deletions its foreign keys cascaded to; use until = {cascade} (or {})",
                until - 1
            ),
        ));
    }
    Ok(until)
}

/// What the check pass proved about a spooled page.
struct CheckedPage {
    stable_bundle_seq: i64,
    has_more: bool,
    /// The page's bundles in order; the apply pass must meet exactly these.
    bundle_seqs: Vec<i64>,
    /// Their source ids (`safe_ceiling` looks for a cascade bundle).
    source_ids: Vec<String>,
    /// Each bundle's hash as the check pass computed it; the apply pass recomputes it
    /// from the rows it applies and commits only on a match.
    bundle_hashes: Vec<String>,
}

/// One bundle as seen by the check pass.
struct BundleCheck {
    head: BundleHead,
    rows: i64,
    hash: String,
    /// The first invalid row, reported after the bundle's own members (the order the
    /// whole-page validation always used).
    row_error: Option<SyncError>,
}

/// Check-pass sink: validates rows and recomputes each bundle's hash as rows stream
/// by; keeps only a few fields per bundle.
#[derive(Default)]
struct Checker {
    bundles: Vec<BundleCheck>,
    current: Option<(BundleHasher, Option<SyncError>)>,
}

impl PageSink for Checker {
    fn bundle_begin(&mut self, _index: usize) -> Result<()> {
        self.current = Some((BundleHasher::new(), None));
        Ok(())
    }

    fn row(&mut self, _index: usize, row: BundleRow) -> Result<()> {
        if let Some((hasher, error @ None)) = self.current.as_mut() {
            match validate_bundle_row(&row) {
                Ok(()) => hasher.push(&row),
                Err(e) => *error = Some(e),
            }
        }
        Ok(())
    }

    fn bundle_end(&mut self, _index: usize, head: BundleHead) -> Result<()> {
        let (hasher, row_error) = self.current.take().unwrap_or_default();
        let rows = hasher.row_count();
        self.bundles.push(BundleCheck {
            head,
            rows,
            hash: hasher.finish().bundle_hash,
            row_error,
        });
        Ok(())
    }
}

/// The check pass (§2.8 client validation, plus `row_count`/`bundle_hash` when sent).
fn check_page(spool: &mut Spool, after: i64) -> Result<CheckedPage> {
    check_page_from(spool.reader()?, after)
}

/// The check pass over a pull response body held in memory: exactly what a pull runs
/// on its spooled page before applying anything (the contract fixtures' pull
/// validation cases are driven through it).
pub fn check_pull_page(body: &[u8], after_bundle_seq: i64) -> Result<()> {
    check_page_from(body, after_bundle_seq).map(|_| ())
}

fn check_page_from(reader: impl std::io::Read, after: i64) -> Result<CheckedPage> {
    let mut checker = Checker::default();
    let head = read_page(reader, &mut checker)?;
    validate_pull_head(head.stable_bundle_seq, head.bundles > 0, after)?;
    let mut previous = after;
    let mut bundle_seqs = Vec::with_capacity(checker.bundles.len());
    let mut bundle_hashes = Vec::with_capacity(checker.bundles.len());
    let mut source_ids = Vec::with_capacity(checker.bundles.len());
    for b in checker.bundles {
        let h = &b.head;
        validate_bundle_head(
            h.bundle_seq,
            &h.source_id,
            h.source_bundle_id,
            previous,
            head.stable_bundle_seq,
        )?;
        if let Some(e) = b.row_error {
            return Err(e);
        }
        validate_bundle_digest(
            h.bundle_seq,
            h.row_count,
            h.bundle_hash.as_deref(),
            b.rows,
            &b.hash,
        )?;
        previous = h.bundle_seq;
        bundle_seqs.push(h.bundle_seq);
        bundle_hashes.push(b.hash);
        source_ids.push(b.head.source_id);
    }
    Ok(CheckedPage {
        stable_bundle_seq: head.stable_bundle_seq,
        has_more: head.has_more,
        bundle_seqs,
        source_ids,
        bundle_hashes,
    })
}

/// An apply-mode transaction (capture suppressed, foreign keys deferred) held open
/// while one bundle streams from the spool file: the same steps as `tx::apply_tx`,
/// split so a streaming reader can begin and end it. Dropped uncommitted, it rolls
/// back (and with it `apply_mode`).
struct BundleTx<'c> {
    tx: ImmediateTx<'c>,
    /// When the write lock was taken.
    began: std::time::Instant,
}

/// A bundle transaction holding the write lock at least this long is followed by a
/// pause of [`WRITERS_TURN`] before the next one begins. SQLite's locks are not fair:
/// bundles applied back to back from the spool let a writer polling for the lock (the
/// app's `busy_timeout`) find it free only by luck, so it waited through several of
/// them (issue #16: 140 ms behind 40 ms transactions). The pause costs at most 1 ms per
/// 10 ms of apply, and nothing for small bundles.
const LONG_HOLD: std::time::Duration = std::time::Duration::from_millis(10);
const WRITERS_TURN: std::time::Duration = std::time::Duration::from_millis(1);

impl<'c> BundleTx<'c> {
    fn begin(conn: &'c Connection) -> Result<Self> {
        let tx = ImmediateTx::begin(conn)?;
        let began = std::time::Instant::now();
        conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        apply::enter(conn)?;
        Ok(BundleTx { tx, began })
    }

    /// Commits; a deferred foreign-key violation is reported naming its rows rather
    /// than as SQLite's bare "FOREIGN KEY constraint failed".
    fn commit(self, ctx: &Ctx, bundle_seq: i64) -> Result<()> {
        apply::leave(self.tx.conn())?;
        let began = self.began;
        let committed = self.tx.commit_or_explain(|conn| {
            let found = crate::local::fk_check::describe_violations(conn, &ctx.config);
            Some(SyncError::new(
                ErrorKind::ForeignKeyViolation,
                format!(
                    "bundle {bundle_seq} from the server cannot be applied: {}; nothing of it was applied. Declare the same foreign keys as the server (with the same ON DELETE actions) or disable PRAGMA foreign_keys for this connection",
                    if found.is_empty() { "a foreign key would be violated".to_string() } else { found.join("; ") }
                ),
            ))
        });
        if committed.is_ok() && began.elapsed() >= LONG_HOLD {
            std::thread::sleep(WRITERS_TURN);
        }
        committed
    }
}

/// Apply-pass sink: each bundle in its own transaction, rows applied as they are read.
struct Applier<'p, 'c, 'a> {
    ctx: &'p Ctx<'a>,
    bundle_seqs: &'p [i64],
    bundle_hashes: &'p [String],
    /// The rows applied so far in this bundle, hashed: proof that what is committed is
    /// what the check pass verified (the spool is read twice).
    hasher: BundleHasher,
    tx: Option<BundleTx<'c>>,
    /// `updated_at` for the row states of the bundle being applied.
    updated_at: String,
    touched: ChangedTables,
    changed: &'p mut ChangedTables,
    after: &'p mut i64,
    applied: &'p mut i64,
    /// Apply beside unsent local changes instead of refusing them.
    beside: bool,
    /// Skip child rows that a later deletion of their parent superseded.
    careful: bool,
    /// This device's source id (its own bundles are counted apart).
    source: &'p str,
    counts: &'p mut PullCounts,
    /// Parents this device's own newer commits reference (their older deletions are
    /// superseded).
    newer: &'p NewerChildren,
    /// The unsent local changes of the bundle being applied (beside mode, when any).
    intent: Option<LocalIntent>,
    /// Foreign-key races settled by the bundles committed so far.
    settled: Vec<ForeignKeyResolution>,
    /// Those of the bundle being applied (kept only if it commits).
    bundle_settled: Vec<ForeignKeyResolution>,
    /// Set when a row needs a restore first; the bundle is then rolled back.
    restore: Option<PendingRestore>,
}

impl<'c, 'a: 'c> PageSink for Applier<'_, 'c, 'a> {
    fn bundle_begin(&mut self, index: usize) -> Result<()> {
        if index >= self.bundle_seqs.len() {
            return Err(changed_underfoot());
        }
        let tx = BundleTx::begin(self.ctx.conn)?;
        self.bundle_settled.clear();
        if self.beside {
            // Read inside the transaction: no capture can add to it until the commit.
            self.intent = LocalIntent::load(self.ctx)?;
            self.tx = Some(tx);
            self.hasher = BundleHasher::new();
            self.updated_at = rows::now_timestamp(self.ctx.conn)?;
            self.touched.clear();
            return Ok(());
        }
        // The drained check ran before the request; another connection may have
        // written since. Applying over that write would silently lose it, so the
        // bundle is refused as a whole (checkpoint unchanged) and the next sync
        // pushes first.
        let dirty = state::dirty_count(self.ctx.conn)?;
        if dirty > 0 {
            return Err(SyncError::new(
                ErrorKind::PendingLocalChanges,
                format!(
                    "{} written while the pull was in flight; nothing was applied; call oversqlite_sync() to push them first",
                    counted(dirty, "local row was", "local rows were")
                ),
            ));
        }
        self.tx = Some(tx);
        self.hasher = BundleHasher::new();
        self.updated_at = rows::now_timestamp(self.ctx.conn)?;
        self.touched.clear();
        Ok(())
    }

    fn row(&mut self, _index: usize, row: BundleRow) -> Result<()> {
        self.hasher.push(&row);
        if self.careful && row.op != Op::Delete {
            let table = self.ctx.table(&row.table)?;
            if !table.foreign_keys.is_empty() && superseded_by_parent_delete(self.ctx, &row, table)?
            {
                // Recorded at its version, never written: a later bundle deletes it.
                let key = wire_key_to_local(table, &row.key)?;
                rows::advance_row_state(
                    self.ctx.conn,
                    &self.ctx.config.schema,
                    table,
                    &key,
                    row.row_version,
                    false,
                    &self.updated_at,
                )?;
                return Ok(());
            }
        }
        let Some(intent) = self.intent.as_mut() else {
            return apply_row(
                self.ctx,
                &row,
                &self.updated_at,
                &mut self.touched,
                self.newer,
            );
        };
        let (table, key, values) = decode_row(self.ctx, &row)?;
        match apply_row_beside(
            self.ctx,
            intent,
            &row,
            table,
            &key,
            values,
            &self.updated_at,
            &mut self.touched,
            &mut self.bundle_settled,
            self.newer,
        )? {
            Flow::Continue => Ok(()),
            Flow::Restore(pending) => {
                self.restore = Some(pending);
                // Stops the read; the open bundle transaction rolls back when dropped.
                Err(SyncError::new(
                    ErrorKind::Internal,
                    "bundle rolled back for a restore",
                ))
            }
        }
    }

    fn bundle_end(&mut self, index: usize, head: BundleHead) -> Result<()> {
        if self.bundle_seqs.get(index) != Some(&head.bundle_seq) {
            return Err(changed_underfoot());
        }
        let rows = self.hasher.row_count();
        let applied = std::mem::take(&mut self.hasher).finish().bundle_hash;
        if self.bundle_hashes.get(index) != Some(&applied) {
            return Err(changed_underfoot());
        }
        let tx = self.tx.take().ok_or_else(changed_underfoot)?;
        attachment::advance_checkpoint(self.ctx.conn, head.bundle_seq)?;
        oversqlite_core::fault::point("pull.mid_bundle_apply");
        tx.commit(self.ctx, head.bundle_seq)?;
        oversqlite_core::fault::point("pull.after_bundle_applied");
        self.changed.append(&mut self.touched);
        self.settled.append(&mut self.bundle_settled);
        *self.after = head.bundle_seq;
        *self.applied += 1;
        self.counts.rows += rows;
        crate::progress::rows_down(rows, None);
        if head.source_id == self.source {
            self.counts.own_bundles += 1;
            self.counts.own_rows += rows;
        }
        Ok(())
    }
}

/// The spool file is private to this operation; a page that reads differently the
/// second time means local corruption, never a reason to apply anything.
fn changed_underfoot() -> SyncError {
    SyncError::new(
        ErrorKind::DatabaseError,
        "the spooled pull response changed between its check and its apply",
    )
}

/// A bundle row's table, local key and values (`None` for a DELETE).
fn decode_row<'t>(
    ctx: &'t Ctx,
    row: &BundleRow,
) -> Result<(
    &'t crate::local::schema::ManagedTable,
    crate::values::codec::LocalKey,
    Option<crate::values::codec::RowValues>,
)> {
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
    Ok((table, key, values))
}

/// Applies one validated bundle row inside its bundle's transaction: two statements,
/// the version-guarded row-state upsert (which also tells whether the row is already
/// applied, e.g. our own pushed bundle coming back) and the application write.
/// the dirty-row set needs no cleanup: it was empty when the transaction began and
/// capture is suppressed inside it.
fn apply_row(
    ctx: &Ctx,
    row: &BundleRow,
    updated_at: &str,
    touched: &mut ChangedTables,
    newer: &NewerChildren,
) -> Result<()> {
    let (table, key, values) = decode_row(ctx, row)?;
    let conn = ctx.conn;
    let deleted = values.is_none();
    if deleted && !newer.is_empty() {
        let id = (table.name.clone(), rows::key_json(conn, table, &key)?);
        if newer.supersedes_delete(&id, row.row_version) {
            rows::advance_row_state(
                conn,
                &ctx.config.schema,
                table,
                &key,
                row.row_version,
                true,
                updated_at,
            )?;
            return Ok(());
        }
    }
    if !rows::advance_row_state(
        conn,
        &ctx.config.schema,
        table,
        &key,
        row.row_version,
        deleted,
        updated_at,
    )? {
        return Ok(());
    }
    match values {
        Some(v) => rows::upsert_row(conn, table, v)?,
        None => rows::delete_row(conn, table, &key)?,
    }
    if !touched.contains(&table.name) {
        touched.insert(table.name.clone());
    }
    Ok(())
}
