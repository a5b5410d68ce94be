//! Snapshot rebuild (§7.7): stage a snapshot session durably chunk by chunk (invisible
//! to the app), then replace all managed state in one final apply transaction.
//! Modes: keep-source (`ClearAll`, `PreserveCommittedRemote`) and rotated
//! (`PreserveSourceRecovery`, §7.7.3).

use oversqlite_protocol::{
    codes, SnapshotChunkResponse, SnapshotSessionCreateRequest, SnapshotSessionCreateResponse,
    SourceReplacement,
};
use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::schema::ManagedTable;
use crate::local::state;
use crate::local::state::{OperationKind, OutboxState};
use crate::local::tx::{apply_tx, write_tx};
use crate::ops::gates::require_drained;
use crate::ops::recovery::{enter_source_recovery, require_fresh_replacement};
use crate::remote::ahead::AheadSender;
use crate::remote::client::Reply;
use crate::remote::validate::{validate_snapshot_chunk, validate_snapshot_session};
use crate::report::{ChangedTables, PullCounts, PullReport, RemoteOutcome, Restore};
use crate::sync_client::{sync_status, Ctx, SyncClient};
use crate::values::codec::{
    local_key_from_key_json, local_payload_to_wire, parse_object, wire_key_to_local,
    wire_payload_to_row,
};
use crate::values::rows::{self, quote_ident};
use crate::wording::counted;
use oversqlite_core::store::{
    attachment, dirty_rows, outbox, registry, row_state, snapshot_stage, source,
};
use rusqlite::types::ValueRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxMode {
    /// The outbox must be empty; everything local is replaced.
    ClearAll,
    /// The snapshot already contains the committed outbox bundle: drop it.
    PreserveCommittedRemote,
    /// Rotation: the unsent outbox moves to the new source as its bundle 1.
    PreserveSourceRecovery,
}

/// A source rotation requested with the snapshot.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub new_source_id: String,
    pub reason: String,
}

impl SyncClient {
    /// `rebuild()` (§7.7.2): picks rotated recovery, preserve-committed or clear-all.
    pub fn rebuild(&mut self, conn: &Connection) -> Result<PullReport> {
        let ctx = self.begin(conn)?;
        let att = self.require_connected(&ctx)?;
        let op = state::operation(conn)?;
        let outbox = state::outbox(conn)?;
        let mut changed = ChangedTables::new();
        let restore = if op.kind == OperationKind::SourceRecovery {
            if op.replacement_source_id.trim().is_empty() || !codes::is_recovery_reason(&op.reason)
            {
                return Err(SyncError::new(
                    ErrorKind::InvalidSourceRecoveryReason,
                    format!(
                        "persisted source recovery (reason {:?}, replacement {:?}) is not usable; the database needs manual repair",
                        op.reason, op.replacement_source_id
                    ),
                ));
            }
            let rotation = Rotation {
                new_source_id: op.replacement_source_id.clone(),
                reason: op.reason.clone(),
            };
            rebuild_from_snapshot(
                &ctx,
                &att.attached_user_id,
                Some(rotation),
                OutboxMode::PreserveSourceRecovery,
                &mut changed,
            )?
        } else if outbox.state == OutboxState::CommittedRemote {
            rebuild_from_snapshot(
                &ctx,
                &att.attached_user_id,
                None,
                OutboxMode::PreserveCommittedRemote,
                &mut changed,
            )?
        } else {
            rebuild_from_snapshot(
                &ctx,
                &att.attached_user_id,
                None,
                OutboxMode::ClearAll,
                &mut changed,
            )?
        };
        Ok(PullReport {
            stopped_early: false,
            outcome: RemoteOutcome::AppliedSnapshot,
            counts: PullCounts {
                rows: restore.row_count,
                ..PullCounts::default()
            },
            restore: Some(restore),
            bundles_applied: 0,
            status: sync_status(conn)?,
            changed_tables: changed,
        })
    }
}

