//! A pushed bundle the server refuses to commit (issue #15).
//!
//! Our server answers a bundle that violates a foreign key with `400
//! push_commit_invalid`; go-oversync answers `500 push_session_commit_failed` (its
//! PostgreSQL error), which a client cannot tell from a transient fault by its code.
//! The client therefore never relies on the wording: a refused bundle (after the
//! transport's retries) is put back among the local changes, nothing having been
//! committed, and the caller pulls beside them (`pull/beside.rs`), which settles any
//! foreign-key race by policy, sweeps the local children whose parent is gone (this
//! module), and pushes again. A refusal that none of this explains becomes
//! `push_commit_refused`, naming the bundle, its rows and the way out.

use std::collections::BTreeMap;

use oversqlite_protocol::codes;

use oversqlite_protocol::{PushSessionCreateRequest, PushSessionCreateResponse};

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state::OutboxState;
use crate::local::state::{self, OutboxBundle};
use crate::local::tx::apply_tx;
use crate::ops::beside::{race, wire_key, PendingRestore, RowId};
use crate::ops::recovery::push_failure;
use crate::ops::server_row::restore_from_server;
use crate::remote::client::{HttpFailure, Reply};
use crate::report::{ChangedTables, ForeignKeyAction, ForeignKeyResolution};
use crate::sync_client::Ctx;
use crate::values::codec::local_key_from_key_json;
use crate::values::rows;
use oversqlite_core::store::{dirty_rows, outbox, row_state, source};

/// What the server said when it refused, kept for the final message.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub source_bundle_id: i64,
    /// `table → rows` of the refused bundle.
    pub tables: BTreeMap<String, i64>,
}

const REQUEUED: &str = "; the rows are back among the local changes; oversqlite_sync() pulls, settles foreign-key races and pushes again";

/// The final error for a refusal nothing settled: what the server said, what the
/// sweep could not explain, and the way out.
pub(crate) fn unsettled(requeued: SyncError, unexplained: &[String]) -> SyncError {
    let mut e = requeued;
    let why = if unexplained.is_empty() {
        "the client found no foreign-key race or missing parent that explains it".to_string()
    } else {
        format!(
            "local rows reference rows that this device does not have and the server never deleted: {}",
            unexplained.join("; ")
        )
    };
    let head = e
        .message
        .strip_suffix(REQUEUED)
        .unwrap_or(&e.message)
        .to_string();
    e.message = format!(
        "{head}; {why}. The rows are kept as local changes (SELECT * FROM oversqlite_pending lists them): fix or delete the rows named and sync again; oversqlite_detach('discard_local_changes') discards every unsent change"
    );
    e
}

/// Our server's explicit refusal. (A 5xx is left to `push_pending` as the reference
/// does, outbox `prepared`; the settling callers probe it with [`probe_after_5xx`].)
pub(crate) fn is_refusal(f: &HttpFailure) -> bool {
    f.status == 400 && f.code() == Some(codes::PUSH_COMMIT_INVALID)
}

/// A staged chunk the server rejects for its rows (`400 push_chunk_invalid`, e.g. a
/// NULL where the server's column is NOT NULL, or a key that is not a canonical UUID).
/// Nothing was committed, so the bundle goes back among the local changes: a fix the
/// app writes then replaces the rejected row at the next freeze. Kept as the frozen
/// outbox instead, the rejected row would be sent again for ever.
pub(crate) fn is_rejected_chunk(f: &HttpFailure) -> bool {
    f.status == 400 && f.code() == Some(codes::PUSH_CHUNK_INVALID)
}

/// What a probe after a 5xx found.
pub(crate) enum Probe {
    /// The bundle committed after all, or no bundle was waiting: push again as usual.
    PushAgain,
    /// Nothing was committed; the bundle is back among the local changes.
    Requeued,
}

