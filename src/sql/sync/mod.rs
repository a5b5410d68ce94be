//! SQL functions driving the sync engine (`oversqlite-engine`). One [`state::ConnSync`]
//! per connection, created at registration and shared by every function as aux data.
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

use oversqlite_engine::SyncError;
use rusqlite::Connection;

use crate::sql::args::Args;
use crate::sql::function::register;
use state::ConnSync;

/// A sync function body: the connection's sync state, the caller's connection, the
/// arguments; returns the JSON text of the report.
pub type SyncBody = fn(&ConnSync, &Connection, &Args) -> Result<String, SyncError>;

/// Registers every sync function on `db` around one fresh per-connection state.
pub fn register_all(db: *mut ffi::sqlite3) -> sqlite_loadable::Result<()> {
    let state = Arc::new(ConnSync::new(db));
    // Anything that talks to the server, changes state or holds credentials is
    // DIRECTONLY: a view or trigger cannot call it.
    let direct: c_int = ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY;
    let reader: c_int = ffi::SQLITE_UTF8;
    let functions: &[(&'static str, SyncBody, c_int)] = &[
        ("oversqlite_attach", ops_fns::attach, direct),
        ("oversqlite_push_pending", ops_fns::push_pending, direct),
        ("oversqlite_pull_to_stable", ops_fns::pull_to_stable, direct),
        ("oversqlite_sync", ops_fns::sync, direct),
        ("oversqlite_rebuild", ops_fns::rebuild, direct),
        ("oversqlite_detach", ops_fns::detach, direct),
        (
            "oversqlite_sync_then_detach",
            ops_fns::sync_then_detach,
            direct,
        ),
        ("oversqlite_watch_once", ops_fns::watch_once, direct),
        ("oversqlite_status", ops_fns::status, reader),
        ("oversqlite_source_info", ops_fns::source_info, reader),
        ("oversqlite_upload_once", one_shot::upload_once, direct),
        ("oversqlite_download_once", one_shot::download_once, direct),
        ("oversqlite_sync_once", one_shot::sync_once, direct),
        ("oversqlite_set_token", control_fns::set_token, direct),
        (
            "oversqlite_set_call_timeout",
            control_fns::set_call_timeout,
            direct,
        ),
        (
            "oversqlite_set_conflict_resolver",
            control_fns::set_conflict_resolver,
            direct,
        ),
        (
            "oversqlite_pause_uploads",
            control_fns::pause_uploads,
            direct,
        ),
        (
            "oversqlite_resume_uploads",
            control_fns::resume_uploads,
            direct,
        ),
        (
            "oversqlite_pause_downloads",
            control_fns::pause_downloads,
            direct,
        ),
        (
            "oversqlite_resume_downloads",
            control_fns::resume_downloads,
            direct,
        ),
    ];
    for &(name, body, flags) in functions {
        // Every function holds one `Arc<ConnSync>`; SQLite drops it when the connection
        // closes (or the function is replaced), so the state dies with the connection.
        let state = Arc::clone(&state);
        register(db, name, flags, move |conn, args| body(&state, conn, args))?;
    }
    Ok(())
}