/// The common algorithm (§7.7.1): stage, then final apply; always cleans up the
/// server session.
pub(crate) fn rebuild_from_snapshot(
    ctx: &Ctx,
    user: &str,
    rotation: Option<Rotation>,
    mode: OutboxMode,
    changed: &mut ChangedTables,
) -> Result<Restore> {
    crate::progress::set_phase(crate::progress::Phase::ApplyingSnapshot);
    match mode {
        OutboxMode::ClearAll => require_drained(ctx)?,
        // Dirty rows are carried over (see final_apply): push is gated by
        // rebuild_required, so refusing them here would leave no way forward.
        OutboxMode::PreserveCommittedRemote => {}
        OutboxMode::PreserveSourceRecovery => {
            if state::outbox_row_count(ctx.conn)? > 0
                && state::outbox(ctx.conn)?.state == OutboxState::None
            {
                return Err(SyncError::state(
                    "outbox rows exist without a frozen outbox bundle",
                ));
            }
        }
    }
    let source = state::attachment(ctx.conn)?.current_source_id;
    let session = stage_snapshot(ctx, &source, rotation.as_ref(), |_, _| Ok(()))?;
    let refuse_local_writes = mode == OutboxMode::ClearAll;
    final_apply(
        ctx,
        user,
        &session,
        rotation.as_ref(),
        mode,
        refuse_local_writes,
        changed,
    )
}

/// Creates a session and stages all its chunks; `on_session` runs right after the
/// session is created (remote_replace persists it). Deletes the session afterwards.
pub(crate) fn stage_snapshot(
    ctx: &Ctx,
    source: &str,
    rotation: Option<&Rotation>,
    on_session: impl FnOnce(&Connection, &SnapshotSessionCreateResponse) -> Result<()>,
) -> Result<SnapshotSessionCreateResponse> {
    write_tx(ctx.conn, |c| Ok(snapshot_stage::clear(c)?))?;
    let body = rotation.map(|r| SnapshotSessionCreateRequest {
        source_replacement: Some(SourceReplacement {
            previous_source_id: source.to_string(),
            new_source_id: r.new_source_id.clone(),
            reason: r.reason.clone(),
        }),
    });
    let session = match ctx.remote.create_snapshot(source, body.as_ref())? {
        Reply::Ok(s) => s,
        Reply::Failed(f) => {
            let code = f.code().unwrap_or("").to_string();
            let replaced_by = f
                .body
                .as_ref()
                .and_then(|b| b.replaced_by_source_id.clone())
                .unwrap_or_default();
            return Err(match (rotation, f.status, code.as_str()) {
                (Some(r), 409, codes::SOURCE_RETIRED) if replaced_by != r.new_source_id => SyncError::new(
                    ErrorKind::SourceReplacementDiverged,
                    format!("the server retired this source in favour of {replaced_by:?}, not the reserved replacement {:?}", r.new_source_id),
                ),
                (Some(_), 409, codes::SOURCE_REPLACEMENT_INVALID) => SyncError::new(
                    ErrorKind::SourceReplacementInvalid,
                    format!("the server rejected the source replacement: {}", f.body.as_ref().map(|b| b.message.as_str()).unwrap_or("")),
                ),
                (None, 409, codes::SOURCE_RETIRED) => {
                    let preferred = Some(replaced_by).filter(|s| !s.trim().is_empty());
                    enter_source_recovery(ctx.conn, &code, preferred.as_deref()).unwrap_or_else(|e| e)
                }
                _ => f.into_error("snapshot session create"),
            });
        }
    };
    validate_snapshot_session(&session)?;
    oversqlite_core::fault::point("snapshot.after_session_create");
    let result = (|| {
        write_tx(ctx.conn, |c| on_session(c, &session))?;
        stage_chunks(ctx, source, &session)
    })();
    ctx.remote.best_effort(
        ctx.remote
            .requests
            .snapshot_session_delete(source, &session.snapshot_id),
    );
    result.map(|_| session)
}

/// One snapshot chunk, validated and converted, ready to be written to the stage.
struct StagedChunk<'t> {
    /// The chunk's `after_row_ordinal` (its rows are `after + 1 ..`).
    after: i64,
    /// `(table, local key value, row_version, wire payload text)` per row.
    rows: Vec<(&'t ManagedTable, String, i64, String)>,
}

