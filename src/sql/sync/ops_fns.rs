//! The lifecycle and sync operations: `oversqlite_attach`, `_push_pending`,
//! `_pull_to_stable`, `_sync`, `_rebuild`, `_detach`, `_sync_then_detach`, `_status`,
//! `_source_info`, `_watch_once`. Each maps one engine call to its JSON report; a paused
//! direction short-circuits before any I/O and says so in `"skipped"`.
use std::time::Duration;

use oversqlite_engine::{ErrorKind, SyncError};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::state::ConnSync;
use crate::sql::args::Args;

pub const UPLOADS_PAUSED: &str = "uploads_paused";
pub const DOWNLOADS_PAUSED: &str = "downloads_paused";
pub const BOTH_PAUSED: &str = "uploads_and_downloads_paused";

pub fn to_json<T: Serialize>(v: &T) -> Result<Value, SyncError> {
    serde_json::to_value(v)
        .map_err(|e| SyncError::new(ErrorKind::Internal, format!("report encoding failed: {e}")))
}

pub fn text(v: Value) -> Result<String, SyncError> {
    Ok(v.to_string())
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `oversqlite_attach(user_id)`: `"status"` is `connected` (with the engine's outcome,
/// its status object renamed `sync_status`) or `retry_later` (with `retry_after_seconds`).
pub fn attach(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(1, 1, "oversqlite_attach(user_id)")?;
    let user = args.text(0, "user_id")?;
    let report = to_json(&s.with_client(|c| c.attach(conn, &user))?)?;
    text(attach_shape(report))
}

/// Maps the engine's AttachReport JSON into the SQL shape.
pub fn attach_shape(report: Value) -> Value {
    let mut engine = object(report);
    let mut out = Map::new();
    if engine.get("outcome").and_then(Value::as_str) == Some("retry_later") {
        out.insert("status".into(), json!("retry_later"));
        out.insert(
            "retry_after_seconds".into(),
            engine.remove("retry_after_seconds").unwrap_or(Value::Null),
        );
        return Value::Object(out);
    }
    out.insert("status".into(), json!("connected"));
    if let Some(outcome) = engine.remove("outcome") {
        out.insert("outcome".into(), outcome);
    }
    if let Some(status) = engine.remove("status") {
        out.insert("sync_status".into(), status);
    }
    out.extend(engine);
    Value::Object(out)
}

fn skipped_push() -> Value {
    json!({"outcome": "skipped", "skipped": UPLOADS_PAUSED, "row_count": 0, "conflicts_resolved": 0, "changed_tables": []})
}

fn skipped_pull() -> Value {
    json!({"outcome": "skipped", "skipped": DOWNLOADS_PAUSED, "bundles_applied": 0, "changed_tables": []})
}

pub fn push_pending(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_push_pending()")?;
    if s.uploads_paused() {
        return text(skipped_push());
    }
    text(to_json(&s.with_client(|c| c.push_pending(conn))?)?)
}

pub fn pull_to_stable(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_pull_to_stable()")?;
    if s.downloads_paused() {
        return text(skipped_pull());
    }
    // With uploads paused, `with_client` rewrites a `pending_local_changes` refusal's
    // advice to "resume uploads, then sync".
    text(to_json(&s.with_client(|c| c.pull_to_stable(conn))?)?)
}

/// `oversqlite_sync()`: push then pull; with one direction paused only the other runs
/// (its outcome slot says `skipped`), with both paused nothing runs.
pub fn sync(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_sync()")?;
    match (s.uploads_paused(), s.downloads_paused()) {
        (false, false) => text(to_json(&s.with_client(|c| c.sync(conn))?)?),
        (true, true) => text(paused_sync_report(
            conn,
            object(
                json!({"push_outcome": "skipped", "remote_outcome": "skipped", "skipped": BOTH_PAUSED, "changed_tables": []}),
            ),
        )?),
        (true, false) => {
            // Uploads paused: download beside the unsent local changes (they stay).
            let (pull, settled) = s.with_client(|c| c.pull_beside(conn))?;
            let mut pull = object(to_json(&pull)?);
            pull.insert(
                "foreign_key_resolutions".into(),
                serde_json::to_value(&settled).unwrap_or_default(),
            );
            let mut out = Map::new();
            out.insert("push_outcome".into(), json!("skipped"));
            out.insert(
                "remote_outcome".into(),
                pull.remove("outcome").unwrap_or(Value::Null),
            );
            out.insert("skipped".into(), json!(UPLOADS_PAUSED));
            pull.remove("bundles_applied");
            out.extend(pull);
            text(paused_sync_report(conn, out)?)
        }
        (false, true) => {
            let mut push = object(to_json(&s.with_client(|c| c.push_pending(conn))?)?);
            let mut out = Map::new();
            out.insert(
                "push_outcome".into(),
                push.remove("outcome").unwrap_or(Value::Null),
            );
            out.insert("remote_outcome".into(), json!("skipped"));
            out.insert("skipped".into(), json!(DOWNLOADS_PAUSED));
            for k in ["status", "changed_tables"] {
                if let Some(v) = push.remove(k) {
                    out.insert(k.into(), v);
                }
            }
            text(paused_sync_report(conn, out)?)
        }
    }
}

/// Completes a sync report built with a direction paused so it carries every member
/// of an ordinary one (README, `oversqlite_sync()`): `status`, `complete` (no local
/// change left pending), `pending_row_count` and `foreign_key_resolutions`.
fn paused_sync_report(conn: &Connection, mut out: Map<String, Value>) -> Result<Value, SyncError> {
    if !out.contains_key("status") {
        out.insert(
            "status".into(),
            to_json(&oversqlite_engine::sync_status(conn)?)?,
        );
    }
    let pending = out["status"]["pending"]["pending_row_count"]
        .as_i64()
        .ok_or_else(|| {
            SyncError::new(ErrorKind::Internal, "sync report without a pending count")
        })?;
    out.insert("complete".into(), json!(pending == 0));
    out.insert("pending_row_count".into(), json!(pending));
    out.entry("foreign_key_resolutions")
        .or_insert_with(|| json!([]));
    Ok(Value::Object(out))
}

/// `oversqlite_rebuild()` downloads a snapshot, so paused downloads skip it.
pub fn rebuild(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_rebuild()")?;
    if s.downloads_paused() {
        return text(skipped_pull());
    }
    text(to_json(&s.with_client(|c| c.rebuild(conn))?)?)
}

/// `oversqlite_detach([mode])`; mode `'discard_local_changes'` drops unsent changes.
pub fn detach(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 1, "oversqlite_detach([mode])")?;
    let report = match args.opt_text(0, "mode")?.as_deref() {
        None => s.with_client(|c| c.detach(conn))?,
        Some("discard_local_changes") => s.with_client(|c| c.detach_discarding_local_changes(conn))?,
        Some(other) => {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                format!("unknown mode {other:?}; the only mode is 'discard_local_changes' (drops unsent local changes)"),
            ))
        }
    };
    text(to_json(&report)?)
}