/// After a push failed with a 5xx the retries did not clear (go-oversync answers a
/// foreign-key violation `500 push_session_commit_failed`), the prepared bundle may
/// still have committed (a response lost after the server's commit). A session for
/// the same tuple tells: `already_committed` means it did (the next push replays it
/// as usual); a fresh `staging` session proves it did not, so it is deleted again and
/// the bundle put back among the local changes, to be settled like a refusal.
pub(crate) fn probe_after_5xx(ctx: &Ctx) -> Result<Probe> {
    let outbox = state::outbox(ctx.conn)?;
    if outbox.state != OutboxState::Prepared {
        return Ok(Probe::PushAgain);
    }
    let att = state::attachment(ctx.conn)?;
    let request = PushSessionCreateRequest {
        source_bundle_id: outbox.source_bundle_id,
        planned_row_count: outbox.row_count,
        initialization_id: Some(att.pending_initialization_id.clone()).filter(|s| !s.is_empty()),
    };
    match ctx.remote.create_push(&outbox.source_id, &request)? {
        Reply::Ok(PushSessionCreateResponse::AlreadyCommitted { .. }) => Ok(Probe::PushAgain),
        Reply::Ok(PushSessionCreateResponse::Staging { push_id, .. }) => {
            ctx.remote.best_effort(
                ctx.remote
                    .requests
                    .push_session_delete(&outbox.source_id, &push_id),
            );
            requeue(ctx, &outbox)?;
            Ok(Probe::Requeued)
        }
        Reply::Failed(again) => Err(push_failure(ctx, again, "push session create")),
    }
}

impl Refusal {
    pub(crate) fn of(
        f: &HttpFailure,
        outbox: &OutboxBundle,
        conn: &rusqlite::Connection,
    ) -> Result<Refusal> {
        let tables: BTreeMap<String, i64> = outbox::table_counts(conn, outbox.source_bundle_id)?
            .into_iter()
            .collect();
        Ok(Refusal {
            status: f.status,
            code: f.code().unwrap_or("").to_string(),
            message: f
                .body
                .as_ref()
                .map(|b| b.message.clone())
                .unwrap_or_default(),
            source_bundle_id: outbox.source_bundle_id,
            tables,
        })
    }

    /// `the server <what> source bundle N (rows: …) with HTTP …: <its message>`.
    fn describe(&self, what: &str) -> String {
        let rows: Vec<String> = self
            .tables
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let code = if self.code.is_empty() {
            String::new()
        } else {
            format!(" {}", self.code)
        };
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message.chars().take(300).collect::<String>())
        };
        format!(
            "the server {what} source bundle {} (rows: {}) with HTTP {}{code}{message}",
            self.source_bundle_id,
            rows.join(", "),
            self.status
        )
    }

    /// A bundle whose row the server rejected while staging it (`push_chunk_invalid`):
    /// nothing to settle by pulling, the row itself must change.
    pub(crate) fn rejected_error(&self) -> SyncError {
        self.error(
            ErrorKind::PushRejected,
            format!(
                "{}. Nothing was committed and the rows are back among the local changes (SELECT * FROM oversqlite_pending lists them): change or delete the row the server names so that it fits the server's schema, then sync again; oversqlite_detach('discard_local_changes') discards every unsent change",
                self.describe("rejected a row of")
            ),
        )
    }

    /// The error `push_in` returns right after requeueing: the caller settles it.
    pub(crate) fn requeued_error(&self) -> SyncError {
        self.error(
            ErrorKind::PushCommitRefused,
            format!("{}{REQUEUED}", self.describe("refused to commit")),
        )
    }

    /// An error carrying the server's status and code, as every refusal's does.
    fn error(&self, kind: ErrorKind, message: String) -> SyncError {
        let mut e = SyncError::new(kind, message);
        e.http_status = Some(self.status);
        e.server_code = Some(self.code.clone()).filter(|c| !c.is_empty());
        e
    }
}

/// The refusal `f` of the prepared `outbox`, its rows put back among the local changes.
pub(crate) fn put_back(ctx: &Ctx, outbox: &OutboxBundle, f: &HttpFailure) -> Result<Refusal> {
    let refusal = Refusal::of(f, outbox, ctx.conn)?;
    requeue(ctx, outbox)?;
    Ok(refusal)
}

/// Puts every row of the refused (uncommitted) bundle back into the dirty set and
/// clears the outbox, in one transaction. A dirty row captured while the bundle was
/// in flight is newer intent and is kept (as after a conflict); the next freeze
/// reuses the bundle's `source_bundle_id`, since nothing was committed.
pub(crate) fn requeue(ctx: &Ctx, outbox: &OutboxBundle) -> Result<()> {
    apply_tx(ctx.conn, |c| {
        dirty_rows::requeue_outbox_bundle(c, outbox.source_bundle_id)?;
        source::lower_next_bundle_id(c, &outbox.source_id, outbox.source_bundle_id)?;
        state::clear_outbox(c)
    })
}