/// Downloads and stages every chunk of `session`, one request ahead: once chunk k is
/// validated and converted, the request for chunk k+1 goes out on a scoped thread while
/// chunk k is written, so the server prepares the next chunk during the staging write
/// and the wall time is about the larger of the two rather than their sum. Only the
/// HTTP exchange runs on that thread: tokens are asked for, 401s refreshed, bodies
/// decoded and rows converted on this thread, in the same order as a sequential
/// download (a token provider may call back into the host through the connection). No
/// write transaction waits on the network: each covers a chunk already in memory. At
/// most one response is in flight, so memory stays two chunks whatever the snapshot
/// size. A failure stops the download before any further request is made, except a
/// failed staging write, after which the one request already sent is left unread.
fn stage_chunks(ctx: &Ctx, source: &str, session: &SnapshotSessionCreateResponse) -> Result<()> {
    let max_rows = ctx.snapshot_chunk_rows();
    crate::progress::set_phase(crate::progress::Phase::StagingSnapshot);
    let remote = &ctx.remote;
    let id = session.snapshot_id.as_str();
    const WHAT: &str = "snapshot chunk fetch";
    std::thread::scope(|scope| {
        // The helper sends one request at a time; waiting for its answer watches for
        // an interrupt and the deadline, and the helper gives up on a stalled exchange
        // as soon as the call stopped, so the scope's join never waits out the server.
        let sender = AheadSender::spawn(scope, remote);
        let mut after = 0i64;
        sender.send(
            remote.snapshot_chunk_request(source, id, after, max_rows)?,
            WHAT,
        )?;
        loop {
            let (req, sent) = sender.recv(WHAT)?;
            let chunk = remote
                .snapshot_chunk_reply(req, sent)?
                .ok_or_error("snapshot chunk fetch")?;
            validate_snapshot_chunk(&chunk, id, session.snapshot_bundle_seq, after)?;
            let staged = convert_chunk(ctx, &chunk, after)?;
            crate::progress::rows_down(staged.rows.len() as i64, Some(session.row_count));
            let (has_more, next) = (chunk.has_more, chunk.next_row_ordinal);
            drop(chunk);
            if !has_more {
                write_chunk(ctx, id, &staged)?;
                oversqlite_core::fault::point("snapshot.after_stage_chunk");
                return Ok(());
            }
            sender.send(
                remote.snapshot_chunk_request(source, id, next, max_rows)?,
                WHAT,
            )?;
            write_chunk(ctx, id, &staged)?;
            oversqlite_core::fault::point("snapshot.after_stage_chunk");
            after = next;
        }
    })
}

/// A validated chunk's rows in staged form (local key values, wire payload text).
fn convert_chunk<'t>(
    ctx: &'t Ctx,
    chunk: &SnapshotChunkResponse,
    after: i64,
) -> Result<StagedChunk<'t>> {
    let mut rows = Vec::with_capacity(chunk.rows.len());
    for row in &chunk.rows {
        ctx.check_schema(&row.schema)?;
        let table = ctx.table(&row.table)?;
        let key = wire_key_to_local(table, &row.key)?;
        let payload = serde_json::to_string(&row.payload).expect("payload serialises");
        rows.push((table, key.json_value, row.row_version, payload));
    }
    Ok(StagedChunk { after, rows })
}

/// Writes one converted chunk to the stage in its own short transaction.
fn write_chunk(ctx: &Ctx, snapshot_id: &str, chunk: &StagedChunk) -> Result<()> {
    write_tx(ctx.conn, |c| {
        // key_json is built by SQLite's own json_object, as the triggers do (§5.4).
        let rows = chunk
            .rows
            .iter()
            .map(|(table, key_value, version, payload)| {
                let row: snapshot_stage::StagedRow = (
                    &table.name,
                    &table.key_json_name,
                    key_value as &dyn rusqlite::ToSql,
                    *version,
                    payload.as_ref(),
                );
                row
            });
        Ok(snapshot_stage::insert(
            c,
            snapshot_id,
            &ctx.config.schema,
            chunk.after + 1,
            rows,
        )?)
    })
}

pub(crate) fn staged_count(conn: &Connection, snapshot_id: &str) -> Result<i64> {
    Ok(snapshot_stage::count(conn, snapshot_id)?)
}

