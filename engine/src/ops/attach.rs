//! `attach(user)` (§7.3): resume a persisted binding, or ask the server how to
//! initialise this device (`connect`), including the remote-authoritative hydrate
//! (§7.7.4) that survives crashes through the persisted operation state.

use oversqlite_protocol::{ConnectResolution, FEATURE_CONNECT_LIFECYCLE};
use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state::OperationKind;
use crate::local::state::{self, Operation};
use crate::local::tx::write_tx;
use crate::ops::snapshot::{final_apply, stage_snapshot, staged_count, OutboxMode};
use crate::remote::auth::{check_token_user, PrefetchedToken};
use crate::remote::client::Reply;
use crate::report::{AttachOutcome, AttachReport, ChangedTables, Restore};
use crate::sync_client::{sync_status, Ctx, SyncClient};

/// Longest accepted `user_id`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

impl SyncClient {
    pub fn attach(&mut self, conn: &Connection, user_id: &str) -> Result<AttachReport> {
        let user = user_id.trim().to_string();
        if user.is_empty() {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "user_id must be a non-empty string",
            ));
        }
        if user.len() > MAX_USER_ID_BYTES {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "user_id is {} bytes long; at most {MAX_USER_ID_BYTES} bytes are accepted",
                    user.len()
                ),
            ));
        }
        if user.contains('\0') {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "user_id must not contain NUL bytes",
            ));
        }
        let report = {
            let mut ctx = self.begin(conn)?;
            // Before any request: a JWT for another user would bind that user's
            // server data to this database under `user`. The token read here is the
            // one the first request sends.
            let tokens = PrefetchedToken::fetch(ctx.remote.tokens);
            check_token_user(tokens.peek().as_deref(), &user)?;
            ctx.remote.tokens = &tokens;
            attach_in(&ctx, &user)?
        };
        if report.outcome != AttachOutcome::RetryLater {
            self.set_connected(Some(user));
        }
        Ok(report)
    }
}

fn connected(
    ctx: &Ctx,
    outcome: AttachOutcome,
    restore: Option<Restore>,
    changed: ChangedTables,
) -> Result<AttachReport> {
    Ok(AttachReport {
        outcome,
        retry_after_seconds: None,
        restore,
        status: Some(sync_status(ctx.conn)?),
        changed_tables: changed,
    })
}