/// `oversqlite_sync_then_detach()` needs both directions: refused while either is paused.
pub fn sync_then_detach(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_sync_then_detach()")?;
    if s.uploads_paused() || s.downloads_paused() {
        return Err(SyncError::new(
            ErrorKind::InvalidState,
            "uploads or downloads are paused on this connection; call oversqlite_resume_uploads() / oversqlite_resume_downloads() first",
        ));
    }
    text(to_json(&s.with_client(|c| c.sync_then_detach(conn))?)?)
}

pub fn status(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_status()")?;
    // Local only: works inside the caller's transaction and without an attach on this
    // connection; `connection_attached` says whether this connection has attached.
    let (status, info, connected) = s.with_client(|c| {
        let status = c.status(conn)?;
        let info = c.source_info(conn)?;
        let connected = info.binding_state == "attached"
            && c.connected_user() == Some(info.attached_user_id.as_str());
        Ok((status, info, connected))
    })?;
    let mut out = object(to_json(&status)?);
    out.insert(
        "attached_user_id".into(),
        match info.binding_state.as_str() {
            "attached" => json!(info.attached_user_id),
            _ => Value::Null,
        },
    );
    out.insert("connection_attached".into(), json!(connected));
    out.insert("uploads_paused".into(), json!(s.uploads_paused()));
    out.insert("downloads_paused".into(), json!(s.downloads_paused()));
    out.insert("progress".into(), progress_value(conn));
    out.insert("auto_sync".into(), super::auto_sync::status_value(s));
    text(Value::Object(out))
}

fn progress_value(conn: &Connection) -> Value {
    oversqlite_engine::progress::current_for(conn)
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or(Value::Null)
}

/// `oversqlite_progress()`: the operation running on this database file in this process
/// (any connection, the worker included) as JSON, or JSON `null` when none runs.
pub fn progress(_s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_progress()")?;
    text(progress_value(conn))
}

pub fn source_info(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_source_info()")?;
    text(to_json(&s.with_client(|c| c.source_info(conn))?)?)
}

/// `oversqlite_watch_once([timeout_ms])`: one watch round (until the stream ends, or at
/// most `timeout_ms`), pulling on every bundle event.
pub fn watch_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 1, "oversqlite_watch_once([timeout_ms])")?;
    let timeout = args.opt_integer(0, "timeout_ms")?;
    if let Some(ms) = timeout {
        if ms < 1 {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "timeout_ms must be a positive number of milliseconds",
            ));
        }
    }
    if s.downloads_paused() {
        return text(
            json!({"outcome": "skipped", "skipped": DOWNLOADS_PAUSED, "events": 0, "pulls": 0, "changed_tables": []}),
        );
    }
    let report = match timeout {
        Some(ms) => s.with_client(|c| c.watch_for(conn, Duration::from_millis(ms as u64)))?,
        None => s.with_client(|c| c.watch_once(conn))?,
    };
    text(to_json(&report)?)
}