/// Managed tables that exist: the configuration plus the runtime registry.
pub(crate) fn managed_table_names(ctx: &Ctx, conn: &Connection) -> Result<Vec<String>> {
    let mut names: Vec<String> = ctx.config.tables.iter().map(|t| t.name.clone()).collect();
    for n in registry::table_names(conn)? {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut existing = Vec::new();
    for n in names {
        if oversqlite_core::table_info::table_exists(conn, &n)? {
            existing.push(n);
        }
    }
    Ok(existing)
}

/// The final apply (§7.7.1): one apply-mode transaction replacing all managed state.
/// `refuse_local_writes` (keep-source `ClearAll` from pull or rebuild): fail with
/// `pending_local_changes` if dirty or outbox rows exist at apply time. Attach's remote
/// replace passes `false`: there the server is authoritative over every local row
/// written before the attach completes, by design.
pub(crate) fn final_apply(
    ctx: &Ctx,
    user: &str,
    session: &SnapshotSessionCreateResponse,
    rotation: Option<&Rotation>,
    mode: OutboxMode,
    refuse_local_writes: bool,
    changed: &mut ChangedTables,
) -> Result<Restore> {
    if let Some(r) = rotation {
        require_fresh_replacement(ctx.conn, &r.new_source_id)?;
    }
    let schema = ctx.config.schema.clone();
    let snapshot_id = session.snapshot_id.clone();
    if let Err(malformed) = refuse_duplicate_keys(ctx.conn, &snapshot_id) {
        // Whatever way the stage was completed (a reused one included), a malformed
        // snapshot is dropped, so the next attempt downloads it again instead of
        // failing on the same stage forever.
        write_tx(ctx.conn, |c| Ok(snapshot_stage::clear(c)?))?;
        return Err(malformed);
    }
    oversqlite_core::fault::point("snapshot.before_final_apply");
    let tables = apply_tx(ctx.conn, |conn| {
        let att = state::attachment(conn)?;
        let old_source = att.current_source_id.clone();
        let outbox = state::outbox(conn)?;
        if refuse_local_writes {
            // The drained check ran before staging; another connection may have
            // written during the download. Clearing now would delete that write, so
            // the apply is refused (stage and checkpoint kept); the next sync pushes
            // the write first and the snapshot is fetched again.
            let pending = state::dirty_count(conn)? + state::outbox_row_count(conn)?;
            if pending > 0 {
                return Err(SyncError::new(
                    ErrorKind::PendingLocalChanges,
                    format!(
                        "{} written while the snapshot downloaded; nothing was applied; call oversqlite_sync() to push them first",
                        counted(pending, "local row was", "local rows were")
                    ),
                ));
            }
        }
        // Local intent to carry over a rotation (§12 #7: re-applied, see DECISIONS.md).
        let carried: Vec<(String, String, Option<String>)> = match mode {
            OutboxMode::PreserveSourceRecovery => {
                let mut v: Vec<(String, String, Option<String>)> = state::outbox_rows(conn)?
                    .into_iter()
                    .map(|r| (r.table_name, r.key_json, r.local_payload))
                    .collect();
                v.extend(dirty_intent(conn)?);
                v
            }
            // Rows written after the committed bundle (e.g. after a crash, while the
            // server pruned it): kept dirty and re-applied like a rotation's intent.
            OutboxMode::PreserveCommittedRemote => dirty_intent(conn)?,
            OutboxMode::ClearAll => Vec::new(),
        };

        // Only configured tables are replaced (§7.7.1 step 2); detach also clears
        // tables still in the registry.
        let tables: Vec<String> = ctx.config.tables.iter().map(|t| t.name.clone()).collect();
        for t in &tables {
            conn.execute(&format!("DELETE FROM {}", quote_ident(t)), [])?;
            row_state::delete_table(conn, &schema, t)?;
        }
        if mode == OutboxMode::ClearAll {
            dirty_rows::delete_all(conn)?;
        }
        if mode == OutboxMode::ClearAll {
            state::clear_outbox(conn)?;
        }

        let count = apply_staged_rows(ctx, conn, &snapshot_id)?;
        if count != session.row_count {
            return Err(SyncError::protocol(format!(
                "staged snapshot row count {count} does not match expected row_count {}",
                session.row_count
            )));
        }

        let mut current = old_source.clone();
        if let Some(r) = rotation {
            if r.new_source_id != old_source {
                source::set_replaced_by(conn, &old_source, &r.new_source_id)?;
                current = r.new_source_id.clone();
            }
        }
        match mode {
            OutboxMode::ClearAll => {}
            OutboxMode::PreserveCommittedRemote => {
                if outbox.state == OutboxState::CommittedRemote {
                    state::set_next_source_bundle_id_at_least(
                        conn,
                        &outbox.source_id,
                        outbox.source_bundle_id + 1,
                    )?;
                }
                if outbox.state == OutboxState::CommittedRemote {
                    rebase_over_committed_outbox(conn, outbox.remote_bundle_seq)?;
                }
                state::clear_outbox(conn)?;
                reapply_local_intent(ctx, conn, &carried)?;
            }
            OutboxMode::PreserveSourceRecovery => {
                if outbox.state != OutboxState::None {
                    state::ensure_source_row(conn, &current)?;
                    state::set_next_source_bundle_id_at_least(conn, &current, 2)?;
                    outbox::rebind_as_first_bundle(conn, &current)?;
                }
                reapply_local_intent(ctx, conn, &carried)?;
            }
        }
        attachment::persist_snapshot_applied(
            conn,
            &current,
            user,
            &schema,
            session.snapshot_bundle_seq,
        )?;
        state::reset_operation(conn)?;
        // The stage only ever holds one snapshot (staging starts by clearing it), so
        // it is emptied whole: an unqualified DELETE lets SQLite drop its pages at
        // once instead of deleting 100k rows one by one.
        snapshot_stage::clear(conn)?;
        oversqlite_core::fault::point("snapshot.mid_final_apply");
        Ok(tables)
    })?;
    oversqlite_core::fault::point("snapshot.after_final_apply");
    changed.extend(tables);
    Ok(Restore {
        bundle_seq: session.snapshot_bundle_seq,
        row_count: session.row_count,
    })
}

/// Writes every staged row of `snapshot_id` into its application table, streaming the
/// stage (never collecting it: memory stays one row whatever the snapshot size), then
/// records all their versions with one set-based statement (`key_json` and
/// `row_version` are copied as staged, no conversion involved). Returns the row count.
/// Runs inside the final apply transaction: any malformed staged row rolls it all back.
fn apply_staged_rows(ctx: &Ctx, conn: &Connection, snapshot_id: &str) -> Result<i64> {
    let mut count = 0i64;
    snapshot_stage::for_each_payload(conn, snapshot_id, |table, payload| -> Result<()> {
        let table = ctx.table(staged_text(table)?)?;
        let payload = parse_object(staged_text(payload)?, "staged snapshot payload")?;
        rows::upsert_row(conn, table, wire_payload_to_row(table, &payload)?)?;
        count += 1;
        Ok(())
    })?;
    row_state::upsert_from_snapshot_stage(
        conn,
        &ctx.config.schema,
        snapshot_id,
        &rows::now_timestamp(conn)?,
    )?;
    Ok(count)
}

/// A snapshot lists every live row once (§2.10). A key staged twice means a malformed
/// snapshot: applying it would let whichever copy comes last win silently.
fn refuse_duplicate_keys(conn: &Connection, snapshot_id: &str) -> Result<()> {
    match snapshot_stage::duplicate_key(conn, snapshot_id)? {
        None => Ok(()),
        Some((table, key)) => Err(SyncError::protocol(format!(
            "snapshot lists {table} {key} more than once"
        ))),
    }
}

/// A TEXT column of a stage row, borrowed (no copy per row).
fn staged_text(value: ValueRef<'_>) -> Result<&str> {
    value
        .as_str()
        .map_err(|e| SyncError::state(format!("staged snapshot row: {e}")))
}

/// A dirty row captured after the outbox committed but before its replay recorded row
/// state was based on that committed write, yet carries the older base (often 0). Its
/// base becomes the committed bundle's seq (= the row_version our write got) when the
/// key was in the committed outbox and the snapshot still has the row. The committed
/// seq, not the snapshot's version: if another device wrote the row after us, the
/// snapshot version is newer and the push must still conflict. Runs after the snapshot
/// rows were written and before the outbox is cleared.
fn rebase_over_committed_outbox(conn: &Connection, committed_seq: i64) -> Result<()> {
    if committed_seq <= 0 {
        return Ok(());
    }
    Ok(dirty_rows::rebase_over_committed_outbox(
        conn,
        committed_seq,
    )?)
}

/// `(table, key_json, payload)` of every dirty row, in capture order.
fn dirty_intent(conn: &Connection) -> Result<Vec<(String, String, Option<String>)>> {
    Ok(dirty_rows::intents(conn)?)
}

/// Makes carried local intent visible again on top of the snapshot, so a rotated or
/// committed-remote rebuild does not hide rows the user still intends to upload (Go reference
/// behaviour; KMP drops them from the app tables until the replay requeues them).
fn reapply_local_intent(
    ctx: &Ctx,
    conn: &Connection,
    carried: &[(String, String, Option<String>)],
) -> Result<()> {
    for (table_name, key_json, payload) in carried {
        let table = ctx.table(table_name)?;
        let key = local_key_from_key_json(table, key_json)?;
        match payload {
            Some(p) => {
                let wire = local_payload_to_wire(table, &parse_object(p, "local payload")?)?;
                rows::upsert_row(conn, table, wire_payload_to_row(table, &wire)?)?;
            }
            None => rows::delete_row(conn, table, &key)?,
        }
    }
    Ok(())
}
