//! oversqlite: SQLite loadable extension. This file only registers; the SQL adapters
//! live in `sql/`, the runtime in `oversqlite-core`.
//!
//! The entry point initialises two API tables: sqlite-loadable's (used to register
//! functions and virtual tables) and rusqlite's (`loadable_extension`, used for all
//! database access through `Connection::from_handle` on the caller's connection).
use std::os::raw::{c_char, c_uint};

use rusqlite::ffi;
use sqlite_loadable::prelude::*;

pub mod sql;

use sql::function::register;
use sql::{config_fns, exec_fn, open_fn, rows_vtab, runtime_vtabs, sync, version_fn};

/// Registers every function and virtual table on `db`, all through `sql::function::register`
/// and `sql::rows_vtab::register` (one panic guard, one error boundary: see `sql/error.rs`).
fn register_all(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    let raw: *mut ffi::sqlite3 = db.cast();
    // Functions that write are DIRECTONLY: a view or trigger cannot call them.
    let writer = ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY;
    register(raw, "oversqlite_init", writer, config_fns::init)?;
    register(
        raw,
        "oversqlite_enable_sync",
        writer,
        config_fns::enable_sync,
    )?;
    register(
        raw,
        "oversqlite_disable_sync",
        writer,
        config_fns::disable_sync,
    )?;
    register(raw, "oversqlite_config", ffi::SQLITE_UTF8, config_fns::show)?;
    register(raw, "oversqlite_open", writer, open_fn::open)?;
    register(raw, "oversqlite_exec", writer, exec_fn::exec)?;
    register(
        raw,
        "oversqlite_version",
        ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
        version_fn::version,
    )?;
    rows_vtab::register::<runtime_vtabs::Pending>(db)?;
    rows_vtab::register::<runtime_vtabs::SourceInfo>(db)?;
    rows_vtab::register::<runtime_vtabs::SyncLog>(db)?;
    // The sync functions share one per-connection state (engine client, token, policies).
    sync::register_all(raw)?;
    Ok(())
}

/// Keeps this library mapped until the process exits. SQLite `dlclose`s an extension
/// when the connection that loaded it closes; the auto-sync worker is joined before that
/// (in the functions' destructors), but its watch reader may still be blocked in a read
/// until the server's next heartbeat, and must not find its code unmapped. Idempotent;
/// failure (no dladdr, static link) leaves things as they were.
pub(crate) fn pin_library() {
    static PINNED: std::sync::Once = std::sync::Once::new();
    PINNED.call_once(|| {
        // SAFETY: dladdr only reads loader tables for an address inside this library;
        // dlopen with RTLD_NOLOAD takes one more reference on the already-loaded object
        // (RTLD_NODELETE: never unloaded), and the handle is deliberately never closed.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let here = pin_library as *const () as *const libc::c_void;
            if libc::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
                libc::dlopen(
                    info.dli_fname,
                    libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
                );
            }
        }
    });
}

/// SQLite entry point (found by `.load ./liboversqlite` from the file name).
///
/// # Safety
/// Called by SQLite with a valid connection and API routine table.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_oversqlite_init(
    db: *mut sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut sqlite3_api_routines,
) -> c_uint {
    let loaded = std::panic::catch_unwind(|| {
        // SAFETY: `p_api` is the routine table SQLite passed to this entry point.
        if unsafe { rusqlite::ffi::rusqlite_extension_init2(p_api.cast()) }.is_err() {
            return 1;
        }
        sqlite_loadable::entrypoints::register_entrypoint(db, pz_err_msg, p_api, register_all)
    });
    loaded.unwrap_or(1)
}
