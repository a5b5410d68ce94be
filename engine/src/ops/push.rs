//! `push_pending` (§7.4): freeze → upload through a push session → commit →
//! persist `committed_remote` → fetch and verify the committed rows → replay.
//! Conflicts (§7.5) are resolved and the push re-run a bounded number of times.

use oversqlite_protocol::{
    codes, PushConflictDetails, PushSessionCreateRequest, PushSessionCreateResponse,
};

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state::OutboxState;
use crate::local::state::{self, OutboxBundle, OutboxRow};
use crate::local::tx::write_tx;
use crate::ops::committed::{fetch_committed, Fetch};
use crate::ops::conflict_apply::apply_conflict;
use crate::ops::freeze;
use crate::ops::gates::check_gates;
use crate::ops::recovery::{lose_lease, push_failure};
use crate::ops::refused::{self, Refusal};
use crate::ops::replay::replay_committed;
use crate::remote::ahead::AheadSender;
use crate::remote::client::{HttpFailure, Reply};
use crate::remote::validate::CommittedMeta;
use crate::report::ForeignKeyResolution;
use crate::report::{ChangedTables, PushOutcome, PushReport};
use crate::sync_client::{sync_status, Ctx, SyncClient};
use oversqlite_core::store::{attachment, outbox};

enum Step {
    NoChange,
    Committed {
        bundle_seq: i64,
        row_count: i64,
    },
    /// A conflict on `(table, wire key)` was resolved; the rest was requeued.
    ConflictResolved(String, String),
    /// The server refused to commit; the bundle is back among the local changes.
    Refused(Refusal),
    /// The server rejected a staged row; the bundle is back among the local changes.
    Rejected(Refusal),
    /// Another copy of this database file committed our next bundle id with its own
    /// rows; this copy moved to a source of its own (`copied.rs`): push again.
    MovedToOwnSource,
}

enum Upload {
    Committed {
        meta: CommittedMeta,
        strict: bool,
    },
    Conflict(PushConflictDetails),
    /// A commit refusal a pull beside the local changes may settle (`refused.rs`).
    Refused(HttpFailure),
    /// A staged chunk rejected for its rows (`refused::is_rejected_chunk`).
    Rejected(HttpFailure),
}

impl SyncClient {
    pub fn push_pending(&mut self, conn: &rusqlite::Connection) -> Result<PushReport> {
        let ctx = self.begin(conn)?;
        self.require_connected(&ctx)?;
        let mut changed = ChangedTables::new();
        let report = push_in(&ctx, &mut changed);
        if let Err(e) = &report {
            self.forget_user_after(e);
        }
        report
    }

    /// A lost initialisation lease resets the binding; forget the in-memory user too.
    pub(crate) fn forget_user_after(&mut self, e: &SyncError) {
        if e.kind == ErrorKind::InitializationLeaseInvalid {
            self.set_connected(None);
        }
    }
}

/// Hard stop for one push call, whatever the per-row progress.
const MAX_CONFLICT_ROUNDS: u32 = 10_000;

/// The push workflow with gates; used by `push_pending` and `sync`.
pub(crate) fn push_in(ctx: &Ctx, changed: &mut ChangedTables) -> Result<PushReport> {
    push_reporting(ctx, changed, &mut Vec::new())
}

/// How many bundles a push of `pending` rows may take: one per cap of rows, and one
/// more for a bundle that ran on past its cap inside a foreign-key cycle.
fn bundles_for(ctx: &Ctx, pending: i64) -> i64 {
    match ctx.bundle_rows_cap() {
        Some(cap) => pending / cap + 1,
        None => 1,
    }
}

