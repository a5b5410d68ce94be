//! SQL functions driving the sync engine (`oversqlite-engine`). One [`state::ConnSync`]
//! per connection, created at registration and shared by every function as aux data.
pub mod auto_sync;
pub mod control_fns;
pub mod host_fn;
pub mod one_shot;
pub mod ops_fns;
pub mod resolver;
pub mod state;
pub mod token;

use std::os::raw::c_int;
use std::sync::Arc;

use rusqlite::ffi;

use oversqlite_engine::journal::{self, Outcome, Trigger};
use oversqlite_engine::SyncError;
use rusqlite::Connection;

use crate::sql::args::Args;
use crate::sql::function::register;
use state::ConnSync;

/// A sync function body: the connection's sync state, the caller's connection, the
/// arguments; returns the JSON text of the report.
pub type SyncBody = fn(&ConnSync, &Connection, &Args) -> Result<String, SyncError>;

/// Runs a SQL operation inside the engine's journal wrapper (trigger `sql`); the outcome
/// of a success is read from the report JSON the call returns.
fn journaled(
    s: &ConnSync,
    conn: &Connection,
    operation: &'static str,
    body: impl FnOnce() -> Result<String, SyncError>,
) -> Result<String, SyncError> {
    journal::recorded_with(
        conn,
        operation,
        Trigger::Sql,
        s.journal_keep(),
        body,
        |json| outcome_of_json(json),
    )
}

/// `skipped` (a paused direction), `retry_later` (attach), `incomplete` (a sync that
/// left changes pending, a sync_then_detach that did not detach), else `ok`.
fn outcome_of_json(json: &str) -> Outcome {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if v.get("skipped").is_some() {
        Outcome::Skipped
    } else if v.get("status").and_then(|s| s.as_str()) == Some("retry_later") {
        Outcome::RetryLater
    } else if v.get("complete") == Some(&serde_json::Value::Bool(false))
        || v.get("is_success") == Some(&serde_json::Value::Bool(false))
    {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    }
}

/// Registers every sync function on `db` around one fresh per-connection state.
pub fn register_all(db: *mut ffi::sqlite3) -> sqlite_loadable::Result<()> {
    let state = Arc::new(ConnSync::new(db));
    // Anything that talks to the server, changes state or holds credentials is
    // DIRECTONLY: a view or trigger cannot call it.
    let direct: c_int = ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY;
    let reader: c_int = ffi::SQLITE_UTF8;
    // The fourth member names the operation in the sync journal (None: not journaled).
    let functions: &[(&'static str, SyncBody, c_int, Option<&'static str>)] = &[
        ("oversqlite_attach", ops_fns::attach, direct, Some("attach")),
        (
            "oversqlite_push_pending",
            ops_fns::push_pending,
            direct,
            Some("push"),
        ),
        (
            "oversqlite_pull_to_stable",
            ops_fns::pull_to_stable,
            direct,
            Some("pull"),
        ),
        ("oversqlite_sync", ops_fns::sync, direct, Some("sync")),
        (
            "oversqlite_rebuild",
            ops_fns::rebuild,
            direct,
            Some("rebuild"),
        ),
        ("oversqlite_detach", ops_fns::detach, direct, Some("detach")),
        (
            "oversqlite_sync_then_detach",
            ops_fns::sync_then_detach,
            direct,
            Some("sync_then_detach"),
        ),
        (
            "oversqlite_watch_once",
            ops_fns::watch_once,
            direct,
            Some("watch"),
        ),
        ("oversqlite_status", ops_fns::status, reader, None),
        ("oversqlite_progress", ops_fns::progress, reader, None),
        ("oversqlite_source_info", ops_fns::source_info, reader, None),
        (
            "oversqlite_upload_once",
            one_shot::upload_once,
            direct,
            Some("upload_once"),
        ),
        (
            "oversqlite_download_once",
            one_shot::download_once,
            direct,
            Some("download_once"),
        ),
        (
            "oversqlite_sync_once",
            one_shot::sync_once,
            direct,
            Some("sync_once"),
        ),
        ("oversqlite_set_token", control_fns::set_token, direct, None),
        (
            "oversqlite_set_call_timeout",
            control_fns::set_call_timeout,
            direct,
            None,
        ),
        (
            "oversqlite_set_conflict_resolver",
            control_fns::set_conflict_resolver,
            direct,
            None,
        ),
        (
            "oversqlite_pause_uploads",
            control_fns::pause_uploads,
            direct,
            None,
        ),
        (
            "oversqlite_resume_uploads",
            control_fns::resume_uploads,
            direct,
            None,
        ),
        (
            "oversqlite_pause_downloads",
            control_fns::pause_downloads,
            direct,
            None,
        ),
        (
            "oversqlite_resume_downloads",
            control_fns::resume_downloads,
            direct,
            None,
        ),
        ("oversqlite_auto_sync_start", auto_sync::start, direct, None),
        ("oversqlite_auto_sync_stop", auto_sync::stop, direct, None),
        (
            "oversqlite_auto_sync_status",
            auto_sync::status,
            direct,
            None,
        ),
    ];
    for &(name, body, flags, operation) in functions {
        // Every function holds one `Arc<ConnSync>`; SQLite drops it when the connection
        // closes (or the function is replaced), so the state dies with the connection.
        let state = Arc::clone(&state);
        register(db, name, flags, move |conn, args| match operation {
            Some(op) => journaled(&state, conn, op, || body(&state, conn, args)),
            None => body(&state, conn, args),
        })?;
    }
    Ok(())
}
