//! oversqlite: SQLite loadable extension. This file only registers; the SQL adapters
//! live in `sql/`, the runtime in `oversqlite-core`.
//!
//! The entry point initialises two API tables: sqlite-loadable's (used to register
//! functions and virtual tables) and rusqlite's (`loadable_extension`, used for all
//! database access through `Connection::from_handle` on the caller's connection).
use std::os::raw::{c_char, c_uint};

use sqlite_loadable::prelude::*;
use sqlite_loadable::FunctionFlags;

pub mod sql;

use sql::function::register;
use sql::{config_fns, open_fn, rows_vtab, runtime_vtabs, sync, version_fn};

fn register_all(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    // Functions that write are DIRECTONLY: a view or trigger cannot call them.
    let writer = FunctionFlags::UTF8 | FunctionFlags::DIRECTONLY;
    register(db, "oversqlite_init", config_fns::init, writer)?;
    register(
        db,
        "oversqlite_enable_sync",
        config_fns::enable_sync,
        writer,
    )?;
    register(
        db,
        "oversqlite_disable_sync",
        config_fns::disable_sync,
        writer,
    )?;
    register(
        db,
        "oversqlite_config",
        config_fns::show,
        FunctionFlags::UTF8,
    )?;
    register(db, "oversqlite_open", open_fn::open, writer)?;
    register(
        db,
        "oversqlite_version",
        version_fn::version,
        FunctionFlags::UTF8 | FunctionFlags::DETERMINISTIC,
    )?;
    rows_vtab::register::<runtime_vtabs::Pending>(db)?;
    rows_vtab::register::<runtime_vtabs::SourceInfo>(db)?;
    // The sync functions share one per-connection state (engine client, token, policies).
    sync::register_all(db.cast())?;
    Ok(())
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