/// [`push_in`], also collecting the foreign-key races a conflict resolution settled.
pub(crate) fn push_reporting(
    ctx: &Ctx,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<PushReport> {
    check_gates(ctx)?;
    let mut conflicts = 0u32;
    // The server reports one conflicting row per attempt, so a bundle with several
    // stale rows needs several rounds. Progress is bounded per row: the same row
    // conflicting again after `max_conflict_retries` re-pushes means no progress.
    let mut per_row: std::collections::HashMap<(String, String), u32> =
        std::collections::HashMap::new();
    let mut outcome = PushOutcome::NoChange;
    let mut last_seq = None;
    let mut row_count = 0;
    // A backlog larger than one bundle goes up as several (see `freeze`); the bundles
    // are counted from what is pending now, so rows written meanwhile may ride along
    // but cannot keep one push going for ever.
    let pending = state::pending_row_count(ctx.conn)?;
    crate::progress::rows_up_total_at_least(pending);
    let mut bundles_left = bundles_for(ctx, pending);
    let mut moved = false;
    // The bundle order of the backlog, kept from one bundle to the next (`freeze`).
    let mut order = None;
    loop {
        let step = push_once(ctx, changed, settled, &mut order)?;
        if !matches!(step, Step::Committed { .. } | Step::NoChange) {
            // Rows were put back (or the source changed): sort afresh.
            order = None;
        }
        match step {
            Step::NoChange => break,
            // A fresh source cannot meet another copy's bundle: once per push at most.
            Step::MovedToOwnSource if moved => {
                return Err(SyncError::new(
                    ErrorKind::SourceSequenceMismatch,
                    "the server already committed this bundle id of a source just created for this database; call oversqlite_rebuild()",
                ))
            }
            Step::MovedToOwnSource => moved = true,
            Step::Committed {
                bundle_seq,
                row_count: n,
            } => {
                outcome = PushOutcome::Committed;
                last_seq = Some(bundle_seq);
                row_count += n;
                bundles_left = bundles_left.saturating_sub(1);
                let dirty = state::dirty_count(ctx.conn)?;
                if bundles_left == 0 || dirty == 0 {
                    break;
                }
                crate::progress::rows_up_total_at_least(row_count + dirty);
            }
            Step::Refused(refusal) => return Err(refusal.requeued_error()),
            Step::Rejected(refusal) => return Err(refusal.rejected_error()),
            Step::ConflictResolved(table, key) => {
                conflicts += 1;
                let seen = per_row.entry((table, key)).or_insert(0);
                *seen += 1;
                if *seen > ctx.settings.max_conflict_retries {
                    return Err(SyncError::new(
                        ErrorKind::PushConflictRetryExhausted,
                        format!("the same row kept conflicting after {}; local changes are kept, push again later", crate::wording::counted(*seen as i64, "resolution", "resolutions")),
                    ));
                }
                if state::dirty_count(ctx.conn)? == 0 {
                    break;
                }
            }
        }
        if conflicts > MAX_CONFLICT_ROUNDS {
            return Err(SyncError::new(
                ErrorKind::PushConflictRetryExhausted,
                format!("push conflicts kept recurring after {}; local changes are kept, push again later", crate::wording::counted(conflicts as i64, "resolution", "resolutions")),
            ));
        }
    }
    if outcome == PushOutcome::NoChange {
        finish_empty_seed(ctx)?;
    }
    Ok(PushReport {
        outcome,
        bundle_seq: last_seq,
        row_count,
        conflicts_resolved: conflicts,
        status: sync_status(ctx.conn)?,
        changed_tables: changed.clone(),
    })
}

/// A seeding lease whose local rows all cancelled out (e.g. inserted then deleted)
/// leaves nothing to upload, and the server would stay `INITIALIZING` until the lease
/// expires. Connecting again without pending rows is the protocol's way to finish
/// the initialisation empty (§10.3: same source, no pending rows → initialised).
fn finish_empty_seed(ctx: &Ctx) -> Result<()> {
    let att = state::attachment(ctx.conn)?;
    if att.pending_initialization_id.is_empty() || state::pending_row_count(ctx.conn)? > 0 {
        return Ok(());
    }
    let resp = ctx
        .remote
        .connect(&att.current_source_id, false)?
        .ok_or_error("connect request")?;
    use oversqlite_protocol::ConnectResolution as R;
    match resp.resolution {
        // Initialised empty by this call, or (our lease having lapsed) by another
        // source meanwhile: either way nothing of ours is pending, the lease is moot,
        // and the next pull brings whatever the scope holds.
        R::InitializeEmpty | R::RemoteAuthoritative => write_tx(ctx.conn, |c| {
            attachment::clear_pending_initialization(c)?;
            Ok(())
        }),
        // Another source holds the lease now: ours is lost (§7.3).
        R::RetryLater => Err(lose_lease(ctx, "retry_later")?),
        // The server still counts our lease (it was only asked about pending rows):
        // nothing to change.
        R::InitializeLocal => Ok(()),
    }
}

fn push_once(
    ctx: &Ctx,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
    order: &mut Option<freeze::FreezeOrder>,
) -> Result<Step> {
    let outbox = match state::outbox(ctx.conn)?.state.as_str() {
        "none" => match freeze::freeze(ctx, order)? {
            Some(o) => {
                oversqlite_core::fault::point("push.after_freeze");
                o
            }
            None => return Ok(Step::NoChange),
        },
        _ => freeze::verify(ctx.conn)?,
    };
    let (meta, strict) = if outbox.state == OutboxState::CommittedRemote {
        let meta = CommittedMeta {
            bundle_seq: outbox.remote_bundle_seq,
            source_id: outbox.source_id.clone(),
            source_bundle_id: outbox.source_bundle_id,
            row_count: outbox.row_count,
            bundle_hash: outbox.remote_bundle_hash.clone(),
        };
        (meta, true)
    } else {
        match upload(ctx, &outbox)? {
            Upload::Committed { meta, strict } => (meta, strict),
            Upload::Conflict(details) => {
                // Resolution requeues the whole bundle: the one place that loads it all.
                let full = freeze::load_full(ctx.conn)?;
                apply_conflict(ctx, &full, &details, changed, settled)?;
                oversqlite_core::fault::point("push.after_conflict_applied");
                let key = serde_json::to_string(&details.key).unwrap_or_default();
                return Ok(Step::ConflictResolved(details.table, key));
            }
            Upload::Refused(f) => return Ok(Step::Refused(refused::put_back(ctx, &outbox, &f)?)),
            Upload::Rejected(f) => return Ok(Step::Rejected(refused::put_back(ctx, &outbox, &f)?)),
        }
    };
    let committed = match fetch_committed(ctx, &meta, &outbox, strict) {
        Ok(c) => c,
        Err(Fetch::Pruned) => {
            // The server no longer retains the bundle's rows; only a snapshot can
            // reconcile. The tuple is known committed, so record it as such.
            write_tx(ctx.conn, |c| {
                mark_committed_remote(c, &meta)?;
                state::set_rebuild_required(c)
            })?;
            return Err(SyncError::new(
                ErrorKind::RebuildRequired,
                format!("committed bundle {} is no longer retained by the server; call oversqlite_rebuild()", meta.bundle_seq),
            ));
        }
        Err(Fetch::HashMismatch(e)) => {
            // First time (the commit answer was just recorded as `committed_remote`):
            // a protocol error that keeps the outbox, so the fetch can be retried
            // (fixture `committed-replay-bad-bundle-hash-preserves-committed-outbox`).
            // Again on a resumed `committed_remote` outbox: the recorded hash can never
            // be verified, so set the rebuild gate (§7.4, as for a committed_remote
            // mismatch) instead of failing every later sync the same way.
            if outbox.state == OutboxState::CommittedRemote {
                write_tx(ctx.conn, state::set_rebuild_required)?;
                return Err(SyncError::new(
                    ErrorKind::RebuildRequired,
                    format!(
                        "{}; the committed outbox cannot be verified, call oversqlite_rebuild()",
                        e.message
                    ),
                ));
            }
            return Err(e);
        }
        Err(Fetch::Failed(e)) => return Err(e),
    };
    if let Some(why) = &committed.mismatch {
        let current = state::outbox(ctx.conn)?;
        if current.state == OutboxState::CommittedRemote {
            write_tx(ctx.conn, state::set_rebuild_required)?;
            return Err(SyncError::new(
                ErrorKind::RebuildRequired,
                format!("committed bundle {} does not match the uploaded outbox ({why}); call oversqlite_rebuild()", meta.bundle_seq),
            ));
        }
        let mismatch = SyncError::new(
            ErrorKind::SourceSequenceMismatch,
            format!(
                "the server already committed source bundle {} with different rows ({why})",
                meta.source_bundle_id
            ),
        );
        // Only the tuple's owner can have committed it: another copy of this file.
        if !ctx.settings.recover_copied_database {
            return Err(mismatch);
        }
        crate::ops::copied::move_to_own_source(ctx, mismatch)?;
        return Ok(Step::MovedToOwnSource);
    }
    write_tx(ctx.conn, |c| mark_committed_remote(c, &meta))?;
    oversqlite_core::fault::point("push.before_replay");
    replay_committed(ctx, &outbox, &committed, &meta, changed)?;
    oversqlite_core::fault::point("push.after_replay");
    Ok(Step::Committed {
        bundle_seq: meta.bundle_seq,
        row_count: committed.versions.len() as i64,
    })
}

fn mark_committed_remote(conn: &rusqlite::Connection, meta: &CommittedMeta) -> Result<()> {
    Ok(outbox::mark_committed_remote(
        conn,
        meta.bundle_seq,
        &meta.bundle_hash,
    )?)
}

fn upload(ctx: &Ctx, outbox: &OutboxBundle) -> Result<Upload> {
    let att = state::attachment(ctx.conn)?;
    let source = outbox.source_id.clone();
    if source != att.current_source_id {
        return Err(SyncError::state(format!(
            "the prepared outbox belongs to source {source:?}, not the current source; call oversqlite_rebuild()"
        )));
    }
    let planned = outbox.row_count;
    let request = PushSessionCreateRequest {
        source_bundle_id: outbox.source_bundle_id,
        planned_row_count: planned,
        initialization_id: Some(att.pending_initialization_id.clone()).filter(|s| !s.is_empty()),
    };
    let created = match ctx.remote.create_push(&source, &request)? {
        Reply::Ok(r) => r,
        Reply::Failed(f) if may_be_consumed_lease(&f, &request) => {
            // §12 hazard: the commit that finished seeding succeeded but its response
            // was lost, so the scope is now initialised and refuses the lease id. The
            // same tuple without the id is then answered `already_committed`, and the
            // replay clears the local lease. The refusal is recognised by its code alone
            // (message texts are not a contract): if the request was invalid for another
            // reason, the retry is refused the same way and the original refusal is what
            // the caller sees.
            let retry = PushSessionCreateRequest {
                initialization_id: None,
                ..request.clone()
            };
            match ctx.remote.create_push(&source, &retry)? {
                Reply::Ok(PushSessionCreateResponse::Staging { push_id, .. }) => {
                    // Our seed never committed, yet the scope is initialised: the lease
                    // lapsed and another source seeded it. That is a lost lease (§7.3),
                    // not a lost commit; uploading now would push this device's
                    // anonymous rows into a scope it never seeded.
                    ctx.remote
                        .best_effort(ctx.remote.requests.push_session_delete(&source, &push_id));
                    return Err(lose_lease(ctx, "initialization_stale")?);
                }
                Reply::Ok(r) => r,
                // Refused in the same way: the lease was not the problem.
                Reply::Failed(again) if again.code() == f.code() => {
                    return Err(push_failure(ctx, f, "push session create"))
                }
                Reply::Failed(other) => {
                    return Err(push_failure(ctx, other, "push session create"))
                }
            }
        }
        Reply::Failed(f) => return Err(push_failure(ctx, f, "push session create")),
    };
    let push_id = match created {
        PushSessionCreateResponse::AlreadyCommitted {
            bundle_seq,
            source_id,
            source_bundle_id,
            row_count,
            bundle_hash,
        } => {
            if bundle_seq <= 0
                || source_id != source
                || source_bundle_id != request.source_bundle_id
                || bundle_hash.is_empty()
            {
                return Err(SyncError::protocol(format!(
                    "already_committed response (bundle_seq {bundle_seq}, source bundle {source_bundle_id}) does not match the request"
                )));
            }
            let meta = CommittedMeta {
                bundle_seq,
                source_id,
                source_bundle_id,
                row_count,
                bundle_hash,
            };
            return Ok(Upload::Committed { meta, strict: true });
        }
        PushSessionCreateResponse::Staging {
            push_id,
            planned_row_count,
            next_expected_row_ordinal,
        } => {
            if push_id.is_empty() || planned_row_count != planned || next_expected_row_ordinal != 0
            {
                return Err(SyncError::protocol(format!(
                    "staging response (planned {planned_row_count}, next ordinal {next_expected_row_ordinal}) does not match the request for {planned} rows"
                )));
            }
            push_id
        }
    };
    let result = stage_and_commit(ctx, &source, &push_id, outbox);
    if !matches!(result, Ok(Upload::Committed { .. })) {
        // The session is useless now; the next push starts a new one.
        ctx.remote
            .best_effort(ctx.remote.requests.push_session_delete(&source, &push_id));
    }
    result
}

fn may_be_consumed_lease(f: &HttpFailure, request: &PushSessionCreateRequest) -> bool {
    request.initialization_id.is_some()
        && f.status == 400
        && f.code() == Some(codes::PUSH_SESSION_INVALID)
}

/// Uploads the outbox in chunks read back from the outbox rows one at a time, then
/// commits. While a chunk is in flight (sent by a helper thread: network only, see
/// [`AheadSender`]), the next chunk's body is read and serialised here; it is sent only
/// after the previous chunk was acknowledged, so the server still sees them strictly
/// in order. Tokens, the 401 refresh and decoding stay on this thread.
fn stage_and_commit(
    ctx: &Ctx,
    source: &str,
    push_id: &str,
    outbox: &OutboxBundle,
) -> Result<Upload> {
    let rejected = std::thread::scope(|scope| {
        let sender = AheadSender::spawn(scope, &ctx.remote);
        upload_chunks(ctx, source, push_id, outbox, &sender)
        // Returning drops the sender: the helper finishes its request (if any) and ends.
    })?;
    if let Some(f) = rejected {
        ctx.remote
            .best_effort(ctx.remote.requests.push_session_delete(source, push_id));
        return Ok(Upload::Rejected(f));
    }
    crate::progress::set_phase(crate::progress::Phase::Finishing);
    commit(ctx, source, push_id, outbox)
}

const CHUNK_UPLOAD: &str = "push chunk upload";

/// The chunk loop of [`stage_and_commit`].
///
/// A chunk the server finds too large (`413`, e.g. oversqlite-server's per-route body
/// limit; go-oversync has none) is sent again as chunks of half as many rows, down to
/// one row: the session staged everything before it, so the upload goes on from that
/// chunk's first row. Only a single row over the server's limit fails the push.
/// Returns the server's answer when it rejected a chunk for its rows.
fn upload_chunks(
    ctx: &Ctx,
    source: &str,
    push_id: &str,
    outbox: &OutboxBundle,
    sender: &AheadSender,
) -> Result<Option<HttpFailure>> {
    let mut chunk = ctx.push_chunk_rows();
    let mut built = 0i64;
    let mut after = None;
    // The chunk awaiting its answer: where it ends, and where it began (ordinal and
    // keyset position) and how many rows it has, to send it again smaller.
    let mut in_flight: Option<(i64, i64, Option<i64>, usize)> = None;
    let mut acknowledged = 0i64;
    crate::progress::set_phase(crate::progress::Phase::Uploading);
    // Not `outbox.row_count` alone: a push of several bundles counts its rows across
    // them, so the total must too (else the bar reads 10000/5000 in the second bundle).
    crate::progress::rows_up_bundle(outbox.row_count);
    loop {
        let next = if built < outbox.row_count {
            let stored = freeze::outbox_page(ctx.conn, outbox.source_bundle_id, after, chunk)?;
            let Some(last) = stored.last() else {
                return Err(SyncError::state(format!(
                    "the persisted outbox lost rows during the upload ({built} of {} read)",
                    outbox.row_count
                )));
            };
            let began = (built, after);
            after = Some(last.row_ordinal);
            let body = chunk_body(ctx, built, &stored)?;
            built += stored.len() as i64;
            Some((built, began, stored.len(), body))
        } else {
            None
        };
        if let Some((end, start, start_after, rows)) = in_flight.take() {
            let (req, sent) = sender.recv(CHUNK_UPLOAD)?;
            let reply: Reply<oversqlite_protocol::PushChunkResponse> =
                ctx.remote.finish(req, sent, CHUNK_UPLOAD)?;
            match reply {
                Reply::Ok(r) => {
                    if r.push_id != push_id || r.next_expected_row_ordinal != end {
                        return Err(SyncError::protocol(format!(
                            "push chunk response (push_id {:?}, next ordinal {}) does not match the upload (next ordinal {end})",
                            r.push_id, r.next_expected_row_ordinal
                        )));
                    }
                }
                Reply::Failed(f) if f.status == 413 && rows > 1 => {
                    // The chunk built meanwhile is dropped: rebuilt from `start`.
                    chunk = rows / 2;
                    built = start;
                    after = start_after;
                    continue;
                }
                Reply::Failed(f) if refused::is_rejected_chunk(&f) => return Ok(Some(f)),
                Reply::Failed(f) => return Err(push_failure(ctx, f, CHUNK_UPLOAD)),
            }
            crate::progress::rows_up(end - acknowledged, None);
            acknowledged = end;
            oversqlite_core::fault::point("push.after_chunk");
        }
        let Some((end, (start, start_after), rows, body)) = next else {
            return Ok(None);
        };
        let req = ctx.remote.authorized(
            ctx.remote
                .requests
                .push_session_chunk_body(source, push_id, body),
        )?;
        sender.send(req, CHUNK_UPLOAD)?;
        in_flight = Some((end, start, start_after, rows));
    }
}

/// Commits the staged session (§2.5) and persists `committed_remote` at once.
fn commit(ctx: &Ctx, source: &str, push_id: &str, outbox: &OutboxBundle) -> Result<Upload> {
    match ctx.remote.commit_push(source, push_id)? {
        Reply::Ok(c) => {
            oversqlite_core::fault::point("push.after_commit_response");
            if c.source_id != source
                || c.source_bundle_id != outbox.source_bundle_id
                || c.bundle_seq <= 0
                || c.bundle_hash.is_empty()
            {
                return Err(SyncError::protocol(format!(
                    "commit response (bundle_seq {}, source bundle {}) does not match the pushed bundle {}",
                    c.bundle_seq, c.source_bundle_id, outbox.source_bundle_id
                )));
            }
            let meta = CommittedMeta {
                bundle_seq: c.bundle_seq,
                source_id: c.source_id,
                source_bundle_id: c.source_bundle_id,
                row_count: c.row_count,
                bundle_hash: c.bundle_hash,
            };
            // Persist at once: if anything later fails, the next push resumes at the
            // fetch instead of re-uploading (§13 item 3).
            write_tx(ctx.conn, |conn| mark_committed_remote(conn, &meta))?;
            oversqlite_core::fault::point("push.after_committed_remote");
            Ok(Upload::Committed {
                meta,
                strict: false,
            })
        }
        Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::PUSH_CONFLICT) => {
            let details = f.body.and_then(|b| b.conflict).ok_or_else(|| {
                SyncError::protocol("push_conflict response without conflict details")
            })?;
            crate::remote::validate::validate_conflict(&details)?;
            Ok(Upload::Conflict(details))
        }
        Reply::Failed(f) if refused::is_refusal(&f) => Ok(Upload::Refused(f)),
        Reply::Failed(f) => Err(push_failure(ctx, f, "push commit")),
    }
}

/// The JSON of a `PushChunkRequest` for `rows`, starting at ordinal `start`.
fn chunk_body(ctx: &Ctx, start: i64, rows: &[OutboxRow]) -> Result<Vec<u8>> {
    let mut out = String::with_capacity(64 + rows.len() * 320);
    out.push_str("{\"start_row_ordinal\":");
    out.push_str(&start.to_string());
    out.push_str(",\"rows\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        freeze::write_upload_row(ctx, r, &mut out)?;
    }
    out.push_str("]}");
    Ok(out.into_bytes())
}