/// An unsent local INSERT/UPDATE whose parent is missing on this device.
struct Orphan {
    child: RowId,
    parent: RowId,
    /// The parent is a tombstone: the server deleted it (a race to settle); otherwise
    /// nothing anywhere explains the reference.
    parent_deleted_on_server: bool,
}

/// Settles the unsent local children whose parent no longer exists here because the
/// server deleted it (applied by an earlier pull, or by a conflict resolution that
/// accepted the deletion): the child gives way as under `server_wins`, since the
/// parent's values are gone and it cannot be recreated. Returns how many rows changed
/// and the references nothing explains (for the error message).
pub(crate) fn sweep_orphans(
    ctx: &Ctx,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<(usize, Vec<String>)> {
    let mut settled_rows = 0usize;
    // A dropped child can orphan its own children: sweep until nothing changes.
    for _ in 0..16 {
        let orphans = find_orphans(ctx)?;
        let unexplained: Vec<String> = orphans
            .iter()
            .filter(|o| !o.parent_deleted_on_server)
            .map(|o| {
                format!(
                    "{} {} references {} {}",
                    o.child.0, o.child.1, o.parent.0, o.parent.1
                )
            })
            .collect();
        let races: Vec<&Orphan> = orphans
            .iter()
            .filter(|o| o.parent_deleted_on_server)
            .collect();
        if races.is_empty() {
            return Ok((settled_rows, unexplained));
        }
        let schema = ctx.config.schema.clone();
        let mut restores = Vec::new();
        apply_tx(ctx.conn, |c| {
            for o in &races {
                let table = ctx.table(&o.child.0)?;
                let parent = ctx.table(&o.parent.0)?;
                let on_server = row_state::is_live(c, &schema, &table.name, &o.child.1);
                let report = |action| -> Result<ForeignKeyResolution> {
                    Ok(race(
                        ctx,
                        (&table.name, &wire_key(table, &o.child.1)?),
                        action,
                        (&parent.name, &wire_key(parent, &o.parent.1)?),
                        &table.name,
                    ))
                };
                if on_server {
                    restores.push(PendingRestore {
                        id: o.child.clone(),
                        report: report(ForeignKeyAction::Reverted)?,
                    });
                    continue;
                }
                let key = local_key_from_key_json(table, &o.child.1)?;
                rows::delete_row(c, table, &key)?;
                rows::delete_dirty(c, &schema, &table.name, &o.child.1)?;
                changed.insert(table.name.clone());
                settled.push(report(ForeignKeyAction::Dropped)?);
            }
            Ok(())
        })?;
        settled_rows += races.len() - restores.len();
        let mut queue = restores;
        while let Some(pending) = queue.pop() {
            if let crate::ops::server_row::Restored::Applied(more) =
                restore_from_server(ctx, &pending, changed, settled)?
            {
                queue.extend(more);
            }
            settled_rows += 1;
        }
    }
    Ok((settled_rows, Vec::new()))
}

/// Unsent local INSERT/UPDATE rows whose referenced parent has no row on this device
/// (and is not itself an unsent local insert, which has a row). Only read after a
/// refusal, so the per-row lookups stay off the normal push path.
fn find_orphans(ctx: &Ctx) -> Result<Vec<Orphan>> {
    let conn = ctx.conn;
    let schema = &ctx.config.schema;
    let mut out = Vec::new();
    for table in ctx
        .config
        .tables
        .iter()
        .filter(|t| !t.foreign_keys.is_empty())
    {
        for fk in &table.foreign_keys {
            let (Some(column), Ok(parent)) =
                (table.column(&fk.from_column), ctx.table(&fk.parent_table))
            else {
                continue;
            };
            let path = format!("$.{}", column.json_name);
            let found = dirty_rows::parent_refs_with_state(
                conn,
                schema,
                &table.name,
                &path,
                &parent.key_json_name,
                &parent.name,
            )?;
            for (child, parent_key, parent_state) in found {
                let parent_local = local_key_from_key_json(parent, &parent_key)?;
                if rows::live_row_json(conn, parent, &parent_local)?.is_some() {
                    continue;
                }
                out.push(Orphan {
                    child: (table.name.clone(), child),
                    parent: (parent.name.clone(), parent_key),
                    parent_deleted_on_server: parent_state == Some(true),
                });
            }
        }
    }
    Ok(out)
}