fn attach_in(ctx: &Ctx, user: &str) -> Result<AttachReport> {
    let att = state::attachment(ctx.conn)?;
    let op = state::operation(ctx.conn)?;
    if op.kind == OperationKind::RemoteReplace {
        if op.target_user_id != user {
            return Err(SyncError::new(
                ErrorKind::AttachedToOtherUser,
                format!("a pending remote_replace belongs to another scope ({:?}); attach that user, or switch users with oversqlite_sync_then_detach() or oversqlite_detach() first", op.target_user_id),
            ));
        }
        let mut changed = ChangedTables::new();
        let restore = finish_remote_replace(ctx, user, &mut changed)?;
        return connected(ctx, AttachOutcome::UsedRemoteState, Some(restore), changed);
    }
    if state::is_attached(&att) {
        if att.attached_user_id == user {
            return connected(
                ctx,
                AttachOutcome::ResumedAttachedState,
                None,
                ChangedTables::new(),
            );
        }
        return Err(SyncError::new(
            ErrorKind::AttachedToOtherUser,
            format!(
                "this database is attached to another user ({:?}); to switch users, call oversqlite_sync_then_detach() (sends that user's unsent changes, then detaches) or oversqlite_detach(), then oversqlite_attach() the new user",
                att.attached_user_id
            ),
        ));
    }
    let source = att.current_source_id.clone();
    let caps = ctx
        .remote
        .capabilities(&source)?
        .ok_or_error("capabilities request")?;
    let _ = ctx
        .limits
        .set(caps.bundle_limits.clone().unwrap_or_default());
    if !caps.feature(FEATURE_CONNECT_LIFECYCLE) {
        return Err(SyncError::new(
            ErrorKind::UnsupportedServer,
            "the server does not support the connect lifecycle (features.connect_lifecycle); upgrade the server",
        ));
    }
    let pending = state::pending_row_count(ctx.conn)? > 0;
    let resp = match ctx.remote.connect(&source, pending)? {
        Reply::Ok(r) => r,
        Reply::Failed(f) => return Err(f.into_error("connect request")),
    };
    let schema = ctx.config.schema.clone();
    match resp.resolution {
        ConnectResolution::RetryLater => {
            let secs = resp
                .retry_after_seconds
                .filter(|s| *s >= 1)
                .ok_or_else(|| {
                    SyncError::protocol(
                        "connect retry_later response lacks a positive retry_after_seconds",
                    )
                })?;
            Ok(AttachReport {
                outcome: AttachOutcome::RetryLater,
                retry_after_seconds: Some(secs),
                restore: None,
                status: None,
                changed_tables: ChangedTables::new(),
            })
        }
        ConnectResolution::InitializeEmpty => {
            write_tx(ctx.conn, |c| {
                state::persist_attached(c, &source, user, &schema, "")
            })?;
            connected(ctx, AttachOutcome::StartedEmpty, None, ChangedTables::new())
        }
        ConnectResolution::InitializeLocal => {
            let init = resp
                .initialization_id
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    SyncError::protocol("connect initialize_local response lacks initialization_id")
                })?;
            write_tx(ctx.conn, |c| {
                state::persist_attached(c, &source, user, &schema, &init)
            })?;
            connected(
                ctx,
                AttachOutcome::SeededFromLocal,
                None,
                ChangedTables::new(),
            )
        }
        ConnectResolution::RemoteAuthoritative => {
            write_tx(ctx.conn, |c| {
                state::persist_anonymous(c, &source)?;
                state::write_operation(
                    c,
                    &Operation {
                        kind: OperationKind::RemoteReplace,
                        target_user_id: user.to_string(),
                        ..Operation::none()
                    },
                )
            })?;
            oversqlite_core::fault::point("attach.after_remote_replace_persisted");
            let mut changed = ChangedTables::new();
            let restore = finish_remote_replace(ctx, user, &mut changed)?;
            connected(ctx, AttachOutcome::UsedRemoteState, Some(restore), changed)
        }
    }
}

/// Stages (or reuses a complete stage of) the snapshot recorded in the operation row,
/// then hydrates everything from it and binds `user` (§7.7.4).
fn finish_remote_replace(ctx: &Ctx, user: &str, changed: &mut ChangedTables) -> Result<Restore> {
    let op = state::operation(ctx.conn)?;
    let source = state::attachment(ctx.conn)?.current_source_id;
    let reusable = !op.staged_snapshot_id.is_empty()
        && staged_count(ctx.conn, &op.staged_snapshot_id)? == op.snapshot_row_count;
    let session = if reusable {
        oversqlite_protocol::SnapshotSessionCreateResponse {
            snapshot_id: op.staged_snapshot_id.clone(),
            snapshot_bundle_seq: op.snapshot_bundle_seq,
            row_count: op.snapshot_row_count,
            byte_count: 0,
            expires_at: String::new(),
        }
    } else {
        write_tx(ctx.conn, |c| {
            state::write_operation(
                c,
                &Operation {
                    kind: OperationKind::RemoteReplace,
                    target_user_id: user.to_string(),
                    ..Operation::none()
                },
            )
        })?;
        stage_snapshot(ctx, &source, None, |c, s| {
            state::write_operation(
                c,
                &Operation {
                    kind: OperationKind::RemoteReplace,
                    target_user_id: user.to_string(),
                    staged_snapshot_id: s.snapshot_id.clone(),
                    snapshot_bundle_seq: s.snapshot_bundle_seq,
                    snapshot_row_count: s.row_count,
                    ..Operation::none()
                },
            )
        })?
    };
    // The server is authoritative over every local row at attach (remote replace),
    // so local rows present at apply time are replaced, never refused.
    final_apply(
        ctx,
        user,
        &session,
        None,
        OutboxMode::ClearAll,
        false,
        changed,
    )
}
